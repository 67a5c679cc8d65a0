/*
 * redact.h - the one way secrets are kept out of what the library says.
 *
 * The library knows its secrets: key-table values of type AD_CT_SECRET, the
 * password and the credential-named query values of every URL a string key
 * holds (a MongoDB URI, a DingTalk robot URL with its access_token), the
 * credential-named headers and properties a module reads by hand (webhook
 * and order API headers, Kafka's security properties, the HTTP server's
 * reader tokens), and credentials handed to it at run time (DingTalk's
 * access token, a Zabbix session). They live in one process-wide set, and
 * every text the library makes passes through ad__redact before anyone sees
 * it: ad__err (so errors, and what is made of them: notes and documents,
 * alerts, runner answers), ad__log, and the body of every HTTP answer
 * (core/http.c: quoted in errors, stored as an order's answer), which is
 * where a careless server would echo a credential back. A secret becomes
 * "***", in clear, percent-encoded or JSON-escaped.
 *
 * The set counts references: whoever adds a secret drops it when done (a
 * config struct when it is freed, a module when it is destroyed or a token
 * replaced); a secret added twice stays until dropped twice. Values shorter
 * than AD__SECRET_MIN characters are not kept: they would blank ordinary
 * words in every message.
 */
#ifndef AD_REDACT_H
#define AD_REDACT_H

#include <stddef.h>

#define AD__SECRET_MIN 4

typedef enum {
  AD__SECRET_VALUE, /* the text is a secret */
  AD__SECRET_URL,   /* a URL: its userinfo's password and credential-named query values */
  AD__SECRET_NAMED, /* "Name: value" (a header line): the value when the name is a credential's */
} ad__secret_kind_t;

/* Add (or count once more) the secrets `text` holds as `kind` says. NULL
 * text: nothing. Thread-safe. */
void ad__secret_add(ad__secret_kind_t kind, const char *text);

/* Undo one ad__secret_add of the same kind and text. */
void ad__secret_drop(ad__secret_kind_t kind, const char *text);

/* True when `name` (a header, query parameter or property name) is a
 * credential's: it ends with token, key, secret, password, passwd, pwd,
 * sign, signature, sig, auth, authorization, cookie, credential(s) or
 * session, case and '-', '.', '_' aside (X-Api-Key, access_token,
 * sasl.password). */
int ad__secret_name(const char *name);

/* Replace in place every secret in `text` (NUL-terminated) by "***".
 * Returns how many were replaced. */
size_t ad__redact(char *text);

/* "scheme://host:port" of `url`, without user info, path or query (which
 * may carry tokens): what a log line may name. Caller frees; NULL when not
 * a URL. */
char *ad__redact_origin(const char *url);

#endif
