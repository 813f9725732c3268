/* SPDX-License-Identifier: MIT */
/* backends/sqlite/sqlite.c — the SQLite backend: connections owned by worker
 * threads, results handed to the loop thread in batches.
 *
 * SQLite's C API blocks, so no sqlite3 call is ever made on the loop
 * thread.  A file database gets one writer thread (slot 0, the only
 * connection that writes: WAL mode, so readers never wait for it and
 * writers never meet "database is locked" from each other) and N reader
 * threads (slots 1..N, `PRAGMA query_only`).  A memory database is served
 * by one connection on one thread (slot 0 reads and writes): separate
 * connections to ":memory:" would be separate databases, and a shared
 * cache would bring table-level locking back.
 *
 * Each thread owns its connection for its whole life, with its own
 * prepared-statement cache.  The facade queues requests on a thread with
 * submit (a mutex and a condition variable); the thread takes everything
 * queued at once, runs it, and appends the finished requests to one "done"
 * list, sending one wake-up when that list goes from empty to non-empty:
 * one thread hop and one loop wake-up serve as many queries as were queued
 * meanwhile.  The loop thread's wake-up callback calls each request's done
 * function (the facade fires deferreds there), so results only ever reach
 * users on the loop thread and never inside the call that made them.
 *
 * Opening happens on the writer thread (it creates the file and switches
 * it to WAL) and then on each reader; failures (missing directory,
 * read-only file, not a database) become the error of every request and
 * of dorm_db_ready.  Closing interrupts running statements, fails what is
 * queued with DORM_ECLOSED, lets each thread close its connection (which
 * rolls back an open transaction), and joins the threads once they have
 * all said they are done, so the join never waits.
 */
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "backends/backend_int.h"
#include "backends/sqlite/sqlite_int.h"
#include "base/base_int.h"
#include "dorm/observe.h"

#define SQ_CACHE 64
#define SQ_MAX_READERS 64

typedef struct sq_cached {
  uint64_t hash;
  size_t len;
  sqlite3_stmt *st;
  uint64_t used;
} sq_cached;

typedef struct sq_be sq_be;

typedef struct sq_worker {
  sq_be *be;
  size_t slot;
  int writer;
  pthread_t tid;
  int started;
  pthread_mutex_t mu; /* guards head/tail/idle/stop/conn */
  pthread_cond_t cv;
  dorm__req *head, *tail;
  int idle, stop;
  sqlite3 *conn; /* written under mu: close may interrupt it */
  /* owned by the thread */
  sq_cached cache[SQ_CACHE];
  uint64_t tick;
  dorm_error open_err; /* this connection's open failure, if any */
  /* SQLite rolled the whole transaction back after an error (a full disk,
   * INSERT OR ROLLBACK, ...): until the facade ends it, its statements
   * must not run, or they would run in autocommit mode and stay */
  int tx_lost;
  size_t ncached; /* cache entries in use (__atomic: the loop reads it) */
} sq_worker;

struct sq_be {
  dorm_db *db;
  dorm_loop *loop;
  dorm_wakeup *wake;
  char *path; /* NULL for memory */
  const char *sync;
  int busy_ms;
  int closing; /* __atomic */
  int done_closing;
  pthread_mutex_t mu; /* guards everything below */
  pthread_cond_t open_cv;
  int open_state; /* 0 opening, 1 open, -1 failed */
  dorm_error open_err;
  int ready_pending, ready_sent;
  dorm__req *done_head, *done_tail;
  size_t nexited;
  size_t nworkers;
  sq_worker *w;
};

/* ---- errors ------------------------------------------------------------- */

/* SQLite's extended codes as SQLSTATEs, so code that checks for a unique
 * violation works the same on PostgreSQL. */
dorm_result dorm__sq_error(sqlite3 *conn, int rc, const char *what) {
  int ext = conn ? sqlite3_extended_errcode(conn) : rc;
  const char *msg = conn ? sqlite3_errmsg(conn) : sqlite3_errstr(rc);
  const char *state = NULL;
  int code = 0;
  switch (ext) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: state = "23505"; break;
    case SQLITE_CONSTRAINT_FOREIGNKEY: state = "23503"; break;
    case SQLITE_CONSTRAINT_NOTNULL: state = "23502"; break;
    case SQLITE_CONSTRAINT_CHECK: state = "23514"; break;
    default:
      switch (ext & 0xff) {
        case SQLITE_CONSTRAINT: state = "23000"; break;
        case SQLITE_FULL: state = "53100", code = DORM_EIO; break;
        case SQLITE_READONLY: state = "25006", code = DORM_EIO; break;
        case SQLITE_IOERR: state = "58030", code = DORM_EIO; break;
        case SQLITE_CANTOPEN:
        case SQLITE_NOTADB:
        case SQLITE_CORRUPT: code = DORM_EIO; break;
        case SQLITE_NOMEM: code = DORM_ENOMEM; break;
        case SQLITE_INTERRUPT: code = DORM_ECLOSED; break;
        case SQLITE_BUSY:
        case SQLITE_LOCKED: state = "55P03"; break;
        case SQLITE_TOOBIG: state = "54000"; break;
        case SQLITE_MISMATCH: state = "42804"; break;
        case SQLITE_RANGE: state = "22023"; break;
        case SQLITE_ERROR:
          /* arithmetic errors (dorm_div, SUM of integers) as
           * PostgreSQL's, so they get the same code on both */
          if (!strcmp(msg, "division by zero"))
            state = "22012";
          else if (!strcmp(msg, "integer overflow"))
            state = "22003";
          /* our REGEXP's refusal of a pattern: PostgreSQL's SQLSTATE, so
           * a bad pattern is the same error on both backends */
          else if (!strncmp(msg, "invalid regular expression", 26))
            state = "2201B";
          break;
        default: break;
      }
  }
  if (code)
    return dorm_result_error_sql(code, state, "sqlite: %s%s%s",
                                 what ? what : "", what ? ": " : "", msg);
  return dorm__db_error(state, "sqlite: %s%s%s", what ? what : "",
                        what ? ": " : "", msg);
}

