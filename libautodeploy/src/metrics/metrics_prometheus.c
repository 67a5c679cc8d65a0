/*
 * metrics_prometheus.c - Prometheus's HTTP API, one range query per
 * resource for all hosts:
 *   POST <url>/api/v1/query_range   (form: query, start, end, step)
 * Each query is a PromQL template whose {instances} becomes an anchored
 * RE2 alternation of the hosts' instance labels (host_id, default
 * "{ip}:9100", node_exporter's port), escaped twice: once for RE2, once
 * for the PromQL string literal. The answer is a matrix:
 *   {"status": "success", "data": {"resultType": "matrix", "result": [
 *     {"metric": {"instance": "10.0.0.5:9100"}, "values": [[1700000000.5, "0.25"], ...]}]}}
 * and an error is {"status": "error", "errorType": .., "error": ..}, with
 * HTTP 400, 422 or 503.
 *
 * Per service (game servers), one range query per resource too: each
 * service's template (query_service_cpu, query_service_mem: {service},
 * {host}, {unit} filled in, escaped for a PromQL string) is labelled
 *   label_replace((<expr>), "autodeploy_service", "<id>", "", "")
 * and the services' expressions are joined with `or`, as a balanced tree.
 * The defaults follow the exporter (service_exporter): process-exporter
 * (namedprocess_namegroup_*, a group named by the service id) or cAdvisor
 * (container_* of the unit's cgroup /system.slice/<unit>).
 */
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_private.h"
#include "metrics/metrics_private.h"

typedef struct {
  ad__metrics_http_conf_t http;
  char *host_id;
  char *label;
  char *query[AD__RES_COUNT];
  char *bearer_token, *basic_user, *basic_password;
  char *auth; /* "Authorization: ..." or NULL */
  int exporter;               /* service_exporter: EXP_* */
  char *svc_host_id;          /* service_host_id: {host} of the service templates */
  char *svc_query[AD__RES_MEM + 1]; /* query_service_cpu, query_service_mem */
} prom_t;

/* The per-service defaults, by exporter. process-exporter: a group per
 * game server named by its service id (docs/metrics.md has the exporter's
 * config); memory is resident (RSS). cAdvisor: the unit's cgroup; memory
 * is container_memory_rss (anon on cgroup v2, what the beacon reads).
 * cpu is irate over [5m]: the rate between the last two scrapes before each
 * step, what the beacon measures (its rate between two readings) and right
 * from a server's first minutes; rate(..[5m]) divides by the whole 5 m and
 * reads a server younger than that low (measured: 0.04 for 0.5 core after
 * 20 s), and averages away the peaks a p95 is for.
 * node_exporter's systemd collector has unit states and tasks, no cpu or
 * memory per unit, so it cannot be one. */
static const char *const EXPORTERS[] = {"process-exporter", "cadvisor", NULL};
enum { EXP_PROCESS, EXP_CADVISOR };
static const struct {
  const char *host_id, *cpu, *mem;
} SVC_DEF[] = {
    [EXP_PROCESS] = {"{ip}:9256",
                     "sum(irate(namedprocess_namegroup_cpu_seconds_total{groupname=\"{service}\","
                     "instance=\"{host}\"}[5m]))",
                     "sum(namedprocess_namegroup_memory_bytes{groupname=\"{service}\","
                     "memtype=\"resident\",instance=\"{host}\"}) / 1048576"},
    [EXP_CADVISOR] = {"{ip}:8080",
                      "sum(irate(container_cpu_usage_seconds_total{id=\"/system.slice/{unit}\","
                      "instance=\"{host}\"}[5m]))",
                      "sum(container_memory_rss{id=\"/system.slice/{unit}\","
                      "instance=\"{host}\"}) / 1048576"},
};
static const char *const SVC_KEY[AD__RES_MEM + 1] = {"query_service_cpu", "query_service_mem"};
#define SVC_LABEL "autodeploy_service"

#define DEF_CPU                                                                       \
  "sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\",instance=~\"{instances}\"}[5m]))"
#define DEF_MEM                                                                       \
  "(node_memory_MemTotal_bytes{instance=~\"{instances}\"} - "                         \
  "node_memory_MemAvailable_bytes{instance=~\"{instances}\"}) / 1048576"
#define DEF_DISK                                                                      \
  "1 - node_filesystem_avail_bytes{mountpoint=\"/\",instance=~\"{instances}\"} / "    \
  "node_filesystem_size_bytes{mountpoint=\"/\",instance=~\"{instances}\"}"
