/* SPDX-License-Identifier: MIT */
/* tests/test_schema.c — models: models.json loading, the C builder,
 * lookups, every refusal with its exact message, and allocation failure.
 *
 * Fixtures live in tests/data/ (the suite runs from the repo root):
 * contract_models.json is a complete example models file (the format is
 * docs/models.md's),
 * blog_models.json a fuller blog schema other tests reuse.
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
#include <jansson.h>

#include "dorm.h"
#include "support/support.h"

static void assert_text(dorm_value v, dorm_type t, const char *s) {
  assert_int_equal(v.type, t);
  assert_int_equal(v.u.s.len, strlen(s));
  assert_memory_equal(v.u.s.ptr, s, strlen(s));
}

/* Load text under the name "models.json" and expect a refusal. */
static int g_soft; /* report every mismatch, not just the first */
static int g_mismatches;
static void refused(const char *json, int code, const char *message) {
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_string(json, "models.json", &err);
  if ((s || err.code != code || strcmp(err.message, message) != 0) && g_soft) {
    g_mismatches++;
    print_message("expected %s \"%s\"\n     got %s \"%s\"\n",
                  dorm_err_name(code), message, dorm_err_name(err.code),
                  err.message);
    dorm_schema_free(s);
    return;
  }
  if (s || err.code != code || strcmp(err.message, message) != 0)
    fail_msg("expected %s \"%s\"\n     got %s \"%s\"", dorm_err_name(code),
             message, dorm_err_name(err.code), err.message);
  assert_null(s);
}

/* ---- the example models file (tests/data/contract_models.json) ----------- */

static void test_contract_example(void **state) {
  (void)state;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s =
      dorm_schema_load_file("tests/data/contract_models.json", &err);
  if (!s) fail_msg("%s", err.message);
  assert_int_equal(err.code, 0);
  assert_string_equal(s->source, "tests/data/contract_models.json");
  assert_int_equal(s->nmodels, 2);

  const dorm_model *a = dorm_schema_model(s, "Author");
  assert_non_null(a);
  assert_ptr_equal(dorm_schema_model(s, "author"), a);
  assert_ptr_equal(dorm_schema_model(s, "AUTHOR"), a);
  assert_null(dorm_schema_model(s, "Autor"));
  assert_string_equal(a->table, "author");
  assert_ptr_equal(a->schema, s);
  assert_int_equal(a->line, 3);
  assert_int_equal(a->col, 5);
  assert_int_equal(a->nfields, 6);
  assert_string_equal(a->fields[0].name, "id");
  assert_ptr_equal(a->pk, &a->fields[0]);
  assert_int_equal(a->pk->type, DORM_FIELD_AUTO);
  assert_int_equal(a->pk->flags, DORM_FIELD_PRIMARY_KEY | DORM_FIELD_UNIQUE);
  assert_int_equal(a->fields[0].line, 7);
  assert_int_equal(a->fields[0].col, 9);

  const dorm_field *name = dorm_model_field(a, "name");
  assert_non_null(name);
  assert_int_equal(name->type, DORM_FIELD_VARCHAR);
  assert_int_equal(name->max_length, 100);
  assert_string_equal(name->column, "name");
  assert_int_equal(name->flags, 0);
  assert_ptr_equal(name->model, a);
  assert_int_equal(dorm_field_value_type(name), DORM_T_TEXT);

  const dorm_field *email = dorm_model_field(a, "email");
  assert_int_equal(email->max_length, 254);
  assert_int_equal(email->flags, DORM_FIELD_UNIQUE);

  const dorm_field *age = dorm_model_field(a, "age");
  assert_int_equal(age->type, DORM_FIELD_INTEGER);
  assert_int_equal(age->flags, DORM_FIELD_NULL);
  assert_int_equal(dorm_field_value_type(age), DORM_T_INT);

  const dorm_field *bio = dorm_model_field(a, "bio");
  assert_int_equal(bio->type, DORM_FIELD_TEXT);
  assert_int_equal(bio->flags, DORM_FIELD_HAS_DEFAULT);
  assert_text(bio->default_value, DORM_T_TEXT, "");

  const dorm_field *joined = dorm_model_field(a, "joined");
  assert_int_equal(joined->type, DORM_FIELD_DATETIME);
  assert_int_equal(dorm_field_value_type(joined), DORM_T_DATETIME);

  assert_int_equal(a->nindexes, 1);
  assert_string_equal(a->indexes[0].name, "author_name_age_idx");
  assert_int_equal(a->indexes[0].nfields, 2);
  assert_string_equal(a->indexes[0].fields[0], "name");
  assert_string_equal(a->indexes[0].fields[1], "age");
  assert_int_equal(a->indexes[0].unique, 0);
  assert_int_equal(a->nunique_together, 1);
  assert_string_equal(a->unique_together[0].name, "author_name_email_uniq");
  assert_int_equal(a->unique_together[0].unique, 1);
  assert_int_equal(a->unique_together[0].nfields, 2);
  assert_int_equal(a->nordering, 1);
  assert_string_equal(a->ordering[0], "-joined");

  const dorm_model *e = dorm_schema_model(s, "Entry");
  assert_non_null(e);
  assert_string_equal(e->table, "entry");
  assert_int_equal(e->nfields, 5); /* implicit id first */
  assert_string_equal(e->fields[0].name, "id");
  assert_string_equal(e->fields[0].column, "id");
  assert_int_equal(e->fields[0].type, DORM_FIELD_AUTO);
  assert_ptr_equal(e->pk, &e->fields[0]);
  const dorm_field *au = dorm_model_field(e, "author");
  assert_ptr_equal(au, &e->fields[1]);
  assert_int_equal(au->type, DORM_FIELD_FOREIGN_KEY);
  assert_true(dorm_field_is_fk(au));
  assert_string_equal(au->column, "author_id");
  assert_ptr_equal(dorm_model_field_by_column(e, "author_id"), au);
  assert_null(dorm_model_field_by_column(e, "author"));
  assert_string_equal(au->to, "Author");
  assert_ptr_equal(au->target, a);
  assert_int_equal(au->on_delete, DORM_ON_DELETE_CASCADE);
  assert_string_equal(au->related_name, "entries");
  assert_int_equal(dorm_field_value_type(au), DORM_T_INT);
  assert_int_equal(au->line, 21);
  assert_int_equal(au->col, 9);
  const dorm_field *rating = dorm_model_field(e, "rating");
  assert_int_equal(rating->type, DORM_FIELD_FLOAT);
  assert_true(rating->flags & DORM_FIELD_HAS_DEFAULT);
  assert_int_equal(rating->default_value.type, DORM_T_FLOAT);
  assert_true(rating->default_value.u.f == 0.0);
  const dorm_field *tags = dorm_model_field(e, "tags");
  assert_int_equal(tags->type, DORM_FIELD_JSON);
  assert_int_equal(tags->flags, DORM_FIELD_NULL);
  assert_int_equal(dorm_field_value_type(tags), DORM_T_JSON);
  assert_null(dorm_model_field(e, "nope"));
  assert_int_equal(e->nindexes, 0);
  assert_int_equal(e->nordering, 0);
  dorm_schema_free(s);
}

/* ---- the blog fixture: every type and option ----------------------------- */

