/* test_config_reference.c - docs/configuration-reference.md is generated
 * from the library's key tables (engine/config_keys.c) and must equal what
 * this renders, so the reference cannot drift from the code. To regenerate
 * after changing a table:
 *
 *   make lib test-c; AD_UPDATE_DOCS=1 build/tests/test_config_reference
 *
 * Run from the repository root (as make test-c does). */
#include <dirent.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_private.h"
#include "harness.h"

#define DOC "docs/configuration-reference.md"

typedef struct {
  char *p;
  size_t len, cap;
} buf_t;

static void put(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf_t *b, const char *fmt, ...)
{
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0)
      return;
    if (b->p && b->len + (size_t)n < b->cap) {
      b->len += (size_t)n;
      return;
    }
    b->cap = (b->cap + (size_t)n + 1) * 2;
    b->p = realloc(b->p, b->cap);
  }
}

static void range(buf_t *b, const json_t *k)
{
  const char *type = json_string_value(json_object_get(k, "type"));
  const json_t *v = json_object_get(k, "values");
  if (!strcmp(type, "bool")) {
    put(b, "`true`, `false`");
  } else if (v) {
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) put(b, "%s`%s`", i ? ", " : "", json_string_value(e));
  } else if (json_object_get(k, "min")) {
    put(b, "%lld..%lld", (long long)json_integer_value(json_object_get(k, "min")),
        (long long)json_integer_value(json_object_get(k, "max")));
  }
}

static char *render(void)
{
  json_t *all = ad__config_keys_json(NULL), *t;
  buf_t b = {0};
  put(&b, "# Configuration reference\n\n"
          "<!-- Generated from the library's key tables (libautodeploy/src/engine/config_keys.c)\n"
          "     by libautodeploy/tests/engine/test_config_reference.c, which fails when this file\n"
          "     differs. Do not edit; regenerate with\n"
          "     AD_UPDATE_DOCS=1 build/tests/test_config_reference -->\n\n"
          "Every key the library reads from a table, with its type, default and range. A bad value\n"
          "is refused naming the key; unknown keys are refused. The meaning of each key is on the\n"
          "page named under each table; [configuration.md](configuration.md) introduces the engine\n"
          "entry. Objects and arrays a module reads by hand (`notify.channels`, webhook `headers`,\n"
          "`registry.profiles`, `private_ip` rules, the platform documents) are on their pages.\n"
          "Types: `size` is bytes; a `string` default `\"\"` means none; a `secret` is a string\n"
          "that no log line, error, event or stored document shows ([security.md](security.md#secrets)).\n");
  size_t i;
  json_array_foreach(json_object_get(all, "tables"), i, t) {
    put(&b, "\n## `%s`\n\nSee [%s](%s).\n\n| key | type | default | range / values |\n|---|---|---|---|\n",
        json_string_value(json_object_get(t, "path")), json_string_value(json_object_get(t, "page")),
        json_string_value(json_object_get(t, "page")));
    size_t j;
    json_t *k;
    json_array_foreach(json_object_get(t, "keys"), j, k) {
      const char *def = json_string_value(json_object_get(k, "default"));
      put(&b, "| `%s` | %s | %s%s%s | ", json_string_value(json_object_get(k, "name")),
          json_string_value(json_object_get(k, "type")), *def ? "`" : "\"\"", def, *def ? "`" : "");
      range(&b, k);
      put(&b, " |\n");
    }
  }
  json_decref(all);
  return b.p;
}

TEST(reference_matches_the_tables)
{
  char *want = render();
  ASSERT(want != NULL);
  if (!want)
    return;
  if (getenv("AD_UPDATE_DOCS")) {
    FILE *f = fopen(DOC, "w");
    ASSERT(f && fputs(want, f) >= 0 && fclose(f) == 0);
    printf("  wrote %s\n", DOC);
  }
  size_t len = 0;
  char *have = h_slurp(DOC, &len);
  int same = have && len == strlen(want) && !memcmp(have, want, len);
  if (!same) {
    size_t line = 1;
    for (size_t i = 0; have && i < len && want[i] && have[i] == want[i]; i++)
      line += have[i] == '\n';
    fprintf(stderr, "  %s differs from the key tables (first at line %zu); regenerate it:\n"
            "  AD_UPDATE_DOCS=1 build/tests/test_config_reference\n", DOC, line);
  }
  ASSERT(same);
  free(have);
  free(want);
}

TEST(every_table_key_has_a_default_and_a_type)
{
  json_t *all = ad__config_keys_json(NULL), *t, *k;
  size_t i, j, n = 0;
  json_array_foreach(json_object_get(all, "tables"), i, t) {
    ASSERT(json_array_size(json_object_get(t, "keys")) > 0);
    json_array_foreach(json_object_get(t, "keys"), j, k) {
      ASSERT(json_is_string(json_object_get(k, "default")));
      n++;
    }
  }
  ASSERT(n > 100);
  json_decref(all);
}

/* Every key table in the sources has its getter listed in config_keys.c:
 * a module that adds a table and forgets the list fails here, so the
 * reference cannot miss keys either. Counts `ad__config_key_t X[] = {`
 * definitions under libautodeploy/src against the tables listed. */
static int count_tables(const char *dir, int *tables)
{
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    char path[512];
    size_t n = strlen(e->d_name);
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (e->d_type == DT_DIR) {
      count_tables(path, tables);
    } else if (n > 2 && !strcmp(e->d_name + n - 2, ".c")) {
      size_t len;
      char *text = h_slurp(path, &len);
      for (char *p = text; p && (p = strstr(p, "ad__config_key_t ")); p++) {
        char *eq = strstr(p, "[] = {"), *nl = strchr(p, '\n');
        if (eq && nl && eq < nl)
          (*tables)++;
      }
      free(text);
    }
  }
  closedir(d);
  return 0;
}

TEST(every_table_in_the_sources_is_listed)
{
  int tables = 0;
  ASSERT(count_tables("libautodeploy/src", &tables) == 0);
  json_t *all = ad__config_keys_json(NULL);
  size_t n = json_array_size(json_object_get(all, "tables"));
  json_decref(all);
  /* the webhook channel's table is empty (its keys are headers, read by hand) */
  if ((size_t)tables != n + 1)
    fprintf(stderr, "  %d key tables in libautodeploy/src, %zu listed in engine/config_keys.c "
            "(+1 empty: webhook): add the new table's getter to TABLES there\n", tables, n);
  ASSERT((size_t)tables == n + 1);
}

RUN(CASE(reference_matches_the_tables), CASE(every_table_key_has_a_default_and_a_type),
    CASE(every_table_in_the_sources_is_listed))
