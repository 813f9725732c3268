/* SPDX-License-Identifier: MIT */
/* tests/ddltest.h — what the DDL compiler's tests share (tests/test_ddl*.c,
 * one program per feature): models filled in by hand (the structs are
 * public, so the tests depend on nothing but the DDL compiler), golden
 * comparisons (EXPECT prints what it got as a C literal, ready to paste),
 * and a database of either kind (db) to run each operation's statements
 * on, as a migration runner must: in one transaction, on SQLite with
 * foreign keys off around it and checked before COMMIT.
 *
 * Without a server (DORM_TEST_PG unset) a PostgreSQL db is absent and its
 * steps do nothing: the golden comparisons and the SQLite runs still
 * happen (docs/testing.md); tests/run.sh always has one.
 *
 * Header-only (static inline functions) so each program has its own copy.
 */
#ifndef DORM_TEST_DDLTEST_H
#define DORM_TEST_DDLTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <math.h>

#include "dorm.h"
#include "dorm/ddl.h"
#include "support/sqlcheck.h"
#include "support/support.h"

#ifndef PG
#define PG DORM_DIALECT_POSTGRES
#define SL DORM_DIALECT_SQLITE
#endif

/* ---- hand-built models -------------------------------------------------- */

static inline dorm_field F(const char *name, dorm_field_type t,
                           unsigned flags) {
  dorm_field f;
  memset(&f, 0, sizeof f);
  f.name = name;
  f.column = name;
  f.type = t;
  f.flags = flags;
  return f;
}

static inline dorm_field REL(const char *name, const char *column,
                             dorm_field_type t, const dorm_model *target,
                             dorm_on_delete od, unsigned flags) {
  dorm_field f = F(name, t, flags);
  f.column = column;
  f.target = target;
  f.to = target->name;
  f.on_delete = od;
  return f;
}

static inline void finish(dorm_model *m, const char *name, const char *table,
                          dorm_field *fields, size_t n) {
  m->name = name;
  m->table = table;
  m->fields = fields;
  m->nfields = n;
  m->pk = NULL;
  for (size_t i = 0; i < n; i++) {
    fields[i].model = m;
    if (fields[i].flags & DORM_FIELD_PRIMARY_KEY) m->pk = &fields[i];
  }
}

/* Author: one field of every type and option. */
static dorm_field author_f[16];
static dorm_model author;
static const char *ai_fields[] = {"name", "age"};
static dorm_index author_ix[1] = {{"author_name_age_idx", ai_fields, 2, 0}};
static const char *au_fields[] = {"name", "email"};
static dorm_index author_ut[1] = {{"author_name_email_uniq", au_fields, 2, 1}};

/* Tag, and Entry with a foreign key, a one_to_one and a many_to_many. */
static dorm_field tag_f[2];
static dorm_model tag;
static dorm_field entry_f[7];
static dorm_model entry;

static const unsigned char blob[] = {0x00, 0xde, 0xad, 0x27};

static inline void build_models(void) {
  dorm_field *a = author_f;
  a[0] = F("id", DORM_FIELD_AUTO, DORM_FIELD_PRIMARY_KEY);
  a[1] = F("name", DORM_FIELD_VARCHAR, 0);
  a[1].max_length = 100;
  a[2] = F("email", DORM_FIELD_VARCHAR, DORM_FIELD_UNIQUE);
  a[2].max_length = 254;
  a[3] = F("age", DORM_FIELD_INTEGER, DORM_FIELD_NULL);
  a[4] = F("bio", DORM_FIELD_TEXT, DORM_FIELD_HAS_DEFAULT);
  a[4].default_value = dorm_str("");
  a[5] = F("joined", DORM_FIELD_DATETIME, DORM_FIELD_NULL);
  a[6] = F("score", DORM_FIELD_FLOAT, DORM_FIELD_NULL);
  a[7] = F("price", DORM_FIELD_DECIMAL, DORM_FIELD_NULL);
  a[7].max_digits = 8;
  a[7].decimal_places = 2;
  a[8] = F("active", DORM_FIELD_BOOLEAN, DORM_FIELD_HAS_DEFAULT);
  a[8].default_value = dorm_bool(1);
  a[9] = F("born", DORM_FIELD_DATE, DORM_FIELD_NULL | DORM_FIELD_DB_INDEX);
  a[10] = F("wake", DORM_FIELD_TIME, DORM_FIELD_NULL);
  a[11] = F("uid", DORM_FIELD_UUID, DORM_FIELD_NULL);
  a[12] = F("tags", DORM_FIELD_JSON, DORM_FIELD_NULL);
  a[13] = F("data", DORM_FIELD_BINARY, DORM_FIELD_NULL);
  a[14] = F("small", DORM_FIELD_SMALLINT, DORM_FIELD_NULL);
  a[15] = F("big", DORM_FIELD_BIGINT, DORM_FIELD_NULL);
  finish(&author, "Author", "author", author_f, 16);
  author.indexes = author_ix;
  author.nindexes = 1;
  author.unique_together = author_ut;
  author.nunique_together = 1;

  tag_f[0] = F("id", DORM_FIELD_BIGAUTO, DORM_FIELD_PRIMARY_KEY);
  tag_f[1] = F("name", DORM_FIELD_VARCHAR, 0);
  tag_f[1].max_length = 50;
  finish(&tag, "Tag", "tag", tag_f, 2);

  dorm_field *e = entry_f;
  e[0] = F("id", DORM_FIELD_BIGAUTO, DORM_FIELD_PRIMARY_KEY);
  e[1] = REL("author", "author_id", DORM_FIELD_FOREIGN_KEY, &author,
             DORM_ON_DELETE_CASCADE, 0);
  e[2] = F("headline", DORM_FIELD_VARCHAR, DORM_FIELD_DB_INDEX);
  e[2].max_length = 255;
  e[3] = F("rating", DORM_FIELD_FLOAT, DORM_FIELD_HAS_DEFAULT);
  e[3].default_value = dorm_float(0.5);
  e[4] = REL("editor", "editor_id", DORM_FIELD_ONE_TO_ONE, &author,
             DORM_ON_DELETE_SET_NULL, DORM_FIELD_NULL);
  e[5] = REL("tags", NULL, DORM_FIELD_MANY_TO_MANY, &tag,
             DORM_ON_DELETE_CASCADE, 0);
  e[5].through_table = "entry_tags";
  e[6] = REL("reviewer", "reviewer_id", DORM_FIELD_FOREIGN_KEY, &author,
             DORM_ON_DELETE_PROTECT, DORM_FIELD_NULL);
  finish(&entry, "Entry", "entry", entry_f, 7);
}