static void test_blog_every_type(void **state) {
  (void)state;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_file("tests/data/blog_models.json", &err);
  if (!s) fail_msg("%s", err.message);
  assert_int_equal(s->nmodels, 5);

  const dorm_model *a = dorm_schema_model(s, "Author");
  const dorm_field *country = dorm_model_field(a, "country");
  assert_text(country->default_value, DORM_T_TEXT, "US");
  assert_int_equal(country->nchoices, 3);
  assert_text(country->choices[1], DORM_T_TEXT, "GB");
  assert_non_null(country->choice_labels);
  assert_string_equal(country->choice_labels[2], "France");
  const dorm_field *active = dorm_model_field(a, "is_active");
  assert_int_equal(active->type, DORM_FIELD_BOOLEAN);
  assert_int_equal(active->default_value.type, DORM_T_BOOL);
  assert_int_equal(active->default_value.u.b, 1);
  assert_int_equal(dorm_field_value_type(active), DORM_T_BOOL);
  assert_int_equal(a->nordering, 2);
  assert_string_equal(a->ordering[1], "name");

  const dorm_model *p = dorm_schema_model(s, "Profile");
  const dorm_field *o2o = dorm_model_field(p, "author");
  assert_int_equal(o2o->type, DORM_FIELD_ONE_TO_ONE);
  assert_true(dorm_field_is_fk(o2o));
  assert_true(o2o->flags & DORM_FIELD_UNIQUE); /* implied */
  assert_string_equal(o2o->column, "author_id");
  assert_ptr_equal(o2o->target, a);
  const dorm_field *avatar = dorm_model_field(p, "avatar");
  assert_int_equal(dorm_field_value_type(avatar), DORM_T_BYTES);
  const dorm_field *settings = dorm_model_field(p, "settings");
  assert_text(settings->default_value, DORM_T_JSON,
              "{\"emails\":true,\"theme\":\"light\"}");

  const dorm_model *e = dorm_schema_model(s, "entry");
  assert_string_equal(e->name, "Entry");
  assert_string_equal(e->table, "blog_entry");
  const dorm_model *tag = dorm_schema_model(s, "Tag");
  const dorm_field *m2m = dorm_model_field(e, "tags");
  assert_int_equal(m2m->type, DORM_FIELD_MANY_TO_MANY);
  assert_false(dorm_field_is_fk(m2m));
  assert_null(m2m->column);
  assert_ptr_equal(m2m->target, tag); /* declared later in the file */
  assert_string_equal(m2m->through_table, "blog_entry_tags");
  assert_int_equal(dorm_field_value_type(m2m), DORM_T_NULL);
  assert_int_equal(dorm_field_value_type(dorm_model_field(e, "pub_date")),
                   DORM_T_DATE);
  const dorm_field *price = dorm_model_field(e, "price");
  assert_int_equal(price->max_digits, 8);
  assert_int_equal(price->decimal_places, 2);
  assert_text(price->default_value, DORM_T_DECIMAL, "0.00");
  assert_int_equal(dorm_field_value_type(price), DORM_T_DECIMAL);
  const dorm_field *pings = dorm_model_field(e, "n_pingbacks");
  assert_int_equal(pings->type, DORM_FIELD_SMALLINT);
  assert_int_equal(pings->default_value.type, DORM_T_INT);
  const dorm_field *views = dorm_model_field(e, "views");
  assert_int_equal(views->type, DORM_FIELD_BIGINT);
  assert_int_equal(views->flags, DORM_FIELD_DB_INDEX | DORM_FIELD_HAS_DEFAULT);
  const dorm_field *status = dorm_model_field(e, "status");
  assert_int_equal(status->nchoices, 3);
  assert_text(status->choices[2], DORM_T_TEXT, "archived");
  assert_null(status->choice_labels[0]);
  assert_string_equal(e->indexes[0].name, "entry_pub_status_idx");

  assert_int_equal(tag->pk->type, DORM_FIELD_BIGAUTO);
  assert_int_equal(tag->nfields, 2);

  const dorm_model *c = dorm_schema_model(s, "Comment");
  assert_string_equal(c->pk->name, "uid");
  assert_int_equal(dorm_field_value_type(c->pk), DORM_T_UUID);
  const dorm_field *parent = dorm_model_field(c, "parent");
  assert_ptr_equal(parent->target, c); /* self-reference */
  assert_int_equal(parent->on_delete, DORM_ON_DELETE_SET_NULL);
  assert_int_equal(dorm_field_value_type(parent), DORM_T_UUID);
  const dorm_field *an = dorm_model_field(c, "author_name");
  assert_string_equal(an->column, "author");
  assert_ptr_equal(dorm_model_field_by_column(c, "author"), an);
  /* date-times are kept in the canonical UTC form the compiler sends */
  assert_text(dorm_model_field(c, "posted_at")->default_value, DORM_T_DATETIME,
              "2024-01-01 00:00:00");
  assert_int_equal(dorm_field_value_type(dorm_model_field(c, "posted_time")),
                   DORM_T_TIME);
  dorm_schema_free(s);
}

/* ---- built in C ---------------------------------------------------------- */

/* a project with no models yet is a valid (empty) schema */
static void test_empty_models(void **state) {
  (void)state;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_string("{\"models\": []}", NULL, &err);
  if (!s) fail_msg("%s", err.message);
  assert_int_equal(s->nmodels, 0);
  assert_null(dorm_schema_model(s, "Author"));
  dorm_schema_free(s);
}

static void test_builder(void **state) {
  (void)state;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema_builder *b = dorm_schema_builder_new();
  assert_non_null(b);
  char name[16];
  strcpy(name, "Author"); /* the builder copies: scribble afterwards */
  assert_int_equal(dorm_schema_builder_model(b, name, NULL), 0);
  strcpy(name, "XXXXXX");
  dorm_schema_builder_field(b, "name", DORM_FIELD_VARCHAR, 0);
  dorm_schema_builder_max_length(b, 100);
  dorm_schema_builder_field(b, "age", DORM_FIELD_INTEGER, DORM_FIELD_NULL);
  dorm_schema_builder_default(b, dorm_int(18));
  dorm_schema_builder_field(b, "born", DORM_FIELD_DATE, DORM_FIELD_NULL);
  dorm_schema_builder_default(b, dorm_str("1990-02-28"));
  const char *idx[] = {"name", "age"};
  dorm_schema_builder_index(b, NULL, idx, 2, 0);
  dorm_schema_builder_index(b, NULL, idx, 2, 1);
  dorm_schema_builder_unique_index(b, "author_name_uniq_ix", idx, 1);
  dorm_schema_builder_ordering(b, "-age");

  dorm_schema_builder_model(b, "Book", "books");
  dorm_schema_builder_field(b, "isbn", DORM_FIELD_VARCHAR,
                            DORM_FIELD_PRIMARY_KEY);
  dorm_schema_builder_max_length(b, 13);
  dorm_schema_builder_field(b, "writer", DORM_FIELD_FOREIGN_KEY,
                            DORM_FIELD_NULL);
  dorm_schema_builder_relation(b, "Author", DORM_ON_DELETE_SET_NULL, "books");
  dorm_schema_builder_db_column(b, "author_ref");
  dorm_schema_builder_field(b, "price", DORM_FIELD_DECIMAL, 0);
  dorm_schema_builder_decimal(b, 6, 2);
  dorm_schema_builder_default(b, dorm_int(10));
  dorm_schema_builder_field(b, "extra", DORM_FIELD_JSON, 0);
  dorm_schema_builder_default(b, dorm_json_text("{ \"b\": 1, \"a\": [1, 2] }"));
  dorm_schema_builder_field(b, "genre", DORM_FIELD_SMALLINT, 0);
  dorm_value ch[] = {dorm_int(1), dorm_int(2)};
  const char *labels[] = {"novel", "poetry"};
  dorm_schema_builder_choices(b, ch, labels, 2);
  dorm_schema_builder_field(b, "related", DORM_FIELD_MANY_TO_MANY, 0);
  dorm_schema_builder_relation(b, "self", DORM_ON_DELETE_CASCADE, NULL);
  dorm_schema *s = dorm_schema_builder_finish(b, &err);
  if (!s) fail_msg("%s", err.message);
  assert_string_equal(s->source, "<memory>");

  const dorm_model *a = dorm_schema_model(s, "Author");
  assert_non_null(a);
  assert_string_equal(a->table, "author");
  assert_int_equal(a->nfields, 4);
  assert_string_equal(a->pk->name, "id");
  assert_int_equal(a->pk->line, 0);
  const dorm_field *age = dorm_model_field(a, "age");
  assert_int_equal(age->default_value.type, DORM_T_INT);
  assert_int_equal(age->default_value.u.i, 18);
  assert_text(dorm_model_field(a, "born")->default_value, DORM_T_DATE,
              "1990-02-28");
  assert_int_equal(a->nindexes, 2);
  assert_string_equal(a->indexes[0].name, "author_name_age_idx");
  assert_string_equal(a->indexes[1].name, "author_name_uniq_ix");
  assert_int_equal(a->indexes[1].unique, 1);
  assert_int_equal(a->nunique_together, 1);
  assert_string_equal(a->unique_together[0].name, "author_name_age_uniq");
  assert_string_equal(a->ordering[0], "-age");

  const dorm_model *bk = dorm_schema_model(s, "Book");
  assert_string_equal(bk->table, "books");
  assert_int_equal(bk->nfields, 6); /* a primary key given: no implicit id */
  assert_string_equal(bk->pk->name, "isbn");
  assert_int_equal(bk->pk->flags, DORM_FIELD_PRIMARY_KEY | DORM_FIELD_UNIQUE);
  const dorm_field *w = dorm_model_field(bk, "writer");
  assert_string_equal(w->column, "author_ref");
  assert_ptr_equal(w->target, a);
  assert_string_equal(w->related_name, "books");
  const dorm_field *price = dorm_model_field(bk, "price");
  assert_text(price->default_value, DORM_T_DECIMAL, "10");
  assert_text(dorm_model_field(bk, "extra")->default_value, DORM_T_JSON,
              "{\"a\":[1,2],\"b\":1}");
  const dorm_field *genre = dorm_model_field(bk, "genre");
  assert_int_equal(genre->nchoices, 2);
  assert_string_equal(genre->choice_labels[1], "poetry");
  const dorm_field *rel = dorm_model_field(bk, "related");
  assert_ptr_equal(rel->target, bk);
  assert_string_equal(rel->through_table, "books_related");
  dorm_schema_free(s);
}

