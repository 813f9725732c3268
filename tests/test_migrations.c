/* SPDX-License-Identifier: MIT */
/* tests/test_migrations.c — the pure half of migrations: parsing and
 * refusals (with file name and reason), ordering, the model state, the
 * autodetector's operations and order, inverses.
 *
 * The command-line walk over real databases is test_cli.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "dorm.h"
#include "dorm/migration.h"
#include "support/support.h"

static int parse(const char *text, const char *file, dorm_migration *m,
                 dorm_error *err) {
  dorm_error_clear(err);
  return dorm_migration_parse(text, strlen(text), file, m, err);
}

static void refused(const char *text, const char *want) {
  dorm_migration m;
  dorm_error err;
  int rc = parse(text, "migrations/0002_x.json", &m, &err);
  assert_int_not_equal(rc, 0);
  if (!strstr(err.message, want) || !strstr(err.message, "0002_x.json"))
    fail_msg("message '%s' lacks '%s' or the file name", err.message, want);
}

static void test_parse_ok(void **state) {
  (void)state;
  dorm_migration m;
  dorm_error err;
  assert_int_equal(
      parse("{\"name\": \"0002_x\", \"dependencies\": [\"0001_initial\"],"
            " \"operations\": [{\"op\": \"add_field\", \"model\": \"Author\","
            " \"field\": {\"name\": \"age\", \"type\": \"integer\"}}]}",
            "migrations/0002_x.json", &m, &err),
      0);
  assert_string_equal(m.name, "0002_x");
  assert_int_equal(m.number, 2);
  assert_int_equal(m.ndeps, 1);
  assert_int_equal(json_array_size(m.ops), 1);
  dorm_migration_clear(&m);
}

static void test_parse_refusals(void **state) {
  (void)state;
  refused("{\"name\": \"0002_x\", \"operations\": [", "malformed JSON");
  refused("{\"operations\": [{\"op\": \"add_colum\"}]}",
          "operation 1 (add_colum): unknown operation");
  refused("{\"operations\": [{\"op\": \"add_field\", \"model\": \"A\"}]}",
          "missing \"field\"");
  refused(
      "{\"operations\": [{\"op\": \"add_field\", \"model\": \"A\", "
      "\"field\": {\"name\": \"x\", \"type\": \"intger\"}}]}",
      "unknown type 'intger'");
  refused(
      "{\"operations\": [{\"op\": \"create_model\", \"name\": \"a\\\"; "
      "DROP TABLE x; --\", \"fields\": []}]}",
      "invalid name");
  refused("{\"name\": \"0003_y\", \"operations\": []}", "file is called");
  refused("{\"operations\": [], \"extra\": 1}", "unknown key 'extra'");
  refused(
      "{\"operations\": [{\"op\": \"alter_field\", \"model\": \"A\", "
      "\"field\": {\"name\": \"x\", \"type\": \"text\"}}]}",
      "old_field");
  /* line and column of the operation */
  refused("{\"operations\": [\n  {\"op\": \"nope\"}]}", "0002_x.json:2:3:");
}

static dorm_migration mig(const char *name, const char *deps) {
  char text[512];
  snprintf(text, sizeof text,
           "{\"name\": \"%s\", \"dependencies\": %s, \"operations\": []}", name,
           deps);
  dorm_migration m;
  dorm_error err;
  assert_int_equal(parse(text, name, &m, &err), 0);
  return m;
}

/* A NUL right after a literal, then an operation that is refused: the
 * position of the refused operation is found without looping forever. */
static void test_parse_nul_after_literal(void **state) {
  (void)state;
  static const char text[] =
      "{\"name\": \"0002_x\", \"operations\": [\n"
      "  {\"op\": \"add_field\", \"model\": \"A\", \"field\": {\"name\": "
      "\"b\", "
      "\"type\": \"boolean\", \"null\": true\0}},\n"
      "  {\"op\": \"add_colum\"}]}";
  dorm_migration m;
  dorm_error err;
  dorm_error_clear(&err);
  alarm(10); /* a hang is a failure, not a stuck suite */
  int rc = dorm_migration_parse(text, sizeof text - 1, "migrations/0002_x.json",
                                &m, &err);
  alarm(0);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(err.message, "operation 2 (add_colum)"));
  assert_non_null(strstr(err.message, "0002_x.json"));
}

