/* test_bus.c - the bus against a stand-in master on a Unix socket:
 * dispatch by tag, untouched payloads for unmatched tags, queue policies
 * when handlers are slow, reconnect after the master goes away, oversized
 * frames, fire framing, fan-out. Real masters: tests/test_bus.py. */
#include <fcntl.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "autodeploy.h"
#include "harness.h"

static char dir[64];

static void mkdir_tmp(void)
{
  if (!dir[0]) {
    strcpy(dir, "/tmp/adbusXXXXXX");
    if (!mkdtemp(dir))
      abort();
  }
}

/* One Salt 3008-style frame (bare map) or 3006-style (length prefix). */
static void frame(msgpack_sbuffer *sb, const char *tag, const char *id,
                  int prefix, size_t pad)
{
  msgpack_sbuffer data;
  msgpack_packer pk;
  msgpack_sbuffer_init(&data);
  msgpack_packer_init(&pk, &data, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 3);
  msgpack_pack_str_with_body(&pk, "id", 2);
  msgpack_pack_str_with_body(&pk, id, strlen(id));
  msgpack_pack_str_with_body(&pk, "retcode", 7);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_str_with_body(&pk, "pad", 3);
  msgpack_pack_bin(&pk, pad);
  for (size_t i = 0; i < pad; i++)
    msgpack_pack_bin_body(&pk, "x", 1);
  msgpack_sbuffer body;
  msgpack_sbuffer_init(&body);
  msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str_with_body(&pk, "head", 4);
  msgpack_pack_map(&pk, 0);
  msgpack_pack_str_with_body(&pk, "body", 4);
  msgpack_pack_bin(&pk, strlen(tag) + 2 + data.size);
  msgpack_pack_bin_body(&pk, tag, strlen(tag));
  msgpack_pack_bin_body(&pk, "\n\n", 2);
  msgpack_pack_bin_body(&pk, data.data, data.size);
  if (prefix) {
    uint32_t n = htonl((uint32_t)body.size);
    msgpack_sbuffer_write(sb, (char *)&n, 4);
  }
  msgpack_sbuffer_write(sb, body.data, body.size);
  msgpack_sbuffer_destroy(&data);
  msgpack_sbuffer_destroy(&body);
}

/* Stand-in master: for each of `rounds` connections, write `buf`, close. */
typedef struct {
  int lfd, rounds;
  msgpack_sbuffer *bufs[4];
} server_t;

static void *serve(void *arg)
{
  server_t *s = arg;
  for (int r = 0; r < s->rounds; r++) {
    int c = accept(s->lfd, NULL, NULL);
    if (c < 0)
      break;
    usleep(50000); /* let the reader register, as a master would */
    ssize_t w = write(c, s->bufs[r]->data, s->bufs[r]->size);
    (void)w;
    usleep(100000);
    close(c);
  }
  return NULL;
}

static int listen_at(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  unlink(path);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 8))
    abort();
  return fd;
}

typedef struct {
  atomic_int calls, ids_ok, gate_ms;
} counter_t;

static int on_ret(ad_event_t *ev, void *user)
{
  counter_t *c = user;
  const char *id;
  size_t n;
  if (c->gate_ms)
    usleep((useconds_t)c->gate_ms * 1000);
  if (ad_event_get_str(ev, "id", &id, &n) == 0 && n == 2 && !memcmp(id, "m1", 2))
    atomic_fetch_add(&c->ids_ok, 1);
  atomic_fetch_add(&c->calls, 1);
  return 0;
}

static void wait_for(ad_bus_t *bus, uint64_t events, int ms)
{
  for (int i = 0; i < ms / 10; i++) {
    ad_bus_stats_t st = {.struct_size = sizeof st};
    ad_bus_stats(bus, &st, NULL);
    if (st.events >= events && st.queue_depth == 0)
      return;
    usleep(10000);
  }
}

static ad_bus_t *bus_at(const char *pub, int workers, int queue, ad_queue_policy_t pol)
{
  ad_bus_options_t o = {.struct_size = sizeof o};
  ad_bus_options_init(&o, NULL);
  o.pub_path = pub;
  o.pull_path = pub;
  o.workers = workers;
  o.queue_size = queue;
  o.queue_full = pol;
  o.reconnect_min_ms = 10;
  o.reconnect_max_ms = 50;
  o.max_frame = 64 * 1024;
  return ad_bus_new(&o, NULL);
}

