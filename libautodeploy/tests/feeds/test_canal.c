/* test_canal.c - what is an opening in Canal's flat messages and plain
 * {service, at} messages, and what is malformed (feeds/canal.c). */
#include "harness.h"

#include "feeds/canal.h"

static ad__canal_map_t MAP = {NULL, "game_server", "server_id", "status", "1"};

/* The openings of `msg` as "id@ms,id@ms", or "ERR:<message>". */
static char OUT[512];
static const char *run(const ad__canal_map_t *m, const char *msg)
{
  json_t *list;
  ad_error_t err = {0};
  if (ad__canal_openings(m, msg, strlen(msg), &list, &err)) {
    snprintf(OUT, sizeof OUT, "ERR:%s", err.message);
    return OUT;
  }
  OUT[0] = 0;
  size_t i;
  json_t *o;
  json_array_foreach(list, i, o) {
    size_t n = strlen(OUT);
    snprintf(OUT + n, sizeof OUT - n, "%s%s@%lld", i ? "," : "",
             json_string_value(json_object_get(o, "service")),
             (long long)json_integer_value(json_object_get(o, "at_ms")));
  }
  json_decref(list);
  return OUT;
}

#define UPD(data, old) \
  "{\"database\":\"gm\",\"table\":\"game_server\",\"type\":\"UPDATE\",\"isDdl\":false," \
  "\"es\":1764237600000,\"ts\":1764237600100,\"data\":" data ",\"old\":" old "}"

TEST(update_of_online_column_is_an_opening)
{
  ASSERT_STR(run(&MAP, UPD("[{\"server_id\":\"qq-s1\",\"status\":\"1\",\"name\":\"a\"}]",
                           "[{\"status\":\"0\"}]")), "qq-s1@1764237600000");
}

TEST(several_rows_only_the_ones_that_went_online)
{
  ASSERT_STR(run(&MAP, UPD("[{\"server_id\":\"qq-s1\",\"status\":\"1\"},"
                           "{\"server_id\":\"qq-s2\",\"status\":\"2\"},"
                           "{\"server_id\":\"qq-s3\",\"status\":\"1\"}]",
                           "[{\"status\":\"0\"},{\"status\":\"1\"},{\"status\":null}]")),
             "qq-s1@1764237600000,qq-s3@1764237600000");
}

TEST(insert_delete_ddl_and_other_columns_open_nothing)
{
  ASSERT_STR(run(&MAP, "{\"database\":\"gm\",\"table\":\"game_server\",\"type\":\"INSERT\","
                       "\"data\":[{\"server_id\":\"qq-s1\",\"status\":\"1\"}],\"old\":null}"), "");
  ASSERT_STR(run(&MAP, "{\"database\":\"gm\",\"table\":\"game_server\",\"type\":\"DELETE\","
                       "\"data\":[{\"server_id\":\"qq-s1\",\"status\":\"1\"}],\"old\":null}"), "");
  ASSERT_STR(run(&MAP, "{\"database\":\"gm\",\"table\":\"game_server\",\"type\":\"ALTER\","
                       "\"isDdl\":true,\"sql\":\"alter table game_server add x int\",\"data\":null}"), "");
  /* the name changed on an online row: not an opening */
  ASSERT_STR(run(&MAP, UPD("[{\"server_id\":\"qq-s1\",\"status\":\"1\",\"name\":\"b\"}]",
                           "[{\"name\":\"a\"}]")), "");
  /* the online column changed, but away from online */
  ASSERT_STR(run(&MAP, UPD("[{\"server_id\":\"qq-s1\",\"status\":\"0\"}]", "[{\"status\":\"1\"}]")), "");
}

TEST(other_table_and_database)
{
  ASSERT_STR(run(&MAP, "{\"database\":\"gm\",\"table\":\"player\",\"type\":\"UPDATE\","
                       "\"data\":[{\"server_id\":\"qq-s1\",\"status\":\"1\"}],\"old\":[{\"status\":\"0\"}]}"), "");
  ad__canal_map_t m = MAP;
  m.database = "other";
  ASSERT_STR(run(&m, UPD("[{\"server_id\":\"qq-s1\",\"status\":\"1\"}]", "[{\"status\":\"0\"}]")), "");
  m.database = "gm";
  ASSERT_STR(run(&m, UPD("[{\"server_id\":\"qq-s1\",\"status\":\"1\"}]", "[{\"status\":\"0\"}]")),
             "qq-s1@1764237600000");
}

