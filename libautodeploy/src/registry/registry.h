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
 * document schema (the CMDB's contract), docs/registration.md the rules.
 *
 * The files, in dependency order (each calls only those above it; nothing
 * calls back up: who must hear of a change is given a callback):
 *
 *   hostinfo.c     grains -> facts, private-IP rules           (pure)
 *   saltfiles.c    accepted keys, minion data cache, /proc/net/tcp
 *   classify.c     the decision: records + facts -> action     (pure, no I/O)
 *   hosts_store.c  host documents, host_minions, the outbox    (store/ only; a leaf)
 *   cmdb.c         the push thread: an outbox and a URL        (knows no registry)
 *   host_init.c    init tasks, their end, alerts               (hosts_store, tasks/)
 *   liveness.c     the publish port's TCP view, presence       (hosts_store, host_init)
 *   decide.c       gather -> classify -> apply, quarantine     (the above)
 *   host_cmds.c    the runner commands host.*                  (hosts_store, host_init)
 *   registry.c     config, life cycle, hints, bus handlers, the tick; wires
 *                  the CMDB kick into hosts_store as its on_change callback
 */
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
/* Register the start events still queued and stop queueing (later ones are
 * registered on the calling worker). Call while the bus still runs, before
 * ad_bus_destroy: registering can fire events. NULL-safe. */
void ad__registry_stop(ad__registry_t *reg);

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

/* What the looks at minions' files came to, by what asked: {start, refresh,
 * key, reconcile} each {looked, unchanged, refused, decided, errors} (new
 * reference, or NULL). */
json_t *ad__registry_stats_json(ad__registry_t *reg);

/* `fn(user, host)` whenever a host becomes ready (the document after the
 * change, borrowed: _id, profile, ready_at): who must hear of new hosts (the
 * purchase loop's fulfilment) registers here, the registry calls nobody. */
void ad__registry_on_ready(ad__registry_t *reg, void (*fn)(void *user, const json_t *host),
                           void *user);

/* The task system's on_end hook (host init tasks). */
void ad__registry_task_end(void *reg, const json_t *task);

/* Runner commands. */
json_t *ad__host_list(ad__registry_t *reg, const json_t *args, ad_error_t *err);
json_t *ad__host_get(ad__registry_t *reg, const json_t *args, ad_error_t *err);
json_t *ad__host_retire(ad__registry_t *reg, const json_t *args, ad_error_t *err);
json_t *ad__host_drain(ad__registry_t *reg, const json_t *args, ad_error_t *err);
json_t *ad__host_reinit(ad__registry_t *reg, const json_t *args, ad_error_t *err);

#endif
