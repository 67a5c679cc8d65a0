/* test_fixtures.c - the decoder against byte streams captured from real
 * Salt 3006.29 and 3008.4 masters (tests/data/salt3006, salt3008). Every frame's tag,
 * wire size and data must match what Salt's own Python decoding gave
 * (the .json sidecars, conventions in tests/data/FRAMING.md), whatever
 * size the reads come in. The fire framing must equal Salt's bytes. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>

#include "autodeploy.h"
#include "bus/bus_private.h"
#include "harness.h"

static int b64val(int c)
{
  const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const char *p = c ? strchr(a, c) : NULL;
  return p ? (int)(p - a) : -1;
}

/* Decode base64 into out; returns length or -1. */
static long unb64(const char *s, unsigned char *out, size_t cap)
{
  size_t n = 0;
  int acc = 0, bits = 0;
  for (; *s && *s != '='; s++) {
    int v = b64val(*s);
    if (v < 0)
      return -1;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n >= cap)
        return -1;
      out[n++] = (unsigned char)(acc >> bits);
      acc &= (1 << bits) - 1;
    }
  }
  return (long)n;
}

static char why[512];

static int match(const ad_value_t *v, json_t *j, const char *path);

static int match_bin(const ad_value_t *v, const char *b64, const char *path)
{
  unsigned char buf[1 << 16];
  long n = unb64(b64, buf, sizeof buf);
  const char *s;
  size_t len;
  if (ad_value_type(v) != AD_VT_BIN || ad_value_str(v, &s, &len) ||
      n != (long)len || memcmp(s, buf, len)) {
    snprintf(why, sizeof why, "%s: bin differs", path);
    return 0;
  }
  return 1;
}

static int match(const ad_value_t *v, json_t *j, const char *path)
{
  char sub[400];
  ad_vtype_t t = ad_value_type(v);
  if (json_is_object(j) && json_object_size(j) == 1 && json_object_get(j, "$bin"))
    return match_bin(v, json_string_value(json_object_get(j, "$bin")), path);
  if (json_is_object(j) && json_object_size(j) == 1 && json_object_get(j, "$const")) {
    char text[128];
    json_t *pair = json_object_get(j, "$const");
    if (t != AD_VT_EXT || ad_value_text(v, text, sizeof text) < 0 ||
        strcmp(text, json_string_value(json_array_get(pair, 0)))) {
      snprintf(why, sizeof why, "%s: expected constant", path);
      return 0;
    }
    return 1;
  }
  if (json_is_object(j) && json_object_size(j) == 1 && json_object_get(j, "$map")) {
    json_t *pairs = json_object_get(j, "$map");
    if (t != AD_VT_MAP || ad_value_len(v) != json_array_size(pairs)) {
      snprintf(why, sizeof why, "%s: map size", path);
      return 0;
    }
    for (size_t i = 0; i < json_array_size(pairs); i++) {
      const ad_value_t *k, *val;
      json_t *pr = json_array_get(pairs, i);
      ad_value_pair(v, i, &k, &val);
      snprintf(sub, sizeof sub, "%s:<key %zu>", path, i);
      if (!match(k, json_array_get(pr, 0), sub))
        return 0;
      snprintf(sub, sizeof sub, "%s:<val %zu>", path, i);
      if (!match(val, json_array_get(pr, 1), sub))
        return 0;
    }
    return 1;
  }
  if (json_is_object(j)) {
    const char *key;
    json_t *jv;
    if (t != AD_VT_MAP || ad_value_len(v) != json_object_size(j)) {
      snprintf(why, sizeof why, "%s: map size %zu vs %zu", path,
               ad_value_len(v), json_object_size(j));
      return 0;
    }
    json_object_foreach(j, key, jv) {
      const ad_value_t *c = ad_value_get(v, key, (size_t)-1);
      snprintf(sub, sizeof sub, "%.200s:%.150s", path, key);
      if (!c) {
        snprintf(why, sizeof why, "%s: missing", sub);
        return 0;
      }
      if (!match(c, jv, sub))
        return 0;
    }
    return 1;
  }
  if (json_is_array(j)) {
    if (t != AD_VT_ARRAY || ad_value_len(v) != json_array_size(j)) {
      snprintf(why, sizeof why, "%s: array size", path);
      return 0;
    }
    for (size_t i = 0; i < json_array_size(j); i++) {
      snprintf(sub, sizeof sub, "%.300s:%zu", path, i);
      if (!match(ad_value_at(v, i), json_array_get(j, i), sub))
        return 0;
    }
    return 1;
  }
  if (json_is_string(j)) {
    const char *s;
    size_t n;
    char iso[40];
    if (t == AD_VT_STR && ad_value_str(v, &s, &n) == 0 &&
        n == json_string_length(j) && memcmp(s, json_string_value(j), n) == 0)
      return 1;
    if (t == AD_VT_EXT && ad_value_datetime(v, iso, sizeof iso) == 0 &&
        strcmp(iso, json_string_value(j)) == 0)
      return 1;
    snprintf(why, sizeof why, "%s: string differs (want %.80s)", path,
             json_string_value(j));
    return 0;
  }
  if (json_is_number(j)) {
    double d;
    if (t == AD_VT_UINT) {
      /* above INT64_MAX: compare through double like the sidecar did */
      d = 0;
      ad_value_double(v, &d);
    } else if (ad_value_double(v, &d) != 0) {
      snprintf(why, sizeof why, "%s: not a number", path);
      return 0;
    }
    if (d != json_number_value(j)) {
      snprintf(why, sizeof why, "%s: %g vs %g", path, d, json_number_value(j));
      return 0;
    }
    return 1;
  }
  if (json_is_boolean(j)) {
    int b;
    if (ad_value_bool(v, &b) == 0 && b == json_is_true(j))
      return 1;
    snprintf(why, sizeof why, "%s: bool", path);
    return 0;
  }
  if (json_is_null(j) && t == AD_VT_NIL)
    return 1;
  snprintf(why, sizeof why, "%s: type %d", path, (int)t);
  return 0;
}

