/* SPDX-License-Identifier: MIT */
/* tests/test_sqlite.c — what is SQLite's own in the SQLite backend: the
 * URL forms and options, how connections are set up (WAL, synchronous,
 * foreign keys), faults (missing directory, read-only file, a file that is
 * not a database, a full disk through PRAGMA max_page_count), and
 * concurrency: many writers and readers at once, and two handles writing
 * the same file, with a final row count and never "database is locked".
 *
 * The behaviour every backend shares is tested in test_db_*.c.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbtest.h"
#include "support/support.h"

static dorm_schema *S;
static const dorm_model *Author;
static char Dir[256];

static int setup(void **state) {
  (void)state;
  t_loop_open();
  snprintf(Dir, sizeof Dir, "/tmp/dorm-test-sqlite.XXXXXX");
  assert_non_null(mkdtemp(Dir));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", Dir, Dir);
  assert_int_equal(system(cmd), 0);
  return 0;
}

static dorm_db *open_url(const char *url) {
  dorm_error err;
  dorm_error_clear(&err);
  dorm_db *db = dorm_db_open(T_loop, url, NULL, &err);
  if (!db) fprintf(stderr, "open %s: %s\n", url, err.message);
  assert_non_null(db);
  return db;
}

static dorm_db *open_file(const char *name, const char *opts) {
  char url[512];
  snprintf(url, sizeof url, "sqlite:///%s/%s%s", Dir, name, opts ? opts : "");
  return open_url(url);
}

static void create_author(dorm_db *db) {
  static const char *const models[] = {"Author", NULL};
  t_create_tables(db, S, models);
}

/* A one-value raw query, as text (integers printed). */
static void scalar(dorm_db *db, const char *sql, char *out, size_t cap) {
  dorm_result r = t_ok(dorm_async_execute(db, sql, NULL, 0));
  const dorm_row *row = dorm_result_row_of(&r);
  assert_non_null(row);
  const dorm_value *v = dorm_row_value_at(row, 0);
  if (v->type == DORM_T_INT)
    snprintf(out, cap, "%lld", (long long)v->u.i);
  else
    snprintf(out, cap, "%s", v->type == DORM_T_TEXT ? v->u.s.ptr : "?");
  dorm_result_free(&r);
}

static dorm_deferred *insert(dorm_db *db, const char *name, int age) {
  dorm_query *q = dorm_insert(Author);
  dorm_set(q, "name", dorm_str(name));
  dorm_set(q, "age", dorm_int(age));
  dorm_deferred *d = dorm_async_create(db, q);
  dorm_query_free(q);
  return d;
}

static int64_t count_all(dorm_db *db) {
  dorm_query *q = dorm_select(Author);
  int64_t n = t_count(dorm_async_count(db, q));
  dorm_query_free(q);
  return n;
}

/* ---- URLs --------------------------------------------------------------- */

