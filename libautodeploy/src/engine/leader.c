/*
 * leader.c - one engine leads: with several masters on one MongoDB, the
 * periodic loops (the task watchdog, the registry's reconcile and
 * liveness, the placement cycle and the load history's pruning, and the
 * purchase run) run only on the holder of the `leader` lease
 * (store/lease.h). Everything driven by events (job returns, registration,
 * openings, beacons) runs on every master: those writes are keyed or
 * conditional, so the master that sees an event second finds it done.
 *
 * The lease is claimed every leader_lease_s/3 on the monotonic clock; a
 * master that dies is replaced after leader_lease_s + leader_skew_ms. The
 * loops ask ad__engine_leads() before each pass: a pass whose leadership
 * lapsed (the process was paused) is refused and counted, and the cycle's
 * own writes are fenced again one by one (fleet_store.c).
 */
#include <stdio.h>

#include "core/error_private.h"
#include "core/log_private.h"
#include "engine/engine_private.h"

int ad__engine_leader_new(ad_engine_t *eng, ad_error_t *err)
{
  char holder[96];
  ad__lease_holder_name(holder, sizeof holder);
  eng->leader_store = (ad__lease_mongo_t){eng->store, eng->c.leader_collection};
  eng->leader = ad__lease_new(&ad__lease_mongo, &eng->leader_store, "leader", holder,
                              eng->c.leader_lease_s * 1000, eng->c.leader_skew_ms, NULL, NULL);
  return eng->leader ? 0 : ad__err(err, AD_ENOMEM, "engine", "no memory");
}

int ad__engine_leads(ad_engine_t *eng, const char *what)
{
  if (!eng->leader) /* no store: nothing to share, each engine does its own */
    return 1;
  int leads = ad__lease_fence(eng->leader, what) > 0;
  __atomic_add_fetch(leads ? &eng->loop_passes : &eng->loop_skips, 1, __ATOMIC_RELAXED);
  return leads;
}

json_t *ad__engine_leader_stats(ad_engine_t *eng)
{
  json_t *l = ad__lease_stats_json(eng->leader);
  if (l && (json_object_set_new(l, "passes", json_integer(__atomic_load_n(&eng->loop_passes, __ATOMIC_RELAXED))) ||
            json_object_set_new(l, "skipped", json_integer(__atomic_load_n(&eng->loop_skips, __ATOMIC_RELAXED))))) {
    json_decref(l);
    return NULL;
  }
  return l;
}

int64_t ad__engine_fence(void *user, const char *what)
{
  ad_engine_t *eng = user;
  return eng->leader ? ad__lease_fence(eng->leader, what) : 1; /* an ad_call's engine */
}

int64_t ad__engine_leader_tick(ad_engine_t *eng)
{
  ad_error_t err;
  if (ad__lease_claim(eng->leader, NULL, &err) < 0)
    AD_LOG_W("engine", "leader lease: %s (retrying)", err.message);
  return ad__lease_next_ms(eng->leader);
}

void ad__engine_leader_stop(ad_engine_t *eng)
{
  if (eng->leader)
    ad__lease_release(eng->leader); /* the next master need not wait */
}

/* ad_call leader.get: the lease document, as autodeploy.status shows it. */
json_t *ad__engine_leader_get(ad_engine_t *eng, const json_t *args, ad_error_t *err)
{
  (void)args;
  json_t *doc = ad__lease_mongo_get(eng->store, eng->c.leader_collection, "leader", err);
  if (doc)
    json_object_set_new(doc, "lease_s", json_integer(eng->c.leader_lease_s));
  return doc;
}
