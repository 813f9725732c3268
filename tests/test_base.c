/* SPDX-License-Identifier: MIT */
/* tests/test_base.c — the error list, dorm_error, the buffer and arena. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/base_int.h"
#include "dorm.h"
#include "support/support.h"

static void test_strerror(void **state) {
  (void)state;
  assert_string_equal(dorm_strerror(DORM_ENOMEM), "out of memory");
  assert_string_equal(dorm_err_name(DORM_ECANCELED), "DORM_ECANCELED");
  assert_string_equal(dorm_strerror(0), "success");
  assert_string_equal(dorm_strerror(12345), "unknown error");
  assert_true(DORM_ETIMEDOUT < 0);
}

static void test_first_error_wins(void **state) {
  (void)state;
  dorm_error e;
  dorm_error_clear(&e);
  assert_int_equal(dorm_error_set(&e, DORM_EFIELD, "model '%s'", "Author"),
                   DORM_EFIELD);
  dorm_error_set(&e, DORM_ETYPE, "second");
  assert_int_equal(e.code, DORM_EFIELD);
  assert_string_equal(e.message, "model 'Author'");
}

/* An error message is valid UTF-8 whatever it quotes: a character cut by
 * a %.Ns or by the end of the buffer, or a byte that starts no character,
 * becomes '?', so the message can travel as JSON text. */
static void test_error_message_utf8(void **state) {
  (void)state;
  dorm_error e;
  dorm_error_clear(&e);
  dorm_error_set(&e, DORM_EINVAL, "a %.1s b \xff c %s", "\xc3\xa9", "\xc3\xa9");
  assert_string_equal(e.message, "a ? b ? c \xc3\xa9");
  char long_text[2 * DORM_ERROR_MSG_MAX];
  for (size_t i = 0; i + 1 < sizeof long_text; i += 2)
    memcpy(long_text + i, "\xc3\xa9", 2);
  long_text[sizeof long_text - 1] = '\0';
  dorm_error_clear(&e);
  dorm_error_set(&e, DORM_EINVAL, "%s", long_text); /* cut mid-character */
  size_t n = strlen(e.message);
  assert_true(n == sizeof e.message - 1);
  assert_int_equal(e.message[n - 1], '?');
  assert_int_equal((unsigned char)e.message[n - 2], 0xa9);
}

static void test_buf(void **state) {
  (void)state;
  dorm__buf b;
  dorm__buf_init(&b);
  dorm__buf_puts(&b, "SELECT ");
  dorm__buf_put_int(&b, -9223372036854775807LL - 1);
  dorm__buf_printf(&b, " %s", "x");
  assert_string_equal(dorm__buf_cstr(&b), "SELECT -9223372036854775808 x");
  for (int i = 0; i < 1000; i++) dorm__buf_putc(&b, 'a');
  assert_int_equal(b.len, 29 + 1000);
  dorm__buf_free(&b);
}

static void test_buf_oom_is_sticky(void **state) {
  (void)state;
  dorm__buf b;
  dorm__buf_init(&b);
  dorm_test_fail_alloc_at(1);
  dorm__buf_puts(&b, "x");
  dorm_test_alloc_reset();
  dorm__buf_puts(&b, "y"); /* would succeed, but the failure is sticky */
  assert_true(b.oom);
  assert_int_equal(b.len, 0);
  dorm__buf_free(&b);
}

static void test_arena(void **state) {
  (void)state;
  char inl[64];
  dorm__arena a;
  dorm__arena_init(&a, inl, sizeof inl);
  char *s = dorm__arena_strndup(&a, "hello", 5);
  assert_ptr_equal(s, inl);
  void *big = dorm__arena_alloc(&a, 10000);
  assert_non_null(big);
  memset(big, 1, 10000);
  dorm__arena_reset(&a);
  assert_ptr_equal(dorm__arena_alloc(&a, 8), inl);
  dorm__arena_free(&a);
}

/* The canonical JSON text (base/json_canon.c): what SQLite stores and
 * compares, so equal documents must give equal text. */
static void expect_canon(const char *in, const char *want) {
  char *out, why[128];
  size_t n;
  int rc = dorm__json_canon(in, strlen(in), &out, &n, why, sizeof why);
  if (rc) fail_msg("'%s': %s", in, why);
  assert_string_equal(out, want);
  assert_int_equal(n, strlen(want));
  dorm__free(out);
}

static void expect_not_json(const char *in) {
  char *out, why[128];
  size_t n;
  assert_int_equal(dorm__json_canon(in, strlen(in), &out, &n, why, sizeof why),
                   DORM_EJSON);
  assert_null(out);
  assert_true(why[0] != '\0');
}

