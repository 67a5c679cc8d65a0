/* test_backend_runner.c - the `runner` order backend (backend_runner.c):
 * place() fires autodeploy/order/<id>/place with the body the reactor
 * reads and returns AD__PLACE_LATER; a failed fire is AD_EAGAIN; the
 * placed event's body is checked field by field; the order.placed command
 * (what the runner calls) refuses bad arguments by name and fires, signed
 * with the master key, a placed event that the engine's own check takes.
 * The reactor and the Alibaba Cloud runner: tests/test_purchase_runner.py. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "autodeploy.h"
#include "bus/sign.h"
#include "core/error_private.h"
#include "harness.h"
#include "purchase/backend_runner.h"

typedef struct {
  char tag[200];
  json_t *body;
  int fail, fired;
} cap_t;

static int capture(void *user, const char *tag, const json_t *body, ad_error_t *err)
{
  cap_t *c = user;
  if (c->fail)
    return ad__err(err, AD_ECONNECT, "bus", "master_event_pull.ipc: connection refused");
  c->fired++;
  snprintf(c->tag, sizeof c->tag, "%s", tag);
  json_decref(c->body);
  c->body = json_deep_copy(body);
  return 0;
}

static void *make(const char *conf, ad_error_t *err)
{
  json_t *c = json_loads(conf, 0, NULL);
  void *b = ad__order_backend_runner.create(c, err);
  json_decref(c);
  return b;
}

TEST(place_fires_the_signed_request_and_returns_later)
{
  ad_error_t err = {0};
  cap_t cap = {0};
  void *b = make("{\"type\": \"runner\", \"runner\": \"autodeploy_aliyun.place\", "
                 "\"dry_run\": true, \"args\": {\"image_id\": \"m-1\", \"period\": 1}}", &err);
  ASSERT(b);
  json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:i,s:[]}", "_id", "aliyun-hz-20261204",
                        "profile", "aliyun-hz", "flavour", "ecs.g7.2xlarge", "region",
                        "cn-hangzhou", "count", 3, "reason", "r", "rev", 4, "history");
  json_t *res = NULL;
  ASSERT_EQ(ad__order_backend_runner.place(b, o, &res, &err), AD_ESTATE); /* no bus yet */
  ad__order_runner_set_fire(b, capture, &cap);
  ASSERT_EQ(ad__order_backend_runner.place(b, o, &res, &err), AD__PLACE_LATER);
  ASSERT_STR(cap.tag, "autodeploy/order/aliyun-hz-20261204/place");
  ASSERT_STR(json_string_value(json_object_get(cap.body, "id")), "aliyun-hz-20261204");
  ASSERT_STR(json_string_value(json_object_get(cap.body, "runner")), "autodeploy_aliyun.place");
  ASSERT(json_is_true(json_object_get(cap.body, "dry_run")));
  ASSERT_STR(json_string_value(json_object_get(json_object_get(cap.body, "args"), "image_id")),
             "m-1");
  json_t *sent = json_object_get(cap.body, "order");
  ASSERT_EQ(json_integer_value(json_object_get(sent, "count")), 3);
  ASSERT_STR(json_string_value(json_object_get(sent, "flavour")), "ecs.g7.2xlarge");
  ASSERT(!json_object_get(sent, "history")); /* only what the runner needs */
  ASSERT_STR(json_string_value(json_object_get(res, "fired")), cap.tag);
  json_decref(res);
  cap.fail = 1;
  ASSERT_EQ(ad__order_backend_runner.place(b, o, &res, &err), AD_EAGAIN);
  ASSERT(strstr(err.message, "connection refused"));
  json_object_set_new(o, "_id", json_string("bad id/../x"));
  ASSERT_EQ(ad__order_backend_runner.place(b, o, &res, &err), AD_EINVAL);
  ASSERT_EQ(cap.fired, 1);
  json_decref(o);
  json_decref(cap.body);
  ad__order_backend_runner.destroy(b);
}

