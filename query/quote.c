/* SPDX-License-Identifier: MIT */
/* query/quote.c — identifier quoting, shared by the compiler and the DDL.
 *
 * dorm never escapes identifiers: it validates them.  A name must match
 * ^[A-Za-z_][A-Za-z0-9_]*$ and be at most 63 bytes (dorm_ident_valid, the
 * schema layer's rule), and only then is it wrapped in double quotes.
 * Quoting every identifier, even plain ones, keeps reserved words ("order",
 * "user") and mixed case working the same on PostgreSQL and SQLite.  Both
 * dialects use the SQL-standard double quote, so no dialect is needed.
 */
#include <stdio.h>
#include <string.h>

#include "dorm/query.h"
#include "dorm/schema.h"
#include "query/quote_int.h"

void dorm__ident_for_message(const char *s, char *out, size_t cap) {
  if (cap == 0) return;
  if (!s) {
    snprintf(out, cap, "(null)");
    return;
  }
  size_t o = 0;
  for (size_t i = 0; s[i] && i < 80; i++) {
    unsigned char c = (unsigned char)s[i];
    char tmp[5];
    size_t n;
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\'' || c == '\\') {
      n = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c);
    } else {
      tmp[0] = (char)c;
      n = 1;
    }
    if (o + n + 1 > cap) break;
    memcpy(out + o, tmp, n);
    o += n;
  }
  if (s[0] && strlen(s) > 80 && o + 4 <= cap) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
}

int dorm__quote_ident_buf(dorm__buf *b, const char *ident, dorm_error *err) {
  if (!ident || !dorm_ident_valid(ident)) {
    char shown[DORM_IDENT_MAX * 4 + 32];
    dorm__ident_for_message(ident, shown, sizeof shown);
    return dorm_error_set(err, DORM_EIDENT, "invalid identifier '%s'", shown);
  }
  size_t n = strlen(ident);
  if (dorm__buf_reserve(b, n + 2)) return 0; /* oom: sticky in b */
  dorm__buf_putc(b, '"');
  dorm__buf_append(b, ident, n);
  dorm__buf_putc(b, '"');
  return 0;
}

/* Contract (include/dorm/query.h): buf gets "\"ident\"" NUL-terminated.
 * DORM_EIDENT for a refused name, DORM_ERANGE when cap is too small (at
 * most DORM_IDENT_MAX + 3 bytes are ever needed); buf is "" on error. */
int dorm_quote_ident(const char *ident, char *buf, size_t cap) {
  if (buf && cap) buf[0] = '\0';
  if (!ident || !dorm_ident_valid(ident)) return DORM_EIDENT;
  size_t n = strlen(ident);
  if (!buf || cap < n + 3) return DORM_ERANGE;
  buf[0] = '"';
  memcpy(buf + 1, ident, n);
  buf[n + 1] = '"';
  buf[n + 2] = '\0';
  return 0;
}
