/*
 * event.c - event objects: one allocation holds the tag and data bytes;
 * the data is decoded lazily (mpdecode.c) into a msgpack-c zone (arena)
 * that the event owns. Strings and bins are referenced in place, so
 * decoding copies no strings.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "autodeploy/decoder.h"
#include "core/error_private.h"
#include "wire/event_private.h"


ad_event_t *ad_event_new(const char *tag, size_t tag_len, const void *data,
                         size_t data_len, ad_error_t *err)
{
  if ((!tag && tag_len) || (!data && data_len)) {
    ad__err(err, AD_EINVAL, "event", "NULL %s with a length of %zu",
            tag ? "data" : "tag", tag ? data_len : tag_len);
    return NULL;
  }
  ad_event_t *ev = malloc(sizeof(*ev) + tag_len + 1 + data_len);
  if (!ev) {
    ad__err(err, AD_ENOMEM, "event", "no memory for a %zu-byte event",
            tag_len + data_len);
    return NULL;
  }
  ev->tag = ev->mem;
  memcpy(ev->tag, tag, tag_len);
  ev->tag[tag_len] = '\0';
  ev->tag_len = tag_len;
  ev->data = ev->mem + tag_len + 1;
  if (data_len)
    memcpy(ev->mem + tag_len + 1, data, data_len);
  ev->data_len = data_len;
  ev->decoded = 0;
  ev->zone_borrowed = 0;
  return ev;
}

void ad__event_view(ad_event_t *ev, const char *tag, size_t tag_len,
                    const char *data, size_t data_len, msgpack_zone *zone)
{
  ev->tag = (char *)tag;
  ev->tag_len = tag_len;
  ev->data = data;
  ev->data_len = data_len;
  ev->decoded = 0;
  ev->zone_borrowed = 1;
  ev->zp = zone;
}

void ad__event_view_done(ad_event_t *ev)
{
  if (ev->decoded == 1)
    msgpack_zone_clear(ev->zp);
  ev->decoded = 0;
}

ad_event_t *ad_event_parse(const void *body, size_t len, ad_error_t *err)
{
  const char *tag, *data;
  size_t tag_len, data_len;
  if (ad_body_split(body, len, &tag, &tag_len, &data, &data_len) != 0) {
    ad__err(err, AD_EFRAME, "event",
            "event body of %zu bytes has no \"\\n\\n\" after the tag", len);
    return NULL;
  }
  return ad_event_new(tag, tag_len, data, data_len, err);
}

void ad_event_destroy(ad_event_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  ad_event_t *ev = *self_p;
  if (ev->decoded == 1)
    msgpack_zone_destroy(ev->zp);
  free(ev);
  *self_p = NULL;
}

const char *ad_event_tag(const ad_event_t *ev) { return ev->tag; }
size_t ad_event_tag_len(const ad_event_t *ev) { return ev->tag_len; }

const void *ad_event_raw(const ad_event_t *ev, size_t *len)
{
  if (len)
    *len = ev->data_len;
  return ev->data;
}

const ad_value_t *ad_event_data(ad_event_t *ev, ad_error_t *err)
{
  if (ev->decoded == 1)
    return (const ad_value_t *)&ev->root;
  if (ev->decoded == -1) {
    ad__err(err, AD_EDECODE, "event", "event data of %s did not decode",
            ev->tag);
    return NULL;
  }
  if (!ev->zone_borrowed) {
    ev->zp = &ev->zone;
    if (!msgpack_zone_init(ev->zp, 2048)) {
      ad__err(err, AD_ENOMEM, "event", "no memory for decoding");
      return NULL;
    }
  }
  if (ad__msgpack_decode(ev->data, ev->data_len, ev->zp, &ev->root, err)) {
    if (!ev->zone_borrowed)
      msgpack_zone_destroy(ev->zp);
    else
      msgpack_zone_clear(ev->zp);
    ev->decoded = -1;
    return NULL;
  }
  ev->decoded = 1;
  return (const ad_value_t *)&ev->root;
}

const ad_value_t *ad_event_find(ad_event_t *ev, const char *path)
{
  const ad_value_t *root = ad_event_data(ev, NULL);
  return root ? ad_value_path(root, path) : NULL;
}

int ad_event_get_str(ad_event_t *ev, const char *path, const char **s,
                     size_t *len)
{
  const ad_value_t *v = ad_event_find(ev, path);
  return v ? ad_value_str(v, s, len) : AD_ENOTFOUND;
}

int ad_event_get_int(ad_event_t *ev, const char *path, int64_t *out)
{
  const ad_value_t *v = ad_event_find(ev, path);
  return v ? ad_value_int(v, out) : AD_ENOTFOUND;
}

int ad_event_get_bool(ad_event_t *ev, const char *path, int *out)
{
  const ad_value_t *v = ad_event_find(ev, path);
  return v ? ad_value_bool(v, out) : AD_ENOTFOUND;
}
