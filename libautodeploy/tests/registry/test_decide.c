/* test_decide.c - the registration decision table (classify.c): the records
 * the store holds, the facts just read, the time and the config in; one
 * action out. Every case of docs/registration.md, with no store: the
 * function does no I/O. Applying the action against MongoDB is
 * tests/test_registry.py's. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "registry/registry_private.h"

#define NOW 1800000000000LL
#define FP "aa:bb"
#define KEY "aliyun:cn-hangzhou:game-4c8g:10.1.2.3"

static const ad__reg_conf_t CONF = {.takeover_after = 3600};

/* the facts hostinfo.c gives for minion m1 */
static json_t *facts(void)
{
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:i,s:i}}", "minion", "m1", "key", KEY, "private_ip",
                   "10.1.2.3", "ip_rule", "first RFC 1918 address", "machine_id",
                   "3d1219c7c4c5404aaa1f6d2a48adfda4", "capacity", "cpu", 4, "mem_mb", 7680);
}

/* the stored document for those facts: held by `minion`, in `state`, last
 * seen `age_s` ago */
static json_t *host(const char *minion, const char *state, int64_t age_s)
{
  json_t *d = facts();
  json_object_del(d, "key");
  json_object_set_new(d, "_id", json_string(KEY));
  json_object_set_new(d, "minion", json_string(minion));
  json_object_set_new(d, "state", json_string(state));
  json_object_set_new(d, "key_fingerprint", json_string(FP));
  json_object_set_new(d, "last_seen_ms", json_integer(NOW - age_s * 1000));
  json_object_set_new(d, "rev", json_integer(7));
  return d;
}

/* classify with by_key / prev (borrowed), the holder's key accepted or not */
static ad__reg_decision_t run(const json_t *by_key, const json_t *prev, int holder_key,
                              const char *why, const json_t *f)
{
  ad__reg_records_t r = {by_key, prev, holder_key};
  ad__reg_decision_t d;
  ad__registry_classify(&r, f, FP, why, NOW, &CONF, &d);
  return d;
}

static ad__reg_decision_t run1(const json_t *by_key, const json_t *prev, int holder_key,
                               const char *why)
{
  json_t *f = facts();
  ad__reg_decision_t d = run(by_key, prev, holder_key, why, f);
  json_decref(f);
  return d;
}

TEST(new_host)
{
  ad__reg_decision_t d = run1(NULL, NULL, 1, "minion start");
  ASSERT_STR(ad__reg_action_name(d.action), "new");
  ASSERT_STR(d.cause, "minion m1 registered (minion start; " KEY ", ip rule: first RFC 1918 address)");
}

TEST(same_minion_new_address_moves)
{
  json_t *prev = host("m1", "ready", 5);
  json_object_set_new(prev, "_id", json_string("aliyun:cn-hangzhou:game-4c8g:10.1.2.9"));
  json_object_set_new(prev, "private_ip", json_string("10.1.2.9"));
  ad__reg_decision_t d = run1(NULL, prev, 1, "minion start");
  ASSERT_STR(ad__reg_action_name(d.action), "move");
  ASSERT(d.reinstall == NULL);
  ASSERT(strstr(d.cause, "minion m1 moved from aliyun:cn-hangzhou:game-4c8g:10.1.2.9 (10.1.2.9) to "
                         KEY " (10.1.2.3)"));
  /* moved and reinstalled at once: the move says so, and init runs again */
  json_object_set_new(prev, "key_fingerprint", json_string("cc:dd"));
  d = run1(NULL, prev, 1, "minion start");
  ASSERT_EQ(d.action, AD__REG_MOVE);
  ASSERT_STR(d.reinstall, "minion key changed");
  ASSERT(strstr(d.cause, "; minion key changed"));
  json_decref(prev);
}

TEST(same_host_restart_is_seen)
{
  json_t *h = host("m1", "ready", 5);
  ad__reg_decision_t d = run1(h, NULL, 1, "minion start");
  ASSERT_STR(ad__reg_action_name(d.action), "seen");
  ASSERT_STR(d.cause, "minion m1 seen (minion start): no change needed");
  /* a periodic look with nothing new: no revision, no history */
  ASSERT_EQ(run1(h, NULL, 1, "reconcile").action, AD__REG_UNCHANGED);
  ASSERT_EQ(run1(h, NULL, 1, "key event").action, AD__REG_UNCHANGED);
  /* ... but new facts are recorded */
  json_t *f = facts();
  json_object_set_new(json_object_get(f, "capacity"), "cpu", json_integer(8));
  ASSERT_EQ(run(h, NULL, 1, "reconcile", f).action, AD__REG_SEEN);
  json_decref(f);
  /* ... a fingerprint not stored yet too (not a reinstall: none to differ from) */
  json_object_del(h, "key_fingerprint");
  ASSERT_EQ(run1(h, NULL, 1, "reconcile").action, AD__REG_SEEN);
  json_object_set_new(h, "key_fingerprint", json_string(FP));
  /* ... and an unreachable host seen again goes back */
  json_object_set_new(h, "state", json_string("unreachable"));
  d = run1(h, NULL, 1, "reconcile");
  ASSERT_EQ(d.action, AD__REG_SEEN);
  ASSERT(strstr(d.cause, "reachable again"));
  json_decref(h);
}

