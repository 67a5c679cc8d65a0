/* log.c - the log hook. The handler is swapped under a lock; calls read a
 * consistent (fn, user) pair. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "log_private.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ad_log_fn handler;
static void *handler_user;
static volatile int max_level = AD_LOG_INFO;

void ad_log_set_handler(ad_log_fn fn, void *user, ad_log_level_t level)
{
  pthread_mutex_lock(&lock);
  handler = fn;
  handler_user = user;
  max_level = level;
  pthread_mutex_unlock(&lock);
}

int ad__log_enabled(ad_log_level_t level)
{
  return handler != NULL && (int)level <= max_level;
}

void ad__log(ad_log_level_t level, const char *domain, const char *fmt, ...)
{
  if ((int)level > max_level)
    return;
  pthread_mutex_lock(&lock);
  ad_log_fn fn = handler;
  void *user = handler_user;
  pthread_mutex_unlock(&lock);
  if (!fn)
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  fn(level, domain, msg, user);
}
