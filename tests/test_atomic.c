/* SPDX-License-Identifier: MIT */
/* tests/test_atomic.c — atomic means atomic: dorm_async_atomic commits only
 * when every request made on its transaction handle succeeded, on every
 * backend, whatever shape the block has.
 *
 * The blocks here are the ones users write: the failing request's deferred
 * dropped (not returned), chained with an errback that recovers, gathered;
 * failures of each kind (a constraint, a value of the wrong type, a server
 * error, a cancel, a timeout); requests made after the failure; nested
 * blocks whose failure is handled (only the savepoint rolls back) or not
 * (the whole transaction does); the atomic deferred itself cancelled.  Each
 * checks what was committed with a write made afterwards on the database
 * (it waits for the transaction to end) and a count.  Runs on SQLite (a
 * file, and memory) and on the suite's PostgreSQL (DORM_TEST_PG; skipped
 * when not set).
 */
#include <unistd.h>

#include "dbtest.h"
#include "support/support.h"

/* ---- backends and fixtures ---------------------------------------------- */

static char T_dir[256];

static void rm_dir(void) {
  if (!T_dir[0]) return;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", T_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", T_dir);
  T_dir[0] = '\0';
}

static int sqlite_url(char *buf, size_t cap) {
  snprintf(T_dir, sizeof T_dir, "/tmp/dorm-test-atomic.XXXXXX");
  if (!mkdtemp(T_dir)) return -1;
  snprintf(buf, cap, "sqlite:///%s/t.db", T_dir);
  return 0;
}

static int memory_url(char *buf, size_t cap) {
  snprintf(buf, cap, "sqlite::memory:");
  return 0;
}

/* The PostgreSQL backend: a fresh schema per test on the suite's server. */
static int pg_url(char *buf, size_t cap) {
  return dorm_test_pg_fresh_schema("a", buf, cap);
}

typedef struct backend_case {
  const char *name;
  int (*url)(char *buf, size_t cap);
} backend_case;

static const backend_case backends[] = {
    {"sqlite (file)", sqlite_url},
    {"sqlite (memory)", memory_url},
    {"postgresql", pg_url},
};

static const backend_case *B;
static dorm_schema *S;
static const dorm_model *Author;
static dorm_db *DB;
static int PG; /* the backend is PostgreSQL */

/* Errors reported as unhandled (the deferred hook), by code. */
static int g_unhandled;
static void count_unhandled(const dorm_result *err, void *arg) {
  (void)err;
  (void)arg;
  g_unhandled++;
}

static int setup(void **state) {
  (void)state;
  char url[512];
  t_loop_open();
  if (B->url(url, sizeof url)) return -1;
  dorm_error err;
  dorm_error_clear(&err);
  DB = dorm_db_open(T_loop, url, NULL, &err);
  if (!DB) {
    fprintf(stderr, "open %s: %s\n", url, err.message);
    return -1;
  }
  PG = !strcmp(dorm_db_backend_name(DB), "postgresql");
  static const char *const models[] = {"Author", NULL};
  t_create_tables(DB, S, models);
  g_unhandled = 0;
  dorm_set_unhandled_error_hook(count_unhandled, NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  t_loop_close(DB);
  DB = NULL;
  dorm_set_unhandled_error_hook(NULL, NULL);
  rm_dir();
  return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static dorm_deferred *create(dorm_db *db, const char *name, const char *email) {
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str(name));
  if (email) dorm_set(q, "email", dorm_str(email));
  dorm_deferred *d = dorm_async_create(db, q);
  dorm_query_free(q);
  return d;
}

/* UPDATE author SET <field> = v WHERE name = name */
static dorm_deferred *update(dorm_db *db, const char *name, const char *field,
                             dorm_value v) {
  dorm_query *q = dorm_update(Author);
  dorm_filter(q, "name", dorm_str(name));
  dorm_set(q, field, v);
  dorm_deferred *d = dorm_async_update(db, q);
  dorm_query_free(q);
  return d;
}

static void seed(void) {
  static const char *const names[] = {"ann", "bob", "cid"};
  static const char *const emails[] = {"a@x", "b@x", "c@x"};
  for (int i = 0; i < 3; i++) {
    dorm_result r = t_ok(create(DB, names[i], emails[i]));
    dorm_result_free(&r);
  }
}

/* Rows matching field = v, read after a write on the database: the write
 * waits for any transaction to end, so what the count sees is final. */
static int64_t count_where(const char *field, dorm_value v) {
  dorm_result r = t_ok(dorm_async_execute(DB, "SELECT 1", NULL, 0));
  dorm_result_free(&r);
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, field, v);
  int64_t n = t_count(dorm_async_count(DB, q));
  dorm_query_free(q);
  return n;
}

