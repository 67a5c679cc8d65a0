/* saltfiles.h - what the master itself knows about a minion, read from
 * the master's own files rather than from bus events (which any minion can
 * forge: docs/registration-research.md):
 *   - whether its key is accepted (<pki_dir>/minions/<id>) and the key's
 *     fingerprint, computed as `salt-key -f` does;
 *   - its grains from the minion data cache (localfs driver), written from
 *     the minion's own authenticated _pillar request;
 *   - which addresses hold a TCP connection to the publish port, the same
 *     view Salt's presence events are computed from (/proc/net/tcp). */
#ifndef AD_SALTFILES_H
#define AD_SALTFILES_H

#include <jansson.h>
#include <stdint.h>

#include "autodeploy/common.h"

#define AD__MINION_ID_MAX 128

/* A minion id Salt would accept and that is safe as a path component:
 * 1..128 bytes, printable ASCII without '/', '\\', not "." or "..". */
int ad__salt_valid_id(const char *id, size_t n);

/* Key state of `id`: 1 accepted (fingerprint filled, "aa:bb:..." of the
 * `hash_type` digest), 0 not accepted (pre, rejected, denied or absent),
 * <0 + *err when the pki dir cannot be read. */
int ad__salt_key_accepted(const char *pki_dir, const char *id, const char *hash_type,
                          char *fingerprint, size_t fp_size, ad_error_t *err);

/* Grains of `id` from the master's localfs minion data cache:
 * <cachedir>/grains/<id>.p (3007+) or <cachedir>/minions/<id>/data.p
 * ("grains" of it; 3006), the newer when both exist. *stamp gets the file's
 * mtime in ns and size mixed (changes when the minion refreshes). NULL +
 * err: AD_ENOTFOUND (no entry), AD_EDECODE (not msgpack / no grains map),
 * AD_ETOOBIG (over 4 MiB), AD_EIO. */
json_t *ad__salt_cached_grains(const char *cachedir, const char *id, int64_t *stamp,
                               ad_error_t *err);

/* Remote IPv4 addresses (network byte order) with an ESTABLISHED TCP
 * connection to local `port` (IPv4 and IPv4-mapped IPv6), from
 * /proc/net/tcp and tcp6 (or `proc_dir` instead of /proc/net, for tests).
 * *ips malloc'd, sorted, unique. 0 or AD_EIO. */
int ad__salt_connected_ips(const char *proc_dir, unsigned port, uint32_t **ips, size_t *n,
                           ad_error_t *err);

/* Accepted minion ids in <pki_dir>/minions, one call per id. */
int ad__salt_each_accepted(const char *pki_dir, void (*fn)(void *user, const char *id),
                           void *user, ad_error_t *err);

#endif
