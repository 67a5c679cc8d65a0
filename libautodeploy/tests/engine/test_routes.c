/* test_routes.c - the engine's routes are one dispatch: each kind of event
 * matches exactly one route, and each route has its own handler (a handler
 * shared by several patterns would have to look at the tag again, the
 * second dispatch engine.c used to do). log_events adds one more route. */
#include <string.h>

#include "bus/bus_private.h"
#include "engine/engine_private.h"
#include "harness.h"

static const char *const TAGS[] = {
    "salt/minion/m1/start", "salt/job/20261204/ret/m1", "salt/job/20261204/new",
    "autodeploy/intervene/t1", "minion/refresh/m1", "minion_ping",
    "salt/presence/present", "salt/key", "autodeploy/service/qq-s1/opened",
    "salt/beacon/m1/load/", "autodeploy/order/p1-20261205/approve",
    "autodeploy/order/p1-20261205/reject", "autodeploy/order/p1-20261205/placed",
};
#define NTAGS (sizeof TAGS / sizeof TAGS[0])

/* The only route `tag` matches, or -1 (none, or more than one). */
static int only_route(const ad__routes_t *r, const char *tag)
{
  uint64_t m = ad__routes_match(r, tag, strlen(tag));
  if (m == 0 || (m & (m - 1)))
    return -1;
  return __builtin_ctzll(m);
}

TEST(each_event_reaches_one_handler_of_its_own)
{
  ad_error_t err;
  ad_engine_t *eng = ad_engine_new("{}", &err);
  ASSERT(eng != NULL);
  const ad__routes_t *r = &eng->bus->routes;
  int ok = r->n == (int)NTAGS;
  ad_handler_fn seen[NTAGS];
  for (size_t i = 0; ok && i < NTAGS; i++) {
    int k = only_route(r, TAGS[i]);
    ok = k >= 0 && r->r[k].user == eng;
    for (size_t j = 0; ok && j < i; j++)
      ok = seen[j] != r->r[k].fn;
    if (ok)
      seen[i] = r->r[k].fn;
  }
  int none = ad__routes_match(r, "salt/auth", 9) == 0;
  ad_engine_destroy(&eng);
  ASSERT(ok);
  ASSERT(none);
}

TEST(log_events_is_one_more_route)
{
  ad_error_t err;
  ad_engine_t *eng = ad_engine_new("{\"log_events\": \"salt/auth\"}", &err);
  ASSERT(eng != NULL);
  const ad__routes_t *r = &eng->bus->routes;
  int n = r->n, k = only_route(r, "salt/auth");
  ad_engine_destroy(&eng);
  ASSERT_EQ(n, (int)NTAGS + 1);
  ASSERT_EQ(k, (int)NTAGS);
}

RUN(CASE(each_event_reaches_one_handler_of_its_own), CASE(log_events_is_one_more_route))
