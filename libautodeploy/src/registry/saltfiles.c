/* saltfiles.c - see saltfiles.h. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <msgpack.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error_private.h"
#include "wire/json.h"
#include "wire/event_private.h"
#include "registry/saltfiles.h"

#define MAX_CACHE_FILE (4u << 20)

int ad__salt_valid_id(const char *id, size_t n)
{
  if (!id || n == 0 || n > AD__MINION_ID_MAX)
    return 0;
  if ((n == 1 && id[0] == '.') || (n == 2 && id[0] == '.' && id[1] == '.'))
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)id[i];
    if (c <= 0x20 || c >= 0x7f || c == '/' || c == '\\')
      return 0;
  }
  return 1;
}

/* salt.utils.crypt.pem_finger: digest of the non-blank lines between the
 * first and the last, newlines kept; hex pairs joined by ':'. */
static int pem_finger(const char *path, const char *hash_type, char *out, size_t size)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  char line[1024];
  char *body = NULL;
  size_t blen = 0, nlines = 0, last_start = 0;
  int rc = -1;
  while (fgets(line, sizeof line, f)) {
    size_t l = strlen(line), k = 0;
    while (k < l && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n'))
      k++;
    if (k == l)
      continue; /* blank */
    if (nlines++ == 0)
      continue; /* the BEGIN line */
    char *nb = realloc(body, blen + l + 1);
    if (!nb)
      goto out;
    body = nb;
    last_start = blen;
    memcpy(body + blen, line, l);
    blen += l;
    if (blen > 65536)
      goto out;
  }
  if (nlines < 2)
    goto out;
  blen = last_start; /* drop the END line */
  const EVP_MD *md = EVP_get_digestbyname(hash_type && *hash_type ? hash_type : "sha256");
  unsigned char h[EVP_MAX_MD_SIZE];
  unsigned hl = 0;
  if (!md || !EVP_Digest(body ? body : "", blen, h, &hl, md, NULL) || size < hl * 3)
    goto out;
  for (unsigned i = 0; i < hl; i++)
    sprintf(out + 3 * i, "%02x%s", h[i], i + 1 < hl ? ":" : "");
  rc = 0;
out:
  free(body);
  fclose(f);
  return rc;
}

int ad__salt_key_accepted(const char *pki_dir, const char *id, const char *hash_type,
                          char *fingerprint, size_t fp_size, ad_error_t *err)
{
  if (!ad__salt_valid_id(id, strlen(id)))
    return 0;
  char path[4096];
  snprintf(path, sizeof path, "%s/minions/%s", pki_dir, id);
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      char dir[4096];
      snprintf(dir, sizeof dir, "%s/minions", pki_dir);
      if (stat(dir, &st) != 0)
        return ad__err_errno(err, AD_EIO, errno, "pki_dir %s: no minions directory", pki_dir);
      return 0;
    }
    return ad__err_errno(err, AD_EIO, errno, "key of %s", id);
  }
  if (!S_ISREG(st.st_mode))
    return 0;
  if (fingerprint && fp_size) {
    fingerprint[0] = 0;
    if (pem_finger(path, hash_type, fingerprint, fp_size) != 0)
      return ad__err(err, AD_EIO, "salt", "key of %s: cannot read %s", id, path);
  }
  return 1;
}

static char *slurp(const char *path, size_t *len, struct stat *st, ad_error_t *err)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    ad__err_errno(err, errno == ENOENT ? AD_ENOTFOUND : AD_EIO, errno, "%s", path);
    return NULL;
  }
  if (fstat(fileno(f), st) != 0 || !S_ISREG(st->st_mode)) {
    fclose(f);
    ad__err(err, AD_EIO, "salt", "%s: not a regular file", path);
    return NULL;
  }
  if ((size_t)st->st_size > MAX_CACHE_FILE) {
    fclose(f);
    ad__err(err, AD_ETOOBIG, "salt", "%s: %lld bytes, over the %u limit", path,
            (long long)st->st_size, MAX_CACHE_FILE);
    return NULL;
  }
  char *buf = malloc((size_t)st->st_size + 1);
  size_t n = buf ? fread(buf, 1, (size_t)st->st_size, f) : 0;
  fclose(f);
  if (!buf || n != (size_t)st->st_size) {
    free(buf);
    ad__err(err, AD_EIO, "salt", "%s: short read", path);
    return NULL;
  }
  *len = n;
  return buf;
}

static json_t *grains_from(const char *path, int wrapped, int64_t *stamp, int64_t *mtime,
                           ad_error_t *err)
{
  size_t len;
  struct stat st;
  char *buf = slurp(path, &len, &st, err);
  if (!buf)
    return NULL;
  msgpack_zone z;
  msgpack_object o;
  json_t *out = NULL;
  if (!msgpack_zone_init(&z, 4096)) {
    free(buf);
    ad__err(err, AD_ENOMEM, "salt", "no memory");
    return NULL;
  }
  ad_error_t derr;
  if (ad__msgpack_decode(buf, len, &z, &o, &derr) != 0) {
    ad__err(err, AD_EDECODE, "salt", "%s: %s", path, derr.message);
  } else {
    const ad_value_t *g = AD_V(&o);
    if (wrapped && ad_value_type(g) == AD_VT_MAP)
      g = ad_value_get(g, "grains", (size_t)-1);
    if (!g || ad_value_type(g) != AD_VT_MAP)
      ad__err(err, AD_EDECODE, "salt", "%s: no grains map", path);
    else if (!(out = ad__value_to_json(g, &derr)))
      ad__err(err, AD_EDECODE, "salt", "%s: %s", path, derr.message);
  }
  msgpack_zone_destroy(&z);
  free(buf);
  if (out) {
    *mtime = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    *stamp = *mtime ^ ((int64_t)st.st_size << 40) ^ (int64_t)st.st_ino;
  }
  return out;
}

