/* metrics.h - host load history behind one interface (docs/metrics.md).
 *
 * A metrics source is made from a backend name ("salt", the default,
 * "prometheus", "zabbix", "openfalcon") and a JSON config object checked
 * against that backend's key table (unknown keys are errors). A query
 * takes hosts, a time window and a step, and gives, per host and per
 * resource, a summary (p95, max, last, mean, sample count) and optionally
 * the raw series. Each backend asks its server once per resource (or once
 * per query) for all hosts, never once per host. The per-service query
 * (ad__metrics_query_services) does the same for game servers: cpu and mem
 * of each, from per-service templates, in one request per resource.
 *
 * Units, the same whatever the backend:
 *   cpu   cores in use (0..cores). Backends that report a percentage
 *         (Zabbix system.cpu.util, Open-Falcon cpu.busy) are scaled by the
 *         host's `cores`; Salt's load beacon gives min(load1, cores).
 *   mem   MiB in use (total - available).
 *   disk  used fraction (0..1) of one mount ("/" by default).
 *   load1 the 1-minute load average.
 * Placement reads cpu.p95 (cores) and mem.p95 (MiB).
 *
 * Thread-safety: an ad__metrics_t is immutable after creation (the Zabbix
 * session token sits behind a mutex), so queries may run from any thread.
 */
#ifndef AD_METRICS_H
#define AD_METRICS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "autodeploy/common.h"

typedef struct ad__metrics ad__metrics_t;

typedef enum {
  AD__RES_CPU,
  AD__RES_MEM,
  AD__RES_DISK,
  AD__RES_LOAD1,
  AD__RES_COUNT
} ad__metrics_res_t;

/* "cpu", "mem", "disk", "load1"; and their units "cores", "MiB",
 * "fraction", "load". */
const char *ad__metrics_res_name(ad__metrics_res_t r);
const char *ad__metrics_res_unit(ad__metrics_res_t r);

/* One host as the caller knows it. Strings are borrowed for the call. */
typedef struct {
  const char *key;        /* the caller's name for it; results are keyed by it */
  const char *minion_id;  /* Salt minion id ({minion} in id templates) */
  const char *private_ip; /* {ip} in id templates; may be NULL when unused */
  int cores;              /* CPU count; 0: unknown (percent-based cpu is then absent) */
  int64_t mem_mb;         /* memory size in MiB; 0: unknown (Salt mem is then absent) */
} ad__metrics_host_t;

typedef struct {
  int64_t from_ms, to_ms; /* the window, Unix ms, from < to */
  int64_t step_ms;        /* resolution asked of the server; 0: backend default */
  int want_series;        /* also return the raw series */
  unsigned resources;     /* bit (1u << ad__metrics_res_t); 0: all */
  const atomic_int *cancel; /* non-zero: abort HTTP transfers (may be NULL) */
} ad__metrics_query_t;

typedef struct {
  int64_t at_ms;
  double v;
} ad__metrics_point_t;

typedef struct {
  size_t count;       /* samples in the window; 0: no data (other fields 0) */
  double p95;         /* nearest rank: the ceil(0.95 * count)-th smallest */
  double max, mean;
  double last;        /* the value with the latest timestamp */
  int64_t last_at_ms;
  ad__metrics_point_t *series; /* when want_series: time order, `count` points */
} ad__metrics_summary_t;

typedef struct {
  char *key; /* a copy of the host's key, owned by the result */
  ad__metrics_summary_t res[AD__RES_COUNT];
} ad__metrics_host_result_t;

typedef struct {
  size_t n_hosts;                   /* as many as asked, in the same order */
  ad__metrics_host_result_t *hosts;
} ad__metrics_result_t;

/* Make a source. backend: NULL or "" means "salt". config: a JSON object
 * (NULL: all defaults), borrowed. NULL + *err (AD_ECONFIG naming the
 * backend and the key) on a bad config. */
ad__metrics_t *ad__metrics_new(const char *backend, const json_t *config, ad_error_t *err);
void ad__metrics_destroy(ad__metrics_t **m_p);
const char *ad__metrics_backend(const ad__metrics_t *m);

/* Query `n` hosts. 0 + *out (free with ad__metrics_result_free), or <0 +
 * *err naming the backend, the server's origin (never a token) and what
 * failed: AD_EINVAL (bad window or host), AD_ETIMEOUT, AD_ECONNECT,
 * AD_EIO (HTTP status, an error the server returned), AD_EDECODE (an
 * answer without the expected shape, naming the JSON path), AD_ESTOPPED. */
int ad__metrics_query(ad__metrics_t *m, const ad__metrics_host_t *hosts, size_t n,
                      const ad__metrics_query_t *q, ad__metrics_result_t **out,
                      ad_error_t *err);
void ad__metrics_result_free(ad__metrics_result_t **r_p);

/* ---- per service (issue 15): what each game server uses ------------------- */

/* One service as the caller knows it. Strings are borrowed for the call. */
typedef struct {
  const char *key;         /* the service id ({service}); results are keyed by it */
  ad__metrics_host_t host; /* where it runs: minion_id, private_ip ({host} is the
                            * backend's id of it); host.key may be NULL */
  const char *unit;        /* its systemd unit ({unit}); NULL when unknown */
} ad__metrics_service_t;

