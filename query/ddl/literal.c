/* SPDX-License-Identifier: MIT */
/* query/ddl/literal.c — values rendered as SQL literals, and check
 * constraints built from them.
 *
 * DDL cannot take parameters, so this file is the one place in dorm where
 * a value becomes SQL text.  It is deliberately strict: the value must fit
 * the column's type, text is single-quoted with quotes doubled and refused
 * when it holds a NUL byte or is not UTF-8, a backslash switches
 * PostgreSQL to an E'' literal (so the text means the same whatever
 * standard_conforming_strings says), numbers are printed by us, and
 * anything else (lists, expressions, NaN) is refused.  Check constraints
 * are lookups on the model's own fields against such literals — never SQL
 * text from a user.  Emit helpers: calls only emit.c (ddl_int.h gives the
 * order).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/ddl/ddl_int.h"

static int fail_why(char *why, size_t n, int code, const char *msg) {
  if (why && n) snprintf(why, n, "%s", msg);
  return code;
}

static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t k;
    unsigned cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      k = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      k = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      k = 3, cp = c & 0x07;
    } else {
      return 0;
    }
    if (n - i <= k) return 0; /* truncated sequence */
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    /* overlong forms, surrogates and values past U+10FFFF */
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
        (k == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += k + 1;
  }
  return 1;
}

/* '...' with ' doubled; on PostgreSQL a text with a backslash becomes
 * E'...' with \ doubled too, which reads the same under either setting of
 * standard_conforming_strings. */
static int quoted(dorm__buf *b, dorm_dialect d, const char *p, size_t n,
                  char *why, size_t whylen) {
  if (memchr(p, '\0', n))
    return fail_why(why, whylen, DORM_ETYPE, "text holds a NUL byte");
  if (!utf8_valid((const unsigned char *)p, n))
    return fail_why(why, whylen, DORM_ETYPE, "text is not valid UTF-8");
  int esc = d == DORM_DIALECT_POSTGRES && memchr(p, '\\', n) != NULL;
  if (esc) dorm__buf_putc(b, 'E');
  dorm__buf_putc(b, '\'');
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\'' || (esc && p[i] == '\\')) dorm__buf_putc(b, p[i]);
    dorm__buf_putc(b, p[i]);
  }
  dorm__buf_putc(b, '\'');
  return 0;
}

/* Only characters that can appear in the ISO forms of dates, times and
 * UUIDs: a cheap guard so that nonsense fails here, not in the database. */
static int iso_chars(const char *p, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!strchr("0123456789-:.+TZtz abcdefABCDEF", p[i]) || p[i] == '\0')
      return 0;
  return 1;
}

/* -?digits[.digits] or -?.digits: printed bare, so checked strictly. */
static int decimal_text(const char *p, size_t n) {
  size_t i = 0, digits = 0;
  if (i < n && (p[i] == '-' || p[i] == '+')) i++;
  while (i < n && p[i] >= '0' && p[i] <= '9') i++, digits++;
  if (i < n && p[i] == '.') {
    i++;
    while (i < n && p[i] >= '0' && p[i] <= '9') i++, digits++;
  }
  return digits > 0 && i == n;
}

static void put_float(dorm__buf *b, double f) {
  /* The shortest form that reads back as the same double. */
  char tmp[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, f);
    if (strtod(tmp, NULL) == f) break;
  }
  dorm__buf_puts(b, tmp);
}

static const char *pg_cast(dorm_field_type t) {
  switch (t) {
    case DORM_FIELD_DATE: return "::date";
    case DORM_FIELD_TIME: return "::time";
    case DORM_FIELD_DATETIME: return "::timestamptz";
    case DORM_FIELD_UUID: return "::uuid";
    case DORM_FIELD_JSON: return "::jsonb";
    default: return "";
  }
}

