/* tx.c — transactions: the high-level one (live tables + one entry, as
 * Lua's db:transaction) and Boundary's WriteEntryWith (entry only, inside
 * oplog_begin/oplog_commit). Either way nothing half-written survives. */
#include <string.h>

#include "internal.h"

static int aggregate_check(oplog_db *db, const char *aggregate) {
  if (!aggregate || !*aggregate)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "aggregate must be a non-empty string");
  return OPLOG_OK;
}

/* Ends the high-level transaction, undoing everything; keeps db's error. */
static int tx_abort(oplog_db *db, int rc) {
  opl_db_rollback(db);
  db->tx = TX_NONE;
  opl_queue_reset(&db->q);
  return rc;
}

/* Common start of the calls that need an open high-level transaction. */
static int tx_open(oplog_db *db, int64_t *entry_id) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (entry_id) *entry_id = 0;
  if (db->tx != TX_HIGH) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "no transaction is open (oplog_tx_begin)");
  return OPLOG_OK;
}

int oplog_tx_begin(oplog_db *db, const char *aggregate) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (db->tx != TX_NONE)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "a transaction is already open on this handle (no nesting)");
  int rc = aggregate_check(db, aggregate);
  if (rc || (rc = opl_key_required(db))) return rc;
  if (db->readonly) return opl_db_error(db, OPLOG_READONLY, "the file is open read-only");
  size_t n = strlen(aggregate);
  char *copy = sqlite3_realloc64(db->tx_aggregate, n + 1);
  if (!copy) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  memcpy(copy, aggregate, n + 1);
  db->tx_aggregate = copy;
  if ((rc = opl_db_begin(db, 1))) return rc;
  db->tx = TX_HIGH;
  opl_queue_reset(&db->q);
  db->tx_last_rowid = 0;
  if ((rc = opl_ticket_read(db, aggregate, &db->tx_ticket))) return tx_abort(db, rc);
  return OPLOG_OK;
}

/* Looks up op's type and checks it may be written under `aggregate`. */
static int op_prepare(oplog_db *db, const char *aggregate, const oplog_op *op, const type_def **t,
                      int *cols) {
  if (!op) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "op is NULL");
  int rc = opl_catalog_find(db, op->type, t);
  if (rc) return rc;
  if (!*t)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "unknown type '%s'", op->type ? op->type : "(null)");
  if (strcmp((*t)->aggregate, aggregate) != 0)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "type %s belongs to aggregate '%s', not '%s'",
                    (*t)->name, (*t)->aggregate, aggregate);
  return opl_op_validate(db, *t, op, cols);
}

int oplog_tx_apply(oplog_db *db, const oplog_op *op) {
  int rc = tx_open(db, NULL);
  if (rc) return rc;
  const type_def *t;
  int cols[OPLOG_MAX_COLUMNS + 1];
  rc = op_prepare(db, db->tx_aggregate, op, &t, cols);
  /* the live write appends the row as the table stored it to the queue */
  if (rc || (rc = opl_op_apply(db, &db->live, t, op, cols, &db->q))) return tx_abort(db, rc);
  db->tx_last_rowid = sqlite3_last_insert_rowid(db->sql);
  return OPLOG_OK;
}

/* Writes the queued operations as one entry; the next one redeems the
 * following ticket version. */
static int tx_flush(oplog_db *db, const oplog_meta *md, size_t nmd, int64_t *id) {
  *id = 0;
  if (!db->q.nops) return OPLOG_OK;
  int rc = opl_entry_write(db, db->tx_aggregate, db->tx_ticket, md, nmd, db->q.data.p, db->q.data.n, id);
  if (rc) return rc;
  db->tx_ticket++;
  opl_queue_reset(&db->q);
  return OPLOG_OK;
}

int oplog_tx_entry(oplog_db *db, const oplog_meta *md, size_t nmd, int64_t *entry_id) {
  int rc = tx_open(db, entry_id);
  if (rc) return rc;
  int64_t id;
  rc = tx_flush(db, md, nmd, &id);
  if (rc) return tx_abort(db, rc);
  if (entry_id) *entry_id = id;
  return OPLOG_OK;
}

int oplog_tx_commit(oplog_db *db, const oplog_meta *md, size_t nmd, int64_t *entry_id) {
  int rc = tx_open(db, entry_id);
  if (rc) return rc;
  int64_t id;
  rc = tx_flush(db, md, nmd, &id);
  if (!rc) rc = opl_db_commit(db);
  if (rc) return tx_abort(db, rc);
  db->tx = TX_NONE;
  if (entry_id) *entry_id = id;
  return OPLOG_OK;
}

int oplog_tx_rollback(oplog_db *db) {
  int rc = tx_open(db, NULL);
  return rc ? rc : tx_abort(db, OPLOG_OK);
}

int oplog_tx_active(oplog_db *db) { return db && db->tx == TX_HIGH; }

int64_t oplog_tx_last_rowid(oplog_db *db) { return db ? db->tx_last_rowid : 0; }

int oplog_write_entry(oplog_db *db, const oplog_entry_write *w, int64_t *entry_id) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (entry_id) *entry_id = 0;
  if (!w) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "entry is NULL");
  if (db->tx != TX_LOW)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "write_entry runs between begin and commit");
  if (sqlite3_get_autocommit(db->sql)) {
    /* SQLite rolled the transaction back after an earlier I/O or memory
     * error: writing now would commit on its own, outside the caller's. */
    db->tx = TX_NONE;
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "the transaction was rolled back by an earlier error; begin again");
  }
  int rc = aggregate_check(db, w->aggregate);
  if (rc || (rc = opl_key_required(db))) return rc;
  if (w->nops == 0 || !w->ops) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "an entry needs at least one operation");
  opl_queue_reset(&db->q);
  for (size_t i = 0; i < w->nops; i++) {
    const type_def *t;
    int cols[OPLOG_MAX_COLUMNS];
    if ((rc = op_prepare(db, w->aggregate, &w->ops[i], &t, cols)) ||
        (rc = opl_queue_add(db, &db->q, t, &w->ops[i], cols)))
      return rc;
  }
  /* The savepoint keeps a failed write from leaving a ticket bump or an
   * entry row behind, while the caller's transaction stays open. */
  if ((rc = opl_db_exec(db, "SAVEPOINT oplog_write_entry"))) return rc;
  int64_t id = 0;
  rc = opl_entry_write(db, w->aggregate, w->ticket, w->metadata, w->nmetadata, db->q.data.p, db->q.data.n, &id);
  opl_queue_reset(&db->q);
  if (rc) {
    opl_state_forget(db); /* the entry may have been half-written, then undone */
    if (!sqlite3_get_autocommit(db->sql)) {
      sqlite3_exec(db->sql, "ROLLBACK TO oplog_write_entry", NULL, NULL, NULL);
      sqlite3_exec(db->sql, "RELEASE oplog_write_entry", NULL, NULL, NULL);
    }
    if (sqlite3_get_autocommit(db->sql)) db->tx = TX_NONE; /* SQLite ended it */
    return rc;
  }
  if ((rc = opl_db_exec(db, "RELEASE oplog_write_entry"))) return rc;
  if (entry_id) *entry_id = id;
  return OPLOG_OK;
}
