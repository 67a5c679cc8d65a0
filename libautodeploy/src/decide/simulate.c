/* simulate.c - the cycle loop and the report (simulate.h, docs/placement.md).
 *
 * Each cycle at time T, per platform in input order:
 *   1. replay what happened since the last cycle in time order: deploys
 *      that finished become idle servers (or go straight to the oldest
 *      waiting opening), openings take an idle server or wait for one;
 *   2. size the reserve from the openings up to T (reserve.c);
 *   3. want = reserve + openings waiting; add services so that
 *      idle + deploying + waiting_resources reaches it;
 *   4. place every service waiting for resources (placement.c), oldest
 *      first; placed ones are ready at T + deploy_minutes, the rest wait a
 *      cycle (and, with buy, may order a host).
 * Services never close, so a host's load only grows: every placed
 * footprint stays on it. Bought hosts arrive host_lead_hours after the
 * cycle that ordered them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "decide/simulate_private.h"

#define D "simulate"

static int64_t tq_front(const ad__tq_t *q) { return q->v[q->head]; }
static void tq_pop(ad__tq_t *q)
{
  q->head++;
  q->len--;
}

static int allows(const ad__sim_platform_t *p, const char *profile, const char *region)
{
  int ok = p->req.n_profiles == 0, okr = p->req.n_regions == 0;
  for (size_t i = 0; !ok && profile && i < p->req.n_profiles; i++)
    ok = strcmp(profile, p->profiles[i]) == 0;
  for (size_t i = 0; !okr && region && i < p->req.n_regions; i++)
    okr = strcmp(region, p->regions[i]) == 0;
  return ok && okr;
}

/* Step 1 for one platform: events in (.., T] in time order; a deploy that
 * finishes at the same instant as an opening serves it. */
static void replay(ad__sim_platform_t *p, int64_t start, int64_t T)
{
  for (;;) {
    int64_t dep = p->deploying.len ? tq_front(&p->deploying) : INT64_MAX;
    while (p->replay < p->n_open && p->open[p->replay] < start)
      p->replay++; /* history only */
    int64_t op = p->replay < p->n_open ? p->open[p->replay] : INT64_MAX;
    if (dep > T && op > T)
      return;
    if (dep <= op) {
      tq_pop(&p->deploying);
      if (p->waiting_open.len) {
        double w = (double)(dep - tq_front(&p->waiting_open));
        tq_pop(&p->waiting_open);
        p->open_wait_ms += w;
        if (w > p->max_wait_ms)
          p->max_wait_ms = w;
        p->opened++;
      } else {
        p->idle++;
      }
    } else {
      p->replay++;
      p->replayed++;
      if (p->idle > 0) {
        p->idle--;
        p->opened++;
      } else {
        p->waited++;
        ad__tq_push(&p->waiting_open, op);
      }
    }
  }
}

static int reserve_at(ad__sim_platform_t *p, int64_t T, ad_error_t *err)
{
  /* openings up to T: a prefix of the sorted array; the window's lower
   * edge is reserve.c's business */
  size_t lo = 0, hi = p->n_open;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (p->open[mid] <= T)
      lo = mid + 1;
    else
      hi = mid;
  }
  /* and skip what is older than the window, by search too */
  int64_t edge = T - (int64_t)p->policy.window_days * 86400000 - 1;
  size_t a = 0, b = lo;
  while (a < b) {
    size_t mid = a + (b - a) / 2;
    if (p->open[mid] < edge)
      a = mid + 1;
    else
      b = mid;
  }
  int r = ad__reserve_size(&p->policy, p->open ? p->open + a : NULL, lo - a, T, 0, &p->why, err);
  if (r < 0)
    return r;
  if (p->reserve_lo < 0 || r < p->reserve_lo)
    p->reserve_lo = r;
  if (r > p->reserve_hi)
    p->reserve_hi = r;
  p->reserve_last = r;
  return r;
}

/* With buy on: cover `n` newly waiting services of platform `pi` by
 * in-transit orders, ordering hosts as needed. */
