/*
 * stats.c - the engine's counters as one JSON object: the bus's, and the
 * returns batcher's under "returns" when it runs (docs/bus.md has the
 * meaning of each counter).
 */
#include "core/clock.h"
#include "engine/engine_private.h"

static json_t *bus_stats(ad_bus_t *bus)
{
  static const char *const framings[] = {"auto", "raw", "length"};
  ad_bus_stats_t s = {.struct_size = sizeof s};
  if (ad_bus_stats(bus, &s, NULL))
    return NULL;
  return json_pack(
      "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:s}",
      "events", (json_int_t)s.events, "bytes", (json_int_t)s.bytes, "matched",
      (json_int_t)s.matched, "handled", (json_int_t)s.handled, "handler_errors",
      (json_int_t)s.handler_errors, "decode_errors", (json_int_t)s.decode_errors,
      "oversized", (json_int_t)s.oversized, "reconnects",
      (json_int_t)s.reconnects, "queue_depth", (json_int_t)s.queue_depth,
      "queue_full", (json_int_t)s.queue_full, "dropped", (json_int_t)s.dropped,
      "fanout_sent", (json_int_t)s.fanout_sent, "fanout_dropped",
      (json_int_t)s.fanout_dropped, "fired", (json_int_t)s.fired, "connected",
      s.connected, "framing", framings[s.framing]);
}

static json_t *returns_stats(ad__returns_t *returns)
{
  ad__returns_stats_t r;
  ad__returns_stats(returns, &r);
  char oldest[32];
  if (r.spool_oldest_ms)
    ad__iso_ms(r.spool_oldest_ms, oldest);
  return json_pack(
      "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s?,s:I,s:b}",
      "received", (json_int_t)r.received, "stored", (json_int_t)r.stored,
      "spooled", (json_int_t)r.spooled, "replayed", (json_int_t)r.replayed,
      "rejected", (json_int_t)r.rejected, "bad", (json_int_t)r.bad,
      "queued", (json_int_t)r.queued, "spool_records", (json_int_t)r.spool_records,
      "spool_bytes", (json_int_t)r.spool_bytes, "spool_oldest",
      r.spool_oldest_ms ? oldest : NULL, "spool_errors", (json_int_t)r.spool_errors,
      "store_down", r.store_down);
}

char *ad_engine_stats_json(ad_engine_t *eng)
{
  json_t *j = bus_stats(eng->bus);
  if (j && eng->returns) {
    json_t *r = returns_stats(eng->returns);
    if (!r || json_object_set_new(j, "returns", r)) {
      json_decref(j); /* set_new took r, even on failure */
      return NULL;
    }
  }
  if (j && eng->tasks.store) { /* refusals and stale returns (docs/tasks.md) */
    json_t *t = ad__tasks_stats_json(&eng->tasks);
    if (!t || json_object_set_new(j, "tasks", t)) {
      json_decref(j);
      return NULL;
    }
  }
  if (j && eng->registry) { /* what the hints came to (docs/registry.md) */
    json_t *r = ad__registry_stats_json(eng->registry);
    if (!r || json_object_set_new(j, "registry", r)) {
      json_decref(j);
      return NULL;
    }
  }
  if (j && eng->kafka) { /* the Kafka feed (docs/kafka.md) */
    json_t *k = ad__kafka_stats_json(eng->kafka);
    if (!k || json_object_set_new(j, "kafka", k)) {
      json_decref(j);
      return NULL;
    }
  }
  if (j && eng->fleet) { /* per-service samples and refusals (docs/usage.md) */
    json_t *u = ad__fleet_usage_stats(eng->fleet);
    if (!u || json_object_set_new(j, "usage", u)) {
      json_decref(j);
      return NULL;
    }
  }
  if (j && eng->purchase) { /* runs, orders, refused decisions (docs/purchase.md) */
    json_t *p = ad__purchase_stats_json(eng->purchase);
    if (!p || json_object_set_new(j, "purchase", p)) {
      json_decref(j);
      return NULL;
    }
  }
  if (j && *eng->backfill.mark_path) { /* job-cache reconciliation (docs/returns.md) */
    json_t *b = ad__engine_backfill_stats(eng);
    if (!b || json_object_set_new(j, "backfill", b)) {
      json_decref(j);
      return NULL;
    }
  }
  if (j) { /* steps of the wall clock seen, task times moved (docs/reliability.md) */
    json_t *c = ad__clock_steps_stats(&eng->clock);
    if (!c || json_object_set_new(j, "clock", c)) {
      json_decref(j);
      return NULL;
    }
  }
  if (j && eng->leader) { /* this engine's view of the leader lease */
    json_t *l = ad__engine_leader_stats(eng);
    if (!l || json_object_set_new(j, "leader", l)) {
      json_decref(j);
      return NULL;
    }
  }
  char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  return out;
}
