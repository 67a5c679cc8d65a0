/*
 * tasks.c - what happens to a task: create (runner), start a step (fire a
 * signed run event; the reactor makes it a state.apply with our jid and
 * metadata), follow its returns, retry, pause/resume between steps, cancel
 * (kill the job), and the watchdog. State changes go through
 * ad__task_move (tasks_store.c), so each is atomic and audited; which ones
 * are allowed is the table in task_rules.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "store/cursor.h"
#include "store/docs.h"
#include "store/bson_msgpack.h"
#include "core/error_private.h"
#include "store/jobcache.h"
#include "core/log_private.h"
#include "bus/sign.h"
#include "tasks/tasks.h"

/* Count one refusal (the engine's stats JSON reads these). */
#define COUNT(t, field)                                                       \
  do {                                                                        \
    if ((t)->stats)                                                           \
      __atomic_fetch_add(&(t)->stats->field, 1, __ATOMIC_RELAXED);            \
  } while (0)

static void alert(const ad__tasks_ctx_t *t, const json_t *task, const char *what,
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

static void new_jid(char out[48])
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

/* A change with no extra fields, by autodeploy unless `actor`. */
static json_t *move(const ad__tasks_ctx_t *t, const json_t *task, ad__task_cause_t cause,
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
  json_t *f = move(t, moved, AD__TC_FAIL, jid, NULL, ferr.message, NULL, NULL);
  if (f)
    alert(t, f, "failed", ferr.message);
  json_decref(f);
  return ad__err(err, AD_EIO, "tasks", "task %s: %s", id, ferr.message);
}

/* Move to running on step `step`, attempt `attempt` (`cause`: START,
 * NEXT_STEP, RESUME or RETRY), and fire the run. The task after, or NULL. */
static json_t *start_step(const ad__tasks_ctx_t *t, const json_t *task, ad__task_cause_t cause,
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
  new_jid(jid);
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
  json_t *moved = move(t, task, cause, cause == AD__TC_NEXT_STEP ? ad__jstr(task, "jid") : NULL,
                       set, why, actor, err);
  json_decref(set);
  if (moved && fire_run(t, moved, st, attempt, err)) {
    json_decref(moved);
    return NULL;
  }
  return moved;
}

static void fire_kill(const ad__tasks_ctx_t *t, const json_t *task)
{
  json_t *target = json_object_get(task, "target");
  char kjid[48];
  new_jid(kjid);
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

/* Is another task running on exactly this target? (one state job per
 * minion at a time: Salt refuses a second state.apply) */
static int target_busy(const ad__tasks_ctx_t *t, const json_t *task)
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

/* ---- runner commands ------------------------------------------------------ */

static int bad(ad_error_t *err, const char *arg, const char *why)
{
  return ad__err(err, AD_EINVAL, "args", "%s: %s", arg, why);
}

static json_t *norm_mods(const json_t *m)
{
  if (json_is_string(m) && json_string_length(m) > 0)
    return json_pack("[O]", m);
  if (json_is_array(m) && json_array_size(m) > 0) {
    size_t i;
    json_t *v;
    json_array_foreach(m, i, v) if (!json_is_string(v)) return NULL;
    return json_incref((json_t *)m);
  }
  return NULL;
}

/* task.deploy's arguments, checked. */
typedef struct {
  const json_t *tgt, *pillar, *owner;
  const char *tgt_type, *by, *reason;
  json_t *steps; /* owned */
  json_int_t timeout, max_attempts, backoff_s;
} task_args_t;

static int parse_target(const json_t *a, task_args_t *ta, ad_error_t *err)
{
  static const char *const TYPES[] = {"glob", "list", "pcre", "grain", "compound", "nodegroup", NULL};
  ta->tgt = json_object_get(a, "tgt");
  if (!ta->tgt || (json_is_string(ta->tgt) && json_string_length(ta->tgt) == 0))
    return bad(err, "tgt", "required (a minion id, glob or list)");
  if (!json_is_string(ta->tgt) && !json_is_array(ta->tgt))
    return bad(err, "tgt", "must be a string or a list of minion ids");
  ta->tgt_type = json_string_value(json_object_get(a, "tgt_type"));
  if (!ta->tgt_type)
    ta->tgt_type = json_is_array(ta->tgt) ? "list" : "glob";
  for (int i = 0; TYPES[i]; i++)
    if (!strcmp(TYPES[i], ta->tgt_type))
      return 0;
  return bad(err, "tgt_type", "must be glob, list, pcre, grain, compound or nodegroup");
}

/* One {name, mods, pillar} of `steps`, normalised, or NULL. */
static json_t *parse_step(const json_t *s, size_t i)
{
  json_t *m = norm_mods(json_object_get(s, "mods"));
  const char *name = json_string_value(json_object_get(s, "name"));
  json_t *p = json_object_get(s, "pillar");
  if (!m || (p && !json_is_object(p))) {
    json_decref(m);
    return NULL;
  }
  char def[16];
  snprintf(def, sizeof def, "step%zu", i + 1);
  return json_pack("{s:s,s:o,s:o}", "name", name ? name : def, "mods", m, "pillar",
                   p ? json_incref(p) : json_object());
}

/* `steps` ([{name, mods, pillar}]) or `mods` (one step "deploy"). */
static int parse_steps(const json_t *a, task_args_t *ta, ad_error_t *err)
{
  const json_t *in = json_object_get(a, "steps"), *mods = json_object_get(a, "mods");
  if (in && mods)
    return bad(err, "steps", "give steps or mods, not both");
  if (!(ta->steps = json_array()))
    return ad__err(err, AD_ENOMEM, "tasks", "building the steps");
  if (!in) {
    json_t *m = mods ? norm_mods(mods) : json_pack("[s]", "autodeploy.gameserver");
    if (!m)
      return bad(err, "mods", "must be a state name or a list of them");
    if (json_array_append_new(ta->steps, json_pack("{s:s,s:o,s:{}}", "name", "deploy", "mods", m, "pillar")))
      return ad__err(err, AD_ENOMEM, "tasks", "building the steps");
    return 0;
  }
  if (!json_is_array(in) || json_array_size(in) == 0 || json_array_size(in) > 20)
    return bad(err, "steps", "must be a list of 1..20 {name, mods, pillar}");
  size_t i;
  json_t *s;
  json_array_foreach(in, i, s) {
    json_t *step = parse_step(s, i);
    if (!step)
      return bad(err, "steps", "each step needs mods (a state or list of states) and an optional pillar object");
    if (json_array_append_new(ta->steps, step))
      return ad__err(err, AD_ENOMEM, "tasks", "building the steps");
  }
  return 0;
}

/* pillar, timeout, owner, retry, created_by, reason. */
static int parse_limits(const json_t *a, task_args_t *ta, ad_error_t *err)
{
  ta->pillar = json_object_get(a, "pillar");
  if (ta->pillar && !json_is_object(ta->pillar))
    return bad(err, "pillar", "must be an object");
  const json_t *to = json_object_get(a, "timeout");
  ta->timeout = !to ? 1800 : json_is_integer(to) ? json_integer_value(to) : -1;
  if (ta->timeout < 1 || ta->timeout > 86400)
    return bad(err, "timeout", "must be 1..86400 seconds");
  ta->owner = json_object_get(a, "owner");
  if (ta->owner && !json_is_object(ta->owner))
    return bad(err, "owner", "must be an object");
  const json_t *retry = json_object_get(a, "retry");
  ta->max_attempts = retry ? json_integer_value(json_object_get(retry, "max_attempts")) : 1;
  ta->backoff_s = retry ? json_integer_value(json_object_get(retry, "backoff_s")) : 60;
  if (retry && (ta->max_attempts < 1 || ta->max_attempts > 20 || ta->backoff_s < 0 ||
                ta->backoff_s > 86400))
    return bad(err, "retry", "max_attempts must be 1..20 and backoff_s 0..86400");
  ta->by = json_string_value(json_object_get(a, "created_by"));
  ta->by = ta->by ? ta->by : "unknown";
  ta->reason = json_string_value(json_object_get(a, "reason"));
  ta->reason = ta->reason ? ta->reason : "";
  return 0;
}

/* The new task's document (docs/tasks.md), or NULL. */
static json_t *task_doc(const task_args_t *ta)
{
  char id[64], now[32], tid[48];
  new_jid(tid);
  snprintf(id, sizeof id, "t%s", tid + 2); /* t + yymmdd... _ad<hex> */
  ad__iso_ms(ad__now_ms(), now);
  char *tkey = json_dumps(ta->tgt, JSON_ENCODE_ANY | JSON_COMPACT);
  json_t *task = tkey ? json_pack(
      "{s:s,s:i,s:s,s:{s:O,s:s},s:s,s:O,s:o,s:I,s:{s:I,s:I},s:s,s:s,s:s,s:s,s:i,s:i,"
      "s:n,s:i,s:i,s:b,s:[],s:[{s:s,s:n,s:s,s:s,s:s}]}",
      "_id", id, "rev", 0, "state", "queued", "target", "tgt", ta->tgt, "tgt_type", ta->tgt_type,
      "target_key", tkey, "steps", ta->steps, "pillar",
      ta->pillar ? json_incref((json_t *)ta->pillar) : json_object(),
      "timeout", ta->timeout, "retry", "max_attempts", ta->max_attempts, "backoff_s", ta->backoff_s,
      "created_by", ta->by, "reason", ta->reason, "created_at", now, "updated_at", now,
      "step", 0, "attempt", 0, "jid", "deadline_ms", 0, "retry_at_ms", 0, "pause_requested", 0,
      "minions", "history", "at", now, "from", "to", "queued", "cause", "created", "actor",
      ta->by) : NULL;
  free(tkey);
  if (task && ta->owner && json_object_set(task, "owner", (json_t *)ta->owner)) {
    json_decref(task);
    return NULL;
  }
  return task;
}

static int store_task(const ad__tasks_ctx_t *t, const json_t *task, ad_error_t *err)
{
  char *s = json_dumps(task, JSON_COMPACT);
  bson_error_t be = {.message = "no memory"};
  bson_t *doc = s ? bson_new_from_json((const uint8_t *)s, -1, &be) : NULL;
  free(s);
  mongoc_client_t *c = ad__store_pop(t->store);
  mongoc_collection_t *coll = ad__store_coll(t->store, c, t->collection);
  bool ok = doc && mongoc_collection_insert_one(coll, doc, NULL, NULL, &be);
  mongoc_collection_destroy(coll);
  ad__store_push(t->store, c);
  if (doc)
    bson_destroy(doc);
  return ok ? 0 : ad__err(err, AD_ECONNECT, "store", "storing the task: %s", be.message);
}

json_t *ad__task_create(const ad__tasks_ctx_t *t, const json_t *a, ad_error_t *err)
{
  task_args_t ta = {0};
  json_t *task = NULL;
  if (parse_target(a, &ta, err) || parse_steps(a, &ta, err) || parse_limits(a, &ta, err))
    goto fail;
  if (!(task = task_doc(&ta))) {
    ad__err(err, AD_ENOMEM, "tasks", "cannot build the task");
    goto fail;
  }
  if (store_task(t, task, err))
    goto fail;
  if (!target_busy(t, task)) {
    json_t *run = start_step(t, task, AD__TC_START, 0, 1, "started", ta.by, err);
    if (!run)
      goto fail;
    json_decref(task);
    task = run;
  }
  json_decref(ta.steps);
  return json_pack("{s:o}", "task", task);
fail:
  json_decref(ta.steps);
  json_decref(task);
  return NULL;
}

json_t *ad__task_list(const ad__tasks_ctx_t *t, const json_t *a, ad_error_t *err)
{
  static const char *const STATES[] = {"queued", "running", "paused", "succeeded", "failed",
                                       "timed_out", "cancelled", NULL};
  bson_t *q = bson_new();
  const char *status = json_string_value(json_object_get(a, "status"));
  if (json_object_get(a, "status") && !json_is_null(json_object_get(a, "status"))) {
    int ok = 0;
    for (int i = 0; status && STATES[i]; i++)
      ok |= strcmp(STATES[i], status) == 0;
    if (!ok) {
      bson_destroy(q);
      return bad(err, "status", "must be queued, running, paused, succeeded, failed, "
                 "timed_out or cancelled"), NULL;
    }
    BSON_APPEND_UTF8(q, "state", status);
  }
  const json_t *since = json_object_get(a, "since");
  if (since && !json_is_null(since)) {
    char iso[32];
    if (json_is_integer(since) || json_is_real(since)) {
      ad__iso_ms((int64_t)(json_number_value(since) * 1000), iso);
    } else if (json_is_string(since) && json_string_length(since) >= 10 &&
               json_string_length(since) < sizeof iso) {
      snprintf(iso, sizeof iso, "%s", json_string_value(since));
    } else {
      bson_destroy(q);
      return bad(err, "since", "must be unix seconds or an ISO-8601 time"), NULL;
    }
    bson_t sub;
    BSON_APPEND_DOCUMENT_BEGIN(q, "created_at", &sub);
    BSON_APPEND_UTF8(&sub, "$gte", iso);
    bson_append_document_end(q, &sub);
  }
  json_int_t limit = json_object_get(a, "limit") ? json_integer_value(json_object_get(a, "limit")) : 50;
  if (limit < 1 || limit > 10000) {
    bson_destroy(q);
    return bad(err, "limit", "must be 1..10000"), NULL;
  }
  bson_t *opts = BCON_NEW("sort", "{", "created_at", BCON_INT32(-1), "}", "limit",
                          BCON_INT64(limit), "projection", "{", "history", BCON_INT32(0),
                          "steps", BCON_INT32(0), "pillar", BCON_INT32(0), "}");
  json_t *rows = ad__store_find_json(t->store, t->collection, q, opts, err);
  bson_destroy(q);
  bson_destroy(opts);
  return rows ? json_pack("{s:o}", "tasks", rows) : NULL;
}

/* Per-state results of one return document, failed first. */
static json_t *states_of(const json_t *ret)
{
  json_t *failed = json_array(), *rest = json_array();
  const char *key;
  json_t *st;
  json_t *r = json_object_get(ret, "return");
  if (json_is_object(r)) {
    json_object_foreach(r, key, st) {
      if (!json_is_object(st))
        continue;
      char *id = malloc(strlen(key) + 1);
      ad__key_unescape(key, strlen(key), id);
      json_t *res = json_object_get(st, "result");
      json_t *row = json_pack("{s:s,s:O,s:O,s:O,s:O}", "id", id, "result",
                              res ? res : json_null(), "comment",
                              json_object_get(st, "comment") ? json_object_get(st, "comment") : json_null(),
                              "duration_ms",
                              json_object_get(st, "duration") ? json_object_get(st, "duration") : json_null(),
                              "changes",
                              json_object_get(st, "changes") ? json_object_get(st, "changes") : json_object());
      free(id);
      json_array_append_new(json_is_false(res) ? failed : rest, row);
    }
  }
  json_array_extend(failed, rest);
  json_decref(rest);
  return failed;
}

json_t *ad__task_get(const ad__tasks_ctx_t *t, const json_t *a, ad_error_t *err)
{
  const char *id = json_string_value(json_object_get(a, "id"));
  if (!id || !*id)
    return bad(err, "id", "required (a task id)"), NULL;
  json_t *task = ad__task_load(t, id, err);
  if (!task)
    return NULL;
  bson_t *q = BCON_NEW("task", BCON_UTF8(id));
  bson_t *opts = BCON_NEW("sort", "{", "received_at", BCON_INT32(1), "}");
  json_t *rets = ad__store_find_json(t->store, "returns", q, opts, err);
  bson_destroy(q);
  bson_destroy(opts);
  json_t *results = json_array();
  size_t i;
  json_t *r;
  json_array_foreach(rets, i, r) {
    json_array_append_new(results, json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:o}", "minion",
        json_object_get(r, "minion"), "jid", json_object_get(r, "jid"), "step",
        json_object_get(r, "step") ? json_object_get(r, "step") : json_null(), "attempt",
        json_object_get(r, "attempt") ? json_object_get(r, "attempt") : json_null(), "retcode",
        json_object_get(r, "retcode") ? json_object_get(r, "retcode") : json_null(), "summary",
        json_object_get(r, "summary") ? json_object_get(r, "summary") : json_null(), "states",
        states_of(r)));
  }
  json_decref(rets);
  return json_pack("{s:o,s:o}", "task", task, "results", results);
}