static void test_urls(void **state) {
  (void)state;
  static const char *const memory[] = {
      "sqlite://", "sqlite::memory:", "sqlite:///:memory:", NULL};
  for (int i = 0; memory[i]; i++) {
    dorm_db *db = open_url(memory[i]);
    create_author(db);
    dorm_result r = t_ok(insert(db, "m", 1));
    dorm_result_free(&r);
    assert_int_equal(count_all(db), 1);
    dorm_db_close(db, NULL, NULL);
  }
  /* relative: from the current directory */
  char cwd[512];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(Dir), 0);
  dorm_db *db = open_url("sqlite:///rel.db");
  create_author(db);
  dorm_db_close(db, NULL, NULL);
  uv_run(&T_uv, UV_RUN_DEFAULT);
  assert_int_equal(chdir(cwd), 0);
  char path[512];
  snprintf(path, sizeof path, "%s/rel.db", Dir);
  assert_int_equal(access(path, F_OK), 0);

  /* absolute, with options; the connection is set up as documented */
  db = open_file("abs.db", "?synchronous=FULL&busy_timeout=1000&readers=3");
  char v[64];
  scalar(db, "PRAGMA journal_mode", v, sizeof v);
  assert_string_equal(v, "wal");
  scalar(db, "PRAGMA synchronous", v, sizeof v);
  assert_string_equal(v, "2"); /* FULL */
  scalar(db, "PRAGMA foreign_keys", v, sizeof v);
  assert_string_equal(v, "1");
  scalar(db, "PRAGMA busy_timeout", v, sizeof v);
  assert_string_equal(v, "1000");
  dorm_db_close(db, NULL, NULL);
  db = open_file("abs.db", NULL);
  scalar(db, "PRAGMA synchronous", v, sizeof v);
  assert_string_equal(v, "1"); /* NORMAL by default */
  dorm_db_close(db, NULL, NULL);
  uv_run(&T_uv, UV_RUN_DEFAULT);

  static const char *const bad[] = {"sqlite:/x.db",
                                    "sqlite://host/x.db",
                                    "sqlite:///",
                                    "sqlite:///x.db?bogus=1",
                                    "sqlite:///x.db?synchronous=FAST",
                                    "sqlite:///x.db?readers=0",
                                    "sqlite:///x%zz.db",
                                    "mysql://localhost/x",
                                    NULL};
  for (int i = 0; bad[i]; i++) {
    dorm_error err;
    dorm_error_clear(&err);
    assert_null(dorm_db_open(T_loop, bad[i], NULL, &err));
    assert_int_equal(err.code, DORM_EURL);
    assert_true(strlen(err.message) > 10);
  }
  t_loop_close(NULL);
}

/* ---- faults ------------------------------------------------------------- */

static void expect_open_error(dorm_db *db, const char *needle) {
  char msg[512];
  assert_int_equal(t_err(dorm_db_ready(db), msg, sizeof msg), DORM_EIO);
  if (!strstr(msg, needle)) {
    fprintf(stderr, "message: %s\n", msg);
    fail();
  }
  /* every request fails with the same error, through its errback */
  char msg2[512];
  assert_int_equal(
      t_err(dorm_async_execute(db, "SELECT 1", NULL, 0), msg2, sizeof msg2),
      DORM_EIO);
  assert_string_equal(msg, msg2);
  dorm_query *q = dorm_select(Author);
  assert_int_equal(t_err(dorm_async_filter(db, q), NULL, 0), DORM_EIO);
  dorm_query_free(q);
}

static void test_missing_directory(void **state) {
  (void)state;
  dorm_db *db = open_file("no/such/dir/x.db", NULL);
  expect_open_error(db, "does not exist");
  t_loop_close(db);
}

static void test_not_a_database(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/junk.db", Dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  for (int i = 0; i < 64; i++) fputs("this is not a database file\n", f);
  fclose(f);
  dorm_db *db = open_file("junk.db", NULL);
  expect_open_error(db, "not a database");
  t_loop_close(db);
  /* and the file is as it was */
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_size, 64 * 28);
}

static int g_child_code;
static char g_child_msg[512];
static dorm_result child_note(dorm_result *res, void *arg) {
  (void)arg;
  g_child_code = dorm_result_code(res);
  snprintf(g_child_msg, sizeof g_child_msg, "%s", dorm_result_message(res));
  return dorm_result_none();
}

/* Runs in a child that cannot write (root ignores file modes, so the
 * child drops to an unprivileged user first). */
