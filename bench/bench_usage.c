/* bench/bench_usage.c - the engine's cost per 1,000 service samples
 * (fleet/usage.c ad__fleet_on_usage), against MongoDB/FerretDB at --uri.
 *
 *   bench_usage --uri mongodb://... [--services 50] [--events 20] [--reps 5]
 *
 * One host with `services` opened game servers; `events` autodeploy_services
 * events of `services` samples each (50 x 20 = 1,000 samples), handled as
 * the engine handles them: look up, check the minion, insert_many, refresh
 * usage when due. Three cases, in one process, same database:
 *   default    usage_refresh_s 300: the first event refreshes every service
 *              (one find of its samples each), the rest only store;
 *   refresh    usage_refresh_s 0: every sample refreshes (the worst case);
 *   peer       the host beacons' path (ad__metrics_salt_ingest), 1,000 load
 *              samples, one insert each, as the engine stores them today.
 * Prints one JSON line: per case the median wall ms and process cpu ms per
 * 1,000 samples, and each case's ratio to the peer. See bench/README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autodeploy/common.h"
#include "core/clock.h"
#include "fleet/fleet_private.h"
#include "metrics/metrics.h"
#include "store/docs.h"

static double ms(clockid_t c)
{
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *sopt(int argc, char **argv, const char *name, const char *def)
{
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], name))
      return argv[i + 1];
  return def;
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof *v, cmp);
  return v[n / 2];
}

typedef struct {
  double wall, cpu;
} cost_t;

static ad__fleet_t *fleet(ad__store_t *st, const char *uri, int refresh_s)
{
  ad__fleet_env_t env = {.store = st, .mongo_uri = uri, .mongo_db = "adbench_usage",
                         .hosts_collection = "hosts"};
  json_t *conf = json_pack("{s:i,s:i}", "usage_min_samples", 1, "usage_refresh_s", refresh_s);
  ad_error_t err = {0};
  ad__fleet_t *f = ad__fleet_new(&env, conf, &err);
  json_decref(conf);
  if (!f)
    fprintf(stderr, "fleet: %s\n", err.message);
  return f;
}

/* fresh collections and `n` services opened a minute ago on h1 */
static void reset(ad__store_t *st, int n)
{
  ad_error_t err;
  mongoc_client_t *c = ad__store_pop(st);
  bson_t *cmd = BCON_NEW("dropDatabase", BCON_INT32(1));
  mongoc_client_command_simple(c, "adbench_usage", cmd, NULL, NULL, NULL);
  bson_destroy(cmd);
  ad__store_push(st, c);
  int64_t opened = ad__now_ms() - 60000;
  for (int i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "b-s%d", i);
    json_t *d = json_pack("{s:s,s:i,s:s,s:s,s:s,s:I}", "_id", id, "rev", 0, "platform", "b",
                          "state", "opened", "minion", "h1", "opened_at_ms", (json_int_t)opened);
    ad__docs_insert(st, "services", d, &err);
    json_decref(d);
  }
}

static cost_t run_usage(ad__store_t *st, const char *uri, int refresh_s, int n, int events)
{
  reset(st, n);
  ad__fleet_t *f = fleet(st, uri, refresh_s);
  cost_t c = {-1, -1};
  if (!f)
    return c;
  ad__usage_upkeep(f, ad__now_ms()); /* the indexes, as the engine's first tick makes them */
  json_t *data = json_pack("{s:s,s:o}", "id", "h1", "services", json_object());
  for (int i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "b-s%d", i);
    json_object_set_new(json_object_get(data, "services"), id,
                        json_pack("{s:s,s:f,s:f}", "state", "up", "cpu", 0.5 + i * 0.01, "mem_mb",
                                  300.0 + i));
  }
  double w0 = ms(CLOCK_MONOTONIC), c0 = ms(CLOCK_PROCESS_CPUTIME_ID);
  for (int e = 0; e < events; e++)
    ad__fleet_on_usage(f, "h1", data, "salt/beacon/h1/autodeploy_services/");
  c.wall = ms(CLOCK_MONOTONIC) - w0;
  c.cpu = ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
  if (f->usage.stored != (long long)n * events)
    fprintf(stderr, "stored %lld of %d\n", (long long)f->usage.stored, n * events), c.wall = -1;
  json_decref(data);
  ad__fleet_destroy(&f);
  return c;
}

static cost_t run_peer(ad__store_t *st, int samples)
{
  reset(st, 0);
  ad_error_t err;
  int ttl;
  ad__metrics_salt_init(st, "host_metrics", 86400, &ttl, &err);
  ad__beacon_sample_t s = {.kind = AD__BEACON_LOAD, .load = {0.5, 0.5, 0.5}};
  double w0 = ms(CLOCK_MONOTONIC), c0 = ms(CLOCK_PROCESS_CPUTIME_ID);
  for (int i = 0; i < samples; i++)
    ad__metrics_salt_ingest(st, "host_metrics", "h1", &s, 0, &err);
  return (cost_t){ms(CLOCK_MONOTONIC) - w0, ms(CLOCK_PROCESS_CPUTIME_ID) - c0};
}

int main(int argc, char **argv)
{
  const char *uri = sopt(argc, argv, "--uri", NULL);
  int n = atoi(sopt(argc, argv, "--services", "50")), events = atoi(sopt(argc, argv, "--events", "20"));
  int reps = atoi(sopt(argc, argv, "--reps", "5"));
  if (!uri || n < 1 || events < 1 || reps < 1 || reps > 99) {
    fprintf(stderr, "usage: bench_usage --uri URI [--services 50] [--events 20] [--reps 5]\n");
    return 64;
  }
  ad_global_init();
  ad_error_t err;
  ad__store_t *st = ad__store_new(uri, "adbench_usage", &err);
  if (!st) {
    fprintf(stderr, "store: %s\n", err.message);
    return 1;
  }
  double per = 1000.0 / (n * events);
  const char *names[3] = {"default", "refresh", "peer"};
  double wall[3][100], cpu[3][100];
  for (int r = 0; r < reps; r++) {
    cost_t c[3] = {run_usage(st, uri, 300, n, events), run_usage(st, uri, 0, n, events),
                   run_peer(st, n * events)};
    for (int k = 0; k < 3; k++) {
      if (c[k].wall < 0)
        return 1;
      wall[k][r] = c[k].wall * per;
      cpu[k][r] = c[k].cpu * per;
    }
  }
  double mw[3], mc[3];
  for (int k = 0; k < 3; k++)
    mw[k] = median(wall[k], reps), mc[k] = median(cpu[k], reps);
  printf("{\"services\": %d, \"events\": %d, \"samples\": %d, \"reps\": %d", n, events, n * events, reps);
  for (int k = 0; k < 3; k++)
    printf(", \"%s\": {\"wall_ms_per_1000\": %.2f, \"cpu_ms_per_1000\": %.2f, \"wall_vs_peer\": %.3f}",
           names[k], mw[k], mc[k], mw[k] / mw[2]);
  printf("}\n");
  ad__store_destroy(&st);
  return 0;
}
