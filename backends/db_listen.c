/* SPDX-License-Identifier: MIT */
/* backends/db_listen.c — dorm_listen and dorm_unlisten: the facade hands
 * them to the backend's listen and unlisten entries (backend_int.h).
 *
 * The subscriptions, and the connection they arrive on, belong to the
 * database they serve, so they live in the backend's state (PostgreSQL:
 * the pool's listener, backends/pg/pg_listen.c) and go with it; a
 * backend without notifications (SQLite) refuses with NULL.  A primary
 * view or a transaction handle listens for its database.  The query hooks
 * see each call as a request of kind LISTEN (db_hooks.c).
 */
#include "backends/db_int.h"

dorm_deferred *dorm_listen(dorm_db *db, const char *channel, dorm_notify_fn fn,
                           void *arg) {
  if (!db || !channel || !fn) return NULL;
  dorm_db *root = db->root;
  if (root->backend_gone) return NULL; /* closed: its state is gone */
  return dorm__db_obs_listen(root,
                             root->be->listen(root->bstate, channel, fn, arg),
                             "LISTEN", channel);
}

dorm_deferred *dorm_unlisten(dorm_db *db, const char *channel,
                             dorm_notify_fn fn, void *arg) {
  if (!db || !channel || !fn) return NULL;
  dorm_db *root = db->root;
  if (root->backend_gone) return NULL;
  return dorm__db_obs_listen(root,
                             root->be->unlisten(root->bstate, channel, fn, arg),
                             "UNLISTEN", channel);
}
