/* simulate_input.c - reading the simulator's input: times, CSV openings,
 * and every field checked with its path ("hosts[3].cpu: ..."). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "decide/simulate_private.h"

#define D "simulate"

/* ---- times --------------------------------------------------------------- */

static int time_value(const json_t *v, int64_t *ms)
{
  if (json_is_string(v))
    return ad__time_parse(json_string_value(v), ms);
  if (json_is_number(v)) {
    double x = json_number_value(v);
    if (!isfinite(x) || fabs(x) > 1e11)
      return -1;
    *ms = (int64_t)llround(x * 1000);
    return 0;
  }
  return -1;
}

/* ---- CSV ------------------------------------------------------------------ */

int ad__simulate_csv_openings(const char *text, const char *what, json_t *openings,
                              ad_error_t *err)
{
  if (!what)
    what = "csv";
  const char *p = text ? text : "";
  int line = 0, seen = 0;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    line++;
    char buf[512];
    if (len >= sizeof buf)
      return ad__err(err, AD_ECONFIG, D, "%s line %d: longer than %zu bytes", what, line,
                     sizeof buf - 1);
    memcpy(buf, p, len);
    buf[len] = '\0';
    p = eol ? eol + 1 : p + len;
    char *b = buf, *e = buf + len;
    while (e > b && isspace((unsigned char)e[-1]))
      *--e = '\0';
    while (isspace((unsigned char)*b))
      b++;
    if (!*b || *b == '#')
      continue;
    char *comma = strchr(b, ',');
    if (!comma)
      return ad__err(err, AD_ECONFIG, D, "%s line %d: want 'platform,timestamp', got '%.60s'",
                     what, line, b);
    *comma = '\0';
    char *plat = b, *ts = comma + 1;
    for (char *q = comma; q > plat && isspace((unsigned char)q[-1]);)
      *--q = '\0';
    int64_t ms;
    if (ad__time_parse(ts, &ms) != 0) {
      if (!seen) { /* a header line */
        seen = 1;
        continue;
      }
      return ad__err(err, AD_ECONFIG, D,
                     "%s line %d: cannot parse '%.40s' as ISO-8601 or epoch seconds", what, line,
                     ts);
    }
    seen = 1;
    if (!*plat)
      return ad__err(err, AD_ECONFIG, D, "%s line %d: empty platform", what, line);
    while (isspace((unsigned char)*ts))
      ts++;
    json_t *o = json_pack("{s:s, s:s}", "platform", plat, "at", ts);
    if (!o || json_array_append_new(openings, o) != 0)
      return ad__err(err, AD_ENOMEM, D, "%s line %d: out of memory", what, line);
  }
  return 0;
}

/* ---- fields --------------------------------------------------------------- */

/* Every key of `o` must be in `allowed` (NULL-terminated). */
static int only_keys(const json_t *o, const char *const *allowed, const char *path,
                     ad_error_t *err)
{
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)o, k, v) {
    int ok = 0;
    for (size_t i = 0; allowed[i] && !ok; i++)
      ok = strcmp(k, allowed[i]) == 0;
    if (!ok) {
      char list[200] = "";
      for (size_t i = 0; allowed[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 allowed[i]);
      return ad__err(err, AD_ECONFIG, D, "%s.%s: unknown key (known: %s)", path, k, list);
    }
  }
  return 0;
}

/* A number in [lo, hi] (or default when absent/null). */
static int num(const json_t *o, const char *key, double def, double lo, double hi, double *out,
               const char *path, ad_error_t *err)
{
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    if (isnan(def))
      return ad__err(err, AD_ECONFIG, D, "%s.%s: missing", path, key);
    *out = def;
    return 0;
  }
  if (!json_is_number(v))
    return ad__err(err, AD_ECONFIG, D, "%s.%s: must be a number", path, key);
  double x = json_number_value(v);
  if (!(x >= lo && x <= hi))
    return ad__err(err, AD_ECONFIG, D, "%s.%s %g: must be %g..%g", path, key, x, lo, hi);
  *out = x;
  return 0;
}

