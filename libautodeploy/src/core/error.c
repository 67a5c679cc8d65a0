/* error.c - error codes, names and ad_error_t helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error_private.h"
#include "core/redact.h"

const char *ad_strerror(int code)
{
  switch (code) {
#define XX(name, val, msg) case val: return msg;
    AD_ERRNO_MAP(XX)
#undef XX
  }
  return "unknown error";
}

const char *ad_errname(int code)
{
  switch (code) {
#define XX(name, val, msg) case val: return "AD_E" #name;
    AD_ERRNO_MAP(XX)
#undef XX
  }
  return "AD_EUNKNOWN";
}

/* The message is made whole, rid of secrets, then cut to fit: cut first, a
 * secret at the end would survive in part. */
static void fill(ad_error_t *err, int code, const char *domain,
                 const char *fmt, va_list ap)
{
  char whole[1024];
  err->code = code;
  snprintf(err->domain, sizeof(err->domain), "%s", domain);
  vsnprintf(whole, sizeof whole, fmt, ap);
  ad__redact(whole);
  snprintf(err->message, sizeof(err->message), "%s", whole);
}

int ad__err(ad_error_t *err, int code, const char *domain, const char *fmt, ...)
{
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    fill(err, code, domain, fmt, ap);
    va_end(ap);
  }
  return code;
}

void ad__err_prefix(ad_error_t *err, const char *prefix)
{
  if (!err)
    return;
  char m[sizeof err->message];
  snprintf(m, sizeof m, "%s%s", prefix, err->message);
  memcpy(err->message, m, sizeof m);
}

int ad__err_errno(ad_error_t *err, int code, int errno_val, const char *fmt, ...)
{
  if (err) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    char eb[96];
    const char *es = strerror_r(errno_val, eb, sizeof(eb));
    ad__err(err, code, "errno", "%s: %s", what, es);
  }
  return code;
}
