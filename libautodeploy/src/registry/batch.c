/*
 * batch.c - start events in bursts. After a master restart every minion
 * starts at once; decided one by one on the bus workers, each new host costs
 * two single inserts (decide.c's try_new). Here the workers only queue the
 * minion id and return; one thread waits a few ms for more, looks at each
 * minion's files, claims all the new ones in host_minions with ONE unordered
 * bulk insert and inserts their host documents with ONE more. Inserts are
 * the one thing FerretDB v1.24 does without scanning the collection
 * (docs/registration.md), and a bulk costs little more than a single one.
 *
 * Every document is still its own insert: a duplicate _id (someone holds the
 * minion or the key) sends that minion down the full path (read, classify,
 * one conditional update), under its stripe lock, as ad__registry_hint
 * would. No transactions, so it is the same on mongod. A queue that is full
 * makes the caller register at once, so no hint is dropped. The engine
 * stops the batch (ad__registry_stop) while the bus still runs: hints still
 * queued are registered then (init tasks and grains refreshes need the
 * bus), and a hint pushed after that is registered on its worker.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log_private.h"
#include "registry/registry_private.h"
#include "store/docs.h"

typedef struct {
  char id[AD__MINION_ID_MAX + 1];
  const char *why; /* a string literal of the caller */
} hint_t;

struct ad__reg_batch {
  ad__registry_t *reg;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int max, wait_ms, stop;
  size_t cap, head, count;
  hint_t *q;
};

/* ---- one burst --------------------------------------------------------------- */

typedef struct {
  const hint_t *h;
  ad__reg_look_t look;
  json_t *facts; /* NULL: refused, nothing new, or a repeat within the burst */
  json_t *doc;   /* the new host document, once claimed */
  int full;      /* decide in full */
  int stored;    /* the new host went in with the bulk */
} item_t;

static void look_all(ad__registry_t *reg, item_t *it, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    it[i].look.s = NULL;
    int repeat = 0;
    for (size_t j = 0; j < i && !repeat; j++)
      repeat = !strcmp(it[j].h->id, it[i].h->id);
    if (repeat)
      continue; /* the first one decides for both */
    pthread_mutex_t *m = ad__reg_stripe(reg, it[i].h->id);
    pthread_mutex_lock(m);
    it[i].facts = ad__reg_look(reg, it[i].h->id, it[i].h->why, 0, &it[i].look);
    pthread_mutex_unlock(m);
  }
}

/* One bulk insert of the non-NULL docs[i]; res[i] per doc (0 where NULL). */
static void insert_some(ad__registry_t *reg, const char *coll, size_t n, json_t **docs,
                        int *res)
{
  json_t **pick = calloc(n, sizeof *pick);
  int *r = calloc(n, sizeof *r);
  int ok = pick && r;
  size_t k = 0;
  for (size_t i = 0; ok && i < n; i++)
    if (docs[i])
      pick[k++] = docs[i];
  if (ok)
    ad__hosts_insert_many(reg, coll, pick, k, r);
  for (size_t i = 0, j = 0; i < n; i++)
    res[i] = !docs[i] ? 0 : ok ? r[j++] : AD_ENOMEM;
  free(pick);
  free(r);
}

/* claims in host_minions, then the host documents of the claimed ones */
static void insert_new(ad__registry_t *reg, item_t *it, size_t n)
{
  json_t **docs = calloc(n, sizeof *docs);
  int *res = calloc(n, sizeof *res);
  if (!docs || !res) {
    for (size_t i = 0; i < n; i++)
      it[i].full = it[i].facts != NULL; /* no memory: one by one */
    goto done;
  }
  for (size_t i = 0; i < n; i++)
    if (it[i].facts)
      docs[i] = json_pack("{s:s,s:s}", "_id", it[i].h->id, "key", ad__jstr(it[i].facts, "key"));
  insert_some(reg, AD__HOST_MINIONS, n, docs, res);
  for (size_t i = 0; i < n; i++) {
    json_decref(docs[i]);
    docs[i] = NULL;
    if (!it[i].facts)
      continue;
    if (res[i] == 1)
      docs[i] = it[i].doc = ad__reg_new_doc(reg, it[i].facts, it[i].look.fp, it[i].h->why);
    /* claim taken: there is a record to read; a store error: the next hint */
    it[i].full = res[i] == 0 || (res[i] == 1 && !it[i].doc);
  }
  insert_some(reg, reg->c.collection, n, docs, res);
  for (size_t i = 0; i < n; i++) {
    if (!it[i].doc)
      continue;
    ad__reg_new_done(reg, it[i].doc, res[i]);
    it[i].full = res[i] == 0; /* the key is held: decide in full */
    it[i].stored = res[i] == 1;
    json_decref(it[i].doc);
    it[i].doc = NULL;
  }
done:
  free(docs);
  free(res);
}

