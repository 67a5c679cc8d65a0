/* encoding.h - base64 (RFC 4648, standard alphabet, padded), through
 * OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock, for every file that needs it
 * (event data to JSON, signatures, SMTP bodies, HTTP Basic auth). */
#ifndef AD_CORE_ENCODING_H
#define AD_CORE_ENCODING_H

#include <stddef.h>

#include "autodeploy/common.h"

/* Characters the encoding of `n` bytes takes, without the NUL. */
static inline size_t ad__b64_len(size_t n)
{
  return 4 * ((n + 2) / 3);
}

/* Encode `n` bytes into `out`, which holds ad__b64_len(n) + 1 bytes;
 * NUL-terminates. Returns the length written (ad__b64_len(n)). For
 * callers that own the buffer, e.g. to wipe a credential after use. */
size_t ad__b64_encode_into(char *out, const void *p, size_t n);

/* The encoding of `n` bytes, NUL-terminated; caller frees. NULL on no
 * memory. */
char *ad__b64_encode(const void *p, size_t n);

/* How many of the first `n` characters of `s` are in the alphabet (no '='):
 * to check a key's form without decoding it or echoing it. */
size_t ad__b64_span(const char *s, size_t n);

/* Decode `n` characters of `s` (the whole of it: no white space, length a
 * multiple of 4, '=' only as the last one or two). Returns the bytes
 * (caller frees; NUL-terminated for convenience, *out_n not counting it),
 * or NULL + err (AD_EINVAL naming the offending position, AD_ENOMEM). */
unsigned char *ad__b64_decode(const char *s, size_t n, size_t *out_n, ad_error_t *err);

#endif
