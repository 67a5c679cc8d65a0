/*
 * fleet_store.c - platform and service documents in MongoDB: reads,
 * inserts, conditional updates on `rev` with a trimmed history (FerretDB
 * v1.24.2 ignores $slice), the cycle lease, server-number allocation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "store/docs.h"
#include "fleet/cycle.h"
#include "fleet/fleet_private.h"
#include "core/log_private.h"

#define HISTORY_MAX 50

json_t *ad__fdoc_find(ad__fleet_t *f, const char *coll, json_t *query, json_t *opts,
                      ad_error_t *err)
{
  return ad__docs_find(f->env.store, coll, query, opts, err);
}

json_t *ad__fdoc_get(ad__fleet_t *f, const char *coll, const char *id, ad_error_t *err)
{
  return ad__docs_get(f->env.store, coll, id, strcmp(coll, f->c.services) ? "platform" : "service", err);
}

int64_t ad__fdoc_count(ad__fleet_t *f, const char *coll, json_t *query)
{
  return ad__docs_count(f->env.store, coll, query);
}

int ad__fdoc_insert(ad__fleet_t *f, const char *coll, const json_t *doc, ad_error_t *err)
{
  return ad__docs_insert(f->env.store, coll, doc, err);
}

int ad__fdoc_cas(ad__fleet_t *f, const char *coll, const json_t *doc, json_t *set,
                 const char *what, const char *cause, const char *actor, ad_error_t *err)
{
  return ad__docs_cas(f->env.store, coll, doc, set, what, cause, actor, HISTORY_MAX, "fleet", err);
}

/* The cycle lease (store/lease.h, `cycle` in the locks collection): taken
 * when absent or expired, kept by its owner. take 1: take (1 held, 0 held
 * by someone else: *holder says who and until when, <0 store error); 2:
 * renew (a long cycle keeps its lease); 0: release. */
int ad__fleet_lease(ad__fleet_t *f, int take, char *holder, size_t size)
{
  if (take == 0) {
    ad__lease_release(f->lease);
    return 1;
  }
  ad__lease_doc_t who;
  ad_error_t err;
  int rc = ad__lease_claim(f->lease, &who, &err);
  if (rc < 0 && take == 1)
    AD_LOG_W("fleet", "cycle lease: %s", err.message);
  if (rc == 0 && holder) {
    char iso[32];
    ad__iso_ms(who.until_ms, iso);
    snprintf(holder, size, "%s until %s", who.holder[0] ? who.holder : "?", iso);
  }
  return rc;
}

/* Every write of a cycle passes two fences: the cycle lease (a cycle that
 * outlived its lease, paused or slow, must not write over the next one's)
 * and, in the engine, the leadership. 0 and the terms, or AD_ESTATE. */
static int cycle_fence(ad__fleet_t *f, const char *what, int64_t *cycle_term,
                       int64_t *leader_term, ad_error_t *err)
{
  *cycle_term = ad__lease_fence(f->lease, what);
  *leader_term = f->env.fence ? f->env.fence(f->env.fence_user, what) : 0;
  if (!*cycle_term || (f->env.fence && !*leader_term))
    return ad__err(err, AD_ESTATE, "fleet", "%s refused: %s lease no longer held (fenced)", what,
                   *cycle_term ? "the leader" : "the cycle");
  return 0;
}

/* n consecutive server numbers for platform `code`: [first, first+n). One
 * findAndModify with $inc, so two cycles never hand out the same number. */
