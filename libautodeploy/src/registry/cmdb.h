/* cmdb.h - push host changes to an outside CMDB (docs/registration.md).
 *
 * The push thread knows nothing of the registry: it reads and marks the
 * outbox through the two functions it is given (hosts_store.c gives the
 * host documents; a test gives an array), and the registry wakes it through
 * ad__cmdb_kick, registered as the hosts store's on_change callback. */
#ifndef AD_CMDB_H
#define AD_CMDB_H

#include <jansson.h>
#include <stdint.h>

#include "autodeploy/common.h"

typedef struct {
  /* Dirty documents due at `now` (cmdb_dirty true, cmdb_next_ms <= now),
   * at most `limit`, the longest due first. New reference; NULL on a store
   * error (the pass is skipped). NULL function: no store, no thread. */
  json_t *(*due)(void *user, int64_t now, int limit);
  /* $set `set` (taken) on the document `doc` names, only if its `rev` is
   * still doc's (a change made during the push is pushed again). */
  void (*mark)(void *user, const json_t *doc, json_t *set);
  void *user;
} ad__cmdb_outbox_t;

typedef struct ad__cmdb ad__cmdb_t;

/* `conf`: the engine's "registry.cmdb" object. NULL + err naming the bad
 * key. Starts the push thread when box->due is set. `box` is copied. */
ad__cmdb_t *ad__cmdb_new(const ad__cmdb_outbox_t *box, const json_t *conf, ad_error_t *err);
/* Stops the thread (a push in flight is cancelled). NULL-safe. */
void ad__cmdb_destroy(ad__cmdb_t **c);
/* Wake the thread for a pass now. `cm` is an ad__cmdb_t (a callback). */
void ad__cmdb_kick(void *cm);

#endif
