/*
 * engine.c - the engine: configuration table, the routes autodeploy
 * listens to, a stats timer, and the run/stop lifecycle the Salt shim uses.
 *
 * Routes today: minion start and job returns are logged (registration and
 * storage build on them in later modules), and `log_events` mirrors
 * matching events into the log for operators.
 */
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "autodeploy/engine.h"
#include "core/config.h"
#include "core/error_private.h"
#include "bus/bus_private.h"
#include "autodeploy/notify.h"
#include "store/returns.h"
#include "tasks/tasks.h"
#include "registry/registry.h"
#include "fleet/fleet.h"
#include "decide/simulate.h"
#include "decide/simulate_args.h"
#include "store/store.h"
#include "core/log_private.h"

typedef struct {
  char *sock_dir;
  int ipc_mode; /* 0 ipc, 1 tcp */
  char *tcp_host;
  int tcp_pub_port, tcp_pull_port;
  size_t max_frame;
  int framing, fire_framing;
  int workers, queue_size, queue_full;
  size_t queue_max_bytes;
  int reconnect_min_ms, reconnect_max_ms;
  char *fanout_endpoint;
  int fanout_format;
  int stats_interval;
  char *log_events;
  /* storage */
  char *mongo_uri, *mongo_db;
  int returns_mode; /* all, tasks, off */
  char *returns_collection;
  int batch_size, batch_ms, returns_queue;
  char *spool_dir;
  size_t spool_max_bytes;
  int spool_fsync, store_retry_ms;
  /* tasks */
  char *master_key_path, *tasks_collection, *job_cache_dir, *hash_type;
  int watchdog_interval;
  /* registry */
  char *pki_dir, *cachedir;
  int publish_port;
} engine_conf_t;

static const char *const IPC_MODES[] = {"ipc", "tcp", NULL};
static const char *const FRAMINGS[] = {"auto", "raw", "length", NULL};
static const char *const POLICIES[] = {"block", "drop", NULL};
static const char *const FORMATS[] = {"msgpack", "json", NULL};
static const char *const RETURNS[] = {"all", "tasks", "off", NULL};
static const char *const FSYNC[] = {"always", "never", NULL};

#define K(name, type, field, min, max, def, en) \
  {name, type, offsetof(engine_conf_t, field), min, max, def, en}
