/*
 * hosts_store.c - the host documents in MongoDB (the `hosts` collection,
 * docs/cmdb.md), the minion -> host lookup (`host_minions`) and the outbox
 * the CMDB push thread reads.
 *
 * A leaf: it calls store/ and nothing else of the registry. Who must hear
 * of a change (the CMDB push) registers a callback (ad__hosts_on_change).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "registry/registry_private.h"
#include "store/docs.h"

/* ---- documents (docs.c) ------------------------------------------------------------ */

json_t *ad__hosts_find(ad__registry_t *reg, json_t *query, json_t *opts, ad_error_t *err)
{
  return ad__docs_find(reg->env.store, reg->c.collection, query, opts, err);
}

json_t *ad__reg_find_in(ad__registry_t *reg, const char *coll_name, json_t *query)
{
  return ad__docs_find(reg->env.store, coll_name, query, NULL, NULL);
}

json_t *ad__hosts_find_one(ad__registry_t *reg, json_t *query, ad_error_t *err)
{
  json_t *rows = ad__hosts_find(reg, query, json_pack("{s:i}", "limit", 1), err);
  json_t *one = json_incref(json_array_get(rows, 0));
  if (rows && !one)
    ad__err(err, AD_ENOTFOUND, "registry", "no such host");
  json_decref(rows);
  return one;
}

int ad__reg_insert(ad__registry_t *reg, const char *coll_name, const json_t *doc, ad_error_t *err)
{
  return ad__docs_insert(reg->env.store, coll_name, doc, err);
}

int ad__reg_delete(ad__registry_t *reg, const char *key)
{
  return ad__docs_delete(reg->env.store, reg->c.collection, key);
}

void ad__hosts_on_change(ad__registry_t *reg, void (*fn)(void *user), void *user)
{
  reg->on_change = fn;
  reg->on_change_user = user;
}

void ad__registry_on_ready(ad__registry_t *reg, void (*fn)(void *user, const json_t *host),
                           void *user)
{
  reg->on_ready = fn;
  reg->on_ready_user = user;
}

void ad__hosts_ready_hook(ad__registry_t *reg, const json_t *doc, const json_t *set)
{
  const char *st = json_string_value(json_object_get(set, "state"));
  if (!reg->on_ready || !st || strcmp(st, "ready") || !json_object_get(set, "ready_at"))
    return; /* only the move into ready that sets ready_at (init done) */
  json_t *host = json_deep_copy(doc);
  if (host && !json_object_update(host, (json_t *)set))
    reg->on_ready(reg->on_ready_user, host);
  json_decref(host);
}

/* Every host change also queues it for the outside CMDB (cmdb.c): the flag
 * is set in the same update, the callback only wakes the push thread. */
int ad__hosts_cas(ad__registry_t *reg, const json_t *doc, json_t *set, const char *what,
                  const char *cause, const char *actor, ad_error_t *err)
{
  json_t *fields = set ? json_deep_copy(set) : json_object();
  if (!fields)
    return ad__err(err, AD_ENOMEM, "registry", "no memory");
  json_object_set_new(fields, "cmdb_dirty", json_true());
  json_object_set_new(fields, "cmdb_next_ms", json_integer(0));
  int rc = ad__docs_cas(reg->env.store, reg->c.collection, doc, fields, what, cause, actor,
                        (size_t)reg->c.history_max, "registry", err);
  json_decref(fields);
  if (rc == 1 && reg->on_change)
    reg->on_change(reg->on_change_user);
  if (rc == 1)
    ad__hosts_ready_hook(reg, doc, set);
  return rc;
}

/* last_seen of host `key` only: no revision, no history, no push */
void ad__hosts_touch_seen(ad__registry_t *reg, const char *key, int64_t now)
{
  char iso[32];
  ad__iso_ms(now, iso);
  bson_t *q = BCON_NEW("_id", BCON_UTF8(key));
  bson_t *u = BCON_NEW("$set", "{", "last_seen", BCON_UTF8(iso), "last_seen_ms", BCON_INT64(now), "}");
  ad__store_update_one(reg->env.store, reg->c.collection, q, u, NULL);
  bson_destroy(q);
  bson_destroy(u);
}

