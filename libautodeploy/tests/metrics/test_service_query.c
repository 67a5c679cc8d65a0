/* test_service_query.c - the per-service query (what each game server
 * uses) of the Prometheus, Zabbix and Open-Falcon backends, against
 * loopback servers that answer as those APIs do (tests/http_srv.h): the
 * requests made (templates filled in, one request per resource for all
 * services), the answers parsed into cores and MiB, a service without
 * series, bad answers and config errors named by backend and key. A real
 * Prometheus scraping process-exporter: tests/test_metrics.py. */
#include <math.h>

#include "harness.h"
#include "http_srv.h"
#include "metrics/metrics_private.h"

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

/* What the server saw, and what it answers next. */
typedef struct {
  int n;                /* requests */
  char target[8][256];
  char head[8][2048];
  char body[8][16384];  /* URL-decoded for form bodies */
  const char *answer[8]; /* the i-th request's answer (the last one repeats) */
  int status;
} rec_t;

static void url_decode(const char *in, size_t n, char *out, size_t cap)
{
  size_t j = 0;
  for (size_t i = 0; i < n && j + 1 < cap; i++) {
    if (in[i] == '%' && i + 2 < n) {
      char hex[3] = {in[i + 1], in[i + 2], 0};
      out[j++] = (char)strtol(hex, NULL, 16);
      i += 2;
    } else {
      out[j++] = in[i] == '+' ? ' ' : in[i];
    }
  }
  out[j] = '\0';
}

static int record(void *user, const srv_req_t *r, char *out, size_t n)
{
  rec_t *c = user;
  int i = c->n < 8 ? c->n : 7;
  snprintf(c->target[i], sizeof c->target[i], "%s", r->target);
  snprintf(c->head[i], sizeof c->head[i], "%s", r->head);
  if (strstr(r->head, "x-www-form-urlencoded"))
    url_decode(r->body, r->body_len, c->body[i], sizeof c->body[i]);
  else
    snprintf(c->body[i], sizeof c->body[i], "%.*s", (int)r->body_len, r->body);
  const char *a = c->answer[i];
  for (int k = i; !a && k >= 0; k--)
    a = c->answer[k];
  snprintf(out, n, "%s", a ? a : "{}");
  c->n++;
  return c->status ? c->status : 200;
}

static ad__metrics_t *make(const char *backend, const char *cfg_fmt, int port)
{
  char cfg[2048];
  snprintf(cfg, sizeof cfg, cfg_fmt, port);
  json_t *j = json_loads(cfg, 0, NULL);
  ad_error_t e = {0};
  ad__metrics_t *m = ad__metrics_new(backend, j, &e);
  json_decref(j);
  if (!m)
    fprintf(stderr, "  %s: %s\n", backend, e.message);
  return m;
}

/* Three game servers on two hosts; the third has no data anywhere. */
static const ad__metrics_service_t SVCS[3] = {
    {"qq-s1", {"h1", "game-01", "10.0.0.5", 0, 0}, "game-qq-1.service"},
    {"qq-s2", {"h1", "game-01", "10.0.0.5", 0, 0}, "game-qq-2.service"},
    {"qq-s3", {"h2", "game-02", "10.0.0.6", 0, 0}, "game-qq-3.service"},
};
static const ad__metrics_query_t Q = {1700000000000, 1700000600000, 60000, 1, 0, NULL};

/* ---- Prometheus ------------------------------------------------------------- */

#define PROM_CPU                                                                          \
  "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["              \
  "{\"metric\":{\"autodeploy_service\":\"qq-s1\"},\"values\":[[1700000000,\"0.5\"],"      \
  "[1700000060,\"0.75\"],[1700000120,\"NaN\"]]},"                                         \
  "{\"metric\":{\"autodeploy_service\":\"qq-s2\"},\"values\":[[1700000000,\"1.5\"]]},"    \
  "{\"metric\":{\"autodeploy_service\":\"not-asked\"},\"values\":[[1700000000,\"9\"]]}]}}"
#define PROM_MEM                                                                          \
  "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["              \
  "{\"metric\":{\"autodeploy_service\":\"qq-s1\"},\"values\":[[1700000000,\"256.5\"]]}]}}"

