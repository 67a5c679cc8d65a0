/*
 * autodeploy/decoder.h - streaming decoder of the Salt master event bus.
 *
 * A stream from master_event_pub.ipc is a sequence of frames. Each frame is
 * a msgpack map {"head": {...}, "body": <bin|str>}, optionally preceded by a
 * 4-byte big-endian length (Salt 3006.x since the IPC length-prefix fix;
 * 3008.x publishes bare maps). The body is `tag "\n\n" msgpack(data)`.
 *
 * The decoder finds frames and splits tag from data WITHOUT decoding data:
 * callers decide on the tag first and decode only what they need
 * (ad_event_parse / ad_event_data).
 *
 * Use it like msgpack-c's unpacker: reserve -> read into the buffer ->
 * consumed -> next until it returns 0.
 */
#ifndef AUTODEPLOY_DECODER_H
#define AUTODEPLOY_DECODER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  AD_FRAMING_AUTO = 0,   /* detect from the first byte of each connection */
  AD_FRAMING_RAW = 1,    /* bare msgpack maps back to back */
  AD_FRAMING_LENGTH = 2  /* 4-byte big-endian length, then the map */
} ad_framing_t;

/* One frame; every pointer is borrowed from the decoder's buffer and valid
 * until the next call to ad_decoder_next/_reserve/_reset/_destroy. */
typedef struct {
  const char *tag;   /* not NUL-terminated */
  size_t tag_len;
  const char *data;  /* msgpack of the event data (may be empty) */
  size_t data_len;
  const char *body;  /* tag "\n\n" data, as Salt sent it */
  size_t body_len;
  size_t wire_len;   /* bytes the frame took on the wire */
} ad_frame_t;

/* Grows at its end: set struct_size = sizeof before ad_decoder_stats. */
typedef struct {
  size_t struct_size;    /* caller: sizeof(ad_decoder_stats_t) */
  uint64_t frames;       /* good frames returned */
  uint64_t bytes;        /* bytes consumed */
  uint64_t bad_frames;   /* malformed frames (skipped or resynced past) */
  uint64_t oversized;    /* frames over max_frame, skipped unbuffered */
  uint64_t resyncs;      /* times the raw stream was resynchronised */
  uint64_t skipped_bytes;/* bytes thrown away by skips and resyncs */
} ad_decoder_stats_t;

typedef struct ad_decoder ad_decoder_t;

/* New decoder. `max_frame` bounds the buffer (bytes of one frame);
 * 0 means the default, 64 MiB. NULL + *err: AD_EINVAL for an unknown
 * framing, AD_ENOMEM. */
AD_EXPORT ad_decoder_t *ad_decoder_new(size_t max_frame, ad_framing_t framing,
                                       ad_error_t *err);

/* NULL-safe; sets *self_p = NULL. */
AD_EXPORT void ad_decoder_destroy(ad_decoder_t **self_p);

/* Forget buffered bytes and the detected framing (call on reconnect). */
AD_EXPORT void ad_decoder_reset(ad_decoder_t *self);

/* Get a writable area of at least `want` bytes (fewer only when the
 * buffer limit is reached; never 0). Returns its address, *cap its size. */
AD_EXPORT void *ad_decoder_reserve(ad_decoder_t *self, size_t want, size_t *cap);

/* Declare that `n` bytes were written into the reserved area. */
AD_EXPORT void ad_decoder_consumed(ad_decoder_t *self, size_t n);

/* Copy bytes in (reserve + memcpy + consumed). Returns 0. */
AD_EXPORT int ad_decoder_feed(ad_decoder_t *self, const void *buf, size_t len);

/* Next frame. Returns 1 and fills *frame; 0 when more bytes are needed;
 * or a negative code with *err naming the reason:
 *   AD_EFRAME  - a malformed frame was dropped; the decoder has already
 *                resynchronised, so the caller just calls again;
 *   AD_ETOOBIG - a frame over max_frame is being skipped without being
 *                buffered; call again.
 * Both are counted in the stats; neither loses the frames that follow. */
AD_EXPORT int ad_decoder_next(ad_decoder_t *self, ad_frame_t *frame,
                              ad_error_t *err);

/* Framing in use: AUTO until the first byte of a stream has been seen. */
AD_EXPORT ad_framing_t ad_decoder_framing(const ad_decoder_t *self);

/* Counters into *out, up to out->struct_size (set by the caller). 0, or
 * AD_EINVAL + *err naming struct_size (nothing written). */
AD_EXPORT int ad_decoder_stats(const ad_decoder_t *self,
                               ad_decoder_stats_t *out, ad_error_t *err);

/* Bytes buffered and not yet returned as frames. */
AD_EXPORT size_t ad_decoder_buffered(const ad_decoder_t *self);

/* Split a frame body (tag "\n\n" data) the way Salt's SaltEvent.unpack does
 * (at the first "\n\n"). Returns 0, or AD_EFRAME when there is no "\n\n". */
AD_EXPORT int ad_body_split(const char *body, size_t body_len,
                            const char **tag, size_t *tag_len,
                            const char **data, size_t *data_len);

#ifdef __cplusplus
}
#endif
#endif