static int64_t count_named(const char *name) {
  return count_where("name", dorm_str(name));
}

/* Nothing of the seed changed: ages NULL, emails as seeded. */
static void seed_untouched(void) {
  assert_int_equal(count_where("age__isnull", dorm_bool(1)), 3);
  assert_int_equal(count_where("email", dorm_str("a@x")), 1);
  assert_int_equal(count_where("email", dorm_str("b@x")), 1);
}

/* Await an atomic deferred that must fail: its code, SQLSTATE and message
 * into the out parameters (either may be NULL). */
static int atomic_err(dorm_deferred *d, char *sqlstate, char *msg, size_t cap) {
  dorm_result r = t_await(d);
  if (!dorm_result_is_error(&r)) {
    fprintf(stderr, "expected the block to fail; it committed\n");
    dorm_result_free(&r);
    fail();
  }
  int code = dorm_result_code(&r);
  if (sqlstate) snprintf(sqlstate, 6, "%s", dorm_result_sqlstate(&r));
  if (msg) snprintf(msg, cap, "%s", dorm_result_message(&r));
  dorm_result_free(&r);
  return code;
}

/* An errback that records the code and recovers ("except: pass"). */
typedef struct seen {
  int n;
  int code;
  char sqlstate[6];
  char msg[512];
} seen;

static dorm_result note(dorm_result *res, void *arg) {
  seen *s = arg;
  s->n++;
  s->code = dorm_result_code(res);
  snprintf(s->sqlstate, sizeof s->sqlstate, "%s", dorm_result_sqlstate(res));
  snprintf(s->msg, sizeof s->msg, "%s", dorm_result_message(res));
  return dorm_result_none();
}

/* The same on both outcomes: code 0 for a success. */
static dorm_result note_any(dorm_result *res, void *arg) {
  if (dorm_result_is_error(res)) return note(res, arg);
  seen *s = arg;
  s->n++;
  s->code = 0;
  return *res;
}

/* ---- the failing request's deferred dropped ----------------------------- */

static seen g_third;

/* docs/async.md's sketch as a newcomer writes it: three updates, the last
 * one's deferred returned; the middle one breaks the unique email. */
static dorm_deferred *three_updates(dorm_db *tx, void *arg) {
  (void)arg;
  update(tx, "ann", "age", dorm_int(1));
  update(tx, "bob", "email", dorm_str("a@x")); /* dropped: it fails */
  dorm_deferred *d = update(tx, "cid", "age", dorm_int(3));
  dorm_deferred_add_both(d, note_any, &g_third);
  return d;
}

static void test_dropped_failure(void **state) {
  (void)state;
  seed();
  memset(&g_third, 0, sizeof g_third);
  char ss[6], msg[512];
  assert_int_equal(atomic_err(dorm_async_atomic(DB, three_updates, NULL), ss,
                              msg, sizeof msg),
                   DORM_EINTEGRITY);
  assert_string_equal(ss, "23505"); /* the real error, not 25P02 */
  seed_untouched();                 /* ann's and cid's updates rolled back */
  /* the request sent after the failure failed too, with a clear code,
   * naming the first error (SQLite ran it; PostgreSQL refused it) */
  assert_int_equal(g_third.n, 1);
  assert_int_equal(g_third.code, DORM_ETXABORTED);
  assert_string_equal(g_third.sqlstate, "25P02");
  assert_non_null(strstr(g_third.msg, "DORM_EINTEGRITY"));
  /* the dropped failure was not handled by anyone: still reported */
  assert_int_equal(g_unhandled, 1);
}

/* ---- chained, the error recovered by an errback ---------------------------
 */

static seen g_caught, g_after;
static dorm_db *g_tx;

static dorm_result then_bob(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  dorm_deferred *d = update(g_tx, "bob", "email", dorm_str("a@x"));
  dorm_deferred_add_errback(d, note, &g_caught); /* "except: pass" */
  return dorm_result_deferred(d);
}

static dorm_result then_cid(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  /* made after the failure was known: refused without reaching the
   * database */
  dorm_deferred *d = update(g_tx, "cid", "age", dorm_int(3));
  dorm_deferred_add_both(d, note_any, &g_after);
  return dorm_result_deferred(d);
}

static dorm_deferred *chained(dorm_db *tx, void *arg) {
  (void)arg;
  g_tx = tx;
  dorm_deferred *d = update(tx, "ann", "age", dorm_int(1));
  dorm_deferred_add_callback(d, then_bob, NULL);
  dorm_deferred_add_callback(d, then_cid, NULL);
  return d;
}