static int str(const json_t *o, const char *key, int required, const char **out,
               const char *path, ad_error_t *err)
{
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    if (required)
      return ad__err(err, AD_ECONFIG, D, "%s.%s: missing", path, key);
    *out = NULL;
    return 0;
  }
  if (!json_is_string(v) || !*json_string_value(v))
    return ad__err(err, AD_ECONFIG, D, "%s.%s: must be a non-empty string", path, key);
  *out = json_string_value(v);
  return 0;
}

static int str_list(const json_t *o, const char *key, const char ***out, size_t *n,
                    const char *path, ad_error_t *err)
{
  json_t *a = json_object_get(o, key);
  *out = NULL;
  *n = 0;
  if (!a || json_is_null(a))
    return 0;
  if (!json_is_array(a))
    return ad__err(err, AD_ECONFIG, D, "%s.%s: must be an array of strings", path, key);
  *out = calloc(json_array_size(a) + 1, sizeof **out);
  if (!*out)
    return ad__err(err, AD_ENOMEM, D, "%s.%s: out of memory", path, key);
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) {
    if (!json_is_string(v))
      return ad__err(err, AD_ECONFIG, D, "%s.%s[%zu]: must be a string", path, key, i);
    (*out)[(*n)++] = json_string_value(v);
  }
  return 0;
}