/* A copy of a model with its own field array, to make "after" models. */
typedef struct mcopy {
  dorm_field f[20];
  dorm_model m;
} mcopy;

static inline void copy_model(mcopy *c, const dorm_model *m) {
  memcpy(c->f, m->fields, m->nfields * sizeof *c->f);
  c->m = *m;
  finish(&c->m, m->name, m->table, c->f, m->nfields);
}

/* Remove field i of the copy. */
static inline void copy_drop(mcopy *c, size_t i) {
  memmove(&c->f[i], &c->f[i + 1], (c->m.nfields - i - 1) * sizeof *c->f);
  finish(&c->m, c->m.name, c->m.table, c->f, c->m.nfields - 1);
}

/* ---- helpers ------------------------------------------------------------ */

/* All statements joined by ";\n" (for golden comparisons). */
static inline char *joined(const dorm_ddl *d) {
  size_t n = 1;
  for (size_t i = 0; i < d->n; i++) n += strlen(d->stmts[i]) + 2;
  char *s = malloc(n);
  s[0] = '\0';
  for (size_t i = 0; i < d->n; i++) {
    strcat(s, d->stmts[i]);
    strcat(s, ";\n");
  }
  return s;
}

/* On a mismatch, print what we got as a C literal, ready to paste. */
static inline void print_c_literal(const char *s) {
  fputs("      \"", stderr);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      fprintf(stderr, "\\%c", *s);
    else if (*s == '\n')
      fputs(s[1] ? "\\n\"\n      \"" : "\\n", stderr);
    else
      fputc(*s, stderr);
  }
  fputs("\"\n", stderr);
}

static inline void expect_sql_(const char *label, const dorm_ddl *d,
                               const char *want) {
  char *got = joined(d);
  if (strcmp(got, want) != 0) {
    fprintf(stderr, "--- %s: want\n%s--- got\n%s---\n@@%s\n", label, want, got,
            label);
    print_c_literal(got);
    fprintf(stderr, "@@end\n");
    if (getenv("DORM_GOLDEN_FILL")) { /* regenerating goldens */
      free(got);
      return;
    }
    free(got);
    fail_msg("SQL differs");
  }
  free(got);
}

#define EXPECT(label, d, want) expect_sql_(label, d, want)

static inline void run_sqlite(sqlite3 *db, const dorm_ddl *d) {
  for (size_t i = 0; i < d->n; i++) dorm_test_sqlite_exec(db, d->stmts[i]);
}

static inline void run_pg(PGconn *c, const dorm_ddl *d) {
  for (size_t i = 0; i < d->n; i++) dorm_test_pg_exec(c, d->stmts[i]);
}

static inline void expect_rows_sqlite(sqlite3 *db, const char *sql,
                                      const char *want) {
  char *got = dorm_test_sqlite_rows(db, sql);
  int same = strcmp(got, want) == 0;
  if (!same)
    fprintf(stderr, "SQLite %s\n--- want\n%s--- got\n%s---\n", sql, want, got);
  free(got);
  if (!same) fail_msg("rows differ");
}

