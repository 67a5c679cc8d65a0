/*
 * approval_dingtalk.c - an order's approval through DingTalk OA
 * (approval_dingtalk.h), with DingTalk's new-style (api.dingtalk.com v1.0)
 * server API, as its documentation describes it:
 *
 *   POST /v1.0/oauth2/accessToken {"appKey", "appSecret"}
 *     -> {"accessToken": "...", "expireIn": 7200}
 *   POST /v1.0/workflow/processInstances          x-acs-dingtalk-access-token: <token>
 *     {"processCode", "originatorUserId", "deptId"?, "formComponentValues":
 *      [{"name": <label>, "value": <text>}, ...]}  -> {"instanceId": "..."}
 *   GET  /v1.0/workflow/processInstances?processInstanceId=<id>
 *     -> {"success": true, "result": {"status": "RUNNING" | "COMPLETED" |
 *         "TERMINATED" | "CANCELED", "result": "agree" | "refuse",
 *         "operationRecords": [{"userId", "result": "AGREE" | "REFUSE", ...}]}}
 *   errors: HTTP 4xx/5xx with {"code": "...", "message": "..."}.
 *
 * The token is cached until a minute before it expires, and dropped when
 * an answer says it is not valid (HTTP 401, or a code naming the token),
 * after which the call is tried once more with a fresh one. The app secret
 * and the token never reach an error or the log.
 *
 * `callback` ({token, aes_key, owner_key}) configures the other way to
 * learn a result: DingTalk's encrypted HTTP push of bpms_instance_change
 * (dingtalk_crypto.h; approval_callback.c handles it). Only its keys are
 * read here.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/error_private.h"
#include "core/http.h"
#include "core/redact.h"
#include "purchase/approval_dingtalk.h"
#include "purchase/dingtalk_crypto.h"
#include "purchase/notices.h"

/* The form's fields, in order; each label can be renamed with form.<key>
 * (an empty label leaves the field out, for a form without it). */
enum { F_ORDER, F_COUNT, F_PROFILE, F_FLAVOUR, F_PLATFORMS, F_HOURS, F_REASON, F_N };
static const char *const FIELD_KEYS[F_N] = {"order_id", "count", "profile", "flavour",
                                            "platforms", "waited_hours", "reason"};
static const char *const FIELD_LABELS[F_N] = {"Order", "Hosts", "Profile", "Flavour",
                                              "Platforms", "Hours waited", "Reason"};

struct ad__dt_approval {
  char *base_url, *app_key, *app_secret, *process_code, *originator;
  long long dept_id;
  int timeout_s, insecure;
  char *ca_file;
  char *labels[F_N]; /* NULL: the default label; "" (as NULL + skip): left out */
  int skip[F_N];
  pthread_mutex_t lock; /* the token cache */
  char *token;
  int64_t token_until_ms; /* monotonic */
  ad__dt_crypto_t *callback; /* NULL: no callback configured */
  char *cb_token, *cb_aes_key; /* its secrets, in the redaction set while we live */
};

typedef struct {
  char *base_url, *app_key, *app_secret, *process_code, *originator, *ca_file;
  int timeout_s, insecure, dept_id;
} keys_t;

