/*
 * usage.c - per-service samples from the autodeploy_services beacon into
 * service_metrics, and each opened service's `usage` (its p95 over the first
 * measure_after_hours) onto the service document. See usage.h for the event,
 * the documents and who may report what; docs/usage.md for the whole path.
 *
 * Cost per event: one find for the named services ({_id: {$in}}), one
 * insert_many of the accepted samples, and per opened service still in its
 * window and due for a refresh (at most one per usage_refresh_s), one find
 * of its samples ({service, at} index). Nothing is upserted.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "decide/placement.h"
#include "fleet/fleet_private.h"
#include "fleet/usage.h"
#include "store/cursor.h"
#include "store/docs.h"
#include "wire/json.h"

/* ---- decoding (pure) ---------------------------------------------------------- */

static int printable_id(const char *s, size_t max)
{
  size_t n = 0;
  for (; s && s[n]; n++)
    if ((unsigned char)s[n] <= 0x20 || s[n] == 0x7f || s[n] == '$')
      return 0;
  return s && n > 0 && n <= max;
}

/* cpu / mem_mb of one entry: absent is fine, present must be a finite
 * number in range. 0 or the static reason. */
static const char *num_field(const json_t *e, const char *k, double hi, int *has, double *out)
{
  json_t *v = json_object_get(e, k);
  *has = 0;
  if (!v || json_is_null(v))
    return NULL;
  if (!json_is_number(v))
    return !strcmp(k, "cpu") ? "cpu is not a number" : "mem_mb is not a number";
  double d = json_number_value(v);
  if (!isfinite(d) || d < 0 || d > hi)
    return !strcmp(k, "cpu") ? "cpu is outside 0..4096" : "mem_mb is outside 0..67108864";
  *has = 1;
  *out = d;
  return NULL;
}

static void decode_entry(const char *id, const json_t *e, ad__svc_sample_t *s)
{
  memset(s, 0, sizeof *s);
  s->service = id;
  if (!printable_id(id, 160)) {
    s->error = "service id: empty, longer than 160 or not printable";
    return;
  }
  if (!json_is_object(e)) {
    s->error = "must be an object {state, cpu, mem_mb}";
    return;
  }
  const char *st = json_string_value(json_object_get(e, "state"));
  if (!st || (strcmp(st, "up") && strcmp(st, "down"))) {
    s->error = "state must be \"up\" or \"down\"";
    return;
  }
  s->up = !strcmp(st, "up");
  s->reason = json_string_value(json_object_get(e, "reason"));
  if (s->reason && strlen(s->reason) > 200)
    s->reason = NULL; /* a reason is a courtesy: too long, and it is left out */
  if (!s->up)
    return; /* a down service carries no load: none is read, none is stored */
  if ((s->error = num_field(e, "cpu", 4096, &s->has_cpu, &s->cpu)) ||
      (s->error = num_field(e, "mem_mb", 67108864, &s->has_mem, &s->mem_mb)))
    return;
  if (!s->has_cpu && !s->has_mem)
    s->error = "up without cpu or mem_mb";
}

int ad__usage_decode(const char *minion, const json_t *data, ad__svc_sample_t **out,
                     size_t *n, ad_error_t *err)
{
  *out = NULL;
  *n = 0;
  if (!json_is_object(data))
    return ad__err(err, AD_EINVAL, "metrics", "autodeploy_services beacon: data must be an object");
  json_t *id = json_object_get(data, "id");
  if (id && (!json_is_string(id) || !minion || strcmp(json_string_value(id), minion)))
    return ad__err(err, AD_EINVAL, "metrics",
                   "autodeploy_services beacon: \"id\" does not match the minion in the tag (%.60s)",
                   minion ? minion : "none");
  json_t *svcs = json_object_get(data, "services");
  if (!json_is_object(svcs))
    return ad__err(err, AD_EINVAL, "metrics",
                   "autodeploy_services beacon: \"services\" must be an object {id: sample}");
  size_t total = json_object_size(svcs);
  if (total > AD__USAGE_MAX_SERVICES)
    return ad__err(err, AD_EINVAL, "metrics",
                   "autodeploy_services beacon: %zu services, more than %d in one event", total,
                   AD__USAGE_MAX_SERVICES);
  ad__svc_sample_t *s = calloc(total + 1, sizeof *s);
  if (!s)
    return ad__err(err, AD_ENOMEM, "metrics", "no memory");
  const char *k;
  json_t *v;
  size_t i = 0;
  json_object_foreach(svcs, k, v)
    decode_entry(k, v, &s[i++]);
  *out = s;
  *n = i;
  return 0;
}

