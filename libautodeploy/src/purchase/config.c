/* config.c - the `purchase` object: see config.h and docs/purchase.md.
 * Nested objects (profiles, approval, caps) are checked here key by key;
 * the backend's, the DingTalk approval's and the partner mail's own keys
 * are checked by their modules when they are built (backend.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_private.h"
#include "decide/purchase.h"
#include "purchase/config.h"

#define D "config"

static int bad(ad_error_t *err, const char *key, const char *why)
{
  return ad__err(err, AD_ECONFIG, D, "purchase.%s: %s", key, why);
}

/* Unknown keys are errors (a typo must not silently mean a default). */
static int only(const json_t *o, const char *where, const char *const *keys, ad_error_t *err)
{
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)o, k, v) {
    int ok = 0;
    for (size_t i = 0; keys[i]; i++)
      ok |= !strcmp(keys[i], k);
    if (!ok) {
      char key[200];
      snprintf(key, sizeof key, "%s%s%s", where, *where ? "." : "", k);
      return bad(err, key, "unknown key");
    }
  }
  return 0;
}

/* An optional cap: absent or null = none; else an integer >= 0. */
static int cap(const json_t *o, const char *k, const char *where, long *out, ad_error_t *err)
{
  json_t *v = json_object_get(o, k);
  char key[200];
  snprintf(key, sizeof key, "%s%s", where, k);
  *out = -1;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return bad(err, key, "must be an integer >= 0 (hosts), or null for no cap");
  *out = (long)json_integer_value(v);
  return 0;
}

static int positive(const json_t *o, const char *k, const char *where, double *out,
                    ad_error_t *err)
{
  json_t *v = json_object_get(o, k);
  char key[200];
  snprintf(key, sizeof key, "%s%s", where, k);
  if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
    return bad(err, key, v ? "must be a number > 0" : "required (a number > 0)");
  *out = json_number_value(v);
  return 0;
}

static char *dup_str(const json_t *v) { return json_string_value(v) ? strdup(json_string_value(v)) : NULL; }

static int capacity_of(const json_t *o, const char *where, ad__dims_t *d, ad_error_t *err)
{
  return positive(o, "cpu", where, &d->cpu, err) || positive(o, "mem_mb", where, &d->mem, err) ||
                 positive(o, "disk_gb", where, &d->disk, err)
             ? AD_ECONFIG
             : 0;
}

static int load_profile(const char *name, const json_t *p, const json_t *flavours,
                        ad__pprofile_t *out, ad_error_t *err)
{
  static const char *const KEYS[] = {"flavour", "cpu", "mem_mb", "disk_gb", "region",
                                     "cap_day", "cap_month", NULL};
  char where[160];
  snprintf(where, sizeof where, "profiles.%s", name);
  if (!json_is_object(p))
    return bad(err, where, "must be an object {flavour, cpu, mem_mb, disk_gb, region, cap_day, cap_month}");
  int rc = only(p, where, KEYS, err);
  if (rc)
    return rc;
  strncat(where, ".", sizeof where - strlen(where) - 1);
  out->name = strdup(name);
  out->flavour = dup_str(json_object_get(p, "flavour"));
  out->region = dup_str(json_object_get(p, "region"));
  if (!out->name)
    return ad__err(err, AD_ENOMEM, D, "no memory");
  if (!out->flavour || !*out->flavour)
    return ad__err(err, AD_ECONFIG, D, "purchase.%sflavour: required (the instance type ordered)", where);
  if (json_object_get(p, "region") && !json_is_string(json_object_get(p, "region")))
    return ad__err(err, AD_ECONFIG, D, "purchase.%sregion: must be a string", where);
  /* the capacity: the profile's own, else the flavours table's */
  const json_t *fl = json_object_get(flavours, out->flavour);
  if (json_object_get(p, "cpu") || json_object_get(p, "mem_mb") || json_object_get(p, "disk_gb"))
    rc = capacity_of(p, where, &out->capacity, err);
  else if (fl) {
    char fw[160];
    snprintf(fw, sizeof fw, "flavours.%s.", out->flavour);
    rc = capacity_of(fl, fw, &out->capacity, err);
  } else
    rc = ad__err(err, AD_ECONFIG, D,
                 "purchase.%sflavour: unknown flavour %s (no purchase.flavours.%s, and the "
                 "profile gives no cpu, mem_mb, disk_gb)", where, out->flavour, out->flavour);
  return rc ? rc
            : cap(p, "cap_day", where, &out->cap_day, err) ||
                      cap(p, "cap_month", where, &out->cap_month, err)
                  ? AD_ECONFIG
                  : 0;
}

