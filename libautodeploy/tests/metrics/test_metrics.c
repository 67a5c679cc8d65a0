/* test_metrics.c - the pure parts of the metrics sources: statistics, host
 * id templates, PromQL regex escaping, parsing of canned answers shaped as
 * Prometheus, Zabbix 6.0 and Open-Falcon send them (errors and malformed
 * input included), config and beacon validation. Servers themselves:
 * tests/test_metrics.py. */
#include <math.h>

#include "autodeploy.h"
#include "harness.h"
#include "metrics/metrics_private.h"
#include "store/store.h"

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

TEST(p95_is_nearest_rank)
{
  ad__metrics_point_t p[100];
  ad__metrics_summary_t s;
  for (int n = 1; n <= 100; n++) {
    for (int i = 0; i < n; i++) { /* times reversed, values 1..n */
      p[i].at_ms = 1000 * (n - i);
      p[i].v = i + 1;
    }
    ad__metrics_summarize(p, (size_t)n, &s);
    ASSERT_EQ(s.count, (size_t)n);
    size_t rank = (size_t)ceil(0.95 * n - 1e-9);
    ASSERT(near(s.p95, (double)rank));
    ASSERT(near(s.max, n));
    ASSERT(near(s.mean, (n + 1) / 2.0));
    ASSERT(near(s.last, 1)); /* the value with the latest time */
    ASSERT_EQ(s.last_at_ms, 1000 * n);
    ASSERT(p[0].at_ms < p[n - 1].at_ms || n == 1); /* sorted by time */
  }
  for (int i = 0; i < 20; i++)
    p[i].v = 20 - i;
  ad__metrics_summarize(p, 20, &s);
  ASSERT(near(s.p95, 19)); /* 0.95 * 20 = 19 exactly, not 20 */
  ad__metrics_summarize(p, 0, &s);
  ASSERT_EQ(s.count, 0);
  ASSERT(near(s.p95, 0));
}

TEST(host_id_templates)
{
  ad__metrics_host_t h = {"k1", "minion-1", "10.0.0.5", 4, 8192};
  ad_error_t e = {0};
  char *s = ad__metrics_host_id("{ip}:9100", &h, &e);
  ASSERT(s && !strcmp(s, "10.0.0.5:9100"));
  free(s);
  s = ad__metrics_host_id("{minion}.example/{key}{{x}", &h, &e);
  ASSERT(s && !strcmp(s, "minion-1.example/k1{x}"));
  free(s);
  ASSERT(!ad__metrics_host_id("{hostname}", &h, &e));
  ASSERT(strstr(e.message, "unknown placeholder"));
  ASSERT(!ad__metrics_host_id("{ip", &h, &e));
  h.private_ip = NULL;
  ASSERT(!ad__metrics_host_id("{ip}:9100", &h, &e));
  ASSERT(strstr(e.message, "host k1: no value for {ip}"));
}

TEST(promql_regex_escaping)
{
  char *ids[] = {"10.0.0.1:9100", "h(1)+[a]", "q\"uote", "back\\slash"};
  char *re = ad__metrics_prom_regex(ids, 4);
  /* RE2 escapes are doubled for the PromQL string literal. */
  ASSERT_STR(re, "10\\\\.0\\\\.0\\\\.1:9100|h\\\\(1\\\\)\\\\+\\\\[a\\\\]|q\\\"uote|"
                 "back\\\\\\\\slash");
  char *q = ad__metrics_prom_expand("a{x=~\"{instances}\"} / b{y=~\"{instances}\"}", re);
  char want[512];
  snprintf(want, sizeof want, "a{x=~\"%s\"} / b{y=~\"%s\"}", re, re);
  ASSERT_STR(q, want);
  free(q);
  q = ad__metrics_prom_expand("node_load1", re);
  ASSERT_STR(q, "node_load1");
  free(q);
  free(re);
}

static const char PROM_OK[] =
    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
    "{\"metric\":{\"instance\":\"10.0.0.1:9100\",\"job\":\"node\"},"
    " \"values\":[[1700000000,\"0.5\"],[1700000015.5,\"1.25\"],[1700000030,\"NaN\"]]},"
    "{\"metric\":{\"instance\":\"10.9.9.9:9100\"},\"values\":[[1700000000,\"9\"]]},"
    "{\"metric\":{},\"values\":[[1700000000,\"9\"]]}]}}";