/* ---- the summary (pure) --------------------------------------------------------- */

json_t *ad__usage_summary(double *cpu, size_t n_cpu, double *mem, size_t n_mem,
                          size_t min_samples, int64_t from_ms, int64_t to_ms, int64_t now_ms,
                          const char *source)
{
  size_t n = n_cpu > n_mem ? n_cpu : n_mem;
  if (n == 0 || n < min_samples)
    return NULL;
  char from[32], to[32], at[32];
  ad__iso_ms(from_ms, from);
  ad__iso_ms(to_ms, to);
  ad__iso_ms(now_ms, at);
  json_t *u = json_pack("{s:I,s:{s:s,s:s},s:I,s:I,s:b,s:s,s:I,s:s}", "samples", (json_int_t)n,
                        "window", "from", from, "to", to, "from_ms", (json_int_t)from_ms, "to_ms",
                        (json_int_t)to_ms, "final", now_ms > to_ms, "at", at, "at_ms",
                        (json_int_t)now_ms, "source", source);
  if (u && n_cpu)
    json_object_set_new(u, "cpu", json_real(ad__p95(cpu, n_cpu)));
  if (u && n_mem)
    json_object_set_new(u, "mem_mb", json_real(ad__p95(mem, n_mem)));
  return u;
}

/* The values of pts[0..n) timed in [from, to], into a new array (*out,
 * free()); their count, or (size_t)-1 on no memory. */
static size_t in_window(const ad__metrics_point_t *pts, size_t n, int64_t from, int64_t to,
                        double **out)
{
  size_t k = 0;
  *out = malloc((n + 1) * sizeof **out);
  if (!*out)
    return (size_t)-1;
  for (size_t i = 0; i < n; i++)
    if (pts[i].at_ms >= from && pts[i].at_ms <= to)
      (*out)[k++] = pts[i].v;
  return k;
}

json_t *ad__usage_from_series(const ad__metrics_point_t *cpu, size_t n_cpu,
                              const ad__metrics_point_t *mem, size_t n_mem, size_t min_samples,
                              int64_t from_ms, int64_t to_ms, int64_t now_ms, const char *source)
{
  int64_t end = to_ms < now_ms ? to_ms : now_ms;
  double *c = NULL, *m = NULL;
  size_t nc = in_window(cpu, n_cpu, from_ms, end, &c);
  size_t nm = in_window(mem, n_mem, from_ms, end, &m);
  json_t *u = nc == (size_t)-1 || nm == (size_t)-1
                  ? NULL
                  : ad__usage_summary(c, nc, m, nm, min_samples, from_ms, to_ms, now_ms, source);
  free(c);
  free(m);
  return u;
}

/* ---- the engine side -------------------------------------------------------------- */

const char *ad__usage_coll(const ad__fleet_t *f)
{
  return f->c.service_metrics ? f->c.service_metrics : AD__USAGE_COLL;
}

static void append_sample(bson_t *doc, const ad__svc_sample_t *s, const char *minion, int64_t at)
{
  bson_init(doc);
  BSON_APPEND_UTF8(doc, "service", s->service);
  BSON_APPEND_UTF8(doc, "minion", minion);
  BSON_APPEND_DATE_TIME(doc, "at", at);
  BSON_APPEND_BOOL(doc, "up", s->up);
  if (s->has_cpu)
    BSON_APPEND_DOUBLE(doc, "cpu", s->cpu);
  if (s->has_mem)
    BSON_APPEND_DOUBLE(doc, "mem_mb", s->mem_mb);
  if (!s->up && s->reason && bson_utf8_validate(s->reason, strlen(s->reason), false))
    BSON_APPEND_UTF8(doc, "reason", s->reason);
}