/* ---- division ----------------------------------------------------------- */

/* dorm_div(a, b): what F("x") / y compiles to on SQLite.  SQLite's own
 * "/" gives NULL for a division by zero and a float for the one integer
 * quotient that overflows; PostgreSQL fails with SQLSTATE 22012 and 22003.
 * This fails the same way (sq_error maps the messages), and otherwise
 * divides as "/" does: integers truncate, anything else is a double. */
static void sq_div(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  int ta = sqlite3_value_numeric_type(argv[0]);
  int tb = sqlite3_value_numeric_type(argv[1]);
  if (ta == SQLITE_NULL || tb == SQLITE_NULL) return; /* NULL */
  if (ta == SQLITE_INTEGER && tb == SQLITE_INTEGER) {
    sqlite3_int64 a = sqlite3_value_int64(argv[0]);
    sqlite3_int64 b = sqlite3_value_int64(argv[1]);
    if (b == 0) {
      sqlite3_result_error(ctx, "division by zero", -1);
      return;
    }
    if (a == INT64_MIN && b == -1) {
      sqlite3_result_error(ctx, "integer overflow", -1);
      return;
    }
    sqlite3_result_int64(ctx, a / b);
    return;
  }
  double b = sqlite3_value_double(argv[1]);
  if (b == 0.0) {
    sqlite3_result_error(ctx, "division by zero", -1);
    return;
  }
  sqlite3_result_double(ctx, sqlite3_value_double(argv[0]) / b);
}

/* ---- REGEXP ------------------------------------------------------------- */

typedef struct sq_regex {
  regex_t re;
} sq_regex;

static void sq_regex_free(void *p) {
  sq_regex *r = p;
  regfree(&r->re);
  dorm__free(r);
}

/* regexp(pattern, value): what `value REGEXP pattern` calls.  A leading
 * "(?i)" (the compiler's iregex) means case-insensitive.  The compiled
 * pattern is kept with sqlite3_set_auxdata, so a statement compiles it once
 * per execution, not once per row. */
static void sq_regexp(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL ||
      sqlite3_value_type(argv[1]) == SQLITE_NULL)
    return; /* NULL */
  sq_regex *r = sqlite3_get_auxdata(ctx, 0);
  if (!r) {
    const char *pat = (const char *)sqlite3_value_text(argv[0]);
    if (!pat) {
      sqlite3_result_error_nomem(ctx);
      return;
    }
    int flags = REG_EXTENDED | REG_NOSUB;
    if (!strncmp(pat, "(?i)", 4)) {
      flags |= REG_ICASE;
      pat += 4;
    }
    r = dorm__malloc(sizeof *r);
    if (!r) {
      sqlite3_result_error_nomem(ctx);
      return;
    }
    int rc = regcomp(&r->re, pat, flags);
    if (rc) {
      char buf[128], msg[200];
      regerror(rc, &r->re, buf, sizeof buf);
      dorm__free(r);
      snprintf(msg, sizeof msg, "invalid regular expression: %s", buf);
      sqlite3_result_error(ctx, msg, -1);
      return;
    }
    sqlite3_set_auxdata(ctx, 0, r, sq_regex_free);
    r = sqlite3_get_auxdata(ctx, 0); /* SQLite may have freed it already */
    if (!r) {
      /* not cacheable (pattern not constant): compile per call */
      r = dorm__malloc(sizeof *r);
      if (!r || regcomp(&r->re, pat, flags)) {
        dorm__free(r);
        sqlite3_result_error_nomem(ctx);
        return;
      }
      const char *s = (const char *)sqlite3_value_text(argv[1]);
      sqlite3_result_int(ctx, s && regexec(&r->re, s, 0, NULL, 0) == 0);
      sq_regex_free(r);
      return;
    }
  }
  const char *s = (const char *)sqlite3_value_text(argv[1]);
  sqlite3_result_int(ctx, s && regexec(&r->re, s, 0, NULL, 0) == 0);
}

/* ---- URLs --------------------------------------------------------------- */

static int sq_accepts(const char *url) { return !strncmp(url, "sqlite:", 7); }

static int pct_decode(const char *s, size_t n, char *out) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      out[k++] = s[i];
      continue;
    }
    if (i + 2 >= n) return -1;
    char h[3] = {s[i + 1], s[i + 2], 0};
    char *end;
    long v = strtol(h, &end, 16);
    if (*end || v <= 0) return -1;
    out[k++] = (char)v;
    i += 2;
  }
  out[k] = '\0';
  return 0;
}

