/* test_plan_input.c - the plan's input assembled from documents as MongoDB
 * returns them: services and their platforms' lists, hours waited, pending
 * hosts of open orders, what counts against today's and this month's caps;
 * and a plan over it (the report's numbers an operator reads). */
#include "harness.h"
#include "purchase/plan_input.h"

static const char *CONF =
    "{\"timezone\":\"UTC\",\"preference\":[\"small\",\"big\"],"
    "\"profiles\":{\"small\":{\"flavour\":\"s4\",\"cpu\":4,\"mem_mb\":8192,\"disk_gb\":100,\"cap_day\":3},"
    "\"big\":{\"flavour\":\"b16\",\"cpu\":16,\"mem_mb\":65536,\"disk_gb\":400}},"
    "\"caps\":{\"month\":10}}";

static const char *SERVICES =
    "[{\"_id\":\"a-s1\",\"platform\":\"a\",\"footprint\":{\"cpu\":2,\"mem_mb\":1024},"
    "  \"reason\":\"no host fits\",\"state_changed_at\":\"2026-12-04T00:00:00Z\"},"
    " {\"_id\":\"a-s2\",\"platform\":\"a\",\"footprint\":{\"cpu\":2,\"mem_mb\":1024},"
    "  \"reason\":\"no host fits\",\"created_at_ms\":1796342400000},"
    " {\"_id\":\"b-s1\",\"platform\":\"b\",\"footprint\":{\"cpu\":8,\"mem_mb\":4096}},"
    " {\"_id\":\"x-s1\",\"platform\":\"gone\",\"footprint\":{\"cpu\":1,\"mem_mb\":1}}]";

static const char *PLATFORMS =
    "[{\"_id\":\"a\",\"profiles\":[\"small\",\"big\"],\"regions\":[]},"
    " {\"_id\":\"b\",\"profiles\":[\"big\"]}]";

static const char *ORDERS =
    "[{\"_id\":\"small-20261205\",\"profile\":\"small\",\"day\":\"20261205\",\"state\":\"awaiting_approval\",\"count\":2},"
    " {\"_id\":\"big-20261203\",\"profile\":\"big\",\"day\":\"20261203\",\"state\":\"partner_notified\",\"count\":3,\"arrived\":[\"h1\"]},"
    " {\"_id\":\"big-20261202\",\"profile\":\"big\",\"day\":\"20261202\",\"state\":\"rejected\",\"count\":7},"
    " {\"_id\":\"big-20261130\",\"profile\":\"big\",\"day\":\"20261130\",\"state\":\"ordered\",\"count\":4}]";

TEST(input_from_documents)
{
  ad__purchase_conf_t c;
  ad_error_t err;
  json_t *conf = json_loads(CONF, 0, NULL), *svcs = json_loads(SERVICES, 0, NULL),
         *plats = json_loads(PLATFORMS, 0, NULL), *orders = json_loads(ORDERS, 0, NULL);
  ASSERT(conf && svcs && plats && orders);
  ASSERT_EQ(ad__purchase_conf_load(conf, NULL, &c, &err), 0);
  ad__plan_input_t in;
  int64_t now = 1796428800000; /* 2026-12-05T00:00Z */
  ASSERT_EQ(ad__plan_input_build(&c, 0.8, svcs, plats, orders, "20261205", now, &in, &err), 0);
  ASSERT_EQ(in.n_waiting, 3);
  ASSERT_EQ(in.skipped, 1); /* platform "gone" */
  ASSERT_STR(in.waiting[0].service, "a-s1");
  ASSERT_EQ(in.waiting[0].n_profiles, 2);
  ASSERT_STR(in.waiting[0].profiles[1], "big");
  ASSERT_EQ(in.waiting[0].n_regions, 0);
  ASSERT(in.waiting[0].waited_hours == 24);
  ASSERT(in.waiting[1].waited_hours == 24);  /* from created_at_ms */
  ASSERT(in.waiting[2].waited_hours == 0);   /* nothing says since when */
  ASSERT(in.waiting[2].need.cpu == 8);
  ASSERT_STR(in.waiting[2].profiles[0], "big");
  /* pending: the awaiting order's 2, the notified order's 3 - 1 arrived + 4 */
  ASSERT_EQ(in.profiles[0].pending, 2);
  ASSERT_EQ(in.profiles[1].pending, 6);
  /* caps: today's small order; this month: the rejected one does not count,
   * November's does not either */
  ASSERT_EQ(in.profiles[0].ordered_day, 2);
  ASSERT_EQ(in.req.ordered_day, 2);
  ASSERT_EQ(in.req.ordered_month, 5);
  ASSERT_EQ(in.profiles[1].ordered_month, 3);
  ASSERT_EQ(in.req.cap_month, 10);
  ASSERT(in.req.headroom == 0.8);

  ad__buy_plan_t plan;
  ASSERT_EQ(ad__buy_plan(in.waiting, in.n_waiting, &in.req, &plan, &err), 0);
  ASSERT_EQ(plan.n_lines, 2);
  ASSERT_EQ(plan.lines[0].packed, 2);  /* 2-core services on 3.2 usable cores */
  ASSERT_EQ(plan.lines[0].pending, 2); /* already awaiting approval */
  ASSERT_EQ(plan.lines[0].to_order, 0);
  ASSERT_EQ(plan.lines[1].packed, 1);
  ASSERT_EQ(plan.lines[1].to_order, 0); /* 6 pending */
  ad__buy_plan_free(&plan);
  ad__plan_input_free(&in);
  ad__purchase_conf_free(&c);
  json_decref(conf);
  json_decref(svcs);
  json_decref(plats);
  json_decref(orders);
}

TEST(outstanding_and_caps)
{
  json_t *o = json_loads("{\"state\":\"ordered\",\"count\":3,\"arrived\":[\"a\",\"b\",\"c\",\"d\"]}", 0, NULL);
  ASSERT_EQ(ad__order_outstanding(o), 0);
  json_object_set_new(o, "arrived", json_array());
  ASSERT_EQ(ad__order_outstanding(o), 3);
  json_object_set_new(o, "state", json_string("fulfilled"));
  ASSERT_EQ(ad__order_outstanding(o), 0);
  ASSERT(ad__order_counts_for_caps(o));
  json_object_set_new(o, "state", json_string("expired"));
  ASSERT(!ad__order_counts_for_caps(o));
  json_decref(o);
}

RUN(CASE(input_from_documents), CASE(outstanding_and_caps))
