/* pack.c - see pack.h: first-fit decreasing, the pattern search, and the
 * lower bounds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decide/pack.h"

#define EPS 1e-9

/* ---- first-fit decreasing --------------------------------------------- */

static double share(double need, double cap) { return cap > 0 ? need / cap : 0; }

static double dominant(const ad__dims_t *n, const ad__dims_t *bin)
{
  double c = share(n->cpu, bin->cpu), m = share(n->mem, bin->mem), d = share(n->disk, bin->disk);
  return fmax(c, fmax(m, d));
}

static double sum_shares(const ad__dims_t *n, const ad__dims_t *bin)
{
  return share(n->cpu, bin->cpu) + share(n->mem, bin->mem) + share(n->disk, bin->disk);
}

int ad__dims_fit(const ad__dims_t *need, const ad__dims_t *left)
{
  return need->cpu <= left->cpu + EPS && need->mem <= left->mem + EPS &&
         need->disk <= left->disk + EPS;
}

typedef struct {
  size_t i;
  double dom, sum;
} order_t;

static int by_size_desc(const void *a, const void *b)
{
  const order_t *x = a, *y = b;
  if (x->dom != y->dom)
    return x->dom > y->dom ? -1 : 1;
  if (x->sum != y->sum)
    return x->sum > y->sum ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* A bin is closed once it cannot take the smallest item on some dimension:
 * first fit then starts at the first bin still open. */
static int closed(const ad__dims_t *left, const ad__dims_t *smallest)
{
  return left->cpu + EPS < smallest->cpu || left->mem + EPS < smallest->mem ||
         left->disk + EPS < smallest->disk;
}

static ad__dims_t smallest_of(const ad__dims_t *items, size_t n)
{
  ad__dims_t s = {INFINITY, INFINITY, INFINITY};
  for (size_t i = 0; i < n; i++) {
    s.cpu = fmin(s.cpu, items[i].cpu);
    s.mem = fmin(s.mem, items[i].mem);
    s.disk = fmin(s.disk, items[i].disk);
  }
  return s;
}

static long first_fit(const ad__dims_t *items, const order_t *ord, size_t n, ad__dims_t bin,
                      ad__dims_t *left, long *assign)
{
  ad__dims_t small = smallest_of(items, n);
  size_t bins = 0, open = 0;
  for (size_t k = 0; k < n; k++) {
    const ad__dims_t *need = &items[ord[k].i];
    size_t b = open;
    while (b < bins && !ad__dims_fit(need, &left[b]))
      b++;
    if (b == bins)
      left[bins++] = bin;
    left[b].cpu -= need->cpu;
    left[b].mem -= need->mem;
    left[b].disk -= need->disk;
    if (assign)
      assign[ord[k].i] = (long)b;
    while (open < bins && closed(&left[open], &small))
      open++;
  }
  return (long)bins;
}

long ad__pack_ffd(const ad__dims_t *items, size_t n, ad__dims_t bin, long *assign)
{
  if (n == 0)
    return 0;
  order_t *ord = malloc(n * sizeof *ord);
  ad__dims_t *left = malloc(n * sizeof *left); /* at most one bin per item */
  long bins = -1;
  if (!ord || !left)
    goto done;
  for (size_t i = 0; i < n; i++)
    ord[i] = (order_t){i, dominant(&items[i], &bin), sum_shares(&items[i], &bin)};
  qsort(ord, n, sizeof *ord, by_size_desc);
  bins = first_fit(items, ord, n, bin, left, assign);
done:
  free(ord);
  free(left);
  return bins;
}

/* ---- pattern search (minimum bin slack) ------------------------------- */

typedef struct {
  ad__dims_t need;
  double dom, fill; /* dominant share; sum of shares */
  size_t left;      /* copies not yet packed */
  size_t first;     /* the first item of this shape, for a stable order */
} shape_t;

typedef struct {
  shape_t *s;
  size_t n;
  ad__dims_t bin;
  size_t cur[AD__PACK_MAX_SHAPES], best[AD__PACK_MAX_SHAPES];
  double best_fill;
  long budget; /* nodes left in this search */
} search_t;

/* Depth-first over shapes t.. in decreasing size: how many copies of each
 * go into a host with `room` left, maximising the filled shares. */
static void dfs(search_t *q, size_t t, ad__dims_t room, double fill)
{
  if (fill > q->best_fill + EPS) {
    q->best_fill = fill;
    memcpy(q->best, q->cur, q->n * sizeof q->cur[0]);
  }
  if (t == q->n || q->budget-- <= 0)
    return;
  if (fill + sum_shares(&room, &q->bin) <= q->best_fill + EPS)
    return; /* even a full host would not beat the best */
  const shape_t *s = &q->s[t];
  size_t c = 0;
  ad__dims_t r = room;
  while (c < s->left && ad__dims_fit(&s->need, &r)) {
    r.cpu -= s->need.cpu, r.mem -= s->need.mem, r.disk -= s->need.disk;
    c++;
  }
  for (;; c--) { /* most copies first: full hosts are found early */
    q->cur[t] = c;
    ad__dims_t rc = {room.cpu - (double)c * s->need.cpu, room.mem - (double)c * s->need.mem,
                     room.disk - (double)c * s->need.disk};
    dfs(q, t + 1, rc, fill + (double)c * s->fill);
    if (c == 0)
      break;
  }
  q->cur[t] = 0;
}

static int by_shape_desc(const void *a, const void *b)
{
  const shape_t *x = a, *y = b;
  if (x->dom != y->dom)
    return x->dom > y->dom ? -1 : 1;
  if (x->fill != y->fill)
    return x->fill > y->fill ? -1 : 1;
  return x->first < y->first ? -1 : x->first > y->first;
}

static int same(const ad__dims_t *a, const ad__dims_t *b)
{
  return a->cpu == b->cpu && a->mem == b->mem && a->disk == b->disk;
}

/* Distinct shapes, largest first; 0 when there are too many. */
static size_t shapes_of(const ad__dims_t *items, size_t n, ad__dims_t bin, shape_t *s)
{
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < k && !same(&s[j].need, &items[i]))
      j++;
    if (j == k) {
      if (k == AD__PACK_MAX_SHAPES)
        return 0;
      s[k++] = (shape_t){items[i], dominant(&items[i], &bin), sum_shares(&items[i], &bin), 0, i};
    }
    s[j].left++;
  }
  qsort(s, k, sizeof *s, by_shape_desc);
  return k;
}

