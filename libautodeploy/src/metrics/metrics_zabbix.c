/*
 * metrics_zabbix.c - Zabbix 6.0's JSON-RPC 2.0 API at <url>/api_jsonrpc.php.
 * A query makes at most five calls, whatever the number of hosts:
 *   user.login {"username", "password"} (skipped with an API token; the
 *     session is kept and renewed once when Zabbix says it ended)
 *   host.get {"filter": {"host": [..]}}      (host_by "host", the default)
 *     or hostinterface.get {"filter": {"ip": [..]}}            (host_by "ip")
 *   item.get {"hostids": [..], "filter": {"key_": [..]}}, output with
 *     value_type and lastvalue (memory total comes from lastvalue)
 *   history.get {"history": 0|3, "itemids": [..], "time_from", "time_till"}
 *     once per value type (0 float, 3 unsigned), or, when the window starts
 *     before now - history_days, trend.get (hourly value_avg / value_max).
 * Every request carries "auth" (the session or the API token), as 6.0
 * expects; errors come back as {"error": {"code", "message", "data"}}.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/redact.h"
#include "metrics/metrics_private.h"

enum { IT_CPU, IT_MEM_AVAIL, IT_DISK, IT_LOAD1, IT_MEM_TOTAL, IT_COUNT };
static const ad__metrics_res_t IT_RES[IT_COUNT - 1] = {AD__RES_CPU, AD__RES_MEM, AD__RES_DISK,
                                                       AD__RES_LOAD1};
static const char *const IT_KEY[IT_COUNT] = {"item_cpu", "item_mem_available", "item_disk",
                                             "item_load1", "item_mem_total"};
static const char *const HOST_BY[] = {"host", "ip", NULL};
static const char *const TREND_VALUE[] = {"max", "avg", NULL};

typedef struct {
  ad__metrics_http_conf_t http;
  char *endpoint; /* <url>/api_jsonrpc.php */
  char *username, *password, *api_token, *host_id;
  int host_by, trend_value, history_days;
  char *item[IT_COUNT];
  pthread_mutex_t lock; /* session, next_id */
  char *session;
  long next_id;
} zbx_t;

static const ad__config_key_t ZBX_KEYS[] = {
    AD__METRICS_HTTP_KEYS(zbx_t, http),
    {"username", AD_CT_STR, offsetof(zbx_t, username), 0, 0, "", NULL},
    {"password", AD_CT_SECRET, offsetof(zbx_t, password), 0, 0, "", NULL},
    {"api_token", AD_CT_SECRET, offsetof(zbx_t, api_token), 0, 0, "", NULL},
    {"host_by", AD_CT_ENUM, offsetof(zbx_t, host_by), 0, 0, "host", HOST_BY},
    {"host_id", AD_CT_STR, offsetof(zbx_t, host_id), 0, 0, "", NULL},
    {"history_days", AD_CT_INT, offsetof(zbx_t, history_days), 1, 3650, "7", NULL},
    {"trend_value", AD_CT_ENUM, offsetof(zbx_t, trend_value), 0, 0, "max", TREND_VALUE},
    {"item_cpu", AD_CT_STR, offsetof(zbx_t, item[IT_CPU]), 0, 0, "system.cpu.util", NULL},
    {"item_mem_available", AD_CT_STR, offsetof(zbx_t, item[IT_MEM_AVAIL]), 0, 0,
     "vm.memory.size[available]", NULL},
    {"item_mem_total", AD_CT_STR, offsetof(zbx_t, item[IT_MEM_TOTAL]), 0, 0,
     "vm.memory.size[total]", NULL},
    {"item_disk", AD_CT_STR, offsetof(zbx_t, item[IT_DISK]), 0, 0, "vfs.fs.size[/,pused]", NULL},
    {"item_load1", AD_CT_STR, offsetof(zbx_t, item[IT_LOAD1]), 0, 0,
     "system.cpu.load[all,avg1]", NULL},
    {NULL, 0, 0, 0, 0, NULL, NULL}};

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__metrics_zabbix_keys(void) { return ZBX_KEYS; }

static void zbx_destroy(void *state)
{
  zbx_t *z = state;
  if (!z)
    return;
  ad__metrics_http_conf_free(&z->http);
  ad__config_free(ZBX_KEYS, z);
  free(z->endpoint);
  ad__secret_drop(AD__SECRET_VALUE, z->session);
  free(z->session);
  pthread_mutex_destroy(&z->lock);
  free(z);
}

