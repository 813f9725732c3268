/* SPDX-License-Identifier: MIT */
/* tools/serve/serve_input.c — user input of `dorm serve` into typed values.
 *
 * Query strings carry text; the builder wants values of the type a lookup
 * compares with.  So each lookup key ("author__age__gte", "joined__year",
 * "country__in") is walked over the models — fields, foreign keys forward
 * and backward, transforms, the final lookup — to learn that type, and the
 * text is parsed by it: integers, floats, booleans (true/false/1/0), dates,
 * times, uuids (checked by the builder), comma-separated lists for in and
 * range.  A key the walk does not understand is handed to the builder as
 * text anyway: the builder is the one authority on what is a field or a
 * lookup, and its refusal names the key.
 *
 * JSON bodies are checked field by field against the model (unknown,
 * wrong type, null where not allowed, missing required), then set on the
 * query, whose own checks (formats, max_length, choices) finish the job.
 * A many_to_many field is no column: its list of keys is checked and kept
 * (serve_m2m_take) for the transaction that writes the row, and in
 * fields= it names a relation to read afterwards, not a column.
 *
 * distinct=1 (or true) is Django's .distinct(), for the rows a filter
 * across a multi-valued relation would otherwise repeat.
 *
 * Every refusal here is a 400 whose message names the user's input; none
 * contains SQL (there is none yet) or a database's text.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tools/serve/serve.h"

int serve_refuse(serve_refusal *why, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  why->status = 400;
  vsnprintf(why->message, sizeof why->message, fmt, ap);
  va_end(ap);
  /* a message longer than the buffer was cut, maybe inside a character:
   * end it before, so it travels as JSON (what it quotes is UTF-8) */
  size_t n = strlen(why->message);
  why->message[dorm_http_utf8_valid(why->message, n)] = '\0';
  return -1;
}

/* The user's text in a message: at most 100 bytes, cut between two
 * characters (for "%.*s"; the text is valid UTF-8, checked on arrival). */
#define CLIP(s) (int)dorm_http_utf8_clip((s), strlen(s), 100), (s)

/* The builder's message for its sticky error: it names the model, the
 * field and the lookup the user wrote, and never holds SQL. */
static int refuse_query(serve_refusal *why, const dorm_query *q) {
  dorm_error err;
  dorm_error_clear(&err);
  dorm_query_error(q, &err);
  if (err.code == DORM_ENOMEM) {
    why->status = 503;
    snprintf(why->message, sizeof why->message, "out of memory");
    return -1;
  }
  return serve_refuse(why, "%s",
                      err.message[0] ? err.message : "invalid query");
}

/* How a lookup's value is read. */
enum vkind { V_SCALAR, V_LIST, V_ISNULL, V_TEXT };

static const char *const pattern_lookups[] = {
    "contains",  "icontains", "startswith", "istartswith", "endswith",
    "iendswith", "regex",     "iregex",     "iexact",      NULL};
static const char *const plain_lookups[] = {"exact", "gt",  "gte",
                                            "lt",    "lte", NULL};

static int in_list(const char *s, size_t n, const char *const *list) {
  for (int i = 0; list[i]; i++)
    if (strlen(list[i]) == n && !strncmp(list[i], s, n)) return 1;
  return 0;
}

static int seg_is(const char *s, size_t n, const char *word) {
  return strlen(word) == n && !strncmp(s, word, n);
}

/* The field of m named by n bytes at s: a name, "pk", or a foreign key's
 * column ("author_id"). */
static const dorm_field *field_of(const dorm_model *m, const char *s,
                                  size_t n) {
  if (seg_is(s, n, "pk")) return m->pk;
  for (size_t i = 0; i < m->nfields; i++) {
    const dorm_field *f = &m->fields[i];
    if (seg_is(s, n, f->name)) return f;
    if (dorm_field_is_fk(f) && f->column && seg_is(s, n, f->column)) return f;
  }
  return NULL;
}

/* The model reached from m by a reverse relation named by s (a foreign
 * key of another model to m, by its related_name or the lower-cased model
 * name, as Django's query name). */
