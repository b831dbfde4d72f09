/* db.c — the handle: opening a file (pragmas, migrations, keys, catalog),
 * the internal statements, low-level transactions and stats. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "internal.h"

/* Generated from schema/NNN_*.sql: migration i brings user_version to i+1. */
extern const struct {
  const char *name;
  const char *text;
  size_t len;
} oplog_migrations[];

static int schema_level(void) {
  int n = 0;
  while (oplog_migrations[n].name) n++;
  return n;
}

#define WM SQL_INDEXED_UPTO
static const char *const stmt_sql[ST__COUNT] = {
    [ST_TICKET_GET] = "SELECT version + (SELECT count(*) FROM oplog_entries WHERE id > " WM
                      " AND aggregate_name = ?1) FROM oplog_ticket WHERE name = ?1",
    [ST_TICKET_ENSURE] = "INSERT OR IGNORE INTO oplog_ticket (name, version) VALUES (?1, 1)",
    [ST_DATA_VERSION] = "PRAGMA data_version",
    [ST_STATE] = "SELECT " WM ", (SELECT value FROM oplog_config WHERE name = 'clock'),"
                 " (SELECT max(clock) FROM oplog_entries WHERE id > " WM "), (SELECT max(id) FROM oplog_entries)",
    [ST_HEAD_TAIL] = "SELECT id, seq, hash FROM oplog_entries WHERE id > ?1 AND origin = 1 ORDER BY id DESC LIMIT 1",
    [ST_HEAD_INDEXED] = "SELECT e.id, e.seq, e.hash FROM oplog_index x JOIN oplog_entries e ON e.id = x.entry_id"
                        " WHERE x.origin = 1 ORDER BY x.seq DESC LIMIT 1",
    [ST_ENTRY_INSERT] = "INSERT INTO oplog_entries (" ENTRY_COLUMNS ") VALUES (NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                        "?10, ?11, ?12)",
    [ST_ORIGIN_GET] = "SELECT id FROM oplog_origins WHERE no = ?1",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

sqlite3_stmt *opl_db_stmt(oplog_db *db, int which) {
  sqlite3_stmt *s = db->st[which];
  if (s) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
  }
  int rc = sqlite3_prepare_v3(db->sql, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
  if (rc != SQLITE_OK) {
    opl_db_sqlerr(db, rc);
    return NULL;
  }
  db->st[which] = s;
  return s;
}

static int step_once(oplog_db *db, int which) {
  sqlite3_stmt *s = opl_db_stmt(db, which);
  if (!s) return db->code;
  int r = sqlite3_step(s);
  sqlite3_reset(s);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

int opl_db_begin(oplog_db *db, int write) {
  db->ls.checked = 0;
  /* Callers hold no transaction of the handle here. One still open in
   * SQLite is a leftover whose ROLLBACK failed for lack of memory: end it
   * now that memory may be back. */
  opl_db_rollback(db);
  return step_once(db, write ? ST_BEGIN : ST_BEGIN_READ);
}

int opl_db_commit(oplog_db *db) {
  db->ls.checked = 0;
  int rc = step_once(db, ST_COMMIT);
  if (rc) opl_state_forget(db);
  return rc;
}

void opl_db_rollback(oplog_db *db) {
  if (!db->sql || sqlite3_get_autocommit(db->sql)) return;
  opl_state_forget(db);
  /* The caller's error stays: this runs on failure paths. The statement
   * was prepared at open, so that rolling back needs no memory. */
  sqlite3_stmt *s = db->st[ST_ROLLBACK];
  if (s) {
    sqlite3_reset(s);
    sqlite3_step(s);
    sqlite3_reset(s);
  }
  if (!sqlite3_get_autocommit(db->sql)) sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
}

static int config_new(const oplog_open_opts *o) {
  const oplog_key_source *k = &o->key;
  return (k->key_file != NULL) + (k->key != NULL) + (k->passphrase != NULL || k->passphrase_from_fd) +
         (k->no_encryption != 0);
}

static int read_level(oplog_db *db, int *level);

/* Applies the migrations above the file's level (`seen` when the handle
 * looked), in one transaction. A new file also gets its encryption
 * settings and origin in that same transaction, and a format-1 file its
 * rows in the format-2 tables, so a crash leaves the file as it was or
 * complete. */
static int migrate(oplog_db *db, const oplog_key_source *src, int seen) {
  int target = schema_level();
  int rc = opl_db_begin(db, 1);
  if (rc) return rc;
  int level = 0;
  if ((rc = read_level(db, &level))) goto fail;
  if (level != seen) {
    rc = opl_db_error(db, OPLOG_BUSY, "another connection changed the schema of %s meanwhile: open it again", db->path);
    goto fail;
  }
  if (level == 1 && (rc = opl_format1_drop_views(db))) goto fail;
  for (int i = level; i < target; i++) {
    if ((rc = opl_db_exec(db, oplog_migrations[i].text))) goto fail;
    if (i == 1 && (rc = opl_format1_migrate(db, level))) goto fail; /* 002: the rows follow */
  }
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", target);
  if ((rc = opl_db_exec(db, sql))) goto fail;
  if (level == 0 && (rc = opl_crypto_open(db, src, 1))) goto fail;
  if ((rc = opl_db_commit(db))) goto fail;
  db->format = OPLOG_FORMAT_VERSION;
  return OPLOG_OK;
fail:
  opl_db_rollback(db);
  return rc;
}

static int read_level(oplog_db *db, int *level) {
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "PRAGMA user_version", -1, &s, NULL);
  if (r == SQLITE_OK && (r = sqlite3_step(s)) == SQLITE_ROW) *level = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return r == SQLITE_ROW ? OPLOG_OK : opl_db_sqlerr(db, r);
}

