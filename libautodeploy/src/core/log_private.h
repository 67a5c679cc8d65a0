/* log_private.h - the library's only way to say anything. */
#ifndef AD_LOG_PRIVATE_H
#define AD_LOG_PRIVATE_H

#include "autodeploy/common.h"

/* True when a message at `level` would reach a handler: check it before
 * building expensive arguments. */
int ad__log_enabled(ad_log_level_t level);

void ad__log(ad_log_level_t level, const char *domain, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define AD_LOG_E(dom, ...) ad__log(AD_LOG_ERROR, dom, __VA_ARGS__)
#define AD_LOG_W(dom, ...) ad__log(AD_LOG_WARNING, dom, __VA_ARGS__)
#define AD_LOG_I(dom, ...) ad__log(AD_LOG_INFO, dom, __VA_ARGS__)
#define AD_LOG_D(dom, ...)                                  \
  do {                                                      \
    if (ad__log_enabled(AD_LOG_DEBUG))                      \
      ad__log(AD_LOG_DEBUG, dom, __VA_ARGS__);              \
  } while (0)

#endif
