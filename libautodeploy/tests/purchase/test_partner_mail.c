/* test_partner_mail.c - the partner mail (partner_mail.c) delivered to an
 * SMTP server on loopback (a small one here: EHLO with AUTH PLAIN, MAIL,
 * RCPT, DATA, QUIT), which keeps the envelope and the message; the test
 * decodes the delivered message and checks its headers and both parts.
 * SMTP down: AD_EAGAIN. Bad configuration names the key. */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/encoding.h"
#include "harness.h"
#include "http_srv.h" /* srv_closed_port */
#include "purchase/partner_mail.h"

typedef struct {
  int fd, port;
  pthread_t thread;
  atomic_int stop;
  char envelope[8192]; /* MAIL/RCPT/AUTH lines */
  char auth[512];      /* the AUTH PLAIN answer */
  char data[1 << 16];  /* the message, dot-unstuffed */
  int mails;
} smtpd_t;

static int rline(int c, char *buf, size_t n)
{
  size_t k = 0;
  while (k < n - 1) {
    struct pollfd p = {c, POLLIN, 0};
    if (poll(&p, 1, 3000) <= 0 || read(c, buf + k, 1) != 1)
      return -1;
    if (buf[k++] == '\n')
      break;
  }
  buf[k] = 0;
  return (int)k;
}

static void say(int c, const char *s)
{
  if (write(c, s, strlen(s)) < 0)
    perror("smtpd write");
}

static void smtpd_session(smtpd_t *s, int c)
{
  char l[4096];
  say(c, "220 test ESMTP\r\n");
  while (rline(c, l, sizeof l) > 0) {
    if (!strncasecmp(l, "EHLO", 4)) {
      say(c, "250-test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n");
    } else if (!strcasecmp(l, "AUTH PLAIN\r\n")) { /* no initial response: ask for it */
      say(c, "334 \r\n");
      if (rline(c, l, sizeof l) <= 0)
        break;
      snprintf(s->auth, sizeof s->auth, "%s", l);
      say(c, "235 ok\r\n");
    } else if (!strncasecmp(l, "AUTH PLAIN", 10) || !strncasecmp(l, "MAIL", 4) ||
               !strncasecmp(l, "RCPT", 4)) {
      strncat(s->envelope, l, sizeof s->envelope - strlen(s->envelope) - 1);
      say(c, !strncasecmp(l, "AUTH", 4) ? "235 ok\r\n" : "250 ok\r\n");
    } else if (!strncasecmp(l, "DATA", 4)) {
      say(c, "354 go\r\n");
      s->data[0] = 0;
      while (rline(c, l, sizeof l) > 0 && strcmp(l, ".\r\n"))
        strncat(s->data, l[0] == '.' ? l + 1 : l, sizeof s->data - strlen(s->data) - 1);
      s->mails++;
      say(c, "250 queued\r\n");
    } else if (!strncasecmp(l, "QUIT", 4)) {
      say(c, "221 bye\r\n");
      break;
    } else {
      say(c, "250 ok\r\n");
    }
  }
}

static void *smtpd_run(void *arg)
{
  smtpd_t *s = arg;
  while (!s->stop) {
    struct pollfd p = {s->fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0)
      continue;
    int c = accept(s->fd, NULL, NULL);
    if (c >= 0) {
      smtpd_session(s, c);
      close(c);
    }
  }
  return NULL;
}

static int smtpd_start(smtpd_t *s)
{
  memset(s, 0, sizeof *s);
  s->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof a) || listen(s->fd, 4) ||
      getsockname(s->fd, (struct sockaddr *)&a, &al))
    return -1;
  s->port = ntohs(a.sin_port);
  return pthread_create(&s->thread, NULL, smtpd_run, s);
}

static void smtpd_stop(smtpd_t *s)
{
  s->stop = 1;
  pthread_join(s->thread, NULL);
  close(s->fd);
}

static ad__partner_mail_t *make(int port, ad_error_t *err)
{
  char c[600];
  snprintf(c, sizeof c,
           "{\"url\": \"smtp://127.0.0.1:%d\", \"from\": \"ops@games.example\", "
           "\"to\": [\"pay@partner.example\"], \"cc\": \"boss@games.example\", "
           "\"starttls\": false, \"username\": \"ops\", \"password\": \"pw-not-logged\", "
           "\"timeout_s\": 5}", port);
  json_t *conf = json_loads(c, 0, NULL);
  ad__partner_mail_t *m = ad__partner_mail_new(conf, err);
  json_decref(conf);
  return m;
}

