/* group.c - see group.h. */
#include <stdio.h>

#include "core/error_private.h"
#include "store/bson_json.h"
#include "store/group.h"

/* [{$match}, {$group: {_id: {f: "$f", ...}, count: {$sum: 1}}}, {$sort: {_id: 1}}] */
static bson_t *pipeline(const bson_t *match, const char *const *fields, size_t n)
{
  bson_t *p = bson_new(), stage, inner, id, sum, empty = BSON_INITIALIZER;
  char ref[128];
  bson_append_document_begin(p, "0", 1, &stage);
  bson_append_document(&stage, "$match", 6, match ? match : &empty);
  bson_append_document_end(p, &stage);
  bson_append_document_begin(p, "1", 1, &stage);
  bson_append_document_begin(&stage, "$group", 6, &inner);
  bson_append_document_begin(&inner, "_id", 3, &id);
  for (size_t i = 0; i < n; i++) {
    snprintf(ref, sizeof ref, "$%s", fields[i]);
    BSON_APPEND_UTF8(&id, fields[i], ref);
  }
  bson_append_document_end(&inner, &id);
  bson_append_document_begin(&inner, "count", 5, &sum);
  BSON_APPEND_INT32(&sum, "$sum", 1);
  bson_append_document_end(&inner, &sum);
  bson_append_document_end(&stage, &inner);
  bson_append_document_end(p, &stage);
  bson_append_document_begin(p, "2", 1, &stage);
  bson_append_document_begin(&stage, "$sort", 5, &inner);
  BSON_APPEND_INT32(&inner, "_id", 1);
  bson_append_document_end(&stage, &inner);
  bson_append_document_end(p, &stage);
  return p;
}

/* {_id: {f: v}, count: n} -> {f: v, count: n} */
static json_t *row(const bson_t *doc, const char *const *fields, size_t n)
{
  json_t *j = ad__bson_to_json(doc), *out = json_object();
  json_t *id = json_object_get(j, "_id");
  for (size_t i = 0; out && i < n; i++) {
    json_t *v = json_object_get(id, fields[i]);
    json_object_set(out, fields[i], v ? v : json_null());
  }
  json_t *c = json_object_get(j, "count");
  json_object_set_new(out, "count",
                      json_integer(json_is_real(c) ? (json_int_t)json_real_value(c)
                                                   : json_integer_value(c)));
  json_decref(j);
  return out;
}

json_t *ad__store_count_by(ad__store_t *st, const char *coll_name, const bson_t *match,
                           const char *const *fields, size_t nfields, ad_error_t *err)
{
  bson_t *p = pipeline(match, fields, nfields);
  mongoc_client_t *c = ad__store_pop(st);
  mongoc_collection_t *coll = ad__store_coll(st, c, coll_name);
  mongoc_cursor_t *cur = mongoc_collection_aggregate(coll, MONGOC_QUERY_NONE, p, NULL, NULL);
  json_t *rows = json_array();
  const bson_t *doc;
  bson_error_t be;
  while (rows && mongoc_cursor_next(cur, &doc))
    json_array_append_new(rows, row(doc, fields, nfields));
  if (rows && mongoc_cursor_error(cur, &be)) {
    ad__err(err, ad__store_error_is_transient(&be) ? AD_ECONNECT : AD_EIO, "store",
            "counting %s.%s: %s", ad__store_db(st), coll_name, be.message);
    json_decref(rows);
    rows = NULL;
  } else if (!rows) {
    ad__err(err, AD_ENOMEM, "store", "counting %s: no memory", coll_name);
  }
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(coll);
  ad__store_push(st, c);
  bson_destroy(p);
  return rows;
}

int ad__store_has_collection(ad__store_t *st, const char *coll, ad_error_t *err)
{
  mongoc_client_t *c = ad__store_pop(st);
  mongoc_database_t *db = mongoc_client_get_database(c, ad__store_db(st));
  bson_error_t be = {0};
  int rc = mongoc_database_has_collection(db, coll, &be) ? 1 : 0;
  if (!rc && be.code)
    rc = ad__err(err, ad__store_error_is_transient(&be) ? AD_ECONNECT : AD_EIO, "store",
                 "listing the collections of %s: %s", ad__store_db(st), be.message);
  mongoc_database_destroy(db);
  ad__store_push(st, c);
  return rc;
}
