/*
 * value.c - typed, read-only access to decoded event data.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/event_private.h"

ad_vtype_t ad_value_type(const ad_value_t *v)
{
  const msgpack_object *o = AD_MO(v);
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: return AD_VT_NIL;
  case MSGPACK_OBJECT_BOOLEAN: return AD_VT_BOOL;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    return o->via.u64 > INT64_MAX ? AD_VT_UINT : AD_VT_INT;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: return AD_VT_INT;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: return AD_VT_FLOAT;
  case MSGPACK_OBJECT_STR: return AD_VT_STR;
  case MSGPACK_OBJECT_BIN: return AD_VT_BIN;
  case MSGPACK_OBJECT_ARRAY: return AD_VT_ARRAY;
  case MSGPACK_OBJECT_MAP: return AD_VT_MAP;
  case MSGPACK_OBJECT_EXT: return AD_VT_EXT;
  }
  return AD_VT_NIL;
}

static int key_is(const msgpack_object *k, const char *key, size_t n)
{
  if (k->type == MSGPACK_OBJECT_STR)
    return k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0;
  if (k->type == MSGPACK_OBJECT_BIN)
    return k->via.bin.size == n && memcmp(k->via.bin.ptr, key, n) == 0;
  return 0;
}

const ad_value_t *ad_value_get(const ad_value_t *v, const char *key,
                               size_t key_len)
{
  const msgpack_object *o = AD_MO(v);
  if (!o || o->type != MSGPACK_OBJECT_MAP)
    return NULL;
  if (key_len == (size_t)-1)
    key_len = strlen(key);
  const msgpack_object_kv *kv = o->via.map.ptr;
  for (uint32_t i = 0; i < o->via.map.size; i++)
    if (key_is(&kv[i].key, key, key_len))
      return AD_V(&kv[i].val);
  return NULL;
}

/* A path segment that is all digits also matches integer map keys
 * (Python dicts with int keys) and indexes arrays. */
static const msgpack_object *step(const msgpack_object *o, const char *seg,
                                  size_t n)
{
  char *end = NULL;
  char num[24];
  int is_num = n > 0 && n < sizeof(num);
  if (is_num) {
    memcpy(num, seg, n);
    num[n] = '\0';
    strtoull(num, &end, 10);
    is_num = end == num + n && num[0] != '-' && num[0] != '+';
  }
  if (o->type == MSGPACK_OBJECT_MAP) {
    const msgpack_object *hit = (const msgpack_object *)ad_value_get(AD_V(o), seg, n);
    if (hit || !is_num)
      return hit;
    uint64_t want = strtoull(num, NULL, 10);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
      const msgpack_object *k = &o->via.map.ptr[i].key;
      if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER && k->via.u64 == want)
        return &o->via.map.ptr[i].val;
    }
    return NULL;
  }
  if (o->type == MSGPACK_OBJECT_ARRAY && is_num) {
    uint64_t i = strtoull(num, NULL, 10);
    return i < o->via.array.size ? &o->via.array.ptr[i] : NULL;
  }
  return NULL;
}

const ad_value_t *ad_value_path(const ad_value_t *v, const char *path)
{
  const msgpack_object *o = AD_MO(v);
  if (!o || !path)
    return NULL;
  while (o && *path) {
    const char *sep = strchr(path, ':');
    size_t n = sep ? (size_t)(sep - path) : strlen(path);
    o = step(o, path, n);
    path += n + (sep ? 1 : 0);
  }
  return AD_V(o);
}

size_t ad_value_len(const ad_value_t *v)
{
  const msgpack_object *o = AD_MO(v);
  if (o->type == MSGPACK_OBJECT_ARRAY)
    return o->via.array.size;
  if (o->type == MSGPACK_OBJECT_MAP)
    return o->via.map.size;
  return 0;
}

const ad_value_t *ad_value_at(const ad_value_t *v, size_t i)
{
  const msgpack_object *o = AD_MO(v);
  if (o->type != MSGPACK_OBJECT_ARRAY || i >= o->via.array.size)
    return NULL;
  return AD_V(&o->via.array.ptr[i]);
}

int ad_value_pair(const ad_value_t *v, size_t i, const ad_value_t **key,
                  const ad_value_t **val)
{
  const msgpack_object *o = AD_MO(v);
  if (o->type != MSGPACK_OBJECT_MAP)
    return AD_ETYPE;
  if (i >= o->via.map.size)
    return AD_ENOTFOUND;
  *key = AD_V(&o->via.map.ptr[i].key);
  *val = AD_V(&o->via.map.ptr[i].val);
  return 0;
}

int ad_value_str(const ad_value_t *v, const char **s, size_t *len)
{
  const msgpack_object *o = AD_MO(v);
  if (o->type == MSGPACK_OBJECT_STR) {
    *s = o->via.str.ptr;
    *len = o->via.str.size;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_BIN) {
    *s = o->via.bin.ptr;
    *len = o->via.bin.size;
    return 0;
  }
  return AD_ETYPE;
}

