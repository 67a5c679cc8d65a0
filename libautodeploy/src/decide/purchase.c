/* purchase.c - see purchase.h: profile choice, first-fit decreasing, the
 * lower bound, pending orders and budget caps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_private.h"
#include "decide/pack.h"
#include "decide/placement.h"
#include "decide/purchase.h"

#define EPS 1e-9
#define D "purchase"

/* ---- checks ----------------------------------------------------------- */

static int dims_ok(const ad__dims_t *d, int positive)
{
  const double v[3] = {d->cpu, d->mem, d->disk};
  for (int i = 0; i < 3; i++)
    if (!isfinite(v[i]) || v[i] < 0 || (positive && v[i] <= 0))
      return 0;
  return 1;
}

static int cap_ok(long cap) { return cap == AD__CAP_NONE || cap >= 0; }

static int profile_check(const ad__buy_profile_t *p, size_t i, ad_error_t *err)
{
  if (!p->name || !*p->name)
    return ad__err(err, AD_EINVAL, D, "profiles[%zu]: no name", i);
  if (!p->flavour || !*p->flavour)
    return ad__err(err, AD_EINVAL, D, "profile %s: flavour: missing", p->name);
  if (!dims_ok(&p->capacity, 1))
    return ad__err(err, AD_EINVAL, D,
                   "profile %s: capacity of flavour %s: cpu, mem and disk must be > 0", p->name,
                   p->flavour);
  if (p->pending < 0 || p->ordered_day < 0 || p->ordered_month < 0)
    return ad__err(err, AD_EINVAL, D, "profile %s: pending/ordered counts must be >= 0", p->name);
  if (!cap_ok(p->cap_day))
    return ad__err(err, AD_EINVAL, D, "profile %s: cap_day %ld: must be >= 0 (or none)", p->name,
                   p->cap_day);
  if (!cap_ok(p->cap_month))
    return ad__err(err, AD_EINVAL, D, "profile %s: cap_month %ld: must be >= 0 (or none)",
                   p->name, p->cap_month);
  return 0;
}

int ad__buy_req_check(const ad__buy_req_t *req, ad_error_t *err)
{
  if (!req || (req->n_profiles && !req->profiles))
    return ad__err(err, AD_EINVAL, D, "NULL request or profile list");
  if (!(req->headroom > 0 && req->headroom <= 1))
    return ad__err(err, AD_EINVAL, D, "headroom %g: must be > 0 and <= 1", req->headroom);
  if (!cap_ok(req->cap_day))
    return ad__err(err, AD_EINVAL, D, "cap_day %ld: must be >= 0 (or none)", req->cap_day);
  if (!cap_ok(req->cap_month))
    return ad__err(err, AD_EINVAL, D, "cap_month %ld: must be >= 0 (or none)", req->cap_month);
  if (req->ordered_day < 0 || req->ordered_month < 0)
    return ad__err(err, AD_EINVAL, D, "ordered counts must be >= 0");
  for (size_t i = 0; i < req->n_profiles; i++) {
    int rc = profile_check(&req->profiles[i], i, err);
    if (rc)
      return rc;
    for (size_t j = 0; j < i; j++)
      if (!strcmp(req->profiles[j].name, req->profiles[i].name))
        return ad__err(err, AD_EINVAL, D, "profile %s: listed twice", req->profiles[i].name);
  }
  return 0;
}

/* ---- profile choice --------------------------------------------------- */

static ad__dims_t bin_of(const ad__buy_profile_t *p, double headroom)
{
  return (ad__dims_t){p->capacity.cpu * headroom, p->capacity.mem * headroom,
                      p->capacity.disk * headroom};
}

/* The profile index, or -1 with *why set. */
static long choose(const ad__waiting_t *w, const ad__buy_req_t *req, const char **why)
{
  int allowed = 0;
  for (size_t i = 0; i < req->n_profiles; i++) {
    const ad__buy_profile_t *p = &req->profiles[i];
    if (!ad__listed(p->name, w->profiles, w->n_profiles) ||
        !ad__listed(p->region, w->regions, w->n_regions))
      continue;
    allowed = 1;
    ad__dims_t bin = bin_of(p, req->headroom);
    if (ad__dims_fit(&w->need, &bin))
      return (long)i;
  }
  *why = allowed ? "larger than every allowed flavour"
                 : "no configured profile is allowed for its platform";
  return -1;
}

/* ---- caps ------------------------------------------------------------- */

static long left_under(long cap, long used)
{
  if (cap == AD__CAP_NONE)
    return -1;
  return cap > used ? cap - used : 0;
}

/* Cut *n to what `cap` leaves; name the cap when it bites. */
static void cut(long *n, long left, const char *name, const char **cut_by)
{
  if (left >= 0 && *n > left) {
    *n = left;
    *cut_by = name;
  }
}

static void cap_profile(ad__buy_line_t *l, const ad__buy_profile_t *p)
{
  l->to_order = l->needed;
  cut(&l->to_order, left_under(p->cap_day, p->ordered_day), "profile cap_day", &l->cut_by);
  cut(&l->to_order, left_under(p->cap_month, p->ordered_month), "profile cap_month", &l->cut_by);
}

