/* SPDX-License-Identifier: MIT */
/* schema/fields.c — what a field type means: its name, the value type its
 * values travel as, the identifier rule, and the checks and conversions of
 * defaults and choices.
 *
 * Defaults and choices arrive as whatever the user wrote (a JSON number, a
 * string, a C dorm_value) and leave as a dorm_value of the field's value
 * type, so the compiler and backends never have to guess: "0" written for a
 * float field becomes DORM_T_FLOAT 0.0, "2024-05-01" for a date field
 * becomes DORM_T_DATE.  Text formats are checked lightly (shape and ranges,
 * not calendars beyond days per month): enough to catch a typo in a models
 * file, not a replacement for the database's own parser.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "schema/schema_int.h"

static const char *const type_names[DORM_FIELD__COUNT] = {
    [DORM_FIELD_AUTO] = "auto",
    [DORM_FIELD_BIGAUTO] = "bigauto",
    [DORM_FIELD_SMALLINT] = "smallint",
    [DORM_FIELD_INTEGER] = "integer",
    [DORM_FIELD_BIGINT] = "bigint",
    [DORM_FIELD_FLOAT] = "float",
    [DORM_FIELD_DECIMAL] = "decimal",
    [DORM_FIELD_BOOLEAN] = "boolean",
    [DORM_FIELD_VARCHAR] = "varchar",
    [DORM_FIELD_TEXT] = "text",
    [DORM_FIELD_DATE] = "date",
    [DORM_FIELD_DATETIME] = "datetime",
    [DORM_FIELD_TIME] = "time",
    [DORM_FIELD_UUID] = "uuid",
    [DORM_FIELD_JSON] = "json",
    [DORM_FIELD_BINARY] = "binary",
    [DORM_FIELD_FOREIGN_KEY] = "foreign_key",
    [DORM_FIELD_ONE_TO_ONE] = "one_to_one",
    [DORM_FIELD_MANY_TO_MANY] = "many_to_many",
};

const char *dorm_field_type_name(dorm_field_type t) {
  if ((int)t < 0 || t >= DORM_FIELD__COUNT) return NULL;
  return type_names[t];
}

int dorm_field_type_parse(const char *name) {
  if (!name) return -1;
  for (int t = 0; t < DORM_FIELD__COUNT; t++)
    if (strcmp(type_names[t], name) == 0) return t;
  return -1;
}

int dorm_ident_valid(const char *s) {
  if (!s) return 0;
  const unsigned char *p = (const unsigned char *)s;
  if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_'))
    return 0;
  size_t n = 1;
  for (p++; *p; p++, n++) {
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
          (*p >= '0' && *p <= '9') || *p == '_'))
      return 0;
  }
  return n <= DORM_IDENT_MAX;
}

int dorm_field_is_fk(const dorm_field *f) {
  return f && (f->type == DORM_FIELD_FOREIGN_KEY ||
               f->type == DORM_FIELD_ONE_TO_ONE);
}

const char *dorm_field_reverse_name(const dorm_field *f, char *buf,
                                    size_t cap) {
  if (f->related_name) return f->related_name;
  size_t i = 0;
  for (const char *p = f->model->name; *p && i + 1 < cap; p++, i++)
    buf[i] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
  if (cap) buf[i] = '\0';
  return buf;
}

/* Relations follow the target's primary key, which may itself be a
 * one_to_one (multi-table inheritance); the checks refuse cycles, and the
 * bound below keeps a half-built schema from looping. */
const dorm_field *dorm__value_field(const dorm_field *f) {
  for (int hops = 0; f && dorm_field_is_fk(f); hops++) {
    if (!f->target || hops > 64) return NULL;
    f = f->target->pk;
  }
  return f;
}

dorm_type dorm_field_value_type(const dorm_field *f) {
  if (!f) return DORM_T_NULL;
  if (f->value_type) return f->value_type;
  const dorm_field *v = dorm__value_field(f);
  if (!v) return DORM_T_NULL;
  switch (v->type) {
    case DORM_FIELD_AUTO:
    case DORM_FIELD_BIGAUTO:
    case DORM_FIELD_SMALLINT:
    case DORM_FIELD_INTEGER:
    case DORM_FIELD_BIGINT: return DORM_T_INT;
    case DORM_FIELD_FLOAT: return DORM_T_FLOAT;
    case DORM_FIELD_DECIMAL: return DORM_T_DECIMAL;
    case DORM_FIELD_BOOLEAN: return DORM_T_BOOL;
    case DORM_FIELD_VARCHAR:
    case DORM_FIELD_TEXT: return DORM_T_TEXT;
    case DORM_FIELD_DATE: return DORM_T_DATE;
    case DORM_FIELD_DATETIME: return DORM_T_DATETIME;
    case DORM_FIELD_TIME: return DORM_T_TIME;
    case DORM_FIELD_UUID: return DORM_T_UUID;
    case DORM_FIELD_JSON: return DORM_T_JSON;
    case DORM_FIELD_BINARY: return DORM_T_BYTES;
    default: return DORM_T_NULL; /* many_to_many: no value of its own */
  }
}