static void test_builder_sticky_error(void **state) {
  (void)state;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema_builder *b = dorm_schema_builder_new();
  /* An option before any field: recorded, later calls do nothing. */
  assert_int_equal(dorm_schema_builder_max_length(b, 3), DORM_EINVAL);
  assert_int_equal(dorm_schema_builder_model(b, "A", NULL), DORM_EINVAL);
  assert_null(dorm_schema_builder_finish(b, &err));
  assert_int_equal(err.code, DORM_EINVAL);
  assert_string_equal(err.message, "max_length: no field to apply it to");

  /* Semantic errors from a builder carry no file position. */
  dorm_error_clear(&err);
  b = dorm_schema_builder_new();
  dorm_schema_builder_model(b, "Entry", NULL);
  dorm_schema_builder_field(b, "author", DORM_FIELD_FOREIGN_KEY, 0);
  dorm_schema_builder_relation(b, "Autor", DORM_ON_DELETE_CASCADE, NULL);
  assert_null(dorm_schema_builder_finish(b, &err));
  assert_int_equal(err.code, DORM_ESCHEMA);
  assert_string_equal(err.message,
                      "model 'Entry', field 'author': unknown model 'Autor'");

  /* A failed dorm_schema_builder_new reads as out of memory throughout. */
  dorm_error_clear(&err);
  assert_int_equal(dorm_schema_builder_model(NULL, "A", NULL), DORM_ENOMEM);
  assert_null(dorm_schema_builder_finish(NULL, &err));
  assert_int_equal(err.code, DORM_ENOMEM);
  dorm_schema_builder_free(NULL);
  dorm_schema_free(NULL);
}

/* ---- helpers ------------------------------------------------------------- */

static void test_helpers(void **state) {
  (void)state;
  assert_true(dorm_ident_valid("_a1"));
  assert_true(dorm_ident_valid("Author"));
  assert_false(dorm_ident_valid(""));
  assert_false(dorm_ident_valid(NULL));
  assert_false(dorm_ident_valid("1a"));
  assert_false(dorm_ident_valid("a-b"));
  assert_false(dorm_ident_valid("a b"));
  assert_false(dorm_ident_valid("\xc3\xa9t\xc3\xa9"));
  char long_name[80];
  memset(long_name, 'a', 63);
  long_name[63] = '\0';
  assert_true(dorm_ident_valid(long_name));
  long_name[63] = 'a';
  long_name[64] = '\0';
  assert_false(dorm_ident_valid(long_name));

  for (int t = 0; t < DORM_FIELD__COUNT; t++) {
    const char *n = dorm_field_type_name((dorm_field_type)t);
    assert_non_null(n);
    assert_int_equal(dorm_field_type_parse(n), t);
  }
  assert_string_equal(dorm_field_type_name(DORM_FIELD_FOREIGN_KEY),
                      "foreign_key");
  assert_null(dorm_field_type_name(DORM_FIELD__COUNT));
  assert_int_equal(dorm_field_type_parse("strnig"), -1);
  assert_int_equal(dorm_field_type_parse(NULL), -1);

  static const struct {
    dorm_field_type t;
    dorm_type v;
  } vt[] = {
      {DORM_FIELD_AUTO, DORM_T_INT},
      {DORM_FIELD_BIGAUTO, DORM_T_INT},
      {DORM_FIELD_SMALLINT, DORM_T_INT},
      {DORM_FIELD_INTEGER, DORM_T_INT},
      {DORM_FIELD_BIGINT, DORM_T_INT},
      {DORM_FIELD_FLOAT, DORM_T_FLOAT},
      {DORM_FIELD_DECIMAL, DORM_T_DECIMAL},
      {DORM_FIELD_BOOLEAN, DORM_T_BOOL},
      {DORM_FIELD_VARCHAR, DORM_T_TEXT},
      {DORM_FIELD_TEXT, DORM_T_TEXT},
      {DORM_FIELD_DATE, DORM_T_DATE},
      {DORM_FIELD_DATETIME, DORM_T_DATETIME},
      {DORM_FIELD_TIME, DORM_T_TIME},
      {DORM_FIELD_UUID, DORM_T_UUID},
      {DORM_FIELD_JSON, DORM_T_JSON},
      {DORM_FIELD_BINARY, DORM_T_BYTES},
      {DORM_FIELD_MANY_TO_MANY, DORM_T_NULL},
  };
  for (size_t i = 0; i < sizeof vt / sizeof vt[0]; i++) {
    dorm_field f;
    memset(&f, 0, sizeof f);
    f.type = vt[i].t;
    assert_int_equal(dorm_field_value_type(&f), vt[i].v);
  }
  dorm_field fk;
  memset(&fk, 0, sizeof fk);
  fk.type = DORM_FIELD_FOREIGN_KEY;
  assert_int_equal(dorm_field_value_type(&fk), DORM_T_NULL); /* unresolved */
  assert_int_equal(dorm_field_value_type(NULL), DORM_T_NULL);
  assert_false(dorm_field_is_fk(NULL));
}

/* ---- refusals ------------------------------------------------------------ */

static void test_contract_message(void **state) {
  (void)state;
  /* The message docs/models.md shows, to the column: line 14, column 9 is the
   * field object of Entry.author. */
  refused(
      "{\n"
      "  \"models\": [\n"
      "    {\n"
      "      \"name\": \"Author\",\n"
      "      \"fields\": [\n"
      "        {\"name\": \"name\", \"type\": \"varchar\", \"max_length\": "
      "100},\n"
      "        {\"name\": \"email\", \"type\": \"varchar\", \"max_length\": "
      "254}\n"
      "      ]\n"
      "    },\n"
      "    {\n"
      "      \"name\": \"Entry\",\n"
      "      \"fields\": [\n"
      "        {\"name\": \"headline\", \"type\": \"text\"},\n"
      "        {\"name\": \"author\", \"type\": \"foreign_key\", \"to\": "
      "\"Autor\",\n"
      "         \"on_delete\": \"cascade\"}\n"
      "      ]\n"
      "    }\n"
      "  ]\n"
      "}\n",
      DORM_ESCHEMA,
      "models.json:14:9: model 'Entry', field 'author': unknown model "
      "'Autor'");
}

static void test_io_and_syntax(void **state) {
  (void)state;
  dorm_error err;
  dorm_error_clear(&err);
  assert_null(dorm_schema_load_file("tests/data/no_such_file.json", &err));
  assert_int_equal(err.code, DORM_EIO);
  assert_string_equal(
      err.message,
      "tests/data/no_such_file.json: cannot open: No such file or directory");

  refused("{\"models\": [\n  {\"name\": \"A\",}\n]}", DORM_EJSON,
          "models.json:2:16: malformed JSON: string or '}' expected near "
          "'}'");
  refused("", DORM_EJSON,
          "models.json:1:0: malformed JSON: '[' or '{' expected near end of "
          "file");
  refused("{\"models\": [], \"models\": []}", DORM_EJSON,
          "models.json:1:23: malformed JSON: duplicate object key near "
          "'\"models\"'");
}

