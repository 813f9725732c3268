/* SPDX-License-Identifier: MIT */
/* dorm/deferred.h — deferreds: results that arrive later, and the chain of
 * callbacks they pass through.
 *
 * Every dorm operation that does I/O (a query, a transaction, a job on a
 * worker thread) returns at once with a dorm_deferred: an object that will
 * hold the operation's result, plus a chain of functions you attach to it.
 * When the result arrives ("the deferred fires"), it is passed through the
 * chain in order.  The idea comes from Twisted (Python); no knowledge of it
 * is needed to read this page.
 *
 * 1. THE CHAIN
 *
 *   Each step of the chain is a pair (callback, errback); either may be
 *   NULL.  The chain carries one current result.  At each step, if the
 *   current result is an error the step's errback runs, otherwise its
 *   callback runs; a step without the matching function is skipped.  The
 *   function receives the current result and returns the next one:
 *
 *     - return a success result (not an error): the following steps see a
 *       success.  An errback that does this has "recovered" the error;
 *     - return an error result (dorm_result_error...): the following steps
 *       see an error, so the next errback runs.  A callback that does this
 *       has "failed";
 *     - return dorm_result_deferred(other): the chain pauses until `other`
 *       has its own result, then goes on with that result (chaining: this
 *       is how "run query A, then query B with what A returned" is
 *       written).  No reference to `other` is handed over: it stays alive
 *       until it has fired and run its chain anyway.  Chains of any length
 *       unwind in a loop, never by recursion, so depth costs no stack.
 *
 *     dorm_deferred *d = dorm_async_get(db, q);   // a borrowed pointer
 *     dorm_deferred_add_callback(d, print_author, ctx);  // step 1
 *     dorm_deferred_add_errback(d, log_error, ctx);      // step 2
 *     return;  // back to the loop: d fires later, runs both steps, frees
 *
 *   Here print_author runs on success, then log_error is skipped; on
 *   failure print_author is skipped and log_error runs.  With
 *   dorm_deferred_add_callbacks(d, cb, eb, arg) the pair shares one step:
 *   exactly one of cb and eb runs, and an error raised by cb is NOT seen by
 *   eb (it goes to the next step's errback).  dorm_deferred_add_both(d, fn,
 *   arg) runs fn whatever the result (a "finally").
 *
 *   Steps added after the deferred fired run at once, inside the add call,
 *   in order.
 *
 * 2. RESULTS AND WHO OWNS THEM
 *
 *   A dorm_result is a small tagged value (kind + payload, see below):
 *   nothing, rows, one row, a count, a dorm_value, a user pointer, a list
 *   of results (from dorm_gather), or an error (code from DORM_ERRNO_MAP,
 *   message, SQLSTATE).  Payloads that own memory carry the function that
 *   frees them, supplied by whoever made the result.
 *
 *   The chain owns the current result.  A callback BORROWS it for the
 *   duration of the call (the pointer it receives is valid until it
 *   returns) and gives the chain a new one by returning it:
 *     - returning the result it was given (`return *res;`) passes it on;
 *     - returning anything else makes the chain free the old result once
 *       the callback has returned;
 *     - to keep the old result's payload past the callback, move it out
 *       with dorm_result_take(res) first: you then own it and free it with
 *       dorm_result_free() when done;
 *     - the last result is freed when the deferred is freed.
 *   So the common case needs no free at all: read the rows in a callback,
 *   return dorm_result_none() (or pass them on), and the chain frees them.
 *   A result you build yourself and never hand to a chain is yours to
 *   dorm_result_free().
 *
 * 3. LIFETIME AND REFERENCES
 *
 *   A deferred is one allocation (space for four steps is inline; longer
 *   chains spill to the heap).  It frees itself once it has fired, its
 *   chain has run to the end, and nobody holds a reference to it.
 *   - The pointer an async call returns is BORROWED: use it to add steps
 *     (or to cancel) before you return to the loop; after that it may be
 *     gone.  This is the common case and needs no release.
 *   - To keep it longer (to cancel it later, to add steps later, to read
 *     its result), take a reference with dorm_deferred_retain() and drop it
 *     with dorm_deferred_release().
 *   - Whoever made the deferred with dorm_deferred_new() holds one
 *     reference, given back by dorm_deferred_fire().
 *   Freeing from inside one of its own callbacks is safe: the free waits
 *   until the chain stops running.
 *
 * 4. ERRORS NOBODY HANDLED
 *
 *   If a deferred is freed while its result is an error (no errback
 *   recovered it), the error is reported through the hook set with
 *   dorm_set_unhandled_error_hook(), by default one line on stderr:
 *     dorm: Unhandled error in Deferred: DORM_ECONN: connection refused
 *   End chains that can fail with an errback.
 *
 * 5. CANCEL AND TIMEOUT
 *
 *   dorm_deferred_cancel(d) asks for the work behind d to stop: the
 *   canceller given to dorm_deferred_new() runs (it may fire d itself), and
 *   if d has still not fired, it fires with a DORM_ECANCELED error.  If d
 *   has fired and is paused waiting for another deferred, that one is
 *   cancelled instead.  Cancelling an already fired deferred, or twice, does
 *   nothing.  dorm_deferred_set_timeout() cancels d after N ms and turns the
 *   DORM_ECANCELED into DORM_ETIMEDOUT.
 *
 * 6. RULES (the library keeps them; makers of deferreds must too)
 *
 *   R1. Results and callbacks only ever run on the loop thread; every
 *       function in this header is called on the loop thread only (work
 *       handed to other threads goes through dorm_run_in_thread in
 *       dorm/loop.h, which fires its deferred on the loop thread).
 *   R2. A deferred returned by an async call never fires before that call
 *       has returned, so steps you add right after the call never run
 *       inside it.  (A maker that knows its result at once uses
 *       dorm_deferred_fire_soon(), in dorm/loop.h.)
 *   R3. A step that was accepted (its add function returned 0) runs exactly
 *       once.  When an add function returns an error, that step never runs
 *       (libuv's rule: when a function that takes a callback fails, the
 *       callback is never called).  Makers fire every deferred exactly
 *       once, even after it was cancelled; a closed database or a lost
 *       connection errbacks everything pending.
 *
 * 7. MAKING DEFERREDS (for backends and libraries)
 *
 *     dorm_deferred *d = dorm_deferred_new(my_cancel, job);  // you hold 1
 *     ... start the work, return d to your caller ...
 *     // later, on the loop thread, exactly once:
 *     dorm_deferred_fire(d, dorm_result_count(n));  // your reference goes
 */
