/*
 * kafka.c - the Kafka consumer thread (kafka.h has the contract).
 *
 * Offsets: enable.auto.commit stays on, enable.auto.offset.store is off,
 * and a message's offset is stored (rd_kafka_offsets_store) only after its
 * openings were applied. librdkafka commits stored offsets every
 * commit_interval_ms and on close, so a crash redelivers at most what was
 * applied since the last commit, and applying twice changes nothing.
 *
 * A message whose opening cannot be applied (the store is down) is retried
 * in place every retry_ms; the consumer does not move past it. Stopping
 * then leaves it uncommitted, so the next start gets it again.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "core/redact.h"
#include "feeds/canal.h"
#include "feeds/kafka.h"
#include "fleet/fleet.h"

#define MAX_PARTITIONS 256 /* lag is tracked for partitions 0..255 */

typedef struct {
  char *brokers, *topic, *group, *start;
  int retry_ms, commit_interval_ms;
} kafka_conf_t;

#define K(name, type, field, min, max, def) \
  {name, type, offsetof(kafka_conf_t, field), min, max, def, NULL}
static const ad__config_key_t KEYS[] = {
    K("brokers", AD_CT_STR, brokers, 0, 0, ""),
    K("topic", AD_CT_STR, topic, 0, 0, ""),
    K("group", AD_CT_STR, group, 0, 0, "autodeploy"),
    K("start", AD_CT_STR, start, 0, 0, "earliest"),
    K("retry_ms", AD_CT_INT, retry_ms, 10, 600000, "2000"),
    K("commit_interval_ms", AD_CT_INT, commit_interval_ms, 10, 600000, "1000"),
    {NULL, 0, 0, 0, 0, NULL, NULL}};

const ad__config_key_t *ad__kafka_keys(void) { return KEYS; }
#undef K

struct ad__kafka {
  kafka_conf_t c;
  ad__canal_map_t map;
  rd_kafka_t *rk;
  ad__kafka_apply_fn apply;
  void *user;
  pthread_t thread;
  int started;
  atomic_int stop;
  int64_t last_error_log_ms;
  atomic_uint_fast64_t consumed, openings, duplicates, refused, unknown, malformed, ignored,
      retries, errors;
  atomic_int_fast64_t lag[MAX_PARTITIONS];
  json_t *security; /* kept to drop its secrets again (core/redact.h) */
};

/* librdkafka's own log lines, into ours (never to stderr). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
  if (level <= 3)
    AD_LOG_E("kafka", "librdkafka %s: %s", fac, buf);
  else if (level <= 5)
    AD_LOG_W("kafka", "librdkafka %s: %s", fac, buf);
  else
    AD_LOG_D("kafka", "librdkafka %s: %s", fac, buf);
}

/* Set one property; the error names the key, and never echoes a value
 * (security holds passwords). */
static int set_prop(rd_kafka_conf_t *rc, const char *where, const char *name, const char *value,
                    ad_error_t *err)
{
  char es[512];
  if (rd_kafka_conf_set(rc, name, value, es, sizeof es) == RD_KAFKA_CONF_OK)
    return 0;
  if (*value && strstr(es, value))
    snprintf(es, sizeof es, "librdkafka refused the value");
  return ad__err(err, AD_ECONFIG, "config", "%s%s: %s", where, name, es);
}

/* The credential-named properties of `sec` (sasl.password,
 * ssl.key.password, ...) into (add) or out of the redaction set. */
static void security_secrets(const json_t *sec, int add)
{
  const char *name;
  json_t *v;
  json_object_foreach((json_t *)sec, name, v) {
    char *line = NULL;
    if (json_is_string(v) && asprintf(&line, "%s: %s", name, json_string_value(v)) >= 0) {
      (add ? ad__secret_add : ad__secret_drop)(AD__SECRET_NAMED, line);
      explicit_bzero(line, strlen(line));
      free(line);
    }
  }
}

