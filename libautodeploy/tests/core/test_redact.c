/* test_redact.c - core/redact: which parts of a URL, a header line or a
 * config table are secrets; that every message the library makes (ad__err,
 * ad__log) loses them whole, in clear, percent-encoded and JSON-escaped,
 * even when the message is cut; that the set counts its references. */
#include <stdlib.h>

#include "autodeploy.h"
#include "core/config.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "core/redact.h"
#include "harness.h"

/* `text` after redaction (static buffer). */
static const char *red(const char *text)
{
  static char buf[1024];
  snprintf(buf, sizeof buf, "%s", text);
  ad__redact(buf);
  return buf;
}

TEST(credential_names)
{
  const char *yes[] = {"access_token", "X-Api-Key", "Authorization", "sasl.password",
                       "client_secret", "sign", "PWD", "Cookie", "ssl.key.password", NULL};
  const char *no[] = {"timestamp", "authMechanism", "authSource", "X-Tenant", "user",
                      "sasl.username", "replicaSet", "", NULL};
  for (int i = 0; yes[i]; i++)
    ASSERT(ad__secret_name(yes[i]));
  for (int i = 0; no[i]; i++)
    ASSERT(!ad__secret_name(no[i]));
}

TEST(url_password_and_credential_query_values)
{
  const char *uri = "mongodb://autodeploy:pa%2Fss-word1@db1:27017,db2/?authSource=%24external"
                    "&authMechanism=PLAIN";
  const char *robot = "https://oapi.dingtalk.com/robot/send?access_token=tok-0123456789&x=keep";
  ad__secret_add(AD__SECRET_URL, uri);
  ad__secret_add(AD__SECRET_URL, robot);
  ASSERT_STR(red("Password \"pa%2Fss-word1\" and pa/ss-word1"), "Password \"***\" and ***");
  ASSERT_STR(red("POST /robot/send?access_token=tok-0123456789&x=keep"),
             "POST /robot/send?access_token=***&x=keep");
  /* the rest is not a secret: not blanked */
  ASSERT_STR(red("autodeploy PLAIN $external db1 keep"), "autodeploy PLAIN $external db1 keep");
  ad__secret_drop(AD__SECRET_URL, uri);
  ad__secret_drop(AD__SECRET_URL, robot);
  ASSERT_STR(red("pa/ss-word1 tok-0123456789"), "pa/ss-word1 tok-0123456789");
}

TEST(a_malformed_uri_still_gives_its_password)
{
  /* what libmongoc refuses, quoting the password */
  const char *uri = "mongodb://u:pw-Secret1:x@127.0.0.1:1/";
  ad__secret_add(AD__SECRET_URL, uri);
  ASSERT_STR(red("Password \"pw-Secret1:x\" must not"), "Password \"***\" must not");
  ad__secret_drop(AD__SECRET_URL, uri);
}

TEST(named_lines)
{
  ad__secret_add(AD__SECRET_NAMED, "Authorization: Bearer hook-0123456789");
  ad__secret_add(AD__SECRET_NAMED, "X-Tenant: games");
  ASSERT_STR(red("got Bearer hook-0123456789; token hook-0123456789; games"),
             "got ***; token ***; games");
  ad__secret_drop(AD__SECRET_NAMED, "Authorization: Bearer hook-0123456789");
  ad__secret_drop(AD__SECRET_NAMED, "X-Tenant: games");
  ASSERT_STR(red("hook-0123456789"), "hook-0123456789");
}

TEST(every_form_and_the_longest_first)
{
  ad__secret_add(AD__SECRET_VALUE, "a+b/c=\"q\"");
  ad__secret_add(AD__SECRET_VALUE, "abcd");
  ad__secret_add(AD__SECRET_VALUE, "xxabcdxx");
  ASSERT_STR(red("[a+b/c=\"q\"] [a%2Bb%2Fc%3D%22q%22] [a+b/c=\\\"q\\\"]"), "[***] [***] [***]");
  ASSERT_STR(red("xxabcdxx abcd"), "*** ***"); /* not "xx***xx" */
  ad__secret_drop(AD__SECRET_VALUE, "a+b/c=\"q\"");
  ad__secret_drop(AD__SECRET_VALUE, "abcd");
  ad__secret_drop(AD__SECRET_VALUE, "xxabcdxx");
}

