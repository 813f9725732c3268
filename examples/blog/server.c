/* SPDX-License-Identifier: MIT */
/* examples/blog/server.c — a small blog API whose handlers use dorm's C API
 * directly, on dorm's HTTP server (dorm/http.h; not `dorm serve`).
 *
 *   GET  /          dashboard: three queries run at once, gathered into one
 *                   JSON answer
 *   POST /entries   {"author": 1, "headline": "...", "body": "...",
 *                    "rating": 4.5, "tags": [1, 2]}: the entry and its
 *                   tags are created in one transaction (201, or 409 and
 *                   nothing created)
 *   GET  /feed      server-sent events: an "entry" event for each entry
 *                   created from now on ("gap" when some may have been
 *                   missed: PostgreSQL's listening connection was lost)
 *
 *   server [--db URL] [--host 127.0.0.1] [--port 8000] [--models FILE]
 *
 * The database must be migrated first (`dorm migrate --migrations
 * examples/blog/migrations --db URL`); --db defaults to $DATABASE_URL, else
 * sqlite:///db.sqlite3; $DATABASE_REPLICA_URLS adds PostgreSQL read
 * replicas.  The feed: on PostgreSQL the transaction that
 * creates an entry also NOTIFYs the channel "blog_entries" with its id,
 * delivered at COMMIT to every server listening (LISTEN), so the feed of
 * every process sees every entry; SQLite has no LISTEN, so there the POST
 * handler tells this process's feed directly, after the commit.
 *
 * Every handler returns at once: it starts queries and answers from their
 * callbacks.  Every path through a handler completes its response exactly
 * once.  SIGINT or SIGTERM closes gracefully: the feeds end, requests in
 * flight are answered, then the database and the loop close.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dorm.h"

#define CHANNEL "blog_entries"

static struct {
  dorm_loop *loop;
  dorm_db *db;
  dorm_http_server *server;
  const dorm_model *Author, *Entry;
  int pg;        /* PostgreSQL: the transaction NOTIFYs */
  int listening; /* LISTEN is on: the feed hears entries from NOTIFY */
  const char *host;
  int port;
  int exit_code;
  uv_signal_t sigint, sigterm;
  dorm_timer *heartbeat;
} app;

/* An entry row as JSON, its author (from select_related) nested. */
static json_t *entry_json(const dorm_row *e) {
  json_t *j = dorm_row_to_json(e);
  const dorm_row *a = dorm_row_related(e, "author");
  if (j && a) json_object_set_new(j, "author", dorm_row_to_json(a));
  return j;
}

/* An errback for requests that answer with JSON: a fixed text for the
 * client (never the database's message, which goes to our log). */
static dorm_result answer_error(dorm_result *res, void *arg) {
  dorm_http_response *http = arg;
  if (dorm_result_code(res) == DORM_EINTEGRITY) {
    dorm_http_respond_error(http, 409, "unknown author or tag");
  } else {
    fprintf(stderr, "server: %s\n", dorm_result_message(res));
    dorm_http_respond_error(http, 503, "database unavailable");
  }
  return dorm_result_none(); /* handled */
}

/* ==== GET / : three queries at once, one answer ======================== */

static dorm_result dashboard_ready(dorm_result *res, void *arg) {
  const dorm_result *r = res->u.list.items; /* in the order given */
  json_t *latest = json_array();
  const dorm_rows *rows = dorm_result_rows_of(&r[0]);
  for (size_t i = 0; i < dorm_rows_count(rows); i++)
    json_array_append_new(latest, entry_json(dorm_rows_row(rows, i)));
  dorm_http_respond_json(
      arg, 200,
      json_pack("{s:o, s:I, s:o}", "latest", latest, "authors",
                (json_int_t)r[1].u.count, "top_authors",
                dorm_rows_to_json(dorm_result_rows_of(&r[2]))));
  return dorm_result_none();
}

