/* sign.c - see sign.h. */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/encoding.h"
#include "core/error_private.h"
#include "bus/sign.h"

char *ad__sign(const char *key, size_t klen, const char *msg, size_t mlen)
{
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, mac, &maclen))
    return NULL;
  char *out = ad__b64_encode(mac, maclen);
  return out;
}

int ad__read_key(const char *path, char **key, size_t *len, ad_error_t *err)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return ad__err_errno(err, AD_EIO, errno, "master key %s", path);
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  if (n < 16)
    return ad__err(err, AD_EIO, "sign", "master key %s is too short (%zu bytes)", path, n);
  *key = malloc(n);
  if (!*key)
    return ad__err(err, AD_ENOMEM, "sign", "no memory");
  memcpy(*key, buf, n);
  *len = n;
  OPENSSL_cleanse(buf, sizeof buf);
  return 0;
}

static char *signed_msg(const char *tag, const char *body, size_t blen, size_t *n)
{
  size_t tl = strlen(tag);
  char *m = malloc(tl + 1 + blen);
  if (!m)
    return NULL;
  memcpy(m, tag, tl);
  m[tl] = '|';
  memcpy(m + tl + 1, body, blen);
  *n = tl + 1 + blen;
  return m;
}

int ad__fire_signed(ad_bus_t *bus, const char *key_path, const char *tag,
                    const json_t *request, ad_error_t *err)
{
  char *body = request ? json_dumps(request, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  if (!body)
    return ad__err(err, AD_ENOMEM, "sign", "cannot encode the body of %s", tag);
  char *key;
  size_t klen, mlen;
  if (ad__read_key(key_path, &key, &klen, err)) {
    free(body);
    return AD_EIO;
  }
  char *msg = signed_msg(tag, body, strlen(body), &mlen);
  char *sig = msg ? ad__sign(key, klen, msg, mlen) : NULL;
  OPENSSL_cleanse(key, klen);
  free(key);
  free(msg);
  if (!sig) {
    free(body);
    return ad__err(err, AD_ENOMEM, "sign", "cannot sign %s", tag);
  }
  json_t *data = json_pack("{s:s,s:s}", "body", body, "sig", sig);
  char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
  json_decref(data);
  free(sig);
  free(body);
  if (!text)
    return ad__err(err, AD_EINVAL, "sign", "%s: body is not valid UTF-8", tag);
  int rc = ad_bus_fire_json(bus, tag, text, err);
  free(text);
  return rc;
}

int ad__verify_signed(ad_event_t *ev, const char *key_path, const char **body,
                      size_t *body_len, ad_error_t *err)
{
  const char *sig;
  size_t sl;
  if (ad_event_find(ev, "cmd") || ad_event_find(ev, "id"))
    return ad__err(err, AD_EINVAL, "sign", "sent by a minion");
  if (ad_event_get_str(ev, "body", body, body_len) || ad_event_get_str(ev, "sig", &sig, &sl))
    return ad__err(err, AD_EINVAL, "sign", "not signed (needs body and sig)");
  char *key;
  size_t klen, mlen;
  if (ad__read_key(key_path, &key, &klen, err))
    return AD_EINVAL;
  char *msg = signed_msg(ad_event_tag(ev), *body, *body_len, &mlen);
  char *want = msg ? ad__sign(key, klen, msg, mlen) : NULL;
  OPENSSL_cleanse(key, klen);
  free(key);
  free(msg);
  int ok = want && strlen(want) == sl && CRYPTO_memcmp(want, sig, sl) == 0;
  free(want);
  return ok ? 0 : ad__err(err, AD_EINVAL, "sign", "bad signature");
}
