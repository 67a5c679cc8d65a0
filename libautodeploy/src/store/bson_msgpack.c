/*
 * bson_msgpack.c - decoded msgpack (msgpack_object) straight to BSON, with
 * MongoDB-safe keys. No JSON tree in between: on the storage path a jansson
 * tree costs several times the msgpack decode itself.
 *
 * Keys (docs/returns.md "Key escaping"): '%' -> "%25", '.' -> "%2E",
 * '$' -> "%24", NUL -> "%00", and in a key that is not UTF-8 every byte
 * >= 0x80 -> "%XX". Reversible (ad__key_unescape), and a key that
 * has none of these characters is stored unchanged, so ordinary keys stay
 * readable and queryable. Salt state ids contain '.' all the time
 * ("file_|-/etc/g.conf_|-/etc/g.conf_|-managed"): that is what breaks
 * mongo_future_return.
 *
 * Values: nil null; bool; ints int32 when they fit, else int64; uint64 above
 * INT64_MAX as a decimal string; floats double (NaN, Infinity and -Infinity
 * as those strings: FerretDB stores none of them); str UTF-8 (invalid UTF-8 as
 * binary); bin binary (subtype 0); array; map as a document; ext 78 (Salt
 * datetime) as its ISO-8601 string (microseconds kept); ext 79 as the
 * constant's name; other ext as binary with subtype 0x80 + type.
 * Non-string map keys are stored as their text (1 -> "1").
 */
#include <bson/bson.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "store/bson_msgpack.h"
#include "core/error_private.h"
#include "wire/event_private.h"

static int needs_escape(const char *k, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (k[i] == '%' || k[i] == '.' || k[i] == '$' || k[i] == '\0')
      return 1;
  return 0;
}

size_t ad__key_escape(const char *k, size_t n, char *out, size_t cap)
{
  /* A key that is not UTF-8 (a bytes key) also gets its high bytes
   * escaped, since BSON keys must be UTF-8. */
  int hi = !bson_utf8_validate(k, n, true);
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    const char *rep = NULL;
    char hex[4];
    switch (k[i]) {
    case '%': rep = "%25"; break;
    case '.': rep = "%2E"; break;
    case '$': rep = "%24"; break;
    case '\0': rep = "%00"; break;
    default:
      if (hi && (unsigned char)k[i] >= 0x80) {
        snprintf(hex, sizeof hex, "%%%02X", (unsigned char)k[i]);
        rep = hex;
      }
    }
    if (rep) {
      if (w + 3 < cap)
        memcpy(out + w, rep, 3);
      w += 3;
    } else {
      if (w + 1 < cap)
        out[w] = k[i];
      w++;
    }
  }
  if (cap)
    out[w < cap ? w : cap - 1] = '\0';
  return w;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

size_t ad__key_unescape(const char *k, size_t n, char *out)
{
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    if (k[i] == '%' && i + 2 < n && hexval(k[i + 1]) >= 0 &&
        hexval(k[i + 2]) >= 0) {
      out[w++] = (char)(hexval(k[i + 1]) << 4 | hexval(k[i + 2]));
      i += 2;
    } else {
      out[w++] = k[i];
    }
  }
  out[w] = '\0';
  return w;
}

static int append(bson_t *b, const char *key, int klen, const msgpack_object *o,
                  int depth, ad_error_t *err);

static int append_key(bson_t *b, const msgpack_object *k, const msgpack_object *v,
                      int depth, ad_error_t *err)
{
  char small[256];
  const char *s;
  size_t n;
  if (k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN) {
    s = k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : k->via.bin.ptr;
    n = k->type == MSGPACK_OBJECT_STR ? k->via.str.size : k->via.bin.size;
  } else {
    int len = ad_value_text(AD_V(k), small, sizeof small);
    if (len < 0)
      len = snprintf(small, sizeof small, "<%s key>",
                     k->type == MSGPACK_OBJECT_ARRAY ? "array" : "map");
    s = small;
    n = (size_t)len < sizeof small ? (size_t)len : sizeof small - 1;
  }
  if (!needs_escape(s, n) && bson_utf8_validate(s, n, false))
    return append(b, s, (int)n, v, depth, err);
  char stackbuf[512];
  char *buf = n * 3 + 1 <= sizeof stackbuf ? stackbuf : bson_malloc(n * 3 + 1);
  size_t m = ad__key_escape(s, n, buf, n * 3 + 1);
  int rc = append(b, buf, (int)m, v, depth, err);
  if (buf != stackbuf)
    bson_free(buf);
  return rc;
}