/* security: {librdkafka property: value}, passed through (SASL, TLS). */
static int set_security(rd_kafka_conf_t *rc, const json_t *sec, ad_error_t *err)
{
  if (!sec || json_is_null(sec))
    return 0;
  if (!json_is_object(sec))
    return ad__err(err, AD_ECONFIG, "config", "kafka.security: must be an object of librdkafka "
                   "properties (security.protocol, sasl.mechanisms, ssl.ca.location, ...)");
  const char *name;
  json_t *v;
  json_object_foreach((json_t *)sec, name, v) {
    char buf[32];
    const char *text = json_is_string(v) ? json_string_value(v)
                     : json_is_integer(v) ? (snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v)), buf)
                     : json_is_boolean(v) ? (json_is_true(v) ? "true" : "false") : NULL;
    if (!text)
      return ad__err(err, AD_ECONFIG, "config", "kafka.security.%s: must be a string, number or boolean", name);
    if (set_prop(rc, "kafka.security.", name, text, err))
      return AD_ECONFIG;
  }
  return 0;
}

static rd_kafka_conf_t *consumer_conf(ad__kafka_t *k, const json_t *sec, ad_error_t *err)
{
  rd_kafka_conf_t *rc = rd_kafka_conf_new();
  char interval[16];
  snprintf(interval, sizeof interval, "%d", k->c.commit_interval_ms);
  const char *props[][2] = {
      {"bootstrap.servers", k->c.brokers}, {"group.id", k->c.group},
      {"client.id", "autodeploy"},         {"enable.auto.commit", "true"},
      {"enable.auto.offset.store", "false"}, {"auto.commit.interval.ms", interval},
      {"auto.offset.reset", k->c.start},
  };
  for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
    if (set_prop(rc, "kafka: ", props[i][0], props[i][1], err))
      goto fail;
  if (set_security(rc, sec, err))
    goto fail;
  rd_kafka_conf_set_log_cb(rc, log_cb);
  return rc;
fail:
  rd_kafka_conf_destroy(rc);
  return NULL;
}

ad__kafka_t *ad__kafka_new(const json_t *conf, ad__kafka_apply_fn apply, void *user,
                           ad_error_t *err)
{
  ad__kafka_t *k = calloc(1, sizeof *k);
  if (!k)
    return ad__err(err, AD_ENOMEM, "engine", "no memory"), NULL;
  k->apply = apply;
  k->user = user;
  json_t *rest = json_is_object(conf) ? json_deep_copy(conf) : NULL;
  json_t *mapping = json_incref(json_object_get(rest, "mapping"));
  json_t *sec = json_incref(json_object_get(rest, "security"));
  json_object_del(rest, "mapping");
  json_object_del(rest, "security");
  if (json_is_object(sec)) {
    k->security = json_incref(sec);
    security_secrets(sec, 1);
  }
  ad_error_t e;
  rd_kafka_conf_t *rc = NULL;
  char es[512];
  if (!json_is_object(conf)) {
    ad__err(err, AD_ECONFIG, "config", "kafka: must be an object {brokers, topic, group, mapping}");
    goto fail;
  }
  if (ad__config_load(KEYS, &k->c, rest, &e)) {
    ad__err(err, AD_ECONFIG, "config", "kafka: %s", e.message);
    goto fail;
  }
  const char *missing = !k->c.brokers ? "brokers" : !k->c.topic ? "topic" : !k->c.group ? "group" : NULL;
  if (missing) {
    ad__err(err, AD_ECONFIG, "config", "kafka.%s: required (a non-empty string)", missing);
    goto fail;
  }
  if (strcmp(k->c.start, "earliest") && strcmp(k->c.start, "latest")) {
    ad__err(err, AD_ECONFIG, "config", "kafka.start: must be earliest or latest");
    goto fail;
  }
  if (ad__canal_map_load(&k->map, mapping, err))
    goto fail;
  if (!(rc = consumer_conf(k, sec, err)))
    goto fail;
  k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, rc, es, sizeof es);
  if (!k->rk) {
    rd_kafka_conf_destroy(rc);
    ad__err(err, AD_ECONFIG, "config", "kafka: %s", es);
    goto fail;
  }
  rd_kafka_poll_set_consumer(k->rk);
  json_decref(rest);
  json_decref(mapping);
  json_decref(sec);
  return k;
