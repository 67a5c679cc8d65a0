/* metrics.c - see metrics.h. The lifecycle, the per-host sample buffers a
 * backend fills, the statistics, and the result as JSON. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_private.h"
#include "metrics/metrics_private.h"

struct ad__metrics {
  const ad__metrics_backend_t *b;
  void *state;
};

static const ad__metrics_backend_t *const BACKENDS[] = {
    &ad__metrics_salt, &ad__metrics_prometheus, &ad__metrics_zabbix,
    &ad__metrics_openfalcon, NULL};

static const char *const RES_NAMES[AD__RES_COUNT] = {"cpu", "mem", "disk", "load1"};
static const char *const RES_UNITS[AD__RES_COUNT] = {"cores", "MiB", "fraction", "load"};

const char *ad__metrics_res_name(ad__metrics_res_t r)
{
  return (unsigned)r < AD__RES_COUNT ? RES_NAMES[r] : "?";
}

const char *ad__metrics_res_unit(ad__metrics_res_t r)
{
  return (unsigned)r < AD__RES_COUNT ? RES_UNITS[r] : "?";
}

ad__metrics_t *ad__metrics_new(const char *backend, const json_t *config, ad_error_t *err)
{
  const char *name = backend && *backend ? backend : "salt";
  const ad__metrics_backend_t *b = NULL;
  for (size_t i = 0; BACKENDS[i]; i++)
    if (!strcmp(BACKENDS[i]->name, name))
      b = BACKENDS[i];
  if (!b) {
    ad__err(err, AD_ECONFIG, "metrics",
            "metrics backend \"%.40s\" is not one of salt, prometheus, zabbix, openfalcon", name);
    return NULL;
  }
  if (config && !json_is_object(config)) {
    ad__err(err, AD_ECONFIG, "metrics", "metrics backend %s: configuration must be an object",
            name);
    return NULL;
  }
  ad_error_t e = {0};
  void *state = b->create(config, &e);
  if (!state) {
    ad__err(err, e.code ? e.code : AD_ECONFIG, "metrics", "metrics backend %s: %s", name,
            e.message);
    return NULL;
  }
  ad__metrics_t *m = calloc(1, sizeof(*m));
  if (!m) {
    b->destroy(state);
    ad__err(err, AD_ENOMEM, "metrics", "no memory");
    return NULL;
  }
  m->b = b;
  m->state = state;
  return m;
}

void ad__metrics_destroy(ad__metrics_t **m_p)
{
  if (!m_p || !*m_p)
    return;
  (*m_p)->b->destroy((*m_p)->state);
  free(*m_p);
  *m_p = NULL;
}

const char *ad__metrics_backend(const ad__metrics_t *m) { return m->b->name; }

void *ad__metrics_state(ad__metrics_t *m, const ad__metrics_backend_t *b)
{
  return m->b == b ? m->state : NULL;
}

/* ---- samples --------------------------------------------------------------- */

typedef struct {
  ad__metrics_point_t *p;
  size_t n, cap;
} buf_t;

struct ad__metrics_sink {
  size_t n_hosts;
  buf_t *bufs; /* [host * AD__RES_COUNT + res] */
};

int ad__metrics_sink_add(ad__metrics_sink_t *s, size_t host, ad__metrics_res_t r,
                         int64_t at_ms, double v)
{
  if (host >= s->n_hosts || (unsigned)r >= AD__RES_COUNT || !isfinite(v))
    return 0;
  buf_t *b = &s->bufs[host * AD__RES_COUNT + r];
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    ad__metrics_point_t *p = realloc(b->p, cap * sizeof(*p));
    if (!p)
      return AD_ENOMEM;
    b->p = p;
    b->cap = cap;
  }
  b->p[b->n].at_ms = at_ms;
  b->p[b->n++].v = v;
  return 0;
}

ad__metrics_sink_t *ad__metrics_sink_new(size_t n_hosts)
{
  ad__metrics_sink_t *s = calloc(1, sizeof(*s));
  if (s && !(s->bufs = calloc(n_hosts * AD__RES_COUNT + 1, sizeof(buf_t)))) {
    free(s);
    return NULL;
  }
  if (s)
    s->n_hosts = n_hosts;
  return s;
}

void ad__metrics_sink_free(ad__metrics_sink_t *s)
{
  for (size_t i = 0; s && i < s->n_hosts * AD__RES_COUNT; i++)
    free(s->bufs[i].p);
  if (s)
    free(s->bufs);
  free(s);
}

