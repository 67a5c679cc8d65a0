/*
 * backfill.c - see backfill.h.
 *
 * Which returns: the job cache holds keep_jobs hours of jobs; we read only
 * the return files whose mtime is at or after since_ms, and skip a job
 * directory whose own mtime is older (the master creates <minion>/ in it
 * for every return, which updates the directory's mtime), so a restart
 * reads a few directories, not a day of them. The engine picks since_ms:
 * the last moment it knew it was listening, minus a margin that covers
 * the returns that were still in its memory (engine/backfill.c).
 *
 * Exactly once: unordered inserts keyed by _id; a duplicate key (11000)
 * is "stored already" and the reply's nInserted is the count backfilled.
 */
#include <dirent.h>
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error_private.h"
#include "core/log_private.h"
#include "store/backfill.h"
#include "store/bson_msgpack.h"
#include "store/returns.h"
#include "wire/event_private.h"

/* A whole small file, decoded into z. 0, or -1 (absent, too big, bad). */
static int read_msgpack(const char *path, msgpack_zone *z, msgpack_object *o, char **buf_p)
{
  FILE *f = fopen(path, "rb");
  *buf_p = NULL;
  if (!f)
    return -1;
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || sb.st_size <= 0 || sb.st_size > (64L << 20)) {
    fclose(f);
    return -1;
  }
  char *buf = malloc((size_t)sb.st_size);
  size_t n = buf ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
  fclose(f);
  if (!buf || n != (size_t)sb.st_size || ad__msgpack_decode(buf, n, z, o, NULL) != 0) {
    free(buf);
    return -1;
  }
  *buf_p = buf; /* the decoded strings point into it */
  return 0;
}

static void append_at(bson_t *doc, const char *key, const ad_value_t *m, const char *k)
{
  const ad_value_t *v = m ? ad_value_get(m, k, (size_t)-1) : NULL;
  if (v)
    ad__bson_append_value(doc, key, v, NULL);
}

bson_t *ad__backfill_doc(const char *jid, const char *minion, const ad_value_t *load,
                         const ad_value_t *ret, int tasks_only, int64_t received_ms)
{
  /* the publish load keeps the job's metadata at the top (a CLI or API
   * publish) or under kwargs (LocalClient from the reactor, 3006-3008) */
  const ad_value_t *md = load ? ad_value_get(load, "metadata", (size_t)-1) : NULL;
  const ad_value_t *kw = load && !md ? ad_value_get(load, "kwargs", (size_t)-1) : NULL;
  if (kw && ad_value_type(kw) == AD_VT_MAP)
    md = ad_value_get(kw, "metadata", (size_t)-1);
  const ad_value_t *task = md ? ad_value_get(md, "autodeploy_task", (size_t)-1) : NULL;
  if (tasks_only && !task)
    return NULL;
  bson_t *doc = bson_new();
  char _id[256];
  snprintf(_id, sizeof _id, "%s/%.200s", jid, minion);
  BSON_APPEND_UTF8(doc, "_id", _id);
  BSON_APPEND_UTF8(doc, "jid", jid);
  BSON_APPEND_UTF8(doc, "minion", minion);
  append_at(doc, "fun", load, "fun");
  append_at(doc, "fun_args", load, "arg");
  append_at(doc, "retcode", ret, "retcode");
  append_at(doc, "success", ret, "success");
  if (md)
    ad__bson_append_value(doc, "metadata", md, NULL);
  if (task) {
    ad__bson_append_value(doc, "task", task, NULL);
    append_at(doc, "attempt", md, "attempt");
    append_at(doc, "step", md, "step");
  }
  const ad_value_t *r = ad_value_get(ret, "return", (size_t)-1);
  if (r && ad__bson_append_value(doc, "return", r, NULL)) {
    bson_destroy(doc);
    return NULL;
  }
  const ad_value_t *fv = load ? ad_value_get(load, "fun", (size_t)-1) : NULL;
  const char *fun;
  size_t fn;
  if (fv && ad_value_str(fv, &fun, &fn) == 0)
    ad__returns_summary(doc, fun, fn, r);
  BSON_APPEND_DATE_TIME(doc, "received_at", received_ms);
  BSON_APPEND_BOOL(doc, "backfilled", true);
  return doc;
}

typedef struct {
  ad__store_t *st;
  const ad__backfill_conf_t *c;
  ad__backfill_result_t *out;
  bson_t **docs;
  size_t n;
  size_t tasks; /* task returns among docs */
} walk_t;

/* Insert the pending documents. 0, or AD_ECONNECT. */
static int flush(walk_t *w, ad_error_t *err)
{
  if (w->n == 0)
    return 0;
  mongoc_client_t *cl = ad__store_pop(w->st);
  mongoc_collection_t *coll = ad__store_coll(w->st, cl, w->c->collection);
  bson_t opts = BSON_INITIALIZER, reply;
  BSON_APPEND_BOOL(&opts, "ordered", false);
  mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
  for (size_t i = 0; i < w->n; i++)
    mongoc_bulk_operation_insert_with_opts(bulk, w->docs[i], NULL, NULL);
  bson_error_t be;
  uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &be);
  bson_iter_t it;
  int rc = 0;
  if (!ok && (ad__store_error_is_transient(&be) || !bson_iter_init_find(&it, &reply, "writeErrors")))
    rc = ad__err(err, AD_ECONNECT, "store", "backfill: %s", be.message);
  if (!ok && rc == 0 && bson_iter_init_find(&it, &reply, "writeErrors") &&
      bson_iter_recurse(&it, &it))
    while (bson_iter_next(&it)) { /* duplicates are fine; anything else is said */
      bson_iter_t e;
      if (BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &e) &&
          bson_iter_find(&e, "code") && bson_iter_as_int64(&e) != 11000)
        AD_LOG_E("returns", "backfill: MongoDB refused a cached return: %s", be.message);
    }
  if (rc == 0 && bson_iter_init_find(&it, &reply, "nInserted")) {
    uint64_t n = (uint64_t)bson_iter_as_int64(&it);
    w->out->inserted += n;
    w->out->task_returns += n ? w->tasks : 0; /* a superset when some were stored */
  }
  for (size_t i = 0; i < w->n; i++)
    bson_destroy(w->docs[i]);
  w->n = w->tasks = 0;
  bson_destroy(&reply);
  bson_destroy(&opts);
  mongoc_bulk_operation_destroy(bulk);
  mongoc_collection_destroy(coll);
  ad__store_push(w->st, cl);
  return rc;
}

