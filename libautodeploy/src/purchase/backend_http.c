/*
 * backend_http.c - the `http` order backend: an order API of the site's
 * own (or a broker's) behind a configurable request (docs/purchase.md).
 *
 *   <method> <url>
 *   Content-Type: application/json; charset=utf-8
 *   <idempotency_header>: <order _id>
 *   <timestamp_header>: <Unix seconds of this try>
 *   <signature_header>: sha256=<hex HMAC-SHA256(secret, timestamp + "\n" + body)>
 *   <headers...>
 *
 *   body = the `body` template with the order's placeholders filled, plus
 *          <idempotency_field>: <order _id> at its top level.
 *
 * Placeholders: {id} {profile} {flavour} {region} {count} {reason}. A
 * string that is exactly one placeholder becomes the value with its type
 * ({count} a number); inside a longer string it is text. Filling works on
 * the parsed template, so an order's text can never break the JSON.
 *
 * Tries: one place() makes up to `retries` + 1 tries, all inside `timeout_s`
 * (each try gets what is left of it); between tries it sleeps backoff_ms,
 * doubled each time. A try is retried on a broken connection, a timeout,
 * 408/409/425/429/5xx; every try carries the same idempotency key and body,
 * so the API recognises a repeat: a retry never makes a second order. When
 * the tries or the time run out, place() returns AD_EAGAIN and the caller
 * retries later with the same _id. Other 4xx answers, and a 2xx answer
 * without the order id at `order_id_pointer`, fail the order for good.
 *
 * The secret is used for the signature only: never logged, never in an
 * error, wiped on destroy. Errors name the URL's origin, never its query.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/error_private.h"
#include "core/http.h"
#include "core/redact.h"
#include "core/log_private.h"
#include "purchase/backend.h"
#include "purchase/notices.h"

typedef struct {
  char *type, *url, *secret, *sig_header, *ts_header, *idem_header, *idem_field;
  char *pointer, *ca_file;
  int method, timeout_s, retries, backoff_ms, insecure;
  json_t *body;  /* the template (a JSON object) */
  char **headers; /* "Name: value", NULL-terminated */
  size_t n_headers;
  char *origin;  /* scheme://host:port of url: what errors and logs name */
} http_be_t;

static const char *const METHODS[] = {"POST", "PUT", NULL};

#define K(name, type, field, lo, hi, def) {name, type, offsetof(http_be_t, field), lo, hi, def, NULL}
static const ad__config_key_t HTTP_KEYS[] = {
    K("type", AD_CT_STR, type, 0, 0, "http"),
    K("url", AD_CT_STR, url, 0, 0, ""),
    {"method", AD_CT_ENUM, offsetof(http_be_t, method), 0, 0, "POST", METHODS},
    K("secret", AD_CT_SECRET, secret, 0, 0, ""),
    K("signature_header", AD_CT_STR, sig_header, 0, 0, "X-Autodeploy-Signature"),
    K("timestamp_header", AD_CT_STR, ts_header, 0, 0, "X-Autodeploy-Timestamp"),
    K("idempotency_header", AD_CT_STR, idem_header, 0, 0, "Idempotency-Key"),
    K("idempotency_field", AD_CT_STR, idem_field, 0, 0, "client_token"),
    K("order_id_pointer", AD_CT_STR, pointer, 0, 0, "/order_id"),
    K("timeout_s", AD_CT_INT, timeout_s, 1, 600, "30"),
    K("retries", AD_CT_INT, retries, 0, 20, "3"),
    K("backoff_ms", AD_CT_INT, backoff_ms, 0, 60000, "500"),
    K("ca_file", AD_CT_STR, ca_file, 0, 0, ""),
    K("insecure_skip_verify", AD_CT_BOOL, insecure, 0, 0, "false"),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__purchase_http_keys(void) { return HTTP_KEYS; }

#define PFX "purchase.backend."

static void http_destroy(void *self)
{
  http_be_t *h = self;
  if (!h)
    return;
  if (h->secret)
    OPENSSL_cleanse(h->secret, strlen(h->secret));
  ad__config_free(HTTP_KEYS, h);
  json_decref(h->body);
  for (size_t i = 0; i < h->n_headers; i++) {
    ad__secret_drop(AD__SECRET_NAMED, h->headers[i]);
    free(h->headers[i]);
  }
  free(h->headers);
  free(h->origin);
  free(h);
}

/* A header name: RFC 9110 token characters. */
static int token(const char *s)
{
  if (!s || !*s)
    return 0;
  for (; *s; s++)
    if (*s <= ' ' || *s >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *s))
      return 0;
  return 1;
}

