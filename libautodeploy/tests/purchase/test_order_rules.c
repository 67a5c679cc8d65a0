/* test_order_rules.c - the order state machine, every (from, to, cause)
 * against the table written out independently here; the order id; the
 * fulfilment pick (oldest open order first); the backoff. */
#include "harness.h"
#include "purchase/order_rules.h"

/* The table of docs/purchase.md, written out again: cause, from (list), to. */
static const struct {
  int cause;
  int from[4];
  int nfrom;
  int to; /* -1: same */
} EXPECT[] = {
    {AD__OC_ASK, {AD__OS_PLANNED}, 1, AD__OS_AWAITING_APPROVAL},
    {AD__OC_APPROVE, {AD__OS_PLANNED, AD__OS_AWAITING_APPROVAL}, 2, AD__OS_APPROVED},
    {AD__OC_REJECT, {AD__OS_PLANNED, AD__OS_AWAITING_APPROVAL}, 2, AD__OS_REJECTED},
    {AD__OC_EXPIRE, {AD__OS_AWAITING_APPROVAL}, 1, AD__OS_EXPIRED},
    {AD__OC_PLACE, {AD__OS_APPROVED}, 1, AD__OS_ORDERED},
    {AD__OC_NOTIFY, {AD__OS_ORDERED}, 1, AD__OS_PARTNER_NOTIFIED},
    {AD__OC_ARRIVE, {AD__OS_ORDERED, AD__OS_PARTNER_NOTIFIED}, 2, -1},
    {AD__OC_FULFIL, {AD__OS_ORDERED, AD__OS_PARTNER_NOTIFIED}, 2, AD__OS_FULFILLED},
    {AD__OC_CLOSE, {AD__OS_FULFILLED}, 1, AD__OS_CLOSED},
    {AD__OC_FAIL, {AD__OS_PLANNED, AD__OS_AWAITING_APPROVAL, AD__OS_APPROVED}, 3, AD__OS_FAILED},
    {AD__OC_CANCEL, {AD__OS_PLANNED, AD__OS_AWAITING_APPROVAL, AD__OS_APPROVED}, 3,
     AD__OS_CANCELLED},
};

static int expected(int from, int to, int cause)
{
  if (cause == AD__OC_NOTE)
    return from == to;
  for (size_t i = 0; i < sizeof EXPECT / sizeof EXPECT[0]; i++) {
    if (EXPECT[i].cause != cause)
      continue;
    for (int k = 0; k < EXPECT[i].nfrom; k++)
      if (EXPECT[i].from[k] == from)
        return to == (EXPECT[i].to < 0 ? from : EXPECT[i].to);
    return 0;
  }
  return 0;
}

TEST(every_transition_allowed_or_refused)
{
  int allowed = 0;
  for (int c = -1; c <= AD__OC_COUNT; c++)
    for (int f = -1; f <= AD__OS_COUNT; f++)
      for (int t = -1; t <= AD__OS_COUNT; t++) {
        int want = expected(f, t, c) && f >= 0 && f < AD__OS_COUNT;
        if (ad__order_can_move(f, t, c) != want) {
          fprintf(stderr, "  %s: %s -> %s: got %d\n", ad__order_cause_name(c),
                  ad__order_state_name(f), ad__order_state_name(t), !want);
          ASSERT(0);
        }
        allowed += want;
      }
  ASSERT_EQ(allowed, 19 + AD__OS_COUNT); /* 19 moves + a note in every state */
}

TEST(final_states_stay)
{
  int finals[] = {AD__OS_CLOSED, AD__OS_REJECTED, AD__OS_EXPIRED, AD__OS_FAILED, AD__OS_CANCELLED};
  for (size_t i = 0; i < 5; i++) {
    ASSERT(ad__order_state_is_end(finals[i]));
    for (int c = 0; c < AD__OC_COUNT; c++)
      for (int t = 0; t < AD__OS_COUNT; t++)
        if (c != AD__OC_NOTE)
          ASSERT(!ad__order_can_move(finals[i], t, c));
  }
  ASSERT(!ad__order_state_is_end(AD__OS_PARTNER_NOTIFIED));
  ASSERT(ad__order_state_is_pending(AD__OS_ORDERED));
  ASSERT(ad__order_state_is_pending(AD__OS_PARTNER_NOTIFIED));
  ASSERT(!ad__order_state_is_pending(AD__OS_APPROVED));
}

