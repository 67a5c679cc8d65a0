/*
 * master_conf.c - the few salt-master settings autodeploy-events needs,
 * read from the master config and its includes. What is and is not
 * understood is listed in master_conf.h; the merge order and the sock_dir
 * rules follow salt/config/__init__.py (master_config, include_config,
 * apply_master_config, prepend_root_dir).
 */
#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "master_conf.h"

#define MAX_DEPTH 16                  /* include nesting (Salt has none) */
#define MAX_FILE_SIZE ((long)16 << 20)

enum { K_SOCK_DIR, K_ROOT_DIR, K_CACHEDIR, K_IPC_MODE, K_PUB_PORT,
       K_PULL_PORT, K_DEFAULT_INCLUDE, K_INCLUDE, NKEYS };
enum { T_STR, T_PORT, T_LIST };

static const struct {
  const char *name;
  int type;
} KEYS[NKEYS] = {
    [K_SOCK_DIR] = {"sock_dir", T_STR},
    [K_ROOT_DIR] = {"root_dir", T_STR},
    [K_CACHEDIR] = {"cachedir", T_STR},
    [K_IPC_MODE] = {"ipc_mode", T_STR},
    [K_PUB_PORT] = {"tcp_master_pub_port", T_PORT},
    [K_PULL_PORT] = {"tcp_master_pull_port", T_PORT},
    [K_DEFAULT_INCLUDE] = {"default_include", T_LIST},
    [K_INCLUDE] = {"include", T_LIST},
};

/* What one file says: per key, whether it was there, where, its value. */
typedef struct {
  int set[NKEYS], line[NKEYS], port[NKEYS];
  char *str[NKEYS];   /* T_STR */
  char **list[NKEYS]; /* T_LIST, n entries */
  int n[NKEYS];
} file_opts_t;

/* Values merged so far (borrowed from no one: owned copies). */
typedef struct {
  char *str[NKEYS];
  int port[NKEYS];
} merged_t;

static int fail(ad_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(ad_error_t *err, int code, const char *fmt, ...)
{
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    snprintf(err->domain, sizeof(err->domain), "config");
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
  }
  return code;
}

static int key_index(const char *k, size_t n)
{
  for (int i = 0; i < NKEYS; i++)
    if (strlen(KEYS[i].name) == n && memcmp(KEYS[i].name, k, n) == 0)
      return i;
  return -1;
}

static void file_opts_free(file_opts_t *fo)
{
  for (int i = 0; i < NKEYS; i++) {
    free(fo->str[i]);
    for (int j = 0; j < fo->n[i]; j++)
      free(fo->list[i][j]);
    free(fo->list[i]);
  }
  memset(fo, 0, sizeof(*fo));
}

static int list_add(file_opts_t *fo, int k, char *item)
{
  char **l = realloc(fo->list[k], (size_t)(fo->n[k] + 1) * sizeof(*l));
  if (!l) {
    free(item);
    return -1;
  }
  l[fo->n[k]++] = item;
  fo->list[k] = l;
  return 0;
}

/* A port as Salt's int option: decimal, 1..65535. 0, or -1. */
static int parse_port(const char *s, int *out)
{
  long v = 0;
  if (!*s)
    return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || (v = v * 10 + (*s - '0')) > 65535)
      return -1;
  }
  if (v < 1)
    return -1;
  *out = (int)v;
  return 0;
}

/* ---- one-line YAML scalars ---------------------------------------------- */

