/* test_event.c - events and values: paths, typed accessors, Salt's ext
 * types, odd keys, JSON conversion, malformed data. */
#include <jansson.h>
#include <msgpack.h>

#include "autodeploy.h"
#include "harness.h"

/* A job return like Salt's, with an int key, a datetime and a constant. */
static ad_event_t *sample(void)
{
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 8);
  msgpack_pack_str_with_body(&pk, "id", 2);
  msgpack_pack_str_with_body(&pk, "game-01", 7);
  msgpack_pack_str_with_body(&pk, "retcode", 7);
  msgpack_pack_int(&pk, 2);
  msgpack_pack_str_with_body(&pk, "success", 7);
  msgpack_pack_false(&pk);
  msgpack_pack_str_with_body(&pk, "fun_args", 8);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_str_with_body(&pk, "deploy", 6);
  msgpack_pack_int(&pk, -7);
  msgpack_pack_str_with_body(&pk, "return", 6);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_str_with_body(&pk, "file_|-cfg_|-/etc/g.conf_|-managed", 34);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_str_with_body(&pk, "result", 6);
  msgpack_pack_true(&pk);
  msgpack_pack_str_with_body(&pk, "when", 4);
  msgpack_pack_ext_with_body(&pk, "20240506T07:08:09.123456", 24, 78);
  msgpack_pack_str_with_body(&pk, "const", 5);
  /* Salt's NOT_SET: ext 79 of msgpack ["NOT_SET", nil] */
  msgpack_pack_ext_with_body(&pk, "\x92\xa7NOT_SET\xc0", 10, 79);
  msgpack_pack_int(&pk, 42); /* an int key, as from a Python dict */
  msgpack_pack_bin_with_body(&pk, "\x00\xff", 2);
  ad_event_t *ev = ad_event_new("salt/job/1/ret/game-01", 22, sb.data, sb.size, NULL);
  msgpack_sbuffer_destroy(&sb);
  return ev;
}

TEST(paths_and_types)
{
  ad_event_t *ev = sample();
  const char *s;
  size_t n;
  int64_t i;
  int b;
  ASSERT_STR(ad_event_tag(ev), "salt/job/1/ret/game-01");
  ASSERT_EQ(ad_event_get_str(ev, "id", &s, &n), 0);
  ASSERT_MEM(s, n, "game-01");
  ASSERT_EQ(ad_event_get_int(ev, "retcode", &i), 0);
  ASSERT_EQ(i, 2);
  ASSERT_EQ(ad_event_get_bool(ev, "success", &b), 0);
  ASSERT_EQ(b, 0);
  ASSERT_EQ(ad_event_get_int(ev, "fun_args:1", &i), 0);
  ASSERT_EQ(i, -7);
  ASSERT_EQ(ad_event_get_str(ev, "fun_args:0", &s, &n), 0);
  ASSERT_MEM(s, n, "deploy");
  ASSERT_EQ(ad_event_get_int(ev, "id", &i), AD_ETYPE);
  ASSERT_EQ(ad_event_get_int(ev, "nope", &i), AD_ENOTFOUND);
  ASSERT_EQ(ad_event_get_int(ev, "fun_args:9", &i), AD_ENOTFOUND);
  ASSERT(ad_event_find(ev, "42") != NULL); /* int key by digits */
  ASSERT_EQ(ad_value_type(ad_event_find(ev, "42")), AD_VT_BIN);
  /* keys containing ':' are reached with ad_value_get */
  const ad_value_t *ret = ad_event_find(ev, "return");
  const ad_value_t *st = ad_value_get(ret, "file_|-cfg_|-/etc/g.conf_|-managed", (size_t)-1);
  ASSERT(st != NULL);
  ASSERT_EQ(ad_value_bool(ad_value_get(st, "result", (size_t)-1), &b), 0);
  ASSERT_EQ(b, 1);
  ad_event_destroy(&ev);
  ASSERT(ev == NULL);
}

TEST(salt_ext_types)
{
  ad_event_t *ev = sample();
  char buf[64];
  ASSERT_EQ(ad_value_datetime(ad_event_find(ev, "when"), buf, sizeof buf), 0);
  ASSERT_STR(buf, "2024-05-06T07:08:09.123456");
  ASSERT(ad_value_text(ad_event_find(ev, "when"), buf, sizeof buf) > 0);
  ASSERT_STR(buf, "2024-05-06T07:08:09.123456");
  ASSERT(ad_value_text(ad_event_find(ev, "const"), buf, sizeof buf) > 0);
  ASSERT_STR(buf, "NOT_SET");
  ASSERT_EQ(ad_value_datetime(ad_event_find(ev, "id"), buf, sizeof buf), AD_ETYPE);
  ad_event_destroy(&ev);
}

