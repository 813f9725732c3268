/* SPDX-License-Identifier: MIT */
/* query/lookups.c — the lookups and transforms: names, value checks, SQL.
 *
 * A lookup ("age__gte", "name__icontains") becomes one condition.  This
 * file knows, per lookup and per dialect, which operator or function to
 * write and how to shape the parameter (a LIKE pattern with its wildcards
 * escaped, a GLOB pattern for SQLite's case-sensitive matching).  The
 * value itself always travels as a parameter.
 *
 * Dialect choices, and why:
 *  - case-sensitive contains/startswith/endswith: PostgreSQL LIKE (with
 *    '\' escapes); SQLite GLOB, because SQLite's LIKE ignores ASCII case
 *    and would give different rows than PostgreSQL.
 *  - case-insensitive forms: UPPER(x) LIKE UPPER(pattern) on PostgreSQL
 *    (as Django); LIKE ... ESCAPE '\' on SQLite.
 *  - regex: PostgreSQL ~ and ~*; SQLite's REGEXP operator, whose function
 *    the SQLite backend registers (POSIX extended; a "(?i)" prefix, added
 *    here for iregex, makes it case-insensitive — Django's convention).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query_int.h"

#define NAME(s) \
  { s, sizeof(s) - 1 }
typedef struct name_len {
  const char *name;
  size_t len;
} name_len;

static const name_len lookup_names[LK__COUNT] = {
    NAME("exact"),      NAME("iexact"),      NAME("contains"),
    NAME("icontains"),  NAME("in"),          NAME("gt"),
    NAME("gte"),        NAME("lt"),          NAME("lte"),
    NAME("startswith"), NAME("istartswith"), NAME("endswith"),
    NAME("iendswith"),  NAME("range"),       NAME("isnull"),
    NAME("regex"),      NAME("iregex")};

static const name_len transform_names[TR__COUNT] = {
    NAME(""),         NAME("year"), NAME("month"),  NAME("day"),
    NAME("week_day"), NAME("hour"), NAME("minute"), NAME("date")};

/* Parsing a lookup is on the path of every filter call: dispatch on the
 * length first, then compare. */
int dorm__lookup_parse(const char *s, size_t n) {
#define IS(lit) (n == sizeof(lit) - 1 && !memcmp(s, lit, n))
  switch (n) {
    case 2:
      if (IS("in")) return LK_IN;
      if (IS("gt")) return LK_GT;
      if (IS("lt")) return LK_LT;
      return -1;
    case 3:
      if (IS("gte")) return LK_GTE;
      if (IS("lte")) return LK_LTE;
      return -1;
    case 5:
      if (IS("exact")) return LK_EXACT;
      if (IS("range")) return LK_RANGE;
      if (IS("regex")) return LK_REGEX;
      return -1;
    case 6:
      if (IS("iexact")) return LK_IEXACT;
      if (IS("isnull")) return LK_ISNULL;
      if (IS("iregex")) return LK_IREGEX;
      return -1;
    case 8:
      if (IS("contains")) return LK_CONTAINS;
      if (IS("endswith")) return LK_ENDSWITH;
      return -1;
    case 9:
      if (IS("icontains")) return LK_ICONTAINS;
      if (IS("iendswith")) return LK_IENDSWITH;
      return -1;
    case 10: return IS("startswith") ? LK_STARTSWITH : -1;
    case 11: return IS("istartswith") ? LK_ISTARTSWITH : -1;
    default: return -1;
  }
#undef IS
}

int dorm__transform_parse(const char *s, size_t n) {
  for (int i = 1; i < TR__COUNT; i++)
    if (transform_names[i].len == n && transform_names[i].name[0] == s[0] &&
        !memcmp(transform_names[i].name, s, n))
      return i;
  return -1;
}

const char *dorm__lookup_name(lookup_kind k) {
  return k < LK__COUNT ? lookup_names[k].name : "?";
}
const char *dorm__transform_name(transform_kind k) {
  return k < TR__COUNT ? transform_names[k].name : "?";
}

/* ---- types -------------------------------------------------------------- */

