/* hostinfo.c - see hostinfo.h. */
#include <arpa/inet.h>
#include <ctype.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_private.h"
#include "registry/hostinfo.h"

#define MAX_ADDRS 256
#define MAX_IFACES 256

int ad__ipv4_parse(const char *s, uint32_t *out)
{
  struct in_addr a;
  if (!s || strlen(s) > 15 || inet_pton(AF_INET, s, &a) != 1)
    return -1;
  *out = ntohl(a.s_addr);
  return 0;
}

static int parse_rule(const char *s, ad__ip_rule_t *r)
{
  memset(r, 0, sizeof *r);
  const char *slash = strchr(s, '/');
  if (slash) {
    char ip[32];
    size_t n = (size_t)(slash - s);
    char *end;
    long bits = strtol(slash + 1, &end, 10);
    if (n == 0 || n >= sizeof ip || *end || end == slash + 1 || bits < 0 || bits > 32)
      return -1;
    memcpy(ip, s, n);
    ip[n] = 0;
    if (ad__ipv4_parse(ip, &r->net))
      return -1;
    r->is_cidr = 1;
    r->mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    r->net &= r->mask;
    return 0;
  }
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof r->iface)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("._-@:", s[i]))
      return -1;
  memcpy(r->iface, s, n + 1);
  return 0;
}

int ad__host_rules_load(ad__host_rules_t *r, const json_t *private_ip, const json_t *profiles,
                        ad_error_t *err)
{
  memset(r, 0, sizeof *r);
  json_t *list = NULL;
  if (json_is_string(private_ip))
    list = json_pack("[O]", private_ip);
  else if (json_is_array(private_ip))
    list = json_incref((json_t *)private_ip);
  else if (private_ip && !json_is_null(private_ip))
    return ad__err(err, AD_ECONFIG, "config",
                   "registry.private_ip: must be an interface name, a CIDR or a list of them");
  size_t i;
  json_t *v;
  r->rules = calloc(json_array_size(list) + 1, sizeof *r->rules);
  json_array_foreach(list, i, v) {
    if (!json_is_string(v) || parse_rule(json_string_value(v), &r->rules[r->nrules])) {
      char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
      ad__err(err, AD_ECONFIG, "config",
              "registry.private_ip[%zu]: %.80s is neither an interface name nor an IPv4 CIDR",
              i, t ? t : "?");
      free(t);
      json_decref(list);
      ad__host_rules_free(r);
      return AD_ECONFIG;
    }
    r->nrules++;
  }
  json_decref(list);
  if (profiles && !json_is_array(profiles))
    return ad__host_rules_free(r),
           ad__err(err, AD_ECONFIG, "config", "registry.profiles: must be a list of profile names or globs");
  r->profiles = calloc(json_array_size(profiles) + 1, sizeof(char *));
  json_array_foreach(profiles, i, v) {
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 128) {
      ad__host_rules_free(r);
      return ad__err(err, AD_ECONFIG, "config",
                     "registry.profiles[%zu]: must be a profile name or glob of 1..128 characters", i);
    }
    r->profiles[i] = strdup(json_string_value(v));
  }
  return 0;
}

void ad__host_rules_free(ad__host_rules_t *r)
{
  free(r->rules);
  for (size_t i = 0; r->profiles && r->profiles[i]; i++)
    free(r->profiles[i]);
  free(r->profiles);
  memset(r, 0, sizeof *r);
}

/* ---- grain checks --------------------------------------------------------- */

static int refuse(ad_error_t *err, const char *id, const char *grain, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(ad_error_t *err, const char *id, const char *grain, const char *fmt, ...)
{
  char why[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  return ad__err(err, AD_EINVAL, "registry", "minion %s: grain %s %s", id, grain, why);
}

/* "name" charset: [A-Za-z0-9] then [A-Za-z0-9._:-], 1..max */
static int name_ok(const char *s, size_t n, size_t max, int colon)
{
  if (n == 0 || n > max || !isalnum((unsigned char)s[0]))
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!isalnum(c) && c != '.' && c != '_' && c != '-' && !(colon && c == ':'))
      return 0;
  }
  return 1;
}

