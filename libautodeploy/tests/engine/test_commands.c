/* test_commands.c - ad_call's command table is the one source: docs/api.md's
 * table of commands must list the same commands in the same order, with the
 * same needs, arguments and text, so the docs cannot drift from the code.
 * Also: an unknown command is refused naming it (no aliases for the old
 * names), and the checks ad_call makes before it needs a store. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/engine_private.h"
#include "harness.h"

static const char *needs_word(ad__cmd_needs_t n)
{
  switch (n) {
  case AD__CMD_PURE:
    return "nothing";
  case AD__CMD_TASKS:
  case AD__CMD_ENGINE:
    return "store";
  case AD__CMD_REGISTRY:
    return "registry";
  case AD__CMD_FLEET:
    return "placement";
  case AD__CMD_PURCHASE:
    return "purchase";
  }
  return "?";
}

TEST(table_is_well_formed)
{
  size_t n;
  const ad__engine_command_t *c = ad__engine_commands(&n);
  ASSERT(n > 0);
  for (size_t i = 0; i < n; i++) {
    ASSERT(c[i].name && *c[i].name && c[i].args && *c[i].args && c[i].doc && *c[i].doc);
    ASSERT(c[i].fn.pure != NULL);
    ASSERT(!strchr(c[i].args, '|') && !strchr(c[i].doc, '|')); /* a markdown cell */
    for (size_t j = 0; j < i; j++)
      ASSERT(strcmp(c[i].name, c[j].name) != 0);
  }
}

/* One row of docs/api.md's command table, split into its four cells
 * (trimmed, backticks around the name dropped). 0, or -1 if not a row. */
static int split_row(char *line, char *cell[4])
{
  if (line[0] != '|')
    return -1;
  char *p = line + 1;
  for (int i = 0; i < 4; i++) {
    char *bar = strchr(p, '|');
    if (!bar)
      return -1;
    *bar = '\0';
    while (*p == ' ')
      p++;
    char *end = bar;
    while (end > p && end[-1] == ' ')
      *--end = '\0';
    cell[i] = p;
    p = bar + 1;
  }
  if (cell[0][0] == '`') {
    cell[0]++;
    cell[0][strlen(cell[0]) - 1] = '\0';
  }
  return 0;
}

TEST(docs_list_exactly_the_table)
{
  char path[512];
  snprintf(path, sizeof path, "%s/../../docs/api.md", h_data_dir());
  size_t len;
  char *text = h_slurp(path, &len);
  ASSERT(text != NULL);
  char *start = strstr(text, "| command | needs | arguments | what it does |\n|---|---|---|---|\n");
  if (!start)
    free(text);
  ASSERT(start != NULL);
  char *line = strchr(strchr(start, '\n') + 1, '\n') + 1;
  size_t n, row = 0;
  const ad__engine_command_t *c = ad__engine_commands(&n);
  int bad = 0;
  while (*line == '|') {
    char *nl = strchr(line, '\n');
    if (nl)
      *nl = '\0';
    char *cell[4];
    if (split_row(line, cell) || row >= n || strcmp(cell[0], c[row].name) ||
        strcmp(cell[1], needs_word(c[row].needs)) || strcmp(cell[2], c[row].args) ||
        strcmp(cell[3], c[row].doc)) {
      fprintf(stderr, "  docs/api.md row %zu differs from commands.c: %s\n", row + 1,
              row < n ? c[row].name : "(the table is shorter)");
      bad = 1;
    }
    row++;
    if (!nl)
      break;
    line = nl + 1;
  }
  free(text);
  ASSERT(!bad);
  ASSERT_EQ(row, n);
}

static int refused(const char *conf, const char *command, const char *args, int code,
                   const char *want)
{
  ad_error_t err;
  memset(&err, 0, sizeof err);
  char *out = ad_call(conf, command, args, &err);
  if (out) {
    fprintf(stderr, "  %s answered %s\n", command ? command : "(null)", out);
    ad_free(out);
    return 0;
  }
  if (err.code != code || !strstr(err.message, want)) {
    fprintf(stderr, "  %s -> %d %s\n", command ? command : "(null)", err.code, err.message);
    return 0;
  }
  return 1;
}