json_t *ad__task_intervene(const ad__tasks_ctx_t *t, const json_t *a, ad_error_t *err)
{
  const char *id = json_string_value(json_object_get(a, "id"));
  const char *action = json_string_value(json_object_get(a, "action"));
  if (!id || !*id)
    return bad(err, "id", "required (a task id)"), NULL;
  if (!action || (strcmp(action, "cancel") && strcmp(action, "pause") &&
                  strcmp(action, "resume") && strcmp(action, "retry")))
    return bad(err, "action", "must be cancel, pause, resume or retry"), NULL;
  json_t *task = ad__task_load(t, id, err);
  if (!task)
    return NULL;
  json_decref(task);
  const char *reason = json_string_value(json_object_get(a, "reason"));
  const char *actor = json_string_value(json_object_get(a, "actor"));
  json_t *body = json_pack("{s:s,s:s,s:s,s:s}", "task_id", id, "action", action, "reason",
                           reason ? reason : "", "actor", actor ? actor : "unknown");
  char tag[256];
  snprintf(tag, sizeof tag, "autodeploy/intervene/%s", id);
  int rc = ad__fire_signed(t->bus, t->key_path, tag, body, err);
  json_decref(body);
  if (rc)
    return NULL;
  return json_pack("{s:b,s:s,s:s}", "fired", 1, "tag", tag, "action", action);
}

