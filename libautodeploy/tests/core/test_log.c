/* test_log.c - core/log: a message reaches the handler whole, however long
 * (the stats JSON grows with every subsystem); past AD__LOG_MAX it is cut
 * with a marker saying how much, never silently. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "core/log_private.h"

static char *got;

static void keep(ad_log_level_t level, const char *domain, const char *msg, void *user)
{
  (void)level;
  (void)domain;
  (void)user;
  free(got);
  got = strdup(msg);
}

static char *filled(size_t n)
{
  char *s = malloc(n + 1);
  memset(s, 'x', n);
  s[n] = 0;
  s[n - 1] = 'E'; /* the end, to see it arrived */
  return s;
}

TEST(short_and_long_lines_whole)
{
  ad_log_set_handler(keep, NULL, AD_LOG_DEBUG);
  AD_LOG_I("test", "stats %s", "{}");
  ASSERT_STR(got, "stats {}");
  char *s = filled(5000);
  AD_LOG_I("test", "stats %s", s);
  ASSERT_EQ(strlen(got), 5006);
  ASSERT(got[5005] == 'E');
  free(s);
}

TEST(past_the_bound_cut_with_a_marker)
{
  ad_log_set_handler(keep, NULL, AD_LOG_DEBUG);
  char *s = filled(300 * 1024);
  AD_LOG_I("test", "%s", s);
  ASSERT(strlen(got) < 256 * 1024);
  ASSERT(strstr(got, " ... (") && strstr(got, " bytes cut)"));
  free(s);
  free(got);
  got = NULL;
  ad_log_set_handler(NULL, NULL, AD_LOG_INFO);
}

RUN(CASE(short_and_long_lines_whole), CASE(past_the_bound_cut_with_a_marker))