TEST(dispatch_by_tag_and_reconnect)
{
  mkdir_tmp();
  char path[128];
  snprintf(path, sizeof path, "%s/pub1.ipc", dir);
  msgpack_sbuffer a, b;
  msgpack_sbuffer_init(&a);
  msgpack_sbuffer_init(&b);
  frame(&a, "salt/job/1/ret/m1", "m1", 0, 10);
  frame(&a, "salt/auth", "m1", 0, 10);           /* not routed */
  frame(&a, "salt/job/1/ret/m1", "m1", 0, 200000); /* oversized: skipped */
  frame(&a, "salt/job/2/ret/m1", "m1", 0, 10);
  /* second connection: 3006 framing this time */
  frame(&b, "salt/job/3/ret/m1", "m1", 1, 10);
  frame(&b, "salt/minion/m1/start", "m1", 1, 10);
  server_t s = {listen_at(path), 2, {&a, &b}};
  pthread_t th;
  pthread_create(&th, NULL, serve, &s);

  counter_t rets = {0}, starts = {0};
  ad_bus_t *bus = bus_at(path, 2, 100, AD_QUEUE_BLOCK);
  ASSERT(bus != NULL);
  ASSERT_EQ(ad_bus_on(bus, "salt/job/*/ret/*", on_ret, &rets, NULL), 0);
  ASSERT_EQ(ad_bus_on(bus, "salt/minion/*/start", on_ret, &starts, NULL), 0);
  ASSERT_EQ(ad_bus_start(bus, NULL), 0);
  ad_error_t err;
  ASSERT_EQ(ad_bus_on(bus, "x", on_ret, &rets, &err), AD_ESTATE);
  wait_for(bus, 5, 5000);
  pthread_join(th, NULL);
  ad_bus_stats_t st = {.struct_size = sizeof st};
  ad_bus_stats(bus, &st, NULL);
  ASSERT_EQ(st.events, 5);          /* the oversized one is not an event */
  ASSERT_EQ(st.oversized, 1);
  ASSERT_EQ(st.matched, 4);
  ASSERT(st.reconnects >= 1);
  ASSERT_EQ(atomic_load(&rets.calls), 3);
  ASSERT_EQ(atomic_load(&rets.ids_ok), 3);
  ASSERT_EQ(atomic_load(&starts.calls), 1);
  ad_bus_destroy(&bus);
  ASSERT(bus == NULL);
  close(s.lfd);
  msgpack_sbuffer_destroy(&a);
  msgpack_sbuffer_destroy(&b);
}

static void queue_policy(ad_queue_policy_t pol)
{
  mkdir_tmp();
  char path[128];
  snprintf(path, sizeof path, "%s/pub%d.ipc", dir, 2 + (int)pol);
  msgpack_sbuffer a;
  msgpack_sbuffer_init(&a);
  for (int i = 0; i < 60; i++)
    frame(&a, "salt/job/9/ret/m1", "m1", 0, 10);
  server_t s = {listen_at(path), 1, {&a}};
  pthread_t th;
  pthread_create(&th, NULL, serve, &s);
  counter_t c = {0};
  atomic_store(&c.gate_ms, 5); /* a slow handler: 5 ms per event */
  ad_bus_t *bus = bus_at(path, 1, 4, pol);
  ad_bus_on(bus, "salt/job/*", on_ret, &c, NULL);
  ad_bus_start(bus, NULL);
  wait_for(bus, 60, 5000);
  pthread_join(th, NULL);
  ad_bus_stats_t st = {.struct_size = sizeof st}; /* every event read: dropped is final */
  ad_bus_stats(bus, &st, NULL);
  ad_bus_stop(bus);
  ad_bus_destroy(&bus); /* drains the queue before returning */
  ASSERT_EQ(st.events, 60);
  if (pol == AD_QUEUE_BLOCK) {
    ASSERT_EQ(atomic_load(&c.calls), 60);
    ASSERT_EQ(st.dropped, 0);
  } else {
    ASSERT(st.dropped > 0);
    ASSERT(atomic_load(&c.calls) >= 4);
    /* each event was either handled or counted as dropped, never lost */
    ASSERT_EQ((uint64_t)atomic_load(&c.calls) + st.dropped, 60);
  }
  close(s.lfd);
  msgpack_sbuffer_destroy(&a);
}

