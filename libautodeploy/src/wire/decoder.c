/*
 * decoder.c - streaming frame decoder for the Salt master event bus.
 *
 * Memory is bounded: the buffer never holds more than one frame of at most
 * max_frame bytes plus one read chunk. A frame whose declared size exceeds
 * max_frame is skipped as it streams past (it is never buffered). A
 * malformed frame is dropped, so one bad frame never costs the frames
 * after it:
 *  - length framing: a length prefix within max_frame says exactly where
 *    the next frame starts, so whatever it holds (not a map, a map without
 *    "body", truncated msgpack, nothing at all) is skipped by that length
 *    and counted in bad_frames, with no scanning. Only an impossible prefix
 *    (over max_frame and not followed by a frame signature) resynchronises
 *    by scanning for the next signature, and prefixes are not trusted
 *    again until one is found;
 *  - raw framing: the stream is resynchronised on the next frame signature.
 */
#include <stdlib.h>
#include <string.h>

#include "autodeploy/decoder.h"
#include "core/abi.h"
#include "core/error_private.h"
#include "wire/mpscan.h"

#define DEFAULT_MAX_FRAME ((size_t)64 << 20)
#define READ_SLACK ((size_t)64 << 10)
#define MAX_OUTER_KEYS 16

struct ad_decoder {
  char *buf;
  size_t cap, start, end; /* unread bytes are buf[start, end) */
  size_t max_frame, limit;
  ad_framing_t want, framing;
  uint64_t skip;          /* bytes of an oversized frame still to drop */
  uint32_t skip_entries;  /* outer-map pairs after an oversized body (raw) */
  size_t need;            /* raw: bytes the pending frame needs at least */
  int hunting;            /* length: resynchronising, prefixes untrusted */
  ad_decoder_stats_t st;
};

ad_decoder_t *ad_decoder_new(size_t max_frame, ad_framing_t framing,
                             ad_error_t *err)
{
  if (framing != AD_FRAMING_AUTO && framing != AD_FRAMING_RAW &&
      framing != AD_FRAMING_LENGTH) {
    ad__err(err, AD_EINVAL, "frame", "framing %d is not AUTO, RAW or LENGTH",
            (int)framing);
    return NULL;
  }
  ad_decoder_t *d = calloc(1, sizeof(*d));
  if (!d) {
    ad__err(err, AD_ENOMEM, "frame", "no memory for a decoder");
    return NULL;
  }
  d->max_frame = max_frame ? max_frame : DEFAULT_MAX_FRAME;
  d->limit = d->max_frame + 4 + READ_SLACK;
  d->want = d->framing = framing;
  return d;
}

void ad_decoder_destroy(ad_decoder_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  free((*self_p)->buf);
  free(*self_p);
  *self_p = NULL;
}

void ad_decoder_reset(ad_decoder_t *d)
{
  d->start = d->end = 0;
  d->skip = 0;
  d->skip_entries = 0;
  d->need = 0;
  d->hunting = 0;
  d->framing = d->want;
}

void *ad_decoder_reserve(ad_decoder_t *d, size_t want, size_t *cap)
{
  if (want == 0)
    want = 1;
  if (d->cap - d->end < want && d->start > 0) {
    memmove(d->buf, d->buf + d->start, d->end - d->start);
    d->end -= d->start;
    d->start = 0;
  }
  if (d->cap - d->end < want && d->cap < d->limit) {
    size_t ncap = d->cap ? d->cap : 4096;
    while (ncap - d->end < want && ncap < d->limit)
      ncap *= 2;
    if (ncap > d->limit)
      ncap = d->limit;
    char *nb = realloc(d->buf, ncap);
    if (nb) {
      d->buf = nb;
      d->cap = ncap;
    }
  }
  *cap = d->cap - d->end;
  return d->buf ? d->buf + d->end : NULL;
}

void ad_decoder_consumed(ad_decoder_t *d, size_t n)
{
  d->end += n;
}

int ad_decoder_feed(ad_decoder_t *d, const void *buf, size_t len)
{
  const char *p = buf;
  while (len > 0) {
    size_t cap;
    char *w = ad_decoder_reserve(d, len, &cap);
    if (!w || cap == 0)
      return AD_ENOMEM;
    size_t n = len < cap ? len : cap;
    memcpy(w, p, n);
    ad_decoder_consumed(d, n);
    p += n, len -= n;
  }
  return 0;
}

ad_framing_t ad_decoder_framing(const ad_decoder_t *d) { return d->framing; }

int ad_decoder_stats(const ad_decoder_t *d, ad_decoder_stats_t *out,
                     ad_error_t *err)
{
  ad_decoder_stats_t st = d->st;
  st.struct_size = sizeof st;
  return ad__struct_out(out, &st, sizeof st,
                        AD__SIZE_V1(ad_decoder_stats_t, skipped_bytes),
                        "ad_decoder_stats_t", err);
}

