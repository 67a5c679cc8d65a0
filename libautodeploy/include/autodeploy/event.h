/*
 * autodeploy/event.h - a Salt event: its tag, and typed access to its data.
 *
 * An event's data stays as msgpack bytes until first asked for; decoding
 * then builds a read-only tree in one arena (no per-node allocation).
 * Values (ad_value_t) are borrowed from their event and live as long as it.
 *
 * Salt specifics handled here:
 *   - ext type 78 (datetime, strftime "%Y%m%dT%H:%M:%S.%f") reads as the
 *     ISO-8601 string "YYYY-MM-DDTHH:MM:SS.ffffff";
 *   - ext type 79 (salt.payload._Constant, msgpack of [name, value]) reads
 *     as its name;
 *   - map keys may be any type (ints from Python dicts, bin from bytes);
 *   - bin and str are both readable as strings.
 */
#ifndef AUTODEPLOY_EVENT_H
#define AUTODEPLOY_EVENT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ad_event ad_event_t;
typedef struct ad_value ad_value_t; /* opaque; borrowed from an event */

typedef enum {
  AD_VT_NIL = 0,
  AD_VT_BOOL,
  AD_VT_INT,    /* fits int64 */
  AD_VT_UINT,   /* above INT64_MAX */
  AD_VT_FLOAT,
  AD_VT_STR,
  AD_VT_BIN,
  AD_VT_ARRAY,
  AD_VT_MAP,
  AD_VT_EXT     /* other than 78/79, which read as strings */
} ad_vtype_t;

/* --- events ------------------------------------------------------------ */

/* New event from a frame body (tag "\n\n" msgpack data), copying it.
 * The data is not decoded yet. NULL + *err when there is no "\n\n". */
AD_EXPORT ad_event_t *ad_event_parse(const void *body, size_t len,
                                     ad_error_t *err);

/* New event from a tag and msgpack data, copying both (the data is not
 * decoded yet). NULL + *err: AD_EINVAL for a NULL pointer with a non-zero
 * length, AD_ENOMEM. */
AD_EXPORT ad_event_t *ad_event_new(const char *tag, size_t tag_len,
                                   const void *data, size_t data_len,
                                   ad_error_t *err);

/* NULL-safe; sets *self_p = NULL. Invalidates every value taken from it. */
AD_EXPORT void ad_event_destroy(ad_event_t **self_p);

/* NUL-terminated tag, borrowed. */
AD_EXPORT const char *ad_event_tag(const ad_event_t *ev);
AD_EXPORT size_t ad_event_tag_len(const ad_event_t *ev);

/* The data's msgpack bytes, borrowed. */
AD_EXPORT const void *ad_event_raw(const ad_event_t *ev, size_t *len);

/* Decoded data (decodes on first call; later calls are free). NULL with
 * *err (AD_EDECODE, naming the offset) when the bytes are not msgpack.
 * Not thread-safe on first call: one event belongs to one thread. */
AD_EXPORT const ad_value_t *ad_event_data(ad_event_t *ev, ad_error_t *err);

/* Value at a ':'-separated path in the data (Salt's traverse_dict
 * delimiter), e.g. "return", "return:retcode", "fun_args:0". Integer
 * segments index arrays. NULL when absent or the data does not decode. */
AD_EXPORT const ad_value_t *ad_event_find(ad_event_t *ev, const char *path);

/* Typed shortcuts over ad_event_find. 0 on success, AD_ENOTFOUND when the
 * path is absent, AD_ETYPE when the value has another type. */
AD_EXPORT int ad_event_get_str(ad_event_t *ev, const char *path,
                               const char **s, size_t *len);
AD_EXPORT int ad_event_get_int(ad_event_t *ev, const char *path, int64_t *out);
AD_EXPORT int ad_event_get_bool(ad_event_t *ev, const char *path, int *out);

/* {"tag": ..., "data": ...} as JSON text, mapped as ad_value_to_json_text.
 * `indent` 0: one compact line; 1..31: pretty, that many spaces a level.
 * Returns text the caller frees (free or ad_free). For tools and tests:
 * never on the hot path. NULL + *err on bad data or a bad indent. */
AD_EXPORT char *ad_event_to_json_text(ad_event_t *ev, int indent,
                                      ad_error_t *err);

/* --- values ------------------------------------------------------------ */

AD_EXPORT ad_vtype_t ad_value_type(const ad_value_t *v);

/* Map lookup by string key (str or bin keys match). NULL when absent or
 * v is not a map. `key_len` (size_t)-1 means strlen(key). */
AD_EXPORT const ad_value_t *ad_value_get(const ad_value_t *v, const char *key,
                                         size_t key_len);

/* Path lookup relative to v, as ad_event_find. */
AD_EXPORT const ad_value_t *ad_value_path(const ad_value_t *v, const char *path);

/* Elements of an array or pairs of a map; 0 for other types. */
AD_EXPORT size_t ad_value_len(const ad_value_t *v);

/* Array element i, or NULL. */
AD_EXPORT const ad_value_t *ad_value_at(const ad_value_t *v, size_t i);

/* Map pair i: 0 and *key / *val, or AD_ENOTFOUND / AD_ETYPE. */
AD_EXPORT int ad_value_pair(const ad_value_t *v, size_t i,
                            const ad_value_t **key, const ad_value_t **val);

/* Strings: str and bin read as their bytes (not NUL-terminated); ext 78
 * and 79 are not here, use ad_value_text. 0, or AD_ETYPE. */
AD_EXPORT int ad_value_str(const ad_value_t *v, const char **s, size_t *len);

/* int and uint fitting int64; 0 or AD_ETYPE (AD_EINVAL if out of range). */
AD_EXPORT int ad_value_int(const ad_value_t *v, int64_t *out);
AD_EXPORT int ad_value_bool(const ad_value_t *v, int *out);
/* float, or an integer converted. */
AD_EXPORT int ad_value_double(const ad_value_t *v, double *out);

/* Any scalar as text into buf (NUL-terminated, truncated to size): str/bin
 * bytes, numbers, true/false/null, ext 78 as ISO-8601, ext 79 as its name.
 * Returns the full length needed (like snprintf), or AD_ETYPE for
 * arrays/maps. */
AD_EXPORT int ad_value_text(const ad_value_t *v, char *buf, size_t size);

/* Raw ext payload: 0 and *type, *data, *len, or AD_ETYPE. */
AD_EXPORT int ad_value_ext(const ad_value_t *v, int8_t *type,
                           const char **data, size_t *len);

/* Salt datetime (ext 78) as ISO-8601 "YYYY-MM-DDTHH:MM:SS.ffffff" in buf
 * (>= 27 bytes). 0, AD_ETYPE, or AD_EDECODE for a malformed stamp. */
AD_EXPORT int ad_value_datetime(const ad_value_t *v, char *buf, size_t size);

/* v as JSON text (any value, scalars included), `indent` as
 * ad_event_to_json_text; the caller frees it (free or ad_free). Mapping
 * (docs/events.md): bin {"$bin": base64}, str that is not UTF-8 likewise;
 * non-string map keys rendered as text; ext 78 an ISO-8601 string; ext 79
 * {"$const": name, "value": v}. NULL + *err on failure. */
AD_EXPORT char *ad_value_to_json_text(const ad_value_t *v, int indent,
                                      ad_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
