/*
 * bench/bench_events.c - event-throughput benchmark for libautodeploy.
 * One binary, five subcommands (bench/README.md explains the method):
 *
 *   serve     replay one captured frame over a Unix socket (replay_server.c)
 *   full      the library's bus (ad_bus_*) reading the replay socket, one
 *             route matching the stream's tags; the handler reads id, jid
 *             and retcode and walks the whole decoded data once
 *   filtered  the same bus, with routes that match none of the stream's
 *             tags, so no payload is decoded
 *   raw       plain blocking recv() of the socket until --count frames'
 *             worth of bytes (or EOF): the transport ceiling
 *   msgpack   msgpack_unpack_next over the frame's data bytes in memory,
 *             with one reused msgpack_unpacked: the decode ceiling
 *
 * Every client mode prints one JSON object on stdout (events, seconds,
 * eps, ...). Timing starts at the first byte read off the socket (or the
 * first decode) and ends at the last event handled (or counted).
 */
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "autodeploy/bus.h"
#include "autodeploy/decoder.h"
#include "autodeploy/event.h"
#include "bench.h"

/* ---- helpers --------------------------------------------------------- */

double bench_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *bench_load_frame(const char *path, long offset, size_t size)
{
  FILE *f = fopen(path, "rb");
  char *buf = malloc(size ? size : 1);
  if (!f || !buf || fseek(f, offset, SEEK_SET) != 0 ||
      fread(buf, 1, size, f) != size) {
    fprintf(stderr, "cannot read %zu bytes at %ld of %s\n", size, offset, path);
    exit(1);
  }
  fclose(f);
  return buf;
}

const char *bench_opt(int argc, char **argv, const char *name, const char *def)
{
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return argv[i + 1];
  return def;
}

long long bench_opt_ll(int argc, char **argv, const char *name, long long def)
{
  const char *v = bench_opt(argc, argv, name, NULL);
  return v ? atoll(v) : def;
}

int bench_flag(int argc, char **argv, const char *name)
{
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return 1;
  return 0;
}

