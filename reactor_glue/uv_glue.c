/* SPDX-License-Identifier: MIT */
/* reactor_glue/uv_glue.c — dorm on a libuv loop: the dorm_loop, socket
 * watchers, timers, wake-ups, deferred timeouts, thread jobs, and the
 * fire-soon queue that keeps rule R2 of dorm/deferred.h ("a deferred never
 * fires before the call that returned it has returned").
 *
 * Every uv handle opened here is counted in loop->live until its close
 * callback has run, and every handle the user can see is linked on the
 * loop's list, so dorm_loop_close can close what was left open and free the
 * loop only when libuv holds nothing of ours any more.  The fire-soon queue
 * is an intrusive list through the deferreds (no allocation) drained by an
 * idle handle that is active only while the queue is not empty, so an idle
 * dorm keeps no loop alive.  A thread job is one allocation: its uv_work_t
 * lives in the extra bytes of its own deferred, which the job holds (as
 * the deferred's maker) until the loop thread fires it.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base_int.h"
#include "reactor_glue/reactor_int.h"

typedef struct job job;

struct job {
  uv_work_t req; /* first: uv hands us &req */
  job *next, *prev;
  dorm_loop *loop;
  dorm_work_fn fn;
  void *arg;
  dorm_result result; /* written on the worker, read on the loop thread */
  dorm_deferred *d;
};

struct dorm_loop {
  uv_loop_t *uv;
  uv_idle_t idle;
  dorm_deferred *soon_head, *soon_tail;
  dorm__handle handles; /* sentinel of the open-handle list */
  job *jobs;            /* jobs in flight */
  size_t live;          /* uv handles not yet closed + jobs in flight */
  int closing;
  int draining;     /* inside the idle callback */
  int idle_closing; /* the last step of closing has begun */
  dorm_loop_close_cb close_cb;
  void *close_arg;
};

/* ---- the loop ---- */

static void idle_cb(uv_idle_t *h);

dorm_loop *dorm_loop_new(uv_loop_t *uv) {
  if (!uv) return NULL;
  dorm_loop *loop = dorm__calloc(1, sizeof *loop);
  if (!loop) return NULL;
  loop->uv = uv;
  if (uv_idle_init(uv, &loop->idle)) {
    dorm__free(loop);
    return NULL;
  }
  loop->idle.data = loop;
  loop->handles.next = loop->handles.prev = &loop->handles;
  return loop;
}

uv_loop_t *dorm_loop_uv(const dorm_loop *loop) { return loop->uv; }

static void link_handle(dorm_loop *loop, dorm__handle *h,
                        void (*close)(dorm__handle *)) {
  h->loop = loop;
  h->close = close;
  h->next = loop->handles.next;
  h->prev = &loop->handles;
  h->next->prev = h;
  loop->handles.next = h;
}

static void unlink_handle(dorm__handle *h) {
  h->prev->next = h->next;
  h->next->prev = h->prev;
  h->next = h->prev = h;
}

static void idle_close_cb(uv_handle_t *h) {
  dorm_loop *loop = h->data;
  dorm_loop_close_cb cb = loop->close_cb;
  void *arg = loop->close_arg;
  dorm__free(loop);
  if (cb) cb(arg);
}

/* Once closing and nothing of ours is left in libuv, close the idle handle
 * (the last one); its close callback frees the loop. */
static void check_done(dorm_loop *loop) {
  if (!loop->closing || loop->live || loop->soon_head || loop->draining ||
      loop->idle_closing)
    return;
  loop->idle_closing = 1;
  uv_close((uv_handle_t *)&loop->idle, idle_close_cb);
}

static void live_done(dorm_loop *loop) {
  loop->live--;
  check_done(loop);
}

void dorm_loop_close(dorm_loop *loop, dorm_loop_close_cb cb, void *arg) {
  if (!loop || loop->closing) return;
  loop->closing = 1;
  loop->close_cb = cb;
  loop->close_arg = arg;
  while (loop->handles.next != &loop->handles)
    loop->handles.next->close(loop->handles.next); /* each unlinks itself */
  /* Jobs not yet started come back with UV_ECANCELED; running ones finish. */
  for (job *j = loop->jobs; j; j = j->next) uv_cancel((uv_req_t *)j);
  check_done(loop);
}

/* ---- fire soon ---- */

int dorm__loop_finished(const dorm_loop *loop) { return loop->idle_closing; }

static void idle_cb(uv_idle_t *h) {
  dorm_loop *loop = h->data;
  /* Only what was queued before this turn: a chain that keeps queueing
   * must not starve I/O. */
  dorm_deferred *q = loop->soon_head;
  loop->soon_head = loop->soon_tail = NULL;
  loop->draining = 1;
  while (q) {
    dorm_deferred *d = q;
    q = d->soon_next;
    d->soon_next = NULL;
    dorm__deferred_fire_queued(d);
  }
  loop->draining = 0;
  if (!loop->soon_head) uv_idle_stop(h);
  check_done(loop);
}

