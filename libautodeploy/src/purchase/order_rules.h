/* order_rules.h - the order state machine as data, and the pure decisions
 * of the purchase loop (no store, no bus, no clock): the C unit tests
 * (tests/purchase/test_order_rules.c) check them exhaustively, and
 * orders.c asks ad__order_can_move before every conditional update, so the
 * table below is the only place the rules live (docs/purchase.md).
 *
 *   cause     from                                       to
 *   ASK       planned                                    awaiting_approval
 *   APPROVE   planned, awaiting_approval                 approved
 *   REJECT    planned, awaiting_approval                 rejected
 *   EXPIRE    awaiting_approval                          expired
 *   PLACE     approved                                   ordered
 *   NOTIFY    ordered                                    partner_notified
 *   ARRIVE    ordered, partner_notified                  (same: one more host counted)
 *   FULFIL    ordered, partner_notified                  fulfilled
 *   CLOSE     fulfilled                                  closed
 *   FAIL      planned, awaiting_approval, approved       failed
 *   CANCEL    planned, awaiting_approval, approved       cancelled
 *   NOTE      any                                        (same: a note, a retry time)
 *
 * An order is created planned (an insert, not a move). closed, rejected,
 * expired, failed and cancelled are final. */
#ifndef AD_PURCHASE_ORDER_RULES_H
#define AD_PURCHASE_ORDER_RULES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
  AD__OS_PLANNED,
  AD__OS_AWAITING_APPROVAL,
  AD__OS_APPROVED,
  AD__OS_ORDERED,
  AD__OS_PARTNER_NOTIFIED,
  AD__OS_FULFILLED,
  AD__OS_CLOSED,
  AD__OS_REJECTED,
  AD__OS_EXPIRED,
  AD__OS_FAILED,
  AD__OS_CANCELLED,
  AD__OS_COUNT
} ad__order_state_t;

typedef enum {
  AD__OC_ASK,
  AD__OC_APPROVE,
  AD__OC_REJECT,
  AD__OC_EXPIRE,
  AD__OC_PLACE,
  AD__OC_NOTIFY,
  AD__OC_ARRIVE,
  AD__OC_FULFIL,
  AD__OC_CLOSE,
  AD__OC_FAIL,
  AD__OC_CANCEL,
  AD__OC_NOTE,
  AD__OC_COUNT
} ad__order_cause_t;

/* "planned".. / "ask".. ; "?" out of range. */
const char *ad__order_state_name(int s);
const char *ad__order_cause_name(int c);
/* The state named `name`, or -1. */
int ad__order_state_parse(const char *name);
/* The state `cause` leads to from `from` (ARRIVE, NOTE: `from`). */
int ad__order_cause_target(int cause, int from);
/* 1 when `cause` may move an order from `from` to `to`, else 0 (also out of range). */
int ad__order_can_move(int from, int to, int cause);
int ad__order_state_is_end(int s);
/* Open: ordered or partner_notified (hosts are on their way: "pending"). */
int ad__order_state_is_pending(int s);

/* The order id "<profile>-<YYYYMMDD>" into out[size]: 0, or -1 when the
 * profile is empty or the id does not fit. */
int ad__order_id(const char *profile, const char *day, char *out, size_t size);

/* Fulfilment: the index in `orders` (documents: _id, profile, state,
 * ordered_at_ms, arrived: [host keys]) of the order a host of `profile` that
 * became ready at `ready_ms` counts against: the oldest (ordered_at_ms, then
 * _id) pending order of that profile placed before it, not yet full, that
 * has not counted this host. -1: none (or it is counted already). */
long ad__order_pick_arrival(const json_t *orders, const char *profile, const char *host,
                            int64_t ready_ms);

/* Backoff for the n-th retry (n >= 1) of a failed step: base * 2^(n-1),
 * at most max_s. */
int64_t ad__order_backoff_s(int n, int64_t base_s, int64_t max_s);

#endif
