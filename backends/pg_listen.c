/* backends/pg_listen.c — LISTEN/NOTIFY (stub, being written). */
#include "backends/pg_int.h"

void dorm__pg_listen_connected(dorm__pg_pool *p, int reconnect) {
  (void)p;
  (void)reconnect;
}
void dorm__pg_listen_drain(dorm__pg_pool *p, PGconn *pg) {
  (void)p;
  (void)pg;
}
void dorm__pg_listen_free(dorm__pg_pool *p) { (void)p; }
