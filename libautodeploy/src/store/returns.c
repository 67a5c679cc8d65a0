/*
 * returns.c - every salt/job/<jid>/ret/<minion> into MongoDB, batched,
 * idempotent, and spooled to disk while MongoDB is away.
 *
 * Path: a bus worker calls ad__returns_handle (event decoded in its arena)
 * -> the document is built straight from msgpack into BSON -> a bounded
 * in-memory queue -> the batcher thread writes batches of up to batch_size
 * as unordered inserts keyed by _id "<jid>/<minion>" (a duplicate key means
 * "stored already").
 *
 * MongoDB unreachable: the batch goes to the spool (spool.c) and so does
 * everything after it, in order, until a ping succeeds; then the spool is
 * replayed in order and truncated. Inserts keyed by _id make a replay, or
 * a replay of a replay after a crash, store each return exactly once.
 *
 * A document the server refuses (not a connectivity problem) is written to
 * <spool>.rejected with a log line naming its _id and the reason; it is
 * never retried for ever and never silently dropped.
 *
 * Back-pressure, never loss: when the queue is full the handler waits, and
 * when the spool is full (spool_max_bytes) the batcher holds its batch and
 * says so loudly every 10 s; the waits propagate to the bus queue and, with
 * queue_full=block, to the socket.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "store/bson_msgpack.h"
#include "core/error_private.h"
#include "wire/event_private.h"
#include "core/log_private.h"
#include "store/returns.h"
#include "store/spool.h"

struct ad__returns {
  ad__returns_conf_t c;
  ad__store_t *store;
  ad__spool_t *spool;
  FILE *rejected;
  pthread_mutex_t lock;
  pthread_cond_t cond;      /* queue not empty / not full / stop */
  bson_t **q;
  size_t qhead, qlen;
  int stopping;
  pthread_t thread;
  int started;
  int down;                 /* store believed unreachable */
  ad__returns_stats_t st;
  char *spool_path, *collection; /* owned copies behind c.* */
};

/* ---- document ------------------------------------------------------------ */

static int is_state_fun(const char *f, size_t n)
{
  static const char *const funs[] = {"state.apply", "state.sls", "state.highstate",
                                     "state.single", "state.top", "state.sls_id", NULL};
  for (int i = 0; funs[i]; i++)
    if (strlen(funs[i]) == n && memcmp(funs[i], f, n) == 0)
      return 1;
  return 0;
}

/* counts of ok/changed/failed, failed ids with comments, total duration */
static void append_summary(bson_t *doc, const ad_value_t *ret)
{
  bson_t sum, failed;
  int64_t ok = 0, changed = 0, bad = 0, total = 0;
  double ms = 0;
  BSON_APPEND_DOCUMENT_BEGIN(doc, "summary", &sum);
  if (ad_value_type(ret) != AD_VT_MAP) {
    /* a state run that did not run: the return is a list of errors */
    BSON_APPEND_BOOL(&sum, "error", true);
    ad__bson_append_value(&sum, "errors", ret, NULL);
    bson_append_document_end(doc, &sum);
    return;
  }
  BSON_APPEND_ARRAY_BEGIN(&sum, "failed_states", &failed);
  for (size_t i = 0; i < ad_value_len(ret); i++) {
    const ad_value_t *k, *v;
    if (ad_value_pair(ret, i, &k, &v) || ad_value_type(v) != AD_VT_MAP)
      continue;
    total++;
    int result = 0;
    const ad_value_t *r = ad_value_get(v, "result", (size_t)-1);
    if (r && ad_value_bool(r, &result) == 0 && result)
      ok++;
    else if (r && ad_value_type(r) == AD_VT_NIL)
      ok++; /* test=True: would change */
    else {
      bad++;
      if (bad <= 50) {
        bson_t f;
        char key[16];
        const char *ks;
        bson_uint32_to_string((uint32_t)(bad - 1), &ks, key, sizeof key);
        bson_append_document_begin(&failed, ks, -1, &f);
        ad__bson_append_value(&f, "id", k, NULL);
        const ad_value_t *cm = ad_value_get(v, "comment", (size_t)-1);
        if (cm)
          ad__bson_append_value(&f, "comment", cm, NULL);
        const ad_value_t *sid = ad_value_get(v, "__id__", (size_t)-1);
        if (sid)
          ad__bson_append_value(&f, "state_id", sid, NULL);
        bson_append_document_end(&failed, &f);
      }
    }
    const ad_value_t *ch = ad_value_get(v, "changes", (size_t)-1);
    if (ch && ad_value_len(ch) > 0)
      changed++;
    double d;
    const ad_value_t *du = ad_value_get(v, "duration", (size_t)-1);
    if (du && ad_value_double(du, &d) == 0)
      ms += d;
  }
  bson_append_array_end(&sum, &failed);
  BSON_APPEND_INT64(&sum, "total", total);
  BSON_APPEND_INT64(&sum, "ok", ok);
  BSON_APPEND_INT64(&sum, "changed", changed);
  BSON_APPEND_INT64(&sum, "failed", bad);
  BSON_APPEND_DOUBLE(&sum, "duration_ms", ms);
  bson_append_document_end(doc, &sum);
}

