/* test_tasks.c - the task state machine (task_rules.h): every transition,
 * allowed and refused, checked against a table written out here by hand
 * from docs/tasks.md; the interventions an operator may make in each state;
 * what follows a finished step; and which returns count (the evidence a
 * forged return leaves is decided by ad__task_judge_return). */
#include "harness.h"
#include "tasks/task_rules.h"

enum { Q = AD__TS_QUEUED, R = AD__TS_RUNNING, P = AD__TS_PAUSED, S = AD__TS_SUCCEEDED,
       F = AD__TS_FAILED, T = AD__TS_TIMED_OUT, C = AD__TS_CANCELLED };

/* docs/tasks.md "Life of a task" and "Interventions", one row per arrow */
static const struct { int cause, from, to; } ALLOWED[] = {
    {AD__TC_START, Q, R},
    {AD__TC_NEXT_STEP, R, R},
    {AD__TC_SUCCEED, R, S},
    {AD__TC_PAUSE_BETWEEN, R, P},
    {AD__TC_REQUEUE, R, Q},
    {AD__TC_FAIL, R, F},
    {AD__TC_TIME_OUT, R, T},
    {AD__TC_CANCEL, Q, C},
    {AD__TC_CANCEL, R, C},
    {AD__TC_CANCEL, P, C},
    {AD__TC_PAUSE, Q, P},
    {AD__TC_REQUEST_PAUSE, R, R},
    {AD__TC_RESUME, P, R},
    {AD__TC_WITHDRAW_PAUSE, R, R},
    {AD__TC_RETRY, F, R},
    {AD__TC_RETRY, T, R},
    {AD__TC_RETRY, C, R},
};
#define N_ALLOWED (sizeof ALLOWED / sizeof ALLOWED[0])

static int listed(int cause, int from, int to)
{
  for (size_t i = 0; i < N_ALLOWED; i++)
    if (ALLOWED[i].cause == cause && ALLOWED[i].from == from && ALLOWED[i].to == to)
      return 1;
  return 0;
}

TEST(every_transition_allowed_or_refused_as_documented)
{
  size_t allowed = 0;
  for (int c = 0; c < AD__TC_COUNT; c++)
    for (int f = 0; f < AD__TS_COUNT; f++)
      for (int to = 0; to < AD__TS_COUNT; to++) {
        int got = ad__task_can_move(f, to, c);
        if (got != listed(c, f, to))
          fprintf(stderr, "  %s: %s -> %s is %d\n", ad__task_cause_name(c),
                  ad__task_state_name(f), ad__task_state_name(to), got);
        ASSERT_EQ(got, listed(c, f, to));
        allowed += (size_t)got;
      }
  ASSERT_EQ(allowed, N_ALLOWED); /* 13 causes x 7 x 7 = 637 checked, 17 allowed */
}

TEST(each_cause_has_one_target)
{
  for (size_t i = 0; i < N_ALLOWED; i++)
    ASSERT_EQ((int)ad__task_cause_target(ALLOWED[i].cause), ALLOWED[i].to);
  for (int c = 0; c < AD__TC_COUNT; c++)
    ASSERT(strcmp(ad__task_cause_name(c), "?") != 0);
}

TEST(succeeded_is_final_and_ends_only_retry)
{
  for (int c = 0; c < AD__TC_COUNT; c++)
    for (int to = 0; to < AD__TS_COUNT; to++) {
      ASSERT(!ad__task_can_move(S, to, c));
      if (c != AD__TC_RETRY) {
        ASSERT(!ad__task_can_move(F, to, c));
        ASSERT(!ad__task_can_move(T, to, c));
        ASSERT(!ad__task_can_move(C, to, c));
      }
    }
  ASSERT(ad__task_state_is_end(S) && ad__task_state_is_end(F) && ad__task_state_is_end(T) &&
         ad__task_state_is_end(C));
  ASSERT(!ad__task_state_is_end(Q) && !ad__task_state_is_end(R) && !ad__task_state_is_end(P));
}

