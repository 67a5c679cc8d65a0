/*
 * pipeline.c - reader -> workers over a ZeroMQ inproc PUSH/PULL pipe.
 *
 * The PUSH socket's send high-water mark bounds the events in flight. When
 * it is reached the reader either waits (AD_QUEUE_BLOCK, default: nothing
 * is lost, and back-pressure moves into the kernel socket buffer and then
 * the master) or drops and counts (AD_QUEUE_DROP). Both count queue_full.
 *
 * Each worker decodes into its own msgpack zone, cleared (not freed)
 * between events, so steady state allocates nothing per event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bus/bus_private.h"
#include "core/error_private.h"
#include "wire/event_private.h"
#include "core/log_private.h"

int ad__msg_build(void *zmsg, uint64_t routes, uint32_t flags, const char *tag,
                  size_t tag_len, const char *data, size_t data_len)
{
  size_t n = sizeof(ad__msg_head_t) + tag_len + 1 + data_len;
  if (zmq_msg_init_size(zmsg, n) != 0)
    return -1;
  char *p = zmq_msg_data(zmsg);
  ad__msg_head_t h = {routes, (uint32_t)tag_len, flags};
  memcpy(p, &h, sizeof(h));
  p += sizeof(h);
  if (tag_len)
    memcpy(p, tag, tag_len);
  p[tag_len] = '\0';
  if (data_len)
    memcpy(p + tag_len + 1, data, data_len);
  return 0;
}

static void run_handlers(ad_bus_t *bus, uint64_t routes, ad_event_t *ev)
{
  for (int i = 0; routes && i < bus->routes.n; i++) {
    if (!(routes & ((uint64_t)1 << i)))
      continue;
    routes &= ~((uint64_t)1 << i);
    int rc = bus->routes.r[i].fn(ev, bus->routes.r[i].user);
    AD_INC(bus->handled);
    if (rc != 0) {
      AD_INC(bus->handler_errors);
      AD_LOG_W("bus", "handler for %s returned %d on %s",
               bus->routes.r[i].pattern, rc, ad_event_tag(ev));
    }
  }
}

static void *worker_main(void *arg)
{
  ad_bus_t *bus = arg;
  void *pull = zmq_socket(bus->zctx, ZMQ_PULL);
  msgpack_zone zone;
  msgpack_zone_init(&zone, 8192);
  /* inproc capacity is the sum of both ends' HWMs: keep the worker's side
   * minimal so queue_size is what bounds the events in flight. */
  int one = 1;
  if (pull)
    zmq_setsockopt(pull, ZMQ_RCVHWM, &one, sizeof(one));
  if (!pull || zmq_connect(pull, bus->pipe_ep) != 0) {
    AD_LOG_E("bus", "worker cannot connect to %s: %s", bus->pipe_ep,
             zmq_strerror(zmq_errno()));
    if (pull)
      zmq_close(pull);
    msgpack_zone_destroy(&zone);
    return NULL;
  }
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, pull, 0) < 0) {
      zmq_msg_close(&m);
      if (zmq_errno() == EINTR)
        continue;
      break; /* context terminated */
    }
    const char *p = zmq_msg_data(&m);
    size_t n = zmq_msg_size(&m);
    ad__msg_head_t h;
    memcpy(&h, p, sizeof(h));
    const char *tag = p + sizeof(h);
    const char *data = tag + h.tag_len + 1;
    ad_event_t ev;
    ad__event_view(&ev, tag, h.tag_len, data, n - sizeof(h) - h.tag_len - 1,
                   &zone);
    run_handlers(bus, h.routes, &ev);
    ad__event_view_done(&ev);
    atomic_fetch_sub_explicit(&bus->queued_bytes, n, memory_order_relaxed);
    zmq_msg_close(&m);
    atomic_fetch_sub_explicit(&bus->enqueued, 1, memory_order_relaxed);
  }
  msgpack_zone_destroy(&zone);
  zmq_close(pull);
  return NULL;
}

