/* test_approval_callback.c - DingTalk's push as the purchase loop takes it
 * (approval_callback.c), every path that needs no store: a bad signature
 * (403), another owner key (403), a body that is not {"encrypt"} or does
 * not decrypt (400), each counted; the URL check, a start event and an
 * event of another approval form answered with the encrypted "success",
 * which opens with the same keys; the query's parameter aliases. The paths
 * that move an order (with MongoDB) are in tests/test_purchase_callback.py. */
#include <jansson.h>
#include <string.h>

#include "harness.h"
#include "purchase/dingtalk_crypto.h"
#include "purchase/purchase.h"

#define TOKEN "tok-autodeploy-7"
#define AES_KEY "BwkLDQ8RExUXGRsdHyEjJScpKy0vMTM1Nzk7PT9BQ0U"

static ad__purchase_t *loop(void)
{
  json_t *conf = json_pack(
      "{s:s,s:{s:{s:s,s:i,s:i,s:i}},s:{s:{s:s,s:s,s:s,s:s,s:{s:s,s:s}}}}", "timezone", "UTC",
      "profiles", "big", "flavour", "f", "cpu", 8, "mem_mb", 8192, "disk_gb", 100, "approval",
      "dingtalk", "app_key", "dingappkey123", "app_secret", "s", "process_code", "PROC-AUTODEPLOY",
      "originator_user_id", "sre-1", "callback", "token", TOKEN, "aes_key", AES_KEY);
  ad__purchase_env_t env = {0}; /* no store: only paths that need none */
  ad_error_t err = {0};
  ad__purchase_t *p = ad__purchase_new(&env, conf, &err);
  if (!p)
    fprintf(stderr, "  purchase: %s\n", err.message);
  json_decref(conf);
  return p;
}

/* A push of `event` as DingTalk makes it, sealed for `owner`; `forge`
 * spoils the signature. Returns the status; *answer is the engine's. */
static unsigned push(ad__purchase_t *p, const char *owner, const char *event, int forge,
                     int aliases, json_t **answer)
{
  ad__dt_crypto_t *c = ad__dt_crypto_new(TOKEN, AES_KEY, owner, "test", NULL);
  json_t *m = ad__dt_encrypted_map(c, event, "1700000000123", "nonce-1", NULL, NULL);
  char sig[41];
  snprintf(sig, sizeof sig, "%s", json_string_value(json_object_get(m, "msg_signature")));
  if (forge)
    sig[0] = sig[0] == 'a' ? 'b' : 'a';
  json_t *q = aliases ? json_pack("{s:s,s:s,s:s}", "signature", sig, "timeStamp", "1700000000123",
                                  "nonce", "nonce-1")
                      : json_pack("{s:s,s:s,s:s}", "msg_signature", sig, "timestamp",
                                  "1700000000123", "nonce", "nonce-1");
  json_t *b = json_pack("{s:O}", "encrypt", json_object_get(m, "encrypt"));
  char *body = json_dumps(b, 0);
  json_decref(b);
  unsigned st = ad__purchase_dt_callback(p, "127.0.0.1", q, body, strlen(body), answer);
  free(body);
  json_decref(q);
  json_decref(m);
  ad__dt_crypto_destroy(&c);
  return st;
}

static json_int_t counter(ad__purchase_t *p, const char *name)
{
  json_t *s = ad__purchase_stats_json(p);
  json_int_t v = json_integer_value(json_object_get(s, name));
  json_decref(s);
  return v;
}

/* the answer is the encrypted map of "success", under our keys */
static int says_success(const json_t *a)
{
  ad__dt_crypto_t *c = ad__dt_crypto_new(TOKEN, AES_KEY, "dingappkey123", "test", NULL);
  char *msg = NULL;
  size_t len = 0;
  int rc = ad__dt_decrypt(c, json_string_value(json_object_get(a, "msg_signature")),
                          json_string_value(json_object_get(a, "timeStamp")),
                          json_string_value(json_object_get(a, "nonce")),
                          json_string_value(json_object_get(a, "encrypt")), &msg, &len, NULL);
  int ok = rc == 0 && !strcmp(msg, "success") && json_object_size(a) == 4;
  free(msg);
  ad__dt_crypto_destroy(&c);
  return ok;
}

