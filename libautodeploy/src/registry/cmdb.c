/*
 * cmdb.c - push host changes to an outside CMDB over HTTP.
 *
 * The outbox is the host documents themselves: every change sets
 * `cmdb_dirty` and bumps `rev` in the same single-document update, so
 * nothing can change without being queued (no second collection to keep in
 * step, no transaction). A thread posts dirty hosts as JSON; a 2xx clears
 * the flag only if `rev` is still the one sent, so a change made during the
 * push is pushed again. Failures back off per host (cmdb_next_ms,
 * cmdb_attempts, cmdb_error on the document). A restart resumes from the
 * flags; a CMDB that was down gets every host's latest state, in rev order
 * per host (`version` in the body).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/error_private.h"
#include "core/http.h"
#include "core/log_private.h"
#include "registry/cmdb.h"
#include "store/docs.h"

typedef struct {
  char *url, *token, *ca_file;
  int timeout_ms, batch, retry_min_s, retry_max_s, interval_ms, insecure;
} cmdb_conf_t;

#define K(name, type, field, min, max, def) \
  {name, type, offsetof(cmdb_conf_t, field), min, max, def, NULL}
static const ad__config_key_t CMDB_KEYS[] = {
    K("url", AD_CT_STR, url, 0, 0, ""),
    K("token", AD_CT_SECRET, token, 0, 0, ""),
    K("ca_file", AD_CT_STR, ca_file, 0, 0, ""),
    K("insecure", AD_CT_BOOL, insecure, 0, 1, "false"),
    K("timeout_ms", AD_CT_INT, timeout_ms, 100, 600000, "5000"),
    K("batch", AD_CT_INT, batch, 1, 10000, "100"),
    K("retry_min_s", AD_CT_INT, retry_min_s, 0, 86400, "5"),
    K("retry_max_s", AD_CT_INT, retry_max_s, 1, 86400, "300"),
    K("interval_ms", AD_CT_INT, interval_ms, 50, 3600000, "5000"),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__cmdb_keys(void) { return CMDB_KEYS; }

struct ad__cmdb {
  ad__cmdb_outbox_t box;
  cmdb_conf_t c;
  pthread_t thread;
  int started;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int kicked, stopping;
  atomic_int cancel;
};

/* the CMDB's view of a host: the document without history and bookkeeping */
static json_t *public_view(const json_t *doc)
{
  json_t *v = json_deep_copy(doc);
  json_object_set_new(v, "key", json_string(ad__jstr(doc, "_id")));
  json_object_set(v, "version", json_object_get(doc, "rev"));
  static const char *const DROP[] = {"_id", "rev", "history", "cmdb_dirty", "cmdb_next_ms",
                                     "cmdb_attempts", "cmdb_error", "cmdb_pushed_rev",
                                     "cmdb_pushed_at", NULL};
  for (int i = 0; DROP[i]; i++)
    json_object_del(v, DROP[i]);
  return v;
}

/* One pass: push what is due. Returns how many were pushed. */
static int pass(ad__cmdb_t *cm)
{
  int64_t now = ad__now_ms();
  json_t *rows = cm->box.due(cm->box.user, now, cm->c.batch);
  char auth[600];
  int tok = cm->c.token && cm->c.token[0];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok ? cm->c.token : "");
  const char *headers[] = {tok ? auth : NULL, NULL};
  ad__http_opts_t o = {.timeout_ms = cm->c.timeout_ms,
                       .connect_timeout_ms = cm->c.timeout_ms,
                       .ca_file = cm->c.ca_file && cm->c.ca_file[0] ? cm->c.ca_file : NULL,
                       .insecure = cm->c.insecure,
                       .cancel = &cm->cancel};
  int pushed = 0, down = 0;
  size_t i;
  json_t *doc;
  json_array_foreach(rows, i, doc) {
    if (cm->cancel)
      break;
    json_int_t attempts = json_integer_value(json_object_get(doc, "cmdb_attempts"));
    char error[300] = "";
    if (!down) {
      json_t *body = public_view(doc);
      char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
      json_decref(body);
      ad__http_resp_t resp = {0};
      int retry = 0;
      ad_error_t err;
      int rc = text ? ad__http_post_json(cm->c.url, headers, text, &o, "cmdb", &resp, &retry, &err)
                    : AD_ENOMEM;
      free(text);
      if (rc == 0 && resp.status >= 200 && resp.status < 300) {
        char iso[32];
        ad__iso_ms(ad__now_ms(), iso);
        cm->box.mark(cm->box.user, doc,
                     json_pack("{s:b,s:O,s:s,s:i,s:s}", "cmdb_dirty", 0, "cmdb_pushed_rev",
                               json_object_get(doc, "rev"), "cmdb_pushed_at", iso,
                               "cmdb_attempts", 0, "cmdb_error", ""));
        pushed++;
        ad__http_resp_free(&resp);
        continue;
      }
      if (rc == 0)
        snprintf(error, sizeof error, "HTTP %ld: %.200s", resp.status, resp.body ? resp.body : "");
      else
        snprintf(error, sizeof error, "%s", err.message);
      ad__http_resp_free(&resp);
      /* the CMDB is unreachable: do not hammer it with the rest of the batch */
      down = rc != 0;
      AD_LOG_W("cmdb", "push of %s failed (attempt %lld): %s", ad__jstr(doc, "_id"),
               (long long)attempts + 1, error);
    } else {
      snprintf(error, sizeof error, "not tried: the CMDB was unreachable in this pass");
    }
    long long backoff = (long long)cm->c.retry_min_s << (attempts > 16 ? 16 : attempts);
    if (backoff > cm->c.retry_max_s)
      backoff = cm->c.retry_max_s;
    cm->box.mark(cm->box.user, doc,
                 json_pack("{s:I,s:I,s:s}", "cmdb_attempts", attempts + 1, "cmdb_next_ms",
                           (json_int_t)(ad__now_ms() + backoff * 1000), "cmdb_error", error));
  }
  json_decref(rows);
  return pushed;
}