static int placed(const char *body, json_t **res, ad_error_t *err)
{
  return ad__order_placed_check("o-1", body, strlen(body), res, err);
}

TEST(placed_event_body_is_checked)
{
  ad_error_t err = {0};
  json_t *r = NULL;
  ASSERT_EQ(placed("{\"id\": \"o-1\", \"ok\": true, \"cloud_order_id\": \"2026\", \"error\": null}",
                   &r, &err), 0);
  ASSERT_STR(json_string_value(json_object_get(r, "cloud_order_id")), "2026");
  json_decref(r);
  ASSERT_EQ(placed("{\"id\": \"o-1\", \"ok\": false, \"error\": \"InvalidParameter\"}", &r, &err), 0);
  ASSERT(json_is_false(json_object_get(r, "ok")));
  json_decref(r);
  ASSERT_EQ(placed("{\"id\": \"o-1\", \"ok\": true, \"dry_run\": true}", &r, &err), 0);
  json_decref(r);
  ASSERT_EQ(placed("{\"id\": \"o-2\", \"ok\": true, \"cloud_order_id\": \"x\"}", &r, &err), AD_EINVAL);
  ASSERT(strstr(err.message, "id: not the tag's order id"));
  ASSERT_EQ(placed("{\"id\": \"o-1\", \"ok\": true}", &r, &err), AD_EINVAL);
  ASSERT(strstr(err.message, "cloud_order_id: required"));
  ASSERT_EQ(placed("{\"id\": \"o-1\", \"ok\": false}", &r, &err), AD_EINVAL);
  ASSERT(strstr(err.message, "error: required"));
  ASSERT_EQ(placed("[1]", &r, &err), AD_EINVAL);
  ASSERT(!r);
}

TEST(placed_fields_have_their_types)
{
  ad_error_t err = {0};
  json_t *r = NULL;
  ASSERT_EQ(placed("{\"id\": \"o-1\", \"ok\": true, \"dry_run\": \"no\", \"cloud_order_id\": \"x\"}",
                   &r, &err), AD_EINVAL);
  ASSERT(strstr(err.message, "dry_run: must be true or false"));
  ASSERT_EQ(placed("{\"id\": \"o-1\", \"ok\": true, \"cloud_order_id\": 2026}", &r, &err),
            AD_EINVAL);
  ASSERT(strstr(err.message, "cloud_order_id: must be a string or null"));
  ASSERT_EQ(placed("{\"id\": \"o-1\", \"ok\": false, \"error\": {\"code\": 1}}", &r, &err),
            AD_EINVAL);
  ASSERT(strstr(err.message, "error: must be a string or null"));
  ASSERT(!r);
}

/* order.placed's arguments -> the body, or the message naming the argument */
static json_t *body_of(const char *args, char *why, size_t n)
{
  ad_error_t err = {0};
  json_t *a = json_loads(args, 0, NULL);
  json_t *b = ad__order_placed_body(a, &err);
  json_decref(a);
  snprintf(why, n, "%s", b ? "" : err.message);
  if (!b && (err.code != AD_EINVAL || strcmp(err.domain, "args")))
    snprintf(why, n, "wrong error %d/%s: %s", err.code, err.domain, err.message);
  return b;
}

