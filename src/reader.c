/* reader.c — reading the log: one entry by id, and a streaming iterator
 * over a filter. Each entry is decrypted and decoded into an arena that is
 * reset for the next one, so memory stays flat however long the log. */
#include <string.h>

#include "internal.h"

struct oplog_iter {
  oplog_db *db;
  sqlite3_stmt *stmt;
  int with_ops;
  arena a;
  oplog_entry e;
};

/* Fills e from a row (id, created, aggregate, key_id, data) with its
 * metadata, decrypted and decoded into a. */
static int entry_load(oplog_db *db, sqlite3_stmt *row, int with_ops, arena *a, oplog_entry *e) {
  memset(e, 0, sizeof *e);
  e->id = sqlite3_column_int64(row, 0);
  e->created = sqlite3_column_int64(row, 1);
  size_t an;
  const char *agg = col_bytes(row, 2, &an);
  e->aggregate = arena_strndup(a, agg, an);
  e->key_id = sqlite3_column_int64(row, 3);
  if (!e->aggregate) return db_error(db, OPLOG_NOMEM, "out of memory");
  int rc;
  if (with_ops) {
    db->scratch2.n = 0;
    rc = crypto_decrypt_entry(db, e->id, e->aggregate, e->key_id, sqlite3_column_blob(row, 4),
                              (size_t)sqlite3_column_bytes(row, 4), &db->scratch2);
    if (!rc) rc = entry_decode(db, a, db->scratch2.p, db->scratch2.n, &e->ops, &e->nops);
    if (db->scratch2.n) sodium_memzero(db->scratch2.p, db->scratch2.n);
    if (rc) {
      if (rc == OPLOG_CORRUPT || rc == OPLOG_NOT_FOUND || rc == OPLOG_DECRYPT_FAILED) {
        char *m = sqlite3_mprintf("entry %lld: %s", (long long)e->id, oplog_errmsg(db));
        if (m && !strstr(oplog_errmsg(db), "entry ")) {
          sqlite3_free(db->msg);
          db->msg = m;
        } else {
          sqlite3_free(m);
        }
      }
      return rc;
    }
  }
  sqlite3_stmt *m = db_stmt(db, ST_META_GET);
  if (!m) return db->code;
  sqlite3_bind_int64(m, 1, e->id);
  size_t cap = 0, n = 0;
  oplog_meta *md = NULL;
  int r;
  while ((r = sqlite3_step(m)) == SQLITE_ROW) {
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 4;
      oplog_meta *grown = arena_alloc(a, ncap * sizeof *grown);
      if (!grown) {
        sqlite3_reset(m);
        return db_error(db, OPLOG_NOMEM, "out of memory");
      }
      if (n) memcpy(grown, md, n * sizeof *md);
      md = grown;
      cap = ncap;
    }
    size_t kn, vn;
    const char *k = col_bytes(m, 0, &kn), *v = col_bytes(m, 1, &vn);
    md[n].key = arena_strndup(a, k, kn);
    md[n].value = sqlite3_column_type(m, 1) == SQLITE_NULL ? NULL : arena_strndup(a, v, vn);
    if (!md[n].key || (sqlite3_column_type(m, 1) != SQLITE_NULL && !md[n].value)) {
      sqlite3_reset(m);
      return db_error(db, OPLOG_NOMEM, "out of memory");
    }
    n++;
  }
  sqlite3_reset(m);
  if (r != SQLITE_DONE) return db_sqlerr(db, r);
  e->metadata = md;
  e->nmetadata = n;
  return OPLOG_OK;
}

static int filter_check(oplog_db *db, const oplog_filter *f) {
  if (f->since < 0 || f->upto < 0 || f->limit < 0)
    return db_error(db, OPLOG_INVALID_ARGUMENT, "since, upto and limit must not be negative");
  if (f->aggregate && !*f->aggregate)
    return db_error(db, OPLOG_INVALID_ARGUMENT, "aggregate must be a non-empty string");
  if (f->nmetadata && !f->metadata) return db_error(db, OPLOG_INVALID_ARGUMENT, "metadata is NULL");
  for (size_t i = 0; i < f->nmetadata; i++)
    if (!f->metadata[i].key) return db_error(db, OPLOG_INVALID_ARGUMENT, "metadata filter key is NULL");
  return OPLOG_OK;
}

/* Builds "SELECT <what> FROM oplog_entries WHERE ..." for a filter and
 * binds it. Metadata filters use the (key, value, entry_id) index. */
static int filter_prepare(oplog_db *db, const oplog_filter *f, const char *what, int ordered,
                          sqlite3_stmt **out) {
  *out = NULL;
  int rc = filter_check(db, f);
  if (rc) return rc;
  char *sql = sqlite3_mprintf("SELECT %s FROM oplog_entries WHERE 1", what);
  if (sql && f->aggregate) {
    char *m = sqlite3_mprintf("%s AND aggregate = ?", sql);
    sqlite3_free(sql);
    sql = m;
  }
  if (sql && f->since) {
    char *m = sqlite3_mprintf("%s AND id > ?", sql);
    sqlite3_free(sql);
    sql = m;
  }
  if (sql && f->upto) {
    char *m = sqlite3_mprintf("%s AND id <= ?", sql);
    sqlite3_free(sql);
    sql = m;
  }
  for (size_t i = 0; sql && i < f->nmetadata; i++) {
    char *m = sqlite3_mprintf("%s AND id IN (SELECT entry_id FROM oplog_metadata WHERE key = ?%s)", sql,
                              f->metadata[i].value ? " AND value = ?" : "");
    sqlite3_free(sql);
    sql = m;
  }
  if (sql && ordered) {
    char *m = sqlite3_mprintf("%s ORDER BY id%s%s", sql, f->reverse ? " DESC" : "", f->limit ? " LIMIT ?" : "");
    sqlite3_free(sql);
    sql = m;
  }
  if (!sql) return db_error(db, OPLOG_NOMEM, "out of memory");
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL);
  sqlite3_free(sql);
  if (r != SQLITE_OK) return db_sqlerr(db, r);
  int p = 1;
  if (f->aggregate) sqlite3_bind_text(s, p++, f->aggregate, -1, SQLITE_TRANSIENT);
  if (f->since) sqlite3_bind_int64(s, p++, f->since);
  if (f->upto) sqlite3_bind_int64(s, p++, f->upto);
  for (size_t i = 0; i < f->nmetadata; i++) {
    sqlite3_bind_text(s, p++, f->metadata[i].key, -1, SQLITE_TRANSIENT);
    if (f->metadata[i].value) sqlite3_bind_text(s, p++, f->metadata[i].value, -1, SQLITE_TRANSIENT);
  }
  if (ordered && f->limit) sqlite3_bind_int64(s, p++, f->limit);
  *out = s;
  return OPLOG_OK;
}

