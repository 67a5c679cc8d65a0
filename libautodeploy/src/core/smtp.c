/* smtp.c - see smtp.h. Taken out of notify_smtp.c so the partner mail
 * (purchase/partner_mail.c) sends through the same code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/encoding.h"
#include "core/error_private.h"
#include "core/smtp.h"

void ad__smtp_put(ad__smtp_buf_t *b, const char *s, size_t n)
{
  if (b->oom || !n)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void ad__smtp_puts(ad__smtp_buf_t *b, const char *s) { ad__smtp_put(b, s, strlen(s)); }

void ad__smtp_put_date(ad__smtp_buf_t *b, int64_t ms)
{
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char line[80];
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm); /* English names by hand: no locale dependence */
  snprintf(line, sizeof line, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
           days[tm.tm_wday], tm.tm_mday, mons[tm.tm_mon], tm.tm_year + 1900,
           tm.tm_hour, tm.tm_min, tm.tm_sec);
  ad__smtp_puts(b, line);
}

/* Encoded words of at most 39 bytes each, so no line passes 76 characters. */
void ad__smtp_put_subject(ad__smtp_buf_t *b, const char *title)
{
  size_t n = strlen(title);
  char *t = malloc(n + 1);
  int plain = n <= 60;
  if (!t) {
    b->oom = 1;
    return;
  }
  for (size_t i = 0; i <= n; i++) {
    unsigned char c = (unsigned char)title[i];
    t[i] = i < n && c < ' ' ? ' ' : (char)c;
    plain = plain && (i == n || (c >= ' ' && c < 0x7f));
  }
  ad__smtp_puts(b, "Subject: ");
  if (plain)
    ad__smtp_puts(b, t);
  for (size_t i = 0; !plain && i < n;) {
    size_t j = i + 39 < n ? i + 39 : n;
    while (j < n && j > i && ((unsigned char)t[j] & 0xC0) == 0x80)
      j--; /* do not split a character */
    char *e = ad__b64_encode(t + i, j - i);
    if (!e) {
      b->oom = 1;
      break;
    }
    ad__smtp_puts(b, i ? "\r\n =?UTF-8?B?" : "=?UTF-8?B?");
    ad__smtp_puts(b, e);
    ad__smtp_puts(b, "?=");
    free(e);
    i = j;
  }
  ad__smtp_puts(b, "\r\n");
  free(t);
}

void ad__smtp_put_b64(ad__smtp_buf_t *b, const char *s, size_t n)
{
  char *e = ad__b64_encode(s, n);
  if (!e) {
    b->oom = 1;
    return;
  }
  for (size_t i = 0, l = strlen(e); i < l; i += 76) {
    ad__smtp_put(b, e + i, l - i < 76 ? l - i : 76);
    ad__smtp_puts(b, "\r\n");
  }
  free(e);
}

int ad__smtp_plain_address(const char *a)
{
  const char *at = strchr(a, '@');
  if (!at || at == a || !at[1] || strchr(at + 1, '@'))
    return 0;
  for (; *a; a++)
    if ((unsigned char)*a <= ' ' || strchr("<>(),;:\"[]\\", *a))
      return 0;
  return 1;
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *user)
{
  ad__smtp_buf_t *b = user;
  size_t n = size * nmemb;
  if (n > b->len - b->off)
    n = b->len - b->off;
  memcpy(dst, b->p + b->off, n);
  b->off += n;
  return n;
}

int ad__smtp_send(const ad__smtp_conn_t *c, ad__smtp_buf_t *b, const ad__http_opts_t *o,
                  const char *what, int *retry, ad_error_t *err)
{
  struct curl_slist *rcpt = NULL, *t;
  char from[320], errbuf[CURL_ERROR_SIZE], addr[320];
  int rc = 0;
  *retry = 0;
  b->off = 0;
  CURL *h = curl_easy_init();
  if (!h || b->oom) {
    rc = ad__err(err, AD_ENOMEM, "smtp", "no memory for the mail");
    goto done;
  }
  for (size_t i = 0; i < c->nto; i++) {
    snprintf(addr, sizeof addr, "<%s>", c->to[i]);
    if (!(t = curl_slist_append(rcpt, addr))) {
      rc = ad__err(err, AD_ENOMEM, "smtp", "no memory for the recipients");
      goto done;
    }
    rcpt = t;
  }
  snprintf(from, sizeof from, "<%s>", c->from);
  ad__http_setup(h, o, errbuf);
  curl_easy_setopt(h, CURLOPT_URL, c->url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  if (c->starttls)
    curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL); /* STARTTLS or fail */
  if (c->username) {
    curl_easy_setopt(h, CURLOPT_USERNAME, c->username);
    curl_easy_setopt(h, CURLOPT_PASSWORD, c->password);
  }
  if (c->auth) {
    char opt[64];
    snprintf(opt, sizeof opt, "AUTH=%s", c->auth);
    curl_easy_setopt(h, CURLOPT_LOGIN_OPTIONS, opt);
  }
  curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
  curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(h, CURLOPT_READDATA, b);
  curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
  CURLcode cc = curl_easy_perform(h);
  if (cc != CURLE_OK) {
    long reply = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply);
    rc = ad__http_fail(cc, errbuf, what, retry, err);
    size_t ml = err ? strlen(err->message) : 0;
    if (err && reply)
      snprintf(err->message + ml, sizeof(err->message) - ml, ", last reply %ld", reply);
    if (reply >= 400 && reply <= 499) /* transient (RFC 5321 4.2.1) */
      *retry = 1;
    else if (reply >= 500 && reply <= 599)
      *retry = 0;
  }
done:
  curl_slist_free_all(rcpt);
  curl_easy_cleanup(h);
  return rc;
}