static const ad__config_key_t ENGINE_KEYS[] = {
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
    K("pki_dir", AD_CT_STR, pki_dir, 0, 0, "/etc/salt/pki/master", NULL),
    K("cachedir", AD_CT_STR, cachedir, 0, 0, "/var/cache/salt/master", NULL),
    K("publish_port", AD_CT_INT, publish_port, 1, 65535, "4505", NULL),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

struct ad_engine {
  engine_conf_t c;
  ad_bus_t *bus;
  int stop_fd;
  pthread_mutex_t lock; /* guards running, for destroy to wait on run */
  pthread_cond_t cond;
  int running;
  ad__store_t *store;     /* NULL without mongo_uri */
  ad__returns_t *returns; /* NULL when returns: off or no store */
  ad_notifier_t *notifier; /* NULL without a notify entry */
  ad__tasks_ctx_t tasks;  /* tasks.store NULL without mongo_uri */
  ad__registry_t *registry; /* NULL without mongo_uri or with registry.enabled false */
  ad__fleet_t *fleet;       /* NULL without mongo_uri or without a placement entry */
};

/* the task system's on_end: host init tasks, service deploy tasks */
static void on_task_end(void *user, const json_t *task)
{
  ad_engine_t *eng = user;
  if (eng->registry)
    ad__registry_task_end(eng->registry, task);
  if (eng->fleet)
    ad__fleet_task_end(eng->fleet, task);
}

static int on_fleet(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  if (!eng->fleet)
    return 0;
  if (!strncmp(ad_event_tag(ev), "salt/beacon/", 12))
    return ad__fleet_on_beacon(eng->fleet, ev);
  return ad__fleet_on_opened(eng->fleet, ev);
}

static int on_registry(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  if (!eng->registry)
    return 0;
  const char *tag = ad_event_tag(ev);
  if (!strncmp(tag, "minion/refresh/", 15))
    return ad__registry_on_refresh(eng->registry, ev);
  if (!strcmp(tag, "minion_ping"))
    return ad__registry_on_ping(eng->registry, ev);
  if (!strncmp(tag, "salt/presence/", 14))
    return ad__registry_on_presence(eng->registry, ev);
  if (!strcmp(tag, "salt/key"))
    return ad__registry_on_key(eng->registry, ev);
  return 0;
}

static int on_minion_start(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  if (eng->registry)
    ad__registry_on_start(eng->registry, ev);
  const char *id;
  size_t n;
  if (ad_event_get_str(ev, "id", &id, &n) != 0) {
    AD_LOG_W("engine", "%s without an id", ad_event_tag(ev));
    return 1;
  }
  AD_LOG_I("engine", "minion %.*s started (%s)", (int)n, id, ad_event_tag(ev));
  return 0;
}

static int on_job_return(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  if (eng->returns && ad__returns_handle(eng->returns, ev))
    return 1;
  if (eng->tasks.store && ad_event_find(ev, "metadata:autodeploy_task"))
    return ad__tasks_on_return(&eng->tasks, ev);
  const char *id = "", *jid = "", *fun = "";
  size_t idn = 0, jidn = 0, funn = 0;
  int64_t retcode = -1;
  ad_event_get_str(ev, "id", &id, &idn);
  ad_event_get_str(ev, "jid", &jid, &jidn);
  ad_event_get_str(ev, "fun", &fun, &funn);
  ad_event_get_int(ev, "retcode", &retcode);
  AD_LOG_D("engine", "job %.*s %.*s returned from %.*s, retcode %lld",
           (int)jidn, jid, (int)funn, fun, (int)idn, id, (long long)retcode);
  return 0;
}

static int on_job_new(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  return eng->tasks.store ? ad__tasks_on_new(&eng->tasks, ev) : 0;
}

static int on_intervene(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  return eng->tasks.store ? ad__tasks_on_intervene(&eng->tasks, ev) : 0;
}

static void send_alert(void *user, const char *title, const char *text, const char *dedup)
{
  ad_engine_t *eng = user;
  ad_error_t err;
  AD_LOG_W("alert", "%s", title);
  if (eng->notifier && ad_notify_send(eng->notifier, title, text, dedup, &err))
    AD_LOG_E("alert", "not sent: %s", err.message);
}

static int on_logged_event(ad_event_t *ev, void *user)
{
  AD_LOG_I("event", "%s", ad_event_tag(ev));
  return 0;
}

static int start_store(ad_engine_t *eng, ad_error_t *err)
{
  engine_conf_t *c = &eng->c;
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

/* The engine from a parsed configuration object (taken: decref'd here). */
static ad_engine_t *engine_from_json(json_t *obj, ad_error_t *err)
{
  ad_engine_t *eng = calloc(1, sizeof(*eng));
  if (!eng) {
    json_decref(obj);
    ad__err(err, AD_ENOMEM, "engine", "no memory");
    return NULL;
  }
  eng->stop_fd = -1;
  pthread_mutex_init(&eng->lock, NULL);
  pthread_cond_init(&eng->cond, NULL);
  json_t *notify = json_incref(json_object_get(obj, "notify"));
  json_object_del(obj, "notify");
  json_t *registry = json_incref(json_object_get(obj, "registry"));
  json_object_del(obj, "registry");
  json_t *placement = json_incref(json_object_get(obj, "placement"));
  json_object_del(obj, "placement");
  int rc = ad__config_load(ENGINE_KEYS, &eng->c, obj, err);
  if (rc == 0 && notify && !json_is_null(notify)) {
    char *ntext = json_dumps(notify, JSON_COMPACT);
    eng->notifier = ntext ? ad_notifier_new(ntext, err) : NULL;
    free(ntext);
    if (!eng->notifier)
      rc = AD_ECONFIG;
  }
  json_decref(notify);
  json_decref(obj);
  if (rc) {
    json_decref(registry);
    json_decref(placement);
    ad_engine_destroy(&eng);
    return NULL;
  }
  engine_conf_t *c = &eng->c;
  ad_bus_options_t o;
  ad_bus_options_init(&o);
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
  if (c->mongo_uri && start_store(eng, err)) {
    json_decref(registry);
    json_decref(placement);
    ad_engine_destroy(&eng);
    return NULL;
  }
  eng->bus = ad_bus_new(&o, err);
  if (eng->store && eng->bus) {
    eng->tasks = (ad__tasks_ctx_t){eng->store, eng->bus, c->master_key_path,
                                   c->tasks_collection, c->job_cache_dir ? c->job_cache_dir : "",
                                   c->hash_type, send_alert, eng, NULL, NULL};
    json_t *en = json_object_get(registry, "enabled");
    if (registry && !json_is_null(registry) && !json_is_false(en)) {
      ad__registry_env_t env = {eng->store, &eng->tasks, eng->bus, c->master_key_path,
                                c->pki_dir, c->cachedir, c->hash_type, (unsigned)c->publish_port};
      eng->registry = ad__registry_new(&env, registry, err);
      if (!eng->registry) {
        json_decref(registry);
        ad_engine_destroy(&eng);
        return NULL;
      }
    }
    if (placement && !json_is_null(placement)) {
      /* enabled: false keeps the runners (and the model) but runs no cycle */
      ad__fleet_env_t fenv = {eng->store, &eng->tasks, eng->bus, c->master_key_path,
                              json_string_value(json_object_get(registry, "collection")),
                              c->mongo_uri, c->mongo_db};
      eng->fleet = ad__fleet_new(&fenv, placement, err);
      if (!eng->fleet) {
        json_decref(registry);
        json_decref(placement);
        ad_engine_destroy(&eng);
        return NULL;
      }
    }
    eng->tasks.on_end = on_task_end;
    eng->tasks.on_end_user = eng;
  }
  json_decref(registry);
  json_decref(placement);
  eng->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!eng->bus || eng->stop_fd < 0 ||
      ad_bus_on(eng->bus, "salt/minion/*/start", on_minion_start, eng, err) ||
      ad_bus_on(eng->bus, "salt/job/*/ret/*", on_job_return, eng, err) ||
      ad_bus_on(eng->bus, "salt/job/*/new", on_job_new, eng, err) ||
      ad_bus_on(eng->bus, "autodeploy/intervene/*", on_intervene, eng, err) ||
      ad_bus_on(eng->bus, "minion/refresh/*", on_registry, eng, err) ||
      ad_bus_on(eng->bus, "minion_ping", on_registry, eng, err) ||
      ad_bus_on(eng->bus, "salt/presence/*", on_registry, eng, err) ||
      ad_bus_on(eng->bus, "salt/key", on_registry, eng, err) ||
      ad_bus_on(eng->bus, "autodeploy/service/*/opened", on_fleet, eng, err) ||
      ad_bus_on(eng->bus, "salt/beacon/*", on_fleet, eng, err) ||
      (c->log_events &&
       ad_bus_on(eng->bus, c->log_events, on_logged_event, eng, err))) {
    if (eng->stop_fd < 0)
      ad__err_errno(err, AD_EIO, errno, "eventfd");
    ad_engine_destroy(&eng);
    return NULL;
  }
  return eng;
}

ad_engine_t *ad_engine_new(const char *config_json, ad_error_t *err)
{
  json_t *obj = ad__config_parse(config_json, "engine configuration", AD_ECONFIG, err);
  return obj ? engine_from_json(obj, err) : NULL;
}

ad_bus_t *ad_engine_bus(ad_engine_t *eng) { return eng->bus; }

char *ad_engine_stats_json(ad_engine_t *eng)
{
  ad_bus_stats_t s;
  ad_bus_stats(eng->bus, &s);
  static const char *const fr[] = {"auto", "raw", "length"};
  json_t *j = json_pack(
      "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:s}",
      "events", (json_int_t)s.events, "bytes", (json_int_t)s.bytes, "matched",
      (json_int_t)s.matched, "handled", (json_int_t)s.handled, "handler_errors",
      (json_int_t)s.handler_errors, "decode_errors", (json_int_t)s.decode_errors,
      "oversized", (json_int_t)s.oversized, "reconnects",
      (json_int_t)s.reconnects, "queue_depth", (json_int_t)s.queue_depth,
      "queue_full", (json_int_t)s.queue_full, "dropped", (json_int_t)s.dropped,
      "fanout_sent", (json_int_t)s.fanout_sent, "fanout_dropped",
      (json_int_t)s.fanout_dropped, "fired", (json_int_t)s.fired, "connected",
      s.connected, "framing", fr[s.framing]);
  if (j && eng->returns) {
    ad__returns_stats_t r;
    ad__returns_stats(eng->returns, &r);
    json_object_set_new(j, "returns", json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}",
        "received", (json_int_t)r.received, "stored", (json_int_t)r.stored,
        "spooled", (json_int_t)r.spooled, "replayed", (json_int_t)r.replayed,
        "rejected", (json_int_t)r.rejected, "bad", (json_int_t)r.bad,
        "queued", (json_int_t)r.queued, "spool_records", (json_int_t)r.spool_records,
        "spool_bytes", (json_int_t)r.spool_bytes, "store_down", r.store_down));
  }
  char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  return out;
}

