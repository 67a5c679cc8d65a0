/* test_cycle.c - the reserve/placement cycle's steps (fleet/cycle.c) on an
 * in-memory store: reserve -> create -> place -> deploy, the settlement of
 * a service left deploying without a task, the conditional move, the
 * lease, and allocation failures injected into every JSON allocation.
 * The same cycle against MongoDB and a real master: tests/test_placement.py. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "autodeploy/common.h"
#include "core/error_private.h"
#include "fleet/cycle.h"
#include "store/docs.h"
#include "core/clock.h"
#include "tasks/tasks.h"

/* ---- the fake store: collections as JSON arrays ---------------------- */

typedef struct {
  json_t *db;          /* {collection: [docs]} */
  int other_lease;     /* the lease is held by another cycle */
  int renewals, releases, takes;
  int writes;          /* insert + cas that changed something */
  int race;            /* another cycle moves each service just before our "placed" */
  int task_fails;      /* task_create refuses */
  int load_fails;      /* the load history cannot be read */
  int find_fails;      /* every find fails (the database is gone) */
  int observed;        /* observe calls (what the cycle saw, kept) */
  double load_cpu, load_mem; /* every host's p95 in the load history (0: no samples) */
  json_t *tasks;       /* task_create's args, in order */
} fake_t;

static json_t *coll_of(fake_t *fk, const char *coll)
{
  json_t *c = json_object_get(fk->db, coll);
  if (!c && (c = json_array()) && json_object_set_new(fk->db, coll, c))
    c = NULL;
  return c;
}

static const json_t *path_get(const json_t *doc, const char *path)
{
  char key[64];
  const char *dot;
  while ((dot = strchr(path, '.'))) {
    snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
    doc = json_object_get(doc, key);
    path = dot + 1;
  }
  return json_object_get(doc, path);
}

static int match(const json_t *doc, const json_t *q);

/* equality, or {$in, $gt, $lt, $exists} */
static int match_cond(const json_t *v, const json_t *cond)
{
  const char *op;
  json_t *arg;
  if (!json_is_object(cond) || !json_object_size(cond) || json_object_iter_key(json_object_iter((json_t *)cond))[0] != '$')
    return v && json_equal((json_t *)v, (json_t *)cond);
  json_object_foreach((json_t *)cond, op, arg) {
    if (!strcmp(op, "$in")) {
      size_t i;
      json_t *x;
      int any = 0;
      json_array_foreach(arg, i, x) any |= v && json_equal((json_t *)v, x);
      if (!any)
        return 0;
    } else if (!strcmp(op, "$gt")) {
      if (!json_is_number(v) || !(json_number_value(v) > json_number_value(arg)))
        return 0;
    } else if (!strcmp(op, "$lt")) {
      if (!json_is_number(v) || !(json_number_value(v) < json_number_value(arg)))
        return 0;
    } else if (!strcmp(op, "$exists")) {
      if ((v != NULL) != json_is_true(arg))
        return 0;
    } else {
      return 0;
    }
  }
  return 1;
}

static int match(const json_t *doc, const json_t *q)
{
  const char *k;
  json_t *c;
  json_object_foreach((json_t *)q, k, c) {
    if (!strcmp(k, "$or")) {
      size_t i;
      json_t *sub;
      int any = 0;
      json_array_foreach(c, i, sub) any |= match(doc, sub);
      if (!any)
        return 0;
    } else if (!match_cond(path_get(doc, k), c)) {
      return 0;
    }
  }
  return 1;
}

static const json_t *sort_spec;

static int sort_cmp(const void *a, const void *b)
{
  const char *k;
  json_t *dir;
  json_object_foreach((json_t *)sort_spec, k, dir) {
    const json_t *x = path_get(*(json_t *const *)a, k), *y = path_get(*(json_t *const *)b, k);
    int c = 0;
    if (json_is_string(x) && json_is_string(y))
      c = strcmp(json_string_value(x), json_string_value(y));
    else if (json_number_value(x) != json_number_value(y))
      c = json_number_value(x) < json_number_value(y) ? -1 : 1;
    if (c)
      return (int)json_integer_value(dir) * c;
  }
  return 0;
}

