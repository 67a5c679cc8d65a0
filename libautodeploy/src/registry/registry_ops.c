/*
 * registry_ops.c - the host documents in MongoDB, liveness (the master's
 * own TCP view of the publish port), reconciliation, the end of host init
 * tasks, and the runner commands (hosts, host, retire, drain, reinit).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_private.h"
#include "core/log_private.h"
#include "registry/registry_private.h"
#include "registry/saltfiles.h"
#include "store/docs.h"

/* ---- documents (docs.c) ------------------------------------------------------------ */

json_t *ad__hosts_find(ad__registry_t *reg, json_t *query, json_t *opts, ad_error_t *err)
{
  return ad__docs_find(reg->env.store, reg->c.collection, query, opts, err);
}

json_t *ad__reg_find_in(ad__registry_t *reg, const char *coll_name, json_t *query)
{
  return ad__docs_find(reg->env.store, coll_name, query, NULL, NULL);
}

json_t *ad__hosts_find_one(ad__registry_t *reg, json_t *query, ad_error_t *err)
{
  json_t *rows = ad__hosts_find(reg, query, json_pack("{s:i}", "limit", 1), err);
  json_t *one = json_incref(json_array_get(rows, 0));
  if (rows && !one)
    ad__err(err, AD_ENOTFOUND, "registry", "no such host");
  json_decref(rows);
  return one;
}

int ad__reg_insert(ad__registry_t *reg, const char *coll_name, const json_t *doc, ad_error_t *err)
{
  return ad__docs_insert(reg->env.store, coll_name, doc, err);
}

int ad__reg_delete(ad__registry_t *reg, const char *key)
{
  return ad__docs_delete(reg->env.store, reg->c.collection, key);
}

/* Every host change also queues it for the outside CMDB (cmdb.c). */
int ad__hosts_cas(ad__registry_t *reg, const json_t *doc, json_t *set, const char *what,
                  const char *cause, const char *actor, ad_error_t *err)
{
  json_t *fields = set ? json_deep_copy(set) : json_object();
  json_object_set_new(fields, "cmdb_dirty", json_true());
  json_object_set_new(fields, "cmdb_next_ms", json_integer(0));
  int rc = ad__docs_cas(reg->env.store, reg->c.collection, doc, fields, what, cause, actor,
                        (size_t)reg->c.history_max, "registry", err);
  json_decref(fields);
  if (rc == 1 && reg->cmdb)
    ad__cmdb_kick(reg->cmdb);
  return rc;
}

/* Conditional move of host `key` from one of `from` to `to`, re-reading on
 * a lost race. The host after, or NULL + err (AD_ESTATE, AD_ENOTFOUND). */
static json_t *move(ad__registry_t *reg, const char *key, const char *const *from,
                    json_t *set, const char *to, const char *what, const char *cause,
                    const char *actor, ad_error_t *err)
{
  for (int i = 0; i < 8; i++) {
    json_t *doc = ad__hosts_find_one(reg, json_pack("{s:s}", "_id", key), err);
    if (!doc)
      return NULL;
    const char *st = ad__jstr(doc, "state");
    int ok = 0;
    for (int k = 0; from[k]; k++)
      ok |= !strcmp(from[k], st);
    if (!ok) {
      ad__err(err, AD_ESTATE, "registry", "host %s is %s: cannot go to %s", key, st, to);
      json_decref(doc);
      return NULL;
    }
    json_t *f = set ? json_deep_copy(set) : json_object();
    json_object_set_new(f, "state", json_string(to));
    int rc = ad__hosts_cas(reg, doc, f, what, cause, actor, err);
    json_decref(f);
    json_decref(doc);
    if (rc == 1)
      return ad__hosts_find_one(reg, json_pack("{s:s}", "_id", key), err);
    if (rc < 0)
      return NULL;
  }
  ad__err(err, AD_ESTATE, "registry", "host %s keeps changing", key);
  return NULL;
}

/* ---- liveness ---------------------------------------------------------------------- */

