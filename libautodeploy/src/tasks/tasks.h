/* tasks.h - deploy tasks: documents in the `tasks` collection, a state
 * machine changed only by conditional single-document updates (no
 * transactions), Salt jobs with pre-assigned jids and metadata.
 *
 *   queued -> running -> succeeded | failed | timed_out | cancelled
 *   running <-> paused (between steps)      failed|timed_out|cancelled -> running (retry)
 *
 * Every transition appends {at, from, to, cause, actor} to `history`.
 * docs/tasks.md has the document schema. */
#ifndef AD_TASKS_H
#define AD_TASKS_H

#include <jansson.h>

#include "autodeploy/bus.h"
/* Compatibility: the clock lived here; files that still reach
 * ad__now_ms / ad__iso_ms through tasks.h should include core/clock.h. */
#include "core/clock.h"
#include "store/store.h"

typedef struct ad__notifier ad__notifier_hook_t;

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
} ad__tasks_ctx_t;

/* Runner commands (JSON in, JSON out). NULL + err naming the argument. */
json_t *ad__task_create(const ad__tasks_ctx_t *t, const json_t *args, ad_error_t *err);
json_t *ad__task_list(const ad__tasks_ctx_t *t, const json_t *args, ad_error_t *err);
json_t *ad__task_get(const ad__tasks_ctx_t *t, const json_t *args, ad_error_t *err);
json_t *ad__task_intervene(const ad__tasks_ctx_t *t, const json_t *args, ad_error_t *err);

/* Engine side. */
/* salt/job/<jid>/new for a task job: remember which minions must answer. */
int ad__tasks_on_new(const ad__tasks_ctx_t *t, ad_event_t *ev);
/* salt/job/<jid>/ret/<minion> carrying metadata.autodeploy_task. */
int ad__tasks_on_return(const ad__tasks_ctx_t *t, ad_event_t *ev);
/* autodeploy/intervene/<task>: signed by the master side. */
int ad__tasks_on_intervene(const ad__tasks_ctx_t *t, ad_event_t *ev);
/* Every watchdog tick: deadlines, due retries, queued tasks. */
void ad__tasks_watchdog(const ad__tasks_ctx_t *t);

/* tasks_store.c: the document layer */
json_t *ad__task_load(const ad__tasks_ctx_t *t, const char *id, ad_error_t *err);
/* Conditional transition: only if state is one of `from` (NULL-terminated).
 * `set` (may be NULL) adds fields. Returns the task after, or NULL when the
 * condition did not hold (err->code AD_ESTATE) or on store errors. */
json_t *ad__task_move(const ad__tasks_ctx_t *t, const char *id,
                      const char *const *from, const char *to, json_t *set,
                      const char *cause, const char *actor, ad_error_t *err);
/* Append a history entry without changing state (refusals, probes). */
int ad__task_note(const ad__tasks_ctx_t *t, const char *id, const char *what,
                  const char *cause, const char *actor);

#endif
