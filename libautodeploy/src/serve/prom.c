/*
 * prom.c - the Prometheus text exposition (format 0.0.4) of one snapshot.
 *
 * The snapshot is a JSON object that serve.c assembles per scrape (the
 * fields are listed in docs/api-http.md, "/metrics"):
 *   stats      the engine's counters (bus, returns, tasks, notify, cycle)
 *   tasks      {state: n}          hosts    {state: n}
 *   services   {platform: {state: n}}      orders   {state: n}
 *   reserve    {platform: {target, waiting}}
 *   lease      {holder, until_ms}  store_up 0/1
 *   task_duration {le: [bounds], counts: [cumulative], sum, count}
 *   http       the server's own counters
 * Rendering is pure, so tests/serve/test_prom.c checks it line by line and
 * the Python test runs `promtool check metrics` on a live scrape.
 *
 * Label values are bounded by construction: states and channel names come
 * from fixed vocabularies, platform codes from the operator's platforms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"
#include "store/docs.h"

static void family(FILE *f, const char *name, const char *type, const char *help)
{
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* label values escaped as the format says: backslash, quote, newline */
static void label(FILE *f, const char *k, const char *v)
{
  fprintf(f, "%s=\"", k);
  for (const char *p = v ? v : ""; *p; p++) {
    if (*p == '\\' || *p == '"')
      fputc('\\', f), fputc(*p, f);
    else if (*p == '\n')
      fputs("\\n", f);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

static void num(FILE *f, double v)
{
  if (v == (double)(long long)v)
    fprintf(f, " %lld\n", (long long)v);
  else
    fprintf(f, " %.17g\n", v);
}

/* One unlabelled sample from stats[obj][key] (obj NULL: stats itself). */
static void scalar(FILE *f, const json_t *stats, const char *obj, const char *key,
                   const char *name, const char *type, const char *help)
{
  const json_t *o = obj ? json_object_get(stats, obj) : stats;
  if (!json_is_number(json_object_get(o, key)) && !json_is_boolean(json_object_get(o, key)))
    return;
  family(f, name, type, help);
  fputs(name, f);
  num(f, json_is_boolean(json_object_get(o, key)) ? json_is_true(json_object_get(o, key))
                                                  : ad__jnum(o, key));
}

/* {value: n} as one sample per label value */
static void by_label(FILE *f, const json_t *o, const char *name, const char *lab,
                     const char *help)
{
  family(f, name, "gauge", help);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)o, k, v) {
    fprintf(f, "%s{", name);
    label(f, lab, k);
    fputc('}', f);
    num(f, json_number_value(v));
  }
}

static void bus(FILE *f, const json_t *s)
{
  scalar(f, s, NULL, "events", "autodeploy_bus_events_total", "counter",
         "Events read from the master event bus.");
  scalar(f, s, NULL, "bytes", "autodeploy_bus_read_bytes_total", "counter",
         "Bytes of events read from the bus.");
  scalar(f, s, NULL, "matched", "autodeploy_bus_events_matched_total", "counter",
         "Events that matched a route.");
  scalar(f, s, NULL, "handler_errors", "autodeploy_bus_handler_errors_total", "counter",
         "Route handlers that returned an error.");
  scalar(f, s, NULL, "decode_errors", "autodeploy_bus_decode_errors_total", "counter",
         "Frames that did not decode.");
  scalar(f, s, NULL, "dropped", "autodeploy_bus_events_dropped_total", "counter",
         "Matched events dropped because the worker queue was full (queue_full: drop).");
  scalar(f, s, NULL, "queue_full", "autodeploy_bus_queue_full_total", "counter",
         "Times the worker queue was found full.");
  scalar(f, s, NULL, "queue_depth", "autodeploy_bus_queue_depth", "gauge",
         "Events waiting for a worker.");
  scalar(f, s, NULL, "reconnects", "autodeploy_bus_reconnects_total", "counter",
         "Reconnections to the master's publisher.");
  scalar(f, s, NULL, "connected", "autodeploy_bus_connected", "gauge",
         "1 while connected to the master's publisher.");
  scalar(f, s, NULL, "fanout_sent", "autodeploy_fanout_sent_total", "counter",
         "Events published on the fan-out socket.");
  scalar(f, s, NULL, "fanout_dropped", "autodeploy_fanout_dropped_total", "counter",
         "Events the fan-out socket dropped (slow subscribers).");
  scalar(f, s, NULL, "fired", "autodeploy_bus_fired_total", "counter",
         "Events fired into the master.");
}

