/* test_cmdb.c - the CMDB outbox (cmdb.c): the push thread against an
 * in-memory outbox (the host documents' cmdb_* fields, marked conditionally
 * on `rev` as hosts_store.c's query does) and the tests' loopback HTTP
 * responder (http_srv.h).
 * - a 2xx clears cmdb_dirty, records the pushed rev, resets the error;
 * - a change made during the push keeps the flag: pushed again, cleared then;
 * - a failure backs off per host (retry_min_s << attempts, at most
 *   retry_max_s) and records the error; the other hosts are pushed;
 * - an unreachable CMDB stops the pass; the rest say they were not tried;
 * - a new push thread (a restart) resumes from the flags. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "http_srv.h"
#include "registry/cmdb.h"
#include "store/docs.h"
#include "core/clock.h"
#include "tasks/tasks.h"

/* ---- the outbox: documents in an array ------------------------------------------ */

typedef struct {
  pthread_mutex_t lock;
  json_t *docs;
} box_t;

static json_t *box_due(void *user, int64_t now, int limit)
{
  box_t *b = user;
  json_t *rows = json_array();
  pthread_mutex_lock(&b->lock);
  size_t i;
  json_t *d;
  json_array_foreach(b->docs, i, d) {
    if (json_is_true(json_object_get(d, "cmdb_dirty")) &&
        json_integer_value(json_object_get(d, "cmdb_next_ms")) <= now &&
        (int)json_array_size(rows) < limit)
      json_array_append_new(rows, json_deep_copy(d));
  }
  pthread_mutex_unlock(&b->lock);
  return rows;
}

static json_t *find(box_t *b, const char *id)
{
  size_t i;
  json_t *d;
  json_array_foreach(b->docs, i, d) if (!strcmp(ad__jstr(d, "_id"), id)) return d;
  return NULL;
}

/* {_id, rev} as the store's query: a document at another rev is left alone */
static void box_mark(void *user, const json_t *doc, json_t *set)
{
  box_t *b = user;
  pthread_mutex_lock(&b->lock);
  json_t *d = find(b, ad__jstr(doc, "_id"));
  json_t *rev = json_object_get(doc, "rev");
  if (d && (!rev || json_equal(rev, json_object_get(d, "rev"))))
    json_object_update(d, set);
  pthread_mutex_unlock(&b->lock);
  json_decref(set);
}

static void box_init(box_t *b, const char *ids)
{
  pthread_mutex_init(&b->lock, NULL);
  b->docs = json_array();
  char buf[64];
  snprintf(buf, sizeof buf, "%s", ids);
  for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
    json_array_append_new(b->docs, json_pack("{s:s,s:i,s:s,s:b,s:i,s:[]}", "_id", t, "rev", 3,
                                             "state", "ready", "cmdb_dirty", 1, "cmdb_next_ms", 0,
                                             "history"));
}

static void box_free(box_t *b)
{
  json_decref(b->docs);
  pthread_mutex_destroy(&b->lock);
}

/* a field of document `id`, read under the lock */
static json_int_t field_int(box_t *b, const char *id, const char *k)
{
  pthread_mutex_lock(&b->lock);
  json_t *v = json_object_get(find(b, id), k);
  json_int_t n = json_is_true(v) ? 1 : json_integer_value(v);
  pthread_mutex_unlock(&b->lock);
  return n;
}

static void field_str(box_t *b, const char *id, const char *k, char *out, size_t size)
{
  pthread_mutex_lock(&b->lock);
  snprintf(out, size, "%s", ad__jstr(find(b, id), k));
  pthread_mutex_unlock(&b->lock);
}

/* ---- the CMDB: the tests' loopback responder (http_srv.h) ------------------------------ */

typedef struct {
  srv_t srv;
  pthread_mutex_t lock;
  json_t *bodies;     /* what was posted, in order */
  const char *fail;   /* answer 500 for this host key */
  box_t *bump;        /* while answering the first push: a change to the host (rev+1) */
} cmdb_srv_t;

/* on the server's thread: record the body, answer 200 "okay" or 500 "oops" */
static int cmdb_answer(void *user, const srv_req_t *r, char *out, size_t n)
{
  cmdb_srv_t *s = user;
  json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
  int status = 200;
  pthread_mutex_lock(&s->lock);
  if (j) {
    if (s->fail && !strcmp(ad__jstr(j, "key"), s->fail))
      status = 500;
    if (s->bump && json_array_size(s->bodies) == 0) {
      pthread_mutex_lock(&s->bump->lock);
      json_t *d = find(s->bump, ad__jstr(j, "key"));
      json_object_set_new(d, "rev", json_integer(json_integer_value(json_object_get(d, "rev")) + 1));
      json_object_set_new(d, "state", json_string("draining"));
      pthread_mutex_unlock(&s->bump->lock);
    }
    json_array_append(s->bodies, j);
  }
  pthread_mutex_unlock(&s->lock);
  json_decref(j);
  snprintf(out, n, "%s", status == 200 ? "okay" : "oops");
  return status;
}

