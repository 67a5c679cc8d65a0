/* test_bson_json.c - store/bson_json: direct BSON <-> jansson conversion,
 * checked against the text route it replaced (libbson's relaxed extended
 * JSON read by json_loads; json_dumps read by bson_new_from_json). */
#include <math.h>
#include <stdint.h>

#include "harness.h"
#include "store/bson_json.h"

/* The old conversions, verbatim, as the reference. */
static json_t *old_bson_to_json(const bson_t *b)
{
  char *s = bson_as_relaxed_extended_json(b, NULL);
  json_t *j = s ? json_loads(s, 0, NULL) : NULL;
  bson_free(s);
  return j;
}

static bson_t *old_json_to_bson(const json_t *j)
{
  char *s = json_dumps(j, JSON_COMPACT);
  bson_error_t be;
  bson_t *b = s ? bson_new_from_json((const uint8_t *)s, -1, &be) : NULL;
  free(s);
  return b;
}

/* Both routes give the same JSON text (key order, integer vs real). */
static int same_json(const bson_t *b)
{
  json_t *n = ad__bson_to_json(b), *o = old_bson_to_json(b);
  char *ns = n ? json_dumps(n, JSON_COMPACT) : NULL, *os = o ? json_dumps(o, JSON_COMPACT) : NULL;
  int same = ns && os && !strcmp(ns, os);
  if (!same)
    fprintf(stderr, "  new: %s\n  old: %s\n", ns ? ns : "(null)", os ? os : "(null)");
  free(ns);
  free(os);
  json_decref(n);
  json_decref(o);
  return same;
}

/* Both routes give the same BSON bytes (so the same types). */
static int same_bson(const json_t *j)
{
  ad_error_t err = {0};
  bson_t *n = ad__json_to_bson(j, &err), *o = old_json_to_bson(j);
  int same = n && o && n->len == o->len && !memcmp(bson_get_data(n), bson_get_data(o), n->len);
  if (!same) {
    char *ns = n ? bson_as_canonical_extended_json(n, NULL) : NULL;
    char *os = o ? bson_as_canonical_extended_json(o, NULL) : NULL;
    fprintf(stderr, "  new: %s (%s)\n  old: %s\n", ns ? ns : "(null)", err.message,
            os ? os : "(null)");
    bson_free(ns);
    bson_free(os);
  }
  if (n)
    bson_destroy(n);
  if (o)
    bson_destroy(o);
  return same;
}

/* A document with every type the stores hold, nested. */
static bson_t *sample(void)
{
  bson_t *b = bson_new(), sub, arr, deep, empty;
  BSON_APPEND_UTF8(b, "_id", "task-1");
  BSON_APPEND_INT32(b, "rev", 7);
  BSON_APPEND_INT64(b, "big", INT64_C(9007199254740993)); /* not a double */
  BSON_APPEND_INT64(b, "small64", 5);
  BSON_APPEND_INT64(b, "min", INT64_MIN);
  BSON_APPEND_DOUBLE(b, "half", 0.5);
  BSON_APPEND_DOUBLE(b, "whole", 3.0);
  BSON_APPEND_DOUBLE(b, "tenth", 0.1);
  BSON_APPEND_DOUBLE(b, "huge", 1e300);
  BSON_APPEND_DOUBLE(b, "neg0", -0.0);
  BSON_APPEND_BOOL(b, "yes", true);
  BSON_APPEND_BOOL(b, "no", false);
  BSON_APPEND_NULL(b, "nothing");
  BSON_APPEND_UTF8(b, "escapes", "quote\" back\\ nl\n tab\t ctl\x01 del\x7f \xc3\xa9\xe2\x82\xac"
                                 " \xf0\x9f\x98\x80 </script>");
  BSON_APPEND_UTF8(b, "", "empty key");
  BSON_APPEND_DATE_TIME(b, "at", 1714550400250LL);
  BSON_APPEND_DATE_TIME(b, "at_whole", 1714550400000LL);
  BSON_APPEND_DATE_TIME(b, "epoch", 0);
  BSON_APPEND_DATE_TIME(b, "before", -1);
  BSON_APPEND_DATE_TIME(b, "far", 253402300800000LL);
  BSON_APPEND_DOCUMENT_BEGIN(b, "history", &sub);
  BSON_APPEND_ARRAY_BEGIN(&sub, "steps", &arr);
  BSON_APPEND_INT32(&arr, "0", 1);
  BSON_APPEND_UTF8(&arr, "1", "two");
  BSON_APPEND_DOCUMENT_BEGIN(&arr, "2", &deep);
  BSON_APPEND_DOUBLE(&deep, "x", 2.5);
  BSON_APPEND_ARRAY_BEGIN(&deep, "empty", &empty);
  bson_append_array_end(&deep, &empty);
  bson_append_document_end(&arr, &deep);
  BSON_APPEND_NULL(&arr, "3");
  bson_append_array_end(&sub, &arr);
  BSON_APPEND_DOCUMENT_BEGIN(&sub, "none", &deep);
  bson_append_document_end(&sub, &deep);
  bson_append_document_end(b, &sub);
  return b;
}

