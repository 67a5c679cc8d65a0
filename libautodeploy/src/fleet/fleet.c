/*
 * fleet.c - platforms and services: configuration, the runner commands,
 * openings (signed events), the end of deploy tasks, beacon samples into
 * the load history. The cycle itself is cycle.c.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/docs.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/error_private.h"
#include "wire/json.h"
#include "fleet/fleet_private.h"
#include "core/log_private.h"
#include "decide/reserve.h"
#include "bus/sign.h"

#define K(name, type, field, min, max, def) \
  {name, type, offsetof(ad__fleet_conf_t, field), min, max, def, NULL}
static const ad__config_key_t FLEET_KEYS[] = {
    K("enabled", AD_CT_BOOL, enabled, 0, 1, "true"),
    K("cycle_interval", AD_CT_INT, cycle_interval, 1, 86400, "600"),
    K("lease_s", AD_CT_INT, lease_s, 5, 86400, "300"),
    K("load_window_hours", AD_CT_INT, load_window_hours, 1, 24 * 90, "168"),
    K("measure_after_hours", AD_CT_INT, measure_after_hours, 0, 24 * 30, "24"),
    K("top_k", AD_CT_INT, top_k, 1, 8, "5"),
    K("deploy_timeout", AD_CT_INT, deploy_timeout, 10, 86400, "1800"),
    K("deploy_attempts", AD_CT_INT, deploy_attempts, 1, 20, "3"),
    K("deploy_backoff_s", AD_CT_INT, deploy_backoff_s, 0, 86400, "120"),
    K("metrics_prune_interval", AD_CT_INT, metrics_prune_interval, 10, 86400, "3600"),
    K("platforms_collection", AD_CT_STR, platforms, 0, 0, "platforms"),
    K("services_collection", AD_CT_STR, services, 0, 0, "services"),
    K("locks_collection", AD_CT_STR, locks, 0, 0, "locks"),
    K("usage_min_samples", AD_CT_INT, usage_min_samples, 1, 1000000, "30"),
    K("usage_refresh_s", AD_CT_INT, usage_refresh_s, 0, 86400, "300"),
    K("service_metrics_collection", AD_CT_STR, service_metrics, 0, 0, "service_metrics"),
    K("service_metrics_expire_s", AD_CT_INT, service_metrics_expire_s, 3600, 2000000000, "1296000"),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__fleet_keys(void) { return FLEET_KEYS; }

/* The "placement" keys into f->c: the table, then headroom (a number in
 * (0, 1], which the table cannot say) and the checks across keys. The
 * metrics object is open_metrics' to read. */
static int load_conf(ad__fleet_t *f, const json_t *conf, ad_error_t *err)
{
  json_t *c = json_is_object(conf) ? json_deep_copy(conf) : json_object();
  if (!c)
    return ad__err(err, AD_ENOMEM, "fleet", "no memory for the configuration");
  json_t *headroom = json_incref(json_object_get(c, "headroom"));
  json_object_del(c, "metrics");
  json_object_del(c, "headroom");
  int rc = ad__config_load(FLEET_KEYS, &f->c, c, err);
  if (rc)
    ad__err_prefix(err, "placement."); /* config.c names the key without our prefix */
  f->c.headroom = 0.8;
  if (rc == 0 && headroom) {
    if (!json_is_number(headroom) || json_number_value(headroom) <= 0 ||
        json_number_value(headroom) > 1)
      rc = ad__err(err, AD_ECONFIG, "config", "placement.headroom: must be a number in (0, 1]");
    else
      f->c.headroom = json_number_value(headroom);
  }
  if (rc == 0 && (int64_t)f->c.service_metrics_expire_s < f->c.measure_after_hours * 3600LL)
    rc = ad__err(err, AD_ECONFIG, "config",
                 "placement.service_metrics_expire_s: %d is shorter than measure_after_hours "
                 "(%d h): usage would be computed from pruned samples",
                 f->c.service_metrics_expire_s, f->c.measure_after_hours);
  json_decref(headroom);
  json_decref(c);
  return rc;
}

/* The load history source, placement.metrics; the default is Salt
 * beacons in our own MongoDB. */