/* A NUL byte right after a literal, then a validation error: the
 * position finder once looped forever on it (strchr finds the NUL). */
static void test_nul_after_literal(void **state) {
  (void)state;
  static const char text[] =
      "{\"models\": [{\"name\": \"A\", \"fields\": [\n"
      "  {\"name\": \"ok\", \"type\": \"boolean\", \"null\": true\0},\n"
      "  {\"name\": \"x\", \"type\": \"intger\"}]}]}\n";
  char path[] = "/tmp/dorm-test-nul.XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)sizeof text - 1);
  close(fd);
  dorm_error err;
  dorm_error_clear(&err);
  alarm(10); /* a hang is a failure, not a stuck suite */
  dorm_schema *s = dorm_schema_load_file(path, &err);
  alarm(0);
  unlink(path);
  assert_null(s);
  assert_true(err.code == DORM_EJSON || err.code == DORM_ESCHEMA);
  assert_true(strlen(err.message) > 10);
}

/* A document whose field under test sits at line 4, column 5, after a
 * valid field "name" of model Author (line 2, column 3). */
static const char *doc_f(const char *fields) {
  static char buf[4096];
  snprintf(buf, sizeof buf,
           "{\"models\": [\n"
           "  {\"name\": \"Author\", \"fields\": [\n"
           "    {\"name\": \"name\", \"type\": \"varchar\", \"max_length\": "
           "10},\n"
           "    %s\n"
           "  ]}\n"
           "]}\n",
           fields);
  return buf;
}

/* A document whose first model sits at line 2, column 3. */
static const char *doc_m(const char *models) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "{\"models\": [\n  %s\n]}\n", models);
  return buf;
}

typedef struct refusal {
  char kind; /* 'f': doc_f, 'm': doc_m, 'r': raw */
  const char *text;
  const char *message; /* all DORM_ESCHEMA */
} refusal;