static json_t *f_find(void *u, const char *coll, json_t *query, json_t *opts, ad_error_t *err)
{
  fake_t *fk = u;
  json_t *c = json_object_get(fk->db, coll), *out = NULL, *d; /* none: empty */
  size_t n = 0, i;
  json_t **rows = calloc(json_array_size(c) + 1, sizeof *rows);
  if (!query || !rows || fk->find_fails) {
    ad__err(err, AD_ECONNECT, "store", "fake: find in %s failed", coll);
    goto done;
  }
  json_array_foreach(c, i, d) if (match(d, query)) rows[n++] = d;
  if ((sort_spec = json_object_get(opts, "sort")))
    qsort(rows, n, sizeof *rows, sort_cmp);
  json_t *lim = json_object_get(opts, "limit");
  if (lim && (size_t)json_integer_value(lim) < n)
    n = (size_t)json_integer_value(lim);
  if (!(out = json_array())) {
    ad__err(err, AD_ENOMEM, "store", "fake: no memory");
    goto done;
  }
  for (i = 0; i < n; i++)
    if (json_array_append_new(out, json_deep_copy(rows[i]))) {
      json_decref(out);
      out = NULL;
      ad__err(err, AD_ENOMEM, "store", "fake: no memory");
      break;
    }
done:
  free(rows);
  json_decref(query);
  json_decref(opts);
  return out;
}

static json_t *stored(fake_t *fk, const char *coll, const char *id)
{
  size_t i;
  json_t *d;
  json_array_foreach(json_object_get(fk->db, coll), i, d) if (!strcmp(ad__jstr(d, "_id"), id)) return d;
  return NULL;
}

static json_t *f_get(void *u, const char *coll, const char *id, ad_error_t *err)
{
  json_t *d = json_deep_copy(stored(u, coll, id));
  if (!d)
    ad__err(err, AD_ENOTFOUND, "fake", "%s: no %s", coll, id);
  return d;
}

static int64_t f_count(void *u, const char *coll, json_t *query)
{
  json_t *rows = f_find(u, coll, query, NULL, NULL);
  int64_t n = rows ? (int64_t)json_array_size(rows) : -1;
  json_decref(rows);
  return n;
}

static int f_insert(void *u, const char *coll, const json_t *doc, ad_error_t *err)
{
  fake_t *fk = u;
  if (stored(fk, coll, ad__jstr(doc, "_id")))
    return 0;
  if (json_array_append_new(coll_of(fk, coll), json_deep_copy(doc)))
    return ad__err(err, AD_ENOMEM, "fake", "no memory");
  fk->writes++;
  return 1;
}

/* What another cycle does to `id` between our read and our write. */
static void other_cycle_moves(fake_t *fk, const char *id)
{
  json_t *d = stored(fk, "services", id);
  json_object_set_new(d, "rev", json_integer(json_integer_value(json_object_get(d, "rev")) + 1));
  json_object_set_new(d, "state", json_string("deploying"));
  json_object_set_new(d, "task", json_string("t-other"));
}

static int f_cas(void *u, const char *coll, const json_t *doc, json_t *set, const char *what,
                 const char *cause, const char *actor, ad_error_t *err)
{
  fake_t *fk = u;
  const char *id = ad__jstr(doc, "_id");
  if (fk->race && !strcmp(what, "placed"))
    other_cycle_moves(fk, id);
  json_t *d = stored(fk, coll, id);
  if (!d || !json_equal(json_object_get(d, "rev"), json_object_get(doc, "rev")))
    return 0;
  json_t *h = json_object_get(d, "history");
  if (!json_is_array(h)) {
    h = json_array();
    json_object_set_new(d, "history", h);
  }
  if (json_array_append_new(h, json_pack("{s:s,s:s}", "what", what, "cause", cause ? cause : "")) ||
      json_object_update(d, set))
    return ad__err(err, AD_ENOMEM, "fake", "no memory");
  json_object_set_new(d, "rev", json_integer(json_integer_value(json_object_get(d, "rev")) + 1));
  fk->writes++;
  return 1;
}

static json_t *f_next_numbers(void *u, const char *code, int n, ad_error_t *err)
{
  json_t *p = stored(u, "platforms", code);
  if (!p)
    return ad__err(err, AD_ENOTFOUND, "fleet", "platform %s: no such platform", code), NULL;
  json_int_t next = json_integer_value(json_object_get(p, "next_server_no")) + n;
  json_object_set_new(p, "next_server_no", json_integer(next));
  json_t *r = json_pack("{s:I}", "first", next - n);
  if (!r)
    ad__err(err, AD_ENOMEM, "fake", "no memory");
  return r;
}

static int f_lease(void *u, int take, char *holder, size_t size)
{
  fake_t *fk = u;
  if (take == 2)
    return fk->renewals++, 1;
  if (take == 0)
    return fk->releases++, 1;
  fk->takes++;
  if (fk->other_lease) {
    snprintf(holder, size, "other:1:1 until later");
    return 0;
  }
  return 1;
}

