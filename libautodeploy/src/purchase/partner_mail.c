/*
 * partner_mail.c - the email to the paying partner (partner_mail.h): one
 * RFC 5322 message for the orders of a planning day, sent through
 * core/smtp.c (the notifier's smtp channel sends through the same code).
 *
 *   Date, From, To, Cc, Subject, Message-ID, X-Autodeploy-Orders,
 *   MIME-Version, Content-Type: multipart/alternative; boundary="=_ad_alt"
 *     text/plain; charset=UTF-8, base64: the order table in columns
 *     text/html; charset=UTF-8, base64:  the same table as <table>
 *
 * Message-ID is <order _id@domain> for one order, and for several
 * <orders-<16 hex of SHA-256 of the ids>@domain>: the same orders give the
 * same Message-ID, so a resend after a lost answer is the same message and
 * the partner's mail client shows it once. The boundary cannot occur in a
 * part: parts are base64, whose alphabet has no '_'.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/error_private.h"
#include "core/smtp.h"
#include "purchase/notices.h"
#include "purchase/partner_mail.h"

struct ad__partner_mail {
  char *url, *from, *username, *password, *auth, *ca_file, *subject_prefix, *domain;
  int starttls, timeout_s, insecure;
  char **to, **cc, **rcpt; /* rcpt: to + cc, for RCPT TO */
  size_t nto, ncc;
};

#define K(name, type, field, lo, hi, def) \
  {name, type, offsetof(ad__partner_mail_t, field), lo, hi, def, NULL}
