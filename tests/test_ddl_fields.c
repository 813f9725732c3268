/* SPDX-License-Identifier: MIT */
/* tests/test_ddl_fields.c — the DDL compiler (include/dorm/ddl.h), every field
 * operation (add, alter, rename, remove, indexes, constraints, rename model)
 * with rows in the table, and a SQLite rebuild that keeps the rows and
 * references of the tables pointing at it.
 *
 * Golden SQL on both dialects, each statement run on SQLite, and on
 * PostgreSQL when the run has one (tests/ddltest.h).
 */
#include "ddltest.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_field_operations),
      cmocka_unit_test(test_rebuild_keeps_references),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