static int open_file(const char *path, const oplog_open_opts *opts, oplog_db **out, int fd_error);

static int sidecar_exists(const char *path, const char *suffix) {
  char *p = sqlite3_mprintf("%s%s", path, suffix);
  struct stat st;
  int yes = p && stat(p, &st) == 0;
  sqlite3_free(p);
  return yes;
}

/* Removes the -wal and -shm a read-only handle made beside a file that had
 * none, as SQLite itself does when the last connection closes: a moment's
 * read-write connection that reads and closes. SQLite removes them only if
 * no other connection has the file open; without write permission nothing
 * happens. The file's content is not changed (the log is empty). */
static void wal_cleanup(const char *path) {
  if (!sidecar_exists(path, "-wal") && !sidecar_exists(path, "-shm")) return;
  sqlite3 *s = NULL;
  if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK)
    sqlite3_exec(s, "SELECT 1 FROM sqlite_schema LIMIT 1", NULL, NULL, NULL);
  sqlite3_close_v2(s);
}

int oplog_open(const char *path, const oplog_open_opts *opts, oplog_db **out) {
  if (!opts || !opts->key.passphrase_from_fd) return open_file(path, opts, out, 0);
  /* the passphrase is read here, into locked memory, and wiped after */
  oplog_open_opts copy = *opts;
  char *secret = NULL;
  int e = sodium_init() < 0               ? ENOMEM
          : opts->key.passphrase ? EINVAL
                                 : opl_passphrase_read_fd(opts->key.passphrase_fd, &secret, &copy.key.passphrase_len);
  copy.key.passphrase = secret;
  copy.key.passphrase_from_fd = 0;
  int rc = open_file(path, &copy, out, e);
  opl_passphrase_free(secret);
  return rc;
}

