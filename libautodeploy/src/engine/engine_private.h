/* engine_private.h - what the engine's files share: the configuration
 * struct, the engine struct, and one entry point per file.
 *
 *   config.c    the key table and the constructor (one teardown path)
 *   routes.c    the route table: tag pattern -> handler, called directly
 *   timers.c    periodic work on the monotonic clock, and the run loop
 *   stats.c     the counters as JSON
 *   commands.c  ad_call: one table of commands (name, handler, args, doc)
 *   leader.c    which engine runs the periodic loops (the `leader` lease)
 *   clockstep.c steps of the wall clock, and the stored task times moved with them
 *   engine.c    the public lifecycle: new, run, stop, destroy */
#ifndef AD_ENGINE_PRIVATE_H
#define AD_ENGINE_PRIVATE_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "autodeploy/engine.h"
#include "autodeploy/notify.h"
#include "core/clock.h"
#include "core/config.h"
#include "feeds/kafka.h"
#include "fleet/fleet.h"
#include "purchase/purchase.h"
#include "registry/registry.h"
#include "serve/serve.h"
#include "store/lease.h"
#include "store/returns.h"
#include "store/store.h"
#include "tasks/tasks.h"

/* backfill.c: the returns that went by while the engine was not listening
 * (dead, or its reader reconnecting), reconciled from Salt's job cache. */
typedef struct {
  uint64_t gen_done;    /* connection generation reconciled (reconnects + 1) */
  int pending;          /* a reconciliation to run (or to retry: store down) */
  int64_t since_ms;     /* its start: wall ms */
  int64_t listening_ms; /* last wall time the bus was seen connected; 0 unknown */
  uint64_t runs, backfilled, task_returns, failures;
  char mark_path[1024]; /* <spool_dir>/listening.mark; "" = off */
} ad__engine_backfill_t;

/* clockstep.c: steps of the wall clock, seen on the engine loop's thread. */
typedef struct {
  ad__clock_watch_t watch;
  int64_t (*wall)(void), (*boot)(void); /* NULL: ad__now_ms, ad__boot_ms (tests: fakes) */
  /* move the stored times by step_ms (ad__tasks_shift): how many, or -1 + err */
  int64_t (*shift)(void *user, int64_t step_ms, int64_t since, ad_error_t *err);
  void *user;
  int64_t owed_ms, since_ms; /* a step whose move is still owed, and its `since` */
  int failing;               /* the move failed (logged once) */
  long long steps, moved;    /* for the stats line (atomic) */
  int64_t last_step_ms;
} ad__clock_steps_t;

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
  int backfill_margin_s;
  /* registry */
  char *pki_dir, *cachedir;
  int publish_port;
  /* status (status.c) */
  char *master_id, *status_collection;
  int status_interval;
  /* leadership among masters (leader.c) */
  int leader_lease_s, leader_skew_ms;
  char *leader_collection;
} ad__engine_conf_t;

struct ad_engine {
  ad__engine_conf_t c;
  ad_bus_t *bus;
  int stop_fd;
  pthread_mutex_t lock; /* guards running, for destroy to wait on run */
  pthread_cond_t cond;
  int running;
  ad__store_t *store;       /* NULL without mongo_uri */
  ad__returns_t *returns;   /* NULL when returns: off or no store */
  ad_notifier_t *notifier;  /* NULL without a notify entry */
  ad__tasks_ctx_t tasks;    /* tasks.store NULL without mongo_uri */
  ad__tasks_stats_t task_stats; /* tasks.stats: refusals, for the stats JSON */
  ad__registry_t *registry; /* NULL without mongo_uri or with registry.enabled false */
  ad__fleet_t *fleet;       /* NULL without mongo_uri or without a placement entry */
  ad__kafka_t *kafka;       /* NULL without a kafka entry (needs the fleet) */
  struct {                  /* status.c, on the engine loop's thread only */
    char host[256];         /* the master id when master_id is unset */
    int64_t started_ms, prev_mono, prev_events;
    int failing;            /* the last publish failed (logged once) */
  } status;
  ad__serve_t *serve;       /* NULL without an http entry */
  ad__purchase_t *purchase; /* NULL without a purchase entry */

