/*
 * metrics_openfalcon.c - Open-Falcon's graph history, one request for all
 * hosts and counters. Two API generations (config "api"):
 *   "query" (the query module, :9966):  POST <url>/graph/history
 *     {"start": s, "end": s, "cf": "AVERAGE",
 *      "endpoint_counters": [{"endpoint": "host1", "counter": "load.1min"}, ...]}
 *   "plus" (falcon-plus api, :8080):    POST <url>/api/v1/graph/history
 *     {"hostnames": [..], "counters": [..], "consol_fun": "AVERAGE",
 *      "start_time": s, "end_time": s, "step": 60}
 *     with "Apitoken: {"name": .., "sig": ..}"
 * Both answer a list of
 *   {"endpoint", "counter", "dstype", "step", "Values": [{"timestamp", "value"}]}
 * where "Values" may be null and a value null (an RRD gap). The agent's
 * counters: cpu.busy (% of all CPUs), mem.memused (bytes, as the agent
 * reads /proc/meminfo in kB x 1024), df.bytes.used.percent tagged
 * "fstype=..,mount=.." (tags sorted by name: the counter is
 * "df.bytes.used.percent/fstype=ext4,mount=/"), load.1min.
 *
 * Per service, the same one request: a counter per service and resource
 * (counter_service_cpu, counter_service_mem: {service}, {host}, {unit}
 * filled in) on the endpoint of the service's host. falcon-agent has no
 * per-process cpu or memory; the defaults name what a plugin pushes:
 * proc.cpu/service=<id> (% of one core, as top shows it) and
 * proc.mem/service=<id> (resident bytes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_private.h"
#include "metrics/metrics_private.h"

static const char *const API[] = {"query", "plus", NULL};
static const char *const CF[] = {"AVERAGE", "MAX", "MIN", NULL};

typedef struct {
  ad__metrics_http_conf_t http;
  int api, cf;
  char *host_id, *token_name, *token_sig;
  char *counter[AD__RES_COUNT];
  char *apitoken; /* the "Apitoken: ..." header, or NULL */
  char *svc_counter[AD__RES_MEM + 1]; /* counter_service_cpu, counter_service_mem */
} falcon_t;

static const char *const SVC_KEY[AD__RES_MEM + 1] = {"counter_service_cpu",
                                                    "counter_service_mem"};

static const ad__config_key_t FALCON_KEYS[] = {
    AD__METRICS_HTTP_KEYS(falcon_t, http),
    {"api", AD_CT_ENUM, offsetof(falcon_t, api), 0, 0, "query", API},
    {"cf", AD_CT_ENUM, offsetof(falcon_t, cf), 0, 0, "AVERAGE", CF},
    {"host_id", AD_CT_STR, offsetof(falcon_t, host_id), 0, 0, "{minion}", NULL},
    {"api_token_name", AD_CT_STR, offsetof(falcon_t, token_name), 0, 0, "", NULL},
    {"api_token_sig", AD_CT_SECRET, offsetof(falcon_t, token_sig), 0, 0, "", NULL},
    {"counter_cpu", AD_CT_STR, offsetof(falcon_t, counter[AD__RES_CPU]), 0, 0, "cpu.busy", NULL},
    {"counter_mem", AD_CT_STR, offsetof(falcon_t, counter[AD__RES_MEM]), 0, 0, "mem.memused",
     NULL},
    {"counter_disk", AD_CT_STR, offsetof(falcon_t, counter[AD__RES_DISK]), 0, 0,
     "df.bytes.used.percent/fstype=ext4,mount=/", NULL},
    {"counter_load1", AD_CT_STR, offsetof(falcon_t, counter[AD__RES_LOAD1]), 0, 0, "load.1min",
     NULL},
    {"counter_service_cpu", AD_CT_STR, offsetof(falcon_t, svc_counter[AD__RES_CPU]), 0, 0,
     "proc.cpu/service={service}", NULL},
    {"counter_service_mem", AD_CT_STR, offsetof(falcon_t, svc_counter[AD__RES_MEM]), 0, 0,
     "proc.mem/service={service}", NULL},
    {NULL, 0, 0, 0, 0, NULL, NULL}};

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__metrics_openfalcon_keys(void) { return FALCON_KEYS; }

static void falcon_destroy(void *state)
{
  falcon_t *f = state;
  if (!f)
    return;
  ad__metrics_http_conf_free(&f->http);
  ad__config_free(FALCON_KEYS, f);
  free(f->apitoken);
  free(f);
}