static json_t *f_task_create(void *u, const json_t *args, ad_error_t *err)
{
  fake_t *fk = u;
  if (fk->task_fails)
    return ad__err(err, AD_ECONNECT, "tasks", "fake: tasks refused"), NULL;
  char id[32];
  snprintf(id, sizeof id, "t%zu", json_array_size(fk->tasks) + 1);
  json_t *t = json_pack("{s:s,s:O,s:O}", "_id", id, "owner", json_object_get(args, "owner"), "args", args);
  if (!t || json_array_append_new(coll_of(fk, "tasks"), t) ||
      json_array_append_new(fk->tasks, json_deep_copy(args)))
    return ad__err(err, AD_ENOMEM, "fake", "no memory"), NULL;
  json_t *r = json_pack("{s:{s:s}}", "task", "_id", id);
  if (!r)
    ad__err(err, AD_ENOMEM, "fake", "no memory");
  return r;
}

static int f_load(void *u, const ad__metrics_host_t *hosts, size_t n, const ad__metrics_query_t *q,
                  ad__metrics_result_t **out, ad_error_t *err)
{
  fake_t *fk = u;
  *out = NULL;
  if (fk->load_fails)
    return ad__err(err, AD_ECONNECT, "metrics", "fake: no load history");
  ad__metrics_result_t *r = calloc(1, sizeof *r);
  if (!r || !(r->hosts = calloc(n + 1, sizeof *r->hosts))) {
    free(r);
    return ad__err(err, AD_ENOMEM, "metrics", "no memory");
  }
  r->n_hosts = n; /* no samples (idle) unless the test set a load */
  for (size_t i = 0; i < n && (fk->load_cpu > 0 || fk->load_mem > 0); i++) {
    r->hosts[i].res[AD__RES_CPU] = (ad__metrics_summary_t){.count = 1, .p95 = fk->load_cpu};
    r->hosts[i].res[AD__RES_MEM] = (ad__metrics_summary_t){.count = 1, .p95 = fk->load_mem};
  }
  *out = r;
  return 0;
}

/* a plain $set per document, no rev: what the cycle saw */
static int64_t f_observe(void *u, const char *coll, json_t *sets, ad_error_t *err)
{
  fake_t *fk = u;
  int64_t n = 0;
  size_t i;
  json_t *one;
  fk->observed++;
  json_array_foreach(sets, i, one) {
    json_t *d = stored(fk, coll, ad__jstr(one, "_id"));
    if (d && json_object_update(d, json_object_get(one, "set"))) {
      json_decref(sets);
      return ad__err(err, AD_ENOMEM, "fake", "no memory");
    }
    n += d != NULL;
  }
  json_decref(sets);
  return n;
}

static const ad__cycle_store_t FAKE = {f_find, f_get, f_count, f_insert, f_cas,
                                       f_next_numbers, f_lease, f_task_create, f_load,
                                       f_observe};

/* ---- fixtures ---------------------------------------------------------- */

static ad__tasks_ctx_t tasks_ctx = {.collection = "tasks"};
static int64_t now;

static void fleet_init(ad__fleet_t *f)
{
  memset(f, 0, sizeof *f);
  f->env.tasks = &tasks_ctx;
  f->env.hosts_collection = "hosts";
  f->c.enabled = 1;
  f->c.headroom = 0.8;
  f->c.top_k = 3;
  f->c.load_window_hours = 24;
  f->c.measure_after_hours = 6;
  f->c.deploy_timeout = 600;
  f->c.deploy_attempts = 3;
  f->c.deploy_backoff_s = 30;
  f->c.platforms = (char *)"platforms";
  f->c.services = (char *)"services";
  f->c.locks = (char *)"locks";
}

static void quiet(ad_log_level_t level, const char *domain, const char *message, void *user) {}

static void fake_init(fake_t *fk)
{
  memset(fk, 0, sizeof *fk);
  ad_log_set_handler(quiet, NULL, AD_LOG_DEBUG);
  now = ad__now_ms();
  fk->db = json_object();
  fk->tasks = json_array();
}

static void fake_free(fake_t *fk)
{
  json_decref(fk->db);
  json_decref(fk->tasks);
}

static void add(fake_t *fk, const char *coll, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  json_t *d = json_vpack_ex(NULL, 0, fmt, ap);
  va_end(ap);
  if (!d)
    fprintf(stderr, "  fixture: bad pack %s\n", fmt);
  json_array_append_new(coll_of(fk, coll), d);
}

/* platform `code` keeping exactly `reserve` services ready; footprint 1 cpu, 1 GiB */
static void add_platform(fake_t *fk, const char *code, int reserve)
{
  add(fk, "platforms", "{s:s,s:b,s:i,s:I,s:s,s:{s:i,s:i},s:{s:f,s:f},s:{s:{s:s,s:[s]}}}", "_id", code,
      "enabled", 1, "next_server_no", 1, "created_at_ms", (json_int_t)(now - 86400000LL), "state",
      "game.server", "reserve", "min", reserve, "max", reserve, "footprint", "cpu", 1.0, "mem_mb",
      1024.0, "pillar", "game", "name", "{platform}-{server_no}", "ports", "{port}");
}

