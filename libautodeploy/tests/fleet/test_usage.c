/* test_usage.c - the autodeploy_services beacon's data as the engine reads
 * it (fleet/usage.c): what is accepted, what is refused and why, the usage
 * summary (p95, minimum samples, the window), and where each footprint
 * dimension comes from (decide/placement.c ad__footprint_from). The path
 * through a real minion and MongoDB: tests/test_usage.py. */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "autodeploy/common.h"
#include "decide/placement.h"
#include "fleet/usage.h"

static json_t *J(const char *s)
{
  json_t *j = json_loads(s, 0, NULL);
  if (!j)
    fprintf(stderr, "  bad fixture %s\n", s);
  return j;
}

static const ad__svc_sample_t *find(const ad__svc_sample_t *s, size_t n, const char *id)
{
  for (size_t i = 0; i < n; i++)
    if (!strcmp(s[i].service, id))
      return &s[i];
  return NULL;
}

TEST(decode_up_down_and_bad_entries)
{
  json_t *d = J("{\"id\": \"h1\", \"services\": {"
                "\"qq-s1\": {\"state\": \"up\", \"cpu\": 0.5, \"mem_mb\": 300.25},"
                "\"qq-s2\": {\"state\": \"down\", \"reason\": \"pid 42 is gone\", \"cpu\": 0},"
                "\"qq-s3\": {\"state\": \"up\", \"cpu\": -1},"
                "\"qq-s4\": {\"state\": \"up\", \"cpu\": \"1\"},"
                "\"qq-s5\": {\"state\": \"up\"},"
                "\"qq-s6\": {\"state\": \"sleeping\"},"
                "\"qq-s7\": {\"state\": \"up\", \"mem_mb\": 1e12},"
                "\"bad id\": {\"state\": \"up\", \"cpu\": 1},"
                "\"qq-s8\": {\"state\": \"up\", \"mem_mb\": 64}}}");
  ad__svc_sample_t *s;
  size_t n;
  ad_error_t err = {0};
  ASSERT_EQ(ad__usage_decode("h1", d, &s, &n, &err), 0);
  ASSERT_EQ(n, 9);
  const ad__svc_sample_t *e = find(s, n, "qq-s1");
  ASSERT(e && !e->error && e->up && e->has_cpu && e->has_mem && e->cpu == 0.5 && e->mem_mb == 300.25);
  e = find(s, n, "qq-s2"); /* down: no load at all, never a zero one */
  ASSERT(e && !e->error && !e->up && !e->has_cpu && !e->has_mem);
  ASSERT_STR(e->reason, "pid 42 is gone");
  ASSERT_STR(find(s, n, "qq-s3")->error, "cpu is outside 0..4096");
  ASSERT_STR(find(s, n, "qq-s4")->error, "cpu is not a number");
  ASSERT_STR(find(s, n, "qq-s5")->error, "up without cpu or mem_mb");
  ASSERT_STR(find(s, n, "qq-s6")->error, "state must be \"up\" or \"down\"");
  ASSERT_STR(find(s, n, "qq-s7")->error, "mem_mb is outside 0..67108864");
  ASSERT(find(s, n, "bad id")->error);
  e = find(s, n, "qq-s8");
  ASSERT(e && !e->error && e->has_mem && !e->has_cpu);
  free(s);
  json_decref(d);
}

TEST(decode_refuses_the_event)
{
  ad__svc_sample_t *s = NULL;
  size_t n = 7;
  ad_error_t err = {0};
  json_t *d = J("{\"id\": \"h2\", \"services\": {}}");
  ASSERT_EQ(ad__usage_decode("h1", d, &s, &n, &err), AD_EINVAL); /* a claim about another minion */
  ASSERT(strstr(err.message, "\"id\" does not match the minion in the tag (h1)"));
  ASSERT(!s && n == 0);
  json_decref(d);
  d = J("{\"id\": \"h1\", \"services\": [1]}");
  ASSERT_EQ(ad__usage_decode("h1", d, &s, &n, &err), AD_EINVAL);
  ASSERT(strstr(err.message, "\"services\" must be an object"));
  json_decref(d);
  d = json_pack("{s:s,s:o}", "id", "h1", "services", json_object());
  for (int i = 0; i <= AD__USAGE_MAX_SERVICES; i++) {
    char id[32];
    snprintf(id, sizeof id, "p-s%d", i);
    json_object_set_new(json_object_get(d, "services"), id, json_pack("{s:s,s:f}", "state", "up", "cpu", 1.0));
  }
  ASSERT_EQ(ad__usage_decode("h1", d, &s, &n, &err), AD_EINVAL);
  ASSERT(strstr(err.message, "more than 2000 in one event"));
  json_decref(d);
  d = J("{\"services\": {}}"); /* no id: the tag's minion is the claim */
  ASSERT_EQ(ad__usage_decode("h1", d, &s, &n, &err), 0);
  ASSERT_EQ(n, 0);
  free(s);
  json_decref(d);
}

