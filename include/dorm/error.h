/* SPDX-License-Identifier: MIT */
/* dorm/error.h — the one error list, the error struct, the allocator hook.
 *
 * Every dorm function that can fail reports it the same way: a negative
 * code from DORM_ERRNO_MAP (0 is success), and where a caller passes a
 * dorm_error, a message that names what was wrong (file:line:column, model,
 * field, lookup) and, for database errors, the SQLSTATE.  The pattern is
 * libuv's UV_ERRNO_MAP: one list makes the enum, dorm_strerror and
 * dorm_err_name, so they can never disagree.
 *
 * Rule (as in libuv): when a function that takes a callback returns an
 * error, the callback is never called.
 */
#ifndef DORM_ERROR_H
#define DORM_ERROR_H

#include <stddef.h>

#include "dorm/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, code, message) */
#define DORM_ERRNO_MAP(XX)                                  \
  XX(ENOMEM, -1, "out of memory")                           \
  XX(EINVAL, -2, "invalid argument")                        \
  XX(EJSON, -3, "malformed JSON")                           \
  XX(ESCHEMA, -4, "invalid model definition")               \
  XX(EIO, -5, "input/output error")                         \
  XX(EFIELD, -6, "unknown field")                           \
  XX(ELOOKUP, -7, "unknown lookup or transform")            \
  XX(ETYPE, -8, "value of the wrong type")                  \
  XX(EIDENT, -9, "invalid identifier")                      \
  XX(EUNSUPPORTED, -10, "not supported by this dialect")    \
  XX(ECANCELED, -11, "operation canceled")                  \
  XX(ETIMEDOUT, -12, "operation timed out")                 \
  XX(ECLOSED, -13, "database is closed")                    \
  XX(ECONN, -14, "connection failed or lost")               \
  XX(EDB, -15, "database error")                            \
  XX(ENOTFOUND, -16, "object does not exist")               \
  XX(EMULTIPLE, -17, "get() returned more than one object") \
  XX(EINTEGRITY, -18, "integrity constraint violated")      \
  XX(EQUEUEFULL, -19, "request queue is full")              \
  XX(ETXABORTED, -20, "transaction aborted")                \
  XX(EURL, -21, "invalid database URL")                     \
  XX(EMIGRATION, -22, "invalid migration")                  \
  XX(ESTATE, -23, "operation not valid in this state")      \
  XX(ERANGE, -24, "value out of range")

typedef enum dorm_errno {
  DORM_OK = 0,
#define DORM__XX(name, code, msg) DORM_##name = code,
  DORM_ERRNO_MAP(DORM__XX)
#undef DORM__XX
} dorm_errno;

/* Static text for a code ("out of memory"); never NULL. */
DORM_EXTERN const char *dorm_strerror(int code);
/* Static name for a code ("DORM_ENOMEM"); never NULL. */
DORM_EXTERN const char *dorm_err_name(int code);

#define DORM_ERROR_MSG_MAX 512

/* An error as a value: no allocation, so it can report out-of-memory.
 * The first error recorded wins (dorm_error_set is a no-op once code != 0).
 * sqlstate is "" unless the database gave one. */
typedef struct dorm_error {
  int code;                         /* DORM_E*, or 0 */
  char sqlstate[6];                 /* five characters and NUL, or "" */
  char message[DORM_ERROR_MSG_MAX]; /* names what was wrong */
} dorm_error;

/* Reset to "no error". err may be NULL. */
DORM_EXTERN void dorm_error_clear(dorm_error *err);
/* Record code and a printf-style message, unless err already holds an
 * error (first error wins).  err may be NULL.  Returns code. */
DORM_EXTERN int dorm_error_set(dorm_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Copy src into dst unless dst already holds an error.  Returns src->code. */
DORM_EXTERN int dorm_error_copy(dorm_error *dst, const dorm_error *src);

/* The allocator every dorm allocation goes through (as jansson's
 * json_set_alloc_funcs).  Set it before any other dorm call and never while
 * another thread is inside dorm; the tests use it to fail allocation N.
 * Passing NULLs restores malloc/realloc/free.
 *
 * jansson allocates too (models, migrations, JSON values), so an
 * out-of-memory there must come back as DORM_ENOMEM like any other: this
 * call also points jansson's allocator at m and f (json_set_alloc_funcs),
 * and passing NULLs points it back at malloc/free.  jansson's hook is
 * process-wide: every other jansson user in the process allocates through
 * it from then on, and any json_t alive across the switch is freed by the
 * new free function, so call this at start-up, before anything in the
 * process holds a jansson value.  An application with its own jansson
 * allocator calls json_set_alloc_funcs after this (dorm then still works,
 * and reports a jansson failure it can recognize as DORM_ENOMEM).
 * dorm never calls json_set_alloc_funcs otherwise. */
typedef void *(*dorm_malloc_fn)(size_t size);
typedef void *(*dorm_realloc_fn)(void *ptr, size_t size);
typedef void (*dorm_free_fn)(void *ptr);
DORM_EXTERN void dorm_set_allocator(dorm_malloc_fn m, dorm_realloc_fn r,
                                    dorm_free_fn f);

#ifdef __cplusplus
}
#endif
#endif /* DORM_ERROR_H */