static int open_metrics(ad__fleet_t *f, const json_t *metrics, ad_error_t *err)
{
  json_t *mc = json_is_object(metrics) ? json_deep_copy(metrics) : json_object();
  if (!mc)
    return ad__err(err, AD_ENOMEM, "fleet", "no memory for placement.metrics");
  const char *backend = json_string_value(json_object_get(mc, "backend"));
  char be[32];
  snprintf(be, sizeof be, "%s", backend ? backend : "salt");
  json_object_del(mc, "backend");
  const ad__fleet_env_t *env = &f->env;
  if (!strcmp(be, "salt") &&
      ((!json_object_get(mc, "mongo_uri") && env->mongo_uri &&
        json_object_set_new(mc, "mongo_uri", json_string(env->mongo_uri))) ||
       (!json_object_get(mc, "db") && env->mongo_db &&
        json_object_set_new(mc, "db", json_string(env->mongo_db))))) {
    json_decref(mc);
    return ad__err(err, AD_ENOMEM, "fleet", "no memory for placement.metrics");
  }
  f->metrics = ad__metrics_new(be, mc, err);
  json_decref(mc);
  if (f->metrics)
    return 0;
  ad__err_prefix(err, "placement.metrics: ");
  return AD_ECONFIG;
}

ad__fleet_t *ad__fleet_new(const ad__fleet_env_t *env, const json_t *conf, ad_error_t *err)
{
  ad__fleet_t *f = calloc(1, sizeof *f);
  if (!f)
    return ad__err(err, AD_ENOMEM, "fleet", "no memory"), NULL;
  f->env = *env;
  pthread_mutex_init(&f->last_lock, NULL);
  char host[48] = "?";
  gethostname(host, sizeof host - 1);
  snprintf(f->owner, sizeof f->owner, "%.40s:%d:%p", host, (int)getpid(), (void *)f);
  if (!(f->hosts_coll = strdup(env->hosts_collection ? env->hosts_collection : "hosts"))) {
    ad__err(err, AD_ENOMEM, "fleet", "no memory");
    goto fail;
  }
  f->env.hosts_collection = f->hosts_coll;
  if (load_conf(f, conf, err) || open_metrics(f, json_object_get(conf, "metrics"), err))
    goto fail;
  f->lease_store = (ad__lease_mongo_t){env->store, f->c.locks};
  f->lease = ad__lease_new(&ad__lease_mongo, &f->lease_store, "cycle", f->owner,
                           f->c.lease_s * 1000, 1000, NULL, NULL);
  if (!f->lease) {
    ad__err(err, AD_ENOMEM, "fleet", "no memory");
    goto fail;
  }
  ad__fleet_index_metrics(f);
  f->next_cycle_ms = ad__now_ms() + 5000; /* let the registry settle first */
  return f;
fail:
  ad__fleet_destroy(&f);
  return NULL;
}

void ad__fleet_destroy(ad__fleet_t **p)
{
  if (!p || !*p)
    return;
  ad__fleet_t *f = *p;
  ad__metrics_destroy(&f->metrics);
  ad__lease_destroy(&f->lease);
  ad__config_free(FLEET_KEYS, &f->c);
  free(f->hosts_coll);
  json_decref(f->last);
  pthread_mutex_destroy(&f->last_lock);
  free(f);
  *p = NULL;
}

/* ---- platforms ------------------------------------------------------------- */

static int bad(ad_error_t *err, const char *arg, const char *why)
{
  return ad__err(err, AD_EINVAL, "args", "%s: %s", arg, why);
}

static int code_ok(const char *s)
{
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 32 || !isalnum((unsigned char)s[0]))
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
      return 0;
  return 1;
}

static int str_list(const json_t *v, const char *arg, ad_error_t *err)
{
  if (!v)
    return 0;
  if (!json_is_array(v) || json_array_size(v) > 64)
    return bad(err, arg, "must be a list of at most 64 names");
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) > 128)
      return ad__err(err, AD_EINVAL, "args", "%s[%zu]: must be a name of 1..128 characters", arg, i);
  }
  return 0;
}

