/*
 * routes.c - what autodeploy listens to: one table of {tag pattern,
 * handler}. The bus's glob router calls each handler directly; a handler
 * does not look at the tag again to find out which event it got.
 *
 * Minion start and job returns are logged as well as handled, and
 * `log_events` mirrors matching events into the log for operators.
 */
#include <string.h>

#include "core/log_private.h"
#include "engine/engine_private.h"

/* the task system's on_end: host init tasks, service deploy tasks */
void ad__engine_on_task_end(void *user, const json_t *task)
{
  ad_engine_t *eng = user;
  if (eng->registry)
    ad__registry_task_end(eng->registry, task);
  if (eng->fleet)
    ad__fleet_task_end(eng->fleet, task);
  if (eng->serve)
    ad__engine_http_task_end(eng, task);
}

void ad__engine_alert(void *user, const char *title, const char *text, const char *dedup)
{
  ad_engine_t *eng = user;
  ad_error_t err;
  AD_LOG_W("alert", "%s", title);
  if (eng->notifier && ad_notify_send(eng->notifier, title, text, dedup, &err))
    AD_LOG_E("alert", "not sent: %s", err.message);
}

static int on_minion_start(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  if (eng->registry)
    ad__registry_on_start(eng->registry, ev);
  const char *id;
  size_t n;
  if (ad_event_get_str(ev, "id", &id, &n) != 0) {
    AD_LOG_W("engine", "%s without an id", ad_event_tag(ev));
    return 1;
  }
  AD_LOG_I("engine", "minion %.*s started (%s)", (int)n, id, ad_event_tag(ev));
  return 0;
}

static int on_job_return(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  if (eng->returns && ad__returns_handle(eng->returns, ev))
    return 1;
  if (eng->tasks.store && ad_event_find(ev, "metadata:autodeploy_task"))
    return ad__tasks_on_return(&eng->tasks, ev);
  const char *id = "", *jid = "", *fun = "";
  size_t idn = 0, jidn = 0, funn = 0;
  int64_t retcode = -1;
  ad_event_get_str(ev, "id", &id, &idn);
  ad_event_get_str(ev, "jid", &jid, &jidn);
  ad_event_get_str(ev, "fun", &fun, &funn);
  ad_event_get_int(ev, "retcode", &retcode);
  AD_LOG_D("engine", "job %.*s %.*s returned from %.*s, retcode %lld",
           (int)jidn, jid, (int)funn, fun, (int)idn, id, (long long)retcode);
  return 0;
}

static int on_job_new(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  return eng->tasks.store ? ad__tasks_on_new(&eng->tasks, ev) : 0;
}

static int on_intervene(ad_event_t *ev, void *user)
{
  ad_engine_t *eng = user;
  return eng->tasks.store ? ad__tasks_on_intervene(&eng->tasks, ev) : 0;
}

/* The registry's and the fleet's events: nothing to do when that part is
 * not configured (no mongo_uri, registry disabled, no placement). */
#define FORWARD(name, part, fn)                    \
  static int name(ad_event_t *ev, void *user)      \
  {                                                \
    ad_engine_t *eng = user;                       \
    return eng->part ? fn(eng->part, ev) : 0;      \
  }
FORWARD(on_refresh, registry, ad__registry_on_refresh)
FORWARD(on_ping, registry, ad__registry_on_ping)
FORWARD(on_presence, registry, ad__registry_on_presence)
FORWARD(on_key, registry, ad__registry_on_key)
FORWARD(on_opened, fleet, ad__fleet_on_opened)
FORWARD(on_beacon, fleet, ad__fleet_on_beacon)
#undef FORWARD

static int on_logged_event(ad_event_t *ev, void *user)
{
  AD_LOG_I("event", "%s", ad_event_tag(ev));
  return 0;
}

static const struct {
  const char *pattern;
  ad_handler_fn fn;
} ROUTES[] = {
    {"salt/minion/*/start", on_minion_start},
    {"salt/job/*/ret/*", on_job_return},
    {"salt/job/*/new", on_job_new},
    {"autodeploy/intervene/*", on_intervene},
    {"minion/refresh/*", on_refresh},
    {"minion_ping", on_ping},
    {"salt/presence/*", on_presence},
    {"salt/key", on_key},
    {"autodeploy/service/*/opened", on_opened},
    {"salt/beacon/*", on_beacon},
    {"autodeploy/order/*/approve", ad__engine_on_order_approve},
    {"autodeploy/order/*/reject", ad__engine_on_order_reject},
    {"autodeploy/order/*/placed", ad__engine_on_order_placed},
};

int ad__engine_routes_add(ad_engine_t *eng, ad_error_t *err)
{
  for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
    int rc = ad_bus_on(eng->bus, ROUTES[i].pattern, ROUTES[i].fn, eng, err);
    if (rc)
      return rc;
  }
  if (eng->c.log_events)
    return ad_bus_on(eng->bus, eng->c.log_events, on_logged_event, eng, err);
  return 0;
}
