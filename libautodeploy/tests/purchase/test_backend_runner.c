/* test_backend_runner.c - the `runner` order backend (backend_runner.c):
 * place() fires autodeploy/order/<id>/place with the body the reactor
 * reads and returns AD__PLACE_LATER; a failed fire is AD_EAGAIN; the
 * placed event's body is checked field by field. The reactor and the
 * Alibaba Cloud runner: tests/test_purchase_runner.py. */
#include <jansson.h>
#include <string.h>

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
    CASE(bad_config_names_the_key))
