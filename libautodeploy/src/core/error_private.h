/* error_private.h - filling ad_error_t, internal only. */
#ifndef AD_ERROR_PRIVATE_H
#define AD_ERROR_PRIVATE_H

#include "autodeploy/common.h"

/* Fill *err (when not NULL) and return `code`, so callers can write
 * `return ad__err(err, AD_EFRAME, "frame", "bad byte 0x%02x", b);`. */
int ad__err(ad_error_t *err, int code, const char *domain, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Same, from errno: message is "<what>: <strerror(errno_val)>". */
int ad__err_errno(ad_error_t *err, int code, int errno_val, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Put `prefix` in front of err->message (when err is not NULL), keeping
 * its code and domain: how a section names the key a table refused
 * ("placement." + "top_k: must be 1..8"). */
void ad__err_prefix(ad_error_t *err, const char *prefix);

#endif
