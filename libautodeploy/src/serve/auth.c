/*
 * auth.c - bearer tokens and query parameters: the two checks every
 * request goes through before any handler runs, kept pure so that
 * tests/serve/test_auth.c can break them on purpose.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "serve/serve.h"

int ad__serve_token_ok(const char *header, const char *const *tokens)
{
  if (!header || strncasecmp(header, "Bearer ", 7) != 0)
    return 0;
  const char *t = header + 7;
  while (*t == ' ')
    t++;
  size_t n = strlen(t);
  int ok = 0;
  /* no early exit: every configured token is compared, each in time that
   * depends only on its length, never on where the bytes differ */
  for (size_t i = 0; tokens && tokens[i]; i++) {
    size_t m = strlen(tokens[i]);
    int same_len = m == n && m > 0;
    ok |= same_len & (CRYPTO_memcmp(t, tokens[i], same_len ? n : 0) == 0);
  }
  return ok;
}

static int bad(ad_error_t *err, const char *name, const char *fmt, const char *v)
{
  char why[160];
  snprintf(why, sizeof why, fmt, v);
  return ad__err(err, AD_EINVAL, "args", "%s: %s", name, why);
}

/* epoch ms from "1700000000000" (ms), "1700000000" (s, 10 digits or fewer)
 * or an ISO-8601 time; -1 when it is neither. */
static int64_t parse_time(const char *v)
{
  char *end;
  long long n = strtoll(v, &end, 10);
  if (*v && !*end && n >= 0)
    return strlen(v) <= 10 ? n * 1000 : n;
  int64_t ms;
  return ad__time_parse(v, &ms) == 0 ? ms : -1;
}

static int one_param(const ad__serve_param_t *p, const char *v, json_t *out, ad_error_t *err)
{
  switch (p->type) {
  case AD__Q_STR:
    if (!*v || strlen(v) > 200)
      return bad(err, p->name, "must be 1..200 characters%s", "");
    return json_object_set_new(out, p->name, json_string(v));
  case AD__Q_ENUM:
    for (int i = 0; p->enums[i]; i++)
      if (!strcmp(p->enums[i], v))
        return json_object_set_new(out, p->name, json_string(v));
    return bad(err, p->name, "\"%.40s\" is not an allowed value", v);
  case AD__Q_LIMIT: {
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 1 || n > 1000)
      return bad(err, p->name, "must be an integer 1..1000, not \"%.40s\"", v);
    return json_object_set_new(out, p->name, json_integer(n));
  }
  case AD__Q_TIME: {
    int64_t ms = parse_time(v);
    if (ms < 0)
      return bad(err, p->name, "must be epoch seconds, epoch ms or ISO-8601, not \"%.40s\"", v);
    return json_object_set_new(out, p->name, json_integer(ms));
  }
  }
  return bad(err, p->name, "unknown type%s", "");
}

json_t *ad__serve_query(const ad__serve_param_t *params, const json_t *values, ad_error_t *err)
{
  json_t *out = json_object();
  if (!out)
    return ad__err(err, AD_ENOMEM, "args", "no memory"), NULL;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)values, k, v) {
    const ad__serve_param_t *p = params;
    while (p->name && strcmp(p->name, k))
      p++;
    if (!p->name) {
      bad(err, k, "unknown parameter%s", "");
      goto fail;
    }
    if (one_param(p, json_string_value(v) ? json_string_value(v) : "", out, err))
      goto fail;
  }
  for (const ad__serve_param_t *p = params; p->name; p++)
    if (p->type == AD__Q_LIMIT && !json_object_get(out, p->name))
      json_object_set_new(out, p->name, json_integer(100));
  return out;
fail:
  json_decref(out);
  return NULL;
}