static void dashboard(dorm_http_response *http) {
  dorm_deferred *ds[3];
  /* 1. the five latest entries (models.json orders by -published), each
   *    with its author: select_related is a JOIN, not one query per row */
  dorm_query *q = dorm_select(app.Entry);
  dorm_select_related(q, "author");
  dorm_slice(q, 0, 5);
  ds[0] = dorm_async_filter(app.db, q);
  /* 2. how many authors (the query is compiled: reuse its memory) */
  dorm_query_reset(q, DORM_QUERY_SELECT, app.Author);
  ds[1] = dorm_async_count(app.db, q);
  /* 3. the three best-rated authors: AVG over their entries, GROUP BY
   *    author; a filter on an annotation is a HAVING */
  dorm_query_reset(q, DORM_QUERY_SELECT, app.Author);
  dorm_annotate(q, "avg_rating", DORM_AGG_AVG, "entries__rating");
  dorm_annotate(q, "n_entries", DORM_AGG_COUNT, "entries");
  dorm_filter(q, "n_entries__gt", dorm_int(0));
  dorm_order_by(q, "-avg_rating");
  dorm_order_by(q, "name");
  dorm_slice(q, 0, 3);
  ds[2] = dorm_async_filter(app.db, q);
  dorm_query_free(q);
  /* All three are in flight now (SQLite: on its reader threads;
   * PostgreSQL: pipelined on the pool).  The gather fires once all have
   * succeeded, or with the first error. */
  dorm_deferred *all =
      ds[0] && ds[1] && ds[2] ? dorm_gather(app.loop, ds, 3, 0) : NULL;
  if (!all ||
      dorm_deferred_add_callbacks(all, dashboard_ready, answer_error, http))
    dorm_http_respond_error(http, 503, "out of memory"); /* nothing runs */
}

/* ==== GET /feed : server-sent events =================================== */

/* The clients of this process's feed, in a list. */
typedef struct feed_client {
  dorm_http_response *res;
  struct feed_client *prev, *next;
} feed_client;
static feed_client *feeds;

/* Unlink fc, end its stream (which completes the response) and free it. */
static void feed_drop(feed_client *fc) {
  if (fc->prev)
    fc->prev->next = fc->next;
  else
    feeds = fc->next;
  if (fc->next) fc->next->prev = fc->prev;
  dorm_http_stream_end(fc->res);
  free(fc);
}

/* The client went away: nothing to write to any more. */
static void feed_gone(dorm_http_response *res, void *arg) { feed_drop(arg); }

/* Write text to every feed client; drop those that are gone, and those so
 * slow that a megabyte waits for them (never let one reader grow memory). */
static void feed_send(const char *text) {
  for (feed_client *fc = feeds, *next; fc; fc = next) {
    next = fc->next;
    if (dorm_http_stream_write(fc->res, text, strlen(text)) ||
        dorm_http_stream_pending(fc->res) > (1u << 20))
      feed_drop(fc);
  }
}

static void feed(dorm_http_response *http) {
  feed_client *fc = calloc(1, sizeof *fc);
  if (!fc) return (void)dorm_http_respond_error(http, 503, "out of memory");
  fc->res = http;
  dorm_http_response_header(http, "Cache-Control", "no-store");
  /* The response stays open: it is completed by feed_drop, when the client
   * leaves or the server shuts down. */
  dorm_http_stream_start(http, 200, "text/event-stream");
  dorm_http_response_on_gone(http, feed_gone, fc);
  fc->next = feeds;
  if (feeds) feeds->prev = fc;
  feeds = fc;
  /* A comment line: tells the client it is subscribed. */
  dorm_http_stream_write(http, ": connected\n\n", 13);
}

/* Keep idle streams open through proxies, and notice clients that left. */
static void on_heartbeat(dorm_timer *t, void *arg) { feed_send(": ping\n\n"); }

/* The entry with this id, read with its author, to every feed client. */
static dorm_result entry_to_feed(dorm_result *res, void *arg) {
  json_t *j = entry_json(dorm_result_row_of(res));
  char *data = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  size_t n = data ? strlen(data) + 32 : 0;
  char *msg = data ? malloc(n) : NULL;
  if (msg) {
    snprintf(msg, n, "event: entry\ndata: %s\n\n", data);
    feed_send(msg);
  }
  free(msg);
  free(data);
  return dorm_result_none();
}

static dorm_result feed_error(dorm_result *res, void *arg) {
  fprintf(stderr, "server: feed: %s\n", dorm_result_message(res));
  return dorm_result_none();
}

static void announce_entry(int64_t id) {
  if (!feeds) return; /* nobody listens: skip the query */
  dorm_query *q = dorm_select(app.Entry);
  dorm_filter(q, "pk", dorm_int(id));
  dorm_select_related(q, "author");
  dorm_deferred *d = dorm_async_get(app.db, q);
  dorm_query_free(q);
  if (d) dorm_deferred_add_callbacks(d, entry_to_feed, feed_error, NULL);
}

