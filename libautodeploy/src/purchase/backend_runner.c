/*
 * backend_runner.c - the `runner` order backend: the order is placed by a
 * Salt runner (a cloud whose official SDK is Python, or a site's own
 * script), started by the shipped reactor from a signed control event.
 * See backend_runner.h for the event bodies and docs/purchase.md.
 *
 * place() only fires: it returns AD__PLACE_LATER at once, and the order's
 * result arrives as autodeploy/order/<id>/placed. A fire that fails (the
 * master is restarting) is AD_EAGAIN: the caller fires again later with
 * the same _id, and the runner passes it as the cloud's client token, so a
 * second fire never makes a second order.
 *
 * Keys (purchase.backend, type "runner"):
 *   runner   the runner function, "module.function" (required)
 *   args     an object passed to the runner as its `options` (instance
 *            type defaults, image, network, ...); never credentials: the
 *            event is readable on the master bus
 *   dry_run  bool: ask the cloud to check the order without making it
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/sign.h"
#include "core/config.h"
#include "core/error_private.h"
#include "purchase/backend_runner.h"

typedef struct {
  char *type, *runner;
  int dry_run;
  json_t *args;
  ad__order_fire_fn fire;
  void *fire_user;
} runner_be_t;

#define K(name, type, field, def) {name, type, offsetof(runner_be_t, field), 0, 0, def, NULL}
static const ad__config_key_t RUNNER_KEYS[] = {
    K("type", AD_CT_STR, type, "runner"),
    K("runner", AD_CT_STR, runner, ""),
    K("dry_run", AD_CT_BOOL, dry_run, "false"),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__purchase_runner_keys(void) { return RUNNER_KEYS; }

static void runner_destroy(void *self)
{
  runner_be_t *r = self;
  if (!r)
    return;
  ad__config_free(RUNNER_KEYS, r);
  json_decref(r->args);
  free(r);
}

/* module.function, each a Python identifier: what the reactor accepts. */
static int runner_name_ok(const char *s)
{
  const char *dot = s ? strchr(s, '.') : NULL;
  if (!dot || dot == s || !dot[1] || strchr(dot + 1, '.') || strlen(s) > 100)
    return 0;
  for (const char *p = s; *p; p++)
    if (p != dot && !isalnum((unsigned char)*p) && *p != '_')
      return 0;
  return !isdigit((unsigned char)s[0]) && !isdigit((unsigned char)dot[1]);
}

static void *runner_create(const json_t *conf, ad_error_t *err)
{
  runner_be_t *r = calloc(1, sizeof *r);
  json_t *rest = json_is_object(conf) ? json_copy((json_t *)conf) : json_object();
  int rc = 0;
  if (!r || !rest) {
    rc = ad__err(err, AD_ENOMEM, "config", "no memory");
    goto done;
  }
  json_t *args = json_object_get(rest, "args");
  if (args && !json_is_object(args))
    rc = ad__err(err, AD_ECONFIG, "config", "purchase.backend.args: must be an object");
  r->args = args ? json_deep_copy(args) : json_object();
  json_object_del(rest, "args");
  if (!rc && ad__config_load(RUNNER_KEYS, r, rest, err)) {
    char m[sizeof err->message];
    snprintf(m, sizeof m, "%s", err ? err->message : "");
    rc = ad__err(err, AD_ECONFIG, "config", "purchase.backend%s%s",
                 strcspn(m, " ") < strcspn(m, ":") ? ": " : ".", m);
  }
  if (!rc && !runner_name_ok(r->runner))
    rc = ad__err(err, AD_ECONFIG, "config", "purchase.backend.runner: %s",
                 r->runner ? "must be module.function, e.g. autodeploy_aliyun.place"
                           : "is required (the Salt runner that places the order)");
done:
  json_decref(rest);
  if (rc) {
    runner_destroy(r);
    return NULL;
  }
  return r;
}

void ad__order_runner_set_fire(void *self, ad__order_fire_fn fn, void *user)
{
  runner_be_t *r = self;
  r->fire = fn;
  r->fire_user = user;
}

int ad__order_fire_signed(void *env, const char *tag, const json_t *body, ad_error_t *err)
{
  const ad__order_fire_env_t *e = env;
  return ad__fire_signed(e->bus, e->key_path, tag, body, err);
}

/* An order id as the reactor accepts it in a tag. */
static int id_ok(const char *id)
{
  size_t n = id ? strlen(id) : 0;
  if (!n || n > 128)
    return 0;
  for (; *id; id++)
    if (!isalnum((unsigned char)*id) && !strchr("_.:-", *id))
      return 0;
  return 1;
}

