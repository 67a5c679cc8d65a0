/* test_config.c - the engine's configuration: every refusal names the key
 * and the reason, and every failure path of the constructor tears down what
 * it built (run under ASan by `make test-asan`, leak check on). No server is
 * needed: the MongoDB client connects lazily, and the bus only when run. */
#include <stdio.h>
#include <string.h>

#include "autodeploy/engine.h"
#include "harness.h"

/* A URI nothing listens on: the store is built, never reached. */
#define MONGO "\"mongo_uri\": \"mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=50\""

/* ad_engine_new refuses `conf` with `code` and a message containing each
 * of `want` (NULL-terminated). */
static int refused(const char *conf, int code, const char *const *want)
{
  ad_error_t err;
  memset(&err, 0, sizeof err);
  ad_engine_t *eng = ad_engine_new(conf, &err);
  if (eng) {
    fprintf(stderr, "  accepted: %s\n", conf);
    ad_engine_destroy(&eng);
    return 0;
  }
  int ok = err.code == code;
  for (int i = 0; want[i]; i++)
    ok = ok && strstr(err.message, want[i]) != NULL;
  if (!ok)
    fprintf(stderr, "  %s -> %d %s\n", conf, err.code, err.message);
  return ok;
}
#define REFUSED(conf, code, ...) \
  ASSERT(refused(conf, code, (const char *const[]){__VA_ARGS__, NULL}))

TEST(bad_type_names_the_key)
{
  REFUSED("{\"workers\": \"two\"}", AD_ECONFIG, "workers", "not an integer");
  REFUSED("{\"sock_dir\": [\"/run\"]}", AD_ECONFIG, "sock_dir", "wrong type", "array");
  REFUSED("{\"workers\": true}", AD_ECONFIG, "workers", "wrong type", "boolean");
  REFUSED("{\"ipc_mode\": \"udp\"}", AD_ECONFIG, "ipc_mode", "udp");
}

TEST(unknown_key_names_it)
{
  REFUSED("{\"wokers\": 2}", AD_ECONFIG, "unknown key", "wokers");
}

TEST(out_of_range_names_the_key_and_range)
{
  REFUSED("{\"workers\": 65}", AD_ECONFIG, "workers", "out of range", "0..64");
  REFUSED("{\"tcp_master_pub_port\": 0}", AD_ECONFIG, "tcp_master_pub_port", "1..65535");
}

TEST(not_an_object)
{
  REFUSED("{\"workers\": ", AD_ECONFIG, "engine configuration", "not JSON");
  REFUSED("[1]", AD_ECONFIG, "engine configuration", "object");
}

TEST(defaults_build_and_destroy)
{
  ad_error_t err;
  ad_engine_t *eng = ad_engine_new("{\"log_events\": \"salt/auth\"}", &err);
  ASSERT(eng != NULL);
  ASSERT(ad_engine_bus(eng) != NULL);
  char *s = ad_engine_stats_json(eng);
  ASSERT(s && strstr(s, "\"events\":0") && !strstr(s, "\"returns\""));
  ad_free(s);
  ad_engine_destroy(&eng);
  ASSERT(eng == NULL);
  ad_engine_destroy(&eng); /* NULL-safe */
  ad_engine_destroy(NULL);
}

/* Each stage of the constructor failing, after the ones before it built
 * something: ASan's leak check fails the run if a teardown forgets it. */
TEST(teardown_when_the_notifier_fails)
{
  REFUSED("{\"notify\": {\"bogus\": 1}, \"registry\": {}, \"placement\": {}}", AD_ECONFIG,
          "bogus");
}

TEST(teardown_when_the_store_fails)
{
  REFUSED("{\"mongo_uri\": \"not a uri\", \"registry\": {}, \"placement\": {}}", AD_ECONFIG,
          "mongo_uri");
  REFUSED("{" MONGO ", \"spool_dir\": \"/proc/autodeploy-test/spool\", \"placement\": {}}",
          AD_ECONFIG, "spool_dir");
}

TEST(teardown_when_the_bus_fails)
{
  REFUSED("{" MONGO ", \"returns\": \"off\", \"reconnect_min_ms\": 500, "
          "\"reconnect_max_ms\": 100, \"registry\": {}, \"placement\": {}}",
          AD_ECONFIG, "reconnect_min_ms");
}

TEST(teardown_when_the_registry_fails)
{
  /* the placement object was leaked on this path before */
  REFUSED("{" MONGO ", \"returns\": \"off\", \"registry\": {\"bogus\": 1}, \"placement\": {}}",
          AD_ECONFIG, "registry.", "bogus");
}

TEST(teardown_when_the_fleet_fails)
{
  REFUSED("{" MONGO ", \"returns\": \"off\", \"registry\": {\"enabled\": false}, "
          "\"placement\": {\"bogus\": 1}}",
          AD_ECONFIG, "placement.", "bogus");
}

/* a purchase loop whose DingTalk approval takes pushes */
#define PURCHASE_CB(aes)                                                                        \
  "\"purchase\": {\"profiles\": {\"p\": {\"flavour\": \"f\", \"cpu\": 8, \"mem_mb\": 8192, "       \
  "\"disk_gb\": 100}}, \"approval\": {\"dingtalk\": {\"app_key\": \"k\", \"app_secret\": \"s\", "  \
  "\"process_code\": \"P\", \"originator_user_id\": \"u\", \"callback\": {\"token\": \"t\", "      \
  "\"aes_key\": \"" aes "\"}}}}"
#define AES43 "BwkLDQ8RExUXGRsdHyEjJScpKy0vMTM1Nzk7PT9BQ0U"
#define HTTP "\"http\": {\"listen\": \"127.0.0.1:0\", \"reader_tokens\": [\"reader-token-0123456789\"]}"

TEST(a_dingtalk_callback_needs_the_http_server)
{
  /* the purchase loop is built, then the check refuses: torn down (ASan) */
  REFUSED("{" MONGO ", \"returns\": \"off\", \"placement\": {}, " PURCHASE_CB(AES43) "}",
          AD_ECONFIG, "purchase.approval.dingtalk.callback: needs the engine's http object");
  REFUSED("{" MONGO ", \"returns\": \"off\", \"placement\": {}, " HTTP ", " PURCHASE_CB("short") "}",
          AD_ECONFIG, "purchase.approval.dingtalk.callback.aes_key: must be the 43-character");
  ad_error_t err;
  ad_engine_t *eng = ad_engine_new("{" MONGO ", \"returns\": \"off\", \"placement\": {}, " HTTP
                                   ", " PURCHASE_CB(AES43) "}", &err);
  if (!eng)
    fprintf(stderr, "  %s\n", err.message);
  ASSERT(eng);
  ad_engine_destroy(&eng);
}

RUN(CASE(bad_type_names_the_key), CASE(unknown_key_names_it),
    CASE(out_of_range_names_the_key_and_range), CASE(not_an_object),
    CASE(defaults_build_and_destroy), CASE(teardown_when_the_notifier_fails),
    CASE(teardown_when_the_store_fails), CASE(teardown_when_the_bus_fails),
    CASE(teardown_when_the_registry_fails), CASE(teardown_when_the_fleet_fails),
    CASE(a_dingtalk_callback_needs_the_http_server))
