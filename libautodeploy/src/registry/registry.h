/* registry.h - the host registry (the CMDB's `hosts` collection).
 *
 * Events are hints only: salt/minion/<id>/start, minion/refresh/<id>,
 * minion_ping, salt/presence/..., salt/key name a minion (or ask for a
 * liveness pass); what is registered comes from the master's own files
 * (accepted key, minion data cache: saltfiles.h) and is validated
 * (hostinfo.h). Host states:
 *
 *   registering -> initializing -> ready | init_failed
 *   ready|draining <-> unreachable      any -> retired
 *   quarantined: a second minion claiming a live host's key (own document)
 *
 * Every decision is appended to the host's `history`. docs/cmdb.md is the
 * document schema (the CMDB's contract), docs/registration.md the rules. */
#ifndef AD_REGISTRY_H
#define AD_REGISTRY_H

#include <jansson.h>

#include "autodeploy/bus.h"
#include "store/store.h"
#include "tasks/tasks.h"

typedef struct ad__registry ad__registry_t;

typedef struct {
  ad__store_t *store;
  const ad__tasks_ctx_t *tasks; /* for init tasks; its alert hook too */
  ad_bus_t *bus;                /* to fire signed grains refreshes */
  const char *key_path;         /* master key (signing) */
  const char *pki_dir, *cachedir, *hash_type;
  unsigned publish_port;
} ad__registry_env_t;

/* `conf`: the engine's "registry" object (NULL = defaults). NULL + err
 * naming the bad key. */
ad__registry_t *ad__registry_new(const ad__registry_env_t *env, const json_t *conf,
                                 ad_error_t *err);
void ad__registry_destroy(ad__registry_t **reg_p);

/* Bus handlers (engine.c routes them). */
int ad__registry_on_start(ad__registry_t *reg, ad_event_t *ev);   /* salt/minion/<id>/start */
int ad__registry_on_refresh(ad__registry_t *reg, ad_event_t *ev); /* minion/refresh/<id> */
int ad__registry_on_ping(ad__registry_t *reg, ad_event_t *ev);    /* minion_ping */
int ad__registry_on_presence(ad__registry_t *reg, ad_event_t *ev); /* salt/presence/... */
int ad__registry_on_key(ad__registry_t *reg, ad_event_t *ev);     /* salt/key */

/* Look at minion `id` now (hint from anywhere). */
void ad__registry_hint(ad__registry_t *reg, const char *id, const char *why, int force);

/* Engine timer: liveness, reconcile, outbox. Returns ms until it wants to
 * run again. */
int64_t ad__registry_tick(ad__registry_t *reg);

/* The task system's on_end hook (host init tasks). */
void ad__registry_task_end(void *reg, const json_t *task);

/* Runner commands. */
json_t *ad__host_list(ad__registry_t *reg, const json_t *args, ad_error_t *err);
json_t *ad__host_get(ad__registry_t *reg, const json_t *args, ad_error_t *err);
json_t *ad__host_retire(ad__registry_t *reg, const json_t *args, ad_error_t *err);
json_t *ad__host_drain(ad__registry_t *reg, const json_t *args, ad_error_t *err);
json_t *ad__host_reinit(ad__registry_t *reg, const json_t *args, ad_error_t *err);

/* ---- shared by registry*.c ---------------------------------------------- */
json_t *ad__hosts_find_one(ad__registry_t *reg, json_t *query, ad_error_t *err); /* query taken */
json_t *ad__hosts_find(ad__registry_t *reg, json_t *query, json_t *opts, ad_error_t *err);
/* Conditional update of host `key` at revision `rev`: $set `set`, rev+1,
 * cmdb_dirty, history += entry (trimmed to history_max). 1 done, 0 the
 * document changed meanwhile, <0 store error. */
int ad__hosts_cas(ad__registry_t *reg, const json_t *doc, json_t *set, const char *what,
                  const char *cause, const char *actor, ad_error_t *err);

#endif