const ad__metrics_point_t *ad__metrics_sink_points(const ad__metrics_sink_t *s, size_t host,
                                                   ad__metrics_res_t r, size_t *n)
{
  const buf_t *b = &s->bufs[host * AD__RES_COUNT + r];
  *n = b->n;
  return b->p;
}

static int by_time(const void *a, const void *b)
{
  int64_t x = ((const ad__metrics_point_t *)a)->at_ms, y = ((const ad__metrics_point_t *)b)->at_ms;
  return (x > y) - (x < y);
}

static int by_value(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void ad__metrics_summarize(ad__metrics_point_t *pts, size_t n, ad__metrics_summary_t *s)
{
  memset(s, 0, sizeof(*s));
  if (!n)
    return;
  qsort(pts, n, sizeof(*pts), by_time); /* stable enough: equal times keep no order */
  double *v = malloc(n * sizeof(*v)), sum = 0;
  s->count = n;
  s->max = pts[0].v;
  for (size_t i = 0; i < n; i++) {
    sum += pts[i].v;
    if (pts[i].v > s->max)
      s->max = pts[i].v;
    if (v)
      v[i] = pts[i].v;
  }
  s->mean = sum / (double)n;
  s->last = pts[n - 1].v;
  s->last_at_ms = pts[n - 1].at_ms;
  if (!v) { /* no memory for the sort: the max is a safe over-estimate */
    s->p95 = s->max;
    return;
  }
  qsort(v, n, sizeof(*v), by_value);
  /* Nearest rank: the smallest value with at least 95% of samples <= it,
   * always an observed value. 0.95 * n in integers avoids 0.95's binary
   * rounding pushing an exact rank (n = 20, 100...) one up. */
  size_t rank = (95 * n + 99) / 100;
  s->p95 = v[(rank ? rank : 1) - 1];
  free(v);
}

/* ---- query ----------------------------------------------------------------- */

static int check_hosts(const ad__metrics_host_t *hosts, size_t n, ad_error_t *err)
{
  for (size_t i = 0; i < n; i++) {
    if (!hosts[i].key || !*hosts[i].key)
      return ad__err(err, AD_EINVAL, "metrics", "hosts[%zu]: no key", i);
    if (hosts[i].cores < 0 || hosts[i].mem_mb < 0)
      return ad__err(err, AD_EINVAL, "metrics", "host %.60s: negative cores or mem_mb",
                     hosts[i].key);
    for (size_t j = 0; j < i; j++)
      if (!strcmp(hosts[i].key, hosts[j].key))
        return ad__err(err, AD_EINVAL, "metrics", "host %.60s is listed twice",
                       hosts[i].key);
  }
  return 0;
}

static int bad_window(const ad__metrics_t *m, const ad__metrics_query_t *q, ad_error_t *err)
{
  if (!q || q->from_ms <= 0 || q->to_ms <= q->from_ms || q->step_ms < 0)
    return ad__err(err, AD_EINVAL, "metrics",
                   "metrics %s: bad window (need 0 < from_ms < to_ms, step_ms >= 0)",
                   m->b->name);
  return 0;
}

/* The sink's samples as a result keyed by keys[0..n): one summary per key
 * and resource, the series moved over when asked. 0 + *out or AD_ENOMEM. */
static int to_result(ad__metrics_sink_t *sink, const char *const *keys, size_t n,
                     int want_series, ad__metrics_result_t **out, ad_error_t *err)
{
  ad__metrics_result_t *r = calloc(1, sizeof(*r));
  if (!r || !(r->hosts = calloc(n + 1, sizeof(*r->hosts)))) {
    free(r);
    return ad__err(err, AD_ENOMEM, "metrics", "no memory");
  }
  r->n_hosts = n;
  for (size_t i = 0; i < n; i++) {
    if (!(r->hosts[i].key = strdup(keys[i]))) {
      ad__metrics_result_free(&r);
      return ad__err(err, AD_ENOMEM, "metrics", "no memory");
    }
    for (int k = 0; k < AD__RES_COUNT; k++) {
      buf_t *b = &sink->bufs[i * AD__RES_COUNT + k];
      ad__metrics_summary_t *s = &r->hosts[i].res[k];
      ad__metrics_summarize(b->p, b->n, s);
      if (want_series && b->n) {
        s->series = b->p; /* sorted by summarize; ownership moves */
        b->p = NULL;
      }
    }
  }
  *out = r;
  return 0;
}

int ad__metrics_query(ad__metrics_t *m, const ad__metrics_host_t *hosts, size_t n,
                      const ad__metrics_query_t *q, ad__metrics_result_t **out,
                      ad_error_t *err)
{
  *out = NULL;
  int rc = bad_window(m, q, err);
  if (rc || (rc = check_hosts(hosts, n, err)))
    return rc;
  ad__metrics_query_t qq = *q;
  if (!qq.resources)
    qq.resources = (1u << AD__RES_COUNT) - 1;
  ad__metrics_sink_t *sink = ad__metrics_sink_new(n);
  const char **keys = calloc(n + 1, sizeof(*keys));
  if (!sink || !keys) {
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++)
    keys[i] = hosts[i].key;
  if (n && (rc = m->b->query(m->state, hosts, n, &qq, sink, err)))
    goto done;
  rc = to_result(sink, keys, n, q->want_series, out, err);
done:
  ad__metrics_sink_free(sink);
  free(keys);
  return rc;
}

/* Services: a key each, 1..160 printable characters, no two alike. */
static int check_services(const ad__metrics_service_t *s, size_t n, ad_error_t *err)
{
  for (size_t i = 0; i < n; i++) {
    size_t len = s[i].key ? strlen(s[i].key) : 0;
    if (!len || len > 160)
      return ad__err(err, AD_EINVAL, "metrics", "services[%zu]: no key, or longer than 160", i);
    for (const char *p = s[i].key; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        return ad__err(err, AD_EINVAL, "metrics", "services[%zu]: key is not printable", i);
    for (size_t j = 0; j < i; j++)
      if (!strcmp(s[i].key, s[j].key))
        return ad__err(err, AD_EINVAL, "metrics", "service %.60s is listed twice", s[i].key);
  }
  return 0;
}

int ad__metrics_has_service_query(const ad__metrics_t *m)
{
  return m && m->b->query_services != NULL;
}

int ad__metrics_query_services(ad__metrics_t *m, const ad__metrics_service_t *svcs, size_t n,
                               const ad__metrics_query_t *q, ad__metrics_result_t **out,
                               ad_error_t *err)
{
  *out = NULL;
  if (!m->b->query_services)
    return ad__err(err, AD_EINVAL, "metrics",
                   "metrics %s: no per-service query (the autodeploy_services beacon measures "
                   "services: placement.usage_source beacon)", m->b->name);
  int rc = bad_window(m, q, err);
  if (rc || (rc = check_services(svcs, n, err)))
    return rc;
  ad__metrics_query_t qq = *q; /* cpu and mem are what a service has */
  qq.resources = (q->resources ? q->resources : ~0u) & ((1u << AD__RES_CPU) | (1u << AD__RES_MEM));
  ad__metrics_sink_t *sink = ad__metrics_sink_new(n);
  const char **keys = calloc(n + 1, sizeof(*keys));
  if (!sink || !keys) {
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++)
    keys[i] = svcs[i].key;
  if (n && qq.resources && (rc = m->b->query_services(m->state, svcs, n, &qq, sink, err)))
    goto done;
  rc = to_result(sink, keys, n, q->want_series, out, err);
done:
  ad__metrics_sink_free(sink);
  free(keys);
  return rc;
}

void ad__metrics_result_free(ad__metrics_result_t **r_p)
{
  if (!r_p || !*r_p)
    return;
  ad__metrics_result_t *r = *r_p;
  for (size_t i = 0; r->hosts && i < r->n_hosts; i++) {
    free(r->hosts[i].key);
    for (int k = 0; k < AD__RES_COUNT; k++)
      free(r->hosts[i].res[k].series);
  }
  free(r->hosts);
  free(r);
  *r_p = NULL;
}

json_t *ad__metrics_result_to_json(const ad__metrics_result_t *r)
{
  json_t *o = json_object();
  for (size_t i = 0; o && i < r->n_hosts; i++) {
    json_t *h = json_object();
    for (int k = 0; h && k < AD__RES_COUNT; k++) {
      const ad__metrics_summary_t *s = &r->hosts[i].res[k];
      json_t *j = json_pack("{s:s,s:I}", "unit", RES_UNITS[k], "count", (json_int_t)s->count);
      if (j && s->count) {
        json_object_set_new(j, "p95", json_real(s->p95));
        json_object_set_new(j, "max", json_real(s->max));
        json_object_set_new(j, "mean", json_real(s->mean));
        json_object_set_new(j, "last", json_real(s->last));
        json_object_set_new(j, "last_at_ms", json_integer(s->last_at_ms));
      }
      if (j && s->series) {
        json_t *a = json_array();
        for (size_t p = 0; a && p < s->count; p++)
          json_array_append_new(a, json_pack("[I,f]", (json_int_t)s->series[p].at_ms,
                                             s->series[p].v));
        json_object_set_new(j, "series", a);
      }
      json_object_set_new(h, RES_NAMES[k], j);
    }
    json_object_set_new(o, r->hosts[i].key, h);
  }
  return o;
}

/* ---- helpers the backends share -------------------------------------------- */

static int id_part(const char *name, size_t len, const ad__metrics_host_t *h,
                   const char **val)
{
  if (len == 6 && !memcmp(name, "minion", 6))
    *val = h->minion_id;
  else if (len == 2 && !memcmp(name, "ip", 2))
    *val = h->private_ip;
  else if (len == 3 && !memcmp(name, "key", 3))
    *val = h->key;
  else
    return -1;
  return 0;
}

char *ad__metrics_host_id(const char *tmpl, const ad__metrics_host_t *h, ad_error_t *err)
{
  size_t cap = strlen(tmpl) + 64, len = 0;
  char *out = malloc(cap);
  for (const char *p = tmpl; out && *p;) {
    const char *piece = p;
    size_t n = 1;
    if (p[0] == '{' && p[1] == '{') {
      p += 2;
    } else if (p[0] == '{') {
      const char *end = strchr(p, '}');
      const char *val = NULL;
      if (!end || id_part(p + 1, (size_t)(end - p - 1), h, &val)) {
        ad__err(err, AD_EINVAL, "metrics",
                "host id template \"%.60s\": unknown placeholder (use {minion}, {ip} or {key})",
                tmpl);
        goto fail;
      }
      if (!val || !*val) {
        ad__err(err, AD_EINVAL, "metrics", "host %.60s: no value for %.*s in \"%.60s\"",
                h->key ? h->key : "?", (int)(end - p + 1), p, tmpl);
        goto fail;
      }
      piece = val;
      n = strlen(val);
      p = end + 1;
    } else {
      p++;
    }
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      char *o = realloc(out, cap);
      if (!o) {
        ad__err(err, AD_ENOMEM, "metrics", "no memory");
        goto fail;
      }
      out = o;
    }
    memcpy(out + len, piece, n);
    len += n;
  }
  if (!out) {
    ad__err(err, AD_ENOMEM, "metrics", "no memory");
    return NULL;
  }
  out[len] = '\0';
  return out;
fail:
  free(out);
  return NULL;
}

/* ---- per-service templates ---------------------------------------------------- */

static const char *const SVC_PH[] = {"service", "host", "unit", NULL};

/* At p, a placeholder "{name}" with name in [a-z_]: its length (name
 * only) and *end after the "}"; else 0. PromQL's own braces hold label
 * matchers (an '=' or a quote), Zabbix macros start with $ or #: neither
 * looks like this. */
static size_t placeholder(const char *p, const char **end)
{
  if (*p != '{')
    return 0;
  size_t n = 0;
  while ((p[1 + n] >= 'a' && p[1 + n] <= 'z') || p[1 + n] == '_')
    n++;
  if (!n || p[1 + n] != '}')
    return 0;
  *end = p + n + 2;
  return n;
}

static int ph_index(const char *name, size_t n)
{
  for (int i = 0; SVC_PH[i]; i++)
    if (strlen(SVC_PH[i]) == n && !memcmp(SVC_PH[i], name, n))
      return i;
  return -1;
}

int ad__metrics_svc_template_check(const char *key, const char *tmpl, ad_error_t *err)
{
  int has[3] = {0, 0, 0};
  if (!tmpl || !*tmpl)
    return ad__err(err, AD_ECONFIG, "config", "%s: must not be empty", key);
  for (const char *p = tmpl, *end; *p;) {
    size_t n = placeholder(p, &end);
    if (!n) {
      p++;
      continue;
    }
    int i = ph_index(p + 1, n);
    if (i < 0)
      return ad__err(err, AD_ECONFIG, "config",
                     "%s: unknown placeholder {%.*s} (use {service}, {host}, {unit})", key,
                     (int)(n > 40 ? 40 : n), p + 1);
    has[i] = 1;
    p = end;
  }
  if (!has[0] && !has[2])
    return ad__err(err, AD_ECONFIG, "config",
                   "%s: must contain {service} or {unit} (else every service gets one series)",
                   key);
  return 0;
}

/* Append `v` escaped for `syn`; -1: a character the syntax cannot carry. */
static int put_value(char **o, const char *v, ad__tmpl_syntax_t syn)
{
  for (; *v; v++) {
    unsigned char c = (unsigned char)*v;
    if (c < 0x20 || c == 0x7f)
      return -1;
    if (syn == AD__TMPL_PROMQL && (c == '\\' || c == '"'))
      *(*o)++ = '\\';
    else if (syn == AD__TMPL_ZABBIX && strchr("\",[]", c))
      return -1;
    else if (syn == AD__TMPL_FALCON && strchr(",= ", c))
      return -1;
    *(*o)++ = (char)c;
  }
  return 0;
}

char *ad__metrics_svc_expand(const char *key, const char *tmpl, const ad__metrics_service_t *s,
                             const char *host_id, ad__tmpl_syntax_t syn, ad_error_t *err)
{
  const char *val[3] = {s->key, host_id, s->unit};
  size_t cap = strlen(tmpl) + 1;
  for (const char *p = tmpl, *end; *p; p++) {
    size_t n = placeholder(p, &end);
    int i = n ? ph_index(p + 1, n) : -1;
    if (i >= 0)
      cap += (val[i] ? strlen(val[i]) : 0) * 2;
  }
  char *out = malloc(cap), *o = out;
  if (!out)
    return ad__err(err, AD_ENOMEM, "metrics", "no memory"), NULL;
  for (const char *p = tmpl, *end; *p;) {
    size_t n = placeholder(p, &end);
    int i = n ? ph_index(p + 1, n) : -1;
    if (i < 0) {
      *o++ = *p++;
      continue;
    }
    if (!val[i] || !*val[i]) {
      ad__err(err, AD_EINVAL, "metrics", "service %.60s: no value for {%s} in %s", s->key,
              SVC_PH[i], key);
      goto fail;
    }
    if (put_value(&o, val[i], syn)) {
      ad__err(err, AD_EINVAL, "metrics", "service %.60s: {%s} \"%.60s\" cannot go into %s",
              s->key, SVC_PH[i], val[i], key);
      goto fail;
    }
    p = end;
  }
  *o = '\0';
  return out;
fail:
  free(out);
  return NULL;
}

int ad__metrics_json_num(const json_t *v, double *out)
{
  if (json_is_number(v)) {
    *out = json_number_value(v);
    return 0;
  }
  const char *s = json_string_value(v);
  if (!s || !*s)
    return -1;
  char *end;
  errno = 0;
  double d = strtod(s, &end);
  if (*end || errno == EINVAL)
    return -1;
  *out = d;
  return 0;
}

long ad__metrics_find(char *const *ids, size_t n, const char *id)
{
  for (size_t i = 0; i < n; i++)
    if (ids[i] && !strcmp(ids[i], id))
      return (long)i;
  return -1;
}

int ad__metrics_hosts_from_json(const json_t *arr, ad__metrics_host_t **hosts, size_t *n,
                                ad_error_t *err)
{
  *hosts = NULL;
  *n = 0;
  if (!json_is_array(arr))
    return ad__err(err, AD_EINVAL, "metrics", "hosts: must be an array of objects");
  size_t cnt = json_array_size(arr);
  ad__metrics_host_t *h = calloc(cnt + 1, sizeof(*h));
  if (!h)
    return ad__err(err, AD_ENOMEM, "metrics", "no memory");
  for (size_t i = 0; i < cnt; i++) {
    json_t *o = json_array_get(arr, i), *v;
    const char *k;
    if (!json_is_object(o)) {
      free(h);
      return ad__err(err, AD_EINVAL, "metrics", "hosts[%zu]: must be an object", i);
    }
    json_object_foreach(o, k, v) {
      const char **str = !strcmp(k, "key") ? &h[i].key
                         : !strcmp(k, "minion_id") ? &h[i].minion_id
                         : !strcmp(k, "private_ip") ? &h[i].private_ip : NULL;
      if (str) {
        if (!json_is_string(v) && !json_is_null(v))
          goto bad;
        *str = json_string_value(v);
      } else if (!strcmp(k, "cores")) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65536)
          goto bad;
        h[i].cores = (int)json_integer_value(v);
      } else if (!strcmp(k, "mem_mb")) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
          goto bad;
        h[i].mem_mb = json_integer_value(v);
      } else {
        free(h);
        return ad__err(err, AD_EINVAL, "metrics", "hosts[%zu]: unknown field \"%.40s\"", i, k);
      }
      continue;
    bad:
      free(h);
      return ad__err(err, AD_EINVAL, "metrics", "hosts[%zu].%s: wrong type or range", i, k);
    }
    if (!h[i].key)
      h[i].key = h[i].minion_id;
    if (!h[i].key || !*h[i].key) {
      free(h);
      return ad__err(err, AD_EINVAL, "metrics", "hosts[%zu]: needs \"key\" or \"minion_id\"", i);
    }
  }
  *hosts = h;
  *n = cnt;
  return 0;
}