TEST(unknown_command_is_named)
{
  ASSERT(refused("{}", "task.nope", "{}", AD_EINVAL, "unknown command task.nope"));
  ASSERT(refused("{}", NULL, "{}", AD_EINVAL, "unknown command (null)"));
  /* the old names, renamed to the runners' words, are gone: no aliases */
  ASSERT(refused("{}", "task.create", "{}", AD_EINVAL, "unknown command task.create"));
  ASSERT(refused("{}", "service.retire", "{}", AD_EINVAL, "unknown command service.retire"));
}

TEST(arguments_and_needs_are_checked)
{
  ASSERT(refused("{}", "task.list", "[", AD_EINVAL, "arguments is not JSON"));
  ASSERT(refused("{}", "simulate", "{}", AD_EINVAL, "input: required"));
  ASSERT(refused("{}", "task.deploy", "{}", AD_ECONFIG, "mongo_uri: required for task.deploy"));
  ASSERT(refused("{}", "service.close", "{}", AD_ECONFIG, "mongo_uri: required for service.close"));
  ASSERT(refused("{\"wokers\": 1}", "host.list", "{}", AD_ECONFIG, "wokers"));
  /* refused before the store is reached (nothing listens on port 1) */
  const char *conf = "{\"mongo_uri\": \"mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=50\", "
                     "\"registry\": {\"enabled\": false}}";
  ASSERT(refused(conf, "host.list", "{}", AD_ECONFIG, "registry: disabled"));
  ASSERT(refused(conf, "cycle.run", "{}", AD_ECONFIG, "placement: not configured"));
}

/* A runner's engine does not serve HTTP: the engine process listens on the
 * address already (every runner call failed "cannot listen" while it ran). */
TEST(runner_does_not_listen)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  ASSERT(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0);
  ASSERT(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  char conf[200];
  snprintf(conf, sizeof conf, "{\"http\": {\"listen\": \"127.0.0.1:%u\", "
           "\"reader_tokens\": [\"0123456789abcdef\"]}}", (unsigned)ntohs(a.sin_port));
  ASSERT(refused(conf, "task.deploy", "{}", AD_ECONFIG, "mongo_uri: required for task.deploy"));
  close(fd);
}

/* Nor does it take DingTalk's pushes: a purchase callback without the http
 * object would be refused, which would fail every runner call. */
TEST(runner_takes_no_dingtalk_push)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t al = sizeof a;
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ASSERT(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0);
  ASSERT(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
  char conf[1200];
  snprintf(conf, sizeof conf,
           "{\"mongo_uri\": \"mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=50\", "
           "\"returns\": \"off\", \"placement\": {}, \"http\": {\"listen\": \"127.0.0.1:%u\", "
           "\"reader_tokens\": [\"reader-token-0123456789\"]}, \"purchase\": {\"profiles\": "
           "{\"p\": {\"flavour\": \"f\", \"cpu\": 8, \"mem_mb\": 8192, \"disk_gb\": 100}}, "
           "\"approval\": {\"dingtalk\": {\"app_key\": \"k\", \"app_secret\": \"s\", "
           "\"process_code\": \"P\", \"originator_user_id\": \"u\", \"callback\": {\"token\": "
           "\"t\", \"aes_key\": \"BwkLDQ8RExUXGRsdHyEjJScpKy0vMTM1Nzk7PT9BQ0U\"}}}}}",
           ntohs(a.sin_port));
  /* built (the port in use is not tried), then the command's own check */
  ASSERT(refused(conf, "order.get", "{}", AD_EINVAL, "id: required"));
  close(fd);
}

RUN(CASE(table_is_well_formed), CASE(docs_list_exactly_the_table),
    CASE(unknown_command_is_named), CASE(arguments_and_needs_are_checked),
    CASE(runner_does_not_listen), CASE(runner_takes_no_dingtalk_push))
