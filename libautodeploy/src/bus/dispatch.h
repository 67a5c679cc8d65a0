/* dispatch.h - the table of tag patterns to handlers. Dispatch is data. */
#ifndef AD_DISPATCH_H
#define AD_DISPATCH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "autodeploy/bus.h"

#define AD__MAX_ROUTES 64

/* The longest tag the reader hands to handlers (reader.c drops longer
 * ones), so the longest tag ad_bus_fire sends. */
#define AD__TAG_MAX 4096

/* How much of a tag an error message echoes: "%.*s%s" with
 * AD__TAG_SHOW(tag) prints at most its first 64 bytes and stops before a
 * newline, then "..." if anything was left out. */
#define AD__TAG_SHOW_MAX 64
static inline int ad__tag_show_len(const char *t)
{
  size_t n = strcspn(t, "\r\n");
  return (int)(n > AD__TAG_SHOW_MAX ? AD__TAG_SHOW_MAX : n);
}
#define AD__TAG_SHOW(t)                                                     \
  ad__tag_show_len(t), (t), ((t)[ad__tag_show_len(t)] ? "..." : "")

typedef struct {
  char *pattern;
  size_t prefix_len;  /* literal bytes before the first glob character */
  int literal;        /* no glob characters at all: compare whole tag */
  size_t suffix_len;  /* literal bytes after the last glob character */
  int simple;         /* only '*' and '?': our matcher, else fnmatch */
  ad_handler_fn fn;
  void *user;
} ad__route_t;

typedef struct {
  ad__route_t r[AD__MAX_ROUTES];
  int n;
} ad__routes_t;

int ad__routes_add(ad__routes_t *t, const char *pattern, ad_handler_fn fn,
                   void *user, ad_error_t *err);
void ad__routes_free(ad__routes_t *t);

/* 0 when `pattern` is a glob fnmatch(3) reads as written: every '[' is
 * closed, and no '\\' ends it. Else AD_EINVAL, *err naming the pattern. */
int ad__glob_check(const char *pattern, ad_error_t *err);

/* 0 when every master and reader takes `tag` as it is: 1 to AD__TAG_MAX
 * bytes of UTF-8, no "\n\n" (Salt splits tag from data at the first one)
 * and no trailing '\n' (it would join the separator). Else AD_EINVAL. */
int ad__tag_check(const char *tag, ad_error_t *err);

/* Bit i set when route i matches `tag` (NUL-terminated, tag_len long). */
uint64_t ad__routes_match(const ad__routes_t *t, const char *tag,
                          size_t tag_len);

#endif
