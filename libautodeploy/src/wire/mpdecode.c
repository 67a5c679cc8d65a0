/*
 * mpdecode.c - one-pass msgpack decoder into msgpack-c's object tree.
 *
 * Why not msgpack_unpack: msgpack-c allocates an array or map for its
 * declared count before reading it, so a 5-byte header can ask for
 * gigabytes; guarding that took a full validation pass first, which cost
 * as much as the decode itself (bench/README.md). This decoder checks each
 * count against the bytes left as it goes (every element takes at least
 * one byte), so it validates and builds in the same pass. Strings, bins
 * and ext payloads are referenced in place, as msgpack-c does; nodes live
 * in the caller's msgpack_zone. The tree is the msgpack_object type, so
 * everything downstream (value.c, json.c, bson_msgpack.c) is unchanged.
 */
#include <string.h>

#include "core/error_private.h"
#include "wire/event_private.h"

#define MAX_DEPTH 64

typedef struct {
  const uint8_t *p, *end;
  msgpack_zone *zone;
  const char *why;
} dec_t;

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64(const uint8_t *p)
{
  return (uint64_t)be32(p) << 32 | be32(p + 4);
}

#define NEED(d, n)                                                          \
  do {                                                                      \
    if ((size_t)((d)->end - (d)->p) < (size_t)(n)) {                        \
      (d)->why = "truncated";                                               \
      return -1;                                                            \
    }                                                                       \
  } while (0)

static int obj(dec_t *d, msgpack_object *o, int depth);

static int raw(dec_t *d, msgpack_object *o, msgpack_object_type t, uint32_t n)
{
  NEED(d, n);
  o->type = t;
  if (t == MSGPACK_OBJECT_STR) {
    o->via.str.size = n;
    o->via.str.ptr = (const char *)d->p;
  } else {
    o->via.bin.size = n;
    o->via.bin.ptr = (const char *)d->p;
  }
  d->p += n;
  return 0;
}

static int array(dec_t *d, msgpack_object *o, uint32_t n, int depth)
{
  if (n > (size_t)(d->end - d->p)) {
    d->why = "array count larger than the bytes left";
    return -1;
  }
  o->type = MSGPACK_OBJECT_ARRAY;
  o->via.array.size = n;
  o->via.array.ptr = NULL;
  if (n == 0)
    return 0;
  msgpack_object *a = msgpack_zone_malloc(d->zone, n * sizeof(*a));
  if (!a) {
    d->why = "out of memory";
    return -1;
  }
  o->via.array.ptr = a;
  for (uint32_t i = 0; i < n; i++)
    if (obj(d, &a[i], depth + 1))
      return -1;
  return 0;
}

static int map(dec_t *d, msgpack_object *o, uint32_t n, int depth)
{
  if ((uint64_t)n * 2 > (size_t)(d->end - d->p)) {
    d->why = "map count larger than the bytes left";
    return -1;
  }
  o->type = MSGPACK_OBJECT_MAP;
  o->via.map.size = n;
  o->via.map.ptr = NULL;
  if (n == 0)
    return 0;
  msgpack_object_kv *kv = msgpack_zone_malloc(d->zone, n * sizeof(*kv));
  if (!kv) {
    d->why = "out of memory";
    return -1;
  }
  o->via.map.ptr = kv;
  for (uint32_t i = 0; i < n; i++)
    if (obj(d, &kv[i].key, depth + 1) || obj(d, &kv[i].val, depth + 1))
      return -1;
  return 0;
}

static int ext(dec_t *d, msgpack_object *o, uint32_t n)
{
  NEED(d, 1 + (size_t)n);
  o->type = MSGPACK_OBJECT_EXT;
  o->via.ext.type = (int8_t)d->p[0];
  o->via.ext.size = n;
  o->via.ext.ptr = (const char *)d->p + 1;
  d->p += 1 + n;
  return 0;
}

/* float 32/64, uint 8..64 and int 8..64: 0xca..0xd3. */
static int number(dec_t *d, msgpack_object *o, uint8_t b)
{
  const uint8_t *p = d->p;
  switch (b) {
  case 0xca: {
    NEED(d, 4);
    uint32_t u = be32(p);
    float f;
    memcpy(&f, &u, 4);
    o->type = MSGPACK_OBJECT_FLOAT32;
    o->via.f64 = f;
    d->p += 4;
    return 0;
  }
  case 0xcb: {
    NEED(d, 8);
    uint64_t u = be64(p);
    double f;
    memcpy(&f, &u, 8);
    o->type = MSGPACK_OBJECT_FLOAT64;
    o->via.f64 = f;
    d->p += 8;
    return 0;
  }
  case 0xcc: NEED(d, 1); o->type = MSGPACK_OBJECT_POSITIVE_INTEGER; o->via.u64 = p[0]; d->p += 1; return 0;
  case 0xcd: NEED(d, 2); o->type = MSGPACK_OBJECT_POSITIVE_INTEGER; o->via.u64 = be16(p); d->p += 2; return 0;
  case 0xce: NEED(d, 4); o->type = MSGPACK_OBJECT_POSITIVE_INTEGER; o->via.u64 = be32(p); d->p += 4; return 0;
  case 0xcf: NEED(d, 8); o->type = MSGPACK_OBJECT_POSITIVE_INTEGER; o->via.u64 = be64(p); d->p += 8; return 0;
  default: { /* 0xd0..0xd3 */
    int n = 1 << (b - 0xd0);
    NEED(d, n);
    int64_t v = n == 1 ? (int8_t)p[0] : n == 2 ? (int16_t)be16(p)
              : n == 4 ? (int32_t)be32(p) : (int64_t)be64(p);
    d->p += n;
    /* msgpack-c's convention: non-negative values are POSITIVE_INTEGER */
    if (v >= 0) {
      o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
      o->via.u64 = (uint64_t)v;
    } else {
      o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
      o->via.i64 = v;
    }
    return 0;
  }
  }
}