TEST(prometheus_services)
{
  rec_t rec = {.answer = {PROM_CPU, PROM_MEM}};
  srv_t s;
  ASSERT_EQ(srv_start(&s, record, &rec), 0);
  ad__metrics_t *m = make("prometheus", "{\"url\":\"http://127.0.0.1:%d\","
                          "\"bearer_token\":\"sekret-token\"}", s.port);
  ASSERT(m && ad__metrics_has_service_query(m));
  ad__metrics_result_t *r = NULL;
  ad_error_t e = {0};
  int rc = ad__metrics_query_services(m, SVCS, 3, &Q, &r, &e);
  srv_stop(&s);
  ASSERT_EQ(rc, 0);
  /* one range query per resource for all three services */
  ASSERT_EQ(rec.n, 2);
  ASSERT_STR(rec.target[0], "/api/v1/query_range");
  ASSERT(strstr(rec.head[0], "Authorization: Bearer sekret-token"));
  ASSERT(strstr(rec.body[0], "&start=1700000000.000&end=1700000600.000&step=60.000"));
  /* process-exporter's defaults, filled in, labelled, joined as a balanced tree */
  ASSERT(strstr(rec.body[0],
                "query=(label_replace((sum(irate(namedprocess_namegroup_cpu_seconds_total{"
                "groupname=\"qq-s1\",instance=\"10.0.0.5:9256\"}[5m]))), "
                "\"autodeploy_service\", \"qq-s1\", \"\", \"\")) or (("));
  ASSERT(strstr(rec.body[0], "groupname=\"qq-s3\",instance=\"10.0.0.6:9256\""));
  ASSERT(strstr(rec.body[1], "namedprocess_namegroup_memory_bytes{groupname=\"qq-s2\","
                             "memtype=\"resident\",instance=\"10.0.0.5:9256\"}) / 1048576"));
  ASSERT(r && r->n_hosts == 3 && !strcmp(r->hosts[0].key, "qq-s1"));
  const ad__metrics_summary_t *c1 = &r->hosts[0].res[AD__RES_CPU];
  ASSERT(c1->count == 2 && near(c1->p95, 0.75) && near(c1->mean, 0.625)); /* NaN dropped */
  ASSERT(c1->series && c1->series[1].at_ms == 1700000060000);
  ASSERT(near(r->hosts[0].res[AD__RES_MEM].p95, 256.5));
  ASSERT(near(r->hosts[1].res[AD__RES_CPU].last, 1.5));
  ASSERT_EQ(r->hosts[1].res[AD__RES_MEM].count, 0);
  ASSERT_EQ(r->hosts[2].res[AD__RES_CPU].count, 0); /* no series: no data, not an error */
  ASSERT_EQ(r->hosts[2].res[AD__RES_DISK].count, 0);
  ad__metrics_result_free(&r);
  ad__metrics_destroy(&m);
}

TEST(prometheus_services_templates)
{
  rec_t rec = {.answer = {"{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\","
                          "\"result\":[]}}"}};
  srv_t s;
  ASSERT_EQ(srv_start(&s, record, &rec), 0);
  /* cAdvisor: the unit's cgroup */
  ad__metrics_t *m = make("prometheus", "{\"url\":\"http://127.0.0.1:%d\","
                          "\"service_exporter\":\"cadvisor\"}", s.port);
  ad__metrics_result_t *r = NULL;
  ad_error_t e = {0};
  ad__metrics_query_t q = Q;
  q.resources = 1u << AD__RES_MEM;
  ASSERT(m && ad__metrics_query_services(m, SVCS, 1, &q, &r, &e) == 0);
  ASSERT_EQ(rec.n, 1); /* mem only */
  ASSERT(strstr(rec.body[0], "query=label_replace((sum(container_memory_rss{id=\"/system.slice/"
                             "game-qq-1.service\",instance=\"10.0.0.5:8080\"}) / 1048576), "
                             "\"autodeploy_service\", \"qq-s1\", \"\", \"\")&start="));
  ad__metrics_result_free(&r);
  /* a service without a unit, where the template needs one */
  ad__metrics_service_t nounit = {"qq-s9", {"h1", "game-01", "10.0.0.5", 0, 0}, NULL};
  ASSERT_EQ(ad__metrics_query_services(m, &nounit, 1, &q, &r, &e), AD_EINVAL);
  ASSERT_STR(e.message, "service qq-s9: no value for {unit} in query_service_mem");
  ad__metrics_destroy(&m);
  /* own templates: values escaped for the PromQL string, {host} from service_host_id */
  m = make("prometheus", "{\"url\":\"http://127.0.0.1:%d\",\"service_host_id\":\"{minion}\","
           "\"query_service_cpu\":\"max(game_cpu{id=\\\"{service}\\\",node=\\\"{host}\\\"})\"}",
           s.port);
  ad__metrics_service_t odd = {"a\"b\\c$1", {NULL, "m-1", NULL, 0, 0}, NULL};
  q.resources = 1u << AD__RES_CPU;
  ASSERT(m && ad__metrics_query_services(m, &odd, 1, &q, &r, &e) == 0);
  ASSERT(strstr(rec.body[1], "query=label_replace((max(game_cpu{id=\"a\\\"b\\\\c$1\",node=\"m-1\"}"
                             ")), \"autodeploy_service\", \"a\\\"b\\\\c$$1\", \"\", \"\")&"));
  ad__metrics_result_free(&r);
  ad__metrics_destroy(&m);
  srv_stop(&s);
}

