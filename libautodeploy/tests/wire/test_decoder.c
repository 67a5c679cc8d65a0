/* test_decoder.c - frame decoder: framings, key order, partial input,
 * oversized and malformed frames, resync. Real-master fixtures are in
 * test_fixtures.c. */
#include <msgpack.h>

#include "autodeploy.h"
#include "harness.h"

/* Build one Salt frame into sb. order 0: head first; 1: body first.
 * as_str: body as str instead of bin. prefix: 4-byte length first. */
static void frame(msgpack_sbuffer *sb, const char *tag, int order, int as_str,
                  int prefix, int nitems)
{
  msgpack_sbuffer data, fr;
  msgpack_packer pk;
  msgpack_sbuffer_init(&data);
  msgpack_packer_init(&pk, &data, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str_with_body(&pk, "id", 2);
  msgpack_pack_str_with_body(&pk, "minion-1", 8);
  msgpack_pack_str_with_body(&pk, "items", 5);
  msgpack_pack_array(&pk, nitems);
  for (int i = 0; i < nitems; i++)
    msgpack_pack_int(&pk, i);

  size_t body_len = strlen(tag) + 2 + data.size;
  msgpack_sbuffer_init(&fr);
  msgpack_packer_init(&pk, &fr, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  for (int k = 0; k < 2; k++) {
    if ((k == 0) == (order == 0)) {
      msgpack_pack_str_with_body(&pk, "head", 4);
      msgpack_pack_map(&pk, 0);
    } else {
      msgpack_pack_str_with_body(&pk, "body", 4);
      if (as_str)
        msgpack_pack_str(&pk, body_len);
      else
        msgpack_pack_bin(&pk, body_len);
      msgpack_sbuffer_write(&fr, tag, strlen(tag));
      msgpack_sbuffer_write(&fr, "\n\n", 2);
      msgpack_sbuffer_write(&fr, data.data, data.size);
    }
  }
  if (prefix) {
    unsigned char l[4] = {(unsigned char)(fr.size >> 24), (unsigned char)(fr.size >> 16),
                          (unsigned char)(fr.size >> 8), (unsigned char)fr.size};
    msgpack_sbuffer_write(sb, (char *)l, 4);
  }
  msgpack_sbuffer_write(sb, fr.data, fr.size);
  msgpack_sbuffer_destroy(&data);
  msgpack_sbuffer_destroy(&fr);
}

/* Feed `len` bytes `step` at a time; collect tags joined by ','. */
static int drain(ad_decoder_t *d, const char *buf, size_t len, size_t step,
                 char *tags, size_t tags_size, int *errors)
{
  int frames = 0;
  tags[0] = '\0';
  *errors = 0;
  for (size_t off = 0; off < len || 1;) {
    ad_frame_t f;
    ad_error_t err;
    int rc;
    while ((rc = ad_decoder_next(d, &f, &err)) != 0) {
      if (rc < 0) {
        (*errors)++;
        continue;
      }
      frames++;
      strncat(tags, f.tag, f.tag_len < tags_size - strlen(tags) - 2 ? f.tag_len : 0);
      strcat(tags, ",");
    }
    if (off >= len)
      break;
    size_t n = len - off < step ? len - off : step;
    ad_decoder_feed(d, buf + off, n);
    off += n;
  }
  return frames;
}

TEST(raw_and_length_framings_are_detected)
{
  for (int prefix = 0; prefix < 2; prefix++) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    frame(&sb, "salt/job/1/new", 0, 0, prefix, 3);
    frame(&sb, "salt/job/1/ret/m1", 0, 0, prefix, 3);
    ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
    char tags[256];
    int errors;
    ASSERT_EQ(drain(d, sb.data, sb.size, sb.size, tags, sizeof tags, &errors), 2);
    ASSERT_EQ(errors, 0);
    ASSERT_STR(tags, "salt/job/1/new,salt/job/1/ret/m1,");
    ASSERT_EQ(ad_decoder_framing(d), prefix ? AD_FRAMING_LENGTH : AD_FRAMING_RAW);
    ad_decoder_destroy(&d);
    ASSERT(d == NULL);
    msgpack_sbuffer_destroy(&sb);
  }
}

TEST(key_order_and_str_body)
{
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  frame(&sb, "a/b", 1, 1, 0, 1); /* body first, body as str */
  frame(&sb, "c/d", 1, 0, 0, 1);
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
  char tags[256];
  int errors;
  ASSERT_EQ(drain(d, sb.data, sb.size, sb.size, tags, sizeof tags, &errors), 2);
  ASSERT_STR(tags, "a/b,c/d,");
  ad_decoder_destroy(&d);
  msgpack_sbuffer_destroy(&sb);
}

TEST(byte_at_a_time)
{
  for (int prefix = 0; prefix < 2; prefix++) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < 5; i++)
      frame(&sb, "t/x", i & 1, 0, prefix, 40);
    ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
    char tags[256];
    int errors;
    ASSERT_EQ(drain(d, sb.data, sb.size, 1, tags, sizeof tags, &errors), 5);
    ASSERT_EQ(errors, 0);
    ASSERT_EQ(ad_decoder_buffered(d), 0);
    ad_decoder_destroy(&d);
    msgpack_sbuffer_destroy(&sb);
  }
}

