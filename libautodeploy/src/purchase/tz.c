/* tz.c - see tz.h: a TZif (RFC 8536) reader and the POSIX TZ rule of its
 * footer. Everything is computed from an immutable table: no global state,
 * no TZ variable, no tzset. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_private.h"
#include "purchase/tz.h"

#define D "config"
#define TZIF_MAX (1 << 20) /* the largest zone file is ~3 KiB */

/* A rule date: Jn (1..365, no Feb 29), n (0..365), or Mm.w.d. */
typedef struct {
  char kind; /* 'J', 'N', 'M' */
  int a, b, c;
  int32_t time; /* seconds after local midnight (may be < 0 or > 24h) */
} rule_date_t;

typedef struct {
  int valid;
  int32_t std_off, dst_off; /* seconds east of UTC */
  int has_dst;
  rule_date_t start, end;
} posix_rule_t;

struct ad__tz {
  char name[128];
  size_t n;           /* transitions */
  int64_t *at;        /* transition instants, ascending */
  int32_t *off_after; /* the offset from at[i] on */
  int32_t off_before; /* before the first transition */
  posix_rule_t rule;  /* after the last transition (when valid) */
};

/* ---- civil dates (Howard Hinnant's algorithms) -------------------------- */

int64_t ad__days_from_civil(int64_t y, unsigned m, unsigned d)
{
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

void ad__civil_from_days(int64_t z, int *y, int *m, int *d)
{
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static int leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* ---- POSIX TZ rule --------------------------------------------------------- */

static const char *parse_name(const char *s)
{
  if (*s == '<') {
    const char *e = strchr(s, '>');
    return e ? e + 1 : NULL;
  }
  const char *p = s;
  while (isalpha((unsigned char)*p))
    p++;
  return p - s >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]] into *v seconds; NULL on a bad value. */
static const char *parse_hms(const char *s, int32_t *v)
{
  int sign = 1;
  if (*s == '+' || *s == '-')
    sign = *s++ == '-' ? -1 : 1;
  if (!isdigit((unsigned char)*s))
    return NULL;
  long h = strtol(s, (char **)&s, 10), m = 0, sec = 0;
  if (*s == ':') {
    m = strtol(s + 1, (char **)&s, 10);
    if (*s == ':')
      sec = strtol(s + 1, (char **)&s, 10);
  }
  if (h > 167 || m > 59 || sec > 59)
    return NULL;
  *v = (int32_t)(sign * (h * 3600 + m * 60 + sec));
  return s;
}

static const char *parse_date(const char *s, rule_date_t *r)
{
  char *e;
  r->time = 7200;
  if (*s == 'M') {
    r->kind = 'M';
    r->a = (int)strtol(s + 1, &e, 10);
    if (*e != '.')
      return NULL;
    r->b = (int)strtol(e + 1, &e, 10);
    if (*e != '.')
      return NULL;
    r->c = (int)strtol(e + 1, &e, 10);
    if (r->a < 1 || r->a > 12 || r->b < 1 || r->b > 5 || r->c < 0 || r->c > 6)
      return NULL;
  } else {
    r->kind = *s == 'J' ? 'J' : 'N';
    if (*s == 'J')
      s++;
    if (!isdigit((unsigned char)*s))
      return NULL;
    r->a = (int)strtol(s, &e, 10);
    if (r->a > 365 || (r->kind == 'J' && r->a < 1))
      return NULL;
  }
  s = e;
  if (*s == '/' && !(s = parse_hms(s + 1, &r->time)))
    return NULL;
  return s;
}

static int parse_rule(const char *s, posix_rule_t *r)
{
  memset(r, 0, sizeof *r);
  int32_t v;
  if (!(s = parse_name(s)) || !(s = parse_hms(s, &v)))
    return -1;
  r->std_off = -v; /* POSIX offsets are west of UTC */
  if (*s) {
    if (!(s = parse_name(s)))
      return -1;
    r->has_dst = 1;
    r->dst_off = r->std_off + 3600;
    if (*s && *s != ',') {
      if (!(s = parse_hms(s, &v)))
        return -1;
      r->dst_off = -v;
    }
    if (*s != ',' || !(s = parse_date(s + 1, &r->start)) || *s != ',' ||
        !(s = parse_date(s + 1, &r->end)))
      return -1;
  }
  if (*s)
    return -1;
  r->valid = 1;
  return 0;
}

/* The local day (days since the epoch) a rule date falls on in `year`. */
static int64_t rule_day(const rule_date_t *r, int year)
{
  int64_t jan1 = ad__days_from_civil(year, 1, 1);
  switch (r->kind) {
  case 'J':
    return jan1 + r->a - 1 + (leap(year) && r->a >= 60);
  case 'N':
    return jan1 + r->a;
  default: {
    int64_t first = ad__days_from_civil(year, (unsigned)r->a, 1);
    int wd = (int)((first % 7 + 7 + 4) % 7); /* 1970-01-01 was a Thursday (4) */
    int64_t day = first + (r->c - wd + 7) % 7 + (r->b - 1) * 7;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int len = mdays[r->a - 1] + (r->a == 2 && leap(year));
    while (day >= first + len)
      day -= 7; /* week 5: the last such weekday */
    return day;
  }
  }
}

static int32_t rule_offset(const posix_rule_t *r, int64_t t)
{
  if (!r->has_dst)
    return r->std_off;
  int y, m, d;
  ad__civil_from_days(floor_div(t + r->std_off, 86400), &y, &m, &d);
  /* the year of t and the years next to it: a rule time may leave the year */
  for (int k = -1; k <= 1; k++) {
    int64_t start = rule_day(&r->start, y + k) * 86400 + r->start.time - r->std_off;
    int64_t end = rule_day(&r->end, y + k) * 86400 + r->end.time - r->dst_off;
    if (start < end ? (t >= start && t < end) : 0)
      return r->dst_off;
    if (start >= end) { /* southern hemisphere: DST spans the new year */
      int64_t next_end = rule_day(&r->end, y + k + 1) * 86400 + r->end.time - r->dst_off;
      if (t >= start && t < next_end)
        return r->dst_off;
    }
  }
  return r->std_off;
}

/* ---- TZif ------------------------------------------------------------------ */

static uint32_t be32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p) { return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4)); }

