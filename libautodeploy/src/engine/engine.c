/*
 * engine.c - the engine's public lifecycle: new, run, stop, destroy.
 * The rest lives by concern next to it (engine_private.h lists the files):
 * configuration and construction in config.c, routes in routes.c, periodic
 * work in timers.c, counters in stats.c, ad_call in commands.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus/bus_private.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "engine/engine_private.h"

ad_engine_t *ad_engine_new(const char *config_json, ad_error_t *err)
{
  json_t *obj = ad__config_parse(config_json, "engine configuration", AD_ECONFIG, err);
  return obj ? ad__engine_from_json(obj, err) : NULL;
}

ad_bus_t *ad_engine_bus(ad_engine_t *eng) { return eng->bus; }

static void set_running(ad_engine_t *eng, int on)
{
  pthread_mutex_lock(&eng->lock);
  eng->running = on;
  pthread_cond_broadcast(&eng->cond);
  pthread_mutex_unlock(&eng->lock);
}

int ad_engine_run(ad_engine_t *eng, ad_error_t *err)
{
  pthread_mutex_lock(&eng->lock);
  int busy = eng->running;
  eng->running = busy ? busy : 1;
  pthread_mutex_unlock(&eng->lock);
  if (busy)
    return ad__err(err, AD_ESTATE, "engine", "engine is already running");
  ad__engine_backfill_init(eng); /* the last run's mark, before we listen */
  /* only a running engine competes for leadership: the short-lived engine
   * of an ad_call (a runner's cycle.run) has none and is fenced by the
   * cycle lease alone */
  int rc = eng->store && !eng->leader ? ad__engine_leader_new(eng, err) : 0;
  if (!rc)
    rc = ad_bus_start(eng->bus, err);
  if (rc) {
    set_running(eng, 0);
    return rc;
  }
  if (eng->kafka && (rc = ad__kafka_start(eng->kafka, err))) {
    ad_bus_stop(eng->bus);
    ad__bus_join(eng->bus);
    set_running(eng, 0);
    return rc;
  }
  AD_LOG_I("engine", "autodeploy %s engine running (sock_dir %s, ipc_mode %s, "
           "%d workers)", ad_version(), eng->c.sock_dir ? eng->c.sock_dir : "-",
           eng->c.ipc_mode ? "tcp" : "ipc", eng->c.workers);
  ad__engine_loop(eng);
  ad__engine_leader_stop(eng);
  ad__kafka_stop(eng->kafka); /* the message in hand finishes; stored offsets committed */
  ad_bus_stop(eng->bus);
  ad__bus_join(eng->bus); /* the reader stops; workers drain the queue first */
  ad__engine_status_publish(eng, "stopped"); /* the status runner says so at once */
  ad__engine_backfill_stop(eng);
  AD_LOG_I("engine", "autodeploy engine stopped");
  set_running(eng, 0);
  return 0;
}

void ad_engine_stop(ad_engine_t *eng)
{
  if (!eng || eng->stop_fd < 0)
    return;
  uint64_t one = 1;
  if (write(eng->stop_fd, &one, sizeof(one)) < 0) {
    /* already signalled */
  }
}

void ad_engine_destroy(ad_engine_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  ad_engine_t *eng = *self_p;
  /* Stop a running ad_engine_run (another thread) and wait for it. */
  ad_engine_stop(eng);
  pthread_mutex_lock(&eng->lock);
  while (eng->running)
    pthread_cond_wait(&eng->cond, &eng->lock);
  pthread_mutex_unlock(&eng->lock);
  ad__serve_destroy(&eng->serve);     /* no reader left on the store */
  ad__registry_stop(eng->registry);   /* queued start events registered, bus alive */
  ad_bus_destroy(&eng->bus);          /* handlers drained first */
  ad__kafka_destroy(&eng->kafka);     /* before the fleet it applies openings to */
  ad__purchase_destroy(&eng->purchase);
  ad__registry_destroy(&eng->registry);
  ad__fleet_destroy(&eng->fleet);
  ad__lease_destroy(&eng->leader);
  ad__returns_destroy(&eng->returns); /* then every return stored or spooled */
  if (eng->notifier)
    ad_notify_flush(eng->notifier, 5000);
  ad_notifier_destroy(&eng->notifier);
  ad__store_destroy(&eng->store);
  if (eng->stop_fd >= 0)
    close(eng->stop_fd);
  ad__config_free(ad__engine_keys, &eng->c);
  pthread_mutex_destroy(&eng->lock);
  pthread_cond_destroy(&eng->cond);
  free(eng);
  *self_p = NULL;
}

void ad_free(void *p) { free(p); }
