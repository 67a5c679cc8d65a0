/* simulate_args.c - the ad_call "simulate" command (simulate_args.h). */
#include <string.h>

#include "core/error_private.h"
#include "decide/simulate.h"
#include "decide/simulate_args.h"

static const char *const KEYS[] = {"input", "csv", "csv_name", NULL};

/* 0, or AD_EINVAL naming the first key of `args` that is not in KEYS. */
static int known_keys(const json_t *args, ad_error_t *err)
{
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)args, k, v) {
    int ok = 0;
    for (size_t i = 0; KEYS[i] && !ok; i++)
      ok = strcmp(k, KEYS[i]) == 0;
    if (!ok)
      return ad__err(err, AD_EINVAL, "args", "%s: unknown argument (simulate takes input, csv, csv_name)", k);
  }
  return 0;
}

/* A copy of `input` with the CSV's openings appended to its openings
 * (created when absent). An openings of the wrong type is left for
 * ad__simulate to name. NULL + *err. */
static json_t *with_csv(const json_t *input, const char *csv, const char *name, ad_error_t *err)
{
  json_t *copy = json_deep_copy(input);
  if (!copy)
    goto nomem;
  json_t *ops = json_object_get(copy, "openings");
  if (!ops || json_is_null(ops)) {
    ops = json_array();
    if (!ops || json_object_set_new(copy, "openings", ops) != 0)
      goto nomem;
  }
  if (json_is_array(ops) && ad__simulate_csv_openings(csv, name, ops, err) != 0)
    goto fail;
  return copy;
nomem:
  ad__err(err, AD_ENOMEM, "simulate", "input: out of memory");
fail:
  json_decref(copy);
  return NULL;
}

json_t *ad__simulate_args(const json_t *args, ad_error_t *err)
{
  if (!json_is_object(args))
    return ad__err(err, AD_EINVAL, "args", "arguments: must be an object {input, csv, csv_name}"), NULL;
  if (known_keys(args, err) != 0)
    return NULL;
  const json_t *input = json_object_get(args, "input");
  const json_t *csv = json_object_get(args, "csv");
  const json_t *name = json_object_get(args, "csv_name");
  if (!json_is_object(input))
    return ad__err(err, AD_EINVAL, "args", "input: required, the simulation input object (docs/placement.md)"), NULL;
  if (csv && !json_is_null(csv) && !json_is_string(csv))
    return ad__err(err, AD_EINVAL, "args", "csv: must be text ('platform,time' lines)"), NULL;
  if (name && !json_is_null(name) && !json_is_string(name))
    return ad__err(err, AD_EINVAL, "args", "csv_name: must be text"), NULL;
  if (!json_is_string(csv))
    return ad__simulate(input, err);
  json_t *in = with_csv(input, json_string_value(csv),
                        json_is_string(name) ? json_string_value(name) : "csv", err);
  json_t *report = in ? ad__simulate(in, err) : NULL;
  json_decref(in);
  return report;
}
