/*
 * cycle.c - the reserve/placement cycle (docs/placement.md).
 *
 * Under the cycle lease (one cycle at a time across runners, engines and
 * masters sharing the database), renewed before each platform, for every
 * enabled platform (by code), in named steps:
 *   reserve  ad__reserve_size(openings of the window), and the footprint;
 *   create   supply = pending + deploying + deployed + waiting_resources;
 *            short = reserve - supply new `pending` services (numbers from
 *            one $inc on the platform); then a service left deploying
 *            without a task id is settled (settle_stuck);
 *   place    waiting_resources (oldest first), then pending, are placed by
 *            ad__place on the ready hosts, with the load history's p95 plus
 *            the footprints placed but not yet measured; no fit ->
 *            waiting_resources with the reason and the decision;
 *   deploy   a placed service moves pending|waiting_resources -> deploying
 *            (a conditional update: a service is never placed twice) and a
 *            deploy task runs the platform's state on the host's minion.
 * The deploy step is cycle_deploy.c; the report kept after an engine's
 * cycle, and the tick that runs it, cycle_report.c. Hosts are shared
 * across platforms in one cycle. Reads and writes go
 * through ad__cycle_store_t (cycle.h): MongoDB in the engine and runners
 * (ad__fleet_cycle_store, fleet_store.c), a fake in tests/fleet/test_cycle.c.
 * dry_run computes and reports without writing or taking the lease.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "store/docs.h"
#include "core/error_private.h"
#include "fleet/cycle_private.h"
#include "fleet/fleet_private.h"
#include "core/log_private.h"

static void hosts_free(ad__cycle_hosts_t *hs)
{
  json_decref(hs->docs);
  free(hs->h);
  free(hs->load_error);
  memset(hs, 0, sizeof *hs);
}

static int host_key_cmp(const void *a, const void *b)
{
  return strcmp((*(ad__host_t *const *)a)->key, (*(ad__host_t *const *)b)->key);
}

/* The hosts' p95 load over the window. When the history cannot be read,
 * the reason is kept and placement goes on capacity and footprints only. */
static int load_p95(ad__fleet_t *f, const ad__cycle_store_t *st, void *u, ad__cycle_hosts_t *hs,
                    int64_t now)
{
  ad__metrics_host_t *mh = calloc(hs->n + 1, sizeof *mh);
  if (!mh)
    return AD_ENOMEM;
  size_t i;
  json_t *d;
  json_array_foreach(hs->docs, i, d) {
    json_t *cap = json_object_get(d, "capacity");
    mh[i] = (ad__metrics_host_t){.key = ad__jstr(d, "_id"), .minion_id = ad__jstr(d, "minion"),
                                 .private_ip = ad__jstr(d, "private_ip"),
                                 .cores = (int)ad__jnum(cap, "cpu"),
                                 .mem_mb = (int64_t)ad__jnum(cap, "mem_mb")};
  }
  ad__metrics_query_t q = {.from_ms = now - f->c.load_window_hours * 3600000LL, .to_ms = now,
                           .step_ms = 60000,
                           .resources = (1u << AD__RES_CPU) | (1u << AD__RES_MEM)};
  ad__metrics_result_t *r = NULL;
  ad_error_t merr = {0};
  int rc = 0;
  if (st->load(u, mh, hs->n, &q, &r, &merr) == 0) {
    for (i = 0; i < hs->n && i < r->n_hosts; i++) {
      ad__metrics_summary_t *c = &r->hosts[i].res[AD__RES_CPU], *m = &r->hosts[i].res[AD__RES_MEM];
      hs->h[i].p95.cpu = c->count ? c->p95 : 0;
      hs->h[i].p95.mem = m->count ? m->p95 : 0;
    }
    ad__metrics_result_free(&r);
  } else {
    if (!(hs->load_error = strdup(merr.message)))
      rc = AD_ENOMEM;
    AD_LOG_W("fleet", "load history unavailable, placing on capacity and footprints only: %s",
             merr.message);
  }
  free(mh);
  return rc;
}

/* Footprints placed but not yet in the history: services being deployed
 * or deployed (idle now, busy once opened), and those opened recently. */
