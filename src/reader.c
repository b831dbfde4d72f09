/* reader.c — reading the log: one entry by id, and a streaming iterator
 * over a filter. Each entry is decrypted and decoded into an arena that is
 * reset for the next one, so memory stays flat however long the log. */
#include <string.h>

#include "internal.h"

struct oplog_iter {
  oplog_db *db;
  sqlite3_stmt *stmt;
  int flags;
  arena a;
  oplog_entry e;
};

/* Fills e from a row of ENTRY_COLUMNS: metadata from the entry's own blob;
 * decrypted and decoded operations with ITER_OPS; into a. */
int opl_entry_load(oplog_db *db, sqlite3_stmt *row, int flags, arena *a, oplog_entry *e) {
  stored_entry se;
  memset(e, 0, sizeof *e);
  int rc = opl_entry_from_row(db, row, &se);
  if (rc) return rc;
  e->id = se.id;
  e->created = se.created;
  e->key_id = se.key_id;
  e->seq = se.seq;
  e->clock = se.clock;
  e->aggregate = opl_arena_strndup(a, se.aggregate, se.aggregate_len);
  uint8_t *origin = opl_arena_alloc(a, OPLOG_ORIGIN_BYTES);
  if (!e->aggregate || !origin) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  memcpy(origin, se.origin_id, OPLOG_ORIGIN_BYTES);
  e->origin = origin;
  if ((flags & ITER_META) && (rc = opl_meta_decode(db, a, se.metadata, se.nmetadata, &e->metadata, &e->nmetadata)))
    return rc == OPLOG_CORRUPT ? opl_db_error(db, rc, "entry %lld: malformed metadata", (long long)e->id) : rc;
  if (!(flags & ITER_OPS)) return OPLOG_OK;
  db->scratch2.n = 0;
  rc = opl_crypto_decrypt_entry(db, &se, &db->scratch2);
  if (!rc) rc = opl_entry_decode(db, a, db->scratch2.p, db->scratch2.n, &e->ops, &e->nops);
  if (db->scratch2.n) sodium_memzero(db->scratch2.p, db->scratch2.n);
  if (rc == OPLOG_CORRUPT || rc == OPLOG_NOT_FOUND || rc == OPLOG_DECRYPT_FAILED) rc = opl_db_error_entry(db, rc, e->id);
  return rc;
}

static int filter_check(oplog_db *db, const oplog_filter *f) {
  if (f->since < 0 || f->upto < 0 || f->limit < 0)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "since, upto and limit must not be negative");
  if (f->aggregate && !*f->aggregate)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "aggregate must be a non-empty string");
  if (f->nmetadata && !f->metadata) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "metadata is NULL");
  for (size_t i = 0; i < f->nmetadata; i++)
    if (!f->metadata[i].key) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "metadata filter key is NULL");
  return OPLOG_OK;
}

/* Parameters: ?1 aggregate, ?2 since, ?3 upto, ?4 limit, then each
 * metadata pair i as ?(5 + 2i) key and ?(6 + 2i) value. What the derived
 * tables say is checked again on the entry itself (its metadata, its
 * aggregate), so a forged derived row never selects a wrong entry; verify
 * reports it (index_mismatch). */
static void filter_conditions(sqlite3_str *q, const oplog_filter *f, const char *id) {
  if (f->since) sqlite3_str_appendf(q, " AND %s > ?2", id);
  if (f->upto) sqlite3_str_appendf(q, " AND %s <= ?3", id);
  /* metadata: the derived rows, and the entries above them read directly */
  for (size_t i = 0; i < f->nmetadata; i++) {
    int k = 5 + 2 * (int)i;
    if (f->metadata[i].value)
      sqlite3_str_appendf(q,
                          " AND %s IN (SELECT entry_id FROM oplog_metadata WHERE key = ?%d AND value = ?%d"
                          " UNION ALL SELECT id FROM oplog_entries WHERE id > " SQL_INDEXED_UPTO
                          " AND oplog_meta_has(metadata, ?%d, ?%d)) AND oplog_meta_has(e.metadata, ?%d, ?%d)",
                          id, k, k + 1, k, k + 1, k, k + 1);
    else
      sqlite3_str_appendf(q,
                          " AND %s IN (SELECT entry_id FROM oplog_metadata WHERE key = ?%d"
                          " UNION ALL SELECT id FROM oplog_entries WHERE id > " SQL_INDEXED_UPTO
                          " AND oplog_meta_has(metadata, ?%d)) AND oplog_meta_has(e.metadata, ?%d)",
                          id, k, k, k);
  }
}

