/* orders.c - the orders collection (docs/purchase.md, "Orders"): the
 * document of a plan line, insert (the _id "<profile>-<YYYYMMDD>" makes a
 * rerun, a restart or a second engine "already planned"), every change a
 * conditional update that ad__order_can_move allowed first, notices, and
 * the runner commands that read, decide, cancel or report a placed order. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/sign.h"
#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "purchase/purchase_private.h"
#include "store/docs.h"

#define D "purchase"

const char *ad__purchase_orders_collection(const ad__purchase_t *p)
{
  return p && p->c.collection ? p->c.collection : "orders";
}

json_t *ad__orders_find(ad__purchase_t *p, json_t *query, json_t *opts, ad_error_t *err)
{
  return ad__docs_find(p->env.store, p->c.collection, query, opts, err);
}

json_t *ad__orders_get(ad__purchase_t *p, const char *id, ad_error_t *err)
{
  return ad__docs_get(p->env.store, p->c.collection, id, "order", err);
}

int ad__orders_insert(ad__purchase_t *p, const json_t *doc, ad_error_t *err)
{
  return ad__docs_insert(p->env.store, p->c.collection, doc, err);
}

int ad__orders_move(ad__purchase_t *p, const json_t *order, int cause, const json_t *set,
                    const char *why, const char *actor, ad_error_t *err)
{
  int from = ad__order_state_parse(ad__jstr(order, "state"));
  int to = ad__order_cause_target(cause, from);
  if (!ad__order_can_move(from, to, cause))
    return ad__err(err, AD_ESTATE, D, "order %s is %s: cannot %s", ad__jstr(order, "_id"),
                   ad__jstr(order, "state"), ad__order_cause_name(cause));
  json_t *fields = set ? json_deep_copy(set) : json_object();
  if (!fields)
    return ad__err(err, AD_ENOMEM, D, "no memory");
  if (to != from)
    json_object_set_new(fields, "state", json_string(ad__order_state_name(to)));
  /* One move at a time in this process: the drive, the bus workers (signed
   * decisions, the runner's answer, arrivals) and the HTTP threads
   * (DingTalk's push) all move orders. MongoDB applies the {_id, rev}
   * filter and the write atomically; FerretDB v1.24 does not (its update
   * reads with the filter, then writes by _id: internal/handler/
   * msg_update.go), so two moves from one rev both "landed" there, the
   * second overwriting the first. Serialised, the second one's read sees
   * the new rev and matches nothing. */
  pthread_mutex_lock(&p->move_lock);
  int rc = ad__docs_cas(p->env.store, p->c.collection, order, fields, ad__order_cause_name(cause),
                        why, actor, AD__ORDER_HISTORY_MAX, D, err);
  pthread_mutex_unlock(&p->move_lock);
  json_decref(fields);
  return rc;
}

/* "12 services of platforms sg, hk waiting up to 30.5 h: no host fits" */
static json_t *reason_of(const json_t *line, json_t **platforms)
{
  json_t *svcs = json_object_get(line, "services"), *s;
  *platforms = json_array();
  size_t i;
  const char *why = NULL;
  json_array_foreach(svcs, i, s) {
    const char *pl = ad__jstr(s, "platform");
    size_t k;
    json_t *q;
    int seen = 0;
    json_array_foreach(*platforms, k, q) seen |= !strcmp(json_string_value(q), pl);
    if (!seen)
      json_array_append_new(*platforms, json_string(pl));
    if (!why && *ad__jstr(s, "reason"))
      why = ad__jstr(s, "reason");
  }
  char list[300] = "";
  json_t *q;
  json_array_foreach(*platforms, i, q) {
    if (i)
      strncat(list, ", ", sizeof list - strlen(list) - 1);
    strncat(list, json_string_value(q), sizeof list - strlen(list) - 1);
  }
  return json_sprintf("%zu services of platform%s %s waiting up to %.1f h%s%s",
                      json_array_size(svcs), json_array_size(*platforms) == 1 ? "" : "s", list,
                      json_number_value(json_object_get(line, "max_waited_hours")),
                      why ? ": " : "", why ? why : "");
}