typedef struct sq_url {
  char *path; /* NULL: memory */
  const char *sync;
  int busy_ms, readers;
} sq_url;

static const char *const sync_names[] = {"OFF", "NORMAL", "FULL", "EXTRA",
                                         NULL};

static const char *sync_name(const char *v) {
  for (int i = 0; sync_names[i]; i++)
    if (!strcasecmp(v, sync_names[i])) return sync_names[i];
  return NULL;
}

static int parse_opts(const char *q, sq_url *u, dorm_error *err) {
  while (q && *q) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    char kv[128];
    if (n >= sizeof kv)
      return dorm_error_set(err, DORM_EURL, "sqlite URL: option too long");
    memcpy(kv, q, n);
    kv[n] = '\0';
    char *eq = strchr(kv, '=');
    if (!eq)
      return dorm_error_set(err, DORM_EURL,
                            "sqlite URL: option '%s' has no value", kv);
    *eq = '\0';
    const char *val = eq + 1;
    char *end;
    if (!strcmp(kv, "synchronous")) {
      if (!(u->sync = sync_name(val)))
        return dorm_error_set(err, DORM_EURL,
                              "sqlite URL: synchronous must be OFF, NORMAL, "
                              "FULL or EXTRA, not '%s'",
                              val);
    } else if (!strcmp(kv, "busy_timeout") || !strcmp(kv, "timeout")) {
      long v = strtol(val, &end, 10);
      if (*end || !*val || v < 0 || v > 3600000)
        return dorm_error_set(err, DORM_EURL,
                              "sqlite URL: busy_timeout must be milliseconds, "
                              "not '%s'",
                              val);
      u->busy_ms = (int)v;
    } else if (!strcmp(kv, "readers")) {
      long v = strtol(val, &end, 10);
      if (*end || !*val || v < 1 || v > SQ_MAX_READERS)
        return dorm_error_set(err, DORM_EURL,
                              "sqlite URL: readers must be 1..%d, not '%s'",
                              SQ_MAX_READERS, val);
      u->readers = (int)v;
    } else {
      return dorm_error_set(err, DORM_EURL,
                            "sqlite URL: unknown option '%s' (known: "
                            "synchronous, busy_timeout, readers)",
                            kv);
    }
    q = amp ? amp + 1 : NULL;
  }
  return 0;
}

/* sqlite:///rel.db, sqlite:////abs.db, sqlite://, sqlite::memory:,
 * sqlite:///:memory:, each with optional ?options. */
static int parse_url(const char *url, sq_url *u, dorm_error *err) {
  memset(u, 0, sizeof *u);
  const char *rest = url + 7;
  const char *qm = strchr(rest, '?');
  size_t n = qm ? (size_t)(qm - rest) : strlen(rest);
  if (n == 8 && !strncmp(rest, ":memory:", 8)) {
    /* memory */
  } else if (n == 2 && !strncmp(rest, "//", 2)) {
    /* sqlite:// : memory */
  } else if (n >= 3 && !strncmp(rest, "///", 3)) {
    const char *p = rest + 3;
    size_t m = n - 3;
    if (m == 0)
      return dorm_error_set(err, DORM_EURL, "sqlite URL '%s': no file name",
                            url);
    if (!(m == 8 && !strncmp(p, ":memory:", 8))) {
      u->path = dorm__malloc(m + 1);
      if (!u->path) return dorm_error_set(err, DORM_ENOMEM, "out of memory");
      if (pct_decode(p, m, u->path)) {
        dorm__free(u->path);
        u->path = NULL;
        return dorm_error_set(
            err, DORM_EURL, "sqlite URL '%s': bad %%-escape in the path", url);
      }
    }
  } else if (n > 2 && !strncmp(rest, "//", 2)) {
    return dorm_error_set(err, DORM_EURL,
                          "sqlite URL '%s': a file is sqlite:///relative.db "
                          "or sqlite:////absolute.db (no host)",
                          url);
  } else {
    return dorm_error_set(err, DORM_EURL,
                          "sqlite URL '%s': expected sqlite:///path.db, "
                          "sqlite:////abs/path.db, sqlite:// or "
                          "sqlite::memory:",
                          url);
  }
  if (qm && parse_opts(qm + 1, u, err)) {
    dorm__free(u->path);
    u->path = NULL;
    return err ? err->code : DORM_EURL;
  }
  return 0;
}

int dorm__sqlite_url_parse(const char *url, char **path, dorm_error *err) {
  *path = NULL;
  if (!sq_accepts(url))
    return dorm_error_set(err, DORM_EURL, "sqlite URL: expected sqlite:");
  sq_url u;
  int rc = parse_url(url, &u, err);
  if (rc) return rc;
  *path = u.path;
  return 0;
}

/* ---- connections (worker threads only) ---------------------------------- */

static int exec_pragma(sqlite3 *c, const char *sql, dorm_error *err,
                       const char *path) {
  char *msg = NULL;
  int rc = sqlite3_exec(c, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    int ext = sqlite3_extended_errcode(c);
    if ((ext & 0xff) == SQLITE_NOTADB)
      dorm_error_set(err, DORM_EIO, "sqlite: '%s' is not a database (%s)", path,
                     msg ? msg : sqlite3_errstr(rc));
    else
      dorm_error_set(err, DORM_EIO, "sqlite: cannot set up '%s': %s (%s)", path,
                     msg ? msg : sqlite3_errstr(rc), sql);
  }
  sqlite3_free(msg);
  return rc;
}

