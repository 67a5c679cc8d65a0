/*
 * canal.c - openings from Canal's flat messages and from plain
 * {service, at} messages (canal.h has the contract). Pure: the Kafka
 * consumer (kafka.c) hands each message's bytes here and applies what
 * comes back, so every rule about what is an opening is tested without a
 * broker (tests/feeds/test_canal.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/error_private.h"
#include "feeds/canal.h"

#define K(name, field, def) {name, AD_CT_STR, offsetof(ad__canal_map_t, field), 0, 0, def, NULL}
static const ad__config_key_t MAP_KEYS[] = {
    K("database", database, ""),
    K("table", table, ""),
    K("id_column", id_column, ""),
    K("online_column", online_column, ""),
    K("online_value", online_value, ""),
    {NULL, 0, 0, 0, 0, NULL, NULL}};

const ad__config_key_t *ad__canal_map_keys(void) { return MAP_KEYS; }
#undef K

int ad__canal_map_load(ad__canal_map_t *m, const json_t *mapping, ad_error_t *err)
{
  memset(m, 0, sizeof *m);
  if (!json_is_object(mapping))
    return ad__err(err, AD_ECONFIG, "config", "kafka.mapping: required, an object "
                   "{database?, table, id_column, online_column, online_value}");
  ad_error_t e;
  if (ad__config_load(MAP_KEYS, m, mapping, &e)) {
    ad__canal_map_free(m);
    return ad__err(err, AD_ECONFIG, "config", "kafka.mapping: %s", e.message);
  }
  const char *missing = !m->table ? "table" : !m->id_column ? "id_column"
                      : !m->online_column ? "online_column" : !m->online_value ? "online_value" : NULL;
  if (missing) {
    ad__canal_map_free(m);
    return ad__err(err, AD_ECONFIG, "config", "kafka.mapping.%s: required (a non-empty string)", missing);
  }
  return 0;
}

void ad__canal_map_free(ad__canal_map_t *m)
{
  ad__config_free(MAP_KEYS, m);
}

/* A cell as text, as Canal writes it (a string), or a number or boolean
 * from a producer that kept JSON types. NULL for SQL NULL and the rest. */
static const char *cell_text(const json_t *v, char *buf, size_t size)
{
  if (json_is_string(v))
    return json_string_value(v);
  if (json_is_integer(v))
    return snprintf(buf, size, "%lld", (long long)json_integer_value(v)), buf;
  if (json_is_boolean(v))
    return json_is_true(v) ? "true" : "false";
  return NULL;
}

static int valid_id(const char *id)
{
  return id && *id && strlen(id) <= 100 && !strchr(id, '/');
}

static int add_opening(json_t *out, const char *id, int64_t at_ms)
{
  return json_array_append_new(out, json_pack("{s:s,s:I}", "service", id, "at_ms", (json_int_t)at_ms));
}

/* {"service": id, "at": ISO-8601 | unix seconds | absent} */
static int plain_opening(const json_t *msg, json_t *out, ad_error_t *err)
{
  const char *id = json_string_value(json_object_get(msg, "service"));
  if (!valid_id(id))
    return ad__err(err, AD_EDECODE, "event", "service: must be a service id (non-empty, at most 100 "
                   "bytes, no '/')");
  const json_t *at = json_object_get(msg, "at");
  int64_t at_ms = 0;
  if (json_is_integer(at))
    at_ms = json_integer_value(at) * 1000;
  else if (at && !json_is_null(at) && (!json_is_string(at) || ad__time_parse(json_string_value(at), &at_ms)))
    return ad__err(err, AD_EDECODE, "event", "at: must be unix seconds or ISO-8601 (2026-11-27T10:00:00Z)");
  return add_opening(out, id, at_ms) ? ad__err(err, AD_ENOMEM, "event", "no memory") : 0;
}

static int mapped_table(const ad__canal_map_t *m, const json_t *msg)
{
  const char *db = json_string_value(json_object_get(msg, "database"));
  const char *table = json_string_value(json_object_get(msg, "table"));
  return table && !strcmp(table, m->table) && (!m->database || (db && !strcmp(db, m->database)));
}

