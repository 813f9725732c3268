/* SPDX-License-Identifier: MIT */
/* tests/test_bulk.c — the bulk writes on every backend (tests/dbsuite.h):
 * bulk_create big enough to go by COPY on PostgreSQL, with every field
 * type read back exactly (compared with the same rows inserted by
 * INSERT ... RETURNING, and with the values given); a bad value half-way
 * (nothing left, the error naming the row); a COPY whose connection is
 * killed; bulk_create_returning (keys and defaults, in order, across
 * chunks); bulk_update over several chunks, and one that fails in its
 * last chunk (nothing changed).
 */
#include "dbsuite.h"

static int is_pg(void) { return dorm_db_dialect(DB) == DORM_DIALECT_POSTGRES; }

static dorm_result t_pass(dorm_result *res, void *arg) {
  (void)arg;
  return *res;
}

/* ---- rows of every type -----------------------------------------------------
 */

enum { NCOPY = 1200 }; /* more than one INSERT statement (500): COPY */

static char g_names[NCOPY][64];
static unsigned char g_bytes[NCOPY][8];

static void author_row(dorm_query *q, int i, const char *set) {
  static const char *const texts[] = {"back\\slash\ttab\nnewline\rcr",
                                      "\xc3\xbc"
                                      "n\xc3\xaf"
                                      "c\xc3\xb8"
                                      "d\xc3\xa9 'q' \"dq\"",
                                      "\\N",
                                      "",
                                      "\\.",
                                      "x\\\\y"};
  if (i % 7 < 6)
    snprintf(g_names[i], sizeof g_names[i], "%s", texts[i % 7]);
  else
    snprintf(g_names[i], sizeof g_names[i], "name %d", i);
  dorm_set(q, "name", dorm_str(g_names[i]));
  dorm_set(q, "age", i % 9 == 0 ? dorm_null() : dorm_int(i - 500));
  char email[64];
  snprintf(email, sizeof email, "e%d@%s.example", i, set);
  dorm_set(q, "email", i % 3 == 0 ? dorm_null() : dorm_str(email));
  static const char *const when[] = {"2024-05-01T13:45:07.123456Z",
                                     "2024-02-29T23:59:59+02:00",
                                     "1999-12-31T00:00:00Z"};
  dorm_set(q, "joined", i % 4 == 3 ? dorm_null() : dorm_datetime(when[i % 4]));
  dorm_set(q, "bio", dorm_str(i % 2 ? "tab\there" : ""));
  static const char *const dec[] = {"12.50", "-0.01", "999999.99", "0.00"};
  dorm_set(q, "score", i % 5 == 4 ? dorm_null() : dorm_decimal(dec[i % 4]));
  dorm_set(q, "active", dorm_bool(i % 2));
  char uid[40];
  snprintf(uid, sizeof uid, "123e4567-e89b-12d3-a456-%012d", i);
  dorm_set(q, "uid", dorm_uuid(uid));
  dorm_set(q, "data",
           i % 6 == 0
               ? dorm_null()
               : dorm_json_text("{\"a\": [1, \"x\\ty\\\\z\"], \"n\": null}"));
  dorm_set(q, "wake",
           i % 2 ? dorm_time("13:45:00.123456") : dorm_time("00:00:00"));
  dorm_set(q, "born", i % 8 == 0 ? dorm_null() : dorm_date("2000-02-29"));
  unsigned char *b = g_bytes[i];
  b[0] = 0, b[1] = '\\', b[2] = '\t', b[3] = '\n', b[4] = 0xff, b[5] = 'N';
  b[6] = (unsigned char)i, b[7] = '\r';
  dorm_set(q, "avatar", i % 10 == 0 ? dorm_null() : dorm_bytes(b, 8));
}

static dorm_query *authors(int n, const char *set) {
  dorm_query *q = dorm_insert(Author);
  for (int i = 0; i < n; i++) {
    if (i) dorm_insert_next_row(q);
    author_row(q, i, set);
  }
  assert_int_equal(dorm_query_error(q, NULL), 0);
  return q;
}

static int same_value(const dorm_value *a, const dorm_value *b) {
  if (a->type != b->type) return 0;
  switch (a->type) {
    case DORM_T_NULL: return 1;
    case DORM_T_BOOL: return a->u.b == b->u.b;
    case DORM_T_INT: return a->u.i == b->u.i;
    case DORM_T_FLOAT: return a->u.f == b->u.f;
    default:
      return a->u.s.len == b->u.s.len &&
             !memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len);
  }
}

