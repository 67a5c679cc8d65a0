/* harness.h - a tiny test harness in the manner of libuv's test/task.h.
 * Each test file is one binary; main() runs its TESTs and prints
 * "N passed, N failed". */
#ifndef AD_TEST_HARNESS_H
#define AD_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int h_failed_now;
static const char *h_name;

#define ASSERT(c)                                                            \
  do {                                                                       \
    if (!(c)) {                                                              \
      fprintf(stderr, "  FAIL %s: %s:%d: %s\n", h_name, __FILE__, __LINE__,  \
              #c);                                                           \
      h_failed_now = 1;                                                      \
      return;                                                                \
    }                                                                        \
  } while (0)
#define ASSERT_EQ(a, b) ASSERT((a) == (b))
#define ASSERT_STR(a, b) ASSERT(strcmp((a), (b)) == 0)
#define ASSERT_MEM(p, n, s) ASSERT((n) == strlen(s) && memcmp((p), (s), (n)) == 0)

typedef void (*h_fn)(void);
typedef struct { const char *name; h_fn fn; } h_case;

#define TEST(name) static void name(void)
#define CASE(name) {#name, name}

static int h_run(const char *file, const h_case *cases, size_t n)
{
  int passed = 0, failed = 0;
  for (size_t i = 0; i < n; i++) {
    h_name = cases[i].name;
    h_failed_now = 0;
    cases[i].fn();
    if (h_failed_now)
      failed++;
    else
      passed++;
  }
  printf("%s: %d passed, %d failed\n", file, passed, failed);
  return failed ? 1 : 0;
}

#define RUN(...)                                                             \
  int main(void)                                                             \
  {                                                                          \
    static const h_case cases[] = {__VA_ARGS__};                             \
    return h_run(__FILE__, cases, sizeof(cases) / sizeof(cases[0]));        \
  }

/* Read a whole file (fixtures). Caller frees. NULL if missing. */
static __attribute__((unused)) char *h_slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  if (b) {
    b[n] = '\0';
    *len = (size_t)n;
  }
  return b;
}

static __attribute__((unused)) const char *h_data_dir(void)
{
  const char *d = getenv("AD_TEST_DATA");
  return d ? d : "tests/data";
}

#endif
