/* test_backend_http.c - the `http` order backend (backend_http.c) against a
 * loopback order API that checks what a real one would: the HMAC-SHA256
 * signature over timestamp + "\n" + body, the idempotency key in the header
 * and the body (the same), and that counts orders per key, so a retry after
 * a lost answer must not make a second order. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "harness.h"
#include "http_srv.h"
#include "purchase/backend.h"

#define SECRET "s3cret-0123456789-abcdef"

typedef struct {
  pthread_mutex_t lock;
  json_t *orders;    /* idempotency key -> cloud order id */
  int requests;
  int lose_first;    /* make the order, then answer 502 (a lost answer) */
  int status;        /* answer this status (no order) when set */
  int no_id;         /* answer 200 without the order id */
  char last_body[4096];
  char why[200];     /* why the server refused, for the assertion message */
} api_t;

static int api_fn(void *user, const srv_req_t *r, char *out, size_t n)
{
  api_t *a = user;
  char key[256], ts[64], sig[200], want[200] = "sha256=";
  int status = 200;
  pthread_mutex_lock(&a->lock);
  a->requests++;
  snprintf(a->last_body, sizeof a->last_body, "%s", r->body);
  srv_header(r, "Idempotency-Key", key, sizeof key);
  srv_header(r, "X-Autodeploy-Timestamp", ts, sizeof ts);
  srv_header(r, "X-Autodeploy-Signature", sig, sizeof sig);
  /* the signature, as docs/purchase.md tells an API to check it */
  char msg[8192];
  int ml = snprintf(msg, sizeof msg, "%s\n%s", ts, r->body);
  unsigned char mac[32];
  unsigned int maclen = 0;
  HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)msg, (size_t)ml, mac, &maclen);
  for (unsigned i = 0; i < maclen; i++)
    snprintf(want + 7 + 2 * i, 3, "%02x", mac[i]);
  json_t *body = json_loads(r->body, 0, NULL);
  long long age = (long long)(ad__now_ms() / 1000) - strtoll(ts, NULL, 10);
  if (strcmp(r->method, "POST") || strcmp(r->target, "/v1/orders?src=ad")) {
    status = 404;
    snprintf(a->why, sizeof a->why, "method/target %s %s", r->method, r->target);
  } else if (strcmp(sig, want) || age < -5 || age > 5) {
    status = 401;
    snprintf(a->why, sizeof a->why, "bad signature %s", sig);
  } else if (!*key || strcmp(key, json_string_value(json_object_get(body, "client_token")) ?: "")) {
    status = 400;
    snprintf(a->why, sizeof a->why, "key %s not the body's client_token", key);
  } else if (a->status) {
    status = a->status;
  }
  if (status == 200 || (status >= 500 && a->lose_first)) {
    json_t *have = json_object_get(a->orders, key);
    char cid[64];
    snprintf(cid, sizeof cid, "CO-%zu", json_object_size(a->orders) + 1);
    if (!have)
      json_object_set_new(a->orders, key, json_string(cid));
    const char *id = json_string_value(json_object_get(a->orders, key));
    if (a->lose_first) {
      a->lose_first = 0;
      status = 502;
      snprintf(out, n, "{\"error\": \"gateway lost it\"}");
    } else if (a->no_id) {
      snprintf(out, n, "{\"data\": {}}");
    } else {
      snprintf(out, n, "{\"data\": {\"orderId\": \"%s\", \"state\": \"unpaid\"}}", id);
    }
  } else {
    snprintf(out, n, "{\"error\": \"%d\"}", status);
  }
  json_decref(body);
  pthread_mutex_unlock(&a->lock);
  return status;
}

static void api_init(api_t *a)
{
  memset(a, 0, sizeof *a);
  pthread_mutex_init(&a->lock, NULL);
  a->orders = json_object();
}

static void api_free(api_t *a)
{
  json_decref(a->orders);
  pthread_mutex_destroy(&a->lock);
}

static void *make(int port, const char *extra, ad_error_t *err)
{
  char c[1024];
  snprintf(c, sizeof c,
           "{\"type\": \"http\", \"url\": \"http://127.0.0.1:%d/v1/orders?src=ad\", "
           "\"secret\": \"" SECRET "\", \"order_id_pointer\": \"/data/orderId\", "
           "\"headers\": {\"X-Tenant\": \"games\"}, \"backoff_ms\": 50, "
           "\"body\": {\"instanceType\": \"{flavour}\", \"amount\": \"{count}\", "
           "\"regionId\": \"{region}\", \"note\": \"order {id} for {profile}: {reason}\", "
           "\"tags\": [{\"key\": \"autodeploy\", \"value\": \"{id}\"}]}%s}",
           port, extra ? extra : "");
  json_t *conf = json_loads(c, 0, NULL);
  void *b = conf ? ad__order_backend_http.create(conf, err) : NULL;
  json_decref(conf);
  return b;
}