TEST(prometheus_services_errors)
{
  rec_t rec = {.answer = {"{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":"
                          "\"parse error: unexpected <by>\"}"},
               .status = 400};
  srv_t s;
  ASSERT_EQ(srv_start(&s, record, &rec), 0);
  ad__metrics_t *m = make("prometheus", "{\"url\":\"http://127.0.0.1:%d\","
                          "\"bearer_token\":\"sekret-token\"}", s.port);
  ad__metrics_result_t *r = NULL;
  ad_error_t e = {0};
  char want[256];
  ASSERT_EQ(ad__metrics_query_services(m, SVCS, 3, &Q, &r, &e), AD_EIO);
  snprintf(want, sizeof want, "prometheus at http://127.0.0.1:%d: query_service_cpu: HTTP 400, "
           "Prometheus error bad_data: parse error: unexpected <by>", s.port);
  ASSERT_STR(e.message, want);
  ASSERT(!r && !strstr(e.message, "sekret"));
  /* a template that does not aggregate: two series for one service */
  rec.status = 0;
  rec.n = 0;
  rec.answer[0] = "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
                  "{\"metric\":{\"autodeploy_service\":\"qq-s2\",\"mode\":\"user\"},"
                  "\"values\":[[1700000000,\"1\"]]},"
                  "{\"metric\":{\"autodeploy_service\":\"qq-s2\",\"mode\":\"system\"},"
                  "\"values\":[[1700000000,\"1\"]]}]}}";
  ASSERT_EQ(ad__metrics_query_services(m, SVCS, 3, &Q, &r, &e), AD_EDECODE);
  ASSERT(strstr(e.message, "query_service_cpu: more than one series for service qq-s2"));
  rec.answer[0] = "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}";
  ASSERT_EQ(ad__metrics_query_services(m, SVCS, 3, &Q, &r, &e), AD_EDECODE);
  ASSERT(strstr(e.message, "query_service_cpu: data.resultType is not \"matrix\""));
  rec.answer[0] = "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
                  "{\"metric\":{\"autodeploy_service\":\"qq-s1\"},\"values\":[[1,\"x\"]]}]}}";
  ASSERT_EQ(ad__metrics_query_services(m, SVCS, 3, &Q, &r, &e), AD_EDECODE);
  ASSERT(strstr(e.message, "query_service_cpu: data.result[0].values[0]: not [time, \"value\"]"));
  srv_stop(&s);
  ad__metrics_destroy(&m);
}

/* ---- Zabbix 6.0 ------------------------------------------------------------- */

typedef struct {
  char calls[8][32];
  char params[8][4096];
  int n;
} zrec_t;

/* A Zabbix 6.0 API as its reference describes it, for the two hosts above:
 * game-01 has qq-s1's two items and qq-s2's cpu item; game-02 none. */