static int open_file(const char *path, const oplog_open_opts *opts, oplog_db **out, int fd_error) {
  static const oplog_open_opts defaults;
  int rc;
  if (!out) return OPLOG_INVALID_ARGUMENT;
  *out = NULL;
  if (sqlite3_initialize() != SQLITE_OK) return OPLOG_NOMEM;
  oplog_db *db = sqlite3_malloc64(sizeof *db);
  if (!db) return OPLOG_NOMEM;
  memset(db, 0, sizeof *db);
  *out = db;
  opl_stmt_cache_init(&db->live, "main", "", 1);
  if (!opts) opts = &defaults;
  if (!path || !*path) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "path must be a non-empty string");
  if (fd_error == EINVAL) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "passphrase and passphrase_fd exclude each other");
  if (fd_error)
    return opl_db_error(db, fd_error == ENOMEM ? OPLOG_NOMEM : OPLOG_IO, "passphrase from descriptor %d: %s",
                    opts->key.passphrase_fd, fd_error == E2BIG ? "longer than 1024 bytes" : strerror(fd_error));
  if (sodium_init() < 0) return opl_db_error(db, OPLOG_IO, "libsodium failed to initialise");
  if (config_new(opts) > 1)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                    "choose one of key_file, key, passphrase or encryption = false");
  if (opts->sync != OPLOG_SYNC_FULL && opts->sync != OPLOG_SYNC_NORMAL)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "sync must be full or normal");
  db->path = sqlite3_mprintf("%s", path);
  db->max_entry = (int64_t)(opts->max_entry_bytes ? opts->max_entry_bytes : OPLOG_MAX_ENTRY_BYTES);
  db->entry_cols = sqlite3_mprintf(ENTRY_COLUMNS_READ(""), (long long)db->max_entry, (long long)db->max_entry);
  db->entry_cols_e = sqlite3_mprintf(ENTRY_COLUMNS_READ("e."), (long long)db->max_entry, (long long)db->max_entry);
  if (!db->path || !db->entry_cols || !db->entry_cols_e) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  db->readonly = opts->readonly != 0;

  struct stat stbuf;
  int exists = stat(path, &stbuf) == 0;
  if (!exists && (opts->no_create || opts->readonly))
    return opl_db_error(db, OPLOG_NOT_FOUND, "%s: no such file", path);
  if (!exists && config_new(opts) == 0)
    return opl_db_error(db, OPLOG_KEY_REQUIRED,
                    "a new file needs a key choice: key_file, key, passphrase or encryption = false");
  /* The file is made private before SQLite opens it: its -wal and -shm
   * files take the same mode. Everything but the entries' data is in the
   * clear (README, "Security model"). */
  if (!exists && ((rc = opl_crypto_check_new_source(db, &opts->key)) || (rc = opl_create_private(db, path)))) return rc;

  /* A read-only handle makes the -wal and -shm SQLite needs to read; when
   * there were none, they are removed at close (see wal_cleanup). */
  if (db->readonly) db->wal_made = !sidecar_exists(path, "-wal") && !sidecar_exists(path, "-shm");
  int flags = (db->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
              SQLITE_OPEN_NOMUTEX;
  int r = sqlite3_open_v2(path, &db->sql, flags, NULL);
  if (r != SQLITE_OK) {
    int rc = opl_db_sqlerr(db, r);
    if (r == SQLITE_CANTOPEN) rc = opl_db_error(db, OPLOG_IO, "%s: cannot open file", path);
    return rc;
  }
  sqlite3_extended_result_codes(db->sql, 1);
  static const int early[] = {ST_BEGIN, ST_BEGIN_READ, ST_COMMIT, ST_ROLLBACK};
  for (size_t i = 0; i < sizeof early / sizeof *early; i++)
    if (!opl_db_stmt(db, early[i])) return db->code;
  int ms = opts->busy_timeout_ms == 0 ? 5000 : opts->busy_timeout_ms < 0 ? 0 : opts->busy_timeout_ms;
  sqlite3_busy_timeout(db->sql, ms);

  int level = 0;
  if ((rc = read_level(db, &level))) return rc;
  if (level > schema_level())
    return opl_db_error(db, OPLOG_SCHEMA_TOO_NEW,
                    "file schema level %d is newer than this library's %d (oplog %s)", level,
                    schema_level(), OPLOG_VERSION);
  if (!db->readonly) {
    /* WAL and synchronous first: a new file is created in WAL mode. */
    if ((rc = opl_db_exec(db, "PRAGMA journal_mode = WAL"))) return rc;
    if ((rc = opl_db_exec(db, opts->sync == OPLOG_SYNC_NORMAL ? "PRAGMA synchronous = NORMAL"
                                                          : "PRAGMA synchronous = FULL")))
      return rc;
  }
  if (opl_meta_register(db->sql) != SQLITE_OK) return opl_db_sqlerr(db, sqlite3_errcode(db->sql));
  db->format = OPLOG_FORMAT_VERSION;
  if (level == 0) {
    if (db->readonly) return opl_db_error(db, OPLOG_NOT_FOUND, "%s is not an oplog file", path);
    if (config_new(opts) == 0)
      return opl_db_error(db, OPLOG_KEY_REQUIRED,
                      "a new file needs a key choice: key_file, key, passphrase or encryption = false");
    if ((rc = migrate(db, &opts->key, 0))) return rc;
  } else {
    /* A format-1 file is read through views until it is migrated, which
     * needs a writable handle and, for an encrypted file, its key. */
    if (level == 1 && (rc = opl_format1_views(db))) return rc;
    if ((rc = opl_crypto_open(db, &opts->key, 0))) return rc;
    if (level == 1 && !db->readonly && (!db->kr.encrypted || db->kr.have_key) &&
        (rc = migrate(db, &opts->key, 1)))
      return rc;
    /* later levels are plain SQL: any writable open takes them */
    if (level >= 2 && level < schema_level() && !db->readonly && (rc = migrate(db, &opts->key, level))) return rc;
  }
  if ((rc = read_level(db, &db->level))) return rc;
  const uint8_t *self = opl_origin_id(db, 1);
  if (!self) return db->code;
  memcpy(db->self_id, self, OPLOG_ORIGIN_BYTES);
  if ((rc = opl_catalog_load(db))) return rc;
  opl_db_clear_error(db);
  return OPLOG_OK;
}

