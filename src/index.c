/* index.c — what is derived from the entries: the lazily maintained tables
 * (oplog_metadata, oplog_index, oplog_ticket, and the watermark
 * 'indexed_upto' and 'clock' in oplog_config; oplog_touches follows, see
 * converge.c), their catch-up in bulk, and
 * the handle's cache of the log's state (this origin's head, the clock, one
 * ticket). A complete answer is always "derived rows + entries above the
 * watermark": see FORMAT.md "Derived tables". */
#include <string.h>

#include "internal.h"

/* The log's state as of the current transaction's snapshot. */
static int state_load(oplog_db *db, log_state *ls) {
  sqlite3_stmt *s = opl_db_stmt(db, ST_STATE);
  if (!s) return db->code;
  int r = sqlite3_step(s);
  if (r == SQLITE_ROW) {
    ls->wm = sqlite3_column_int64(s, 0);
    ls->clock = sqlite3_column_int64(s, 1);
    if (sqlite3_column_int64(s, 2) > ls->clock) ls->clock = sqlite3_column_int64(s, 2);
    ls->last_id = sqlite3_column_int64(s, 3);
  }
  sqlite3_reset(s);
  if (r != SQLITE_ROW) return opl_db_sqlerr(db, r);
  ls->seq = ls->head_id = 0;
  memset(ls->hash, 0, OPLOG_HASH_BYTES);
  for (int which = ST_HEAD_TAIL; which <= ST_HEAD_INDEXED; which++) {
    if (!(s = opl_db_stmt(db, which))) return db->code;
    sqlite3_bind_int64(s, 1, ls->wm);
    r = sqlite3_step(s);
    int rc = OPLOG_OK;
    if (r == SQLITE_ROW) {
      ls->head_id = sqlite3_column_int64(s, 0);
      ls->seq = sqlite3_column_int64(s, 1);
      if (sqlite3_column_bytes(s, 2) == OPLOG_HASH_BYTES)
        memcpy(ls->hash, sqlite3_column_blob(s, 2), OPLOG_HASH_BYTES);
      else
        rc = opl_db_error(db, OPLOG_CORRUPT, "entry %lld has no valid hash", (long long)ls->head_id);
    } else if (r != SQLITE_DONE) {
      rc = opl_db_sqlerr(db, r);
    }
    sqlite3_reset(s);
    if (rc) return rc;
    if (r == SQLITE_ROW) break; /* the tail has the newest; else the index */
  }
  ls->tk_valid = 0;
  return OPLOG_OK;
}

/* Makes db->ls current inside a write transaction: reloaded when another
 * connection committed since it was last right (PRAGMA data_version does
 * not move for this connection's own commits). */
int opl_state_check(oplog_db *db) {
  log_state *ls = &db->ls;
  if (ls->checked) return OPLOG_OK;
  sqlite3_stmt *s = opl_db_stmt(db, ST_DATA_VERSION);
  if (!s) return db->code;
  int r = sqlite3_step(s);
  int64_t v = r == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  if (r != SQLITE_ROW) return opl_db_sqlerr(db, r);
  if (!ls->valid || v != ls->data_version) {
    ls->valid = 0;
    int rc = state_load(db, ls);
    if (rc) return rc;
    ls->valid = 1;
    ls->data_version = v;
  }
  ls->checked = 1;
  return OPLOG_OK;
}

void opl_state_forget(oplog_db *db) {
  db->ls.valid = 0;
  db->ls.checked = 0;
  db->ls.tk_valid = 0;
}

int oplog_origin(oplog_db *db, oplog_origin_info *out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (!out) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "out is NULL");
  memset(out, 0, sizeof *out);
  log_state tmp, *ls = &tmp;
  int rc;
  if (db->tx != TX_NONE && !sqlite3_get_autocommit(db->sql)) {
    /* inside this handle's transaction: its own view, cached */
    if ((rc = opl_state_check(db))) return rc;
    ls = &db->ls;
  } else {
    if ((rc = opl_db_begin(db, 0))) return rc;
    rc = state_load(db, ls);
    if (!rc) rc = opl_db_commit(db);
    if (rc) {
      opl_db_rollback(db);
      return rc;
    }
  }
  memcpy(out->id, db->self_id, OPLOG_ORIGIN_BYTES);
  out->seq = ls->seq;
  out->clock = ls->clock;
  out->head_id = ls->head_id;
  memcpy(out->head_hash, ls->hash, OPLOG_HASH_BYTES);
  return OPLOG_OK;
}

/* ---------------------------------------------------------------- catch-up */

static agg_count *agg_find(agg_counts *c, const char *name, size_t len) {
  for (size_t i = 0; i < c->n; i++)
    if (strlen(c->a[i].name) == len && memcmp(c->a[i].name, name, len) == 0) return &c->a[i];
  return NULL;
}

int opl_agg_counts_add(agg_counts *c, const char *name, size_t len) {
  agg_count *a = agg_find(c, name, len);
  if (a) {
    a->n++;
    return OPLOG_OK;
  }
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 8;
    agg_count *grown = sqlite3_realloc64(c->a, cap * sizeof *grown);
    if (!grown) return OPLOG_NOMEM;
    c->a = grown;
    c->cap = cap;
  }
  char *copy = sqlite3_malloc64(len + 1);
  if (!copy) return OPLOG_NOMEM;
  memcpy(copy, name, len);
  copy[len] = 0;
  c->a[c->n].name = copy;
  c->a[c->n++].n = 1;
  return OPLOG_OK;
}

int64_t opl_agg_counts_take(agg_counts *c, const char *name, size_t len) {
  agg_count *a = agg_find(c, name, len);
  int64_t n = a ? a->n : 0;
  if (a) a->n = 0;
  return n;
}

