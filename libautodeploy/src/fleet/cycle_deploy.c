/*
 * cycle_deploy.c - the cycle's deploy step (cycle.c runs the others): a
 * placed service moves to deploying by one conditional update, then a
 * deploy task runs the platform's state on the host's minion, with the
 * platform's pillar template rendered for the service.
 */
#include <stdio.h>
#include <string.h>

#include "core/error_private.h"
#include "fleet/cycle_private.h"
#include "store/docs.h"

/* {service} {server_no} {platform} {host} {private_ip} {minion} in strings */
static json_t *render(const json_t *tmpl, const json_t *vars)
{
  if (json_is_string(tmpl)) {
    const char *s = json_string_value(tmpl);
    /* "{server_no}" alone keeps the variable's type (an integer stays one) */
    size_t sl = strlen(s);
    if (sl > 2 && s[0] == '{' && s[sl - 1] == '}' && !strchr(s + 1, '{')) {
      char name[40];
      snprintf(name, sizeof name, "%.*s", (int)(sl - 2), s + 1);
      json_t *v = json_object_get(vars, name);
      if (json_is_integer(v))
        return json_incref(v);
    }
    char out[4096];
    size_t o = 0;
    while (*s && o < sizeof out - 1) {
      const char *close = *s == '{' ? strchr(s, '}') : NULL;
      if (close && close - s - 1 < 32) {
        char name[40];
        snprintf(name, sizeof name, "%.*s", (int)(close - s - 1), s + 1);
        json_t *v = json_object_get(vars, name);
        if (v) {
          char buf[300];
          if (json_is_integer(v))
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
          else
            snprintf(buf, sizeof buf, "%s", json_string_value(v) ? json_string_value(v) : "");
          size_t n = strlen(buf);
          if (o + n >= sizeof out)
            break;
          memcpy(out + o, buf, n);
          o += n;
          s = close + 1;
          continue;
        }
      }
      out[o++] = *s++;
    }
    out[o] = 0;
    return json_string(out);
  }
  if (json_is_object(tmpl)) {
    json_t *r = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)tmpl, k, v) {
      if (!r || json_object_set_new(r, k, render(v, vars))) {
        json_decref(r);
        return NULL; /* no memory: no half-rendered pillar */
      }
    }
    return r;
  }
  if (json_is_array(tmpl)) {
    json_t *r = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(tmpl, i, v) {
      if (!r || json_array_append_new(r, render(v, vars))) {
        json_decref(r);
        return NULL;
      }
    }
    return r;
  }
  return json_deep_copy(tmpl);
}

/* The platform's pillar rendered for `vars`, with autodeploy:service
 * filled in: who and where, and the port unless the template sets one.
 * NULL: no memory. */
static json_t *deploy_pillar(const json_t *plat, const json_t *vars)
{
  const json_t *tmpl = json_object_get(plat, "pillar");
  json_t *pillar = json_is_object(tmpl) ? render(tmpl, vars) : json_object();
  if (!pillar)
    return NULL;
  json_t *ad = json_object_get(pillar, "autodeploy");
  if (!json_is_object(ad) && json_object_set_new(pillar, "autodeploy", ad = json_object()))
    goto fail;
  json_t *sv = json_object_get(ad, "service");
  if (!json_is_object(sv) && json_object_set_new(ad, "service", sv = json_object()))
    goto fail;
  const char *const FILL[] = {"id", "platform", "server_no", "host", "private_ip", "minion", NULL};
  for (int i = 0; FILL[i]; i++)
    if (json_object_set(sv, FILL[i], json_object_get(vars, FILL[i])))
      goto fail;
  if (!json_object_get(sv, "port") && json_object_set(sv, "port", json_object_get(vars, "port")))
    goto fail;
  return pillar;
fail:
  json_decref(pillar);
  return NULL;
}

/* A deploy task for `svc` on host `hdoc`: the platform's state on the
 * host's minion with the rendered pillar. NULL + err. */
