/* fuzz_events.c - libFuzzer target for the engine's event handlers: every
 * route of engine/routes.c, fed well-formed events with hostile data, in
 * process, against a real store (FerretDB: `make fuzz` starts one through
 * fuzz/with_ferretdb.sh and passes its URI in AD_FUZZ_MONGO_URI; without
 * it the target stops at once, saying so).
 *
 * The engine is built once by ad_engine_new from a configuration with the
 * registry, the fleet and the purchase loop on, and never run: no reader,
 * no timers, no leader (ad_engine_run starts those). Its master socket
 * directory is empty, so every fire (a task's next step, a kill) fails
 * cleanly. Returns are "off": the target stores each return itself
 * (ad__returns_doc, the batcher's document) before the handler runs, as the
 * other worker would have, so a task's return is judged at once instead of
 * after up to 5 s of waiting for it.
 *
 * The input is read as choices (events_gen.h, and build() below; zeros
 * choose the typical event): the event family (one per route: start, job
 * return with and without metadata.autodeploy_task, job new, intervene,
 * refresh, ping, presence, key, opened, beacon, order approve/reject/
 * placed), the ids in the tag and body (mostly the ones the target seeded: a
 * minion with an accepted key and cached grains, a running task, deployed
 * and opened services, orders awaiting approval and approved; else any
 * string: empty, up to 4 KiB, NUL, non-UTF-8, glob and path characters) and
 * a msgpack body map whose keys are the fields the handlers read and whose
 * values are of any type. A tag the reader would drop (a NUL, over 4096
 * bytes) is not handed on; one that matches no route reaches no handler,
 * as on the bus. Every log line is formatted (AD_FUZZ_LOG=1 prints them).
 * Signed events (interventions, openings, orders) are signed with the key
 * the target configured in some inputs, so the checks behind the signature
 * see arbitrary bodies, and forged (a wrong or missing signature, a minion's
 * id or cmd) in the others. Before each event the documents its family
 * touches are put back to their seeded state, so an input does the same
 * thing whenever it runs.
 *
 * Invariants (abort otherwise): no crash, leak or undefined behaviour; a
 * handler returns 0, 1 (refused) or a negative AD_E* code; a forged
 * control event is refused, counted (tasks.refused_unsigned,
 * purchase.refused_unsigned; an opening has no counter, its refusal is the
 * handler's answer), and does not move the state of the task, order or
 * service it names; a refused signed intervention or order decision moves
 * one of its refusal counters. */
#include <jansson.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bus/bus_private.h"
#include "bus/sign.h"
#include "engine/engine_private.h"
#include "purchase/purchase_private.h"
#include "store/docs.h"
#include "store/returns.h"
#include "wire/event_private.h"

#include "events_gen.h"

#define MINION "fz-m1"
#define TASK "tfz1"
#define JID "20261205010203040506_adfz01"
#define SVC_DEPLOYED "fz-1"
#define SVC_OPENED "fz-2"
#define ORDER_WAITING "fz-20261205"
#define ORDER_APPROVED "fz-20261206"
#define KEY "fuzz-master-key-0123456789abcdef"

static ad_engine_t *eng;
static char dir[512];

/* The ids the target seeds, and a few that name nothing. */
static const char *const MINIONS[] = {MINION, "fz-m2", NULL};
static const char *const JIDS[] = {JID, "20261205010203040506", "20261205010203040599_adzz", NULL};
static const char *const TASKS[] = {TASK, "tfz-none", NULL};
static const char *const SERVICES[] = {SVC_DEPLOYED, SVC_OPENED, "fz-none", NULL};
static const char *const ORDERS[] = {ORDER_WAITING, ORDER_APPROVED, "fz-none", NULL};

/* ---- values the handlers expect ------------------------------------------- */

