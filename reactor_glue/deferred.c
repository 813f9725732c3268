/* SPDX-License-Identifier: MIT */
/* reactor_glue/deferred.c — the deferred: a result that arrives later and
 * the chain of callbacks it runs through (Twisted's Deferred, in C).
 *
 * The chain runs in run(): an explicit stack of deferreds, linked through
 * their run_next field, replaces recursion.  When a callback returns a
 * deferred that has not got its result, the running deferred pauses and
 * appends a continuation marker step to the other one; when that marker is
 * reached, the result moves back and the paused deferred is pushed on the
 * stack and resumed in the same loop.  So 100,000 deferreds waiting on each
 * other unwind with constant C stack (Twisted's _runCallbacks does the
 * same).  A deferred is freed when its chain is idle (not running, not
 * paused), it has fired and no reference is left; frees requested from
 * inside a callback therefore wait for the chain to stop.  Every function
 * here runs on the loop thread only.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/base_int.h"
#include "reactor_glue/reactor_int.h"

/* ---- unhandled errors ---- */

static void default_unhandled(const dorm_result *err, void *arg) {
  (void)arg;
  const char *ss = dorm_result_sqlstate(err);
  fprintf(stderr, "dorm: Unhandled error in Deferred: %s: %s%s%s%s\n",
          dorm_err_name(dorm_result_code(err)), dorm_result_message(err),
          ss[0] ? " (SQLSTATE " : "", ss, ss[0] ? ")" : "");
}

static dorm_unhandled_error_fn g_unhandled = default_unhandled;
static void *g_unhandled_arg;

void dorm_set_unhandled_error_hook(dorm_unhandled_error_fn fn, void *arg) {
  g_unhandled = fn ? fn : default_unhandled;
  g_unhandled_arg = fn ? arg : NULL;
}

/* ---- creation and freeing ---- */

/* Never called: its address marks a continuation step. */
dorm_result dorm__continue_marker(dorm_result *res, void *arg) {
  (void)arg;
  return *res;
}

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

static void init(dorm_deferred *d, dorm_canceller_fn canceller, void *arg) {
  /* Field by field rather than memset: the inline steps need no zeroing,
   * and this is the hot path of every query. */
  d->result = dorm_result_none();
  d->steps = d->inline_steps;
  d->n = d->pos = 0;
  d->cap = DORM__INLINE_STEPS;
  d->refs = 1; /* the maker's */
  d->flags = 0;
  d->canceller = canceller;
  d->canceller_arg = arg;
  d->waiting_on = NULL;
  d->run_next = NULL;
  d->soon_next = NULL;
}

dorm_deferred *dorm_deferred_new(dorm_canceller_fn canceller,
                                 void *canceller_arg) {
  dorm_deferred *d = dorm__malloc(sizeof *d);
  if (!d) return NULL;
  init(d, canceller, canceller_arg);
  return d;
}

dorm_deferred *dorm__deferred_new_ex(dorm_canceller_fn canceller, void *arg,
                                     size_t extra, void **extra_out) {
  size_t base = ALIGN16(sizeof(dorm_deferred));
  if (extra > SIZE_MAX - base) return NULL;
  dorm_deferred *d = dorm__malloc(base + extra);
  if (!d) return NULL;
  init(d, canceller, arg);
  *extra_out = (char *)d + base;
  return d;
}

static void free_deferred(dorm_deferred *d) {
  if (d->result.kind == DORM_RESULT_ERROR)
    g_unhandled(&d->result, g_unhandled_arg);
  dorm_result_free(&d->result);
  if (d->steps != d->inline_steps) dorm__free(d->steps);
  dorm__free(d);
}

void dorm__deferred_destroy(dorm_deferred *d) {
  if (!d) return;
  dorm_result_free(&d->result);
  if (d->steps != d->inline_steps) dorm__free(d->steps);
  dorm__free(d);
}

static void resolve(dorm_deferred *d, dorm_result r);

/* Free d if nothing can reach it any more. */
static void maybe_free(dorm_deferred *d) {
  if (d->refs || (d->flags & (DORM__RUNNING | DORM__PAUSED))) return;
  if (!(d->flags & DORM__FIRED)) {
    /* The last reference went without a fire (a maker gave up): fire it so
     * every accepted step still runs once (rule R3 of dorm/deferred.h). */
    d->refs++;
    resolve(d, dorm_result_error(DORM_ECANCELED,
                                 "deferred released without being fired"));
    if (--d->refs || (d->flags & (DORM__RUNNING | DORM__PAUSED))) return;
  }
  free_deferred(d);
}

dorm_deferred *dorm_deferred_retain(dorm_deferred *d) {
  if (d) d->refs++;
  return d;
}

void dorm_deferred_release(dorm_deferred *d) {
  if (!d) return;
  assert(d->refs > 0);
  if (d->refs == 0) return; /* misuse; never underflow */
  if (--d->refs == 0) maybe_free(d);
}