#define K(name, type, field, lo, hi, def) {name, type, offsetof(keys_t, field), lo, hi, def, NULL}
static const ad__config_key_t DT_KEYS[] = {
    K("base_url", AD_CT_STR, base_url, 0, 0, "https://api.dingtalk.com"),
    K("app_key", AD_CT_STR, app_key, 0, 0, ""),
    K("app_secret", AD_CT_SECRET, app_secret, 0, 0, ""),
    K("process_code", AD_CT_STR, process_code, 0, 0, ""),
    K("originator_user_id", AD_CT_STR, originator, 0, 0, ""),
    K("dept_id", AD_CT_INT, dept_id, -1, 2147483647, "-1"),
    K("timeout_s", AD_CT_INT, timeout_s, 1, 120, "10"),
    K("ca_file", AD_CT_STR, ca_file, 0, 0, ""),
    K("insecure_skip_verify", AD_CT_BOOL, insecure, 0, 0, "false"),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__approval_dingtalk_keys(void) { return DT_KEYS; }

/* callback: the event subscription's token and EncodingAESKey, and the key
 * DingTalk seals its pushes for (default: app_key, as for an internal app's
 * subscription set in the developer console) */
typedef struct {
  char *token, *aes_key, *owner_key;
} cb_keys_t;

#define K(name, type, field) {name, type, offsetof(cb_keys_t, field), 0, 0, "", NULL}
static const ad__config_key_t CB_KEYS[] = {K("token", AD_CT_SECRET, token),
                                           K("aes_key", AD_CT_SECRET, aes_key),
                                           K("owner_key", AD_CT_STR, owner_key),
                                           {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

const ad__config_key_t *ad__approval_dingtalk_callback_keys(void) { return CB_KEYS; }

#define PFX "purchase.approval.dingtalk."

/* a secret out of the redaction set, wiped, freed */
static void forget(char **s)
{
  if (!*s)
    return;
  ad__secret_drop(AD__SECRET_VALUE, *s);
  OPENSSL_cleanse(*s, strlen(*s));
  free(*s);
  *s = NULL;
}

void ad__dt_approval_destroy(ad__dt_approval_t **a_p)
{
  ad__dt_approval_t *a = a_p ? *a_p : NULL;
  if (!a)
    return;
  forget(&a->cb_token); /* added as the callback's keys were loaded */
  forget(&a->cb_aes_key);
  ad__secret_drop(AD__SECRET_VALUE, a->app_secret); /* added as the config was loaded */
  ad__secret_drop(AD__SECRET_URL, a->base_url);
  ad__secret_drop(AD__SECRET_VALUE, a->token);
  if (a->app_secret)
    OPENSSL_cleanse(a->app_secret, strlen(a->app_secret));
  if (a->token)
    OPENSSL_cleanse(a->token, strlen(a->token));
  free(a->base_url);
  free(a->app_key);
  free(a->app_secret);
  free(a->process_code);
  free(a->originator);
  free(a->ca_file);
  free(a->token);
  for (int i = 0; i < F_N; i++)
    free(a->labels[i]);
  ad__dt_crypto_destroy(&a->callback);
  pthread_mutex_destroy(&a->lock);
  free(a);
  *a_p = NULL;
}

static int take_form(ad__dt_approval_t *a, const json_t *form, ad_error_t *err)
{
  if (!form)
    return 0;
  if (!json_is_object(form))
    return ad__err(err, AD_ECONFIG, "config", PFX "form: an object of field labels");
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)form, k, v) {
    int i = 0;
    while (i < F_N && strcmp(FIELD_KEYS[i], k))
      i++;
    if (i == F_N)
      return ad__err(err, AD_ECONFIG, "config", PFX "form.%.40s: unknown field (order_id, "
                     "count, profile, flavour, platforms, waited_hours, reason)", k);
    if (!json_is_string(v))
      return ad__err(err, AD_ECONFIG, "config", PFX "form.%s: a label (string)", k);
    if (!*json_string_value(v))
      a->skip[i] = 1;
    else if (!(a->labels[i] = strdup(json_string_value(v))))
      return ad__err(err, AD_ENOMEM, "config", "no memory");
  }
  return 0;
}

/* A key table's refusal as "<where>.<key>: why" or "<where>: unknown key". */
static int table_error(const char *where, ad_error_t *err)
{
  char m[sizeof err->message];
  snprintf(m, sizeof m, "%s", err ? err->message : "");
  return ad__err(err, AD_ECONFIG, "config", "%s%s%s", where,
                 strcspn(m, " ") < strcspn(m, ":") ? ": " : ".", m);
}

static int take_callback(ad__dt_approval_t *a, const json_t *cb, ad_error_t *err)
{
  if (!cb || json_is_null(cb))
    return 0;
  if (!json_is_object(cb))
    return ad__err(err, AD_ECONFIG, "config", PFX "callback: must be an object {token, "
                   "aes_key, owner_key}");
  cb_keys_t k = {0};
  int rc = ad__config_load(CB_KEYS, &k, cb, err) ? table_error(PFX "callback", err) : 0;
  if (!rc && !(a->callback = ad__dt_crypto_new(k.token, k.aes_key,
                                               k.owner_key ? k.owner_key : a->app_key,
                                               PFX "callback", err)))
    rc = AD_ECONFIG;
  if (rc) {
    ad__config_free(CB_KEYS, &k); /* drops the secrets the load added */
    return rc;
  }
  a->cb_token = k.token; /* kept in the redaction set until destroy */
  a->cb_aes_key = k.aes_key;
  free(k.owner_key);
  return 0;
}

ad__dt_approval_t *ad__dt_approval_new(const json_t *conf, ad_error_t *err)
{
  ad__dt_approval_t *a = calloc(1, sizeof *a);
  json_t *rest = json_is_object(conf) ? json_copy((json_t *)conf) : json_object();
  keys_t k = {0};
  int rc = 0;
  if (!a || !rest) {
    free(a);
    json_decref(rest);
    ad__err(err, AD_ENOMEM, "config", "no memory");
    return NULL;
  }
  pthread_mutex_init(&a->lock, NULL);
  if (conf && !json_is_object(conf))
    rc = ad__err(err, AD_ECONFIG, "config", "purchase.approval.dingtalk: must be an object");
  if (!rc)
    rc = take_form(a, json_object_get(rest, "form"), err);
  json_object_del(rest, "form");
  json_t *cb = json_incref(json_object_get(rest, "callback"));
  json_object_del(rest, "callback");
  if (!rc && ad__config_load(DT_KEYS, &k, rest, err))
    rc = table_error("purchase.approval.dingtalk", err);
  /* what a process instance cannot be made without, in the order a
   * reader fills them in */
  const char *missing = rc ? NULL : !k.app_key ? "app_key" : !k.app_secret ? "app_secret"
                                  : !k.process_code ? "process_code"
                                  : !k.originator ? "originator_user_id" : NULL;
  if (missing)
    rc = ad__err(err, AD_ECONFIG, "config", PFX "%s: is required%s", missing,
                 !strcmp(missing, "process_code")
                     ? " (the approval form's code, PROC-..., from the OA admin page)" : "");
  if (!rc && strncmp(k.base_url, "http://", 7) && strncmp(k.base_url, "https://", 8))
    rc = ad__err(err, AD_ECONFIG, "config", PFX "base_url: must be an http(s):// URL");
  a->base_url = k.base_url;
  a->app_key = k.app_key;
  a->app_secret = k.app_secret;
  a->process_code = k.process_code;
  a->originator = k.originator;
  a->ca_file = k.ca_file;
  a->dept_id = k.dept_id;
  a->timeout_s = k.timeout_s;
  a->insecure = k.insecure;
  if (a->base_url) { /* no trailing '/': paths are appended */
    size_t n = strlen(a->base_url);
    while (n > 0 && a->base_url[n - 1] == '/')
      a->base_url[--n] = '\0';
  }
  if (!rc)
    rc = take_callback(a, cb, err);
  json_decref(cb);
  json_decref(rest);
  if (rc)
    ad__dt_approval_destroy(&a);
  return a;
}

const ad__dt_crypto_t *ad__dt_approval_callback(const ad__dt_approval_t *a)
{
  return a ? a->callback : NULL;
}

const char *ad__dt_approval_process_code(const ad__dt_approval_t *a)
{
  return a ? a->process_code : NULL;
}

/* ---- calls ------------------------------------------------------------------------ */

/* One call: 0 with *answer (the parsed body, any status) and *status;
 * <0 + *err when there was no answer (AD_EAGAIN when another try may
 * succeed). `token` NULL: no token header. */
static int call(ad__dt_approval_t *a, const char *method, const char *path, const char *token,
                const char *body, long *status, json_t **answer, ad_error_t *err)
{
  size_t ul = strlen(a->base_url) + strlen(path) + 1;
  char *url = malloc(ul), hdr[600];
  const char *headers[2] = {NULL, NULL};
  ad__http_resp_t resp = {0};
  int retry = 0, rc;
  *answer = NULL;
  if (!url)
    return ad__err(err, AD_ENOMEM, "dingtalk", "no memory");
  snprintf(url, ul, "%s%s", a->base_url, path);
  if (token) {
    snprintf(hdr, sizeof hdr, "x-acs-dingtalk-access-token: %s", token);
    headers[0] = hdr;
  }
  ad__http_opts_t o = {.timeout_ms = (long)a->timeout_s * 1000, .ca_file = a->ca_file,
                       .insecure = a->insecure};
  rc = ad__http_request(method, url, headers, body, &o, "DingTalk OA", &resp, &retry, err);
  OPENSSL_cleanse(hdr, sizeof hdr);
  free(url);
  if (rc) {
    if (retry && err)
      err->code = AD_EAGAIN;
    return retry ? AD_EAGAIN : rc;
  }
  *status = resp.status;
  *answer = json_loads(resp.body ? resp.body : "", 0, NULL);
  if (!*answer)
    *answer = json_pack("{s:s}", "message", resp.body ? resp.body : "");
  ad__http_resp_free(&resp);
  return 0;
}

/* The error of a failed answer: AD_EAGAIN for 429/5xx, else AD_EIO. */
static int answer_error(const char *what, long status, const json_t *ans, ad_error_t *err)
{
  const char *code = json_string_value(json_object_get(ans, "code"));
  const char *msg = json_string_value(json_object_get(ans, "message"));
  return ad__err(err, ad__http_status_retryable(status) ? AD_EAGAIN : AD_EIO, "dingtalk",
                 "DingTalk OA %s: HTTP %ld %s: %.120s", what, status, code ? code : "",
                 msg ? msg : "");
}

/* An answer that says the token is not (or no longer) valid. */
static int token_refused(long status, const json_t *ans)
{
  const char *code = json_string_value(json_object_get(ans, "code"));
  return status == 401 || (code && (strcasestr(code, "token") || strcasestr(code, "Authentication")));
}

/* A valid token (caller frees), from the cache or a new one. */
static char *get_token(ad__dt_approval_t *a, ad_error_t *err)
{
  char *t = NULL;
  pthread_mutex_lock(&a->lock);
  if (a->token && ad__mono_ms() < a->token_until_ms)
    t = strdup(a->token);
  pthread_mutex_unlock(&a->lock);
  if (t)
    return t;
  json_t *req = json_pack("{s:s,s:s}", "appKey", a->app_key, "appSecret", a->app_secret);
  char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_t *ans = NULL;
  long status = 0;
  json_decref(req);
  if (!body) {
    ad__err(err, AD_ENOMEM, "dingtalk", "no memory");
    return NULL;
  }
  int rc = call(a, "POST", "/v1.0/oauth2/accessToken", NULL, body, &status, &ans, err);
  OPENSSL_cleanse(body, strlen(body));
  free(body);
  if (rc)
    return NULL;
  const char *tok = json_string_value(json_object_get(ans, "accessToken"));
  json_int_t ttl = json_integer_value(json_object_get(ans, "expireIn"));
  if (status != 200 || !tok || !*tok) {
    answer_error("access token (app_key/app_secret)", status, ans, err);
    json_decref(ans);
    return NULL;
  }
  t = strdup(tok);
  pthread_mutex_lock(&a->lock);
  ad__secret_drop(AD__SECRET_VALUE, a->token);
  free(a->token);
  a->token = t ? strdup(t) : NULL;
  ad__secret_add(AD__SECRET_VALUE, a->token); /* no message may quote it from now on */
  /* a minute early: a token must not expire between here and the call */
  a->token_until_ms = ad__mono_ms() + (ttl > 120 ? ttl - 60 : ttl > 0 ? ttl / 2 : 60) * 1000;
  pthread_mutex_unlock(&a->lock);
  json_decref(ans);
  if (!t)
    ad__err(err, AD_ENOMEM, "dingtalk", "no memory");
  return t;
}

static void drop_token(ad__dt_approval_t *a)
{
  pthread_mutex_lock(&a->lock);
  ad__secret_drop(AD__SECRET_VALUE, a->token);
  if (a->token)
    OPENSSL_cleanse(a->token, strlen(a->token));
  free(a->token);
  a->token = NULL;
  pthread_mutex_unlock(&a->lock);
}

/* call() with the token; a refused token is renewed once. */
static int call_authed(ad__dt_approval_t *a, const char *method, const char *path,
                       const char *body, long *status, json_t **ans, ad_error_t *err)
{
  for (int attempt = 0;; attempt++) {
    char *tok = get_token(a, err);
    if (!tok)
      return err && err->code ? err->code : AD_EIO;
    int rc = call(a, method, path, tok, body, status, ans, err);
    OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    if (rc || attempt || !token_refused(*status, *ans))
      return rc;
    drop_token(a);
    json_decref(*ans);
    *ans = NULL;
  }
}

/* ---- create and poll ------------------------------------------------------------------- */

static const char *label(const ad__dt_approval_t *a, int f)
{
  return a->labels[f] ? a->labels[f] : FIELD_LABELS[f];
}

static void field(json_t *form, const ad__dt_approval_t *a, int f, const char *value)
{
  if (!a->skip[f])
    json_array_append_new(form, json_pack("{s:s,s:s}", "name", label(a, f), "value", value));
}

/* platforms: "qq (7), wx (2)"; hours: the longest wait. */
static void platforms_text(const json_t *order, char *out, size_t n, double *hours)
{
  size_t i, k = 0;
  json_t *p;
  out[0] = '\0';
  *hours = json_number_value(json_object_get(order, "waited_hours"));
  json_array_foreach(json_object_get(order, "platforms"), i, p) {
    const char *name = json_string_value(json_object_get(p, "platform"));
    json_t *s = json_object_get(p, "services");
    double h = json_number_value(json_object_get(p, "waited_hours"));
    if (h > *hours)
      *hours = h;
    if (json_is_integer(s))
      k += (size_t)snprintf(out + k, k < n ? n - k : 0, "%s%s (%lld)", i ? ", " : "",
                            name ? name : "?", (long long)json_integer_value(s));
    else
      k += (size_t)snprintf(out + k, k < n ? n - k : 0, "%s%s", i ? ", " : "",
                            name ? name : "?");
  }
}

int ad__dt_approval_create(ad__dt_approval_t *a, const json_t *order, char **instance_id,
                           ad_error_t *err)
{
  const char *id = json_string_value(json_object_get(order, "_id"));
  char count[32], plat[512], hours[32];
  double h = 0;
  *instance_id = NULL;
  if (!id || !*id)
    return ad__err(err, AD_EINVAL, "dingtalk", "approval: the order has no _id");
  snprintf(count, sizeof count, "%lld", (long long)json_integer_value(json_object_get(order,
                                                                                    "count")));
  platforms_text(order, plat, sizeof plat, &h);
  snprintf(hours, sizeof hours, "%.1f", h);
  char *reason = ad__order_reason_text(order);
  json_t *form = json_array();
  field(form, a, F_ORDER, id);
  field(form, a, F_COUNT, count);
  field(form, a, F_PROFILE, json_string_value(json_object_get(order, "profile")) ?: "");
  field(form, a, F_FLAVOUR, json_string_value(json_object_get(order, "flavour")) ?: "");
  field(form, a, F_PLATFORMS, *plat ? plat : "-");
  field(form, a, F_HOURS, hours);
  field(form, a, F_REASON, reason && *reason ? reason : "-");
  free(reason);
  json_t *req = json_pack("{s:s,s:s,s:o}", "processCode", a->process_code, "originatorUserId",
                          a->originator, "formComponentValues", form);
  if (req && a->dept_id >= 0)
    json_object_set_new(req, "deptId", json_integer(a->dept_id));
  char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  if (!body)
    return ad__err(err, AD_ENOMEM, "dingtalk", "no memory for the approval");
  long status = 0;
  json_t *ans = NULL;
  int rc = call_authed(a, "POST", "/v1.0/workflow/processInstances", body, &status, &ans, err);
  free(body);
  if (!rc) {
    const char *iid = json_string_value(json_object_get(ans, "instanceId"));
    if (status == 200 && iid && *iid)
      rc = (*instance_id = strdup(iid)) ? 0 : ad__err(err, AD_ENOMEM, "dingtalk", "no memory");
    else
      rc = answer_error("create", status, ans, err);
  }
  json_decref(ans);
  return rc;
}

int ad__dt_approval_poll(ad__dt_approval_t *a, const char *instance_id, char **who,
                         ad_error_t *err)
{
  if (who)
    *who = NULL;
  char *esc = instance_id ? curl_easy_escape(NULL, instance_id, 0) : NULL;
  if (!esc)
    return ad__err(err, AD_EINVAL, "dingtalk", "approval: no instance id");
  size_t pl = strlen(esc) + 64;
  char *path = malloc(pl);
  if (path)
    snprintf(path, pl, "/v1.0/workflow/processInstances?processInstanceId=%s", esc);
  curl_free(esc);
  if (!path)
    return ad__err(err, AD_ENOMEM, "dingtalk", "no memory");
  long status = 0;
  json_t *ans = NULL;
  int rc = call_authed(a, "GET", path, NULL, &status, &ans, err);
  free(path);
  if (rc)
    return rc;
  json_t *r = json_object_get(ans, "result");
  const char *st = json_string_value(json_object_get(r, "status"));
  const char *res = json_string_value(json_object_get(r, "result"));
  if (status != 200 || !st) {
    rc = answer_error("poll", status, ans, err);
  } else if (!strcmp(st, "COMPLETED")) {
    rc = res && !strcasecmp(res, "agree") ? 1 : 2;
  } else if (!strcmp(st, "TERMINATED") || !strcmp(st, "CANCELED")) {
    rc = 2;
  } else {
    rc = 0; /* NEW, RUNNING */
  }
  if (rc > 0 && who) { /* the last one who decided */
    size_t i;
    json_t *op;
    const char *uid = NULL;
    json_array_foreach(json_object_get(r, "operationRecords"), i, op) {
      const char *or = json_string_value(json_object_get(op, "result"));
      if (or && (!strcasecmp(or, "AGREE") || !strcasecmp(or, "REFUSE")))
        uid = json_string_value(json_object_get(op, "userId"));
    }
    if (uid)
      *who = strdup(uid);
  }
  json_decref(ans);
  return rc;
}
