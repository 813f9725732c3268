/* tests/test_base.c — the error list, dorm_error, the buffer and arena. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror), cmocka_unit_test(test_first_error_wins),
      cmocka_unit_test(test_buf),      cmocka_unit_test(test_buf_oom_is_sticky),
      cmocka_unit_test(test_arena),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
