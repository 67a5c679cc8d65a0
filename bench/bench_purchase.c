/* bench/bench_purchase.c - one daily purchase plan (ad__buy_plan): 10,000
 * waiting services over 50 profiles, cpu/mem/disk, in one process.
 *
 *   bench_purchase [--services 10000] [--profiles 50] [--reps 9] [--seed 1]
 *
 * Prints one JSON object: {"services", "profiles", "ms" (median), "ms_min",
 * "reps", "to_order", "lines": [{"profile", "services", "packed",
 * "lower_bound"}...], "worst_excess" (max over profiles of packed -
 * (1.1 * lower_bound + 1)), "goal_ms": 50, "goal_met"}. The fleet: flavours
 * of 4/8/16/32 cores with 2-8 GiB per core and 100-500 GiB disk; every
 * platform allows 2-5 profiles; 40 platforms, each with one footprint
 * (0.5-4 cores; 512-1536 MiB, 4-16 GiB or 2 GiB per core; 5-60 GiB), as the
 * engine sizes a platform's services alike; headroom 0.8.
 * The lower bound is the ceiling nobody can beat: the ratio packed / bound
 * is the quality measured. See bench/README.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decide/purchase.h"

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
static double rnd(void)
{
  rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(rs >> 11) / 9007199254740992.0;
}

static int cmp_d(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

enum { PLATFORMS = 40, MAXP = 5 };

int main(int argc, char **argv)
{
  size_t S = (size_t)opt(argc, argv, "--services", 10000);
  size_t P = (size_t)opt(argc, argv, "--profiles", 50);
  int reps = (int)opt(argc, argv, "--reps", 9);
  rs = (unsigned long long)opt(argc, argv, "--seed", 1);
  ad__buy_profile_t *prof = calloc(P, sizeof *prof);
  char (*names)[32] = calloc(P, 32);
  ad__waiting_t *w = calloc(S, sizeof *w);
  const char *allowed[PLATFORMS][MAXP];
  size_t n_allowed[PLATFORMS];
  double *ms = calloc((size_t)reps, sizeof *ms);
  if (!prof || !names || !w || !ms || reps < 1)
    return 1;
  static const double cores[] = {4, 8, 16, 32};
  for (size_t p = 0; p < P; p++) {
    snprintf(names[p], 32, "cloud%zu-region%zu", p % 5, p);
    double c = cores[(size_t)(rnd() * 4)];
    prof[p] = (ad__buy_profile_t){.name = names[p], .flavour = "flavour", .capacity =
                                  {c, c * 1024 * (2 + 6 * rnd()), 100 + 400 * rnd()},
                                  .pending = (long)(rnd() * 3), .cap_day = AD__CAP_NONE,
                                  .cap_month = AD__CAP_NONE};
  }
  for (size_t k = 0; k < PLATFORMS; k++) {
    n_allowed[k] = 2 + (size_t)(rnd() * 4);
    for (size_t j = 0; j < n_allowed[k]; j++)
      allowed[k][j] = names[(size_t)(rnd() * (double)P)];
  }
  /* A platform's services share its footprint (the engine sizes them by the
   * largest recently opened one), so the waiting queue has one shape per
   * platform: cpu-heavy, mem-heavy or balanced. */
  ad__dims_t shape[PLATFORMS];
  for (size_t k = 0; k < PLATFORMS; k++) {
    double kind = rnd(), cpu = 0.5 + 3.5 * rnd();
    double mem = kind < 0.33 ? 512 + 1024 * rnd() : kind < 0.66 ? 4096 + 12288 * rnd()
                                                                : cpu * 2048;
    shape[k] = (ad__dims_t){cpu, mem, 5 + 55 * rnd()};
  }
  for (size_t i = 0; i < S; i++) {
    size_t k = (size_t)(rnd() * PLATFORMS);
    w[i] = (ad__waiting_t){.service = "svc", .platform = "platform", .profiles = allowed[k],
                           .n_profiles = n_allowed[k], .need = shape[k],
                           .waited_hours = 24 * rnd(), .reason = "no host fits"};
  }
  ad__buy_req_t req = {.profiles = prof, .n_profiles = P, .headroom = 0.8,
                       .cap_day = AD__CAP_NONE, .cap_month = AD__CAP_NONE};
  ad__buy_plan_t plan = {0};
  ad_error_t err;
  for (int r = 0; r < reps; r++) {
    ad__buy_plan_free(&plan);
    double t0 = now_ms();
    if (ad__buy_plan(w, S, &req, &plan, &err)) {
      fprintf(stderr, "plan: %s\n", err.message);
      return 1;
    }
    ms[r] = now_ms() - t0;
  }
  qsort(ms, (size_t)reps, sizeof *ms, cmp_d);
  double med = reps % 2 ? ms[reps / 2] : (ms[reps / 2 - 1] + ms[reps / 2]) / 2;
  double worst = -INFINITY;
  printf("{\"services\": %zu, \"profiles\": %zu, \"ms\": %.3f, \"ms_min\": %.3f, \"reps\": %d, "
         "\"to_order\": %ld, \"unfit\": %zu, \"lines\": [",
         S, P, med, ms[0], reps, plan.to_order, plan.n_unfit);
  for (size_t l = 0; l < plan.n_lines; l++) {
    const ad__buy_line_t *x = &plan.lines[l];
    worst = fmax(worst, (double)x->packed - (1.1 * (double)x->lower_bound + 1));
    printf("%s{\"profile\": \"%s\", \"services\": %zu, \"packed\": %ld, \"packed_ffd\": %ld, "
           "\"packer\": \"%s\", \"lower_bound\": %ld, \"volume_bound\": %ld}",
           l ? ", " : "", prof[x->profile].name, x->n_services, x->packed, x->packed_ffd,
           x->packer, x->lower_bound, x->volume_bound);
  }
  printf("], \"worst_excess\": %.2f, \"goal_ms\": 50, \"goal_met\": %s}\n", worst,
         med < 50 && worst <= 0 ? "true" : "false");
  ad__buy_plan_free(&plan);
  free(prof), free(names), free(w), free(ms);
  return 0;
}
