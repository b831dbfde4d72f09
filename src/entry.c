/* entry.c — writing one entry: metadata checks, ticket redemption, the
 * entry's position and hash in the chain, encryption, and the inserts of
 * the entry row and its metadata, all inside the caller's transaction. */
#include <string.h>

#include "internal.h"

#define MAX_META_PAIRS 1024
#define MAX_META_KEY 256
#define MAX_META_VALUE 65536

static int meta_check(oplog_db *db, const oplog_meta *md, size_t n) {
  if (n && !md) return db_error(db, OPLOG_INVALID_ARGUMENT, "metadata is NULL");
  if (n > MAX_META_PAIRS)
    return db_error(db, OPLOG_INVALID_ARGUMENT, "at most %d metadata pairs per entry", MAX_META_PAIRS);
  for (size_t i = 0; i < n; i++) {
    const char *k = md[i].key, *v = md[i].value;
    size_t kn = k ? strlen(k) : 0;
    if (!kn || kn > MAX_META_KEY || !utf8_valid((const uint8_t *)k, kn))
      return db_error(db, OPLOG_INVALID_ARGUMENT, "metadata keys are UTF-8 strings of 1 to %d bytes",
                      MAX_META_KEY);
    if (v && (strlen(v) > MAX_META_VALUE || !utf8_valid((const uint8_t *)v, strlen(v))))
      return db_error(db, OPLOG_INVALID_ARGUMENT,
                      "metadata value of '%s' must be UTF-8 of at most %d bytes", k, MAX_META_VALUE);
  }
  return OPLOG_OK;
}

int entry_write(oplog_db *db, const char *aggregate, int64_t ticket, const oplog_meta *md,
                size_t nmd, const uint8_t *data, size_t ndata, int64_t *out_id) {
  int rc = meta_check(db, md, nmd);
  if (rc || (rc = ticket_redeem(db, aggregate, ticket))) return rc;
  unsigned char prev[OPLOG_HASH_BYTES], hash[OPLOG_HASH_BYTES];
  int64_t prev_id;
  if (db->head_valid) {
    prev_id = db->head_id;
    memcpy(prev, db->head_hash, OPLOG_HASH_BYTES);
  } else if ((rc = head_read(db, &prev_id, prev))) {
    return rc;
  }
  chain_entry e = {.id = prev_id + 1, .created = now_ms(), .aggregate = aggregate,
                   .aggregate_len = strlen(aggregate), .prev_hash = prev};
  db->scratch.n = 0;
  if ((rc = crypto_encrypt_entry(db, e.id, aggregate, &e.key_id, data, ndata, &db->scratch)))
    return rc;
  e.data = db->scratch.p;
  e.ndata = db->scratch.n;
  crypto_generichash_state st;
  chain_begin(&st, &e);
  for (size_t i = 0; i < nmd; i++)
    chain_meta(&st, md[i].key, strlen(md[i].key), md[i].value, md[i].value ? strlen(md[i].value) : 0,
               md[i].value != NULL);
  chain_finish(&st, &e, nmd, hash);

  sqlite3_stmt *s = db_stmt(db, ST_ENTRY_INSERT);
  if (!s) return db->code;
  sqlite3_bind_int64(s, 1, e.id);
  sqlite3_bind_int64(s, 2, e.created);
  sqlite3_bind_text(s, 3, aggregate, (int)e.aggregate_len, SQLITE_STATIC);
  sqlite3_bind_int64(s, 4, e.key_id);
  sqlite3_bind_blob(s, 5, e.data, (int)e.ndata, SQLITE_STATIC);
  sqlite3_bind_blob(s, 6, prev, OPLOG_HASH_BYTES, SQLITE_STATIC);
  sqlite3_bind_blob(s, 7, hash, OPLOG_HASH_BYTES, SQLITE_STATIC);
  int r = sqlite3_step(s);
  sqlite3_reset(s);
  if (r != SQLITE_DONE) return db_sqlerr(db, r);
  if (nmd) {
    if (!(s = db_stmt(db, ST_META_INSERT))) return db->code;
    for (size_t i = 0; i < nmd; i++) {
      sqlite3_bind_int64(s, 1, e.id);
      sqlite3_bind_int64(s, 2, (int64_t)i + 1);
      sqlite3_bind_text(s, 3, md[i].key, -1, SQLITE_STATIC);
      if (md[i].value) sqlite3_bind_text(s, 4, md[i].value, -1, SQLITE_STATIC);
      else sqlite3_bind_null(s, 4);
      r = sqlite3_step(s);
      sqlite3_reset(s);
      if (r != SQLITE_DONE) return db_sqlerr(db, r);
    }
  }
  db->head_valid = 1;
  db->head_id = e.id;
  memcpy(db->head_hash, hash, OPLOG_HASH_BYTES);
  *out_id = e.id;
  return OPLOG_OK;
}
