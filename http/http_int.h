/* SPDX-License-Identifier: MIT */
/* http/http_int.h — private structures of the HTTP server (http/).
 *
 * Three objects: the server (listener, connection list, access-log buffer,
 * graceful close), a connection (one TCP socket, its parser, the queue of
 * its requests in arrival order, writes in flight, one timer) and an
 * exchange, which is one request and its response — the public
 * dorm_http_response.  An exchange belongs to its connection's queue until
 * its bytes have been handed to a write; the handler holds it between the
 * handler call and the respond call.  When the connection dies while a
 * handler holds an exchange, the exchange is "orphaned" (conn = NULL) and
 * freed by the respond call: that is how a vanished client's queries finish
 * safely.  The server counts live exchanges so a close waits for them.
 */
#ifndef DORM_HTTP_INT_H
#define DORM_HTTP_INT_H

#include <http_parser.h>
#include <stdint.h>
#include <uv.h>

#include "base/base_int.h"
#include "dorm/http.h"

typedef struct dorm__http_conn dorm__http_conn;

typedef enum dorm__ex_state {
  DORM__EX_PARSING = 0, /* request bytes still arriving */
  DORM__EX_HANDLING,    /* given to the handler, no answer yet */
  DORM__EX_STREAMING,   /* stream started: head and chunks go out as made */
  DORM__EX_DONE         /* answer complete; bytes wait for their turn */
} dorm__ex_state;

struct dorm_http_response {
  dorm_http_request req; /* public part */
  dorm__http_conn *conn; /* NULL once orphaned (client gone) */
  dorm_http_server *srv;
  struct dorm_http_response *next; /* the connection's queue */
  dorm__ex_state state;
  int status;              /* answered status, for the log */
  unsigned keep_alive : 1; /* the client wants the connection kept */
  unsigned close : 1;      /* close the connection after this answer */
  unsigned head : 1;       /* HEAD: no body bytes */
  unsigned chunked : 1;    /* streaming with chunked encoding */
  unsigned expect : 1;     /* Expect: 100-continue was asked */
  unsigned in_api : 1;     /* inside a respond/stream call: no gone cb */
  size_t bytes;            /* body bytes answered, for the log */
  size_t pending;          /* streamed bytes handed over, not yet written */
  /* Request text as it arrives: url, then "name\0value\0" per header,
   * then the body; offsets fixed into pointers when the request is
   * complete (the buffer may move while it grows). */
  dorm__buf raw;
  size_t url_end;  /* raw.len after the url */
  size_t body_off; /* start of the body in raw */
  size_t *hoff;    /* 2 offsets (name, value) per header */
  size_t nh, hcap;
  int hstate;      /* 0 none yet, 1 in a name, 2 in a value */
  void *meta;      /* headers[] + params[] + decoded strings, one block */
  dorm__buf extra; /* response headers added by the handler */
  dorm__buf out;   /* answer bytes not yet handed to a write */
  dorm_http_gone_fn gone;
  void *gone_arg;
  dorm_http_drain_fn drain; /* dorm_http_stream_on_drain */
  void *drain_arg;
  size_t drain_below;
  char peer[64]; /* a copy: req.peer must outlive the connection */
};
typedef struct dorm_http_response dorm__http_ex;

struct dorm__http_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  http_parser parser;
  dorm_http_server *srv;
  dorm__http_conn *prev, *next; /* server's list */
  dorm__http_ex *head, *tail;   /* requests in arrival order */
  dorm__http_ex *cur;           /* the one being parsed (also the tail) */
  unsigned nqueued;             /* in the queue */
  size_t header_bytes;          /* of the request being parsed */
  int early_status;             /* 400/408/413/431 decided while parsing */
  int writes;                   /* uv_write requests in flight */
  int timer_kind;               /* DORM__T_* */
  int handles;                  /* handles still open (2 until closed) */
  unsigned reading : 1, in_read : 1, closing : 1, no_more : 1, lingering : 1,
      eof : 1;
  char peer[64];
};

enum {
  DORM__T_NONE = 0,
  DORM__T_IDLE,
  DORM__T_REQUEST,
  DORM__T_WRITE,
  DORM__T_LINGER
};

struct dorm_http_server {
  dorm_loop *loop;
  uv_loop_t *uv;
  dorm_http_options opts;
  dorm_http_handler_fn handler;
  void *arg;
  uv_tcp_t listener;
  uv_timer_t shutdown_timer;
  uv_check_t log_check; /* flushes the access log once per loop turn */
  int port;
  unsigned listening : 1, closing : 1, finishing : 1;
  int handles; /* server handles open */
  /* Refusing a connection there was no memory for: libuv stops watching
   * the listener until the pending connection is accepted, so it is
   * accepted into this handle and closed (the client sees EOF). */
  uv_tcp_t spare;
  unsigned spare_busy : 1;     /* spare is closing */
  unsigned accept_pending : 1; /* another one waits for spare */
  dorm__http_conn *conns;
  size_t nconns;
  size_t nlive; /* exchanges allocated (queued or held by handlers) */
  dorm_http_close_cb close_cb;
  void *close_arg;
  dorm__buf log;
  char readbuf[65536]; /* every read lands here and is parsed at once */
};

/* conn.c */
void dorm__http_on_connection(uv_stream_t *listener, int status);
/* Close c at once (not gracefully): orphan or free its exchanges. */
void dorm__http_conn_close(dorm__http_conn *c);
/* Graceful: stop reading, answer what was received, then close. */
void dorm__http_conn_drain(dorm__http_conn *c);
/* Hand the answers that are ready, in order, to the socket. */
void dorm__http_conn_flush(dorm__http_conn *c);

/* response.c */
void dorm__http_ex_free(dorm__http_ex *ex);
/* Serialize an error answer decided by the server (400, 408, 413, 431,
 * 500) into ex, which becomes DONE and closes the connection. */
void dorm__http_ex_fail(dorm__http_ex *ex, int status);
/* An exchange's answer is complete (DONE): log it, then flush or drop. */
int dorm__http_ex_completed(dorm__http_ex *ex);

/* Bytes of c were written: run the drain callbacks whose stream is
 * under its mark (response.c). */
void dorm__http_conn_drained(dorm__http_conn *c);

/* server.c */
void dorm__http_log(dorm_http_server *s, const dorm__http_ex *ex);
/* Called when a connection or an exchange goes: finish a close. */
void dorm__http_server_maybe_done(dorm_http_server *s);
/* Out of memory for a new connection: accept it into the spare handle and
 * close it, so the listener keeps listening. */
void dorm__http_server_refuse(dorm_http_server *s);

#endif /* DORM_HTTP_INT_H */