TEST(names_round_trip)
{
  for (int s = 0; s < AD__OS_COUNT; s++)
    ASSERT_EQ(ad__order_state_parse(ad__order_state_name(s)), s);
  ASSERT_EQ(ad__order_state_parse("shipped"), -1);
  ASSERT_EQ(ad__order_state_parse(NULL), -1);
  ASSERT_STR(ad__order_state_name(99), "?");
}

TEST(order_id)
{
  char id[64];
  ASSERT_EQ(ad__order_id("aliyun-hz-c7", "20261205", id, sizeof id), 0);
  ASSERT_STR(id, "aliyun-hz-c7-20261205");
  ASSERT_EQ(ad__order_id("", "20261205", id, sizeof id), -1);
  ASSERT_EQ(ad__order_id("p", "2026125", id, sizeof id), -1);
  ASSERT_EQ(ad__order_id("a-very-long-profile-name", "20261205", id, 10), -1);
}

TEST(arrival_counts_against_the_oldest_open_order)
{
  json_t *orders = json_loads(
      "[{\"_id\":\"p1-20261203\",\"profile\":\"p1\",\"state\":\"partner_notified\",\"count\":2,"
      "  \"ordered_at_ms\":3000,\"arrived\":[]},"
      " {\"_id\":\"p1-20261201\",\"profile\":\"p1\",\"state\":\"ordered\",\"count\":1,"
      "  \"ordered_at_ms\":1000,\"arrived\":[]},"
      " {\"_id\":\"p2-20261130\",\"profile\":\"p2\",\"state\":\"ordered\",\"count\":5,"
      "  \"ordered_at_ms\":500,\"arrived\":[]},"
      " {\"_id\":\"p1-20261130\",\"profile\":\"p1\",\"state\":\"fulfilled\",\"count\":1,"
      "  \"ordered_at_ms\":100,\"arrived\":[\"old\"]},"
      " {\"_id\":\"p1-20261129\",\"profile\":\"p1\",\"state\":\"approved\",\"count\":9}]",
      0, NULL);
  ASSERT(orders != NULL);
  /* oldest open order of the profile first */
  ASSERT_EQ(ad__order_pick_arrival(orders, "p1", "h1", 5000), 1);
  /* a host ready before an order was placed does not count against it */
  ASSERT_EQ(ad__order_pick_arrival(orders, "p1", "h1", 2000), 1);
  ASSERT_EQ(ad__order_pick_arrival(orders, "p1", "h1", 900), -1);
  /* that order is full: the next one */
  json_array_append_new(json_object_get(json_array_get(orders, 1), "arrived"), json_string("h1"));
  ASSERT_EQ(ad__order_pick_arrival(orders, "p1", "h2", 5000), 0);
  /* a host never counts twice */
  ASSERT_EQ(ad__order_pick_arrival(orders, "p1", "h1", 5000), -1);
  ASSERT_EQ(ad__order_pick_arrival(orders, "p1", "old", 5000), -1);
  /* another profile, no profile */
  ASSERT_EQ(ad__order_pick_arrival(orders, "p2", "h3", 5000), 2);
  ASSERT_EQ(ad__order_pick_arrival(orders, "p3", "h3", 5000), -1);
  json_decref(orders);
}

TEST(backoff_doubles_to_a_ceiling)
{
  ASSERT_EQ(ad__order_backoff_s(1, 60, 3600), 60);
  ASSERT_EQ(ad__order_backoff_s(2, 60, 3600), 120);
  ASSERT_EQ(ad__order_backoff_s(4, 60, 3600), 480);
  ASSERT_EQ(ad__order_backoff_s(30, 60, 3600), 3600);
}

RUN(CASE(every_transition_allowed_or_refused), CASE(final_states_stay), CASE(names_round_trip),
    CASE(order_id), CASE(arrival_counts_against_the_oldest_open_order),
    CASE(backoff_doubles_to_a_ceiling))