static void *falcon_create(const json_t *cfg, ad_error_t *err)
{
  falcon_t *f = calloc(1, sizeof(*f));
  if (!f) {
    ad__err(err, AD_ENOMEM, "config", "no memory");
    return NULL;
  }
  if (ad__config_load(FALCON_KEYS, f, cfg, err) || ad__metrics_http_check(&f->http, err))
    goto fail;
  for (int r = 0; r < AD__RES_COUNT; r++)
    if (!f->counter[r]) {
      ad__err(err, AD_ECONFIG, "config", "counter_%s: must not be empty",
              ad__metrics_res_name(r));
      goto fail;
    }
  if (!f->host_id) {
    ad__err(err, AD_ECONFIG, "config", "host_id: must not be empty");
    goto fail;
  }
  for (int r = 0; r <= AD__RES_MEM; r++)
    if (ad__metrics_svc_template_check(SVC_KEY[r], f->svc_counter[r], err))
      goto fail;
  if (!f->token_name != !f->token_sig) {
    ad__err(err, AD_ECONFIG, "config", "%s: needed with %s",
            f->token_name ? "api_token_sig" : "api_token_name",
            f->token_name ? "api_token_name" : "api_token_sig");
    goto fail;
  }
  if (f->token_name) {
    json_t *t = json_pack("{s:s,s:s}", "name", f->token_name, "sig", f->token_sig);
    char *s = t ? json_dumps(t, JSON_COMPACT) : NULL;
    json_decref(t);
    size_t n = s ? strlen(s) + 16 : 0;
    if (!s || strpbrk(s, "\r\n") || !(f->apitoken = malloc(n))) {
      free(s);
      ad__err(err, AD_ECONFIG, "config", "api_token_name: not usable in a header");
      goto fail;
    }
    snprintf(f->apitoken, n, "Apitoken: %s", s);
    free(s);
  }
  return f;
fail:
  falcon_destroy(f);
  return NULL;
}

/* graph/history's answer as a whole: a 2xx without an "error", and a list.
 * `call` names the request in the error (the host or the service query). */
static int check_answer(const json_t *root, long status, const char *what, const char *call,
                        ad_error_t *err)
{
  const char *emsg = json_string_value(json_object_get(root, "error"));
  if (emsg || status < 200 || status > 299)
    return ad__err(err, AD_EIO, "metrics", "%s: %s: HTTP %ld: %.160s", what, call, status,
                   emsg ? emsg : "(no error message)");
  if (!json_is_array(root))
    return ad__err(err, AD_EDECODE, "metrics", "%s: graph/history: answer is not a list", what);
  return 0;
}

int ad__metrics_falcon_parse(const json_t *root, long status, const char *what,
                             char *const *ids, size_t n, char *const *counters,
                             const ad__metrics_host_t *hosts, ad__metrics_sink_t *sink,
                             ad_error_t *err)
{
  int rc = check_answer(root, status, what, "graph/history", err);
  if (rc)
    return rc;
  size_t i, j;
  json_t *item, *pt;
  json_array_foreach(root, i, item) {
    const char *ep = json_string_value(json_object_get(item, "endpoint"));
    const char *ctr = json_string_value(json_object_get(item, "counter"));
    json_t *values = json_object_get(item, "Values");
    if (!ep || !ctr)
      return ad__err(err, AD_EDECODE, "metrics", "%s: graph/history: [%zu] lacks endpoint or "
                     "counter", what, i);
    if (values && !json_is_null(values) && !json_is_array(values))
      return ad__err(err, AD_EDECODE, "metrics", "%s: graph/history: [%zu].Values is not a list",
                     what, i);
    long h = ad__metrics_find(ids, n, ep);
    int r = -1;
    for (int k = 0; k < AD__RES_COUNT; k++)
      if (counters[k] && !strcmp(counters[k], ctr))
        r = k;
    if (h < 0 || r < 0 || (r == AD__RES_CPU && hosts[h].cores <= 0))
      continue;
    json_array_foreach(values, j, pt) {
      json_t *ts = json_object_get(pt, "timestamp"), *v = json_object_get(pt, "value");
      if (!json_is_integer(ts) || (!json_is_number(v) && !json_is_null(v)))
        return ad__err(err, AD_EDECODE, "metrics",
                       "%s: graph/history: [%zu].Values[%zu]: not {timestamp, value}", what, i, j);
      if (json_is_null(v))
        continue; /* no data in that RRD slot */
      double d = json_number_value(v);
      d = r == AD__RES_CPU ? d / 100.0 * hosts[h].cores
          : r == AD__RES_MEM ? d / 1048576.0
          : r == AD__RES_DISK ? d / 100.0 : d;
      if (ad__metrics_sink_add(sink, (size_t)h, (ad__metrics_res_t)r,
                               (int64_t)json_integer_value(ts) * 1000, d))
        return ad__err(err, AD_ENOMEM, "metrics", "no memory");
    }
  }
  return 0;
}

