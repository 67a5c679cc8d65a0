/* bench/bench.h - helpers shared by the event benchmark's subcommands. */
#ifndef AD_BENCH_H
#define AD_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in seconds. */
double bench_now(void);

/* Read `size` bytes at `offset` of `path` (one captured frame, as it was on
 * the wire). malloc'd; exits with a message on failure. */
char *bench_load_frame(const char *path, long offset, size_t size);

/* Option parsing: the value of "--name" in argv, or def. */
const char *bench_opt(int argc, char **argv, const char *name, const char *def);
long long bench_opt_ll(int argc, char **argv, const char *name, long long def);
int bench_flag(int argc, char **argv, const char *name);

/* Peak resident set (VmHWM) of this process in KiB, or -1. */
long bench_rss_hwm_kb(void);

/* `serve` subcommand (replay_server.c). */
int bench_serve(int argc, char **argv);

#endif