static const dorm_model *reverse_of(const dorm_model *m, const char *s,
                                    size_t n) {
  const dorm_schema *sc = m->schema;
  if (!sc) return NULL;
  for (size_t i = 0; i < sc->nmodels; i++) {
    const dorm_model *o = &sc->models[i];
    for (size_t j = 0; j < o->nfields; j++) {
      const dorm_field *f = &o->fields[j];
      if (!f->target || f->target != m) continue;
      if (f->related_name) {
        if (seg_is(s, n, f->related_name)) return o;
      } else if (strlen(o->name) == n && !strncasecmp(o->name, s, n)) {
        return o;
      }
    }
  }
  return NULL;
}

/* Walk key over the models: the value type one item of the lookup's value
 * takes and how the value is read.  0, or -1 when the walk does not
 * understand the key (the builder will say what is wrong). */
static int resolve(const dorm_model *m, const char *key, dorm_type *type,
                   enum vkind *kind) {
  const dorm_field *f = NULL; /* the field compared so far */
  const dorm_model *at = m;   /* the model a next field would belong to */
  dorm_type t = DORM_T_NULL;
  *kind = V_SCALAR;
  const char *p = key;
  for (;;) {
    const char *sep = strstr(p, "__");
    size_t n = sep ? (size_t)(sep - p) : strlen(p);
    int last = sep == NULL;
    const dorm_field *nf = at ? field_of(at, p, n) : NULL;
    const dorm_model *rev = at && !nf ? reverse_of(at, p, n) : NULL;
    if (nf) {
      f = nf;
      t = dorm_field_value_type(f);
      at = f->target; /* a relation: the next part may be its field */
      if (f->type == DORM_FIELD_MANY_TO_MANY && f->target)
        t = dorm_field_value_type(f->target->pk);
    } else if (rev) {
      /* a reverse relation: compared by the related model's key */
      f = rev->pk;
      t = dorm_field_value_type(f);
      at = rev;
    } else if (f && (seg_is(p, n, "year") || seg_is(p, n, "month") ||
                     seg_is(p, n, "day") || seg_is(p, n, "week_day") ||
                     seg_is(p, n, "hour") || seg_is(p, n, "minute"))) {
      t = DORM_T_INT;
      at = NULL;
    } else if (f && seg_is(p, n, "date")) {
      t = DORM_T_DATE;
      at = NULL;
    } else if (f && last && seg_is(p, n, "isnull")) {
      *kind = V_ISNULL;
    } else if (f && last && (seg_is(p, n, "in") || seg_is(p, n, "range"))) {
      *kind = V_LIST;
    } else if (f && last && in_list(p, n, pattern_lookups)) {
      *kind = V_TEXT;
    } else if (f && last && in_list(p, n, plain_lookups)) {
      /* compared as the field's type */
    } else {
      return -1;
    }
    if (last) break;
    p = sep + 2;
  }
  *type = t;
  return 0;
}

/* Parse one item by type t.  Text types keep pointing into s. */
static int parse_scalar(dorm_type t, const char *s, size_t n, dorm_value *out) {
  char buf[64];
  switch (t) {
    case DORM_T_INT: {
      if (!n || n >= sizeof buf) return -1;
      memcpy(buf, s, n);
      buf[n] = '\0';
      char *end;
      errno = 0;
      long long v = strtoll(buf, &end, 10);
      if (errno || *end || isspace((unsigned char)buf[0])) return -1;
      *out = dorm_int(v);
      return 0;
    }
    case DORM_T_FLOAT: {
      if (!n || n >= sizeof buf) return -1;
      memcpy(buf, s, n);
      buf[n] = '\0';
      char *end;
      errno = 0;
      double v = strtod(buf, &end);
      if (errno || *end || isspace((unsigned char)buf[0])) return -1;
      *out = dorm_float(v);
      return 0;
    }
    case DORM_T_BOOL:
      if ((n == 4 && !strncasecmp(s, "true", 4)) || (n == 1 && s[0] == '1'))
        *out = dorm_bool(1);
      else if ((n == 5 && !strncasecmp(s, "false", 5)) ||
               (n == 1 && s[0] == '0'))
        *out = dorm_bool(0);
      else
        return -1;
      return 0;
    case DORM_T_NULL:
    case DORM_T_LIST:
    case DORM_T_EXPR: *out = dorm_strn(s, n); return 0;
    default:
      /* decimals, dates, times, uuids, text, json, bytes: the builder
       * checks the form */
      *out = dorm_textn(t, s, n);
      return 0;
  }
}