/* The request body for endpoints eps[i] x counters ctrs[i] (query API:
 * the pairs; plus API: the distinct endpoints and counters, which it
 * crosses). Caller decrefs; NULL on no memory. */
static json_t *history_req(const falcon_t *f, char *const *eps, char *const *ctrs, size_t n,
                           const ad__metrics_query_t *q)
{
  json_int_t start = q->from_ms / 1000, end = (q->to_ms + 999) / 1000;
  if (f->api == 0) {
    json_t *ec = json_array();
    for (size_t i = 0; ec && i < n; i++)
      json_array_append_new(ec, json_pack("{s:s,s:s}", "endpoint", eps[i], "counter", ctrs[i]));
    return json_pack("{s:I,s:I,s:s,s:o}", "start", start, "end", end, "cf", CF[f->cf],
                     "endpoint_counters", ec);
  }
  json_t *hn = json_array(), *cn = json_array();
  for (size_t i = 0; hn && cn && i < n; i++) {
    if (ad__metrics_find(eps, i, eps[i]) < 0)
      json_array_append_new(hn, json_string(eps[i]));
    if (ad__metrics_find(ctrs, i, ctrs[i]) < 0)
      json_array_append_new(cn, json_string(ctrs[i]));
  }
  return json_pack("{s:o,s:o,s:s,s:I,s:I,s:I}", "hostnames", hn, "counters", cn, "consol_fun",
                   CF[f->cf], "start_time", start, "end_time", end, "step",
                   (json_int_t)(q->step_ms >= 1000 ? q->step_ms / 1000 : 60));
}

/* POST the history request for pairs (eps[i], ctrs[i]); 0 + *root, or <0. */
static int post_history(falcon_t *f, char *const *eps, char *const *ctrs, size_t n,
                        const ad__metrics_query_t *q, long *status, json_t **root,
                        ad_error_t *err)
{
  json_t *req = history_req(f, eps, ctrs, n, q);
  char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  size_t ul = strlen(f->http.url) + 32;
  char *url = malloc(ul);
  int rc;
  *root = NULL;
  if (!body || !url) {
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
  } else {
    snprintf(url, ul, "%s%s", f->http.url, f->api == 0 ? "/graph/history" : "/api/v1/graph/history");
    const char *headers[2] = {f->apitoken, NULL};
    rc = ad__metrics_http_post(&f->http, "openfalcon", url, headers, body, q, status, root, err);
  }
  json_decref(req);
  free(body);
  free(url);
  return rc;
}

static int falcon_query(void *state, const ad__metrics_host_t *hosts, size_t n,
                        const ad__metrics_query_t *q, ad__metrics_sink_t *sink, ad_error_t *err)
{
  falcon_t *f = state;
  char **ids = calloc(n, sizeof(char *)), *counters[AD__RES_COUNT] = {0}, what[96];
  size_t np = 0;
  char **eps = calloc(n * AD__RES_COUNT + 1, sizeof(char *));
  char **ctrs = calloc(n * AD__RES_COUNT + 1, sizeof(char *));
  int rc = 0;
  json_t *root = NULL;
  snprintf(what, sizeof what, "openfalcon at %s", f->http.origin);
  if (!ids || !eps || !ctrs)
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
  for (size_t i = 0; i < n && !rc; i++)
    if (!(ids[i] = ad__metrics_host_id(f->host_id, &hosts[i], err)))
      rc = AD_EINVAL;
  for (int r = 0; r < AD__RES_COUNT; r++)
    if (q->resources & (1u << r))
      counters[r] = f->counter[r];
  for (size_t i = 0; !rc && i < n; i++)
    for (int r = 0; r < AD__RES_COUNT; r++)
      if (counters[r]) {
        eps[np] = ids[i];
        ctrs[np++] = counters[r];
      }
  long status;
  if (!rc && !(rc = post_history(f, eps, ctrs, np, q, &status, &root, err)))
    rc = ad__metrics_falcon_parse(root, status, what, ids, n, counters, hosts, sink, err);
  json_decref(root);
  for (size_t i = 0; ids && i < n; i++)
    free(ids[i]);
  free(ids);
  free(eps);
  free(ctrs);
  return rc;
}

/* ---- per service ------------------------------------------------------------- */

/* A history answer to the per-service request: item (endpoint, counter)
 * to every pair k asked with them; pair k is service k / 2, resource k % 2. */
