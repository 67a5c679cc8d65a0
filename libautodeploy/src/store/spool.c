/*
 * spool.c - an append-only on-disk queue of BSON documents, for when
 * MongoDB is unreachable. Records are BSON documents back to back (each
 * starts with its own int32 length). On open, a torn tail (a crash in the
 * middle of an append) is detected and cut off, with a log line saying how
 * many bytes. Replay reads in order; only when every batch was accepted is
 * the file truncated, so a crash during replay replays again, which the
 * idempotent upserts make harmless.
 *
 * The size limit is hard: an append that would pass it writes nothing and
 * returns AD_EFULL with the limit in the message. The caller keeps the
 * documents (and so pushes back), it never drops them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error_private.h"
#include "core/log_private.h"
#include "store/spool.h"

struct ad__spool {
  int fd;
  char *path;
  uint64_t size, max_bytes, records;
  int fsync_always;
};

static int read_full(int fd, void *buf, size_t n, off_t at)
{
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, (char *)buf + got, n - got, at + (off_t)got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    got += (size_t)r;
  }
  return 0;
}

/* Walk the records; returns the offset where valid data ends. */
static uint64_t scan(ad__spool_t *sp, uint64_t file_size, uint64_t *records)
{
  uint64_t off = 0;
  *records = 0;
  while (off + 5 <= file_size) {
    uint8_t len4[4];
    if (read_full(sp->fd, len4, 4, (off_t)off))
      break;
    uint32_t len = (uint32_t)len4[0] | (uint32_t)len4[1] << 8 |
                   (uint32_t)len4[2] << 16 | (uint32_t)len4[3] << 24;
    if (len < 5 || off + len > file_size || len > (16u << 20) + 1024)
      break;
    off += len;
    (*records)++;
  }
  return off;
}

ad__spool_t *ad__spool_open(const char *path, uint64_t max_bytes, int fsync_always,
                            ad_error_t *err)
{
  ad__spool_t *sp = calloc(1, sizeof(*sp));
  if (!sp) {
    ad__err(err, AD_ENOMEM, "spool", "no memory");
    return NULL;
  }
  sp->path = strdup(path);
  sp->max_bytes = max_bytes;
  sp->fsync_always = fsync_always;
  sp->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (sp->fd < 0 || !sp->path) {
    ad__err_errno(err, AD_EIO, errno, "spool %s", path);
    ad__spool_close(&sp);
    return NULL;
  }
  struct stat st;
  fstat(sp->fd, &st);
  uint64_t valid = scan(sp, (uint64_t)st.st_size, &sp->records);
  if (valid < (uint64_t)st.st_size) {
    AD_LOG_W("spool", "%s: cutting a torn tail of %llu bytes after %llu "
             "complete records", path,
             (unsigned long long)((uint64_t)st.st_size - valid),
             (unsigned long long)sp->records);
    if (ftruncate(sp->fd, (off_t)valid) != 0) {
      ad__err_errno(err, AD_EIO, errno, "truncate spool %s", path);
      ad__spool_close(&sp);
      return NULL;
    }
  }
  sp->size = valid;
  if (sp->records)
    AD_LOG_I("spool", "%s holds %llu returns (%llu bytes) to replay", path,
             (unsigned long long)sp->records, (unsigned long long)sp->size);
  return sp;
}

void ad__spool_close(ad__spool_t **sp_p)
{
  if (!sp_p || !*sp_p)
    return;
  ad__spool_t *sp = *sp_p;
  if (sp->fd >= 0)
    close(sp->fd);
  free(sp->path);
  free(sp);
  *sp_p = NULL;
}

uint64_t ad__spool_records(const ad__spool_t *sp) { return sp->records; }
uint64_t ad__spool_bytes(const ad__spool_t *sp) { return sp->size; }

int ad__spool_append(ad__spool_t *sp, bson_t *const *docs, size_t n,
                     ad_error_t *err)
{
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += docs[i]->len;
  if (sp->size + total > sp->max_bytes)
    return ad__err(err, AD_EFULL, "spool",
                   "spool %s is full: %llu + %llu bytes would pass spool_max_bytes "
                   "%llu; returns are held in memory until MongoDB is back",
                   sp->path, (unsigned long long)sp->size,
                   (unsigned long long)total, (unsigned long long)sp->max_bytes);
  uint64_t at = sp->size;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *data = bson_get_data(docs[i]);
    size_t len = docs[i]->len, done = 0;
    while (done < len) {
      ssize_t w = pwrite(sp->fd, data + done, len - done, (off_t)(at + done));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0) {
        int e = errno;
        /* cut back to the last complete batch, so the file stays whole */
        if (ftruncate(sp->fd, (off_t)sp->size) != 0) {
          /* scan() on the next open drops the partial record */
        }
        return ad__err_errno(err, AD_EIO, e, "append to spool %s", sp->path);
      }
      done += (size_t)w;
    }
    at += len;
  }
  if (sp->fsync_always && fdatasync(sp->fd) != 0)
    return ad__err_errno(err, AD_EIO, errno, "fsync spool %s", sp->path);
  sp->size = at;
  sp->records += n;
  return 0;
}

int ad__spool_replay(ad__spool_t *sp, ad__spool_batch_fn fn, void *user,
                     size_t batch, ad_error_t *err)
{
  if (sp->size == 0)
    return 0;
  bson_t **docs = calloc(batch, sizeof(*docs));
  uint64_t off = 0;
  int rc = 0;
  if (!docs)
    return ad__err(err, AD_ENOMEM, "spool", "no memory for replay");
  while (off < sp->size && rc == 0) {
    size_t n = 0;
    while (n < batch && off < sp->size) {
      uint8_t len4[4];
      if (read_full(sp->fd, len4, 4, (off_t)off)) {
        rc = ad__err_errno(err, AD_EIO, errno, "read spool %s", sp->path);
        break;
      }
      uint32_t len = (uint32_t)len4[0] | (uint32_t)len4[1] << 8 |
                     (uint32_t)len4[2] << 16 | (uint32_t)len4[3] << 24;
      uint8_t *rec = bson_malloc(len);
      if (read_full(sp->fd, rec, len, (off_t)off) ||
          !(docs[n] = bson_new_from_data(rec, len))) {
        bson_free(rec);
        rc = ad__err(err, AD_EIO, "spool", "spool %s: bad record at offset %llu",
                     sp->path, (unsigned long long)off);
        break;
      }
      bson_free(rec);
      off += len;
      n++;
    }
    if (rc == 0 && n > 0)
      rc = fn(docs, n, user, err);
    for (size_t i = 0; i < n; i++)
      bson_destroy(docs[i]);
  }
  free(docs);
  if (rc != 0)
    return rc;
  if (ftruncate(sp->fd, 0) != 0 || (sp->fsync_always && fdatasync(sp->fd) != 0))
    return ad__err_errno(err, AD_EIO, errno, "truncate spool %s", sp->path);
  AD_LOG_I("spool", "replayed %llu returns from %s", (unsigned long long)sp->records,
           sp->path);
  sp->size = 0;
  sp->records = 0;
  return 0;
}
