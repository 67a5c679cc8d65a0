/* config.c - see config.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/error_private.h"
#include "core/redact.h"

/* A string field's secrets into (add) or out of (drop) the redaction set:
 * a secret is one; any other string may be a URL with a password. */
static void secrets(const ad__config_key_t *k, const char *s, int add)
{
  ad__secret_kind_t kind = k->type == AD_CT_SECRET ? AD__SECRET_VALUE : AD__SECRET_URL;
  if (!s || (kind == AD__SECRET_URL && !strstr(s, "://")))
    return;
  (add ? ad__secret_add : ad__secret_drop)(kind, s);
}

static void str_free(const ad__config_key_t *k, char **s)
{
  secrets(k, *s, 0);
  if (*s && k->type == AD_CT_SECRET)
    explicit_bzero(*s, strlen(*s));
  free(*s);
  *s = NULL;
}

static int set_text(const ad__config_key_t *k, void *target, const char *text,
                    ad_error_t *err)
{
  char *at = (char *)target + k->offset;
  switch (k->type) {
  case AD_CT_INT:
  case AD_CT_SIZE: {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || end == text)
      return ad__err(err, AD_ECONFIG, "config", "%s: \"%s\" is not an integer",
                     k->name, text);
    if (v < k->min || v > k->max)
      return ad__err(err, AD_ECONFIG, "config", "%s: %lld is out of range %lld..%lld",
                     k->name, v, k->min, k->max);
    if (k->type == AD_CT_INT)
      *(int *)at = (int)v;
    else
      *(size_t *)at = (size_t)v;
    return 0;
  }
  case AD_CT_BOOL:
    if (!strcmp(text, "true") || !strcmp(text, "1"))
      *(int *)at = 1;
    else if (!strcmp(text, "false") || !strcmp(text, "0"))
      *(int *)at = 0;
    else
      return ad__err(err, AD_ECONFIG, "config", "%s: \"%s\" is not a boolean",
                     k->name, text);
    return 0;
  case AD_CT_STR:
  case AD_CT_SECRET: {
    char **s = (char **)at;
    str_free(k, s);
    *s = *text ? strdup(text) : NULL;
    secrets(k, *s, 1);
    return 0;
  }
  case AD_CT_ENUM:
    for (int i = 0; k->enums[i]; i++)
      if (!strcmp(k->enums[i], text)) {
        *(int *)at = i;
        return 0;
      }
    {
      char allowed[160] = "";
      for (int i = 0; k->enums[i]; i++) {
        strncat(allowed, i ? ", " : "", sizeof(allowed) - strlen(allowed) - 1);
        strncat(allowed, k->enums[i], sizeof(allowed) - strlen(allowed) - 1);
      }
      return ad__err(err, AD_ECONFIG, "config", "%s: \"%s\" is not one of %s",
                     k->name, text, allowed);
    }
  }
  return AD_ECONFIG;
}

int ad__config_load(const ad__config_key_t *table, void *target,
                    const json_t *obj, ad_error_t *err)
{
  for (const ad__config_key_t *k = table; k->name; k++)
    if (set_text(k, target, k->def, err))
      return AD_ECONFIG;
  if (!obj)
    return 0;
  if (!json_is_object(obj))
    return ad__err(err, AD_ECONFIG, "config", "configuration must be an object");
  const char *name;
  json_t *v;
  json_object_foreach((json_t *)obj, name, v) {
    const ad__config_key_t *k = table;
    while (k->name && strcmp(k->name, name))
      k++;
    if (!k->name)
      return ad__err(err, AD_ECONFIG, "config", "unknown key \"%s\"", name);
    if (json_is_null(v))
      continue; /* null: keep the default */
    char buf[64];
    const char *text = NULL;
    if (json_is_string(v))
      text = json_string_value(v);
    else if (json_is_integer(v) && k->type != AD_CT_ENUM)
      snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v)), text = buf;
    else if (json_is_boolean(v) && k->type == AD_CT_BOOL)
      text = json_is_true(v) ? "true" : "false";
    if (!text)
      return ad__err(err, AD_ECONFIG, "config", "%s: wrong type (a JSON %s)", name,
                     json_is_object(v) ? "object" : json_is_array(v) ? "array"
                     : json_is_real(v) ? "real" : json_is_boolean(v) ? "boolean"
                     : "value");
    if (set_text(k, target, text, err))
      return AD_ECONFIG;
  }
  return 0;
}

void ad__config_free(const ad__config_key_t *table, void *target)
{
  for (const ad__config_key_t *k = table; k->name; k++)
    if (k->type == AD_CT_STR || k->type == AD_CT_SECRET)
      str_free(k, (char **)((char *)target + k->offset));
}

json_t *ad__config_parse(const char *text, const char *what, int code, ad_error_t *err)
{
  json_error_t je;
  json_t *obj = json_loads(text && *text ? text : "{}", 0, &je);
  if (!obj) {
    ad__err(err, code, "config", "%s is not JSON: line %d column %d: %s", what, je.line,
            je.column, je.text);
    return NULL;
  }
  if (!json_is_object(obj)) {
    json_decref(obj);
    ad__err(err, code, "config", "%s must be a JSON object", what);
    return NULL;
  }
  return obj;
}
