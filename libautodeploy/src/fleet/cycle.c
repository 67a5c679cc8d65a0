/*
 * cycle.c - the reserve/placement cycle (docs/placement.md).
 *
 * Under the cycle lease (one cycle at a time across runners, engines and
 * masters sharing the database), for every enabled platform:
 *   1. reserve = ad__reserve_size(openings of the window);
 *   2. supply = pending + deploying + deployed + waiting_resources;
 *      short = reserve - supply new `pending` services (numbers from one
 *      $inc on the platform);
 *   3. waiting_resources (oldest first), then pending, are placed by
 *      ad__place on the ready hosts, with the load history's p95 plus the
 *      footprints placed but not yet measured;
 *   4. a placed service moves pending|waiting_resources -> deploying (a
 *      conditional update: a service is never placed twice) and a deploy
 *      task runs the platform's state on the host's minion; no fit ->
 *      waiting_resources with the reason and the decision.
 * Hosts are shared across platforms in one cycle (platforms by code).
 * dry_run computes and reports without writing or taking the lease.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/docs.h"
#include "core/error_private.h"
#include "fleet/fleet_private.h"
#include "core/log_private.h"
#include "decide/placement.h"
#include "decide/reserve.h"

static double jnum(const json_t *o, const char *k)
{
  return json_number_value(json_object_get(o, k));
}

/* {service} {server_no} {platform} {host} {private_ip} {minion} in strings */
static json_t *render(const json_t *tmpl, const json_t *vars)
{
  if (json_is_string(tmpl)) {
    const char *s = json_string_value(tmpl);
    /* "{server_no}" alone keeps the variable's type (an integer stays one) */
    size_t sl = strlen(s);
    if (sl > 2 && s[0] == '{' && s[sl - 1] == '}' && !strchr(s + 1, '{')) {
      char name[40];
      snprintf(name, sizeof name, "%.*s", (int)(sl - 2), s + 1);
      json_t *v = json_object_get(vars, name);
      if (json_is_integer(v))
        return json_incref(v);
    }
    char out[4096];
    size_t o = 0;
    while (*s && o < sizeof out - 1) {
      const char *close = *s == '{' ? strchr(s, '}') : NULL;
      if (close && close - s - 1 < 32) {
        char name[40];
        snprintf(name, sizeof name, "%.*s", (int)(close - s - 1), s + 1);
        json_t *v = json_object_get(vars, name);
        if (v) {
          char buf[300];
          if (json_is_integer(v))
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
          else
            snprintf(buf, sizeof buf, "%s", json_string_value(v) ? json_string_value(v) : "");
          size_t n = strlen(buf);
          if (o + n >= sizeof out)
            break;
          memcpy(out + o, buf, n);
          o += n;
          s = close + 1;
          continue;
        }
      }
      out[o++] = *s++;
    }
    out[o] = 0;
    return json_string(out);
  }
  if (json_is_object(tmpl)) {
    json_t *r = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)tmpl, k, v) json_object_set_new(r, k, render(v, vars));
    return r;
  }
  if (json_is_array(tmpl)) {
    json_t *r = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(tmpl, i, v) json_array_append_new(r, render(v, vars));
    return r;
  }
  return json_deep_copy(tmpl);
}

typedef struct {
  json_t *docs;       /* ready hosts */
  ad__host_t *h;
  size_t n;
  char *load_error;   /* the load history could not be read */
} fleet_hosts_t;

static void hosts_free(fleet_hosts_t *hs)
{
  json_decref(hs->docs);
  free(hs->h);
  free(hs->load_error);
}

static int host_key_cmp(const void *a, const void *b)
{
  return strcmp((*(ad__host_t *const *)a)->key, (*(ad__host_t *const *)b)->key);
}

