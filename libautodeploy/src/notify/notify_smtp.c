/*
 * notify_smtp.c - mail through libcurl's SMTP client: smtp:// with STARTTLS
 * (required when "starttls" is true, the default) or smtps:// (TLS from the
 * first byte), AUTH with username/password (the mechanism is curl's pick
 * unless "auth" names one), MAIL FROM / RCPT TO, and an RFC 5322 message:
 *
 *   Date, From, To, Subject (RFC 2047 "=?UTF-8?B?...?=" unless plain ASCII),
 *   Message-ID (the same for every try of one message), MIME-Version,
 *   text/plain; charset=UTF-8 in base64 (any UTF-8 text, no line limits),
 *   X-Autodeploy-Dedup-Key when the message has one.
 *
 * A 4xx reply from the server is worth retrying, a 5xx one is not.
 */
#include <ctype.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/smtp.h"
#include "core/error_private.h"
#include "notify/notify_private.h"

typedef struct {
  char *url, *username, *password, *from, *auth;
  int starttls;
  char **to;
  size_t nto;
  char id_tag[17]; /* random per channel: Message-IDs unique across hosts */
  const char *domain; /* the From address's domain, in Message-IDs */
} smtp_t;

#define K(name, type, field, def) {name, type, offsetof(smtp_t, field), 0, 0, def, NULL}
static const ad__config_key_t SMTP_KEYS[] = {
    K("starttls", AD_CT_BOOL, starttls, "true"),
    K("username", AD_CT_STR, username, ""),
    K("password", AD_CT_SECRET, password, ""),
    K("from", AD_CT_STR, from, ""),
    K("auth", AD_CT_STR, auth, ""),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__notify_smtp_keys(void) { return SMTP_KEYS; }

static void smtp_destroy(void *state)
{
  smtp_t *s = state;
  if (!s)
    return;
  if (s->password)
    memset(s->password, 0, strlen(s->password));
  ad__config_free(SMTP_KEYS, s);
  ad__notify_strv_free(s->to);
  free(s->url);
  free(s);
}

static void *smtp_create(json_t *obj, const char *url, ad_error_t *err)
{
  smtp_t *s = calloc(1, sizeof(*s));
  unsigned char rnd[8];
  if (!s) {
    ad__err(err, AD_ENOMEM, "config", "no memory");
    return NULL;
  }
  int rc = ad__notify_take_strv(obj, "to", &s->to, &s->nto, err);
  if (!rc)
    rc = ad__config_load(SMTP_KEYS, s, obj, err);
  if (!rc && (!s->from || !ad__smtp_plain_address(s->from)))
    rc = ad__err(err, AD_ECONFIG, "config", "from: %s", s->from ?
                 "must be a bare address like ops@example.com" : "is required");
  if (!rc && !s->nto)
    rc = ad__err(err, AD_ECONFIG, "config", "to: at least one address is required");
  for (size_t i = 0; !rc && i < s->nto; i++)
    if (!ad__smtp_plain_address(s->to[i]))
      rc = ad__err(err, AD_ECONFIG, "config", "to[%zu]: \"%.60s\" is not a bare address",
                   i, s->to[i]);
  for (const char *p = s->auth; !rc && p && *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
      rc = ad__err(err, AD_ECONFIG, "config",
                   "auth: a SASL mechanism name like PLAIN or LOGIN");
  if (!rc && !!s->username != !!s->password)
    rc = ad__err(err, AD_ECONFIG, "config", "%s: needed with %s",
                 s->username ? "password" : "username", s->username ? "username" : "password");
  if (!rc && !(s->url = strdup(url)))
    rc = ad__err(err, AD_ENOMEM, "config", "no memory");
  if (!rc && RAND_bytes(rnd, sizeof rnd) != 1)
    rc = ad__err(err, AD_EIO, "smtp", "no random bytes for Message-IDs");
  if (rc) {
    smtp_destroy(s);
    return NULL;
  }
  for (size_t i = 0; i < sizeof rnd; i++)
    snprintf(s->id_tag + 2 * i, 3, "%02x", rnd[i]);
  s->domain = strchr(s->from, '@') + 1;
  return s;
}

/* ---- the message -------------------------------------------------------- */

static int build(const smtp_t *s, const ad__notice_t *m, ad__smtp_buf_t *b)
{
  char line[256];
  ad__smtp_put_date(b, m->time_ms);
  ad__smtp_puts(b, "From: ");
  ad__smtp_puts(b, s->from);
  ad__smtp_puts(b, "\r\nTo: ");
  for (size_t i = 0; i < s->nto; i++) {
    ad__smtp_puts(b, i ? ",\r\n " : "");
    ad__smtp_puts(b, s->to[i]);
  }
  ad__smtp_puts(b, "\r\n");
  ad__smtp_put_subject(b, m->title);
  snprintf(line, sizeof line, "Message-ID: <%lld.%llu.%s.autodeploy@%.160s>\r\n",
           (long long)m->time_ms, (unsigned long long)m->id, s->id_tag, s->domain);
  ad__smtp_puts(b, line);
  ad__smtp_puts(b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                   "Content-Transfer-Encoding: base64\r\n");
  if (*m->dedup_key) { /* printable ASCII only: it is a header */
    ad__smtp_puts(b, "X-Autodeploy-Dedup-Key: ");
    for (const char *k = m->dedup_key; *k && k - m->dedup_key < 200; k++)
      if (*k > ' ' && *k < 0x7f)
        ad__smtp_put(b, k, 1);
    ad__smtp_puts(b, "\r\n");
  }
  ad__smtp_puts(b, "\r\n");
  ad__smtp_put_b64(b, m->text, strlen(m->text));
  return b->oom ? -1 : 0;
}

static int smtp_send(void *state, const ad__notice_t *m, const ad__http_opts_t *o,
                     int *retry, ad_error_t *err)
{
  const smtp_t *s = state;
  ad__smtp_buf_t b = {0};
  *retry = 0;
  int rc = build(s, m, &b);
  if (rc)
    rc = ad__err(err, AD_ENOMEM, "smtp", "no memory for the mail");
  else
    rc = ad__smtp_send(&(ad__smtp_conn_t){s->url, s->starttls, s->username, s->password,
                                          s->auth, s->from, s->to, s->nto},
                       &b, o, "SMTP", retry, err);
  free(b.p);
  return rc;
}

const ad__notify_backend_t ad__notify_smtp = {
    "smtp", "smtp,smtps", 0, smtp_create, smtp_send, smtp_destroy};