/* platform.set's arguments, checked; each refusal names its field. */
static int platform_check(const json_t *a, ad_error_t *err)
{
  static const char *const KEYS[] = {"code", "state", "pillar", "profiles", "regions",
                                     "footprint", "reserve", "enabled", "first_server_no",
                                     "port_base", "actor", NULL};
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)a, k, v) {
    int ok = 0;
    for (int i = 0; KEYS[i]; i++)
      ok |= !strcmp(k, KEYS[i]);
    if (!ok)
      return ad__err(err, AD_EINVAL, "args", "%s: unknown platform field (code, state, pillar, "
                     "profiles, regions, footprint, reserve, enabled, first_server_no, port_base)", k);
  }
  if (!code_ok(json_string_value(json_object_get(a, "code"))))
    return bad(err, "code", "required: 1..32 of [A-Za-z0-9_-], starting with a letter or digit");
  const json_t *state = json_object_get(a, "state"), *pillar = json_object_get(a, "pillar");
  if (state && (!json_is_string(state) || json_string_length(state) == 0 || json_string_length(state) > 200))
    return bad(err, "state", "must be a state name (e.g. autodeploy.gameserver)");
  if (pillar && !json_is_object(pillar))
    return bad(err, "pillar", "must be an object (a template: {service}, {server_no}, {platform}, {host}, {private_ip}, {minion} are filled in)");
  if (str_list(json_object_get(a, "profiles"), "profiles", err) ||
      str_list(json_object_get(a, "regions"), "regions", err))
    return AD_EINVAL;
  const json_t *fp = json_object_get(a, "footprint");
  if (fp) {
    json_t *cpu = json_object_get(fp, "cpu"), *mem = json_object_get(fp, "mem_mb");
    if (!json_is_object(fp) || !json_is_number(cpu) || !json_is_number(mem) ||
        json_number_value(cpu) < 0 || json_number_value(mem) < 0 ||
        json_number_value(cpu) + json_number_value(mem) <= 0 || json_number_value(cpu) > 4096 ||
        json_number_value(mem) > 67108864)
      return bad(err, "footprint", "must be {cpu: cores, mem_mb: MiB}, >= 0 and not both 0");
  }
  ad__reserve_policy_t pol;
  ad__reserve_policy_default(&pol);
  if (json_object_get(a, "reserve") &&
      ad__reserve_policy_from_json(&pol, json_object_get(a, "reserve"), "reserve", err))
    return AD_EINVAL;
  json_t *en = json_object_get(a, "enabled");
  if (en && !json_is_boolean(en))
    return bad(err, "enabled", "must be true or false");
  json_t *first = json_object_get(a, "first_server_no");
  if (first && (!json_is_integer(first) || json_integer_value(first) < 0))
    return bad(err, "first_server_no", "must be an integer >= 0");
  json_t *pb = json_object_get(a, "port_base");
  if (pb && (!json_is_integer(pb) || json_integer_value(pb) < 1 || json_integer_value(pb) > 65000))
    return bad(err, "port_base", "must be an integer 1..65000 (a server's port is port_base + server_no)");
  return 0;
}

/* Every field of a platform, from the arguments or their defaults (a new
 * reference; NULL on no memory). */
static json_t *platform_fields(const json_t *a)
{
  const json_t *state = json_object_get(a, "state"), *en = json_object_get(a, "enabled"),
               *pillar = json_object_get(a, "pillar"), *pl = json_object_get(a, "profiles"),
               *rl = json_object_get(a, "regions"), *rv = json_object_get(a, "reserve"),
               *fp = json_object_get(a, "footprint"), *pb = json_object_get(a, "port_base");
  return json_pack("{s:s,s:s,s:b,s:o,s:o,s:o,s:o,s:o,s:I}", "code", ad__jstr(a, "code"),
                   "state", state ? json_string_value(state) : "autodeploy.gameserver",
                   "enabled", en ? json_is_true(en) : 1,
                   "pillar", pillar ? json_deep_copy(pillar) : json_object(),
                   "profiles", pl ? json_deep_copy(pl) : json_array(),
                   "regions", rl ? json_deep_copy(rl) : json_array(),
                   "footprint", fp ? json_deep_copy(fp)
                                   : json_pack("{s:f,s:f}", "cpu", 1.0, "mem_mb", 1024.0),
                   "reserve", rv ? json_deep_copy(rv) : json_object(),
                   "port_base", (json_int_t)(pb ? json_integer_value(pb) : 10000));
}

