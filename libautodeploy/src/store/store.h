/* store.h - the MongoDB connection pool (libmongoc), shared by every module
 * that persists something. Code for MongoDB semantics; no multi-document
 * transactions (FerretDB, and sharded masters, do not need them). */
#ifndef AD_STORE_H
#define AD_STORE_H

#include <mongoc/mongoc.h>

#include "autodeploy/common.h"

typedef struct ad__store ad__store_t;

/* uri: a MongoDB URI; db: database name. Connects lazily. */
ad__store_t *ad__store_new(const char *uri, const char *db, ad_error_t *err);

/* mongoc_init once, with libmongoc's log routed to ad__log (domain
 * "store"); ad__store_new calls it. */
void ad__store_global_init(void);
void ad__store_destroy(ad__store_t **st_p);

/* Borrow a client (thread-safe pool) and give it back. */
mongoc_client_t *ad__store_pop(ad__store_t *st);
void ad__store_push(ad__store_t *st, mongoc_client_t *c);

/* A collection on a borrowed client (caller destroys it). */
mongoc_collection_t *ad__store_coll(ad__store_t *st, mongoc_client_t *c,
                                    const char *name);

/* 0 when the server answers a ping, else AD_ECONNECT + *err. */
int ad__store_ping(ad__store_t *st, ad_error_t *err);

/* Is this mongoc error "cannot reach the server" (spool and retry) rather
 * than "the server refused this document" (do not retry it)? */
int ad__store_error_is_transient(const bson_error_t *e);

const char *ad__store_db(const ad__store_t *st);

/* updateOne on collection `coll` with a borrowed client. Returns the
 * modified count (0 or 1), or -1 with *err filled (may be NULL). */
int64_t ad__store_update_one(ad__store_t *st, const char *coll, const bson_t *q,
                             const bson_t *u, ad_error_t *err);

#endif
