/* metrics_private.h - the metrics backend interface (redis's ae.c picking
 * ae_epoll.c): each backend is one struct of function pointers in its own
 * file. metrics.c owns the lifecycle, the sample buffers, the statistics
 * and the result; a backend parses its own config table, asks its server,
 * and hands each sample to the sink. Helpers the HTTP backends share live
 * in metrics_http.c. */
#ifndef AD_METRICS_PRIVATE_H
#define AD_METRICS_PRIVATE_H

#include <jansson.h>
#include <stddef.h>

#include "core/config.h"
#include "core/http.h"
#include "metrics/metrics.h"

typedef struct ad__metrics_sink ad__metrics_sink_t;

/* Record one sample of resource `r` for hosts[host]. NaN and infinities are
 * dropped (Prometheus "NaN", RRD gaps). 0 or AD_ENOMEM. */
int ad__metrics_sink_add(ad__metrics_sink_t *s, size_t host, ad__metrics_res_t r,
                         int64_t at_ms, double v);

typedef struct {
  const char *name;
  /* Parse the whole config object against the backend's table. NULL + *err
   * with a message "<key>: <reason>"; metrics.c prefixes the backend. */
  void *(*create)(const json_t *cfg, ad_error_t *err);
  /* Ask the server for resources q->resources of all `n` hosts, samples to
   * `sink`. Hosts the server does not know just get no samples. 0 or <0 +
   * *err (message already naming the backend and origin). */
  int (*query)(void *state, const ad__metrics_host_t *hosts, size_t n,
               const ad__metrics_query_t *q, ad__metrics_sink_t *sink, ad_error_t *err);
  void (*destroy)(void *state);
  /* The per-service query (metrics.h): cpu and mem of all `n` services,
   * samples to `sink` row i for svcs[i], one request per resource at most.
   * NULL: the backend has none. */
  int (*query_services)(void *state, const ad__metrics_service_t *svcs, size_t n,
                        const ad__metrics_query_t *q, ad__metrics_sink_t *sink,
                        ad_error_t *err);
} ad__metrics_backend_t;

extern const ad__metrics_backend_t ad__metrics_salt;
extern const ad__metrics_backend_t ad__metrics_prometheus;
extern const ad__metrics_backend_t ad__metrics_zabbix;
extern const ad__metrics_backend_t ad__metrics_openfalcon;

/* m's backend state when m uses backend `b`, else NULL. */
void *ad__metrics_state(ad__metrics_t *m, const ad__metrics_backend_t *b);

/* Sort `pts` by time and fill *s (series not set). Pure; exposed for the
 * unit tests. n = 0 gives a zeroed summary. */
void ad__metrics_summarize(ad__metrics_point_t *pts, size_t n, ad__metrics_summary_t *s);

/* Expand an identifier template: {minion}, {ip}, {key}, "{{" for "{".
 * Caller frees. NULL + AD_EINVAL naming the host key and the placeholder
 * (unknown, or the host has no such value). */
char *ad__metrics_host_id(const char *tmpl, const ad__metrics_host_t *h, ad_error_t *err);

/* ---- per-service templates ------------------------------------------------ */

/* Where a filled-in value goes: each backend's syntax escapes or refuses
 * what would break it. PROMQL: inside a double-quoted string (\ and " are
 * escaped); ZABBIX: an item key parameter (" , [ ] refused); FALCON: a
 * counter's tag value (, = and spaces refused). */
typedef enum { AD__TMPL_PROMQL, AD__TMPL_ZABBIX, AD__TMPL_FALCON } ad__tmpl_syntax_t;

/* A per-service template of config key `key`, checked at creation: its
 * placeholders ({name}, name in [a-z_]) are only {service}, {host} and
 * {unit}, and it has {service} or {unit} (else every service would get the
 * same series). 0 or AD_ECONFIG "<key>: ...". */
int ad__metrics_svc_template_check(const char *key, const char *tmpl, ad_error_t *err);

/* `tmpl` (of key `key`) filled in for `s`: {service} = s->key, {unit} =
 * s->unit, {host} = host_id (the backend's id of s's host; may be NULL
 * when the template has no {host}), each escaped for `syn`. Caller frees.
 * NULL + AD_EINVAL naming the service, the placeholder and the key (no
 * value, or a value the syntax cannot carry), or AD_ENOMEM. */
char *ad__metrics_svc_expand(const char *key, const char *tmpl, const ad__metrics_service_t *s,
                             const char *host_id, ad__tmpl_syntax_t syn, ad_error_t *err);

/* A number from a JSON number or a numeric string (Prometheus and Zabbix
 * send strings; "NaN"/"+Inf" parse as such). 0, or -1 when it is neither. */
int ad__metrics_json_num(const json_t *v, double *out);

/* Index of `id` in ids[0..n), or -1. */
long ad__metrics_find(char *const *ids, size_t n, const char *id);

/* ---- what the HTTP backends share (metrics_http.c) ---------------------- */

typedef struct {
  char *url;              /* base URL */
  int timeout_ms;         /* per request */
  int connect_timeout_ms;
  char *ca_file;
  int insecure;           /* insecure_skip_verify */
  int max_response_mb;    /* a larger answer is an error, not parsed */
  char *origin;           /* scheme://host:port of url, safe to log (not a key) */
} ad__metrics_http_conf_t;

