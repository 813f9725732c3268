/* SPDX-License-Identifier: MIT */
/* base/json_canon.c — the canonical text of a JSON document.
 *
 * PostgreSQL compares jsonb by value: key order, whitespace, escapes and
 * the spelling of a number (1.0, 1, 1e0) do not matter.  SQLite keeps JSON
 * as text and compares bytes.  So dorm writes, and compares with, one
 * canonical text (see base_int.h), and the same filter finds the same
 * rows on both.  This is a small recursive-descent parser that writes the
 * canonical form as it goes; numbers are rewritten digit by digit, never
 * through a double, so a decimal inside a document is kept exactly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base_int.h"

#define MAX_DEPTH 512

typedef struct jc {
  const char *s, *p, *end;
  char *why;
  size_t whylen;
  int failed, oom;
} jc;

static int jfail(jc *c, const char *what) {
  if (!c->failed) {
    c->failed = 1;
    if (c->why && c->whylen)
      snprintf(c->why, c->whylen, "%s at character %zu", what,
               (size_t)(c->p - c->s) + 1);
  }
  return -1;
}

static void ws(jc *c) {
  while (c->p < c->end &&
         (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static int value(jc *c, dorm__buf *o, int depth);

static int hex4(const char *p, unsigned *v) {
  unsigned x = 0;
  for (int i = 0; i < 4; i++) {
    char h = p[i];
    x <<= 4;
    if (h >= '0' && h <= '9')
      x |= (unsigned)(h - '0');
    else if (h >= 'a' && h <= 'f')
      x |= (unsigned)(h - 'a' + 10);
    else if (h >= 'A' && h <= 'F')
      x |= (unsigned)(h - 'A' + 10);
    else
      return -1;
  }
  *v = x;
  return 0;
}

static void put_utf8(dorm__buf *o, unsigned cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (char)cp, n = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xC0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xE0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
  } else {
    b[0] = (char)(0xF0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  dorm__buf_append(o, b, n);
}

/* One well-formed UTF-8 sequence at p (before end): its length, or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
  unsigned c = p[0], cp, min;
  size_t k;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF)
    k = 1, cp = c & 0x1F, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF)
    k = 2, cp = c & 0x0F, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    k = 3, cp = c & 0x07, min = 0x10000;
  else
    return 0;
  if ((size_t)(end - p) <= k) return 0;
  for (size_t q = 1; q <= k; q++) {
    if ((p[q] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[q] & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return k + 1;
}

/* A string at c->p (the opening quote), decoded into raw bytes. */
static int string_raw(jc *c, dorm__buf *raw) {
  c->p++;
  while (c->p < c->end && *c->p != '"') {
    unsigned char ch = (unsigned char)*c->p;
    if (ch < 0x20) return jfail(c, "control character in a string");
    if (ch != '\\') {
      size_t n =
          utf8_len((const unsigned char *)c->p, (const unsigned char *)c->end);
      if (!n) return jfail(c, "invalid UTF-8 in a string");
      dorm__buf_append(raw, c->p, n);
      c->p += n;
      continue;
    }
    if (c->end - c->p < 2) break;
    char e = c->p[1];
    c->p += 2;
    switch (e) {
      case '"': dorm__buf_putc(raw, '"'); break;
      case '\\': dorm__buf_putc(raw, '\\'); break;
      case '/': dorm__buf_putc(raw, '/'); break;
      case 'b': dorm__buf_putc(raw, '\b'); break;
      case 'f': dorm__buf_putc(raw, '\f'); break;
      case 'n': dorm__buf_putc(raw, '\n'); break;
      case 'r': dorm__buf_putc(raw, '\r'); break;
      case 't': dorm__buf_putc(raw, '\t'); break;
      case 'u': {
        unsigned cp, lo;
        if (c->end - c->p < 4 || hex4(c->p, &cp))
          return jfail(c, "bad \\u escape");
        c->p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' ||
              hex4(c->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return jfail(c, "unpaired surrogate in a \\u escape");
          c->p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return jfail(c, "unpaired surrogate in a \\u escape");
        }
        put_utf8(raw, cp);
        break;
      }
      default: return jfail(c, "bad escape in a string");
    }
  }
  if (c->p >= c->end) return jfail(c, "unterminated string");
  c->p++;
  return 0;
}