TEST(bson_to_json_types)
{
  bson_t *b = sample();
  json_t *j = ad__bson_to_json(b);
  bson_destroy(b);
  ASSERT(j != NULL);
  int ok = json_integer_value(json_object_get(j, "big")) == INT64_C(9007199254740993) &&
           json_is_integer(json_object_get(j, "rev")) &&
           json_is_integer(json_object_get(j, "min")) &&
           json_integer_value(json_object_get(j, "min")) == INT64_MIN &&
           json_is_real(json_object_get(j, "whole")) &&
           json_real_value(json_object_get(j, "tenth")) == 0.1 &&
           json_is_true(json_object_get(j, "yes")) && json_is_null(json_object_get(j, "nothing")) &&
           !strcmp(json_string_value(json_object_get(json_object_get(j, "at"), "$date")),
                   "2024-05-01T08:00:00.250Z") &&
           !strcmp(json_string_value(json_object_get(json_object_get(j, "at_whole"), "$date")),
                   "2024-05-01T08:00:00Z") &&
           json_array_size(json_object_get(json_object_get(j, "history"), "steps")) == 4;
  json_decref(j);
  ASSERT(ok);
}

TEST(bson_to_json_as_before)
{
  bson_t *b = sample();
  int ok = same_json(b);
  bson_destroy(b);
  ASSERT(ok);
  /* the rare types go through libbson's text, so they stay the same too */
  bson_t *r = bson_new();
  bson_oid_t oid;
  bson_oid_init_from_string(&oid, "5f0c6cbbd5b1a2c3d4e5f607");
  BSON_APPEND_OID(r, "oid", &oid);
  BSON_APPEND_BINARY(r, "bin", BSON_SUBTYPE_BINARY, (const uint8_t *)"\x00\x01\xff", 3);
  BSON_APPEND_REGEX(r, "re", "^a.*", "i");
  BSON_APPEND_TIMESTAMP(r, "ts", 1700000000, 3);
  BSON_APPEND_DOUBLE(r, "nan", NAN);
  BSON_APPEND_DOUBLE(r, "inf", -INFINITY);
  BSON_APPEND_MINKEY(r, "min");
  ok = same_json(r);
  bson_destroy(r);
  ASSERT(ok);
}

TEST(bson_to_json_refuses_bad_utf8)
{
  bson_t *b = bson_new();
  bson_append_utf8(b, "s", 1, "\xc3\x28", 2);
  json_t *j = ad__bson_to_json(b);
  bson_destroy(b);
  ASSERT(j == NULL);
  ASSERT(ad__bson_to_json(NULL) == NULL);
}

TEST(json_to_bson_as_before)
{
  static const char *const DOCS[] = {
      "{}",
      "{\"_id\": \"h1\", \"rev\": 3, \"n\": -2147483648, \"m\": 2147483648, \"l\": -9007199254740993,"
      " \"d\": 1.0, \"e\": 0.1, \"f\": 1e-300, \"t\": true, \"u\": false, \"z\": null}",
      "{\"s\": \"quote\\\" back\\\\ nl\\n tab\\t ctl\\u0001 \\u00e9\\u20ac \\ud83d\\ude00\"}",
      "{\"a\": [1, [2, [3, {\"b\": []}]], {}, \"x\", 2.5, null], \"o\": {\"p\": {\"q\": {}}}}",
      "{\"$set\": {\"state\": \"running\", \"updated_at\": \"2024-05-01T08:00:00.250Z\"},"
      " \"$inc\": {\"rev\": 1}, \"$push\": {\"history\": {\"at\": \"x\", \"from\": \"a\"}}}",
      "{\"state\": {\"$in\": [\"queued\", \"running\"]}, \"n\": {\"$lt\": 5, \"$gte\": 1.5}}",
      /* extended JSON still means what libbson made of it */
      "{\"at\": {\"$date\": \"2024-05-01T08:00:00.250Z\"}, \"old\": {\"$date\": {\"$numberLong\": \"-1\"}}}",
      "{\"_id\": {\"$oid\": \"5f0c6cbbd5b1a2c3d4e5f607\"}, \"n\": {\"$numberLong\": \"5\"}}",
      "{\"name\": {\"$regex\": \"^web\", \"$options\": \"i\"}, \"k\": {\"$type\": \"string\"}}",
      "{\"$date\": 5}",
      NULL};
  for (size_t i = 0; DOCS[i]; i++) {
    json_error_t je;
    json_t *j = json_loads(DOCS[i], 0, &je);
    ASSERT(j != NULL);
    int ok = same_bson(j);
    json_decref(j);
    if (!ok)
      fprintf(stderr, "  document %zu: %s\n", i, DOCS[i]);
    ASSERT(ok);
  }
}

