/* SPDX-License-Identifier: MIT */
/* reactor_glue/gather.c — dorm_gather: one deferred for several.
 *
 * A gather appends one step (callback and errback) to each input; the step
 * moves the input's result into the gather's list and leaves
 * DORM_RESULT_NONE in the input's chain, so an error collected here is not
 * reported again by the input.  The output deferred is fired by whichever
 * step completes the gather, or by its canceller.  Steps that run while
 * dorm_gather itself is still adding them (inputs that had already fired)
 * must not fire the output inside the call (rule R2 of dorm/deferred.h),
 * so the outcome is then kept and fired on the next loop turn.
 *
 * Adding the steps cannot half-fail: placeholders are appended to every
 * input first (the only step that can run out of memory), and only then
 * turned into gather steps.
 *
 * Lifetime: the gather's state lives until every step it added has run and
 * the output has been fired; `pending` counts the steps not yet finished,
 * and a step decrements it only when it is completely done, so that a
 * step re-entered through cancellation cannot free the state under an
 * outer one.
 */
#include <string.h>

#include "base/base_int.h"
#include "reactor_glue/reactor_int.h"

typedef struct gather gather;

typedef struct gather_slot {
  gather *g;
  size_t i;
} gather_slot;

struct gather {
  dorm_deferred *out;
  dorm_loop *loop;
  unsigned flags;
  size_t n;
  size_t remaining; /* inputs whose result has not come yet */
  size_t pending;   /* steps added and not finished (plus guards) */
  int done;         /* the outcome is decided; later results are dropped */
  int building;     /* inside dorm_gather */
  int cancel_rest;  /* cancel unfinished inputs once building ends */
  int have_outcome; /* decided while building: fire it on the next turn */
  dorm_result outcome;
  dorm_result *items;     /* n results, moved into the list on success */
  dorm_deferred **inputs; /* NULL once that input's step has run */
  gather_slot slots[];
};

static void gather_free(gather *g) {
  if (g->items) {
    for (size_t i = 0; i < g->n; i++) dorm_result_free(&g->items[i]);
    dorm__free(g->items);
  }
  dorm__free(g);
}

static void unpend(gather *g) {
  if (--g->pending == 0 && g->done) gather_free(g);
}

/* Decide the gather's outcome (once). */
static void decide(gather *g, dorm_result r) {
  g->done = 1;
  g->out->canceller = NULL; /* the state may go before the output does */
  if (g->building) {
    g->outcome = r;
    g->have_outcome = 1;
  } else {
    dorm_deferred_fire(g->out, r);
  }
}

static void cancel_unfinished(gather *g) {
  for (size_t i = 0; i < g->n; i++) /* re-read: steps clear entries */
    if (g->inputs[i]) dorm_deferred_cancel(g->inputs[i]);
}

static dorm_result gather_step(dorm_result *res, void *arg) {
  gather_slot *s = arg;
  gather *g = s->g;
  g->inputs[s->i] = NULL;
  dorm_result r = dorm_result_take(res);
  if (g->done) {
    dorm_result_free(&r);
  } else if (r.kind == DORM_RESULT_ERROR && !(g->flags & DORM_GATHER_ALL)) {
    decide(g, r);
    if (g->flags & DORM_GATHER_CANCEL_REST) {
      if (g->building)
        g->cancel_rest = 1; /* inputs not yet stepped may go if cancelled */
      else
        cancel_unfinished(g);
    }
  } else {
    g->items[s->i] = r;
    if (--g->remaining == 0) {
      dorm_result list = dorm_result_none();
      list.kind = DORM_RESULT_LIST;
      list.u.list.items = g->items;
      list.u.list.n = g->n;
      g->items = NULL;
      decide(g, list);
    }
  }
  unpend(g);
  return dorm_result_none();
}

static void gather_cancel(dorm_deferred *out, void *arg) {
  gather *g = arg;
  (void)out;
  g->pending++; /* guard: the inputs' steps run during the loop below */
  g->done = 1;
  g->out->canceller = NULL;
  cancel_unfinished(g);
  dorm_deferred_fire(g->out, dorm_result_error(DORM_ECANCELED, NULL));
  unpend(g);
}

/* The placeholder each input gets before any step runs: if adding one to
 * a later input fails, the earlier placeholders stay and pass results
 * through untouched, so a failed dorm_gather changes nothing. */
static dorm_result pass_through(dorm_result *res, void *arg) {
  (void)arg;
  return *res;
}

dorm_deferred *dorm_gather(dorm_loop *loop, dorm_deferred *const *ds, size_t n,
                           unsigned flags) {
  if (!loop || (n && !ds)) return NULL;
  for (size_t i = 0; i < n; i++)
    if (!ds[i]) return NULL;
  if (n >
      (SIZE_MAX - sizeof(gather)) /
          (sizeof(gather_slot) + sizeof(dorm_deferred *) + sizeof(dorm_result)))
    return NULL;
  gather *g = dorm__malloc(sizeof *g + n * sizeof(gather_slot) +
                           n * sizeof(dorm_deferred *));
  if (!g) return NULL;
  memset(g, 0, sizeof *g);
  g->inputs = (dorm_deferred **)(void *)(g->slots + n);
  g->items = dorm__malloc(n * sizeof(dorm_result));
  g->out = dorm_deferred_new(gather_cancel, g);
  if (!g->items || !g->out) goto fail;
  for (size_t i = 0; i < n; i++) {
    g->items[i] = dorm_result_none();
    g->inputs[i] = ds[i];
    g->slots[i].g = g;
    g->slots[i].i = i;
  }
  g->loop = loop;
  g->flags = flags;
  g->n = n;
  g->remaining = n;
  /* 1. Room for every step, running nothing. */
  for (size_t i = 0; i < n; i++)
    if (dorm__deferred_push_step(ds[i], pass_through, pass_through,
                                 &g->slots[i]))
      goto fail;
  /* 2. Nothing can fail now: turn the placeholders into gather steps. */
  for (size_t i = 0; i < n; i++) {
    dorm_deferred *d = ds[i];
    for (uint32_t k = d->n; k-- > d->pos;) {
      if (d->steps[k].arg == &g->slots[i]) {
        d->steps[k].cb = d->steps[k].eb = gather_step;
        break;
      }
    }
  }
  /* 3. Inputs that had fired run their step now (only ours: it is last).
   * An outcome decided here is kept for the next turn (rule R2). */
  g->pending = n + 1; /* the steps, and a guard for this function */
  g->building = 1;
  for (size_t i = 0; i < n; i++)
    if (g->inputs[i]) dorm__deferred_kick(g->inputs[i]);
  if (n == 0) { /* nothing to wait for: an empty list */
    dorm_result list = dorm_result_none();
    list.kind = DORM_RESULT_LIST;
    list.u.list.items = g->items;
    g->items = NULL;
    decide(g, list);
  }
  g->building = 0;
  dorm_deferred *out = g->out;
  if (g->cancel_rest) cancel_unfinished(g);
  if (g->have_outcome) {
    g->have_outcome = 0;
    dorm_result r = dorm_result_take(&g->outcome);
    /* A loop that has finished closing cannot defer: firing now breaks R2
     * but still runs every accepted step exactly once. */
    if (dorm__loop_finished(g->loop))
      dorm_deferred_fire(out, r);
    else
      dorm_deferred_fire_soon(g->loop, out, r);
  }
  unpend(g);
  return out;

fail:
  dorm__deferred_destroy(g->out);
  dorm__free(g->items);
  dorm__free(g);
  return NULL;
}