/* Ready hosts with p95 load and the footprints not yet in their history. */
static int load_hosts(ad__fleet_t *f, fleet_hosts_t *hs, int64_t now, ad_error_t *err)
{
  memset(hs, 0, sizeof *hs);
  hs->docs = ad__fdoc_find(f, f->env.hosts_collection, json_pack("{s:s}", "state", "ready"),
                           json_pack("{s:{s:i},s:{s:i,s:i,s:i,s:i,s:i,s:i}}", "sort", "_id", 1,
                                     "projection", "minion", 1, "profile", 1, "region", 1,
                                     "capacity", 1, "private_ip", 1, "provider", 1), err);
  if (!hs->docs)
    return AD_ECONNECT;
  hs->n = json_array_size(hs->docs);
  hs->h = calloc(hs->n + 1, sizeof *hs->h);
  ad__metrics_host_t *mh = calloc(hs->n + 1, sizeof *mh);
  size_t i;
  json_t *d;
  json_array_foreach(hs->docs, i, d) {
    json_t *cap = json_object_get(d, "capacity");
    hs->h[i] = (ad__host_t){.key = ad__jstr(d, "_id"), .placeable = 1, .profile = ad__jstr(d, "profile"),
                            .region = ad__jstr(d, "region"),
                            .capacity = {jnum(cap, "cpu"), jnum(cap, "mem_mb")}};
    mh[i] = (ad__metrics_host_t){.key = ad__jstr(d, "_id"), .minion_id = ad__jstr(d, "minion"),
                                 .private_ip = ad__jstr(d, "private_ip"),
                                 .cores = (int)jnum(cap, "cpu"), .mem_mb = (int64_t)jnum(cap, "mem_mb")};
  }
  if (hs->n) {
    ad__metrics_query_t q = {.from_ms = now - f->c.load_window_hours * 3600000LL, .to_ms = now,
                             .step_ms = 60000,
                             .resources = (1u << AD__RES_CPU) | (1u << AD__RES_MEM)};
    ad__metrics_result_t *r = NULL;
    ad_error_t merr;
    if (ad__metrics_query(f->metrics, mh, hs->n, &q, &r, &merr) == 0) {
      for (i = 0; i < hs->n && i < r->n_hosts; i++) {
        ad__metrics_summary_t *c = &r->hosts[i].res[AD__RES_CPU], *m = &r->hosts[i].res[AD__RES_MEM];
        hs->h[i].p95.cpu = c->count ? c->p95 : 0;
        hs->h[i].p95.mem = m->count ? m->p95 : 0;
      }
      ad__metrics_result_free(&r);
    } else {
      hs->load_error = strdup(merr.message);
      AD_LOG_W("fleet", "load history unavailable, placing on capacity and footprints only: %s",
               merr.message);
    }
  }
  free(mh);
  /* footprints placed but not yet in the history: services being deployed
   * or deployed (idle now, busy once opened), and those opened recently */
  json_t *svcs = ad__fdoc_find(
      f, f->c.services,
      json_pack("{s:[{s:{s:[s,s]}},{s:s,s:{s:I}}]}", "$or", "state", "$in", "deploying", "deployed",
                "state", "opened", "opened_at_ms", "$gt",
                (json_int_t)(now - f->c.measure_after_hours * 3600000LL)),
      json_pack("{s:{s:i,s:i}}", "projection", "host", 1, "footprint", 1), NULL);
  /* hosts by key, so each service finds its host in O(log H), not O(H) */
  ad__host_t **by_key = malloc((hs->n + 1) * sizeof *by_key);
  for (i = 0; i < hs->n; i++)
    by_key[i] = &hs->h[i];
  qsort(by_key, hs->n, sizeof *by_key, host_key_cmp);
  json_array_foreach(svcs, i, d) {
    ad__host_t probe = {.key = ad__jstr(d, "host")}, *pp = &probe;
    ad__host_t **hit = hs->n ? bsearch(&pp, by_key, hs->n, sizeof *by_key, host_key_cmp) : NULL;
    if (hit) {
      (*hit)->pending.cpu += jnum(json_object_get(d, "footprint"), "cpu");
      (*hit)->pending.mem += jnum(json_object_get(d, "footprint"), "mem_mb");
    }
  }
  free(by_key);
  json_decref(svcs);
  return 0;
}

