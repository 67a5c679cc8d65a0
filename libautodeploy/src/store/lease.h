/* lease.h - a named lease in the store with a term (a fencing token): the
 * one way autodeploy decides that exactly one process does something.
 *
 * Used for the engine's leadership (`leader`: the periodic loops run only on
 * the master that holds it) and for the placement cycle (`cycle`: one cycle
 * at a time across engines and `salt-run autodeploy.cycle`).
 *
 * The document {_id: name, holder, term, until_ms, since} changes only by
 * these steps (lease_mongo.c):
 *   renew  {_id, holder: me, term: T, until_ms >= now - skew} -> until_ms = now + lease
 *   take   seen until_ms < now - skew: insert {_id: "name#T+1"}; the one
 *          insert that succeeds rewrites {_id, term: T} -> holder = me, T + 1
 *   create insert {_id: name, term 1}
 * Inserts of one _id succeed once on any server, so two claimants never
 * both win a term (also on FerretDB, whose findAndModify is not atomic),
 * and every change of holder raises the term.
 *
 * Time. until_ms is a wall-clock time written by the holder and compared by
 * the others against theirs: takeover waits `skew_ms` past it, so masters
 * whose clocks differ by less than skew_ms (NTP keeps them within
 * milliseconds) never overlap. The holder itself never trusts the wall
 * clock: it acts only until mono(at the claim's start) + lease - lease/5, on
 * CLOCK_BOOTTIME, which a stepped clock cannot stretch and which keeps
 * running while the process is stopped (SIGSTOP, a long GC) and while the
 * host is suspended (CLOCK_MONOTONIC stops there: a leader resumed from a
 * suspend would have taken its lease for still valid). A
 * holder that was paused past that point finds its fence closed
 * (ad__lease_fence) and its next renewal refused by the store (the term
 * moved on), so its late writes are refused twice: locally and by the
 * conditional renewal.
 *
 * Thread-safe: a lease may be claimed on one thread and fenced on others. */
#ifndef AD_STORE_LEASE_H
#define AD_STORE_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "autodeploy/common.h"
#include "store/store.h"

/* The lease document as the store holds it. */
typedef struct {
  char holder[128];
  int64_t term;
  int64_t until_ms; /* wall clock, epoch ms */
  int64_t since_ms; /* when this holder took it (wall clock) */
} ad__lease_doc_t;

/* What a lease needs from a store (lease_mongo.c; tests/store/test_lease.c
 * has an in-memory one). */
typedef struct {
  /* One atomic claim of lease `name` for `holder`: renew when term > 0 and
   * the document still says {holder, term} and until_ms >= now_ms - skew_ms;
   * else take it when it is absent or until_ms < now_ms - skew_ms (term + 1). The new until_ms is `until`.
   * 1 and *out = the document as written; 0 and *out = the document that
   * stands (another holder); <0 + *err (store unreachable). */
  int (*claim)(void *u, const char *name, const char *holder, int64_t term, int64_t now_ms,
               int64_t skew_ms, int64_t until, ad__lease_doc_t *out, ad_error_t *err);
  /* Give it up if still {holder, term} (until_ms = 0). 1 released, 0 not
   * ours any more, <0 store error. */
  int (*release)(void *u, const char *name, const char *holder, int64_t term);
} ad__lease_store_t;

typedef struct ad__lease ad__lease_t;

/* name: the document's _id; holder: who we are, as other masters will read
 * it (host:pid). lease_ms >= 1000; skew_ms >= 0. mono/wall: the clocks (NULL:
 * ad__boot_ms, ad__now_ms; tests pass fakes). NULL on no memory. */
ad__lease_t *ad__lease_new(const ad__lease_store_t *st, void *u, const char *name,
                           const char *holder, int lease_ms, int skew_ms,
                           int64_t (*mono)(void), int64_t (*wall)(void));
void ad__lease_destroy(ad__lease_t **l_p);

/* Claim or renew now. 1 held (ad__lease_term gives the term), 0 another
 * holds it (*who, may be NULL, gets the document), <0 store error (a term
 * we held stays usable until its local deadline: a store that is down
 * refuses everyone's writes anyway). Logs elections and losses. */
int ad__lease_claim(ad__lease_t *l, ad__lease_doc_t *who, ad_error_t *err);

/* Give the lease up (shutdown, the end of a cycle): others need not wait
 * for it to expire. */
void ad__lease_release(ad__lease_t *l);

/* The term we hold and may act on now (monotonic deadline not passed), or
 * 0. Quiet: for "should this loop run at all". */
int64_t ad__lease_term(ad__lease_t *l);

/* The fence before a write: like ad__lease_term, but a term we held whose
 * deadline has passed unnoticed (we were paused, or renewals failed) is a
 * refusal: counted (`fenced`) and logged once per lapse naming `what`. 0
 * when refused, never held, released, or known lost at a claim. */
int64_t ad__lease_fence(ad__lease_t *l, const char *what);

/* ms until the next claim is due (renew at lease/3; retry at lease/5 when
 * another holds it or the store is down). */
int64_t ad__lease_next_ms(const ad__lease_t *l);

/* {name, holder (us), held, term, claims, elected, lost, fenced, errors}
 * (new reference, NULL on no memory). */
json_t *ad__lease_stats_json(ad__lease_t *l);

/* The Mongo implementation over collection `coll` of `st` (the store
 * handle is the `u` of the calls; the collection name is kept in *ms). */
typedef struct {
  ad__store_t *store;
  const char *coll;
} ad__lease_mongo_t;
extern const ad__lease_store_t ad__lease_mongo;

/* The lease document `name` as JSON {name, holder, term, until, until_ms,
 * since, expired} (until/since ISO-8601, expired by our wall clock), or
 * {name, holder: null} when it was never taken; NULL + err when the store
 * cannot be read. */
json_t *ad__lease_mongo_get(ad__store_t *st, const char *coll, const char *name,
                            ad_error_t *err);

/* "host:pid" into out (the holder name of this process). */
void ad__lease_holder_name(char *out, size_t size);

#endif
