/* config.h - the engine's `purchase` object (docs/purchase.md, "Keys"):
 * parsed once, immutable after. Every refusal names the key
 * ("purchase.profiles.big.cap_day: must be an integer >= 0"). */
#ifndef AD_PURCHASE_CONFIG_H
#define AD_PURCHASE_CONFIG_H

#include <jansson.h>

#include "autodeploy/common.h"
#include "decide/pack.h"
#include "purchase/tz.h"

typedef struct {
  char *name, *flavour, *region; /* region NULL: none configured */
  ad__dims_t capacity;           /* cpu cores, mem MiB, disk GiB of one host */
  long cap_day, cap_month;       /* AD__CAP_NONE (-1): no cap */
} ad__pprofile_t;

typedef struct {
  int enabled;
  int hh, mm;                /* time: the daily run, local */
  int manual;                /* time "manual": no daily run (salt-run or a schedule plans) */
  char *timezone;
  ad__tz_t *tz;
  ad__pprofile_t *profiles;  /* in preference order */
  size_t n_profiles;
  long cap_day, cap_month;   /* caps over all profiles, or AD__CAP_NONE */
  int approval_required;
  double approval_timeout_h;
  json_t *dingtalk;          /* approval.dingtalk (owned) or NULL */
  json_t *backend;           /* the backend object, with its type (owned) */
  json_t *partner_mail;      /* owned, or NULL: no mail (ordered is then final
                                until hosts arrive) */
  int unfulfilled_alert_days;
  char *collection;          /* "orders" */
  int retry_base_s, retry_max_s; /* backoff of a retried placement / mail */
  int drive_interval_s;      /* how often open orders are driven along */
} ad__purchase_conf_t;

/* `conf` (borrowed): the engine's purchase object. `zoneinfo`: the TZif
 * directory (NULL: the system's). 0, or AD_ECONFIG + *err naming the key;
 * *c is then freed already. */
int ad__purchase_conf_load(const json_t *conf, const char *zoneinfo, ad__purchase_conf_t *c,
                           ad_error_t *err);
void ad__purchase_conf_free(ad__purchase_conf_t *c);

/* The profile named `name`, or NULL. */
const ad__pprofile_t *ad__purchase_profile(const ad__purchase_conf_t *c, const char *name);

#endif
