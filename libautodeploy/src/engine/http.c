/*
 * http.c - the engine's side of the HTTP server (serve/): what it may read
 * (the store, the collections the other modules were configured with, the
 * counters) handed over as an ad__serve_env_t, so serve/ never calls up
 * into the engine.
 */
#include <stdlib.h>

#include "core/clock.h"
#include "engine/engine_private.h"

static const char *coll_of(const json_t *conf, const char *key, const char *def)
{
  const char *v = json_string_value(json_object_get(conf, key));
  return v ? v : def;
}

/* the stats JSON, with the notifier's channels and the cycle's numbers */
static json_t *engine_stats(void *user)
{
  ad_engine_t *eng = user;
  char *text = ad_engine_stats_json(eng);
  json_t *j = text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  if (!j)
    j = json_object();
  if (eng->notifier) {
    char *n = ad_notify_stats_json(eng->notifier);
    json_t *nj = n ? json_loads(n, 0, NULL) : NULL;
    free(n);
    if (nj)
      json_object_set_new(j, "notify", nj);
  }
  if (eng->fleet)
    json_object_set_new(j, "cycle", ad__fleet_cycle_stats(eng->fleet));
  return j;
}

int ad__engine_http_start(ad_engine_t *eng, const json_t *http, const json_t *registry,
                          const json_t *placement, ad_error_t *err)
{
  if (!http || json_is_null(http))
    return 0;
  /* the strings stay valid: the engine's config (c) and these objects'
   * values are copied below into a block the server owns for its life */
  ad__serve_env_t env = {
      .store = eng->store,
      .hosts_collection = coll_of(registry, "collection", "hosts"),
      .tasks_collection = eng->c.tasks_collection,
      .platforms_collection = coll_of(placement, "platforms_collection", "platforms"),
      .services_collection = coll_of(placement, "services_collection", "services"),
      .locks_collection = coll_of(placement, "locks_collection", "locks"),
      .orders_collection = coll_of(json_object_get(placement, "purchase"), "orders_collection", "orders"),
      .tasks = eng->store ? &eng->tasks : NULL,
      .registry = eng->registry,
      .fleet = eng->fleet,
      .stats = engine_stats,
      .user = eng,
  };
  eng->serve = ad__serve_new(&env, http, err);
  return eng->serve ? 0 : AD_ECONFIG;
}

void ad__engine_http_task_end(ad_engine_t *eng, const json_t *task)
{
  int64_t a, b;
  const char *c = json_string_value(json_object_get(task, "created_at"));
  const char *u = json_string_value(json_object_get(task, "updated_at"));
  if (c && u && ad__time_parse(c, &a) == 0 && ad__time_parse(u, &b) == 0)
    ad__serve_observe_task(eng->serve, (b - a) / 1000.0);
}
