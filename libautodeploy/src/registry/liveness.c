/*
 * liveness.c - is a host there? The master's own TCP view of its publish
 * port (/proc/net/tcp, saltfiles.c) says; presence events only ask for a
 * look soon. ready|draining <-> unreachable (docs/registration.md).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "registry/registry_private.h"
#include "registry/saltfiles.h"
#include "store/docs.h"

static int has_ip(const uint32_t *ips, size_t n, const char *s)
{
  uint32_t a;
  if (ad__ipv4_parse(s, &a))
    return 0;
  a = htonl(a);
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (ips[mid] == a)
      return 1;
    if (ips[mid] < a)
      lo = mid + 1;
    else
      hi = mid;
  }
  return 0;
}

/* The hosts connected now get last_seen_ms = now (in `hosts` and stored).
 * An address claimed by a quarantined minion is contested: its connection
 * proves nothing about the registered minion. */
static void mark_connected(ad__registry_t *reg, json_t *hosts, const uint32_t *ips, size_t n,
                           int64_t now)
{
  json_t *q = ad__hosts_find(reg, json_pack("{s:s}", "state", "quarantined"),
                             json_pack("{s:{s:i}}", "projection", "private_ip", 1), NULL);
  json_t *ids = json_array();
  size_t i, k;
  json_t *h, *qd;
  json_array_foreach(hosts, i, h) {
    const char *ip = ad__jstr(h, "private_ip");
    int contested = 0;
    json_array_foreach(q, k, qd) contested |= !strcmp(ad__jstr(qd, "private_ip"), ip);
    if (!contested && has_ip(ips, n, ip)) {
      json_array_append_new(ids, json_string(ad__jstr(h, "_id")));
      json_object_set_new(h, "last_seen_ms", json_integer(now));
    }
  }
  if (json_array_size(ids))
    ad__hosts_mark_seen(reg, ids, now);
  json_decref(ids);
  json_decref(q);
}

/* ready|draining -> unreachable when unseen for unreachable_after, back when seen */
static void judge(ad__registry_t *reg, json_t *h, int64_t now)
{
  const char *st = ad__jstr(h, "state"), *key = ad__jstr(h, "_id");
  int64_t age = now - json_integer_value(json_object_get(h, "last_seen_ms"));
  int fresh = age <= reg->c.unreachable_after * 1000LL;
  if (!fresh && (!strcmp(st, "ready") || !strcmp(st, "draining"))) {
    char cause[300];
    snprintf(cause, sizeof cause, "no connection from %s to the publish port for %llds "
             "(unreachable_after %d)", ad__jstr(h, "private_ip"), (long long)(age / 1000),
             reg->c.unreachable_after);
    json_t *set = json_pack("{s:s,s:s,s:s}", "state", "unreachable",
                            "state_before_unreachable", st, "reason", cause);
    if (set && ad__hosts_cas(reg, h, set, "unreachable", cause, "autodeploy/liveness", NULL) == 1)
      ad__reg_alert(reg, key, "unreachable", cause);
    json_decref(set);
  } else if (fresh && !strcmp(st, "unreachable")) {
    const char *back = ad__jstr(h, "state_before_unreachable");
    json_t *set = json_pack("{s:s,s:s}", "state", *back ? back : "ready", "reason",
                            "reachable again");
    if (set)
      ad__hosts_cas(reg, h, set, "reachable", "connected to the publish port again",
                    "autodeploy/liveness", NULL);
    json_decref(set);
  }
}

void ad__reg_liveness(ad__registry_t *reg)
{
  uint32_t *ips = NULL;
  size_t n = 0;
  ad_error_t err;
  if (ad__salt_connected_ips(NULL, reg->env.publish_port, &ips, &n, &err)) {
    AD_LOG_E("registry", "liveness: %s", err.message);
    return;
  }
  int64_t now = ad__now_ms();
  json_t *hosts = ad__hosts_find(
      reg, json_pack("{s:{s:[s,s,s,s,s]}}", "state", "$in", "ready", "draining", "unreachable",
                     "initializing", "init_failed"),
      json_pack("{s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i}}", "projection", "state", 1, "private_ip", 1,
                "last_seen_ms", 1, "rev", 1, "history", 1, "state_before_unreachable", 1,
                "minion", 1), &err);
  mark_connected(reg, hosts, ips, n, now);
  size_t i;
  json_t *h;
  json_array_foreach(hosts, i, h) judge(reg, h, now);
  json_decref(hosts);
  free(ips);
}

int ad__registry_on_presence(ad__registry_t *reg, ad_event_t *ev)
{
  /* a hint only (forgeable, and per address): look at the master's own
   * view soon, at most once a second */
  reg->next_live_ms = ad__now_ms() + 1000;
  return 0;
}

int ad__registry_on_ping(ad__registry_t *reg, ad_event_t *ev)
{
  return 0; /* liveness comes from the master's TCP view; see docs/registration.md */
}