/* PostgreSQL: a NOTIFY on CHANNEL, from any process's POST (see notify()
 * below).  The payload is the new entry's id.  After the listening
 * connection was lost and restored (gap), entries made meanwhile were
 * missed: tell the clients, who re-read the dashboard. */
static void on_notify(dorm_db *db, const dorm_notification *n, void *arg) {
  if (n->gap)
    feed_send("event: gap\ndata: {}\n\n");
  else
    announce_entry(strtoll(n->payload, NULL, 10));
}

/* ==== POST /entries : a create inside a transaction ==================== */

/* What one POST needs from its handler to its answer. */
typedef struct new_entry {
  dorm_http_response *http;
  json_t *in;  /* the request body */
  dorm_db *tx; /* the transaction, while the block runs */
  json_t *out; /* the created entry, answered with 201 */
  int64_t id;  /* its primary key */
} new_entry;

static void new_entry_free(new_entry *ne) {
  json_decref(ne->in);
  json_decref(ne->out);
  free(ne);
}

/* Step 2, in the transaction: the entry is in; add its tags, Django's
 * entry.tags.add(...): dorm_async_m2m_add writes the join table entry_tags
 * (Entry.tags, docs/ddl.md) in one statement.  A tag given twice is one
 * pair.  A tag id that does not exist fails the foreign key (at COMMIT:
 * dorm's foreign keys are deferred), and the whole transaction rolls back,
 * the entry with it. */
static dorm_result add_tags(dorm_result *res, void *arg) {
  new_entry *ne = arg;
  const dorm_row *row = dorm_result_row_of(res);
  ne->id = dorm_row_int(row, "id");
  ne->out = dorm_row_to_json(row);
  json_t *tags = json_object_get(ne->in, "tags");
  size_t n = json_array_size(tags);
  json_object_set_new(ne->out, "tags", tags ? json_incref(tags) : json_array());
  if (!n) return dorm_result_none();
  dorm_value ids[32]; /* the handler allows at most 32 */
  for (size_t i = 0; i < n; i++)
    ids[i] = dorm_int(json_integer_value(json_array_get(tags, i)));
  dorm_deferred *d = dorm_async_m2m_add(ne->tx, app.Entry, "tags",
                                        dorm_int(ne->id), ids, n);
  return d ? dorm_result_deferred(d) : dorm_result_error(DORM_ENOMEM, NULL);
}

/* Step 3, PostgreSQL: NOTIFY inside the transaction, so listeners hear of
 * the entry only if it commits.  pg_notify() takes the channel and the
 * payload as parameters. */
static dorm_result notify(dorm_result *res, void *arg) {
  new_entry *ne = arg;
  if (!app.pg) return dorm_result_none();
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)ne->id);
  dorm_value params[] = {dorm_str(CHANNEL), dorm_str(id)}; /* copied */
  dorm_deferred *d =
      dorm_async_execute(ne->tx, "SELECT pg_notify($1, $2)", params, 2);
  return d ? dorm_result_deferred(d) : dorm_result_error(DORM_ENOMEM, NULL);
}

/* The transaction's body.  Every request on tx runs inside it; the chain
 * returned ends the block: success commits, an error rolls back. */
static dorm_deferred *create_entry(dorm_db *tx, void *arg) {
  new_entry *ne = arg;
  ne->tx = tx;
  char now[40];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  size_t k = strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%S", gmtime(&ts.tv_sec));
  snprintf(now + k, sizeof now - k, ".%06ldZ", ts.tv_nsec / 1000);

  json_t *in = ne->in;
  dorm_query *q = dorm_insert(app.Entry);
  dorm_set(q, "author",
           dorm_int(json_integer_value(json_object_get(in, "author"))));
  dorm_set(q, "headline",
           dorm_str(json_string_value(json_object_get(in, "headline"))));
  if (json_is_string(json_object_get(in, "body")))
    dorm_set(q, "body",
             dorm_str(json_string_value(json_object_get(in, "body"))));
  if (json_is_number(json_object_get(in, "rating")))
    dorm_set(q, "rating",
             dorm_float(json_number_value(json_object_get(in, "rating"))));
  dorm_set(q, "published", dorm_datetime(now));
  dorm_deferred *d = dorm_async_create(tx, q); /* step 1: the entry */
  dorm_query_free(q);
  if (d) {
    dorm_deferred_add_callback(d, add_tags, ne);
    dorm_deferred_add_callback(d, notify, ne);
  }
  return d;
}

