/*
 * metrics_salt.c - load history from Salt's own beacons, kept in MongoDB:
 * no monitoring server needed. The engine hands each
 *   salt/beacon/<minion>/{load,memusage,diskusage}/
 * event to ad__metrics_salt_ingest, which inserts one document:
 *   {minion, at: Date, beacon: "load", load1, load5, load15}
 *   {minion, at, beacon: "memusage", mem_pct}
 *   {minion, at, beacon: "diskusage", disk_pct, mount}
 * Insert only: FerretDB upserts are ~100x slower, and history is append-
 * only anyway. A query reads the window with one find for all hosts
 * ({minion: {$in}, at: {$gte, $lte}}, served by the {minion, at} index).
 *
 * What the beacons can say (docs/metrics.md): cpu is a proxy,
 * min(load1, cores) (runnable tasks, capped at the cores there are); mem
 * is memusage% x the host's mem_mb; disk is diskusage% / 100 of disk_mount.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/redact.h"
#include "metrics/metrics_private.h"
#include "store/cursor.h"
#include "store/store.h"

typedef struct {
  char *mongo_uri, *db, *coll, *host_id, *disk_mount;
  int64_t expire_s;
  ad__store_t *st;
} salt_t;

typedef struct {
  char *mongo_uri, *db, *coll, *host_id, *disk_mount;
  int expire_s;
} salt_conf_t;

static const ad__config_key_t SALT_KEYS[] = {
    {"mongo_uri", AD_CT_STR, offsetof(salt_conf_t, mongo_uri), 0, 0,
     "mongodb://127.0.0.1:27017/", NULL},
    {"db", AD_CT_STR, offsetof(salt_conf_t, db), 0, 0, "autodeploy", NULL},
    {"collection", AD_CT_STR, offsetof(salt_conf_t, coll), 0, 0, AD__METRICS_SALT_COLL, NULL},
    {"host_id", AD_CT_STR, offsetof(salt_conf_t, host_id), 0, 0, "{minion}", NULL},
    {"disk_mount", AD_CT_STR, offsetof(salt_conf_t, disk_mount), 0, 0, "/", NULL},
    {"expire_after_seconds", AD_CT_INT, offsetof(salt_conf_t, expire_s), 60, 2000000000,
     "1296000", NULL},
    {NULL, 0, 0, 0, 0, NULL, NULL}};

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__metrics_salt_keys(void) { return SALT_KEYS; }

static void salt_destroy(void *state)
{
  salt_t *s = state;
  if (!s)
    return;
  ad__store_destroy(&s->st);
  ad__secret_drop(AD__SECRET_URL, s->mongo_uri); /* taken over from the loaded config */
  free(s->mongo_uri);
  free(s->db);
  free(s->coll);
  free(s->host_id);
  free(s->disk_mount);
  free(s);
}

static void *salt_create(const json_t *cfg, ad_error_t *err)
{
  salt_conf_t c = {0};
  salt_t *s = calloc(1, sizeof(*s));
  if (!s || ad__config_load(SALT_KEYS, &c, cfg, err)) {
    if (!s)
      ad__err(err, AD_ENOMEM, "config", "no memory");
    ad__config_free(SALT_KEYS, &c);
    free(s);
    return NULL;
  }
  s->mongo_uri = c.mongo_uri;
  s->db = c.db;
  s->coll = c.coll;
  s->host_id = c.host_id;
  s->disk_mount = c.disk_mount;
  s->expire_s = c.expire_s;
  const char *empty = !s->mongo_uri ? "mongo_uri" : !s->db ? "db" : !s->coll ? "collection"
                      : !s->host_id ? "host_id" : !s->disk_mount ? "disk_mount" : NULL;
  if (empty) {
    ad__err(err, AD_ECONFIG, "config", "%s: must not be empty", empty);
    goto fail;
  }
  if (!(s->st = ad__store_new(s->mongo_uri, s->db, err))) /* connects lazily */
    goto fail;
  return s;
fail:
  salt_destroy(s);
  return NULL;
}

