/*
 * autodeploy/notify.h - notifications to people: DingTalk custom robots,
 * mail over SMTP, generic JSON webhooks (docs/notify.md).
 *
 * A notifier is built from one JSON object:
 *
 *   {"channels": [
 *      {"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=..",
 *       "secret": "SEC..", "at_mobiles": ["138..."]},
 *      {"type": "smtp", "url": "smtp://mail.example.com:587", "starttls": true,
 *       "username": "..", "password": "..", "from": "ops@example.com", "to": ["a@x"]},
 *      {"type": "webhook", "url": "https://hooks.example.com/x",
 *       "headers": {"Authorization": "Bearer .."}}],
 *    "timeout_ms": 5000, "retries": 3, "backoff_ms": 500, "queue_size": 1000}
 *
 * Never blocking the caller: ad_notify_send only copies the message into a
 * bounded queue per channel and returns. Each channel has its own sender
 * thread, so a channel whose server hangs delays nobody else: every try is
 * bounded by timeout_ms, failed tries are repeated `retries` times with
 * exponential backoff, then the message is counted as failed and logged.
 * When a channel's queue is full the message is REFUSED for that channel:
 * ad_notify_send returns AD_EFULL, the refusal is counted and logged, and
 * nothing waits.
 *
 * Secrets (robot secrets, access tokens in URLs, passwords, header values)
 * never appear in logs or error messages: channels are named by their
 * `name` (default "<type>#<index>") and their host.
 */
#ifndef AUTODEPLOY_NOTIFY_H
#define AUTODEPLOY_NOTIFY_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ad_notifier ad_notifier_t;

/* Counters, per channel or summed over channels. Grows at its end: set
 * struct_size = sizeof before ad_notify_stats. */
typedef struct {
  size_t struct_size; /* caller: sizeof(ad_notify_stats_t) */
  uint64_t queued;    /* accepted into the channel's queue */
  uint64_t coalesced; /* not queued: the same dedup_key was already waiting */
  uint64_t refused;   /* not queued: the queue was full (AD_EFULL) */
  uint64_t sent;      /* delivered */
  uint64_t failed;    /* given up: 1 + retries tries failed, or a permanent error */
  uint64_t retried;   /* tries after the first */
  uint64_t dropped;   /* still queued when the notifier was destroyed */
  uint64_t depth;     /* waiting now, counting the one being delivered */
} ad_notify_stats_t;

/* Parse and validate the configuration, start one sender thread per
 * channel. NULL + *err naming the key and the reason, e.g.
 * "channels[0].type: \"pager\" is not one of dingtalk, smtp, webhook".
 * Calls ad_global_init() itself. Destroy with ad_notifier_destroy. */
AD_EXPORT ad_notifier_t *ad_notifier_new(const char *config_json, ad_error_t *err);

/* Queue a message for every channel and return at once; never blocks on the
 * network. `title` (one line) and `markdown_text` are UTF-8 and copied;
 * `dedup_key` (may be NULL) is passed to the backends, and a message whose
 * non-empty key equals one still waiting in a channel's queue is not
 * queued twice there (counted as coalesced).
 * 0: queued (or coalesced) on every channel. AD_EFULL: refused by at least
 * one full channel queue (the message names them; other channels did queue
 * it). AD_EINVAL: NULL title or text. AD_ESTOPPED: being destroyed. */
AD_EXPORT int ad_notify_send(ad_notifier_t *n, const char *title,
                             const char *markdown_text, const char *dedup_key,
                             ad_error_t *err);

/* The same message, delivered now on the calling thread to every channel,
 * with the configured timeout and retries (for tools and tests; it BLOCKS
 * up to channels x (1 + retries) x timeout_ms plus backoff). 0 when every
 * channel delivered it; else the first failure's code (AD_EIO, AD_ETIMEOUT,
 * AD_ECONNECT, ...) and *err naming the channels that failed. */
AD_EXPORT int ad_notify_send_now(ad_notifier_t *n, const char *title,
                                 const char *markdown_text,
                                 const char *dedup_key, ad_error_t *err);

/* Wait until every channel's queue is empty and nothing is in flight
 * (timeout_ms < 0: no limit). 0, or AD_ETIMEOUT. For tests and shutdown. */
AD_EXPORT int ad_notify_flush(ad_notifier_t *n, int timeout_ms);

/* Counters of channel `index` (0-based, in configuration order), or summed
 * over all channels when index is -1, into *st up to st->struct_size (set
 * by the caller). 0, AD_ENOTFOUND past the end, or AD_EINVAL naming
 * struct_size; *err says which. */
AD_EXPORT int ad_notify_stats(ad_notifier_t *n, int index, ad_notify_stats_t *st,
                              ad_error_t *err);

/* {"total": {...}, "channels": [{"name", "type", "host", counters...}]} as
 * JSON text; caller frees with free() or ad_free(). NULL on no memory. */
AD_EXPORT char *ad_notify_stats_json(ad_notifier_t *n);

/* Stop the sender threads and free. NULL-safe; sets *self_p = NULL.
 * Does NOT wait for queued messages (call ad_notify_flush first): a try in
 * flight is cancelled, messages still queued are counted as dropped and
 * logged. */
AD_EXPORT void ad_notifier_destroy(ad_notifier_t **self_p);

#ifdef __cplusplus
}
#endif
#endif