TEST(prometheus_parse)
{
  char *ids[] = {"10.0.0.1:9100", "10.0.0.2:9100"};
  ad__metrics_sink_t *sink = ad__metrics_sink_new(2);
  ad_error_t e = {0};
  json_t *j = json_loads(PROM_OK, 0, NULL);
  ASSERT_EQ(ad__metrics_prom_parse(j, 200, "prometheus at http://p:9090", "instance", ids, 2,
                                   AD__RES_CPU, sink, &e), 0);
  json_decref(j);
  size_t n;
  const ad__metrics_point_t *p = ad__metrics_sink_points(sink, 0, AD__RES_CPU, &n);
  ASSERT_EQ(n, 2); /* NaN dropped, other instances ignored */
  ASSERT_EQ(p[1].at_ms, 1700000015500);
  ASSERT(near(p[1].v, 1.25));
  ad__metrics_sink_points(sink, 1, AD__RES_CPU, &n);
  ASSERT_EQ(n, 0);

  j = json_loads("{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"1:10: parse "
                 "error: unclosed left parenthesis\"}", 0, NULL);
  ASSERT_EQ(ad__metrics_prom_parse(j, 400, "prometheus at http://p:9090", "instance", ids, 2,
                                   AD__RES_MEM, sink, &e), AD_EIO);
  ASSERT_STR(e.message, "prometheus at http://p:9090: mem: HTTP 400, Prometheus error "
                        "bad_data: 1:10: parse error: unclosed left parenthesis");
  json_decref(j);

  static const char *const bad[] = {
      "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}",
      "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\"}}",
      "{\"data\":{}}",
      "[]",
      "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
      "{\"metric\":{\"instance\":\"10.0.0.1:9100\"},\"values\":[[1,2,3]]}]}}",
      "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
      "{\"metric\":{\"instance\":\"10.0.0.1:9100\"},\"values\":[[\"t\",\"1\"]]}]}}",
      "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
      "{\"metric\":{\"instance\":\"10.0.0.1:9100\"},\"values\":[[1,\"abc\"]]}]}}",
      "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{}]}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    j = json_loads(bad[i], 0, NULL);
    memset(&e, 0, sizeof e);
    ASSERT_EQ(ad__metrics_prom_parse(j, 200, "prometheus at x", "instance", ids, 2,
                                     AD__RES_CPU, sink, &e), AD_EDECODE);
    ASSERT(strstr(e.message, "prometheus at x: cpu: "));
    json_decref(j);
  }
  ASSERT(strstr(e.message, "data.result[0].values missing"));
  ad__metrics_sink_free(sink);
}

TEST(zabbix_answers)
{
  ad_error_t e = {0};
  json_t *j = json_loads("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32602,\"message\":"
                         "\"Invalid params.\",\"data\":\"Incorrect user name or password or "
                         "account is temporarily blocked.\"},\"id\":1}", 0, NULL);
  ASSERT(!ad__metrics_zbx_result(j, 200, "zabbix at http://z:80", "user.login", &e));
  ASSERT_EQ(e.code, AD_EIO);
  ASSERT_STR(e.message, "zabbix at http://z:80: user.login: Zabbix error -32602: Invalid "
                        "params. Incorrect user name or password or account is temporarily "
                        "blocked.");
  json_decref(j);
  j = json_loads("{\"jsonrpc\":\"2.0\",\"result\":[{\"hostid\":\"10084\"}],\"id\":2}", 0, NULL);
  const json_t *r = ad__metrics_zbx_result(j, 200, "z", "host.get", &e);
  ASSERT(json_is_array(r) && json_array_size(r) == 1);
  ASSERT(!ad__metrics_zbx_result(j, 502, "z", "host.get", &e)); /* a proxy's error page */
  ASSERT(strstr(e.message, "host.get: HTTP 502"));
  json_decref(j);
  j = json_loads("{\"jsonrpc\":\"2.0\",\"id\":2}", 0, NULL);
  ASSERT(!ad__metrics_zbx_result(j, 200, "z", "item.get", &e));
  ASSERT_EQ(e.code, AD_EDECODE);
  json_decref(j);
}

