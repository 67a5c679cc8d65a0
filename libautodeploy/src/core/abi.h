/* abi.h - public structs that grow: the struct_size rule (docs/api.md,
 * "Structs that grow"), internal only.
 *
 * Every public options or stats struct starts with `size_t struct_size`,
 * set by the caller to sizeof its struct. The library copies only the bytes
 * both sides know: fields past the caller's size take the library's
 * defaults (in) or are not written (out); fields past the library's size
 * must be zero (in) or are zeroed (out). A struct_size below the first
 * published layout, zero included, is refused with AD_EINVAL naming
 * "<type>.struct_size". */
#ifndef AD_ABI_H
#define AD_ABI_H

#include <stddef.h>

#include "autodeploy/common.h"

/* Bytes of the first published layout of `type`, ending at `last_field`.
 * Stays right when fields are appended later (sizeof would not). */
#define AD__SIZE_V1(type, last_field) \
  (offsetof(type, last_field) + sizeof(((type *)0)->last_field))

/* Caller's struct `src` into the library's `dst` (already holding the
 * defaults, `dst_size` bytes). On success dst's struct_size is dst_size.
 * 0, or AD_EINVAL + *err when src's struct_size is below `min_size`, or
 * above dst_size with a non-zero byte past dst_size (a newer caller set a
 * field this library does not know). */
int ad__struct_in(void *dst, size_t dst_size, const void *src,
                  size_t min_size, const char *type, ad_error_t *err);

/* The library's `src` (`src_size` bytes) out into the caller's `dst`,
 * leaving dst's struct_size as the caller set it. 0, or AD_EINVAL + *err
 * (nothing written) when dst is NULL or its struct_size is below
 * `min_size`. */
int ad__struct_out(void *dst, const void *src, size_t src_size,
                   size_t min_size, const char *type, ad_error_t *err);

#endif
