/* serve_private.h - what serve.c, api.c and dashboard.c share. */
#ifndef AD_SERVE_PRIVATE_H
#define AD_SERVE_PRIVATE_H

#include <microhttpd.h>
#include <stdatomic.h>

#include "serve/serve.h"

#define AD__SERVE_TASK_BUCKETS 11
extern const double ad__serve_task_le[AD__SERVE_TASK_BUCKETS];

struct ad__serve {
  ad__serve_env_t env;
  ad__serve_conf_t c;
  char **tokens; /* reader tokens, NULL-terminated */
  char *cert, *key;
  struct MHD_Daemon *d;
  unsigned port;
  atomic_ullong requests, unauthorized;
  atomic_ullong task_buckets[AD__SERVE_TASK_BUCKETS], task_sum_ms, task_count;
};

/* Queue `body` (taken; freed by libmicrohttpd) with `status`. */
int ad__serve_answer(struct MHD_Connection *c, unsigned status, const char *type, char *body,
                     size_t len);
/* Queue `doc` (taken) as JSON. */
int ad__serve_json(struct MHD_Connection *c, unsigned status, json_t *doc);
/* {"status": N, "reason": "..."} */
int ad__serve_error(struct MHD_Connection *c, unsigned status, const char *reason);

/* api.c: the query parameters, name -> string (a new object). */
json_t *ad__serve_args(struct MHD_Connection *c);
/* api.c: /api/v1/<path> (path after the prefix). */
int ad__serve_api(ad__serve_t *s, struct MHD_Connection *c, const char *path);
/* api.c: counts by state into `snap` (tasks, hosts, services, orders,
 * reserve, lease). 0, or -1 when the store did not answer. */
int ad__serve_counts(ad__serve_t *s, json_t *snap);
/* dashboard.c: the page (embedded asset). */
int ad__serve_dashboard(struct MHD_Connection *c);

#endif
