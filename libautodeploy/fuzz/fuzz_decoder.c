/* fuzz_decoder.c - libFuzzer target for the frame decoder and event data
 * decoding: arbitrary bytes, split into reads of varying size, through
 * ad_decoder_next, ad_event_parse, ad_event_data, every accessor and the
 * JSON conversion. Seeded from the real-master captures (make fuzz). */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
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
