/* metrics_http.c - what the HTTP metrics backends (Prometheus, Zabbix,
 * Open-Falcon) share: the common config keys, one POST that turns every
 * failure into a message naming the backend and the server's origin, and
 * the Authorization header. URLs and headers may carry tokens: only the
 * origin (scheme://host:port) ever reaches a message. */
#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/encoding.h"
#include "core/error_private.h"
#include "core/redact.h"
#include "metrics/metrics_private.h"

int ad__metrics_http_check(ad__metrics_http_conf_t *c, ad_error_t *err)
{
  if (!c->url)
    return ad__err(err, AD_ECONFIG, "config", "url: required (e.g. http://prometheus:9090)");
  if (strncasecmp(c->url, "http://", 7) && strncasecmp(c->url, "https://", 8))
    return ad__err(err, AD_ECONFIG, "config", "url: must start with http:// or https://");
  if (!(c->origin = ad__redact_origin(c->url)))
    return ad__err(err, AD_ECONFIG, "config", "url: not a URL");
  size_t n = strlen(c->url);
  while (n > 0 && c->url[n - 1] == '/') /* base URL: we append paths */
    c->url[--n] = '\0';
  return 0;
}

void ad__metrics_http_conf_free(ad__metrics_http_conf_t *c)
{
  free(c->origin);
  c->origin = NULL;
}

/* Up to 120 bytes of an answer, on one line, for an error message. */
static void quote_head(const char *body, char out[128])
{
  size_t j = 0;
  for (size_t i = 0; body && body[i] && j < 120; i++)
    out[j++] = isprint((unsigned char)body[i]) ? body[i] : ' ';
  out[j] = '\0';
}

int ad__metrics_http_post(const ad__metrics_http_conf_t *c, const char *backend,
                          const char *url, const char *const *headers, const char *body,
                          const ad__metrics_query_t *q, long *status, json_t **json,
                          ad_error_t *err)
{
  *json = NULL;
  *status = 0;
  ad__http_opts_t o = {c->timeout_ms, c->connect_timeout_ms, c->ca_file, c->insecure,
                       q ? q->cancel : NULL, (size_t)c->max_response_mb << 20};
  ad__http_resp_t resp;
  int retry;
  ad_error_t e = {0};
  char what[96];
  snprintf(what, sizeof what, "%s at %s", backend, c->origin);
  int rc = ad__http_post_json(url, headers, body, &o, what, &resp, &retry, &e);
  if (rc)
    return ad__err(err, rc, "metrics", "%s", e.message);
  *status = resp.status;
  if (resp.truncated) {
    ad__http_resp_free(&resp);
    return ad__err(err, AD_EIO, "metrics",
                   "%s: answer larger than max_response_mb (%d MiB); narrow the window or "
                   "raise the step",
                   what, c->max_response_mb);
  }
  json_error_t je;
  *json = resp.body ? json_loadb(resp.body, resp.body_len, 0, &je) : NULL;
  if (!*json) {
    char head[128];
    quote_head(resp.body, head);
    if (resp.status >= 200 && resp.status <= 299)
      rc = ad__err(err, AD_EDECODE, "metrics", "%s: answer is not JSON (%s): \"%s\"", what,
                   resp.body ? je.text : "empty body", head);
    else
      rc = ad__err(err, AD_EIO, "metrics", "%s: HTTP %ld: \"%s\"", what, resp.status, head);
  }
  ad__http_resp_free(&resp);
  return rc;
}

char *ad__metrics_auth_header(const char *user, const char *password, const char *token)
{
  char *h = NULL;
  if (token && *token) {
    size_t n = strlen(token) + 32;
    if ((h = malloc(n)))
      snprintf(h, n, "Authorization: Bearer %s", token);
  } else if (user && *user) {
    size_t ul = strlen(user), pl = password ? strlen(password) : 0;
    unsigned char *raw = malloc(ul + pl + 2);
    if (raw && (h = malloc(ad__b64_len(ul + pl + 1) + 32))) {
      memcpy(raw, user, ul);
      raw[ul] = ':';
      if (pl)
        memcpy(raw + ul + 1, password, pl);
      int w = snprintf(h, 32, "Authorization: Basic ");
      ad__b64_encode_into(h + w, raw, ul + pl + 1);
    }
    if (raw) {
      OPENSSL_cleanse(raw, ul + pl + 1);
      free(raw);
    }
  }
  return h;
}
