/*
 * autodeploy/engine.h - the engine: a bus configured from one JSON object,
 * with autodeploy's handlers routed on it. This is what the Salt engine
 * shim (saltext.autodeploy.engines.autodeploy) drives through ctypes, so
 * its surface is deliberately small and JSON-in / JSON-out.
 *
 * Configuration keys (docs/configuration.md has types, defaults, ranges):
 *   sock_dir, ipc_mode ("ipc"|"tcp"), tcp_host, tcp_master_pub_port,
 *   tcp_master_pull_port, max_frame, framing, fire_framing, workers,
 *   queue_size, queue_full, reconnect_min_ms, reconnect_max_ms,
 *   fanout_endpoint, fanout_format, stats_interval, log_events
 * Unknown keys are an error (typos must not pass silently).
 */
#ifndef AUTODEPLOY_ENGINE_H
#define AUTODEPLOY_ENGINE_H

#include "bus.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ad_engine ad_engine_t;

/* Parse and validate the configuration (a JSON object). NULL + *err
 * naming the key and the reason. */
AD_EXPORT ad_engine_t *ad_engine_new(const char *config_json, ad_error_t *err);

/* Run until ad_engine_stop (blocks; call from a thread that may block).
 * 0, or <0 + *err when it could not start. */
AD_EXPORT int ad_engine_run(ad_engine_t *eng, ad_error_t *err);

/* Ask it to stop; thread-safe and async-signal-safe. */
AD_EXPORT void ad_engine_stop(ad_engine_t *eng);

/* NULL-safe; stops and waits first. */
AD_EXPORT void ad_engine_destroy(ad_engine_t **self_p);

/* The bus the engine drives (borrowed), e.g. to fire events. */
AD_EXPORT ad_bus_t *ad_engine_bus(ad_engine_t *eng);

/* Counters as a JSON object text; caller frees with ad_free. */
AD_EXPORT char *ad_engine_stats_json(ad_engine_t *eng);

/* The runners' entry point: run `command` with JSON arguments, using the
 * engine configuration `config_json` (most commands need mongo_uri, and
 * master_key_path to fire signed events). The commands, what each needs,
 * and their arguments: the table in docs/api.md ("ad_call commands"),
 * checked against the library's own table by `make test-c`. Returns JSON
 * text the caller frees with ad_free, or NULL + *err naming the bad
 * argument and why (an unknown command: AD_EINVAL naming it). */
AD_EXPORT char *ad_call(const char *config_json, const char *command,
                        const char *args_json, ad_error_t *err);

/* Free memory the library returned (for callers that cannot call free(),
 * such as ctypes). NULL-safe. */
AD_EXPORT void ad_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
