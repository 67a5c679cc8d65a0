/* placement.c - least-loaded fitting host by dominant share (placement.h).
 *
 * One call places S services of one platform. The footprint is fixed for
 * the call and loads only grow, so a host that stops fitting never fits
 * again within it. That makes a min-heap exact: filter once (O(H)),
 * heapify (O(H)), then per service take the root, add the footprint, and
 * sift it down or drop it (O(log H)). The naive scan below makes the same
 * decisions in O(H x S); tests compare the two, the benchmark times them. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_private.h"
#include "decide/placement.h"

typedef struct {
  double score, sum, free_cpu;
  size_t idx;
} ent_t;

/* Static verdict per host, decided once per call. */
enum { V_OK, V_UNREACHABLE, V_INVALID, V_PROFILE, V_REGION };

void ad__place_req_default(ad__place_req_t *req)
{
  memset(req, 0, sizeof *req);
  req->headroom = 0.8;
  req->top_k = 5;
}

ad__res_t ad__host_projected(const ad__host_t *h)
{
  ad__res_t r = {h->p95.cpu + h->pending.cpu, h->p95.mem + h->pending.mem};
  return r;
}

static int finite_nonneg(double x) { return isfinite(x) && x >= 0; }

int ad__listed(const char *s, const char *const *list, size_t n)
{
  if (n == 0)
    return 1;
  if (!s)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (list[i] && strcmp(s, list[i]) == 0)
      return 1;
  return 0;
}

static int verdict(const ad__host_t *h, const ad__place_req_t *req)
{
  if (!h->placeable)
    return V_UNREACHABLE;
  if (!h->key || !(h->capacity.cpu > 0) || !(h->capacity.mem > 0) || !isfinite(h->capacity.cpu) ||
      !isfinite(h->capacity.mem) || !finite_nonneg(h->p95.cpu) || !finite_nonneg(h->p95.mem) ||
      !finite_nonneg(h->pending.cpu) || !finite_nonneg(h->pending.mem))
    return V_INVALID;
  if (!ad__listed(h->profile, req->profiles, req->n_profiles))
    return V_PROFILE;
  if (!ad__listed(h->region, req->regions, req->n_regions))
    return V_REGION;
  return V_OK;
}

/* Score the host as if one more footprint landed on it. Returns 0 when it
 * fits, else 1 (cpu), 2 (mem) or 3 (both). */
static int evaluate(const ad__host_t *h, const ad__place_req_t *req, size_t idx, ent_t *e)
{
  double cpu = h->p95.cpu + h->pending.cpu + req->footprint.cpu;
  double mem = h->p95.mem + h->pending.mem + req->footprint.mem;
  int over = (cpu > h->capacity.cpu * req->headroom) | (mem > h->capacity.mem * req->headroom) << 1;
  double sc = cpu / h->capacity.cpu, sm = mem / h->capacity.mem;
  e->score = sc > sm ? sc : sm;
  e->sum = sc + sm;
  e->free_cpu = h->capacity.cpu - cpu;
  e->idx = idx;
  return over;
}

/* The documented order: a total order (index last, for duplicate keys). */
static int better(const ent_t *a, const ent_t *b, const ad__host_t *hosts)
{
  if (a->score != b->score)
    return a->score < b->score;
  if (a->sum != b->sum)
    return a->sum < b->sum;
  if (a->free_cpu != b->free_cpu)
    return a->free_cpu > b->free_cpu;
  int c = strcmp(hosts[a->idx].key, hosts[b->idx].key);
  if (c)
    return c < 0;
  return a->idx < b->idx;
}

static void to_cand(const ent_t *e, const ad__host_t *hosts, const ad__place_req_t *req,
                    ad__cand_t *c)
{
  const ad__host_t *h = &hosts[e->idx];
  c->host = e->idx;
  c->score = e->score;
  c->cpu = (h->p95.cpu + h->pending.cpu + req->footprint.cpu) / h->capacity.cpu;
  c->mem = (h->p95.mem + h->pending.mem + req->footprint.mem) / h->capacity.mem;
  c->free_cpu = e->free_cpu;
}