size_t ad_decoder_buffered(const ad_decoder_t *d) { return d->end - d->start; }

int ad_body_split(const char *body, size_t len, const char **tag,
                  size_t *tag_len, const char **data, size_t *data_len)
{
  /* tags are short: a memchr for '\n' beats memmem's setup */
  const char *sep = NULL, *p = body, *end = body + len;
  while (p + 1 < end && (p = memchr(p, '\n', (size_t)(end - p - 1)))) {
    if (p[1] == '\n') {
      sep = p;
      break;
    }
    p++;
  }
  if (!sep)
    return AD_EFRAME;
  *tag = body;
  *tag_len = (size_t)(sep - body);
  *data = sep + 2;
  *data_len = len - *tag_len - 2;
  return 0;
}

static int is_map_byte(uint8_t b) { return (b & 0xf0) == 0x80 || b == 0xde || b == 0xdf; }

/* Salt always frames {"head": ..., "body": ...}: a fixmap of 2 whose first
 * key is one of the two. */
static int is_signature(const uint8_t *p, size_t n)
{
  return n >= 6 && p[0] == 0x82 && p[1] == 0xa4 &&
         (memcmp(p + 2, "head", 4) == 0 || memcmp(p + 2, "body", 4) == 0);
}

/* Drop bytes up to the next frame signature (keeping a possible partial one
 * at the end of the buffer). */
static void resync(ad_decoder_t *d)
{
  const uint8_t *b = (const uint8_t *)d->buf;
  size_t pre = d->framing == AD_FRAMING_LENGTH ? 4 : 0;
  size_t from = d->start + 1 + pre, found = 0;
  for (size_t i = from; i < d->end; i++) {
    const uint8_t *hit = memchr(b + i, 0x82, d->end - i);
    if (!hit)
      break;
    i = (size_t)(hit - b);
    if (d->end - i < 6) { /* maybe a signature cut short: keep it */
      found = i;
      break;
    }
    if (is_signature(hit, d->end - i) &&
        (pre == 0 || (b[i - 4] == 0 && (((size_t)b[i - 3] << 16 |
                                        (size_t)b[i - 2] << 8 | b[i - 1]) > 6)))) {
      found = i;
      break;
    }
  }
  /* Without a signature keep only a possible partial one (5 bytes), and
   * always drop at least the byte that failed, so every resync progresses. */
  size_t keep_from = found ? found - pre : (d->end > 5 ? d->end - 5 : 0);
  if (keep_from < d->start + 1)
    keep_from = d->start + 1;
  d->st.skipped_bytes += keep_from - d->start;
  d->st.resyncs++;
  d->st.bytes += keep_from - d->start;
  d->start = keep_from;
}

/* Outer values other than the body ("head") are tiny in every Salt
 * release ({} in 3006.29 and 3008.4); a bigger one is treated as a
 * malformed frame. The bound also keeps re-scanning a partial value cheap. */
#define MAX_HEAD_VALUE ((size_t)4096)

typedef struct {
  size_t need;              /* on "need more": at least this many bytes */
  size_t frame_len;         /* whole map */
  size_t body_off, body_len;
  size_t body_end;          /* offset just after the body value */
  uint32_t entries_after;   /* outer pairs after the body */
} outer_t;

/* Walk the outer map at p. 1: complete; 0: need more; AD_EFRAME: bad;
 * AD_ETOOBIG: body larger than max (o->body_end / entries_after filled). */