/* Committed: answer 201.  Without LISTEN, tell our own feed now. */
static dorm_result entry_created(dorm_result *res, void *arg) {
  new_entry *ne = arg;
  dorm_http_respond_json(ne->http, 201, json_incref(ne->out));
  if (!app.listening) announce_entry(ne->id);
  new_entry_free(ne);
  return dorm_result_none();
}

/* Rolled back (or never begun): nothing was created. */
static dorm_result entry_failed(dorm_result *res, void *arg) {
  new_entry *ne = arg;
  answer_error(res, ne->http);
  new_entry_free(ne);
  return dorm_result_none();
}

/* Check the body's shape here; the database checks the rest (that the
 * author and tags exist) inside the transaction. */
static const char *check_entry(const json_t *in) {
  if (!json_is_object(in)) return "the body must be a JSON object";
  if (!json_is_integer(json_object_get(in, "author")))
    return "'author' must be an author's id";
  const char *h = json_string_value(json_object_get(in, "headline"));
  if (!h || !*h || strlen(h) > 255)
    return "'headline' must be 1 to 255 characters";
  json_t *v = json_object_get(in, "body");
  if (v && !json_is_string(v)) return "'body' must be a string";
  v = json_object_get(in, "rating");
  if (v && !json_is_number(v)) return "'rating' must be a number";
  json_t *tags = json_object_get(in, "tags");
  if (tags && (!json_is_array(tags) || json_array_size(tags) > 32))
    return "'tags' must be a list of at most 32 tag ids";
  for (size_t i = 0; i < json_array_size(tags); i++)
    if (!json_is_integer(json_array_get(tags, i)))
      return "'tags' must be a list of at most 32 tag ids";
  return NULL;
}

static void post_entry(dorm_http_request *req, dorm_http_response *http) {
  json_t *in = json_loadb(req->body, req->body_len, 0, NULL);
  const char *bad = check_entry(in);
  if (bad) {
    json_decref(in);
    return (void)dorm_http_respond_error(http, 400, bad);
  }
  new_entry *ne = calloc(1, sizeof *ne);
  if (ne) {
    ne->in = in;
    ne->http = http;
  }
  dorm_deferred *d = ne ? dorm_async_atomic(app.db, create_entry, ne) : NULL;
  if (!d) { /* out of memory: create_entry will not run */
    if (ne)
      new_entry_free(ne);
    else
      json_decref(in);
    dorm_http_respond_error(http, 503, "out of memory");
    return;
  }
  /* The transaction's outcome answers: exactly one of the two runs (the
   * first step added to a new deferred is always accepted). */
  dorm_deferred_add_callbacks(d, entry_created, entry_failed, ne);
}

/* ==== routing, start-up, shut-down ===================================== */

static void handle(dorm_http_request *req, dorm_http_response *http,
                   void *arg) {
  const char *m = req->method, *p = req->path;
  if (!strcmp(p, "/") && !strcmp(m, "GET"))
    dashboard(http);
  else if (!strcmp(p, "/entries") && !strcmp(m, "POST"))
    post_entry(req, http);
  else if (!strcmp(p, "/feed") && !strcmp(m, "GET"))
    feed(http);
  else if (!strcmp(p, "/") || !strcmp(p, "/entries") || !strcmp(p, "/feed"))
    dorm_http_respond_error(http, 405, "method not allowed");
  else
    dorm_http_respond_error(http, 404, "not found");
}

static void db_closed(void *arg) { dorm_loop_close(app.loop, NULL, NULL); }
static void server_closed(void *arg) { dorm_db_close(app.db, db_closed, NULL); }

/* Graceful: end the feeds (they would never end by themselves), let the
 * server answer what it has received, then close the database (from the
 * server's close callback, so no handler finds it closed), then the loop. */
