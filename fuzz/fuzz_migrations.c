/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_migrations.c — migration files, their replay, and the SQL of
 * every operation for both dialects.
 *
 * The input is one or more migration files separated by lines holding
 * only "----" (file i is named "000<i>_f<i>.json").  Each is parsed
 * (dorm_migration_parse, with its length: NUL bytes included), the set is
 * ordered by its dependencies, and the migrations are replayed operation
 * by operation through migrate/op_sql.c's dorm_migration_op_sql — the exact
 * operation -> SQL path of dorm_async_migrate, `dorm sqlmigrate` and `dorm
 * migrate` — once per dialect, each on its own state.  Every
 * operation is also inverted and described.  After the replay the state is
 * turned into a schema, its CREATE TABLEs compiled, and the autodetector
 * run from nothing to it: the operations it returns must replay cleanly
 * onto an empty state.
 */
#include "fuzz/fuzz.h"
#include "dorm/migrate.h"

#define MAX_FILES 6
#define MAX_OPS 64

static void op_extras(const json_t *op) {
  char buf[256];
  dorm_migration_op_describe(op, buf, sizeof buf);
  FUZZ_CHECK(memchr(buf, '\0', sizeof buf), "description not terminated");
  dorm_error err;
  dorm_error_clear(&err);
  json_t *inv = dorm_migration_op_invert(op, &err);
  if (inv) {
    FUZZ_CHECK(dorm_op_kind_of(inv) >= 0, "inverse has no known op");
    json_decref(inv);
  }
}

static void final_schema(const dorm_mstate *st) {
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *s = dorm_mstate_schema(st, NULL, 0, &err);
  if (!s) return;
  for (size_t i = 0; i < s->nmodels; i++)
    for (int d = 0; d < 2; d++) {
      dorm_ddl out;
      dorm_ddl_init(&out);
      dorm_ddl_create_model(&s->models[i], NULL, 0, (dorm_dialect)d, &out,
                            NULL);
      dorm_ddl_free(&out);
    }
  /* makemigrations from nothing: its operations must replay */
  json_t *notes = NULL;
  dorm_error_clear(&err);
  json_t *ops = dorm_autodetect(NULL, s, NULL, &notes, &err);
  if (ops) {
    dorm_mstate *fresh = dorm_mstate_new();
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
      dorm_error_clear(&err);
      FUZZ_CHECK(dorm_mstate_apply(fresh, op, &err) == 0,
                 "autodetected operation %zu does not apply: %s", i,
                 err.message);
    }
    char name[64];
    dorm_migration_auto_name(ops, 1, name, sizeof name);
    dorm_mstate_free(fresh);
    json_decref(ops);
  }
  json_decref(notes);
  dorm_schema_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  const char *text = (const char *)data;
  dorm_migration *migs = calloc(MAX_FILES, sizeof *migs);
  size_t n = 0;
  size_t start = 0;
  int bad = 0;
  while (start <= size && n < MAX_FILES) {
    const char *sep = NULL;
    for (size_t i = start; i + 6 <= size; i++)
      if (!memcmp(text + i, "\n----\n", 6)) {
        sep = text + i;
        break;
      }
    size_t end = sep ? (size_t)(sep - text) : size;
    char file[32];
    snprintf(file, sizeof file, "%04zu_f%zu.json", n + 1, n + 1);
    dorm_error err;
    dorm_error_clear(&err);
    if (dorm_migration_parse(text + start, end - start, file, &migs[n], &err) ==
        0) {
      n++;
    } else {
      FUZZ_CHECK(err.code != 0 && err.message[0], "refusal without message");
      bad = 1;
      break;
    }
    if (!sep) break;
    start = end + 6;
  }
  if (bad) {
    for (size_t i = 0; i < n; i++) dorm_migration_clear(&migs[i]);
    free(migs);
    return 0;
  }
  dorm_error err;
  dorm_error_clear(&err);
  dorm_migration_set *set = dorm_migrations_order(migs, n, &err);
  if (!set) return 0; /* took migs */
  size_t leaves[8];
  dorm_migrations_leaves(set, leaves, 8);
  if (set->n) dorm_migrations_find(set, "0001");

  dorm_mstate *st[2] = {dorm_mstate_new(), dorm_mstate_new()};
  size_t nops = 0;
  int stopped[2] = {0, 0};
  for (size_t i = 0; i < set->n; i++) {
    const dorm_migration *m = &set->migs[i];
    size_t k;
    json_t *op;
    json_array_foreach(m->ops, k, op) {
      if (nops++ >= MAX_OPS) break;
      op_extras(op);
      for (int d = 0; d < 2; d++) {
        if (stopped[d]) continue;
        dorm_ddl out;
        dorm_ddl_init(&out);
        dorm_error_clear(&err);
        if (dorm_migration_op_sql(st[d], op, (dorm_dialect)d, &out, &err) !=
            0) {
          FUZZ_CHECK(err.message[0], "refusal without message");
          stopped[d] = 1; /* as sqlmigrate: the rest does not run */
        } else {
          for (size_t j = 0; j < out.n; j++)
            FUZZ_CHECK(out.stmts[j] && out.stmts[j][0], "empty statement");
        }
        dorm_ddl_free(&out);
      }
    }
  }
  if (!stopped[0]) final_schema(st[0]);
  /* the plain replay (dorm_mstate_apply_migration) as makemigrations does */
  dorm_mstate *plain = dorm_mstate_new();
  for (size_t i = 0; i < set->n && i < 4; i++) {
    dorm_error_clear(&err);
    if (dorm_mstate_apply_migration(plain, &set->migs[i], &err)) break;
  }
  dorm_mstate *copy = dorm_mstate_copy(plain);
  dorm_mstate_free(copy);
  dorm_mstate_free(plain);
  dorm_mstate_free(st[0]);
  dorm_mstate_free(st[1]);
  dorm_migration_set_free(set);
  return 0;
}