sqlite3 *dorm__sq_open(const char *file, const char *sync, int busy_ms,
                       int writer, dorm_error *err) {
  const char *path = file ? file : ":memory:";
  sqlite3 *c = NULL;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (writer) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path, &c, flags, NULL);
  if (rc != SQLITE_OK) {
    struct stat sb;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) *slash = '\0';
    if (slash && slash != dir && stat(dir, &sb) != 0)
      dorm_error_set(err, DORM_EIO,
                     "sqlite: cannot open '%s': directory '%s' does not exist",
                     path, dir);
    else
      dorm_error_set(err, DORM_EIO, "sqlite: cannot open '%s': %s", path,
                     c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
    sqlite3_close(c);
    return NULL;
  }
  sqlite3_extended_result_codes(c, 1);
  if (file && sqlite3_db_readonly(c, "main") == 1) {
    dorm_error_set(err, DORM_EIO,
                   "sqlite: '%s' is read-only (no write permission on the "
                   "file or its directory)",
                   path);
    sqlite3_close(c);
    return NULL;
  }
  sqlite3_busy_timeout(c, busy_ms);
  char sql[128];
  /* WAL first: it reads the header, so a file that is not a database is
   * refused here with a clear message */
  if (file && writer &&
      exec_pragma(c, "PRAGMA journal_mode=WAL", err, path) != SQLITE_OK)
    goto fail;
  if (file && !writer &&
      exec_pragma(c, "PRAGMA schema_version", err, path) != SQLITE_OK)
    goto fail;
  snprintf(sql, sizeof sql, "PRAGMA synchronous=%s; PRAGMA foreign_keys=ON",
           sync);
  if (exec_pragma(c, sql, err, path) != SQLITE_OK) goto fail;
  if (!writer && exec_pragma(c, "PRAGMA query_only=1", err, path) != SQLITE_OK)
    goto fail;
  if (sqlite3_create_function(c, "dorm_div", 2,
                              SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sq_div,
                              NULL, NULL) != SQLITE_OK) {
    dorm_error_set(err, DORM_EIO, "sqlite: cannot register dorm_div: %s",
                   sqlite3_errmsg(c));
    goto fail;
  }
  if (sqlite3_create_function(c, "regexp", 2,
                              SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                              sq_regexp, NULL, NULL) != SQLITE_OK) {
    dorm_error_set(err, DORM_EIO, "sqlite: cannot register REGEXP: %s",
                   sqlite3_errmsg(c));
    goto fail;
  }
  return c;
fail:
  sqlite3_close(c);
  return NULL;
}