/* Check one capture; returns frames checked or -1 (why says what). */
static int check_case(const char *dir, const char *name, size_t step)
{
  char path[512];
  size_t blen, jlen;
  snprintf(path, sizeof path, "%s/%s.bin", dir, name);
  char *bin = h_slurp(path, &blen);
  snprintf(path, sizeof path, "%s/%s.json", dir, name);
  char *js = h_slurp(path, &jlen);
  json_error_t je;
  json_t *side = js ? json_loads(js, JSON_DECODE_INT_AS_REAL, &je) : NULL;
  free(js);
  if (!bin || !side) {
    snprintf(why, sizeof why, "%s/%s: fixture missing or bad JSON", dir, name);
    free(bin);
    json_decref(side);
    return -1;
  }
  int want_len = strstr(json_string_value(json_object_get(side, "framing")), "length") != NULL;
  json_t *frames = json_object_get(side, "frames");
  ad_decoder_t *d = ad_decoder_new(1 << 20, AD_FRAMING_AUTO, NULL);
  size_t idx = 0, off = 0;
  int bad = 0;
  while (!bad) {
    ad_frame_t f;
    ad_error_t err;
    int rc;
    while (!bad && (rc = ad_decoder_next(d, &f, &err)) != 0) {
      json_t *jf = json_array_get(frames, idx);
      if (rc < 0 || !jf) {
        snprintf(why, sizeof why, "%s/%s frame %zu: %s", dir, name, idx,
                 rc < 0 ? err.message : "more frames than the sidecar");
        bad = 1;
        break;
      }
      const char *tag = json_string_value(json_object_get(jf, "tag"));
      if (f.tag_len != strlen(tag) || memcmp(f.tag, tag, f.tag_len) ||
          (json_int_t)f.wire_len != (json_int_t)json_number_value(json_object_get(jf, "size"))) {
        snprintf(why, sizeof why, "%s/%s frame %zu: tag/size differ", dir, name, idx);
        bad = 1;
        break;
      }
      ad_event_t *ev = ad_event_parse(f.body, f.body_len, &err);
      const ad_value_t *v = ev ? ad_event_data(ev, &err) : NULL;
      char where[300];
      snprintf(where, sizeof where, "%s/%s#%zu %s", dir, name, idx, tag);
      if (!v) {
        snprintf(why, sizeof why, "%s: %s", where, err.message);
        bad = 1;
      } else if (!match(v, json_object_get(jf, "data"), where)) {
        bad = 1;
      } else {
        /* JSON conversion must succeed on every real event too */
        char *out = ad_event_to_json_text(ev, 0, &err);
        if (!out) {
          snprintf(why, sizeof why, "%s: to_json: %s", where, err.message);
          bad = 1;
        }
        free(out);
      }
      ad_event_destroy(&ev);
      idx++;
    }
    if (bad || off >= blen)
      break;
    size_t n = blen - off < step ? blen - off : step;
    ad_decoder_feed(d, bin + off, n);
    off += n;
  }
  if (!bad && idx != json_array_size(frames)) {
    snprintf(why, sizeof why, "%s/%s: %zu of %zu frames", dir, name, idx,
             json_array_size(frames));
    bad = 1;
  }
  if (!bad && (ad_decoder_framing(d) == AD_FRAMING_LENGTH) != want_len) {
    snprintf(why, sizeof why, "%s/%s: framing detected wrong", dir, name);
    bad = 1;
  }
  ad_decoder_destroy(&d);
  free(bin);
  json_decref(side);
  return bad ? -1 : (int)idx;
}