#define AD__METRICS_HTTP_KEYS(T, f)                                                   \
  {"url", AD_CT_STR, offsetof(T, f.url), 0, 0, "", NULL},                             \
  {"timeout_ms", AD_CT_INT, offsetof(T, f.timeout_ms), 100, 600000, "10000", NULL},   \
  {"connect_timeout_ms", AD_CT_INT, offsetof(T, f.connect_timeout_ms), 100, 600000,   \
   "3000", NULL},                                                                     \
  {"ca_file", AD_CT_STR, offsetof(T, f.ca_file), 0, 0, "", NULL},                     \
  {"insecure_skip_verify", AD_CT_BOOL, offsetof(T, f.insecure), 0, 1, "false", NULL}, \
  {"max_response_mb", AD_CT_INT, offsetof(T, f.max_response_mb), 1, 4096, "64", NULL}

/* After ad__config_load: url must be set and http(s); fills c->origin.
 * 0 or AD_ECONFIG ("url: ..."). */
int ad__metrics_http_check(ad__metrics_http_conf_t *c, ad_error_t *err);
void ad__metrics_http_conf_free(ad__metrics_http_conf_t *c);

/* POST `body` to `url` (headers as ad__http_post_json). Transport errors,
 * an oversized answer, and a body that is not JSON are errors ("<backend>
 * at <origin>: ..."; a non-JSON error page is quoted, 120 bytes, one line).
 * Else 0 with *status and *json (caller decrefs): the caller judges the
 * status, since Prometheus explains its 4xx/5xx in a JSON body. */
int ad__metrics_http_post(const ad__metrics_http_conf_t *c, const char *backend,
                          const char *url, const char *const *headers, const char *body,
                          const ad__metrics_query_t *q, long *status, json_t **json,
                          ad_error_t *err);

/* Authorization header for basic auth ("Authorization: Basic ...") or a
 * bearer token; NULL when neither is set (and *err untouched) or on no
 * memory. Caller frees. */
char *ad__metrics_auth_header(const char *user, const char *password, const char *token);

/* ---- backend internals the unit tests reach ------------------------------ */

/* Prometheus: the anchored alternation of `ids` as RE2, escaped for a
 * PromQL double-quoted string; {instances} in `tmpl` replaced by it. Both
 * caller-frees, NULL on no memory. */
char *ad__metrics_prom_regex(char *const *ids, size_t n);
char *ad__metrics_prom_expand(const char *tmpl, const char *regex);
/* A query_range answer (HTTP `status`) into `sink`, series matched to
 * ids[] by the label `label`. `what` prefixes errors ("prometheus at ..."). */
int ad__metrics_prom_parse(const json_t *root, long status, const char *what,
                           const char *label, char *const *ids, size_t n, ad__metrics_res_t r,
                           ad__metrics_sink_t *sink, ad_error_t *err);

/* The per-service query's PromQL for one resource: each service's filled-in
 * template, labelled autodeploy_service="<id>" by label_replace, joined
 * with `or` as a balanced tree (depth log2 n, so Prometheus's cost stays
 * n log n). exprs[i] is svcs[i]'s filled-in template. Caller frees. */
char *ad__metrics_prom_services_query(char *const *exprs, char *const *ids, size_t n);
/* A query_range answer to the per-service query into `sink` (row i for
 * ids[i], by the autodeploy_service label). More than one series for a
 * service is AD_EDECODE naming `key` (the template must aggregate). */
int ad__metrics_prom_parse_services(const json_t *root, long status, const char *what,
                                    const char *key, char *const *ids, size_t n,
                                    ad__metrics_res_t r, ad__metrics_sink_t *sink,
                                    ad_error_t *err);

/* Zabbix: the "result" of a JSON-RPC answer (borrowed from root), or NULL
 * + *err carrying error.message and error.data. */
const json_t *ad__metrics_zbx_result(const json_t *root, long status, const char *what,
                                     const char *method, ad_error_t *err);

/* Open-Falcon: a /graph/history answer into `sink`. counters[r] (NULL when
 * not asked) is matched against each item's "counter", ids[] against its
 * "endpoint"; scale[r] multiplies values (NULL: 1), per host for cpu. */
int ad__metrics_falcon_parse(const json_t *root, long status, const char *what,
                             char *const *ids, size_t n, char *const *counters,
                             const ad__metrics_host_t *hosts, ad__metrics_sink_t *sink,
                             ad_error_t *err);

/* A sink for tests: n hosts; ad__metrics_sink_points reads one buffer. */
ad__metrics_sink_t *ad__metrics_sink_new(size_t n_hosts);
void ad__metrics_sink_free(ad__metrics_sink_t *s);
const ad__metrics_point_t *ad__metrics_sink_points(const ad__metrics_sink_t *s, size_t host,
                                                   ad__metrics_res_t r, size_t *n);

/* The key tables (NULL-terminated, static), for the configuration reference
 * (engine/config_keys.c). */
const ad__config_key_t *ad__metrics_prometheus_keys(void);
const ad__config_key_t *ad__metrics_zabbix_keys(void);
const ad__config_key_t *ad__metrics_openfalcon_keys(void);
const ad__config_key_t *ad__metrics_salt_keys(void);

#endif
