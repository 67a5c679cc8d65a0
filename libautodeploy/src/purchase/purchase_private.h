/* purchase_private.h - shared by orders.c, purchase.c and
 * approval_callback.c. */
#ifndef AD_PURCHASE_PRIVATE_H
#define AD_PURCHASE_PRIVATE_H

#include <pthread.h>

#include "purchase/approval_dingtalk.h"
#include "purchase/backend.h"
#include "purchase/backend_runner.h"
#include "purchase/config.h"
#include "purchase/order_rules.h"
#include "purchase/partner_mail.h"
#include "purchase/purchase.h"

#define AD__ORDER_HISTORY_MAX 100
#define AD__PURCHASE_RUNS "purchase_runs"

struct ad__purchase {
  ad__purchase_env_t env;
  char *services_coll, *platforms_coll, *key_path;
  ad__purchase_conf_t c;
  const ad__order_backend_t *backend;
  void *backend_self;
  ad__order_fire_env_t fire_env; /* the runner backend fires through it */
  ad__partner_mail_t *mail;    /* NULL: no partner_mail configured */
  ad__dt_approval_t *dt;       /* NULL: no DingTalk approval configured */
  int64_t next_drive_mono;
  pthread_mutex_t lock;        /* one drive or run at a time in this process */
  pthread_mutex_t move_lock;   /* one order move at a time in this process (orders.c) */
  ad__purchase_stats_t stats;  /* atomics */
};

#define AD__PCOUNT(p, f) __atomic_add_fetch(&(p)->stats.f, 1, __ATOMIC_RELAXED)

/* orders.c */
json_t *ad__orders_find(ad__purchase_t *p, json_t *query, json_t *opts, ad_error_t *err);
json_t *ad__orders_get(ad__purchase_t *p, const char *id, ad_error_t *err);
/* Insert a planned order: 1 inserted, 0 already planned, <0 + err. */
int ad__orders_insert(ad__purchase_t *p, const json_t *doc, ad_error_t *err);
/* Move `order` by `cause` (checked against the table first), $set `set`
 * (borrowed, may be NULL; state is added here). 1 moved, 0 the order
 * changed meanwhile, AD_ESTATE + err when the rules refuse, <0 store error. */
int ad__orders_move(ad__purchase_t *p, const json_t *order, int cause, const json_t *set,
                    const char *why, const char *actor, ad_error_t *err);
/* The order document for one plan line (JSON of ad__buy_plan_to_json). */
json_t *ad__orders_doc(const ad__purchase_t *p, const json_t *line, const char *day,
                       int64_t now_ms);
/* A notice about `order` through the alert hook: "order <id>: <what>". */
void ad__orders_notice(ad__purchase_t *p, const json_t *order, const char *what,
                       const char *text);

/* purchase.c: DingTalk's word on an order awaiting approval, however it was
 * learnt (the drive's poll, or the bpms_instance_change push): one path, so
 * the two decide once. result 1 approves, 2 rejects; "<what> in DingTalk
 * OA<via>" is the history's cause (and the end_reason of a rejection), with
 * `actor`; the notice follows a move. 1 moved, 0 the order changed
 * meanwhile (the other path decided first), <0 refused by the rules
 * (AD_ESTATE) or a store error. */
int ad__purchase_dt_decide(ad__purchase_t *p, const json_t *o, int result, const char *what,
                           const char *via, const char *actor);

#endif