static json_t *order(void)
{
  return json_pack("{s:s,s:s,s:s,s:s,s:i,s:s}", "_id", "aliyun-hz-20261204", "profile",
                   "aliyun-hz", "flavour", "ecs.g7.2xlarge", "region", "cn-hangzhou", "count", 3,
                   "reason", "qq: 7 services, waited 26 h \"quoted\"");
}

/* Logged lines, to show the secret never reaches one. */
static char logged[16384];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static void on_log(ad_log_level_t l, const char *d, const char *m, void *u)
{
  pthread_mutex_lock(&log_lock);
  strncat(logged, m, sizeof logged - strlen(logged) - 2);
  strcat(logged, "\n");
  pthread_mutex_unlock(&log_lock);
}

TEST(places_signed_with_key_in_header_and_body)
{
  api_t a;
  srv_t s;
  ad_error_t err = {0};
  api_init(&a);
  ASSERT_EQ(srv_start(&s, api_fn, &a), 0);
  void *b = make(s.port, NULL, &err);
  ASSERT(b);
  json_t *o = order(), *res = NULL;
  int rc = ad__order_backend_http.place(b, o, &res, &err);
  if (rc)
    fprintf(stderr, "  place: %s (server: %s)\n", err.message, a.why);
  ASSERT_EQ(rc, AD__PLACE_DONE);
  ASSERT_STR(json_string_value(json_object_get(res, "cloud_order_id")), "CO-1");
  ASSERT_EQ(json_integer_value(json_object_get(res, "attempts")), 1);
  /* the body: placeholders filled with their types, the key added */
  json_t *sent = json_loads(a.last_body, 0, NULL);
  ASSERT(sent);
  ASSERT_EQ(json_integer_value(json_object_get(sent, "amount")), 3);
  ASSERT_STR(json_string_value(json_object_get(sent, "instanceType")), "ecs.g7.2xlarge");
  ASSERT_STR(json_string_value(json_object_get(sent, "regionId")), "cn-hangzhou");
  ASSERT_STR(json_string_value(json_object_get(sent, "note")),
             "order aliyun-hz-20261204 for aliyun-hz: qq: 7 services, waited 26 h \"quoted\"");
  ASSERT_STR(json_string_value(json_object_get(json_array_get(json_object_get(sent, "tags"), 0),
                                               "value")), "aliyun-hz-20261204");
  ASSERT_STR(json_string_value(json_object_get(sent, "client_token")), "aliyun-hz-20261204");
  /* the same order again (a rerun): the API gives back the same order */
  json_t *res2 = NULL;
  ASSERT_EQ(ad__order_backend_http.place(b, o, &res2, &err), AD__PLACE_DONE);
  ASSERT_STR(json_string_value(json_object_get(res2, "cloud_order_id")), "CO-1");
  ASSERT_EQ(json_object_size(a.orders), 1);
  json_decref(sent);
  json_decref(res);
  json_decref(res2);
  json_decref(o);
  ad__order_backend_http.destroy(b);
  srv_stop(&s);
  api_free(&a);
}

TEST(retry_after_lost_answer_makes_no_second_order)
{
  api_t a;
  srv_t s;
  ad_error_t err = {0};
  api_init(&a);
  a.lose_first = 1;
  ASSERT_EQ(srv_start(&s, api_fn, &a), 0);
  ad_log_set_handler(on_log, NULL, AD_LOG_DEBUG);
  void *b = make(s.port, NULL, &err);
  ASSERT(b);
  json_t *o = order(), *res = NULL;
  ASSERT_EQ(ad__order_backend_http.place(b, o, &res, &err), AD__PLACE_DONE);
  ASSERT_EQ(a.requests, 2);                 /* the 502, then the retry */
  ASSERT_EQ(json_object_size(a.orders), 1); /* one order for the key */
  ASSERT_STR(json_string_value(json_object_get(res, "cloud_order_id")), "CO-1");
  ASSERT_EQ(json_integer_value(json_object_get(res, "attempts")), 2);
  ad_log_set_handler(NULL, NULL, AD_LOG_ERROR);
  ASSERT(strstr(logged, "try 1 failed, retrying")); /* the evidence of the retry */
  ASSERT(!strstr(logged, SECRET));
  json_decref(res);
  json_decref(o);
  ad__order_backend_http.destroy(b);
  srv_stop(&s);
  api_free(&a);
}

