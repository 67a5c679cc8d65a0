/* test_encoding.c - core/encoding: base64 against RFC 4648's vectors. */
#include <stdint.h>
#include <stdlib.h>

#include "harness.h"
#include "core/encoding.h"

/* RFC 4648 section 10. */
static const char *const VEC[][2] = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},       {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

TEST(rfc4648_encode)
{
  for (size_t i = 0; i < sizeof VEC / sizeof VEC[0]; i++) {
    char *e = ad__b64_encode(VEC[i][0], strlen(VEC[i][0]));
    ASSERT(e != NULL);
    int ok = strcmp(e, VEC[i][1]) == 0 && ad__b64_len(strlen(VEC[i][0])) == strlen(e);
    free(e);
    ASSERT(ok);
  }
}

TEST(rfc4648_decode)
{
  for (size_t i = 0; i < sizeof VEC / sizeof VEC[0]; i++) {
    size_t n = 99;
    ad_error_t err;
    unsigned char *d = ad__b64_decode(VEC[i][1], strlen(VEC[i][1]), &n, &err);
    ASSERT(d != NULL);
    int ok = n == strlen(VEC[i][0]) && memcmp(d, VEC[i][0], n) == 0 && d[n] == '\0';
    free(d);
    ASSERT(ok);
  }
}

TEST(binary_round_trip)
{
  unsigned char all[256 + 2];
  for (int i = 0; i < (int)sizeof all; i++)
    all[i] = (unsigned char)(255 - i);
  for (size_t len = 0; len <= sizeof all; len++) {
    char buf[400];
    size_t w = ad__b64_encode_into(buf, all, len), n = 0;
    ASSERT_EQ(w, ad__b64_len(len));
    ASSERT_EQ(strlen(buf), w);
    unsigned char *d = ad__b64_decode(buf, w, &n, NULL);
    ASSERT(d != NULL);
    int ok = n == len && memcmp(d, all, len) == 0;
    free(d);
    ASSERT(ok);
  }
  char *e = ad__b64_encode("\xfb\xff", 2); /* the two characters past 'z' and '9' */
  ASSERT(e != NULL);
  int ok = strcmp(e, "+/8=") == 0;
  free(e);
  ASSERT(ok);
}

TEST(bad_input_refused)
{
  static const char *bad[] = {"Zg",       "Zg=",     "Zm9",      "Z===",   "====",  "Zg==Zg==",
                              "Zm=v",     "Zm 9v",   " Zm9v",    "Zm9v\n", "Zm9-",  "Zm9_",
                              "Zm9v====", "Zm9\x80", "=Zm9",     NULL};
  for (size_t i = 0; bad[i]; i++) {
    size_t n = 7;
    ad_error_t err = {0};
    unsigned char *d = ad__b64_decode(bad[i], strlen(bad[i]), &n, &err);
    if (d) {
      fprintf(stderr, "  accepted '%s'\n", bad[i]);
      free(d);
      ASSERT(0);
    }
    ASSERT_EQ(err.code, AD_EINVAL);
    ASSERT_STR(err.domain, "encoding");
    ASSERT(strstr(err.message, "base64") != NULL);
  }
  /* an embedded NUL is not base64 either */
  ASSERT(ad__b64_decode("Zm\0v", 4, &(size_t){0}, NULL) == NULL);
  ASSERT(ad__b64_decode(NULL, 0, &(size_t){0}, NULL) == NULL);
}

TEST(alphabet_span)
{
  ASSERT_EQ(ad__b64_span("Zm9v+/09", 8), 8);
  ASSERT_EQ(ad__b64_span("Zm9v=", 5), 4); /* padding is not the alphabet */
  ASSERT_EQ(ad__b64_span("ab-c", 4), 2);
  ASSERT_EQ(ad__b64_span("abc", 2), 2);   /* stops at n */
  ASSERT_EQ(ad__b64_span("", 0), 0);
}

RUN(CASE(rfc4648_encode), CASE(rfc4648_decode), CASE(binary_round_trip),
    CASE(bad_input_refused), CASE(alphabet_span))