#define DEF_LOAD1 "node_load1{instance=~\"{instances}\"}"

static const ad__config_key_t PROM_KEYS[] = {
    AD__METRICS_HTTP_KEYS(prom_t, http),
    {"host_id", AD_CT_STR, offsetof(prom_t, host_id), 0, 0, "{ip}:9100", NULL},
    {"instance_label", AD_CT_STR, offsetof(prom_t, label), 0, 0, "instance", NULL},
    {"query_cpu", AD_CT_STR, offsetof(prom_t, query[AD__RES_CPU]), 0, 0, DEF_CPU, NULL},
    {"query_mem", AD_CT_STR, offsetof(prom_t, query[AD__RES_MEM]), 0, 0, DEF_MEM, NULL},
    {"query_disk", AD_CT_STR, offsetof(prom_t, query[AD__RES_DISK]), 0, 0, DEF_DISK, NULL},
    {"query_load1", AD_CT_STR, offsetof(prom_t, query[AD__RES_LOAD1]), 0, 0, DEF_LOAD1, NULL},
    {"bearer_token", AD_CT_SECRET, offsetof(prom_t, bearer_token), 0, 0, "", NULL},
    {"basic_user", AD_CT_STR, offsetof(prom_t, basic_user), 0, 0, "", NULL},
    {"basic_password", AD_CT_SECRET, offsetof(prom_t, basic_password), 0, 0, "", NULL},
    {"service_exporter", AD_CT_ENUM, offsetof(prom_t, exporter), 0, 0, "process-exporter",
     EXPORTERS},
    {"service_host_id", AD_CT_STR, offsetof(prom_t, svc_host_id), 0, 0, "", NULL},
    {"query_service_cpu", AD_CT_STR, offsetof(prom_t, svc_query[AD__RES_CPU]), 0, 0, "", NULL},
    {"query_service_mem", AD_CT_STR, offsetof(prom_t, svc_query[AD__RES_MEM]), 0, 0, "", NULL},
    {NULL, 0, 0, 0, 0, NULL, NULL}};

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__metrics_prometheus_keys(void) { return PROM_KEYS; }

static void prom_destroy(void *state)
{
  prom_t *p = state;
  if (!p)
    return;
  ad__metrics_http_conf_free(&p->http);
  ad__config_free(PROM_KEYS, p);
  free(p->auth);
  free(p);
}

/* The per-service keys left unset take the exporter's defaults; then each
 * template's placeholders are checked. */
static int svc_defaults(prom_t *p, ad_error_t *err)
{
  const char *def[AD__RES_MEM + 1] = {SVC_DEF[p->exporter].cpu, SVC_DEF[p->exporter].mem};
  if (!p->svc_host_id && !(p->svc_host_id = strdup(SVC_DEF[p->exporter].host_id)))
    return ad__err(err, AD_ENOMEM, "config", "no memory");
  for (int r = 0; r <= AD__RES_MEM; r++) {
    if (!p->svc_query[r] && !(p->svc_query[r] = strdup(def[r])))
      return ad__err(err, AD_ENOMEM, "config", "no memory");
    if (ad__metrics_svc_template_check(SVC_KEY[r], p->svc_query[r], err))
      return AD_ECONFIG;
  }
  return 0;
}

static void *prom_create(const json_t *cfg, ad_error_t *err)
{
  prom_t *p = calloc(1, sizeof(*p));
  if (!p) {
    ad__err(err, AD_ENOMEM, "config", "no memory");
    return NULL;
  }
  if (ad__config_load(PROM_KEYS, p, cfg, err) || ad__metrics_http_check(&p->http, err))
    goto fail;
  for (int r = 0; r < AD__RES_COUNT; r++)
    if (!p->query[r] || !strstr(p->query[r], "{instances}")) {
      ad__err(err, AD_ECONFIG, "config", "query_%s: must contain {instances}",
              ad__metrics_res_name(r));
      goto fail;
    }
  if (!p->host_id || !p->label) {
    ad__err(err, AD_ECONFIG, "config", "%s: must not be empty",
            !p->host_id ? "host_id" : "instance_label");
    goto fail;
  }
  if (svc_defaults(p, err))
    goto fail;
  if (p->bearer_token && p->basic_user) {
    ad__err(err, AD_ECONFIG, "config", "bearer_token: not together with basic_user");
    goto fail;
  }
  if ((p->bearer_token || p->basic_user) &&
      !(p->auth = ad__metrics_auth_header(p->basic_user, p->basic_password, p->bearer_token))) {
    ad__err(err, AD_ENOMEM, "config", "no memory");
    goto fail;
  }
  return p;
fail:
  prom_destroy(p);
  return NULL;
}

