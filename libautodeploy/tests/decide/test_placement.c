/* test_placement.c - fit, score, tie-breaks, filters, reasons, spreading,
 * and the heap against the naive scan on random fleets; p95 and the
 * footprint helper. */
#include <math.h>

#include "harness.h"
#include "decide/placement.h"

static ad__host_t host(const char *key, double cpu, double mem, double lcpu, double lmem)
{
  ad__host_t h;
  memset(&h, 0, sizeof h);
  h.key = key;
  h.placeable = 1;
  h.profile = "std";
  h.region = "r1";
  h.capacity.cpu = cpu;
  h.capacity.mem = mem;
  h.p95.cpu = lcpu;
  h.p95.mem = lmem;
  return h;
}

static ad__place_req_t req(double cpu, double mem)
{
  ad__place_req_t r;
  ad__place_req_default(&r);
  r.code = "g1";
  r.footprint.cpu = cpu;
  r.footprint.mem = mem;
  return r;
}

TEST(least_loaded_fitting_host)
{
  ad__host_t h[] = {host("a", 16, 32768, 8, 8192), host("b", 16, 32768, 2, 4096),
                    host("c", 16, 32768, 4, 2048)};
  ad__place_req_t r = req(2, 4096);
  ad__decision_t d;
  ASSERT_EQ(ad__place(h, 3, &r, 1, &d, NULL), 1);
  ASSERT_EQ(d.host, 1); /* b: 4/16 = 0.25 cpu, 8192/32768 = 0.25 mem */
  ASSERT_EQ(d.top[0].score, 0.25);
  ASSERT_EQ(d.n_top, 3);
  ASSERT_EQ(d.top[1].host, 2); /* c: cpu 6/16 */
  ASSERT_EQ(d.top[2].host, 0);
  ASSERT_EQ(d.fitting, 3);
  ASSERT_EQ(h[1].pending.cpu, 2);
  ASSERT_EQ(h[1].pending.mem, 4096);
  ASSERT_EQ(h[0].pending.cpu, 0);
}

TEST(dominant_share_not_cpu_alone)
{
  /* a: idle cpu but memory nearly full; b: busier cpu, free memory */
  ad__host_t h[] = {host("a", 16, 16384, 0, 9000), host("b", 16, 16384, 6, 1024)};
  ad__place_req_t r = req(1, 1024);
  ad__decision_t d;
  ad__place(h, 2, &r, 1, &d, NULL);
  ASSERT_EQ(d.host, 1); /* a scores 10024/16384 = 0.61, b 7/16 = 0.44 */
}

TEST(tie_breaks)
{
  ad__place_req_t r = req(1, 1024);
  ad__decision_t d;
  /* 1. identical: the smallest key, whatever the array order */
  ad__host_t same[] = {host("m2", 8, 8192, 1, 1024), host("m10", 8, 8192, 1, 1024),
                       host("m1", 8, 8192, 1, 1024)};
  ad__place(same, 3, &r, 1, &d, NULL);
  ASSERT_STR(same[d.host].key, "m1");
  ASSERT_STR(same[d.top[1].host].key, "m10"); /* strcmp order, documented */
  ASSERT_STR(same[d.top[2].host].key, "m2");
  /* 2. same score, lower share sum wins over the key */
  ad__host_t sum[] = {host("a", 8, 8192, 3, 3072), host("b", 8, 8192, 3, 1024)};
  ad__place(sum, 2, &r, 1, &d, NULL);
  ASSERT_EQ(d.top[0].score, d.top[1].score);
  ASSERT_STR(sum[d.host].key, "b");
  /* 3. same score and sum: more free cpu (a bigger host) wins */
  ad__place_req_t rm = req(0, 1024);
  ad__host_t fr[] = {host("a", 8, 8192, 4, 2048), host("b", 16, 8192, 8, 2048)};
  ad__place(fr, 2, &rm, 1, &d, NULL);
  ASSERT_EQ(d.top[0].score, d.top[1].score);
  ASSERT_EQ(d.top[0].cpu + d.top[0].mem, d.top[1].cpu + d.top[1].mem);
  ASSERT_STR(fr[d.host].key, "b");
  ASSERT_EQ(d.top[0].free_cpu, 8);
}

