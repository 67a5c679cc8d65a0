/* usage.h - what each game server really uses (issue 15, docs/usage.md).
 *
 * The autodeploy_services beacon sends, once per interval per host,
 *   salt/beacon/<minion>/autodeploy_services/
 *   {"id": <minion>, "services": {"<service id>": {"state": "up", "cpu": cores,
 *    "mem_mb": MiB, ...} | {"state": "down", "reason": "..."}, ...}}
 * The engine keeps each accepted sample in `service_metrics`
 *   {service, minion, at: Date, up: bool, cpu?, mem_mb?, reason?}
 * (indexes {service, at} and {at}; pruned on the fleet's metrics_prune timer)
 * and writes the service's `usage` = the p95 of its up samples over the
 * first measure_after_hours after it opened, once usage_min_samples exist,
 * refreshed at most every usage_refresh_s until the window closes.
 *
 * Only the minion a service is placed on may report it: the tag's minion id
 * is the event's claim (no field of a bus event is authenticated), and a
 * sample naming a service placed elsewhere, or no known service, is refused,
 * counted (`usage.refused` in the engine stats) and logged. */
#ifndef AD_FLEET_USAGE_H
#define AD_FLEET_USAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "autodeploy/common.h"
#include "metrics/metrics.h"

#define AD__USAGE_MAX_SERVICES 2000 /* per event: bounds what one event costs */
#define AD__USAGE_COLL "service_metrics"

/* One service's reading, decoded. Strings borrowed from the event data. */
typedef struct {
  const char *service;
  int up;              /* 0: its process is gone (never a zero load) */
  int has_cpu, has_mem;
  double cpu;          /* cores, 0..4096 */
  double mem_mb;       /* MiB, 0..67108864 */
  const char *reason;  /* down: why, may be NULL */
  const char *error;   /* non-NULL: this entry is refused (static text) */
} ad__svc_sample_t;

/* Decode an autodeploy_services beacon's data for `minion` (the tag's).
 * data["id"], when present, must equal minion. *out is one allocation
 * (free()) of *n entries, each either good or with `error` set (a bad
 * entry never costs the others). 0, or AD_EINVAL naming the field when the
 * event as a whole is unusable (not an object, no "services" object, too
 * many services, id mismatch). */
int ad__usage_decode(const char *minion, const json_t *data, ad__svc_sample_t **out,
                     size_t *n, ad_error_t *err);

/* The usage of one service from its up samples: p95 per dimension
 * (nearest rank; a dimension with no sample is absent). Pure: reorders the
 * arrays. JSON {"cpu", "mem_mb", "samples", "window": {"from", "to"},
 * "from_ms", "to_ms", "final", "at", "source"} (caller decrefs), or NULL
 * when fewer than min_samples. `source` says where the samples came from
 * (AD__USAGE_SOURCE_BEACON, or the metrics backend's name). */
json_t *ad__usage_summary(double *cpu, size_t n_cpu, double *mem, size_t n_mem,
                          size_t min_samples, int64_t from_ms, int64_t to_ms, int64_t now_ms,
                          const char *source);

#define AD__USAGE_SOURCE_BEACON "autodeploy_services beacon"

/* The usage from a metrics backend's series of one service (the
 * per-service query's cpu and mem, in time order or not): the points in
 * [from_ms, min(to_ms, now_ms)] summed up as ad__usage_summary does, with
 * `source` the backend's name. Pure. NULL: fewer than min_samples there,
 * or no memory. */
json_t *ad__usage_from_series(const ad__metrics_point_t *cpu, size_t n_cpu,
                              const ad__metrics_point_t *mem, size_t n_mem, size_t min_samples,
                              int64_t from_ms, int64_t to_ms, int64_t now_ms,
                              const char *source);

typedef struct {
  int64_t events, samples, stored, refused, bad, refreshed, store_errors;
} ad__usage_stats_t;

#endif
