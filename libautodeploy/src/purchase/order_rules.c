/* order_rules.c - see order_rules.h: the one transition table. */
#include <stdio.h>
#include <string.h>

#include "purchase/order_rules.h"

static const char *const STATES[AD__OS_COUNT] = {
    "planned", "awaiting_approval", "approved", "ordered", "partner_notified", "fulfilled",
    "closed", "rejected", "expired", "failed", "cancelled"};

static const char *const CAUSES[AD__OC_COUNT] = {"ask",    "approve", "reject", "expire",
                                                 "place",  "notify",  "arrive", "fulfil",
                                                 "close",  "fail",    "cancel", "note"};

#define B(s) (1u << (s))
#define SAME (-1)
static const struct {
  unsigned from; /* bit set of states */
  int to;        /* SAME: the state it is in */
} RULES[AD__OC_COUNT] = {
    [AD__OC_ASK] = {B(AD__OS_PLANNED), AD__OS_AWAITING_APPROVAL},
    [AD__OC_APPROVE] = {B(AD__OS_PLANNED) | B(AD__OS_AWAITING_APPROVAL), AD__OS_APPROVED},
    [AD__OC_REJECT] = {B(AD__OS_PLANNED) | B(AD__OS_AWAITING_APPROVAL), AD__OS_REJECTED},
    [AD__OC_EXPIRE] = {B(AD__OS_AWAITING_APPROVAL), AD__OS_EXPIRED},
    [AD__OC_PLACE] = {B(AD__OS_APPROVED), AD__OS_ORDERED},
    [AD__OC_NOTIFY] = {B(AD__OS_ORDERED), AD__OS_PARTNER_NOTIFIED},
    [AD__OC_ARRIVE] = {B(AD__OS_ORDERED) | B(AD__OS_PARTNER_NOTIFIED), SAME},
    [AD__OC_FULFIL] = {B(AD__OS_ORDERED) | B(AD__OS_PARTNER_NOTIFIED), AD__OS_FULFILLED},
    [AD__OC_CLOSE] = {B(AD__OS_FULFILLED), AD__OS_CLOSED},
    [AD__OC_FAIL] = {B(AD__OS_PLANNED) | B(AD__OS_AWAITING_APPROVAL) | B(AD__OS_APPROVED),
                     AD__OS_FAILED},
    [AD__OC_CANCEL] = {B(AD__OS_PLANNED) | B(AD__OS_AWAITING_APPROVAL) | B(AD__OS_APPROVED),
                       AD__OS_CANCELLED},
    [AD__OC_NOTE] = {(1u << AD__OS_COUNT) - 1, SAME},
};

const char *ad__order_state_name(int s) { return s >= 0 && s < AD__OS_COUNT ? STATES[s] : "?"; }
const char *ad__order_cause_name(int c) { return c >= 0 && c < AD__OC_COUNT ? CAUSES[c] : "?"; }

int ad__order_state_parse(const char *name)
{
  for (int i = 0; name && i < AD__OS_COUNT; i++)
    if (!strcmp(STATES[i], name))
      return i;
  return -1;
}

int ad__order_cause_target(int cause, int from)
{
  if (cause < 0 || cause >= AD__OC_COUNT)
    return -1;
  return RULES[cause].to == SAME ? from : RULES[cause].to;
}

int ad__order_can_move(int from, int to, int cause)
{
  if (from < 0 || from >= AD__OS_COUNT || to < 0 || to >= AD__OS_COUNT || cause < 0 ||
      cause >= AD__OC_COUNT)
    return 0;
  return (RULES[cause].from & B(from)) && ad__order_cause_target(cause, from) == to;
}

int ad__order_state_is_end(int s)
{
  return s == AD__OS_CLOSED || s == AD__OS_REJECTED || s == AD__OS_EXPIRED ||
         s == AD__OS_FAILED || s == AD__OS_CANCELLED;
}

int ad__order_state_is_pending(int s) { return s == AD__OS_ORDERED || s == AD__OS_PARTNER_NOTIFIED; }

int ad__order_id(const char *profile, const char *day, char *out, size_t size)
{
  if (!profile || !*profile || !day || strlen(day) != 8)
    return -1;
  int n = snprintf(out, size, "%s-%s", profile, day);
  return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int counted(const json_t *order, const char *host)
{
  size_t i;
  json_t *h;
  json_array_foreach(json_object_get(order, "arrived"), i, h)
    if (json_string_value(h) && !strcmp(json_string_value(h), host))
      return 1;
  return 0;
}

static const char *str(const json_t *o, const char *k)
{
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

long ad__order_pick_arrival(const json_t *orders, const char *profile, const char *host,
                            int64_t ready_ms)
{
  long best = -1;
  int64_t best_at = 0;
  size_t i;
  json_t *o;
  json_array_foreach(orders, i, o) {
    if (counted(o, host))
      return -1;
  }
  json_array_foreach(orders, i, o) {
    int64_t at = json_integer_value(json_object_get(o, "ordered_at_ms"));
    json_int_t count = json_integer_value(json_object_get(o, "count"));
    if (strcmp(str(o, "profile"), profile) ||
        !ad__order_state_is_pending(ad__order_state_parse(str(o, "state"))) || at <= 0 ||
        at > ready_ms || (json_int_t)json_array_size(json_object_get(o, "arrived")) >= count)
      continue;
    if (best < 0 || at < best_at ||
        (at == best_at && strcmp(str(o, "_id"), str(json_array_get(orders, (size_t)best), "_id")) < 0)) {
      best = (long)i;
      best_at = at;
    }
  }
  return best;
}

int64_t ad__order_backoff_s(int n, int64_t base_s, int64_t max_s)
{
  int64_t v = base_s > 0 ? base_s : 1;
  for (int k = 1; k < n && v < max_s; k++)
    v *= 2;
  return v < max_s ? v : max_s;
}
