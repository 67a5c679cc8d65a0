/* simulate_private.h - the simulator's state, shared by simulate_input.c
 * (reading and checking the input) and simulate.c (the cycle loop). */
#ifndef AD_SIMULATE_PRIVATE_H
#define AD_SIMULATE_PRIVATE_H

#include <jansson.h>
#include <stdint.h>

#include "decide/placement.h"
#include "decide/reserve.h"
#include "decide/simulate.h"

/* A FIFO of times: pushed in time order, popped from the front. */
typedef struct {
  int64_t *v;
  size_t head, len, cap;
} ad__tq_t;

typedef struct {
  const char *code; /* borrowed from the input */
  ad__reserve_policy_t policy;
  ad__place_req_t req;
  const char **profiles, **regions; /* owned arrays of borrowed strings */
  int64_t *open;                    /* all openings, sorted */
  size_t n_open, cap_open;
  size_t replay;                    /* first opening not yet replayed */
  /* state */
  long idle, opened, deployed, waiting_res, covered;
  ad__tq_t deploying;               /* ready times */
  ad__tq_t waiting_open;            /* openings with no server yet */
  /* totals */
  double open_wait_ms, max_wait_ms, res_wait_ms;
  long waited, replayed;
  int reserve_lo, reserve_hi, reserve_last;
  ad__reserve_t why;
  json_t *s_reserve, *s_idle, *s_waiting;
  json_t *footprint;                /* {cpu, mem, sources}: the footprint rule on `usage` */
} ad__sim_platform_t;

typedef struct {
  int64_t arrive;
  double cpu, mem; /* still unclaimed, after headroom */
  long *assigned;  /* per platform: waiting services it will take */
} ad__sim_order_t;

typedef struct {
  ad__sim_platform_t *p;
  size_t np;
  ad__host_t *hosts;
  size_t nh, cap_h, n_input_hosts;
  char **owned; /* names of bought hosts */
  size_t n_owned, cap_owned;
  int64_t start, end, cycle_ms, deploy_ms, lead_ms, sample_ms;
  double headroom;
  int buy;
  ad__res_t buy_cap;
  const char *buy_profile, *buy_region;
  ad__sim_order_t *orders;
  size_t n_orders, cap_orders;
  long bought;
} ad__sim_t;

/* Read and check the input into *s (zeroed by the caller). */
int ad__sim_load(ad__sim_t *s, const json_t *in, ad_error_t *err);
void ad__sim_free(ad__sim_t *s);

int ad__tq_push(ad__tq_t *q, int64_t t);


#endif
