/* log.c - the log hook. The handler is swapped under a lock; calls read a
 * consistent (fn, user) pair. No line reaches it with a secret in it. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

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
  char msg[2048]; /* made whole, rid of secrets (core/redact.h), then cut */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  ad__redact(msg);
  msg[1023] = '\0';
  fn(level, domain, msg, user);
}