TEST(counted_references_and_short_values)
{
  ad__secret_add(AD__SECRET_VALUE, "twice-added");
  ad__secret_add(AD__SECRET_VALUE, "twice-added");
  ad__secret_drop(AD__SECRET_VALUE, "twice-added");
  ASSERT_STR(red("twice-added"), "***");
  ad__secret_drop(AD__SECRET_VALUE, "twice-added");
  ASSERT_STR(red("twice-added"), "twice-added");
  ad__secret_add(AD__SECRET_VALUE, "abc"); /* too short: it would blank words */
  ASSERT_STR(red("abc"), "abc");
  ad__secret_drop(AD__SECRET_VALUE, "abc");
  ad__secret_drop(AD__SECRET_VALUE, "never-added"); /* harmless */
}

TEST(errors_are_rid_of_them_before_they_are_cut)
{
  const char *s = "S3cret-at-the-edge-0123456789";
  ad__secret_add(AD__SECRET_VALUE, s);
  char pad[300];
  memset(pad, '.', sizeof pad);
  pad[230] = '\0';
  ad_error_t err;
  ad__err(&err, AD_EIO, "test", "%s%s and more", pad, s);
  /* cut first, "S3cret-at" would have stayed at the end of the message */
  ASSERT(!strstr(err.message, "S3cret"));
  ASSERT(strstr(err.message, "***") != NULL);
  ad__err_errno(&err, AD_EIO, 2, "open %s", s);
  ASSERT_STR(err.message, "open ***: No such file or directory");
  ad__secret_drop(AD__SECRET_VALUE, s);
}

static char logged[2048];
static void on_log(ad_log_level_t level, const char *domain, const char *msg, void *user)
{
  snprintf(logged, sizeof logged, "%s", msg);
}

TEST(log_lines_are_rid_of_them)
{
  ad__secret_add(AD__SECRET_VALUE, "log-secret-42");
  ad_log_set_handler(on_log, NULL, AD_LOG_DEBUG);
  AD_LOG_W("test", "refused: %s", "log-secret-42");
  ad_log_set_handler(NULL, NULL, AD_LOG_INFO);
  ad__secret_drop(AD__SECRET_VALUE, "log-secret-42");
  ASSERT_STR(logged, "refused: ***");
}

typedef struct {
  char *password, *url, *name;
} conf_t;

TEST(config_tables_add_while_loaded)
{
  static const ad__config_key_t KEYS[] = {
      {"password", AD_CT_SECRET, offsetof(conf_t, password), 0, 0, "", NULL},
      {"url", AD_CT_STR, offsetof(conf_t, url), 0, 0, "", NULL},
      {"name", AD_CT_STR, offsetof(conf_t, name), 0, 0, "", NULL},
      {NULL, 0, 0, 0, 0, NULL, NULL}};
  json_t *obj = json_pack("{s:s,s:s,s:s}", "password", "smtp-pass-1", "url",
                          "smtp://robot:url-pass-2@mail:587", "name", "plain-name");
  conf_t c = {0};
  ASSERT(ad__config_load(KEYS, &c, obj, NULL) == 0);
  json_decref(obj);
  ASSERT_STR(red("smtp-pass-1 url-pass-2 plain-name robot"), "*** *** plain-name robot");
  ad__config_free(KEYS, &c);
  ASSERT_STR(red("smtp-pass-1 url-pass-2"), "smtp-pass-1 url-pass-2");
  /* a secret may be a number in YAML */
  obj = json_pack("{s:i}", "password", 12345678);
  ASSERT(ad__config_load(KEYS, &c, obj, NULL) == 0);
  json_decref(obj);
  ASSERT_STR(red("pin 12345678"), "pin ***");
  ad__config_free(KEYS, &c);
}

TEST(origin_only)
{
  char *o = ad__redact_origin("https://user:pw@example.com/robot/send?access_token=x");
  ASSERT(o != NULL);
  ASSERT_STR(o, "https://example.com:443");
  free(o);
  ASSERT(ad__redact_origin("not a url") == NULL);
}

RUN(CASE(credential_names), CASE(url_password_and_credential_query_values),
    CASE(a_malformed_uri_still_gives_its_password), CASE(named_lines),
    CASE(every_form_and_the_longest_first), CASE(counted_references_and_short_values),
    CASE(errors_are_rid_of_them_before_they_are_cut), CASE(log_lines_are_rid_of_them),
    CASE(config_tables_add_while_loaded), CASE(origin_only))
