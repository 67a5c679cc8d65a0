/* http_srv.h - the C tests' loopback HTTP/1.1 responder (next to harness.h,
 * found through -Ilibautodeploy/tests): one thread, one request per
 * connection (Connection: close), the answer's status and body made by the
 * test's callback, which runs on the server's thread (guard what it shares
 * with the test). Used by the purchase backends' tests and the CMDB push
 * (registry/test_cmdb.c). Not a test itself (no test_ prefix).
 *
 *   srv_t s;
 *   ASSERT_EQ(srv_start(&s, answer, &state), 0);   ... http://127.0.0.1:<s.port>/
 *   srv_stop(&s);
 */
#ifndef AD_TEST_HTTP_SRV_H
#define AD_TEST_HTTP_SRV_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
  char method[16];
  char target[1024]; /* path and query */
  char head[8192];   /* the header lines, as sent */
  const char *body;  /* NUL-terminated */
  size_t body_len;
} srv_req_t;

/* Fill `out` (size n) with the answer's body; return the status. */
typedef int (*srv_fn)(void *user, const srv_req_t *r, char *out, size_t n);

#define SRV_REQ_MAX (1 << 20) /* a request, head and body */
#define SRV_OUT_MAX 65536     /* an answer's body */

typedef struct {
  int fd, port;
  pthread_t thread;
  atomic_int stop;
  srv_fn fn;
  void *user;
  char *buf, *out; /* this server's own buffers (SRV_REQ_MAX, SRV_OUT_MAX) */
} srv_t;

/* The value of header `name` in r->head into out (""), 1 when present. */
static __attribute__((unused)) int srv_header(const srv_req_t *r, const char *name, char *out,
                                              size_t n)
{
  size_t nl = strlen(name);
  out[0] = '\0';
  for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
    const char *l = p + 2;
    if (!strncasecmp(l, name, nl) && l[nl] == ':') {
      l += nl + 1;
      while (*l == ' ')
        l++;
      const char *e = strstr(l, "\r\n");
      size_t k = e ? (size_t)(e - l) : strlen(l);
      if (k >= n)
        k = n - 1;
      memcpy(out, l, k);
      out[k] = '\0';
      return 1;
    }
  }
  return 0;
}

static void srv_one(srv_t *s, int c)
{
  char *buf = s->buf, *out = s->out;
  srv_req_t *r = calloc(1, sizeof *r);
  size_t n = 0;
  long len = -1;
  char *end = NULL;
  while (r && n < SRV_REQ_MAX - 1) {
    struct pollfd p = {c, POLLIN, 0};
    if (poll(&p, 1, 2000) <= 0)
      break;
    ssize_t k = read(c, buf + n, SRV_REQ_MAX - 1 - n);
    if (k <= 0)
      break;
    n += (size_t)k;
    buf[n] = 0;
    if (!end && (end = strstr(buf, "\r\n\r\n"))) {
      char *cl = strcasestr(buf, "\r\ncontent-length:");
      len = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
    }
    if (end && (long)(n - (size_t)(end + 4 - buf)) >= len)
      break;
  }
  if (!r || !end) {
    free(r);
    return;
  }
  size_t hl = (size_t)(end - buf) + 2;
  memcpy(r->head, buf, hl < sizeof r->head - 1 ? hl : sizeof r->head - 1);
  sscanf(buf, "%15s %1023s", r->method, r->target);
  r->body = end + 4;
  r->body_len = n - (size_t)(end + 4 - buf);
  out[0] = '\0';
  int status = s->fn(s->user, r, out, SRV_OUT_MAX);
  char head[256];
  int k = snprintf(head, sizeof head,
                   "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n", status, strlen(out));
  if (write(c, head, (size_t)k) < 0 || write(c, out, strlen(out)) < 0)
    perror("srv write");
  free(r);
}

static void *srv_run(void *arg)
{
  srv_t *s = arg;
  while (!s->stop) {
    struct pollfd p = {s->fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0)
      continue;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0)
      continue;
    srv_one(s, c);
    close(c);
  }
  return NULL;
}

static __attribute__((unused)) int srv_start(srv_t *s, srv_fn fn, void *user)
{
  memset(s, 0, sizeof *s);
  s->fn = fn;
  s->user = user;
  s->buf = malloc(SRV_REQ_MAX);
  s->out = malloc(SRV_OUT_MAX);
  s->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (!s->buf || !s->out || s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof a) ||
      listen(s->fd, 16) || getsockname(s->fd, (struct sockaddr *)&a, &al))
    goto fail;
  s->port = ntohs(a.sin_port);
  if (pthread_create(&s->thread, NULL, srv_run, s))
    goto fail;
  return 0;
fail:
  if (s->fd >= 0)
    close(s->fd);
  free(s->buf);
  free(s->out);
  return -1;
}

static __attribute__((unused)) void srv_stop(srv_t *s)
{
  s->stop = 1;
  pthread_join(s->thread, NULL);
  close(s->fd);
  free(s->buf);
  free(s->out);
}

/* A loopback port nobody listens on. */
static __attribute__((unused)) int srv_closed_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &al);
  close(fd);
  return ntohs(a.sin_port);
}

#endif
