/*
 * notify_webhook.c - a generic JSON webhook: POST
 *   {"title": .., "text": .., "dedup_key": .., "time": "2025-01-02T03:04:05.678Z",
 *    "id": 7}
 * with the configured extra headers (e.g. Authorization). Any 2xx is
 * delivered; 408, 425, 429 and 5xx are retried; other statuses are not.
 * Header values are secrets as far as logs are concerned.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/error_private.h"
#include "core/redact.h"
#include "notify/notify_private.h"

typedef struct {
  char *url;
  char **headers; /* "Name: value", NULL-terminated */
} webhook_t;

static const ad__config_key_t WEBHOOK_KEYS[] = {{NULL, 0, 0, 0, 0, NULL, NULL}};

static void wh_destroy(void *state)
{
  webhook_t *w = state;
  if (!w)
    return;
  for (size_t i = 0; w->headers && w->headers[i]; i++)
    ad__secret_drop(AD__SECRET_NAMED, w->headers[i]);
  ad__notify_strv_free(w->headers);
  free(w->url);
  free(w);
}

/* RFC 9110 token characters. */
static int is_token(const char *s)
{
  if (!*s)
    return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
      return 0;
  return 1;
}

static int take_headers(webhook_t *w, json_t *obj, ad_error_t *err)
{
  json_t *h = json_object_get(obj, "headers");
  if (!h || json_is_null(h))
    goto done;
  if (!json_is_object(h))
    return ad__err(err, AD_ECONFIG, "config", "headers: must be an object of strings");
  if (!(w->headers = calloc(json_object_size(h) + 1, sizeof(char *))))
    return ad__err(err, AD_ENOMEM, "config", "no memory");
  size_t i = 0;
  const char *name;
  json_t *v;
  json_object_foreach(h, name, v) {
    const char *val = json_string_value(v);
    if (!is_token(name))
      return ad__err(err, AD_ECONFIG, "config", "headers: \"%.40s\" is not a header name",
                     name);
    if (!val || strpbrk(val, "\r\n"))
      return ad__err(err, AD_ECONFIG, "config",
                     "headers.%s: must be a string without line breaks", name);
    size_t n = strlen(name) + strlen(val) + 3;
    if (!(w->headers[i] = malloc(n)))
      return ad__err(err, AD_ENOMEM, "config", "no memory");
    snprintf(w->headers[i], n, "%s: %s", name, val);
    ad__secret_add(AD__SECRET_NAMED, w->headers[i++]); /* Authorization, X-Api-Key... */
  }
done:
  json_object_del(obj, "headers");
  return 0;
}

static void *wh_create(json_t *obj, const char *url, ad_error_t *err)
{
  webhook_t *w = calloc(1, sizeof(*w));
  if (!w) {
    ad__err(err, AD_ENOMEM, "config", "no memory");
    return NULL;
  }
  if (take_headers(w, obj, err) || ad__config_load(WEBHOOK_KEYS, w, obj, err) ||
      (!(w->url = strdup(url)) && ad__err(err, AD_ENOMEM, "config", "no memory"))) {
    wh_destroy(w);
    return NULL;
  }
  return w;
}

static int wh_send(void *state, const ad__notice_t *m, const ad__http_opts_t *o,
                   int *retry, ad_error_t *err)
{
  const webhook_t *w = state;
  char when[32];
  ad__iso_ms(m->time_ms, when);
  *retry = 0;
  json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I}", "title", m->title, "text", m->text,
                        "dedup_key", m->dedup_key, "time", when, "id",
                        (json_int_t)m->id);
  char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!body)
    return ad__err(err, AD_EINVAL, "webhook",
                   "cannot encode the message as JSON (title or text not valid UTF-8?)");
  ad__http_resp_t resp;
  int rc = ad__http_post_json(w->url, (const char *const *)w->headers, body, o,
                              "webhook", &resp, retry, err);
  free(body);
  if (rc)
    return rc;
  if (resp.status < 200 || resp.status > 299) {
    *retry = ad__http_status_retryable(resp.status);
    rc = ad__err(err, AD_EIO, "webhook", "webhook answered HTTP %ld: %.120s", resp.status,
                 resp.body ? resp.body : "");
  }
  ad__http_resp_free(&resp);
  return rc;
}

const ad__notify_backend_t ad__notify_webhook = {
    "webhook", "http,https", 0, wh_create, wh_send, wh_destroy};
