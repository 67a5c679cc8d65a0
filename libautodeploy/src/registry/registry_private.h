/* registry_private.h - shared by the registry's files (registry.h says which
 * calls which). */
#ifndef AD_REGISTRY_PRIVATE_H
#define AD_REGISTRY_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/config.h"
#include "registry/cmdb.h"
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
  int start_batch, start_batch_ms;
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

/* What each look at a minion's files came to, by what asked for it (the
 * stats: docs/registry.md): the evidence that a hint was handled even when
 * it changed nothing (a start event forged for another minion). */
enum { AD__REG_WHY_START, AD__REG_WHY_REFRESH, AD__REG_WHY_KEY, AD__REG_WHY_RECONCILE,
       AD__REG_WHY_N };
typedef struct {
  atomic_ullong looked, unchanged, refused, decided, errors;
} ad__reg_counts_t;

struct ad__registry {
  ad__registry_env_t env;
  ad__reg_counts_t counts[AD__REG_WHY_N];
  char *pki_dir, *cachedir;
  ad__reg_conf_t c;
  ad__host_rules_t rules;
  pthread_mutex_t stripe[AD__REG_STRIPES];
  pthread_mutex_t seen_lock;
  ad__seen_t *seen[AD__SEEN_BUCKETS];
  size_t nseen;
  atomic_llong next_live_ms, next_reconcile_ms, last_live_ms;
  ad__cmdb_t *cmdb;
  void (*on_change)(void *user); /* after every host change (the CMDB kick) */
  void *on_change_user;
  void (*on_ready)(void *user, const json_t *host); /* a host became ready */
  void *on_ready_user;
  int indexed;
  struct ad__reg_batch *batch; /* start events in bursts (batch.c); NULL: each at once */
};

/* ---- registry.c: one look at a minion's files, then the decision -------------- */
typedef struct {
  char fp[200];       /* key fingerprint */
  ad__seen_t *s;      /* the seen entry to update at the end, or NULL */
  ad__seen_t copy;    /* what to write there */
} ad__reg_look_t;
json_t *ad__reg_look(ad__registry_t *reg, const char *id, const char *why, int force,
                     ad__reg_look_t *look);
void ad__reg_look_end(ad__registry_t *reg, ad__reg_look_t *look);
pthread_mutex_t *ad__reg_stripe(ad__registry_t *reg, const char *id);

#define AD__HOST_MINIONS "host_minions"

/* ---- hosts_store.c: the host documents (a leaf: store/ only) ---------------- */
json_t *ad__hosts_find_one(ad__registry_t *reg, json_t *query, ad_error_t *err); /* query taken */
json_t *ad__hosts_find(ad__registry_t *reg, json_t *query, json_t *opts, ad_error_t *err);
/* Conditional update of host `key` at revision `rev`: $set `set`, rev+1,
 * cmdb_dirty, history += entry (trimmed to history_max); then on_change.
 * 1 done, 0 the document changed meanwhile, <0 store error. */
int ad__hosts_cas(ad__registry_t *reg, const json_t *doc, json_t *set, const char *what,
                  const char *cause, const char *actor, ad_error_t *err);
/* `fn(user)` after every successful ad__hosts_cas (NULL: none). */
void ad__hosts_on_change(ad__registry_t *reg, void (*fn)(void *user), void *user);
/* Call the ready hook when `doc` (+ `set`) is a host that just became ready. */
void ad__hosts_ready_hook(ad__registry_t *reg, const json_t *doc, const json_t *set);
json_t *ad__reg_find_in(ad__registry_t *reg, const char *coll, json_t *query); /* taken */
json_t *ad__reg_host_of(ad__registry_t *reg, const char *id);
int ad__reg_insert(ad__registry_t *reg, const char *coll, const json_t *doc, ad_error_t *err);
int ad__reg_delete(ad__registry_t *reg, const char *key);
void ad__hosts_map_minion(ad__registry_t *reg, const char *id, const char *key);
void ad__hosts_touch_seen(ad__registry_t *reg, const char *key, int64_t now);
void ad__hosts_mark_seen(ad__registry_t *reg, const json_t *ids, int64_t now);
void ad__hosts_make_indexes(ad__registry_t *reg);
/* The hosts as cmdb.c's outbox (due NULL without a store). */
ad__cmdb_outbox_t ad__hosts_outbox(ad__registry_t *reg);

/* ---- host_init.c ------------------------------------------------------------- */
void ad__reg_alert(ad__registry_t *reg, const char *key, const char *what, const char *text);
json_t *ad__reg_init_fields(ad__registry_t *reg, const json_t *doc, const char *actor,
                            ad_error_t *err);