char *ad__metrics_prom_regex(char *const *ids, size_t n)
{
  size_t cap = 1;
  for (size_t i = 0; i < n; i++)
    cap += strlen(ids[i]) * 4 + 1;
  char *out = malloc(cap), *o = out;
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    if (i)
      *o++ = '|';
    for (const char *s = ids[i]; *s; s++) {
      if (*s == '\\') { /* RE2 \\ , then each \ doubled for the string */
        memcpy(o, "\\\\\\\\", 4);
        o += 4;
      } else if (strchr(".+*?()|[]{}^$", *s)) {
        *o++ = '\\';
        *o++ = '\\';
        *o++ = *s;
      } else if (*s == '"') {
        *o++ = '\\';
        *o++ = '"';
      } else {
        *o++ = *s;
      }
    }
  }
  *o = '\0';
  return out;
}

char *ad__metrics_prom_expand(const char *tmpl, const char *regex)
{
  static const char PH[] = "{instances}";
  size_t cnt = 0, rl = strlen(regex);
  for (const char *s = tmpl; (s = strstr(s, PH)); s += sizeof PH - 1)
    cnt++;
  char *out = malloc(strlen(tmpl) + cnt * rl + 1), *o = out;
  if (!out)
    return NULL;
  for (const char *s = tmpl, *hit; *s; s = hit + sizeof PH - 1) {
    if (!(hit = strstr(s, PH))) {
      strcpy(o, s);
      return out;
    }
    memcpy(o, s, (size_t)(hit - s));
    o += hit - s;
    memcpy(o, regex, rl);
    o += rl;
  }
  *o = '\0';
  return out;
}

/* A query_range answer into `sink`, series matched to ids[] by `label`;
 * `name` (the resource, or the per-service key) follows `what` in errors. */
static int parse_as(const json_t *root, long status, const char *what, const char *name,
                    const char *label, char *const *ids, size_t n, ad__metrics_res_t r,
                    ad__metrics_sink_t *sink, ad_error_t *err)
{
  const char *st = json_string_value(json_object_get(root, "status"));
  if (st && !strcmp(st, "error")) {
    const char *type = json_string_value(json_object_get(root, "errorType"));
    const char *msg = json_string_value(json_object_get(root, "error"));
    return ad__err(err, AD_EIO, "metrics", "%s: %s: HTTP %ld, Prometheus error %s: %.120s", what,
                   name, status, type ? type : "?", msg ? msg : "?");
  }
  if (status < 200 || status > 299)
    return ad__err(err, AD_EIO, "metrics", "%s: %s: HTTP %ld", what, name,
                   status);
  if (!st || strcmp(st, "success"))
    return ad__err(err, AD_EDECODE, "metrics", "%s: %s: no \"status\": \"success\"", what,
                   name);
  json_t *data = json_object_get(root, "data");
  const char *rt = json_string_value(json_object_get(data, "resultType"));
  json_t *res = json_object_get(data, "result");
  if (!rt || strcmp(rt, "matrix") || !json_is_array(res))
    return ad__err(err, AD_EDECODE, "metrics", "%s: %s: data.resultType is not \"matrix\" "
                   "with a data.result array (a range query must give a matrix)",
                   what, name);
  size_t i, j;
  json_t *series, *pt;
  json_array_foreach(res, i, series) {
    const char *inst = json_string_value(json_object_get(json_object_get(series, "metric"), label));
    json_t *values = json_object_get(series, "values");
    if (!json_is_array(values))
      return ad__err(err, AD_EDECODE, "metrics", "%s: %s: data.result[%zu].values missing",
                     what, name, i);
    long h = inst ? ad__metrics_find(ids, n, inst) : -1;
    if (h < 0)
      continue; /* a series for another instance, or without the label */
    json_array_foreach(values, j, pt) {
      double t, v;
      if (json_array_size(pt) != 2 || !json_is_number(json_array_get(pt, 0)) ||
          ad__metrics_json_num(json_array_get(pt, 1), &v))
        return ad__err(err, AD_EDECODE, "metrics",
                       "%s: %s: data.result[%zu].values[%zu]: not [time, \"value\"]", what,
                       name, i, j);
      t = json_number_value(json_array_get(pt, 0));
      if (ad__metrics_sink_add(sink, (size_t)h, r, (int64_t)llround(t * 1000.0), v))
        return ad__err(err, AD_ENOMEM, "metrics", "no memory");
    }
  }
  return 0;
}

