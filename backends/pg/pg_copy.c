/* SPDX-License-Identifier: MIT */
/* backends/pg/pg_copy.c — COPY on one connection: FROM STDIN for
 * bulk_create (a DORM__REQ_COPY request: backend_int.h), and TO STDOUT
 * for dorm_async_copy_out (DORM__REQ_COPY_OUT), each row handed to the
 * caller's function as it arrives (PQgetCopyData, never waiting).
 *
 * COPY cannot run in pipeline mode (libpq's manual, "Pipeline Mode":
 * multiple commands "are disallowed, and so is COPY"), so it is
 * sequenced: pg_conn.c holds a COPY request in the wait queue until
 * nothing is in flight on the connection (every result of the pipeline
 * read), then hands it here.  The
 * connection leaves pipeline mode (PQexitPipelineMode, possible only when
 * idle), sends the COPY statement, and once the server's CopyInResponse
 * is read, streams the rows with PQputCopyData as the socket takes them
 * (PQflush; the watcher waits for writable when libpq's buffer is full),
 * ends with PQputCopyEnd, reads the answer, enters pipeline mode again
 * and completes the request; what waited behind it is sent then.  The
 * requests queued behind a COPY wait for it: a big COPY holds its
 * connection as a long statement would, the others keep working.
 *
 * Rows are encoded in COPY's text format, a block at a time (never the
 * whole set at once): columns separated by a tab, rows ended by a
 * newline, NULL as \N, backslash, tab, newline and carriage return
 * escaped, bytes as \\x and hex, booleans t/f, integers in decimal,
 * floats with 17 significant digits (exact), and decimals, dates, times,
 * date-times (UTC: "+00" added when the text has no offset, as for
 * parameters), uuids and JSON as their text.
 *
 * COPY is one statement: a bad value anywhere aborts all of it, and the
 * server names the line and column (its CONTEXT, kept in the message).
 * A value that cannot be sent at all (text with a NUL byte) aborts the
 * COPY from this side with PQputCopyEnd(errormsg) and the request fails
 * with DORM_ETYPE naming the row and column.  A lost connection fails
 * the request as any request in flight (pg_conn.c, conn_lost).
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "backends/pg/pg_int.h"

/* Encoded bytes handed to libpq at a time. */
#define COPY_BLOCK (256 * 1024)

struct dorm__pg_copy {
  dorm__req *req;
  int phase;        /* 0: COPY sent; 1: sending rows; 2: end sent (or the rows
                       received): the answer; 3: receiving rows (COPY TO) */
  int stopped;      /* COPY TO: the consumer asked to stop */
  size_t stmt, row; /* the next data row: row `row` of stmts[stmt] */
  size_t row_index; /* the next data row's number, from 0 */
  dorm__buf buf;    /* encoded, not yet given to libpq from off */
  size_t off;
  int64_t count;
  dorm_result err; /* the first error (kind NONE: none) */
};

static int has_offset(const char *s, size_t n) {
  for (size_t i = n; i > 10; i--) {
    char ch = s[i - 1];
    if (ch == 'Z' || ch == 'z' || ch == '+' || ch == '-') return 1;
    if (ch == ' ' || ch == 'T') return 0;
  }
  return 0;
}

int dorm__pg_is_copy(const char *s, size_t n) {
  size_t i = 0;
  for (;;) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' ||
                     s[i] == '\r' || s[i] == '(' || s[i] == ';'))
      i++;
    if (i + 1 < n && s[i] == '-' && s[i + 1] == '-') {
      while (i < n && s[i] != '\n') i++;
    } else if (i + 1 < n && s[i] == '/' && s[i + 1] == '*') {
      int depth = 0; /* PostgreSQL's block comments nest */
      while (i + 1 < n) {
        if (s[i] == '/' && s[i + 1] == '*') {
          depth++, i += 2;
        } else if (s[i] == '*' && s[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          i++;
        }
      }
    } else {
      break;
    }
  }
  return n - i >= 4 && !strncasecmp(s + i, "COPY", 4) &&
         (n - i == 4 || !(isalnum((unsigned char)s[i + 4]) || s[i + 4] == '_'));
}