/* ---- text formats ------------------------------------------------------- */

/* The date, time, uuid and decimal forms are checked by base/formats.c,
 * which the query compiler uses too, so a default and a lookup value are
 * held to the same rules. */

/* Django's DecimalValidator: digits after the point must fit
 * decimal_places, digits before it max_digits - decimal_places (leading
 * zeros do not count). */
static int decimal_fits(const char *s, size_t n, int max_digits, int places,
                        char *why, size_t whylen) {
  size_t i = 0, whole = 0, frac = 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) i++;
  while (i < n && s[i] == '0') i++;
  for (; i < n && s[i] != '.'; i++) whole++;
  if (i < n) frac = n - i - 1;
  if (max_digits <= 0) return 1;
  if (frac > (size_t)places) {
    snprintf(why, whylen, "more than %d decimal places", places);
    return 0;
  }
  if (whole > (size_t)(max_digits - places)) {
    snprintf(why, whylen, "more than %d digits before the point",
             max_digits - places);
    return 0;
  }
  return 1;
}

static size_t utf8_chars(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
  return c;
}

/* ---- coercion ----------------------------------------------------------- */

static int is_text_like(dorm_type t) {
  return t == DORM_T_TEXT || t == DORM_T_BYTES || t == DORM_T_DECIMAL ||
         t == DORM_T_DATE || t == DORM_T_TIME || t == DORM_T_DATETIME ||
         t == DORM_T_UUID || t == DORM_T_JSON;
}

static int refuse(char *why, size_t whylen, const char *text) {
  snprintf(why, whylen, "%s", text);
  return DORM_ESCHEMA;
}

/* JSON text in its canonical form (base/json_canon.c, what the query
 * builder sends too) into the arena. */
static int canon_to_arena(const char *s, size_t n, dorm__arena *a,
                          dorm_value *out, char *why, size_t whylen) {
  char *canon;
  size_t cn;
  char jwhy[160];
  int rc = dorm__json_canon(s, n, &canon, &cn, jwhy, sizeof jwhy);
  if (rc == DORM_ENOMEM) return rc;
  if (rc) {
    snprintf(why, whylen, "not valid JSON (%s)", jwhy);
    return DORM_ESCHEMA;
  }
  char *p = dorm__arena_strndup(a, canon, cn);
  dorm__free(canon);
  if (!p) return DORM_ENOMEM;
  *out = dorm_textn(DORM_T_JSON, p, cn);
  return 0;
}

/* Serialize j canonically into the arena. */
static int json_to_arena(const json_t *j, dorm__arena *a, dorm_value *out) {
  size_t flags =
      JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17);
  /* jansson's dump can leave a key out when an allocation fails: the
   * allocator's note catches it (models_json.c) */
  dorm__json_begin();
  char *text = json_dumps(j, flags);
  if (!text || dorm__json_oom(NULL)) {
    dorm__json_free(text);
    return DORM_ENOMEM;
  }
  char why[8];
  int rc = canon_to_arena(text, strlen(text), a, out, why, sizeof why);
  dorm__json_free(text);
  return rc;
}