static const char *const SUPPLY[] = {"pending", "deploying", "deployed", "waiting_resources", NULL};

/* A deploy task for `svc` on host `h` (its document `hdoc`). */
static json_t *deploy(ad__fleet_t *f, const json_t *plat, const json_t *svc, const json_t *hdoc,
                      ad_error_t *err)
{
  json_int_t no = json_integer_value(json_object_get(svc, "server_no"));
  json_int_t port_base = json_object_get(plat, "port_base") ? json_integer_value(json_object_get(plat, "port_base")) : 10000;
  json_t *vars = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:I}", "service", ad__jstr(svc, "_id"), "id",
                           ad__jstr(svc, "_id"), "server_no", no, "platform", ad__jstr(plat, "_id"),
                           "host", ad__jstr(hdoc, "_id"), "private_ip", ad__jstr(hdoc, "private_ip"),
                           "minion", ad__jstr(hdoc, "minion"), "port", port_base + no);
  if (port_base + no > 65535) {
    json_decref(vars);
    return ad__err(err, AD_EINVAL, "fleet", "port %lld (port_base %lld + server_no %lld) is over 65535",
                   (long long)(port_base + no), (long long)port_base, (long long)no), NULL;
  }
  json_t *pillar = render(json_object_get(plat, "pillar"), vars);
  if (!json_is_object(pillar)) {
    json_decref(pillar);
    pillar = json_object();
  }
  json_t *ad = json_object_get(pillar, "autodeploy");
  if (!json_is_object(ad)) {
    ad = json_object();
    json_object_set_new(pillar, "autodeploy", ad);
  }
  /* autodeploy:service: the template's, with who and where filled in */
  json_t *sv = json_object_get(ad, "service");
  if (!json_is_object(sv)) {
    sv = json_object();
    json_object_set_new(ad, "service", sv);
  }
  const char *const FILL[] = {"id", "platform", "server_no", "host", "private_ip", "minion", NULL};
  for (int i = 0; FILL[i]; i++)
    json_object_set(sv, FILL[i], json_object_get(vars, FILL[i]));
  if (!json_object_get(sv, "port"))
    json_object_set(sv, "port", json_object_get(vars, "port"));
  json_t *args = json_pack("{s:[s],s:s,s:[s],s:o,s:i,s:{s:i,s:i},s:s,s:s,s:{s:s,s:s,s:s}}", "tgt",
                           ad__jstr(hdoc, "minion"), "tgt_type", "list", "mods", ad__jstr(plat, "state"),
                           "pillar", pillar, "timeout", f->c.deploy_timeout, "retry",
                           "max_attempts", f->c.deploy_attempts, "backoff_s", f->c.deploy_backoff_s,
                           "created_by", "autodeploy/cycle", "reason", ad__jstr(svc, "_id"), "owner",
                           "kind", "service_deploy", "service", ad__jstr(svc, "_id"), "platform",
                           ad__jstr(plat, "_id"));
  json_decref(vars);
  json_t *res = ad__task_create(f->env.tasks, args, err);
  json_decref(args);
  return res;
}

