/*
 * api.c - /api/v1: read-only JSON over MongoDB (docs/api-http.md), and the
 * counts by state that /metrics and the dashboard show.
 *
 * Lists page by _id: `limit` (1..1000, default 100) and `after` (the last
 * _id of the previous page); the answer's "next" is the `after` of the next
 * page, or null at the end. Single documents go through the modules that
 * own them (host.get, service.get, task.get), so the API says what the
 * runners say. Errors: 400 names the parameter, 404, 503 when MongoDB does
 * not answer.
 */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "serve/serve_private.h"
#include "store/bson_json.h"
#include "store/cursor.h"
#include "store/docs.h"

static const char *const HOST_STATES[] = {"registering", "initializing", "ready", "init_failed",
                                          "unreachable", "draining", "retired", "quarantined", NULL};
static const char *const SERVICE_STATES[] = {"pending", "deploying", "deployed", "opened", "retired",
                                             "waiting_resources", "failed", NULL};
static const char *const TASK_STATES[] = {"queued", "running", "paused", "succeeded", "failed",
                                          "timed_out", "cancelled", NULL};

static const ad__serve_param_t HOSTS_Q[] = {{"state", AD__Q_ENUM, HOST_STATES},
                                            {"profile", AD__Q_STR, NULL},
                                            {"region", AD__Q_STR, NULL},
                                            {"limit", AD__Q_LIMIT, NULL},
                                            {"after", AD__Q_STR, NULL},
                                            {NULL, 0, NULL}};
static const ad__serve_param_t SERVICES_Q[] = {{"platform", AD__Q_STR, NULL},
                                               {"state", AD__Q_ENUM, SERVICE_STATES},
                                               {"limit", AD__Q_LIMIT, NULL},
                                               {"after", AD__Q_STR, NULL},
                                               {NULL, 0, NULL}};
static const ad__serve_param_t TASKS_Q[] = {{"status", AD__Q_ENUM, TASK_STATES},
                                            {"since", AD__Q_TIME, NULL},
                                            {"limit", AD__Q_LIMIT, NULL},
                                            {NULL, 0, NULL}};
static const ad__serve_param_t ORDERS_Q[] = {{"state", AD__Q_STR, NULL},
                                             {"limit", AD__Q_LIMIT, NULL},
                                             {"after", AD__Q_STR, NULL},
                                             {NULL, 0, NULL}};
static const ad__serve_param_t NONE_Q[] = {{NULL, 0, NULL}};

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
  json_object_set_new(cls, k, json_string(v ? v : ""));
  return MHD_YES;
}

json_t *ad__serve_args(struct MHD_Connection *c)
{
  json_t *raw = json_object();
  if (raw)
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect, raw);
  return raw;
}

/* An ad_error_t as the HTTP answer it stands for. */
static int fail(struct MHD_Connection *c, const ad_error_t *err, int code)
{
  unsigned st = code == AD_EINVAL ? 400 : code == AD_ENOTFOUND ? 404
              : code == AD_ECONNECT ? 503 : code == AD_ECONFIG ? 404 : 500;
  if (st == 503)
    return ad__serve_error(c, 503, "the store (MongoDB) does not answer");
  return ad__serve_error(c, st, err->message[0] ? err->message : "error");
}

/* find `q` (taken) on `coll`, sorted by _id, one page. */
static json_t *page(ad__serve_t *s, const char *coll, json_t *q, const json_t *args,
                    const char *key, ad_error_t *err, int *code)
{
  const char *after = json_string_value(json_object_get(args, "after"));
  json_int_t limit = json_integer_value(json_object_get(args, "limit"));
  if (after)
    json_object_set_new(q, "_id", json_pack("{s:s}", "$gt", after));
  json_t *opts = json_pack("{s:{s:i},s:I,s:{s:i}}", "sort", "_id", 1, "limit", limit,
                           "projection", "history", 0);
  bson_t *bq = ad__json_to_bson(q, err), *bo = ad__json_to_bson(opts, err);
  json_t *rows = bq && bo ? ad__store_find_json(s->env.store, coll, bq, bo, err) : NULL;
  *code = rows ? 0 : err->code;
  bson_destroy(bq);
  bson_destroy(bo);
  json_decref(q);
  json_decref(opts);
  if (!rows)
    return NULL;
  size_t n = json_array_size(rows);
  json_t *last = n ? json_object_get(json_array_get(rows, n - 1), "_id") : NULL;
  return json_pack("{s:o,s:I,s:O?}", key, rows, "count", (json_int_t)n, "next",
                   (json_int_t)n == limit ? last : NULL);
}

