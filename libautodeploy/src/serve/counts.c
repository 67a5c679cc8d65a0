/*
 * counts.c - what /metrics counts in MongoDB per scrape: tasks, hosts and
 * orders by state, services by platform and state, the reserve from the
 * last cycle, the longest wait, and the cycle lease. Each read projects
 * only the fields it counts.
 */
#include <string.h>

#include "core/clock.h"
#include "serve/serve_private.h"
#include "store/cursor.h"
#include "store/docs.h"

typedef struct {
  json_t *out;
  const char *f1, *f2; /* group by f1 (and f2 under it) */
} group_t;

static int add_one(void *u, const bson_t *doc)
{
  group_t *g = u;
  bson_iter_t it;
  const char *a = bson_iter_init_find(&it, doc, g->f1) && BSON_ITER_HOLDS_UTF8(&it)
                      ? bson_iter_utf8(&it, NULL) : "unknown";
  json_t *o = g->out;
  if (g->f2) {
    if (!json_object_get(o, a))
      json_object_set_new(o, a, json_object());
    o = json_object_get(o, a);
    a = bson_iter_init_find(&it, doc, g->f2) && BSON_ITER_HOLDS_UTF8(&it)
            ? bson_iter_utf8(&it, NULL) : "unknown";
  }
  json_object_set_new(o, a, json_integer(json_integer_value(json_object_get(o, a)) + 1));
  return 0;
}

static int group(ad__serve_t *s, json_t *snap, const char *name, const char *coll,
                 const char *f1, const char *f2)
{
  group_t g = {json_object(), f1, f2};
  bson_t q = BSON_INITIALIZER;
  bson_t *opts = f2 ? BCON_NEW("projection", "{", f1, BCON_INT32(1), f2, BCON_INT32(1), "}")
                    : BCON_NEW("projection", "{", f1, BCON_INT32(1), "}");
  int rc = ad__store_each(s->env.store, coll, &q, opts, add_one, &g, NULL);
  bson_destroy(opts);
  json_object_set_new(snap, name, g.out);
  return rc;
}

/* Per platform: the reserve target the last cycle left on it (whoever ran
 * it), the services waiting now and the longest wait. */
static int reserve(ad__serve_t *s, json_t *snap)
{
  json_t *r = json_object();
  bson_t *pq = bson_new();
  bson_t *po = BCON_NEW("projection", "{", "last_cycle.reserve.size", BCON_INT32(1), "}");
  json_t *plats = ad__store_find_json(s->env.store, s->env.platforms_collection, pq, po, NULL);
  bson_destroy(pq);
  bson_destroy(po);
  size_t i;
  json_t *d;
  json_array_foreach(plats, i, d) {
    json_t *size = json_object_get(json_object_get(json_object_get(d, "last_cycle"), "reserve"), "size");
    json_object_set_new(r, ad__jstr(d, "_id"), json_pack("{s:O?,s:i}", "target", size, "waiting", 0));
  }
  /* the longest wait per platform, from the services themselves */
  json_t *waiting = NULL;
  bson_t *q = BCON_NEW("state", BCON_UTF8("waiting_resources"));
  bson_t *o = BCON_NEW("projection", "{", "platform", BCON_INT32(1), "created_at_ms", BCON_INT32(1), "}");
  waiting = ad__store_find_json(s->env.store, s->env.services_collection, q, o, NULL);
  bson_destroy(q);
  bson_destroy(o);
  int64_t now = ad__now_ms();
  json_array_foreach(waiting, i, d) {
    const char *p = ad__jstr(d, "platform");
    if (!p)
      continue;
    if (!json_object_get(r, p))
      json_object_set_new(r, p, json_object());
    json_t *pr = json_object_get(r, p);
    json_object_set_new(pr, "waiting", json_integer(json_integer_value(json_object_get(pr, "waiting")) + 1));
    double w = (now - json_integer_value(json_object_get(d, "created_at_ms"))) / 1000.0;
    if (w > json_number_value(json_object_get(pr, "waited_seconds")))
      json_object_set_new(pr, "waited_seconds", json_real(w));
  }
  json_object_set_new(snap, "reserve", r);
  int rc = plats && waiting ? 0 : -1;
  json_decref(plats);
  json_decref(waiting);
  return rc;
}

static int lease(ad__serve_t *s, json_t *snap)
{
  bson_t *q = BCON_NEW("_id", BCON_UTF8("cycle"));
  json_t *rows = ad__store_find_json(s->env.store, s->env.locks_collection, q, NULL, NULL);
  bson_destroy(q);
  if (!rows)
    return -1;
  json_t *l = json_array_get(rows, 0);
  const char *mine = ad__jstr(json_object_get(json_object_get(snap, "stats"), "cycle"), "owner");
  const char *holder = l ? ad__jstr(l, "owner") : NULL;
  int held = l && json_integer_value(json_object_get(l, "until_ms")) > ad__now_ms();
  json_object_set_new(snap, "lease", json_pack("{s:s,s:b,s:b}", "holder", holder ? holder : "",
                                               "held", held, "mine",
                                               held && holder && mine && !strcmp(holder, mine)));
  json_decref(rows);
  return 0;
}

int ad__serve_counts(ad__serve_t *s, json_t *snap)
{
  if (!s->env.store)
    return -1;
  if (group(s, snap, "tasks", s->env.tasks_collection, "state", NULL))
    return -1; /* the store is down: one timeout, not six */
  int rc = 0;
  rc |= group(s, snap, "hosts", s->env.hosts_collection, "state", NULL);
  rc |= group(s, snap, "services", s->env.services_collection, "platform", "state");
  rc |= group(s, snap, "orders", s->env.orders_collection, "state", NULL);
  rc |= reserve(s, snap);
  rc |= lease(s, snap);
  return rc ? -1 : 0;
}
