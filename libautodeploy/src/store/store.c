/* store.c - see store.h. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/error_private.h"
#include "core/log_private.h"
#include "store/store.h"

struct ad__store {
  mongoc_client_pool_t *pool;
  char *db;
};

static pthread_once_t mongo_once = PTHREAD_ONCE_INIT;
/* libmongoc logs through our handler, never to stdout: its default
 * handler printed the server monitor's DEBUG lines ahead of every runner's
 * JSON while MongoDB was down (issue 12). */
static void mongoc_to_ad_log(mongoc_log_level_t level, const char *domain, const char *message,
                             void *user)
{
  ad_log_level_t l = level <= MONGOC_LOG_LEVEL_CRITICAL  ? AD_LOG_ERROR
                     : level == MONGOC_LOG_LEVEL_WARNING ? AD_LOG_WARNING
                     : level <= MONGOC_LOG_LEVEL_INFO    ? AD_LOG_INFO
                                                         : AD_LOG_DEBUG;
  if (l == AD_LOG_WARNING && strstr(message, "endSessions"))
    l = AD_LOG_DEBUG; /* FerretDB has no endSessions: said at every client close */
  if (ad__log_enabled(l))
    ad__log(l, "store", "mongoc %s: %s", domain ? domain : "", message);
}

static void mongo_init_once(void)
{
  mongoc_log_set_handler(mongoc_to_ad_log, NULL);
  mongoc_init();
}

void ad__store_global_init(void) { pthread_once(&mongo_once, mongo_init_once); }

/* Debian's libmongoc initialises itself when it is loaded (before any code
 * of ours) and keeps its performance counters in a shared memory file,
 * /dev/shm/mongoc-<pid>, removed only by a clean exit. Every engine Salt
 * SIGKILLs, or salt-run killed, left one behind (300 on a test machine in
 * six hours), and a later process given the same pid found it there and
 * printed "Falling back to malloc for counters" on stderr, past our log
 * handler, into salt-run's output. Nothing reads those counters
 * (mongoc-stat is not shipped): unlink the name at load; the mapping
 * stays valid for this process and nothing is left when it dies. */
__attribute__((constructor)) static void unlink_mongoc_counters(void)
{
  char name[32];
  snprintf(name, sizeof name, "/mongoc-%ld", (long)getpid());
  shm_unlink(name);
}

/* Two '@' before the path: an unescaped '@' in the user or the password.
 * libmongoc splits at the first, takes the password's tail for a host name
 * and quotes it, lowercased, in every connection error and log line, where
 * no redaction can recognise it (core/redact.h): refused here instead. */
static int unescaped_at(const char *uri)
{
  const char *a = strstr(uri, "://");
  if (!a)
    return 0;
  a += 3;
  const char *at = memchr(a, '@', strcspn(a, "/?#"));
  return at && memchr(at + 1, '@', strcspn(at + 1, "/?#"));
}

ad__store_t *ad__store_new(const char *uri_text, const char *db, ad_error_t *err)
{
  ad__store_global_init();
  if (uri_text && unescaped_at(uri_text)) {
    ad__err(err, AD_ECONFIG, "config", "mongo_uri: an '@' in the user or the password is not "
            "escaped: percent-encode it (%%40)");
    return NULL;
  }
  bson_error_t be;
  /* its errors may quote the password: ad__err replaces it (core/redact.h;
   * the engine's config loader put the URI's password there) */
  mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_text, &be);
  if (!uri) {
    ad__err(err, AD_ECONFIG, "config", "mongo_uri: %s", be.message);
    return NULL;
  }
  /* Fail fast when the server is down: the spool takes over. */
  if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000);
  if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 2000);
  ad__store_t *st = calloc(1, sizeof(*st));
  st->pool = mongoc_client_pool_new(uri);
  mongoc_uri_destroy(uri);
  st->db = strdup(db && *db ? db : "autodeploy");
  if (!st->pool || !st->db) {
    ad__err(err, AD_ENOMEM, "store", "cannot create the MongoDB client pool");
    ad__store_destroy(&st);
    return NULL;
  }
  mongoc_client_pool_set_error_api(st->pool, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_set_appname(st->pool, "autodeploy");
  return st;
}

void ad__store_destroy(ad__store_t **st_p)
{
  if (!st_p || !*st_p)
    return;
  if ((*st_p)->pool)
    mongoc_client_pool_destroy((*st_p)->pool);
  free((*st_p)->db);
  free(*st_p);
  *st_p = NULL;
}

mongoc_client_t *ad__store_pop(ad__store_t *st) { return mongoc_client_pool_pop(st->pool); }
void ad__store_push(ad__store_t *st, mongoc_client_t *c) { mongoc_client_pool_push(st->pool, c); }
const char *ad__store_db(const ad__store_t *st) { return st->db; }

mongoc_collection_t *ad__store_coll(ad__store_t *st, mongoc_client_t *c,
                                    const char *name)
{
  return mongoc_client_get_collection(c, st->db, name);
}

int ad__store_ping(ad__store_t *st, ad_error_t *err)
{
  mongoc_client_t *c = ad__store_pop(st);
  bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
  bson_error_t be;
  bool ok = mongoc_client_command_simple(c, "admin", cmd, NULL, NULL, &be);
  bson_destroy(cmd);
  ad__store_push(st, c);
  if (!ok)
    return ad__err(err, AD_ECONNECT, "store", "MongoDB ping failed: %s", be.message);
  return 0;
}

int ad__store_error_is_transient(const bson_error_t *e)
{
  if (e->domain == MONGOC_ERROR_SERVER_SELECTION || e->domain == MONGOC_ERROR_STREAM ||
      e->domain == MONGOC_ERROR_CLIENT)
    return 1;
  /* server-side: shutting down, not primary, interrupted */
  switch (e->code) {
  case 91: case 189: case 10107: case 13435: case 11600: case 11602: case 13436:
    return 1;
  }
  return 0;
}

int64_t ad__store_update_one(ad__store_t *st, const char *coll_name, const bson_t *q,
                             const bson_t *u, ad_error_t *err)
{
  mongoc_client_t *c = ad__store_pop(st);
  mongoc_collection_t *coll = ad__store_coll(st, c, coll_name);
  bson_t reply;
  bson_error_t be;
  int64_t modified = -1;
  if (mongoc_collection_update_one(coll, q, u, NULL, &reply, &be)) {
    bson_iter_t it;
    modified = bson_iter_init_find(&it, &reply, "modifiedCount") ? bson_iter_as_int64(&it) : 0;
  } else {
    ad__err(err, AD_ECONNECT, "store", "update in %s: %s", coll_name, be.message);
  }
  bson_destroy(&reply);
  mongoc_collection_destroy(coll);
  ad__store_push(st, c);
  return modified;
}
