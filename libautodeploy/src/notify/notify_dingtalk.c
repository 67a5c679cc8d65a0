/*
 * notify_dingtalk.c - a DingTalk custom robot ("自定义机器人"), markdown
 * messages, signed as DingTalk's robot documentation says:
 *
 *   string_to_sign = timestamp + "\n" + secret   (timestamp: Unix ms)
 *   sign = urlencode(base64(HmacSHA256(key = secret, string_to_sign)))
 *   POST <webhook url>&timestamp=<timestamp>&sign=<sign>
 *   {"msgtype": "markdown", "markdown": {"title": .., "text": ..},
 *    "at": {"atMobiles": [..], "atUserIds": [..], "isAtAll": false}}
 *   -> {"errcode": 0, "errmsg": "ok"}
 *
 * DingTalk rejects a timestamp more than an hour off, so every try is
 * signed afresh. Any non-zero errcode is a failure (310000: bad signature,
 * keyword or IP; 130101: more than 20 messages a minute); only the rate
 * limit and "system busy" (-1) are worth retrying. The URL carries the
 * access token: it is never logged (http.c names the host only).
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/encoding.h"
#include "core/error_private.h"
#include "notify/notify_private.h"

#define DINGTALK_RATE_LIMITED 130101 /* "send too fast, exceed 20 times per minute" */
#define DINGTALK_BUSY (-1)           /* "system busy" */

typedef struct {
  char *url;
  char *secret; /* NULL: the robot uses keywords or an IP list, no signing */
  int at_all;
  char **at_mobiles, **at_user_ids;
  size_t n_mobiles, n_user_ids;
} dingtalk_t;

#define K(name, type, field, def) \
  {name, type, offsetof(dingtalk_t, field), 0, 0, def, NULL}
