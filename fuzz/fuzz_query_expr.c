/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_query_expr.c — the `dorm query` language and the compiler.
 *
 * The input is an expression such as
 * Entry.objects.filter(Q(rating__gte=4) | ~Q(author__name="x"))[1:5],
 * parsed by tools/query_expr.c (linked in from the tools) against the
 * blog models of fuzz_schema.h, then compiled for both dialects as a
 * plain query, a count, an exists and a first(), as `dorm query` does.
 * A refusal must carry a message; everything made is freed.
 */
#include "fuzz/fuzz_schema.h"
#include "tools/query_expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20)) return 0; /* deep nesting needs room */
  const dorm_schema *schema = fuzz_schema();
  char *text = fuzz_cstr(data, size);
  char err[512] = "";
  qx_result r;
  memset(&r, 0, sizeof r);
  if (qx_parse(schema, text, &r, err, sizeof err) == 0) {
    FUZZ_CHECK(r.q && r.model, "parsed without a query");
    fuzz_compile_all(r.q);
  } else {
    FUZZ_CHECK(err[0], "refusal without message: %s", text);
  }
  free(text);
  return 0;
}