static void append_str_at(bson_t *doc, const char *key, ad_event_t *ev,
                          const char *path)
{
  const ad_value_t *v = ad_event_find(ev, path);
  if (v)
    ad__bson_append_value(doc, key, v, NULL);
}

bson_t *ad__returns_doc(ad_event_t *ev, int tasks_only, ad_error_t *err)
{
  const char *jid, *id;
  size_t jn, idn;
  if (!ad_event_data(ev, err))
    return NULL;
  if (ad_event_get_str(ev, "jid", &jid, &jn) || ad_event_get_str(ev, "id", &id, &idn)) {
    ad__err(err, AD_EINVAL, "returns", "%s: return without a jid or id", ad_event_tag(ev));
    return NULL;
  }
  const ad_value_t *task = ad_event_find(ev, "metadata:autodeploy_task");
  if (tasks_only && !task)
    return NULL; /* not ours; err untouched */
  bson_t *doc = bson_sized_new(512 + ad_event_tag_len(ev));
  char _id[256];
  snprintf(_id, sizeof _id, "%.*s/%.*s", (int)jn, jid, (int)(idn > 200 ? 200 : idn), id);
  BSON_APPEND_UTF8(doc, "_id", _id);
  bson_append_utf8(doc, "jid", 3, jid, (int)jn);
  bson_append_utf8(doc, "minion", 6, id, (int)idn);
  append_str_at(doc, "fun", ev, "fun");
  append_str_at(doc, "fun_args", ev, "fun_args");
  append_str_at(doc, "retcode", ev, "retcode");
  append_str_at(doc, "success", ev, "success");
  append_str_at(doc, "out", ev, "out");
  append_str_at(doc, "stamp", ev, "_stamp");
  append_str_at(doc, "metadata", ev, "metadata");
  if (task) {
    ad__bson_append_value(doc, "task", task, NULL);
    append_str_at(doc, "attempt", ev, "metadata:attempt");
    append_str_at(doc, "step", ev, "metadata:step");
  }
  const ad_value_t *ret = ad_event_find(ev, "return");
  if (ret && ad__bson_append_value(doc, "return", ret, err)) {
    bson_destroy(doc);
    return NULL;
  }
  const char *fun;
  size_t fn;
  if (ret && ad_event_get_str(ev, "fun", &fun, &fn) == 0 && is_state_fun(fun, fn))
    append_summary(doc, ret);
  BSON_APPEND_DATE_TIME(doc, "received_at", ad__now_ms());
  return doc;
}