static void put_utf8(char **w, unsigned long c)
{
  unsigned char *p = (unsigned char *)*w;
  if (c < 0x80) {
    *p++ = (unsigned char)c;
  } else if (c < 0x800) {
    *p++ = (unsigned char)(0xc0 | (c >> 6));
    *p++ = (unsigned char)(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    *p++ = (unsigned char)(0xe0 | (c >> 12));
    *p++ = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    *p++ = (unsigned char)(0x80 | (c & 0x3f));
  } else {
    *p++ = (unsigned char)(0xf0 | (c >> 18));
    *p++ = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
    *p++ = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    *p++ = (unsigned char)(0x80 | (c & 0x3f));
  }
  *w = (char *)p;
}

/* Parse the scalar at *pp. Plain scalars end at " #", end of line, and in
 * a flow list (`flow`) also at ',' and ']'. *out: malloc'd text, or NULL
 * for YAML null. *pp moves past it. 0, or -1 with `why` filled. */
static int parse_scalar(const char **pp, int flow, char **out, char *why,
                        size_t whylen)
{
  const char *p = *pp;
  *out = NULL;
  if (*p == '"' || *p == '\'') {
    char q = *p++;
    char *buf = malloc(strlen(p) + 1), *w = buf;
    if (!buf)
      return snprintf(why, whylen, "no memory"), -1;
    for (;;) {
      if (!*p) {
        free(buf);
        return snprintf(why, whylen, "no closing %c on this line (multi-line "
                        "scalars are not supported)", q), -1;
      }
      if (q == '\'' && p[0] == '\'' && p[1] == '\'') {
        *w++ = '\'', p += 2;
      } else if (*p == q) {
        p++;
        break;
      } else if (q == '"' && *p == '\\') {
        const char *e = p + 1;
        unsigned long c = 0;
        int hex = *e == 'x' ? 2 : *e == 'u' ? 4 : *e == 'U' ? 8 : 0;
        static const char from[] = "\"\\/nrt ", to[] = "\"\\/\n\r\t ";
        const char *simple = *e ? strchr(from, *e) : NULL;
        if (simple) {
          *w++ = to[simple - from];
          p = e + 1;
          continue;
        }
        for (int i = 1; hex && i <= hex; i++) {
          char h = e[i];
          int d = h >= '0' && h <= '9'   ? h - '0'
                  : h >= 'a' && h <= 'f' ? h - 'a' + 10
                  : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                         : -1;
          if (d < 0) {
            hex = 0;
            break;
          }
          c = c * 16 + (unsigned long)d;
        }
        if (!hex || c == 0 || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
          free(buf);
          return snprintf(why, whylen, "unsupported escape \\%.1s in a "
                          "double-quoted value", e), -1;
        }
        put_utf8(&w, c);
        p = e + 1 + hex;
      } else {
        *w++ = *p++;
      }
    }
    *w = '\0';
    *out = buf;
  } else {
    if (*p && strchr("&*!|>{%@`", *p))
      return snprintf(why, whylen, "'%c': anchors, aliases, tags, block "
                      "scalars and flow mappings are not supported", *p), -1;
    const char *s = p;
    while (*p && !((*p == '#') && p > s && (p[-1] == ' ' || p[-1] == '\t')) &&
           !(flow && (*p == ',' || *p == ']')))
      p++;
    const char *e = p;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    size_t n = (size_t)(e - s);
    int null = n == 0 || (n == 1 && *s == '~') ||
               (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) ||
                           !memcmp(s, "NULL", 4)));
    if (!null && !(*out = strndup(s, n)))
      return snprintf(why, whylen, "no memory"), -1;
  }
  *pp = p;
  return 0;
}

/* Only blanks or a comment left? */
static int line_done(const char *p)
{
  while (*p == ' ' || *p == '\t')
    p++;
  return *p == '\0' || *p == '#';
}

/* `[a, 'b', "c"]` on one line into fo->list[k]. */
static int parse_flow_list(const char *p, file_opts_t *fo, int k, char *why,
                           size_t whylen)
{
  p++; /* '[' */
  for (;;) {
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == ']') /* `[]`, or a trailing comma as PyYAML allows */
      break;
    char *item;
    if (parse_scalar(&p, 1, &item, why, whylen) != 0)
      return -1;
    if (!item)
      return snprintf(why, whylen, "empty or null entry in the list"), -1;
    if (list_add(fo, k, item) != 0)
      return snprintf(why, whylen, "no memory"), -1;
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == ',') {
      p++;
      continue;
    }
    if (*p == ']')
      break;
    return snprintf(why, whylen, "%s", *p ? "expected ',' or ']' in the list"
                    : "the list must end on the same line (multi-line flow "
                      "lists are not supported)"), -1;
  }
  if (!line_done(p + 1))
    return snprintf(why, whylen, "text after the closing ']'"), -1;
  return 0;
}

