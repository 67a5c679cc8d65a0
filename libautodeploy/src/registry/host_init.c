/*
 * host_init.c - a host's init task (the init_state run on the minion:
 * registering -> initializing -> ready | init_failed), the end of that task
 * (the task system's on_end hook, or found by the reconcile pass when
 * nobody listened), and the alerts the registry raises through the task
 * system's alert hook.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "registry/registry_private.h"
#include "store/docs.h"

void ad__reg_alert(ad__registry_t *reg, const char *key, const char *what, const char *text)
{
  const ad__tasks_ctx_t *t = reg->env.tasks;
  if (!t || !t->alert)
    return;
  char title[200], body[1200], dedup[200];
  snprintf(title, sizeof title, "autodeploy host %s: %s", key, what);
  snprintf(body, sizeof body, "### host %s: %s\n%s\n\nInspect: `salt-run autodeploy.host %s`",
           key, what, text, key);
  snprintf(dedup, sizeof dedup, "host/%s/%s/%lld", key, what, (long long)(ad__now_ms() / 60000));
  t->alert(t->alert_user, title, body, dedup);
}

/* Fields that put `doc` into initialization (an init task), or straight to
 * ready when no init_state is configured. NULL + err when the task could
 * not be created. */
json_t *ad__reg_init_fields(ad__registry_t *reg, const json_t *doc, const char *actor,
                            ad_error_t *err)
{
  char now[32];
  ad__iso_ms(ad__now_ms(), now);
  if (!reg->c.init_state || !*reg->c.init_state)
    return json_pack("{s:s,s:s,s:s}", "state", "ready", "ready_at", now, "reason",
                     "no init_state configured: ready at once");
  if (!reg->env.tasks || !reg->env.tasks->store)
    return ad__err(err, AD_ECONFIG, "registry", "no task system for host init"), NULL;
  const char *key = ad__jstr(doc, "_id"), *minion = ad__jstr(doc, "minion");
  char reason[400];
  snprintf(reason, sizeof reason, "init host %s", key);
  json_t *args = json_pack(
      "{s:[s],s:s,s:[s],s:{s:{s:s,s:s,s:s,s:O}},s:i,s:{s:i,s:i},s:s,s:s,s:{s:s,s:s,s:s}}",
      "tgt", minion, "tgt_type", "list", "mods", reg->c.init_state, "pillar", "autodeploy_host",
      "key", key, "profile", ad__jstr(doc, "profile"), "private_ip", ad__jstr(doc, "private_ip"),
      "capacity", json_object_get(doc, "capacity") ? json_object_get(doc, "capacity") : json_null(),
      "timeout", reg->c.init_timeout, "retry", "max_attempts", reg->c.init_attempts, "backoff_s",
      reg->c.init_backoff_s, "created_by", actor ? actor : "autodeploy/registry", "reason",
      reason, "owner", "kind", "host_init", "host", key, "minion", minion);
  json_t *res = args ? ad__task_create(reg->env.tasks, args, err) : NULL;
  json_decref(args);
  if (!res)
    return NULL;
  json_t *task = json_object_get(res, "task");
  json_t *f = json_pack("{s:s,s:s,s:s,s:s}", "state", "initializing", "init_task",
                        ad__jstr(task, "_id"), "init_started_at", now, "reason", reason);
  json_decref(res);
  return f;
}

/* registering -> initializing (or ready) */
void ad__reg_begin_init(ad__registry_t *reg, json_t *doc, const char *cause)
{
  ad_error_t err;
  json_t *f = ad__reg_init_fields(reg, doc, NULL, &err);
  if (!f) {
    AD_LOG_E("registry", "host %s: init not started: %s", ad__jstr(doc, "_id"), err.message);
    json_t *set = json_pack("{s:s,s:s}", "state", "init_failed", "reason", err.message);
    ad__hosts_cas(reg, doc, set, "init not started", err.message, "autodeploy/registry", NULL);
    json_decref(set);
    ad__reg_alert(reg, ad__jstr(doc, "_id"), "init_failed", err.message);
    return;
  }
  ad__hosts_cas(reg, doc, f, "init", cause, "autodeploy/registry", NULL);
  json_decref(f);
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
void ad__reg_settle_inits(ad__registry_t *reg)
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
