/* simulate_args.h - the ad_call "simulate" command: the simulator driven by
 * one JSON argument object, so that the Salt runner hands its CSV to the same
 * parser as autodeploy-simulate (ad__simulate_csv_openings) instead of
 * reading it itself. Pure: no store, no bus, no files. */
#ifndef AD_SIMULATE_ARGS_H
#define AD_SIMULATE_ARGS_H

#include <jansson.h>

#include "autodeploy/common.h"

/* args: {input: {...} (required, see simulate.h),
 *        csv: "platform,time\n..." (optional: the text of an openings CSV,
 *             read as autodeploy-simulate --openings-csv reads its file:
 *             a header line, blank lines and '#' lines are skipped),
 *        csv_name: "openings.csv" (optional: names the CSV in errors,
 *             default "csv")}.
 * The CSV's openings are added to a copy of input.openings; `args` is not
 * changed. Returns the report (caller decrefs), or NULL + *err: AD_EINVAL
 * (domain "args") for a missing or mistyped argument or an unknown key,
 * otherwise what ad__simulate_csv_openings and ad__simulate report
 * (AD_ECONFIG naming the line or field, AD_ENOMEM). */
json_t *ad__simulate_args(const json_t *args, ad_error_t *err);

#endif