/* headers: {"Name": "value", ...} -> "Name: value" lines. */
static int take_headers(http_be_t *h, const json_t *obj, ad_error_t *err)
{
  if (!obj)
    return 0;
  if (!json_is_object(obj))
    return ad__err(err, AD_ECONFIG, "config", PFX "headers: must be an object of strings");
  h->headers = calloc(json_object_size(obj) + 1, sizeof(char *));
  if (!h->headers)
    return ad__err(err, AD_ENOMEM, "config", "no memory");
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)obj, k, v) {
    const char *s = json_string_value(v);
    if (!token(k))
      return ad__err(err, AD_ECONFIG, "config", PFX "headers: \"%.60s\" is not a header name", k);
    if (!s || strpbrk(s, "\r\n"))
      return ad__err(err, AD_ECONFIG, "config", PFX "headers.%.60s: must be a one-line string",
                     k);
    size_t n = strlen(k) + strlen(s) + 3;
    if (!(h->headers[h->n_headers] = malloc(n)))
      return ad__err(err, AD_ENOMEM, "config", "no memory");
    snprintf(h->headers[h->n_headers], n, "%s: %s", k, s);
    ad__secret_add(AD__SECRET_NAMED, h->headers[h->n_headers++]); /* X-Api-Key... */
  }
  return 0;
}

static void *http_create(const json_t *conf, ad_error_t *err)
{
  http_be_t *h = calloc(1, sizeof *h);
  json_t *rest = json_is_object(conf) ? json_copy((json_t *)conf) : NULL;
  int rc = 0;
  if (!h || (conf && !rest)) {
    rc = ad__err(err, AD_ENOMEM, "config", "no memory");
    goto fail;
  }
  if (rest) { /* the keys that are not scalars, out of the table's way */
    if (json_object_get(rest, "body") && !json_is_object(json_object_get(rest, "body")))
      rc = ad__err(err, AD_ECONFIG, "config", PFX "body: must be a JSON object (the template)");
    else
      h->body = json_incref(json_object_get(rest, "body"));
    if (!rc)
      rc = take_headers(h, json_object_get(rest, "headers"), err);
    json_object_del(rest, "body");
    json_object_del(rest, "headers");
  }
  if (!rc && ad__config_load(HTTP_KEYS, h, rest, err)) {
    char m[sizeof err->message];
    snprintf(m, sizeof m, "%s", err ? err->message : "");
    /* the table names the key first ("retries: ..."), but not an unknown one */
    rc = ad__err(err, AD_ECONFIG, "config", "purchase.backend%s%s",
                 strcspn(m, " ") < strcspn(m, ":") ? ": " : ".", m);
  }
  if (!rc && (!h->url || (strncmp(h->url, "http://", 7) && strncmp(h->url, "https://", 8))))
    rc = ad__err(err, AD_ECONFIG, "config", PFX "url: %s", h->url ?
                 "must be an http:// or https:// URL" : "is required");
  if (!rc && !(h->origin = ad__redact_origin(h->url)))
    rc = ad__err(err, AD_ECONFIG, "config", PFX "url: not a URL");
  if (!rc && (!h->secret || strlen(h->secret) < 16))
    rc = ad__err(err, AD_ECONFIG, "config", PFX "secret: %s", h->secret ?
                 "at least 16 characters" : "is required (the HMAC-SHA256 key)");
  if (!rc && (!token(h->sig_header) || !token(h->ts_header) || !token(h->idem_header)))
    rc = ad__err(err, AD_ECONFIG, "config", PFX "%s: not a header name",
                 !token(h->sig_header) ? "signature_header"
                 : !token(h->ts_header) ? "timestamp_header" : "idempotency_header");
  if (!rc && h->pointer && *h->pointer != '/')
    rc = ad__err(err, AD_ECONFIG, "config",
                 PFX "order_id_pointer: a JSON pointer (RFC 6901) starts with '/'");
  if (!rc && !h->pointer)
    rc = ad__err(err, AD_ECONFIG, "config", PFX "order_id_pointer: is required");
  if (!rc && !h->body && !(h->body = json_object()))
    rc = ad__err(err, AD_ENOMEM, "config", "no memory");
  if (rc)
    goto fail;
  json_decref(rest);
  return h;
fail:
  json_decref(rest);
  http_destroy(h);
  return NULL;
}

