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
#include "core/encoding.h"
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
    K("password", AD_CT_STR, password, ""),
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

/* A bare address: local@domain, nothing that could break a header or an
 * SMTP command. */
static int plain_address(const char *a)
{
  const char *at = strchr(a, '@');
  if (!at || at == a || !at[1] || strchr(at + 1, '@'))
    return 0;
  for (; *a; a++)
    if ((unsigned char)*a <= ' ' || strchr("<>(),;:\"[]\\", *a))
      return 0;
  return 1;
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
  if (!rc && (!s->from || !plain_address(s->from)))
    rc = ad__err(err, AD_ECONFIG, "config", "from: %s", s->from ?
                 "must be a bare address like ops@example.com" : "is required");
  if (!rc && !s->nto)
    rc = ad__err(err, AD_ECONFIG, "config", "to: at least one address is required");
  for (size_t i = 0; !rc && i < s->nto; i++)
    if (!plain_address(s->to[i]))
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

typedef struct {
  char *p;
  size_t len, cap, off; /* off: how much curl has read */
  int oom;
} buf_t;

static void put(buf_t *b, const char *s, size_t n)
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

static void puts_(buf_t *b, const char *s) { put(b, s, strlen(s)); }

/* Subject: plain when short printable ASCII, else RFC 2047 encoded words of
 * whole UTF-8 characters, at most 39 bytes each, so no line passes 76
 * characters; control characters become spaces. */
static void put_subject(buf_t *b, const char *title)
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
  puts_(b, "Subject: ");
  if (plain)
    puts_(b, t);
  for (size_t i = 0; !plain && i < n;) {
    size_t j = i + 39 < n ? i + 39 : n;
    while (j < n && j > i && ((unsigned char)t[j] & 0xC0) == 0x80)
      j--; /* do not split a character */
    char *e = ad__b64_encode(t + i, j - i);
    if (!e) {
      b->oom = 1;
      break;
    }
    puts_(b, i ? "\r\n =?UTF-8?B?" : "=?UTF-8?B?");
    puts_(b, e);
    puts_(b, "?=");
    free(e);
    i = j;
  }
  puts_(b, "\r\n");
  free(t);
}

static int build(const smtp_t *s, const ad__notice_t *m, buf_t *b)
{
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char line[256];
  time_t t = (time_t)(m->time_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm); /* English names by hand: no locale dependence */
  snprintf(line, sizeof line, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
           days[tm.tm_wday], tm.tm_mday, mons[tm.tm_mon], tm.tm_year + 1900,
           tm.tm_hour, tm.tm_min, tm.tm_sec);
  puts_(b, line);
  puts_(b, "From: ");
  puts_(b, s->from);
  puts_(b, "\r\nTo: ");
  for (size_t i = 0; i < s->nto; i++) {
    puts_(b, i ? ",\r\n " : "");
    puts_(b, s->to[i]);
  }
  puts_(b, "\r\n");
  put_subject(b, m->title);
  snprintf(line, sizeof line, "Message-ID: <%lld.%llu.%s.autodeploy@%.160s>\r\n",
           (long long)m->time_ms, (unsigned long long)m->id, s->id_tag, s->domain);
  puts_(b, line);
  puts_(b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
           "Content-Transfer-Encoding: base64\r\n");
  if (*m->dedup_key) { /* printable ASCII only: it is a header */
    puts_(b, "X-Autodeploy-Dedup-Key: ");
    for (const char *k = m->dedup_key; *k && k - m->dedup_key < 200; k++)
      if (*k > ' ' && *k < 0x7f)
        put(b, k, 1);
    puts_(b, "\r\n");
  }
  puts_(b, "\r\n");
  char *body = ad__b64_encode(m->text, strlen(m->text));
  if (!body)
    return -1;
  for (size_t i = 0, n = strlen(body); i < n; i += 76) {
    put(b, body + i, n - i < 76 ? n - i : 76);
    puts_(b, "\r\n");
  }
  free(body);
  return b->oom ? -1 : 0;
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *user)
{
  buf_t *b = user;
  size_t n = size * nmemb;
  if (n > b->len - b->off)
    n = b->len - b->off;
  memcpy(dst, b->p + b->off, n);
  b->off += n;
  return n;
}

static int smtp_send(void *state, const ad__notice_t *m, const ad__http_opts_t *o,
                     int *retry, ad_error_t *err)
{
  const smtp_t *s = state;
  buf_t b = {0};
  struct curl_slist *rcpt = NULL, *t;
  char from[320], errbuf[CURL_ERROR_SIZE], addr[320];
  int rc = 0;
  *retry = 0;
  CURL *h = curl_easy_init();
  if (!h || build(s, m, &b)) {
    rc = ad__err(err, AD_ENOMEM, "smtp", "no memory for the mail");
    goto done;
  }
  for (size_t i = 0; i < s->nto; i++) {
    snprintf(addr, sizeof addr, "<%s>", s->to[i]);
    if (!(t = curl_slist_append(rcpt, addr))) {
      rc = ad__err(err, AD_ENOMEM, "smtp", "no memory for the recipients");
      goto done;
    }
    rcpt = t;
  }
  snprintf(from, sizeof from, "<%s>", s->from);
  ad__http_setup(h, o, errbuf);
  curl_easy_setopt(h, CURLOPT_URL, s->url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  if (s->starttls)
    curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL); /* STARTTLS or fail */
  if (s->username) {
    curl_easy_setopt(h, CURLOPT_USERNAME, s->username);
    curl_easy_setopt(h, CURLOPT_PASSWORD, s->password);
  }
  if (s->auth) {
    char opt[64];
    snprintf(opt, sizeof opt, "AUTH=%s", s->auth);
    curl_easy_setopt(h, CURLOPT_LOGIN_OPTIONS, opt);
  }
  curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
  curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(h, CURLOPT_READDATA, &b);
  curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
  CURLcode cc = curl_easy_perform(h);
  if (cc != CURLE_OK) {
    long reply = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply);
    rc = ad__http_fail(cc, errbuf, "SMTP", retry, err);
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
  free(b.p);
  return rc;
}

const ad__notify_backend_t ad__notify_smtp = {
    "smtp", "smtp,smtps", 0, smtp_create, smtp_send, smtp_destroy};