static void *zbx_create(const json_t *cfg, ad_error_t *err)
{
  zbx_t *z = calloc(1, sizeof(*z));
  if (!z) {
    ad__err(err, AD_ENOMEM, "config", "no memory");
    return NULL;
  }
  pthread_mutex_init(&z->lock, NULL);
  if (ad__config_load(ZBX_KEYS, z, cfg, err) || ad__metrics_http_check(&z->http, err))
    goto fail;
  if (!z->api_token && !(z->username && z->password)) {
    ad__err(err, AD_ECONFIG, "config", "api_token: required, or username and password");
    goto fail;
  }
  if (z->api_token && z->username) {
    ad__err(err, AD_ECONFIG, "config", "api_token: not together with username");
    goto fail;
  }
  for (int i = 0; i < IT_COUNT; i++)
    if (!z->item[i]) {
      ad__err(err, AD_ECONFIG, "config", "%s: must not be empty", IT_KEY[i]);
      goto fail;
    }
  if (!z->host_id && !(z->host_id = strdup(z->host_by ? "{ip}" : "{minion}")))
    goto nomem;
  size_t n = strlen(z->http.url) + 20;
  if (!(z->endpoint = malloc(n)))
    goto nomem;
  const char *tail = strstr(z->http.url, "api_jsonrpc.php");
  snprintf(z->endpoint, n, "%s%s", z->http.url,
           tail && !tail[15] ? "" : "/api_jsonrpc.php");
  return z;
nomem:
  ad__err(err, AD_ENOMEM, "config", "no memory");
fail:
  zbx_destroy(z);
  return NULL;
}

const json_t *ad__metrics_zbx_result(const json_t *root, long status, const char *what,
                                     const char *method, ad_error_t *err)
{
  json_t *e = json_object_get(root, "error");
  if (e) {
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *data = json_string_value(json_object_get(e, "data"));
    ad__err(err, AD_EIO, "metrics", "%s: %s: Zabbix error %lld: %.80s %.120s", what, method,
            (long long)json_integer_value(json_object_get(e, "code")), msg ? msg : "",
            data ? data : "");
    return NULL;
  }
  if (status < 200 || status > 299) {
    ad__err(err, AD_EIO, "metrics", "%s: %s: HTTP %ld", what, method, status);
    return NULL;
  }
  const json_t *r = json_object_get(root, "result");
  if (!r)
    ad__err(err, AD_EDECODE, "metrics", "%s: %s: answer has neither \"result\" nor \"error\"",
            what, method);
  return r;
}

/* One call. params is stolen. *root keeps the answer (caller decrefs);
 * the result is borrowed from it. auth: NULL for user.login. */
static const json_t *call(zbx_t *z, const char *method, json_t *params, const char *auth,
                          const ad__metrics_query_t *q, json_t **root, ad_error_t *err)
{
  char what[96];
  snprintf(what, sizeof what, "zabbix at %s", z->http.origin);
  pthread_mutex_lock(&z->lock);
  long id = ++z->next_id;
  pthread_mutex_unlock(&z->lock);
  json_t *req = json_pack("{s:s,s:s,s:o,s:I}", "jsonrpc", "2.0", "method", method, "params",
                          params, "id", (json_int_t)id);
  if (req && auth)
    json_object_set_new(req, "auth", json_string(auth));
  char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  *root = NULL;
  if (!body) {
    ad__err(err, AD_ENOMEM, "metrics", "no memory");
    return NULL;
  }
  static const char *const headers[] = {"Content-Type: application/json-rpc", NULL};
  long status;
  int rc = ad__metrics_http_post(&z->http, "zabbix", z->endpoint, headers, body, q, &status,
                                 root, err);
  /* the body may hold the password: wipe it */
  memset(body, 0, strlen(body));
  free(body);
  return rc ? NULL : ad__metrics_zbx_result(*root, status, what, method, err);
}

/* The auth value to send: the token, or the session (logging in when
 * there is none). Caller frees. */
