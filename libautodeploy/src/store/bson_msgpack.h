/* bson_msgpack.h - msgpack values to BSON with MongoDB-safe, reversibly
 * escaped keys (see bson_msgpack.c for the mapping). */
#ifndef AD_BSON_MSGPACK_H
#define AD_BSON_MSGPACK_H

#include <bson/bson.h>

#include "autodeploy/event.h"

/* Append v under `key` (key used as given: escape it yourself). */
int ad__bson_append_value(bson_t *b, const char *key, const ad_value_t *v,
                          ad_error_t *err);

/* Append every pair of the map v as fields of b (keys escaped). */
int ad__bson_append_map_fields(bson_t *b, const ad_value_t *map, ad_error_t *err);

/* Escape n bytes of key into out (cap bytes, NUL-terminated); returns the
 * escaped length (which may exceed cap - 1: then out is truncated). */
size_t ad__key_escape(const char *k, size_t n, char *out, size_t cap);

/* Reverse ad__key_escape; out needs n + 1 bytes. Returns the length. */
size_t ad__key_unescape(const char *k, size_t n, char *out);

#endif
