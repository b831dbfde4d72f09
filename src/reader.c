/* reader.c — reading the log: one entry by id, and a streaming iterator
 * over a filter. Each entry is decrypted and decoded into an arena that is
 * reset for the next one, so memory stays flat however long the log. */
#include <string.h>

#include "internal.h"

struct oplog_iter {
  oplog_db *db;
  sqlite3_stmt *stmt;
  int flags;
  int reverse;
  /* A scan of an id range reads metadata alongside, in the same order (a
   * merge join), instead of one lookup per entry. */
  sqlite3_stmt *meta;
  int meta_r; /* last sqlite3_step result of meta */
  arena a;
  oplog_entry e;
};

/* Appends the metadata row at columns k (key) and k + 1 (value) of s. */
static int meta_push(oplog_db *db, arena *a, sqlite3_stmt *s, int k, oplog_meta **md, size_t *n,
                     size_t *cap) {
  if (*n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 4;
    oplog_meta *grown = arena_alloc(a, ncap * sizeof *grown);
    if (!grown) return db_error(db, OPLOG_NOMEM, "out of memory");
    if (*n) memcpy(grown, *md, *n * sizeof **md);
    *md = grown;
    *cap = ncap;
  }
  size_t kn, vn;
  const char *key = col_bytes(s, k, &kn), *v = col_bytes(s, k + 1, &vn);
  int has = sqlite3_column_type(s, k + 1) != SQLITE_NULL;
  oplog_meta *m = &(*md)[*n];
  m->key = arena_strndup(a, key, kn);
  m->value = has ? arena_strndup(a, v, vn) : NULL;
  if (!m->key || (has && !m->value)) return db_error(db, OPLOG_NOMEM, "out of memory");
  (*n)++;
  return OPLOG_OK;
}

/* The metadata of e: from the iterator's merge join when it has one, else
 * with a lookup by entry id. */
static int meta_load(oplog_db *db, oplog_iter *it, arena *a, oplog_entry *e) {
  oplog_meta *md = NULL;
  size_t n = 0, cap = 0;
  int rc = OPLOG_OK;
  if (it && it->meta) {
    while (!rc && it->meta_r == SQLITE_ROW) {
      int64_t mid = sqlite3_column_int64(it->meta, 0);
      if (it->reverse ? mid < e->id : mid > e->id) break;
      if (mid == e->id) rc = meta_push(db, a, it->meta, 1, &md, &n, &cap);
      if (!rc) it->meta_r = sqlite3_step(it->meta);
    }
    if (!rc && it->meta_r != SQLITE_ROW && it->meta_r != SQLITE_DONE) rc = db_sqlerr(db, it->meta_r);
    for (size_t i = 0; !rc && it->reverse && i < n / 2; i++) { /* read in seq DESC */
      oplog_meta t = md[i];
      md[i] = md[n - 1 - i];
      md[n - 1 - i] = t;
    }
  } else {
    sqlite3_stmt *m = db_stmt(db, ST_META_GET);
    if (!m) return db->code;
    sqlite3_bind_int64(m, 1, e->id);
    int r;
    while (!rc && (r = sqlite3_step(m)) == SQLITE_ROW) rc = meta_push(db, a, m, 0, &md, &n, &cap);
    if (!rc && r != SQLITE_DONE) rc = db_sqlerr(db, r);
    sqlite3_reset(m);
  }
  e->metadata = md;
  e->nmetadata = n;
  return rc;
}

/* Fills e from a row (id, created, aggregate, key_id, data): decrypted and
 * decoded with ITER_OPS, with its metadata with ITER_META, into a. */
static int entry_load(oplog_db *db, sqlite3_stmt *row, oplog_iter *it, int flags, arena *a,
                      oplog_entry *e) {
  int with_ops = flags & ITER_OPS;
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
  return (flags & ITER_META) ? meta_load(db, it, a, e) : OPLOG_OK;
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
  /* Copies of the filter's strings (the statement outlives the call): a
   * failed copy would silently match nothing, so every bind is checked. */
  int p = 1, b = SQLITE_OK;
  if (f->aggregate) b |= sqlite3_bind_text(s, p++, f->aggregate, -1, SQLITE_TRANSIENT);
  if (f->since) b |= sqlite3_bind_int64(s, p++, f->since);
  if (f->upto) b |= sqlite3_bind_int64(s, p++, f->upto);
  for (size_t i = 0; i < f->nmetadata; i++) {
    b |= sqlite3_bind_text(s, p++, f->metadata[i].key, -1, SQLITE_TRANSIENT);
    if (f->metadata[i].value) b |= sqlite3_bind_text(s, p++, f->metadata[i].value, -1, SQLITE_TRANSIENT);
  }
  if (ordered && f->limit) b |= sqlite3_bind_int64(s, p++, f->limit);
  if (b != SQLITE_OK) {
    sqlite3_finalize(s);
    return db_error(db, OPLOG_NOMEM, "out of memory");
  }
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

int iter_open(oplog_db *db, const oplog_filter *f, int flags, oplog_iter **out) {
  static const oplog_filter all;
  *out = NULL;
  if (!f) f = &all;
  oplog_iter *it = sqlite3_malloc64(sizeof *it);
  if (!it) return db_error(db, OPLOG_NOMEM, "out of memory");
  memset(it, 0, sizeof *it);
  it->db = db;
  it->flags = flags;
  it->reverse = f->reverse != 0;
  int rc = filter_prepare(db, f, "id, created, aggregate, key_id, data", 1, &it->stmt);
  /* An id range without other filters reads (nearly) every entry in it:
   * join its metadata by walking both in id order. Sparse selections look
   * metadata up per entry instead. */
  if (!rc && (flags & ITER_META) && !f->aggregate && !f->nmetadata) {
    const char *sql = it->reverse ? "SELECT entry_id, key, value FROM oplog_metadata WHERE entry_id > ?1 AND "
                                    "entry_id <= ?2 ORDER BY entry_id DESC, seq DESC"
                                  : "SELECT entry_id, key, value FROM oplog_metadata WHERE entry_id > ?1 AND "
                                    "entry_id <= ?2 ORDER BY entry_id, seq";
    int r = sqlite3_prepare_v2(db->sql, sql, -1, &it->meta, NULL);
    if (r == SQLITE_OK) {
      sqlite3_bind_int64(it->meta, 1, f->since);
      sqlite3_bind_int64(it->meta, 2, f->upto ? f->upto : INT64_MAX);
      it->meta_r = sqlite3_step(it->meta);
      if (it->meta_r != SQLITE_ROW && it->meta_r != SQLITE_DONE) r = it->meta_r;
    }
    if (r != SQLITE_ROW && r != SQLITE_DONE && r != SQLITE_OK) rc = db_sqlerr(db, r);
  }
  if (rc) {
    oplog_iter_close(it);
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
  return iter_open(db, f, ITER_OPS | ITER_META, out);
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
  int rc = entry_load(db, it->stmt, it, it->flags, &it->a, &it->e);
  if (rc) return rc;
  *entry = &it->e;
  return OPLOG_OK;
}

int64_t iter_current_id(const oplog_iter *it) { return it->e.id; }

void oplog_iter_close(oplog_iter *it) {
  if (!it) return;
  sqlite3_finalize(it->stmt);
  sqlite3_finalize(it->meta);
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
  int rc = entry_load(db, s, NULL, ITER_OPS | ITER_META, &oe->a, &oe->e);
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