static dorm_deferred *never_runs(dorm_db *tx, void *arg) {
  (void)tx;
  int *ran = arg;
  (*ran)++;
  return NULL;
}

static int g_nested_ran;
static seen g_nested_refused;

static dorm_result then_nested(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  dorm_deferred *d = dorm_async_atomic(g_tx, never_runs, &g_nested_ran);
  assert_non_null(d);
  dorm_deferred_add_errback(d, note, &g_nested_refused);
  return dorm_result_deferred(d);
}

static void test_chained_failure(void **state) {
  (void)state;
  seed();
  memset(&g_caught, 0, sizeof g_caught);
  memset(&g_after, 0, sizeof g_after);
  memset(&g_nested_refused, 0, sizeof g_nested_refused);
  g_nested_ran = 0;
  char ss[6];
  assert_int_equal(
      atomic_err(dorm_async_atomic(DB, chained, NULL), ss, NULL, 0),
      DORM_EINTEGRITY);
  assert_string_equal(ss, "23505");
  assert_int_equal(g_caught.code, DORM_EINTEGRITY);
  assert_int_equal(g_after.n, 1);
  assert_int_equal(g_after.code, DORM_ETXABORTED);
  assert_non_null(strstr(g_after.msg, "23505"));
  seed_untouched();
  assert_int_equal(g_unhandled, 0);
}

static dorm_deferred *chained_nested(dorm_db *tx, void *arg) {
  (void)arg;
  g_tx = tx;
  dorm_deferred *d = update(tx, "ann", "age", dorm_int(1));
  dorm_deferred_add_callback(d, then_bob, NULL);
  dorm_deferred_add_callback(d, then_nested, NULL);
  return d;
}

static void test_refused_after_failure(void **state) {
  (void)state;
  seed();
  memset(&g_caught, 0, sizeof g_caught);
  memset(&g_nested_refused, 0, sizeof g_nested_refused);
  g_nested_ran = 0;
  assert_int_equal(
      atomic_err(dorm_async_atomic(DB, chained_nested, NULL), NULL, NULL, 0),
      DORM_EINTEGRITY);
  assert_int_equal(g_caught.code, DORM_EINTEGRITY);
  assert_int_equal(g_nested_ran, 0);
  assert_int_equal(g_nested_refused.code, DORM_ETXABORTED);
  seed_untouched();
}

/* ---- gathered ----------------------------------------------------------- */

static dorm_deferred *gathered(dorm_db *tx, void *arg) {
  unsigned flags = *(unsigned *)arg;
  dorm_deferred *ds[3];
  ds[0] = update(tx, "ann", "age", dorm_int(1));
  ds[1] = update(tx, "bob", "email", dorm_str("a@x"));
  ds[2] = update(tx, "cid", "age", dorm_int(3));
  return dorm_gather(T_loop, ds, 3, flags);
}

static void test_gathered_failure(void **state) {
  (void)state;
  seed();
  char ss[6];
  /* DORM_GATHER_ALL: the gather itself succeeds with every outcome; the
   * block must not commit all the same */
  unsigned flags = DORM_GATHER_ALL;
  assert_int_equal(
      atomic_err(dorm_async_atomic(DB, gathered, &flags), ss, NULL, 0),
      DORM_EINTEGRITY);
  assert_string_equal(ss, "23505");
  seed_untouched();
  flags = DORM_GATHER_FIRST_ERROR;
  assert_int_equal(
      atomic_err(dorm_async_atomic(DB, gathered, &flags), ss, NULL, 0),
      DORM_EINTEGRITY);
  assert_string_equal(ss, "23505");
  seed_untouched();
  assert_int_equal(g_unhandled, 0);
}

/* ---- failures of each kind ---------------------------------------------- */

enum kind { K_CONSTRAINT, K_TYPE, K_SERVER, K_CANCEL, K_TIMEOUT, K_NKINDS };

/* A statement that takes a while on each backend (for the timeout). */
static const char *slow_sql(void) {
  return PG ? "SELECT pg_sleep(0.5)"
            : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
              "WHERE x < 1000000) SELECT count(*) FROM c";
}