int dorm_deferred_fire_soon(dorm_loop *loop, dorm_deferred *d,
                            dorm_result result) {
  if (!loop || !d) {
    dorm_result_free(&result);
    return DORM_EINVAL;
  }
  if (d->flags & (DORM__QUEUED | DORM__MAKER_FIRED)) {
    dorm_result_free(&result);
    return DORM_ESTATE;
  }
  if (loop->idle_closing) {
    dorm_result_free(&result);
    return DORM_ECLOSED;
  }
  if (d->flags & DORM__FIRED)
    dorm_result_free(&result); /* cancelled: only the reference matters */
  else
    d->result = result;
  d->flags |= DORM__QUEUED;
  d->soon_next = NULL;
  if (loop->soon_tail)
    loop->soon_tail->soon_next = d;
  else
    loop->soon_head = d;
  loop->soon_tail = d;
  uv_idle_start(&loop->idle, idle_cb); /* no-op when already active */
  return 0;
}

/* ---- socket watcher ---- */

typedef struct poll_slot {
  uv_poll_t uv;
  dorm_poll *owner; /* NULL once retired by dorm_poll_set_fd */
  dorm_loop *loop;
} poll_slot;

struct dorm_poll {
  dorm__handle h; /* first: the loop's list holds &h */
  poll_slot *slot;
  int fd;
  int events;
  dorm_poll_cb cb;
  void *arg;
};

static void poll_cb(uv_poll_t *h, int status, int events) {
  poll_slot *s = h->data;
  dorm_poll *p = s->owner;
  if (!p) return;
  int ev = 0;
  if (status == 0) {
    if (events & UV_READABLE) ev |= DORM_READABLE;
    if (events & UV_WRITABLE) ev |= DORM_WRITABLE;
  }
  p->cb(p, status, ev, p->arg);
}

static void slot_close_cb(uv_handle_t *h) {
  poll_slot *s = h->data;
  dorm_loop *loop = s->loop;
  if (s->owner) dorm__free(s->owner); /* closed with this slot */
  dorm__free(s);
  live_done(loop);
}

static int uv_events(int events) {
  return ((events & DORM_READABLE) ? UV_READABLE : 0) |
         ((events & DORM_WRITABLE) ? UV_WRITABLE : 0);
}

static int slot_open(dorm_poll *p, int fd) {
  poll_slot *s = dorm__malloc(sizeof *s);
  if (!s) return DORM_ENOMEM;
  int rc = uv_poll_init(p->h.loop->uv, &s->uv, fd);
  if (rc) {
    dorm__free(s);
    return rc;
  }
  s->uv.data = s;
  s->owner = p;
  s->loop = p->h.loop;
  p->h.loop->live++;
  p->slot = s;
  p->fd = fd;
  if (p->events) {
    rc = uv_poll_start(&s->uv, uv_events(p->events), poll_cb);
    if (rc) p->events = 0;
  }
  return rc;
}

static void poll_close(dorm__handle *h) {
  dorm_poll *p = (dorm_poll *)h;
  unlink_handle(h);
  if (p->slot)
    uv_close((uv_handle_t *)&p->slot->uv, slot_close_cb); /* frees p too */
  else
    dorm__free(p);
}

dorm_poll *dorm_poll_new(dorm_loop *loop, int fd, dorm_poll_cb cb, void *arg) {
  if (!loop || !cb || loop->closing) return NULL;
  dorm_poll *p = dorm__malloc(sizeof *p);
  if (!p) return NULL;
  p->slot = NULL;
  p->fd = -1;
  p->events = 0;
  p->cb = cb;
  p->arg = arg;
  p->h.loop = loop;
  if (fd >= 0 && slot_open(p, fd)) {
    dorm__free(p);
    return NULL;
  }
  link_handle(loop, &p->h, poll_close);
  return p;
}

int dorm_poll_set(dorm_poll *p, int events) {
  events &= DORM_READABLE | DORM_WRITABLE;
  if (events == p->events) return 0; /* the cheap common case */
  int rc = 0;
  if (p->slot) {
    if (events)
      rc = uv_poll_start(&p->slot->uv, uv_events(events), poll_cb);
    else
      rc = uv_poll_stop(&p->slot->uv);
  }
  if (rc == 0) p->events = events;
  return rc;
}

int dorm_poll_set_fd(dorm_poll *p, int fd) {
  if (p->slot) {
    /* uv_close stops the old watcher at once, so the new one may even be
     * on the same descriptor number. */
    p->slot->owner = NULL;
    uv_close((uv_handle_t *)&p->slot->uv, slot_close_cb);
    p->slot = NULL;
  }
  p->fd = -1;
  if (fd < 0) return 0;
  int rc = slot_open(p, fd);
  if (rc) p->events = 0;
  return rc;
}

