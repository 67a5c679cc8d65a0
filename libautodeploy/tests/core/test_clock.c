/* test_clock.c - core/clock: the wall and monotonic clocks, ISO-8601. */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "core/clock.h"

TEST(iso_format)
{
  char out[32];
  ad__iso_ms(0, out);
  ASSERT_STR(out, "1970-01-01T00:00:00.000Z");
  ad__iso_ms(1714550400250LL, out);
  ASSERT_STR(out, "2024-05-01T08:00:00.250Z");
  ad__iso_ms(1709164799999LL, out); /* leap day, last millisecond */
  ASSERT_STR(out, "2024-02-28T23:59:59.999Z");
  ad__iso_ms(253402300799999LL, out);
  ASSERT_STR(out, "9999-12-31T23:59:59.999Z");
  ad__iso_ms(-1, out); /* the millisecond before the epoch */
  ASSERT_STR(out, "1969-12-31T23:59:59.999Z");
}

/* Times come from events and feeds (an opening's at_ms): every int64 is
 * formatted without overflow. INT64_MIN overflowed in the rounding (UBSan,
 * found by fuzz/fuzz_events.c). */
TEST(iso_format_any_int64)
{
  static const int64_t MS[] = {INT64_MIN, INT64_MIN + 999, INT64_MAX, -1000, -999};
  for (size_t i = 0; i < sizeof MS / sizeof MS[0]; i++) {
    char out[32];
    ad__iso_ms(MS[i], out);
    size_t n = strlen(out);
    ASSERT(n > 0 && n < 32 && (out[n - 1] == 'Z' || !strcmp(out, "?")));
  }
  char out[32];
  ad__iso_ms(-999, out);
  ASSERT_STR(out, "1969-12-31T23:59:59.001Z");
}

TEST(iso_precisions)
{
  char out[32];
  ad__iso_format(1714550400250LL, AD__ISO_S, out);
  ASSERT_STR(out, "2024-05-01T08:00:00Z");
  ad__iso_format(-1, AD__ISO_S, out);
  ASSERT_STR(out, "1969-12-31T23:59:59Z");
  ad__iso_format(1714550400250LL, AD__ISO_MS_IF_ANY, out);
  ASSERT_STR(out, "2024-05-01T08:00:00.250Z");
  ad__iso_format(1714550400000LL, AD__ISO_MS_IF_ANY, out);
  ASSERT_STR(out, "2024-05-01T08:00:00Z");
  ad__iso_format(5, AD__ISO_MS_IF_ANY, out);
  ASSERT_STR(out, "1970-01-01T00:00:00.005Z");
  ad__iso_format(1714550400000LL, AD__ISO_MS, out);
  ASSERT_STR(out, "2024-05-01T08:00:00.000Z");
}

TEST(iso_round_trip)
{
  static const int64_t ms[] = {0, 1, 999, 1000, 86399999, 951782400000LL, 1709251199123LL,
                               1714550400250LL, 4102444800000LL, -1, -1000, -86400001};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
    char out[32];
    int64_t back = 42;
    ad__iso_ms(ms[i], out);
    ASSERT_EQ(ad__time_parse(out, &back), 0);
    ASSERT_EQ(back, ms[i]);
  }
}

TEST(parse_forms)
{
  int64_t ms = 0;
  ASSERT_EQ(ad__time_parse("2024-05-01T08:00:00Z", &ms), 0);
  ASSERT_EQ(ms, 1714550400000LL);
  ASSERT_EQ(ad__time_parse("2024-05-01T16:00:00+08:00", &ms), 0);
  ASSERT_EQ(ms, 1714550400000LL);
  ASSERT_EQ(ad__time_parse("2024-05-01 03:30-0430", &ms), 0);
  ASSERT_EQ(ms, 1714550400000LL);
  ASSERT_EQ(ad__time_parse("2024-05-01t08:00:00,5z", &ms), 0);
  ASSERT_EQ(ms, 1714550400500LL);
  ASSERT_EQ(ad__time_parse("2024-05-01", &ms), 0);
  ASSERT_EQ(ms, 1714521600000LL);
  ASSERT_EQ(ad__time_parse("  1714550400.25 ", &ms), 0);
  ASSERT_EQ(ms, 1714550400250LL);
  ASSERT_EQ(ad__time_parse("2024-02-29T00:00Z", &ms), 0);
}

TEST(parse_refuses)
{
  static const char *bad[] = {"", "yesterday", "2024-13-01", "2024-02-30", "2023-02-29",
                              "2024-05-01T25:00", "2024-05-01T08:60", "2024-05-01T08:00:00.",
                              "2024-05-01T08:00+24:00", "2024-05-01T08:00Zjunk", "2024-5-1",
                              "1e12", "12 34", "-5", NULL};
  ASSERT_EQ(ad__time_parse(NULL, &(int64_t){0}), -1);
  for (size_t i = 0; bad[i]; i++) {
    int64_t ms = 7;
    if (ad__time_parse(bad[i], &ms) != -1 || ms != 7) {
      fprintf(stderr, "  accepted '%s'\n", bad[i]);
      ASSERT(0);
    }
  }
}

