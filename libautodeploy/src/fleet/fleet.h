/* fleet.h - platforms, game-server services, the reserve/placement cycle.
 *
 *   platforms: {code, state, pillar template, profiles, regions, footprint,
 *               reserve policy, deploy settings}              (docs/placement.md)
 *   services:  pending -> deploying -> deployed -> opened -> retired
 *              pending|waiting_resources -> deploying; deploying -> failed
 *
 * Every cycle_interval (and on `salt-run autodeploy.cycle`), under a lease so
 * two cycles never overlap: per platform, reserve = f(opening rate); short
 * -> new pending services; waiting_resources first, then pending, are placed
 * on the least-loaded fitting ready host (placement.c, load from
 * metrics.c) and deployed through the task system; no fit -> waiting. */
#ifndef AD_FLEET_H
#define AD_FLEET_H

#include <jansson.h>

#include "autodeploy/bus.h"
#include "store/store.h"
#include "tasks/tasks.h"

typedef struct ad__fleet ad__fleet_t;

typedef struct {
  ad__store_t *store;
  const ad__tasks_ctx_t *tasks;
  ad_bus_t *bus;
  const char *key_path;
  const char *hosts_collection; /* the registry's */
  const char *mongo_uri, *mongo_db; /* for the default metrics source */
  /* The engine's leadership (store/lease.h), checked before every write of
   * a cycle: the term held, or 0 to refuse the write. NULL in a runner's
   * process, where the cycle lease alone fences the cycle. */
  int64_t (*fence)(void *user, const char *what);
  void *fence_user;
} ad__fleet_env_t;

/* conf: the engine's "placement" object. NULL + err naming the key. */
ad__fleet_t *ad__fleet_new(const ad__fleet_env_t *env, const json_t *conf, ad_error_t *err);
void ad__fleet_destroy(ad__fleet_t **f_p);

/* Engine side. */
int64_t ad__fleet_tick(ad__fleet_t *f); /* cycle + metrics upkeep; ms to the next */
int ad__fleet_on_opened(ad__fleet_t *f, ad_event_t *ev); /* autodeploy/service/<id>/opened */
/* Apply one opening (deployed -> opened), idempotently: fleet.c says how. */
enum { AD__OPENING_APPLIED = 0, AD__OPENING_ALREADY = 1, AD__OPENING_REFUSED = 2 };
int ad__fleet_apply_opening(ad__fleet_t *f, const char *id, int64_t at_ms, const char *actor,
                            ad_error_t *err);
int ad__fleet_on_beacon(ad__fleet_t *f, ad_event_t *ev); /* salt/beacon/<id>/<beacon>/ */
void ad__fleet_task_end(void *f, const json_t *task);
/* usage.c's counters {events, samples, stored, refused, bad, refreshed,
 * store_errors} as a new object (caller decrefs). */
json_t *ad__fleet_usage_stats(const ad__fleet_t *f);

/* The report kept of the engine's last cycle (cycle_report.c), summed up
 * for the status document (the API and /metrics read what each cycle leaves
 * on the documents: docs/placement.md): {at, ran, ms, hosts, created,
 * placed, waiting, skipped | error, platforms: {code: {reserve_target,
 * created, placed, waiting}}}, a new reference; null before the first
 * cycle. */
json_t *ad__fleet_last_cycle_summary(ad__fleet_t *f);
/* {runs, failures, last_seconds, last_success_time (null before one), owner} */
json_t *ad__fleet_cycle_stats(ad__fleet_t *f);
/* Status (fleet_status.c). The fleet's state from the store: {"services":
 * {platform: {state: n}}, "waiting": n, "lease": {holder, until, held} |
 * null}. NULL + err. */
json_t *ad__fleet_status(ad__fleet_t *f, ad_error_t *err);

/* Runner commands. */
json_t *ad__fleet_cycle(ad__fleet_t *f, const json_t *args, ad_error_t *err);
json_t *ad__platform_set(ad__fleet_t *f, const json_t *args, ad_error_t *err);
json_t *ad__platform_list(ad__fleet_t *f, const json_t *args, ad_error_t *err);
json_t *ad__service_list(ad__fleet_t *f, const json_t *args, ad_error_t *err);
json_t *ad__service_get(ad__fleet_t *f, const json_t *args, ad_error_t *err);
json_t *ad__service_opened(ad__fleet_t *f, const json_t *args, ad_error_t *err);
json_t *ad__service_retire(ad__fleet_t *f, const json_t *args, ad_error_t *err);

#endif
