/*
 * status.c - the engine's health, for `salt-run autodeploy.status`.
 *
 * The runner runs in another process than the engine, so the engine
 * publishes what only it knows (bus, returns and spool counters, the
 * notifier's queues, its last cycle) as one document per master in
 * status_collection, every status_interval seconds and once more when it
 * stops. The `status` command reads that document, judges the heartbeat
 * (older than STALE_INTERVALS intervals: the engine is down) and adds what
 * the store knows: tasks by state, services by state per platform, waiting
 * services, orders by state, the cycle lease (docs/status.md).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "engine/engine_private.h"
#include "store/bson_json.h"
#include "store/docs.h"
#include "store/group.h"

/* A heartbeat older than this many intervals means the engine is down. */
#define STALE_INTERVALS 3
/* The purchase loop's collection; counted by state when it exists. */
#define ORDERS_COLLECTION "orders"

const char *ad__engine_master_id(ad_engine_t *eng)
{
  if (eng->c.master_id && eng->c.master_id[0])
    return eng->c.master_id;
  if (!eng->status.host[0] && gethostname(eng->status.host, sizeof eng->status.host - 1))
    strcpy(eng->status.host, "localhost");
  return eng->status.host;
}

static json_t *parse_owned(char *text)
{
  json_t *j = text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  return j ? j : json_null();
}

/* events/s since the previous publish (since the start for the first). */
static double events_rate(ad_engine_t *eng, const json_t *stats)
{
  int64_t now = ad__mono_ms(), ev = json_integer_value(json_object_get(stats, "events"));
  double rate = now > eng->status.prev_mono ? (ev - eng->status.prev_events) * 1000.0 /
                                                  (double)(now - eng->status.prev_mono)
                                            : 0.0;
  eng->status.prev_mono = now;
  eng->status.prev_events = ev;
  return rate < 0 ? 0 : rate;
}

static json_t *status_doc(ad_engine_t *eng, const char *state)
{
  char iso[32], started[32], host[256] = "";
  int64_t now = ad__now_ms();
  ad__iso_ms(now, iso);
  ad__iso_ms(eng->status.started_ms, started);
  gethostname(host, sizeof host - 1);
  json_t *stats = parse_owned(ad_engine_stats_json(eng));
  json_t *doc = json_pack(
      "{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:I,s:i,s:f,s:o,s:o,s:o}", "_id",
      ad__engine_master_id(eng), "master", ad__engine_master_id(eng), "state", state, "host",
      host, "pid", (json_int_t)getpid(), "version", ad_version(), "started_at", started,
      "heartbeat", iso, "heartbeat_ms", (json_int_t)now, "interval_s", eng->c.status_interval,
      "events_per_s", events_rate(eng, stats), "stats", stats, "notify",
      eng->notifier ? parse_owned(ad_notify_stats_json(eng->notifier)) : json_null(),
      "last_cycle", eng->fleet ? ad__fleet_last_cycle_summary(eng->fleet) : json_null());
  return doc;
}

/* replaceOne({_id}, doc, upsert). 0 or <0 + err. */
static int put_doc(ad_engine_t *eng, const json_t *doc, ad_error_t *err)
{
  bson_t *b = ad__json_to_bson(doc, err);
  if (!b)
    return AD_EINVAL;
  bson_t *q = BCON_NEW("_id", BCON_UTF8(ad__engine_master_id(eng)));
  bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
  mongoc_client_t *c = ad__store_pop(eng->store);
  mongoc_collection_t *coll = ad__store_coll(eng->store, c, eng->c.status_collection);
  bson_error_t be;
  int rc = 0;
  if (!mongoc_collection_replace_one(coll, q, b, opts, NULL, &be))
    rc = ad__err(err, ad__store_error_is_transient(&be) ? AD_ECONNECT : AD_EIO, "store",
                 "writing %s.%s: %s", ad__store_db(eng->store), eng->c.status_collection,
                 be.message);
  mongoc_collection_destroy(coll);
  ad__store_push(eng->store, c);
  bson_destroy(opts);
  bson_destroy(q);
  bson_destroy(b);
  return rc;
}