static int order_hosts(ad__sim_t *s, size_t pi, long n, int64_t T, ad_error_t *err)
{
  ad__sim_platform_t *p = &s->p[pi];
  if (!allows(p, s->buy_profile, s->buy_region))
    return 0; /* buying this host would not help this platform */
  double fc = p->req.footprint.cpu, fm = p->req.footprint.mem;
  if (fc > s->buy_cap.cpu * p->req.headroom || fm > s->buy_cap.mem * p->req.headroom)
    return 0; /* nor would it fit on one */
  for (long k = 0; k < n; k++) {
    ad__sim_order_t *o = NULL;
    for (size_t i = 0; i < s->n_orders && !o; i++)
      if (s->orders[i].arrive > T && s->orders[i].cpu >= fc && s->orders[i].mem >= fm)
        o = &s->orders[i];
    if (!o) {
      if (s->n_orders == s->cap_orders) {
        size_t nc = s->cap_orders ? 2 * s->cap_orders : 8;
        ad__sim_order_t *v = realloc(s->orders, nc * sizeof *v);
        if (!v)
          return ad__err(err, AD_ENOMEM, D, "orders: out of memory");
        s->orders = v;
        s->cap_orders = nc;
      }
      o = &s->orders[s->n_orders];
      o->assigned = calloc(s->np, sizeof *o->assigned);
      if (!o->assigned)
        return ad__err(err, AD_ENOMEM, D, "orders: out of memory");
      s->n_orders++;
      o->arrive = T + s->lead_ms;
      o->cpu = s->buy_cap.cpu * s->headroom;
      o->mem = s->buy_cap.mem * s->headroom;
      s->bought++;
    }
    o->cpu -= fc;
    o->mem -= fm;
    o->assigned[pi]++;
    p->covered++;
  }
  return 0;
}

static int arrivals(ad__sim_t *s, int64_t T, ad_error_t *err)
{
  for (size_t i = 0; i < s->n_orders; i++) {
    ad__sim_order_t *o = &s->orders[i];
    if (o->arrive > T || o->arrive == INT64_MIN)
      continue;
    if (s->nh == s->cap_h) {
      ad__host_t *v = realloc(s->hosts, 2 * s->cap_h * sizeof *v);
      if (!v)
        return ad__err(err, AD_ENOMEM, D, "hosts: out of memory");
      s->hosts = v;
      s->cap_h *= 2;
    }
    if (s->n_owned == s->cap_owned) {
      size_t nc = s->cap_owned ? 2 * s->cap_owned : 16;
      char **v = realloc(s->owned, nc * sizeof *v);
      if (!v)
        return ad__err(err, AD_ENOMEM, D, "hosts: out of memory");
      s->owned = v;
      s->cap_owned = nc;
    }
    char key[32];
    snprintf(key, sizeof key, "bought-%04zu", s->n_owned + 1);
    char *k = strdup(key);
    if (!k)
      return ad__err(err, AD_ENOMEM, D, "hosts: out of memory");
    s->owned[s->n_owned++] = k;
    ad__host_t *h = &s->hosts[s->nh++];
    memset(h, 0, sizeof *h);
    h->key = k;
    h->placeable = 1;
    h->profile = s->buy_profile;
    h->region = s->buy_region;
    h->capacity = s->buy_cap;
    for (size_t j = 0; j < s->np; j++) {
      s->p[j].covered -= o->assigned[j];
      o->assigned[j] = 0;
    }
    o->arrive = INT64_MIN; /* done */
  }
  return 0;
}

static int place(ad__sim_t *s, size_t pi, int64_t T, ad_error_t *err)
{
  ad__sim_platform_t *p = &s->p[pi];
  if (p->waiting_res <= 0)
    return 0;
  ad__decision_t *d = malloc((size_t)p->waiting_res * sizeof *d);
  if (!d)
    return ad__err(err, AD_ENOMEM, D, "decisions: out of memory");
  long placed = ad__place(s->hosts, s->nh, &p->req, (size_t)p->waiting_res, d, err);
  free(d);
  if (placed < 0)
    return (int)placed;
  for (long k = 0; k < placed; k++)
    if (ad__tq_push(&p->deploying, T + s->deploy_ms) != 0)
      return ad__err(err, AD_ENOMEM, D, "deploys: out of memory");
  p->deployed += placed;
  p->waiting_res -= placed;
  if (p->covered > p->waiting_res)
    p->covered = p->waiting_res;
  p->res_wait_ms += (double)p->waiting_res * (double)s->cycle_ms;
  if (s->buy && p->waiting_res > p->covered)
    return order_hosts(s, pi, p->waiting_res - p->covered, T, err);
  return 0;
}

