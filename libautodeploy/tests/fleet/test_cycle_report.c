/* test_cycle_report.c - the one report kept of the engine's last cycle
 * (fleet/cycle_report.c) and its two views: the summary in the status
 * document (every tick: ran, skipped or failed) and the per-platform view
 * of the HTTP API (the last cycle that ran), with the /metrics counters.
 * The same through a real engine: tests/test_status.py, tests/test_http.py. */
#include <string.h>

#include "harness.h"
#include "core/error_private.h"
#include "fleet/fleet_private.h"

static json_t *J(const char *s)
{
  json_t *j = json_loads(s, 0, NULL);
  if (!j)
    fprintf(stderr, "  bad fixture %s\n", s);
  return j;
}

/* j as compact text in its own key order (then freed), without `drop`. */
static char *text(json_t *j, const char *drop)
{
  if (drop)
    json_object_del(j, drop);
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  return s ? s : strdup("(null)");
}

static const char REPORT[] =
    "{\"ran\": true, \"dry_run\": false, \"at\": \"2025-11-27T10:00:00.000Z\", \"hosts\": 3,"
    " \"platforms\": ["
    "  {\"platform\": \"qq\", \"reserve\": {\"size\": 4, \"rate_per_day\": 1.5},"
    "   \"created\": [\"qq-s1\", \"qq-s2\"], \"placed\": [{\"service\": \"qq-s1\"}],"
    "   \"waiting\": [{\"service\": \"qq-s2\", \"reason\": \"no fit\"}]},"
    "  {\"platform\": \"wx\", \"error\": \"reserve policy: bad\"}],"
    " \"ms\": 12, \"load_error\": \"history down\"}";

static const char SUMMARY[] =
    "{\"ran\":true,\"ms\":12,\"hosts\":3,\"created\":2,\"placed\":1,\"waiting\":1,"
    "\"platforms\":{\"qq\":{\"reserve_target\":4,\"created\":2,\"placed\":1,\"waiting\":1},"
    "\"wx\":{\"reserve_target\":null,\"error\":\"reserve policy: bad\",\"created\":0,"
    "\"placed\":0,\"waiting\":0}},\"load_error\":\"history down\"}";

static ad__fleet_t *fleet(void)
{
  ad__fleet_t *f = calloc(1, sizeof *f);
  if (f)
    pthread_mutex_init(&f->last_lock, NULL);
  return f;
}

static void fleet_free(ad__fleet_t *f)
{
  json_decref(f->last);
  pthread_mutex_destroy(&f->last_lock);
  free(f);
}

static json_int_t counter(ad__fleet_t *f, const char *k)
{
  json_t *s = ad__fleet_cycle_stats(f);
  json_int_t n = json_integer_value(json_object_get(s, k));
  json_decref(s);
  return n;
}

TEST(before_the_first_cycle)
{
  ad__fleet_t *f = fleet();
  char *s = text(ad__fleet_last_cycle_summary(f), NULL);
  ASSERT_STR(s, "null");
  free(s);
  fleet_free(f);
}

TEST(a_cycle_that_ran)
{
  ad__fleet_t *f = fleet();
  json_t *r = J(REPORT);
  ad__fleet_keep_cycle(f, r, NULL, 1500);
  json_decref(r); /* the kept report holds its own reference */
  json_t *sum = ad__fleet_last_cycle_summary(f);
  const char *at = json_string_value(json_object_get(sum, "at"));
  ASSERT(at && strlen(at) == 24 && at[23] == 'Z');
  char *s = text(sum, "at");
  ASSERT_STR(s, SUMMARY);
  free(s);
  ASSERT_EQ(counter(f, "runs"), 1);
  ASSERT_EQ(counter(f, "failures"), 0);
  fleet_free(f);
}

/* A skipped cycle and a failed one are the summary's news, and only the
 * failure is counted. */
TEST(skipped_and_failed_cycles_leave_the_last_report)
{
  ad__fleet_t *f = fleet();
  json_t *r = J(REPORT), *skipped = J("{\"ran\": false, \"skipped\": \"other:7:0x1\"}");
  ad__fleet_keep_cycle(f, r, NULL, 1500);
  ad__fleet_keep_cycle(f, skipped, NULL, 3);
  char *s = text(ad__fleet_last_cycle_summary(f), "at");
  ASSERT_STR(s, "{\"ran\":false,\"skipped\":\"other:7:0x1\"}");
  free(s);
  ASSERT_EQ(counter(f, "runs"), 1);

  ad_error_t err;
  ad__err(&err, AD_ECONNECT, "fleet", "cycle lease: the database is unreachable");
  ad__fleet_keep_cycle(f, NULL, &err, 40);
  s = text(ad__fleet_last_cycle_summary(f), "at");
  ASSERT_STR(s, "{\"ran\":false,\"error\":\"cycle lease: the database is unreachable\"}");
  free(s);
  ASSERT_EQ(counter(f, "runs"), 2);
  ASSERT_EQ(counter(f, "failures"), 1);

  ad__fleet_keep_cycle(f, r, NULL, 1500); /* ran again */
  s = text(ad__fleet_last_cycle_summary(f), "at");
  ASSERT_STR(s, SUMMARY);
  free(s);
  json_decref(r);
  json_decref(skipped);
  fleet_free(f);
}

TEST(a_skipped_first_cycle_has_no_report)
{
  ad__fleet_t *f = fleet();
  json_t *skipped = J("{\"ran\": false, \"skipped\": \"other:7:0x1\"}");
  ad__fleet_keep_cycle(f, skipped, NULL, 3);
  char *s = text(ad__fleet_last_cycle_summary(f), "at");
  ASSERT_STR(s, "{\"ran\":false,\"skipped\":\"other:7:0x1\"}");
  free(s);
  ASSERT_EQ(counter(f, "runs"), 0);
  json_decref(skipped);
  fleet_free(f);
}

RUN(CASE(before_the_first_cycle), CASE(a_cycle_that_ran),
    CASE(skipped_and_failed_cycles_leave_the_last_report), CASE(a_skipped_first_cycle_has_no_report))
