/* cursor.c - see cursor.h. */
#include "core/error_private.h"
#include "store/bson_json.h"
#include "store/cursor.h"

int ad__store_each(ad__store_t *st, const char *coll_name, const bson_t *q, const bson_t *opts,
                   ad__store_doc_fn fn, void *user, ad_error_t *err)
{
  mongoc_client_t *c = ad__store_pop(st);
  mongoc_collection_t *coll = ad__store_coll(st, c, coll_name);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, q, opts, NULL);
  const bson_t *doc;
  bson_error_t be;
  int rc = 0;
  while (!rc && mongoc_cursor_next(cur, &doc))
    rc = fn(user, doc);
  if (!rc && mongoc_cursor_error(cur, &be))
    rc = ad__err(err, ad__store_error_is_transient(&be) ? AD_ECONNECT : AD_EIO, "store",
                 "reading %s.%s: %s", ad__store_db(st), coll_name, be.message);
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(coll);
  ad__store_push(st, c);
  return rc;
}

static int append_json(void *rows, const bson_t *doc)
{
  json_t *j = ad__bson_to_json(doc);
  if (j && json_array_append_new(rows, j))
    return AD_ENOMEM;
  return 0; /* a document that does not convert is left out, as before */
}

json_t *ad__store_find_json(ad__store_t *st, const char *coll, const bson_t *q,
                            const bson_t *opts, ad_error_t *err)
{
  json_t *rows = json_array();
  if (!rows) {
    ad__err(err, AD_ENOMEM, "store", "reading %s: no memory", coll);
    return NULL;
  }
  int rc = ad__store_each(st, coll, q, opts, append_json, rows, err);
  if (rc == AD_ENOMEM)
    ad__err(err, AD_ENOMEM, "store", "reading %s: no memory", coll);
  if (rc) {
    json_decref(rows);
    return NULL;
  }
  return rows;
}
