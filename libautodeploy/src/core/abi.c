/* abi.c - copying public structs that carry their struct_size (abi.h). */
#include <string.h>

#include "core/abi.h"
#include "core/error_private.h"

static size_t size_of(const void *s)
{
  size_t n;
  memcpy(&n, s, sizeof n); /* struct_size is the first member */
  return n;
}

static int too_small(size_t got, size_t min_size, const char *type,
                     ad_error_t *err)
{
  return ad__err(err, AD_EINVAL, "api",
                 "%s.struct_size: %zu is below the %zu bytes of its first "
                 "layout (set struct_size = sizeof the struct)",
                 type, got, min_size);
}

int ad__struct_in(void *dst, size_t dst_size, const void *src,
                  size_t min_size, const char *type, ad_error_t *err)
{
  size_t n = size_of(src);
  if (n < min_size)
    return too_small(n, min_size, type, err);
  for (size_t i = dst_size; i < n; i++)
    if (((const unsigned char *)src)[i])
      return ad__err(err, AD_EINVAL, "api",
                     "%s.struct_size: %zu, but this library knows %zu bytes "
                     "and byte %zu is set (a field it does not support)",
                     type, n, dst_size, i);
  size_t keep = n < dst_size ? n : dst_size;
  memcpy((char *)dst + sizeof n, (const char *)src + sizeof n, keep - sizeof n);
  memcpy(dst, &dst_size, sizeof dst_size);
  return 0;
}

int ad__struct_out(void *dst, const void *src, size_t src_size,
                   size_t min_size, const char *type, ad_error_t *err)
{
  if (!dst)
    return ad__err(err, AD_EINVAL, "api", "%s: NULL", type);
  size_t n = size_of(dst);
  if (n < min_size)
    return too_small(n, min_size, type, err);
  size_t keep = n < src_size ? n : src_size;
  memcpy((char *)dst + sizeof n, (const char *)src + sizeof n, keep - sizeof n);
  if (n > src_size)
    memset((char *)dst + src_size, 0, n - src_size);
  return 0;
}
