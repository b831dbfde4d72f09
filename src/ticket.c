/* ticket.c — optimistic-locking tickets (Boundary's Ticketer): one version
 * counter per aggregate, redeemed in the same transaction and connection
 * as the entry it guards. */
#include "internal.h"

int ticket_read(oplog_db *db, const char *aggregate, int64_t *version) {
  sqlite3_stmt *s = db_stmt(db, ST_TICKET_GET);
  if (!s) return db->code;
  sqlite3_bind_text(s, 1, aggregate, -1, SQLITE_STATIC);
  int r = sqlite3_step(s);
  int rc = OPLOG_OK;
  if (r == SQLITE_ROW) *version = sqlite3_column_int64(s, 0);
  else if (r == SQLITE_DONE) rc = db_error(db, OPLOG_NOT_FOUND, "no ticket for aggregate '%s' (define a type in it first)", aggregate);
  else rc = db_sqlerr(db, r);
  sqlite3_reset(s);
  return rc;
}

/* UPDATE ... WHERE name = ? AND version = ?: no row changed means another
 * writer redeemed this version first. */
int ticket_redeem(oplog_db *db, const char *aggregate, int64_t version) {
  sqlite3_stmt *s = db_stmt(db, ST_TICKET_REDEEM);
  if (!s) return db->code;
  sqlite3_bind_text(s, 1, aggregate, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, version);
  int r = sqlite3_step(s);
  sqlite3_reset(s);
  if (r != SQLITE_DONE) return db_sqlerr(db, r);
  if (sqlite3_changes(db->sql) == 1) return OPLOG_OK;
  int64_t now = 0;
  int rc = ticket_read(db, aggregate, &now);
  if (rc) return rc;
  return db_error(db, OPLOG_TICKET_CONFLICT, "ticket of '%s' is at version %lld, not %lld: another writer came first",
                  aggregate, (long long)now, (long long)version);
}

int ticket_ensure(oplog_db *db, const char *aggregate) {
  sqlite3_stmt *s = db_stmt(db, ST_TICKET_ENSURE);
  if (!s) return db->code;
  sqlite3_bind_text(s, 1, aggregate, -1, SQLITE_STATIC);
  int r = sqlite3_step(s);
  sqlite3_reset(s);
  return r == SQLITE_DONE ? OPLOG_OK : db_sqlerr(db, r);
}

int oplog_ticket(oplog_db *db, const char *aggregate, int64_t *version) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  db_clear_error(db);
  if (!aggregate || !*aggregate || !version)
    return db_error(db, OPLOG_INVALID_ARGUMENT, "aggregate must be a non-empty string");
  return ticket_read(db, aggregate, version);
}