static const char *type_word(dorm_type t) {
  switch (t) {
    case DORM_T_INT: return "an integer";
    case DORM_T_FLOAT: return "a number";
    case DORM_T_BOOL: return "true or false";
    default: return "a valid value";
  }
}

/* One lookup from the query string as a filter on q. */
static int apply_lookup(const serve_state *st, dorm_query *q,
                        const dorm_model *m, const dorm_http_param *p,
                        serve_refusal *why) {
  (void)st;
  dorm_type t = DORM_T_TEXT;
  enum vkind kind = V_SCALAR;
  if (resolve(m, p->name, &t, &kind) != 0) {
    /* let the builder name what is wrong with the key */
    if (dorm_filter(q, p->name, dorm_strn(p->value, p->value_len)) != 0)
      return refuse_query(why, q);
    return serve_refuse(why, "unknown field or lookup '%.*s'", CLIP(p->name));
  }
  dorm_value v;
  if (kind == V_ISNULL) {
    if (parse_scalar(DORM_T_BOOL, p->value, p->value_len, &v) != 0)
      return serve_refuse(why, "'%.*s': expected true or false, got '%.*s'",
                          CLIP(p->name), CLIP(p->value));
  } else if (kind == V_TEXT) {
    v = dorm_strn(p->value, p->value_len);
  } else if (kind == V_LIST) {
    dorm_value items[256];
    size_t n = 0;
    const char *s = p->value, *end = p->value + p->value_len;
    for (;;) {
      const char *comma = memchr(s, ',', (size_t)(end - s));
      const char *e = comma ? comma : end;
      if (n == sizeof items / sizeof items[0])
        return serve_refuse(why, "'%.*s': more than 256 values", CLIP(p->name));
      if (parse_scalar(t, s, (size_t)(e - s), &items[n]) != 0)
        return serve_refuse(why, "'%.*s': '%.*s' is not %s", CLIP(p->name),
                            (int)dorm_http_utf8_clip(s, (size_t)(e - s), 100),
                            s, type_word(t));
      n++;
      if (!comma) break;
      s = comma + 1;
    }
    if (dorm_filter(q, p->name, dorm_list(items, n)) != 0)
      return refuse_query(why, q);
    return 0;
  } else {
    if (parse_scalar(t, p->value, p->value_len, &v) != 0)
      return serve_refuse(why, "'%.*s': '%.*s' is not %s", CLIP(p->name),
                          CLIP(p->value), type_word(t));
  }
  if (dorm_filter(q, p->name, v) != 0) return refuse_query(why, q);
  return 0;
}

/* A non-negative integer parameter. */
static int parse_count(const dorm_http_param *p, int64_t *out,
                       serve_refusal *why) {
  dorm_value v;
  if (parse_scalar(DORM_T_INT, p->value, p->value_len, &v) != 0 || v.u.i < 0)
    return serve_refuse(why,
                        "'%s': expected a non-negative integer, got '%.*s'",
                        p->name, CLIP(p->value));
  *out = v.u.i;
  return 0;
}

/* The next comma-separated item of a parameter's value, from *s (which
 * moves past it) up to end, copied into item: 1, 0 at the end, or -1
 * (refused: an empty, over-long or NUL-holding item). */
static int next_item(const dorm_http_param *p, const char **s,
                     char item[static 128], serve_refusal *why) {
  const char *end = p->value + p->value_len;
  if (!*s) return 0;
  const char *comma = memchr(*s, ',', (size_t)(end - *s));
  const char *e = comma ? comma : end;
  size_t n = (size_t)(e - *s);
  if (!n || n >= 128 || memchr(*s, '\0', n))
    return serve_refuse(why, "'%s': invalid item '%.*s'", p->name,
                        (int)dorm_http_utf8_clip(*s, n, 100), *s);
  memcpy(item, *s, n);
  item[n] = '\0';
  *s = comma ? comma + 1 : NULL;
  return 1;
}

