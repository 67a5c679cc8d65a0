/* reserve.c - reserve sizing per platform (see reserve.h, docs/placement.md).
 *
 * Why two rates: an average over two weeks is what keeps a 10-a-day
 * platform's reserve steady through a quiet afternoon, but it reacts to a
 * burst by a fraction of a bucket's weight (about a fifth with the
 * defaults), days too late for a game whose openings were announced this
 * morning. A fixed short window reacts within one cycle; its length also
 * bounds the blow-up a lone opening can cause (one opening in 6 hours reads
 * as 4 a day, not the 144 a day a 10-minute "day so far" would give).
 * Taking the larger of the two makes the reserve rise fast and fall slowly,
 * the cheap direction to be wrong in: an idle server costs a slice of a
 * host, a missing one delays a game's opening. */
#include <math.h>
#include <string.h>

#include "core/error_private.h"
#include "decide/reserve.h"

#define DAY_MS 86400000.0
#define DAY_MS_I INT64_C(86400000)

void ad__reserve_policy_default(ad__reserve_policy_t *p)
{
  p->window_days = 14;
  p->half_life_days = 3.0;
  p->burst_hours = 6.0;
  p->horizon_hours = 2.0;
  p->safety = 1.5;
  p->min = 1;
  p->max = 50;
}

int ad__reserve_policy_check(const ad__reserve_policy_t *p, ad_error_t *err)
{
  if (p->window_days < 1 || p->window_days > 365)
    return ad__err(err, AD_EINVAL, "reserve", "window_days %d: must be 1..365", p->window_days);
  if (!(p->half_life_days > 0 && p->half_life_days <= 365))
    return ad__err(err, AD_EINVAL, "reserve", "half_life_days %g: must be > 0 and <= 365",
                   p->half_life_days);
  if (!(p->burst_hours >= 1 && p->burst_hours <= 24 * 7))
    return ad__err(err, AD_EINVAL, "reserve", "burst_hours %g: must be 1..168", p->burst_hours);
  if (!(p->horizon_hours > 0 && p->horizon_hours <= 24 * 30))
    return ad__err(err, AD_EINVAL, "reserve", "horizon_hours %g: must be > 0 and <= 720",
                   p->horizon_hours);
  if (!(p->safety >= 1 && p->safety <= 100))
    return ad__err(err, AD_EINVAL, "reserve", "safety %g: must be 1..100", p->safety);
  if (p->min < 0 || p->max < p->min || p->max > 100000)
    return ad__err(err, AD_EINVAL, "reserve", "min %d, max %d: need 0 <= min <= max <= 100000",
                   p->min, p->max);
  return 0;
}

/* One table for the JSON keys, so the loader and its error messages agree. */
typedef struct {
  const char *name;
  size_t offset;
  int is_int;
} rkey_t;

static const rkey_t RKEYS[] = {
    {"window_days", offsetof(ad__reserve_policy_t, window_days), 1},
    {"half_life_days", offsetof(ad__reserve_policy_t, half_life_days), 0},
    {"burst_hours", offsetof(ad__reserve_policy_t, burst_hours), 0},
    {"horizon_hours", offsetof(ad__reserve_policy_t, horizon_hours), 0},
    {"safety", offsetof(ad__reserve_policy_t, safety), 0},
    {"min", offsetof(ad__reserve_policy_t, min), 1},
    {"max", offsetof(ad__reserve_policy_t, max), 1},
};

int ad__reserve_policy_from_json(ad__reserve_policy_t *p, const json_t *obj,
                                 const char *where, ad_error_t *err)
{
  ad__reserve_policy_default(p);
  if (!where)
    where = "policy";
  if (!obj || json_is_null(obj))
    return 0;
  if (!json_is_object(obj))
    return ad__err(err, AD_ECONFIG, "reserve", "%s: must be an object", where);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)obj, k, v) {
    if (!json_is_number(v))
      return ad__err(err, AD_ECONFIG, "reserve", "%s.%s: must be a number", where, k);
    double x = json_number_value(v);
    if (strcmp(k, "alpha") == 0) {
      if (!(x > 0 && x < 1))
        return ad__err(err, AD_ECONFIG, "reserve", "%s.alpha %g: must be > 0 and < 1", where, x);
      p->half_life_days = log(0.5) / log(1 - x);
      continue;
    }
    const rkey_t *key = NULL;
    for (size_t i = 0; i < sizeof RKEYS / sizeof RKEYS[0]; i++)
      if (strcmp(RKEYS[i].name, k) == 0)
        key = &RKEYS[i];
    if (!key)
      return ad__err(err, AD_ECONFIG, "reserve",
                     "%s.%s: unknown key (window_days, half_life_days, alpha, burst_hours, "
                     "horizon_hours, safety, min, max)", where, k);
    if (key->is_int) {
      if (x != floor(x) || fabs(x) > 1e9)
        return ad__err(err, AD_ECONFIG, "reserve", "%s.%s %g: must be a whole number", where, k, x);
      *(int *)((char *)p + key->offset) = (int)x;
    } else {
      *(double *)((char *)p + key->offset) = x;
    }
  }
  ad_error_t e;
  if (ad__reserve_policy_check(p, &e) != 0)
    return ad__err(err, AD_ECONFIG, "reserve", "%s: %s", where, e.message);
  return 0;
}

