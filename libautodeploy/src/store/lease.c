/* lease.c - the lease's logic over any store (lease.h); the MongoDB side
 * is lease_mongo.c. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log_private.h"
#include "store/lease.h"

struct ad__lease {
  const ad__lease_store_t *st;
  void *u;
  char name[32], holder[128];
  int64_t lease_ms, skew_ms;
  int64_t (*mono)(void), (*wall)(void);
  pthread_mutex_t mu;     /* guards everything below */
  int64_t term;           /* the term we hold (or held last), 0: never */
  int64_t act_until;      /* monotonic: we may act before this */
  int64_t next_claim;     /* monotonic: the next claim is due */
  ad__lease_doc_t seen;   /* the document at the last claim */
  int fenced_logged;      /* one line per lapse, the counter counts all */
  long long claims, elected, lost, fenced, errors;
};

void ad__lease_holder_name(char *out, size_t size)
{
  char host[64] = "?";
  gethostname(host, sizeof host - 1);
  snprintf(out, size, "%.60s:%d", host, (int)getpid());
}

ad__lease_t *ad__lease_new(const ad__lease_store_t *st, void *u, const char *name,
                           const char *holder, int lease_ms, int skew_ms,
                           int64_t (*mono)(void), int64_t (*wall)(void))
{
  ad__lease_t *l = calloc(1, sizeof *l);
  if (!l)
    return NULL;
  l->st = st;
  l->u = u;
  snprintf(l->name, sizeof l->name, "%s", name);
  snprintf(l->holder, sizeof l->holder, "%s", holder);
  l->lease_ms = lease_ms < 1000 ? 1000 : lease_ms;
  l->skew_ms = skew_ms < 0 ? 0 : skew_ms;
  l->mono = mono ? mono : ad__boot_ms; /* runs through a suspend: lease.h */
  l->wall = wall ? wall : ad__now_ms;
  pthread_mutex_init(&l->mu, NULL);
  return l;
}

void ad__lease_destroy(ad__lease_t **l_p)
{
  if (!l_p || !*l_p)
    return;
  pthread_mutex_destroy(&(*l_p)->mu);
  free(*l_p);
  *l_p = NULL;
}

/* The margin kept before the lease's end: a write sent just before the
 * local deadline still lands before another master may take over. */
static int64_t guard_ms(const ad__lease_t *l) { return l->lease_ms / 5; }

int ad__lease_claim(ad__lease_t *l, ad__lease_doc_t *who, ad_error_t *err)
{
  pthread_mutex_lock(&l->mu);
  /* the deadline counts from before the request: the store may have
   * written until_ms at any moment after this */
  int64_t t0 = l->mono(), now = l->wall();
  int64_t mine = l->term > 0 && t0 < l->act_until ? l->term : 0;
  /* renew only a term still ours by our own deadline: a lapsed term is
   * taken again, as a new term, once it expires for everyone (a taker
   * whose clock runs ahead could take it while we renew it) */
  int64_t ask = mine;
  ad__lease_doc_t doc = {0};
  ad_error_t e;
  l->claims++;
  int rc = l->st->claim(l->u, l->name, l->holder, ask, now, l->skew_ms, now + l->lease_ms, &doc,
                        err ? err : &e);
  if (rc < 0) {
    l->errors++;
    l->next_claim = t0 + l->lease_ms / 5;
    pthread_mutex_unlock(&l->mu);
    return rc;
  }
  l->seen = doc;
  if (rc == 1) {
    if (doc.term != l->term || !mine)
      AD_LOG_I("leader", "%s lease: %s holds it, term %lld (%s)", l->name, l->holder,
               (long long)doc.term, doc.term != l->term ? "elected" : "renewed after a lapse");
    if (doc.term != l->term)
      l->elected++;
    l->term = doc.term;
    l->act_until = t0 + l->lease_ms - guard_ms(l);
    l->next_claim = t0 + l->lease_ms / 3;
    l->fenced_logged = 0;
  } else {
    if (l->term > 0 && l->act_until > 0) {
      l->lost++;
      if (!strcmp(doc.holder, l->holder) && doc.term == l->term)
        AD_LOG_W("leader", "%s lease: term %lld lapsed; taken again as a new term once it "
                 "expires for every master", l->name, (long long)l->term);
      else
        AD_LOG_W("leader", "%s lease: term %lld lost; %s holds it, term %lld", l->name,
                 (long long)l->term, doc.holder, (long long)doc.term);
    }
    l->act_until = 0; /* the fence stays shut; l->term remembers what we held */
    l->next_claim = t0 + l->lease_ms / 5;
  }
  if (who)
    *who = doc;
  pthread_mutex_unlock(&l->mu);
  return rc;
}

void ad__lease_release(ad__lease_t *l)
{
  pthread_mutex_lock(&l->mu);
  if (l->term > 0 && l->act_until > 0) {
    int rc = l->st->release(l->u, l->name, l->holder, l->term);
    if (rc == 1)
      AD_LOG_D("leader", "%s lease: term %lld released", l->name, (long long)l->term);
  }
  l->act_until = 0;
  l->term = 0; /* released, not lapsed: no fence refusal to report */
  pthread_mutex_unlock(&l->mu);
}

int64_t ad__lease_term(ad__lease_t *l)
{
  pthread_mutex_lock(&l->mu);
  int64_t t = l->term > 0 && l->mono() < l->act_until ? l->term : 0;
  pthread_mutex_unlock(&l->mu);
  return t;
}

int64_t ad__lease_fence(ad__lease_t *l, const char *what)
{
  pthread_mutex_lock(&l->mu);
  int64_t now = l->mono();
  if (l->term > 0 && now < l->act_until) {
    int64_t t = l->term;
    pthread_mutex_unlock(&l->mu);
    return t;
  }
  /* lapsed while we thought it ours (paused, or renewals failing): a
   * refusal worth counting; lost at a claim or released: quietly not ours */
  if (l->term > 0 && l->act_until > 0) {
    l->fenced++;
    if (!l->fenced_logged++)
      AD_LOG_W("leader", "%s refused: the %s lease (term %lld) lapsed %lld ms ago (this process "
               "was paused or could not renew); another master may hold it", what, l->name,
               (long long)l->term, (long long)(now - l->act_until));
  }
  pthread_mutex_unlock(&l->mu);
  return 0;
}

int64_t ad__lease_next_ms(const ad__lease_t *l)
{
  ad__lease_t *m = (ad__lease_t *)l;
  pthread_mutex_lock(&m->mu);
  int64_t d = m->next_claim - m->mono();
  pthread_mutex_unlock(&m->mu);
  return d < 0 ? 0 : d;
}

json_t *ad__lease_stats_json(ad__lease_t *l)
{
  pthread_mutex_lock(&l->mu);
  int held = l->term > 0 && l->mono() < l->act_until;
  json_t *o = json_pack("{s:s,s:s,s:b,s:I,s:s,s:I,s:I,s:I,s:I,s:I}", "name", l->name, "holder",
                        l->holder, "held", held, "term", (json_int_t)(held ? l->term : 0),
                        "seen_holder", l->seen.holder, "claims", (json_int_t)l->claims,
                        "elected", (json_int_t)l->elected, "lost", (json_int_t)l->lost,
                        "fenced", (json_int_t)l->fenced, "errors", (json_int_t)l->errors);
  pthread_mutex_unlock(&l->mu);
  return o;
}