static int zabbix(void *user, const srv_req_t *r, char *out, size_t n)
{
  zrec_t *z = user;
  json_t *req = json_loadb(r->body, r->body_len, 0, NULL);
  const char *m = json_string_value(json_object_get(req, "method"));
  json_t *p = json_object_get(req, "params");
  int i = z->n < 8 ? z->n++ : 7;
  snprintf(z->calls[i], sizeof z->calls[i], "%s", m ? m : "?");
  char *ps = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
  snprintf(z->params[i], sizeof z->params[i], "%s", ps ? ps : "");
  free(ps);
  long id = (long)json_integer_value(json_object_get(req, "id"));
  const char *result = "[]";
  if (!strcmp(m, "user.login"))
    result = "\"0424bd59b807674191e7d77572075f33\"";
  else if (!strcmp(m, "host.get"))
    result = "[{\"hostid\":\"10084\",\"host\":\"game-01\"}]";
  else if (!strcmp(m, "item.get"))
    result = "[{\"itemid\":\"31001\",\"hostid\":\"10084\",\"key_\":\"proc.cpu.util[,,,qq-s1]\","
             "\"value_type\":\"0\"},"
             "{\"itemid\":\"31002\",\"hostid\":\"10084\",\"key_\":\"proc.mem[,,,qq-s1,rss]\","
             "\"value_type\":\"3\"},"
             "{\"itemid\":\"31003\",\"hostid\":\"10084\",\"key_\":\"proc.cpu.util[,,,qq-s2]\","
             "\"value_type\":\"0\"}]";
  else if (!strcmp(m, "history.get") && json_integer_value(json_object_get(p, "history")) == 0)
    result = "[{\"itemid\":\"31001\",\"clock\":\"1700000000\",\"value\":\"50.0000\",\"ns\":\"1\"},"
             "{\"itemid\":\"31001\",\"clock\":\"1700000060\",\"value\":\"150.0000\",\"ns\":\"1\"},"
             "{\"itemid\":\"31003\",\"clock\":\"1700000000\",\"value\":\"12.5\",\"ns\":\"1\"}]";
  else if (!strcmp(m, "history.get"))
    result = "[{\"itemid\":\"31002\",\"clock\":\"1700000000\",\"value\":\"268435456\",\"ns\":\"1\"}]";
  snprintf(out, n, "{\"jsonrpc\":\"2.0\",\"result\":%s,\"id\":%ld}", result, id);
  json_decref(req);
  return 200;
}

TEST(zabbix_services)
{
  zrec_t z = {0};
  srv_t s;
  ASSERT_EQ(srv_start(&s, zabbix, &z), 0);
  /* history_days reaching back to Q (2023): history.get, not trends */
  ad__metrics_t *m = make("zabbix", "{\"url\":\"http://127.0.0.1:%d\",\"username\":\"Admin\","
                          "\"password\":\"zabbix\",\"history_days\":3650}", s.port);
  ad__metrics_result_t *r = NULL;
  ad_error_t e = {0};
  int rc = m ? ad__metrics_query_services(m, SVCS, 3, &Q, &r, &e) : -1;
  srv_stop(&s);
  ASSERT_EQ(rc, 0);
  /* the host query's steps, once for all services */
  ASSERT_EQ(z.n, 5);
  ASSERT_STR(z.calls[0], "user.login");
  ASSERT_STR(z.calls[1], "host.get");
  ASSERT_STR(z.params[1], "{\"filter\":{\"host\":[\"game-01\",\"game-02\"]},"
                          "\"output\":[\"hostid\",\"host\"]}");
  ASSERT_STR(z.calls[2], "item.get");
  ASSERT_STR(z.params[2], "{\"filter\":{\"key_\":[\"proc.cpu.util[,,,qq-s1]\","
                          "\"proc.mem[,,,qq-s1,rss]\",\"proc.cpu.util[,,,qq-s2]\","
                          "\"proc.mem[,,,qq-s2,rss]\",\"proc.cpu.util[,,,qq-s3]\","
                          "\"proc.mem[,,,qq-s3,rss]\"]},\"hostids\":[\"10084\"],"
                          "\"output\":[\"itemid\",\"hostid\",\"key_\",\"value_type\"]}");
  ASSERT_STR(z.calls[3], "history.get");
  ASSERT(strstr(z.params[3], "\"history\":0,\"itemids\":[\"31001\",\"31003\"]"));
  ASSERT(strstr(z.params[3], "\"time_from\":1700000000,\"time_till\":1700000600"));
  ASSERT(strstr(z.params[4], "\"history\":3,\"itemids\":[\"31002\"]"));
  /* proc.cpu.util is % of one core; proc.mem bytes */
  const ad__metrics_summary_t *c1 = &r->hosts[0].res[AD__RES_CPU];
  ASSERT(c1->count == 2 && near(c1->p95, 1.5) && near(c1->mean, 1.0));
  ASSERT(near(r->hosts[0].res[AD__RES_MEM].last, 256.0));
  ASSERT(near(r->hosts[1].res[AD__RES_CPU].p95, 0.125));
  ASSERT_EQ(r->hosts[1].res[AD__RES_MEM].count, 0); /* no such item */
  ASSERT_EQ(r->hosts[2].res[AD__RES_CPU].count, 0); /* host unknown to Zabbix */
  ad__metrics_result_free(&r);
  ad__metrics_destroy(&m);
  /* a window older than history_days (7): hourly trends, every item in one call */
  memset(&z, 0, sizeof z);
  ASSERT_EQ(srv_start(&s, zabbix, &z), 0);
  m = make("zabbix", "{\"url\":\"http://127.0.0.1:%d\",\"api_token\":\"t\"}", s.port);
  rc = m ? ad__metrics_query_services(m, SVCS, 3, &Q, &r, &e) : -1;
  srv_stop(&s);
  ASSERT_EQ(rc, 0);
  ASSERT(z.n == 3 && !strcmp(z.calls[2], "trend.get"));
  ASSERT(strstr(z.params[2], "\"itemids\":[\"31001\",\"31002\",\"31003\"]"));
  ad__metrics_result_free(&r);
  ad__metrics_destroy(&m);
}