/* Set key k of fo from the value text at p (the rest of its line). */
static int set_value(file_opts_t *fo, int k, const char *p, char *why,
                     size_t whylen)
{
  free(fo->str[k]);
  fo->str[k] = NULL;
  for (int j = 0; j < fo->n[k]; j++)
    free(fo->list[k][j]);
  fo->n[k] = 0;
  if (KEYS[k].type == T_LIST && *p == '[')
    return parse_flow_list(p, fo, k, why, whylen);
  if (*p == '[' || (*p == '-' && (p[1] == ' ' || !p[1])))
    return snprintf(why, whylen, "must be a scalar, not a list"), -1;
  char *v;
  if (parse_scalar(&p, 0, &v, why, whylen) != 0)
    return -1;
  if (!line_done(p)) {
    free(v);
    return snprintf(why, whylen, "text after the closing quote"), -1;
  }
  if (KEYS[k].type == T_LIST) {
    if (v && list_add(fo, k, v) != 0)
      return snprintf(why, whylen, "no memory"), -1;
    return 0;
  }
  if (!v)
    return snprintf(why, whylen, "has no value (null)"), -1;
  if (KEYS[k].type == T_PORT) {
    int ok = parse_port(v, &fo->port[k]) == 0;
    if (!ok)
      snprintf(why, whylen, "'%.60s' is not a port number (1..65535)", v);
    free(v);
    return ok ? 0 : -1;
  }
  fo->str[k] = v;
  return 0;
}

/* The top-level key of a column-0 line: its index (or -1 when it is not
 * one of ours), *rest the value text. 0 when the line is no `key:`. */
static int split_key(const char *line, int *k, const char **rest)
{
  const char *p = line, *ks, *ke;
  if (*p == '"' || *p == '\'') {
    char q = *p++;
    ks = p;
    while (*p && *p != q)
      p++;
    if (!*p)
      return 0;
    ke = p++;
    if (*p != ':')
      return 0;
  } else {
    ks = p;
    while (*p && !(*p == ':' && (p[1] == ' ' || p[1] == '\t' || !p[1])))
      p++;
    if (!*p)
      return 0;
    ke = p;
    while (ke > ks && (ke[-1] == ' ' || ke[-1] == '\t'))
      ke--;
  }
  p++; /* ':' */
  if (*p && *p != ' ' && *p != '\t')
    return 0;
  while (*p == ' ' || *p == '\t')
    p++;
  *k = key_index(ks, (size_t)(ke - ks));
  *rest = p;
  return 1;
}

/* Line by line over a YAML text (modified in place). */
static int parse_yaml(char *text, const char *path, file_opts_t *fo,
                      ad_error_t *err)
{
  char why[160];
  int lineno = 0;
  int open = -1;   /* our list key with an empty value: '- item' may follow */
  int scalar = -1; /* our key whose value was on its line */
  for (char *line = text, *next; line; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = '\0';
    lineno++;
    size_t len = strlen(line);
    if (len && line[len - 1] == '\r')
      line[len - 1] = '\0';
    if (line_done(line))
      continue; /* blank or comment */
    const char *p = line + strspn(line, " \t");
    int item = p[0] == '-' && (p[1] == ' ' || p[1] == '\t' || !p[1]);
    if (p != line || item) { /* indented, or a block list entry */
      if (open >= 0 && item) {
        p += 1 + strspn(p + 1, " \t");
        char *v = NULL;
        if (parse_scalar(&p, 0, &v, why, sizeof(why)) == 0 && !v)
          snprintf(why, sizeof(why), "empty or null entry in the list");
        else if (v && !line_done(p))
          snprintf(why, sizeof(why), "text after the closing quote");
        else if (v && list_add(fo, open, v) == 0)
          continue;
        free(v);
        return fail(err, AD_ECONFIG, "%s:%d: %s: %s", path, lineno,
                    KEYS[open].name, why);
      }
      if (open >= 0)
        return fail(err, AD_ECONFIG, "%s:%d: %s: must be a string or a list "
                    "of '- item' lines (nested blocks are not supported)",
                    path, lineno, KEYS[open].name);
      if (scalar >= 0)
        return fail(err, AD_ECONFIG, "%s:%d: %s: its value continues on this "
                    "line (multi-line values are not supported)", path,
                    lineno, KEYS[scalar].name);
      continue; /* inside a key we do not read */
    }
    open = scalar = -1;
    int k;
    const char *rest;
    if (!split_key(line, &k, &rest) || k < 0)
      continue; /* `---`, `? key`, or a key we do not read */
    fo->set[k] = 1;
    fo->line[k] = lineno;
    if (line_done(rest) && KEYS[k].type != T_LIST)
      return fail(err, AD_ECONFIG, "%s:%d: %s: no value on this line (it is "
                  "null, or a nested block: values must be one-line scalars)",
                  path, lineno, KEYS[k].name);
    if (set_value(fo, k, rest, why, sizeof(why)) != 0)
      return fail(err, AD_ECONFIG, "%s:%d: %s: %s", path, lineno,
                  KEYS[k].name, why);
    if (line_done(rest))
      open = k; /* null, unless '- item' lines follow */
    else
      scalar = k;
  }
  return 0;
}

