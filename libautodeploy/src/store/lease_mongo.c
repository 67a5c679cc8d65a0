/* lease_mongo.c - the lease document in MongoDB (lease.h): every step one
 * findAndModify or one insert (a takeover: the insert of a per-term claim
 * document, then one findAndModify), with writeConcern majority so that a lease
 * acknowledged by a replica set's primary survives its failover (a lease
 * on w:1 could be rolled back and granted twice). */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "store/lease.h"

static void append_majority(bson_t *opts)
{
  bson_t wc;
  BSON_APPEND_DOCUMENT_BEGIN(opts, "writeConcern", &wc);
  BSON_APPEND_UTF8(&wc, "w", "majority");
  bson_append_document_end(opts, &wc);
}

static void doc_from_bson(const bson_t *b, ad__lease_doc_t *out)
{
  bson_iter_t it;
  memset(out, 0, sizeof *out);
  /* `owner`: the cycle lease as engines before the shared lease wrote it
   * (a rolling upgrade meets one; its expiry is read the same way) */
  if ((bson_iter_init_find(&it, b, "holder") || bson_iter_init_find(&it, b, "owner")) &&
      BSON_ITER_HOLDS_UTF8(&it))
    snprintf(out->holder, sizeof out->holder, "%s", bson_iter_utf8(&it, NULL));
  if (bson_iter_init_find(&it, b, "term") && BSON_ITER_HOLDS_NUMBER(&it))
    out->term = bson_iter_as_int64(&it);
  if (bson_iter_init_find(&it, b, "until_ms") && BSON_ITER_HOLDS_NUMBER(&it))
    out->until_ms = bson_iter_as_int64(&it);
  if (bson_iter_init_find(&it, b, "since_ms") && BSON_ITER_HOLDS_NUMBER(&it))
    out->since_ms = bson_iter_as_int64(&it);
}

/* findAndModify(q, u, new): 1 and *out when a document matched, 0 none, <0. */
static int fam(mongoc_collection_t *coll, const bson_t *q, const bson_t *u, ad__lease_doc_t *out,
               ad_error_t *err)
{
  mongoc_find_and_modify_opts_t *o = mongoc_find_and_modify_opts_new();
  bson_t extra = BSON_INITIALIZER, reply;
  append_majority(&extra);
  mongoc_find_and_modify_opts_set_update(o, u);
  mongoc_find_and_modify_opts_set_flags(o, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
  mongoc_find_and_modify_opts_append(o, &extra);
  bson_error_t be;
  int rc = 0;
  if (mongoc_collection_find_and_modify_with_opts(coll, q, o, &reply, &be)) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
      uint32_t len;
      const uint8_t *data;
      bson_iter_document(&it, &len, &data);
      bson_t v;
      if (bson_init_static(&v, data, len)) {
        doc_from_bson(&v, out);
        rc = 1;
      }
    }
  } else {
    rc = ad__err(err, AD_ECONNECT, "store", "lease in %s: %s",
                 mongoc_collection_get_name(coll), be.message);
  }
  bson_destroy(&reply);
  bson_destroy(&extra);
  mongoc_find_and_modify_opts_destroy(o);
  return rc;
}

/* Insert the first document: 1, 0 (someone was first: duplicate _id), <0. */
static int create(mongoc_collection_t *coll, const char *name, const char *holder, int64_t now,
                  int64_t until, ad__lease_doc_t *out, ad_error_t *err)
{
  bson_t *d = BCON_NEW("_id", BCON_UTF8(name), "holder", BCON_UTF8(holder), "term", BCON_INT64(1),
                       "until_ms", BCON_INT64(until), "since_ms", BCON_INT64(now));
  bson_t opts = BSON_INITIALIZER;
  append_majority(&opts);
  bson_error_t be;
  int rc = 1;
  if (mongoc_collection_insert_one(coll, d, &opts, NULL, &be))
    doc_from_bson(d, out);
  else if (be.code == 11000)
    rc = 0;
  else
    rc = ad__err(err, AD_ECONNECT, "store", "lease in %s: %s", mongoc_collection_get_name(coll),
                 be.message);
  bson_destroy(&opts);
  bson_destroy(d);
  return rc;
}

/* The document as it stands: 0 (found or absent), <0. */
static int read_doc(mongoc_collection_t *coll, const char *name, ad__lease_doc_t *out, int *found,
                    ad_error_t *err)
{
  bson_t *q = BCON_NEW("_id", BCON_UTF8(name));
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, q, NULL, NULL);
  const bson_t *d;
  bson_error_t be;
  int rc = 0;
  *found = 0;
  memset(out, 0, sizeof *out);
  if (mongoc_cursor_next(cur, &d)) {
    doc_from_bson(d, out);
    *found = 1;
  } else if (mongoc_cursor_error(cur, &be)) {
    rc = ad__err(err, AD_ECONNECT, "store", "lease in %s: %s", mongoc_collection_get_name(coll),
                 be.message);
  }
  mongoc_cursor_destroy(cur);
  bson_destroy(q);
  return rc;
}

/* A claim whose winner died before it rewrote the lease document would
 * block that term forever: one older than a lease is removed (by its
 * at_ms, so a fresh claim is never removed), and the next claim retries. */
static void drop_stale_claim(mongoc_collection_t *coll, const char *claim_id, int64_t now,
                             int64_t lease_ms)
{
  bson_t *q = BCON_NEW("_id", BCON_UTF8(claim_id), "at_ms", "{", "$lt", BCON_INT64(now - lease_ms), "}");
  mongoc_collection_delete_one(coll, q, NULL, NULL, NULL);
  bson_destroy(q);
}