static void test_json_canon(void **state) {
  (void)state;
  expect_canon(" { \"b\" : 1 , \"a\" : [ true, null, false ] } ",
               "{\"a\":[true,null,false],\"b\":1}");
  expect_canon("{\"a\":1,\"a\":2}", "{\"a\":2}"); /* last wins */
  expect_canon("{\"\":0,\"ab\":{},\"a\":[]}", "{\"\":0,\"a\":[],\"ab\":{}}");
  expect_canon("[1.0, 1e2, -0, 0.000, 1.50, 12e-1, 0.1, -2.5E+3]",
               "[1,100,0,0,1.5,1.2,0.1,-2500]");
  expect_canon("[123456789012345678901234567890.000000000000000000001]",
               "[123456789012345678901234567890.000000000000000000001]");
  expect_canon("[1e100, 1e-30, 0.00001]", "[1e100,1e-30,0.00001]");
  expect_canon("\"\\u0041\\/\\n\\u00e9\\ud83d\\ude00\\u001f\"",
               "\"A/\\n\xc3\xa9\xf0\x9f\x98\x80\\u001f\"");
  expect_canon("\"x\"", "\"x\"");
  expect_not_json("");
  expect_not_json("{\"a\":}");
  expect_not_json("[1,]");
  expect_not_json("01");
  expect_not_json("1.");
  expect_not_json("\"\\ud800\"");
  expect_not_json("\"\xff\"");
  expect_not_json("[1] 2");
  expect_not_json("nul");
  expect_not_json("1e999999999999");
}

/* A double as the shortest decimal text that reads back as it, and as 15
 * significant digits to a field's places (SQLite's decimals). */
static void test_double_decimal(void **state) {
  (void)state;
  char b[400];
  static const struct {
    double x;
    const char *want;
  } shortest[] = {{95.26, "95.26"},
                  {0.1, "0.1"},
                  {-2.5, "-2.5"},
                  {0.0, "0"},
                  {-0.0, "0"},
                  {1e21, "1000000000000000000000"},
                  {1e-7, "0.0000001"},
                  {123456789.0, "123456789"},
                  {0.30000000000000004, "0.30000000000000004"}};
  for (size_t i = 0; i < sizeof shortest / sizeof shortest[0]; i++) {
    assert_true(dorm__double_decimal(shortest[i].x, b, sizeof b) > 0);
    assert_string_equal(b, shortest[i].want);
  }
  assert_int_equal(dorm__double_decimal(1.0 / 0.0, b, sizeof b), -1);
  static const struct {
    double x;
    int places;
    const char *want;
  } fifteen[] = {{95.26, 2, "95.26"},
                 {12.5, 2, "12.50"},
                 {0.30000000000000004, 2, "0.30"},
                 {1234567890123.45, 2, "1234567890123.45"},
                 {-0.001, 2, "0.00"},
                 {-0.05, 2, "-0.05"},
                 {0.1, 20, "0.10000000000000000000"},
                 {1e21, 2, "1000000000000000000000.00"},
                 {7.0, 0, "7"},
                 {2.5, -1, "2.5"}};
  for (size_t i = 0; i < sizeof fifteen / sizeof fifteen[0]; i++) {
    assert_true(dorm__double_decimal15(fifteen[i].x, fifteen[i].places, b,
                                       sizeof b) > 0);
    assert_string_equal(b, fifteen[i].want);
  }
  dorm__decdigits d;
  dorm__decimal_digits("-00123.4500", 11, &d);
  assert_int_equal(d.whole, 3);
  assert_int_equal(d.frac, 4);
  assert_int_equal(d.sig, 5);
  assert_int_equal(d.lead, 3);
  dorm__decimal_digits("0.05", 4, &d);
  assert_int_equal(d.lead, -1);
  assert_int_equal(d.sig, 1);
  dorm__decimal_digits("0.00", 4, &d);
  assert_int_equal(d.sig, 0);
}

/* the run-time version is the one the headers say, in both forms */
static void test_version(void **state) {
  (void)state;
  assert_string_equal(dorm_version(), DORM_VERSION_STRING);
  assert_string_equal(DORM_VERSION, DORM_VERSION_STRING);
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", DORM_VERSION_MAJOR,
           DORM_VERSION_MINOR, DORM_VERSION_PATCH);
  assert_string_equal(dorm_version(), want);
  assert_int_equal(dorm_version_number(), DORM_VERSION_HEX);
  assert_int_equal(dorm_version_number(), (unsigned)DORM_VERSION_MAJOR << 16 |
                                              DORM_VERSION_MINOR << 8 |
                                              DORM_VERSION_PATCH);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_canon),
      cmocka_unit_test(test_double_decimal),
      cmocka_unit_test(test_strerror),
      cmocka_unit_test(test_first_error_wins),
      cmocka_unit_test(test_error_message_utf8),
      cmocka_unit_test(test_buf),
      cmocka_unit_test(test_buf_oom_is_sticky),
      cmocka_unit_test(test_arena),
      cmocka_unit_test(test_version),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
