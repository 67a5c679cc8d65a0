/* group.h - counts by field values, for the status report: one aggregate
 * ($match, $group, $sort) instead of one count per value. */
#ifndef AD_STORE_GROUP_H
#define AD_STORE_GROUP_H

#include <jansson.h>

#include "store/store.h"

/* Documents of `coll` matching `match` (borrowed, may be NULL), counted by
 * the values of `fields` (1..4 names): a new array of {<field>: value, ...,
 * "count": n}, sorted by the fields (a missing field is null). NULL + err
 * (AD_ECONNECT when the server cannot be reached, AD_EIO when it refused). */
json_t *ad__store_count_by(ad__store_t *st, const char *coll, const bson_t *match,
                           const char *const *fields, size_t nfields, ad_error_t *err);

/* 1 when the database has collection `coll`, 0 when not, <0 + err. */
int ad__store_has_collection(ad__store_t *st, const char *coll, ad_error_t *err);

#endif
