/*
 * serve.c - the HTTP server: configuration, the libmicrohttpd daemon, the
 * bearer-token gate, routing, and the /metrics snapshot.
 *
 * Threads: libmicrohttpd's polling thread(s) (`threads`, a pool when >1)
 * run every handler. They only read MongoDB (through the store pool, which
 * is thread-safe) and call the engine's stats callback (atomic counters),
 * so nothing here takes a lock the bus, the workers or the cycle hold. A
 * client is bounded by max_connections, timeout_s (an idle or half-sent
 * request is closed) and max_request_bytes (the connection's memory: the
 * request line and headers). Bodies are refused (the API is read-only),
 * except DingTalk's push (POST /callbacks/dingtalk, when the engine gives a
 * dingtalk_callback): up to AD__SERVE_MAX_BODY bytes, buffered per request,
 * no bearer token (its signature is checked by the callee).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "core/redact.h"
#include "serve/serve_private.h"

/* an empty string key is stored as NULL */
#define SET(p) ((p) && *(p))

#define K(name, type, field, min, max, def) \
  {name, type, offsetof(ad__serve_conf_t, field), min, max, def, NULL}
static const ad__config_key_t SERVE_KEYS[] = {
    K("listen", AD_CT_STR, listen, 0, 0, "127.0.0.1:9420"),
    K("tls_cert", AD_CT_STR, tls_cert, 0, 0, ""),
    K("tls_key", AD_CT_STR, tls_key, 0, 0, ""),
    K("scrape_token", AD_CT_SECRET, scrape_token, 0, 0, ""),
    K("max_connections", AD_CT_INT, max_connections, 1, 10000, "64"),
    K("timeout_s", AD_CT_INT, timeout_s, 1, 3600, "10"),
    K("max_request_bytes", AD_CT_SIZE, max_request_bytes, 4096, 1 << 20, "16384"),
    K("threads", AD_CT_INT, threads, 1, 16, "2"),
    {NULL, 0, 0, 0, 0, NULL, NULL}};

const ad__config_key_t *ad__serve_keys(void) { return SERVE_KEYS; }
#undef K

/* Task duration buckets, seconds: a state run takes seconds to an hour. */
const double ad__serve_task_le[AD__SERVE_TASK_BUCKETS] = {1, 5, 15, 30, 60, 120, 300,
                                                            600, 1800, 3600, 7200};

static int tokens_from(ad__serve_t *s, const json_t *arr, ad_error_t *err)
{
  if (!json_is_array(arr) || json_array_size(arr) == 0)
    return ad__err(err, AD_ECONFIG, "config",
                   "http.reader_tokens: a list of at least one token is required");
  size_t n = json_array_size(arr), i;
  s->tokens = calloc(n + 2, sizeof *s->tokens); /* + the scrape token + NULL */
  if (!s->tokens)
    return ad__err(err, AD_ENOMEM, "config", "no memory");
  json_t *v;
  json_array_foreach(arr, i, v) {
    if (!json_is_string(v) || json_string_length(v) < 16)
      return ad__err(err, AD_ECONFIG, "config",
                     "http.reader_tokens[%zu]: must be a string of at least 16 characters", i);
    if (!(s->tokens[i] = strdup(json_string_value(v))))
      return ad__err(err, AD_ENOMEM, "config", "no memory");
    ad__secret_add(AD__SECRET_VALUE, s->tokens[i]);
  }
  return 0;
}

static char *read_file(const char *path, const char *key, ad_error_t *err)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return ad__err_errno(err, AD_ECONFIG, errno, "http.%s %s", key, path), NULL;
  char *buf = NULL;
  size_t cap = 0;
  ssize_t n = getdelim(&buf, &cap, '\0', f);
  fclose(f);
  if (n <= 0) {
    free(buf);
    return ad__err(err, AD_ECONFIG, "config", "http.%s %s: empty", key, path), NULL;
  }
  return buf;
}

