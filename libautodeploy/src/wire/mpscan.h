/*
 * mpscan.h - a minimal msgpack scanner: find where an object ends, and read
 * the header of str/bin/map values, without building any tree.
 *
 * The frame layer uses it to walk Salt's outer {head, body} map and to find
 * frame boundaries in a stream, so that tags can be decided before a
 * payload is ever decoded.
 */
#ifndef AD_MPSCAN_H
#define AD_MPSCAN_H

#include <stddef.h>
#include <stdint.h>

/* Results: >0 bytes used, 0 need more input, <0 malformed. */
#define AD__MP_MORE 0
#define AD__MP_BAD (-1)
#define AD__MP_DEEP (-2) /* nesting deeper than AD__MP_MAX_DEPTH */

#define AD__MP_MAX_DEPTH 256

typedef enum {
  AD__MP_T_OTHER = 0,
  AD__MP_T_STR,
  AD__MP_T_BIN,
  AD__MP_T_MAP,
  AD__MP_T_ARRAY
} ad__mp_kind_t;

typedef struct {
  ad__mp_kind_t kind;
  size_t hdr_len; /* bytes of the header */
  uint64_t n;     /* str/bin: payload bytes; map: pairs; array: items */
} ad__mp_head_t;

/* Read the header of the object at p. Returns hdr_len (>0), 0 if more bytes
 * are needed to read the header, AD__MP_BAD for a reserved byte (0xc1). */
int ad__mp_head(const uint8_t *p, size_t len, ad__mp_head_t *out);

/* Find the end of the object starting at p. Returns its total size as a
 * positive value in *size and 1, 0 when the buffer ends first, or a negative
 * AD__MP_* code. Iterative (no recursion) with a depth limit. */
int ad__mp_skip(const uint8_t *p, size_t len, uint64_t *size);

#endif
