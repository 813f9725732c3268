/* SPDX-License-Identifier: MIT */
/* backends/db_listen.c — dorm_listen and dorm_unlisten: the facade hands
 * them to the backend's listen and unlisten entries (backend_int.h).
 *
 * The subscriptions, and the connection they arrive on, belong to the
 * database they serve, so they live in the backend's state (PostgreSQL:
 * the pool's listener, backends/pg/pg_listen.c) and go with it; a
 * backend without notifications (SQLite) refuses with NULL.  A primary
 * view or a transaction handle listens for its database.
 */
#include "backends/db_int.h"

dorm_deferred *dorm_listen(dorm_db *db, const char *channel, dorm_notify_fn fn,
                           void *arg) {
  if (!db || !channel || !fn) return NULL;
  dorm_db *root = db->root;
  if (root->backend_gone) return NULL; /* closed: its state is gone */
  return root->be->listen(root->bstate, channel, fn, arg);
}

dorm_deferred *dorm_unlisten(dorm_db *db, const char *channel,
                             dorm_notify_fn fn, void *arg) {
  if (!db || !channel || !fn) return NULL;
  dorm_db *root = db->root;
  if (root->backend_gone) return NULL;
  return root->be->unlisten(root->bstate, channel, fn, arg);
}