/* A value a handler expects under `key`, with the seeded ids. */
static void pack_sensible(msgpack_packer *pk, in_t *in, const char *key, int depth)
{
  char s[512];
  if (!strcmp(key, "id") || !strcmp(key, "tgt")) {
    size_t n = id_of(in, MINIONS, s, sizeof s);
    pack_str(pk, s, n);
  } else if (!strcmp(key, "jid")) {
    size_t n = id_of(in, JIDS, s, sizeof s);
    pack_str(pk, s, n);
  } else if (!strcmp(key, "minions")) {
    unsigned k = pick(in, 3);
    msgpack_pack_array(pk, k);
    for (unsigned i = 0; i < k; i++) {
      size_t n = id_of(in, MINIONS, s, sizeof s);
      pack_str(pk, s, n);
    }
  } else if (!strcmp(key, "metadata")) {
    msgpack_pack_map(pk, 2);
    pack_str(pk, "autodeploy_task", 15);
    size_t n = id_of(in, TASKS, s, sizeof s);
    pack_str(pk, s, n);
    pack_str(pk, "step", 4);
    static const char *const STEPS[] = {"run", "kill", "0", "1", NULL};
    n = id_of(in, STEPS, s, sizeof s);
    pack_str(pk, s, n);
  } else if (!strcmp(key, "return")) { /* a state run: {id: {result, comment, ...}} */
    unsigned k = pick(in, 3);
    msgpack_pack_map(pk, k);
    for (unsigned i = 0; i < k; i++) {
      pack_str(pk, "file_|-x_|-/x_|-managed", 23);
      msgpack_pack_map(pk, 4);
      pack_str(pk, "result", 6);
      if (!(u8(in) & 1))
        msgpack_pack_true(pk);
      else
        pack_any(pk, in, depth + 1);
      pack_str(pk, "comment", 7);
      pack_any(pk, in, depth + 1);
      pack_str(pk, "__id__", 6);
      pack_any(pk, in, depth + 1);
      pack_str(pk, "duration", 8);
      pack_any(pk, in, depth + 1);
    }
  } else if (!strcmp(key, "1m") || !strcmp(key, "5m") || !strcmp(key, "15m") ||
             !strcmp(key, "memusage") || !strcmp(key, "diskusage") || !strcmp(key, "cpu") ||
             !strcmp(key, "mem_mb") || !strcmp(key, "retcode")) {
    if (u8(in) & 1)
      msgpack_pack_double(pk, (double)u8(in) / 2.0);
    else
      msgpack_pack_int(pk, (int)(int8_t)u8(in));
  } else if (!strcmp(key, "mount")) {
    pack_str(pk, "/", 1);
  } else if (!strcmp(key, "success")) {
    msgpack_pack_true(pk);
  } else if (!strcmp(key, "fun")) {
    static const char *const FUNS[] = {"state.apply", "state.sls", "test.ping", "saltutil.kill_job", NULL};
    size_t n = id_of(in, FUNS, s, sizeof s);
    pack_str(pk, s, n);
  } else if (!strcmp(key, "services")) { /* autodeploy_services: {id: {state, cpu, mem_mb}} */
    unsigned k = pick(in, 3);
    msgpack_pack_map(pk, k);
    for (unsigned i = 0; i < k; i++) {
      size_t n = id_of(in, SERVICES, s, sizeof s);
      pack_str(pk, s, n);
      msgpack_pack_map(pk, 3);
      pack_str(pk, "state", 5);
      if (!(u8(in) & 1))
        pack_str(pk, "up", 2);
      else
        pack_str(pk, "down", 4);
      pack_str(pk, "cpu", 3);
      pack_sensible(pk, in, (u8(in) & 3) != 3 ? "cpu" : "", depth + 1);
      pack_str(pk, "mem_mb", 6);
      pack_sensible(pk, in, (u8(in) & 3) != 3 ? "mem_mb" : "", depth + 1);
    }
  } else {
    pack_any(pk, in, depth);
  }
}


/* The event's data: the family's own fields (each most often there, with a
 * value of the kind the handler expects) and a few more of any kind. */