static int printable(const char *s, size_t n, size_t max)
{
  if (n > max)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
      return 0;
  return 1;
}

/* optional string grain: 0 absent/ok (*out set when present), -1 refused */
static int opt_str(const json_t *g, const char *grain, const char *id, int kind, size_t max,
                   const char **out, ad_error_t *err)
{
  *out = NULL;
  json_t *v = json_object_get(g, grain);
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_string(v))
    return refuse(err, id, grain, "must be a string"), -1;
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  int ok = kind == 0   ? printable(s, n, max)
           : kind == 1 ? name_ok(s, n, max, 1)
                       : name_ok(s, n, max, 0);
  if (!ok || strlen(s) != n)
    return refuse(err, id, grain, "%s (%zu bytes)",
                  n > max ? "is too long" : "has characters not allowed", n), -1;
  *out = s;
  return 0;
}

static int hexfmt(const char *s, const char *shape)
{
  /* shape: 'x' = hex digit, other chars literal */
  size_t n = strlen(shape);
  if (strlen(s) != n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (shape[i] == 'x' ? !isxdigit((unsigned char)s[i]) : s[i] != shape[i])
      return 0;
  return 1;
}

static int opt_int(const json_t *g, const char *grain, const char *id, json_int_t lo,
                   json_int_t hi, int required, json_int_t *out, ad_error_t *err)
{
  json_t *v = json_object_get(g, grain);
  if (!v || json_is_null(v)) {
    if (required)
      return refuse(err, id, grain, "is missing"), -1;
    *out = -1;
    return 0;
  }
  if (!json_is_integer(v))
    return refuse(err, id, grain, "must be an integer"), -1;
  *out = json_integer_value(v);
  if (*out < lo || *out > hi)
    return refuse(err, id, grain, "%lld is out of range %lld..%lld", (long long)*out,
                  (long long)lo, (long long)hi), -1;
  return 0;
}

static int rfc1918(uint32_t a)
{
  return (a & 0xff000000u) == 0x0a000000u || (a & 0xfff00000u) == 0xac100000u ||
         (a & 0xffff0000u) == 0xc0a80000u;
}

static int loopback(uint32_t a) { return (a & 0xff000000u) == 0x7f000000u; }

/* ipv4 must be a list of dotted quads; interfaces a map of such lists */
static int check_addrs(const json_t *list, const char *grain, const char *id, ad_error_t *err)
{
  if (!json_is_array(list))
    return refuse(err, id, grain, "must be a list of IPv4 addresses"), -1;
  if (json_array_size(list) > MAX_ADDRS)
    return refuse(err, id, grain, "has %zu addresses (at most %d)", json_array_size(list),
                  MAX_ADDRS), -1;
  size_t i;
  json_t *v;
  uint32_t a;
  json_array_foreach(list, i, v) {
    if (!json_is_string(v) || ad__ipv4_parse(json_string_value(v), &a))
      return refuse(err, id, grain, "[%zu] is not an IPv4 address", i), -1;
  }
  return 0;
}

static const char *pick_ip(const json_t *ipv4, const json_t *ifaces, const ad__host_rules_t *r,
                           char *rule_out, size_t rule_size)
{
  for (size_t k = 0; k < r->nrules; k++) {
    const ad__ip_rule_t *rule = &r->rules[k];
    const json_t *list = rule->is_cidr ? ipv4 : json_object_get(ifaces, rule->iface);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
      uint32_t a;
      if (ad__ipv4_parse(json_string_value(v), &a) || loopback(a))
        continue;
      if (rule->is_cidr && (a & rule->mask) != rule->net)
        continue;
      if (rule->is_cidr) {
        struct in_addr n = {htonl(rule->net)};
        char net[16];
        inet_ntop(AF_INET, &n, net, sizeof net);
        snprintf(rule_out, rule_size, "cidr %s/%d", net, __builtin_popcount(rule->mask));
      } else {
        snprintf(rule_out, rule_size, "interface %s", rule->iface);
      }
      return json_string_value(v);
    }
  }
  size_t i;
  json_t *v;
  json_array_foreach(ipv4, i, v) {
    uint32_t a;
    if (!ad__ipv4_parse(json_string_value(v), &a) && rfc1918(a)) {
      snprintf(rule_out, rule_size, "first RFC 1918 address");
      return json_string_value(v);
    }
  }
  return NULL;
}