/* ---- the body ------------------------------------------------------------------- */

static const char *const PLACEHOLDERS[] = {"id", "profile", "flavour", "region", "count",
                                           "reason", NULL};

/* The value of placeholder i for `order` (new reference). */
static json_t *ph_value(const json_t *order, int i)
{
  switch (i) {
  case 0:
    return json_string(json_string_value(json_object_get(order, "_id")) ?: "");
  case 4: {
    json_t *c = json_object_get(order, "count");
    return json_is_integer(c) ? json_incref(c) : json_integer(0);
  }
  case 5: {
    char *r = ad__order_reason_text(order);
    json_t *v = json_string(r ? r : "");
    free(r);
    return v;
  }
  default: {
    const char *s = json_string_value(json_object_get(order, PLACEHOLDERS[i]));
    return json_string(s ? s : "");
  }
  }
}

/* `s` with its placeholders filled (new reference): a whole-string
 * placeholder keeps the value's type. */
static json_t *fill_string(const char *s, const json_t *order)
{
  for (int i = 0; PLACEHOLDERS[i]; i++) {
    size_t n = strlen(PLACEHOLDERS[i]);
    if (s[0] == '{' && !strncmp(s + 1, PLACEHOLDERS[i], n) && s[n + 1] == '}' && !s[n + 2])
      return ph_value(order, i);
  }
  size_t cap = strlen(s) + 1, len = 0;
  char *out = malloc(cap);
  while (out && *s) {
    const char *text = NULL;
    char num[32];
    size_t skip = 0;
    json_t *v = NULL;
    for (int i = 0; *s == '{' && PLACEHOLDERS[i]; i++) {
      size_t n = strlen(PLACEHOLDERS[i]);
      if (!strncmp(s + 1, PLACEHOLDERS[i], n) && s[n + 1] == '}') {
        v = ph_value(order, i);
        skip = n + 2;
        break;
      }
    }
    if (v && json_is_integer(v)) {
      snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
      text = num;
    } else if (v) {
      text = json_string_value(v);
    }
    size_t tl = text ? strlen(text) : 1;
    if (len + tl + 1 > cap) {
      while (len + tl + 1 > cap)
        cap *= 2;
      char *p = realloc(out, cap);
      if (!p)
        free(out);
      out = p;
    }
    if (out) {
      memcpy(out + len, text ? text : s, tl);
      len += tl;
    }
    s += text ? skip : 1;
    json_decref(v);
  }
  if (!out)
    return NULL;
  out[len] = '\0';
  json_t *r = json_string(out);
  free(out);
  return r;
}

/* A deep copy of template `t` with every string filled. */
static json_t *fill(const json_t *t, const json_t *order)
{
  if (json_is_string(t))
    return fill_string(json_string_value(t), order);
  if (json_is_object(t)) {
    json_t *o = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)t, k, v) json_object_set_new(o, k, fill(v, order));
    return o;
  }
  if (json_is_array(t)) {
    json_t *a = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(t, i, v) json_array_append_new(a, fill(v, order));
    return a;
  }
  return json_deep_copy(t);
}