static json_t *filter(const json_t *args, const char *const *names)
{
  json_t *q = json_object();
  for (size_t i = 0; names[i]; i++)
    if (json_object_get(args, names[i]))
      json_object_set(q, names[i], json_object_get(args, names[i]));
  return q;
}

/* the engine's own command for one document: {"<arg>": id} */
static json_t *one(json_t *(*fn)(void *, const json_t *, ad_error_t *), void *ctx, const char *arg,
                   const char *id, ad_error_t *err, int *code)
{
  json_t *a = json_pack("{s:s}", arg, id);
  json_t *r = ctx ? fn(ctx, a, err) : NULL;
  if (!ctx)
    ad__err(err, AD_ECONFIG, "args", "not configured in this engine");
  *code = r ? 0 : err->code;
  json_decref(a);
  return r;
}

/* one document of a collection nobody here owns (orders: another module's) */
static json_t *by_id(ad__serve_t *s, const char *coll, const char *id, const char *key,
                     ad_error_t *err, int *code)
{
  bson_t *q = BCON_NEW("_id", BCON_UTF8(id));
  json_t *rows = ad__store_find_json(s->env.store, coll, q, NULL, err);
  bson_destroy(q);
  if (!rows)
    return *code = err->code, NULL;
  json_t *d = json_incref(json_array_get(rows, 0));
  json_decref(rows);
  if (!d)
    ad__err(err, AD_ENOTFOUND, "args", "no %s %.80s", key, id), *code = AD_ENOTFOUND;
  return d ? json_pack("{s:o}", key, d) : NULL;
}

static json_t *host_get(void *r, const json_t *a, ad_error_t *e) { return ad__host_get(r, a, e); }
static json_t *svc_get(void *f, const json_t *a, ad_error_t *e) { return ad__service_get(f, a, e); }
static json_t *task_get(void *t, const json_t *a, ad_error_t *e) { return ad__task_get(t, a, e); }

static json_t *count_where(ad__serve_t *s, const char *coll, json_t *q, ad_error_t *err)
{
  bson_t *bq = ad__json_to_bson(q, err);
  json_decref(q);
  if (!bq)
    return NULL;
  mongoc_client_t *cl = ad__store_pop(s->env.store);
  mongoc_collection_t *c = ad__store_coll(s->env.store, cl, coll);
  bson_error_t be;
  int64_t n = mongoc_collection_count_documents(c, bq, NULL, NULL, NULL, &be);
  mongoc_collection_destroy(c);
  ad__store_push(s->env.store, cl);
  bson_destroy(bq);
  if (n < 0)
    return ad__err(err, AD_ECONNECT, "store", "counting %s: %s", coll, be.message), NULL;
  return json_integer(n);
}

/* platforms with what the last cycle left on them (last_cycle: reserve,
 * footprint, at; whoever ran it) and the services idle, deploying, waiting
 * and opened now */
static json_t *platforms(ad__serve_t *s, ad_error_t *err, int *code)
{
  bson_t all = BSON_INITIALIZER;
  json_t *rows = ad__store_find_json(s->env.store, s->env.platforms_collection, &all, NULL, err);
  if (!rows)
    return *code = err->code, NULL;
  size_t i;
  json_t *p;
  json_array_foreach(rows, i, p) {
    const char *code_ = ad__jstr(p, "_id");
    json_t *rs = json_object_get(json_object_get(p, "last_cycle"), "reserve");
    static const char *const ST[][2] = {{"idle", "deployed"}, {"deploying", "deploying"},
                                        {"waiting", "waiting_resources"}, {"opened", "opened"}};
    json_t *now = json_object();
    for (int k = 0; k < 4; k++) {
      json_t *n = count_where(s, s->env.services_collection,
                              json_pack("{s:s,s:s}", "platform", code_, "state", ST[k][1]), err);
      if (!n) {
        json_decref(now), json_decref(rows);
        return *code = AD_ECONNECT, NULL;
      }
      json_object_set_new(now, ST[k][0], n);
    }
    json_object_set_new(p, "services", now);
    json_object_set_new(p, "reserve_target", rs ? json_incref(json_object_get(rs, "size")) : json_null());
    json_object_set_new(p, "opening_rate_per_day",
                        rs ? json_incref(json_object_get(rs, "rate_per_day")) : json_null());
    if (!json_object_get(p, "last_cycle"))
      json_object_set_new(p, "last_cycle", json_null());
    json_object_del(p, "history");
  }
  return json_pack("{s:o}", "platforms", rows);
}

