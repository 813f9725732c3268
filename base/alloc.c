/* SPDX-License-Identifier: MIT */
/* base/alloc.c — the allocator hook and the allocation wrappers.
 *
 * Every allocation in dorm goes through dorm__malloc and friends so that a
 * test can install an allocator that fails the Nth call and check that
 * each failure gives a clean error and leaks nothing (jansson's
 * test_chaos.c does the same).  The hook is the one piece of process-wide
 * state, and only tests are expected to change it.
 *
 * jansson allocates on its own, through its own process-wide hook.  Setting
 * dorm's allocator points jansson's hook at it too (json_set_alloc_funcs),
 * through a wrapper that notes a failed allocation: jansson reports some
 * of its own out-of-memory failures as syntax errors, and the note lets the
 * callers say DORM_ENOMEM instead (dorm__json_oom).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/base_int.h"

static dorm_malloc_fn g_malloc = malloc;
static dorm_realloc_fn g_realloc = realloc;
static dorm_free_fn g_free = free;

/* Set when an allocation jansson asked for failed; read and cleared by
 * dorm__json_oom.  Per thread: the SQLite workers use jansson too. */
static _Thread_local int g_json_failed;

static void *json_malloc(size_t n) {
  void *p = g_malloc(n ? n : 1);
  if (!p) g_json_failed = 1;
  return p;
}

static void json_free(void *p) {
  if (p) g_free(p);
}

void dorm_set_allocator(dorm_malloc_fn m, dorm_realloc_fn r, dorm_free_fn f) {
  g_malloc = m ? m : malloc;
  g_realloc = r ? r : realloc;
  g_free = f ? f : free;
  if (m || r || f)
    json_set_alloc_funcs(json_malloc, json_free);
  else
    json_set_alloc_funcs(malloc, free);
}

void dorm__json_begin(void) { g_json_failed = 0; }

int dorm__json_oom(const json_error_t *e) {
  int failed = g_json_failed;
  g_json_failed = 0;
  if (failed) return 1;
  /* Without dorm's allocator the note is never set; jansson's own code
   * and its empty text (the lexer fails its buffer silently) remain. */
  return e &&
         (json_error_code(e) == json_error_out_of_memory || e->text[0] == '\0');
}

void dorm__json_free(void *p) {
  json_malloc_t m;
  json_free_t f;
  json_get_alloc_funcs(&m, &f);
  if (p) f(p);
}

void *dorm__malloc(size_t n) { return g_malloc(n ? n : 1); }

void *dorm__calloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  size_t total = n * size;
  void *p = g_malloc(total ? total : 1);
  if (p) memset(p, 0, total);
  return p;
}

void *dorm__realloc(void *p, size_t n) { return g_realloc(p, n ? n : 1); }

void dorm__free(void *p) {
  if (p) g_free(p);
}

char *dorm__strndup(const char *s, size_t n) {
  char *d = dorm__malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *dorm__strdup(const char *s) { return dorm__strndup(s, strlen(s)); }
