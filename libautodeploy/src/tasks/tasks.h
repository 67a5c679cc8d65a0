/* tasks.h - deploy tasks: documents in the `tasks` collection, a state
 * machine changed only by conditional single-document updates (no
 * transactions), Salt jobs with pre-assigned jids and metadata.
 *
 *   queued -> running -> succeeded | failed | timed_out | cancelled
 *   running <-> paused (between steps)      failed|timed_out|cancelled -> running (retry)
 *
 * Every transition appends {at, from, to, cause, actor} to `history`.
 * The rules are one table in task_rules.h. docs/tasks.md has the document
 * schema. */
#ifndef AD_TASKS_H
#define AD_TASKS_H

#include <jansson.h>

#include "autodeploy/bus.h"
#include "store/store.h"
#include "tasks/task_rules.h"

typedef struct ad__notifier ad__notifier_hook_t;

/* Evidence of refusals, for the engine's stats JSON ("tasks"). Updated
 * atomically from the engine's workers. */
typedef struct {
  uint64_t refused_forged_returns; /* a return that did not count: minion not
                                      targeted, or not in the master's job cache */
  uint64_t refused_unsigned;       /* an intervention without a valid signature */
  uint64_t refused_interventions;  /* signed, but refused: the body is not JSON or names
                                     * another task, no such task, or the transition is
                                     * not allowed */
  uint64_t stale_returns;          /* a return of an earlier job of the task */
  uint64_t settled_from_store;     /* steps found finished by ad__tasks_settle */
} ad__tasks_stats_t;

typedef struct {
  ad__store_t *store;
  ad_bus_t *bus;            /* to fire run/kill events */
  const char *key_path;     /* master key, for signing */
  const char *collection;   /* "tasks" */
  const char *job_dir;      /* Salt's job cache (<cachedir>/jobs); "" = trust the bus */
  const char *hash_type;    /* the master's hash_type */
  /* alerts: called with a title and markdown text (may be NULL) */
  void (*alert)(void *user, const char *title, const char *text, const char *dedup);
  void *alert_user;
  /* called after a task reached succeeded, failed, timed_out or cancelled
   * (may be NULL); tasks created with an `owner` ({kind, ...}) are how
   * other modules (host init, service deploys) learn their outcome */
  void (*on_end)(void *user, const json_t *task);
  void *on_end_user;
  ad__tasks_stats_t *stats; /* counters (may be NULL): the caller owns them */
} ad__tasks_ctx_t;

/* Runner commands (task_cmds.c; JSON in, JSON out). NULL + err naming the
 * argument. */
json_t *ad__task_create(const ad__tasks_ctx_t *t, const json_t *args, ad_error_t *err);
json_t *ad__task_list(const ad__tasks_ctx_t *t, const json_t *args, ad_error_t *err);
json_t *ad__task_get(const ad__tasks_ctx_t *t, const json_t *args, ad_error_t *err);
json_t *ad__task_intervene(const ad__tasks_ctx_t *t, const json_t *args, ad_error_t *err);

/* Engine side (tasks.c). */
/* salt/job/<jid>/new for a task job: remember which minions must answer. */
int ad__tasks_on_new(const ad__tasks_ctx_t *t, ad_event_t *ev);
/* salt/job/<jid>/ret/<minion> carrying metadata.autodeploy_task. */
int ad__tasks_on_return(const ad__tasks_ctx_t *t, ad_event_t *ev);
/* autodeploy/intervene/<task>: signed by the master side. */
int ad__tasks_on_intervene(const ad__tasks_ctx_t *t, ad_event_t *ev);
/* Running tasks whose current step's returns are all stored, although no
 * return event moved them on (they were backfilled from the job cache):
 * move them on now. The watchdog calls it, and the engine after a backfill. */
void ad__tasks_settle(const ad__tasks_ctx_t *t);
/* Every watchdog tick: settle, deadlines, due retries, queued tasks. */
void ad__tasks_watchdog(const ad__tasks_ctx_t *t);
/* The wall clock stepped by step_ms (core/clock.h): move the stored
 * wall-clock times the watchdog compares with it, each running step's
 * deadline_ms and each queued retry's retry_at_ms, by the step, so that each
 * keeps the time it had left; a task changed in [since, now] is left alone
 * (its times were written on the new clock). Each move is conditional on the
 * time read, bumps `rev`, sets updated_at and notes the step in `history`.
 * How many moved, or -1 + err (the caller tries again with the same
 * `since`, which skips those already moved; the watchdog must not run
 * meanwhile). */
int64_t ad__tasks_shift(const ad__tasks_ctx_t *t, int64_t step_ms, int64_t since,
                        ad_error_t *err);
/* The counters as {refused_forged_returns, ...} (new reference), or NULL. */
json_t *ad__tasks_stats_json(const ad__tasks_ctx_t *t);

/* tasks_store.c: the document layer */
json_t *ad__task_load(const ad__tasks_ctx_t *t, const char *id, ad_error_t *err);
/* One change of state, as ad__task_move applies it. */
typedef struct {
  ad__task_cause_t cause; /* its target state and allowed origins: task_rules.h */
  const char *jid;        /* if set: only while this is still the task's job */
  json_t *set;            /* more fields to set (borrowed, may be NULL) */
  const char *why;        /* the history entry's cause text */
  const char *actor;      /* who (NULL: "autodeploy") */
} ad__task_change_t;
/* Conditional transition: only if ad__task_can_move(state, target, cause)
 * holds for the stored state (and the jid still matches). Returns the task
 * after, or NULL when the condition did not hold (err->code AD_ESTATE) or
 * on store errors. */
json_t *ad__task_move(const ad__tasks_ctx_t *t, const char *id, const ad__task_change_t *ch,
                      ad_error_t *err);
/* A refusal from an untrusted source (forged return, unsigned intervention)
 * noted in `history`, at most AD__TASK_MAX_REFUSAL_NOTES per task (counted
 * in `refusals`) so that a flood cannot grow the document; the stats count
 * every one. 1 noted, 0 over the bound (or no such task), <0 store error. */
#define AD__TASK_MAX_REFUSAL_NOTES 32
int ad__task_note_refusal(const ad__tasks_ctx_t *t, const char *id, const char *what,
                          const char *cause);
/* Append a history entry without changing state (refusals, probes). */
int ad__task_note(const ad__tasks_ctx_t *t, const char *id, const char *what,
                  const char *cause, const char *actor);

#endif
