/* test_returns.c - return documents (msgpack -> BSON, key escaping, state
 * summaries from real 3008 state runs) and the spool (order, torn tails,
 * the hard size limit). MongoDB itself: tests/test_returns.py. */
#include <bson/bson.h>
#include <math.h>
#include <msgpack.h>
#include <string.h>
#include <unistd.h>

#include "autodeploy.h"
#include "store/bson_msgpack.h"
#include "harness.h"
#include "store/returns.h"
#include "store/spool.h"

/* First frame whose tag contains `needle` in a captured stream. */
static ad_event_t *fixture_event(const char *file, const char *needle)
{
  char path[512];
  size_t n;
  snprintf(path, sizeof path, "%s/%s", h_data_dir(), file);
  char *bin = h_slurp(path, &n);
  if (!bin)
    return NULL;
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
  ad_decoder_feed(d, bin, n);
  ad_frame_t f;
  ad_event_t *ev = NULL;
  while (!ev && ad_decoder_next(d, &f, NULL) == 1)
    if (memmem(f.tag, f.tag_len, needle, strlen(needle)))
      ev = ad_event_parse(f.body, f.body_len, NULL);
  ad_decoder_destroy(&d);
  free(bin);
  return ev;
}

TEST(key_escaping_round_trips)
{
  static const char *keys[] = {"plain", "file_|-/etc/g.conf_|-/etc/g.conf_|-managed",
                               "$where", "a%2Eb", "100%", "x.y.$z", ""};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    char esc[256], back[256];
    size_t n = ad__key_escape(keys[i], strlen(keys[i]), esc, sizeof esc);
    ASSERT(strchr(esc, '.') == NULL && strchr(esc, '$') == NULL);
    ASSERT_EQ(n, strlen(esc));
    ad__key_unescape(esc, n, back);
    ASSERT_STR(back, keys[i]);
  }
  char esc[16], back[16];
  ad__key_escape("plain", 5, esc, sizeof esc);
  ASSERT_STR(esc, "plain"); /* ordinary keys stay as they are */
  ad__key_escape("\xff\xfe.", 3, esc, sizeof esc); /* a bytes key */
  ASSERT_STR(esc, "%FF%FE%2E");
  ad__key_unescape(esc, strlen(esc), back);
  ASSERT(memcmp(back, "\xff\xfe.", 3) == 0);
  ad__key_escape("开服.x", strlen("开服.x"), esc, sizeof esc); /* UTF-8 kept */
  ASSERT_STR(esc, "开服%2Ex");
}

TEST(state_run_document_has_summary)
{
  ad_event_t *ev = fixture_event("salt3008/state_fail.bin", "/ret/");
  ASSERT(ev != NULL);
  ad_error_t err;
  bson_t *doc = ad__returns_doc(ev, 0, &err);
  ASSERT(doc != NULL);
  bson_iter_t it, sub;
  ASSERT(bson_iter_init_find(&it, doc, "_id"));
  ASSERT(strchr(bson_iter_utf8(&it, NULL), '/') != NULL);
  ASSERT(bson_iter_init_find(&it, doc, "retcode"));
  ASSERT_EQ(bson_iter_as_int64(&it), 2);
  ASSERT(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "summary.failed", &sub));
  ASSERT(bson_iter_as_int64(&sub) >= 1);
  ASSERT(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "summary.failed_states.0.comment", &sub));
  ASSERT(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "summary.total", &sub));
  ASSERT(bson_iter_as_int64(&sub) >= 2);
  /* every key in the stored return is MongoDB-safe */
  ASSERT(bson_iter_init_find(&it, doc, "return") && bson_iter_recurse(&it, &sub));
  int n = 0;
  while (bson_iter_next(&sub)) {
    ASSERT(strchr(bson_iter_key(&sub), '.') == NULL);
    ASSERT(bson_iter_key(&sub)[0] != '$');
    n++;
  }
  ASSERT(n >= 2);
  ASSERT(bson_validate(doc, BSON_VALIDATE_DOT_KEYS | BSON_VALIDATE_DOLLAR_KEYS, NULL));
  bson_destroy(doc);
  /* tasks-only mode skips jobs without metadata.autodeploy_task */
  err.code = 0;
  ASSERT(ad__returns_doc(ev, 1, &err) == NULL);
  ASSERT_EQ(err.code, 0);
  ad_event_destroy(&ev);
}

TEST(odd_values_become_bson)
{
  ad_event_t *ev = fixture_event("salt3008/odd_keys.bin", "odd_keys");
  ASSERT(ev != NULL);
  bson_t b = BSON_INITIALIZER;
  ad_error_t err;
  ASSERT_EQ(ad__bson_append_map_fields(&b, ad_event_data(ev, NULL), &err), 0);
  ASSERT(bson_validate(&b, BSON_VALIDATE_DOT_KEYS | BSON_VALIDATE_DOLLAR_KEYS, NULL));
  bson_iter_t it;
  ASSERT(bson_iter_init_find(&it, &b, "1")); /* int key as its text */
  bson_destroy(&b);
  ad_event_destroy(&ev);
  ev = fixture_event("salt3008/datetime.bin", "autodeploy/test/datetime");
  bson_init(&b);
  ASSERT_EQ(ad__bson_append_map_fields(&b, ad_event_data(ev, NULL), &err), 0);
  ASSERT(bson_iter_init_find(&it, &b, "when"));
  ASSERT_STR(bson_iter_utf8(&it, NULL), "2024-05-06T07:08:09.123456");
  bson_destroy(&b);
  ad_event_destroy(&ev);
}