static int add_pending(ad__fleet_t *f, const ad__cycle_store_t *st, void *u, ad__cycle_hosts_t *hs,
                       int64_t now)
{
  json_t *svcs = st->find(
      u, f->c.services,
      json_pack("{s:[{s:{s:[s,s]}},{s:s,s:{s:I}}]}", "$or", "state", "$in", "deploying", "deployed",
                "state", "opened", "opened_at_ms", "$gt",
                (json_int_t)(now - f->c.measure_after_hours * 3600000LL)),
      json_pack("{s:{s:i,s:i}}", "projection", "host", 1, "footprint", 1), NULL);
  /* hosts by key, so each service finds its host in O(log H), not O(H) */
  ad__host_t **by_key = malloc((hs->n + 1) * sizeof *by_key);
  if (!by_key) {
    json_decref(svcs);
    return AD_ENOMEM;
  }
  size_t i;
  json_t *d;
  for (i = 0; i < hs->n; i++)
    by_key[i] = &hs->h[i];
  qsort(by_key, hs->n, sizeof *by_key, host_key_cmp);
  json_array_foreach(svcs, i, d) {
    ad__host_t probe = {.key = ad__jstr(d, "host")}, *pp = &probe;
    ad__host_t **hit = hs->n ? bsearch(&pp, by_key, hs->n, sizeof *by_key, host_key_cmp) : NULL;
    if (hit) {
      (*hit)->pending.cpu += ad__jnum(json_object_get(d, "footprint"), "cpu");
      (*hit)->pending.mem += ad__jnum(json_object_get(d, "footprint"), "mem_mb");
    }
  }
  free(by_key);
  json_decref(svcs);
  return 0;
}

/* Ready hosts (by key) with p95 load and the footprints not yet in their
 * history. On failure *hs is empty. */
static int load_hosts(ad__fleet_t *f, const ad__cycle_store_t *st, void *u, ad__cycle_hosts_t *hs,
                      int64_t now, ad_error_t *err)
{
  memset(hs, 0, sizeof *hs);
  hs->docs = st->find(u, f->env.hosts_collection, json_pack("{s:s}", "state", "ready"),
                      json_pack("{s:{s:i},s:{s:i,s:i,s:i,s:i,s:i,s:i}}", "sort", "_id", 1,
                                "projection", "minion", 1, "profile", 1, "region", 1,
                                "capacity", 1, "private_ip", 1, "provider", 1), err);
  if (!hs->docs)
    return AD_ECONNECT;
  hs->n = json_array_size(hs->docs);
  int rc = AD_ENOMEM;
  if (!(hs->h = calloc(hs->n + 1, sizeof *hs->h)))
    goto fail;
  size_t i;
  json_t *d;
  json_array_foreach(hs->docs, i, d) {
    json_t *cap = json_object_get(d, "capacity");
    hs->h[i] = (ad__host_t){.key = ad__jstr(d, "_id"), .placeable = 1, .profile = ad__jstr(d, "profile"),
                            .region = ad__jstr(d, "region"),
                            .capacity = {ad__jnum(cap, "cpu"), ad__jnum(cap, "mem_mb")}};
  }
  if ((hs->n && (rc = load_p95(f, st, u, hs, now))) || (rc = add_pending(f, st, u, hs, now)))
    goto fail;
  return 0;
fail:
  ad__err(err, rc, "fleet", "cycle: no memory for the %zu ready hosts", hs->n);
  hosts_free(hs);
  return rc;
}

static const char *const SUPPLY[] = {"pending", "deploying", "deployed", "waiting_resources", NULL};

/* reserve: the size from the openings of the window (services of any
 * state opened within window_days), and this cycle's footprint (the
 * largest measured opening, else the platform's). 0, or -1 + rep.error. */
