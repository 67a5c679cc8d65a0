/* backend_stubs.c - TEMPORARY: stand-ins for backend_http.c and
 * backend_runner.c, which are written in parallel (issue 11). Delete this
 * file when they are merged. */
#include "core/error_private.h"
#include "purchase/backend.h"

static void *not_built(const char *type, ad_error_t *err)
{
  ad__err(err, AD_ECONFIG, "config", "purchase.backend.type: backend %s: not built", type);
  return NULL;
}
static void *http_create(const json_t *c, ad_error_t *err) { return not_built("http", err); }
static void *runner_create(const json_t *c, ad_error_t *err) { return not_built("runner", err); }
static int stub_place(void *s, const json_t *o, json_t **r, ad_error_t *err)
{
  return ad__err(err, AD_ECONFIG, "purchase", "backend not built");
}
static void stub_destroy(void *s) {}

__attribute__((weak)) const ad__order_backend_t ad__order_backend_http = {
    "http", http_create, stub_place, stub_destroy};
__attribute__((weak)) const ad__order_backend_t ad__order_backend_runner = {
    "runner", runner_create, stub_place, stub_destroy};