/* Builds the SELECT of `what` (columns of e) over the entries a filter
 * selects and binds it. By aggregate, the derived oplog_index covers the
 * entries up to the watermark and the entries above it are read directly:
 * two ordered arms, merged. count: SELECT count(*) of them instead. */
static int filter_prepare(oplog_db *db, const oplog_filter *f, const char *what, int count, sqlite3_stmt **out) {
  *out = NULL;
  int rc = filter_check(db, f);
  if (rc) return rc;
  sqlite3_str *q = sqlite3_str_new(db->sql);
  if (count) sqlite3_str_appendall(q, "SELECT count(*) FROM (");
  /* Before migration 003 a file holds one origin, whose clocks grow with
   * the ids: id order is the total order there. */
  if (f->order_total && !count && db->level >= 3) {
    /* Total order: the derived index in (clock, origin, seq) order up to
     * the watermark, the entries above it sorted apart (few), merged.
     * Ties at one clock (one per origin at most) are sorted by origin id
     * bytes in small blocks: memory stays bounded. CROSS JOIN and the
     * unary + keep SQLite on oplog_index_order (a rowid range on the
     * entries and one big sort looks cheaper to it without statistics). */
    const char *dir = f->reverse ? " DESC" : "";
    sqlite3_str_appendf(q,
                        "SELECT %s, x.clock AS oplog_k1, o.id AS oplog_k2, x.seq AS oplog_k3 FROM oplog_index x"
                        " CROSS JOIN oplog_entries e ON e.id = x.entry_id CROSS JOIN oplog_origins o ON o.no = x.origin"
                        " WHERE +x.entry_id <= " SQL_INDEXED_UPTO,
                        what);
    if (f->aggregate) sqlite3_str_appendall(q, " AND x.aggregate_name = ?1 AND e.aggregate_name = ?1");
    filter_conditions(q, f, "e.id");
    sqlite3_str_appendf(q,
                        " UNION ALL SELECT %s, e.clock, o.id, e.seq FROM oplog_entries e JOIN oplog_origins o ON o.no = e.origin"
                        " WHERE e.id > " SQL_INDEXED_UPTO,
                        what);
    if (f->aggregate) sqlite3_str_appendall(q, " AND e.aggregate_name = ?1");
    filter_conditions(q, f, "e.id");
    sqlite3_str_appendf(q, " ORDER BY oplog_k1%s, oplog_k2%s, oplog_k3%s%s", dir, dir, dir, f->limit ? " LIMIT ?4" : "");
  } else if (f->aggregate) {
    /* `what` starts with e.id: this arm gives the index's entry_id instead,
     * so that it comes in order from the index (no sort) */
    sqlite3_str_appendf(q,
                        "SELECT x.entry_id%s FROM oplog_index x JOIN oplog_entries e ON e.id = x.entry_id"
                        " WHERE x.aggregate_name = ?1 AND e.aggregate_name = ?1 AND x.entry_id <= " SQL_INDEXED_UPTO,
                        what + strlen("e.id"));
    filter_conditions(q, f, "x.entry_id");
    sqlite3_str_appendf(q,
                        " UNION ALL SELECT %s FROM oplog_entries e WHERE e.aggregate_name = ?1 AND e.id > " SQL_INDEXED_UPTO,
                        what);
  } else {
    sqlite3_str_appendf(q, "SELECT %s FROM oplog_entries e WHERE 1", what);
  }
  if (!(f->order_total && !count && db->level >= 3)) {
    filter_conditions(q, f, "e.id");
    if (count) sqlite3_str_appendall(q, ")");
    else sqlite3_str_appendf(q, " ORDER BY 1%s%s", f->reverse ? " DESC" : "", f->limit ? " LIMIT ?4" : "");
  }
  char *sql = sqlite3_str_finish(q);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL);
  sqlite3_free(sql);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  /* Copies of the filter's strings (the statement outlives the call): a
   * failed copy would silently match nothing, so every bind is checked. */
  int b = SQLITE_OK;
  if (f->aggregate) b |= sqlite3_bind_text(s, 1, f->aggregate, -1, SQLITE_TRANSIENT);
  if (f->since) b |= sqlite3_bind_int64(s, 2, f->since);
  if (f->upto) b |= sqlite3_bind_int64(s, 3, f->upto);
  if (!count && f->limit) b |= sqlite3_bind_int64(s, 4, f->limit);
  for (size_t i = 0; i < f->nmetadata; i++) {
    b |= sqlite3_bind_text(s, 5 + 2 * (int)i, f->metadata[i].key, -1, SQLITE_TRANSIENT);
    if (f->metadata[i].value) b |= sqlite3_bind_text(s, 6 + 2 * (int)i, f->metadata[i].value, -1, SQLITE_TRANSIENT);
  }
  if (b != SQLITE_OK) {
    sqlite3_finalize(s);
    return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  }
  *out = s;
  return OPLOG_OK;
}