fail:
  json_decref(rest);
  json_decref(mapping);
  json_decref(sec);
  ad__kafka_destroy(&k);
  return NULL;
}

/* Sleep ms in small slices; 1 when asked to stop meanwhile. */
static int pause_ms(ad__kafka_t *k, int ms)
{
  for (int slept = 0; slept < ms; slept += 50) {
    if (atomic_load(&k->stop))
      return 1;
    nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
  }
  return atomic_load(&k->stop);
}

/* Apply one opening until it is applied or refused for good. 0, or 1 when
 * the feed stopped first (the message then stays uncommitted). */
static int apply_one(ad__kafka_t *k, const rd_kafka_message_t *m, const char *id, int64_t at_ms)
{
  for (;;) {
    ad_error_t err = {0};
    int rc = k->apply(k->user, id, at_ms, "kafka", &err);
    if (rc == AD__OPENING_APPLIED) {
      atomic_fetch_add(&k->openings, 1);
      AD_LOG_I("kafka", "%s opened (partition %d, offset %lld)", id, (int)m->partition,
               (long long)m->offset);
      return 0;
    }
    if (rc == AD__OPENING_ALREADY)
      return atomic_fetch_add(&k->duplicates, 1), 0;
    if (rc == AD__OPENING_REFUSED) /* the fleet logged it and noted it on the service */
      return atomic_fetch_add(&k->refused, 1), 0;
    if (rc == AD_ENOTFOUND) {
      atomic_fetch_add(&k->unknown, 1);
      AD_LOG_I("kafka", "partition %d offset %lld: no service %s here, skipped", (int)m->partition,
               (long long)m->offset, id);
      return 0;
    }
    atomic_fetch_add(&k->retries, 1);
    AD_LOG_W("kafka", "partition %d offset %lld: opening of %s not applied (%s); again in %d ms",
             (int)m->partition, (long long)m->offset, id, err.message, k->c.retry_ms);
    if (pause_ms(k, k->c.retry_ms))
      return 1;
  }
}

/* 0: the message is done (its offset may be stored), 1: stopped first. */
static int handle(ad__kafka_t *k, const rd_kafka_message_t *m)
{
  json_t *list;
  ad_error_t err = {0};
  if (ad__canal_openings(&k->map, m->payload ? m->payload : "", m->len, &list, &err)) {
    atomic_fetch_add(&k->malformed, 1);
    atomic_fetch_add(&k->consumed, 1);
    AD_LOG_W("kafka", "%s partition %d offset %lld: malformed message skipped: %s", k->c.topic,
             (int)m->partition, (long long)m->offset, err.message);
    return 0;
  }
  if (!json_array_size(list))
    atomic_fetch_add(&k->ignored, 1);
  int stopped = 0;
  size_t i;
  json_t *o;
  json_array_foreach(list, i, o) {
    int64_t at = json_integer_value(json_object_get(o, "at_ms"));
    if (!at) { /* no time in the message: the time Kafka has for it */
      rd_kafka_timestamp_type_t tt;
      at = rd_kafka_message_timestamp(m, &tt);
      if (at <= 0)
        at = ad__now_ms();
    }
    if ((stopped = apply_one(k, m, json_string_value(json_object_get(o, "service")), at)))
      break;
  }
  json_decref(list);
  if (!stopped) /* counted once done, so consumed == N means N messages fully applied */
    atomic_fetch_add(&k->consumed, 1);
  return stopped;
}

