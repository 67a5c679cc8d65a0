/* backfill.h - returns the engine missed, read back from Salt's job cache.
 *
 * The master writes every return it authenticated to its job cache
 * (local_cache: <job_dir>/<h[:2]>/<h[2:]>/{jid,.load.p,<minion>/return.p})
 * whether or not an engine listens on the bus. An engine that was dead
 * (SIGKILL, OOM), or whose reader was disconnected (master restart), or
 * that died with returns still in memory, stores them from there: every
 * return.p written since `since_ms`, inserted by _id "<jid>/<minion>" like
 * the live path, so what was stored already stays stored once. */
#ifndef AD_BACKFILL_H
#define AD_BACKFILL_H

#include <stdint.h>

#include "autodeploy/event.h"
#include "store/store.h"

typedef struct {
  const char *job_dir;    /* <cachedir>/jobs */
  const char *collection; /* the returns collection */
  int tasks_only;         /* 1: only jobs whose load carries metadata.autodeploy_task */
  int64_t since_ms;       /* wall-clock ms: return files modified at or after this */
  size_t batch_size;      /* documents per bulk insert */
} ad__backfill_conf_t;

typedef struct {
  uint64_t jobs;       /* job directories looked into (recent enough) */
  uint64_t returns;    /* return files read since since_ms */
  uint64_t inserted;   /* of which not stored before: the backfilled ones */
  uint64_t unreadable; /* return files that would not decode (logged) */
  uint64_t task_returns; /* inserted returns of autodeploy tasks */
} ad__backfill_result_t;

/* Walk the job cache and insert what is missing. 0, or AD_ECONNECT when
 * the store is unreachable (nothing is lost: call again later), AD_EIO
 * when job_dir cannot be read; *out counts what was done either way. */
int ad__backfill_returns(ad__store_t *st, const ad__backfill_conf_t *c,
                         ad__backfill_result_t *out, ad_error_t *err);

/* The document stored for one cached return (same fields as the live path:
 * returns.c), from the decoded .load.p (may be NULL) and return.p. NULL
 * when tasks_only and the job is not a task's. The caller destroys it. */
bson_t *ad__backfill_doc(const char *jid, const char *minion, const ad_value_t *load,
                         const ad_value_t *ret, int tasks_only, int64_t received_ms);

#endif