/* A new platform: one insert (1 inserted, 0 exists already, <0 + err). */
static int platform_insert(ad__fleet_t *f, const json_t *set, const json_t *a, ad_error_t *err)
{
  char now[32];
  ad__iso_ms(ad__now_ms(), now);
  const json_t *first = json_object_get(a, "first_server_no");
  const char *actor = ad__jstr(a, "actor");
  json_t *doc = json_deep_copy(set);
  json_t *more = json_pack("{s:s,s:i,s:s,s:I,s:I,s:[{s:s,s:s,s:s}]}", "_id", ad__jstr(a, "code"),
                           "rev", 0, "created_at", now, "created_at_ms", (json_int_t)ad__now_ms(),
                           "next_server_no", (json_int_t)(first ? json_integer_value(first) : 1),
                           "history", "at", now, "what", "created", "actor",
                           *actor ? actor : "operator");
  if (!doc || !more || json_object_update(doc, more)) {
    json_decref(doc);
    json_decref(more);
    return ad__err(err, AD_ENOMEM, "fleet", "no memory");
  }
  json_decref(more);
  int rc = ad__fdoc_insert(f, f->c.platforms, doc, err);
  json_decref(doc);
  return rc;
}

/* An update changes only the fields given (1 done, 0 lost a race, <0). */
static int platform_update(ad__fleet_t *f, const json_t *cur, const json_t *set,
                           const json_t *a, ad_error_t *err)
{
  json_t *s2 = json_object();
  const char *fk, *actor = ad__jstr(a, "actor");
  json_t *fv;
  if (!s2)
    return ad__err(err, AD_ENOMEM, "fleet", "no memory");
  json_object_foreach((json_t *)set, fk, fv) {
    if (!strcmp(fk, "code") || json_object_get(a, fk))
      json_object_set(s2, fk, fv);
  }
  if (json_object_get(a, "first_server_no"))
    json_object_set(s2, "next_server_no", json_object_get(a, "first_server_no"));
  int rc = ad__fdoc_cas(f, f->c.platforms, cur, s2, "updated", "platform.set",
                        *actor ? actor : "operator", err);
  json_decref(s2);
  return rc;
}

json_t *ad__platform_set(ad__fleet_t *f, const json_t *a, ad_error_t *err)
{
  if (platform_check(a, err))
    return NULL;
  const char *code = ad__jstr(a, "code");
  json_t *set = platform_fields(a);
  if (!set)
    return ad__err(err, AD_ENOMEM, "fleet", "no memory"), NULL;
  int rc = 0;
  for (int attempt = 0; attempt < 5 && rc == 0; attempt++) {
    json_t *cur = ad__fdoc_get(f, f->c.platforms, code, NULL);
    rc = cur ? platform_update(f, cur, set, a, err) : platform_insert(f, set, a, err);
    json_decref(cur);
  }
  json_decref(set);
  if (rc == 1) {
    json_t *p = ad__fdoc_get(f, f->c.platforms, code, err);
    return p ? json_pack("{s:o}", "platform", p) : NULL;
  }
  if (rc == 0 && (!err || !err->message[0]))
    ad__err(err, AD_ESTATE, "fleet", "platform %s changed meanwhile; try again", code);
  return NULL;
}

json_t *ad__platform_list(ad__fleet_t *f, const json_t *a, ad_error_t *err)
{
  json_t *q = json_object();
  const char *code = json_string_value(json_object_get(a, "code"));
  if (code)
    json_object_set_new(q, "_id", json_string(code));
  json_t *rows = ad__fdoc_find(f, f->c.platforms, q, json_pack("{s:{s:i}}", "sort", "_id", 1), err);
  return rows ? json_pack("{s:o}", "platforms", rows) : NULL;
}

/* ---- services ---------------------------------------------------------------- */

static const char *const SERVICE_STATES[] = {"pending", "deploying", "deployed", "opened", "retired",
                                             "waiting_resources", "failed", NULL};

