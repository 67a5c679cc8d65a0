/*
 * json.c - event data to jansson (internal, wire/json.h) and to JSON text
 * (public: ad_value_to_json_text), for tools, tests and the JSON fan-out.
 * Not used on the storage path (that goes msgpack -> BSON directly).
 *
 * Mapping (docs/events.md):
 *   str -> string (invalid UTF-8 falls back to {"$bin": base64})
 *   bin -> {"$bin": base64}
 *   ext 78 -> "YYYY-MM-DDTHH:MM:SS.ffffff"
 *   ext 79 -> {"$const": name, "value": value}
 *   other ext -> {"$ext": type, "$bin": base64}
 *   map keys that are not strings -> their text (1 -> "1", bin -> its bytes
 *   when UTF-8, else "$bin:" base64)
 */
#include <jansson.h>
#include <string.h>

#include "core/encoding.h"
#include "core/error_private.h"
#include "wire/event_private.h"
#include "wire/json.h"

static json_t *bin_json(const char *p, size_t n, int ext_type, int is_ext)
{
  char *e = ad__b64_encode(p, n);
  if (!e)
    return NULL;
  json_t *o = is_ext ? json_pack("{s:i,s:s}", "$ext", ext_type, "$bin", e)
                     : json_pack("{s:s}", "$bin", e);
  free(e);
  return o;
}

static json_t *to_json(const msgpack_object *o, int depth, ad_error_t *err);

static char *key_text(const msgpack_object *k)
{
  if (k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN) {
    const char *s = k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : k->via.bin.ptr;
    size_t n = k->type == MSGPACK_OBJECT_STR ? k->via.str.size : k->via.bin.size;
    json_t *probe = json_stringn(s, n); /* NULL when not UTF-8 */
    if (probe) {
      json_decref(probe);
      return strndup(s, n);
    }
    char *e = ad__b64_encode(s, n);
    if (!e)
      return NULL;
    char *out = malloc(strlen(e) + 6);
    if (out)
      sprintf(out, "$bin:%s", e);
    free(e);
    return out;
  }
  if (k->type == MSGPACK_OBJECT_ARRAY || k->type == MSGPACK_OBJECT_MAP) {
    json_t *j = to_json(k, 1, NULL);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    return s;
  }
  int need = ad_value_text(AD_V(k), NULL, 0);
  char *s = malloc((size_t)need + 1);
  if (s)
    ad_value_text(AD_V(k), s, (size_t)need + 1);
  return s;
}

/* ext 79: Salt's constant, msgpack [name, value] inside the ext, as
 * {"$const": name, "value": value}; NULL when it is not one. */
static json_t *const_json(const msgpack_object *o, int depth, ad_error_t *err)
{
  msgpack_zone z;
  msgpack_object c;
  json_t *out = NULL;
  if (!msgpack_zone_init(&z, 256))
    return NULL;
  if (ad__msgpack_decode(o->via.ext.ptr, o->via.ext.size, &z, &c, NULL) == 0 &&
      c.type == MSGPACK_OBJECT_ARRAY && c.via.array.size == 2) {
    json_t *name = to_json(&c.via.array.ptr[0], depth + 1, err);
    json_t *val = to_json(&c.via.array.ptr[1], depth + 1, err);
    if (name && val)
      out = json_pack("{s:o,s:o}", "$const", name, "value", val);
    else
      json_decref(name), json_decref(val);
  }
  msgpack_zone_destroy(&z);
  return out;
}

/* ext 78 as ISO text, ext 79 as a constant; any other ext, or one of
 * those that does not parse, as {"$ext": type, "$bin": base64}. */
static json_t *ext_json(const msgpack_object *o, int depth, ad_error_t *err)
{
  if (o->via.ext.type == AD_EXT_DATETIME) {
    char iso[32];
    if (ad__salt_datetime_iso(o->via.ext.ptr, o->via.ext.size, iso, sizeof(iso)) == 0)
      return json_string(iso);
  }
  if (o->via.ext.type == AD_EXT_CONSTANT) {
    json_t *out = const_json(o, depth, err);
    if (out)
      return out;
  }
  return bin_json(o->via.ext.ptr, o->via.ext.size, o->via.ext.type, 1);
}