TEST(openfalcon_parse)
{
  char *ids[] = {"game-01", "game-02"};
  char *counters[AD__RES_COUNT] = {"cpu.busy", "mem.memused", NULL, "load.1min"};
  ad__metrics_host_t hosts[2] = {{"g1", "game-01", NULL, 8, 0}, {"g2", "game-02", NULL, 0, 0}};
  ad__metrics_sink_t *sink = ad__metrics_sink_new(2);
  ad_error_t e = {0};
  json_t *j = json_loads(
      "[{\"endpoint\":\"game-01\",\"counter\":\"cpu.busy\",\"dstype\":\"GAUGE\",\"step\":60,"
      "  \"Values\":[{\"timestamp\":1700000000,\"value\":25.0},{\"timestamp\":1700000060,"
      "\"value\":null}]},"
      " {\"endpoint\":\"game-01\",\"counter\":\"mem.memused\",\"dstype\":\"GAUGE\",\"step\":60,"
      "  \"Values\":[{\"timestamp\":1700000000,\"value\":3221225472}]},"
      " {\"endpoint\":\"game-02\",\"counter\":\"cpu.busy\",\"dstype\":\"GAUGE\",\"step\":60,"
      "  \"Values\":[{\"timestamp\":1700000000,\"value\":50}]},"
      " {\"endpoint\":\"game-02\",\"counter\":\"load.1min\",\"dstype\":\"GAUGE\",\"step\":60,"
      "  \"Values\":null}]", 0, NULL);
  ASSERT_EQ(ad__metrics_falcon_parse(j, 200, "openfalcon at x", ids, 2, counters, hosts, sink,
                                     &e), 0);
  json_decref(j);
  size_t n;
  const ad__metrics_point_t *p = ad__metrics_sink_points(sink, 0, AD__RES_CPU, &n);
  ASSERT(n == 1 && near(p[0].v, 2.0) && p[0].at_ms == 1700000000000); /* 25% of 8 cores */
  p = ad__metrics_sink_points(sink, 0, AD__RES_MEM, &n);
  ASSERT(n == 1 && near(p[0].v, 3072.0)); /* bytes -> MiB */
  ad__metrics_sink_points(sink, 1, AD__RES_CPU, &n);
  ASSERT_EQ(n, 0); /* cores unknown: no cpu */

  j = json_loads("{\"error\":\"endpoint not found\"}", 0, NULL);
  ASSERT_EQ(ad__metrics_falcon_parse(j, 400, "openfalcon at x", ids, 2, counters, hosts, sink,
                                     &e), AD_EIO);
  ASSERT_STR(e.message, "openfalcon at x: graph/history: HTTP 400: endpoint not found");
  json_decref(j);
  static const char *const bad[] = {
      "{}", "[{\"counter\":\"cpu.busy\"}]",
      "[{\"endpoint\":\"game-01\",\"counter\":\"cpu.busy\",\"Values\":{}}]",
      "[{\"endpoint\":\"game-01\",\"counter\":\"cpu.busy\",\"Values\":[{\"value\":1}]}]",
      ("[{\"endpoint\":\"game-01\",\"counter\":\"cpu.busy\",\"Values\":"
       "[{\"timestamp\":1,\"value\":\"1\"}]}]"),
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    j = json_loads(bad[i], 0, NULL);
    ASSERT_EQ(ad__metrics_falcon_parse(j, 200, "openfalcon at x", ids, 2, counters, hosts,
                                       sink, &e), AD_EDECODE);
    json_decref(j);
  }
  ad__metrics_sink_free(sink);
}

static int new_fails(const char *backend, const char *cfg, const char *want)
{
  ad_error_t e = {0};
  json_t *j = cfg ? json_loads(cfg, 0, NULL) : NULL;
  ad__metrics_t *m = ad__metrics_new(backend, j, &e);
  json_decref(j);
  int ok = !m && e.code == AD_ECONFIG && strstr(e.message, want);
  if (!ok)
    fprintf(stderr, "  got: %s\n", m ? "(created)" : e.message);
  ad__metrics_destroy(&m);
  return ok;
}