static void test_copy_every_type(void **state) {
  (void)state;
  /* by COPY on PostgreSQL (more rows than one INSERT takes) ... */
  dorm_query *q = authors(NCOPY, "copy");
  assert_int_equal(t_count(dorm_async_bulk_create(DB, q)), NCOPY);
  dorm_query_free(q);
  /* ... and the same rows by INSERT ... RETURNING: both read back alike */
  q = authors(NCOPY, "ins");
  dorm_result r = t_ok(dorm_async_bulk_create_returning(DB, q));
  dorm_query_free(q);
  assert_int_equal(dorm_rows_count(r.u.rows.rows), NCOPY);
  dorm_result_free(&r);

  q = dorm_select(Author);
  dorm_order_by(q, "id");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  const dorm_rows *rows = r.u.rows.rows;
  assert_int_equal(dorm_rows_count(rows), 2 * NCOPY);
  size_t nc = dorm_rows_ncolumns(rows);
  int email = dorm_rows_column_index(rows, "email");
  int id = dorm_rows_column_index(rows, "id");
  for (int i = 0; i < NCOPY; i++) {
    const dorm_row *a = dorm_rows_row(rows, (size_t)i);
    const dorm_row *b = dorm_rows_row(rows, (size_t)(i + NCOPY));
    for (size_t c = 0; c < nc; c++) {
      if ((int)c == email || (int)c == id) continue;
      if (!same_value(dorm_row_value_at(a, c), dorm_row_value_at(b, c))) {
        fprintf(stderr, "row %d, column %s differs\n", i,
                dorm_rows_column_name(rows, c));
        fail();
      }
    }
    /* and as given */
    assert_string_equal(dorm_row_text(a, "name"), g_names[i]);
    if (i % 10) {
      size_t n = 0;
      const void *p = dorm_row_bytes(a, "avatar", &n);
      assert_int_equal(n, 8);
      assert_memory_equal(p, g_bytes[i], 8);
    } else {
      assert_true(dorm_row_is_null(a, "avatar"));
    }
    assert_int_equal(dorm_row_is_null(a, "age"), i % 9 == 0);
    if (i % 9) assert_int_equal(dorm_row_int(a, "age"), i - 500);
    assert_int_equal(dorm_row_bool(a, "active"), i % 2);
  }
  const dorm_row *a1 = dorm_rows_row(rows, 1);
  assert_string_equal(dorm_row_text(a1, "score"), "-0.01");
  assert_string_equal(dorm_row_text(a1, "bio"), "tab\there");
  assert_string_equal(dorm_row_text(a1, "uid"),
                      "123e4567-e89b-12d3-a456-000000000001");
  assert_string_equal(dorm_row_text(a1, "born"), "2000-02-29");
  assert_string_equal(dorm_row_text(a1, "wake"), "13:45:00.123456");
  assert_string_equal(dorm_row_text(dorm_rows_row(rows, 0), "joined"),
                      "2024-05-01T13:45:07.123456Z");
  /* +02:00 stored as the same instant, read back in UTC */
  assert_string_equal(dorm_row_text(a1, "joined"), "2024-02-29T21:59:59Z");
  dorm_result_free(&r);

  /* floats exactly, and a foreign key, through Entry */
  static const double fl[] = {0.1,       1e-300, -2.5e10,
                              1.0 / 3.0, 0.0,    123456789.123456789};
  int64_t author = add_author("owner", 1, NULL);
  q = dorm_insert(Entry);
  for (int i = 0; i < 700; i++) {
    if (i) dorm_insert_next_row(q);
    dorm_set(q, "author", dorm_int(author));
    dorm_set(q, "headline", dorm_str(i % 2 ? "h\\t\t" : "plain"));
    dorm_set(q, "rating", dorm_float(fl[i % 6] * (i + 1)));
  }
  assert_int_equal(t_count(dorm_async_bulk_create(DB, q)), 700);
  dorm_query_free(q);
  q = dorm_select(Entry);
  dorm_order_by(q, "id");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  assert_int_equal(dorm_rows_count(r.u.rows.rows), 700);
  for (int i = 0; i < 700; i++) {
    const dorm_row *e = dorm_rows_row(r.u.rows.rows, (size_t)i);
    assert_true(dorm_row_float(e, "rating") == fl[i % 6] * (i + 1));
    assert_string_equal(dorm_row_text(e, "headline"),
                        i % 2 ? "h\\t\t" : "plain");
    assert_int_equal(dorm_row_int(e, "author"), author);
  }
  dorm_result_free(&r);
}

