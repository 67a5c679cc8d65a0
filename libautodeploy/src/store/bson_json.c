/* bson_json.c - see bson_json.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "store/bson_json.h"

#define MAX_DEPTH 100
#define MAX_PLAIN_DATE 253402300799999LL /* 9999-12-31T23:59:59.999Z */

/* ---- BSON -> JSON --------------------------------------------------------- */

/* The value under `it` the way the text route rendered it: through
 * libbson's relaxed extended JSON of a one-field document. */
static json_t *value_via_text(const bson_iter_t *it)
{
  bson_t one = BSON_INITIALIZER;
  json_t *doc = NULL, *v = NULL;
  if (bson_append_iter(&one, "v", 1, it)) {
    char *s = bson_as_relaxed_extended_json(&one, NULL);
    doc = s ? json_loads(s, 0, NULL) : NULL;
    bson_free(s);
  }
  v = json_incref(json_object_get(doc, "v"));
  json_decref(doc);
  bson_destroy(&one);
  return v;
}

/* {"$date": "2024-05-01T08:00:00.250Z"}, milliseconds only when not 0. */
static json_t *date_json(const bson_iter_t *it)
{
  int64_t ms = bson_iter_date_time(it);
  if (ms < 0 || ms > MAX_PLAIN_DATE)
    return value_via_text(it); /* {"$date": {"$numberLong": "..."}} */
  char buf[32];
  ad__iso_format(ms, AD__ISO_MS_IF_ANY, buf);
  return json_pack("{s:s}", "$date", buf);
}

static json_t *container_json(const bson_iter_t *it, int depth);

static json_t *value_json(const bson_iter_t *it, int depth)
{
  switch (bson_iter_type(it)) {
  case BSON_TYPE_DOUBLE: {
    double d = bson_iter_double(it);
    return isfinite(d) ? json_real(d) : value_via_text(it);
  }
  case BSON_TYPE_UTF8: {
    uint32_t n;
    const char *s = bson_iter_utf8(it, &n);
    return json_stringn(s, n); /* NULL when not UTF-8 */
  }
  case BSON_TYPE_INT32:
    return json_integer(bson_iter_int32(it));
  case BSON_TYPE_INT64:
    return json_integer(bson_iter_int64(it));
  case BSON_TYPE_BOOL:
    return json_boolean(bson_iter_bool(it));
  case BSON_TYPE_NULL:
    return json_null();
  case BSON_TYPE_DATE_TIME:
    return date_json(it);
  case BSON_TYPE_DOCUMENT:
  case BSON_TYPE_ARRAY:
    return container_json(it, depth + 1);
  default:
    return value_via_text(it);
  }
}

/* Walk the fields of a document or array (`it` positioned on it, or on the
 * top-level document's start when depth is 0). */
static json_t *fields_json(bson_iter_t *in, int is_array, int depth)
{
  json_t *out = is_array ? json_array() : json_object();
  while (out && bson_iter_next(in)) {
    json_t *v = value_json(in, depth);
    /* the _new setters release v when they fail */
    if (!v || (is_array ? json_array_append_new(out, v)
                        : json_object_set_new(out, bson_iter_key(in), v))) {
      json_decref(out);
      return NULL;
    }
  }
  if (out && in->err_off) { /* stopped on corrupt BSON, not at the end */
    json_decref(out);
    return NULL;
  }
  return out;
}

static json_t *container_json(const bson_iter_t *it, int depth)
{
  bson_iter_t in;
  if (depth > MAX_DEPTH || !bson_iter_recurse(it, &in))
    return NULL;
  return fields_json(&in, BSON_ITER_HOLDS_ARRAY(it), depth);
}

json_t *ad__bson_to_json(const bson_t *b)
{
  bson_iter_t it;
  if (!b || !bson_iter_init(&it, b))
    return NULL;
  return fields_json(&it, 0, 0);
}

/* ---- JSON -> BSON --------------------------------------------------------- */

/* Keys that make libbson's JSON reader build a special type (or, for $type
 * and $regex, decide between an operator and a type): such an object keeps
 * going through that reader, so its meaning does not change. */
static int has_ext_key(const json_t *o)
{
  static const char *const EXT[] = {
      "$oid",  "$binary", "$type",   "$date",  "$numberLong", "$numberInt",
      "$numberDouble", "$numberDecimal", "$regex", "$options", "$regularExpression",
      "$timestamp", "$minKey", "$maxKey", "$undefined", "$symbol", "$code", "$scope",
      "$dbPointer", "$ref", "$id", "$uuid", NULL};
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)o, k, v) {
    if (k[0] != '$')
      continue;
    for (size_t i = 0; EXT[i]; i++)
      if (!strcmp(k, EXT[i]))
        return 1;
  }
  return 0;
}