json_t *ad__service_list(ad__fleet_t *f, const json_t *a, ad_error_t *err)
{
  json_t *q = json_object();
  const char *platform = json_string_value(json_object_get(a, "platform"));
  const char *state = json_string_value(json_object_get(a, "state"));
  if (platform)
    json_object_set_new(q, "platform", json_string(platform));
  if (state) {
    int ok = 0;
    for (int i = 0; SERVICE_STATES[i]; i++)
      ok |= !strcmp(state, SERVICE_STATES[i]);
    if (!ok) {
      json_decref(q);
      return ad__err(err, AD_EINVAL, "args", "state: %.40s is not one of pending, deploying, "
                     "deployed, opened, retired, waiting_resources, failed", state), NULL;
    }
    json_object_set_new(q, "state", json_string(state));
  }
  json_int_t limit = json_object_get(a, "limit") ? json_integer_value(json_object_get(a, "limit")) : 1000;
  if (limit < 1 || limit > 100000) {
    json_decref(q);
    return ad__err(err, AD_EINVAL, "args", "limit: must be 1..100000"), NULL;
  }
  json_t *rows = ad__fdoc_find(f, f->c.services, q,
                               json_pack("{s:{s:i,s:i},s:I,s:{s:i,s:i}}", "sort", "platform", 1,
                                         "server_no", 1, "limit", limit, "projection", "history",
                                         0, "decision", 0), err);
  return rows ? json_pack("{s:o,s:I}", "services", rows, "count", (json_int_t)json_array_size(rows)) : NULL;
}

json_t *ad__service_get(ad__fleet_t *f, const json_t *a, ad_error_t *err)
{
  const char *id = json_string_value(json_object_get(a, "id"));
  if (!id || !*id)
    return ad__err(err, AD_EINVAL, "args", "id: required (a service id, e.g. qq-s1001)"), NULL;
  json_t *s = ad__fdoc_get(f, f->c.services, id, err);
  return s ? json_pack("{s:o}", "service", s) : NULL;
}

json_t *ad__service_retire(ad__fleet_t *f, const json_t *a, ad_error_t *err)
{
  json_t *s = ad__service_get(f, a, err);
  if (!s)
    return NULL;
  json_t *doc = json_object_get(s, "service");
  const char *st = ad__jstr(doc, "state");
  if (!strcmp(st, "retired") || !strcmp(st, "deploying")) {
    ad__err(err, AD_ESTATE, "fleet", "service %s is %s: cannot retire it now%s", ad__jstr(doc, "_id"), st,
            !strcmp(st, "deploying") ? " (cancel its task first)" : "");
    json_decref(s);
    return NULL;
  }
  json_t *set = json_pack("{s:s,s:s}", "state", "retired", "reason", ad__jstr(a, "reason"));
  int rc = ad__fdoc_cas(f, f->c.services, doc, set, "retired", ad__jstr(a, "reason"), ad__jstr(a, "actor"), err);
  json_decref(set);
  char id[128];
  snprintf(id, sizeof id, "%s", ad__jstr(doc, "_id"));
  json_decref(s);
  if (rc != 1) {
    if (rc == 0)
      ad__err(err, AD_ESTATE, "fleet", "service %s changed meanwhile; try again", id);
    return NULL;
  }
  json_t *q = json_pack("{s:s}", "id", id);
  json_t *out = ad__service_get(f, q, err);
  json_decref(q);
  return out;
}

/* salt-run autodeploy.opened: fire the signed opening event (the engine
 * acts on it, as on one from the salt-api webhook through the reactor). */
json_t *ad__service_opened(ad__fleet_t *f, const json_t *a, ad_error_t *err)
{
  const char *id = json_string_value(json_object_get(a, "id"));
  if (!id || !*id || strlen(id) > 100 || strchr(id, '/'))
    return ad__err(err, AD_EINVAL, "args", "id: required (a service id, e.g. qq-s1001)"), NULL;
  json_t *doc = ad__fdoc_get(f, f->c.services, id, err);
  if (!doc)
    return NULL;
  json_decref(doc);
  json_t *at = json_object_get(a, "at");
  int64_t at_ms = ad__now_ms();
  if (at && json_is_integer(at))
    at_ms = json_integer_value(at) * 1000;
  else if (at && (!json_is_string(at) || ad__time_parse(json_string_value(at), &at_ms)))
    return ad__err(err, AD_EINVAL, "args", "at: must be unix seconds or ISO-8601 (2026-11-27T10:00:00Z)"), NULL;
  json_t *body = json_pack("{s:s,s:I,s:s}", "service", id, "at_ms", (json_int_t)at_ms, "actor",
                           ad__jstr(a, "actor")[0] ? ad__jstr(a, "actor") : "operator");
  char tag[200];
  snprintf(tag, sizeof tag, "autodeploy/service/%s/opened", id);
  int rc = ad__fire_signed(f->env.bus, f->env.key_path, tag, body, err);
  json_decref(body);
  return rc ? NULL : json_pack("{s:b,s:s}", "fired", 1, "tag", tag);
}

