/* log.c - the log hook. The handler is swapped under a lock; calls read a
 * consistent (fn, user) pair. No line reaches it with a secret in it. */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/log_private.h"
#include "core/redact.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ad_log_fn handler;
static void *handler_user;
/* read without the lock on every log call: atomics */
static atomic_int max_level = AD_LOG_INFO;
static atomic_int have_handler;

void ad_log_set_handler(ad_log_fn fn, void *user, ad_log_level_t level)
{
  pthread_mutex_lock(&lock);
  handler = fn;
  handler_user = user;
  atomic_store(&max_level, (int)level);
  atomic_store(&have_handler, fn != NULL);
  pthread_mutex_unlock(&lock);
}

int ad__log_enabled(ad_log_level_t level)
{
  return atomic_load_explicit(&have_handler, memory_order_relaxed) &&
         (int)level <= atomic_load_explicit(&max_level, memory_order_relaxed);
}

#define AD__LOG_MAX (256 * 1024) /* bytes of one message, with its NUL */

void ad__log(ad_log_level_t level, const char *domain, const char *fmt, ...)
{
  if (!ad__log_enabled(level))
    return;
  pthread_mutex_lock(&lock);
  ad_log_fn fn = handler;
  void *user = handler_user;
  pthread_mutex_unlock(&lock);
  if (!fn)
    return;
  char small[1024], *msg = small;
  va_list ap, again;
  va_start(ap, fmt);
  va_copy(again, ap);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  /* a long line (the stats JSON) is made whole (up to AD__LOG_MAX and some
   * slack), rid of secrets (core/redact.h), and only then cut, with a
   * marker that says so: never cut silently, never half a secret left */
  size_t room = sizeof small;
  if (n >= (int)sizeof small) {
    size_t want = (size_t)n + 1 < AD__LOG_MAX + 4096 ? (size_t)n + 1 : AD__LOG_MAX + 4096;
    char *big = malloc(want);
    if (big) {
      vsnprintf(big, want, fmt, again);
      msg = big;
      room = want;
    }
  }
  va_end(again);
  int truncated = n >= (int)room;
  ad__redact(msg);
  size_t cap = msg == small ? sizeof small : AD__LOG_MAX, len = strlen(msg);
  if (truncated || len >= cap) {
    size_t at = len < cap - 40 ? len : cap - 40;
    snprintf(msg + at, 40, " ... (%d bytes cut)", n - (int)at);
  }
  fn(level, domain, msg, user);
  if (msg != small)
    free(msg);
}