static ad__tz_t *tz_alloc(const char *name, ad_error_t *err)
{
  ad__tz_t *tz = calloc(1, sizeof *tz);
  if (!tz)
    ad__err(err, AD_ENOMEM, D, "no memory for time zone %s", name);
  else
    snprintf(tz->name, sizeof tz->name, "%s", name);
  return tz;
}

ad__tz_t *ad__tz_parse(const unsigned char *buf, size_t len, const char *name,
                       ad_error_t *err)
{
  uint32_t c[6];
  size_t tsize = 4;
  const unsigned char *p = buf, *end = buf + len;
  ad__tz_t *tz = NULL;
  for (int pass = 0; pass < 2; pass++) {
    if (end - p < 44 || memcmp(p, "TZif", 4))
      goto bad;
    for (int i = 0; i < 6; i++)
      c[i] = be32(p + 20 + 4 * i);
    uint32_t isut = c[0], isstd = c[1], leapc = c[2], timec = c[3], typec = c[4], charc = c[5];
    if (typec == 0 || typec > 256 || timec > 100000 || leapc > 10000)
      goto bad;
    size_t body = timec * tsize + timec + typec * 6 + charc + leapc * (tsize + 4) + isstd + isut;
    if ((size_t)(end - p) < 44 + body)
      goto bad;
    if (pass == 0 && p[4] >= '2') { /* skip the v1 block: the 64-bit one follows */
      p += 44 + body;
      tsize = 8;
      continue;
    }
    const unsigned char *ts = p + 44, *idx = ts + timec * tsize, *types = idx + timec;
    if (!(tz = tz_alloc(name, err)))
      return NULL;
    tz->n = timec;
    tz->at = malloc((timec ? timec : 1) * sizeof *tz->at);
    tz->off_after = malloc((timec ? timec : 1) * sizeof *tz->off_after);
    if (!tz->at || !tz->off_after) {
      ad__tz_destroy(&tz);
      ad__err(err, AD_ENOMEM, D, "no memory for time zone %s", name);
      return NULL;
    }
    for (uint32_t i = 0; i < timec; i++) {
      if (idx[i] >= typec)
        goto bad;
      tz->at[i] = tsize == 8 ? be64(ts + 8 * i) : (int32_t)be32(ts + 4 * i);
      tz->off_after[i] = (int32_t)be32(types + 6 * idx[i]);
      if (i && tz->at[i] <= tz->at[i - 1])
        goto bad;
    }
    tz->off_before = (int32_t)be32(types); /* type 0 (RFC 8536 3.2) */
    p += 44 + body;
    if (tsize == 8 && p < end && *p == '\n') {
      const unsigned char *nl = memchr(p + 1, '\n', (size_t)(end - p - 1));
      char rule[128];
      if (nl && nl - p - 1 > 0 && (size_t)(nl - p - 1) < sizeof rule) {
        memcpy(rule, p + 1, (size_t)(nl - p - 1));
        rule[nl - p - 1] = 0;
        if (parse_rule(rule, &tz->rule))
          goto bad;
      }
    }
    return tz;
  }
bad:
  ad__tz_destroy(&tz);
  ad__err(err, AD_ECONFIG, D, "time zone %s: not a valid TZif file", name);
  return NULL;
}

