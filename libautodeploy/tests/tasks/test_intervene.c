/* test_intervene.c - tasks.c's signed interventions, the refusals that are
 * decided before the store is read: every refused intervention is counted.
 * A body signed with the master key that is not JSON, or names another
 * task than its tag, was refused with no counter moving (found by
 * fuzz/fuzz_events.c). */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/sign.h"
#include "harness.h"
#include "tasks/tasks.h"

#define KEY "test-master-key-0123456789abcdef"

/* autodeploy/intervene/<tid> with {body, sig}, signed with KEY. */
static ad_event_t *signed_event(const char *tid, const char *body)
{
  char tag[200], msg[600];
  snprintf(tag, sizeof tag, "autodeploy/intervene/%s", tid);
  int n = snprintf(msg, sizeof msg, "%s|%s", tag, body);
  char *sig = ad__sign(KEY, strlen(KEY), msg, (size_t)n);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str_with_body(&pk, "body", 4);
  msgpack_pack_str_with_body(&pk, body, strlen(body));
  msgpack_pack_str_with_body(&pk, "sig", 3);
  msgpack_pack_str_with_body(&pk, sig, strlen(sig));
  ad_event_t *ev = ad_event_new(tag, strlen(tag), sb.data, sb.size, NULL);
  msgpack_sbuffer_destroy(&sb);
  free(sig);
  return ev;
}

TEST(a_signed_body_for_another_task_is_refused_and_counted)
{
  char dir[] = "/tmp/ad-intervene-XXXXXX", key[64];
  ASSERT(mkdtemp(dir));
  snprintf(key, sizeof key, "%s/key", dir);
  FILE *f = fopen(key, "wb");
  ASSERT(f && fputs(KEY, f) >= 0 && fclose(f) == 0);
  ad__tasks_stats_t stats = {0};
  ad__tasks_ctx_t t = {.key_path = key, .collection = "tasks", .job_dir = "", .stats = &stats};
  ad_event_t *other = signed_event("t1", "{\"action\":\"cancel\",\"task_id\":\"t2\"}");
  ad_event_t *not_json = signed_event("t1", "cancel t1");
  int rc1 = ad__tasks_on_intervene(&t, other), rc2 = ad__tasks_on_intervene(&t, not_json);
  ad_event_destroy(&other);
  ad_event_destroy(&not_json);
  unlink(key);
  rmdir(dir);
  ASSERT_EQ(rc1, 1);
  ASSERT_EQ(rc2, 1);
  ASSERT_EQ(stats.refused_interventions, 2u);
  ASSERT_EQ(stats.refused_unsigned, 0u);
}

RUN(CASE(a_signed_body_for_another_task_is_refused_and_counted))