/* Raw bytes as a JSON string with the shortest escapes. */
static void string_out(dorm__buf *o, const char *s, size_t n) {
  dorm__buf_putc(o, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    switch (ch) {
      case '"': dorm__buf_append(o, "\\\"", 2); break;
      case '\\': dorm__buf_append(o, "\\\\", 2); break;
      case '\b': dorm__buf_append(o, "\\b", 2); break;
      case '\f': dorm__buf_append(o, "\\f", 2); break;
      case '\n': dorm__buf_append(o, "\\n", 2); break;
      case '\r': dorm__buf_append(o, "\\r", 2); break;
      case '\t': dorm__buf_append(o, "\\t", 2); break;
      default:
        if (ch < 0x20)
          dorm__buf_printf(o, "\\u%04x", ch);
        else
          dorm__buf_putc(o, (char)ch);
    }
  }
  dorm__buf_putc(o, '"');
}

/* A number, normalised: digits D without leading or trailing zeros and a
 * power of ten E (value = D * 10^E), written plainly unless that would
 * take more than 21 zeros, then as d.ddde±x. */
static int number(jc *c, dorm__buf *o) {
  const char *p = c->p, *end = c->end;
  int neg = 0;
  if (p < end && *p == '-') neg = 1, p++;
  if (p >= end || *p < '0' || *p > '9') return jfail(c, "expected a value");
  if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9')
    return jfail(c, "a number with a leading zero");
  dorm__buf d;
  dorm__buf_init(&d);
  long e = 0;
  for (; p < end && *p >= '0' && *p <= '9'; p++) dorm__buf_putc(&d, *p);
  if (p < end && *p == '.') {
    p++;
    if (p >= end || *p < '0' || *p > '9') {
      dorm__buf_free(&d);
      c->p = p;
      return jfail(c, "a digit must follow the decimal point");
    }
    for (; p < end && *p >= '0' && *p <= '9'; p++, e--) dorm__buf_putc(&d, *p);
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    int eneg = 0;
    if (p < end && (*p == '+' || *p == '-')) eneg = *p == '-', p++;
    if (p >= end || *p < '0' || *p > '9') {
      dorm__buf_free(&d);
      c->p = p;
      return jfail(c, "a digit must follow the exponent");
    }
    long x = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
      if (x > 100000000L) {
        dorm__buf_free(&d);
        c->p = p;
        return jfail(c, "exponent too large");
      }
      x = x * 10 + (*p - '0');
    }
    e += eneg ? -x : x;
  }
  c->p = p;
  if (d.oom) {
    dorm__buf_free(&d);
    c->oom = 1;
    return -1;
  }
  const char *ds = d.data;
  size_t n = d.len;
  while (n && ds[0] == '0') ds++, n--;
  while (n && ds[n - 1] == '0') n--, e++;
  if (!n) {
    dorm__buf_putc(o, '0'); /* -0 and 0.000 are 0, as in jsonb */
    dorm__buf_free(&d);
    return 0;
  }
  if (neg) dorm__buf_putc(o, '-');
  long point = (long)n + e; /* digits before the point */
  if (e >= 0 && e <= 21) {
    dorm__buf_append(o, ds, n);
    for (long z = 0; z < e; z++) dorm__buf_putc(o, '0');
  } else if (e < 0 && point > 0) {
    dorm__buf_append(o, ds, (size_t)point);
    dorm__buf_putc(o, '.');
    dorm__buf_append(o, ds + point, n - (size_t)point);
  } else if (e < 0 && point > -21) {
    dorm__buf_append(o, "0.", 2);
    for (long z = 0; z < -point; z++) dorm__buf_putc(o, '0');
    dorm__buf_append(o, ds, n);
  } else {
    dorm__buf_putc(o, ds[0]);
    if (n > 1) {
      dorm__buf_putc(o, '.');
      dorm__buf_append(o, ds + 1, n - 1);
    }
    dorm__buf_printf(o, "e%ld", point - 1);
  }
  dorm__buf_free(&d);
  return 0;
}

typedef struct member {
  char *key;
  size_t klen;
  char *val;
  size_t vlen;
  size_t order;
} member;

static int member_cmp(const void *a, const void *b) {
  const member *x = a, *y = b;
  size_t n = x->klen < y->klen ? x->klen : y->klen;
  int r = n ? memcmp(x->key, y->key, n) : 0;
  if (r) return r;
  if (x->klen != y->klen) return x->klen < y->klen ? -1 : 1;
  return x->order < y->order ? -1 : 1;
}

static void members_free(member *m, size_t n) {
  for (size_t i = 0; i < n; i++) {
    dorm__free(m[i].key);
    dorm__free(m[i].val);
  }
  dorm__free(m);
}