/* Search the next pattern: it holds one copy of the largest shape left. */
static int next_pattern(search_t *q)
{
  size_t t = 0;
  while (t < q->n && !q->s[t].left)
    t++;
  if (t == q->n)
    return 0;
  memset(q->cur, 0, sizeof q->cur);
  memset(q->best, 0, sizeof q->best);
  shape_t *big = &q->s[t];
  big->left--; /* the largest goes in; search the rest around it */
  ad__dims_t room = {q->bin.cpu - big->need.cpu, q->bin.mem - big->need.mem,
                     q->bin.disk - big->need.disk};
  q->best_fill = -1;
  q->budget = 20000;
  dfs(q, t, room, big->fill);
  big->left++;
  q->best[t]++;
  return 1;
}

/* How many hosts can take this pattern with the copies left (>= 1). */
static size_t repeats(const search_t *q)
{
  size_t k = (size_t)-1;
  for (size_t t = 0; t < q->n; t++)
    if (q->best[t] && q->s[t].left / q->best[t] < k)
      k = q->s[t].left / q->best[t];
  return k;
}

static void assign_pattern(const search_t *q, const ad__dims_t *items, size_t n, long bin0,
                           size_t k, long *assign)
{
  for (size_t t = 0; t < q->n; t++) {
    size_t want = q->best[t] * k, got = 0;
    for (size_t i = 0; i < n && got < want; i++)
      if (assign[i] < 0 && same(&items[i], &q->s[t].need))
        assign[i] = bin0 + (long)(got++ / q->best[t]);
  }
}

long ad__pack_patterns(const ad__dims_t *items, size_t n, ad__dims_t bin, long *assign)
{
  search_t *q = calloc(1, sizeof *q);
  shape_t *s = malloc(AD__PACK_MAX_SHAPES * sizeof *s);
  long bins = -1;
  if (!q || !s)
    goto done;
  q->s = s, q->bin = bin;
  q->n = shapes_of(items, n, bin, s);
  bins = 0;
  if (!q->n)
    goto done;
  for (size_t i = 0; assign && i < n; i++)
    assign[i] = -1;
  while (next_pattern(q)) {
    size_t k = repeats(q);
    if (assign)
      assign_pattern(q, items, n, bins, k, assign);
    for (size_t t = 0; t < q->n; t++)
      q->s[t].left -= q->best[t] * k;
    bins += (long)k;
  }
done:
  free(q);
  free(s);
  return bins;
}

