/* approval_dingtalk.h - an order's approval through DingTalk OA (issue 11):
 * the access token from the app key and secret (POST /v1.0/oauth2/
 * accessToken, cached until it expires), an approval instance created with
 * POST /v1.0/workflow/processInstances (processCode, originatorUserId,
 * formComponentValues: the order id, the counts, the platforms, the hours
 * waited, the reason), its result learnt by polling GET /v1.0/workflow/
 * processInstances?processInstanceId=... (or pushed: `callback`, below).
 * base_url is configurable so tests point it at a local server that
 * follows the published protocol. */
#ifndef AD_PURCHASE_APPROVAL_DINGTALK_H
#define AD_PURCHASE_APPROVAL_DINGTALK_H

#include <jansson.h>

#include "autodeploy/common.h"
#include "core/config.h"
#include "purchase/dingtalk_crypto.h"

typedef struct ad__dt_approval ad__dt_approval_t;

/* purchase.approval.dingtalk: {base_url (default https://api.dingtalk.com),
 * app_key, app_secret, process_code, originator_user_id, dept_id?,
 * form: {field label overrides}?, timeout_s, callback: {token, aes_key,
 * owner_key (default app_key)}?}. NULL + AD_ECONFIG naming the key (a
 * missing process_code is named; an aes_key that is not 43 characters of
 * base64 too). */
ad__dt_approval_t *ad__dt_approval_new(const json_t *conf, ad_error_t *err);
void ad__dt_approval_destroy(ad__dt_approval_t **a_p);

/* Create the approval instance for `order` (borrowed). 0 with *instance_id
 * (caller frees), AD_EAGAIN + *err (retry), or another code + *err. The
 * order _id is in the form, so a retried create can be recognised. */
int ad__dt_approval_create(ad__dt_approval_t *a, const json_t *order, char **instance_id,
                           ad_error_t *err);

/* The instance's state: 1 approved, 0 still running, 2 rejected (or
 * terminated); *who (optional, caller frees) names the approver when the
 * answer says; negative + *err on failure (AD_EAGAIN: retry). */
int ad__dt_approval_poll(ad__dt_approval_t *a, const char *instance_id, char **who,
                         ad_error_t *err);

/* The pushes' crypto (borrowed, immutable: any thread), or NULL when no
 * `callback` is configured. */
const ad__dt_crypto_t *ad__dt_approval_callback(const ad__dt_approval_t *a);
/* The configured process_code (borrowed). */
const char *ad__dt_approval_process_code(const ad__dt_approval_t *a);

/* The key tables (NULL-terminated, static), for the configuration reference
 * (engine/config_keys.c): the object's, and its `callback`'s. */
const ad__config_key_t *ad__approval_dingtalk_keys(void);
const ad__config_key_t *ad__approval_dingtalk_callback_keys(void);

#endif
