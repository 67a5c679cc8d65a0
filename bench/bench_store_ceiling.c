/* bench/bench_store_ceiling.c - the store's own ceiling for job returns: a
 * bare libmongoc loop that bulk-inserts the same BSON documents the engine
 * stored, as the engine writes them (unordered bulk inserts, `--batch`
 * documents per bulk, the URI's default write concern, which is the
 * engine's too: store/returns.c sets none).
 *
 *   bench_store_ceiling --uri URI --db DB --coll COLL --file DOCS.bson [--batch 1000,100,20]
 *
 * DOCS.bson: the documents back to back (bench_returns.py reads them from
 * the engine's collection as raw BSON). All are loaded before the clock
 * starts; the clock runs from the first bulk to the last reply. Each batch
 * size in the list gets its own fresh collection COLL_b<size> (the same
 * _ids), because the engine's bulks are as large as what arrived during
 * the previous one (1 .. batch_size) and FerretDB's cost per document
 * depends on the bulk's size: the ceiling is the best of them. Prints one
 * JSON line: {"n", "runs": [{"batch", "seconds", "rps"}], "best_batch",
 * "rps", "errors"}. No threads, no decoding, no spool: what any client pays
 * FerretDB (or mongod) per return. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mongoc/mongoc.h>

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return argv[i + 1];
  return def;
}

/* Every document of `path` (copies), *n set; exits on a bad file. */
static bson_t **load_docs(const char *path, size_t *n)
{
  bson_error_t be;
  bson_reader_t *rd = bson_reader_new_from_file(path, &be);
  if (!rd) {
    fprintf(stderr, "bench_store_ceiling: %s: %s\n", path, be.message);
    exit(2);
  }
  size_t cap = 1024, k = 0;
  bson_t **docs = malloc(cap * sizeof *docs);
  const bson_t *d;
  bool eof = false;
  while (docs && (d = bson_reader_read(rd, &eof))) {
    if (k == cap)
      docs = realloc(docs, (cap *= 2) * sizeof *docs);
    if (docs)
      docs[k++] = bson_copy(d);
  }
  bson_reader_destroy(rd);
  if (!docs || !eof || k == 0) {
    fprintf(stderr, "bench_store_ceiling: %s: no documents, or a truncated one\n", path);
    exit(2);
  }
  *n = k;
  return docs;
}

int main(int argc, char **argv)
{
  const char *uri = opt(argc, argv, "--uri", NULL), *db = opt(argc, argv, "--db", NULL);
  const char *coll_name = opt(argc, argv, "--coll", "returns");
  const char *path = opt(argc, argv, "--file", NULL);
  const char *batches = opt(argc, argv, "--batch", "1000");
  if (!uri || !db || !path || atol(batches) < 1) {
    fprintf(stderr, "usage: bench_store_ceiling --uri URI --db DB --coll COLL --file DOCS.bson"
                    " [--batch 1000,100,20]\n");
    return 2;
  }
  mongoc_init();
  size_t n;
  bson_t **docs = load_docs(path, &n);
  bson_error_t be;
  mongoc_client_t *c = mongoc_client_new(uri);
  if (!c) {
    fprintf(stderr, "bench_store_ceiling: bad --uri\n");
    return 2;
  }
  bson_t ping = BSON_INITIALIZER;
  BSON_APPEND_INT32(&ping, "ping", 1);
  if (!mongoc_client_command_simple(c, db, &ping, NULL, NULL, &be)) {
    fprintf(stderr, "bench_store_ceiling: %s\n", be.message);
    return 1;
  }
  bson_destroy(&ping);
  long errors = 0, best_batch = 0;
  double best = 0;
  printf("{\"n\": %zu, \"runs\": [", n);
  for (const char *b = batches; *b;) {
    long batch = strtol(b, (char **)&b, 10);
    if (*b == ',')
      b++;
    if (batch < 1)
      break;
    char name[200];
    snprintf(name, sizeof name, "%s_b%ld", coll_name, batch);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, db, name);
    double t0 = now_s();
    for (size_t i = 0; i < n; i += (size_t)batch) {
      bson_t opts = BSON_INITIALIZER, reply;
      BSON_APPEND_BOOL(&opts, "ordered", false);
      mongoc_bulk_operation_t *bulk =
          mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
      for (size_t j = i; j < n && j < i + (size_t)batch; j++)
        mongoc_bulk_operation_insert_with_opts(bulk, docs[j], NULL, NULL);
      if (!mongoc_bulk_operation_execute(bulk, &reply, &be)) {
        fprintf(stderr, "bench_store_ceiling: %s\n", be.message);
        errors++;
      }
      bson_destroy(&reply);
      bson_destroy(&opts);
      mongoc_bulk_operation_destroy(bulk);
    }
    double dt = now_s() - t0, rps = (double)n / dt;
    printf("%s{\"batch\": %ld, \"seconds\": %.4f, \"rps\": %.1f}", best_batch ? ", " : "",
           batch, dt, rps);
    if (rps > best || !best_batch) {
      best = rps;
      best_batch = batch;
    }
    mongoc_collection_destroy(coll);
  }
  printf("], \"best_batch\": %ld, \"rps\": %.1f, \"errors\": %ld}\n", best_batch, best,
         errors);
  for (size_t i = 0; i < n; i++)
    bson_destroy(docs[i]);
  free(docs);
  mongoc_client_destroy(c);
  mongoc_cleanup();
  return errors ? 1 : 0;
}