static void run_burst(ad__registry_t *reg, const hint_t *h, size_t n)
{
  item_t *it = calloc(n, sizeof *it);
  if (!it) {
    for (size_t i = 0; i < n; i++)
      ad__registry_hint(reg, h[i].id, h[i].why, 0);
    return;
  }
  for (size_t i = 0; i < n; i++)
    it[i].h = &h[i];
  look_all(reg, it, n);
  insert_new(reg, it, n);
  size_t looked = 0, full = 0, stored = 0;
  for (size_t i = 0; i < n; i++) {
    looked += it[i].facts != NULL;
    full += it[i].full;
    stored += it[i].stored;
  }
  AD_LOG_I("registry", "burst of %zu start events: %zu new hosts by bulk insert, %zu decided "
           "one by one, %zu store errors (the next hint retries), %zu unchanged, refused or "
           "repeated", n, stored, full, looked - stored - full, n - looked);
  for (size_t i = 0; i < n; i++) {
    pthread_mutex_t *m = ad__reg_stripe(reg, h[i].id);
    pthread_mutex_lock(m);
    if (it[i].full)
      it[i].look.copy.quarantined =
          ad__reg_decide_full(reg, it[i].facts, it[i].look.fp, h[i].why);
    ad__reg_look_end(reg, &it[i].look);
    pthread_mutex_unlock(m);
    json_decref(it[i].facts);
  }
  free(it);
}

/* ---- the thread -------------------------------------------------------------- */

static void deadline_in(struct timespec *ts, int ms)
{
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_nsec += (long)ms * 1000000L;
  ts->tv_sec += ts->tv_nsec / 1000000000L;
  ts->tv_nsec %= 1000000000L;
}

static void *batch_main(void *arg)
{
  ad__reg_batch_t *b = arg;
  hint_t *take = malloc((size_t)b->max * sizeof *take);
  pthread_mutex_lock(&b->lock);
  for (;;) {
    while (!b->stop && b->count == 0)
      pthread_cond_wait(&b->cond, &b->lock);
    if (b->count == 0)
      break; /* stopping, and nothing left */
    /* a burst comes in over a few ms: wait for more, up to max */
    struct timespec until;
    deadline_in(&until, b->wait_ms);
    while (!b->stop && b->count < (size_t)b->max &&
           pthread_cond_timedwait(&b->cond, &b->lock, &until) == 0)
      ;
    size_t n = b->count < (size_t)b->max ? b->count : (size_t)b->max;
    for (size_t i = 0; take && i < n; i++)
      take[i] = b->q[(b->head + i) % b->cap];
    if (!take) /* no memory for the burst: one by one from the queue */
      n = 1;
    hint_t one = b->q[b->head];
    b->head = (b->head + n) % b->cap;
    b->count -= n;
    pthread_mutex_unlock(&b->lock);
    if (take)
      run_burst(b->reg, take, n);
    else
      ad__registry_hint(b->reg, one.id, one.why, 0);
    pthread_mutex_lock(&b->lock);
  }
  pthread_mutex_unlock(&b->lock);
  free(take);
  return NULL;
}

/* ---- life cycle ------------------------------------------------------------------ */

ad__reg_batch_t *ad__reg_batch_new(ad__registry_t *reg, int max, int wait_ms)
{
  ad__reg_batch_t *b = calloc(1, sizeof *b);
  if (!b)
    return NULL;
  b->reg = reg;
  b->max = max;
  b->wait_ms = wait_ms;
  b->cap = (size_t)max * 16;
  b->q = calloc(b->cap, sizeof *b->q);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&b->cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&b->lock, NULL);
  if (!b->q || pthread_create(&b->thread, NULL, batch_main, b) != 0) {
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b->q);
    free(b);
    return NULL;
  }
  return b;
}

void ad__reg_batch_stop(ad__reg_batch_t *b)
{
  if (!b)
    return;
  pthread_mutex_lock(&b->lock);
  int join = !b->stop;
  b->stop = 1;
  pthread_cond_signal(&b->cond);
  pthread_mutex_unlock(&b->lock);
  if (join)
    pthread_join(b->thread, NULL); /* after it registered what was queued */
}

void ad__reg_batch_destroy(ad__reg_batch_t **b_p)
{
  if (!b_p || !*b_p)
    return;
  ad__reg_batch_t *b = *b_p;
  ad__reg_batch_stop(b);
  pthread_cond_destroy(&b->cond);
  pthread_mutex_destroy(&b->lock);
  free(b->q);
  free(b);
  *b_p = NULL;
}

int ad__reg_batch_push(ad__reg_batch_t *b, const char *id, const char *why)
{
  size_t len = strlen(id);
  if (!b || len > AD__MINION_ID_MAX)
    return -1;
  pthread_mutex_lock(&b->lock);
  int rc = -1;
  if (!b->stop && b->count < b->cap) {
    hint_t *h = &b->q[(b->head + b->count) % b->cap];
    memcpy(h->id, id, len + 1);
    h->why = why;
    b->count++;
    rc = 0;
    if (b->count == 1 || b->count >= (size_t)b->max)
      pthread_cond_signal(&b->cond);
  }
  pthread_mutex_unlock(&b->lock);
  return rc;
}
