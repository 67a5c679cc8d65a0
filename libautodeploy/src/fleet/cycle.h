/* cycle.h - the reserve/placement cycle over a small store interface.
 *
 * The cycle's steps (reserve -> create -> place -> deploy, cycle.c) read and
 * write through ad__cycle_store_t, so they can run on MongoDB
 * (ad__fleet_cycle_store, fleet_store.c) or on an in-memory fake in the C
 * unit tests (tests/fleet/test_cycle.c). */
#ifndef AD_FLEET_CYCLE_H
#define AD_FLEET_CYCLE_H

#include <jansson.h>
#include <stdint.h>

#include "fleet/fleet_private.h"

/* What the cycle needs from the world. `u` is the store's own pointer.
 * Returns and ownership as the ad__fdoc_* functions (fleet_private.h):
 * json_t * returned: caller decrefs, NULL on error; query/opts taken. */
typedef struct {
  json_t *(*find)(void *u, const char *coll, json_t *query, json_t *opts, ad_error_t *err);
  json_t *(*get)(void *u, const char *coll, const char *id, ad_error_t *err);
  int64_t (*count)(void *u, const char *coll, json_t *query); /* <0 error */
  int (*insert)(void *u, const char *coll, const json_t *doc,
                ad_error_t *err); /* 1 inserted, 0 exists, <0 error */
  /* conditional update on the document's _id and rev (rev + 1, history
   * appended): 1 moved, 0 someone else changed it first, <0 error */
  int (*cas)(void *u, const char *coll, const json_t *doc, json_t *set, const char *what,
             const char *cause, const char *actor, ad_error_t *err);
  /* {"first": n}: n consecutive server numbers of platform `code` */
  json_t *(*next_numbers)(void *u, const char *code, int n, ad_error_t *err);
  /* take 1: take (1 held, 0 held by *holder, <0 error); 2: renew; 0: release */
  int (*lease)(void *u, int take, char *holder, size_t size);
  /* a deploy task, as ad__task_create: {"task": {"_id", ...}} */
  json_t *(*task_create)(void *u, const json_t *args, ad_error_t *err);
  /* the load history, as ad__metrics_query */
  int (*load)(void *u, const ad__metrics_host_t *hosts, size_t n, const ad__metrics_query_t *q,
              ad__metrics_result_t **out, ad_error_t *err);
  /* What the cycle saw, kept on the documents: `sets` (taken) is [{"_id",
   * "set"}, ...], each a plain $set (no rev, no history, no fence: the
   * platform's last_cycle and each ready host's load are observations, not
   * moves). The matched count, or <0 + err. */
  int64_t (*observe)(void *u, const char *coll, json_t *sets, ad_error_t *err);
} ad__cycle_store_t;

/* The MongoDB store, the task system and the metrics source of `f`
 * (u = the ad__fleet_t). */
extern const ad__cycle_store_t ad__fleet_cycle_store;

/* The cycle (ad__fleet_cycle's args and report) with its reads and writes
 * going to `st`; `f` gives only the configuration (f->c, the hosts and
 * tasks collection names). NULL + err when nothing could run.
 * Unless a dry run, it leaves what it saw on the documents (docs/placement.md):
 * each platform's `last_cycle` {at, reserve, footprint} and each ready
 * host's `load` {p95: {cpu, mem_mb} (null when the history could not be
 * read), placed: {cpu, mem_mb} (footprints not yet in the history, this
 * cycle's placements included), limit: {cpu, mem_mb} (capacity x headroom),
 * at}, whoever ran it (the engine or a runner). */
json_t *ad__cycle_run(ad__fleet_t *f, const ad__cycle_store_t *st, void *u, const json_t *args,
                      ad_error_t *err);

#endif