static int zabbix_error(void *user, const srv_req_t *r, char *out, size_t n)
{
  (void)user;
  (void)r;
  snprintf(out, n, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32602,\"message\":\"Invalid "
           "params.\",\"data\":\"Invalid parameter \\\"/filter\\\": an array is expected.\"},"
           "\"id\":1}");
  return 200;
}

TEST(zabbix_services_errors)
{
  srv_t s;
  ASSERT_EQ(srv_start(&s, zabbix_error, NULL), 0);
  ad__metrics_t *m = make("zabbix", "{\"url\":\"http://127.0.0.1:%d\",\"api_token\":"
                          "\"tok-sekret\"}", s.port);
  ad__metrics_result_t *r = NULL;
  ad_error_t e = {0};
  ASSERT_EQ(ad__metrics_query_services(m, SVCS, 3, &Q, &r, &e), AD_EIO);
  char want[256];
  snprintf(want, sizeof want, "zabbix at http://127.0.0.1:%d: host.get: Zabbix error -32602: "
           "Invalid params. Invalid parameter \"/filter\": an array is expected.", s.port);
  ASSERT_STR(e.message, want);
  ASSERT(!strstr(e.message, "sekret"));
  srv_stop(&s);
  /* a value an item key cannot carry: refused before any request */
  ad__metrics_service_t comma = {"qq,s1", {"h1", "game-01", NULL, 0, 0}, NULL};
  ASSERT_EQ(ad__metrics_query_services(m, &comma, 1, &Q, &r, &e), AD_EINVAL);
  ASSERT_STR(e.message, "service qq,s1: {service} \"qq,s1\" cannot go into item_service_cpu");
  ad__metrics_destroy(&m);
}

/* ---- Open-Falcon -------------------------------------------------------------- */

#define FALCON_ANSWER                                                                      \
  "[{\"endpoint\":\"game-01\",\"counter\":\"proc.cpu/service=qq-s1\",\"dstype\":\"GAUGE\","  \
  "\"step\":60,\"Values\":[{\"timestamp\":1700000000,\"value\":25.0},"                       \
  "{\"timestamp\":1700000060,\"value\":null},{\"timestamp\":1700000120,\"value\":75.0}]},"   \
  "{\"endpoint\":\"game-01\",\"counter\":\"proc.mem/service=qq-s1\",\"dstype\":\"GAUGE\","   \
  "\"step\":60,\"Values\":[{\"timestamp\":1700000000,\"value\":536870912}]},"                \
  "{\"endpoint\":\"game-01\",\"counter\":\"proc.cpu/service=qq-s2\",\"dstype\":\"GAUGE\","   \
  "\"step\":60,\"Values\":null},"                                                           \
  "{\"endpoint\":\"game-02\",\"counter\":\"proc.cpu/service=qq-s1\",\"dstype\":\"GAUGE\","   \
  "\"step\":60,\"Values\":[{\"timestamp\":1700000000,\"value\":99}]}]"

