/* ticket.c — optimistic-locking tickets (Boundary's Ticketer): one version
 * counter per aggregate. A ticket's version is 1 + the number of entries of
 * its aggregate: oplog_ticket holds it for the entries the derived tables
 * cover (index.c) and the entries above them are counted. A writer holding
 * the write lock checks the version it read against it; the handle caches
 * one aggregate's version across its own transactions. */
#include <string.h>

#include "internal.h"

static int in_write_tx(oplog_db *db) {
  return db->tx != TX_NONE && !sqlite3_get_autocommit(db->sql);
}

int opl_ticket_read(oplog_db *db, const char *aggregate, int64_t *version) {
  log_state *ls = &db->ls;
  int cache = in_write_tx(db);
  if (cache) {
    int rc = opl_state_check(db);
    if (rc) return rc;
    if (ls->tk_valid && strcmp(ls->tk_name, aggregate) == 0) {
      *version = ls->tk_version;
      return OPLOG_OK;
    }
  }
  sqlite3_stmt *s = opl_db_stmt(db, ST_TICKET_GET);
  if (!s) return db->code;
  sqlite3_bind_text(s, 1, aggregate, -1, SQLITE_STATIC);
  int r = sqlite3_step(s);
  int rc = OPLOG_OK;
  if (r == SQLITE_ROW) *version = sqlite3_column_int64(s, 0);
  else if (r == SQLITE_DONE)
    rc = opl_db_error(db, OPLOG_NOT_FOUND, "no ticket for aggregate '%s' (define a type in it first)", aggregate);
  else rc = opl_db_sqlerr(db, r);
  sqlite3_reset(s);
  if (!rc && cache) opl_ticket_remember(db, aggregate, *version);
  return rc;
}

void opl_ticket_remember(oplog_db *db, const char *aggregate, int64_t version) {
  log_state *ls = &db->ls;
  size_t n = strlen(aggregate);
  if (n >= sizeof ls->tk_name) {
    ls->tk_valid = 0; /* long names are not cached */
    return;
  }
  memcpy(ls->tk_name, aggregate, n + 1);
  ls->tk_version = version;
  ls->tk_valid = 1;
}

int opl_ticket_ensure(oplog_db *db, const char *aggregate) {
  sqlite3_stmt *s = opl_db_stmt(db, ST_TICKET_ENSURE);
  if (!s) return db->code;
  sqlite3_bind_text(s, 1, aggregate, -1, SQLITE_STATIC);
  int r = sqlite3_step(s);
  sqlite3_reset(s);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

int oplog_ticket(oplog_db *db, const char *aggregate, int64_t *version) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (!aggregate || !*aggregate || !version)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "aggregate must be a non-empty string");
  return opl_ticket_read(db, aggregate, version);
}

