/*
 * config_keys.c - every configuration key table of the library, in one list,
 * as JSON: the source of docs/configuration-reference.md, which
 * tests/engine/test_config_reference.c renders from here and compares with
 * the file (so the reference cannot drift from the tables), and of the
 * `config.keys` command.
 *
 * Only table keys are here: objects and arrays a module reads by hand
 * (notify.channels, webhook headers, registry.profiles, private_ip rules,
 * platform documents) are described on their own pages.
 */
#include <string.h>

#include "core/error_private.h"
#include "engine/engine_private.h"
#include "feeds/canal.h"
#include "feeds/kafka.h"
#include "fleet/fleet_private.h"
#include "metrics/metrics_private.h"
#include "notify/notify_private.h"
#include "purchase/approval_dingtalk.h"
#include "purchase/backend.h"
#include "purchase/partner_mail.h"
#include "registry/registry_private.h"
#include "serve/serve.h"

static const ad__config_key_t *engine_keys(void) { return ad__engine_keys; }

static const struct {
  const char *path; /* where the keys go, under the engine entry */
  const char *page; /* the page that explains them */
  const ad__config_key_t *(*keys)(void);
} TABLES[] = {
    {"engine", "configuration.md", engine_keys},
    {"notify", "notify.md", ad__notify_keys},
    {"notify.channels[]", "notify.md", ad__notify_channel_keys},
    {"notify.channels[] (type dingtalk)", "notify.md", ad__notify_dingtalk_keys},
    {"notify.channels[] (type smtp)", "notify.md", ad__notify_smtp_keys},
    {"registry", "registration.md", ad__registry_keys},
    {"registry.cmdb", "cmdb.md", ad__cmdb_keys},
    {"placement", "placement.md", ad__fleet_keys},
    {"placement.metrics (backend salt)", "metrics.md", ad__metrics_salt_keys},
    {"placement.metrics (backend prometheus)", "metrics.md", ad__metrics_prometheus_keys},
    {"placement.metrics (backend zabbix)", "metrics.md", ad__metrics_zabbix_keys},
    {"placement.metrics (backend openfalcon)", "metrics.md", ad__metrics_openfalcon_keys},
    {"http", "api-http.md", ad__serve_keys},
    {"kafka", "kafka.md", ad__kafka_keys},
    {"kafka.mapping", "kafka.md", ad__canal_map_keys},
    {"purchase.backend (type http)", "purchase.md", ad__purchase_http_keys},
    {"purchase.backend (type runner)", "purchase.md", ad__purchase_runner_keys},
    {"purchase.partner_mail", "purchase.md", ad__partner_mail_keys},
    {"purchase.approval.dingtalk", "purchase.md", ad__approval_dingtalk_keys},
    {"purchase.approval.dingtalk.callback", "purchase.md", ad__approval_dingtalk_callback_keys},
};

static json_t *key_json(const ad__config_key_t *k)
{
  static const char *const types[] = {"int", "size", "bool", "string", "enum", "secret"};
  json_t *o = json_pack("{s:s,s:s,s:s}", "name", k->name, "type", types[k->type], "default",
                        k->def ? k->def : "");
  if (o && (k->type == AD_CT_INT || k->type == AD_CT_SIZE)) {
    json_object_set_new(o, "min", json_integer(k->min));
    json_object_set_new(o, "max", json_integer(k->max));
  }
  if (o && k->type == AD_CT_ENUM) {
    json_t *v = json_array();
    for (size_t i = 0; k->enums && k->enums[i]; i++)
      json_array_append_new(v, json_string(k->enums[i]));
    json_object_set_new(o, "values", v);
  }
  return o;
}

const ad__config_key_t *ad__config_table(size_t i, const char **path)
{
  if (i >= sizeof TABLES / sizeof TABLES[0])
    return NULL;
  *path = TABLES[i].path;
  return TABLES[i].keys();
}

json_t *ad__config_keys_json(const char *only)
{
  json_t *tables = json_array();
  for (size_t i = 0; tables && i < sizeof TABLES / sizeof TABLES[0]; i++) {
    if (only && strcmp(only, TABLES[i].path))
      continue;
    json_t *keys = json_array();
    for (const ad__config_key_t *k = TABLES[i].keys(); keys && k->name; k++)
      json_array_append_new(keys, key_json(k));
    json_array_append_new(tables, json_pack("{s:s,s:s,s:o}", "path", TABLES[i].path, "page",
                                            TABLES[i].page, "keys", keys));
  }
  return tables ? json_pack("{s:o}", "tables", tables) : NULL;
}

json_t *ad__config_keys_cmd(const json_t *args, ad_error_t *err)
{
  const json_t *t = json_object_get(args, "table");
  if (t && !json_is_null(t) && !json_is_string(t))
    return ad__err(err, AD_EINVAL, "args", "table: a table path (text), e.g. \"placement\""), NULL;
  json_t *out = ad__config_keys_json(json_string_value(t));
  if (out && t && !json_is_null(t) && !json_array_size(json_object_get(out, "tables"))) {
    json_decref(out);
    return ad__err(err, AD_ENOTFOUND, "args", "table: no table %s", json_string_value(t)), NULL;
  }
  if (!out)
    ad__err(err, AD_ENOMEM, "call", "config.keys: no memory");
  return out;
}