/* The one place an opening is applied (the signed event, the Kafka feed):
 * deployed -> opened, compare-and-set on the document's rev so two
 * deliveries of one opening apply once. Already opened: nothing changes
 * (AD__OPENING_ALREADY). Neither deployed nor opened: logged and noted on
 * the document (AD__OPENING_REFUSED). <0 + err: unknown service
 * (AD_ENOTFOUND) or the store failed (retry later). */
int ad__fleet_apply_opening(ad__fleet_t *f, const char *id, int64_t at_ms, const char *actor,
                            ad_error_t *err)
{
  for (int attempt = 0; attempt < 5; attempt++) {
    ad_error_t e = {0};
    json_t *doc = ad__fdoc_get(f, f->c.services, id, &e);
    if (!doc) {
      if (err)
        *err = e;
      return e.code ? e.code : AD_EIO;
    }
    const char *st = ad__jstr(doc, "state");
    if (!strcmp(st, "opened")) {
      json_decref(doc);
      return AD__OPENING_ALREADY;
    }
    if (strcmp(st, "deployed")) {
      AD_LOG_W("fleet", "opening of %s ignored: it is %s, not deployed", id, st);
      ad__fdoc_cas(f, f->c.services, doc, NULL, "opening refused", "not deployed", actor, NULL);
      json_decref(doc);
      return AD__OPENING_REFUSED;
    }
    char iso[32];
    ad__iso_ms(at_ms, iso);
    json_t *set = json_pack("{s:s,s:s,s:I}", "state", "opened", "opened_at", iso, "opened_at_ms",
                            (json_int_t)at_ms);
    int rc = ad__fdoc_cas(f, f->c.services, doc, set, "opened", "opening event", actor, err);
    json_decref(set);
    json_decref(doc);
    if (rc == 1)
      return AD__OPENING_APPLIED;
    if (rc < 0)
      return rc;
  }
  return ad__err(err, AD_ESTATE, "fleet", "service %s changed under five attempts to open it", id);
}

/* A second opening event for an opened service: logged and noted, as the
 * signed path always did (docs/placement.md). */
static void note_refusal(ad__fleet_t *f, const char *id, const char *actor)
{
  json_t *doc = ad__fdoc_get(f, f->c.services, id, NULL);
  if (!doc)
    return;
  AD_LOG_W("fleet", "opening of %s ignored: it is %s, not deployed", id, ad__jstr(doc, "state"));
  ad__fdoc_cas(f, f->c.services, doc, NULL, "opening refused", "not deployed", actor, NULL);
  json_decref(doc);
}

int ad__fleet_on_opened(ad__fleet_t *f, ad_event_t *ev)
{
  const char *body;
  size_t blen;
  ad_error_t err;
  const char *tag = ad_event_tag(ev);
  if (ad__verify_signed(ev, f->env.key_path, &body, &blen, &err)) {
    AD_LOG_W("fleet", "%s refused: %s (minions: salt-call publish.runner autodeploy.opened <id>, "
             "allowed by peer_run; systems: salt-run or the salt-api webhook)", tag, err.message);
    return 1;
  }
  json_t *req = json_loadb(body, blen, 0, NULL);
  const char *id = ad__jstr(req, "service");
  char want[200];
  snprintf(want, sizeof want, "autodeploy/service/%s/opened", id);
  if (!*id || strcmp(want, tag)) {
    AD_LOG_W("fleet", "%s refused: the body names service %.64s", tag, id);
    json_decref(req);
    return 1;
  }
  ad_error_t aerr;
  int rc = ad__fleet_apply_opening(f, id, json_integer_value(json_object_get(req, "at_ms")),
                                   ad__jstr(req, "actor"), &aerr);
  if (rc == AD__OPENING_ALREADY) /* a second event for it: noted, as any refusal */
    note_refusal(f, id, ad__jstr(req, "actor"));
  else if (rc < 0)
    AD_LOG_W("fleet", "opening of %s: %s", id, aerr.message);
  json_decref(req);
  return 0;
}

