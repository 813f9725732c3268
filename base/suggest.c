/* SPDX-License-Identifier: MIT */
/* base/suggest.c — "did you mean" for a misspelt name.
 *
 * models.json keys and types, query lookups, field paths in filters,
 * order_by and values: wherever a name is refused, the closest known one
 * within two edits (Levenshtein distance, and fewer edits than the word
 * has letters, so "x" suggests nothing) is offered.
 */
#include <string.h>

#include "base/base_int.h"

size_t dorm__edit_distance(const char *a, size_t la, const char *b, size_t lb) {
  if (la > 32 || lb > 32) return 99;
  size_t row[33];
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

void dorm__suggest_init(dorm__suggest *s, const char *word, size_t n) {
  s->word = word;
  s->n = n;
  s->best = NULL;
  s->dist = 3;
}

void dorm__suggest_add(dorm__suggest *s, const char *cand) {
  if (!cand || !*cand) return;
  size_t d = dorm__edit_distance(s->word, s->n, cand, strlen(cand));
  if (d < s->dist && d < s->n) {
    s->dist = d;
    s->best = cand;
  }
}