/* "host:port" -> sockaddr_in (IPv4; "[::1]:port" for IPv6). */
static int parse_listen(const char *l, struct sockaddr_storage *ss, ad_error_t *err)
{
  char host[128];
  const char *colon = strrchr(l, ':');
  char *end;
  long port = colon ? strtol(colon + 1, &end, 10) : -1;
  if (!colon || *end || port < 0 || port > 65535 || (size_t)(colon - l) >= sizeof host)
    return ad__err(err, AD_ECONFIG, "config", "http.listen: \"%.60s\" is not host:port", l);
  memcpy(host, l, colon - l);
  host[colon - l] = 0;
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  size_t hl = strlen(host);
  if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
    host[hl - 1] = 0;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) == 1)
      return 0;
  } else {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1)
      return 0;
  }
  return ad__err(err, AD_ECONFIG, "config", "http.listen: \"%.60s\" is not an IP address", host);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  char msg[300];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && msg[n - 1] == '\n')
    msg[--n] = 0;
  AD_LOG_W("serve", "http: %s", msg);
}

/* ---- answering ---------------------------------------------------------------- */

int ad__serve_answer(struct MHD_Connection *c, unsigned status, const char *type, char *body,
                     size_t len)
{
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, body, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", type);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  if (status == 401)
    MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"autodeploy\"");
  enum MHD_Result rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

int ad__serve_json(struct MHD_Connection *c, unsigned status, json_t *doc)
{
  char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  if (!text)
    return ad__serve_answer(c, 500, "application/json",
                            strdup("{\"status\":500,\"reason\":\"no memory\"}"), 36);
  return ad__serve_answer(c, status, "application/json", text, strlen(text));
}

int ad__serve_error(struct MHD_Connection *c, unsigned status, const char *reason)
{
  return ad__serve_json(c, status, json_pack("{s:i,s:s}", "status", (int)status, "reason", reason));
}

/* ---- /metrics ------------------------------------------------------------------ */

static json_t *histogram_json(ad__serve_t *s)
{
  json_t *le = json_array(), *counts = json_array();
  unsigned long long cum = 0;
  for (int i = 0; i < AD__SERVE_TASK_BUCKETS; i++) {
    cum += atomic_load(&s->task_buckets[i]);
    json_array_append_new(le, json_real(ad__serve_task_le[i]));
    json_array_append_new(counts, json_integer((json_int_t)cum));
  }
  return json_pack("{s:o,s:o,s:f,s:I}", "le", le, "counts", counts, "sum",
                   (double)atomic_load(&s->task_sum_ms) / 1000.0, "count",
                   (json_int_t)atomic_load(&s->task_count));
}

void ad__serve_observe_task(ad__serve_t *s, double seconds)
{
  if (!s || seconds < 0)
    return;
  int i = 0;
  while (i < AD__SERVE_TASK_BUCKETS && seconds > ad__serve_task_le[i])
    i++;
  if (i < AD__SERVE_TASK_BUCKETS)
    atomic_fetch_add(&s->task_buckets[i], 1);
  atomic_fetch_add(&s->task_sum_ms, (unsigned long long)(seconds * 1000));
  atomic_fetch_add(&s->task_count, 1);
}