dorm_type dorm__path_type(const dorm_path *p) {
  if (p->annotation) return DORM_T_NULL; /* checked against the aggregate */
  if (!p->field) return p->expr_type;    /* an expression on the left */
  switch ((transform_kind)p->transform) {
    case TR_NONE: break;
    case TR_DATE: return DORM_T_DATE;
    default: return DORM_T_INT;
  }
  return dorm__vt(p->field);
}

static int is_pattern_lookup(int lk) {
  return lk == LK_CONTAINS || lk == LK_ICONTAINS || lk == LK_STARTSWITH ||
         lk == LK_ISTARTSWITH || lk == LK_ENDSWITH || lk == LK_IENDSWITH ||
         lk == LK_IEXACT || lk == LK_REGEX || lk == LK_IREGEX;
}

static const char *path_field_name(const dorm_path *p) {
  return p->annotation || !p->field ? p->text : p->field->name;
}

/* Copy text into the arena. */
static const char *adup(dorm_query *q, const char *s, size_t n) {
  char *d = dorm__arena_strndup(&q->arena, s, n);
  if (!d) dorm__qerr(q, DORM_ENOMEM, "out of memory");
  return d;
}

/* Check one scalar v against type t; the copy goes to *out. */
static int coerce_scalar(dorm_query *q, dorm_type t, dorm_value v,
                         dorm_value *out, const char *model, const char *field,
                         const char *lookup) {
  *out = v;
#define WRONG()                                                          \
  dorm__qerr(q, DORM_ETYPE,                                              \
             "model '%s', field '%s', lookup '%s': expected %s, got %s", \
             model, field, lookup, dorm_type_name(t), dorm_type_name(v.type))
  if (v.type == DORM_T_EXPR) return 0; /* checked when compiled */
  if (v.type == DORM_T_NULL) return 0;
  switch (t) {
    case DORM_T_INT:
      if (v.type != DORM_T_INT) return WRONG();
      return 0;
    case DORM_T_FLOAT:
      if (v.type == DORM_T_INT) {
        *out = dorm_float((double)v.u.i);
        return 0;
      }
      if (v.type == DORM_T_DECIMAL) {
        /* a decimal literal (dorm query, serve) for a float field: the
         * double nearest to it, as Django's float(Decimal) */
        char tmp[64];
        if (!dorm__valid_decimal(v.u.s.ptr, v.u.s.len) ||
            v.u.s.len >= sizeof tmp)
          return dorm__qerr(q, DORM_ETYPE,
                            "model '%s', field '%s', lookup '%s': '%.*s' is "
                            "not a number",
                            model, field, lookup, (int)v.u.s.len, v.u.s.ptr);
        memcpy(tmp, v.u.s.ptr, v.u.s.len);
        tmp[v.u.s.len] = '\0';
        *out = dorm_float(strtod(tmp, NULL));
        return 0;
      }
      if (v.type != DORM_T_FLOAT) return WRONG();
      return 0;
    case DORM_T_BOOL:
      if (v.type == DORM_T_INT && (v.u.i == 0 || v.u.i == 1)) {
        *out = dorm_bool((int)v.u.i);
        return 0;
      }
      if (v.type != DORM_T_BOOL) return WRONG();
      return 0;
    case DORM_T_DECIMAL: {
      char tmp[352]; /* DBL_MAX written out */
      int n;
      if (v.type == DORM_T_INT) {
        n = snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i);
      } else if (v.type == DORM_T_FLOAT) {
        /* a C double: the shortest text that reads back as it (0.1 is
         * "0.1", not 0.1000000000000000055511...), the decimal a person
         * wrote when the double came from a literal */
        n = dorm__double_decimal(v.u.f, tmp, sizeof tmp);
        if (n < 0)
          return dorm__qerr(q, DORM_ETYPE,
                            "model '%s', field '%s', lookup '%s': %g is not "
                            "a finite number",
                            model, field, lookup, v.u.f);
      } else if (v.type == DORM_T_DECIMAL || v.type == DORM_T_TEXT) {
        if (!dorm__valid_decimal(v.u.s.ptr, v.u.s.len))
          return dorm__qerr(q, DORM_ETYPE,
                            "model '%s', field '%s', lookup '%s': '%.*s' is "
                            "not a decimal number",
                            model, field, lookup, (int)v.u.s.len, v.u.s.ptr);
        const char *s = adup(q, v.u.s.ptr, v.u.s.len);
        if (!s) return DORM_ENOMEM;
        *out = dorm_textn(DORM_T_DECIMAL, s, v.u.s.len);
        return 0;
      } else {
        return WRONG();
      }
      const char *s = adup(q, tmp, (size_t)n);
      if (!s) return DORM_ENOMEM;
      *out = dorm_textn(DORM_T_DECIMAL, s, (size_t)n);
      return 0;
    }
    case DORM_T_TEXT:
      if (v.type != DORM_T_TEXT) return WRONG();
      break;
    case DORM_T_BYTES:
      if (v.type != DORM_T_BYTES && v.type != DORM_T_TEXT) return WRONG();
      out->type = DORM_T_BYTES;
      break;
    case DORM_T_DATE:
      if (v.type != DORM_T_DATE && v.type != DORM_T_TEXT) return WRONG();
      if (!dorm__valid_date(v.u.s.ptr, v.u.s.len))
        return dorm__qerr(q, DORM_ETYPE,
                          "model '%s', field '%s', lookup '%s': '%.*s' is not "
                          "a date (YYYY-MM-DD)",
                          model, field, lookup, (int)v.u.s.len, v.u.s.ptr);
      out->type = DORM_T_DATE;
      break;
    case DORM_T_TIME:
      if (v.type != DORM_T_TIME && v.type != DORM_T_TEXT) return WRONG();
      if (!dorm__valid_time(v.u.s.ptr, v.u.s.len))
        return dorm__qerr(q, DORM_ETYPE,
                          "model '%s', field '%s', lookup '%s': '%.*s' is not "
                          "a time (HH:MM[:SS[.ffffff]])",
                          model, field, lookup, (int)v.u.s.len, v.u.s.ptr);
      out->type = DORM_T_TIME;
      break;
    case DORM_T_DATETIME: {
      if (v.type != DORM_T_DATETIME && v.type != DORM_T_DATE &&
          v.type != DORM_T_TEXT)
        return WRONG();
      char canon[32];
      int n = dorm__canon_datetime(v.u.s.ptr, v.u.s.len, canon);
      if (n < 0)
        return dorm__qerr(q, DORM_ETYPE,
                          "model '%s', field '%s', lookup '%s': '%.*s' is not "
                          "an ISO 8601 date-time",
                          model, field, lookup, (int)v.u.s.len, v.u.s.ptr);
      const char *s = adup(q, canon, (size_t)n);
      if (!s) return DORM_ENOMEM;
      *out = dorm_textn(DORM_T_DATETIME, s, (size_t)n);
      return 0;
    }
    case DORM_T_UUID: {
      if (v.type != DORM_T_UUID && v.type != DORM_T_TEXT) return WRONG();
      /* one spelling, so SQLite (which compares text) finds what
       * PostgreSQL (which compares uuids) finds */
      char canon[37];
      if (dorm__canon_uuid(v.u.s.ptr, v.u.s.len, canon) < 0)
        return dorm__qerr(q, DORM_ETYPE,
                          "model '%s', field '%s', lookup '%s': '%.*s' is not "
                          "a uuid",
                          model, field, lookup, (int)v.u.s.len, v.u.s.ptr);
      const char *c = adup(q, canon, 36);
      if (!c) return DORM_ENOMEM;
      *out = dorm_textn(DORM_T_UUID, c, 36);
      return 0;
    }
    case DORM_T_JSON: {
      if (v.type != DORM_T_JSON) return WRONG();
      /* the canonical text (base/json_canon.c): what SQLite stores and
       * compares, so equal documents match on both backends */
      char *canon, why[160];
      size_t n;
      int rc =
          dorm__json_canon(v.u.s.ptr, v.u.s.len, &canon, &n, why, sizeof why);
      if (rc == DORM_ENOMEM) return dorm__qerr(q, rc, "out of memory");
      if (rc)
        return dorm__qerr(q, DORM_ETYPE,
                          "model '%s', field '%s', lookup '%s': not valid "
                          "JSON (%s)",
                          model, field, lookup, why);
      const char *c = adup(q, canon, n);
      dorm__free(canon);
      if (!c) return DORM_ENOMEM;
      *out = dorm_textn(DORM_T_JSON, c, n);
      return 0;
    }
    default: return WRONG();
  }