static int64_t mtime_ms(const struct stat *sb)
{
  return (int64_t)sb->st_mtim.tv_sec * 1000 + sb->st_mtim.tv_nsec / 1000000;
}

/* The jid written in <dir>/jid, or -1. */
static int read_jid(const char *dir, char *jid, size_t size)
{
  char p[4096];
  snprintf(p, sizeof p, "%s/jid", dir);
  FILE *f = fopen(p, "r");
  if (!f)
    return -1;
  size_t n = fread(jid, 1, size - 1, f);
  fclose(f);
  while (n && (jid[n - 1] == '\n' || jid[n - 1] == '\r' || jid[n - 1] == ' '))
    n--;
  jid[n] = 0;
  return n ? 0 : -1;
}

/* One job directory: every minion's return.p newer than since_ms. */
static int walk_job(walk_t *w, const char *dir, ad_error_t *err)
{
  char jid[128];
  if (read_jid(dir, jid, sizeof jid))
    return 0; /* not a job (or one being created: its returns come next pass) */
  w->out->jobs++;
  char p[4096], *lbuf = NULL;
  msgpack_zone lz;
  msgpack_object lo;
  if (!msgpack_zone_init(&lz, 4096))
    return ad__err(err, AD_ENOMEM, "returns", "no memory");
  snprintf(p, sizeof p, "%s/.load.p", dir);
  const ad_value_t *load = read_msgpack(p, &lz, &lo, &lbuf) == 0 && lo.type == MSGPACK_OBJECT_MAP
                               ? (const ad_value_t *)&lo : NULL;
  DIR *d = opendir(dir);
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && d && (de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s/return.p", dir, de->d_name);
    if (stat(p, &sb) != 0 || mtime_ms(&sb) < w->c->since_ms)
      continue;
    w->out->returns++;
    msgpack_zone z;
    msgpack_object o;
    char *buf = NULL;
    if (!msgpack_zone_init(&z, 4096)) {
      rc = ad__err(err, AD_ENOMEM, "returns", "no memory");
      break;
    }
    if (read_msgpack(p, &z, &o, &buf) != 0 || o.type != MSGPACK_OBJECT_MAP) {
      w->out->unreadable++;
      AD_LOG_W("returns", "backfill: %s does not decode; not stored", p);
    } else {
      bson_t *doc = ad__backfill_doc(jid, de->d_name, load, (const ad_value_t *)&o,
                                     w->c->tasks_only, mtime_ms(&sb));
      if (doc) {
        w->tasks += bson_has_field(doc, "task");
        w->docs[w->n++] = doc;
      }
    }
    msgpack_zone_destroy(&z);
    free(buf);
    if (w->n == w->c->batch_size)
      rc = flush(w, err);
  }
  if (d)
    closedir(d);
  msgpack_zone_destroy(&lz);
  free(lbuf);
  return rc;
}

int ad__backfill_returns(ad__store_t *st, const ad__backfill_conf_t *c,
                         ad__backfill_result_t *out, ad_error_t *err)
{
  memset(out, 0, sizeof *out);
  walk_t w = {st, c, out, calloc(c->batch_size ? c->batch_size : 1, sizeof(bson_t *)), 0, 0};
  if (!w.docs)
    return ad__err(err, AD_ENOMEM, "returns", "no memory");
  DIR *top = opendir(c->job_dir);
  if (!top) {
    free(w.docs);
    return ad__err_errno(err, AD_EIO, errno, "job_cache_dir %s", c->job_dir);
  }
  int rc = 0;
  struct dirent *a;
  char p[4096];
  while (rc == 0 && (a = readdir(top))) {
    if (a->d_name[0] == '.')
      continue;
    snprintf(p, sizeof p, "%s/%s", c->job_dir, a->d_name);
    DIR *mid = opendir(p);
    struct dirent *b;
    while (rc == 0 && mid && (b = readdir(mid))) {
      char job[4096];
      struct stat sb;
      if (b->d_name[0] == '.')
        continue;
      snprintf(job, sizeof job, "%s/%s", p, b->d_name);
      if (stat(job, &sb) != 0 || !S_ISDIR(sb.st_mode) || mtime_ms(&sb) < c->since_ms)
        continue;
      rc = walk_job(&w, job, err);
    }
    if (mid)
      closedir(mid);
  }
  closedir(top);
  if (rc == 0)
    rc = flush(&w, err);
  for (size_t i = 0; i < w.n; i++)
    bson_destroy(w.docs[i]);
  free(w.docs);
  return rc;
}
