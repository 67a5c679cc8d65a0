/* purchase.h - how many hosts to order, per profile, for the services still
 * waiting for resources (issue 11). Pure C over arrays the caller fills from
 * MongoDB: no I/O, no clock, no printing.
 *
 * Profile: each waiting service is bought in the first profile, in the
 *   configured preference order, that its platform allows (profiles and
 *   regions; an empty list allows any) and whose flavour can hold it
 *   (need <= capacity * headroom on cpu, mem and disk). A service no allowed
 *   flavour can hold is reported as unfit, never packed.
 * Count:  first-fit decreasing on the dominant share, and a pattern search
 *   for queues of few shapes; the fewer hosts wins (pack.h). Hosts hold
 *   capacity * headroom, the same headroom placement uses; the result never
 *   depends on the order of the database.
 * Bounds: the volume bound, max over dimensions of ceil(sum of needs /
 *   (capacity * headroom)), and stronger ones that see that services are
 *   indivisible (ten services of 0.6 hosts need ten hosts, not six) and
 *   which cannot share a host (pack.h): no packing needs fewer. FFD uses at most 11/9 OPT + 6/9 bins in one
 *   dimension; Kubernetes Cluster Autoscaler's binpacking estimator and
 *   Karpenter pack the same way.
 * Then:   hosts already ordered and not yet arrived are subtracted, and the
 *   budget caps (hosts per day and per month, per profile and in total)
 *   applied; total caps serve the profile whose oldest service has waited
 *   longest first. What a cap cuts is reported with the cap's name.
 * See docs/purchase.md. */
#ifndef AD_PURCHASE_H
#define AD_PURCHASE_H

#include <jansson.h>
#include <stddef.h>

#include "autodeploy/common.h"
#include "decide/pack.h"


/* One waiting service. All strings borrowed. */
typedef struct {
  const char *service;
  const char *platform;
  const char *const *profiles; /* the platform's allowed profiles; 0 = any */
  size_t n_profiles;
  const char *const *regions;  /* the platform's allowed regions; 0 = any */
  size_t n_regions;
  ad__dims_t need;             /* its footprint, >= 0, > 0 on one dimension */
  double waited_hours;         /* since it first waited */
  const char *reason;          /* why it waits (the placement's reason) */
} ad__waiting_t;

/* No cap. */
#define AD__CAP_NONE (-1)

/* A profile hosts can be bought in. All strings borrowed. */
typedef struct {
  const char *name;     /* the registry's profile (provider + region) */
  const char *region;   /* NULL: matches only a platform without a region list */
  const char *flavour;  /* the instance type ordered */
  ad__dims_t capacity;  /* of one host of the flavour, > 0 on every dimension */
  long pending;         /* hosts ordered and not yet arrived, >= 0 */
  long cap_day;         /* hosts per day, or AD__CAP_NONE */
  long cap_month;       /* hosts per month, or AD__CAP_NONE */
  long ordered_day;     /* already ordered today (they count against cap_day) */
  long ordered_month;   /* already ordered this month */
} ad__buy_profile_t;

typedef struct {
  const ad__buy_profile_t *profiles; /* in preference order */
  size_t n_profiles;
  double headroom;     /* 0 < headroom <= 1, as placement's */
  long cap_day;        /* hosts per day over all profiles, or AD__CAP_NONE */
  long cap_month;
  long ordered_day;    /* already ordered today over all profiles */
  long ordered_month;
} ad__buy_req_t;

/* The plan for one profile. */
typedef struct {
  size_t profile;        /* index into req->profiles */
  size_t *services;      /* indexes into the waiting array, longest wait first */
  size_t n_services;
  ad__dims_t demand;     /* sum of the services' needs */
  long packed;           /* hosts: the better of the two packers (pack.h) */
  long packed_ffd;       /* first-fit decreasing's own count */
  const char *packer;    /* "ffd" or "patterns" (static) */
  long volume_bound;     /* max over dims of ceil(demand / bin) */
  long lower_bound;      /* the best valid bound: max(volume, dual feasible,
                            conflicts) (pack.h) */
  long pending;          /* ordered hosts counted against `packed` */
  long needed;           /* packed - pending, >= 0 */
  long to_order;         /* after the caps */
  const char *cut_by;    /* the cap that cut `needed` (static), or NULL:
                            "profile cap_day", "profile cap_month",
                            "cap_day", "cap_month" */
  double max_waited_hours;
} ad__buy_line_t;

/* A service that no allowed profile can take. */
typedef struct {
  size_t service;      /* index into the waiting array */
  const char *why;     /* static: "no configured profile is allowed for its
                          platform" or "larger than every allowed flavour" */
} ad__unfit_t;

typedef struct {
  ad__buy_line_t *lines; /* one per profile with services, preference order */
  size_t n_lines;
  ad__unfit_t *unfit;
  size_t n_unfit;
  long to_order;         /* sum over the lines */
} ad__buy_plan_t;

/* 0, or AD_EINVAL + *err naming the bad field (profile name and key). */
int ad__buy_req_check(const ad__buy_req_t *req, ad_error_t *err);

/* Plan the order for `n` waiting services. Fills *out (free it with
 * ad__buy_plan_free, also after a failure). Returns 0, or AD_EINVAL (bad
 * request or a service's need: the error names it) / AD_ENOMEM + *err. */
int ad__buy_plan(const ad__waiting_t *waiting, size_t n, const ad__buy_req_t *req,
                 ad__buy_plan_t *out, ad_error_t *err);
void ad__buy_plan_free(ad__buy_plan_t *plan);

/* The plan as JSON (caller decrefs; NULL on no memory):
 * {"to_order", "headroom", "lines": [{"profile", "flavour", "capacity",
 *  "services": [{"service","platform","waited_hours","reason","need"}...],
 *  "demand", "packed", "packed_ffd", "packer", "lower_bound", "volume_bound", "pending", "needed", "to_order",
 *  "cut_by", "max_waited_hours"}...], "unfit": [{"service","platform",
 *  "need","why"}...]} */
json_t *ad__buy_plan_to_json(const ad__buy_plan_t *plan, const ad__waiting_t *waiting,
                             const ad__buy_req_t *req);

#endif
