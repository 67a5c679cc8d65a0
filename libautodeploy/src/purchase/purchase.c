/* purchase.c - the purchase loop's life cycle, the daily run, the drive
 * that moves each order along, the signed decisions, the fulfilment hook
 * and the run command. See purchase.h and docs/purchase.md. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/dispatch.h"
#include "bus/sign.h"
#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "purchase/plan_input.h"
#include "purchase/purchase_private.h"
#include "store/docs.h"

#define D "purchase"
#define ACTOR "autodeploy/purchase"

/* ---- life cycle ------------------------------------------------------------ */

static int start_outbound(ad__purchase_t *p, ad_error_t *err)
{
  const char *type = json_string_value(json_object_get(p->c.backend, "type"));
  if (!(p->backend = ad__order_backend_find(type, err)) ||
      !(p->backend_self = p->backend->create(p->c.backend, err)))
    return AD_ECONFIG;
  if (p->backend == &ad__order_backend_runner) { /* it fires; the bus is ours to give */
    p->fire_env = (ad__order_fire_env_t){p->env.bus, p->key_path};
    ad__order_runner_set_fire(p->backend_self, ad__order_fire_signed, &p->fire_env);
  }
  if (p->c.partner_mail && !(p->mail = ad__partner_mail_new(p->c.partner_mail, err)))
    return AD_ECONFIG;
  if (p->c.dingtalk && !(p->dt = ad__dt_approval_new(p->c.dingtalk, err)))
    return AD_ECONFIG;
  return 0;
}

ad__purchase_t *ad__purchase_new(const ad__purchase_env_t *env, const json_t *conf,
                                 ad_error_t *err)
{
  ad__purchase_t *p = calloc(1, sizeof *p);
  if (!p)
    return ad__err(err, AD_ENOMEM, D, "no memory"), NULL;
  pthread_mutex_init(&p->lock, NULL);
  pthread_mutex_init(&p->move_lock, NULL);
  p->env = *env;
  p->services_coll = strdup(env->services_coll ? env->services_coll : "services");
  p->platforms_coll = strdup(env->platforms_coll ? env->platforms_coll : "platforms");
  p->key_path = strdup(env->key_path ? env->key_path : "");
  if (!p->services_coll || !p->platforms_coll || !p->key_path) {
    ad__err(err, AD_ENOMEM, D, "no memory");
    goto fail;
  }
  p->env.services_coll = p->services_coll;
  p->env.platforms_coll = p->platforms_coll;
  p->env.key_path = p->key_path;
  if (ad__purchase_conf_load(conf, env->zoneinfo, &p->c, err) || start_outbound(p, err))
    goto fail;
  return p;
fail:
  ad__purchase_destroy(&p);
  return NULL;
}

void ad__purchase_destroy(ad__purchase_t **p_p)
{
  if (!p_p || !*p_p)
    return;
  ad__purchase_t *p = *p_p;
  if (p->backend && p->backend_self)
    p->backend->destroy(p->backend_self);
  ad__partner_mail_destroy(&p->mail);
  ad__dt_approval_destroy(&p->dt);
  ad__purchase_conf_free(&p->c);
  free(p->services_coll);
  free(p->platforms_coll);
  free(p->key_path);
  pthread_mutex_destroy(&p->lock);
  pthread_mutex_destroy(&p->move_lock);
  free(p);
  *p_p = NULL;
}

/* ---- the plan -------------------------------------------------------------- */

/* The plan's input from MongoDB: the waiting services, their platforms,
 * this month's orders and the open ones. */
static int read_input(ad__purchase_t *p, const char *today, int64_t now, ad__plan_input_t *in,
                      ad_error_t *err)
{
  char month_first[9];
  snprintf(month_first, sizeof month_first, "%.6s01", today);
  json_t *svcs = ad__docs_find(p->env.store, p->services_coll,
                               json_pack("{s:s}", "state", "waiting_resources"),
                               json_pack("{s:{s:i,s:i,s:i,s:i,s:i,s:i}}", "projection", "platform",
                                         1, "footprint", 1, "reason", 1, "state_changed_at", 1,
                                         "created_at_ms", 1, "_id", 1),
                               err);
  json_t *plats = svcs ? ad__docs_find(p->env.store, p->platforms_coll, json_object(),
                                       json_pack("{s:{s:i,s:i}}", "projection", "profiles", 1,
                                                 "regions", 1),
                                       err)
                       : NULL;
  static const char *const OPEN[] = {"planned", "awaiting_approval", "approved", "ordered",
                                     "partner_notified"};
  json_t *open = json_array();
  for (size_t i = 0; i < 5; i++)
    json_array_append_new(open, json_string(OPEN[i]));
  json_t *orders = plats ? ad__orders_find(p,
                                           json_pack("{s:[{s:{s:o}},{s:{s:s}}]}", "$or", "state",
                                                     "$in", open, "day", "$gte", month_first),
                                           json_pack("{s:{s:i,s:i}}", "projection", "history", 0,
                                                     "plan", 0),
                                           err)
                         : (json_decref(open), NULL);
  int rc = orders ? ad__plan_input_build(&p->c, p->env.headroom, svcs, plats, orders, today, now,
                                         in, err)
                  : AD_ECONNECT;
  json_decref(svcs);
  json_decref(plats);
  json_decref(orders);
  return rc;
}

