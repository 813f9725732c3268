/* SPDX-License-Identifier: MIT */
/* reactor_glue/reactor_int.h — private structures of reactor_glue/.
 *
 * The deferred's layout is here (not in the public header) so that
 * deferred.c, gather.c and uv_glue.c can share it while users see an opaque
 * type.  A deferred is one allocation: the current result, the chain (four
 * steps inline, spilling to the heap beyond), the reference count and the
 * flags below.  The loop (uv_glue.c) may ask for extra bytes after the
 * deferred so a thread job needs no second allocation.
 */
#ifndef DORM_REACTOR_INT_H
#define DORM_REACTOR_INT_H

#include <stdint.h>

#include "dorm/deferred.h"
#include "dorm/loop.h"

/* One step of a chain.  The continuation marker (cb == eb ==
 * dorm__continue_marker, arg = the paused deferred) hands the result to a
 * deferred that returned this one from a callback. */
typedef struct dorm__step {
  dorm_callback_fn cb;
  dorm_callback_fn eb;
  void *arg;
} dorm__step;

#define DORM__INLINE_STEPS 4

enum dorm__dflags {
  DORM__FIRED = 1u << 0,       /* has its first result */
  DORM__CANCELLED = 1u << 1,   /* cancel() reached it before it fired */
  DORM__MAKER_FIRED = 1u << 2, /* the maker's fire happened: ref dropped */
  DORM__RUNNING = 1u << 3,     /* on a run stack (its chain is running) */
  DORM__PAUSED = 1u << 4,      /* waiting on `waiting_on` */
  DORM__QUEUED = 1u << 5       /* in a loop's fire-soon queue */
};

struct dorm_deferred {
  dorm_result result; /* current result; for QUEUED, the queued one */
  dorm__step *steps;  /* inline_steps or a heap array */
  uint32_t n, pos, cap;
  uint32_t refs;
  uint32_t flags;
  dorm_canceller_fn canceller;
  void *canceller_arg;
  dorm_deferred *waiting_on; /* PAUSED: the deferred we wait for */
  dorm_deferred *run_next;   /* next lower entry of the run stack */
  dorm_deferred *soon_next;  /* next in the loop's fire-soon queue */
  dorm__step inline_steps[DORM__INLINE_STEPS];
};

/* deferred.c */
dorm_result dorm__continue_marker(dorm_result *res, void *arg);
/* dorm_deferred_new with `extra` bytes after the deferred, 16-byte aligned,
 * returned in *extra_out; they live as long as the deferred. */
dorm_deferred *dorm__deferred_new_ex(dorm_canceller_fn canceller, void *arg,
                                     size_t extra, void **extra_out);
/* Free a deferred that was never fired nor handed to anyone (no steps run,
 * nothing reported). */
void dorm__deferred_destroy(dorm_deferred *d);
/* The maker's fire for a deferred taken off the fire-soon queue. */
void dorm__deferred_fire_queued(dorm_deferred *d);
/* Append a step; runs nothing.  0 or DORM_ENOMEM. */
int dorm__deferred_push_step(dorm_deferred *d, dorm_callback_fn cb,
                             dorm_callback_fn eb, void *arg);

/* dorm_deferred_cancel(d) for a timeout: cancellers see
 * dorm_deferred_cancel_is_timeout() == 1. */
void dorm__deferred_cancel_timeout(dorm_deferred *d);

/* The maker gives d up: its canceller (and the canceller's argument, which
 * the maker may free now) is never called again.  A cancel of d still
 * fails d with DORM_ECANCELED if d has not fired. */
void dorm__deferred_forget_canceller(dorm_deferred *d);

/* Run d's chain now if d has fired and its chain is idle. */
void dorm__deferred_kick(dorm_deferred *d);

/* result.c */
/* Do a and b own the same payload (so replacing a by b frees nothing)? */
int dorm__result_same_payload(const dorm_result *a, const dorm_result *b);

/* uv_glue.c: every uv handle the glue opens is tracked on its loop so that
 * dorm_loop_close can close what the user left open. */
/* Has the loop begun its very last close step (fire-soon refused)? */
int dorm__loop_finished(const dorm_loop *loop);

typedef struct dorm__handle {
  struct dorm__handle *prev, *next;
  dorm_loop *loop;
  void (*close)(struct dorm__handle *h); /* as the public close function */
} dorm__handle;

#endif /* DORM_REACTOR_INT_H */
