/*
 * notify.c - the notifier: configuration, one bounded queue and one sender
 * thread per channel, retries with exponential backoff, rate limits, stats.
 * Backends (notify_<type>.c) make single tries; see notify_private.h.
 *
 * One mutex guards every queue and counter; it is never held across a
 * network call or a log call. A message is copied once and shared by the
 * channels' queues (reference counted).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/abi.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "core/redact.h"
#include "notify/notify_private.h"

static const ad__notify_backend_t *const BACKENDS[] = {
    &ad__notify_dingtalk, &ad__notify_smtp, &ad__notify_webhook, NULL};

typedef struct {
  int timeout_ms, connect_timeout_ms, retries, backoff_ms, backoff_max_ms, queue_size;
} notify_conf_t;

#define K(name, field, min, max, def) \
  {name, AD_CT_INT, offsetof(notify_conf_t, field), min, max, def, NULL}
static const ad__config_key_t NOTIFY_KEYS[] = {
    K("timeout_ms", timeout_ms, 1, 600000, "5000"),
    K("connect_timeout_ms", connect_timeout_ms, 0, 600000, "0"), /* 0: timeout_ms */
    K("retries", retries, 0, 100, "3"),
    K("backoff_ms", backoff_ms, 0, 3600000, "500"),
    K("backoff_max_ms", backoff_max_ms, 0, 3600000, "30000"),
    K("queue_size", queue_size, 1, 1000000, "1000"),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__notify_keys(void) { return NOTIFY_KEYS; }

typedef struct {
  char *type, *name, *url, *ca_file;
  int insecure, per_minute;
} chan_conf_t;

#define K(name, type, field, min, max, def) \
  {name, type, offsetof(chan_conf_t, field), min, max, def, NULL}
static const ad__config_key_t CHANNEL_KEYS[] = {
    K("type", AD_CT_STR, type, 0, 0, ""),
    K("name", AD_CT_STR, name, 0, 0, ""),
    K("url", AD_CT_STR, url, 0, 0, ""),
    K("ca_file", AD_CT_STR, ca_file, 0, 0, ""),
    K("insecure_skip_verify", AD_CT_BOOL, insecure, 0, 0, "false"),
    K("max_per_minute", AD_CT_INT, per_minute, -1, 100000, "-1"), /* -1: backend's */
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__notify_channel_keys(void) { return CHANNEL_KEYS; }

typedef struct {
  atomic_int refs;
  ad__notice_t m; /* strings point into the same allocation */
} notice_t;

typedef struct {
  struct ad_notifier *owner;
  chan_conf_t c;
  char *label; /* "name (scheme://host:port)": what logs say */
  char *origin;
  const ad__notify_backend_t *be;
  void *state;
  notice_t **ring;
  size_t head, count;
  int inflight, full_logged;
  int64_t *stamps; /* the last per_minute tries (monotonic ms), a ring */
  size_t nstamps, stamp_pos;
  pthread_cond_t cond; /* new message or stop */
  pthread_t thread;
  int started;
  ad_notify_stats_t st;
  char last_error[256]; /* the last message not delivered, and when (wall) */
  int64_t last_error_ms;
} channel_t;

struct ad_notifier {
  notify_conf_t c;
  channel_t *ch;
  int nch;
  pthread_mutex_t lock;
  pthread_cond_t idle; /* a channel finished a message */
  atomic_int stop;
  uint64_t next_id;
};

/* Wait on `c` (lock held) until the monotonic `deadline`; 1 when stopping. */
static int wait_until(ad_notifier_t *n, pthread_cond_t *c, int64_t deadline)
{
  while (!atomic_load(&n->stop)) {
    int64_t left = deadline - ad__mono_ms();
    if (left <= 0)
      return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000)
      ts.tv_sec++, ts.tv_nsec -= 1000000000;
    pthread_cond_timedwait(c, &n->lock, &ts);
  }
  return 1;
}