TEST(placed_command_arguments_are_named)
{
  char why[300];
  json_t *b = body_of("{\"id\": \"o-1\", \"ok\": true, \"cloud_order_id\": \"2026\"}", why,
                      sizeof why);
  ASSERT(b);
  /* every field, as the engine reads them: dry_run false when not given */
  ASSERT_EQ(json_object_size(b), 5);
  ASSERT(json_is_false(json_object_get(b, "dry_run")) && json_is_null(json_object_get(b, "error")));
  char *text = json_dumps(b, JSON_COMPACT);
  json_t *r = NULL;
  ad_error_t err = {0};
  ASSERT_EQ(ad__order_placed_check("o-1", text, strlen(text), &r, &err), 0);
  free(text);
  json_decref(r);
  json_decref(b);
  static const struct {
    const char *args, *want;
  } BAD[] = {
      {"{\"ok\": true}", "id: required, an order id"},
      {"{\"id\": \"a/../b\", \"ok\": true}", "id: required, an order id"},
      {"{\"id\": \"o-1\"}", "ok: must be true or false"},
      {"{\"id\": \"o-1\", \"ok\": \"yes\", \"cloud_order_id\": \"x\"}",
       "ok: must be true or false"},
      {"{\"id\": \"o-1\", \"ok\": true}", "cloud_order_id: required when ok (unless dry_run)"},
      {"{\"id\": \"o-1\", \"ok\": true, \"cloud_order_id\": \"\"}", "cloud_order_id: required"},
      {"{\"id\": \"o-1\", \"ok\": false}", "error: required (a string) when not ok"},
      {"{\"id\": \"o-1\", \"ok\": false, \"error\": \"x\", \"dry_run\": 1}",
       "dry_run: must be true or false"},
      {"{\"id\": \"o-1\", \"ok\": true, \"cloud_order\": \"x\"}",
       "cloud_order: unknown argument (order.placed takes id, ok, cloud_order_id, error, dry_run)"},
  };
  for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
    b = body_of(BAD[i].args, why, sizeof why);
    if (b || !strstr(why, BAD[i].want))
      fprintf(stderr, "  %s -> \"%s\", want \"%s\"\n", BAD[i].args, why, BAD[i].want);
    ASSERT(!b && strstr(why, BAD[i].want));
  }
  /* a dry run needs no cloud order id; a refusal carries the cloud's reason */
  ASSERT((b = body_of("{\"id\": \"o-1\", \"ok\": true, \"dry_run\": true}", why, sizeof why)));
  json_decref(b);
  ASSERT((b = body_of("{\"id\": \"o-1\", \"ok\": false, \"error\": \"Forbidden\", "
                      "\"cloud_order_id\": null}", why, sizeof why)));
  json_decref(b);
}

/* A stand-in master: the pull socket (master_event_pull.ipc) in a temp
 * dir, with the master key file next to it. */
static int fake_master(char *dir, size_t n, char *conf, size_t cn)
{
  snprintf(dir, n, "/tmp/adplacedXXXXXX");
  if (!mkdtemp(dir))
    return -1;
  char path[200];
  snprintf(path, sizeof path, "%s/.root_key", dir);
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  fputs("k3y-bytes-of-the-master\n", f);
  fclose(f);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/master_event_pull.ipc", dir);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 4))
    return -1;
  /* the store is never reached: nothing listens on port 1 */
  snprintf(conf, cn,
           "{\"mongo_uri\": \"mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=50\", "
           "\"sock_dir\": \"%s\", \"master_key_path\": \"%s\", \"registry\": "
           "{\"enabled\": false}, \"placement\": {}, \"purchase\": {\"time\": \"manual\", "
           "\"profiles\": {\"p1\": {\"flavour\": \"ecs.c7.2xlarge\", \"cpu\": 8, "
           "\"mem_mb\": 16384, \"disk_gb\": 100}}, \"backend\": {\"type\": \"runner\", "
           "\"runner\": \"autodeploy_aliyun.place\"}}}",
           dir, path);
  return fd;
}

/* The one event the stand-in master got on connection lfd. */
static ad_event_t *received(int lfd, char *tag, size_t tn)
{
  int c = accept(lfd, NULL, NULL);
  static char buf[8192];
  ssize_t n = c < 0 ? -1 : read(c, buf, sizeof buf);
  if (c >= 0)
    close(c);
  if (n <= 0)
    return NULL;
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
  ad_frame_t f;
  ad_event_t *ev = NULL;
  ad_decoder_feed(d, buf, (size_t)n);
  if (ad_decoder_next(d, &f, NULL) == 1) {
    snprintf(tag, tn, "%.*s", (int)f.tag_len, f.tag);
    ev = ad_event_parse(f.body, f.body_len, NULL);
  }
  ad_decoder_destroy(&d);
  return ev;
}