static int has_ip(const uint32_t *ips, size_t n, const char *s)
{
  uint32_t a;
  if (ad__ipv4_parse(s, &a))
    return 0;
  a = htonl(a);
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (ips[mid] == a)
      return 1;
    if (ips[mid] < a)
      lo = mid + 1;
    else
      hi = mid;
  }
  return 0;
}

static void liveness(ad__registry_t *reg)
{
  uint32_t *ips = NULL;
  size_t n = 0;
  ad_error_t err;
  if (ad__salt_connected_ips(NULL, reg->env.publish_port, &ips, &n, &err)) {
    AD_LOG_E("registry", "liveness: %s", err.message);
    return;
  }
  int64_t now = ad__now_ms();
  /* an address claimed by a quarantined minion is contested: its
   * connection proves nothing about the registered minion */
  json_t *q = ad__hosts_find(reg, json_pack("{s:s}", "state", "quarantined"),
                             json_pack("{s:{s:i}}", "projection", "private_ip", 1), NULL);
  json_t *hosts = ad__hosts_find(
      reg, json_pack("{s:{s:[s,s,s,s,s]}}", "state", "$in", "ready", "draining", "unreachable",
                     "initializing", "init_failed"),
      json_pack("{s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i}}", "projection", "state", 1, "private_ip", 1,
                "last_seen_ms", 1, "rev", 1, "history", 1, "state_before_unreachable", 1,
                "minion", 1), &err);
  json_t *ids = json_array();
  size_t i, k;
  json_t *h, *qd;
  json_array_foreach(hosts, i, h) {
    const char *ip = ad__jstr(h, "private_ip");
    int contested = 0;
    json_array_foreach(q, k, qd) contested |= !strcmp(ad__jstr(qd, "private_ip"), ip);
    if (!contested && has_ip(ips, n, ip)) {
      json_array_append_new(ids, json_string(ad__jstr(h, "_id")));
      json_object_set_new(h, "last_seen_ms", json_integer(now));
    }
  }
  if (json_array_size(ids)) {
    char iso[32];
    ad__iso_ms(now, iso);
    json_t *query = json_pack("{s:{s:O}}", "_id", "$in", ids);
    json_t *upd = json_pack("{s:{s:I,s:s}}", "$set", "last_seen_ms", (json_int_t)now,
                            "last_seen", iso);
    bson_t *bq = ad__json_to_bson(query, NULL), *bu = ad__json_to_bson(upd, NULL);
    mongoc_client_t *c = ad__store_pop(reg->env.store);
    mongoc_collection_t *coll = ad__store_coll(reg->env.store, c, reg->c.collection);
    bson_error_t be;
    if (bq && bu && !mongoc_collection_update_many(coll, bq, bu, NULL, NULL, &be))
      AD_LOG_E("registry", "liveness: %s", be.message);
    mongoc_collection_destroy(coll);
    ad__store_push(reg->env.store, c);
    if (bq)
      bson_destroy(bq);
    if (bu)
      bson_destroy(bu);
    json_decref(query);
    json_decref(upd);
  }
  json_array_foreach(hosts, i, h) {
    const char *st = ad__jstr(h, "state"), *key = ad__jstr(h, "_id");
    int64_t age = now - json_integer_value(json_object_get(h, "last_seen_ms"));
    int fresh = age <= reg->c.unreachable_after * 1000LL;
    if (!fresh && (!strcmp(st, "ready") || !strcmp(st, "draining"))) {
      char cause[300];
      snprintf(cause, sizeof cause, "no connection from %s to the publish port for %llds "
               "(unreachable_after %d)", ad__jstr(h, "private_ip"), (long long)(age / 1000),
               reg->c.unreachable_after);
      json_t *set = json_pack("{s:s,s:s,s:s}", "state", "unreachable",
                              "state_before_unreachable", st, "reason", cause);
      if (ad__hosts_cas(reg, h, set, "unreachable", cause, "autodeploy/liveness", NULL) == 1)
        ad__reg_alert(reg, key, "unreachable", cause);
      json_decref(set);
    } else if (fresh && !strcmp(st, "unreachable")) {
      const char *back = ad__jstr(h, "state_before_unreachable");
      json_t *set = json_pack("{s:s,s:s}", "state", *back ? back : "ready", "reason",
                              "reachable again");
      ad__hosts_cas(reg, h, set, "reachable", "connected to the publish port again",
                    "autodeploy/liveness", NULL);
      json_decref(set);
    }
  }
  json_decref(ids);
  json_decref(hosts);
  json_decref(q);
  free(ips);
}