int64_t opl_iter_count(oplog_db *db, const oplog_filter *f, int *rc) {
  sqlite3_stmt *s;
  *rc = filter_prepare(db, f, "e.id", 1, &s);
  if (*rc) return 0;
  int64_t n = 0;
  int r = sqlite3_step(s);
  if (r == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
  else *rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  if (f->limit && n > f->limit) n = f->limit;
  return n;
}

int opl_iter_open(oplog_db *db, const oplog_filter *f, int flags, oplog_iter **out) {
  static const oplog_filter all;
  *out = NULL;
  if (!f) f = &all;
  oplog_iter *it = sqlite3_malloc64(sizeof *it);
  if (!it) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  memset(it, 0, sizeof *it);
  it->db = db;
  it->flags = flags;
  int rc = filter_prepare(db, f, db->entry_cols_e, 0, &it->stmt);
  if (rc) {
    oplog_iter_close(it);
    return rc;
  }
  *out = it;
  return OPLOG_OK;
}

int oplog_entries(oplog_db *db, const oplog_filter *f, oplog_iter **out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (!out) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "iterator pointer is NULL");
  *out = NULL;
  int krc = opl_key_required(db);
  if (krc) return krc;
  return opl_iter_open(db, f, ITER_OPS | ITER_META, out);
}

int oplog_iter_next(oplog_iter *it, const oplog_entry **entry) {
  if (!it || !entry) return OPLOG_INVALID_ARGUMENT;
  oplog_db *db = it->db;
  opl_db_clear_error(db);
  *entry = NULL;
  if (!it->stmt) return OPLOG_OK;
  opl_arena_reset(&it->a);
  int r = sqlite3_step(it->stmt);
  if (r == SQLITE_DONE) {
    sqlite3_finalize(it->stmt);
    it->stmt = NULL;
    return OPLOG_OK;
  }
  if (r != SQLITE_ROW) return opl_db_sqlerr(db, r);
  int rc = opl_entry_load(db, it->stmt, it->flags, &it->a, &it->e);
  if (rc) return rc;
  *entry = &it->e;
  return OPLOG_OK;
}

int64_t opl_iter_current_id(const oplog_iter *it) { return it->e.id; }

void oplog_iter_close(oplog_iter *it) {
  if (!it) return;
  sqlite3_finalize(it->stmt);
  opl_arena_free(&it->a);
  sqlite3_free(it);
}

/* A standalone entry owns its arena, which lives right after it. */
typedef struct owned_entry {
  oplog_entry e;
  arena a;
} owned_entry;

int oplog_entry_get(oplog_db *db, int64_t id, oplog_entry **out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (!out) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  int krc = opl_key_required(db);
  if (krc) return krc;
  sqlite3_stmt *s = NULL;
  char *sql = sqlite3_mprintf("SELECT %s FROM oplog_entries WHERE id = ?1", db->entry_cols);
  int r0 = sql ? sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (r0 != SQLITE_OK) return opl_db_sqlerr(db, r0);
  sqlite3_bind_int64(s, 1, id);
  int r = sqlite3_step(s);
  if (r == SQLITE_DONE) {
    sqlite3_finalize(s);
    return opl_db_error(db, OPLOG_NOT_FOUND, "no entry %lld", (long long)id);
  }
  if (r != SQLITE_ROW) {
    int rc = opl_db_sqlerr(db, r);
    sqlite3_finalize(s);
    return rc;
  }
  owned_entry *oe = sqlite3_malloc64(sizeof *oe);
  if (!oe) {
    sqlite3_finalize(s);
    return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  }
  memset(oe, 0, sizeof *oe);
  int rc = opl_entry_load(db, s, ITER_OPS | ITER_META, &oe->a, &oe->e);
  sqlite3_finalize(s);
  if (rc) {
    opl_arena_free(&oe->a);
    sqlite3_free(oe);
    return rc;
  }
  *out = &oe->e;
  return OPLOG_OK;
}

void oplog_entry_free(oplog_entry *e) {
  if (!e) return;
  owned_entry *oe = (owned_entry *)e;
  opl_arena_free(&oe->a);
  sqlite3_free(oe);
}