void ad__engine_status_publish(ad_engine_t *eng, const char *state)
{
  if (!eng->store || eng->c.status_interval <= 0)
    return;
  /* the last write failed: the "stopped" one would wait out the server
   * selection timeout while the master waits for the engine to stop */
  if (eng->status.failing && !strcmp(state, "stopped"))
    return;
  if (!eng->status.started_ms) {
    eng->status.started_ms = ad__now_ms();
    eng->status.prev_mono = ad__mono_ms();
  }
  ad_error_t err;
  json_t *doc = status_doc(eng, state);
  int rc = doc ? put_doc(eng, doc, &err) : ad__err(&err, AD_ENOMEM, "engine", "no memory");
  json_decref(doc);
  /* one line when publishing starts failing, one when it works again */
  if (rc && !eng->status.failing)
    AD_LOG_W("engine", "status document not written (salt-run autodeploy.status will say "
             "the engine is down): %s", err.message);
  else if (!rc && eng->status.failing)
    AD_LOG_I("engine", "status document written again");
  eng->status.failing = rc != 0;
}

/* ---------------------------------------------------------------- command */

/* {value-of-field: count} from ad__store_count_by rows. */
static json_t *by_state(ad_engine_t *eng, const char *coll, const char *field, ad_error_t *err)
{
  const char *fields[] = {field};
  json_t *rows = ad__store_count_by(eng->store, coll, NULL, fields, 1, err);
  if (!rows)
    return NULL;
  json_t *out = json_object(), *row;
  size_t i;
  json_array_foreach(rows, i, row) {
    const char *v = ad__jstr(row, field);
    json_object_set(out, v[0] ? v : "(none)", json_object_get(row, "count"));
  }
  json_decref(rows);
  return out;
}

static json_t *orders(ad_engine_t *eng, ad_error_t *err)
{
  int has = ad__store_has_collection(eng->store, ORDERS_COLLECTION, err);
  if (has < 0)
    return NULL;
  if (!has)
    return json_null();
  return by_state(eng, ORDERS_COLLECTION, "state", err);
}

/* The engine's verdict from its document (NULL: none). */
static json_t *engine_verdict(const char *master, const json_t *doc)
{
  if (!doc)
    return json_pack("{s:s,s:s,s:n,s:n,s:s++}", "state", "down", "master", master, "heartbeat",
                     "age_s", "message", "the autodeploy engine has never reported on this master "
                     "(no status document for ", master, "): is it in the master's engines and "
                     "running? see the master log");
  int64_t at = json_integer_value(json_object_get(doc, "heartbeat_ms"));
  int64_t interval = json_integer_value(json_object_get(doc, "interval_s"));
  double age = (ad__now_ms() - at) / 1000.0;
  const char *said = ad__jstr(doc, "state");
  const char *state = !strcmp(said, "stopped") ? "down"
                      : age > STALE_INTERVALS * (double)(interval > 0 ? interval : 1) ? "down"
                                                                                      : "up";
  char msg[512];
  if (!strcmp(said, "stopped"))
    snprintf(msg, sizeof msg, "the autodeploy engine stopped at %s (pid %lld on %s); figures "
             "are from then", ad__jstr(doc, "heartbeat"),
             (long long)json_integer_value(json_object_get(doc, "pid")), ad__jstr(doc, "host"));
  else if (!strcmp(state, "down"))
    snprintf(msg, sizeof msg, "the autodeploy engine is DOWN: no heartbeat for %.0f s (it writes "
             "one every %lld s; pid %lld on %s); figures are from its last heartbeat at %s",
             age, (long long)interval, (long long)json_integer_value(json_object_get(doc, "pid")),
             ad__jstr(doc, "host"), ad__jstr(doc, "heartbeat"));
  else
    snprintf(msg, sizeof msg, "the autodeploy engine is up (pid %lld on %s, since %s)",
             (long long)json_integer_value(json_object_get(doc, "pid")), ad__jstr(doc, "host"),
             ad__jstr(doc, "started_at"));
  return json_pack("{s:s,s:s,s:O?,s:f,s:O?,s:O?,s:O?,s:O?,s:s}", "state", state, "master", master,
                   "heartbeat", json_object_get(doc, "heartbeat"), "age_s", age, "pid",
                   json_object_get(doc, "pid"), "host", json_object_get(doc, "host"), "version",
                   json_object_get(doc, "version"), "started_at", json_object_get(doc, "started_at"),
                   "message", msg);
}

static json_t *bus_part(const json_t *doc)
{
  const json_t *s = json_object_get(doc, "stats");
  if (!s)
    return json_null();
  return json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?}", "connected",
                   json_object_get(s, "connected"), "framing", json_object_get(s, "framing"),
                   "events_per_s", json_object_get(doc, "events_per_s"), "events",
                   json_object_get(s, "events"), "matched", json_object_get(s, "matched"),
                   "dropped", json_object_get(s, "dropped"), "queue_depth",
                   json_object_get(s, "queue_depth"), "reconnects",
                   json_object_get(s, "reconnects"));
}