long bench_rss_hwm_kb(void)
{
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (!f)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

/* CPU seconds (user + system, all threads) this process has used. */
static double cpu_seconds(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static void sleep_us(long us)
{
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

/* ---- library log: count, and show errors (or all with --verbose) ------ */

static atomic_int log_warnings;
static int log_verbose;

static void on_log(ad_log_level_t level, const char *domain, const char *msg,
                   void *user)
{
  if (level <= AD_LOG_WARNING && !strstr(msg, "master closed the event bus"))
    atomic_fetch_add(&log_warnings, 1);
  if (log_verbose || level <= AD_LOG_ERROR)
    fprintf(stderr, "[ad %d %s] %s\n", (int)level, domain, msg);
}

/* ---- full: a handler that does what storing a return would ------------ */

typedef struct {
  long long target;           /* events to wait for */
  atomic_llong n;             /* handler calls */
  atomic_llong bad;           /* missing id/jid/retcode, or a tree mismatch */
  atomic_ullong nodes, str_bytes, checksum;
  atomic_llong first_nodes;   /* node count of the first event seen */
  atomic_int done;
  double t_last;              /* set by the handler that completes target */
} full_state_t;

typedef struct {
  uint64_t nodes, str_bytes, checksum;
} walk_t;

/* Every node once: map keys and values, array items; strings counted (and
 * their first byte read, so the bytes are really reached). Scalars are
 * visited inline; only maps and arrays recurse. */
static void walk_container(const ad_value_t *v, ad_vtype_t t, walk_t *w);

static inline void visit(const ad_value_t *v, walk_t *w)
{
  ad_vtype_t t = ad_value_type(v);
  w->nodes++;
  if (t == AD_VT_STR || t == AD_VT_BIN) {
    const char *s;
    size_t len;
    if (ad_value_str(v, &s, &len) == 0) {
      w->str_bytes += len;
      if (len)
        w->checksum += (unsigned char)s[0];
    }
  } else if (t == AD_VT_MAP || t == AD_VT_ARRAY) {
    walk_container(v, t, w);
  }
}

static void walk_container(const ad_value_t *v, ad_vtype_t t, walk_t *w)
{
  size_t n = ad_value_len(v);
  if (t == AD_VT_MAP) {
    for (size_t i = 0; i < n; i++) {
      const ad_value_t *k, *x;
      if (ad_value_pair(v, i, &k, &x) == 0) {
        visit(k, w);
        visit(x, w);
      }
    }
  } else {
    for (size_t i = 0; i < n; i++)
      visit(ad_value_at(v, i), w);
  }
}

static int on_ret(ad_event_t *ev, void *user)
{
  full_state_t *st = user;
  const char *id = "", *jid = "";
  size_t id_len = 0, jid_len = 0;
  int64_t retcode = 0;
  int ok = ad_event_get_str(ev, "id", &id, &id_len) == 0 && id_len > 0 &&
           ad_event_get_str(ev, "jid", &jid, &jid_len) == 0 && jid_len > 0 &&
           ad_event_get_int(ev, "retcode", &retcode) == 0;
  const ad_value_t *root = ad_event_data(ev, NULL);
  walk_t w = {0, 0, (uint64_t)retcode + id_len + jid_len};
  if (root)
    visit(root, &w);
  long long expect = 0;
  if (!atomic_compare_exchange_strong(&st->first_nodes, &expect,
                                      (long long)w.nodes) &&
      expect != (long long)w.nodes)
    ok = 0;
  if (!ok || !root)
    atomic_fetch_add_explicit(&st->bad, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&st->nodes, w.nodes, memory_order_relaxed);
  atomic_fetch_add_explicit(&st->str_bytes, w.str_bytes, memory_order_relaxed);
  atomic_fetch_add_explicit(&st->checksum, w.checksum, memory_order_relaxed);
  long long k = atomic_fetch_add_explicit(&st->n, 1, memory_order_relaxed) + 1;
  if (st->target > 0 && k == st->target) {
    st->t_last = bench_now();
    atomic_store(&st->done, 1);
  }
  return ok ? 0 : 1;
}

/* filtered: these must never run */
static int on_unexpected(ad_event_t *ev, void *user)
{
  full_state_t *st = user;
  atomic_fetch_add_explicit(&st->bad, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&st->n, 1, memory_order_relaxed);
  return 0;
}

/* Routes a real deployment might have that match nothing in a stream of
 * salt/job/<jid>/ret/<minion>: the globs share its "salt/job/" prefix, so
 * they are checked with fnmatch, not rejected by the prefix test alone. */
static const char *FILTER_PATTERNS[] = {
    "salt/job/*/new", "salt/job/*/publish", "salt/run/*/ret", "salt/auth",
    "salt/key", "salt/minion/*/start", "minion/refresh/*", "autodeploy/*",
};

static int cmd_bus(int argc, char **argv, int full)
{
  const char *sock = bench_opt(argc, argv, "--sock", NULL);
  long long count = bench_opt_ll(argc, argv, "--count", 0);
  int workers = (int)bench_opt_ll(argc, argv, "--workers", 2);
  int queue = (int)bench_opt_ll(argc, argv, "--queue", 0);
  double timeout = atof(bench_opt(argc, argv, "--timeout", "300"));
  log_verbose = bench_flag(argc, argv, "--verbose");
  if (!sock) {
    fprintf(stderr, "%s: need --sock PATH [--count N]\n", argv[1]);
    return 2;
  }
  ad_log_set_handler(on_log, NULL, log_verbose ? AD_LOG_DEBUG : AD_LOG_WARNING);

  ad_bus_options_t o = {.struct_size = sizeof o};
  ad_bus_options_init(&o, NULL);
  o.pub_path = sock;
  o.pull_path = sock; /* never used: nothing is fired */
  o.workers = workers;
  if (queue > 0)
    o.queue_size = queue;
  o.reconnect_min_ms = 50;
  o.reconnect_max_ms = 200;
  ad_error_t err;
  ad_bus_t *bus = ad_bus_new(&o, &err);
  if (!bus) {
    fprintf(stderr, "ad_bus_new: %s\n", err.message);
    return 1;
  }
  static full_state_t st;
  st.target = count;
  int rc = 0;
  if (full) {
    rc = ad_bus_on(bus, "salt/job/*/ret/*", on_ret, &st, &err);
  } else {
    for (size_t i = 0; rc == 0 && i < sizeof(FILTER_PATTERNS) / sizeof(*FILTER_PATTERNS); i++)
      rc = ad_bus_on(bus, FILTER_PATTERNS[i], on_unexpected, &st, &err);
  }
  if (rc != 0 || ad_bus_start(bus, &err) != 0) {
    fprintf(stderr, "bus: %s\n", err.message);
    return 1;
  }

  double t_start = bench_now(), t0 = 0, t1 = 0, cpu0 = cpu_seconds();
  ad_bus_stats_t s = {.struct_size = sizeof s};
  int seen_up = 0;
  for (;;) {
    ad_bus_stats(bus, &s, NULL);
    double now = bench_now();
    if (t0 == 0 && s.bytes > 0)
      t0 = now;
    seen_up |= s.connected;
    int done;
    if (count > 0)
      done = full ? atomic_load(&st.done) : (long long)s.events >= count;
    else /* until the server closes (serve --close) and all is handled */
      done = seen_up && s.events > 0 && !s.connected && s.handled >= s.matched;
    if (done) {
      t1 = full && count > 0 ? st.t_last : now;
      break;
    }
    if (now - t_start > timeout) {
      fprintf(stderr, "%s: timed out after %.0f s: %llu events, %llu handled\n",
              argv[1], timeout, (unsigned long long)s.events,
              (unsigned long long)s.handled);
      ad_bus_destroy(&bus);
      return 1;
    }
    sleep_us(t0 == 0 ? 20 : 500);
  }
  double cpu = cpu_seconds() - cpu0;
  ad_bus_stop(bus);
  ad_bus_destroy(&bus);
  long rss = bench_rss_hwm_kb();

  long long events = count > 0 ? count : (long long)s.events;
  long long handled = atomic_load(&st.n);
  double secs = t1 - t0;
  long long bad = atomic_load(&st.bad);
  int ok = s.decode_errors == 0 && bad == 0 &&
           (full ? handled >= events : handled == 0);
  printf("{\"mode\": \"%s\", \"events\": %lld, \"seconds\": %.6f, \"eps\": %.1f, "
         "\"cpu_s\": %.4f, \"rss_kb\": %ld, \"workers\": %d, \"queue_size\": %d, "
         "\"bus_events\": %llu, \"bus_bytes\": %llu, \"matched\": %llu, "
         "\"handled\": %lld, \"bad\": %lld, \"decode_errors\": %llu, "
         "\"queue_full\": %llu, \"dropped\": %llu, \"warnings\": %d, "
         "\"nodes_per_event\": %.1f, \"str_bytes_per_event\": %.1f, "
         "\"checksum\": %llu, \"ok\": %s}\n",
         full ? "full" : "filtered", events, secs, secs > 0 ? events / secs : 0,
         cpu, rss, workers, o.queue_size, (unsigned long long)s.events,
         (unsigned long long)s.bytes, (unsigned long long)s.matched, handled,
         bad, (unsigned long long)s.decode_errors,
         (unsigned long long)s.queue_full, (unsigned long long)s.dropped,
         atomic_load(&log_warnings),
         handled ? (double)atomic_load(&st.nodes) / handled : 0,
         handled ? (double)atomic_load(&st.str_bytes) / handled : 0,
         (unsigned long long)atomic_load(&st.checksum), ok ? "true" : "false");
  return ok ? 0 : 1;
}

/* ---- raw: the transport ceiling -------------------------------------- */

static int connect_unix(const char *path, double wait_s)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path))
    return -1;
  strcpy(sa.sun_path, path);
  double until = bench_now() + wait_s;
  for (;;) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
      return fd;
    if (fd >= 0)
      close(fd);
    if (bench_now() > until)
      return -1;
    sleep_us(10000);
  }
}

