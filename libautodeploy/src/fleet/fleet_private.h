/* fleet_private.h - shared by fleet*.c. */
#ifndef AD_FLEET_PRIVATE_H
#define AD_FLEET_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/config.h"
#include "fleet/fleet.h"
#include "metrics/metrics.h"
#include "store/lease.h"

typedef struct {
  int enabled;
  int cycle_interval, lease_s;
  double headroom;
  int load_window_hours, measure_after_hours, top_k;
  int deploy_timeout, deploy_attempts, deploy_backoff_s;
  int metrics_prune_interval;
  int usage_min_samples, usage_refresh_s, service_metrics_expire_s; /* usage.c */
  char *platforms, *services, *locks, *service_metrics;
} ad__fleet_conf_t;

struct ad__fleet {
  ad__fleet_env_t env;
  char *hosts_coll;
  ad__fleet_conf_t c;
  ad__metrics_t *metrics;
  int metrics_ttl;          /* the salt source's TTL index works */
  atomic_llong next_cycle_ms, next_prune_ms;
  char owner[64];           /* lease owner: host:pid:handle */
  ad__lease_mongo_t lease_store; /* the cycle lease: `cycle` in locks */
  ad__lease_t *lease;
  int metrics_indexed;      /* the load history's indexes exist */
  int usage_indexed;        /* service_metrics' indexes exist */
  struct {                  /* usage.c's counters, in the engine stats as "usage" */
    atomic_llong events, samples, stored, refused, bad, refreshed, store_errors;
  } usage;
  /* the report kept of this engine's last cycle (cycle_report.c) */
  pthread_mutex_t last_lock;
  json_t *last;             /* {at, ran, error | skipped, report}; guarded by last_lock */
  atomic_llong cycle_runs, cycle_failures, cycle_last_ms, cycle_last_ok_ms;
};

/* fleet_store.c: documents with a rev and a history (like hosts) */
json_t *ad__fdoc_find(ad__fleet_t *f, const char *coll, json_t *query, json_t *opts,
                      ad_error_t *err); /* query/opts taken */
json_t *ad__fdoc_get(ad__fleet_t *f, const char *coll, const char *id, ad_error_t *err);
int ad__fdoc_insert(ad__fleet_t *f, const char *coll, const json_t *doc, ad_error_t *err);
int ad__fdoc_cas(ad__fleet_t *f, const char *coll, const json_t *doc, json_t *set,
                 const char *what, const char *cause, const char *actor, ad_error_t *err);
int64_t ad__fdoc_count(ad__fleet_t *f, const char *coll, json_t *query); /* taken */
int ad__fleet_lease(ad__fleet_t *f, int take, char *holder, size_t size);
json_t *ad__fleet_next_numbers(ad__fleet_t *f, const char *code, int n, ad_error_t *err);
void ad__fleet_alert(ad__fleet_t *f, const char *subject, const char *what, const char *text);

/* cycle_report.c: count and keep the outcome `r` (borrowed; NULL: the
 * cycle failed with `err`) of a cycle that took `ms`, for the two views of
 * the last cycle (fleet.h). The tick calls it after each cycle. */
void ad__fleet_keep_cycle(ad__fleet_t *f, json_t *r, const ad_error_t *err, int64_t ms);

/* cycle_report.c: the salt source's indexes, once (f->metrics_indexed,
 * f->metrics_ttl); a failure is logged and tried again at the next prune.
 * Nothing for the other sources. */
void ad__fleet_index_metrics(ad__fleet_t *f);

/* The key tables (NULL-terminated, static), for the configuration reference
 * (engine/config_keys.c). */
const ad__config_key_t *ad__fleet_keys(void);
/* usage.c: the autodeploy_services beacon (usage.h) */
int ad__fleet_on_usage(ad__fleet_t *f, const char *minion, const json_t *data, const char *tag);
int ad__usage_refresh(ad__fleet_t *f, const char *sid, const char *minion, int64_t opened_ms,
                      int64_t now, ad_error_t *err);
void ad__usage_upkeep(ad__fleet_t *f, int64_t now);
const char *ad__usage_coll(const ad__fleet_t *f);

#endif
