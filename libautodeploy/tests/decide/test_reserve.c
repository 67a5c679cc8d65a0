/* test_reserve.c - reserve sizing: steady, slow and bursty platforms, the
 * clamps, a young platform, the policy loader's errors. */
#include <math.h>

#include "harness.h"
#include "decide/reserve.h"

#define HOUR INT64_C(3600000)
#define DAY (24 * HOUR)
static const int64_t NOW = INT64_C(1714550400000); /* 2024-05-01T08:00:00Z */

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

/* `per_day` openings a day, evenly spaced, over `days` days before NOW;
 * the first one half a gap before NOW. Returns the count. */
static size_t steady(int64_t *t, double per_day, int days)
{
  double gap = (double)DAY / per_day;
  size_t n = 0;
  for (double age = gap / 2; age < (double)days * DAY; age += gap)
    t[n++] = NOW - (int64_t)age;
  return n;
}

TEST(ten_a_day)
{
  static int64_t t[200];
  size_t n = steady(t, 10, 14); /* every 2.4 h, the last 1.2 h ago */
  ASSERT_EQ(n, 140);
  ad__reserve_policy_t p;
  ad__reserve_policy_default(&p);
  ad__reserve_t r;
  ASSERT_EQ(ad__reserve_size(&p, t, n, NOW, 0, &r, NULL), 2);
  ASSERT(near(r.ewma_per_day, 10));   /* ten in every bucket */
  ASSERT(near(r.burst_per_day, 8));   /* 1.2 h and 3.6 h ago: 2 in 6 h */
  ASSERT_STR(r.rate_from, "ewma");
  ASSERT(near(r.raw, 10 * (2.0 / 24) * 1.5)); /* 1.25 */
  ASSERT_EQ(r.ceiled, 2);
  ASSERT(r.clamped == NULL);
  ASSERT_EQ(r.in_window, 140);
  ASSERT_EQ(r.buckets, 14);
  /* a day of horizon: ceil(10 x 1 x 1.5) */
  p.horizon_hours = 24;
  ASSERT_EQ(ad__reserve_size(&p, t, n, NOW, 0, &r, NULL), 15);
}

TEST(slow_platform_keeps_the_minimum)
{
  int64_t t[] = {NOW - 3 * DAY - 5 * HOUR, NOW - 10 * DAY}; /* under one a week */
  ad__reserve_policy_t p;
  ad__reserve_policy_default(&p);
  ad__reserve_t r;
  ASSERT_EQ(ad__reserve_size(&p, t, 2, NOW, 0, &r, NULL), 1);
  ASSERT(r.ewma_per_day > 0 && r.ewma_per_day < 1.0 / 7 + 0.05);
  ASSERT_EQ(r.burst_per_day, 0);
  ASSERT_EQ(r.ceiled, 1); /* ceil of a small positive number */
  ASSERT(r.clamped == NULL);
  p.min = 2;
  ASSERT_EQ(ad__reserve_size(&p, t, 2, NOW, 0, &r, NULL), 2);
  ASSERT_STR(r.clamped, "min");
}

TEST(empty_history)
{
  ad__reserve_policy_t p;
  ad__reserve_policy_default(&p);
  ad__reserve_t r;
  ASSERT_EQ(ad__reserve_size(&p, NULL, 0, NOW, 0, &r, NULL), 1);
  ASSERT_EQ(r.rate_per_day, 0);
  ASSERT_EQ(r.ceiled, 0);
  ASSERT_STR(r.clamped, "min");
  p.min = 0;
  ASSERT_EQ(ad__reserve_size(&p, NULL, 0, NOW, 0, &r, NULL), 0);
  ASSERT(r.clamped == NULL);
}