TEST(data_split_at_first_blank_line)
{
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  frame(&sb, "x", 0, 0, 0, 0);
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_RAW, NULL);
  ad_decoder_feed(d, sb.data, sb.size);
  ad_frame_t f;
  ASSERT_EQ(ad_decoder_next(d, &f, NULL), 1);
  ASSERT_MEM(f.tag, f.tag_len, "x");
  ASSERT_EQ((unsigned char)f.data[0], 0x82); /* the data map */
  ASSERT_EQ(f.body_len, f.tag_len + 2 + f.data_len);
  ASSERT_EQ(f.wire_len, sb.size);
  ad_event_t *ev = ad_event_parse(f.body, f.body_len, NULL);
  ASSERT(ev != NULL);
  const char *s;
  size_t n;
  ASSERT_EQ(ad_event_get_str(ev, "id", &s, &n), 0);
  ASSERT_MEM(s, n, "minion-1");
  ad_event_destroy(&ev);
  ad_decoder_destroy(&d);
  msgpack_sbuffer_destroy(&sb);
}

TEST(oversized_frames_are_skipped_unbuffered)
{
  for (int prefix = 0; prefix < 2; prefix++) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    frame(&sb, "small/1", 0, 0, prefix, 2);
    frame(&sb, "big/1", prefix, 0, prefix, 100000); /* ~300 KB */
    frame(&sb, "small/2", 0, 0, prefix, 2);
    ad_decoder_t *d = ad_decoder_new(4096, AD_FRAMING_AUTO, NULL);
    char tags[256];
    int errors;
    ASSERT_EQ(drain(d, sb.data, sb.size, 7000, tags, sizeof tags, &errors), 2);
    ASSERT_STR(tags, "small/1,small/2,");
    ASSERT_EQ(errors, 1);
    ad_decoder_stats_t st = {.struct_size = sizeof st};
    ad_decoder_stats(d, &st, NULL);
    ASSERT_EQ(st.oversized, 1);
    ASSERT_EQ(st.bytes, sb.size);
    ad_decoder_destroy(&d);
    msgpack_sbuffer_destroy(&sb);
  }
}

TEST(garbage_between_frames_resyncs_raw)
{
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  frame(&sb, "one", 0, 0, 0, 2);
  msgpack_sbuffer_write(&sb, "\xc1\xc1garbage\x82\x01", 11);
  frame(&sb, "two", 0, 0, 0, 2);
  frame(&sb, "three", 1, 0, 0, 2);
  for (size_t step = 1; step <= sb.size; step += 13) {
    ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
    char tags[256];
    int errors;
    ASSERT_EQ(drain(d, sb.data, sb.size, step, tags, sizeof tags, &errors), 3);
    ASSERT_STR(tags, "one,two,three,");
    ASSERT(errors >= 1);
    ad_decoder_destroy(&d);
  }
  msgpack_sbuffer_destroy(&sb);
}