static uint64_t hash_sql(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

/* A prepared statement for sql, from the cache or prepared now (and then
 * cached, evicting the least recently used).  NULL with *res set on
 * error. */
static sqlite3_stmt *prepare(sq_worker *w, const dorm__stmt *st,
                             dorm_result *res) {
  uint64_t h = hash_sql(st->sql, st->len);
  sq_cached *victim = &w->cache[0];
  for (size_t i = 0; i < SQ_CACHE; i++) {
    sq_cached *e = &w->cache[i];
    if (e->st && e->hash == h && e->len == st->len &&
        !memcmp(sqlite3_sql(e->st), st->sql, st->len)) {
      e->used = ++w->tick;
      return e->st;
    }
    if (!e->st || (victim->st && e->used < victim->used)) victim = e;
  }
  sqlite3_stmt *s = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v3(w->conn, st->sql, (int)st->len,
                              SQLITE_PREPARE_PERSISTENT, &s, &tail);
  if (rc != SQLITE_OK) {
    *res = dorm__sq_error(w->conn, rc, NULL);
    return NULL;
  }
  if (!s) {
    *res = dorm_result_error(DORM_EINVAL, "sqlite: no SQL statement in '%s'",
                             st->sql);
    return NULL;
  }
  /* blanks, semicolons and comments may follow the statement */
  const char *end = st->sql + st->len;
  while (tail && tail < end) {
    if (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' ||
        *tail == ';') {
      tail++;
    } else if (tail[0] == '-' && tail + 1 < end && tail[1] == '-') {
      while (tail < end && *tail != '\n') tail++;
    } else if (tail[0] == '/' && tail + 1 < end && tail[1] == '*') {
      const char *close = strstr(tail + 2, "*/");
      tail = close ? close + 2 : end;
    } else {
      break;
    }
  }
  if (tail && tail < st->sql + st->len && *tail) {
    sqlite3_finalize(s);
    *res = dorm_result_error(
        DORM_EINVAL, "sqlite: more than one statement in '%s'", st->sql);
    return NULL;
  }
  if (victim->st)
    sqlite3_finalize(victim->st);
  else
    __atomic_add_fetch(&w->ncached, 1, __ATOMIC_RELAXED);
  victim->st = s;
  victim->hash = h;
  victim->len = st->len;
  victim->used = ++w->tick;
  return s;
}

/* A decimal goes as the number SQLite would store for it (NUMERIC
 * affinity): an integer when it is one, else a double.  As text it would
 * compare as text with anything that has no affinity (a Sum in HAVING, an
 * expression), and text sorts after every number. */
static int bind_decimal(sqlite3_stmt *s, int k, const dorm_value *v) {
  char buf[400];
  size_t n = v->u.s.len;
  if (!v->u.s.ptr || n == 0 || n >= sizeof buf)
    return sqlite3_bind_text64(s, k, v->u.s.ptr ? v->u.s.ptr : "", n,
                               SQLITE_TRANSIENT, SQLITE_UTF8);
  memcpy(buf, v->u.s.ptr, n);
  buf[n] = '\0';
  char *end;
  if (!memchr(buf, '.', n)) {
    errno = 0;
    long long i = strtoll(buf, &end, 10);
    if (!errno && *end == '\0') return sqlite3_bind_int64(s, k, i);
  }
  double d = strtod(buf, &end);
  if (*end != '\0')
    return sqlite3_bind_text64(s, k, buf, n, SQLITE_TRANSIENT, SQLITE_UTF8);
  return sqlite3_bind_double(s, k, d);
}

int dorm__sq_bind(sqlite3_stmt *s, const dorm__stmt *st, dorm_result *res) {
  int want = sqlite3_bind_parameter_count(s);
  if ((size_t)want != st->nparams) {
    *res = dorm_result_error(DORM_EINVAL,
                             "sqlite: the statement has %d parameters, %zu "
                             "given",
                             want, st->nparams);
    return -1;
  }
  for (size_t i = 0; i < st->nparams; i++) {
    const dorm_value *v = &st->params[i];
    int k = (int)i + 1, rc;
    switch (v->type) {
      case DORM_T_NULL: rc = sqlite3_bind_null(s, k); break;
      case DORM_T_BOOL: rc = sqlite3_bind_int(s, k, v->u.b); break;
      case DORM_T_INT: rc = sqlite3_bind_int64(s, k, v->u.i); break;
      case DORM_T_FLOAT: rc = sqlite3_bind_double(s, k, v->u.f); break;
      case DORM_T_BYTES:
        rc = sqlite3_bind_blob64(s, k, v->u.s.ptr ? v->u.s.ptr : "", v->u.s.len,
                                 SQLITE_STATIC);
        break;
      case DORM_T_DECIMAL: rc = bind_decimal(s, k, v); break;
      case DORM_T_TEXT:
      case DORM_T_DATE:
      case DORM_T_TIME:
      case DORM_T_DATETIME:
      case DORM_T_UUID:
      case DORM_T_JSON:
        rc = sqlite3_bind_text64(s, k, v->u.s.ptr ? v->u.s.ptr : "", v->u.s.len,
                                 SQLITE_STATIC, SQLITE_UTF8);
        break;
      default:
        *res = dorm_result_error(DORM_ETYPE,
                                 "sqlite: parameter %d: a %s cannot be bound",
                                 k, dorm_type_name(v->type));
        return -1;
    }
    if (rc != SQLITE_OK) {
      *res = dorm__sq_error(sqlite3_db_handle(s), rc, "bind");
      return -1;
    }
  }
  return 0;
}

/* A result set for the rows of s, run for st (the columns described
 * from s for a raw statement), or NULL with *res the error. */
dorm_rows *dorm__sq_rows_new(sqlite3_stmt *s, const dorm__stmt *st,
                             dorm_result *res) {
  int ncol = sqlite3_column_count(s);
  dorm_rows *rows = dorm__rows_new(st, st->columns ? 0 : (size_t)ncol);
  if (!rows) goto oom;
  if (!st->columns) {
    for (int i = 0; i < ncol; i++) {
      const char *name = sqlite3_column_name(s, i);
      if (dorm__rows_raw_column(rows, (size_t)i, name ? name : "?",
                                DORM_T_NULL))
        goto oom;
    }
  } else if ((size_t)ncol < st->ncolumns) {
    dorm__rows_free(rows);
    *res = dorm_result_error(DORM_EINVAL,
                             "sqlite: the statement yields %d columns, %zu "
                             "expected",
                             ncol, st->ncolumns);
    return NULL;
  }
  return rows;
oom:
  dorm__rows_free(rows);
  *res = dorm_result_error(DORM_ENOMEM, NULL);
  return NULL;
}

/* Add the row s stands on to rows.  0, or -1 with *res the error (rows
 * are left to the caller). */
int dorm__sq_put_row(dorm_rows *rows, sqlite3_stmt *s, dorm_result *res) {
  size_t width = dorm__rows_width(rows);
  if (dorm__rows_add_row(rows)) goto oom;
  for (size_t c = 0; c < width; c++) {
    int e = 0;
    switch (sqlite3_column_type(s, (int)c)) {
      case SQLITE_NULL: break;
      case SQLITE_INTEGER:
        e = dorm__rows_put_int(rows, c, sqlite3_column_int64(s, (int)c));
        break;
      case SQLITE_FLOAT:
        e = dorm__rows_put_float(rows, c, sqlite3_column_double(s, (int)c));
        break;
      case SQLITE_TEXT: {
        const char *t = (const char *)sqlite3_column_text(s, (int)c);
        int n = sqlite3_column_bytes(s, (int)c);
        e = t ? dorm__rows_put_text(rows, c, t, (size_t)n) : DORM_ENOMEM;
        break;
      }
      default: {
        const void *b = sqlite3_column_blob(s, (int)c);
        int n = sqlite3_column_bytes(s, (int)c);
        e = dorm__rows_put_bytes(rows, c, b ? b : "", (size_t)n);
        break;
      }
    }
    if (e == DORM_ENOMEM) goto oom;
    if (e) {
      *res = dorm_result_error(e, "sqlite: %s", dorm__rows_error(rows));
      return -1;
    }
  }
  return 0;
oom:
  *res = dorm_result_error(DORM_ENOMEM, NULL);
  return -1;
}

static int read_rows(sqlite3_stmt *s, const dorm__stmt *st, int64_t max_rows,
                     dorm_result *res) {
  dorm_rows *rows = dorm__sq_rows_new(s, st, res);
  if (!rows) return -1;
  int64_t nread = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (max_rows > 0 && nread >= max_rows) break;
    nread++;
    if (dorm__sq_put_row(rows, s, res)) {
      dorm__rows_free(rows);
      return -1;
    }
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    dorm__rows_free(rows);
    *res = dorm__sq_error(sqlite3_db_handle(s), rc, NULL);
    return -1;
  }
  if (dorm__rows_finish(rows)) {
    dorm__rows_free(rows);
    *res = dorm_result_error(DORM_ENOMEM, NULL);
    return -1;
  }
  *res = dorm__rows_result(rows);
  return 0;
}

