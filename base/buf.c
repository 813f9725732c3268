/* SPDX-License-Identifier: MIT */
/* base/buf.c — a growable byte buffer and a bump arena.
 *
 * The SQL compiler writes into a dorm__buf; a failed allocation sets a
 * sticky flag instead of returning an error from every append, so the
 * compiler checks once at the end.  The arena gives a query (or a schema)
 * one place for all its small objects, freed in one go.
 */
#include <stdio.h>
#include <string.h>

#include "base/base_int.h"

void dorm__buf_init(dorm__buf *b) { memset(b, 0, sizeof *b); }

void dorm__buf_free(dorm__buf *b) {
  dorm__free(b->data);
  memset(b, 0, sizeof *b);
}

int dorm__buf_reserve(dorm__buf *b, size_t extra) {
  if (b->oom) return -1;
  if (b->len + extra + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) cap *= 2;
  char *d = dorm__realloc(b->data, cap);
  if (!d) {
    b->oom = 1;
    return -1;
  }
  b->data = d;
  b->cap = cap;
  return 0;
}

void dorm__buf_append(dorm__buf *b, const char *s, size_t n) {
  if (dorm__buf_reserve(b, n)) return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void dorm__buf_puts(dorm__buf *b, const char *s) {
  dorm__buf_append(b, s, strlen(s));
}

void dorm__buf_putc(dorm__buf *b, char c) {
  if (dorm__buf_reserve(b, 1)) return;
  b->data[b->len++] = c;
  b->data[b->len] = '\0';
}

void dorm__buf_printf(dorm__buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[256];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    dorm__buf_append(b, tmp, (size_t)n);
    return;
  }
  if (dorm__buf_reserve(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void dorm__buf_put_int(dorm__buf *b, int64_t v) {
  char tmp[24];
  char *p = tmp + sizeof tmp;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *--p = '-';
  dorm__buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

const char *dorm__buf_cstr(dorm__buf *b) { return b->data ? b->data : ""; }

/* ---- arena -------------------------------------------------------------- */

void dorm__arena_init(dorm__arena *a, void *inline_buf, size_t inline_cap) {
  a->inline_buf = inline_buf;
  a->inline_cap = inline_buf ? inline_cap : 0;
  a->inline_used = 0;
  a->blocks = NULL;
}

#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

void *dorm__arena_alloc_slow(dorm__arena *a, size_t n) {
  n = ALIGN8(n ? n : 1);
  if (a->inline_cap - a->inline_used >= n) {
    void *p = a->inline_buf + a->inline_used;
    a->inline_used += n;
    return p;
  }
  dorm__arena_block *blk = a->blocks;
  if (blk && blk->cap - blk->used >= n) {
    void *p = (char *)(blk + 1) + blk->used;
    blk->used += n;
    return p;
  }
  size_t cap = blk ? blk->cap * 2 : 4096;
  if (cap < n) cap = n;
  dorm__arena_block *nb = dorm__malloc(sizeof *nb + cap);
  if (!nb) return NULL;
  nb->cap = cap;
  nb->used = n;
  nb->next = a->blocks;
  a->blocks = nb;
  return nb + 1;
}

char *dorm__arena_strndup(dorm__arena *a, const char *s, size_t n) {
  char *d = dorm__arena_alloc(a, n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

void dorm__arena_reset(dorm__arena *a) {
  a->inline_used = 0;
  dorm__arena_block *keep = a->blocks;
  if (keep) {
    dorm__arena_block *b = keep->next;
    while (b) {
      dorm__arena_block *next = b->next;
      dorm__free(b);
      b = next;
    }
    keep->next = NULL;
    keep->used = 0;
    a->blocks = keep;
  }
}

void dorm__arena_free(dorm__arena *a) {
  dorm__arena_block *b = a->blocks;
  while (b) {
    dorm__arena_block *next = b->next;
    dorm__free(b);
    b = next;
  }
  a->blocks = NULL;
  a->inline_used = 0;
}
