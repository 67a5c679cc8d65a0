/* serve.h - the engine's HTTP server (GNU libmicrohttpd): the read API
 * (/api/v1), /metrics, the dashboard, and DingTalk's event push
 * (/callbacks/dingtalk, when configured). Off unless the engine entry has an
 * `http` object. It runs on libmicrohttpd's own polling thread, reads
 * MongoDB through store/ and the engine's counters through a callback, so a
 * slow or stalled client holds only its own connection (bounded in number,
 * size and time), never the bus, the workers or the cycle.
 *
 * serve/ sits below engine/ (check_api.py LAYERS): what it needs from the
 * engine comes in ad__serve_env_t, as callbacks. */
#ifndef AD_SERVE_H
#define AD_SERVE_H

#include <jansson.h>
#include <stddef.h>

#include "autodeploy/common.h"
#include "core/config.h"
#include "fleet/fleet.h"
#include "registry/registry.h"
#include "store/store.h"
#include "tasks/tasks.h"

typedef struct ad__serve ad__serve_t;

typedef struct {
  ad__store_t *store;            /* NULL: /api/v1 answers 503 */
  const char *hosts_collection;  /* the registry's ("hosts") */
  const char *tasks_collection;  /* "tasks" */
  const char *platforms_collection, *services_collection, *locks_collection;
  const char *orders_collection; /* "orders" */
  const ad__tasks_ctx_t *tasks;  /* tasks/{id}: per-state results, failed first */
  ad__registry_t *registry;      /* NULL: hosts/{key} answers 404 */
  ad__fleet_t *fleet;            /* NULL: services/{id} answers 404 */
  /* The engine's counters (ad_engine_stats_json's object, plus "cycle");
   * a new reference or NULL. Called on the server's thread. */
  json_t *(*stats)(void *user);
  /* POST /callbacks/dingtalk, DingTalk's event push (NULL: the path is not
   * served). No bearer token: the push's signature authenticates it, which
   * the callee checks. `peer` the client's address, `query` the query
   * parameters (name -> string), the body (at most AD__SERVE_MAX_BODY
   * bytes). Returns the HTTP status with *answer, a new JSON object. Called
   * on the server's threads. */
  unsigned (*dingtalk_callback)(void *user, const char *peer, const json_t *query,
                                const char *body, size_t len, json_t **answer);
  void *user;
} ad__serve_env_t;

/* The largest request body taken (the DingTalk push; every other path
 * refuses bodies). A bigger Content-Length is answered 413 before the body
 * is read; a chunked body that grows past it closes the connection. */
#define AD__SERVE_MAX_BODY 65536

/* The `http` object's keys (docs/api-http.md). */
typedef struct {
  char *listen;         /* "127.0.0.1:9420" */
  char *tls_cert, *tls_key;
  char *scrape_token;
  int max_connections, timeout_s;
  size_t max_request_bytes;
  int threads;
} ad__serve_conf_t;

/* Parse `conf` (the engine's `http` object; borrowed) and start listening.
 * NULL + *err naming the key (AD_ECONFIG) or the bind failure (AD_EIO). */
ad__serve_t *ad__serve_new(const ad__serve_env_t *env, const json_t *conf, ad_error_t *err);
/* Stop accepting, close every connection, join the thread. NULL-safe. */
void ad__serve_destroy(ad__serve_t **s_p);
/* The port actually bound (listen "127.0.0.1:0" picks one). */
unsigned ad__serve_port(const ad__serve_t *s);
/* Counters of the server itself (requests, refusals by reason), a new
 * JSON object. */
json_t *ad__serve_stats(ad__serve_t *s);

/* A deploy task ended after `seconds` (the duration histogram). */
void ad__serve_observe_task(ad__serve_t *s, double seconds);

/* ---- pure parts, unit-tested (tests/serve/) ---- */

/* Is `header` ("Bearer <token>") one of `tokens` (NULL-terminated)? Every
 * comparison runs in constant time for the token's length (CRYPTO_memcmp)
 * and every token is tried, so timing tells nothing about which matched. */
int ad__serve_token_ok(const char *header, const char *const *tokens);

/* The query of one list endpoint, parsed. */
typedef struct {
  const char *name; /* the parameter */
  enum { AD__Q_STR, AD__Q_ENUM, AD__Q_LIMIT, AD__Q_TIME } type;
  const char *const *enums; /* AD__Q_ENUM: the allowed values */
} ad__serve_param_t;

/* Check `values` (name -> string, borrowed) against `params` (terminated by
 * a NULL name) into a new object: strings as they are, limit as an integer
 * 1..1000 (default 100), a time (ISO-8601 or epoch ms) as epoch ms. An
 * unknown parameter or a bad value: NULL + *err (AD_EINVAL) whose message
 * starts with the parameter's name. */
json_t *ad__serve_query(const ad__serve_param_t *params, const json_t *values, ad_error_t *err);

/* Render the Prometheus text exposition (version 0.0.4) of `snap`: the
 * snapshot object ad__serve builds (stats, counts by state, cycle,
 * lease). Caller frees; NULL when out of memory. */
char *ad__serve_metrics_text(const json_t *snap);

/* the http key table (docs/configuration-reference.md) */
const ad__config_key_t *ad__serve_keys(void);

#endif