TEST(typed_values_compare_as_text)
{
  ad__canal_map_t m = {NULL, "game_server", "server_id", "online", "true"};
  ASSERT_STR(run(&m, UPD("[{\"server_id\":1001,\"online\":true}]", "[{\"online\":false}]")),
             "1001@1764237600000");
  ASSERT_STR(run(&MAP, UPD("[{\"server_id\":\"qq-s1\",\"status\":1}]", "[{\"status\":0}]")),
             "qq-s1@1764237600000");
}

TEST(plain_messages)
{
  ASSERT_STR(run(&MAP, "{\"service\":\"qq-s9\",\"at\":\"2025-11-27T10:00:00Z\"}"), "qq-s9@1764237600000");
  ASSERT_STR(run(&MAP, "{\"service\":\"qq-s9\",\"at\":1764237600}"), "qq-s9@1764237600000");
  ASSERT_STR(run(&MAP, "{\"service\":\"qq-s9\"}"), "qq-s9@0");
}

TEST(malformed_messages_name_the_field)
{
  ASSERT(strstr(run(&MAP, "not json"), "ERR:not JSON"));
  ASSERT(strstr(run(&MAP, "[1,2]"), "ERR:message: must be a JSON object"));
  ASSERT(strstr(run(&MAP, "{\"hello\":1}"), "ERR:message: neither"));
  ASSERT(strstr(run(&MAP, "{\"service\":\"a/b\"}"), "ERR:service:"));
  ASSERT(strstr(run(&MAP, "{\"service\":\"\"}"), "ERR:service:"));
  ASSERT(strstr(run(&MAP, "{\"service\":\"qq-s1\",\"at\":\"yesterday\"}"), "ERR:at:"));
  ASSERT(strstr(run(&MAP, "{\"table\":\"game_server\",\"data\":[]}"), "ERR:type:"));
  ASSERT(strstr(run(&MAP, "{\"type\":\"UPDATE\",\"table\":7}"), "ERR:table:"));
  ASSERT(strstr(run(&MAP, UPD("{}", "[]")), "ERR:data:"));
  ASSERT(strstr(run(&MAP, UPD("[{\"server_id\":\"qq-s1\",\"status\":\"1\"}]", "[]")), "ERR:old:"));
  ASSERT(strstr(run(&MAP, UPD("[7]", "[{\"status\":\"0\"}]")), "ERR:data[0]:"));
  ASSERT(strstr(run(&MAP, UPD("[{\"server_id\":\"qq-s1\",\"status\":\"1\"}]", "[7]")), "ERR:old[0]:"));
  ASSERT(strstr(run(&MAP, UPD("[{\"status\":\"1\"}]", "[{\"status\":\"0\"}]")), "ERR:data[0].server_id:"));
  ASSERT(strstr(run(&MAP, "{\"service\":\"a\",\"service\":\"b\"}"), "ERR:not JSON"));
}

TEST(mapping_keys)
{
  ad__canal_map_t m;
  ad_error_t err = {0};
  json_t *j = json_pack("{s:s,s:s,s:s,s:i}", "table", "game_server", "id_column", "server_id",
                        "online_column", "status", "online_value", 1);
  ASSERT_EQ(ad__canal_map_load(&m, j, &err), 0);
  ASSERT_STR(m.online_value, "1");
  ASSERT(m.database == NULL);
  ad__canal_map_free(&m);
  json_object_del(j, "id_column");
  ASSERT_EQ(ad__canal_map_load(&m, j, &err), AD_ECONFIG);
  ASSERT(strstr(err.message, "kafka.mapping.id_column: required"));
  json_object_set_new(j, "colour", json_string("x"));
  ASSERT_EQ(ad__canal_map_load(&m, j, &err), AD_ECONFIG);
  ASSERT(strstr(err.message, "kafka.mapping: unknown key \"colour\""));
  json_decref(j);
  ASSERT_EQ(ad__canal_map_load(&m, NULL, &err), AD_ECONFIG);
  ASSERT(strstr(err.message, "kafka.mapping: required"));
}

RUN(CASE(update_of_online_column_is_an_opening), CASE(several_rows_only_the_ones_that_went_online),
    CASE(insert_delete_ddl_and_other_columns_open_nothing), CASE(other_table_and_database),
    CASE(typed_values_compare_as_text), CASE(plain_messages), CASE(malformed_messages_name_the_field),
    CASE(mapping_keys))