static int parse_outer(const ad_decoder_t *d, const uint8_t *p, size_t len,
                       outer_t *o, ad_error_t *err)
{
  ad__mp_head_t h;
  int rc = ad__mp_head(p, len, &h);
  if (rc == 0)
    return 0;
  if (rc < 0 || h.kind != AD__MP_T_MAP)
    return ad__err(err, AD_EFRAME, "frame",
                   "frame starts with byte 0x%02x, not a msgpack map", p[0]);
  if (h.n > MAX_OUTER_KEYS)
    return ad__err(err, AD_EFRAME, "frame",
                   "outer map has %llu keys (at most %d expected)",
                   (unsigned long long)h.n, MAX_OUTER_KEYS);
  size_t off = h.hdr_len;
  int have_body = 0;
  for (uint64_t i = 0; i < h.n; i++) {
    ad__mp_head_t k;
    rc = ad__mp_head(p + off, len - off, &k);
    if (rc == 0)
      return 0;
    if (rc < 0 || (k.kind != AD__MP_T_STR && k.kind != AD__MP_T_BIN))
      return ad__err(err, AD_EFRAME, "frame",
                     "outer map key %llu is not a string", (unsigned long long)i);
    if (k.n > len - off - k.hdr_len)
      return k.n > 64 ? ad__err(err, AD_EFRAME, "frame", "outer map key too long")
                      : 0;
    const char *key = (const char *)p + off + k.hdr_len;
    off += k.hdr_len + (size_t)k.n;
    if (k.n == 4 && memcmp(key, "body", 4) == 0) {
      ad__mp_head_t v;
      rc = ad__mp_head(p + off, len - off, &v);
      if (rc == 0)
        return 0;
      if (rc < 0 || (v.kind != AD__MP_T_STR && v.kind != AD__MP_T_BIN))
        return ad__err(err, AD_EFRAME, "frame",
                       "\"body\" is not bin or str (byte 0x%02x)", p[off]);
      if (v.n > d->max_frame) {
        o->body_end = off + v.hdr_len + v.n;
        o->body_len = (size_t)v.n;
        o->entries_after = (uint32_t)(h.n - i - 1);
        return ad__err(err, AD_ETOOBIG, "frame",
                       "frame body of %llu bytes exceeds max_frame %zu",
                       (unsigned long long)v.n, d->max_frame);
      }
      if (v.n > len - off - v.hdr_len) {
        o->need = off + v.hdr_len + (size_t)v.n;
        return 0;
      }
      o->body_off = off + v.hdr_len;
      o->body_len = (size_t)v.n;
      off += v.hdr_len + (size_t)v.n;
      have_body = 1;
    } else {
      uint64_t sz;
      rc = ad__mp_skip(p + off, len - off, &sz);
      if (rc == 0 && len - off > MAX_HEAD_VALUE)
        return ad__err(err, AD_EFRAME, "frame", "outer value for key %.*s "
                       "exceeds %zu bytes", (int)(k.n > 32 ? 32 : k.n), key,
                       MAX_HEAD_VALUE);
      if (rc == 0)
        return 0;
      if (rc < 0)
        return ad__err(err, AD_EFRAME, "frame", "malformed value for outer key %.*s",
                       (int)(k.n > 32 ? 32 : k.n), key);
      off += (size_t)sz;
    }
  }
  if (!have_body)
    return ad__err(err, AD_EFRAME, "frame", "outer map has no \"body\" key");
  o->frame_len = off;
  return 1;
}

/* Drop what is left of an oversized frame. 1: done, 0: need more bytes. */
static int drain_skip(ad_decoder_t *d, ad_error_t *err)
{
  if (d->skip) {
    size_t avail = d->end - d->start;
    size_t n = d->skip < avail ? (size_t)d->skip : avail;
    d->start += n;
    d->skip -= n;
    d->st.skipped_bytes += n;
    d->st.bytes += n;
    if (d->skip)
      return 0;
  }
  while (d->skip_entries) { /* raw framing: the pairs after the body */
    size_t off = 0;
    for (int j = 0; j < 2; j++) {
      uint64_t sz;
      int rc = ad__mp_skip((uint8_t *)d->buf + d->start + off,
                           d->end - d->start - off, &sz);
      if (rc == 0 && d->end - d->start - off <= 2 * MAX_HEAD_VALUE)
        return 0;
      if (rc <= 0) {
        d->skip_entries = 0;
        d->st.bad_frames++;
        resync(d);
        return ad__err(err, AD_EFRAME, "frame",
                       "malformed tail after an oversized body; resynchronised");
      }
      off += (size_t)sz;
    }
    d->start += off;
    d->st.skipped_bytes += off;
    d->st.bytes += off;
    d->skip_entries--;
  }
  return 1;
}

/* Read the 4-byte length at p. A prefix within max_frame is trusted: it
 * says exactly where the next frame starts, so whatever it holds is
 * buffered and, if it is not a frame, skipped by that length (never by
 * scanning). Only an impossible prefix (over max_frame and not followed by
 * a frame signature) resynchronises by scanning; until a signature is
 * found again, prefixes are not trusted (d->hunting). 1: *n is the frame
 * length, the frame is whole in the buffer; 0: need more bytes; <0: an
 * oversized frame is being skipped, or the stream was resynchronised. */
static int length_prefix(ad_decoder_t *d, const uint8_t *p, size_t avail,
                         size_t *n_out, ad_error_t *err)
{
  if (avail < 4)
    return 0;
  uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
               (uint32_t)p[2] << 8 | p[3];
  if (d->hunting || n > d->max_frame) {
    if (avail < 4 + 6)
      return 0; /* the signature decides */
    if (!is_signature(p + 4, avail - 4) || (d->hunting && n <= 6)) {
      d->st.bad_frames++;
      d->hunting = 1;
      resync(d);
      return ad__err(err, AD_EFRAME, "frame",
                     "length prefix %u is not followed by a frame; "
                     "resynchronised", n);
    }
    d->hunting = 0;
  }
  if (n > d->max_frame) {
    d->start += 4;
    d->st.bytes += 4;
    d->skip = n;
    d->st.oversized++;
    return ad__err(err, AD_ETOOBIG, "frame",
                   "frame of %u bytes exceeds max_frame %zu; skipped", n,
                   d->max_frame);
  }
  if (avail < 4 + (size_t)n)
    return 0;
  *n_out = n;
  return 1;
}

