/* dingtalk_crypto.c - DingTalk's encrypted HTTP event push: the signature,
 * AES-256-CBC both ways and the encrypted "success" answer. See
 * dingtalk_crypto.h for the protocol.
 *
 * Stricter than DingTalk's SDK where that costs no compatibility: the SDK
 * ignores padding it does not understand (a last byte outside 1..32 means
 * "no padding" to it); here the padding must be whole (1..32 bytes, each of
 * that value), as every message the SDK seals is. Decryption runs only after
 * the signature matched, so no padding oracle is offered to anyone without
 * the token. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/encoding.h"
#include "core/error_private.h"
#include "purchase/dingtalk_crypto.h"

#define D "dingtalk"
#define KEY_CHARS 43 /* the EncodingAESKey: 43 base64 characters = 32 bytes */
#define PAD_BLOCK 32 /* PKCS#7 to 32 bytes, as the SDK pads */

struct ad__dt_crypto {
  char *token, *owner;
  size_t owner_len;
  unsigned char key[32]; /* the IV is key[0..15] */
};

/* aes_key -> the 32-byte key; the key's value never reaches *err. */
static int take_key(ad__dt_crypto_t *c, const char *aes_key, const char *where, ad_error_t *err)
{
  size_t n = aes_key ? strlen(aes_key) : 0, bad = n ? ad__b64_span(aes_key, n) : 0;
  if (n != KEY_CHARS || bad < n)
    return ad__err(err, AD_ECONFIG, "config",
                   "%s.aes_key: must be the 43-character EncodingAESKey (letters, digits, + "
                   "and /) of the DingTalk event subscription; %s%zu", where,
                   n != KEY_CHARS ? "this one has " : "a character not in that alphabet at "
                                                      "position ",
                   n != KEY_CHARS ? n : bad);
  char padded[KEY_CHARS + 2];
  memcpy(padded, aes_key, KEY_CHARS);
  memcpy(padded + KEY_CHARS, "=", 2);
  size_t kn = 0;
  unsigned char *k = ad__b64_decode(padded, KEY_CHARS + 1, &kn, NULL);
  OPENSSL_cleanse(padded, sizeof padded);
  int ok = k && kn == sizeof c->key;
  if (ok)
    memcpy(c->key, k, sizeof c->key);
  if (k)
    OPENSSL_cleanse(k, kn);
  free(k);
  return ok ? 0 : ad__err(err, AD_ECONFIG, "config", "%s.aes_key: does not decode to 32 bytes",
                          where);
}

ad__dt_crypto_t *ad__dt_crypto_new(const char *token, const char *aes_key, const char *owner_key,
                                   const char *where, ad_error_t *err)
{
  ad__dt_crypto_t *c = calloc(1, sizeof *c);
  if (!c)
    return ad__err(err, AD_ENOMEM, "config", "no memory"), NULL;
  if (!token || !*token)
    ad__err(err, AD_ECONFIG, "config", "%s.token: is required (the event subscription's token)",
            where);
  else if (!owner_key || !*owner_key)
    ad__err(err, AD_ECONFIG, "config", "%s.owner_key: is required (the app's AppKey, or the "
            "corpId or suiteKey the subscription was registered with)", where);
  else if (!take_key(c, aes_key, where, err)) {
    c->token = strdup(token);
    c->owner = strdup(owner_key);
    c->owner_len = strlen(owner_key);
    if (c->token && c->owner)
      return c;
    ad__err(err, AD_ENOMEM, "config", "no memory");
  }
  ad__dt_crypto_destroy(&c);
  return NULL;
}

void ad__dt_crypto_destroy(ad__dt_crypto_t **c_p)
{
  ad__dt_crypto_t *c = c_p ? *c_p : NULL;
  if (!c)
    return;
  if (c->token)
    OPENSSL_cleanse(c->token, strlen(c->token));
  OPENSSL_cleanse(c->key, sizeof c->key);
  free(c->token);
  free(c->owner);
  free(c);
  *c_p = NULL;
}

/* ---- the signature ------------------------------------------------------------ */

