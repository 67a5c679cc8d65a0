/*
 * tasks.c - what happens to a task: create (runner), start a step (fire a
 * signed run event; the reactor makes it a state.apply with our jid and
 * metadata), follow its returns, retry, pause/resume between steps, cancel
 * (kill the job), and the watchdog. State changes go through
 * ad__task_move (tasks_store.c), so each is atomic and audited.
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

static const char *const ANY_END[] = {"failed", "timed_out", "cancelled", NULL};
static const char *const LIVE[] = {"queued", "running", "paused", NULL};
static const char *const RUNNING[] = {"running", NULL};
static const char *const QUEUED[] = {"queued", NULL};
static const char *const PAUSED[] = {"paused", NULL};

static json_int_t jint(const json_t *o, const char *k)
{
  return json_integer_value(json_object_get(o, k));
}

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
           (long long)jint(task, "step"),
           ad__jstr(json_array_get(json_object_get(task, "steps"), (size_t)jint(task, "step")), "name"),
           (long long)jint(task, "attempt"), ad__jstr(task, "jid"), ad__jstr(task, "reason"),
           detail ? detail : "-", ad__jstr(task, "_id"));
  snprintf(dedup, sizeof dedup, "task/%s/%s/%lld", ad__jstr(task, "_id"), what,
           (long long)jint(task, "attempt"));
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

/* Move to running on step `step`, attempt `attempt`, and fire the run. */
static json_t *start_step(const ad__tasks_ctx_t *t, const json_t *task,
                          const char *const *from, json_int_t step,
                          json_int_t attempt, const char *cause, const char *actor,
                          ad_error_t *err)
{
  const char *id = ad__jstr(task, "_id");
  json_t *steps = json_object_get(task, "steps");
  json_t *st = json_array_get(steps, (size_t)step);
  if (!st) {
    ad__err(err, AD_EINVAL, "tasks", "task %s has no step %lld", id, (long long)step);
    return NULL;
  }
  char jid[48];
  new_jid(jid);
  int64_t deadline = ad__now_ms() + jint(task, "timeout") * 1000;
  json_t *set = json_pack("{s:s,s:I,s:I,s:I,s:[],s:b,s:I}", "jid", jid, "step", step,
                          "attempt", attempt, "deadline_ms", (json_int_t)deadline,
                          "minions", "pause_requested", 0, "retry_at_ms", (json_int_t)0);
  json_t *moved = ad__task_move(t, id, from, "running", set, cause, actor, err);
  json_decref(set);
  if (!moved)
    return NULL;
  json_t *pillar = json_deep_copy(json_object_get(task, "pillar"));
  if (!json_is_object(pillar)) {
    json_decref(pillar);
    pillar = json_object();
  }
  json_object_update_recursive(pillar, json_object_get(st, "pillar"));
  json_t *target = json_object_get(task, "target");
  json_t *body = json_pack("{s:s,s:I,s:s,s:O,s:s,s:O,s:o,s:s,s:I}", "task_id", id,
                           "attempt", attempt, "jid", jid, "tgt", json_object_get(target, "tgt"),
                           "tgt_type", ad__jstr(target, "tgt_type"), "mods",
                           json_object_get(st, "mods"), "pillar", pillar, "step",
                           ad__jstr(st, "name"), "timeout", jint(task, "timeout"));
  char tag[256];
  snprintf(tag, sizeof tag, "autodeploy/task/%s/run", id);
  ad_error_t ferr;
  int rc = ad__fire_signed(t->bus, t->key_path, tag, body, &ferr);
  json_decref(body);
  if (rc != 0) {
    /* the run never left: fail the task now rather than wait for the deadline */
    json_t *f = ad__task_move(t, id, RUNNING, "failed", NULL, ferr.message, "autodeploy", NULL);
    if (f)
      alert(t, f, "failed", ferr.message);
    json_decref(f);
    ad__err(err, AD_EIO, "tasks", "task %s: %s", id, ferr.message);
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
  json_int_t attempt = jint(task, "attempt");
  json_t *body = json_pack("{s:s,s:I,s:s,s:s,s:O,s:s}", "task_id", ad__jstr(task, "_id"),
                           "attempt", attempt > 0 ? attempt : 1, "jid", ad__jstr(task, "jid"),
                           "kill_jid", kjid, "tgt", json_object_get(target, "tgt"),
                           "tgt_type", ad__jstr(target, "tgt_type"));
  char tag[256];
  snprintf(tag, sizeof tag, "autodeploy/task/%s/kill", ad__jstr(task, "_id"));
  ad_error_t err;
  if (ad__fire_signed(t->bus, t->key_path, tag, body, &err))
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

json_t *ad__task_create(const ad__tasks_ctx_t *t, const json_t *a, ad_error_t *err)
{
  const json_t *tgt = json_object_get(a, "tgt");
  if (!tgt || (json_is_string(tgt) && json_string_length(tgt) == 0))
    return bad(err, "tgt", "required (a minion id, glob or list)"), NULL;
  if (!json_is_string(tgt) && !json_is_array(tgt))
    return bad(err, "tgt", "must be a string or a list of minion ids"), NULL;
  const char *tgt_type = json_string_value(json_object_get(a, "tgt_type"));
  if (!tgt_type)
    tgt_type = json_is_array(tgt) ? "list" : "glob";
  static const char *const TYPES[] = {"glob", "list", "pcre", "grain", "compound", "nodegroup", NULL};
  int okt = 0;
  for (int i = 0; TYPES[i]; i++)
    okt |= strcmp(TYPES[i], tgt_type) == 0;
  if (!okt)
    return bad(err, "tgt_type", "must be glob, list, pcre, grain, compound or nodegroup"), NULL;
  json_t *steps = json_array();
  const json_t *in_steps = json_object_get(a, "steps"), *mods = json_object_get(a, "mods");
  if (in_steps && mods) {
    json_decref(steps);
    return bad(err, "steps", "give steps or mods, not both"), NULL;
  }
  if (in_steps) {
    size_t i;
    json_t *s;
    if (!json_is_array(in_steps) || json_array_size(in_steps) == 0 || json_array_size(in_steps) > 20) {
      json_decref(steps);
      return bad(err, "steps", "must be a list of 1..20 {name, mods, pillar}"), NULL;
    }
    json_array_foreach(in_steps, i, s) {
      json_t *m = norm_mods(json_object_get(s, "mods"));
      const char *name = json_string_value(json_object_get(s, "name"));
      json_t *p = json_object_get(s, "pillar");
      if (!m || (p && !json_is_object(p))) {
        json_decref(m);
        json_decref(steps);
        return bad(err, "steps", "each step needs mods (a state or list of states) and an optional pillar object"), NULL;
      }
      char def[16];
      snprintf(def, sizeof def, "step%zu", i + 1);
      json_array_append_new(steps, json_pack("{s:s,s:o,s:O}", "name", name ? name : def,
                                             "mods", m, "pillar", p ? p : json_object()));
    }
  } else {
    json_t *m = mods ? norm_mods(mods) : json_pack("[s]", "autodeploy.gameserver");
    if (!m) {
      json_decref(steps);
      return bad(err, "mods", "must be a state name or a list of them"), NULL;
    }
    json_array_append_new(steps, json_pack("{s:s,s:o,s:{}}", "name", "deploy", "mods", m, "pillar"));
  }
  const json_t *pillar = json_object_get(a, "pillar");
  if (pillar && !json_is_object(pillar)) {
    json_decref(steps);
    return bad(err, "pillar", "must be an object"), NULL;
  }
  json_int_t timeout = json_object_get(a, "timeout") ? json_integer_value(json_object_get(a, "timeout")) : 1800;
  if (!json_is_integer(json_object_get(a, "timeout")) && json_object_get(a, "timeout"))
    timeout = -1;
  if (timeout < 1 || timeout > 86400) {
    json_decref(steps);
    return bad(err, "timeout", "must be 1..86400 seconds"), NULL;
  }
  const json_t *owner = json_object_get(a, "owner");
  if (owner && !json_is_object(owner)) {
    json_decref(steps);
    return bad(err, "owner", "must be an object"), NULL;
  }
  const json_t *retry = json_object_get(a, "retry");
  json_int_t maxa = retry ? json_integer_value(json_object_get(retry, "max_attempts")) : 1;
  json_int_t backoff = retry ? json_integer_value(json_object_get(retry, "backoff_s")) : 60;
  if (retry && (maxa < 1 || maxa > 20 || backoff < 0 || backoff > 86400)) {
    json_decref(steps);
    return bad(err, "retry", "max_attempts must be 1..20 and backoff_s 0..86400"), NULL;
  }
  char id[64], now[32], tid[48];
  new_jid(tid);
  snprintf(id, sizeof id, "t%s", tid + 2); /* t + yymmdd... _ad<hex> */
  ad__iso_ms(ad__now_ms(), now);
  char *tkey = json_dumps(tgt, JSON_ENCODE_ANY | JSON_COMPACT);
  const char *by = json_string_value(json_object_get(a, "created_by"));
  json_t *task = json_pack(
      "{s:s,s:i,s:s,s:{s:O,s:s},s:s,s:o,s:O,s:I,s:{s:I,s:I},s:s,s:s,s:s,s:s,s:i,s:i,"
      "s:n,s:i,s:i,s:b,s:[],s:[{s:s,s:n,s:s,s:s,s:s}]}",
      "_id", id, "rev", 0, "state", "queued", "target", "tgt", tgt, "tgt_type", tgt_type,
      "target_key", tkey ? tkey : "", "steps", steps, "pillar", pillar ? pillar : json_object(),
      "timeout", timeout, "retry", "max_attempts", maxa, "backoff_s", backoff,
      "created_by", by ? by : "unknown", "reason",
      json_string_value(json_object_get(a, "reason")) ? json_string_value(json_object_get(a, "reason")) : "",
      "created_at", now, "updated_at", now, "step", 0, "attempt", 0, "jid", "deadline_ms", 0,
      "retry_at_ms", 0, "pause_requested", 0, "minions", "history", "at", now, "from", "to",
      "queued", "cause", "created", "actor", by ? by : "unknown");
  free(tkey);
  if (task && owner)
    json_object_set(task, "owner", (json_t *)owner);
  if (!task)
    return ad__err(err, AD_ENOMEM, "tasks", "cannot build the task"), NULL;
  char *s = json_dumps(task, JSON_COMPACT);
  bson_error_t be;
  bson_t *doc = bson_new_from_json((const uint8_t *)s, -1, &be);
  free(s);
  mongoc_client_t *c = ad__store_pop(t->store);
  mongoc_collection_t *coll = ad__store_coll(t->store, c, t->collection);
  bool ok = doc && mongoc_collection_insert_one(coll, doc, NULL, NULL, &be);
  mongoc_collection_destroy(coll);
  ad__store_push(t->store, c);
  if (doc)
    bson_destroy(doc);
  if (!ok) {
    json_decref(task);
    return ad__err(err, AD_ECONNECT, "mongo", "storing the task: %s", be.message), NULL;
  }
  if (!target_busy(t, task)) {
    json_t *run = start_step(t, task, QUEUED, 0, 1, "started", by, err);
    if (!run) {
      json_decref(task);
      return NULL;
    }
    json_decref(task);
    task = run;
  }
  return json_pack("{s:o}", "task", task);
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

/* Which minions of the current jid returned, and with what retcode. */
static int tally(const ad__tasks_ctx_t *t, const json_t *task, int *done, int *failed,
                 char *detail, size_t dsize)
{
  bson_t *q = BCON_NEW("jid", BCON_UTF8(ad__jstr(task, "jid")));
  json_t *rets = ad__store_find_json(t->store, "returns", q, NULL, NULL);
  bson_destroy(q);
  if (!rets)
    return -1;
  /* a list target names its minions itself: nothing on the bus can change
   * who must answer; other targets take the job's first /new */
  json_t *target = json_object_get(task, "target");
  json_t *minions = !strcmp(ad__jstr(target, "tgt_type"), "list") && json_is_array(json_object_get(target, "tgt"))
                        ? json_object_get(target, "tgt")
                        : json_object_get(task, "minions");
  size_t expected = json_array_size(minions);
  size_t got = json_array_size(rets), bad_n = 0;
  size_t i;
  json_t *r;
  detail[0] = '\0';
  got = 0;
  json_array_foreach(rets, i, r) {
    json_int_t rc = json_integer_value(json_object_get(r, "retcode"));
    const char *minion = ad__jstr(r, "minion");
    int wanted = 0;
    size_t k;
    json_t *m;
    json_array_foreach(minions, k, m) wanted |= json_is_string(m) && !strcmp(json_string_value(m), minion);
    if (!wanted)
      continue; /* a minion that was not asked does not complete the step */
    if (*t->job_dir) {
      /* only what the master authenticated counts (jobcache.h) */
      int64_t cached = 0;
      int v = ad__jobcache_return(t->job_dir, t->hash_type, ad__jstr(task, "jid"), minion, &cached);
      if (v != 1)
        continue; /* not (yet) in the job cache: not counted */
      rc = cached;
    }
    got++;
    if (rc != 0) {
      bad_n++;
      size_t n = strlen(detail);
      snprintf(detail + n, dsize - n, "%s%s retcode %lld", n ? "; " : "", minion,
               (long long)rc);
    }
  }
  *done = expected > 0 && got >= expected;
  *failed = bad_n > 0;
  json_decref(rets);
  return 0;
}

/* The current step finished on every minion: move the task on. */
static void step_done(const ad__tasks_ctx_t *t, json_t *task, int failed, const char *detail)
{
  const char *id = ad__jstr(task, "_id");
  json_int_t step = jint(task, "step"), attempt = jint(task, "attempt");
  json_int_t nsteps = (json_int_t)json_array_size(json_object_get(task, "steps"));
  json_t *retry = json_object_get(task, "retry");
  ad_error_t err;
  if (!failed) {
    if (step + 1 >= nsteps) {
      json_decref(ad__task_move(t, id, RUNNING, "succeeded", NULL, "every step succeeded",
                                "autodeploy", &err));
    } else if (json_is_true(json_object_get(task, "pause_requested"))) {
      json_t *set = json_pack("{s:I,s:I}", "resume_step", step + 1, "resume_attempt", (json_int_t)1);
      json_decref(ad__task_move(t, id, RUNNING, "paused", set, "paused between steps",
                                "autodeploy", &err));
      json_decref(set);
    } else {
      json_decref(start_step(t, task, RUNNING, step + 1, 1, "next step", "autodeploy", &err));
    }
    return;
  }
  if (attempt < json_integer_value(json_object_get(retry, "max_attempts"))) {
    json_int_t backoff = json_integer_value(json_object_get(retry, "backoff_s"));
    json_t *set = json_pack("{s:I,s:I,s:I}", "retry_at_ms",
                            (json_int_t)(ad__now_ms() + backoff * 1000), "resume_step", step,
                            "resume_attempt", attempt + 1);
    char cause[400];
    snprintf(cause, sizeof cause, "attempt %lld failed (%s); retry in %llds", (long long)attempt,
             detail, (long long)backoff);
    json_t *q = ad__task_move(t, id, RUNNING, "queued", set, cause, "autodeploy", &err);
    json_decref(set);
    if (q && backoff == 0 && !target_busy(t, q))
      json_decref(start_step(t, q, QUEUED, step, attempt + 1, "retry", "autodeploy", &err));
    json_decref(q);
    return;
  }
  json_t *f = ad__task_move(t, id, RUNNING, "failed", NULL, detail, "autodeploy", &err);
  if (f)
    alert(t, f, "failed", detail);
  json_decref(f);
}

int ad__tasks_on_return(const ad__tasks_ctx_t *t, ad_event_t *ev)
{
  const char *id, *jid;
  size_t idn, jn;
  if (ad_event_get_str(ev, "metadata:autodeploy_task", &id, &idn) ||
      ad_event_get_str(ev, "jid", &jid, &jn))
    return 0;
  char tid[128], j[64];
  snprintf(tid, sizeof tid, "%.*s", (int)(idn > 100 ? 100 : idn), id);
  snprintf(j, sizeof j, "%.*s", (int)(jn > 60 ? 60 : jn), jid);
  const char *step;
  size_t sn;
  if (ad_event_get_str(ev, "metadata:step", &step, &sn) == 0 && sn == 4 &&
      !memcmp(step, "kill", 4)) {
    /* the kill job's answer is the probe: was the step still alive? */
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
    return 0;
  }
  /* the return document is written by returns.c on another worker: wait
   * until it is visible so the tally sees it */
  json_t *task = NULL;
  for (int tries = 0; tries < 50; tries++) {
    json_decref(task);
    task = ad__task_load(t, tid, NULL);
    if (!task || strcmp(ad__jstr(task, "jid"), j) != 0 || strcmp(ad__jstr(task, "state"), "running"))
      break;
    int done = 0, failed = 0;
    char detail[300];
    if (tally(t, task, &done, &failed, detail, sizeof detail) == 0 && done) {
      step_done(t, task, failed, detail);
      break;
    }
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (task && strcmp(ad__jstr(task, "jid"), j) != 0) {
    char note[160];
    snprintf(note, sizeof note, "return of an earlier job %s ignored", j);
    ad__task_note(t, tid, note, "stale return", "autodeploy");
  }
  json_decref(task);
  return 0;
}

int ad__tasks_on_intervene(const ad__tasks_ctx_t *t, ad_event_t *ev)
{
  const char *tag = ad_event_tag(ev);
  const char *tid = tag + strlen("autodeploy/intervene/");
  const char *body;
  size_t blen;
  ad_error_t err;
  if (ad__verify_signed(ev, t->key_path, &body, &blen, &err)) {
    /* a minion (or anyone without the master key) tried to intervene */
    const char *who = "?";
    size_t wn = 1;
    ad_event_get_str(ev, "id", &who, &wn);
    AD_LOG_W("tasks", "intervention on task %s refused: %s (from %.*s)", tid, err.message,
             (int)wn, who);
    char note[200];
    snprintf(note, sizeof note, "intervention refused: %s (from %.*s)", err.message,
             (int)(wn > 64 ? 64 : wn), who);
    ad__task_note(t, tid, note, "guard", "autodeploy");
    return 1;
  }
  json_error_t je;
  json_t *req = json_loadb(body, blen, 0, &je);
  const char *action = ad__jstr(req, "action"), *reason = ad__jstr(req, "reason"),
             *actor = ad__jstr(req, "actor");
  if (!req || strcmp(ad__jstr(req, "task_id"), tid) != 0) {
    AD_LOG_W("tasks", "intervention on task %s refused: body names another task", tid);
    json_decref(req);
    return 1;
  }
  char cause[300];
  snprintf(cause, sizeof cause, "%s: %s", action, reason);
  json_t *task = ad__task_load(t, tid, &err), *moved = NULL;
  if (!task) {
    AD_LOG_W("tasks", "intervention %s: %s", action, err.message);
    json_decref(req);
    return 1;
  }
  const char *state = ad__jstr(task, "state");
  err.code = 0;
  if (!strcmp(action, "cancel")) {
    moved = ad__task_move(t, tid, LIVE, "cancelled", NULL, cause, actor, &err);
    if (moved && !strcmp(state, "running"))
      fire_kill(t, task); /* the kill job's answer says whether it was alive */
  } else if (!strcmp(action, "pause")) {
    if (!strcmp(state, "running")) {
      json_t *set = json_pack("{s:b}", "pause_requested", 1);
      moved = ad__task_move(t, tid, RUNNING, "running", set, "pause requested: stops after this step",
                            actor, &err);
      json_decref(set);
    } else {
      json_t *set = json_pack("{s:I,s:I}", "resume_step", jint(task, "step"), "resume_attempt",
                              jint(task, "attempt") ? jint(task, "attempt") : 1);
      moved = ad__task_move(t, tid, QUEUED, "paused", set, cause, actor, &err);
      json_decref(set);
    }
  } else if (!strcmp(action, "resume")) {
    if (!strcmp(state, "running") && json_is_true(json_object_get(task, "pause_requested"))) {
      json_t *set = json_pack("{s:b}", "pause_requested", 0);
      moved = ad__task_move(t, tid, RUNNING, "running", set, cause, actor, &err);
      json_decref(set);
    } else {
      json_int_t st = jint(task, "resume_step"), at = jint(task, "resume_attempt");
      moved = start_step(t, task, PAUSED, st, at ? at : 1, cause, actor, &err);
    }
  } else if (!strcmp(action, "retry")) {
    moved = start_step(t, task, ANY_END, jint(task, "step"), jint(task, "attempt") + 1, cause,
                       actor, &err);
  } else {
    ad__err(&err, AD_EINVAL, "tasks", "unknown action %s", action);
  }
  if (!moved) {
    char note[400];
    snprintf(note, sizeof note, "%s refused: %s", action, err.message);
    ad__task_note(t, tid, note, reason, actor);
    AD_LOG_W("tasks", "task %s: %s", tid, note);
  }
  json_decref(moved);
  json_decref(task);
  json_decref(req);
  return moved ? 0 : 1;
}

void ad__tasks_watchdog(const ad__tasks_ctx_t *t)
{
  int64_t now = ad__now_ms();
  /* running past the deadline: kill (the kill job's answer is the probe
   * of whether it was still alive) and mark timed_out */
  bson_t *q = BCON_NEW("state", BCON_UTF8("running"), "deadline_ms", "{", "$lt",
                       BCON_INT64(now), "}");
  json_t *late = ad__store_find_json(t->store, t->collection, q, NULL, NULL);
  bson_destroy(q);
  size_t i;
  json_t *task;
  json_array_foreach(late, i, task) {
    char cause[200];
    snprintf(cause, sizeof cause, "no result %llds after the step started (timeout)",
             (long long)jint(task, "timeout"));
    json_t *moved = ad__task_move(t, ad__jstr(task, "_id"), RUNNING, "timed_out", NULL, cause,
                                  "watchdog", NULL);
    if (moved) {
      fire_kill(t, task);
      alert(t, moved, "timed_out", cause);
    }
    json_decref(moved);
  }
  json_decref(late);
  /* queued work whose time has come and whose target is free */
  q = BCON_NEW("state", BCON_UTF8("queued"), "retry_at_ms", "{", "$lte", BCON_INT64(now), "}");
  bson_t *opts = BCON_NEW("sort", "{", "created_at", BCON_INT32(1), "}");
  json_t *due = ad__store_find_json(t->store, t->collection, q, opts, NULL);
  bson_destroy(q);
  bson_destroy(opts);
  json_array_foreach(due, i, task) {
    if (target_busy(t, task))
      continue;
    json_int_t st = jint(task, "resume_step"), at = jint(task, "resume_attempt");
    json_decref(start_step(t, task, QUEUED, st, at ? at : 1,
                           jint(task, "attempt") ? "retry" : "started", "watchdog", NULL));
  }
  json_decref(due);
}