static int cmd_raw(int argc, char **argv)
{
  const char *sock = bench_opt(argc, argv, "--sock", NULL);
  size_t frame_size = (size_t)bench_opt_ll(argc, argv, "--frame-size", 0);
  long long count = bench_opt_ll(argc, argv, "--count", 0);
  if (!sock || !frame_size) {
    fprintf(stderr, "raw: need --sock PATH --frame-size S [--count N]\n");
    return 2;
  }
  int fd = connect_unix(sock, 5);
  if (fd < 0) {
    fprintf(stderr, "raw: cannot connect to %s: %s\n", sock, strerror(errno));
    return 1;
  }
  int rcvbuf = 4 << 20; /* as the library's reader sets it */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  size_t cap = (size_t)256 << 10; /* the library's READ_CHUNK */
  char *buf = malloc(cap);
  unsigned long long bytes = 0, reads = 0;
  unsigned long long want = count > 0 ? (unsigned long long)count * frame_size : 0;
  double t0 = 0, t1 = 0, cpu0 = cpu_seconds();
  while (!want || bytes < want) { /* until --count frames, or EOF */
    ssize_t n = recv(fd, buf, cap, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (!bytes)
      t0 = bench_now();
    bytes += (unsigned long long)n;
    reads++;
    t1 = bench_now();
  }
  double cpu = cpu_seconds() - cpu0;
  close(fd);
  free(buf);
  double secs = t1 - t0;
  double events = (double)bytes / (double)frame_size;
  printf("{\"mode\": \"raw\", \"events\": %.0f, \"seconds\": %.6f, \"eps\": %.1f, "
         "\"cpu_s\": %.4f, \"bytes\": %llu, \"reads\": %llu, \"mb_per_s\": %.1f, \"ok\": %s}\n",
         events, secs, secs > 0 ? events / secs : 0, cpu, bytes, reads,
         secs > 0 ? bytes / secs / 1e6 : 0,
         bytes % frame_size == 0 && bytes > 0 ? "true" : "false");
  return bytes ? 0 : 1;
}

/* ---- msgpack: the decode ceiling ------------------------------------- */

static int cmd_msgpack(int argc, char **argv)
{
  const char *bin = bench_opt(argc, argv, "--bin", NULL);
  long offset = (long)bench_opt_ll(argc, argv, "--offset", 0);
  size_t size = (size_t)bench_opt_ll(argc, argv, "--size", 0);
  long long count = bench_opt_ll(argc, argv, "--count", 100000);
  if (!bin || !size) {
    fprintf(stderr, "msgpack: need --bin --offset --size [--count N]\n");
    return 2;
  }
  /* Split the captured frame with the library's own decoder: the data
   * part is exactly what the bus hands its workers to decode. */
  char *frame = bench_load_frame(bin, offset, size);
  ad_decoder_t *dec = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
  ad_frame_t f;
  ad_error_t err;
  if (!dec || ad_decoder_feed(dec, frame, size) != 0 ||
      ad_decoder_next(dec, &f, &err) != 1) {
    fprintf(stderr, "msgpack: %s is not one frame\n", bin);
    return 1;
  }
  /* Copies back to back (>= 1 MiB), decoded in turn like a stream. */
  size_t dlen = f.data_len;
  size_t copies = ((size_t)1 << 20) / dlen + 1;
  size_t buflen = copies * dlen;
  char *buf = malloc(buflen);
  for (size_t i = 0; i < copies; i++)
    memcpy(buf + i * dlen, f.data, dlen);
  ad_decoder_destroy(&dec);

  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  uint64_t sink = 0;
  long long warm = count / 20 + 1;
  for (long long i = 0; i < warm; i++) {
    if (off >= buflen)
      off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&u, buf, buflen, &off);
    if (r != MSGPACK_UNPACK_SUCCESS && r != MSGPACK_UNPACK_EXTRA_BYTES) {
      fprintf(stderr, "msgpack: decode failed (%d) at %zu\n", (int)r, off);
      return 1;
    }
    sink += (uint64_t)u.data.type + u.data.via.map.size;
  }
  /* timed */
  off = 0;
  double t0 = bench_now(), cpu0 = cpu_seconds();
  for (long long i = 0; i < count; i++) {
    if (off >= buflen)
      off = 0;
    msgpack_unpack_next(&u, buf, buflen, &off);
    sink += (uint64_t)u.data.type + u.data.via.map.size;
  }
  double secs = bench_now() - t0, cpu = cpu_seconds() - cpu0;
  msgpack_unpacked_destroy(&u);
  free(buf);
  free(frame);
  printf("{\"mode\": \"msgpack\", \"events\": %lld, \"seconds\": %.6f, "
         "\"eps\": %.1f, \"cpu_s\": %.4f, \"data_len\": %zu, \"sink\": %llu, "
         "\"ok\": true}\n",
         count, secs, secs > 0 ? count / secs : 0, cpu, dlen,
         (unsigned long long)sink);
  return 0;
}

/* ---- main ------------------------------------------------------------- */

int main(int argc, char **argv)
{
  const char *cmd = argc > 1 ? argv[1] : "";
  if (strcmp(cmd, "serve") == 0)
    return bench_serve(argc, argv);
  if (strcmp(cmd, "full") == 0)
    return cmd_bus(argc, argv, 1);
  if (strcmp(cmd, "filtered") == 0)
    return cmd_bus(argc, argv, 0);
  if (strcmp(cmd, "raw") == 0)
    return cmd_raw(argc, argv);
  if (strcmp(cmd, "msgpack") == 0)
    return cmd_msgpack(argc, argv);
  fprintf(stderr,
          "usage: %s serve|full|filtered|raw|msgpack [options]\n"
          "  serve    --sock P --bin F --offset O --size S (--count N | --seconds T) [--conns K] [--close]\n"
          "  full     --sock P [--count N] [--workers W] [--queue Q] [--verbose]\n"
          "  filtered --sock P [--count N] [--workers W] [--queue Q]\n"
          "  raw      --sock P --frame-size S [--count N]\n"
          "  msgpack  --bin F --offset O --size S [--count N]\n",
          argv[0]);
  return 2;
}