/* The text route for a whole document. */
static bson_t *doc_via_text(const json_t *j, ad_error_t *err)
{
  char *s = json_dumps(j, JSON_COMPACT);
  bson_error_t be;
  bson_t *b = s ? bson_new_from_json((const uint8_t *)s, -1, &be) : NULL;
  if (!b)
    ad__err(err, s ? AD_EINVAL : AD_ENOMEM, "store", "cannot encode document: %s",
            s ? be.message : "no memory");
  free(s);
  return b;
}

/* The text route for one value: {key: v} read by libbson, then copied. */
static int append_via_text(bson_t *b, const char *key, const json_t *v, ad_error_t *err)
{
  json_t *w = json_pack("{s:O}", "v", (json_t *)v);
  bson_t *one = w ? doc_via_text(w, err) : NULL;
  json_decref(w);
  if (!one)
    return w ? AD_EINVAL : ad__err(err, AD_ENOMEM, "store", "cannot encode document: no memory");
  bson_iter_t it;
  int ok = bson_iter_init_find(&it, one, "v") && bson_append_iter(b, key, -1, &it);
  bson_destroy(one);
  return ok ? 0 : ad__err(err, AD_EINVAL, "store", "cannot encode %s: too large", key);
}

static int append_fields(bson_t *b, const json_t *j, int depth, ad_error_t *err);

static int append_value(bson_t *b, const char *key, const json_t *v, int depth,
                        ad_error_t *err)
{
  bool ok = true;
  bson_t child;
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    if (has_ext_key(v))
      return append_via_text(b, key, v, err);
    /* fallthrough */
  case JSON_ARRAY:
    if (depth >= MAX_DEPTH)
      return ad__err(err, AD_EINVAL, "store", "cannot encode %s: nested deeper than %d", key,
                     MAX_DEPTH);
    ok = json_is_object(v) ? bson_append_document_begin(b, key, -1, &child)
                           : bson_append_array_begin(b, key, -1, &child);
    if (!ok)
      break;
    int rc = append_fields(&child, v, depth + 1, err);
    ok = json_is_object(v) ? bson_append_document_end(b, &child)
                           : bson_append_array_end(b, &child);
    return rc ? rc : ok ? 0 : ad__err(err, AD_EINVAL, "store", "cannot encode %s: too large", key);
  case JSON_STRING:
    ok = bson_append_utf8(b, key, -1, json_string_value(v), (int)json_string_length(v));
    break;
  case JSON_INTEGER: {
    json_int_t i = json_integer_value(v);
    ok = i >= INT32_MIN && i <= INT32_MAX ? bson_append_int32(b, key, -1, (int32_t)i)
                                          : bson_append_int64(b, key, -1, (int64_t)i);
    break;
  }
  case JSON_REAL:
    ok = bson_append_double(b, key, -1, json_real_value(v));
    break;
  case JSON_TRUE:
  case JSON_FALSE:
    ok = bson_append_bool(b, key, -1, json_is_true(v));
    break;
  case JSON_NULL:
    ok = bson_append_null(b, key, -1);
    break;
  }
  return ok ? 0 : ad__err(err, AD_EINVAL, "store", "cannot encode %s: too large", key);
}

static int append_fields(bson_t *b, const json_t *j, int depth, ad_error_t *err)
{
  if (json_is_array(j)) {
    for (size_t i = 0; i < json_array_size(j); i++) {
      char idx[16];
      const char *key;
      bson_uint32_to_string((uint32_t)i, &key, idx, sizeof idx);
      int rc = append_value(b, key, json_array_get(j, i), depth, err);
      if (rc)
        return rc;
    }
    return 0;
  }
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)j, k, v) {
    int rc = append_value(b, k, v, depth, err);
    if (rc)
      return rc;
  }
  return 0;
}

bson_t *ad__json_to_bson(const json_t *j, ad_error_t *err)
{
  if (!json_is_object(j)) {
    ad__err(err, AD_EINVAL, "store", "cannot encode document: not a JSON object");
    return NULL;
  }
  if (has_ext_key(j))
    return doc_via_text(j, err);
  bson_t *b = bson_new();
  if (!b) {
    ad__err(err, AD_ENOMEM, "store", "cannot encode document: no memory");
    return NULL;
  }
  if (append_fields(b, j, 0, err)) {
    bson_destroy(b);
    return NULL;
  }
  return b;
}
