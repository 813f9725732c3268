/* tools/query_expr.c — the expression language of `dorm query`
 * (CONTRACT.md), parsed by recursive descent straight into query builder
 * calls.
 *
 *   expr    := MODEL ('.' 'objects')? call* slice?
 *   call    := '.' NAME '(' args? ')'      filter exclude order_by values
 *                                          distinct all count exists first get
 *   args    := arg (',' arg)*
 *   arg     := NAME '=' literal | q_or | literal
 *   q_or    := q_and ('|' q_and)*
 *   q_and   := q_not ('&' q_not)*
 *   q_not   := '~' q_not | 'Q' '(' kwargs ')' | '(' q_or ')'
 *   slice   := '[' INT? ':' INT? ']' | '[' INT ']'
 *   literal := STRING (JSON escapes) | INT | DECIMAL | True | False | None
 *            | '[' literal (',' literal)* ']'
 *
 * filter(a=1, b=2) and exclude(a=1, b=2) take their arguments as one
 * conjunction, so exclude means NOT (a AND b) as in Django.  Values are
 * handed to the builder, which copies them, so the strings decoded here
 * live only until the builder call returns.  Nothing is pasted into SQL:
 * every name goes through the builder's checks, every value becomes a
 * parameter.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/query_expr.h"

typedef struct parser {
  const char *s, *p;
  const dorm_schema *schema;
  dorm_query *q;
  qx_result *out;
  char *err;
  size_t errlen;
  int failed;
  /* decoded strings and lists, freed at the end */
  void **blocks;
  size_t nblocks, capblocks;
} parser;