#undef WRONG
  /* text-like: copy the bytes */
  const char *s = adup(q, out->u.s.ptr ? out->u.s.ptr : "", out->u.s.len);
  if (!s) return DORM_ENOMEM;
  out->u.s.ptr = s;
  return 0;
}

int dorm__coerce_lookup_value(dorm_query *q, const dorm_path *p, dorm_value in,
                              dorm_value *out) {
  int lk = p->lookup;
  /* the common case: a plain comparison of a number or boolean with the
   * right type needs no check beyond the type and no copy */
  if (p->field && !p->transform && lk <= LK_LTE && lk != LK_IN &&
      lk != LK_IEXACT && lk != LK_CONTAINS && lk != LK_ICONTAINS &&
      (in.type == DORM_T_INT || in.type == DORM_T_FLOAT ||
       in.type == DORM_T_BOOL) &&
      in.type == dorm__vt(p->field)) {
    *out = in;
    return 0;
  }
  const char *model = q->model->name;
  const char *field = path_field_name(p);
  const char *lookup = p->text;
  dorm_type t = dorm__path_type(p);
  if (p->annotation) t = DORM_T_FLOAT; /* aggregates compare as numbers */

  if (lk == LK_ISNULL) {
    if (in.type != DORM_T_BOOL)
      return dorm__qerr(q, DORM_ETYPE,
                        "model '%s', field '%s', lookup '%s': isnull takes "
                        "true or false, got %s",
                        model, field, lookup, dorm_type_name(in.type));
    *out = in;
    return 0;
  }
  if (in.type == DORM_T_NULL)
    return dorm__qerr(q, DORM_ETYPE,
                      "model '%s', field '%s', lookup '%s': None is only "
                      "allowed with exact (meaning isnull)",
                      model, field, lookup);
  if (lk == LK_IN || lk == LK_RANGE) {
    if (in.type != DORM_T_LIST)
      return dorm__qerr(q, DORM_ETYPE,
                        "model '%s', field '%s', lookup '%s': %s takes a "
                        "list, got %s",
                        model, field, lookup, dorm__lookup_name(lk),
                        dorm_type_name(in.type));
    if (lk == LK_IN && in.u.list.n == 0)
      return dorm__qerr(q, DORM_EINVAL,
                        "model '%s', field '%s', lookup '%s': empty list for "
                        "in",
                        model, field, lookup);
    if (lk == LK_RANGE && in.u.list.n != 2)
      return dorm__qerr(q, DORM_EINVAL,
                        "model '%s', field '%s', lookup '%s': range takes two "
                        "values, got %zu",
                        model, field, lookup, in.u.list.n);
    dorm_value *items =
        dorm__arena_alloc(&q->arena, sizeof(dorm_value) * in.u.list.n);
    if (!items) return dorm__qerr(q, DORM_ENOMEM, "out of memory");
    for (size_t i = 0; i < in.u.list.n; i++) {
      dorm_value it = in.u.list.items[i];
      if (it.type == DORM_T_NULL || it.type == DORM_T_LIST ||
          it.type == DORM_T_EXPR)
        return dorm__qerr(q, DORM_ETYPE,
                          "model '%s', field '%s', lookup '%s': item %zu of "
                          "the list is %s",
                          model, field, lookup, i, dorm_type_name(it.type));
      if (coerce_scalar(q, t, it, &items[i], model, field, lookup))
        return q->err.code;
    }
    *out = dorm_list(items, in.u.list.n);
    return 0;
  }
  if (in.type == DORM_T_LIST)
    return dorm__qerr(q, DORM_ETYPE,
                      "model '%s', field '%s', lookup '%s': a list is only "
                      "allowed with in and range",
                      model, field, lookup);
  if (is_pattern_lookup(lk)) {
    if (!p->annotation && t != DORM_T_TEXT && t != DORM_T_UUID)
      return dorm__qerr(
          q, DORM_ELOOKUP,
          "model '%s', field '%s', lookup '%s': %s applies to "
          "text fields, not %s",
          model, field, lookup, dorm__lookup_name(lk),
          p->field ? dorm_field_type_name(p->field->type) : dorm_type_name(t));
    if (in.type == DORM_T_EXPR)
      return dorm__qerr(q, DORM_ETYPE,
                        "model '%s', field '%s', lookup '%s': %s takes a "
                        "string, not an expression",
                        model, field, lookup, dorm__lookup_name(lk));
    if (in.type != DORM_T_TEXT)
      return dorm__qerr(q, DORM_ETYPE,
                        "model '%s', field '%s', lookup '%s': expected text, "
                        "got %s",
                        model, field, lookup, dorm_type_name(in.type));
    const char *s = adup(q, in.u.s.ptr, in.u.s.len);
    if (!s) return DORM_ENOMEM;
    *out = dorm_textn(DORM_T_TEXT, s, in.u.s.len);
    return 0;
  }
  if (!p->annotation && !p->transform && p->field &&
      (p->field->type == DORM_FIELD_JSON ||
       p->field->type == DORM_FIELD_BINARY) &&
      lk != LK_EXACT)
    return dorm__qerr(q, DORM_ELOOKUP,
                      "model '%s', field '%s', lookup '%s': only exact and "
                      "isnull apply to a %s field",
                      model, field, lookup,
                      dorm_field_type_name(p->field->type));
  if (p->annotation) {
    if (in.type != DORM_T_INT && in.type != DORM_T_FLOAT &&
        in.type != DORM_T_DECIMAL && in.type != DORM_T_EXPR)
      return dorm__qerr(q, DORM_ETYPE,
                        "model '%s', annotation '%s', lookup '%s': expected a "
                        "number, got %s",
                        model, field, lookup, dorm_type_name(in.type));
    *out = in;
    if (in.type == DORM_T_DECIMAL) {
      const char *s = adup(q, in.u.s.ptr, in.u.s.len);
      if (!s) return DORM_ENOMEM;
      out->u.s.ptr = s;
    }
    return 0;
  }
  return coerce_scalar(q, t, in, out, model, field, lookup);
}