static json_t *deploy(ad__plat_cycle_t *pc, const json_t *svc, const json_t *hdoc, ad_error_t *err)
{
  const json_t *plat = pc->plat;
  const ad__fleet_conf_t *c = &pc->f->c;
  json_int_t no = json_integer_value(json_object_get(svc, "server_no"));
  json_int_t port_base = json_object_get(plat, "port_base") ? json_integer_value(json_object_get(plat, "port_base")) : 10000;
  if (port_base + no > 65535)
    return ad__err(err, AD_EINVAL, "fleet", "port %lld (port_base %lld + server_no %lld) is over 65535",
                   (long long)(port_base + no), (long long)port_base, (long long)no), NULL;
  json_t *vars = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:I}", "service", ad__jstr(svc, "_id"), "id",
                           ad__jstr(svc, "_id"), "server_no", no, "platform", ad__jstr(plat, "_id"),
                           "host", ad__jstr(hdoc, "_id"), "private_ip", ad__jstr(hdoc, "private_ip"),
                           "minion", ad__jstr(hdoc, "minion"), "port", port_base + no);
  json_t *pillar = vars ? deploy_pillar(plat, vars) : NULL;
  json_decref(vars);
  json_t *args = !pillar ? NULL
      : json_pack("{s:[s],s:s,s:[s],s:o,s:i,s:{s:i,s:i},s:s,s:s,s:{s:s,s:s,s:s}}", "tgt",
                  ad__jstr(hdoc, "minion"), "tgt_type", "list", "mods", ad__jstr(plat, "state"),
                  "pillar", pillar, "timeout", c->deploy_timeout, "retry",
                  "max_attempts", c->deploy_attempts, "backoff_s", c->deploy_backoff_s,
                  "created_by", "autodeploy/cycle", "reason", ad__jstr(svc, "_id"), "owner",
                  "kind", "service_deploy", "service", ad__jstr(svc, "_id"), "platform",
                  ad__jstr(plat, "_id"));
  if (!args)
    return ad__err(err, AD_ENOMEM, "fleet", "deploy task of %s: no memory", ad__jstr(svc, "_id")), NULL;
  json_t *res = pc->st->task_create(pc->u, args, err);
  json_decref(args);
  return res;
}

/* The deploy task of a service just moved to deploying, and its id
 * recorded (attempts + 1); a task that cannot start sends the service
 * back to pending with the reason. Each write re-reads the service: the
 * move changed its rev. */
static void start_task(ad__plat_cycle_t *pc, const char *sid, const json_t *hdoc)
{
  ad_error_t err = {0};
  const char *coll = pc->f->c.services;
  json_t *doc = pc->st->get(pc->u, coll, sid, NULL);
  json_t *res = doc ? deploy(pc, doc, hdoc, &err) : NULL;
  json_t *now_doc = doc ? pc->st->get(pc->u, coll, sid, NULL) : NULL;
  json_t *set = NULL;
  if (res && now_doc) {
    const char *tid = ad__jstr(json_object_get(res, "task"), "_id");
    set = json_pack("{s:s,s:I}", "task", tid, "attempts",
                    json_integer_value(json_object_get(now_doc, "attempts")) + 1);
    if (set)
      pc->st->cas(pc->u, coll, now_doc, set, "deploy task", tid, "autodeploy/cycle", NULL);
  } else if (now_doc) {
    set = json_pack("{s:s,s:s}", "state", "pending", "reason", err.message);
    if (set)
      pc->st->cas(pc->u, coll, now_doc, set, "deploy not started", err.message, "autodeploy/cycle", NULL);
  }
  json_decref(set);
  json_decref(res);
  json_decref(doc);
  json_decref(now_doc);
}

/* deploy: the placed service moves to deploying by one update whose
 * condition is the _id and rev read for placement. That condition is what
 * keeps two cycles from placing one service twice: when another cycle
 * moved it first, nothing matches, and the service is left alone. */
void ad__cycle_step_deploy(ad__plat_cycle_t *pc, const json_t *svc, const json_t *hdoc,
                           const ad__decision_t *d, const json_t *dj)
{
  const char *hid = ad__jstr(hdoc, "_id");
  json_t *set = json_pack("{s:s,s:s,s:s,s:O,s:{s:f,s:f},s:s,s:I}", "state", "deploying", "host", hid,
                          "minion", ad__jstr(hdoc, "minion"), "decision", dj, "footprint", "cpu",
                          pc->fp.cpu, "mem_mb", pc->fp.mem, "reason", "placed", "placed_at_ms",
                          (json_int_t)pc->now);
  if (!set) {
    ad__cycle_report_error(pc, json_sprintf("placing %s: no memory", ad__jstr(svc, "_id")));
    return;
  }
  char cause[300];
  snprintf(cause, sizeof cause, "placed on %s (dominant share %.3f after placement)", hid,
           d->top[0].score);
  int rc = pc->st->cas(pc->u, pc->f->c.services, svc, set, "placed", cause, "autodeploy/cycle", NULL);
  json_decref(set);
  if (rc == 1)
    start_task(pc, ad__jstr(svc, "_id"), hdoc);
}