/* a ready host with `cpu` cores and 16 GiB */
static void add_host(fake_t *fk, const char *key, double cpu)
{
  add(fk, "hosts", "{s:s,s:s,s:s,s:s,s:s,s:{s:f,s:f}}", "_id", key, "state", "ready", "minion", key,
      "private_ip", "10.0.0.1", "profile", "p", "capacity", "cpu", cpu, "mem_mb", 16384.0);
}

/* a service of `plat` in `state`, created `age_s` seconds ago */
static void add_service(fake_t *fk, const char *id, const char *plat, const char *state, int age_s)
{
  add(fk, "services", "{s:s,s:s,s:s,s:i,s:I,s:i,s:i}", "_id", id, "platform", plat, "state", state,
      "rev", 0, "created_at_ms", (json_int_t)(now - age_s * 1000LL), "server_no", atoi(strrchr(id, 's') + 1),
      "attempts", 0);
}

static json_t *run(ad__fleet_t *f, fake_t *fk, const char *args)
{
  json_t *a = args ? json_loads(args, 0, NULL) : NULL;
  ad_error_t err = {0};
  json_t *r = ad__cycle_run(f, &FAKE, fk, a, &err);
  json_decref(a);
  if (!r)
    fprintf(stderr, "  cycle: %s\n", err.message);
  return r;
}

static const char *state_of(fake_t *fk, const char *id)
{
  return ad__jstr(stored(fk, "services", id), "state");
}

static const json_t *plat_rep(const json_t *r, size_t i)
{
  return json_array_get(json_object_get(r, "platforms"), i);
}

static size_t count_state(fake_t *fk, const char *state)
{
  size_t i, n = 0;
  json_t *d;
  json_array_foreach(coll_of(fk, "services"), i, d) n += !strcmp(ad__jstr(d, "state"), state);
  return n;
}

static int history_has(fake_t *fk, const char *id, const char *what)
{
  size_t i;
  json_t *h;
  json_array_foreach(json_object_get(stored(fk, "services", id), "history"), i, h)
    if (!strcmp(ad__jstr(h, "what"), what))
      return 1;
  return 0;
}

/* ---- reserve -> create ------------------------------------------------- */

/* reserve 3, supply 1 (one pending; an opened one is not supply): exactly
 * 2 new pending services, numbered from the platform's next_server_no. */
TEST(reserve_shortfall_creates_exactly_short)
{
  ad__fleet_t f;
  fake_t fk;
  fleet_init(&f);
  fake_init(&fk);
  add_platform(&fk, "qq", 3);
  add_service(&fk, "qq-s7", "qq", "pending", 60);
  add_service(&fk, "qq-s8", "qq", "opened", 600);
  json_t *r = run(&f, &fk, NULL);
  ASSERT(r);
  const json_t *p = plat_rep(r, 0);
  ASSERT_EQ(json_integer_value(json_object_get(p, "supply")), 1);
  ASSERT_EQ(json_integer_value(json_object_get(p, "short")), 2);
  ASSERT_EQ(json_array_size(json_object_get(p, "created")), 2);
  ASSERT_STR(json_string_value(json_array_get(json_object_get(p, "created"), 0)), "qq-s1");
  ASSERT_STR(json_string_value(json_array_get(json_object_get(p, "created"), 1)), "qq-s2");
  ASSERT_EQ(json_array_size(coll_of(&fk, "services")), 4);
  ASSERT(stored(&fk, "services", "qq-s1") && stored(&fk, "services", "qq-s2"));
  ASSERT_EQ(json_integer_value(json_object_get(stored(&fk, "platforms", "qq"), "next_server_no")), 3);
  ASSERT(!json_object_get(p, "error"));
  /* no host: all three wait, none is lost */
  ASSERT_EQ(count_state(&fk, "waiting_resources"), 3);
  /* the next cycle finds the reserve full */
  json_decref(r);
  r = run(&f, &fk, NULL);
  ASSERT_EQ(json_integer_value(json_object_get(plat_rep(r, 0), "short")), 0);
  ASSERT_EQ(json_array_size(coll_of(&fk, "services")), 4);
  json_decref(r);
  fake_free(&fk);
}

/* A dry run reports the shortfall and the placements, and writes nothing:
 * no service, no number, no task, no lease. */
