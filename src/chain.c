/* chain.c — the hash chains: each entry's hash is BLAKE2b-256 over the hash
 * of its origin's previous entry and everything stored for the entry, so
 * any change, removal or reordering shows without the key. Layouts:
 * FORMAT.md "Hash chain" (format 2, and format 1 for migrated entries). */
#include <string.h>

#include "internal.h"

#define HASH_TAG "oplog-entry-v2"

static void put_len_bytes(crypto_generichash_state *st, const void *p, size_t n) {
  uint8_t len[4];
  opl_put_u32(len, (uint32_t)n);
  crypto_generichash_update(st, len, sizeof len);
  if (n) crypto_generichash_update(st, p, n);
}

/* Format 1: ids were positions, metadata pairs rows counted at the end.
 * A migrated entry's seq is its format-1 id. */
static int hash_v1(const stored_entry *e, crypto_generichash_state *st) {
  uint8_t hdr[8 * 3];
  crypto_generichash_update(st, e->prev_hash, OPLOG_HASH_BYTES);
  opl_put_u64(hdr, (uint64_t)e->seq);
  opl_put_u64(hdr + 8, (uint64_t)e->created);
  opl_put_u64(hdr + 16, (uint64_t)e->key_id);
  crypto_generichash_update(st, hdr, sizeof hdr);
  put_len_bytes(st, e->aggregate, e->aggregate_len);
  meta_reader r;
  meta_pair m;
  if (!opl_meta_open(&r, e->metadata, e->nmetadata)) return OPLOG_CORRUPT;
  uint32_t count = r.left;
  int s;
  while ((s = opl_meta_next(&r, &m)) == 1) {
    uint8_t flag = (uint8_t)m.has_value;
    put_len_bytes(st, m.key, m.nkey);
    crypto_generichash_update(st, &flag, 1);
    if (m.has_value) put_len_bytes(st, m.value, m.nvalue);
  }
  if (s < 0) return OPLOG_CORRUPT;
  uint8_t n[4];
  opl_put_u32(n, count);
  crypto_generichash_update(st, n, sizeof n);
  put_len_bytes(st, e->data, e->ndata);
  return OPLOG_OK;
}

int opl_chain_hash(const stored_entry *e, unsigned char out[OPLOG_HASH_BYTES]) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, OPLOG_HASH_BYTES);
  if (e->format == 1) {
    int rc = hash_v1(e, &st);
    if (rc) return rc;
  } else {
    uint8_t hdr[8 * 4];
    crypto_generichash_update(&st, (const uint8_t *)HASH_TAG, sizeof HASH_TAG - 1);
    crypto_generichash_update(&st, e->prev_hash, OPLOG_HASH_BYTES);
    crypto_generichash_update(&st, e->origin_id, OPLOG_ORIGIN_BYTES);
    opl_put_u64(hdr, (uint64_t)e->seq);
    opl_put_u64(hdr + 8, (uint64_t)e->clock);
    opl_put_u64(hdr + 16, (uint64_t)e->created);
    opl_put_u64(hdr + 24, (uint64_t)e->key_id);
    crypto_generichash_update(&st, hdr, sizeof hdr);
    put_len_bytes(&st, e->aggregate, e->aggregate_len);
    put_len_bytes(&st, e->metadata, e->nmetadata);
    put_len_bytes(&st, e->data, e->ndata);
  }
  crypto_generichash_final(&st, out, OPLOG_HASH_BYTES);
  return OPLOG_OK;
}

int oplog_head(oplog_db *db, int64_t *id, unsigned char hash[OPLOG_HASH_BYTES]) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (!id || !hash) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "id and hash are required");
  oplog_origin_info o;
  int rc = oplog_origin(db, &o);
  if (rc) return rc;
  *id = o.head_id;
  memcpy(hash, o.head_hash, OPLOG_HASH_BYTES);
  return OPLOG_OK;
}