static int coerce_json(dorm_value v, dorm__arena *a, dorm_value *out, char *why,
                       size_t whylen) {
  json_t *j = NULL;
  json_error_t jerr;
  /* json_error_code reads a byte jansson leaves unset when it fails early. */
  memset(&jerr, 0, sizeof jerr);
  if (v.type == DORM_T_TEXT &&
      dorm__utf8_valid(v.u.s.ptr, v.u.s.len) != v.u.s.len)
    return refuse(why, whylen, "not valid UTF-8");
  if (v.type == DORM_T_FLOAT && !isfinite(v.u.f))
    return refuse(why, whylen, "not a finite number");
  if (v.type == DORM_T_JSON) /* exactly as written, numbers included */
    return canon_to_arena(v.u.s.ptr, v.u.s.len, a, out, why, whylen);
  switch (v.type) {
    case DORM_T_JSON:
      dorm__json_begin();
      j = json_loadb(v.u.s.ptr, v.u.s.len, JSON_DECODE_ANY, &jerr);
      if (!j) {
        if (dorm__json_oom(&jerr)) /* see models_json.c */
          return DORM_ENOMEM;
        snprintf(why, whylen, "not valid JSON (%s)", jerr.text);
        return DORM_ESCHEMA;
      }
      break;
    case DORM_T_TEXT: j = json_stringn(v.u.s.ptr, v.u.s.len); break;
    case DORM_T_INT: j = json_integer(v.u.i); break;
    case DORM_T_FLOAT: j = json_real(v.u.f); break;
    case DORM_T_BOOL: j = json_boolean(v.u.b); break;
    default: return refuse(why, whylen, "expected JSON text or a scalar");
  }
  if (!j) return DORM_ENOMEM; /* the input was checked above */
  int rc = json_to_arena(j, a, out);
  json_decref(j);
  return rc;
}

int dorm__value_coerce(const dorm_field *f, dorm_value v, dorm__arena *a,
                       dorm_value *out, char *why, size_t whylen) {
  const dorm_field *vf = dorm__value_field(f);
  if (why && whylen) why[0] = '\0';
  if (!vf) return refuse(why, whylen, "the relation is not resolved");
  if (v.type == DORM_T_NULL && vf->type != DORM_FIELD_JSON) {
    if (!(f->flags & DORM_FIELD_NULL))
      return refuse(why, whylen, "the field is not nullable (\"null\": true)");
    *out = v;
    return 0;
  }
  if (v.type == DORM_T_LIST || v.type == DORM_T_EXPR)
    return refuse(why, whylen, "expected a single value");
  switch (vf->type) {
    case DORM_FIELD_AUTO:
    case DORM_FIELD_BIGAUTO:
    case DORM_FIELD_SMALLINT:
    case DORM_FIELD_INTEGER:
    case DORM_FIELD_BIGINT: {
      if (v.type != DORM_T_INT)
        return refuse(why, whylen, "expected an integer");
      int64_t lo = INT64_MIN, hi = INT64_MAX;
      if (vf->type == DORM_FIELD_SMALLINT) lo = -32768, hi = 32767;
      if (vf->type == DORM_FIELD_INTEGER || vf->type == DORM_FIELD_AUTO)
        lo = INT32_MIN, hi = INT32_MAX;
      if (v.u.i < lo || v.u.i > hi) {
        snprintf(why, whylen, "out of range for %s",
                 dorm_field_type_name(vf->type));
        return DORM_ESCHEMA;
      }
      *out = v;
      return 0;
    }
    case DORM_FIELD_FLOAT:
      if (v.type == DORM_T_INT) {
        *out = dorm_float((double)v.u.i);
        return 0;
      }
      if (v.type != DORM_T_FLOAT)
        return refuse(why, whylen, "expected a number");
      *out = v;
      return 0;
    case DORM_FIELD_DECIMAL: {
      if (v.type == DORM_T_INT) {
        char tmp[24];
        int n = snprintf(tmp, sizeof tmp, "%" PRId64, v.u.i);
        char *p = dorm__arena_strndup(a, tmp, (size_t)n);
        if (!p) return DORM_ENOMEM;
        v = dorm_textn(DORM_T_DECIMAL, p, (size_t)n);
      }
      if ((v.type != DORM_T_TEXT && v.type != DORM_T_DECIMAL) ||
          !dorm__valid_decimal(v.u.s.ptr, v.u.s.len))
        return refuse(why, whylen,
                      "expected a decimal string such as \"12.50\"");
      if (!decimal_fits(v.u.s.ptr, v.u.s.len, vf->max_digits,
                        vf->decimal_places, why, whylen))
        return DORM_ESCHEMA;
      *out = dorm_textn(DORM_T_DECIMAL, v.u.s.ptr, v.u.s.len);
      return 0;
    }
    case DORM_FIELD_BOOLEAN:
      if (v.type != DORM_T_BOOL)
        return refuse(why, whylen, "expected true or false");
      *out = v;
      return 0;
    case DORM_FIELD_VARCHAR:
    case DORM_FIELD_TEXT:
      if (v.type != DORM_T_TEXT)
        return refuse(why, whylen, "expected a string");
      if (vf->type == DORM_FIELD_VARCHAR && vf->max_length > 0 &&
          utf8_chars(v.u.s.ptr, v.u.s.len) > (size_t)vf->max_length) {
        snprintf(why, whylen, "longer than max_length %d", vf->max_length);
        return DORM_ESCHEMA;
      }
      *out = v;
      return 0;
    case DORM_FIELD_DATE:
    case DORM_FIELD_TIME:
    case DORM_FIELD_DATETIME:
    case DORM_FIELD_UUID: {
      dorm_type want = dorm_field_value_type(vf);
      int ok = (v.type == DORM_T_TEXT || v.type == want);
      char canon[37];
      int canon_len = -1;
      if (ok) {
        const char *s = v.u.s.ptr;
        size_t n = v.u.s.len;
        switch (vf->type) {
          case DORM_FIELD_DATE: ok = dorm__valid_date(s, n); break;
          case DORM_FIELD_TIME: ok = dorm__valid_time(s, n); break;
          case DORM_FIELD_DATETIME:
            /* stored in the canonical UTC form the compiler sends */
            canon_len = n >= 16 ? dorm__canon_datetime(s, n, canon) : -1;
            ok = canon_len >= 0;
            break;
          default: /* uuids too are kept in one canonical spelling */
            canon_len = dorm__canon_uuid(s, n, canon);
            ok = canon_len >= 0;
            break;
        }
      }
      if (!ok) {
        const char *shape =
            vf->type == DORM_FIELD_DATE   ? "a date (YYYY-MM-DD)"
            : vf->type == DORM_FIELD_TIME ? "a time (HH:MM[:SS[.ffffff]])"
            : vf->type == DORM_FIELD_DATETIME
                ? "a datetime (YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|+HH:MM])"
                : "a UUID (8-4-4-4-12 hex digits)";
        snprintf(why, whylen, "expected %s", shape);
        return DORM_ESCHEMA;
      }
      if (canon_len >= 0) {
        char *c = dorm__arena_strndup(a, canon, (size_t)canon_len);
        if (!c) return DORM_ENOMEM;
        *out = dorm_textn(want, c, (size_t)canon_len);
        return 0;
      }
      *out = dorm_textn(want, v.u.s.ptr, v.u.s.len);
      return 0;
    }
    case DORM_FIELD_JSON: return coerce_json(v, a, out, why, whylen);
    case DORM_FIELD_BINARY:
      if (v.type != DORM_T_TEXT && v.type != DORM_T_BYTES)
        return refuse(why, whylen, "expected a string of bytes");
      *out = dorm_textn(DORM_T_BYTES, v.u.s.ptr, v.u.s.len);
      return 0;
    default: return refuse(why, whylen, "this field type takes no value");
  }
}