TEST(same_host_still_registering_inits)
{
  json_t *h = host("m1", "registering", 5);
  ad__reg_decision_t d = run1(h, NULL, 1, "minion start");
  ASSERT_STR(ad__reg_action_name(d.action), "register");
  ASSERT_STR(d.cause, "registered (minion start)");
  json_decref(h);
}

TEST(reinstall_key_or_machine_id_changed)
{
  json_t *h = host("m1", "ready", 5);
  json_object_set_new(h, "key_fingerprint", json_string("cc:dd"));
  ad__reg_decision_t d = run1(h, NULL, 1, "reconcile");
  ASSERT_STR(ad__reg_action_name(d.action), "reinstall");
  ASSERT_STR(d.cause, "minion key changed (reconcile)");
  json_object_set_new(h, "key_fingerprint", json_string(FP));
  json_object_set_new(h, "machine_id", json_string("00000000000000000000000000000000"));
  d = run1(h, NULL, 1, "minion start");
  ASSERT_EQ(d.action, AD__REG_REINSTALL);
  ASSERT_STR(d.reinstall, "machine-id changed");
  json_decref(h);
}

TEST(retired_host_refuses_its_minion)
{
  json_t *h = host("m1", "retired", 5);
  json_object_set_new(h, "key_fingerprint", json_string("cc:dd")); /* even reinstalled */
  ad__reg_decision_t d = run1(h, NULL, 1, "minion start");
  ASSERT_STR(ad__reg_action_name(d.action), "retired");
  ASSERT(d.reinstall == NULL);
  ASSERT_STR(d.cause, "minion m1 started on a retired host (minion start): left retired");
  json_decref(h);
}

TEST(conflict_with_a_live_holder_quarantines)
{
  json_t *h = host("m0", "ready", 60);
  ad__reg_decision_t d = run1(h, NULL, 1, "minion start");
  ASSERT_STR(ad__reg_action_name(d.action), "conflict");
  ASSERT_STR(d.gone, "m0 was seen 60s ago and its key is accepted");
  ASSERT_STR(d.cause, KEY " is held by minion m0: m0 was seen 60s ago and its key is accepted");
  /* unseen exactly takeover_after: still the holder's */
  json_object_set_new(h, "last_seen_ms", json_integer(NOW - CONF.takeover_after * 1000LL));
  ASSERT_EQ(run1(h, NULL, 1, "minion start").action, AD__REG_CONFLICT);
  /* any live state counts, unreachable too */
  json_object_set_new(h, "state", json_string("unreachable"));
  ASSERT_EQ(run1(h, NULL, 1, "minion start").action, AD__REG_CONFLICT);
  json_decref(h);
}

TEST(takeover_when_the_holder_is_gone)
{
  /* retired */
  json_t *h = host("m0", "retired", 1);
  ad__reg_decision_t d = run1(h, NULL, 1, "minion start");
  ASSERT_STR(ad__reg_action_name(d.action), "takeover");
  ASSERT_STR(d.gone, "host was retired");
  ASSERT_STR(d.cause, "minion m1 takes over " KEY " from m0: host was retired");
  json_decref(h);
  /* its key no longer accepted */
  h = host("m0", "ready", 1);
  d = run1(h, NULL, 0, "minion start");
  ASSERT_EQ(d.action, AD__REG_TAKEOVER);
  ASSERT_STR(d.gone, "key of m0 is no longer accepted");
  /* unseen for longer than takeover_after */
  json_object_set_new(h, "last_seen_ms", json_integer(NOW - CONF.takeover_after * 1000LL - 1000));
  d = run1(h, NULL, 1, "minion start");
  ASSERT_EQ(d.action, AD__REG_TAKEOVER);
  ASSERT_STR(d.gone, "m0 not seen for 3601s (takeover_after 3600)");
  json_decref(h);
}

int main(void)
{
  h_case cases[] = {CASE(new_host),
                    CASE(same_minion_new_address_moves),
                    CASE(same_host_restart_is_seen),
                    CASE(same_host_still_registering_inits),
                    CASE(reinstall_key_or_machine_id_changed),
                    CASE(retired_host_refuses_its_minion),
                    CASE(conflict_with_a_live_holder_quarantines),
                    CASE(takeover_when_the_holder_is_gone)};
  return h_run(__FILE__, cases, sizeof cases / sizeof cases[0]);
}