static int by_bytes(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void ad__dt_signature(const char *token, const char *timestamp, const char *nonce,
                      const char *encrypt, char out[41])
{
  const char *parts[4] = {token ? token : "", timestamp ? timestamp : "", nonce ? nonce : "",
                          encrypt ? encrypt : ""};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mn = 0;
  qsort(parts, 4, sizeof parts[0], by_bytes);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1;
  for (int i = 0; ok && i < 4; i++)
    ok = EVP_DigestUpdate(ctx, parts[i], strlen(parts[i])) == 1;
  ok = ok && EVP_DigestFinal_ex(ctx, md, &mn) == 1 && mn == 20;
  EVP_MD_CTX_free(ctx);
  static const char HEX[] = "0123456789abcdef";
  for (unsigned i = 0; i < 20; i++) {
    out[2 * i] = ok ? HEX[md[i] >> 4] : '-'; /* '-' never matches a hex signature */
    out[2 * i + 1] = ok ? HEX[md[i] & 15] : '-';
  }
  out[40] = '\0';
}

/* ---- AES-256-CBC, no padding of OpenSSL's (the protocol pads to 32) ---------------- */

static int aes(const ad__dt_crypto_t *c, int enc, const unsigned char *in, size_t n,
               unsigned char *out)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ol = 0, fl = 0;
  int ok = ctx && n <= INT32_MAX &&
           EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), NULL, c->key, c->key, enc) == 1 &&
           EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
           EVP_CipherUpdate(ctx, out, &ol, in, (int)n) == 1 &&
           EVP_CipherFinal_ex(ctx, out + ol, &fl) == 1 && (size_t)(ol + fl) == n;
  EVP_CIPHER_CTX_free(ctx);
  return ok ? 0 : -1;
}

/* The plaintext's parts: random(16) | length | message | owner | padding.
 * 0 with the message's offset and length, or AD_EINVAL / AD__DT_FORGED. */
static int unframe(const ad__dt_crypto_t *c, const unsigned char *p, size_t n, size_t *len,
                   ad_error_t *err)
{
  size_t pad = n ? p[n - 1] : 0;
  int same = pad >= 1 && pad <= PAD_BLOCK && pad <= n;
  for (size_t i = 1; same && i <= pad; i++)
    same = p[n - i] == pad;
  if (!same)
    return ad__err(err, AD_EINVAL, D, "callback: bad padding (not PKCS#7 to %d bytes)", PAD_BLOCK);
  size_t body = n - pad;
  if (body < 20)
    return ad__err(err, AD_EINVAL, D, "callback: %zu bytes of plaintext: too short", body);
  size_t l = (size_t)p[16] << 24 | (size_t)p[17] << 16 | (size_t)p[18] << 8 | p[19];
  if (l > body - 20)
    return ad__err(err, AD_EINVAL, D, "callback: the length field (%zu) runs past the end "
                   "(%zu bytes)", l, body - 20);
  if (body - 20 - l != c->owner_len || memcmp(p + 20 + l, c->owner, c->owner_len)) {
    ad__err(err, AD_EINVAL, D, "callback: sealed for another owner key (not the configured "
            "owner_key)");
    return AD__DT_FORGED;
  }
  *len = l;
  return 0;
}

