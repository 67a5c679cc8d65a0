/* backend_runner.h - what the `runner` order backend needs beyond
 * backend.h's vtable: a way to fire its signed control event. The engine
 * binds it after create() (a backend does not reach up into the engine for
 * its bus: it is given a callback, as the CMDB kick is).
 *
 *   void *b = ad__order_backend_runner.create(conf, &err);
 *   ad__order_fire_env_t env = {bus, key_path};   (lives as long as b)
 *   ad__order_runner_set_fire(b, ad__order_fire_signed, &env);
 *
 * place() fires autodeploy/order/<_id>/place, signed with the master key,
 * with the body (docs/purchase.md, "runner"):
 *   {"id": <_id>, "runner": <runner>, "dry_run": bool, "args": {...},
 *    "order": {"_id", "profile", "flavour", "region", "count", "reason"}}
 * reactor/autodeploy_order_place.sls checks the signature and runs the
 * runner, whose result comes back as a signed autodeploy/order/<_id>/placed
 * event {id, ok, cloud_order_id, error, dry_run}: the runner calls the
 * order.placed command (ad__order_placed_body makes the body, orders.c fires
 * it), and ad__order_placed_check reads it. */
#ifndef AD_PURCHASE_BACKEND_RUNNER_H
#define AD_PURCHASE_BACKEND_RUNNER_H

#include <jansson.h>

#include "autodeploy/bus.h"
#include "purchase/backend.h"

/* Fire `tag` with `body` (borrowed), signed. 0 or <0 + *err. */
typedef int (*ad__order_fire_fn)(void *user, const char *tag, const json_t *body,
                                 ad_error_t *err);

/* Bind the fire callback of a runner backend (`self` from its create()). */
void ad__order_runner_set_fire(void *self, ad__order_fire_fn fn, void *user);

/* The usual callback: ad__fire_signed(env->bus, env->key_path, ...). */
typedef struct {
  ad_bus_t *bus;
  const char *key_path;
} ad__order_fire_env_t;
int ad__order_fire_signed(void *env, const char *tag, const json_t *body, ad_error_t *err);

/* The body of a verified autodeploy/order/<id>/placed event, checked:
 * tag_id is the id in the tag. 0 with *result = {id, ok, cloud_order_id,
 * error, dry_run} (new reference), or AD_EINVAL + *err naming the field. */
int ad__order_placed_check(const char *tag_id, const char *body, size_t len, json_t **result,
                           ad_error_t *err);

/* The body of an autodeploy/order/<id>/placed event made from the
 * order.placed command's arguments {id, ok, cloud_order_id, error, dry_run}
 * (dry_run false when absent), checked by the same rules as
 * ad__order_placed_check. A new reference, or NULL + AD_EINVAL (domain
 * "args") naming the argument. */
json_t *ad__order_placed_body(const json_t *args, ad_error_t *err);

#endif
