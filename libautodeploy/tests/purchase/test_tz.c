/* test_tz.c - local time in a named zone: the TZif reader against glibc's
 * localtime_r over 130 years (this test is single-threaded, so setting TZ
 * is safe here), the planning day at the day boundary east of UTC, the
 * daily run time over DST changes (north and south), the POSIX footer
 * rule beyond the last transition, and refused names. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "harness.h"
#include "purchase/tz.h"

static int64_t utc(int y, int m, int d, int hh, int mm)
{
  return (ad__days_from_civil(y, (unsigned)m, (unsigned)d) * 86400 + hh * 3600 + mm * 60) * 1000;
}

static const char *const ZONES[] = {"Asia/Shanghai", "America/New_York", "Europe/Berlin",
                                    "Pacific/Auckland", "Australia/Lord_Howe", "Asia/Kolkata",
                                    "America/Sao_Paulo", "Europe/London", "UTC"};

TEST(offsets_match_glibc_1970_to_2100)
{
  for (size_t z = 0; z < sizeof ZONES / sizeof ZONES[0]; z++) {
    ad_error_t err;
    ad__tz_t *tz = ad__tz_load(ZONES[z], NULL, &err);
    ASSERT(tz != NULL);
    setenv("TZ", ZONES[z], 1);
    tzset();
    int mismatches = 0;
    for (int64_t t = 0; t < 4102444800LL; t += 86400 * 3 + 3607) {
      time_t tt = (time_t)t;
      struct tm tm;
      localtime_r(&tt, &tm);
      if (ad__tz_offset(tz, t) != tm.tm_gmtoff && mismatches++ < 3)
        fprintf(stderr, "  %s at %lld: %d, glibc %ld\n", ZONES[z], (long long)t,
                ad__tz_offset(tz, t), tm.tm_gmtoff);
    }
    ad__tz_destroy(&tz);
    ASSERT_EQ(mismatches, 0);
  }
  unsetenv("TZ");
}

TEST(planning_day_east_of_utc)
{
  ad_error_t err;
  ad__tz_t *tz = ad__tz_load("Asia/Shanghai", NULL, &err);
  ASSERT(tz != NULL);
  char day[9];
  ad__tz_day(tz, utc(2026, 12, 4, 15, 59) + 59999, day); /* 23:59:59.999 local */
  ASSERT_STR(day, "20261204");
  ad__tz_day(tz, utc(2026, 12, 4, 16, 0), day); /* midnight local */
  ASSERT_STR(day, "20261205");
  ad__tz_day(tz, utc(2026, 12, 31, 16, 0), day); /* new year, new month */
  ASSERT_STR(day, "20270101");
  /* 04:00 local is 20:00 UTC the day before */
  ASSERT_EQ(ad__tz_next_at(tz, utc(2026, 12, 4, 12, 0), 4, 0), utc(2026, 12, 4, 20, 0));
  ASSERT_EQ(ad__tz_next_at(tz, utc(2026, 12, 4, 20, 0), 4, 0), utc(2026, 12, 5, 20, 0));
  ad__tz_destroy(&tz);
}

TEST(daily_time_over_dst_new_york)
{
  ad_error_t err;
  ad__tz_t *tz = ad__tz_load("America/New_York", NULL, &err);
  ASSERT(tz != NULL);
  /* spring forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z) */
  ASSERT_EQ(ad__tz_next_at(tz, utc(2026, 3, 7, 12, 0), 4, 0), utc(2026, 3, 8, 8, 0));
  ASSERT_EQ(ad__tz_next_at(tz, utc(2026, 3, 6, 12, 0), 4, 0), utc(2026, 3, 7, 9, 0));
  /* 02:30 does not exist that day: pushed forward to 03:30 EDT */
  ASSERT_EQ(ad__tz_next_at(tz, utc(2026, 3, 8, 5, 0), 2, 30), utc(2026, 3, 8, 7, 30));
  /* fall back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 twice, the first */
  ASSERT_EQ(ad__tz_next_at(tz, utc(2026, 11, 1, 0, 0), 1, 30), utc(2026, 11, 1, 5, 30));
  /* and the day after the change is a normal EST day */
  ASSERT_EQ(ad__tz_next_at(tz, utc(2026, 11, 1, 12, 0), 4, 0), utc(2026, 11, 2, 9, 0));
  char day[9];
  ad__tz_day(tz, utc(2026, 11, 2, 4, 59), day); /* 23:59 EST on Nov 1 */
  ASSERT_STR(day, "20261101");
  ad__tz_destroy(&tz);
}

TEST(daily_time_over_dst_auckland)
{
  ad_error_t err;
  ad__tz_t *tz = ad__tz_load("Pacific/Auckland", NULL, &err);
  ASSERT(tz != NULL);
  /* January: NZDT +13; July: NZST +12 */
  ASSERT_EQ(ad__tz_offset(tz, utc(2027, 1, 15, 0, 0) / 1000), 13 * 3600);
  ASSERT_EQ(ad__tz_offset(tz, utc(2027, 7, 15, 0, 0) / 1000), 12 * 3600);
  /* 04:00 local on 2027-01-15 is 15:00Z on the 14th */
  ASSERT_EQ(ad__tz_next_at(tz, utc(2027, 1, 14, 0, 0), 4, 0), utc(2027, 1, 14, 15, 0));
  ad__tz_destroy(&tz);
}

TEST(posix_rule_beyond_the_table)
{
  ad_error_t err;
  ad__tz_t *tz = ad__tz_posix("EST5EDT,M3.2.0,M11.1.0", &err);
  ASSERT(tz != NULL);
  ASSERT_EQ(ad__tz_offset(tz, utc(2200, 7, 1, 0, 0) / 1000), -4 * 3600);
  ASSERT_EQ(ad__tz_offset(tz, utc(2200, 1, 1, 0, 0) / 1000), -5 * 3600);
  ad__tz_destroy(&tz);
  tz = ad__tz_posix("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", &err); /* Lord Howe */
  ASSERT(tz != NULL);
  ASSERT_EQ(ad__tz_offset(tz, utc(2300, 1, 1, 0, 0) / 1000), 11 * 3600);
  ASSERT_EQ(ad__tz_offset(tz, utc(2300, 7, 1, 0, 0) / 1000), 10 * 3600 + 1800);
  ad__tz_destroy(&tz);
  tz = ad__tz_posix("CST-8", &err);
  ASSERT(tz != NULL);
  ASSERT_EQ(ad__tz_offset(tz, 0), 8 * 3600);
  ad__tz_destroy(&tz);
  ASSERT(ad__tz_posix("EST5EDT,M13.2.0,M11.1.0", &err) == NULL);
}

TEST(bad_names_refused)
{
  ad_error_t err;
  ASSERT(ad__tz_load("../../etc/passwd", NULL, &err) == NULL);
  ASSERT(strstr(err.message, "timezone") != NULL);
  ASSERT(ad__tz_load("/etc/localtime", NULL, &err) == NULL);
  ASSERT(ad__tz_load("Mars/Olympus_Mons", NULL, &err) == NULL);
  ASSERT(strstr(err.message, "Mars/Olympus_Mons") != NULL);
  unsigned char junk[60] = "TZif2 not really";
  ASSERT(ad__tz_parse(junk, sizeof junk, "junk", &err) == NULL);
  ASSERT(strstr(err.message, "junk") != NULL);
}

RUN(CASE(offsets_match_glibc_1970_to_2100), CASE(planning_day_east_of_utc),
    CASE(daily_time_over_dst_new_york), CASE(daily_time_over_dst_auckland),
    CASE(posix_rule_beyond_the_table), CASE(bad_names_refused))