static json_t *platform_cycle(ad__fleet_t *f, const json_t *plat, fleet_hosts_t *hs, int64_t now,
                              int dry_run)
{
  const char *code = ad__jstr(plat, "_id");
  json_t *rep = json_pack("{s:s}", "platform", code);
  ad_error_t err = {0};
  /* 1. reserve from the openings of the window */
  ad__reserve_policy_t pol;
  ad__reserve_policy_default(&pol);
  if (ad__reserve_policy_from_json(&pol, json_object_get(plat, "reserve"), "reserve", &err)) {
    json_object_set_new(rep, "error", json_sprintf("reserve policy: %s", err.message));
    return rep;
  }
  json_t *opened = ad__fdoc_find(
      f, f->c.services,
      json_pack("{s:s,s:{s:I}}", "platform", code, "opened_at_ms", "$gt",
                (json_int_t)(now - pol.window_days * 86400000LL)),
      json_pack("{s:{s:i,s:i,s:i}}", "projection", "opened_at_ms", 1, "usage", 1, "footprint", 1), NULL);
  size_t no = json_array_size(opened), i;
  int64_t *ts = calloc(no + 1, sizeof *ts);
  ad__res_t *usage = calloc(no + 1, sizeof *usage);
  size_t nu = 0;
  json_t *d;
  json_array_foreach(opened, i, d) {
    ts[i] = json_integer_value(json_object_get(d, "opened_at_ms"));
    json_t *u = json_object_get(d, "usage"); /* measured p95 after opening, when a source has it */
    if (json_is_object(u))
      usage[nu++] = (ad__res_t){jnum(u, "cpu"), jnum(u, "mem_mb")};
  }
  ad__reserve_t rs;
  int64_t since = json_integer_value(json_object_get(plat, "created_at_ms"));
  if (ad__reserve_size(&pol, ts, no, now, since, &rs, &err) < 0) {
    json_object_set_new(rep, "error", json_sprintf("reserve: %s", err.message));
    free(ts);
    free(usage);
    json_decref(opened);
    return rep;
  }
  json_object_set_new(rep, "reserve", ad__reserve_to_json(&rs));
  json_t *fpd = json_object_get(plat, "footprint");
  ad__res_t fp = ad__footprint_max(usage, nu, (ad__res_t){jnum(fpd, "cpu"), jnum(fpd, "mem_mb")});
  json_object_set_new(rep, "footprint", json_pack("{s:f,s:f,s:s}", "cpu", fp.cpu, "mem_mb", fp.mem,
                                                  "from", nu ? "largest measured opening" : "platform default"));
  free(ts);
  free(usage);
  json_decref(opened);
  /* 2. supply and shortfall */
  json_t *supq = json_pack("{s:s,s:{s:[s,s,s,s]}}", "platform", code, "state", "$in", SUPPLY[0],
                           SUPPLY[1], SUPPLY[2], SUPPLY[3]);
  int64_t supply = ad__fdoc_count(f, f->c.services, supq);
  int64_t idle = ad__fdoc_count(f, f->c.services, json_pack("{s:s,s:s}", "platform", code, "state", "deployed"));
  if (supply < 0 || idle < 0) {
    json_object_set_new(rep, "error", json_string("cannot count the platform's services (database)"));
    return rep;
  }
  int shortfall = (int)(rs.size > supply ? rs.size - supply : 0);
  json_object_set_new(rep, "supply", json_integer(supply));
  json_object_set_new(rep, "idle", json_integer(idle));
  json_object_set_new(rep, "short", json_integer(shortfall));
  json_t *created = json_array();
  if (shortfall > 0 && !dry_run) {
    json_t *nums = ad__fleet_next_numbers(f, code, shortfall, &err);
    if (!nums) {
      json_object_set_new(rep, "error", json_string(err.message));
    } else {
      json_int_t first = json_integer_value(json_object_get(nums, "first"));
      char iso[32];
      ad__iso_ms(now, iso);
      for (int k = 0; k < shortfall; k++) {
        char id[160];
        snprintf(id, sizeof id, "%s-s%lld", code, (long long)(first + k));
        char cause[200];
        snprintf(cause, sizeof cause, "reserve %d, supply %lld", rs.size, (long long)supply);
        json_t *doc = json_pack("{s:s,s:i,s:s,s:I,s:s,s:s,s:I,s:i,s:{s:f,s:f},s:[{s:s,s:s,s:s,s:s}]}",
                                "_id", id, "rev", 0, "platform", code, "server_no", first + k,
                                "state", "pending", "created_at", iso, "created_at_ms", (json_int_t)now,
                                "attempts", 0, "footprint", "cpu", fp.cpu, "mem_mb", fp.mem,
                                "history", "at", iso, "what", "created", "to", "pending", "cause", cause);
        int rc = ad__fdoc_insert(f, f->c.services, doc, &err);
        if (rc == 1)
          json_array_append_new(created, json_string(id));
        else
          json_object_set_new(rep, "error", rc == 0
              ? json_sprintf("service %s exists already (first_server_no below numbers in use?)", id)
              : json_sprintf("creating %s: %s", id, err.message));
        json_decref(doc);
      }
    }
    json_decref(nums);
  } else if (shortfall > 0) {
    for (int k = 0; k < shortfall; k++)
      json_array_append_new(created, json_sprintf("(new %d)", k + 1));
  }
  json_object_set_new(rep, "created", created);
  /* a service moved to deploying whose task id was never recorded (a crash
   * between the two updates): adopt its task, or send it back to pending */
  if (!dry_run) {
    json_t *stuck = ad__fdoc_find(f, f->c.services,
                                  json_pack("{s:s,s:s,s:{s:b},s:{s:I}}", "platform", code, "state",
                                            "deploying", "task", "$exists", 0, "placed_at_ms", "$lt",
                                            (json_int_t)(now - 300000)), NULL, NULL);
    json_array_foreach(stuck, i, d) {
      json_t *tq = json_pack("{s:s}", "owner.service", ad__jstr(d, "_id"));
      json_t *tasks = ad__fdoc_find(f, f->env.tasks->collection, tq,
                                    json_pack("{s:{s:i},s:i}", "sort", "created_at", -1, "limit", 1), NULL);
      json_t *t = json_array_get(tasks, 0);
      json_t *set = t ? json_pack("{s:s}", "task", ad__jstr(t, "_id"))
                      : json_pack("{s:s,s:s}", "state", "pending", "reason", "deploy task never started");
      ad__fdoc_cas(f, f->c.services, d, set, t ? "task adopted" : "back to pending",
                   t ? ad__jstr(t, "_id") : "no deploy task was created after placement", "autodeploy/cycle", NULL);
      json_decref(set);
      json_decref(tasks);
    }
    json_decref(stuck);
  }
  /* 3. place: waiting first (oldest first), then pending */
  json_t *todo = json_array();
  const char *order[] = {"waiting_resources", "pending"};
  for (int k = 0; k < 2; k++) {
    json_t *rows = ad__fdoc_find(f, f->c.services,
                                 json_pack("{s:s,s:s}", "platform", code, "state", order[k]),
                                 json_pack("{s:{s:i,s:i}}", "sort", "created_at_ms", 1, "server_no", 1), NULL);
    json_array_extend(todo, rows);
    json_decref(rows);
  }
  if (dry_run)
    for (size_t k = 0; k < json_array_size(created); k++)
      json_array_append_new(todo, json_pack("{s:O,s:s}", "_id", json_array_get(created, k), "state", "new"));
  size_t nt = json_array_size(todo);
  ad__place_req_t req;
  ad__place_req_default(&req);
  req.code = code;
  req.headroom = f->c.headroom;
  req.top_k = (size_t)f->c.top_k;
  req.footprint = fp;
  json_t *pl = json_object_get(plat, "profiles"), *rl = json_object_get(plat, "regions");
  const char **profs = calloc(json_array_size(pl) + 1, sizeof *profs);
  const char **regs = calloc(json_array_size(rl) + 1, sizeof *regs);
  json_array_foreach(pl, i, d) profs[i] = json_string_value(d);
  json_array_foreach(rl, i, d) regs[i] = json_string_value(d);
  req.profiles = profs;
  req.n_profiles = json_array_size(pl);
  req.regions = regs;
  req.n_regions = json_array_size(rl);
  ad__decision_t *dec = calloc(nt + 1, sizeof *dec);
  json_t *placed = json_array(), *waiting = json_array();
  long got = nt ? ad__place(hs->h, hs->n, &req, nt, dec, &err) : 0;
  if (got < 0)
    json_object_set_new(rep, "error", json_sprintf("placement: %s", err.message));
  for (size_t k = 0; got >= 0 && k < nt; k++) {
    json_t *svc = json_array_get(todo, k);
    json_t *dj = ad__decision_to_json(&dec[k], hs->h, &req);
    char at[32];
    ad__iso_ms(now, at);
    json_object_set_new(dj, "at", json_string(at));
    if (hs->load_error)
      json_object_set_new(dj, "load_error", json_string(hs->load_error));
    const char *sid = ad__jstr(svc, "_id");
    if (dec[k].host >= 0) {
      json_t *hdoc = json_array_get(hs->docs, (size_t)dec[k].host);
      json_array_append_new(placed, json_pack("{s:s,s:s,s:f}", "service", sid, "host",
                                              ad__jstr(hdoc, "_id"), "score", dec[k].top[0].score));
      if (!dry_run) {
        json_t *set = json_pack("{s:s,s:s,s:s,s:O,s:{s:f,s:f},s:s,s:I}", "state", "deploying", "host",
                                ad__jstr(hdoc, "_id"), "minion", ad__jstr(hdoc, "minion"), "decision", dj,
                                "footprint", "cpu", fp.cpu, "mem_mb", fp.mem, "reason", "placed",
                                "placed_at_ms", (json_int_t)now);
        char cause[300];
        snprintf(cause, sizeof cause, "placed on %s (dominant share %.3f after placement)",
                 ad__jstr(hdoc, "_id"), dec[k].top[0].score);
        /* the condition (rev, and so the state read) is what keeps two
         * cycles from placing one service twice */
        int rc = ad__fdoc_cas(f, f->c.services, svc, set, "placed", cause, "autodeploy/cycle", NULL);
        json_decref(set);
        if (rc == 1) {
          json_t *doc = ad__fdoc_get(f, f->c.services, sid, NULL);
          json_t *res = doc ? deploy(f, plat, doc, hdoc, &err) : NULL;
          json_t *now_doc = doc ? ad__fdoc_get(f, f->c.services, sid, NULL) : NULL;
          if (res && now_doc) {
            json_t *s2 = json_pack("{s:s,s:I}", "task", ad__jstr(json_object_get(res, "task"), "_id"),
                                   "attempts", json_integer_value(json_object_get(now_doc, "attempts")) + 1);
            ad__fdoc_cas(f, f->c.services, now_doc, s2, "deploy task", ad__jstr(json_object_get(res, "task"), "_id"),
                         "autodeploy/cycle", NULL);
            json_decref(s2);
          } else if (now_doc) {
            json_t *s2 = json_pack("{s:s,s:s}", "state", "pending", "reason", err.message);
            ad__fdoc_cas(f, f->c.services, now_doc, s2, "deploy not started", err.message,
                         "autodeploy/cycle", NULL);
            json_decref(s2);
          }
          json_decref(res);
          json_decref(doc);
          json_decref(now_doc);
        }
      }
    } else {
      json_array_append_new(waiting, json_pack("{s:s,s:s}", "service", sid, "reason", dec[k].reason));
      if (!dry_run && (strcmp(ad__jstr(svc, "state"), "waiting_resources") ||
                       strcmp(ad__jstr(svc, "reason"), dec[k].reason))) {
        json_t *set = json_pack("{s:s,s:s,s:O}", "state", "waiting_resources", "reason",
                                dec[k].reason, "decision", dj);
        ad__fdoc_cas(f, f->c.services, svc, set, "waiting", dec[k].reason, "autodeploy/cycle", NULL);
        json_decref(set);
      }
    }
    json_decref(dj);
  }
  json_object_set_new(rep, "placed", placed);
  json_object_set_new(rep, "waiting", waiting);
  free(dec);
  free(profs);
  free(regs);
  json_decref(todo);
  return rep;
}