TEST(out_of_range_and_unknown_are_refused)
{
  ASSERT(!ad__task_can_move(-1, R, AD__TC_START));
  ASSERT(!ad__task_can_move(Q, AD__TS_COUNT, AD__TC_START));
  ASSERT(!ad__task_can_move(Q, R, AD__TC_COUNT));
  ASSERT(!ad__task_can_move(Q, R, -1));
  /* a stored state nobody wrote (ad__task_move parses it first) */
  ASSERT_EQ(ad__task_state_parse("running"), R);
  ASSERT_EQ(ad__task_state_parse("timed_out"), T);
  ASSERT_EQ(ad__task_state_parse("RUNNING"), -1);
  ASSERT_EQ(ad__task_state_parse(""), -1);
  ASSERT_EQ(ad__task_state_parse(NULL), -1);
  for (int s = 0; s < AD__TS_COUNT; s++)
    ASSERT_EQ(ad__task_state_parse(ad__task_state_name(s)), s);
  ASSERT_STR(ad__task_state_name(AD__TS_COUNT), "?");
}

/* ---- interventions -------------------------------------------------------- */

TEST(interventions_in_every_state)
{
  static const struct { const char *action; int state, pause_requested, cause; } CASES[] = {
      {"cancel", Q, 0, AD__TC_CANCEL},  {"cancel", R, 0, AD__TC_CANCEL},
      {"cancel", R, 1, AD__TC_CANCEL},  {"cancel", P, 0, AD__TC_CANCEL},
      {"cancel", S, 0, -1},             {"cancel", F, 0, -1},
      {"cancel", T, 0, -1},             {"cancel", C, 0, -1},
      {"pause", Q, 0, AD__TC_PAUSE},    {"pause", R, 0, AD__TC_REQUEST_PAUSE},
      {"pause", R, 1, AD__TC_REQUEST_PAUSE}, {"pause", P, 0, -1},
      {"pause", S, 0, -1},              {"pause", F, 0, -1},
      {"pause", T, 0, -1},              {"pause", C, 0, -1},
      {"resume", P, 0, AD__TC_RESUME},  {"resume", R, 1, AD__TC_WITHDRAW_PAUSE},
      {"resume", R, 0, -1},             {"resume", Q, 0, -1},
      {"resume", S, 0, -1},             {"resume", F, 0, -1},
      {"resume", T, 0, -1},             {"resume", C, 0, -1},
      {"retry", F, 0, AD__TC_RETRY},    {"retry", T, 0, AD__TC_RETRY},
      {"retry", C, 0, AD__TC_RETRY},    {"retry", Q, 0, -1},
      {"retry", R, 0, -1},              {"retry", P, 0, -1},
      {"retry", S, 0, -1},
      {"explode", R, 0, -1},            {"", Q, 0, -1},
      {"cancel", -1, 0, -1},
  };
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
    int got = ad__task_intervention(CASES[i].action, CASES[i].state, CASES[i].pause_requested);
    if (got != CASES[i].cause)
      fprintf(stderr, "  %s in %s (pause_requested %d): %d\n", CASES[i].action,
              ad__task_state_name(CASES[i].state), CASES[i].pause_requested, got);
    ASSERT_EQ(got, CASES[i].cause);
  }
  ASSERT_EQ(ad__task_intervention(NULL, Q, 0), -1);
}

/* ---- a step's results ----------------------------------------------------- */

static json_t *task_of(const char *json)
{
  json_error_t e;
  json_t *t = json_loads(json, 0, &e);
  if (!t)
    fprintf(stderr, "  bad fixture: %s\n", e.text);
  return t;
}

#define THREE_STEPS "\"steps\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}]"

