/* backend_none.c - the `none` backend: autodeploy plans, asks for approval
 * and notifies; the partner places the order. place() records that nothing
 * was sent to a cloud, so `ordered` means "handed to the partner". */
#include <stdlib.h>
#include <string.h>

#include "core/error_private.h"
#include "purchase/backend.h"

static int self_tag; /* create() must return non-NULL on success */

static void *none_create(const json_t *conf, ad_error_t *err)
{
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)conf, k, v) if (strcmp(k, "type"))
  {
    ad__err(err, AD_ECONFIG, "config", "purchase.backend.%s: unknown key (type none takes no keys)", k);
    return NULL;
  }
  return &self_tag;
}

static int none_place(void *self, const json_t *order, json_t **result, ad_error_t *err)
{
  *result = json_pack("{s:s,s:n,s:s}", "backend", "none", "cloud_order_id", "note",
                      "no order API: the partner places the order from the email");
  return *result ? AD__PLACE_DONE : ad__err(err, AD_ENOMEM, "purchase", "no memory");
}

static void none_destroy(void *self) {}

const ad__order_backend_t ad__order_backend_none = {"none", none_create, none_place, none_destroy};