/* A decimal written to a field must fit its max_digits and decimal_places,
 * as Django's DecimalValidator says (leading zeros do not count): the
 * databases would round it (SQLite) or refuse it with a message naming no
 * field (PostgreSQL). */
static int check_decimal_fits(dorm_query *q, const dorm_field *f,
                              dorm_value v) {
  if (f->max_digits <= 0) return 0;
  dorm__decdigits d;
  dorm__decimal_digits(v.u.s.ptr, v.u.s.len, &d);
  if (d.frac > (size_t)f->decimal_places)
    return dorm__qerr(q, DORM_ERANGE,
                      "model '%s', field '%s': decimal '%.*s' has more than "
                      "%d decimal places (max_digits %d, decimal_places %d)",
                      q->model->name, f->name, (int)v.u.s.len, v.u.s.ptr,
                      f->decimal_places, f->max_digits, f->decimal_places);
  if (d.whole > (size_t)(f->max_digits - f->decimal_places))
    return dorm__qerr(q, DORM_ERANGE,
                      "model '%s', field '%s': decimal '%.*s' has more than "
                      "%d digits before the point (max_digits %d, "
                      "decimal_places %d)",
                      q->model->name, f->name, (int)v.u.s.len, v.u.s.ptr,
                      f->max_digits - f->decimal_places, f->max_digits,
                      f->decimal_places);
  return 0;
}

