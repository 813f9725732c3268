/* SPDX-License-Identifier: MIT */
/* dorm/loop.h — dorm on a libuv loop: socket watchers, timers, jobs on
 * worker threads, wake-ups from other threads, and closing it all.
 *
 * A dorm_loop is dorm's state attached to one uv_loop_t that you own and
 * run.  Everything below belongs to a dorm_loop and is used on the thread
 * that runs it (the loop thread), except dorm_wakeup_send, which any thread
 * may call, and the work function of dorm_run_in_thread, which runs on a
 * worker thread.  Callbacks always run on the loop thread.
 *
 * Closing.  Each handle has a close function; closing is asynchronous (the
 * memory goes in a later loop turn, through uv_close), but it is immediate
 * for you: once dorm_X_close returns, that handle's callback never runs
 * again and its arg may be freed.  dorm_loop_close closes every handle of
 * the loop that is still open and, once the last one is gone and every job
 * has come back from its thread, frees the dorm_loop and calls your close
 * callback.  After that no dorm handle is left on the uv loop: uv_run
 * returns (if nothing of yours keeps it alive) and uv_loop_close succeeds.
 *
 *     uv_loop_t uv;
 *     uv_loop_init(&uv);
 *     dorm_loop *loop = dorm_loop_new(&uv);
 *     ... open databases, run queries ...
 *     dorm_loop_close(loop, NULL, NULL);
 *     uv_run(&uv, UV_RUN_DEFAULT);   // returns: nothing is left
 *     uv_loop_close(&uv);            // 0
 */
#ifndef DORM_LOOP_H
#define DORM_LOOP_H

#include <stdint.h>
#include <uv.h>

#include "dorm/version.h"
#include "dorm/deferred.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dorm_loop dorm_loop;
typedef struct dorm_poll dorm_poll;
typedef struct dorm_timer dorm_timer;
typedef struct dorm_wakeup dorm_wakeup;

/* ---------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------- */

/* dorm's state on `uv` (borrowed: it must outlive the dorm_loop, i.e. until
 * the close callback).  Returns NULL when out of memory. */
DORM_EXTERN dorm_loop *dorm_loop_new(uv_loop_t *uv);
/* The uv loop given to dorm_loop_new. */
DORM_EXTERN uv_loop_t *dorm_loop_uv(const dorm_loop *loop);

typedef void (*dorm_loop_close_cb)(void *arg);
/* Close every watcher, timer, wake-up and timeout of the loop that is still
 * open (as if its close function had been called), cancel the thread jobs
 * that have not started, and free the loop once all of that is finished
 * (jobs already running are waited for: their deferreds still fire).  Then
 * cb(arg) runs, if cb is not NULL.  Deferreds queued with
 * dorm_deferred_fire_soon still fire, on the next turn.  Do not use the
 * loop or its handles after this call, except to let pending deferreds
 * fire.  Calling it twice does nothing. */
DORM_EXTERN void dorm_loop_close(dorm_loop *loop, dorm_loop_close_cb cb,
                                 void *arg);

/* Fire d with result on the next turn of the loop, not now: for makers
 * that know the outcome while still inside the call that returns d (rule
 * R2 of dorm/deferred.h).  Takes ownership of result (freed if this
 * fails); the maker's reference is dropped when d fires, as with
 * dorm_deferred_fire.  No allocation.  Returns 0, or DORM_ESTATE if d has
 * already been queued or fired (result freed, d unchanged). */
DORM_EXTERN int dorm_deferred_fire_soon(dorm_loop *loop, dorm_deferred *d,
                                        dorm_result result);

/* ---------------------------------------------------------------------
 * Socket watcher (for libpq's socket)
 * ------------------------------------------------------------------- */

enum dorm_poll_events { DORM_READABLE = 1, DORM_WRITABLE = 2 };

/* status is 0 or a negative libuv error (then events is 0); events is the
 * set of DORM_READABLE / DORM_WRITABLE that is ready. */
typedef void (*dorm_poll_cb)(dorm_poll *p, int status, int events, void *arg);

/* Watch socket fd (may be -1: no socket yet) with no interest at first.
 * The socket stays yours: dorm never closes it.  arg is borrowed.  Returns
 * NULL when out of memory or when libuv refuses the socket. */
DORM_EXTERN dorm_poll *dorm_poll_new(dorm_loop *loop, int fd, dorm_poll_cb cb,
                                     void *arg);
/* Set the interest (0, DORM_READABLE, DORM_WRITABLE or both).  Cheap: a
 * call that does not change the interest does nothing, so it can be called
 * after every libpq call.  Returns 0 or a negative libuv error. */
