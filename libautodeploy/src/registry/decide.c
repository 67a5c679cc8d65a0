/*
 * decide.c - one registration decision: gather the records (the host that
 * has the key, the minion's live host, whether the holder's key is still
 * accepted), classify them (classify.c, pure), apply the action as one
 * insert or one conditional update, then the one exit protocol: a lost race
 * decides again, a store error gives up until the next hint, and a done
 * registration maps the minion to its host and drops its quarantine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "registry/registry_private.h"
#include "registry/saltfiles.h"
#include "store/docs.h"

#define ACTOR "autodeploy/registry"

/* the host fields the facts give: everything but the key, with the key's
 * fingerprint and the times seen */
static json_t *facts_set(const json_t *facts, const char *fp, int64_t now)
{
  char iso[32];
  ad__iso_ms(now, iso);
  json_t *set = json_deep_copy(facts);
  if (!set)
    return NULL;
  json_object_del(set, "key");
  json_object_set_new(set, "key_fingerprint", json_string(fp));
  json_object_set_new(set, "last_seen", json_string(iso));
  json_object_set_new(set, "last_seen_ms", json_integer(now));
  json_object_set_new(set, "last_registered_at", json_string(iso));
  return set;
}

static json_t *host_by_key(ad__registry_t *reg, const char *key)
{
  return ad__hosts_find_one(reg, json_pack("{s:s}", "_id", key), NULL);
}

/* the history's second entry when `extra` puts a new host past registering */
static void add_init_entry(json_t *doc, const json_t *extra, const char *iso)
{
  const char *st = json_string_value(json_object_get(doc, "state"));
  if (!st || !strcmp(st, "registering") || !strcmp(st, "quarantined") ||
      json_object_get(extra, "history"))
    return;
  const char *reason = json_string_value(json_object_get(doc, "reason"));
  json_array_append_new(json_object_get(doc, "history"),
                        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "at", iso, "what", "init", "from",
                                  "registering", "to", st, "cause", reason ? reason : "",
                                  "actor", ACTOR));
}

/* a new document for `facts` (owned), or NULL */
static json_t *build_new(const json_t *facts, const char *fp, json_t *extra, const char *what,
                         const char *cause)
{
  int64_t now = ad__now_ms();
  char iso[32];
  ad__iso_ms(now, iso);
  json_t *doc = facts_set(facts, fp, now);
  if (!doc)
    return NULL;
  json_object_set_new(doc, "_id", json_string(ad__jstr(facts, "key")));
  json_object_set_new(doc, "rev", json_integer(0));
  json_object_set_new(doc, "state", json_string("registering"));
  json_object_set_new(doc, "first_seen", json_string(iso));
  json_object_set_new(doc, "registered_at", json_string(iso));
  json_object_set_new(doc, "cmdb_dirty", json_true());
  json_object_set_new(doc, "cmdb_next_ms", json_integer(0));
  json_object_set_new(doc, "history", json_pack("[{s:s,s:s,s:s,s:s,s:s}]", "at", iso, "what",
                                                what, "to", "registering", "cause", cause,
                                                "actor", ACTOR));
  if (extra)
    json_object_update(doc, extra);
  add_init_entry(doc, extra, iso);
  return doc;
}

/* a new document for `facts`, inserted; 1 inserted (*out: it, when out is
 * given), 0 key taken, <0 error */
static int insert_new(ad__registry_t *reg, const json_t *facts, const char *fp, json_t *extra,
                      const char *what, const char *cause, json_t **out)
{
  json_t *doc = build_new(facts, fp, extra, what, cause);
  if (!doc)
    return AD_ENOMEM;
  ad_error_t err;
  int rc = ad__reg_insert(reg, reg->c.collection, doc, &err);
  if (rc < 0)
    AD_LOG_E("registry", "storing host %s: %s", ad__jstr(facts, "key"), err.message);
  if (rc == 1)
    ad__hosts_ready_hook(reg, doc, doc); /* ready at once: no init_state */
  if (rc == 1 && out)
    *out = json_incref(doc);
  json_decref(doc);
  return rc;
}

