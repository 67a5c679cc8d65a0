/* test_simulate_args.c - the ad_call "simulate" command: the CSV goes
 * through the simulator's own parser (a header line skipped, as
 * autodeploy-simulate does), arguments are checked, and ad_call answers
 * the same report as the tool's path. */
#include "harness.h"
#include "autodeploy.h"
#include "decide/simulate.h"
#include "decide/simulate_args.h"

static json_t *load_json(const char *name)
{
  char path[512];
  size_t n;
  snprintf(path, sizeof path, "%s/simulate/%s", h_data_dir(), name);
  char *text = h_slurp(path, &n);
  json_t *v = text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  return v;
}

static char *load_text(const char *name)
{
  char path[512];
  size_t n;
  snprintf(path, sizeof path, "%s/simulate/%s", h_data_dir(), name);
  return h_slurp(path, &n);
}

/* What autodeploy-simulate --openings-csv does: the CSV's openings added to
 * the input's, then the simulation. */
static json_t *tool_path(const json_t *input, const char *csv)
{
  json_t *in = json_deep_copy(input);
  json_t *ops = json_object_get(in, "openings");
  if (ad__simulate_csv_openings(csv, "openings.csv", ops, NULL) != 0) {
    json_decref(in);
    return NULL;
  }
  json_t *r = ad__simulate(in, NULL);
  json_decref(in);
  return r;
}

TEST(csv_with_a_header_row_as_the_tool_reads_it)
{
  json_t *input = load_json("input.json");
  char *csv = load_text("openings.csv");
  ASSERT(input && csv);
  ASSERT(strncmp(csv, "platform,timestamp\n", 19) == 0); /* the header row under test */
  json_t *want = tool_path(input, csv);
  ASSERT(want);
  json_t *args = json_pack("{s:O, s:s, s:s}", "input", input, "csv", csv, "csv_name", "o.csv");
  ad_error_t e = {0};
  json_t *got = ad__simulate_args(args, &e);
  ASSERT(got);
  ASSERT(json_equal(got, want));
  /* the CSV's openings counted: not the report of the input alone */
  json_t *alone = ad__simulate(input, NULL);
  ASSERT(alone && !json_equal(got, alone));
  /* the caller's input is not changed */
  ASSERT_EQ(json_array_size(json_object_get(input, "openings")), 41);
  json_decref(alone);
  json_decref(got);
  json_decref(args);
  json_decref(want);
  json_decref(input);
  free(csv);
}

TEST(csv_without_openings_in_the_input)
{
  json_t *input = load_json("input.json");
  char *csv = load_text("openings.csv");
  ASSERT(input && csv);
  json_object_del(input, "openings");
  json_t *args = json_pack("{s:O, s:s}", "input", input, "csv", csv);
  json_t *got = ad__simulate_args(args, NULL);
  json_object_set_new(input, "openings", json_array());
  json_t *want = tool_path(input, csv);
  ASSERT(got && want && json_equal(got, want));
  json_decref(got);
  json_decref(want);
  json_decref(args);
  json_decref(input);
  free(csv);
}

TEST(refusals_name_the_argument)
{
  ad_error_t e = {0};
  json_t *a = json_pack("{s:{}}", "csv");
  ASSERT(!ad__simulate_args(a, &e));
  ASSERT_EQ(e.code, AD_EINVAL);
  ASSERT_STR(e.domain, "args");
  ASSERT_STR(e.message, "input: required, the simulation input object (docs/placement.md)");
  json_decref(a);

  a = json_pack("{s:{}, s:i}", "input", "csv", 3);
  ASSERT(!ad__simulate_args(a, &e));
  ASSERT_STR(e.message, "csv: must be text ('platform,time' lines)");
  json_decref(a);

  a = json_pack("{s:{}, s:s}", "input", "cvs", "x");
  ASSERT(!ad__simulate_args(a, &e));
  ASSERT_EQ(e.code, AD_EINVAL);
  ASSERT_STR(e.message, "cvs: unknown argument (simulate takes input, csv, csv_name)");
  json_decref(a);

  /* a bad line: the simulator's parser, naming the source and the line */
  json_t *input = load_json("input.json");
  a = json_pack("{s:O, s:s, s:s}", "input", input, "csv", "platform,time\ng10,2024-05-01\ng10,soon\n",
                "csv_name", "csv /srv/o.csv");
  ASSERT(!ad__simulate_args(a, &e));
  ASSERT_EQ(e.code, AD_ECONFIG);
  ASSERT_STR(e.domain, "simulate");
  ASSERT_STR(e.message, "csv /srv/o.csv line 3: cannot parse 'soon' as ISO-8601 or epoch seconds");
  json_decref(a);
  json_decref(input);
}

TEST(ad_call_simulate_takes_the_csv)
{
  json_t *input = load_json("input.json");
  char *csv = load_text("openings.csv");
  ASSERT(input && csv);
  json_t *want = tool_path(input, csv);
  json_t *args = json_pack("{s:O, s:s}", "input", input, "csv", csv);
  char *text = json_dumps(args, JSON_COMPACT);
  ad_error_t e = {0};
  char *out = ad_call("{}", "simulate", text, &e);
  ASSERT(out);
  json_t *got = json_loads(out, 0, NULL);
  ASSERT(got && json_equal(got, want));
  ad_free(out);
  ASSERT(!ad_call("{}", "simulate", "{\"input\": {}, \"extra\": 1}", &e));
  ASSERT_STR(e.message, "extra: unknown argument (simulate takes input, csv, csv_name)");
  json_decref(got);
  free(text);
  json_decref(args);
  json_decref(want);
  json_decref(input);
  free(csv);
}

RUN(CASE(csv_with_a_header_row_as_the_tool_reads_it), CASE(csv_without_openings_in_the_input),
    CASE(refusals_name_the_argument), CASE(ad_call_simulate_takes_the_csv))
