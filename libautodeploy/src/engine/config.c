/*
 * config.c - the engine's configuration table and its constructor: the
 * keys, then the notifier, the store, the bus, the task system, the
 * registry and the fleet, the Kafka feed, the purchase loop, the HTTP
 * server, then the routes. One teardown path: whatever was
 * built is undone by ad_engine_destroy, which is NULL-safe field by field.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/bus_private.h"
#include "core/error_private.h"
#include "engine/engine_private.h"

static const char *const IPC_MODES[] = {"ipc", "tcp", NULL};
static const char *const FRAMINGS[] = {"auto", "raw", "length", NULL};
static const char *const POLICIES[] = {"block", "drop", NULL};
static const char *const FORMATS[] = {"msgpack", "json", NULL};
static const char *const RETURNS[] = {"all", "tasks", "off", NULL};
static const char *const FSYNC[] = {"always", "never", NULL};

#define K(name, type, field, min, max, def, en) \
  {name, type, offsetof(ad__engine_conf_t, field), min, max, def, en}
const ad__config_key_t ad__engine_keys[] = {
    K("sock_dir", AD_CT_STR, sock_dir, 0, 0, "/var/run/salt/master", NULL),
    K("ipc_mode", AD_CT_ENUM, ipc_mode, 0, 0, "ipc", IPC_MODES),
    K("tcp_host", AD_CT_STR, tcp_host, 0, 0, "127.0.0.1", NULL),
    K("tcp_master_pub_port", AD_CT_INT, tcp_pub_port, 1, 65535, "4512", NULL),
    K("tcp_master_pull_port", AD_CT_INT, tcp_pull_port, 1, 65535, "4513", NULL),
    K("max_frame", AD_CT_SIZE, max_frame, 4096, 1LL << 31, "67108864", NULL),
    K("framing", AD_CT_ENUM, framing, 0, 0, "auto", FRAMINGS),
    K("fire_framing", AD_CT_ENUM, fire_framing, 0, 0, "length", FRAMINGS),
    K("workers", AD_CT_INT, workers, 0, 64, "2", NULL),
    K("queue_size", AD_CT_INT, queue_size, 1, 10000000, "10000", NULL),
    K("queue_full", AD_CT_ENUM, queue_full, 0, 0, "block", POLICIES),
    K("queue_max_bytes", AD_CT_SIZE, queue_max_bytes, 4096, 1LL << 40, "67108864", NULL),
    K("reconnect_min_ms", AD_CT_INT, reconnect_min_ms, 1, 600000, "100", NULL),
    K("reconnect_max_ms", AD_CT_INT, reconnect_max_ms, 1, 3600000, "5000", NULL),
    K("fanout_endpoint", AD_CT_STR, fanout_endpoint, 0, 0, "", NULL),
    K("fanout_format", AD_CT_ENUM, fanout_format, 0, 0, "msgpack", FORMATS),
    K("stats_interval", AD_CT_INT, stats_interval, 0, 86400, "300", NULL),
    K("log_events", AD_CT_STR, log_events, 0, 0, "", NULL),
    K("mongo_uri", AD_CT_STR, mongo_uri, 0, 0, "", NULL),
    K("mongo_db", AD_CT_STR, mongo_db, 0, 0, "autodeploy", NULL),
    K("returns", AD_CT_ENUM, returns_mode, 0, 0, "all", RETURNS),
    K("returns_collection", AD_CT_STR, returns_collection, 0, 0, "returns", NULL),
    K("batch_size", AD_CT_INT, batch_size, 1, 10000, "500", NULL),
    K("batch_ms", AD_CT_INT, batch_ms, 1, 60000, "50", NULL),
    K("returns_queue", AD_CT_INT, returns_queue, 1, 10000000, "20000", NULL),
    K("spool_dir", AD_CT_STR, spool_dir, 0, 0, "/var/cache/salt/master/autodeploy", NULL),
    K("spool_max_bytes", AD_CT_SIZE, spool_max_bytes, 1024, 1LL << 40, "1073741824", NULL),
    K("spool_fsync", AD_CT_ENUM, spool_fsync, 0, 0, "always", FSYNC),
    K("store_retry_ms", AD_CT_INT, store_retry_ms, 10, 3600000, "2000", NULL),
    K("master_key_path", AD_CT_STR, master_key_path, 0, 0, "/var/cache/salt/master/.root_key", NULL),
    K("tasks_collection", AD_CT_STR, tasks_collection, 0, 0, "tasks", NULL),
    K("job_cache_dir", AD_CT_STR, job_cache_dir, 0, 0, "/var/cache/salt/master/jobs", NULL),
    K("hash_type", AD_CT_STR, hash_type, 0, 0, "sha256", NULL),
    K("watchdog_interval", AD_CT_INT, watchdog_interval, 1, 3600, "60", NULL),
    K("backfill_margin_s", AD_CT_INT, backfill_margin_s, 0, 86400, "300", NULL),
    K("pki_dir", AD_CT_STR, pki_dir, 0, 0, "/etc/salt/pki/master", NULL),
    K("cachedir", AD_CT_STR, cachedir, 0, 0, "/var/cache/salt/master", NULL),
    K("publish_port", AD_CT_INT, publish_port, 1, 65535, "4505", NULL),
    K("master_id", AD_CT_STR, master_id, 0, 0, "", NULL),
    K("status_interval", AD_CT_INT, status_interval, 0, 3600, "10", NULL),
    K("status_collection", AD_CT_STR, status_collection, 0, 0, "engine_status", NULL),
    K("leader_lease_s", AD_CT_INT, leader_lease_s, 2, 3600, "15", NULL),
    K("leader_skew_ms", AD_CT_INT, leader_skew_ms, 0, 60000, "1000", NULL),
    K("leader_collection", AD_CT_STR, leader_collection, 0, 0, "locks", NULL),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* The value of `key`, removed from `obj` (a new reference; NULL if absent):
 * sub-objects that their own module validates, not ad__engine_keys. */