void ad__fleet_task_end(void *user, const json_t *task)
{
  ad__fleet_t *f = user;
  const json_t *owner = json_object_get(task, "owner");
  if (strcmp(ad__jstr(owner, "kind"), "service_deploy"))
    return;
  const char *id = ad__jstr(owner, "service"), *tid = ad__jstr(task, "_id"), *st = ad__jstr(task, "state");
  for (int attempt = 0; attempt < 5; attempt++) {
    json_t *doc = ad__fdoc_get(f, f->c.services, id, NULL);
    if (!doc || (*ad__jstr(doc, "task") && strcmp(ad__jstr(doc, "task"), tid)) ||
        (strcmp(ad__jstr(doc, "state"), "deploying") && strcmp(ad__jstr(doc, "state"), "failed"))) {
      json_decref(doc);
      return;
    }
    char cause[400], now[32];
    ad__iso_ms(ad__now_ms(), now);
    json_t *set;
    int ok = !strcmp(st, "succeeded");
    if (ok) {
      snprintf(cause, sizeof cause, "deploy task %s succeeded", tid);
      set = json_pack("{s:s,s:s,s:s,s:s}", "state", "deployed", "deployed_at", now, "reason", cause,
                      "task", tid);
    } else {
      json_t *hist = json_object_get(task, "history");
      const char *last = ad__jstr(json_array_get(hist, json_array_size(hist) - 1), "cause");
      snprintf(cause, sizeof cause, "deploy task %s %s after %lld attempt(s): %s", tid, st,
               (long long)json_integer_value(json_object_get(task, "attempt")), last);
      set = json_pack("{s:s,s:s,s:s}", "state", "failed", "reason", cause, "task", tid);
    }
    int rc = ad__fdoc_cas(f, f->c.services, doc, set, ok ? "deployed" : "deploy failed", cause,
                          "autodeploy/fleet", NULL);
    json_decref(set);
    if (rc == 1 && !ok) {
      char subject[200];
      snprintf(subject, sizeof subject, "service %s on %s", id, ad__jstr(doc, "host"));
      ad__fleet_alert(f, subject, "deploy failed", cause);
    }
    json_decref(doc);
    if (rc != 0)
      return;
  }
}

/* salt/beacon/<minion>/<beacon>/ -> one sample in the salt load history */
int ad__fleet_on_beacon(ad__fleet_t *f, ad_event_t *ev)
{
  ad__store_t *st;
  const char *coll;
  int64_t expire;
  const char *tag = ad_event_tag(ev) + strlen("salt/beacon/");
  const char *slash = strchr(tag, '/');
  if (!slash || slash - tag > 128)
    return 1;
  char minion[130], beacon[32];
  snprintf(minion, sizeof minion, "%.*s", (int)(slash - tag), tag);
  snprintf(beacon, sizeof beacon, "%.*s", (int)strcspn(slash + 1, "/"), slash + 1);
  int usage = !strcmp(beacon, "autodeploy_services"); /* per service, whatever the source */
  if (!usage && ad__metrics_salt_target(f->metrics, &st, &coll, &expire))
    return 0; /* another backend: host beacons are not ours to store */
  if (!usage && strcmp(beacon, "load") && strcmp(beacon, "memusage") && strcmp(beacon, "diskusage"))
    return 0;
  ad_error_t err;
  const ad_value_t *v = ad_event_data(ev, &err);
  json_t *data = v ? ad__value_to_json(v, &err) : NULL;
  if (usage) {
    int r = data ? ad__fleet_on_usage(f, minion, data, ad_event_tag(ev)) : 1;
    if (!data)
      AD_LOG_W("fleet", "%s: %s", ad_event_tag(ev), err.message);
    json_decref(data);
    return r;
  }
  ad__beacon_sample_t s;
  int rc = data ? ad__metrics_beacon_from_json(minion, beacon, data, &s, &err) : AD_EDECODE;
  if (rc == 0)
    rc = ad__metrics_salt_ingest(st, coll, minion, &s, 0, &err);
  if (rc)
    AD_LOG_W("fleet", "%s: %s", ad_event_tag(ev), err.message);
  json_decref(data);
  return rc ? 1 : 0;
}