TEST(slow_handlers_block_policy_loses_nothing) { queue_policy(AD_QUEUE_BLOCK); }
TEST(slow_handlers_drop_policy_drops_and_counts) { queue_policy(AD_QUEUE_DROP); }

TEST(fire_writes_length_prefixed_frame)
{
  mkdir_tmp();
  char path[128];
  snprintf(path, sizeof path, "%s/pull.ipc", dir);
  int lfd = listen_at(path);
  ad_bus_t *bus = bus_at(path, 0, 1, AD_QUEUE_BLOCK);
  ad_error_t err;
  ASSERT_EQ(ad_bus_fire_json(bus, "autodeploy/test", "{\"n\": 5}", &err), 0);
  ASSERT_EQ(ad_bus_fire_json(bus, "autodeploy/test", "[1]", &err), AD_EINVAL);
  ASSERT(strstr(err.message, "object") != NULL);
  int c = accept(lfd, NULL, NULL);
  char buf[256];
  ssize_t n = read(c, buf, sizeof buf);
  ASSERT(n > 4);
  ASSERT_EQ(buf[0], 0);
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
  ad_decoder_feed(d, buf, (size_t)n);
  ad_frame_t f;
  ASSERT_EQ(ad_decoder_next(d, &f, NULL), 1);
  ASSERT_EQ(ad_decoder_framing(d), AD_FRAMING_LENGTH);
  ASSERT_MEM(f.tag, f.tag_len, "autodeploy/test");
  ad_event_t *ev = ad_event_parse(f.body, f.body_len, NULL);
  int64_t v;
  ASSERT_EQ(ad_event_get_int(ev, "n", &v), 0);
  ASSERT_EQ(v, 5);
  ad_bus_stats_t st = {.struct_size = sizeof st};
  ad_bus_stats(bus, &st, NULL);
  ASSERT_EQ(st.fired, 1);
  ad_event_destroy(&ev);
  ad_decoder_destroy(&d);
  ad_bus_destroy(&bus);
  close(c);
  close(lfd);
}

/* 1 when nothing connected to lfd (the fire was refused before connecting). */
static int no_connection(int lfd)
{
  int fl = fcntl(lfd, F_GETFL);
  fcntl(lfd, F_SETFL, fl | O_NONBLOCK);
  int c = accept(lfd, NULL, NULL);
  fcntl(lfd, F_SETFL, fl);
  if (c >= 0)
    close(c);
  return c < 0;
}

/* ad_bus_fire refuses, before connecting, what a reader would drop (tags
 * over 4096 bytes) or what makes Salt misread the event ("\n\n" in the tag,
 * a trailing '\n', bytes that are not UTF-8), and echoes at most 64 bytes
 * of the tag. The longest allowed tag is sent. */