static int object(jc *c, dorm__buf *o, int depth) {
  member *m = NULL;
  size_t n = 0, cap = 0;
  c->p++; /* '{' */
  ws(c);
  if (c->p < c->end && *c->p == '}') {
    c->p++;
    dorm__buf_append(o, "{}", 2);
    return 0;
  }
  for (;;) {
    ws(c);
    if (c->p >= c->end || *c->p != '"') {
      jfail(c, "expected a key in double quotes");
      goto fail;
    }
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 8;
      member *bigger = dorm__realloc(m, ncap * sizeof *m);
      if (!bigger) {
        c->oom = 1;
        goto fail;
      }
      m = bigger, cap = ncap;
    }
    dorm__buf k, v;
    dorm__buf_init(&k);
    dorm__buf_init(&v);
    int rc = string_raw(c, &k);
    if (!rc) {
      ws(c);
      if (c->p >= c->end || *c->p != ':')
        rc = jfail(c, "expected ':' after a key");
      else
        c->p++;
    }
    if (!rc) rc = value(c, &v, depth + 1);
    if (k.oom || v.oom) c->oom = 1;
    if (rc || c->oom) {
      dorm__buf_free(&k);
      dorm__buf_free(&v);
      goto fail;
    }
    dorm__buf_cstr(&k);
    m[n].key = k.data, m[n].klen = k.len;
    m[n].val = v.data, m[n].vlen = v.len;
    m[n].order = n;
    n++;
    ws(c);
    if (c->p < c->end && *c->p == ',') {
      c->p++;
      continue;
    }
    if (c->p < c->end && *c->p == '}') {
      c->p++;
      break;
    }
    jfail(c, "expected ',' or '}' in an object");
    goto fail;
  }
  qsort(m, n, sizeof *m, member_cmp);
  dorm__buf_putc(o, '{');
  int first = 1;
  for (size_t i = 0; i < n; i++) {
    /* a repeated key: the last one written wins (sorted after the rest) */
    if (i + 1 < n && m[i].klen == m[i + 1].klen &&
        (!m[i].klen || !memcmp(m[i].key, m[i + 1].key, m[i].klen)))
      continue;
    if (!first) dorm__buf_putc(o, ',');
    first = 0;
    string_out(o, m[i].key ? m[i].key : "", m[i].klen);
    dorm__buf_putc(o, ':');
    dorm__buf_append(o, m[i].val, m[i].vlen);
  }
  dorm__buf_putc(o, '}');
  members_free(m, n);
  return 0;
fail:
  members_free(m, n);
  return -1;
}

static int array(jc *c, dorm__buf *o, int depth) {
  c->p++; /* '[' */
  dorm__buf_putc(o, '[');
  ws(c);
  if (c->p < c->end && *c->p == ']') {
    c->p++;
    dorm__buf_putc(o, ']');
    return 0;
  }
  for (;;) {
    if (value(c, o, depth + 1)) return -1;
    ws(c);
    if (c->p < c->end && *c->p == ',') {
      c->p++;
      dorm__buf_putc(o, ',');
      continue;
    }
    if (c->p < c->end && *c->p == ']') {
      c->p++;
      dorm__buf_putc(o, ']');
      return 0;
    }
    return jfail(c, "expected ',' or ']' in an array");
  }
}

static int word(jc *c, dorm__buf *o, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n))
    return jfail(c, "expected a value");
  c->p += n;
  dorm__buf_append(o, w, n);
  return 0;
}

static int value(jc *c, dorm__buf *o, int depth) {
  if (depth > MAX_DEPTH) return jfail(c, "nested too deeply");
  ws(c);
  if (c->p >= c->end) return jfail(c, "expected a value");
  switch (*c->p) {
    case '{': return object(c, o, depth);
    case '[': return array(c, o, depth);
    case '"': {
      dorm__buf raw;
      dorm__buf_init(&raw);
      int rc = string_raw(c, &raw);
      if (!rc) string_out(o, raw.data ? raw.data : "", raw.len);
      if (raw.oom) c->oom = 1;
      dorm__buf_free(&raw);
      return rc;
    }
    case 't': return word(c, o, "true");
    case 'f': return word(c, o, "false");
    case 'n': return word(c, o, "null");
    default: return number(c, o);
  }
}

int dorm__json_canon(const char *s, size_t n, char **out, size_t *outlen,
                     char *why, size_t whylen) {
  jc c = {s, s, s + n, why, whylen, 0, 0};
  dorm__buf o;
  dorm__buf_init(&o);
  *out = NULL;
  *outlen = 0;
  if (why && whylen) why[0] = '\0';
  int rc = value(&c, &o, 0);
  if (!rc) {
    ws(&c);
    if (c.p != c.end) rc = jfail(&c, "text after the JSON value");
  }
  if (c.oom || o.oom) {
    dorm__buf_free(&o);
    return DORM_ENOMEM;
  }
  if (rc) {
    dorm__buf_free(&o);
    return DORM_EJSON;
  }
  dorm__buf_cstr(&o);
  if (o.oom) {
    dorm__buf_free(&o);
    return DORM_ENOMEM;
  }
  *out = o.data;
  *outlen = o.len;
  return 0;
}
