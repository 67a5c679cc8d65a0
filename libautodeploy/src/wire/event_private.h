/* event_private.h - shared by event.c, value.c, json.c. */
#ifndef AD_EVENT_PRIVATE_H
#define AD_EVENT_PRIVATE_H

#include <msgpack.h>

#include "autodeploy/event.h"

/* An ad_value_t is a msgpack_object; the public type stays opaque. */
#define AD_MO(v) ((const msgpack_object *)(v))
#define AD_V(o) ((const ad_value_t *)(o))

#define AD_EXT_DATETIME 78
#define AD_EXT_CONSTANT 79

struct ad_event {
  char *tag;          /* NUL-terminated, inside `mem` */
  size_t tag_len;
  const char *data;   /* inside `mem` */
  size_t data_len;
  int decoded;        /* 0 not yet, 1 ok, -1 failed */
  int zone_borrowed;  /* views decode into their worker's zone */
  msgpack_zone *zp;   /* zone in use: &zone or the worker's */
  msgpack_zone zone;
  msgpack_object root;
  char mem[];         /* tag, NUL, data */
};

/* Initialise a stack event that views bytes it does not own (tag must be
 * NUL-terminated) and decodes into `zone`, which the caller clears with
 * ad__event_view_done after the handlers ran. No allocation per event. */
void ad__event_view(ad_event_t *ev, const char *tag, size_t tag_len,
                    const char *data, size_t data_len, msgpack_zone *zone);
void ad__event_view_done(ad_event_t *ev);

/* mpdecode.c: validate and decode msgpack `data` into `zone` in one pass.
 * 0 or AD_EDECODE naming what and where. */
int ad__msgpack_decode(const char *data, size_t len, msgpack_zone *zone,
                       msgpack_object *out, ad_error_t *err);

/* Salt's "%Y%m%dT%H:%M:%S.%f" -> "YYYY-MM-DDTHH:MM:SS.ffffff". 0 or -1. */
int ad__salt_datetime_iso(const char *s, size_t n, char *out, size_t size);

#endif