static void set_running(ad_engine_t *eng, int on)
{
  pthread_mutex_lock(&eng->lock);
  eng->running = on;
  pthread_cond_broadcast(&eng->cond);
  pthread_mutex_unlock(&eng->lock);
}

int ad_engine_run(ad_engine_t *eng, ad_error_t *err)
{
  pthread_mutex_lock(&eng->lock);
  int busy = eng->running;
  eng->running = busy ? busy : 1;
  pthread_mutex_unlock(&eng->lock);
  if (busy)
    return ad__err(err, AD_ESTATE, "engine", "engine is already running");
  int rc = ad_bus_start(eng->bus, err);
  if (rc) {
    set_running(eng, 0);
    return rc;
  }
  AD_LOG_I("engine", "autodeploy %s engine running (sock_dir %s, ipc_mode %s, "
           "%d workers)", ad_version(), eng->c.sock_dir ? eng->c.sock_dir : "-",
           IPC_MODES[eng->c.ipc_mode], eng->c.workers);
  struct pollfd p = {.fd = eng->stop_fd, .events = POLLIN};
  int64_t next_stats = eng->c.stats_interval > 0 ? ad__now_ms() + eng->c.stats_interval * 1000LL : INT64_MAX;
  int64_t next_dog = eng->tasks.store ? ad__now_ms() + eng->c.watchdog_interval * 1000LL : INT64_MAX;
  int64_t next_reg = eng->registry ? ad__now_ms() : INT64_MAX;
  int64_t next_fleet = eng->fleet ? ad__now_ms() : INT64_MAX;
  for (;;) {
    int64_t now = ad__now_ms(), next = next_stats < next_dog ? next_stats : next_dog;
    if (next_reg < next)
      next = next_reg;
    if (next_fleet < next)
      next = next_fleet;
    int wait = next == INT64_MAX ? -1 : (int)(next > now ? next - now : 0);
    int n = poll(&p, 1, wait);
    if (n > 0)
      break;
    if (n < 0 && errno != EINTR)
      break;
    now = ad__now_ms();
    if (now >= next_stats) {
      char *s = ad_engine_stats_json(eng);
      AD_LOG_I("engine", "stats %s", s ? s : "{}");
      free(s);
      next_stats = now + eng->c.stats_interval * 1000LL;
    }
    if (now >= next_dog) {
      ad__tasks_watchdog(&eng->tasks);
      next_dog = ad__now_ms() + eng->c.watchdog_interval * 1000LL;
    }
    if (eng->registry && now >= next_reg) {
      int64_t in = ad__registry_tick(eng->registry);
      /* presence hints may ask for an earlier pass: look at least every second */
      next_reg = ad__now_ms() + (in < 1000 ? (in < 10 ? 10 : in) : 1000);
    }
    if (eng->fleet && now >= next_fleet) {
      int64_t in = ad__fleet_tick(eng->fleet);
      next_fleet = ad__now_ms() + (in < 10 ? 10 : in > 5000 ? 5000 : in);
    }
  }
  ad_bus_stop(eng->bus);
  ad__bus_join(eng->bus); /* the reader stops; workers drain the queue first */
  AD_LOG_I("engine", "autodeploy engine stopped");
  set_running(eng, 0);
  return 0;
}

