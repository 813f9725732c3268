/* base/alloc.c — the allocator hook and the allocation wrappers.
 *
 * Every allocation in dorm goes through dorm__malloc and friends so that a
 * test can install an allocator that fails the Nth call and check that
 * each failure gives a clean error and leaks nothing (jansson's
 * test_chaos.c does the same).  The hook is the one piece of process-wide
 * state, and only tests are expected to change it.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base_int.h"

static dorm_malloc_fn g_malloc = malloc;
static dorm_realloc_fn g_realloc = realloc;
static dorm_free_fn g_free = free;

void dorm_set_allocator(dorm_malloc_fn m, dorm_realloc_fn r, dorm_free_fn f) {
  g_malloc = m ? m : malloc;
  g_realloc = r ? r : realloc;
  g_free = f ? f : free;
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
