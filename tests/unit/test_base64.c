/*
 * Unit tests for base64: the RFC 4648 10 vectors both ways, output room at
 * the limit and one short of it, every strictness rule of the decoder, and
 * a roundtrip over all octet values and many lengths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "maild/base64.h"
#include "maild/error.h"

static const char *const vectors[][2] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_base64_vectors(void **state) {
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
    const char *plain = vectors[i][0], *enc = vectors[i][1];
    char out[16];
    uint8_t dec[16];

    assert_int_equal(maild_base64_encode((const uint8_t *)plain, strlen(plain),
                                         out, sizeof(out)),
                     strlen(enc));
    assert_string_equal(out, enc);
    assert_int_equal(maild_base64_decode(enc, strlen(enc), dec, sizeof(dec)),
                     strlen(plain));
    assert_memory_equal(dec, plain, strlen(plain));
  }
}

/* Encoding needs MAILD_BASE64_ENCODED_LEN(len) + 1 for the NUL. */
static void test_base64_encode_room(void **state) {
  char out[16];
  (void)state;

  assert_int_equal(maild_base64_encode((const uint8_t *)"foob", 4, out, 9), 8);
  assert_string_equal(out, "Zm9vYg==");
  assert_int_equal(maild_base64_encode((const uint8_t *)"foob", 4, out, 8),
                   MAILD_ERR_NOSPC);
  assert_int_equal(maild_base64_encode((const uint8_t *)"", 0, out, 1), 0);
  assert_string_equal(out, "");
  assert_int_equal(maild_base64_encode((const uint8_t *)"", 0, NULL, 0),
                   MAILD_ERR_NOSPC);
}

/* Decoding needs exactly the decoded length. */
static void test_base64_decode_room(void **state) {
  uint8_t out[8];
  (void)state;

  assert_int_equal(maild_base64_decode("Zm9vYg==", 8, out, 4), 4);
  assert_int_equal(maild_base64_decode("Zm9vYg==", 8, out, 3), MAILD_ERR_NOSPC);
  assert_int_equal(maild_base64_decode("Zm9vYmFy", 8, out, 6), 6);
  assert_int_equal(maild_base64_decode("Zm9vYmFy", 8, out, 5), MAILD_ERR_NOSPC);
  assert_int_equal(maild_base64_decode("", 0, NULL, 0), 0);
  /* A syntax error is reported whatever the room. */
  assert_int_equal(maild_base64_decode("Zm9vYmF!", 8, out, 0),
                   MAILD_ERR_SYNTAX);
}

static void test_base64_strict(void **state) {
  static const char *const bad[] = {
      "Zg=",  "Zg",    "Z",      "Zh==",     "Zm9=",      "Zg==Zg==",   "Z===",
      "====", "Zm 9v", "Zm9v\n", "Zm9v\r\n", "Zm-v",      "Zm_v",       "Zg=a",
      "Z=g=", "=Zg=",  " Zm9v",  "Zm9v====", "Zm9vYg=\n", "Zm9v\tYmFy",
  };
  uint8_t out[16];
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(
        maild_base64_decode(bad[i], strlen(bad[i]), out, sizeof(out)),
        MAILD_ERR_SYNTAX);
  assert_int_equal(maild_base64_decode("Zm\0v", 4, out, sizeof(out)),
                   MAILD_ERR_SYNTAX);
  /* Zero pad bits are the only spelling accepted. */
  assert_int_equal(maild_base64_decode("Zm8=", 4, out, sizeof(out)), 2);
  assert_int_equal(maild_base64_decode("Zm+/", 4, out, sizeof(out)), 3);
}

static void test_base64_roundtrip(void **state) {
  uint8_t in[300], dec[300];
  char enc[MAILD_BASE64_ENCODED_LEN(300) + 1];
  size_t len, i;
  (void)state;

  for (i = 0; i < sizeof(in); i++)
    in[i] = (uint8_t)(i * 7 + 3);
  for (len = 0; len <= sizeof(in); len++) {
    maild_ssize n = maild_base64_encode(in, len, enc, sizeof(enc));
    assert_int_equal(n, MAILD_BASE64_ENCODED_LEN(len));
    assert_true(MAILD_BASE64_DECODED_MAX((size_t)n) >= len);
    assert_int_equal(maild_base64_decode(enc, (size_t)n, dec, len), len);
    assert_memory_equal(dec, in, len);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base64_vectors),
      cmocka_unit_test(test_base64_encode_room),
      cmocka_unit_test(test_base64_decode_room),
      cmocka_unit_test(test_base64_strict),
      cmocka_unit_test(test_base64_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
