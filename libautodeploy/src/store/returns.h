/* returns.h - job returns into MongoDB with a spool (see returns.c). */
#ifndef AD_RETURNS_H
#define AD_RETURNS_H

#include <bson/bson.h>
#include <stdint.h>

#include "autodeploy/event.h"
#include "store/store.h"

typedef struct {
  int tasks_only;          /* 1: only returns carrying metadata.autodeploy_task */
  const char *collection;  /* default "returns" */
  size_t batch_size;       /* documents per bulk write */
  int batch_ms;            /* longest wait to fill a batch */
  size_t queue_size;       /* documents waiting for the batcher */
  const char *spool_path;
  uint64_t spool_max_bytes;
  int spool_fsync;         /* 1: fdatasync every spooled batch */
  int retry_ms;            /* how often to probe a down store */
} ad__returns_conf_t;

typedef struct {
  uint64_t received, stored, spooled, replayed, rejected, bad;
  uint64_t queued, spool_records, spool_bytes;
  int64_t spool_oldest_ms; /* wall time of the oldest spooled return; 0: empty */
  uint64_t spool_errors; /* batches the spool refused (full, ENOSPC, EROFS) */
  int store_down;
} ad__returns_stats_t;

typedef struct ad__returns ad__returns_t;

ad__returns_t *ad__returns_new(const ad__returns_conf_t *c, ad__store_t *store,
                               ad_error_t *err);
/* Stops after every queued return is stored or spooled. */
void ad__returns_destroy(ad__returns_t **r_p);

/* Bus handler body: build and queue (waits while the queue is full).
 * 0, or 1 when the event could not be turned into a document. */
int ad__returns_handle(ad__returns_t *r, ad_event_t *ev);

void ad__returns_stats(ad__returns_t *r, ad__returns_stats_t *out);

/* The stored document for a return event (NULL + err, or NULL with
 * err->code 0 when tasks_only and the job is not a task's). */
bson_t *ad__returns_doc(ad_event_t *ev, int tasks_only, ad_error_t *err);

/* Append the state-run summary when `fun` is a state function (the live
 * path and the job-cache backfill build the same document). */
void ad__returns_summary(bson_t *doc, const char *fun, size_t fun_len, const ad_value_t *ret);

#endif