json_t *ad__fleet_cycle(ad__fleet_t *f, const json_t *a, ad_error_t *err)
{
  int dry_run = json_is_true(json_object_get(a, "dry_run"));
  const char *only = json_string_value(json_object_get(a, "platform"));
  char holder[200] = "";
  if (!dry_run) {
    int got = ad__fleet_lease(f, 1, holder, sizeof holder);
    if (got < 0)
      return ad__err(err, AD_ECONNECT, "fleet", "cycle lease: the database is unreachable"), NULL;
    if (got == 0)
      return json_pack("{s:b,s:s}", "ran", 0, "skipped", holder[0] ? holder : "another cycle is running");
  }
  int64_t now = ad__now_ms(), t0 = now;
  json_t *q = json_pack("{s:b}", "enabled", 1);
  if (only)
    json_object_set_new(q, "_id", json_string(only));
  json_t *plats = ad__fdoc_find(f, f->c.platforms, q, json_pack("{s:{s:i}}", "sort", "_id", 1), err);
  fleet_hosts_t hs;
  json_t *out = NULL;
  if (plats && load_hosts(f, &hs, now, err) == 0) {
    json_t *reps = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(plats, i, p) {
      if (!dry_run)
        ad__fleet_lease(f, 2, NULL, 0); /* renew: a long cycle must not overlap the next */
      json_array_append_new(reps, platform_cycle(f, p, &hs, now, dry_run));
    }
    char iso[32];
    ad__iso_ms(now, iso);
    out = json_pack("{s:b,s:b,s:s,s:I,s:o,s:I}", "ran", 1, "dry_run", dry_run, "at", iso, "hosts",
                    (json_int_t)hs.n, "platforms", reps, "ms", (json_int_t)(ad__now_ms() - t0));
    if (hs.load_error)
      json_object_set_new(out, "load_error", json_string(hs.load_error));
    hosts_free(&hs);
  }
  json_decref(plats);
  if (!dry_run)
    ad__fleet_lease(f, 0, NULL, 0);
  return out;
}