static int step_reserve(ad__plat_cycle_t *pc)
{
  ad_error_t err = {0};
  ad__reserve_policy_t pol;
  ad__reserve_policy_default(&pol);
  if (ad__reserve_policy_from_json(&pol, json_object_get(pc->plat, "reserve"), "reserve", &err))
    return ad__cycle_report_error(pc, json_sprintf("reserve policy: %s", err.message));
  json_t *opened = pc->st->find(
      pc->u, pc->f->c.services,
      json_pack("{s:s,s:{s:I}}", "platform", pc->code, "opened_at_ms", "$gt",
                (json_int_t)(pc->now - pol.window_days * 86400000LL)),
      json_pack("{s:{s:i,s:i,s:i}}", "projection", "opened_at_ms", 1, "usage", 1, "footprint", 1), NULL);
  size_t no = json_array_size(opened), nu = 0, i;
  int64_t *ts = calloc(no + 1, sizeof *ts);
  ad__res_t *usage = calloc(no + 1, sizeof *usage);
  const json_t **measured = calloc(no + 1, sizeof *measured); /* usage[k]'s service */
  int rc = -1;
  json_t *d, *fpd = json_object_get(pc->plat, "footprint");
  if (!ts || !usage || !measured) {
    ad__cycle_report_error(pc, json_string("reserve: no memory"));
    goto fail;
  }
  json_array_foreach(opened, i, d) {
    ts[i] = json_integer_value(json_object_get(d, "opened_at_ms"));
    json_t *m = json_object_get(d, "usage"); /* measured p95 after opening, when a source has it */
    if (json_is_object(m)) {
      measured[nu] = d;
      usage[nu++] = (ad__res_t){ad__jnum(m, "cpu"), ad__jnum(m, "mem_mb")};
    }
  }
  int64_t since = json_integer_value(json_object_get(pc->plat, "created_at_ms"));
  if (ad__reserve_size(&pol, ts, no, pc->now, since, &pc->rs, &err) < 0) {
    ad__cycle_report_error(pc, json_sprintf("reserve: %s", err.message));
    goto fail;
  }
  json_object_set_new(pc->rep, "reserve", ad__reserve_to_json(&pc->rs));
  long from[2];
  pc->fp = ad__footprint_from(usage, nu, (ad__res_t){ad__jnum(fpd, "cpu"), ad__jnum(fpd, "mem_mb")},
                              &from[0], &from[1]);
  json_decref(pc->fp_sources);
  pc->fp_sources = json_object();
  static const char *const DIM[2] = {"cpu", "mem_mb"};
  for (int k = 0; k < 2 && pc->fp_sources; k++) {
    const json_t *sd = from[k] >= 0 ? measured[from[k]] : NULL;
    json_t *u = json_object_get(sd, "usage");
    json_t *src = sd ? json_pack("{s:s,s:s,s:O?,s:O?,s:O?}", "from", "measured", "service",
                                 ad__jstr(sd, "_id"), "samples", json_object_get(u, "samples"),
                                 "window", json_object_get(u, "window"), "final",
                                 json_object_get(u, "final"))
                     : json_pack("{s:s}", "from", "platform default");
    json_object_set_new(pc->fp_sources, DIM[k], src);
  }
  json_object_set_new(pc->rep, "footprint",
                      json_pack("{s:f,s:f,s:s,s:O?}", "cpu", pc->fp.cpu, "mem_mb", pc->fp.mem, "from",
                                from[0] >= 0 || from[1] >= 0 ? "largest measured opening"
                                                             : "platform default",
                                "sources", pc->fp_sources));
  rc = 0;
fail:
  free(ts);
  free(usage);
  free(measured);
  json_decref(opened);
  return rc;
}

/* `n` new pending services <code>-s<no>, numbered by one $inc on the
 * platform (two cycles never get one number); their ids to `created`. */
