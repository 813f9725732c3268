/* SPDX-License-Identifier: MIT */
/* base/base_int.h — private helpers every layer of dorm shares.
 *
 * The allocator wrappers (everything goes through the hook set by
 * dorm_set_allocator, so tests can fail the Nth allocation), a growable
 * byte buffer with a sticky out-of-memory flag, and a bump arena for
 * objects that all die together (a query's nodes, a schema's strings).
 * Nothing here does I/O.
 */
#ifndef DORM_BASE_INT_H
#define DORM_BASE_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "dorm/error.h"

void *dorm__malloc(size_t n);
void *dorm__calloc(size_t n, size_t size);
void *dorm__realloc(void *p, size_t n);
void dorm__free(void *p);
char *dorm__strdup(const char *s);
char *dorm__strndup(const char *s, size_t n);

/* jansson and allocation failures.  Call dorm__json_begin before a jansson
 * call whose failure may be out of memory; after it failed,
 * dorm__json_oom(e) says 1 when it was (an allocation failed through
 * dorm's allocator, or jansson's error e says so or carries no text; e may
 * be NULL for calls without one, such as json_dumps or json_pack).
 * dorm__json_free frees what jansson allocated for the caller (json_dumps'
 * text) with jansson's current free function. */
struct json_error_t;
void dorm__json_begin(void);
int dorm__json_oom(const struct json_error_t *e);
void dorm__json_free(void *p);

/* Replace in msg (NUL-terminated, in a buffer of cap bytes) every
 * password found in src (a database URL, a libpq keyword string, a list
 * of replica URIs) by "***" (base/redact.c).  Either may be NULL. */
void dorm__redact(char *msg, size_t cap, const char *src);
/* The same for one known secret (a password as libpq read it). */
void dorm__redact_value(char *msg, size_t cap, const char *secret);

/* "Did you mean" (base/suggest.c): feed the known names to a suggester
 * for the refused word; best is the closest within two edits, or NULL.
 * word and the names are borrowed for the suggester's life. */
typedef struct dorm__suggest {
  const char *word;
  size_t n;
  const char *best;
  size_t dist;
} dorm__suggest;
size_t dorm__edit_distance(const char *a, size_t la, const char *b,
                           size_t lb);
void dorm__suggest_init(dorm__suggest *s, const char *word, size_t n);
void dorm__suggest_add(dorm__suggest *s, const char *cand);

/* A growable buffer.  After an allocation failure `oom` is set and further
 * appends do nothing, so a sequence of appends needs one check. */
typedef struct dorm__buf {
  char *data; /* NUL-terminated when len > 0 or after dorm__buf_cstr */
  size_t len, cap;
  int oom;
} dorm__buf;

