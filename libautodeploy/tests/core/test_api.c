/* test_api.c - the public API's promises that span modules (docs/api.md):
 * every constructor says why it failed through an ad_error_t; no jansson
 * in the public headers. */
#include "autodeploy.h"
#include "harness.h"

/* The public headers do not pull in jansson: its types are not part of the
 * API (autodeploy.pc lists it as Requires.private only). */
#ifdef JANSSON_H
#error "autodeploy.h includes jansson.h"
#endif

TEST(decoder_new_names_a_bad_framing)
{
  ad_error_t err = {0};
  ASSERT(ad_decoder_new(0, (ad_framing_t)7, &err) == NULL);
  ASSERT_EQ(err.code, AD_EINVAL);
  ASSERT_STR(err.domain, "frame");
  ASSERT(strstr(err.message, "framing 7") != NULL);
  ASSERT(ad_decoder_new(0, (ad_framing_t)7, NULL) == NULL); /* err optional */
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_LENGTH, &err);
  ASSERT(d != NULL);
  ad_decoder_destroy(&d);
  ASSERT(d == NULL);
}

TEST(event_new_names_a_null_with_a_length)
{
  ad_error_t err = {0};
  ASSERT(ad_event_new(NULL, 3, "", 0, &err) == NULL);
  ASSERT_EQ(err.code, AD_EINVAL);
  ASSERT_STR(err.domain, "event");
  ASSERT(strstr(err.message, "NULL tag") != NULL);
  ASSERT(ad_event_new("t", 1, NULL, 5, &err) == NULL);
  ASSERT(strstr(err.message, "NULL data") != NULL);
  ad_event_t *ev = ad_event_new("t", 1, NULL, 0, &err);
  ASSERT(ev != NULL);
  ASSERT_STR(ad_event_tag(ev), "t");
  ad_event_destroy(&ev);
}

TEST(other_constructors_fill_err)
{
  ad_error_t err = {0};
  ASSERT(ad_event_parse("no separator", 12, &err) == NULL);
  ASSERT_EQ(err.code, AD_EFRAME);
  memset(&err, 0, sizeof err);
  ASSERT(ad_notifier_new("{\"channels\": [{\"type\": \"pager\"}]}", &err) == NULL);
  ASSERT(err.code != 0 && err.message[0]);
  memset(&err, 0, sizeof err);
  ASSERT(ad_engine_new("{\"no_such_key\": 1}", &err) == NULL);
  ASSERT(err.code != 0 && strstr(err.message, "no_such_key") != NULL);
}

/* Every domain fits ad_error_t.domain whole (the check in check_api.py
 * keeps the library's domains inside this list). */
TEST(domains_fit_the_error_struct)
{
  ad_error_t err;
  size_t n = 0;
#define XX(name, text, what) \
  ASSERT(sizeof(text) <= sizeof err.domain); \
  n++;
  AD_DOMAIN_MAP(XX)
#undef XX
  ASSERT(n > 0);
}

RUN(CASE(decoder_new_names_a_bad_framing), CASE(domains_fit_the_error_struct),
    CASE(event_new_names_a_null_with_a_length), CASE(other_constructors_fill_err))
