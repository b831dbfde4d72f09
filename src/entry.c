/* entry.c — an entry as stored: writing one (ticket check, its origin, seq
 * and clock, metadata, encryption, hash, the insert, all inside the
 * caller's transaction) and reading one row of oplog_entries back. */
#include <string.h>

#include "internal.h"

int opl_entry_write(oplog_db *db, const char *aggregate, int64_t ticket, const oplog_meta *md,
                size_t nmd, const uint8_t *data, size_t ndata, int64_t *out_id) {
  int rc = opl_meta_check(db, md, nmd);
  int64_t current = 0;
  if (rc || (rc = opl_state_check(db)) || (rc = opl_ticket_read(db, aggregate, &current))) return rc;
  /* The write lock is held: nobody can redeem this version meanwhile. */
  if (current != ticket)
    return opl_db_error(db, OPLOG_TICKET_CONFLICT,
                    "ticket of '%s' is at version %lld, not %lld: another writer came first", aggregate,
                    (long long)current, (long long)ticket);
  log_state *ls = &db->ls;
  if (ls->clock >= INT64_MAX - 1)
    return opl_db_error(db, OPLOG_CORRUPT, "the file's clock (%lld) leaves no room for another entry", (long long)ls->clock);
  stored_entry e = {.origin = 1,
                    .origin_id = db->self_id,
                    .seq = ls->seq + 1,
                    .clock = ls->clock + 1,
                    .created = opl_now_ms(),
                    .aggregate = aggregate,
                    .aggregate_len = strlen(aggregate),
                    .prev_hash = ls->hash,
                    .format = OPLOG_FORMAT_VERSION};
  db->mbuf.n = 0;
  db->scratch.n = 0;
  if ((rc = opl_meta_encode(db, md, nmd, &db->mbuf))) return rc;
  e.metadata = db->mbuf.p;
  e.nmetadata = db->mbuf.n;
  if ((rc = opl_crypto_encrypt_entry(db, &e, data, ndata, &db->scratch))) return rc;
  e.data = db->scratch.p;
  e.ndata = db->scratch.n;
  if ((int64_t)e.ndata > db->max_entry || (int64_t)e.nmetadata > db->max_entry)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "the entry's %s (%llu bytes) is larger than max_entry_bytes (%lld)",
                    (int64_t)e.ndata > db->max_entry ? "data" : "metadata",
                    (unsigned long long)((int64_t)e.ndata > db->max_entry ? e.ndata : e.nmetadata),
                    (long long)db->max_entry);
  unsigned char hash[OPLOG_HASH_BYTES];
  opl_chain_hash(&e, hash);

  int64_t id = 0;
  if ((rc = opl_entry_insert(db, &e, hash, &id))) return rc;
  if (id - ls->wm >= INDEX_FLUSH_EVERY && (rc = opl_index_flush(db))) return rc;
  /* only now, with everything in place, does the cache move */
  ls->last_id = ls->head_id = id;
  ls->seq = e.seq;
  ls->clock = e.clock;
  memcpy(ls->hash, hash, OPLOG_HASH_BYTES);
  opl_ticket_remember(db, aggregate, ticket + 1);
  db->wrote = 1;
  *out_id = id;
  return OPLOG_OK;
}

int opl_entry_insert(oplog_db *db, const stored_entry *e, const unsigned char hash[OPLOG_HASH_BYTES], int64_t *id) {
  sqlite3_stmt *s = opl_db_stmt(db, ST_ENTRY_INSERT);
  if (!s) return db->code;
  sqlite3_bind_int64(s, 2, e->origin);
  sqlite3_bind_int64(s, 3, e->seq);
  sqlite3_bind_int64(s, 4, e->clock);
  sqlite3_bind_int64(s, 5, e->created);
  sqlite3_bind_text(s, 6, e->aggregate, (int)e->aggregate_len, SQLITE_STATIC);
  sqlite3_bind_int64(s, 7, e->key_id);
  sqlite3_bind_blob(s, 8, e->metadata, (int)e->nmetadata, SQLITE_STATIC);
  sqlite3_bind_blob(s, 9, e->data, (int)e->ndata, SQLITE_STATIC);
  sqlite3_bind_blob(s, 10, e->prev_hash, OPLOG_HASH_BYTES, SQLITE_STATIC);
  sqlite3_bind_blob(s, 11, hash, OPLOG_HASH_BYTES, SQLITE_STATIC);
  sqlite3_bind_int(s, 12, e->format);
  int r = sqlite3_step(s);
  sqlite3_reset(s);
  if (r != SQLITE_DONE) return opl_db_sqlerr(db, r);
  *id = sqlite3_last_insert_rowid(db->sql);
  return OPLOG_OK;
}

int opl_entry_from_row(oplog_db *db, sqlite3_stmt *s, stored_entry *e) {
  memset(e, 0, sizeof *e);
  e->id = sqlite3_column_int64(s, 0);
  e->origin = sqlite3_column_int64(s, 1);
  e->seq = sqlite3_column_int64(s, 2);
  e->clock = sqlite3_column_int64(s, 3);
  e->created = sqlite3_column_int64(s, 4);
  e->aggregate = opl_col_bytes(s, 5, &e->aggregate_len);
  e->key_id = sqlite3_column_int64(s, 6);
  e->metadata = (const uint8_t *)opl_col_bytes(s, 7, &e->nmetadata);
  e->data = (const uint8_t *)opl_col_bytes(s, 8, &e->ndata);
  e->prev_hash = sqlite3_column_blob(s, 9);
  int good = sqlite3_column_bytes(s, 9) == OPLOG_HASH_BYTES;
  e->hash = sqlite3_column_blob(s, 10);
  good = good && sqlite3_column_bytes(s, 10) == OPLOG_HASH_BYTES;
  e->format = sqlite3_column_int(s, 11);
  if (!good || (e->format != 1 && e->format != 2))
    return opl_db_error(db, OPLOG_CORRUPT, "entry %lld has a malformed hash, prev_hash or format", (long long)e->id);
  if (!(e->origin_id = opl_origin_id(db, e->origin))) return db->code;
  /* over the cap, metadata and data were not loaded: the rest of e stands */
  if (sqlite3_column_type(s, 7) == SQLITE_NULL || sqlite3_column_type(s, 8) == SQLITE_NULL) {
    e->metadata = e->data = NULL;
    return opl_db_error(db, OPLOG_CORRUPT, "entry %lld is larger than max_entry_bytes (%lld): not read", (long long)e->id,
                    (long long)db->max_entry);
  }
  return OPLOG_OK;
}
