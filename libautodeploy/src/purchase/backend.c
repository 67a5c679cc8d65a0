/* backend.c - the order backends by name (backend.h). */
#include <string.h>

#include "core/error_private.h"
#include "purchase/backend.h"

static const ad__order_backend_t *const BACKENDS[] = {
    &ad__order_backend_none, &ad__order_backend_http, &ad__order_backend_runner};

const ad__order_backend_t *ad__order_backend_find(const char *type, ad_error_t *err)
{
  if (!type || !*type)
    type = "none";
  for (size_t i = 0; i < sizeof BACKENDS / sizeof BACKENDS[0]; i++)
    if (!strcmp(BACKENDS[i]->type, type))
      return BACKENDS[i];
  ad__err(err, AD_ECONFIG, "config", "purchase.backend.type: %s: must be none, http or runner",
          type);
  return NULL;
}