void ad__returns_summary(bson_t *doc, const char *fun, size_t fun_len, const ad_value_t *ret)
{
  if (ret && fun && is_state_fun(fun, fun_len))
    append_summary(doc, ret);
}

/* ---- writing ------------------------------------------------------------- */

static void reject(ad__returns_t *r, const bson_t *doc, const char *why)
{
  bson_iter_t it;
  const char *id = bson_iter_init_find(&it, doc, "_id") ? bson_iter_utf8(&it, NULL) : "?";
  AD_LOG_E("returns", "MongoDB refused return %s: %s; kept in %s.rejected", id, why,
           r->c.spool_path);
  if (r->rejected) {
    fwrite(bson_get_data(doc), 1, doc->len, r->rejected);
    fflush(r->rejected);
  }
  pthread_mutex_lock(&r->lock);
  r->st.rejected++;
  r->st.stored--; /* counted as stored with its batch below */
  pthread_mutex_unlock(&r->lock);
}

/* Insert a batch, unordered. A duplicate-key answer (11000) means that
 * return is stored already (a replay, a duplicate event): that is success,
 * which makes replays idempotent. Inserts, not upserts: FerretDB v1.24
 * upserts ~100x slower than it inserts (docs/returns.md).
 * 0: stored (or rejected per document); AD_ECONNECT: the store is
 * unreachable and nothing can be assumed stored. */
static int write_batch(bson_t **docs, size_t n, void *user, ad_error_t *err)
{
  ad__returns_t *r = user;
  mongoc_client_t *c = ad__store_pop(r->store);
  mongoc_collection_t *coll = ad__store_coll(r->store, c, r->c.collection);
  bson_t opts = BSON_INITIALIZER, reply;
  BSON_APPEND_BOOL(&opts, "ordered", false);
  mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
  for (size_t i = 0; i < n; i++)
    mongoc_bulk_operation_insert_with_opts(bulk, docs[i], NULL, NULL);
  bson_error_t be;
  uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &be);
  int rc = 0;
  if (!ok) {
    bson_iter_t it, we;
    if (ad__store_error_is_transient(&be) ||
        !bson_iter_init_find(&it, &reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it)) {
      rc = ad__err(err, AD_ECONNECT, "store", "%s", be.message);
    } else if (bson_iter_recurse(&it, &we)) {
      /* per-document refusals: everything else was stored */
      while (bson_iter_next(&we)) {
        bson_t e;
        const uint8_t *d;
        uint32_t l;
        bson_iter_document(&we, &l, &d);
        if (!bson_init_static(&e, d, l))
          continue;
        bson_iter_t x;
        int32_t idx = bson_iter_init_find(&x, &e, "index") ? bson_iter_as_int64(&x) : -1;
        int64_t code = bson_iter_init_find(&x, &e, "code") ? bson_iter_as_int64(&x) : 0;
        const char *msg = bson_iter_init_find(&x, &e, "errmsg") ? bson_iter_utf8(&x, NULL) : be.message;
        if (code == 11000)
          continue; /* stored before: exactly once */
        if (idx >= 0 && (size_t)idx < n)
          reject(r, docs[idx], msg);
      }
    }
  }
  if (rc == 0) {
    pthread_mutex_lock(&r->lock);
    r->st.stored += n;
    pthread_mutex_unlock(&r->lock);
  }
  bson_destroy(&reply);
  bson_destroy(&opts);
  mongoc_bulk_operation_destroy(bulk);
  mongoc_collection_destroy(coll);
  ad__store_push(r->store, c);
  return rc;
}

/* Put a batch somewhere durable: MongoDB, else the spool. Returns 0 when
 * done; AD_EFULL (spool_max_bytes) or AD_EIO (the disk is full or
 * read-only: ENOSPC, EROFS) + *err when the spool cannot take it: the
 * caller keeps the batch and says why. */
