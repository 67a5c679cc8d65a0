/*
 * master_conf.h - find a salt-master's event bus from its config file: the
 * few settings autodeploy-events needs, read the way salt.config does.
 *
 * Read: sock_dir, ipc_mode, tcp_master_pub_port, tcp_master_pull_port, plus
 * root_dir and cachedir (which move sock_dir, see below), default_include
 * and include. Files merge as salt.config.master_config merges them: the
 * main file first, then the files matched by default_include (default:
 * every .conf file in master.d/ beside the main file), then those matched
 * by include. Each include entry (a string or a list of them) is a glob,
 * relative to the directory of the file naming it, '~' expanded, matches
 * taken in sorted order; an included file's own include is followed the
 * same way and wins over that file. A later file's value replaces an
 * earlier one. default_include is only read from the main file. A glob
 * matching nothing is not an error (Salt only warns).
 *
 * Then, as salt.config.apply_master_config does: when sock_dir is more than
 * 10 characters longer than cachedir it becomes <cachedir>/.salt-unix; and
 * root_dir (default "/") is prefixed to sock_dir unless it is already
 * under root_dir. ipc_mode "tcp" means TCP; any other value is Salt's
 * default Unix-socket mode, as in Salt.
 *
 * Limits (this is not a YAML parser):
 *   - only top-level keys written as `key: value` starting in column 0 are
 *     read; indented lines (nested blocks, continuations) are skipped, as
 *     are top-level lines that are not `key:` (`---`, `? key`, ...);
 *   - values of the keys above must be one-line scalars: plain, 'single'
 *     (with '' for ') or "double" quoted (\" \\ \n \t \/ escapes); a `#`
 *     after a space, or after the closing quote, starts a comment;
 *     `include` may also be a flow list `[a, 'b']` or a block list of
 *     `- item` lines under it; anchors, aliases, tags and multi-line
 *     scalars are not understood and are reported for these keys;
 *   - ports are decimal integers 1..65535 (quoted or not);
 *   - a file whose first non-blank, non-comment character is `{` is read
 *     as JSON (the flow-mapping subset of YAML that tools such as
 *     tests/saltenv.py write); other flow-style YAML mappings are not read;
 *   - SALT_MASTER_CONFIG, Jinja in config files and the `*_dir` overrides
 *     from the command line of salt-master are not looked at.
 */
#ifndef AD_TOOLS_MASTER_CONF_H
#define AD_TOOLS_MASTER_CONF_H

#include <autodeploy.h>

/* Defaults, as salt/config/__init__.py DEFAULT_MASTER_OPTS on Linux. */
#define MASTER_CONF_SOCK_DIR "/var/run/salt/master"
#define MASTER_CONF_CACHEDIR "/var/cache/salt/master"
#define MASTER_CONF_PUB_PORT 4512
#define MASTER_CONF_PULL_PORT 4513
#define MASTER_CONF_MAX_FILES 256

typedef struct {
  char sock_dir[4096];  /* final, with root_dir and the cachedir rule */
  int ipc_mode_tcp;     /* 1 when ipc_mode is "tcp" */
  int tcp_pub_port;     /* tcp_master_pub_port */
  int tcp_pull_port;    /* tcp_master_pull_port */
  int nfiles;           /* files read, main first, in merge order */
  char *files[MASTER_CONF_MAX_FILES]; /* owned; freed by master_conf_free */
} master_conf_t;

/* Salt's defaults into *conf (no file read). */
void master_conf_init(master_conf_t *conf);

/* Read `path` (a master config file, or a directory holding one named
 * "master", as salt-master -c takes) and its includes into *conf, which
 * must have been master_conf_init'ed. 0, or a negative AD_E* code with
 * err->message naming the file, the line and what was wrong. */
int master_conf_load(master_conf_t *conf, const char *path, ad_error_t *err);

/* Free what master_conf_load allocated; *conf can be loaded again after
 * master_conf_init. */
void master_conf_free(master_conf_t *conf);

#endif