int oplog_close(oplog_db *db) {
  if (!db) return OPLOG_OK;
  opl_db_rollback(db);
  db->tx = TX_NONE;
  opl_index_flush_at_close(db);
  opl_stmt_cache_clear(&db->live);
  for (int i = 0; i < ST__COUNT; i++) sqlite3_finalize(db->st[i]);
  opl_catalog_free(db);
  opl_crypto_close(db);
  opl_queue_reset(&db->q);
  opl_buf_free(&db->q.data);
  opl_buf_free(&db->q.texts);
  opl_buf_free(&db->q.row);
  opl_buf_free(&db->scratch);
  opl_buf_free(&db->mbuf);
  opl_buf_free(&db->adbuf);
  sqlite3_free(db->origins);
  opl_hindex_free(&db->origins_ix);
  if (db->scratch2.p) sodium_memzero(db->scratch2.p, db->scratch2.cap);
  opl_buf_free(&db->scratch2);
  sqlite3_free(db->tx_aggregate);
  if (db->sql) sqlite3_close_v2(db->sql);
  if (db->readonly && db->wal_made) wal_cleanup(db->path);
  sqlite3_free(db->path);
  sqlite3_free(db->entry_cols);
  sqlite3_free(db->entry_cols_e);
  sqlite3_free(db->msg);
  sqlite3_free(db);
  return OPLOG_OK;
}

/* ---------------------------------------------------------------- low-level transactions */

int oplog_begin(oplog_db *db) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (db->tx != TX_NONE) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "a transaction is already open on this handle (no nesting)");
  if (db->readonly) return opl_db_error(db, OPLOG_READONLY, "the file is open read-only");
  int rc = opl_db_begin(db, 1);
  if (rc) return rc;
  db->tx = TX_LOW;
  return OPLOG_OK;
}

int oplog_commit(oplog_db *db) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (db->tx != TX_LOW) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "no transaction opened with begin");
  if (sqlite3_get_autocommit(db->sql)) {
    db->tx = TX_NONE;
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                    "nothing to commit: an earlier error rolled the transaction back");
  }
  int rc = opl_db_commit(db);
  if (rc) {
    /* SQLite keeps the transaction open on a busy COMMIT; we do not keep
     * half-states: roll back so that the caller sees all or nothing. */
    opl_db_rollback(db);
  }
  db->tx = TX_NONE;
  return rc;
}

int oplog_rollback(oplog_db *db) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (db->tx != TX_LOW) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "no transaction opened with begin");
  db->tx = TX_NONE;
  opl_state_forget(db);
  if (!sqlite3_get_autocommit(db->sql)) return step_once(db, ST_ROLLBACK);
  return OPLOG_OK;
}

/* ---------------------------------------------------------------- stats */

int oplog_get_stats(oplog_db *db, oplog_stats *out,
                    int (*each)(void *, const char *, int64_t, int64_t), void *ctx) {
  if (!db || !out) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  memset(out, 0, sizeof *out);
  static const char *sql =
      "SELECT (SELECT count(*) FROM oplog_entries),"
      " (SELECT page_count * page_size FROM pragma_page_count, pragma_page_size),"
      " (SELECT count(*) FROM oplog_keys)";
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL);
  if (r == SQLITE_OK && (r = sqlite3_step(s)) == SQLITE_ROW) {
    out->entries = sqlite3_column_int64(s, 0);
    out->bytes = sqlite3_column_int64(s, 1);
    out->keys = sqlite3_column_int64(s, 2);
    r = SQLITE_OK;
  }
  sqlite3_finalize(s);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  if (!each) return OPLOG_OK;
  /* a ticket is 1 + the entries of its aggregate (ticket.c) */
  r = sqlite3_prepare_v2(db->sql,
                         "SELECT t.name, t.version + (SELECT count(*) FROM oplog_entries WHERE id > " WM
                         " AND aggregate_name = t.name) FROM oplog_ticket t ORDER BY t.name",
                         -1, &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  int rc = OPLOG_OK;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    char *name = opl_col_dup(s, 0);
    if (!name) {
      rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    rc = each(ctx, name, sqlite3_column_int64(s, 1) - 1, sqlite3_column_int64(s, 1));
    sqlite3_free(name);
    if (rc) break;
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  return rc;
}
