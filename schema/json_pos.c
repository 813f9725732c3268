/* SPDX-License-Identifier: MIT */
/* schema/json_pos.c — line and column of values in a JSON text.
 *
 * jansson reports positions only for syntax errors; a json_t carries none.
 * Messages about a well-formed but wrong models file still need to point at
 * the model or field ("models.json:14:9: model 'Entry', field 'author':
 * ..."), so this walks the text jansson has already accepted and reports
 * each value's path and position in document order.  It is a scanner, not
 * a parser: it trusts the text to be valid and simply stops at anything it
 * does not expect.  Columns count characters (UTF-8 sequences count once)
 * from 1, as jansson's do, so both kinds of message agree.
 */
#include <string.h>

#include "schema/schema_int.h"

typedef struct walker {
  const char *p, *end;
  int line, col; /* col = characters consumed on this line */
  dorm__jstep *path;
  size_t max_depth;
  dorm__jvisit_fn visit;
  void *ud;
  int stop;
} walker;

static void adv(walker *w) {
  unsigned char c = (unsigned char)*w->p++;
  if (c == '\n') {
    w->line++;
    w->col = 0;
  } else if ((c & 0xC0) != 0x80) {
    w->col++;
  }
}

static void skip_ws(walker *w) {
  while (w->p < w->end &&
         (*w->p == ' ' || *w->p == '\t' || *w->p == '\n' || *w->p == '\r'))
    adv(w);
}

/* At the opening quote: skip the string, leaving raw text in *s, *n. */
static int skip_string(walker *w, const char **s, size_t *n) {
  adv(w);
  const char *start = w->p;
  while (w->p < w->end && *w->p != '"') {
    if (*w->p == '\\' && w->p + 1 < w->end) adv(w);
    adv(w);
  }
  if (w->p >= w->end) return -1;
  if (s) *s = start;
  if (n) *n = (size_t)(w->p - start);
  adv(w);
  return 0;
}

/* Skip a whole value without reporting it (deeper than anyone asked). */
static int skip_value(walker *w) {
  int depth = 0;
  do {
    skip_ws(w);
    if (w->p >= w->end) return -1;
    char c = *w->p;
    if (c == '"') {
      if (skip_string(w, NULL, NULL)) return -1;
    } else if (c == '{' || c == '[') {
      depth++;
      adv(w);
    } else if (c == '}' || c == ']') {
      depth--;
      adv(w);
    } else if (c == ',' || c == ':') {
      adv(w);
    } else {
      /* a literal (true, 12, junk): at least one byte, so a byte that
       * ends nothing (a NUL: strchr would find the terminator) is still
       * stepped over and the walk always moves on */
      do adv(w);
      while (w->p < w->end && (!*w->p || !strchr(",]} \t\r\n", *w->p)));
    }
  } while (depth > 0);
  return 0;
}

static int walk_value(walker *w, size_t depth, int kl, int kc) {
  skip_ws(w);
  if (w->p >= w->end) return -1;
  int line = w->line, col = w->col + 1;
  int r = w->visit(w->ud, w->path, depth, line, col, kl, kc);
  if (r == 1) {
    w->stop = 1;
    return -1;
  }
  char c = *w->p;
  if ((c != '{' && c != '[') || r == 2 || depth >= w->max_depth)
    return skip_value(w);
  adv(w);
  size_t index = 0;
  for (;;) {
    skip_ws(w);
    if (w->p >= w->end) return -1;
    if (*w->p == (c == '{' ? '}' : ']')) {
      adv(w);
      return 0;
    }
    dorm__jstep *st = &w->path[depth];
    int key_line = 0, key_col = 0;
    st->key = NULL;
    st->keylen = 0;
    st->index = index++;
    if (c == '{') {
      if (*w->p != '"') return -1;
      key_line = w->line;
      key_col = w->col + 1;
      if (skip_string(w, &st->key, &st->keylen)) return -1;
      skip_ws(w);
      if (w->p >= w->end || *w->p != ':') return -1;
      adv(w);
    }
    if (walk_value(w, depth + 1, key_line, key_col)) return -1;
    skip_ws(w);
    if (w->p < w->end && *w->p == ',') adv(w);
  }
}

void dorm__json_walk(const char *text, size_t len, size_t max_depth,
                     dorm__jvisit_fn visit, void *ud) {
  dorm__jstep path[16] = {{0}}; /* visitors read only the filled prefix */
  if (max_depth > sizeof path / sizeof path[0])
    max_depth = sizeof path / sizeof path[0];
  walker w = {text, text + len, 1, 0, path, max_depth, visit, ud, 0};
  walk_value(&w, 0, 0, 0);
}

typedef struct locate {
  const dorm__jstep *want;
  size_t depth;
  int want_key;
  int line, col, found;
} locate;

static int step_eq(const dorm__jstep *have, const dorm__jstep *want) {
  if (want->key)
    return have->key && have->keylen == strlen(want->key) &&
           memcmp(have->key, want->key, have->keylen) == 0;
  return !have->key && have->index == want->index;
}

static int locate_visit(void *ud, const dorm__jstep *path, size_t depth,
                        int line, int col, int kl, int kc) {
  locate *l = ud;
  /* The newest step decides; earlier ones matched or we would not be
   * here (mismatching subtrees are skipped). */
  if (depth > 0 && !step_eq(&path[depth - 1], &l->want[depth - 1])) return 2;
  if (depth < l->depth) return 0;
  l->found = 1;
  l->line = (l->want_key && kl) ? kl : line;
  l->col = (l->want_key && kl) ? kc : col;
  return 1;
}

int dorm__json_locate(const char *text, size_t len, const dorm__jstep *path,
                      size_t depth, int want_key, int *line, int *col) {
  locate l = {path, depth, want_key, 0, 0, 0};
  dorm__json_walk(text, len, depth, locate_visit, &l);
  if (!l.found) return -1;
  *line = l.line;
  *col = l.col;
  return 0;
}
