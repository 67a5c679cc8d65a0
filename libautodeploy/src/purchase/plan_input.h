/* plan_input.h - the purchase plan's input assembled from documents (pure:
 * the caller reads them from MongoDB, the unit tests write them by hand):
 *
 *   services   the fleet's waiting_resources services: _id, platform,
 *              footprint {cpu, mem_mb, disk_gb}, reason, and since when it
 *              waits (state_changed_at, else created_at_ms)
 *   platforms  their platforms: _id (the code), profiles, regions
 *   orders     the orders of this month and every open one: _id, profile,
 *              day, state, count, arrived
 *
 * Pending (subtracted from the plan) = hosts of orders that are neither
 * final nor fulfilled and have not arrived: an order waiting for approval
 * counts as well as an ordered one, so that a plan on the day after does
 * not buy the same hosts again. Caps count every order of the day (the
 * month) that was not rejected, expired, failed or cancelled. */
#ifndef AD_PURCHASE_PLAN_INPUT_H
#define AD_PURCHASE_PLAN_INPUT_H

#include <jansson.h>

#include "decide/purchase.h"
#include "purchase/config.h"

typedef struct {
  ad__waiting_t *waiting;
  size_t n_waiting;
  ad__buy_profile_t *profiles;
  ad__buy_req_t req;
  json_t *keep; /* the documents the borrowed strings point into */
  const char **lists; /* the platforms' profile and region lists */
  size_t skipped;     /* services whose platform is unknown */
} ad__plan_input_t;

/* 0, or AD_ENOMEM + *err. `today` is "YYYYMMDD" in the configured zone;
 * the documents are borrowed (kept alive by *in until freed). */
int ad__plan_input_build(const ad__purchase_conf_t *c, double headroom, const json_t *services,
                         const json_t *platforms, const json_t *orders, const char *today,
                         int64_t now_ms, ad__plan_input_t *in, ad_error_t *err);
void ad__plan_input_free(ad__plan_input_t *in);

/* Hosts of `order` still to come (count - arrived, >= 0); 0 for an order
 * that is final or fulfilled. */
long ad__order_outstanding(const json_t *order);
/* An order that counts against the caps (not rejected/expired/failed/cancelled). */
int ad__order_counts_for_caps(const json_t *order);

#endif