/* What `n` services used over q's window: per service, cpu (cores) and mem
 * (MiB) summaries as the host query gives them (other resources: count 0).
 * Each backend fills its per-service templates (placeholders {service},
 * {host}, {unit}) for every service and asks its server once per resource
 * (Prometheus), or once (Zabbix: its three steps; Open-Falcon) for all of
 * them, never once per service. The result's `hosts` are the services, in
 * the order asked, keyed by service id. 0 + *out, or <0 + *err naming the
 * backend, the server's origin and the key (query_service_cpu,
 * item_service_mem, ...): as ad__metrics_query, and AD_EINVAL when the
 * backend has no per-service query (salt: the autodeploy_services beacon
 * measures services) or a service lacks a value its templates need. */
int ad__metrics_query_services(ad__metrics_t *m, const ad__metrics_service_t *svcs, size_t n,
                               const ad__metrics_query_t *q, ad__metrics_result_t **out,
                               ad_error_t *err);
/* Whether m's backend has a per-service query (every one but salt). */
int ad__metrics_has_service_query(const ad__metrics_t *m);

/* The result as JSON (caller decrefs):
 * {"<key>": {"cpu": {"unit": "cores", "count": N, "p95": .., "max": ..,
 *   "mean": .., "last": .., "last_at_ms": .., "series": [[ms, v], ...]}, ...}}
 * Resources with no sample have count 0 and no statistics. */
json_t *ad__metrics_result_to_json(const ad__metrics_result_t *r);

/* Hosts from a JSON array of {"key", "minion_id", "private_ip", "cores",
 * "mem_mb"} ("key" defaults to "minion_id"). *hosts is one allocation
 * (free()); its strings are borrowed from `arr`. 0 or AD_EINVAL naming the
 * index and field. */
int ad__metrics_hosts_from_json(const json_t *arr, ad__metrics_host_t **hosts, size_t *n,
                                ad_error_t *err);

/* ---- the Salt backend's write side (metrics_salt.c) ---------------------- */

typedef enum { AD__BEACON_LOAD, AD__BEACON_MEMUSAGE, AD__BEACON_DISKUSAGE } ad__beacon_t;

/* One beacon reading, already decoded. */
typedef struct {
  ad__beacon_t kind;
  double load[3];    /* LOAD: 1m, 5m, 15m */
  double percent;    /* MEMUSAGE, DISKUSAGE: used % (0..100) */
  const char *mount; /* DISKUSAGE: mount point (borrowed) */
} ad__beacon_sample_t;

#define AD__METRICS_SALT_COLL "host_metrics"
#define AD__METRICS_SALT_EXPIRE_S (15 * 86400)

/* store.h's handle (C11 allows the repeated typedef). */
typedef struct ad__store ad__store_t;

/* Decode a beacon event's data (salt/beacon/<minion>/<beacon>/) into *s:
 * beacon is "load", "memusage" or "diskusage". Types, finiteness and
 * ranges are checked; data["id"], when present, must equal minion_id.
 * Strings in *s are borrowed from `data`. 0 or AD_EINVAL naming the field. */
int ad__metrics_beacon_from_json(const char *minion_id, const char *beacon,
                                 const json_t *data, ad__beacon_sample_t *s,
                                 ad_error_t *err);

/* Create the collection's indexes, idempotently: {minion: 1, at: 1} and a
 * TTL index on `at` (expireAfterSeconds = expire_s). A server without TTL
 * indexes (FerretDB 1.x answers NotImplemented) gets a plain index on
 * `at`, *ttl = 0, and the caller must call ad__metrics_salt_prune on a
 * timer; else *ttl = 1. coll NULL: "host_metrics". 0 or <0 + *err. */
int ad__metrics_salt_init(ad__store_t *st, const char *coll, int64_t expire_s,
                          int *ttl, ad_error_t *err);

/* Insert one sample document (insert only: no upsert, no transaction):
 * {minion, at: Date(at_ms), beacon, load1/load5/load15 | mem_pct |
 * disk_pct + mount}. at_ms 0: now. 0, AD_EINVAL (bad sample, naming the
 * field), or AD_ECONNECT/AD_EIO from MongoDB. */
int ad__metrics_salt_ingest(ad__store_t *st, const char *coll, const char *minion_id,
                            const ad__beacon_sample_t *s, int64_t at_ms, ad_error_t *err);

/* The store, collection and expire_after_seconds of a "salt" source, for
 * the write side (the engine, the probe tool). Borrowed from `m`. 0, or
 * AD_EINVAL when `m` is another backend. */
int ad__metrics_salt_target(ad__metrics_t *m, ad__store_t **st, const char **coll,
                            int64_t *expire_s);

/* Delete samples older than `older_than_ms` (what a TTL index would do).
 * The deleted count, or <0 + *err. */
int64_t ad__metrics_salt_prune(ad__store_t *st, const char *coll,
                               int64_t older_than_ms, ad_error_t *err);

#endif