int dorm__value_coerce_canon(const dorm_field *f, dorm_value v, dorm__arena *a,
                             dorm_value *out, char *why, size_t whylen) {
  /* Parsing it again could only fail for lack of memory, and jansson
   * reports some of those as syntax errors. */
  const dorm_field *vf = dorm__value_field(f);
  if (vf && vf->type == DORM_FIELD_JSON && v.type == DORM_T_JSON) {
    *out = v;
    return 0;
  }
  return dorm__value_coerce(f, v, a, out, why, whylen);
}

void dorm__value_describe(dorm_value v, char *buf, size_t len) {
  switch (v.type) {
    case DORM_T_NULL: snprintf(buf, len, "null"); return;
    case DORM_T_BOOL: snprintf(buf, len, v.u.b ? "true" : "false"); return;
    case DORM_T_INT: snprintf(buf, len, "%" PRId64, v.u.i); return;
    case DORM_T_FLOAT: snprintf(buf, len, "%g", v.u.f); return;
    case DORM_T_BYTES: snprintf(buf, len, "<%zu bytes>", v.u.s.len); return;
    case DORM_T_LIST: snprintf(buf, len, "a list"); return;
    case DORM_T_EXPR: snprintf(buf, len, "an expression"); return;
    default: break;
  }
  if (!is_text_like(v.type)) {
    snprintf(buf, len, "a value");
    return;
  }
  /* Keep messages short: a long default is shown by its start. */
  int n = v.u.s.len > 40 ? 40 : (int)v.u.s.len;
  const char *more = v.u.s.len > 40 ? "..." : "";
  if (v.type == DORM_T_JSON)
    snprintf(buf, len, "%.*s%s", n, v.u.s.ptr, more);
  else
    snprintf(buf, len, "\"%.*s%s\"", n, v.u.s.ptr, more);
}

uint32_t dorm__hash32(const char *s, size_t n, uint32_t h) {
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h;
}
