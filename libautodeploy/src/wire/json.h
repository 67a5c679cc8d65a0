/* json.h - event data as jansson values, inside the library only. The
 * public API hands out JSON text (ad_value_to_json_text), so jansson stays
 * a private dependency (docs/api.md, "JSON at the boundary"). */
#ifndef AD_WIRE_JSON_H
#define AD_WIRE_JSON_H

#include <jansson.h>

#include "autodeploy/event.h"

/* New jansson value for v (caller owns, decref), mapped as json.c's header
 * says. NULL + *err (AD_EDECODE or AD_ENOMEM). */
json_t *ad__value_to_json(const ad_value_t *v, ad_error_t *err);

/* {"tag": ..., "data": ...} for ev, decoding its data. NULL + *err. */
json_t *ad__event_to_json(ad_event_t *ev, ad_error_t *err);

#endif
