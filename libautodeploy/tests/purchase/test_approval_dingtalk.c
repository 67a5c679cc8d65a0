/* test_approval_dingtalk.c - DingTalk OA approval (approval_dingtalk.c)
 * against a loopback server that follows DingTalk's published v1.0 API:
 * POST /v1.0/oauth2/accessToken, POST /v1.0/workflow/processInstances
 * (x-acs-dingtalk-access-token), GET ...?processInstanceId=. It refuses a
 * wrong or expired token with HTTP 401 as DingTalk does. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "http_srv.h"
#include "core/redact.h"
#include "purchase/approval_dingtalk.h"
#include "purchase/notices.h"

typedef struct {
  pthread_mutex_t lock;
  int tokens_issued, creates, polls;
  char token[64];
  json_t *last_create;  /* the body of the last create */
  const char *status;   /* what a poll says */
  const char *result;
  int create_status;    /* answer create with this status when set */
} dt_t;

static int dt_fn(void *user, const srv_req_t *r, char *out, size_t n)
{
  dt_t *d = user;
  char tok[128];
  int st = 200;
  pthread_mutex_lock(&d->lock);
  srv_header(r, "x-acs-dingtalk-access-token", tok, sizeof tok);
  json_t *body = r->body_len ? json_loads(r->body, 0, NULL) : NULL;
  if (!strcmp(r->method, "POST") && !strcmp(r->target, "/v1.0/oauth2/accessToken")) {
    if (strcmp(json_string_value(json_object_get(body, "appKey")) ?: "", "dingkey") ||
        strcmp(json_string_value(json_object_get(body, "appSecret")) ?: "", "app-secret-xyz")) {
      st = 400;
      snprintf(out, n, "{\"code\": \"invalidClientIdOrSecret\", \"message\": \"bad app\"}");
    } else {
      snprintf(d->token, sizeof d->token, "tok-%d", ++d->tokens_issued);
      snprintf(out, n, "{\"accessToken\": \"%s\", \"expireIn\": 7200}", d->token);
    }
  } else if (!*tok || strcmp(tok, d->token)) {
    st = 401;
    snprintf(out, n, "{\"code\": \"InvalidAuthentication\", \"message\": \"token invalid\"}");
  } else if (!strcmp(r->method, "POST") && !strcmp(r->target, "/v1.0/workflow/processInstances")) {
    d->creates++;
    json_decref(d->last_create);
    d->last_create = json_incref(body);
    if (d->create_status) {
      st = d->create_status;
      snprintf(out, n, "{\"code\": \"busy\", \"message\": \"system busy\"}");
    } else {
      snprintf(out, n, "{\"instanceId\": \"inst-%d\"}", d->creates);
    }
  } else if (!strcmp(r->method, "GET") &&
             !strncmp(r->target, "/v1.0/workflow/processInstances?processInstanceId=inst-", 55)) {
    d->polls++;
    snprintf(out, n, "{\"success\": true, \"result\": {\"title\": \"t\", \"status\": \"%s\", "
             "\"result\": \"%s\", \"operationRecords\": [{\"userId\": \"starter\", \"type\": "
             "\"START_PROCESS_INSTANCE\", \"result\": \"NONE\"}, {\"userId\": \"boss01\", "
             "\"type\": \"EXECUTE_TASK_NORMAL\", \"result\": \"%s\"}]}}", d->status,
             d->result, !strcmp(d->result, "agree") ? "AGREE" : "REFUSE");
  } else {
    st = 404;
    snprintf(out, n, "{\"code\": \"notFound\", \"message\": \"%s %s\"}", r->method, r->target);
  }
  json_decref(body);
  pthread_mutex_unlock(&d->lock);
  return st;
}

static ad__dt_approval_t *make(int port, ad_error_t *err)
{
  char c[500];
  snprintf(c, sizeof c, "{\"base_url\": \"http://127.0.0.1:%d/\", \"app_key\": \"dingkey\", "
           "\"app_secret\": \"app-secret-xyz\", \"process_code\": \"PROC-ORDER-1\", "
           "\"originator_user_id\": \"ops01\", \"dept_id\": 42, "
           "\"form\": {\"order_id\": \"订单号\", \"flavour\": \"\"}}", port);
  json_t *conf = json_loads(c, 0, NULL);
  ad__dt_approval_t *a = ad__dt_approval_new(conf, err);
  json_decref(conf);
  return a;
}

