/* fleet_private.h - shared by fleet*.c. */
#ifndef AD_FLEET_PRIVATE_H
#define AD_FLEET_PRIVATE_H

#include <stdatomic.h>

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
  char *platforms, *services, *locks;
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

#endif