static json_t *orders(void)
{
  return json_pack("[{s:s,s:s,s:s,s:i,s:s,s:[{s:s,s:i,s:f},{s:s,s:i,s:f}]},"
                   "{s:s,s:s,s:s,s:i,s:s}]",
                   "_id", "aliyun-hz-20261204", "profile", "aliyun-hz", "flavour",
                   "ecs.g7.2xlarge", "count", 3, "cloud_order_id", "2026120412345",
                   "platforms", "platform", "qq", "services", 7, "waited_hours", 26.2,
                   "platform", "wx<b>", "services", 2, "waited_hours", 3.0,
                   "_id", "hw-gz-20261204", "profile", "hw-gz", "flavour", "s6.large.2",
                   "count", 1, "reason", "9 services of lol wait (no host fits)");
}

/* The base64 part after `marker` in the message, decoded. */
static char *part(const char *msg, const char *marker)
{
  const char *p = strstr(msg, marker);
  p = p ? strstr(p, "\r\n\r\n") : NULL;
  if (!p)
    return NULL;
  p += 4;
  const char *e = strstr(p, "--=_ad_alt");
  char *b64 = calloc(1, (size_t)(e - p) + 1);
  size_t k = 0, n = 0;
  for (const char *q = p; q < e; q++)
    if (*q != '\r' && *q != '\n')
      b64[k++] = *q;
  ad_error_t err;
  char *out = (char *)ad__b64_decode(b64, k, &n, &err);
  free(b64);
  return out;
}

TEST(delivered_with_headers_and_both_parts)
{
  smtpd_t s;
  ad_error_t err = {0};
  ASSERT_EQ(smtpd_start(&s), 0);
  ad__partner_mail_t *m = make(s.port, &err);
  ASSERT(m);
  json_t *o = orders();
  int rc = ad__partner_mail_send(m, o, &err);
  if (rc)
    fprintf(stderr, "  send: %s\n", err.message);
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(s.mails, 1);
  ASSERT(strstr(s.envelope, "MAIL FROM:<ops@games.example>"));
  ASSERT(strstr(s.envelope, "RCPT TO:<pay@partner.example>"));
  ASSERT(strstr(s.envelope, "RCPT TO:<boss@games.example>"));
  /* AUTH as configured: base64("\0ops\0pw-not-logged") */
  ASSERT(strstr(s.envelope, "AG9wcwBwdy1ub3QtbG9nZ2Vk") || strstr(s.auth, "AG9wcwBwdy1ub3QtbG9nZ2Vk"));
  const char *d = s.data;
  ASSERT(strstr(d, "From: ops@games.example\r\n"));
  ASSERT(strstr(d, "To: pay@partner.example\r\n"));
  ASSERT(strstr(d, "Cc: boss@games.example\r\n"));
  ASSERT(strstr(d, "Subject: [autodeploy] Host orders: 4 hosts in 2 orders, please pay\r\n"));
  ASSERT(strstr(d, "Message-ID: <orders-"));
  ASSERT(strstr(d, "@games.example>\r\n"));
  ASSERT(strstr(d, "X-Autodeploy-Orders: aliyun-hz-20261204,\r\n hw-gz-20261204\r\n"));
  ASSERT(strstr(d, "Content-Type: multipart/alternative; boundary=\"=_ad_alt\""));
  ASSERT(!strstr(d, "pw-not-logged"));
  char *text = part(d, "Content-Type: text/plain"), *html = part(d, "Content-Type: text/html");
  ASSERT(text && html);
  ASSERT(strstr(text, "order id            profile    flavour         count  cloud order id  reason"));
  ASSERT(strstr(text, "aliyun-hz-20261204  aliyun-hz  ecs.g7.2xlarge  3      2026120412345   "
                      "qq: 7 services, waited 26 h; wx<b>: 2 services, waited 3 h"));
  ASSERT(strstr(text, "hw-gz-20261204      hw-gz      s6.large.2      1      -               "
                      "9 services of lol wait (no host fits)"));
  ASSERT(strstr(html, "<td>aliyun-hz-20261204</td><td>aliyun-hz</td><td>ecs.g7.2xlarge</td>"
                      "<td align=\"right\">3</td><td>2026120412345</td>"));
  ASSERT(strstr(html, "wx&lt;b&gt;: 2 services")); /* escaped */
  /* the same orders again: the same Message-ID (a resend is the same mail) */
  char first_id[128] = "";
  sscanf(strstr(d, "Message-ID: "), "Message-ID: %127s", first_id);
  char *again = ad__partner_mail_render(m, o, &err);
  ASSERT(again && strstr(again, first_id));
  free(again);
  free(text);
  free(html);
  json_decref(o);
  ad__partner_mail_destroy(&m);
  ASSERT(!m);
  smtpd_stop(&s);
}