/* ---- the actions: 1 done, 0 lost a race (decide again), <0 store error ------------ */

typedef struct {
  ad__registry_t *reg;
  const ad__reg_records_t *r;
  const json_t *facts;
  const char *fp, *id, *key;
  const ad__reg_decision_t *d;
  int64_t now;
} apply_ctx_t;

/* init starts right away in the new document (one insert, no update, for
 * the common case): its init task (if any) is created first */
static json_t *new_doc(ad__registry_t *reg, const json_t *facts, const char *fp,
                       const char *cause)
{
  json_t *pseudo = json_deep_copy(facts);
  if (!pseudo)
    return NULL;
  json_object_set_new(pseudo, "_id", json_string(ad__jstr(facts, "key")));
  ad_error_t ierr;
  json_t *init = ad__reg_init_fields(reg, pseudo, NULL, &ierr);
  json_decref(pseudo);
  if (!init)
    init = json_pack("{s:s,s:s}", "state", "init_failed", "reason", ierr.message);
  json_t *doc = init ? build_new(facts, fp, init, "registered", cause) : NULL;
  json_decref(init);
  return doc;
}

json_t *ad__reg_new_doc(ad__registry_t *reg, const json_t *facts, const char *fp,
                        const char *why)
{
  ad__reg_records_t r = {NULL, NULL, 1};
  ad__reg_decision_t d;
  ad__registry_classify(&r, facts, fp, why, ad__now_ms(), &reg->c, &d);
  return d.action == AD__REG_NEW ? new_doc(reg, facts, fp, d.cause) : NULL;
}

/* a lost insert cancels the task it created */
void ad__reg_new_done(ad__registry_t *reg, const json_t *doc, int rc)
{
  const char *state = ad__jstr(doc, "state");
  if (rc == 1) {
    AD_LOG_I("registry", "%s -> %s", ad__jstr(json_array_get(json_object_get(doc, "history"), 0),
                                              "cause"), state);
    ad__hosts_ready_hook(reg, doc, doc); /* ready at once when there is no init_state */
    if (!strcmp(state, "init_failed"))
      ad__reg_alert(reg, ad__jstr(doc, "_id"), "init_failed", ad__jstr(doc, "reason"));
  } else if (rc == 0 && json_is_string(json_object_get(doc, "init_task")) && reg->env.tasks) {
    json_t *ta = json_pack("{s:s,s:s,s:s,s:s}", "id", ad__jstr(doc, "init_task"), "action",
                           "cancel", "reason", "registration lost a race", "actor", ACTOR);
    if (ta)
      json_decref(ad__task_intervene(reg->env.tasks, ta, NULL));
    json_decref(ta);
  }
}

static int apply_new(const apply_ctx_t *x)
{
  json_t *doc = new_doc(x->reg, x->facts, x->fp, x->d->cause);
  if (!doc)
    return AD_ENOMEM;
  ad_error_t err;
  int rc = ad__reg_insert(x->reg, x->reg->c.collection, doc, &err);
  if (rc < 0)
    AD_LOG_E("registry", "storing host %s: %s", x->key, err.message);
  ad__reg_new_done(x->reg, doc, rc);
  json_decref(doc);
  return rc;
}

/* the same minion from a new address (or profile): a new document that
 * keeps the old one's state and history; the old one retires */
