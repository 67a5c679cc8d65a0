/*
 * usage_metrics.c - each opened service's `usage` from the placement's
 * metrics backend, when that is the source (placement.usage_source
 * "metrics", or "auto" with a backend other than salt): the same p95 over
 * the same window [opened, opened + measure_after_hours] as the beacon's
 * path (usage.c), from the backend's per-service query
 * (ad__metrics_query_services), with "source" naming the backend.
 *
 * Every usage_refresh_s (at least 60 s) the engine's tick takes the opened
 * services due for a refresh (usage.c's rule: not final, the last one older
 * than usage_refresh_s, once more after the window closes), asks the backend
 * once for all of them over the union of their windows (usage_step_s, 60 s:
 * the beacon's interval), cuts each service's series to its own window and
 * writes its usage ($set conditional on the service still being placed on
 * that minion, as usage.c does). A failed query is logged and counted
 * (usage.query_errors), and tried again at the next run.
 *
 * `service.usage` (salt-run autodeploy.usage) measures one service now,
 * from whichever source is configured.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "fleet/fleet_private.h"
#include "fleet/usage.h"
#include "store/docs.h"

#define MIN_EVERY_S 60

int ad__usage_source_resolve(ad__fleet_t *f, ad_error_t *err)
{
  int has = ad__metrics_has_service_query(f->metrics);
  if (f->c.usage_source == AD__USAGE_FROM_METRICS && !has)
    return ad__err(err, AD_ECONFIG, "config",
                   "placement.usage_source: metrics, but the %s metrics backend has no "
                   "per-service query (the autodeploy_services beacon measures services: use "
                   "beacon or auto)", ad__metrics_backend(f->metrics));
  f->usage_metrics = f->c.usage_source == AD__USAGE_FROM_METRICS ||
                     (f->c.usage_source == AD__USAGE_FROM_AUTO && has);
  f->next_usage_ms = ad__now_ms() + 5000; /* as the cycle: let the registry settle */
  return 0;
}

/* The service's systemd unit: its document's `unit`, else the name
 * autodeploy.gameserver gives it, game-<platform>-<server_no>.service. */
static void unit_of(const json_t *svc, char *buf, size_t n)
{
  const json_t *no = json_object_get(svc, "server_no");
  if (*ad__jstr(svc, "unit"))
    snprintf(buf, n, "%s", ad__jstr(svc, "unit"));
  else if (json_is_integer(no))
    snprintf(buf, n, "game-%s-%lld.service", ad__jstr(svc, "platform"),
             (long long)json_integer_value(no));
  else if (*ad__jstr(svc, "platform") && *ad__jstr(svc, "server_no"))
    snprintf(buf, n, "game-%s-%s.service", ad__jstr(svc, "platform"), ad__jstr(svc, "server_no"));
  else
    buf[0] = '\0';
}

/* The services' hosts (minion, private_ip), by host key. NULL + err. */
static json_t *hosts_of(ad__fleet_t *f, const json_t *svcs, ad_error_t *err)
{
  json_t *ids = json_array(), *by = json_object(), *rows = NULL, *d;
  size_t i;
  json_array_foreach(svcs, i, d)
    if (ids && *ad__jstr(d, "host"))
      json_array_append_new(ids, json_string(ad__jstr(d, "host")));
  if (ids && by)
    rows = ad__docs_find(f->env.store, f->env.hosts_collection,
                         json_pack("{s:{s:O}}", "_id", "$in", ids),
                         json_pack("{s:{s:i,s:i}}", "projection", "minion", 1, "private_ip", 1),
                         err);
  else
    ad__err(err, AD_ENOMEM, "fleet", "no memory");
  json_decref(ids);
  json_array_foreach(rows, i, d)
    json_object_set(by, ad__jstr(d, "_id"), d);
  if (!rows) {
    json_decref(by);
    by = NULL;
  }
  json_decref(rows);
  return by;
}

/* A service's window: [opened, opened + measure_after_hours]. */
static int64_t opened_of(const json_t *svc)
{
  return json_integer_value(json_object_get(svc, "opened_at_ms"));
}

/* Write `u` (taken) as svc's usage while it is placed on its minion. 1
 * written, 0 moved meanwhile, <0 + err. */