/* The request body for `order`: caller frees. */
static char *make_body(const http_be_t *h, const json_t *order)
{
  json_t *b = fill(h->body, order);
  if (b && h->idem_field && !json_object_get(b, h->idem_field))
    json_object_set_new(b, h->idem_field, json_string(json_string_value(
                                               json_object_get(order, "_id"))));
  char *s = b ? json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(b);
  return s;
}

/* ---- one try ------------------------------------------------------------------------- */

/* "<name>: sha256=<hex>" over timestamp + "\n" + body. Caller frees. */
static char *sign_header(const http_be_t *h, long long ts, const char *body)
{
  size_t bl = strlen(body);
  char *msg = malloc(bl + 32);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int ml = 0;
  if (!msg)
    return NULL;
  int n = snprintf(msg, bl + 32, "%lld\n%s", ts, body);
  int ok = HMAC(EVP_sha256(), h->secret, (int)strlen(h->secret), (unsigned char *)msg,
                (size_t)n, mac, &ml) != NULL;
  free(msg);
  size_t hl = strlen(h->sig_header) + 2 * ml + 16;
  char *out = ok ? malloc(hl) : NULL;
  if (!out)
    return NULL;
  int o = snprintf(out, hl, "%s: sha256=", h->sig_header);
  for (unsigned int i = 0; i < ml; i++)
    o += snprintf(out + o, hl - (size_t)o, "%02x", mac[i]);
  OPENSSL_cleanse(mac, sizeof mac);
  return out;
}

/* The cloud's order id at the pointer, as text (a number is printed).
 * Caller frees; NULL when absent. */
static char *pointer_get(const json_t *doc, const char *ptr)
{
  const json_t *v = doc;
  char tok[256];
  for (const char *p = ptr; v && *p == '/';) {
    size_t n = 0;
    for (p++; *p && *p != '/' && n < sizeof tok - 1; p++) {
      if (*p == '~' && (p[1] == '0' || p[1] == '1'))
        tok[n++] = *++p == '0' ? '~' : '/';
      else
        tok[n++] = *p;
    }
    tok[n] = '\0';
    if (json_is_object(v)) {
      v = json_object_get(v, tok);
    } else if (json_is_array(v)) {
      char *end;
      unsigned long i = strtoul(tok, &end, 10);
      v = *tok && !*end ? json_array_get(v, i) : NULL;
    } else {
      v = NULL;
    }
  }
  if (json_is_string(v) && *json_string_value(v))
    return strdup(json_string_value(v));
  if (json_is_integer(v)) {
    char b[32];
    snprintf(b, sizeof b, "%lld", (long long)json_integer_value(v));
    return strdup(b);
  }
  return NULL;
}

enum { TRY_DONE, TRY_RETRY, TRY_FAIL };

