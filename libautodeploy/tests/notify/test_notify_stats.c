/* test_notify_stats.c - each channel's last delivery error in the stats
 * JSON (what `salt-run autodeploy.status` shows per channel): null while
 * nothing failed, the reason and its time once a message was not
 * delivered. The channel points at a loopback port nothing listens on. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "autodeploy/notify.h"
#include "harness.h"

static json_t *channel0(ad_notifier_t *n)
{
  char *s = ad_notify_stats_json(n);
  json_t *j = s ? json_loads(s, 0, NULL) : NULL;
  free(s);
  json_t *ch = json_incref(json_array_get(json_object_get(j, "channels"), 0));
  json_decref(j);
  return ch;
}

TEST(last_error_null_then_named)
{
  ad_error_t err;
  ad_notifier_t *n = ad_notifier_new(
      "{\"channels\": [{\"type\": \"webhook\", \"name\": \"ops\", \"url\": "
      "\"http://127.0.0.1:1/hook\"}], \"retries\": 0, \"timeout_ms\": 2000}",
      &err);
  ASSERT(n != NULL);
  if (!n)
    return;
  json_t *ch = channel0(n);
  ASSERT(ch && json_is_null(json_object_get(ch, "last_error")));
  ASSERT(ch && json_is_null(json_object_get(ch, "last_error_at")));
  json_decref(ch);

  ASSERT(ad_notify_send_now(n, "t", "x", NULL, &err) != 0);
  ch = channel0(n);
  const char *e = json_string_value(json_object_get(ch, "last_error"));
  const char *at = json_string_value(json_object_get(ch, "last_error_at"));
  ASSERT(e && *e);
  ASSERT(at && strlen(at) >= 20 && at[10] == 'T');
  ASSERT_STR(json_string_value(json_object_get(ch, "name")), "ops");
  json_decref(ch);
  ad_notifier_destroy(&n);
}

RUN(CASE(last_error_null_then_named))