int ad__reserve_size(const ad__reserve_policy_t *p, const int64_t *opened_ms,
                     size_t n, int64_t now_ms, int64_t since_ms,
                     ad__reserve_t *out, ad_error_t *err)
{
  int rc = ad__reserve_policy_check(p, err);
  if (rc)
    return rc;
  enum { MAXW = 365 };
  double count[MAXW] = {0};
  int W = p->window_days;
  double burst_ms = p->burst_hours * 3600e3;
  size_t in_window = 0, in_burst = 0;

  /* Bucket d (0-based here) holds ages (d days, d+1 days]; age 0 (opened
   * this millisecond) goes to bucket 0. */
  for (size_t i = 0; i < n; i++) {
    if (opened_ms[i] > now_ms)
      continue;
    int64_t age = now_ms - opened_ms[i];
    if ((double)age < burst_ms)
      in_burst++;
    int64_t d = age > 0 ? (age - 1) / DAY_MS_I : 0;
    if (d < W) {
      count[d]++;
      in_window++;
    }
  }

  /* Buckets wholly before since_ms are not zeros, they are unknown. */
  int buckets = W;
  if (since_ms > 0) {
    double life = (double)(now_ms - since_ms);
    buckets = life <= 0 ? 0 : (int)ceil(life / DAY_MS);
    if (buckets > W)
      buckets = W;
  }
  double num = 0, den = 0;
  for (int d = 0; d < buckets; d++) {
    double w = pow(0.5, d / p->half_life_days);
    num += w * count[d];
    den += w;
  }
  double ewma = den > 0 ? num / den : 0;
  double burst = (double)in_burst * 24.0 / p->burst_hours;

  ad__reserve_t r;
  memset(&r, 0, sizeof r);
  r.ewma_per_day = ewma;
  r.burst_per_day = burst;
  r.rate_per_day = burst > ewma ? burst : ewma;
  r.rate_from = burst > ewma ? "burst" : "ewma";
  r.horizon_days = p->horizon_hours / 24.0;
  r.safety = p->safety;
  r.raw = r.rate_per_day * r.horizon_days * p->safety;
  /* 1e-9: 10/day * 2h * 1.5 is 1.25 exactly on paper, not 1.2500000001 */
  double c = ceil(r.raw - 1e-9);
  r.ceiled = c > 1e9 ? 1000000000 : (int)c;
  r.size = r.ceiled;
  if (r.size < p->min)
    r.size = p->min, r.clamped = "min";
  else if (r.size > p->max)
    r.size = p->max, r.clamped = "max";
  r.in_window = in_window;
  r.in_burst = in_burst;
  r.buckets = buckets;
  if (out)
    *out = r;
  return r.size;
}

json_t *ad__reserve_to_json(const ad__reserve_t *r)
{
  char formula[200];
  snprintf(formula, sizeof formula,
           "clamp(ceil(%.3f/day x %.4f days x %.2f) = ceil(%.3f) = %d) = %d", r->rate_per_day,
           r->horizon_days, r->safety, r->raw, r->ceiled, r->size);
  return json_pack("{s:i, s:f, s:i, s:s?, s:f, s:s, s:f, s:f, s:f, s:f, s:I, s:I, s:i, s:s}",
                   "size", r->size, "raw", r->raw, "ceil", r->ceiled, "clamped", r->clamped,
                   "rate_per_day", r->rate_per_day, "rate_from", r->rate_from ? r->rate_from : "",
                   "ewma_per_day", r->ewma_per_day, "burst_per_day", r->burst_per_day,
                   "horizon_hours", r->horizon_days * 24.0, "safety", r->safety,
                   "openings_in_window", (json_int_t)r->in_window,
                   "openings_in_burst", (json_int_t)r->in_burst, "buckets", r->buckets,
                   "formula", formula);
}