TEST(fire_refuses_tags_readers_drop_or_salt_misreads)
{
  mkdir_tmp();
  char path[128];
  snprintf(path, sizeof path, "%s/pullr.ipc", dir);
  int lfd = listen_at(path);
  ad_bus_t *bus = bus_at(path, 0, 1, AD_QUEUE_BLOCK);
  ad_error_t err;
  size_t big = 100004;
  char *tag = malloc(big + 1);
  ASSERT(tag != NULL);
  memset(tag, 'a', big);
  tag[big] = '\0';
  ASSERT_EQ(ad_bus_fire_json(bus, tag, "{}", &err), AD_EINVAL);
  ASSERT(strstr(err.message, "100004 bytes") != NULL);
  ASSERT(strstr(err.message, "4096") != NULL);
  ASSERT(strstr(err.message, "...") != NULL); /* the tag is cut short */
  ASSERT(strlen(err.message) < 64 + 100);
  tag[4097] = '\0';
  ASSERT_EQ(ad_bus_fire(bus, tag, NULL, 0, &err), AD_EINVAL);
  const char *bad[] = {"my/tag\n\nx", "\n\n", "my/tag\n", "my/\xff/tag",
                       "my/\xc0\xaf", "my/\xed\xa0\x80"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_EQ(ad_bus_fire_json(bus, bad[i], "{}", &err), AD_EINVAL);
    ASSERT(strstr(err.message, "tag") != NULL);
  }
  ASSERT(no_connection(lfd));
  ad_bus_stats_t st = {.struct_size = sizeof st};
  ad_bus_stats(bus, &st, NULL);
  ASSERT_EQ(st.fired, 0);
  /* what is allowed goes out whole: 4096 bytes, one '\n', UTF-8 */
  tag[4096] = '\0';
  ASSERT_EQ(ad_bus_fire_json(bus, tag, "{}", &err), 0);
  ASSERT_EQ(ad_bus_fire_json(bus, "a\nb/\xe5\xbc\x80\xe6\x9c\x8d", "{}", &err), 0);
  int c = accept(lfd, NULL, NULL);
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_LENGTH, NULL);
  ad_frame_t f;
  int got = 0;
  while (got < 2) {
    size_t cap;
    char *w = ad_decoder_reserve(d, 8192, &cap);
    ssize_t n = read(c, w, cap);
    ASSERT(n > 0);
    ad_decoder_consumed(d, (size_t)n);
    while (ad_decoder_next(d, &f, NULL) == 1)
      ASSERT_EQ(f.tag_len, ++got == 1 ? 4096 : 10);
  }
  ad_bus_stats(bus, &st, NULL);
  ASSERT_EQ(st.fired, 2);
  ad_decoder_destroy(&d);
  ad_bus_destroy(&bus);
  free(tag);
  close(c);
  close(lfd);
}

/* With no master, the error names the socket and echoes 64 bytes of the
 * tag, not all 4,000. */
