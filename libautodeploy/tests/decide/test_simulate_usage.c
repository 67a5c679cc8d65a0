/* test_simulate_usage.c - the simulator's per-service usage (issue 15): the
 * platform's footprint follows the engine's rule over measured services
 * (decide/placement.c ad__footprint_from), the report says where each
 * dimension came from, a measured footprint changes the hosts needed, and
 * bad entries name the field. docs/usage.md shows the same comparison. */
#include <math.h>

#include "harness.h"
#include "decide/simulate.h"

/* 24 openings in a day, 4 hosts of 16 cores / 32 GiB; a hand-set footprint
 * of 4 cores / 8 GiB per server. */
static json_t *input(void)
{
  json_t *in = json_loads("{\"platforms\": [{\"code\": \"g1\", \"footprint\": {\"cpu\": 4, \"mem\": 8192},"
                          "  \"policy\": {\"min\": 2}}],"
                          " \"hosts\": [], \"openings\": [],"
                          " \"options\": {\"start\": \"2024-05-01T00:00:00Z\", \"end\": \"2024-05-02T02:00:00Z\"}}",
                          0, NULL);
  for (int i = 0; i < 4; i++) {
    char key[8];
    snprintf(key, sizeof key, "h%d", i);
    json_array_append_new(json_object_get(in, "hosts"),
                          json_pack("{s:s,s:i,s:i,s:s}", "key", key, "cpu", 16, "mem", 32768, "profile", "std"));
  }
  for (int h = 0; h < 24; h++) {
    char at[32];
    snprintf(at, sizeof at, "2024-05-01T%02d:30:00Z", h);
    json_array_append_new(json_object_get(in, "openings"), json_pack("{s:s,s:s}", "platform", "g1", "at", at));
  }
  return in;
}

static double num(const json_t *o, const char *a, const char *b)
{
  return json_number_value(json_object_get(json_object_get(o, a), b));
}

static const char *src(const json_t *r, const char *dim, const char *key)
{
  json_t *fp = json_object_get(json_object_get(json_object_get(r, "platforms"), "g1"), "footprint");
  return json_string_value(json_object_get(json_object_get(json_object_get(fp, "sources"), dim), key));
}

TEST(measured_footprint_changes_the_hosts_needed)
{
  json_t *in = input();
  ad_error_t e = {0};
  json_t *hand = ad__simulate(in, &e);
  ASSERT(hand);
  ASSERT_STR(src(hand, "cpu", "from"), "platform default");
  /* measured: the busiest of three recent servers used 1.5 cores, another 3 GiB */
  json_object_set_new(json_array_get(json_object_get(in, "platforms"), 0), "usage",
                      json_pack("[{s:s,s:f,s:f},{s:s,s:f,s:f},{s:s,s:f}]", "service", "g1-s1", "cpu", 1.2,
                                "mem", 2048.0, "service", "g1-s2", "cpu", 1.5, "mem", 3072.0, "service",
                                "g1-s3", "cpu", 0.9));
  json_t *meas = ad__simulate(in, &e);
  ASSERT(meas);
  json_t *fp = json_object_get(json_object_get(json_object_get(meas, "platforms"), "g1"), "footprint");
  ASSERT(fabs(json_real_value(json_object_get(fp, "cpu")) - 1.5) < 1e-9);
  ASSERT(fabs(json_real_value(json_object_get(fp, "mem")) - 3072) < 1e-9);
  ASSERT_STR(src(meas, "cpu", "service"), "g1-s2");
  ASSERT_STR(src(meas, "mem", "service"), "g1-s2");
  /* 4 cores x 8 GiB: 3 servers per host (12.8 cores at 0.8) -> 12 fit, the rest wait
   * and more hosts are needed; 1.5 cores x 3 GiB: 8 per host, everything placed */
  fprintf(stderr, "  hand-set: used %g, to buy %g, waited %g h; measured: used %g, to buy %g, waited %g h\n",
          num(hand, "hosts", "used"), num(hand, "to_buy", "hosts"), num(hand, "resource_wait_hours", "total"),
          num(meas, "hosts", "used"), num(meas, "to_buy", "hosts"), num(meas, "resource_wait_hours", "total"));
  ASSERT(num(hand, "to_buy", "hosts") > 0);
  ASSERT_EQ(num(meas, "to_buy", "hosts"), 0);
  ASSERT_EQ(num(meas, "resource_wait_hours", "total"), 0);
  ASSERT(num(meas, "hosts", "used") < num(hand, "hosts", "used") ||
         num(hand, "resource_wait_hours", "total") > 0);
  json_decref(hand);
  json_decref(meas);
  json_decref(in);
}

TEST(usage_errors_name_the_field)
{
  json_t *in = input();
  json_t *p = json_array_get(json_object_get(in, "platforms"), 0);
  ad_error_t e = {0};
  json_object_set_new(p, "usage", json_pack("[{s:s,s:f},{s:s,s:s}]", "service", "a", "cpu", 1.0, "service",
                                            "b", "cpu", "2"));
  ASSERT(!ad__simulate(in, &e));
  ASSERT_STR(e.message, "platforms[0].usage[1].cpu: must be a number");
  json_object_set_new(p, "usage", json_pack("[{s:f}]", "cpu", 1.0));
  ASSERT(!ad__simulate(in, &e));
  ASSERT_STR(e.message, "platforms[0].usage[0].service: missing");
  json_object_set_new(p, "usage", json_pack("[{s:s,s:f}]", "service", "a", "cores", 1.0));
  ASSERT(!ad__simulate(in, &e));
  ASSERT(strstr(e.message, "platforms[0].usage[0].cores: unknown key"));
  json_object_set_new(p, "usage", json_string("x"));
  ASSERT(!ad__simulate(in, &e));
  ASSERT(strstr(e.message, "platforms[0].usage: must be a list"));
  json_decref(in);
}

RUN(CASE(measured_footprint_changes_the_hosts_needed), CASE(usage_errors_name_the_field))