/* ---- failures -------------------------------------------------------------
 */

static int64_t count_of(const dorm_model *m) {
  dorm_query *q = dorm_select(m);
  int64_t n = t_count(dorm_async_count(DB, q));
  dorm_query_free(q);
  return n;
}

static dorm_query *tags(int n, const char *fmt, int dup_at) {
  dorm_query *q = dorm_insert(Tag);
  for (int i = 0; i < n; i++) {
    char name[32];
    if (i) dorm_insert_next_row(q);
    snprintf(name, sizeof name, fmt, i == dup_at ? 0 : i);
    dorm_set(q, "name", dorm_str(name));
  }
  return q;
}

static void test_copy_bad_value_halfway(void **state) {
  (void)state;
  /* row 700 repeats row 0's unique name: nothing may stay */
  dorm_query *q = tags(1500, "t%04d", 700);
  char msg[512];
  assert_int_equal(t_err(dorm_async_bulk_create(DB, q), msg, sizeof msg),
                   DORM_EINTEGRITY);
  dorm_query_free(q);
  assert_int_equal(count_of(Tag), 0);
  if (is_pg()) {
    /* COPY's own context names the line (row 700 is line 701) */
    if (!strstr(msg, "COPY tag, line 701")) {
      fprintf(stderr, "message: %s\n", msg);
      fail();
    }
    /* a value the server refuses for its type: an age beyond int4 */
    q = dorm_insert(Author);
    for (int i = 0; i < 900; i++) {
      if (i) dorm_insert_next_row(q);
      dorm_set(q, "name", dorm_str("n"));
      dorm_set(q, "age", dorm_int(i == 800 ? (int64_t)1 << 40 : i));
    }
    /* SQLSTATE 22003, numeric value out of range */
    assert_int_equal(t_err(dorm_async_bulk_create(DB, q), msg, sizeof msg),
                     DORM_ERANGE);
    dorm_query_free(q);
    if (!strstr(msg, "line 801, column age")) {
      fprintf(stderr, "message: %s\n", msg);
      fail();
    }
    assert_int_equal(count_of(Author), 0);
  }
  /* the database is fine afterwards */
  q = tags(600, "ok%04d", -1);
  assert_int_equal(t_count(dorm_async_bulk_create(DB, q)), 600);
  dorm_query_free(q);
  assert_int_equal(count_of(Tag), 600);
  if (is_pg()) {
    /* text with a NUL byte cannot be sent (SQLite stores it): the COPY is
     * aborted from this side, naming the row, and nothing stays */
    q = dorm_insert(Tag);
    for (int i = 0; i < 700; i++) {
      char name[32];
      if (i) dorm_insert_next_row(q);
      snprintf(name, sizeof name, "nul%04d", i);
      dorm_set(q, "name", i == 650 ? dorm_strn("a\0b", 3) : dorm_str(name));
    }
    assert_int_equal(t_err(dorm_async_bulk_create(DB, q), msg, sizeof msg),
                     DORM_ETYPE);
    dorm_query_free(q);
    assert_non_null(strstr(msg, "COPY row 650, column 1"));
    assert_int_equal(count_of(Tag), 600);
  }
  /* a big COPY failing early: the server answers while rows are still
   * being sent (it discards them); the error is the server's, not a lost
   * connection */
  q = tags(60000, "b%05d", 5);
  assert_int_equal(t_err(dorm_async_bulk_create(DB, q), msg, sizeof msg),
                   DORM_EINTEGRITY);
  dorm_query_free(q);
  if (is_pg()) assert_non_null(strstr(msg, "line 6"));
  assert_int_equal(count_of(Tag), 600);
}

/* PostgreSQL: the COPY's connection is killed while the COPY runs (held
 * on a lock the test takes, so the kill lands inside it). */
