/* clock.c - see clock.h. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"

static int64_t ms_of(clockid_t id)
{
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ad__now_ms(void)
{
  return ms_of(CLOCK_REALTIME);
}

int64_t ad__mono_ms(void)
{
  return ms_of(CLOCK_MONOTONIC);
}

int64_t ad__boot_ms(void)
{
  return ms_of(CLOCK_BOOTTIME);
}

int64_t ad__clock_watch(ad__clock_watch_t *w, int64_t wall, int64_t boot, int64_t *since)
{
  int64_t step = w->boot ? (wall - w->wall) - (boot - w->boot) : 0;
  if (step > -AD__CLOCK_STEP_MS && step < AD__CLOCK_STEP_MS)
    step = 0;
  else if (since)
    *since = w->wall + step;
  w->wall = wall;
  w->boot = boot;
  return step;
}

void ad__iso_format(int64_t ms, ad__iso_precision_t p, char out[32])
{
  int64_t sec = ms / 1000, frac = ms % 1000;
  if (frac < 0) { /* round down; ms - frac overflowed near INT64_MIN */
    frac += 1000;
    sec--;
  }
  time_t s = (time_t)sec;
  struct tm tm;
  if (!gmtime_r(&s, &tm)) {
    snprintf(out, 32, "?");
    return;
  }
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  if (p == AD__ISO_MS || (p == AD__ISO_MS_IF_ANY && frac))
    snprintf(out + n, 32 - n, ".%03dZ", (int)frac);
  else
    snprintf(out + n, 32 - n, "Z");
}

void ad__iso_ms(int64_t ms, char out[32])
{
  ad__iso_format(ms, AD__ISO_MS, out);
}

/* ---- parsing -------------------------------------------------------------- */

static int digits(const char **p, int n, int *out)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i]))
      return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return 0;
}

/* A plain number of epoch seconds (no '-' anywhere, so no date): 1 and
 * *ms, 0 when `s` is not one, -1 when it is one out of range. */
static int epoch_seconds(const char *s, int64_t *ms)
{
  char *end;
  double sec = strtod(s, &end);
  if (end == s || strchr(s, '-') != NULL)
    return 0;
  while (isspace((unsigned char)*end))
    end++;
  if (*end || !isfinite(sec) || fabs(sec) > 1e11)
    return -1;
  *ms = (int64_t)llround(sec * 1000);
  return 1;
}

/* "HH:MM[:SS[.fff]]" after the 'T'. */
static int clock_part(const char **p, int *h, int *m, int *sc, int *frac_ms)
{
  if (digits(p, 2, h) || *(*p)++ != ':' || digits(p, 2, m))
    return -1;
  if (**p != ':')
    return 0;
  (*p)++;
  if (digits(p, 2, sc))
    return -1;
  if (**p != '.' && **p != ',')
    return 0;
  (*p)++;
  int scale = 100, any = 0;
  for (; isdigit((unsigned char)**p); (*p)++, any = 1) {
    *frac_ms += (**p - '0') * scale;
    scale /= 10;
  }
  return any ? 0 : -1;
}

/* "Z", "+HH[:]MM", "-HH", or nothing: the offset east of UTC in minutes. */
static int offset_part(const char **p, long *off_min)
{
  *off_min = 0;
  if (**p == 'Z' || **p == 'z') {
    (*p)++;
    return 0;
  }
  if (**p != '+' && **p != '-')
    return 0;
  int sign = *(*p)++ == '-' ? -1 : 1, oh, om = 0;
  if (digits(p, 2, &oh))
    return -1;
  if (**p == ':')
    (*p)++;
  if (isdigit((unsigned char)**p) && digits(p, 2, &om))
    return -1;
  if (oh > 23 || om > 59)
    return -1;
  *off_min = sign * (oh * 60 + om);
  return 0;
}

int ad__time_parse(const char *s, int64_t *ms)
{
  if (!s)
    return -1;
  while (isspace((unsigned char)*s))
    s++;
  int epoch = epoch_seconds(s, ms);
  if (epoch)
    return epoch > 0 ? 0 : -1;
  const char *p = s;
  int Y, M, D, h = 0, m = 0, sc = 0, frac_ms = 0;
  long off_min;
  if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' ||
      digits(&p, 2, &D))
    return -1;
  if ((*p == 'T' || *p == 't' || *p == ' ') && (p++, clock_part(&p, &h, &m, &sc, &frac_ms)))
    return -1;
  if (offset_part(&p, &off_min))
    return -1;
  while (isspace((unsigned char)*p))
    p++;
  if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sc > 60)
    return -1;
  struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D,
                  .tm_hour = h, .tm_min = m, .tm_sec = sc};
  time_t t = timegm(&tm);
  if (tm.tm_mday != D) /* timegm normalised Feb 30 into March */
    return -1;
  *ms = ((int64_t)t - off_min * 60) * 1000 + frac_ms;
  return 0;
}
