/* registry_private.h - shared by registry.c, registry_ops.c, cmdb.c. */
#ifndef AD_REGISTRY_PRIVATE_H
#define AD_REGISTRY_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "registry/hostinfo.h"
#include "registry/registry.h"
#include "registry/saltfiles.h"

#define AD__REG_STRIPES 64
#define AD__SEEN_BUCKETS 4096

typedef struct {
  int enabled;
  char *collection, *refusals, *init_state;
  int init_timeout, init_attempts, init_backoff_s;
  int takeover_after, unreachable_after, liveness_interval, reconcile_interval;
  int history_max, refresh_missing;
} ad__reg_conf_t;

/* the last decision per minion: a hint with nothing new is skipped */
typedef struct ad__seen {
  struct ad__seen *next;
  char id[AD__MINION_ID_MAX + 1];
  int64_t stamp;      /* data cache entry (mtime/size/inode mix); -1 key refused */
  char fp[200];       /* key fingerprint */
  int64_t at, refused_at, refresh_at;
  int quarantined;
} ad__seen_t;

typedef struct ad__cmdb ad__cmdb_t;

struct ad__registry {
  ad__registry_env_t env;
  char *pki_dir, *cachedir;
  ad__reg_conf_t c;
  ad__host_rules_t rules;
  pthread_mutex_t stripe[AD__REG_STRIPES];
  pthread_mutex_t seen_lock;
  ad__seen_t *seen[AD__SEEN_BUCKETS];
  size_t nseen;
  atomic_llong next_live_ms, next_reconcile_ms, last_live_ms;
  ad__cmdb_t *cmdb;
  int indexed;
};

#define AD__HOST_MINIONS "host_minions"

/* store helpers (registry_ops.c) */
json_t *ad__reg_find_in(ad__registry_t *reg, const char *coll, json_t *query); /* taken */
json_t *ad__reg_host_of(ad__registry_t *reg, const char *id);
int ad__reg_insert(ad__registry_t *reg, const char *coll, const json_t *doc, ad_error_t *err);
int ad__reg_delete(ad__registry_t *reg, const char *key);
void ad__reg_alert(ad__registry_t *reg, const char *key, const char *what, const char *text);
json_t *ad__reg_init_fields(ad__registry_t *reg, const json_t *doc, const char *actor,
                            ad_error_t *err);

/* cmdb.c: push host changes to an outside CMDB (an outbox kept in the host
 * documents themselves: cmdb_dirty, so nothing is lost and a restart
 * resumes) */
ad__cmdb_t *ad__cmdb_new(ad__registry_t *reg, const json_t *conf, ad_error_t *err);
void ad__cmdb_destroy(ad__cmdb_t **c);
void ad__cmdb_kick(ad__cmdb_t *c);

#endif
