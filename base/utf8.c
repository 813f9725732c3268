/* SPDX-License-Identifier: MIT */
/* base/utf8.c — checking and repairing UTF-8.
 *
 * Text that reaches dorm from outside — a %-decoded URL, a SQLite column
 * another program wrote — may hold any byte, and JSON (jansson) refuses
 * invalid UTF-8 outright.  Rather than fail a whole answer over one byte,
 * the HTTP layer and the rows' JSON check text with dorm__utf8_seq and,
 * where it is not valid, send it with each bad byte as U+FFFD.
 */
#include <string.h>

#include "base/base_int.h"

size_t dorm__utf8_seq(const unsigned char *s, size_t n) {
  if (!n) return 0;
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t k;
  unsigned min, cp;
  if (c >= 0xC2 && c <= 0xDF) {
    k = 2, min = 0x80, cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    k = 3, min = 0x800, cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    k = 4, min = 0x10000, cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < k) return 0;
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return k;
}

size_t dorm__utf8_valid(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, k;
  while (i < n && (k = dorm__utf8_seq(u + i, n - i))) i += k;
  return i;
}

void dorm__utf8_mend(char *s) {
  unsigned char *u = (unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    size_t k = dorm__utf8_seq(u + i, n - i);
    if (k) {
      i += k;
    } else {
      u[i++] = '?';
    }
  }
}

void dorm__buf_put_utf8(dorm__buf *b, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    size_t k = dorm__utf8_seq(u + i, n - i);
    if (k) {
      dorm__buf_append(b, s + i, k);
      i += k;
    } else {
      dorm__buf_append(b, "\xEF\xBF\xBD", 3); /* U+FFFD */
      i++;
    }
  }
}
