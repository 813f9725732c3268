/* SPDX-License-Identifier: MIT */
/* base/formats.c — validating the text forms of dates, times, uuids and
 * decimals, and canonicalising date-times to UTC.
 *
 * dorm carries these types as text (see dorm/value.h).  Checking them
 * before they reach a database turns "invalid input syntax for type
 * timestamp" from the server into an error that names the field, and
 * canonical UTC text makes SQLite's text comparisons order correctly.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base_int.h"

static int digits(const char *s, size_t n, size_t at, size_t count, int *v) {
  if (at + count > n) return 0;
  int x = 0;
  for (size_t i = 0; i < count; i++) {
    char c = s[at + i];
    if (c < '0' || c > '9') return 0;
    x = x * 10 + (c - '0');
  }
  *v = x;
  return 1;
}

static int days_in_month(int y, int m) {
  static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return dm[m - 1];
}

/* YYYY-MM-DD at the start of s; returns 1 and fills y/m/d. */
static int parse_date(const char *s, size_t n, int *y, int *m, int *d) {
  if (n < 10 || s[4] != '-' || s[7] != '-') return 0;
  if (!digits(s, n, 0, 4, y) || !digits(s, n, 5, 2, m) ||
      !digits(s, n, 8, 2, d))
    return 0;
  if (*y < 1 || *m < 1 || *m > 12 || *d < 1 || *d > days_in_month(*y, *m))
    return 0;
  return 1;
}

/* HH:MM[:SS[.ffffff]] at s; returns characters consumed, 0 on error. */
static size_t parse_time(const char *s, size_t n, int *h, int *mi, int *sec,
                         int *usec) {
  *sec = 0;
  *usec = 0;
  if (n < 5 || s[2] != ':' || !digits(s, n, 0, 2, h) || !digits(s, n, 3, 2, mi))
    return 0;
  if (*h > 23 || *mi > 59) return 0;
  size_t i = 5;
  if (i < n && s[i] == ':') {
    if (!digits(s, n, i + 1, 2, sec) || *sec > 59) return 0;
    i += 3;
    if (i < n && s[i] == '.') {
      i++;
      size_t start = i;
      int scale = 100000;
      while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (i - start < 6) *usec += (s[i] - '0') * scale;
        scale /= 10;
        i++;
      }
      if (i == start) return 0;
    }
  }
  return i;
}

int dorm__valid_date(const char *s, size_t n) {
  int y, m, d;
  return n == 10 && parse_date(s, n, &y, &m, &d);
}

int dorm__valid_time(const char *s, size_t n) {
  int h, mi, sec, usec;
  return n >= 5 && parse_time(s, n, &h, &mi, &sec, &usec) == n;
}

int dorm__valid_uuid(const char *s, size_t n) {
  if (n == 32) { /* hex without dashes */
    for (size_t i = 0; i < n; i++) {
      char c = s[i];
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
            (c >= 'A' && c <= 'F')))
        return 0;
    }
    return 1;
  }
  if (n != 36) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return 0;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                 (c >= 'A' && c <= 'F'))) {
      return 0;
    }
  }
  return 1;
}

int dorm__canon_uuid(const char *s, size_t n, char *out) {
  if (!dorm__valid_uuid(s, n)) return -1;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '-') continue;
    if (k == 8 || k == 13 || k == 18 || k == 23) out[k++] = '-';
    char c = s[i];
    out[k++] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
  }
  out[36] = '\0';
  return 36;
}

int dorm__valid_decimal(const char *s, size_t n) {
  size_t i = 0, nd = 0;
  if (i < n && (s[i] == '-' || s[i] == '+')) i++;
  while (i < n && s[i] >= '0' && s[i] <= '9') i++, nd++;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, nd++;
  }
  return nd > 0 && i == n;
}

/* days since 1970-01-01 (proleptic Gregorian), Howard Hinnant's algorithm */
static long days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  long yoe = y - era * 400;
  long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, int *y, int *m, int *d) {
  z += 719468;
  long era = (z >= 0 ? z : z - 146096) / 146097;
  long doe = z - era * 146097;
  long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long yy = yoe + era * 400;
  long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  long mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yy + (*m <= 2));
}

