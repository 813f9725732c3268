/* SPDX-License-Identifier: MIT */
/* tools/fixture.h — what `dorm dumpdata` and `dorm loaddata` share: the
 * models in dependency order, and a reader that hands a fixture file's
 * objects over one at a time, so neither command ever holds a whole
 * fixture in memory (docs/fixtures.md).
 *
 * A fixture is Django's: a JSON array of {"model", "pk", "fields"}
 * objects, or (JSON lines) one such object a line and no brackets.
 */
#ifndef DORM_TOOLS_FIXTURE_H
#define DORM_TOOLS_FIXTURE_H

#include <stdio.h>

#include "tools/cli.h"

/* The format of a fixture: FX_DETECT reads the first character ('[' an
 * array, anything else JSON lines). */
enum { FX_DETECT = -1, FX_JSON = 0, FX_JSONL = 1 };

/* Every model of s into out (s->nmodels entries, borrowed from s), each
 * after the models its foreign keys and one-to-ones point to, otherwise
 * in declaration order.  A model's references to itself do not count; a
 * cycle of references is broken in declaration order (loaddata defers
 * foreign key checks to the commit, so any order loads). */
void fx_dependency_order(const dorm_schema *s, const dorm_model **out);

/* One fixture file being read. */
typedef struct fx_reader {
  FILE *f;
  const char *path; /* borrowed: messages name it */
  int format;       /* FX_JSON or FX_JSONL once opened */
  int state;        /* FX_JSON: 0 before '[', 1 inside, 2 after ']' */
  int need_comma;   /* FX_JSON: an object was read, ',' or ']' comes */
  size_t index;     /* the objects read so far: the last one's number */
  long line;        /* the line being read (1-based) */
  long obj_line;    /* the line the last object starts on */
  char *buf;        /* the last object's text (malloc'd, reused) */
  size_t len, cap;
} fx_reader;

/* Open path (format FX_DETECT, FX_JSON or FX_JSONL).  0, or -1 with the
 * reason in msg (cap bytes). */
int fx_open(fx_reader *r, const char *path, int format, char *msg, size_t cap);
/* The next object: 1 with *obj (a new reference, a JSON object), 0 at the
 * end of the file, -1 with the reason in msg: invalid JSON (with its
 * line), an element that is not an object, text after the array. */
int fx_next(fx_reader *r, json_t **obj, char *msg, size_t cap);
void fx_close(fx_reader *r);

#endif /* DORM_TOOLS_FIXTURE_H */
