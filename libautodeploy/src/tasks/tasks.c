/*
 * tasks.c - the engine's side of a task: which minions a job of ours
 * targets (salt/job/<jid>/new), its returns followed until the step is
 * done on every minion, then the next step, a retry, a pause or the end
 * (ad__task_after_step, task_rules.c); forged and stale returns refused
 * and noted; signed interventions (cancel, pause, resume, retry) carried
 * out; the watchdog (steps finished unseen, deadlines, queued work); the
 * refusal counters. Steps start and stop through task_steps.c; state
 * changes go through ad__task_move (tasks_store.c), so each is atomic and
 * audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/sign.h"
#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "store/bson_msgpack.h"
#include "store/cursor.h"
#include "store/docs.h"
#include "store/jobcache.h"
#include "tasks/tasks_private.h"

/* Count one refusal (the engine's stats JSON reads these). */
#define COUNT(t, field)                                                       \
  do {                                                                        \
    if ((t)->stats)                                                           \
      __atomic_fetch_add(&(t)->stats->field, 1, __ATOMIC_RELAXED);            \
  } while (0)

/* Record the minions that job `jid` targets on the running task of that
 * job, unless they are known already: the first record wins (the master
 * publishes the real salt/job/<jid>/new before the job reaches any minion,
 * and writes the same list to its job cache; a minion can send this tag
 * too: there is no blacklist on the plain fire_master path,
 * docs/registration-research.md). `append` writes the list into `set`. */
static int record_minions(const ad__tasks_ctx_t *t, const char *jid, size_t jn,
                          void (*append)(bson_t *set, const void *list), const void *list)
{
  bson_t *q = bson_new(), *u = bson_new(), set, none;
  bson_append_utf8(q, "jid", 3, jid, (int)jn);
  BSON_APPEND_UTF8(q, "state", "running");
  BSON_APPEND_DOCUMENT_BEGIN(q, "minions.0", &none);
  BSON_APPEND_BOOL(&none, "$exists", false);
  bson_append_document_end(q, &none);
  BSON_APPEND_DOCUMENT_BEGIN(u, "$set", &set);
  append(&set, list);
  bson_append_document_end(u, &set);
  ad_error_t err;
  int64_t n = ad__store_update_one(t->store, t->collection, q, u, &err);
  bson_destroy(q);
  bson_destroy(u);
  if (n < 0)
    AD_LOG_E("tasks", "recording minions of job %.*s: %s", (int)jn, jid, err.message);
  return n < 0 ? 1 : 0;
}

static void append_event_list(bson_t *set, const void *list)
{
  ad__bson_append_value(set, "minions", list, NULL);
}

static void append_json_list(bson_t *set, const void *list)
{
  bson_t arr;
  size_t i;
  const json_t *m;
  BSON_APPEND_ARRAY_BEGIN(set, "minions", &arr);
  json_array_foreach((const json_t *)list, i, m) {
    char key[16];
    const char *k;
    bson_uint32_to_string((uint32_t)i, &k, key, sizeof key);
    BSON_APPEND_UTF8(&arr, k, json_string_value(m));
  }
  bson_append_array_end(set, &arr);
}

int ad__tasks_on_new(const ad__tasks_ctx_t *t, ad_event_t *ev)
{
  const char *jid;
  size_t jn;
  if (ad_event_get_str(ev, "jid", &jid, &jn) || !memmem(jid, jn, "_ad", 3))
    return 0; /* not one of ours */
  const ad_value_t *minions = ad_event_find(ev, "minions");
  return minions ? record_minions(t, jid, jn, append_event_list, minions) : 0;
}

/* The task's job went by while we did not listen (its salt/job/<jid>/new
 * with it): learn the minions it targets from the master's job cache,
 * record them, and put them on `task`. 1 when `task` now knows them. */
static int learn_minions(const ad__tasks_ctx_t *t, json_t *task)
{
  if (json_array_size(ad__task_expected(task)) > 0)
    return 1;
  const char *jid = ad__jstr(task, "jid");
  json_t *list = NULL;
  if (!*t->job_dir || !*jid ||
      ad__jobcache_minions(t->job_dir, t->hash_type, jid, &list) != 1)
    return 0;
  int ok = json_array_size(list) > 0 &&
           record_minions(t, jid, strlen(jid), append_json_list, list) == 0;
  if (ok) {
    AD_LOG_I("tasks", "task %s: the minions of job %s read from the master's job cache "
             "(its salt/job/%s/new went by unseen)", ad__jstr(task, "_id"), jid, jid);
    json_object_set(task, "minions", list);
  }
  json_decref(list);
  return ok;
}