static int apply_move(const apply_ctx_t *x)
{
  const json_t *prev = x->r->prev;
  const char *cause = x->d->cause, *reinstall = x->d->reinstall;
  char iso[32];
  ad__iso_ms(x->now, iso);
  json_t *extra = json_pack("{s:s,s:O,s:s,s:O,s:O}", "state", ad__jstr(prev, "state"),
                            "first_seen", json_object_get(prev, "first_seen"), "moved_from",
                            ad__jstr(prev, "_id"), "init_task",
                            json_object_get(prev, "init_task") ? json_object_get(prev, "init_task")
                                                                : json_null(),
                            "history", json_object_get(prev, "history"));
  if (!extra)
    return AD_ENOMEM;
  json_array_append_new(json_object_get(extra, "history"),
                        json_pack("{s:s,s:s,s:s,s:s}", "at", iso, "what", "moved", "cause", cause,
                                  "actor", ACTOR));
  json_t *doc = NULL;
  int rc = insert_new(x->reg, x->facts, x->fp, extra, "moved", cause, &doc);
  json_decref(extra);
  if (rc != 1)
    return rc;
  char note[700];
  snprintf(note, sizeof note, "moved to %s: %s", x->key, cause);
  json_t *set = json_pack("{s:s,s:s,s:s}", "state", "retired", "moved_to", x->key, "reason", note);
  if (set)
    ad__hosts_cas(x->reg, prev, set, "moved", note, ACTOR, NULL);
  json_decref(set);
  AD_LOG_W("registry", "%s", cause);
  ad__reg_alert(x->reg, x->key, "address changed", cause);
  const char *st = ad__jstr(doc, "state");
  if (reinstall || !strcmp(st, "registering") || !strcmp(st, "unreachable"))
    ad__reg_begin_init(x->reg, doc, reinstall ? reinstall : "registered");
  json_decref(doc);
  return 1;
}

/* a retired host stays retired: the look goes into its history only */
static int apply_retired(const apply_ctx_t *x)
{
  return ad__hosts_cas(x->reg, x->r->by_key, NULL, "seen", x->d->cause, ACTOR, NULL);
}

/* registering, or reinstalled (key or machine-id changed): init (again) */
static int apply_register(const apply_ctx_t *x)
{
  json_t *set = facts_set(x->facts, x->fp, x->now);
  if (!set)
    return AD_ENOMEM;
  const char *reinstall = x->d->reinstall;
  int rc = ad__hosts_cas(x->reg, x->r->by_key, set, reinstall ? "reinstalled" : "registered",
                         x->d->cause, ACTOR, NULL);
  json_decref(set);
  if (rc != 1)
    return rc;
  json_t *doc = host_by_key(x->reg, x->key);
  if (doc)
    ad__reg_begin_init(x->reg, doc, x->d->cause);
  json_decref(doc);
  if (reinstall)
    ad__reg_alert(x->reg, x->key, "reinstalled", x->d->cause);
  return 1;
}

static int apply_unchanged(const apply_ctx_t *x)
{
  ad__hosts_touch_seen(x->reg, x->key, x->now);
  return 1;
}

/* seen again: new facts, and back from unreachable to where it was */
static int apply_seen(const apply_ctx_t *x)
{
  json_t *set = facts_set(x->facts, x->fp, x->now);
  if (!set)
    return AD_ENOMEM;
  if (!strcmp(ad__jstr(x->r->by_key, "state"), "unreachable")) {
    const char *back = ad__jstr(x->r->by_key, "state_before_unreachable");
    json_object_set_new(set, "state", json_string(*back ? back : "ready"));
  }
  int rc = ad__hosts_cas(x->reg, x->r->by_key, set, "seen", x->d->cause, ACTOR, NULL);
  json_decref(set);
  return rc;
}

/* A second live minion claims the key: it gets its own document,
 * quarantine:<id>, and the holder's history says so. A quarantine an
 * operator retired is left alone (salt-key -d removes the minion for good). */