int ad__pipeline_start(ad_bus_t *bus, ad_error_t *err)
{
  if (bus->o.workers == 0)
    return 0;
  snprintf(bus->pipe_ep, sizeof(bus->pipe_ep), "inproc://ad-pipe-%p", (void *)bus);
  bus->push = zmq_socket(bus->zctx, ZMQ_PUSH);
  int hwm = bus->o.queue_size, linger = -1;
  if (!bus->push ||
      zmq_setsockopt(bus->push, ZMQ_SNDHWM, &hwm, sizeof(hwm)) != 0 ||
      zmq_setsockopt(bus->push, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
      zmq_bind(bus->push, bus->pipe_ep) != 0)
    return ad__err(err, AD_EZMQ, "zmq", "pipeline %s: %s", bus->pipe_ep,
                   zmq_strerror(zmq_errno()));
  for (int i = 0; i < bus->o.workers; i++) {
    if (pthread_create(&bus->workers[i], NULL, worker_main, bus) != 0)
      return ad__err(err, AD_ENOMEM, "bus", "cannot start worker %d", i);
    bus->nworkers_started++;
  }
  return 0;
}

void ad__pipeline_dispatch(ad_bus_t *bus, uint64_t routes, const char *tag,
                           size_t tag_len, const char *data, size_t data_len)
{
  if (bus->o.workers == 0) {
    msgpack_zone zone;
    msgpack_zone_init(&zone, 8192);
    char *t = strndup(tag, tag_len);
    if (t) {
      ad_event_t ev;
      ad__event_view(&ev, t, tag_len, data, data_len, &zone);
      run_handlers(bus, routes, &ev);
      ad__event_view_done(&ev);
      free(t);
    }
    msgpack_zone_destroy(&zone);
    return;
  }
  size_t bytes = sizeof(ad__msg_head_t) + tag_len + 1 + data_len;
  /* The byte bound (queue_max_bytes) is ours; the count bound is the PUSH
   * socket's high-water mark. Either one full means the queue is full. */
  if (AD_GET(bus->queued_bytes) + bytes > bus->o.queue_max_bytes &&
      AD_GET(bus->enqueued) > 0) {
    AD_INC(bus->queue_full);
    if (bus->o.queue_full == AD_QUEUE_DROP) {
      AD_INC(bus->dropped);
      AD_LOG_W("bus", "worker queue over %zu bytes; dropped %.*s",
               bus->o.queue_max_bytes, (int)tag_len, tag);
      return;
    }
    while (AD_GET(bus->queued_bytes) + bytes > bus->o.queue_max_bytes &&
           AD_GET(bus->enqueued) > 0) {
      struct timespec ts = {0, 100000};
      nanosleep(&ts, NULL);
    }
  }
  zmq_msg_t m;
  if (ad__msg_build(&m, routes, 0, tag, tag_len, data, data_len) != 0) {
    AD_INC(bus->dropped);
    AD_LOG_E("bus", "no memory to queue %.*s; dropped", (int)tag_len, tag);
    return;
  }
  AD_INC(bus->enqueued);
  AD_ADD(bus->queued_bytes, bytes);
  if (zmq_msg_send(&m, bus->push, ZMQ_DONTWAIT) >= 0)
    return;
  AD_INC(bus->queue_full);
  if (bus->o.queue_full == AD_QUEUE_DROP) {
    zmq_msg_close(&m);
    atomic_fetch_sub_explicit(&bus->enqueued, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&bus->queued_bytes, bytes, memory_order_relaxed);
    AD_INC(bus->dropped);
    AD_LOG_W("bus", "worker queue full (%d); dropped %.*s", bus->o.queue_size,
             (int)tag_len, tag);
    return;
  }
  /* AD_QUEUE_BLOCK: wait for room. Stopping does not abandon the event:
   * workers keep draining until the queue is empty. */
  while (zmq_msg_send(&m, bus->push, 0) < 0) {
    if (zmq_errno() != EINTR) {
      zmq_msg_close(&m);
      atomic_fetch_sub_explicit(&bus->enqueued, 1, memory_order_relaxed);
      atomic_fetch_sub_explicit(&bus->queued_bytes, bytes, memory_order_relaxed);
      AD_INC(bus->dropped);
      AD_LOG_E("bus", "cannot queue %.*s: %s", (int)tag_len, tag,
               zmq_strerror(zmq_errno()));
      return;
    }
  }
}

void ad__pipeline_stop(ad_bus_t *bus)
{
  if (!bus->push)
    return;
  /* Drain: every queued event is handled before the workers go. A handler
   * stuck for a minute is reported rather than waited on for ever. */
  for (int waited = 0; AD_GET(bus->enqueued) > 0; waited++) {
    if (waited == 60000) {
      AD_LOG_E("bus", "stopping with %llu events still queued: a handler "
               "has not returned for 60 s",
               (unsigned long long)AD_GET(bus->enqueued));
      break;
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  zmq_close(bus->push);
  bus->push = NULL;
  /* Wake workers blocked in recv (ETERM); they exit. */
  zmq_ctx_shutdown(bus->zctx);
  for (int i = 0; i < bus->nworkers_started; i++)
    pthread_join(bus->workers[i], NULL);
  bus->nworkers_started = 0;
}