/* Row i of an UPDATE: an opening when the online column changed (old[i]
 * has it) to online_value. 1 opening, 0 none, <0 malformed. */
static int row_opening(const ad__canal_map_t *m, const json_t *row, const json_t *old, size_t i,
                       int64_t at_ms, json_t *out, ad_error_t *err)
{
  if (!json_is_object(row))
    return ad__err(err, AD_EDECODE, "event", "data[%zu]: must be an object (a row)", i);
  if (!json_is_object(old))
    return ad__err(err, AD_EDECODE, "event", "old[%zu]: must be an object (the changed columns)", i);
  if (!json_object_get(old, m->online_column))
    return 0; /* another column changed */
  char buf[32];
  const char *now = cell_text(json_object_get(row, m->online_column), buf, sizeof buf);
  if (!now || strcmp(now, m->online_value))
    return 0; /* changed, to something else than online */
  char idbuf[32];
  const char *id = cell_text(json_object_get(row, m->id_column), idbuf, sizeof idbuf);
  if (!valid_id(id))
    return ad__err(err, AD_EDECODE, "event", "data[%zu].%s: must be a service id (non-empty, at most "
                   "100 bytes, no '/')", i, m->id_column);
  return add_opening(out, id, at_ms) ? ad__err(err, AD_ENOMEM, "event", "no memory") : 1;
}

static int canal_openings(const ad__canal_map_t *m, const json_t *msg, json_t *out, ad_error_t *err)
{
  const char *type = json_string_value(json_object_get(msg, "type"));
  if (!type)
    return ad__err(err, AD_EDECODE, "event", "type: must be a string (INSERT, UPDATE, DELETE, ...)");
  if (!json_is_string(json_object_get(msg, "table")))
    return ad__err(err, AD_EDECODE, "event", "table: must be a string");
  if (json_is_true(json_object_get(msg, "isDdl")) || strcmp(type, "UPDATE") || !mapped_table(m, msg))
    return 0;
  const json_t *data = json_object_get(msg, "data"), *old = json_object_get(msg, "old");
  if (!json_is_array(data))
    return ad__err(err, AD_EDECODE, "event", "data: must be an array of rows");
  if (!json_is_array(old) || json_array_size(old) != json_array_size(data))
    return ad__err(err, AD_EDECODE, "event", "old: must be an array as long as data (%zu)",
                   json_array_size(data));
  /* es: the binlog time of the change, ms; the opening happened then */
  const json_t *es = json_object_get(msg, "es");
  int64_t at_ms = json_is_integer(es) && json_integer_value(es) > 0 ? json_integer_value(es) : 0;
  for (size_t i = 0; i < json_array_size(data); i++)
    if (row_opening(m, json_array_get(data, i), json_array_get(old, i), i, at_ms, out, err) < 0)
      return AD_EDECODE;
  return 0;
}

int ad__canal_openings(const ad__canal_map_t *m, const char *buf, size_t len, json_t **out,
                       ad_error_t *err)
{
  *out = NULL;
  json_error_t je;
  json_t *msg = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
  if (!msg)
    return ad__err(err, AD_EDECODE, "json", "not JSON: %s (at byte %d)", je.text, je.position);
  int rc = 0;
  json_t *list = json_array();
  if (!list)
    rc = ad__err(err, AD_ENOMEM, "event", "no memory");
  else if (!json_is_object(msg))
    rc = ad__err(err, AD_EDECODE, "event", "message: must be a JSON object (a Canal flat message "
                 "or {service, at})");
  else if (json_object_get(msg, "service"))
    rc = plain_opening(msg, list, err);
  else if (json_object_get(msg, "type") || json_object_get(msg, "table"))
    rc = canal_openings(m, msg, list, err);
  else
    rc = ad__err(err, AD_EDECODE, "event", "message: neither a Canal flat message (type, table, "
                 "data, old) nor {service, at}");
  json_decref(msg);
  if (rc) {
    json_decref(list);
    return rc;
  }
  *out = list;
  return 0;
}