static int apply_conflict(const apply_ctx_t *x)
{
  const json_t *holder = x->r->by_key;
  const char *cause = x->d->cause, *hm = ad__jstr(holder, "minion");
  char qid[200];
  snprintf(qid, sizeof qid, "quarantine:%s", x->id);
  json_t *q = host_by_key(x->reg, qid);
  json_t *extra = json_pack("{s:s,s:s,s:s,s:s}", "state", "quarantined", "wants_key", x->key,
                            "conflict_with", hm, "reason", cause);
  json_t *f2 = json_deep_copy(x->facts);
  if (!extra || !f2)
    goto done;
  if (!q) {
    json_object_set_new(f2, "key", json_string(qid));
    if (insert_new(x->reg, f2, x->fp, extra, "quarantined", cause, NULL) == 1) {
      /* so that try_new never takes this minion for a new one; a mapping
       * it already has (its own earlier host) is kept */
      json_t *map = json_pack("{s:s,s:s}", "_id", x->id, "key", qid);
      if (map)
        ad__reg_insert(x->reg, AD__HOST_MINIONS, map, NULL);
      json_decref(map);
      AD_LOG_W("registry", "minion %s quarantined: %s", x->id, cause);
      ad__reg_alert(x->reg, x->key, "conflict: minion quarantined", cause);
      char note[400];
      snprintf(note, sizeof note, "minion %s claims this key: quarantined (%s)", x->id, x->d->gone);
      ad__hosts_cas(x->reg, holder, NULL, "conflict", note, ACTOR, NULL);
    }
  } else if (strcmp(ad__jstr(q, "state"), "retired")) {
    json_t *set = facts_set(x->facts, x->fp, x->now);
    if (set && json_object_update(set, extra) == 0)
      ad__hosts_cas(x->reg, q, set, "still quarantined", cause, ACTOR, NULL);
    json_decref(set);
  }
done:
  json_decref(f2);
  json_decref(extra);
  json_decref(q);
  return 1;
}

/* the holder is gone: this minion takes the key over and inits the host */
static int apply_takeover(const apply_ctx_t *x)
{
  const json_t *holder = x->r->by_key;
  json_t *set = facts_set(x->facts, x->fp, x->now);
  if (!set)
    return AD_ENOMEM;
  json_object_set_new(set, "state", json_string("registering"));
  json_object_set_new(set, "previous_minion", json_string(ad__jstr(holder, "minion")));
  json_object_set_new(set, "taken_over_at_ms", json_integer(x->now));
  int rc = ad__hosts_cas(x->reg, holder, set, "taken over", x->d->cause, ACTOR, NULL);
  json_decref(set);
  if (rc != 1)
    return rc;
  AD_LOG_W("registry", "%s", x->d->cause);
  ad__reg_alert(x->reg, x->key, "taken over by a new minion", x->d->cause);
  json_t *doc = host_by_key(x->reg, x->key);
  if (doc)
    ad__reg_begin_init(x->reg, doc, x->d->cause);
  json_decref(doc);
  return 1;
}

typedef int (*apply_fn)(const apply_ctx_t *x);
static const apply_fn APPLY[] = {
    [AD__REG_NEW] = apply_new,           [AD__REG_MOVE] = apply_move,
    [AD__REG_RETIRED] = apply_retired,   [AD__REG_REINSTALL] = apply_register,
    [AD__REG_REGISTER] = apply_register, [AD__REG_UNCHANGED] = apply_unchanged,
    [AD__REG_SEEN] = apply_seen,         [AD__REG_CONFLICT] = apply_conflict,
    [AD__REG_TAKEOVER] = apply_takeover,
};

/* ---- gather, classify, apply, exit -------------------------------------------------- */

static void drop_quarantine(ad__registry_t *reg, const char *id)
{
  char qid[200];
  snprintf(qid, sizeof qid, "quarantine:%s", id);
  /* look first: a find by _id is cheap everywhere, a delete is not on FerretDB */
  json_t *q = host_by_key(reg, qid);
  if (q)
    ad__reg_delete(reg, qid);
  json_decref(q);
}