/* ---- JSON files --------------------------------------------------------- */

static int parse_json(const char *text, size_t len, const char *path,
                      file_opts_t *fo, ad_error_t *err)
{
  json_error_t je;
  json_t *root = json_loadb(text, len, 0, &je);
  if (!root)
    return fail(err, AD_ECONFIG, "%s:%d: column %d: %s", path, je.line,
                je.column, je.text);
  int rc = 0;
  for (int k = 0; k < NKEYS && rc == 0; k++) {
    json_t *v = json_object_get(root, KEYS[k].name);
    if (!v)
      continue;
    fo->set[k] = 1;
    const char *want = NULL;
    if (KEYS[k].type == T_LIST) {
      if (json_is_string(v)) {
        char *s = strdup(json_string_value(v));
        rc = !s || list_add(fo, k, s) != 0 ? AD_ENOMEM : 0;
      } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
          char *s = json_is_string(e) ? strdup(json_string_value(e)) : NULL;
          if (!json_is_string(e)) {
            want = "a string or a list of strings";
            break;
          }
          if (!s || list_add(fo, k, s) != 0) {
            rc = AD_ENOMEM;
            break;
          }
        }
      } else if (!json_is_null(v)) {
        want = "a string or a list of strings";
      }
    } else if (KEYS[k].type == T_PORT) {
      json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
      if (json_is_string(v)) {
        if (parse_port(json_string_value(v), &fo->port[k]) != 0)
          want = "a port number (1..65535)";
      } else if (n < 1 || n > 65535) {
        want = "a port number (1..65535)";
      } else {
        fo->port[k] = (int)n;
      }
    } else if (!json_is_string(v)) {
      want = "a string";
    } else if (!(fo->str[k] = strdup(json_string_value(v)))) {
      rc = AD_ENOMEM;
    }
    if (want)
      rc = fail(err, AD_ECONFIG, "%s: %s must be %s", path, KEYS[k].name, want);
    else if (rc)
      rc = fail(err, AD_ENOMEM, "%s: no memory", path);
  }
  json_decref(root);
  return rc;
}

/* ---- files, includes, merge --------------------------------------------- */

static int read_file(const char *path, file_opts_t *fo, ad_error_t *err)
{
  FILE *f = fopen(path, "rb");
  struct stat st;
  if (!f)
    return fail(err, AD_EIO, "%s: %s", path, strerror(errno));
  int e = fstat(fileno(f), &st) != 0 ? errno
          : S_ISDIR(st.st_mode)      ? EISDIR
          : st.st_size > MAX_FILE_SIZE ? EFBIG
                                       : 0;
  if (e) {
    fclose(f);
    return fail(err, AD_EIO, "%s: %s", path, strerror(e));
  }
  char *text = malloc((size_t)st.st_size + 1);
  size_t n = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
  int bad = !text || ferror(f);
  fclose(f);
  if (bad) {
    free(text);
    return fail(err, AD_EIO, "%s: cannot read", path);
  }
  text[n] = '\0';
  /* A UTF-8 byte order mark is not part of the first key (PyYAML agrees). */
  char *body = strncmp(text, "\xef\xbb\xbf", 3) == 0 ? text + 3 : text;
  /* JSON when the first thing that is not a blank or comment is '{'. */
  const char *p = body;
  for (;;) {
    p += strspn(p, " \t\r\n");
    if (*p != '#')
      break;
    p += strcspn(p, "\n");
  }
  int rc = *p == '{' ? parse_json(body, n - (size_t)(body - text), path, fo, err)
                     : parse_yaml(body, path, fo, err);
  free(text);
  return rc;
}