void ad_engine_stop(ad_engine_t *eng)
{
  if (!eng || eng->stop_fd < 0)
    return;
  uint64_t one = 1;
  if (write(eng->stop_fd, &one, sizeof(one)) < 0) {
    /* already signalled */
  }
}

void ad_engine_destroy(ad_engine_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  ad_engine_t *eng = *self_p;
  /* Stop a running ad_engine_run (another thread) and wait for it. */
  ad_engine_stop(eng);
  pthread_mutex_lock(&eng->lock);
  while (eng->running)
    pthread_cond_wait(&eng->cond, &eng->lock);
  pthread_mutex_unlock(&eng->lock);
  ad_bus_destroy(&eng->bus);          /* handlers drained first */
  ad__registry_destroy(&eng->registry);
  ad__fleet_destroy(&eng->fleet);
  ad__returns_destroy(&eng->returns); /* then every return stored or spooled */
  if (eng->notifier)
    ad_notify_flush(eng->notifier, 5000);
  ad_notifier_destroy(&eng->notifier);
  ad__store_destroy(&eng->store);
  if (eng->stop_fd >= 0)
    close(eng->stop_fd);
  ad__config_free(ENGINE_KEYS, &eng->c);
  pthread_mutex_destroy(&eng->lock);
  pthread_cond_destroy(&eng->cond);
  free(eng);
  *self_p = NULL;
}