static int append(bson_t *b, const char *key, int klen, const msgpack_object *o,
                  int depth, ad_error_t *err)
{
  if (depth > 100)
    return ad__err(err, AD_EDECODE, "bson", "data nested deeper than 100 levels");
  bool ok = true;
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: ok = bson_append_null(b, key, klen); break;
  case MSGPACK_OBJECT_BOOLEAN: ok = bson_append_bool(b, key, klen, o->via.boolean); break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    if (o->via.u64 <= INT32_MAX)
      ok = bson_append_int32(b, key, klen, (int32_t)o->via.u64);
    else if (o->via.u64 <= INT64_MAX)
      ok = bson_append_int64(b, key, klen, (int64_t)o->via.u64);
    else {
      char num[24];
      snprintf(num, sizeof num, "%" PRIu64, o->via.u64);
      ok = bson_append_utf8(b, key, klen, num, -1);
    }
    break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    if (o->via.i64 >= INT32_MIN)
      ok = bson_append_int32(b, key, klen, (int32_t)o->via.i64);
    else
      ok = bson_append_int64(b, key, klen, o->via.i64);
    break;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: /* NaN and the infinities as their names: FerretDB
                                * refuses infinities and drops the connection on
                                * a NaN, which made a return a poison pill there */
    if (isfinite(o->via.f64))
      ok = bson_append_double(b, key, klen, o->via.f64);
    else
      ok = bson_append_utf8(b, key, klen, isnan(o->via.f64) ? "NaN"
                                          : o->via.f64 > 0 ? "Infinity" : "-Infinity", -1);
    break;
  case MSGPACK_OBJECT_STR:
    if (bson_utf8_validate(o->via.str.ptr, o->via.str.size, false))
      ok = bson_append_utf8(b, key, klen, o->via.str.ptr, (int)o->via.str.size);
    else
      ok = bson_append_binary(b, key, klen, BSON_SUBTYPE_BINARY,
                              (const uint8_t *)o->via.str.ptr, o->via.str.size);
    break;
  case MSGPACK_OBJECT_BIN:
    ok = bson_append_binary(b, key, klen, BSON_SUBTYPE_BINARY,
                            (const uint8_t *)o->via.bin.ptr, o->via.bin.size);
    break;
  case MSGPACK_OBJECT_EXT: {
    char text[128];
    if (o->via.ext.type == AD_EXT_DATETIME || o->via.ext.type == AD_EXT_CONSTANT) {
      int n = ad_value_text(AD_V(o), text, sizeof text);
      ok = bson_append_utf8(b, key, klen, text, n < (int)sizeof text ? n : (int)sizeof text - 1);
    } else {
      ok = bson_append_binary(b, key, klen, (bson_subtype_t)(0x80 + (uint8_t)o->via.ext.type),
                              (const uint8_t *)o->via.ext.ptr, o->via.ext.size);
    }
    break;
  }
  case MSGPACK_OBJECT_ARRAY: {
    bson_t child;
    ok = bson_append_array_begin(b, key, klen, &child);
    for (uint32_t i = 0; ok && i < o->via.array.size; i++) {
      char ibuf[16];
      const char *ikey;
      size_t il = bson_uint32_to_string(i, &ikey, ibuf, sizeof ibuf);
      if (append(&child, ikey, (int)il, &o->via.array.ptr[i], depth + 1, err))
        return AD_EDECODE;
    }
    ok = ok && bson_append_array_end(b, &child);
    break;
  }
  case MSGPACK_OBJECT_MAP: {
    bson_t child;
    ok = bson_append_document_begin(b, key, klen, &child);
    for (uint32_t i = 0; ok && i < o->via.map.size; i++)
      if (append_key(&child, &o->via.map.ptr[i].key, &o->via.map.ptr[i].val,
                     depth + 1, err))
        return AD_EDECODE;
    ok = ok && bson_append_document_end(b, &child);
    break;
  }
  }
  if (!ok)
    return ad__err(err, AD_EDECODE, "bson",
                   "document too large for BSON (16 MiB) at key %.*s",
                   klen > 64 ? 64 : klen, key);
  return 0;
}

int ad__bson_append_value(bson_t *b, const char *key, const ad_value_t *v,
                          ad_error_t *err)
{
  return append(b, key, (int)strlen(key), AD_MO(v), 0, err);
}

int ad__bson_append_map_fields(bson_t *b, const ad_value_t *map, ad_error_t *err)
{
  const msgpack_object *o = AD_MO(map);
  if (o->type != MSGPACK_OBJECT_MAP)
    return ad__err(err, AD_ETYPE, "bson", "expected a map");
  for (uint32_t i = 0; i < o->via.map.size; i++)
    if (append_key(b, &o->via.map.ptr[i].key, &o->via.map.ptr[i].val, 0, err))
      return AD_EDECODE;
  return 0;
}
