/* test_lease.c - the lease and its fence (store/lease.c) between two
 * "masters" sharing one in-memory lease document, each with its own
 * monotonic clock and a wall clock that may be skewed: election, renewal,
 * takeover only after the lease (plus the skew allowance), the term rising
 * with every new holder, a paused holder's fence shut and its renewal
 * refused, release, and a store that is down. The same lease on FerretDB
 * with two real masters: tests/test_leader.py. */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "store/lease.h"

/* ---- the shared document, with the store's atomic steps -------------- */

static struct {
  int exists;
  ad__lease_doc_t d;
  int down; /* every call fails */
  int calls;
} db;

static int64_t wall_now; /* the true time; each master reads it + its skew */

static int f_claim(void *u, const char *name, const char *holder, int64_t term, int64_t now,
                   int64_t skew, int64_t until, ad__lease_doc_t *out, ad_error_t *err)
{
  (void)u, (void)name, (void)err;
  db.calls++;
  if (db.down)
    return -1;
  if (db.exists && term > 0 && !strcmp(db.d.holder, holder) && db.d.term == term &&
      db.d.until_ms >= now - skew) {
    db.d.until_ms = until; /* renew */
  } else if (db.exists && db.d.until_ms < now - skew) {
    snprintf(db.d.holder, sizeof db.d.holder, "%s", holder); /* take */
    db.d.term++;
    db.d.until_ms = until;
    db.d.since_ms = now;
  } else if (!db.exists) {
    db.exists = 1; /* create */
    snprintf(db.d.holder, sizeof db.d.holder, "%s", holder);
    db.d.term = 1;
    db.d.until_ms = until;
    db.d.since_ms = now;
  } else {
    *out = db.d;
    return 0;
  }
  *out = db.d;
  return 1;
}

static int f_release(void *u, const char *name, const char *holder, int64_t term)
{
  (void)u, (void)name;
  if (db.down)
    return -1;
  if (!db.exists || strcmp(db.d.holder, holder) || db.d.term != term)
    return 0;
  db.d.until_ms = 0;
  return 1;
}

static const ad__lease_store_t FAKE = {.claim = f_claim, .release = f_release};

/* two masters: a's monotonic clock, b's; b's wall clock runs `skew_b` ahead */
static int64_t mono_a, mono_b, skew_b;
static int64_t ma(void) { return mono_a; }
static int64_t mb(void) { return mono_b; }
static int64_t wa(void) { return wall_now; }
static int64_t wb(void) { return wall_now + skew_b; }

/* time passes for everyone */
static void pass(int64_t ms)
{
  wall_now += ms;
  mono_a += ms;
  mono_b += ms;
}

static void reset(void)
{
  memset(&db, 0, sizeof db);
  wall_now = 1700000000000LL;
  mono_a = 1000;
  mono_b = 555555;
  skew_b = 0;
}

#define LEASE 10000
#define SKEW 1000

TEST(first_claim_elects_and_the_other_is_refused)
{
  reset();
  ad__lease_t *a = ad__lease_new(&FAKE, NULL, "leader", "a:1", LEASE, SKEW, ma, wa);
  ad__lease_t *b = ad__lease_new(&FAKE, NULL, "leader", "b:2", LEASE, SKEW, mb, wb);
  ad__lease_doc_t who;
  ASSERT_EQ(ad__lease_claim(a, &who, NULL), 1);
  ASSERT_EQ(who.term, 1);
  ASSERT_EQ(ad__lease_term(a), 1);
  ASSERT_EQ(ad__lease_claim(b, &who, NULL), 0);
  ASSERT_STR(who.holder, "a:1");
  ASSERT_EQ(ad__lease_term(b), 0);
  ASSERT_EQ(ad__lease_fence(b, "test write"), 0); /* never held: refused, not counted */
  json_t *s = ad__lease_stats_json(b);
  ASSERT_EQ(json_integer_value(json_object_get(s, "fenced")), 0);
  json_decref(s);
  ad__lease_destroy(&a);
  ad__lease_destroy(&b);
  ASSERT(a == NULL);
}

