/*
 * classify.c - the registration decision as a pure function: the records
 * the store holds for a key and a minion, the facts just read, the time and
 * the config in; one action and its cause out. No I/O (decide.c gathers the
 * records before and applies the action after), so every case is a unit
 * test. The rules are docs/registration.md's:
 *
 *   nobody holds the key:
 *     the minion has no live host              -> new
 *     the minion's live host has another key   -> move (same minion, new address)
 *   the minion itself holds the key:
 *     the host is retired                      -> retired (refused: left retired)
 *     key or machine-id changed                -> reinstall
 *     still registering                        -> register
 *     a periodic look with nothing new         -> unchanged (last_seen only)
 *     otherwise                                -> seen (back from unreachable, or no change)
 *   another minion holds the key:
 *     holder retired, its key no longer accepted,
 *     or unseen for takeover_after             -> takeover
 *     otherwise (live, key accepted)           -> conflict (quarantine)
 */
#include <stdio.h>
#include <string.h>

#include "registry/registry_private.h"
#include "store/docs.h"

static const char *const NAMES[] = {
    [AD__REG_NEW] = "new",           [AD__REG_MOVE] = "move",
    [AD__REG_RETIRED] = "retired",   [AD__REG_REINSTALL] = "reinstall",
    [AD__REG_REGISTER] = "register", [AD__REG_UNCHANGED] = "unchanged",
    [AD__REG_SEEN] = "seen",         [AD__REG_CONFLICT] = "conflict",
    [AD__REG_TAKEOVER] = "takeover",
};

const char *ad__reg_action_name(ad__reg_action_t a)
{
  return (unsigned)a < sizeof NAMES / sizeof NAMES[0] ? NAMES[a] : "?";
}

/* Why the same host counts as reinstalled, or NULL. */
static const char *reinstalled(const json_t *doc, const json_t *facts, const char *fp)
{
  const char *old_fp = ad__jstr(doc, "key_fingerprint");
  if (*old_fp && strcmp(old_fp, fp))
    return "minion key changed";
  const char *om = ad__jstr(doc, "machine_id"), *nm = ad__jstr(facts, "machine_id");
  if (*om && *nm && strcmp(om, nm))
    return "machine-id changed";
  return NULL;
}

/* Do the stored facts equal the new ones (bookkeeping fields aside)? The
 * new fields are the facts without `key`, with key_fingerprint = fp. */
static int same_facts(const json_t *doc, const json_t *facts, const char *fp)
{
  static const char *const SKIP[] = {"key", "key_fingerprint", "last_seen", "last_seen_ms",
                                     "last_registered_at", NULL};
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)facts, k, v) {
    int skip = 0;
    for (int i = 0; SKIP[i]; i++)
      skip |= !strcmp(k, SKIP[i]);
    if (!skip && !json_equal(v, json_object_get(doc, k)))
      return 0;
  }
  const char *stored = json_string_value(json_object_get(doc, "key_fingerprint"));
  return stored && !strcmp(stored, fp);
}

static void nobody_holds(const ad__reg_records_t *r, const json_t *facts, const char *fp,
                         const char *why, ad__reg_decision_t *d)
{
  const char *id = ad__jstr(facts, "minion"), *key = ad__jstr(facts, "key");
  if (!r->prev) {
    d->action = AD__REG_NEW;
    snprintf(d->cause, sizeof d->cause, "minion %s registered (%s; %s, ip rule: %s)", id, why,
             key, ad__jstr(facts, "ip_rule"));
    return;
  }
  d->action = AD__REG_MOVE;
  d->reinstall = reinstalled(r->prev, facts, fp);
  snprintf(d->cause, sizeof d->cause, "minion %s moved from %s (%s) to %s (%s)%s%s", id,
           ad__jstr(r->prev, "_id"), ad__jstr(r->prev, "private_ip"), key,
           ad__jstr(facts, "private_ip"), d->reinstall ? "; " : "",
           d->reinstall ? d->reinstall : "");
}