static void put_escaped(dorm__buf *b, const char *s, size_t n) {
  size_t from = 0;
  for (size_t i = 0; i < n; i++) {
    const char *esc = NULL;
    switch (s[i]) {
      case '\\': esc = "\\\\"; break;
      case '\t': esc = "\\t"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      default: continue;
    }
    dorm__buf_append(b, s + from, i - from);
    dorm__buf_append(b, esc, 2);
    from = i + 1;
  }
  dorm__buf_append(b, s + from, n - from);
}

int dorm__pg_copy_encode(dorm__buf *b, const dorm_value *v, char *why,
                         size_t whylen) {
  static const char hex[] = "0123456789abcdef";
  char tmp[40];
  switch (v->type) {
    case DORM_T_NULL: dorm__buf_append(b, "\\N", 2); break;
    case DORM_T_BOOL: dorm__buf_putc(b, v->u.b ? 't' : 'f'); break;
    case DORM_T_INT: dorm__buf_put_int(b, v->u.i); break;
    case DORM_T_FLOAT: {
      double f = v->u.f;
      if (isnan(f))
        dorm__buf_puts(b, "NaN");
      else if (isinf(f))
        dorm__buf_puts(b, f > 0 ? "Infinity" : "-Infinity");
      else {
        int n = snprintf(tmp, sizeof tmp, "%.17g", f);
        dorm__buf_append(b, tmp, (size_t)n);
      }
      break;
    }
    case DORM_T_BYTES: {
      /* \\x: COPY unescapes it to \x, bytea's hex input */
      if (dorm__buf_reserve(b, 3 + 2 * v->u.s.len)) return DORM_ENOMEM;
      dorm__buf_append(b, "\\\\x", 3);
      const unsigned char *p = (const unsigned char *)v->u.s.ptr;
      for (size_t i = 0; i < v->u.s.len; i++) {
        char two[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
        dorm__buf_append(b, two, 2);
      }
      break;
    }
    case DORM_T_LIST:
    case DORM_T_EXPR:
      snprintf(why, whylen, "a %s cannot be copied", dorm_type_name(v->type));
      return DORM_ETYPE;
    default:
      if (memchr(v->u.s.ptr, 0, v->u.s.len)) {
        snprintf(why, whylen, "PostgreSQL text cannot contain NUL");
        return DORM_ETYPE;
      }
      put_escaped(b, v->u.s.ptr, v->u.s.len);
      if (v->type == DORM_T_DATETIME && !has_offset(v->u.s.ptr, v->u.s.len))
        dorm__buf_append(b, "+00", 3);
      break;
  }
  return b->oom ? DORM_ENOMEM : 0;
}

/* Encode rows into cp->buf until it holds a block or the rows end.
 * 0, or an error code with cp->err set. */
static int encode_block(dorm__pg_copy *cp) {
  const dorm__req *req = cp->req;
  size_t w = req->copy_width;
  cp->buf.len = 0;
  cp->off = 0;
  while (cp->stmt < req->nstmts && cp->buf.len < COPY_BLOCK) {
    const dorm__stmt *st = &req->stmts[cp->stmt];
    if (cp->row * w >= st->nparams) {
      cp->stmt++;
      cp->row = 0;
      continue;
    }
    const dorm_value *v = st->params + cp->row * w;
    for (size_t k = 0; k < w; k++) {
      char why[120];
      why[0] = 0;
      if (k) dorm__buf_putc(&cp->buf, '\t');
      int rc = dorm__pg_copy_encode(&cp->buf, &v[k], why, sizeof why);
      if (rc) {
        cp->err = rc == DORM_ENOMEM
                      ? dorm_result_error(DORM_ENOMEM, NULL)
                      : dorm_result_error(rc,
                                          "postgresql: COPY row %zu, column "
                                          "%zu: %s",
                                          cp->row_index, k + 1, why);
        return rc;
      }
    }
    dorm__buf_putc(&cp->buf, '\n');
    if (cp->buf.oom) {
      cp->err = dorm_result_error(DORM_ENOMEM, NULL);
      return DORM_ENOMEM;
    }
    cp->row++;
    cp->row_index++;
  }
  return 0;
}

/* The server's error, with its CONTEXT ("COPY author, line 3, column age:
 * "x"") so the row and column are named. */
static dorm_result copy_error(dorm__pg_conn *c, const PGresult *res) {
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *prim = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
  const char *ctx = PQresultErrorField(res, PG_DIAG_CONTEXT);
  char msg[512];
  if (!prim) {
    snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
    if (!msg[0] && c->pg)
      snprintf(msg, sizeof msg, "%s", PQerrorMessage(c->pg));
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = 0;
    if (!msg[0]) snprintf(msg, sizeof msg, "COPY failed");
  } else if (ctx && *ctx) {
    snprintf(msg, sizeof msg, "%s (%s)", prim, ctx);
  } else {
    snprintf(msg, sizeof msg, "%s", prim);
  }
  for (char *p = msg; *p; p++)
    if (*p == '\n') *p = ' ';
  return dorm__pg_error(state, msg, detail);
}

static void set_err(dorm__pg_copy *cp, dorm_result e) {
  if (cp->err.kind != DORM_RESULT_NONE) {
    dorm_result_free(&e);
    return;
  }
  cp->err = e;
}

static void want(dorm__pg_conn *c, int events) {
  c->interest = events;
  if (c->poll) dorm_poll_set(c->poll, events);
}

int dorm__pg_copy_start(dorm__pg_conn *c, dorm__req *req) {
  dorm__pg_copy *cp = dorm__calloc(1, sizeof *cp);
  if (!cp) return DORM_ENOMEM;
  cp->req = req;
  cp->stmt = 0;
  cp->err = dorm_result_none();
  dorm__buf_init(&cp->buf);
  c->copy = cp;
  if (PQexitPipelineMode(c->pg) != 1) return -1;
  /* the extended protocol: one statement, whatever the text holds */
  if (!PQsendQueryParams(c->pg, req->stmts[0].sql, 0, NULL, NULL, NULL, NULL,
                         0))
    return -1;
  want(c, DORM_READABLE | DORM_WRITABLE);
  dorm__pg_pool_mark_dirty(c->pool, c);
  return 0;
}

void dorm__pg_copy_drop(dorm__pg_conn *c) {
  dorm__pg_copy *cp = c->copy;
  if (!cp) return;
  c->copy = NULL;
  dorm_result_free(&cp->err);
  dorm__buf_free(&cp->buf);
  dorm__free(cp);
}

static void lost(dorm__pg_conn *c, const char *what) {
  char msg[300];
  snprintf(msg, sizeof msg, "%s: %s", what, PQerrorMessage(c->pg));
  dorm__pg_conn_lost(c, msg);
}

/* Read what the server answered; 1 when every result is in (the COPY is
 * over), 0 when more must be read, -1 when the connection broke. */
static int read_answers(dorm__pg_conn *c, dorm__pg_copy *cp) {
  PGconn *pg = c->pg;
  while (!PQisBusy(pg)) {
    PGresult *res = PQgetResult(pg);
    if (!res) return cp->phase == 0 ? (cp->err.kind ? 1 : 0) : 1;
    switch (PQresultStatus(res)) {
      case PGRES_COPY_IN:
        if (cp->req->flags & DORM__REQ_COPY_OUT) {
          /* a COPY FROM given as an export: end it, sending nothing */
          set_err(cp, dorm_result_error(DORM_EINVAL,
                                        "postgresql: copy_out needs a COPY "
                                        "... TO STDOUT"));
          if (PQputCopyEnd(pg, "not a COPY TO STDOUT") < 0) {
            PQclear(res);
            return -1;
          }
          cp->phase = 2;
          break;
        }
        cp->phase = 1;
        break;
      case PGRES_COPY_OUT:
        if (!(cp->req->flags & DORM__REQ_COPY_OUT))
          set_err(cp, dorm_result_error(DORM_EINVAL,
                                        "postgresql: COPY TO in a bulk "
                                        "insert"));
        cp->phase = 3;
        break;
      case PGRES_COMMAND_OK: {
        const char *t = PQcmdTuples(res);
        cp->count = t && *t ? strtoll(t, NULL, 10) : 0;
        break;
      }
      default: set_err(cp, copy_error(c, res)); break;
    }
    PQclear(res);
    if (cp->phase == 1 || cp->phase == 3) return 0; /* the rows */
    if (PQstatus(pg) == CONNECTION_BAD) return -1;
  }
  return 0;
}

/* Send rows while the socket takes them.  0: the end is queued (go on
 * to the answer); 1: wait for writable; -1: the connection broke. */
static int send_rows(dorm__pg_conn *c, dorm__pg_copy *cp) {
  PGconn *pg = c->pg;
  for (;;) {
    if (cp->off >= cp->buf.len) {
      /* nothing pending: the next block, or the end */
      const char *abort_msg = NULL;
      char why[300];
      if ((uintptr_t)cp->req->backend_data & DORM__PG_R_CANCELLED) {
        abort_msg = "canceled by the client";
      } else if (cp->stmt < cp->req->nstmts) {
        if (encode_block(cp)) {
          snprintf(why, sizeof why, "%s", dorm_result_message(&cp->err));
          abort_msg = why;
        } else if (cp->buf.len) {
          continue; /* data to put */
        }
      }
      int r = PQputCopyEnd(pg, abort_msg);
      if (r < 0) return -1;
      if (r == 0) return 1;
      cp->phase = 2;
      return 0;
    }
    int r =
        PQputCopyData(pg, cp->buf.data + cp->off, (int)(cp->buf.len - cp->off));
    if (r < 0) return -1;
    if (r == 0) return 1;
    cp->off = cp->buf.len;
    r = PQflush(pg);
    if (r < 0) return -1;
    /* the server is taking the rows: it is not silent (the answer
     * deadline counts from here) */
    c->heard_ms = dorm__mono_ms();
    if (r == 1) return 1;
  }
}

/* COPY TO: hand each row that has arrived to the consumer.  0: wait for
 * more; 1: the rows are over (the answer follows); -1: broken. */
static int receive_rows(dorm__pg_conn *c, dorm__pg_copy *cp) {
  dorm__req *req = cp->req;
  for (;;) {
    char *buf = NULL;
    int n = PQgetCopyData(c->pg, &buf, 1);
    if (n == 0) return 0;
    if (n == -1) return 1;
    if (n < 0) return -1;
    int stop = 0;
    if (!cp->stopped && req->copy_out)
      stop = req->copy_out(buf, (size_t)n, req->copy_arg);
    PQfreemem(buf);
    if (stop && !cp->stopped) {
      /* stop it on the server (a PQcancel on a worker thread); what
       * still arrives meanwhile is dropped */
      cp->stopped = 1;
      dorm__pg_conn_cancel(c, req);
    }
  }
}

void dorm__pg_copy_io(dorm__pg_conn *c) {
  dorm__pg_copy *cp = c->copy;
  if (!cp || c->state != DORM__PG_READY || !c->pg) return;
  for (;;) {
    int fl = PQflush(c->pg);
    if (fl < 0) {
      lost(c, "sending failed");
      return;
    }
    if (cp->phase == 3) {
      int r = receive_rows(c, cp);
      if (r < 0) {
        lost(c, "reading failed");
        return;
      }
      if (r == 0) {
        want(c, DORM_READABLE | (fl == 1 ? DORM_WRITABLE : 0));
        return;
      }
      cp->phase = 2;
      continue;
    }
    if (cp->phase == 1) {
      if (fl == 1) {
        want(c, DORM_READABLE | DORM_WRITABLE);
        return;
      }
      int r = send_rows(c, cp);
      if (r < 0) {
        lost(c, "sending failed");
        return;
      }
      if (r == 1) {
        want(c, DORM_READABLE | DORM_WRITABLE);
        return;
      }
      continue; /* the end is queued: flush it and read the answer */
    }
    /* phases 0 and 2: the server's turn */
    want(c, DORM_READABLE | (fl == 1 ? DORM_WRITABLE : 0));
    int r = read_answers(c, cp);
    if (r < 0) {
      lost(c, "reading failed");
      return;
    }
    if (cp->phase == 1 || cp->phase == 3) continue;
    if (r == 0) {
      /* an end queued while reading (a COPY FROM refused) goes out too */
      if (PQflush(c->pg) == 1) want(c, DORM_READABLE | DORM_WRITABLE);
      return;
    }
    break;
  }
  /* over: back to pipeline mode, then the request is done */
  dorm_result res = cp->err;
  cp->err = dorm_result_none();
  if (res.kind == DORM_RESULT_NONE) res = dorm_result_count(cp->count);
  dorm__pg_copy_drop(c);
  if (PQenterPipelineMode(c->pg) != 1) {
    dorm_result_free(&res);
    lost(c, "pipeline mode after COPY");
    return;
  }
  want(c, DORM_READABLE);
  dorm__pg_conn_copy_done(c, res);
}