int dorm__canon_datetime(const char *s, size_t n, char *out) {
  int y, mo, d, h = 0, mi = 0, sec = 0, usec = 0;
  if (!parse_date(s, n, &y, &mo, &d)) return -1;
  size_t i = 10;
  int offset_min = 0;
  if (i < n) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return -1;
    i++;
    size_t used = parse_time(s + i, n - i, &h, &mi, &sec, &usec);
    if (!used) return -1;
    i += used;
    if (i < n) {
      if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
        i++;
      } else if (s[i] == '+' || s[i] == '-') {
        int oh, om = 0, sign = s[i] == '-' ? -1 : 1;
        i++;
        if (!digits(s, n, i, 2, &oh)) return -1;
        i += 2;
        if (i < n && s[i] == ':') i++;
        if (i < n) {
          if (!digits(s, n, i, 2, &om)) return -1;
          i += 2;
        }
        if (oh > 23 || om > 59) return -1;
        offset_min = sign * (oh * 60 + om);
      }
      if (i != n) return -1;
    }
  }
  if (offset_min) {
    long t = (days_from_civil(y, mo, d) * 1440L) + h * 60 + mi - offset_min;
    long days = t >= 0 ? t / 1440 : -((-t + 1439) / 1440);
    long rem = t - days * 1440;
    civil_from_days(days, &y, &mo, &d);
    h = (int)(rem / 60);
    mi = (int)(rem % 60);
    if (y < 1 || y > 9999) return -1;
  }
  if (usec)
    return snprintf(out, 32, "%04d-%02d-%02d %02d:%02d:%02d.%06d", y, mo, d, h,
                    mi, sec, usec);
  return snprintf(out, 32, "%04d-%02d-%02d %02d:%02d:%02d", y, mo, d, h, mi,
                  sec);
}

/* ---- decimal digits and doubles as decimals ----------------------------- */

void dorm__decimal_digits(const char *s, size_t n, dorm__decdigits *d) {
  size_t i = 0, pos = 0, first = (size_t)-1, last = 0;
  memset(d, 0, sizeof *d);
  if (i < n && (s[i] == '-' || s[i] == '+')) i++;
  /* pos counts every digit written; first/last: positions of the outer
   * non-zero digits */
  for (; i < n && s[i] != '.'; i++, pos++) {
    if (s[i] != '0' && first == (size_t)-1) first = pos;
    if (s[i] != '0') last = pos;
  }
  size_t int_len = pos;
  if (i < n) i++; /* '.' */
  for (; i < n; i++, pos++) {
    d->frac++;
    if (s[i] != '0' && first == (size_t)-1) first = pos;
    if (s[i] != '0') last = pos;
  }
  if (first == (size_t)-1) return; /* zero */
  d->whole = first < int_len ? int_len - first : 0;
  d->sig = last - first + 1;
  d->lead = (long)int_len - (long)first;
}

/* "d.ddde±x" (what %.*e writes) in plain notation, trailing zeros of the
 * fraction dropped; returns the length or -1 when it does not fit. */
static int plain_from_e(const char *e, char *out, size_t cap) {
  char digs[40];
  size_t nd = 0, k = 0;
  int neg = 0;
  if (*e == '-') neg = 1, e++;
  for (; *e && *e != 'e'; e++)
    if (*e >= '0' && *e <= '9' && nd < sizeof digs) digs[nd++] = *e;
  if (*e != 'e') return -1;
  long x = strtol(e + 1, NULL, 10); /* the first digit's power of ten */
  while (nd > 1 && digs[nd - 1] == '0') nd--;
  if (nd == 1 && digs[0] == '0') neg = 0, x = 0;
  size_t need = nd + (size_t)(x < 0 ? -x : x) + 4;
  if (need >= cap) return -1;
  if (neg) out[k++] = '-';
  if (x < 0) {
    out[k++] = '0';
    out[k++] = '.';
    for (long z = 0; z < -x - 1; z++) out[k++] = '0';
    for (size_t j = 0; j < nd; j++) out[k++] = digs[j];
  } else {
    for (long j = 0; j <= x; j++) out[k++] = (size_t)j < nd ? digs[j] : '0';
    if ((size_t)x + 1 < nd) {
      out[k++] = '.';
      for (size_t j = (size_t)x + 1; j < nd; j++) out[k++] = digs[j];
    }
  }
  out[k] = '\0';
  return (int)k;
}

int dorm__double_decimal(double x, char *out, size_t cap) {
  if (!isfinite(x)) return -1;
  char e[48];
  for (int p = 0; p < 17; p++) {
    snprintf(e, sizeof e, "%.*e", p, x);
    if (strtod(e, NULL) == x) break;
  }
  return plain_from_e(e, out, cap);
}

int dorm__double_decimal15(double x, int places, char *out, size_t cap) {
  if (!isfinite(x)) return -1;
  char e[48];
  snprintf(e, sizeof e, "%.14e", x);
  int n = plain_from_e(e, out, cap);
  if (n < 0 || places < 0) return n;
  const char *dot = strchr(out, '.');
  size_t frac = dot ? (size_t)n - (size_t)(dot - out) - 1 : 0;
  if (frac > (size_t)places) {
    /* the 15 digits reach below the field's places, so |x| is below
     * 10^(15 - places) and %.*f writes at most 15 digits */
    n = snprintf(out, cap, "%.*f", places, x);
    if (n < 0 || (size_t)n >= cap) return -1;
    if (out[0] == '-' && strspn(out + 1, "0.") == (size_t)n - 1)
      memmove(out, out + 1, (size_t)n--); /* "-0.00": no sign on zero */
    return n;
  }
  if ((size_t)n + (size_t)places - frac + 2 >= cap) return -1;
  if (places > 0 && !dot) out[n++] = '.';
  for (size_t j = frac; j < (size_t)places; j++) out[n++] = '0';
  out[n] = '\0';
  return n;
}
