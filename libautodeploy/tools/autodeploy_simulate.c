/*
 * autodeploy_simulate.c - autodeploy-simulate: replay a history of game
 * server openings against a fleet with the reserve and placement rules,
 * and report the waiting they would have caused (docs/placement.md).
 *
 *   autodeploy-simulate [--openings-csv FILE] [--buy] [--pretty] [INPUT]
 *
 * A thin wrapper: the loop is ad__simulate (libautodeploy/src/simulate.c),
 * which is internal, so this tool links the static library.
 *
 * Exit: 0 report written; 1 cannot read a file or write stdout;
 * 64 bad arguments; 65 bad input (the message names the field).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "decide/simulate.h"

#define PROG "autodeploy-simulate"

static const char USAGE[] =
    "usage: " PROG " [--openings-csv FILE] [--buy] [--pretty] [INPUT]\n"
    "\n"
    "Replay openings against a fleet, one placement cycle at a time, and print\n"
    "a JSON report: hours openings waited for a ready server, hours services\n"
    "waited for a host, reserve levels over time, hosts used and to buy.\n"
    "\n"
    "INPUT (default '-': stdin) is a JSON object\n"
    "  {platforms: [{code, footprint: {cpu, mem}, policy, profiles, regions}],\n"
    "   hosts: [{key, cpu, mem, profile, region, load_cpu, load_mem}],\n"
    "   openings: [{platform, at}], options: {cycle_minutes, deploy_minutes, ...}}\n"
    "(docs/placement.md lists every key).\n"
    "\n"
    "  --openings-csv FILE  add openings from 'platform,timestamp' lines\n"
    "                       (ISO-8601 or epoch seconds; a header line is skipped)\n"
    "  --buy                order a host of the largest size whenever services wait\n"
    "                       for resources; it arrives options.host_lead_hours later\n"
    "  --pretty             indent the report\n";

static char *slurp(const char *path)
{
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 1 << 16, n = 0, r;
  char *b = malloc(cap);
  while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (cap - n - 1 == 0) {
      char *nb = realloc(b, cap *= 2);
      if (!nb) {
        free(b);
        b = NULL;
      }
      b = nb;
    }
  }
  int bad = ferror(f);
  if (f != stdin)
    fclose(f);
  if (!b || bad) {
    free(b);
    return NULL;
  }
  b[n] = '\0';
  return b;
}

int main(int argc, char **argv)
{
  static const struct option LONG[] = {{"openings-csv", required_argument, 0, 'c'},
                                       {"buy", no_argument, 0, 'b'},
                                       {"pretty", no_argument, 0, 'p'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *csv = NULL;
  int buy = 0, pretty = 0, c;
  while ((c = getopt_long(argc, argv, "c:bph", LONG, NULL)) != -1) {
    switch (c) {
    case 'c': csv = optarg; break;
    case 'b': buy = 1; break;
    case 'p': pretty = 1; break;
    case 'h': fputs(USAGE, stdout); return 0;
    default: fputs(USAGE, stderr); return EX_USAGE;
    }
  }
  if (argc - optind > 1) {
    fputs(USAGE, stderr);
    return EX_USAGE;
  }
  const char *path = optind < argc ? argv[optind] : "-";
  char *text = slurp(path);
  if (!text) {
    fprintf(stderr, PROG ": cannot read %s\n", path);
    return 1;
  }
  json_error_t je;
  json_t *in = json_loads(text, 0, &je);
  free(text);
  if (!in) {
    fprintf(stderr, PROG ": %s line %d column %d: %s\n", path, je.line, je.column, je.text);
    return EX_DATAERR;
  }
  ad_error_t err = {0};
  int rc = 0;
  if (csv) {
    char *ct = slurp(csv);
    if (!ct) {
      fprintf(stderr, PROG ": cannot read %s\n", csv);
      json_decref(in);
      return 1;
    }
    json_t *ops = json_object_get(in, "openings");
    if (!json_is_array(ops)) {
      ops = json_array();
      json_object_set_new(in, "openings", ops);
    }
    rc = ad__simulate_csv_openings(ct, csv, ops, &err);
    free(ct);
  }
  if (!rc && buy && json_is_object(in)) {
    json_t *opt = json_object_get(in, "options");
    if (!json_is_object(opt)) {
      opt = json_object();
      json_object_set_new(in, "options", opt);
    }
    if (!json_object_get(opt, "buy"))
      json_object_set_new(opt, "buy", json_true());
  }
  json_t *out = rc ? NULL : ad__simulate(in, &err);
  json_decref(in);
  if (!out) {
    fprintf(stderr, PROG ": %s\n", err.message);
    return EX_DATAERR;
  }
  size_t flags = JSON_REAL_PRECISION(6) | (pretty ? JSON_INDENT(1) : JSON_COMPACT);
  rc = json_dumpf(out, stdout, flags);
  json_decref(out);
  if (rc != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
    fprintf(stderr, PROG ": cannot write the report\n");
    return 1;
  }
  return 0;
}