static int metrics(ad__serve_t *s, struct MHD_Connection *c)
{
  json_t *snap = json_object();
  json_object_set_new(snap, "stats", s->env.stats ? s->env.stats(s->env.user) : json_object());
  json_object_set_new(snap, "task_duration", histogram_json(s));
  json_object_set_new(snap, "http", ad__serve_stats(s));
  json_object_set_new(snap, "store_up", json_integer(ad__serve_counts(s, snap) == 0));
  char *text = ad__serve_metrics_text(snap);
  json_decref(snap);
  if (!text)
    return ad__serve_error(c, 500, "no memory");
  return ad__serve_answer(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
}

/* ---- DingTalk's push ------------------------------------------------------------ */

#define PUSH_PATH "/callbacks/dingtalk"

/* The push's body, between libmicrohttpd's calls (*con_cls; every other
 * request has the server itself there). */
typedef struct {
  char *buf;
  size_t len;
} push_body_t;

static int is_push(const ad__serve_t *s, const char *url, const char *method)
{
  return s->env.dingtalk_callback && !strcmp(url, PUSH_PATH) && !strcmp(method, "POST");
}

static void peer_of(struct MHD_Connection *c, char *out, size_t n)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  snprintf(out, n, "?");
  if (sa && sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
  else if (sa && sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
}

/* The headers are in: a declared body over the bound is answered now (the
 * rest is discarded and the connection closed); else a buffer for it. */
static enum MHD_Result push_start(ad__serve_t *s, struct MHD_Connection *c, void **con_cls)
{
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl && strtoull(cl, NULL, 10) > AD__SERVE_MAX_BODY) {
    *con_cls = s;
    atomic_fetch_add(&s->requests, 1);
    return ad__serve_error(c, 413, "the body is larger than 65536 bytes");
  }
  push_body_t *b = calloc(1, sizeof *b);
  if (!b)
    return MHD_NO;
  *con_cls = b;
  return MHD_YES;
}

static enum MHD_Result push_data(push_body_t *b, const char *data, size_t *n)
{
  if (*n > AD__SERVE_MAX_BODY - b->len)
    return MHD_NO; /* a chunked body past the bound: close the connection */
  char *grown = realloc(b->buf, b->len + *n + 1);
  if (!grown)
    return MHD_NO;
  memcpy(grown + b->len, data, *n);
  b->buf = grown;
  b->len += *n;
  b->buf[b->len] = '\0';
  *n = 0;
  return MHD_YES;
}

static enum MHD_Result push_done(ad__serve_t *s, struct MHD_Connection *c, push_body_t *b)
{
  char peer[INET6_ADDRSTRLEN + 1];
  json_t *query = ad__serve_args(c), *answer = NULL;
  peer_of(c, peer, sizeof peer);
  unsigned st = s->env.dingtalk_callback(s->env.user, peer, query, b->buf ? b->buf : "", b->len,
                                         &answer);
  json_decref(query);
  return answer ? ad__serve_json(c, st, answer) : ad__serve_error(c, 500, "no answer");
}

/* libmicrohttpd's end of a request: the push's buffer goes. */
static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
  if (con_cls && *con_cls && *con_cls != cls) {
    push_body_t *b = *con_cls;
    free(b->buf);
    free(b);
  }
  if (con_cls)
    *con_cls = NULL;
}

/* ---- routing -------------------------------------------------------------------- */

static int authorized(ad__serve_t *s, struct MHD_Connection *c, int scrape)
{
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  const char *only_scrape[] = {s->c.scrape_token, NULL};
  int ok = ad__serve_token_ok(h, (const char *const *)s->tokens) |
           (scrape && SET(s->c.scrape_token) && ad__serve_token_ok(h, only_scrape));
  if (!ok)
    atomic_fetch_add(&s->unauthorized, 1);
  return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
  ad__serve_t *s = cls;
  if (!*con_cls) { /* headers are in; answer on the next call */
    if (is_push(s, url, method))
      return push_start(s, c, con_cls);
    *con_cls = s;
    return MHD_YES;
  }
  if (*con_cls != s) { /* DingTalk's push: take the body, then answer */
    if (*upload_size)
      return push_data(*con_cls, upload, upload_size);
    atomic_fetch_add(&s->requests, 1);
    return push_done(s, c, *con_cls);
  }
  if (*upload_size) { /* a body on a read-only API: refuse, do not buffer it */
    *upload_size = 0;
    return MHD_YES;
  }
  atomic_fetch_add(&s->requests, 1);
  if (!strcmp(url, PUSH_PATH))
    return s->env.dingtalk_callback
               ? ad__serve_error(c, 405, "DingTalk pushes with POST")
               : ad__serve_error(c, 404, "no such path (no purchase.approval.dingtalk.callback "
                                         "configured)");
  if (strcmp(method, "GET") && strcmp(method, "HEAD"))
    return ad__serve_error(c, 405, "read-only: writes go through salt-api (docs/api-http.md)");
  if (!strcmp(url, "/") || !strcmp(url, "/dashboard"))
    return ad__serve_dashboard(c);
  if (!strcmp(url, "/metrics"))
    return authorized(s, c, 1) ? metrics(s, c)
                               : ad__serve_error(c, 401, "missing or wrong bearer token");
  if (!strncmp(url, "/api/v1/", 8))
    return authorized(s, c, 0) ? ad__serve_api(s, c, url + 8)
                               : ad__serve_error(c, 401, "missing or wrong bearer token");
  return ad__serve_error(c, 404, "no such path");
}