TEST(config_validation)
{
  ASSERT(new_fails("graphite", NULL, "metrics backend \"graphite\" is not one of salt"));
  ASSERT(new_fails("prometheus", NULL, "metrics backend prometheus: url: required"));
  ASSERT(new_fails("prometheus", "{\"url\":\"http://p\",\"step\":5}",
                   "prometheus: unknown key \"step\""));
  ASSERT(new_fails("prometheus", "{\"url\":\"http://p\",\"timeout_ms\":\"soon\"}",
                   "timeout_ms: \"soon\" is not an integer"));
  ASSERT(new_fails("prometheus", "{\"url\":\"http://p\",\"insecure_skip_verify\":\"maybe\"}",
                   "insecure_skip_verify: \"maybe\" is not a boolean"));
  ASSERT(new_fails("prometheus", "{\"url\":\"http://p\",\"bearer_token\":\"t\","
                   "\"basic_user\":\"u\"}", "bearer_token: not together with basic_user"));
  ASSERT(new_fails("zabbix", "{\"url\":\"http://z\",\"api_token\":\"t\",\"trend_value\":"
                   "\"median\"}", "trend_value: \"median\" is not one of max, avg"));
  ASSERT(new_fails("zabbix", "{\"url\":\"http://z\",\"username\":\"u\",\"password\":\"p\","
                   "\"history_days\":0}", "history_days: 0 is out of range 1..3650"));
  ASSERT(new_fails("openfalcon", "{\"url\":\"http://f\",\"cf\":\"LAST\"}",
                   "cf: \"LAST\" is not one of AVERAGE, MAX, MIN"));
  ASSERT(new_fails("openfalcon", "{\"url\":\"http://f\",\"counter_cpu\":[]}",
                   "counter_cpu: wrong type (a JSON array)"));
  ASSERT(new_fails("salt", "{\"mongo_uri\":\"mysql://x\"}", "mongo_uri"));
  ASSERT(new_fails("salt", "{\"expire_after_seconds\":1}", "expire_after_seconds: 1 is out"));
  /* Good configs: nothing connects at creation. */
  ad_error_t e = {0};
  ad__metrics_t *m = ad__metrics_new(NULL, NULL, &e);
  ASSERT(m && !strcmp(ad__metrics_backend(m), "salt"));
  ad__metrics_destroy(&m);
  ASSERT(!m);
  json_t *j = json_loads("{\"url\":\"https://u:secret@z.example/zabbix/\",\"api_token\":\"t\","
                         "\"host_by\":\"ip\"}", 0, NULL);
  m = ad__metrics_new("zabbix", j, &e);
  json_decref(j);
  ASSERT(m);
  ad__metrics_destroy(&m);
}

TEST(query_arguments)
{
  ad_error_t e = {0};
  json_t *j = json_loads("{\"url\":\"http://127.0.0.1:1\"}", 0, NULL);
  ad__metrics_t *m = ad__metrics_new("prometheus", j, &e);
  json_decref(j);
  ASSERT(m);
  ad__metrics_result_t *r = NULL;
  ad__metrics_host_t h[2] = {{"a", "m", "10.0.0.1", 1, 1}, {"a", "m2", "10.0.0.2", 1, 1}};
  ad__metrics_query_t q = {2000, 1000, 0, 0, 0, NULL};
  ASSERT_EQ(ad__metrics_query(m, h, 1, &q, &r, &e), AD_EINVAL);
  ASSERT(strstr(e.message, "bad window") && !r);
  q.from_ms = 1;
  q.to_ms = 2;
  ASSERT_EQ(ad__metrics_query(m, h, 2, &q, &r, &e), AD_EINVAL);
  ASSERT(strstr(e.message, "host a is listed twice"));
  ASSERT_EQ(ad__metrics_query(m, h, 0, &q, &r, &e), 0); /* no hosts: no request */
  ASSERT(r && r->n_hosts == 0);
  ad__metrics_result_free(&r);
  ad__metrics_destroy(&m);

  ad__metrics_host_t *hosts;
  size_t n;
  j = json_loads("[{\"minion_id\":\"m1\",\"cores\":4},{\"key\":\"k\",\"cores\":-1}]", 0, NULL);
  ASSERT_EQ(ad__metrics_hosts_from_json(j, &hosts, &n, &e), AD_EINVAL);
  ASSERT_STR(e.message, "hosts[1].cores: wrong type or range");
  json_decref(j);
  j = json_loads("[{\"minion_id\":\"m1\",\"cores\":4,\"mem_mb\":2048,\"private_ip\":null}]", 0,
                 NULL);
  ASSERT_EQ(ad__metrics_hosts_from_json(j, &hosts, &n, &e), 0);
  ASSERT(n == 1 && !strcmp(hosts[0].key, "m1") && hosts[0].mem_mb == 2048);
  free(hosts);
  json_decref(j);
  j = json_loads("[{\"minion\":\"m1\"}]", 0, NULL);
  ASSERT_EQ(ad__metrics_hosts_from_json(j, &hosts, &n, &e), AD_EINVAL);
  ASSERT(strstr(e.message, "unknown field \"minion\""));
  json_decref(j);
}

