/*
 * clockstep.c - steps of the wall clock seen and made harmless. A task's
 * deadline_ms and retry_at_ms are wall-clock times in the store (they
 * outlive a restart and another master reads them), and the watchdog
 * compares them with the wall clock. A clock set forward past a step's
 * deadline would kill the step early, one set back would leave it an hour
 * late. So the engine reads the wall clock against CLOCK_BOOTTIME every
 * second, and before each watchdog pass; on a step it moves the stored
 * times by the step (ad__tasks_shift), once, so that each running step
 * keeps the time it had left, and says so in the log and the stats.
 * The watchdog does not run while a move is owed (the store was down).
 */
#include "core/clock.h"
#include "core/log_private.h"
#include "engine/engine_private.h"

/* Log the step and the moves once; 0, or -1 while the move is owed. */
static int settle(ad__clock_steps_t *c)
{
  ad_error_t err = {0};
  int64_t n = c->shift ? c->shift(c->user, c->owed_ms, c->since_ms, &err) : 0;
  if (n < 0) {
    if (!c->failing++)
      AD_LOG_E("engine", "wall clock stepped by %+.1f s; moving the task deadlines with it "
               "failed (%s): the watchdog waits until they are moved", (double)c->owed_ms / 1000.0,
               err.message);
    return -1;
  }
  AD_LOG_W("engine", "wall clock stepped by %+.1f s; %lld task deadlines moved",
           (double)c->owed_ms / 1000.0, (long long)n);
  __atomic_add_fetch(&c->moved, n, __ATOMIC_RELAXED);
  c->owed_ms = 0;
  c->failing = 0;
  return 0;
}

int ad__clock_steps_check(ad__clock_steps_t *c)
{
  int64_t since = 0;
  int64_t step = ad__clock_watch(&c->watch, c->wall ? c->wall() : ad__now_ms(),
                                 c->boot ? c->boot() : ad__boot_ms(), &since);
  if (step) {
    __atomic_add_fetch(&c->steps, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&c->last_step_ms, step, __ATOMIC_RELAXED);
    if (!c->owed_ms) /* what was written after the first step is on the new clock */
      c->since_ms = since;
    else
      c->since_ms += step;
    c->owed_ms += step;
  }
  return c->owed_ms ? settle(c) : 0;
}

json_t *ad__clock_steps_stats(const ad__clock_steps_t *c)
{
  ad__clock_steps_t *m = (ad__clock_steps_t *)c;
#define L(f) (json_int_t) __atomic_load_n(&m->f, __ATOMIC_RELAXED)
  return json_pack("{s:I,s:I,s:I}", "steps", L(steps), "last_step_ms", L(last_step_ms),
                   "deadlines_moved", L(moved));
#undef L
}

int64_t ad__engine_clock_shift(void *user, int64_t step_ms, int64_t since, ad_error_t *err)
{
  ad_engine_t *eng = user;
  /* only the leader runs the watchdog, so only its clock matters */
  if (!eng->tasks.store || !ad__engine_leads(eng, "moving task deadlines"))
    return 0;
  return ad__tasks_shift(&eng->tasks, step_ms, since, err);
}