static int parse_services(const json_t *root, long status, const char *what, char *const *eps,
                          char *const *ctrs, size_t np, ad__metrics_sink_t *sink, ad_error_t *err)
{
  int rc = check_answer(root, status, what, "graph/history (counter_service_*)", err);
  if (rc)
    return rc;
  size_t i, j;
  json_t *item, *pt;
  json_array_foreach(root, i, item) {
    const char *ep = json_string_value(json_object_get(item, "endpoint"));
    const char *ctr = json_string_value(json_object_get(item, "counter"));
    json_t *values = json_object_get(item, "Values");
    if (!ep || !ctr || (values && !json_is_null(values) && !json_is_array(values)))
      return ad__err(err, AD_EDECODE, "metrics", "%s: graph/history: [%zu] lacks endpoint or "
                     "counter, or its Values is not a list", what, i);
    for (size_t k = 0; k < np; k++) {
      if (!eps[k] || strcmp(eps[k], ep) || strcmp(ctrs[k], ctr))
        continue;
      int r = (int)(k % 2);
      json_array_foreach(values, j, pt) {
        json_t *ts = json_object_get(pt, "timestamp"), *v = json_object_get(pt, "value");
        if (!json_is_integer(ts) || (!json_is_number(v) && !json_is_null(v)))
          return ad__err(err, AD_EDECODE, "metrics", "%s: graph/history: [%zu].Values[%zu] of "
                         "%s: not {timestamp, value}", what, i, j, SVC_KEY[r]);
        if (json_is_null(v))
          continue; /* an RRD gap */
        /* cpu: % of one core -> cores; mem: bytes -> MiB */
        double d = json_number_value(v) / (r == AD__RES_CPU ? 100.0 : 1048576.0);
        if (ad__metrics_sink_add(sink, k / 2, (ad__metrics_res_t)r,
                                 (int64_t)json_integer_value(ts) * 1000, d))
          return ad__err(err, AD_ENOMEM, "metrics", "no memory");
      }
    }
  }
  return 0;
}

static int falcon_query_services(void *state, const ad__metrics_service_t *svcs, size_t n,
                                 const ad__metrics_query_t *q, ad__metrics_sink_t *sink,
                                 ad_error_t *err)
{
  falcon_t *f = state;
  /* pair k = (service k / 2, resource k % 2); a resource not asked is NULL */
  char **eps = calloc(2 * n + 1, sizeof(char *)), **ctrs = calloc(2 * n + 1, sizeof(char *));
  char **pe = calloc(2 * n + 1, sizeof(char *)), **pc = calloc(2 * n + 1, sizeof(char *));
  char what[96];
  size_t np = 0;
  int rc = 0;
  json_t *root = NULL;
  snprintf(what, sizeof what, "openfalcon at %s", f->http.origin);
  if (!eps || !ctrs || !pe || !pc)
    rc = ad__err(err, AD_ENOMEM, "metrics", "no memory");
  for (size_t i = 0; !rc && i < n; i++) {
    char *ep = ad__metrics_host_id(f->host_id, &svcs[i].host, err);
    if (!ep) {
      char pre[200];
      snprintf(pre, sizeof pre, "service %.60s: host_id: ", svcs[i].key);
      ad__err_prefix(err, pre);
      rc = AD_EINVAL;
      break;
    }
    for (int r = 0; r <= AD__RES_MEM && !rc; r++) {
      if (!(q->resources & (1u << r)))
        continue;
      if (!(ctrs[2 * i + r] = ad__metrics_svc_expand(SVC_KEY[r], f->svc_counter[r], &svcs[i], ep,
                                                     AD__TMPL_FALCON, err)) ||
          !(eps[2 * i + r] = strdup(ep)))
        rc = err && err->code ? err->code : ad__err(err, AD_ENOMEM, "metrics", "no memory");
      else {
        pe[np] = eps[2 * i + r];
        pc[np++] = ctrs[2 * i + r];
      }
    }
    free(ep);
  }
  long status;
  if (!rc && !(rc = post_history(f, pe, pc, np, q, &status, &root, err)))
    rc = parse_services(root, status, what, eps, ctrs, 2 * n, sink, err);
  json_decref(root);
  for (size_t k = 0; eps && ctrs && k < 2 * n; k++) {
    free(eps[k]);
    free(ctrs[k]);
  }
  free(eps);
  free(ctrs);
  free(pe);
  free(pc);
  return rc;
}

const ad__metrics_backend_t ad__metrics_openfalcon = {"openfalcon", falcon_create, falcon_query,
                                                      falcon_destroy, falcon_query_services};
