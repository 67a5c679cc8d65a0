/* test_serve.c - the HTTP server's pure parts (token check, query
 * parameters, metrics text) and a live server on 127.0.0.1:0: 401 without
 * a token, a client stalled half-way through its request does not hold
 * the others, and the stalled one is closed after timeout_s; DingTalk's
 * push route: served only when configured, no token, the query and the
 * body handed over whole (chunked too), bounded at 64 KiB. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "serve/serve.h"

#define TOK "reader-token-0123456789"

TEST(token_check)
{
  const char *const toks[] = {"aaaaaaaaaaaaaaaa", TOK, NULL};
  ASSERT(ad__serve_token_ok("Bearer " TOK, toks));
  ASSERT(ad__serve_token_ok("bearer aaaaaaaaaaaaaaaa", toks));
  ASSERT(!ad__serve_token_ok("Bearer " TOK "x", toks));      /* longer */
  ASSERT(!ad__serve_token_ok("Bearer reader-token-012345678", toks)); /* shorter */
  ASSERT(!ad__serve_token_ok("Bearer reader-token-0123456788", toks)); /* last byte */
  ASSERT(!ad__serve_token_ok("Basic " TOK, toks));
  ASSERT(!ad__serve_token_ok("Bearer ", toks));
  ASSERT(!ad__serve_token_ok(NULL, toks));
  const char *const empty[] = {"", NULL};
  ASSERT(!ad__serve_token_ok("Bearer ", empty)); /* an empty token never matches */
}

static const char *const STATES[] = {"ready", "retired", NULL};
static const ad__serve_param_t P[] = {{"state", AD__Q_ENUM, STATES}, {"profile", AD__Q_STR, NULL},
                                      {"limit", AD__Q_LIMIT, NULL}, {"since", AD__Q_TIME, NULL},
                                      {NULL, 0, NULL}};

static int refused(const char *values, const char *starts)
{
  ad_error_t err = {0};
  json_t *v = json_loads(values, 0, NULL);
  json_t *q = ad__serve_query(P, v, &err);
  json_decref(v);
  int ok = !q && err.code == AD_EINVAL && !strncmp(err.message, starts, strlen(starts));
  if (!ok)
    fprintf(stderr, "  %s -> %s\n", values, err.message);
  json_decref(q);
  return ok;
}

TEST(query_parameters)
{
  ad_error_t err;
  json_t *v = json_pack("{s:s,s:s,s:s}", "state", "ready", "limit", "5", "since", "2024-01-02T00:00:00Z");
  json_t *q = ad__serve_query(P, v, &err);
  ASSERT(q);
  ASSERT_STR(json_string_value(json_object_get(q, "state")), "ready");
  ASSERT_EQ(json_integer_value(json_object_get(q, "limit")), 5);
  ASSERT_EQ(json_integer_value(json_object_get(q, "since")), 1704153600000LL);
  json_decref(q);
  json_decref(v);
  v = json_object();
  q = ad__serve_query(P, v, &err); /* limit defaults to 100 */
  ASSERT_EQ(json_integer_value(json_object_get(q, "limit")), 100);
  json_decref(q);
  json_decref(v);
  ASSERT(refused("{\"state\": \"gone\"}", "state: "));
  ASSERT(refused("{\"limit\": \"0\"}", "limit: "));
  ASSERT(refused("{\"limit\": \"1001\"}", "limit: "));
  ASSERT(refused("{\"limit\": \"5x\"}", "limit: "));
  ASSERT(refused("{\"since\": \"yesterday\"}", "since: "));
  ASSERT(refused("{\"profile\": \"\"}", "profile: "));
  ASSERT(refused("{\"colour\": \"red\"}", "colour: unknown parameter"));
}