static int runner_place(void *self, const json_t *order, json_t **result, ad_error_t *err)
{
  runner_be_t *r = self;
  const char *id = json_string_value(json_object_get(order, "_id"));
  char tag[192];
  *result = NULL;
  if (!id_ok(id))
    return ad__err(err, AD_EINVAL, "purchase", "order: _id \"%.60s\" is not an id the reactor "
                   "takes (1-128 of A-Z a-z 0-9 _ . : -)", id ? id : "");
  if (!r->fire)
    return ad__err(err, AD_ESTATE, "purchase", "runner backend: no bus bound "
                   "(ad__order_runner_set_fire)");
  json_t *o = json_object();
  static const char *const KEEP[] = {"_id", "profile", "flavour", "region", "count", "reason",
                                     "platforms", NULL};
  for (int i = 0; KEEP[i]; i++)
    if (json_object_get(order, KEEP[i]))
      json_object_set(o, KEEP[i], json_object_get(order, KEEP[i]));
  json_t *body = json_pack("{s:s,s:s,s:b,s:O,s:o}", "id", id, "runner", r->runner, "dry_run",
                           r->dry_run, "args", r->args, "order", o);
  if (!body)
    return ad__err(err, AD_ENOMEM, "purchase", "order %s: no memory for the event", id);
  snprintf(tag, sizeof tag, "autodeploy/order/%s/place", id);
  ad_error_t e = {0};
  int rc = r->fire(r->fire_user, tag, body, &e);
  json_decref(body);
  if (rc) /* the bus or the key file: the same fire may work later */
    return ad__err(err, AD_EAGAIN, "purchase", "order %s: firing %s: %s", id, tag, e.message);
  *result = json_pack("{s:s,s:s,s:b}", "fired", tag, "runner", r->runner, "dry_run",
                      r->dry_run);
  return AD__PLACE_LATER;
}

/* The placed body's rules, one home for the engine's check of the event and
 * the order.placed command that makes it: NULL, or "<field>: <why>". */
static const char *placed_bad(const json_t *b, const char *tag_id)
{
  const json_t *id = json_object_get(b, "id"), *ok = json_object_get(b, "ok"),
               *dry = json_object_get(b, "dry_run"), *cid = json_object_get(b, "cloud_order_id"),
               *e = json_object_get(b, "error");
  if (!json_is_object(b))
    return "body: not a JSON object";
  if (!json_is_string(id) || strcmp(json_string_value(id), tag_id ? tag_id : ""))
    return "id: not the tag's order id";
  if (!json_is_boolean(ok))
    return "ok: must be true or false";
  if (dry && !json_is_null(dry) && !json_is_boolean(dry))
    return "dry_run: must be true or false";
  if (cid && !json_is_null(cid) && !json_is_string(cid))
    return "cloud_order_id: must be a string or null";
  if (e && !json_is_null(e) && !json_is_string(e))
    return "error: must be a string or null";
  if (json_is_true(ok) && !json_is_true(dry) && (!json_is_string(cid) || !*json_string_value(cid)))
    return "cloud_order_id: required when ok (unless dry_run)";
  if (json_is_false(ok) && !json_is_string(e))
    return "error: required (a string) when not ok";
  return NULL;
}

int ad__order_placed_check(const char *tag_id, const char *body, size_t len, json_t **result,
                           ad_error_t *err)
{
  json_error_t je;
  json_t *b = json_loadb(body, len, 0, &je);
  const char *bad = placed_bad(b, tag_id);
  *result = NULL;
  if (bad) {
    json_decref(b);
    return ad__err(err, AD_EINVAL, "purchase", "placed event for %.60s: %s",
                   tag_id ? tag_id : "?", bad);
  }
  const char *cid = json_string_value(json_object_get(b, "cloud_order_id"));
  const char *e = json_string_value(json_object_get(b, "error"));
  *result = json_pack("{s:s,s:b,s:s?,s:s?,s:b}", "id", tag_id, "ok",
                      json_is_true(json_object_get(b, "ok")), "cloud_order_id",
                      cid && *cid ? cid : NULL, "error", e, "dry_run",
                      json_is_true(json_object_get(b, "dry_run")));
  json_decref(b);
  return *result ? 0 : ad__err(err, AD_ENOMEM, "purchase", "no memory");
}

json_t *ad__order_placed_body(const json_t *args, ad_error_t *err)
{
  static const char *const KEYS[] = {"id", "ok", "cloud_order_id", "error", "dry_run", NULL};
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)args, k, v) {
    int known = 0;
    for (int i = 0; KEYS[i]; i++)
      known |= !strcmp(k, KEYS[i]);
    if (!known) {
      ad__err(err, AD_EINVAL, "args", "%.60s: unknown argument (order.placed takes id, ok, "
              "cloud_order_id, error, dry_run)", k);
      return NULL;
    }
  }
  const char *id = json_string_value(json_object_get(args, "id"));
  if (!id_ok(id)) {
    ad__err(err, AD_EINVAL, "args", "id: required, an order id (1-128 of A-Z a-z 0-9 _ . : -)");
    return NULL;
  }
  json_t *b = json_pack("{s:s,s:O?,s:O?,s:O?,s:O?}", "id", id, "ok", json_object_get(args, "ok"),
                        "cloud_order_id", json_object_get(args, "cloud_order_id"), "error",
                        json_object_get(args, "error"), "dry_run",
                        json_object_get(args, "dry_run"));
  if (!b) {
    ad__err(err, AD_ENOMEM, "args", "no memory");
    return NULL;
  }
  if (!json_object_get(b, "dry_run") || json_is_null(json_object_get(b, "dry_run")))
    json_object_set_new(b, "dry_run", json_false());
  const char *bad = placed_bad(b, id);
  if (bad) {
    json_decref(b);
    ad__err(err, AD_EINVAL, "args", "%s", bad);
    return NULL;
  }
  return b;
}

const ad__order_backend_t ad__order_backend_runner = {"runner", runner_create, runner_place,
                                                      runner_destroy};
