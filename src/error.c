/* error.c — result codes, their names, and the per-handle error message. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char *const code_names[] = {
    "ok",         "invalid_argument", "not_found",       "closed",      "ticket_conflict",
    "type_conflict", "constraint",    "key_required",    "wrong_key",   "decrypt_failed",
    "corrupt",    "busy",             "readonly",        "io",          "nomem",
    "schema_too_new", "target_not_empty", "sql", "fork", "gap"};

const char *oplog_code_name(int code) {
  if (code < 0 || code >= (int)(sizeof code_names / sizeof *code_names)) return "unknown";
  return code_names[code];
}

int opl_db_error(oplog_db *db, int code, const char *fmt, ...) {
  if (!db) return code;
  va_list ap;
  va_start(ap, fmt);
  char *m = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  sqlite3_free(db->msg);
  db->msg = m; /* NULL on OOM: oplog_errmsg falls back to the code name */
  db->code = code;
  return code;
}

int opl_db_error_entry(oplog_db *db, int code, int64_t id) {
  if (!db) return code;
  /* the message names the entry already when it begins "entry <id>" */
  char head[32];
  sqlite3_snprintf(sizeof head, head, "entry %lld", (long long)id);
  const char *m = oplog_errmsg(db);
  size_t n = strlen(head);
  if (strncmp(m, head, n) == 0 && (m[n] == 0 || m[n] == ' ' || m[n] == ':' || m[n] == ',')) return db->code = code;
  return opl_db_error(db, code, "%s: %s", head, m);
}

void opl_db_clear_error(oplog_db *db) {
  if (!db) return;
  db->code = OPLOG_OK;
  sqlite3_free(db->msg);
  db->msg = NULL;
}

int opl_map_sqlite_code(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE: return OPLOG_OK;
  case SQLITE_BUSY: return OPLOG_BUSY;
  /* SQLITE_LOCKED comes from this connection's own running statements
   * (no shared cache here): waiting cannot help, so it is not busy. */
  case SQLITE_READONLY: return OPLOG_READONLY;
  case SQLITE_IOERR:
  case SQLITE_FULL:
  case SQLITE_CANTOPEN:
  case SQLITE_PROTOCOL: return (rc == SQLITE_IOERR_NOMEM) ? OPLOG_NOMEM : OPLOG_IO;
  case SQLITE_NOMEM: return OPLOG_NOMEM;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: return OPLOG_CORRUPT;
  case SQLITE_CONSTRAINT: return OPLOG_CONSTRAINT;
  default: return OPLOG_SQL;
  }
}

int opl_db_sqlerr(oplog_db *db, int rc) {
  int code = opl_map_sqlite_code(rc);
  if (code == OPLOG_OK) code = OPLOG_SQL;
  const char *m = db->sql ? sqlite3_errmsg(db->sql) : sqlite3_errstr(rc);
  if (db->sql && sqlite3_errcode(db->sql) == SQLITE_OK) m = sqlite3_errstr(rc);
  /* a damaged file: say which (a bare "malformed" names nothing) */
  if (code == OPLOG_CORRUPT && db->path) return opl_db_error(db, code, "%s: %s", db->path, m);
  return opl_db_error(db, code, "%s", m);
}

const char *oplog_errmsg(oplog_db *db) {
  if (!db) return "out of memory";
  if (db->code == OPLOG_OK) return "not an error";
  return db->msg ? db->msg : oplog_code_name(db->code);
}

int oplog_errcode(oplog_db *db) { return db ? db->code : OPLOG_NOMEM; }