int dorm__coerce_field_value(dorm_query *q, const dorm_field *f, dorm_value in,
                             dorm_value *out) {
  if (in.type == DORM_T_NULL && !(f->flags & DORM_FIELD_NULL))
    return dorm__qerr(q, DORM_ETYPE,
                      "model '%s', field '%s': NULL for a field that is not "
                      "nullable",
                      q->model->name, f->name);
  if (in.type == DORM_T_LIST)
    return dorm__qerr(q, DORM_ETYPE,
                      "model '%s', field '%s': a list cannot be stored in a "
                      "%s field",
                      q->model->name, f->name, dorm_field_type_name(f->type));
  if (f->type == DORM_FIELD_VARCHAR && in.type == DORM_T_TEXT &&
      f->max_length > 0) {
    /* count UTF-8 characters, as the databases do */
    size_t chars = 0;
    for (size_t i = 0; i < in.u.s.len; i++)
      if (((unsigned char)in.u.s.ptr[i] & 0xC0) != 0x80) chars++;
    if (chars > (size_t)f->max_length)
      return dorm__qerr(q, DORM_ERANGE,
                        "model '%s', field '%s': %zu characters, more than "
                        "max_length %d",
                        q->model->name, f->name, chars, f->max_length);
  }
  int had_err = q->has_err;
  int rc =
      coerce_scalar(q, dorm__vt(f), in, out, q->model->name, f->name, "set");
  if (rc && !had_err) {
    /* a value set on a field went through no lookup: the message names
     * the model and the field only, as the caller wrote them */
    char *l = strstr(q->err.message, ", lookup 'set'");
    if (l) memmove(l, l + 14, strlen(l + 14) + 1);
  }
  if (rc) return rc;
  if (f->type == DORM_FIELD_DECIMAL && out->type == DORM_T_DECIMAL)
    return check_decimal_fits(q, f, *out);
  return 0;
}