int ad__registry_on_presence(ad__registry_t *reg, ad_event_t *ev)
{
  /* a hint only (forgeable, and per address): look at the master's own
   * view soon, at most once a second */
  reg->next_live_ms = ad__now_ms() + 1000;
  return 0;
}

int ad__registry_on_ping(ad__registry_t *reg, ad_event_t *ev)
{
  return 0; /* liveness comes from the master's TCP view; see docs/registration.md */
}

/* ---- reconcile, init tasks ------------------------------------------------------ */

static void hint_cb(void *user, const char *id)
{
  ad__registry_hint(user, id, "reconcile", 0);
}

void ad__registry_task_end(void *user, const json_t *task)
{
  ad__registry_t *reg = user;
  const json_t *owner = json_object_get(task, "owner");
  if (strcmp(ad__jstr(owner, "kind"), "host_init"))
    return;
  const char *key = ad__jstr(owner, "host"), *tid = ad__jstr(task, "_id"), *st = ad__jstr(task, "state");
  json_t *doc = ad__hosts_find_one(reg, json_pack("{s:s}", "_id", key), NULL);
  if (!doc || strcmp(ad__jstr(doc, "init_task"), tid) ||
      (strcmp(ad__jstr(doc, "state"), "initializing") && strcmp(ad__jstr(doc, "state"), "init_failed"))) {
    json_decref(doc);
    return;
  }
  char cause[400], now[32];
  ad__iso_ms(ad__now_ms(), now);
  if (!strcmp(st, "succeeded")) {
    snprintf(cause, sizeof cause, "init task %s succeeded", tid);
    json_t *set = json_pack("{s:s,s:s,s:s}", "state", "ready", "ready_at", now, "reason", cause);
    ad__hosts_cas(reg, doc, set, "initialized", cause, "autodeploy/registry", NULL);
    json_decref(set);
  } else {
    snprintf(cause, sizeof cause, "init task %s %s: %s", tid, st, ad__jstr(task, "reason"));
    json_t *set = json_pack("{s:s,s:s}", "state", "init_failed", "reason", cause);
    if (ad__hosts_cas(reg, doc, set, "init failed", cause, "autodeploy/registry", NULL) == 1)
      ad__reg_alert(reg, key, "init_failed", cause);
    json_decref(set);
  }
  json_decref(doc);
}

/* hosts whose init task ended while nobody listened (a crash, a race) */
static void settle_inits(ad__registry_t *reg)
{
  if (!reg->env.tasks || !reg->env.tasks->store)
    return;
  json_t *rows = ad__hosts_find(reg, json_pack("{s:s}", "state", "initializing"),
                                json_pack("{s:{s:i}}", "projection", "init_task", 1), NULL);
  size_t i;
  json_t *h;
  json_array_foreach(rows, i, h) {
    json_t *task = ad__task_load(reg->env.tasks, ad__jstr(h, "init_task"), NULL);
    const char *st = ad__jstr(task, "state");
    if (task && (!strcmp(st, "succeeded") || !strcmp(st, "failed") ||
                 !strcmp(st, "timed_out") || !strcmp(st, "cancelled")))
      ad__registry_task_end(reg, task);
    json_decref(task);
  }
  json_decref(rows);
}

/* Indexes for the queries by minion and state (MongoDB uses them; FerretDB
 * accepts them and scans anyway, which is why host_minions exists). */
