/*
 * dispatch.c - match tags against glob patterns with fnmatch(3), which
 * (without FNM_PATHNAME) lets '*' cross '/', as Python's fnmatch does in
 * Salt's reactor. Literal prefix and suffix checks reject most tags before
 * any matching; patterns with only '*' and '?' use a small matcher with the
 * same semantics, others fnmatch.
 */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "bus/dispatch.h"
#include "core/error_private.h"

int ad__routes_add(ad__routes_t *t, const char *pattern, ad_handler_fn fn,
                   void *user, ad_error_t *err)
{
  if (!pattern || !*pattern || !fn)
    return ad__err(err, AD_EINVAL, "bus", "route needs a pattern and a handler");
  if (t->n >= AD__MAX_ROUTES)
    return ad__err(err, AD_EINVAL, "bus", "too many routes (max %d) adding %s",
                   AD__MAX_ROUTES, pattern);
  ad__route_t *r = &t->r[t->n];
  r->pattern = strdup(pattern);
  if (!r->pattern)
    return ad__err(err, AD_ENOMEM, "bus", "no memory");
  r->prefix_len = strcspn(pattern, "*?[\\");
  r->literal = pattern[r->prefix_len] == '\0';
  size_t len = strlen(pattern), i = len;
  while (i > 0 && !strchr("*?[]\\", pattern[i - 1]))
    i--;
  r->suffix_len = r->literal ? 0 : len - i;
  r->simple = strpbrk(pattern, "[\\") == NULL;
  r->fn = fn;
  r->user = user;
  t->n++;
  return 0;
}

void ad__routes_free(ad__routes_t *t)
{
  for (int i = 0; i < t->n; i++)
    free(t->r[i].pattern);
  t->n = 0;
}

/* '*' and '?' as fnmatch(3) without flags ('*' crosses '/'); iterative
 * with one backtrack point, so linear in practice. */
static int glob_match(const char *p, const char *s)
{
  const char *star = NULL, *ss = NULL;
  while (*s) {
    if (*p == '?' || (*p == *s && *p != '*')) {
      p++, s++;
    } else if (*p == '*') {
      star = p++;
      ss = s;
    } else if (star) {
      p = star + 1;
      s = ++ss;
    } else {
      return 0;
    }
  }
  while (*p == '*')
    p++;
  return *p == '\0';
}

uint64_t ad__routes_match(const ad__routes_t *t, const char *tag,
                          size_t tag_len)
{
  uint64_t m = 0;
  for (int i = 0; i < t->n; i++) {
    const ad__route_t *r = &t->r[i];
    if (r->literal) {
      if (r->prefix_len == tag_len && memcmp(r->pattern, tag, tag_len) == 0)
        m |= (uint64_t)1 << i;
      continue;
    }
    if (r->prefix_len > tag_len || memcmp(r->pattern, tag, r->prefix_len) != 0)
      continue;
    if (r->suffix_len &&
        (r->suffix_len > tag_len ||
         memcmp(r->pattern + strlen(r->pattern) - r->suffix_len,
                tag + tag_len - r->suffix_len, r->suffix_len) != 0))
      continue;
    if (r->simple ? glob_match(r->pattern + r->prefix_len, tag + r->prefix_len)
                  : fnmatch(r->pattern, tag, 0) == 0)
      m |= (uint64_t)1 << i;
  }
  return m;
}