TEST(beacon_decoding)
{
  ad__beacon_sample_t s;
  ad_error_t e = {0};
  /* As autodeploy-events prints a 3008.4 master's load beacon. */
  json_t *j = json_loads("{\"1m\": 2.72216796875, \"5m\": 1.95068359375, \"15m\": 1, "
                         "\"id\": \"m1\", \"_stamp\": \"2026-11-27T14:25:46.882800+00:00\"}",
                         0, NULL);
  ASSERT_EQ(ad__metrics_beacon_from_json("m1", "load", j, &s, &e), 0);
  ASSERT(s.kind == AD__BEACON_LOAD && near(s.load[0], 2.72216796875) && near(s.load[2], 1));
  ASSERT_EQ(ad__metrics_beacon_from_json("m2", "load", j, &s, &e), AD_EINVAL);
  json_decref(j);
  j = json_loads("{\"diskusage\": 15.5, \"mount\": \"/\", \"id\": \"m1\"}", 0, NULL);
  ASSERT_EQ(ad__metrics_beacon_from_json("m1", "diskusage", j, &s, &e), 0);
  ASSERT(s.kind == AD__BEACON_DISKUSAGE && !strcmp(s.mount, "/") && near(s.percent, 15.5));
  ASSERT_EQ(ad__metrics_beacon_from_json("m1", "memusage", j, &s, &e), AD_EINVAL);
  ASSERT_STR(e.message, "memusage beacon: no \"memusage\"");
  json_decref(j);
  ASSERT_EQ(ad__metrics_beacon_from_json("m1", "load", NULL, &s, &e), AD_EINVAL);
  /* The write side checks a struct made elsewhere too (no server needed:
   * the refusal comes before any connection). */
  ad__store_t *st = ad__store_new("mongodb://127.0.0.1:1/", "x", &e);
  ASSERT(st);
  ad__beacon_sample_t bad = {AD__BEACON_MEMUSAGE, {0, 0, 0}, NAN, NULL};
  ASSERT_EQ(ad__metrics_salt_ingest(st, NULL, "m1", &bad, 0, &e), AD_EINVAL);
  ASSERT(strstr(e.message, "beacon sample refused"));
  bad.percent = 5;
  ASSERT_EQ(ad__metrics_salt_ingest(st, NULL, "m\n1", &bad, 0, &e), AD_EINVAL);
  ASSERT(strstr(e.message, "minion id"));
  ad__store_destroy(&st);
}

TEST(auth_header)
{
  char *h = ad__metrics_auth_header("user", "pass", NULL);
  ASSERT_STR(h, "Authorization: Basic dXNlcjpwYXNz");
  free(h);
  h = ad__metrics_auth_header(NULL, NULL, "tok");
  ASSERT_STR(h, "Authorization: Bearer tok");
  free(h);
  ASSERT(!ad__metrics_auth_header(NULL, NULL, NULL));
}

RUN(CASE(p95_is_nearest_rank), CASE(host_id_templates), CASE(promql_regex_escaping),
    CASE(prometheus_parse), CASE(zabbix_answers), CASE(openfalcon_parse),
    CASE(config_validation), CASE(query_arguments), CASE(beacon_decoding), CASE(auth_header))
