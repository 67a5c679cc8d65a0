/*
 * cycle_report.c - the engine's side of the cycle: the tick that runs it
 * every cycle_interval (and the load history's upkeep), the one report kept
 * of the last one for the status document, and the counters for /metrics
 * (what each cycle saw is kept on the platform and host documents by
 * cycle.c, whoever ran it: /api/v1 and /metrics read it there).
 *
 * The kept report is f->last, under f->last_lock (the engine loop writes
 * it; the status timer reads it):
 *   {"at":      when the engine's last tick noted its cycle,
 *    "ran":     whether that cycle ran,
 *    "error":   why it failed (when ad__fleet_cycle returned nothing), or
 *    "skipped": the lease holder (when another engine held the lease),
 *    "report":  ad__cycle_run's answer of the last cycle that ran}
 * A skipped or failed tick leaves "report" as it was: its numbers are not
 * this engine's. The view: ad__fleet_last_cycle_summary (the status
 * document's `last_cycle`: the last tick, summed up).
 */
#include "core/clock.h"
#include "core/log_private.h"
#include "fleet/fleet_private.h"
#include "store/docs.h"

/* The number of entries of `key` over every platform's report. */
static json_int_t total(const json_t *platforms, const char *key)
{
  size_t i;
  json_t *p;
  json_int_t n = 0;
  json_array_foreach(platforms, i, p)
    n += (json_int_t)json_array_size(json_object_get(p, key));
  return n;
}

/* The counters of /metrics: a cycle that ran (or failed to) counts; one
 * skipped because another engine holds the lease does not. */
static void count_cycle(ad__fleet_t *f, const json_t *r, int64_t ms)
{
  if (r && !json_is_true(json_object_get(r, "ran")))
    return; /* another engine holds the lease: its numbers are its own */
  atomic_fetch_add(&f->cycle_runs, 1);
  atomic_store(&f->cycle_last_ms, ms);
  if (!r || json_object_get(r, "error"))
    atomic_fetch_add(&f->cycle_failures, 1);
  else
    atomic_store(&f->cycle_last_ok_ms, ad__now_ms());
}

/* The outcome of this tick's cycle `r` (NULL: it failed with `err`) as
 * f->last; the report of a cycle that ran replaces the kept one. */
static void keep_cycle(ad__fleet_t *f, json_t *r, const ad_error_t *err)
{
  char iso[32];
  ad__iso_ms(ad__now_ms(), iso);
  int ran = r && json_is_true(json_object_get(r, "ran"));
  json_t *k = json_pack("{s:s,s:b}", "at", iso, "ran", ran);
  if (!k)
    return;
  int bad = 0;
  if (!r)
    bad = json_object_set_new(k, "error", json_string(err ? err->message : "failed"));
  else if (!ran)
    bad = json_object_set_new(k, "skipped", json_string(ad__jstr(r, "skipped")));
  pthread_mutex_lock(&f->last_lock);
  json_t *report = ran ? r : json_object_get(f->last, "report");
  if (!bad && report)
    bad = json_object_set(k, "report", report);
  if (!bad) {
    json_decref(f->last);
    f->last = k;
    k = NULL;
  }
  pthread_mutex_unlock(&f->last_lock);
  json_decref(k);
}

void ad__fleet_keep_cycle(ad__fleet_t *f, json_t *r, const ad_error_t *err, int64_t ms)
{
  count_cycle(f, r, ms);
  keep_cycle(f, r, err);
}

/* One platform of the summary: its reserve target, its error if any, and
 * how many services it created, placed and left waiting. */
static json_t *platform_summary(const json_t *p)
{
  json_t *res = json_object_get(json_object_get(p, "reserve"), "size");
  json_t *s = json_pack("{s:O}", "reserve_target", res ? res : json_null());
  if (!s || (json_object_get(p, "error") && json_object_set(s, "error", json_object_get(p, "error"))))
    goto fail;
  static const char *const COUNTS[] = {"created", "placed", "waiting", NULL};
  for (int k = 0; COUNTS[k]; k++)
    if (json_object_set_new(s, COUNTS[k],
                            json_integer((json_int_t)json_array_size(json_object_get(p, COUNTS[k])))))
      goto fail;
  return s;
fail:
  json_decref(s);
  return NULL;
}

/* The report `r` of a cycle that ran, summed up into `s`. 0 or -1. */
static int sum_up(json_t *s, const json_t *r)
{
  json_t *plats = json_object_get(r, "platforms"), *per = json_object(), *p;
  size_t i;
  int bad = !per;
  json_array_foreach(plats, i, p) {
    if (bad)
      break;
    bad = json_object_set_new(per, ad__jstr(p, "platform"), platform_summary(p));
  }
  bad = bad || json_object_set_new(s, "ms", json_integer(ad__jint(r, "ms"))) ||
        json_object_set_new(s, "hosts", json_integer(ad__jint(r, "hosts"))) ||
        json_object_set_new(s, "created", json_integer(total(plats, "created"))) ||
        json_object_set_new(s, "placed", json_integer(total(plats, "placed"))) ||
        json_object_set_new(s, "waiting", json_integer(total(plats, "waiting")));
  if (bad) {
    json_decref(per);
    return -1;
  }
  if (json_object_set_new(s, "platforms", per))
    return -1;
  if (json_object_get(r, "load_error") && json_object_set(s, "load_error", json_object_get(r, "load_error")))
    return -1;
  return 0;
}