/* Write one order per line with hosts to order; *written / *already. */
static json_t *write_orders(ad__purchase_t *p, const json_t *plan, const char *day, int64_t now)
{
  json_t *out = json_array(), *line;
  size_t i;
  json_array_foreach(json_object_get(plan, "lines"), i, line) {
    if (ad__jint(line, "to_order") <= 0)
      continue;
    json_t *doc = ad__orders_doc(p, line, day, now);
    ad_error_t err = {0};
    int rc = doc ? ad__orders_insert(p, doc, &err) : ad__err(&err, AD_ENOMEM, D, "order document");
    const char *what = rc == 1 ? "planned" : rc == 0 ? "already planned" : "not written";
    if (rc == 1)
      AD__PCOUNT(p, planned);
    else if (rc == 0)
      AD__PCOUNT(p, already_planned);
    AD_LOG_I(D, "order %s: %s (%lld hosts of %s)%s%s", ad__jstr(doc, "_id"), what,
             (long long)ad__jint(line, "to_order"), ad__jstr(line, "profile"), rc < 0 ? ": " : "",
             rc < 0 ? err.message : "");
    json_array_append_new(out, json_pack("{s:s,s:s,s:I,s:s?}", "id", ad__jstr(doc, "_id"), "result",
                                         what, "count", ad__jint(line, "to_order"), "error",
                                         rc < 0 ? err.message : NULL));
    json_decref(doc);
  }
  return out;
}

/* Plan (and, unless dry, write) today's orders. The report: the plan with
 * its reasoning, the day, and what was written. */
static json_t *run_once(ad__purchase_t *p, int dry, ad_error_t *err)
{
  int64_t now = ad__now_ms();
  char day[9];
  ad__tz_day(p->c.tz, now, day);
  ad__plan_input_t in;
  ad__buy_plan_t plan;
  if (read_input(p, day, now, &in, err))
    return NULL;
  int rc = ad__buy_plan(in.waiting, in.n_waiting, &in.req, &plan, err);
  json_t *pj = rc ? NULL : ad__buy_plan_to_json(&plan, in.waiting, &in.req);
  ad__buy_plan_free(&plan);
  if (!pj) {
    ad__plan_input_free(&in);
    if (!rc)
      ad__err(err, AD_ENOMEM, D, "no memory for the plan");
    return NULL;
  }
  json_object_set_new(pj, "day", json_string(day));
  json_object_set_new(pj, "timezone", json_string(p->c.timezone));
  json_object_set_new(pj, "dry_run", json_boolean(dry));
  json_object_set_new(pj, "services_waiting", json_integer((json_int_t)in.n_waiting));
  json_object_set_new(pj, "services_without_platform", json_integer((json_int_t)in.skipped));
  json_object_set_new(pj, "caps", json_pack("{s:I,s:I,s:I,s:I}", "day", (json_int_t)in.req.cap_day,
                                            "month", (json_int_t)in.req.cap_month, "ordered_day",
                                            (json_int_t)in.req.ordered_day, "ordered_month",
                                            (json_int_t)in.req.ordered_month));
  ad__plan_input_free(&in);
  if (!dry) {
    AD__PCOUNT(p, runs);
    json_object_set_new(pj, "orders", write_orders(p, pj, day, now));
  }
  return pj;
}

/* Take the cycle lease, waiting up to `wait_ms` for a cycle or another
 * engine's run to end (they hold it for seconds): 1 taken, else NULL + the
 * error naming the holder. */