static int try_once(const http_be_t *h, const char *id, const char *body, long timeout_ms,
                    json_t **result, ad_error_t *err)
{
  char ts_line[96], *idem = NULL, *sig = NULL;
  const char **hdrs = calloc(h->n_headers + 4, sizeof(char *));
  long long ts = (long long)(ad__now_ms() / 1000);
  ad__http_resp_t resp = {0};
  int retry = 0, out = TRY_FAIL;
  size_t il = strlen(h->idem_header) + strlen(id) + 3;
  if (!hdrs || !(idem = malloc(il)) || !(sig = sign_header(h, ts, body))) {
    ad__err(err, AD_ENOMEM, "purchase", "no memory for the order request");
    goto done;
  }
  snprintf(idem, il, "%s: %s", h->idem_header, id);
  snprintf(ts_line, sizeof ts_line, "%s: %lld", h->ts_header, ts);
  size_t n = 0;
  hdrs[n++] = idem;
  hdrs[n++] = ts_line;
  hdrs[n++] = sig;
  for (size_t i = 0; i < h->n_headers; i++)
    hdrs[n++] = h->headers[i];
  ad__http_opts_t o = {.timeout_ms = timeout_ms, .ca_file = h->ca_file, .insecure = h->insecure};
  char what[200];
  snprintf(what, sizeof what, "order API %s", h->origin);
  if (ad__http_request(METHODS[h->method], h->url, hdrs, body, &o, what, &resp, &retry, err)) {
    out = retry ? TRY_RETRY : TRY_FAIL;
    goto done;
  }
  json_t *answer = json_loads(resp.body ? resp.body : "", JSON_DECODE_ANY, NULL);
  if (resp.status >= 200 && resp.status < 300) {
    char *cid = pointer_get(answer, h->pointer);
    if (cid) {
      *result = json_pack("{s:s,s:i,s:O?}", "cloud_order_id", cid, "status", (int)resp.status,
                          "answer", answer);
      out = *result ? TRY_DONE : TRY_FAIL;
      if (!*result)
        ad__err(err, AD_ENOMEM, "purchase", "no memory for the result");
    } else {
      ad__err(err, AD_EIO, "purchase", "order %s: %s answered HTTP %ld without an order id at "
              "%s: %.100s", id, h->origin, resp.status, h->pointer, resp.body ? resp.body : "");
    }
    free(cid);
  } else {
    /* 409: the API is still working on this key (or holds it): ask again */
    out = resp.status == 409 || ad__http_status_retryable(resp.status) ? TRY_RETRY : TRY_FAIL;
    ad__err(err, out == TRY_RETRY ? AD_EAGAIN : AD_EIO, "purchase",
            "order %s: %s answered HTTP %ld: %.120s", id, h->origin, resp.status,
            resp.body ? resp.body : "");
  }
  json_decref(answer);
done:
  ad__http_resp_free(&resp);
  if (sig)
    OPENSSL_cleanse(sig, strlen(sig));
  free(sig);
  free(idem);
  free(hdrs);
  return out;
}

static int http_place(void *self, const json_t *order, json_t **result, ad_error_t *err)
{
  const http_be_t *h = self;
  const char *id = json_string_value(json_object_get(order, "_id"));
  *result = NULL;
  if (!id || !*id || strpbrk(id, "\r\n"))
    return ad__err(err, AD_EINVAL, "purchase", "order: _id is missing or not one line");
  char *body = make_body(h, order);
  if (!body)
    return ad__err(err, AD_ENOMEM, "purchase", "order %s: no memory for the body", id);
  int64_t deadline = ad__mono_ms() + (int64_t)h->timeout_s * 1000;
  long backoff = h->backoff_ms;
  int rc = AD_EAGAIN, tries = 0;
  ad_error_t e = {0};
  for (;;) {
    int64_t left = deadline - ad__mono_ms();
    if (left < 50) { /* no time for another meaningful try */
      char last[sizeof e.message];
      snprintf(last, sizeof last, "%s", e.message);
      ad__err(&e, AD_EAGAIN, "purchase", "order %s: timeout_s=%d spent after %d tries%s%.150s",
              id, h->timeout_s, tries, tries ? "; last: " : "", last);
      break;
    }
    int t = try_once(h, id, body, (long)left, result, &e);
    tries++;
    if (t == TRY_DONE) {
      json_object_set_new(*result, "attempts", json_integer(tries));
      rc = AD__PLACE_DONE;
      break;
    }
    if (t == TRY_FAIL) {
      rc = e.code < 0 && e.code != AD_EAGAIN ? e.code : AD_EIO;
      break;
    }
    AD_LOG_W("purchase", "order %s: try %d failed, %s: %s", id, tries,
             tries > h->retries ? "giving up for now" : "retrying", e.message);
    if (tries > h->retries)
      break;
    left = deadline - ad__mono_ms();
    long nap = backoff < left ? backoff : (long)left;
    if (nap > 0)
      usleep((useconds_t)nap * 1000);
    backoff = backoff ? backoff * 2 : 0;
  }
  if (rc < 0 && err) {
    *err = e;
    err->code = rc; /* AD_EAGAIN: the last try's reason, marked retryable */
  }
  free(body);
  return rc;
}

const ad__order_backend_t ad__order_backend_http = {"http", http_create, http_place,
                                                    http_destroy};
