/*
 * task_rules.c - the task state machine as one table, and the pure
 * decisions on a step's results (task_rules.h). No I/O here: the job cache
 * is reached through the caller's lookup.
 */
#include <stdio.h>
#include <string.h>

#include "tasks/task_rules.h"

#define BIT(s) (1u << (s))

static const char *const STATE_NAMES[AD__TS_COUNT] = {
    "queued", "running", "paused", "succeeded", "failed", "timed_out", "cancelled"};

static const struct {
  const char *name;
  unsigned from; /* states it may leave */
  ad__task_state_t to;
} RULES[AD__TC_COUNT] = {
    [AD__TC_START] = {"start", BIT(AD__TS_QUEUED), AD__TS_RUNNING},
    [AD__TC_NEXT_STEP] = {"next step", BIT(AD__TS_RUNNING), AD__TS_RUNNING},
    [AD__TC_SUCCEED] = {"succeed", BIT(AD__TS_RUNNING), AD__TS_SUCCEEDED},
    [AD__TC_PAUSE_BETWEEN] = {"pause between steps", BIT(AD__TS_RUNNING), AD__TS_PAUSED},
    [AD__TC_REQUEUE] = {"requeue", BIT(AD__TS_RUNNING), AD__TS_QUEUED},
    [AD__TC_FAIL] = {"fail", BIT(AD__TS_RUNNING), AD__TS_FAILED},
    [AD__TC_TIME_OUT] = {"time out", BIT(AD__TS_RUNNING), AD__TS_TIMED_OUT},
    [AD__TC_CANCEL] = {"cancel", BIT(AD__TS_QUEUED) | BIT(AD__TS_RUNNING) | BIT(AD__TS_PAUSED),
                       AD__TS_CANCELLED},
    [AD__TC_PAUSE] = {"pause", BIT(AD__TS_QUEUED), AD__TS_PAUSED},
    [AD__TC_REQUEST_PAUSE] = {"request pause", BIT(AD__TS_RUNNING), AD__TS_RUNNING},
    [AD__TC_RESUME] = {"resume", BIT(AD__TS_PAUSED), AD__TS_RUNNING},
    [AD__TC_WITHDRAW_PAUSE] = {"withdraw pause", BIT(AD__TS_RUNNING), AD__TS_RUNNING},
    [AD__TC_RETRY] = {"retry", BIT(AD__TS_FAILED) | BIT(AD__TS_TIMED_OUT) | BIT(AD__TS_CANCELLED),
                      AD__TS_RUNNING},
};

const char *ad__task_state_name(ad__task_state_t s)
{
  return (unsigned)s < AD__TS_COUNT ? STATE_NAMES[s] : "?";
}

int ad__task_state_parse(const char *name)
{
  for (int s = 0; name && s < AD__TS_COUNT; s++)
    if (!strcmp(STATE_NAMES[s], name))
      return s;
  return -1;
}

const char *ad__task_cause_name(ad__task_cause_t c)
{
  return (unsigned)c < AD__TC_COUNT ? RULES[c].name : "?";
}

ad__task_state_t ad__task_cause_target(ad__task_cause_t c)
{
  return (unsigned)c < AD__TC_COUNT ? RULES[c].to : AD__TS_COUNT;
}

int ad__task_can_move(int from, int to, int cause)
{
  if ((unsigned)from >= AD__TS_COUNT || (unsigned)to >= AD__TS_COUNT ||
      (unsigned)cause >= AD__TC_COUNT)
    return 0;
  return RULES[cause].to == (ad__task_state_t)to && (RULES[cause].from & BIT(from)) != 0;
}

int ad__task_state_is_end(int s)
{
  return s == AD__TS_SUCCEEDED || s == AD__TS_FAILED || s == AD__TS_TIMED_OUT ||
         s == AD__TS_CANCELLED;
}

int ad__task_intervention(const char *action, int state, int pause_requested)
{
  int cause = -1;
  if (!action)
    return -1;
  if (!strcmp(action, "cancel"))
    cause = AD__TC_CANCEL;
  else if (!strcmp(action, "pause"))
    cause = state == AD__TS_RUNNING ? AD__TC_REQUEST_PAUSE : AD__TC_PAUSE;
  else if (!strcmp(action, "resume"))
    cause = state == AD__TS_RUNNING && pause_requested ? AD__TC_WITHDRAW_PAUSE : AD__TC_RESUME;
  else if (!strcmp(action, "retry"))
    cause = AD__TC_RETRY;
  if (cause < 0 || !ad__task_can_move(state, RULES[cause].to, cause))
    return -1;
  return cause;
}

/* ---- a step's results ------------------------------------------------------ */