/* The types whose length follows the first byte (bin, ext, str 8..32,
 * array and map 16/32) or is in it (fixext), and the reserved 0xc1. */
static int sized(dec_t *d, msgpack_object *o, uint8_t b, int depth)
{
  const uint8_t *p = d->p;
  switch (b) {
  case 0xc4: NEED(d, 1); d->p += 1; return raw(d, o, MSGPACK_OBJECT_BIN, p[0]);
  case 0xc5: NEED(d, 2); d->p += 2; return raw(d, o, MSGPACK_OBJECT_BIN, be16(p));
  case 0xc6: NEED(d, 4); d->p += 4; return raw(d, o, MSGPACK_OBJECT_BIN, be32(p));
  case 0xc7: NEED(d, 1); d->p += 1; return ext(d, o, p[0]);
  case 0xc8: NEED(d, 2); d->p += 2; return ext(d, o, be16(p));
  case 0xc9: NEED(d, 4); d->p += 4; return ext(d, o, be32(p));
  case 0xd4: return ext(d, o, 1);
  case 0xd5: return ext(d, o, 2);
  case 0xd6: return ext(d, o, 4);
  case 0xd7: return ext(d, o, 8);
  case 0xd8: return ext(d, o, 16);
  case 0xd9: NEED(d, 1); d->p += 1; return raw(d, o, MSGPACK_OBJECT_STR, p[0]);
  case 0xda: NEED(d, 2); d->p += 2; return raw(d, o, MSGPACK_OBJECT_STR, be16(p));
  case 0xdb: NEED(d, 4); d->p += 4; return raw(d, o, MSGPACK_OBJECT_STR, be32(p));
  case 0xdc: NEED(d, 2); d->p += 2; return array(d, o, be16(p), depth);
  case 0xdd: NEED(d, 4); d->p += 4; return array(d, o, be32(p), depth);
  case 0xde: NEED(d, 2); d->p += 2; return map(d, o, be16(p), depth);
  case 0xdf: NEED(d, 4); d->p += 4; return map(d, o, be32(p), depth);
  default: /* 0xc1 */
    d->why = "reserved byte 0xc1";
    return -1;
  }
}

static int obj(dec_t *d, msgpack_object *o, int depth)
{
  if (depth > MAX_DEPTH) {
    d->why = "nested deeper than 64 levels";
    return -1;
  }
  NEED(d, 1);
  uint8_t b = *d->p++;
  if (b <= 0x7f) {
    o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o->via.u64 = b;
    return 0;
  }
  if (b >= 0xe0) {
    o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    o->via.i64 = (int8_t)b;
    return 0;
  }
  switch (b >> 4) {
  case 0x8: return map(d, o, b & 0x0f, depth);
  case 0x9: return array(d, o, b & 0x0f, depth);
  case 0xa:
  case 0xb: return raw(d, o, MSGPACK_OBJECT_STR, b & 0x1f);
  }
  switch (b) {
  case 0xc0: o->type = MSGPACK_OBJECT_NIL; return 0;
  case 0xc2: o->type = MSGPACK_OBJECT_BOOLEAN; o->via.boolean = false; return 0;
  case 0xc3: o->type = MSGPACK_OBJECT_BOOLEAN; o->via.boolean = true; return 0;
  }
  if (b >= 0xca && b <= 0xd3)
    return number(d, o, b);
  return sized(d, o, b, depth);
}

int ad__msgpack_decode(const char *data, size_t len, msgpack_zone *zone,
                       msgpack_object *out, ad_error_t *err)
{
  dec_t d = {(const uint8_t *)data, (const uint8_t *)data + len, zone, NULL};
  if (len == 0)
    return ad__err(err, AD_EDECODE, "event", "event data is empty");
  if (obj(&d, out, 0))
    return ad__err(err, AD_EDECODE, "event",
                   "event data is not valid msgpack: %s at byte %zu of %zu", d.why,
                   (size_t)(d.p - (const uint8_t *)data), len);
  if (d.p != d.end)
    return ad__err(err, AD_EDECODE, "event", "%zu trailing bytes after the event data",
                   (size_t)(d.end - d.p));
  return 0;
}
