/* format1.c — files written in format 1 (schema level 1). A handle that
 * does not migrate the file (read-only, or an encrypted file opened without
 * its key) reads it as it is through temporary views that give it the
 * format-2 shape; a writable open with the key (or of a plaintext file)
 * migrates it in place, in the transaction that applies schema/002. */
#include <string.h>

#include "internal.h"

/* A format-1 entry's metadata rows as one blob, in their seq order. */
#define V1_META(tbl)                                                                               \
  "coalesce((SELECT oplog_meta_pack(key, value) FROM (SELECT key, value FROM " tbl " m"            \
  " WHERE m.entry_id = e.id ORDER BY seq)), X'00000000')"

/* Temporary objects are found before main's: these views stand in for the
 * format-2 tables of the same names. Every entry is its own origin's seq
 * id, with clock = seq; the derived tables cover all of them. */
static const char *const views =
    "CREATE TEMP VIEW oplog_entries AS SELECT id, 1 AS origin, id AS seq, id AS clock, created,"
    " aggregate AS aggregate_name, key_id, " V1_META("main.oplog_metadata") " AS metadata, data,"
    " prev_hash, hash, 1 AS format FROM main.oplog_entries e;"
    "CREATE TEMP VIEW oplog_metadata AS SELECT entry_id, seq AS position, key, value FROM main.oplog_metadata;"
    "CREATE TEMP VIEW oplog_index AS SELECT id AS entry_id, 1 AS origin, id AS seq, aggregate AS aggregate_name"
    " FROM main.oplog_entries;"
    "CREATE TEMP VIEW oplog_keys AS SELECT 1 AS origin, id, created, state, nonce, wrapped FROM main.oplog_keys;"
    "CREATE TEMP VIEW oplog_origins AS SELECT 1 AS no, zeroblob(32) AS id, NULL AS nonce, NULL AS secret;"
    "CREATE TEMP VIEW oplog_config AS SELECT name, value FROM main.oplog_config"
    " UNION ALL SELECT 'indexed_upto', coalesce((SELECT max(id) FROM main.oplog_entries), 0)"
    " UNION ALL SELECT 'clock', coalesce((SELECT max(id) FROM main.oplog_entries), 0);";

int opl_format1_views(oplog_db *db) {
  db->format = 1;
  return opl_db_exec(db, views);
}

int opl_format1_drop_views(oplog_db *db) {
  return opl_db_exec(db, "DROP VIEW temp.oplog_entries; DROP VIEW temp.oplog_metadata; DROP VIEW temp.oplog_index;"
                     "DROP VIEW temp.oplog_keys; DROP VIEW temp.oplog_origins; DROP VIEW temp.oplog_config;");
}

/* Data keys of the format-1 table, wrapped again for the new origin. */
static int copy_keys(oplog_db *db) {
  sqlite3_stmt *s = NULL, *ins = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT id, created, state FROM oplog_v1_keys ORDER BY id", -1, &s, NULL);
  if (r == SQLITE_OK)
    r = sqlite3_prepare_v2(db->sql,
                           "INSERT INTO oplog_keys (origin, id, created, state, nonce, wrapped)"
                           " VALUES (1, ?1, ?2, ?3, zeroblob(24), zeroblob(48))",
                           -1, &ins, NULL);
  int rc = r == SQLITE_OK ? OPLOG_OK : opl_db_sqlerr(db, r);
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
    for (int i = 0; i < 3; i++) sqlite3_bind_value(ins, i + 1, sqlite3_column_value(s, i));
    r = sqlite3_step(ins);
    sqlite3_reset(ins);
    if (r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  sqlite3_finalize(ins);
  /* the placeholders above get their real wrapping here */
  if (!rc && db->kr.encrypted) rc = opl_crypto_rewrap_all(db, db->kr.root);
  return rc;
}

int opl_format1_migrate(oplog_db *db, int from_level) {
  int rc = OPLOG_OK;
  if (from_level == 1 && ((rc = opl_origin_create(db)) || (rc = copy_keys(db)))) return rc;
  /* (a new file has nothing to copy, and gets its watermark and clock) */
  rc = opl_db_exec(db,
                 "INSERT INTO oplog_entries (" ENTRY_COLUMNS ") SELECT id, 1, id, id, created, aggregate, key_id, "
                 V1_META("oplog_v1_metadata") ", data, prev_hash, hash, 1 FROM oplog_v1_entries e ORDER BY id;"
                 "INSERT INTO oplog_metadata (entry_id, position, key, value)"
                 " SELECT entry_id, seq, key, value FROM oplog_v1_metadata ORDER BY entry_id, seq;"
                 "INSERT INTO oplog_index (entry_id, origin, seq, aggregate_name)"
                 " SELECT id, 1, id, aggregate FROM oplog_v1_entries ORDER BY id;"
                 "INSERT OR REPLACE INTO oplog_config (name, value) VALUES"
                 " ('indexed_upto', coalesce((SELECT max(id) FROM oplog_v1_entries), 0)),"
                 " ('clock', coalesce((SELECT max(id) FROM oplog_v1_entries), 0)), ('format', 2);");
  if (rc) return rc;
  return opl_db_exec(db, "DROP TABLE oplog_v1_entries; DROP TABLE oplog_v1_metadata; DROP TABLE oplog_v1_keys;");
}