int dorm__ddl_literal(dorm__buf *b, dorm_dialect d, const dorm_field *vf,
                      dorm_value v, char *why, size_t whylen) {
  int pg = d == DORM_DIALECT_POSTGRES;
  if (!vf) return fail_why(why, whylen, DORM_ESCHEMA, "unresolved relation");
  if (v.type == DORM_T_NULL) {
    dorm__buf_puts(b, "NULL");
    return 0;
  }
  if (v.type == DORM_T_LIST || v.type == DORM_T_EXPR)
    return fail_why(why, whylen, DORM_ETYPE, "expected a single value");
  if ((v.type >= DORM_T_TEXT && v.type <= DORM_T_JSON) && !v.u.s.ptr &&
      v.u.s.len)
    return fail_why(why, whylen, DORM_EINVAL, "text without a pointer");
  switch (vf->type) {
    case DORM_FIELD_AUTO:
    case DORM_FIELD_BIGAUTO:
    case DORM_FIELD_SMALLINT:
    case DORM_FIELD_INTEGER:
    case DORM_FIELD_BIGINT:
      if (v.type != DORM_T_INT)
        return fail_why(why, whylen, DORM_ETYPE, "expected an integer");
      dorm__buf_put_int(b, v.u.i);
      return 0;
    case DORM_FIELD_FLOAT:
    case DORM_FIELD_DECIMAL:
      if (v.type == DORM_T_INT) {
        dorm__buf_put_int(b, v.u.i);
        return 0;
      }
      if (v.type == DORM_T_FLOAT) {
        if (!isfinite(v.u.f))
          return fail_why(why, whylen, DORM_ERANGE, "not a finite number");
        put_float(b, v.u.f);
        return 0;
      }
      if (v.type == DORM_T_DECIMAL || v.type == DORM_T_TEXT) {
        if (!decimal_text(v.u.s.ptr, v.u.s.len))
          return fail_why(why, whylen, DORM_ETYPE, "not a decimal number");
        dorm__buf_append(b, v.u.s.ptr, v.u.s.len);
        return 0;
      }
      return fail_why(why, whylen, DORM_ETYPE, "expected a number");
    case DORM_FIELD_BOOLEAN:
      if (v.type != DORM_T_BOOL)
        return fail_why(why, whylen, DORM_ETYPE, "expected a boolean");
      dorm__buf_puts(b, pg ? (v.u.b ? "TRUE" : "FALSE") : (v.u.b ? "1" : "0"));
      return 0;
    case DORM_FIELD_VARCHAR:
    case DORM_FIELD_TEXT:
      if (v.type != DORM_T_TEXT)
        return fail_why(why, whylen, DORM_ETYPE, "expected text");
      return quoted(b, d, v.u.s.ptr, v.u.s.len, why, whylen);
    case DORM_FIELD_DATE:
    case DORM_FIELD_TIME:
    case DORM_FIELD_DATETIME:
    case DORM_FIELD_UUID: {
      static const dorm_type want[] = {DORM_T_DATE, DORM_T_TIME,
                                       DORM_T_DATETIME, DORM_T_UUID};
      dorm_type w = want[vf->type == DORM_FIELD_DATE       ? 0
                         : vf->type == DORM_FIELD_TIME     ? 1
                         : vf->type == DORM_FIELD_DATETIME ? 2
                                                           : 3];
      if (v.type != w && v.type != DORM_T_TEXT)
        return fail_why(why, whylen, DORM_ETYPE, "expected ISO 8601 text");
      if (!iso_chars(v.u.s.ptr, v.u.s.len))
        return fail_why(why, whylen, DORM_ETYPE, "not in ISO 8601 form");
      int rc = quoted(b, d, v.u.s.ptr, v.u.s.len, why, whylen);
      if (!rc && pg) dorm__buf_puts(b, pg_cast(vf->type));
      return rc;
    }
    case DORM_FIELD_JSON: {
      if (v.type != DORM_T_JSON && v.type != DORM_T_TEXT)
        return fail_why(why, whylen, DORM_ETYPE, "expected JSON text");
      int rc = quoted(b, d, v.u.s.ptr, v.u.s.len, why, whylen);
      if (!rc && pg) dorm__buf_puts(b, "::jsonb");
      return rc;
    }
    case DORM_FIELD_BINARY: {
      if (v.type != DORM_T_BYTES)
        return fail_why(why, whylen, DORM_ETYPE, "expected bytes");
      static const char hx[] = "0123456789abcdef";
      /* PostgreSQL: E'\\x..' is the hex bytea form under either
       * standard_conforming_strings; SQLite: a blob literal. */
      dorm__buf_puts(b, pg ? "E'\\\\x" : "X'");
      for (size_t i = 0; i < v.u.s.len; i++) {
        unsigned char ch = (unsigned char)v.u.s.ptr[i];
        dorm__buf_putc(b, hx[ch >> 4]);
        dorm__buf_putc(b, hx[ch & 15]);
      }
      dorm__buf_puts(b, pg ? "'::bytea" : "'");
      return 0;
    }
    default:
      return fail_why(why, whylen, DORM_ETYPE, "no literal for this type");
  }
}