static json_t *order(void)
{
  return json_pack("{s:s,s:s,s:s,s:i,s:[{s:s,s:i,s:f},{s:s,s:i,s:f}]}", "_id",
                   "aliyun-hz-20261204", "profile", "aliyun-hz", "flavour", "ecs.g7.2xlarge",
                   "count", 3, "platforms", "platform", "qq", "services", 7, "waited_hours", 26.0,
                   "platform", "wx", "services", 2, "waited_hours", 30.5);
}

static const char *form_value(const json_t *body, const char *name)
{
  size_t i;
  json_t *f;
  json_array_foreach(json_object_get(body, "formComponentValues"), i, f)
    if (!strcmp(json_string_value(json_object_get(f, "name")), name))
      return json_string_value(json_object_get(f, "value"));
  return NULL;
}

TEST(create_then_poll_until_decided)
{
  dt_t d = {.status = "RUNNING", .result = ""};
  srv_t s;
  ad_error_t err = {0};
  pthread_mutex_init(&d.lock, NULL);
  ASSERT_EQ(srv_start(&s, dt_fn, &d), 0);
  ad__dt_approval_t *a = make(s.port, &err);
  ASSERT(a);
  json_t *o = order();
  char *iid = NULL, *who = NULL;
  int rc = ad__dt_approval_create(a, o, &iid, &err);
  if (rc)
    fprintf(stderr, "  create: %s\n", err.message);
  ASSERT_EQ(rc, 0);
  ASSERT_STR(iid, "inst-1");
  const json_t *b = d.last_create;
  ASSERT_STR(json_string_value(json_object_get(b, "processCode")), "PROC-ORDER-1");
  ASSERT_STR(json_string_value(json_object_get(b, "originatorUserId")), "ops01");
  ASSERT_EQ(json_integer_value(json_object_get(b, "deptId")), 42);
  ASSERT_STR(form_value(b, "订单号"), "aliyun-hz-20261204"); /* renamed label */
  ASSERT_STR(form_value(b, "Hosts"), "3");
  ASSERT_STR(form_value(b, "Platforms"), "qq (7), wx (2)");
  ASSERT_STR(form_value(b, "Hours waited"), "30.5");
  ASSERT_STR(form_value(b, "Reason"), "qq: 7 services, waited 26 h; wx: 2 services, waited 30 h");
  ASSERT(!form_value(b, "Flavour")); /* left out by an empty label */
  ASSERT_EQ(ad__dt_approval_poll(a, iid, &who, &err), 0); /* still running */
  ASSERT(!who);
  d.status = "COMPLETED";
  d.result = "agree";
  ASSERT_EQ(ad__dt_approval_poll(a, iid, &who, &err), 1);
  ASSERT_STR(who, "boss01");
  free(who);
  d.result = "refuse";
  ASSERT_EQ(ad__dt_approval_poll(a, iid, &who, &err), 2);
  free(who);
  d.status = "TERMINATED";
  ASSERT_EQ(ad__dt_approval_poll(a, iid, NULL, &err), 2);
  ASSERT_EQ(d.tokens_issued, 1); /* one token, cached for every call */
  free(iid);
  json_decref(o);
  ad__dt_approval_destroy(&a);
  ASSERT(!a);
  srv_stop(&s);
  json_decref(d.last_create);
}

