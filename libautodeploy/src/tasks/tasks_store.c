/*
 * tasks_store.c - task documents in MongoDB. Each state change is one
 * findAndModify whose filter names the states it may leave, so two actors
 * (a return and an operator's cancel, two masters) can never both win: the
 * loser sees the condition fail and records a refusal instead.
 */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error_private.h"
#include "core/log_private.h"
#include "store/cursor.h"
#include "store/docs.h"
#include "tasks/tasks.h"

json_t *ad__task_load(const ad__tasks_ctx_t *t, const char *id, ad_error_t *err)
{
  bson_t *q = BCON_NEW("_id", BCON_UTF8(id)), *o = BCON_NEW("limit", BCON_INT64(1));
  json_t *rows = ad__store_find_json(t->store, t->collection, q, o, err);
  json_t *out = json_incref(json_array_get(rows, 0));
  if (rows && !out)
    ad__err(err, AD_ENOTFOUND, "tasks", "id: no task %s", id);
  json_decref(rows);
  bson_destroy(q);
  bson_destroy(o);
  return out;
}

/* May `ch` leave the stored document `cur`? 0, or AD_ESTATE naming why. */
static int check_move(const json_t *cur, const char *id, const ad__task_change_t *ch,
                      ad_error_t *err)
{
  const char *state = json_string_value(json_object_get(cur, "state"));
  ad__task_state_t to = ad__task_cause_target(ch->cause);
  if (!ad__task_can_move(ad__task_state_parse(state), to, ch->cause))
    return ad__err(err, AD_ESTATE, "tasks", "task %s is %s: cannot go to %s (%s)", id,
                   state ? state : "?", ad__task_state_name(to), ad__task_cause_name(ch->cause));
  if (ch->jid && strcmp(ad__jstr(cur, "jid"), ch->jid) != 0)
    return ad__err(err, AD_ESTATE, "tasks", "task %s moved on from job %s to %s: cannot go to %s",
                   id, ch->jid, ad__jstr(cur, "jid"), ad__task_state_name(to));
  return 0;
}

/* One updateOne on {_id, rev}: $set `fields`, $inc rev, $push the history
 * entry. 1 done, 0 the document changed meanwhile, <0 store error. */
static int64_t write_move(const ad__tasks_ctx_t *t, const json_t *cur, json_t *fields,
                          const ad__task_change_t *ch, ad_error_t *err)
{
  const char *from = ad__jstr(cur, "state");
  const char *to = json_string_value(json_object_get(fields, "state"));
  const char *now = json_string_value(json_object_get(fields, "updated_at"));
  json_t *query = json_pack("{s:s,s:I}", "_id", ad__jstr(cur, "_id"), "rev",
                            json_integer_value(json_object_get(cur, "rev")));
  json_t *update = json_pack("{s:O,s:{s:i},s:{s:{s:s,s:s,s:s,s:s,s:s}}}", "$set", fields,
                             "$inc", "rev", 1, "$push", "history", "at", now, "from", from,
                             "to", to, "cause", ch->why ? ch->why : "", "actor",
                             ch->actor ? ch->actor : "autodeploy");
  if (!query || !update) {
    json_decref(query);
    json_decref(update);
    return ad__err(err, AD_ENOMEM, "tasks", "building the update of task %s",
                   ad__jstr(cur, "_id")), -1;
  }
  return ad__docs_update(t->store, t->collection, query, update, err); /* takes both */
}

/* The fields a move sets: ch->set, state and updated_at. */
static json_t *move_fields(const ad__task_change_t *ch)
{
  char now[32];
  ad__iso_ms(ad__now_ms(), now);
  json_t *fields = ch->set ? json_deep_copy(ch->set) : json_object();
  if (fields && (json_object_set_new(fields, "state",
                                     json_string(ad__task_state_name(ad__task_cause_target(ch->cause)))) ||
                 json_object_set_new(fields, "updated_at", json_string(now)))) {
    json_decref(fields);
    return NULL;
  }
  return fields;
}

/* Optimistic concurrency: read, check the move against the rules
 * (task_rules.h), update only if the document is still the one read (same
 * `rev`, which every change increments), so the history's "from" is exact.
 * A lost race re-reads and re-checks. */
json_t *ad__task_move(const ad__tasks_ctx_t *t, const char *id, const ad__task_change_t *ch,
                      ad_error_t *err)
{
  const char *to = ad__task_state_name(ad__task_cause_target(ch->cause));
  for (int attempt = 0; attempt < 8; attempt++) {
    json_t *cur = ad__task_load(t, id, err);
    if (!cur)
      return NULL;
    int refused = check_move(cur, id, ch, err);
    json_t *fields = refused ? NULL : move_fields(ch);
    if (!refused && !fields)
      ad__err(err, AD_ENOMEM, "tasks", "moving task %s", id);
    int64_t modified = fields ? write_move(t, cur, fields, ch, err) : -1;
    if (modified == 1) {
      AD_LOG_I("tasks", "task %s: %s -> %s (%s)", id, ad__jstr(cur, "state"), to,
               ch->why ? ch->why : "");
      json_object_update(cur, fields);
      json_object_set_new(cur, "rev", json_integer(json_integer_value(json_object_get(cur, "rev")) + 1));
      json_decref(fields);
      if (t->on_end && ad__task_state_is_end((int)ad__task_cause_target(ch->cause)))
        t->on_end(t->on_end_user, cur);
      return cur;
    }
    json_decref(fields);
    json_decref(cur);
    if (modified < 0)
      return NULL;
    /* changed under us: look again */
  }
  ad__err(err, AD_ESTATE, "tasks", "task %s keeps changing; gave up moving it to %s", id, to);
  return NULL;
}