TEST(summary_p95_min_samples_and_window)
{
  double cpu[100], mem[100];
  for (int i = 0; i < 100; i++) {
    cpu[i] = (i + 1) / 100.0; /* 0.01 .. 1.00: p95 (nearest rank) = 0.95 */
    mem[i] = 1000 + i;
  }
  int64_t from = 1700000000000LL, to = from + 24 * 3600000LL;
  ASSERT(!ad__usage_summary(cpu, 100, mem, 100, 101, from, to, from + 1000, "x")); /* too few */
  json_t *u = ad__usage_summary(cpu, 100, mem, 100, 100, from, to, from + 1000, AD__USAGE_SOURCE_BEACON);
  ASSERT(u);
  ASSERT(fabs(json_real_value(json_object_get(u, "cpu")) - 0.95) < 1e-12);
  ASSERT_EQ(json_real_value(json_object_get(u, "mem_mb")), 1094);
  ASSERT_EQ(json_integer_value(json_object_get(u, "samples")), 100);
  ASSERT(json_is_false(json_object_get(u, "final")));
  ASSERT_STR(json_string_value(json_object_get(json_object_get(u, "window"), "from")),
             "2023-11-14T22:13:20.000Z");
  json_decref(u);
  u = ad__usage_summary(cpu, 100, NULL, 0, 10, from, to, to + 1, "prometheus"); /* after the window: final */
  ASSERT(u && json_is_true(json_object_get(u, "final")) && !json_object_get(u, "mem_mb"));
  json_decref(u);
}

/* A metrics backend's series of one service: only the points in its window
 * [opened, opened + measure_after_hours] (and not past now) count. */
TEST(usage_from_a_backends_series)
{
  int64_t from = 1700000000000LL, to = from + 3600000LL;
  ad__metrics_point_t cpu[40], mem[3] = {{from, 100}, {from + 60000, 300}, {to + 60000, 9000}};
  for (int i = 0; i < 40; i++) /* one a minute from 5 min before opening */
    cpu[i] = (ad__metrics_point_t){from + (i - 5) * 60000LL, i < 5 ? 8.0 : 0.01 * i};
  json_t *u = ad__usage_from_series(cpu, 40, mem, 3, 30, from, to, from + 34 * 60000LL, "zabbix");
  ASSERT(u);
  ASSERT_EQ(json_integer_value(json_object_get(u, "samples")), 35); /* 5 before opening left out */
  ASSERT(fabs(json_real_value(json_object_get(u, "cpu")) - 0.38) < 1e-12); /* 34th of 0.05..0.39 */
  ASSERT_EQ(json_real_value(json_object_get(u, "mem_mb")), 300); /* the one after the window out */
  ASSERT_STR(json_string_value(json_object_get(u, "source")), "zabbix");
  ASSERT(json_is_false(json_object_get(u, "final")));
  json_decref(u);
  ASSERT(!ad__usage_from_series(cpu, 40, mem, 3, 36, from, to, from + 34 * 60000LL, "zabbix"));
  ASSERT(!ad__usage_from_series(NULL, 0, NULL, 0, 1, from, to, to, "zabbix")); /* no series */
}

TEST(footprint_says_where_each_dimension_came_from)
{
  ad__res_t def = {2, 4096};
  ad__res_t s[] = {{0.6, 900}, {0.4, 1500}, {0.6, 200}};
  long fc = 9, fm = 9;
  ad__res_t f = ad__footprint_from(s, 3, def, &fc, &fm);
  ASSERT(f.cpu == 0.6 && f.mem == 1500);
  ASSERT_EQ(fc, 0); /* the first of equals */
  ASSERT_EQ(fm, 1);
  ad__res_t memonly[] = {{0, 700}};
  f = ad__footprint_from(memonly, 1, def, &fc, &fm);
  ASSERT(f.cpu == 2 && f.mem == 700 && fc == -1 && fm == 0);
  f = ad__footprint_from(NULL, 0, def, &fc, &fm);
  ASSERT(f.cpu == 2 && f.mem == 4096 && fc == -1 && fm == -1);
}

RUN(CASE(decode_up_down_and_bad_entries), CASE(decode_refuses_the_event),
    CASE(summary_p95_min_samples_and_window), CASE(usage_from_a_backends_series),
    CASE(footprint_says_where_each_dimension_came_from))