static void test_order_and_refusals(void **state) {
  (void)state;
  dorm_error err;
  dorm_migration *ms = calloc(3, sizeof *ms);
  ms[0] = mig("0003_c", "[\"0002_b\"]");
  ms[1] = mig("0001_a", "[]");
  ms[2] = mig("0002_b", "[\"0001_a\"]");
  dorm_error_clear(&err);
  dorm_migration_set *set = dorm_migrations_order(ms, 3, &err);
  assert_non_null(set);
  assert_string_equal(set->migs[0].name, "0001_a");
  assert_string_equal(set->migs[2].name, "0003_c");
  assert_int_equal(dorm_migrations_find(set, "0002"), 1);
  size_t leaves[2];
  assert_int_equal(dorm_migrations_leaves(set, leaves, 2), 1);
  assert_int_equal(leaves[0], 2);
  dorm_migration_set_free(set);

  ms = calloc(2, sizeof *ms);
  ms[0] = mig("0001_a", "[\"0002_b\"]");
  ms[1] = mig("0002_b", "[\"0001_a\"]");
  dorm_error_clear(&err);
  assert_null(dorm_migrations_order(ms, 2, &err));
  assert_non_null(strstr(err.message, "dependency cycle"));

  ms = calloc(1, sizeof *ms);
  ms[0] = mig("0001_a", "[\"0000_zero\"]");
  dorm_error_clear(&err);
  assert_null(dorm_migrations_order(ms, 1, &err));
  assert_non_null(strstr(err.message, "unknown dependency '0000_zero'"));
}

static dorm_schema *load(const char *json) {
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_string(json, NULL, &err);
  if (!s) fail_msg("%s", err.message);
  return s;
}

/* Replay ops into a state and compare it with the models: no change. */
static void replays_to(json_t *ops, dorm_schema *to) {
  dorm_mstate *st = dorm_mstate_new();
  dorm_error err;
  for (size_t i = 0; i < json_array_size(ops); i++) {
    dorm_error_clear(&err);
    if (dorm_mstate_apply(st, json_array_get(ops, i), &err))
      fail_msg("op %zu: %s", i, err.message);
  }
  dorm_error_clear(&err);
  dorm_schema *from = dorm_mstate_schema(st, NULL, 0, &err);
  assert_non_null(from);
  json_t *again = dorm_autodetect(from, to, NULL, NULL, &err);
  assert_non_null(again);
  if (json_array_size(again)) {
    char *t = json_dumps(again, 0);
    fail_msg("changes left after replay: %s", t);
  }
  json_decref(again);
  dorm_schema_free(from);
  dorm_mstate_free(st);
}

static const char *op_at(json_t *ops, size_t i) {
  return json_string_value(json_object_get(json_array_get(ops, i), "op"));
}

static void test_autodetect_initial_order(void **state) {
  (void)state;
  /* Entry points at Author, declared after it: Author is created first. */
  dorm_schema *to = load(
      "{\"models\": [{\"name\": \"Entry\", \"fields\": [{\"name\": "
      "\"author\", \"type\": \"foreign_key\", \"to\": \"Author\"}]},"
      "{\"name\": \"Author\", \"fields\": [{\"name\": \"name\", \"type\": "
      "\"text\"}]}]}");
  dorm_error err;
  dorm_error_clear(&err);
  json_t *ops = dorm_autodetect(NULL, to, NULL, NULL, &err);
  assert_non_null(ops);
  assert_int_equal(json_array_size(ops), 2);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(ops, 0), "name")),
      "Author");
  replays_to(ops, to);
  char name[64];
  assert_int_equal(dorm_migration_auto_name(ops, 1, name, sizeof name), 0);
  assert_string_equal(name, "initial");
  json_decref(ops);
  dorm_schema_free(to);
}