static void make_indexes(ad__registry_t *reg)
{
  mongoc_client_t *c = ad__store_pop(reg->env.store);
  bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(reg->c.collection), "indexes", "[",
                         "{", "key", "{", "minion", BCON_INT32(1), "}", "name", BCON_UTF8("minion_1"), "}",
                         "{", "key", "{", "state", BCON_INT32(1), "}", "name", BCON_UTF8("state_1"), "}",
                         "]");
  bson_error_t be;
  if (mongoc_client_command_simple(c, ad__store_db(reg->env.store), cmd, NULL, NULL, &be))
    reg->indexed = 1;
  else
    AD_LOG_W("registry", "indexes on %s: %s (retried later)", reg->c.collection, be.message);
  bson_destroy(cmd);
  ad__store_push(reg->env.store, c);
}

int64_t ad__registry_tick(ad__registry_t *reg)
{
  if (!reg || !reg->c.enabled)
    return 60000;
  int64_t now = ad__now_ms();
  if (!reg->indexed && now >= reg->next_reconcile_ms)
    make_indexes(reg);
  if (now >= reg->next_live_ms) {
    reg->next_live_ms = now + reg->c.liveness_interval * 1000LL;
    liveness(reg);
  }
  if (now >= reg->next_reconcile_ms) {
    reg->next_reconcile_ms = now + reg->c.reconcile_interval * 1000LL;
    ad_error_t err;
    if (ad__salt_each_accepted(reg->pki_dir, hint_cb, reg, &err))
      AD_LOG_E("registry", "reconcile: %s", err.message);
    settle_inits(reg);
  }
  int64_t next = reg->next_live_ms < reg->next_reconcile_ms ? reg->next_live_ms
                                                            : reg->next_reconcile_ms;
  return next - ad__now_ms();
}

/* ---- runner commands ------------------------------------------------------------ */

static const char *arg_str(const json_t *a, const char *k)
{
  return json_string_value(json_object_get(a, k));
}

static json_t *find_host(ad__registry_t *reg, const json_t *a, ad_error_t *err)
{
  const char *key = arg_str(a, "key");
  if (!key || !*key || strlen(key) > 300)
    return ad__err(err, AD_EINVAL, "args", "key: required (a host key <profile>:<ip> or a minion id)"), NULL;
  json_t *doc = ad__hosts_find_one(reg, json_pack("{s:s}", "_id", key), NULL);
  if (!doc)
    doc = ad__reg_host_of(reg, key);
  if (!doc) {
    json_t *rows = ad__hosts_find(reg, json_pack("{s:s}", "minion", key),
                                  json_pack("{s:{s:i}}", "sort", "updated_at", -1), err);
    /* the live record first, then a quarantine, then retired ones; newest
     * first among equals (rows are sorted by updated_at) */
    size_t i;
    json_t *r;
    int best = 3;
    json_array_foreach(rows, i, r) {
      const char *st = ad__jstr(r, "state");
      int rank = !strcmp(st, "quarantined") ? 1 : !strcmp(st, "retired") ? 2 : 0;
      if (rank < best) {
        best = rank;
        doc = r;
      }
    }
    json_incref(doc);
    json_decref(rows);
  }
  if (!doc)
    ad__err(err, AD_ENOTFOUND, "registry", "key: no host %s (neither a host key nor a minion id)", key);
  return doc;
}

static void strip_internal(json_t *doc)
{
  json_object_del(doc, "cmdb_next_ms");
}

json_t *ad__host_list(ad__registry_t *reg, const json_t *a, ad_error_t *err)
{
  json_t *q = json_object();
  const char *state = arg_str(a, "state"), *profile = arg_str(a, "profile");
  static const char *const STATES[] = {"registering", "initializing", "ready", "init_failed",
                                       "unreachable", "draining", "retired", "quarantined", NULL};
  if (state) {
    int ok = 0;
    for (int i = 0; STATES[i]; i++)
      ok |= !strcmp(STATES[i], state);
    if (!ok) {
      json_decref(q);
      return ad__err(err, AD_EINVAL, "args", "state: %.40s is not one of registering, initializing, "
                     "ready, init_failed, unreachable, draining, retired, quarantined", state), NULL;
    }
    json_object_set_new(q, "state", json_string(state));
  }
  if (profile)
    json_object_set_new(q, "profile", json_string(profile));
  json_int_t limit = json_object_get(a, "limit") ? json_integer_value(json_object_get(a, "limit")) : 1000;
  if (limit < 1 || limit > 100000) {
    json_decref(q);
    return ad__err(err, AD_EINVAL, "args", "limit: must be 1..100000"), NULL;
  }
  json_t *rows = ad__hosts_find(reg, q, json_pack("{s:{s:i},s:I,s:{s:i}}", "sort", "_id", 1,
                                                  "limit", limit, "projection", "history", 0), err);
  if (!rows)
    return NULL;
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r) strip_internal(r);
  return json_pack("{s:o,s:I}", "hosts", rows, "count", (json_int_t)json_array_size(rows));
}