/* A return may carry NaN (a module's float('nan')): stored as "NaN", as
 * the infinities are by their names. FerretDB drops the connection on a
 * NaN double, so such a return was never stored (found by the event fuzz
 * target: the task's return waited 5 s for its document). */
TEST(non_finite_floats_as_names)
{
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 4);
  const char *k[4] = {"nan", "inf", "ninf", "one"};
  double v[4] = {NAN, INFINITY, -INFINITY, 1.5};
  for (int i = 0; i < 4; i++) {
    msgpack_pack_str_with_body(&pk, k[i], strlen(k[i]));
    msgpack_pack_double(&pk, v[i]);
  }
  ad_event_t *ev = ad_event_new("t", 1, sb.data, sb.size, NULL);
  msgpack_sbuffer_destroy(&sb);
  bson_t b = BSON_INITIALIZER;
  ad_error_t err;
  ASSERT_EQ(ad__bson_append_map_fields(&b, ad_event_data(ev, NULL), &err), 0);
  bson_iter_t it;
  const char *want[3] = {"NaN", "Infinity", "-Infinity"};
  for (int i = 0; i < 3; i++) {
    ASSERT(bson_iter_init_find(&it, &b, k[i]) && BSON_ITER_HOLDS_UTF8(&it));
    ASSERT_STR(bson_iter_utf8(&it, NULL), want[i]);
  }
  ASSERT(bson_iter_init_find(&it, &b, "one") && bson_iter_double(&it) == 1.5);
  bson_destroy(&b);
  ad_event_destroy(&ev);
}

static int collected;
static int collect(bson_t **docs, size_t n, void *user, ad_error_t *err)
{
  int *fail = user;
  if (*fail)
    return AD_ECONNECT;
  for (size_t i = 0; i < n; i++) {
    bson_iter_t it;
    bson_iter_init_find(&it, docs[i], "i");
    if (bson_iter_int32(&it) != collected)
      return AD_EINVAL; /* out of order */
    collected++;
  }
  return 0;
}

TEST(spool_keeps_order_survives_torn_tail_and_is_bounded)
{
  char path[] = "/tmp/adspoolXXXXXX";
  int fd = mkstemp(path);
  close(fd);
  ad_error_t err;
  ad__spool_t *sp = ad__spool_open(path, 4096, 1, &err);
  ASSERT(sp != NULL);
  bson_t *docs[10];
  for (int i = 0; i < 10; i++)
    docs[i] = BCON_NEW("i", BCON_INT32(i), "pad", BCON_UTF8("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
  ASSERT_EQ(ad__spool_append(sp, docs, 5, &err), 0);
  ASSERT_EQ(ad__spool_append(sp, docs + 5, 5, &err), 0);
  ASSERT_EQ(ad__spool_records(sp), 10);
  ad__spool_close(&sp);
  /* a crash mid-append leaves half a record: cut on open, rest kept */
  FILE *f = fopen(path, "ab");
  fwrite("\x40\x00\x00\x00\x02", 1, 5, f);
  fclose(f);
  sp = ad__spool_open(path, 4096, 1, &err);
  ASSERT_EQ(ad__spool_records(sp), 10);
  /* replay failing: nothing lost, spool unchanged */
  int fail = 1;
  collected = 0;
  ASSERT(ad__spool_replay(sp, collect, &fail, 3, &err) != 0);
  ASSERT_EQ(ad__spool_records(sp), 10);
  fail = 0;
  collected = 0;
  ASSERT_EQ(ad__spool_replay(sp, collect, &fail, 3, &err), 0);
  ASSERT_EQ(collected, 10);
  ASSERT_EQ(ad__spool_records(sp), 0);
  /* the limit: an append past it writes nothing and says the limit */
  int rc = 0;
  for (int k = 0; k < 100 && rc == 0; k++)
    rc = ad__spool_append(sp, docs, 10, &err);
  ASSERT_EQ(rc, AD_EFULL);
  ASSERT(strstr(err.message, "spool_max_bytes 4096") != NULL);
  ASSERT(ad__spool_bytes(sp) <= 4096);
  for (int i = 0; i < 10; i++)
    bson_destroy(docs[i]);
  ad__spool_close(&sp);
  unlink(path);
}

RUN(CASE(key_escaping_round_trips), CASE(state_run_document_has_summary), CASE(non_finite_floats_as_names),
    CASE(odd_values_become_bson), CASE(spool_keeps_order_survives_torn_tail_and_is_bounded))