TEST(openfalcon_services)
{
  rec_t rec = {.answer = {FALCON_ANSWER}};
  srv_t s;
  ASSERT_EQ(srv_start(&s, record, &rec), 0);
  ad__metrics_t *m = make("openfalcon", "{\"url\":\"http://127.0.0.1:%d\"}", s.port);
  ad__metrics_result_t *r = NULL;
  ad_error_t e = {0};
  ASSERT(m && ad__metrics_query_services(m, SVCS, 3, &Q, &r, &e) == 0);
  ASSERT_EQ(rec.n, 1); /* one request for every service and counter */
  ASSERT_STR(rec.target[0], "/graph/history");
  ASSERT_STR(rec.body[0], "{\"start\":1700000000,\"end\":1700000600,\"cf\":\"AVERAGE\","
                          "\"endpoint_counters\":["
                          "{\"endpoint\":\"game-01\",\"counter\":\"proc.cpu/service=qq-s1\"},"
                          "{\"endpoint\":\"game-01\",\"counter\":\"proc.mem/service=qq-s1\"},"
                          "{\"endpoint\":\"game-01\",\"counter\":\"proc.cpu/service=qq-s2\"},"
                          "{\"endpoint\":\"game-01\",\"counter\":\"proc.mem/service=qq-s2\"},"
                          "{\"endpoint\":\"game-02\",\"counter\":\"proc.cpu/service=qq-s3\"},"
                          "{\"endpoint\":\"game-02\",\"counter\":\"proc.mem/service=qq-s3\"}]}");
  const ad__metrics_summary_t *c1 = &r->hosts[0].res[AD__RES_CPU];
  /* % of one core -> cores; the gap skipped; qq-s1's counter on game-02 is not qq-s1's */
  ASSERT(c1->count == 2 && near(c1->p95, 0.75) && near(c1->mean, 0.5));
  ASSERT(near(r->hosts[0].res[AD__RES_MEM].p95, 512.0)); /* bytes -> MiB */
  ASSERT_EQ(r->hosts[1].res[AD__RES_CPU].count, 0);     /* Values null */
  ASSERT_EQ(r->hosts[2].res[AD__RES_MEM].count, 0);
  ad__metrics_result_free(&r);
  ad__metrics_destroy(&m);
  /* falcon-plus: the distinct hostnames and counters, which it crosses */
  m = make("openfalcon", "{\"url\":\"http://127.0.0.1:%d\",\"api\":\"plus\","
           "\"api_token_name\":\"root\",\"api_token_sig\":\"sig-sekret\","
           "\"counter_service_mem\":\"game.rss/unit={unit}\"}", s.port);
  ASSERT(m && ad__metrics_query_services(m, SVCS, 2, &Q, &r, &e) == 0);
  ASSERT_STR(rec.target[1], "/api/v1/graph/history");
  ASSERT(strstr(rec.head[1], "Apitoken: {\"name\":\"root\",\"sig\":\"sig-sekret\"}"));
  ASSERT(strstr(rec.body[1], "\"hostnames\":[\"game-01\"],\"counters\":["
                             "\"proc.cpu/service=qq-s1\",\"game.rss/unit=game-qq-1.service\","
                             "\"proc.cpu/service=qq-s2\",\"game.rss/unit=game-qq-2.service\"]"));
  ASSERT(near(r->hosts[0].res[AD__RES_CPU].p95, 0.75));
  ASSERT_EQ(r->hosts[0].res[AD__RES_MEM].count, 0); /* answered under the default counter */
  ad__metrics_result_free(&r);
  /* the server's error, named */
  rec.status = 500;
  rec.answer[2] = "{\"error\":\"graph backend down\"}";
  ASSERT_EQ(ad__metrics_query_services(m, SVCS, 2, &Q, &r, &e), AD_EIO);
  ASSERT(strstr(e.message, "graph/history (counter_service_*): HTTP 500: graph backend down"));
  ASSERT(!strstr(e.message, "sekret"));
  rec.status = 0;
  rec.answer[3] = "[{\"endpoint\":\"game-01\",\"counter\":\"proc.cpu/service=qq-s1\","
                  "\"Values\":[{\"timestamp\":\"x\",\"value\":1}]}]";
  ASSERT_EQ(ad__metrics_query_services(m, SVCS, 2, &Q, &r, &e), AD_EDECODE);
  ASSERT(strstr(e.message, "[0].Values[0] of counter_service_cpu: not {timestamp, value}"));
  srv_stop(&s);
  ad__metrics_destroy(&m);
}