/* last_seen of every host in `ids` (liveness), one update */
void ad__hosts_mark_seen(ad__registry_t *reg, const json_t *ids, int64_t now)
{
  char iso[32];
  ad__iso_ms(now, iso);
  json_t *query = json_pack("{s:{s:O}}", "_id", "$in", ids);
  json_t *upd = json_pack("{s:{s:I,s:s}}", "$set", "last_seen_ms", (json_int_t)now,
                          "last_seen", iso);
  bson_t *bq = ad__json_to_bson(query, NULL), *bu = ad__json_to_bson(upd, NULL);
  mongoc_client_t *c = ad__store_pop(reg->env.store);
  mongoc_collection_t *coll = ad__store_coll(reg->env.store, c, reg->c.collection);
  bson_error_t be;
  if (bq && bu && !mongoc_collection_update_many(coll, bq, bu, NULL, NULL, &be))
    AD_LOG_E("registry", "liveness: %s", be.message);
  mongoc_collection_destroy(coll);
  ad__store_push(reg->env.store, c);
  if (bq)
    bson_destroy(bq);
  if (bu)
    bson_destroy(bu);
  json_decref(query);
  json_decref(upd);
}

/* Indexes for the queries by minion and state (MongoDB uses them; FerretDB
 * accepts them and scans anyway, which is why host_minions exists). */
void ad__hosts_make_indexes(ad__registry_t *reg)
{
  mongoc_client_t *c = ad__store_pop(reg->env.store);
  bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(reg->c.collection), "indexes", "[",
                         "{", "key", "{", "minion", BCON_INT32(1), "}", "name", BCON_UTF8("minion_1"), "}",
                         "{", "key", "{", "state", BCON_INT32(1), "}", "name", BCON_UTF8("state_1"), "}",
                         "]");
  bson_error_t be;
  if (mongoc_client_command_simple(c, ad__store_db(reg->env.store), cmd, NULL, NULL, &be))
    reg->indexed = 1;
  else
    AD_LOG_W("registry", "indexes on %s: %s (retried later)", reg->c.collection, be.message);
  bson_destroy(cmd);
  ad__store_push(reg->env.store, c);
}

/* ---- host_minions -------------------------------------------------------------------- */

/* host_minions: {_id: minion id, key: host key}, the minion -> host lookup
 * kept as its own collection so it is always a lookup by _id (FerretDB
 * scans for any other field). A hint only: the host document is checked. */
void ad__hosts_map_minion(ad__registry_t *reg, const char *id, const char *key)
{
  json_t *doc = json_pack("{s:s,s:s}", "_id", id, "key", key);
  if (doc && ad__reg_insert(reg, AD__HOST_MINIONS, doc, NULL) == 0) {
    bson_t *q = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *u = BCON_NEW("$set", "{", "key", BCON_UTF8(key), "}");
    ad__store_update_one(reg->env.store, AD__HOST_MINIONS, q, u, NULL);
    bson_destroy(q);
    bson_destroy(u);
  }
  json_decref(doc);
}

/* The live host record of minion `id` (not retired or quarantined), or NULL. */
json_t *ad__reg_host_of(ad__registry_t *reg, const char *id)
{
  json_t *rows = ad__reg_find_in(reg, AD__HOST_MINIONS, json_pack("{s:s}", "_id", id));
  const char *key = json_string_value(json_object_get(json_array_get(rows, 0), "key"));
  json_t *doc = key ? ad__hosts_find_one(reg, json_pack("{s:s}", "_id", key), NULL) : NULL;
  json_decref(rows);
  const char *st = json_string_value(json_object_get(doc, "state"));
  if (doc && (strcmp(ad__jstr(doc, "minion"), id) || !st || !strcmp(st, "retired") ||
              !strcmp(st, "quarantined"))) {
    json_decref(doc);
    doc = NULL;
  }
  return doc;
}

/* ---- the CMDB outbox (cmdb.h's ad__cmdb_outbox_t over the hosts) ---------------------- */

static json_t *outbox_due(void *user, int64_t now, int limit)
{
  ad__registry_t *reg = user;
  return ad__hosts_find(reg,
                        json_pack("{s:b,s:{s:I}}", "cmdb_dirty", 1, "cmdb_next_ms", "$lte",
                                  (json_int_t)now),
                        json_pack("{s:I,s:{s:i}}", "limit", (json_int_t)limit, "sort",
                                  "cmdb_next_ms", 1), NULL);
}