/* ---- SQL ---------------------------------------------------------------- */

/* The pattern parameter for a LIKE (escape '\', '%', '_') or GLOB (escape
 * '*', '?', '[' by bracketing) lookup, with the wildcards the lookup needs
 * around the user's text.  The result is a parameter, never SQL text. */
static void emit_pattern_param(cctx *c, dorm_value v, int glob, int lead,
                               int trail) {
  size_t cap = v.u.s.len * 3 + 3;
  char tmp[256];
  char *buf = cap <= sizeof tmp ? tmp : dorm__malloc(cap);
  if (!buf) {
    dorm__cfail(c, DORM_ENOMEM, "out of memory");
    return;
  }
  size_t n = 0;
  char any = glob ? '*' : '%';
  if (lead) buf[n++] = any;
  for (size_t i = 0; i < v.u.s.len; i++) {
    char ch = v.u.s.ptr[i];
    if (glob) {
      if (ch == '*' || ch == '?' || ch == '[') {
        buf[n++] = '[';
        buf[n++] = ch;
        buf[n++] = ']';
        continue;
      }
    } else if (ch == '\\' || ch == '%' || ch == '_') {
      buf[n++] = '\\';
    }
    buf[n++] = ch;
  }
  if (trail) buf[n++] = any;
  dorm__emit_param(c, dorm_textn(DORM_T_TEXT, buf, n));
  if (buf != tmp) dorm__free(buf);
}

void dorm__emit_transform(cctx *c, const dorm_path *p, int alias) {
  int pg = c->d == DORM_DIALECT_POSTGRES;
  transform_kind t = (transform_kind)p->transform;
  static const char *const pg_part[TR__COUNT] = {"",    "YEAR", "MONTH",  "DAY",
                                                 "DOW", "HOUR", "MINUTE", ""};
  static const char *const sq_fmt[TR__COUNT] = {"",   "%Y", "%m", "%d",
                                                "%w", "%H", "%M", ""};
  if (t == TR_DATE) {
    if (pg) {
      dorm__emitl(c, "(");
      dorm__emit_column_of(c, p, alias);
      dorm__emitl(c, ")::date");
    } else {
      dorm__emitl(c, "date(");
      dorm__emit_column_of(c, p, alias);
      dorm__emitl(c, ")");
    }
    return;
  }
  if (pg) {
    /* EXTRACT gives numeric; compare as integer like Django's casts */
    dorm__emitl(c, "EXTRACT(");
    dorm__emits(c, pg_part[t]);
    dorm__emitl(c, " FROM ");
    dorm__emit_column_of(c, p, alias);
    dorm__emits(c, t == TR_WEEK_DAY ? ")::integer + 1" : ")::integer");
  } else {
    dorm__emitl(c, "CAST(strftime('");
    dorm__emits(c, sq_fmt[t]);
    dorm__emitl(c, "', ");
    dorm__emit_column_of(c, p, alias);
    dorm__emits(c, t == TR_WEEK_DAY ? ") AS INTEGER) + 1" : ") AS INTEGER)");
  }
}