TEST(dry_run_writes_nothing)
{
  ad__fleet_t f;
  fake_t fk;
  fleet_init(&f);
  fake_init(&fk);
  add_platform(&fk, "qq", 2);
  add_host(&fk, "h1", 8);
  json_t *before = json_deep_copy(fk.db);
  json_t *r = run(&f, &fk, "{\"dry_run\": true}");
  ASSERT(r);
  const json_t *p = plat_rep(r, 0);
  ASSERT_EQ(json_integer_value(json_object_get(p, "short")), 2);
  ASSERT_STR(json_string_value(json_array_get(json_object_get(p, "created"), 1)), "(new 2)");
  ASSERT_EQ(json_array_size(json_object_get(p, "placed")), 2);
  ASSERT_EQ(fk.writes, 0);
  ASSERT_EQ(fk.takes + fk.renewals + fk.releases, 0);
  ASSERT_EQ(json_array_size(fk.tasks), 0);
  ASSERT(json_equal(before, fk.db));
  json_decref(before);
  json_decref(r);
  fake_free(&fk);
}

/* ---- place ------------------------------------------------------------- */

/* One host with room for one service (4 cores * 0.8 headroom, 1.5 taken
 * by a deployed service of another platform): the waiting_resources one goes first, even though
 * the pending one is older. */
TEST(waiting_placed_before_pending)
{
  ad__fleet_t f;
  fake_t fk;
  fleet_init(&f);
  fake_init(&fk);
  add_platform(&fk, "qq", 2);
  add_host(&fk, "h1", 4);
  add_service(&fk, "qq-s1", "qq", "pending", 3600);
  add_service(&fk, "qq-s2", "qq", "waiting_resources", 60);
  add(&fk, "services", "{s:s,s:s,s:s,s:s,s:{s:f,s:f}}", "_id", "other-s1", "platform", "other", "state",
      "deployed", "host", "h1", "footprint", "cpu", 1.5, "mem_mb", 100.0);
  json_t *r = run(&f, &fk, NULL);
  ASSERT(r);
  const json_t *p = plat_rep(r, 0);
  ASSERT_EQ(json_array_size(json_object_get(p, "placed")), 1);
  ASSERT_STR(ad__jstr(json_array_get(json_object_get(p, "placed"), 0), "service"), "qq-s2");
  ASSERT_STR(state_of(&fk, "qq-s2"), "deploying");
  ASSERT_STR(ad__jstr(stored(&fk, "services", "qq-s2"), "host"), "h1");
  ASSERT_STR(state_of(&fk, "qq-s1"), "waiting_resources");
  json_decref(r);
  fake_free(&fk);
}

/* No host fits: the service waits with the reason and the decision, and a
 * second cycle with the same reason does not write it again. */
TEST(no_fit_waits_with_reason)
{
  ad__fleet_t f;
  fake_t fk;
  fleet_init(&f);
  fake_init(&fk);
  add_platform(&fk, "qq", 1);
  add_host(&fk, "tiny", 0.5);
  add_service(&fk, "qq-s1", "qq", "pending", 60);
  json_t *r = run(&f, &fk, NULL);
  ASSERT(r);
  const json_t *w = json_array_get(json_object_get(plat_rep(r, 0), "waiting"), 0);
  ASSERT(w);
  ASSERT_STR(ad__jstr(w, "service"), "qq-s1");
  const json_t *s = stored(&fk, "services", "qq-s1");
  ASSERT_STR(ad__jstr(s, "state"), "waiting_resources");
  ASSERT(*ad__jstr(s, "reason"));
  ASSERT_STR(ad__jstr(s, "reason"), ad__jstr(w, "reason"));
  ASSERT(json_is_object(json_object_get(s, "decision")));
  ASSERT(json_is_null(json_object_get(json_object_get(s, "decision"), "host")));
  ASSERT_EQ(json_array_size(fk.tasks), 0);
  json_int_t rev = json_integer_value(json_object_get(s, "rev"));
  json_decref(r);
  r = run(&f, &fk, NULL);
  ASSERT_EQ(json_integer_value(json_object_get(stored(&fk, "services", "qq-s1"), "rev")), rev);
  json_decref(r);
  fake_free(&fk);
}

/* ---- deploy ------------------------------------------------------------ */

/* A placed service: deploying on the host, one deploy task with the
 * rendered pillar, its id recorded and attempts + 1. */