static char *auth_value(zbx_t *z, const ad__metrics_query_t *q, ad_error_t *err)
{
  if (z->api_token)
    return strdup(z->api_token);
  pthread_mutex_lock(&z->lock);
  char *s = z->session ? strdup(z->session) : NULL;
  pthread_mutex_unlock(&z->lock);
  if (s)
    return s;
  json_t *root;
  const json_t *r = call(z, "user.login",
                         json_pack("{s:s,s:s}", "username", z->username, "password", z->password),
                         NULL, q, &root, err);
  if (r && !json_is_string(r))
    ad__err(err, AD_EDECODE, "metrics", "zabbix at %s: user.login: result is not a string",
            z->http.origin);
  if (r && json_is_string(r) && (s = strdup(json_string_value(r)))) {
    pthread_mutex_lock(&z->lock);
    ad__secret_drop(AD__SECRET_VALUE, z->session);
    free(z->session);
    z->session = strdup(s);
    ad__secret_add(AD__SECRET_VALUE, z->session); /* a credential, as the password is */
    pthread_mutex_unlock(&z->lock);
  }
  json_decref(root);
  return s;
}

static json_t *strv(char *const *v, size_t n)
{
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++)
    json_array_append_new(a, json_string(v[i]));
  return a;
}

typedef struct {
  char itemid[32];
  size_t host;
  int kind; /* IT_* */
  int value_type;
  double total; /* IT_MEM_AVAIL: the host's memory total in bytes, or NAN */
} item_t;

static int id_str(const json_t *v, char out[32])
{
  const char *s = json_string_value(v);
  if (s && strlen(s) < 32) {
    strcpy(out, s);
    return 0;
  }
  if (json_is_integer(v)) {
    snprintf(out, 32, "%lld", (long long)json_integer_value(v));
    return 0;
  }
  return -1;
}

static int find_item(const item_t *it, size_t n, const char *id)
{
  for (size_t i = 0; i < n; i++)
    if (!strcmp(it[i].itemid, id))
      return (int)i;
  return -1;
}

/* Samples of `arr` (history.get or trend.get result) into the sink. */
static int take_values(zbx_t *z, const json_t *arr, const char *method, const item_t *items,
                       size_t n_items, const ad__metrics_host_t *hosts,
                       ad__metrics_sink_t *sink, ad_error_t *err)
{
  int trend = !strcmp(method, "trend.get");
  const char *vkey = !trend ? "value" : z->trend_value ? "value_avg" : "value_max";
  size_t i;
  json_t *row;
  if (!json_is_array(arr))
    return ad__err(err, AD_EDECODE, "metrics", "zabbix at %s: %s: result is not an array",
                   z->http.origin, method);
  json_array_foreach(arr, i, row) {
    char id[32];
    double clock, v;
    if (id_str(json_object_get(row, "itemid"), id) ||
        ad__metrics_json_num(json_object_get(row, "clock"), &clock) ||
        ad__metrics_json_num(json_object_get(row, vkey), &v))
      return ad__err(err, AD_EDECODE, "metrics",
                     "zabbix at %s: %s: result[%zu] lacks itemid, clock or %s", z->http.origin,
                     method, i, vkey);
    int k = find_item(items, n_items, id);
    if (k < 0)
      continue;
    const item_t *it = &items[k];
    const ad__metrics_host_t *h = &hosts[it->host];
    switch (it->kind) {
    case IT_CPU: /* percent of all CPUs */
      if (h->cores <= 0)
        continue;
      v = v / 100.0 * h->cores;
      break;
    case IT_MEM_AVAIL:
      if (isnan(it->total))
        continue;
      v = (it->total - v) / 1048576.0;
      break;
    case IT_DISK:
      v /= 100.0;
      break;
    default:
      break;
    }
    if (ad__metrics_sink_add(sink, it->host, IT_RES[it->kind], (int64_t)clock * 1000, v))
      return ad__err(err, AD_ENOMEM, "metrics", "no memory");
  }
  return 0;
}

/* One query's working set, across its three calls. */
typedef struct {
  zbx_t *z;
  const ad__metrics_host_t *hosts;
  size_t n;
  char **ids;                  /* our id of each host */
  const ad__metrics_query_t *q;
  const char *auth;
  char **zid;                  /* Zabbix hostid per host */
  json_t *hostids;             /* the known ones, for item.get */
  int want[IT_COUNT];
  item_t *items;
  size_t n_items;
} zq_t;

static int not_array(zq_t *c, const json_t *r, const char *method, ad_error_t *err)
{
  return r ? ad__err(err, AD_EDECODE, "metrics", "zabbix at %s: %s: result is not an array",
                     c->z->http.origin, method)
           : (err ? err->code : AD_EIO);
}