static void test_copy_killed(void **state) {
  (void)state;
  if (strcmp(B->name, "postgresql")) skip();
  char ci[1024];
  snprintf(ci, sizeof ci, "%s", T_url);
  PGconn *admin = PQconnectdb(ci);
  assert_int_equal(PQstatus(admin), CONNECTION_OK);
  PGresult *pr =
      PQexec(admin, "BEGIN; LOCK TABLE tag IN ACCESS EXCLUSIVE MODE");
  assert_int_equal(PQresultStatus(pr), PGRES_COMMAND_OK);
  PQclear(pr);
  dorm_query *q = tags(2000, "k%04d", -1);
  dorm_deferred *d = dorm_async_bulk_create(DB, q);
  dorm_query_free(q);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
  /* wait until the COPY waits for the lock, then kill its session */
  PGconn *killer = PQconnectdb(dorm_test_pg_conninfo());
  assert_int_equal(PQstatus(killer), CONNECTION_OK);
  long killed = 0;
  for (int tries = 0; tries < 500 && !killed && !w.done; tries++) {
    t_run_for(5);
    pr = PQexec(killer,
                "SELECT count(pg_terminate_backend(pid)) FROM "
                "pg_stat_activity WHERE query LIKE 'COPY \"tag\"%' AND "
                "wait_event_type = 'Lock'");
    killed = atol(PQgetvalue(pr, 0, 0));
    PQclear(pr);
  }
  PQfinish(killer);
  assert_int_equal(killed, 1);
  while (!w.done) uv_run(&T_uv, UV_RUN_ONCE);
  assert_true(dorm_result_is_error(&w.res));
  assert_int_equal(dorm_result_code(&w.res), DORM_ECONN);
  dorm_result_free(&w.res);
  pr = PQexec(admin, "ROLLBACK");
  PQclear(pr);
  PQfinish(admin);
  /* nothing stayed, and the next COPY works on a fresh connection */
  assert_int_equal(count_of(Tag), 0);
  q = tags(800, "z%04d", -1);
  assert_int_equal(t_count(dorm_async_bulk_create(DB, q)), 800);
  dorm_query_free(q);
  assert_int_equal(count_of(Tag), 800);
}

/* PostgreSQL: a COPY cancelled while it runs stops on the server, fails
 * its deferred with DORM_ECANCELED, leaves nothing, and the connection
 * goes on (back in pipeline mode). */
static void test_copy_cancelled(void **state) {
  (void)state;
  if (strcmp(B->name, "postgresql")) skip();
  PGconn *admin = PQconnectdb(T_url);
  assert_int_equal(PQstatus(admin), CONNECTION_OK);
  PGresult *pr =
      PQexec(admin, "BEGIN; LOCK TABLE tag IN ACCESS EXCLUSIVE MODE");
  assert_int_equal(PQresultStatus(pr), PGRES_COMMAND_OK);
  PQclear(pr);
  dorm_query *q = tags(2000, "c%04d", -1);
  dorm_deferred *d = dorm_async_bulk_create(DB, q);
  dorm_query_free(q);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
  PGconn *watch = PQconnectdb(dorm_test_pg_conninfo());
  long waiting = 0;
  for (int tries = 0; tries < 500 && !waiting && !w.done; tries++) {
    t_run_for(5);
    pr = PQexec(watch,
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                "'COPY \"tag\"%' AND wait_event_type = 'Lock'");
    waiting = atol(PQgetvalue(pr, 0, 0));
    PQclear(pr);
  }
  assert_int_equal(waiting, 1);
  dorm_deferred_cancel(d);
  while (!w.done) uv_run(&T_uv, UV_RUN_ONCE);
  assert_int_equal(dorm_result_code(&w.res), DORM_ECANCELED);
  dorm_result_free(&w.res);
  /* the server stopped it: no COPY left waiting */
  for (int tries = 0; tries < 200; tries++) {
    pr = PQexec(watch,
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                "'COPY \"tag\"%' AND state = 'active'");
    waiting = atol(PQgetvalue(pr, 0, 0));
    PQclear(pr);
    if (!waiting) break;
    t_run_for(5);
  }
  assert_int_equal(waiting, 0);
  PQfinish(watch);
  pr = PQexec(admin, "ROLLBACK");
  PQclear(pr);
  PQfinish(admin);
  assert_int_equal(count_of(Tag), 0);
  q = tags(700, "y%04d", -1);
  assert_int_equal(t_count(dorm_async_bulk_create(DB, q)), 700);
  dorm_query_free(q);
  assert_int_equal(count_of(Tag), 700);
}

/* A COPY inside a transaction: it is part of it (committed with it,
 * rolled back with it). */