/* ---- the chain ---- */

int dorm__deferred_push_step(dorm_deferred *d, dorm_callback_fn cb,
                             dorm_callback_fn eb, void *arg) {
  if (d->pos == d->n) {
    d->pos = d->n = 0; /* everything ran: reuse the space from the start */
  } else if (d->n == d->cap && d->pos > 0) {
    /* Slide the steps still to run down rather than grow. */
    memmove(d->steps, d->steps + d->pos, (d->n - d->pos) * sizeof *d->steps);
    d->n -= d->pos;
    d->pos = 0;
  }
  if (d->n == d->cap) {
    if (d->cap > UINT32_MAX / 2) return DORM_ENOMEM;
    uint32_t cap = d->cap * 2;
    dorm__step *s;
    if (d->steps == d->inline_steps) {
      s = dorm__malloc(cap * sizeof *s);
      if (s) memcpy(s, d->steps, d->n * sizeof *s);
    } else {
      s = dorm__realloc(d->steps, cap * sizeof *s);
    }
    if (!s) return DORM_ENOMEM;
    d->steps = s;
    d->cap = cap;
  }
  dorm__step *st = &d->steps[d->n++];
  st->cb = cb;
  st->eb = eb;
  st->arg = arg;
  return 0;
}

/* The callback running `cur` returned `inner`: make cur go on with inner's
 * result.  Returns 1 if cur must pause (a continuation was added to inner),
 * 0 if cur->result has been set and its chain can go on at once. */
static int chain_to(dorm_deferred *cur, dorm_deferred *inner) {
  if (!inner || inner == cur) {
    cur->result = dorm_result_error(
        DORM_EINVAL, "a callback returned its own deferred (or NULL)");
    return 0;
  }
  for (dorm_deferred *x = inner->waiting_on; x; x = x->waiting_on) {
    if (x == cur) {
      cur->result = dorm_result_error(
          DORM_EINVAL, "a callback returned a deferred that waits on it");
      return 0;
    }
  }
  if ((inner->flags & DORM__FIRED) &&
      !(inner->flags & (DORM__RUNNING | DORM__PAUSED)) &&
      inner->pos == inner->n) {
    /* Already has its final result (the caller holds a reference to it):
     * take the result, as Twisted leaves None behind. */
    cur->result = dorm_result_take(&inner->result);
    return 0;
  }
  if (dorm__deferred_push_step(inner, dorm__continue_marker,
                               dorm__continue_marker, cur)) {
    cur->result = dorm_result_error(DORM_ENOMEM, NULL);
    return 0;
  }
  cur->waiting_on = inner;
  return 1;
}

/* Run d's chain and, through continuations, the chains of the deferreds
 * that wait on it. */
static void run(dorm_deferred *d) {
  if (d->flags & (DORM__RUNNING | DORM__PAUSED)) return; /* picked up there */
  d->flags |= DORM__RUNNING;
  d->run_next = NULL;
  dorm_deferred *top = d;
  while (top) {
    dorm_deferred *cur = top;
    dorm_deferred *resume = NULL;
    int paused = 0;
    while (cur->pos < cur->n) {
      dorm__step s = cur->steps[cur->pos++]; /* copy: steps may move */
      if (s.cb == dorm__continue_marker) {
        resume = s.arg;
        resume->result = dorm_result_take(&cur->result);
        resume->waiting_on = NULL;
        resume->flags &= ~DORM__PAUSED;
        break;
      }
      dorm_callback_fn fn = cur->result.kind == DORM_RESULT_ERROR ? s.eb : s.cb;
      if (!fn) continue;
      dorm_result next = fn(&cur->result, s.arg);
      if (!dorm__result_same_payload(&cur->result, &next))
        dorm_result_free(&cur->result);
      if (next.kind == DORM_RESULT_DEFERRED) {
        cur->result = dorm_result_none();
        if (chain_to(cur, next.u.deferred)) {
          paused = 1;
          break;
        }
      } else {
        cur->result = next;
      }
    }
    if (resume && cur->pos < cur->n) {
      /* cur still has steps (added after it was returned from a callback):
       * it stays on the stack under the resumed deferred. */
      resume->run_next = cur;
      resume->flags |= DORM__RUNNING;
      top = resume;
      continue;
    }
    top = cur->run_next;
    cur->run_next = NULL;
    cur->flags &= ~DORM__RUNNING;
    if (paused) {
      cur->flags |= DORM__PAUSED;
    } else {
      maybe_free(cur);
    }
    if (resume) {
      resume->run_next = top;
      resume->flags |= DORM__RUNNING;
      top = resume;
    }
  }
}

static void resolve(dorm_deferred *d, dorm_result r) {
  d->result = r;
  d->flags |= DORM__FIRED;
  run(d);
}