void dorm__buf_init(dorm__buf *b);
void dorm__buf_free(dorm__buf *b);
int dorm__buf_reserve(dorm__buf *b, size_t extra);
void dorm__buf_append(dorm__buf *b, const char *s, size_t n);
void dorm__buf_puts(dorm__buf *b, const char *s);
void dorm__buf_putc(dorm__buf *b, char c);
void dorm__buf_printf(dorm__buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void dorm__buf_put_int(dorm__buf *b, int64_t v);
/* The text so far, NUL-terminated ("" when empty). */
const char *dorm__buf_cstr(dorm__buf *b);

/* UTF-8 (base/utf8.c): the length of the valid sequence at s (n bytes
 * available), or 0; how many bytes of s form valid UTF-8 from the start;
 * and s appended to b with each byte that is not valid UTF-8 as U+FFFD
 * (for JSON, which refuses such text).  No overlongs, no surrogates,
 * nothing past U+10FFFF, as jansson. */
size_t dorm__utf8_seq(const unsigned char *s, size_t n);
size_t dorm__utf8_valid(const char *s, size_t n);
/* Mend the NUL-terminated s in place so it is valid UTF-8: each byte that
 * starts no valid sequence (an invalid byte the caller passed on, or a
 * character cut by a %.Ns or by the end of a message buffer) becomes '?'.
 * Every error message goes through it, so any message can travel as JSON
 * text. */
void dorm__utf8_mend(char *s);
void dorm__buf_put_utf8(dorm__buf *b, const char *s, size_t n);

/* A bump arena: allocations are freed together by dorm__arena_free or
 * recycled by dorm__arena_reset.  The first block can be inline storage
 * supplied by the owner (no malloc for small queries). */
typedef struct dorm__arena_block {
  struct dorm__arena_block *next;
  size_t cap, used;
  /* data follows */
} dorm__arena_block;

typedef struct dorm__arena {
  char *inline_buf;
  size_t inline_cap, inline_used;
  dorm__arena_block *blocks; /* heap blocks, newest first */
} dorm__arena;

void dorm__arena_init(dorm__arena *a, void *inline_buf, size_t inline_cap);
/* 8-byte aligned, NULL on OOM; the inline block is tried inline because a
 * query makes many small allocations */
void *dorm__arena_alloc_slow(dorm__arena *a, size_t n);
static inline void *dorm__arena_alloc(dorm__arena *a, size_t n) {
  n = (n + 7u) & ~(size_t)7u;
  if (n && a->inline_cap - a->inline_used >= n) {
    void *p = a->inline_buf + a->inline_used;
    a->inline_used += n;
    return p;
  }
  return dorm__arena_alloc_slow(a, n);
}
char *dorm__arena_strndup(dorm__arena *a, const char *s, size_t n);
/* Forget everything but keep the largest block for reuse. */
void dorm__arena_reset(dorm__arena *a);
void dorm__arena_free(dorm__arena *a);

/* The digits of a valid decimal text (dorm__valid_decimal): whole, the
 * digits before the point without leading zeros; frac, the digits after
 * it as written; sig, from the first non-zero digit to the last (0 for
 * zero); lead, the first non-zero digit's place counted from the point
 * (123.4: 3, 0.05: -1), so lead + p digits write the number to p places. */
typedef struct dorm__decdigits {
  size_t whole, frac, sig;
  long lead;
} dorm__decdigits;
void dorm__decimal_digits(const char *s, size_t n, dorm__decdigits *d);
/* x as the shortest decimal text that reads back as x (plain notation,
 * no exponent: 0.1 -> "0.1", 1e21 -> "1000000000000000000000").  Returns
 * the length, or -1 for NaN, an infinity or when cap is too small. */
int dorm__double_decimal(double x, char *out, size_t cap);
/* x rounded to 15 significant digits (all a double holds of any decimal)
 * and written with exactly places decimal places (places < 0: as many as
 * needed).  Returns the length, or -1 as above. */
int dorm__double_decimal15(double x, int places, char *out, size_t cap);

/* ---- canonical JSON (base/json_canon.c) ----------------------------------
 * The one text form dorm stores and compares a JSON document in: no
 * whitespace, object keys sorted by their bytes (a repeated key keeps its
 * last value, as jsonb does), strings with the shortest escapes, numbers
 * exactly as written but normalised (1.0 -> 1, 1e2 -> 100, -0 -> 0), so
 * two documents equal as jsonb have the same text.  Numbers keep every
 * digit: nothing goes through a double.  Returns 0 and a text (*out,
 * *outlen; NUL-terminated) the caller frees with dorm__free; DORM_EJSON with
 * a message in why when s is not one JSON value; DORM_ENOMEM. */
int dorm__json_canon(const char *s, size_t n, char **out, size_t *outlen,
                     char *why, size_t whylen);

#endif /* DORM_BASE_INT_H */

/* ---- text formats (base/formats.c) ----------------------------------------
 * Checks for the text forms of dates, times, uuids and decimals, and the
 * canonical UTC form of a datetime that dorm stores and sends:
 * "YYYY-MM-DD HH:MM:SS[.ffffff]" (so text comparison on SQLite orders
 * correctly).  All return 1/0 or a length, never allocate. */
int dorm__valid_date(const char *s, size_t n);
int dorm__valid_time(const char *s, size_t n);
int dorm__valid_uuid(const char *s, size_t n);
int dorm__valid_decimal(const char *s, size_t n);
/* A uuid (36 characters with dashes, or 32 hex digits, any case) in its
 * canonical form, lower case with dashes, into out (at least 37 bytes).
 * Returns 36, or -1 when s is not a uuid. */
int dorm__canon_uuid(const char *s, size_t n, char *out);
/* ISO 8601 date-time (T or space, optional seconds, fraction, Z or ±HH:MM,
 * or a plain date meaning midnight) -> canonical UTC text in out (at least
 * 32 bytes).  Returns the length, or -1 when s is not a date-time. */
int dorm__canon_datetime(const char *s, size_t n, char *out);