static int persist(ad__returns_t *r, bson_t **docs, size_t n, ad_error_t *err)
{
  if (!r->down && ad__spool_records(r->spool) == 0) {
    if (write_batch(docs, n, r, err) == 0)
      return 0;
    r->down = 1;
    AD_LOG_E("returns", "MongoDB unreachable (%s); spooling returns to %s",
             err->message, r->c.spool_path);
  }
  int rc = ad__spool_append(r->spool, docs, n, err);
  if (rc == 0) {
    pthread_mutex_lock(&r->lock);
    if (!r->st.spool_oldest_ms)
      r->st.spool_oldest_ms = ad__now_ms();
    r->st.spooled += n;
    pthread_mutex_unlock(&r->lock);
    return 0;
  }
  pthread_mutex_lock(&r->lock);
  r->st.spool_errors++;
  pthread_mutex_unlock(&r->lock);
  return rc;
}

static void try_recover(ad__returns_t *r)
{
  ad_error_t err;
  if (ad__spool_records(r->spool) == 0 && !r->down)
    return;
  if (ad__store_ping(r->store, &err) != 0)
    return;
  uint64_t n = ad__spool_records(r->spool);
  if (ad__spool_replay(r->spool, write_batch, r, r->c.batch_size, &err) != 0) {
    AD_LOG_W("returns", "replay stopped: %s; will retry", err.message);
    return;
  }
  pthread_mutex_lock(&r->lock);
  r->st.replayed += n;
  r->st.spool_oldest_ms = 0;
  pthread_mutex_unlock(&r->lock);
  if (r->down)
    AD_LOG_I("returns", "MongoDB is back; %llu spooled returns replayed",
             (unsigned long long)n);
  r->down = 0;
}

static void *batcher_main(void *arg)
{
  ad__returns_t *r = arg;
  bson_t **batch = calloc(r->c.batch_size, sizeof(*batch));
  size_t held = 0; /* a batch we could not place yet (spool full) */
  /* intervals, in monotonic seconds; "long ago" at start */
  int64_t last_full_log = INT64_MIN / 2, last_try = INT64_MIN / 2;
  for (;;) {
    pthread_mutex_lock(&r->lock);
    if (held == 0) {
      struct timespec ts; /* the cond waits on CLOCK_MONOTONIC (ad__returns_new) */
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += (long)r->c.batch_ms * 1000000L;
      ts.tv_sec += ts.tv_nsec / 1000000000L;
      ts.tv_nsec %= 1000000000L;
      while (r->qlen < r->c.batch_size && !r->stopping &&
             pthread_cond_timedwait(&r->cond, &r->lock, &ts) != ETIMEDOUT)
        ;
      while (held < r->c.batch_size && r->qlen > 0) {
        batch[held++] = r->q[r->qhead];
        r->qhead = (r->qhead + 1) % r->c.queue_size;
        r->qlen--;
      }
      pthread_cond_broadcast(&r->cond);
    }
    int stopping = r->stopping && r->qlen == 0;
    pthread_mutex_unlock(&r->lock);

    int64_t now = ad__mono_ms() / 1000;
    if ((r->down || ad__spool_records(r->spool)) && now - last_try >= r->c.retry_ms / 1000) {
      last_try = now;
      try_recover(r);
    }
    if (held > 0) {
      ad_error_t perr;
      if (persist(r, batch, held, &perr) == 0) {
        for (size_t i = 0; i < held; i++)
          bson_destroy(batch[i]);
        held = 0;
      } else {
        if (now - last_full_log >= 10) {
          AD_LOG_E("returns", "holding %zu returns in memory: MongoDB unreachable and "
                   "the spool cannot take them (%s); the bus is being slowed, nothing "
                   "is dropped", held, perr.message);
          last_full_log = now;
        }
        if (stopping)
          break;
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        continue;
      }
    }
    if (stopping)
      break;
  }
  if (held)
    AD_LOG_E("returns", "stopping with %zu returns neither stored nor spooled "
             "(spool full and MongoDB down)", held);
  for (size_t i = 0; i < held; i++)
    bson_destroy(batch[i]);
  free(batch);
  return NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */

ad__returns_t *ad__returns_new(const ad__returns_conf_t *c, ad__store_t *store,
                               ad_error_t *err)
{
  ad__returns_t *r = calloc(1, sizeof(*r));
  if (!r) {
    ad__err(err, AD_ENOMEM, "returns", "no memory");
    return NULL;
  }
  r->c = *c;
  r->c.spool_path = r->spool_path = strdup(c->spool_path);
  r->c.collection = r->collection = strdup(c->collection ? c->collection : "returns");
  r->store = store;
  r->q = calloc(c->queue_size, sizeof(*r->q));
  pthread_mutex_init(&r->lock, NULL);
  /* batch_ms is an interval: a wall clock set back an hour must not hold a
   * half-full batch for an hour (nor one set forward flush every batch at once) */
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cond, &ca);
  pthread_condattr_destroy(&ca);
  r->spool = ad__spool_open(c->spool_path, c->spool_max_bytes, c->spool_fsync, err);
  if (!r->q || !r->spool || !r->spool_path || !r->collection) {
    ad__returns_destroy(&r);
    return NULL;
  }
  char rej[1024];
  snprintf(rej, sizeof rej, "%s.rejected", c->spool_path);
  r->rejected = fopen(rej, "ab");
  r->down = ad__spool_records(r->spool) > 0;
  /* a spool left by an earlier run: its records are older than this, but
   * how much older the file does not say; the start is a lower bound */
  if (r->down)
    r->st.spool_oldest_ms = ad__now_ms();
  if (pthread_create(&r->thread, NULL, batcher_main, r) != 0) {
    ad__err(err, AD_ENOMEM, "returns", "cannot start the batcher thread");
    ad__returns_destroy(&r);
    return NULL;
  }
  r->started = 1;
  return r;
}

