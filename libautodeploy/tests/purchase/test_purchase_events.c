/* test_purchase_events.c - the purchase loop's bus events (purchase.c)
 * on the paths that need no store: a tag that names no order
 * (autodeploy/order//approve, an id of 200 bytes or more) is refused and
 * counted in purchase.refused_unsigned, as every refusal is; it was
 * refused with no counter and no log line (found by fuzz/fuzz_events.c).
 * The paths that move an order are in tests/test_purchase.py and the
 * event fuzz target. */
#include <jansson.h>
#include <string.h>

#include "harness.h"
#include "purchase/purchase.h"

static json_int_t refused_unsigned(ad__purchase_t *p)
{
  json_t *s = ad__purchase_stats_json(p);
  json_int_t n = json_integer_value(json_object_get(s, "refused_unsigned"));
  json_decref(s);
  return n;
}

static int handle(ad__purchase_t *p, const char *tag, int placed)
{
  ad_event_t *ev = ad_event_new(tag, strlen(tag), "\x80", 1, NULL);
  int rc = placed ? ad__purchase_on_placed(p, ev) : ad__purchase_on_decision(p, ev);
  ad_event_destroy(&ev);
  return rc;
}

TEST(a_tag_without_an_order_id_is_refused_and_counted)
{
  json_t *conf = json_pack("{s:s,s:{s:{s:s,s:i,s:i,s:i}}}", "timezone", "UTC", "profiles", "big",
                           "flavour", "f", "cpu", 8, "mem_mb", 8192, "disk_gb", 100);
  ad__purchase_env_t env = {0}; /* no store: only paths that need none */
  ad_error_t err = {0};
  ad__purchase_t *p = ad__purchase_new(&env, conf, &err);
  json_decref(conf);
  ASSERT(p != NULL);
  char longtag[400];
  memset(longtag, 'a', sizeof longtag);
  memcpy(longtag, "autodeploy/order/", 17);
  strcpy(longtag + 300, "/approve");
  int rc[3] = {handle(p, "autodeploy/order//approve", 0), handle(p, "autodeploy/order//placed", 1),
               handle(p, longtag, 0)};
  json_int_t n = refused_unsigned(p);
  ad__purchase_destroy(&p);
  ASSERT(rc[0] == 1 && rc[1] == 1 && rc[2] == 1);
  ASSERT_EQ(n, 3);
}

RUN(CASE(a_tag_without_an_order_id_is_refused_and_counted))
