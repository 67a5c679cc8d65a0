/*
 * fleet_status.c - what `salt-run autodeploy.status` shows of the fleet:
 * the engine's last cycle (kept in memory by the engine's tick and
 * published in its status document), services by state per platform, the
 * waiting ones and the cycle lease, read from the store.
 */
#include "core/clock.h"
#include "core/error_private.h"
#include "fleet/fleet_private.h"
#include "store/docs.h"
#include "store/group.h"

static json_int_t sum_sizes(const json_t *platforms, const char *key, json_t *per, const char *as)
{
  size_t i;
  json_t *p;
  json_int_t n = 0;
  json_array_foreach(platforms, i, p) {
    size_t k = json_array_size(json_object_get(p, key));
    n += (json_int_t)k;
    json_object_set_new(json_object_get(per, ad__jstr(p, "platform")), as, json_integer((json_int_t)k));
  }
  return n;
}

void ad__fleet_note_cycle(ad__fleet_t *f, const json_t *r, const ad_error_t *err)
{
  char iso[32];
  ad__iso_ms(ad__now_ms(), iso);
  json_t *s = json_pack("{s:s,s:b}", "at", iso, "ran", r && json_is_true(json_object_get(r, "ran")));
  if (!s)
    return;
  if (!r) {
    json_object_set_new(s, "error", json_string(err ? err->message : "failed"));
  } else if (!json_is_true(json_object_get(r, "ran"))) {
    json_object_set_new(s, "skipped", json_string(ad__jstr(r, "skipped")));
  } else {
    json_t *plats = json_object_get(r, "platforms"), *per = json_object(), *p;
    size_t i;
    json_array_foreach(plats, i, p) {
      json_t *res = json_object_get(json_object_get(p, "reserve"), "size");
      json_object_set_new(per, ad__jstr(p, "platform"),
                          json_pack("{s:O}", "reserve_target", res ? res : json_null()));
      if (json_object_get(p, "error"))
        json_object_set(json_object_get(per, ad__jstr(p, "platform")), "error",
                        json_object_get(p, "error"));
    }
    json_object_set_new(s, "ms", json_integer(json_integer_value(json_object_get(r, "ms"))));
    json_object_set_new(s, "hosts", json_integer(json_integer_value(json_object_get(r, "hosts"))));
    json_object_set_new(s, "created", json_integer(sum_sizes(plats, "created", per, "created")));
    json_object_set_new(s, "placed", json_integer(sum_sizes(plats, "placed", per, "placed")));
    json_object_set_new(s, "waiting", json_integer(sum_sizes(plats, "waiting", per, "waiting")));
    json_object_set_new(s, "platforms", per);
    if (json_object_get(r, "load_error"))
      json_object_set(s, "load_error", json_object_get(r, "load_error"));
  }
  json_decref(f->last_cycle);
  f->last_cycle = s;
}

json_t *ad__fleet_last_cycle(const ad__fleet_t *f)
{
  return f->last_cycle ? json_deep_copy(f->last_cycle) : json_null();
}

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