/* ---- write side -------------------------------------------------------------- */

static int num_in(const json_t *data, const char *key, double lo, double hi, double *out,
                  const char *beacon, ad_error_t *err)
{
  json_t *v = json_object_get(data, key);
  if (!v)
    return ad__err(err, AD_EINVAL, "metrics", "%s beacon: no \"%s\"", beacon, key);
  if (!json_is_number(v))
    return ad__err(err, AD_EINVAL, "metrics", "%s beacon: \"%s\" is not a number", beacon, key);
  double d = json_number_value(v);
  if (!isfinite(d) || d < lo || d > hi)
    return ad__err(err, AD_EINVAL, "metrics", "%s beacon: \"%s\" = %g is outside %g..%g",
                   beacon, key, d, lo, hi);
  *out = d;
  return 0;
}

int ad__metrics_beacon_from_json(const char *minion_id, const char *beacon,
                                 const json_t *data, ad__beacon_sample_t *s,
                                 ad_error_t *err)
{
  memset(s, 0, sizeof(*s));
  if (!json_is_object(data))
    return ad__err(err, AD_EINVAL, "metrics", "beacon data must be an object");
  json_t *id = json_object_get(data, "id");
  if (id && (!json_is_string(id) || !minion_id || strcmp(json_string_value(id), minion_id)))
    return ad__err(err, AD_EINVAL, "metrics",
                   "beacon data \"id\" does not match the minion in the tag (%.60s)",
                   minion_id ? minion_id : "none");
  if (beacon && !strcmp(beacon, "load")) {
    s->kind = AD__BEACON_LOAD;
    static const char *const K[3] = {"1m", "5m", "15m"};
    for (int i = 0; i < 3; i++)
      if (num_in(data, K[i], 0, 1e6, &s->load[i], beacon, err))
        return AD_EINVAL;
    return 0;
  }
  if (beacon && !strcmp(beacon, "memusage")) {
    s->kind = AD__BEACON_MEMUSAGE;
    return num_in(data, "memusage", 0, 100, &s->percent, beacon, err) ? AD_EINVAL : 0;
  }
  if (beacon && !strcmp(beacon, "diskusage")) {
    s->kind = AD__BEACON_DISKUSAGE;
    if (num_in(data, "diskusage", 0, 100, &s->percent, beacon, err))
      return AD_EINVAL;
    if (!(s->mount = json_string_value(json_object_get(data, "mount"))))
      return ad__err(err, AD_EINVAL, "metrics", "diskusage beacon: no \"mount\" string");
    return 0;
  }
  return ad__err(err, AD_EINVAL, "metrics",
                 "beacon \"%.40s\" is not one of load, memusage, diskusage",
                 beacon ? beacon : "(null)");
}

static int printable(const char *s, size_t max)
{
  size_t n = 0;
  for (; s && s[n]; n++)
    if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f)
      return 0;
  return s && n > 0 && n <= max;
}