static void shutdown_all(void) {
  if (uv_is_closing((uv_handle_t *)&app.sigint)) return;
  uv_close((uv_handle_t *)&app.sigint, NULL);
  uv_close((uv_handle_t *)&app.sigterm, NULL);
  dorm_timer_close(app.heartbeat);
  while (feeds) feed_drop(feeds);
  if (app.server)
    dorm_http_server_close(app.server, server_closed, NULL);
  else
    server_closed(NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
  fprintf(stderr, "server: shutting down\n");
  shutdown_all();
}

/* The database answers.  On PostgreSQL, LISTEN before serving, so every
 * entry committed once we serve reaches our feed. */
static dorm_result listen_for_entries(dorm_result *res, void *arg) {
  if (!app.pg) return dorm_result_none(); /* SQLite: no LISTEN */
  dorm_deferred *d = dorm_listen(app.db, CHANNEL, on_notify, NULL);
  return d ? dorm_result_deferred(d) : dorm_result_error(DORM_ENOMEM, NULL);
}

static dorm_result start_serving(dorm_result *res, void *arg) {
  app.listening = app.pg;
  dorm_error err;
  dorm_error_clear(&err);
  dorm_http_options opts;
  dorm_http_options_init(&opts);
  opts.access_log = 1; /* one line per request on stderr */
  app.server = dorm_http_server_new(app.loop, &opts, handle, NULL, &err);
  if (!app.server ||
      dorm_http_server_listen(app.server, app.host, app.port, &err)) {
    fprintf(stderr, "server: %s\n", err.message);
    app.exit_code = 1;
    shutdown_all();
    return dorm_result_none();
  }
  fprintf(stderr, "server: listening on http://%s:%d/ (%s)\n", app.host,
          dorm_http_server_port(app.server), dorm_db_backend_name(app.db));
  return dorm_result_none();
}

static dorm_result on_not_ready(dorm_result *res, void *arg) {
  fprintf(stderr, "server: %s\n", dorm_result_message(res));
  app.exit_code = 1;
  shutdown_all();
  return dorm_result_none();
}

int main(int argc, char **argv) {
  const char *url = NULL, *models = "examples/blog/models.json";
  app.host = "127.0.0.1";
  app.port = 8000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--db"))
      url = argv[i + 1];
    else if (!strcmp(argv[i], "--host"))
      app.host = argv[i + 1];
    else if (!strcmp(argv[i], "--port"))
      app.port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--models"))
      models = argv[i + 1];
    else
      break;
  }
  if (argc % 2 == 0) {
    fprintf(stderr,
            "usage: server [--db URL] [--host 127.0.0.1] "
            "[--port 8000] [--models FILE]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an error code */
  dorm_error err;
  dorm_error_clear(&err);
  dorm_schema *schema = dorm_schema_load_file(models, &err);
  if (!schema) {
    fprintf(stderr, "server: %s\n", err.message);
    return 1;
  }
  app.Author = dorm_schema_model(schema, "Author");
  app.Entry = dorm_schema_model(schema, "Entry");

  uv_loop_t uv;
  uv_loop_init(&uv);
  app.loop = dorm_loop_new(&uv);
  /* PostgreSQL read replicas, if any: the dashboard's reads go there, the
   * posts (a transaction) and the feed's LISTEN to the primary, and each
   * post's own later reads still see it (docs/scaleout.md) */
  dorm_db_options dbo;
  dorm_db_options_init(&dbo);
  const char *reps = getenv("DATABASE_REPLICA_URLS");
  const char *u = url ? url : getenv("DATABASE_URL");
  if (reps && *reps && u && strncmp(u, "sqlite:", 7)) dbo.replicas = reps;
  app.db = dorm_db_open(app.loop, url, &dbo, &err); /* connects later */
  if (!app.db) {
    fprintf(stderr, "server: %s\n", err.message);
    return 1;
  }
  app.pg = dorm_db_dialect(app.db) == DORM_DIALECT_POSTGRES;
  uv_signal_init(&uv, &app.sigint);
  uv_signal_init(&uv, &app.sigterm);
  uv_signal_start(&app.sigint, on_signal, SIGINT);
  uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  app.heartbeat = dorm_timer_new(app.loop, on_heartbeat, NULL);
  dorm_timer_start(app.heartbeat, 15000, 15000);
  dorm_deferred *ready = dorm_db_ready(app.db);
  dorm_deferred_add_callback(ready, listen_for_entries, NULL);
  dorm_deferred_add_callbacks(ready, start_serving, on_not_ready, NULL);

  uv_run(&uv, UV_RUN_DEFAULT); /* returns once everything has closed */
  uv_loop_close(&uv);
  dorm_schema_free(schema);
  return app.exit_code;
}
