/* SPDX-License-Identifier: MIT */
/* tests/test_ddl_create.c — the DDL compiler (include/dorm/ddl.h), CREATE
 * TABLE: identifier quoting and the refused identifiers, every type and option
 * in golden SQL, and the tables run on both databases with their constraints at
 * work.
 *
 * Golden SQL on both dialects, each statement run on SQLite, and on
 * PostgreSQL when the run has one (tests/ddltest.h).
 */
#include "ddltest.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quote_ident),
      cmocka_unit_test(test_refused_identifiers),
      cmocka_unit_test(test_create_model_golden),
      cmocka_unit_test(test_create_model_runs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
