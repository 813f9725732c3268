/* SPDX-License-Identifier: MIT */
/* tests/support/sqlcheck.h — prove that generated SQL is valid on real
 * databases.
 *
 * Golden strings show what the compiler emits; these helpers show that the
 * databases accept it.  SQLite runs in memory; PostgreSQL is the suite's
 * throwaway server (tests/run.sh starts it with tests/pg_harness.sh and
 * exports DORM_TEST_PG, a libpq conninfo).  Each PostgreSQL connection gets
 * its own fresh schema (t_<pid>_<n>_<random>, first on search_path) that is
 * dropped with CASCADE when the connection is closed, so tests never see
 * each other's tables even when run concurrently.
 *
 * The helpers are meant for cmocka tests: on failure they print the
 * database's message and the SQL to stderr and fail the current test
 * (fail_msg), so a test body needs no checks.  The *_try_* forms return the
 * error instead, for tests that expect a statement to be refused.
 *
 * To run a test program by hand:
 *   . tests/pg_harness.sh && pg_harness_start
 *   build/tests/test_ddl
 *   pg_harness_stop
 * Without DORM_TEST_PG the run has no server (sh tests/run.sh quick):
 * dorm_test_pg_connect then skips the test it is called in, saying so
 * (support.h's rule; in a group's setup cmocka fails the group instead).
 * A program whose PostgreSQL half is optional asks dorm_test_pg_conninfo()
 * first and skips only that half (the golden tests do: docs/testing.md).
 * The full tests/run.sh always sets DORM_TEST_PG, so it skips nothing.
 *
 * Ownership: strings returned by the *_rows functions are malloc'd (free
 * with free()); handles are closed with the matching close function.
 */
#ifndef DORM_TEST_SQLCHECK_H
#define DORM_TEST_SQLCHECK_H

#include <stddef.h>

#include <libpq-fe.h>
#include <sqlite3.h>

/* ---- SQLite ------------------------------------------------------------- */

/* A new in-memory database with foreign keys ON (as dorm's backend opens
 * it).  Fails the test if it cannot be opened. */
sqlite3 *dorm_test_sqlite_open(void);
void dorm_test_sqlite_close(sqlite3 *db);
/* Run one or more statements (sqlite3_exec); fail the test on error. */
void dorm_test_sqlite_exec(sqlite3 *db, const char *sql);
/* The same, returning the SQLite result code (SQLITE_OK = 0) instead of
 * failing; errmsg (may be NULL) gets a copy of the message (cap bytes). */
int dorm_test_sqlite_try_exec(sqlite3 *db, const char *sql, char *errmsg,
                              size_t cap);
/* sqlite3_prepare_v2 must succeed on exactly one statement (nothing but
 * whitespace or ';' after it); the statement is finalized, not run. */
void dorm_test_sqlite_prepare_ok(sqlite3 *db, const char *sql);
/* Run a query and return its rows as text: columns joined by '|', rows
 * ended by '\n', NULL shown as "NULL" (blobs as X'hex').  "" for no rows.
 * Fails the test on error. */
char *dorm_test_sqlite_rows(sqlite3 *db, const char *sql);

/* ---- PostgreSQL --------------------------------------------------------- */

/* Connect to DORM_TEST_PG, create a fresh schema and put it first on
 * search_path (client_min_messages = warning to keep NOTICEs quiet).
 * Skips the test when DORM_TEST_PG is unset; fails it when the server
 * refuses. */
PGconn *dorm_test_pg_connect(void);
/* Drop the connection's schema (CASCADE) and close it.  NULL is a no-op. */
void dorm_test_pg_close(PGconn *conn);
/* The schema dorm_test_pg_connect created for conn (borrowed), or NULL. */
const char *dorm_test_pg_schema(PGconn *conn);
/* Run one or more statements (PQexec); fail the test unless the result is
 * COMMAND_OK or TUPLES_OK. */
void dorm_test_pg_exec(PGconn *conn, const char *sql);
/* The same, returning 0 or -1 instead of failing; sqlstate (may be NULL,
 * 6 bytes) and errmsg (may be NULL, cap bytes) get the error. */
int dorm_test_pg_try_exec(PGconn *conn, const char *sql, char *sqlstate,
                          char *errmsg, size_t cap);
/* PQprepare (unnamed statement) must succeed: the server parses and
 * plans sql with nparams parameters of the given type OIDs (types may be
 * NULL: let the server infer them).  Nothing is executed. */
void dorm_test_pg_prepare_ok(PGconn *conn, const char *sql, int nparams,
                             const Oid *types);
/* Like dorm_test_sqlite_rows: '|' between columns, '\n' after rows, NULL
 * as "NULL", other values in PostgreSQL's text format. */
char *dorm_test_pg_rows(PGconn *conn, const char *sql);

#endif /* DORM_TEST_SQLCHECK_H */