#define P "models.json:4:5: model 'Author', "
static const refusal field_refusals[] = {
    /* types */
    {'f', "{\"name\": \"x\", \"type\": \"intger\"}",
     "models.json:4:19: model 'Author', field 'x': unknown type 'intger' "
     "(did you mean 'integer'?)"},
    {'f', "{\"name\": \"x\", \"type\": \"strange\"}",
     "models.json:4:19: model 'Author', field 'x': unknown type 'strange'"},
    {'f', "{\"name\": \"x\"}", P "field 'x': missing \"type\""},
    {'f', "{\"type\": \"text\"}", P "field #2: missing \"name\""},
    {'f', "[]", P "field #2: must be an object"},
    {'f', "{\"name\": 7, \"type\": \"text\"}",
     "models.json:4:6: model 'Author', field #2: \"name\" must be a string"},
    /* unknown keys and JSON types of options */
    {'f', "{\"name\": \"x\", \"type\": \"text\", \"nul\": true}",
     "models.json:4:35: model 'Author', field 'x': unknown key 'nul' (did "
     "you mean 'null'?)"},
    {'f', "{\"name\": \"x\", \"type\": \"text\", \"blank\": true}",
     "models.json:4:35: model 'Author', field 'x': unknown key 'blank'"},
    {'f', "{\"name\": \"x\", \"type\": \"text\", \"null\": \"yes\"}",
     "models.json:4:35: model 'Author', field 'x': \"null\" must be true or "
     "false"},
    {'f', "{\"name\": \"x\", \"type\": \"text\", \"unique\": 1}",
     "models.json:4:35: model 'Author', field 'x': \"unique\" must be true "
     "or false"},
    {'f', "{\"name\": \"x\", \"type\": \"varchar\", \"max_length\": \"9\"}",
     "models.json:4:38: model 'Author', field 'x': \"max_length\" must be "
     "an integer"},
    {'f', "{\"name\": \"x\", \"type\": \"varchar\", \"max_length\": 1e3}",
     "models.json:4:38: model 'Author', field 'x': \"max_length\" must be "
     "an integer"},
    {'f',
     "{\"name\": \"x\", \"type\": \"varchar\", \"max_length\": 9999999999}",
     "models.json:4:38: model 'Author', field 'x': \"max_length\" is out of "
     "range"},
    {'f', "{\"name\": \"x\", \"type\": \"foreign_key\", \"to\": 3}",
     "models.json:4:42: model 'Author', field 'x': \"to\" must be a string"},
    {'f', "{\"name\": \"x\", \"type\": \"integer\", \"choices\": 3}",
     "models.json:4:38: model 'Author', field 'x': \"choices\" must be an "
     "array"},
    {'f', "{\"name\": \"x\", \"type\": \"integer\", \"choices\": [{}]}",
     "models.json:4:38: model 'Author', field 'x': \"choices\" entries must "
     "be values or [value, label] pairs"},
    /* names */
    {'f', "{\"name\": \"first-name\", \"type\": \"text\"}",
     P "field 'first-name': invalid field name 'first-name': identifiers "
       "must match ^[A-Za-z_][A-Za-z0-9_]*$ and be at most 63 bytes"},
    {'f', "{\"name\": \"1st\", \"type\": \"text\"}",
     P "field '1st': invalid field name '1st': identifiers must match "
       "^[A-Za-z_][A-Za-z0-9_]*$ and be at most 63 bytes"},
    {'f',
     "{\"name\": \"a234567890123456789012345678901234567890123456789012345678"
     "901234\", \"type\": \"text\"}",
     P "field 'a234567890123456789012345678901234567890123456789012345678901"
       "234': invalid field name "
       "'a234567890123456789012345678901234567890123456789012345678901234': "
       "identifiers must match ^[A-Za-z_][A-Za-z0-9_]*$ and be at most 63 "
       "bytes"},
    {'f', "{\"name\": \"first__name\", \"type\": \"text\"}",
     P "field 'first__name': field names must not contain \"__\" (it "
       "separates lookups)"},
    {'f', "{\"name\": \"pk\", \"type\": \"text\"}",
     P "field 'pk': \"pk\" is reserved (it always means the primary key); "
       "choose another name"},
    {'f', "{\"name\": \"name\", \"type\": \"text\"}",
     P "field 'name': duplicate field name"},
    {'f', "{\"name\": \"x\", \"type\": \"text\", \"db_column\": \"a b\"}",
     P "field 'x': invalid db_column 'a b': identifiers must match "
       "^[A-Za-z_][A-Za-z0-9_]*$ and be at most 63 bytes"},
    {'f', "{\"name\": \"x\", \"type\": \"text\", \"db_column\": \"NAME\"}",
     P "field 'x': column 'NAME' is already used by field 'name'"},
    {'f',
     "{\"name\": \"boss\", \"type\": \"foreign_key\", \"to\": \"self\", "
     "\"related_name\": \"has space\"}",
     P "field 'boss': invalid related_name 'has space': identifiers must "
       "match ^[A-Za-z_][A-Za-z0-9_]*$ and be at most 63 bytes"},
    {'f',
     "{\"name\": \"author\", \"type\": \"foreign_key\", \"to\": \"self\"},\n"
     "    {\"name\": \"author_id\", \"type\": \"integer\"}",
     "models.json:5:5: model 'Author', field 'author_id': column "
     "'author_id' is already used by field 'author'"},
    {'f', "{\"name\": \"id\", \"type\": \"integer\"}",
     P "field 'id': a field named 'id' must be the primary key "
       "(\"primary_key\": true): a model without one gets an automatic 'id'"},
    /* options that need or refuse each other */
    {'f', "{\"name\": \"x\", \"type\": \"varchar\"}",
     P "field 'x': varchar needs \"max_length\""},
    {'f', "{\"name\": \"x\", \"type\": \"varchar\", \"max_length\": 0}",
     P "field 'x': \"max_length\" must be positive, not 0"},
    {'f', "{\"name\": \"x\", \"type\": \"varchar\", \"max_length\": -5}",
     P "field 'x': \"max_length\" must be positive, not -5"},
    {'f', "{\"name\": \"x\", \"type\": \"integer\", \"max_length\": 5}",
     P "field 'x': \"max_length\" does not apply to integer fields"},
    {'f', "{\"name\": \"x\", \"type\": \"decimal\"}",
     P "field 'x': decimal needs \"max_digits\" and \"decimal_places\""},
    {'f', "{\"name\": \"x\", \"type\": \"decimal\", \"max_digits\": 5}",
     P "field 'x': decimal needs \"max_digits\" and \"decimal_places\""},
    {'f', "{\"name\": \"x\", \"type\": \"decimal\", \"decimal_places\": 2}",
     P "field 'x': decimal needs \"max_digits\" and \"decimal_places\""},
    {'f',
     "{\"name\": \"x\", \"type\": \"decimal\", \"max_digits\": 2, "
     "\"decimal_places\": 3}",
     P "field 'x': \"decimal_places\" (3) must not exceed \"max_digits\" "
       "(2)"},
    {'f',
     "{\"name\": \"x\", \"type\": \"decimal\", \"max_digits\": 0, "
     "\"decimal_places\": 0}",
     P "field 'x': \"max_digits\" must be positive, not 0"},
    {'f', "{\"name\": \"x\", \"type\": \"float\", \"decimal_places\": 2}",
     P "field 'x': \"decimal_places\" does not apply to float fields"},
    {'f', "{\"name\": \"x\", \"type\": \"foreign_key\"}",
     P "field 'x': foreign_key needs \"to\""},
    {'f',
     "{\"name\": \"x\", \"type\": \"many_to_many\", \"related_name\": \"y\"}",
     P "field 'x': many_to_many needs \"to\""},
    {'f', "{\"name\": \"x\", \"type\": \"integer\", \"to\": \"Author\"}",
     P "field 'x': \"to\" does not apply to integer fields"},
    {'f',
     "{\"name\": \"x\", \"type\": \"integer\", \"on_delete\": \"cascade\"}",
     P "field 'x': \"on_delete\" does not apply to integer fields"},
    {'f',
     "{\"name\": \"x\", \"type\": \"foreign_key\", \"to\": \"self\", "
     "\"on_delete\": \"casade\"}",
     "models.json:4:56: model 'Author', field 'x': unknown on_delete "
     "'casade' (expected cascade, protect, restrict, set_null, set_default "
     "or do_nothing)"},
    {'f',
     "{\"name\": \"x\", \"type\": \"foreign_key\", \"to\": \"self\", "
     "\"on_delete\": \"set_null\"}",
     P "field 'x': on_delete set_null needs \"null\": true"},
    {'f',
     "{\"name\": \"x\", \"type\": \"foreign_key\", \"to\": \"self\", "
     "\"on_delete\": \"set_default\"}",
     P "field 'x': on_delete set_default needs a \"default\""},
    {'f', "{\"name\": \"x\", \"type\": \"foreign_key\", \"to\": \"Autor\"}",
     P "field 'x': unknown model 'Autor'"},
    {'f',
     "{\"name\": \"x\", \"type\": \"many_to_many\", \"to\": \"self\", "
     "\"null\": true}",
     P "field 'x': \"null\" does not apply to many_to_many fields (they have "
       "a join table, not a column)"},
    {'f',
     "{\"name\": \"x\", \"type\": \"many_to_many\", \"to\": \"self\", "
     "\"on_delete\": \"cascade\"}",
     P "field 'x': \"on_delete\" does not apply to many_to_many fields (they "
       "have a join table, not a column)"},
    {'f',
     "{\"name\": \"x\", \"type\": \"many_to_many\", \"to\": \"self\", "
     "\"db_column\": \"x\"}",
     P "field 'x': \"db_column\" does not apply to many_to_many fields (they "
       "have a join table, not a column)"},
    {'f', "{\"name\": \"x\", \"type\": \"json\", \"choices\": [1]}",
     P "field 'x': \"choices\" does not apply to json fields"},
    {'f', "{\"name\": \"x\", \"type\": \"integer\", \"choices\": []}",
     P "field 'x': \"choices\" must not be empty"},
    /* primary keys */
    {'f', "{\"name\": \"x\", \"type\": \"auto\"}",
     P "field 'x': auto fields must be the primary key (\"primary_key\": "
       "true)"},
    {'f',
     "{\"name\": \"x\", \"type\": \"integer\", \"primary_key\": true},\n"
     "    {\"name\": \"y\", \"type\": \"integer\", \"primary_key\": true}",
     "models.json:5:5: model 'Author', field 'y': a second primary key (the "
     "first is 'x')"},
    {'f',
     "{\"name\": \"x\", \"type\": \"integer\", \"primary_key\": true, "
     "\"null\": true}",
     P "field 'x': a primary key cannot be null"},
    {'f',
     "{\"name\": \"x\", \"type\": \"many_to_many\", \"to\": \"self\", "
     "\"primary_key\": true}",
     P "field 'x': \"primary_key\" does not apply to many_to_many fields "
       "(they have a join table, not a column)"},
    /* defaults and choices */
    {'f', "{\"name\": \"x\", \"type\": \"integer\", \"default\": \"abc\"}",
     P "field 'x': invalid default \"abc\": expected an integer"},
    {'f', "{\"name\": \"x\", \"type\": \"integer\", \"default\": 1.5}",
     P "field 'x': invalid default 1.5: expected an integer"},
    {'f', "{\"name\": \"x\", \"type\": \"integer\", \"default\": [1]}",
     P "field 'x': invalid default [1]: expected an integer"},
    {'f', "{\"name\": \"x\", \"type\": \"smallint\", \"default\": 70000}",
     P "field 'x': invalid default 70000: out of range for smallint"},
    {'f', "{\"name\": \"x\", \"type\": \"integer\", \"default\": 3000000000}",
     P "field 'x': invalid default 3000000000: out of range for integer"},
    {'f', "{\"name\": \"x\", \"type\": \"integer\", \"default\": null}",
     P "field 'x': invalid default null: the field is not nullable "
       "(\"null\": true)"},
    {'f', "{\"name\": \"x\", \"type\": \"float\", \"default\": \"1\"}",
     P "field 'x': invalid default \"1\": expected a number"},
    {'f', "{\"name\": \"x\", \"type\": \"boolean\", \"default\": 1}",
     P "field 'x': invalid default 1: expected true or false"},
    {'f', "{\"name\": \"x\", \"type\": \"text\", \"default\": 1}",
     P "field 'x': invalid default 1: expected a string"},
    {'f',
     "{\"name\": \"x\", \"type\": \"varchar\", \"max_length\": 3, "
     "\"default\": \"abcd\"}",
     P "field 'x': invalid default \"abcd\": longer than max_length 3"},
    {'f', "{\"name\": \"x\", \"type\": \"date\", \"default\": \"2024-13-01\"}",
     P "field 'x': invalid default \"2024-13-01\": expected a date "
       "(YYYY-MM-DD)"},
    {'f', "{\"name\": \"x\", \"type\": \"date\", \"default\": \"2023-02-29\"}",
     P "field 'x': invalid default \"2023-02-29\": expected a date "
       "(YYYY-MM-DD)"},
    {'f', "{\"name\": \"x\", \"type\": \"time\", \"default\": \"24:00\"}",
     P "field 'x': invalid default \"24:00\": expected a time "
       "(HH:MM[:SS[.ffffff]])"},
    {'f',
     "{\"name\": \"x\", \"type\": \"datetime\", \"default\": \"2024-01-01 "
     "10:00+1\"}",
     P "field 'x': invalid default \"2024-01-01 10:00+1\": expected a "
       "datetime (YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|+HH:MM])"},
    {'f', "{\"name\": \"x\", \"type\": \"uuid\", \"default\": \"1234\"}",
     P "field 'x': invalid default \"1234\": expected a UUID (8-4-4-4-12 "
       "hex digits)"},
    {'f',
     "{\"name\": \"x\", \"type\": \"decimal\", \"max_digits\": 5, "
     "\"decimal_places\": 2, \"default\": \"1,5\"}",
     P "field 'x': invalid default \"1,5\": expected a decimal string such "
       "as \"12.50\""},
    {'f',
     "{\"name\": \"x\", \"type\": \"decimal\", \"max_digits\": 5, "
     "\"decimal_places\": 2, \"default\": 1.5}",
     P "field 'x': invalid default 1.5: expected a decimal string such as "
       "\"12.50\""},
    {'f',
     "{\"name\": \"x\", \"type\": \"decimal\", \"max_digits\": 5, "
     "\"decimal_places\": 2, \"default\": \"1.505\"}",
     P "field 'x': invalid default \"1.505\": more than 2 decimal places"},
    {'f',
     "{\"name\": \"x\", \"type\": \"decimal\", \"max_digits\": 5, "
     "\"decimal_places\": 2, \"default\": \"-1234.5\"}",
     P "field 'x': invalid default \"-1234.5\": more than 3 digits before "
       "the point"},
    {'f',
     "{\"name\": \"x\", \"type\": \"auto\", \"primary_key\": true, "
     "\"default\": 1}",
     P "field 'x': auto fields take no default (the database numbers rows)"},
    {'f',
     "{\"name\": \"x\", \"type\": \"foreign_key\", \"to\": \"self\", "
     "\"default\": \"one\"}",
     P "field 'x': invalid default \"one\": expected an integer"},
    {'f', "{\"name\": \"x\", \"type\": \"integer\", \"choices\": [1, \"b\"]}",
     P "field 'x': invalid choice \"b\": expected an integer"},
    {'f',
     "{\"name\": \"x\", \"type\": \"varchar\", \"max_length\": 1, "
     "\"choices\": [[\"a\", \"A\"], [\"bb\", \"B\"]]}",
     P "field 'x': invalid choice \"bb\": longer than max_length 1"},
};
#undef P