/* registering -> initializing (or ready, or init_failed + alert) */
void ad__reg_begin_init(ad__registry_t *reg, json_t *doc, const char *cause);
/* hosts whose init task ended while nobody listened */
void ad__reg_settle_inits(ad__registry_t *reg);

/* ---- classify.c: the decision, pure ------------------------------------------ */
typedef enum {
  AD__REG_NEW,       /* nobody holds the key, the minion has no live host */
  AD__REG_MOVE,      /* the minion's live host has another key: new address */
  AD__REG_RETIRED,   /* the minion's own host is retired: refused, left retired */
  AD__REG_REINSTALL, /* same host, key or machine-id changed: init again */
  AD__REG_REGISTER,  /* same host, still registering: init */
  AD__REG_UNCHANGED, /* a periodic look with nothing new: last_seen only */
  AD__REG_SEEN,      /* same host seen (back from unreachable, or no change) */
  AD__REG_CONFLICT,  /* another live minion holds the key: quarantine */
  AD__REG_TAKEOVER,  /* the holder is retired, its key gone, or unseen too long */
} ad__reg_action_t;

typedef struct {
  const json_t *by_key;    /* the host document whose _id is the facts' key, or NULL */
  const json_t *prev;      /* the minion's live host (host_minions); read when by_key is NULL */
  int holder_key_accepted; /* by_key's minion's key still accepted (read when it is another
                            * minion's live host; 1 otherwise) */
} ad__reg_records_t;

typedef struct {
  ad__reg_action_t action;
  const char *reinstall; /* MOVE, REINSTALL: "minion key changed", "machine-id changed" */
  char cause[600];       /* the history entry's cause (empty for UNCHANGED) */
  char gone[300];        /* CONFLICT, TAKEOVER: what was found about the holder */
} ad__reg_decision_t;

/* records + facts (hostinfo.c's, with key fingerprint `fp`) + hint `why` +
 * now + config -> the action. No I/O. */
void ad__registry_classify(const ad__reg_records_t *r, const json_t *facts, const char *fp,
                           const char *why, int64_t now, const ad__reg_conf_t *c,
                           ad__reg_decision_t *d);
const char *ad__reg_action_name(ad__reg_action_t a);

/* ---- decide.c: gather -> classify -> apply. 1 when the minion ended up
 * quarantined. ---------------------------------------------------------------- */
int ad__reg_decide(ad__registry_t *reg, const json_t *facts, const char *fp, const char *why);
/* The same without the insert-first attempt (the caller made it). */
int ad__reg_decide_full(ad__registry_t *reg, const json_t *facts, const char *fp,
                        const char *why);
/* The new-host document for `facts` (owned), as apply_new inserts it, or
 * NULL (no memory). */
json_t *ad__reg_new_doc(ad__registry_t *reg, const json_t *facts, const char *fp,
                        const char *why);
/* After inserting a ad__reg_new_doc: rc 1 logs (and alerts an init_failed),
 * rc 0 (key taken) cancels the init task it created. */
void ad__reg_new_done(ad__registry_t *reg, const json_t *doc, int rc);

/* ---- batch.c: start hints queued and registered in bursts ------------------- */
typedef struct ad__reg_batch ad__reg_batch_t;
ad__reg_batch_t *ad__reg_batch_new(ad__registry_t *reg, int max, int wait_ms);
/* Stops the thread after registering what is queued; a push after it
 * returns -1. Idempotent, NULL-safe. */
void ad__reg_batch_stop(ad__reg_batch_t *b);
/* Stops (if not yet) and frees. NULL-safe. */
void ad__reg_batch_destroy(ad__reg_batch_t **b_p);
/* 0 queued (copied), -1 full or stopping: the caller registers at once. */
int ad__reg_batch_push(ad__reg_batch_t *b, const char *id, const char *why);
/* Bulk inserts for the batch (hosts_store.c): res[i] 1 inserted, 0 _id
 * taken, <0 store error (logged). */
void ad__hosts_insert_many(ad__registry_t *reg, const char *coll, json_t *const *docs,
                           size_t n, int *res);

/* ---- liveness.c -------------------------------------------------------------- */
void ad__reg_liveness(ad__registry_t *reg);

/* The key tables (NULL-terminated, static), for the configuration reference
 * (engine/config_keys.c). */
const ad__config_key_t *ad__registry_keys(void);
const ad__config_key_t *ad__cmdb_keys(void);

#endif