static const ad__config_key_t MAIL_KEYS[] = {
    K("url", AD_CT_STR, url, 0, 0, ""),
    K("from", AD_CT_STR, from, 0, 0, ""),
    K("username", AD_CT_STR, username, 0, 0, ""),
    K("password", AD_CT_SECRET, password, 0, 0, ""),
    K("auth", AD_CT_STR, auth, 0, 0, ""),
    K("starttls", AD_CT_BOOL, starttls, 0, 0, "true"),
    K("ca_file", AD_CT_STR, ca_file, 0, 0, ""),
    K("insecure_skip_verify", AD_CT_BOOL, insecure, 0, 0, "false"),
    K("timeout_s", AD_CT_INT, timeout_s, 1, 600, "30"),
    K("subject_prefix", AD_CT_STR, subject_prefix, 0, 0, "[autodeploy]"),
    K("message_id_domain", AD_CT_STR, domain, 0, 0, ""),
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#undef K

/* the table, for the configuration reference (engine/config_keys.c) */
const ad__config_key_t *ad__partner_mail_keys(void) { return MAIL_KEYS; }

#define PFX "purchase.partner_mail."

static void strv_free(char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}

void ad__partner_mail_destroy(ad__partner_mail_t **m_p)
{
  ad__partner_mail_t *m = m_p ? *m_p : NULL;
  if (!m)
    return;
  if (m->password)
    OPENSSL_cleanse(m->password, strlen(m->password));
  ad__config_free(MAIL_KEYS, m);
  strv_free(m->to);
  strv_free(m->cc);
  free(m->rcpt); /* borrowed strings */
  free(m);
  *m_p = NULL;
}

/* `key`: a list of bare addresses (a single string is a list of one). */
static int take_addrs(const json_t *v, const char *key, char ***out, size_t *n, ad_error_t *err)
{
  json_t *a = json_is_string(v) ? json_pack("[O]", v) : json_incref((json_t *)v);
  int rc = 0;
  if (a && !json_is_array(a))
    rc = ad__err(err, AD_ECONFIG, "config", PFX "%s: a list of addresses", key);
  *out = calloc(json_array_size(a) + 1, sizeof(char *));
  if (!rc && !*out)
    rc = ad__err(err, AD_ENOMEM, "config", "no memory");
  size_t i;
  json_t *e;
  json_array_foreach(a, i, e) {
    const char *s = json_string_value(e);
    if (rc)
      break;
    if (!s || !ad__smtp_plain_address(s))
      rc = ad__err(err, AD_ECONFIG, "config", PFX "%s[%zu]: \"%.60s\" is not a bare address",
                   key, i, s ? s : "(not a string)");
    else if (!((*out)[(*n)++] = strdup(s)))
      rc = ad__err(err, AD_ENOMEM, "config", "no memory");
  }
  json_decref(a);
  return rc;
}

ad__partner_mail_t *ad__partner_mail_new(const json_t *conf, ad_error_t *err)
{
  ad__partner_mail_t *m = calloc(1, sizeof *m);
  json_t *rest = json_is_object(conf) ? json_copy((json_t *)conf) : json_object();
  int rc = 0;
  if (!m || !rest) {
    rc = ad__err(err, AD_ENOMEM, "config", "no memory");
    goto fail;
  }
  if (conf && !json_is_object(conf))
    rc = ad__err(err, AD_ECONFIG, "config", "purchase.partner_mail: must be an object");
  if (!rc)
    rc = take_addrs(json_object_get(rest, "to"), "to", &m->to, &m->nto, err);
  if (!rc)
    rc = take_addrs(json_object_get(rest, "cc"), "cc", &m->cc, &m->ncc, err);
  json_object_del(rest, "to");
  json_object_del(rest, "cc");
  if (!rc && ad__config_load(MAIL_KEYS, m, rest, err)) {
    char msg[sizeof err->message];
    snprintf(msg, sizeof msg, "%s", err ? err->message : "");
    rc = ad__err(err, AD_ECONFIG, "config", "purchase.partner_mail%s%s",
                 strcspn(msg, " ") < strcspn(msg, ":") ? ": " : ".", msg);
  }
  if (!rc && (!m->url || (strncmp(m->url, "smtp://", 7) && strncmp(m->url, "smtps://", 8))))
    rc = ad__err(err, AD_ECONFIG, "config", PFX "url: %s",
                 m->url ? "must be smtp://host:port or smtps://host:port" : "is required");
  if (!rc && (!m->from || !ad__smtp_plain_address(m->from)))
    rc = ad__err(err, AD_ECONFIG, "config", PFX "from: %s",
                 m->from ? "must be a bare address like ops@example.com" : "is required");
  if (!rc && !m->nto)
    rc = ad__err(err, AD_ECONFIG, "config", PFX "to: at least one address is required");
  if (!rc && !!m->username != !!m->password)
    rc = ad__err(err, AD_ECONFIG, "config", PFX "%s: needed with %s",
                 m->username ? "password" : "username", m->username ? "username" : "password");
  for (const char *p = m->domain; !rc && p && *p; p++)
    if (*p <= ' ' || *p >= 0x7f || strchr("<>@()[]\\\",;:", *p))
      rc = ad__err(err, AD_ECONFIG, "config", PFX "message_id_domain: not a domain name");
  if (!rc && !(m->rcpt = calloc(m->nto + m->ncc + 1, sizeof(char *))))
    rc = ad__err(err, AD_ENOMEM, "config", "no memory");
  if (rc)
    goto fail;
  memcpy(m->rcpt, m->to, m->nto * sizeof(char *));
  memcpy(m->rcpt + m->nto, m->cc, m->ncc * sizeof(char *));
  json_decref(rest);
  return m;
fail:
  json_decref(rest);
  ad__partner_mail_destroy(&m);
  return NULL;
}

/* ---- the message ----------------------------------------------------------------- */

typedef struct {
  const char *id, *profile, *flavour, *cloud;
  char count[24];
  char *reason;
} row_t;

static const char *jstr(const json_t *o, const char *k, const char *def)
{
  const char *s = json_string_value(json_object_get(o, k));
  return s && *s ? s : def;
}

static void html_escaped(ad__smtp_buf_t *b, const char *s)
{
  for (; *s; s++) {
    switch (*s) {
    case '<': ad__smtp_puts(b, "&lt;"); break;
    case '>': ad__smtp_puts(b, "&gt;"); break;
    case '&': ad__smtp_puts(b, "&amp;"); break;
    case '"': ad__smtp_puts(b, "&quot;"); break;
    default: ad__smtp_put(b, s, 1);
    }
  }
}

static const char *const COLS[] = {"order id", "profile", "flavour", "count", "cloud order id",
                                   "reason"};

static const char *cell(const row_t *r, int c)
{
  const char *v[] = {r->id, r->profile, r->flavour, r->count, r->cloud, r->reason};
  return v[c];
}

static void text_part(ad__smtp_buf_t *b, const row_t *rows, size_t n, long long hosts)
{
  char line[256];
  size_t w[6];
  snprintf(line, sizeof line, "Hello,\n\nplease pay for the hosts below (%lld in all). They are "
           "ordered and unpaid; each order id is also the order's client token at the "
           "cloud.\n\n", hosts);
  ad__smtp_puts(b, line);
  for (int c = 0; c < 6; c++) {
    w[c] = strlen(COLS[c]);
    for (size_t i = 0; i < n; i++)
      if (strlen(cell(&rows[i], c)) > w[c])
        w[c] = strlen(cell(&rows[i], c));
  }
  for (size_t i = 0; i <= n; i++) {
    for (int c = 0; c < 6; c++) {
      const char *v = i ? cell(&rows[i - 1], c) : COLS[c];
      ad__smtp_puts(b, v);
      for (size_t k = strlen(v); c < 5 && k < w[c] + 2; k++)
        ad__smtp_put(b, " ", 1);
    }
    ad__smtp_puts(b, "\n");
  }
  ad__smtp_puts(b, "\nSent by autodeploy. Reply to this address with questions; the order ids "
                   "above identify the orders.\n");
}

static void html_part(ad__smtp_buf_t *b, const row_t *rows, size_t n, long long hosts)
{
  char line[200];
  ad__smtp_puts(b, "<!DOCTYPE html><html><body>\n<p>Hello,</p>\n");
  snprintf(line, sizeof line, "<p>please pay for the hosts below (%lld in all). They are ordered "
           "and unpaid; each order id is also the order's client token at the cloud.</p>\n",
           hosts);
  ad__smtp_puts(b, line);
  ad__smtp_puts(b, "<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\n<tr>");
  for (int c = 0; c < 6; c++) {
    ad__smtp_puts(b, "<th>");
    ad__smtp_puts(b, COLS[c]);
    ad__smtp_puts(b, "</th>");
  }
  ad__smtp_puts(b, "</tr>\n");
  for (size_t i = 0; i < n; i++) {
    ad__smtp_puts(b, "<tr>");
    for (int c = 0; c < 6; c++) {
      ad__smtp_puts(b, c == 3 ? "<td align=\"right\">" : "<td>");
      html_escaped(b, cell(&rows[i], c));
      ad__smtp_puts(b, "</td>");
    }
    ad__smtp_puts(b, "</tr>\n");
  }
  ad__smtp_puts(b, "</table>\n<p>Sent by autodeploy.</p>\n</body></html>\n");
}

/* <...@domain> for the orders: see the top of the file. */
static void put_message_id(ad__smtp_buf_t *b, const ad__partner_mail_t *m, const row_t *rows,
                           size_t n)
{
  const char *domain = m->domain ? m->domain : strchr(m->from, '@') + 1;
  char line[400];
  if (n == 1) {
    snprintf(line, sizeof line, "Message-ID: <%.200s@%.160s>\r\n", rows[0].id, domain);
  } else {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL)) {
      b->oom = 1;
      EVP_MD_CTX_free(c);
      return;
    }
    for (size_t i = 0; i < n; i++)
      EVP_DigestUpdate(c, rows[i].id, strlen(rows[i].id) + 1); /* with the NUL: a separator */
    EVP_DigestFinal_ex(c, md, &ml);
    EVP_MD_CTX_free(c);
    int k = snprintf(line, sizeof line, "Message-ID: <orders-");
    for (int i = 0; i < 8; i++)
      k += snprintf(line + k, sizeof line - (size_t)k, "%02x", md[i]);
    snprintf(line + k, sizeof line - (size_t)k, "@%.160s>\r\n", domain);
  }
  ad__smtp_puts(b, line);
}