TEST(after_a_good_step)
{
  json_t *t = task_of("{\"step\":0,\"attempt\":2," THREE_STEPS ",\"retry\":{\"max_attempts\":3}}");
  ad__task_next_t nx;
  ad__task_after_step(t, 0, &nx);
  ASSERT_EQ(nx.cause, AD__TC_NEXT_STEP);
  ASSERT_EQ(nx.step, 1);
  ASSERT_EQ(nx.attempt, 1); /* a new step starts at attempt 1 */
  json_object_set_new(t, "pause_requested", json_true());
  ad__task_after_step(t, 0, &nx);
  ASSERT_EQ(nx.cause, AD__TC_PAUSE_BETWEEN);
  ASSERT_EQ(nx.step, 1); /* resume there */
  ASSERT_EQ(nx.attempt, 1);
  json_object_set_new(t, "step", json_integer(2)); /* the last step: a pause has nothing to hold */
  ad__task_after_step(t, 0, &nx);
  ASSERT_EQ(nx.cause, AD__TC_SUCCEED);
  ASSERT_EQ(nx.step, 2);
  json_decref(t);
}

TEST(after_a_failed_step)
{
  json_t *t = task_of("{\"step\":1,\"attempt\":1," THREE_STEPS
                      ",\"retry\":{\"max_attempts\":2,\"backoff_s\":30}}");
  ad__task_next_t nx;
  ad__task_after_step(t, 1, &nx);
  ASSERT_EQ(nx.cause, AD__TC_REQUEUE);
  ASSERT_EQ(nx.step, 1); /* the same step again */
  ASSERT_EQ(nx.attempt, 2);
  ASSERT_EQ(nx.backoff_s, 30);
  json_object_set_new(t, "attempt", json_integer(2)); /* no attempts left */
  ad__task_after_step(t, 1, &nx);
  ASSERT_EQ(nx.cause, AD__TC_FAIL);
  json_object_set_new(t, "pause_requested", json_true()); /* a failure is not held */
  ad__task_after_step(t, 1, &nx);
  ASSERT_EQ(nx.cause, AD__TC_FAIL);
  json_object_del(t, "retry"); /* no policy: one attempt */
  json_object_set_new(t, "attempt", json_integer(1));
  ad__task_after_step(t, 1, &nx);
  ASSERT_EQ(nx.cause, AD__TC_FAIL);
  json_decref(t);
}

/* A job cache holding m1 (retcode 5) and m3 (retcode 0). */
static int fake_cache(void *user, const char *jid, const char *minion, int64_t *rc)
{
  int *calls = user;
  (*calls)++;
  if (strcmp(jid, "J1"))
    return 0;
  if (!strcmp(minion, "m1"))
    return *rc = 5, 1;
  if (!strcmp(minion, "m3"))
    return *rc = 0, 1;
  return 0;
}

#define LIST_TASK "{\"jid\":\"J1\",\"target\":{\"tgt\":[\"m1\",\"m2\"],\"tgt_type\":\"list\"}," \
                  "\"minions\":[\"m1\",\"m2\",\"m9\"]}"

TEST(tally_counts_only_expected_minions)
{
  json_t *t = task_of(LIST_TASK);
  json_t *rets = task_of("[{\"minion\":\"m1\",\"retcode\":0},{\"minion\":\"m9\",\"retcode\":0}]");
  ad__task_tally_t tl;
  ad__task_tally(t, rets, NULL, NULL, &tl);
  /* a list target names its minions itself: m9 from a (forged) /new does not count */
  ASSERT_EQ(tl.expected, 2);
  ASSERT_EQ(tl.got, 1);
  ASSERT(!tl.done);
  json_array_append_new(rets, task_of("{\"minion\":\"m2\",\"retcode\":2}"));
  ad__task_tally(t, rets, NULL, NULL, &tl);
  ASSERT(tl.done);
  ASSERT_EQ(tl.failed, 1);
  ASSERT_STR(tl.detail, "m2 retcode 2");
  json_decref(rets);
  json_decref(t);
}