static int sample(ad__sim_platform_t *p)
{
  if (!p->s_reserve) {
    p->s_reserve = json_array();
    p->s_idle = json_array();
    p->s_waiting = json_array();
  }
  if (!p->s_reserve || !p->s_idle || !p->s_waiting)
    return AD_ENOMEM;
  return json_array_append_new(p->s_reserve, json_integer(p->reserve_last)) |
         json_array_append_new(p->s_idle, json_integer(p->idle)) |
         json_array_append_new(p->s_waiting, json_integer(p->waiting_res));
}

/* Pack what still waits onto new hosts of the buy size (or the largest
 * host), first fit decreasing by footprint: how many would have to be
 * bought. Services no such host can take are counted apart. */
static json_t *to_buy(ad__sim_t *s, long *n_hosts_out)
{
  ad__res_t cap = s->buy_cap;
  const char *prof = s->buy_profile, *reg = s->buy_region;
  if (!s->buy)
    for (size_t i = 0; i < s->n_input_hosts; i++) {
      ad__host_t *h = &s->hosts[i];
      if (h->capacity.cpu > cap.cpu || (h->capacity.cpu == cap.cpu && h->capacity.mem > cap.mem))
        cap = h->capacity, prof = h->profile, reg = h->region;
    }
  size_t *ord = malloc((s->np + 1) * sizeof *ord);
  long n = 0, services = 0, stuck = 0, nb = 0, capb = 0;
  ad__res_t *bins = NULL;
  for (size_t i = 0; ord && i < s->np; i++)
    ord[i] = i;
  for (size_t i = 1; ord && i < s->np; i++) { /* biggest footprint first */
    size_t x = ord[i], j = i;
    while (j > 0 && s->p[ord[j - 1]].req.footprint.cpu < s->p[x].req.footprint.cpu) {
      ord[j] = ord[j - 1];
      j--;
    }
    ord[j] = x;
  }
  for (size_t i = 0; ord && i < s->np; i++) {
    ad__sim_platform_t *p = &s->p[ord[i]];
    double fc = p->req.footprint.cpu, fm = p->req.footprint.mem;
    for (long k = 0; k < p->waiting_res; k++) {
      services++;
      if (!allows(p, prof, reg) || cap.cpu <= 0 || fc > cap.cpu * p->req.headroom ||
          fm > cap.mem * p->req.headroom) {
        stuck++;
        continue;
      }
      long b = 0;
      while (b < nb && (bins[b].cpu + fc > cap.cpu * p->req.headroom ||
                        bins[b].mem + fm > cap.mem * p->req.headroom))
        b++;
      if (b == nb) {
        if (nb == capb) {
          capb = capb ? 2 * capb : 8;
          ad__res_t *v = realloc(bins, (size_t)capb * sizeof *v);
          if (!v)
            break;
          bins = v;
        }
        bins[nb].cpu = bins[nb].mem = 0;
        nb++;
      }
      bins[b].cpu += fc;
      bins[b].mem += fm;
    }
  }
  n = nb;
  free(bins);
  free(ord);
  *n_hosts_out = n;
  return json_pack("{s:I, s:f, s:f, s:s?, s:s?, s:I, s:I}", "hosts", (json_int_t)n, "cpu", cap.cpu,
                   "mem", cap.mem, "profile", prof, "region", reg, "services",
                   (json_int_t)services, "not_coverable", (json_int_t)stuck);
}

