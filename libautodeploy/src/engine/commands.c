/*
 * commands.c - ad_call, the runners' one entry point: one table of
 * commands, each with its handler, what it needs, its arguments and a
 * one-line doc. docs/api.md's command table is checked against this one
 * (tests/engine/test_commands.c), so add a command in both places.
 *
 * A command runs in a short-lived engine built from the master's engine
 * configuration: the store and the bus's fire side, without the returns
 * batcher, the notifier or the CMDB push of the engine process.
 */
#include <string.h>

#include "core/error_private.h"
#include "decide/simulate_args.h"
#include "engine/engine_private.h"

/* pure computation: no store, no bus (decide/simulate_args.h) */
static json_t *cmd_simulate(const json_t *args, ad_error_t *err)
{
  return ad__simulate_args(args, err);
}

#define TASKS(name, f, a, d) {name, AD__CMD_TASKS, {.tasks = f}, a, d}
#define REGISTRY(name, f, a, d) {name, AD__CMD_REGISTRY, {.registry = f}, a, d}
#define FLEET(name, f, a, d) {name, AD__CMD_FLEET, {.fleet = f}, a, d}
#define PURE(name, f, a, d) {name, AD__CMD_PURE, {.pure = f}, a, d}
#define ENGINE(name, f, a, d) {name, AD__CMD_ENGINE, {.engine = f}, a, d}
#define PURCHASE(name, f, a, d) {name, AD__CMD_PURCHASE, {.purchase = f}, a, d}
static const ad__engine_command_t COMMANDS[] = {
    TASKS("task.deploy", ad__task_create,
          "tgt, tgt_type, mods or steps, pillar, timeout, retry, created_by, reason",
          "Create a deploy task: run states on the target, with a deadline and retries."),
    TASKS("task.list", ad__task_list, "status, since, limit",
          "List tasks, newest first."),
    TASKS("task.get", ad__task_get, "id",
          "One task and its job results."),
    TASKS("task.intervene", ad__task_intervene, "id, action, reason, actor",
          "Cancel, pause, resume or retry a task."),
    REGISTRY("host.list", ad__host_list, "state, profile, limit",
             "List registered hosts, by key."),
    REGISTRY("host.get", ad__host_get, "key",
             "One host with its history, by host key or minion id."),
    REGISTRY("host.retire", ad__host_retire, "key, reason, actor",
             "Retire a host: it is never placed on again."),
    REGISTRY("host.drain", ad__host_drain, "key, reason, actor, undo",
             "Drain a ready host (no new services), or make it ready again with undo."),
    REGISTRY("host.reinit", ad__host_reinit, "key, reason, actor",
             "Run host init again as a task."),
    FLEET("platform.list", ad__platform_list, "code",
          "List platforms, or one by code."),
    FLEET("platform.set", ad__platform_set,
          "code, state, pillar, profiles, regions, footprint, reserve, enabled, "
          "first_server_no, port_base, actor",
          "Create or change a platform (docs/placement.md)."),
    FLEET("service.list", ad__service_list, "platform, state, limit",
          "List services (game servers)."),
    FLEET("service.get", ad__service_get, "id",
          "One service with its history and its last placement decision."),
    FLEET("service.opened", ad__service_opened, "id, at, actor",
          "Mark a deployed service opened to players."),
    FLEET("service.close", ad__service_retire, "id, reason, actor",
          "Close a service (merged or closed server): it leaves the reserve and its host."),
    FLEET("service.usage", ad__service_usage, "id",
          "Measure an opened service's usage now from the placement's source (the beacon's "
          "samples or the metrics backend's per-service query) and store it."),
    FLEET("cycle.run", ad__fleet_cycle, "dry_run, platform",
          "Run one reserve and placement cycle now; dry_run reports without acting."),
    ENGINE("status", ad__engine_status, "master",
           "The engine's health: its heartbeat, bus, spool, returns, tasks, services, "
           "orders, last cycle, lease and notifier channels (docs/status.md)."),
    PURE("config.keys", ad__config_keys_cmd, "table",
         "Every configuration key with its type, default and range, by table "
         "(docs/configuration-reference.md)."),
    ENGINE("leader.get", ad__engine_leader_get, "-",
           "Who leads the masters: the leader lease's holder, term and expiry."),
    PURE("simulate", cmd_simulate, "input, csv, csv_name",
         "Replay openings against a reserve and placement policy; nothing is written."),
    PURCHASE("purchase.run", ad__purchase_run_cmd, "dry_run, wait_s",
             "Plan today's host orders; dry_run (the default) reports the plan and writes nothing. "
             "A run that writes waits up to wait_s (default 30) for the cycle lease."),
    PURCHASE("order.list", ad__order_list, "state, limit",
             "List orders, newest first."),
    PURCHASE("order.get", ad__order_get, "id",
             "One order with its plan, its history and its arrived hosts."),
    PURCHASE("order.approve", ad__order_approve, "id, actor",
             "Approve an order awaiting approval (a signed control event)."),
    PURCHASE("order.reject", ad__order_reject, "id, reason, actor",
             "Reject an order awaiting approval (a signed control event)."),
    PURCHASE("order.cancel", ad__order_cancel, "id, reason, actor",
             "Cancel an order that is not placed yet."),
    PURCHASE("order.placed", ad__order_placed, "id, ok, cloud_order_id, error, dry_run",
             "Report what a runner of the runner order backend did: the signed placed event "
             "that the engine records on the order."),
};
#undef TASKS
#undef REGISTRY
#undef FLEET
#undef PURE
#undef ENGINE
#undef PURCHASE