  ad__engine_backfill_t backfill;
  ad__clock_steps_t clock;  /* clockstep.c */
  ad__lease_mongo_t leader_store;
  ad__lease_t *leader;      /* NULL without mongo_uri, and until ad_engine_run */
  long long loop_passes, loop_skips; /* periodic passes run / skipped as a follower (atomic) */
};

/* http.c: the HTTP server from the engine's `http` object (NULL or absent:
 * off; refused when the purchase loop, built before it, has a DingTalk
 * callback to serve), and a task's end into its duration histogram. */
int ad__engine_http_start(ad_engine_t *eng, const json_t *http, const json_t *registry,
                          const json_t *placement, ad_error_t *err);
void ad__engine_http_task_end(ad_engine_t *eng, const json_t *task);

/* config.c: the engine's configuration keys (NULL-terminated). */
extern const ad__config_key_t ad__engine_keys[];

/* config.c: the engine from a parsed configuration object, which is taken
 * (decref'd here, on success and on failure). NULL + *err naming the key. */
ad_engine_t *ad__engine_from_json(json_t *obj, ad_error_t *err);

/* purchase_glue.c: the purchase loop from the `purchase` object (NULL or
 * absent: none); needs the store and the fleet. And its decision route. */
int ad__engine_start_purchase(ad_engine_t *eng, const json_t *conf, ad_error_t *err);
int ad__engine_on_order_approve(ad_event_t *ev, void *user);
int ad__engine_on_order_reject(ad_event_t *ev, void *user);
int ad__engine_on_order_placed(ad_event_t *ev, void *user);

/* routes.c: add the engine's routes (and log_events) to its bus. */
int ad__engine_routes_add(ad_engine_t *eng, ad_error_t *err);
/* routes.c: the task system's hooks (user: the engine). */
void ad__engine_on_task_end(void *user, const json_t *task);
void ad__engine_alert(void *user, const char *title, const char *text, const char *dedup);

/* timers.c: periodic work. `fire` runs it and returns the delay to its
 * next run in ms; `next` is a time on the caller's clock (INT64_MAX: off). */
typedef struct {
  const char *name;
  int64_t next;
  int64_t (*fire)(void *user);
} ad__timer_t;

/* ms from `now` to the earliest timer (0 when one is due), -1 when none is on. */
int ad__timers_wait(const ad__timer_t *t, size_t n, int64_t now);
/* Fire every timer due at `now`; each one's next run is counted from
 * clock() read after it fired (so a slow tick does not pile up). */
void ad__timers_run(ad__timer_t *t, size_t n, int64_t now, int64_t (*clock)(void),
                    void *user);
/* timers.c: poll the stop fd and fire the engine's timers until stopped. */
void ad__engine_loop(ad_engine_t *eng);

/* status.c: write this master's status document (state "running", or
 * "stopped" on the way out); a failure is logged once, when it starts. */
void ad__engine_status_publish(ad_engine_t *eng, const char *state);
/* status.c: the `status` command (docs/status.md). */
json_t *ad__engine_status(ad_engine_t *eng, const json_t *args, ad_error_t *err);
/* status.c: master_id, or the host name when unset (borrowed). */
const char *ad__engine_master_id(ad_engine_t *eng);

/* config_keys.c: every key table as {"tables": [{path, page, keys: [{name,
 * type, default, min, max | values}]}]} (only: that table path, or NULL for
 * all); the `config.keys` command. */
json_t *ad__config_keys_json(const char *only);
/* Table i of that list and its path ("notify.channels[] (type smtp)"); NULL past the end
 * (the config fuzz target walks them all). */
const ad__config_key_t *ad__config_table(size_t i, const char **path);
json_t *ad__config_keys_cmd(const json_t *args, ad_error_t *err);

