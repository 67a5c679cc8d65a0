/* fuzz_decoder.c - libFuzzer target for the frame decoder and event data
 * decoding. Each input runs twice:
 *  1. as arbitrary bytes, split into reads of varying size, through
 *     ad_decoder_next, ad_event_parse, ad_event_data, every accessor and
 *     the JSON conversion (must not crash, leak or overflow);
 *  2. as the recipe of a stream of valid frames (both framings) with
 *     garbage the decoder promises to survive between each pair: every
 *     valid frame must come out, in order, or the target aborts.
 * Seeded from the real-master captures (make fuzz). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autodeploy.h"

static void walk(const ad_value_t *v, int depth)
{
  char buf[64];
  const char *s;
  size_t n;
  int64_t i;
  double d;
  int b;
  ad_value_text(v, buf, sizeof buf);
  ad_value_str(v, &s, &n);
  ad_value_int(v, &i);
  ad_value_double(v, &d);
  ad_value_bool(v, &b);
  ad_value_datetime(v, buf, sizeof buf);
  if (depth > 64)
    return;
  for (size_t k = 0; k < ad_value_len(v); k++) {
    const ad_value_t *key, *val;
    if (ad_value_type(v) == AD_VT_ARRAY) {
      walk(ad_value_at(v, k), depth + 1);
    } else if (ad_value_pair(v, k, &key, &val) == 0) {
      walk(key, depth + 1);
      walk(val, depth + 1);
    }
  }
}

/* ---- 2. valid frames with garbage between ---------------------------- */

#define SMAX 512 /* max_frame of the structured pass */

typedef struct {
  const uint8_t *p;
  size_t n, off;
} src_t;

typedef struct {
  uint8_t *b;
  size_t len, cap;
} buf_t;

static uint8_t take(src_t *s) { return s->off < s->n ? s->p[s->off++] : 0; }

static void put(buf_t *b, const void *p, size_t n)
{
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *nb = realloc(b->b, cap);
    if (!nb)
      abort();
    b->b = nb;
    b->cap = cap;
  }
  memcpy(b->b + b->len, p, n);
  b->len += n;
}

static void put_u8(buf_t *b, uint8_t v) { put(b, &v, 1); }

static void put_be(buf_t *b, uint32_t v, int bytes)
{
  for (int i = bytes - 1; i >= 0; i--)
    put_u8(b, (uint8_t)(v >> (8 * i)));
}

/* n bytes from the input (zeros once it runs out), each through `fix`. */
static void put_src(buf_t *b, src_t *s, size_t n, uint8_t (*fix)(uint8_t))
{
  for (size_t i = 0; i < n; i++) {
    uint8_t v = take(s);
    put_u8(b, fix ? fix(v) : v);
  }
}

static int map_byte(uint8_t v) { return (v & 0xf0) == 0x80 || v == 0xde || v == 0xdf; }
static uint8_t no_map_byte(uint8_t v) { return map_byte(v) ? v ^ 0x40 : v; }
static uint8_t no_0x82(uint8_t v) { return v == 0x82 ? 0x83 : v; }

/* A valid Salt frame tagged "ad/fuzz/<i>" with up to 63 bytes of data from
 * the input; key order, body type and head vary. */
static void valid_frame(buf_t *out, src_t *s, int i, int prefixed)
{
  char tag[32];
  int tag_len = snprintf(tag, sizeof tag, "ad/fuzz/%d", i);
  uint8_t how = take(s);
  size_t data_len = take(s) % 64, body_len = (size_t)tag_len + 2 + data_len;
  buf_t m = {0};
  put_u8(&m, 0x82);
  for (int k = 0; k < 2; k++) {
    if ((k == 0) == !(how & 1)) {
      put(&m, "\xa4head", 5);
      if (how & 2)
        put(&m, "\x81\xa1k\x01", 4);
      else
        put_u8(&m, 0x80);
      continue;
    }
    put(&m, "\xa4" "body", 5);
    static const uint8_t types[] = {0xc4, 0xd9, 0xc5, 0xda, 0xc6, 0xdb};
    int t = (how >> 2) % 7;
    if (t == 6 && body_len < 32) {
      put_u8(&m, (uint8_t)(0xa0 | body_len));
    } else {
      t %= 6;
      put_u8(&m, types[t]);
      put_be(&m, (uint32_t)body_len, t < 2 ? 1 : t < 4 ? 2 : 4);
    }
    put(&m, tag, (size_t)tag_len);
    put(&m, "\n\n", 2);
    put_src(&m, s, data_len, NULL);
  }
  if (prefixed)
    put_be(out, (uint32_t)m.len, 4);
  put(out, m.b, m.len);
  free(m.b);
}