int64_t ad__fleet_tick(ad__fleet_t *f)
{
  int64_t now = ad__now_ms();
  if (f->c.enabled && now >= f->next_cycle_ms) {
    f->next_cycle_ms = now + f->c.cycle_interval * 1000LL;
    ad_error_t err;
    json_t *r = ad__fleet_cycle(f, NULL, &err);
    if (!r) {
      AD_LOG_E("fleet", "cycle: %s", err.message);
    } else {
      size_t i, placed = 0, waiting = 0, created = 0;
      json_t *p;
      json_array_foreach(json_object_get(r, "platforms"), i, p) {
        placed += json_array_size(json_object_get(p, "placed"));
        waiting += json_array_size(json_object_get(p, "waiting"));
        created += json_array_size(json_object_get(p, "created"));
      }
      if (json_is_true(json_object_get(r, "ran")))
        AD_LOG_I("fleet", "cycle: %zu platforms, %lld hosts, %zu created, %zu placed, %zu waiting (%lld ms)",
                 json_array_size(json_object_get(r, "platforms")),
                 (long long)json_integer_value(json_object_get(r, "hosts")), created, placed, waiting,
                 (long long)json_integer_value(json_object_get(r, "ms")));
      else
        AD_LOG_I("fleet", "cycle skipped: lease held by %s", ad__jstr(r, "skipped"));
      json_decref(r);
    }
  }
  ad__store_t *st;
  const char *coll;
  int64_t expire;
  if (now >= f->next_prune_ms && ad__metrics_salt_target(f->metrics, &st, &coll, &expire) == 0) {
    f->next_prune_ms = now + f->c.metrics_prune_interval * 1000LL;
    if (!f->metrics_indexed) {
      ad_error_t err;
      if (ad__metrics_salt_init(st, coll, expire, &f->metrics_ttl, &err) == 0)
        f->metrics_indexed = 1;
      else
        AD_LOG_W("fleet", "load history indexes: %s (retried at the next prune)", err.message);
    }
    if (!f->metrics_ttl) { /* the server has no TTL indexes (FerretDB): prune ourselves */
      ad_error_t err;
      int64_t n = ad__metrics_salt_prune(st, coll, now - expire * 1000, &err);
      if (n < 0)
        AD_LOG_W("fleet", "pruning the load history: %s", err.message);
      else if (n > 0)
        AD_LOG_I("fleet", "pruned %lld load samples older than %llds", (long long)n, (long long)expire);
    }
  }
  int64_t next = f->next_cycle_ms < f->next_prune_ms ? f->next_cycle_ms : f->next_prune_ms;
  return next - ad__now_ms();
}