static json_t *take_key(json_t *obj, const char *key)
{
  json_t *v = json_incref(json_object_get(obj, key));
  json_object_del(obj, key);
  return v;
}

static int start_notifier(ad_engine_t *eng, const json_t *notify, ad_error_t *err)
{
  if (!notify || json_is_null(notify))
    return 0;
  char *text = json_dumps(notify, JSON_COMPACT);
  if (!text)
    return ad__err(err, AD_ENOMEM, "engine", "no memory");
  eng->notifier = ad_notifier_new(text, err);
  free(text);
  return eng->notifier ? 0 : AD_ECONFIG;
}

static int start_store(ad_engine_t *eng, ad_error_t *err)
{
  ad__engine_conf_t *c = &eng->c;
  eng->store = ad__store_new(c->mongo_uri, c->mongo_db, err);
  if (!eng->store)
    return AD_ECONFIG;
  if (c->returns_mode == 2)
    return 0;
  char path[1024];
  snprintf(path, sizeof path, "%s/returns.spool", c->spool_dir);
  if (mkdir(c->spool_dir, 0700) != 0 && errno != EEXIST)
    return ad__err_errno(err, AD_ECONFIG, errno, "spool_dir %s", c->spool_dir);
  ad__returns_conf_t rc = {
      .tasks_only = c->returns_mode == 1,
      .collection = c->returns_collection,
      .batch_size = (size_t)c->batch_size,
      .batch_ms = c->batch_ms,
      .queue_size = (size_t)c->returns_queue,
      .spool_path = path,
      .spool_max_bytes = c->spool_max_bytes,
      .spool_fsync = c->spool_fsync == 0,
      .retry_ms = c->store_retry_ms,
  };
  eng->returns = ad__returns_new(&rc, eng->store, err);
  return eng->returns ? 0 : AD_ECONFIG;
}

static int start_bus(ad_engine_t *eng, ad_error_t *err)
{
  ad__engine_conf_t *c = &eng->c;
  ad_bus_options_t o = {.struct_size = sizeof o};
  ad_bus_options_init(&o, NULL);
  o.sock_dir = c->sock_dir;
  o.ipc_mode_tcp = c->ipc_mode;
  o.tcp_host = c->tcp_host;
  o.tcp_pub_port = c->tcp_pub_port;
  o.tcp_pull_port = c->tcp_pull_port;
  o.max_frame = c->max_frame;
  o.framing = (ad_framing_t)c->framing;
  o.fire_framing = (ad_framing_t)c->fire_framing;
  o.workers = c->workers;
  o.queue_size = c->queue_size;
  o.queue_full = (ad_queue_policy_t)c->queue_full;
  o.queue_max_bytes = c->queue_max_bytes;
  o.reconnect_min_ms = c->reconnect_min_ms;
  o.reconnect_max_ms = c->reconnect_max_ms;
  o.fanout_endpoint = c->fanout_endpoint;
  o.fanout_format = (ad_fanout_format_t)c->fanout_format;
  eng->bus = ad_bus_new(&o, err);
  return eng->bus ? 0 : AD_ECONFIG;
}

