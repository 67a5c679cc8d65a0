/* placement.h - which hosts get a platform's new services (issue 5).
 * Pure C over arrays the caller fills from MongoDB: no I/O, no printing.
 *
 * Fit:   a host fits when, on every dimension (cpu cores, mem MiB),
 *          projected + footprint <= capacity * headroom
 *        where projected = p95 load over the window + pending (services
 *        placed there but not yet measured).
 * Score: the dominant share after placement,
 *          max over dims of (projected + footprint) / capacity.
 * Order: lower score; then lower cpu+mem share sum; then more free cpu
 *        cores after placement; then host key (strcmp), so a cycle's result
 *        never depends on the order hosts came out of the database.
 * Each placement adds the footprint to the chosen host's pending load, so
 * the next service of the same call (and of later calls on the same array)
 * sees it. See docs/placement.md. */
#ifndef AD_PLACEMENT_H
#define AD_PLACEMENT_H

#include <jansson.h>
#include <stddef.h>

#include "autodeploy/common.h"

typedef struct {
  double cpu; /* cores */
  double mem; /* MiB */
} ad__res_t;

typedef struct {
  const char *key;     /* borrowed; unique per fleet */
  int placeable;       /* 0: unreachable or not ready: never chosen */
  const char *profile; /* borrowed; NULL matches only an unrestricted platform */
  const char *region;  /* borrowed; same */
  ad__res_t capacity;
  ad__res_t p95;       /* measured load over the window */
  ad__res_t pending;   /* footprints placed but not yet measured; ad__place
                          adds to it */
} ad__host_t;

#define AD__TOP_K_MAX 8

typedef struct {
  const char *code;               /* platform code, for messages; borrowed */
  const char *const *profiles;    /* allowed profiles; n_profiles 0 = any */
  size_t n_profiles;
  const char *const *regions;     /* allowed regions; n_regions 0 = any */
  size_t n_regions;
  ad__res_t footprint;            /* per service, > 0 on at least one dim */
  double headroom;                /* 0 < headroom <= 1; default 0.8 */
  size_t top_k;                   /* candidates kept per decision, <= AD__TOP_K_MAX;
                                     0 is taken as 1 (the chosen host) */
} ad__place_req_t;

/* Why hosts were passed over. Every host is counted in exactly one field
 * (checked in this order), and with `fitting` they add up to the fleet. */
typedef struct {
  size_t unreachable; /* placeable == 0 */
  size_t invalid;     /* capacity <= 0 or load not a finite number >= 0 */
  size_t profile;     /* profile not allowed */
  size_t region;      /* region not allowed */
  size_t cpu;         /* too full on cpu only */
  size_t mem;         /* too full on mem only */
  size_t both;        /* too full on both */
} ad__rejects_t;

typedef struct {
  size_t host;      /* index into the hosts array */
  double score;     /* dominant share after placement */
  double cpu, mem;  /* each share after placement */
  double free_cpu;  /* cores left after placement */
} ad__cand_t;

typedef struct {
  long host;                     /* index into hosts, or -1: no host fits */
  ad__cand_t top[AD__TOP_K_MAX]; /* best first; top[0] is the chosen one */
  size_t n_top;
  size_t fitting;                /* hosts that fitted at this decision */
  ad__rejects_t rejected;        /* the others, at this decision */
  char reason[256];              /* when host == -1 */
} ad__decision_t;

/* A platform's allow-list: 1 when `s` is in list[0..n) or the list is
 * empty (any), 0 otherwise (a NULL `s` is in no non-empty list). Placement
 * and the purchase plan share this rule. */
int ad__listed(const char *s, const char *const *list, size_t n);

/* Fill the defaults: no profile or region limit, headroom 0.8, top_k 5. */
void ad__place_req_default(ad__place_req_t *req);

/* Place `n_services` services of one platform. Fills out[0..n_services-1]
 * (caller's array) and adds the footprint to hosts[i].pending for each
 * chosen host. Returns how many were placed (the rest have host == -1 and
 * a reason; once one does not fit, none after it does), or AD_EINVAL /
 * AD_ENOMEM + *err. O(H + S log H) time, O(H) memory. */
long ad__place(ad__host_t *hosts, size_t n_hosts, const ad__place_req_t *req,
               size_t n_services, ad__decision_t *out, ad_error_t *err);

/* The same decisions by scanning every host for every service, O(H x S):
 * the reference for tests and the peer for the benchmark. */
long ad__place_naive(ad__host_t *hosts, size_t n_hosts, const ad__place_req_t *req,
                     size_t n_services, ad__decision_t *out, ad_error_t *err);

/* The 95th percentile (nearest rank: the ceil(0.95 n)-th smallest) of the
 * finite samples, found by selection in O(n); reorders `samples`. NAN when
 * there is no finite sample: no data is not the same as idle. */
double ad__p95(double *samples, size_t n);

/* p95 of each dimension's samples (either may be NULL with n 0). */
ad__res_t ad__load_p95(double *cpu, size_t n_cpu, double *mem, size_t n_mem);

/* What placement counts as the host's load: p95 + pending. */
ad__res_t ad__host_projected(const ad__host_t *h);

/* The platform footprint: the largest of each dimension over recently
 * opened services' p95 (a dimension nobody measured > 0 takes the
 * fallback's), or `fallback` when n is 0. */
ad__res_t ad__footprint_max(const ad__res_t *services, size_t n, ad__res_t fallback);

/* The same, and where each dimension came from: *from_cpu / *from_mem
 * (either may be NULL) get the index of the service whose measurement it
 * is (the first of equals), or -1 when it is the fallback's. */
ad__res_t ad__footprint_from(const ad__res_t *services, size_t n, ad__res_t fallback,
                             long *from_cpu, long *from_mem);

/* A decision as a new JSON object (caller decrefs; NULL on ENOMEM):
 * {"platform", "host": key|null, "score", "shares": {"cpu","mem"},
 *  "footprint": {"cpu","mem"}, "headroom", "fitting",
 *  "rejected": {"unreachable",...}, "candidates": [{"host","score","cpu",
 *  "mem","free_cpu"}...], "reason" (only when host is null)} */
json_t *ad__decision_to_json(const ad__decision_t *d, const ad__host_t *hosts,
                             const ad__place_req_t *req);

#endif