TEST(malformed_length_frame_is_skipped_by_length)
{
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  frame(&sb, "one", 0, 0, 1, 2);
  /* a length-framed map with no body key */
  msgpack_sbuffer_write(&sb, "\x00\x00\x00\x07\x81\xa4head\x80", 11);
  frame(&sb, "two", 0, 0, 1, 2);
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
  char tags[256];
  int errors;
  ASSERT_EQ(drain(d, sb.data, sb.size, 5, tags, sizeof tags, &errors), 2);
  ASSERT_STR(tags, "one,two,");
  ASSERT_EQ(errors, 1);
  ad_decoder_destroy(&d);
  msgpack_sbuffer_destroy(&sb);
}

/* A valid frame whose map takes exactly `size` bytes: body as bin32, data
 * {"x": bin32 filler}. */
static void frame_of_size(msgpack_sbuffer *sb, const char *tag, size_t size,
                          int prefix)
{
  size_t body_len = size - 17, tag_len = strlen(tag);
  size_t fill = body_len - tag_len - 2 - 8;
  unsigned char hdr[4 + 17];
  unsigned char *h = hdr + 4;
  memcpy(h, "\x82\xa4head\x80\xa4" "body\xc6", 13);
  for (int i = 0; i < 4; i++) {
    hdr[i] = (unsigned char)(size >> (24 - 8 * i));
    h[13 + i] = (unsigned char)(body_len >> (24 - 8 * i));
  }
  if (prefix)
    msgpack_sbuffer_write(sb, (char *)hdr, 4);
  msgpack_sbuffer_write(sb, (char *)h, 17);
  msgpack_sbuffer_write(sb, tag, tag_len);
  unsigned char data[8] = {0x81, 0xa1, 'x', 0xc6, (unsigned char)(fill >> 24),
                           (unsigned char)(fill >> 16), (unsigned char)(fill >> 8),
                           (unsigned char)fill};
  msgpack_sbuffer_write(sb, "\n\n", 2);
  msgpack_sbuffer_write(sb, (char *)data, 8);
  for (size_t i = 0; i < fill; i++)
    msgpack_sbuffer_write(sb, "f", 1);
}

/* Content with a correct 4-byte length in front of it. */
static void prefixed(msgpack_sbuffer *sb, const char *content, size_t n)
{
  unsigned char l[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                        (unsigned char)(n >> 8), (unsigned char)n};
  msgpack_sbuffer_write(sb, (char *)l, 4);
  if (n)
    msgpack_sbuffer_write(sb, content, n);
}

#define PREFIXED(sb, lit) prefixed((sb), (lit), sizeof(lit) - 1)

/* Every kind of garbage a broken proxy or another Salt could put inside a
 * sane length prefix: each is skipped by its length (no scanning), counted,
 * and every valid frame around it comes through in order. */
