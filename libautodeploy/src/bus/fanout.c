/*
 * fanout.c - optional re-publication of every bus event on a ZeroMQ PUB
 * socket as a two-part message [tag, payload], so other consumers can
 * subscribe by tag prefix (ZeroMQ's own SUBSCRIBE filter) without touching
 * the master. The reader hands frames to this thread over inproc and never
 * waits: when the hand-off queue is full the event is dropped from the
 * fan-out only, and counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus/bus_private.h"
#include "core/error_private.h"
#include "wire/event_private.h"
#include "core/log_private.h"

#define FAN_STOP 1u

static void publish(ad_bus_t *bus, void *pub, const char *tag, size_t tag_len,
                    const char *data, size_t data_len, msgpack_zone *zone)
{
  char *json = NULL;
  const char *payload = data;
  size_t plen = data_len;
  if (bus->o.fanout_format == AD_FANOUT_JSON) {
    ad_event_t ev;
    ad_error_t err;
    ad__event_view(&ev, tag, tag_len, data, data_len, zone);
    const ad_value_t *v = ad_event_data(&ev, &err);
    json = v ? ad_value_to_json_text(v, 0, &err) : NULL;
    ad__event_view_done(&ev);
    if (!json) {
      AD_INC(bus->fanout_dropped);
      AD_LOG_W("fanout", "%s: not republished as JSON: %s", tag, err.message);
      return;
    }
    payload = json;
    plen = strlen(json);
  }
  if (zmq_send(pub, tag, tag_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
      zmq_send(pub, payload, plen, ZMQ_DONTWAIT) < 0)
    AD_INC(bus->fanout_dropped);
  else
    AD_INC(bus->fanout_sent);
  free(json);
}

static void *fan_main(void *arg)
{
  ad_bus_t *bus = arg;
  void *pull = zmq_socket(bus->zctx, ZMQ_PULL);
  void *pub = bus->fan_pub; /* bound by ad__fanout_start; this thread owns it now */
  msgpack_zone zone;
  msgpack_zone_init(&zone, 8192);
  zmq_connect(pull, bus->fan_ep);
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, pull, 0) < 0) {
      zmq_msg_close(&m);
      if (zmq_errno() == EINTR)
        continue;
      break;
    }
    const char *p = zmq_msg_data(&m);
    ad__msg_head_t h;
    memcpy(&h, p, sizeof(h));
    if (h.flags & FAN_STOP) {
      zmq_msg_close(&m);
      break;
    }
    const char *tag = p + sizeof(h);
    publish(bus, pub, tag, h.tag_len, tag + h.tag_len + 1,
            zmq_msg_size(&m) - sizeof(h) - h.tag_len - 1, &zone);
    zmq_msg_close(&m);
  }
  msgpack_zone_destroy(&zone);
  zmq_close(pull);
  zmq_close(pub);
  bus->fan_pub = NULL;
  return NULL;
}

int ad__fanout_start(ad_bus_t *bus, ad_error_t *err)
{
  if (!bus->fanout_endpoint)
    return 0;
  /* Bind here, on the caller's thread, so a bad endpoint fails the start
   * with its reason; the fan-out thread then owns the socket. */
  bus->fan_pub = zmq_socket(bus->zctx, ZMQ_PUB);
  int hwm = bus->o.fanout_hwm, linger = 0;
  zmq_setsockopt(bus->fan_pub, ZMQ_SNDHWM, &hwm, sizeof(hwm));
  zmq_setsockopt(bus->fan_pub, ZMQ_LINGER, &linger, sizeof(linger));
  if (zmq_bind(bus->fan_pub, bus->fanout_endpoint) != 0) {
    int e = zmq_errno();
    zmq_close(bus->fan_pub);
    bus->fan_pub = NULL;
    return ad__err(err, AD_ECONFIG, "fanout", "fanout_endpoint %s: %s",
                   bus->fanout_endpoint, zmq_strerror(e));
  }
  AD_LOG_I("fanout", "publishing events on %s", bus->fanout_endpoint);

  snprintf(bus->fan_ep, sizeof(bus->fan_ep), "inproc://ad-fan-%p", (void *)bus);
  bus->fan_push = zmq_socket(bus->zctx, ZMQ_PUSH);
  zmq_setsockopt(bus->fan_push, ZMQ_SNDHWM, &hwm, sizeof(hwm));
  if (zmq_bind(bus->fan_push, bus->fan_ep) != 0)
    return ad__err(err, AD_EZMQ, "fanout", "%s: %s", bus->fan_ep,
                   zmq_strerror(zmq_errno()));
  if (pthread_create(&bus->fan_thread, NULL, fan_main, bus) != 0)
    return ad__err(err, AD_ENOMEM, "fanout", "cannot start fan-out thread");
  bus->fan_started = 1;
  return 0;
}

void ad__fanout_send(ad_bus_t *bus, const char *tag, size_t tag_len,
                     const char *data, size_t data_len)
{
  zmq_msg_t m;
  if (ad__msg_build(&m, 0, 0, tag, tag_len, data, data_len) != 0) {
    AD_INC(bus->fanout_dropped);
    return;
  }
  if (zmq_msg_send(&m, bus->fan_push, ZMQ_DONTWAIT) < 0) {
    zmq_msg_close(&m);
    AD_INC(bus->fanout_dropped);
  }
}

void ad__fanout_stop(ad_bus_t *bus)
{
  if (!bus->fan_started) { /* start failed half-way */
    if (bus->fan_pub)
      zmq_close(bus->fan_pub);
    if (bus->fan_push)
      zmq_close(bus->fan_push);
    bus->fan_pub = bus->fan_push = NULL;
    return;
  }
  zmq_msg_t m;
  if (ad__msg_build(&m, 0, FAN_STOP, "", 0, NULL, 0) == 0 &&
      zmq_msg_send(&m, bus->fan_push, 0) < 0)
    zmq_msg_close(&m);
  pthread_join(bus->fan_thread, NULL);
  bus->fan_started = 0;
  zmq_close(bus->fan_push);
  bus->fan_push = NULL;
}