json_t *ad__orders_doc(const ad__purchase_t *p, const json_t *line, const char *day,
                       int64_t now_ms)
{
  char id[200], iso[32];
  const char *profile = ad__jstr(line, "profile");
  if (ad__order_id(profile, day, id, sizeof id))
    return NULL;
  const ad__pprofile_t *pp = ad__purchase_profile(&p->c, profile);
  ad__iso_ms(now_ms, iso);
  json_t *platforms = NULL, *reason = reason_of(line, &platforms);
  json_t *plan = json_deep_copy(line);
  json_t *doc = json_pack(
      "{s:s,s:i,s:s,s:s,s:s?,s:s,s:O,s:s,s:o,s:o,s:o,s:s,s:I,s:[],s:i,s:[{s:s,s:s,s:s,s:s,s:s}]}",
      "_id", id, "rev", 0, "profile", profile, "flavour", ad__jstr(line, "flavour"), "region",
      pp ? pp->region : NULL, "day", day, "count", json_object_get(line, "to_order"), "state",
      "planned", "reason", reason, "platforms", platforms, "plan", plan, "created_at", iso,
      "created_at_ms", (json_int_t)now_ms, "arrived", "attempts", 0, "history", "at", iso, "what",
      "planned", "to", "planned", "cause", json_string_value(reason), "actor", "autodeploy/purchase");
  return doc;
}

void ad__orders_notice(ad__purchase_t *p, const json_t *order, const char *what,
                       const char *text)
{
  if (!p->env.alert)
    return;
  const char *id = ad__jstr(order, "_id");
  char title[300], body[2000], dedup[300];
  snprintf(title, sizeof title, "autodeploy order %s: %s", id, what);
  snprintf(body, sizeof body,
           "### order %s: %s\n- profile **%s**, flavour %s, **%lld hosts**\n- %s\n\n%s\n\n"
           "Inspect: `salt-run autodeploy.order %s`",
           id, what, ad__jstr(order, "profile"), ad__jstr(order, "flavour"),
           (long long)json_integer_value(json_object_get(order, "count")),
           ad__jstr(order, "reason"), text ? text : "", id);
  snprintf(dedup, sizeof dedup, "order/%s/%s", id, what);
  p->env.alert(p->env.alert_user, title, body, dedup);
}

/* ---- runner commands -------------------------------------------------------- */

static json_t *bad_arg(ad_error_t *err, const char *key, const char *why)
{
  ad__err(err, AD_EINVAL, "args", "%s: %s", key, why);
  return NULL;
}

json_t *ad__order_list(ad__purchase_t *p, const json_t *a, ad_error_t *err)
{
  const json_t *st = json_object_get(a, "state"), *lim = json_object_get(a, "limit");
  json_t *q = json_object();
  if (st && !json_is_null(st)) {
    if (ad__order_state_parse(json_string_value(st)) < 0)
      return json_decref(q), bad_arg(err, "state",
                                     "must be planned, awaiting_approval, approved, ordered, "
                                     "partner_notified, fulfilled, closed, rejected, expired, "
                                     "failed or cancelled");
    json_object_set(q, "state", (json_t *)st);
  }
  json_int_t limit = lim ? json_integer_value(lim) : 100;
  if (lim && (!json_is_integer(lim) || limit < 1 || limit > 10000))
    return json_decref(q), bad_arg(err, "limit", "must be an integer from 1 to 10000");
  json_t *rows = ad__orders_find(p, q,
                                 json_pack("{s:{s:i,s:i},s:I,s:{s:i,s:i}}", "sort", "created_at_ms",
                                           -1, "_id", 1, "limit", limit, "projection", "history",
                                           0, "plan", 0),
                                 err);
  return rows ? json_pack("{s:o}", "orders", rows) : NULL;
}

static const char *arg_id(const json_t *a, ad_error_t *err)
{
  const char *id = json_string_value(json_object_get(a, "id"));
  if (!id || !*id)
    bad_arg(err, "id", "required (an order id: <profile>-<YYYYMMDD>)");
  return id && *id ? id : NULL;
}

json_t *ad__order_get(ad__purchase_t *p, const json_t *a, ad_error_t *err)
{
  const char *id = arg_id(a, err);
  json_t *o = id ? ad__orders_get(p, id, err) : NULL;
  return o ? json_pack("{s:o}", "order", o) : NULL;
}