static void create_services(ad__plat_cycle_t *pc, int n, json_t *created)
{
  ad_error_t err = {0};
  json_t *nums = pc->st->next_numbers(pc->u, pc->code, n, &err);
  if (!nums) {
    ad__cycle_report_error(pc, json_string(err.message));
    return;
  }
  json_int_t first = json_integer_value(json_object_get(nums, "first"));
  json_decref(nums);
  char iso[32], cause[200];
  ad__iso_ms(pc->now, iso);
  snprintf(cause, sizeof cause, "reserve %d, supply %lld", pc->rs.size, (long long)pc->supply);
  for (int k = 0; k < n; k++) {
    char id[160];
    snprintf(id, sizeof id, "%s-s%lld", pc->code, (long long)(first + k));
    json_t *doc = json_pack("{s:s,s:i,s:s,s:I,s:s,s:s,s:I,s:i,s:{s:f,s:f},s:[{s:s,s:s,s:s,s:s}]}",
                            "_id", id, "rev", 0, "platform", pc->code, "server_no", first + k,
                            "state", "pending", "created_at", iso, "created_at_ms", (json_int_t)pc->now,
                            "attempts", 0, "footprint", "cpu", pc->fp.cpu, "mem_mb", pc->fp.mem,
                            "history", "at", iso, "what", "created", "to", "pending", "cause", cause);
    int rc = doc ? pc->st->insert(pc->u, pc->f->c.services, doc, &err) : AD_ENOMEM;
    if (rc == 1)
      json_array_append_new(created, json_string(id));
    else
      ad__cycle_report_error(pc, rc == 0 ? json_sprintf("service %s exists already "
                                                        "(first_server_no below numbers in use?)", id)
                                         : json_sprintf("creating %s: %s", id, doc ? err.message : "no memory"));
    json_decref(doc);
  }
}

/* create: supply and shortfall, then (unless a dry run) the new services.
 * rep.created: their ids, or "(new k)" in a dry run. 0, or -1 + rep.error
 * when the services cannot be counted. */
static int step_create(ad__plat_cycle_t *pc)
{
  const char *coll = pc->f->c.services, *code = pc->code;
  int64_t supply = pc->st->count(pc->u, coll,
                                 json_pack("{s:s,s:{s:[s,s,s,s]}}", "platform", code, "state", "$in",
                                           SUPPLY[0], SUPPLY[1], SUPPLY[2], SUPPLY[3]));
  int64_t idle = pc->st->count(pc->u, coll, json_pack("{s:s,s:s}", "platform", code, "state", "deployed"));
  if (supply < 0 || idle < 0)
    return ad__cycle_report_error(pc, json_string("cannot count the platform's services (database)"));
  int shortfall = (int)(pc->rs.size > supply ? pc->rs.size - supply : 0);
  pc->supply = supply;
  json_object_set_new(pc->rep, "supply", json_integer(supply));
  json_object_set_new(pc->rep, "idle", json_integer(idle));
  json_object_set_new(pc->rep, "short", json_integer(shortfall));
  json_t *created = json_array();
  if (!created)
    return ad__cycle_report_error(pc, json_string("create: no memory"));
  if (shortfall > 0 && !pc->dry_run)
    create_services(pc, shortfall, created);
  else
    for (int k = 0; k < shortfall; k++)
      json_array_append_new(created, json_sprintf("(new %d)", k + 1));
  json_object_set_new(pc->rep, "created", created);
  return 0;
}

/* A service moved to deploying whose task id was never recorded (a crash
 * between the two updates) 5 minutes ago: adopt its newest deploy task
 * (found by owner.service), or send it back to pending. */
static void settle_stuck(ad__plat_cycle_t *pc)
{
  json_t *stuck = pc->st->find(pc->u, pc->f->c.services,
                               json_pack("{s:s,s:s,s:{s:b},s:{s:I}}", "platform", pc->code, "state",
                                         "deploying", "task", "$exists", 0, "placed_at_ms", "$lt",
                                         (json_int_t)(pc->now - 300000)), NULL, NULL);
  size_t i;
  json_t *d;
  json_array_foreach(stuck, i, d) {
    json_t *tasks = pc->st->find(pc->u, pc->f->env.tasks->collection,
                                 json_pack("{s:s}", "owner.service", ad__jstr(d, "_id")),
                                 json_pack("{s:{s:i},s:i}", "sort", "created_at", -1, "limit", 1), NULL);
    json_t *t = json_array_get(tasks, 0);
    json_t *set = t ? json_pack("{s:s}", "task", ad__jstr(t, "_id"))
                    : json_pack("{s:s,s:s}", "state", "pending", "reason", "deploy task never started");
    if (set)
      pc->st->cas(pc->u, pc->f->c.services, d, set, t ? "task adopted" : "back to pending",
                  t ? ad__jstr(t, "_id") : "no deploy task was created after placement",
                  "autodeploy/cycle", NULL);
    json_decref(set);
    json_decref(tasks);
  }
  json_decref(stuck);
}

