/* test_simulate.c - the simulator: times, CSV, input errors naming the
 * field, a hand-checked timeline, buying, and the example under
 * tests/data/simulate/ (also what docs/placement.md shows). */
#include <math.h>

#include "harness.h"
#include "core/clock.h"
#include "decide/simulate.h"

static int near(double a, double b) { return fabs(a - b) < 1e-6; }

static double num_at(json_t *o, const char *path)
{
  char buf[200];
  snprintf(buf, sizeof buf, "%s", path);
  json_t *v = o;
  for (char *save, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
    v = json_object_get(v, k);
  return v ? json_number_value(v) : NAN;
}

TEST(times)
{
  int64_t ms;
  ASSERT_EQ(ad__time_parse("2024-05-01T08:00:00Z", &ms), 0);
  ASSERT_EQ(ms, INT64_C(1714550400000));
  ASSERT_EQ(ad__time_parse("2024-05-01T16:00:00+08:00", &ms), 0);
  ASSERT_EQ(ms, INT64_C(1714550400000));
  ASSERT_EQ(ad__time_parse("2024-05-01 03:30-0430", &ms), 0);
  ASSERT_EQ(ms, INT64_C(1714550400000));
  ASSERT_EQ(ad__time_parse("2024-05-01T08:00:00.250", &ms), 0);
  ASSERT_EQ(ms, INT64_C(1714550400250));
  ASSERT_EQ(ad__time_parse("2024-05-01", &ms), 0);
  ASSERT_EQ(ms, INT64_C(1714521600000));
  ASSERT_EQ(ad__time_parse("1714550400", &ms), 0);
  ASSERT_EQ(ms, INT64_C(1714550400000));
  ASSERT_EQ(ad__time_parse(" 1714550400.5 ", &ms), 0);
  ASSERT_EQ(ms, INT64_C(1714550400500));
  const char *bad[] = {"", "2024-13-01", "2024-02-30", "2024-05-01T25:00", "2024-05-01X",
                       "yesterday", "2024-5-1", "12abc", "2024-05-01T08:00:00+25:00"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (ad__time_parse(bad[i], &ms) != -1) {
      fprintf(stderr, "  accepted '%s'\n", bad[i]);
      ASSERT(0);
    }
}

TEST(csv)
{
  json_t *a = json_array();
  ad_error_t e;
  ASSERT_EQ(ad__simulate_csv_openings("platform,timestamp\n# note\n\ng1, 2024-05-01T00:00:00Z\r\n"
                                      "g2,1714550400\n",
                                      "o.csv", a, &e),
            0);
  ASSERT_EQ(json_array_size(a), 2);
  ASSERT_STR(json_string_value(json_object_get(json_array_get(a, 0), "platform")), "g1");
  ASSERT_STR(json_string_value(json_object_get(json_array_get(a, 1), "at")), "1714550400");
  ASSERT_EQ(ad__simulate_csv_openings("g1,2024-05-01\ng1,soon\n", "o.csv", a, &e), AD_ECONFIG);
  ASSERT_STR(e.message, "o.csv line 2: cannot parse 'soon' as ISO-8601 or epoch seconds");
  ASSERT_EQ(ad__simulate_csv_openings("g1 2024-05-01\n", "o.csv", a, &e), AD_ECONFIG);
  ASSERT(strstr(e.message, "o.csv line 1: want 'platform,timestamp'"));
  json_decref(a);
}

static json_t *base(void)
{
  json_error_t je;
  return json_loads("{\"platforms\": [{\"code\": \"g1\", \"footprint\": {\"cpu\": 4, \"mem\": 4096}}],"
                    " \"hosts\": [{\"key\": \"h1\", \"cpu\": 16, \"mem\": 32768}],"
                    " \"openings\": [],"
                    " \"options\": {\"start\": \"2024-05-01T00:00:00Z\","
                    "  \"end\": \"2024-05-01T06:00:00Z\"}}",
                    0, &je);
}

static void add_opening(json_t *in, const char *plat, const char *at)
{
  json_array_append_new(json_object_get(in, "openings"),
                        json_pack("{s:s, s:s}", "platform", plat, "at", at));
}

/* Returns the message of the error ad__simulate reports for `in`. */
static const char *fails(json_t *in)
{
  static ad_error_t e;
  json_t *r = ad__simulate(in, &e);
  json_decref(in);
  if (r) {
    json_decref(r);
    return "(no error)";
  }
  return e.message;
}

TEST(errors_name_the_field)
{
  json_t *in = base();
  add_opening(in, "g9", "2024-05-01T01:00:00Z");
  ASSERT_STR(fails(in), "openings[0].platform: unknown platform 'g9'");
  in = base();
  add_opening(in, "g1", "2024-05-01T01:00:00Z");
  add_opening(in, "g1", "2024-05-01T25:00:00Z");
  ASSERT_STR(fails(in), "openings[1].at: cannot parse '2024-05-01T25:00:00Z' as ISO-8601 or epoch seconds");
  in = base();
  json_array_append_new(json_object_get(in, "hosts"), json_pack("{s:s, s:i, s:i}", "key", "h1", "cpu", 8, "mem", 1024));
  ASSERT_STR(fails(in), "hosts[1].key: duplicate 'h1' (also hosts[0])");
  in = base();
  json_object_set_new(json_array_get(json_object_get(in, "hosts"), 0), "lod_cpu", json_integer(1));
  ASSERT(strstr(fails(in), "hosts[0].lod_cpu: unknown key (known: key, cpu, mem,"));
  in = base();
  json_object_del(json_array_get(json_object_get(in, "platforms"), 0), "footprint");
  ASSERT_STR(fails(in), "platforms[0].footprint: missing (an object {cpu, mem})");
  in = base();
  json_object_set_new(json_array_get(json_object_get(in, "hosts"), 0), "cpu", json_string("16"));
  ASSERT_STR(fails(in), "hosts[0].cpu: must be a number");
  in = base();
  json_object_set_new(json_object_get(in, "options"), "cycle_minutes", json_integer(0));
  ASSERT_STR(fails(in), "options.cycle_minutes 0: must be 1..1440");
  in = base();
  json_object_set_new(json_array_get(json_object_get(in, "platforms"), 0), "policy",
                      json_pack("{s:f}", "safety", 0.1));
  ASSERT_STR(fails(in), "platforms[0].policy: safety 0.1: must be 1..100");
  in = base();
  json_object_del(in, "hosts");
  ASSERT_STR(fails(in), "hosts: missing (an array)");
  ASSERT_STR(fails(json_string("x")), "input: must be a JSON object");
}

/* One host, reserve 1, deploys of 30 minutes, cycles of 10:
 *   00:00 cycle: reserve 1, place one, ready 00:30 -> idle
 *   02:00 opening takes it; 02:00 cycle (same instant, after the replay):
 *         reserve ceil(4/day x 2h x 1.5) = 1, place one, ready 02:30
 *   02:20 opening: none idle, waits; 02:30 the deploy serves it (10 min) */
TEST(timeline)
{
  json_t *in = base();
  add_opening(in, "g1", "2024-05-01T02:00:00Z");
  add_opening(in, "g1", "2024-05-01T02:20:00Z");
  ad_error_t e;
  json_t *r = ad__simulate(in, &e);
  ASSERT(r);
  ASSERT_EQ(num_at(r, "openings"), 2);
  ASSERT_EQ(num_at(r, "openings_waited"), 1);
  ASSERT(near(num_at(r, "opening_wait_hours.total"), 10.0 / 60));
  ASSERT(near(num_at(r, "opening_wait_hours.max"), 10.0 / 60));
  ASSERT_EQ(num_at(r, "resource_wait_hours.total"), 0);
  ASSERT_EQ(num_at(r, "cycles"), 37); /* 00:00 .. 06:00 inclusive */
  json_t *g = json_object_get(json_object_get(r, "platforms"), "g1");
  ASSERT_EQ(num_at(g, "deployed"), 3); /* the first, after each opening */
  ASSERT_EQ(num_at(g, "idle_at_end"), 1);
  ASSERT_EQ(num_at(r, "hosts.used"), 1);
  ASSERT_EQ(num_at(r, "to_buy.hosts"), 0);
  ASSERT_EQ(json_array_size(json_object_get(json_object_get(g, "series"), "reserve")), 7);
  json_decref(r);
  json_decref(in);
}

/* The fleet cannot hold a 14-core service (16 x 0.8 = 12.8); a 48-core
 * host ordered in the first cycle arrives an hour later and takes both
 * waiting services. */
TEST(buy_after_lead_time)
{
  json_t *in = base();
  json_object_set_new(json_array_get(json_object_get(in, "platforms"), 0), "footprint",
                      json_pack("{s:i, s:i}", "cpu", 14, "mem", 4096));
  add_opening(in, "g1", "2024-05-01T00:30:00Z");
  json_t *o = json_object_get(in, "options");
  json_object_set_new(o, "host_lead_hours", json_integer(1));
  json_object_set_new(o, "end", json_string("2024-05-01T03:00:00Z"));
  json_t *r = ad__simulate(in, NULL);
  ASSERT(r);
  ASSERT_EQ(num_at(r, "to_buy.hosts"), 0); /* no host of the largest size would help */
  ASSERT_EQ(num_at(r, "to_buy.not_coverable"), 2);
  ASSERT_EQ(num_at(r, "hosts.bought"), 0);
  json_decref(r);
  json_object_set_new(o, "buy", json_pack("{s:i, s:i, s:s}", "cpu", 48, "mem", 65536, "profile", "big"));
  r = ad__simulate(in, NULL);
  ASSERT(r);
  ASSERT_EQ(num_at(r, "hosts.bought"), 1);
  ASSERT_EQ(num_at(r, "hosts.total"), 2);
  ASSERT_EQ(num_at(r, "to_buy.hosts"), 0);
  /* the opening at 00:30 is served by the deploy placed at 01:00 */
  ASSERT(near(num_at(r, "opening_wait_hours.total"), 1.0));
  /* service 1 waited the cycles 00:00..00:50, service 2 00:30..00:50 */
  ASSERT(near(num_at(r, "resource_wait_hours.total"), 1.0 + 0.5));
  json_decref(r);
  json_decref(in);
}

static json_t *example(void)
{
  char path[512];
  size_t n;
  snprintf(path, sizeof path, "%s/simulate/input.json", h_data_dir());
  char *text = h_slurp(path, &n);
  json_t *in = text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  return in;
}

TEST(example_input)
{
  json_t *in = example();
  ASSERT(in);
  json_t *r = ad__simulate(in, NULL);
  ASSERT(r);
  ASSERT_EQ(num_at(r, "openings"), 41);
  json_t *p = json_object_get(r, "platforms");
  /* g10's burst (8 in 80 minutes) outruns a reserve sized for 10 a day:
   * five openings wait, none longer than 20 minutes */
  ASSERT_EQ(num_at(p, "g10.openings_waited"), 5);
  ASSERT(num_at(p, "g10.max_opening_wait_hours") <= 20.0 / 60 + 1e-9);
  ASSERT_EQ(num_at(p, "g10.reserve.max"), 4);
  ASSERT_STR(json_string_value(json_object_get(json_object_get(json_object_get(p, "g10"), "why"),
                                               "rate_from")), "burst");
  ASSERT_EQ(num_at(p, "g01.openings_waited"), 0);
  /* no reachable host takes 60 cores: big waits to the end, and two
   * 128-core hosts (the largest profile) would be needed */
  ASSERT_EQ(num_at(p, "big.openings_still_waiting"), 1);
  ASSERT_EQ(num_at(r, "to_buy.hosts"), 2);
  ASSERT_EQ(num_at(r, "to_buy.cpu"), 128);
  ASSERT_EQ(num_at(r, "hosts.used"), 3);

  /* the same openings from the CSV give the same report */
  char path[512];
  size_t n;
  snprintf(path, sizeof path, "%s/simulate/openings.csv", h_data_dir());
  char *csv = h_slurp(path, &n);
  ASSERT(csv);
  json_t *ops = json_array();
  ASSERT_EQ(ad__simulate_csv_openings(csv, "openings.csv", ops, NULL), 0);
  free(csv);
  json_object_set_new(in, "openings", ops);
  json_t *r2 = ad__simulate(in, NULL);
  ASSERT(r2);
  ASSERT(json_equal(r, r2));
  json_decref(r2);
  json_decref(r);
  json_decref(in);
}

RUN(CASE(times), CASE(csv), CASE(errors_name_the_field), CASE(timeline), CASE(buy_after_lead_time),
    CASE(example_input))
