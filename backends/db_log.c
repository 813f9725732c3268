/* SPDX-License-Identifier: MIT */
/* backends/db_log.c — the statement log: $DORM_LOG, read by every
 * dorm_db_open (so the dorm command and any program have it), adds a
 * query hook (dorm/observe.h) that writes one line per request on
 * stderr, as text or as JSON lines ($DORM_LOG_FORMAT=json), every request
 * or only the slow ones (DORM_LOG=slow=100ms).  Parameter values and
 * error texts (which may quote a value) are left out unless
 * $DORM_LOG_VALUES=1.  The environment is read once per process; a value
 * that cannot be read is reported once, naming it, and nothing is logged.
 *
 * Each line is built in memory and written with one fwrite, so lines of
 * several databases (or threads) do not interleave.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/db_int.h"
#include "base/base_int.h"

typedef struct log_config {
  int on;
  int json;
  int values;
  uint64_t slow_ns; /* 0: every request */
} log_config;

static log_config cfg;
static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;

/* "100ms", "0.5s", "250us", "2" (ms) -> ns; 0 and *ok 0 when unreadable */
static uint64_t parse_duration(const char *s, int *ok) {
  char *end = NULL;
  *ok = 0;
  if (!s || !*s) return 0;
  double v = strtod(s, &end);
  if (end == s || v < 0) return 0;
  double mul;
  if (!*end || !strcmp(end, "ms"))
    mul = 1e6;
  else if (!strcmp(end, "s"))
    mul = 1e9;
  else if (!strcmp(end, "us"))
    mul = 1e3;
  else
    return 0;
  *ok = 1;
  return (uint64_t)(v * mul);
}

static void read_env(void) {
  const char *v = getenv("DORM_LOG");
  if (!v || !*v || !strcmp(v, "0") || !strcmp(v, "off")) return;
  int ok = 1;
  if (!strcmp(v, "all") || !strcmp(v, "1")) {
    cfg.slow_ns = 0;
  } else if (!strncmp(v, "slow=", 5)) {
    cfg.slow_ns = parse_duration(v + 5, &ok);
  } else {
    ok = 0;
  }
  if (!ok) {
    fprintf(stderr,
            "dorm: DORM_LOG='%s' is not understood (use DORM_LOG=all or "
            "DORM_LOG=slow=100ms, units us, ms, s): nothing is logged\n",
            v);
    return;
  }
  const char *f = getenv("DORM_LOG_FORMAT");
  if (f && *f && strcmp(f, "text") && strcmp(f, "json")) {
    fprintf(stderr,
            "dorm: DORM_LOG_FORMAT='%s' is not understood (text or json): "
            "logging as text\n",
            f);
  }
  cfg.json = f && !strcmp(f, "json");
  const char *vals = getenv("DORM_LOG_VALUES");
  cfg.values = vals && !strcmp(vals, "1");
  cfg.on = 1;
}

/* ---- writing ------------------------------------------------------------ */

static void put_json_str(dorm__buf *b, const char *s, size_t n) {
  dorm__buf_putc(b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
      case '"': dorm__buf_puts(b, "\\\""); break;
      case '\\': dorm__buf_puts(b, "\\\\"); break;
      case '\n': dorm__buf_puts(b, "\\n"); break;
      case '\r': dorm__buf_puts(b, "\\r"); break;
      case '\t': dorm__buf_puts(b, "\\t"); break;
      default:
        if (c < 0x20)
          dorm__buf_printf(b, "\\u%04x", c);
        else
          dorm__buf_putc(b, (char)c);
    }
  }
  dorm__buf_putc(b, '"');
}

/* The statement on one line: newlines and tabs become blanks. */
static void put_text_sql(dorm__buf *b, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    dorm__buf_putc(b, c == '\n' || c == '\r' || c == '\t' ? ' ' : c);
  }
}

static void put_value(dorm__buf *b, const dorm_value *v) {
  switch (v->type) {
    case DORM_T_NULL: dorm__buf_puts(b, "null"); break;
    case DORM_T_BOOL: dorm__buf_puts(b, v->u.b ? "true" : "false"); break;
    case DORM_T_INT: dorm__buf_put_int(b, v->u.i); break;
    case DORM_T_FLOAT: dorm__buf_printf(b, "%.17g", v->u.f); break;
    case DORM_T_BYTES:
      dorm__buf_printf(b, "\"<%zu bytes>\"", v->u.s.len);
      break;
    case DORM_T_LIST:
    case DORM_T_EXPR: dorm__buf_puts(b, "\"?\""); break;
    default: put_json_str(b, v->u.s.ptr ? v->u.s.ptr : "", v->u.s.len);
  }
}

