/* fleet.h — fleet.c's libpq helpers and binary COPY (also used by the
 * bench's COPY baseline). Compiled only with OPLOG_POSTGRES. */
#ifndef OPLOG_FLEET_H
#define OPLOG_FLEET_H

#include <libpq-fe.h>

#include "internal.h"

/* Advisory locks: class "oplg", then 0 for the tables' creation, an
 * origin's first 4 bytes for shipping it. */
#define OPL_PG_LOCK_CLASS 0x6f706c67
static inline int32_t opl_pg_origin_lock(const uint8_t *o) {
  return (int32_t)((uint32_t)o[0] << 24 | (uint32_t)o[1] << 16 | (uint32_t)o[2] << 8 | o[3]);
}

/* n bytes as 2n lowercase hex digits and a NUL. */
void opl_hex(const uint8_t *p, size_t n, char *out);

/* Connects (OPLOG_IO naming the server's message on failure). */
int opl_pg_connect(oplog_db *db, const char *conninfo, PGconn **out);
/* Sets db's error from res (cleared) or the connection: OPLOG_IO when the
 * connection is lost, OPLOG_BUSY on a deadlock or serialization failure,
 * else OPLOG_SQL, with the server's message. */
int opl_pg_fail(oplog_db *db, PGconn *pg, PGresult *res, const char *what);
int opl_pg_exec(oplog_db *db, PGconn *pg, const char *sql, const char *what);
void opl_pg_rollback(PGconn *pg);
/* '\x<hex>'::bytea, sqlite3_malloc'd. */
char *opl_pg_bytea(const uint8_t *p, size_t n);
/* The schema name checked and double-quoted (NULL: "oplog"). */
int opl_pg_schema(oplog_db *db, const char *schema, char **quoted);
uint64_t opl_pg_get64(const uint8_t *p); /* big-endian, as binary results carry it */

/* Binary COPY (PostgreSQL's "binary format"): a header, rows, a trailer.
 * The field writers return non-zero when out of memory. */
#define COPY_HEADER_BYTES 19
int opl_copy_begin(buf *b);
int opl_copy_row(buf *b, int nfields);
int opl_copy_i64(buf *b, int64_t v);
int opl_copy_i32(buf *b, int32_t v);
int opl_copy_i16(buf *b, int v);
int opl_copy_bytes(buf *b, const void *p, size_t n);
int opl_copy_null(buf *b);
int opl_copy_end(buf *b);
/* Runs `sql` (a COPY ... FROM STDIN) and sends b. */
int opl_copy_send(oplog_db *db, PGconn *pg, const char *sql, const buf *b, const char *what);

/* ship --apply (fleet_apply.c, docs/fleet.md "Live tables"). open creates
 * the apply tables, begins the one transaction, waits for other appliers
 * and brings the server's catalog in line with db's; upto is the newest seq
 * of an origin applied there; add takes each new entry of that origin, in
 * seq order, as stored in db; finish applies them in total order and
 * commits; close rolls back what was not committed and frees. */
typedef struct pg_applier pg_applier;
int opl_pg_apply_open(oplog_db *db, PGconn *pg, const char *schema_quoted, pg_applier **out);
int opl_pg_apply_upto(pg_applier *ap, const uint8_t *origin, int64_t *seq);
int opl_pg_apply_add(pg_applier *ap, const stored_entry *e);
int opl_pg_apply_finish(pg_applier *ap, int64_t *applied, int64_t *conflicts);
void opl_pg_apply_close(pg_applier *ap);

#endif