static void test_autodetect_cycle(void **state) {
  (void)state;
  dorm_schema *to = load(
      "{\"models\": [{\"name\": \"A\", \"fields\": [{\"name\": \"b\", "
      "\"type\": \"foreign_key\", \"to\": \"B\", \"null\": true, "
      "\"related_name\": \"as_b\"}]},"
      "{\"name\": \"B\", \"fields\": [{\"name\": \"a\", \"related_name\": "
      "\"bs\", \"type\": "
      "\"foreign_key\", \"to\": \"A\"}]}]}");
  dorm_error err;
  dorm_error_clear(&err);
  json_t *notes = NULL;
  json_t *ops = dorm_autodetect(NULL, to, NULL, &notes, &err);
  assert_non_null(ops);
  assert_int_equal(json_array_size(ops), 3);
  assert_string_equal(op_at(ops, 0), "create_model");
  assert_string_equal(op_at(ops, 1), "create_model");
  assert_string_equal(op_at(ops, 2), "add_field");
  assert_true(json_array_size(notes) >= 1);
  replays_to(ops, to);
  json_decref(ops);
  json_decref(notes);
  dorm_schema_free(to);
}

static void test_autodetect_changes_and_reverse(void **state) {
  (void)state;
  dorm_schema *from = load(
      "{\"models\": [{\"name\": \"Author\", \"fields\": ["
      "{\"name\": \"name\", \"type\": \"varchar\", \"max_length\": 10},"
      "{\"name\": \"age\", \"type\": \"integer\"},"
      "{\"name\": \"bio\", \"type\": \"text\"}]}]}");
  dorm_schema *to = load(
      "{\"models\": [{\"name\": \"Author\", \"fields\": ["
      "{\"name\": \"name\", \"type\": \"varchar\", \"max_length\": 20},"
      "{\"name\": \"age\", \"type\": \"bigint\", \"null\": true},"
      "{\"name\": \"email\", \"type\": \"varchar\", \"max_length\": 99, "
      "\"null\": true}], \"indexes\": [{\"fields\": [\"name\"]}]}]}");
  dorm_error err;
  dorm_error_clear(&err);
  json_t *ops = dorm_autodetect(from, to, NULL, NULL, &err);
  assert_non_null(ops);
  /* remove bio, add email, alter name and age, add the index */
  assert_int_equal(json_array_size(ops), 5);
  assert_string_equal(op_at(ops, 0), "remove_field");
  assert_string_equal(op_at(ops, 1), "add_field");
  assert_string_equal(op_at(ops, 2), "alter_field");
  assert_string_equal(op_at(ops, 4), "add_index");
  /* reverse info */
  json_t *rm = json_array_get(ops, 0);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(rm, "field"), "type")),
      "text");
  json_t *alt = json_array_get(ops, 3);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(alt, "old_field"), "type")),
                      "integer");
  json_t *inv = dorm_migration_op_invert(alt, &err);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(inv, "field"), "type")),
      "integer");
  json_decref(inv);
  inv = dorm_migration_op_invert(rm, &err);
  assert_string_equal(json_string_value(json_object_get(inv, "op")),
                      "add_field");
  json_decref(inv);
  /* a run_sql without reverse_sql has no inverse */
  json_t *raw = json_pack("{ssss}", "op", "run_sql", "sql", "SELECT 1");
  dorm_error_clear(&err);
  assert_null(dorm_migration_op_invert(raw, &err));
  assert_int_equal(err.code, DORM_EMIGRATION);
  json_decref(raw);
  json_decref(ops);
  dorm_schema_free(from);
  dorm_schema_free(to);
}

