/* dingtalk_crypto.h - the crypto of DingTalk's encrypted HTTP event push
 * ("HTTP 推送" event subscription), as DingTalk's own DingCallbackCrypto
 * does it (github.com/open-dingtalk/DingTalk-Callback-Crypto):
 *
 *   POST <callback URL>?msg_signature=<s>&timestamp=<t>&nonce=<n>
 *   {"encrypt": "<base64>"}
 *
 *   signature  lowercase hex SHA-1 of the concatenation of token, timestamp,
 *              nonce and encrypt, sorted as byte strings
 *   key        base64decode(aes_key + "="): the 43-character EncodingAESKey
 *              gives 32 bytes (AES-256); the IV is its first 16 bytes
 *   encrypt    base64(AES-256-CBC(random(16) | length (4 bytes, big-endian)
 *              | message | owner key | PKCS#7 padding to a multiple of 32))
 *   owner key  the app's AppKey (an internal app's event subscription), the
 *              corpId or a suiteKey (older and third-party registrations)
 *
 * The answer to every push is the "encrypted map" of the text "success":
 * {"msg_signature", "timeStamp", "nonce", "encrypt"}.
 *
 * Pure: no I/O, no clock (the answer's timestamp and nonce are given), so
 * tests/purchase/test_dingtalk_crypto.c checks it against vectors made by an
 * independent implementation. The context is immutable once made: any
 * thread may use it. The token and the key never reach an error message. */
#ifndef AD_PURCHASE_DINGTALK_CRYPTO_H
#define AD_PURCHASE_DINGTALK_CRYPTO_H

#include <jansson.h>
#include <stddef.h>

#include "autodeploy/common.h"

typedef struct ad__dt_crypto ad__dt_crypto_t;

/* Copies the three strings. `where` names the configuration key in errors
 * ("purchase.approval.dingtalk.callback"). NULL + AD_ECONFIG naming the
 * key: an empty token or owner key, an aes_key that is not 43 characters of
 * the base64 alphabet. */
ad__dt_crypto_t *ad__dt_crypto_new(const char *token, const char *aes_key, const char *owner_key,
                                   const char *where, ad_error_t *err);
/* Wipes the token and the key. NULL-safe; sets *c_p to NULL. */
void ad__dt_crypto_destroy(ad__dt_crypto_t **c_p);

/* The signature of one push: `out` gets 40 lowercase hex digits + NUL. */
void ad__dt_signature(const char *token, const char *timestamp, const char *nonce,
                      const char *encrypt, char out[41]);

/* What ad__dt_decrypt returns when the push is not authentic for us. */
#define AD__DT_FORGED 1

/* Check the signature (in constant time) over `encrypt`, then decrypt it.
 *   0              *msg (caller frees; NUL-terminated, *len without it)
 *   AD__DT_FORGED  the signature does not match, or the message was
 *                  sealed for another owner key; *err says which
 *   AD_EINVAL      it cannot be decrypted: not base64, a length that is
 *                  no whole number of AES blocks, bad padding, a length
 *                  field past the end; *err says which
 *   AD_ENOMEM */
int ad__dt_decrypt(const ad__dt_crypto_t *c, const char *signature, const char *timestamp,
                   const char *nonce, const char *encrypt, char **msg, size_t *len,
                   ad_error_t *err);

/* Seal `msg` (`len` bytes) for the owner key: the `encrypt` text (caller
 * frees). `random16`: the 16 leading bytes, or NULL for 16 fresh random
 * alphanumerics (as DingTalk's SDK). NULL on no memory or a crypto error. */
char *ad__dt_encrypt(const ad__dt_crypto_t *c, const char *random16, const char *msg,
                     size_t len, ad_error_t *err);

/* The encrypted map of `text` ("success"): {"msg_signature", "timeStamp",
 * "nonce", "encrypt"}, a new object. `timestamp` (DingTalk's SDK: epoch
 * ms) is required; `nonce` and `random16` NULL: fresh ones. */
json_t *ad__dt_encrypted_map(const ad__dt_crypto_t *c, const char *text, const char *timestamp,
                             const char *nonce, const char *random16, ad_error_t *err);

#endif
