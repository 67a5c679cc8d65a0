/* approval_callback.c - DingTalk's bpms_instance_change, pushed to the
 * engine's HTTP server (POST /callbacks/dingtalk; serve/ reaches this
 * through the engine's callback) when purchase.approval.dingtalk.callback
 * is configured. See purchase.h (ad__purchase_dt_callback) and
 * docs/purchase.md ("The bpms_instance_change callback").
 *
 *   open     the query's signature, timestamp and nonce and the body's
 *            `encrypt`, checked and decrypted (dingtalk_crypto.h); a push
 *            that is not authentic or not readable is refused, counted
 *            and logged, and touches no order
 *   apply    check_url: nothing; bpms_instance_change of our process:
 *            finish + agree approves the order whose approval.instance_id
 *            it names, finish + refuse rejects it, terminate rejects it too
 *            (as the poll treats a TERMINATED instance); start, other
 *            events and other processes: nothing
 *   answer   the encrypted "success" map, so DingTalk stops pushing it
 *
 * The result goes through ad__purchase_dt_decide, the poll's own path: one
 * conditional update, so of a push and a poll (or two pushes, or two
 * engines) exactly one moves the order and the others find it decided.
 *
 * The event's staffId is the user who started the instance (DingTalk
 * documents it so), not the approver: the history's actor is
 * "dingtalk:callback", and staffId goes to the log only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "purchase/purchase_private.h"
#include "store/docs.h"

#define D "purchase"
#define VIA " (bpms_instance_change callback)"

int ad__purchase_dt_callback_on(const ad__purchase_t *p)
{
  return p && ad__dt_approval_callback(p->dt) != NULL;
}

static unsigned refuse(ad__purchase_t *p, const char *peer, unsigned status, const char *why,
                       json_t **answer)
{
  AD__PCOUNT(p, callbacks_refused);
  AD_LOG_W(D, "DingTalk callback from %s refused (%u): %s", peer ? peer : "?", status, why);
  *answer = json_pack("{s:i,s:s}", "status", (int)status, "reason", why);
  return status;
}

/* the first of two parameter names that is present (DingTalk's SDK reads
 * msg_signature or signature, timeStamp or timestamp) */
static const char *param(const json_t *query, const char *name, const char *alias)
{
  const char *v = json_string_value(json_object_get(query, name));
  return v ? v : json_string_value(json_object_get(query, alias));
}

/* The event inside the push: 0 with *event, AD__DT_FORGED or <0 + *err. */
static int open_push(const ad__purchase_t *p, const json_t *query, const char *body, size_t len,
                     json_t **event, ad_error_t *err)
{
  json_t *b = json_loadb(body, len, 0, NULL);
  const char *enc = json_string_value(json_object_get(b, "encrypt"));
  char *msg = NULL;
  size_t n = 0;
  int rc = enc ? ad__dt_decrypt(ad__dt_approval_callback(p->dt), param(query, "msg_signature",
                                "signature"), param(query, "timestamp", "timeStamp"),
                                param(query, "nonce", "nonce"), enc, &msg, &n, err)
               : ad__err(err, AD_EINVAL, D, "callback: the body is not {\"encrypt\": \"<base64>\"}");
  json_decref(b);
  *event = rc ? NULL : json_loadb(msg, n, 0, NULL);
  if (!rc && !json_is_object(*event)) {
    json_decref(*event);
    *event = NULL;
    rc = ad__err(err, AD_EINVAL, D, "callback: the decrypted message is not a JSON object");
  }
  if (msg)
    OPENSSL_cleanse(msg, n);
  free(msg);
  return rc;
}

/* 1 approve, 2 reject, 0 nothing to decide; *what for the history */
static int result_of(const json_t *ev, const char **what)
{
  const char *type = ad__jstr(ev, "type"), *res = ad__jstr(ev, "result");
  int finish = !strcmp(type, "finish");
  *what = "rejected";
  if (finish && !strcmp(res, "agree"))
    return *what = "approved", 1;
  if (finish && !strcmp(res, "refuse"))
    return 2;
  if (!strcmp(type, "terminate"))
    return *what = "terminated", 2;
  return 0;
}