TEST(refused_token_is_renewed_once_and_errors_keep_secrets)
{
  dt_t d = {.status = "RUNNING", .result = ""};
  srv_t s;
  ad_error_t err = {0};
  pthread_mutex_init(&d.lock, NULL);
  ASSERT_EQ(srv_start(&s, dt_fn, &d), 0);
  ad__dt_approval_t *a = make(s.port, &err);
  json_t *o = order();
  char *iid = NULL;
  ASSERT_EQ(ad__dt_approval_create(a, o, &iid, &err), 0);
  free(iid);
  snprintf(d.token, sizeof d.token, "revoked"); /* DingTalk no longer takes ours */
  ASSERT_EQ(ad__dt_approval_poll(a, "inst-1", NULL, &err), 0);
  ASSERT_EQ(d.tokens_issued, 2);
  d.create_status = 503; /* busy: retry later */
  ASSERT_EQ(ad__dt_approval_create(a, o, &iid, &err), AD_EAGAIN);
  ASSERT(strstr(err.message, "HTTP 503"));
  d.create_status = 400;
  ASSERT_EQ(ad__dt_approval_create(a, o, &iid, &err), AD_EIO);
  ASSERT(!strstr(err.message, "app-secret-xyz") && !strstr(err.message, "tok-"));
  json_decref(o);
  ad__dt_approval_destroy(&a);
  srv_stop(&s);
  /* DingTalk down */
  a = make(srv_closed_port(), &err);
  o = order();
  ASSERT_EQ(ad__dt_approval_create(a, o, &iid, &err), AD_EAGAIN);
  json_decref(o);
  ad__dt_approval_destroy(&a);
  json_decref(d.last_create);
}

static void bad(const char *conf, const char *want)
{
  ad_error_t err = {0};
  json_t *c = json_loads(conf, 0, NULL);
  ad__dt_approval_t *a = ad__dt_approval_new(c, &err);
  json_decref(c);
  if (a || !strstr(err.message, want))
    fprintf(stderr, "  %s -> \"%s\", want \"%s\"\n", conf, err.message, want);
  ASSERT(!a);
  ASSERT_EQ(err.code, AD_ECONFIG);
  ASSERT(strstr(err.message, want));
}

TEST(bad_config_names_the_key)
{
  bad("{\"app_key\": \"k\", \"app_secret\": \"s\", \"originator_user_id\": \"u\"}",
      "purchase.approval.dingtalk.process_code: is required");
  bad("{\"app_secret\": \"s\", \"process_code\": \"P\", \"originator_user_id\": \"u\"}",
      "purchase.approval.dingtalk.app_key: is required");
  bad("{\"app_key\": \"k\", \"app_secret\": \"s\", \"process_code\": \"P\"}",
      "purchase.approval.dingtalk.originator_user_id: is required");
  bad("{\"app_key\": \"k\", \"app_secret\": \"s\", \"process_code\": \"P\", "
      "\"originator_user_id\": \"u\", \"form\": {\"colour\": \"x\"}}",
      "purchase.approval.dingtalk.form.colour: unknown field");
  bad("{\"app_key\": \"k\", \"app_secret\": \"s\", \"process_code\": \"P\", "
      "\"originator_user_id\": \"u\", \"timeout_s\": 0}", "purchase.approval.dingtalk.timeout_s");
  bad("{\"app_key\": \"k\", \"app_secret\": \"s\", \"process_code\": \"P\", "
      "\"originator_user_id\": \"u\", \"procss_code\": \"P\"}",
      "purchase.approval.dingtalk: unknown key \"procss_code\"");
}

#define CB_BASE "{\"app_key\": \"dingkey\", \"app_secret\": \"s\", \"process_code\": \"P\", " \
                "\"originator_user_id\": \"u\", \"callback\": "
#define AES43 "BwkLDQ8RExUXGRsdHyEjJScpKy0vMTM1Nzk7PT9BQ0U"