/* ---- helpers for the backends ------------------------------------------ */

int ad__notify_take_strv(json_t *obj, const char *key, char ***out, size_t *n,
                         ad_error_t *err)
{
  *out = NULL;
  *n = 0;
  json_t *a = json_object_get(obj, key);
  if (!a || json_is_null(a)) {
    json_object_del(obj, key);
    return 0;
  }
  if (!json_is_array(a))
    return ad__err(err, AD_ECONFIG, "config", "%s: must be an array of strings", key);
  char **v = calloc(json_array_size(a) + 1, sizeof(char *));
  if (!v)
    return ad__err(err, AD_ENOMEM, "config", "%s: no memory", key);
  size_t i;
  json_t *s;
  json_array_foreach(a, i, s) {
    if (!json_is_string(s) || !*json_string_value(s)) {
      ad__notify_strv_free(v);
      return ad__err(err, AD_ECONFIG, "config", "%s[%zu]: must be a non-empty string",
                     key, i);
    }
    if (!(v[i] = strdup(json_string_value(s)))) {
      ad__notify_strv_free(v);
      return ad__err(err, AD_ENOMEM, "config", "%s: no memory", key);
    }
  }
  *out = v;
  *n = i;
  json_object_del(obj, key);
  return 0;
}

void ad__notify_strv_free(char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}

/* ---- configuration ------------------------------------------------------ */