/* bpms_instance_change: 0 done (decided, or nothing to do), <0 the store
 * did not answer. */
static int apply(ad__purchase_t *p, const json_t *ev, ad_error_t *err)
{
  const char *iid = ad__jstr(ev, "processInstanceId"), *code = ad__jstr(ev, "processCode");
  const char *ours = ad__dt_approval_process_code(p->dt), *what;
  int result = result_of(ev, &what);
  if (*code && ours && strcmp(code, ours)) {
    AD_LOG_D(D, "DingTalk callback: instance %s of process %s, not ours (%s): ignored", iid, code,
             ours);
    return 0;
  }
  if (!*iid || !result) {
    AD_LOG_I(D, "DingTalk callback: instance %s %s%s%s (started by %s): nothing to decide",
             *iid ? iid : "(none)", ad__jstr(ev, "type"), *ad__jstr(ev, "result") ? " " : "",
             ad__jstr(ev, "result"), ad__jstr(ev, "staffId"));
    return 0;
  }
  for (int tries = 0; tries < 5; tries++) { /* 0: the order changed meanwhile; read again */
    json_t *rows = ad__orders_find(p, json_pack("{s:s}", "approval.instance_id", iid), NULL, err);
    json_t *o = json_array_get(rows, 0);
    int rc = 1;
    if (!rows)
      return AD_ECONNECT;
    if (!o)
      AD_LOG_I(D, "DingTalk callback: instance %s %s: no order has it", iid, what);
    else if (strcmp(ad__jstr(o, "state"), "awaiting_approval"))
      AD_LOG_I(D, "order %s: DingTalk instance %s %s, the order is %s already: nothing to do",
               ad__jstr(o, "_id"), iid, what, ad__jstr(o, "state"));
    else if ((rc = ad__purchase_dt_decide(p, o, result, what, VIA, "dingtalk:callback")) == 1) {
      AD__PCOUNT(p, callbacks_decided);
      AD_LOG_I(D, "order %s: %s in DingTalk OA, by its bpms_instance_change callback "
               "(instance %s, started by %s)", ad__jstr(o, "_id"), what, iid,
               ad__jstr(ev, "staffId"));
    }
    json_decref(rows);
    if (rc == 1 || rc == AD_ESTATE) /* done, nothing to do, or decided by another */
      return 0;
    if (rc < 0)
      return ad__err(err, rc, D, "order store: the move failed (%d)", rc);
  }
  return 0; /* still changing after five reads: the poll will see it */
}

unsigned ad__purchase_dt_callback(ad__purchase_t *p, const char *peer, const json_t *query,
                                  const char *body, size_t len, json_t **answer)
{
  ad_error_t err = {0};
  json_t *ev = NULL;
  *answer = NULL;
  if (!ad__purchase_dt_callback_on(p))
    return refuse(p, peer, 404, "no DingTalk callback configured", answer);
  int rc = open_push(p, query, body, len, &ev, &err);
  if (rc)
    return refuse(p, peer, rc == AD__DT_FORGED ? 403 : 400, err.message, answer);
  AD__PCOUNT(p, callbacks);
  const char *type = ad__jstr(ev, "EventType");
  if (!strcmp(type, "bpms_instance_change"))
    rc = apply(p, ev, &err);
  else
    AD_LOG_I(D, "DingTalk callback: %s%s", *type ? type : "an event without EventType",
             strcmp(type, "check_url") ? ": ignored" : ": the URL check, answered");
  json_decref(ev);
  if (rc) {
    AD_LOG_W(D, "DingTalk callback: %s; answered 503 so that DingTalk pushes it again",
             err.message);
    *answer = json_pack("{s:i,s:s}", "status", 503, "reason", "the store does not answer");
    return 503;
  }
  char ts[24];
  snprintf(ts, sizeof ts, "%lld", (long long)ad__now_ms());
  *answer = ad__dt_encrypted_map(ad__dt_approval_callback(p->dt), "success", ts, NULL, NULL, &err);
  if (!*answer) {
    *answer = json_pack("{s:i,s:s}", "status", 500, "reason", "cannot seal the answer");
    return 500;
  }
  return 200;
}