json_t *ad__fleet_next_numbers(ad__fleet_t *f, const char *code, int n, ad_error_t *err)
{
  mongoc_client_t *c = ad__store_pop(f->env.store);
  mongoc_collection_t *coll = ad__store_coll(f->env.store, c, f->c.platforms);
  bson_t *q = BCON_NEW("_id", BCON_UTF8(code));
  bson_t *u = BCON_NEW("$inc", "{", "next_server_no", BCON_INT64(n), "}");
  mongoc_find_and_modify_opts_t *o = mongoc_find_and_modify_opts_new();
  mongoc_find_and_modify_opts_set_update(o, u);
  mongoc_find_and_modify_opts_set_flags(o, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
  bson_t reply;
  bson_error_t be;
  json_t *out = NULL;
  if (mongoc_collection_find_and_modify_with_opts(coll, q, o, &reply, &be)) {
    bson_iter_t it, v;
    if (bson_iter_init(&it, &reply) && bson_iter_find_descendant(&it, "value.next_server_no", &v)) {
      int64_t next = bson_iter_as_int64(&v);
      out = json_pack("{s:I}", "first", (json_int_t)(next - n));
    } else {
      ad__err(err, AD_ENOTFOUND, "fleet", "platform %s: no such platform", code);
    }
  } else {
    ad__err(err, AD_ECONNECT, "store", "allocating server numbers for %s: %s", code, be.message);
  }
  bson_destroy(&reply);
  mongoc_find_and_modify_opts_destroy(o);
  bson_destroy(q);
  bson_destroy(u);
  mongoc_collection_destroy(coll);
  ad__store_push(f->env.store, c);
  return out;
}

void ad__fleet_alert(ad__fleet_t *f, const char *subject, const char *what, const char *text)
{
  const ad__tasks_ctx_t *t = f->env.tasks;
  if (!t || !t->alert)
    return;
  char title[200], body[1200], dedup[200];
  snprintf(title, sizeof title, "autodeploy %s: %s", subject, what);
  snprintf(body, sizeof body, "### %s: %s\n%s", subject, what, text);
  snprintf(dedup, sizeof dedup, "fleet/%s/%s/%lld", subject, what, (long long)(ad__now_ms() / 600000));
  t->alert(t->alert_user, title, body, dedup);
}

/* The cycle's store (fleet/cycle.h) on MongoDB: u is the ad__fleet_t. */
static json_t *cs_find(void *u, const char *coll, json_t *query, json_t *opts, ad_error_t *err)
{
  return ad__fdoc_find(u, coll, query, opts, err);
}

static json_t *cs_get(void *u, const char *coll, const char *id, ad_error_t *err)
{
  return ad__fdoc_get(u, coll, id, err);
}

static int64_t cs_count(void *u, const char *coll, json_t *query)
{
  return ad__fdoc_count(u, coll, query);
}

/* The written documents carry the terms they were written under. */
static json_t *with_terms(const json_t *doc, int64_t cycle_term, int64_t leader_term)
{
  json_t *d = doc ? json_deep_copy(doc) : json_object();
  if (d && (json_object_set_new(d, "cycle_term", json_integer(cycle_term)) ||
            (leader_term && json_object_set_new(d, "leader_term", json_integer(leader_term))))) {
    json_decref(d);
    d = NULL;
  }
  return d;
}

static int cs_insert(void *u, const char *coll, const json_t *doc, ad_error_t *err)
{
  int64_t ct, lt;
  if (cycle_fence(u, "cycle insert", &ct, &lt, err))
    return AD_ESTATE;
  json_t *d = with_terms(doc, ct, lt);
  int rc = d ? ad__fdoc_insert(u, coll, d, err) : ad__err(err, AD_ENOMEM, "fleet", "no memory");
  json_decref(d);
  return rc;
}

static int cs_cas(void *u, const char *coll, const json_t *doc, json_t *set, const char *what,
                  const char *cause, const char *actor, ad_error_t *err)
{
  int64_t ct, lt;
  if (cycle_fence(u, "cycle update", &ct, &lt, err))
    return AD_ESTATE;
  json_t *s = with_terms(set, ct, lt);
  int rc = s ? ad__fdoc_cas(u, coll, doc, s, what, cause, actor, err)
             : ad__err(err, AD_ENOMEM, "fleet", "no memory");
  json_decref(s);
  return rc;
}

static json_t *cs_next_numbers(void *u, const char *code, int n, ad_error_t *err)
{
  int64_t ct, lt;
  if (cycle_fence(u, "allocating server numbers", &ct, &lt, err))
    return NULL;
  return ad__fleet_next_numbers(u, code, n, err);
}

static int cs_lease(void *u, int take, char *holder, size_t size)
{
  return ad__fleet_lease(u, take, holder, size);
}

static json_t *cs_task_create(void *u, const json_t *args, ad_error_t *err)
{
  int64_t ct, lt;
  if (cycle_fence(u, "creating a deploy task", &ct, &lt, err))
    return NULL;
  return ad__task_create(((ad__fleet_t *)u)->env.tasks, args, err);
}

static int cs_load(void *u, const ad__metrics_host_t *hosts, size_t n, const ad__metrics_query_t *q,
                   ad__metrics_result_t **out, ad_error_t *err)
{
  return ad__metrics_query(((ad__fleet_t *)u)->metrics, hosts, n, q, out, err);
}

static int64_t cs_observe(void *u, const char *coll, json_t *sets, ad_error_t *err)
{
  return ad__docs_set_many(((ad__fleet_t *)u)->env.store, coll, sets, err);
}

const ad__cycle_store_t ad__fleet_cycle_store = {
    .find = cs_find, .get = cs_get, .count = cs_count, .insert = cs_insert, .cas = cs_cas,
    .next_numbers = cs_next_numbers, .lease = cs_lease, .task_create = cs_task_create,
    .load = cs_load, .observe = cs_observe,
};