int ad_value_int(const ad_value_t *v, int64_t *out)
{
  const msgpack_object *o = AD_MO(v);
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *out = o->via.i64;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    if (o->via.u64 > INT64_MAX)
      return AD_EINVAL;
    *out = (int64_t)o->via.u64;
    return 0;
  }
  return AD_ETYPE;
}

int ad_value_bool(const ad_value_t *v, int *out)
{
  const msgpack_object *o = AD_MO(v);
  if (o->type != MSGPACK_OBJECT_BOOLEAN)
    return AD_ETYPE;
  *out = o->via.boolean ? 1 : 0;
  return 0;
}

int ad_value_double(const ad_value_t *v, double *out)
{
  const msgpack_object *o = AD_MO(v);
  switch (o->type) {
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: *out = o->via.f64; return 0;
  case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; return 0;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; return 0;
  default: return AD_ETYPE;
  }
}

int ad_value_ext(const ad_value_t *v, int8_t *type, const char **data,
                 size_t *len)
{
  const msgpack_object *o = AD_MO(v);
  if (o->type != MSGPACK_OBJECT_EXT)
    return AD_ETYPE;
  *type = o->via.ext.type;
  *data = o->via.ext.ptr;
  *len = o->via.ext.size;
  return 0;
}

static int digits(const char *s, int n)
{
  for (int i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return 0;
  return 1;
}

int ad__salt_datetime_iso(const char *s, size_t n, char *out, size_t size)
{
  /* 20240131T09:05:07.123456 ; %f is always 6 digits in CPython */
  if (n != 24 || size < 27 || !digits(s, 8) || s[8] != 'T' ||
      !digits(s + 9, 2) || s[11] != ':' || !digits(s + 12, 2) ||
      s[14] != ':' || !digits(s + 15, 2) || s[17] != '.' || !digits(s + 18, 6))
    return -1;
  snprintf(out, size, "%.4s-%.2s-%.2sT%.8s.%.6s", s, s + 4, s + 6, s + 9,
           s + 18);
  return 0;
}

int ad_value_datetime(const ad_value_t *v, char *buf, size_t size)
{
  const msgpack_object *o = AD_MO(v);
  if (o->type != MSGPACK_OBJECT_EXT || o->via.ext.type != AD_EXT_DATETIME)
    return AD_ETYPE;
  if (ad__salt_datetime_iso(o->via.ext.ptr, o->via.ext.size, buf, size))
    return AD_EDECODE;
  return 0;
}

/* Name of a Salt _Constant: ext 79 carries msgpack [name, value]. */
static int constant_name(const msgpack_object *o, const char **s, size_t *n)
{
  msgpack_zone z;
  msgpack_object root;
  if (!msgpack_zone_init(&z, 256))
    return -1;
  int rc = -1;
  if (ad__msgpack_decode(o->via.ext.ptr, o->via.ext.size, &z, &root, NULL) == 0 &&
      root.type == MSGPACK_OBJECT_ARRAY && root.via.array.size >= 1 &&
      root.via.array.ptr[0].type == MSGPACK_OBJECT_STR) {
    /* the str references the ext payload in place, which outlives z */
    *s = root.via.array.ptr[0].via.str.ptr;
    *n = root.via.array.ptr[0].via.str.size;
    rc = 0;
  }
  msgpack_zone_destroy(&z);
  return rc;
}

int ad_value_text(const ad_value_t *v, char *buf, size_t size)
{
  const msgpack_object *o = AD_MO(v);
  const char *s;
  size_t n;
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: return snprintf(buf, size, "null");
  case MSGPACK_OBJECT_BOOLEAN:
    return snprintf(buf, size, "%s", o->via.boolean ? "true" : "false");
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    return snprintf(buf, size, "%" PRIu64, o->via.u64);
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    return snprintf(buf, size, "%" PRId64, o->via.i64);
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: return snprintf(buf, size, "%.17g", o->via.f64);
  case MSGPACK_OBJECT_STR:
  case MSGPACK_OBJECT_BIN:
    ad_value_str(v, &s, &n);
    return snprintf(buf, size, "%.*s", (int)n, s);
  case MSGPACK_OBJECT_EXT:
    if (o->via.ext.type == AD_EXT_DATETIME) {
      char iso[32];
      if (ad__salt_datetime_iso(o->via.ext.ptr, o->via.ext.size, iso,
                                sizeof(iso)) == 0)
        return snprintf(buf, size, "%s", iso);
      return snprintf(buf, size, "%.*s", (int)o->via.ext.size, o->via.ext.ptr);
    }
    if (o->via.ext.type == AD_EXT_CONSTANT && constant_name(o, &s, &n) == 0)
      return snprintf(buf, size, "%.*s", (int)n, s);
    return snprintf(buf, size, "ext%d:%u", o->via.ext.type, o->via.ext.size);
  default:
    return AD_ETYPE;
  }
}
