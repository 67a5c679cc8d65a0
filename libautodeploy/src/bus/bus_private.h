/* bus_private.h - the bus object, shared by bus.c, reader.c, pipeline.c,
 * fanout.c and fire.c. */
#ifndef AD_BUS_PRIVATE_H
#define AD_BUS_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "autodeploy/bus.h"
#include "bus/dispatch.h"

#define AD_BUS_MAX_WORKERS 64

/* One pipeline message: this header, then tag, NUL, then data. */
typedef struct {
  uint64_t routes; /* bit i set: route i matched */
  uint32_t tag_len;
  uint32_t flags;  /* reserved, 0 */
} ad__msg_head_t;

struct ad_bus {
  ad_bus_options_t o;       /* strings below are owned copies */
  char *pub_path, *pull_path, *tcp_host, *fanout_endpoint;
  ad__routes_t routes;

  void *zctx;               /* ZeroMQ context (inproc pipeline, PUB) */
  void *push;               /* reader -> workers (reader thread only) */
  void *fan_push;           /* reader -> fan-out thread */
  void *fan_pub;            /* bound by ad__fanout_start; the fan-out
                               thread owns it from then on */
  char pipe_ep[64], fan_ep[64];

  pthread_t workers[AD_BUS_MAX_WORKERS];
  int nworkers_started;
  pthread_t fan_thread;
  int fan_started;
  pthread_t run_thread;     /* ad_bus_start */
  int run_started;

  int stop_fd;              /* eventfd: ad_bus_stop writes, reader polls */
  atomic_int stopping;
  atomic_int running;

  pthread_mutex_t lock;     /* connected + cond */
  pthread_cond_t cond;
  int connected;

  pthread_mutex_t fire_lock;
  int fire_fd;

  /* counters (relaxed atomics; read by ad_bus_stats) */
  atomic_uint_fast64_t events, bytes, matched, handled, handler_errors,
      decode_errors, oversized, reconnects, enqueued, queue_full, dropped,
      fanout_sent, fanout_dropped, fired, queued_bytes;
  atomic_int framing;
};

#define AD_INC(x) atomic_fetch_add_explicit(&(x), 1, memory_order_relaxed)
#define AD_ADD(x, n) atomic_fetch_add_explicit(&(x), (n), memory_order_relaxed)
#define AD_GET(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* bus.c: wait for the thread ad_bus_start made. */
void ad__bus_join(ad_bus_t *bus);

/* pipeline.c */
int ad__pipeline_start(ad_bus_t *bus, ad_error_t *err);
/* Hand one frame to the workers (or run handlers inline). */
void ad__pipeline_dispatch(ad_bus_t *bus, uint64_t routes, const char *tag,
                           size_t tag_len, const char *data, size_t data_len);
/* Wait until queued events are handled, then end and join the workers.
 * Shuts the ZeroMQ context down: call after the fan-out is stopped. */
void ad__pipeline_stop(ad_bus_t *bus);

/* fanout.c */
int ad__fanout_start(ad_bus_t *bus, ad_error_t *err);
void ad__fanout_send(ad_bus_t *bus, const char *tag, size_t tag_len,
                     const char *data, size_t data_len);
void ad__fanout_stop(ad_bus_t *bus);

/* reader.c: the read loop; returns when stopping. */
void ad__reader_loop(ad_bus_t *bus);

/* fire.c: the wire bytes Salt's fire_event writes for one event, into a
 * msgpack_sbuffer (void * to keep msgpack.h out of this header). 0 or -1. */
int ad__fire_frame(void *sbuffer, ad_framing_t framing, const char *tag,
                   size_t tag_len, const void *data, size_t len);

/* Build an inproc message [head, tag, NUL, data]; 0 or -1. */
int ad__msg_build(void *zmsg, uint64_t routes, uint32_t flags, const char *tag,
                  size_t tag_len, const char *data, size_t data_len);

#endif