const ad__engine_command_t *ad__engine_commands(size_t *n)
{
  *n = sizeof COMMANDS / sizeof COMMANDS[0];
  return COMMANDS;
}

static const ad__engine_command_t *find_command(const char *name)
{
  for (size_t i = 0; name && i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
    if (!strcmp(COMMANDS[i].name, name))
      return &COMMANDS[i];
  return NULL;
}

/* The engine a command runs in; NULL + *err. */
static ad_engine_t *command_engine(const char *config_json, ad_error_t *err)
{
  json_t *conf = ad__config_parse(config_json, "configuration", AD_ECONFIG, err);
  if (!conf)
    return NULL;
  /* a runner needs the store and the bus's fire side, not the returns
   * batcher (or its spool_dir) of the engine process */
  json_object_set_new(conf, "returns", json_string("off"));
  json_object_del(conf, "notify");
  /* the engine process pushes to the outside CMDB and serves HTTP, not each
   * runner call (which would find the engine on the listen address) */
  json_object_del(json_object_get(conf, "registry"), "cmdb");
  json_object_del(conf, "http");
  /* nor takes DingTalk's pushes, which come to that server (a callback
   * without it would be refused) */
  json_object_del(json_object_get(json_object_get(json_object_get(conf, "purchase"), "approval"),
                                  "dingtalk"),
                  "callback");
  return ad__engine_from_json(conf, err);
}

static json_t *run_in_engine(const ad__engine_command_t *cmd, ad_engine_t *eng,
                             const json_t *args, ad_error_t *err)
{
  if (!eng->tasks.store) {
    ad__err(err, AD_ECONFIG, "config", "mongo_uri: required for %s", cmd->name);
    return NULL;
  }
  if (cmd->needs == AD__CMD_REGISTRY && !eng->registry) {
    ad__err(err, AD_ECONFIG, "config", "registry: disabled (registry.enabled is false)");
    return NULL;
  }
  if (cmd->needs == AD__CMD_FLEET && !eng->fleet) {
    ad__err(err, AD_ECONFIG, "config",
            "placement: not configured (the engine entry has no placement object)");
    return NULL;
  }
  if (cmd->needs == AD__CMD_PURCHASE && !eng->purchase) {
    ad__err(err, AD_ECONFIG, "config",
            "purchase: not configured (the engine entry has no purchase object)");
    return NULL;
  }
  switch (cmd->needs) {
  case AD__CMD_TASKS:
    return cmd->fn.tasks(&eng->tasks, args, err);
  case AD__CMD_REGISTRY:
    return cmd->fn.registry(eng->registry, args, err);
  case AD__CMD_FLEET:
    return cmd->fn.fleet(eng->fleet, args, err);
  case AD__CMD_ENGINE:
    return cmd->fn.engine(eng, args, err);
  case AD__CMD_PURCHASE:
    return cmd->fn.purchase(eng->purchase, args, err);
  case AD__CMD_PURE:
    break;
  }
  return cmd->fn.pure(args, err);
}

char *ad_call(const char *config_json, const char *command, const char *args_json,
              ad_error_t *err)
{
  const ad__engine_command_t *cmd = find_command(command);
  if (!cmd) {
    ad__err(err, AD_EINVAL, "call", "unknown command %s", command ? command : "(null)");
    return NULL;
  }
  json_t *args = ad__config_parse(args_json, "arguments", AD_EINVAL, err);
  if (!args)
    return NULL;
  json_t *res = NULL;
  if (cmd->needs == AD__CMD_PURE) {
    res = cmd->fn.pure(args, err);
  } else {
    ad_global_init();
    ad_engine_t *eng = command_engine(config_json, err);
    res = eng ? run_in_engine(cmd, eng, args, err) : NULL;
    ad_engine_destroy(&eng);
  }
  char *out = res ? json_dumps(res, JSON_COMPACT) : NULL;
  if (res && !out)
    ad__err(err, AD_ENOMEM, "call", "no memory for the result of %s", cmd->name);
  json_decref(res);
  json_decref(args);
  return out;
}