TEST(prefixed_garbage_is_skipped_by_length)
{
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  frame(&sb, "v/0", 0, 0, 1, 2);
  /* not a map: text whose bytes read as huge lengths ("host" = 1752134260) */
  PREFIXED(&sb, "hostname: web-1\n\x82\xa4head\x00\x00\x00\x09");
  frame(&sb, "v/1", 0, 0, 1, 2);
  PREFIXED(&sb, "\xa5hello");                          /* a str, not a map */
  frame(&sb, "v/2", 1, 0, 1, 2);
  PREFIXED(&sb, "\x81\xa3" "foo\x01");                 /* no head, no body */
  frame(&sb, "v/3", 0, 1, 1, 2);
  PREFIXED(&sb, "\x81\xa4head\x80");                   /* head only */
  frame(&sb, "v/4", 0, 0, 1, 2);
  PREFIXED(&sb, "\x82\xa4head\x80\xa4" "body\xc5\x01\x00" "abc"); /* truncated */
  frame(&sb, "v/5", 0, 0, 1, 2);
  PREFIXED(&sb, "\x82\xa4head\x80\xa4" "body\x2a");    /* body is an int */
  frame(&sb, "v/6", 0, 0, 1, 2);
  PREFIXED(&sb, "\x82\x01\x02\x03\x04");               /* keys are ints */
  frame(&sb, "v/7", 0, 0, 1, 2);
  prefixed(&sb, "", 0);                                /* zero-length */
  frame(&sb, "v/8", 0, 0, 1, 2);
  PREFIXED(&sb, "\x82\xa4head\x80\xa4" "body\xc4\x03" "abc"); /* no \n\n */
  frame(&sb, "v/9", 0, 0, 1, 2);
  PREFIXED(&sb, "\x82\xa4head\x80\xa4" "body\xc4\x03" "a\n\n" "\xc1\xc1"); /* tail */
  frame_of_size(&sb, "max/exact", 2048, 1);
  frame_of_size(&sb, "max/over", 2049, 1);
  frame(&sb, "v/10", 0, 0, 1, 2);
  const int bad = 10;
  const char *want = "v/0,v/1,v/2,v/3,v/4,v/5,v/6,v/7,v/8,v/9,max/exact,v/10,";
  size_t steps[] = {1, 7, 4096, sb.size};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    ad_decoder_t *d = ad_decoder_new(2048, AD_FRAMING_AUTO, NULL);
    char tags[512];
    int errors;
    ASSERT_EQ(drain(d, sb.data, sb.size, steps[i], tags, sizeof tags, &errors), 12);
    ASSERT_STR(tags, want);
    ASSERT_EQ(errors, bad + 1);
    ad_decoder_stats_t st = {.struct_size = sizeof st};
    ad_decoder_stats(d, &st, NULL);
    ASSERT_EQ(st.frames, 12);
    ASSERT_EQ(st.bad_frames, bad);
    ASSERT_EQ(st.oversized, 1);
    ASSERT_EQ(st.resyncs, 0); /* skipped by length, never scanned */
    ASSERT_EQ(st.bytes, sb.size);
    ASSERT_EQ(ad_decoder_buffered(d), 0);
    ad_decoder_destroy(&d);
  }
  msgpack_sbuffer_destroy(&sb);
}

/* An impossible prefix (over max_frame, no frame after it) is the one case
 * that scans. The bytes it lands on are not trusted as a length until a
 * frame signature is found again: "\0\0\x10\0" in the garbage would
 * otherwise swallow the 4 KB that follow, valid frames included. */
TEST(impossible_prefix_resyncs_on_the_next_frame)
{
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  frame(&sb, "v/0", 0, 0, 1, 2);
  /* reading 1 byte at a time, the scan keeps the last 5 bytes of the first
   * 10 it sees: exactly the sane-looking "\0\0\x10\0" */
  msgpack_sbuffer_write(&sb, "\xff\xff\xff\xffj\x00\x00\x10\x00xyz", 12);
  for (int i = 1; i <= 3; i++) {
    char tag[8];
    snprintf(tag, sizeof tag, "v/%d", i);
    frame(&sb, tag, 0, 0, 1, 200);
  }
  size_t steps[] = {1, 7, 4096, sb.size};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    ad_decoder_t *d = ad_decoder_new(8192, AD_FRAMING_AUTO, NULL);
    char tags[256];
    int errors;
    ASSERT_EQ(drain(d, sb.data, sb.size, steps[i], tags, sizeof tags, &errors), 4);
    ASSERT_STR(tags, "v/0,v/1,v/2,v/3,");
    ASSERT(errors >= 1);
    ad_decoder_stats_t st = {.struct_size = sizeof st};
    ad_decoder_stats(d, &st, NULL);
    ASSERT(st.resyncs >= 1);
    ASSERT_EQ(st.oversized, 0);
    ASSERT_EQ(st.bytes, sb.size);
    ad_decoder_destroy(&d);
  }
  msgpack_sbuffer_destroy(&sb);
}

TEST(body_without_separator_is_an_error)
{
  const char bad[] = "\x82\xa4head\x80\xa4" "body\xc4\x03" "abc";
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_sbuffer_write(&sb, bad, sizeof(bad) - 1);
  frame(&sb, "next", 0, 0, 0, 1);
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
  ad_decoder_feed(d, sb.data, sb.size);
  ad_frame_t f;
  ad_error_t err;
  ASSERT_EQ(ad_decoder_next(d, &f, &err), AD_EFRAME);
  ASSERT(strstr(err.message, "\\n\\n") != NULL);
  ASSERT_EQ(ad_decoder_next(d, &f, &err), 1);
  ASSERT_MEM(f.tag, f.tag_len, "next");
  ad_decoder_destroy(&d);
  msgpack_sbuffer_destroy(&sb);
}