static json_t *report(ad__sim_t *s, long cycles)
{
  char a[32], b[32];
  ad__iso_format(s->start, AD__ISO_S, a);
  ad__iso_format(s->end, AD__ISO_S, b);
  json_t *per = json_object(), *ow = json_object(), *rw = json_object();
  double ow_total = 0, rw_total = 0, ow_max = 0;
  long openings = 0, waited = 0;
  for (size_t i = 0; i < s->np; i++) {
    ad__sim_platform_t *p = &s->p[i];
    /* openings still waiting at the end waited until the end */
    double still = 0;
    for (size_t k = 0; k < p->waiting_open.len; k++) {
      double w = (double)(s->end - p->waiting_open.v[p->waiting_open.head + k]);
      still += w;
      if (w > p->max_wait_ms)
        p->max_wait_ms = w;
    }
    double owh = (p->open_wait_ms + still) / 3600e3, rwh = p->res_wait_ms / 3600e3;
    ow_total += owh;
    rw_total += rwh;
    if (p->max_wait_ms / 3600e3 > ow_max)
      ow_max = p->max_wait_ms / 3600e3;
    openings += p->replayed;
    waited += p->waited;
    json_object_set_new(ow, p->code, json_real(owh));
    json_object_set_new(rw, p->code, json_real(rwh));
    json_t *o = json_pack(
        "{s:I, s:I, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:f, s:{s:i, s:i, s:i}, s:o*,"
        " s:{s:s, s:f, s:O*, s:O*, s:O*}}",
        "openings", (json_int_t)p->replayed, "openings_waited", (json_int_t)p->waited,
        "opening_wait_hours", owh, "max_opening_wait_hours", p->max_wait_ms / 3600e3,
        "openings_still_waiting", (json_int_t)p->waiting_open.len, "deployed",
        (json_int_t)p->deployed, "idle_at_end", (json_int_t)p->idle, "deploying_at_end",
        (json_int_t)p->deploying.len, "waiting_resources_at_end", (json_int_t)p->waiting_res,
        "resource_wait_hours", rwh, "reserve", "min", p->reserve_lo < 0 ? 0 : p->reserve_lo,
        "max", p->reserve_hi, "last", p->reserve_last, "why", ad__reserve_to_json(&p->why),
        "series", "start", a, "every_minutes", (double)s->sample_ms / 60000, "reserve",
        p->s_reserve, "idle", p->s_idle, "waiting_resources", p->s_waiting);
    if (o && p->footprint)
      json_object_set(o, "footprint", p->footprint);
    json_object_set_new(per, p->code, o);
  }
  size_t used = 0;
  for (size_t i = 0; i < s->nh; i++)
    used += s->hosts[i].pending.cpu > 0 || s->hosts[i].pending.mem > 0;
  long nbuy = 0;
  json_t *tb = to_buy(s, &nbuy);
  return json_pack(
      "{s:s, s:s, s:I, s:f, s:f, s:I, s:I, s:{s:f, s:f, s:o}, s:{s:f, s:o},"
      " s:{s:I, s:I, s:I, s:b}, s:o, s:o}",
      "start", a, "end", b, "cycles", (json_int_t)cycles, "cycle_minutes",
      (double)s->cycle_ms / 60000, "deploy_minutes", (double)s->deploy_ms / 60000, "openings",
      (json_int_t)openings, "openings_waited", (json_int_t)waited, "opening_wait_hours", "total",
      ow_total, "max", ow_max, "per_platform", ow, "resource_wait_hours", "total", rw_total,
      "per_platform", rw, "hosts", "total", (json_int_t)s->nh, "used", (json_int_t)used,
      "bought", (json_int_t)s->bought, "buy", s->buy, "to_buy", tb, "platforms", per);
}

json_t *ad__simulate(const json_t *input, ad_error_t *err)
{
  ad__sim_t s;
  memset(&s, 0, sizeof s);
  json_t *out = NULL;
  if (ad__sim_load(&s, input, err) != 0)
    goto done;
  int64_t next_sample = s.start;
  long cycles = 0;
  for (int64_t T = s.start; T <= s.end; T += s.cycle_ms, cycles++) {
    if (s.buy && arrivals(&s, T, err) != 0)
      goto done;
    int take_sample = T >= next_sample;
    for (size_t i = 0; i < s.np; i++) {
      ad__sim_platform_t *p = &s.p[i];
      replay(p, s.start, T);
      int r = reserve_at(p, T, err);
      if (r < 0)
        goto done;
      long want = r + (long)p->waiting_open.len;
      long have = p->idle + (long)p->deploying.len + p->waiting_res;
      if (want > have)
        p->waiting_res += want - have;
      if (place(&s, i, T, err) != 0)
        goto done;
      if (take_sample && sample(p) != 0) {
        ad__err(err, AD_ENOMEM, D, "samples: out of memory");
        goto done;
      }
    }
    if (take_sample)
      next_sample += s.sample_ms * ((T - next_sample) / s.sample_ms + 1);
  }
  out = report(&s, cycles);
  if (!out)
    ad__err(err, AD_ENOMEM, D, "report: out of memory");
done:
  ad__sim_free(&s);
  return out;
}