/* 1 when sql starts with the keyword kw (any case). */
static int starts_kw(const char *sql, const char *kw) {
  while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r') sql++;
  size_t n = strlen(kw);
  if (strncasecmp(sql, kw, n)) return 0;
  char c = sql[n];
  return !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_');
}

/* After SQLite rolled a transaction back on its own: the facade's ROLLBACK
 * (or a new BEGIN) ends that state; anything else is refused.  1 when req
 * was answered here. */
static int tx_lost_filter(sq_worker *w, dorm__req *req) {
  const char *sql = req->nstmts ? req->stmts[0].sql : "";
  if (starts_kw(sql, "BEGIN")) {
    w->tx_lost = 0;
    return 0;
  }
  if (starts_kw(sql, "ROLLBACK") && !strstr(sql, " TO ")) {
    w->tx_lost = 0; /* nothing is left to roll back */
    req->result = dorm_result_count(0);
    return 1;
  }
  if (starts_kw(sql, "COMMIT") || starts_kw(sql, "END")) w->tx_lost = 0;
  req->result = dorm_result_error_sql(
      DORM_ETXABORTED, "25P02",
      "sqlite: the transaction was rolled back by an earlier error; this "
      "statement was not run");
  return 1;
}

/* Run one request on w's connection: its statements in order, stopping at
 * the first error. */
static void run_req(sq_worker *w, dorm__req *req) {
  dorm_result res = dorm_result_none();
  int64_t sum = 0;
  if (w->tx_lost && tx_lost_filter(w, req)) return;
  for (size_t i = 0; i < req->nstmts; i++) {
    const dorm__stmt *st = &req->stmts[i];
    int last = i + 1 == req->nstmts;
    int in_tx = !sqlite3_get_autocommit(w->conn);
    dorm_result_free(&res);
    sqlite3_stmt *s = prepare(w, st, &res);
    if (!s) break;
    if (dorm__sq_bind(s, st, &res)) {
      sqlite3_clear_bindings(s);
      break;
    }
    int want_rows =
        st->columns ? st->returns_rows : sqlite3_column_count(s) > 0;
    if (want_rows && last && !(req->flags & DORM__REQ_SUM_COUNTS)) {
      read_rows(s, st, req->max_rows, &res);
    } else {
      int rc;
      while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      }
      if (rc != SQLITE_DONE)
        res = dorm__sq_error(w->conn, rc, NULL);
      else {
        sum += sqlite3_changes64(w->conn);
        res = dorm_result_count(req->flags & DORM__REQ_SUM_COUNTS
                                    ? sum
                                    : sqlite3_changes64(w->conn));
      }
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (dorm_result_is_error(&res)) {
      if (in_tx && sqlite3_get_autocommit(w->conn)) w->tx_lost = 1;
      break;
    }
  }
  req->result = res;
}

/* ---- threads ------------------------------------------------------------ */

static void post_done(sq_be *be, dorm__req *head, dorm__req *tail) {
  pthread_mutex_lock(&be->mu);
  int was_empty = be->done_head == NULL;
  if (head) {
    if (be->done_tail)
      be->done_tail->next = head;
    else
      be->done_head = head;
    be->done_tail = tail;
  }
  pthread_mutex_unlock(&be->mu);
  if (was_empty) dorm_wakeup_send(be->wake);
}