static void store_offset(ad__kafka_t *k, const rd_kafka_message_t *m)
{
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset = m->offset + 1;
  rd_kafka_resp_err_t e = rd_kafka_offsets_store(k->rk, l);
  if (e) /* the partition went to another member meanwhile: it gets the message again */
    AD_LOG_I("kafka", "partition %d offset %lld: offset not stored (%s); redelivered to the new "
             "owner, where it changes nothing", (int)m->partition, (long long)m->offset,
             rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_destroy(l);
  int64_t lo, hi;
  if (m->partition >= 0 && m->partition < MAX_PARTITIONS &&
      rd_kafka_get_watermark_offsets(k->rk, rd_kafka_topic_name(m->rkt), m->partition, &lo, &hi) == 0 &&
      hi >= 0)
    atomic_store(&k->lag[m->partition], hi > m->offset + 1 ? hi - m->offset - 1 : 0);
}

/* A consumer error (broker down, unknown topic, ...): counted, logged at
 * most every 10 s; librdkafka reconnects by itself. */
static void consumer_error(ad__kafka_t *k, const rd_kafka_message_t *m)
{
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
    return;
  atomic_fetch_add(&k->errors, 1);
  int64_t now = ad__mono_ms();
  if (now - k->last_error_log_ms >= 10000) {
    k->last_error_log_ms = now;
    AD_LOG_W("kafka", "consumer: %s", rd_kafka_message_errstr(m));
  }
}

static void *run(void *arg)
{
  ad__kafka_t *k = arg;
  k->last_error_log_ms = -10000;
  while (!atomic_load(&k->stop)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 200);
    if (!m)
      continue;
    if (m->err)
      consumer_error(k, m);
    else if (handle(k, m) == 0)
      store_offset(k, m);
    rd_kafka_message_destroy(m);
  }
  rd_kafka_resp_err_t e = rd_kafka_consumer_close(k->rk); /* commits what was stored */
  if (e)
    AD_LOG_W("kafka", "closing the consumer: %s", rd_kafka_err2str(e));
  return NULL;
}

int ad__kafka_start(ad__kafka_t *k, ad_error_t *err)
{
  if (k->started)
    return 0;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, k->c.topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(k->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e)
    return ad__err(err, AD_EIO, "engine", "kafka: subscribe to %s: %s", k->c.topic, rd_kafka_err2str(e));
  atomic_store(&k->stop, 0);
  if (pthread_create(&k->thread, NULL, run, k))
    return ad__err(err, AD_ENOMEM, "engine", "kafka: cannot start the consumer thread");
  k->started = 1;
  AD_LOG_I("kafka", "consuming %s from %s as group %s", k->c.topic, k->c.brokers, k->c.group);
  return 0;
}

void ad__kafka_stop(ad__kafka_t *k)
{
  if (!k || !k->started)
    return;
  atomic_store(&k->stop, 1);
  pthread_join(k->thread, NULL);
  k->started = 0;
}

void ad__kafka_destroy(ad__kafka_t **k_p)
{
  if (!k_p || !*k_p)
    return;
  ad__kafka_t *k = *k_p;
  ad__kafka_stop(k);
  if (k->rk)
    rd_kafka_destroy(k->rk);
  ad__canal_map_free(&k->map);
  ad__config_free(KEYS, &k->c);
  if (k->security)
    security_secrets(k->security, 0);
  json_decref(k->security);
  free(k);
  *k_p = NULL;
}

json_t *ad__kafka_stats_json(ad__kafka_t *k)
{
  int64_t lag = 0;
  for (int i = 0; i < MAX_PARTITIONS; i++)
    lag += atomic_load(&k->lag[i]);
  return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                   "consumed", (json_int_t)atomic_load(&k->consumed),
                   "openings", (json_int_t)atomic_load(&k->openings),
                   "duplicates", (json_int_t)atomic_load(&k->duplicates),
                   "refused", (json_int_t)atomic_load(&k->refused),
                   "unknown", (json_int_t)atomic_load(&k->unknown),
                   "malformed", (json_int_t)atomic_load(&k->malformed),
                   "ignored", (json_int_t)atomic_load(&k->ignored),
                   "retries", (json_int_t)atomic_load(&k->retries),
                   "errors", (json_int_t)atomic_load(&k->errors), "lag", (json_int_t)lag);
}