int ad__dt_decrypt(const ad__dt_crypto_t *c, const char *signature, const char *timestamp,
                   const char *nonce, const char *encrypt, char **msg, size_t *len,
                   ad_error_t *err)
{
  *msg = NULL;
  *len = 0;
  if (!signature || !timestamp || !nonce || !encrypt)
    return ad__err(err, AD_EINVAL, D, "callback: %s missing",
                   !signature ? "msg_signature" : !timestamp ? "timestamp"
                   : !nonce ? "nonce" : "encrypt");
  char want[41];
  ad__dt_signature(c->token, timestamp, nonce, encrypt, want);
  if (strlen(signature) != 40 || CRYPTO_memcmp(signature, want, 40)) {
    ad__err(err, AD_EINVAL, D, "callback: the signature does not match");
    return AD__DT_FORGED;
  }
  ad_error_t e2 = {0};
  size_t n = 0;
  unsigned char *raw = ad__b64_decode(encrypt, strlen(encrypt), &n, &e2);
  if (!raw)
    return ad__err(err, e2.code, D, "callback: encrypt: %s", e2.message);
  unsigned char *plain = NULL;
  int rc = 0;
  if (n == 0 || n % 16)
    rc = ad__err(err, AD_EINVAL, D, "callback: %zu bytes of ciphertext: not whole 16-byte AES "
                 "blocks", n);
  else if (!(plain = malloc(n + 1)))
    rc = ad__err(err, AD_ENOMEM, D, "no memory");
  else if (aes(c, 0, raw, n, plain))
    rc = ad__err(err, AD_EINVAL, D, "callback: AES-256-CBC refused the ciphertext");
  size_t l = 0;
  if (!rc)
    rc = unframe(c, plain, n, &l, err);
  if (!rc && !(*msg = malloc(l + 1)))
    rc = ad__err(err, AD_ENOMEM, D, "no memory");
  if (!rc) {
    memcpy(*msg, plain + 20, l);
    (*msg)[l] = '\0';
    *len = l;
  }
  if (plain)
    OPENSSL_cleanse(plain, n);
  free(plain);
  free(raw);
  return rc;
}

/* `n` random alphanumerics and a NUL, as DingTalk's SDK makes them. */
static int alnum(char *out, size_t n)
{
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char b[64];
  size_t k = 0;
  while (k < n) {
    if (RAND_bytes(b, sizeof b) != 1)
      return -1;
    for (size_t i = 0; i < sizeof b && k < n; i++)
      if (b[i] < 248) /* 248 = 4 x 62: no bias */
        out[k++] = A[b[i] % 62];
  }
  out[n] = '\0';
  return 0;
}

char *ad__dt_encrypt(const ad__dt_crypto_t *c, const char *random16, const char *msg,
                     size_t len, ad_error_t *err)
{
  char rnd[17];
  if (random16 ? strlen(random16) != 16 : alnum(rnd, 16) != 0)
    return ad__err(err, AD_EINVAL, D, "callback: no 16 random bytes"), NULL;
  if (len > INT32_MAX / 2)
    return ad__err(err, AD_EINVAL, D, "callback: %zu bytes is too long to seal", len), NULL;
  size_t body = 20 + len + c->owner_len, pad = PAD_BLOCK - body % PAD_BLOCK, n = body + pad;
  unsigned char *p = malloc(n), *out = malloc(n);
  char *text = NULL;
  if (p && out) {
    memcpy(p, random16 ? random16 : rnd, 16);
    p[16] = (unsigned char)(len >> 24);
    p[17] = (unsigned char)(len >> 16);
    p[18] = (unsigned char)(len >> 8);
    p[19] = (unsigned char)len;
    memcpy(p + 20, msg, len);
    memcpy(p + 20 + len, c->owner, c->owner_len);
    memset(p + body, (int)pad, pad);
    if (aes(c, 1, p, n, out) == 0)
      text = ad__b64_encode(out, n);
    OPENSSL_cleanse(p, n);
  }
  free(p);
  free(out);
  if (!text)
    ad__err(err, AD_ENOMEM, D, "callback: cannot seal the answer");
  return text;
}

json_t *ad__dt_encrypted_map(const ad__dt_crypto_t *c, const char *text, const char *timestamp,
                             const char *nonce, const char *random16, ad_error_t *err)
{
  char fresh[17], sig[41];
  if (!nonce && alnum(fresh, 16))
    return ad__err(err, AD_EINVAL, D, "callback: no random nonce"), NULL;
  char *enc = ad__dt_encrypt(c, random16, text, strlen(text), err);
  if (!enc)
    return NULL;
  ad__dt_signature(c->token, timestamp, nonce ? nonce : fresh, enc, sig);
  json_t *m = json_pack("{s:s,s:s,s:s,s:s}", "msg_signature", sig, "timeStamp", timestamp,
                        "nonce", nonce ? nonce : fresh, "encrypt", enc);
  free(enc);
  if (!m)
    ad__err(err, AD_ENOMEM, D, "no memory");
  return m;
}