TEST(fire_without_master_echoes_a_short_tag)
{
  mkdir_tmp();
  char path[128];
  snprintf(path, sizeof path, "%s/nowhere.ipc", dir);
  ad_bus_t *bus = bus_at(path, 0, 1, AD_QUEUE_BLOCK);
  char tag[4001];
  memset(tag, 'b', 4000);
  tag[4000] = '\0';
  ad_error_t err;
  int rc = ad_bus_fire_json(bus, tag, "[1]", &err); /* the data error */
  ASSERT_EQ(rc, AD_EINVAL);
  ASSERT(strstr(err.message, "bbbb...") != NULL);
  ASSERT(strstr(err.message, "object") != NULL);
  rc = ad_bus_fire_json(bus, tag, "{}", &err);
  ASSERT(rc < 0);
  ASSERT(strstr(err.message, "nowhere.ipc") != NULL);
  ASSERT(strstr(err.message, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb") == NULL);
  ad_bus_destroy(&bus);
}

/* A glob fnmatch(3) would not read as written is refused, naming it;
 * valid brackets, classes and escapes are accepted. */
TEST(invalid_globs_are_refused_by_name)
{
  mkdir_tmp();
  char path[128];
  snprintf(path, sizeof path, "%s/glob.ipc", dir);
  ad_bus_t *bus = bus_at(path, 0, 1, AD_QUEUE_BLOCK);
  counter_t c = {0};
  ad_error_t err;
  const char *bad[] = {"salt/[a-", "salt/[", "salt/[!]", "salt/[]", "x\\",
                       "salt/[[:alpha:]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ASSERT_EQ(ad_bus_on(bus, bad[i], on_ret, &c, &err), AD_EINVAL);
    ASSERT(strstr(err.message, bad[i]) != NULL);
    ASSERT(strstr(err.message, "glob") != NULL);
  }
  const char *good[] = {"salt/[a-z]*", "salt/[!a]x", "salt/[]a]", "[[:alpha:]]*",
                        "a\\*b", "salt/job/*/ret/*", "salt/[^x]"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    ASSERT_EQ(ad_bus_on(bus, good[i], on_ret, &c, &err), 0);
  ad_bus_destroy(&bus);
}

TEST(fanout_publishes_tag_and_payload)
{
  mkdir_tmp();
  char path[128], ep[160];
  snprintf(path, sizeof path, "%s/pubf.ipc", dir);
  snprintf(ep, sizeof ep, "ipc://%s/fan.ipc", dir);
  msgpack_sbuffer a;
  msgpack_sbuffer_init(&a);
  frame(&a, "salt/auth", "m1", 0, 1);
  frame(&a, "salt/job/5/ret/m1", "m1", 0, 1);
  server_t s = {listen_at(path), 1, {&a}};
  ad_bus_options_t o = {.struct_size = sizeof o};
  ad_bus_options_init(&o, NULL);
  o.pub_path = path;
  o.fanout_endpoint = ep;
  o.fanout_format = AD_FANOUT_JSON;
  ad_bus_t *bus = ad_bus_new(&o, NULL);
  ASSERT_EQ(ad_bus_start(bus, NULL), 0);
  void *ctx = zmq_ctx_new();
  void *sub = zmq_socket(ctx, ZMQ_SUB);
  usleep(100000); /* the fan-out thread binds */
  zmq_connect(sub, ep);
  zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "salt/job/", 9);
  usleep(200000); /* subscription reaches the PUB before events flow */
  pthread_t th;
  pthread_create(&th, NULL, serve, &s);
  int tmo = 3000;
  zmq_setsockopt(sub, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  char tag[64] = "", payload[512] = "";
  int tn = zmq_recv(sub, tag, sizeof tag - 1, 0);
  int pn = zmq_recv(sub, payload, sizeof payload - 1, 0);
  pthread_join(th, NULL);
  ASSERT(tn > 0 && pn > 0);
  tag[tn] = payload[pn] = '\0';
  ASSERT_STR(tag, "salt/job/5/ret/m1"); /* salt/auth filtered by the SUB */
  ASSERT(strstr(payload, "\"id\":\"m1\"") != NULL);
  zmq_close(sub);
  zmq_ctx_term(ctx);
  ad_bus_destroy(&bus);
  close(s.lfd);
  msgpack_sbuffer_destroy(&a);
}

TEST(bad_options_are_named)
{
  ad_bus_options_t o = {.struct_size = sizeof o};
  ad_error_t err;
  ad_bus_options_init(&o, NULL);
  o.workers = -1;
  ASSERT(ad_bus_new(&o, &err) == NULL);
  ASSERT(strstr(err.message, "workers") != NULL);
  ad_bus_options_init(&o, NULL);
  o.reconnect_max_ms = 1;
  ASSERT(ad_bus_new(&o, &err) == NULL);
  ASSERT(strstr(err.message, "reconnect") != NULL);
  ad_bus_options_init(&o, NULL);
  o.fanout_endpoint = "nonsense://x";
  ad_bus_t *bus = ad_bus_new(&o, NULL);
  ASSERT(bus != NULL);
  ASSERT(ad_bus_run(bus, &err) != 0); /* a typo fails the start loudly */
  ASSERT(strstr(err.message, "fanout_endpoint") != NULL);
  ad_bus_destroy(&bus);
}

TEST(engine_config_errors_name_the_key)
{
  ad_error_t err;
  ASSERT(ad_engine_new("{\"workerz\": 2}", &err) == NULL);
  ASSERT(strstr(err.message, "workerz") != NULL);
  ASSERT(ad_engine_new("{\"workers\": -1}", &err) == NULL);
  ASSERT(strstr(err.message, "workers") != NULL);
  ASSERT(ad_engine_new("{\"queue_full\": \"maybe\"}", &err) == NULL);
  ASSERT(strstr(err.message, "block, drop") != NULL);
  ASSERT(ad_engine_new("{\"workers\": \"2\"", &err) == NULL);
  ASSERT(strstr(err.message, "not JSON") != NULL);
  ad_engine_t *eng = ad_engine_new("{\"sock_dir\": \"/nonexistent\", \"workers\": 1}", &err);
  ASSERT(eng != NULL);
  char *s = ad_engine_stats_json(eng);
  ASSERT(s && strstr(s, "\"events\":0") != NULL);
  ad_free(s);
  ad_engine_destroy(&eng);
  ASSERT(eng == NULL);
}

RUN(CASE(dispatch_by_tag_and_reconnect), CASE(slow_handlers_block_policy_loses_nothing),
    CASE(slow_handlers_drop_policy_drops_and_counts),
    CASE(fire_writes_length_prefixed_frame),
    CASE(fire_refuses_tags_readers_drop_or_salt_misreads),
    CASE(fire_without_master_echoes_a_short_tag),
    CASE(invalid_globs_are_refused_by_name), CASE(fanout_publishes_tag_and_payload),
    CASE(bad_options_are_named), CASE(engine_config_errors_name_the_key))