ad__tz_t *ad__tz_posix(const char *rule, ad_error_t *err)
{
  ad__tz_t *tz = tz_alloc(rule ? rule : "", err);
  if (!tz)
    return NULL;
  if (!rule || parse_rule(rule, &tz->rule)) {
    ad__tz_destroy(&tz);
    ad__err(err, AD_ECONFIG, D, "time zone rule %s: not a POSIX TZ rule", rule ? rule : "(null)");
    return NULL;
  }
  tz->off_before = tz->rule.std_off;
  return tz;
}

static int name_ok(const char *s)
{
  if (!s || !*s || *s == '/' || strstr(s, "..") || strlen(s) > 100)
    return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("/_+-", *s))
      return 0;
  return 1;
}

ad__tz_t *ad__tz_load(const char *name, const char *dir, ad_error_t *err)
{
  if (!name_ok(name))
    return ad__err(err, AD_ECONFIG, D, "timezone %s: not an IANA zone name (e.g. Asia/Shanghai)",
                   name ? name : "(null)"),
           NULL;
  if (!dir)
    dir = getenv("TZDIR") && *getenv("TZDIR") ? getenv("TZDIR") : "/usr/share/zoneinfo";
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f)
    return ad__err_errno(err, AD_ECONFIG, errno, "timezone %s: %s", name, path), NULL;
  unsigned char *buf = malloc(TZIF_MAX);
  size_t len = buf ? fread(buf, 1, TZIF_MAX, f) : 0;
  fclose(f);
  if (!buf)
    return ad__err(err, AD_ENOMEM, D, "no memory"), NULL;
  ad__tz_t *tz = ad__tz_parse(buf, len, name, err);
  free(buf);
  return tz;
}

void ad__tz_destroy(ad__tz_t **tz_p)
{
  if (!tz_p || !*tz_p)
    return;
  free((*tz_p)->at);
  free((*tz_p)->off_after);
  free(*tz_p);
  *tz_p = NULL;
}

const char *ad__tz_name(const ad__tz_t *tz) { return tz->name; }

int32_t ad__tz_offset(const ad__tz_t *tz, int64_t t)
{
  if (tz->n == 0)
    return tz->rule.valid ? rule_offset(&tz->rule, t) : tz->off_before;
  if (t < tz->at[0])
    return tz->off_before;
  if (t >= tz->at[tz->n - 1] && tz->rule.valid)
    return rule_offset(&tz->rule, t);
  size_t lo = 0, hi = tz->n; /* the last transition <= t */
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (tz->at[mid] <= t)
      lo = mid;
    else
      hi = mid;
  }
  return tz->off_after[lo];
}

void ad__tz_local(const ad__tz_t *tz, int64_t utc_ms, ad__tz_local_t *out)
{
  int64_t s = floor_div(utc_ms, 1000);
  out->offset = ad__tz_offset(tz, s);
  int64_t l = s + out->offset, day = floor_div(l, 86400), sod = l - day * 86400;
  ad__civil_from_days(day, &out->year, &out->month, &out->day);
  out->hour = (int)(sod / 3600);
  out->min = (int)(sod / 60 % 60);
  out->sec = (int)(sod % 60);
}

void ad__tz_day(const ad__tz_t *tz, int64_t utc_ms, char out[9])
{
  ad__tz_local_t l;
  ad__tz_local(tz, utc_ms, &l);
  snprintf(out, 9, "%04d%02d%02d", l.year % 10000, l.month, l.day);
}

/* The instant of local time `l` (seconds since the local epoch): the
 * earlier of two (fall-back), the jump's end in a gap (spring-forward). */
static int64_t from_local(const ad__tz_t *tz, int64_t l)
{
  int32_t a = ad__tz_offset(tz, l - 86400), b = ad__tz_offset(tz, l + 86400);
  int64_t ta = l - a, tb = l - b;
  int ok_a = ad__tz_offset(tz, ta) == a, ok_b = ad__tz_offset(tz, tb) == b;
  if (ok_a && ok_b)
    return ta < tb ? ta : tb;
  if (ok_a)
    return ta;
  if (ok_b)
    return tb;
  /* a gap: the local time does not exist; read with the offset before the
   * jump it lands as far after the jump as it was after the gap's start
   * (02:30 becomes 03:30), as mktime does */
  return ta;
}

int64_t ad__tz_next_at(const ad__tz_t *tz, int64_t after_ms, int hh, int mm)
{
  ad__tz_local_t l;
  ad__tz_local(tz, after_ms, &l);
  int64_t day = ad__days_from_civil(l.year, (unsigned)l.month, (unsigned)l.day);
  for (int k = -1; k < 3; k++) {
    int64_t t = from_local(tz, (day + k) * 86400 + hh * 3600 + mm * 60) * 1000;
    if (t > after_ms)
      return t;
  }
  return after_ms + 86400000; /* not reached */
}