static int array(const json_t *in, const char *key, int required, json_t **out, ad_error_t *err)
{
  *out = json_object_get(in, key);
  if (!*out || json_is_null(*out)) {
    *out = NULL;
    return required ? ad__err(err, AD_ECONFIG, D, "%s: missing (an array)", key) : 0;
  }
  if (!json_is_array(*out))
    return ad__err(err, AD_ECONFIG, D, "%s: must be an array", key);
  return 0;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

#define TRY(x)                                                                                 \
  do {                                                                                         \
    int rc_ = (x);                                                                             \
    if (rc_)                                                                                   \
      return rc_;                                                                              \
  } while (0)

static int load_options(ad__sim_t *s, const json_t *in, int64_t first, int64_t last,
                        ad_error_t *err)
{
  static const char *const K[] = {"cycle_minutes", "deploy_minutes", "sample_minutes",
                                  "start", "end", "headroom", "host_lead_hours", "buy", NULL};
  json_t *o = json_object_get(in, "options");
  json_t *empty = json_object();
  if (!o || json_is_null(o))
    o = empty;
  int rc = 0;
  double cyc, dep, smp, lead;
  if (!json_is_object(o))
    rc = ad__err(err, AD_ECONFIG, D, "options: must be an object");
  if (!rc)
    rc = only_keys(o, K, "options", err);
  if (!rc)
    rc = num(o, "cycle_minutes", 10, 1, 1440, &cyc, "options", err);
  if (!rc)
    rc = num(o, "deploy_minutes", 30, 0, 10080, &dep, "options", err);
  if (!rc)
    rc = num(o, "sample_minutes", 60, 1, 10080, &smp, "options", err);
  if (!rc)
    rc = num(o, "headroom", 0.8, 0.01, 1, &s->headroom, "options", err);
  if (!rc)
    rc = num(o, "host_lead_hours", 72, 0, 24 * 365, &lead, "options", err);
  if (!rc) {
    s->cycle_ms = (int64_t)(cyc * 60000);
    s->deploy_ms = (int64_t)(dep * 60000);
    s->sample_ms = (int64_t)(smp * 60000);
    s->lead_ms = (int64_t)(lead * 3600e3);
    s->start = first - 86400000;
    s->end = last + s->deploy_ms + s->cycle_ms;
    const char *tk[] = {"start", "end"};
    int64_t *tv[] = {&s->start, &s->end};
    for (int i = 0; i < 2 && !rc; i++) {
      json_t *v = json_object_get(o, tk[i]);
      if (v && !json_is_null(v) && time_value(v, tv[i]) != 0)
        rc = ad__err(err, AD_ECONFIG, D,
                     "options.%s: cannot parse as ISO-8601 text or epoch seconds", tk[i]);
    }
    if (!rc && s->end <= s->start)
      rc = ad__err(err, AD_ECONFIG, D, "options: end is not after start");
    if (!rc && (s->end - s->start) / s->cycle_ms > 10000000)
      rc = ad__err(err, AD_ECONFIG, D, "options: more than 10 million cycles from start to end");
  }
  json_t *b = rc ? NULL : json_object_get(o, "buy");
  if (b && json_is_true(b)) {
    s->buy = 1;
    for (size_t i = 0; i < s->n_input_hosts; i++) { /* the largest host */
      ad__host_t *h = &s->hosts[i];
      if (h->capacity.cpu > s->buy_cap.cpu ||
          (h->capacity.cpu == s->buy_cap.cpu && h->capacity.mem > s->buy_cap.mem)) {
        s->buy_cap = h->capacity;
        s->buy_profile = h->profile;
        s->buy_region = h->region;
      }
    }
    if (s->buy_cap.cpu <= 0)
      rc = ad__err(err, AD_ECONFIG, D, "options.buy: true needs at least one host to copy");
  } else if (b && json_is_object(b)) {
    static const char *const BK[] = {"cpu", "mem", "profile", "region", NULL};
    s->buy = 1;
    rc = only_keys(b, BK, "options.buy", err);
    if (!rc)
      rc = num(b, "cpu", NAN, 0.001, 1e6, &s->buy_cap.cpu, "options.buy", err);
    if (!rc)
      rc = num(b, "mem", NAN, 0.001, 1e12, &s->buy_cap.mem, "options.buy", err);
    if (!rc)
      rc = str(b, "profile", 0, &s->buy_profile, "options.buy", err);
    if (!rc)
      rc = str(b, "region", 0, &s->buy_region, "options.buy", err);
  } else if (b && !json_is_false(b) && !json_is_null(b)) {
    rc = ad__err(err, AD_ECONFIG, D, "options.buy: must be true, false or {cpu, mem, profile, region}");
  }
  json_decref(empty);
  return rc;
}

/* platforms[i].usage: measured services [{service, cpu, mem}] (what the engine
 * keeps as each opened service's `usage`). The footprint becomes the engine's
 * rule over them: per dimension the largest measured, else the `footprint`
 * given (docs/usage.md). Absent: the given footprint, as before. */
static int load_usage(ad__sim_platform_t *p, const json_t *u, const char *path, ad_error_t *err)
{
  if (u && !json_is_null(u) && (!json_is_array(u) || json_array_size(u) > 100000))
    return ad__err(err, AD_ECONFIG, D, "%s.usage: must be a list of at most 100000 {service, cpu, mem}",
                   path);
  size_t n = json_array_size(u);
  ad__res_t *m = calloc(n + 1, sizeof *m);
  const char **ids = calloc(n + 1, sizeof *ids);
  static const char *const UK[] = {"service", "cpu", "mem", NULL};
  int rc = (!m || !ids) ? ad__err(err, AD_ENOMEM, D, "%s.usage: out of memory", path) : 0;
  for (size_t i = 0; !rc && i < n; i++) {
    char sub[96];
    json_t *e = json_array_get(u, i);
    snprintf(sub, sizeof sub, "%s.usage[%zu]", path, i);
    if (!json_is_object(e))
      rc = ad__err(err, AD_ECONFIG, D, "%s: must be an object {service, cpu, mem}", sub);
    if (!rc)
      rc = only_keys(e, UK, sub, err);
    if (!rc)
      rc = str(e, "service", 1, &ids[i], sub, err);
    if (!rc)
      rc = num(e, "cpu", 0, 0, 1e6, &m[i].cpu, sub, err);
    if (!rc)
      rc = num(e, "mem", 0, 0, 1e12, &m[i].mem, sub, err);
  }
  long from[2] = {-1, -1};
  if (!rc)
    p->req.footprint = ad__footprint_from(m, n, p->req.footprint, &from[0], &from[1]);
  json_t *src = rc ? NULL : json_object();
  static const char *const DIM[2] = {"cpu", "mem"};
  for (int k = 0; src && k < 2; k++)
    json_object_set_new(src, DIM[k],
                        from[k] >= 0 ? json_pack("{s:s,s:s}", "from", "measured", "service", ids[from[k]])
                                     : json_pack("{s:s}", "from", "platform default"));
  if (!rc && !(p->footprint = json_pack("{s:f,s:f,s:o?}", "cpu", p->req.footprint.cpu, "mem",
                                        p->req.footprint.mem, "sources", src)))
    rc = ad__err(err, AD_ENOMEM, D, "%s.usage: out of memory", path);
  free(m);
  free(ids);
  return rc;
}

static int load_platforms(ad__sim_t *s, const json_t *a, ad_error_t *err)
{
  static const char *const K[] = {"code", "footprint", "usage", "policy", "profiles", "regions",
                                  "headroom", NULL};
  s->np = json_array_size(a);
  if (s->np == 0)
    return ad__err(err, AD_ECONFIG, D, "platforms: empty");
  s->p = calloc(s->np, sizeof *s->p);
  if (!s->p)
    return ad__err(err, AD_ENOMEM, D, "platforms: out of memory");
  for (size_t i = 0; i < s->np; i++) {
    ad__sim_platform_t *p = &s->p[i];
    json_t *o = json_array_get(a, i);
    char path[48], sub[64];
    snprintf(path, sizeof path, "platforms[%zu]", i);
    if (!json_is_object(o))
      return ad__err(err, AD_ECONFIG, D, "%s: must be an object", path);
    TRY(only_keys(o, K, path, err));
    TRY(str(o, "code", 1, &p->code, path, err));
    for (size_t j = 0; j < i; j++)
      if (strcmp(s->p[j].code, p->code) == 0)
        return ad__err(err, AD_ECONFIG, D, "%s.code: duplicate '%s' (also platforms[%zu])", path,
                       p->code, j);
    snprintf(sub, sizeof sub, "%s.policy", path);
    TRY(ad__reserve_policy_from_json(&p->policy, json_object_get(o, "policy"), sub, err));
    ad__place_req_default(&p->req);
    p->req.code = p->code;
    json_t *fp = json_object_get(o, "footprint");
    snprintf(sub, sizeof sub, "%s.footprint", path);
    if (!json_is_object(fp))
      return ad__err(err, AD_ECONFIG, D, "%s: missing (an object {cpu, mem})", sub);
    static const char *const FK[] = {"cpu", "mem", NULL};
    TRY(only_keys(fp, FK, sub, err));
    TRY(num(fp, "cpu", NAN, 0, 1e6, &p->req.footprint.cpu, sub, err));
    TRY(num(fp, "mem", NAN, 0, 1e12, &p->req.footprint.mem, sub, err));
    if (!(p->req.footprint.cpu > 0 || p->req.footprint.mem > 0))
      return ad__err(err, AD_ECONFIG, D, "%s: cpu or mem must be > 0", sub);
    TRY(load_usage(p, json_object_get(o, "usage"), path, err));
    TRY(num(o, "headroom", s->headroom, 0.01, 1, &p->req.headroom, path, err));
    TRY(str_list(o, "profiles", &p->profiles, &p->req.n_profiles, path, err));
    TRY(str_list(o, "regions", &p->regions, &p->req.n_regions, path, err));
    p->req.profiles = p->profiles;
    p->req.regions = p->regions;
    p->reserve_lo = -1;
  }
  return 0;
}

static int load_hosts(ad__sim_t *s, const json_t *a, ad_error_t *err)
{
  static const char *const K[] = {"key", "cpu", "mem", "profile", "region", "load_cpu",
                                  "load_mem", "placeable", NULL};
  s->nh = s->n_input_hosts = json_array_size(a);
  s->cap_h = s->nh + 16;
  s->hosts = calloc(s->cap_h, sizeof *s->hosts);
  if (!s->hosts)
    return ad__err(err, AD_ENOMEM, D, "hosts: out of memory");
  for (size_t i = 0; i < s->nh; i++) {
    ad__host_t *h = &s->hosts[i];
    json_t *o = json_array_get(a, i);
    char path[48];
    snprintf(path, sizeof path, "hosts[%zu]", i);
    if (!json_is_object(o))
      return ad__err(err, AD_ECONFIG, D, "%s: must be an object", path);
    TRY(only_keys(o, K, path, err));
    TRY(str(o, "key", 1, &h->key, path, err));
    TRY(num(o, "cpu", NAN, 0.001, 1e6, &h->capacity.cpu, path, err));
    TRY(num(o, "mem", NAN, 0.001, 1e12, &h->capacity.mem, path, err));
    TRY(num(o, "load_cpu", 0, 0, 1e6, &h->p95.cpu, path, err));
    TRY(num(o, "load_mem", 0, 0, 1e12, &h->p95.mem, path, err));
    TRY(str(o, "profile", 0, &h->profile, path, err));
    TRY(str(o, "region", 0, &h->region, path, err));
    json_t *pl = json_object_get(o, "placeable");
    if (pl && !json_is_boolean(pl))
      return ad__err(err, AD_ECONFIG, D, "%s.placeable: must be true or false", path);
    h->placeable = !pl || json_is_true(pl);
  }
  /* duplicate keys: sort a copy of the indexes by key */
  size_t *ix = malloc((s->nh + 1) * sizeof *ix);
  if (!ix)
    return ad__err(err, AD_ENOMEM, D, "hosts: out of memory");
  for (size_t i = 0; i < s->nh; i++)
    ix[i] = i;
  for (size_t i = 1; i < s->nh; i++) { /* insertion sort is fine for a simulator's fleet */
    size_t x = ix[i], j = i;
    while (j > 0 && strcmp(s->hosts[ix[j - 1]].key, s->hosts[x].key) > 0) {
      ix[j] = ix[j - 1];
      j--;
    }
    ix[j] = x;
  }
  int rc = 0;
  for (size_t i = 1; i < s->nh && !rc; i++)
    if (strcmp(s->hosts[ix[i - 1]].key, s->hosts[ix[i]].key) == 0) {
      size_t a1 = ix[i - 1] < ix[i] ? ix[i - 1] : ix[i], a2 = ix[i - 1] ^ ix[i] ^ a1;
      rc = ad__err(err, AD_ECONFIG, D, "hosts[%zu].key: duplicate '%s' (also hosts[%zu])", a2,
                   s->hosts[a2].key, a1);
    }
  free(ix);
  return rc;
}

static int load_openings(ad__sim_t *s, const json_t *a, int64_t *first, int64_t *last,
                         ad_error_t *err)
{
  static const char *const K[] = {"platform", "at", NULL};
  size_t i;
  json_t *o;
  *first = INT64_MAX;
  *last = INT64_MIN;
  json_array_foreach(a, i, o) {
    char path[48];
    snprintf(path, sizeof path, "openings[%zu]", i);
    if (!json_is_object(o))
      return ad__err(err, AD_ECONFIG, D, "%s: must be an object {platform, at}", path);
    TRY(only_keys(o, K, path, err));
    const char *code;
    TRY(str(o, "platform", 1, &code, path, err));
    ad__sim_platform_t *p = NULL;
    for (size_t j = 0; j < s->np && !p; j++)
      if (strcmp(s->p[j].code, code) == 0)
        p = &s->p[j];
    if (!p)
      return ad__err(err, AD_ECONFIG, D, "%s.platform: unknown platform '%s'", path, code);
    json_t *at = json_object_get(o, "at");
    int64_t ms;
    if (!at)
      return ad__err(err, AD_ECONFIG, D, "%s.at: missing", path);
    if (time_value(at, &ms) != 0)
      return ad__err(err, AD_ECONFIG, D, "%s.at: cannot parse '%.40s' as ISO-8601 or epoch seconds",
                     path, json_is_string(at) ? json_string_value(at) : "(not text or number)");
    if (p->n_open == p->cap_open) {
      size_t nc = p->cap_open ? 2 * p->cap_open : 64;
      int64_t *v = realloc(p->open, nc * sizeof *v);
      if (!v)
        return ad__err(err, AD_ENOMEM, D, "%s: out of memory", path);
      p->open = v;
      p->cap_open = nc;
    }
    p->open[p->n_open++] = ms;
    if (ms < *first)
      *first = ms;
    if (ms > *last)
      *last = ms;
  }
  for (size_t j = 0; j < s->np; j++)
    if (s->p[j].n_open > 1)
      qsort(s->p[j].open, s->p[j].n_open, sizeof(int64_t), cmp_i64);
  return 0;
}

int ad__sim_load(ad__sim_t *s, const json_t *in, ad_error_t *err)
{
  static const char *const K[] = {"platforms", "hosts", "openings", "options", NULL};
  if (!json_is_object(in))
    return ad__err(err, AD_ECONFIG, D, "input: must be a JSON object");
  TRY(only_keys(in, K, "input", err));
  json_t *pa, *ha, *oa;
  TRY(array(in, "platforms", 1, &pa, err));
  TRY(array(in, "hosts", 1, &ha, err));
  TRY(array(in, "openings", 0, &oa, err));
  /* options.headroom is the platforms' default, so read options twice:
   * first for it (times need the openings, read below) */
  s->headroom = 0.8;
  json_t *o = json_object_get(in, "options");
  if (json_is_object(o) && json_is_number(json_object_get(o, "headroom")))
    s->headroom = json_number_value(json_object_get(o, "headroom"));
  TRY(load_platforms(s, pa, err));
  TRY(load_hosts(s, ha, err));
  int64_t first = 0, last = 0;
  if (oa)
    TRY(load_openings(s, oa, &first, &last, err));
  if (!oa || json_array_size(oa) == 0) {
    first = 0;
    last = 0;
    json_t *st = o ? json_object_get(o, "start") : NULL, *en = o ? json_object_get(o, "end") : NULL;
    if (!st || !en)
      return ad__err(err, AD_ECONFIG, D, "openings: none, so options.start and options.end are needed");
  }
  return load_options(s, in, first, last, err);
}

void ad__sim_free(ad__sim_t *s)
{
  for (size_t i = 0; i < s->np; i++) {
    ad__sim_platform_t *p = &s->p[i];
    free(p->profiles);
    free(p->regions);
    free(p->open);
    free(p->deploying.v);
    free(p->waiting_open.v);
    json_decref(p->s_reserve);
    json_decref(p->s_idle);
    json_decref(p->s_waiting);
    json_decref(p->footprint);
  }
  free(s->p);
  free(s->hosts);
  for (size_t i = 0; i < s->n_owned; i++)
    free(s->owned[i]);
  free(s->owned);
  for (size_t i = 0; i < s->n_orders; i++)
    free(s->orders[i].assigned);
  free(s->orders);
}

int ad__tq_push(ad__tq_t *q, int64_t t)
{
  if (q->head > 0 && q->head + q->len == q->cap) { /* slide down before growing */
    memmove(q->v, q->v + q->head, q->len * sizeof *q->v);
    q->head = 0;
  }
  if (q->head + q->len == q->cap) {
    size_t nc = q->cap ? 2 * q->cap : 16;
    int64_t *v = realloc(q->v, nc * sizeof *v);
    if (!v)
      return AD_ENOMEM;
    q->v = v;
    q->cap = nc;
  }
  q->v[q->head + q->len++] = t;
  return 0;
}
