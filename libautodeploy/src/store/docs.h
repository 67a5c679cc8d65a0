/* docs.h - documents with a revision and a history, the way every
 * autodeploy collection changes (hosts, platforms, services): read as
 * jansson objects, insert (duplicate _id = 0, not an error), and change
 * with one conditional update on {_id, rev} that appends to `history`
 * (trimmed here: FerretDB v1.24.2 ignores $slice). No transactions. */
#ifndef AD_DOCS_H
#define AD_DOCS_H

#include <jansson.h>

#include "store/bson_json.h"
#include "store/store.h"

/* The string at o[k], or "" when absent or not a string (never NULL). */
static inline const char *ad__jstr(const json_t *o, const char *k)
{
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}
/* The integer at o[k], or 0 when absent or not an integer. */
static inline json_int_t ad__jint(const json_t *o, const char *k)
{
  return json_integer_value(json_object_get(o, k));
}
/* The number (integer or real) at o[k], or 0.0 when absent or not a number. */
static inline double ad__jnum(const json_t *o, const char *k)
{
  return json_number_value(json_object_get(o, k));
}

/* Rows matching `query` (taken), with find `opts` (taken, may be NULL). */
json_t *ad__docs_find(ad__store_t *st, const char *coll, json_t *query, json_t *opts,
                      ad_error_t *err);
/* updateOne(query, update), both taken: the modified count (0 or 1), or
 * -1 + err (a document that does not encode, a store error). */
int64_t ad__docs_update(ad__store_t *st, const char *coll, json_t *query, json_t *update,
                        ad_error_t *err);
/* `sets` (taken): [{"_id", "set"}, ...], each an updateOne({_id}, {$set:
 * set}), sent as one unordered bulk write (one round trip however many).
 * The matched count, or -1 + err (a document that does not encode, a store
 * error: some may have been written). An empty list writes nothing. */
int64_t ad__docs_set_many(ad__store_t *st, const char *coll, json_t *sets, ad_error_t *err);
/* The document with _id `id`, or NULL + AD_ENOTFOUND naming `what`. */
json_t *ad__docs_get(ad__store_t *st, const char *coll, const char *id, const char *what,
                     ad_error_t *err);
/* 1 inserted, 0 _id taken, <0 + err. */
int ad__docs_insert(ad__store_t *st, const char *coll, const json_t *doc, ad_error_t *err);
/* countDocuments(query taken), or -1 (logged). */
int64_t ad__docs_count(ad__store_t *st, const char *coll, json_t *query);
/* deleteOne by _id: 0 or AD_ECONNECT. */
int ad__docs_delete(ad__store_t *st, const char *coll, const char *id);

/* $set `set` (may be NULL) plus history entry {at, what, cause, actor,
 * from/to when `set` changes `state`} and updated_at (+ state_changed_at),
 * $inc rev, only if the stored document still has `doc`'s rev. 1 done, 0
 * the document changed meanwhile, <0 store error. State changes are logged
 * under `domain`. */
int ad__docs_cas(ad__store_t *st, const char *coll, const json_t *doc, json_t *set,
                 const char *what, const char *cause, const char *actor, size_t history_max,
                 const char *domain, ad_error_t *err);

#endif