TEST(metrics_text)
{
  json_t *snap = json_loads(
      "{\"store_up\": 1, \"stats\": {\"events\": 7, \"dropped\": 2, \"queue_depth\": 3,"
      " \"connected\": true, \"returns\": {\"stored\": 5, \"spool_bytes\": 1024},"
      " \"notify\": {\"channels\": [{\"name\": \"ops\", \"type\": \"webhook\", \"sent\": 4, \"failed\": 1, \"depth\": 0}]},"
      " \"cycle\": {\"runs\": 2, \"failures\": 0, \"last_seconds\": 0.25, \"last_success_time\": 1700000000.5}},"
      " \"tasks\": {\"failed\": 1, \"succeeded\": 3}, \"hosts\": {\"ready\": 2},"
      " \"services\": {\"g\\\"1\": {\"deployed\": 2}}, \"reserve\": {\"g1\": {\"target\": 3, \"waiting\": 1}},"
      " \"orders\": {}, \"lease\": {\"holder\": \"m1:1:0x1\", \"held\": true, \"mine\": true},"
      " \"task_duration\": {\"le\": [1, 5], \"counts\": [1, 3], \"sum\": 9.5, \"count\": 4}}",
      0, NULL);
  ASSERT(snap);
  char *t = ad__serve_metrics_text(snap);
  ASSERT(t);
  const char *want[] = {
      "# TYPE autodeploy_bus_events_total counter\nautodeploy_bus_events_total 7\n",
      "autodeploy_bus_events_dropped_total 2\n", "autodeploy_bus_queue_depth 3\n",
      "autodeploy_bus_connected 1\n", "autodeploy_returns_stored_total 5\n",
      "autodeploy_returns_spool_bytes 1024\n", "autodeploy_tasks{state=\"failed\"} 1\n",
      "autodeploy_hosts{state=\"ready\"} 2\n",
      "autodeploy_services{platform=\"g\\\"1\",state=\"deployed\"} 2\n", /* escaped */
      "autodeploy_reserve_target{platform=\"g1\"} 3\n", "autodeploy_services_waiting{platform=\"g1\"} 1\n",
      "autodeploy_task_duration_seconds_bucket{le=\"5\"} 3\n",
      "autodeploy_task_duration_seconds_bucket{le=\"+Inf\"} 4\n",
      "autodeploy_task_duration_seconds_sum 9.5\n", "autodeploy_cycle_duration_seconds 0.25\n",
      "autodeploy_cycle_last_success_timestamp_seconds 1700000000.5\n",
      "autodeploy_cycle_lease_info{holder=\"m1:1:0x1\",mine=\"1\"} 1\n",
      "autodeploy_notify_sent_total{channel=\"ops\",type=\"webhook\"} 4\n",
      "autodeploy_notify_failed_total{channel=\"ops\",type=\"webhook\"} 1\n", "autodeploy_up 1\n"};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    if (!strstr(t, want[i])) {
      fprintf(stderr, "  missing: %s", want[i]);
      ASSERT(0);
    }
  free(t);
  json_decref(snap);
}

static int dial(unsigned port)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Send the head and `body` (the server may close early: no SIGPIPE), then
 * read the answer's head and body into buf until the server closes. */
static int exchange(unsigned port, const char *head, const char *body, size_t blen, char *buf,
                    size_t size)
{
  int fd = dial(port);
  if (fd < 0 || send(fd, head, strlen(head), MSG_NOSIGNAL) < 0)
    return fd < 0 ? -1 : (close(fd), -1);
  for (size_t off = 0; body && off < blen;) {
    ssize_t w = send(fd, body + off, blen - off, MSG_NOSIGNAL);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  size_t n = 0;
  ssize_t r;
  while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0)
    n += (size_t)r;
  buf[n] = 0;
  close(fd);
  return (int)n;
}

/* One request; the answer's head and body into buf. */
static int fetch(unsigned port, const char *req, char *buf, size_t size)
{
  return exchange(port, req, NULL, 0, buf, size);
}

static json_t *no_stats(void *u) { return json_pack("{s:i}", "events", 42); }