/* 1. hosts: our ids (host names or addresses) to Zabbix hostids. */
static int zq_hosts(zq_t *c, ad_error_t *err)
{
  json_t *root = NULL;
  const char *method = c->z->host_by ? "hostinterface.get" : "host.get";
  const char *field = c->z->host_by ? "ip" : "host";
  const json_t *r = call(c->z, method,
                         json_pack("{s:[s,s],s:{s:o}}", "output", "hostid", field, "filter",
                                   field, strv(c->ids, c->n)),
                         c->auth, c->q, &root, err);
  int rc = 0;
  size_t i;
  json_t *row;
  if (!r || !json_is_array(r))
    rc = not_array(c, r, method, err);
  else
    json_array_foreach(r, i, row) {
      char hid[32];
      const char *name = json_string_value(json_object_get(row, field));
      long h = name ? ad__metrics_find(c->ids, c->n, name) : -1;
      if (h < 0 || c->zid[h] || id_str(json_object_get(row, "hostid"), hid))
        continue;
      if (!(c->zid[h] = strdup(hid)) || json_array_append_new(c->hostids, json_string(hid))) {
        rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
        break;
      }
    }
  json_decref(root);
  return rc;
}

/* One item.get row into c->items (or the host's memory total). */
static void zq_item(zq_t *c, const json_t *row, double *total)
{
  char hid[32];
  const char *key = json_string_value(json_object_get(row, "key_"));
  double vt;
  if (id_str(json_object_get(row, "hostid"), hid) || !key)
    return;
  long h = ad__metrics_find(c->zid, c->n, hid);
  int kind = -1;
  for (int k = 0; k < IT_COUNT; k++)
    if (c->want[k] && !strcmp(key, c->z->item[k]))
      kind = k;
  if (h < 0 || kind < 0)
    return;
  if (kind == IT_MEM_TOTAL) {
    double t;
    if (total && !ad__metrics_json_num(json_object_get(row, "lastvalue"), &t) && t > 0)
      total[h] = t;
    return;
  }
  item_t *it = &c->items[c->n_items];
  if (id_str(json_object_get(row, "itemid"), it->itemid) ||
      ad__metrics_json_num(json_object_get(row, "value_type"), &vt))
    return;
  it->host = (size_t)h;
  it->kind = kind;
  it->value_type = (int)vt;
  c->n_items++;
}

/* 2. items: every host's and key's item at once. */
static int zq_items(zq_t *c, ad_error_t *err)
{
  json_t *root = NULL, *keys = json_array();
  double *total = calloc(c->n + 1, sizeof(double));
  int rc = 0;
  if (!keys || !total) {
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
    goto done;
  }
  for (int k = 0; k < IT_COUNT - 1; k++)
    c->want[k] = !!(c->q->resources & (1u << IT_RES[k]));
  c->want[IT_MEM_TOTAL] = c->want[IT_MEM_AVAIL];
  for (int k = 0; k < IT_COUNT; k++)
    if (c->want[k])
      json_array_append_new(keys, json_string(c->z->item[k]));
  const json_t *r = call(c->z, "item.get",
                         json_pack("{s:[s,s,s,s,s],s:O,s:{s:O}}", "output", "itemid", "hostid",
                                   "key_", "value_type", "lastvalue", "hostids", c->hostids,
                                   "filter", "key_", keys),
                         c->auth, c->q, &root, err);
  if (!r || !json_is_array(r)) {
    rc = not_array(c, r, "item.get", err);
    goto done;
  }
  if (!(c->items = calloc(json_array_size(r) + 1, sizeof(*c->items)))) {
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
    goto done;
  }
  for (size_t h = 0; h < c->n; h++)
    total[h] = c->hosts[h].mem_mb > 0 ? (double)c->hosts[h].mem_mb * 1048576.0 : NAN;
  size_t i;
  json_t *row;
  json_array_foreach(r, i, row) zq_item(c, row, total);
  for (size_t k = 0; k < c->n_items; k++)
    c->items[k].total = total[c->items[k].host];
done:
  free(total);
  json_decref(keys);
  json_decref(root);
  return rc;
}

/* 3. values: history by value type, or trends when the window reaches past
 * the history Zabbix keeps. */