/* ---- configuration and arguments ---------------------------------------------- */

static int refused(const char *backend, const char *cfg, const char *want)
{
  ad_error_t e = {0};
  json_t *j = json_loads(cfg, 0, NULL);
  ad__metrics_t *m = ad__metrics_new(backend, j, &e);
  json_decref(j);
  int ok = !m && e.code == AD_ECONFIG && strstr(e.message, want);
  if (!ok)
    fprintf(stderr, "  got: %s\n", m ? "(created)" : e.message);
  ad__metrics_destroy(&m);
  return ok;
}

TEST(service_config)
{
  ASSERT(refused("prometheus", "{\"url\":\"http://p\",\"query_service_cpu\":\"up\"}",
                 "metrics backend prometheus: query_service_cpu: must contain {service} or "
                 "{unit}"));
  ASSERT(refused("prometheus", "{\"url\":\"http://p\",\"query_service_mem\":"
                 "\"x{id=\\\"{instances}\\\"}\"}",
                 "query_service_mem: unknown placeholder {instances} (use {service}, {host}, "
                 "{unit})"));
  ASSERT(refused("prometheus", "{\"url\":\"http://p\",\"service_exporter\":\"systemd\"}",
                 "service_exporter: \"systemd\" is not one of process-exporter, cadvisor"));
  ASSERT(refused("zabbix", "{\"url\":\"http://z\",\"api_token\":\"t\",\"item_service_mem\":"
                 "\"proc.mem[,,,{minion}]\"}", "item_service_mem: unknown placeholder {minion}"));
  ASSERT(refused("openfalcon", "{\"url\":\"http://f\",\"counter_service_cpu\":\"\"}",
                 "counter_service_cpu: must not be empty"));
  /* Zabbix macros and PromQL matchers are not placeholders */
  ad_error_t e = {0};
  json_t *j = json_loads("{\"url\":\"http://z\",\"api_token\":\"t\",\"item_service_cpu\":"
                         "\"proc.cpu.util[{$GAME_USER},,,{unit}]\"}", 0, NULL);
  ad__metrics_t *m = ad__metrics_new("zabbix", j, &e);
  json_decref(j);
  ASSERT(m);
  ad__metrics_destroy(&m);
  /* salt measures services by the beacon, not by this query */
  m = ad__metrics_new("salt", NULL, &e);
  ASSERT(m && !ad__metrics_has_service_query(m));
  ad__metrics_result_t *r = NULL;
  ASSERT_EQ(ad__metrics_query_services(m, SVCS, 1, &Q, &r, &e), AD_EINVAL);
  ASSERT(strstr(e.message, "metrics salt: no per-service query"));
  ad__metrics_destroy(&m);
  /* arguments: services listed twice, no services (no request) */
  j = json_loads("{\"url\":\"http://127.0.0.1:1\"}", 0, NULL);
  m = ad__metrics_new("prometheus", j, &e);
  json_decref(j);
  ad__metrics_service_t two[2] = {SVCS[0], SVCS[0]};
  ASSERT_EQ(ad__metrics_query_services(m, two, 2, &Q, &r, &e), AD_EINVAL);
  ASSERT_STR(e.message, "service qq-s1 is listed twice");
  ASSERT_EQ(ad__metrics_query_services(m, SVCS, 0, &Q, &r, &e), 0);
  ASSERT(r && r->n_hosts == 0);
  ad__metrics_result_free(&r);
  ad__metrics_destroy(&m);
}

RUN(CASE(prometheus_services), CASE(prometheus_services_templates),
    CASE(prometheus_services_errors), CASE(zabbix_services), CASE(zabbix_services_errors),
    CASE(openfalcon_services), CASE(service_config))