static int write_usage(ad__fleet_t *f, const json_t *svc, json_t *u, ad_error_t *err)
{
  int64_t n = ad__docs_update(f->env.store, f->c.services,
                              json_pack("{s:s,s:s}", "_id", ad__jstr(svc, "_id"), "minion",
                                        ad__jstr(svc, "minion")),
                              json_pack("{s:{s:o}}", "$set", "usage", u), err);
  return n < 0 ? (int)AD_EIO : n > 0;
}

/* The per-service query's arguments for `svcs` (opened service documents)
 * into ms[] (strings borrowed from svcs, hosts and units[]), and the union
 * of their windows. */
static void query_args(ad__fleet_t *f, const json_t *svcs, const json_t *hosts, int64_t now,
                       ad__metrics_service_t *ms, char (*units)[200], ad__metrics_query_t *q)
{
  int64_t span = f->c.measure_after_hours * 3600000LL;
  size_t i;
  json_t *d;
  q->from_ms = INT64_MAX;
  q->to_ms = 0;
  json_array_foreach(svcs, i, d) {
    json_t *h = json_object_get(hosts, ad__jstr(d, "host"));
    unit_of(d, units[i], sizeof units[i]);
    ms[i] = (ad__metrics_service_t){
        .key = ad__jstr(d, "_id"),
        .host = {.key = ad__jstr(d, "host"),
                 .minion_id = *ad__jstr(d, "minion") ? ad__jstr(d, "minion") : ad__jstr(h, "minion"),
                 .private_ip = ad__jstr(h, "private_ip")},
        .unit = units[i][0] ? units[i] : NULL};
    int64_t from = opened_of(d), to = from + span < now ? from + span : now;
    q->from_ms = from < q->from_ms ? from : q->from_ms;
    q->to_ms = to > q->to_ms ? to : q->to_ms;
  }
  q->step_ms = f->c.usage_step_s * 1000LL; /* 60 s: the beacon's interval, comparable samples */
  q->want_series = 1;
  q->resources = (1u << AD__RES_CPU) | (1u << AD__RES_MEM);
}

/* Measure `svcs` (opened documents with opened_at_ms, host, minion) in
 * one per-service query and write each one's usage that has enough
 * samples. out (may be NULL): {id: usage | null}. The number written, or
 * <0 + err (the query failed: nothing written). */
static int measure(ad__fleet_t *f, const json_t *svcs, int64_t now, json_t *out, ad_error_t *err)
{
  size_t n = json_array_size(svcs);
  json_t *hosts = n ? hosts_of(f, svcs, err) : NULL;
  ad__metrics_service_t *ms = calloc(n + 1, sizeof *ms);
  char(*units)[200] = calloc(n + 1, sizeof *units);
  ad__metrics_result_t *r = NULL;
  ad__metrics_query_t q = {0};
  int written = 0;
  if (!n)
    goto done;
  if (!hosts) {
    written = err && err->code ? err->code : AD_EIO;
    goto done;
  }
  if (!ms || !units) {
    written = ad__err(err, AD_ENOMEM, "fleet", "no memory");
    goto done;
  }
  query_args(f, svcs, hosts, now, ms, units, &q);
  if (q.to_ms <= q.from_ms) /* opened just now: nothing to read yet */
    goto done;
  f->usage.queries++;
  if ((written = ad__metrics_query_services(f->metrics, ms, n, &q, &r, err)) < 0) {
    f->usage.query_errors++;
    goto done;
  }
  const char *source = ad__metrics_backend(f->metrics);
  for (size_t i = 0; i < n && i < r->n_hosts; i++) {
    const json_t *d = json_array_get(svcs, i);
    const ad__metrics_summary_t *c = &r->hosts[i].res[AD__RES_CPU], *m = &r->hosts[i].res[AD__RES_MEM];
    int64_t from = opened_of(d), to = from + f->c.measure_after_hours * 3600000LL;
    json_t *u = ad__usage_from_series(c->series, c->count, m->series, m->count,
                                      (size_t)f->c.usage_min_samples, from, to, now, source);
    if (out)
      json_object_set(out, ad__jstr(d, "_id"), u ? u : json_null());
    ad_error_t werr = {0};
    int w = u ? write_usage(f, d, u, &werr) : 0;
    if (w < 0)
      AD_LOG_W("fleet", "usage of %.160s: %s", ad__jstr(d, "_id"), werr.message);
    else if (w > 0) {
      f->usage.refreshed++;
      written++;
    }
  }
done:
  ad__metrics_result_free(&r);
  json_decref(hosts);
  free(ms);
  free(units);
  return written;
}

