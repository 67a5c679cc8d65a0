/* encoding.c - see encoding.h. */
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "core/encoding.h"
#include "core/error_private.h"

size_t ad__b64_encode_into(char *out, const void *p, size_t n)
{
  /* EVP_EncodeBlock takes an int; 3 bytes at a time keeps the output
   * continuous across chunks. */
  const size_t chunk = (size_t)3 * (INT_MAX / 4 / 3);
  size_t w = 0;
  const unsigned char *s = p;
  out[0] = '\0';
  for (size_t off = 0; off < n; off += chunk) {
    size_t k = n - off < chunk ? n - off : chunk;
    w += (size_t)EVP_EncodeBlock((unsigned char *)out + w, s + off, (int)k);
  }
  return w;
}

char *ad__b64_encode(const void *p, size_t n)
{
  char *out = malloc(ad__b64_len(n) + 1);
  if (out)
    ad__b64_encode_into(out, p, n);
  return out;
}

static int is_b64(unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

size_t ad__b64_span(const char *s, size_t n)
{
  size_t i = 0;
  while (i < n && is_b64((unsigned char)s[i]))
    i++;
  return i;
}

/* Strict RFC 4648 form; EVP_DecodeBlock alone would take '=' anywhere (as
 * zero bits) and trim white space. 0 and the padding count, or AD_EINVAL. */
static int check(const char *s, size_t n, size_t *pad, ad_error_t *err)
{
  if (n % 4)
    return ad__err(err, AD_EINVAL, "encoding",
                   "base64: length %zu is not a multiple of 4", n);
  if (n > (size_t)INT_MAX)
    return ad__err(err, AD_EINVAL, "encoding", "base64: %zu characters is too long", n);
  *pad = n && s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
  for (size_t i = 0; i < n - *pad; i++)
    if (!is_b64((unsigned char)s[i]))
      return ad__err(err, AD_EINVAL, "encoding",
                     "base64: character %zu (0x%02x) is not in the alphabet", i,
                     (unsigned char)s[i]);
  return 0;
}

unsigned char *ad__b64_decode(const char *s, size_t n, size_t *out_n, ad_error_t *err)
{
  size_t pad = 0;
  if (!s) {
    ad__err(err, AD_EINVAL, "encoding", "base64: no input");
    return NULL;
  }
  if (check(s, n, &pad, err))
    return NULL;
  unsigned char *out = malloc(n / 4 * 3 + 1);
  if (!out) {
    ad__err(err, AD_ENOMEM, "encoding", "base64: no memory for %zu bytes", n / 4 * 3);
    return NULL;
  }
  int w = n ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) : 0;
  if (w < 0 || (size_t)w != n / 4 * 3) {
    free(out);
    ad__err(err, AD_EINVAL, "encoding", "base64: OpenSSL refused the input");
    return NULL;
  }
  /* DecodeBlock counts the padding as zero bytes: drop them. */
  *out_n = (size_t)w - pad;
  out[*out_n] = '\0';
  return out;
}
