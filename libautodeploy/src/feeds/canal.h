/* canal.h - openings from row-change messages: pure, no I/O.
 *
 * Two message shapes (docs/kafka.md):
 *   Canal's flat message  {"database", "table", "type", "data": [row...],
 *                          "old": [changed columns of each row...], "es", "isDdl"}
 *   a plain opening       {"service": "qq-s1001", "at": "2026-11-27T10:00:00Z"}
 *
 * The mapping says which table is the game servers' one, which of its
 * columns holds the service id, and which column and value mean "online".
 * An opening is an UPDATE of that table where old[i] names the online
 * column (it changed) and data[i]'s online column equals online_value.
 * Every other row change (INSERT, DELETE, DDL, another table, another
 * column) is no opening, and not an error either. */
#ifndef AD_FEEDS_CANAL_H
#define AD_FEEDS_CANAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "autodeploy/common.h"
#include "core/config.h"

typedef struct {
  char *database;      /* NULL: any database */
  char *table;
  char *id_column;
  char *online_column;
  char *online_value;  /* compared as text: Canal sends every value as a string */
} ad__canal_map_t;

/* Load the engine's kafka.mapping object into *m (zeroed first). 0, or
 * AD_ECONFIG + err naming the key (kafka.mapping.<key>). */
int ad__canal_map_load(ad__canal_map_t *m, const json_t *mapping, ad_error_t *err);
void ad__canal_map_free(ad__canal_map_t *m);

/* The openings in one message: *out gets a new array of
 * {"service": id, "at_ms": ms} (ms 0 when the message carries no time), empty
 * for a row change that opens nothing. 0, or AD_EDECODE + err naming the
 * field for a malformed message (*out NULL). The service ids are checked as
 * service.opened checks them (non-empty, at most 100 bytes, no '/'). */
int ad__canal_openings(const ad__canal_map_t *m, const char *buf, size_t len, json_t **out,
                       ad_error_t *err);

/* the kafka.mapping key table (docs/configuration-reference.md) */
const ad__config_key_t *ad__canal_map_keys(void);

#endif