/* ad__task_cache_fn over Salt's job cache: only what the master
 * authenticated counts (jobcache.h). */
static int cache_lookup(void *user, const char *jid, const char *minion, int64_t *retcode)
{
  const ad__tasks_ctx_t *t = user;
  return ad__jobcache_return(t->job_dir, t->hash_type, jid, minion, retcode);
}

static ad__task_cache_fn lookup_of(const ad__tasks_ctx_t *t)
{
  return *t->job_dir ? cache_lookup : NULL; /* "" = trust the bus */
}

/* The `returns` rows of the task's current jid, or NULL. */
static json_t *current_returns(const ad__tasks_ctx_t *t, const json_t *task)
{
  bson_t *q = BCON_NEW("jid", BCON_UTF8(ad__jstr(task, "jid")));
  json_t *rets = q ? ad__store_find_json(t->store, "returns", q, NULL, NULL) : NULL;
  if (q)
    bson_destroy(q);
  return rets;
}

/* The current step finished on every minion: move the task on
 * (ad__task_after_step decides how). */
static void step_done(const ad__tasks_ctx_t *t, const json_t *task, int failed, const char *detail)
{
  ad__task_next_t nx;
  ad__task_after_step(task, failed, &nx);
  const char *jid = ad__jstr(task, "jid");
  if (nx.cause == AD__TC_NEXT_STEP) {
    json_decref(ad__task_start_step(t, task, nx.cause, nx.step, nx.attempt, "next step", NULL,
                                    NULL));
    return;
  }
  char why[400];
  json_t *set = NULL;
  snprintf(why, sizeof why, "%s", nx.cause == AD__TC_SUCCEED ? "every step succeeded" : detail);
  if (nx.cause == AD__TC_PAUSE_BETWEEN) {
    snprintf(why, sizeof why, "paused between steps");
    set = json_pack("{s:I,s:I}", "resume_step", nx.step, "resume_attempt", nx.attempt);
  } else if (nx.cause == AD__TC_REQUEUE) {
    snprintf(why, sizeof why, "attempt %lld failed (%s); retry in %llds",
             (long long)nx.attempt - 1, detail, (long long)nx.backoff_s);
    set = json_pack("{s:I,s:I,s:I}", "retry_at_ms", (json_int_t)(ad__now_ms() + nx.backoff_s * 1000),
                    "resume_step", nx.step, "resume_attempt", nx.attempt);
  }
  if (!set && (nx.cause == AD__TC_PAUSE_BETWEEN || nx.cause == AD__TC_REQUEUE)) {
    AD_LOG_E("tasks", "task %s: no memory to move it on", ad__jstr(task, "_id"));
    return;
  }
  json_t *moved = ad__task_move_doc(t, task, nx.cause, jid, set, why, NULL, NULL);
  json_decref(set);
  if (moved && nx.cause == AD__TC_FAIL)
    ad__task_alert(t, moved, "failed", detail);
  if (moved && nx.cause == AD__TC_REQUEUE && nx.backoff_s == 0 && !ad__task_target_busy(t, moved))
    json_decref(ad__task_start_step(t, moved, AD__TC_START, nx.step, nx.attempt, "retry", NULL,
                                    NULL));
  json_decref(moved);
}

/* The kill job's answer is the probe: was the step still alive? */
static void note_kill_probe(const ad__tasks_ctx_t *t, const char *tid, ad_event_t *ev)
{
  const char *ret = "", *who = "?";
  size_t rn = 0, wn = 1;
  ad_event_get_str(ev, "return", &ret, &rn);
  ad_event_get_str(ev, "id", &who, &wn);
  char note[300];
  snprintf(note, sizeof note, "probe on %.*s: %s", (int)(wn > 64 ? 64 : wn), who,
           rn ? "job was alive and was killed" : "job was not running any more");
  if (rn)
    snprintf(note + strlen(note), sizeof note - strlen(note), " (%.*s)",
             (int)(rn > 120 ? 120 : rn), ret);
  ad__task_note(t, tid, note, "kill", "autodeploy");
}

/* Follow one return of job `jid` from `minion`: tally the step (and move
 * the task on when it is done), and judge this minion's return. The return
 * document is written by returns.c on another worker, and the job cache by
 * the master right after the event: wait up to 5 s for both. -1 when the
 * task is not (any more) running this job; *task_p is the task last read. */