int ad__task_note(const ad__tasks_ctx_t *t, const char *id, const char *what,
                  const char *cause, const char *actor)
{
  char now[32];
  ad__iso_ms(ad__now_ms(), now);
  bson_t *q = BCON_NEW("_id", BCON_UTF8(id));
  bson_t *u = BCON_NEW("$push", "{", "history", "{", "at", BCON_UTF8(now), "note",
                       BCON_UTF8(what), "cause", BCON_UTF8(cause ? cause : ""),
                       "actor", BCON_UTF8(actor ? actor : "autodeploy"), "}", "}");
  ad_error_t err;
  int64_t n = ad__store_update_one(t->store, t->collection, q, u, &err);
  bson_destroy(q);
  bson_destroy(u);
  if (n < 0)
    AD_LOG_E("tasks", "recording on task %s: %s", id, err.message);
  return n < 0 ? AD_ECONNECT : 0;
}

/* The filter `{_id, refusals < bound}` (missing counts as 0). */
static bson_t *refusal_filter(const char *id)
{
  return BCON_NEW("_id", BCON_UTF8(id), "$or", "[",
                  "{", "refusals", "{", "$exists", BCON_BOOL(false), "}", "}",
                  "{", "refusals", "{", "$lt", BCON_INT32(AD__TASK_MAX_REFUSAL_NOTES), "}", "}",
                  "]");
}

int ad__task_note_refusal(const ad__tasks_ctx_t *t, const char *id, const char *what,
                          const char *cause)
{
  char now[32];
  ad__iso_ms(ad__now_ms(), now);
  bson_t *q = refusal_filter(id);
  bson_t *u = BCON_NEW("$inc", "{", "refusals", BCON_INT32(1), "}",
                       "$push", "{", "history", "{", "at", BCON_UTF8(now), "note", BCON_UTF8(what),
                       "cause", BCON_UTF8(cause ? cause : ""), "actor", BCON_UTF8("autodeploy"),
                       "}", "}");
  ad_error_t err;
  int64_t n = q && u ? ad__store_update_one(t->store, t->collection, q, u, &err) : -1;
  if (q)
    bson_destroy(q);
  if (u)
    bson_destroy(u);
  if (n < 0)
    AD_LOG_E("tasks", "recording a refusal on task %s: %s", id, q && u ? err.message : "no memory");
  return n < 0 ? AD_ECONNECT : (int)n;
}

/* ---- a step of the wall clock ------------------------------------------- */

/* Move one task's `field` by step_ms, only while it still holds the value
 * read (a move since wrote a new one, on the new clock), with a note in
 * `history`. updated_at is set too: should a later task fail to move, the
 * try again leaves this one alone (changed since `since`). 1 moved, 0
 * changed meanwhile, <0 store error. */
static int64_t shift_one(const ad__tasks_ctx_t *t, const char *id, const char *field,
                         int64_t was, int64_t step_ms, ad_error_t *err)
{
  char now[32], note[160];
  ad__iso_ms(ad__now_ms(), now);
  snprintf(note, sizeof note, "wall clock stepped by %+.1f s: %s moved with it, the time "
           "left kept", (double)step_ms / 1000.0, field);
  bson_t *q = BCON_NEW("_id", BCON_UTF8(id), field, BCON_INT64(was));
  bson_t *u = BCON_NEW("$inc", "{", field, BCON_INT64(step_ms), "rev", BCON_INT32(1), "}",
                       "$set", "{", "updated_at", BCON_UTF8(now), "}",
                       "$push", "{", "history", "{", "at", BCON_UTF8(now), "note", BCON_UTF8(note),
                       "cause", BCON_UTF8("clock step"), "actor", BCON_UTF8("watchdog"), "}", "}");
  int64_t n = q && u ? ad__store_update_one(t->store, t->collection, q, u, err)
                     : ad__err(err, AD_ENOMEM, "tasks", "moving task %s", id);
  if (q)
    bson_destroy(q);
  if (u)
    bson_destroy(u);
  return n;
}

/* Tasks in `state` with a time in `field`, all moved by step_ms but those
 * changed in [since, now]: they were written on the new clock. */
static int64_t shift_field(const ad__tasks_ctx_t *t, const char *state, const char *field,
                           int64_t step_ms, int64_t since, ad_error_t *err)
{
  bson_t *q = BCON_NEW("state", BCON_UTF8(state), field, "{", "$gt", BCON_INT64(0), "}");
  bson_t *o = BCON_NEW("projection", "{", field, BCON_INT32(1), "updated_at", BCON_INT32(1), "}");
  json_t *rows = ad__store_find_json(t->store, t->collection, q, o, err);
  bson_destroy(q);
  bson_destroy(o);
  if (!rows)
    return -1;
  int64_t moved = 0, now = ad__now_ms(), at;
  size_t i;
  json_t *row;
  json_array_foreach(rows, i, row) {
    if (!ad__time_parse(ad__jstr(row, "updated_at"), &at) && at >= since && at <= now)
      continue;
    int64_t n = shift_one(t, ad__jstr(row, "_id"), field, ad__jint(row, field), step_ms, err);
    if (n < 0) {
      moved = -1;
      break;
    }
    moved += n;
  }
  json_decref(rows);
  return moved;
}

int64_t ad__tasks_shift(const ad__tasks_ctx_t *t, int64_t step_ms, int64_t since,
                        ad_error_t *err)
{
  int64_t a = shift_field(t, "running", "deadline_ms", step_ms, since, err);
  int64_t b = a < 0 ? -1 : shift_field(t, "queued", "retry_at_ms", step_ms, since, err);
  return b < 0 ? -1 : a + b;
}
