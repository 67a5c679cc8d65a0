/*
 * task_cmds.c - the runner commands: task.deploy (ad__task_create: the
 * arguments checked, the document stored queued, step 0 started at once
 * when the target is free), task.list, task.get (the task and its
 * returns, failed states first) and task.intervene (a signed request that
 * the engine carries out: tasks.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/sign.h"
#include "core/clock.h"
#include "core/error_private.h"
#include "store/bson_msgpack.h"
#include "store/cursor.h"
#include "store/docs.h"
#include "tasks/tasks_private.h"

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
  ad__task_new_jid(tid);
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
  if (!ad__task_target_busy(t, task)) {
    json_t *run = ad__task_start_step(t, task, AD__TC_START, 0, 1, "started", ta.by, err);
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
