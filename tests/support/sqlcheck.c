/* SPDX-License-Identifier: MIT */
/* tests/support/sqlcheck.c — run generated SQL on a real SQLite and a real
 * PostgreSQL, for the tests (contracts in sqlcheck.h).
 *
 * Everything here uses plain malloc, never dorm's allocator: a test may
 * have installed the failing allocator, and the checks must still work.
 * PostgreSQL schemas are remembered in a small table keyed by connection so
 * that close can drop exactly the schema connect made, even if the test
 * changed search_path in between.
 */
#include "sqlcheck.h"
#include "support.h"

#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- a tiny string builder (plain malloc; aborts the test on OOM) ------- */

typedef struct sb {
  char *p;
  size_t len, cap;
} sb;

static void sb_add(sb *s, const char *t, size_t n) {
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 128;
    while (cap < s->len + n + 1) cap *= 2;
    char *p = realloc(s->p, cap);
    if (!p) fail_msg("sqlcheck: out of memory");
    s->p = p;
    s->cap = cap;
  }
  memcpy(s->p + s->len, t, n);
  s->len += n;
  s->p[s->len] = '\0';
}

static void sb_puts(sb *s, const char *t) { sb_add(s, t, strlen(t)); }

static char *sb_take(sb *s) {
  if (!s->p) sb_add(s, "", 0);
  return s->p;
}

/* ---- SQLite ------------------------------------------------------------- */

sqlite3 *dorm_test_sqlite_open(void) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(":memory:", &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc != SQLITE_OK) {
    fprintf(stderr, "sqlcheck: sqlite3_open_v2(:memory:): %s\n",
            db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    fail_msg("cannot open an in-memory SQLite database");
  }
  dorm_test_sqlite_exec(db, "PRAGMA foreign_keys = ON");
  return db;
}

void dorm_test_sqlite_close(sqlite3 *db) {
  if (db && sqlite3_close(db) != SQLITE_OK) {
    fprintf(stderr, "sqlcheck: sqlite3_close: %s\n", sqlite3_errmsg(db));
    fail_msg("SQLite database still has unfinalized statements");
  }
}

int dorm_test_sqlite_try_exec(sqlite3 *db, const char *sql, char *errmsg,
                              size_t cap) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (errmsg && cap) snprintf(errmsg, cap, "%s", msg ? msg : "");
  sqlite3_free(msg);
  return rc;
}

void dorm_test_sqlite_exec(sqlite3 *db, const char *sql) {
  char msg[1024];
  int rc = dorm_test_sqlite_try_exec(db, sql, msg, sizeof msg);
  if (rc != SQLITE_OK) {
    fprintf(stderr, "sqlcheck: SQLite refused (%s): %s\n  SQL: %s\n",
            sqlite3_errstr(rc), msg, sql);
    fail_msg("SQLite refused: %s", msg);
  }
}

static int only_trailing_space(const char *tail) {
  for (; tail && *tail; tail++)
    if (*tail != ' ' && *tail != '\n' && *tail != '\t' && *tail != '\r' &&
        *tail != ';')
      return 0;
  return 1;
}

void dorm_test_sqlite_prepare_ok(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, &tail);
  if (rc != SQLITE_OK || !st) {
    fprintf(stderr, "sqlcheck: SQLite cannot prepare: %s\n  SQL: %s\n",
            rc != SQLITE_OK ? sqlite3_errmsg(db) : "empty statement", sql);
    sqlite3_finalize(st);
    fail_msg("SQLite cannot prepare: %s",
             rc != SQLITE_OK ? sqlite3_errmsg(db) : "empty statement");
  }
  sqlite3_finalize(st);
  if (!only_trailing_space(tail)) {
    fprintf(stderr, "sqlcheck: more than one statement\n  SQL: %s\n", sql);
    fail_msg("SQLite prepare: text after the first statement");
  }
}

static void hex_blob(sb *s, const unsigned char *p, int n) {
  static const char hx[] = "0123456789ABCDEF";
  sb_puts(s, "X'");
  for (int i = 0; i < n; i++) {
    char two[2] = {hx[p[i] >> 4], hx[p[i] & 15]};
    sb_add(s, two, 2);
  }
  sb_puts(s, "'");
}

char *dorm_test_sqlite_rows(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "sqlcheck: SQLite cannot prepare: %s\n  SQL: %s\n",
            sqlite3_errmsg(db), sql);
    sqlite3_finalize(st);
    fail_msg("SQLite cannot prepare: %s", sqlite3_errmsg(db));
  }
  sb s = {0};
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++) {
      if (i) sb_puts(&s, "|");
      switch (sqlite3_column_type(st, i)) {
        case SQLITE_NULL: sb_puts(&s, "NULL"); break;
        case SQLITE_BLOB:
          hex_blob(&s, sqlite3_column_blob(st, i), sqlite3_column_bytes(st, i));
          break;
        default:
          sb_add(&s, (const char *)sqlite3_column_text(st, i),
                 (size_t)sqlite3_column_bytes(st, i));
      }
    }
    sb_puts(&s, "\n");
  }
  if (rc != SQLITE_DONE) {
    fprintf(stderr, "sqlcheck: SQLite query failed: %s\n  SQL: %s\n",
            sqlite3_errmsg(db), sql);
    sqlite3_finalize(st);
    free(s.p);
    fail_msg("SQLite query failed");
  }
  sqlite3_finalize(st);
  return sb_take(&s);
}

/* ---- PostgreSQL --------------------------------------------------------- */

#define MAX_CONNS 64

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  PGconn *conn;
  char schema[64];
} g_conns[MAX_CONNS];
static unsigned g_counter;