/* Take over an expired document of term `t`: the unique insert of
 * {_id: "<name>#<t+1>"} decides who gets term t+1 (an insert of a given
 * _id succeeds once on any server; FerretDB's findAndModify is not atomic
 * under concurrency, FerretDB#3040), then the winner rewrites the lease
 * document. 1 taken, 0 someone else took it, <0. */
static int take(mongoc_collection_t *coll, const char *name, const char *holder, int64_t t,
                int64_t now, int64_t until, ad__lease_doc_t *out, ad_error_t *err)
{
  char claim_id[160];
  snprintf(claim_id, sizeof claim_id, "%s#%lld", name, (long long)(t + 1));
  bson_t *d = BCON_NEW("_id", BCON_UTF8(claim_id), "holder", BCON_UTF8(holder), "at_ms",
                       BCON_INT64(now));
  bson_t opts = BSON_INITIALIZER;
  append_majority(&opts);
  bson_error_t be;
  int rc = 1;
  if (!mongoc_collection_insert_one(coll, d, &opts, NULL, &be))
    rc = be.code == 11000 ? 0
                          : ad__err(err, AD_ECONNECT, "store", "lease in %s: %s",
                                    mongoc_collection_get_name(coll), be.message);
  bson_destroy(&opts);
  bson_destroy(d);
  if (rc == 0)
    drop_stale_claim(coll, claim_id, now, until - now);
  if (rc != 1)
    return rc;
  /* term 0: a document written before terms (the old cycle lease) */
  bson_t *q = t > 0 ? BCON_NEW("_id", BCON_UTF8(name), "term", BCON_INT64(t))
                    : BCON_NEW("_id", BCON_UTF8(name), "term", "{", "$exists", BCON_BOOL(false), "}");
  bson_t *up = BCON_NEW("$set", "{", "holder", BCON_UTF8(holder), "until_ms", BCON_INT64(until),
                        "since_ms", BCON_INT64(now), "term", BCON_INT64(t + 1), "}");
  rc = fam(coll, q, up, out, err);
  bson_destroy(q);
  bson_destroy(up);
  if (rc == 1 && t > 0) { /* the claim of the term before is history now */
    snprintf(claim_id, sizeof claim_id, "%s#%lld", name, (long long)t);
    bson_t *old = BCON_NEW("_id", BCON_UTF8(claim_id));
    mongoc_collection_delete_one(coll, old, NULL, NULL, NULL);
    bson_destroy(old);
  }
  return rc;
}

static int m_claim(void *u, const char *name, const char *holder, int64_t term, int64_t now,
                   int64_t skew, int64_t until, ad__lease_doc_t *out, ad_error_t *err)
{
  ad__lease_mongo_t *m = u;
  mongoc_client_t *c = ad__store_pop(m->store);
  mongoc_collection_t *coll = ad__store_coll(m->store, c, m->coll);
  int rc = 0, found = 0;
  if (term > 0) { /* renew: still ours, same term, not yet takeable by anyone */
    bson_t *q = BCON_NEW("_id", BCON_UTF8(name), "holder", BCON_UTF8(holder), "term",
                         BCON_INT64(term), "until_ms", "{", "$gte", BCON_INT64(now - skew), "}");
    bson_t *up = BCON_NEW("$set", "{", "until_ms", BCON_INT64(until), "}");
    rc = fam(coll, q, up, out, err);
    bson_destroy(q);
    bson_destroy(up);
  }
  if (rc == 0)
    rc = read_doc(coll, name, out, &found, err);
  if (rc == 0 && !found)
    rc = create(coll, name, holder, now, until, out, err);
  else if (rc == 0 && out->until_ms < now - skew)
    rc = take(coll, name, holder, out->term, now, until, out, err);
  if (rc == 0) /* another holder: say who */
    rc = read_doc(coll, name, out, &found, err);
  mongoc_collection_destroy(coll);
  ad__store_push(m->store, c);
  return rc;
}

static int m_release(void *u, const char *name, const char *holder, int64_t term)
{
  ad__lease_mongo_t *m = u;
  bson_t *q = BCON_NEW("_id", BCON_UTF8(name), "holder", BCON_UTF8(holder), "term", BCON_INT64(term));
  bson_t *up = BCON_NEW("$set", "{", "until_ms", BCON_INT64(0), "}");
  int64_t n = ad__store_update_one(m->store, m->coll, q, up, NULL);
  bson_destroy(q);
  bson_destroy(up);
  return n < 0 ? (int)n : n == 1;
}

const ad__lease_store_t ad__lease_mongo = {.claim = m_claim, .release = m_release};

json_t *ad__lease_mongo_get(ad__store_t *st, const char *coll_name, const char *name,
                            ad_error_t *err)
{
  mongoc_client_t *c = ad__store_pop(st);
  mongoc_collection_t *coll = ad__store_coll(st, c, coll_name);
  ad__lease_doc_t d;
  int found = 0;
  int rc = read_doc(coll, name, &d, &found, err);
  mongoc_collection_destroy(coll);
  ad__store_push(st, c);
  if (rc < 0)
    return NULL;
  if (!found)
    return json_pack("{s:s,s:n}", "name", name, "holder");
  char until[32], since[32];
  ad__iso_ms(d.until_ms, until);
  ad__iso_ms(d.since_ms, since);
  json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:I,s:s,s:b}", "name", name, "holder", d.holder, "term",
                        (json_int_t)d.term, "until", until, "until_ms", (json_int_t)d.until_ms,
                        "since", since, "expired", d.until_ms < ad__now_ms());
  if (!o)
    ad__err(err, AD_ENOMEM, "store", "no memory for the lease %s", name);
  return o;
}