DORM_EXTERN int dorm_poll_set(dorm_poll *p, int events);
/* The socket changed (libpq may use a new one on each connection attempt,
 * possibly with the same number): stop watching the old one and watch fd
 * with the current interest.  Call it before returning to the loop once
 * the old socket has been closed: libuv must never poll a closed
 * descriptor.  Returns 0, DORM_ENOMEM, or a negative libuv error (then nothing
 * is watched and the interest is 0). */
DORM_EXTERN int dorm_poll_set_fd(dorm_poll *p, int fd);
/* Stop watching and close.  cb never runs after this returns. */
DORM_EXTERN void dorm_poll_close(dorm_poll *p);

/* ---------------------------------------------------------------------
 * Timer
 * ------------------------------------------------------------------- */

typedef void (*dorm_timer_cb)(dorm_timer *t, void *arg);

/* A stopped timer.  arg is borrowed.  NULL when out of memory. */
DORM_EXTERN dorm_timer *dorm_timer_new(dorm_loop *loop, dorm_timer_cb cb,
                                       void *arg);
/* Run cb after timeout_ms, then every repeat_ms if that is not 0.
 * Restarts a running timer.  Returns 0 or a negative libuv error. */
DORM_EXTERN int dorm_timer_start(dorm_timer *t, uint64_t timeout_ms,
                                 uint64_t repeat_ms);
DORM_EXTERN void dorm_timer_stop(dorm_timer *t);
/* Stop and close.  cb never runs after this returns. */
DORM_EXTERN void dorm_timer_close(dorm_timer *t);

/* ---------------------------------------------------------------------
 * Work on a worker thread
 * ------------------------------------------------------------------- */

/* Runs on a libuv worker thread: must not touch the loop or any deferred.
 * Returns the result the deferred fires with; what it owns must be safe to
 * free on the loop thread. */
typedef dorm_result (*dorm_work_fn)(void *arg);

/* Run fn(arg) on libuv's thread pool and fire the returned deferred with
 * its result on the loop thread.  arg is borrowed until the deferred has
 * fired.  Cancelling the deferred stops the job if it has not started yet
 * (it fails with DORM_ECANCELED; a job already running completes and its
 * result is freed unseen).  One allocation.  Returns a borrowed deferred
 * (rule R2 of dorm/deferred.h: it fires on a later loop turn) or NULL (out of
 * memory, loop closing, or libuv refused: fn will not run). */
DORM_EXTERN dorm_deferred *dorm_run_in_thread(dorm_loop *loop, dorm_work_fn fn,
                                              void *arg);

/* ---------------------------------------------------------------------
 * Wake-up from another thread
 * ------------------------------------------------------------------- */

typedef void (*dorm_wakeup_cb)(dorm_wakeup *w, void *arg);

/* A handle another thread can use to make cb run on the loop thread.  It
 * keeps the loop running while open (dorm_wakeup_unref changes that).
 * arg is borrowed.  NULL when out of memory or if libuv refused. */
DORM_EXTERN dorm_wakeup *dorm_wakeup_new(dorm_loop *loop, dorm_wakeup_cb cb,
                                         void *arg);
/* Any thread: make cb run soon on the loop thread.  Sends that arrive
 * before cb runs are merged into one call.  Safe against a concurrent
 * close (dorm_wakeup_close, or dorm_loop_close closing everything): once
 * the handle is closing it returns DORM_ECLOSED and does nothing.  A
 * thread that may send after the loop side could have closed w must hold
 * a reference (dorm_wakeup_retain) so the memory stays valid.  Returns 0,
 * DORM_ECLOSED or a negative libuv error. */
DORM_EXTERN int dorm_wakeup_send(dorm_wakeup *w);
/* Any thread: keep w's memory alive past its close, for a thread that may
 * still call dorm_wakeup_send; each retain needs one dorm_wakeup_release,
 * and the last of them (or the close, whichever comes later) frees w. */
DORM_EXTERN void dorm_wakeup_retain(dorm_wakeup *w);
DORM_EXTERN void dorm_wakeup_release(dorm_wakeup *w);
/* Let the loop end while w is open (uv_unref). */
DORM_EXTERN void dorm_wakeup_unref(dorm_wakeup *w);
/* Close: cb never runs after this returns. */
DORM_EXTERN void dorm_wakeup_close(dorm_wakeup *w);

#ifdef __cplusplus
}
#endif
#endif /* DORM_LOOP_H */