static void minion_holds(const ad__reg_records_t *r, const json_t *facts, const char *fp,
                         const char *why, ad__reg_decision_t *d)
{
  const char *id = ad__jstr(facts, "minion"), *state = ad__jstr(r->by_key, "state");
  d->reinstall = reinstalled(r->by_key, facts, fp);
  if (!strcmp(state, "retired")) {
    d->action = AD__REG_RETIRED;
    d->reinstall = NULL;
    snprintf(d->cause, sizeof d->cause, "minion %s started on a retired host (%s): left retired",
             id, why);
  } else if (d->reinstall || !strcmp(state, "registering")) {
    d->action = d->reinstall ? AD__REG_REINSTALL : AD__REG_REGISTER;
    snprintf(d->cause, sizeof d->cause, "%s (%s)", d->reinstall ? d->reinstall : "registered",
             why);
  } else if (strcmp(state, "unreachable") && same_facts(r->by_key, facts, fp) &&
             (!strcmp(why, "reconcile") || !strcmp(why, "key event"))) {
    d->action = AD__REG_UNCHANGED; /* no revision, no history, no push */
  } else {
    d->action = AD__REG_SEEN;
    snprintf(d->cause, sizeof d->cause, "minion %s seen (%s): %s", id, why,
             !strcmp(state, "unreachable") ? "reachable again" : "no change needed");
  }
}

/* Is the minion holding the key gone? Says why in d->gone either way. */
static int holder_gone(const ad__reg_records_t *r, int64_t now, const ad__reg_conf_t *c,
                       ad__reg_decision_t *d)
{
  const char *old = ad__jstr(r->by_key, "minion");
  if (!strcmp(ad__jstr(r->by_key, "state"), "retired")) {
    snprintf(d->gone, sizeof d->gone, "host was retired");
    return 1;
  }
  if (!r->holder_key_accepted) {
    snprintf(d->gone, sizeof d->gone, "key of %s is no longer accepted", old);
    return 1;
  }
  int64_t age = now - json_integer_value(json_object_get(r->by_key, "last_seen_ms"));
  if (age > c->takeover_after * 1000LL) {
    snprintf(d->gone, sizeof d->gone, "%s not seen for %llds (takeover_after %d)", old,
             (long long)(age / 1000), c->takeover_after);
    return 1;
  }
  snprintf(d->gone, sizeof d->gone, "%s was seen %llds ago and its key is accepted", old,
           (long long)(age / 1000));
  return 0;
}

static void other_holds(const ad__reg_records_t *r, const json_t *facts, int64_t now,
                        const ad__reg_conf_t *c, ad__reg_decision_t *d)
{
  const char *id = ad__jstr(facts, "minion"), *key = ad__jstr(facts, "key");
  const char *holder = ad__jstr(r->by_key, "minion");
  if (holder_gone(r, now, c, d)) {
    d->action = AD__REG_TAKEOVER;
    snprintf(d->cause, sizeof d->cause, "minion %s takes over %s from %s: %s", id, key, holder,
             d->gone);
  } else {
    d->action = AD__REG_CONFLICT;
    snprintf(d->cause, sizeof d->cause, "%s is held by minion %s: %s", key, holder, d->gone);
  }
}

void ad__registry_classify(const ad__reg_records_t *r, const json_t *facts, const char *fp,
                           const char *why, int64_t now, const ad__reg_conf_t *c,
                           ad__reg_decision_t *d)
{
  memset(d, 0, sizeof *d);
  if (!r->by_key)
    nobody_holds(r, facts, fp, why, d);
  else if (!strcmp(ad__jstr(r->by_key, "minion"), ad__jstr(facts, "minion")))
    minion_holds(r, facts, fp, why, d);
  else
    other_holds(r, facts, now, c, d);
}
