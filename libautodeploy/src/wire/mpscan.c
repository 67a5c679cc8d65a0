/*
 * mpscan.c - see mpscan.h. Follows the msgpack spec format table:
 * https://github.com/msgpack/msgpack/blob/master/spec.md#formats
 */
#include "wire/mpscan.h"

static uint64_t be(const uint8_t *p, int n)
{
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

int ad__mp_head(const uint8_t *p, size_t len, ad__mp_head_t *h)
{
  if (len < 1)
    return AD__MP_MORE;
  uint8_t b = p[0];
  h->kind = AD__MP_T_OTHER;
  h->n = 0;

  /* Fixed-size scalars: n = payload bytes after the header byte. */
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
    h->hdr_len = 1;
    return 1;
  }
  if ((b & 0xf0) == 0x80) {
    h->kind = AD__MP_T_MAP, h->n = b & 0x0f, h->hdr_len = 1;
    return 1;
  }
  if ((b & 0xf0) == 0x90) {
    h->kind = AD__MP_T_ARRAY, h->n = b & 0x0f, h->hdr_len = 1;
    return 1;
  }
  if ((b & 0xe0) == 0xa0) {
    h->kind = AD__MP_T_STR, h->n = b & 0x1f, h->hdr_len = 1;
    return 1;
  }

  int lenbytes = 0;
  switch (b) {
  case 0xc1:
    return AD__MP_BAD;
  case 0xc4: h->kind = AD__MP_T_BIN; lenbytes = 1; break;
  case 0xc5: h->kind = AD__MP_T_BIN; lenbytes = 2; break;
  case 0xc6: h->kind = AD__MP_T_BIN; lenbytes = 4; break;
  case 0xd9: h->kind = AD__MP_T_STR; lenbytes = 1; break;
  case 0xda: h->kind = AD__MP_T_STR; lenbytes = 2; break;
  case 0xdb: h->kind = AD__MP_T_STR; lenbytes = 4; break;
  case 0xdc: h->kind = AD__MP_T_ARRAY; lenbytes = 2; break;
  case 0xdd: h->kind = AD__MP_T_ARRAY; lenbytes = 4; break;
  case 0xde: h->kind = AD__MP_T_MAP; lenbytes = 2; break;
  case 0xdf: h->kind = AD__MP_T_MAP; lenbytes = 4; break;
  /* ext 8/16/32: length then a type byte; treat payload as opaque bytes */
  case 0xc7: case 0xc8: case 0xc9: {
    int lb = b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4;
    if (len < (size_t)(1 + lb + 1))
      return AD__MP_MORE;
    h->n = be(p + 1, lb);
    h->hdr_len = 1 + lb + 1;
    return 1;
  }
  /* numbers and fixext: fixed payload after the header byte */
  case 0xca: case 0xce: case 0xd2: h->n = 4; h->hdr_len = 1; return 1;
  case 0xcb: case 0xcf: case 0xd3: h->n = 8; h->hdr_len = 1; return 1;
  case 0xcc: case 0xd0: h->n = 1; h->hdr_len = 1; return 1;
  case 0xcd: case 0xd1: h->n = 2; h->hdr_len = 1; return 1;
  case 0xd4: h->n = 1 + 1; h->hdr_len = 1; return 1;
  case 0xd5: h->n = 2 + 1; h->hdr_len = 1; return 1;
  case 0xd6: h->n = 4 + 1; h->hdr_len = 1; return 1;
  case 0xd7: h->n = 8 + 1; h->hdr_len = 1; return 1;
  case 0xd8: h->n = 16 + 1; h->hdr_len = 1; return 1;
  default:
    return AD__MP_BAD;
  }
  if (len < (size_t)(1 + lenbytes))
    return AD__MP_MORE;
  h->n = be(p + 1, lenbytes);
  h->hdr_len = 1 + lenbytes;
  return 1;
}

int ad__mp_skip(const uint8_t *p, size_t len, uint64_t *size)
{
  /* pending[d] = objects still to read at depth d */
  uint64_t pending[AD__MP_MAX_DEPTH];
  int depth = 0;
  size_t off = 0;
  pending[0] = 1;

  for (;;) {
    while (depth >= 0 && pending[depth] == 0)
      depth--;
    if (depth < 0)
      break;
    pending[depth]--;

    ad__mp_head_t h;
    int rc = ad__mp_head(p + off, len - off, &h);
    if (rc <= 0)
      return rc;
    off += h.hdr_len;

    if (h.kind == AD__MP_T_MAP || h.kind == AD__MP_T_ARRAY) {
      uint64_t items = h.kind == AD__MP_T_MAP ? h.n * 2 : h.n;
      if (h.kind == AD__MP_T_MAP && h.n > (UINT64_MAX / 2))
        return AD__MP_BAD;
      /* each item takes at least one byte: a count larger than the bytes
       * left is a lie (and would make a tree decoder allocate for it) */
      if (items > len - off)
        return items > ((uint64_t)1 << 32) ? AD__MP_BAD : AD__MP_MORE;
      if (items == 0)
        continue;
      if (depth + 1 >= AD__MP_MAX_DEPTH)
        return AD__MP_DEEP;
      pending[++depth] = items;
    } else {
      if (h.n > len - off)
        return AD__MP_MORE;
      off += (size_t)h.n;
    }
  }
  *size = off;
  return 1;
}