TEST(headroom_respected)
{
  ad__place_req_t r = req(1, 1024);
  ad__decision_t d;
  /* 7 + 1 = 8 = 10 x 0.8 exactly: fits; 7.5 + 1 does not */
  ad__host_t edge[] = {host("a", 10, 100000, 7, 0)};
  ASSERT_EQ(ad__place(edge, 1, &r, 1, &d, NULL), 1);
  ad__host_t over[] = {host("a", 10, 100000, 7.5, 0), host("b", 10, 10240, 0, 7400)};
  ASSERT_EQ(ad__place(over, 2, &r, 1, &d, NULL), 0);
  ASSERT_EQ(d.host, -1);
  ASSERT_EQ(d.rejected.cpu, 1);
  ASSERT_EQ(d.rejected.mem, 1); /* 7400 + 1024 > 8192 */
  r.headroom = 0.9; /* both fit now; b's 8424/10240 = 0.82 beats a's 0.85 */
  ASSERT_EQ(ad__place(over, 2, &r, 1, &d, NULL), 1);
  ASSERT_STR(over[d.host].key, "b");
  ASSERT_EQ(d.fitting, 2);
}

TEST(unplaceable_never_chosen)
{
  ad__host_t h[] = {host("idle-but-down", 64, 262144, 0, 0), host("busy", 8, 8192, 4, 4096)};
  h[0].placeable = 0;
  ad__place_req_t r = req(1, 512);
  ad__decision_t d[5];
  ASSERT_EQ(ad__place(h, 2, &r, 5, d, NULL), 2); /* busy takes 2, then is full */
  for (int i = 0; i < 5; i++) {
    ASSERT(d[i].host != 0);
    ASSERT_EQ(d[i].rejected.unreachable, 1);
  }
  ASSERT_EQ(d[2].host, -1);
  ASSERT(strstr(d[2].reason, "1 host unreachable"));
  ASSERT_EQ(h[0].pending.cpu, 0);
}

TEST(profile_and_region_filters)
{
  ad__host_t h[] = {host("a", 16, 32768, 0, 0), host("b", 16, 32768, 4, 0),
                    host("c", 16, 32768, 8, 0), host("d", 16, 32768, 1, 0)};
  h[0].profile = "gpu";
  h[1].region = "r2";
  h[3].profile = NULL; /* unknown profile: only an unrestricted platform takes it */
  const char *profiles[] = {"std", "big"}, *regions[] = {"r1"};
  ad__place_req_t r = req(1, 1024);
  r.profiles = profiles;
  r.n_profiles = 2;
  r.regions = regions;
  r.n_regions = 1;
  ad__decision_t d;
  ASSERT_EQ(ad__place(h, 4, &r, 1, &d, NULL), 1);
  ASSERT_STR(h[d.host].key, "c");
  ASSERT_EQ(d.rejected.profile, 2);
  ASSERT_EQ(d.rejected.region, 1);
  ASSERT_EQ(d.fitting, 1);
  r.n_profiles = r.n_regions = 0; /* empty lists: any */
  ASSERT_EQ(ad__place(h, 4, &r, 1, &d, NULL), 1);
  ASSERT_STR(h[d.host].key, "a");
}

