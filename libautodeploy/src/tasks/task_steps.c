/*
 * task_steps.c - a step started and stopped. Starting moves the task to
 * running with a fresh jid (ad__task_move, tasks_store.c), then fires a
 * signed run event; the reactor makes it a state.apply with our jid and
 * metadata, whose returns tasks.c follows. Stopping fires a signed kill.
 * Shared by the runner commands (task_cmds.c) and the engine (tasks.c)
 * through tasks_private.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/sign.h"
#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "store/docs.h"
#include "tasks/tasks_private.h"

void ad__task_alert(const ad__tasks_ctx_t *t, const json_t *task, const char *what,
                    const char *detail)
{
  if (!t->alert)
    return;
  char title[160], text[1024], dedup[160];
  snprintf(title, sizeof title, "autodeploy task %s %s", ad__jstr(task, "_id"), what);
  snprintf(text, sizeof text,
           "### task %s %s\n- target: `%s`\n- step: %lld (%s), attempt %lld\n- jid: `%s`\n"
           "- reason: %s\n- detail: %s\n\nInspect: `salt-run autodeploy.task %s`",
           ad__jstr(task, "_id"), what, ad__jstr(json_object_get(task, "target"), "tgt"),
           (long long)ad__jint(task, "step"),
           ad__jstr(json_array_get(json_object_get(task, "steps"), (size_t)ad__jint(task, "step")), "name"),
           (long long)ad__jint(task, "attempt"), ad__jstr(task, "jid"), ad__jstr(task, "reason"),
           detail ? detail : "-", ad__jstr(task, "_id"));
  snprintf(dedup, sizeof dedup, "task/%s/%s/%lld", ad__jstr(task, "_id"), what,
           (long long)ad__jint(task, "attempt"));
  t->alert(t->alert_user, title, text, dedup);
}

void ad__task_new_jid(char out[48])
{
  int64_t ms = ad__now_ms();
  char iso[32];
  ad__iso_ms(ms, iso); /* 2026-11-27T13:50:00.123Z */
  unsigned r;
  FILE *f = fopen("/dev/urandom", "rb");
  if (!f || fread(&r, sizeof r, 1, f) != 1)
    r = (unsigned)ms ^ (unsigned)(uintptr_t)out;
  if (f)
    fclose(f);
  /* Salt's 20-digit jid of the time, plus a suffix no Salt jid has */
  snprintf(out, 48, "%.4s%.2s%.2s%.2s%.2s%.2s%.3s000_ad%08x", iso, iso + 5, iso + 8,
           iso + 11, iso + 14, iso + 17, iso + 20, r);
}

json_t *ad__task_move_doc(const ad__tasks_ctx_t *t, const json_t *task, ad__task_cause_t cause,
                          const char *jid, json_t *set, const char *why, const char *actor,
                          ad_error_t *err)
{
  ad__task_change_t ch = {cause, jid, set, why, actor};
  return ad__task_move(t, ad__jstr(task, "_id"), &ch, err);
}

/* The run event's body for step `st` (the task's pillar under the step's). */
static json_t *run_body(const json_t *task, const json_t *st, const char *jid,
                        json_int_t attempt)
{
  json_t *pillar = json_deep_copy(json_object_get(task, "pillar"));
  if (!json_is_object(pillar)) {
    json_decref(pillar);
    pillar = json_object();
  }
  if (!pillar || json_object_update_recursive(pillar, json_object_get(st, "pillar"))) {
    json_decref(pillar);
    return NULL;
  }
  json_t *target = json_object_get(task, "target");
  /* "o" steals pillar, on failure too */
  return json_pack("{s:s,s:I,s:s,s:O,s:s,s:O,s:o,s:s,s:I}", "task_id", ad__jstr(task, "_id"),
                   "attempt", attempt, "jid", jid, "tgt", json_object_get(target, "tgt"),
                   "tgt_type", ad__jstr(target, "tgt_type"), "mods", json_object_get(st, "mods"),
                   "pillar", pillar, "step", ad__jstr(st, "name"), "timeout",
                   ad__jint(task, "timeout"));
}

/* Fire the run of `moved`'s current step; on failure fail the task now
 * rather than wait for the deadline. 0 or AD_EIO. */