/* An order id goes into headers and the Message-ID: printable ASCII, no
 * '<', '>', '@' or space. */
static int header_safe(const char *s)
{
  for (; *s; s++)
    if (*s <= ' ' || *s >= 0x7f || strchr("<>@\"\\,;", *s))
      return 0;
  return 1;
}

static int build(const ad__partner_mail_t *m, const json_t *orders, ad__smtp_buf_t *b,
                 ad_error_t *err)
{
  size_t n = json_array_size(orders);
  if (!json_is_array(orders) || !n)
    return ad__err(err, AD_EINVAL, "purchase", "partner mail: no orders to send");
  row_t *rows = calloc(n, sizeof *rows);
  long long hosts = 0;
  int rc = rows ? 0 : ad__err(err, AD_ENOMEM, "purchase", "no memory for the mail");
  for (size_t i = 0; !rc && i < n; i++) {
    const json_t *o = json_array_get(orders, i);
    rows[i].id = jstr(o, "_id", "");
    rows[i].profile = jstr(o, "profile", "");
    rows[i].flavour = jstr(o, "flavour", "");
    rows[i].cloud = jstr(o, "cloud_order_id", "-");
    long long c = json_integer_value(json_object_get(o, "count"));
    snprintf(rows[i].count, sizeof rows[i].count, "%lld", c);
    hosts += c;
    if (!*rows[i].id || !header_safe(rows[i].id))
      rc = ad__err(err, AD_EINVAL, "purchase", "partner mail: orders[%zu]._id is %s", i,
                   *rows[i].id ? "not header-safe" : "missing");
    else if (!(rows[i].reason = ad__order_reason_text(o)))
      rc = ad__err(err, AD_ENOMEM, "purchase", "no memory for the mail");
  }
  if (!rc) {
    char line[300];
    ad__smtp_put_date(b, ad__now_ms());
    ad__smtp_puts(b, "From: ");
    ad__smtp_puts(b, m->from);
    for (int pass = 0; pass < 2; pass++) {
      char **v = pass ? m->cc : m->to;
      for (size_t i = 0; v && v[i]; i++) {
        ad__smtp_puts(b, i ? ",\r\n " : pass ? "\r\nCc: " : "\r\nTo: ");
        ad__smtp_puts(b, v[i]);
      }
    }
    ad__smtp_puts(b, "\r\n");
    if (n == 1)
      snprintf(line, sizeof line, "%s%sHost order %s: %s x %s (%s), please pay",
               m->subject_prefix ? m->subject_prefix : "", m->subject_prefix ? " " : "",
               rows[0].id, rows[0].count, rows[0].flavour, rows[0].profile);
    else
      snprintf(line, sizeof line, "%s%sHost orders: %lld hosts in %zu orders, please pay",
               m->subject_prefix ? m->subject_prefix : "", m->subject_prefix ? " " : "", hosts,
               n);
    ad__smtp_put_subject(b, line);
    put_message_id(b, m, rows, n);
    ad__smtp_puts(b, "X-Autodeploy-Orders: ");
    for (size_t i = 0; i < n; i++) {
      ad__smtp_puts(b, i ? ",\r\n " : "");
      ad__smtp_puts(b, rows[i].id);
    }
    ad__smtp_puts(b, "\r\nMIME-Version: 1.0\r\n"
                     "Content-Type: multipart/alternative; boundary=\"=_ad_alt\"\r\n\r\n"
                     "--=_ad_alt\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\n");
    ad__smtp_buf_t part = {0};
    text_part(&part, rows, n, hosts);
    ad__smtp_put_b64(b, part.p ? part.p : "", part.len);
    free(part.p);
    ad__smtp_puts(b, "--=_ad_alt\r\nContent-Type: text/html; charset=UTF-8\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\n");
    part = (ad__smtp_buf_t){0};
    html_part(&part, rows, n, hosts);
    ad__smtp_put_b64(b, part.p ? part.p : "", part.len);
    if (part.oom)
      b->oom = 1;
    free(part.p);
    ad__smtp_puts(b, "--=_ad_alt--\r\n");
    if (b->oom)
      rc = ad__err(err, AD_ENOMEM, "purchase", "no memory for the mail");
  }
  for (size_t i = 0; rows && i < n; i++)
    free(rows[i].reason);
  free(rows);
  return rc;
}

char *ad__partner_mail_render(ad__partner_mail_t *m, const json_t *orders, ad_error_t *err)
{
  ad__smtp_buf_t b = {0};
  if (build(m, orders, &b, err)) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

int ad__partner_mail_send(ad__partner_mail_t *m, const json_t *orders, ad_error_t *err)
{
  ad__smtp_buf_t b = {0};
  int retry = 0, rc = build(m, orders, &b, err);
  if (!rc) {
    ad__http_opts_t o = {.timeout_ms = (long)m->timeout_s * 1000, .ca_file = m->ca_file,
                         .insecure = m->insecure};
    ad__smtp_conn_t c = {m->url, m->starttls, m->username, m->password, m->auth,
                         m->from, m->rcpt, m->nto + m->ncc};
    rc = ad__smtp_send(&c, &b, &o, "partner mail", &retry, err);
    if (rc && retry && err)
      err->code = AD_EAGAIN;
    if (rc && retry)
      rc = AD_EAGAIN;
  }
  free(b.p);
  return rc;
}