/* One decision: reported, then (unless a dry run) placed -> ad__cycle_step_deploy,
 * no fit -> waiting_resources with the reason and the decision (written
 * only when the state or the reason changes). */
static void settle_decision(ad__plat_cycle_t *pc, const json_t *svc, const ad__decision_t *d,
                                const ad__place_req_t *req, json_t *placed, json_t *waiting)
{
  json_t *dj = ad__decision_to_json(d, pc->hs->h, req);
  if (!dj) {
    ad__cycle_report_error(pc, json_string("placement: no memory"));
    return;
  }
  char at[32];
  ad__iso_ms(pc->now, at);
  json_object_set_new(dj, "at", json_string(at));
  if (pc->hs->load_error)
    json_object_set_new(dj, "load_error", json_string(pc->hs->load_error));
  if (pc->fp_sources) /* where each dimension of the footprint came from */
    json_object_set(dj, "footprint_from", pc->fp_sources);
  const char *sid = ad__jstr(svc, "_id");
  if (d->host >= 0) {
    json_t *hdoc = json_array_get(pc->hs->docs, (size_t)d->host);
    json_array_append_new(placed, json_pack("{s:s,s:s,s:f}", "service", sid, "host",
                                            ad__jstr(hdoc, "_id"), "score", d->top[0].score));
    if (!pc->dry_run)
      ad__cycle_step_deploy(pc, svc, hdoc, d, dj);
  } else {
    json_array_append_new(waiting, json_pack("{s:s,s:s}", "service", sid, "reason", d->reason));
    json_t *set = NULL;
    if (!pc->dry_run && (strcmp(ad__jstr(svc, "state"), "waiting_resources") ||
                         strcmp(ad__jstr(svc, "reason"), d->reason)) &&
        (set = json_pack("{s:s,s:s,s:O}", "state", "waiting_resources", "reason", d->reason,
                         "decision", dj)))
      pc->st->cas(pc->u, pc->f->c.services, svc, set, "waiting", d->reason, "autodeploy/cycle", NULL);
    json_decref(set);
  }
  json_decref(dj);
}

/* The services to place: waiting_resources first, then pending, each
 * oldest first; in a dry run, then the ones create would have made. */
static json_t *placement_order(ad__plat_cycle_t *pc)
{
  json_t *todo = json_array();
  const char *order[] = {"waiting_resources", "pending"};
  for (int k = 0; todo && k < 2; k++) {
    json_t *rows = pc->st->find(pc->u, pc->f->c.services,
                                json_pack("{s:s,s:s}", "platform", pc->code, "state", order[k]),
                                json_pack("{s:{s:i,s:i}}", "sort", "created_at_ms", 1, "server_no", 1), NULL);
    json_array_extend(todo, rows);
    json_decref(rows);
  }
  json_t *created = json_object_get(pc->rep, "created");
  for (size_t k = 0; todo && pc->dry_run && k < json_array_size(created); k++)
    json_array_append_new(todo, json_pack("{s:O,s:s}", "_id", json_array_get(created, k), "state", "new"));
  return todo;
}

/* ad__place's request for this platform; p->profs and p->regs are the
 * caller's to free, also on failure. */
typedef struct {
  ad__place_req_t req;
  const char **profs, **regs;
} place_req_t;

static int place_request(ad__plat_cycle_t *pc, place_req_t *p)
{
  json_t *pl = json_object_get(pc->plat, "profiles"), *rl = json_object_get(pc->plat, "regions"), *d;
  size_t i;
  ad__place_req_default(&p->req);
  p->req.code = pc->code;
  p->req.headroom = pc->f->c.headroom;
  p->req.top_k = (size_t)pc->f->c.top_k;
  p->req.footprint = pc->fp;
  p->profs = calloc(json_array_size(pl) + 1, sizeof *p->profs);
  p->regs = calloc(json_array_size(rl) + 1, sizeof *p->regs);
  if (!p->profs || !p->regs)
    return AD_ENOMEM;
  json_array_foreach(pl, i, d) p->profs[i] = json_string_value(d);
  json_array_foreach(rl, i, d) p->regs[i] = json_string_value(d);
  p->req.profiles = p->profs;
  p->req.n_profiles = json_array_size(pl);
  p->req.regions = p->regs;
  p->req.n_regions = json_array_size(rl);
  return 0;
}