int ad__metrics_salt_ingest(ad__store_t *st, const char *coll, const char *minion_id,
                            const ad__beacon_sample_t *s, int64_t at_ms, ad_error_t *err)
{
  if (!printable(minion_id, 255))
    return ad__err(err, AD_EINVAL, "metrics", "minion id: empty, too long or not printable");
  if (at_ms < 0)
    return ad__err(err, AD_EINVAL, "metrics", "%.60s: negative sample time", minion_id);
  bson_t doc = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&doc, "minion", minion_id);
  BSON_APPEND_DATE_TIME(&doc, "at", at_ms ? at_ms : ad__now_ms());
  int bad = 0;
  switch (s->kind) {
  case AD__BEACON_LOAD:
    for (int i = 0; i < 3; i++)
      bad |= !isfinite(s->load[i]) || s->load[i] < 0 || s->load[i] > 1e6;
    BSON_APPEND_UTF8(&doc, "beacon", "load");
    BSON_APPEND_DOUBLE(&doc, "load1", s->load[0]);
    BSON_APPEND_DOUBLE(&doc, "load5", s->load[1]);
    BSON_APPEND_DOUBLE(&doc, "load15", s->load[2]);
    break;
  case AD__BEACON_MEMUSAGE:
  case AD__BEACON_DISKUSAGE:
    bad = !isfinite(s->percent) || s->percent < 0 || s->percent > 100;
    if (s->kind == AD__BEACON_MEMUSAGE) {
      BSON_APPEND_UTF8(&doc, "beacon", "memusage");
      BSON_APPEND_DOUBLE(&doc, "mem_pct", s->percent);
    } else {
      bad |= !printable(s->mount, 255) || !bson_utf8_validate(s->mount, strlen(s->mount), false);
      BSON_APPEND_UTF8(&doc, "beacon", "diskusage");
      BSON_APPEND_DOUBLE(&doc, "disk_pct", s->percent);
      if (!bad)
        BSON_APPEND_UTF8(&doc, "mount", s->mount);
    }
    break;
  default:
    bad = 1;
  }
  if (bad || !bson_utf8_validate(minion_id, strlen(minion_id), false)) {
    bson_destroy(&doc);
    return ad__err(err, AD_EINVAL, "metrics",
                   "%.60s: beacon sample refused (values must be finite: load 0..1e6, "
                   "percent 0..100, a printable mount, UTF-8)", minion_id);
  }
  mongoc_client_t *c = ad__store_pop(st);
  mongoc_collection_t *col = ad__store_coll(st, c, coll ? coll : AD__METRICS_SALT_COLL);
  bson_error_t be;
  int rc = 0;
  if (!mongoc_collection_insert_one(col, &doc, NULL, NULL, &be))
    rc = ad__err(err, ad__store_error_is_transient(&be) ? AD_ECONNECT : AD_EIO, "store",
                 "insert into %s: %s", coll ? coll : AD__METRICS_SALT_COLL, be.message);
  mongoc_collection_destroy(col);
  ad__store_push(st, c);
  bson_destroy(&doc);
  return rc;
}

static int run_cmd(ad__store_t *st, mongoc_client_t *c, const bson_t *cmd, bson_error_t *be)
{
  bson_t reply;
  bool ok = mongoc_client_command_simple(c, ad__store_db(st), cmd, NULL, &reply, be);
  bson_destroy(&reply);
  return ok ? 0 : -1;
}

int ad__metrics_salt_init(ad__store_t *st, const char *coll, int64_t expire_s, int *ttl,
                          ad_error_t *err)
{
  const char *name = coll ? coll : AD__METRICS_SALT_COLL;
  mongoc_client_t *c = ad__store_pop(st);
  bson_error_t be;
  int rc = 0;
  *ttl = 0;
  bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(name), "indexes", "[",
                         "{", "key", "{", "minion", BCON_INT32(1), "at", BCON_INT32(1), "}",
                         "name", BCON_UTF8("minion_1_at_1"), "}", "]");
  if (run_cmd(st, c, cmd, &be)) {
    rc = ad__err(err, ad__store_error_is_transient(&be) ? AD_ECONNECT : AD_EIO, "store",
                 "createIndexes {minion, at} on %s: %s", name, be.message);
    goto done;
  }
  bson_destroy(cmd);
  cmd = BCON_NEW("createIndexes", BCON_UTF8(name), "indexes", "[", "{", "key", "{", "at",
                 BCON_INT32(1), "}", "name", BCON_UTF8("at_ttl"), "expireAfterSeconds",
                 BCON_INT64(expire_s), "}", "]");
  if (!run_cmd(st, c, cmd, &be)) {
    *ttl = 1;
    goto done;
  }
  bson_destroy(cmd);
  cmd = NULL;
  if (be.code == 85) { /* IndexOptionsConflict: another expireAfterSeconds */
    cmd = BCON_NEW("collMod", BCON_UTF8(name), "index", "{", "name", BCON_UTF8("at_ttl"),
                   "expireAfterSeconds", BCON_INT64(expire_s), "}");
    if (!run_cmd(st, c, cmd, &be))
      *ttl = 1;
    else
      rc = ad__err(err, AD_EIO, "store", "collMod at_ttl on %s: %s", name, be.message);
  } else if (be.code == 238 || be.code == 115) { /* NotImplemented (FerretDB 1.x) */
    cmd = BCON_NEW("createIndexes", BCON_UTF8(name), "indexes", "[", "{", "key", "{", "at",
                   BCON_INT32(1), "}", "name", BCON_UTF8("at_1"), "}", "]");
    if (run_cmd(st, c, cmd, &be))
      rc = ad__err(err, AD_EIO, "store", "createIndexes {at} on %s: %s", name, be.message);
  } else {
    rc = ad__err(err, ad__store_error_is_transient(&be) ? AD_ECONNECT : AD_EIO, "store",
                 "createIndexes at_ttl on %s: %s", name, be.message);
  }