TEST(bad_first_byte_resyncs)
{
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_sbuffer_write(&sb, "HTTP/1.1 200", 12);
  frame(&sb, "after", 0, 0, 0, 1);
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
  char tags[64];
  int errors;
  ASSERT_EQ(drain(d, sb.data, sb.size, 3, tags, sizeof tags, &errors), 1);
  ASSERT_STR(tags, "after,");
  ASSERT(errors >= 1);
  ad_decoder_destroy(&d);
  msgpack_sbuffer_destroy(&sb);
}

TEST(buffer_stays_bounded_on_endless_garbage)
{
  ad_decoder_t *d = ad_decoder_new(1024, AD_FRAMING_RAW, NULL);
  char junk[4096];
  memset(junk, 0x82, sizeof junk); /* looks like fixmap headers forever */
  for (int i = 0; i < 1000; i++) {
    ad_decoder_feed(d, junk, sizeof junk);
    ad_frame_t f;
    while (ad_decoder_next(d, &f, NULL) != 0)
      ;
    ASSERT(ad_decoder_buffered(d) <= 1024 + 4 + 65536);
  }
  ad_decoder_destroy(&d);
}

TEST(reset_forgets_framing)
{
  msgpack_sbuffer sb, raw;
  msgpack_sbuffer_init(&sb);
  msgpack_sbuffer_init(&raw);
  frame(&sb, "a", 0, 0, 1, 1);
  frame(&sb, "b", 0, 0, 1, 1);
  frame(&raw, "c", 0, 0, 0, 1);
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
  /* detect the length framing on one whole frame, with half of the next
   * one still buffered */
  size_t first = sb.size / 2;
  ad_decoder_feed(d, sb.data, first + 3);
  ad_frame_t f;
  ASSERT_EQ(ad_decoder_next(d, &f, NULL), 1);
  ASSERT_MEM(f.tag, f.tag_len, "a");
  ASSERT_EQ(ad_decoder_framing(d), AD_FRAMING_LENGTH);
  ASSERT_EQ(ad_decoder_buffered(d), 3);
  ad_decoder_reset(d); /* a reconnect, to a master that sends bare maps */
  ASSERT_EQ(ad_decoder_framing(d), AD_FRAMING_AUTO);
  ASSERT_EQ(ad_decoder_buffered(d), 0);
  /* a kept framing or kept bytes would misread this bare map */
  ad_decoder_feed(d, raw.data, raw.size);
  ad_error_t err;
  ASSERT_EQ(ad_decoder_next(d, &f, &err), 1);
  ASSERT_MEM(f.tag, f.tag_len, "c");
  ASSERT_EQ(ad_decoder_framing(d), AD_FRAMING_RAW);
  ad_decoder_stats_t st = {.struct_size = sizeof st};
  ad_decoder_stats(d, &st, NULL);
  ASSERT_EQ(st.bad_frames, 0);
  ad_decoder_destroy(&d);
  ad_decoder_destroy(&d); /* NULL-safe */
  msgpack_sbuffer_destroy(&sb);
  msgpack_sbuffer_destroy(&raw);
}

RUN(CASE(raw_and_length_framings_are_detected), CASE(key_order_and_str_body),
    CASE(byte_at_a_time), CASE(data_split_at_first_blank_line),
    CASE(oversized_frames_are_skipped_unbuffered),
    CASE(garbage_between_frames_resyncs_raw),
    CASE(malformed_length_frame_is_skipped_by_length),
    CASE(prefixed_garbage_is_skipped_by_length),
    CASE(impossible_prefix_resyncs_on_the_next_frame),
    CASE(body_without_separator_is_an_error), CASE(bad_first_byte_resyncs),
    CASE(buffer_stays_bounded_on_endless_garbage), CASE(reset_forgets_framing))
