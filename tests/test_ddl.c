/* SPDX-License-Identifier: MIT */
/* tests/test_ddl.c — the DDL compiler (include/dorm/ddl.h): golden SQL for
 * every operation on both dialects, and every statement executed on a real
 * SQLite and a real PostgreSQL (tests/support/sqlcheck.h), with rows in the
 * tables to show that data survives SQLite's table rebuild.
 *
 * Models are filled in by hand (the structs are public), so these tests
 * depend on nothing but the DDL compiler.  Without a server (DORM_TEST_PG
 * unset) the golden comparisons and the SQLite runs still happen and the
 * PostgreSQL runs are skipped (db_open); tests/run.sh always has one.
 */
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
#include "base/base_int.h"
#include "query/ddl_int.h"
#include "support/sqlcheck.h"
#include "support/support.h"

#define PG DORM_DIALECT_POSTGRES
#define SL DORM_DIALECT_SQLITE

/* ---- hand-built models -------------------------------------------------- */

static dorm_field F(const char *name, dorm_field_type t, unsigned flags) {
  dorm_field f;
  memset(&f, 0, sizeof f);
  f.name = name;
  f.column = name;
  f.type = t;
  f.flags = flags;
  return f;
}

static dorm_field REL(const char *name, const char *column, dorm_field_type t,
                      const dorm_model *target, dorm_on_delete od,
                      unsigned flags) {
  dorm_field f = F(name, t, flags);
  f.column = column;
  f.target = target;
  f.to = target->name;
  f.on_delete = od;
  return f;
}

