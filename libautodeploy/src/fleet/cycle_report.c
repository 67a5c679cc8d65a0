/*
 * cycle_report.c - the engine's side of the cycle: the tick that runs it
 * every cycle_interval (and the load history's upkeep), the report kept of
 * the last one, and the counters for /metrics.
 */
#include "core/clock.h"
#include "core/log_private.h"
#include "fleet/fleet_private.h"
#include "store/docs.h"

/* The last cycle that ran, kept for the HTTP server's readers. */
static void keep_report(ad__fleet_t *f, json_t *r, int64_t ms)
{
  if (r && !json_is_true(json_object_get(r, "ran")))
    return; /* another engine holds the lease: its numbers are its own */
  atomic_fetch_add(&f->cycle_runs, 1);
  atomic_store(&f->cycle_last_ms, ms);
  if (!r || json_object_get(r, "error")) {
    atomic_fetch_add(&f->cycle_failures, 1);
    if (!r)
      return;
  } else {
    atomic_store(&f->cycle_last_ok_ms, ad__now_ms());
  }
  pthread_mutex_lock(&f->last_lock);
  json_decref(f->last_report);
  f->last_report = json_incref(r);
  pthread_mutex_unlock(&f->last_lock);
}

json_t *ad__fleet_last_report(ad__fleet_t *f)
{
  json_t *out = json_object();
  pthread_mutex_lock(&f->last_lock);
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(f->last_report, "platforms"), i, p)
    json_object_set_new(out, ad__jstr(p, "platform") ? ad__jstr(p, "platform") : "?", json_deep_copy(p));
  if (f->last_report)
    json_object_set(out, "_at", json_object_get(f->last_report, "at"));
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

int64_t ad__fleet_tick(ad__fleet_t *f)
{
  int64_t now = ad__now_ms();
  if (f->c.enabled && now >= f->next_cycle_ms) {
    f->next_cycle_ms = now + f->c.cycle_interval * 1000LL;
    ad_error_t err;
    json_t *r = ad__fleet_cycle(f, NULL, &err);
    ad__fleet_note_cycle(f, r, &err);
    keep_report(f, r, ad__now_ms() - now);
    if (!r) {
      AD_LOG_E("fleet", "cycle: %s", err.message);
    } else {
      size_t i, placed = 0, waiting = 0, created = 0;
      json_t *p;
      json_array_foreach(json_object_get(r, "platforms"), i, p) {
        placed += json_array_size(json_object_get(p, "placed"));
        waiting += json_array_size(json_object_get(p, "waiting"));
        created += json_array_size(json_object_get(p, "created"));
      }
      if (json_is_true(json_object_get(r, "ran")))
        AD_LOG_I("fleet", "cycle: %zu platforms, %lld hosts, %zu created, %zu placed, %zu waiting (%lld ms)",
                 json_array_size(json_object_get(r, "platforms")),
                 (long long)json_integer_value(json_object_get(r, "hosts")), created, placed, waiting,
                 (long long)json_integer_value(json_object_get(r, "ms")));
      else
        AD_LOG_I("fleet", "cycle skipped: lease held by %s", ad__jstr(r, "skipped"));
      json_decref(r);
    }
  }
  ad__store_t *st;
  const char *coll;
  int64_t expire;
  int prune = now >= f->next_prune_ms;
  if (prune) {
    f->next_prune_ms = now + f->c.metrics_prune_interval * 1000LL;
    ad__usage_upkeep(f, now); /* service_metrics, whatever the load source */
  }
  if (prune && ad__metrics_salt_target(f->metrics, &st, &coll, &expire) == 0) {
    if (!f->metrics_indexed) {
      ad_error_t err;
      if (ad__metrics_salt_init(st, coll, expire, &f->metrics_ttl, &err) == 0)
        f->metrics_indexed = 1;
      else
        AD_LOG_W("fleet", "load history indexes: %s (retried at the next prune)", err.message);
    }
    if (!f->metrics_ttl) { /* the server has no TTL indexes (FerretDB): prune ourselves */
      ad_error_t err;
      int64_t n = ad__metrics_salt_prune(st, coll, now - expire * 1000, &err);
      if (n < 0)
        AD_LOG_W("fleet", "pruning the load history: %s", err.message);
      else if (n > 0)
        AD_LOG_I("fleet", "pruned %lld load samples older than %llds", (long long)n, (long long)expire);
    }
  }
  int64_t next = f->next_cycle_ms < f->next_prune_ms ? f->next_cycle_ms : f->next_prune_ms;
  return next - ad__now_ms();
}