/* The task system, the registry and the fleet: all need the store. */
static int start_services(ad_engine_t *eng, const json_t *registry, const json_t *placement,
                          ad_error_t *err)
{
  ad__engine_conf_t *c = &eng->c;
  eng->tasks = (ad__tasks_ctx_t){eng->store, eng->bus, c->master_key_path,
                                 c->tasks_collection, c->job_cache_dir ? c->job_cache_dir : "",
                                 c->hash_type, ad__engine_alert, eng, NULL, NULL,
                                 &eng->task_stats};
  json_t *en = json_object_get(registry, "enabled");
  if (registry && !json_is_null(registry) && !json_is_false(en)) {
    ad__registry_env_t env = {eng->store, &eng->tasks, eng->bus, c->master_key_path,
                              c->pki_dir, c->cachedir, c->hash_type, (unsigned)c->publish_port};
    eng->registry = ad__registry_new(&env, registry, err);
    if (!eng->registry)
      return AD_ECONFIG;
  }
  if (placement && !json_is_null(placement)) {
    /* enabled: false keeps the runners (and the model) but runs no cycle */
    ad__fleet_env_t fenv = {eng->store, &eng->tasks, eng->bus, c->master_key_path,
                            json_string_value(json_object_get(registry, "collection")),
                            c->mongo_uri, c->mongo_db, ad__engine_fence, eng};
    eng->fleet = ad__fleet_new(&fenv, placement, err);
    if (!eng->fleet)
      return AD_ECONFIG;
  }
  eng->tasks.on_end = ad__engine_on_task_end;
  eng->tasks.on_end_user = eng;
  return 0;
}

/* The Kafka feed applies openings through the fleet (feeds/ does not call
 * up into fleet/: it gets this callback). */
static int apply_opening(void *fleet, const char *id, int64_t at_ms, const char *actor,
                         ad_error_t *err)
{
  return ad__fleet_apply_opening(fleet, id, at_ms, actor, err);
}

static int start_kafka(ad_engine_t *eng, const json_t *kafka, ad_error_t *err)
{
  if (!kafka || json_is_null(kafka))
    return 0;
  if (!eng->fleet)
    return ad__err(err, AD_ECONFIG, "config", "kafka: needs mongo_uri and a placement entry "
                   "(openings are applied to the fleet's services)");
  eng->kafka = ad__kafka_new(kafka, apply_opening, eng->fleet, err);
  return eng->kafka ? 0 : AD_ECONFIG;
}

static ad_engine_t *engine_alloc(ad_error_t *err)
{
  ad_engine_t *eng = calloc(1, sizeof(*eng));
  if (!eng) {
    ad__err(err, AD_ENOMEM, "engine", "no memory");
    return NULL;
  }
  eng->stop_fd = -1;
  pthread_mutex_init(&eng->lock, NULL);
  pthread_cond_init(&eng->cond, NULL);
  return eng;
}

ad_engine_t *ad__engine_from_json(json_t *obj, ad_error_t *err)
{
  json_t *notify = take_key(obj, "notify");
  json_t *registry = take_key(obj, "registry");
  json_t *placement = take_key(obj, "placement");
  json_t *kafka = take_key(obj, "kafka");
  json_t *http = take_key(obj, "http");
  json_t *purchase = take_key(obj, "purchase");
  ad_engine_t *eng = engine_alloc(err);
  if (!eng)
    goto fail;
  if (ad__config_load(ad__engine_keys, &eng->c, obj, err) ||
      start_notifier(eng, notify, err) ||
      (eng->c.mongo_uri && start_store(eng, err)) ||
      start_bus(eng, err) ||
      (eng->store && start_services(eng, registry, placement, err)) ||
      start_kafka(eng, kafka, err) ||
      ad__engine_start_purchase(eng, purchase, err) || /* before http: it may take pushes */
      ad__engine_http_start(eng, http, registry, placement, err))
    goto fail;
  eng->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (eng->stop_fd < 0) {
    ad__err_errno(err, AD_EIO, errno, "eventfd");
    goto fail;
  }
  if (ad__engine_routes_add(eng, err))
    goto fail;
  json_decref(kafka);
  json_decref(http);
  json_decref(purchase);
  json_decref(placement);
  json_decref(registry);
  json_decref(notify);
  json_decref(obj);
  return eng;
fail:
  ad_engine_destroy(&eng);
  json_decref(kafka);
  json_decref(http);
  json_decref(purchase);
  json_decref(placement);
  json_decref(registry);
  json_decref(notify);
  json_decref(obj);
  return NULL;
}