#ifndef DORM_DEFERRED_H
#define DORM_DEFERRED_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dorm/version.h"
#include "dorm/error.h"
#include "dorm/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dorm_deferred dorm_deferred;
struct dorm_loop; /* dorm/loop.h */

/* Rows and a single row are defined by the database backends; here they
 * travel as opaque pointers with the destructor their maker supplied. */
struct dorm_rows;
struct dorm_row;

/* ---------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------- */

typedef enum dorm_result_kind {
  DORM_RESULT_NONE = 0, /* nothing (an UPDATE with no count, a recovery) */
  DORM_RESULT_ROWS,     /* u.rows: a result set */
  DORM_RESULT_ROW,      /* u.row: one row (get(), first()) */
  DORM_RESULT_COUNT,    /* u.count: rows affected, count() */
  DORM_RESULT_VALUE,    /* u.value: one dorm_value (a scalar query) */
  DORM_RESULT_PTR,      /* u.ptr: anything else, with its destructor */
  DORM_RESULT_LIST,     /* u.list: results of dorm_gather, in order */
  DORM_RESULT_ERROR,    /* u.error: code, message, SQLSTATE */
  DORM_RESULT_DEFERRED  /* u.deferred: only as a callback's return value:
                           "wait for this deferred" (see section 1) */
} dorm_result_kind;

typedef struct dorm_result {
  dorm_result_kind kind;
  union {
    struct {
      struct dorm_rows *rows;
      void (*free)(struct dorm_rows *rows); /* NULL: borrowed */
    } rows;
    struct {
      struct dorm_row *row;
      void (*free)(struct dorm_row *row); /* NULL: borrowed */
    } row;
    int64_t count;
    struct {
      /* The value's strings (and list items) point into memory that `owner`
       * keeps alive; owner is freed with free(owner) when the result is
       * freed.  owner NULL: the strings are borrowed and must outlive the
       * chain (string literals, or memory you free yourself later). */
      dorm_value v;
      void *owner;
      void (*free)(void *owner);
    } value;
    struct {
      void *ptr;
      void (*free)(void *ptr); /* NULL: borrowed */
    } ptr;
    struct {
      struct dorm_result *items; /* owned, n results */
      size_t n;
    } list;
    struct {
      int code;         /* DORM_E*, always < 0 */
      char sqlstate[6]; /* five characters and NUL, or "" */
      char *message;    /* owned; NULL means dorm_strerror(code) */
    } error;
    dorm_deferred *deferred;
  } u;
} dorm_result;