static void pack_body(msgpack_packer *pk, in_t *in, const char *const *want, int force_first)
{
  size_t nw = 0;
  while (want[nw])
    nw++;
  /* a set bit leaves a field out: input that runs out (zeros) is a
   * complete, typical event */
  unsigned mask = ~(u8(in) | u8(in) << 8), extra = pick(in, 4), n = 0;
  if (force_first)
    mask |= 1;
  for (size_t i = 0; i < nw; i++)
    n += (mask >> i & 1) || (mask & 0x8000);
  msgpack_pack_map(pk, n + extra);
  for (size_t i = 0; i < nw; i++) {
    if (!((mask >> i & 1) || (mask & 0x8000)))
      continue;
    pack_str(pk, want[i], strlen(want[i]));
    if (pick(in, 4) != 3)
      pack_sensible(pk, in, want[i], 0);
    else
      pack_any(pk, in, 0);
  }
  for (unsigned i = 0; i < extra; i++) {
    const char *f = FIELDS[pick(in, NFIELDS)];
    pack_str(pk, f, strlen(f));
    pack_any(pk, in, 0);
  }
}

/* ---- signed events ----------------------------------------------------------- */


/* The signed request's JSON text: the fields its handler reads, the id of
 * the tag most often, the tag's action (`action`, "" when it has none)
 * most often, values of the expected kind or of any kind; now and then
 * bytes that are not JSON at all. Caller frees. */
static char *request_text(in_t *in, const char *const *keys, const char *id, const char *action)
{
  char s[512];
  if (pick(in, 10) == 9) {
    size_t n = any_str(in, s, sizeof s);
    return strndup(s, n);
  }
  static const char *const ACTIONS[] = {"cancel", "pause", "resume", "retry", "approve",
                                        "reject", NULL};
  json_t *o = json_object();
  unsigned mask = u8(in);
  for (size_t i = 0; keys[i]; i++) {
    if (mask >> i & 1 && i)
      continue;
    json_t *v;
    if (pick(in, 4) == 3)
      v = json_any(in, 0);
    else if (i == 0) /* the id the tag names */
      v = pick(in, 4) != 3 ? json_string(id) : json_stringn(s, any_str(in, s, sizeof s));
    else if (!strcmp(keys[i], "action")) /* the tag's, or any */
      v = *action && !pick(in, 2) ? json_string(action) : json_stringn(s, id_of(in, ACTIONS, s, sizeof s));
    else if (!strcmp(keys[i], "at_ms"))
      v = json_integer((json_int_t)u64(in) >> pick(in, 64));
    else if (!strcmp(keys[i], "ok") || !strcmp(keys[i], "dry_run"))
      v = json_boolean(u8(in) & 1);
    else
      v = json_stringn(s, any_str(in, s, sizeof s));
    json_object_set_new(o, keys[i], v ? v : json_string("x"));
  }
  char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(o);
  return text;
}

/* {body, sig} signed as the master does (bus/sign.c), or forged: a wrong
 * signature, none, or a minion's id beside a right one. 1 when forged. */
static int pack_signed(msgpack_packer *pk, in_t *in, const char *tag, const char *text)
{
  unsigned how = pick(in, 6); /* 0..2 signed; 3 wrong; 4 unsigned; 5 from a minion */
  size_t tl = strlen(tag), bl = strlen(text);
  char *msg = malloc(tl + 1 + bl);
  if (!msg)
    abort();
  memcpy(msg, tag, tl);
  msg[tl] = '|';
  memcpy(msg + tl + 1, text, bl);
  char *sig = ad__sign(KEY, strlen(KEY), msg, tl + 1 + bl);
  free(msg);
  if (!sig)
    abort();
  if (how == 3)
    sig[u8(in) % strlen(sig)] ^= 1;
  msgpack_pack_map(pk, how == 4 ? 1 : how == 5 ? 3 : 2);
  pack_str(pk, "body", 4);
  pack_str(pk, text, bl);
  if (how != 4) {
    pack_str(pk, "sig", 3);
    pack_str(pk, sig, strlen(sig));
  }
  if (how == 5) {
    int id = u8(in) & 1;
    pack_str(pk, id ? "id" : "cmd", id ? 2 : 3);
    pack_sensible(pk, in, "id", 0);
  }
  free(sig);
  return how >= 3;
}

/* ---- the store: seeded documents, put back before each event ------------ */