void dorm_poll_close(dorm_poll *p) {
  if (p) poll_close(&p->h);
}

/* ---- timer ---- */

struct dorm_timer {
  dorm__handle h;
  uv_timer_t uv;
  dorm_timer_cb cb;
  void *arg;
};

static void timer_cb(uv_timer_t *h) {
  dorm_timer *t = h->data;
  t->cb(t, t->arg);
}

static void timer_close_cb(uv_handle_t *h) {
  dorm_timer *t = h->data;
  dorm_loop *loop = t->h.loop;
  dorm__free(t);
  live_done(loop);
}

static void timer_close(dorm__handle *h) {
  dorm_timer *t = (dorm_timer *)h;
  unlink_handle(h);
  uv_close((uv_handle_t *)&t->uv, timer_close_cb);
}

dorm_timer *dorm_timer_new(dorm_loop *loop, dorm_timer_cb cb, void *arg) {
  if (!loop || !cb || loop->closing) return NULL;
  dorm_timer *t = dorm__malloc(sizeof *t);
  if (!t) return NULL;
  if (uv_timer_init(loop->uv, &t->uv)) {
    dorm__free(t);
    return NULL;
  }
  t->uv.data = t;
  t->cb = cb;
  t->arg = arg;
  loop->live++;
  link_handle(loop, &t->h, timer_close);
  return t;
}

int dorm_timer_start(dorm_timer *t, uint64_t timeout_ms, uint64_t repeat_ms) {
  return uv_timer_start(&t->uv, timer_cb, timeout_ms, repeat_ms);
}

void dorm_timer_stop(dorm_timer *t) { uv_timer_stop(&t->uv); }

void dorm_timer_close(dorm_timer *t) {
  if (t) timer_close(&t->h);
}

/* ---- wake-up ---- */

/* A wake-up may be sent from threads that outlive it: the loop may be
 * closed (and the handle with it) while a worker still runs.  So sending
 * checks a closed flag under a lock, and the memory lives until the
 * handle is closed and every thread that retained it has released it. */
struct dorm_wakeup {
  dorm__handle h;
  uv_async_t uv;
  dorm_wakeup_cb cb;
  void *arg;
  uv_mutex_t lock;
  int closed; /* 1: closing, 2: closed (the uv handle is gone) */
  int refs;   /* the handle's own reference + dorm_wakeup_retain()s */
};

static void wakeup_cb(uv_async_t *h) {
  dorm_wakeup *w = h->data;
  w->cb(w, w->arg);
}

/* Drop one reference; the last one frees w. */
static void wakeup_unref_mem(dorm_wakeup *w, int closed_now) {
  uv_mutex_lock(&w->lock);
  if (closed_now) w->closed = 2;
  int last = --w->refs == 0;
  uv_mutex_unlock(&w->lock);
  if (last) {
    uv_mutex_destroy(&w->lock);
    dorm__free(w);
  }
}

static void wakeup_close_cb(uv_handle_t *h) {
  dorm_wakeup *w = h->data;
  dorm_loop *loop = w->h.loop;
  wakeup_unref_mem(w, 1);
  live_done(loop);
}

static void wakeup_close(dorm__handle *h) {
  dorm_wakeup *w = (dorm_wakeup *)h;
  unlink_handle(h);
  uv_mutex_lock(&w->lock);
  w->closed = 1; /* no uv_async_send from now on */
  uv_mutex_unlock(&w->lock);
  uv_close((uv_handle_t *)&w->uv, wakeup_close_cb);
}

dorm_wakeup *dorm_wakeup_new(dorm_loop *loop, dorm_wakeup_cb cb, void *arg) {
  if (!loop || !cb || loop->closing) return NULL;
  dorm_wakeup *w = dorm__malloc(sizeof *w);
  if (!w) return NULL;
  if (uv_mutex_init(&w->lock)) {
    dorm__free(w);
    return NULL;
  }
  if (uv_async_init(loop->uv, &w->uv, wakeup_cb)) {
    uv_mutex_destroy(&w->lock);
    dorm__free(w);
    return NULL;
  }
  w->uv.data = w;
  w->cb = cb;
  w->arg = arg;
  w->closed = 0;
  w->refs = 1;
  loop->live++;
  link_handle(loop, &w->h, wakeup_close);
  return w;
}

int dorm_wakeup_send(dorm_wakeup *w) {
  uv_mutex_lock(&w->lock);
  int rc = w->closed ? DORM_ECLOSED : uv_async_send(&w->uv);
  uv_mutex_unlock(&w->lock);
  return rc;
}

void dorm_wakeup_retain(dorm_wakeup *w) {
  uv_mutex_lock(&w->lock);
  w->refs++;
  uv_mutex_unlock(&w->lock);
}