/* Call fn(q, item) for each comma-separated item of a parameter. */
static int each_item(dorm_query *q, const dorm_http_param *p,
                     int (*fn)(dorm_query *, const char *),
                     serve_refusal *why) {
  char item[128];
  const char *s = p->value;
  int more;
  while ((more = next_item(p, &s, item, why)) > 0)
    if (fn(q, item) != 0) return refuse_query(why, q);
  return more;
}

/* fields=: each item selected with dorm_values, except many_to_many
 * fields, which go to *want (read afterwards, not selected); when there
 * are any and the primary key is not named it is selected too, to read
 * them, and dropped from the answer. */
static int apply_fields(dorm_query *q, const dorm_model *m,
                        const dorm_http_param *p, serve_m2m_want *want,
                        serve_refusal *why) {
  char item[128];
  int has_pk = 0, more;
  if (want) memset(want, 0, sizeof *want);
  const char *s = p->value;
  while ((more = next_item(p, &s, item, why)) > 0) {
    const dorm_field *f = dorm_model_field(m, item);
    if (want && f && f->type == DORM_FIELD_MANY_TO_MANY) {
      size_t k = 0;
      while (k < want->n && want->fields[k] != f) k++;
      if (k == want->n && want->n < SERVE_M2M_MAX) want->fields[want->n++] = f;
    } else {
      if (!strcmp(item, "pk") || !strcmp(item, m->pk->name)) {
        has_pk = 1;
        if (want) want->pk_key = !strcmp(item, "pk") ? "pk" : NULL;
      }
      if (dorm_values(q, item) != 0) return refuse_query(why, q);
    }
  }
  if (more < 0) return -1;
  if (want && want->n && !has_pk) {
    if (dorm_values(q, m->pk->name) != 0) return refuse_query(why, q);
    want->drop_pk = 1;
  }
  return 0;
}

int serve_apply_params(const serve_state *st, dorm_query *q,
                       const dorm_http_request *req, int with_shape,
                       serve_m2m_want *want, serve_refusal *why) {
  const dorm_model *m = dorm_query_model(q);
  int64_t limit = -1, offset = 0;
  const dorm_http_param *order = NULL, *fields = NULL;
  for (size_t i = 0; i < req->nparams; i++) {
    const dorm_http_param *p = &req->params[i];
    if (strlen(p->name) != p->name_len || memchr(p->value, '\0', p->value_len))
      return serve_refuse(why, "a parameter holds a NUL byte");
    /* %-decoding can make any byte: refused here, by name, rather than
     * echoed in a message JSON cannot carry or sent to the database */
    if (dorm_http_utf8_valid(p->name, p->name_len) != p->name_len)
      return serve_refuse(why,
                          "a query parameter name is not valid UTF-8 once "
                          "%%-decoded");
    if (dorm_http_utf8_valid(p->value, p->value_len) != p->value_len)
      return serve_refuse(why,
                          "'%.*s': the value is not valid UTF-8 once "
                          "%%-decoded",
                          CLIP(p->name));
    if (!strcmp(p->name, "order_by")) {
      order = p;
    } else if (!strcmp(p->name, "fields")) {
      fields = p;
    } else if (!strcmp(p->name, "limit")) {
      if (parse_count(p, &limit, why)) return -1;
    } else if (!strcmp(p->name, "offset")) {
      if (parse_count(p, &offset, why)) return -1;
    } else if (!strcmp(p->name, "distinct")) {
      /* Django's .distinct(): each object once, however many related rows
       * of a multi-valued relation matched (lists and counts alike) */
      if (!(p->value_len == 1 && p->value[0] == '1') &&
          !(p->value_len == 4 && !strncasecmp(p->value, "true", 4)))
        return serve_refuse(why, "'distinct': expected 1 or true, got '%.*s'",
                            CLIP(p->value));
      if (dorm_distinct(q) != 0) return refuse_query(why, q);
    } else if (apply_lookup(st, q, m, p, why) != 0) {
      return -1;
    }
  }
  if (!with_shape) return 0;
  if (order) {
    dorm_order_by(q, NULL); /* the request's order replaces the model's */
    if (each_item(q, order, dorm_order_by, why)) return -1;
  }
  if (want) serve_m2m_want_all(m, want);
  if (fields && apply_fields(q, m, fields, want, why)) return -1;
  if (limit >= 0 || offset > 0) {
    if (limit >= 0 && offset > INT64_MAX - limit)
      return serve_refuse(why, "'offset': too large");
    if (dorm_slice(q, offset, limit >= 0 ? offset + limit : -1) != 0)
      return refuse_query(why, q);
  }
  return 0;
}

