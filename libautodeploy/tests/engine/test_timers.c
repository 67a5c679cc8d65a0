/* test_timers.c - the engine's timers on a fake clock: the wait until the
 * earliest one, only due timers fire, and each next run is counted from
 * the clock read after the work (a slow tick does not make the next one
 * due at once). The engine feeds these the monotonic clock. */
#include <stdint.h>

#include "engine/engine_private.h"
#include "harness.h"

static int64_t fake_now;
static int fired[3];

static int64_t fake_clock(void) { return fake_now; }

/* each "work" takes 7 ms of the fake clock */
static int64_t fire0(void *user) { fired[0]++; fake_now += 7; return 100; }
static int64_t fire1(void *user) { fired[1]++; fake_now += 7; return 1000; }
static int64_t fire2(void *user) { fired[2]++; fake_now += 7; return 10; }

TEST(none_on_waits_forever)
{
  ad__timer_t t[] = {{"a", INT64_MAX, fire0}, {"b", INT64_MAX, fire1}};
  ASSERT_EQ(ad__timers_wait(t, 2, 0), -1);
  ASSERT_EQ(ad__timers_wait(t, 0, 0), -1);
}

TEST(wait_is_to_the_earliest)
{
  ad__timer_t t[] = {{"a", 500, fire0}, {"b", 250, fire1}, {"c", INT64_MAX, fire2}};
  ASSERT_EQ(ad__timers_wait(t, 3, 100), 150);
  ASSERT_EQ(ad__timers_wait(t, 3, 250), 0);
  ASSERT_EQ(ad__timers_wait(t, 3, 9999), 0); /* overdue: no negative wait */
  t[1].next = (int64_t)1 << 40;
  t[0].next = INT64_MAX;
  ASSERT_EQ(ad__timers_wait(t, 3, 0), INT32_MAX); /* poll's int, clamped */
}

TEST(only_due_timers_fire_and_reschedule_after_the_work)
{
  fired[0] = fired[1] = fired[2] = 0;
  fake_now = 1000;
  ad__timer_t t[] = {{"a", 1000, fire0}, {"b", 1001, fire1}, {"c", INT64_MAX, fire2}};
  ad__timers_run(t, 3, fake_now, fake_clock, NULL);
  ASSERT_EQ(fired[0], 1);
  ASSERT_EQ(fired[1], 0);
  ASSERT_EQ(fired[2], 0);
  ASSERT_EQ(t[0].next, 1007 + 100); /* the clock after the work, plus its delay */
  ASSERT_EQ(t[1].next, 1001);
  ASSERT_EQ(t[2].next, INT64_MAX);
  fake_now = 1200;
  ad__timers_run(t, 3, fake_now, fake_clock, NULL);
  ASSERT_EQ(fired[0], 2);
  ASSERT_EQ(fired[1], 1);
  ASSERT_EQ(t[0].next, 1207 + 100);
  ASSERT_EQ(t[1].next, 1214 + 1000);
  ASSERT_EQ(ad__timers_wait(t, 3, fake_now), 1307 - 1214); /* the earliest, a */
}

RUN(CASE(none_on_waits_forever), CASE(wait_is_to_the_earliest),
    CASE(only_due_timers_fire_and_reschedule_after_the_work))