static int take_lease(ad__purchase_t *p, int64_t wait_ms, char *holder, size_t size, ad_error_t *err)
{
  int64_t until = ad__mono_ms() + wait_ms;
  for (;;) {
    int got = p->env.lease(p->env.lease_user, 1, holder, size);
    if (got == 1)
      return 1;
    if (got < 0)
      return ad__err(err, AD_ECONNECT, D, "cycle lease: store error"), 0;
    if (ad__mono_ms() >= until)
      return ad__err(err, AD_ESTATE, D, "the cycle lease is held by %s (waited %llds): try again",
                     holder, (long long)(wait_ms / 1000)), 0;
    struct timespec ts = {0, 250 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

static json_t *under_lease(ad__purchase_t *p, int dry, int64_t wait_ms, ad_error_t *err)
{
  char holder[200] = "";
  int leased = !dry && p->env.lease;
  if (leased && !take_lease(p, wait_ms, holder, sizeof holder, err))
    return NULL;
  pthread_mutex_lock(&p->lock);
  json_t *r = run_once(p, dry, err);
  pthread_mutex_unlock(&p->lock);
  if (leased)
    p->env.lease(p->env.lease_user, 0, holder, sizeof holder);
  return r;
}

json_t *ad__purchase_run_cmd(ad__purchase_t *p, const json_t *a, ad_error_t *err)
{
  const json_t *dry = json_object_get(a, "dry_run"), *w = json_object_get(a, "wait_s");
  if (dry && !json_is_boolean(dry))
    return ad__err(err, AD_EINVAL, "args", "dry_run: must be true or false"), NULL;
  if (w && (!json_is_number(w) || json_number_value(w) < 0 || json_number_value(w) > 600))
    return ad__err(err, AD_EINVAL, "args", "wait_s: must be a number of seconds, 0 to 600"), NULL;
  int64_t wait_ms = w ? (int64_t)(json_number_value(w) * 1000) : 30000;
  return under_lease(p, !dry || json_is_true(dry), wait_ms, err);
}

/* ---- the daily run ------------------------------------------------------- */

/* Claim today's run (one document per local day, inserted by whoever runs
 * it: exactly once across restarts and engines). 1 claimed, 0 done. */
static int claim_day(ad__purchase_t *p, const char *day, int64_t now)
{
  char iso[32];
  ad__iso_ms(now, iso);
  json_t *doc = json_pack("{s:s,s:s,s:I}", "_id", day, "at", iso, "at_ms", (json_int_t)now);
  ad_error_t err;
  int rc = doc ? ad__docs_insert(p->env.store, AD__PURCHASE_RUNS, doc, &err) : -1;
  json_decref(doc);
  return rc;
}

static void daily_run(ad__purchase_t *p, int64_t now)
{
  if (p->c.manual)
    return;
  ad__tz_local_t l;
  ad__tz_local(p->c.tz, now, &l);
  if (l.hour * 60 + l.min < p->c.hh * 60 + p->c.mm)
    return; /* not yet today */
  char day[9];
  ad__tz_day(p->c.tz, now, day);
  json_t *done = ad__docs_get(p->env.store, AD__PURCHASE_RUNS, day, "run", NULL);
  json_decref(done);
  if (done)
    return;
  char holder[200];
  if (p->env.lease && p->env.lease(p->env.lease_user, 1, holder, sizeof holder) != 1)
    return; /* the cycle runs, or another engine: next tick */
  ad_error_t err = {0};
  json_t *r = NULL;
  if (claim_day(p, day, now) == 1) {
    pthread_mutex_lock(&p->lock);
    r = run_once(p, 0, &err);
    pthread_mutex_unlock(&p->lock);
    if (!r) {
      AD_LOG_E(D, "daily run %s: %s", day, err.message);
      ad__docs_delete(p->env.store, AD__PURCHASE_RUNS, day); /* try again next tick */
    } else
      AD_LOG_I(D, "daily run %s: %lld hosts to order", day, (long long)ad__jint(r, "to_order"));
  }
  json_decref(r);
  if (p->env.lease)
    p->env.lease(p->env.lease_user, 0, holder, sizeof holder);
}

/* ---- the drive ------------------------------------------------------------ */

typedef struct {
  ad__purchase_t *p;
  int64_t now;
} drive_t;

static int move(drive_t *d, const json_t *o, int cause, json_t *set, const char *why,
                const char *actor)
{
  ad_error_t err = {0};
  int rc = ad__orders_move(d->p, o, cause, set, why, actor ? actor : ACTOR, &err);
  json_decref(set);
  if (rc < 0)
    AD_LOG_W(D, "order %s: %s: %s", ad__jstr(o, "_id"), ad__order_cause_name(cause), err.message);
  return rc;
}

/* Claim the next attempt of a step with a conditional update (attempt
 * counter + the time of the retry after it): of two engines driving the
 * same order, only the one whose update lands calls the outside world.
 * The order as it is now, or NULL (someone else claimed it, or not due). */
static json_t *claim(drive_t *d, const json_t *o, const char *attempts, const char *retry_at)
{
  if (json_integer_value(json_object_get(o, retry_at)) > d->now)
    return NULL;
  int n = (int)json_integer_value(json_object_get(o, attempts)) + 1;
  int64_t wait = ad__order_backoff_s(n, d->p->c.retry_base_s, d->p->c.retry_max_s);
  json_t *set = json_pack("{s:i,s:I}", attempts, n, retry_at, (json_int_t)(d->now + wait * 1000));
  ad_error_t err;
  int rc = set ? ad__orders_move(d->p, o, AD__OC_NOTE, set, NULL, ACTOR, &err) : -1;
  json_decref(set);
  return rc == 1 ? ad__orders_get(d->p, ad__jstr(o, "_id"), NULL) : NULL;
}

static void notice_after(drive_t *d, const json_t *o, const char *what, const char *text)
{
  json_t *now = ad__orders_get(d->p, ad__jstr(o, "_id"), NULL);
  ad__orders_notice(d->p, now ? now : o, what, text);
  json_decref(now);
}

static void drive_planned(drive_t *d, const json_t *o)
{
  ad__purchase_t *p = d->p;
  const char *id = ad__jstr(o, "_id");
  char text[900];
  if (!p->c.approval_required) {
    if (move(d, o, AD__OC_APPROVE, NULL, "approval not required (purchase.approval.required: false)",
             ACTOR) == 1) {
      ad__orders_notice(p, o, "planned", "Planned by the daily purchase run.");
      notice_after(d, o, "approved", "Approval is not required by the configuration.");
    }
    return;
  }
  json_t *mine = NULL;
  if (p->dt && !(o = mine = claim(d, o, "approval_attempts", "approval_retry_at_ms")))
    return;
  json_t *set = json_pack("{s:{s:s,s:I}}", "approval", "via", p->dt ? "dingtalk" : "salt",
                          "asked_at_ms", (json_int_t)d->now);
  if (p->dt) {
    char *inst = NULL;
    ad_error_t err = {0};
    int rc = ad__dt_approval_create(p->dt, o, &inst, &err);
    if (rc) {
      json_decref(set);
      AD_LOG_W(D, "order %s: DingTalk approval not created: %s", id, err.message);
      if (rc != AD_EAGAIN && move(d, o, AD__OC_FAIL, json_pack("{s:s}", "end_reason", err.message),
                                  err.message, ACTOR) == 1)
        notice_after(d, o, "failed", err.message);
      json_decref(mine);
      return;
    }
    json_object_set_new(json_object_get(set, "approval"), "instance_id", json_string(inst));
    free(inst);
  }
  snprintf(text, sizeof text,
           "Approve within %.1f h, %s: `salt-run autodeploy.approve %s` or "
           "`salt-run autodeploy.reject %s reason=...` (or the same through salt-api, "
           "client runner).",
           p->c.approval_timeout_h, p->dt ? "in the DingTalk OA approval, or" : "with", id, id);
  if (move(d, o, AD__OC_ASK, set, "approval requested", ACTOR) == 1) {
    ad__orders_notice(p, o, "planned", "Planned by the daily purchase run.");
    notice_after(d, o, "approval requested", text);
  }
  json_decref(mine);
}

static void drive_awaiting(drive_t *d, const json_t *o)
{
  ad__purchase_t *p = d->p;
  const json_t *ap = json_object_get(o, "approval");
  int64_t asked = ad__jint(ap, "asked_at_ms");
  if (d->now - asked > (int64_t)(p->c.approval_timeout_h * 3600000.0)) {
    char why[200];
    snprintf(why, sizeof why, "not decided within %.3g h (purchase.approval.timeout_h)",
             p->c.approval_timeout_h);
    if (move(d, o, AD__OC_EXPIRE, json_pack("{s:s}", "end_reason", why), why, ACTOR) == 1)
      notice_after(d, o, "expired", why);
    return;
  }
  const char *inst = json_string_value(json_object_get(ap, "instance_id"));
  if (!p->dt || !inst)
    return;
  char *who = NULL;
  ad_error_t err = {0};
  int rc = ad__dt_approval_poll(p->dt, inst, &who, &err);
  char actor[200];
  snprintf(actor, sizeof actor, "dingtalk:%s", who ? who : "?");
  free(who);
  if (rc == 1 || rc == 2)
    ad__purchase_dt_decide(p, o, rc, rc == 1 ? "approved" : "rejected", "", actor);
  else if (rc < 0)
    AD_LOG_W(D, "order %s: DingTalk approval %s: %s", ad__jstr(o, "_id"), inst, err.message);
}

int ad__purchase_dt_decide(ad__purchase_t *p, const json_t *o, int result, const char *what,
                           const char *via, const char *actor)
{
  drive_t d = {p, ad__now_ms()};
  char why[300], text[400];
  int approve = result == 1;
  snprintf(why, sizeof why, "%s in DingTalk OA%s", what, via);
  snprintf(text, sizeof text, "%c%s in the DingTalk OA approval%s.", toupper((unsigned char)*what),
           what + 1, via);
  int rc = move(&d, o, approve ? AD__OC_APPROVE : AD__OC_REJECT,
                approve ? NULL : json_pack("{s:s}", "end_reason", why), why, actor);
  if (rc == 1)
    notice_after(&d, o, approve ? "approved" : "rejected", text);
  return rc;
}

static void drive_approved(drive_t *d, const json_t *o)
{
  ad__purchase_t *p = d->p;
  json_t *mine = claim(d, o, "attempts", "retry_at_ms");
  if (!mine)
    return;
  o = mine;
  json_t *result = NULL;
  ad_error_t err = {0};
  int rc = p->backend->place(p->backend_self, o, &result, &err);
  char iso[32];
  ad__iso_ms(d->now, iso);
  if (rc == AD__PLACE_DONE) {
    AD__PCOUNT(p, placed);
    json_t *set = json_pack("{s:I,s:s,s:s,s:O}", "ordered_at_ms", (json_int_t)d->now, "ordered_at",
                            iso, "backend", p->backend->type, "placed", result ? result : json_null());
    const char *cid = json_string_value(json_object_get(result, "cloud_order_id"));
    if (cid)
      json_object_set_new(set, "cloud_order_id", json_string(cid));
    char why[300];
    snprintf(why, sizeof why, "placed through the %s backend%s%s", p->backend->type,
             cid ? ": cloud order " : "", cid ? cid : "");
    if (move(d, o, AD__OC_PLACE, set, why, ACTOR) == 1)
      notice_after(d, o, "placed", why);
  } else if (rc == AD__PLACE_LATER) {
    if (!ad__jint(o, "place_sent_at_ms"))
      move(d, o, AD__OC_NOTE, json_pack("{s:I}", "place_sent_at_ms", (json_int_t)d->now),
           "sent to the backend; its answer comes back as an event", ACTOR);
  } else if (rc == AD_EAGAIN) { /* the claim set the retry time already */
    AD__PCOUNT(p, place_retries);
    int n = (int)ad__jint(o, "attempts");
    move(d, o, AD__OC_NOTE, json_pack("{s:s}", "last_error", err.message), err.message, ACTOR);
    if (n == 1 || n % 5 == 0)
      notice_after(d, o, "placing failed, retrying", err.message);
  } else {
    if (move(d, o, AD__OC_FAIL, json_pack("{s:s}", "end_reason", err.message), err.message,
             ACTOR) == 1)
      notice_after(d, o, "failed", err.message);
  }
  json_decref(result);
  json_decref(mine);
}

static void drive_ordered(drive_t *d, const json_t *o)
{
  ad__purchase_t *p = d->p;
  json_t *mine = p->mail ? claim(d, o, "mail_attempts", "mail_retry_at_ms") : NULL;
  if (!mine)
    return;
  o = mine;
  json_t *one = json_pack("[O]", o);
  ad_error_t err = {0};
  int rc = one ? ad__partner_mail_send(p->mail, one, &err) : AD_ENOMEM;
  json_decref(one);
  if (rc == 0) {
    if (move(d, o, AD__OC_NOTIFY, NULL, "partner email sent", ACTOR) == 1)
      notice_after(d, o, "partner notified", "The partner was emailed the order.");
  } else { /* the outbox is the order: the claim set the next try */
    int n = (int)ad__jint(o, "mail_attempts");
    move(d, o, AD__OC_NOTE, json_pack("{s:s}", "last_error", err.message), err.message, ACTOR);
    if (n == 1 || n % 5 == 0)
      notice_after(d, o, "partner email failed, retrying", err.message);
  }
  json_decref(mine);
}

/* Hosts still to come after unfulfilled_alert_days: one alert, noted. */
static void alert_unfulfilled(drive_t *d, const json_t *o)
{
  int64_t since = ad__jint(o, "ordered_at_ms");
  if (!since || json_object_get(o, "unfulfilled_alerted_at_ms") ||
      d->now - since < d->p->c.unfulfilled_alert_days * 86400000LL)
    return;
  char why[300];
  snprintf(why, sizeof why, "%zu of %lld hosts arrived %d days after the order",
           json_array_size(json_object_get(o, "arrived")), (long long)ad__jint(o, "count"),
           d->p->c.unfulfilled_alert_days);
  if (move(d, o, AD__OC_NOTE, json_pack("{s:I}", "unfulfilled_alerted_at_ms", (json_int_t)d->now),
           why, ACTOR) == 1)
    notice_after(d, o, "not fulfilled", why);
}

/* fulfilled -> closed when none of the services it was bought for waits. */
static void drive_fulfilled(drive_t *d, const json_t *o)
{
  json_t *ids = json_array(), *s;
  size_t i;
  json_array_foreach(json_object_get(json_object_get(o, "plan"), "services"), i, s)
    json_array_append_new(ids, json_string(ad__jstr(s, "service")));
  int64_t n = ad__docs_count(d->p->env.store, d->p->services_coll,
                             json_pack("{s:{s:o},s:s}", "_id", "$in", ids, "state", "waiting_resources"));
  if (n == 0)
    move(d, o, AD__OC_CLOSE, NULL, "fulfilled, and none of its services waits any more", ACTOR);
}

static void drive(ad__purchase_t *p, int64_t now)
{
  static const char *const OPEN[] = {"planned", "awaiting_approval", "approved", "ordered",
                                     "partner_notified", "fulfilled"};
  json_t *in = json_array();
  for (size_t i = 0; i < 6; i++)
    json_array_append_new(in, json_string(OPEN[i]));
  json_t *rows = ad__orders_find(p, json_pack("{s:{s:o}}", "state", "$in", in),
                                 json_pack("{s:{s:i,s:i}}", "sort", "created_at_ms", 1, "_id", 1),
                                 NULL);
  drive_t d = {p, now};
  size_t i;
  json_t *o;
  json_array_foreach(rows, i, o) {
    switch (ad__order_state_parse(ad__jstr(o, "state"))) {
    case AD__OS_PLANNED: drive_planned(&d, o); break;
    case AD__OS_AWAITING_APPROVAL: drive_awaiting(&d, o); break;
    case AD__OS_APPROVED: drive_approved(&d, o); break;
    case AD__OS_ORDERED: drive_ordered(&d, o); alert_unfulfilled(&d, o); break;
    case AD__OS_PARTNER_NOTIFIED: alert_unfulfilled(&d, o); break;
    case AD__OS_FULFILLED: drive_fulfilled(&d, o); break;
    default: break;
    }
  }
  json_decref(rows);
}

int64_t ad__purchase_tick(ad__purchase_t *p)
{
  int64_t mono = ad__mono_ms();
  if (!p->c.enabled)
    return 60000;
  daily_run(p, ad__now_ms());
  if (mono >= p->next_drive_mono) {
    /* not under the cycle lease (a cycle would be skipped for it): every
     * step is a conditional update, and a step that calls out is claimed
     * first (claim()), so two engines never both place or mail */
    pthread_mutex_lock(&p->lock);
    drive(p, ad__now_ms());
    pthread_mutex_unlock(&p->lock);
    p->next_drive_mono = mono + p->c.drive_interval_s * 1000LL;
  }
  int64_t wait = p->next_drive_mono - ad__mono_ms();
  return wait < 100 ? 100 : wait;
}

/* ---- signed decisions --------------------------------------------------- */

static void note_refusal(ad__purchase_t *p, const char *id, const char *note)
{
  json_t *o = ad__orders_get(p, id, NULL);
  json_t *set = o ? json_pack("{s:s}", "last_refusal", note) : NULL; /* borrowed by the move */
  if (set)
    ad__orders_move(p, o, AD__OC_NOTE, set, note, "guard", NULL);
  json_decref(set);
  json_decref(o);
}

/* The tag's order id: autodeploy/order/<id>/<action>. */
static int tag_parts(const char *tag, char *id, size_t size, const char **action)
{
  const char *s = tag + strlen("autodeploy/order/"), *slash = strrchr(s, '/');
  if (!slash || slash == s || (size_t)(slash - s) >= size)
    return -1;
  memcpy(id, s, (size_t)(slash - s));
  id[slash - s] = 0;
  *action = slash + 1;
  return 0;
}

/* autodeploy/order/<id>/... whose <id> is empty or too long: nothing to
 * note it on, but counted and logged as every refusal is. */
static int refuse_tag(ad__purchase_t *p, const char *tag)
{
  AD__PCOUNT(p, refused_unsigned);
  AD_LOG_W(D, "%.*s%s refused: the tag names no order", AD__TAG_SHOW(tag));
  return 1;
}

int ad__purchase_on_decision(ad__purchase_t *p, ad_event_t *ev)
{
  char id[200], note[400];
  const char *action, *body, *who = "?";
  size_t blen, wn = 1;
  if (tag_parts(ad_event_tag(ev), id, sizeof id, &action))
    return refuse_tag(p, ad_event_tag(ev));
  ad_error_t err = {0};
  if (ad__verify_signed(ev, p->key_path, &body, &blen, &err)) {
    ad_event_get_str(ev, "id", &who, &wn);
    AD__PCOUNT(p, refused_unsigned);
    snprintf(note, sizeof note, "%s refused: %s (from %.*s)", action, err.message,
             (int)(wn > 64 ? 64 : wn), who);
    AD_LOG_W(D, "order %s: %s", id, note);
    note_refusal(p, id, note);
    return 1;
  }
  json_t *req = json_loadb(body, blen, 0, NULL);
  if (!req || strcmp(ad__jstr(req, "order_id"), id) || strcmp(ad__jstr(req, "action"), action)) {
    AD__PCOUNT(p, refused_unsigned);
    AD_LOG_W(D, "order %s: %s refused: the signed body names another order or action", id, action);
    json_decref(req);
    return 1;
  }
  int cause = !strcmp(action, "approve") ? AD__OC_APPROVE
              : !strcmp(action, "reject") ? AD__OC_REJECT
                                          : -1;
  char actor[200], why[400];
  snprintf(actor, sizeof actor, "salt:%s", ad__jstr(req, "actor"));
  snprintf(why, sizeof why, "%s through Salt%s%s", action, *ad__jstr(req, "reason") ? ": " : "",
           ad__jstr(req, "reason"));
  json_t *o = ad__orders_get(p, id, &err);
  json_t *set = cause == AD__OC_REJECT ? json_pack("{s:s}", "end_reason", why) : NULL;
  int rc = o && cause >= 0 ? ad__orders_move(p, o, cause, set, why, actor, &err) : AD_EINVAL;
  json_decref(set); /* the move borrows it */
  if (rc == 1)
    notice_after(&(drive_t){p, ad__now_ms()}, o, cause == AD__OC_APPROVE ? "approved" : "rejected",
                 why);
  else {
    AD__PCOUNT(p, refused_decisions);
    snprintf(note, sizeof note, "%s refused: %s", action,
             cause < 0 ? "unknown action" : rc == 0 ? "the order changed meanwhile" : err.message);
    AD_LOG_W(D, "order %s: %s", id, note);
    if (o)
      note_refusal(p, id, note);
  }
  json_decref(o);
  json_decref(req);
  return rc == 1 ? 0 : 1;
}

/* autodeploy/order/<id>/placed: the runner backend's answer (backend_runner.h),
 * signed by the runner on the master. ok: ordered; not ok: failed; a dry
 * run only notes what the cloud said. */
static int placed_apply(ad__purchase_t *p, const char *id, const json_t *res)
{
  ad_error_t err = {0};
  json_t *o = ad__orders_get(p, id, &err);
  if (!o)
    return AD_ENOTFOUND;
  int64_t now = ad__now_ms();
  char iso[32], why[400];
  ad__iso_ms(now, iso);
  const char *cid = ad__jstr(res, "cloud_order_id"), *e = ad__jstr(res, "error");
  int rc;
  if (json_is_true(json_object_get(res, "dry_run"))) {
    snprintf(why, sizeof why, "dry run through the runner: %s", json_is_true(
             json_object_get(res, "ok")) ? "the cloud would accept the order" : e);
    rc = ad__orders_move(p, o, AD__OC_NOTE, NULL, why, ACTOR, &err);
  } else if (json_is_true(json_object_get(res, "ok"))) {
    json_t *set = json_pack("{s:I,s:s,s:s,s:O}", "ordered_at_ms", (json_int_t)now, "ordered_at",
                            iso, "backend", "runner", "placed", res);
    if (set && *cid)
      json_object_set_new(set, "cloud_order_id", json_string(cid));
    snprintf(why, sizeof why, "placed through the runner backend%s%s", *cid ? ": cloud order " : "",
             cid);
    rc = set ? ad__orders_move(p, o, AD__OC_PLACE, set, why, ACTOR, &err) : AD_ENOMEM;
    json_decref(set);
    if (rc == 1) {
      AD__PCOUNT(p, placed);
      notice_after(&(drive_t){p, now}, o, "placed", why);
    }
  } else {
    snprintf(why, sizeof why, "the runner could not place the order: %s", *e ? e : "no reason");
    json_t *set = json_pack("{s:s}", "end_reason", why);
    rc = set ? ad__orders_move(p, o, AD__OC_FAIL, set, why, ACTOR, &err) : AD_ENOMEM;
    json_decref(set);
    if (rc == 1)
      notice_after(&(drive_t){p, now}, o, "failed", why);
  }
  json_decref(o);
  return rc == 1 ? 0 : rc == 0 ? AD_ESTATE : rc;
}

int ad__purchase_on_placed(ad__purchase_t *p, ad_event_t *ev)
{
  char id[200], note[400];
  const char *action, *body;
  size_t blen;
  if (tag_parts(ad_event_tag(ev), id, sizeof id, &action))
    return refuse_tag(p, ad_event_tag(ev));
  ad_error_t err = {0};
  json_t *res = NULL;
  if (ad__verify_signed(ev, p->key_path, &body, &blen, &err) ||
      ad__order_placed_check(id, body, blen, &res, &err)) {
    AD__PCOUNT(p, refused_unsigned);
    snprintf(note, sizeof note, "placed refused: %s", err.message);
    AD_LOG_W(D, "order %s: %s", id, note);
    note_refusal(p, id, note);
    return 1;
  }
  int rc = placed_apply(p, id, res);
  json_decref(res);
  if (rc) {
    AD__PCOUNT(p, refused_decisions);
    snprintf(note, sizeof note, "placed refused: the order is not waiting for it (%d)", rc);
    AD_LOG_W(D, "order %s: %s", id, note);
    note_refusal(p, id, note);
    return 1;
  }
  return 0;
}

/* ---- fulfilment --------------------------------------------------------- */

void ad__purchase_host_ready(void *user, const json_t *host)
{
  ad__purchase_t *p = user;
  const char *key = ad__jstr(host, "_id"), *profile = ad__jstr(host, "profile");
  int64_t ready = 0;
  if (!*profile || ad__time_parse(ad__jstr(host, "ready_at"), &ready))
    ready = ad__now_ms();
  if (!*profile || !ad__purchase_profile(&p->c, profile))
    return;
  for (int tries = 0; tries < 5; tries++) {
    json_t *orders = ad__orders_find(
        p, json_pack("{s:s,s:{s:[s,s]}}", "profile", profile, "state", "$in", "ordered", "partner_notified"),
        json_pack("{s:{s:i}}", "projection", "plan", 0), NULL);
    long k = ad__order_pick_arrival(orders, profile, key, ready);
    json_t *o = k >= 0 ? json_array_get(orders, (size_t)k) : NULL;
    int rc = 1;
    if (o) {
      json_t *arrived = json_deep_copy(json_object_get(o, "arrived"));
      if (!json_is_array(arrived)) {
        json_decref(arrived);
        arrived = json_array();
      }
      json_array_append_new(arrived, json_string(key));
      int full = (json_int_t)json_array_size(arrived) >= ad__jint(o, "count");
      char why[300];
      snprintf(why, sizeof why, "host %s of profile %s ready (%zu of %lld)", key, profile,
               json_array_size(arrived), (long long)ad__jint(o, "count"));
      json_t *set = json_pack("{s:o}", "arrived", arrived);
      if (full)
        json_object_set_new(set, "fulfilled_at_ms", json_integer(ad__now_ms()));
      rc = ad__orders_move(p, o, full ? AD__OC_FULFIL : AD__OC_ARRIVE, set, why, "autodeploy/registry", NULL);
      json_decref(set);
      if (rc == 1) {
        AD__PCOUNT(p, arrivals);
        AD_LOG_I(D, "order %s: %s", ad__jstr(o, "_id"), why);
        if (full)
          notice_after(&(drive_t){p, ad__now_ms()}, o, "fulfilled", why);
      }
    }
    json_decref(orders);
    if (rc != 0)
      return; /* done, nothing to count, or a store error (logged) */
  }
}

json_t *ad__purchase_stats_json(ad__purchase_t *p)
{
#define L(f) (json_int_t) __atomic_load_n(&p->stats.f, __ATOMIC_RELAXED)
  return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "runs", L(runs), "planned",
                   L(planned), "already_planned", L(already_planned), "refused_unsigned",
                   L(refused_unsigned), "refused_decisions", L(refused_decisions), "placed",
                   L(placed), "place_retries", L(place_retries), "arrivals", L(arrivals),
                   "callbacks", L(callbacks), "callbacks_refused", L(callbacks_refused),
                   "callbacks_decided", L(callbacks_decided));
#undef L
}
