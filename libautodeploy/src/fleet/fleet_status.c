/*
 * fleet_status.c - what `salt-run autodeploy.status` shows of the fleet
 * from the store: services by state per platform, the waiting ones and the
 * cycle lease. (The engine's last cycle is its status document's
 * `last_cycle`: ad__fleet_last_cycle_summary, cycle_report.c.)
 */
#include "core/clock.h"
#include "core/error_private.h"
#include "fleet/fleet_private.h"
#include "store/docs.h"
#include "store/group.h"

/* {platform: {state: n}} */
static json_t *services_by_state(ad__fleet_t *f, ad_error_t *err)
{
  static const char *const fields[] = {"platform", "state"};
  json_t *rows = ad__store_count_by(f->env.store, f->c.services, NULL, fields, 2, err);
  if (!rows)
    return NULL;
  json_t *out = json_object(), *row;
  size_t i;
  json_array_foreach(rows, i, row) {
    const char *plat = ad__jstr(row, "platform"), *state = ad__jstr(row, "state");
    json_t *per = json_object_get(out, plat);
    if (!per)
      json_object_set_new(out, plat, per = json_object());
    json_object_set(per, state[0] ? state : "(none)", json_object_get(row, "count"));
  }
  json_decref(rows);
  return out;
}

/* The cycle lease document: who holds it and until when. */
static json_t *lease(ad__fleet_t *f, ad_error_t *err)
{
  json_t *rows = ad__docs_find(f->env.store, f->c.locks, json_pack("{s:s}", "_id", "cycle"), NULL, err);
  if (!rows)
    return NULL;
  json_t *doc = json_array_get(rows, 0), *out = json_null();
  if (doc) {
    int64_t until = json_integer_value(json_object_get(doc, "until_ms"));
    char iso[32];
    ad__iso_ms(until, iso);
    out = json_pack("{s:s,s:s,s:b}", "holder", ad__jstr(doc, "owner"), "until", iso, "held",
                    until > ad__now_ms());
  }
  json_decref(rows);
  return out;
}

json_t *ad__fleet_status(ad__fleet_t *f, ad_error_t *err)
{
  json_t *services = services_by_state(f, err);
  json_t *l = services ? lease(f, err) : NULL;
  if (!l) {
    json_decref(services);
    return NULL;
  }
  int64_t waiting = ad__docs_count(f->env.store, f->c.services,
                                   json_pack("{s:s}", "state", "waiting_resources"));
  return json_pack("{s:o,s:I,s:o}", "services", services, "waiting", (json_int_t)waiting,
                   "lease", l);
}