TEST(forged_and_unreadable_pushes_are_refused_and_counted)
{
  ad__purchase_t *p = loop();
  ASSERT(p);
  ASSERT(ad__purchase_dt_callback_on(p));
  json_t *a = NULL;
  const char *ev = "{\"EventType\":\"bpms_instance_change\",\"processInstanceId\":\"inst-1\","
                   "\"processCode\":\"PROC-AUTODEPLOY\",\"type\":\"finish\",\"result\":\"agree\"}";
  ASSERT_EQ(push(p, "dingappkey123", ev, 1, 0, &a), 403);
  ASSERT(strstr(json_string_value(json_object_get(a, "reason")), "signature does not match"));
  ASSERT_EQ(json_integer_value(json_object_get(a, "status")), 403);
  json_decref(a);
  ASSERT_EQ(push(p, "another-app", ev, 0, 0, &a), 403);
  ASSERT(strstr(json_string_value(json_object_get(a, "reason")), "another owner key"));
  json_decref(a);
  json_t *q = json_pack("{s:s,s:s,s:s}", "msg_signature", "x", "timestamp", "1", "nonce", "n");
  ASSERT_EQ(ad__purchase_dt_callback(p, "127.0.0.1", q, "{\"encrypted\": 1}", 16, &a), 400);
  ASSERT(strstr(json_string_value(json_object_get(a, "reason")), "not {\"encrypt\""));
  json_decref(a);
  ASSERT_EQ(ad__purchase_dt_callback(p, "127.0.0.1", q, "not json", 8, &a), 400);
  json_decref(a);
  json_decref(q);
  /* authentic, but the message inside is no JSON object */
  ASSERT_EQ(push(p, "dingappkey123", "[1, 2]", 0, 0, &a), 400);
  ASSERT(strstr(json_string_value(json_object_get(a, "reason")), "not a JSON object"));
  json_decref(a);
  ASSERT_EQ(counter(p, "callbacks_refused"), 5);
  ASSERT_EQ(counter(p, "callbacks"), 0);
  ASSERT_EQ(counter(p, "callbacks_decided"), 0);
  ad__purchase_destroy(&p);
}

TEST(what_decides_nothing_is_answered_success)
{
  ad__purchase_t *p = loop();
  json_t *a = NULL;
  ASSERT_EQ(push(p, "dingappkey123", "{\"EventType\":\"check_url\"}", 0, 0, &a), 200);
  ASSERT(says_success(a));
  json_decref(a);
  /* the SDK's other parameter names */
  ASSERT_EQ(push(p, "dingappkey123", "{\"EventType\":\"check_url\"}", 0, 1, &a), 200);
  ASSERT(says_success(a));
  json_decref(a);
  ASSERT_EQ(push(p, "dingappkey123", "{\"EventType\":\"bpms_instance_change\",\"processInstanceId\":"
                 "\"inst-1\",\"processCode\":\"PROC-AUTODEPLOY\",\"type\":\"start\"}", 0, 0, &a), 200);
  ASSERT(says_success(a));
  json_decref(a);
  ASSERT_EQ(push(p, "dingappkey123", "{\"EventType\":\"bpms_instance_change\",\"processInstanceId\":"
                 "\"inst-9\",\"processCode\":\"PROC-LEAVE\",\"type\":\"finish\",\"result\":\"agree\"}",
                 0, 0, &a), 200); /* another form's approval */
  ASSERT(says_success(a));
  json_decref(a);
  ASSERT_EQ(push(p, "dingappkey123", "{\"EventType\":\"user_add_org\"}", 0, 0, &a), 200);
  json_decref(a);
  ASSERT_EQ(counter(p, "callbacks"), 5);
  ASSERT_EQ(counter(p, "callbacks_refused"), 0);
  ad__purchase_destroy(&p);
}

RUN(CASE(forged_and_unreadable_pushes_are_refused_and_counted),
    CASE(what_decides_nothing_is_answered_success))