static int follow_return(const ad__tasks_ctx_t *t, const char *tid, const char *jid,
                         const char *minion, json_t **task_p)
{
  int v = -1;
  for (int tries = 0; tries < 50; tries++) {
    json_decref(*task_p);
    json_t *task = *task_p = ad__task_load(t, tid, NULL);
    if (!task || strcmp(ad__jstr(task, "jid"), jid) || strcmp(ad__jstr(task, "state"), "running"))
      return -1;
    if (tries > 0)
      learn_minions(t, task); /* its /new may have gone by unseen */
    json_t *rets = current_returns(t, task);
    if (rets) {
      ad__task_tally_t tl;
      ad__task_tally(task, rets, lookup_of(t), (void *)t, &tl);
      v = ad__task_judge_return(task, rets, minion, lookup_of(t), (void *)t);
      json_decref(rets);
      if (tl.done) {
        step_done(t, task, tl.failed > 0, tl.detail);
        return v;
      }
      if (v == AD__TR_COUNTED || v == AD__TR_NOT_TARGETED)
        return v; /* the other minions' returns will finish the step */
    }
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return v;
}

/* Positive evidence that a return did not count: counted, logged, noted. */
static void refuse_return(const ad__tasks_ctx_t *t, const char *tid, const char *jid,
                          const char *minion, const char *reason)
{
  COUNT(t, refused_forged_returns);
  char note[300];
  snprintf(note, sizeof note, "return refused: job %s from %.64s: %s", jid, minion, reason);
  AD_LOG_W("tasks", "task %s: %s", tid, note);
  ad__task_note_refusal(t, tid, note, "forged return");
}

/* A return of a job other than the task's current one. */
static void stale_return(const ad__tasks_ctx_t *t, const json_t *task, const char *tid,
                         const char *jid, const char *minion)
{
  if (!task) {
    COUNT(t, refused_forged_returns);
    AD_LOG_W("tasks", "return of job %s from %s names task %s, which does not exist", jid,
             minion, tid);
    return;
  }
  if (!strcmp(ad__jstr(task, "jid"), jid))
    return; /* the current job, and the task moved on: nothing to say */
  COUNT(t, stale_returns);
  char note[300];
  snprintf(note, sizeof note, "return of an earlier job %s ignored (from %.64s)", jid, minion);
  ad__task_note_refusal(t, tid, note, "stale return");
}

int ad__tasks_on_return(const ad__tasks_ctx_t *t, ad_event_t *ev)
{
  const char *id, *jid, *who = "?", *step;
  size_t idn, jn, wn = 1, sn;
  if (ad_event_get_str(ev, "metadata:autodeploy_task", &id, &idn) ||
      ad_event_get_str(ev, "jid", &jid, &jn))
    return 0;
  ad_event_get_str(ev, "id", &who, &wn);
  char tid[128], j[64], minion[128];
  snprintf(tid, sizeof tid, "%.*s", (int)(idn > 100 ? 100 : idn), id);
  snprintf(j, sizeof j, "%.*s", (int)(jn > 60 ? 60 : jn), jid);
  snprintf(minion, sizeof minion, "%.*s", (int)(wn > 100 ? 100 : wn), who);
  if (ad_event_get_str(ev, "metadata:step", &step, &sn) == 0 && sn == 4 &&
      !memcmp(step, "kill", 4)) {
    note_kill_probe(t, tid, ev);
    return 0;
  }
  json_t *task = NULL;
  int v = follow_return(t, tid, j, minion, &task);
  if (v < 0)
    stale_return(t, task, tid, j, minion);
  else if (v == AD__TR_NOT_TARGETED || v == AD__TR_NOT_CACHED)
    refuse_return(t, tid, j, minion, ad__task_return_reason((ad__task_return_t)v));
  else if (v != AD__TR_COUNTED)
    AD_LOG_W("tasks", "task %s: return of %s from %s not counted after 5 s: %s", tid, j,
             minion, ad__task_return_reason((ad__task_return_t)v));
  json_decref(task);
  return 0;
}

/* A minion (or anyone without the master key) tried to intervene. */
static int refuse_unsigned(const ad__tasks_ctx_t *t, const char *tid, ad_event_t *ev,
                           const char *why)
{
  const char *who = "?";
  size_t wn = 1;
  ad_event_get_str(ev, "id", &who, &wn);
  COUNT(t, refused_unsigned);
  AD_LOG_W("tasks", "intervention on task %s refused: %s (from %.*s)", tid, why,
           (int)(wn > 64 ? 64 : wn), who);
  char note[300];
  snprintf(note, sizeof note, "intervention refused: %s (from %.*s)", why,
           (int)(wn > 64 ? 64 : wn), who);
  ad__task_note_refusal(t, tid, note, "guard");
  return 1;
}

/* Carry out `cause` (from ad__task_intervention) on `task`. */
static json_t *apply_intervention(const ad__tasks_ctx_t *t, const json_t *task, int cause,
                                  const char *why, const char *actor, ad_error_t *err)
{
  json_t *set = NULL, *moved = NULL;
  switch (cause) {
  case AD__TC_CANCEL:
    moved = ad__task_move_doc(t, task, AD__TC_CANCEL, NULL, NULL, why, actor, err);
    if (moved && !strcmp(ad__jstr(task, "state"), "running"))
      ad__task_fire_kill(t, task); /* the kill job's answer says whether it was alive */
    return moved;
  case AD__TC_REQUEST_PAUSE:
    set = json_pack("{s:b}", "pause_requested", 1);
    why = "pause requested: stops after this step";
    break;
  case AD__TC_WITHDRAW_PAUSE:
    set = json_pack("{s:b}", "pause_requested", 0);
    break;
  case AD__TC_PAUSE:
    set = json_pack("{s:I,s:I}", "resume_step", ad__jint(task, "step"), "resume_attempt",
                    ad__jint(task, "attempt") ? ad__jint(task, "attempt") : 1);
    break;
  case AD__TC_RESUME:
    return ad__task_start_step(t, task, AD__TC_RESUME, ad__jint(task, "resume_step"),
                               ad__jint(task, "resume_attempt") ? ad__jint(task, "resume_attempt") : 1,
                               why, actor, err);
  case AD__TC_RETRY:
    return ad__task_start_step(t, task, AD__TC_RETRY, ad__jint(task, "step"),
                               ad__jint(task, "attempt") + 1, why, actor, err);
  default:
    ad__err(err, AD_EINVAL, "tasks", "no intervention %d", cause);
    return NULL;
  }
  if (set)
    moved = ad__task_move_doc(t, task, (ad__task_cause_t)cause, NULL, set, why, actor, err);
  else
    ad__err(err, AD_ENOMEM, "tasks", "intervening on task %s", ad__jstr(task, "_id"));
  json_decref(set);
  return moved;
}

/* A signed request {task_id, action, reason, actor}: carry it out, or note
 * why not. 0 done, 1 refused. */
static int intervene(const ad__tasks_ctx_t *t, const char *tid, const json_t *req)
{
  const char *action = ad__jstr(req, "action"), *reason = ad__jstr(req, "reason"),
             *actor = ad__jstr(req, "actor");
  char why[300];
  snprintf(why, sizeof why, "%s: %s", action, reason);
  ad_error_t err = {0};
  json_t *task = ad__task_load(t, tid, &err), *moved = NULL;
  if (!task) {
    COUNT(t, refused_interventions);
    AD_LOG_W("tasks", "intervention %s: %s", action, err.message);
    return 1;
  }
  const char *state = ad__jstr(task, "state");
  int cause = ad__task_intervention(action, ad__task_state_parse(state),
                                    json_is_true(json_object_get(task, "pause_requested")));
  if (cause < 0 && ad__task_intervention(action, AD__TS_QUEUED, 0) < 0 &&
      ad__task_intervention(action, AD__TS_FAILED, 0) < 0)
    ad__err(&err, AD_EINVAL, "tasks", "unknown action %s", action);
  else if (cause < 0)
    ad__err(&err, AD_ESTATE, "tasks", "task %s is %s: cannot %s", tid, state, action);
  else
    moved = apply_intervention(t, task, cause, why, actor, &err);
  if (!moved) {
    COUNT(t, refused_interventions);
    char note[400];
    snprintf(note, sizeof note, "%s refused: %s", action, err.message);
    ad__task_note(t, tid, note, reason, actor);
    AD_LOG_W("tasks", "task %s: %s", tid, note);
  }
  json_decref(moved);
  json_decref(task);
  return moved ? 0 : 1;
}

int ad__tasks_on_intervene(const ad__tasks_ctx_t *t, ad_event_t *ev)
{
  const char *tag = ad_event_tag(ev);
  const char *tid = tag + strlen("autodeploy/intervene/");
  const char *body;
  size_t blen;
  ad_error_t err;
  if (ad__verify_signed(ev, t->key_path, &body, &blen, &err))
    return refuse_unsigned(t, tid, ev, err.message);
  json_error_t je;
  json_t *req = json_loadb(body, blen, 0, &je);
  if (!req || strcmp(ad__jstr(req, "task_id"), tid) != 0) {
    COUNT(t, refused_interventions);
    AD_LOG_W("tasks", "intervention on task %s refused: body names another task", tid);
    json_decref(req);
    return 1;
  }
  int rc = intervene(t, tid, req);
  json_decref(req);
  return rc;
}

/* Running past the deadline: kill (the kill job's answer is the probe of
 * whether it was still alive) and mark timed_out. */
static void time_out_late(const ad__tasks_ctx_t *t, int64_t now)
{
  bson_t *q = BCON_NEW("state", BCON_UTF8("running"), "deadline_ms", "{", "$lt",
                       BCON_INT64(now), "}");
  json_t *late = ad__store_find_json(t->store, t->collection, q, NULL, NULL);
  bson_destroy(q);
  size_t i;
  json_t *task;
  json_array_foreach(late, i, task) {
    char why[200];
    snprintf(why, sizeof why, "no result %llds after the step started (timeout)",
             (long long)ad__jint(task, "timeout"));
    json_t *moved = ad__task_move_doc(t, task, AD__TC_TIME_OUT, ad__jstr(task, "jid"), NULL,
                                      why, "watchdog", NULL);
    if (moved) {
      ad__task_fire_kill(t, task);
      ad__task_alert(t, moved, "timed_out", why);
    }
    json_decref(moved);
  }
  json_decref(late);
}

/* Queued work whose time has come and whose target is free. */
static void start_due(const ad__tasks_ctx_t *t, int64_t now)
{
  bson_t *q = BCON_NEW("state", BCON_UTF8("queued"), "retry_at_ms", "{", "$lte", BCON_INT64(now), "}");
  bson_t *opts = BCON_NEW("sort", "{", "created_at", BCON_INT32(1), "}");
  json_t *due = ad__store_find_json(t->store, t->collection, q, opts, NULL);
  bson_destroy(q);
  bson_destroy(opts);
  size_t i;
  json_t *task;
  json_array_foreach(due, i, task) {
    if (ad__task_target_busy(t, task))
      continue;
    json_int_t st = ad__jint(task, "resume_step"), at = ad__jint(task, "resume_attempt");
    json_decref(ad__task_start_step(t, task, AD__TC_START, st, at ? at : 1,
                                    ad__jint(task, "attempt") ? "retry" : "started", "watchdog",
                                    NULL));
  }
  json_decref(due);
}

void ad__tasks_settle(const ad__tasks_ctx_t *t)
{
  bson_t *q = BCON_NEW("state", BCON_UTF8("running"));
  json_t *running = ad__store_find_json(t->store, t->collection, q, NULL, NULL);
  bson_destroy(q);
  size_t i;
  json_t *task;
  json_array_foreach(running, i, task) {
    learn_minions(t, task);
    json_t *rets = current_returns(t, task);
    ad__task_tally_t tl;
    if (rets) {
      ad__task_tally(task, rets, lookup_of(t), (void *)t, &tl);
      if (tl.done) {
        AD_LOG_I("tasks", "task %s: step finished while its returns were not followed "
                 "(engine down or reconnecting); moving it on", ad__jstr(task, "_id"));
        COUNT(t, settled_from_store);
        step_done(t, task, tl.failed > 0, tl.detail);
      }
    }
    json_decref(rets);
  }
  json_decref(running);
}

void ad__tasks_watchdog(const ad__tasks_ctx_t *t)
{
  int64_t now = ad__now_ms();
  ad__tasks_settle(t); /* before the deadline: a step that finished is not late */
  time_out_late(t, now);
  start_due(t, now);
}

json_t *ad__tasks_stats_json(const ad__tasks_ctx_t *t)
{
  ad__tasks_stats_t z = {0};
  ad__tasks_stats_t *s = t->stats ? t->stats : &z;
#define LOAD(f) (json_int_t) __atomic_load_n(&s->f, __ATOMIC_RELAXED)
  return json_pack("{s:I,s:I,s:I,s:I,s:I}", "refused_forged_returns",
                   LOAD(refused_forged_returns), "refused_unsigned", LOAD(refused_unsigned),
                   "refused_interventions", LOAD(refused_interventions), "stale_returns",
                   LOAD(stale_returns), "settled_from_store", LOAD(settled_from_store));
#undef LOAD
}
