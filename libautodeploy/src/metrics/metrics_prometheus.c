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
} prom_t;

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

int ad__metrics_prom_parse(const json_t *root, long status, const char *what,
                           const char *label, char *const *ids, size_t n, ad__metrics_res_t r,
                           ad__metrics_sink_t *sink, ad_error_t *err)
{
  const char *st = json_string_value(json_object_get(root, "status"));
  if (st && !strcmp(st, "error")) {
    const char *type = json_string_value(json_object_get(root, "errorType"));
    const char *msg = json_string_value(json_object_get(root, "error"));
    return ad__err(err, AD_EIO, "metrics", "%s: %s: HTTP %ld, Prometheus error %s: %.120s", what,
                   ad__metrics_res_name(r), status, type ? type : "?", msg ? msg : "?");
  }
  if (status < 200 || status > 299)
    return ad__err(err, AD_EIO, "metrics", "%s: %s: HTTP %ld", what, ad__metrics_res_name(r),
                   status);
  if (!st || strcmp(st, "success"))
    return ad__err(err, AD_EDECODE, "metrics", "%s: %s: no \"status\": \"success\"", what,
                   ad__metrics_res_name(r));
  json_t *data = json_object_get(root, "data");
  const char *rt = json_string_value(json_object_get(data, "resultType"));
  json_t *res = json_object_get(data, "result");
  if (!rt || strcmp(rt, "matrix") || !json_is_array(res))
    return ad__err(err, AD_EDECODE, "metrics", "%s: %s: data.resultType is not \"matrix\" "
                   "with a data.result array (a range query must give a matrix)",
                   what, ad__metrics_res_name(r));
  size_t i, j;
  json_t *series, *pt;
  json_array_foreach(res, i, series) {
    const char *inst = json_string_value(json_object_get(json_object_get(series, "metric"), label));
    json_t *values = json_object_get(series, "values");
    if (!json_is_array(values))
      return ad__err(err, AD_EDECODE, "metrics", "%s: %s: data.result[%zu].values missing",
                     what, ad__metrics_res_name(r), i);
    long h = inst ? ad__metrics_find(ids, n, inst) : -1;
    if (h < 0)
      continue; /* a series for another instance, or without the label */
    json_array_foreach(values, j, pt) {
      double t, v;
      if (json_array_size(pt) != 2 || !json_is_number(json_array_get(pt, 0)) ||
          ad__metrics_json_num(json_array_get(pt, 1), &v))
        return ad__err(err, AD_EDECODE, "metrics",
                       "%s: %s: data.result[%zu].values[%zu]: not [time, \"value\"]", what,
                       ad__metrics_res_name(r), i, j);
      t = json_number_value(json_array_get(pt, 0));
      if (ad__metrics_sink_add(sink, (size_t)h, r, (int64_t)llround(t * 1000.0), v))
        return ad__err(err, AD_ENOMEM, "metrics", "no memory");
    }
  }
  return 0;
}

static int prom_query(void *state, const ad__metrics_host_t *hosts, size_t n,
                      const ad__metrics_query_t *q, ad__metrics_sink_t *sink, ad_error_t *err)
{
  prom_t *p = state;
  char **ids = calloc(n, sizeof(char *)), *regex = NULL, *url = NULL, what[96];
  int rc = 0;
  snprintf(what, sizeof what, "prometheus at %s", p->http.origin);
  if (!ids)
    return ad__err(err, AD_ENOMEM, "metrics", "no memory");
  for (size_t i = 0; i < n; i++)
    if (!(ids[i] = ad__metrics_host_id(p->host_id, &hosts[i], err))) {
      rc = AD_EINVAL;
      goto done;
    }
  regex = ad__metrics_prom_regex(ids, n);
  size_t ul = strlen(p->http.url) + 32;
  url = malloc(ul);
  if (!regex || !url) {
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
    goto done;
  }
  snprintf(url, ul, "%s/api/v1/query_range", p->http.url);
  /* Prometheus refuses more than 11,000 points per series. */
  int64_t range = q->to_ms - q->from_ms, step = q->step_ms;
  if (!step)
    step = range / 500 > 15000 ? range / 500 : 15000;
  if (range / step > 10000)
    step = range / 10000 + 1;
  const char *headers[3] = {"Content-Type: application/x-www-form-urlencoded", p->auth, NULL};
  for (int r = 0; r < AD__RES_COUNT && !rc; r++) {
    if (!(q->resources & (1u << r)))
      continue;
    char *promql = ad__metrics_prom_expand(p->query[r], regex);
    char *enc = promql ? curl_easy_escape(NULL, promql, 0) : NULL;
    size_t bl = (enc ? strlen(enc) : 0) + 128;
    char *body = enc ? malloc(bl) : NULL;
    if (!body) {
      rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
    } else {
      snprintf(body, bl, "query=%s&start=%.3f&end=%.3f&step=%.3f", enc, q->from_ms / 1000.0,
               q->to_ms / 1000.0, step / 1000.0);
      long status;
      json_t *root;
      rc = ad__metrics_http_post(&p->http, "prometheus", url, headers, body, q, &status,
                                 &root, err);
      if (!rc)
        rc = ad__metrics_prom_parse(root, status, what, p->label, ids, n, r, sink, err);
      json_decref(root);
    }
    free(body);
    curl_free(enc);
    free(promql);
  }
done:
  for (size_t i = 0; i < n; i++)
    free(ids[i]);
  free(ids);
  free(regex);
  free(url);
  return rc;
}

const ad__metrics_backend_t ad__metrics_prometheus = {"prometheus", prom_create, prom_query,
                                                      prom_destroy};
