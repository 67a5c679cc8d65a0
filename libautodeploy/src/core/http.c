/* http.c - see http.h. One easy handle per call: notifications are rare,
 * and a fresh handle shares no state between threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error_private.h"
#include "core/http.h"
#include "core/redact.h"

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
  const atomic_int *cancel = user;
  return cancel && atomic_load(cancel) ? 1 : 0; /* non-zero aborts */
}

void ad__http_setup(CURL *h, const ad__http_opts_t *o, char *errbuf)
{
  errbuf[0] = '\0';
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  /* Threads: no SIGALRM for DNS timeouts (libcurl's advice for MT use). */
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   o->connect_timeout_ms > 0 ? o->connect_timeout_ms : o->timeout_ms);
  if (o->ca_file)
    curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
  if (o->insecure) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (o->cancel) {
    /* Called about once a second even when nothing moves, so a cancelled
     * transfer stops within a second. */
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)o->cancel);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  }
}

int ad__http_status_retryable(long status)
{
  return status == 408 || status == 425 || status == 429 || status >= 500;
}

int ad__http_fail(CURLcode rc, const char *errbuf, const char *what,
                  int *retry, ad_error_t *err)
{
  const char *text = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc);
  int code = AD_EIO;
  *retry = 0;
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    code = AD_ETIMEOUT;
    *retry = 1;
    break;
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    code = AD_ECONNECT;
    *retry = 1;
    break;
  case CURLE_ABORTED_BY_CALLBACK:
    code = AD_ESTOPPED;
    text = "cancelled (the caller is stopping)";
    break;
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    *retry = 1; /* the connection broke: worth another try */
    break;
  default:
    /* Bad URL, certificate not trusted, login denied, no STARTTLS...:
     * the same try would fail the same way. */
    break;
  }
  return ad__err(err, code, "http", "%s: %s (curl error %d)", what, text, (int)rc);
}

typedef struct {
  ad__http_resp_t *r;
  size_t cap;
  size_t max;
} sink_t;

static size_t on_body(char *p, size_t size, size_t nmemb, void *user)
{
  sink_t *s = user;
  size_t n = size * nmemb, keep = n;
  if (s->r->body_len + keep > s->max) {
    keep = s->max - s->r->body_len; /* read on, keep the head */
    s->r->truncated = 1;
  }
  if (keep) {
    if (s->r->body_len + keep + 1 > s->cap) {
      size_t cap = s->cap ? s->cap : 1024;
      while (cap < s->r->body_len + keep + 1)
        cap *= 2;
      char *b = realloc(s->r->body, cap);
      if (!b)
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
      s->r->body = b;
      s->cap = cap;
    }
    memcpy(s->r->body + s->r->body_len, p, keep);
    s->r->body_len += keep;
    s->r->body[s->r->body_len] = '\0';
  }
  return n;
}

int ad__http_post_json(const char *url, const char *const *headers,
                       const char *body, const ad__http_opts_t *o,
                       const char *what, ad__http_resp_t *resp, int *retry,
                       ad_error_t *err)
{
  return ad__http_request("POST", url, headers, body, o, what, resp, retry, err);
}

int ad__http_request(const char *method, const char *url, const char *const *headers,
                     const char *body, const ad__http_opts_t *o, const char *what,
                     ad__http_resp_t *resp, int *retry, ad_error_t *err)
{
  memset(resp, 0, sizeof(*resp));
  *retry = 0;
  CURL *h = curl_easy_init();
  if (!h)
    return ad__err(err, AD_ENOMEM, "http", "%s: curl_easy_init failed", what);
  char errbuf[CURL_ERROR_SIZE];
  struct curl_slist *hl = NULL, *t;
  int have_ct = 0, rc = 0;
  for (size_t i = 0; headers && headers[i]; i++) {
    if (!strncasecmp(headers[i], "Content-Type:", 13))
      have_ct = 1;
    if (!(t = curl_slist_append(hl, headers[i])))
      goto nomem;
    hl = t;
  }
  if (!have_ct && body) {
    if (!(t = curl_slist_append(hl, "Content-Type: application/json; charset=utf-8")))
      goto nomem;
    hl = t;
  }
  /* No "Expect: 100-continue" round trip for small bodies. */
  if (!(t = curl_slist_append(hl, "Expect:")))
    goto nomem;
  hl = t;

  sink_t sink = {resp, 0, o->max_body ? o->max_body : AD__HTTP_MAX_BODY};
  ad__http_setup(h, o, errbuf);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
  }
  if (strcmp(method, body ? "POST" : "GET"))
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "autodeploy/" AD_VERSION_STRING);
  CURLcode cc = curl_easy_perform(h);
  if (cc != CURLE_OK) {
    rc = ad__http_fail(cc, errbuf, what, retry, err);
    ad__http_resp_free(resp);
  } else {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    /* a server may quote what it was sent (a gateway echoing the
     * Authorization header, an error page with the request line): the
     * answer is quoted in errors and stored, so it loses our secrets here */
    if (resp->body && ad__redact(resp->body))
      resp->body_len = strlen(resp->body);
  }
  curl_slist_free_all(hl);
  curl_easy_cleanup(h);
  return rc;
nomem:
  curl_slist_free_all(hl);
  curl_easy_cleanup(h);
  return ad__err(err, AD_ENOMEM, "http", "%s: no memory for headers", what);
}

void ad__http_resp_free(ad__http_resp_t *r)
{
  free(r->body);
  r->body = NULL;
  r->body_len = 0;
}