/* The Subject, its RFC 2047 encoded words decoded. Caller frees. */
static char *subject_of(const char *msg)
{
  const char *p = strstr(msg, "Subject: =?UTF-8?B?");
  char *out = calloc(1, 1024);
  for (p = p ? p + 9 : NULL; p && out && !strncmp(p, "=?UTF-8?B?", 10);) {
    const char *e = strstr(p + 10, "?=");
    size_t n = 0;
    ad_error_t err;
    char *w = (char *)ad__b64_decode(p + 10, (size_t)(e - p - 10), &n, &err);
    strncat(out, w ? w : "", 1023 - strlen(out));
    free(w);
    p = e + 2;
    if (!strncmp(p, "\r\n ", 3))
      p += 3;
  }
  return out;
}

TEST(one_order_message_id_is_the_order_id)
{
  ad_error_t err = {0};
  ad__partner_mail_t *m = make(25, &err);
  ASSERT(m);
  json_t *o = json_pack("[{s:s,s:s,s:s,s:i,s:s}]", "_id", "aliyun-hz-20261204", "profile",
                        "aliyun-hz", "flavour", "ecs.g7.2xlarge", "count", 3, "reason", "r");
  char *msg = ad__partner_mail_render(m, o, &err);
  ASSERT(msg);
  ASSERT(strstr(msg, "Message-ID: <aliyun-hz-20261204@games.example>\r\n"));
  char *subject = subject_of(msg);
  ASSERT(subject);
  ASSERT_STR(subject, "[autodeploy] Host order aliyun-hz-20261204: 3 x ecs.g7.2xlarge "
                      "(aliyun-hz), please pay");
  free(subject);
  free(msg);
  json_decref(o);
  ad__partner_mail_destroy(&m);
}

TEST(smtp_down_is_eagain)
{
  ad_error_t err = {0};
  ad__partner_mail_t *m = make(srv_closed_port(), &err);
  ASSERT(m);
  json_t *o = orders();
  ASSERT_EQ(ad__partner_mail_send(m, o, &err), AD_EAGAIN);
  ASSERT_EQ(err.code, AD_EAGAIN);
  ASSERT(strstr(err.message, "partner mail"));
  ASSERT(!strstr(err.message, "pw-not-logged"));
  json_decref(o);
  ad__partner_mail_destroy(&m);
}

static void bad(const char *conf, const char *want)
{
  ad_error_t err = {0};
  json_t *c = json_loads(conf, 0, NULL);
  ad__partner_mail_t *m = ad__partner_mail_new(c, &err);
  json_decref(c);
  if (m || !strstr(err.message, want))
    fprintf(stderr, "  %s -> \"%s\", want \"%s\"\n", conf, err.message, want);
  ASSERT(!m);
  ASSERT_EQ(err.code, AD_ECONFIG);
  ASSERT(strstr(err.message, want));
}

TEST(bad_config_names_the_key)
{
  bad("{\"from\": \"a@b.c\", \"to\": [\"p@q.r\"]}", "purchase.partner_mail.url: is required");
  bad("{\"url\": \"http://x\", \"from\": \"a@b.c\", \"to\": [\"p@q.r\"]}",
      "purchase.partner_mail.url");
  bad("{\"url\": \"smtp://x\", \"to\": [\"p@q.r\"]}", "purchase.partner_mail.from: is required");
  bad("{\"url\": \"smtp://x\", \"from\": \"a@b.c\"}", "purchase.partner_mail.to: at least one");
  bad("{\"url\": \"smtp://x\", \"from\": \"a@b.c\", \"to\": [\"p@q.r\", \"x>y@z\"]}",
      "purchase.partner_mail.to[1]");
  bad("{\"url\": \"smtp://x\", \"from\": \"a@b.c\", \"to\": [\"p@q.r\"], \"username\": \"u\"}",
      "purchase.partner_mail.password: needed with username");
  bad("{\"url\": \"smtp://x\", \"from\": \"a@b.c\", \"to\": [\"p@q.r\"], \"timeout_s\": -1}",
      "purchase.partner_mail.timeout_s");
  bad("{\"url\": \"smtp://x\", \"from\": \"a@b.c\", \"to\": [\"p@q.r\"], \"bcc\": []}",
      "purchase.partner_mail: unknown key \"bcc\"");
}

RUN(CASE(delivered_with_headers_and_both_parts), CASE(one_order_message_id_is_the_order_id),
    CASE(smtp_down_is_eagain), CASE(bad_config_names_the_key))
