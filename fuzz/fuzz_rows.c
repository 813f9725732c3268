/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_rows.c — what a database answers, decoded into rows.
 *
 * backends/rows_build.c turns each value a backend reads (text in
 * PostgreSQL's format or SQLite's, integers, floats, bytes) into the type
 * of its column: booleans from "t"/"f", decimals padded to the field's
 * decimal places, date-times normalised to UTC, bytea from "\x...", uuids
 * lower-cased.  Here the columns are those of a compiled SELECT on a
 * model of the blog schema (fuzz_schema.h), with select_related, so every
 * field type is there, and the values are the fuzzer's: the input is
 * lines, each one value for the next column, its first byte saying how it
 * arrives (t text, f float, i integer, b bytes, n NULL; anything else is
 * text).  The finished rows are read back through every accessor and as
 * JSON.  A value that does not fit its column is a refusal (DORM_ETYPE
 * with a message), never a crash.
 */
#include <math.h>

#include "backends/backend_int.h"
#include "fuzz/fuzz_schema.h"

#define MAX_ROWS 4

static volatile unsigned sink; /* keeps the reads of read_back */

static void read_back(const dorm_rows *rows) {
  for (size_t i = 0; i < dorm_rows_count(rows); i++) {
    const dorm_row *row = dorm_rows_row(rows, i);
    for (size_t c = 0; c < dorm_rows_ncolumns(rows); c++) {
      const char *name = dorm_rows_column_name(rows, c);
      const dorm_value *v = dorm_row_value_at(row, c);
      if (!v || v->type == DORM_T_NULL) continue;
      if (v->type != DORM_T_LIST && v->type != DORM_T_EXPR &&
          v->type > DORM_T_FLOAT) {
        /* every text-like value is readable to its length */
        unsigned h = 0;
        for (size_t k = 0; k < v->u.s.len; k++)
          h += (unsigned char)v->u.s.ptr[k];
        sink += h;
      }
      int64_t got = dorm_row_int(row, name);
      if (v->type == DORM_T_FLOAT && dorm_row_value(row, name) == v) {
        /* floats truncate, saturating (dorm/rows.h) */
        double f = v->u.f;
        int64_t want = isnan(f)                      ? 0
                       : f >= 9223372036854775807.0  ? INT64_MAX
                       : f <= -9223372036854775808.0 ? INT64_MIN
                                                     : (int64_t)f;
        FUZZ_CHECK(got == want, "dorm_row_int(%g) = %lld", f, (long long)got);
      }
      (void)dorm_row_float(row, name);
      (void)dorm_row_bool(row, name);
      (void)dorm_row_text(row, name);
      size_t len;
      (void)dorm_row_bytes(row, name, &len);
      json_decref(dorm_row_json(row, name));
    }
  }
  json_t *j = dorm_rows_to_json(rows);
  if (j) {
    char *s = json_dumps(j, JSON_COMPACT);
    free(s);
    json_decref(j);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 16384) return 0;
  const dorm_schema *schema = fuzz_schema();
  const dorm_model *m = &schema->models[data[0] % schema->nmodels];
  dorm_query *q = dorm_select(m);
  for (size_t i = 0; i < m->nfields; i++)
    if (dorm_field_is_fk(&m->fields[i]))
      dorm_select_related(q, m->fields[i].name);
  dorm_sql sql;
  dorm_sql_init(&sql);
  if (dorm_compile(q, DORM_DIALECT_POSTGRES, &sql, NULL) != 0) abort();
  dorm__stmt st;
  memset(&st, 0, sizeof st);
  st.sql = sql.text;
  st.len = sql.len;
  st.columns = sql.columns;
  st.ncolumns = sql.ncolumns;
  st.related = sql.related;
  st.nrelated = sql.nrelated;
  st.returns_rows = 1;
  dorm_rows *r = dorm__rows_new(&st, 0);
  if (!r) abort();
  size_t width = dorm__rows_width(r), col = width, nrows = 0;
  const char *p = (const char *)data + 1, *end = (const char *)data + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (col == width) {
      if (nrows == MAX_ROWS || dorm__rows_add_row(r)) break;
      nrows++;
      col = 0;
    }
    /* an exact-size copy: a read past the value is an ASan finding */
    char *v = malloc(n ? n : 1);
    if (!v) abort();
    memcpy(v, p, n);
    char kind = n ? v[0] : 'n';
    int rc = 0;
    switch (kind) {
      case 'n': break;
      case 'f': {
        char buf[64];
        size_t k = n - 1 < sizeof buf - 1 ? n - 1 : sizeof buf - 1;
        memcpy(buf, v + 1, k);
        buf[k] = '\0';
        rc = dorm__rows_put_float(r, col, strtod(buf, NULL));
        break;
      }
      case 'i': {
        char buf[32];
        size_t k = n - 1 < sizeof buf - 1 ? n - 1 : sizeof buf - 1;
        memcpy(buf, v + 1, k);
        buf[k] = '\0';
        rc = dorm__rows_put_int(r, col, strtoll(buf, NULL, 10));
        break;
      }
      case 'b': rc = dorm__rows_put_bytes(r, col, v + 1, n - 1); break;
      case 't': rc = dorm__rows_put_text(r, col, v + 1, n - 1); break;
      default: rc = dorm__rows_put_text(r, col, v, n); break;
    }
    if (rc == DORM_ETYPE) {
      const char *msg = dorm__rows_error(r);
      FUZZ_CHECK(msg && msg[0], "type refusal without message");
    }
    free(v);
    col++;
    if (!nl) break;
    p = nl + 1;
  }
  if (dorm__rows_finish(r) == 0) read_back(r);
  dorm__rows_free(r);
  dorm_sql_free(&sql);
  dorm_query_free(q);
  return 0;
}