TEST(api_down_is_eagain_within_the_timeout)
{
  ad_error_t err = {0};
  void *b = make(srv_closed_port(), ", \"timeout_s\": 1, \"retries\": 20, \"backoff_ms\": 100", &err);
  ASSERT(b);
  json_t *o = order(), *res = NULL;
  int64_t t0 = ad__mono_ms();
  ASSERT_EQ(ad__order_backend_http.place(b, o, &res, &err), AD_EAGAIN);
  int64_t took = ad__mono_ms() - t0;
  ASSERT(took >= 900 && took < 1500);
  ASSERT(strstr(err.message, "timeout_s=1 spent after"));
  ASSERT(strstr(err.message, "127.0.0.1"));
  ASSERT(!res);
  json_decref(o);
  ad__order_backend_http.destroy(b);
}

TEST(refusal_and_answer_without_id_fail_for_good)
{
  api_t a;
  srv_t s;
  ad_error_t err = {0};
  api_init(&a);
  a.status = 400;
  ASSERT_EQ(srv_start(&s, api_fn, &a), 0);
  void *b = make(s.port, NULL, &err);
  json_t *o = order(), *res = NULL;
  ASSERT_EQ(ad__order_backend_http.place(b, o, &res, &err), AD_EIO);
  ASSERT_EQ(a.requests, 1); /* a 4xx is not retried */
  ASSERT(strstr(err.message, "HTTP 400"));
  ASSERT(!strstr(err.message, SECRET));
  a.status = 0;
  a.no_id = 1;
  ASSERT_EQ(ad__order_backend_http.place(b, o, &res, &err), AD_EIO);
  ASSERT(strstr(err.message, "without an order id at /data/orderId"));
  a.no_id = 0;
  a.status = 503; /* retried until the tries run out: then AD_EAGAIN */
  a.requests = 0;
  ad__order_backend_http.destroy(b);
  b = make(s.port, ", \"retries\": 2", &err);
  ASSERT_EQ(ad__order_backend_http.place(b, o, &res, &err), AD_EAGAIN);
  ASSERT_EQ(a.requests, 3);
  ASSERT(strstr(err.message, "HTTP 503"));
  json_decref(o);
  ad__order_backend_http.destroy(b);
  srv_stop(&s);
  api_free(&a);
}

static void bad(const char *conf, const char *want)
{
  ad_error_t err = {0};
  json_t *c = json_loads(conf, 0, NULL);
  void *b = ad__order_backend_http.create(c, &err);
  json_decref(c);
  if (b || err.code != AD_ECONFIG || !strstr(err.message, want))
    fprintf(stderr, "  %s -> \"%s\", want \"%s\"\n", conf, err.message, want);
  ASSERT(!b);
  ASSERT(strstr(err.message, want));
  ASSERT(!strstr(err.message, "0123456789abcdefXYZ"));
}

TEST(bad_config_names_the_key)
{
  bad("{\"secret\": \"0123456789abcdefXYZ\"}", "purchase.backend.url: is required");
  bad("{\"url\": \"ftp://x/\", \"secret\": \"0123456789abcdefXYZ\"}", "purchase.backend.url");
  bad("{\"url\": \"http://x/\"}", "purchase.backend.secret: is required");
  bad("{\"url\": \"http://x/\", \"secret\": \"short\"}", "purchase.backend.secret");
  bad("{\"url\": \"http://x/\", \"secret\": \"0123456789abcdefXYZ\", \"retires\": 3}",
      "purchase.backend: unknown key \"retires\"");
  bad("{\"url\": \"http://x/\", \"secret\": \"0123456789abcdefXYZ\", \"method\": \"GET\"}",
      "purchase.backend.method");
  bad("{\"url\": \"http://x/\", \"secret\": \"0123456789abcdefXYZ\", \"headers\": {\"A\": \"b\\r\\nC: d\"}}",
      "purchase.backend.headers.A");
  bad("{\"url\": \"http://x/\", \"secret\": \"0123456789abcdefXYZ\", \"body\": [1]}",
      "purchase.backend.body");
  bad("{\"url\": \"http://x/\", \"secret\": \"0123456789abcdefXYZ\", \"order_id_pointer\": \"id\"}",
      "purchase.backend.order_id_pointer");
  bad("{\"url\": \"http://x/\", \"secret\": \"0123456789abcdefXYZ\", \"timeout_s\": 0}",
      "purchase.backend.timeout_s");
}

RUN(CASE(places_signed_with_key_in_header_and_body),
    CASE(retry_after_lost_answer_makes_no_second_order),
    CASE(api_down_is_eagain_within_the_timeout),
    CASE(refusal_and_answer_without_id_fail_for_good), CASE(bad_config_names_the_key))
