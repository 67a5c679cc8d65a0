/*
 * registry.c - host registration: a hint names a minion; the master's own
 * files say whether it is one of ours and what it is; the decision (new,
 * same host, moved, reinstalled, conflict) is one conditional update of
 * the host document, with the reason in its history.
 *
 * Concurrency: hints for one minion are serialised by a striped lock;
 * across minions (and masters sharing one MongoDB) the `_id` (the host key)
 * is unique and every change is conditional on the document's `rev`.
 */
#include <fnmatch.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "store/docs.h"
#include "core/config.h"
#include "core/error_private.h"
#include "registry/hostinfo.h"
#include "core/log_private.h"
#include "registry/registry_private.h"
#include "registry/saltfiles.h"
#include "bus/sign.h"

#define K(name, type, field, min, max, def) \
  {name, type, offsetof(ad__reg_conf_t, field), min, max, def, NULL}
static const ad__config_key_t REG_KEYS[] = {
    K("enabled", AD_CT_BOOL, enabled, 0, 1, "true"),
    K("collection", AD_CT_STR, collection, 0, 0, "hosts"),
    K("refusals_collection", AD_CT_STR, refusals, 0, 0, "host_refusals"),
    K("init_state", AD_CT_STR, init_state, 0, 0, "autodeploy.host"),
    K("init_timeout", AD_CT_INT, init_timeout, 10, 86400, "1800"),
    K("init_attempts", AD_CT_INT, init_attempts, 1, 20, "2"),
    K("init_backoff_s", AD_CT_INT, init_backoff_s, 0, 86400, "60"),
    K("takeover_after", AD_CT_INT, takeover_after, 1, 30 * 86400, "3600"),
    K("unreachable_after", AD_CT_INT, unreachable_after, 1, 86400, "300"),
    K("liveness_interval", AD_CT_INT, liveness_interval, 1, 3600, "30"),
    K("reconcile_interval", AD_CT_INT, reconcile_interval, 1, 86400, "600"),
    K("history_max", AD_CT_INT, history_max, 10, 10000, "100"),
    K("refresh_missing", AD_CT_BOOL, refresh_missing, 0, 1, "true"),
    K("start_batch", AD_CT_INT, start_batch, 0, 10000, "256"),
    K("start_batch_ms", AD_CT_INT, start_batch_ms, 1, 1000, "5"),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__registry_keys(void) { return REG_KEYS; }

/* ---- the seen table: what was last decided per minion ------------------- */

static unsigned hash_id(const char *s)
{
  unsigned h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static ad__seen_t *seen_get(ad__registry_t *reg, const char *id)
{
  unsigned b = hash_id(id) % AD__SEEN_BUCKETS;
  for (ad__seen_t *s = reg->seen[b]; s; s = s->next)
    if (!strcmp(s->id, id))
      return s;
  if (reg->nseen >= 1000000)
    return NULL; /* bounded: past this, no dedupe */
  ad__seen_t *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  snprintf(s->id, sizeof s->id, "%s", id);
  s->next = reg->seen[b];
  reg->seen[b] = s;
  reg->nseen++;
  return s;
}

/* ---- life cycle ------------------------------------------------------------ */

ad__registry_t *ad__registry_new(const ad__registry_env_t *env, const json_t *conf,
                                 ad_error_t *err)
{
  ad__registry_t *reg = calloc(1, sizeof *reg);
  if (!reg) {
    ad__err(err, AD_ENOMEM, "registry", "no memory");
    return NULL;
  }
  reg->env = *env;
  reg->pki_dir = strdup(env->pki_dir ? env->pki_dir : "/etc/salt/pki/master");
  reg->cachedir = strdup(env->cachedir ? env->cachedir : "/var/cache/salt/master");
  reg->env.pki_dir = reg->pki_dir;
  reg->env.cachedir = reg->cachedir;
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
  for (int i = 0; i < AD__REG_STRIPES; i++)
    pthread_mutex_init(&reg->stripe[i], &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_mutex_init(&reg->seen_lock, NULL);
  json_t *c = json_is_object(conf) ? json_deep_copy(conf) : json_object();
  json_t *profiles = json_incref(json_object_get(c, "profiles"));
  json_t *pip = json_incref(json_object_get(c, "private_ip"));
  json_t *cmdb = json_incref(json_object_get(c, "cmdb"));
  json_object_del(c, "profiles");
  json_object_del(c, "private_ip");
  json_object_del(c, "cmdb");
  int rc = ad__config_load(REG_KEYS, &reg->c, c, err);
  if (rc)
    ad__err_prefix(err, "registry."); /* config.c names the key without our prefix */
  if (rc == 0)
    rc = ad__host_rules_load(&reg->rules, pip, profiles, err);
  if (rc == 0 && reg->c.enabled && (!reg->rules.profiles || !reg->rules.profiles[0]))
    rc = ad__err(err, AD_ECONFIG, "config",
                 "registry.profiles: required (the provider profiles allowed to register, "
                 "globs allowed; [\"*\"] for any)");
  if (rc == 0 && cmdb && !json_is_null(cmdb)) {
    ad__cmdb_outbox_t box = ad__hosts_outbox(reg);
    reg->cmdb = ad__cmdb_new(&box, cmdb, err);
    if (!reg->cmdb)
      rc = AD_ECONFIG;
    else
      ad__hosts_on_change(reg, ad__cmdb_kick, reg->cmdb);
  }
  /* start events in bursts (batch.c): only with a store to write to */
  if (rc == 0 && reg->c.enabled && env->store && reg->c.start_batch > 1) {
    reg->batch = ad__reg_batch_new(reg, reg->c.start_batch, reg->c.start_batch_ms);
    if (!reg->batch)
      rc = ad__err(err, AD_ENOMEM, "registry", "no memory for the start batch");
  }
  json_decref(profiles);
  json_decref(pip);
  json_decref(cmdb);
  json_decref(c);
  if (rc) {
    ad__registry_destroy(&reg);
    return NULL;
  }
  return reg;
}

void ad__registry_stop(ad__registry_t *reg)
{
  if (reg)
    ad__reg_batch_stop(reg->batch);
}

void ad__registry_destroy(ad__registry_t **reg_p)
{
  if (!reg_p || !*reg_p)
    return;
  ad__registry_t *reg = *reg_p;
  ad__reg_batch_destroy(&reg->batch); /* stopped by the engine already, bus alive */
  ad__hosts_on_change(reg, NULL, NULL);
  ad__cmdb_destroy(&reg->cmdb);
  for (int b = 0; b < AD__SEEN_BUCKETS; b++)
    for (ad__seen_t *s = reg->seen[b], *n; s; s = n) {
      n = s->next;
      free(s);
    }
  for (int i = 0; i < AD__REG_STRIPES; i++)
    pthread_mutex_destroy(&reg->stripe[i]);
  pthread_mutex_destroy(&reg->seen_lock);
  ad__host_rules_free(&reg->rules);
  ad__config_free(REG_KEYS, &reg->c);
  free(reg->pki_dir);
  free(reg->cachedir);
  free(reg);
  *reg_p = NULL;
}

/* ---- refusals ------------------------------------------------------- */

static void refuse(ad__registry_t *reg, const char *id, const char *why, const char *reason)
{
  AD_LOG_W("registry", "minion %s not registered (%s): %s", id, why, reason);
  char now[32];
  int64_t ms = ad__now_ms();
  ad__iso_ms(ms, now);
  json_t *doc = json_pack("{s:s,s:s,s:s,s:s,s:I}", "minion", id, "hint", why, "reason",
                          reason, "at", now, "at_ms", (json_int_t)ms);
  ad__reg_insert(reg, reg->c.refusals, doc, NULL);
  json_decref(doc);
  /* and on the minion's own host record, when it has one */
  json_t *host = ad__reg_host_of(reg, id);
  if (host) {
    char cause[400];
    snprintf(cause, sizeof cause, "refused (%s): %s", why, reason);
    ad__hosts_cas(reg, host, NULL, "refused", cause, "autodeploy/registry", NULL);
  }
  json_decref(host);
}

/* Ask the minion to send its grains again (the reactor runs
 * saltutil.refresh_grains; the master then rewrites its data cache and
 * fires minion/refresh/<id>, which brings us back here). */
static void ask_refresh(ad__registry_t *reg, const char *id)
{
  if (!reg->env.bus)
    return;
  char tag[256];
  snprintf(tag, sizeof tag, "autodeploy/host/%s/refresh", id);
  json_t *body = json_pack("{s:s}", "minion", id);
  ad_error_t err;
  if (ad__fire_signed(reg->env.bus, reg->env.key_path, tag, body, &err))
    AD_LOG_E("registry", "asking %s to refresh its grains: %s", id, err.message);
  json_decref(body);
}

/* The master's files about minion `id`: its key, its grains, the facts.
 * The facts (owned) when there is something to decide, with *look filled
 * for ad__reg_look_end; NULL when it was refused or nothing is new (look
 * still to end). Serialised per minion by the caller (the stripe lock). */
static const char *const WHY_NAMES[AD__REG_WHY_N] = {"start", "refresh", "key", "reconcile"};

static ad__reg_counts_t *counts_for(ad__registry_t *reg, const char *why)
{
  static const char *const whys[AD__REG_WHY_N] = {"minion start", "data cache refresh",
                                                  "key event", "reconcile"};
  for (int i = 0; i < AD__REG_WHY_N; i++)
    if (!strcmp(why, whys[i]))
      return &reg->counts[i];
  return &reg->counts[AD__REG_WHY_RECONCILE];
}

json_t *ad__registry_stats_json(ad__registry_t *reg)
{
  json_t *j = json_object();
  for (int i = 0; j && i < AD__REG_WHY_N; i++) {
    ad__reg_counts_t *c = &reg->counts[i];
    if (json_object_set_new(
            j, WHY_NAMES[i],
            json_pack("{s:I,s:I,s:I,s:I,s:I}", "looked", (json_int_t)atomic_load(&c->looked),
                      "unchanged", (json_int_t)atomic_load(&c->unchanged), "refused",
                      (json_int_t)atomic_load(&c->refused), "decided",
                      (json_int_t)atomic_load(&c->decided), "errors",
                      (json_int_t)atomic_load(&c->errors)))) {
      json_decref(j);
      return NULL;
    }
  }
  return j;
}

static json_t *look_files(ad__registry_t *reg, const char *id, const char *why, int force,
                          ad__reg_look_t *look, atomic_ullong **outcome);

json_t *ad__reg_look(ad__registry_t *reg, const char *id, const char *why, int force,
                     ad__reg_look_t *look)
{
  ad__reg_counts_t *c = counts_for(reg, why);
  atomic_ullong *outcome = &c->errors;
  json_t *facts = look_files(reg, id, why, force, look, &outcome);
  atomic_fetch_add(outcome, 1);
  atomic_fetch_add(&c->looked, 1); /* last: looked covers its outcome */
  return facts;
}

static json_t *look_files(ad__registry_t *reg, const char *id, const char *why, int force,
                          ad__reg_look_t *look, atomic_ullong **outcome)
{
  ad__reg_counts_t *c = counts_for(reg, why);
  ad_error_t err;
  int64_t now = ad__now_ms();
  look->fp[0] = 0;
  look->s = NULL;
  int k = ad__salt_key_accepted(reg->pki_dir, id, reg->env.hash_type, look->fp,
                                sizeof look->fp, &err);
  if (k < 0) {
    AD_LOG_E("registry", "minion %s: %s", id, err.message);
    return NULL;
  }
  pthread_mutex_lock(&reg->seen_lock);
  ad__seen_t *s = look->s = seen_get(reg, id);
  ad__seen_t *copy = &look->copy;
  *copy = s ? *s : (ad__seen_t){0};
  pthread_mutex_unlock(&reg->seen_lock);
  *outcome = &c->refused;
  if (k == 0) {
    if (force || now - copy->refused_at > 60000 || copy->stamp != -1) {
      refuse(reg, id, why, "its key is not accepted on this master");
      copy->refused_at = now;
      copy->stamp = -1;
    }
    return NULL;
  }
  int64_t stamp = 0;
  json_t *g = ad__salt_cached_grains(reg->cachedir, id, &stamp, &err);
  if (!g) {
    if (err.code == AD_ENOTFOUND && reg->c.refresh_missing && now - copy->refresh_at > 60000) {
      ask_refresh(reg, id);
      copy->refresh_at = now;
      char m[400];
      snprintf(m, sizeof m, "%s; asked the minion to refresh its grains", err.message);
      refuse(reg, id, why, m);
    } else if (force || now - copy->refused_at > 60000) {
      refuse(reg, id, why, err.message);
      copy->refused_at = now;
    }
    return NULL;
  }
  if (!force && !copy->quarantined && copy->stamp == stamp && !strcmp(copy->fp, look->fp) &&
      now - copy->at < 60000) {
    json_decref(g);
    look->s = NULL; /* nothing new since the last decision: nothing to remember */
    *outcome = &c->unchanged;
    return NULL;
  }
  copy->stamp = stamp;
  snprintf(copy->fp, sizeof copy->fp, "%s", look->fp);
  copy->at = now;
  json_t *facts = ad__host_facts(g, id, &reg->rules, &err);
  json_decref(g);
  if (!facts) {
    refuse(reg, id, why, err.message);
    copy->refused_at = now;
  } else
    *outcome = &c->decided;
  return facts;
}

/* Remember what was decided (the seen table). */
void ad__reg_look_end(ad__registry_t *reg, ad__reg_look_t *look)
{
  pthread_mutex_lock(&reg->seen_lock);
  if (look->s) {
    ad__seen_t *next = look->s->next;
    *look->s = look->copy;
    look->s->next = next;
  }
  pthread_mutex_unlock(&reg->seen_lock);
}

static void register_one(ad__registry_t *reg, const char *id, const char *why, int force)
{
  ad__reg_look_t look;
  json_t *facts = ad__reg_look(reg, id, why, force, &look);
  if (facts)
    look.copy.quarantined = ad__reg_decide(reg, facts, look.fp, why);
  json_decref(facts);
  ad__reg_look_end(reg, &look);
}

pthread_mutex_t *ad__reg_stripe(ad__registry_t *reg, const char *id)
{
  return &reg->stripe[hash_id(id) % AD__REG_STRIPES];
}

static int hint_ok(ad__registry_t *reg, const char *id, const char *why)
{
  if (!reg || !reg->c.enabled)
    return 0;
  if (!ad__salt_valid_id(id, strlen(id))) {
    AD_LOG_W("registry", "ignored a %s hint for an invalid minion id (%zu bytes)", why,
             strlen(id));
    return 0;
  }
  return 1;
}

void ad__registry_hint(ad__registry_t *reg, const char *id, const char *why, int force)
{
  if (!hint_ok(reg, id, why))
    return;
  pthread_mutex_t *m = &reg->stripe[hash_id(id) % AD__REG_STRIPES];
  pthread_mutex_lock(m);
  register_one(reg, id, why, force);
  pthread_mutex_unlock(m);
}

/* ---- the engine timer ---------------------------------------------------------- */

static void hint_cb(void *user, const char *id)
{
  ad__registry_hint(user, id, "reconcile", 0);
}

int64_t ad__registry_tick(ad__registry_t *reg)
{
  if (!reg || !reg->c.enabled)
    return 60000;
  int64_t now = ad__now_ms();
  if (!reg->indexed && now >= reg->next_reconcile_ms)
    ad__hosts_make_indexes(reg);
  if (now >= reg->next_live_ms) {
    reg->next_live_ms = now + reg->c.liveness_interval * 1000LL;
    ad__reg_liveness(reg);
  }
  if (now >= reg->next_reconcile_ms) {
    reg->next_reconcile_ms = now + reg->c.reconcile_interval * 1000LL;
    ad_error_t err;
    if (ad__salt_each_accepted(reg->pki_dir, hint_cb, reg, &err))
      AD_LOG_E("registry", "reconcile: %s", err.message);
    ad__reg_settle_inits(reg);
  }
  int64_t next = reg->next_live_ms < reg->next_reconcile_ms ? reg->next_live_ms
                                                            : reg->next_reconcile_ms;
  return next - ad__now_ms();
}

/* ---- bus handlers -------------------------------------------------------------- */

/* the id segment of a tag: "salt/minion/<id>/start" -> seg 2 */
static int tag_segment(ad_event_t *ev, int seg, char *out, size_t size)
{
  const char *t = ad_event_tag(ev);
  for (int i = 0; i < seg; i++) {
    t = strchr(t, '/');
    if (!t)
      return -1;
    t++;
  }
  const char *end = strchr(t, '/');
  size_t n = end ? (size_t)(end - t) : strlen(t);
  if (n == 0 || n >= size)
    return -1;
  memcpy(out, t, n);
  out[n] = 0;
  return 0;
}

/* A hint for the minion named by the tag's third segment. */
static int hint_from_tag(ad__registry_t *reg, ad_event_t *ev, const char *why)
{
  char id[AD__MINION_ID_MAX + 2];
  if (tag_segment(ev, 2, id, sizeof id))
    return 1;
  ad__registry_hint(reg, id, why, 0);
  return 0;
}

/* salt/minion/<id>/start: queued for the burst (batch.c) when there is one;
 * a full queue registers it here at once */
int ad__registry_on_start(ad__registry_t *reg, ad_event_t *ev)
{
  char id[AD__MINION_ID_MAX + 2];
  const char *why = "minion start";
  if (tag_segment(ev, 2, id, sizeof id))
    return 1;
  if (!hint_ok(reg, id, why))
    return 0;
  if (reg->batch && ad__reg_batch_push(reg->batch, id, why) == 0)
    return 0;
  ad__registry_hint(reg, id, why, 0);
  return 0;
}

int ad__registry_on_refresh(ad__registry_t *reg, ad_event_t *ev)
{
  return hint_from_tag(reg, ev, "data cache refresh"); /* minion/refresh/<id> */
}

int ad__registry_on_key(ad__registry_t *reg, ad_event_t *ev)
{
  const char *id;
  size_t n;
  char buf[AD__MINION_ID_MAX + 1];
  if (ad_event_get_str(ev, "id", &id, &n) || n == 0 || n > AD__MINION_ID_MAX)
    return 0;
  memcpy(buf, id, n);
  buf[n] = 0;
  ad__registry_hint(reg, buf, "key event", 0);
  return 0;
}