static dorm_deferred *copy_then_fail(dorm_db *tx, void *arg) {
  int *fail = arg;
  dorm_query *q = tags(900, "a%04d", -1);
  dorm_deferred *d = dorm_async_bulk_create(tx, q);
  dorm_query_free(q);
  if (!*fail) return d;
  dorm_deferred_add_callback(d, t_pass, NULL);
  return dorm_async_execute(tx, "SELECT * FROM no_such_table", NULL, 0);
}

static void test_copy_in_transaction(void **state) {
  (void)state;
  int fail = 1;
  assert_true(t_err(dorm_async_atomic(DB, copy_then_fail, &fail), NULL, 0) !=
              0);
  assert_int_equal(count_of(Tag), 0);
  fail = 0;
  dorm_result r = t_ok(dorm_async_atomic(DB, copy_then_fail, &fail));
  assert_int_equal(r.kind, DORM_RESULT_COUNT);
  assert_int_equal(r.u.count, 900);
  dorm_result_free(&r);
  assert_int_equal(count_of(Tag), 900);
}

/* ---- bulk_create returning ------------------------------------------------
 */

static void test_create_returning(void **state) {
  (void)state;
  enum { N = 1234 }; /* three INSERT chunks of 500 */
  dorm_query *q = dorm_insert(Author);
  for (int i = 0; i < N; i++) {
    char name[32];
    if (i) dorm_insert_next_row(q);
    snprintf(name, sizeof name, "r%04d", N - i); /* not sorted by name */
    dorm_set(q, "name", dorm_str(name));
    dorm_set(q, "age", dorm_int(i));
  }
  dorm_result r = t_ok(dorm_async_bulk_create_returning(DB, q));
  dorm_query_free(q);
  assert_int_equal(r.kind, DORM_RESULT_ROWS);
  const dorm_rows *rows = r.u.rows.rows;
  assert_int_equal(dorm_rows_count(rows), N);
  int64_t last = 0;
  for (int i = 0; i < N; i++) {
    const dorm_row *row = dorm_rows_row(rows, (size_t)i);
    char name[32];
    snprintf(name, sizeof name, "r%04d", N - i);
    assert_string_equal(dorm_row_text(row, "name"), name);
    assert_int_equal(dorm_row_int(row, "age"), i);
    /* the key the database gave, in input order */
    int64_t id = dorm_row_int(row, "id");
    assert_true(id > last);
    last = id;
    /* the model's defaults */
    assert_string_equal(dorm_row_text(row, "country"), "US");
    assert_int_equal(dorm_row_bool(row, "active"), 1);
    assert_string_equal(dorm_row_text(row, "bio"), "");
    assert_true(dorm_row_is_null(row, "email"));
  }
  /* the keys are the stored rows' */
  const dorm_row *mid = dorm_rows_row(rows, 777);
  q = dorm_select(Author);
  dorm_filter(q, "id", dorm_int(dorm_row_int(mid, "id")));
  dorm_result g = t_ok(dorm_async_get(DB, q));
  dorm_query_free(q);
  assert_string_equal(dorm_row_text(g.u.row.row, "name"),
                      dorm_row_text(mid, "name"));
  dorm_result_free(&g);
  dorm_result_free(&r);

  /* a failure in a later chunk: nothing created */
  q = tags(1100, "x%04d", 1050);
  assert_int_equal(t_err(dorm_async_bulk_create_returning(DB, q), NULL, 0),
                   DORM_EINTEGRITY);
  dorm_query_free(q);
  assert_int_equal(count_of(Tag), 0);
  /* not an insert */
  q = dorm_select(Tag);
  assert_int_equal(t_err(dorm_async_bulk_create_returning(DB, q), NULL, 0),
                   DORM_EINVAL);
  dorm_query_free(q);
}

/* ---- bulk_update ----------------------------------------------------------
 */