static int by_wait(const void *a, const void *b, void *lines)
{
  const ad__buy_line_t *x = &((ad__buy_line_t *)lines)[*(const size_t *)a],
                       *y = &((ad__buy_line_t *)lines)[*(const size_t *)b];
  if (x->max_waited_hours != y->max_waited_hours)
    return x->max_waited_hours > y->max_waited_hours ? -1 : 1;
  return x->profile < y->profile ? -1 : x->profile > y->profile;
}

/* Total caps: the profile whose oldest service waited longest is served first. */
static int cap_total(ad__buy_plan_t *plan, const ad__buy_req_t *req)
{
  size_t *ord = malloc((plan->n_lines ? plan->n_lines : 1) * sizeof *ord);
  if (!ord)
    return -1;
  for (size_t i = 0; i < plan->n_lines; i++)
    ord[i] = i;
  qsort_r(ord, plan->n_lines, sizeof *ord, by_wait, plan->lines);
  long day = left_under(req->cap_day, req->ordered_day);
  long month = left_under(req->cap_month, req->ordered_month);
  plan->to_order = 0;
  for (size_t k = 0; k < plan->n_lines; k++) {
    ad__buy_line_t *l = &plan->lines[ord[k]];
    cut(&l->to_order, day, "cap_day", &l->cut_by);
    cut(&l->to_order, month, "cap_month", &l->cut_by);
    if (day >= 0)
      day -= l->to_order;
    if (month >= 0)
      month -= l->to_order;
    plan->to_order += l->to_order;
  }
  free(ord);
  return 0;
}

/* ---- plan ------------------------------------------------------------- */

static int check_waiting(const ad__waiting_t *w, size_t i, ad_error_t *err)
{
  if (!dims_ok(&w->need, 0) || (w->need.cpu <= 0 && w->need.mem <= 0 && w->need.disk <= 0))
    return ad__err(err, AD_EINVAL, D,
                   "service %s: need: cpu, mem and disk must be finite, >= 0, one > 0",
                   w->service ? w->service : "?");
  if ((w->n_profiles && !w->profiles) || (w->n_regions && !w->regions))
    return ad__err(err, AD_EINVAL, D, "waiting[%zu]: NULL profile or region list", i);
  return 0;
}

static int by_longest_wait(const void *a, const void *b, void *waiting)
{
  const ad__waiting_t *w = waiting;
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  if (w[i].waited_hours != w[j].waited_hours)
    return w[i].waited_hours > w[j].waited_hours ? -1 : 1;
  return i < j ? -1 : i > j;
}

/* Pack one profile's services and fill its counts. */
static int fill_line(ad__buy_line_t *l, const ad__waiting_t *waiting, const ad__buy_req_t *req)
{
  const ad__buy_profile_t *p = &req->profiles[l->profile];
  ad__dims_t *items = malloc(l->n_services * sizeof *items);
  if (!items)
    return -1;
  qsort_r(l->services, l->n_services, sizeof *l->services, by_longest_wait, (void *)waiting);
  for (size_t k = 0; k < l->n_services; k++) {
    const ad__waiting_t *w = &waiting[l->services[k]];
    items[k] = w->need;
    l->demand.cpu += w->need.cpu;
    l->demand.mem += w->need.mem;
    l->demand.disk += w->need.disk;
    l->max_waited_hours = fmax(l->max_waited_hours, w->waited_hours);
  }
  ad__dims_t bin = bin_of(p, req->headroom);
  l->packed = ad__pack_best(items, l->n_services, bin, &l->packer, &l->packed_ffd);
  l->volume_bound = ad__pack_lower_bound(l->demand, bin);
  long dff = ad__pack_lower_bound_dff(items, l->n_services, bin);
  long con = ad__pack_lower_bound_conflicts(items, l->n_services, bin);
  free(items);
  if (l->packed < 0 || con < 0)
    return -1;
  l->lower_bound = l->volume_bound > dff ? l->volume_bound : dff;
  if (con > l->lower_bound)
    l->lower_bound = con;
  l->pending = p->pending < l->packed ? p->pending : l->packed;
  l->needed = l->packed - l->pending;
  cap_profile(l, p);
  return 0;
}

/* Sort every service into its profile's line (or unfit). `choice` holds
 * each service's profile index or -1. */
static int group(const ad__waiting_t *waiting, size_t n, const long *choice, const char **why,
                 const ad__buy_req_t *req, ad__buy_plan_t *out)
{
  size_t *count = calloc(req->n_profiles + 1, sizeof *count);
  if (!count)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (choice[i] >= 0)
      count[choice[i]]++;
    else
      out->unfit[out->n_unfit++] = (ad__unfit_t){i, why[i]};
  for (size_t p = 0; p < req->n_profiles; p++) {
    if (!count[p])
      continue;
    ad__buy_line_t *l = &out->lines[out->n_lines++];
    *l = (ad__buy_line_t){.profile = p};
    l->services = malloc(count[p] * sizeof *l->services);
    if (!l->services) {
      free(count);
      return -1;
    }
    for (size_t i = 0; i < n; i++)
      if (choice[i] == (long)p)
        l->services[l->n_services++] = i;
  }
  free(count);
  return 0;
}

