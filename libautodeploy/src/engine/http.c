/*
 * http.c - the engine's side of the HTTP server (serve/): what it may read
 * (the store, the collections the other modules were configured with, the
 * counters) and DingTalk's push (to the purchase loop, when its approval has
 * a callback) handed over as an ad__serve_env_t, so serve/ never calls up
 * into the engine.
 */
#include <stdlib.h>

#include "core/clock.h"
#include "core/error_private.h"
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

/* POST /callbacks/dingtalk (purchase/approval_callback.c) */
static unsigned dingtalk_push(void *user, const char *peer, const json_t *query,
                              const char *body, size_t len, json_t **answer)
{
  ad_engine_t *eng = user;
  return ad__purchase_dt_callback(eng->purchase, peer, query, body, len, answer);
}

int ad__engine_http_start(ad_engine_t *eng, const json_t *http, const json_t *registry,
                          const json_t *placement, ad_error_t *err)
{
  int push = ad__purchase_dt_callback_on(eng->purchase); /* the purchase loop is built first */
  if ((!http || json_is_null(http)) && push)
    return ad__err(err, AD_ECONFIG, "config", "purchase.approval.dingtalk.callback: needs the "
                   "engine's http object (DingTalk pushes to its /callbacks/dingtalk)");
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
      .orders_collection = ad__purchase_orders_collection(eng->purchase), /* built first */
      .tasks = eng->store ? &eng->tasks : NULL,
      .registry = eng->registry,
      .fleet = eng->fleet,
      .stats = engine_stats,
      .dingtalk_callback = push ? dingtalk_push : NULL,
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
