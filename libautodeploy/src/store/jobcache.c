/* jobcache.c - see jobcache.h. */
#include <msgpack.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/event_private.h"
#include "store/jobcache.h"

int ad__jobcache_return(const char *job_dir, const char *hash_type, const char *jid,
                        const char *minion, int64_t *retcode)
{
  const EVP_MD *md = EVP_get_digestbyname(hash_type && *hash_type ? hash_type : "sha256");
  unsigned char h[EVP_MAX_MD_SIZE];
  unsigned int hl = 0;
  if (!md || !EVP_Digest(jid, strlen(jid), h, &hl, md, NULL))
    return -1;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned i = 0; i < hl; i++)
    sprintf(hex + 2 * i, "%02x", h[i]);
  if (strchr(minion, '/') || !strcmp(minion, "..") || !strcmp(minion, "."))
    return -1; /* never a path outside the job's directory */
  char path[4096];
  snprintf(path, sizeof path, "%s/%.2s/%s/%s/return.p", job_dir, hex, hex + 2, minion);
  FILE *f = fopen(path, "rb");
  if (!f)
    return 0;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = size > 0 && size < (64L << 20) ? malloc((size_t)size) : NULL;
  size_t n = buf ? fread(buf, 1, (size_t)size, f) : 0;
  fclose(f);
  if (!buf || n != (size_t)size) {
    free(buf);
    return -1;
  }
  *retcode = 0;
  msgpack_zone z;
  msgpack_object o;
  if (!msgpack_zone_init(&z, 4096)) {
    free(buf);
    return -1;
  }
  int rc = -1;
  if (ad__msgpack_decode(buf, n, &z, &o, NULL) == 0 && o.type == MSGPACK_OBJECT_MAP) {
    rc = 1;
    const ad_value_t *r = ad_value_get((const ad_value_t *)&o, "retcode", (size_t)-1);
    if (r)
      ad_value_int(r, retcode);
  }
  msgpack_zone_destroy(&z);
  free(buf);
  return rc;
}