/* The status view of the kept report `k`: {at, ran, ms, hosts, created,
 * placed, waiting, platforms: {code: {reserve_target, created, placed,
 * waiting}}}, or {at, ran: false, skipped | error}. NULL: no memory. */
static json_t *summary(const json_t *k)
{
  json_t *s = json_pack("{s:O,s:O}", "at", json_object_get(k, "at"), "ran", json_object_get(k, "ran"));
  if (!s)
    return NULL;
  int bad;
  if (json_object_get(k, "error"))
    bad = json_object_set(s, "error", json_object_get(k, "error"));
  else if (!json_is_true(json_object_get(k, "ran")))
    bad = json_object_set(s, "skipped", json_object_get(k, "skipped"));
  else
    bad = sum_up(s, json_object_get(k, "report"));
  if (bad) {
    json_decref(s);
    return NULL;
  }
  return s;
}

json_t *ad__fleet_last_cycle_summary(ad__fleet_t *f)
{
  pthread_mutex_lock(&f->last_lock);
  json_t *out = f->last ? summary(f->last) : json_null();
  pthread_mutex_unlock(&f->last_lock);
  return out;
}

json_t *ad__fleet_cycle_stats(ad__fleet_t *f)
{
  long long ok = atomic_load(&f->cycle_last_ok_ms);
  return json_pack("{s:I,s:I,s:f,s:o?,s:s}", "runs", (json_int_t)atomic_load(&f->cycle_runs),
                   "failures", (json_int_t)atomic_load(&f->cycle_failures), "last_seconds",
                   atomic_load(&f->cycle_last_ms) / 1000.0, "last_success_time",
                   ok ? json_real(ok / 1000.0) : NULL, "owner", f->owner);
}

/* The cycle's one line in the log. */
static void log_cycle(const json_t *r, const ad_error_t *err)
{
  const json_t *plats = json_object_get(r, "platforms");
  if (!r)
    AD_LOG_E("fleet", "cycle: %s", err->message);
  else if (json_is_true(json_object_get(r, "ran")))
    AD_LOG_I("fleet", "cycle: %zu platforms, %lld hosts, %lld created, %lld placed, %lld waiting (%lld ms)",
             json_array_size(plats), (long long)ad__jint(r, "hosts"),
             (long long)total(plats, "created"), (long long)total(plats, "placed"),
             (long long)total(plats, "waiting"), (long long)ad__jint(r, "ms"));
  else
    AD_LOG_I("fleet", "cycle skipped: lease held by %s", ad__jstr(r, "skipped"));
}

/* The cycle, when it is due: run, counted, kept, logged. */
static void tick_cycle(ad__fleet_t *f, int64_t now)
{
  if (!f->c.enabled || now < f->next_cycle_ms)
    return;
  f->next_cycle_ms = now + f->c.cycle_interval * 1000LL;
  ad_error_t err;
  json_t *r = ad__fleet_cycle(f, NULL, &err);
  ad__fleet_keep_cycle(f, r, &err, ad__now_ms() - now);
  log_cycle(r, &err);
  json_decref(r);
}

void ad__fleet_index_metrics(ad__fleet_t *f)
{
  ad__store_t *st;
  const char *coll;
  int64_t expire;
  if (f->metrics_indexed || ad__metrics_salt_target(f->metrics, &st, &coll, &expire) != 0)
    return;
  ad_error_t err;
  if (ad__metrics_salt_init(st, coll, expire, &f->metrics_ttl, &err) == 0)
    f->metrics_indexed = 1;
  else
    AD_LOG_W("fleet", "load history indexes: %s (retried at the next prune)", err.message);
}

/* The load history's upkeep, when it is due: service usage, the salt
 * source's indexes, and pruning where the server has no TTL indexes. */
static void tick_prune(ad__fleet_t *f, int64_t now)
{
  if (now < f->next_prune_ms)
    return;
  f->next_prune_ms = now + f->c.metrics_prune_interval * 1000LL;
  ad__usage_upkeep(f, now); /* service_metrics, whatever the load source */
  ad__fleet_index_metrics(f);
  ad__store_t *st;
  const char *coll;
  int64_t expire;
  if (f->metrics_ttl || ad__metrics_salt_target(f->metrics, &st, &coll, &expire) != 0)
    return; /* TTL indexes prune (or the source is not ours) */
  ad_error_t err; /* the server has no TTL indexes (FerretDB): prune ourselves */
  int64_t n = ad__metrics_salt_prune(st, coll, now - expire * 1000, &err);
  if (n < 0)
    AD_LOG_W("fleet", "pruning the load history: %s", err.message);
  else if (n > 0)
    AD_LOG_I("fleet", "pruned %lld load samples older than %llds", (long long)n, (long long)expire);
}

int64_t ad__fleet_tick(ad__fleet_t *f)
{
  int64_t now = ad__now_ms();
  tick_cycle(f, now);
  tick_prune(f, now);
  int64_t next = f->next_cycle_ms < f->next_prune_ms ? f->next_cycle_ms : f->next_prune_ms;
  return next - ad__now_ms();
}
