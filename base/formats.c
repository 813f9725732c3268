/* base/formats.c — validating the text forms of dates, times, uuids and
 * decimals, and canonicalising date-times to UTC.
 *
 * dorm carries these types as text (see dorm/value.h).  Checking them
 * before they reach a database turns "invalid input syntax for type
 * timestamp" from the server into an error that names the field, and
 * canonical UTC text makes SQLite's text comparisons order correctly.
 */
#include <stdio.h>
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
