/* http.h - the library's libcurl wrapper: one easy handle per call, every
 * call bounded by a timeout and cancellable, curl's error text turned into
 * ad_error_t. Used by the notifiers (and later by other HTTP clients). */
#ifndef AD_HTTP_H
#define AD_HTTP_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "autodeploy/common.h"

/* What every transfer needs besides its URL. */
typedef struct {
  long timeout_ms;         /* whole transfer (CURLOPT_TIMEOUT_MS) */
  long connect_timeout_ms; /* connect + TLS handshake (CURLOPT_CONNECTTIMEOUT_MS) */
  const char *ca_file;     /* CURLOPT_CAINFO, or NULL for the system store */
  int insecure;            /* skip peer and host verification */
  const atomic_int *cancel; /* non-zero: abort the transfer (may be NULL) */
  size_t max_body;          /* bytes of the answer kept; 0: AD__HTTP_MAX_BODY */
} ad__http_opts_t;

typedef struct {
  long status;     /* HTTP status (or the last SMTP reply code) */
  char *body;      /* NUL-terminated, at most max_body bytes kept, secrets
                    * replaced (core/redact.h) */
  size_t body_len;
  int truncated;   /* the server sent more than max_body: body is its head */
} ad__http_resp_t;

/* Default cap on a kept answer: notifier answers are tiny. Metrics queries
 * raise it per call (ad__http_opts_t.max_body). */
#define AD__HTTP_MAX_BODY 65536

/* Apply timeouts, TLS trust, NOSIGNAL and the cancel hook to `h`, and point
 * CURLOPT_ERRORBUFFER at `errbuf` (CURL_ERROR_SIZE bytes). */
void ad__http_setup(CURL *h, const ad__http_opts_t *o, char *errbuf);

/* POST `body` (JSON) to `url` with extra "Name: value" `headers`
 * (NULL-terminated; may be NULL; a Content-Type there replaces the JSON
 * one, e.g. for a form-encoded body). 0 when the server answered (any status:
 * the caller judges it), with *resp filled (free with ad__http_resp_free);
 * else <0 + *err: AD_ETIMEOUT, AD_ECONNECT, AD_ESTOPPED (cancelled) or
 * AD_EIO, the message naming `what` and curl's error text. *retry is set
 * to 1 when another try may succeed. */
int ad__http_post_json(const char *url, const char *const *headers,
                       const char *body, const ad__http_opts_t *o,
                       const char *what, ad__http_resp_t *resp, int *retry,
                       ad_error_t *err);

/* The same for any method: `body` NULL sends none (a GET), else it is
 * sent as with POST under `method` ("PUT", "PATCH", ...). */
int ad__http_request(const char *method, const char *url, const char *const *headers,
                     const char *body, const ad__http_opts_t *o, const char *what,
                     ad__http_resp_t *resp, int *retry, ad_error_t *err);

void ad__http_resp_free(ad__http_resp_t *r);

/* Map a failed transfer to an AD_E* code and *retry, and fill *err with
 * "<what>: <curl text>" (errbuf when set, else curl_easy_strerror). */
int ad__http_fail(CURLcode rc, const char *errbuf, const char *what,
                  int *retry, ad_error_t *err);

/* True for HTTP statuses worth another try: 408, 425, 429, 5xx. */
int ad__http_status_retryable(long status);

#endif