static void *worker_main(void *arg) {
  sq_worker *w = arg;
  sq_be *be = w->be;
  sqlite3 *conn = NULL;
  if (w->writer) {
    dorm_error err;
    dorm_error_clear(&err);
    conn = dorm__sq_open(be->path, be->sync, be->busy_ms, 1, &err);
    pthread_mutex_lock(&be->mu);
    be->open_state = conn ? 1 : -1;
    if (!conn) be->open_err = err;
    be->ready_pending = 1;
    pthread_cond_broadcast(&be->open_cv);
    pthread_mutex_unlock(&be->mu);
    if (!conn) w->open_err = err;
    post_done(be, NULL, NULL);
  } else {
    pthread_mutex_lock(&be->mu);
    while (be->open_state == 0) pthread_cond_wait(&be->open_cv, &be->mu);
    int ok = be->open_state == 1;
    if (!ok) w->open_err = be->open_err;
    pthread_mutex_unlock(&be->mu);
    if (ok) {
      dorm_error_clear(&w->open_err);
      conn = dorm__sq_open(be->path, be->sync, be->busy_ms, 0, &w->open_err);
    }
  }
  pthread_mutex_lock(&w->mu);
  w->conn = conn;
  pthread_mutex_unlock(&w->mu);

  for (;;) {
    pthread_mutex_lock(&w->mu);
    while (!w->head && !w->stop) {
      w->idle = 1;
      pthread_cond_wait(&w->cv, &w->mu);
      w->idle = 0;
    }
    dorm__req *batch = w->head, *tail = w->tail;
    w->head = w->tail = NULL;
    int stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    for (dorm__req *r = batch; r; r = r->next) {
      if (__atomic_load_n(&be->closing, __ATOMIC_ACQUIRE))
        r->result = dorm_result_error(DORM_ECLOSED, NULL);
      else if (!conn)
        r->result = dorm_result_error_from(&w->open_err);
      else
        run_req(w, r);
    }
    if (batch) post_done(be, batch, tail);
    if (stop && !batch) break;
  }

  for (size_t i = 0; i < SQ_CACHE; i++)
    if (w->cache[i].st) sqlite3_finalize(w->cache[i].st);
  pthread_mutex_lock(&w->mu);
  w->conn = NULL;
  pthread_mutex_unlock(&w->mu);
  sqlite3_close(conn); /* an open transaction is rolled back */
  pthread_mutex_lock(&be->mu);
  be->nexited++;
  pthread_mutex_unlock(&be->mu);
  /* the loop may have been closed under us: the send then does nothing,
   * and the reference taken for this thread keeps the handle's memory */
  dorm_wakeup *wake = be->wake;
  dorm_wakeup_send(wake);
  dorm_wakeup_release(wake);
  return NULL;
}

static void be_free(sq_be *be) {
  for (size_t i = 0; i < be->nworkers; i++) {
    pthread_mutex_destroy(&be->w[i].mu);
    pthread_cond_destroy(&be->w[i].cv);
  }
  pthread_mutex_destroy(&be->mu);
  pthread_cond_destroy(&be->open_cv);
  dorm__free(be->w);
  dorm__free(be->path);
  dorm__free(be);
}

/* On the loop thread: run the done functions of finished requests, report
 * the open, and finish closing once every thread has left. */
static void on_wake(dorm_wakeup *wk, void *arg) {
  (void)wk;
  sq_be *be = arg;
  pthread_mutex_lock(&be->mu);
  dorm__req *list = be->done_head;
  be->done_head = be->done_tail = NULL;
  int ready = be->ready_pending && !be->ready_sent;
  if (ready) be->ready_sent = 1;
  int ok = be->open_state == 1;
  dorm_error err = be->open_err;
  size_t exited = be->nexited;
  pthread_mutex_unlock(&be->mu);
  if (ready) dorm__db_backend_ready(be->db, ok ? NULL : &err);
  while (list) {
    dorm__req *next = list->next;
    list->next = NULL;
    list->done(list);
    list = next;
  }
  if (be->closing && exited == be->nworkers && !be->done_closing) {
    /* a late batch may have been posted between the unlock and here */
    pthread_mutex_lock(&be->mu);
    int more = be->done_head != NULL;
    pthread_mutex_unlock(&be->mu);
    if (more) {
      on_wake(wk, arg);
      return;
    }
    be->done_closing = 1;
    for (size_t i = 0; i < be->nworkers; i++)
      if (be->w[i].started) pthread_join(be->w[i].tid, NULL);
    dorm_wakeup_close(be->wake);
    dorm_db *db = be->db;
    be_free(be);
    dorm__db_backend_closed(db);
  }
}

/* ---- the table ---------------------------------------------------------- */

static void sq_close(void *state);