#define P "models.json:2:3: model 'Author': "
#define RULE \
  "identifiers must match ^[A-Za-z_][A-Za-z0-9_]*$ and be at most 63 bytes"
static const refusal model_refusals[] = {
    {'m', "{\"name\": \"Author\", \"feilds\": []}",
     "models.json:2:22: model 'Author': unknown key 'feilds' (did you mean "
     "'fields'?)"},
    {'m', "{\"table\": \"a\"}", "models.json:2:3: model #1: missing \"name\""},
    {'m', "7", "models.json:2:3: model #1: must be an object"},
    {'m', "{\"name\": \"Au thor\"}",
     "models.json:2:3: model 'Au thor': invalid model name 'Au thor': " RULE},
    {'m', "{\"name\": \"Author\", \"table\": \"a-b\"}",
     P "invalid table name 'a-b': " RULE},
    {'m', "{\"name\": \"Author\", \"table\": 5}",
     "models.json:2:22: model 'Author': \"table\" must be a string"},
    {'m', "{\"name\": \"Author\", \"fields\": {}}",
     "models.json:2:22: model 'Author': \"fields\" must be an array of "
     "objects"},
    {'m', "{\"name\": \"Author\"},\n  {\"name\": \"Author\"}",
     "models.json:3:3: model 'Author': duplicate model name: already used by "
     "model 'Author'"},
    {'m', "{\"name\": \"Author\"},\n  {\"name\": \"AUTHOR\", \"table\": \"b\"}",
     "models.json:3:3: model 'AUTHOR': duplicate model name: already used by "
     "model 'Author' (model names are matched without case)"},
    {'m',
     "{\"name\": \"Author\"},\n  {\"name\": \"Writer\", \"table\": \"author\"}",
     "models.json:3:3: model 'Writer': table 'author' clashes with the table "
     "of model 'Author'"},
    {'m',
     "{\"name\": \"Author\", \"indexes\": [{\"fields\": [\"nmae\"]}], "
     "\"fields\": [{\"name\": \"name\", \"type\": \"text\"}]}",
     "models.json:2:34: model 'Author': index names unknown field 'nmae'"},
    {'m', "{\"name\": \"Author\", \"indexes\": [{\"fields\": []}]}",
     "models.json:2:34: model 'Author': index needs at least one field"},
    {'m',
     "{\"name\": \"Author\", \"indexes\": [{\"fields\": [\"id\"], \"nmae\": "
     "\"x\"}]}",
     "models.json:2:34: model 'Author': unknown key 'nmae' in index #1 (did "
     "you mean 'name'?)"},
    {'m', "{\"name\": \"Author\", \"indexes\": [{\"name\": \"x\"}]}",
     "models.json:2:34: model 'Author': index #1: missing \"fields\""},
    {'m', "{\"name\": \"Author\", \"indexes\": [{\"fields\": \"id\"}]}",
     "models.json:2:34: model 'Author': index #1: \"fields\" must be an "
     "array of field names"},
    {'m',
     "{\"name\": \"Author\", \"indexes\": [{\"fields\": [\"id\"], \"name\": "
     "\"bad name\"}]}",
     "models.json:2:34: model 'Author': invalid index name 'bad name': " RULE},
    {'m',
     "{\"name\": \"Author\", \"indexes\": [{\"fields\": [\"id\"], \"name\": "
     "\"author\"}]}",
     "models.json:2:34: model 'Author': index name 'author' clashes with the "
     "table of model 'Author'"},
    /* a field's own index or unique constraint has a name too: a model
     * index may not make it a second time (migrate would fail) */
    {'m',
     "{\"name\": \"Author\", \"indexes\": [{\"fields\": [\"age\"]}], "
     "\"fields\": [{\"name\": \"age\", \"type\": \"integer\", \"db_index\": "
     "true}]}",
     "models.json:2:34: model 'Author': index name 'author_age_idx' clashes "
     "with the index of model 'Author', field 'age' (db_index; keep one of "
     "the two)"},
    {'m',
     "{\"name\": \"Author\", \"unique_together\": [[\"email\"]], "
     "\"fields\": [{\"name\": \"email\", \"type\": \"text\", \"unique\": "
     "true}]}",
     "models.json:2:42: model 'Author': index name 'author_email_uniq' "
     "clashes with the unique constraint of model 'Author', field 'email' "
     "(unique; keep one of the two)"},
    {'m',
     "{\"name\": \"Author\", \"indexes\": [{\"fields\": [\"id\", \"id\"]}]}",
     "models.json:2:34: model 'Author': index names field 'id' twice"},
    {'m', "{\"name\": \"Author\", \"unique_together\": [[\"id\", \"nmae\"]]}",
     "models.json:2:42: model 'Author': unique_together names unknown field "
     "'nmae'"},
    {'m', "{\"name\": \"Author\", \"unique_together\": [[1]]}",
     "models.json:2:42: model 'Author': each \"unique_together\" entry must "
     "be an array of field names"},
    {'m', "{\"name\": \"Author\", \"ordering\": [\"-joined\"]}",
     "models.json:2:35: model 'Author': ordering names unknown field "
     "'-joined'"},
    {'m',
     "{\"name\": \"Author\", \"fields\": [{\"name\": \"boss\", \"type\": "
     "\"foreign_key\", \"to\": \"self\", \"null\": true, \"related_name\": "
     "\"staff\"}], \"ordering\": [\"boss__boss__name\"]}",
     "models.json:2:141: model 'Author': ordering names unknown field "
     "'boss__boss__name'"},
    {'m', "{\"name\": \"Author\", \"ordering\": \"id\"}",
     "models.json:2:22: model 'Author': \"ordering\" must be an array of "
     "field names"},
    {'m',
     "{\"name\": \"Author\", \"fields\": [{\"name\": \"t\", \"type\": "
     "\"many_to_many\", \"to\": \"self\"}], \"indexes\": [{\"fields\": "
     "[\"t\"]}]}",
     "models.json:2:99: model 'Author': index names many_to_many field 't', "
     "which has no column"},
    {'m',
     "{\"name\": \"Author\", \"fields\": [{\"name\": \"tags\", \"type\": "
     "\"many_to_many\", \"to\": \"Tag\"}]},\n"
     "  {\"name\": \"Tag\", \"table\": \"author_tags\"}",
     "models.json:2:33: model 'Author', field 'tags': join table "
     "'author_tags' clashes with the table of model 'Tag'"},
    {'m',
     "{\"name\": \"A\", \"fields\": [{\"name\": \"b\", \"type\": "
     "\"one_to_one\", \"to\": \"B\", \"primary_key\": true}]},\n"
     "  {\"name\": \"B\", \"fields\": [{\"name\": \"a\", \"type\": "
     "\"one_to_one\", \"to\": \"A\", \"primary_key\": true}]}",
     "models.json:2:28: model 'A', field 'b': primary key relations form a "
     "cycle"},
    {'m',
     "{\"name\": \"Author\", \"fields\": [{\"name\": \"entries\", \"type\": "
     "\"integer\"}]},\n"
     "  {\"name\": \"Entry\", \"fields\": [{\"name\": \"a\", \"type\": "
     "\"foreign_key\", \"to\": \"Author\", \"related_name\": \"entries\"}]}",
     "models.json:3:32: model 'Entry', field 'a': reverse name 'entries' "
     "clashes with field 'entries' of model 'Author' (set \"related_name\")"},
    {'m',
     "{\"name\": \"Author\"},\n"
     "  {\"name\": \"Entry\", \"fields\": [\n"
     "    {\"name\": \"author\", \"type\": \"foreign_key\", \"to\": "
     "\"Author\"},\n"
     "    {\"name\": \"editor\", \"type\": \"foreign_key\", \"to\": "
     "\"Author\"}]}",
     "models.json:5:5: model 'Entry', field 'editor': reverse name 'entry' on "
     "model 'Author' is already used by model 'Entry', field 'author' (set "
     "\"related_name\")"},
    /* the top level */
    {'r', "[]",
     "models.json:1:1: the top level must be an object with a \"models\" "
     "array"},
    {'r', "{}", "models.json: missing \"models\""},
    {'r', "{\"models\": {}}", "models.json:1:12: \"models\" must be an array"},
    {'r', "{\"models\": [], \"modles\": 1}",
     "models.json:1:16: unknown key 'modles' at the top level (did you mean "
     "'models'?)"},
};
#undef P
#undef RULE