void opl_agg_counts_free(agg_counts *c) {
  for (size_t i = 0; i < c->n; i++) sqlite3_free(c->a[i].name);
  sqlite3_free(c->a);
  memset(c, 0, sizeof *c);
}

static int step_done(oplog_db *db, sqlite3_stmt *s) {
  int r = sqlite3_step(s);
  sqlite3_reset(s);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

/* Brings the derived tables up to the newest entry, inside the caller's
 * write transaction. */
int opl_index_flush(oplog_db *db) {
  log_state *ls = &db->ls;
  int rc = opl_state_check(db);
  if (rc) return rc;
  sqlite3_stmt *tail = NULL, *ins_index = NULL, *ins_meta = NULL, *tk = NULL, *cfg = NULL;
  static const char *const sql[] = {
      "SELECT id, origin, seq, clock, aggregate_name, CASE WHEN length(metadata) <= ?2 THEN metadata END"
      " FROM oplog_entries WHERE id > ?1 ORDER BY id",
      "INSERT INTO oplog_index (entry_id, origin, seq, aggregate_name, clock) VALUES (?1, ?2, ?3, ?4, ?5)",
      "INSERT INTO oplog_metadata (entry_id, position, key, value) VALUES (?1, ?2, ?3, ?4)",
      "INSERT INTO oplog_ticket (name, version) VALUES (?1, 1 + ?2)"
      " ON CONFLICT (name) DO UPDATE SET version = version + ?2",
      "INSERT OR REPLACE INTO oplog_config (name, value) VALUES ('indexed_upto', ?1), ('clock', ?2)"};
  sqlite3_stmt **st[] = {&tail, &ins_index, &ins_meta, &tk, &cfg};
  int r = SQLITE_OK;
  for (size_t i = 0; r == SQLITE_OK && i < sizeof st / sizeof *st; i++)
    r = sqlite3_prepare_v2(db->sql, sql[i], -1, st[i], NULL);
  agg_counts aggs = {0};
  int64_t last = ls->wm, clock = 0;
  if (r != SQLITE_OK) rc = opl_db_sqlerr(db, r);
  else {
    sqlite3_bind_int64(tail, 1, ls->wm);
    sqlite3_bind_int64(tail, 2, db->max_entry);
  }
  while (!rc && (r = sqlite3_step(tail)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(tail, 0);
    size_t an, mn;
    const char *agg = opl_col_bytes(tail, 4, &an);
    const uint8_t *md = (const uint8_t *)opl_col_bytes(tail, 5, &mn);
    sqlite3_bind_int64(ins_index, 1, id);
    sqlite3_bind_int64(ins_index, 2, sqlite3_column_int64(tail, 1));
    sqlite3_bind_int64(ins_index, 3, sqlite3_column_int64(tail, 2));
    sqlite3_bind_text(ins_index, 4, agg, (int)an, SQLITE_STATIC);
    sqlite3_bind_int64(ins_index, 5, sqlite3_column_int64(tail, 3));
    if ((rc = step_done(db, ins_index))) break;
    if (sqlite3_column_int64(tail, 3) > clock) clock = sqlite3_column_int64(tail, 3);
    if (opl_agg_counts_add(&aggs, agg, an)) {
      rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    meta_reader mr;
    meta_pair m;
    int k = 0, s = opl_meta_open(&mr, md, mn) ? 0 : -1;
    while (!rc && s >= 0 && (s = opl_meta_next(&mr, &m)) == 1) {
      sqlite3_bind_int64(ins_meta, 1, id);
      sqlite3_bind_int64(ins_meta, 2, ++k);
      sqlite3_bind_text(ins_meta, 3, m.key, (int)m.nkey, SQLITE_STATIC);
      if (m.has_value) sqlite3_bind_text(ins_meta, 4, m.value, (int)m.nvalue, SQLITE_STATIC);
      else sqlite3_bind_null(ins_meta, 4);
      rc = step_done(db, ins_meta);
    }
    /* Malformed metadata (a damaged or hostile file) gets no rows: verify
     * reports the entry, and the log stays writable. */
    last = id;
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  for (size_t i = 0; !rc && i < aggs.n; i++) {
    sqlite3_bind_text(tk, 1, aggs.a[i].name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(tk, 2, aggs.a[i].n);
    rc = step_done(db, tk);
  }
  if (!rc && last > ls->wm) {
    sqlite3_bind_int64(cfg, 1, last);
    sqlite3_bind_int64(cfg, 2, clock > ls->clock ? clock : ls->clock);
    rc = step_done(db, cfg);
  }
  opl_agg_counts_free(&aggs);
  for (size_t i = 0; i < sizeof st / sizeof *st; i++) sqlite3_finalize(*st[i]);
  /* the touch index follows when it is not lagging (converge.c) */
  if (!rc && last > ls->wm) rc = opl_touch_flush(db, ls->wm, 0);
  if (!rc) ls->wm = last;
  return rc;
}

/* At close: cover every entry, so that oplog_metadata and oplog_ticket
 * are complete for anyone reading the file with plain SQL. Only a handle
 * that wrote entries does it: closing a handle that only read must not
 * write (another connection's open read would then be too old to write). */
void opl_index_flush_at_close(oplog_db *db) {
  if (!db->wrote || db->readonly || db->format != OPLOG_FORMAT_VERSION || !db->sql || db->tx != TX_NONE) return;
  if (!opl_db_begin(db, 1) && (opl_state_check(db) || (db->ls.wm < db->ls.last_id && opl_index_flush(db)) || opl_db_commit(db)))
    opl_db_rollback(db);
  opl_db_clear_error(db);
}
