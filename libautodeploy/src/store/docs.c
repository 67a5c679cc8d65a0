/* docs.c - see docs.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "store/cursor.h"
#include "store/docs.h"

json_t *ad__docs_find(ad__store_t *st, const char *coll_name, json_t *query, json_t *opts,
                      ad_error_t *err)
{
  bson_t *q = ad__json_to_bson(query, err), *o = opts ? ad__json_to_bson(opts, err) : NULL;
  json_decref(query);
  json_decref(opts);
  if (!q) {
    if (o)
      bson_destroy(o);
    return NULL;
  }
  json_t *rows = ad__store_find_json(st, coll_name, q, o, err);
  bson_destroy(q);
  if (o)
    bson_destroy(o);
  return rows;
}

int64_t ad__docs_update(ad__store_t *st, const char *coll, json_t *query, json_t *update,
                        ad_error_t *err)
{
  bson_t *q = ad__json_to_bson(query, err), *u = q ? ad__json_to_bson(update, err) : NULL;
  json_decref(query);
  json_decref(update);
  int64_t n = u ? ad__store_update_one(st, coll, q, u, err) : -1;
  if (q)
    bson_destroy(q);
  if (u)
    bson_destroy(u);
  return n;
}

int64_t ad__docs_set_many(ad__store_t *st, const char *coll_name, json_t *sets, ad_error_t *err)
{
  if (!json_array_size(sets)) {
    json_decref(sets);
    return 0;
  }
  mongoc_client_t *c = ad__store_pop(st);
  mongoc_collection_t *coll = ad__store_coll(st, c, coll_name);
  bson_t opts = BSON_INITIALIZER, reply = BSON_INITIALIZER;
  BSON_APPEND_BOOL(&opts, "ordered", false);
  mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
  int64_t n = -1;
  size_t i;
  json_t *one;
  json_array_foreach(sets, i, one) {
    json_t *q = json_pack("{s:O}", "_id", json_object_get(one, "_id"));
    json_t *u = json_pack("{s:O}", "$set", json_object_get(one, "set"));
    bson_t *bq = q && u ? ad__json_to_bson(q, err) : NULL, *bu = bq ? ad__json_to_bson(u, err) : NULL;
    json_decref(q);
    json_decref(u);
    int ok = bu && mongoc_bulk_operation_update_one_with_opts(bulk, bq, bu, NULL, NULL);
    if (bq)
      bson_destroy(bq);
    if (bu)
      bson_destroy(bu);
    if (!ok) {
      if (!q || !u)
        ad__err(err, AD_ENOMEM, "store", "no memory");
      goto done;
    }
  }
  bson_error_t be;
  bson_destroy(&reply);
  if (mongoc_bulk_operation_execute(bulk, &reply, &be)) {
    bson_iter_t it;
    n = bson_iter_init_find(&it, &reply, "nMatched") ? bson_iter_as_int64(&it) : 0;
  } else {
    ad__err(err, ad__store_error_is_transient(&be) ? AD_ECONNECT : AD_EIO, "store",
            "updating %zu documents in %s: %s", json_array_size(sets), coll_name, be.message);
  }
done:
  bson_destroy(&reply);
  bson_destroy(&opts);
  mongoc_bulk_operation_destroy(bulk);
  mongoc_collection_destroy(coll);
  ad__store_push(st, c);
  json_decref(sets);
  return n;
}

json_t *ad__docs_get(ad__store_t *st, const char *coll, const char *id, const char *what,
                     ad_error_t *err)
{
  json_t *rows = ad__docs_find(st, coll, json_pack("{s:s}", "_id", id),
                               json_pack("{s:i}", "limit", 1), err);
  json_t *one = json_incref(json_array_get(rows, 0));
  if (rows && !one)
    ad__err(err, AD_ENOTFOUND, "store", "no %s %s", what, id);
  json_decref(rows);
  return one;
}

int ad__docs_insert(ad__store_t *st, const char *coll_name, const json_t *doc, ad_error_t *err)
{
  bson_t *b = ad__json_to_bson(doc, err);
  if (!b)
    return AD_EINVAL;
  mongoc_client_t *c = ad__store_pop(st);
  mongoc_collection_t *coll = ad__store_coll(st, c, coll_name);
  bson_error_t be;
  bool ok = mongoc_collection_insert_one(coll, b, NULL, NULL, &be);
  mongoc_collection_destroy(coll);
  ad__store_push(st, c);
  bson_destroy(b);
  if (ok)
    return 1;
  if (be.code == 11000)
    return 0;
  return ad__err(err, AD_ECONNECT, "store", "insert into %s: %s", coll_name, be.message);
}

int64_t ad__docs_count(ad__store_t *st, const char *coll_name, json_t *query)
{
  bson_t *q = ad__json_to_bson(query, NULL);
  json_decref(query);
  if (!q)
    return -1;
  mongoc_client_t *c = ad__store_pop(st);
  mongoc_collection_t *coll = ad__store_coll(st, c, coll_name);
  bson_error_t be;
  int64_t n = mongoc_collection_count_documents(coll, q, NULL, NULL, NULL, &be);
  if (n < 0)
    AD_LOG_E("store", "counting %s: %s", coll_name, be.message);
  mongoc_collection_destroy(coll);
  ad__store_push(st, c);
  bson_destroy(q);
  return n;
}

int ad__docs_delete(ad__store_t *st, const char *coll_name, const char *id)
{
  mongoc_client_t *c = ad__store_pop(st);
  mongoc_collection_t *coll = ad__store_coll(st, c, coll_name);
  bson_t *q = BCON_NEW("_id", BCON_UTF8(id));
  bson_error_t be;
  bool ok = mongoc_collection_delete_one(coll, q, NULL, NULL, &be);
  bson_destroy(q);
  mongoc_collection_destroy(coll);
  ad__store_push(st, c);
  return ok ? 0 : AD_ECONNECT;
}

int ad__docs_cas(ad__store_t *st, const char *coll, const json_t *doc, json_t *set,
                 const char *what, const char *cause, const char *actor, size_t history_max,
                 const char *domain, ad_error_t *err)
{
  char now[32], from[32] = "", to[32] = "";
  ad__iso_ms(ad__now_ms(), now);
  json_t *fields = set ? json_deep_copy(set) : json_object();
  const char *s = json_string_value(json_object_get(doc, "state"));
  snprintf(from, sizeof from, "%s", s ? s : "");
  s = json_string_value(json_object_get(fields, "state"));
  snprintf(to, sizeof to, "%s", s ? s : "");
  json_t *hist = json_deep_copy(json_object_get(doc, "history"));
  if (!json_is_array(hist)) {
    json_decref(hist);
    hist = json_array();
  }
  json_t *h = json_pack("{s:s,s:s,s:s,s:s}", "at", now, "what", what, "cause", cause ? cause : "",
                        "actor", actor && *actor ? actor : "autodeploy");
  int moved = *to && strcmp(from, to);
  if (moved) {
    json_object_set_new(h, "from", json_string(from));
    json_object_set_new(h, "to", json_string(to));
    json_object_set_new(fields, "state_changed_at", json_string(now));
  }
  json_array_append_new(hist, h);
  while (json_array_size(hist) > history_max)
    json_array_remove(hist, 0);
  json_object_set_new(fields, "history", hist);
  json_object_set_new(fields, "updated_at", json_string(now));
  json_t *query = json_pack("{s:O,s:I}", "_id", json_object_get(doc, "_id"), "rev",
                            json_integer_value(json_object_get(doc, "rev")));
  json_t *update = json_pack("{s:o,s:{s:i}}", "$set", fields, "$inc", "rev", 1);
  int64_t n = ad__docs_update(st, coll, query, update, err);
  if (n == 1 && moved)
    ad__log(AD_LOG_INFO, domain, "%s %s: %s -> %s (%s)", coll,
           json_string_value(json_object_get(doc, "_id")), from, to, cause ? cause : "");
  return n < 0 ? AD_ECONNECT : (int)n;
}