/* $set `set` (taken) on the host only if it is still at doc's rev */
static void outbox_mark(void *user, const json_t *doc, json_t *set)
{
  ad__registry_t *reg = user;
  json_t *q = json_pack("{s:s,s:O}", "_id", ad__jstr(doc, "_id"), "rev", json_object_get(doc, "rev"));
  json_t *u = json_pack("{s:o}", "$set", set);
  bson_t *bq = ad__json_to_bson(q, NULL), *bu = ad__json_to_bson(u, NULL);
  ad_error_t err;
  if (bq && bu && ad__store_update_one(reg->env.store, reg->c.collection, bq, bu, &err) < 0)
    AD_LOG_E("cmdb", "recording the push of %s: %s", ad__jstr(doc, "_id"), err.message);
  if (bq)
    bson_destroy(bq);
  if (bu)
    bson_destroy(bu);
  json_decref(q);
  json_decref(u);
}

ad__cmdb_outbox_t ad__hosts_outbox(ad__registry_t *reg)
{
  ad__cmdb_outbox_t box = {reg->env.store ? outbox_due : NULL, outbox_mark, reg};
  return box;
}

/* ---- bulk inserts (batch.c) ------------------------------------------------------------ */

/* One unordered bulk insert of `docs`: res[i] 1 inserted, 0 its _id was
 * taken (11000, the answer the registry acts on), <0 store error (logged;
 * every document not named in writeErrors went in only when the reply says
 * so, so a failed round trip marks them all). */
void ad__hosts_insert_many(ad__registry_t *reg, const char *coll_name, json_t *const *docs,
                           size_t n, int *res)
{
  for (size_t i = 0; i < n; i++)
    res[i] = 1;
  if (n == 0)
    return;
  mongoc_client_t *c = ad__store_pop(reg->env.store);
  mongoc_collection_t *coll = ad__store_coll(reg->env.store, c, coll_name);
  bson_t opts = BSON_INITIALIZER, reply;
  BSON_APPEND_BOOL(&opts, "ordered", false);
  mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
  size_t *sent = malloc(n * sizeof *sent), m = 0; /* bulk index -> docs index */
  for (size_t i = 0; sent && i < n; i++) {
    ad_error_t err;
    bson_t *b = ad__json_to_bson(docs[i], &err);
    if (!b) {
      AD_LOG_E("registry", "storing %s in %s: %s", ad__jstr(docs[i], "_id"), coll_name,
               err.message);
      res[i] = AD_EINVAL;
      continue;
    }
    mongoc_bulk_operation_insert_with_opts(bulk, b, NULL, NULL);
    bson_destroy(b);
    sent[m++] = i;
  }
  if (!sent || m == 0) {
    for (size_t i = 0; !sent && i < n; i++)
      res[i] = AD_ENOMEM;
    free(sent);
    bson_destroy(&opts);
    mongoc_bulk_operation_destroy(bulk);
    mongoc_collection_destroy(coll);
    ad__store_push(reg->env.store, c);
    return;
  }
  bson_error_t be;
  bson_iter_t it, we;
  if (!mongoc_bulk_operation_execute(bulk, &reply, &be)) {
    if (!bson_iter_init_find(&it, &reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        ad__store_error_is_transient(&be)) {
      AD_LOG_E("registry", "storing %zu documents in %s: %s", n, coll_name, be.message);
      for (size_t j = 0; j < m; j++)
        res[sent[j]] = AD_ECONNECT;
    } else if (bson_iter_recurse(&it, &we)) {
      while (bson_iter_next(&we)) {
        bson_iter_t e, x;
        if (!BSON_ITER_HOLDS_DOCUMENT(&we) || !bson_iter_recurse(&we, &e))
          continue;
        int64_t idx = -1, code = 0;
        const char *msg = be.message;
        while (bson_iter_next(&e)) {
          x = e;
          if (!strcmp(bson_iter_key(&x), "index"))
            idx = bson_iter_as_int64(&x);
          else if (!strcmp(bson_iter_key(&x), "code"))
            code = bson_iter_as_int64(&x);
          else if (!strcmp(bson_iter_key(&x), "errmsg") && BSON_ITER_HOLDS_UTF8(&x))
            msg = bson_iter_utf8(&x, NULL);
        }
        if (idx < 0 || (size_t)idx >= m)
          continue;
        size_t i = sent[idx];
        res[i] = code == 11000 ? 0 : AD_ECONNECT;
        if (code != 11000)
          AD_LOG_E("registry", "storing %s in %s: %s", ad__jstr(docs[i], "_id"), coll_name, msg);
      }
    }
  }
  free(sent);
  bson_destroy(&reply);
  bson_destroy(&opts);
  mongoc_bulk_operation_destroy(bulk);
  mongoc_collection_destroy(coll);
  ad__store_push(reg->env.store, c);
}