int64_t iter_count(oplog_db *db, const oplog_filter *f, int *rc) {
  oplog_filter unlimited = *f;
  unlimited.limit = 0;
  sqlite3_stmt *s;
  *rc = filter_prepare(db, &unlimited, "count(*)", 0, &s);
  if (*rc) return 0;
  int64_t n = 0;
  int r = sqlite3_step(s);
  if (r == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
  else *rc = db_sqlerr(db, r);
  sqlite3_finalize(s);
  if (f->limit && n > f->limit) n = f->limit;
  return n;
}

int iter_open(oplog_db *db, const oplog_filter *f, int with_ops, oplog_iter **out) {
  static const oplog_filter all;
  *out = NULL;
  if (!f) f = &all;
  oplog_iter *it = sqlite3_malloc64(sizeof *it);
  if (!it) return db_error(db, OPLOG_NOMEM, "out of memory");
  memset(it, 0, sizeof *it);
  it->db = db;
  it->with_ops = with_ops;
  int rc = filter_prepare(db, f, "id, created, aggregate, key_id, data", 1, &it->stmt);
  if (rc) {
    sqlite3_free(it);
    return rc;
  }
  *out = it;
  return OPLOG_OK;
}

int oplog_entries(oplog_db *db, const oplog_filter *f, oplog_iter **out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  db_clear_error(db);
  if (!out) return db_error(db, OPLOG_INVALID_ARGUMENT, "iterator pointer is NULL");
  *out = NULL;
  if (db->kr.encrypted && !db->kr.have_key)
    return db_error(db, OPLOG_KEY_REQUIRED, "the file is encrypted and was opened without its key");
  return iter_open(db, f, 1, out);
}

int oplog_iter_next(oplog_iter *it, const oplog_entry **entry) {
  if (!it || !entry) return OPLOG_INVALID_ARGUMENT;
  oplog_db *db = it->db;
  db_clear_error(db);
  *entry = NULL;
  if (!it->stmt) return OPLOG_OK;
  arena_reset(&it->a);
  int r = sqlite3_step(it->stmt);
  if (r == SQLITE_DONE) {
    sqlite3_finalize(it->stmt);
    it->stmt = NULL;
    return OPLOG_OK;
  }
  if (r != SQLITE_ROW) return db_sqlerr(db, r);
  int rc = entry_load(db, it->stmt, it->with_ops, &it->a, &it->e);
  if (rc) return rc;
  *entry = &it->e;
  return OPLOG_OK;
}

int64_t iter_current_id(const oplog_iter *it) { return it->e.id; }

void oplog_iter_close(oplog_iter *it) {
  if (!it) return;
  sqlite3_finalize(it->stmt);
  arena_free(&it->a);
  sqlite3_free(it);
}

/* A standalone entry owns its arena, which lives right after it. */
typedef struct owned_entry {
  oplog_entry e;
  arena a;
} owned_entry;

int oplog_entry_get(oplog_db *db, int64_t id, oplog_entry **out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  db_clear_error(db);
  if (!out) return db_error(db, OPLOG_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  if (db->kr.encrypted && !db->kr.have_key)
    return db_error(db, OPLOG_KEY_REQUIRED, "the file is encrypted and was opened without its key");
  sqlite3_stmt *s = db_stmt(db, ST_ENTRY_GET);
  if (!s) return db->code;
  sqlite3_bind_int64(s, 1, id);
  int r = sqlite3_step(s);
  if (r == SQLITE_DONE) {
    sqlite3_reset(s);
    return db_error(db, OPLOG_NOT_FOUND, "no entry %lld", (long long)id);
  }
  if (r != SQLITE_ROW) {
    int rc = db_sqlerr(db, r);
    sqlite3_reset(s);
    return rc;
  }
  owned_entry *oe = sqlite3_malloc64(sizeof *oe);
  if (!oe) {
    sqlite3_reset(s);
    return db_error(db, OPLOG_NOMEM, "out of memory");
  }
  memset(oe, 0, sizeof *oe);
  int rc = entry_load(db, s, 1, &oe->a, &oe->e);
  sqlite3_reset(s);
  if (rc) {
    arena_free(&oe->a);
    sqlite3_free(oe);
    return rc;
  }
  *out = &oe->e;
  return OPLOG_OK;
}

void oplog_entry_free(oplog_entry *e) {
  if (!e) return;
  owned_entry *oe = (owned_entry *)e;
  arena_free(&oe->a);
  sqlite3_free(oe);
}