static const char *const SEED_TASK =
    "{\"_id\":\"" TASK "\",\"rev\":0,\"state\":\"running\",\"target\":{\"tgt\":\"" MINION "\","
    "\"tgt_type\":\"glob\"},\"target_key\":\"\\\"" MINION "\\\"\",\"steps\":[{\"name\":\"s1\","
    "\"mods\":[\"fz.one\"],\"pillar\":{}},{\"name\":\"s2\",\"mods\":[\"fz.two\"],\"pillar\":{}}],"
    "\"pillar\":{},\"timeout\":1800,\"retry\":{\"max_attempts\":2,\"backoff_s\":0},"
    "\"created_by\":\"fuzz\",\"reason\":\"\",\"created_at\":\"2026-12-05T00:00:00.000Z\","
    "\"updated_at\":\"2026-12-05T00:00:00.000Z\",\"step\":0,\"attempt\":1,\"jid\":\"" JID "\","
    "\"deadline_ms\":4102444800000,\"retry_at_ms\":0,\"pause_requested\":false,"
    "\"minions\":[\"" MINION "\"],\"history\":[]}";
static const char *const SEED_SERVICES[] = {
    "{\"_id\":\"" SVC_DEPLOYED "\",\"rev\":0,\"platform\":\"fz\",\"server_no\":1,"
    "\"state\":\"deployed\",\"minion\":\"" MINION "\",\"host\":\"fz:10.0.0.1\",\"history\":[]}",
    "{\"_id\":\"" SVC_OPENED "\",\"rev\":0,\"platform\":\"fz\",\"server_no\":2,"
    "\"state\":\"opened\",\"minion\":\"" MINION "\",\"host\":\"fz:10.0.0.1\","
    "\"opened_at_ms\":1764900000000,\"history\":[]}",
    NULL};
#define ORDER(id, state)                                                                      \
  "{\"_id\":\"" id "\",\"rev\":0,\"profile\":\"fz\",\"flavour\":\"ecs.fz\",\"day\":\"20261205\"," \
  "\"count\":1,\"state\":\"" state "\",\"reason\":\"fuzz\",\"platforms\":[\"fz\"],\"plan\":{},"  \
  "\"created_at\":\"2026-12-05T00:00:00.000Z\",\"created_at_ms\":1764892800000,"               \
  "\"arrived\":[],\"attempts\":0,\"history\":[]}"
static const char *const SEED_ORDERS[] = {ORDER(ORDER_WAITING, "awaiting_approval"),
                                          ORDER(ORDER_APPROVED, "approved"), NULL};

static void store_failed(const char *what, const char *coll, const bson_error_t *be)
{
  fprintf(stderr, "fuzz_events: %s %s: %s\n", what, coll, be->message);
  abort();
}

static void clear(const char *coll)
{
  mongoc_client_t *c = ad__store_pop(eng->store);
  mongoc_collection_t *mc = ad__store_coll(eng->store, c, coll);
  bson_t q = BSON_INITIALIZER;
  bson_error_t be;
  if (!mongoc_collection_delete_many(mc, &q, NULL, NULL, &be))
    store_failed("clearing", coll, &be);
  mongoc_collection_destroy(mc);
  ad__store_push(eng->store, c);
}

/* The seeded documents of `coll` put back as they were: two round trips
 * however many (FerretDB's time per operation is most of an input's). */
static void reset(const char *coll, const char *const *docs)
{
  bson_t *d[4], q = BSON_INITIALIZER, in, ids;
  size_t n = 0;
  bson_error_t be;
  BSON_APPEND_DOCUMENT_BEGIN(&q, "_id", &in);
  BSON_APPEND_ARRAY_BEGIN(&in, "$in", &ids);
  for (; docs[n]; n++) {
    bson_iter_t it;
    char k[16];
    if (n == 4 || !(d[n] = bson_new_from_json((const uint8_t *)docs[n], -1, &be)))
      store_failed("seed document of", coll, &be);
    snprintf(k, sizeof k, "%zu", n);
    if (!bson_iter_init_find(&it, d[n], "_id") || !bson_append_iter(&ids, k, -1, &it))
      abort();
  }
  bson_append_array_end(&in, &ids);
  bson_append_document_end(&q, &in);
  mongoc_client_t *c = ad__store_pop(eng->store);
  mongoc_collection_t *mc = ad__store_coll(eng->store, c, coll);
  if (!mongoc_collection_delete_many(mc, &q, NULL, NULL, &be))
    store_failed("resetting", coll, &be);
  if (!mongoc_collection_insert_many(mc, (const bson_t **)d, n, NULL, NULL, &be))
    store_failed("seeding", coll, &be);
  mongoc_collection_destroy(mc);
  ad__store_push(eng->store, c);
  bson_destroy(&q);
  for (size_t i = 0; i < n; i++)
    bson_destroy(d[i]);
}