static json_t *array_json(const msgpack_object *o, int depth, ad_error_t *err)
{
  json_t *a = json_array();
  for (uint32_t i = 0; a && i < o->via.array.size; i++) {
    json_t *e = to_json(&o->via.array.ptr[i], depth + 1, err);
    if (!e || json_array_append_new(a, e)) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}

/* Keys that are not strings become their text (key_text). */
static json_t *map_json(const msgpack_object *o, int depth, ad_error_t *err)
{
  json_t *m = json_object();
  for (uint32_t i = 0; m && i < o->via.map.size; i++) {
    const msgpack_object_kv *kv = &o->via.map.ptr[i];
    json_t *val = to_json(&kv->val, depth + 1, err);
    int bad = !val;
    if (!bad) {
      char *k = key_text(&kv->key);
      bad = !k || json_object_set_new(m, k, val); /* steals val */
      if (!k)
        json_decref(val);
      val = NULL;
      free(k);
    }
    if (bad) {
      json_decref(val);
      json_decref(m);
      if (err && err->code == 0)
        ad__err(err, AD_EDECODE, "json", "map key %u cannot be a JSON key", i);
      return NULL;
    }
  }
  return m;
}

static json_t *to_json(const msgpack_object *o, int depth, ad_error_t *err)
{
  if (depth > 512) {
    ad__err(err, AD_EDECODE, "json", "data nested too deep for JSON");
    return NULL;
  }
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: return json_null();
  case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    if (o->via.u64 > INT64_MAX) /* JSON integers are int64 in jansson */
      return json_real((double)o->via.u64);
    return json_integer((json_int_t)o->via.u64);
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
  case MSGPACK_OBJECT_STR: {
    json_t *s = json_stringn(o->via.str.ptr, o->via.str.size);
    return s ? s : bin_json(o->via.str.ptr, o->via.str.size, 0, 0);
  }
  case MSGPACK_OBJECT_BIN: return bin_json(o->via.bin.ptr, o->via.bin.size, 0, 0);
  case MSGPACK_OBJECT_EXT: return ext_json(o, depth, err);
  case MSGPACK_OBJECT_ARRAY: return array_json(o, depth, err);
  case MSGPACK_OBJECT_MAP: return map_json(o, depth, err);
  }
  return NULL;
}

json_t *ad__value_to_json(const ad_value_t *v, ad_error_t *err)
{
  if (err)
    err->code = 0;
  json_t *j = to_json(AD_MO(v), 0, err);
  if (!j && err && err->code == 0)
    ad__err(err, AD_ENOMEM, "json", "could not build JSON (out of memory?)");
  return j;
}

json_t *ad__event_to_json(ad_event_t *ev, ad_error_t *err)
{
  const ad_value_t *data = ad_event_data(ev, err);
  if (!data)
    return NULL;
  json_t *d = ad__value_to_json(data, err);
  if (!d)
    return NULL;
  json_t *j = json_pack("{s:s%,s:o}", "tag", ad_event_tag(ev),
                        ad_event_tag_len(ev), "data", d);
  if (!j)
    ad__err(err, AD_EDECODE, "json", "tag of %zu bytes is not valid UTF-8",
            ad_event_tag_len(ev));
  return j;
}

/* Dump and free j; NULL + *err when j is NULL (err already set) or when
 * jansson cannot dump it. */
static char *dump(json_t *j, int indent, ad_error_t *err)
{
  if (!j)
    return NULL;
  size_t flags = JSON_ENCODE_ANY | (indent ? JSON_INDENT(indent) : JSON_COMPACT);
  char *text = json_dumps(j, flags);
  json_decref(j);
  if (!text)
    ad__err(err, AD_ENOMEM, "json", "could not write JSON text (out of memory?)");
  return text;
}

static int bad_indent(int indent, ad_error_t *err)
{
  if (indent >= 0 && indent <= 31)
    return 0;
  return ad__err(err, AD_EINVAL, "json", "indent %d: must be 0..31", indent);
}

char *ad_value_to_json_text(const ad_value_t *v, int indent, ad_error_t *err)
{
  if (bad_indent(indent, err))
    return NULL;
  return dump(ad__value_to_json(v, err), indent, err);
}

char *ad_event_to_json_text(ad_event_t *ev, int indent, ad_error_t *err)
{
  if (bad_indent(indent, err))
    return NULL;
  return dump(ad__event_to_json(ev, err), indent, err);
}
