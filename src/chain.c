/* chain.c — the hash chain: each entry's hash is BLAKE2b-256 over the
 * previous entry's hash and everything stored for the entry, so any change,
 * removal or reordering shows without the key. Layout: FORMAT.md. */
#include <string.h>

#include "internal.h"

static void put_len_bytes(crypto_generichash_state *st, const void *p, size_t n) {
  uint8_t len[4];
  put_u32(len, (uint32_t)n);
  crypto_generichash_update(st, len, sizeof len);
  if (n) crypto_generichash_update(st, p, n);
}

void chain_begin(crypto_generichash_state *st, const chain_entry *e) {
  uint8_t hdr[8 * 3];
  crypto_generichash_init(st, NULL, 0, OPLOG_HASH_BYTES);
  crypto_generichash_update(st, e->prev_hash, OPLOG_HASH_BYTES);
  put_u64(hdr, (uint64_t)e->id);
  put_u64(hdr + 8, (uint64_t)e->created);
  put_u64(hdr + 16, (uint64_t)e->key_id);
  crypto_generichash_update(st, hdr, sizeof hdr);
  put_len_bytes(st, e->aggregate, e->aggregate_len);
}

void chain_meta(crypto_generichash_state *st, const char *key, size_t nkey, const char *value,
                size_t nvalue, int has_value) {
  uint8_t flag = has_value ? 1 : 0;
  put_len_bytes(st, key, nkey);
  crypto_generichash_update(st, &flag, 1);
  if (has_value) put_len_bytes(st, value, nvalue);
}

void chain_finish(crypto_generichash_state *st, const chain_entry *e, size_t nmetadata,
                  unsigned char out[OPLOG_HASH_BYTES]) {
  uint8_t n[4];
  put_u32(n, (uint32_t)nmetadata);
  crypto_generichash_update(st, n, sizeof n);
  put_len_bytes(st, e->data, e->ndata);
  crypto_generichash_final(st, out, OPLOG_HASH_BYTES);
}

int head_read(oplog_db *db, int64_t *id, unsigned char hash[OPLOG_HASH_BYTES]) {
  sqlite3_stmt *s = db_stmt(db, ST_HEAD);
  if (!s) return db->code;
  int r = sqlite3_step(s);
  int rc = OPLOG_OK;
  *id = 0;
  memset(hash, 0, OPLOG_HASH_BYTES);
  if (r == SQLITE_ROW) {
    *id = sqlite3_column_int64(s, 0);
    if (sqlite3_column_bytes(s, 1) == OPLOG_HASH_BYTES)
      memcpy(hash, sqlite3_column_blob(s, 1), OPLOG_HASH_BYTES);
    else
      rc = db_error(db, OPLOG_CORRUPT, "entry %lld has no valid hash", (long long)*id);
  } else if (r != SQLITE_DONE) {
    rc = db_sqlerr(db, r);
  }
  sqlite3_reset(s);
  return rc;
}

int oplog_head(oplog_db *db, int64_t *id, unsigned char hash[OPLOG_HASH_BYTES]) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  db_clear_error(db);
  if (!id || !hash) return db_error(db, OPLOG_INVALID_ARGUMENT, "id and hash are required");
  return head_read(db, id, hash);
}
