/* spool.h - append-only on-disk queue of BSON documents (see spool.c). */
#ifndef AD_SPOOL_H
#define AD_SPOOL_H

#include <bson/bson.h>
#include <stdint.h>

#include "autodeploy/common.h"

typedef struct ad__spool ad__spool_t;

/* Called with up to `batch` documents in file order; 0 to go on, <0 to stop
 * the replay (the spool is then left as it was). */
typedef int (*ad__spool_batch_fn)(bson_t **docs, size_t n, void *user,
                                  ad_error_t *err);

ad__spool_t *ad__spool_open(const char *path, uint64_t max_bytes,
                            int fsync_always, ad_error_t *err);
void ad__spool_close(ad__spool_t **sp_p);

/* Append whole documents (all or none). AD_EFULL past max_bytes. */
int ad__spool_append(ad__spool_t *sp, bson_t *const *docs, size_t n,
                     ad_error_t *err);

/* Hand every record to fn in order; truncate the file when all succeeded. */
int ad__spool_replay(ad__spool_t *sp, ad__spool_batch_fn fn, void *user,
                     size_t batch, ad_error_t *err);

uint64_t ad__spool_records(const ad__spool_t *sp);
uint64_t ad__spool_bytes(const ad__spool_t *sp);

#endif
