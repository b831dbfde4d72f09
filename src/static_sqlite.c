/*
 * static_sqlite.c — only in the static `oplog` command (OPLOG_STATIC).
 *
 * Debian's libsqlite3.a is built one member per SQLite source file, and a
 * member is linked whole when anything refers to one of its symbols. The
 * definitions below take the place of a few internal entry points, so the
 * linker leaves those members (and what only they need) out of the device
 * binary. Should a future libsqlite3.a define one of these in a member the
 * build needs for something else, the link fails with "multiple
 * definition" instead of silently doing without.
 *
 * 1. Virtual tables: main.o calls the initialisers of FTS3/4, FTS5,
 *    R*Tree/Geopoly, dbstat and sqlite_stmt in every connection (about
 *    330 KiB). The device binary has no such virtual tables (oplog uses
 *    none).
 */
#include <stddef.h>

#include <sqlite3.h>

int sqlite3Fts3Init(sqlite3 *db);
int sqlite3Fts5Init(sqlite3 *db);
int sqlite3RtreeInit(sqlite3 *db);
int sqlite3DbstatRegister(sqlite3 *db);
int sqlite3StmtVtabInit(sqlite3 *db);

int sqlite3Fts3Init(sqlite3 *db) { return (void)db, 0; }
int sqlite3Fts5Init(sqlite3 *db) { return (void)db, 0; }
int sqlite3RtreeInit(sqlite3 *db) { return (void)db, 0; }
int sqlite3DbstatRegister(sqlite3 *db) { return (void)db, 0; }
int sqlite3StmtVtabInit(sqlite3 *db) { return (void)db, 0; }

/*
 * 2. Sorter worker threads (threads.o). vdbesort.o can hand parts of a
 *    large sort to helper threads, but only when PRAGMA threads (or
 *    sqlite3_limit(SQLITE_LIMIT_WORKER_THREADS)) asks for them: Debian
 *    builds with SQLITE_DEFAULT_WORKER_THREADS=0 and oplog never asks.
 *    The reference to pthread_create alone links glibc's thread creation,
 *    stack and resolver set-up (about 35 KiB). This is SQLite's own
 *    single-threaded version (threads.c, SQLITE_MAX_WORKER_THREADS==0
 *    branch): the task runs at once, in the caller's thread; the sort's
 *    result is the same.
 */
typedef struct SQLiteThread SQLiteThread;
struct SQLiteThread {
  void *result;
};
int sqlite3ThreadCreate(SQLiteThread **out, void *(*task)(void *), void *arg);
int sqlite3ThreadJoin(SQLiteThread *t, void **result);

int sqlite3ThreadCreate(SQLiteThread **out, void *(*task)(void *), void *arg) {
  SQLiteThread *t = sqlite3_malloc(sizeof *t);
  *out = t;
  if (t == NULL) return SQLITE_NOMEM;
  t->result = task(arg);
  return SQLITE_OK;
}

int sqlite3ThreadJoin(SQLiteThread *t, void **result) {
  if (t == NULL) return SQLITE_NOMEM;
  *result = t->result;
  sqlite3_free(t);
  return SQLITE_OK;
}

/*
 * 3. Extensions (loadext.o): loading a shared-library extension needs
 *    dlopen, which a static program cannot use for this (the extension
 *    would need the libsqlite3 it calls into), and oplog never enables it
 *    (the load_extension() SQL function stays "not authorized"). Its API
 *    table refers to every public function, which links members the
 *    command never calls (sqlite3_get_table, sqlite3_complete, incremental
 *    BLOB I/O: about 10 KiB). Here loading fails with a message, and
 *    registering an automatic extension fails (oplog registers none).
 */
void sqlite3AutoLoadExtensions(sqlite3 *db);
void sqlite3CloseExtensions(sqlite3 *db);

int sqlite3_load_extension(sqlite3 *db, const char *file, const char *proc, char **err) {
  (void)db, (void)file, (void)proc;
  if (err) *err = sqlite3_mprintf("extensions cannot be loaded by the static oplog command");
  return SQLITE_ERROR;
}
int sqlite3_enable_load_extension(sqlite3 *db, int on) { return (void)db, on ? SQLITE_ERROR : SQLITE_OK; }
int sqlite3_auto_extension(void (*init)(void)) { return (void)init, SQLITE_ERROR; }
int sqlite3_cancel_auto_extension(void (*init)(void)) { return (void)init, 0; }
void sqlite3_reset_auto_extension(void) {}
void sqlite3AutoLoadExtensions(sqlite3 *db) { (void)db; }
void sqlite3CloseExtensions(sqlite3 *db) { (void)db; }
