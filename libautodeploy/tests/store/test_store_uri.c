/* test_store_uri.c - a MongoDB URI libmongoc cannot take is refused without
 * its password: libmongoc quotes a password with an unescaped ':' (the
 * message loses it, core/redact.h), and takes the tail of one with an
 * unescaped '@' for a host name that it quotes lowercased in every later
 * error (refused before libmongoc sees it). */
#include "autodeploy.h"
#include "core/redact.h"
#include "harness.h"
#include "store/store.h"

static int refused_without(const char *uri, const char *pw, const char *want)
{
  ad_error_t err = {0};
  ad__secret_add(AD__SECRET_URL, uri); /* as the engine's config loader does */
  ad__store_t *st = ad__store_new(uri, "t", &err);
  ad__secret_drop(AD__SECRET_URL, uri);
  int ok = !st && err.code == AD_ECONFIG && strstr(err.message, want) &&
           !strcasestr(err.message, pw);
  if (!ok)
    fprintf(stderr, "  %s -> %s\n", uri, err.message);
  ad__store_destroy(&st);
  return ok;
}

TEST(bad_uris_are_refused_without_the_password)
{
  ASSERT(refused_without("mongodb://u:Pw-Secret1:x@127.0.0.1:1/", "Pw-Secret1",
                         "mongo_uri: Password \"***\""));
  ASSERT(refused_without("mongodb://u:x@Pw-Secret1@127.0.0.1:1/", "Pw-Secret1",
                         "percent-encode it (%40)"));
}

TEST(an_escaped_at_is_fine)
{
  ad_error_t err = {0};
  ad__store_t *st = ad__store_new("mongodb://u:x%40Pw-Secret1@127.0.0.1:1/", "t", &err);
  ASSERT(st != NULL);
  ad__store_destroy(&st);
}

RUN(CASE(bad_uris_are_refused_without_the_password), CASE(an_escaped_at_is_fine))