static void test_renames(void **state) {
  (void)state;
  dorm_schema *from = load(
      "{\"models\": [{\"name\": \"Author\", \"fields\": ["
      "{\"name\": \"name\", \"type\": \"text\"},"
      "{\"name\": \"x\", \"type\": \"integer\"}, {\"name\": \"y\", "
      "\"type\": \"integer\"}]}]}");
  dorm_schema *to = load(
      "{\"models\": [{\"name\": \"Author\", \"fields\": ["
      "{\"name\": \"full_name\", \"type\": \"text\"},"
      "{\"name\": \"p\", \"type\": \"integer\"}, {\"name\": \"q\", "
      "\"type\": \"integer\"}]}]}");
  dorm_error err;
  dorm_error_clear(&err);
  json_t *notes = NULL;
  json_t *ops = dorm_autodetect(from, to, NULL, &notes, &err);
  assert_non_null(ops);
  /* name -> full_name is unambiguous and noted; x, y -> p, q is not. */
  assert_string_equal(op_at(ops, 0), "rename_field");
  assert_non_null(strstr(json_string_value(json_array_get(notes, 0)),
                         "Renamed field Author.name to full_name"));
  size_t renames = 0;
  for (size_t i = 0; i < json_array_size(ops); i++)
    renames += !strcmp(op_at(ops, i), "rename_field");
  assert_int_equal(renames, 1);
  json_decref(ops);
  json_decref(notes);
  /* asked for explicitly */
  dorm_rename fr[] = {{"Author", "x", "p"}, {"Author", "y", "q"}};
  dorm_autodetect_options o = {NULL, 0, fr, 2, 1};
  ops = dorm_autodetect(from, to, &o, NULL, &err);
  assert_non_null(ops);
  assert_int_equal(json_array_size(ops), 4); /* x, y, and name remove+add */
  json_decref(ops);
  /* an explicit rename that does not fit is refused */
  dorm_rename bad[] = {{"Author", "nope", "p"}};
  dorm_autodetect_options ob = {NULL, 0, bad, 1, 0};
  dorm_error_clear(&err);
  assert_null(dorm_autodetect(from, to, &ob, NULL, &err));
  assert_non_null(strstr(err.message, "nope"));
  dorm_schema_free(from);
  dorm_schema_free(to);
}

/* A field's db_index and a model index over that field alone are one
 * index in the database ("author_age_idx" either way): switching between
 * the two spellings writes nothing, in both directions, while a column
 * named otherwise (db_column, a foreign key's "_id") keeps them apart. */
static void test_index_spellings(void **state) {
  (void)state;
  static const char *const by_flag =
      "{\"models\": [{\"name\": \"Author\", \"fields\": ["
      "{\"name\": \"age\", \"type\": \"integer\", \"db_index\": true},"
      "{\"name\": \"code\", \"type\": \"integer\", \"db_column\": \"c\", "
      "\"db_index\": true}]}]}";
  static const char *const by_index =
      "{\"models\": [{\"name\": \"Author\", \"fields\": ["
      "{\"name\": \"age\", \"type\": \"integer\"},"
      "{\"name\": \"code\", \"type\": \"integer\", \"db_column\": \"c\"}], "
      "\"indexes\": [{\"fields\": [\"age\"]}, {\"fields\": [\"code\"]}]}]}";
  dorm_schema *a = load(by_flag), *b = load(by_index);
  dorm_error err;
  for (int dir = 0; dir < 2; dir++) {
    dorm_error_clear(&err);
    json_t *ops = dorm_autodetect(dir ? b : a, dir ? a : b, NULL, NULL, &err);
    if (!ops) fail_msg("autodetect: %s", err.message);
    /* only code's two indexes differ ("author_c_idx", "author_code_idx") */
    assert_int_equal(json_array_size(ops), 2);
    for (size_t i = 0; i < 2; i++) {
      char *s = json_dumps(json_array_get(ops, i), JSON_COMPACT);
      assert_non_null(strstr(s, "code"));
      assert_null(strstr(s, "\"age\""));
      free(s);
    }
    json_decref(ops);
  }
  /* after the switch, taking the index away is one operation that drops
   * it, in the spelling the migrations know */
  dorm_schema *none = load(
      "{\"models\": [{\"name\": \"Author\", \"fields\": ["
      "{\"name\": \"age\", \"type\": \"integer\"},"
      "{\"name\": \"code\", \"type\": \"integer\", \"db_column\": \"c\"}], "
      "\"indexes\": [{\"fields\": [\"code\"]}]}]}");
  dorm_error_clear(&err);
  json_t *ops = dorm_autodetect(b, none, NULL, NULL, &err);
  assert_int_equal(json_array_size(ops), 1);
  assert_string_equal(op_at(ops, 0), "remove_index");
  json_decref(ops);
  dorm_schema_free(a);
  dorm_schema_free(b);
  dorm_schema_free(none);
}

