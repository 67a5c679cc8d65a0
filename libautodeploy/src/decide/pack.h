/* pack.h - how many hosts a set of services needs: vector bin packing over
 * cpu, mem and disk (issue 11). Pure C: no I/O, no printing.
 *
 * Two packers, and the plan takes the one that needs fewer hosts:
 *   - first-fit decreasing on the dominant share (the largest of
 *     need/capacity over the dimensions), ties by the sum of shares, then by
 *     input order: what Kubernetes Cluster Autoscaler's binpacking estimator
 *     and Karpenter do; at most 11/9 OPT + 6/9 bins in one dimension, and
 *     that worst case is real for a few alike sizes (two 2.7-core servers on
 *     a 6.4-core host leave 1 core no other server fits);
 *   - a pattern search (minimum bin slack, Gupta and Ho 1999), made for
 *     queues of a few shapes with many copies each, which is what waiting
 *     services are (a platform sizes all its servers alike): for the next
 *     host, search the multiset of remaining shapes that contains the
 *     largest and fills the host most (sum of the used shares), then open
 *     as many hosts with that pattern as the counts allow. Bounded: a node
 *     budget per search, and only when there are at most AD__PACK_MAX_SHAPES
 *     distinct shapes.
 * And three lower bounds no packing beats: the volume bound, Fekete and
 * Schepers' dual feasible functions (which see that services are
 * indivisible, one dimension at a time), and a conflict bound (services
 * that pairwise cannot share a host, over all dimensions at once). */
#ifndef AD_PACK_H
#define AD_PACK_H

#include <stddef.h>

typedef struct {
  double cpu;  /* cores */
  double mem;  /* MiB */
  double disk; /* GiB */
} ad__dims_t;

#define AD__PACK_MAX_SHAPES 64

/* need <= left on every dimension (with a 1e-9 tolerance). */
int ad__dims_fit(const ad__dims_t *need, const ad__dims_t *left);

/* First-fit decreasing of `n` items into bins of `bin` (capacity already
 * multiplied by the headroom; every item must fit an empty bin). Returns the
 * number of bins, or -1 on no memory. When `assign` is not NULL, assign[i]
 * is item i's bin. O(n log n + n * open bins). */
long ad__pack_ffd(const ad__dims_t *items, size_t n, ad__dims_t bin, long *assign);

/* The pattern search above. Returns the number of bins, 0 when it does not
 * apply (more than AD__PACK_MAX_SHAPES shapes), or -1 on no memory. When
 * `assign` is not NULL, assign[i] is item i's bin. */
long ad__pack_patterns(const ad__dims_t *items, size_t n, ad__dims_t bin, long *assign);

/* The better of the two: fewer bins (FFD on a tie). *how (optional) is
 * "ffd" or "patterns"; *ffd (optional) FFD's own count. -1 on no memory. */
long ad__pack_best(const ad__dims_t *items, size_t n, ad__dims_t bin, const char **how,
                   long *ffd);

/* The volume bound: max over dimensions of ceil(sum / bin). */
long ad__pack_lower_bound(ad__dims_t sum, ad__dims_t bin);

/* The dual-feasible-function bound: max over dimensions and k = 1..24 of
 * ceil(sum of u_k(need / bin)). O(24 * 3 * n). */
long ad__pack_lower_bound_dff(const ad__dims_t *items, size_t n, ad__dims_t bin);

/* The conflict bound: copies of shapes that pairwise cannot share a host
 * (a greedy clique of the conflict graph over at most AD__PACK_MAX_SHAPES
 * shapes; 0 beyond). -1 on no memory. */
long ad__pack_lower_bound_conflicts(const ad__dims_t *items, size_t n, ad__dims_t bin);

#endif