/* Garbage the decoder must step over without losing the next frame:
 *  length framing: a sane prefix with any content (skipped by length); an
 *    impossible prefix (first byte non-zero: over SMAX) then bytes without
 *    0x82 (no false signature to resync on); an oversized frame with its
 *    signature (skipped unbuffered);
 *  raw framing: bytes with no msgpack map header (resync); an oversized
 *    frame, body first or last (skipped unbuffered). */
static void garbage(buf_t *out, src_t *s, int prefixed)
{
  uint8_t kind = take(s);
  if (prefixed && kind % 3 == 0) {
    size_t n = ((size_t)take(s) << 8 | take(s)) % (SMAX + 1);
    put_be(out, (uint32_t)n, 4);
    put_src(out, s, n, NULL);
  } else if (prefixed && kind % 3 == 1) {
    put_u8(out, (uint8_t)(1 + take(s) % 255));
    put_src(out, s, take(s) % 32, no_0x82);
  } else if (prefixed) {
    size_t n = SMAX + 1 + take(s) % 512;
    put_be(out, (uint32_t)n, 4);
    put(out, "\x82\xa4head", 6);
    put_src(out, s, n - 6, NULL);
  } else if (kind % 2 == 0) {
    put_src(out, s, 1 + take(s) % 32, no_map_byte);
  } else {
    size_t n = SMAX + 1 + take(s) % 512;
    int body_first = take(s) & 1;
    put_u8(out, 0x82);
    if (!body_first)
      put(out, "\xa4head\x80", 6);
    put(out, "\xa4" "body\xc5", 6);
    put_be(out, (uint32_t)n, 2);
    put_src(out, s, n, NULL);
    if (body_first)
      put(out, "\xa4head\x80", 6);
  }
}

static void valid_frames_survive_garbage(const uint8_t *data, size_t size)
{
  src_t s = {data, size, 0};
  int prefixed = take(&s) & 1, nframes = 2 + take(&s) % 14;
  static const size_t steps[] = {1, 7, 4096, (size_t)-1};
  size_t step = steps[take(&s) % 4];
  buf_t st = {0};
  for (int i = 0; i < nframes; i++) {
    if (i > 0) /* the stream starts with a frame: AUTO detects framing */
      garbage(&st, &s, prefixed);
    valid_frame(&st, &s, i, prefixed);
  }
  ad_decoder_t *dec = ad_decoder_new(SMAX, AD_FRAMING_AUTO, NULL);
  if (!dec)
    abort();
  int next = 0; /* the valid frames must come out as a subsequence, in order */
  for (size_t off = 0;;) {
    ad_frame_t f;
    int rc;
    while ((rc = ad_decoder_next(dec, &f, NULL)) != 0) {
      char want[32];
      int n = snprintf(want, sizeof want, "ad/fuzz/%d", next);
      if (rc > 0 && next < nframes && f.tag_len == (size_t)n &&
          memcmp(f.tag, want, (size_t)n) == 0)
        next++;
    }
    if (off >= st.len)
      break;
    size_t n = st.len - off < step ? st.len - off : step;
    ad_decoder_feed(dec, st.b + off, n);
    off += n;
  }
  if (next != nframes)
    abort(); /* a valid frame was lost after garbage */
  ad_decoder_destroy(&dec);
  free(st.b);
}

/* ---- 1. arbitrary bytes ----------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  valid_frames_survive_garbage(data, size);
  size_t step = (size_t)(data[0] % 64) * 37 + 1; /* read sizes vary */
  ad_decoder_t *dec = ad_decoder_new(64 * 1024, AD_FRAMING_AUTO, NULL);
  size_t off = 1;
  for (;;) {
    ad_frame_t f;
    int rc;
    while ((rc = ad_decoder_next(dec, &f, NULL)) != 0) {
      if (rc < 0)
        continue;
      ad_event_t *ev = ad_event_parse(f.body, f.body_len, NULL);
      if (!ev)
        continue;
      const ad_value_t *v = ad_event_data(ev, NULL);
      if (v) {
        walk(v, 0);
        ad_event_find(ev, "return:retcode");
        ad_event_find(ev, "fun_args:0");
        free(ad_event_to_json_text(ev, 0, NULL));
      }
      ad_event_destroy(&ev);
    }
    if (off >= size)
      break;
    size_t n = size - off < step ? size - off : step;
    ad_decoder_feed(dec, data + off, n);
    off += n;
  }
  ad_decoder_destroy(&dec);
  return 0;
}