static const ad__config_key_t DINGTALK_KEYS[] = {
    K("secret", AD_CT_SECRET, secret, ""),
    K("at_all", AD_CT_BOOL, at_all, "false"),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__notify_dingtalk_keys(void) { return DINGTALK_KEYS; }

static void dt_destroy(void *state)
{
  dingtalk_t *d = state;
  if (!d)
    return;
  ad__config_free(DINGTALK_KEYS, d);
  ad__notify_strv_free(d->at_mobiles);
  ad__notify_strv_free(d->at_user_ids);
  free(d->url);
  free(d);
}

static void *dt_create(json_t *obj, const char *url, ad_error_t *err)
{
  dingtalk_t *d = calloc(1, sizeof(*d));
  if (!d) {
    ad__err(err, AD_ENOMEM, "config", "no memory");
    return NULL;
  }
  if (ad__notify_take_strv(obj, "at_mobiles", &d->at_mobiles, &d->n_mobiles, err) ||
      ad__notify_take_strv(obj, "at_user_ids", &d->at_user_ids, &d->n_user_ids, err) ||
      ad__config_load(DINGTALK_KEYS, d, obj, err) ||
      (!(d->url = strdup(url)) && ad__err(err, AD_ENOMEM, "config", "no memory"))) {
    dt_destroy(d);
    return NULL;
  }
  return d;
}

/* sign=... for `ts`: URL-encoded base64 of the HMAC-SHA256. Caller frees. */
static char *dt_sign(const char *secret, long long ts)
{
  size_t sl = strlen(secret), ml = sl + 32;
  char *msg = malloc(ml), *b64 = NULL, *enc = NULL;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  if (!msg)
    return NULL;
  int n = snprintf(msg, ml, "%lld\n%s", ts, secret);
  if (HMAC(EVP_sha256(), secret, (int)sl, (unsigned char *)msg, (size_t)n, mac, &maclen) &&
      (b64 = ad__b64_encode(mac, maclen)))
    enc = curl_easy_escape(NULL, b64, 0); /* '+', '/', '=' -> %2B %2F %3D */
  /* the string to sign holds the secret: do not leave it in freed memory */
  OPENSSL_cleanse(msg, ml);
  free(msg);
  free(b64);
  if (!enc)
    return NULL;
  char *out = strdup(enc);
  curl_free(enc);
  return out;
}

/* The markdown text, with "@<mobile>" for every mention not already in it:
 * DingTalk only highlights mentions that appear in a markdown text. */
static char *dt_text(const dingtalk_t *d, const char *text)
{
  size_t len = strlen(text) + 3;
  for (size_t i = 0; i < d->n_mobiles; i++)
    len += strlen(d->at_mobiles[i]) + 2;
  for (size_t i = 0; i < d->n_user_ids; i++)
    len += strlen(d->at_user_ids[i]) + 2;
  char *out = malloc(len), *p;
  if (!out)
    return NULL;
  p = out + snprintf(out, len, "%s", text);
  int sep = 0;
  for (int pass = 0; pass < 2; pass++) {
    char **v = pass ? d->at_user_ids : d->at_mobiles;
    for (size_t i = 0; v && v[i]; i++) {
      const char *hit = strstr(text, v[i]);
      if (hit && hit > text && hit[-1] == '@')
        continue;
      p += snprintf(p, len - (size_t)(p - out), "%s@%s", sep++ ? " " : "\n\n", v[i]);
    }
  }
  return out;
}

static json_t *strv_json(char **v)
{
  json_t *a = json_array();
  for (size_t i = 0; a && v && v[i]; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

static int dt_send(void *state, const ad__notice_t *m, const ad__http_opts_t *o,
                   int *retry, ad_error_t *err)
{
  const dingtalk_t *d = state;
  char *text = dt_text(d, m->text), *sign = NULL, *url = NULL, *body = NULL;
  json_t *j = NULL, *resp_j = NULL;
  ad__http_resp_t resp = {0};
  int rc;
  *retry = 0;
  if (d->secret) {
    long long now_ms = (long long)ad__now_ms();
    size_t ul = strlen(d->url) + 96;
    if ((sign = dt_sign(d->secret, now_ms)) && (url = malloc(ul)))
      snprintf(url, ul, "%s%stimestamp=%lld&sign=%s", d->url,
               strchr(d->url, '?') ? "&" : "?", now_ms, sign);
  } else {
    url = strdup(d->url);
  }
  if (text)
    j = json_pack("{s:s,s:{s:s,s:s},s:{s:o,s:o,s:b}}", "msgtype", "markdown",
                  "markdown", "title", m->title, "text", text, "at", "atMobiles",
                  strv_json(d->at_mobiles), "atUserIds", strv_json(d->at_user_ids),
                  "isAtAll", d->at_all);
  if (j)
    body = json_dumps(j, JSON_COMPACT);
  if (!url || !body) {
    rc = ad__err(err, AD_ENOMEM, "dingtalk", "no memory for the request%s",
                 j || !text ? "" : " (title or text not valid UTF-8?)");
    goto done;
  }
  if ((rc = ad__http_post_json(url, NULL, body, o, "DingTalk robot", &resp, retry, err)))
    goto done;
  json_error_t je;
  resp_j = resp.status == 200 ? json_loads(resp.body ? resp.body : "", 0, &je) : NULL;
  json_t *code = json_object_get(resp_j, "errcode");
  if (resp.status != 200 || !json_is_integer(code)) {
    *retry = ad__http_status_retryable(resp.status);
    rc = ad__err(err, AD_EIO, "dingtalk", "DingTalk robot answered HTTP %ld%s%.120s",
                 resp.status, resp.status == 200 ? " without an errcode: " : ": ",
                 resp.body ? resp.body : "");
  } else if (json_integer_value(code) != 0) {
    json_int_t c = json_integer_value(code);
    *retry = c == DINGTALK_RATE_LIMITED || c == DINGTALK_BUSY;
    rc = ad__err(err, AD_EIO, "dingtalk", "DingTalk robot refused it: errcode %lld: %.160s",
                 (long long)c, json_string_value(json_object_get(resp_j, "errmsg"))
                                   ? json_string_value(json_object_get(resp_j, "errmsg"))
                                   : "");
  }
done:
  if (url) /* it holds the access token and a signature */
    OPENSSL_cleanse(url, strlen(url));
  free(url);
  free(sign);
  free(text);
  free(body);
  json_decref(j);
  json_decref(resp_j);
  ad__http_resp_free(&resp);
  return rc;
}

const ad__notify_backend_t ad__notify_dingtalk = {
    "dingtalk", "http,https", 20, dt_create, dt_send, dt_destroy};