/* The left-hand side as SQL: a column, a transform of one, an aggregate
 * (HAVING) or an expression. */
static void emit_lhs(cctx *c, const dorm_q *leaf, int alias, int upper) {
  int pg = c->d == DORM_DIALECT_POSTGRES;
  if (upper) dorm__emitl(c, "UPPER(");
  if (leaf->lhs) {
    dorm__emit_expr(c, leaf->lhs);
  } else if (leaf->path.transform) {
    dorm__emit_transform(c, &leaf->path, alias);
  } else {
    dorm__emit_column_of(c, &leaf->path, alias);
    /* LIKE and ~ need text on PostgreSQL (uuid columns) */
    if (pg && upper && leaf->path.field &&
        leaf->path.field->type == DORM_FIELD_UUID)
      dorm__emitl(c, "::text");
    else if (pg && !upper && leaf->path.field &&
             leaf->path.field->type == DORM_FIELD_UUID &&
             is_pattern_lookup(leaf->path.lookup))
      dorm__emitl(c, "::text");
  }
  if (upper) dorm__emitl(c, ")");
}

static void emit_rhs(cctx *c, dorm_value v) {
  if (v.type == DORM_T_EXPR) {
    /* an expression's literals take part in arithmetic: they keep int8,
     * so F("n") * 100000 cannot overflow in int4 */
    int keep = c->int4_rhs;
    c->int4_rhs = 0;
    dorm__emit_expr(c, v.u.expr);
    c->int4_rhs = keep;
  } else {
    dorm__emit_param(c, v);
  }
}

/* The column a plain lookup compares is a 32-bit integer (integer, auto,
 * or a relation to such a key): its parameters may go as int4. */
static int int4_column(const dorm_q *leaf) {
  const dorm_field *f = leaf->path.field;
  if (leaf->lhs || leaf->path.transform || leaf->path.annotation || !f)
    return 0;
  if ((f->type == DORM_FIELD_FOREIGN_KEY || f->type == DORM_FIELD_ONE_TO_ONE) &&
      f->target && f->target->pk)
    f = f->target->pk;
  return f->type == DORM_FIELD_INTEGER || f->type == DORM_FIELD_AUTO;
}