TEST(json_to_bson_types)
{
  json_t *j = json_pack("{s:I,s:I,s:f,s:s#}", "small", (json_int_t)7, "big",
                        (json_int_t)INT64_C(4102444800000), "real", 2.0, "nul", "a\0b", (size_t)3);
  bson_t *b = ad__json_to_bson(j, NULL);
  json_decref(j);
  ASSERT(b != NULL);
  bson_iter_t it;
  int ok = bson_iter_init_find(&it, b, "small") && BSON_ITER_HOLDS_INT32(&it) &&
           bson_iter_init_find(&it, b, "big") && BSON_ITER_HOLDS_INT64(&it) &&
           bson_iter_int64(&it) == INT64_C(4102444800000) &&
           bson_iter_init_find(&it, b, "real") && BSON_ITER_HOLDS_DOUBLE(&it);
  uint32_t n = 0;
  ok = ok && bson_iter_init_find(&it, b, "nul") && bson_iter_utf8(&it, &n) && n == 3;
  bson_destroy(b);
  ASSERT(ok);
  ad_error_t err = {0};
  json_t *arr = json_array();
  ASSERT(ad__json_to_bson(arr, &err) == NULL);
  json_decref(arr);
  ASSERT_EQ(err.code, AD_EINVAL);
  ASSERT(ad__json_to_bson(NULL, NULL) == NULL);
}

TEST(round_trip)
{
  bson_t *b = sample();
  json_t *j = ad__bson_to_json(b);
  /* libbson writes year 10000 as text it cannot read back (both routes) */
  json_object_del(j, "far");
  bson_t *back = j ? ad__json_to_bson(j, NULL) : NULL;
  json_t *again = back ? ad__bson_to_json(back) : NULL;
  int ok = again && json_equal(j, again);
  /* dates come back as dates; int64 beyond int32 stays int64 */
  bson_iter_t it;
  ok = ok && bson_iter_init_find(&it, back, "at") && BSON_ITER_HOLDS_DATE_TIME(&it) &&
       bson_iter_date_time(&it) == 1714550400250LL;
  ok = ok && bson_iter_init_find(&it, back, "before") && BSON_ITER_HOLDS_DATE_TIME(&it) &&
       bson_iter_date_time(&it) == -1;
  ok = ok && bson_iter_init_find(&it, back, "big") && BSON_ITER_HOLDS_INT64(&it);
  ok = ok && bson_iter_init_find(&it, back, "tenth") && bson_iter_double(&it) == 0.1;
  json_decref(j);
  json_decref(again);
  if (back)
    bson_destroy(back);
  bson_destroy(b);
  ASSERT(ok);
}

TEST(deep_nesting)
{
  json_t *j = json_object(), *cur = j;
  for (int i = 0; i < 150; i++) {
    json_t *next = json_object();
    json_object_set_new(cur, "k", next);
    cur = next;
  }
  ad_error_t err = {0};
  bson_t *b = ad__json_to_bson(j, &err);
  json_decref(j);
  ASSERT(b == NULL);
  ASSERT_EQ(err.code, AD_EINVAL);
  ASSERT(strstr(err.message, "nested") != NULL);
}

RUN(CASE(bson_to_json_types), CASE(bson_to_json_as_before), CASE(bson_to_json_refuses_bad_utf8),
    CASE(json_to_bson_as_before), CASE(json_to_bson_types), CASE(round_trip),
    CASE(deep_nesting))
