/* bench/bench_placement.c - one placement cycle (ad__place) against the
 * naive O(H x S) scan (ad__place_naive) on the same fleet, in one process.
 *
 *   bench_placement --hosts N [--services 1000] [--reps 7] [--naive-reps 3]
 *                   [--seed 1]
 *
 * Prints one JSON line: {"hosts", "services", "placed", "ms", "ms_min",
 * "naive_ms", "ratio", "reps", "naive_reps", "same"}. ms and naive_ms are
 * medians; "same" says both made identical choices. Every repetition starts
 * from the same untouched fleet (copied outside the timed region). The
 * fleet: 8/16/32/64-core hosts with 4 GiB per core, three profiles of which
 * the platform allows two, five regions, 5% unreachable, measured load
 * 0-60% of capacity; footprint 2 cores / 4096 MiB; headroom 0.8; top 5
 * candidates kept per decision, as the engine would. See bench/README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decide/placement.h"

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long opt(int argc, char **argv, const char *name, long def)
{
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return atol(argv[i + 1]);
  return def;
}

static unsigned long long rs;
static unsigned rnd(void)
{
  rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
  return (unsigned)(rs >> 33);
}

static int cmp_d(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof v[0], cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
  size_t H = (size_t)opt(argc, argv, "--hosts", 10000);
  size_t S = (size_t)opt(argc, argv, "--services", 1000);
  int reps = (int)opt(argc, argv, "--reps", 7), nreps = (int)opt(argc, argv, "--naive-reps", 3);
  rs = (unsigned long long)opt(argc, argv, "--seed", 1);
  if (reps < 1 || reps > 1000 || nreps < 0 || nreps > 1000 || H == 0) {
    fprintf(stderr, "usage: bench_placement --hosts N [--services S] [--reps R] [--naive-reps R]\n");
    return 64;
  }
  static const char *profiles[] = {"std", "big", "gpu"}, *regions[] = {"r1", "r2", "r3", "r4", "r5"};
  ad__host_t *fleet = calloc(H, sizeof *fleet), *work = calloc(H, sizeof *work);
  char (*keys)[24] = calloc(H, sizeof *keys);
  ad__decision_t *d = calloc(S ? S : 1, sizeof *d), *dn = calloc(S ? S : 1, sizeof *dn);
  if (!fleet || !work || !keys || !d || !dn)
    return 1;
  for (size_t i = 0; i < H; i++) {
    snprintf(keys[i], sizeof keys[i], "aws-std-%07zu", i);
    ad__host_t *h = &fleet[i];
    h->key = keys[i];
    h->placeable = rnd() % 20 != 0;
    h->profile = profiles[rnd() % 3];
    h->region = regions[rnd() % 5];
    h->capacity.cpu = (double)(8 << (rnd() % 4));
    h->capacity.mem = h->capacity.cpu * 4096;
    h->p95.cpu = h->capacity.cpu * (rnd() % 601) / 1000.0;
    h->p95.mem = h->capacity.mem * (rnd() % 601) / 1000.0;
  }
  const char *allowed[] = {"std", "big"};
  ad__place_req_t req;
  ad__place_req_default(&req);
  req.code = "bench";
  req.profiles = allowed;
  req.n_profiles = 2;
  req.footprint.cpu = 2;
  req.footprint.mem = 4096;

  double *t = calloc((size_t)(reps > nreps ? reps : nreps) + 1, sizeof *t);
  long placed = 0;
  for (int r = 0; r < reps; r++) {
    memcpy(work, fleet, H * sizeof *work);
    double t0 = now_ms();
    placed = ad__place(work, H, &req, S, d, NULL);
    t[r] = now_ms() - t0;
  }
  double ms_min = t[0];
  for (int r = 1; r < reps; r++)
    if (t[r] < ms_min)
      ms_min = t[r];
  double ms = median(t, reps), naive_ms = 0;
  int same = 1;
  for (int r = 0; r < nreps; r++) {
    memcpy(work, fleet, H * sizeof *work);
    double t0 = now_ms();
    long pn = ad__place_naive(work, H, &req, S, dn, NULL);
    t[r] = now_ms() - t0;
    if (pn != placed)
      same = 0;
  }
  if (nreps) {
    naive_ms = median(t, nreps);
    for (size_t s = 0; s < S; s++)
      if (d[s].host != dn[s].host)
        same = 0;
  }
  printf("{\"hosts\": %zu, \"services\": %zu, \"placed\": %ld, \"ms\": %.3f, \"ms_min\": %.3f, "
         "\"naive_ms\": %.3f, \"ratio\": %.1f, \"reps\": %d, \"naive_reps\": %d, \"same\": %s}\n",
         H, S, placed, ms, ms_min, naive_ms, nreps ? naive_ms / ms : 0.0, reps, nreps,
         same ? "true" : "false");
  free(t);
  free(fleet);
  free(work);
  free(keys);
  free(d);
  free(dn);
  return same ? 0 : 1;
}