TEST(wall_clock_is_the_epoch)
{
  int64_t now = ad__now_ms(), t = (int64_t)time(NULL) * 1000;
  ASSERT(now >= t - 1000 && now <= t + 2000);
}

TEST(monotonic_never_decreases)
{
  int64_t prev = ad__mono_ms(), start = prev;
  for (int i = 0; i < 200000; i++) {
    int64_t now = ad__mono_ms();
    ASSERT(now >= prev);
    prev = now;
  }
  struct timespec ts = {0, 20 * 1000000L};
  nanosleep(&ts, NULL);
  int64_t later = ad__mono_ms();
  ASSERT(later - start >= 20);
  ASSERT(later - start < 10000);
}

/* The step watch on a fake pair of clocks: `wall` is what the wall clock
 * says, `boot` the time that really passed. */
TEST(clock_watch_sees_steps_not_slew)
{
  ad__clock_watch_t w = {0};
  int64_t wall = 1700000000000LL, boot = 5000, since = 42;
  ASSERT_EQ(ad__clock_watch(&w, wall, boot, &since), 0); /* the first reading: nothing to compare */
  for (int i = 0; i < 60; i++) { /* a minute of 1 s ticks, NTP slewing at its 500 ppm limit */
    wall += 1000 + 1; /* 0.5 ms slew, rounded up */
    boot += 1000;
    ASSERT_EQ(ad__clock_watch(&w, wall, boot, &since), 0);
  }
  ASSERT_EQ(since, 42); /* untouched without a step */
  /* set forward an hour between two ticks */
  int64_t before = wall;
  wall += 1000 + 3600000;
  boot += 1000;
  ASSERT_EQ(ad__clock_watch(&w, wall, boot, &since), 3600000);
  ASSERT_EQ(since, before + 3600000); /* the previous reading on the new clock */
  wall += 1000, boot += 1000;
  ASSERT_EQ(ad__clock_watch(&w, wall, boot, NULL), 0); /* once: the new clock is the reference */
  /* set back two hours, seen after a long tick (the loop was busy 30 s) */
  before = wall;
  wall += 30000 - 7200000;
  boot += 30000;
  ASSERT_EQ(ad__clock_watch(&w, wall, boot, &since), -7200000);
  ASSERT_EQ(since, before - 7200000);
  /* at the threshold: not a step; just over it: a step, either way */
  wall += 1000 + 999, boot += 1000;
  ASSERT_EQ(ad__clock_watch(&w, wall, boot, NULL), 0);
  wall += 1000 - 999, boot += 1000;
  ASSERT_EQ(ad__clock_watch(&w, wall, boot, NULL), 0);
  wall += 1000 + AD__CLOCK_STEP_MS, boot += 1000;
  ASSERT_EQ(ad__clock_watch(&w, wall, boot, NULL), AD__CLOCK_STEP_MS);
  wall += 1000 - AD__CLOCK_STEP_MS, boot += 1000;
  ASSERT_EQ(ad__clock_watch(&w, wall, boot, NULL), -AD__CLOCK_STEP_MS);
}

/* A suspended host: the wall clock and CLOCK_BOOTTIME both ran on, so
 * that is no step (on CLOCK_MONOTONIC, which stops in a suspend, it
 * would look like one). */
TEST(clock_watch_suspend_is_not_a_step)
{
  ad__clock_watch_t w = {0};
  ASSERT_EQ(ad__clock_watch(&w, 1700000000000LL, 5000, NULL), 0);
  ASSERT_EQ(ad__clock_watch(&w, 1700000000000LL + 3600000, 5000 + 3600000, NULL), 0);
  int64_t wall = ad__now_ms(), boot = ad__boot_ms(), mono = ad__mono_ms();
  ASSERT(boot > 0 && boot >= mono);
  ad__clock_watch_t real = {0};
  ASSERT_EQ(ad__clock_watch(&real, wall, boot, NULL), 0);
  ASSERT_EQ(ad__clock_watch(&real, ad__now_ms(), ad__boot_ms(), NULL), 0);
}

RUN(CASE(iso_format), CASE(iso_format_any_int64), CASE(iso_precisions), CASE(iso_round_trip),
    CASE(parse_forms), CASE(parse_refuses),
    CASE(wall_clock_is_the_epoch), CASE(monotonic_never_decreases),
    CASE(clock_watch_sees_steps_not_slew), CASE(clock_watch_suspend_is_not_a_step))