static dorm_deferred *fails_by_kind(dorm_db *tx, int kind) {
  dorm_deferred *d = NULL;
  switch (kind) {
    case K_CONSTRAINT: return update(tx, "bob", "email", dorm_str("a@x"));
    case K_TYPE: /* does not compile: never reaches the database */
      return update(tx, "bob", "age", dorm_str("not a number"));
    case K_SERVER:
      return dorm_async_execute(tx, "SELECT * FROM no_such_table", NULL, 0);
    case K_CANCEL:
      d = update(tx, "bob", "age", dorm_int(2));
      dorm_deferred_cancel(d);
      return d;
    case K_TIMEOUT:
      d = dorm_async_execute(tx, slow_sql(), NULL, 0);
      dorm_deferred_set_timeout(d, T_loop, 20);
      return d;
  }
  return d;
}

static const int kind_code[K_NKINDS] = {DORM_EINTEGRITY, DORM_ETYPE, DORM_EDB,
                                        DORM_ECANCELED, DORM_ETIMEDOUT};

typedef struct kind_arg {
  int kind;
  int returned; /* return the failing request (else drop it) */
} kind_arg;

static dorm_deferred *by_kind(dorm_db *tx, void *arg) {
  kind_arg *k = arg;
  update(tx, "ann", "age", dorm_int(1));
  dorm_deferred *bad = fails_by_kind(tx, k->kind);
  assert_non_null(bad);
  if (k->returned) return bad;
  dorm_deferred_add_errback(bad, note, &g_caught); /* handled, and yet */
  return update(tx, "cid", "age", dorm_int(3));
}

static void test_failure_kinds(void **state) {
  (void)state;
  seed();
  for (int k = 0; k < K_NKINDS; k++) {
    for (int returned = 0; returned < 2; returned++) {
      kind_arg a = {k, returned};
      char ss[6], msg[512];
      int code =
          atomic_err(dorm_async_atomic(DB, by_kind, &a), ss, msg, sizeof msg);
      if (code != kind_code[k])
        fprintf(stderr, "kind %d returned %d: %s: %s\n", k, returned,
                dorm_err_name(code), msg);
      assert_int_equal(code, kind_code[k]);
      if (k == K_CONSTRAINT) assert_string_equal(ss, "23505");
      if (k == K_SERVER && PG) assert_string_equal(ss, "42P01");
      seed_untouched();
    }
  }
}

/* ---- nested blocks --------------------------------------------------------
 */

/* inner: a row, a failing request (dropped), another row returned */
static dorm_deferred *inner_fails(dorm_db *tx, void *arg) {
  (void)arg;
  create(tx, "i1", NULL);
  create(tx, "i2", "a@x"); /* unique violation */
  return create(tx, "i3", NULL);
}

static seen g_inner;

static dorm_result outer_goes_on(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  dorm_deferred *d = create(g_tx, "o2", NULL);
  return dorm_result_deferred(d);
}

/* Django's
 *     with atomic():
 *         create(o1)
 *         try:
 *             with atomic(): ...fails...
 *         except IntegrityError: pass
 *         create(o2)
 */
static dorm_deferred *outer_handles(dorm_db *tx, void *arg) {
  (void)arg;
  g_tx = tx;
  create(tx, "o1", NULL);
  dorm_deferred *inner = dorm_async_atomic(tx, inner_fails, NULL);
  dorm_deferred_add_errback(inner, note, &g_inner);
  dorm_deferred_add_callback(inner, outer_goes_on, NULL);
  return inner;
}

static dorm_result log_only(dorm_result *res, void *arg) {
  seen *s = arg;
  s->n++;
  s->code = dorm_result_code(res);
  return *res; /* seen, not handled */
}

/* The inner block's failure is not handled: dropped (mode 0) or only
 * logged by an errback that passes it on (mode 1). */
static dorm_deferred *outer_ignores(dorm_db *tx, void *arg) {
  int mode = *(int *)arg;
  create(tx, "p1", NULL);
  dorm_deferred *inner = dorm_async_atomic(tx, inner_fails, NULL);
  if (mode == 1) dorm_deferred_add_errback(inner, log_only, &g_inner);
  return create(tx, "p2", NULL);
}