const json_t *ad__task_expected(const json_t *task)
{
  const json_t *target = json_object_get(task, "target");
  const json_t *tgt = json_object_get(target, "tgt");
  const char *type = json_string_value(json_object_get(target, "tgt_type"));
  if (type && !strcmp(type, "list") && json_is_array(tgt))
    return tgt;
  const json_t *m = json_object_get(task, "minions");
  return json_is_array(m) ? m : NULL;
}

static int in_list(const json_t *list, const char *s)
{
  size_t i;
  const json_t *v;
  json_array_foreach(list, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), s)) return 1;
  return 0;
}

static const json_t *find_return(const json_t *rets, const char *minion)
{
  size_t i;
  const json_t *r;
  json_array_foreach(rets, i, r) {
    const char *m = json_string_value(json_object_get(r, "minion"));
    if (m && !strcmp(m, minion))
      return r;
  }
  return NULL;
}

/* Does `r` count, and with what retcode? */
static int counts(const json_t *task, const json_t *r, ad__task_cache_fn cached, void *user,
                  int64_t *rc)
{
  const char *jid = json_string_value(json_object_get(task, "jid"));
  const char *minion = json_string_value(json_object_get(r, "minion"));
  *rc = json_integer_value(json_object_get(r, "retcode"));
  if (!minion || !in_list(ad__task_expected(task), minion))
    return 0; /* a minion that was not asked does not complete the step */
  if (!cached)
    return 1;
  return cached(user, jid ? jid : "", minion, rc) == 1; /* only what the master authenticated */
}

void ad__task_tally(const json_t *task, const json_t *rets, ad__task_cache_fn cached,
                    void *user, ad__task_tally_t *out)
{
  memset(out, 0, sizeof *out);
  out->expected = json_array_size(ad__task_expected(task));
  size_t i;
  const json_t *r;
  json_array_foreach(rets, i, r) {
    int64_t rc;
    if (!counts(task, r, cached, user, &rc))
      continue;
    out->got++;
    if (rc != 0) {
      out->failed++;
      size_t n = strlen(out->detail);
      snprintf(out->detail + n, sizeof out->detail - n, "%s%s retcode %lld", n ? "; " : "",
               json_string_value(json_object_get(r, "minion")), (long long)rc);
    }
  }
  out->done = out->expected > 0 && out->got >= out->expected;
}

ad__task_return_t ad__task_judge_return(const json_t *task, const json_t *rets,
                                        const char *minion, ad__task_cache_fn cached,
                                        void *user)
{
  const json_t *expected = ad__task_expected(task);
  if (json_array_size(expected) == 0)
    return AD__TR_TARGETS_UNKNOWN;
  if (!minion || !in_list(expected, minion))
    return AD__TR_NOT_TARGETED;
  const json_t *r = find_return(rets, minion);
  if (!r)
    return AD__TR_NOT_STORED;
  int64_t rc;
  return counts(task, r, cached, user, &rc) ? AD__TR_COUNTED : AD__TR_NOT_CACHED;
}

const char *ad__task_return_reason(ad__task_return_t v)
{
  switch (v) {
  case AD__TR_COUNTED: return "counted";
  case AD__TR_TARGETS_UNKNOWN: return "the job's minions are not known";
  case AD__TR_NOT_TARGETED: return "the job did not target this minion";
  case AD__TR_NOT_STORED: return "no stored return";
  case AD__TR_NOT_CACHED: return "not in the master's job cache (a forged return event?)";
  }
  return "?";
}

void ad__task_after_step(const json_t *task, int failed, ad__task_next_t *out)
{
  int64_t step = json_integer_value(json_object_get(task, "step"));
  int64_t attempt = json_integer_value(json_object_get(task, "attempt"));
  int64_t nsteps = (int64_t)json_array_size(json_object_get(task, "steps"));
  const json_t *retry = json_object_get(task, "retry");
  int64_t max_attempts = json_integer_value(json_object_get(retry, "max_attempts"));
  memset(out, 0, sizeof *out);
  if (!failed) {
    out->step = step + 1;
    out->attempt = 1;
    if (step + 1 >= nsteps)
      out->cause = AD__TC_SUCCEED, out->step = step;
    else if (json_is_true(json_object_get(task, "pause_requested")))
      out->cause = AD__TC_PAUSE_BETWEEN;
    else
      out->cause = AD__TC_NEXT_STEP;
    return;
  }
  out->step = step;
  out->attempt = attempt;
  out->cause = AD__TC_FAIL;
  if (attempt < max_attempts) {
    out->cause = AD__TC_REQUEUE;
    out->attempt = attempt + 1;
    out->backoff_s = json_integer_value(json_object_get(retry, "backoff_s"));
  }
}
