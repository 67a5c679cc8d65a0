/*
 * autodeploy/common.h - export macro, error type, log hook, global init.
 *
 * Conventions (see docs/api.md):
 *   - functions return 0 or a negative AD_E* code, or NULL, and fill an
 *     optional ad_error_t with a domain, code and human message;
 *   - `char *` returned: the caller frees with free(); `const char *`
 *     returned: borrowed, valid as long as the owning object;
 *   - ad_x_destroy(ad_x_t **p) is NULL-safe and sets *p = NULL;
 *   - the library never prints: it calls the log handler.
 */
#ifndef AUTODEPLOY_COMMON_H
#define AUTODEPLOY_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(AD_BUILDING_LIBRARY)
#define AD_EXPORT __attribute__((visibility("default")))
#else
#define AD_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define AD_VERSION_MAJOR 0
#define AD_VERSION_MINOR 1
#define AD_VERSION_PATCH 0
#define AD_VERSION_STRING "0.1.0"

/* Error codes: one X-macro table, so ad_strerror and ad_errname cannot drift. */
#define AD_ERRNO_MAP(XX)                                              \
  XX(OK, 0, "success")                                               \
  XX(INVAL, -1, "invalid argument")                                  \
  XX(NOMEM, -2, "out of memory")                                     \
  XX(IO, -3, "input/output error")                                   \
  XX(CONNECT, -4, "cannot connect")                                  \
  XX(CLOSED, -5, "connection closed by peer")                        \
  XX(FRAME, -6, "malformed frame")                                   \
  XX(TOOBIG, -7, "frame larger than max_frame")                      \
  XX(DECODE, -8, "malformed event payload")                          \
  XX(NOTFOUND, -9, "not found")                                      \
  XX(TYPE, -10, "value has another type")                            \
  XX(AGAIN, -11, "try again (incomplete input)")                     \
  XX(FULL, -12, "queue full")                                        \
  XX(CONFIG, -13, "bad configuration")                               \
  XX(ZMQ, -14, "zeromq error")                                       \
  XX(TIMEOUT, -15, "timed out")                                      \
  XX(STOPPED, -16, "stopped")                                        \
  XX(STATE, -17, "not allowed in this state")

typedef enum {
#define XX(name, val, msg) AD_E##name = (val),
  AD_ERRNO_MAP(XX)
#undef XX
} ad_errno_t;

/* Error domains: where an error came from, the text in ad_error_t.domain
 * (and a stable value to match on). One list: `make test-c` fails when the
 * library sets a domain that is not here (libautodeploy/check_api.py), and
 * docs/errors.md documents each. XX(NAME, "text", what) */
#define AD_DOMAIN_MAP(XX)                                             \
  XX(API, "api", "misuse of the API (struct_size)")                  \
  XX(ARGS, "args", "ad_call arguments")                              \
  XX(BSON, "bson", "BSON conversion")                                \
  XX(BUS, "bus", "the event bus")                                    \
  XX(CALL, "call", "ad_call commands")                               \
  XX(CMDB, "cmdb", "the outside CMDB push")                          \
  XX(CONFIG, "config", "configuration keys and values")              \
  XX(DINGTALK, "dingtalk", "DingTalk notifier channel")              \
  XX(ENCODING, "encoding", "base64 and other encodings")            \
  XX(ENGINE, "engine", "the engine")                                 \
  XX(ERRNO, "errno", "a system call (message has strerror)")         \
  XX(EVENT, "event", "event bodies and data")                        \
  XX(FANOUT, "fanout", "ZeroMQ PUB fan-out")                         \
  XX(FIRE, "fire", "firing events into the master")                  \
  XX(FLEET, "fleet", "fleet platforms and cycles")                   \
  XX(FRAME, "frame", "bus framing (decoder)")                        \
  XX(HTTP, "http", "HTTP client")                                    \
  XX(JSON, "json", "JSON conversion")                                \
  XX(METRICS, "metrics", "metrics sources")                          \
  XX(NOTIFY, "notify", "notifier")                                   \
  XX(PLACEMENT, "placement", "placement decision")                   \
  XX(PURCHASE, "purchase", "the daily purchase plan and orders")     \
  XX(REGISTRY, "registry", "host registry")                          \
  XX(RESERVE, "reserve", "reserve decision")                         \
  XX(RETURNS, "returns", "job returns")                              \
  XX(SALT, "salt", "Salt's files (keys, grains cache)")              \
  XX(SIGN, "sign", "signing events with the master key")             \
  XX(SIMULATE, "simulate", "the simulator")                          \
  XX(SMTP, "smtp", "mail notifier channel")                          \
  XX(SPOOL, "spool", "the on-disk spool")                            \
  XX(STORE, "store", "MongoDB storage")                              \
  XX(TASKS, "tasks", "deploy tasks")                                 \
  XX(WEBHOOK, "webhook", "webhook notifier channel")                 \
  XX(ZMQ, "zmq", "ZeroMQ")

/* Error details, like bson_error_t: filled by any call that takes one. */
typedef struct {
  int code;          /* an AD_E* value */
  char domain[16];   /* one of AD_DOMAIN_MAP's texts */
  char message[240]; /* what went wrong, naming the offending input */
} ad_error_t;

/* Static string for an AD_E* code; never NULL. */
AD_EXPORT const char *ad_strerror(int code);
/* "AD_EFRAME" style name for an AD_E* code; never NULL. */
AD_EXPORT const char *ad_errname(int code);

/* Log levels match syslog's order; the Python shim maps them to logging. */
typedef enum {
  AD_LOG_ERROR = 3,
  AD_LOG_WARNING = 4,
  AD_LOG_INFO = 6,
  AD_LOG_DEBUG = 7
} ad_log_level_t;

/* Called from any library thread; must be thread-safe. `domain` and
 * `message` are borrowed for the duration of the call. */
typedef void (*ad_log_fn)(ad_log_level_t level, const char *domain,
                          const char *message, void *user);

/* Install the process-wide log handler (NULL: discard). Messages above
 * `max_level` (e.g. DEBUG when max is INFO) are not formatted at all. */
AD_EXPORT void ad_log_set_handler(ad_log_fn fn, void *user,
                                  ad_log_level_t max_level);

/* One-time process init (libcurl, mongoc when linked). Call before
 * starting threads; safe to call more than once. Returns 0. */
AD_EXPORT int ad_global_init(void);

/* Library version string, e.g. "0.1.0". */
AD_EXPORT const char *ad_version(void);

#ifdef __cplusplus
}
#endif
#endif