/* The first byte of a stream picks the framing: a map is 3008's bare
 * {head, body}, a zero is the high byte of 3006's length prefix. */
static int detect_framing(ad_decoder_t *d, const uint8_t *p, ad_error_t *err)
{
  if (d->framing != AD_FRAMING_AUTO)
    return 0;
  if (is_map_byte(p[0]) || p[0] != 0) {
    d->framing = AD_FRAMING_RAW;
    if (is_map_byte(p[0]))
      return 0;
    d->st.bad_frames++;
    resync(d);
    return ad__err(err, AD_EFRAME, "frame",
                   "stream starts with byte 0x%02x: neither a msgpack map "
                   "nor a length prefix; resynchronised", p[0]);
  }
  d->framing = AD_FRAMING_LENGTH;
  return 0;
}

/* A frame whose length prefix was sane: the prefix says where the next
 * frame starts, so skip exactly this one. */
static void skip_prefixed(ad_decoder_t *d, size_t wire)
{
  d->start += wire;
  d->st.bytes += wire;
  d->st.skipped_bytes += wire;
  d->st.bad_frames++;
}

/* parse_outer needs more bytes: wait for them, unless they could never come
 * within max_frame. */
static int incomplete(ad_decoder_t *d, const outer_t *o, size_t avail, ad_error_t *err)
{
  d->need = o->need;
  if (avail < d->limit)
    return 0;
  d->need = 0;
  d->st.bad_frames++;
  resync(d);
  return ad__err(err, AD_EFRAME, "frame",
                 "frame does not complete within max_frame %zu; resynchronised",
                 d->max_frame);
}

/* parse_outer refused the frame (rc < 0). */
static int refused(ad_decoder_t *d, int rc, size_t pre, size_t limit, const outer_t *o)
{
  if (rc == AD_ETOOBIG && !pre) { /* skipped without buffering, as it streams by */
    d->st.oversized++;
    d->skip = o->body_end;
    d->skip_entries = o->entries_after;
    return rc;
  }
  if (pre) /* incl. TOOBIG under a prefix <= max_frame: cannot happen, bad */
    skip_prefixed(d, pre + limit);
  else {
    d->st.bad_frames++;
    resync(d);
  }
  return rc;
}

/* A whole frame: hand out its tag and data, borrowed from the buffer. */
static int emit(ad_decoder_t *d, ad_frame_t *f, const uint8_t *p, size_t pre,
                const outer_t *o, ad_error_t *err)
{
  const char *body = (const char *)p + pre + o->body_off;
  size_t wire = pre + o->frame_len;
  d->start += wire;
  d->st.bytes += wire;
  if (ad_body_split(body, o->body_len, &f->tag, &f->tag_len, &f->data, &f->data_len) != 0) {
    d->st.bad_frames++;
    return ad__err(err, AD_EFRAME, "frame",
                   "body of %zu bytes has no \"\\n\\n\" between tag and data", o->body_len);
  }
  f->body = body;
  f->body_len = o->body_len;
  f->wire_len = wire;
  d->st.frames++;
  return 1;
}

int ad_decoder_next(ad_decoder_t *d, ad_frame_t *f, ad_error_t *err)
{
  int rc = drain_skip(d, err);
  if (rc <= 0)
    return rc;
  size_t avail = d->end - d->start;
  if (avail == 0)
    return 0;
  const uint8_t *p = (const uint8_t *)d->buf + d->start;
  if ((rc = detect_framing(d, p, err)) < 0)
    return rc;
  if (avail < d->need)
    return 0; /* the pending raw frame cannot be complete yet */
  d->need = 0;
  size_t pre = 0, limit = avail;
  if (d->framing == AD_FRAMING_LENGTH) {
    if ((rc = length_prefix(d, p, avail, &limit, err)) <= 0)
      return rc;
    pre = 4;
  }
  outer_t o = {0};
  rc = parse_outer(d, p + pre, limit, &o, err);
  if (rc == 1 && pre && o.frame_len != limit)
    rc = ad__err(err, AD_EFRAME, "frame", "length prefix says %zu bytes, map takes %zu", limit,
                 o.frame_len);
  if (rc == 0 && pre)
    rc = ad__err(err, AD_EFRAME, "frame", "frame truncated inside its length");
  if (rc == 0)
    return incomplete(d, &o, avail, err);
  if (rc < 0)
    return refused(d, rc, pre, limit, &o);
  return emit(d, f, p, pre, &o, err);
}
