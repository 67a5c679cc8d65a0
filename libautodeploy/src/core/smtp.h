/* smtp.h - what every mail the library sends shares (the notifier's smtp
 * channel, the partner mail of the purchase loop): a growing message
 * buffer, the RFC 5322 header pieces that are easy to get wrong (Date in
 * English whatever the locale, a Subject in RFC 2047 encoded words), a
 * bare-address check, and one libcurl SMTP transfer (STARTTLS or smtps://,
 * AUTH, MAIL FROM, RCPT TO, DATA). */
#ifndef AD_CORE_SMTP_H
#define AD_CORE_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "autodeploy/common.h"
#include "core/http.h"

/* A message being written; `oom` once an append failed (then p is stale). */
typedef struct {
  char *p;
  size_t len, cap, off; /* off: how much curl has read */
  int oom;
} ad__smtp_buf_t;

void ad__smtp_put(ad__smtp_buf_t *b, const char *s, size_t n);
void ad__smtp_puts(ad__smtp_buf_t *b, const char *s);
/* "Date: Fri, 04 Dec 2026 20:50:16 +0000\r\n" for Unix ms `ms` (UTC). */
void ad__smtp_put_date(ad__smtp_buf_t *b, int64_t ms);
/* "Subject: ...\r\n": plain when short printable ASCII, else RFC 2047
 * encoded words of whole UTF-8 characters; control characters become
 * spaces. */
void ad__smtp_put_subject(ad__smtp_buf_t *b, const char *title);
/* Base64 of `n` bytes in lines of 76 characters, each ending in CRLF. */
void ad__smtp_put_b64(ad__smtp_buf_t *b, const char *s, size_t n);

/* local@domain with nothing that could break a header or an SMTP command. */
int ad__smtp_plain_address(const char *a);

/* Where and how to send. Strings borrowed. */
typedef struct {
  const char *url;      /* smtp://host:port or smtps://host:port */
  int starttls;         /* smtp://: require STARTTLS (CURLUSESSL_ALL) */
  const char *username; /* NULL: no AUTH */
  const char *password;
  const char *auth;     /* a SASL mechanism, or NULL for curl's pick */
  const char *from;     /* bare address (MAIL FROM) */
  char *const *to;      /* bare addresses (RCPT TO) */
  size_t nto;
} ad__smtp_conn_t;

/* One transfer of the finished message `b` (from its start). 0, or <0 +
 * *err naming `what` and the last SMTP reply; *retry = 1 for a broken
 * connection, a timeout or a 4xx reply (RFC 5321 4.2.1), 0 for a 5xx. */
int ad__smtp_send(const ad__smtp_conn_t *c, ad__smtp_buf_t *b, const ad__http_opts_t *o,
                  const char *what, int *retry, ad_error_t *err);

#endif