/* approve/reject: a control event signed with the master key, which the
 * engine verifies (a minion can fire the same tag, unsigned). */
static json_t *fire_decision(ad__purchase_t *p, const json_t *a, const char *action,
                             ad_error_t *err)
{
  const char *id = arg_id(a, err);
  if (!id)
    return NULL;
  const char *reason = json_string_value(json_object_get(a, "reason")),
             *actor = json_string_value(json_object_get(a, "actor"));
  if (!strcmp(action, "reject") && (!reason || !*reason))
    return bad_arg(err, "reason", "required to reject an order");
  json_t *o = ad__orders_get(p, id, err);
  if (!o)
    return NULL;
  int st = ad__order_state_parse(ad__jstr(o, "state"));
  json_decref(o);
  int cause = !strcmp(action, "approve") ? AD__OC_APPROVE : AD__OC_REJECT;
  if (!ad__order_can_move(st, ad__order_cause_target(cause, st), cause)) {
    ad__err(err, AD_ESTATE, D, "order %s is %s: cannot %s", id, ad__order_state_name(st), action);
    return NULL;
  }
  json_t *body = json_pack("{s:s,s:s,s:s,s:s}", "order_id", id, "action", action, "reason",
                           reason ? reason : "", "actor", actor && *actor ? actor : "unknown");
  char tag[300];
  snprintf(tag, sizeof tag, "autodeploy/order/%s/%s", id, action);
  int rc = body ? ad__fire_signed(p->env.bus, p->key_path, tag, body, err)
                : ad__err(err, AD_ENOMEM, D, "no memory");
  json_decref(body);
  return rc ? NULL : json_pack("{s:b,s:s,s:s}", "fired", 1, "tag", tag, "action", action);
}

json_t *ad__order_approve(ad__purchase_t *p, const json_t *a, ad_error_t *err)
{
  return fire_decision(p, a, "approve", err);
}

json_t *ad__order_reject(ad__purchase_t *p, const json_t *a, ad_error_t *err)
{
  return fire_decision(p, a, "reject", err);
}

/* A runner's answer for the runner backend (backend_runner.h): the signed
 * placed event, fired here so that its body and signature are made where
 * the engine's check of them lives, not again in Python. The order itself
 * is the engine's to move when the event arrives. */
json_t *ad__order_placed(ad__purchase_t *p, const json_t *a, ad_error_t *err)
{
  json_t *body = ad__order_placed_body(a, err);
  if (!body)
    return NULL;
  char tag[200];
  snprintf(tag, sizeof tag, "autodeploy/order/%s/placed", ad__jstr(body, "id"));
  int rc = ad__fire_signed(p->env.bus, p->key_path, tag, body, err);
  json_decref(body);
  return rc ? NULL : json_pack("{s:b,s:s}", "fired", 1, "tag", tag);
}

json_t *ad__order_cancel(ad__purchase_t *p, const json_t *a, ad_error_t *err)
{
  const char *id = arg_id(a, err);
  if (!id)
    return NULL;
  const char *reason = json_string_value(json_object_get(a, "reason")),
             *actor = json_string_value(json_object_get(a, "actor"));
  for (int tries = 0; tries < 3; tries++) {
    json_t *o = ad__orders_get(p, id, err);
    if (!o)
      return NULL;
    char why[400];
    snprintf(why, sizeof why, "cancelled: %s", reason && *reason ? reason : "no reason given");
    json_t *set = json_pack("{s:s}", "end_reason", why);
    int rc = ad__orders_move(p, o, AD__OC_CANCEL, set, why, actor, err);
    json_decref(set);
    if (rc == AD_ESTATE) /* placed already: the partner must cancel with the cloud */
      ad__err(err, AD_ESTATE, D, "order %s is %s: only an order not yet placed can be cancelled",
              id, ad__jstr(o, "state"));
    json_decref(o);
    if (rc == 1) {
      json_t *now = ad__orders_get(p, id, err);
      if (now)
        ad__orders_notice(p, now, "cancelled", why);
      return now ? json_pack("{s:o}", "order", now) : NULL;
    }
    if (rc < 0)
      return NULL;
  }
  ad__err(err, AD_ESTATE, D, "order %s keeps changing: try again", id);
  return NULL;
}
