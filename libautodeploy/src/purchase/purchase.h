/* purchase.h - the daily purchase loop (issue 11; docs/purchase.md): the
 * daily run that turns waiting services into one order per profile, and
 * the drive that moves each order along (approval, placing through the
 * backend, the partner mail, fulfilment by arriving hosts, alerts).
 *
 * The files, in dependency order (each calls only those above it):
 *
 *   tz.c           local time in the configured zone            (pure)
 *   order_rules.c  the state machine, ids, the fulfilment pick  (pure)
 *   config.c       the `purchase` object                        (pure)
 *   plan_input.c   documents -> ad__buy_plan's input            (pure)
 *   backend*.c     where an approved order goes                 (backend.h)
 *   orders.c       the orders collection: insert, move, list, get, cancel
 *   purchase.c     life cycle, the daily run, the drive, hooks, commands
 *   approval_callback.c  DingTalk's bpms_instance_change push
 *
 * The engine owns one ad__purchase_t when its configuration has a
 * `purchase` object (and a store and a placement object: the services
 * live in the fleet's collection). Nothing here calls the registry or the
 * fleet: the engine passes the lease and the alert hook in, and feeds
 * ad__purchase_host_ready from the registry's ready hook. */
#ifndef AD_PURCHASE_PURCHASE_H
#define AD_PURCHASE_PURCHASE_H

#include <jansson.h>
#include <stdint.h>

#include "autodeploy/bus.h"
#include "store/store.h"

typedef struct ad__purchase ad__purchase_t;

typedef struct {
  ad__store_t *store;
  ad_bus_t *bus;             /* to fire signed approve/reject events */
  const char *key_path;      /* the master key (signing, verifying) */
  const char *services_coll, *platforms_coll; /* the fleet's */
  double headroom;           /* placement's */
  /* the cycle lease, as ad__fleet_lease: take 1 (1 held, 0 held by
   * *holder), 2 renew, 0 release */
  int (*lease)(void *u, int take, char *holder, size_t size);
  void *lease_user;
  /* notices and alerts (markdown text), as the engine's alert hook */
  void (*alert)(void *u, const char *title, const char *text, const char *dedup);
  void *alert_user;
  const char *zoneinfo;      /* TZif directory; NULL: the system's */
} ad__purchase_env_t;

/* Counters for the stats JSON (positive evidence of refusals). callbacks:
 * DingTalk pushes that were authentic; callbacks_refused: those that were
 * not (a bad signature, another owner key, undecryptable, malformed);
 * callbacks_decided: orders a push approved or rejected. */
typedef struct {
  int64_t runs, planned, already_planned, refused_unsigned, refused_decisions, placed,
      place_retries, arrivals, callbacks, callbacks_refused, callbacks_decided;
} ad__purchase_stats_t;

/* conf: the engine's `purchase` object. NULL + *err naming the key. */
ad__purchase_t *ad__purchase_new(const ad__purchase_env_t *env, const json_t *conf,
                                 ad_error_t *err);
void ad__purchase_destroy(ad__purchase_t **p_p);

/* Engine timer: the daily run when due, then the drive. ms to the next. */
int64_t ad__purchase_tick(ad__purchase_t *p);
/* autodeploy/order/<id>/placed: the runner backend's signed answer
 * (backend_runner.h). 0 recorded, 1 refused (counted, logged, noted). */
int ad__purchase_on_placed(ad__purchase_t *p, ad_event_t *ev);
/* autodeploy/order/<id>/approve|reject: a signed decision. 0 done, 1 refused. */
int ad__purchase_on_decision(ad__purchase_t *p, ad_event_t *ev);
/* DingTalk's encrypted HTTP push (POST /callbacks/dingtalk, which the
 * engine's HTTP server routes here; approval_callback.c): `peer` the
 * client's address (for the log), `query` its query parameters (name ->
 * string: msg_signature or signature, timestamp or timeStamp, nonce), the
 * body ({"encrypt": ...}). Returns the HTTP status with *answer (a new
 * object): 200 and the encrypted "success" map; 400 (malformed or
 * undecryptable) or 403 (a bad signature, another owner key) with
 * {status, reason}, counted and logged, no order touched; 503 when the
 * store does not answer (DingTalk pushes again). Any thread. */
unsigned ad__purchase_dt_callback(ad__purchase_t *p, const char *peer, const json_t *query,
                                  const char *body, size_t len, json_t **answer);
/* Is a DingTalk callback configured (purchase.approval.dingtalk.callback)? */
int ad__purchase_dt_callback_on(const ad__purchase_t *p);
/* The orders collection (purchase.collection; "orders" without a purchase loop). */
const char *ad__purchase_orders_collection(const ad__purchase_t *p);
/* The registry's ready hook: `host` (borrowed: _id, profile, ready_at). */
void ad__purchase_host_ready(void *p, const json_t *host);
json_t *ad__purchase_stats_json(ad__purchase_t *p);

/* Runner commands (engine/commands.c). */
json_t *ad__purchase_run_cmd(ad__purchase_t *p, const json_t *args, ad_error_t *err);
json_t *ad__order_list(ad__purchase_t *p, const json_t *args, ad_error_t *err);
json_t *ad__order_get(ad__purchase_t *p, const json_t *args, ad_error_t *err);
json_t *ad__order_approve(ad__purchase_t *p, const json_t *args, ad_error_t *err);
json_t *ad__order_reject(ad__purchase_t *p, const json_t *args, ad_error_t *err);
json_t *ad__order_cancel(ad__purchase_t *p, const json_t *args, ad_error_t *err);
json_t *ad__order_placed(ad__purchase_t *p, const json_t *args, ad_error_t *err);

#endif
