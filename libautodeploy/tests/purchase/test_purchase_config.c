/* test_purchase_config.c - the purchase object: defaults, the preference
 * order, the flavours table, and every refusal naming its key. */
#include "harness.h"
#include "purchase/config.h"

static int load(const char *text, ad__purchase_conf_t *c, ad_error_t *err)
{
  json_error_t je;
  json_t *o = json_loads(text, 0, &je);
  if (!o) {
    fprintf(stderr, "  bad JSON in test: %s\n", je.text);
    return -99;
  }
  int rc = ad__purchase_conf_load(o, NULL, c, err);
  json_decref(o);
  return rc;
}

#define P1 "\"p1\":{\"flavour\":\"ecs.c7.2xlarge\",\"cpu\":8,\"mem_mb\":16384,\"disk_gb\":100}"

TEST(defaults)
{
  ad__purchase_conf_t c;
  ad_error_t err;
  ASSERT_EQ(load("{\"profiles\":{" P1 "}}", &c, &err), 0);
  ASSERT_EQ(c.enabled, 1);
  ASSERT_EQ(c.hh, 4);
  ASSERT_EQ(c.mm, 0);
  ASSERT_EQ(c.manual, 0);
  ASSERT_STR(c.timezone, "UTC");
  ASSERT_EQ(c.approval_required, 1);
  ASSERT(c.approval_timeout_h == 24);
  ASSERT_EQ(c.cap_day, -1);
  ASSERT_STR(json_string_value(json_object_get(c.backend, "type")), "none");
  ASSERT(c.partner_mail == NULL);
  ASSERT_EQ(c.unfulfilled_alert_days, 14);
  ASSERT_STR(c.collection, "orders");
  ASSERT_EQ(c.n_profiles, 1);
  ASSERT_EQ(c.profiles[0].cap_day, -1);
  ASSERT(c.profiles[0].capacity.mem == 16384);
  ad__purchase_conf_free(&c);
}

TEST(preference_then_the_rest_by_name)
{
  ad__purchase_conf_t c;
  ad_error_t err;
  ASSERT_EQ(load("{\"time\":\"03:30\",\"timezone\":\"Asia/Shanghai\",\"preference\":[\"z\"],"
                 "\"flavours\":{\"f\":{\"cpu\":4,\"mem_mb\":8192,\"disk_gb\":40}},"
                 "\"profiles\":{\"b\":{\"flavour\":\"f\"},\"z\":{\"flavour\":\"f\",\"cap_day\":3},"
                 "\"a\":{\"flavour\":\"f\",\"region\":\"cn-hangzhou\"}},"
                 "\"caps\":{\"day\":10,\"month\":100},\"approval\":{\"required\":false}}",
                 &c, &err),
            0);
  ASSERT_EQ(c.n_profiles, 3);
  ASSERT_STR(c.profiles[0].name, "z");
  ASSERT_STR(c.profiles[1].name, "a");
  ASSERT_STR(c.profiles[2].name, "b");
  ASSERT_EQ(c.profiles[0].cap_day, 3);
  ASSERT_STR(c.profiles[1].region, "cn-hangzhou");
  ASSERT(c.profiles[2].capacity.cpu == 4);
  ASSERT_EQ(c.cap_day, 10);
  ASSERT_EQ(c.cap_month, 100);
  ASSERT_EQ(c.approval_required, 0);
  ASSERT_EQ(c.hh * 60 + c.mm, 210);
  ad__purchase_conf_free(&c);
}

TEST(time_manual_means_no_daily_run)
{
  ad__purchase_conf_t c;
  ad_error_t err;
  ASSERT_EQ(load("{\"time\":\"manual\",\"profiles\":{" P1 "}}", &c, &err), 0);
  ASSERT_EQ(c.manual, 1);
  ad__purchase_conf_free(&c);
  ASSERT(load("{\"time\":\"Manual\",\"profiles\":{" P1 "}}", &c, &err) != 0);
  ASSERT(strstr(err.message, "purchase.time: must be \"HH:MM\"") && strstr(err.message, "\"manual\""));
}

/* Each bad configuration is refused with an error naming this key. */
static const struct {
  const char *json, *key;
} BAD[] = {
    {"{\"profiles\":{\"p1\":{\"flavour\":\"nope\"}}}", "purchase.profiles.p1.flavour: unknown flavour nope"},
    {"{\"profiles\":{" P1 "},\"preference\":[\"p2\"]}", "purchase.preference[0]: unknown profile p2"},
    {"{\"profiles\":{\"p1\":{\"flavour\":\"f\",\"cpu\":8,\"mem_mb\":1,\"disk_gb\":1,\"cap_day\":-1}}}",
     "purchase.profiles.p1.cap_day"},
    {"{\"profiles\":{" P1 "},\"caps\":{\"month\":-5}}", "purchase.caps.month"},
    {"{\"profiles\":{" P1 "},\"approval\":{\"dingtalk\":{\"app_key\":\"k\"}}}",
     "purchase.approval.dingtalk.process_code"},
    {"{\"profiles\":{" P1 "},\"time\":\"25:00\"}", "purchase.time"},
    {"{\"profiles\":{" P1 "},\"timezone\":\"Mars/Base\"}", "purchase.timezone"},
    {"{\"profiles\":{" P1 "},\"timezone\":\"../../etc/passwd\"}", "purchase.timezone"},
    {"{\"profiles\":{}}", "purchase.profiles"},
    {"{\"profiles\":{\"p1\":{\"cpu\":8}}}", "purchase.profiles.p1.flavour"},
    {"{\"profiles\":{\"p1\":{\"flavour\":\"f\",\"cpu\":0,\"mem_mb\":1,\"disk_gb\":1}}}",
     "purchase.profiles.p1.cpu"},
    {"{\"profiles\":{\"p1\":{\"flavour\":\"f\",\"cpu\":8,\"mem_mb\":1}}}", "purchase.profiles.p1.disk_gb"},
    {"{\"profiles\":{" P1 "},\"capz\":{}}", "purchase.capz: unknown key"},
    {"{\"profiles\":{\"p1\":{\"flavour\":\"f\",\"cpus\":8}}}", "purchase.profiles.p1.cpus: unknown key"},
    {"{\"profiles\":{" P1 "},\"approval\":{\"timeout_h\":0}}", "purchase.approval.timeout_h"},
    {"{\"profiles\":{" P1 "},\"approval\":{\"required\":\"yes\"}}", "purchase.approval.required"},
    {"{\"profiles\":{" P1 "},\"unfulfilled_alert_days\":0}", "purchase.unfulfilled_alert_days"},
    {"{\"profiles\":{" P1 "},\"backend\":\"http\"}", "purchase.backend"},
    {"{\"profiles\":{" P1 "},\"enabled\":1}", "purchase.enabled"},
};

TEST(refusals_name_the_key)
{
  for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
    ad__purchase_conf_t c;
    ad_error_t err = {0};
    int rc = load(BAD[i].json, &c, &err);
    if (rc != AD_ECONFIG || !strstr(err.message, BAD[i].key)) {
      fprintf(stderr, "  case %zu: rc %d, message \"%s\", wanted \"%s\"\n", i, rc, err.message,
              BAD[i].key);
      ASSERT(0);
    }
  }
}

RUN(CASE(defaults), CASE(preference_then_the_rest_by_name), CASE(time_manual_means_no_daily_run),
    CASE(refusals_name_the_key))
