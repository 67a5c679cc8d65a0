/* fuzz_config.c - libFuzzer target for the configuration loaders. Each
 * input is read as the engine entry's JSON text (ad__config_parse, as the
 * engine reads it) and, when it parses, handed to:
 *  1. every key table of the library (engine/config_keys.c, the list the
 *     configuration reference is made from), at the table's own path in the
 *     object ("notify.channels[]": each element);
 *  2. the loaders a module writes by hand: purchase (profiles, flavours,
 *     caps, the time zone), the registry's private_ip rules and profile
 *     globs, the Kafka Canal mapping, each metrics backend.
 * Invariants (abort otherwise): no crash, leak or undefined behaviour; a
 * refusal is AD_ECONFIG with a message naming what was wrong; a load that
 * succeeded frees cleanly. Seeded from libautodeploy/fuzz/config_seeds. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "engine/engine_private.h"
#include "feeds/canal.h"
#include "metrics/metrics.h"
#include "purchase/config.h"
#include "registry/hostinfo.h"

static void refused_well(int rc, const ad_error_t *err)
{
  if (rc && (!err->message[0] || err->code == 0))
    abort(); /* a refusal must say why */
}

/* The object at `path` ("a.b[]" -> each element of a.b; " (...)" ignored). */
static void at_path(const json_t *root, const char *path, void (*fn)(const json_t *, void *),
                    void *user)
{
  char p[128];
  snprintf(p, sizeof p, "%s", path);
  char *cut = strchr(p, ' ');
  if (cut)
    *cut = 0;
  if (!strcmp(p, "engine")) {
    fn(root, user);
    return;
  }
  const json_t *o = root;
  for (char *save = NULL, *seg = strtok_r(p, ".", &save); seg && o;
       seg = strtok_r(NULL, ".", &save)) {
    size_t n = strlen(seg);
    int each = n > 2 && !strcmp(seg + n - 2, "[]");
    if (each)
      seg[n - 2] = 0;
    o = json_object_get(o, seg);
    if (each) {
      size_t i;
      const json_t *v;
      json_array_foreach(o, i, v) fn(v, user);
      return;
    }
  }
  if (o)
    fn(o, user);
}

static void load_table(const json_t *obj, void *user)
{
  const ad__config_key_t *keys = user;
  size_t size = 64;
  for (const ad__config_key_t *k = keys; k->name; k++)
    if (k->offset + 64 > size)
      size = k->offset + 64;
  void *target = calloc(1, size);
  if (!target)
    return;
  ad_error_t err = {0};
  int rc = ad__config_load(keys, target, obj, &err);
  refused_well(rc, &err);
  if (rc && err.code != AD_ECONFIG)
    abort();
  ad__config_free(keys, target);
  free(target);
}

static void hand_loaders(const json_t *root)
{
  ad_error_t err = {0};
  const json_t *purchase = json_object_get(root, "purchase");
  if (purchase) {
    ad__purchase_conf_t c;
    int rc = ad__purchase_conf_load(purchase, NULL, &c, &err);
    refused_well(rc, &err);
    if (!rc)
      ad__purchase_conf_free(&c);
  }
  const json_t *reg = json_object_get(root, "registry");
  if (reg) {
    ad__host_rules_t r;
    int rc = ad__host_rules_load(&r, json_object_get(reg, "private_ip"),
                                 json_object_get(reg, "profiles"), &err);
    refused_well(rc, &err);
    if (!rc)
      ad__host_rules_free(&r);
  }
  const json_t *mapping = json_object_get(json_object_get(root, "kafka"), "mapping");
  if (mapping) {
    ad__canal_map_t m;
    int rc = ad__canal_map_load(&m, mapping, &err);
    refused_well(rc, &err);
    if (!rc)
      ad__canal_map_free(&m);
  }
  const json_t *placement = json_object_get(root, "placement");
  const json_t *metrics = json_object_get(placement, "metrics");
  if (metrics) {
    static const char *const backends[] = {"salt", "prometheus", "zabbix", "openfalcon", "nope"};
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
      ad__metrics_t *m = ad__metrics_new(backends[i], metrics, &err);
      if (!m)
        refused_well(1, &err);
      ad__metrics_destroy(&m);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = 0;
  ad_error_t err = {0};
  json_t *root = ad__config_parse(text, "fuzz", AD_ECONFIG, &err);
  free(text);
  if (!root) {
    refused_well(1, &err);
    return 0;
  }
  const char *path;
  const ad__config_key_t *keys;
  for (size_t i = 0; (keys = ad__config_table(i, &path)) != NULL; i++)
    at_path(root, path, load_table, (void *)keys);
  hand_loaders(root);
  json_decref(root);
  return 0;
}
