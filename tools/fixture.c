/* SPDX-License-Identifier: MIT */
/* tools/fixture.c — the models in dependency order, and the streaming
 * reader of fixture files (tools/fixture.h).
 *
 * The reader never parses a whole file: in a JSON array it finds where
 * each element ends by counting brackets outside strings, and hands that
 * element alone to jansson; in JSON lines each line is one object.  So a
 * fixture of a million objects costs the memory of one object, and an
 * error names the object's number and the line it is on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fixture.h"

void fx_dependency_order(const dorm_schema *s, const dorm_model **out) {
  size_t n = s->nmodels, k = 0;
  char *done = calloc(n ? n : 1, 1);
  if (!done) { /* out of memory: declaration order still loads */
    for (size_t i = 0; i < n; i++) out[i] = &s->models[i];
    return;
  }
  while (k < n) {
    size_t pick = n;
    /* the first model (in declaration order) whose targets are out */
    for (size_t i = 0; i < n && pick == n; i++) {
      if (done[i]) continue;
      const dorm_model *m = &s->models[i];
      int ready = 1;
      for (size_t j = 0; j < m->nfields && ready; j++) {
        const dorm_field *f = &m->fields[j];
        if (!dorm_field_is_fk(f) || !f->target || f->target == m) continue;
        if (!done[f->target - s->models]) ready = 0;
      }
      if (ready) pick = i;
    }
    if (pick == n) /* a cycle: the first model left breaks it */
      for (size_t i = 0; i < n && pick == n; i++)
        if (!done[i]) pick = i;
    done[pick] = 1;
    out[k++] = &s->models[pick];
  }
  free(done);
}

/* ---- reading --------------------------------------------------------- */

static int next_char(fx_reader *r) {
  int c = getc_unlocked(r->f);
  if (c == '\n') r->line++;
  return c;
}

static int skip_space(fx_reader *r) {
  int c;
  do c = next_char(r);
  while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
  return c;
}

static int put(fx_reader *r, char c) {
  if (r->len + 1 >= r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 4096;
    char *b = realloc(r->buf, cap);
    if (!b) return -1;
    r->buf = b;
    r->cap = cap;
  }
  r->buf[r->len++] = c;
  return 0;
}

int fx_open(fx_reader *r, const char *path, int format, char *msg, size_t cap) {
  memset(r, 0, sizeof *r);
  r->path = path;
  r->line = 1;
  r->f = fopen(path, "rb");
  if (!r->f) {
    snprintf(msg, cap, "%s: %s", path, strerror(errno));
    return -1;
  }
  if (format == FX_DETECT) {
    /* the first character that is not blank: '[' is an array; an
     * object, or nothing, JSON lines */
    int c = skip_space(r);
    format = c == '[' ? FX_JSON : FX_JSONL;
    /* back to the start (the lines read again) */
    rewind(r->f);
    r->line = 1;
  }
  r->format = format;
  return 0;
}

void fx_close(fx_reader *r) {
  if (r->f) fclose(r->f);
  free(r->buf);
  memset(r, 0, sizeof *r);
}

/* The object in r->buf parsed; 1, or -1 with msg. */
static int parse(fx_reader *r, json_t **obj, char *msg, size_t cap) {
  json_error_t e;
  json_t *j = json_loadb(r->buf, r->len, 0, &e);
  if (!j) {
    snprintf(msg, cap, "%s: object %zu (line %ld): invalid JSON: %s", r->path,
             r->index, r->obj_line + (e.line > 0 ? e.line - 1 : 0), e.text);
    return -1;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    snprintf(msg, cap,
             "%s: object %zu (line %ld): expected an object "
             "{\"model\": ..., \"pk\": ..., \"fields\": {...}}",
             r->path, r->index, r->obj_line);
    return -1;
  }
  *obj = j;
  return 1;
}

static int next_line(fx_reader *r, json_t **obj, char *msg, size_t cap) {
  for (;;) {
    r->len = 0;
    int c, blank = 1;
    long at = r->line;
    while ((c = getc_unlocked(r->f)) != EOF && c != '\n') {
      if (put(r, (char)c)) {
        snprintf(msg, cap, "out of memory");
        return -1;
      }
      if (c != ' ' && c != '\t' && c != '\r') blank = 0;
    }
    if (c == '\n') r->line++;
    if (ferror(r->f)) {
      snprintf(msg, cap, "%s: %s", r->path, strerror(errno));
      return -1;
    }
    if (!blank) {
      r->index++;
      r->obj_line = at;
      return parse(r, obj, msg, cap);
    }
    if (c == EOF) return 0;
  }
}

static int next_element(fx_reader *r, json_t **obj, char *msg, size_t cap) {
  int c;
  if (r->state == 2) return 0;
  if (r->state == 0) {
    c = skip_space(r);
    if (c != '[') {
      snprintf(msg, cap,
               "%s: line %ld: invalid JSON: expected '[' (a JSON array of "
               "objects, or JSON lines)",
               r->path, r->line);
      return -1;
    }
    r->state = 1;
  }
  int after_comma = 0;
  for (;;) {
    c = skip_space(r);
    if (c == ']' && !after_comma) {
      r->state = 2;
      c = skip_space(r);
      if (c != EOF) {
        snprintf(msg, cap, "%s: line %ld: invalid JSON: text after the array",
                 r->path, r->line);
        return -1;
      }
      return 0;
    }
    if (c == EOF) {
      snprintf(msg, cap,
               "%s: line %ld: invalid JSON: the file ends inside the array",
               r->path, r->line);
      return -1;
    }
    if (r->need_comma) {
      if (c != ',') {
        snprintf(msg, cap,
                 "%s: line %ld: invalid JSON: expected ',' or ']' after "
                 "object %zu",
                 r->path, r->line, r->index);
        return -1;
      }
      r->need_comma = 0;
      after_comma = 1;
      continue;
    }
    break;
  }
  r->index++;
  r->obj_line = r->line;
  if (c != '{') {
    snprintf(msg, cap,
             "%s: object %zu (line %ld): expected an object {\"model\": ..., "
             "\"pk\": ..., \"fields\": {...}}",
             r->path, r->index, r->line);
    return -1;
  }
  /* the element's text: up to the bracket that closes it */
  r->len = 0;
  int depth = 0, in_str = 0, esc = 0;
  for (;;) {
    if (put(r, (char)c)) {
      snprintf(msg, cap, "out of memory");
      return -1;
    }
    if (in_str) {
      if (esc)
        esc = 0;
      else if (c == '\\')
        esc = 1;
      else if (c == '"')
        in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '{' || c == '[') {
      depth++;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) break;
    }
    c = next_char(r);
    if (c == EOF) {
      snprintf(msg, cap,
               "%s: object %zu (line %ld): invalid JSON: the file ends "
               "inside the object",
               r->path, r->index, r->obj_line);
      return -1;
    }
  }
  r->need_comma = 1;
  return parse(r, obj, msg, cap);
}

int fx_next(fx_reader *r, json_t **obj, char *msg, size_t cap) {
  *obj = NULL;
  return r->format == FX_JSONL ? next_line(r, obj, msg, cap)
                               : next_element(r, obj, msg, cap);
}
