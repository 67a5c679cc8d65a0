/* test_backfill.c - the document stored for a return read back from Salt's
 * job cache (.load.p + <minion>/return.p) is the live path's document: same
 * _id, task fields and state summary. The walk and the inserts against a
 * real master and FerretDB: tests/faults/test_engine_killed.py. */
#include <bson/bson.h>
#include <msgpack.h>

#include "autodeploy.h"
#include "harness.h"
#include "store/backfill.h"
#include "wire/event_private.h"

static void pack_str(msgpack_packer *pk, const char *s)
{
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

/* .load.p of a task's state.apply, and a return.p with one failed state */
static void pack_load(msgpack_sbuffer *sb, int with_task)
{
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, with_task ? 4 : 3);
  pack_str(&pk, "fun");
  pack_str(&pk, "state.apply");
  pack_str(&pk, "arg");
  msgpack_pack_array(&pk, 1);
  pack_str(&pk, "game.deploy");
  pack_str(&pk, "jid");
  pack_str(&pk, "20261204205000123456");
  if (with_task) {
    pack_str(&pk, "metadata");
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "autodeploy_task");
    pack_str(&pk, "t-42");
    pack_str(&pk, "step");
    msgpack_pack_int(&pk, 1);
  }
}

static void pack_ret(msgpack_sbuffer *sb)
{
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 3);
  pack_str(&pk, "return");
  msgpack_pack_map(&pk, 1);
  pack_str(&pk, "file_|-cfg_|-/etc/game.conf_|-managed");
  msgpack_pack_map(&pk, 2);
  pack_str(&pk, "result");
  msgpack_pack_false(&pk);
  pack_str(&pk, "comment");
  pack_str(&pk, "disk full");
  pack_str(&pk, "retcode");
  msgpack_pack_int(&pk, 2);
  pack_str(&pk, "success");
  msgpack_pack_false(&pk);
}

static int64_t get_int(const bson_t *d, const char *path)
{
  bson_iter_t it, x;
  return bson_iter_init(&it, d) && bson_iter_find_descendant(&it, path, &x)
             ? bson_iter_as_int64(&x) : -999;
}

static const char *get_str(const bson_t *d, const char *path)
{
  bson_iter_t it, x;
  return bson_iter_init(&it, d) && bson_iter_find_descendant(&it, path, &x) &&
                 BSON_ITER_HOLDS_UTF8(&x)
             ? bson_iter_utf8(&x, NULL) : "";
}

TEST(cached_task_return_becomes_the_live_document)
{
  msgpack_sbuffer lb, rb;
  msgpack_sbuffer_init(&lb);
  msgpack_sbuffer_init(&rb);
  pack_load(&lb, 1);
  pack_ret(&rb);
  msgpack_zone z;
  msgpack_zone_init(&z, 4096);
  msgpack_object load, ret;
  ASSERT_EQ(ad__msgpack_decode(lb.data, lb.size, &z, &load, NULL), 0);
  ASSERT_EQ(ad__msgpack_decode(rb.data, rb.size, &z, &ret, NULL), 0);
  bson_t *d = ad__backfill_doc("20261204205000123456", "game-01", (const ad_value_t *)&load,
                               (const ad_value_t *)&ret, 1, 1700000000000);
  ASSERT(d != NULL);
  ASSERT_STR(get_str(d, "_id"), "20261204205000123456/game-01");
  ASSERT_STR(get_str(d, "minion"), "game-01");
  ASSERT_STR(get_str(d, "fun"), "state.apply");
  ASSERT_STR(get_str(d, "fun_args.0"), "game.deploy");
  ASSERT_STR(get_str(d, "task"), "t-42");
  ASSERT_EQ(get_int(d, "step"), 1);
  ASSERT_EQ(get_int(d, "retcode"), 2);
  ASSERT_EQ(get_int(d, "summary.failed"), 1);
  ASSERT_STR(get_str(d, "summary.failed_states.0.comment"), "disk full");
  ASSERT(bson_has_field(d, "backfilled"));
  bson_destroy(d);
  msgpack_zone_destroy(&z);
  msgpack_sbuffer_destroy(&lb);
  msgpack_sbuffer_destroy(&rb);
}

TEST(tasks_only_skips_other_jobs_and_no_load_still_stores)
{
  msgpack_sbuffer lb, rb;
  msgpack_sbuffer_init(&lb);
  msgpack_sbuffer_init(&rb);
  pack_load(&lb, 0);
  pack_ret(&rb);
  msgpack_zone z;
  msgpack_zone_init(&z, 4096);
  msgpack_object load, ret;
  ASSERT_EQ(ad__msgpack_decode(lb.data, lb.size, &z, &load, NULL), 0);
  ASSERT_EQ(ad__msgpack_decode(rb.data, rb.size, &z, &ret, NULL), 0);
  ASSERT(ad__backfill_doc("1", "m", (const ad_value_t *)&load, (const ad_value_t *)&ret, 1,
                          0) == NULL);
  /* a job whose .load.p is gone (or unreadable) is still a return */
  bson_t *d = ad__backfill_doc("1", "m", NULL, (const ad_value_t *)&ret, 0, 0);
  ASSERT(d != NULL);
  ASSERT_EQ(get_int(d, "retcode"), 2);
  ASSERT(!bson_has_field(d, "summary")); /* no fun known: no state summary */
  bson_destroy(d);
  msgpack_zone_destroy(&z);
  msgpack_sbuffer_destroy(&lb);
  msgpack_sbuffer_destroy(&rb);
}

/* what 3008 saves for a job the reactor published: metadata under kwargs */
TEST(metadata_under_kwargs_is_found)
{
  msgpack_sbuffer lb, rb;
  msgpack_sbuffer_init(&lb);
  msgpack_sbuffer_init(&rb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &lb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  pack_str(&pk, "fun");
  pack_str(&pk, "state.apply");
  pack_str(&pk, "kwargs");
  msgpack_pack_map(&pk, 2);
  pack_str(&pk, "state");
  pack_str(&pk, "local");
  pack_str(&pk, "metadata");
  msgpack_pack_map(&pk, 2);
  pack_str(&pk, "autodeploy_task");
  pack_str(&pk, "t-7");
  pack_str(&pk, "step");
  pack_str(&pk, "deploy");
  pack_ret(&rb);
  msgpack_zone z;
  msgpack_zone_init(&z, 4096);
  msgpack_object load, ret;
  ASSERT_EQ(ad__msgpack_decode(lb.data, lb.size, &z, &load, NULL), 0);
  ASSERT_EQ(ad__msgpack_decode(rb.data, rb.size, &z, &ret, NULL), 0);
  bson_t *d = ad__backfill_doc("2_ad1", "m1", (const ad_value_t *)&load,
                               (const ad_value_t *)&ret, 1, 0);
  ASSERT(d != NULL); /* tasks_only: it is a task's */
  ASSERT_STR(get_str(d, "task"), "t-7");
  ASSERT_STR(get_str(d, "step"), "deploy");
  ASSERT_STR(get_str(d, "metadata.autodeploy_task"), "t-7");
  bson_destroy(d);
  msgpack_zone_destroy(&z);
  msgpack_sbuffer_destroy(&lb);
  msgpack_sbuffer_destroy(&rb);
}

RUN(CASE(cached_task_return_becomes_the_live_document), CASE(metadata_under_kwargs_is_found),
    CASE(tasks_only_skips_other_jobs_and_no_load_still_stores))