static int read_only_child(const char *path) {
  uv_loop_t uv;
  uv_loop_init(&uv);
  dorm_loop *loop = dorm_loop_new(&uv);
  char url[600];
  snprintf(url, sizeof url, "sqlite:///%s", path);
  dorm_error err;
  dorm_error_clear(&err);
  dorm_db *db = dorm_db_open(loop, url, NULL, &err);
  if (!db) return 10;
  dorm_deferred *d = dorm_db_ready(db);
  g_child_code = 1;
  dorm_deferred_add_both(d, child_note, NULL);
  while (g_child_code == 1) uv_run(&uv, UV_RUN_ONCE);
  int rc = 0;
  if (g_child_code != DORM_EIO) rc = 11;
  if (!strstr(g_child_msg, "read-only")) rc = 12;
  dorm_db_close(db, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  dorm_loop_close(loop, NULL, NULL);
  uv_run(&uv, UV_RUN_DEFAULT);
  uv_loop_close(&uv);
  return rc;
}

static dorm_result ignore_err(dorm_result *res, void *arg) {
  (void)res;
  (void)arg;
  return dorm_result_none();
}

static void test_read_only_file(void **state) {
  (void)state;
  dorm_db *db = open_file("ro.db", NULL);
  create_author(db);
  dorm_result r = t_ok(insert(db, "a", 1));
  dorm_result_free(&r);
  dorm_db_close(db, NULL, NULL);
  uv_run(&T_uv, UV_RUN_DEFAULT);
  char path[512];
  snprintf(path, sizeof path, "%s/ro.db", Dir);
  assert_int_equal(chmod(path, 0444), 0);
  assert_int_equal(chmod(Dir, 0555), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) || setuid(65534))) _exit(20);
    _exit(read_only_child(path));
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(chmod(Dir, 0755), 0);
  (void)ignore_err;
  t_loop_close(NULL);
}

static void test_disk_full(void **state) {
  (void)state;
  dorm_db *db = open_file("full.db", NULL);
  create_author(db);
  char pages[32];
  scalar(db, "PRAGMA page_count", pages, sizeof pages);
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA max_page_count = %d", atoi(pages) + 8);
  dorm_result r = t_ok(dorm_async_execute(db, sql, NULL, 0));
  dorm_result_free(&r);
  static char big[3000];
  memset(big, 'x', sizeof big - 1);
  dorm_query *q = dorm_insert(Author);
  for (int i = 0; i < 200; i++) {
    if (i) dorm_insert_next_row(q);
    dorm_set(q, "name", dorm_str("x"));
    dorm_set(q, "bio", dorm_str(big));
  }
  char msg[512];
  dorm_result e = t_await(dorm_async_bulk_create(db, q));
  dorm_query_free(q);
  assert_int_equal(dorm_result_code(&e), DORM_EIO);
  assert_string_equal(dorm_result_sqlstate(&e), "53100");
  snprintf(msg, sizeof msg, "%s", dorm_result_message(&e));
  dorm_result_free(&e);
  assert_non_null(strstr(msg, "full"));
  /* nothing half-written, and the database still works */
  assert_int_equal(count_all(db), 0);
  r = t_ok(insert(db, "small", 1));
  dorm_result_free(&r);
  assert_int_equal(count_all(db), 1);
  t_loop_close(db);
}

static void test_regexp(void **state) {
  (void)state;
  dorm_db *db = open_url("sqlite://");
  create_author(db);
  dorm_result r = t_ok(insert(db, "Ann", 1));
  dorm_result_free(&r);
  dorm_query *q = dorm_select(Author);
  dorm_filter(q, "name__regex", dorm_str("(unclosed"));
  char msg[256];
  dorm_result e = t_await(dorm_async_filter(db, q));
  assert_int_equal(dorm_result_code(&e), DORM_EINVAL);
  assert_string_equal(dorm_result_sqlstate(&e), "2201B");
  snprintf(msg, sizeof msg, "%s", dorm_result_message(&e));
  dorm_result_free(&e);
  assert_non_null(strstr(msg, "regular expression"));
  dorm_query_free(q);
  t_loop_close(db);
}

static void no_notify(dorm_db *db, const dorm_notification *n, void *arg) {
  (void)db;
  (void)n;
  (void)arg;
  fail_msg("SQLite delivered a notification");
}

/* No LISTEN / NOTIFY in SQLite: the backend's entry refuses (NULL), for
 * the database and its primary view alike. */
static void test_no_listen(void **state) {
  (void)state;
  dorm_db *db = open_url("sqlite://");
  assert_null(dorm_listen(db, "jobs", no_notify, NULL));
  assert_null(dorm_listen(dorm_db_primary(db), "jobs", no_notify, NULL));
  assert_null(dorm_unlisten(db, "jobs", no_notify, NULL));
  t_loop_close(db);
}