done:
  if (cmd)
    bson_destroy(cmd);
  ad__store_push(st, c);
  return rc;
}

int64_t ad__metrics_salt_prune(ad__store_t *st, const char *coll, int64_t older_than_ms,
                               ad_error_t *err)
{
  const char *name = coll ? coll : AD__METRICS_SALT_COLL;
  mongoc_client_t *c = ad__store_pop(st);
  mongoc_collection_t *col = ad__store_coll(st, c, name);
  bson_t *q = BCON_NEW("at", "{", "$lt", BCON_DATE_TIME(older_than_ms), "}");
  bson_t reply;
  bson_error_t be;
  int64_t n = -1;
  if (mongoc_collection_delete_many(col, q, NULL, &reply, &be)) {
    bson_iter_t it;
    n = bson_iter_init_find(&it, &reply, "deletedCount") ? bson_iter_as_int64(&it) : 0;
  } else {
    ad__err(err, AD_ECONNECT, "store", "prune %s: %s", name, be.message);
  }
  bson_destroy(&reply);
  bson_destroy(q);
  mongoc_collection_destroy(col);
  ad__store_push(st, c);
  return n;
}

/* ---- read side --------------------------------------------------------------- */

static double field(const bson_t *d, const char *k, int *ok)
{
  bson_iter_t it;
  if (bson_iter_init_find(&it, d, k) && BSON_ITER_HOLDS_NUMBER(&it))
    return bson_iter_as_double(&it);
  *ok = 0;
  return 0;
}

/* What one beacon row is matched against, while the rows stream in. */
typedef struct {
  const salt_t *s;
  const ad__metrics_host_t *hosts;
  char **ids;
  size_t n;
  const ad__metrics_query_t *q;
  ad__metrics_sink_t *sink;
} rows_t;

static const char *utf8_field(const bson_t *d, const char *k, const char *dflt)
{
  bson_iter_t it;
  return bson_iter_init_find(&it, d, k) && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL)
                                                                     : dflt;
}

static int wants(const rows_t *r, int res)
{
  return (r->q->resources & (1u << res)) != 0;
}

