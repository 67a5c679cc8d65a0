/* test_jobcache.c - what the engine reads from Salt's job cache: a
 * minion's return (is it real? its retcode) and the minions a job targets
 * (.minions.p, for a task whose salt/job/<jid>/new went by unseen), at the
 * path salt.utils.jid.jid_dir makes: <jobs>/<sha256(jid)[:2]>/<rest>/. */
#include <msgpack.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "store/jobcache.h"

static const char *JID = "20261205031500123456_ad0a1b2c3d";

/* mkdir -p of the job's directory (and of `sub` in it); its path in `dir` */
static void job_dir(const char *root, const char *sub, char *dir, size_t size)
{
  unsigned char h[EVP_MAX_MD_SIZE];
  unsigned hl = 0;
  EVP_Digest(JID, strlen(JID), h, &hl, EVP_sha256(), NULL);
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned i = 0; i < hl; i++)
    sprintf(hex + 2 * i, "%02x", h[i]);
  char cmd[4200];
  snprintf(dir, size, "%s/%.2s/%s%s%s", root, hex, hex + 2, *sub ? "/" : "", sub);
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
  if (system(cmd) != 0)
    abort();
}

static void write_file(const char *dir, const char *name, const void *data, size_t n)
{
  char path[4300];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, n, f);
  fclose(f);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

static void temp_root(char *root)
{
  strcpy(root, "/tmp/ad-jobcache-XXXXXX");
  if (!mkdtemp(root))
    abort();
}

static void remove_root(const char *root)
{
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0)
    abort();
}

TEST(minions_read_as_the_master_wrote_them)
{
  char root[64], dir[4200];
  temp_root(root);
  json_t *got = NULL;
  int absent = ad__jobcache_minions(root, "sha256", JID, &got);
  job_dir(root, "", dir, sizeof dir);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 2);
  pack_str(&pk, "m1");
  pack_str(&pk, "game-07");
  write_file(dir, ".minions.p", sb.data, sb.size);
  int rc = ad__jobcache_minions(root, "sha256", JID, &got);
  char *text = got ? json_dumps(got, JSON_COMPACT) : NULL;
  int wrong_hash = ad__jobcache_minions(root, "md5", JID, &(json_t *){NULL});
  msgpack_sbuffer_destroy(&sb);
  remove_root(root);
  ASSERT_EQ(absent, 0);
  ASSERT_EQ(rc, 1);
  ASSERT_STR(text, "[\"m1\",\"game-07\"]");
  ASSERT_EQ(wrong_hash, 0); /* another directory: not there */
  free(text);
  json_decref(got);
}

/* Anything but a list of UTF-8 strings is unreadable, never a partial list. */
TEST(minions_refused_when_not_a_list_of_strings)
{
  char root[64], dir[4200];
  temp_root(root);
  job_dir(root, "", dir, sizeof dir);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  const int cases = 4;
  int rc[4];
  json_t *got[4];
  for (int c = 0; c < cases; c++) {
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (c == 0) { /* a map */
      msgpack_pack_map(&pk, 1);
      pack_str(&pk, "m1");
      pack_str(&pk, "m2");
    } else if (c == 1) { /* a number among the names */
      msgpack_pack_array(&pk, 2);
      pack_str(&pk, "m1");
      msgpack_pack_int(&pk, 7);
    } else if (c == 2) { /* not UTF-8 */
      msgpack_pack_array(&pk, 1);
      msgpack_pack_str(&pk, 2);
      msgpack_pack_str_body(&pk, "\xff\xfe", 2);
    } else { /* cut short */
      msgpack_pack_array(&pk, 3);
      pack_str(&pk, "m1");
    }
    write_file(dir, ".minions.p", sb.data, sb.size);
    got[c] = (json_t *)1;
    rc[c] = ad__jobcache_minions(root, "sha256", JID, &got[c]);
    msgpack_sbuffer_destroy(&sb);
  }
  remove_root(root);
  for (int c = 0; c < cases; c++) {
    ASSERT_EQ(rc[c], -1);
    ASSERT(got[c] == NULL);
  }
}

TEST(return_read_with_its_retcode)
{
  char root[64], dir[4200];
  temp_root(root);
  job_dir(root, "m1", dir, sizeof dir);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  pack_str(&pk, "return");
  pack_str(&pk, "boom");
  pack_str(&pk, "retcode");
  msgpack_pack_int(&pk, 2);
  write_file(dir, "return.p", sb.data, sb.size);
  int64_t retcode = -1, other = -1;
  int rc = ad__jobcache_return(root, "sha256", JID, "m1", &retcode);
  int none = ad__jobcache_return(root, "sha256", JID, "m2", &other);
  int escape = ad__jobcache_return(root, "sha256", JID, "..", &other);
  int slash = ad__jobcache_return(root, "sha256", JID, "m1/../m1", &other);
  msgpack_sbuffer_destroy(&sb);
  remove_root(root);
  ASSERT_EQ(rc, 1);
  ASSERT_EQ(retcode, 2);
  ASSERT_EQ(none, 0);
  ASSERT_EQ(escape, -1);
  ASSERT_EQ(slash, -1);
}

RUN(CASE(minions_read_as_the_master_wrote_them), CASE(minions_refused_when_not_a_list_of_strings),
    CASE(return_read_with_its_retcode))