static void finish(dorm_model *m, const char *name, const char *table,
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

static void build_models(void) {
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

static void copy_model(mcopy *c, const dorm_model *m) {
  memcpy(c->f, m->fields, m->nfields * sizeof *c->f);
  c->m = *m;
  finish(&c->m, m->name, m->table, c->f, m->nfields);
}

/* Remove field i of the copy. */
static void copy_drop(mcopy *c, size_t i) {
  memmove(&c->f[i], &c->f[i + 1], (c->m.nfields - i - 1) * sizeof *c->f);
  finish(&c->m, c->m.name, c->m.table, c->f, c->m.nfields - 1);
}

/* ---- helpers ------------------------------------------------------------ */

/* All statements joined by ";\n" (for golden comparisons). */
static char *joined(const dorm_ddl *d) {
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
static void print_c_literal(const char *s) {
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

static void expect_sql_(const char *label, const dorm_ddl *d,
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

static void run_sqlite(sqlite3 *db, const dorm_ddl *d) {
  for (size_t i = 0; i < d->n; i++) dorm_test_sqlite_exec(db, d->stmts[i]);
}

static void run_pg(PGconn *c, const dorm_ddl *d) {
  for (size_t i = 0; i < d->n; i++) dorm_test_pg_exec(c, d->stmts[i]);
}

static void expect_rows_sqlite(sqlite3 *db, const char *sql, const char *want) {
  char *got = dorm_test_sqlite_rows(db, sql);
  int same = strcmp(got, want) == 0;
  if (!same)
    fprintf(stderr, "SQLite %s\n--- want\n%s--- got\n%s---\n", sql, want, got);
  free(got);
  if (!same) fail_msg("rows differ");
}

static void expect_rows_pg(PGconn *c, const char *sql, const char *want) {
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

static int db_absent(const db *x) { return !x->sl && !x->pg; }

static void db_open(db *x, dorm_dialect d) {
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

static void db_close(db *x) {
  if (x->sl) dorm_test_sqlite_close(x->sl);
  if (x->pg) dorm_test_pg_close(x->pg);
}

static void db_exec(db *x, const char *sql) {
  if (db_absent(x)) return;
  if (x->sl)
    dorm_test_sqlite_exec(x->sl, sql);
  else
    dorm_test_pg_exec(x->pg, sql);
}

/* Run one operation's statements the way a migration runner must: in one
 * transaction; on SQLite with foreign keys off around it (set before
 * BEGIN, where the pragma works) and a foreign_key_check before COMMIT. */
static void db_run(db *x, const dorm_ddl *d) {
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

static void db_rows(db *x, const char *sql, const char *want) {
  if (db_absent(x)) return;
  if (x->sl)
    expect_rows_sqlite(x->sl, sql, want);
  else
    expect_rows_pg(x->pg, sql, want);
}

/* The statement must be refused by the database (a constraint works). */
static void db_refuses(db *x, const char *sql) {
  int rc;
  if (db_absent(x)) return;
  if (x->sl) {
    rc = dorm_test_sqlite_try_exec(x->sl, sql, NULL, 0);
  } else {
    rc = dorm_test_pg_try_exec(x->pg, sql, NULL, NULL, 0);
  }
  if (rc == 0) fail_msg("the database accepted: %s", sql);
}

/* ---- quoting ------------------------------------------------------------ */

static const char *const bad_names[] = {
    "name\"; DROP TABLE author; --",
    "a.b",
    "$1",
    "?",
    "tab\there",
    "new\nline",
    "",
    "1abc",
    "caf\xc3\xa9",
    "0123456789012345678901234567890123456789012345678901234567890123",
};
#define NBAD (sizeof bad_names / sizeof bad_names[0])

static void test_quote_ident(void **state) {
  (void)state;
  char buf[DORM_IDENT_MAX + 3];
  assert_int_equal(dorm_quote_ident("author", buf, sizeof buf), 0);
  assert_string_equal(buf, "\"author\"");
  assert_int_equal(dorm_quote_ident("_Mixed_Case9", buf, sizeof buf), 0);
  assert_string_equal(buf, "\"_Mixed_Case9\"");
  /* 63 bytes is the limit, 64 is refused */
  const char *n63 =
      "a12345678901234567890123456789012345678901234567890123456789012";
  assert_int_equal(strlen(n63), 63);
  assert_int_equal(dorm_quote_ident(n63, buf, sizeof buf), 0);
  assert_int_equal(strlen(buf), 65);
  for (size_t i = 0; i < NBAD; i++) {
    assert_int_equal(dorm_quote_ident(bad_names[i], buf, sizeof buf),
                     DORM_EIDENT);
    assert_string_equal(buf, "");
  }
  assert_int_equal(dorm_quote_ident(NULL, buf, sizeof buf), DORM_EIDENT);
  assert_int_equal(dorm_quote_ident("abc", buf, 5), DORM_ERANGE);
  assert_int_equal(dorm_quote_ident("abc", buf, 6), 0);
}

/* A refused name never reaches SQL, wherever it appears. */
static void test_refused_identifiers(void **state) {
  (void)state;
  build_models();
  dorm_ddl d;
  dorm_ddl_init(&d);
  dorm_error e;
  for (size_t i = 0; i < NBAD; i++) {
    for (int dl = 0; dl < 2; dl++) {
      mcopy c;
      /* as the table */
      copy_model(&c, &tag);
      c.m.table = bad_names[i];
      assert_int_equal(dorm_ddl_create_model(&c.m, NULL, 0, dl, &d, &e),
                       DORM_EIDENT);
      assert_int_equal(d.n, 0);
      assert_non_null(strstr(e.message, "model 'Tag'"));
      assert_null(strchr(e.message, '\n'));
      assert_null(strchr(e.message, '\t'));
      assert_int_equal(dorm_ddl_delete_model(&c.m, dl, &d, &e), DORM_EIDENT);
      assert_int_equal(dorm_ddl_rename_model(&tag, &c.m, dl, &d, &e),
                       DORM_EIDENT);
      assert_int_equal(d.n, 0);
      /* as a column */
      copy_model(&c, &tag);
      c.f[1].column = bad_names[i];
      assert_int_equal(dorm_ddl_create_model(&c.m, NULL, 0, dl, &d, &e),
                       DORM_EIDENT);
      assert_non_null(strstr(e.message, "model 'Tag', field 'name'"));
      assert_int_equal(dorm_ddl_add_field(&c.m, NULL, 0, &c.f[1], dl, &d, &e),
                       DORM_EIDENT);
      assert_int_equal(d.n, 0);
      assert_int_equal(dorm_ddl_rename_field(&tag, &c.m, NULL, 0, &tag_f[1],
                                             &c.f[1], dl, &d, &e),
                       DORM_EIDENT);
      assert_int_equal(d.n, 0);
      /* as an index name */
      const char *fields[] = {"name"};
      dorm_index ix = {bad_names[i], fields, 1, 0};
      assert_int_equal(dorm_ddl_add_index(&tag, &ix, dl, &d, &e), DORM_EIDENT);
      assert_int_equal(dorm_ddl_remove_index(&tag, &ix, dl, &d, &e),
                       DORM_EIDENT);
      assert_int_equal(d.n, 0);
      /* as a constraint name */
      const char *cf[] = {"name"};
      dorm_ddl_constraint k = {
          bad_names[i], DORM_CONSTRAINT_UNIQUE, cf, 1, NULL, 0};
      assert_int_equal(dorm_ddl_add_constraint(&tag, NULL, 0, &k, dl, &d, &e),
                       DORM_EIDENT);
      assert_int_equal(
          dorm_ddl_remove_constraint(&tag, NULL, 0, &k, dl, &d, &e),
          DORM_EIDENT);
      assert_int_equal(d.n, 0);
      /* as a field a check names: not a field of the model */
      dorm_check_term t = {bad_names[i], DORM_CHECK_EXACT, dorm_int(1)};
      dorm_ddl_constraint k2 = {"ok_name", DORM_CONSTRAINT_CHECK, NULL, 0, &t,
                                1};
      assert_int_equal(dorm_ddl_add_constraint(&tag, NULL, 0, &k2, dl, &d, &e),
                       DORM_EFIELD);
      assert_int_equal(d.n, 0);
    }
  }
  /* the message shows the name, made printable */
  mcopy c;
  copy_model(&c, &tag);
  c.m.table = "x\"; DROP TABLE author; --";
  assert_int_equal(dorm_ddl_create_model(&c.m, NULL, 0, PG, &d, &e),
                   DORM_EIDENT);
  assert_string_equal(e.message,
                      "model 'Tag': invalid identifier "
                      "'x\\x22; DROP TABLE author; --'");
  dorm_ddl_free(&d);
}

/* ---- CREATE TABLE: every type and option -------------------------------- */

static void test_create_model_golden(void **state) {
  (void)state;
  build_models();
  dorm_ddl d;
  dorm_ddl_init(&d);
  dorm_error e;
  OK(dorm_ddl_create_model(&author, NULL, 0, PG, &d, &e));
  EXPECT(
      "author_pg", &d,
      "CREATE TABLE \"author\" (\"id\" integer NOT NULL PRIMARY KEY GENERATED "
      "BY DEFAULT AS IDENTITY, \"name\" varchar(100) NOT NULL, \"email\" "
      "varchar(254) NOT NULL CONSTRAINT \"author_email_uniq\" UNIQUE, \"age\" "
      "integer NULL, \"bio\" text NOT NULL, \"joined\" timestamp with time "
      "zone NULL, \"score\" double precision NULL, \"price\" numeric(8, 2) "
      "NULL, \"active\" boolean NOT NULL, \"born\" date NULL, \"wake\" time "
      "NULL, \"uid\" uuid NULL, \"tags\" jsonb NULL, \"data\" bytea NULL, "
      "\"small\" smallint NULL, \"big\" bigint NULL, CONSTRAINT "
      "\"author_name_email_uniq\" UNIQUE (\"name\", \"email\"));\n"
      "CREATE INDEX \"author_born_idx\" ON \"author\" (\"born\");\n"
      "CREATE INDEX \"author_name_age_idx\" ON \"author\" (\"name\", "
      "\"age\");\n");
  assert_int_equal(d.rebuilds, 0);
  OK(dorm_ddl_create_model(&author, NULL, 0, SL, &d, &e));
  EXPECT(
      "author_sl", &d,
      "CREATE TABLE \"author\" (\"id\" integer NOT NULL PRIMARY KEY "
      "AUTOINCREMENT, \"name\" varchar(100) NOT NULL, \"email\" varchar(254) "
      "NOT NULL CONSTRAINT \"author_email_uniq\" UNIQUE, \"age\" integer NULL, "
      "\"bio\" text NOT NULL, \"joined\" datetime NULL, \"score\" real NULL, "
      "\"price\" decimal(8, 2) NULL, \"active\" bool NOT NULL, \"born\" date "
      "NULL, "
      "\"wake\" time NULL, \"uid\" char(36) NULL, \"tags\" text NULL CHECK "
      "((JSON_VALID(\"tags\") OR \"tags\" IS NULL)), \"data\" BLOB NULL, "
      "\"small\" smallint NULL, \"big\" bigint NULL, CONSTRAINT "
      "\"author_name_email_uniq\" UNIQUE (\"name\", \"email\"));\n"
      "CREATE INDEX \"author_born_idx\" ON \"author\" (\"born\");\n"
      "CREATE INDEX \"author_name_age_idx\" ON \"author\" (\"name\", "
      "\"age\");\n");
  OK(dorm_ddl_create_model(&tag, NULL, 0, PG, &d, &e));
  EXPECT("tag_pg", &d,
         "CREATE TABLE \"tag\" (\"id\" bigint NOT NULL PRIMARY KEY GENERATED "
         "BY DEFAULT AS IDENTITY, \"name\" varchar(50) NOT NULL);\n");
  OK(dorm_ddl_create_model(&tag, NULL, 0, SL, &d, &e));
  EXPECT("tag_sl", &d,
         "CREATE TABLE \"tag\" (\"id\" INTEGER NOT NULL PRIMARY KEY "
         "AUTOINCREMENT, \"name\" varchar(50) NOT NULL);\n");
  OK(dorm_ddl_create_model(&entry, NULL, 0, PG, &d, &e));
  EXPECT(
      "entry_pg", &d,
      "CREATE TABLE \"entry\" (\"id\" bigint NOT NULL PRIMARY KEY GENERATED BY "
      "DEFAULT AS IDENTITY, \"author_id\" integer NOT NULL CONSTRAINT "
      "\"entry_author_id_fk\" REFERENCES \"author\" (\"id\") ON DELETE CASCADE "
      "DEFERRABLE INITIALLY DEFERRED, \"headline\" varchar(255) NOT NULL, "
      "\"rating\" double precision NOT NULL, \"editor_id\" integer NULL "
      "CONSTRAINT \"entry_editor_id_uniq\" UNIQUE CONSTRAINT "
      "\"entry_editor_id_fk\" REFERENCES \"author\" (\"id\") ON DELETE SET "
      "NULL DEFERRABLE INITIALLY DEFERRED, \"reviewer_id\" integer NULL "
      "CONSTRAINT \"entry_reviewer_id_fk\" REFERENCES \"author\" (\"id\") ON "
      "DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED);\n"
      "CREATE INDEX \"entry_author_id_idx\" ON \"entry\" (\"author_id\");\n"
      "CREATE INDEX \"entry_headline_idx\" ON \"entry\" (\"headline\");\n"
      "CREATE INDEX \"entry_reviewer_id_idx\" ON \"entry\" (\"reviewer_id\");\n"
      "CREATE TABLE \"entry_tags\" (\"id\" integer NOT NULL PRIMARY KEY "
      "GENERATED BY DEFAULT AS IDENTITY, \"entry_id\" bigint NOT NULL "
      "CONSTRAINT \"entry_tags_entry_id_fk\" REFERENCES \"entry\" (\"id\") ON "
      "DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, \"tag_id\" bigint NOT "
      "NULL CONSTRAINT \"entry_tags_tag_id_fk\" REFERENCES \"tag\" (\"id\") ON "
      "DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, CONSTRAINT "
      "\"entry_tags_entry_id_tag_id_uniq\" UNIQUE (\"entry_id\", "
      "\"tag_id\"));\n"
      "CREATE INDEX \"entry_tags_entry_id_idx\" ON \"entry_tags\" "
      "(\"entry_id\");\n"
      "CREATE INDEX \"entry_tags_tag_id_idx\" ON \"entry_tags\" "
      "(\"tag_id\");\n");
  OK(dorm_ddl_create_model(&entry, NULL, 0, SL, &d, &e));
  EXPECT(
      "entry_sl", &d,
      "CREATE TABLE \"entry\" (\"id\" INTEGER NOT NULL PRIMARY KEY "
      "AUTOINCREMENT, \"author_id\" integer NOT NULL CONSTRAINT "
      "\"entry_author_id_fk\" REFERENCES \"author\" (\"id\") ON DELETE CASCADE "
      "DEFERRABLE INITIALLY DEFERRED, \"headline\" varchar(255) NOT NULL, "
      "\"rating\" real NOT NULL, \"editor_id\" integer NULL CONSTRAINT "
      "\"entry_editor_id_uniq\" UNIQUE CONSTRAINT \"entry_editor_id_fk\" "
      "REFERENCES \"author\" (\"id\") ON DELETE SET NULL DEFERRABLE INITIALLY "
      "DEFERRED, \"reviewer_id\" integer NULL CONSTRAINT "
      "\"entry_reviewer_id_fk\" REFERENCES \"author\" (\"id\") ON DELETE "
      "RESTRICT DEFERRABLE INITIALLY DEFERRED);\n"
      "CREATE INDEX \"entry_author_id_idx\" ON \"entry\" (\"author_id\");\n"
      "CREATE INDEX \"entry_headline_idx\" ON \"entry\" (\"headline\");\n"
      "CREATE INDEX \"entry_reviewer_id_idx\" ON \"entry\" (\"reviewer_id\");\n"
      "CREATE TABLE \"entry_tags\" (\"id\" integer NOT NULL PRIMARY KEY "
      "AUTOINCREMENT, \"entry_id\" bigint NOT NULL CONSTRAINT "
      "\"entry_tags_entry_id_fk\" REFERENCES \"entry\" (\"id\") ON DELETE "
      "CASCADE DEFERRABLE INITIALLY DEFERRED, \"tag_id\" bigint NOT NULL "
      "CONSTRAINT \"entry_tags_tag_id_fk\" REFERENCES \"tag\" (\"id\") ON "
      "DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, CONSTRAINT "
      "\"entry_tags_entry_id_tag_id_uniq\" UNIQUE (\"entry_id\", "
      "\"tag_id\"));\n"
      "CREATE INDEX \"entry_tags_entry_id_idx\" ON \"entry_tags\" "
      "(\"entry_id\");\n"
      "CREATE INDEX \"entry_tags_tag_id_idx\" ON \"entry_tags\" "
      "(\"tag_id\");\n");
  /* with table constraints */
  dorm_check_term t[2] = {{"age", DORM_CHECK_GTE, dorm_int(18)},
                          {"name", DORM_CHECK_ISNULL, dorm_bool(0)}};
  const char *uf[] = {"email", "age"};
  dorm_ddl_constraint k[2] = {
      {"author_adult", DORM_CONSTRAINT_CHECK, NULL, 0, t, 2},
      {"author_email_age", DORM_CONSTRAINT_UNIQUE, uf, 2, NULL, 0}};
  OK(dorm_ddl_create_model(&tag, NULL, 0, PG, &d, &e));
  mcopy c;
  copy_model(&c, &author);
  c.m.indexes = NULL;
  c.m.nindexes = 0;
  c.m.unique_together = NULL;
  c.m.nunique_together = 0;
  c.m.nfields = 4;
  OK(dorm_ddl_create_model(&c.m, k, 2, PG, &d, &e));
  EXPECT("cons_pg", &d,
         "CREATE TABLE \"author\" (\"id\" integer NOT NULL PRIMARY KEY "
         "GENERATED BY DEFAULT AS IDENTITY, \"name\" varchar(100) NOT NULL, "
         "\"email\" varchar(254) NOT NULL CONSTRAINT \"author_email_uniq\" "
         "UNIQUE, \"age\" integer NULL, CONSTRAINT \"author_adult\" CHECK "
         "(\"age\" >= 18 AND \"name\" IS NOT NULL), CONSTRAINT "
         "\"author_email_age\" UNIQUE (\"email\", \"age\"));\n");
  OK(dorm_ddl_create_model(&c.m, k, 2, SL, &d, &e));
  EXPECT(
      "cons_sl", &d,
      "CREATE TABLE \"author\" (\"id\" integer NOT NULL PRIMARY KEY "
      "AUTOINCREMENT, \"name\" varchar(100) NOT NULL, \"email\" varchar(254) "
      "NOT NULL CONSTRAINT \"author_email_uniq\" UNIQUE, \"age\" integer NULL, "
      "CONSTRAINT \"author_adult\" CHECK (\"age\" >= 18 AND \"name\" IS NOT "
      "NULL), CONSTRAINT \"author_email_age\" UNIQUE (\"email\", \"age\"));\n");
  /* delete_model drops the join tables first */
  OK(dorm_ddl_delete_model(&entry, PG, &d, &e));
  EXPECT("delete_pg", &d,
         "DROP TABLE \"entry_tags\" CASCADE;\n"
         "DROP TABLE \"entry\" CASCADE;\n");
  OK(dorm_ddl_delete_model(&entry, SL, &d, &e));
  EXPECT("delete_sl", &d,
         "DROP TABLE \"entry_tags\";\n"
         "DROP TABLE \"entry\";\n");
  dorm_ddl_free(&d);
}

/* Every statement runs, and the columns take every type's values. */
static void create_all(db *x) {
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

static void test_create_model_runs(void **state) {
  (void)state;
  build_models();
  for (int dl = 0; dl < 2; dl++) {
    db x;
    db_open(&x, dl);
    create_all(&x);
    db_exec(&x,
            "INSERT INTO author (name, email, bio, active, joined, score, "
            "price, born, wake, uid, tags, data, small, big) VALUES "
            "('Ann', 'ann@x.org', '', TRUE, '2024-05-01 13:45:00+00', 1.5, "
            "12.50, '2024-05-01', '13:45:00', "
            "'123e4567-e89b-12d3-a456-426614174000', '{\"a\": 1}', NULL, 1, "
            "9000000000)");
    db_exec(&x, "INSERT INTO tag (name) VALUES ('c')");
    db_exec(&x,
            "INSERT INTO entry (author_id, headline, rating) VALUES (1, 'h', "
            "0.5)");
    db_exec(&x, "INSERT INTO entry_tags (entry_id, tag_id) VALUES (1, 1)");
    db_rows(&x, "SELECT id, name, email, small, big FROM author",
            "1|Ann|ann@x.org|1|9000000000\n");
    /* constraints are there: unique email, unique together, foreign key */
    db_refuses(&x,
               "INSERT INTO author (name, email, bio, active) VALUES ('Bob', "
               "'ann@x.org', '', TRUE)");
    db_refuses(&x, "INSERT INTO entry_tags (entry_id, tag_id) VALUES (1, 1)");
    db_refuses(&x,
               "INSERT INTO entry (author_id, headline, rating) VALUES (99, "
               "'h', 0.5)");
    if (dl == SL)
      db_refuses(&x,
                 "INSERT INTO author (name, email, bio, active, tags) VALUES "
                 "('Cy', 'c@x', '', 1, 'not json')");
    /* ON DELETE CASCADE reaches entry and entry_tags */
    db_exec(&x, "DELETE FROM author WHERE id = 1");
    db_rows(&x, "SELECT count(*) FROM entry", "0\n");
    db_rows(&x, "SELECT count(*) FROM entry_tags", "0\n");
    dorm_ddl d;
    dorm_ddl_init(&d);
    dorm_error e;
    OK(dorm_ddl_delete_model(&entry, x.d, &d, &e));
    db_run(&x, &d);
    dorm_ddl_free(&d);
    db_close(&x);
  }
}

/* ---- every field operation, with rows in the table ---------------------- */

/* person: id, name varchar(50), age integer null — and later states. */
static mcopy p_cur;

static void person_start(void) {
  memset(&p_cur, 0, sizeof p_cur);
  p_cur.f[0] = F("id", DORM_FIELD_AUTO, DORM_FIELD_PRIMARY_KEY);
  p_cur.f[1] = F("name", DORM_FIELD_VARCHAR, 0);
  p_cur.f[1].max_length = 50;
  p_cur.f[2] = F("age", DORM_FIELD_INTEGER, DORM_FIELD_NULL);
  finish(&p_cur.m, "Person", "person", p_cur.f, 3);
}

/* The next state: a copy of the current one (caller edits, then commits
 * with person_next). */
static void rebind(mcopy *dst, const mcopy *src) {
  *dst = *src;
  finish(&dst->m, src->m.name, src->m.table, dst->f, src->m.nfields);
  /* self-references follow the copy */
  for (size_t i = 0; i < dst->m.nfields; i++)
    if (dst->f[i].target == &src->m) dst->f[i].target = &dst->m;
}

static void mcopy_dup(mcopy *dst) { rebind(dst, &p_cur); }

static void person_next(mcopy *next) {
  mcopy tmp;
  rebind(&tmp, next);
  rebind(&p_cur, &tmp);
}

static void apply2(db *x, const dorm_ddl *pg, const dorm_ddl *sl) {
  db_run(&x[PG], pg);
  db_run(&x[SL], sl);
}

static void rows2(db *x, const char *sql, const char *want) {
  db_rows(&x[PG], sql, want);
  db_rows(&x[SL], sql, want);
}

static void test_field_operations(void **state) {
  (void)state;
  db x[2];
  db_open(&x[PG], PG);
  db_open(&x[SL], SL);
  dorm_ddl d, s;
  dorm_ddl_init(&d);
  dorm_ddl_init(&s);
  dorm_error e;
  mcopy b, a; /* before, after */

  person_start();
  OK(dorm_ddl_create_model(&p_cur.m, NULL, 0, PG, &d, &e));
  OK(dorm_ddl_create_model(&p_cur.m, NULL, 0, SL, &s, &e));
  apply2(x, &d, &s);
  for (int i = 0; i < 2; i++)
    db_exec(&x[i],
            "INSERT INTO person (name, age) VALUES ('Ann', 30), ('Bob', NULL)");

  /* add_field: NOT NULL with a default (fills rows, then is dropped) */
  mcopy_dup(&b);
  mcopy_dup(&a);
  a.f[3] = F("nick", DORM_FIELD_VARCHAR, DORM_FIELD_HAS_DEFAULT);
  a.f[3].max_length = 20;
  a.f[3].default_value = dorm_str("n'a\\b");
  finish(&a.m, "Person", "person", a.f, 4);
  OK(dorm_ddl_add_field(&a.m, NULL, 0, &a.f[3], PG, &d, &e));
  EXPECT("add_nick_pg", &d,
         "ALTER TABLE \"person\" ADD COLUMN \"nick\" varchar(20) DEFAULT "
         "E'n''a\\\\b' NOT NULL;\n"
         "ALTER TABLE \"person\" ALTER COLUMN \"nick\" DROP DEFAULT;\n");
  OK(dorm_ddl_add_field(&a.m, NULL, 0, &a.f[3], SL, &s, &e));
  EXPECT("add_nick_sl", &s,
         "CREATE TABLE \"new__person\" (\"id\" integer NOT NULL PRIMARY KEY "
         "AUTOINCREMENT, \"name\" varchar(50) NOT NULL, \"age\" integer NULL, "
         "\"nick\" varchar(20) NOT NULL);\n"
         "INSERT INTO \"new__person\" (\"id\", \"name\", \"age\", \"nick\") "
         "SELECT \"id\", \"name\", \"age\", 'n''a\\b' FROM \"person\";\n"
         "DROP TABLE \"person\";\n"
         "ALTER TABLE \"new__person\" RENAME TO \"person\";\n");
  assert_int_equal(s.rebuilds, 1);
  apply2(x, &d, &s);
  person_next(&a);
  rows2(x, "SELECT id, name, age, nick FROM person ORDER BY id",
        "1|Ann|30|n'a\\b\n2|Bob|NULL|n'a\\b\n");
  /* the default is not kept in the schema */
  for (int i = 0; i < 2; i++)
    db_refuses(&x[i], "INSERT INTO person (name) VALUES ('Cy')");

  /* add_field: nullable, no default (SQLite: ADD COLUMN) */
  mcopy_dup(&a);
  a.f[4] = F("note", DORM_FIELD_TEXT, DORM_FIELD_NULL);
  finish(&a.m, "Person", "person", a.f, 5);
  OK(dorm_ddl_add_field(&a.m, NULL, 0, &a.f[4], PG, &d, &e));
  EXPECT("add_note_pg", &d,
         "ALTER TABLE \"person\" ADD COLUMN \"note\" text NULL;\n");
  OK(dorm_ddl_add_field(&a.m, NULL, 0, &a.f[4], SL, &s, &e));
  EXPECT("add_note_sl", &s,
         "ALTER TABLE \"person\" ADD COLUMN \"note\" text NULL;\n");
  assert_int_equal(s.rebuilds, 0);
  apply2(x, &d, &s);
  person_next(&a);

  /* add_field: a nullable foreign key to itself, with its index */
  mcopy_dup(&a);
  a.f[5] = REL("boss", "boss_id", DORM_FIELD_FOREIGN_KEY, &p_cur.m,
               DORM_ON_DELETE_SET_NULL, DORM_FIELD_NULL);
  finish(&a.m, "Person", "person", a.f, 6);
  a.f[5].target = &a.m;
  OK(dorm_ddl_add_field(&a.m, NULL, 0, &a.f[5], PG, &d, &e));
  EXPECT("add_boss_pg", &d,
         "ALTER TABLE \"person\" ADD COLUMN \"boss_id\" integer NULL "
         "CONSTRAINT \"person_boss_id_fk\" REFERENCES \"person\" (\"id\") ON "
         "DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;\n"
         "CREATE INDEX \"person_boss_id_idx\" ON \"person\" (\"boss_id\");\n");
  OK(dorm_ddl_add_field(&a.m, NULL, 0, &a.f[5], SL, &s, &e));
  EXPECT("add_boss_sl", &s,
         "ALTER TABLE \"person\" ADD COLUMN \"boss_id\" integer NULL "
         "CONSTRAINT \"person_boss_id_fk\" REFERENCES \"person\" (\"id\") ON "
         "DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;\n"
         "CREATE INDEX \"person_boss_id_idx\" ON \"person\" (\"boss_id\");\n");
  apply2(x, &d, &s);
  person_next(&a);
  for (int i = 0; i < 2; i++)
    db_exec(&x[i], "UPDATE person SET boss_id = 1, note = 'hi' WHERE id = 2");

  /* alter_field: NULL -> NOT NULL with a default fills the NULLs */
  mcopy_dup(&b);
  mcopy_dup(&a);
  a.f[2].flags = DORM_FIELD_HAS_DEFAULT;
  a.f[2].default_value = dorm_int(0);
  OK(dorm_ddl_alter_field(&b.m, &a.m, NULL, 0, &b.f[2], &a.f[2], PG, &d, &e));
  EXPECT("alter_age_pg", &d,
         "UPDATE \"person\" SET \"age\" = 0 WHERE \"age\" IS NULL;\n"
         "ALTER TABLE \"person\" ALTER COLUMN \"age\" SET NOT NULL;\n");
  OK(dorm_ddl_alter_field(&b.m, &a.m, NULL, 0, &b.f[2], &a.f[2], SL, &s, &e));
  EXPECT("alter_age_sl", &s,
         "CREATE TABLE \"new__person\" (\"id\" integer NOT NULL PRIMARY KEY "
         "AUTOINCREMENT, \"name\" varchar(50) NOT NULL, \"age\" integer NOT "
         "NULL, \"nick\" varchar(20) NOT NULL, \"note\" text NULL, \"boss_id\" "
         "integer NULL CONSTRAINT \"person_boss_id_fk\" REFERENCES \"person\" "
         "(\"id\") ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED);\n"
         "INSERT INTO \"new__person\" (\"id\", \"name\", \"age\", \"nick\", "
         "\"note\", \"boss_id\") SELECT \"id\", \"name\", COALESCE(\"age\", "
         "0), \"nick\", \"note\", \"boss_id\" FROM \"person\";\n"
         "DROP TABLE \"person\";\n"
         "ALTER TABLE \"new__person\" RENAME TO \"person\";\n"
         "CREATE INDEX \"person_boss_id_idx\" ON \"person\" (\"boss_id\");\n");
  assert_int_equal(s.rebuilds, 1);
  apply2(x, &d, &s);
  person_next(&a);
  rows2(x, "SELECT id, name, age, nick, note, boss_id FROM person ORDER BY id",
        "1|Ann|30|n'a\\b|NULL|NULL\n2|Bob|0|n'a\\b|hi|1\n");

  /* alter_field: type and unique */
  mcopy_dup(&b);
  mcopy_dup(&a);
  a.f[1].max_length = 80;
  a.f[1].flags |= DORM_FIELD_UNIQUE;
  OK(dorm_ddl_alter_field(&b.m, &a.m, NULL, 0, &b.f[1], &a.f[1], PG, &d, &e));
  EXPECT("alter_name_pg", &d,
         "ALTER TABLE \"person\" ALTER COLUMN \"name\" TYPE varchar(80) USING "
         "\"name\"::varchar(80);\n"
         "ALTER TABLE \"person\" ADD CONSTRAINT \"person_name_uniq\" UNIQUE "
         "(\"name\");\n");
  OK(dorm_ddl_alter_field(&b.m, &a.m, NULL, 0, &b.f[1], &a.f[1], SL, &s, &e));
  EXPECT("alter_name_sl", &s,
         "CREATE TABLE \"new__person\" (\"id\" integer NOT NULL PRIMARY KEY "
         "AUTOINCREMENT, \"name\" varchar(80) NOT NULL CONSTRAINT "
         "\"person_name_uniq\" UNIQUE, \"age\" integer NOT NULL, \"nick\" "
         "varchar(20) NOT NULL, \"note\" text NULL, \"boss_id\" integer NULL "
         "CONSTRAINT \"person_boss_id_fk\" REFERENCES \"person\" (\"id\") ON "
         "DELETE SET NULL DEFERRABLE INITIALLY DEFERRED);\n"
         "INSERT INTO \"new__person\" (\"id\", \"name\", \"age\", \"nick\", "
         "\"note\", \"boss_id\") SELECT \"id\", \"name\", \"age\", \"nick\", "
         "\"note\", \"boss_id\" FROM \"person\";\n"
         "DROP TABLE \"person\";\n"
         "ALTER TABLE \"new__person\" RENAME TO \"person\";\n"
         "CREATE INDEX \"person_boss_id_idx\" ON \"person\" (\"boss_id\");\n");
  apply2(x, &d, &s);
  person_next(&a);
  for (int i = 0; i < 2; i++)
    db_refuses(&x[i],
               "INSERT INTO person (name, age, nick) VALUES ('Ann', 1, 'x')");

  /* rename_field: the column and the names derived from it */
  mcopy_dup(&b);
  mcopy_dup(&a);
  a.f[1].name = a.f[1].column = "full_name";
  OK(dorm_ddl_rename_field(&b.m, &a.m, NULL, 0, &b.f[1], &a.f[1], PG, &d, &e));
  EXPECT("rename_name_pg", &d,
         "ALTER TABLE \"person\" RENAME COLUMN \"name\" TO \"full_name\";\n"
         "ALTER TABLE \"person\" RENAME CONSTRAINT \"person_name_uniq\" TO "
         "\"person_full_name_uniq\";\n");
  OK(dorm_ddl_rename_field(&b.m, &a.m, NULL, 0, &b.f[1], &a.f[1], SL, &s, &e));
  EXPECT("rename_name_sl", &s,
         "ALTER TABLE \"person\" RENAME COLUMN \"name\" TO \"full_name\";\n");
  assert_int_equal(s.rebuilds, 0);
  apply2(x, &d, &s);
  person_next(&a);
  rows2(x, "SELECT id, full_name FROM person ORDER BY id", "1|Ann\n2|Bob\n");

  /* indexes */
  const char *ixf[] = {"full_name", "age"};
  dorm_index ix = {"person_fa_idx", ixf, 2, 0};
  dorm_index uix = {"person_fa_uniq", ixf, 2, 1};
  OK(dorm_ddl_add_index(&p_cur.m, &ix, PG, &d, &e));
  EXPECT("add_index_pg", &d,
         "CREATE INDEX \"person_fa_idx\" ON \"person\" (\"full_name\", "
         "\"age\");\n");
  OK(dorm_ddl_add_index(&p_cur.m, &ix, SL, &s, &e));
  EXPECT("add_index_sl", &s,
         "CREATE INDEX \"person_fa_idx\" ON \"person\" (\"full_name\", "
         "\"age\");\n");
  apply2(x, &d, &s);
  OK(dorm_ddl_add_index(&p_cur.m, &uix, PG, &d, &e));
  EXPECT("add_uindex_pg", &d,
         "CREATE UNIQUE INDEX \"person_fa_uniq\" ON \"person\" (\"full_name\", "
         "\"age\");\n");
  OK(dorm_ddl_add_index(&p_cur.m, &uix, SL, &s, &e));
  apply2(x, &d, &s);
  OK(dorm_ddl_remove_index(&p_cur.m, &ix, PG, &d, &e));
  EXPECT("remove_index_pg", &d, "DROP INDEX \"person_fa_idx\";\n");
  OK(dorm_ddl_remove_index(&p_cur.m, &ix, SL, &s, &e));
  EXPECT("remove_index_sl", &s, "DROP INDEX \"person_fa_idx\";\n");
  apply2(x, &d, &s);
  OK(dorm_ddl_remove_index(&p_cur.m, &uix, PG, &d, &e));
  OK(dorm_ddl_remove_index(&p_cur.m, &uix, SL, &s, &e));
  apply2(x, &d, &s);

  /* constraints: a check and a unique, then removed */
  dorm_value rng[2] = {dorm_int(0), dorm_int(150)};
  dorm_value nicks[2] = {dorm_str("n'a\\b"), dorm_str("x")};
  dorm_check_term t[2] = {{"age", DORM_CHECK_RANGE, dorm_list(rng, 2)},
                          {"nick", DORM_CHECK_IN, dorm_list(nicks, 2)}};
  dorm_ddl_constraint ck = {
      "person_age_ok", DORM_CONSTRAINT_CHECK, NULL, 0, t, 2};
  const char *uf[] = {"nick", "note"};
  dorm_ddl_constraint uq = {
      "person_nick_note", DORM_CONSTRAINT_UNIQUE, uf, 2, NULL, 0};
  OK(dorm_ddl_add_constraint(&p_cur.m, NULL, 0, &ck, PG, &d, &e));
  EXPECT("add_check_pg", &d,
         "ALTER TABLE \"person\" ADD CONSTRAINT \"person_age_ok\" CHECK "
         "(\"age\" BETWEEN 0 AND 150 AND \"nick\" IN (E'n''a\\\\b', 'x'));\n");
  OK(dorm_ddl_add_constraint(&p_cur.m, NULL, 0, &ck, SL, &s, &e));
  EXPECT("add_check_sl", &s,
         "CREATE TABLE \"new__person\" (\"id\" integer NOT NULL PRIMARY KEY "
         "AUTOINCREMENT, \"full_name\" varchar(80) NOT NULL CONSTRAINT "
         "\"person_full_name_uniq\" UNIQUE, \"age\" integer NOT NULL, \"nick\" "
         "varchar(20) NOT NULL, \"note\" text NULL, \"boss_id\" integer NULL "
         "CONSTRAINT \"person_boss_id_fk\" REFERENCES \"person\" (\"id\") ON "
         "DELETE SET NULL DEFERRABLE INITIALLY DEFERRED, CONSTRAINT "
         "\"person_age_ok\" CHECK (\"age\" BETWEEN 0 AND 150 AND \"nick\" IN "
         "('n''a\\b', 'x')));\n"
         "INSERT INTO \"new__person\" (\"id\", \"full_name\", \"age\", "
         "\"nick\", \"note\", \"boss_id\") SELECT \"id\", \"full_name\", "
         "\"age\", \"nick\", \"note\", \"boss_id\" FROM \"person\";\n"
         "DROP TABLE \"person\";\n"
         "ALTER TABLE \"new__person\" RENAME TO \"person\";\n"
         "CREATE INDEX \"person_boss_id_idx\" ON \"person\" (\"boss_id\");\n");
  apply2(x, &d, &s);
  OK(dorm_ddl_add_constraint(&p_cur.m, &ck, 1, &uq, PG, &d, &e));
  EXPECT("add_unique_pg", &d,
         "ALTER TABLE \"person\" ADD CONSTRAINT \"person_nick_note\" UNIQUE "
         "(\"nick\", \"note\");\n");
  OK(dorm_ddl_add_constraint(&p_cur.m, &ck, 1, &uq, SL, &s, &e));
  apply2(x, &d, &s);
  for (int i = 0; i < 2; i++) {
    db_refuses(&x[i],
               "INSERT INTO person (full_name, age, nick) VALUES ('Dee', 151, "
               "'x')");
    db_refuses(&x[i],
               "INSERT INTO person (full_name, age, nick) VALUES ('Dee', 1, "
               "'y')");
    db_refuses(&x[i],
               "INSERT INTO person (full_name, age, nick, note) VALUES "
               "('Dee', 1, 'x', 'hi'), ('Eve', 1, 'x', 'hi')");
  }
  /* a later SQLite rebuild keeps the constraints it is told about */
  dorm_ddl_constraint both[2] = {ck, uq};
  OK(dorm_ddl_remove_constraint(&p_cur.m, both, 2, &uq, PG, &d, &e));
  EXPECT("remove_unique_pg", &d,
         "ALTER TABLE \"person\" DROP CONSTRAINT \"person_nick_note\";\n");
  OK(dorm_ddl_remove_constraint(&p_cur.m, both, 2, &uq, SL, &s, &e));
  EXPECT("remove_unique_sl", &s,
         "CREATE TABLE \"new__person\" (\"id\" integer NOT NULL PRIMARY KEY "
         "AUTOINCREMENT, \"full_name\" varchar(80) NOT NULL CONSTRAINT "
         "\"person_full_name_uniq\" UNIQUE, \"age\" integer NOT NULL, \"nick\" "
         "varchar(20) NOT NULL, \"note\" text NULL, \"boss_id\" integer NULL "
         "CONSTRAINT \"person_boss_id_fk\" REFERENCES \"person\" (\"id\") ON "
         "DELETE SET NULL DEFERRABLE INITIALLY DEFERRED, CONSTRAINT "
         "\"person_age_ok\" CHECK (\"age\" BETWEEN 0 AND 150 AND \"nick\" IN "
         "('n''a\\b', 'x')));\n"
         "INSERT INTO \"new__person\" (\"id\", \"full_name\", \"age\", "
         "\"nick\", \"note\", \"boss_id\") SELECT \"id\", \"full_name\", "
         "\"age\", \"nick\", \"note\", \"boss_id\" FROM \"person\";\n"
         "DROP TABLE \"person\";\n"
         "ALTER TABLE \"new__person\" RENAME TO \"person\";\n"
         "CREATE INDEX \"person_boss_id_idx\" ON \"person\" (\"boss_id\");\n");
  apply2(x, &d, &s);
  for (int i = 0; i < 2; i++)
    db_refuses(&x[i],
               "INSERT INTO person (full_name, age, nick) VALUES ('Dee', 151, "
               "'x')");
  OK(dorm_ddl_remove_constraint(&p_cur.m, &ck, 1, &ck, PG, &d, &e));
  OK(dorm_ddl_remove_constraint(&p_cur.m, &ck, 1, &ck, SL, &s, &e));
  apply2(x, &d, &s);
  for (int i = 0; i < 2; i++)
    db_exec(&x[i],
            "INSERT INTO person (full_name, age, nick) VALUES ('Dee', 151, "
            "'z')");

  /* alter_field: a foreign key's on_delete */
  mcopy_dup(&b);
  mcopy_dup(&a);
  a.f[5].on_delete = DORM_ON_DELETE_CASCADE;
  OK(dorm_ddl_alter_field(&b.m, &a.m, NULL, 0, &b.f[5], &a.f[5], PG, &d, &e));
  EXPECT("alter_boss_pg", &d,
         "ALTER TABLE \"person\" DROP CONSTRAINT \"person_boss_id_fk\";\n"
         "ALTER TABLE \"person\" ADD CONSTRAINT \"person_boss_id_fk\" FOREIGN "
         "KEY (\"boss_id\") REFERENCES \"person\" (\"id\") ON DELETE CASCADE "
         "DEFERRABLE INITIALLY DEFERRED;\n");
  OK(dorm_ddl_alter_field(&b.m, &a.m, NULL, 0, &b.f[5], &a.f[5], SL, &s, &e));
  apply2(x, &d, &s);
  person_next(&a);

  /* rename_model: the table, and the names dorm derived from it */
  mcopy_dup(&b);
  mcopy_dup(&a);
  a.m.name = "Human";
  a.m.table = "human";
  finish(&a.m, "Human", "human", a.f, a.m.nfields);
  OK(dorm_ddl_rename_model(&b.m, &a.m, PG, &d, &e));
  EXPECT(
      "rename_model_pg", &d,
      "ALTER TABLE \"person\" RENAME TO \"human\";\n"
      "ALTER TABLE \"human\" RENAME CONSTRAINT \"person_full_name_uniq\" TO "
      "\"human_full_name_uniq\";\n"
      "ALTER TABLE \"human\" RENAME CONSTRAINT \"person_boss_id_fk\" TO "
      "\"human_boss_id_fk\";\n"
      "ALTER INDEX \"person_boss_id_idx\" RENAME TO \"human_boss_id_idx\";\n");
  OK(dorm_ddl_rename_model(&b.m, &a.m, SL, &s, &e));
  EXPECT("rename_model_sl", &s,
         "ALTER TABLE \"person\" RENAME TO \"human\";\n"
         "DROP INDEX \"person_boss_id_idx\";\n"
         "CREATE INDEX \"human_boss_id_idx\" ON \"human\" (\"boss_id\");\n");
  apply2(x, &d, &s);
  person_next(&a);
  rows2(x, "SELECT full_name, boss_id FROM human ORDER BY full_name",
        "Ann|NULL\nBob|1\nDee|NULL\n");
  /* the foreign key now cascades, through the renamed table */
  for (int i = 0; i < 2; i++) db_exec(&x[i], "DELETE FROM human WHERE id = 1");
  rows2(x, "SELECT full_name FROM human ORDER BY full_name", "Dee\n");

  /* remove_field: plain (SQLite: DROP COLUMN) and unique (rebuild) */
  mcopy_dup(&b);
  mcopy_dup(&a);
  copy_drop(&a, 4);
  OK(dorm_ddl_remove_field(&b.m, &a.m, NULL, 0, &b.f[4], PG, &d, &e));
  EXPECT("remove_note_pg", &d,
         "ALTER TABLE \"human\" DROP COLUMN \"note\" CASCADE;\n");
  OK(dorm_ddl_remove_field(&b.m, &a.m, NULL, 0, &b.f[4], SL, &s, &e));
  EXPECT("remove_note_sl", &s, "ALTER TABLE \"human\" DROP COLUMN \"note\";\n");
  assert_int_equal(s.rebuilds, 0);
  apply2(x, &d, &s);
  person_next(&a);
  mcopy_dup(&b);
  mcopy_dup(&a);
  copy_drop(&a, 1);
  OK(dorm_ddl_remove_field(&b.m, &a.m, NULL, 0, &b.f[1], PG, &d, &e));
  EXPECT("remove_name_pg", &d,
         "ALTER TABLE \"human\" DROP COLUMN \"full_name\" CASCADE;\n");
  OK(dorm_ddl_remove_field(&b.m, &a.m, NULL, 0, &b.f[1], SL, &s, &e));
  EXPECT(
      "remove_name_sl", &s,
      "CREATE TABLE \"new__human\" (\"id\" integer NOT NULL PRIMARY KEY "
      "AUTOINCREMENT, \"age\" integer NOT NULL, \"nick\" varchar(20) NOT NULL, "
      "\"boss_id\" integer NULL CONSTRAINT \"human_boss_id_fk\" REFERENCES "
      "\"human\" (\"id\") ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED);\n"
      "INSERT INTO \"new__human\" (\"id\", \"age\", \"nick\", \"boss_id\") "
      "SELECT \"id\", \"age\", \"nick\", \"boss_id\" FROM \"human\";\n"
      "DROP TABLE \"human\";\n"
      "ALTER TABLE \"new__human\" RENAME TO \"human\";\n"
      "CREATE INDEX \"human_boss_id_idx\" ON \"human\" (\"boss_id\");\n");
  assert_int_equal(s.rebuilds, 1);
  apply2(x, &d, &s);
  person_next(&a);
  rows2(x, "SELECT age, nick, boss_id FROM human", "151|z|NULL\n");

  OK(dorm_ddl_delete_model(&p_cur.m, PG, &d, &e));
  OK(dorm_ddl_delete_model(&p_cur.m, SL, &s, &e));
  apply2(x, &d, &s);
  dorm_ddl_free(&d);
  dorm_ddl_free(&s);
  db_close(&x[PG]);
  db_close(&x[SL]);
}

/* ---- literals: the one place values enter SQL --------------------------- */

typedef struct lit_case {
  dorm_field_type t;
  dorm_value v;
  const char *pg, *sl; /* expected literal, or NULL when refused */
} lit_case;

static void test_literals(void **state) {
  (void)state;
  static const char nul_text[] = {'a', '\0', 'b'};
  const lit_case cases[] = {
      {DORM_FIELD_INTEGER, dorm_int(-42), "-42", "-42"},
      {DORM_FIELD_BIGINT, dorm_int(INT64_MIN), "-9223372036854775808",
       "-9223372036854775808"},
      {DORM_FIELD_FLOAT, dorm_float(0.1), "0.1", "0.1"},
      {DORM_FIELD_FLOAT, dorm_float(-1e300), "-1e+300", "-1e+300"},
      {DORM_FIELD_FLOAT, dorm_int(3), "3", "3"},
      {DORM_FIELD_FLOAT, dorm_float(NAN), NULL, NULL},
      {DORM_FIELD_FLOAT, dorm_float(INFINITY), NULL, NULL},
      {DORM_FIELD_DECIMAL, dorm_decimal("-12.50"), "-12.50", "-12.50"},
      {DORM_FIELD_DECIMAL, dorm_decimal("1; DROP TABLE x"), NULL, NULL},
      {DORM_FIELD_DECIMAL, dorm_decimal("."), NULL, NULL},
      {DORM_FIELD_BOOLEAN, dorm_bool(1), "TRUE", "1"},
      {DORM_FIELD_BOOLEAN, dorm_bool(0), "FALSE", "0"},
      {DORM_FIELD_BOOLEAN, dorm_int(1), NULL, NULL},
      {DORM_FIELD_TEXT, dorm_str("it's"), "'it''s'", "'it''s'"},
      {DORM_FIELD_TEXT, dorm_str("a\\'; DROP TABLE x; --"),
       "E'a\\\\''; DROP TABLE x; --'", "'a\\''; DROP TABLE x; --'"},
      {DORM_FIELD_VARCHAR, dorm_str(""), "''", "''"},
      {DORM_FIELD_TEXT, dorm_str("\xc3\xa9t\xc3\xa9"), "'\xc3\xa9t\xc3\xa9'",
       "'\xc3\xa9t\xc3\xa9'"},
      {DORM_FIELD_TEXT, dorm_strn(nul_text, 3), NULL, NULL},
      {DORM_FIELD_TEXT, dorm_str("\xff"), NULL, NULL},
      {DORM_FIELD_TEXT, dorm_str("\xc0\x80"), NULL, NULL},
      {DORM_FIELD_TEXT, dorm_int(1), NULL, NULL},
      {DORM_FIELD_DATE, dorm_date("2024-05-01"), "'2024-05-01'::date",
       "'2024-05-01'"},
      {DORM_FIELD_DATE, dorm_str("2024-05-01"), "'2024-05-01'::date",
       "'2024-05-01'"},
      {DORM_FIELD_DATE, dorm_str("2024-05-01'; --"), NULL, NULL},
      {DORM_FIELD_TIME, dorm_time("13:45:00.5"), "'13:45:00.5'::time",
       "'13:45:00.5'"},
      {DORM_FIELD_DATETIME, dorm_datetime("2024-05-01T13:45:00Z"),
       "'2024-05-01T13:45:00Z'::timestamptz", "'2024-05-01T13:45:00Z'"},
      {DORM_FIELD_UUID, dorm_uuid("123e4567-e89b-12d3-a456-426614174000"),
       "'123e4567-e89b-12d3-a456-426614174000'::uuid",
       "'123e4567-e89b-12d3-a456-426614174000'"},
      {DORM_FIELD_JSON, dorm_json_text("{\"a\": [1, \"x'y\"]}"),
       "'{\"a\": [1, \"x''y\"]}'::jsonb", "'{\"a\": [1, \"x''y\"]}'"},
      {DORM_FIELD_BINARY, dorm_bytes(blob, sizeof blob),
       "E'\\\\x00dead27'::bytea", "X'00dead27'"},
      {DORM_FIELD_BINARY, dorm_str("x"), NULL, NULL},
      {DORM_FIELD_INTEGER, dorm_null(), "NULL", "NULL"},
  };
  db x[2];
  db_open(&x[PG], PG);
  db_open(&x[SL], SL);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dorm_field f = F("c", cases[i].t, 0);
    for (int dl = 0; dl < 2; dl++) {
      const char *want = dl == PG ? cases[i].pg : cases[i].sl;
      dorm__buf b;
      dorm__buf_init(&b);
      char why[128] = "";
      int rc = dorm__ddl_literal(&b, dl, &f, cases[i].v, why, sizeof why);
      if (!want) {
        if (rc == 0)
          fail_msg("case %zu (%s): accepted %s", i, dl ? "sqlite" : "pg",
                   dorm__buf_cstr(&b));
        assert_true(why[0] != '\0');
      } else {
        if (rc != 0) fail_msg("case %zu: refused: %s", i, why);
        if (strcmp(dorm__buf_cstr(&b), want) != 0)
          fail_msg("case %zu (%s): got %s want %s", i, dl ? "sqlite" : "pg",
                   dorm__buf_cstr(&b), want);
        /* and the database reads it as one value */
        if (db_absent(&x[dl])) {
          dorm__buf_free(&b);
          continue;
        }
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT %s", want);
        char *r = dl == PG ? dorm_test_pg_rows(x[PG].pg, sql)
                           : dorm_test_sqlite_rows(x[SL].sl, sql);
        assert_non_null(strchr(r, '\n'));
        assert_null(strchr(r, '|'));
        free(r);
      }
      dorm__buf_free(&b);
    }
  }
  /* what the text literals read back as */
  db_rows(&x[PG], "SELECT E'a\\\\''; DROP TABLE x; --'",
          "a\\'; DROP TABLE x; --\n");
  db_rows(&x[SL], "SELECT 'a\\''; DROP TABLE x; --'",
          "a\\'; DROP TABLE x; --\n");
  db_exec(&x[PG], "SET standard_conforming_strings = off");
  db_rows(&x[PG], "SELECT E'a\\\\''; DROP TABLE x; --'",
          "a\\'; DROP TABLE x; --\n");
  db_rows(&x[PG], "SELECT encode(E'\\\\x00dead27'::bytea, 'hex')",
          "00dead27\n");
  db_close(&x[PG]);
  db_close(&x[SL]);
  assert_int_equal(dorm_check_op_parse("gte"), DORM_CHECK_GTE);
  assert_int_equal(dorm_check_op_parse("isnull"), DORM_CHECK_ISNULL);
  assert_int_equal(dorm_check_op_parse("regex"), -1);
}

/* Bad checks and refused alterations give errors, not SQL. */
static void test_refusals(void **state) {
  (void)state;
  build_models();
  dorm_ddl d;
  dorm_ddl_init(&d);
  dorm_error e;
  for (int dl = 0; dl < 2; dl++) {
    dorm_check_term t = {"age", DORM_CHECK_GTE, dorm_str("18")};
    dorm_ddl_constraint k = {"c1", DORM_CONSTRAINT_CHECK, NULL, 0, &t, 1};
    assert_int_equal(dorm_ddl_add_constraint(&author, NULL, 0, &k, dl, &d, &e),
                     DORM_ETYPE);
    assert_string_equal(e.message,
                        "model 'Author', field 'age': expected an integer");
    assert_int_equal(d.n, 0);
    t.value = dorm_null();
    assert_int_equal(dorm_ddl_add_constraint(&author, NULL, 0, &k, dl, &d, &e),
                     DORM_ETYPE);
    dorm_value one = dorm_int(1);
    t.op = DORM_CHECK_RANGE;
    t.value = dorm_list(&one, 1);
    assert_int_equal(dorm_ddl_add_constraint(&author, NULL, 0, &k, dl, &d, &e),
                     DORM_ETYPE);
    t.op = DORM_CHECK_IN;
    t.value = dorm_list(&one, 0);
    assert_int_equal(dorm_ddl_add_constraint(&author, NULL, 0, &k, dl, &d, &e),
                     DORM_ETYPE);
    t.op = (dorm_check_op)99;
    t.value = one;
    assert_int_equal(dorm_ddl_add_constraint(&author, NULL, 0, &k, dl, &d, &e),
                     DORM_ELOOKUP);
    k.nterms = 0;
    assert_int_equal(dorm_ddl_add_constraint(&author, NULL, 0, &k, dl, &d, &e),
                     DORM_EINVAL);
    const char *nf[] = {"nope"};
    dorm_ddl_constraint u = {"u1", DORM_CONSTRAINT_UNIQUE, nf, 1, NULL, 0};
    assert_int_equal(dorm_ddl_add_constraint(&author, NULL, 0, &u, dl, &d, &e),
                     DORM_EFIELD);
    dorm_index ix = {"ix", nf, 1, 0};
    assert_int_equal(dorm_ddl_add_index(&author, &ix, dl, &d, &e), DORM_EFIELD);

    /* alter_field refusals */
    mcopy a;
    copy_model(&a, &author);
    a.f[3].flags |= DORM_FIELD_PRIMARY_KEY;
    assert_int_equal(dorm_ddl_alter_field(&author, &a.m, NULL, 0, &author_f[3],
                                          &a.f[3], dl, &d, &e),
                     DORM_EUNSUPPORTED);
    assert_string_equal(e.message,
                        "model 'Author', field 'age': cannot change "
                        "primary_key");
    copy_model(&a, &author);
    a.f[0].type = DORM_FIELD_INTEGER;
    assert_int_equal(dorm_ddl_alter_field(&author, &a.m, NULL, 0, &author_f[0],
                                          &a.f[0], dl, &d, &e),
                     DORM_EUNSUPPORTED);
    mcopy en;
    copy_model(&en, &entry);
    en.f[5] = entry_f[5];
    en.f[5].target = &author;
    en.f[5].model = &en.m;
    assert_int_equal(dorm_ddl_alter_field(&entry, &en.m, NULL, 0, &entry_f[5],
                                          &en.f[5], dl, &d, &e),
                     DORM_EUNSUPPORTED);
    assert_int_equal(dorm_ddl_alter_field(&entry, &en.m, NULL, 0, &entry_f[5],
                                          &en.f[2], dl, &d, &e),
                     DORM_EUNSUPPORTED);
    /* an unresolved relation */
    copy_model(&en, &entry);
    en.f[1].target = NULL;
    assert_int_equal(dorm_ddl_create_model(&en.m, NULL, 0, dl, &d, &e),
                     DORM_ESCHEMA);
    assert_string_equal(e.message,
                        "model 'Entry', field 'author': relation to 'Author' "
                        "is not resolved");
    assert_int_equal(d.n, 0);
    /* an auto field that is not the key */
    copy_model(&a, &author);
    a.f[3].type = DORM_FIELD_AUTO;
    assert_int_equal(dorm_ddl_create_model(&a.m, NULL, 0, dl, &d, &e),
                     DORM_ESCHEMA);
    assert_int_equal(dorm_ddl_create_model(NULL, NULL, 0, dl, &d, &e),
                     DORM_EINVAL);
  }
  assert_int_equal(
      dorm_ddl_create_model(&tag, NULL, 0, (dorm_dialect)7, &d, &e),
      DORM_EINVAL);
  /* altering nothing compiles to nothing */
  OK(dorm_ddl_alter_field(&author, &author, NULL, 0, &author_f[1], &author_f[1],
                          SL, &d, &e));
  assert_int_equal(d.n, 0);
  OK(dorm_ddl_alter_field(&author, &author, NULL, 0, &author_f[1], &author_f[1],
                          PG, &d, &e));
  assert_int_equal(d.n, 0);
  /* long derived names are cut with a hash, and stay valid */
  char n[DORM_IDENT_MAX + 1], n2[DORM_IDENT_MAX + 1];
  const char *col =
      "a_very_long_column_name_that_goes_on_and_on_and_on_and_on_xx";
  dorm__ddl_name1(n, "a_long_table_name_too", col, "uniq");
  dorm__ddl_name1(n2, "a_long_table_name_too", "b_very_long_column_name",
                  "uniq");
  assert_int_equal(strlen(n), DORM_IDENT_MAX);
  assert_true(dorm_ident_valid(n));
  assert_string_not_equal(n, n2);
  assert_memory_equal(n + strlen(n) - 5, "_uniq", 5);
  dorm_ddl_free(&d);
}

/* many_to_many: add, rename (the join table follows), remove; and the
 * join table follows a renamed model. */
static void test_many_to_many(void **state) {
  (void)state;
  build_models();
  db x[2];
  db_open(&x[PG], PG);
  db_open(&x[SL], SL);
  dorm_ddl d, s;
  dorm_ddl_init(&d);
  dorm_ddl_init(&s);
  dorm_error e;
  /* entry without its m2m first */
  mcopy b;
  copy_model(&b, &entry);
  copy_drop(&b, 5);
  OK(dorm_ddl_create_model(&tag, NULL, 0, PG, &d, &e));
  OK(dorm_ddl_create_model(&tag, NULL, 0, SL, &s, &e));
  apply2(x, &d, &s);
  OK(dorm_ddl_create_model(&author, NULL, 0, PG, &d, &e));
  OK(dorm_ddl_create_model(&author, NULL, 0, SL, &s, &e));
  apply2(x, &d, &s);
  OK(dorm_ddl_create_model(&b.m, NULL, 0, PG, &d, &e));
  OK(dorm_ddl_create_model(&b.m, NULL, 0, SL, &s, &e));
  apply2(x, &d, &s);
  OK(dorm_ddl_add_field(&entry, NULL, 0, &entry_f[5], PG, &d, &e));
  EXPECT("m2m_add_pg", &d,
         "CREATE TABLE \"entry_tags\" (\"id\" integer NOT NULL PRIMARY KEY "
         "GENERATED BY DEFAULT AS IDENTITY, \"entry_id\" bigint NOT NULL "
         "CONSTRAINT \"entry_tags_entry_id_fk\" REFERENCES \"entry\" (\"id\") "
         "ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, \"tag_id\" bigint "
         "NOT NULL CONSTRAINT \"entry_tags_tag_id_fk\" REFERENCES \"tag\" "
         "(\"id\") ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, CONSTRAINT "
         "\"entry_tags_entry_id_tag_id_uniq\" UNIQUE (\"entry_id\", "
         "\"tag_id\"));\n"
         "CREATE INDEX \"entry_tags_entry_id_idx\" ON \"entry_tags\" "
         "(\"entry_id\");\n"
         "CREATE INDEX \"entry_tags_tag_id_idx\" ON \"entry_tags\" "
         "(\"tag_id\");\n");
  OK(dorm_ddl_add_field(&entry, NULL, 0, &entry_f[5], SL, &s, &e));
  apply2(x, &d, &s);
  for (int i = 0; i < 2; i++) {
    db_exec(&x[i],
            "INSERT INTO author (name, email, bio, active) VALUES ('A', 'a', "
            "'', TRUE)");
    db_exec(&x[i], "INSERT INTO tag (name) VALUES ('t')");
    db_exec(&x[i],
            "INSERT INTO entry (author_id, headline, rating) VALUES (1, 'h', "
            "1)");
    db_exec(&x[i], "INSERT INTO entry_tags (entry_id, tag_id) VALUES (1, 1)");
  }
  /* rename_field tags -> labels: the join table is renamed */
  mcopy a;
  copy_model(&a, &entry);
  a.f[5].name = "labels";
  a.f[5].through_table = "entry_labels";
  OK(dorm_ddl_rename_field(&entry, &a.m, NULL, 0, &entry_f[5], &a.f[5], PG, &d,
                           &e));
  EXPECT("m2m_rename_pg", &d,
         "ALTER TABLE \"entry_tags\" RENAME TO \"entry_labels\";\n"
         "ALTER TABLE \"entry_labels\" RENAME CONSTRAINT "
         "\"entry_tags_entry_id_fk\" TO \"entry_labels_entry_id_fk\";\n"
         "ALTER INDEX \"entry_tags_entry_id_idx\" RENAME TO "
         "\"entry_labels_entry_id_idx\";\n"
         "ALTER TABLE \"entry_labels\" RENAME CONSTRAINT "
         "\"entry_tags_tag_id_fk\" TO \"entry_labels_tag_id_fk\";\n"
         "ALTER INDEX \"entry_tags_tag_id_idx\" RENAME TO "
         "\"entry_labels_tag_id_idx\";\n"
         "ALTER TABLE \"entry_labels\" RENAME CONSTRAINT "
         "\"entry_tags_entry_id_tag_id_uniq\" TO "
         "\"entry_labels_entry_id_tag_id_uniq\";\n");
  OK(dorm_ddl_rename_field(&entry, &a.m, NULL, 0, &entry_f[5], &a.f[5], SL, &s,
                           &e));
  EXPECT("m2m_rename_sl", &s,
         "ALTER TABLE \"entry_tags\" RENAME TO \"entry_labels\";\n"
         "DROP INDEX \"entry_tags_entry_id_idx\";\n"
         "CREATE INDEX \"entry_labels_entry_id_idx\" ON \"entry_labels\" "
         "(\"entry_id\");\n"
         "DROP INDEX \"entry_tags_tag_id_idx\";\n"
         "CREATE INDEX \"entry_labels_tag_id_idx\" ON \"entry_labels\" "
         "(\"tag_id\");\n");
  apply2(x, &d, &s);
  rows2(x, "SELECT entry_id, tag_id FROM entry_labels", "1|1\n");
  /* rename_model Entry -> Post: the table, the join table and its column */
  mcopy p;
  copy_model(&p, &a.m);
  p.f[5].through_table = "post_labels";
  finish(&p.m, "Post", "post", p.f, p.m.nfields);
  OK(dorm_ddl_rename_model(&a.m, &p.m, PG, &d, &e));
  EXPECT(
      "m2m_model_pg", &d,
      "ALTER TABLE \"entry\" RENAME TO \"post\";\n"
      "ALTER TABLE \"post\" RENAME CONSTRAINT \"entry_author_id_fk\" TO "
      "\"post_author_id_fk\";\n"
      "ALTER INDEX \"entry_author_id_idx\" RENAME TO \"post_author_id_idx\";\n"
      "ALTER INDEX \"entry_headline_idx\" RENAME TO \"post_headline_idx\";\n"
      "ALTER TABLE \"post\" RENAME CONSTRAINT \"entry_editor_id_uniq\" TO "
      "\"post_editor_id_uniq\";\n"
      "ALTER TABLE \"post\" RENAME CONSTRAINT \"entry_editor_id_fk\" TO "
      "\"post_editor_id_fk\";\n"
      "ALTER TABLE \"entry_labels\" RENAME TO \"post_labels\";\n"
      "ALTER TABLE \"post_labels\" RENAME COLUMN \"entry_id\" TO \"post_id\";\n"
      "ALTER TABLE \"post_labels\" RENAME CONSTRAINT "
      "\"entry_labels_entry_id_fk\" TO \"post_labels_post_id_fk\";\n"
      "ALTER INDEX \"entry_labels_entry_id_idx\" RENAME TO "
      "\"post_labels_post_id_idx\";\n"
      "ALTER TABLE \"post_labels\" RENAME CONSTRAINT "
      "\"entry_labels_tag_id_fk\" TO \"post_labels_tag_id_fk\";\n"
      "ALTER INDEX \"entry_labels_tag_id_idx\" RENAME TO "
      "\"post_labels_tag_id_idx\";\n"
      "ALTER TABLE \"post_labels\" RENAME CONSTRAINT "
      "\"entry_labels_entry_id_tag_id_uniq\" TO "
      "\"post_labels_post_id_tag_id_uniq\";\n"
      "ALTER TABLE \"post\" RENAME CONSTRAINT \"entry_reviewer_id_fk\" TO "
      "\"post_reviewer_id_fk\";\n"
      "ALTER INDEX \"entry_reviewer_id_idx\" RENAME TO "
      "\"post_reviewer_id_idx\";\n");
  OK(dorm_ddl_rename_model(&a.m, &p.m, SL, &s, &e));
  EXPECT(
      "m2m_model_sl", &s,
      "ALTER TABLE \"entry\" RENAME TO \"post\";\n"
      "DROP INDEX \"entry_author_id_idx\";\n"
      "CREATE INDEX \"post_author_id_idx\" ON \"post\" (\"author_id\");\n"
      "DROP INDEX \"entry_headline_idx\";\n"
      "CREATE INDEX \"post_headline_idx\" ON \"post\" (\"headline\");\n"
      "ALTER TABLE \"entry_labels\" RENAME TO \"post_labels\";\n"
      "ALTER TABLE \"post_labels\" RENAME COLUMN \"entry_id\" TO \"post_id\";\n"
      "DROP INDEX \"entry_labels_entry_id_idx\";\n"
      "CREATE INDEX \"post_labels_post_id_idx\" ON \"post_labels\" "
      "(\"post_id\");\n"
      "DROP INDEX \"entry_labels_tag_id_idx\";\n"
      "CREATE INDEX \"post_labels_tag_id_idx\" ON \"post_labels\" "
      "(\"tag_id\");\n"
      "DROP INDEX \"entry_reviewer_id_idx\";\n"
      "CREATE INDEX \"post_reviewer_id_idx\" ON \"post\" (\"reviewer_id\");\n");
  apply2(x, &d, &s);
  rows2(x, "SELECT post_id, tag_id FROM post_labels", "1|1\n");
  for (int i = 0; i < 2; i++)
    db_refuses(&x[i],
               "INSERT INTO post_labels (post_id, tag_id) VALUES (1, 1)");
  char fc[DORM_IDENT_MAX + 1], tc[DORM_IDENT_MAX + 1];
  assert_int_equal(dorm_ddl_m2m_columns(&p.f[5], fc, tc), 0);
  assert_string_equal(fc, "post_id");
  assert_string_equal(tc, "tag_id");
  /* remove_field drops the join table */
  OK(dorm_ddl_remove_field(&p.m, &p.m, NULL, 0, &p.f[5], PG, &d, &e));
  EXPECT("m2m_remove_pg", &d, "DROP TABLE \"post_labels\" CASCADE;\n");
  OK(dorm_ddl_remove_field(&p.m, &p.m, NULL, 0, &p.f[5], SL, &s, &e));
  apply2(x, &d, &s);
  /* a many_to_many to its own model */
  mcopy t;
  copy_model(&t, &tag);
  t.f[2] = REL("friends", NULL, DORM_FIELD_MANY_TO_MANY, &t.m,
               DORM_ON_DELETE_CASCADE, 0);
  t.f[2].through_table = "tag_friends";
  finish(&t.m, "Tag", "tag", t.f, 3);
  OK(dorm_ddl_add_field(&t.m, NULL, 0, &t.f[2], PG, &d, &e));
  EXPECT(
      "m2m_self_pg", &d,
      "CREATE TABLE \"tag_friends\" (\"id\" integer NOT NULL PRIMARY KEY "
      "GENERATED BY DEFAULT AS IDENTITY, \"from_tag_id\" bigint NOT NULL "
      "CONSTRAINT \"tag_friends_from_tag_id_fk\" REFERENCES \"tag\" (\"id\") "
      "ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, \"to_tag_id\" bigint "
      "NOT NULL CONSTRAINT \"tag_friends_to_tag_id_fk\" REFERENCES \"tag\" "
      "(\"id\") ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, CONSTRAINT "
      "\"tag_friends_from_tag_id_to_tag_id_uniq\" UNIQUE (\"from_tag_id\", "
      "\"to_tag_id\"));\n"
      "CREATE INDEX \"tag_friends_from_tag_id_idx\" ON \"tag_friends\" "
      "(\"from_tag_id\");\n"
      "CREATE INDEX \"tag_friends_to_tag_id_idx\" ON \"tag_friends\" "
      "(\"to_tag_id\");\n");
  OK(dorm_ddl_add_field(&t.m, NULL, 0, &t.f[2], SL, &s, &e));
  apply2(x, &d, &s);
  dorm_ddl_free(&d);
  dorm_ddl_free(&s);
  db_close(&x[PG]);
  db_close(&x[SL]);
}

/* A SQLite rebuild of a table other tables point at keeps their rows and
 * their foreign keys working. */
static void test_rebuild_keeps_references(void **state) {
  (void)state;
  build_models();
  db x;
  db_open(&x, SL);
  create_all(&x);
  db_exec(&x,
          "INSERT INTO author (name, email, bio, active, data) VALUES ('A', "
          "'a', 'x', 1, X'00ff'), ('B', 'b', 'y', 0, NULL)");
  db_exec(&x,
          "INSERT INTO entry (author_id, headline, rating, editor_id) VALUES "
          "(1, 'h1', 1, 2), (2, 'h2', 2, NULL)");
  mcopy a;
  copy_model(&a, &author);
  a.f[1].max_length = 200; /* varchar(100) -> varchar(200): a rebuild */
  dorm_ddl d;
  dorm_ddl_init(&d);
  dorm_error e;
  OK(dorm_ddl_alter_field(&author, &a.m, NULL, 0, &author_f[1], &a.f[1], SL, &d,
                          &e));
  assert_int_equal(d.rebuilds, 1);
  db_run(&x, &d);
  expect_rows_sqlite(x.sl,
                     "SELECT id, name, email, bio, active, hex(data) FROM "
                     "author ORDER BY id",
                     "1|A|a|x|1|00FF\n2|B|b|y|0|\n");
  expect_rows_sqlite(x.sl,
                     "SELECT id, author_id, editor_id FROM entry ORDER BY id",
                     "1|1|2\n2|2|NULL\n");
  /* the indexes came back, and the foreign keys still act */
  expect_rows_sqlite(x.sl,
                     "SELECT name FROM sqlite_master WHERE type = 'index' AND "
                     "tbl_name = 'author' AND name NOT LIKE 'sqlite_%' ORDER "
                     "BY name",
                     "author_born_idx\nauthor_name_age_idx\n");
  db_exec(&x, "DELETE FROM author WHERE id = 2");
  expect_rows_sqlite(x.sl, "SELECT id, editor_id FROM entry ORDER BY id",
                     "1|NULL\n");
  dorm_ddl_free(&d);
  db_close(&x);
}

/* Every allocation failure comes back as DORM_ENOMEM with nothing built
 * and nothing leaked (ASan and valgrind check the leak half). */
static void test_alloc_failures(void **state) {
  (void)state;
  build_models();
  dorm_ddl d;
  dorm_ddl_init(&d);
  dorm_error e;
  const dorm_check_term t = {"age", DORM_CHECK_GTE, dorm_int(0)};
  const dorm_ddl_constraint k = {"age_ok", DORM_CONSTRAINT_CHECK, NULL, 0, &t,
                                 1};
  mcopy a;
  copy_model(&a, &author);
  a.f[3].flags = DORM_FIELD_HAS_DEFAULT;
  a.f[3].default_value = dorm_int(1);
  for (int op = 0; op < 5; op++) {
    for (int dl = 0; dl < 2; dl++) {
      int done = 0;
      for (long n = 1; n < 10000 && !done; n++) {
        dorm_test_fail_alloc_at(n);
        int rc;
        switch (op) {
          case 0:
            rc = dorm_ddl_create_model(&entry, NULL, 0, dl, &d, &e);
            break;
          case 1: rc = dorm_ddl_create_model(&author, &k, 1, dl, &d, &e); break;
          case 2:
            rc = dorm_ddl_alter_field(&author, &a.m, &k, 1, &author_f[3],
                                      &a.f[3], dl, &d, &e);
            break;
          case 3:
            rc = dorm_ddl_add_constraint(&author, NULL, 0, &k, dl, &d, &e);
            break;
          default:
            rc = dorm_ddl_rename_field(&entry, &entry, NULL, 0, &entry_f[5],
                                       &entry_f[5], dl, &d, &e);
        }
        long used = dorm_test_alloc_count();
        dorm_test_alloc_reset();
        if (rc == 0) {
          assert_true(used < n); /* succeeded without the failing one */
          assert_true(d.n > 0 || op == 4);
          done = 1;
        } else {
          if (rc != DORM_ENOMEM)
            fail_msg("op %d, failing allocation %ld: %s", op, n, e.message);
          assert_int_equal(d.n, 0);
          assert_null(d.stmts);
          assert_string_equal(e.message, "out of memory");
        }
      }
      assert_true(done);
    }
  }
  dorm_ddl_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quote_ident),
      cmocka_unit_test(test_refused_identifiers),
      cmocka_unit_test(test_create_model_golden),
      cmocka_unit_test(test_create_model_runs),
      cmocka_unit_test(test_field_operations),
      cmocka_unit_test(test_literals),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_many_to_many),
      cmocka_unit_test(test_rebuild_keeps_references),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
