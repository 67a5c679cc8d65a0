/* task_rules.h - the task state machine as data, and the decisions taken on
 * a step's results, as pure functions (no store, no bus, no clock): the
 * C unit tests (tests/tasks/test_tasks.c) check them exhaustively, and
 * tasks_store.c's conditional update asks ad__task_can_move before every
 * write, so the table below is the only place the rules live.
 *
 * Every change has a cause, and a cause has exactly one target state and a
 * set of states it may leave (docs/tasks.md, "Life of a task"):
 *
 *   cause          from                          to
 *   START          queued                        running   (target free)
 *   NEXT_STEP      running                       running   (step ok, more steps)
 *   SUCCEED        running                       succeeded (step ok, last)
 *   PAUSE_BETWEEN  running                       paused    (step ok, pause requested)
 *   REQUEUE        running                       queued    (step failed, attempts left)
 *   FAIL           running                       failed    (no attempts left / run not fired)
 *   TIME_OUT       running                       timed_out (watchdog)
 *   CANCEL         queued, running, paused       cancelled
 *   PAUSE          queued                        paused
 *   REQUEST_PAUSE  running                       running   (pause after this step)
 *   RESUME         paused                        running
 *   WITHDRAW_PAUSE running                       running   (the request is withdrawn)
 *   RETRY          failed, timed_out, cancelled  running   (attempt + 1, new jid)
 *
 * Anything else is refused. succeeded is final. */
#ifndef AD_TASK_RULES_H
#define AD_TASK_RULES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef enum {
  AD__TS_QUEUED,
  AD__TS_RUNNING,
  AD__TS_PAUSED,
  AD__TS_SUCCEEDED,
  AD__TS_FAILED,
  AD__TS_TIMED_OUT,
  AD__TS_CANCELLED,
  AD__TS_COUNT
} ad__task_state_t;

typedef enum {
  AD__TC_START,
  AD__TC_NEXT_STEP,
  AD__TC_SUCCEED,
  AD__TC_PAUSE_BETWEEN,
  AD__TC_REQUEUE,
  AD__TC_FAIL,
  AD__TC_TIME_OUT,
  AD__TC_CANCEL,
  AD__TC_PAUSE,
  AD__TC_REQUEST_PAUSE,
  AD__TC_RESUME,
  AD__TC_WITHDRAW_PAUSE,
  AD__TC_RETRY,
  AD__TC_COUNT
} ad__task_cause_t;

/* "queued".. for a state; "?" out of range. */
const char *ad__task_state_name(ad__task_state_t s);
/* The state named `name`, or -1 (NULL or unknown). */
int ad__task_state_parse(const char *name);
/* "start".. for a cause; "?" out of range. */
const char *ad__task_cause_name(ad__task_cause_t c);
/* The one state `cause` leads to. */
ad__task_state_t ad__task_cause_target(ad__task_cause_t c);
/* 1 when `cause` may move a task from `from` to `to`, else 0 (also for
 * out-of-range values). */
int ad__task_can_move(int from, int to, int cause);
/* succeeded, failed, timed_out, cancelled: on_end is called on entering. */
int ad__task_state_is_end(int s);

/* ---- interventions ------------------------------------------------------- */
/* The cause an operator's `action` ("cancel", "pause", "resume", "retry")
 * means for a task in `state` (with `pause_requested`), or -1 when the
 * action is unknown or refused in that state. */
int ad__task_intervention(const char *action, int state, int pause_requested);

/* ---- a step's results ---------------------------------------------------- */
/* Who must answer the current job: a list target's own minions (nothing on
 * the bus can change them), else the job's first salt/job/<jid>/new
 * (`minions`). Borrowed; NULL when not known yet (json_array_size 0). */
const json_t *ad__task_expected(const json_t *task);

/* Is `minion`'s return of `jid` in the master's job cache? 1 + *retcode,
 * 0 not (yet), -1 unreadable. NULL lookup = trust the stored returns. */
typedef int (*ad__task_cache_fn)(void *user, const char *jid, const char *minion,
                                 int64_t *retcode);

typedef struct {
  size_t expected;   /* minions that must answer */
  size_t got;        /* of them, answers that count */
  size_t failed;     /* of those, non-zero retcodes */
  int done;          /* every expected minion answered */
  char detail[300];  /* "m1 retcode 2; m2 retcode 1" (truncated) */
} ad__task_tally_t;

/* Count the returns `rets` ([{minion, retcode}], the `returns` rows of the
 * current jid) against ad__task_expected(task): a return counts only when
 * its minion is expected and, with a lookup, the job cache holds it (the
 * retcode is then the cache's). */
void ad__task_tally(const json_t *task, const json_t *rets, ad__task_cache_fn cached,
                    void *user, ad__task_tally_t *out);

/* What one return event's minion amounts to, for positive evidence. */
typedef enum {
  AD__TR_COUNTED,        /* expected, stored, authenticated */
  AD__TR_TARGETS_UNKNOWN,/* the job's minions are not known yet: wait */
  AD__TR_NOT_TARGETED,   /* the job did not target this minion: refused */
  AD__TR_NOT_STORED,     /* no return document yet: wait */
  AD__TR_NOT_CACHED      /* stored, but not in the master's job cache: wait, then refuse */
} ad__task_return_t;

ad__task_return_t ad__task_judge_return(const json_t *task, const json_t *rets,
                                        const char *minion, ad__task_cache_fn cached,
                                        void *user);
/* "counted", "not targeted by the job".. for notes. */
const char *ad__task_return_reason(ad__task_return_t v);

/* What follows a finished step (every expected minion answered). */
typedef struct {
  ad__task_cause_t cause; /* SUCCEED, PAUSE_BETWEEN, NEXT_STEP, REQUEUE or FAIL */
  int64_t step;           /* the step to start or to resume */
  int64_t attempt;        /* its attempt */
  int64_t backoff_s;      /* REQUEUE: wait this long */
} ad__task_next_t;

void ad__task_after_step(const json_t *task, int failed, ad__task_next_t *out);

#endif