static void test_bulk_update(void **state) {
  (void)state;
  enum { N = 1100 };
  dorm_query *q = tags(N, "t%04d", -1);
  dorm_result r = t_ok(dorm_async_bulk_create_returning(DB, q));
  dorm_query_free(q);
  const dorm_rows *made = r.u.rows.rows;
  add_tag("taken");
  /* new names for every tag, in chunks */
  dorm_query *objs = dorm_insert(Tag);
  for (int i = 0; i < N; i++) {
    char name[32];
    if (i) dorm_insert_next_row(objs);
    dorm_set(objs, "id",
             dorm_int(dorm_row_int(dorm_rows_row(made, (size_t)i), "id")));
    snprintf(name, sizeof name, "u%04d", i);
    dorm_set(objs, "name", dorm_str(name));
  }
  const char *fields[] = {"name"};
  assert_int_equal(t_count(dorm_async_bulk_update(DB, objs, fields, 1)), N);
  dorm_query_free(objs);
  q = dorm_select(Tag);
  dorm_filter(q, "name__startswith", dorm_str("u"));
  assert_int_equal(t_count(dorm_async_count(DB, q)), N);
  dorm_query_free(q);
  q = dorm_select(Tag);
  dorm_filter(q, "id", dorm_int(dorm_row_int(dorm_rows_row(made, 1099), "id")));
  dorm_result g = t_ok(dorm_async_get(DB, q));
  dorm_query_free(q);
  assert_string_equal(dorm_row_text(g.u.row.row, "name"), "u1099");
  dorm_result_free(&g);

  /* the last chunk collides with "taken": nothing is changed */
  objs = dorm_insert(Tag);
  for (int i = 0; i < N; i++) {
    char name[32];
    if (i) dorm_insert_next_row(objs);
    dorm_set(objs, "id",
             dorm_int(dorm_row_int(dorm_rows_row(made, (size_t)i), "id")));
    snprintf(name, sizeof name, i == N - 1 ? "taken" : "v%04d", i);
    dorm_set(objs, "name", dorm_str(name));
  }
  assert_int_equal(t_err(dorm_async_bulk_update(DB, objs, fields, 1), NULL, 0),
                   DORM_EINTEGRITY);
  dorm_query_free(objs);
  q = dorm_select(Tag);
  dorm_filter(q, "name__startswith", dorm_str("u"));
  assert_int_equal(t_count(dorm_async_count(DB, q)), N);
  dorm_query_free(q);

  /* an object whose row is gone counts nothing; bad fields are refused */
  objs = dorm_insert(Tag);
  dorm_set(objs, "id", dorm_int(999999));
  dorm_set(objs, "name", dorm_str("gone"));
  assert_int_equal(t_count(dorm_async_bulk_update(DB, objs, fields, 1)), 0);
  const char *bad[] = {"nope"};
  char msg[256];
  assert_int_equal(
      t_err(dorm_async_bulk_update(DB, objs, bad, 1), msg, sizeof msg),
      DORM_EFIELD);
  assert_non_null(strstr(msg, "nope"));
  dorm_query_free(objs);
  dorm_result_free(&r);
}

/* Author fields of several types in one bulk_update, NULLs included. */
static void test_bulk_update_types(void **state) {
  (void)state;
  dorm_query *q = authors(30, "bu");
  dorm_result r = t_ok(dorm_async_bulk_create_returning(DB, q));
  dorm_query_free(q);
  dorm_query *objs = dorm_insert(Author);
  for (int i = 0; i < 30; i++) {
    if (i) dorm_insert_next_row(objs);
    dorm_set(
        objs, "id",
        dorm_int(dorm_row_int(dorm_rows_row(r.u.rows.rows, (size_t)i), "id")));
    dorm_set(objs, "age", i % 2 ? dorm_int(i * 10) : dorm_null());
    dorm_set(objs, "score", dorm_decimal("1.25"));
    dorm_set(objs, "joined", dorm_datetime("2030-01-02T03:04:05Z"));
    dorm_set(objs, "data", dorm_json_text("{\"k\": 1}"));
    dorm_set(objs, "active", dorm_bool(0));
    dorm_set(objs, "born", dorm_null());
  }
  const char *fields[] = {"age", "score", "joined", "data", "active", "born"};
  assert_int_equal(t_count(dorm_async_bulk_update(DB, objs, fields, 6)), 30);
  dorm_query_free(objs);
  dorm_result_free(&r);
  q = dorm_select(Author);
  dorm_order_by(q, "id");
  r = t_ok(dorm_async_filter(DB, q));
  dorm_query_free(q);
  for (int i = 0; i < 30; i++) {
    const dorm_row *row = dorm_rows_row(r.u.rows.rows, (size_t)i);
    assert_int_equal(dorm_row_is_null(row, "age"), i % 2 == 0);
    if (i % 2) assert_int_equal(dorm_row_int(row, "age"), i * 10);
    assert_string_equal(dorm_row_text(row, "score"), "1.25");
    assert_string_equal(dorm_row_text(row, "joined"), "2030-01-02T03:04:05Z");
    assert_int_equal(dorm_row_bool(row, "active"), 0);
    assert_true(dorm_row_is_null(row, "born"));
  }
  dorm_result_free(&r);
}

