/* plan_input.c - see plan_input.h. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "purchase/order_rules.h"
#include "purchase/plan_input.h"

static const char *str(const json_t *o, const char *k)
{
  return json_string_value(json_object_get(o, k));
}

static double num(const json_t *o, const char *k)
{
  json_t *v = json_object_get(o, k);
  return json_is_number(v) ? json_number_value(v) : 0;
}

long ad__order_outstanding(const json_t *order)
{
  int s = ad__order_state_parse(str(order, "state"));
  if (s < 0 || ad__order_state_is_end(s) || s == AD__OS_FULFILLED)
    return 0;
  long left = (long)json_integer_value(json_object_get(order, "count")) -
              (long)json_array_size(json_object_get(order, "arrived"));
  return left > 0 ? left : 0;
}

int ad__order_counts_for_caps(const json_t *order)
{
  int s = ad__order_state_parse(str(order, "state"));
  return s >= 0 && s != AD__OS_REJECTED && s != AD__OS_EXPIRED && s != AD__OS_FAILED &&
         s != AD__OS_CANCELLED;
}

static const json_t *platform_of(const json_t *platforms, const char *code)
{
  size_t i;
  json_t *p;
  json_array_foreach(platforms, i, p) {
    const char *id = str(p, "_id") ? str(p, "_id") : str(p, "code");
    if (id && code && !strcmp(id, code))
      return p;
  }
  return NULL;
}

/* The strings of `list` into lists[*k..]; *n their number. */
static const char *const *take_list(const json_t *list, const char **lists, size_t *k, size_t *n)
{
  const char *const *start = lists + *k;
  size_t i;
  json_t *v;
  *n = 0;
  json_array_foreach(list, i, v) if (json_string_value(v))
  {
    lists[(*k)++] = json_string_value(v);
    (*n)++;
  }
  return start;
}

static double waited_hours(const json_t *svc, int64_t now_ms)
{
  int64_t since = 0;
  const char *changed = str(svc, "state_changed_at");
  if (!changed || ad__time_parse(changed, &since))
    since = json_integer_value(json_object_get(svc, "created_at_ms"));
  return since > 0 && since < now_ms ? (double)(now_ms - since) / 3600000.0 : 0;
}

static void fill_profiles(const ad__purchase_conf_t *c, const json_t *orders, const char *today,
                          ad__plan_input_t *in)
{
  for (size_t i = 0; i < c->n_profiles; i++) {
    const ad__pprofile_t *pp = &c->profiles[i];
    in->profiles[i] = (ad__buy_profile_t){.name = pp->name, .region = pp->region,
                                          .flavour = pp->flavour, .capacity = pp->capacity,
                                          .cap_day = pp->cap_day, .cap_month = pp->cap_month};
  }
  size_t i;
  json_t *o;
  json_array_foreach(orders, i, o) {
    const char *day = str(o, "day") ? str(o, "day") : "";
    long count = (long)json_integer_value(json_object_get(o, "count"));
    int caps = ad__order_counts_for_caps(o), same_day = !strcmp(day, today),
        same_month = strlen(day) == 8 && !strncmp(day, today, 6);
    if (caps && same_day)
      in->req.ordered_day += count;
    if (caps && same_month)
      in->req.ordered_month += count;
    for (size_t k = 0; k < c->n_profiles; k++) {
      if (!str(o, "profile") || strcmp(str(o, "profile"), c->profiles[k].name))
        continue;
      in->profiles[k].pending += ad__order_outstanding(o);
      if (caps && same_day)
        in->profiles[k].ordered_day += count;
      if (caps && same_month)
        in->profiles[k].ordered_month += count;
    }
  }
}

int ad__plan_input_build(const ad__purchase_conf_t *c, double headroom, const json_t *services,
                         const json_t *platforms, const json_t *orders, const char *today,
                         int64_t now_ms, ad__plan_input_t *in, ad_error_t *err)
{
  memset(in, 0, sizeof *in);
  size_t ns = json_array_size(services), nl = 0, i;
  json_t *p;
  json_array_foreach(platforms, i, p)
    nl += json_array_size(json_object_get(p, "profiles")) + json_array_size(json_object_get(p, "regions"));
  in->waiting = calloc(ns ? ns : 1, sizeof *in->waiting);
  in->profiles = calloc(c->n_profiles ? c->n_profiles : 1, sizeof *in->profiles);
  /* every service may repeat its platform's lists */
  in->lists = calloc((nl ? nl : 1) * (ns ? ns : 1), sizeof *in->lists);
  in->keep = json_pack("[O,O,O]", services, platforms, orders ? orders : json_null());
  if (!in->waiting || !in->profiles || !in->lists || !in->keep) {
    ad__plan_input_free(in);
    return ad__err(err, AD_ENOMEM, "purchase", "no memory for %zu services", ns);
  }
  fill_profiles(c, orders, today, in);
  size_t k = 0;
  json_t *s;
  json_array_foreach(services, i, s) {
    const json_t *plat = platform_of(platforms, str(s, "platform"));
    if (!plat) {
      in->skipped++;
      continue;
    }
    const json_t *fp = json_object_get(s, "footprint");
    ad__waiting_t *w = &in->waiting[in->n_waiting++];
    w->service = str(s, "_id");
    w->platform = str(s, "platform");
    w->profiles = take_list(json_object_get(plat, "profiles"), in->lists, &k, &w->n_profiles);
    w->regions = take_list(json_object_get(plat, "regions"), in->lists, &k, &w->n_regions);
    w->need = (ad__dims_t){num(fp, "cpu"), num(fp, "mem_mb"), num(fp, "disk_gb")};
    w->waited_hours = waited_hours(s, now_ms);
    w->reason = str(s, "reason");
  }
  in->req = (ad__buy_req_t){.profiles = in->profiles, .n_profiles = c->n_profiles,
                            .headroom = headroom, .cap_day = c->cap_day,
                            .cap_month = c->cap_month, .ordered_day = in->req.ordered_day,
                            .ordered_month = in->req.ordered_month};
  return 0;
}

void ad__plan_input_free(ad__plan_input_t *in)
{
  free(in->waiting);
  free(in->profiles);
  free(in->lists);
  json_decref(in->keep);
  memset(in, 0, sizeof *in);
}