static const char *const LABEL_GRAINS[] = {"os", "os_family", "osrelease", "osfinger", "cpuarch",
                                           "kernelrelease", "virtual", "saltversion", NULL};

/* the identity grains: all optional but the profile, which must be allowed */
typedef struct {
  const char *profile, *provider, *region, *instance, *machine, *boot, *host;
  char pbuf[130], rbuf[130];
} ids_t;

static int read_ids(const json_t *g, const char *id, const ad__host_rules_t *r, ids_t *x,
                    ad_error_t *err)
{
  if (opt_str(g, "autodeploy_profile", id, 1, 128, &x->profile, err) ||
      opt_str(g, "autodeploy_provider", id, 2, 64, &x->provider, err) ||
      opt_str(g, "autodeploy_region", id, 2, 64, &x->region, err) ||
      opt_str(g, "autodeploy_instance_id", id, 1, 128, &x->instance, err) ||
      opt_str(g, "machine_id", id, 2, 64, &x->machine, err) ||
      opt_str(g, "autodeploy_boot_id", id, 2, 64, &x->boot, err) ||
      opt_str(g, "host", id, 2, 253, &x->host, err))
    return AD_EINVAL;
  if (!x->profile)
    return refuse(err, id, "autodeploy_profile",
                  "is missing (a host image without packaging/grains/autodeploy_host.py?)");
  int allowed = 0;
  for (size_t i = 0; r->profiles && r->profiles[i] && !allowed; i++)
    allowed = fnmatch(r->profiles[i], x->profile, 0) == 0;
  if (!allowed)
    return refuse(err, id, "autodeploy_profile", "%s is not in registry.profiles", x->profile);
  if (x->machine && !hexfmt(x->machine, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"))
    return refuse(err, id, "machine_id", "is not 32 hex digits");
  if (x->boot && !hexfmt(x->boot, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"))
    return refuse(err, id, "autodeploy_boot_id", "is not a UUID");
  /* provider and region default to the profile's first two ':' fields */
  const char *c1 = strchr(x->profile, ':');
  const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  if (!x->provider && c1) {
    snprintf(x->pbuf, sizeof x->pbuf, "%.*s", (int)(c1 - x->profile), x->profile);
    x->provider = x->pbuf;
  }
  if (!x->region && c1) {
    snprintf(x->rbuf, sizeof x->rbuf, "%.*s", (int)(c2 ? c2 - c1 - 1 : (long)strlen(c1 + 1)),
             c1 + 1);
    x->region = x->rbuf;
  }
  return 0;
}

/* ipv4 (required) and ip4_interfaces (optional): bounded lists of IPv4s */
static int read_addrs(const json_t *g, const char *id, json_t **ipv4, json_t **ifaces,
                      ad_error_t *err)
{
  *ipv4 = json_object_get(g, "ipv4");
  *ifaces = json_object_get(g, "ip4_interfaces");
  if (!*ipv4)
    return refuse(err, id, "ipv4", "is missing");
  if (check_addrs(*ipv4, "ipv4", id, err))
    return AD_EINVAL;
  if (*ifaces && !json_is_object(*ifaces))
    return refuse(err, id, "ip4_interfaces", "must be a map of interface to addresses");
  if (json_object_size(*ifaces) > MAX_IFACES)
    return refuse(err, id, "ip4_interfaces", "has %zu interfaces (at most %d)",
                  json_object_size(*ifaces), MAX_IFACES);
  const char *ifname;
  json_t *v;
  json_object_foreach(*ifaces, ifname, v) {
    char gname[64];
    snprintf(gname, sizeof gname, "ip4_interfaces.%.32s", ifname);
    if (!name_ok(ifname, strlen(ifname), 31, 1) && !(strchr(ifname, '@') && printable(ifname, strlen(ifname), 31)))
      return refuse(err, id, "ip4_interfaces", "has an odd interface name");
    if (check_addrs(v, gname, id, err))
      return AD_EINVAL;
  }
  return 0;
}

/* the descriptive grains that become labels, when present */
static json_t *read_labels(const json_t *g, const char *id, ad_error_t *err)
{
  json_t *labels = json_object();
  if (!labels)
    return ad__err(err, AD_ENOMEM, "registry", "no memory"), NULL;
  for (int i = 0; LABEL_GRAINS[i]; i++) {
    const char *s;
    if (opt_str(g, LABEL_GRAINS[i], id, 0, 128, &s, err)) {
      json_decref(labels);
      return NULL;
    }
    if (s)
      json_object_set_new(labels, LABEL_GRAINS[i], json_string(s));
  }
  return labels;
}

json_t *ad__host_facts(const json_t *g, const char *id, const ad__host_rules_t *r,
                       ad_error_t *err)
{
  if (!json_is_object(g))
    return refuse(err, id, "(all)", "are not a map"), NULL;
  const char *gid = json_string_value(json_object_get(g, "id"));
  if (gid && strcmp(gid, id) != 0)
    return refuse(err, id, "id", "names another minion (%.64s)", gid), NULL;
  ids_t x;
  json_t *ipv4, *ifaces;
  json_int_t cpus, mem, disk;
  if (read_ids(g, id, r, &x, err) || read_addrs(g, id, &ipv4, &ifaces, err) ||
      opt_int(g, "num_cpus", id, 1, 4096, 1, &cpus, err) ||
      opt_int(g, "mem_total", id, 1, 64LL << 20, 1, &mem, err) ||
      opt_int(g, "autodeploy_disk_gb", id, 0, 1LL << 20, 0, &disk, err))
    return NULL;
  char rule[64] = "";
  const char *ip = pick_ip(ipv4, ifaces, r, rule, sizeof rule);
  if (!ip)
    return refuse(err, id, "ipv4", "has no private address (no registry.private_ip rule "
                  "matched and no RFC 1918 address)"), NULL;
  json_t *labels = read_labels(g, id, err);
  if (!labels)
    return NULL;
  char key[300];
  snprintf(key, sizeof key, "%s:%s", x.profile, ip);
  json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O,s:o,s:{s:I,s:I},s:o}", "key", key, "minion",
                        id, "profile", x.profile, "private_ip", ip, "ip_rule", rule, "ipv4", ipv4,
                        "interfaces", ifaces ? json_incref(ifaces) : json_object(), "capacity",
                        "cpu", cpus, "mem_mb", mem, "labels", labels);
  if (!f)
    return ad__err(err, AD_ENOMEM, "registry", "no memory"), NULL;
  if (disk >= 0)
    json_object_set_new(json_object_get(f, "capacity"), "disk_gb", json_integer(disk));
  const char *names[] = {"provider", "region", "instance_id", "machine_id", "boot_id", "hostname"};
  const char *vals[] = {x.provider, x.region, x.instance, x.machine, x.boot, x.host};
  for (int i = 0; i < 6; i++)
    if (vals[i] && *vals[i])
      json_object_set_new(f, names[i], json_string(vals[i]));
  return f;
}