/* The state of a seeded document, for the forged-event check. */
static void state_of(const char *coll, const char *id, char *out, size_t size)
{
  json_t *d = ad__docs_get(eng->store, coll, id, coll, NULL);
  snprintf(out, size, "%s", d ? ad__jstr(d, "state") : "(none)");
  json_decref(d);
}

/* The job return as returns.c would have stored it on another worker. 0,
 * or -1 when the store refused its document (FerretDB's limits: duplicate
 * keys once non-string keys are text), which a task then waits 5 s for. */
static int store_return(ad_event_t *ev)
{
  ad_error_t err = {0};
  bson_t *doc = ad__returns_doc(ev, 0, &err);
  int rc = 0;
  if (!doc)
    return 0;
  mongoc_client_t *c = ad__store_pop(eng->store);
  mongoc_collection_t *mc = ad__store_coll(eng->store, c, "returns");
  bson_error_t be;
  if (!mongoc_collection_insert_one(mc, doc, NULL, NULL, &be) &&
      !strstr(be.message, "duplicate key error")) { /* stored already: as the batcher */
    rc = -1;
    if (getenv("AD_FUZZ_LOG")) {
      char *j = bson_as_relaxed_extended_json(doc, NULL);
      fprintf(stderr, "fuzz_events: return not stored: %s: %.2000s\n", be.message, j ? j : "?");
      bson_free(j);
    }
  }
  mongoc_collection_destroy(mc);
  ad__store_push(eng->store, c);
  bson_destroy(doc);
  return rc;
}

/* ---- set up once --------------------------------------------------------------- */

static void write_file(const char *path, const void *p, size_t n)
{
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
    fprintf(stderr, "fuzz_events: cannot write %s\n", path);
    abort();
  }
}

