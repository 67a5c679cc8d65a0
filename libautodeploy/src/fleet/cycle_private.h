/* cycle_private.h - shared by the cycle's files: cycle.c (the run, and
 * the reserve, create and place steps) and cycle_deploy.c (the deploy
 * step). */
#ifndef AD_FLEET_CYCLE_PRIVATE_H
#define AD_FLEET_CYCLE_PRIVATE_H

#include "decide/placement.h"
#include "decide/reserve.h"
#include "fleet/cycle.h"

/* The ready hosts of one cycle, shared by its platforms. */
typedef struct {
  json_t *docs;       /* ready hosts */
  ad__host_t *h;
  size_t n;
  char *load_error;   /* the load history could not be read */
} ad__cycle_hosts_t;

/* One platform's cycle: what its steps share. */
typedef struct {
  ad__fleet_t *f;             /* the configuration */
  const ad__cycle_store_t *st;
  void *u;
  ad__cycle_hosts_t *hs;      /* shared by the platforms of one cycle */
  const json_t *plat;
  const char *code;
  int64_t now;
  int dry_run;
  json_t *rep;                /* the platform's report, filled by the steps */
  ad__reserve_t rs;           /* reserve: the size */
  ad__res_t fp;               /* reserve: this cycle's footprint */
  json_t *fp_sources;         /* reserve: where each dimension of fp came from */
  int64_t supply;             /* create */
} ad__plat_cycle_t;

/* rep.error = msg (taken). -1, so a step can `return
 * ad__cycle_report_error(...)`. */
static inline int ad__cycle_report_error(ad__plat_cycle_t *pc, json_t *msg)
{
  json_object_set_new(pc->rep, "error", msg);
  return -1;
}

/* deploy (cycle_deploy.c): the service placed by decision `d` (`dj`, its
 * JSON) on host `hdoc` moves to deploying, and its deploy task starts. */
void ad__cycle_step_deploy(ad__plat_cycle_t *pc, const json_t *svc, const json_t *hdoc,
                           const ad__decision_t *d, const json_t *dj);

#endif
