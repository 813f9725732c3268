/* SPDX-License-Identifier: MIT */
/* tests/test_ddl.c — the DDL compiler (include/dorm/ddl.h), what reaches
 * its internals: literals (the one place values enter SQL, each read back
 * by both databases), the refused operations, many_to_many join tables
 * (their derived names cut with a hash), and allocation failure at every
 * step.  CREATE TABLE is in test_ddl_create.c, the field operations in
 * test_ddl_fields.c; the models and the db helpers in tests/ddltest.h.
 *
 * Golden SQL on both dialects, each statement run on SQLite, and on
 * PostgreSQL when the run has one (DORM_TEST_PG; tests/run.sh always has).
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
#include "query/ddl/ddl_int.h"
#include "support/sqlcheck.h"
#include "support/support.h"

#define PG DORM_DIALECT_POSTGRES
#define SL DORM_DIALECT_SQLITE

#include "ddltest.h"

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
      cmocka_unit_test(test_literals),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_many_to_many),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