static int fail(parser *P, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int fail(parser *P, const char *fmt, ...) {
  if (P->failed) return -1;
  P->failed = 1;
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(P->err, P->errlen, "%s at column %zu", msg,
           (size_t)(P->p - P->s) + 1);
  return -1;
}

static void *keep(parser *P, void *p) {
  if (!p) return NULL;
  if (P->nblocks == P->capblocks) {
    size_t nc = P->capblocks ? P->capblocks * 2 : 16;
    void **nb = realloc(P->blocks, nc * sizeof *nb);
    if (!nb) {
      free(p);
      return NULL;
    }
    P->blocks = nb;
    P->capblocks = nc;
  }
  P->blocks[P->nblocks++] = p;
  return p;
}

static void ws(parser *P) {
  while (*P->p && isspace((unsigned char)*P->p)) P->p++;
}

static int take(parser *P, char c) {
  ws(P);
  if (*P->p != c) return 0;
  P->p++;
  return 1;
}

static int expect(parser *P, char c) {
  if (take(P, c)) return 0;
  if (*P->p) return fail(P, "expected '%c', found '%c'", c, *P->p);
  return fail(P, "expected '%c' at the end", c);
}

/* An identifier into buf; 0 when none is here. */
static int ident(parser *P, char *buf, size_t len) {
  ws(P);
  const char *b = P->p;
  if (!(isalpha((unsigned char)*b) || *b == '_')) return 0;
  while (isalnum((unsigned char)*P->p) || *P->p == '_') P->p++;
  size_t n = (size_t)(P->p - b);
  if (n >= len) {
    P->p = b;
    return fail(P, "name too long"), 0;
  }
  memcpy(buf, b, n);
  buf[n] = '\0';
  return 1;
}

static int peek_ident(parser *P, const char *word) {
  ws(P);
  size_t n = strlen(word);
  return !strncmp(P->p, word, n) && !isalnum((unsigned char)P->p[n]) &&
         P->p[n] != '_';
}

/* ---- literals ----------------------------------------------------------- */

static int literal(parser *P, dorm_value *v);

static int string_lit(parser *P, dorm_value *v) {
  const char *b = P->p; /* at the opening quote */
  const char *e = b + 1;
  while (*e && *e != '"') {
    if (*e == '\\' && e[1]) e++;
    e++;
  }
  if (*e != '"') return fail(P, "unterminated string");
  json_error_t jerr;
  json_t *j = json_loadb(b, (size_t)(e - b + 1), JSON_DECODE_ANY, &jerr);
  if (!json_is_string(j)) {
    json_decref(j);
    return fail(P, "bad string literal (JSON escapes only)");
  }
  size_t n = json_string_length(j);
  char *s = keep(P, malloc(n + 1));
  if (!s) {
    json_decref(j);
    return fail(P, "out of memory");
  }
  memcpy(s, json_string_value(j), n + 1);
  json_decref(j);
  *v = dorm_strn(s, n);
  P->p = e + 1;
  return 0;
}

static int number_lit(parser *P, dorm_value *v) {
  const char *b = P->p;
  const char *e = b;
  if (*e == '-' || *e == '+') e++;
  if (!isdigit((unsigned char)*e)) return fail(P, "expected a value");
  while (isdigit((unsigned char)*e)) e++;
  int dec = 0;
  if (*e == '.' && isdigit((unsigned char)e[1])) {
    dec = 1;
    e++;
    while (isdigit((unsigned char)*e)) e++;
  }
  char buf[64];
  size_t n = (size_t)(e - b);
  if (n >= sizeof buf) return fail(P, "number too long");
  memcpy(buf, b, n);
  buf[n] = '\0';
  if (dec) {
    /* A decimal literal travels as a float: integer and float fields
     * compare with it, and the builder turns it into a decimal's text for
     * decimal fields. */
    *v = dorm_float(strtod(buf, NULL));
  } else {
    char *end;
    long long x = strtoll(buf, &end, 10);
    *v = dorm_int(x);
  }
  P->p = e;
  return 0;
}

static int list_lit(parser *P, dorm_value *v) {
  size_t n = 0, cap = 8;
  dorm_value *items = keep(P, malloc(cap * sizeof *items));
  if (!items) return fail(P, "out of memory");
  P->p++; /* '[' */
  if (!take(P, ']')) {
    for (;;) {
      if (n == cap) {
        /* the old block stays in the keep list; copy into a bigger one */
        dorm_value *bigger = keep(P, malloc(2 * cap * sizeof *bigger));
        if (!bigger) return fail(P, "out of memory");
        memcpy(bigger, items, n * sizeof *items);
        items = bigger;
        cap *= 2;
      }
      if (literal(P, &items[n])) return -1;
      n++;
      if (take(P, ']')) break;
      if (expect(P, ',')) return -1;
    }
  }
  *v = dorm_list(items, n);
  return 0;
}

static int literal(parser *P, dorm_value *v) {
  ws(P);
  if (*P->p == '"') return string_lit(P, v);
  if (*P->p == '[') return list_lit(P, v);
  if (peek_ident(P, "True")) {
    P->p += 4;
    *v = dorm_bool(1);
    return 0;
  }
  if (peek_ident(P, "False")) {
    P->p += 5;
    *v = dorm_bool(0);
    return 0;
  }
  if (peek_ident(P, "None")) {
    P->p += 4;
    *v = dorm_null();
    return 0;
  }
  if (*P->p == '\'') return fail(P, "strings take double quotes (\"...\")");
  return number_lit(P, v);
}

/* ---- Q expressions ----------------------------------------------------------
 */

static dorm_q *q_or(parser *P);

/* NAME '=' literal, as a Q leaf. */
static dorm_q *kwarg(parser *P) {
  char name[256];
  if (!ident(P, name, sizeof name)) {
    fail(P, "expected a lookup such as age__gte=18");
    return NULL;
  }
  if (expect(P, '=')) return NULL;
  dorm_value v;
  if (literal(P, &v)) return NULL;
  dorm_q *leaf = dorm_Q(P->q, name, v);
  if (!leaf) {
    dorm_error e;
    dorm_error_clear(&e);
    dorm_query_error(P->q, &e);
    fail(P, "%s", e.message[0] ? e.message : "invalid lookup");
  }
  return leaf;
}

/* kwargs joined with AND, up to ')' (not consumed). */
static dorm_q *kwargs_and(parser *P) {
  dorm_q *acc = NULL;
  do {
    ws(P);
    if (*P->p == ')') break;
    dorm_q *k = kwarg(P);
    if (!k) return NULL;
    acc = acc ? dorm_q_and(P->q, acc, k) : k;
  } while (take(P, ','));
  return acc;
}

static dorm_q *q_not(parser *P) {
  if (take(P, '~')) {
    dorm_q *a = q_not(P);
    return a ? dorm_q_not(P->q, a) : NULL;
  }
  if (take(P, '(')) {
    dorm_q *a = q_or(P);
    if (!a || expect(P, ')')) return NULL;
    return a;
  }
  if (peek_ident(P, "Q")) {
    P->p += 1;
    if (expect(P, '(')) return NULL;
    dorm_q *a = kwargs_and(P);
    if (P->failed) return NULL;
    if (!a) {
      fail(P, "Q() needs at least one lookup");
      return NULL;
    }
    if (expect(P, ')')) return NULL;
    return a;
  }
  fail(P, "expected Q(...), ~ or (");
  return NULL;
}

static dorm_q *q_and(parser *P) {
  dorm_q *a = q_not(P);
  while (a && take(P, '&')) {
    dorm_q *b = q_not(P);
    if (!b) return NULL;
    a = dorm_q_and(P->q, a, b);
  }
  return a;
}

static dorm_q *q_or(parser *P) {
  dorm_q *a = q_and(P);
  while (a && take(P, '|')) {
    dorm_q *b = q_and(P);
    if (!b) return NULL;
    a = dorm_q_or(P->q, a, b);
  }
  return a;
}

/* filter/exclude/get arguments: kwargs and Q expressions, ANDed. */
static dorm_q *conditions(parser *P) {
  dorm_q *acc = NULL;
  ws(P);
  if (*P->p == ')') return NULL;
  do {
    ws(P);
    dorm_q *c;
    const char *save = P->p;
    char name[256];
    /* NAME '=' is a keyword argument; anything else a Q expression. */
    if (ident(P, name, sizeof name) && (ws(P), *P->p == '=')) {
      P->p = save;
      c = kwarg(P);
    } else {
      if (P->failed) return NULL;
      P->p = save;
      c = q_or(P);
    }
    if (!c) return NULL;
    acc = acc ? dorm_q_and(P->q, acc, c) : c;
  } while (take(P, ','));
  return acc;
}

/* "a", "-b", ... up to ')' (not consumed), each passed to fn. */
static int string_args(parser *P, int (*fn)(dorm_query *, const char *),
                       const char *what) {
  ws(P);
  if (*P->p == ')') return 0;
  do {
    dorm_value v;
    ws(P);
    if (*P->p != '"')
      return fail(P, "%s takes field names in double quotes", what);
    if (string_lit(P, &v)) return -1;
    if (fn(P->q, v.u.s.ptr)) {
      dorm_error e;
      dorm_error_clear(&e);
      dorm_query_error(P->q, &e);
      return fail(P, "%s", e.message);
    }
  } while (take(P, ','));
  return 0;
}

static int builder_error(parser *P) {
  dorm_error e;
  dorm_error_clear(&e);
  if (dorm_query_error(P->q, &e)) return fail(P, "%s", e.message);
  return 0;
}

/* A slice bound: digits, range-checked before any arithmetic (a single
 * index i becomes [i:i+1], so the largest is one below INT64_MAX). */
static int slice_index(parser *P, long long *out) {
  const char *start = P->p;
  errno = 0;
  long long v = strtoll(start, (char **)&P->p, 10);
  if (errno == ERANGE || v >= LLONG_MAX)
    return fail(P, "slice index %.*s is too large (at most %lld)",
                (int)(P->p - start > 40 ? 40 : P->p - start), start,
                LLONG_MAX - 1);
  *out = v;
  return 0;
}

static int slice(parser *P) {
  long long a = 0, b = -1;
  int has_a = 0, has_colon = 0;
  ws(P);
  if (isdigit((unsigned char)*P->p)) {
    if (slice_index(P, &a)) return -1;
    has_a = 1;
  } else if (*P->p == '-') {
    return fail(P, "negative indexing is not supported");
  }
  if (take(P, ':')) {
    has_colon = 1;
    ws(P);
    if (isdigit((unsigned char)*P->p) && slice_index(P, &b)) return -1;
  }
  if (expect(P, ']')) return -1;
  if (!has_colon) {
    if (!has_a) return fail(P, "empty slice");
    b = a + 1;
    P->out->single = 1;
  }
  if (dorm_slice(P->q, a, b)) return builder_error(P);
  return 0;
}

static int method(parser *P) {
  char name[64];
  if (!ident(P, name, sizeof name)) return fail(P, "expected a method name");
  if (expect(P, '(')) return -1;
  qx_result *o = P->out;
  if (o->term != QX_ROWS)
    return fail(P, "nothing may follow %s()",
                o->term == QX_COUNT    ? "count"
                : o->term == QX_EXISTS ? "exists"
                : o->term == QX_FIRST  ? "first"
                                       : "get");
  if (!strcmp(name, "filter") || !strcmp(name, "exclude") ||
      !strcmp(name, "get")) {
    dorm_q *c = conditions(P);
    if (P->failed) return -1;
    if (c) {
      int rc = !strcmp(name, "exclude") ? dorm_exclude_q(P->q, c)
                                        : dorm_filter_q(P->q, c);
      if (rc) return builder_error(P);
    } else if (strcmp(name, "get")) {
      /* filter() with nothing: all rows */
    }
    if (!strcmp(name, "get")) o->term = QX_GET;
  } else if (!strcmp(name, "order_by")) {
    if (string_args(P, dorm_order_by, "order_by")) return -1;
    o->ordered = 1;
  } else if (!strcmp(name, "values")) {
    if (string_args(P, dorm_values, "values")) return -1;
    o->has_values = 1;
  } else if (!strcmp(name, "distinct")) {
    if (dorm_distinct(P->q)) return builder_error(P);
  } else if (!strcmp(name, "all")) {
  } else if (!strcmp(name, "count")) {
    o->term = QX_COUNT;
  } else if (!strcmp(name, "exists")) {
    o->term = QX_EXISTS;
  } else if (!strcmp(name, "first")) {
    o->term = QX_FIRST;
  } else {
    return fail(P,
                "unknown method '%s' (filter, exclude, order_by, values, "
                "distinct, all, count, exists, first, get)",
                name);
  }
  return expect(P, ')');
}

int qx_parse(const dorm_schema *schema, const char *text, qx_result *out,
             char *err, size_t errlen) {
  parser P;
  memset(&P, 0, sizeof P);
  memset(out, 0, sizeof *out);
  P.s = P.p = text;
  P.schema = schema;
  P.out = out;
  P.err = err;
  P.errlen = errlen;
  err[0] = '\0';
  char mname[128];
  if (!ident(&P, mname, sizeof mname)) {
    fail(&P, "expected a model name, as in Author.filter(age__gte=18)");
    goto fail;
  }
  out->model = dorm_schema_model(schema, mname);
  if (!out->model) {
    fail(&P, "unknown model '%s'", mname);
    goto fail;
  }
  P.q = dorm_select(out->model);
  if (!P.q) {
    fail(&P, "out of memory");
    goto fail;
  }
  out->q = P.q;
  for (;;) {
    ws(&P);
    if (!*P.p) break;
    if (take(&P, '.')) {
      if (peek_ident(&P, "objects")) {
        P.p += 7;
        continue;
      }
      if (method(&P)) goto fail;
    } else if (take(&P, '[')) {
      if (out->term != QX_ROWS) {
        fail(&P,
             "a slice must come before count(), exists(), first() or get()");
        goto fail;
      }
      if (slice(&P)) goto fail;
    } else {
      fail(&P, "unexpected '%c'", *P.p);
      goto fail;
    }
  }
  for (size_t i = 0; i < P.nblocks; i++) free(P.blocks[i]);
  free(P.blocks);
  return 0;
fail:
  for (size_t i = 0; i < P.nblocks; i++) free(P.blocks[i]);
  free(P.blocks);
  dorm_query_free(out->q);
  out->q = NULL;
  return -1;
}
