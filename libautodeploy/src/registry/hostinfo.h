/* hostinfo.h - a minion's grains -> the validated facts of a host record:
 * its key (<profile>:<private ip>), addresses, capacity and labels. Pure
 * (no I/O), so every rule is unit-tested (tests/test_hostinfo.c).
 * docs/registration.md has the rules in prose. */
#ifndef AD_HOSTINFO_H
#define AD_HOSTINFO_H

#include <jansson.h>
#include <stdint.h>

#include "autodeploy/common.h"

/* One private-IP rule: an interface name ("eth0") or a CIDR ("10.0.0.0/8"). */
typedef struct {
  int is_cidr;
  uint32_t net, mask; /* host byte order */
  char iface[32];
} ad__ip_rule_t;

typedef struct {
  ad__ip_rule_t *rules; /* tried in order; then the first RFC 1918 address */
  size_t nrules;
  char **profiles;      /* allowlist of fnmatch globs; NULL-terminated; empty = none */
} ad__host_rules_t;

/* From JSON: private_ip (a string or list of rules), profiles (a list of
 * globs). 0 or AD_ECONFIG + err naming the key and the bad entry. */
int ad__host_rules_load(ad__host_rules_t *r, const json_t *private_ip, const json_t *profiles,
                        ad_error_t *err);
void ad__host_rules_free(ad__host_rules_t *r);

/* The facts of minion `id` from its grains, or NULL + err (AD_EINVAL)
 * naming the grain and what is wrong with it. The result:
 *   {key, minion, profile, provider, region, private_ip, ip_rule, ipv4: [..],
 *    interfaces: {if: [..]}, hostname, instance_id, machine_id, boot_id,
 *    capacity: {cpu, mem_mb, disk_gb}, labels: {os, osrelease, ...}}
 * (optional facts absent when the grain is). */
json_t *ad__host_facts(const json_t *grains, const char *id, const ad__host_rules_t *r,
                       ad_error_t *err);

/* Dotted quad -> host-order address; 0 or -1. */
int ad__ipv4_parse(const char *s, uint32_t *out);

#endif