TEST(placed_service_gets_one_deploy_task)
{
  ad__fleet_t f;
  fake_t fk;
  fleet_init(&f);
  fake_init(&fk);
  add_platform(&fk, "qq", 1);
  add_host(&fk, "h1", 8);
  add_service(&fk, "qq-s5", "qq", "pending", 60);
  json_t *r = run(&f, &fk, NULL);
  ASSERT(r);
  const json_t *s = stored(&fk, "services", "qq-s5");
  ASSERT_STR(ad__jstr(s, "state"), "deploying");
  ASSERT_STR(ad__jstr(s, "task"), "t1");
  ASSERT_EQ(json_integer_value(json_object_get(s, "attempts")), 1);
  ASSERT_EQ(json_array_size(fk.tasks), 1);
  const json_t *t = json_array_get(fk.tasks, 0);
  ASSERT_STR(json_string_value(json_array_get(json_object_get(t, "tgt"), 0)), "h1");
  ASSERT_STR(json_string_value(json_array_get(json_object_get(t, "mods"), 0)), "game.server");
  ASSERT_STR(ad__jstr(json_object_get(t, "owner"), "service"), "qq-s5");
  const json_t *pil = json_object_get(t, "pillar");
  ASSERT_STR(ad__jstr(json_object_get(pil, "game"), "name"), "qq-5");
  ASSERT_EQ(json_integer_value(json_array_get(json_object_get(json_object_get(pil, "game"), "ports"), 0)), 10005);
  const json_t *sv = json_object_get(json_object_get(pil, "autodeploy"), "service");
  ASSERT_STR(ad__jstr(sv, "id"), "qq-s5");
  ASSERT_STR(ad__jstr(sv, "host"), "h1");
  ASSERT_EQ(json_integer_value(json_object_get(sv, "port")), 10005);
  json_decref(r);
  fake_free(&fk);
}

/* Another cycle moved the service between our read and our conditional
 * move: the move matches nothing, and no second deploy task is created. */
TEST(lost_race_is_not_deployed_twice)
{
  ad__fleet_t f;
  fake_t fk;
  fleet_init(&f);
  fake_init(&fk);
  add_platform(&fk, "qq", 1);
  add_host(&fk, "h1", 8);
  add_service(&fk, "qq-s1", "qq", "pending", 60);
  fk.race = 1;
  json_t *r = run(&f, &fk, NULL);
  ASSERT(r);
  ASSERT_EQ(json_array_size(fk.tasks), 0);
  const json_t *s = stored(&fk, "services", "qq-s1");
  ASSERT_STR(ad__jstr(s, "task"), "t-other");
  ASSERT_EQ(json_integer_value(json_object_get(s, "rev")), 1);
  ASSERT(!history_has(&fk, "qq-s1", "placed"));
  json_decref(r);
  fake_free(&fk);
}

/* A deploy task that cannot start sends the service back to pending with
 * the reason (here a port over 65535 is refused before the task). */
TEST(deploy_not_started_goes_back_to_pending)
{
  ad__fleet_t f;
  fake_t fk;
  fleet_init(&f);
  fake_init(&fk);
  add_platform(&fk, "qq", 1);
  json_object_set_new(stored(&fk, "platforms", "qq"), "port_base", json_integer(65535));
  add_host(&fk, "h1", 8);
  add_service(&fk, "qq-s1", "qq", "pending", 60);
  json_t *r = run(&f, &fk, NULL);
  ASSERT(r);
  ASSERT_EQ(json_array_size(fk.tasks), 0);
  ASSERT_STR(state_of(&fk, "qq-s1"), "pending");
  ASSERT(strstr(ad__jstr(stored(&fk, "services", "qq-s1"), "reason"), "over 65535"));
  ASSERT(history_has(&fk, "qq-s1", "deploy not started"));
  json_decref(r);
  fake_free(&fk);
}

/* ---- settlement -------------------------------------------------------- */

/* Left deploying without a task id for over 5 minutes: one adopts the task
 * found by owner.service, one with no task goes back to pending (and, no
 * host fitting, on to waiting); a recent one is left alone. */
TEST(deploying_without_task_is_settled)
{
  ad__fleet_t f;
  fake_t fk;
  fleet_init(&f);
  fake_init(&fk);
  add_platform(&fk, "qq", 3);
  const char *ids[] = {"qq-s1", "qq-s2", "qq-s3"};
  int ages[] = {600, 600, 60};
  for (int i = 0; i < 3; i++) {
    add_service(&fk, ids[i], "qq", "deploying", 3600);
    json_object_set_new(stored(&fk, "services", ids[i]), "placed_at_ms",
                        json_integer(now - ages[i] * 1000LL));
  }
  add(&fk, "tasks", "{s:s,s:s,s:{s:s}}", "_id", "t-old", "created_at", "2026-01-01", "owner", "service", "qq-s1");
  add(&fk, "tasks", "{s:s,s:s,s:{s:s}}", "_id", "t-new", "created_at", "2026-01-02", "owner", "service", "qq-s1");
  json_t *r = run(&f, &fk, NULL);
  ASSERT(r);
  ASSERT_STR(state_of(&fk, "qq-s1"), "deploying");
  ASSERT_STR(ad__jstr(stored(&fk, "services", "qq-s1"), "task"), "t-new");
  ASSERT(history_has(&fk, "qq-s1", "task adopted"));
  ASSERT(history_has(&fk, "qq-s2", "back to pending"));
  ASSERT_STR(state_of(&fk, "qq-s2"), "waiting_resources");
  ASSERT_STR(state_of(&fk, "qq-s3"), "deploying");
  ASSERT_EQ(json_integer_value(json_object_get(stored(&fk, "services", "qq-s3"), "rev")), 0);
  json_decref(r);
  fake_free(&fk);
}