/* backfill.c: read the last run's listening mark (before the bus starts),
 * the timer body (reconcile after start and after every reconnect), the
 * clean-stop mark, and the counters for the stats JSON. */
void ad__engine_backfill_init(ad_engine_t *eng);
int64_t ad__engine_backfill_tick(void *user);
void ad__engine_backfill_stop(ad_engine_t *eng);
json_t *ad__engine_backfill_stats(const ad_engine_t *eng);
/* clockstep.c: read both clocks; on a step, log it, count it and move
 * the stored times (c->shift; NULL: only logged). 0, or -1 while a move is
 * owed (it failed): the caller must not compare stored wall times yet. */
int ad__clock_steps_check(ad__clock_steps_t *c);
/* {steps, last_step_ms, deadlines_moved}: the stats line's "clock". */
json_t *ad__clock_steps_stats(const ad__clock_steps_t *c);
/* The engine's c->shift (user: the engine): on the leader, ad__tasks_shift. */
int64_t ad__engine_clock_shift(void *user, int64_t step_ms, int64_t since, ad_error_t *err);

/* leader.c: the `leader` lease (with the store; ad_engine_run makes it).
 * 0 or AD_ENOMEM. */
int ad__engine_leader_new(ad_engine_t *eng, ad_error_t *err);
/* Claim or renew; ms to the next claim. */
int64_t ad__engine_leader_tick(ad_engine_t *eng);
/* Give the lease up (the engine stops). */
void ad__engine_leader_stop(ad_engine_t *eng);
/* Before a pass of a periodic loop: 1 when this engine leads (or has no
 * store), else 0; a lapsed leadership is counted and logged naming
 * `what`. Every periodic loop asks, the purchase run too. */
int ad__engine_leads(ad_engine_t *eng, const char *what);
/* The fleet's fence (ad__fleet_env_t.fence; user: the engine): the term. */
int64_t ad__engine_fence(void *user, const char *what);
/* The lease's counters plus the passes run (`passes`) and skipped as a
 * follower (`skipped`): the stats JSON's "leader". */
json_t *ad__engine_leader_stats(ad_engine_t *eng);
/* ad_call leader.get. */
json_t *ad__engine_leader_get(ad_engine_t *eng, const json_t *args, ad_error_t *err);

/* commands.c: ad_call's command table, the one source the docs are
 * checked against (docs/api.md, tests/engine/test_commands.c). */
typedef enum {
  AD__CMD_PURE,     /* computation only: no store, no bus */
  AD__CMD_TASKS,    /* needs mongo_uri */
  AD__CMD_REGISTRY, /* needs mongo_uri and the registry enabled */
  AD__CMD_FLEET,    /* needs mongo_uri and a placement entry */
  AD__CMD_ENGINE,   /* needs mongo_uri; gets the whole (command) engine */
  AD__CMD_PURCHASE, /* needs mongo_uri, a placement and a purchase entry */
} ad__cmd_needs_t;

typedef struct {
  const char *name;
  ad__cmd_needs_t needs;
  union {
    json_t *(*pure)(const json_t *args, ad_error_t *err);
    json_t *(*tasks)(const ad__tasks_ctx_t *t, const json_t *args, ad_error_t *err);
    json_t *(*registry)(ad__registry_t *r, const json_t *args, ad_error_t *err);
    json_t *(*fleet)(ad__fleet_t *f, const json_t *args, ad_error_t *err);
    json_t *(*engine)(ad_engine_t *eng, const json_t *args, ad_error_t *err);
    json_t *(*purchase)(ad__purchase_t *p, const json_t *args, ad_error_t *err);
  } fn;
  const char *args; /* the argument names, as docs/api.md lists them */
  const char *doc;  /* one line, as docs/api.md says it */
} ad__engine_command_t;

/* The table (borrowed, static); *n gets its length. */
const ad__engine_command_t *ad__engine_commands(size_t *n);

#endif