/* The master's files the registry reads: an accepted key, cached grains. */
static void master_files(void)
{
  char p[1024];
  const char *sub[] = {"sock", "spool", "pki", "pki/minions", "cache", "cache/minions",
                       "cache/minions/" MINION, NULL};
  for (int i = 0; sub[i]; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, sub[i]);
    if (mkdir(p, 0700)) {
      fprintf(stderr, "fuzz_events: mkdir %s failed\n", p);
      abort();
    }
  }
  snprintf(p, sizeof p, "%s/key", dir);
  write_file(p, KEY, strlen(KEY));
  snprintf(p, sizeof p, "%s/pki/minions/" MINION, dir);
  const char *pem = "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAK\n"
                    "-----END PUBLIC KEY-----\n";
  write_file(p, pem, strlen(pem));
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1);
  pack_str(&pk, "grains", 6);
  msgpack_pack_map(&pk, 5);
  pack_str(&pk, "id", 2);
  pack_str(&pk, MINION, strlen(MINION));
  pack_str(&pk, "autodeploy_profile", 18);
  pack_str(&pk, "fz", 2);
  pack_str(&pk, "ipv4", 4);
  msgpack_pack_array(&pk, 2);
  pack_str(&pk, "10.0.0.1", 8);
  pack_str(&pk, "127.0.0.1", 9);
  pack_str(&pk, "num_cpus", 8);
  msgpack_pack_int(&pk, 4);
  pack_str(&pk, "mem_total", 9);
  msgpack_pack_int(&pk, 8192);
  snprintf(p, sizeof p, "%s/cache/minions/" MINION "/data.p", dir);
  write_file(p, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

/* Every line formatted (DEBUG), printed only with AD_FUZZ_LOG set (to see
 * how far an input gets): a format bug shows up either way. */
static void fuzz_log(ad_log_level_t level, const char *domain, const char *msg, void *user)
{
  if (user)
    fprintf(stderr, "[%d %s] %s\n", (int)level, domain, msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  const char *uri = getenv("AD_FUZZ_MONGO_URI");
  if (!uri || !*uri) {
    fprintf(stderr, "fuzz_events: AD_FUZZ_MONGO_URI is not set: the event handlers need a "
                    "store. Run it through libautodeploy/fuzz/with_ferretdb.sh (make fuzz "
                    "does), or point it at a MongoDB whose database adfuzz may be wiped.\n");
    exit(2);
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/fuzz-events-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir))
    abort();
  master_files();
  ad_log_set_handler(fuzz_log, getenv("AD_FUZZ_LOG") ? "" : NULL, AD_LOG_DEBUG);
  json_t *conf = json_pack(
      "{s:s,s:s,s:s+,s:i,s:s,s:s+,s:s+,s:s,s:s+,s:s+,s:i,s:i,"
      "s:{s:[s],s:s,s:i,s:b},s:{s:b},"
      "s:{s:s,s:s,s:[s],s:{s:{s:s,s:i,s:i,s:i}},s:{s:b}}}",
      "mongo_uri", uri, "mongo_db", "adfuzz", "sock_dir", dir, "/sock", "workers", 0,
      "returns", "off", "spool_dir", dir, "/spool", "master_key_path", dir, "/key",
      "job_cache_dir", "", "pki_dir", dir, "/pki", "cachedir", dir, "/cache",
      "stats_interval", 0, "status_interval", 0,
      "registry", "profiles", "fz*", "init_state", "", "start_batch", 0, "refresh_missing", 0,
      "placement", "enabled", 0,
      "purchase", "time", "manual", "timezone", "UTC", "preference", "fz", "profiles", "fz",
      "flavour", "ecs.fz", "cpu", 4, "mem_mb", 8192, "disk_gb", 100, "approval", "required", 1);
  char *text = conf ? json_dumps(conf, JSON_COMPACT) : NULL;
  json_decref(conf);
  ad_error_t err = {0};
  eng = text ? ad_engine_new(text, &err) : NULL;
  free(text);
  if (!eng || !eng->registry || !eng->fleet || !eng->purchase) {
    fprintf(stderr, "fuzz_events: engine: %s\n", err.message);
    exit(2);
  }
  if (ad__store_ping(eng->store, &err)) {
    fprintf(stderr, "fuzz_events: store %s: %s\n", uri, err.message);
    exit(2);
  }
  static const char *const COLLS[] = {"tasks", "returns", "hosts", "host_refusals", "services",
                                      "orders", "host_metrics", "service_metrics", NULL};
  for (int i = 0; COLLS[i]; i++)
    clear(COLLS[i]);
  return 0;
}

/* ---- one input: one event ----------------------------------------------------- */

enum { F_START, F_RET, F_RET_TASK, F_NEW, F_INTERVENE, F_REFRESH, F_PING, F_PRESENCE, F_KEY,
       F_OPENED, F_BEACON, F_APPROVE, F_REJECT, F_PLACED, F_COUNT };

typedef struct {
  char tag[2 * AD__TAG_MAX + 64]; /* longer than a reader passes */
  char id[AD__TAG_MAX + 64]; /* the tag's id: minion, task, service or order */
  int is_signed, forged;
  const char *coll;  /* the document a forged event must not move */
} event_t;

static const char *const START_KEYS[] = {"id", "cmd", "data", "_stamp", "pretag", NULL};
static const char *const RET_KEYS[] = {"id", "jid", "fun", "return", "retcode", "success",
                                       "fun_args", "_stamp", "out", NULL};
static const char *const RET_TASK_KEYS[] = {"metadata", "id", "jid", "fun", "return", "retcode",
                                            "success", NULL};
static const char *const NEW_KEYS[] = {"jid", "minions", "tgt", "tgt_type", "fun", "arg",
                                       "user", "_stamp", NULL};
static const char *const ID_KEYS[] = {"id", "_stamp", NULL};
static const char *const PRESENCE_KEYS[] = {"present", "new", "lost", "_stamp", NULL};
static const char *const KEY_KEYS[] = {"id", "act", "result", "_stamp", NULL};
static const char *const BEACON_KEYS[] = {"id", "1m", "5m", "15m", "memusage", "diskusage",
                                          "mount", "services", "_stamp", NULL};
static const char *const INTERVENE_REQ[] = {"task_id", "action", "reason", "actor", NULL};
static const char *const OPENED_REQ[] = {"service", "at_ms", "actor", NULL};
static const char *const ORDER_REQ[] = {"order_id", "action", "reason", "actor", NULL};
static const char *const PLACED_REQ[] = {"id", "ok", "cloud_order_id", "error", "dry_run", NULL};

/* Put back what the family touches, and write its tag and data. */
static void build(in_t *in, int fam, event_t *e, msgpack_packer *pk)
{
  char a[AD__TAG_MAX + 64], b[AD__TAG_MAX + 64];
  const char *const *req = NULL;
  const char *action = "";
  switch (fam) {
  case F_START:
  case F_REFRESH:
  case F_KEY:
  case F_PRESENCE:
  case F_PING:
    clear("hosts");
    id_of(in, MINIONS, e->id, sizeof e->id);
    if (fam == F_START)
      snprintf(e->tag, sizeof e->tag, "salt/minion/%s/start", e->id);
    else if (fam == F_REFRESH)
      snprintf(e->tag, sizeof e->tag, "minion/refresh/%s", e->id);
    else if (fam == F_KEY)
      snprintf(e->tag, sizeof e->tag, "salt/key");
    else if (fam == F_PRESENCE)
      snprintf(e->tag, sizeof e->tag, "salt/presence/%s", u8(in) & 1 ? "present" : "change");
    else
      snprintf(e->tag, sizeof e->tag, "minion_ping");
    pack_body(pk, in, fam == F_START ? START_KEYS : fam == F_KEY ? KEY_KEYS
                      : fam == F_PRESENCE ? PRESENCE_KEYS : ID_KEYS, 0);
    return;
  case F_RET:
  case F_RET_TASK:
  case F_NEW:
    reset("tasks", (const char *const[]){SEED_TASK, NULL});
    clear("returns");
    id_of(in, JIDS, a, sizeof a);
    if (fam == F_NEW) {
      snprintf(e->tag, sizeof e->tag, "salt/job/%s/new", a);
      pack_body(pk, in, NEW_KEYS, 0);
    } else {
      id_of(in, MINIONS, b, sizeof b);
      snprintf(e->tag, sizeof e->tag, "salt/job/%s/ret/%s", a, b);
      pack_body(pk, in, fam == F_RET ? RET_KEYS : RET_TASK_KEYS, fam == F_RET_TASK);
    }
    return;
  case F_BEACON: {
    static const char *const BEACONS[] = {"load", "memusage", "diskusage", "autodeploy_services",
                                          NULL};
    reset("services", SEED_SERVICES);
    clear("host_metrics");
    clear("service_metrics");
    id_of(in, MINIONS, a, sizeof a);
    id_of(in, BEACONS, b, sizeof b);
    snprintf(e->tag, sizeof e->tag, "salt/beacon/%s/%s/", a, b);
    pack_body(pk, in, BEACON_KEYS, 0);
    return;
  }
  case F_INTERVENE:
    reset("tasks", (const char *const[]){SEED_TASK, NULL});
    id_of(in, TASKS, e->id, sizeof e->id);
    snprintf(e->tag, sizeof e->tag, "autodeploy/intervene/%s", e->id);
    req = INTERVENE_REQ;
    e->coll = "tasks";
    break;
  case F_OPENED:
    reset("services", SEED_SERVICES);
    id_of(in, SERVICES, e->id, sizeof e->id);
    snprintf(e->tag, sizeof e->tag, "autodeploy/service/%s/opened", e->id);
    req = OPENED_REQ;
    e->coll = "services";
    break;
  default: /* the orders */
    reset("orders", SEED_ORDERS);
    id_of(in, ORDERS, e->id, sizeof e->id);
    action = fam == F_APPROVE ? "approve" : fam == F_REJECT ? "reject" : "placed";
    snprintf(e->tag, sizeof e->tag, "autodeploy/order/%s/%s", e->id, action);
    req = fam == F_PLACED ? PLACED_REQ : ORDER_REQ;
    e->coll = "orders";
    break;
  }
  char *text = request_text(in, req, e->id, action);
  if (!text)
    abort();
  e->is_signed = 1;
  e->forged = pack_signed(pk, in, e->tag, text);
  free(text);
}

typedef struct {
  uint64_t unsigned_refused, other_refused;
} refusals_t;

static refusals_t refusals(int fam)
{
  refusals_t r = {0};
  if (fam == F_INTERVENE) {
    r.unsigned_refused = __atomic_load_n(&eng->task_stats.refused_unsigned, __ATOMIC_RELAXED);
    r.other_refused = __atomic_load_n(&eng->task_stats.refused_interventions, __ATOMIC_RELAXED);
  } else if (fam == F_APPROVE || fam == F_REJECT || fam == F_PLACED) {
    r.unsigned_refused = __atomic_load_n(&eng->purchase->stats.refused_unsigned, __ATOMIC_RELAXED);
    r.other_refused = __atomic_load_n(&eng->purchase->stats.refused_decisions, __ATOMIC_RELAXED);
  }
  return r;
}

static void fail(const char *why, const event_t *e, int rc)
{
  fprintf(stderr, "fuzz_events: %s (tag %.200s, rc %d)\n", why, e->tag, rc);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  in_t in = {data, size};
  int fam = (int)pick(&in, F_COUNT);
  static event_t e;
  memset(&e, 0, sizeof e);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  build(&in, fam, &e, &pk);
  size_t tag_len = strlen(e.tag);
  /* the reader's gate (bus/reader.c): no NUL (strlen stops there), at
   * most AD__TAG_MAX bytes; an id with a NUL gives a shorter tag */
  uint64_t routes = tag_len && tag_len <= AD__TAG_MAX
                        ? ad__routes_match(&eng->bus->routes, e.tag, tag_len) : 0;
  char before[64] = "", after[64] = "";
  if (e.forged && e.coll)
    state_of(e.coll, e.id, before, sizeof before);
  refusals_t r0 = refusals(fam);
  msgpack_zone zone;
  msgpack_zone_init(&zone, 8192);
  int refused = 0;
  for (int i = 0; i < eng->bus->routes.n; i++) {
    if (!(routes >> i & 1))
      continue;
    ad_event_t ev;
    ad__event_view(&ev, e.tag, tag_len, sb.data, sb.size, &zone);
    if (getenv("AD_FUZZ_LOG")) { /* triage: the event as the handler sees it */
      ad_error_t jerr = {0};
      char *j = ad_event_to_json_text(&ev, 0, &jerr);
      fprintf(stderr, "fuzz_events: %s%s%s\n", j ? j : e.tag, j ? "" : ": ", j ? "" : jerr.message);
      free(j);
    }
    /* a task's return whose document the store refused would wait 5 s for
     * it (tasks.c, by design): not handed on, to keep each input short */
    if ((fam == F_RET || fam == F_RET_TASK) && store_return(&ev) &&
        ad_event_find(&ev, "metadata:autodeploy_task")) {
      ad__event_view_done(&ev);
      continue;
    }
    int rc = eng->bus->routes.r[i].fn(&ev, eng->bus->routes.r[i].user);
    ad__event_view_done(&ev);
    if (rc != 0 && rc != 1 && (rc > 0 || rc < AD_ESTATE))
      fail("a handler returned neither 0, 1 nor an AD_E* code", &e, rc);
    refused |= rc != 0;
  }
  msgpack_zone_destroy(&zone);
  msgpack_sbuffer_destroy(&sb);
  refusals_t r1 = refusals(fam);
  int routed = routes != 0;
  if (e.forged && routed) {
    if (!refused)
      fail("a forged control event was not refused", &e, 0);
    if (fam != F_OPENED && r1.unsigned_refused == r0.unsigned_refused)
      fail("a forged control event was refused but not counted", &e, 1);
    state_of(e.coll, e.id, after, sizeof after);
    if (strcmp(before, after))
      fail("a forged control event moved a document", &e, 1);
  }
  if (refused && fam != F_OPENED && e.is_signed && r1.unsigned_refused == r0.unsigned_refused &&
      r1.other_refused == r0.other_refused)
    fail("a signed event was refused and no refusal counter moved", &e, 1);
  return 0;
}
