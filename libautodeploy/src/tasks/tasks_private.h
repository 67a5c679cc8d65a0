/* tasks_private.h - shared by the task files: starting and stopping a
 * step (task_steps.c), used by the runner commands (task_cmds.c) and the
 * engine side (tasks.c). */
#ifndef AD_TASKS_PRIVATE_H
#define AD_TASKS_PRIVATE_H

#include "tasks/tasks.h"

/* A new jid: Salt's 20 digits of the time, then "_ad" and 8 random hex
 * digits, a suffix no Salt jid has (how ad__tasks_on_new knows ours). */
void ad__task_new_jid(char out[48]);
/* ad__task_move on the document `task` (its _id), the change spelled out:
 * `jid` (may be NULL) the job it must still be on, `set` (borrowed, may be
 * NULL) more fields, `actor` NULL for "autodeploy". The task after, or
 * NULL + err as ad__task_move. */
json_t *ad__task_move_doc(const ad__tasks_ctx_t *t, const json_t *task, ad__task_cause_t cause,
                          const char *jid, json_t *set, const char *why, const char *actor,
                          ad_error_t *err);
/* Move to running on step `step`, attempt `attempt` (`cause`: START,
 * NEXT_STEP, RESUME or RETRY), and fire the signed run event; a run that
 * cannot be fired fails the task at once. The task after (new reference),
 * or NULL + err. */
json_t *ad__task_start_step(const ad__tasks_ctx_t *t, const json_t *task, ad__task_cause_t cause,
                            json_int_t step, json_int_t attempt, const char *why,
                            const char *actor, ad_error_t *err);
/* Fire the signed kill of the task's current job (errors are logged). */
void ad__task_fire_kill(const ad__tasks_ctx_t *t, const json_t *task);
/* Is another task running on exactly this target? 1 also when the store
 * cannot say (the caller tries again at the next tick). */
int ad__task_target_busy(const ad__tasks_ctx_t *t, const json_t *task);
/* Tell the alert hook (if any) that `task` is `what` ("failed",
 * "timed_out"), with `detail` (may be NULL). */
void ad__task_alert(const ad__tasks_ctx_t *t, const json_t *task, const char *what,
                    const char *detail);

#endif