static int insert_samples(ad__fleet_t *f, bson_t *docs, size_t n, ad_error_t *err)
{
  if (!n)
    return 0;
  const bson_t **pp = malloc(n * sizeof *pp);
  if (!pp)
    return ad__err(err, AD_ENOMEM, "fleet", "no memory");
  for (size_t i = 0; i < n; i++)
    pp[i] = &docs[i];
  mongoc_client_t *c = ad__store_pop(f->env.store);
  mongoc_collection_t *col = ad__store_coll(f->env.store, c, ad__usage_coll(f));
  bson_error_t be;
  int rc = 0;
  if (!mongoc_collection_insert_many(col, pp, n, NULL, NULL, &be))
    rc = ad__err(err, ad__store_error_is_transient(&be) ? AD_ECONNECT : AD_EIO, "store",
                 "insert into %s: %s", ad__usage_coll(f), be.message);
  mongoc_collection_destroy(col);
  ad__store_push(f->env.store, c);
  free(pp);
  return rc;
}

/* A growable array of samples. */
typedef struct {
  double *v;
  size_t n, cap;
} vec_t;

static int push(vec_t *a, double v)
{
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 256;
    double *p = realloc(a->v, nc * sizeof *p);
    if (!p)
      return AD_ENOMEM;
    a->v = p;
    a->cap = nc;
  }
  a->v[a->n++] = v;
  return 0;
}

typedef struct {
  vec_t cpu, mem;
} series_t;

static int sample_row(void *user, const bson_t *d)
{
  series_t *s = user;
  bson_iter_t it;
  if (bson_iter_init_find(&it, d, "cpu") && BSON_ITER_HOLDS_NUMBER(&it) &&
      push(&s->cpu, bson_iter_as_double(&it)))
    return AD_ENOMEM;
  if (bson_iter_init_find(&it, d, "mem_mb") && BSON_ITER_HOLDS_NUMBER(&it) &&
      push(&s->mem, bson_iter_as_double(&it)))
    return AD_ENOMEM;
  return 0;
}

/* Re-read the service's up samples in [opened, opened + measure_after] and
 * write its usage (only while it is still placed on `minion`). 1 written, 0
 * not yet (too few samples), <0 + err. */
int ad__usage_refresh(ad__fleet_t *f, const char *sid, const char *minion, int64_t opened_ms,
                      int64_t now, ad_error_t *err)
{
  int64_t to = opened_ms + f->c.measure_after_hours * 3600000LL;
  bson_t *q = BCON_NEW("service", BCON_UTF8(sid), "at", "{", "$gte", BCON_DATE_TIME(opened_ms),
                       "$lte", BCON_DATE_TIME(to), "}", "up", BCON_BOOL(true));
  bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(0), "cpu", BCON_INT32(1), "mem_mb",
                          BCON_INT32(1), "}");
  series_t s = {{0}, {0}};
  int rc = ad__store_each(f->env.store, ad__usage_coll(f), q, opts, sample_row, &s, err);
  bson_destroy(q);
  bson_destroy(opts);
  if (rc == AD_ENOMEM)
    ad__err(err, AD_ENOMEM, "fleet", "usage of %s: no memory", sid);
  json_t *u = rc ? NULL : ad__usage_summary(s.cpu.v, s.cpu.n, s.mem.v, s.mem.n,
                                            (size_t)f->c.usage_min_samples, opened_ms, to, now,
                                            AD__USAGE_SOURCE_BEACON);
  free(s.cpu.v);
  free(s.mem.v);
  if (rc || !u)
    return rc;
  int64_t n = ad__docs_update(f->env.store, f->c.services,
                              json_pack("{s:s,s:s}", "_id", sid, "minion", minion),
                              json_pack("{s:{s:o}}", "$set", "usage", u), err);
  return n < 0 ? (int)AD_EIO : n > 0;
}