/* place: ad__place over the cycle's hosts (which keep this platform's
 * placements for the next), then each decision settled in order. */
static void step_place(ad__plat_cycle_t *pc)
{
  ad_error_t err = {0};
  place_req_t p = {0};
  json_t *todo = placement_order(pc);
  size_t nt = json_array_size(todo);
  ad__decision_t *dec = calloc(nt + 1, sizeof *dec);
  json_t *placed = json_array(), *waiting = json_array();
  if (!todo || !dec || !placed || !waiting || place_request(pc, &p)) {
    ad__cycle_report_error(pc, json_string("placement: no memory"));
    goto fail;
  }
  long got = nt ? ad__place(pc->hs->h, pc->hs->n, &p.req, nt, dec, &err) : 0;
  if (got < 0)
    ad__cycle_report_error(pc, json_sprintf("placement: %s", err.message));
  for (size_t k = 0; got >= 0 && k < nt; k++)
    settle_decision(pc, json_array_get(todo, k), &dec[k], &p.req, placed, waiting);
  json_object_set_new(pc->rep, "placed", placed);
  json_object_set_new(pc->rep, "waiting", waiting);
  placed = waiting = NULL;
fail:
  json_decref(placed);
  json_decref(waiting);
  json_decref(todo);
  free(dec);
  free(p.profs);
  free(p.regs);
}

/* One platform: reserve -> create (and settle) -> place -> deploy. */
static json_t *platform_cycle(ad__plat_cycle_t *pc)
{
  if (!(pc->rep = json_pack("{s:s}", "platform", pc->code)))
    return NULL;
  if (step_reserve(pc) || step_create(pc))
    return pc->rep;
  if (!pc->dry_run)
    settle_stuck(pc);
  step_place(pc);
  return pc->rep;
}

/* Enabled platforms by code (`only`: that one). NULL + err. */
static json_t *find_platforms(ad__fleet_t *f, const ad__cycle_store_t *st, void *u, const char *only,
                              ad_error_t *err)
{
  json_t *q = only ? json_pack("{s:b,s:s}", "enabled", 1, "_id", only) : json_pack("{s:b}", "enabled", 1);
  json_t *opts = json_pack("{s:{s:i}}", "sort", "_id", 1);
  if (!q || !opts) {
    json_decref(q);
    json_decref(opts);
    return ad__err(err, AD_ENOMEM, "fleet", "cycle: no memory"), NULL;
  }
  return st->find(u, f->c.platforms, q, opts, err);
}

/* ---- what the cycle saw, kept on the documents (the dashboard's numbers) ---- */

/* {"_id": code, "set": {"last_cycle": {at, reserve, footprint}}} per
 * platform whose reserve was computed, appended to `sets`. */
static void platform_seen(json_t *sets, const json_t *rep, const char *at)
{
  json_t *rs = json_object_get(rep, "reserve");
  if (rs && sets)
    json_array_append_new(sets, json_pack("{s:s,s:{s:{s:s,s:O,s:O?}}}", "_id", ad__jstr(rep, "platform"),
                                          "set", "last_cycle", "at", at, "reserve", rs, "footprint",
                                          json_object_get(rep, "footprint")));
}

/* {"_id": key, "set": {"load": {p95, placed, limit, at}}} per ready host, as
 * the cycle leaves it (cycle.h). NULL: no memory. */
static json_t *hosts_seen(const ad__fleet_t *f, const ad__cycle_hosts_t *hs, const char *at)
{
  json_t *sets = json_array();
  for (size_t i = 0; sets && i < hs->n; i++) {
    const ad__host_t *h = &hs->h[i];
    json_t *p95 = hs->load_error ? json_null()
                                 : json_pack("{s:f,s:f}", "cpu", h->p95.cpu, "mem_mb", h->p95.mem);
    if (json_array_append_new(sets, json_pack(
            "{s:s,s:{s:{s:o,s:{s:f,s:f},s:{s:f,s:f},s:s}}}", "_id", h->key, "set", "load", "p95", p95,
            "placed", "cpu", h->pending.cpu, "mem_mb", h->pending.mem, "limit", "cpu",
            h->capacity.cpu * f->c.headroom, "mem_mb", h->capacity.mem * f->c.headroom, "at", at))) {
      json_decref(sets);
      return NULL;
    }
  }
  return sets;
}