json_t *ad__salt_cached_grains(const char *cachedir, const char *id, int64_t *stamp,
                               ad_error_t *err)
{
  if (!ad__salt_valid_id(id, strlen(id))) {
    ad__err(err, AD_EINVAL, "salt", "minion id %.64s is not valid", id);
    return NULL;
  }
  char p8[4096], p6[4096];
  snprintf(p8, sizeof p8, "%s/grains/%s.p", cachedir, id);
  snprintf(p6, sizeof p6, "%s/minions/%s/data.p", cachedir, id);
  int64_t s8 = 0, s6 = 0, m8 = 0, m6 = 0;
  ad_error_t e8, e6;
  json_t *g8 = grains_from(p8, 0, &s8, &m8, &e8);
  json_t *g6 = grains_from(p6, 1, &s6, &m6, &e6);
  if (g8 && g6 && m6 > m8) {
    json_decref(g8);
    g8 = NULL;
  }
  if (g8) {
    json_decref(g6);
    *stamp = s8;
    return g8;
  }
  if (g6) {
    *stamp = s6;
    return g6;
  }
  /* report the more interesting failure: a broken file over a missing one */
  ad_error_t *e = e8.code != AD_ENOTFOUND ? &e8 : &e6;
  if (err)
    *err = *e;
  if (e8.code == AD_ENOTFOUND && e6.code == AD_ENOTFOUND)
    ad__err(err, AD_ENOTFOUND, "salt", "no minion data cache entry for %s (%s, %s)", id,
            p8, p6);
  return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int scan(const char *path, int v6, unsigned port, uint32_t **ips, size_t *n,
                size_t *cap)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return errno == ENOENT ? 0 : -1;
  char line[512];
  if (!fgets(line, sizeof line, f)) { /* header */
    fclose(f);
    return 0;
  }
  while (fgets(line, sizeof line, f)) {
    char local[64], remote[64];
    unsigned st;
    if (sscanf(line, "%*d: %63s %63s %x", local, remote, &st) != 3 || st != 1)
      continue;
    char *lp = strchr(local, ':'), *rp = strchr(remote, ':');
    if (!lp || !rp || strtoul(lp + 1, NULL, 16) != port)
      continue;
    *rp = 0;
    uint32_t addr;
    if (!v6) {
      if (strlen(remote) != 8)
        continue;
      addr = (uint32_t)strtoul(remote, NULL, 16); /* s_addr as the kernel printed it */
    } else {
      /* ::ffff:a.b.c.d is printed as four host-order words: 0 0 FFFF0000 addr */
      if (strlen(remote) != 32 || strncmp(remote, "0000000000000000FFFF0000", 24))
        continue;
      addr = (uint32_t)strtoul(remote + 24, NULL, 16);
    }
    if (*n == *cap) {
      size_t nc = *cap ? *cap * 2 : 64;
      uint32_t *ni = realloc(*ips, nc * sizeof *ni);
      if (!ni) {
        fclose(f);
        return -1;
      }
      *ips = ni;
      *cap = nc;
    }
    (*ips)[(*n)++] = addr;
  }
  fclose(f);
  return 0;
}

int ad__salt_connected_ips(const char *proc_dir, unsigned port, uint32_t **ips, size_t *n,
                           ad_error_t *err)
{
  char p4[1024], p6[1024];
  const char *d = proc_dir && *proc_dir ? proc_dir : "/proc/net";
  snprintf(p4, sizeof p4, "%s/tcp", d);
  snprintf(p6, sizeof p6, "%s/tcp6", d);
  *ips = NULL;
  *n = 0;
  size_t cap = 0;
  if (scan(p4, 0, port, ips, n, &cap) || scan(p6, 1, port, ips, n, &cap)) {
    free(*ips);
    *ips = NULL;
    *n = 0;
    return ad__err_errno(err, AD_EIO, errno, "reading %s", p4);
  }
  if (*n > 1) {
    qsort(*ips, *n, sizeof **ips, cmp_u32);
    size_t w = 1;
    for (size_t i = 1; i < *n; i++)
      if ((*ips)[i] != (*ips)[w - 1])
        (*ips)[w++] = (*ips)[i];
    *n = w;
  }
  return 0;
}

int ad__salt_each_accepted(const char *pki_dir, void (*fn)(void *user, const char *id),
                           void *user, ad_error_t *err)
{
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/minions", pki_dir);
  DIR *d = opendir(dir);
  if (!d)
    return ad__err_errno(err, AD_EIO, errno, "listing %s", dir);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || !ad__salt_valid_id(e->d_name, strlen(e->d_name)))
      continue;
    fn(user, e->d_name);
  }
  closedir(d);
  return 0;
}