/* Put "<prefix>" in front of err->message; returns rc. */
static int prefix_err(ad_error_t *err, int rc, const char *fmt, ...)
{
  if (err) {
    char p[64], m[sizeof(err->message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    snprintf(m, sizeof m, "%s%s", p, err->message);
    memcpy(err->message, m, sizeof m);
    snprintf(err->domain, sizeof err->domain, "config");
  }
  return rc;
}

static int channel_init(ad_notifier_t *n, channel_t *ch, int i, const json_t *spec,
                        ad_error_t *err)
{
  if (!json_is_object(spec))
    return ad__err(err, AD_ECONFIG, "config", "channels[%d]: must be an object", i);
  json_t *own = json_copy((json_t *)spec), *common = json_object();
  int rc = own && common ? 0 : ad__err(err, AD_ENOMEM, "config", "no memory");
  for (const ad__config_key_t *k = CHANNEL_KEYS; !rc && k->name; k++) {
    json_t *v = json_object_get(own, k->name);
    if (v) {
      json_object_set(common, k->name, v);
      json_object_del(own, k->name);
    }
  }
  if (!rc && (rc = ad__config_load(CHANNEL_KEYS, &ch->c, common, err)))
    rc = prefix_err(err, rc, "channels[%d].", i);
  char allowed[64] = "";
  for (int b = 0; !rc && BACKENDS[b]; b++) {
    snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s",
             b ? ", " : "", BACKENDS[b]->type);
    if (ch->c.type && !strcmp(ch->c.type, BACKENDS[b]->type))
      ch->be = BACKENDS[b];
  }
  if (!rc && !ch->be)
    rc = ch->c.type ? ad__err(err, AD_ECONFIG, "config",
                              "channels[%d].type: \"%s\" is not one of %s", i,
                              ch->c.type, allowed)
                    : ad__err(err, AD_ECONFIG, "config",
                              "channels[%d]: \"type\" is required (one of %s)", i, allowed);
  if (!rc && !ch->c.name) {
    char nm[32];
    snprintf(nm, sizeof nm, "%s#%d", ch->be->type, i);
    ch->c.name = strdup(nm);
  }
  if (!rc && !ch->c.url)
    rc = ad__err(err, AD_ECONFIG, "config", "channels[%d] (%s): \"url\" is required", i,
                 ch->c.name);
  if (!rc) {
    ch->origin = ad__redact_origin(ch->c.url);
    const char *colon = ch->origin ? strchr(ch->origin, ':') : NULL;
    char scheme[16] = "";
    if (colon && colon - ch->origin < (int)sizeof scheme)
      memcpy(scheme, ch->origin, (size_t)(colon - ch->origin));
    const char *ok = ch->be->schemes, *hit = *scheme ? strstr(ok, scheme) : NULL;
    size_t sl = strlen(scheme);
    if (!hit || (hit != ok && hit[-1] != ',') || (hit[sl] && hit[sl] != ','))
      rc = ad__err(err, AD_ECONFIG, "config",
                   "channels[%d] (%s).url: not a %s URL (%s)", i, ch->c.name,
                   ch->be->schemes, ch->origin ? ch->origin : "unparsable");
  }
  if (!rc && !(ch->state = ch->be->create(own, ch->c.url, err)))
    rc = prefix_err(err, err ? err->code : AD_ECONFIG, "channels[%d] (%s).", i, ch->c.name);
  json_decref(own);
  json_decref(common);
  if (rc)
    return rc;
  if (ch->c.per_minute < 0)
    ch->c.per_minute = ch->be->default_per_minute;
  size_t lsz = strlen(ch->c.name) + strlen(ch->origin) + 4;
  ch->nstamps = (size_t)ch->c.per_minute;
  ch->label = malloc(lsz);
  ch->ring = calloc((size_t)n->c.queue_size, sizeof(notice_t *));
  ch->stamps = ch->nstamps ? calloc(ch->nstamps, sizeof(int64_t)) : NULL;
  if (!ch->label || !ch->ring || (ch->nstamps && !ch->stamps))
    return ad__err(err, AD_ENOMEM, "notify", "no memory for channel %d", i);
  snprintf(ch->label, lsz, "%s (%s)", ch->c.name, ch->origin);
  return 0;
}

/* ---- delivery ----------------------------------------------------------- */

/* Length of at most `max` bytes of `s` that does not end inside a UTF-8
 * character: titles in log lines stay valid UTF-8. */
static int utf8_cut(const char *s, int max)
{
  int len = (int)strnlen(s, (size_t)max);
  while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
    len--;
  return len;
}

static void notice_unref(notice_t *nt)
{
  if (nt && atomic_fetch_sub(&nt->refs, 1) == 1)
    free(nt);
}

/* Lock held. Wait for room in the channel's max_per_minute window; 1 when
 * stopping. */
static int rate_wait(ad_notifier_t *n, channel_t *ch)
{
  if (!ch->nstamps)
    return 0;
  int64_t oldest = ch->stamps[ch->stamp_pos]; /* 0 until the ring is full */
  if (oldest && ad__mono_ms() - oldest < 60000) {
    pthread_mutex_unlock(&n->lock); /* no log call under the lock */
    AD_LOG_I("notify", "%s: held back by max_per_minute %d for %lld ms", ch->label,
             ch->c.per_minute, (long long)(oldest + 60000 - ad__mono_ms()));
    pthread_mutex_lock(&n->lock);
    if (wait_until(n, &ch->cond, ch->stamps[ch->stamp_pos] + 60000))
      return 1;
  }
  ch->stamps[ch->stamp_pos] = ad__mono_ms();
  ch->stamp_pos = (ch->stamp_pos + 1) % ch->nstamps;
  return 0;
}

/* 1 + retries tries with exponential backoff; counts the outcome. */
static int deliver(ad_notifier_t *n, channel_t *ch, const ad__notice_t *m, ad_error_t *err)
{
  ad__http_opts_t o = {n->c.timeout_ms, n->c.connect_timeout_ms, ch->c.ca_file,
                       ch->c.insecure, &n->stop, 0 /* max_body: default */};
  int tries = 1 + n->c.retries, rc = AD_ESTOPPED, i;
  int64_t delay = n->c.backoff_ms < n->c.backoff_max_ms ? n->c.backoff_ms
                                                         : n->c.backoff_max_ms;
  ad_error_t e = {0};
  for (i = 0; i < tries; i++) {
    pthread_mutex_lock(&n->lock);
    int stopped = 0;
    if (i > 0) { /* backoff_ms, then doubling up to backoff_max_ms */
      stopped = wait_until(n, &ch->cond, ad__mono_ms() + delay);
      delay = delay * 2 < n->c.backoff_max_ms ? delay * 2 : n->c.backoff_max_ms;
    }
    stopped = stopped || rate_wait(n, ch);
    if (i > 0 && !stopped)
      ch->st.retried++;
    pthread_mutex_unlock(&n->lock);
    if (stopped) {
      rc = ad__err(&e, AD_ESTOPPED, "notify", "notifier stopping");
      break;
    }
    int retry = 0;
    if ((rc = ch->be->send(ch->state, m, &o, &retry, &e)) == 0)
      break;
    AD_LOG_W("notify", "%s: message %llu try %d of %d failed: %s", ch->label,
             (unsigned long long)m->id, i + 1, tries, e.message);
    if (!retry || rc == AD_ESTOPPED)
      break;
  }
  pthread_mutex_lock(&n->lock);
  if (rc == 0)
    ch->st.sent++;
  else if (rc == AD_ESTOPPED)
    ch->st.dropped++;
  else {
    ch->st.failed++;
    snprintf(ch->last_error, sizeof ch->last_error, "%s", e.message);
    ch->last_error_ms = ad__now_ms();
  }
  pthread_mutex_unlock(&n->lock);
  if (rc == 0)
    AD_LOG_D("notify", "%s: message %llu delivered", ch->label, (unsigned long long)m->id);
  else if (rc != AD_ESTOPPED) {
    int done = i < tries ? i + 1 : tries;
    AD_LOG_E("notify", "%s: message %llu \"%.*s\" not delivered after %d %s: %s",
             ch->label, (unsigned long long)m->id, utf8_cut(m->title, 80), m->title,
             done, done == 1 ? "try" : "tries", e.message);
  }
  if (rc && err)
    *err = e;
  return rc;
}

static void *channel_main(void *arg)
{
  channel_t *ch = arg;
  ad_notifier_t *n = ch->owner;
  pthread_mutex_lock(&n->lock);
  while (!atomic_load(&n->stop)) {
    if (!ch->count) {
      pthread_cond_wait(&ch->cond, &n->lock);
      continue;
    }
    notice_t *nt = ch->ring[ch->head];
    ch->ring[ch->head] = NULL;
    ch->head = (ch->head + 1) % (size_t)n->c.queue_size;
    ch->count--;
    ch->inflight = 1;
    pthread_mutex_unlock(&n->lock);
    deliver(n, ch, &nt->m, NULL);
    notice_unref(nt);
    pthread_mutex_lock(&n->lock);
    ch->inflight = 0;
    pthread_cond_broadcast(&n->idle);
  }
  pthread_mutex_unlock(&n->lock);
  return NULL;
}

/* ---- the interface ------------------------------------------------------ */

ad_notifier_t *ad_notifier_new(const char *config_json, ad_error_t *err)
{
  ad_global_init(); /* curl_global_init, before our threads */
  json_t *obj = ad__config_parse(config_json, "notifier configuration", AD_ECONFIG, err);
  if (!obj)
    return NULL;
  ad_notifier_t *n = calloc(1, sizeof(*n));
  json_t *chans = json_is_object(obj) ? json_incref(json_object_get(obj, "channels")) : NULL;
  if (!n) {
    json_decref(chans);
    json_decref(obj);
    ad__err(err, AD_ENOMEM, "notify", "no memory");
    return NULL;
  }
  pthread_mutex_init(&n->lock, NULL);
  pthread_cond_init(&n->idle, NULL);
  if (chans)
    json_object_del(obj, "channels");
  int rc = ad__config_load(NOTIFY_KEYS, &n->c, obj, err);
  json_decref(obj);
  if (!rc && (!json_is_array(chans) || !json_array_size(chans)))
    rc = ad__err(err, AD_ECONFIG, "config",
                 "channels: %s (a non-empty array of channel objects)",
                 chans ? "wrong type or empty" : "is required");
  if (!rc && !(n->ch = calloc(json_array_size(chans), sizeof(channel_t))))
    rc = ad__err(err, AD_ENOMEM, "notify", "no memory");
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  for (size_t i = 0; !rc && i < json_array_size(chans); i++) {
    channel_t *ch = &n->ch[n->nch++];
    ch->owner = n;
    pthread_cond_init(&ch->cond, &ca);
    rc = channel_init(n, ch, (int)i, json_array_get(chans, i), err);
  }
  pthread_condattr_destroy(&ca);
  json_decref(chans);
  for (int i = 0; !rc && i < n->nch; i++) {
    if (pthread_create(&n->ch[i].thread, NULL, channel_main, &n->ch[i]))
      rc = ad__err(err, AD_ENOMEM, "notify", "cannot start the thread of channel %s",
                   n->ch[i].label);
    else
      n->ch[i].started = 1;
  }
  if (rc) {
    ad_notifier_destroy(&n);
    return NULL;
  }
  for (int i = 0; i < n->nch; i++)
    AD_LOG_I("notify", "channel %s: %s, %d per minute max", n->ch[i].label,
             n->ch[i].be->type, n->ch[i].c.per_minute);
  return n;
}

static notice_t *notice_new(const char *title, const char *text, const char *key)
{
  size_t tl = strlen(title) + 1, xl = strlen(text) + 1, kl = key ? strlen(key) + 1 : 1;
  notice_t *nt = malloc(sizeof(*nt) + tl + xl + kl);
  if (!nt)
    return NULL;
  char *p = (char *)(nt + 1);
  atomic_init(&nt->refs, 1);
  nt->m.time_ms = ad__now_ms();
  nt->m.title = memcpy(p, title, tl);
  nt->m.text = memcpy(p + tl, text, xl);
  nt->m.dedup_key = memcpy(p + tl + xl, key ? key : "", kl);
  return nt;
}

int ad_notify_send(ad_notifier_t *n, const char *title, const char *markdown_text,
                   const char *dedup_key, ad_error_t *err)
{
  if (!n || !title || !markdown_text)
    return ad__err(err, AD_EINVAL, "notify", "ad_notify_send: %s is NULL",
                   !n ? "notifier" : !title ? "title" : "markdown_text");
  notice_t *nt = notice_new(title, markdown_text, dedup_key);
  if (!nt)
    return ad__err(err, AD_ENOMEM, "notify", "no memory for a message");
  char full[160] = "", first_full[64] = "";
  int refused = 0, depth = 0;
  pthread_mutex_lock(&n->lock);
  if (atomic_load(&n->stop)) {
    pthread_mutex_unlock(&n->lock);
    notice_unref(nt);
    return ad__err(err, AD_ESTOPPED, "notify", "notifier is being destroyed");
  }
  uint64_t id = nt->m.id = ++n->next_id;
  size_t cap = (size_t)n->c.queue_size;
  for (int i = 0; i < n->nch; i++) {
    channel_t *ch = &n->ch[i];
    int dup = 0;
    for (size_t j = 0; *nt->m.dedup_key && !dup && j < ch->count; j++)
      dup = !strcmp(ch->ring[(ch->head + j) % cap]->m.dedup_key, nt->m.dedup_key);
    if (dup) {
      ch->st.coalesced++;
    } else if (ch->count == cap) {
      ch->st.refused++;
      snprintf(full + strlen(full), sizeof full - strlen(full), "%s%s",
               refused++ ? ", " : "", ch->c.name);
      if (!ch->full_logged) { /* once per run of refusals, not per message */
        ch->full_logged = 1;
        snprintf(first_full, sizeof first_full, "%s", ch->label);
        depth = (int)ch->count;
      }
    } else {
      atomic_fetch_add(&nt->refs, 1);
      ch->ring[(ch->head + ch->count) % cap] = nt;
      ch->count++;
      ch->st.queued++;
      ch->full_logged = 0;
      pthread_cond_broadcast(&ch->cond); /* the thread, not a send_now backoff */
    }
  }
  int nch = n->nch;
  pthread_mutex_unlock(&n->lock);
  notice_unref(nt);
  if (*first_full)
    AD_LOG_W("notify", "%s: queue full (%d waiting): refusing messages until it drains "
             "(first refused: %llu \"%.*s\")", first_full, depth,
             (unsigned long long)id, utf8_cut(title, 80), title);
  if (refused)
    return ad__err(err, AD_EFULL, "notify", "queue full on %s: message %llu refused "
                   "there, queued on %d of %d channels", full, (unsigned long long)id,
                   nch - refused, nch);
  return 0;
}

int ad_notify_send_now(ad_notifier_t *n, const char *title, const char *markdown_text,
                       const char *dedup_key, ad_error_t *err)
{
  if (!n || !title || !markdown_text)
    return ad__err(err, AD_EINVAL, "notify", "ad_notify_send_now: %s is NULL",
                   !n ? "notifier" : !title ? "title" : "markdown_text");
  notice_t *nt = notice_new(title, markdown_text, dedup_key);
  if (!nt)
    return ad__err(err, AD_ENOMEM, "notify", "no memory for a message");
  pthread_mutex_lock(&n->lock);
  nt->m.id = ++n->next_id;
  pthread_mutex_unlock(&n->lock);
  int first = 0, nfail = 0;
  char names[120] = "";
  ad_error_t e = {0}, first_e = {0};
  for (int i = 0; i < n->nch; i++) {
    int rc = deliver(n, &n->ch[i], &nt->m, &e);
    if (rc) {
      if (!first)
        first = rc, first_e = e;
      snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
               nfail++ ? ", " : "", n->ch[i].c.name);
    }
  }
  notice_unref(nt);
  if (first)
    return ad__err(err, first, "notify", "not delivered to %s: %s", names,
                   first_e.message);
  return 0;
}