TEST(no_fit_reason)
{
  ad__host_t h[] = {host("a", 4, 65536, 3, 0),    host("b", 4, 65536, 3.5, 0),
                    host("c", 64, 8192, 0, 7000), host("d", 4, 8192, 4, 8192),
                    host("e", 64, 65536, 0, 0),   host("f", 64, 65536, 0, 0),
                    host("g", 0, 65536, 0, 0)};
  h[4].placeable = 0;
  h[5].profile = "old";
  const char *profiles[] = {"std"};
  ad__place_req_t r = req(4, 8192);
  r.profiles = profiles;
  r.n_profiles = 1;
  ad__decision_t d[2];
  ASSERT_EQ(ad__place(h, 7, &r, 2, d, NULL), 0);
  ASSERT_STR(d[0].reason,
             "no host fits cpu 4.0/mem 8192: 2 hosts too full on cpu, 1 host too full on mem, "
             "1 host too full on cpu and mem, 1 host unreachable, 1 host profile not allowed, "
             "1 host without valid capacity or load");
  ASSERT_STR(d[1].reason, d[0].reason);
  ad__decision_t e;
  ASSERT_EQ(ad__place(NULL, 0, &r, 1, &e, NULL), 0);
  ASSERT_STR(e.reason, "no host fits cpu 4.0/mem 8192: no hosts");
}

TEST(successive_placements_spread)
{
  ad__host_t h[] = {host("a", 16, 32768, 0, 0), host("b", 16, 32768, 0, 0),
                    host("c", 16, 32768, 0, 0)};
  ad__place_req_t r = req(2, 2048);
  ad__decision_t d[6];
  ASSERT_EQ(ad__place(h, 3, &r, 6, d, NULL), 6);
  const char *want[] = {"a", "b", "c", "a", "b", "c"};
  for (int i = 0; i < 6; i++)
    ASSERT_STR(h[d[i].host].key, want[i]);
  for (int i = 0; i < 3; i++)
    ASSERT_EQ(h[i].pending.cpu, 4);
  /* a later call (another platform) sees the pending load */
  ad__place_req_t r2 = req(9, 1024);
  ASSERT_EQ(ad__place(h, 3, &r2, 1, d, NULL), 0); /* 4 + 9 > 12.8 */
  ASSERT_EQ(d[0].rejected.cpu, 3);
  /* until a host fills: 16 x 0.8 = 12.8 cores -> 6 services each */
  ad__host_t one[] = {host("a", 16, 32768, 0, 0)};
  ad__decision_t m[8];
  ASSERT_EQ(ad__place(one, 1, &r, 8, m, NULL), 6);
  ASSERT_EQ(m[5].host, 0);
  ASSERT_EQ(m[6].host, -1);
  ASSERT_EQ(m[6].rejected.cpu, 1);
}

TEST(bad_requests)
{
  ad__host_t h[] = {host("a", 16, 32768, 0, 0)};
  ad__place_req_t r = req(0, 0);
  ad__decision_t d;
  ad_error_t e;
  ASSERT_EQ(ad__place(h, 1, &r, 1, &d, &e), AD_EINVAL);
  ASSERT(strstr(e.message, "platform g1: footprint"));
  r = req(1, 1);
  r.headroom = 1.5;
  ASSERT_EQ(ad__place(h, 1, &r, 1, &d, &e), AD_EINVAL);
  ASSERT(strstr(e.message, "headroom 1.5"));
  r.headroom = 0.8;
  r.top_k = AD__TOP_K_MAX + 1;
  ASSERT_EQ(ad__place(h, 1, &r, 1, &d, &e), AD_EINVAL);
  /* hosts with NaN load are counted, never chosen */
  h[0].p95.cpu = NAN;
  r.top_k = 0;
  ASSERT_EQ(ad__place(h, 1, &r, 1, &d, &e), 0);
  ASSERT_EQ(d.rejected.invalid, 1);
}

/* ---- heap vs naive on random fleets -------------------------------------- */

static unsigned rnd_state;
static unsigned rnd(void)
{
  rnd_state = rnd_state * 1103515245u + 12345u;
  return (rnd_state >> 8) & 0xffffff;
}