static int sq_open(dorm_db *db, dorm_loop *loop, const char *url,
                   const dorm_db_options *opts, void **state, dorm_error *err) {
  sq_url u;
  if (parse_url(url, &u, err)) return err ? err->code : DORM_EURL;
  sq_be *be = dorm__calloc(1, sizeof *be);
  if (!be) {
    dorm__free(u.path);
    return dorm_error_set(err, DORM_ENOMEM, "out of memory");
  }
  be->db = db;
  be->loop = loop;
  be->path = u.path;
  be->sync = u.sync ? u.sync
             : (opts && opts->synchronous && sync_name(opts->synchronous))
                 ? sync_name(opts->synchronous)
                 : "NORMAL";
  if (opts && opts->synchronous && !sync_name(opts->synchronous)) {
    dorm__free(be->path);
    dorm__free(be);
    return dorm_error_set(err, DORM_EURL,
                          "sqlite: synchronous must be OFF, NORMAL, FULL or "
                          "EXTRA, not '%s'",
                          opts->synchronous);
  }
  be->busy_ms = u.busy_ms                             ? u.busy_ms
                : (opts && opts->busy_timeout_ms > 0) ? opts->busy_timeout_ms
                                                      : 5000;
  int readers = u.readers                     ? u.readers
                : (opts && opts->readers > 0) ? opts->readers
                                              : 2;
  if (readers > SQ_MAX_READERS) readers = SQ_MAX_READERS;
  if (!be->path) readers = 0; /* one connection serves a memory database */
  be->nworkers = 1 + (size_t)readers;
  be->w = dorm__calloc(be->nworkers, sizeof *be->w);
  pthread_mutex_init(&be->mu, NULL);
  pthread_cond_init(&be->open_cv, NULL);
  if (!be->w) {
    be->nworkers = 0;
    be_free(be);
    return dorm_error_set(err, DORM_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < be->nworkers; i++) {
    pthread_mutex_init(&be->w[i].mu, NULL);
    pthread_cond_init(&be->w[i].cv, NULL);
    be->w[i].be = be;
    be->w[i].slot = i;
    be->w[i].writer = i == 0;
  }
  be->wake = dorm_wakeup_new(loop, on_wake, be);
  if (!be->wake) {
    be_free(be);
    return dorm_error_set(err, DORM_ENOMEM,
                          "sqlite: cannot create the loop wake-up");
  }
  for (size_t i = 0; i < be->nworkers; i++) {
    dorm_wakeup_retain(be->wake); /* released as the thread exits */
    if (pthread_create(&be->w[i].tid, NULL, worker_main, &be->w[i]) != 0) {
      /* stop the ones that started; their exit finishes the close */
      int e = errno;
      dorm_wakeup_release(be->wake);
      if (i == 0) {
        dorm_wakeup_close(be->wake);
        be_free(be);
        return dorm_error_set(err, DORM_EIO,
                              "sqlite: cannot start a thread: %s", strerror(e));
      }
      be->nworkers = i;
      break;
    }
    be->w[i].started = 1;
  }
  *state = be;
  return 0;
}

static size_t sq_nconns(void *state) {
  sq_be *be = state;
  return be->nworkers;
}

static unsigned sq_conn_flags(void *state, size_t conn) {
  sq_be *be = state;
  if (be->nworkers == 1) return DORM__CONN_READ | DORM__CONN_WRITE;
  return conn == 0 ? DORM__CONN_WRITE : DORM__CONN_READ;
}

static void sq_submit(void *state, size_t conn, dorm__req *req) {
  sq_be *be = state;
  sq_worker *w = &be->w[conn < be->nworkers ? conn : 0];
  req->next = NULL;
  pthread_mutex_lock(&w->mu);
  if (w->tail)
    w->tail->next = req;
  else
    w->head = req;
  w->tail = req;
  int wake = w->idle;
  pthread_mutex_unlock(&w->mu);
  if (wake) pthread_cond_signal(&w->cv);
}

/* What dorm_db_conn_stats shows of a thread (dorm/observe.h). */
static void sq_conn_info(void *state, size_t conn, dorm__conn_info *out) {
  sq_be *be = state;
  memset(out, 0, sizeof *out);
  out->state = DORM_CONN_READY;
  if (conn < be->nworkers)
    out->statements_cached =
        __atomic_load_n(&be->w[conn].ncached, __ATOMIC_RELAXED);
}

static void sq_close(void *state) {
  sq_be *be = state;
  __atomic_store_n(&be->closing, 1, __ATOMIC_RELEASE);
  for (size_t i = 0; i < be->nworkers; i++) {
    sq_worker *w = &be->w[i];
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    /* a statement running now stops with SQLITE_INTERRUPT; its result is
     * discarded (the facade already failed the deferred) */
    if (w->conn) sqlite3_interrupt(w->conn);
    pthread_mutex_unlock(&w->mu);
    pthread_cond_signal(&w->cv);
  }
}

/* SQLite has no LISTEN / NOTIFY: dorm_listen and dorm_unlisten give NULL
 * (dorm/db.h: "db is not a PostgreSQL database"). */
static dorm_deferred *sq_listen(void *state, const char *channel,
                                dorm_notify_fn fn, void *arg) {
  return NULL;
}

static int sq_stream_start(void *state, dorm__stream *s, dorm_error *err) {
  sq_be *be = state;
  return dorm__sq_stream_start(be->loop, be->path, be->sync, be->busy_ms, s,
                               err);
}

const dorm__backend dorm__sqlite_backend = {
    .name = "sqlite",
    .dialect = DORM_DIALECT_SQLITE,
    .max_params = 32766,
    .begin_sql = "BEGIN IMMEDIATE",
    .accepts = sq_accepts,
    .open = sq_open,
    .nconns = sq_nconns,
    .conn_flags = sq_conn_flags,
    .submit = sq_submit,
    .close = sq_close,
    .listen = sq_listen,
    .unlisten = sq_listen,
    .stream_start = sq_stream_start,
    .stream_more = dorm__sq_stream_more,
    .stream_stop = dorm__sq_stream_stop,
    .conn_info = sq_conn_info,
};