static int check_req(const ad__host_t *hosts, size_t n_hosts, const ad__place_req_t *req,
                     size_t n_services, const ad__decision_t *out, ad_error_t *err)
{
  if (!req || (n_hosts && !hosts) || (n_services && !out))
    return ad__err(err, AD_EINVAL, "placement", "NULL hosts, request or output");
  const char *p = req->code ? req->code : "?";
  if (!finite_nonneg(req->footprint.cpu) || !finite_nonneg(req->footprint.mem) ||
      !(req->footprint.cpu > 0 || req->footprint.mem > 0))
    return ad__err(err, AD_EINVAL, "placement",
                   "platform %s: footprint cpu %g / mem %g: need finite values >= 0, one > 0", p,
                   req->footprint.cpu, req->footprint.mem);
  if (!(req->headroom > 0 && req->headroom <= 1))
    return ad__err(err, AD_EINVAL, "placement", "platform %s: headroom %g: must be > 0 and <= 1",
                   p, req->headroom);
  if (req->top_k > AD__TOP_K_MAX)
    return ad__err(err, AD_EINVAL, "placement", "platform %s: top_k %zu: at most %d", p,
                   req->top_k, AD__TOP_K_MAX);
  if ((req->n_profiles && !req->profiles) || (req->n_regions && !req->regions))
    return ad__err(err, AD_EINVAL, "placement", "platform %s: NULL profile or region list", p);
  return 0;
}

static void add_reject(ad__rejects_t *r, int what)
{
  switch (what) {
  case V_UNREACHABLE: r->unreachable++; break;
  case V_INVALID: r->invalid++; break;
  case V_PROFILE: r->profile++; break;
  case V_REGION: r->region++; break;
  }
}

static void add_over(ad__rejects_t *r, int over)
{
  if (over == 1)
    r->cpu++;
  else if (over == 2)
    r->mem++;
  else
    r->both++;
}

static void no_fit(ad__decision_t *d, const ad__place_req_t *req)
{
  d->host = -1;
  d->n_top = 0;
  const ad__rejects_t *r = &d->rejected;
  char *w = d->reason, *end = d->reason + sizeof d->reason;
  w += snprintf(w, (size_t)(end - w), "no host fits cpu %.1f/mem %.0f", req->footprint.cpu,
                req->footprint.mem);
  const struct { size_t n; const char *what; } parts[] = {
      {r->cpu, "too full on cpu"}, {r->mem, "too full on mem"},
      {r->both, "too full on cpu and mem"}, {r->unreachable, "unreachable"},
      {r->profile, "profile not allowed"}, {r->region, "region not allowed"},
      {r->invalid, "without valid capacity or load"}};
  const char *sep = ": ";
  int any = 0;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    if (!parts[i].n || w >= end)
      continue;
    w += snprintf(w, (size_t)(end - w), "%s%zu %s %s", sep, parts[i].n,
                  parts[i].n == 1 ? "host" : "hosts", parts[i].what);
    sep = ", ";
    any = 1;
  }
  if (!any && w < end)
    snprintf(w, (size_t)(end - w), ": no hosts");
}

/* ---- heap ---------------------------------------------------------------- */

static void sift_down(ent_t *h, size_t n, size_t i, const ad__host_t *hosts)
{
  ent_t x = h[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && better(&h[c + 1], &h[c], hosts))
      c++;
    if (!better(&h[c], &x, hosts))
      break;
    h[i] = h[c];
    i = c;
  }
  h[i] = x;
}

/* The k best entries in order without disturbing the heap: best-first
 * walk from the root; the frontier never holds more than k + 1 entries. */
static size_t heap_top(const ent_t *h, size_t n, size_t k, const ad__host_t *hosts,
                       size_t *outi)
{
  size_t front[2 * AD__TOP_K_MAX + 2], nf = 0, got = 0;
  if (n && k)
    front[nf++] = 0;
  while (got < k && nf) {
    size_t b = 0;
    for (size_t j = 1; j < nf; j++)
      if (better(&h[front[j]], &h[front[b]], hosts))
        b = j;
    size_t i = front[b];
    front[b] = front[--nf];
    outi[got++] = i;
    for (size_t c = 2 * i + 1; c <= 2 * i + 2 && c < n; c++)
      front[nf++] = c;
  }
  return got;
}

