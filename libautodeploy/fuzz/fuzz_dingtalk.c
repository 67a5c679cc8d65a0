/* fuzz_dingtalk.c - libFuzzer target for DingTalk's push (purchase/
 * dingtalk_crypto.c): the bytes the engine reads from the internet before
 * any token. A signature is checked before anything is decrypted, so random
 * input would stop there; the target signs (and, in one mode, seals) what
 * it is given, so that every check behind the signature sees arbitrary
 * bytes. The first byte picks the mode:
 *   0  the rest is the plaintext frame (random | length | message | owner |
 *      padding: any bytes, cut to whole AES blocks), sealed here with the
 *      key (OpenSSL, no padding of its own) and signed: the padding, the
 *      length field and the owner key see anything;
 *   1  the rest is the `encrypt` text, signed: base64 and block checks;
 *   2  the same, with a signature off by one digit: must be refused as
 *      forged before anything else.
 * Invariants (abort otherwise): no crash, leak or undefined behaviour; 0
 * only with a NUL-terminated message of the stated length; a refusal is
 * AD__DT_FORGED or AD_EINVAL with a reason. */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/encoding.h"
#include "purchase/dingtalk_crypto.h"

#define TOKEN "fuzz-token"
#define AES_KEY "BwkLDQ8RExUXGRsdHyEjJScpKy0vMTM1Nzk7PT9BQ0U"

static unsigned char *seal_raw(const uint8_t *p, size_t n, size_t *out_n)
{
  unsigned char key[33];
  size_t kn = 0;
  unsigned char *k = ad__b64_decode(AES_KEY "=", 44, &kn, NULL);
  if (!k || kn != 32)
    abort();
  memcpy(key, k, 32);
  free(k);
  n -= n % 16;
  unsigned char *out = malloc(n + 16);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ol = 0, fl = 0;
  if (!out || !ctx || EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, key) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
      EVP_EncryptUpdate(ctx, out, &ol, p, (int)n) != 1 || EVP_EncryptFinal_ex(ctx, out + ol, &fl) != 1)
    abort();
  EVP_CIPHER_CTX_free(ctx);
  *out_n = (size_t)(ol + fl);
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static ad__dt_crypto_t *c;
  if (!c && !(c = ad__dt_crypto_new(TOKEN, AES_KEY, "dingappkey123", "fuzz", NULL)))
    abort();
  if (size < 1 || size > 65536)
    return 0;
  int mode = data[0] % 3;
  char *enc = NULL;
  if (mode == 0) {
    size_t n = 0;
    unsigned char *raw = seal_raw(data + 1, size - 1, &n);
    enc = ad__b64_encode(raw, n);
    free(raw);
  } else if ((enc = malloc(size))) {
    memcpy(enc, data + 1, size - 1);
    enc[size - 1] = '\0'; /* a C string, as the JSON body's value is */
  }
  if (!enc)
    abort();
  char sig[41];
  ad__dt_signature(TOKEN, "1700000000000", "nonce", enc, sig);
  if (mode == 2)
    sig[7] = sig[7] == 'f' ? '0' : 'f';
  char *msg = NULL;
  size_t len = 0;
  ad_error_t err = {0};
  int rc = ad__dt_decrypt(c, sig, "1700000000000", "nonce", enc, &msg, &len, &err);
  if (rc == 0 && (!msg || msg[len] != '\0'))
    abort();
  if (rc != 0 && (msg || !err.message[0] || (rc != AD__DT_FORGED && rc != AD_EINVAL)))
    abort();
  if (mode == 2 && rc != AD__DT_FORGED)
    abort();
  free(msg);
  free(enc);
  return 0;
}
