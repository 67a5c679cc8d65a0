/* sign.h - signed events: only the master side can fire autodeploy's
 * control events (task runs, kills, interventions).
 *
 * sig = base64(HMAC-SHA256(key, tag + "|" + body)), key = the exact bytes of
 * the master's <cachedir>/.<user>_key (readable only by the master's user,
 * new at every master start, so it is read again for every event). The
 * reactor SLS checks it with Salt's own `hmac` Jinja filter; the engine
 * checks it in C. See docs/correlation.md for why an unsigned event cannot
 * be trusted even when it looks master-made. */
#ifndef AD_SIGN_H
#define AD_SIGN_H

#include <jansson.h>

#include "autodeploy/bus.h"

/* base64 HMAC-SHA256 of msg under key; caller frees. NULL on no memory. */
char *ad__sign(const char *key, size_t klen, const char *msg, size_t mlen);

/* Read the master key file; *key malloc'd. 0 or AD_EIO naming the path. */
int ad__read_key(const char *path, char **key, size_t *len, ad_error_t *err);

/* Fire tag with data {"body": <request as compact JSON, keys sorted>,
 * "sig": ...}. 0 or <0 + err. */
int ad__fire_signed(ad_bus_t *bus, const char *key_path, const char *tag,
                    const json_t *request, ad_error_t *err);

/* Check an event's {"body", "sig"}; on success *body points into the event
 * (not NUL-terminated, *body_len bytes). 0, or AD_EINVAL naming the reason. */
int ad__verify_signed(ad_event_t *ev, const char *key_path, const char **body,
                      size_t *body_len, ad_error_t *err);

#endif