json_t *ad__host_get(ad__registry_t *reg, const json_t *a, ad_error_t *err)
{
  json_t *doc = find_host(reg, a, err);
  if (!doc)
    return NULL;
  strip_internal(doc);
  return json_pack("{s:o}", "host", doc);
}

static json_t *change(ad__registry_t *reg, const json_t *a, const char *const *from,
                      const char *to, const char *what, ad_error_t *err)
{
  json_t *doc = find_host(reg, a, err);
  if (!doc)
    return NULL;
  char cause[400];
  const char *reason = arg_str(a, "reason");
  snprintf(cause, sizeof cause, "%s by %s%s%s", what, arg_str(a, "actor") ? arg_str(a, "actor") : "operator",
           reason && *reason ? ": " : "", reason ? reason : "");
  json_t *set = json_pack("{s:s}", "reason", cause);
  json_t *after = move(reg, ad__jstr(doc, "_id"), from, set, to, what, cause,
                       arg_str(a, "actor"), err);
  json_decref(set);
  json_decref(doc);
  if (!after)
    return NULL;
  strip_internal(after);
  return json_pack("{s:o}", "host", after);
}

json_t *ad__host_retire(ad__registry_t *reg, const json_t *a, ad_error_t *err)
{
  static const char *const FROM[] = {"registering", "initializing", "ready", "init_failed",
                                     "unreachable", "draining", "quarantined", NULL};
  return change(reg, a, FROM, "retired", "retired", err);
}

json_t *ad__host_drain(ad__registry_t *reg, const json_t *a, ad_error_t *err)
{
  static const char *const FROM[] = {"ready", NULL}, *const UNDO[] = {"draining", NULL};
  if (json_is_true(json_object_get(a, "undo")))
    return change(reg, a, UNDO, "ready", "undrained", err);
  return change(reg, a, FROM, "draining", "draining", err);
}

json_t *ad__host_reinit(ad__registry_t *reg, const json_t *a, ad_error_t *err)
{
  static const char *const FROM[] = {"ready", "init_failed", "registering", NULL};
  json_t *doc = find_host(reg, a, err);
  if (!doc)
    return NULL;
  int ok = 0;
  for (int i = 0; FROM[i]; i++)
    ok |= !strcmp(FROM[i], ad__jstr(doc, "state"));
  if (!ok) {
    ad__err(err, AD_ESTATE, "registry", "host %s is %s: init runs again only from ready, "
            "init_failed or registering", ad__jstr(doc, "_id"), ad__jstr(doc, "state"));
    json_decref(doc);
    return NULL;
  }
  json_t *f = ad__reg_init_fields(reg, doc, arg_str(a, "actor"), err);
  if (!f) {
    json_decref(doc);
    return NULL;
  }
  char cause[300];
  snprintf(cause, sizeof cause, "init asked by %s", arg_str(a, "actor") ? arg_str(a, "actor") : "operator");
  int rc = ad__hosts_cas(reg, doc, f, "reinit", cause, arg_str(a, "actor"), err);
  json_decref(f);
  json_t *after = rc == 1 ? ad__hosts_find_one(reg, json_pack("{s:s}", "_id", ad__jstr(doc, "_id")), err) : NULL;
  if (rc == 0)
    ad__err(err, AD_ESTATE, "registry", "host %s changed meanwhile; try again", ad__jstr(doc, "_id"));
  json_decref(doc);
  if (!after)
    return NULL;
  strip_internal(after);
  return json_pack("{s:o}", "host", after);
}