/* ---- COPY TO STDOUT
 * ---------------------------------------------------------- */

typedef struct sink {
  long rows, stop_at;
  int order_ok;
  char last[64];
} sink;

static int sink_row(const char *data, size_t len, void *arg) {
  sink *k = arg;
  t_on_loop_thread();
  char want[64];
  snprintf(want, sizeof want, "t%04ld\n", k->rows);
  if (k->order_ok && (len != strlen(want) || memcmp(data, want, len)))
    k->order_ok = 0;
  snprintf(k->last, sizeof k->last, "%.*s", (int)(len < 63 ? len : 63), data);
  k->rows++;
  return k->stop_at && k->rows >= k->stop_at;
}

static void test_copy_out(void **state) {
  (void)state;
  sink k = {0, 0, 1, ""};
  if (!is_pg()) {
    assert_int_equal(
        t_err(dorm_async_copy_out(DB, "COPY tag TO STDOUT", sink_row, &k), NULL,
              0),
        DORM_EUNSUPPORTED);
    assert_int_equal(k.rows, 0);
    return;
  }
  dorm_query *q = tags(5000, "t%04d", -1);
  assert_int_equal(t_count(dorm_async_bulk_create(DB, q)), 5000);
  dorm_query_free(q);
  /* every row, in order, each as it arrives */
  assert_int_equal(
      t_count(dorm_async_copy_out(
          DB, "COPY (SELECT name FROM tag ORDER BY name) TO STDOUT", sink_row,
          &k)),
      5000);
  assert_int_equal(k.rows, 5000);
  assert_true(k.order_ok);
  /* CSV, escapes and NULL as the server writes them */
  sink c = {0, 0, 0, ""};
  assert_int_equal(
      t_count(dorm_async_copy_out(DB,
                                  "COPY (SELECT E'a\\tb,\"q\"', NULL::text) "
                                  "TO STDOUT WITH (FORMAT csv)",
                                  sink_row, &c)),
      1);
  assert_string_equal(c.last, "\"a\tb,\"\"q\"\"\",\n");
  /* the consumer stops: the server stops, nothing more is delivered */
  sink s = {0, 100, 0, ""};
  assert_int_equal(
      t_err(dorm_async_copy_out(
                DB,
                "COPY (SELECT g FROM generate_series(1, 50000000) g) TO "
                "STDOUT",
                sink_row, &s),
            NULL, 0),
      DORM_ECANCELED);
  assert_int_equal(s.rows, 100);
  /* refusals */
  char msg[256];
  assert_int_equal(
      t_err(dorm_async_copy_out(DB, "SELECT 1", sink_row, &s), msg, sizeof msg),
      DORM_EINVAL);
  assert_int_equal(
      t_err(dorm_async_copy_out(DB, "COPY tag FROM STDIN", sink_row, &s), msg,
            sizeof msg),
      DORM_EINVAL);
  /* one statement only: the rest is not run */
  assert_true(
      t_err(dorm_async_copy_out(DB, "COPY (SELECT 1) TO STDOUT; DROP TABLE tag",
                                sink_row, &s),
            msg, sizeof msg) != 0);
  assert_int_equal(s.rows, 100);
  /* the connection goes on, the table is there */
  assert_int_equal(count_of(Tag), 5000);
  /* a raw COPY through execute stays refused, before it is sent */
  static const char *const raw[] = {
      "COPY tag TO STDOUT", " /* x /* y */ */ -- z\n copy tag FROM STDIN",
      "(COPY tag TO STDOUT)"};
  for (int i = 0; i < 3; i++)
    assert_int_equal(t_err(dorm_async_execute(DB, raw[i], NULL, 0), NULL, 0),
                     DORM_EUNSUPPORTED);
  /* and the connection goes on */
  assert_int_equal(count_of(Tag), 5000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_copy_every_type),
      T(test_copy_bad_value_halfway),
      T(test_copy_killed),
      T(test_copy_cancelled),
      T(test_copy_in_transaction),
      T(test_create_returning),
      T(test_bulk_update),
      T(test_bulk_update_types),
      T(test_copy_out),
  };
  return dbsuite_main(tests);
}
