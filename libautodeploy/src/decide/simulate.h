/* simulate.h - replay a history of openings against a fleet, cycle by
 * cycle, with the reserve and placement rules (issue 5). The library does
 * the math; this drives time. Used by autodeploy-simulate and its tests.
 *
 * Input (JSON object; every key is checked, unknown keys are errors):
 *   platforms: [{code, footprint: {cpu, mem}, policy: {reserve policy keys,
 *                see reserve.h}, profiles: [..], regions: [..], headroom}]
 *   hosts:     [{key, cpu, mem, profile, region, load_cpu, load_mem,
 *                placeable}]
 *   openings:  [{platform, at: ISO-8601 text or epoch seconds}]
 *   options:   {cycle_minutes 10, deploy_minutes 30, sample_minutes 60,
 *               start, end (times, defaults: a day before the first
 *               opening; the last opening plus a deploy and a cycle),
 *               headroom 0.8, host_lead_hours 72, buy: false | true |
 *               {cpu, mem, profile, region}}
 * Output: see docs/placement.md ("Simulator"). */
#ifndef AD_SIMULATE_H
#define AD_SIMULATE_H

#include <jansson.h>
#include <stdint.h>

#include "autodeploy/common.h"

/* Run the simulation. Returns a new report object (caller decrefs), or
 * NULL + *err (AD_ECONFIG naming the field and index, e.g.
 * "openings[17].at: cannot parse '2024-13-01'"; AD_ENOMEM). */
json_t *ad__simulate(const json_t *input, ad_error_t *err);

/* Append one {platform, at} object per line of `text` ("platform,time",
 * time as ISO-8601 or epoch seconds; blank lines and lines starting with
 * '#' skipped; a first line whose time does not parse is taken as a
 * header) to the array `openings`. `what` names the source in errors
 * ("openings.csv line 5: ..."). 0 or AD_ECONFIG / AD_ENOMEM + *err. */
int ad__simulate_csv_openings(const char *text, const char *what, json_t *openings,
                              ad_error_t *err);

#endif