static inline void expect_rows_pg(PGconn *c, const char *sql,
                                  const char *want) {
  char *got = dorm_test_pg_rows(c, sql);
  int same = strcmp(got, want) == 0;
  if (!same)
    fprintf(stderr, "PostgreSQL %s\n--- want\n%s--- got\n%s---\n", sql, want,
            got);
  free(got);
  if (!same) fail_msg("rows differ");
}

/* The call must succeed (its dorm_error is `e`). */
#define OK(call)                                                     \
  do {                                                               \
    int rc_ = (call);                                                \
    if (rc_ != 0) fail_msg("%s: %s", dorm_err_name(rc_), e.message); \
  } while (0)

/* ---- a database of either kind, for scenarios run on both --------------- */

/* A PostgreSQL db is absent (sl and pg both NULL) when the run has no
 * server (DORM_TEST_PG unset): the scenarios still compare every golden
 * statement and run them on SQLite, and the steps on the absent database
 * do nothing.  tests/run.sh always has a server, so nothing is skipped
 * in the full suite. */
typedef struct db {
  dorm_dialect d;
  sqlite3 *sl;
  PGconn *pg;
} db;

static inline int db_absent(const db *x) { return !x->sl && !x->pg; }

static inline void db_open(db *x, dorm_dialect d) {
  static int said;
  memset(x, 0, sizeof *x);
  x->d = d;
  if (d == SL) {
    x->sl = dorm_test_sqlite_open();
  } else if (dorm_test_pg_conninfo() && *dorm_test_pg_conninfo()) {
    x->pg = dorm_test_pg_connect();
  } else if (!said++) {
    printf(
        "[ SKIPPED  ] running the DDL on PostgreSQL: DORM_TEST_PG is "
        "not set (docs/testing.md)\n");
  }
}

static inline void db_close(db *x) {
  if (x->sl) dorm_test_sqlite_close(x->sl);
  if (x->pg) dorm_test_pg_close(x->pg);
}

static inline void db_exec(db *x, const char *sql) {
  if (db_absent(x)) return;
  if (x->sl)
    dorm_test_sqlite_exec(x->sl, sql);
  else
    dorm_test_pg_exec(x->pg, sql);
}

/* Run one operation's statements the way a migration runner must: in one
 * transaction; on SQLite with foreign keys off around it (set before
 * BEGIN, where the pragma works) and a foreign_key_check before COMMIT. */
static inline void db_run(db *x, const dorm_ddl *d) {
  if (db_absent(x)) return;
  if (x->sl) {
    dorm_test_sqlite_exec(x->sl, "PRAGMA foreign_keys = OFF");
    dorm_test_sqlite_exec(x->sl, "BEGIN");
    run_sqlite(x->sl, d);
    expect_rows_sqlite(x->sl, "PRAGMA foreign_key_check", "");
    dorm_test_sqlite_exec(x->sl, "COMMIT");
    dorm_test_sqlite_exec(x->sl, "PRAGMA foreign_keys = ON");
  } else {
    dorm_test_pg_exec(x->pg, "BEGIN");
    run_pg(x->pg, d);
    dorm_test_pg_exec(x->pg, "COMMIT");
  }
}

static inline void db_rows(db *x, const char *sql, const char *want) {
  if (db_absent(x)) return;
  if (x->sl)
    expect_rows_sqlite(x->sl, sql, want);
  else
    expect_rows_pg(x->pg, sql, want);
}

/* The statement must be refused by the database (a constraint works). */
static inline void db_refuses(db *x, const char *sql) {
  int rc;
  if (db_absent(x)) return;
  if (x->sl) {
    rc = dorm_test_sqlite_try_exec(x->sl, sql, NULL, 0);
  } else {
    rc = dorm_test_pg_try_exec(x->pg, sql, NULL, NULL, 0);
  }
  if (rc == 0) fail_msg("the database accepted: %s", sql);
}

/* The tables of tag, author and entry, each operation run as db_run does. */
static inline void create_all(db *x) {
  dorm_ddl d;
  dorm_ddl_init(&d);
  dorm_error e;
  const dorm_model *ms[] = {&tag, &author, &entry};
  for (int i = 0; i < 3; i++) {
    OK(dorm_ddl_create_model(ms[i], NULL, 0, x->d, &d, &e));
    db_run(x, &d);
  }
  dorm_ddl_free(&d);
}

/* One operation on both databases (x[PG], x[SL]), and the same rows
 * read back from both. */
static inline void apply2(db *x, const dorm_ddl *pg, const dorm_ddl *sl) {
  db_run(&x[PG], pg);
  db_run(&x[SL], sl);
}

static inline void rows2(db *x, const char *sql, const char *want) {
  db_rows(&x[PG], sql, want);
  db_rows(&x[SL], sql, want);
}

#endif /* DORM_TEST_DDLTEST_H */
