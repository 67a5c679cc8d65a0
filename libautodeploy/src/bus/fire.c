/*
 * fire.c - fire events into the master through master_event_pull.ipc (or
 * tcp_master_pull_port), exactly as Salt's own fire_event frames them:
 *
 *   [4-byte big-endian length]  msgpack {"head": {}, "body": bin(tag "\n\n" data)}
 *
 * (salt/transport/frame.py frame_msg_ipc, used by 3006.29 ipc.py and
 * 3008 tcp.py _TCPPubServerPublisher.send). Older masters read bare maps:
 * fire_framing RAW drops the prefix.
 */
#include <errno.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/bus_private.h"
#include "bus/dispatch.h"
#include "core/error_private.h"
#include "core/log_private.h"

int ad__sock_connect(const char *path, const char *host, int port,
                     ad_error_t *err);

static int write_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += w, n -= (size_t)w;
  }
  return 0;
}

int ad__fire_frame(void *sbuffer, ad_framing_t framing,
                       const char *tag, size_t tag_len, const void *data,
                       size_t len)
{
  msgpack_sbuffer *sb = sbuffer;
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  if (framing != AD_FRAMING_RAW)
    msgpack_sbuffer_write(sb, "\0\0\0\0", 4); /* length, patched below */
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str_with_body(&pk, "head", 4);
  msgpack_pack_map(&pk, 0);
  msgpack_pack_str_with_body(&pk, "body", 4);
  msgpack_pack_bin(&pk, tag_len + 2 + len);
  msgpack_pack_bin_body(&pk, tag, tag_len);
  msgpack_pack_bin_body(&pk, "\n\n", 2);
  msgpack_pack_bin_body(&pk, data, len);
  if (!sb->data)
    return -1;
  if (framing != AD_FRAMING_RAW) {
    uint32_t n = htonl((uint32_t)(sb->size - 4));
    memcpy(sb->data, &n, 4);
  }
  return 0;
}

int ad_bus_fire(ad_bus_t *bus, const char *tag, const void *data, size_t len,
                ad_error_t *err)
{
  if (!bus || !tag || !*tag || (!data && len))
    return ad__err(err, AD_EINVAL, "fire", "fire needs a tag and data");
  /* refuse before connecting what a reader would drop or Salt misread */
  int bad = ad__tag_check(tag, err);
  if (bad != 0)
    return bad;
  size_t tag_len = strlen(tag);
  if (len == 0) { /* Salt always sends a map; {} when there is no data */
    data = "\x80";
    len = 1;
  }
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  if (ad__fire_frame(&sb, bus->o.fire_framing, tag, tag_len, data, len) != 0) {
    msgpack_sbuffer_destroy(&sb);
    return ad__err(err, AD_ENOMEM, "fire", "no memory to frame %.*s%s",
                   AD__TAG_SHOW(tag));
  }
  int rc = 0;
  pthread_mutex_lock(&bus->fire_lock);
  for (int attempt = 0; attempt < 2; attempt++) {
    if (bus->fire_fd < 0) {
      bus->fire_fd = ad__sock_connect(bus->o.ipc_mode_tcp ? NULL : bus->pull_path,
                                      bus->tcp_host, bus->o.tcp_pull_port, err);
      if (bus->fire_fd < 0) {
        rc = bus->fire_fd;
        break;
      }
    }
    int w = write_all(bus->fire_fd, sb.data, sb.size);
    if (w == 0) {
      rc = 0;
      break;
    }
    /* The master restarted since our last fire: reconnect once. */
    close(bus->fire_fd);
    bus->fire_fd = -1;
    rc = ad__err_errno(err, AD_EIO, -w, "fire %.*s%s into the master",
                       AD__TAG_SHOW(tag));
  }
  pthread_mutex_unlock(&bus->fire_lock);
  msgpack_sbuffer_destroy(&sb);
  if (rc == 0)
    AD_INC(bus->fired);
  return rc;
}

static int pack_json(msgpack_packer *pk, json_t *j, int depth)
{
  if (depth > 256)
    return -1;
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *v;
    msgpack_pack_map(pk, json_object_size(j));
    json_object_foreach(j, k, v) {
      msgpack_pack_str_with_body(pk, k, strlen(k));
      if (pack_json(pk, v, depth + 1))
        return -1;
    }
    return 0;
  }
  case JSON_ARRAY: {
    size_t i;
    json_t *v;
    msgpack_pack_array(pk, json_array_size(j));
    json_array_foreach(j, i, v) if (pack_json(pk, v, depth + 1)) return -1;
    return 0;
  }
  case JSON_STRING:
    return msgpack_pack_str_with_body(pk, json_string_value(j),
                                      json_string_length(j));
  case JSON_INTEGER: return msgpack_pack_int64(pk, json_integer_value(j));
  case JSON_REAL: return msgpack_pack_double(pk, json_real_value(j));
  case JSON_TRUE: return msgpack_pack_true(pk);
  case JSON_FALSE: return msgpack_pack_false(pk);
  case JSON_NULL: return msgpack_pack_nil(pk);
  }
  return -1;
}

char *ad_json_to_msgpack(const char *text, size_t *len, ad_error_t *err)
{
  json_error_t je;
  json_t *j = json_loads(text ? text : "", JSON_DECODE_ANY, &je);
  if (!j) {
    ad__err(err, AD_EINVAL, "json", "line %d column %d: %s", je.line,
            je.column, je.text);
    return NULL;
  }
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  int rc = pack_json(&pk, j, 0);
  json_decref(j);
  if (rc != 0 || !sb.data) {
    msgpack_sbuffer_destroy(&sb);
    ad__err(err, AD_EINVAL, "json", "cannot encode as msgpack (nested too deep?)");
    return NULL;
  }
  *len = sb.size;
  return msgpack_sbuffer_release(&sb);
}

int ad_bus_fire_json(ad_bus_t *bus, const char *tag, const char *json,
                     ad_error_t *err)
{
  int bad = ad__tag_check(tag, err); /* also before the tag is echoed */
  if (bad != 0)
    return bad;
  size_t len;
  char *mp = ad_json_to_msgpack(json, &len, err);
  if (!mp)
    return err ? err->code : AD_EINVAL;
  if (((unsigned char)mp[0] & 0xf0) != 0x80 && (unsigned char)mp[0] != 0xde &&
      (unsigned char)mp[0] != 0xdf) {
    free(mp);
    return ad__err(err, AD_EINVAL, "fire", "event data for %.*s%s must be a "
                   "JSON object (Salt events carry a dict)", AD__TAG_SHOW(tag));
  }
  int rc = ad_bus_fire(bus, tag, mp, len, err);
  free(mp);
  return rc;
}