TEST(renewal_keeps_the_term_and_the_other_waits)
{
  reset();
  ad__lease_t *a = ad__lease_new(&FAKE, NULL, "leader", "a:1", LEASE, SKEW, ma, wa);
  ad__lease_t *b = ad__lease_new(&FAKE, NULL, "leader", "b:2", LEASE, SKEW, mb, wb);
  ASSERT_EQ(ad__lease_claim(a, NULL, NULL), 1);
  ASSERT_EQ(ad__lease_next_ms(a), LEASE / 3);
  for (int i = 0; i < 20; i++) { /* a renews every lease/3 for a long time */
    pass(LEASE / 3);
    ASSERT_EQ(ad__lease_claim(a, NULL, NULL), 1);
    ASSERT_EQ(ad__lease_claim(b, NULL, NULL), 0);
    ASSERT_EQ(ad__lease_fence(a, "write"), 1);
  }
  ASSERT_EQ(ad__lease_next_ms(b), LEASE / 5); /* the loser retries sooner */
  ad__lease_destroy(&a);
  ad__lease_destroy(&b);
}

TEST(takeover_only_after_the_lease_and_the_skew_allowance)
{
  reset();
  ad__lease_t *a = ad__lease_new(&FAKE, NULL, "leader", "a:1", LEASE, SKEW, ma, wa);
  ad__lease_t *b = ad__lease_new(&FAKE, NULL, "leader", "b:2", LEASE, SKEW, mb, wb);
  ASSERT_EQ(ad__lease_claim(a, NULL, NULL), 1);
  /* a dies; b's clock is 900 ms fast, within the allowance */
  skew_b = 900;
  pass(LEASE);
  ASSERT_EQ(ad__lease_claim(b, NULL, NULL), 0); /* b sees until+900: not yet */
  pass(SKEW + 1);
  ad__lease_doc_t who;
  ASSERT_EQ(ad__lease_claim(b, &who, NULL), 1);
  ASSERT_EQ(who.term, 2);
  ASSERT_STR(who.holder, "b:2");
  ASSERT_EQ(ad__lease_fence(b, "write"), 2);
  ad__lease_destroy(&a);
  ad__lease_destroy(&b);
}

/* The holder's own deadline is on its monotonic clock with a guard, so it
 * stops acting before anyone may take over, whatever the wall clocks say. */
TEST(holder_stops_before_anyone_may_take_over)
{
  reset();
  ad__lease_t *a = ad__lease_new(&FAKE, NULL, "leader", "a:1", LEASE, SKEW, ma, wa);
  ASSERT_EQ(ad__lease_claim(a, NULL, NULL), 1);
  mono_a += LEASE - LEASE / 5 - 1;
  ASSERT_EQ(ad__lease_term(a), 1);
  mono_a += 1;
  ASSERT_EQ(ad__lease_term(a), 0);
  wall_now -= 3600 * 1000; /* the wall clock set back an hour changes nothing */
  ASSERT_EQ(ad__lease_term(a), 0);
  ad__lease_destroy(&a);
}

TEST(paused_holder_is_fenced_and_its_renewal_refused)
{
  reset();
  ad__lease_t *a = ad__lease_new(&FAKE, NULL, "leader", "a:1", LEASE, SKEW, ma, wa);
  ad__lease_t *b = ad__lease_new(&FAKE, NULL, "leader", "b:2", LEASE, SKEW, mb, wb);
  ASSERT_EQ(ad__lease_claim(a, NULL, NULL), 1);
  ASSERT_EQ(ad__lease_fence(a, "write before the pause"), 1);
  /* a is stopped (SIGSTOP): its monotonic clock runs on, it does nothing */
  pass(LEASE + SKEW + 1);
  ASSERT_EQ(ad__lease_claim(b, NULL, NULL), 1);
  /* a resumes and, before it renews, tries the write it was about to make */
  ASSERT_EQ(ad__lease_fence(a, "late write"), 0);
  ASSERT_EQ(ad__lease_fence(a, "another late write"), 0);
  json_t *s = ad__lease_stats_json(a);
  ASSERT_EQ(json_integer_value(json_object_get(s, "fenced")), 2);
  json_decref(s);
  /* its renewal is conditional on term 1: the store refuses it */
  ad__lease_doc_t who;
  ASSERT_EQ(ad__lease_claim(a, &who, NULL), 0);
  ASSERT_STR(who.holder, "b:2");
  ASSERT_EQ(who.term, 2);
  s = ad__lease_stats_json(a);
  ASSERT_EQ(json_integer_value(json_object_get(s, "lost")), 1);
  ASSERT(!json_is_true(json_object_get(s, "held")));
  json_decref(s);
  ASSERT_EQ(db.d.term, 2); /* the document is b's, untouched by a */
  ASSERT_STR(db.d.holder, "b:2");
  ad__lease_destroy(&a);
  ad__lease_destroy(&b);
}

