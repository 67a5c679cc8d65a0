/* test_dispatch.c - the route table matches exactly as fnmatch(3) without
 * flags (Salt's reactor semantics), prefix/suffix shortcuts included. */
#include <fnmatch.h>

#include "autodeploy.h"
#include "bus/dispatch.h"
#include "harness.h"

static int noop(ad_event_t *ev, void *u) { return 0; }

TEST(matches_like_fnmatch)
{
  static const char *pats[] = {
      "salt/job/*/ret/*", "salt/minion/*/start", "salt/*", "*", "*/ret/*", "a?c",
      "salt/job/*/ret/m1", "autodeploy/task/*/run", "x*y*z", "*start", "salt/job/[0-9]*/new",
      "literal/tag", "a\\*b", "**", "*a*a*a*a", "?"};
  static const char *tags[] = {
      "salt/job/20261127/ret/m1", "salt/job/20261127/new", "salt/minion/m1/start",
      "salt/auth", "autodeploy/task/t1/run", "abc", "axc", "ac", "xayaz", "xyz", "literal/tag",
      "a*b", "aab", "", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "salt/job/1/ret/m1/extra", "q"};
  size_t np = sizeof pats / sizeof pats[0], nt = sizeof tags / sizeof tags[0];
  ad__routes_t r = {0};
  for (size_t i = 0; i < np; i++)
    ASSERT_EQ(ad__routes_add(&r, pats[i], noop, NULL, NULL), 0);
  for (size_t t = 0; t < nt; t++) {
    uint64_t m = ad__routes_match(&r, tags[t], strlen(tags[t]));
    for (size_t i = 0; i < np; i++) {
      int want = fnmatch(pats[i], tags[t], 0) == 0;
      int got = (int)((m >> i) & 1);
      if (want != got)
        fprintf(stderr, "  pattern %s tag %s: fnmatch %d, ours %d\n", pats[i], tags[t], want, got);
      ASSERT_EQ(want, got);
    }
  }
  ad__routes_free(&r);
}

RUN(CASE(matches_like_fnmatch))