long ad__pack_best(const ad__dims_t *items, size_t n, ad__dims_t bin, const char **how,
                   long *ffd)
{
  long f = ad__pack_ffd(items, n, bin, NULL);
  long p = f < 0 ? -1 : ad__pack_patterns(items, n, bin, NULL);
  if (ffd)
    *ffd = f;
  if (f < 0 || p < 0)
    return -1;
  int pat = p > 0 && p < f;
  if (how)
    *how = pat ? "patterns" : "ffd";
  return pat ? p : f;
}

/* ---- lower bounds ----------------------------------------------------- */

static long ceil_div(double sum, double cap)
{
  if (sum <= 0 || cap <= 0)
    return 0;
  return (long)ceil(sum / cap - EPS);
}

long ad__pack_lower_bound(ad__dims_t sum, ad__dims_t bin)
{
  long c = ceil_div(sum.cpu, bin.cpu), m = ceil_div(sum.mem, bin.mem),
       d = ceil_div(sum.disk, bin.disk);
  return c > m ? (c > d ? c : d) : (m > d ? m : d);
}

/* Fekete and Schepers' dual feasible functions (2001): for k >= 1,
 * u_k(x) = x when (k+1)x is an integer, else floor((k+1)x)/k, x a share of
 * the bin. Whatever fits one bin still sums to <= 1 after u_k, so
 * ceil(sum u_k) bounds every packing from below; unlike the volume bound it
 * sees that servers are indivisible (k = 1 counts the items over half a
 * bin; n alike items of which m fit a bin get ceil(n/m) at k = m). */
#define DFF_K 24

static double dff(double x, int k)
{
  double y = (k + 1) * x, f = floor(y + EPS);
  if (fabs(y - f) < EPS)
    return x;
  return floor(y) / k;
}

static long dff_bound_dim(const ad__dims_t *items, size_t n, size_t dim, double cap)
{
  long best = 0;
  for (int k = 1; k <= DFF_K; k++) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
      const double v[3] = {items[i].cpu, items[i].mem, items[i].disk};
      s += dff(fmin(v[dim] / cap, 1), k);
    }
    long b = (long)ceil(s - EPS);
    if (b > best)
      best = b;
  }
  return best;
}

long ad__pack_lower_bound_dff(const ad__dims_t *items, size_t n, ad__dims_t bin)
{
  const double cap[3] = {bin.cpu, bin.mem, bin.disk};
  long best = 0;
  for (size_t d = 0; d < 3; d++) {
    long b = cap[d] > 0 ? dff_bound_dim(items, n, d, cap[d]) : 0;
    if (b > best)
      best = b;
  }
  return best;
}

/* Items that pairwise cannot share a host each need their own: the copies
 * of a set of shapes that conflict with each other (and with themselves:
 * two copies do not fit, or there is one) bound every packing. A greedy
 * clique from each shape in turn, heaviest first; shapes as in the pattern
 * search, so 0 when there are more than AD__PACK_MAX_SHAPES. */
static int conflict(const shape_t *a, const shape_t *b, const ad__dims_t *bin)
{
  ad__dims_t two = {a->need.cpu + b->need.cpu, a->need.mem + b->need.mem,
                    a->need.disk + b->need.disk};
  return !ad__dims_fit(&two, bin);
}

static int by_count_desc(const void *a, const void *b)
{
  const shape_t *x = a, *y = b;
  return x->left > y->left ? -1 : x->left < y->left ? 1 : by_shape_desc(a, b);
}

static long clique_from(const shape_t *s, size_t n, size_t seed, const ad__dims_t *bin)
{
  size_t in[AD__PACK_MAX_SHAPES], k = 0;
  long sum = 0;
  for (size_t j = 0; j < n; j++) {
    size_t t = (seed + j) % n;
    if (s[t].left > 1 && !conflict(&s[t], &s[t], bin))
      continue;
    size_t m = 0;
    while (m < k && conflict(&s[t], &s[in[m]], bin))
      m++;
    if (m == k) {
      in[k++] = t;
      sum += (long)s[t].left;
    }
  }
  return sum;
}

long ad__pack_lower_bound_conflicts(const ad__dims_t *items, size_t n, ad__dims_t bin)
{
  shape_t *s = malloc(AD__PACK_MAX_SHAPES * sizeof *s);
  long best = 0;
  if (!s)
    return -1;
  size_t k = shapes_of(items, n, bin, s);
  qsort(s, k, sizeof *s, by_count_desc);
  for (size_t seed = 0; seed < k; seed++) {
    long c = clique_from(s, k, seed, &bin);
    if (c > best)
      best = c;
  }
  free(s);
  return best;
}
