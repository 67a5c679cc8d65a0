/*
 * timers.c - the engine's periodic work (stats, the task watchdog, the
 * registry's and the fleet's ticks, the leader lease) and the loop that
 * waits for it or for ad_engine_stop. The periodic loops run only on the
 * leader (leader.c); each asks before its pass.
 *
 * Intervals are measured on CLOCK_MONOTONIC: a wall clock stepped by NTP
 * or an operator would stall the watchdog (set back) or fire every timer at
 * once (set forward). The modules' own timestamps stay on the wall clock;
 * a step of it is watched for every second (clockstep.c).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/log_private.h"
#include "engine/engine_private.h"

int ad__timers_wait(const ad__timer_t *t, size_t n, int64_t now)
{
  int64_t next = INT64_MAX;
  for (size_t i = 0; i < n; i++)
    if (t[i].next < next)
      next = t[i].next;
  if (next == INT64_MAX)
    return -1;
  if (next <= now)
    return 0;
  return next - now > INT32_MAX ? INT32_MAX : (int)(next - now);
}

void ad__timers_run(ad__timer_t *t, size_t n, int64_t now, int64_t (*clock)(void),
                    void *user)
{
  for (size_t i = 0; i < n; i++) {
    if (t[i].next == INT64_MAX || now < t[i].next)
      continue;
    int64_t in = t[i].fire(user);
    t[i].next = clock() + in;
  }
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

static int64_t fire_stats(void *user)
{
  ad_engine_t *eng = user;
  char *s = ad_engine_stats_json(eng);
  AD_LOG_I("engine", "stats %s", s ? s : "{}");
  free(s);
  return eng->c.stats_interval * 1000LL;
}

static int64_t fire_status(void *user)
{
  ad_engine_t *eng = user;
  ad__engine_status_publish(eng, "running");
  return eng->c.status_interval * 1000LL;
}

/* Every second, so that a step is seen before much is written on the new
 * clock (clockstep.c). */
static int64_t fire_clock(void *user)
{
  ad__clock_steps_check(&((ad_engine_t *)user)->clock);
  return 1000;
}

static int64_t fire_watchdog(void *user)
{
  ad_engine_t *eng = user;
  /* deadlines are wall-clock times: not while a step's move is owed */
  if (ad__clock_steps_check(&eng->clock) == 0 && ad__engine_leads(eng, "watchdog pass"))
    ad__tasks_watchdog(&eng->tasks);
  return eng->c.watchdog_interval * 1000LL;
}

static int64_t fire_registry(void *user)
{
  ad_engine_t *eng = user;
  if (!ad__engine_leads(eng, "registry pass"))
    return 1000;
  /* presence hints may ask for an earlier pass: look at least every second */
  return clamp(ad__registry_tick(eng->registry), 10, 1000);
}

static int64_t fire_fleet(void *user)
{
  ad_engine_t *eng = user;
  if (!ad__engine_leads(eng, "fleet pass"))
    return 1000;
  return clamp(ad__fleet_tick(eng->fleet), 10, 5000);
}

static int64_t fire_purchase(void *user)
{
  ad_engine_t *eng = user;
  if (!ad__engine_leads(eng, "purchase pass"))
    return 1000;
  return clamp(ad__purchase_tick(eng->purchase), 100, 60000);
}

static int64_t fire_leader(void *user)
{
  return ad__engine_leader_tick(user);
}

void ad__engine_loop(ad_engine_t *eng)
{
  if (eng->leader) /* claim before the first pass, not a renewal period later */
    ad__engine_leader_tick(eng);
  int64_t now = ad__mono_ms();
  eng->clock.shift = ad__engine_clock_shift;
  eng->clock.user = eng;
  ad__clock_steps_check(&eng->clock); /* the first reading */
  ad__timer_t timers[] = {
      /* first: a step is seen before any other pass of the round */
      {"clock", now + 1000, fire_clock},
      {"stats", eng->c.stats_interval > 0 ? now + eng->c.stats_interval * 1000LL : INT64_MAX,
       fire_stats},
      {"status", eng->store && eng->c.status_interval > 0 ? now : INT64_MAX, fire_status},
      {"watchdog", eng->tasks.store ? now + eng->c.watchdog_interval * 1000LL : INT64_MAX,
       fire_watchdog},
      {"registry", eng->registry ? now : INT64_MAX, fire_registry},
      {"fleet", eng->fleet ? now : INT64_MAX, fire_fleet},
      {"purchase", eng->purchase ? now : INT64_MAX, fire_purchase},
      {"backfill", *eng->backfill.mark_path ? now : INT64_MAX, ad__engine_backfill_tick},
      /* last: loops due at the same moment see a lapse that a pause caused
       * (and refuse) before the claim finds out who leads now */
      {"leader", eng->leader ? now + ad__lease_next_ms(eng->leader) : INT64_MAX, fire_leader},
  };
  size_t n = sizeof timers / sizeof timers[0];
  struct pollfd p = {.fd = eng->stop_fd, .events = POLLIN};
  for (;;) {
    int r = poll(&p, 1, ad__timers_wait(timers, n, ad__mono_ms()));
    if (r > 0 || (r < 0 && errno != EINTR))
      break;
    ad__timers_run(timers, n, ad__mono_ms(), ad__mono_ms, eng);
  }
}
