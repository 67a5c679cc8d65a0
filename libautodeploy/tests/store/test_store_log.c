/* test_store_log.c - libmongoc's log goes through our handler, never to
 * stdout (issue 12: runners printed the server monitor's DEBUG lines ahead
 * of their JSON while MongoDB was down). */
#include <fcntl.h>
#include <mongoc/mongoc.h>
#include <unistd.h>

#include "autodeploy.h"
#include "harness.h"
#include "store/store.h"

static int from_mongoc;

static void handler(ad_log_level_t level, const char *domain, const char *msg, void *user)
{
  if (strcmp(domain, "store") == 0 && strncmp(msg, "mongoc ", 7) == 0)
    from_mongoc++;
}

TEST(mongoc_logs_reach_the_handler_not_stdout)
{
  char path[] = "/tmp/ad_test_stdout_XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  dup2(fd, STDOUT_FILENO);

  ad_log_set_handler(handler, NULL, AD_LOG_DEBUG);
  ad_error_t err;
  /* nothing listens on port 1: the monitor fails to connect and says so */
  ad__store_t *st = ad__store_new("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300",
                                  "t", &err);
  mongoc_client_t *c = mongoc_client_new("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300");
  bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
  bson_error_t be;
  int ok = c && mongoc_client_command_simple(c, "admin", ping, NULL, NULL, &be);
  mongoc_log(MONGOC_LOG_LEVEL_DEBUG, "test", "a debug line from libmongoc");
  bson_destroy(ping);
  mongoc_client_destroy(c);
  ad__store_destroy(&st);
  ad_log_set_handler(NULL, NULL, AD_LOG_INFO);

  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  off_t n = lseek(fd, 0, SEEK_END);
  close(fd);
  unlink(path);
  ASSERT(!ok);
  ASSERT(from_mongoc >= 1); /* at least our own line came through */
  ASSERT_EQ(n, 0);          /* and nothing went to stdout */
}

RUN(CASE(mongoc_logs_reach_the_handler_not_stdout))