void dorm_wakeup_release(dorm_wakeup *w) { wakeup_unref_mem(w, 0); }

void dorm_wakeup_unref(dorm_wakeup *w) { uv_unref((uv_handle_t *)&w->uv); }

void dorm_wakeup_close(dorm_wakeup *w) {
  if (w) wakeup_close(&w->h);
}

/* ---- deferred timeouts ---- */

typedef struct timeout {
  dorm__handle h;
  uv_timer_t uv;
  dorm_deferred *d;
  uint64_t ms;
  int timed_out; /* the timer fired and cancelled d */
  int step_done; /* d's chain has passed the timeout's step */
  int closing;   /* uv_close called */
} timeout;

static void timeout_close_cb(uv_handle_t *h) {
  timeout *t = h->data;
  dorm_loop *loop = t->h.loop;
  t->closing = 2; /* closed */
  if (t->step_done) dorm__free(t);
  live_done(loop);
}

static void timeout_close(dorm__handle *h) {
  timeout *t = (timeout *)h;
  if (t->closing) return;
  t->closing = 1;
  unlink_handle(h);
  uv_close((uv_handle_t *)&t->uv, timeout_close_cb);
}

static void timeout_cb(uv_timer_t *h) {
  timeout *t = h->data;
  t->timed_out = 1;
  /* d is alive: its chain has not reached our step, or the timer would
   * have been closed. */
  dorm__deferred_cancel_timeout(t->d);
}

static dorm_result timeout_step(dorm_result *res, void *arg) {
  timeout *t = arg;
  int timed_out = t->timed_out;
  uint64_t ms = t->ms;
  t->step_done = 1;
  if (t->closing == 2)
    dorm__free(t); /* dorm_loop_close got there first */
  else
    timeout_close(&t->h);
  if (timed_out && dorm_result_code(res) == DORM_ECANCELED)
    return dorm_result_error(DORM_ETIMEDOUT, "timed out after %llu ms",
                             (unsigned long long)ms);
  return *res;
}

int dorm_deferred_set_timeout(dorm_deferred *d, dorm_loop *loop, uint64_t ms) {
  if (!d || !loop) return DORM_EINVAL;
  if ((d->flags & DORM__FIRED) && !(d->flags & DORM__PAUSED)) return 0;
  if (loop->closing) return DORM_ECLOSED;
  timeout *t = dorm__malloc(sizeof *t);
  if (!t) return DORM_ENOMEM;
  if (uv_timer_init(loop->uv, &t->uv)) {
    dorm__free(t);
    return DORM_ENOMEM;
  }
  t->uv.data = t;
  t->d = d;
  t->ms = ms;
  t->timed_out = t->step_done = t->closing = 0;
  loop->live++;
  link_handle(loop, &t->h, timeout_close);
  if (dorm__deferred_push_step(d, timeout_step, timeout_step, t)) {
    t->step_done = 1; /* no step: the close callback frees t */
    timeout_close(&t->h);
    return DORM_ENOMEM;
  }
  uv_timer_start(&t->uv, timeout_cb, ms, 0);
  return 0;
}

/* ---- thread jobs ---- */

static void job_work(uv_work_t *req) {
  job *j = (job *)req;
  j->result = j->fn(j->arg);
}

static void job_done(uv_work_t *req, int status) {
  job *j = (job *)req;
  dorm_loop *loop = j->loop;
  if (j->prev)
    j->prev->next = j->next;
  else
    loop->jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  dorm_result r = status == UV_ECANCELED
                      ? dorm_result_error(DORM_ECANCELED, NULL)
                      : dorm_result_take(&j->result);
  /* j lives inside its deferred: this may free it. */
  dorm_deferred_fire(j->d, r);
  live_done(loop);
}

static void job_cancel(dorm_deferred *d, void *arg) {
  (void)d;
  job *j = arg;
  uv_cancel((uv_req_t *)&j->req); /* fails harmlessly once running */
}

dorm_deferred *dorm_run_in_thread(dorm_loop *loop, dorm_work_fn fn, void *arg) {
  if (!loop || !fn || loop->closing) return NULL;
  void *mem;
  dorm_deferred *d = dorm__deferred_new_ex(job_cancel, NULL, sizeof(job), &mem);
  if (!d) return NULL;
  job *j = mem;
  j->loop = loop;
  j->fn = fn;
  j->arg = arg;
  j->result = dorm_result_none();
  j->d = d;
  d->canceller_arg = j;
  if (uv_queue_work(loop->uv, &j->req, job_work, job_done)) {
    dorm__deferred_destroy(d);
    return NULL;
  }
  j->prev = NULL;
  j->next = loop->jobs;
  if (j->next) j->next->prev = j;
  loop->jobs = j;
  loop->live++;
  return d;
}
