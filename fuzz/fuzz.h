/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz.h — what the libFuzzer harnesses of fuzz/ share.
 *
 * Each harness defines LLVMFuzzerTestOneInput and is built twice: with
 * clang -fsanitize=fuzzer (make fuzz) and with the project's own compiler
 * and fuzz/replay.c as main() (make tests: build/tests/test_fuzz_<name>,
 * which replays the committed corpus and crash inputs).  Harnesses do no
 * I/O besides what the code under test does, keep no state between inputs
 * and free everything they make, so a leak is a finding too.  FUZZ_CHECK
 * is an invariant of the code under test: it aborts with a message, which
 * libFuzzer reports as a crash and the replay as a failure.
 */
#ifndef DORM_FUZZ_H
#define DORM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dorm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                               \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, __LINE__, \
              #cond);                                                       \
      fprintf(stderr, __VA_ARGS__);                                         \
      fputc('\n', stderr);                                                  \
      abort();                                                              \
    }                                                                       \
  } while (0)

/* A NUL-terminated copy of the input (malloc'd; the caller frees). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) abort();
  if (size) memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

/* A valid-looking value of type t, so lookups get past the type check and
 * reach the compiler; k varies it. */
static inline dorm_value fuzz_value(dorm_type t, int k) {
  switch (t) {
    case DORM_T_BOOL: return dorm_bool(k & 1);
    case DORM_T_INT: return dorm_int(k ? -k * 7 : 42);
    case DORM_T_FLOAT: return dorm_float(k * 0.5);
    case DORM_T_DECIMAL: return dorm_decimal(k ? "-12.50" : "3");
    case DORM_T_DATE: return dorm_date("2024-05-01");
    case DORM_T_TIME: return dorm_time("13:45:00");
    case DORM_T_DATETIME: return dorm_datetime("2024-05-01T13:45:00Z");
    case DORM_T_UUID: return dorm_uuid("123e4567-e89b-12d3-a456-426614174000");
    case DORM_T_JSON: return dorm_json_text("{\"a\":[1,2]}");
    case DORM_T_BYTES: return dorm_bytes("\0\1\2", 3);
    case DORM_T_TEXT: return dorm_str(k ? "x%_\\'\"" : "abc");
    default: return dorm_null();
  }
}

/* Compile q for both dialects (plain, count, exists, first) and render it;
 * refusals are fine, crashes and leaks are not.  Frees q. */
static inline void fuzz_compile_all(dorm_query *q) {
  if (!q) return;
  dorm_sql sql;
  dorm_sql_init(&sql);
  for (int d = 0; d < 2; d++) {
    dorm_error err;
    dorm_error_clear(&err);
    if (dorm_compile(q, (dorm_dialect)d, &sql, &err) == 0) {
      FUZZ_CHECK(sql.len == strlen(sql.text), "SQL holds a NUL");
      char *txt = dorm_sql_describe(&sql, (dorm_dialect)d);
      free(txt);
    } else {
      FUZZ_CHECK(err.code != 0 && err.message[0], "refusal without message");
      FUZZ_CHECK(sql.len == 0, "failed compile left a statement");
    }
    if (dorm_query_kind_of(q) == DORM_QUERY_SELECT) {
      static const unsigned flags[] = {DORM_COMPILE_COUNT, DORM_COMPILE_EXISTS,
                                       DORM_COMPILE_ORDER_PK};
      for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        dorm_compile_opts o = {.flags = flags[i], .limit = (int64_t)i};
        dorm_error_clear(&err);
        (void)dorm_compile_ex(q, (dorm_dialect)d, &o, &sql, &err);
      }
    }
  }
  dorm_sql_free(&sql);
  dorm_query_free(q);
}

#endif /* DORM_FUZZ_H */