/* What the store holds for the key and the minion (owned: release). */
static void gather(ad__registry_t *reg, const json_t *facts, ad__reg_records_t *r)
{
  const char *id = ad__jstr(facts, "minion");
  json_t *by_key = host_by_key(reg, ad__jstr(facts, "key"));
  r->by_key = by_key;
  r->prev = NULL;
  r->holder_key_accepted = 1;
  if (!by_key) {
    r->prev = ad__reg_host_of(reg, id);
    return;
  }
  const char *holder = ad__jstr(by_key, "minion");
  if (strcmp(holder, id) && strcmp(ad__jstr(by_key, "state"), "retired")) {
    ad_error_t err;
    r->holder_key_accepted =
        ad__salt_key_accepted(reg->pki_dir, holder, reg->env.hash_type, NULL, 0, &err) != 0;
  }
}

static void release(ad__reg_records_t *r)
{
  json_decref((json_t *)r->by_key);
  json_decref((json_t *)r->prev);
}

/* A new host with writes only. FerretDB v1.24 finds, updates and deletes
 * by scanning the collection, even on _id, but an insert's duplicate _id is
 * caught by its unique index (docs/registration.md). So claim the minion
 * in host_minions first, then insert the host: when both go in, nobody held
 * the minion or the key, which is exactly what classify calls NEW, and the
 * document is what apply_new writes. Either _id taken means there is a
 * record to read: 0, decide in full (a mapping left behind is a hint only;
 * ad__reg_host_of checks the host). A quarantined minion has a mapping
 * (apply_conflict), so its quarantine is never skipped here. 1 done, 0 not
 * new, <0 store error (logged). */
static int try_new(ad__registry_t *reg, const json_t *facts, const char *fp, const char *why)
{
  const char *id = ad__jstr(facts, "minion"), *key = ad__jstr(facts, "key");
  json_t *map = json_pack("{s:s,s:s}", "_id", id, "key", key);
  ad_error_t err;
  int rc = map ? ad__reg_insert(reg, AD__HOST_MINIONS, map, &err) : AD_ENOMEM;
  json_decref(map);
  if (rc < 0)
    AD_LOG_E("registry", "minion %s: %s", id, rc == AD_ENOMEM ? "no memory" : err.message);
  if (rc != 1)
    return rc;
  json_t *doc = ad__reg_new_doc(reg, facts, fp, why);
  if (!doc)
    return 0; /* not new by classify's rules (or no memory): the full path decides */
  rc = ad__reg_insert(reg, reg->c.collection, doc, &err);
  if (rc < 0)
    AD_LOG_E("registry", "storing host %s: %s", key, err.message);
  ad__reg_new_done(reg, doc, rc);
  json_decref(doc);
  return rc;
}

int ad__reg_decide(ad__registry_t *reg, const json_t *facts, const char *fp, const char *why)
{
  if (try_new(reg, facts, fp, why) != 0)
    return 0; /* registered, or a store error (logged): the next hint decides again */
  return ad__reg_decide_full(reg, facts, fp, why);
}

int ad__reg_decide_full(ad__registry_t *reg, const json_t *facts, const char *fp,
                        const char *why)
{
  const char *id = ad__jstr(facts, "minion"), *key = ad__jstr(facts, "key");
  for (int attempt = 0; attempt < 5; attempt++) {
    apply_ctx_t x = {reg, NULL, facts, fp, id, key, NULL, ad__now_ms()};
    ad__reg_records_t r;
    ad__reg_decision_t d;
    gather(reg, facts, &r);
    ad__registry_classify(&r, facts, fp, why, x.now, &reg->c, &d);
    x.r = &r;
    x.d = &d;
    int rc = APPLY[d.action](&x);
    release(&r);
    if (rc == 0)
      continue; /* the document changed or the key was taken meanwhile */
    if (rc < 0)
      return 0; /* logged; the next hint decides again */
    if (d.action == AD__REG_CONFLICT)
      return 1;
    if (d.action != AD__REG_UNCHANGED)
      ad__hosts_map_minion(reg, id, key);
    drop_quarantine(reg, id);
    return 0;
  }
  AD_LOG_W("registry", "minion %s: %s kept changing; will decide at the next hint", id, key);
  return 0;
}
