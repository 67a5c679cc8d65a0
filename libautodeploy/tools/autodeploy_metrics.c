/*
 * autodeploy_metrics.c - autodeploy-metrics: a probe for the metrics
 * sources (libautodeploy/src/metrics.h), for tests and for checking a
 * monitoring server by hand. It uses internal symbols, so it links the
 * static library.
 *
 *   autodeploy-metrics --backend B [--config JSON] --hosts JSON
 *                      --from MS --to MS [--step MS] [--series]
 *                      [--resources cpu,mem,disk,load1]
 *   autodeploy-metrics --backend B [--config JSON] --services JSON
 *                      --from MS --to MS [--step MS] [--series]
 *   autodeploy-metrics --backend salt --config JSON --ingest  < events.jsonl
 *   autodeploy-metrics --backend salt --config JSON --prune-before MS
 *
 * Times are Unix ms; 0 or a negative value is relative to now (0: now,
 * -600000: ten minutes ago). --ingest reads events as autodeploy-events prints them,
 * {"tag": "salt/beacon/<minion>/<beacon>/", "data": {...}} plus an
 * optional "at_ms", creates the indexes first and prints
 * {"ingested": N, "refused": [{"line": L, "error": ..}], "ttl": bool}.
 * --services asks the per-service query the engine makes for usage
 * (docs/usage.md): [{"id", "minion_id", "private_ip", "unit"}, ...] ->
 * {"services": {"<id>": {"cpu": {...}, "mem": {...}}}}.
 *
 * Output: one JSON object on stdout; on failure {"error": {"code", "name",
 * "message"}}. Exit 0 ok, 1 failure, 3 (ingest) some events refused,
 * 64 bad arguments.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <autodeploy.h>

#include "metrics/metrics.h"

#define PROG "autodeploy-metrics"

static const char USAGE[] =
    "usage: " PROG " --backend salt|prometheus|zabbix|openfalcon [--config JSON]\n"
    "         --hosts JSON --from MS --to MS [--step MS] [--series] [--resources LIST]\n"
    "       " PROG " --backend B [--config JSON] --services JSON --from MS --to MS [--step MS]\n"
    "       " PROG " --backend salt --config JSON --ingest < events.jsonl\n"
    "       " PROG " --backend salt --config JSON --prune-before MS\n"
    "Times are Unix ms, or 0/negative: relative to now. See docs/metrics.md.\n";

static int64_t now_ms(void)
{
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int64_t when(const char *s)
{
  long long v = strtoll(s, NULL, 10);
  return v <= 0 ? now_ms() + v : v;
}

static int fail(const ad_error_t *e)
{
  json_t *j = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", e->code, "name",
                        ad_errname(e->code), "message", e->message);
  json_dumpf(j, stdout, JSON_COMPACT);
  putchar('\n');
  json_decref(j);
  return 1;
}

static int ingest(ad__metrics_t *m)
{
  ad__store_t *st;
  const char *coll;
  int64_t expire_s;
  int ttl = 0;
  ad_error_t e = {0};
  if (ad__metrics_salt_target(m, &st, &coll, &expire_s)) {
    fprintf(stderr, PROG ": --ingest needs --backend salt\n");
    return 64;
  }
  if (ad__metrics_salt_init(st, coll, expire_s, &ttl, &e))
    return fail(&e);
  json_t *refused = json_array();
  long n = 0, line = 0;
  char *buf = NULL;
  size_t cap = 0;
  while (getline(&buf, &cap, stdin) > 0) {
    line++;
    json_error_t je;
    json_t *ev = json_loads(buf, 0, &je);
    const char *tag = json_string_value(json_object_get(ev, "tag"));
    char minion[256] = "", beacon[32] = "";
    ad__beacon_sample_t s;
    memset(&e, 0, sizeof e);
    if (!ev) {
      snprintf(e.message, sizeof e.message, "not JSON: %s", je.text);
    } else if (!tag || sscanf(tag, "salt/beacon/%255[^/]/%31[^/]/", minion, beacon) != 2) {
      snprintf(e.message, sizeof e.message, "tag is not salt/beacon/<minion>/<beacon>/");
    } else if (!ad__metrics_beacon_from_json(minion, beacon, json_object_get(ev, "data"), &s,
                                             &e)) {
      json_t *at = json_object_get(ev, "at_ms");
      if (!ad__metrics_salt_ingest(st, coll, minion, &s, at ? json_integer_value(at) : 0, &e))
        n++;
    }
    if (e.message[0])
      json_array_append_new(refused, json_pack("{s:i,s:s}", "line", (int)line, "error",
                                               e.message));
    json_decref(ev);
  }
  free(buf);
  size_t bad = json_array_size(refused);
  json_t *out = json_pack("{s:i,s:o,s:b}", "ingested", (int)n, "refused", refused, "ttl", ttl);
  json_dumpf(out, stdout, JSON_COMPACT);
  putchar('\n');
  json_decref(out);
  return bad ? 3 : 0;
}

/* --services: [{"id", "minion_id", "private_ip", "unit"}] -> the per-service query. */
static int services(ad__metrics_t *m, const char *text, const ad__metrics_query_t *q)
{
  ad_error_t e = {0};
  json_t *a = text ? json_loads(text, 0, NULL) : NULL, *o;
  size_t n = json_array_size(a), i;
  ad__metrics_service_t *s = calloc(n + 1, sizeof *s);
  ad__metrics_result_t *res = NULL;
  int rc = 0;
  if (!json_is_array(a) || !s) {
    fprintf(stderr, PROG ": --services must be a JSON array of objects\n");
    rc = 64;
    goto done;
  }
  json_array_foreach(a, i, o) {
    s[i].key = json_string_value(json_object_get(o, "id"));
    s[i].host.minion_id = json_string_value(json_object_get(o, "minion_id"));
    s[i].host.private_ip = json_string_value(json_object_get(o, "private_ip"));
    s[i].unit = json_string_value(json_object_get(o, "unit"));
  }
  if (ad__metrics_query_services(m, s, n, q, &res, &e)) {
    rc = fail(&e);
  } else {
    json_t *out = json_pack("{s:s,s:I,s:I,s:o}", "backend", ad__metrics_backend(m), "from_ms",
                            (json_int_t)q->from_ms, "to_ms", (json_int_t)q->to_ms, "services",
                            ad__metrics_result_to_json(res));
    json_dumpf(out, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(out);
  }
done:
  ad__metrics_result_free(&res);
  free(s);
  json_decref(a);
  return rc;
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
      {"backend", required_argument, NULL, 'b'}, {"config", required_argument, NULL, 'c'},
      {"hosts", required_argument, NULL, 'H'},   {"from", required_argument, NULL, 'f'},
      {"to", required_argument, NULL, 't'},      {"step", required_argument, NULL, 's'},
      {"series", no_argument, NULL, 'S'},        {"resources", required_argument, NULL, 'r'},
      {"ingest", no_argument, NULL, 'i'},        {"prune-before", required_argument, NULL, 'p'},
      {"services", required_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *backend = NULL, *config = NULL, *hosts_text = NULL, *res_list = NULL;
  const char *prune = NULL, *services_text = NULL;
  ad__metrics_query_t q = {0};
  int do_ingest = 0, c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'b': backend = optarg; break;
    case 'c': config = optarg; break;
    case 'H': hosts_text = optarg; break;
    case 'f': q.from_ms = when(optarg); break;
    case 't': q.to_ms = when(optarg); break;
    case 's': q.step_ms = strtoll(optarg, NULL, 10); break;
    case 'S': q.want_series = 1; break;
    case 'r': res_list = optarg; break;
    case 'i': do_ingest = 1; break;
    case 'p': prune = optarg; break;
    case 'v': services_text = optarg; break;
    case 'h': fputs(USAGE, stdout); return 0;
    default: fputs(USAGE, stderr); return 64;
    }
  }
  ad_global_init();
  ad_error_t e = {0};
  json_t *cfg = config ? json_loads(config, 0, NULL) : NULL;
  if (config && !cfg) {
    fprintf(stderr, PROG ": --config is not JSON\n");
    return 64;
  }
  ad__metrics_t *m = ad__metrics_new(backend, cfg, &e);
  json_decref(cfg);
  if (!m)
    return fail(&e);
  int rc = 0;
  if (do_ingest) {
    rc = ingest(m);
  } else if (services_text) {
    rc = services(m, services_text, &q);
  } else if (prune) {
    ad__store_t *st;
    const char *coll;
    int64_t expire_s;
    if (ad__metrics_salt_target(m, &st, &coll, &expire_s)) {
      fprintf(stderr, PROG ": --prune-before needs --backend salt\n");
      rc = 64;
    } else {
      int64_t n = ad__metrics_salt_prune(st, coll, when(prune), &e);
      if (n < 0)
        rc = fail(&e);
      else
        printf("{\"deleted\":%lld}\n", (long long)n);
    }
  } else {
    json_t *hj = hosts_text ? json_loads(hosts_text, 0, NULL) : NULL;
    ad__metrics_host_t *hosts = NULL;
    size_t n = 0;
    for (const char *p = res_list; p && *p; p += strcspn(p, ","), p += !!*p)
      for (int r = 0; r < AD__RES_COUNT; r++)
        if (!strncmp(p, ad__metrics_res_name(r), strcspn(p, ",")) &&
            strlen(ad__metrics_res_name(r)) == strcspn(p, ","))
          q.resources |= 1u << r;
    ad__metrics_result_t *res = NULL;
    if (ad__metrics_hosts_from_json(hj, &hosts, &n, &e) ||
        ad__metrics_query(m, hosts, n, &q, &res, &e)) {
      rc = fail(&e);
    } else {
      json_t *out = json_pack("{s:s,s:I,s:I,s:o}", "backend", ad__metrics_backend(m), "from_ms",
                              (json_int_t)q.from_ms, "to_ms", (json_int_t)q.to_ms, "hosts",
                              ad__metrics_result_to_json(res));
      json_dumpf(out, stdout, JSON_COMPACT);
      putchar('\n');
      json_decref(out);
    }
    ad__metrics_result_free(&res);
    free(hosts);
    json_decref(hj);
  }
  ad__metrics_destroy(&m);
  return rc;
}