static int same_decision(const ad__decision_t *a, const ad__decision_t *b)
{
  if (a->host != b->host || a->fitting != b->fitting || a->n_top != b->n_top ||
      memcmp(&a->rejected, &b->rejected, sizeof a->rejected) != 0 ||
      strcmp(a->host < 0 ? a->reason : "", b->host < 0 ? b->reason : "") != 0)
    return 0;
  for (size_t i = 0; i < a->n_top; i++)
    if (a->top[i].host != b->top[i].host || a->top[i].score != b->top[i].score ||
        a->top[i].cpu != b->top[i].cpu || a->top[i].mem != b->top[i].mem ||
        a->top[i].free_cpu != b->top[i].free_cpu)
      return 0;
  return 1;
}

TEST(heap_matches_naive)
{
  static const char *profs[] = {"std", "big", "gpu"}, *regs[] = {"r1", "r2", "r3"};
  static char keys[400][16];
  static ad__host_t a[400], b[400];
  static ad__decision_t da[300], db[300];
  long placed = 0, unplaced = 0, multi = 0;
  for (int round = 0; round < 200; round++) {
    rnd_state = 7919u * (unsigned)round + 1;
    size_t H = 1 + rnd() % 400, S = 1 + rnd() % 300;
    for (size_t i = 0; i < H; i++) {
      snprintf(keys[i], sizeof keys[i], "h%03u", rnd() % 500); /* duplicates happen */
      /* few distinct values, so ties on every criterion are common */
      double cap_cpu = (double)(4 << (rnd() % 4)), cap_mem = 8192.0 * (1 << (rnd() % 3));
      a[i] = host(keys[i], cap_cpu, cap_mem, (double)(rnd() % 5), 1024.0 * (rnd() % 6));
      a[i].placeable = rnd() % 10 != 0;
      a[i].profile = profs[rnd() % 3];
      a[i].region = regs[rnd() % 3];
      a[i].pending.cpu = rnd() % 3 == 0 ? 1 : 0;
      b[i] = a[i];
    }
    ad__place_req_t r = req((double)(1 + rnd() % 3), 512.0 * (1 + rnd() % 4));
    const char *pl[] = {"std", "big"};
    if (rnd() % 2)
      r.profiles = pl, r.n_profiles = 2;
    if (rnd() % 3 == 0)
      r.regions = regs, r.n_regions = 2;
    r.headroom = (rnd() % 2) ? 0.8 : 1.0;
    r.top_k = rnd() % (AD__TOP_K_MAX + 1);
    long pa = ad__place(a, H, &r, S, da, NULL);
    long pb = ad__place_naive(b, H, &r, S, db, NULL);
    ASSERT_EQ(pa, pb);
    placed += pa;
    unplaced += (long)S - pa;
    multi += pa > 0 && da[0].n_top > 1;
    for (size_t s = 0; s < S; s++)
      if (!same_decision(&da[s], &db[s])) {
        fprintf(stderr, "  round %d service %zu: heap %ld naive %ld\n", round, s, da[s].host,
                db[s].host);
        ASSERT(0);
      }
    for (size_t i = 0; i < H; i++)
      ASSERT(a[i].pending.cpu == b[i].pending.cpu && a[i].pending.mem == b[i].pending.mem);
  }
  /* the fleets exercised both outcomes and real candidate lists */
  ASSERT(placed > 1000 && unplaced > 1000 && multi > 50);
}

/* ---- helpers ------------------------------------------------------------- */