TEST(json_conversion)
{
  ad_event_t *ev = sample();
  ad_error_t err;
  char *text = ad_event_to_json_text(ev, 0, &err);
  ASSERT(text != NULL);
  ASSERT(strchr(text, '\n') == NULL); /* indent 0: one line */
  json_t *j = json_loads(text, 0, NULL);
  free(text);
  ASSERT(j != NULL);
  json_t *d = json_object_get(j, "data");
  ASSERT_STR(json_string_value(json_object_get(j, "tag")), "salt/job/1/ret/game-01");
  ASSERT_STR(json_string_value(json_object_get(d, "when")), "2024-05-06T07:08:09.123456");
  ASSERT_STR(json_string_value(json_object_get(json_object_get(d, "const"), "$const")), "NOT_SET");
  ASSERT_STR(json_string_value(json_object_get(json_object_get(d, "42"), "$bin")), "AP8=");
  ASSERT_EQ(json_integer_value(json_object_get(d, "retcode")), 2);
  json_decref(j);
  text = ad_value_to_json_text(ad_event_find(ev, "retcode"), 0, &err);
  ASSERT(text != NULL); /* scalars too */
  ASSERT_STR(text, "2");
  free(text);
  text = ad_event_to_json_text(ev, 2, &err);
  ASSERT(text != NULL && strstr(text, "\n  \"") != NULL);
  free(text);
  ASSERT(ad_event_to_json_text(ev, 32, &err) == NULL);
  ASSERT_EQ(err.code, AD_EINVAL);
  ad_event_destroy(&ev);
}

TEST(malformed_data_is_an_error_not_a_crash)
{
  static const struct { const char *b; size_t n; } bad[] = {
      {"\x82\xa2id", 4},                  /* truncated map */
      {"\xdd\xff\xff\xff\xff", 5},        /* array claiming 4G items */
      {"\xc1", 1},                        /* reserved byte */
      {"\x80\x80", 2},                    /* trailing bytes */
      {"", 0},                            /* nothing */
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    ad_event_t *ev = ad_event_new("t", 1, bad[k].b, bad[k].n, NULL);
    ad_error_t err = {0};
    ASSERT(ad_event_data(ev, &err) == NULL);
    ASSERT_EQ(err.code, AD_EDECODE);
    ASSERT(strlen(err.message) > 10);
    ASSERT(ad_event_data(ev, NULL) == NULL); /* stays failed */
    ASSERT(ad_event_find(ev, "x") == NULL);
    ad_event_destroy(&ev);
  }
}

TEST(deep_nesting_is_refused)
{
  char buf[2000];
  memset(buf, 0x91, 1999); /* [[[[...]]]] */
  buf[1999] = (char)0xc0;
  ad_event_t *ev = ad_event_new("t", 1, buf, sizeof buf, NULL);
  ad_error_t err;
  ASSERT(ad_event_data(ev, &err) == NULL);
  ASSERT_EQ(err.code, AD_EDECODE);
  ad_event_destroy(&ev);
}

TEST(parse_splits_body)
{
  ad_error_t err;
  ad_event_t *ev = ad_event_parse("a/b\n\n\x81\xa1k\x01", 9, &err);
  ASSERT(ev != NULL);
  ASSERT_STR(ad_event_tag(ev), "a/b");
  int64_t v;
  ASSERT_EQ(ad_event_get_int(ev, "k", &v), 0);
  ASSERT_EQ(v, 1);
  ad_event_destroy(&ev);
  ASSERT(ad_event_parse("no separator", 12, &err) == NULL);
  ASSERT_EQ(err.code, AD_EFRAME);
}

TEST(json_to_msgpack_round_trip)
{
  size_t n;
  ad_error_t err;
  char *mp = ad_json_to_msgpack("{\"x\": 1, \"s\": \"开服\", \"l\": [true, null, 1.5]}", &n, &err);
  ASSERT(mp != NULL);
  ad_event_t *ev = ad_event_new("t", 1, mp, n, NULL);
  const char *s;
  size_t len;
  ASSERT_EQ(ad_event_get_str(ev, "s", &s, &len), 0);
  ASSERT_MEM(s, len, "开服");
  ASSERT_EQ(ad_value_type(ad_event_find(ev, "l:1")), AD_VT_NIL);
  ad_event_destroy(&ev);
  free(mp);
  ASSERT(ad_json_to_msgpack("{bad", &n, &err) == NULL);
  ASSERT(strstr(err.message, "line 1") != NULL);
}

TEST(errors_have_names)
{
  ASSERT_STR(ad_errname(AD_EFRAME), "AD_EFRAME");
  ASSERT_STR(ad_strerror(AD_ETOOBIG), "frame larger than max_frame");
  ASSERT_STR(ad_strerror(12345), "unknown error");
}

RUN(CASE(paths_and_types), CASE(salt_ext_types), CASE(json_conversion),
    CASE(malformed_data_is_an_error_not_a_crash), CASE(deep_nesting_is_refused),
    CASE(parse_splits_body), CASE(json_to_msgpack_round_trip),
    CASE(errors_have_names))