static int cmdb_start(cmdb_srv_t *s)
{
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->lock, NULL);
  s->bodies = json_array();
  return srv_start(&s->srv, cmdb_answer, s);
}

static void cmdb_stop(cmdb_srv_t *s)
{
  srv_stop(&s->srv);
  json_decref(s->bodies);
  pthread_mutex_destroy(&s->lock);
}

static size_t cmdb_count(cmdb_srv_t *s, const char *key)
{
  size_t n = 0, i;
  json_t *b;
  pthread_mutex_lock(&s->lock);
  json_array_foreach(s->bodies, i, b) n += !key || !strcmp(ad__jstr(b, "key"), key);
  pthread_mutex_unlock(&s->lock);
  return n;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static ad__cmdb_t *start(box_t *b, int port, int retry_min_s, int retry_max_s)
{
  char conf[300];
  snprintf(conf, sizeof conf,
           "{\"url\": \"http://127.0.0.1:%d/hosts\", \"interval_ms\": 50, \"timeout_ms\": 2000, "
           "\"retry_min_s\": %d, \"retry_max_s\": %d}", port, retry_min_s, retry_max_s);
  json_t *c = json_loads(conf, 0, NULL);
  ad__cmdb_outbox_t box = {box_due, box_mark, b};
  ad_error_t err;
  ad__cmdb_t *cm = ad__cmdb_new(&box, c, &err);
  if (!cm)
    fprintf(stderr, "cmdb: %s\n", err.message);
  json_decref(c);
  return cm;
}

/* wait up to 5 s for field k of id to equal v (at least v when `least`) */
static int wait_for(box_t *b, const char *id, const char *k, json_int_t v, int least)
{
  for (int i = 0; i < 500; i++) {
    json_int_t n = field_int(b, id, k);
    if (n == v || (least && n > v))
      return 1;
    usleep(10000);
  }
  return 0;
}

static int wait_int(box_t *b, const char *id, const char *k, json_int_t v)
{
  return wait_for(b, id, k, v, 0);
}

/* ---- tests ------------------------------------------------------------------------------- */

TEST(a_2xx_clears_the_flag)
{
  box_t b;
  cmdb_srv_t s;
  box_init(&b, "h1");
  ASSERT_EQ(cmdb_start(&s), 0);
  ad__cmdb_t *cm = start(&b, s.srv.port, 5, 300);
  ASSERT(cm != NULL);
  ASSERT(wait_int(&b, "h1", "cmdb_dirty", 0));
  ad__cmdb_destroy(&cm);
  ASSERT(cm == NULL);
  ASSERT_EQ(field_int(&b, "h1", "cmdb_pushed_rev"), 3);
  ASSERT_EQ(field_int(&b, "h1", "cmdb_attempts"), 0);
  json_t *body = json_array_get(s.bodies, 0);
  ASSERT_STR(ad__jstr(body, "key"), "h1");
  ASSERT_EQ(json_integer_value(json_object_get(body, "version")), 3);
  ASSERT_STR(ad__jstr(body, "state"), "ready");
  ASSERT(!json_object_get(body, "history") && !json_object_get(body, "cmdb_dirty") &&
         !json_object_get(body, "_id") && !json_object_get(body, "rev"));
  ASSERT_EQ(cmdb_count(&s, NULL), 1); /* clean: not pushed again */
  cmdb_stop(&s);
  box_free(&b);
}

TEST(a_change_during_the_push_is_pushed_again)
{
  box_t b;
  cmdb_srv_t s;
  box_init(&b, "h1");
  ASSERT_EQ(cmdb_start(&s), 0);
  s.bump = &b; /* the first answer comes after h1 changed (rev 4) */
  ad__cmdb_t *cm = start(&b, s.srv.port, 5, 300);
  ASSERT(cm != NULL);
  ASSERT(wait_int(&b, "h1", "cmdb_pushed_rev", 4));
  ad__cmdb_destroy(&cm);
  ASSERT_EQ(field_int(&b, "h1", "cmdb_dirty"), 0);
  ASSERT_EQ(cmdb_count(&s, "h1"), 2);
  json_t *first = json_array_get(s.bodies, 0), *second = json_array_get(s.bodies, 1);
  ASSERT_EQ(json_integer_value(json_object_get(first, "version")), 3);
  ASSERT_EQ(json_integer_value(json_object_get(second, "version")), 4);
  ASSERT_STR(ad__jstr(second, "state"), "draining");
  cmdb_stop(&s);
  box_free(&b);
}

TEST(a_failure_backs_off_per_host)
{
  box_t b;
  cmdb_srv_t s;
  box_init(&b, "h1,h2");
  ASSERT_EQ(cmdb_start(&s), 0);
  s.fail = "h1";
  int64_t t0 = ad__now_ms();
  ad__cmdb_t *cm = start(&b, s.srv.port, 1, 2);
  ASSERT(cm != NULL);
  ASSERT(wait_int(&b, "h1", "cmdb_attempts", 1));
  int64_t t1 = ad__now_ms();
  ASSERT(wait_int(&b, "h2", "cmdb_dirty", 0)); /* the other host is pushed */
  char e[300];
  field_str(&b, "h1", "cmdb_error", e, sizeof e);
  ASSERT_STR(e, "HTTP 500: oops");
  ASSERT_EQ(field_int(&b, "h1", "cmdb_dirty"), 1);
  json_int_t next = field_int(&b, "h1", "cmdb_next_ms");
  ASSERT(next >= t0 + 1000 && next <= t1 + 1000); /* retry_min_s << 0 */
  /* a kick does not hurry a host that is backing off */
  ad__cmdb_kick(cm);
  usleep(300000);
  ASSERT_EQ(cmdb_count(&s, "h1"), 1);
  ASSERT(wait_int(&b, "h1", "cmdb_attempts", 2));
  int64_t t2 = ad__now_ms();
  next = field_int(&b, "h1", "cmdb_next_ms");
  ASSERT(next >= t2 - 200 + 2000 && next <= t2 + 2000); /* 1 << 1 = 2, = retry_max_s */
  ad__cmdb_destroy(&cm);
  ASSERT_EQ(cmdb_count(&s, "h2"), 1);
  cmdb_stop(&s);
  box_free(&b);
}

TEST(an_unreachable_cmdb_is_not_hammered)
{
  box_t b;
  box_init(&b, "h1,h2");
  ad__cmdb_t *cm = start(&b, srv_closed_port(), 5, 300);
  ASSERT(cm != NULL);
  ASSERT(wait_int(&b, "h2", "cmdb_attempts", 1));
  ad__cmdb_destroy(&cm);
  char e1[300], e2[300];
  field_str(&b, "h1", "cmdb_error", e1, sizeof e1);
  field_str(&b, "h2", "cmdb_error", e2, sizeof e2);
  ASSERT(strstr(e1, "cmdb") != NULL); /* curl's reason, named */
  ASSERT_STR(e2, "not tried: the CMDB was unreachable in this pass");
  ASSERT_EQ(field_int(&b, "h1", "cmdb_attempts"), 1);
  ASSERT_EQ(field_int(&b, "h1", "cmdb_dirty"), 1);
  box_free(&b);
}

TEST(a_restart_resumes_from_the_flags)
{
  box_t b;
  cmdb_srv_t s;
  box_init(&b, "h1");
  ad__cmdb_t *cm = start(&b, srv_closed_port(), 0, 1); /* down: h1 stays dirty */
  ASSERT(cm != NULL);
  ASSERT(wait_for(&b, "h1", "cmdb_attempts", 1, 1));
  ad__cmdb_destroy(&cm);
  ASSERT_EQ(field_int(&b, "h1", "cmdb_dirty"), 1);
  ASSERT_EQ(cmdb_start(&s), 0);
  cm = start(&b, s.srv.port, 0, 1); /* a new thread: nothing kicks it */
  ASSERT(cm != NULL);
  ASSERT(wait_int(&b, "h1", "cmdb_dirty", 0));
  ad__cmdb_destroy(&cm);
  ASSERT_EQ(field_int(&b, "h1", "cmdb_attempts"), 0);
  char e[300];
  field_str(&b, "h1", "cmdb_error", e, sizeof e);
  ASSERT_STR(e, "");
  cmdb_stop(&s);
  box_free(&b);
}

TEST(config_is_checked)
{
  ad__cmdb_outbox_t box = {NULL, box_mark, NULL};
  ad_error_t err;
  json_t *c = json_pack("{s:s}", "url", "ftp://x");
  ASSERT(ad__cmdb_new(&box, c, &err) == NULL);
  ASSERT(strstr(err.message, "registry.cmdb.url"));
  json_decref(c);
  ASSERT(ad__cmdb_new(&box, NULL, &err) == NULL);
  ASSERT(strstr(err.message, "registry.cmdb"));
}

int main(void)
{
  ad_global_init();
  h_case cases[] = {CASE(a_2xx_clears_the_flag), CASE(a_change_during_the_push_is_pushed_again),
                    CASE(a_failure_backs_off_per_host), CASE(an_unreachable_cmdb_is_not_hammered),
                    CASE(a_restart_resumes_from_the_flags), CASE(config_is_checked)};
  return h_run(__FILE__, cases, sizeof cases / sizeof cases[0]);
}