/* A model whose name changes only in case (inspectdb reads table
 * blogentry back as "Blogentry") is renamed, even with --no-detect-renames
 * and with other changes: a delete and a create of names equal but for
 * case could not both apply. */
static void test_rename_case_only(void **state) {
  (void)state;
  dorm_schema *from = load(
      "{\"models\": [{\"name\": \"BlogEntry\", \"fields\": ["
      "{\"name\": \"title\", \"type\": \"text\"}]}]}");
  dorm_schema *to = load(
      "{\"models\": [{\"name\": \"Blogentry\", \"fields\": ["
      "{\"name\": \"title\", \"type\": \"text\"},"
      "{\"name\": \"n\", \"type\": \"integer\", \"null\": true}]}]}");
  dorm_autodetect_options o = {NULL, 0, NULL, 0, 1}; /* no_detect_renames */
  dorm_error err;
  dorm_error_clear(&err);
  json_t *notes = NULL;
  json_t *ops = dorm_autodetect(from, to, &o, &notes, &err);
  if (!ops) fail_msg("autodetect: %s", err.message);
  assert_int_equal(json_array_size(ops), 2);
  assert_string_equal(op_at(ops, 0), "rename_model");
  json_t *r = json_array_get(ops, 0);
  assert_string_equal(json_string_value(json_object_get(r, "old_name")),
                      "BlogEntry");
  assert_string_equal(json_string_value(json_object_get(r, "new_name")),
                      "Blogentry");
  assert_null(json_object_get(r, "new_table")); /* blogentry either way */
  assert_string_equal(op_at(ops, 1), "add_field");
  assert_non_null(strstr(json_string_value(json_array_get(notes, 0)),
                         "differ only in case"));
  json_decref(ops);
  json_decref(notes);
  dorm_schema_free(from);
  dorm_schema_free(to);
}

static void test_state_refusals(void **state) {
  (void)state;
  dorm_mstate *st = dorm_mstate_new();
  dorm_error err;
  json_t *op = json_loads(
      "{\"op\": \"add_field\", \"model\": \"Ghost\", \"field\": {\"name\": "
      "\"x\", \"type\": \"text\"}}",
      0, NULL);
  dorm_error_clear(&err);
  assert_int_equal(dorm_mstate_apply(st, op, &err), DORM_EMIGRATION);
  assert_non_null(strstr(err.message, "no model 'Ghost'"));
  json_decref(op);
  op = json_loads(
      "{\"op\": \"create_model\", \"name\": \"A\", \"fields\": [{\"name\": "
      "\"id\", \"type\": \"auto\", \"primary_key\": true}]}",
      0, NULL);
  assert_int_equal(dorm_mstate_apply(st, op, &err), 0);
  dorm_error_clear(&err);
  assert_int_equal(dorm_mstate_apply(st, op, &err), DORM_EMIGRATION);
  assert_non_null(strstr(err.message, "already exists"));
  json_decref(op);
  assert_int_equal(dorm_mstate_nmodels(st), 1);
  dorm_mstate_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_ok),
      cmocka_unit_test(test_parse_refusals),
      cmocka_unit_test(test_parse_nul_after_literal),
      cmocka_unit_test(test_order_and_refusals),
      cmocka_unit_test(test_autodetect_initial_order),
      cmocka_unit_test(test_autodetect_cycle),
      cmocka_unit_test(test_autodetect_changes_and_reverse),
      cmocka_unit_test(test_renames),
      cmocka_unit_test(test_rename_case_only),
      cmocka_unit_test(test_index_spellings),
      cmocka_unit_test(test_state_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