void dorm__deferred_kick(dorm_deferred *d) {
  if ((d->flags & DORM__FIRED) &&
      !(d->flags & (DORM__RUNNING | DORM__PAUSED))) {
    d->refs++; /* the caller's view of d must survive the run */
    run(d);
    dorm_deferred_release(d);
  }
}

int dorm_deferred_add_callbacks(dorm_deferred *d, dorm_callback_fn callback,
                                dorm_callback_fn errback, void *arg) {
  if (!d || (!callback && !errback)) return DORM_EINVAL;
  int rc = dorm__deferred_push_step(d, callback, errback, arg);
  if (rc) return rc;
  dorm__deferred_kick(d);
  return 0;
}

int dorm_deferred_add_callback(dorm_deferred *d, dorm_callback_fn cb,
                               void *arg) {
  if (!cb) return DORM_EINVAL;
  return dorm_deferred_add_callbacks(d, cb, NULL, arg);
}

int dorm_deferred_add_errback(dorm_deferred *d, dorm_callback_fn eb,
                              void *arg) {
  if (!eb) return DORM_EINVAL;
  return dorm_deferred_add_callbacks(d, NULL, eb, arg);
}

int dorm_deferred_add_both(dorm_deferred *d, dorm_callback_fn fn, void *arg) {
  if (!fn) return DORM_EINVAL;
  return dorm_deferred_add_callbacks(d, fn, fn, arg);
}

/* ---- firing ---- */

static int maker_fire(dorm_deferred *d, dorm_result r) {
  int rc = 0;
  d->flags |= DORM__MAKER_FIRED;
  if (r.kind == DORM_RESULT_DEFERRED) {
    r = dorm_result_error(DORM_EINVAL,
                          "a deferred cannot fire with a deferred");
    rc = DORM_EINVAL;
  }
  if (d->flags & DORM__FIRED)
    dorm_result_free(&r); /* cancelled earlier: ignored, as in Twisted */
  else
    resolve(d, r);
  dorm_deferred_release(d); /* the maker's reference */
  return rc;
}

int dorm_deferred_fire(dorm_deferred *d, dorm_result result) {
  if (!d) {
    dorm_result_free(&result);
    return DORM_EINVAL;
  }
  if (d->flags & (DORM__MAKER_FIRED | DORM__QUEUED)) {
    dorm_result_free(&result);
    return DORM_ESTATE;
  }
  return maker_fire(d, result);
}

void dorm__deferred_fire_queued(dorm_deferred *d) {
  d->flags &= ~DORM__QUEUED;
  if (d->flags & DORM__FIRED) { /* cancelled while queued */
    d->flags |= DORM__MAKER_FIRED;
    dorm_deferred_release(d);
    return;
  }
  maker_fire(d, dorm_result_take(&d->result));
}

/* The cancel about to start comes from a timeout; and while a canceller
 * runs, whether its cancel does (loop thread: one of each per thread). */
static _Thread_local int g_next_is_timeout, g_timing_out;

int dorm_deferred_cancel_is_timeout(void) { return g_timing_out; }

void dorm__deferred_cancel_timeout(dorm_deferred *d) {
  g_next_is_timeout = 1;
  dorm_deferred_cancel(d);
}

void dorm_deferred_cancel(dorm_deferred *d) {
  /* a cancel made by a timeout's canceller is part of that timeout */
  int timeout = g_next_is_timeout || g_timing_out;
  g_next_is_timeout = 0;
  if (!d) return;
  if (d->flags & DORM__FIRED) {
    /* Fired and paused: cancel what the chain waits for (the innermost
     * unfired one), as Twisted cancels self.result. */
    dorm_deferred *x = d;
    while ((x->flags & DORM__FIRED) && (x->flags & DORM__PAUSED) &&
           x->waiting_on)
      x = x->waiting_on;
    if (x->flags & DORM__FIRED) return;
    d = x;
  }
  d->flags |= DORM__CANCELLED;
  d->refs++; /* the canceller may fire d, whose chain may drop the rest */
  if (d->canceller) {
    int was = g_timing_out;
    g_timing_out = timeout;
    d->canceller(d, d->canceller_arg);
    g_timing_out = was;
  }
  if (!(d->flags & DORM__FIRED)) {
    if (d->flags & DORM__QUEUED) dorm_result_free(&d->result);
    resolve(d, dorm_result_error(DORM_ECANCELED, NULL));
  }
  dorm_deferred_release(d);
}

void dorm__deferred_forget_canceller(dorm_deferred *d) {
  d->canceller = NULL;
  d->canceller_arg = NULL;
}

int dorm_deferred_fired(const dorm_deferred *d) {
  return d && (d->flags & DORM__FIRED) ? 1 : 0;
}

const dorm_result *dorm_deferred_result(const dorm_deferred *d) {
  if (!d || !(d->flags & DORM__FIRED) || (d->flags & DORM__PAUSED)) return NULL;
  return &d->result;
}