TEST(tally_glob_target_waits_for_the_jobs_minions)
{
  json_t *t = task_of("{\"jid\":\"J1\",\"target\":{\"tgt\":\"m*\",\"tgt_type\":\"glob\"},\"minions\":[]}");
  json_t *rets = task_of("[{\"minion\":\"m1\",\"retcode\":0}]");
  ad__task_tally_t tl;
  ad__task_tally(t, rets, NULL, NULL, &tl);
  ASSERT(!tl.done); /* nobody is expected yet: never done on nothing */
  ASSERT_EQ(tl.expected, 0);
  ASSERT_EQ(ad__task_judge_return(t, rets, "m1", NULL, NULL), AD__TR_TARGETS_UNKNOWN);
  json_object_set_new(t, "minions", task_of("[\"m1\"]"));
  ad__task_tally(t, rets, NULL, NULL, &tl);
  ASSERT(tl.done && tl.failed == 0);
  json_object_del(t, "minions");
  ad__task_tally(t, rets, NULL, NULL, &tl);
  ASSERT(!tl.done);
  json_decref(rets);
  json_decref(t);
}

TEST(tally_with_the_job_cache_takes_its_retcode)
{
  json_t *t = task_of(LIST_TASK);
  json_t *rets = task_of("[{\"minion\":\"m1\",\"retcode\":0},{\"minion\":\"m2\",\"retcode\":0}]");
  int calls = 0;
  ad__task_tally_t tl;
  ad__task_tally(t, rets, fake_cache, &calls, &tl);
  ASSERT(calls >= 2);
  ASSERT_EQ(tl.got, 1); /* m2's stored return is not in the cache: not counted */
  ASSERT(!tl.done);
  ASSERT_EQ(tl.failed, 1); /* m1: the cache says 5, whatever the event said */
  ASSERT_STR(tl.detail, "m1 retcode 5");
  json_decref(rets);
  json_decref(t);
}

TEST(judge_return_names_why_a_return_did_not_count)
{
  json_t *t = task_of(LIST_TASK);
  json_t *rets = task_of("[{\"minion\":\"m1\",\"retcode\":0},{\"minion\":\"m2\",\"retcode\":0},"
                         "{\"minion\":\"m3\",\"retcode\":0}]");
  int calls = 0;
  ASSERT_EQ(ad__task_judge_return(t, rets, "m1", fake_cache, &calls), AD__TR_COUNTED);
  /* a forged return event for m2: stored, but the master never wrote it */
  ASSERT_EQ(ad__task_judge_return(t, rets, "m2", fake_cache, &calls), AD__TR_NOT_CACHED);
  ASSERT_EQ(ad__task_judge_return(t, rets, "m2", NULL, NULL), AD__TR_COUNTED); /* bus trusted */
  /* m3 is in the cache, but the job did not target it */
  ASSERT_EQ(ad__task_judge_return(t, rets, "m3", fake_cache, &calls), AD__TR_NOT_TARGETED);
  ASSERT_EQ(ad__task_judge_return(t, rets, "m9", NULL, NULL), AD__TR_NOT_TARGETED);
  ASSERT_EQ(ad__task_judge_return(t, rets, NULL, NULL, NULL), AD__TR_NOT_TARGETED);
  json_t *none = json_array();
  ASSERT_EQ(ad__task_judge_return(t, none, "m1", fake_cache, &calls), AD__TR_NOT_STORED);
  json_decref(none);
  json_object_set_new(t, "jid", json_string("J2")); /* the cache holds J1's returns only */
  ASSERT_EQ(ad__task_judge_return(t, rets, "m1", fake_cache, &calls), AD__TR_NOT_CACHED);
  ASSERT(strstr(ad__task_return_reason(AD__TR_NOT_CACHED), "job cache"));
  ASSERT(strstr(ad__task_return_reason(AD__TR_NOT_TARGETED), "target"));
  json_decref(rets);
  json_decref(t);
}

RUN(CASE(every_transition_allowed_or_refused_as_documented), CASE(each_cause_has_one_target),
    CASE(succeeded_is_final_and_ends_only_retry), CASE(out_of_range_and_unknown_are_refused),
    CASE(interventions_in_every_state), CASE(after_a_good_step), CASE(after_a_failed_step),
    CASE(tally_counts_only_expected_minions), CASE(tally_glob_target_waits_for_the_jobs_minions),
    CASE(tally_with_the_job_cache_takes_its_retcode),
    CASE(judge_return_names_why_a_return_did_not_count))