/* Decimals another program stored as huge REALs: SQLite's NUMERIC affinity
 * keeps 1e300 as a double, which reads back as its 300-odd digits with the
 * field's two places (once a stack over-read); a non-finite one is an
 * error naming the column, never a crash. */
static void test_huge_decimal_read_back(void **state) {
  (void)state;
  dorm_db *db = open_url("sqlite://");
  create_author(db);
  char sql[256];
  snprintf(sql, sizeof sql,
           "INSERT INTO \"%s\" (name, country, bio, active, score) VALUES "
           "('big', 'US', '', 1, 1e300), ('neg', 'US', '', 1, -1.7e308)",
           Author->table);
  dorm_result r = t_ok(dorm_async_execute(db, sql, NULL, 0));
  dorm_result_free(&r);
  dorm_query *q = dorm_select(Author);
  dorm_order_by(q, "name");
  r = t_ok(dorm_async_filter(db, q));
  const dorm_rows *rows = dorm_result_rows_of(&r);
  assert_int_equal(dorm_rows_count(rows), 2);
  const char *big = dorm_row_text(dorm_rows_row(rows, 0), "score");
  assert_non_null(big);
  /* 301 digits and the field's two places (how many of the digits are
   * significant is the reader's choice; the length is not) */
  assert_int_equal(strlen(big), 301 + 3);
  assert_int_equal(big[0], '1');
  for (size_t i = 0; i < 301; i++) assert_true(big[i] >= '0' && big[i] <= '9');
  assert_string_equal(big + 301, ".00");
  const char *neg = dorm_row_text(dorm_rows_row(rows, 1), "score");
  assert_non_null(neg);
  assert_int_equal(strlen(neg), 1 + 309 + 3);
  dorm_result_free(&r);
  snprintf(sql, sizeof sql,
           "UPDATE \"%s\" SET score = 9e999 WHERE name = 'big'", Author->table);
  r = t_ok(dorm_async_execute(db, sql, NULL, 0));
  dorm_result_free(&r);
  char msg[256];
  assert_int_equal(t_err(dorm_async_filter(db, q), msg, sizeof msg),
                   DORM_ETYPE);
  assert_non_null(strstr(msg, "column 'score'"));
  dorm_query_free(q);
  t_loop_close(db);
}

/* Text another program stored that is not UTF-8 (SQLite keeps any
 * bytes): the rows' JSON carries U+FFFD for the bad bytes instead of
 * failing the whole answer (once dorm serve's 503 for every list). */
static void test_invalid_utf8_to_json(void **state) {
  (void)state;
  dorm_db *db = open_url("sqlite://");
  create_author(db);
  char sql[256];
  snprintf(sql, sizeof sql,
           "INSERT INTO \"%s\" (name, country, bio, active) VALUES "
           "(CAST(X'41FF42' AS TEXT), 'US', CAST(X'E282' AS TEXT), 1)",
           Author->table);
  dorm_result r = t_ok(dorm_async_execute(db, sql, NULL, 0));
  dorm_result_free(&r);
  dorm_query *q = dorm_select(Author);
  r = t_ok(dorm_async_filter(db, q));
  json_t *a = dorm_rows_to_json(dorm_result_rows_of(&r));
  assert_non_null(a);
  json_t *o = json_array_get(a, 0);
  assert_string_equal(json_string_value(json_object_get(o, "name")),
                      "A\xef\xbf\xbd"
                      "B");
  assert_string_equal(json_string_value(json_object_get(o, "bio")),
                      "\xef\xbf\xbd\xef\xbf\xbd");
  json_decref(a);
  dorm_result_free(&r);
  dorm_query_free(q);
  t_loop_close(db);
}

/* ---- concurrency -------------------------------------------------------- */

static long g_done, g_errors;
static dorm_result tally(dorm_result *res, void *arg) {
  (void)arg;
  t_on_loop_thread();
  if (dorm_result_is_error(res)) {
    fprintf(stderr, "concurrent request failed: %s\n",
            dorm_result_message(res));
    g_errors++;
  }
  g_done++;
  return dorm_result_none();
}