static int replace(char **dst, const char *src)
{
  char *s = strdup(src);
  if (!s)
    return -1;
  free(*dst);
  *dst = s;
  return 0;
}

static int load_tree(master_conf_t *c, merged_t *m, const char *path,
                     int depth, int is_main, ad_error_t *err);

/* Salt's include_config: each entry a glob relative to `from`'s dir. */
static int include_globs(master_conf_t *c, merged_t *m, char **pats, int n,
                         const char *from, int depth, ad_error_t *err)
{
  const char *slash = strrchr(from, '/');
  int dirlen = slash ? (int)(slash - from) : 0;
  for (int i = 0; i < n; i++) {
    char pat[4096];
    const char *g = pats[i];
    if (g[0] == '/' || g[0] == '~' || !slash) /* ~ expands to absolute */
      snprintf(pat, sizeof(pat), "%s", g);
    else
      snprintf(pat, sizeof(pat), "%.*s/%s", dirlen, from, g);
    glob_t gl;
    int rc = glob(pat, GLOB_TILDE, NULL, &gl);
    if (rc == GLOB_NOMATCH)
      continue; /* Salt warns, and goes on */
    if (rc != 0) {
      globfree(&gl);
      return fail(err, AD_EIO, "%s: include %s: cannot expand the glob", from,
                  g);
    }
    for (size_t j = 0; j < gl.gl_pathc && rc == 0; j++)
      rc = load_tree(c, m, gl.gl_pathv[j], depth + 1, 0, err);
    globfree(&gl);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int load_tree(master_conf_t *c, merged_t *m, const char *path,
                     int depth, int is_main, ad_error_t *err)
{
  if (depth > MAX_DEPTH)
    return fail(err, AD_ECONFIG, "%s: includes nested deeper than %d (an "
                "include loop?)", path, MAX_DEPTH);
  if (c->nfiles >= MASTER_CONF_MAX_FILES)
    return fail(err, AD_ECONFIG, "%s: more than %d config files included",
                path, MASTER_CONF_MAX_FILES);
  file_opts_t fo;
  memset(&fo, 0, sizeof(fo));
  int rc = read_file(path, &fo, err);
  if (rc == 0 && !(c->files[c->nfiles] = strdup(path)))
    rc = fail(err, AD_ENOMEM, "%s: no memory", path);
  if (rc == 0)
    c->nfiles++;
  for (int k = 0; k < NKEYS && rc == 0; k++) {
    if (!fo.set[k] || KEYS[k].type == T_LIST)
      continue;
    if (KEYS[k].type == T_PORT)
      m->port[k] = fo.port[k];
    else if (replace(&m->str[k], fo.str[k]) != 0)
      rc = fail(err, AD_ENOMEM, "%s: no memory", path);
  }
  if (rc == 0 && is_main) {
    static char dflt[] = "master.d/*.conf";
    char *dl[] = {dflt};
    if (fo.set[K_DEFAULT_INCLUDE])
      rc = include_globs(c, m, fo.list[K_DEFAULT_INCLUDE],
                         fo.n[K_DEFAULT_INCLUDE], path, depth, err);
    else
      rc = include_globs(c, m, dl, 1, path, depth, err);
  }
  if (rc == 0)
    rc = include_globs(c, m, fo.list[K_INCLUDE], fo.n[K_INCLUDE], path, depth,
                       err);
  file_opts_free(&fo);
  return rc;
}

/* posixpath.normpath for absolute paths: no '.', '..' or '//'. */
static void normpath(char *p)
{
  char *w = p, *r = p;
  while (*r) {
    while (*r == '/')
      r++;
    char *s = r;
    while (*r && *r != '/')
      r++;
    size_t n = (size_t)(r - s);
    if (n == 0 || (n == 1 && s[0] == '.'))
      continue;
    if (n == 2 && s[0] == '.' && s[1] == '.') {
      while (w > p && *--w != '/')
        ;
      continue;
    }
    *w++ = '/';
    memmove(w, s, n);
    w += n;
  }
  if (w == p)
    *w++ = '/';
  *w = '\0';
}

/* Python's len() of UTF-8 text: code points, not bytes. */
static size_t chars(const char *s)
{
  size_t n = 0;
  for (; *s; s++)
    n += ((unsigned char)*s & 0xc0) != 0x80;
  return n;
}

/* apply_master_config's two rules that move sock_dir. */
static int final_sock_dir(master_conf_t *c, const merged_t *m, ad_error_t *err)
{
  const char *sock = m->str[K_SOCK_DIR] ? m->str[K_SOCK_DIR]
                                        : MASTER_CONF_SOCK_DIR;
  const char *cache = m->str[K_CACHEDIR] ? m->str[K_CACHEDIR]
                                         : MASTER_CONF_CACHEDIR;
  const char *rootd = m->str[K_ROOT_DIR] ? m->str[K_ROOT_DIR] : "/";
  char path[4096], root[4096], out[8192];
  if (chars(sock) > chars(cache) + 10)
    snprintf(path, sizeof(path), "%s/.salt-unix", cache);
  else
    snprintf(path, sizeof(path), "%s", sock);
  if (rootd[0] == '/') {
    snprintf(root, sizeof(root), "%s", rootd);
  } else {
    char cwd[2048];
    if (!getcwd(cwd, sizeof(cwd)))
      return fail(err, AD_EIO, "root_dir %s: getcwd: %s", rootd,
                  strerror(errno));
    snprintf(root, sizeof(root), "%s/%s", cwd, rootd);
  }
  normpath(root);
  /* prepend_root_dir with Salt's ROOT_DIR "/": a path already under
   * root_dir keeps its tail, any other is put under root_dir. */
  size_t rl = strlen(root);
  const char *tail = path;
  if (strcmp(root, "/") != 0 && strncmp(path, root, rl) == 0 &&
      path[rl] == '/')
    tail = path + rl;
  snprintf(out, sizeof(out), "%s/%s", root, tail);
  normpath(out);
  if (strlen(out) >= sizeof(c->sock_dir))
    return fail(err, AD_ECONFIG, "sock_dir is too long: %.100s...", out);
  strcpy(c->sock_dir, out);
  return 0;
}

void master_conf_init(master_conf_t *c)
{
  memset(c, 0, sizeof(*c));
  snprintf(c->sock_dir, sizeof(c->sock_dir), "%s", MASTER_CONF_SOCK_DIR);
  c->tcp_pub_port = MASTER_CONF_PUB_PORT;
  c->tcp_pull_port = MASTER_CONF_PULL_PORT;
}

void master_conf_free(master_conf_t *c)
{
  for (int i = 0; i < c->nfiles; i++)
    free(c->files[i]);
  c->nfiles = 0;
}

int master_conf_load(master_conf_t *c, const char *path, ad_error_t *err)
{
  char file[4096];
  struct stat st;
  if (!path || !*path)
    return fail(err, AD_EINVAL, "no master config path given");
  if (stat(path, &st) != 0)
    return fail(err, AD_EIO, "%s: %s", path, strerror(errno));
  /* salt-master -c takes the directory holding "master". */
  snprintf(file, sizeof(file), S_ISDIR(st.st_mode) ? "%s/master" : "%s", path);
  merged_t m;
  memset(&m, 0, sizeof(m));
  m.port[K_PUB_PORT] = MASTER_CONF_PUB_PORT;
  m.port[K_PULL_PORT] = MASTER_CONF_PULL_PORT;
  int rc = load_tree(c, &m, file, 0, 1, err);
  if (rc == 0)
    rc = final_sock_dir(c, &m, err);
  if (rc == 0) {
    /* Salt: anything but "tcp" is the default Unix-socket mode. */
    c->ipc_mode_tcp = m.str[K_IPC_MODE] && !strcmp(m.str[K_IPC_MODE], "tcp");
    c->tcp_pub_port = m.port[K_PUB_PORT];
    c->tcp_pull_port = m.port[K_PULL_PORT];
  }
  for (int k = 0; k < NKEYS; k++)
    free(m.str[k]);
  return rc;
}