/* ---- the lease and the hosts shared across platforms ------------------- */

TEST(lease_renewed_per_platform_and_released)
{
  ad__fleet_t f;
  fake_t fk;
  fleet_init(&f);
  fake_init(&fk);
  add_platform(&fk, "aa", 1);
  add_platform(&fk, "bb", 1);
  add_host(&fk, "h1", 2); /* room for one service: aa (by code) takes it */
  json_t *r = run(&f, &fk, NULL);
  ASSERT(r);
  ASSERT_EQ(fk.takes, 1);
  ASSERT_EQ(fk.renewals, 2);
  ASSERT_EQ(fk.releases, 1);
  ASSERT_STR(ad__jstr(plat_rep(r, 0), "platform"), "aa");
  ASSERT_EQ(json_array_size(json_object_get(plat_rep(r, 0), "placed")), 1);
  ASSERT_EQ(json_array_size(json_object_get(plat_rep(r, 1), "waiting")), 1);
  json_decref(r);
  /* held by another cycle: skipped, nothing written */
  fk.other_lease = 1;
  int writes = fk.writes;
  r = run(&f, &fk, NULL);
  ASSERT(r);
  ASSERT(json_is_false(json_object_get(r, "ran")));
  ASSERT(strstr(ad__jstr(r, "skipped"), "other:1:1"));
  ASSERT_EQ(fk.writes, writes);
  json_decref(r);
  fake_free(&fk);
}

/* The load history and the database failing. */
TEST(store_failures_are_reported)
{
  ad__fleet_t f;
  fake_t fk;
  fleet_init(&f);
  fake_init(&fk);
  add_platform(&fk, "qq", 1);
  add_host(&fk, "h1", 8);
  fk.load_fails = 1;
  json_t *r = run(&f, &fk, NULL);
  ASSERT(r);
  ASSERT(strstr(ad__jstr(r, "load_error"), "no load history"));
  ASSERT_EQ(json_array_size(fk.tasks), 1); /* placed on capacity and footprints */
  json_decref(r);
  fk.find_fails = 1;
  ad_error_t err = {0};
  ASSERT(!ad__cycle_run(&f, &FAKE, &fk, NULL, &err));
  ASSERT(strstr(err.message, "find in platforms failed"));
  ASSERT_EQ(fk.releases, 2); /* the lease is given back */
  fake_free(&fk);
}

/* ---- what the cycle saw ------------------------------------------------- */

static double seen(fake_t *fk, const char *host, const char *part, const char *res)
{
  const json_t *load = json_object_get(stored(fk, "hosts", host), "load");
  return json_number_value(json_object_get(json_object_get(load, part), res));
}

/* What the dashboard shows, left on the documents: each platform's
 * last_cycle (its reserve), each ready host's load: the p95 from the
 * history, the footprints placed and not yet measured (from before and this
 * cycle's), and the limit (capacity x headroom). Nothing for a dry run;
 * p95 null when the history could not be read. */