/* Constructors.  None of them can fail: the ones that allocate return an
 * error result (code DORM_ENOMEM, or the error's code without its message)
 * when memory runs out, so a callback can always return what they give. */

static inline dorm_result dorm_result_none(void) {
  dorm_result r;
  memset(&r, 0, sizeof r);
  return r;
}
/* rows: the chain owns them and calls free_fn(rows) when done with them;
 * free_fn NULL means the rows are borrowed and must outlive the chain. */
static inline dorm_result dorm_result_rows(
    struct dorm_rows *rows, void (*free_fn)(struct dorm_rows *)) {
  dorm_result r = dorm_result_none();
  r.kind = DORM_RESULT_ROWS;
  r.u.rows.rows = rows;
  r.u.rows.free = free_fn;
  return r;
}
/* One row, owned as for dorm_result_rows. */
static inline dorm_result dorm_result_row(struct dorm_row *row,
                                          void (*free_fn)(struct dorm_row *)) {
  dorm_result r = dorm_result_none();
  r.kind = DORM_RESULT_ROW;
  r.u.row.row = row;
  r.u.row.free = free_fn;
  return r;
}
static inline dorm_result dorm_result_count(int64_t n) {
  dorm_result r = dorm_result_none();
  r.kind = DORM_RESULT_COUNT;
  r.u.count = n;
  return r;
}
/* A value whose strings are borrowed (literals, or memory that outlives the
 * chain).  Use dorm_result_value_copy when they do not. */
static inline dorm_result dorm_result_value(dorm_value v) {
  dorm_result r = dorm_result_none();
  r.kind = DORM_RESULT_VALUE;
  r.u.value.v = v;
  return r;
}
/* A value whose strings live in `owner`; the chain calls free_fn(owner)
 * when done (free_fn may be NULL if owner needs no freeing). */
static inline dorm_result dorm_result_value_owned(dorm_value v, void *owner,
                                                  void (*free_fn)(void *)) {
  dorm_result r = dorm_result_value(v);
  r.u.value.owner = owner;
  r.u.value.free = free_fn;
  return r;
}
/* A user pointer; the chain calls free_fn(p) when done (NULL: borrowed). */
static inline dorm_result dorm_result_ptr(void *p, void (*free_fn)(void *)) {
  dorm_result r = dorm_result_none();
  r.kind = DORM_RESULT_PTR;
  r.u.ptr.ptr = p;
  r.u.ptr.free = free_fn;
  return r;
}
/* Only as a callback's return value: "continue with d's result" (section
 * 1).  d is borrowed: it must not have been freed, i.e. either it has not
 * fired yet or you hold a reference to it. */
static inline dorm_result dorm_result_deferred(dorm_deferred *d) {
  dorm_result r = dorm_result_none();
  r.kind = DORM_RESULT_DEFERRED;
  r.u.deferred = d;
  return r;
}

/* A value whose strings and list items are copied into one allocation the
 * result owns.  DORM_T_EXPR values cannot be copied (DORM_EINVAL error). */
DORM_EXTERN dorm_result dorm_result_value_copy(dorm_value v);

/* An error with code (a DORM_E* code < 0; anything else becomes
 * DORM_EINVAL) and a printf-style message (fmt NULL: dorm_strerror(code)).
 * The message is copied. */
