/* tz.h - local time in a named IANA zone, thread-safe, for "once a day at
 * 04:00 Asia/Shanghai" and for the order's planning day (issue 11).
 *
 * Why not localtime_r: glibc has one process-wide zone (TZ + tzset); a
 * library inside salt-master cannot set TZ for one engine without changing
 * it for every thread of the master. So the zone's TZif file (RFC 8536) is
 * read here once, at configuration time, into an immutable table that any
 * thread may read: the transitions (version 2+ 64-bit data) and the footer's
 * POSIX TZ rule for times after the last transition (a "slim" TZif file
 * has no transitions past 2037, or none after the zone's last change, and
 * relies on it). Leap seconds are ignored, as POSIX time does. */
#ifndef AD_PURCHASE_TZ_H
#define AD_PURCHASE_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "autodeploy/common.h"

typedef struct ad__tz ad__tz_t;

/* The zone `name` ("Asia/Shanghai", "UTC") from `dir` (NULL: $TZDIR or
 * /usr/share/zoneinfo). A name with "..", a leading '/' or characters other
 * than [A-Za-z0-9/_+-] is refused. NULL + AD_ECONFIG naming the zone. */
ad__tz_t *ad__tz_load(const char *name, const char *dir, ad_error_t *err);
/* Parse TZif bytes (tests); `name` is only for messages. */
ad__tz_t *ad__tz_parse(const unsigned char *buf, size_t len, const char *name,
                       ad_error_t *err);
/* A zone from a POSIX TZ rule alone ("CST-8", "EST5EDT,M3.2.0,M11.1.0"). */
ad__tz_t *ad__tz_posix(const char *rule, ad_error_t *err);
void ad__tz_destroy(ad__tz_t **tz_p);
const char *ad__tz_name(const ad__tz_t *tz);

/* Seconds east of UTC at the instant `utc_s` (epoch seconds). */
int32_t ad__tz_offset(const ad__tz_t *tz, int64_t utc_s);

typedef struct {
  int year, month, day; /* month 1..12, day 1..31 */
  int hour, min, sec;
  int32_t offset;       /* seconds east of UTC */
} ad__tz_local_t;

/* The local calendar time of `utc_ms`. */
void ad__tz_local(const ad__tz_t *tz, int64_t utc_ms, ad__tz_local_t *out);

/* "YYYYMMDD" of `utc_ms` in the zone, into out[9]. */
void ad__tz_day(const ad__tz_t *tz, int64_t utc_ms, char out[9]);

/* The first instant strictly after `after_ms` whose local time is hh:mm
 * (epoch ms). On a day where hh:mm does not exist (a spring-forward gap)
 * it is pushed forward by the gap (02:30 becomes 03:30, as mktime does);
 * where it happens twice (the autumn fall-back), the first. */
int64_t ad__tz_next_at(const ad__tz_t *tz, int64_t after_ms, int hh, int mm);

/* Days since 1970-01-01 of a civil date (proleptic Gregorian), and back. */
int64_t ad__days_from_civil(int64_t y, unsigned m, unsigned d);
void ad__civil_from_days(int64_t z, int *y, int *m, int *d);

#endif