TEST(burst_raises_within_the_day)
{
  int64_t t[16] = {NOW - 9 * DAY, NOW - 2 * DAY}; /* a quiet platform */
  size_t n = 2;
  ad__reserve_policy_t p;
  ad__reserve_policy_default(&p);
  ad__reserve_t r;
  ASSERT_EQ(ad__reserve_size(&p, t, n, NOW, 0, &r, NULL), 1);
  /* six openings in the last hour: 6 in 6 h reads as 24 a day */
  for (int i = 0; i < 6; i++)
    t[n++] = NOW - (i + 1) * 10 * 60000;
  ASSERT_EQ(ad__reserve_size(&p, t, n, NOW, 0, &r, NULL), 3); /* ceil(24/12*1.5) */
  ASSERT_STR(r.rate_from, "burst");
  ASSERT(near(r.burst_per_day, 24));
  ASSERT(r.ewma_per_day < 3); /* the average alone would have said 1 */
  ASSERT_EQ(r.in_burst, 6);
  /* one lone opening moves a slow platform by at most 4/day: still 1 */
  int64_t one[] = {NOW - 60000};
  ASSERT_EQ(ad__reserve_size(&p, one, 1, NOW, 0, &r, NULL), 1);
  ASSERT(near(r.burst_per_day, 4));
  /* seven hours later the burst has left the short window; the average
   * still remembers it */
  ASSERT_EQ(ad__reserve_size(&p, t, n, NOW + 7 * HOUR, 0, &r, NULL), 1);
  ASSERT_STR(r.rate_from, "ewma");
  ASSERT(r.ewma_per_day > 1);
}

TEST(clamp_max)
{
  static int64_t t[1000];
  for (int i = 0; i < 1000; i++)
    t[i] = NOW - i * 3000; /* 1000 in under an hour */
  ad__reserve_policy_t p;
  ad__reserve_policy_default(&p);
  ad__reserve_t r;
  ASSERT_EQ(ad__reserve_size(&p, t, 1000, NOW, 0, &r, NULL), 50);
  ASSERT_STR(r.clamped, "max");
  ASSERT(r.ceiled > 50);
}

TEST(future_and_old_openings_ignored)
{
  int64_t t[] = {NOW + HOUR, NOW - 15 * DAY, NOW - 14 * DAY - 1, NOW - 14 * DAY, NOW};
  ad__reserve_policy_t p;
  ad__reserve_policy_default(&p);
  ad__reserve_t r;
  ad__reserve_size(&p, t, 5, NOW, 0, &r, NULL);
  ASSERT_EQ(r.in_window, 2); /* exactly 14 days old is the last bucket's edge; NOW is bucket 1 */
  ASSERT_EQ(r.in_burst, 1);
}

TEST(recent_days_weigh_more)
{
  static int64_t old[100], recent[100];
  size_t n = 0, m = 0;
  for (int i = 0; i < 20; i++) {
    old[n++] = NOW - 12 * DAY - i * HOUR;   /* 20 openings 12 days ago */
    recent[m++] = NOW - 1 * DAY - i * HOUR; /* 20 openings 1-2 days ago */
  }
  ad__reserve_policy_t p;
  ad__reserve_policy_default(&p);
  ad__reserve_t a, b;
  ad__reserve_size(&p, old, n, NOW, 0, &a, NULL);
  ad__reserve_size(&p, recent, m, NOW, 0, &b, NULL);
  ASSERT(b.ewma_per_day > 10 * a.ewma_per_day); /* 2^(10/3) ~ 10x */
  /* alpha in the JSON sets the same half-life */
  json_t *o = json_pack("{s:f}", "alpha", 1 - pow(0.5, 1.0 / 3));
  ad__reserve_policy_t q;
  ASSERT_EQ(ad__reserve_policy_from_json(&q, o, "p", NULL), 0);
  ASSERT(fabs(q.half_life_days - 3) < 1e-9);
  json_decref(o);
}

