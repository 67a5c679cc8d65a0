/* test_registry.c - the pure parts of host registration: grains -> facts
 * (hostinfo.c) and the master's own files (saltfiles.c). The decisions
 * against MongoDB and real minions are in tests/test_registry.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "registry/hostinfo.h"
#include "registry/saltfiles.h"

static ad__host_rules_t rules(const char *pip, const char *profiles)
{
  ad__host_rules_t r;
  json_t *p = pip ? json_loads(pip, JSON_DECODE_ANY, NULL) : NULL;
  json_t *pr = json_loads(profiles ? profiles : "[\"aliyun:*\"]", 0, NULL);
  ad_error_t err;
  if (ad__host_rules_load(&r, p, pr, &err))
    fprintf(stderr, "rules: %s\n", err.message);
  json_decref(p);
  json_decref(pr);
  return r;
}

static json_t *grains(const char *extra)
{
  json_t *g = json_pack(
      "{s:s,s:s,s:[s,s,s],s:{s:[s],s:[s],s:[s]},s:i,s:i,s:s,s:s,s:s,s:i}", "id", "m1",
      "autodeploy_profile", "aliyun:cn-hangzhou:game-4c8g", "ipv4", "127.0.0.1", "192.0.2.9",
      "10.1.2.3", "interfaces_placeholder", "lo", "127.0.0.1", "eth0", "10.1.2.3", "eth1",
      "192.0.2.9", "num_cpus", 4, "mem_total", 7680, "os", "Debian", "machine_id",
      "3d1219c7c4c5404aaa1f6d2a48adfda4", "autodeploy_boot_id",
      "0f8f7f3e-0d9c-4a57-8a0b-6a2bd3c1e0aa", "autodeploy_disk_gb", 40);
  json_object_set(g, "ip4_interfaces", json_object_get(g, "interfaces_placeholder"));
  json_object_del(g, "interfaces_placeholder");
  if (extra) {
    json_t *e = json_loads(extra, 0, NULL);
    json_object_update(g, e);
    json_decref(e);
  }
  return g;
}

static const char *refusal(const char *extra, const char *pip)
{
  static ad_error_t err;
  ad__host_rules_t r = rules(pip, NULL);
  json_t *g = grains(extra);
  json_t *f = ad__host_facts(g, "m1", &r, &err);
  json_decref(g);
  ad__host_rules_free(&r);
  if (f) {
    json_decref(f);
    return "(accepted)";
  }
  return err.message;
}

TEST(facts_of_a_good_host)
{
  ad__host_rules_t r = rules(NULL, NULL);
  json_t *g = grains(NULL);
  ad_error_t err;
  json_t *f = ad__host_facts(g, "m1", &r, &err);
  ASSERT(f != NULL);
  ASSERT_STR(json_string_value(json_object_get(f, "key")), "aliyun:cn-hangzhou:game-4c8g:10.1.2.3");
  ASSERT_STR(json_string_value(json_object_get(f, "ip_rule")), "first RFC 1918 address");
  ASSERT_STR(json_string_value(json_object_get(f, "provider")), "aliyun");
  ASSERT_STR(json_string_value(json_object_get(f, "region")), "cn-hangzhou");
  json_t *cap = json_object_get(f, "capacity");
  ASSERT_EQ(json_integer_value(json_object_get(cap, "cpu")), 4);
  ASSERT_EQ(json_integer_value(json_object_get(cap, "mem_mb")), 7680);
  ASSERT_EQ(json_integer_value(json_object_get(cap, "disk_gb")), 40);
  ASSERT_STR(json_string_value(json_object_get(json_object_get(f, "labels"), "os")), "Debian");
  json_decref(f);
  json_decref(g);
  ad__host_rules_free(&r);
}

TEST(private_ip_rules_in_order)
{
  ad_error_t err;
  const char *cases[][2] = {
      {"\"eth1\"", "192.0.2.9"},                      /* interface */
      {"[\"192.0.2.0/24\"]", "192.0.2.9"},            /* CIDR */
      {"[\"172.16.0.0/12\", \"eth1\"]", "192.0.2.9"}, /* first rule misses, second hits */
      {"[\"172.16.0.0/12\"]", "10.1.2.3"},            /* no rule hits: first RFC 1918 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ad__host_rules_t r = rules(cases[i][0], NULL);
    json_t *g = grains(NULL);
    json_t *f = ad__host_facts(g, "m1", &r, &err);
    ASSERT(f != NULL);
    ASSERT_STR(json_string_value(json_object_get(f, "private_ip")), cases[i][1]);
    json_decref(f);
    json_decref(g);
    ad__host_rules_free(&r);
  }
  ad__host_rules_t r;
  json_t *bad = json_loads("[\"eth0\", \"10.0.0.0/33\"]", 0, NULL);
  ASSERT_EQ(ad__host_rules_load(&r, bad, NULL, &err), AD_ECONFIG);
  ASSERT(strstr(err.message, "private_ip[1]") && strstr(err.message, "10.0.0.0/33"));
  json_decref(bad);
}

TEST(odd_grains_are_refused_by_name)
{
  ASSERT(strstr(refusal("{\"ipv4\": [\"127.0.0.1\", \"192.0.2.9\"]}", NULL), "no private address"));
  ASSERT(strstr(refusal("{\"autodeploy_profile\": \"tencent:x\"}", NULL), "not in registry.profiles"));
  ASSERT(strstr(refusal("{\"autodeploy_profile\": null}", NULL), "autodeploy_profile is missing"));
  ASSERT(strstr(refusal("{\"autodeploy_profile\": \"aliyun:a b\"}", NULL), "characters not allowed"));
  ASSERT(strstr(refusal("{\"id\": \"m2\"}", NULL), "names another minion"));
  ASSERT(strstr(refusal("{\"num_cpus\": \"4\"}", NULL), "num_cpus must be an integer"));
  ASSERT(strstr(refusal("{\"num_cpus\": 0}", NULL), "num_cpus 0 is out of range"));
  ASSERT(strstr(refusal("{\"mem_total\": null}", NULL), "mem_total is missing"));
  ASSERT(strstr(refusal("{\"ipv4\": [\"10.0.0.1\", \"10.0.0.256\"]}", NULL), "ipv4 [1] is not an IPv4"));
  ASSERT(strstr(refusal("{\"ipv4\": \"10.0.0.1\"}", NULL), "must be a list"));
  ASSERT(strstr(refusal("{\"machine_id\": \"xyz\"}", NULL), "machine_id"));
  ASSERT(strstr(refusal("{\"os\": \"Deb\\u0001ian\"}", NULL), "grain os has characters not allowed"));
  ASSERT(strstr(refusal("{\"ip4_interfaces\": {\"eth0\": [\"x\"]}}", NULL), "ip4_interfaces.eth0"));
  char big[8000];
  strcpy(big, "{\"ipv4\": [");
  for (int i = 0; i < 300; i++)
    strcat(big, i ? ",\"10.0.0.1\"" : "\"10.0.0.1\"");
  strcat(big, "]}");
  ASSERT(strstr(refusal(big, NULL), "at most 256"));
  char longname[400];
  snprintf(longname, sizeof longname, "{\"autodeploy_profile\": \"aliyun:%0300d\"}", 1);
  ASSERT(strstr(refusal(longname, NULL), "too long"));
}

TEST(minion_ids)
{
  ASSERT(ad__salt_valid_id("m1", 2));
  ASSERT(ad__salt_valid_id("game-01.example.com", 19));
  ASSERT(!ad__salt_valid_id("..", 2));
  ASSERT(!ad__salt_valid_id("a/b", 3));
  ASSERT(!ad__salt_valid_id("a b", 3));
  ASSERT(!ad__salt_valid_id("", 0));
  char longid[200];
  memset(longid, 'a', 129);
  ASSERT(!ad__salt_valid_id(longid, 129));
}

static void put(const char *path, const void *data, size_t n)
{
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, n, f);
  fclose(f);
}

static size_t unhex(const char *h, unsigned char *out)
{
  size_t n = 0;
  for (; h[0] && h[1]; h += 2)
    sscanf(h, "%2hhx", &out[n++]);
  return n;
}

TEST(master_files)
{
  char dir[] = "/tmp/adregXXXXXX";
  ASSERT(mkdtemp(dir));
  char p[512];
  snprintf(p, sizeof p, "%s/pki", dir);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/pki/minions", dir);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/pki/minions/m1", dir);
  const char pem[] = "-----BEGIN PUBLIC KEY-----\nAAAABBBB\nCCCCDDDD\n\n-----END PUBLIC KEY-----\n";
  put(p, pem, strlen(pem));
  char fp[200], pki[512];
  ad_error_t err;
  snprintf(pki, sizeof pki, "%s/pki", dir);
  ASSERT_EQ(ad__salt_key_accepted(pki, "m1", "sha256", fp, sizeof fp, &err), 1);
  /* salt.utils.crypt.pem_finger of the same file */
  ASSERT_STR(fp, "09:df:eb:91:ff:a7:1a:55:5d:98:75:c6:ce:e3:78:17:20:10:ec:13:7f:7f:4f:b7:a2:d3:ba:e8:82:88:a4:94");
  ASSERT_EQ(ad__salt_key_accepted(pki, "m2", "sha256", fp, sizeof fp, &err), 0);
  ASSERT_EQ(ad__salt_key_accepted(pki, "../x", "sha256", fp, sizeof fp, &err), 0);

  /* data cache: 3006 layout, then a newer 3008 entry wins */
  char cache[512];
  snprintf(cache, sizeof cache, "%s/cache", dir);
  mkdir(cache, 0700);
  int64_t stamp;
  json_t *g = ad__salt_cached_grains(cache, "m1", &stamp, &err);
  ASSERT(!g && err.code == AD_ENOTFOUND);
  unsigned char mp[64];
  snprintf(p, sizeof p, "%s/minions", cache);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/minions/m1", cache);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/minions/m1/data.p", cache);
  put(p, mp, unhex("81a6677261696e7382a26964a26d31a86e756d5f6370757304", mp));
  g = ad__salt_cached_grains(cache, "m1", &stamp, &err);
  ASSERT(g && json_integer_value(json_object_get(g, "num_cpus")) == 4);
  json_decref(g);
  sleep(1);
  snprintf(p, sizeof p, "%s/grains", cache);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/grains/m1.p", cache);
  put(p, mp, unhex("82a26964a26d31a86e756d5f6370757308", mp));
  int64_t stamp2;
  g = ad__salt_cached_grains(cache, "m1", &stamp2, &err);
  ASSERT(g && json_integer_value(json_object_get(g, "num_cpus")) == 8 && stamp2 != stamp);
  json_decref(g);
  put(p, "\xc1garbage", 8); /* not msgpack: the readable (older) entry is used */
  sleep(1);
  put(p, "\xc1garbage", 8);
  g = ad__salt_cached_grains(cache, "m1", &stamp2, &err);
  ASSERT(g != NULL);
  ASSERT_EQ(json_integer_value(json_object_get(g, "num_cpus")), 4);
  json_decref(g);

  /* /proc/net/tcp: established (01) connections to port 4505 (0x1199) only */
  snprintf(p, sizeof p, "%s/tcp", dir);
  const char tcp[] =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 0100007F:1199 0B00A80A:D431 01 00000000:00000000 00:00000000 00000000     0        0 1\n"
      "   1: 00000000:1199 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2\n"
      "   2: 0100007F:119A 0C00A80A:D432 01 00000000:00000000 00:00000000 00000000     0        0 3\n"
      "   3: 0100007F:1199 0B00A80A:D433 01 00000000:00000000 00:00000000 00000000     0        0 4\n";
  put(p, tcp, strlen(tcp));
  snprintf(p, sizeof p, "%s/tcp6", dir);
  const char tcp6[] =
      "  sl  local_address rem_address st\n"
      "   0: 0000000000000000FFFF00000100007F:1199 0000000000000000FFFF00000D00A80A:D434 01 0\n";
  put(p, tcp6, strlen(tcp6));
  uint32_t *ips;
  size_t n;
  ASSERT_EQ(ad__salt_connected_ips(dir, 4505, &ips, &n, &err), 0);
  ASSERT_EQ(n, 2); /* 10.168.0.11 (twice) and 10.168.0.13 */
  uint32_t a, b;
  ASSERT_EQ(ad__ipv4_parse("10.168.0.11", &a), 0);
  ASSERT_EQ(ad__ipv4_parse("10.168.0.13", &b), 0);
  a = htonl(a);
  b = htonl(b);
  ASSERT((ips[0] == a && ips[1] == b) || (ips[0] == b && ips[1] == a));
  free(ips);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ASSERT_EQ(system(cmd), 0);
}

int main(void)
{
  h_case cases[] = {CASE(facts_of_a_good_host), CASE(private_ip_rules_in_order),
                    CASE(odd_grains_are_refused_by_name), CASE(minion_ids), CASE(master_files)};
  return h_run(__FILE__, cases, sizeof cases / sizeof cases[0]);
}