/* Write what the cycle saw (sets taken). An observation, not a decision:
 * after the lease is given back, and a failure only logged. */
static void keep_seen(const ad__cycle_store_t *st, void *u, const char *coll, json_t *sets,
                      const char *what)
{
  ad_error_t err = {0};
  size_t n = json_array_size(sets);
  if (!sets)
    AD_LOG_W("fleet", "cycle: no memory to keep the %s it saw", what);
  else if (st->observe(u, coll, sets, &err) < 0)
    AD_LOG_W("fleet", "cycle: keeping the %zu %s it saw in %s: %s", n, what, coll, err.message);
}

json_t *ad__cycle_run(ad__fleet_t *f, const ad__cycle_store_t *st, void *u, const json_t *a,
                      ad_error_t *err)
{
  int dry_run = json_is_true(json_object_get(a, "dry_run"));
  const char *only = json_string_value(json_object_get(a, "platform"));
  char holder[200] = "";
  if (!dry_run) {
    int got = st->lease(u, 1, holder, sizeof holder);
    if (got < 0)
      return ad__err(err, AD_ECONNECT, "fleet", "cycle lease: the database is unreachable"), NULL;
    if (got == 0)
      return json_pack("{s:b,s:s}", "ran", 0, "skipped", holder[0] ? holder : "another cycle is running");
  }
  int64_t now = ad__now_ms(), t0 = now;
  char iso[32];
  ad__iso_ms(now, iso);
  ad__cycle_hosts_t hs = {0};
  json_t *out = NULL, *reps = NULL, *plats = find_platforms(f, st, u, only, err), *p;
  json_t *plat_sets = dry_run ? NULL : json_array();
  if (!plats || load_hosts(f, st, u, &hs, now, err))
    goto fail;
  if (!(reps = json_array())) {
    ad__err(err, AD_ENOMEM, "fleet", "cycle: no memory");
    goto fail;
  }
  size_t i;
  json_array_foreach(plats, i, p) {
    if (!dry_run)
      st->lease(u, 2, NULL, 0); /* renew: a long cycle must not overlap the next */
    ad__plat_cycle_t pc = {.f = f, .st = st, .u = u, .hs = &hs, .plat = p, .code = ad__jstr(p, "_id"),
                       .now = now, .dry_run = dry_run};
    json_t *rep = platform_cycle(&pc);
    platform_seen(plat_sets, rep, iso);
    json_array_append_new(reps, rep);
    json_decref(pc.fp_sources);
  }
  out = json_pack("{s:b,s:b,s:s,s:I,s:o,s:I}", "ran", 1, "dry_run", dry_run, "at", iso, "hosts",
                  (json_int_t)hs.n, "platforms", reps, "ms", (json_int_t)(ad__now_ms() - t0));
  reps = NULL; /* taken by json_pack, also when it fails */
  if (!out)
    ad__err(err, AD_ENOMEM, "fleet", "cycle: no memory for the report");
  else if (hs.load_error)
    json_object_set_new(out, "load_error", json_string(hs.load_error));
fail:
  json_decref(plats);
  if (!dry_run)
    st->lease(u, 0, NULL, 0);
  if (out && !dry_run) {
    keep_seen(st, u, f->c.platforms, plat_sets, "platform reserves");
    keep_seen(st, u, f->env.hosts_collection, hosts_seen(f, &hs, iso), "host loads");
  } else {
    json_decref(plat_sets);
  }
  hosts_free(&hs);
  return out;
}

json_t *ad__fleet_cycle(ad__fleet_t *f, const json_t *a, ad_error_t *err)
{
  return ad__cycle_run(f, &ad__fleet_cycle_store, f, a, err);
}