ad__serve_t *ad__serve_new(const ad__serve_env_t *env, const json_t *conf, ad_error_t *err)
{
  ad__serve_t *s = calloc(1, sizeof *s);
  if (!s)
    return ad__err(err, AD_ENOMEM, "config", "no memory"), NULL;
  s->env = *env;
  json_t *keys = json_deep_copy(conf);
  json_t *tok = json_incref(json_object_get(keys, "reader_tokens"));
  json_object_del(keys, "reader_tokens");
  struct sockaddr_storage ss;
  int bad = !json_is_object(keys)
                ? ad__err(err, AD_ECONFIG, "config", "http: must be an object")
                : ad__config_load(SERVE_KEYS, &s->c, keys, err) ? AD_ECONFIG
                : tokens_from(s, tok, err) ? AD_ECONFIG
                : parse_listen(s->c.listen, &ss, err);
  json_decref(keys);
  json_decref(tok);
  if (bad)
    goto fail;
  if (!SET(s->c.tls_cert) != !SET(s->c.tls_key)) {
    ad__err(err, AD_ECONFIG, "config", "http.tls_cert and http.tls_key: set both or neither");
    goto fail;
  }
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
  if (SET(s->c.tls_cert)) {
    if (!(s->cert = read_file(s->c.tls_cert, "tls_cert", err)) ||
        !(s->key = read_file(s->c.tls_key, "tls_key", err)))
      goto fail;
    flags |= MHD_USE_TLS;
  }
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  struct MHD_OptionItem tls[] = {
      {MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert}, {MHD_OPTION_HTTPS_MEM_KEY, 0, s->key},
      {MHD_OPTION_END, 0, NULL}};
  s->d = MHD_start_daemon(
      flags, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->c.max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->c.timeout_s,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, s->c.max_request_bytes,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->c.threads,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
      MHD_OPTION_NOTIFY_COMPLETED, request_done, s,
      MHD_OPTION_ARRAY, s->cert ? tls : tls + 2, MHD_OPTION_END);
  if (!s->d) {
    ad__err(err, AD_EIO, "engine", "http: cannot listen on %s (in use, or a bad TLS pair)",
            s->c.listen);
    goto fail;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = di ? di->port : 0;
  AD_LOG_I("serve", "http: listening on %s (port %u%s, %d connections, %d s timeout)",
           s->c.listen, s->port, s->cert ? ", TLS" : "", s->c.max_connections, s->c.timeout_s);
  return s;
fail:
  ad__serve_destroy(&s);
  return NULL;
}

unsigned ad__serve_port(const ad__serve_t *s) { return s ? s->port : 0; }

json_t *ad__serve_stats(ad__serve_t *s)
{
  return json_pack("{s:I,s:I}", "requests", (json_int_t)atomic_load(&s->requests),
                   "unauthorized", (json_int_t)atomic_load(&s->unauthorized));
}

void ad__serve_destroy(ad__serve_t **s_p)
{
  if (!s_p || !*s_p)
    return;
  ad__serve_t *s = *s_p;
  if (s->d)
    MHD_stop_daemon(s->d);
  for (size_t i = 0; s->tokens && s->tokens[i]; i++) {
    ad__secret_drop(AD__SECRET_VALUE, s->tokens[i]);
    free(s->tokens[i]);
  }
  free(s->tokens);
  if (s->key)
    memset(s->key, 0, strlen(s->key)); /* the private key does not linger */
  free(s->key);
  free(s->cert);
  ad__config_free(SERVE_KEYS, &s->c);
  free(s);
  *s_p = NULL;
}
