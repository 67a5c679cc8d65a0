/* jobcache.c - see jobcache.h. */
#include <msgpack.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/event_private.h"
#include "store/jobcache.h"

#define AD_JOBCACHE_MAX_FILE (64L << 20)

/* <job_dir>/<h[:2]>/<h[2:]>/<name> with h = hash_type(jid) in hex, as
 * salt.utils.jid.jid_dir; 0, or -1 for an unknown hash or a name that
 * would leave the job's directory. */
static int job_path(char *path, size_t size, const char *job_dir, const char *hash_type,
                    const char *jid, const char *name)
{
  const EVP_MD *md = EVP_get_digestbyname(hash_type && *hash_type ? hash_type : "sha256");
  unsigned char h[EVP_MAX_MD_SIZE];
  unsigned int hl = 0;
  if (!md || !EVP_Digest(jid, strlen(jid), h, &hl, md, NULL))
    return -1;
  if (!*name || !strcmp(name, "..") || !strcmp(name, "."))
    return -1;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned i = 0; i < hl; i++)
    sprintf(hex + 2 * i, "%02x", h[i]);
  int n = snprintf(path, size, "%s/%.2s/%s/%s", job_dir, hex, hex + 2, name);
  return n > 0 && (size_t)n < size ? 0 : -1;
}

/* The whole file in *buf (the caller frees): 1; 0 when it is not there;
 * -1 when it cannot be read or is empty or over AD_JOBCACHE_MAX_FILE. */
static int read_file(const char *path, char **buf, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return 0;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  *buf = size > 0 && size < AD_JOBCACHE_MAX_FILE ? malloc((size_t)size) : NULL;
  *len = *buf ? fread(*buf, 1, (size_t)size, f) : 0;
  fclose(f);
  if (!*buf || *len != (size_t)size) {
    free(*buf);
    *buf = NULL;
    return -1;
  }
  return 1;
}

/* Read and decode one job cache file, then hand the object to `take`:
 * take's answer (1 or -1), 0 when the file is not there, -1 when unreadable. */
static int with_object(const char *path, int (*take)(const msgpack_object *, void *), void *arg)
{
  char *buf = NULL;
  size_t n = 0;
  int rc = read_file(path, &buf, &n);
  if (rc != 1)
    return rc;
  msgpack_zone z;
  msgpack_object o;
  rc = -1;
  if (msgpack_zone_init(&z, 4096)) {
    if (ad__msgpack_decode(buf, n, &z, &o, NULL) == 0)
      rc = take(&o, arg);
    msgpack_zone_destroy(&z);
  }
  free(buf);
  return rc;
}

static int take_retcode(const msgpack_object *o, void *arg)
{
  int64_t *retcode = arg;
  if (o->type != MSGPACK_OBJECT_MAP)
    return -1;
  *retcode = 0;
  const ad_value_t *r = ad_value_get((const ad_value_t *)o, "retcode", (size_t)-1);
  if (r)
    ad_value_int(r, retcode);
  return 1;
}

int ad__jobcache_return(const char *job_dir, const char *hash_type, const char *jid,
                        const char *minion, int64_t *retcode)
{
  char name[1024], path[4096];
  if (strchr(minion, '/') || !strcmp(minion, "..") || !strcmp(minion, "."))
    return -1; /* never a path outside the job's directory */
  snprintf(name, sizeof name, "%s/return.p", minion);
  if (strlen(minion) + 9 >= sizeof name ||
      job_path(path, sizeof path, job_dir, hash_type, jid, name))
    return -1;
  *retcode = 0;
  return with_object(path, take_retcode, retcode);
}

static int take_minions(const msgpack_object *o, void *arg)
{
  json_t **out = arg;
  if (o->type != MSGPACK_OBJECT_ARRAY)
    return -1;
  json_t *list = json_array();
  for (uint32_t i = 0; list && i < o->via.array.size; i++) {
    const msgpack_object *m = &o->via.array.ptr[i];
    json_t *s = m->type == MSGPACK_OBJECT_STR
                    ? json_stringn(m->via.str.ptr, m->via.str.size) : NULL;
    if (!s || json_array_append_new(list, s)) { /* not a string, or not UTF-8 */
      json_decref(list);
      return -1;
    }
  }
  *out = list;
  return list ? 1 : -1;
}

int ad__jobcache_minions(const char *job_dir, const char *hash_type, const char *jid,
                         json_t **minions)
{
  char path[4096];
  *minions = NULL;
  if (job_path(path, sizeof path, job_dir, hash_type, jid, ".minions.p"))
    return -1;
  return with_object(path, take_minions, minions);
}