int serve_parse_pk(const dorm_model *m, const char *text, dorm_value *out) {
  dorm_type t = dorm_field_value_type(m->pk);
  size_t n = strlen(text);
  if (!n) return -1;
  return parse_scalar(t == DORM_T_BOOL ? DORM_T_TEXT : t, text, n, out);
}

/* ---- JSON bodies -----------------------------------------------------------
 */

static int b64val(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

/* Decode base64 (standard or URL alphabet, padding optional) into a new
 * malloc'd buffer; NULL when s is not base64. */
static unsigned char *b64_decode(const char *s, size_t n, size_t *out_len) {
  unsigned char *out = malloc(n / 4 * 3 + 3);
  if (!out) return NULL;
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '=') break;
    int v = b64val((unsigned char)s[i]);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  *out_len = o;
  return out;
}

/* Largest value of an integer field, so an out-of-range number is a 400
 * here and not a database error. */
static int64_t int_limit(dorm_field_type t) {
  switch (t) {
    case DORM_FIELD_SMALLINT: return INT16_MAX;
    case DORM_FIELD_AUTO:
    case DORM_FIELD_INTEGER: return INT32_MAX;
    default: return INT64_MAX;
  }
}

/* ---- the text of a member, as the client wrote it -----------------------
 * jansson reads every JSON number with a point as a double, so 95.26
 * would reach a decimal field as 95.260000000000005 and a JSON field's
 * 0.1 as 0.10000000000000001.  Decimal and JSON fields take the member's
 * text from the body instead (the body already parsed, so the scan may
 * trust its shape). */

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static const char *skip_string(const char *p, const char *end) {
  for (p++; p < end && *p != '"'; p++)
    if (*p == '\\') p++;
  return p < end ? p + 1 : end;
}

