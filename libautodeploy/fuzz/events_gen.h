/* events_gen.h - the event fuzz target's generator (fuzz_events.c, its only
 * user): the input read as choices, strings of the shapes handlers trip on,
 * the dictionary of field names, and msgpack and JSON values of any type.
 * Static functions: one translation unit includes it. */
#ifndef AD_FUZZ_EVENTS_GEN_H
#define AD_FUZZ_EVENTS_GEN_H

#include <jansson.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- the input, read as choices -------------------------------------------- */
/* A choice of 0 is the typical one, so that input which runs out (it reads
 * as zeros) still makes a complete, well-formed event. */

typedef struct {
  const uint8_t *p;
  size_t n;
} in_t;

static unsigned u8(in_t *in)
{
  if (!in->n)
    return 0;
  in->n--;
  return *in->p++;
}

static unsigned pick(in_t *in, unsigned k) { return k ? u8(in) % k : 0; }

static uint64_t u64(in_t *in)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | u8(in);
  return v;
}

/* Any string: bytes of the input, or one of the shapes handlers trip on. */
static size_t any_str(in_t *in, char *out, size_t size)
{
  static const char *const ODD[] = {"", "*", "?", "[", "[a-", "..", "../etc", "a/b", "\xff\xfe",
                                    "\xc3", "%s%n", " ", "\n\n", "\n", "a\nb", "\x7f"};
  unsigned how = pick(in, 8);
  size_t n = 0;
  if (how == 0) {
    snprintf(out, size, "%s", ODD[pick(in, sizeof ODD / sizeof ODD[0])]);
    return strlen(out);
  }
  if (how == 1) { /* long: any length up to 4 KiB, past every bound a handler has */
    n = (size_t)u8(in) * 16 + pick(in, 17);
    n = n < size - 1 ? n : size - 1;
    memset(out, 'a' + (int)pick(in, 26), n);
    out[n] = 0;
    return n;
  }
  n = pick(in, 24);
  for (size_t i = 0; i < n && in->n && i < size - 1; i++)
    out[i] = (char)u8(in);
  n = n < size - 1 ? n : size - 1;
  out[n] = 0;
  return n;
}

/* An id: mostly one of `known` (NULL-terminated), sometimes any string. */
static size_t id_of(in_t *in, const char *const *known, char *out, size_t size)
{
  size_t k = 0;
  while (known[k])
    k++;
  unsigned c = pick(in, (unsigned)k + 2);
  if (c < k) {
    snprintf(out, size, "%s", known[c]);
    return strlen(out);
  }
  return any_str(in, out, size);
}


/* The fields the handlers read (grep ad_event_get_* and the signed bodies'
 * keys), and a few that Salt sends. */
static const char *const FIELDS[] = {
    "id", "jid", "fun", "return", "retcode", "success", "metadata", "minions", "cmd", "body",
    "sig", "fun_args", "tgt", "tgt_type", "user", "arg", "_stamp", "present", "new", "lost",
    "act", "result", "1m", "5m", "15m", "memusage", "diskusage", "mount", "services", "state",
    "cpu", "mem_mb", "reason", "autodeploy_task", "step", "changes", "comment", "__id__",
    "duration", "out", "grains", "data", "pretag", "task_id", "action", "actor", "service",
    "at_ms", "order_id", "ok", "cloud_order_id", "error", "dry_run"};
#define NFIELDS (sizeof FIELDS / sizeof FIELDS[0])

/* ---- msgpack values -------------------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
  msgpack_pack_str_with_body(pk, s, n);
}


static void pack_any(msgpack_packer *pk, in_t *in, int depth)
{
  char s[512];
  unsigned t = pick(in, depth > 3 ? 11 : 14);
  switch (t) {
  case 0: msgpack_pack_nil(pk); break;
  case 1: u8(in) & 1 ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
  case 2: msgpack_pack_int64(pk, (int64_t)(int8_t)u8(in)); break;
  case 3: msgpack_pack_uint64(pk, u64(in)); break;
  case 4: msgpack_pack_int64(pk, (int64_t)u64(in)); break;
  case 5: {
    static const double D[] = {0.5, -1.0, 1e300, -1e300, 1e-320, 0.0 / 0.0, 1.0 / 0.0, -1.0 / 0.0, 100.0, 3.25};
    msgpack_pack_double(pk, D[pick(in, sizeof D / sizeof D[0])]);
    break;
  }
  case 6: msgpack_pack_float(pk, (float)(int8_t)u8(in) / 4.0f); break;
  case 7:
  case 8: {
    size_t n = any_str(in, s, sizeof s);
    pack_str(pk, s, n);
    break;
  }
  case 9: {
    size_t n = any_str(in, s, sizeof s);
    msgpack_pack_bin_with_body(pk, s, n);
    break;
  }
  case 10: { /* Salt's datetime (78) or constant (79), or another ext */
    static const char *const DT = "20261205T01:02:03.456789";
    unsigned e = pick(in, 3);
    if (e == 0) {
      msgpack_pack_ext_with_body(pk, DT, strlen(DT), 78);
    } else {
      size_t n = any_str(in, s, sizeof s);
      msgpack_pack_ext_with_body(pk, s, n, e == 1 ? 79 : (int8_t)u8(in));
    }
    break;
  }
  case 11:
  case 12: {
    unsigned k = pick(in, 5);
    msgpack_pack_array(pk, k);
    for (unsigned i = 0; i < k; i++)
      pack_any(pk, in, depth + 1);
    break;
  }
  default: {
    unsigned k = pick(in, 5);
    msgpack_pack_map(pk, k);
    for (unsigned i = 0; i < k; i++) {
      if (u8(in) % 4) {
        const char *f = FIELDS[pick(in, NFIELDS)];
        pack_str(pk, f, strlen(f));
      } else {
        pack_any(pk, in, depth + 1); /* any key: ints, bin, maps */
      }
      pack_any(pk, in, depth + 1);
    }
    break;
  }
  }
}

static json_t *json_any(in_t *in, int depth)
{
  char s[512];
  switch (pick(in, depth > 2 ? 6 : 8)) {
  case 0: return json_null();
  case 1: return json_boolean(u8(in) & 1);
  case 2: return json_integer((json_int_t)u64(in));
  case 3: return json_real((double)(int8_t)u8(in) / 8.0);
  case 4:
  case 5: {
    size_t n = any_str(in, s, sizeof s);
    json_t *v = json_stringn(s, n);
    return v ? v : json_string(""); /* not UTF-8: jansson will not hold it */
  }
  case 6: {
    json_t *a = json_array();
    for (unsigned i = pick(in, 4); i > 0; i--)
      json_array_append_new(a, json_any(in, depth + 1));
    return a;
  }
  default: {
    json_t *o = json_object();
    for (unsigned i = pick(in, 4); i > 0; i--)
      json_object_set_new(o, FIELDS[pick(in, NFIELDS)], json_any(in, depth + 1));
    return o;
  }
  }
}

#endif