static void put_params(dorm__buf *b, const dorm_query_event *ev) {
  dorm__buf_putc(b, '[');
  for (size_t i = 0; i < ev->nparams; i++) {
    if (i) dorm__buf_putc(b, ',');
    put_value(b, &ev->params[i]);
  }
  dorm__buf_putc(b, ']');
}

static void log_end(const dorm_query_event *ev, void *arg, void *user) {
  (void)arg;
  (void)user;
  uint64_t total = ev->queue_ns + ev->exec_ns;
  if (cfg.slow_ns && total < cfg.slow_ns) return;
  dorm__buf b;
  dorm__buf_init(&b);
  const char *code = ev->code ? dorm_err_name(ev->code) : NULL;
  if (cfg.json) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    dorm__buf_printf(&b, "{\"ts\":\"%s.%06ldZ\",\"kind\":\"%s\"", when,
                     ts.tv_nsec / 1000, dorm_stmt_kind_name(ev->kind));
    dorm__buf_printf(&b, ",\"ms\":%.3f,\"queue_ms\":%.3f,\"rows\":%lld",
                     (double)ev->exec_ns / 1e6, (double)ev->queue_ns / 1e6,
                     (long long)ev->rows);
    if (ev->model) {
      dorm__buf_puts(&b, ",\"model\":");
      put_json_str(&b, ev->model, strlen(ev->model));
    }
    dorm__buf_printf(&b,
                     ",\"backend\":\"%s\",\"role\":\"%s\",\"replica\":%zu,"
                     "\"conn\":%zu,\"pgbouncer\":%s,\"tx\":%s",
                     ev->backend, dorm_conn_role_name(ev->role), ev->replica,
                     ev->conn, ev->pgbouncer ? "true" : "false",
                     ev->in_transaction ? "true" : "false");
    if (ev->retried) dorm__buf_puts(&b, ",\"retried\":true");
    if (ev->nstatements > 1)
      dorm__buf_printf(&b, ",\"statements\":%zu", ev->nstatements);
    dorm__buf_printf(&b, ",\"nparams\":%zu", ev->nparams);
    if (code)
      dorm__buf_printf(&b, ",\"error\":\"%s\",\"sqlstate\":\"%s\"", code,
                       ev->sqlstate);
    dorm__buf_puts(&b, ",\"sql\":");
    put_json_str(&b, ev->sql, ev->sql_len);
    if (ev->params) {
      dorm__buf_puts(&b, ",\"params\":");
      put_params(&b, ev);
    }
    if (ev->message) {
      dorm__buf_puts(&b, ",\"message\":");
      put_json_str(&b, ev->message, strlen(ev->message));
    }
    dorm__buf_puts(&b, "}\n");
  } else {
    dorm__buf_printf(&b, "dorm: %s %.3fms queue=%.3fms",
                     dorm_stmt_kind_name(ev->kind), (double)ev->exec_ns / 1e6,
                     (double)ev->queue_ns / 1e6);
    if (ev->rows >= 0) dorm__buf_printf(&b, " rows=%lld", (long long)ev->rows);
    if (code)
      dorm__buf_printf(&b, " error=%s%s%s", code, ev->sqlstate[0] ? "/" : "",
                       ev->sqlstate);
    if (ev->model) dorm__buf_printf(&b, " model=%s", ev->model);
    dorm__buf_printf(&b, " on=%s", dorm_conn_role_name(ev->role));
    if (ev->replica) dorm__buf_printf(&b, "%zu", ev->replica);
    dorm__buf_printf(&b, "/%zu", ev->conn);
    if (ev->in_transaction) dorm__buf_puts(&b, " tx");
    if (ev->retried) dorm__buf_puts(&b, " retried");
    dorm__buf_puts(&b, ": ");
    put_text_sql(&b, ev->sql, ev->sql_len);
    if (ev->params) {
      dorm__buf_puts(&b, " params=");
      put_params(&b, ev);
    }
    if (ev->message) {
      dorm__buf_puts(&b, " message=");
      put_json_str(&b, ev->message, strlen(ev->message));
    }
    dorm__buf_putc(&b, '\n');
  }
  if (!b.oom && b.len) fwrite(b.data, 1, b.len, stderr);
  dorm__buf_free(&b);
}

void dorm__db_log_install(dorm_db *root) {
  pthread_once(&cfg_once, read_env);
  if (!cfg.on) return;
  dorm_db_add_hook(root, NULL, log_end, NULL,
                   cfg.values ? DORM_HOOK_VALUES : 0);
}
