/* reserve.h - how many deployed, not yet opened servers a platform keeps
 * ready (issue 5). Pure arithmetic over opening timestamps: no MongoDB, no
 * clock of its own (the caller passes now_ms), no printing.
 *
 *   reserve = clamp(ceil(rate_per_day * horizon_days * safety), min, max)
 *   rate    = max(ewma, burst)
 *
 * ewma:  weighted mean of the openings in the last window_days rolling
 *        24-hour buckets before now; bucket d (1 = the last 24 hours) weighs
 *        0.5^((d-1)/half_life_days). Buckets before the platform existed
 *        (since_ms) are left out rather than counted as zero.
 * burst: openings in the last burst_hours, as a per-day rate
 *        (count * 24 / burst_hours), so a burst raises the reserve in the
 *        cycle after it starts instead of days later.
 * See docs/placement.md for the reasoning and a worked example. */
#ifndef AD_RESERVE_H
#define AD_RESERVE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "autodeploy/common.h"

typedef struct {
  int window_days;       /* 24-hour buckets in the average; default 14 */
  double half_life_days; /* weight halves every this many days; default 3 */
  double burst_hours;    /* short window for the burst rate; default 6 */
  double horizon_hours;  /* time to get one more server ready: one cycle
                            plus the deploy itself, not buying a host;
                            default 2 */
  double safety;         /* multiplier on expected openings; default 1.5 */
  int min;               /* default 1: every platform keeps one ready */
  int max;               /* default 50 */
} ad__reserve_policy_t;

/* The inputs and the result, so `why` can print the math. */
typedef struct {
  double ewma_per_day;   /* smoothed rate */
  double burst_per_day;  /* short-window rate */
  double rate_per_day;   /* max of the two */
  const char *rate_from; /* "ewma" or "burst" (static string) */
  double horizon_days, safety;
  double raw;            /* rate * horizon_days * safety */
  int ceiled;            /* ceil(raw) */
  int size;              /* ceiled clamped to [min, max] */
  const char *clamped;   /* NULL, "min" or "max" (static string) */
  size_t in_window;      /* openings in the window_days before now */
  size_t in_burst;       /* openings in the last burst_hours */
  int buckets;           /* buckets averaged (fewer than window_days for a
                            platform younger than the window) */
} ad__reserve_t;

/* Fill *p with the defaults above. */
void ad__reserve_policy_default(ad__reserve_policy_t *p);

/* 0, or AD_EINVAL + *err naming the bad field and its allowed range. */
int ad__reserve_policy_check(const ad__reserve_policy_t *p, ad_error_t *err);

/* Defaults, then the keys of `obj` (NULL = none): window_days,
 * half_life_days or alpha (per-day smoothing factor, 0 < alpha < 1,
 * converted to half_life_days = ln 0.5 / ln(1 - alpha)), burst_hours,
 * horizon_hours, safety, min, max. Unknown keys and bad values are
 * AD_ECONFIG with the key named (prefixed by `where`, e.g.
 * "platforms[2].policy"). */
int ad__reserve_policy_from_json(ad__reserve_policy_t *p, const json_t *obj,
                                 const char *where, ad_error_t *err);

/* Size the reserve from `n` opening times (ms since the epoch, any order;
 * times after now_ms are ignored) at now_ms. since_ms: when the platform
 * began taking openings (0 = unknown: the whole window counts). Fills *out
 * (may be NULL) and returns the size (>= 0), or AD_EINVAL + *err for a bad
 * policy. */
int ad__reserve_size(const ad__reserve_policy_t *p, const int64_t *opened_ms,
                     size_t n, int64_t now_ms, int64_t since_ms,
                     ad__reserve_t *out, ad_error_t *err);

/* The explanation as a new JSON object (caller decrefs), or NULL on
 * allocation failure:
 * {"size", "raw", "ceil", "clamped", "rate_per_day", "rate_from",
 *  "ewma_per_day", "burst_per_day", "horizon_hours", "safety",
 *  "openings_in_window", "openings_in_burst", "buckets", "formula"} */
json_t *ad__reserve_to_json(const ad__reserve_t *r);

#endif
