/*
 * host_cmds.c - the runner commands on hosts (ad_call's host.list,
 * host.get, host.retire, host.drain, host.reinit; salt-run autodeploy.hosts,
 * host, retire, drain, reinit): each a conditional change of one host
 * document, refused by name when the host is not in a state it may leave.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_private.h"
#include "registry/registry_private.h"
#include "store/docs.h"

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
