/* clock.h - the library's clocks and its one ISO-8601 formatter and parser.
 *
 * Two clocks, for two jobs: the wall clock (ad__now_ms) for timestamps that
 * people read, that are stored, or that other masters compare; the monotonic
 * clock (ad__mono_ms, CLOCK_MONOTONIC) for intervals and timeouts, which
 * must not jump when the wall clock is set. */
#ifndef AD_CORE_CLOCK_H
#define AD_CORE_CLOCK_H

#include <stdint.h>

/* Wall clock: milliseconds since the Unix epoch (UTC). */
int64_t ad__now_ms(void);

/* Monotonic clock in milliseconds from an arbitrary origin; only
 * differences between two readings mean anything. Never decreases. */
int64_t ad__mono_ms(void);

/* CLOCK_BOOTTIME in milliseconds: monotonic like ad__mono_ms, and it also
 * counts the time the host was suspended. The reference a step of the wall
 * clock is measured against (a suspended host's wall clock did not step). */
int64_t ad__boot_ms(void);

/* Watching the wall clock for steps (an operator's `date -s`, NTP's step
 * after a long drift, a VM restored): each reading of both clocks is
 * compared with the one before. Zero it to start. */
typedef struct {
  int64_t wall, boot; /* the previous reading; boot 0: none yet */
} ad__clock_watch_t;

/* A difference larger than this between the two clocks' deltas is a step:
 * NTP's slew moves the wall clock by at most 0.5 ms a second. */
#define AD__CLOCK_STEP_MS 1000

/* Feed one reading (ad__now_ms, ad__boot_ms). The wall clock's step since
 * the previous reading (positive: set forward), or 0 when it kept within
 * AD__CLOCK_STEP_MS of the time that passed. On a step, *since (may be
 * NULL) is the previous reading's time on the stepped wall clock: what was
 * stored after it was written on the new clock already. */
int64_t ad__clock_watch(ad__clock_watch_t *w, int64_t wall, int64_t boot, int64_t *since);

/* How much of the second an ISO-8601 time shows. */
typedef enum {
  AD__ISO_MS,        /* "2026-11-27T13:50:00.123Z": stored and logged times */
  AD__ISO_S,         /* "2026-11-27T13:50:00Z": the simulator's report */
  AD__ISO_MS_IF_ANY, /* ".123" only when not 0: libbson's relaxed {"$date"} */
} ad__iso_precision_t;

/* Epoch milliseconds as ISO-8601 in UTC into out[32]. Times before 1970
 * round down (the millisecond before the epoch is 23:59:59.999). Any
 * int64 (a time from an event or a feed): years past 9999 are printed as
 * they are, "?" when the C library cannot place the second. */
void ad__iso_format(int64_t ms, ad__iso_precision_t p, char out[32]);

/* ad__iso_format(ms, AD__ISO_MS, out). */
void ad__iso_ms(int64_t ms, char out[32]);

/* Parse "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.fff]]" with an optional "Z"
 * or +HH:MM / -HHMM offset (no offset: UTC; ' ' may stand for 'T'), or a
 * plain number of epoch seconds. 0 and *ms, or -1 (*ms untouched). */
int ad__time_parse(const char *s, int64_t *ms);

#endif