int ad__returns_handle(ad__returns_t *r, ad_event_t *ev)
{
  ad_error_t err = {0};
  bson_t *doc = ad__returns_doc(ev, r->c.tasks_only, &err);
  if (!doc) {
    if (err.code == 0)
      return 0; /* not a task job, and only task jobs are stored */
    pthread_mutex_lock(&r->lock);
    r->st.bad++;
    pthread_mutex_unlock(&r->lock);
    AD_LOG_E("returns", "%s: not stored: %s", ad_event_tag(ev), err.message);
    return 1;
  }
  pthread_mutex_lock(&r->lock);
  while (r->qlen == r->c.queue_size && !r->stopping)
    pthread_cond_wait(&r->cond, &r->lock);
  r->q[(r->qhead + r->qlen) % r->c.queue_size] = doc;
  r->qlen++;
  r->st.received++;
  if (r->qlen >= r->c.batch_size)
    pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  return 0;
}

void ad__returns_stats(ad__returns_t *r, ad__returns_stats_t *out)
{
  pthread_mutex_lock(&r->lock);
  *out = r->st;
  out->queued = r->qlen;
  out->spool_records = ad__spool_records(r->spool);
  out->spool_bytes = ad__spool_bytes(r->spool);
  out->store_down = r->down;
  pthread_mutex_unlock(&r->lock);
}

void ad__returns_destroy(ad__returns_t **r_p)
{
  if (!r_p || !*r_p)
    return;
  ad__returns_t *r = *r_p;
  if (r->started) {
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
  }
  for (size_t i = 0; i < r->qlen; i++)
    bson_destroy(r->q[(r->qhead + i) % r->c.queue_size]);
  free(r->q);
  ad__spool_close(&r->spool);
  if (r->rejected)
    fclose(r->rejected);
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
  free(r->spool_path);
  free(r->collection);
  free(r);
  *r_p = NULL;
}