TEST(what_the_cycle_saw_is_kept)
{
  ad__fleet_t f;
  fake_t fk;
  fleet_init(&f);
  fake_init(&fk);
  add_platform(&fk, "qq", 3);
  add_host(&fk, "h1", 8);
  add_host(&fk, "h2", 4);
  add_service(&fk, "qq-s9", "qq", "deployed", 600);
  json_t *on_h1 = json_pack("{s:s,s:{s:f,s:f}}", "host", "h1", "footprint", "cpu", 0.5, "mem_mb", 512.0);
  json_object_update(stored(&fk, "services", "qq-s9"), on_h1);
  json_decref(on_h1);
  fk.load_cpu = 2.0;
  fk.load_mem = 4096.0;
  json_t *r = run(&f, &fk, "{\"dry_run\": true}");
  ASSERT(r && fk.observed == 0 && !json_object_get(stored(&fk, "hosts", "h1"), "load"));
  json_decref(r);
  r = run(&f, &fk, NULL);
  ASSERT(r);
  ASSERT_EQ(fk.observed, 2); /* platforms, hosts: one bulk write each */
  const json_t *lc = json_object_get(stored(&fk, "platforms", "qq"), "last_cycle");
  ASSERT_EQ(json_integer_value(json_object_get(json_object_get(lc, "reserve"), "size")), 3);
  ASSERT_STR(ad__jstr(lc, "at"), ad__jstr(r, "at"));
  ASSERT(json_object_get(json_object_get(lc, "footprint"), "cpu"));
  ASSERT_EQ(json_integer_value(json_object_get(stored(&fk, "platforms", "qq"), "rev")), 0);
  /* 2 new services of 1 cpu / 1 GiB: h1 (2 + 0.5 + 1) / 8 < h2 (2 + 1) / 4, twice */
  ASSERT_EQ(json_array_size(fk.tasks), 2);
  ASSERT(seen(&fk, "h1", "p95", "cpu") == 2.0 && seen(&fk, "h1", "p95", "mem_mb") == 4096.0);
  ASSERT(seen(&fk, "h1", "placed", "cpu") == 2.5 && seen(&fk, "h1", "placed", "mem_mb") == 2560.0);
  ASSERT(seen(&fk, "h1", "limit", "cpu") == 8 * 0.8 && seen(&fk, "h1", "limit", "mem_mb") == 16384 * 0.8);
  ASSERT(seen(&fk, "h2", "placed", "cpu") == 0.0 && seen(&fk, "h2", "limit", "cpu") == 4 * 0.8);
  ASSERT_STR(ad__jstr(json_object_get(stored(&fk, "hosts", "h2"), "load"), "at"), ad__jstr(r, "at"));
  json_decref(r);
  fk.load_fails = 1;
  r = run(&f, &fk, NULL);
  ASSERT(r && json_is_null(json_object_get(json_object_get(stored(&fk, "hosts", "h2"), "load"), "p95")));
  json_decref(r);
  fake_free(&fk);
}

/* ---- allocation failures ---------------------------------------------- */

static long alloc_left = -1; /* fail the allocation when this reaches 0 */
static int alloc_failed;

static void *failing_malloc(size_t n)
{
  if (alloc_left >= 0 && alloc_left-- == 0) {
    alloc_failed = 1;
    return NULL;
  }
  return malloc(n);
}

/* Every JSON allocation of a full cycle fails once, in turn: each run ends
 * with a report or an error, never a crash or a leak (ASan checks), and
 * every deploy task created has its whole pillar. */
TEST(each_json_allocation_failure)
{
  ad__fleet_t f;
  fleet_init(&f);
  int runs = 0;
  for (long k = 0;; k++) {
    fake_t fk;
    fake_init(&fk);
    add_platform(&fk, "qq", 4);
    add_host(&fk, "h1", 8);
    add_service(&fk, "qq-s1", "qq", "waiting_resources", 600);
    add_service(&fk, "qq-s2", "qq", "deploying", 3600);
    json_object_set_new(stored(&fk, "services", "qq-s2"), "placed_at_ms", json_integer(now - 600000));
    alloc_failed = 0;
    alloc_left = k;
    json_set_alloc_funcs(failing_malloc, free);
    ad_error_t err = {0};
    json_t *r = ad__cycle_run(&f, &FAKE, &fk, NULL, &err);
    json_set_alloc_funcs(malloc, free);
    alloc_left = -1;
    runs++;
      if (!r && !*err.message)
      fprintf(stderr, "  k=%ld: NULL without a reason\n", k);
    ASSERT(r || *err.message);
    size_t i;
    json_t *t;
    json_array_foreach(fk.tasks, i, t) {
      const json_t *sv = json_object_get(json_object_get(json_object_get(t, "pillar"), "autodeploy"), "service");
      ASSERT(json_is_integer(json_object_get(sv, "port")) && *ad__jstr(sv, "minion"));
      ASSERT(*ad__jstr(json_object_get(json_object_get(t, "pillar"), "game"), "name"));
    }
    json_decref(r);
    fake_free(&fk);
    if (!alloc_failed)
      break; /* the k-th allocation was past the end: all covered */
  }
  ASSERT(runs > 100);
}

RUN(CASE(reserve_shortfall_creates_exactly_short), CASE(dry_run_writes_nothing),
    CASE(waiting_placed_before_pending), CASE(no_fit_waits_with_reason),
    CASE(placed_service_gets_one_deploy_task), CASE(lost_race_is_not_deployed_twice),
    CASE(deploy_not_started_goes_back_to_pending), CASE(deploying_without_task_is_settled),
    CASE(lease_renewed_per_platform_and_released), CASE(store_failures_are_reported),
    CASE(what_the_cycle_saw_is_kept), CASE(each_json_allocation_failure))