TEST(young_platform)
{
  /* started 2 days ago, 20 openings since: the 12 days before it existed
   * are not zeros */
  static int64_t t[20];
  for (int i = 0; i < 20; i++)
    t[i] = NOW - (i * 2 + 1) * HOUR - 30 * 60000;
  ad__reserve_policy_t p;
  ad__reserve_policy_default(&p);
  ad__reserve_t a, b;
  ad__reserve_size(&p, t, 20, NOW, NOW - 2 * DAY, &a, NULL);
  ad__reserve_size(&p, t, 20, NOW, 0, &b, NULL);
  ASSERT_EQ(a.buckets, 2);
  ASSERT(a.ewma_per_day > 9 && a.ewma_per_day < 11);
  ASSERT(b.ewma_per_day < 5 && a.ewma_per_day > 2 * b.ewma_per_day); /* diluted over 14 */
  ASSERT_EQ(b.buckets, 14);
}

TEST(policy_json_errors_name_the_key)
{
  ad__reserve_policy_t p;
  ad_error_t e;
  json_t *o = json_pack("{s:i}", "windw_days", 3);
  ASSERT_EQ(ad__reserve_policy_from_json(&p, o, "platforms[1].policy", &e), AD_ECONFIG);
  ASSERT(strstr(e.message, "platforms[1].policy.windw_days: unknown key"));
  json_decref(o);
  o = json_pack("{s:f}", "window_days", 2.5);
  ASSERT_EQ(ad__reserve_policy_from_json(&p, o, "x", &e), AD_ECONFIG);
  ASSERT(strstr(e.message, "x.window_days 2.5: must be a whole number"));
  json_decref(o);
  o = json_pack("{s:f}", "safety", 0.5);
  ASSERT_EQ(ad__reserve_policy_from_json(&p, o, "x", &e), AD_ECONFIG);
  ASSERT(strstr(e.message, "safety 0.5: must be 1..100"));
  json_decref(o);
  o = json_pack("{s:s}", "max", "ten");
  ASSERT_EQ(ad__reserve_policy_from_json(&p, o, "x", &e), AD_ECONFIG);
  ASSERT(strstr(e.message, "x.max: must be a number"));
  json_decref(o);
  o = json_pack("{s:i, s:i, s:f}", "min", 2, "max", 9, "horizon_hours", 0.5);
  ASSERT_EQ(ad__reserve_policy_from_json(&p, o, "x", &e), 0);
  ASSERT_EQ(p.min, 2);
  ASSERT_EQ(p.max, 9);
  ASSERT_EQ(p.horizon_hours, 0.5);
  ASSERT_EQ(p.window_days, 14); /* untouched keys keep defaults */
  json_decref(o);
  p.max = 1;
  ASSERT_EQ(ad__reserve_size(&p, NULL, 0, NOW, 0, NULL, &e), AD_EINVAL);
  ASSERT(strstr(e.message, "min 2, max 1"));
}

TEST(explanation_json)
{
  int64_t t[] = {NOW - HOUR};
  ad__reserve_policy_t p;
  ad__reserve_policy_default(&p);
  ad__reserve_t r;
  ad__reserve_size(&p, t, 1, NOW, 0, &r, NULL);
  json_t *j = ad__reserve_to_json(&r);
  ASSERT(j);
  ASSERT_EQ(json_integer_value(json_object_get(j, "size")), 1);
  ASSERT_STR(json_string_value(json_object_get(j, "rate_from")), "burst");
  ASSERT(json_is_null(json_object_get(j, "clamped")));
  ASSERT(near(json_real_value(json_object_get(j, "horizon_hours")), 2));
  ASSERT(strstr(json_string_value(json_object_get(j, "formula")), "ceil(0.500) = 1"));
  json_decref(j);
}

RUN(CASE(ten_a_day), CASE(slow_platform_keeps_the_minimum), CASE(empty_history),
    CASE(burst_raises_within_the_day), CASE(clamp_max), CASE(future_and_old_openings_ignored),
    CASE(recent_days_weigh_more), CASE(young_platform), CASE(policy_json_errors_name_the_key),
    CASE(explanation_json))