TEST(callback_keys_are_checked_and_named)
{
  bad(CB_BASE "{\"aes_key\": \"" AES43 "\"}}",
      "purchase.approval.dingtalk.callback.token: is required");
  bad(CB_BASE "{\"token\": \"t\", \"aes_key\": \"short\"}}",
      "purchase.approval.dingtalk.callback.aes_key: must be the 43-character EncodingAESKey");
  bad(CB_BASE "{\"token\": \"t\"}}", "purchase.approval.dingtalk.callback.aes_key: must be");
  bad(CB_BASE "{\"token\": \"t\", \"aes_key\": \"" AES43 "\", \"ownerkey\": \"x\"}}",
      "purchase.approval.dingtalk.callback: unknown key \"ownerkey\"");
  bad(CB_BASE "{\"token\": 5, \"aes_key\": \"" AES43 "\", \"owner_key\": [1]}}",
      "purchase.approval.dingtalk.callback.owner_key: wrong type");
  bad(CB_BASE "\"yes\"}", "purchase.approval.dingtalk.callback: must be an object");
  ad_error_t err = {0};
  json_t *c = json_loads(CB_BASE "{\"token\": \"t0k\", \"aes_key\": \"" AES43 "\"}}", 0, NULL);
  ad__dt_approval_t *a = ad__dt_approval_new(c, &err);
  json_decref(c);
  ASSERT(a);
  const ad__dt_crypto_t *cb = ad__dt_approval_callback(a);
  ASSERT(cb);
  ASSERT_STR(ad__dt_approval_process_code(a), "P");
  /* the owner key defaults to the app key: what is sealed for "dingkey" opens */
  ad__dt_crypto_t *sealer = ad__dt_crypto_new("t0k", AES43, "dingkey", "test", NULL);
  json_t *m = ad__dt_encrypted_map(sealer, "{\"EventType\":\"check_url\"}", "17", "n", NULL, NULL);
  char *msg = NULL;
  size_t len = 0;
  ASSERT_EQ(ad__dt_decrypt(cb, json_string_value(json_object_get(m, "msg_signature")), "17", "n",
                           json_string_value(json_object_get(m, "encrypt")), &msg, &len, &err), 0);
  ASSERT_STR(msg, "{\"EventType\":\"check_url\"}");
  free(msg);
  json_decref(m);
  ad__dt_crypto_destroy(&sealer);
  ad__dt_approval_destroy(&a);
  /* the token and the key are in the redaction set while the approval lives */
  c = json_loads(CB_BASE "{\"token\": \"tok-callback-7\", \"aes_key\": \"" AES43 "\"}}", 0, NULL);
  a = ad__dt_approval_new(c, &err);
  json_decref(c);
  ASSERT(a);
  char said[200] = "quoted: tok-callback-7 and " AES43;
  ASSERT_EQ(ad__redact(said), 2);
  ASSERT_STR(said, "quoted: *** and ***");
  ad__dt_approval_destroy(&a);
  snprintf(said, sizeof said, "quoted: tok-callback-7");
  ASSERT_EQ(ad__redact(said), 0); /* dropped with the approval */
  /* none configured: no crypto */
  c = json_loads("{\"app_key\": \"k\", \"app_secret\": \"s\", \"process_code\": \"P\", "
                 "\"originator_user_id\": \"u\"}", 0, NULL);
  a = ad__dt_approval_new(c, &err);
  json_decref(c);
  ASSERT(a && !ad__dt_approval_callback(a));
  ad__dt_approval_destroy(&a);
}

/* The robot-only case: the message says what is asked and how to answer. */
TEST(robot_text_says_how_to_approve)
{
  json_t *o = order();
  char *t = ad__order_robot_text(o, "https://salt.example.com:8000");
  ASSERT(t);
  ASSERT(strstr(t, "Approval asked: order aliyun-hz-20261204"));
  ASSERT(strstr(t, "Buy **3** host(s) of profile **aliyun-hz** (flavour ecs.g7.2xlarge)"));
  ASSERT(strstr(t, "Why: qq: 7 services, waited 26 h; wx: 2 services, waited 30 h"));
  ASSERT(strstr(t, "`salt-run autodeploy.approve aliyun-hz-20261204`"));
  ASSERT(strstr(t, "`salt-run autodeploy.reject aliyun-hz-20261204 reason=\"...\"`"));
  ASSERT(strstr(t, "curl -sS https://salt.example.com:8000/ "));
  ASSERT(strstr(t, "\"fun\": \"autodeploy.approve\", \"kwarg\": {\"id\": \"aliyun-hz-20261204\"}"));
  ASSERT(strstr(t, "buttons are links only"));
  free(t);
  json_decref(o);
}

RUN(CASE(create_then_poll_until_decided), CASE(refused_token_is_renewed_once_and_errors_keep_secrets),
    CASE(bad_config_names_the_key), CASE(callback_keys_are_checked_and_named),
    CASE(robot_text_says_how_to_approve))