static const char *skip_value(const char *p, const char *end) {
  if (p < end && *p == '"') return skip_string(p, end);
  if (p < end && (*p == '{' || *p == '[')) {
    int depth = 0;
    while (p < end) {
      if (*p == '"') {
        p = skip_string(p, end);
        continue;
      }
      if (*p == '{' || *p == '[') depth++;
      if (*p == '}' || *p == ']') {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return end;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' &&
         *p != '\t' && *p != '\n' && *p != '\r')
    p++;
  return p;
}

/* The text of the top-level member key of the object body; 0, or -1. */
static int raw_member(const char *body, size_t len, const char *key,
                      const char **vs, size_t *vn) {
  const char *p = body, *end = body + len;
  p = skip_ws(p, end);
  if (p >= end || *p != '{') return -1;
  p++;
  for (;;) {
    p = skip_ws(p, end);
    if (p >= end || *p != '"') return -1;
    const char *ks = p;
    p = skip_string(p, end);
    int match;
    if (memchr(ks, '\\', (size_t)(p - ks))) {
      json_t *k = json_loadb(ks, (size_t)(p - ks), JSON_DECODE_ANY, NULL);
      match = k && json_is_string(k) && !strcmp(json_string_value(k), key);
      json_decref(k);
    } else {
      match = (size_t)(p - ks) == strlen(key) + 2 &&
              !memcmp(ks + 1, key, (size_t)(p - ks) - 2);
    }
    p = skip_ws(p, end);
    if (p >= end || *p != ':') return -1;
    p = skip_ws(p + 1, end);
    const char *v = p;
    p = skip_value(p, end);
    if (match) {
      *vs = v;
      *vn = (size_t)(p - v);
      return 0;
    }
    p = skip_ws(p, end);
    if (p >= end || *p != ',') return -1;
    p++;
  }
}

/* One field's JSON value set on q; body/len: the request's body. */
static int set_field(const dorm_model *m, dorm_query *q, const dorm_field *f,
                     const char *key, json_t *v, const char *body, size_t len,
                     serve_refusal *why) {
  (void)m;
  if (json_is_null(v)) {
    if (!(f->flags & DORM_FIELD_NULL))
      return serve_refuse(why, "field '%s' may not be null", key);
    if (dorm_set(q, f->name, dorm_null()) != 0) return refuse_query(why, q);
    return 0;
  }
  dorm_type t = dorm_field_value_type(f);
  dorm_value val;
  char *tmp = NULL;
  switch (f->type) {
    case DORM_FIELD_JSON: {
      /* the document as written (the builder makes it canonical) */
      const char *raw;
      size_t rawn;
      if (raw_member(body, len, key, &raw, &rawn) != 0)
        return serve_refuse(why, "field '%s': cannot read the value", key);
      val = dorm_textn(DORM_T_JSON, raw, rawn);
      break;
    }
    case DORM_FIELD_BINARY: {
      if (!json_is_string(v))
        return serve_refuse(why, "field '%s': expected a base64 string", key);
      size_t n;
      tmp = (char *)b64_decode(json_string_value(v), json_string_length(v), &n);
      if (!tmp)
        return serve_refuse(why, "field '%s': expected a base64 string", key);
      val = dorm_bytes(tmp, n);
      break;
    }
    case DORM_FIELD_MANY_TO_MANY:
      return serve_refuse(why, "field '%s' cannot be set through this API",
                          key);
    default:
      switch (t) {
        case DORM_T_INT:
          if (!json_is_integer(v))
            return serve_refuse(why, "field '%s': expected an integer", key);
          {
            int64_t lim = int_limit(f->type);
            json_int_t i = json_integer_value(v);
            if (!dorm_field_is_fk(f) && (i > lim || i < -lim - 1))
              return serve_refuse(why,
                                  "field '%s': %" PRId64 " is out of range",
                                  key, (int64_t)i);
            val = dorm_int(i);
          }
          break;
        case DORM_T_FLOAT:
          if (!json_is_number(v))
            return serve_refuse(why, "field '%s': expected a number", key);
          val = dorm_float(json_number_value(v));
          break;
        case DORM_T_BOOL:
          if (!json_is_boolean(v))
            return serve_refuse(why, "field '%s': expected true or false", key);
          val = dorm_bool(json_is_true(v));
          break;
        case DORM_T_DECIMAL:
          if (json_is_integer(v))
            val = dorm_int(json_integer_value(v));
          else if (json_is_real(v)) {
            /* the number as written, not the double jansson read */
            const char *raw;
            size_t rawn;
            if (raw_member(body, len, key, &raw, &rawn) != 0)
              return serve_refuse(why, "field '%s': cannot read the value",
                                  key);
            if (memchr(raw, 'e', rawn) || memchr(raw, 'E', rawn))
              return serve_refuse(why,
                                  "field '%s': write the decimal without an "
                                  "exponent (or as a string)",
                                  key);
            val = dorm_textn(DORM_T_DECIMAL, raw, rawn);
          } else if (json_is_string(v))
            val = dorm_textn(DORM_T_DECIMAL, json_string_value(v),
                             json_string_length(v));
          else
            return serve_refuse(why, "field '%s': expected a decimal number",
                                key);
          break;
        default:
          if (!json_is_string(v))
            return serve_refuse(why, "field '%s': expected a string", key);
          val = dorm_textn(t, json_string_value(v), json_string_length(v));
          break;
      }
  }
  int rc = dorm_set(q, f->name, val);
  free(tmp);
  if (rc != 0) return refuse_query(why, q);
  return 0;
}

/* Whether a create must name f: not null, no default, not generated. */
static int required(const dorm_field *f) {
  if (f->type == DORM_FIELD_AUTO || f->type == DORM_FIELD_BIGAUTO ||
      f->type == DORM_FIELD_MANY_TO_MANY)
    return 0;
  return !(f->flags & (DORM_FIELD_NULL | DORM_FIELD_HAS_DEFAULT));
}

int serve_apply_body(const dorm_model *m, dorm_query *q, const char *body,
                     size_t len, int creating, size_t *nset,
                     serve_m2m_input *m2m, serve_refusal *why) {
  *nset = 0;
  json_error_t jerr;
  memset(&jerr, 0, sizeof jerr);
  json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!obj &&
      (json_error_code(&jerr) == json_error_out_of_memory ||
       !jerr.text[0])) { /* jansson ran out of memory: not the client's fault */
    serve_refuse(why, "out of memory");
    why->status = 503;
    return -1;
  }
  if (!obj)
    return serve_refuse(why, "malformed JSON at line %d, column %d", jerr.line,
                        jerr.column);
  if (!json_is_object(obj)) {
    json_decref(obj);
    return serve_refuse(why, "the body must be a JSON object");
  }
  unsigned char seen[512];
  memset(seen, 0, sizeof seen);
  const char *key;
  json_t *v;
  int rc = 0;
  json_object_foreach(obj, key, v) {
    const dorm_field *f = dorm_model_field(m, key);
    if (f && f->type == DORM_FIELD_MANY_TO_MANY && !m2m) f = NULL;
    if (!f) {
      const dorm_field *byc = dorm_model_field_by_column(m, key);
      if (byc && dorm_field_is_fk(byc)) f = byc;
    }
    if (!f) {
      rc = serve_refuse(why, "unknown field '%.*s'", CLIP(key));
      break;
    }
    size_t idx = (size_t)(f - m->fields);
    if (idx < sizeof seen && seen[idx]) {
      rc = serve_refuse(why, "field '%s' given twice", f->name);
      break;
    }
    if (idx < sizeof seen) seen[idx] = 1;
    if (!creating && f == m->pk) {
      rc = serve_refuse(why, "field '%s' (the primary key) cannot be changed",
                        key);
      break;
    }
    if (f->type == DORM_FIELD_MANY_TO_MANY) {
      if (serve_m2m_take(f, key, v, m2m, why) != 0) {
        rc = -1;
        break;
      }
      continue; /* set after the row is written, in its transaction */
    }
    if (set_field(m, q, f, key, v, body, len, why) != 0) {
      rc = -1;
      break;
    }
    (*nset)++;
  }
  if (rc == 0 && creating) {
    for (size_t i = 0; i < m->nfields && i < sizeof seen; i++) {
      if (!seen[i] && required(&m->fields[i])) {
        rc = serve_refuse(why, "missing field '%s'", m->fields[i].name);
        break;
      }
    }
  }
  json_decref(obj);
  return rc;
}

int serve_db_error(const dorm_result *err, const char **text) {
  int code = dorm_result_code(err);
  const char *state = dorm_result_sqlstate(err);
  switch (code) {
    case DORM_EINTEGRITY:
      if (!strcmp(state, "23505")) {
        *text = "conflict: an object with the same unique value exists";
      } else if (!strcmp(state, "23503")) {
        *text =
            "conflict: a related object does not exist or is still "
            "referenced";
      } else if (!strcmp(state, "23502")) {
        *text = "conflict: a required value is missing";
      } else {
        *text = "conflict: an integrity constraint refused the change";
      }
      return 409;
    case DORM_ENOTFOUND: *text = "not found"; return 404;
    case DORM_EINVAL:
      if (!strcmp(state, "2201B")) {
        /* the user's pattern: the same 400 on both backends */
        *text = "invalid regular expression in a regex or iregex lookup";
        return 400;
      }
      *text = "internal error";
      return 500;
    case DORM_EFIELD:
    case DORM_ELOOKUP:
    case DORM_ETYPE:
    case DORM_EIDENT:
    case DORM_ERANGE:
    case DORM_EUNSUPPORTED: *text = "invalid query"; return 400;
    case DORM_ECLOSED:
    case DORM_ECONN:
    case DORM_EQUEUEFULL:
    case DORM_ETIMEDOUT:
    case DORM_ENOMEM: *text = "database unavailable"; return 503;
    case DORM_EDB:
      if (!strncmp(state, "22", 2)) {
        /* data exceptions: a value the database refused */
        *text = "a value was refused by the database";
        return 400;
      }
      *text = "database error";
      return 500;
    default: *text = "internal error"; return 500;
  }
}