TEST(placed_command_fires_what_the_engine_takes)
{
  char dir[64], conf[1024], tag[200], key[200];
  int lfd = fake_master(dir, sizeof dir, conf, sizeof conf);
  ASSERT(lfd >= 0);
  snprintf(key, sizeof key, "%s/.root_key", dir);
  ad_error_t err = {0};
  /* refused before anything is fired */
  char *out = ad_call(conf, "order.placed", "{\"id\": \"aliyun-hz-20261204\", \"ok\": true}", &err);
  ASSERT(!out && err.code == AD_EINVAL && strstr(err.message, "cloud_order_id: required"));
  out = ad_call(conf, "order.placed",
                "{\"id\": \"aliyun-hz-20261204\", \"ok\": true, \"cloud_order_id\": \"202612040001\"}",
                &err);
  if (!out)
    fprintf(stderr, "  order.placed: %s\n", err.message);
  ASSERT(out);
  json_t *ans = json_loads(out, 0, NULL);
  ad_free(out);
  ASSERT(json_is_true(json_object_get(ans, "fired")));
  ASSERT_STR(json_string_value(json_object_get(ans, "tag")), "autodeploy/order/aliyun-hz-20261204/placed");
  json_decref(ans);
  ad_event_t *ev = received(lfd, tag, sizeof tag);
  ASSERT(ev);
  ASSERT_STR(tag, "autodeploy/order/aliyun-hz-20261204/placed");
  /* what the engine does with it (purchase.c, ad__purchase_on_placed) */
  const char *body;
  size_t blen;
  json_t *res = NULL;
  ASSERT_EQ(ad__verify_signed(ev, key, &body, &blen, &err), 0);
  ASSERT_EQ(ad__order_placed_check("aliyun-hz-20261204", body, blen, &res, &err), 0);
  ASSERT(json_is_true(json_object_get(res, "ok")));
  ASSERT_STR(json_string_value(json_object_get(res, "cloud_order_id")), "202612040001");
  json_decref(res);
  /* signed with this master's key: another key's check fails */
  FILE *f = fopen(key, "w");
  fputs("the key after a master restart\n", f);
  fclose(f);
  ASSERT_EQ(ad__verify_signed(ev, key, &body, &blen, &err), AD_EINVAL);
  ASSERT(strstr(err.message, "bad signature"));
  ad_event_destroy(&ev);
  close(lfd);
  char path[200];
  snprintf(path, sizeof path, "%s/master_event_pull.ipc", dir);
  unlink(path);
  unlink(key);
  rmdir(dir);
}

static void bad(const char *conf, const char *want)
{
  ad_error_t err = {0};
  void *b = make(conf, &err);
  if (b || !strstr(err.message, want))
    fprintf(stderr, "  %s -> \"%s\", want \"%s\"\n", conf, err.message, want);
  ASSERT(!b);
  ASSERT_EQ(err.code, AD_ECONFIG);
}

TEST(bad_config_names_the_key)
{
  bad("{\"type\": \"runner\"}", "purchase.backend.runner: is required");
  bad("{\"runner\": \"place\"}", "purchase.backend.runner: must be module.function");
  bad("{\"runner\": \"a.b; rm\"}", "purchase.backend.runner: must be module.function");
  bad("{\"runner\": \"a.b\", \"args\": [1]}", "purchase.backend.args: must be an object");
  bad("{\"runner\": \"a.b\", \"dry_run\": \"maybe\"}", "purchase.backend.dry_run");
  bad("{\"runner\": \"a.b\", \"access_key\": \"x\"}", "purchase.backend: unknown key");
}

RUN(CASE(place_fires_the_signed_request_and_returns_later), CASE(placed_event_body_is_checked),
    CASE(placed_fields_have_their_types), CASE(placed_command_arguments_are_named),
    CASE(placed_command_fires_what_the_engine_takes), CASE(bad_config_names_the_key))
