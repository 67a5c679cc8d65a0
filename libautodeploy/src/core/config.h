/* config.h - one declarative table per configurable object (redis's
 * static_configs[] idea): name, type, default, range. Loading reports the
 * key and the reason for every bad value; unknown keys are errors. */
#ifndef AD_CONFIG_H
#define AD_CONFIG_H

#include <jansson.h>
#include <stddef.h>

#include "autodeploy/common.h"

/* AD_CT_SECRET: a string that is a credential (a password, a token): kept
 * in the redaction set while loaded (core/redact.h), so that no message
 * quotes it; a string holding a URL gives its password and credential-named
 * query values to that set too. */
typedef enum { AD_CT_INT, AD_CT_SIZE, AD_CT_BOOL, AD_CT_STR, AD_CT_ENUM, AD_CT_SECRET } ad__ctype_t;

typedef struct {
  const char *name;
  ad__ctype_t type;
  size_t offset;          /* into the target struct */
  long long min, max;     /* INT/SIZE range */
  const char *def;        /* default as text ("" for none) */
  const char *const *enums; /* ENUM: NULL-terminated names; stored as int index */
} ad__config_key_t;

/* Apply defaults, then the JSON object's values. Strings are strdup'ed into
 * `char *` fields (free with ad__config_free, which also drops their
 * secrets from the redaction set). 0 or AD_ECONFIG + *err. */
int ad__config_load(const ad__config_key_t *table, void *target,
                    const json_t *obj, ad_error_t *err);
void ad__config_free(const ad__config_key_t *table, void *target);

/* Parse `text` (NULL or "" = {}) as a JSON object. NULL + *err
 * (AD_ECONFIG, or `code`) naming `what`, the line and the column. */
json_t *ad__config_parse(const char *text, const char *what, int code, ad_error_t *err);

#endif
