/* redact.c - see redact.h. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/redact.h"

enum { AS_IS, PERCENT, JSON, FORMS };

typedef struct {
  char *form[FORMS]; /* the value; percent-encoded and JSON-escaped when they differ */
  size_t len[FORMS];
  int refs;
} secret_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* longest first, so that a secret inside another is replaced after it */
static secret_t *set;
static size_t n_set, cap_set;
static atomic_size_t n_kept; /* n_set, read without the lock: nothing to do when 0 */

static void wipe_free(char *s)
{
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

static int unreserved(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986: every byte but the unreserved ones as %XX. Caller frees. */
static char *percent_encoded(const char *v)
{
  char *out = malloc(3 * strlen(v) + 1), *p = out;
  for (const unsigned char *s = (const unsigned char *)v; out && *s; s++)
    p += unreserved(*s) ? (*p = (char)*s, 1) : sprintf(p, "%%%02X", *s);
  if (out)
    *p = '\0';
  return out;
}

/* As a JSON string's contents ('"', '\' and control characters escaped). */
static char *json_escaped(const char *v)
{
  char *out = malloc(6 * strlen(v) + 1), *p = out;
  for (const unsigned char *s = (const unsigned char *)v; out && *s; s++) {
    const char *e = *s == '"' ? "\\\"" : *s == '\\' ? "\\\\" : *s == '\n' ? "\\n"
                    : *s == '\r' ? "\\r" : *s == '\t' ? "\\t" : NULL;
    if (e)
      p += sprintf(p, "%s", e);
    else if (*s < 0x20)
      p += sprintf(p, "\\u%04x", *s);
    else
      *p++ = (char)*s;
  }
  if (out)
    *p = '\0';
  return out;
}

static size_t find(const char *v)
{
  size_t i = 0;
  while (i < n_set && strcmp(set[i].form[AS_IS], v))
    i++;
  return i;
}

static void add_value(const char *v)
{
  size_t len = strlen(v);
  if (len < AD__SECRET_MIN)
    return;
  pthread_mutex_lock(&lock);
  size_t i = find(v);
  if (i < n_set) {
    set[i].refs++;
    goto done;
  }
  if (n_set == cap_set) {
    size_t cap = cap_set ? 2 * cap_set : 16;
    secret_t *s = realloc(set, cap * sizeof *s);
    if (!s)
      goto done; /* no memory: not kept (nothing else can be done here) */
    set = s;
    cap_set = cap;
  }
  secret_t e = {{strdup(v), percent_encoded(v), json_escaped(v)}, {0}, 1};
  for (int f = 0; f < FORMS; f++) {
    if (f != AS_IS && e.form[f] && (!e.form[AS_IS] || !strcmp(e.form[f], e.form[AS_IS]))) {
      wipe_free(e.form[f]); /* the same as the value: one is enough */
      e.form[f] = NULL;
    }
    e.len[f] = e.form[f] ? strlen(e.form[f]) : 0;
  }
  if (!e.form[AS_IS]) {
    for (int f = 0; f < FORMS; f++)
      wipe_free(e.form[f]);
    goto done;
  }
  for (i = 0; i < n_set && set[i].len[AS_IS] >= len; i++)
    ;
  memmove(set + i + 1, set + i, (n_set - i) * sizeof *set);
  set[i] = e;
  atomic_store(&n_kept, ++n_set);
done:
  pthread_mutex_unlock(&lock);
}

static void drop_value(const char *v)
{
  if (strlen(v) < AD__SECRET_MIN)
    return;
  pthread_mutex_lock(&lock);
  size_t i = find(v);
  if (i < n_set && --set[i].refs == 0) {
    for (int f = 0; f < FORMS; f++)
      wipe_free(set[i].form[f]);
    memmove(set + i, set + i + 1, (n_set - i - 1) * sizeof *set);
    atomic_store(&n_kept, --n_set);
  }
  pthread_mutex_unlock(&lock);
}

/* fn on [s, s+n) as written and, when it holds %XX escapes, decoded. */
static void as_written_and_decoded(const char *s, size_t n, void (*fn)(const char *))
{
  char *raw = strndup(s, n);
  if (!raw)
    return;
  fn(raw);
  if (strchr(raw, '%')) {
    int len = 0;
    char *dec = curl_easy_unescape(NULL, raw, (int)n, &len);
    if (dec && (size_t)len == strlen(dec)) /* no %00 inside */
      fn(dec);
    if (dec) {
      explicit_bzero(dec, (size_t)len);
      curl_free(dec);
    }
  }
  wipe_free(raw);
}

/* The userinfo's password and the credential-named query values. Lenient,
 * for a malformed URI is what a parser quotes in its error: the userinfo
 * ends at the last '@' before the query. */
static void url_secrets(const char *url, void (*fn)(const char *))
{
  const char *a = strstr(url, "://");
  if (!a)
    return;
  a += 3;
  size_t q = strcspn(a, "?#");
  const char *at = NULL, *colon;
  for (const char *p = a; p < a + q; p++)
    if (*p == '@')
      at = p;
  if (at && (colon = memchr(a, ':', (size_t)(at - a))) && colon + 1 < at)
    as_written_and_decoded(colon + 1, (size_t)(at - colon - 1), fn);
  for (const char *p = a + q; *p == '?' || *p == '&' || *p == ';';) {
    p++;
    size_t l = strcspn(p, "&;#");
    const char *eq = memchr(p, '=', l);
    char *name = eq ? strndup(p, (size_t)(eq - p)) : NULL;
    int len = 0;
    char *dec = name ? curl_easy_unescape(NULL, name, 0, &len) : NULL;
    if (dec && ad__secret_name(dec) && eq + 1 < p + l)
      as_written_and_decoded(eq + 1, (size_t)(p + l - eq - 1), fn);
    curl_free(dec);
    free(name);
    p += l;
  }
}

/* "Name: value": the value, and the value after its scheme ("Bearer x"). */
static void named_secrets(const char *line, void (*fn)(const char *))
{
  const char *colon = strchr(line, ':');
  if (!colon)
    return;
  char *name = strndup(line, (size_t)(colon - line));
  int hit = name && ad__secret_name(name);
  free(name);
  if (!hit)
    return;
  const char *v = colon + 1 + strspn(colon + 1, " \t");
  fn(v);
  const char *sp = strchr(v, ' ');
  if (sp)
    fn(sp + strspn(sp, " "));
}

static void apply(ad__secret_kind_t kind, const char *text, void (*fn)(const char *))
{
  if (!text)
    return;
  if (kind == AD__SECRET_URL)
    url_secrets(text, fn);
  else if (kind == AD__SECRET_NAMED)
    named_secrets(text, fn);
  else
    fn(text);
}

void ad__secret_add(ad__secret_kind_t kind, const char *text) { apply(kind, text, add_value); }
void ad__secret_drop(ad__secret_kind_t kind, const char *text) { apply(kind, text, drop_value); }

int ad__secret_name(const char *name)
{
  static const char *const ENDS[] = {"token", "key", "secret", "password", "passwd", "pwd",
                                     "sign", "signature", "sig", "auth", "authorization",
                                     "cookie", "credential", "credentials", "session", NULL};
  size_t n = name ? strlen(name) : 0;
  for (size_t i = 0; ENDS[i]; i++) {
    size_t l = strlen(ENDS[i]);
    if (n >= l && !strcasecmp(name + n - l, ENDS[i]))
      return 1;
  }
  return 0;
}

size_t ad__redact(char *text)
{
  size_t count = 0;
  if (!text || !atomic_load_explicit(&n_kept, memory_order_relaxed))
    return 0;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < n_set; i++)
    for (int f = 0; f < FORMS; f++) {
      const char *s = set[i].form[f];
      size_t l = set[i].len[f];
      for (char *p = s ? strstr(text, s) : NULL; p; p = strstr(p + 3, s)) {
        memcpy(p, "***", 3); /* l >= AD__SECRET_MIN > 3: the text only shrinks */
        memmove(p + 3, p + l, strlen(p + l) + 1);
        count++;
      }
    }
  pthread_mutex_unlock(&lock);
  return count;
}

char *ad__redact_origin(const char *url)
{
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
  if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
      curl_url_get(u, CURLUPART_HOST, &host, 0))
    goto done;
  curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
  size_t n = strlen(scheme) + strlen(host) + (port ? strlen(port) : 0) + 5;
  if ((out = malloc(n)))
    snprintf(out, n, "%s://%s%s%s", scheme, host, port ? ":" : "", port ? port : "");
done:
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return out;
}