/* ---- engine side ------------------------------------------------------------ */

int ad__tasks_on_new(const ad__tasks_ctx_t *t, ad_event_t *ev)
{
  const char *jid;
  size_t jn;
  if (ad_event_get_str(ev, "jid", &jid, &jn) || !memmem(jid, jn, "_ad", 3))
    return 0; /* not one of ours */
  const ad_value_t *minions = ad_event_find(ev, "minions");
  if (!minions)
    return 0;
  bson_t *q = bson_new(), *u = bson_new(), set, none;
  bson_append_utf8(q, "jid", 3, jid, (int)jn);
  BSON_APPEND_UTF8(q, "state", "running");
  /* the first /new wins: the master publishes the real one before the job
   * reaches any minion, and a minion can send this tag too (no blacklist on
   * the plain fire_master path: docs/registration-research.md) */
  BSON_APPEND_DOCUMENT_BEGIN(q, "minions.0", &none);
  BSON_APPEND_BOOL(&none, "$exists", false);
  bson_append_document_end(q, &none);
  BSON_APPEND_DOCUMENT_BEGIN(u, "$set", &set);
  ad__bson_append_value(&set, "minions", minions, NULL);
  bson_append_document_end(u, &set);
  ad_error_t err;
  int64_t n = ad__store_update_one(t->store, t->collection, q, u, &err);
  bson_destroy(q);
  bson_destroy(u);
  if (n < 0)
    AD_LOG_E("tasks", "recording minions of job %.*s: %s", (int)jn, jid, err.message);
  return n < 0 ? 1 : 0;
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
    json_decref(start_step(t, task, nx.cause, nx.step, nx.attempt, "next step", NULL, NULL));
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
  json_t *moved = move(t, task, nx.cause, jid, set, why, NULL, NULL);
  json_decref(set);
  if (moved && nx.cause == AD__TC_FAIL)
    alert(t, moved, "failed", detail);
  if (moved && nx.cause == AD__TC_REQUEUE && nx.backoff_s == 0 && !target_busy(t, moved))
    json_decref(start_step(t, moved, AD__TC_START, nx.step, nx.attempt, "retry", NULL, NULL));
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
    moved = move(t, task, AD__TC_CANCEL, NULL, NULL, why, actor, err);
    if (moved && !strcmp(ad__jstr(task, "state"), "running"))
      fire_kill(t, task); /* the kill job's answer says whether it was alive */
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
    return start_step(t, task, AD__TC_RESUME, ad__jint(task, "resume_step"),
                      ad__jint(task, "resume_attempt") ? ad__jint(task, "resume_attempt") : 1, why,
                      actor, err);
  case AD__TC_RETRY:
    return start_step(t, task, AD__TC_RETRY, ad__jint(task, "step"), ad__jint(task, "attempt") + 1, why,
                      actor, err);
  default:
    ad__err(err, AD_EINVAL, "tasks", "no intervention %d", cause);
    return NULL;
  }
  if (set)
    moved = move(t, task, (ad__task_cause_t)cause, NULL, set, why, actor, err);
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
    json_t *moved = move(t, task, AD__TC_TIME_OUT, ad__jstr(task, "jid"), NULL, why,
                         "watchdog", NULL);
    if (moved) {
      fire_kill(t, task);
      alert(t, moved, "timed_out", why);
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
    if (target_busy(t, task))
      continue;
    json_int_t st = ad__jint(task, "resume_step"), at = ad__jint(task, "resume_attempt");
    json_decref(start_step(t, task, AD__TC_START, st, at ? at : 1,
                           ad__jint(task, "attempt") ? "retry" : "started", "watchdog", NULL));
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
