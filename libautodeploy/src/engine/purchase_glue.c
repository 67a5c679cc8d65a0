/*
 * purchase_glue.c - the engine's side of the purchase loop: builds it from
 * the `purchase` object with what it needs from the fleet (the services and
 * platforms collections, the headroom, the cycle lease) and the registry
 * (the ready hook), and routes the signed decisions to it. The purchase
 * module knows neither: it gets callbacks (purchase/purchase.h).
 */
#include "core/error_private.h"
#include "engine/engine_private.h"
#include "fleet/fleet_private.h"
#include "purchase/purchase.h"

static int fleet_lease(void *u, int take, char *holder, size_t size)
{
  return ad__fleet_lease(u, take, holder, size);
}

int ad__engine_start_purchase(ad_engine_t *eng, const json_t *conf, ad_error_t *err)
{
  if (!conf || json_is_null(conf))
    return 0;
  if (!eng->store)
    return ad__err(err, AD_ECONFIG, "config", "purchase: needs mongo_uri");
  if (!eng->fleet)
    return ad__err(err, AD_ECONFIG, "config",
                   "purchase: needs a placement object (the waiting services are the fleet's)");
  ad__purchase_env_t env = {
      .store = eng->store,
      .bus = eng->bus,
      .key_path = eng->c.master_key_path,
      .services_coll = eng->fleet->c.services,
      .platforms_coll = eng->fleet->c.platforms,
      .headroom = eng->fleet->c.headroom,
      .lease = fleet_lease,
      .lease_user = eng->fleet,
      .alert = ad__engine_alert,
      .alert_user = eng,
  };
  eng->purchase = ad__purchase_new(&env, conf, err);
  if (!eng->purchase)
    return AD_ECONFIG;
  if (eng->registry)
    ad__registry_on_ready(eng->registry, ad__purchase_host_ready, eng->purchase);
  return 0;
}

/* One handler per route (tests/engine/test_routes.c); the tag says which. */
int ad__engine_on_order_approve(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  return eng->purchase ? ad__purchase_on_decision(eng->purchase, ev) : 0;
}

int ad__engine_on_order_reject(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  return eng->purchase ? ad__purchase_on_decision(eng->purchase, ev) : 0;
}

int ad__engine_on_order_placed(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  return eng->purchase ? ad__purchase_on_placed(eng->purchase, ev) : 0;
}