int ad__metrics_prom_parse(const json_t *root, long status, const char *what,
                           const char *label, char *const *ids, size_t n, ad__metrics_res_t r,
                           ad__metrics_sink_t *sink, ad_error_t *err)
{
  return parse_as(root, status, what, ad__metrics_res_name(r), label, ids, n, r, sink, err);
}

/* The step: the query's, else max(15 s, window / 500), raised so that no
 * series exceeds Prometheus's 11,000 points. */
static int64_t step_of(const ad__metrics_query_t *q)
{
  int64_t range = q->to_ms - q->from_ms, step = q->step_ms;
  if (!step)
    step = range / 500 > 15000 ? range / 500 : 15000;
  if (range / step > 10000)
    step = range / 10000 + 1;
  return step;
}

/* POST one range query; 0 + *root (caller decrefs) and *status, or <0. */
static int post_range(prom_t *p, const char *promql, const ad__metrics_query_t *q, long *status,
                      json_t **root, ad_error_t *err)
{
  const char *headers[3] = {"Content-Type: application/x-www-form-urlencoded", p->auth, NULL};
  size_t ul = strlen(p->http.url) + 32;
  char *url = malloc(ul), *enc = curl_easy_escape(NULL, promql, 0), *body = NULL;
  size_t bl = (enc ? strlen(enc) : 0) + 128;
  int rc;
  *root = NULL;
  if (!url || !enc || !(body = malloc(bl))) {
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
  } else {
    snprintf(url, ul, "%s/api/v1/query_range", p->http.url);
    snprintf(body, bl, "query=%s&start=%.3f&end=%.3f&step=%.3f", enc, q->from_ms / 1000.0,
             q->to_ms / 1000.0, step_of(q) / 1000.0);
    rc = ad__metrics_http_post(&p->http, "prometheus", url, headers, body, q, status, root, err);
  }
  free(body);
  curl_free(enc);
  free(url);
  return rc;
}

static int prom_query(void *state, const ad__metrics_host_t *hosts, size_t n,
                      const ad__metrics_query_t *q, ad__metrics_sink_t *sink, ad_error_t *err)
{
  prom_t *p = state;
  char **ids = calloc(n, sizeof(char *)), *regex = NULL, what[96];
  int rc = 0;
  snprintf(what, sizeof what, "prometheus at %s", p->http.origin);
  if (!ids)
    return ad__err(err, AD_ENOMEM, "metrics", "no memory");
  for (size_t i = 0; i < n; i++)
    if (!(ids[i] = ad__metrics_host_id(p->host_id, &hosts[i], err))) {
      rc = AD_EINVAL;
      goto done;
    }
  if (!(regex = ad__metrics_prom_regex(ids, n))) {
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
    goto done;
  }
  for (int r = 0; r < AD__RES_COUNT && !rc; r++) {
    if (!(q->resources & (1u << r)))
      continue;
    char *promql = ad__metrics_prom_expand(p->query[r], regex);
    long status;
    json_t *root = NULL;
    if (!promql)
      rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
    else if (!(rc = post_range(p, promql, q, &status, &root, err)))
      rc = ad__metrics_prom_parse(root, status, what, p->label, ids, n, r, sink, err);
    json_decref(root);
    free(promql);
  }
done:
  for (size_t i = 0; i < n; i++)
    free(ids[i]);
  free(ids);
  free(regex);
  return rc;
}

/* ---- per service ------------------------------------------------------------- */

/* Append exprs[lo..hi) as a balanced `or` tree to *o. */
static char *or_tree(char *o, char *const *exprs, char *const *labels, size_t lo, size_t hi)
{
  if (hi - lo == 1) {
    o += sprintf(o, "label_replace((%s), \"" SVC_LABEL "\", \"%s\", \"\", \"\")", exprs[lo],
                 labels[lo]);
    return o;
  }
  size_t mid = lo + (hi - lo) / 2;
  *o++ = '(';
  o = or_tree(o, exprs, labels, lo, mid);
  o += sprintf(o, ") or (");
  o = or_tree(o, exprs, labels, mid, hi);
  *o++ = ')';
  *o = '\0';
  return o;
}