int ad_notify_flush(ad_notifier_t *n, int timeout_ms)
{
  int64_t deadline = ad__mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
  int rc = 0;
  pthread_mutex_lock(&n->lock);
  for (;;) {
    int busy = 0;
    for (int i = 0; i < n->nch; i++)
      busy |= n->ch[i].count || n->ch[i].inflight;
    if (!busy || atomic_load(&n->stop))
      break;
    if (timeout_ms >= 0 && ad__mono_ms() >= deadline) {
      rc = AD_ETIMEOUT;
      break;
    }
    /* n->idle uses the realtime clock: wake at least every 100 ms. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100000000;
    if (ts.tv_nsec >= 1000000000)
      ts.tv_sec++, ts.tv_nsec -= 1000000000;
    pthread_cond_timedwait(&n->idle, &n->lock, &ts);
  }
  pthread_mutex_unlock(&n->lock);
  return rc;
}

static void add_stats(ad_notify_stats_t *to, const channel_t *ch)
{
  to->queued += ch->st.queued;
  to->coalesced += ch->st.coalesced;
  to->refused += ch->st.refused;
  to->sent += ch->st.sent;
  to->failed += ch->st.failed;
  to->retried += ch->st.retried;
  to->dropped += ch->st.dropped;
  to->depth += ch->count + (size_t)ch->inflight;
}

static void sum_stats(ad_notifier_t *n, int index, ad_notify_stats_t *st)
{
  memset(st, 0, sizeof(*st));
  st->struct_size = sizeof(*st);
  pthread_mutex_lock(&n->lock);
  for (int i = 0; i < n->nch; i++)
    if (index == -1 || index == i)
      add_stats(st, &n->ch[i]);
  pthread_mutex_unlock(&n->lock);
}

int ad_notify_stats(ad_notifier_t *n, int index, ad_notify_stats_t *st,
                    ad_error_t *err)
{
  if (index < -1 || index >= n->nch)
    return ad__err(err, AD_ENOTFOUND, "notify",
                   "channel index %d: the notifier has %d channels", index,
                   n->nch);
  ad_notify_stats_t s;
  sum_stats(n, index, &s);
  return ad__struct_out(st, &s, sizeof s,
                        AD__SIZE_V1(ad_notify_stats_t, depth),
                        "ad_notify_stats_t", err);
}

static json_t *stats_obj(const ad_notify_stats_t *s)
{
  return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "queued", (json_int_t)s->queued,
                   "coalesced", (json_int_t)s->coalesced, "refused",
                   (json_int_t)s->refused, "sent", (json_int_t)s->sent, "failed",
                   (json_int_t)s->failed, "retried", (json_int_t)s->retried,
                   "dropped", (json_int_t)s->dropped, "depth", (json_int_t)s->depth);
}

/* "last_error" and "last_error_at" (null when every message got through):
 * what `salt-run autodeploy.status` shows per channel. */
static void set_last_error(ad_notifier_t *n, const channel_t *ch, json_t *o)
{
  char text[sizeof ch->last_error], iso[32];
  pthread_mutex_lock(&n->lock);
  int64_t at = ch->last_error_ms;
  memcpy(text, ch->last_error, sizeof text);
  pthread_mutex_unlock(&n->lock);
  if (at)
    ad__iso_ms(at, iso);
  json_object_set_new(o, "last_error", at ? json_string(text) : json_null());
  json_object_set_new(o, "last_error_at", at ? json_string(iso) : json_null());
}

char *ad_notify_stats_json(ad_notifier_t *n)
{
  ad_notify_stats_t s;
  sum_stats(n, -1, &s);
  json_t *arr = json_array(), *root = json_pack("{s:o,s:o}", "total", stats_obj(&s),
                                                "channels", arr);
  for (int i = 0; root && i < n->nch; i++) {
    sum_stats(n, i, &s);
    json_t *o = stats_obj(&s);
    json_object_set_new(o, "name", json_string(n->ch[i].c.name));
    json_object_set_new(o, "type", json_string(n->ch[i].be->type));
    json_object_set_new(o, "host", json_string(n->ch[i].origin));
    set_last_error(n, &n->ch[i], o);
    json_array_append_new(arr, o);
  }
  char *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  return out;
}

void ad_notifier_destroy(ad_notifier_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  ad_notifier_t *n = *self_p;
  pthread_mutex_lock(&n->lock);
  atomic_store(&n->stop, 1);
  for (int i = 0; i < n->nch; i++)
    pthread_cond_broadcast(&n->ch[i].cond);
  pthread_cond_broadcast(&n->idle);
  pthread_mutex_unlock(&n->lock);
  for (int i = 0; i < n->nch; i++)
    if (n->ch[i].started)
      pthread_join(n->ch[i].thread, NULL);
  for (int i = 0; i < n->nch; i++) {
    channel_t *ch = &n->ch[i];
    if (ch->count)
      AD_LOG_W("notify", "%s: %zu queued messages dropped at shutdown", ch->label,
               ch->count);
    ch->st.dropped += ch->count;
    for (; ch->count; ch->count--) {
      notice_unref(ch->ring[ch->head]);
      ch->head = (ch->head + 1) % (size_t)n->c.queue_size;
    }
    if (ch->state)
      ch->be->destroy(ch->state);
    ad__config_free(CHANNEL_KEYS, &ch->c);
    free(ch->label);
    free(ch->origin);
    free(ch->ring);
    free(ch->stamps);
    pthread_cond_destroy(&ch->cond);
  }
  free(n->ch);
  pthread_mutex_destroy(&n->lock);
  pthread_cond_destroy(&n->idle);
  free(n);
  *self_p = NULL;
}