long ad__place(ad__host_t *hosts, size_t n_hosts, const ad__place_req_t *req,
               size_t n_services, ad__decision_t *out, ad_error_t *err)
{
  int rc = check_req(hosts, n_hosts, req, n_services, out, err);
  if (rc)
    return rc;
  ent_t *heap = malloc((n_hosts ? n_hosts : 1) * sizeof *heap);
  if (!heap)
    return ad__err(err, AD_ENOMEM, "placement", "heap of %zu hosts", n_hosts);
  ad__rejects_t rej;
  memset(&rej, 0, sizeof rej);
  size_t n = 0;
  for (size_t i = 0; i < n_hosts; i++) {
    int v = verdict(&hosts[i], req);
    if (v != V_OK) {
      add_reject(&rej, v);
      continue;
    }
    int over = evaluate(&hosts[i], req, i, &heap[n]);
    if (over)
      add_over(&rej, over);
    else
      n++;
  }
  for (size_t i = n / 2; i-- > 0;)
    sift_down(heap, n, i, hosts);

  long placed = 0;
  for (size_t s = 0; s < n_services; s++) {
    ad__decision_t *d = &out[s];
    d->rejected = rej;
    d->fitting = n;
    if (n == 0) {
      no_fit(d, req);
      continue;
    }
    size_t top[AD__TOP_K_MAX];
    d->n_top = heap_top(heap, n, req->top_k ? req->top_k : 1, hosts, top);
    for (size_t j = 0; j < d->n_top; j++)
      to_cand(&heap[top[j]], hosts, req, &d->top[j]);
    d->host = (long)heap[0].idx;
    d->reason[0] = '\0';
    placed++;

    ad__host_t *h = &hosts[heap[0].idx];
    h->pending.cpu += req->footprint.cpu;
    h->pending.mem += req->footprint.mem;
    int over = evaluate(h, req, heap[0].idx, &heap[0]);
    if (over) {
      add_over(&rej, over);
      heap[0] = heap[--n];
    }
    sift_down(heap, n, 0, hosts);
  }
  free(heap);
  return placed;
}

/* ---- the reference ------------------------------------------------------- */

long ad__place_naive(ad__host_t *hosts, size_t n_hosts, const ad__place_req_t *req,
                     size_t n_services, ad__decision_t *out, ad_error_t *err)
{
  int rc = check_req(hosts, n_hosts, req, n_services, out, err);
  if (rc)
    return rc;
  size_t k = req->top_k ? req->top_k : 1;
  long placed = 0;
  for (size_t s = 0; s < n_services; s++) {
    ad__decision_t *d = &out[s];
    memset(&d->rejected, 0, sizeof d->rejected);
    d->fitting = 0;
    ent_t best[AD__TOP_K_MAX + 1];
    size_t nb = 0;
    for (size_t i = 0; i < n_hosts; i++) {
      int v = verdict(&hosts[i], req);
      if (v != V_OK) {
        add_reject(&d->rejected, v);
        continue;
      }
      ent_t e;
      int over = evaluate(&hosts[i], req, i, &e);
      if (over) {
        add_over(&d->rejected, over);
        continue;
      }
      d->fitting++;
      /* insertion into the sorted k best */
      size_t j = nb < k ? nb++ : k;
      if (j == k && !better(&e, &best[k - 1], hosts))
        continue;
      if (j == k)
        j = k - 1;
      while (j > 0 && better(&e, &best[j - 1], hosts)) {
        best[j] = best[j - 1];
        j--;
      }
      best[j] = e;
    }
    if (nb == 0) {
      no_fit(d, req);
      continue;
    }
    d->n_top = nb;
    for (size_t j = 0; j < nb; j++)
      to_cand(&best[j], hosts, req, &d->top[j]);
    d->host = (long)best[0].idx;
    d->reason[0] = '\0';
    placed++;
    hosts[best[0].idx].pending.cpu += req->footprint.cpu;
    hosts[best[0].idx].pending.mem += req->footprint.mem;
  }
  return placed;
}

/* ---- helpers ------------------------------------------------------------- */

static double med3(double a, double b, double c)
{
  if (a > b) {
    double t = a;
    a = b;
    b = t;
  }
  return c < a ? a : c > b ? b : c;
}