static json_t *returns_part(const json_t *doc, json_t **spool)
{
  const json_t *r = json_object_get(json_object_get(doc, "stats"), "returns");
  *spool = json_null();
  if (!r)
    return json_null();
  *spool = json_pack("{s:O?,s:O?,s:O?}", "records", json_object_get(r, "spool_records"), "bytes",
                     json_object_get(r, "spool_bytes"), "oldest", json_object_get(r, "spool_oldest"));
  return json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?}", "stored", json_object_get(r, "stored"),
                   "received", json_object_get(r, "received"), "spooled",
                   json_object_get(r, "spooled"), "queued", json_object_get(r, "queued"),
                   "store_down", json_object_get(r, "store_down"));
}

/* Per channel: name, type, queue, sent, failed, last_error(_at). */
static json_t *notify_part(const json_t *doc)
{
  const json_t *n = json_object_get(doc, "notify");
  json_t *out = json_array(), *ch;
  size_t i;
  json_array_foreach(json_object_get(n, "channels"), i, ch)
    json_array_append_new(out, json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?}", "name",
                                         json_object_get(ch, "name"), "type",
                                         json_object_get(ch, "type"), "queue",
                                         json_object_get(ch, "depth"), "sent",
                                         json_object_get(ch, "sent"), "failed",
                                         json_object_get(ch, "failed"), "last_error",
                                         json_object_get(ch, "last_error"), "last_error_at",
                                         json_object_get(ch, "last_error_at")));
  return out;
}

/* services {platform: {state: n}} with each platform's reserve target from
 * the last cycle */
static void add_reserve_targets(json_t *services, const json_t *cycle)
{
  const char *code;
  json_t *p;
  json_object_foreach(json_object_get(cycle, "platforms"), code, p) {
    json_t *per = json_object_get(services, code);
    if (!per)
      json_object_set_new(services, code, per = json_object());
    json_object_set(per, "reserve_target", json_object_get(p, "reserve_target"));
  }
}

static json_t *fleet_part(ad_engine_t *eng, json_t *out, const json_t *cycle, ad_error_t *err)
{
  if (!eng->fleet) {
    json_object_set_new(out, "services", json_null());
    json_object_set_new(out, "waiting", json_null());
    json_object_set_new(out, "lease", json_null());
    return out;
  }
  json_t *f = ad__fleet_status(eng->fleet, err);
  if (!f)
    return NULL;
  add_reserve_targets(json_object_get(f, "services"), cycle);
  json_object_update(out, f);
  json_decref(f);
  return out;
}

json_t *ad__engine_status(ad_engine_t *eng, const json_t *args, ad_error_t *err)
{
  const json_t *m = json_object_get(args, "master");
  if (m && !json_is_null(m) && (!json_is_string(m) || !json_string_length(m)))
    return ad__err(err, AD_EINVAL, "args", "master: a master id (text)"), NULL;
  const char *master = m && !json_is_null(m) ? json_string_value(m) : ad__engine_master_id(eng);
  if (eng->c.status_interval <= 0)
    return ad__err(err, AD_ECONFIG, "config",
                   "status_interval: 0 (the engine publishes no status); set it > 0"), NULL;
  json_t *rows = ad__docs_find(eng->store, eng->c.status_collection,
                               json_pack("{s:s}", "_id", master), NULL, err);
  if (!rows)
    return NULL;
  json_t *doc = json_array_get(rows, 0), *spool = NULL;
  json_t *cycle = json_object_get(doc, "last_cycle");
  json_t *returns = returns_part(doc, &spool);
  json_t *out = json_pack("{s:o,s:o,s:o,s:o,s:O,s:o}", "engine", engine_verdict(master, doc), "bus",
                          bus_part(doc), "spool", spool, "returns", returns, "cycle",
                          cycle ? cycle : json_null(), "notify", notify_part(doc));
  json_t *tasks = out ? by_state(eng, eng->c.tasks_collection, "state", err) : NULL;
  json_t *ord = tasks ? orders(eng, err) : NULL;
  if (!ord || json_object_set_new(out, "tasks", tasks) ||
      json_object_set_new(out, "orders", ord) || !fleet_part(eng, out, cycle, err)) {
    if (!ord)
      json_decref(tasks);
    json_decref(out);
    out = NULL;
  }
  json_decref(rows);
  return out;
}
