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

/* Optimistic concurrency: read, check the state, update only if the
 * document is still the one read (same `rev`, which every change
 * increments), so the history's "from" is exact. A lost race re-reads. */
json_t *ad__task_move(const ad__tasks_ctx_t *t, const char *id,
                      const char *const *from, const char *to, json_t *set,
                      const char *cause, const char *actor, ad_error_t *err)
{
  for (int attempt = 0; attempt < 8; attempt++) {
    json_t *cur = ad__task_load(t, id, err);
    if (!cur)
      return NULL;
    char state_buf[32];
    snprintf(state_buf, sizeof state_buf, "%s", json_string_value(json_object_get(cur, "state"))
             ? json_string_value(json_object_get(cur, "state")) : "");
    const char *state = state_buf[0] ? state_buf : NULL;
    json_int_t rev = json_integer_value(json_object_get(cur, "rev"));
    int allowed = 0;
    for (int i = 0; from && from[i] && state; i++)
      allowed |= strcmp(from[i], state) == 0;
    if (!allowed) {
      ad__err(err, AD_ESTATE, "tasks", "task %s is %s: cannot go to %s", id,
              state ? state : "?", to);
      json_decref(cur);
      return NULL;
    }
    char now[32];
    ad__iso_ms(ad__now_ms(), now);
    json_t *fields = set ? json_deep_copy(set) : json_object();
    json_object_set_new(fields, "state", json_string(to));
    json_object_set_new(fields, "updated_at", json_string(now));
    json_t *query = json_pack("{s:s,s:I}", "_id", id, "rev", rev);
    json_t *update = json_pack("{s:O,s:{s:i},s:{s:{s:s,s:s,s:s,s:s,s:s}}}", "$set", fields,
                               "$inc", "rev", 1,
                               "$push", "history", "at", now, "from", state, "to", to,
                               "cause", cause ? cause : "", "actor",
                               actor ? actor : "autodeploy");
    int64_t modified = ad__docs_update(t->store, t->collection, query, update, err);
    if (modified == 1) {
      json_object_update(cur, fields);
      json_object_set_new(cur, "rev", json_integer(rev + 1));
      json_decref(fields);
      AD_LOG_I("tasks", "task %s: %s -> %s (%s)", id, state, to, cause ? cause : "");
      if (t->on_end && (!strcmp(to, "succeeded") || !strcmp(to, "failed") ||
                        !strcmp(to, "timed_out") || !strcmp(to, "cancelled")))
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
