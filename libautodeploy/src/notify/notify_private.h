/* notify_private.h - the notifier's backend interface (redis's ae.c picking
 * ae_epoll.c): each channel type is one struct of function pointers in its
 * own file. notify.c owns the queue, the threads, retries, rate limits and
 * the keys every channel has (type, name, url, ca_file,
 * insecure_skip_verify, max_per_minute); a backend parses its own keys and
 * makes one try per send call. */
#ifndef AD_NOTIFY_PRIVATE_H
#define AD_NOTIFY_PRIVATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "autodeploy/notify.h"
#include "core/http.h"

/* One message as the backends see it; borrowed for the call. */
typedef struct {
  uint64_t id;           /* per notifier, from 1 */
  int64_t time_ms;       /* when it was handed to the notifier (Unix ms) */
  const char *title;     /* UTF-8, one line */
  const char *text;      /* UTF-8 markdown */
  const char *dedup_key; /* "" when none */
} ad__notice_t;

typedef struct {
  const char *type;       /* the config's "type" */
  const char *schemes;    /* URL schemes accepted, e.g. "http,https" */
  int default_per_minute; /* max_per_minute when not configured (0: none) */
  /* Parse the backend's own keys from `obj` (the common keys are already
   * taken out; anything left that it does not know is an error) for a
   * channel posting to `url`. NULL + *err naming the key; notify.c
   * prefixes the channel. */
  void *(*create)(json_t *obj, const char *url, ad_error_t *err);
  /* One try, bounded by o->timeout_ms. 0 when delivered; else <0 + *err
   * (no secrets in it), *retry = 1 when another try may succeed. Called
   * from the channel's thread and from ad_notify_send_now: state is
   * read-only after create. */
  int (*send)(void *state, const ad__notice_t *m, const ad__http_opts_t *o,
              int *retry, ad_error_t *err);
  void (*destroy)(void *state);
} ad__notify_backend_t;

extern const ad__notify_backend_t ad__notify_dingtalk;
extern const ad__notify_backend_t ad__notify_smtp;
extern const ad__notify_backend_t ad__notify_webhook;

/* Helpers the backends share (notify.c). */

/* Take `key` out of `obj`: absent -> *out = NULL, *n = 0; else it must be an
 * array of non-empty strings, copied into a NULL-terminated *out (free with
 * ad__notify_strv_free). 0 or AD_ECONFIG naming the key. */
int ad__notify_take_strv(json_t *obj, const char *key, char ***out, size_t *n,
                         ad_error_t *err);
void ad__notify_strv_free(char **v);

/* The key tables (NULL-terminated, static), for the configuration reference
 * (engine/config_keys.c). */
const ad__config_key_t *ad__notify_keys(void);
const ad__config_key_t *ad__notify_channel_keys(void);
const ad__config_key_t *ad__notify_dingtalk_keys(void);
const ad__config_key_t *ad__notify_smtp_keys(void);

#endif