static void test_nested(void **state) {
  (void)state;
  seed();
  memset(&g_inner, 0, sizeof g_inner);
  dorm_result r = t_ok(dorm_async_atomic(DB, outer_handles, NULL));
  dorm_result_free(&r);
  assert_int_equal(g_inner.n, 1);
  assert_int_equal(g_inner.code, DORM_EINTEGRITY); /* the real error */
  assert_string_equal(g_inner.sqlstate, "23505");
  assert_int_equal(count_named("o1"), 1); /* the outer block went on */
  assert_int_equal(count_named("o2"), 1);
  assert_int_equal(count_named("i1"), 0); /* the savepoint rolled back */
  assert_int_equal(count_named("i3"), 0);
  assert_int_equal(g_unhandled, 1); /* i2's deferred, dropped */

  for (int mode = 0; mode < 2; mode++) {
    memset(&g_inner, 0, sizeof g_inner);
    g_unhandled = 0;
    char ss[6];
    assert_int_equal(
        atomic_err(dorm_async_atomic(DB, outer_ignores, &mode), ss, NULL, 0),
        DORM_EINTEGRITY);
    assert_string_equal(ss, "23505");
    assert_int_equal(count_named("p1"), 0); /* everything rolled back */
    assert_int_equal(count_named("p2"), 0);
    assert_int_equal(count_named("i1"), 0);
    if (mode == 1) assert_int_equal(g_inner.code, DORM_EINTEGRITY);
    /* i2's dropped deferred is unhandled; the inner block's error is
     * reported once, by the outer block */
    assert_int_equal(g_unhandled, 1);
  }
}

/* ---- the atomic deferred cancelled ----------------------------------------
 */

static dorm_deferred *g_atomic;

static dorm_deferred *cancels_itself(dorm_db *tx, void *arg) {
  (void)arg;
  create(tx, "c1", NULL);
  dorm_deferred_cancel(g_atomic); /* as a timeout on the block would */
  return create(tx, "c2", NULL);
}

static dorm_deferred *slow_block(dorm_db *tx, void *arg) {
  (void)arg;
  create(tx, "s1", NULL);
  return dorm_async_execute(tx, slow_sql(), NULL, 0);
}

static void test_cancel_block(void **state) {
  (void)state;
  seed();
  g_atomic = dorm_async_atomic(DB, cancels_itself, NULL);
  assert_int_equal(atomic_err(g_atomic, NULL, NULL, 0), DORM_ECANCELED);
  assert_int_equal(count_named("c1"), 0);
  assert_int_equal(count_named("c2"), 0);

  /* a timeout on the block while its slow request runs */
  dorm_deferred *d = dorm_async_atomic(DB, slow_block, NULL);
  assert_int_equal(dorm_deferred_set_timeout(d, T_loop, 20), 0);
  assert_int_equal(atomic_err(d, NULL, NULL, 0), DORM_ETIMEDOUT);
  assert_int_equal(count_named("s1"), 0);
  seed_untouched();
}

/* ---- SQLite rolls a transaction back by itself ----------------------------
 */

static dorm_deferred *or_rollback(dorm_db *tx, void *arg) {
  (void)arg;
  create(tx, "r1", NULL);
  /* the conflict clause makes SQLite end the whole transaction */
  dorm_async_execute(tx,
                     "INSERT OR ROLLBACK INTO author "
                     "(name, country, bio, active, email) "
                     "VALUES ('r2', 'US', '', 1, 'a@x')",
                     NULL, 0);
  return create(tx, "r3", NULL); /* sent before the failure is known */
}

static void test_sqlite_rolled_back(void **state) {
  (void)state;
  if (PG) {
    skip();
    return;
  }
  seed();
  assert_int_equal(
      atomic_err(dorm_async_atomic(DB, or_rollback, NULL), NULL, NULL, 0),
      DORM_EINTEGRITY);
  assert_int_equal(count_named("r1"), 0);
  assert_int_equal(count_named("r3"), 0); /* not run in autocommit mode */
  /* the writer is usable again */
  dorm_result r = t_ok(create(DB, "after", NULL));
  dorm_result_free(&r);
  assert_int_equal(count_named("after"), 1);
}

/* ---- main -----------------------------------------------------------------
 */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_dropped_failure),       T(test_chained_failure),
      T(test_refused_after_failure), T(test_gathered_failure),
      T(test_failure_kinds),         T(test_nested),
      T(test_cancel_block),          T(test_sqlite_rolled_back),
  };
  S = dorm_schema_load_file("tests/data/query_models.json", NULL);
  if (!S) {
    fprintf(stderr, "cannot load tests/data/query_models.json\n");
    return 1;
  }
  Author = dorm_schema_model(S, "Author");
  (void)t_err; /* dbtest.h's; atomic_err says more here */
  int failed = 0;
  for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
    B = &backends[i];
    char url[512];
    if (B->url(url, sizeof url)) {
      printf("[ SKIPPED  ] backend %s: not configured\n", B->name);
      continue;
    }
    rm_dir();
    failed += _cmocka_run_group_tests(
        B->name, tests, sizeof tests / sizeof tests[0], NULL, NULL);
  }
  dorm_schema_free(S);
  return failed ? 1 : 0;
}
