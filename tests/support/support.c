/* tests/support/support.c — the failing allocator and small file helpers
 * the test programs share. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dorm/error.h"

static long g_fail_at;
static long g_count;

static void *fail_malloc(size_t n) {
  g_count++;
  if (g_fail_at > 0 && g_count >= g_fail_at) return NULL;
  return malloc(n);
}

static void *fail_realloc(void *p, size_t n) {
  g_count++;
  if (g_fail_at > 0 && g_count >= g_fail_at) return NULL;
  return realloc(p, n);
}

void dorm_test_fail_alloc_at(long n) {
  g_fail_at = n;
  g_count = 0;
  dorm_set_allocator(fail_malloc, fail_realloc, free);
}

long dorm_test_alloc_count(void) { return g_count; }

void dorm_test_alloc_reset(void) {
  g_fail_at = 0;
  g_count = 0;
  dorm_set_allocator(NULL, NULL, NULL);
}

char *dorm_test_read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = '\0';
  fclose(f);
  return s;
}

int dorm_test_count_from(const char *text, size_t from, const char *needle) {
  int n = 0;
  size_t len = strlen(text);
  for (const char *p = text + (from < len ? from : len);
       (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

const char *dorm_test_pg_conninfo(void) { return getenv("DORM_TEST_PG"); }

void dorm_test_sqlite_temp(const char *prefix, char *path, size_t path_cap,
                           char *url, size_t url_cap) {
  snprintf(path, path_cap, "/tmp/%s.XXXXXX", prefix);
  int fd = mkstemp(path);
  if (fd >= 0) close(fd);
  unlink(path); /* SQLite creates it; only the unique name was wanted */
  snprintf(url, url_cap, "sqlite:///%s", path);
}

void dorm_test_sqlite_remove(const char *path) {
  char p[4096];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}
