/* cursor.h - the one MongoDB find loop: borrow a client, find, walk the
 * cursor, tell a cursor error from the end, give everything back. Every
 * module that reads several documents goes through here. */
#ifndef AD_STORE_CURSOR_H
#define AD_STORE_CURSOR_H

#include <jansson.h>

#include "store/store.h"

/* Called once per document, which is borrowed for the call. 0 goes on;
 * any other value stops the walk and is what ad__store_each returns. */
typedef int (*ad__store_doc_fn)(void *user, const bson_t *doc);

/* find(`q`, `opts` (may be NULL)) on collection `coll`, each document to
 * `fn`. Returns 0 at the end, fn's non-zero value when it stopped the walk,
 * or an error + err ("reading <db>.<coll>: <server's message>"):
 * AD_ECONNECT when the server cannot be reached (worth retrying), AD_EIO
 * when it answered with an error (a bad query, a refused read). */
int ad__store_each(ad__store_t *st, const char *coll, const bson_t *q, const bson_t *opts,
                   ad__store_doc_fn fn, void *user, ad_error_t *err);

/* The matching documents as a new array of jansson objects (see
 * store/bson_json.h; a document that does not convert is left out), or
 * NULL + err (AD_ECONNECT, AD_ENOMEM). */
json_t *ad__store_find_json(ad__store_t *st, const char *coll, const bson_t *q,
                            const bson_t *opts, ad_error_t *err);

#endif