DORM_EXTERN dorm_result dorm_result_error(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The same with a SQLSTATE (five characters; NULL or "" for none). */
DORM_EXTERN dorm_result dorm_result_error_sql(int code, const char *sqlstate,
                                              const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* An error result from a dorm_error (code, message and SQLSTATE copied;
 * err is not changed).  err->code 0 gives DORM_EINVAL. */
DORM_EXTERN dorm_result dorm_result_error_from(const dorm_error *err);

/* Inspecting. */
static inline int dorm_result_is_error(const dorm_result *r) {
  return r->kind == DORM_RESULT_ERROR;
}
/* The error code, or 0 when r is not an error. */
static inline int dorm_result_code(const dorm_result *r) {
  return r->kind == DORM_RESULT_ERROR ? r->u.error.code : 0;
}
/* The error message ("" when r is not an error); valid as long as r. */
DORM_EXTERN const char *dorm_result_message(const dorm_result *r);
/* The SQLSTATE ("" when none); valid as long as r. */
DORM_EXTERN const char *dorm_result_sqlstate(const dorm_result *r);
/* Copy an error result into a dorm_error (cleared first; left cleared when
 * r is not an error).  Returns the code (0 when not an error). */
DORM_EXTERN int dorm_result_to_error(const dorm_result *r, dorm_error *out);

/* Move the result out of *r, leaving DORM_RESULT_NONE there: the caller now
 * owns what is returned.  This is how a callback keeps rows past its return
 * while returning something else to the chain. */
static inline dorm_result dorm_result_take(dorm_result *r) {
  dorm_result t = *r;
  *r = dorm_result_none();
  return t;
}
/* Free what *r owns (calling the destructors it carries) and set it to
 * DORM_RESULT_NONE.  Only for results you own: taken out of a chain, or
 * built and never handed to one.  r may be NULL. */
DORM_EXTERN void dorm_result_free(dorm_result *r);

/* ---------------------------------------------------------------------
 * Deferreds: using them
 * ------------------------------------------------------------------- */

/* A step of the chain.  `res` is the current result, borrowed until the
 * function returns; `arg` is what was given to the add function.  Return
 * the next result (section 2); returning *res passes it on. */
typedef dorm_result (*dorm_callback_fn)(dorm_result *res, void *arg);

/* Append one step (callback, errback) to d's chain; either may be NULL,
 * not both.  arg is passed through untouched (dorm never frees it; free it
 * in the step itself, which runs exactly once).  If d has fired and is not
 * waiting on another deferred, the step runs before this returns.
 * Returns 0 (accepted: it will run exactly once), DORM_EINVAL, or
 * DORM_ENOMEM (only beyond four steps; not accepted: it will never run). */
DORM_EXTERN int dorm_deferred_add_callbacks(dorm_deferred *d,
                                            dorm_callback_fn callback,
                                            dorm_callback_fn errback,
                                            void *arg);
/* A step that runs only on success. */
DORM_EXTERN int dorm_deferred_add_callback(dorm_deferred *d,
                                           dorm_callback_fn cb, void *arg);
/* A step that runs only on error. */
DORM_EXTERN int dorm_deferred_add_errback(dorm_deferred *d, dorm_callback_fn eb,
                                          void *arg);
/* A step that runs in both cases (fn is callback and errback). */
DORM_EXTERN int dorm_deferred_add_both(dorm_deferred *d, dorm_callback_fn fn,
                                       void *arg);

/* Take a reference: d stays allocated until the matching release, even
 * after its chain has run.  Returns d. */
DORM_EXTERN dorm_deferred *dorm_deferred_retain(dorm_deferred *d);
/* Drop a reference taken with dorm_deferred_retain (or the maker's, when a
 * maker gives up without firing: see dorm_deferred_new).  d may be NULL. */
DORM_EXTERN void dorm_deferred_release(dorm_deferred *d);

/* Ask the work behind d to stop (section 5).  Harmless on a fired deferred
 * and when called twice.  Steps may run before this returns. */
DORM_EXTERN void dorm_deferred_cancel(dorm_deferred *d);

/* For a canceller (dorm_canceller_fn): 1 when the cancel it is running for
 * comes from a timeout (dorm_deferred_set_timeout), 0 for
 * dorm_deferred_cancel; 0 outside a canceller.  A maker that records why
 * its work stopped (a transaction: the first error of the block) can say
 * DORM_ETIMEDOUT rather than DORM_ECANCELED. */
DORM_EXTERN int dorm_deferred_cancel_is_timeout(void);

/* Has d fired (got its first result)? */
DORM_EXTERN int dorm_deferred_fired(const dorm_deferred *d);
/* The current result of a fired deferred whose chain is not paused (NULL
 * otherwise).  Borrowed: valid until the next call on d.  Handy with a
 * retained deferred whose chain has run. */
DORM_EXTERN const dorm_result *dorm_deferred_result(const dorm_deferred *d);

/* Fail d with DORM_ETIMEDOUT if it has not got its result within `ms`
 * milliseconds: d is cancelled (so the work behind it is stopped) and the
 * DORM_ECANCELED that reaches this point of the chain becomes
 * DORM_ETIMEDOUT.  Like a step, the timeout is placed at the current end of
 * the chain: steps added before it see DORM_ECANCELED.  Does nothing if d
 * already has its result.  The timer belongs to `loop` and is closed by the
 * time d's chain passes this point, or by dorm_loop_close.  Returns 0,
 * DORM_EINVAL or DORM_ENOMEM (no timeout set). */
DORM_EXTERN int dorm_deferred_set_timeout(dorm_deferred *d,
                                          struct dorm_loop *loop, uint64_t ms);

/* ---------------------------------------------------------------------
 * Gather: wait for several deferreds
 * ------------------------------------------------------------------- */

enum dorm_gather_flags {
  /* Default: succeed with a DORM_RESULT_LIST of every result in input order
   * once all have succeeded; fail with the first error as soon as one
   * fails (the others go on; their results are discarded). */
  DORM_GATHER_FIRST_ERROR = 0,
  /* Collect every outcome, successes and errors, in input order (Twisted's
   * DeferredList): the gather itself always succeeds with the list;
   * inspect each item with dorm_result_is_error. */
  DORM_GATHER_ALL = 1,
  /* With the default mode: on the first error, cancel the inputs that have
   * not finished yet. */
  DORM_GATHER_CANCEL_REST = 2
};

/* A deferred that fires when the n deferreds in ds have (see the flags).
 * Each input's result is moved into the list at the point its chain had
 * reached when dorm_gather was called: steps added to an input afterwards
 * see DORM_RESULT_NONE.  Errors collected this way are not reported as
 * unhandled by the inputs.  The array ds is read during the call only;
 * inputs that have fired must be held by a reference of yours.
 * Cancelling the gather cancels every unfinished input and fails the gather
 * with DORM_ECANCELED.  Per R2 the gather never fires before this returns,
 * even with n == 0 or inputs that had fired: it then fires on the next turn
 * of `loop`.  Returns a borrowed deferred, or NULL (DORM_EINVAL or out of
 * memory; then no step was added to any input). */
DORM_EXTERN dorm_deferred *dorm_gather(struct dorm_loop *loop,
                                       dorm_deferred *const *ds, size_t n,
                                       unsigned flags);

/* ---------------------------------------------------------------------
 * Deferreds: making them
 * ------------------------------------------------------------------- */

/* Runs when the deferred is cancelled before it fired; `arg` is the
 * canceller_arg given to dorm_deferred_new.  It should stop the work; it
 * may fire d itself (then that result is used), and otherwise d fires with
 * DORM_ECANCELED right after it returns.  The maker calls
 * dorm_deferred_fire exactly once in all: inside the canceller, or later
 * when its work ends (that late result is then freed and ignored). */
typedef void (*dorm_canceller_fn)(dorm_deferred *d, void *arg);

/* A new, unfired deferred.  The caller (the maker) holds one reference,
 * given back by dorm_deferred_fire.  canceller may be NULL.  Returns NULL
 * when out of memory.  One allocation. */
DORM_EXTERN dorm_deferred *dorm_deferred_new(dorm_canceller_fn canceller,
                                             void *canceller_arg);

/* Fire d with `result` (an error result runs the errbacks) and drop the
 * maker's reference.  Ownership of result passes to d in every case.  If d
 * was cancelled (it has fired with DORM_ECANCELED already), result is freed
 * and ignored and 0 is returned.  Steps run before this returns.  Returns
 * 0, or DORM_ESTATE if d had already been fired by this function (result
 * freed, no reference dropped), or DORM_EINVAL for a DORM_RESULT_DEFERRED
 * result (freed as an error: d fails with DORM_EINVAL). */
DORM_EXTERN int dorm_deferred_fire(dorm_deferred *d, dorm_result result);

/* ---------------------------------------------------------------------
 * Unhandled errors
 * ------------------------------------------------------------------- */

/* Called with the final result (an error) of a deferred being freed; the
 * result is borrowed for the call. */
typedef void (*dorm_unhandled_error_fn)(const dorm_result *err, void *arg);
/* Set the process-wide hook (NULL restores the default: one line on
 * stderr).  Set it before using deferreds, not while a loop runs. */
DORM_EXTERN void dorm_set_unhandled_error_hook(dorm_unhandled_error_fn fn,
                                               void *arg);

#ifdef __cplusplus
}
#endif
#endif /* DORM_DEFERRED_H */
