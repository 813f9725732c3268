/* SPDX-License-Identifier: MIT */
/* dorm/rows.h — result rows: typed getters by field name, related rows
 * from select_related and prefetch_related, and conversion to JSON.
 *
 * A query's rows arrive as DORM_RESULT_ROWS (a dorm_rows) or, from get,
 * first, create and aggregate, DORM_RESULT_ROW (one dorm_row).  Values are
 * decoded by the model's field types whatever the backend: integers
 * (int64), floats, booleans, decimals (text, "12.50", as many decimals as
 * the field declares), text, dates ("2024-05-01"), times ("13:45:00"),
 * date-times in UTC ISO 8601 ("2024-05-01T13:45:00Z", with ".ffffff" when
 * there is a fraction), uuids (lower-case, dashed), json (text; parsed by
 * dorm_row_json), bytes.
 *
 * Names.  A getter takes what the query's columns are called: the field
 * name ("age"; "author" for a foreign key, which holds the related primary
 * key, and also "author_id"), a values() path ("author__name"), or an
 * aggregate / annotation alias.  An unknown name reads as NULL (the
 * getters return 0 / NULL); dorm_row_value returns NULL for it so the two
 * can be told apart.  Lookups by name compare strings: fine for rows of a
 * few dozen columns; for a tight loop over many rows fetch the index once
 * with dorm_rows_column_index and use the *_at getters.
 *
 * Ownership.  Rows, rows' rows and every pointer a getter returns are
 * owned by the result they came from: valid while the chain owns it (i.e.
 * during the step that receives it), or until you dorm_result_free() a
 * result you took with dorm_result_take().  json_t values returned here
 * are new references: json_decref them.  Everything is read-only and may
 * be read from any thread once handed over.
 */
#ifndef DORM_ROWS_H
#define DORM_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dorm/version.h"
#include "dorm/deferred.h"
#include "dorm/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dorm_rows dorm_rows;
typedef struct dorm_row dorm_row;

/* ---- a result set ------------------------------------------------------- */

DORM_EXTERN size_t dorm_rows_count(const dorm_rows *rows);
/* Row i (0-based), or NULL when i >= count.  Borrowed from rows. */
DORM_EXTERN const dorm_row *dorm_rows_row(const dorm_rows *rows, size_t i);
/* Columns of the main row (select_related columns not counted). */
DORM_EXTERN size_t dorm_rows_ncolumns(const dorm_rows *rows);
/* Name of column i ("age", "author", "author__name", an alias), or NULL. */
DORM_EXTERN const char *dorm_rows_column_name(const dorm_rows *rows, size_t i);
/* Index of a column of the main row by name, or -1. */
DORM_EXTERN int dorm_rows_column_index(const dorm_rows *rows, const char *name);

/* The rows of a result: DORM_RESULT_ROWS gives its rows; anything else
 * NULL.  res is borrowed. */
DORM_EXTERN const dorm_rows *dorm_result_rows_of(const dorm_result *res);
/* The row of a result: DORM_RESULT_ROW gives its row, DORM_RESULT_ROWS
 * its first row (NULL when empty); anything else NULL. */
DORM_EXTERN const dorm_row *dorm_result_row_of(const dorm_result *res);

/* ---- one row ------------------------------------------------------------ */

/* The value of a column, borrowed (strings point into the rows and are
 * NUL-terminated); NULL when there is no such column. */
DORM_EXTERN const dorm_value *dorm_row_value(const dorm_row *row,
                                             const char *name);
/* Value of column index i (dorm_rows_column_index); NULL out of range. */
DORM_EXTERN const dorm_value *dorm_row_value_at(const dorm_row *row, size_t i);

/* 1 when the value is NULL or there is no such column. */
DORM_EXTERN int dorm_row_is_null(const dorm_row *row, const char *name);
/* Integer columns (and booleans as 0/1, floats truncated, saturating at
 * INT64_MIN / INT64_MAX, NaN 0); 0 for NULL. */
DORM_EXTERN int64_t dorm_row_int(const dorm_row *row, const char *name);
/* Float columns (integers and decimals converted); 0.0 for NULL. */
DORM_EXTERN double dorm_row_float(const dorm_row *row, const char *name);
/* Boolean columns (integers: non-zero); 0 for NULL. */
DORM_EXTERN int dorm_row_bool(const dorm_row *row, const char *name);
/* Text of any text-like column (text, decimal, dates and times, uuid,
 * json), NUL-terminated; NULL for NULL, bytes and numbers. */
DORM_EXTERN const char *dorm_row_text(const dorm_row *row, const char *name);
/* Bytes of a binary (or text) column and their length; NULL for NULL. */
DORM_EXTERN const void *dorm_row_bytes(const dorm_row *row, const char *name,
                                       size_t *len);
/* A json column parsed (new reference), or NULL for NULL / not json. */
DORM_EXTERN json_t *dorm_row_json(const dorm_row *row, const char *name);

/* The related row filled by select_related(path) ("author",
 * "entry__author"), borrowed from the same rows; NULL when the query did
 * not select it or the relation is NULL (a nullable foreign key). */
DORM_EXTERN const dorm_row *dorm_row_related(const dorm_row *row,
                                             const char *path);

/* The related rows read by prefetch_related(name) (dorm/query.h) for this
 * row: "entries", "tags", "author" as given to dorm_prefetch_related; for
 * a nested path ("entries__tags") ask each level's rows for the next
 * level ("entries" on an author, then "tags" on each of its entries).
 * Rows of the relation's model (read them with the functions here, in
 * the model's default ordering, else by primary key), an empty dorm_rows
 * (count 0, not NULL) when the row has none; NULL only when the query did
 * not prefetch `name` (or row is a select_related row).  Borrowed: owned
 * by the result the row came from and freed with it, like the row. */
DORM_EXTERN const dorm_rows *dorm_row_prefetched(const dorm_row *row,
                                                 const char *name);

/* From get_or_create / update_or_create: 1 when the row was inserted by
 * that call, 0 otherwise (and for every other row). */
DORM_EXTERN int dorm_row_created(const dorm_row *row);

/* ---- JSON (the object shape of docs/serve.md, "Routes") ----------------- */

/* The row as a JSON object keyed by column name: a foreign key as
 * "author": <related pk>, date-times and dates and times as ISO 8601
 * strings, decimals and uuids as strings, json columns as JSON, bytes as
 * base64 strings, NULL as null; a byte of text that is not UTF-8 (a
 * SQLite column another program wrote) as U+FFFD.  select_related rows
 * are not included
 * (ask dorm_row_related); prefetched relations are, as Django REST's
 * nested serializers show them: "entries": [{...}, ...] for a reverse
 * foreign key or a many_to_many, and for a prefetched forward foreign key
 * the related object (or null) in place of its key ("author": {...}),
 * each level of a nested path inside the level above.  Returns a new
 * reference, or NULL when out of memory. */
DORM_EXTERN json_t *dorm_row_to_json(const dorm_row *row);
/* An array of dorm_row_to_json of every row.  New reference or NULL. */
DORM_EXTERN json_t *dorm_rows_to_json(const dorm_rows *rows);

#ifdef __cplusplus
}
#endif
#endif /* DORM_ROWS_H */