static int fire_run(const ad__tasks_ctx_t *t, const json_t *moved, const json_t *st,
                    json_int_t attempt, ad_error_t *err)
{
  const char *id = ad__jstr(moved, "_id"), *jid = ad__jstr(moved, "jid");
  char tag[256];
  snprintf(tag, sizeof tag, "autodeploy/task/%s/run", id);
  ad_error_t ferr;
  json_t *body = run_body(moved, st, jid, attempt);
  int rc = body ? ad__fire_signed(t->bus, t->key_path, tag, body, &ferr)
                : ad__err(&ferr, AD_ENOMEM, "tasks", "building the run event");
  json_decref(body);
  if (rc == 0)
    return 0;
  json_t *f = ad__task_move_doc(t, moved, AD__TC_FAIL, jid, NULL, ferr.message, NULL, NULL);
  if (f)
    ad__task_alert(t, f, "failed", ferr.message);
  json_decref(f);
  return ad__err(err, AD_EIO, "tasks", "task %s: %s", id, ferr.message);
}

json_t *ad__task_start_step(const ad__tasks_ctx_t *t, const json_t *task, ad__task_cause_t cause,
                            json_int_t step, json_int_t attempt, const char *why,
                            const char *actor, ad_error_t *err)
{
  const char *id = ad__jstr(task, "_id");
  json_t *st = json_array_get(json_object_get(task, "steps"), (size_t)step);
  if (!st) {
    ad__err(err, AD_EINVAL, "tasks", "task %s has no step %lld", id, (long long)step);
    return NULL;
  }
  char jid[48];
  ad__task_new_jid(jid);
  int64_t deadline = ad__now_ms() + ad__jint(task, "timeout") * 1000;
  json_t *set = json_pack("{s:s,s:I,s:I,s:I,s:[],s:b,s:I}", "jid", jid, "step", step,
                          "attempt", attempt, "deadline_ms", (json_int_t)deadline,
                          "minions", "pause_requested", 0, "retry_at_ms", (json_int_t)0);
  if (!set) {
    ad__err(err, AD_ENOMEM, "tasks", "starting task %s", id);
    return NULL;
  }
  /* the next step only while the finished one is still the task's job:
   * two engines that both saw it finish start the next step once */
  const char *on_job = cause == AD__TC_NEXT_STEP ? ad__jstr(task, "jid") : NULL;
  json_t *moved = ad__task_move_doc(t, task, cause, on_job, set, why, actor, err);
  json_decref(set);
  if (moved && fire_run(t, moved, st, attempt, err)) {
    json_decref(moved);
    return NULL;
  }
  return moved;
}

void ad__task_fire_kill(const ad__tasks_ctx_t *t, const json_t *task)
{
  json_t *target = json_object_get(task, "target");
  char kjid[48];
  ad__task_new_jid(kjid);
  json_int_t attempt = ad__jint(task, "attempt");
  json_t *body = json_pack("{s:s,s:I,s:s,s:s,s:O,s:s}", "task_id", ad__jstr(task, "_id"),
                           "attempt", attempt > 0 ? attempt : 1, "jid", ad__jstr(task, "jid"),
                           "kill_jid", kjid, "tgt", json_object_get(target, "tgt"),
                           "tgt_type", ad__jstr(target, "tgt_type"));
  char tag[256];
  snprintf(tag, sizeof tag, "autodeploy/task/%s/kill", ad__jstr(task, "_id"));
  ad_error_t err;
  if (!body)
    AD_LOG_E("tasks", "task %s: cannot build the kill event", ad__jstr(task, "_id"));
  else if (ad__fire_signed(t->bus, t->key_path, tag, body, &err))
    AD_LOG_E("tasks", "task %s: cannot fire kill: %s", ad__jstr(task, "_id"), err.message);
  json_decref(body);
}

/* One state job per minion at a time: Salt refuses a second state.apply. */
int ad__task_target_busy(const ad__tasks_ctx_t *t, const json_t *task)
{
  json_t *target = json_object_get(task, "target");
  char *tgt = json_dumps(json_object_get(target, "tgt"), JSON_ENCODE_ANY | JSON_COMPACT);
  bson_error_t be;
  bson_t *q = bson_new();
  BSON_APPEND_UTF8(q, "state", "running");
  BSON_APPEND_UTF8(q, "target_key", tgt ? tgt : "");
  mongoc_client_t *c = ad__store_pop(t->store);
  mongoc_collection_t *coll = ad__store_coll(t->store, c, t->collection);
  int64_t n = mongoc_collection_count_documents(coll, q, NULL, NULL, NULL, &be);
  mongoc_collection_destroy(coll);
  ad__store_push(t->store, c);
  bson_destroy(q);
  free(tgt);
  return n != 0; /* an error counts as busy: try again next tick */
}
