/*
 * reader.c - the reader thread: connect to the master's pub socket, read,
 * split frames, decide by tag, hand off. Never blocks on anything but the
 * socket, the stop eventfd and (policy BLOCK) the worker queue.
 *
 * Reconnect: exponential backoff from reconnect_min_ms doubling to
 * reconnect_max_ms, each wait drawn uniformly from [d/2, d] ("equal
 * jitter") so that many engines restarting with a master do not reconnect
 * in lock-step. The backoff resets once a connection is up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus_private.h"
#include "bus/dispatch.h"
#include "core/error_private.h"
#include "core/log_private.h"

#define READ_CHUNK ((size_t)256 << 10)

/* Connect a stream socket to a Unix path or host:port. fd or <0 + err. */
int ad__sock_connect(const char *path, const char *host, int port,
                     ad_error_t *err)
{
  int fd;
  if (path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
      return ad__err(err, AD_EINVAL, "bus", "socket path too long: %s", path);
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return ad__err_errno(err, AD_ECONNECT, errno, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
      int e = errno;
      close(fd);
      return ad__err_errno(err, AD_ECONNECT, e, "connect %s", path);
    }
  } else {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
      return ad__err(err, AD_EINVAL, "bus", "tcp_host %s is not an IPv4 address",
                     host);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return ad__err_errno(err, AD_ECONNECT, errno, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
      int e = errno;
      close(fd);
      return ad__err_errno(err, AD_ECONNECT, e, "connect %s:%d", host, port);
    }
  }
  return fd;
}

static void set_connected(ad_bus_t *bus, int up)
{
  pthread_mutex_lock(&bus->lock);
  bus->connected = up;
  pthread_cond_broadcast(&bus->cond);
  pthread_mutex_unlock(&bus->lock);
}

/* Sleep up to ms, waking early on stop. Returns 1 when stopping. */
static int nap(ad_bus_t *bus, int ms)
{
  struct pollfd p = {.fd = bus->stop_fd, .events = POLLIN};
  poll(&p, 1, ms);
  return AD_GET(bus->stopping);
}

static int backoff_ms(ad_bus_t *bus, int attempt, unsigned *seed)
{
  long d = bus->o.reconnect_min_ms;
  for (int i = 0; i < attempt && d < bus->o.reconnect_max_ms; i++)
    d *= 2;
  if (d > bus->o.reconnect_max_ms)
    d = bus->o.reconnect_max_ms;
  return (int)(d / 2 + rand_r(seed) % (unsigned)(d / 2 + 1));
}

static void on_frame(ad_bus_t *bus, const ad_frame_t *f)
{
  AD_INC(bus->events);
  if (f->tag_len == 0 || f->tag_len > AD__TAG_MAX || memchr(f->tag, 0, f->tag_len)) {
    AD_INC(bus->decode_errors);
    AD_LOG_W("bus", "event with an empty, NUL-bearing or over-%d-byte tag "
             "(%zu bytes) ignored", AD__TAG_MAX, f->tag_len);
    return;
  }
  char tag[AD__TAG_MAX + 1];
  memcpy(tag, f->tag, f->tag_len);
  tag[f->tag_len] = '\0';
  if (bus->fan_push)
    ad__fanout_send(bus, tag, f->tag_len, f->data, f->data_len);
  uint64_t routes = ad__routes_match(&bus->routes, tag, f->tag_len);
  if (!routes)
    return; /* the payload is never decoded */
  AD_INC(bus->matched);
  ad__pipeline_dispatch(bus, routes, tag, f->tag_len, f->data, f->data_len);
}

/* Read from fd until it closes or we stop. */
static void read_stream(ad_bus_t *bus, int fd, ad_decoder_t *dec)
{
  struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
                        {.fd = bus->stop_fd, .events = POLLIN}};
  for (;;) {
    if (AD_GET(bus->stopping))
      return;
    size_t cap;
    char *w = ad_decoder_reserve(dec, READ_CHUNK, &cap);
    ssize_t n = w && cap ? recv(fd, w, cap, MSG_DONTWAIT) : -1;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (poll(p, 2, -1) < 0 && errno != EINTR)
        return;
      continue;
    }
    if (n <= 0) {
      if (n < 0)
        AD_LOG_W("bus", "read from master bus failed: %s", strerror(errno));
      else
        AD_LOG_W("bus", "master closed the event bus connection");
      return;
    }
    ad_decoder_consumed(dec, (size_t)n);
    AD_ADD(bus->bytes, (uint64_t)n);
    for (;;) {
      ad_frame_t f;
      ad_error_t err;
      int rc = ad_decoder_next(dec, &f, &err);
      if (rc == 0)
        break;
      if (rc == 1) {
        on_frame(bus, &f);
        continue;
      }
      AD_INC(bus->decode_errors);
      if (rc == AD_ETOOBIG)
        AD_INC(bus->oversized);
      AD_LOG_W("bus", "%s", err.message);
    }
    atomic_store(&bus->framing, (int)ad_decoder_framing(dec));
  }
}

void ad__reader_loop(ad_bus_t *bus)
{
  ad_error_t derr;
  ad_decoder_t *dec = ad_decoder_new(bus->o.max_frame, bus->o.framing, &derr);
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)bus;
  int attempt = 0, ever = 0;
  const char *where = bus->o.ipc_mode_tcp ? bus->tcp_host : bus->pub_path;
  if (!dec) {
    AD_LOG_E("bus", "frame decoder: %s", derr.message);
    return;
  }
  while (!AD_GET(bus->stopping)) {
    ad_error_t err;
    int fd = ad__sock_connect(bus->o.ipc_mode_tcp ? NULL : bus->pub_path,
                              bus->tcp_host, bus->o.tcp_pub_port, &err);
    if (fd < 0) {
      int ms = backoff_ms(bus, attempt++, &seed);
      if (attempt == 1 || attempt % 20 == 0)
        AD_LOG_W("bus", "%s; retrying in %d ms", err.message, ms);
      if (nap(bus, ms))
        break;
      continue;
    }
    int rcvbuf = 4 << 20; /* absorb bursts while a frame is handed off */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (ever)
      AD_INC(bus->reconnects);
    if (bus->o.ipc_mode_tcp)
      AD_LOG_I("bus", "%s to the master event bus at %s:%d",
               ever ? "reconnected" : "connected", where, bus->o.tcp_pub_port);
    else
      AD_LOG_I("bus", "%s to the master event bus at %s",
               ever ? "reconnected" : "connected", where);
    ever = 1;
    attempt = 0;
    ad_decoder_reset(dec);
    set_connected(bus, 1);
    read_stream(bus, fd, dec);
    set_connected(bus, 0);
    close(fd);
    if (!AD_GET(bus->stopping) && nap(bus, backoff_ms(bus, attempt++, &seed)))
      break;
  }
  ad_decoder_destroy(&dec);
}
