/* dispatch.h - the table of tag patterns to handlers. Dispatch is data. */
#ifndef AD_DISPATCH_H
#define AD_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "autodeploy/bus.h"

#define AD__MAX_ROUTES 64

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

/* Bit i set when route i matches `tag` (NUL-terminated, tag_len long). */
uint64_t ad__routes_match(const ad__routes_t *t, const char *tag,
                          size_t tag_len);

#endif