/* The named services' placement and usage, by id. NULL + err. */
static json_t *services_by_id(ad__fleet_t *f, const ad__svc_sample_t *s, size_t n, ad_error_t *err)
{
  json_t *ids = json_array();
  for (size_t i = 0; ids && i < n; i++)
    if (!s[i].error)
      json_array_append_new(ids, json_string(s[i].service));
  if (!ids)
    return ad__err(err, AD_ENOMEM, "fleet", "no memory"), NULL;
  json_t *rows = ad__docs_find(f->env.store, f->c.services, json_pack("{s:{s:o}}", "_id", "$in", ids),
                               json_pack("{s:{s:i,s:i,s:i,s:i}}", "projection", "minion", 1, "state", 1,
                                         "opened_at_ms", 1, "usage", 1), err);
  if (!rows)
    return NULL;
  json_t *by = json_object();
  size_t i;
  json_t *d;
  json_array_foreach(rows, i, d)
    if (by)
      json_object_set(by, ad__jstr(d, "_id"), d);
  json_decref(rows);
  return by;
}

/* Due for a usage refresh: opened, its window not closed when the last
 * usage was written, and the last one older than usage_refresh_s. */
int ad__usage_refresh_due(const ad__fleet_t *f, const json_t *doc, int64_t now)
{
  json_t *op = json_object_get(doc, "opened_at_ms");
  if (strcmp(ad__jstr(doc, "state"), "opened") || !json_is_integer(op) || f->c.measure_after_hours == 0)
    return 0;
  json_t *u = json_object_get(doc, "usage");
  if (!json_is_object(u))
    return 1;
  if (json_is_true(json_object_get(u, "final")))
    return 0;
  int64_t at = json_integer_value(json_object_get(u, "at_ms"));
  int64_t to = json_integer_value(op) + f->c.measure_after_hours * 3600000LL;
  return now > to || now - at >= f->c.usage_refresh_s * 1000LL;
}

#define LOG_MAX 5 /* refusal lines per event; the rest are counted */

/* salt/beacon/<minion>/autodeploy_services/: accept the samples of services
 * placed on <minion>, refuse (count, log) the rest, store, refresh usage. */
int ad__fleet_on_usage(ad__fleet_t *f, const char *minion, const json_t *data, const char *tag)
{
  ad_error_t err = {0};
  ad__svc_sample_t *s = NULL;
  size_t n = 0;
  f->usage.events++;
  if (ad__usage_decode(minion, data, &s, &n, &err)) {
    /* data.id another minion: a claim refused (a minion's event.fire_master has
     * the sender's id there, set by the master), else data that is not a sample */
    json_t *id = json_object_get(data, "id");
    if (id && (!json_is_string(id) || strcmp(json_string_value(id), minion)))
      f->usage.refused++;
    else
      f->usage.bad++;
    AD_LOG_W("fleet", "%s: %s", tag, err.message);
    return 1;
  }
  int64_t now = ad__now_ms();
  json_t *by = n ? services_by_id(f, s, n, &err) : json_object();
  bson_t *docs = calloc(n + 1, sizeof *docs);
  size_t nd = 0, refused = 0, bad = 0;
  int rc = 0;
  if (!by || !docs) {
    f->usage.store_errors++;
    AD_LOG_W("fleet", "%s: %zu samples not stored: %s", tag, n, by ? "no memory" : err.message);
    rc = 1;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    if (s[i].error) {
      if (bad++ + refused < LOG_MAX)
        AD_LOG_W("fleet", "%s: services.%.160s refused: %s", tag, s[i].service, s[i].error);
      continue;
    }
    json_t *doc = json_object_get(by, s[i].service);
    const char *placed = ad__jstr(doc, "minion");
    if (!doc || strcmp(placed, minion)) {
      if (bad + refused++ < LOG_MAX)
        AD_LOG_W("fleet", "%s: sample for %.160s refused: %s%.128s%s", tag, s[i].service,
                 !doc ? "no such service" : *placed ? "it is placed on " : "it is not placed",
                 doc ? placed : "", doc && *placed ? ", not on this minion" : "");
      continue;
    }
    append_sample(&docs[nd++], &s[i], minion, now);
  }
  if (bad + refused > LOG_MAX) /* one event cannot flood the master's log */
    AD_LOG_W("fleet", "%s: %zu more samples refused (%zu in all; usage.refused, usage.bad)", tag,
             bad + refused - LOG_MAX, bad + refused);
  f->usage.samples += (int64_t)n;
  f->usage.refused += (int64_t)refused;
  f->usage.bad += (int64_t)bad;
  if (insert_samples(f, docs, nd, &err)) {
    f->usage.store_errors++;
    AD_LOG_W("fleet", "%s: %zu samples not stored: %s", tag, nd, err.message);
    rc = 1;
    goto done;
  }
  f->usage.stored += (int64_t)nd;
  for (size_t i = 0; i < n && !f->usage_metrics; i++) { /* else usage_metrics.c writes usage */
    json_t *doc = s[i].error ? NULL : json_object_get(by, s[i].service);
    if (!doc || !s[i].up || strcmp(ad__jstr(doc, "minion"), minion) || !ad__usage_refresh_due(f, doc, now))
      continue;
    int r = ad__usage_refresh(f, s[i].service, minion,
                              json_integer_value(json_object_get(doc, "opened_at_ms")), now, &err);
    if (r < 0)
      AD_LOG_W("fleet", "usage of %.160s: %s", s[i].service, err.message);
    else if (r > 0)
      f->usage.refreshed++;
  }
done:
  for (size_t i = 0; i < nd; i++)
    bson_destroy(&docs[i]);
  free(docs);
  json_decref(by);
  free(s);
  return rc;
}

