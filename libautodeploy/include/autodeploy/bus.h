/*
 * autodeploy/bus.h - subscribe to a Salt master's event bus, dispatch events
 * by tag to handlers on worker threads, fan them out over ZeroMQ PUB, and
 * fire events into the master.
 *
 * Threads: one reader thread owns the socket and never waits on anything
 * but the socket and the (bounded) queue to the workers; handlers run on
 * `workers` threads fed through a ZeroMQ inproc PUSH/PULL pipeline; an
 * optional fan-out thread re-publishes every event on a PUB socket.
 * See docs/bus.md for the full contract.
 */
#ifndef AUTODEPLOY_BUS_H
#define AUTODEPLOY_BUS_H

#include "common.h"
#include "decoder.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ad_bus ad_bus_t;

/* A handler. Runs on a worker thread (or the reader thread when
 * workers == 0); must be thread-safe if workers > 1. `ev` is borrowed for
 * the duration of the call. Return 0, or non-zero to count a handler error
 * (the event is not retried: durable handlers keep their own spool). */
typedef int (*ad_handler_fn)(ad_event_t *ev, void *user);

typedef enum {
  AD_QUEUE_BLOCK = 0, /* reader waits for room: nothing dropped; the socket
                         and then the master buffer behind it (default) */
  AD_QUEUE_DROP = 1   /* event dropped and counted in `dropped` */
} ad_queue_policy_t;

typedef enum {
  AD_FANOUT_MSGPACK = 0, /* [tag, data msgpack bytes exactly as Salt sent] */
  AD_FANOUT_JSON = 1     /* [tag, data as JSON text] */
} ad_fanout_format_t;

/* Options and stats structs grow at their end: set struct_size = sizeof
 * the struct before passing one (docs/api.md, "Structs that grow"). */
typedef struct {
  size_t struct_size;        /* caller: sizeof(ad_bus_options_t) */
  /* Where the master's bus is. Unix mode (default): pub_path, else
   * <sock_dir>/master_event_pub.ipc (and pull_path, else
   * <sock_dir>/master_event_pull.ipc). TCP mode (Salt's ipc_mode: tcp):
   * tcp_host:tcp_pub_port and tcp_host:tcp_pull_port. */
  const char *sock_dir;      /* default /var/run/salt/master */
  const char *pub_path;
  const char *pull_path;
  int ipc_mode_tcp;          /* 0 unix, 1 tcp */
  const char *tcp_host;      /* default 127.0.0.1 */
  int tcp_pub_port;          /* default 4512 (tcp_master_pub_port) */
  int tcp_pull_port;         /* default 4513 (tcp_master_pull_port) */

  size_t max_frame;          /* default 64 MiB */
  ad_framing_t framing;      /* subscribe side; default AUTO */
  ad_framing_t fire_framing; /* default LENGTH (Salt 3006.29+, 3008) */

  int workers;               /* handler threads; 0 = inline; default 2 */
  int queue_size;            /* events in flight to workers; default 10000 */
  size_t queue_max_bytes;    /* and their bytes; default 64 MiB (bounds RSS) */
  ad_queue_policy_t queue_full;

  int reconnect_min_ms;      /* default 100 */
  int reconnect_max_ms;      /* default 5000 */

  const char *fanout_endpoint;   /* e.g. "tcp://127.0.0.1:4520"; NULL off */
  ad_fanout_format_t fanout_format;
  int fanout_hwm;                /* default 10000; fan-out never blocks */
} ad_bus_options_t;

typedef struct {
  size_t struct_size;      /* caller: sizeof(ad_bus_stats_t) */
  uint64_t events;         /* frames read off the bus */
  uint64_t bytes;          /* bytes read off the bus */
  uint64_t matched;        /* events that matched at least one handler */
  uint64_t handled;        /* handler calls completed */
  uint64_t handler_errors; /* handler calls that returned non-zero */
  uint64_t decode_errors;  /* malformed or oversized frames */
  uint64_t oversized;      /* of which oversized */
  uint64_t reconnects;     /* connections re-established */
  uint64_t queue_depth;    /* events queued to workers, not yet handled */
  uint64_t queue_full;     /* times the queue was full on arrival */
  uint64_t dropped;        /* events dropped (AD_QUEUE_DROP only) */
  uint64_t fanout_sent;
  uint64_t fanout_dropped; /* fan-out queue full: never blocks the reader */
  uint64_t fired;          /* events fired into the master */
  int connected;           /* 1 while the subscription is up */
  ad_framing_t framing;    /* framing detected on the current connection */
} ad_bus_stats_t;

/* Defaults into *opts (call first, then override fields). The caller sets
 * opts->struct_size first; fields past it are not written, and every other
 * byte is overwritten. 0, or AD_EINVAL + *err naming struct_size. */
AD_EXPORT int ad_bus_options_init(ad_bus_options_t *opts, ad_error_t *err);

/* New bus (nothing connects yet). Copies every string in opts; fields past
 * opts->struct_size take their defaults; opts NULL means all defaults.
 * NULL + *err naming the bad option (struct_size included). */
AD_EXPORT ad_bus_t *ad_bus_new(const ad_bus_options_t *opts, ad_error_t *err);

/* Stops (as ad_bus_stop) and joins threads first. NULL-safe. */
AD_EXPORT void ad_bus_destroy(ad_bus_t **self_p);

/* Route tags matching the glob `pattern` (fnmatch, '*' crosses '/', as
 * Salt's reactor matches) to fn. Before run/start only; at most 64
 * routes. An event matching several routes calls each, in order. */
AD_EXPORT int ad_bus_on(ad_bus_t *bus, const char *pattern, ad_handler_fn fn,
                        void *user, ad_error_t *err);

/* Run the reader in the calling thread until ad_bus_stop. Connects and
 * reconnects (exponential backoff with jitter) by itself. Handlers still
 * queued when stopping are run before it returns. 0, or <0 + *err when
 * the bus could not start at all (ZeroMQ setup, bad fan-out endpoint). */
AD_EXPORT int ad_bus_run(ad_bus_t *bus, ad_error_t *err);

/* Same, on a background thread. */
AD_EXPORT int ad_bus_start(ad_bus_t *bus, ad_error_t *err);

/* Ask the reader to stop; thread-safe, async-signal-safe, idempotent. */
AD_EXPORT void ad_bus_stop(ad_bus_t *bus);

/* Wait until subscribed (connected to the pub socket). 0, or AD_ETIMEOUT. */
AD_EXPORT int ad_bus_wait_connected(ad_bus_t *bus, int timeout_ms);

/* Snapshot of the counters into *out, up to out->struct_size (set by the
 * caller); callable from any thread. 0, or AD_EINVAL + *err naming
 * struct_size (nothing written). */
AD_EXPORT int ad_bus_stats(ad_bus_t *bus, ad_bus_stats_t *out, ad_error_t *err);

/* Fire an event into the master (master_event_pull), framed as
 * opts.fire_framing. `data` is msgpack of a map; thread-safe; connects on
 * first use and once more on a broken connection. 0 or <0 + *err. */
AD_EXPORT int ad_bus_fire(ad_bus_t *bus, const char *tag, const void *data,
                          size_t len, ad_error_t *err);

/* Same with the data as JSON text (an object), converted to msgpack. */
AD_EXPORT int ad_bus_fire_json(ad_bus_t *bus, const char *tag,
                               const char *json, ad_error_t *err);

/* Encode JSON text as msgpack (strings as str, for firing). Returns a
 * malloc'd buffer the caller frees, *len its size; NULL + *err. */
AD_EXPORT char *ad_json_to_msgpack(const char *json, size_t *len,
                                   ad_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