int ad__buy_plan(const ad__waiting_t *waiting, size_t n, const ad__buy_req_t *req,
                 ad__buy_plan_t *out, ad_error_t *err)
{
  long *choice = NULL;
  const char **why = NULL;
  int rc;
  if (!out)
    return ad__err(err, AD_EINVAL, D, "NULL plan");
  memset(out, 0, sizeof *out);
  if ((rc = ad__buy_req_check(req, err)))
    return rc;
  if (n && !waiting)
    return ad__err(err, AD_EINVAL, D, "NULL waiting services");
  for (size_t i = 0; i < n; i++)
    if ((rc = check_waiting(&waiting[i], i, err)))
      return rc;
  choice = malloc((n ? n : 1) * sizeof *choice);
  why = calloc(n ? n : 1, sizeof *why);
  out->lines = calloc(req->n_profiles ? req->n_profiles : 1, sizeof *out->lines);
  out->unfit = calloc(n ? n : 1, sizeof *out->unfit);
  if (!choice || !why || !out->lines || !out->unfit)
    goto nomem;
  for (size_t i = 0; i < n; i++)
    choice[i] = choose(&waiting[i], req, &why[i]);
  if (group(waiting, n, choice, why, req, out))
    goto nomem;
  for (size_t k = 0; k < out->n_lines; k++)
    if (fill_line(&out->lines[k], waiting, req))
      goto nomem;
  if (cap_total(out, req))
    goto nomem;
  free(choice);
  free(why);
  return 0;
nomem:
  free(choice);
  free(why);
  return ad__err(err, AD_ENOMEM, D, "out of memory planning %zu services", n);
}

void ad__buy_plan_free(ad__buy_plan_t *plan)
{
  if (!plan)
    return;
  for (size_t i = 0; i < plan->n_lines; i++)
    free(plan->lines[i].services);
  free(plan->lines);
  free(plan->unfit);
  memset(plan, 0, sizeof *plan);
}

/* ---- JSON ------------------------------------------------------------- */

static json_t *dims_json(ad__dims_t d)
{
  return json_pack("{s:f,s:f,s:f}", "cpu", d.cpu, "mem", d.mem, "disk", d.disk);
}

static json_t *service_json(const ad__waiting_t *w)
{
  return json_pack("{s:s?,s:s?,s:f,s:s?,s:o}", "service", w->service, "platform", w->platform,
                   "waited_hours", w->waited_hours, "reason", w->reason, "need",
                   dims_json(w->need));
}

static json_t *line_json(const ad__buy_line_t *l, const ad__waiting_t *waiting,
                         const ad__buy_req_t *req)
{
  const ad__buy_profile_t *p = &req->profiles[l->profile];
  json_t *svcs = json_array();
  for (size_t k = 0; svcs && k < l->n_services; k++)
    if (json_array_append_new(svcs, service_json(&waiting[l->services[k]]))) {
      json_decref(svcs);
      return NULL;
    }
  return json_pack("{s:s,s:s,s:o,s:o*,s:o,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:s?,s:f}",
                   "profile", p->name, "flavour", p->flavour, "capacity",
                   dims_json(p->capacity), "services", svcs, "demand", dims_json(l->demand),
                   "packed", (json_int_t)l->packed, "packed_ffd", (json_int_t)l->packed_ffd,
                   "packer", l->packer, "lower_bound", (json_int_t)l->lower_bound,
                   "volume_bound", (json_int_t)l->volume_bound, "pending", (json_int_t)l->pending,
                   "needed", (json_int_t)l->needed, "to_order", (json_int_t)l->to_order,
                   "cut_by", l->cut_by, "max_waited_hours", l->max_waited_hours);
}

json_t *ad__buy_plan_to_json(const ad__buy_plan_t *plan, const ad__waiting_t *waiting,
                             const ad__buy_req_t *req)
{
  json_t *lines = json_array(), *unfit = json_array();
  for (size_t i = 0; lines && i < plan->n_lines; i++)
    if (json_array_append_new(lines, line_json(&plan->lines[i], waiting, req)))
      goto fail;
  for (size_t i = 0; unfit && i < plan->n_unfit; i++) {
    const ad__waiting_t *w = &waiting[plan->unfit[i].service];
    if (json_array_append_new(unfit, json_pack("{s:s?,s:s?,s:o,s:s}", "service", w->service,
                                               "platform", w->platform, "need",
                                               dims_json(w->need), "why", plan->unfit[i].why)))
      goto fail;
  }
  if (!lines || !unfit)
    goto fail;
  return json_pack("{s:I,s:f,s:o,s:o}", "to_order", (json_int_t)plan->to_order, "headroom",
                   req->headroom, "lines", lines, "unfit", unfit);
fail:
  json_decref(lines);
  json_decref(unfit);
  return NULL;
}