static uint32_t random32(void) {
  uint32_t r = 0;
  int fd = open("/dev/urandom", O_RDONLY);
  if (fd >= 0) {
    if (read(fd, &r, sizeof r) != (ssize_t)sizeof r) r = 0;
    close(fd);
  }
  if (!r) r = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
  return r;
}

static void quiet_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

PGconn *dorm_test_pg_connect(void) {
  const char *ci = getenv("DORM_TEST_PG");
  if (!ci || !*ci) {
    fprintf(stderr,
            "sqlcheck: DORM_TEST_PG is not set.  The suite (sh tests/run.sh) "
            "provides a throwaway PostgreSQL; by hand:\n"
            "  . tests/pg_harness.sh && pg_harness_start\n"
            "  <run the test program>\n"
            "  pg_harness_stop\n");
    /* skips the test (a group's setup fails instead: cmocka) */
    dorm_test_skip_without_pg();
  }
  PGconn *conn = PQconnectdb(ci);
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "sqlcheck: cannot connect to '%s': %s\n", ci,
            PQerrorMessage(conn));
    PQfinish(conn);
    fail_msg("cannot connect to the test PostgreSQL");
  }
  PQsetNoticeProcessor(conn, quiet_notice, NULL);

  char schema[64];
  pthread_mutex_lock(&g_lock);
  unsigned n = ++g_counter;
  int slot = -1;
  for (int i = 0; i < MAX_CONNS; i++)
    if (!g_conns[i].conn) {
      slot = i;
      break;
    }
  snprintf(schema, sizeof schema, "t_%ld_%u_%08x", (long)getpid(), n,
           (unsigned)random32());
  if (slot >= 0) {
    g_conns[slot].conn = conn;
    snprintf(g_conns[slot].schema, sizeof g_conns[slot].schema, "%s", schema);
  }
  pthread_mutex_unlock(&g_lock);
  if (slot < 0) {
    PQfinish(conn);
    fail_msg("sqlcheck: more than %d PostgreSQL connections open", MAX_CONNS);
  }

  char sql[256];
  snprintf(sql, sizeof sql,
           "SET client_min_messages = warning; CREATE SCHEMA \"%s\"; "
           "SET search_path = \"%s\"",
           schema, schema);
  dorm_test_pg_exec(conn, sql);
  return conn;
}

const char *dorm_test_pg_schema(PGconn *conn) {
  const char *s = NULL;
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < MAX_CONNS; i++)
    if (conn && g_conns[i].conn == conn) s = g_conns[i].schema;
  pthread_mutex_unlock(&g_lock);
  return s;
}

void dorm_test_pg_close(PGconn *conn) {
  if (!conn) return;
  char schema[64] = "";
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < MAX_CONNS; i++)
    if (g_conns[i].conn == conn) {
      memcpy(schema, g_conns[i].schema, sizeof schema);
      g_conns[i].conn = NULL;
    }
  pthread_mutex_unlock(&g_lock);
  if (schema[0]) {
    char sql[128];
    /* A test may leave a transaction open or aborted: roll it back first
     * so the DROP runs. */
    PQclear(PQexec(conn, "ROLLBACK"));
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
      fprintf(stderr, "sqlcheck: could not drop schema %s: %s\n", schema,
              PQerrorMessage(conn));
    PQclear(r);
  }
  PQfinish(conn);
}

int dorm_test_pg_try_exec(PGconn *conn, const char *sql, char *sqlstate,
                          char *errmsg, size_t cap) {
  PGresult *r = PQexec(conn, sql);
  ExecStatusType st = PQresultStatus(r);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (sqlstate) {
    const char *ss = ok ? NULL : PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(sqlstate, 6, "%s", ss ? ss : "");
  }
  if (errmsg && cap)
    snprintf(errmsg, cap, "%s", ok ? "" : PQerrorMessage(conn));
  PQclear(r);
  return ok ? 0 : -1;
}

void dorm_test_pg_exec(PGconn *conn, const char *sql) {
  char ss[6], msg[1024];
  if (dorm_test_pg_try_exec(conn, sql, ss, msg, sizeof msg) != 0) {
    fprintf(stderr, "sqlcheck: PostgreSQL refused (SQLSTATE %s): %s  SQL: %s\n",
            ss, msg, sql);
    fail_msg("PostgreSQL refused (SQLSTATE %s): %s", ss, msg);
  }
}

void dorm_test_pg_prepare_ok(PGconn *conn, const char *sql, int nparams,
                             const Oid *types) {
  PGresult *r = PQprepare(conn, "", sql, nparams, types);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    fprintf(stderr,
            "sqlcheck: PostgreSQL cannot prepare (SQLSTATE %s): %s  SQL: %s\n",
            ss ? ss : "", PQerrorMessage(conn), sql);
    PQclear(r);
    fail_msg("PostgreSQL cannot prepare: %s", PQerrorMessage(conn));
  }
  PQclear(r);
}

char *dorm_test_pg_rows(PGconn *conn, const char *sql) {
  PGresult *r = PQexec(conn, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    fprintf(stderr, "sqlcheck: PostgreSQL query failed: %s  SQL: %s\n",
            PQerrorMessage(conn), sql);
    PQclear(r);
    fail_msg("PostgreSQL query failed");
  }
  sb s = {0};
  int nr = PQntuples(r), nf = PQnfields(r);
  for (int i = 0; i < nr; i++) {
    for (int j = 0; j < nf; j++) {
      if (j) sb_puts(&s, "|");
      if (PQgetisnull(r, i, j))
        sb_puts(&s, "NULL");
      else
        sb_add(&s, PQgetvalue(r, i, j), (size_t)PQgetlength(r, i, j));
    }
    sb_puts(&s, "\n");
  }
  PQclear(r);
  return sb_take(&s);
}