static void returns(FILE *f, const json_t *s)
{
  scalar(f, s, "returns", "received", "autodeploy_returns_received_total", "counter",
         "Job returns taken from the bus.");
  scalar(f, s, "returns", "stored", "autodeploy_returns_stored_total", "counter",
         "Job returns written to MongoDB.");
  scalar(f, s, "returns", "spooled", "autodeploy_returns_spooled_total", "counter",
         "Job returns written to the on-disk spool while MongoDB was down.");
  scalar(f, s, "returns", "replayed", "autodeploy_returns_replayed_total", "counter",
         "Spooled job returns replayed into MongoDB.");
  scalar(f, s, "returns", "queued", "autodeploy_returns_queue_depth", "gauge",
         "Job returns waiting for the batcher.");
  scalar(f, s, "returns", "spool_bytes", "autodeploy_returns_spool_bytes", "gauge",
         "Bytes in the on-disk spool.");
  scalar(f, s, "returns", "spool_records", "autodeploy_returns_spool_records", "gauge",
         "Records in the on-disk spool.");
}

static void notify(FILE *f, const json_t *s)
{
  json_t *chans = json_object_get(json_object_get(s, "notify"), "channels");
  if (!json_array_size(chans))
    return;
  static const char *const C[][2] = {{"sent", "autodeploy_notify_sent_total"},
                                     {"failed", "autodeploy_notify_failed_total"},
                                     {"depth", "autodeploy_notify_queue_depth"}};
  for (size_t c = 0; c < 3; c++) {
    family(f, C[c][1], c < 2 ? "counter" : "gauge",
           c == 0 ? "Notifications delivered, per channel."
                  : c == 1 ? "Notifications given up, per channel."
                           : "Notifications waiting, per channel.");
    size_t i;
    json_t *ch;
    json_array_foreach(chans, i, ch) {
      fprintf(f, "%s{", C[c][1]);
      label(f, "channel", json_string_value(json_object_get(ch, "name")));
      fputc(',', f);
      label(f, "type", json_string_value(json_object_get(ch, "type")));
      fputc('}', f);
      num(f, ad__jnum(ch, C[c][0]));
    }
  }
}

static void per_platform(FILE *f, const json_t *snap)
{
  family(f, "autodeploy_services", "gauge", "Services (game servers) by platform and state.");
  const char *p, *st;
  json_t *states, *n;
  json_object_foreach(json_object_get(snap, "services"), p, states) {
    json_object_foreach(states, st, n) {
      fputs("autodeploy_services{", f);
      label(f, "platform", p);
      fputc(',', f);
      label(f, "state", st);
      fputc('}', f);
      num(f, json_number_value(n));
    }
  }
  static const char *const R[][3] = {
      {"target", "autodeploy_reserve_target", "Reserve target (idle services wanted) per platform, from the last cycle (whoever ran it)."},
      {"waiting", "autodeploy_services_waiting", "Services waiting for resources per platform."},
      {"waited_seconds", "autodeploy_services_waited_max_seconds", "Longest wait of a service waiting for resources, per platform."}};
  for (size_t r = 0; r < 3; r++) {
    family(f, R[r][1], "gauge", R[r][2]);
    json_t *o;
    json_object_foreach(json_object_get(snap, "reserve"), p, o) {
      if (!json_is_number(json_object_get(o, R[r][0])))
        continue;
      fprintf(f, "%s{", R[r][1]);
      label(f, "platform", p);
      fputc('}', f);
      num(f, ad__jnum(o, R[r][0]));
    }
  }
}