static int load_profiles(const json_t *conf, ad__purchase_conf_t *c, ad_error_t *err)
{
  const json_t *profiles = json_object_get(conf, "profiles"),
               *pref = json_object_get(conf, "preference"),
               *flavours = json_object_get(conf, "flavours");
  if (flavours && !json_is_object(flavours))
    return bad(err, "flavours", "must be an object {name: {cpu, mem_mb, disk_gb}}");
  if (!json_is_object(profiles) || json_object_size(profiles) == 0)
    return bad(err, "profiles", "required: an object {name: {flavour, cpu, mem_mb, disk_gb, "
                                "region, cap_day, cap_month}}");
  if (pref && (!json_is_array(pref) || json_array_size(pref) == 0))
    return bad(err, "preference", "must be a list of profile names");
  size_t n = json_object_size(profiles);
  c->profiles = calloc(n, sizeof *c->profiles);
  if (!c->profiles)
    return ad__err(err, AD_ENOMEM, D, "no memory");
  /* preference order: the list, then (sorted by name) the profiles it omits */
  const char **names = calloc(n, sizeof *names);
  if (!names)
    return ad__err(err, AD_ENOMEM, D, "no memory");
  size_t k = 0, i;
  json_t *v;
  json_array_foreach(pref, i, v) {
    char key[64];
    snprintf(key, sizeof key, "preference[%zu]", i);
    const char *s = json_string_value(v);
    int rc = 0;
    if (!s)
      rc = bad(err, key, "must be a profile name");
    else if (!json_object_get(profiles, s))
      rc = ad__err(err, AD_ECONFIG, D, "purchase.%s: unknown profile %s (not in purchase.profiles)", key, s);
    for (size_t j = 0; !rc && j < k; j++)
      if (!strcmp(names[j], s))
        rc = ad__err(err, AD_ECONFIG, D, "purchase.%s: profile %s listed twice", key, s);
    if (rc) {
      free(names);
      return rc;
    }
    names[k++] = s;
  }
  const char *name;
  size_t first_rest = k;
  json_object_foreach((json_t *)profiles, name, v) {
    int seen = 0;
    for (size_t j = 0; j < first_rest; j++)
      seen |= !strcmp(names[j], name);
    if (!seen)
      names[k++] = name;
  }
  for (size_t a = first_rest; a < k; a++) /* json objects have no order: sort */
    for (size_t b = a + 1; b < k; b++)
      if (strcmp(names[b], names[a]) < 0) {
        const char *t = names[a];
        names[a] = names[b];
        names[b] = t;
      }
  int rc = 0;
  for (i = 0; !rc && i < k; i++) {
    rc = load_profile(names[i], json_object_get(profiles, names[i]), flavours, &c->profiles[i], err);
    c->n_profiles = i + 1;
  }
  free(names);
  return rc;
}

static int load_time(const json_t *conf, ad__purchase_conf_t *c, const char *zoneinfo,
                     ad_error_t *err)
{
  const json_t *t = json_object_get(conf, "time"), *z = json_object_get(conf, "timezone");
  const char *ts = t ? json_string_value(t) : "04:00";
  int hh, mm, used = 0;
  c->manual = ts && strcmp(ts, "manual") == 0; /* no daily run: by hand or by a schedule */
  if (c->manual)
    ts = "00:00";
  if (!ts || sscanf(ts, "%2d:%2d%n", &hh, &mm, &used) != 2 || used != 5 || hh < 0 || hh > 23 ||
      mm < 0 || mm > 59)
    return bad(err, "time", "must be \"HH:MM\" (00:00 to 23:59, local to purchase.timezone) or \"manual\"");
  c->hh = hh;
  c->mm = mm;
  const char *zs = z ? json_string_value(z) : "UTC";
  if (!zs)
    return bad(err, "timezone", "must be an IANA zone name (e.g. Asia/Shanghai)");
  c->timezone = strdup(zs);
  ad_error_t e2;
  c->tz = ad__tz_load(zs, zoneinfo, &e2);
  if (!c->tz)
    return ad__err(err, AD_ECONFIG, D, "purchase.timezone: %s", e2.message);
  return 0;
}

static int load_approval(const json_t *conf, ad__purchase_conf_t *c, ad_error_t *err)
{
  static const char *const KEYS[] = {"required", "timeout_h", "dingtalk", NULL};
  const json_t *a = json_object_get(conf, "approval");
  c->approval_required = 1;
  c->approval_timeout_h = 24;
  if (!a)
    return 0;
  if (!json_is_object(a))
    return bad(err, "approval", "must be an object {required, timeout_h, dingtalk}");
  int rc = only(a, "approval", KEYS, err);
  if (rc)
    return rc;
  const json_t *r = json_object_get(a, "required"), *dt = json_object_get(a, "dingtalk");
  if (r && !json_is_boolean(r))
    return bad(err, "approval.required", "must be true or false");
  c->approval_required = !r || json_is_true(r);
  if (json_object_get(a, "timeout_h") &&
      (positive(a, "timeout_h", "approval.", &c->approval_timeout_h, err) ||
       c->approval_timeout_h > 24 * 30))
    return bad(err, "approval.timeout_h", "must be a number of hours > 0 and <= 720");
  if (dt && !json_is_null(dt)) {
    if (!json_is_object(dt))
      return bad(err, "approval.dingtalk", "must be an object {app_key, app_secret, process_code, ...}");
    const char *pc = json_string_value(json_object_get(dt, "process_code"));
    if (!pc || !*pc)
      return bad(err, "approval.dingtalk.process_code",
                 "required when DingTalk approval is configured (the OA form's processCode)");
    c->dingtalk = json_deep_copy(dt);
  }
  return 0;
}