char *ad__metrics_prom_services_query(char *const *exprs, char *const *ids, size_t n)
{
  if (!n)
    return strdup("vector(0)[0:0]"); /* never asked: the interface stops at n == 0 */
  /* the label's value is a PromQL string and label_replace's replacement,
   * where $ starts a group reference: \ and " escaped, $ doubled */
  char **labels = calloc(n, sizeof(char *)), *out = NULL;
  size_t cap = 1;
  for (size_t i = 0; labels && i < n; i++) {
    const char *id = ids[i];
    char *l = labels[i] = malloc(strlen(id) * 2 + 1);
    if (!l)
      goto done;
    for (; *id; id++) {
      if (*id == '\\' || *id == '"')
        *l++ = '\\';
      else if (*id == '$')
        *l++ = '$';
      *l++ = *id;
    }
    *l = '\0';
    cap += strlen(exprs[i]) + strlen(labels[i]) + 64 + 16; /* the leaf, its share of ") or (" */
  }
  if (labels && (out = malloc(cap)))
    or_tree(out, exprs, labels, 0, n);
done:
  for (size_t i = 0; labels && i < n; i++)
    free(labels[i]);
  free(labels);
  return out;
}

int ad__metrics_prom_parse_services(const json_t *root, long status, const char *what,
                                    const char *key, char *const *ids, size_t n,
                                    ad__metrics_res_t r, ad__metrics_sink_t *sink,
                                    ad_error_t *err)
{
  unsigned char *seen = calloc(n + 1, 1);
  if (!seen)
    return ad__err(err, AD_ENOMEM, "metrics", "no memory");
  size_t i;
  json_t *series;
  json_array_foreach(json_object_get(json_object_get(root, "data"), "result"), i, series) {
    const char *id =
        json_string_value(json_object_get(json_object_get(series, "metric"), SVC_LABEL));
    long k = id ? ad__metrics_find(ids, n, id) : -1;
    if (k >= 0 && seen[k]++) {
      free(seen);
      return ad__err(err, AD_EDECODE, "metrics",
                     "%s: %s: more than one series for service %.60s (the template must give "
                     "one: aggregate it, e.g. sum(...))", what, key, id);
    }
  }
  free(seen);
  return parse_as(root, status, what, key, SVC_LABEL, ids, n, r, sink, err);
}

/* Each service's filled-in template of resource r, into exprs[]. */
static int svc_exprs(prom_t *p, const ad__metrics_service_t *svcs, size_t n, int r,
                     char **exprs, ad_error_t *err)
{
  int need_host = strstr(p->svc_query[r], "{host}") != NULL;
  for (size_t i = 0; i < n; i++) {
    char *host = need_host ? ad__metrics_host_id(p->svc_host_id, &svcs[i].host, err) : NULL;
    if (need_host && !host) {
      char pre[200];
      snprintf(pre, sizeof pre, "service %.60s: service_host_id: ", svcs[i].key);
      ad__err_prefix(err, pre);
      return AD_EINVAL;
    }
    exprs[i] = ad__metrics_svc_expand(SVC_KEY[r], p->svc_query[r], &svcs[i], host,
                                      AD__TMPL_PROMQL, err);
    free(host);
    if (!exprs[i])
      return err ? err->code : AD_EINVAL;
  }
  return 0;
}

static int prom_query_services(void *state, const ad__metrics_service_t *svcs, size_t n,
                               const ad__metrics_query_t *q, ad__metrics_sink_t *sink,
                               ad_error_t *err)
{
  prom_t *p = state;
  char **ids = calloc(n + 1, sizeof(char *)), **exprs = calloc(n + 1, sizeof(char *)), what[96];
  int rc = 0;
  snprintf(what, sizeof what, "prometheus at %s", p->http.origin);
  if (!ids || !exprs)
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
  for (size_t i = 0; !rc && i < n; i++)
    ids[i] = (char *)svcs[i].key;
  for (int r = 0; r <= AD__RES_MEM && !rc; r++) {
    if (!(q->resources & (1u << r)))
      continue;
    char *promql = NULL;
    long status;
    json_t *root = NULL;
    if (!(rc = svc_exprs(p, svcs, n, r, exprs, err)) &&
        !(promql = ad__metrics_prom_services_query(exprs, ids, n)))
      rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
    if (!rc && !(rc = post_range(p, promql, q, &status, &root, err)))
      rc = ad__metrics_prom_parse_services(root, status, what, SVC_KEY[r], ids, n, r, sink, err);
    json_decref(root);
    free(promql);
    for (size_t i = 0; i < n; i++) {
      free(exprs[i]);
      exprs[i] = NULL;
    }
  }
  free(exprs);
  free(ids);
  return rc;
}

const ad__metrics_backend_t ad__metrics_prometheus = {"prometheus", prom_create, prom_query,
                                                      prom_destroy, prom_query_services};
