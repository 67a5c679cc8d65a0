/*
 * backfill.c - nothing lost while the engine was not listening.
 *
 * The master writes every authenticated return to its job cache whether or
 * not anyone listens on the event bus. Two windows lose bus events:
 *   - the engine is dead (SIGKILL, OOM, a crash) until Salt restarts it;
 *     whatever was still in its memory (queued, batching) dies with it;
 *   - the reader is disconnected (the master restarted).
 * After the first connection and after every reconnect, the engine reads
 * the job cache's returns written since the last moment it knew it was
 * listening, minus backfill_margin_s (which covers what was in memory: a
 * return waits there at most batch_ms plus a store round trip, or as long
 * as the store is slow; the spool holds the rest durably), and inserts
 * them by _id (store/backfill.c): what was stored stays stored once.
 *
 * "Last moment listening" survives the process in <spool_dir>/
 * listening.mark, rewritten every second while the bus is connected (a
 * rename, so a SIGKILL leaves the old or the new mark, never half), with
 * "stopped" after a clean stop: a start that finds "running" says in the
 * log that the previous engine died. No mark (first start): the whole job
 * cache (Salt keeps keep_jobs hours of it).
 *
 * The wall clock, not the monotonic one: the mark is compared with file
 * mtimes the master wrote on the wall clock. A clock stepped back by more
 * than the margin reads more than needed (harmless: inserts by _id); one
 * stepped forward between the death and the restart makes the window
 * start later than the death, by the step less the margin.
 *
 * The task logic: a task whose step's returns all arrived while nobody
 * listened is moved on by ad__tasks_settle, right after a backfill that
 * inserted task returns (and on every watchdog tick).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus_private.h"
#include "core/clock.h"
#include "core/log_private.h"
#include "engine/engine_private.h"
#include "store/backfill.h"

static void write_mark(ad__engine_backfill_t *b, int64_t ms, const char *what)
{
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", b->mark_path);
  FILE *f = fopen(tmp, "w");
  if (!f)
    return; /* spool_dir unwritable: the spool says so loudly already */
  fprintf(f, "%" PRId64 " %s\n", ms, what);
  if (fclose(f) == 0)
    rename(tmp, b->mark_path);
}

void ad__engine_backfill_init(ad_engine_t *eng)
{
  ad__engine_backfill_t *b = &eng->backfill;
  ad__engine_conf_t *c = &eng->c;
  if (!eng->returns || !c->job_cache_dir || !*c->job_cache_dir || !c->spool_dir)
    return; /* nothing to reconcile into, or no job cache to read */
  snprintf(b->mark_path, sizeof b->mark_path, "%s/listening.mark", c->spool_dir);
  FILE *f = fopen(b->mark_path, "r");
  int64_t ms = 0;
  char what[16] = "";
  if (f) {
    if (fscanf(f, "%" SCNd64 " %15s", &ms, what) < 1)
      ms = 0;
    fclose(f);
  }
  b->listening_ms = ms;
  if (ms > 0 && strcmp(what, "stopped") != 0) {
    char iso[32];
    ad__iso_ms(ms, iso);
    AD_LOG_W("engine", "the previous engine did not stop cleanly (last listening at %s); "
             "returns since then are reconciled from the job cache", iso);
  }
}

/* Start a reconciliation when the bus has a connection we did not
 * reconcile yet; remember the listening time either way. */
static void notice_connection(ad_engine_t *eng, ad__engine_backfill_t *b)
{
  ad_bus_stats_t s = {.struct_size = sizeof s};
  if (ad_bus_stats(eng->bus, &s, NULL) || !s.connected)
    return;
  uint64_t gen = s.reconnects + 1;
  if (gen != b->gen_done) {
    int64_t from = b->listening_ms - (int64_t)eng->c.backfill_margin_s * 1000;
    /* two gaps before the first pass succeeded: keep the earlier start */
    b->since_ms = b->pending && b->since_ms < from ? b->since_ms : from;
    if (b->listening_ms <= 0)
      b->since_ms = 0; /* never listened before: all the cache holds */
    b->gen_done = gen;
    b->pending = 1;
  }
  b->listening_ms = ad__now_ms();
  write_mark(b, b->listening_ms, "running");
}

static void reconcile(ad_engine_t *eng, ad__engine_backfill_t *b)
{
  ad__backfill_conf_t bc = {eng->c.job_cache_dir, eng->c.returns_collection,
                            eng->c.returns_mode == 1, b->since_ms,
                            (size_t)eng->c.batch_size};
  ad__backfill_result_t r;
  ad_error_t err;
  int64_t t0 = ad__mono_ms();
  int rc = ad__backfill_returns(eng->store, &bc, &r, &err);
  b->backfilled += r.inserted;
  b->task_returns += r.task_returns;
  char iso[32];
  ad__iso_ms(b->since_ms, iso);
  if (rc && rc != AD_ECONNECT) { /* no job cache to read: retrying will not help */
    b->failures++;
    b->pending = 0;
    AD_LOG_W("engine", "not reconciling returns from the job cache: %s", err.message);
    return;
  }
  if (rc) {
    if (b->failures++ % 30 == 0)
      AD_LOG_E("engine", "reconciling returns since %s from the job cache: %s; will retry",
               iso, err.message);
    return;
  }
  b->runs++;
  b->pending = 0;
  AD_LOG_I("engine", "backfilled %" PRIu64 " returns from the job cache (%" PRIu64
           " returns in %" PRIu64 " jobs written since %s read, %" PRIu64
           " unreadable) in %" PRId64 " ms", r.inserted, r.returns, r.jobs,
           b->since_ms ? iso : "the start of the cache", r.unreadable, ad__mono_ms() - t0);
  if (r.task_returns && eng->tasks.store)
    ad__tasks_settle(&eng->tasks);
}

int64_t ad__engine_backfill_tick(void *user)
{
  ad_engine_t *eng = user;
  ad__engine_backfill_t *b = &eng->backfill;
  notice_connection(eng, b);
  if (b->pending)
    reconcile(eng, b);
  return 1000;
}

void ad__engine_backfill_stop(ad_engine_t *eng)
{
  ad__engine_backfill_t *b = &eng->backfill;
  if (*b->mark_path && b->listening_ms > 0)
    write_mark(b, b->listening_ms, "stopped");
}

json_t *ad__engine_backfill_stats(const ad_engine_t *eng)
{
  const ad__engine_backfill_t *b = &eng->backfill;
  return json_pack("{s:I,s:I,s:I,s:I,s:b,s:I}", "runs", (json_int_t)b->runs, "backfilled",
                   (json_int_t)b->backfilled, "task_returns", (json_int_t)b->task_returns,
                   "failures", (json_int_t)b->failures, "pending", b->pending, "since_ms",
                   (json_int_t)b->since_ms);
}
