/*
 * bench/replay_server.c - `bench_events serve`: a stand-in for the Salt
 * master's publisher. Listens on a Unix stream socket and, on each
 * connection, writes one captured frame back to back `--count` times (or
 * for `--seconds`) as fast as the socket takes it. Then, like a real
 * master (which never hangs up on a subscriber), it keeps the connection
 * open until the client closes it; with --close it closes at once instead.
 * (Salt 3006's subscriber drops what it had buffered when the publisher
 * hangs up, so an early close would lose events there.)
 *
 * The frame bytes are replayed exactly as captured (a bare msgpack map for
 * 3008, length prefix + map for 3006), so every reader sees what a real
 * master would send. Writes go out in ~256 KiB batches of whole frames.
 *
 *   bench_events serve --sock PATH --bin FILE --offset O --size S
 *                      [--count N | --seconds T] [--conns K]
 *
 * Prints "READY" on stdout once listening; a summary on stderr per
 * connection. --conns 0 serves until killed (default 1: exit after one).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

#define BATCH_BYTES ((size_t)256 << 10)

/* 0 when all sent, -1 when the peer went away. */
static int send_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int bench_serve(int argc, char **argv)
{
  const char *path = bench_opt(argc, argv, "--sock", NULL);
  const char *bin = bench_opt(argc, argv, "--bin", NULL);
  long offset = (long)bench_opt_ll(argc, argv, "--offset", 0);
  size_t size = (size_t)bench_opt_ll(argc, argv, "--size", 0);
  long long count = bench_opt_ll(argc, argv, "--count", 0);
  double seconds = atof(bench_opt(argc, argv, "--seconds", "0"));
  long long conns = bench_opt_ll(argc, argv, "--conns", 1);
  int close_now = bench_flag(argc, argv, "--close");
  if (!path || !bin || size == 0 || (count <= 0 && seconds <= 0)) {
    fprintf(stderr, "serve: need --sock --bin --offset --size and "
                    "--count N or --seconds T\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  char *frame = bench_load_frame(bin, offset, size);

  /* A batch of whole frames, so each send() moves a lot. */
  size_t per = BATCH_BYTES / size ? BATCH_BYTES / size : 1;
  char *batch = malloc(per * size);
  if (!batch) {
    perror("malloc");
    return 1;
  }
  for (size_t i = 0; i < per; i++)
    memcpy(batch + i * size, frame, size);

  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path)) {
    fprintf(stderr, "serve: socket path too long: %s\n", path);
    return 2;
  }
  strcpy(sa.sun_path, path);
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(path);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(lfd, 16) != 0) {
    fprintf(stderr, "serve: cannot listen on %s: %s\n", path, strerror(errno));
    return 1;
  }
  printf("READY %s\n", path);
  fflush(stdout);

  for (long long c = 0; conns == 0 || c < conns; c++) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR)
        continue;
      perror("accept");
      break;
    }
    double t0 = bench_now(), t1;
    long long sent = 0;
    int gone = 0;
    if (count > 0) {
      while (sent < count && !gone) {
        long long k = count - sent < (long long)per ? count - sent : (long long)per;
        gone = send_all(fd, batch, (size_t)k * size) != 0;
        if (!gone)
          sent += k;
      }
    } else {
      while (!gone && bench_now() - t0 < seconds) {
        gone = send_all(fd, batch, per * size) != 0;
        if (!gone)
          sent += (long long)per;
      }
    }
    t1 = bench_now();
    if (!gone && !close_now) { /* hold until the client hangs up */
      char sink[4096];
      for (;;) {
        ssize_t r = recv(fd, sink, sizeof(sink), 0);
        if (r == 0 || (r < 0 && errno != EINTR))
          break;
      }
    }
    close(fd);
    fprintf(stderr, "serve: connection %lld: %lld frames (%lld bytes) in %.3f s%s\n",
            c + 1, sent, sent * (long long)size, t1 - t0,
            gone ? " (peer closed early)" : "");
  }
  close(lfd);
  unlink(path);
  free(batch);
  free(frame);
  return 0;
}
