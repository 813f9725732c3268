/* SPDX-License-Identifier: MIT */
/* tools/query_expr.c — the expression language of `dorm query`
 * (docs/cli.md, "query"), parsed by recursive descent straight into query
 * builder calls.
 *
 *   expr    := MODEL ('.' 'objects')? call* slice?
 *   call    := '.' NAME '(' args? ')'      filter exclude order_by values
 *                                          distinct all count exists first get
 *   args    := (q_or ',')* kwarg (',' kwarg)* ','?   (Python's order)
 *            | q_or (',' q_or)* ','?
 *   kwarg   := NAME '=' rhs
 *   q_or    := q_and ('|' q_and)*
 *   q_and   := q_not ('&' q_not)*
 *   q_not   := '~' q_not | 'Q' '(' args? ')' | '(' q_or ')'
 *   rhs     := arith                            (a literal, or F arithmetic)
 *   arith   := term (('+' | '-') term)*
 *   term    := factor (('*' | '/') factor)*
 *   factor  := 'F' '(' STRING ')' | literal | '-' factor | '(' arith ')'
 *   slice   := '[' INT? ':' INT? ']' | '[' INT ']'
 *   literal := STRING (JSON escapes) | INT | DECIMAL | True | False | None
 *            | '[' literal (',' literal)* ']'
 *
 * filter(a=1, b=2) and exclude(a=1, b=2) take their arguments as one
 * conjunction, so exclude means NOT (a AND b) as in Django; Q(...) takes Q
 * expressions and keyword lookups the same way.  The keywords come after
 * the Q expressions, sorted by name, as Django's Q(*args, **kwargs) has
 * them.  An empty Q() is no condition.  F arithmetic needs an F() in each
 * operation (Python computes 1 + 2 before Django sees it).  Nesting stops
 * at QX_MAX_DEPTH levels.
 *
 * Values are handed to the builder, which copies them, so the strings
 * decoded here live only until the parse ends.  Nothing is pasted into
 * SQL: every name goes through the builder's checks, every value becomes a
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
  int depth; /* of nested parentheses, ~, Q(), '-' and lists */
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