static int zq_values(zq_t *c, ad__metrics_sink_t *sink, ad_error_t *err)
{
  int trends = c->q->from_ms < ad__now_ms() - (int64_t)c->z->history_days * 86400000;
  int rc = 0;
  for (int vt = 0; vt <= 3 && !rc; vt += 3) {
    json_t *itemids = json_array(), *root = NULL;
    for (size_t k = 0; itemids && k < c->n_items; k++)
      if (trends ? vt == 0 : c->items[k].value_type == vt)
        json_array_append_new(itemids, json_string(c->items[k].itemid));
    if (!json_array_size(itemids)) {
      json_decref(itemids);
      continue;
    }
    const char *method = trends ? "trend.get" : "history.get";
    json_int_t from = (json_int_t)(c->q->from_ms / 1000), to = (json_int_t)(c->q->to_ms / 1000);
    json_t *params =
        trends ? json_pack("{s:[s,s,s,s],s:o,s:I,s:I}", "output", "itemid", "clock", "value_avg",
                           "value_max", "itemids", itemids, "time_from", from, "time_till", to)
               : json_pack("{s:s,s:i,s:o,s:I,s:I,s:s,s:s}", "output", "extend", "history", vt,
                           "itemids", itemids, "time_from", from, "time_till", to, "sortfield",
                           "clock", "sortorder", "ASC");
    const json_t *r = call(c->z, method, params, c->auth, c->q, &root, err);
    rc = r ? take_values(c->z, r, method, c->items, c->n_items, c->hosts, sink, err)
           : (err ? err->code : AD_EIO);
    json_decref(root);
  }
  return rc;
}

static int zbx_query_once(zbx_t *z, const ad__metrics_host_t *hosts, size_t n, char **ids,
                          const ad__metrics_query_t *q, ad__metrics_sink_t *sink,
                          const char *auth, ad_error_t *err)
{
  zq_t c = {.z = z, .hosts = hosts, .n = n, .ids = ids, .q = q, .auth = auth,
            .zid = calloc(n + 1, sizeof(char *)), .hostids = json_array()};
  int rc = 0;
  if (!c.zid || !c.hostids)
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
  else if (!(rc = zq_hosts(&c, err)) && json_array_size(c.hostids)) /* none known: no samples */
    if (!(rc = zq_items(&c, err)))
      rc = zq_values(&c, sink, err);
  json_decref(c.hostids);
  for (size_t h = 0; c.zid && h < n; h++)
    free(c.zid[h]);
  free(c.zid);
  free(c.items);
  return rc;
}

static int zbx_query(void *state, const ad__metrics_host_t *hosts, size_t n,
                     const ad__metrics_query_t *q, ad__metrics_sink_t *sink, ad_error_t *err)
{
  zbx_t *z = state;
  char **ids = calloc(n, sizeof(char *));
  int rc = 0;
  if (!ids)
    return ad__err(err, AD_ENOMEM, "metrics", "no memory");
  for (size_t i = 0; i < n && !rc; i++)
    if (!(ids[i] = ad__metrics_host_id(z->host_id, &hosts[i], err)))
      rc = AD_EINVAL;
  for (int attempt = 0; !rc && attempt < 2; attempt++) {
    ad_error_t e = {0};
    char *auth = auth_value(z, q, &e);
    if (!auth) {
      rc = ad__err(err, e.code ? e.code : AD_ENOMEM, "metrics", "%s", e.code ? e.message : "no memory");
      break;
    }
    rc = zbx_query_once(z, hosts, n, ids, q, sink, auth, &e);
    free(auth);
    /* A session Zabbix ended (expired, logged out): log in again, once. */
    if (rc && !z->api_token && attempt == 0 &&
        (strstr(e.message, "re-login") || strstr(e.message, "Not authori"))) {
      pthread_mutex_lock(&z->lock);
      ad__secret_drop(AD__SECRET_VALUE, z->session);
      free(z->session);
      z->session = NULL;
      pthread_mutex_unlock(&z->lock);
      rc = 0;
      continue;
    }
    if (rc)
      ad__err(err, rc, "metrics", "%s", e.message);
    break;
  }
  for (size_t i = 0; i < n; i++)
    free(ids[i]);
  free(ids);
  return rc;
}

const ad__metrics_backend_t ad__metrics_zabbix = {"zabbix", zbx_create, zbx_query, zbx_destroy};