/* Paused past its local deadline: the term is not renewed (a master whose
 * clock runs ahead may be taking it at that moment); once it has expired
 * for everyone, its old holder takes it again as a new term. The fence is
 * shut until then. */
TEST(lapsed_term_is_never_renewed_only_taken_anew)
{
  reset();
  ad__lease_t *a = ad__lease_new(&FAKE, NULL, "leader", "a:1", LEASE, SKEW, ma, wa);
  ASSERT_EQ(ad__lease_claim(a, NULL, NULL), 1);
  pass(LEASE - LEASE / 5 + SKEW / 2);
  ASSERT_EQ(ad__lease_fence(a, "write"), 0);
  ad__lease_doc_t who;
  ASSERT_EQ(ad__lease_claim(a, &who, NULL), 0); /* still a:1 term 1 in the store */
  ASSERT_STR(who.holder, "a:1");
  ASSERT_EQ(ad__lease_fence(a, "write"), 0);
  pass(LEASE * 3);
  ASSERT_EQ(ad__lease_fence(a, "write"), 0);
  ASSERT_EQ(ad__lease_claim(a, &who, NULL), 1);
  ASSERT_EQ(who.term, 2);
  ASSERT_EQ(ad__lease_fence(a, "write"), 2);
  ad__lease_destroy(&a);
}

TEST(release_lets_the_other_in_at_once_with_a_new_term)
{
  reset();
  ad__lease_t *a = ad__lease_new(&FAKE, NULL, "cycle", "a:1", LEASE, SKEW, ma, wa);
  ad__lease_t *b = ad__lease_new(&FAKE, NULL, "cycle", "b:2", LEASE, SKEW, mb, wb);
  ASSERT_EQ(ad__lease_claim(a, NULL, NULL), 1);
  ad__lease_release(a);
  ASSERT_EQ(ad__lease_term(a), 0);
  ASSERT_EQ(ad__lease_fence(a, "after release"), 0);
  json_t *s = ad__lease_stats_json(a);
  ASSERT_EQ(json_integer_value(json_object_get(s, "fenced")), 0); /* released, not lapsed */
  json_decref(s);
  ad__lease_doc_t who;
  ASSERT_EQ(ad__lease_claim(b, &who, NULL), 1);
  ASSERT_EQ(who.term, 2);
  /* a comes back: a new claim, refused while b holds it */
  ASSERT_EQ(ad__lease_claim(a, NULL, NULL), 0);
  ad__lease_destroy(&a);
  ad__lease_destroy(&b);
}

TEST(store_down_keeps_the_term_until_its_deadline_only)
{
  reset();
  ad__lease_t *a = ad__lease_new(&FAKE, NULL, "leader", "a:1", LEASE, SKEW, ma, wa);
  ASSERT_EQ(ad__lease_claim(a, NULL, NULL), 1);
  db.down = 1;
  pass(LEASE / 3);
  ASSERT(ad__lease_claim(a, NULL, NULL) < 0);
  ASSERT_EQ(ad__lease_fence(a, "write"), 1); /* still inside the first grant */
  ASSERT_EQ(ad__lease_next_ms(a), LEASE / 5);
  pass(LEASE);
  ASSERT(ad__lease_claim(a, NULL, NULL) < 0);
  ASSERT_EQ(ad__lease_fence(a, "write"), 0);
  json_t *s = ad__lease_stats_json(a);
  ASSERT_EQ(json_integer_value(json_object_get(s, "errors")), 2);
  json_decref(s);
  ad__lease_destroy(&a);
}

RUN(CASE(first_claim_elects_and_the_other_is_refused),
    CASE(renewal_keeps_the_term_and_the_other_waits),
    CASE(takeover_only_after_the_lease_and_the_skew_allowance),
    CASE(holder_stops_before_anyone_may_take_over),
    CASE(paused_holder_is_fenced_and_its_renewal_refused),
    CASE(lapsed_term_is_never_renewed_only_taken_anew),
    CASE(release_lets_the_other_in_at_once_with_a_new_term),
    CASE(store_down_keeps_the_term_until_its_deadline_only))