double ad__p95(double *a, size_t n)
{
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(a[i]))
      a[m++] = a[i];
  if (m == 0)
    return NAN;
  size_t k = (size_t)ceil(0.95 * (double)m) - 1; /* nearest rank, 0-based */
  /* Wirth's version of Hoare's FIND with a median-of-three pivot: equal
   * keys stop both scans, so a window of identical samples (an idle host)
   * stays linear, and a sorted window does not go quadratic. */
  ptrdiff_t l = 0, r = (ptrdiff_t)m - 1, kk = (ptrdiff_t)k;
  while (l < r) {
    double x = med3(a[l], a[l + (r - l) / 2], a[r]);
    ptrdiff_t i = l, j = r;
    do {
      while (a[i] < x)
        i++;
      while (x < a[j])
        j--;
      if (i <= j) {
        double t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    } while (i <= j);
    if (j < kk)
      l = i;
    if (kk < i)
      r = j;
  }
  return a[k];
}

ad__res_t ad__load_p95(double *cpu, size_t n_cpu, double *mem, size_t n_mem)
{
  ad__res_t r = {ad__p95(cpu, n_cpu), ad__p95(mem, n_mem)};
  return r;
}

ad__res_t ad__footprint_from(const ad__res_t *s, size_t n, ad__res_t fallback, long *from_cpu,
                             long *from_mem)
{
  ad__res_t r = {0, 0};
  long fc = -1, fm = -1;
  for (size_t i = 0; i < n; i++) {
    if (isfinite(s[i].cpu) && s[i].cpu > r.cpu)
      r.cpu = s[i].cpu, fc = (long)i;
    if (isfinite(s[i].mem) && s[i].mem > r.mem)
      r.mem = s[i].mem, fm = (long)i;
  }
  if (!(r.cpu > 0))
    r.cpu = fallback.cpu, fc = -1;
  if (!(r.mem > 0))
    r.mem = fallback.mem, fm = -1;
  if (from_cpu)
    *from_cpu = fc;
  if (from_mem)
    *from_mem = fm;
  return r;
}

ad__res_t ad__footprint_max(const ad__res_t *s, size_t n, ad__res_t fallback)
{
  return ad__footprint_from(s, n, fallback, NULL, NULL);
}

static json_t *cand_json(const ad__cand_t *c, const ad__host_t *hosts)
{
  return json_pack("{s:s, s:f, s:f, s:f, s:f}", "host", hosts[c->host].key, "score", c->score,
                   "cpu", c->cpu, "mem", c->mem, "free_cpu", c->free_cpu);
}

json_t *ad__decision_to_json(const ad__decision_t *d, const ad__host_t *hosts,
                             const ad__place_req_t *req)
{
  const ad__rejects_t *r = &d->rejected;
  json_t *o = json_pack(
      "{s:s?, s:{s:f, s:f}, s:f, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "platform",
      req->code, "footprint", "cpu", req->footprint.cpu, "mem", req->footprint.mem, "headroom",
      req->headroom, "fitting", (json_int_t)d->fitting, "rejected", "unreachable",
      (json_int_t)r->unreachable, "invalid", (json_int_t)r->invalid, "profile",
      (json_int_t)r->profile, "region", (json_int_t)r->region, "cpu", (json_int_t)r->cpu, "mem",
      (json_int_t)r->mem, "both", (json_int_t)r->both);
  if (!o)
    return NULL;
  int bad = 0;
  if (d->host < 0) {
    bad |= json_object_set_new(o, "host", json_null());
    bad |= json_object_set_new(o, "reason", json_string(d->reason));
    bad |= json_object_set_new(o, "candidates", json_array());
  } else {
    const ad__cand_t *c = &d->top[0];
    bad |= json_object_set_new(o, "host", json_string(hosts[d->host].key));
    bad |= json_object_set_new(o, "score", json_real(c->score));
    bad |= json_object_set_new(o, "shares", json_pack("{s:f, s:f}", "cpu", c->cpu, "mem", c->mem));
    json_t *a = json_array();
    for (size_t i = 0; a && i < d->n_top; i++)
      bad |= json_array_append_new(a, cand_json(&d->top[i], hosts));
    bad |= json_object_set_new(o, "candidates", a);
  }
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}