static json_t *status(ad__serve_t *s)
{
  json_t *st = s->env.stats ? s->env.stats(s->env.user) : json_object();
  json_object_set_new(st, "http", ad__serve_stats(s));
  int up = s->env.store && ad__store_ping(s->env.store, NULL) == 0;
  json_object_set_new(st, "store_up", json_boolean(up));
  return st;
}

/* Route one /api/v1 path: list endpoints take parameters, /{id} ones none. */
int ad__serve_api(ad__serve_t *s, struct MHD_Connection *c, const char *path)
{
  static const char *const HOST_F[] = {"state", "profile", "region", NULL};
  static const char *const SVC_F[] = {"platform", "state", NULL};
  static const char *const ORD_F[] = {"state", NULL};
  const char *slash = strchr(path, '/');
  char res[32];
  size_t rl = slash ? (size_t)(slash - path) : strlen(path);
  if (rl >= sizeof res)
    return ad__serve_error(c, 404, "no such resource");
  memcpy(res, path, rl);
  res[rl] = 0;
  const char *id = slash ? slash + 1 : NULL;
  if (id && (!*id || strchr(id, '/')))
    return ad__serve_error(c, 404, "no such resource");
  const ad__serve_param_t *pp = id                        ? NONE_Q
                                : !strcmp(res, "hosts")    ? HOSTS_Q
                                : !strcmp(res, "services") ? SERVICES_Q
                                : !strcmp(res, "tasks")    ? TASKS_Q
                                : !strcmp(res, "orders")   ? ORDERS_Q
                                                           : NONE_Q;
  ad_error_t err = {0};
  json_t *raw = ad__serve_args(c);
  json_t *args = ad__serve_query(pp, raw, &err);
  json_decref(raw);
  if (!args)
    return ad__serve_error(c, 400, err.message);
  if (!strcmp(res, "status") && !id) {
    json_decref(args);
    return ad__serve_json(c, 200, status(s));
  }
  if (!s->env.store) {
    json_decref(args);
    return ad__serve_error(c, 503, "no store: the engine has no mongo_uri");
  }
  int code = AD_ENOTFOUND;
  json_t *out = NULL;
  ad__err(&err, AD_ENOTFOUND, "args", "no such resource: %s", res);
  if (!strcmp(res, "hosts"))
    out = id ? one(host_get, s->env.registry, "key", id, &err, &code)
             : page(s, s->env.hosts_collection, filter(args, HOST_F), args, "hosts", &err, &code);
  else if (!strcmp(res, "services"))
    out = id ? one(svc_get, s->env.fleet, "id", id, &err, &code)
             : page(s, s->env.services_collection, filter(args, SVC_F), args, "services", &err, &code);
  else if (!strcmp(res, "orders"))
    out = id ? by_id(s, s->env.orders_collection, id, "order", &err, &code)
             : page(s, s->env.orders_collection, filter(args, ORD_F), args, "orders", &err, &code);
  else if (!strcmp(res, "tasks") && id)
    out = one(task_get, (void *)s->env.tasks, "id", id, &err, &code);
  else if (!strcmp(res, "tasks")) {
    json_t *a = json_pack("{s:O?,s:O}", "status", json_object_get(args, "status"), "limit",
                          json_object_get(args, "limit"));
    if (json_object_get(args, "since")) /* task.list takes seconds */
      json_object_set_new(a, "since", json_real(json_integer_value(json_object_get(args, "since")) / 1000.0));
    out = ad__task_list(s->env.tasks, a, &err);
    code = out ? 0 : err.code;
    json_decref(a);
  } else if (!strcmp(res, "platforms") && !id)
    out = platforms(s, &err, &code);
  json_decref(args);
  return out ? ad__serve_json(c, 200, out) : fail(c, &err, code);
}