static int load_misc(const json_t *conf, ad__purchase_conf_t *c, ad_error_t *err)
{
  static const struct {
    const char *k;
    size_t off;
    long min, max, def;
  } INTS[] = {
      {"unfulfilled_alert_days", offsetof(ad__purchase_conf_t, unfulfilled_alert_days), 1, 365, 14},
      {"retry_base_s", offsetof(ad__purchase_conf_t, retry_base_s), 1, 86400, 60},
      {"retry_max_s", offsetof(ad__purchase_conf_t, retry_max_s), 1, 86400, 3600},
      {"drive_interval_s", offsetof(ad__purchase_conf_t, drive_interval_s), 1, 3600, 60},
  };
  for (size_t i = 0; i < sizeof INTS / sizeof INTS[0]; i++) {
    const json_t *v = json_object_get(conf, INTS[i].k);
    int *f = (int *)((char *)c + INTS[i].off);
    *f = (int)INTS[i].def;
    if (!v)
      continue;
    if (!json_is_integer(v) || json_integer_value(v) < INTS[i].min ||
        json_integer_value(v) > INTS[i].max)
      return ad__err(err, AD_ECONFIG, D, "purchase.%s: must be an integer from %ld to %ld",
                     INTS[i].k, INTS[i].min, INTS[i].max);
    *f = (int)json_integer_value(v);
  }
  const json_t *en = json_object_get(conf, "enabled"), *coll = json_object_get(conf, "collection");
  if (en && !json_is_boolean(en))
    return bad(err, "enabled", "must be true or false");
  c->enabled = !en || json_is_true(en);
  if (coll && (!json_is_string(coll) || !*json_string_value(coll)))
    return bad(err, "collection", "must be a collection name");
  c->collection = strdup(coll ? json_string_value(coll) : "orders");
  const json_t *caps = json_object_get(conf, "caps");
  static const char *const CAPS[] = {"day", "month", NULL};
  if (caps && !json_is_object(caps))
    return bad(err, "caps", "must be an object {day, month}");
  if (caps && (only(caps, "caps", CAPS, err) || cap(caps, "day", "caps.", &c->cap_day, err) ||
               cap(caps, "month", "caps.", &c->cap_month, err)))
    return AD_ECONFIG;
  const json_t *b = json_object_get(conf, "backend"), *pm = json_object_get(conf, "partner_mail");
  if (b && (!json_is_object(b) || (json_object_get(b, "type") &&
                                   !json_is_string(json_object_get(b, "type")))))
    return bad(err, "backend", "must be an object {type: none|http|runner, ...}");
  c->backend = b ? json_deep_copy(b) : json_object();
  if (c->backend && !json_object_get(c->backend, "type"))
    json_object_set_new(c->backend, "type", json_string("none"));
  if (pm && !json_is_null(pm) && !json_is_object(pm))
    return bad(err, "partner_mail", "must be an object {url, from, to, ...}");
  c->partner_mail = pm && !json_is_null(pm) ? json_deep_copy(pm) : NULL;
  return c->backend && c->collection ? 0 : ad__err(err, AD_ENOMEM, D, "no memory");
}

int ad__purchase_conf_load(const json_t *conf, const char *zoneinfo, ad__purchase_conf_t *c,
                           ad_error_t *err)
{
  static const char *const KEYS[] = {
      "enabled", "time", "timezone", "profiles", "flavours", "preference", "caps", "approval",
      "backend", "partner_mail", "unfulfilled_alert_days", "collection", "retry_base_s",
      "retry_max_s", "drive_interval_s", NULL};
  memset(c, 0, sizeof *c);
  c->cap_day = c->cap_month = AD__CAP_NONE;
  int rc;
  if (!json_is_object(conf))
    rc = ad__err(err, AD_ECONFIG, D, "purchase: must be an object (docs/purchase.md)");
  else
    rc = only(conf, "", KEYS, err);
  if (!rc)
    rc = load_misc(conf, c, err);
  if (!rc)
    rc = load_time(conf, c, zoneinfo, err);
  if (!rc)
    rc = load_approval(conf, c, err);
  if (!rc)
    rc = load_profiles(conf, c, err);
  if (rc)
    ad__purchase_conf_free(c);
  return rc;
}

void ad__purchase_conf_free(ad__purchase_conf_t *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < c->n_profiles; i++) {
    free(c->profiles[i].name);
    free(c->profiles[i].flavour);
    free(c->profiles[i].region);
  }
  free(c->profiles);
  free(c->timezone);
  free(c->collection);
  ad__tz_destroy(&c->tz);
  json_decref(c->dingtalk);
  json_decref(c->backend);
  json_decref(c->partner_mail);
  memset(c, 0, sizeof *c);
}

const ad__pprofile_t *ad__purchase_profile(const ad__purchase_conf_t *c, const char *name)
{
  for (size_t i = 0; name && i < c->n_profiles; i++)
    if (!strcmp(c->profiles[i].name, name))
      return &c->profiles[i];
  return NULL;
}