static int check_version(const char *ver)
{
  char dir[256];
  snprintf(dir, sizeof dir, "%s/%s", h_data_dir(), ver);
  DIR *dh = opendir(dir);
  if (!dh) {
    snprintf(why, sizeof why, "no fixture dir %s", dir);
    return -1;
  }
  int total = 0, cases = 0;
  struct dirent *e;
  while ((e = readdir(dh))) {
    size_t n = strlen(e->d_name);
    if (n < 5 || strcmp(e->d_name + n - 4, ".bin"))
      continue;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(n - 4), e->d_name);
    static const size_t steps[] = {1, 7, 4096, 1 << 30};
    for (size_t s = 0; s < 4; s++) {
      int got = check_case(dir, name, steps[s]);
      if (got < 0) {
        closedir(dh);
        return -1;
      }
      total += got;
    }
    cases++;
  }
  closedir(dh);
  fprintf(stderr, "  %s: %d cases, %d frames checked\n", ver, cases, total / 4);
  return cases >= 8 ? 0 : -1;
}

TEST(salt3006_frames_match_salt)
{
  int rc = check_version("salt3006");
  if (rc)
    fprintf(stderr, "  %s\n", why);
  ASSERT_EQ(rc, 0);
}

TEST(salt3008_frames_match_salt)
{
  int rc = check_version("salt3008");
  if (rc)
    fprintf(stderr, "  %s\n", why);
  ASSERT_EQ(rc, 0);
}

/* What Salt wrote into master_event_pull.ipc, we write byte for byte. */
static void fire_matches(const char *ver)
{
  char path[512];
  size_t blen;
  snprintf(path, sizeof path, "%s/%s/pull_fire.bin", h_data_dir(), ver);
  char *bin = h_slurp(path, &blen);
  ASSERT(bin != NULL);
  ad_decoder_t *d = ad_decoder_new(0, AD_FRAMING_AUTO, NULL);
  ad_decoder_feed(d, bin, blen);
  ad_frame_t f;
  size_t off = 0;
  int n = 0;
  while (ad_decoder_next(d, &f, NULL) == 1) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    ASSERT_EQ(ad__fire_frame(&sb, AD_FRAMING_LENGTH, f.tag, f.tag_len, f.data,
                             f.data_len), 0);
    ASSERT_EQ(sb.size, f.wire_len);
    ASSERT(memcmp(sb.data, bin + off, sb.size) == 0);
    off += f.wire_len;
    msgpack_sbuffer_destroy(&sb);
    n++;
  }
  ASSERT(n >= 1);
  ASSERT_EQ(off, blen);
  ad_decoder_destroy(&d);
  free(bin);
}

TEST(fire_bytes_equal_salt_3006) { fire_matches("salt3006"); }
TEST(fire_bytes_equal_salt_3008) { fire_matches("salt3008"); }

RUN(CASE(salt3006_frames_match_salt), CASE(salt3008_frames_match_salt),
    CASE(fire_bytes_equal_salt_3006), CASE(fire_bytes_equal_salt_3008))