/* Indexes (once; retried at each upkeep until they exist) and pruning,
 * on the fleet's metrics_prune_interval timer. Always pruned by the engine:
 * one delete_many every interval is cheap, and then FerretDB and MongoDB
 * behave the same. */
void ad__usage_upkeep(ad__fleet_t *f, int64_t now)
{
  const char *coll = ad__usage_coll(f);
  ad_error_t err = {0};
  if (!f->usage_indexed) {
    mongoc_client_t *c = ad__store_pop(f->env.store);
    bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(coll), "indexes", "[",
                           "{", "key", "{", "service", BCON_INT32(1), "at", BCON_INT32(1), "}",
                           "name", BCON_UTF8("service_1_at_1"), "}",
                           "{", "key", "{", "at", BCON_INT32(1), "}", "name", BCON_UTF8("at_1"), "}",
                           "]");
    bson_t reply;
    bson_error_t be;
    if (mongoc_client_command_simple(c, ad__store_db(f->env.store), cmd, NULL, &reply, &be))
      f->usage_indexed = 1;
    else
      AD_LOG_W("fleet", "service_metrics indexes on %s: %s (retried at the next prune)", coll,
               be.message);
    bson_destroy(&reply);
    bson_destroy(cmd);
    ad__store_push(f->env.store, c);
  }
  int64_t expire = f->c.service_metrics_expire_s;
  int64_t n = ad__metrics_salt_prune(f->env.store, coll, now - expire * 1000, &err);
  if (n < 0)
    AD_LOG_W("fleet", "pruning %s: %s", coll, err.message);
  else if (n > 0)
    AD_LOG_I("fleet", "pruned %lld service samples older than %llds", (long long)n, (long long)expire);
}

json_t *ad__fleet_usage_stats(const ad__fleet_t *f)
{
  return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "source",
                   f->usage_metrics ? ad__metrics_backend(f->metrics) : "beacon", "events",
                   (json_int_t)f->usage.events, "samples", (json_int_t)f->usage.samples, "stored",
                   (json_int_t)f->usage.stored, "refused", (json_int_t)f->usage.refused, "bad",
                   (json_int_t)f->usage.bad, "refreshed", (json_int_t)f->usage.refreshed,
                   "store_errors", (json_int_t)f->usage.store_errors, "queries",
                   (json_int_t)f->usage.queries, "query_errors",
                   (json_int_t)f->usage.query_errors);
}