void ad_free(void *p) { free(p); }

/* ---- ad_call: the runners' one entry point -------------------------------- */

typedef json_t *(*task_fn)(const ad__tasks_ctx_t *, const json_t *, ad_error_t *);
typedef json_t *(*host_fn)(ad__registry_t *, const json_t *, ad_error_t *);
typedef json_t *(*fleet_fn)(ad__fleet_t *, const json_t *, ad_error_t *);

static const struct {
  const char *name;
  fleet_fn ffn;
} FLEET_COMMANDS[] = {
    {"cycle.run", ad__fleet_cycle},
    {"platform.set", ad__platform_set},
    {"platform.list", ad__platform_list},
    {"service.list", ad__service_list},
    {"service.get", ad__service_get},
    {"service.opened", ad__service_opened},
    {"service.retire", ad__service_retire},
    {NULL, NULL},
};

static const struct {
  const char *name;
  task_fn tfn;
  host_fn hfn;
} COMMANDS[] = {
    {"task.create", ad__task_create, NULL},
    {"task.list", ad__task_list, NULL},
    {"task.get", ad__task_get, NULL},
    {"task.intervene", ad__task_intervene, NULL},
    {"host.list", NULL, ad__host_list},
    {"host.get", NULL, ad__host_get},
    {"host.retire", NULL, ad__host_retire},
    {"host.drain", NULL, ad__host_drain},
    {"host.reinit", NULL, ad__host_reinit},
    {NULL, NULL, NULL},
};

char *ad_call(const char *config_json, const char *command, const char *args_json,
              ad_error_t *err)
{
  task_fn fn = NULL;
  host_fn hfn = NULL;
  fleet_fn ffn = NULL;
  for (int i = 0; COMMANDS[i].name; i++)
    if (command && !strcmp(COMMANDS[i].name, command)) {
      fn = COMMANDS[i].tfn;
      hfn = COMMANDS[i].hfn;
    }
  for (int i = 0; FLEET_COMMANDS[i].name; i++)
    if (command && !strcmp(FLEET_COMMANDS[i].name, command))
      ffn = FLEET_COMMANDS[i].ffn;
  if (command && !strcmp(command, "simulate")) {
    /* pure computation: no store, no bus */
    json_t *a = ad__config_parse(args_json, "arguments", AD_EINVAL, err);
    if (!a)
      return NULL;
    json_t *r = ad__simulate_args(a, err);
    char *out = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    json_decref(a);
    return out;
  }
  if (!fn && !hfn && !ffn) {
    ad__err(err, AD_EINVAL, "call", "unknown command %s", command ? command : "(null)");
    return NULL;
  }
  json_t *args = ad__config_parse(args_json, "arguments", AD_EINVAL, err);
  if (!args)
    return NULL;
  ad_global_init();
  /* a runner needs the store and the bus's fire side, not the returns
   * batcher (or its spool_dir) of the engine process */
  json_t *conf = ad__config_parse(config_json, "configuration", AD_ECONFIG, err);
  if (!conf) {
    json_decref(args);
    return NULL;
  }
  json_object_set_new(conf, "returns", json_string("off"));
  json_object_del(conf, "notify");
  /* the engine process pushes to the outside CMDB, not each runner call */
  json_object_del(json_object_get(conf, "registry"), "cmdb");
  ad_engine_t *eng = engine_from_json(conf, err);
  char *out = NULL;
  if (eng && !eng->tasks.store) {
    ad__err(err, AD_ECONFIG, "config", "mongo_uri: required for %s", command);
  } else if (eng && hfn && !eng->registry) {
    ad__err(err, AD_ECONFIG, "config", "registry: disabled (registry.enabled is false)");
  } else if (eng && ffn && !eng->fleet) {
    ad__err(err, AD_ECONFIG, "config", "placement: not configured (the engine entry has no placement object)");
  } else if (eng) {
    json_t *res = fn ? fn(&eng->tasks, args, err) : hfn ? hfn(eng->registry, args, err) : ffn(eng->fleet, args, err);
    out = res ? json_dumps(res, JSON_COMPACT) : NULL;
    json_decref(res);
  }
  ad_engine_destroy(&eng);
  json_decref(args);
  return out;
}