static void run_refusals(const refusal *r, size_t n) {
  g_soft = 1;
  g_mismatches = 0;
  for (size_t i = 0; i < n; i++) {
    const char *text = r[i].kind == 'f'   ? doc_f(r[i].text)
                       : r[i].kind == 'm' ? doc_m(r[i].text)
                                          : r[i].text;
    refused(text, DORM_ESCHEMA, r[i].message);
  }
  g_soft = 0;
  assert_int_equal(g_mismatches, 0);
}

static void test_field_refusals(void **state) {
  (void)state;
  run_refusals(field_refusals, sizeof field_refusals / sizeof *field_refusals);
}

static void test_model_refusals(void **state) {
  (void)state;
  run_refusals(model_refusals, sizeof model_refusals / sizeof *model_refusals);
}

/* Values the light format checks must accept, and what they become. */
static void test_accepted_values(void **state) {
  (void)state;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_schema_load_string(
      doc_f("{\"name\": \"d1\", \"type\": \"decimal\", \"max_digits\": 5, "
            "\"decimal_places\": 2, \"default\": \"-123.5\"},\n"
            "    {\"name\": \"d2\", \"type\": \"decimal\", \"max_digits\": 5, "
            "\"decimal_places\": 2, \"default\": \".5\", \"null\": true},\n"
            "    {\"name\": \"t1\", \"type\": \"time\", \"default\": "
            "\"23:59:59.123456\"},\n"
            "    {\"name\": \"t2\", \"type\": \"time\", \"default\": "
            "\"08:30\"},\n"
            "    {\"name\": \"dt1\", \"type\": \"datetime\", \"default\": "
            "\"2024-02-29 13:45:00.5+05:30\"},\n"
            "    {\"name\": \"dt2\", \"type\": \"datetime\", \"default\": "
            "\"2024-05-01T13:45Z\"},\n"
            "    {\"name\": \"u\", \"type\": \"uuid\", \"default\": "
            "\"123E4567-e89b-12d3-a456-426614174000\"},\n"
            "    {\"name\": \"n\", \"type\": \"integer\", \"null\": true, "
            "\"default\": null, \"choices\": [[1, \"one\"], [2, \"two\"]]},\n"
            "    {\"name\": \"j\", \"type\": \"json\", \"default\": null},\n"
            "    {\"name\": \"j2\", \"type\": \"json\", \"default\": \"x\"},\n"
            "    {\"name\": \"bin\", \"type\": \"binary\", \"default\": "
            "\"ab\"},\n"
            "    {\"name\": \"big\", \"type\": \"bigint\", \"default\": "
            "-9223372036854775808},\n"
            "    {\"name\": \"f\", \"type\": \"float\", \"default\": 2.5}"),
      NULL, &err);
  if (!s) fail_msg("%s", err.message);
  assert_string_equal(s->source, "<memory>");
  const dorm_model *m = dorm_schema_model(s, "Author");
  assert_text(dorm_model_field(m, "d1")->default_value, DORM_T_DECIMAL,
              "-123.5");
  assert_text(dorm_model_field(m, "d2")->default_value, DORM_T_DECIMAL, ".5");
  assert_text(dorm_model_field(m, "t1")->default_value, DORM_T_TIME,
              "23:59:59.123456");
  assert_text(dorm_model_field(m, "t2")->default_value, DORM_T_TIME, "08:30");
  assert_text(dorm_model_field(m, "dt1")->default_value, DORM_T_DATETIME,
              "2024-02-29 08:15:00.500000");
  assert_text(dorm_model_field(m, "dt2")->default_value, DORM_T_DATETIME,
              "2024-05-01 13:45:00");
  /* uuids are kept in one spelling: lower case, with dashes */
  assert_text(dorm_model_field(m, "u")->default_value, DORM_T_UUID,
              "123e4567-e89b-12d3-a456-426614174000");
  const dorm_field *n = dorm_model_field(m, "n");
  assert_int_equal(n->flags, DORM_FIELD_NULL | DORM_FIELD_HAS_DEFAULT);
  assert_int_equal(n->default_value.type, DORM_T_NULL);
  assert_int_equal(n->nchoices, 2);
  assert_int_equal(n->choices[1].type, DORM_T_INT);
  assert_int_equal(n->choices[1].u.i, 2);
  assert_string_equal(n->choice_labels[0], "one");
  assert_text(dorm_model_field(m, "j")->default_value, DORM_T_JSON, "null");
  assert_text(dorm_model_field(m, "j2")->default_value, DORM_T_JSON, "\"x\"");
  assert_text(dorm_model_field(m, "bin")->default_value, DORM_T_BYTES, "ab");
  assert_int_equal(dorm_model_field(m, "big")->default_value.u.i, INT64_MIN);
  assert_true(dorm_model_field(m, "f")->default_value.u.f == 2.5);
  dorm_schema_free(s);
}

