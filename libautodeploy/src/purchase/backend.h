/* backend.h - where an approved order goes (issue 11; docs/purchase.md).
 * One small vtable per backend, each in its own file (backend_none.c,
 * backend_http.c, backend_runner.c), picked by purchase.backend.type.
 *
 * Contract for every backend:
 *   - the order's _id ("<profile>-<YYYYMMDD>") is the idempotency key: a
 *     retry, a restart or a second engine never makes a second order (http:
 *     sent as the client token in a header and the body; runner: ClientToken);
 *   - place() never blocks longer than the backend's own timeout;
 *   - secrets (keys, tokens) never reach the log, the result or an error. */
#ifndef AD_PURCHASE_BACKEND_H
#define AD_PURCHASE_BACKEND_H

#include <jansson.h>

#include "autodeploy/common.h"
#include "core/config.h"

/* place() results */
#define AD__PLACE_DONE 0    /* ordered: *result has the cloud's answer */
#define AD__PLACE_LATER 1   /* asynchronous: the result comes back later
                               (runner: a signed autodeploy/order/<id>/placed
                               event); *result may say what was sent */

typedef struct {
  const char *type; /* "none", "http", "runner" */
  /* This backend's keys: the whole purchase.backend object (borrowed).
   * NULL + *err (AD_ECONFIG naming the key) on a bad value. */
  void *(*create)(const json_t *conf, ad_error_t *err);
  /* Place `order` (the order document, borrowed: _id, profile, flavour,
   * region, count, reason, ...). AD__PLACE_DONE with *result (caller
   * decrefs; at least {"cloud_order_id": "..."} when the cloud gave one),
   * AD__PLACE_LATER, AD_EAGAIN + *err (a retryable failure: the caller
   * retries with backoff, the same _id), or another negative code + *err
   * (failed for good: the order goes to failed with this reason). */
  int (*place)(void *self, const json_t *order, json_t **result, ad_error_t *err);
  void (*destroy)(void *self);
} ad__order_backend_t;

extern const ad__order_backend_t ad__order_backend_none;
extern const ad__order_backend_t ad__order_backend_http;
extern const ad__order_backend_t ad__order_backend_runner;

/* The backend named by conf.type (default "none"), or NULL + AD_ECONFIG. */
const ad__order_backend_t *ad__order_backend_find(const char *type, ad_error_t *err);

/* The key tables (NULL-terminated, static), for the configuration reference
 * (engine/config_keys.c). */
const ad__config_key_t *ad__purchase_http_keys(void);
const ad__config_key_t *ad__purchase_runner_keys(void);

#endif