static dorm_deferred *tx_two(dorm_db *tx, void *arg) {
  (void)arg;
  insert(tx, "tx", 1);
  return insert(tx, "tx", 2);
}

static void test_concurrency(void **state) {
  (void)state;
  dorm_db *db = open_file("conc.db", "?readers=4");
  create_author(db);
  /* a second handle on the same file: a second writer connection, so the
   * two really compete for SQLite's write lock */
  dorm_db *db2 = open_file("conc.db", "?readers=2");
  g_done = g_errors = 0;
  enum { ROUNDS = 400 };
  long issued = 0, inserted = 0;
  for (int i = 0; i < ROUNDS; i++) {
    dorm_db *h = i % 3 == 0 ? db2 : db;
    char name[32];
    snprintf(name, sizeof name, "w%d", i);
    dorm_deferred_add_both(insert(h, name, i), tally, NULL), issued++,
        inserted++;
    dorm_query *q = dorm_select(Author);
    dorm_filter(q, "age__lte", dorm_int(i));
    dorm_deferred_add_both(dorm_async_filter(h, q), tally, NULL), issued++;
    dorm_deferred_add_both(dorm_async_count(i % 2 ? db : db2, q), tally, NULL),
        issued++;
    dorm_query_free(q);
    if (i % 20 == 0) {
      dorm_deferred_add_both(dorm_async_atomic(h, tx_two, NULL), tally, NULL),
          issued++, inserted += 2;
      dorm_query *u = dorm_update(Author);
      dorm_filter(u, "age__lt", dorm_int(10));
      dorm_set(u, "bio", dorm_str("u"));
      dorm_deferred_add_both(dorm_async_update(h, u), tally, NULL), issued++;
      dorm_query_free(u);
    }
  }
  while (g_done < issued) uv_run(&T_uv, UV_RUN_ONCE);
  assert_int_equal(g_errors, 0);
  assert_int_equal(count_all(db), inserted);
  assert_int_equal(count_all(db2), inserted);
  dorm_db_close(db2, NULL, NULL);
  t_loop_close(db);
}

/* ---- a request refused before it is sent, then cancelled ------------------
 */

/* A request made after dorm_db_close fails with DORM_ECLOSED on the next
 * loop turn, and its op is freed at once (a closing handle keeps no free
 * list).  Cancelling its deferred in the same turn must not reach the freed
 * op (ASan and valgrind see it): the deferred fails once. */
static void test_cancel_after_refusal(void **state) {
  (void)state;
  dorm_db *db = open_file("refused.db", NULL);
  create_author(db);
  T_db_closed = 0;
  dorm_db_close(db, t_db_closed_cb, NULL);
  dorm_query *q = dorm_select(Author);
  dorm_deferred *d = dorm_async_count(db, q);
  dorm_query_free(q);
  assert_non_null(d);
  t_wait w = {0, dorm_result_none()};
  assert_int_equal(dorm_deferred_add_both(d, t_keep, &w), 0);
  dorm_deferred_cancel(d);
  while (!w.done) uv_run(&T_uv, UV_RUN_ONCE);
  assert_true(dorm_result_is_error(&w.res));
  int code = dorm_result_code(&w.res);
  assert_true(code == DORM_ECANCELED || code == DORM_ECLOSED);
  dorm_result_free(&w.res);
  uv_run(&T_uv, UV_RUN_DEFAULT);
  assert_int_equal(T_db_closed, 1);
  t_loop_close(NULL);
}

int main(void) {
  S = dorm_schema_load_file("tests/data/query_models.json", NULL);
  if (!S) return 1;
  Author = dorm_schema_model(S, "Author");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_urls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_only_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
      cmocka_unit_test_setup_teardown(test_regexp, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_listen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_huge_decimal_read_back, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_invalid_utf8_to_json, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_after_refusal, setup,
                                      teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  dorm_schema_free(S);
  return rc;
}
