/* notices.h - the texts every outbound part of the purchase loop shares
 * (issue 11): the order's reason in one line (the http backend's {reason},
 * the partner mail's table, the DingTalk approval form), and the DingTalk
 * robot message for a site with a robot and no OA approval: a robot cannot
 * collect a decision (its buttons are links), so the message says what is
 * asked and how to answer with salt-run or salt-api.
 *
 * The order document, as read here (borrowed, never changed): _id, profile,
 * flavour, region, count, reason (a string), and optionally platforms:
 * [{platform, services, waited_hours}], cloud_order_id. */
#ifndef AD_PURCHASE_NOTICES_H
#define AD_PURCHASE_NOTICES_H

#include <jansson.h>

/* The reason in one line: `reason` when the order has one, else built from
 * `platforms` ("qq: 12 services, waited 30 h; wx: 3 services, waited 2 h"),
 * else "". Caller frees; NULL on no memory. */
char *ad__order_reason_text(const json_t *order);

/* The markdown text of the robot message asking for a decision on
 * `order`. `salt_api_url` (may be NULL or "") is put in the salt-api
 * example; the text names no credential. Caller frees; NULL on no memory. */
char *ad__order_robot_text(const json_t *order, const char *salt_api_url);

#endif
