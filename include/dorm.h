/* SPDX-License-Identifier: MIT */
/* dorm.h — the public API of dorm, an asynchronous ORM for C.
 *
 * Include this one header.  The API is split by layer (the folder that
 * implements each header in brackets):
 *   dorm/version.h   the version (dorm_version()) and DORM_EXTERN  [base/]
 *   dorm/error.h     the one error list, dorm_error, the allocator hook
 *   dorm/value.h     dorm_value, the typed value every layer passes
 *   dorm/schema.h    models: load models.json or build them in C [schema/]
 *   dorm/migration.h migration files, model state, the autodetector
 *   dorm/query.h     the pure query builder and compiler (no I/O) [query/]
 *   dorm/ddl.h       schema changes compiled to SQL [query/ddl/]
 *   dorm/deferred.h  deferreds: callback chains for results that come
 *                    later [reactor_glue/]
 *   dorm/loop.h      the libuv glue (includes <uv.h>) [reactor_glue/]
 *   dorm/db.h        databases: open, read, write, transactions [backends/]
 *   dorm/rows.h      result rows and their values [backends/]
 *   dorm/iterate.h   streaming reads, a chunk at a time [backends/]
 *   dorm/observe.h   query hooks, statistics, the statement log [backends/]
 *   dorm/http.h      the HTTP/1.1 server on the loop [http/]
 *   dorm/migrate.h   migrating a database from a program [migrate/]
 *
 * Rule: when a function that takes a callback returns an error, the
 * callback is never called.
 */
#ifndef DORM_H
#define DORM_H

#include "dorm/version.h"
#include "dorm/error.h"
#include "dorm/value.h"
#include "dorm/schema.h"
#include "dorm/query.h"
#include "dorm/ddl.h"
#include "dorm/deferred.h"
#include "dorm/loop.h"
#include "dorm/db.h"
#include "dorm/observe.h"
#include "dorm/rows.h"
#include "dorm/iterate.h"
#include "dorm/migration.h"
#include "dorm/migrate.h"
#include "dorm/http.h"

#endif /* DORM_H */