void dorm__ddl_put_literal(ddl_ctx *c, const dorm_field *vf, dorm_value v) {
  if (c->rc) return;
  char why[128];
  int rc = dorm__ddl_literal(&c->b, c->d, vf, v, why, sizeof why);
  if (rc) dorm__ddl_fail(c, rc, "%s", why);
}

/* ---- check constraints -------------------------------------------------- */

int dorm_check_op_parse(const char *name) {
  static const char *const names[] = {"exact", "gt", "gte",   "lt",
                                      "lte",   "in", "range", "isnull"};
  if (!name) return -1;
  for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
    if (strcmp(name, names[i]) == 0) return i;
  return -1;
}

void dorm__ddl_check_condition(ddl_ctx *c, const dorm_model *m,
                               const dorm_ddl_constraint *k) {
  const char *cn = k->name ? k->name : "?";
  if (k->nterms == 0 || !k->terms) {
    dorm__ddl_fail(c, DORM_EINVAL, "check '%s' has no condition", cn);
    return;
  }
  for (size_t i = 0; i < k->nterms && !c->rc; i++) {
    const dorm_check_term *t = &k->terms[i];
    const dorm_field *f = dorm__ddl_lookup(m, t->field);
    if (!f || !f->column || dorm__ddl_is_m2m(f)) {
      dorm__ddl_fail(c, DORM_EFIELD, "check '%s': unknown field '%s'", cn,
                     t->field ? t->field : "(null)");
      return;
    }
    const dorm_field *saved = c->f;
    c->f = f;
    const dorm_field *vf = dorm__ddl_value_field(f);
    if (i) dorm__ddl_puts(c, " AND ");
    dorm__ddl_ident(c, f->column);
    const dorm_value *items = t->value.u.list.items;
    size_t n = t->value.u.list.n;
    switch (t->op) {
      case DORM_CHECK_EXACT:
        if (t->value.type == DORM_T_NULL) {
          dorm__ddl_puts(c, " IS NULL");
          break;
        }
        dorm__ddl_puts(c, " = ");
        dorm__ddl_put_literal(c, vf, t->value);
        break;
      case DORM_CHECK_GT:
      case DORM_CHECK_GTE:
      case DORM_CHECK_LT:
      case DORM_CHECK_LTE: {
        static const char *const ops[] = {"", " > ", " >= ", " < ", " <= "};
        if (t->value.type == DORM_T_NULL) {
          dorm__ddl_fail(c, DORM_ETYPE, "check '%s': comparison with null", cn);
          break;
        }
        dorm__ddl_puts(c, ops[t->op]);
        dorm__ddl_put_literal(c, vf, t->value);
        break;
      }
      case DORM_CHECK_IN:
        if (t->value.type != DORM_T_LIST || n == 0 || !items) {
          dorm__ddl_fail(c, DORM_ETYPE, "check '%s': in needs a non-empty list",
                         cn);
          break;
        }
        dorm__ddl_puts(c, " IN (");
        for (size_t j = 0; j < n; j++) {
          if (items[j].type == DORM_T_NULL) {
            dorm__ddl_fail(c, DORM_ETYPE, "check '%s': null in an in list", cn);
            break;
          }
          if (j) dorm__ddl_puts(c, ", ");
          dorm__ddl_put_literal(c, vf, items[j]);
        }
        dorm__ddl_puts(c, ")");
        break;
      case DORM_CHECK_RANGE:
        if (t->value.type != DORM_T_LIST || n != 2 || !items ||
            items[0].type == DORM_T_NULL || items[1].type == DORM_T_NULL) {
          dorm__ddl_fail(c, DORM_ETYPE,
                         "check '%s': range needs a list of two values", cn);
          break;
        }
        dorm__ddl_puts(c, " BETWEEN ");
        dorm__ddl_put_literal(c, vf, items[0]);
        dorm__ddl_puts(c, " AND ");
        dorm__ddl_put_literal(c, vf, items[1]);
        break;
      case DORM_CHECK_ISNULL:
        if (t->value.type != DORM_T_BOOL) {
          dorm__ddl_fail(c, DORM_ETYPE, "check '%s': isnull needs a boolean",
                         cn);
          break;
        }
        dorm__ddl_puts(c, t->value.u.b ? " IS NULL" : " IS NOT NULL");
        break;
      default:
        dorm__ddl_fail(c, DORM_ELOOKUP, "check '%s': unknown lookup %d", cn,
                       (int)t->op);
    }
    c->f = saved;
  }
}
