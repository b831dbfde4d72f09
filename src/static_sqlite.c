/*
 * static_sqlite.c — only in the static `oplog` command (OPLOG_STATIC).
 *
 * Debian's libsqlite3.a registers FTS3/4, FTS5, R*Tree/Geopoly, dbstat and
 * sqlite_stmt in every connection (main.o calls their initialisers), which
 * pulls about 330 KiB of code into a static binary that never uses them.
 * These definitions take the initialisers' place, so the linker leaves
 * those members of the archive out: the device binary has no such virtual
 * tables (oplog uses none). Should a future libsqlite3.a define one of
 * these in a member the build needs, the link fails with "multiple
 * definition" instead of silently doing without.
 */
typedef struct sqlite3 sqlite3;

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
