/*
 * bus.c - bus lifecycle: options, routes, start/run/stop, stats.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bus/bus_private.h"
#include "core/abi.h"
#include "core/error_private.h"
#include "core/log_private.h"

#define OPTIONS_V1 AD__SIZE_V1(ad_bus_options_t, fanout_hwm)
#define STATS_V1 AD__SIZE_V1(ad_bus_stats_t, framing)

static void defaults(ad_bus_options_t *o)
{
  memset(o, 0, sizeof(*o));
  o->struct_size = sizeof(*o);
  o->sock_dir = "/var/run/salt/master";
  o->tcp_host = "127.0.0.1";
  o->tcp_pub_port = 4512;
  o->tcp_pull_port = 4513;
  o->max_frame = (size_t)64 << 20;
  o->framing = AD_FRAMING_AUTO;
  o->fire_framing = AD_FRAMING_LENGTH;
  o->workers = 2;
  o->queue_size = 10000;
  o->queue_max_bytes = (size_t)64 << 20;
  o->queue_full = AD_QUEUE_BLOCK;
  o->reconnect_min_ms = 100;
  o->reconnect_max_ms = 5000;
  o->fanout_format = AD_FANOUT_MSGPACK;
  o->fanout_hwm = 10000;
}

int ad_bus_options_init(ad_bus_options_t *opts, ad_error_t *err)
{
  ad_bus_options_t def;
  defaults(&def);
  return ad__struct_out(opts, &def, sizeof def, OPTIONS_V1,
                        "ad_bus_options_t", err);
}

static char *join_path(const char *dir, const char *file)
{
  size_t n = strlen(dir) + 1 + strlen(file) + 1;
  char *p = malloc(n);
  if (p)
    snprintf(p, n, "%s/%s", dir, file);
  return p;
}

static ad_bus_t *fail(ad_bus_t *bus)
{
  ad_bus_destroy(&bus);
  return NULL;
}

ad_bus_t *ad_bus_new(const ad_bus_options_t *opts, ad_error_t *err)
{
  ad_bus_options_t def;
  defaults(&def);
  if (opts && ad__struct_in(&def, sizeof def, opts, OPTIONS_V1,
                            "ad_bus_options_t", err))
    return NULL;
  const ad_bus_options_t *o = &def;
  if (o->workers < 0 || o->workers > AD_BUS_MAX_WORKERS) {
    ad__err(err, AD_ECONFIG, "config", "workers must be 0..%d, got %d",
            AD_BUS_MAX_WORKERS, o->workers);
    return NULL;
  }
  if (o->queue_size < 1) {
    ad__err(err, AD_ECONFIG, "config", "queue_size must be >= 1, got %d",
            o->queue_size);
    return NULL;
  }
  if (o->queue_max_bytes < 4096) {
    ad__err(err, AD_ECONFIG, "config", "queue_max_bytes must be >= 4096, got %zu",
            o->queue_max_bytes);
    return NULL;
  }
  if (o->max_frame < 64) {
    ad__err(err, AD_ECONFIG, "config", "max_frame must be >= 64 bytes, got %zu",
            o->max_frame);
    return NULL;
  }
  if (o->reconnect_min_ms < 1 || o->reconnect_max_ms < o->reconnect_min_ms) {
    ad__err(err, AD_ECONFIG, "config",
            "reconnect_min_ms (%d) must be >= 1 and <= reconnect_max_ms (%d)",
            o->reconnect_min_ms, o->reconnect_max_ms);
    return NULL;
  }
  if (o->ipc_mode_tcp && (o->tcp_pub_port < 1 || o->tcp_pub_port > 65535 ||
                          o->tcp_pull_port < 1 || o->tcp_pull_port > 65535)) {
    ad__err(err, AD_ECONFIG, "config", "tcp ports must be 1..65535 (%d, %d)",
            o->tcp_pub_port, o->tcp_pull_port);
    return NULL;
  }
  if (!o->ipc_mode_tcp && !o->sock_dir && (!o->pub_path || !o->pull_path)) {
    ad__err(err, AD_ECONFIG, "config", "sock_dir or pub_path/pull_path needed");
    return NULL;
  }
  ad_bus_t *bus = calloc(1, sizeof(*bus));
  if (!bus) {
    ad__err(err, AD_ENOMEM, "bus", "no memory");
    return NULL;
  }
  bus->o = *o;
  bus->stop_fd = -1;
  bus->fire_fd = -1;
  pthread_mutex_init(&bus->lock, NULL);
  pthread_cond_init(&bus->cond, NULL);
  pthread_mutex_init(&bus->fire_lock, NULL);
  bus->pub_path = o->pub_path ? strdup(o->pub_path)
                              : join_path(o->sock_dir, "master_event_pub.ipc");
  bus->pull_path = o->pull_path ? strdup(o->pull_path)
                                : join_path(o->sock_dir, "master_event_pull.ipc");
  bus->tcp_host = strdup(o->tcp_host ? o->tcp_host : "127.0.0.1");
  bus->fanout_endpoint = o->fanout_endpoint ? strdup(o->fanout_endpoint) : NULL;
  bus->o.sock_dir = bus->o.pub_path = bus->o.pull_path = NULL;
  bus->o.tcp_host = bus->o.fanout_endpoint = NULL;
  bus->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  bus->zctx = zmq_ctx_new();
  if (!bus->pub_path || !bus->pull_path || !bus->tcp_host ||
      (o->fanout_endpoint && !bus->fanout_endpoint)) {
    ad__err(err, AD_ENOMEM, "bus", "no memory");
    return fail(bus);
  }
  if (bus->stop_fd < 0) {
    ad__err_errno(err, AD_EIO, errno, "eventfd");
    return fail(bus);
  }
  if (!bus->zctx) {
    ad__err(err, AD_EZMQ, "zmq", "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    return fail(bus);
  }
  return bus;
}

int ad_bus_on(ad_bus_t *bus, const char *pattern, ad_handler_fn fn, void *user,
              ad_error_t *err)
{
  if (AD_GET(bus->running) || bus->run_started)
    return ad__err(err, AD_ESTATE, "bus", "routes are fixed once the bus runs");
  return ad__routes_add(&bus->routes, pattern, fn, user, err);
}

/* Threads and sockets, on the caller's thread so that errors reach it. */
static int bus_setup(ad_bus_t *bus, ad_error_t *err)
{
  int expected = 0;
  if (!atomic_compare_exchange_strong(&bus->running, &expected, 1))
    return ad__err(err, AD_ESTATE, "bus", "bus is already running");
  int rc = ad__fanout_start(bus, err);
  if (rc == 0)
    rc = ad__pipeline_start(bus, err);
  if (rc != 0) {
    ad__fanout_stop(bus);
    ad__pipeline_stop(bus);
  }
  return rc;
}