/* Opened services whose window ended within the last day or has not ended,
 * due for a refresh at `now`. NULL + err. */
static json_t *due_services(ad__fleet_t *f, int64_t now, ad_error_t *err)
{
  int64_t since = now - (f->c.measure_after_hours + 24) * 3600000LL;
  json_t *rows = ad__docs_find(f->env.store, f->c.services,
                               json_pack("{s:s,s:{s:I}}", "state", "opened", "opened_at_ms", "$gt",
                                         (json_int_t)since),
                               json_pack("{s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}}", "projection",
                                         "minion", 1, "host", 1, "platform", 1, "server_no", 1,
                                         "unit", 1, "state", 1, "opened_at_ms", 1, "usage", 1),
                               err);
  json_t *due = rows ? json_array() : NULL;
  size_t i;
  json_t *d;
  json_array_foreach(rows, i, d)
    if (due && *ad__jstr(d, "minion") && ad__usage_refresh_due(f, d, now))
      json_array_append(due, d);
  json_decref(rows);
  return due;
}

void ad__usage_metrics_tick(ad__fleet_t *f, int64_t now)
{
  if (!f->usage_metrics || now < f->next_usage_ms)
    return;
  int every = f->c.usage_refresh_s > MIN_EVERY_S ? f->c.usage_refresh_s : MIN_EVERY_S;
  f->next_usage_ms = now + every * 1000LL;
  if (f->c.measure_after_hours == 0)
    return;
  ad_error_t err = {0};
  json_t *due = due_services(f, now, &err);
  int w = due ? measure(f, due, now, NULL, &err) : -1;
  if (w < 0)
    AD_LOG_W("fleet", "usage of %zu opened services from %s: %s (tried again in %d s)",
             json_array_size(due), ad__metrics_backend(f->metrics), err.message, every);
  else if (json_array_size(due))
    AD_LOG_D("fleet", "usage from %s: %zu services due, %d written",
             ad__metrics_backend(f->metrics), json_array_size(due), w);
  json_decref(due);
}

/* service.usage: measure one opened service now from the configured source
 * (whatever usage_refresh_s says) and write its usage when there are
 * enough samples. {service, source, usage | null (too few samples yet),
 * written, min_samples}. */
json_t *ad__service_usage(ad__fleet_t *f, const json_t *args, ad_error_t *err)
{
  const char *id = json_string_value(json_object_get(args, "id"));
  if (!id || !*id)
    return ad__err(err, AD_EINVAL, "args", "id: required (a service id, e.g. qq-s1001)"), NULL;
  json_t *doc = ad__fdoc_get(f, f->c.services, id, err);
  if (!doc)
    return NULL;
  json_t *out = NULL;
  int64_t now = ad__now_ms(), opened = opened_of(doc);
  if (strcmp(ad__jstr(doc, "state"), "opened") || opened <= 0 || !*ad__jstr(doc, "minion")) {
    ad__err(err, AD_ESTATE, "fleet", "service %s is %s: usage is measured once it is opened",
            id, ad__jstr(doc, "state"));
  } else if (f->c.measure_after_hours == 0) {
    ad__err(err, AD_ESTATE, "fleet", "placement.measure_after_hours is 0: no usage is measured");
  } else if (f->usage_metrics) {
    json_t *one = json_pack("[O]", doc), *got = json_object();
    int w = one && got ? measure(f, one, now, got, err) : AD_ENOMEM;
    json_t *u = json_object_get(got, id);
    if (w >= 0)
      out = json_pack("{s:s,s:s,s:O,s:b,s:i}", "service", id, "source",
                      ad__metrics_backend(f->metrics), "usage", u ? u : json_null(), "written",
                      w > 0, "min_samples", f->c.usage_min_samples);
    json_decref(one);
    json_decref(got);
  } else {
    int w = ad__usage_refresh(f, id, ad__jstr(doc, "minion"), opened, now, err);
    json_t *again = w >= 0 ? ad__fdoc_get(f, f->c.services, id, err) : NULL;
    json_t *u = w > 0 ? json_object_get(again, "usage") : NULL;
    out = again ? json_pack("{s:s,s:s,s:O,s:b,s:i}", "service", id, "source",
                            AD__USAGE_SOURCE_BEACON, "usage", u ? u : json_null(), "written",
                            w > 0, "min_samples", f->c.usage_min_samples)
                : NULL;
    json_decref(again);
  }
  json_decref(doc);
  return out;
}
