/* test_abi.c - the struct_size rule for public options and stats structs
 * (core/abi.h, docs/api.md "Structs that grow"): an old caller with a
 * newer library, a newer caller with an older library, and the refusals. */
#include <stdint.h>

#include "autodeploy.h"
#include "core/abi.h"
#include "harness.h"

/* Version 1 and 2 of one struct: v2 appends a field. */
typedef struct { size_t struct_size; uint64_t a; int b; } v1_t;
typedef struct { size_t struct_size; uint64_t a; int b; uint64_t c; } v2_t;
#define MIN AD__SIZE_V1(v1_t, b)

TEST(old_caller_gets_defaults_for_new_fields)
{
  v2_t lib = {sizeof lib, 1, 2, 3}; /* the library's defaults */
  v1_t in = {sizeof in, 10, 20};
  ASSERT_EQ(ad__struct_in(&lib, sizeof lib, &in, MIN, "v_t", NULL), 0);
  ASSERT_EQ(lib.a, 10u);
  ASSERT_EQ(lib.b, 20);
  ASSERT_EQ(lib.c, 3u);             /* past the caller's size: default */
  ASSERT_EQ(lib.struct_size, sizeof lib);
}

TEST(old_caller_is_not_written_past_its_size)
{
  struct { v1_t v; uint64_t guard; } out = {{sizeof out.v, 0, 0}, 0xabcd};
  v2_t lib = {sizeof lib, 1, 2, 3};
  ASSERT_EQ(ad__struct_out(&out.v, &lib, sizeof lib, MIN, "v_t", NULL), 0);
  ASSERT_EQ(out.v.a, 1u);
  ASSERT_EQ(out.v.b, 2);
  ASSERT_EQ(out.v.struct_size, sizeof out.v); /* left as the caller set it */
  ASSERT_EQ(out.guard, 0xabcdu);
}

TEST(new_caller_with_old_library)
{
  v1_t lib = {sizeof lib, 1, 2};
  v2_t in = {sizeof in, 10, 20, 0};
  ASSERT_EQ(ad__struct_in(&lib, sizeof lib, &in, MIN, "v_t", NULL), 0);
  ASSERT_EQ(lib.a, 10u);
  in.c = 5; /* a field this library does not know is set: refused */
  ad_error_t err;
  ASSERT_EQ(ad__struct_in(&lib, sizeof lib, &in, MIN, "v_t", &err), AD_EINVAL);
  ASSERT(strstr(err.message, "v_t.struct_size") != NULL);
  v2_t out = {sizeof out, 0, 0, 77}; /* out: unknown tail reads as zero */
  ASSERT_EQ(ad__struct_out(&out, &lib, sizeof lib, MIN, "v_t", NULL), 0);
  ASSERT_EQ(out.a, 10u);
  ASSERT_EQ(out.c, 0u);
}

TEST(zero_or_short_struct_size_is_refused)
{
  v1_t lib = {sizeof lib, 1, 2};
  v1_t x = {0, 9, 9};
  ad_error_t err;
  ASSERT_EQ(ad__struct_out(&x, &lib, sizeof lib, MIN, "v_t", &err), AD_EINVAL);
  ASSERT(strstr(err.message, "v_t.struct_size: 0") != NULL);
  ASSERT_EQ(x.a, 9u); /* nothing written */
  x.struct_size = sizeof(size_t) + 4;
  ASSERT_EQ(ad__struct_in(&lib, sizeof lib, &x, MIN, "v_t", &err), AD_EINVAL);
  ASSERT_EQ(lib.a, 1u);
  ASSERT_EQ(ad__struct_out(NULL, &lib, sizeof lib, MIN, "v_t", &err), AD_EINVAL);
}

/* The public structs follow the rule. */
TEST(bus_options_struct_size)
{
  ad_error_t err;
  ad_bus_options_t o = {0};
  ASSERT_EQ(ad_bus_options_init(&o, &err), AD_EINVAL);
  ASSERT(strstr(err.message, "ad_bus_options_t.struct_size") != NULL);
  ASSERT(ad_bus_new(&o, &err) == NULL);
  ASSERT_EQ(err.code, AD_EINVAL);
  ASSERT(strstr(err.message, "ad_bus_options_t.struct_size") != NULL);

  struct { ad_bus_options_t o; uint64_t future; } big;
  memset(&big, 0xff, sizeof big);
  big.o.struct_size = sizeof big;
  ASSERT_EQ(ad_bus_options_init(&big.o, NULL), 0);
  ASSERT_EQ(big.o.struct_size, sizeof big);
  ASSERT_EQ(big.o.workers, 2);
  ASSERT_EQ(big.future, 0u); /* unknown to the library: zeroed */
  big.o.workers = 0;
  ad_bus_t *bus = ad_bus_new(&big.o, &err);
  ASSERT(bus != NULL);
  ad_bus_stats_t st = {0};
  ASSERT_EQ(ad_bus_stats(bus, &st, &err), AD_EINVAL);
  ASSERT(strstr(err.message, "ad_bus_stats_t.struct_size") != NULL);
  st.struct_size = sizeof st;
  ASSERT_EQ(ad_bus_stats(bus, &st, &err), 0);
  ASSERT_EQ(st.struct_size, sizeof st);
  ad_bus_destroy(&bus);
  big.future = 1; /* a newer caller set a field this library lacks */
  ASSERT(ad_bus_new(&big.o, &err) == NULL);
  ASSERT(strstr(err.message, "ad_bus_options_t.struct_size") != NULL);
}

TEST(decoder_and_notify_stats_struct_size)
{
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
  ASSERT(d != NULL);
  ad_error_t err;
  ad_decoder_stats_t st = {0};
  st.frames = 42;
  ASSERT_EQ(ad_decoder_stats(d, &st, &err), AD_EINVAL);
  ASSERT(strstr(err.message, "ad_decoder_stats_t.struct_size") != NULL);
  ASSERT_EQ(st.frames, 42u);
  st.struct_size = sizeof st;
  ASSERT_EQ(ad_decoder_stats(d, &st, &err), 0);
  ASSERT_EQ(st.frames, 0u);
  ad_decoder_destroy(&d);

  ad_notifier_t *n = ad_notifier_new(
      "{\"channels\": [{\"type\": \"webhook\", \"url\": \"http://127.0.0.1:9/x\"}]}",
      &err);
  ASSERT(n != NULL);
  ad_notify_stats_t ns = {0};
  ASSERT_EQ(ad_notify_stats(n, -1, &ns, &err), AD_EINVAL);
  ASSERT(strstr(err.message, "ad_notify_stats_t.struct_size") != NULL);
  ns.struct_size = sizeof ns;
  ASSERT_EQ(ad_notify_stats(n, 0, &ns, &err), 0);
  ASSERT_EQ(ad_notify_stats(n, 1, &ns, &err), AD_ENOTFOUND);
  ASSERT_EQ(err.code, AD_ENOTFOUND);
  ad_notifier_destroy(&n);
}

RUN(CASE(old_caller_gets_defaults_for_new_fields),
    CASE(old_caller_is_not_written_past_its_size),
    CASE(new_caller_with_old_library), CASE(zero_or_short_struct_size_is_refused),
    CASE(bus_options_struct_size), CASE(decoder_and_notify_stats_struct_size))