static void bus_loop(ad_bus_t *bus)
{
  ad__reader_loop(bus);
  ad__fanout_stop(bus);
  ad__pipeline_stop(bus);
}

int ad_bus_run(ad_bus_t *bus, ad_error_t *err)
{
  int rc = bus_setup(bus, err);
  if (rc == 0)
    bus_loop(bus);
  return rc;
}

static void *run_main(void *arg)
{
  bus_loop(arg);
  return NULL;
}

int ad_bus_start(ad_bus_t *bus, ad_error_t *err)
{
  if (bus->run_started)
    return ad__err(err, AD_ESTATE, "bus", "bus already started");
  int rc = bus_setup(bus, err);
  if (rc)
    return rc;
  if (pthread_create(&bus->run_thread, NULL, run_main, bus) != 0) {
    ad__fanout_stop(bus);
    ad__pipeline_stop(bus);
    return ad__err(err, AD_ENOMEM, "bus", "cannot start the reader thread");
  }
  bus->run_started = 1;
  return 0;
}

void ad__bus_join(ad_bus_t *bus)
{
  if (bus->run_started) {
    pthread_join(bus->run_thread, NULL);
    bus->run_started = 0;
  }
}

void ad_bus_stop(ad_bus_t *bus)
{
  if (!bus)
    return;
  atomic_store(&bus->stopping, 1);
  uint64_t one = 1;
  if (write(bus->stop_fd, &one, sizeof(one)) < 0) {
    /* the counter is saturated: a stop is already pending */
  }
}

int ad_bus_wait_connected(ad_bus_t *bus, int timeout_ms)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L)
    ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  int rc = 0;
  pthread_mutex_lock(&bus->lock);
  while (!bus->connected && rc == 0)
    rc = pthread_cond_timedwait(&bus->cond, &bus->lock, &ts);
  int up = bus->connected;
  pthread_mutex_unlock(&bus->lock);
  return up ? 0 : AD_ETIMEOUT;
}

int ad_bus_stats(ad_bus_t *bus, ad_bus_stats_t *out, ad_error_t *err)
{
  ad_bus_stats_t st, *s = &st;
  memset(s, 0, sizeof(*s));
  s->struct_size = sizeof(*s);
  s->events = AD_GET(bus->events);
  s->bytes = AD_GET(bus->bytes);
  s->matched = AD_GET(bus->matched);
  s->handled = AD_GET(bus->handled);
  s->handler_errors = AD_GET(bus->handler_errors);
  s->decode_errors = AD_GET(bus->decode_errors);
  s->oversized = AD_GET(bus->oversized);
  s->reconnects = AD_GET(bus->reconnects);
  s->queue_depth = AD_GET(bus->enqueued);
  s->queue_full = AD_GET(bus->queue_full);
  s->dropped = AD_GET(bus->dropped);
  s->fanout_sent = AD_GET(bus->fanout_sent);
  s->fanout_dropped = AD_GET(bus->fanout_dropped);
  s->fired = AD_GET(bus->fired);
  pthread_mutex_lock(&bus->lock);
  s->connected = bus->connected;
  pthread_mutex_unlock(&bus->lock);
  s->framing = (ad_framing_t)atomic_load(&bus->framing);
  return ad__struct_out(out, s, sizeof(*s), STATS_V1, "ad_bus_stats_t", err);
}

void ad_bus_destroy(ad_bus_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  ad_bus_t *bus = *self_p;
  ad_bus_stop(bus);
  ad__bus_join(bus);
  if (bus->zctx)
    zmq_ctx_term(bus->zctx);
  if (bus->stop_fd >= 0)
    close(bus->stop_fd);
  if (bus->fire_fd >= 0)
    close(bus->fire_fd);
  ad__routes_free(&bus->routes);
  free(bus->pub_path);
  free(bus->pull_path);
  free(bus->tcp_host);
  free(bus->fanout_endpoint);
  pthread_mutex_destroy(&bus->lock);
  pthread_cond_destroy(&bus->cond);
  pthread_mutex_destroy(&bus->fire_lock);
  free(bus);
  *self_p = NULL;
}