/* One stored beacon row into the sink: 0, or AD_ENOMEM (stops the walk). */
static int beacon_row(void *user, const bson_t *d)
{
  const rows_t *r = user;
  bson_iter_t it;
  const char *minion = utf8_field(d, "minion", NULL), *beacon = utf8_field(d, "beacon", "");
  int64_t t = bson_iter_init_find(&it, d, "at") && BSON_ITER_HOLDS_DATE_TIME(&it)
                  ? bson_iter_date_time(&it) : 0;
  long h = minion ? ad__metrics_find(r->ids, r->n, minion) : -1;
  int ok = 1, rc = 0;
  if (h < 0 || !t)
    return 0;
  const ad__metrics_host_t *hh = &r->hosts[h];
  if (!strcmp(beacon, "load")) {
    double l1 = field(d, "load1", &ok);
    if (ok && wants(r, AD__RES_CPU))
      rc |= ad__metrics_sink_add(r->sink, (size_t)h, AD__RES_CPU, t,
                                 hh->cores > 0 ? fmin(l1, hh->cores) : l1);
    if (ok && wants(r, AD__RES_LOAD1))
      rc |= ad__metrics_sink_add(r->sink, (size_t)h, AD__RES_LOAD1, t, l1);
  } else if (!strcmp(beacon, "memusage")) {
    double pct = field(d, "mem_pct", &ok);
    if (ok && hh->mem_mb > 0 && wants(r, AD__RES_MEM))
      rc |= ad__metrics_sink_add(r->sink, (size_t)h, AD__RES_MEM, t,
                                 pct / 100.0 * (double)hh->mem_mb);
  } else if (!strcmp(beacon, "diskusage")) {
    double pct = field(d, "disk_pct", &ok);
    if (ok && !strcmp(utf8_field(d, "mount", ""), r->s->disk_mount) && wants(r, AD__RES_DISK))
      rc |= ad__metrics_sink_add(r->sink, (size_t)h, AD__RES_DISK, t, pct / 100.0);
  }
  return rc ? AD_ENOMEM : 0;
}

/* {minion: {$in: ids}, at: {$gte: from, $lte: to}} into `filter`. */
static int query_filter(const salt_t *s, const ad__metrics_host_t *hosts, size_t n,
                        const ad__metrics_query_t *q, char **ids, bson_t *filter,
                        ad_error_t *err)
{
  bson_t in, arr, at;
  int rc = 0;
  BSON_APPEND_DOCUMENT_BEGIN(filter, "minion", &in);
  BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
  for (size_t i = 0; i < n; i++) {
    if (!(ids[i] = ad__metrics_host_id(s->host_id, &hosts[i], err))) {
      rc = AD_EINVAL;
      break;
    }
    char idx[16];
    const char *key;
    bson_uint32_to_string((uint32_t)i, &key, idx, sizeof idx);
    bson_append_utf8(&arr, key, -1, ids[i], -1);
  }
  bson_append_array_end(&in, &arr);
  bson_append_document_end(filter, &in);
  BSON_APPEND_DOCUMENT_BEGIN(filter, "at", &at);
  BSON_APPEND_DATE_TIME(&at, "$gte", q->from_ms);
  BSON_APPEND_DATE_TIME(&at, "$lte", q->to_ms);
  bson_append_document_end(filter, &at);
  return rc;
}

static int salt_query(void *state, const ad__metrics_host_t *hosts, size_t n,
                      const ad__metrics_query_t *q, ad__metrics_sink_t *sink, ad_error_t *err)
{
  salt_t *s = state;
  char **ids = calloc(n, sizeof(char *));
  if (!ids)
    return ad__err(err, AD_ENOMEM, "metrics", "no memory");
  bson_t filter = BSON_INITIALIZER;
  bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(0), "}");
  rows_t rows = {s, hosts, ids, n, q, sink};
  int rc = query_filter(s, hosts, n, q, ids, &filter, err);
  if (!rc)
    rc = ad__store_each(s->st, s->coll, &filter, opts, beacon_row, &rows, err);
  if (rc == AD_ENOMEM)
    ad__err(err, AD_ENOMEM, "metrics", "no memory");
  bson_destroy(opts);
  bson_destroy(&filter);
  for (size_t i = 0; i < n; i++)
    free(ids[i]);
  free(ids);
  return rc;
}

const ad__metrics_backend_t ad__metrics_salt = {"salt", salt_create, salt_query, salt_destroy};

int ad__metrics_salt_target(ad__metrics_t *m, ad__store_t **st, const char **coll,
                            int64_t *expire_s)
{
  salt_t *s = m ? ad__metrics_state(m, &ad__metrics_salt) : NULL;
  if (!s)
    return AD_EINVAL;
  *st = s->st;
  *coll = s->coll;
  *expire_s = s->expire_s;
  return 0;
}