static void histogram(FILE *f, const json_t *h, const char *name, const char *help)
{
  json_t *le = json_object_get(h, "le"), *counts = json_object_get(h, "counts");
  if (!json_is_array(le) || json_array_size(le) != json_array_size(counts))
    return;
  family(f, name, "histogram", help);
  char b[64];
  size_t i;
  json_t *v;
  json_array_foreach(le, i, v) {
    snprintf(b, sizeof b, "%g", json_number_value(v));
    fprintf(f, "%s_bucket{le=\"%s\"}", name, b);
    num(f, json_number_value(json_array_get(counts, i)));
  }
  fprintf(f, "%s_bucket{le=\"+Inf\"}", name);
  num(f, ad__jnum(h, "count"));
  fprintf(f, "%s_sum", name);
  num(f, ad__jnum(h, "sum"));
  fprintf(f, "%s_count", name);
  num(f, ad__jnum(h, "count"));
}

static void cycle_and_lease(FILE *f, const json_t *snap)
{
  const json_t *s = json_object_get(snap, "stats");
  scalar(f, s, "cycle", "last_seconds", "autodeploy_cycle_duration_seconds", "gauge",
         "Duration of the last reserve and placement cycle.");
  scalar(f, s, "cycle", "last_success_time", "autodeploy_cycle_last_success_timestamp_seconds",
         "gauge", "When the last cycle that ran finished, as a Unix time.");
  scalar(f, s, "cycle", "runs", "autodeploy_cycle_runs_total", "counter",
         "Cycles this engine ran.");
  scalar(f, s, "cycle", "failures", "autodeploy_cycle_failures_total", "counter",
         "Cycles that failed (the database unreachable, ...).");
  const json_t *l = json_object_get(snap, "lease");
  if (json_is_object(l)) {
    family(f, "autodeploy_cycle_lease_info", "gauge",
           "The cycle lease holder (host:pid:handle); 1 while held, and mine=1 when it is this engine.");
    fputs("autodeploy_cycle_lease_info{", f);
    label(f, "holder", json_string_value(json_object_get(l, "holder")));
    fputc(',', f);
    label(f, "mine", json_is_true(json_object_get(l, "mine")) ? "1" : "0");
    fputc('}', f);
    num(f, json_is_true(json_object_get(l, "held")));
  }
}

char *ad__serve_metrics_text(const json_t *snap)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f)
    return NULL;
  const json_t *s = json_object_get(snap, "stats");
  family(f, "autodeploy_up", "gauge", "1: the engine answers; see autodeploy_store_up for MongoDB.");
  fputs("autodeploy_up 1\n", f);
  family(f, "autodeploy_store_up", "gauge", "1 when MongoDB answered this scrape's queries.");
  fputs("autodeploy_store_up", f);
  num(f, ad__jnum(snap, "store_up"));
  bus(f, s);
  returns(f, s);
  if (json_is_object(json_object_get(snap, "tasks")))
    by_label(f, json_object_get(snap, "tasks"), "autodeploy_tasks", "state",
             "Deploy tasks by state.");
  histogram(f, json_object_get(snap, "task_duration"), "autodeploy_task_duration_seconds",
            "Duration of deploy tasks that ended in this engine, from creation to the end.");
  if (json_is_object(json_object_get(snap, "hosts")))
    by_label(f, json_object_get(snap, "hosts"), "autodeploy_hosts", "state",
             "Registered hosts by state.");
  if (json_is_object(json_object_get(snap, "services")))
    per_platform(f, snap);
  if (json_is_object(json_object_get(snap, "orders")))
    by_label(f, json_object_get(snap, "orders"), "autodeploy_orders", "state",
             "Purchase orders by state.");
  cycle_and_lease(f, snap);
  notify(f, s);
  const json_t *h = json_object_get(snap, "http");
  scalar(f, h, NULL, "requests", "autodeploy_http_requests_total", "counter",
         "HTTP requests answered.");
  scalar(f, h, NULL, "unauthorized", "autodeploy_http_unauthorized_total", "counter",
         "HTTP requests refused for a missing or wrong bearer token.");
  if (fclose(f) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}