/* Derived names longer than 63 bytes are cut with a stable hash. */
static void test_long_derived_names(void **state) {
  (void)state;
  const char *t = "a_table_name_that_is_quite_long_already_really";
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema_builder *b = dorm_schema_builder_new();
  dorm_schema_builder_model(b, "M", t);
  dorm_schema_builder_field(b, "first_long_field_name", DORM_FIELD_INTEGER, 0);
  dorm_schema_builder_field(b, "second_long_field_name", DORM_FIELD_INTEGER, 0);
  dorm_schema_builder_field(b, "a_many_to_many_field_with_a_long_name",
                            DORM_FIELD_MANY_TO_MANY, 0);
  dorm_schema_builder_relation(b, "self", DORM_ON_DELETE_CASCADE, "ms");
  const char *f[] = {"first_long_field_name", "second_long_field_name"};
  dorm_schema_builder_index(b, NULL, f, 2, 0);
  dorm_schema_builder_index(b, NULL, f, 1, 0);
  dorm_schema *s = dorm_schema_builder_finish(b, &err);
  if (!s) fail_msg("%s", err.message);
  const dorm_model *m = dorm_schema_model(s, "M");
  const char *n0 = m->indexes[0].name, *n1 = m->indexes[1].name;
  assert_int_equal(strlen(n0), 63);
  assert_true(dorm_ident_valid(n0));
  assert_memory_equal(n0, "a_table_name_that_is_quite_long_already_really_",
                      47);
  assert_string_equal(n0 + 59, "_idx");
  assert_string_not_equal(n0, n1);
  const char *jt = dorm_model_field(m, "a_many_to_many_field_with_a_long_name")
                       ->through_table;
  assert_int_equal(strlen(jt), 63);
  assert_true(dorm_ident_valid(jt));

  /* The same input gives the same names. */
  char keep0[64], keepj[64];
  strcpy(keep0, n0);
  strcpy(keepj, jt);
  dorm_schema_free(s);
  b = dorm_schema_builder_new();
  dorm_schema_builder_model(b, "M", t);
  dorm_schema_builder_field(b, "first_long_field_name", DORM_FIELD_INTEGER, 0);
  dorm_schema_builder_field(b, "second_long_field_name", DORM_FIELD_INTEGER, 0);
  dorm_schema_builder_field(b, "a_many_to_many_field_with_a_long_name",
                            DORM_FIELD_MANY_TO_MANY, 0);
  dorm_schema_builder_relation(b, "self", DORM_ON_DELETE_CASCADE, "ms");
  dorm_schema_builder_index(b, NULL, f, 2, 0);
  s = dorm_schema_builder_finish(b, &err);
  assert_non_null(s);
  m = dorm_schema_model(s, "M");
  assert_string_equal(m->indexes[0].name, keep0);
  assert_string_equal(m->fields[3].through_table, keepj);
  dorm_schema_free(s);
}

/* ---- allocation failure ------------------------------------------------- */

/* Fail allocation N for N = 1, 2, ... while loading the blog file: each
 * failure must come back as NULL + DORM_ENOMEM, and leak nothing (ASan and
 * valgrind check that half). */
static void test_alloc_failure_load(void **state) {
  (void)state;
  long n;
  for (n = 1; n < 100000; n++) {
    dorm_error err;
    dorm_error_clear(&err);
    dorm_test_fail_alloc_at(n);
    dorm_schema *s = dorm_schema_load_file("tests/data/blog_models.json", &err);
    dorm_test_alloc_reset();
    if (s) {
      assert_int_equal(err.code, 0);
      assert_int_equal(s->nmodels, 5);
      dorm_schema_free(s);
      break;
    }
    if (err.code != DORM_ENOMEM)
      fail_msg("allocation %ld: %s %s", n, dorm_err_name(err.code),
               err.message);
    assert_string_equal(err.message, "out of memory");
  }
  assert_true(n > 3); /* the loop did fail something */
}

/* The same for a refused file: out of memory wins or the refusal does,
 * never a crash or a leak. */
static void test_alloc_failure_refused(void **state) {
  (void)state;
  const char *text =
      doc_f("{\"name\": \"x\", \"type\": \"foreign_key\", \"to\": \"Autor\"}");
  for (long n = 1; n < 100000; n++) {
    dorm_error err;
    dorm_error_clear(&err);
    dorm_test_fail_alloc_at(n);
    dorm_schema *s = dorm_schema_load_string(text, "models.json", &err);
    dorm_test_alloc_reset();
    assert_null(s);
    if (err.code == DORM_ESCHEMA) {
      assert_string_equal(err.message,
                          "models.json:4:5: model 'Author', field 'x': "
                          "unknown model 'Autor'");
      break;
    }
    assert_int_equal(err.code, DORM_ENOMEM);
  }
}

/* And for a schema built in C, checking every call's result. */
static void test_alloc_failure_builder(void **state) {
  (void)state;
  for (long n = 1; n < 100000; n++) {
    dorm_error err;
    dorm_error_clear(&err);
    dorm_test_fail_alloc_at(n);
    dorm_schema_builder *b = dorm_schema_builder_new();
    dorm_schema_builder_model(b, "Author", NULL);
    dorm_schema_builder_field(b, "name", DORM_FIELD_VARCHAR, 0);
    dorm_schema_builder_max_length(b, 100);
    dorm_schema_builder_default(b, dorm_str("anon"));
    dorm_value ch[] = {dorm_str("anon"), dorm_str("bob")};
    dorm_schema_builder_choices(b, ch, NULL, 2);
    dorm_schema_builder_field(b, "meta", DORM_FIELD_JSON, DORM_FIELD_NULL);
    dorm_schema_builder_default(b, dorm_json_text("[1, {\"b\": 2}]"));
    const char *f[] = {"name"};
    dorm_schema_builder_index(b, NULL, f, 1, 0);
    dorm_schema_builder_ordering(b, "name");
    dorm_schema_builder_model(b, "Entry", NULL);
    dorm_schema_builder_field(b, "author", DORM_FIELD_FOREIGN_KEY, 0);
    dorm_schema_builder_relation(b, "Author", DORM_ON_DELETE_CASCADE, NULL);
    dorm_schema_builder_field(b, "tags", DORM_FIELD_MANY_TO_MANY, 0);
    dorm_schema_builder_relation(b, "self", DORM_ON_DELETE_CASCADE, NULL);
    dorm_schema *s = dorm_schema_builder_finish(b, &err);
    dorm_test_alloc_reset();
    if (s) {
      assert_string_equal(
          dorm_model_field(dorm_schema_model(s, "Author"), "meta")
              ->default_value.u.s.ptr,
          "[1,{\"b\":2}]");
      dorm_schema_free(s);
      break;
    }
    if (err.code != DORM_ENOMEM)
      fail_msg("allocation %ld: %s %s", n, dorm_err_name(err.code),
               err.message);
  }
}

/* jansson allocates on its own (the library leaves its allocator alone,
 * it is the application's).  When it runs out the load must fail cleanly:
 * no crash, no leak, never a schema error.  While parsing, jansson itself
 * reports some failed allocations as syntax errors ("string or '}'
 * expected"), so DORM_EJSON is accepted there; after parsing (defaults
 * serialized with json_dumpb) it must be DORM_ENOMEM. */
static long g_json_fail_at, g_json_count;

static void *json_fail_malloc(size_t n) {
  g_json_count++;
  if (g_json_fail_at > 0 && g_json_count >= g_json_fail_at) return NULL;
  return malloc(n);
}

static void test_alloc_failure_jansson(void **state) {
  (void)state;
  char *text = dorm_test_read_file("tests/data/blog_models.json");
  assert_non_null(text);
  json_set_alloc_funcs(json_fail_malloc, free);
  long n;
  int last = 0;
  for (n = 1; n < 100000; n++) {
    dorm_error err;
    dorm_error_clear(&err);
    g_json_fail_at = n;
    g_json_count = 0;
    dorm_schema *s = dorm_schema_load_string(text, "blog_models.json", &err);
    if (s) {
      dorm_schema_free(s);
      break;
    }
    if (err.code != DORM_ENOMEM && err.code != DORM_EJSON)
      fail_msg("jansson allocation %ld: %s %s", n, dorm_err_name(err.code),
               err.message);
    last = err.code;
  }
  json_set_alloc_funcs(malloc, free);
  assert_int_equal(last, DORM_ENOMEM); /* the json default, after parsing */
  free(text);
  assert_true(n > 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_contract_example),
      cmocka_unit_test(test_blog_every_type),
      cmocka_unit_test(test_empty_models),
      cmocka_unit_test(test_builder),
      cmocka_unit_test(test_builder_sticky_error),
      cmocka_unit_test(test_helpers),
      cmocka_unit_test(test_contract_message),
      cmocka_unit_test(test_io_and_syntax),
      cmocka_unit_test(test_nul_after_literal),
      cmocka_unit_test(test_field_refusals),
      cmocka_unit_test(test_model_refusals),
      cmocka_unit_test(test_accepted_values),
      cmocka_unit_test(test_long_derived_names),
      cmocka_unit_test(test_alloc_failure_load),
      cmocka_unit_test(test_alloc_failure_refused),
      cmocka_unit_test(test_alloc_failure_builder),
      cmocka_unit_test(test_alloc_failure_jansson),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
