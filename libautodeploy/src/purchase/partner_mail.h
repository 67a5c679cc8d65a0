/* partner_mail.h - the email to the paying partner (issue 11): one message
 * per order, plain text and HTML, over SMTP through libcurl (STARTTLS and
 * AUTH per configuration). Sending is synchronous and idempotent by design:
 * Message-ID is <order _id@domain>, so a resend after a lost answer is the
 * same message. The outbox is the orders collection itself (an order in
 * `ordered` whose mail has not gone yet is retried by the purchase timer;
 * partner_notified once it has), as the CMDB outbox is the hosts collection. */
#ifndef AD_PURCHASE_PARTNER_MAIL_H
#define AD_PURCHASE_PARTNER_MAIL_H

#include <jansson.h>

#include "autodeploy/common.h"
#include "core/config.h"

typedef struct ad__partner_mail ad__partner_mail_t;

/* purchase.partner_mail: {url: "smtp://host:port" | "smtps://...",
 * from, to: [..], cc: [..], username, password, auth, starttls: bool,
 * ca_file, insecure_skip_verify, timeout_s, subject_prefix,
 * message_id_domain}. NULL + AD_ECONFIG naming the key. */
ad__partner_mail_t *ad__partner_mail_new(const json_t *conf, ad_error_t *err);
void ad__partner_mail_destroy(ad__partner_mail_t **m_p);

/* Send the message for `orders` (an array of order documents of one
 * planning day, borrowed; usually one per profile: one table row each:
 * order id, profile, flavour, count, the cloud's order id, the reason:
 * platforms and hours waited). 0, or AD_EAGAIN + *err (SMTP down, a
 * timeout or a 4xx reply: retry later), or AD_EIO + *err (a 5xx reply or
 * a refused login: the configuration needs fixing) / AD_EINVAL (an order
 * without a header-safe _id). */
int ad__partner_mail_send(ad__partner_mail_t *m, const json_t *orders, ad_error_t *err);

/* The message as it would be sent (RFC 5322 text, caller frees), for
 * tests and the dry run. */
char *ad__partner_mail_render(ad__partner_mail_t *m, const json_t *orders, ad_error_t *err);

/* The key tables (NULL-terminated, static), for the configuration reference
 * (engine/config_keys.c). */
const ad__config_key_t *ad__partner_mail_keys(void);

#endif