static int enter(parser *P);
static void leave(parser *P);

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
  size_t n = (size_t)(e - b);
  if (n > 1000) return fail(P, "number too long");
  char *buf = keep(P, malloc(n + 1));
  if (!buf) return fail(P, "out of memory");
  memcpy(buf, b, n);
  buf[n] = '\0';
  errno = 0;
  long long x = dec ? 0 : strtoll(buf, NULL, 10);
  if (dec || errno == ERANGE) {
    /* A decimal literal, or an integer beyond 64 bits, travels as its
     * exact text (a decimal): a decimal field compares with exactly what
     * was written (95.26, not the double 95.260000000000005), a float
     * field with the nearest double, and an integer field refuses it. */
    *v = dorm_textn(DORM_T_DECIMAL, buf, n);
  } else {
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
  if (*P->p == '[') {
    if (enter(P)) return -1;
    int rc = list_lit(P, v);
    leave(P);
    return rc;
  }
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

/* ---- nesting ---------------------------------------------------------------
 */

/* Parentheses, ~, Q(...), unary minus and lists recurse; a limit keeps a
 * hostile expression from exhausting the stack (Python's own parser stops
 * at 200 nested parentheses too). */
#define QX_MAX_DEPTH 200

static int enter(parser *P) {
  if (++P->depth <= QX_MAX_DEPTH) return 0;
  return fail(P, "expression nested too deeply (more than %d levels)",
              QX_MAX_DEPTH);
}

static void leave(parser *P) { P->depth--; }

/* The builder's sticky error as ours; always -1. */
static int builder_fail(parser *P) {
  dorm_error e;
  dorm_error_clear(&e);
  dorm_query_error(P->q, &e);
  return fail(P, "%s", e.message[0] ? e.message : "out of memory");
}

/* ---- F expressions ----------------------------------------------------------
 *
 * The right-hand side of a lookup is a literal or arithmetic over F() and
 * numbers, with Python's precedence (unary minus, then * /, then + -, left
 * to right).  Arithmetic between two plain numbers is refused: Python
 * computes it before Django sees it (7 / 2 is 3.5 there, 3 in SQL), so the
 * expression should say the result.  -F("a") is F("a") * -1, as Django's
 * F.__neg__.
 */

typedef struct operand {
  dorm_value v; /* the literal, while e is NULL */
  dorm_expr *e; /* the expression, once an F() is in it */
} operand;

static int arith(parser *P, operand *o);

static int is_number(const dorm_value *v) {
  return v->type == DORM_T_INT || v->type == DORM_T_FLOAT ||
         v->type == DORM_T_DECIMAL;
}

static dorm_expr *as_expr(parser *P, operand *o) {
  return o->e ? o->e : dorm_lit(P->q, o->v);
}

/* a = a op b; at is the operator's place, for errors. */
static int combine_op(parser *P, char op, operand *a, operand *b,
                      const char *at) {
  const char *end = P->p;
  P->p = at; /* errors point at the operator */
  if (!a->e && !b->e)
    return fail(P,
                "'%c' between two values without F(): write the value it "
                "comes to",
                op);
  const operand *lit = a->e ? b : a;
  if (!lit->e && !is_number(&lit->v))
    return fail(P, "only numbers combine with F() (not a %s)",
                dorm_type_name(lit->v.type));
  dorm_expr *x = as_expr(P, a), *y = as_expr(P, b);
  dorm_expr *r = dorm_op(P->q, op, x, y);
  if (!r) return builder_fail(P);
  a->e = r;
  P->p = end;
  return 0;
}

/* F("path") | literal | '-' factor | '(' arith ')' */
static int factor(parser *P, operand *o) {
  ws(P);
  const char *at = P->p;
  o->e = NULL;
  if (peek_ident(P, "F")) {
    P->p++;
    if (expect(P, '(')) return -1;
    ws(P);
    dorm_value path;
    if (*P->p != '"')
      return fail(P,
                  "F() takes a field path in double quotes, as in "
                  "F(\"age\")");
    if (string_lit(P, &path) || expect(P, ')')) return -1;
    o->e = dorm_F(P->q, path.u.s.ptr);
    if (!o->e) {
      P->p = at;
      return builder_fail(P);
    }
    return 0;
  }
  if (*P->p == '(') {
    if (enter(P)) return -1;
    P->p++;
    if (arith(P, o)) return -1;
    if (take(P, ','))
      return fail(P, "tuples are not supported; write a list [a, b]");
    if (expect(P, ')')) return -1;
    leave(P);
    return 0;
  }
  if (*P->p == '-' && !isdigit((unsigned char)P->p[1])) {
    if (enter(P)) return -1;
    P->p++;
    if (factor(P, o)) return -1;
    leave(P);
    if (!o->e) {
      P->p = at;
      return fail(P,
                  "'-' before a value without F(): write the number "
                  "it comes to");
    }
    o->e = dorm_op(P->q, '*', o->e, dorm_lit(P->q, dorm_int(-1)));
    if (!o->e) return builder_fail(P);
    return 0;
  }
  return literal(P, &o->v);
}

/* factor (('*' | '/') factor)* */
static int term(parser *P, operand *o) {
  if (factor(P, o)) return -1;
  for (;;) {
    ws(P);
    const char *at = P->p;
    char op = *P->p;
    if (op != '*' && op != '/') return 0;
    if (P->p[1] == op)
      return fail(P, "'%c%c' is not supported (F() arithmetic takes + - * /)",
                  op, op);
    P->p++;
    operand b;
    if (factor(P, &b) || combine_op(P, op, o, &b, at)) return -1;
  }
}

/* term (('+' | '-') term)* */
static int arith(parser *P, operand *o) {
  if (term(P, o)) return -1;
  for (;;) {
    ws(P);
    const char *at = P->p;
    char op = *P->p;
    if (op != '+' && op != '-') return 0;
    P->p++;
    operand b;
    if (term(P, &b) || combine_op(P, op, o, &b, at)) return -1;
  }
}

/* The value of a keyword lookup: a literal, or dorm_fval of an F
 * expression. */
static int rhs(parser *P, dorm_value *v) {
  operand o;
  if (arith(P, &o)) return -1;
  *v = o.e ? dorm_fval(o.e) : o.v;
  return 0;
}

/* ---- Q expressions ----------------------------------------------------------
 *
 * Each function leaves its condition in *out, NULL for an empty Q(): as in
 * Django an empty Q is no condition at all, and stays so under ~, & and |
 * (Q() | Q(a=1) is Q(a=1)).
 */

static int q_or(parser *P, dorm_q **out);

static int q_and2(parser *P, dorm_q **acc, dorm_q *b) {
  if (!b) return 0;
  if (!*acc) {
    *acc = b;
    return 0;
  }
  *acc = dorm_q_and(P->q, *acc, b);
  return *acc ? 0 : builder_fail(P);
}

typedef struct kwarg {
  const char *name; /* in the keep list */
  dorm_value v;
  const char *at; /* where it was written, for errors */
} kwarg;

static int kwarg_cmp(const void *a, const void *b) {
  return strcmp(((const kwarg *)a)->name, ((const kwarg *)b)->name);
}

/* NAME '=' rhs, into the growing array *kw. */
static int kwarg_parse(parser *P, kwarg **kw, size_t *n, size_t *cap) {
  ws(P);
  const char *at = P->p;
  char name[256];
  if (!ident(P, name, sizeof name))
    return fail(P, "expected a lookup such as age__gte=18");
  for (size_t i = 0; i < *n; i++)
    if (!strcmp((*kw)[i].name, name)) {
      P->p = at;
      return fail(P, "keyword argument repeated: %s", name);
    }
  if (expect(P, '=')) return -1;
  dorm_value v;
  if (rhs(P, &v)) return -1;
  if (*n == *cap) {
    /* the old block stays in the keep list; copy into a bigger one */
    size_t nc = *cap ? *cap * 2 : 8;
    kwarg *bigger = keep(P, malloc(nc * sizeof *bigger));
    if (!bigger) return fail(P, "out of memory");
    if (*n) memcpy(bigger, *kw, *n * sizeof *bigger);
    *kw = bigger;
    *cap = nc;
  }
  char *kept = keep(P, malloc(strlen(name) + 1));
  if (!kept) return fail(P, "out of memory");
  strcpy(kept, name);
  (*kw)[*n].name = kept;
  (*kw)[*n].v = v;
  (*kw)[*n].at = at;
  (*n)++;
  return 0;
}

/* The arguments of filter, exclude, get and Q, up to ')' (not consumed):
 * Q expressions, then keyword lookups, as Python requires.  ANDed in
 * Django's order, Q(*args, **kwargs): the Q expressions as written, then
 * the keywords sorted by name (the order decides which lookups across a
 * multi-valued relation a later negated one is tied to; docs/queries.md). */
static int args(parser *P, dorm_q **out) {
  dorm_q *acc = NULL;
  kwarg *kw = NULL;
  size_t n = 0, cap = 0;
  *out = NULL;
  for (;;) {
    ws(P);
    if (*P->p == ')') break; /* no arguments, or a trailing comma */
    const char *save = P->p;
    char name[256];
    /* NAME '=' is a keyword argument; anything else a Q expression. */
    int is_kw = ident(P, name, sizeof name) && (ws(P), *P->p == '=');
    if (P->failed) return -1;
    P->p = save;
    if (is_kw) {
      if (kwarg_parse(P, &kw, &n, &cap)) return -1;
    } else {
      if (n) return fail(P, "positional argument follows keyword argument");
      dorm_q *c;
      if (q_or(P, &c) || q_and2(P, &acc, c)) return -1;
    }
    if (!take(P, ',')) break;
  }
  if (n) {
    const char *end = P->p;
    qsort(kw, n, sizeof *kw, kwarg_cmp);
    for (size_t i = 0; i < n; i++) {
      dorm_q *leaf = dorm_Q(P->q, kw[i].name, kw[i].v);
      if (!leaf) {
        P->p = kw[i].at;
        return builder_fail(P);
      }
      if (q_and2(P, &acc, leaf)) return -1;
    }
    P->p = end;
  }
  *out = acc;
  return 0;
}

/* '~' q_not | 'Q' '(' args ')' | '(' q_or ')' */
static int q_not(parser *P, dorm_q **out) {
  int rc = -1;
  ws(P);
  if (*P->p != '~' && *P->p != '(' && !peek_ident(P, "Q"))
    return fail(P, "expected Q(...), ~ or (");
  if (enter(P)) return -1;
  if (take(P, '~')) {
    dorm_q *a;
    if (q_not(P, &a)) return -1;
    *out = a ? dorm_q_not(P->q, a) : NULL;
    rc = a && !*out ? builder_fail(P) : 0;
  } else if (take(P, '(')) {
    rc = q_or(P, out) || expect(P, ')') ? -1 : 0;
  } else {
    P->p++; /* Q */
    if (expect(P, '(') || args(P, out) || expect(P, ')')) return -1;
    rc = 0;
  }
  leave(P);
  return rc;
}

static int q_and(parser *P, dorm_q **out) {
  if (q_not(P, out)) return -1;
  while (take(P, '&')) {
    dorm_q *b;
    if (q_not(P, &b) || q_and2(P, out, b)) return -1;
  }
  return 0;
}

static int q_or(parser *P, dorm_q **out) {
  if (q_and(P, out)) return -1;
  while (take(P, '|')) {
    dorm_q *b;
    if (q_and(P, &b)) return -1;
    if (!b) continue;
    if (!*out) {
      *out = b;
      continue;
    }
    *out = dorm_q_or(P->q, *out, b);
    if (!*out) return builder_fail(P);
  }
  return 0;
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

/* values() with no field: every field with a column, keyed as Django's
 * values() keys them: by attname, so a foreign key "writer" is
 * "writer_id" (its value the key, as values("writer_id") gives). */
static int all_values(parser *P) {
  const dorm_model *m = dorm_query_model(P->q);
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (f->type == DORM_FIELD_MANY_TO_MANY) continue;
    char attname[256];
    snprintf(attname, sizeof attname, "%s%s", f->name,
             dorm_field_is_fk(f) ? "_id" : "");
    if (dorm_values(P->q, attname)) return builder_error(P);
  }
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
    P->out->index = a;
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
    dorm_q *c;
    if (args(P, &c)) return -1;
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
    ws(P);
    if (*P->p == ')') {
      if (all_values(P)) return -1;
    } else if (string_args(P, dorm_values, "values")) {
      return -1;
    }
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