TEST(live_server_and_a_stalled_client)
{
  ad_error_t err;
  ad__serve_env_t env = {.stats = no_stats};
  json_t *conf = json_pack("{s:s,s:[s],s:i}", "listen", "127.0.0.1:0", "reader_tokens", TOK,
                           "timeout_s", 1);
  ad__serve_t *s = ad__serve_new(&env, conf, &err);
  json_decref(conf);
  ASSERT(s);
  unsigned port = ad__serve_port(s);
  ASSERT(port > 0);
  /* half a request line, then nothing */
  int stalled = dial(port);
  ASSERT(stalled >= 0);
  ASSERT(write(stalled, "GET /metr", 9) == 9);
  char buf[16384];
  ASSERT(fetch(port, "GET /metrics HTTP/1.0\r\n\r\n", buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 401 ") && strstr(buf, "\"reason\""));
  ASSERT(fetch(port, "GET /metrics HTTP/1.0\r\nAuthorization: Bearer " TOK "\r\n\r\n", buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 200 ") && strstr(buf, "\nautodeploy_bus_events_total 42\n"));
  ASSERT(fetch(port, "GET /api/v1/hosts?limit=0 HTTP/1.0\r\nAuthorization: Bearer " TOK "\r\n\r\n", buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 400 ") && strstr(buf, "\"reason\":\"limit: "));
  ASSERT(fetch(port, "GET /api/v1/hosts HTTP/1.0\r\nAuthorization: Bearer " TOK "\r\n\r\n", buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 503 "));
  ASSERT(fetch(port, "POST /api/v1/hosts HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}", buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 405 "));
  ASSERT(fetch(port, "GET / HTTP/1.0\r\n\r\n", buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 200 ") && strstr(buf, "<title>autodeploy</title>"));
  /* the stalled client is closed by the server after timeout_s */
  struct pollfd p = {stalled, POLLIN, 0};
  ASSERT(poll(&p, 1, 5000) == 1);
  ASSERT(read(stalled, buf, sizeof buf) <= 0);
  close(stalled);
  ad__serve_destroy(&s);
  ASSERT(!s);
}

/* ---- DingTalk's push: POST /callbacks/dingtalk ---- */

typedef struct {
  int calls;
  char peer[64], body[128];
  size_t len;
  json_t *query;
  unsigned status;
} push_t;

static unsigned push_cb(void *u, const char *peer, const json_t *query, const char *body,
                        size_t len, json_t **answer)
{
  push_t *p = u;
  p->calls++;
  snprintf(p->peer, sizeof p->peer, "%s", peer);
  snprintf(p->body, sizeof p->body, "%.*s", (int)(len < 127 ? len : 127), body);
  p->len = len;
  json_decref(p->query);
  p->query = json_deep_copy(query);
  *answer = json_pack("{s:s}", "encrypt", "sealed");
  return p->status;
}

TEST(dingtalk_push_route)
{
  ad_error_t err;
  char buf[16384];
  json_t *conf = json_pack("{s:s,s:[s]}", "listen", "127.0.0.1:0", "reader_tokens", TOK);
  /* not configured: no such path */
  ad__serve_env_t off = {.stats = no_stats};
  ad__serve_t *s = ad__serve_new(&off, conf, &err);
  ASSERT(s);
  ASSERT(fetch(ad__serve_port(s), "POST /callbacks/dingtalk HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
               buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 404 ") && strstr(buf, "no purchase.approval.dingtalk.callback"));
  ad__serve_destroy(&s);

  push_t p = {.status = 200};
  ad__serve_env_t env = {.stats = no_stats, .dingtalk_callback = push_cb, .user = &p};
  s = ad__serve_new(&env, conf, &err);
  json_decref(conf);
  ASSERT(s);
  unsigned port = ad__serve_port(s);
  /* no bearer token: the callee checks the push's signature */
  ASSERT(fetch(port, "POST /callbacks/dingtalk?msg_signature=abc&timestamp=17&nonce=n%201 HTTP/1.0\r\n"
               "Content-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"encrypt\":\"xyz=\"}",
               buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 200 ") && strstr(buf, "{\"encrypt\":\"sealed\"}"));
  ASSERT_EQ(p.calls, 1);
  ASSERT_STR(p.peer, "127.0.0.1");
  ASSERT_STR(p.body, "{\"encrypt\":\"xyz=\"}");
  ASSERT_STR(json_string_value(json_object_get(p.query, "msg_signature")), "abc");
  ASSERT_STR(json_string_value(json_object_get(p.query, "nonce")), "n 1");
  /* the callee's refusal is the answer's status */
  p.status = 403;
  ASSERT(fetch(port, "POST /callbacks/dingtalk HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}", buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 403 "));
  ASSERT_EQ(p.calls, 2);
  ASSERT_EQ(p.len, 2);
  /* a chunked body, in pieces */
  p.status = 200;
  const char *chunked = "5\r\n{\"enc\r\nc\r\nrypt\":\"abc\"}\r\n0\r\n\r\n";
  ASSERT(exchange(port, "POST /callbacks/dingtalk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n", chunked, strlen(chunked), buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 200 "));
  ASSERT_STR(p.body, "{\"encrypt\":\"abc\"}");
  ASSERT_EQ(p.calls, 3);
  /* bounded: a declared body over 64 KiB is refused before it is read */
  ASSERT(exchange(port, "POST /callbacks/dingtalk HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n",
                  NULL, 0, buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 413 ") && strstr(buf, "larger than 65536"));
  /* a chunked one that grows past it: the connection is closed, unanswered */
  static char big[70000 + 64];
  int k = snprintf(big, sizeof big, "%x\r\n", 70000);
  memset(big + k, 'a', 70000);
  memcpy(big + k + 70000, "\r\n0\r\n\r\n", 8);
  exchange(port, "POST /callbacks/dingtalk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           "Transfer-Encoding: chunked\r\n\r\n", big, (size_t)k + 70008, buf, sizeof buf);
  ASSERT(!strstr(buf, " 200 "));
  ASSERT_EQ(p.calls, 3);
  /* GET is not DingTalk's; the read API still wants its token */
  ASSERT(fetch(port, "GET /callbacks/dingtalk HTTP/1.0\r\n\r\n", buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 405 "));
  ASSERT(fetch(port, "GET /api/v1/hosts HTTP/1.0\r\n\r\n", buf, sizeof buf) > 0);
  ASSERT(strstr(buf, " 401 "));
  ASSERT_EQ(p.calls, 3);
  ad__serve_destroy(&s);
  json_decref(p.query);
}

TEST(config_is_checked)
{
  ad_error_t err;
  ad__serve_env_t env = {0};
  json_t *c = json_pack("{s:s}", "listen", "127.0.0.1:0");
  ASSERT(!ad__serve_new(&env, c, &err) && strstr(err.message, "http.reader_tokens"));
  json_decref(c);
  c = json_pack("{s:s,s:[s]}", "listen", "localhost", "reader_tokens", TOK);
  ASSERT(!ad__serve_new(&env, c, &err) && strstr(err.message, "http.listen"));
  json_decref(c);
  c = json_pack("{s:[s],s:s}", "reader_tokens", TOK, "tls_cert", "/x.pem");
  ASSERT(!ad__serve_new(&env, c, &err) && strstr(err.message, "tls_key"));
  json_decref(c);
  c = json_pack("{s:[s],s:i}", "reader_tokens", TOK, "max_connections", 0);
  ASSERT(!ad__serve_new(&env, c, &err) && strstr(err.message, "max_connections"));
  json_decref(c);
}

RUN(CASE(token_check), CASE(query_parameters), CASE(metrics_text),
    CASE(live_server_and_a_stalled_client), CASE(dingtalk_push_route), CASE(config_is_checked))
