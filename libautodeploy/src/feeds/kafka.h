/* kafka.h - openings consumed from a Kafka topic (docs/kafka.md).
 *
 * One thread runs a librdkafka consumer in a consumer group. Each message
 * goes through canal.c; each opening it yields goes to the `apply`
 * callback (the engine passes the fleet's ad__fleet_apply_opening, so this
 * module does not call up into the fleet). Only when every opening of a
 * message is applied (or known already applied, or refused for good) is
 * the message's offset stored; librdkafka commits stored offsets in the
 * background and on close. Delivery is therefore at least once, and
 * applying is idempotent, so nothing is counted twice. A malformed message
 * is logged with its partition and offset, counted, and stored past. */
#ifndef AD_FEEDS_KAFKA_H
#define AD_FEEDS_KAFKA_H

#include <jansson.h>
#include <stdint.h>

#include "autodeploy/common.h"
#include "core/config.h"

typedef struct ad__kafka ad__kafka_t;

/* Apply one opening. AD__OPENING_APPLIED (0), _ALREADY (1), _REFUSED (2)
 * (fleet.h), AD_ENOTFOUND (no such service: skipped), or another negative
 * code: not applied, retried until it is or the feed stops (then the
 * message is not committed and comes again). */
typedef int (*ad__kafka_apply_fn)(void *user, const char *service, int64_t at_ms,
                                  const char *actor, ad_error_t *err);

/* conf: the engine's "kafka" object {brokers, topic, group, mapping,
 * security?, properties?, retry_ms?}. NULL + err naming the key. */
ad__kafka_t *ad__kafka_new(const json_t *conf, ad__kafka_apply_fn apply, void *user,
                           ad_error_t *err);
/* Start the consumer thread. 0 or <0 + err. */
int ad__kafka_start(ad__kafka_t *k, ad_error_t *err);
/* Stop the thread (the message in hand finishes or stays uncommitted),
 * commit what was stored and leave the group. NULL-safe. */
void ad__kafka_stop(ad__kafka_t *k);
void ad__kafka_destroy(ad__kafka_t **k_p);

/* The counters: {consumed, openings, duplicates, refused, unknown,
 * malformed, ignored, retries, errors, lag}. New reference. */
json_t *ad__kafka_stats_json(ad__kafka_t *k);

/* the kafka key table (docs/configuration-reference.md) */
const ad__config_key_t *ad__kafka_keys(void);

#endif
