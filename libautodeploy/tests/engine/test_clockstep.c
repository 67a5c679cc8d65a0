/* test_clockstep.c - the engine's watch on the wall clock (clockstep.c)
 * on fake clocks and a fake store: a step is moved once, with the right
 * amount and `since`; a failed move is owed and the watchdog told to wait
 * until it succeeds; a slewing clock moves nothing. The same end to end
 * under libfaketime: tests/faults/test_clock_jump.py. */
#include <stdint.h>

#include "core/error_private.h"
#include "engine/engine_private.h"
#include "harness.h"

static int64_t wall_now, boot_now;
static int64_t fw(void) { return wall_now; }
static int64_t fb(void) { return boot_now; }

/* the store: how often asked, with what, and whether it is down */
static struct {
  int calls, down;
  int64_t step, since, moved;
} st;

static int64_t fake_shift(void *user, int64_t step_ms, int64_t since, ad_error_t *err)
{
  (void)user;
  st.calls++;
  if (st.down)
    return ad__err(err, AD_ECONNECT, "store", "MongoDB unreachable");
  st.step = step_ms;
  st.since = since;
  return st.moved;
}

static void tick(int64_t ms)
{
  wall_now += ms;
  boot_now += ms;
}

static ad__clock_steps_t fresh(void)
{
  memset(&st, 0, sizeof st);
  wall_now = 1700000000000LL;
  boot_now = 77000;
  ad__clock_steps_t c = {.wall = fw, .boot = fb, .shift = fake_shift};
  return c;
}

TEST(no_step_no_move)
{
  ad__clock_steps_t c = fresh();
  for (int i = 0; i < 100; i++) {
    ASSERT_EQ(ad__clock_steps_check(&c), 0);
    tick(1000);
    wall_now += i % 2; /* slew */
  }
  ASSERT_EQ(st.calls, 0);
  ASSERT_EQ(c.steps, 0);
}

TEST(forward_step_moved_once)
{
  ad__clock_steps_t c = fresh();
  st.moved = 3;
  ASSERT_EQ(ad__clock_steps_check(&c), 0);
  tick(1000);
  int64_t before = wall_now;
  wall_now += 3600000;
  tick(400);
  ASSERT_EQ(ad__clock_steps_check(&c), 0);
  ASSERT_EQ(st.calls, 1);
  ASSERT_EQ(st.step, 3600000);
  ASSERT_EQ(st.since, before - 1000 + 3600000); /* the previous reading, on the new clock */
  ASSERT_EQ(c.steps, 1);
  ASSERT_EQ(c.moved, 3);
  ASSERT_EQ(c.last_step_ms, 3600000);
  tick(1000);
  ASSERT_EQ(ad__clock_steps_check(&c), 0);
  ASSERT_EQ(st.calls, 1); /* not again */
  json_t *s = ad__clock_steps_stats(&c);
  ASSERT_EQ(json_integer_value(json_object_get(s, "steps")), 1);
  ASSERT_EQ(json_integer_value(json_object_get(s, "deadlines_moved")), 3);
  ASSERT_EQ(json_integer_value(json_object_get(s, "last_step_ms")), 3600000);
  json_decref(s);
}

TEST(failed_move_is_owed_and_the_watchdog_waits)
{
  ad__clock_steps_t c = fresh();
  st.down = 1;
  ASSERT_EQ(ad__clock_steps_check(&c), 0);
  tick(1000);
  wall_now -= 7200000;
  ASSERT_EQ(ad__clock_steps_check(&c), -1); /* owed: no watchdog pass */
  tick(1000);
  ASSERT_EQ(ad__clock_steps_check(&c), -1);
  ASSERT_EQ(st.calls, 2);
  st.down = 0;
  st.moved = 1;
  tick(1000);
  ASSERT_EQ(ad__clock_steps_check(&c), 0);
  ASSERT_EQ(st.step, -7200000); /* the whole step, once */
  ASSERT_EQ(c.steps, 1);
  ASSERT_EQ(c.moved, 1);
  tick(1000);
  ASSERT_EQ(ad__clock_steps_check(&c), 0);
  ASSERT_EQ(st.calls, 3);
}

TEST(two_steps_while_owed_add_up)
{
  ad__clock_steps_t c = fresh();
  st.down = 1;
  ASSERT_EQ(ad__clock_steps_check(&c), 0);
  tick(1000);
  wall_now += 3600000;
  ASSERT_EQ(ad__clock_steps_check(&c), -1);
  tick(1000);
  wall_now -= 600000;
  st.down = 0;
  ASSERT_EQ(ad__clock_steps_check(&c), 0);
  ASSERT_EQ(st.step, 3000000);
  ASSERT_EQ(c.steps, 2);
  ASSERT_EQ(c.last_step_ms, -600000);
}

TEST(no_shift_only_logged)
{
  ad__clock_steps_t c = fresh();
  c.shift = NULL;
  ASSERT_EQ(ad__clock_steps_check(&c), 0);
  tick(1000);
  wall_now += 5000;
  ASSERT_EQ(ad__clock_steps_check(&c), 0);
  ASSERT_EQ(c.steps, 1);
  ASSERT_EQ(c.owed_ms, 0);
}

RUN(CASE(no_step_no_move), CASE(forward_step_moved_once),
    CASE(failed_move_is_owed_and_the_watchdog_waits), CASE(two_steps_while_owed_add_up),
    CASE(no_shift_only_logged))