static void *run(void *arg)
{
  ad__cmdb_t *cm = arg;
  pthread_mutex_lock(&cm->lock);
  while (!cm->stopping) {
    cm->kicked = 0;
    pthread_mutex_unlock(&cm->lock);
    pass(cm);
    pthread_mutex_lock(&cm->lock);
    if (cm->stopping || cm->kicked)
      continue;
    struct timespec ts; /* the cond waits on CLOCK_MONOTONIC (ad__cmdb_new) */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = ts.tv_nsec + (long long)cm->c.interval_ms * 1000000LL;
    ts.tv_sec += ns / 1000000000LL;
    ts.tv_nsec = ns % 1000000000LL;
    pthread_cond_timedwait(&cm->cond, &cm->lock, &ts);
  }
  pthread_mutex_unlock(&cm->lock);
  return NULL;
}

ad__cmdb_t *ad__cmdb_new(const ad__cmdb_outbox_t *box, const json_t *conf, ad_error_t *err)
{
  if (!json_is_object(conf)) {
    ad__err(err, AD_ECONFIG, "config", "registry.cmdb: must be an object with a url");
    return NULL;
  }
  ad__cmdb_t *cm = calloc(1, sizeof *cm);
  if (!cm) {
    ad__err(err, AD_ENOMEM, "cmdb", "no memory");
    return NULL;
  }
  cm->box = *box;
  pthread_mutex_init(&cm->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* an interval: immune to clock steps */
  pthread_cond_init(&cm->cond, &ca);
  pthread_condattr_destroy(&ca);
  int rc = ad__config_load(CMDB_KEYS, &cm->c, conf, err);
  if (rc == 0 && (!cm->c.url || (strncmp(cm->c.url, "http://", 7) && strncmp(cm->c.url, "https://", 8))))
    rc = ad__err(err, AD_ECONFIG, "config", "registry.cmdb.url: must be an http:// or https:// URL");
  if (rc == 0 && cm->box.due && pthread_create(&cm->thread, NULL, run, cm) == 0)
    cm->started = 1;
  if (rc) {
    ad__cmdb_destroy(&cm);
    return NULL;
  }
  return cm;
}

void ad__cmdb_kick(void *user)
{
  ad__cmdb_t *cm = user;
  pthread_mutex_lock(&cm->lock);
  cm->kicked = 1;
  pthread_cond_signal(&cm->cond);
  pthread_mutex_unlock(&cm->lock);
}

void ad__cmdb_destroy(ad__cmdb_t **p)
{
  if (!p || !*p)
    return;
  ad__cmdb_t *cm = *p;
  if (cm->started) {
    pthread_mutex_lock(&cm->lock);
    cm->stopping = 1;
    cm->cancel = 1;
    pthread_cond_signal(&cm->cond);
    pthread_mutex_unlock(&cm->lock);
    pthread_join(cm->thread, NULL);
  }
  ad__config_free(CMDB_KEYS, &cm->c);
  pthread_mutex_destroy(&cm->lock);
  pthread_cond_destroy(&cm->cond);
  free(cm);
  *p = NULL;
}