static int cmp_d(const void *x, const void *y)
{
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

TEST(p95)
{
  double v[100];
  for (int i = 0; i < 100; i++)
    v[i] = 100 - i; /* 100..1 */
  ASSERT_EQ(ad__p95(v, 100), 95);
  double one[] = {3.5};
  ASSERT_EQ(ad__p95(one, 1), 3.5);
  double twenty[20];
  for (int i = 0; i < 20; i++)
    twenty[i] = i + 1;
  ASSERT_EQ(ad__p95(twenty, 20), 19); /* ceil(19) = 19th smallest */
  double gaps[] = {NAN, 1, INFINITY, 2, NAN};
  ASSERT_EQ(ad__p95(gaps, 5), 2);
  double none[] = {NAN};
  ASSERT(isnan(ad__p95(none, 1)));
  ASSERT(isnan(ad__p95(NULL, 0)));
  static double flat[10000];
  for (int i = 0; i < 10000; i++)
    flat[i] = 0.25;
  ASSERT_EQ(ad__p95(flat, 10000), 0.25);
  static double x[2000], y[2000];
  for (int round = 0; round < 50; round++) {
    rnd_state = (unsigned)round + 99;
    size_t n = 1 + rnd() % 2000;
    for (size_t i = 0; i < n; i++)
      x[i] = y[i] = (double)(rnd() % (round % 2 ? 7 : 100000)); /* many equal, or few */
    qsort(y, n, sizeof y[0], cmp_d);
    ASSERT_EQ(ad__p95(x, n), y[(size_t)ceil(0.95 * (double)n) - 1]);
  }
  double cpu[] = {1, 2, 3}, mem[] = {100, 200};
  ad__res_t l = ad__load_p95(cpu, 3, mem, 2);
  ASSERT_EQ(l.cpu, 3);
  ASSERT_EQ(l.mem, 200);
}

TEST(footprint_and_projection)
{
  ad__res_t def = {2, 4096};
  ad__res_t s[] = {{1.5, 3000}, {0.5, 6000}, {NAN, 100}};
  ad__res_t f = ad__footprint_max(s, 3, def);
  ASSERT_EQ(f.cpu, 1.5);
  ASSERT_EQ(f.mem, 6000);
  f = ad__footprint_max(NULL, 0, def);
  ASSERT_EQ(f.cpu, 2);
  ASSERT_EQ(f.mem, 4096);
  ad__res_t nocpu[] = {{0, 512}};
  f = ad__footprint_max(nocpu, 1, def); /* nobody measured cpu: the default's */
  ASSERT_EQ(f.cpu, 2);
  ASSERT_EQ(f.mem, 512);
  ad__host_t h = host("a", 8, 8192, 1, 1000);
  h.pending.cpu = 2;
  h.pending.mem = 500;
  ad__res_t p = ad__host_projected(&h);
  ASSERT_EQ(p.cpu, 3);
  ASSERT_EQ(p.mem, 1500);
}

TEST(decision_json)
{
  ad__host_t h[] = {host("a", 16, 32768, 4, 0), host("b", 16, 32768, 0, 0)};
  h[1].placeable = 0;
  ad__place_req_t r = req(4, 4096);
  ad__decision_t d[4];
  ad__place(h, 2, &r, 4, d, NULL);
  json_t *j = ad__decision_to_json(&d[0], h, &r);
  ASSERT(j);
  ASSERT_STR(json_string_value(json_object_get(j, "host")), "a");
  ASSERT_STR(json_string_value(json_object_get(j, "platform")), "g1");
  ASSERT_EQ(json_real_value(json_object_get(j, "score")), 0.5);
  ASSERT_EQ(json_array_size(json_object_get(j, "candidates")), 1);
  ASSERT_EQ(json_integer_value(json_object_get(json_object_get(j, "rejected"), "unreachable")), 1);
  ASSERT(!json_object_get(j, "reason"));
  json_decref(j);
  ASSERT_EQ(d[2].host, -1); /* 4+4+4 > 12.8 */
  j = ad__decision_to_json(&d[2], h, &r);
  ASSERT(json_is_null(json_object_get(j, "host")));
  ASSERT(strstr(json_string_value(json_object_get(j, "reason")), "1 host too full on cpu"));
  json_decref(j);
}

RUN(CASE(least_loaded_fitting_host), CASE(dominant_share_not_cpu_alone), CASE(tie_breaks),
    CASE(headroom_respected), CASE(unplaceable_never_chosen), CASE(profile_and_region_filters),
    CASE(no_fit_reason), CASE(successive_placements_spread), CASE(bad_requests),
    CASE(heap_matches_naive), CASE(p95), CASE(footprint_and_projection), CASE(decision_json))
