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

/* Index just past the ']' closing the bracket expression opened at p[i],
 * or 0 when it is never closed. A ']' right after '[', "[!" or "[^" is a
 * member, and "[:alpha:]", "[.x.]", "[=e=]" inside are skipped whole. */
static size_t bracket_end(const char *p, size_t i)
{
  i++;
  if (p[i] == '!' || p[i] == '^')
    i++;
  if (p[i] == ']')
    i++;
  while (p[i] && p[i] != ']') {
    if (p[i] == '[' && (p[i + 1] == ':' || p[i + 1] == '.' || p[i + 1] == '=')) {
      const char *close = strstr(p + i + 2, (char[]){p[i + 1], ']', '\0'});
      if (!close)
        return 0;
      i = (size_t)(close - p) + 2;
    } else {
      i++;
    }
  }
  return p[i] == ']' ? i + 1 : 0;
}

int ad__glob_check(const char *pattern, ad_error_t *err)
{
  for (size_t i = 0; pattern[i];) {
    if (pattern[i] == '\\') {
      if (!pattern[i + 1])
        return ad__err(err, AD_EINVAL, "bus", "invalid glob '%.*s%s': it ends "
                       "with a lone '\\'", AD__TAG_SHOW(pattern));
      i += 2;
    } else if (pattern[i] == '[') {
      size_t end = bracket_end(pattern, i);
      if (!end)
        return ad__err(err, AD_EINVAL, "bus", "invalid glob '%.*s%s': the '[' "
                       "at byte %zu is never closed by ']'", AD__TAG_SHOW(pattern),
                       i);
      i = end;
    } else {
      i++;
    }
  }
  return 0;
}

/* Length of the UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
  size_t len = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2
             : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
  if (len == 0 || len > n || (len == 2 && p[0] < 0xc2))
    return 0;
  for (size_t k = 1; k < len; k++)
    if ((p[k] & 0xc0) != 0x80)
      return 0;
  if ((len == 3 && p[0] == 0xe0 && p[1] < 0xa0) ||      /* overlong */
      (len == 3 && p[0] == 0xed && p[1] >= 0xa0) ||     /* surrogate */
      (len == 4 && p[0] == 0xf0 && p[1] < 0x90) ||      /* overlong */
      (len == 4 && (p[0] > 0xf4 || (p[0] == 0xf4 && p[1] >= 0x90))))
    return 0;
  return len;
}

int ad__tag_check(const char *tag, ad_error_t *err)
{
  size_t n = tag ? strlen(tag) : 0;
  if (n == 0)
    return ad__err(err, AD_EINVAL, "bus", "the tag is empty");
  if (n > AD__TAG_MAX)
    return ad__err(err, AD_EINVAL, "bus", "tag '%.*s%s' is %zu bytes; readers "
                   "drop tags over %d", AD__TAG_SHOW(tag), n, AD__TAG_MAX);
  const char *nl = strstr(tag, "\n\n");
  if (nl || tag[n - 1] == '\n')
    return ad__err(err, AD_EINVAL, "bus", "tag '%.*s%s' has %s at byte %zu; "
                   "Salt would split the event there", AD__TAG_SHOW(tag),
                   nl ? "\"\\n\\n\"" : "a trailing '\\n'",
                   nl ? (size_t)(nl - tag) : n - 1);
  for (size_t i = 0; i < n;) {
    size_t k = utf8_len((const unsigned char *)tag + i, n - i);
    if (!k)
      return ad__err(err, AD_EINVAL, "bus", "tag '%.*s%s' is not UTF-8 "
                     "(byte %zu); Salt decodes tags as UTF-8",
                     AD__TAG_SHOW(tag), i);
    i += k;
  }
  return 0;
}

int ad__routes_add(ad__routes_t *t, const char *pattern, ad_handler_fn fn,
                   void *user, ad_error_t *err)
{
  if (!pattern || !*pattern || !fn)
    return ad__err(err, AD_EINVAL, "bus", "route needs a pattern and a handler");
  if (ad__glob_check(pattern, err) != 0)
    return AD_EINVAL;
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