void dorm__emit_lookup(cctx *c, const dorm_q *leaf, int negated, int wrap) {
  const dorm_path *p = &leaf->path;
  int pg = c->d == DORM_DIALECT_POSTGRES;
  int alias = leaf->lhs ? 0 : dorm__path_alias_of(c, p, 0);
  dorm_value v = leaf->value;
  lookup_kind lk = (lookup_kind)p->lookup;

  /* Django: a negated condition on a nullable column must keep NULL rows
   * ("exclude(age__gte=18)" returns people of unknown age), so add
   * "AND col IS NOT NULL" inside the NOT. */
  int nullable_extra = 0;
  if (negated && lk != LK_ISNULL && !leaf->lhs && !p->annotation) {
    int nullable = (p->field->flags & DORM_FIELD_NULL) != 0;
    for (int i = 0; i < p->nhops; i++)
      if (p->hops[i].nullable) nullable = 1;
    nullable_extra = nullable;
  }
  /* ...and "AND rhs IS NOT NULL" when the right side is a bare F() of a
   * nullable field (Django's build_filter: a Col value; not arithmetic,
   * not a transform), so pages__gt=F("editor__age") excluded keeps the
   * rows of unknown age too */
  const dorm_expr *rhs_col = NULL;
  if (negated && lk != LK_ISNULL && v.type == DORM_T_EXPR &&
      v.u.expr->kind == EXPR_FIELD && !v.u.expr->path.transform &&
      v.u.expr->path.field && (v.u.expr->path.field->flags & DORM_FIELD_NULL))
    rhs_col = v.u.expr;
  if ((nullable_extra || rhs_col) && wrap) dorm__emitl(c, "(");

  c->int4_rhs = pg && int4_column(leaf);
  c->param_field = p->field;
  switch (lk) {
    case LK_EXACT:
      emit_lhs(c, leaf, alias, 0);
      dorm__emitl(c, " = ");
      emit_rhs(c, v);
      break;
    case LK_GT:
    case LK_GTE:
    case LK_LT:
    case LK_LTE: {
      static const char *const ops[] = {" > ", " >= ", " < ", " <= "};
      emit_lhs(c, leaf, alias, 0);
      dorm__emits(c, ops[lk - LK_GT]);
      emit_rhs(c, v);
      break;
    }
    case LK_IN:
      emit_lhs(c, leaf, alias, 0);
      dorm__emitl(c, " IN (");
      for (size_t i = 0; i < v.u.list.n; i++) {
        if (i) dorm__emitl(c, ", ");
        dorm__emit_param(c, v.u.list.items[i]);
      }
      dorm__emitl(c, ")");
      break;
    case LK_RANGE:
      emit_lhs(c, leaf, alias, 0);
      dorm__emitl(c, " BETWEEN ");
      dorm__emit_param(c, v.u.list.items[0]);
      dorm__emitl(c, " AND ");
      dorm__emit_param(c, v.u.list.items[1]);
      break;
    case LK_ISNULL:
      emit_lhs(c, leaf, alias, 0);
      dorm__emits(c, v.u.b ? " IS NULL" : " IS NOT NULL");
      break;
    case LK_IEXACT:
    case LK_ICONTAINS:
    case LK_ISTARTSWITH:
    case LK_IENDSWITH: {
      int lead = lk == LK_ICONTAINS || lk == LK_IENDSWITH;
      int trail = lk == LK_ICONTAINS || lk == LK_ISTARTSWITH;
      if (pg) {
        emit_lhs(c, leaf, alias, 1);
        dorm__emits(c, lk == LK_IEXACT ? " = UPPER(" : " LIKE UPPER(");
        if (lk == LK_IEXACT)
          dorm__emit_param(c, v);
        else
          emit_pattern_param(c, v, 0, lead, trail);
        dorm__emitl(c, ")");
      } else {
        emit_lhs(c, leaf, alias, 0);
        dorm__emitl(c, " LIKE ");
        emit_pattern_param(c, v, 0, lead, trail);
        dorm__emitl(c, " ESCAPE '\\'");
      }
      break;
    }
    case LK_CONTAINS:
    case LK_STARTSWITH:
    case LK_ENDSWITH: {
      int lead = lk != LK_STARTSWITH;
      int trail = lk != LK_ENDSWITH;
      emit_lhs(c, leaf, alias, 0);
      dorm__emits(c, pg ? " LIKE " : " GLOB ");
      emit_pattern_param(c, v, !pg, lead, trail);
      break;
    }
    case LK_REGEX:
    case LK_IREGEX:
      emit_lhs(c, leaf, alias, 0);
      if (pg) {
        dorm__emits(c, lk == LK_REGEX ? " ~ " : " ~* ");
      } else {
        dorm__emits(c, lk == LK_REGEX ? " REGEXP " : " REGEXP '(?i)' || ");
      }
      dorm__emit_param(c, v);
      break;
    default:
      c->int4_rhs = 0;
      dorm__cfail(c, DORM_ELOOKUP, "unknown lookup");
      return;
  }
  c->int4_rhs = 0;
  c->param_field = NULL;
  if (nullable_extra) {
    dorm__emitl(c, " AND ");
    emit_lhs(c, leaf, alias, 0);
    dorm__emitl(c, " IS NOT NULL");
  }
  if (rhs_col) {
    dorm__emitl(c, " AND ");
    dorm__emit_expr(c, rhs_col);
    dorm__emitl(c, " IS NOT NULL");
  }
  if ((nullable_extra || rhs_col) && wrap) dorm__emitl(c, ")");
}
