/* notices.c - see notices.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "purchase/notices.h"

typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
  if (b->oom)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->oom = 1;
      return;
    }
    if (b->p && b->len + (size_t)n < b->cap) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 512;
    while (cap < b->len + (size_t)n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
}

static char *sb_take(sbuf_t *b)
{
  if (b->oom) {
    free(b->p);
    return NULL;
  }
  return b->p ? b->p : strdup("");
}

static const char *str(const json_t *o, const char *k, const char *def)
{
  const char *s = json_string_value(json_object_get(o, k));
  return s && *s ? s : def;
}

char *ad__order_reason_text(const json_t *order)
{
  const char *r = str(order, "reason", NULL);
  if (r)
    return strdup(r);
  sbuf_t b = {0};
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(order, "platforms"), i, p) {
    json_t *n = json_object_get(p, "services"), *h = json_object_get(p, "waited_hours");
    sb_printf(&b, "%s%s", i ? "; " : "", str(p, "platform", "?"));
    if (json_is_number(n))
      sb_printf(&b, ": %lld services", (long long)json_number_value(n));
    if (json_is_number(h))
      sb_printf(&b, "%swaited %.0f h", json_is_number(n) ? ", " : ": ", json_number_value(h));
  }
  return sb_take(&b);
}

char *ad__order_robot_text(const json_t *order, const char *salt_api_url)
{
  const char *id = str(order, "_id", "?");
  const char *api = salt_api_url && *salt_api_url ? salt_api_url : "https://<salt-api>:8000";
  char *reason = ad__order_reason_text(order);
  if (!reason)
    return NULL;
  sbuf_t b = {0};
  sb_printf(&b, "### Approval asked: order %s\n\n", id);
  sb_printf(&b, "Buy **%lld** host(s) of profile **%s** (flavour %s%s%s).\n\n",
            (long long)json_integer_value(json_object_get(order, "count")),
            str(order, "profile", "?"), str(order, "flavour", "?"),
            str(order, "region", NULL) ? ", region " : "", str(order, "region", ""));
  if (*reason)
    sb_printf(&b, "Why: %s\n\n", reason);
  sb_printf(&b, "Nothing is ordered until someone decides. This robot cannot take an answer "
                "(its buttons are links only): answer on the Salt master:\n\n");
  sb_printf(&b, "- approve: `salt-run autodeploy.approve %s`\n", id);
  sb_printf(&b, "- reject: `salt-run autodeploy.reject %s reason=\"...\"`\n\n", id);
  sb_printf(&b, "or through salt-api (a session token from `/login`):\n\n");
  sb_printf(&b, "```\ncurl -sS %s/ -H 'Accept: application/json' -H \"X-Auth-Token: $TOKEN\" "
                "-H 'Content-Type: application/json' -d '[{\"client\": \"runner\", "
                "\"fun\": \"autodeploy.approve\", \"kwarg\": {\"id\": \"%s\"}}]'\n```\n\n",
            api, id);
  sb_printf(&b, "See it with `salt-run autodeploy.order %s`.\n", id);
  free(reason);
  return sb_take(&b);
}
