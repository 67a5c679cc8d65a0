/* bson_json.h - MongoDB documents <-> jansson values, directly (no text in
 * between), with the mapping the text route (libbson's relaxed extended
 * JSON + json_loads, json_dumps + bson_new_from_json) had, so callers see
 * the same JSON:
 *
 *   BSON -> JSON                      JSON -> BSON
 *   double  -> real                   real    -> double
 *   int32, int64 -> integer           integer -> int32 when it fits, else int64
 *   utf8    -> string                 string  -> utf8
 *   bool, null -> true/false, null    true/false, null -> bool, null
 *   document, array -> object, array  object, array -> document, array
 *   date 1970..9999 -> {"$date": "YYYY-MM-DDTHH:MM:SS[.mmm]Z"}
 *   other dates -> {"$date": {"$numberLong": "<ms>"}}
 *   anything else (ObjectId, binary, regex, timestamp, decimal128, NaN and
 *   infinite doubles, ...) and, the other way, any object with an extended
 *   JSON key ($oid, $date, $numberLong, $regex, $type, ...): converted by
 *   libbson through text, exactly as before, since those are rare.
 *
 * One difference: a BSON string holding a NUL byte is kept (the text route
 * lost the whole document, as jansson refuses \u0000 by default). */
#ifndef AD_STORE_BSON_JSON_H
#define AD_STORE_BSON_JSON_H

#include <bson/bson.h>
#include <jansson.h>

#include "autodeploy/common.h"

/* A BSON document as a new jansson object, or NULL (corrupt BSON, invalid
 * UTF-8, nesting deeper than 100, no memory). */
json_t *ad__bson_to_json(const bson_t *b);

/* A jansson object as a new BSON document (caller bson_destroy()s), or
 * NULL + err (AD_EINVAL: not an object, bad extended JSON; AD_ENOMEM). */
bson_t *ad__json_to_bson(const json_t *j, ad_error_t *err);

#endif
