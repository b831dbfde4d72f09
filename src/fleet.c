/* fleet.c — a file's log in PostgreSQL: oplog_ship pushes every entry the
 * server lacks, as stored, with the signed checkpoints, into tables it
 * creates in a schema (batches of COPY, one transaction each, the origin
 * locked and the server's chain re-checked inside it); oplog_verify_postgres
 * checks the chains and checkpoints stored there without any key. Built
 * only with OPLOG_POSTGRES (libpq); docs/fleet.md describes the tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"

#define DEFAULT_BATCH 5000
/* A batch also closes once its entries hold this many bytes. */
#define BATCH_BYTES ((size_t)16 * 1024 * 1024)
#define WM SQL_INDEXED_UPTO

static const unsigned char zero_hash[OPLOG_HASH_BYTES];

void opl_hex(const uint8_t *p, size_t n, char *out) { sodium_bin2hex(out, 2 * n + 1, p, n); }

/* ---------------------------------------------------------------- libpq helpers */

static void quiet_notices(void *arg, const char *message) {
  (void)arg;
  (void)message; /* "relation already exists, skipping" and the like */
}

/* The server's message, without libpq's trailing newline. */
static const char *pg_message(PGconn *pg, PGresult *res, char *out, size_t n) {
  const char *m = res ? PQresultErrorMessage(res) : "";
  if (!m || !*m) m = PQerrorMessage(pg);
  snprintf(out, n, "%s", m && *m ? m : "unknown error");
  size_t len = strlen(out);
  while (len && (out[len - 1] == '\n' || out[len - 1] == ' ')) out[--len] = 0;
  return out;
}

int opl_pg_fail(oplog_db *db, PGconn *pg, PGresult *res, const char *what) {
  char m[512];
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  int code = OPLOG_SQL;
  if (PQstatus(pg) != CONNECTION_OK) code = OPLOG_IO;
  else if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03"))) code = OPLOG_BUSY;
  else if (state && !strncmp(state, "08", 2)) code = OPLOG_IO;
  else if (state && !strncmp(state, "57P", 3)) code = OPLOG_IO; /* the server shuts down */
  pg_message(pg, res, m, sizeof m);
  if (res) PQclear(res);
  return opl_db_error(db, code, "postgres: %s: %s", what, m);
}

int opl_pg_exec(oplog_db *db, PGconn *pg, const char *sql, const char *what) {
  PGresult *r = PQexec(pg, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return opl_pg_fail(db, pg, r, what);
  PQclear(r);
  return OPLOG_OK;
}

/* ROLLBACK after a failure: keeps the handle's error. */
void opl_pg_rollback(PGconn *pg) {
  if (PQstatus(pg) != CONNECTION_OK || PQtransactionStatus(pg) == PQTRANS_IDLE) return;
  PQclear(PQexec(pg, "ROLLBACK"));
}

int opl_pg_connect(oplog_db *db, const char *conninfo, PGconn **out) {
  *out = NULL;
  if (!conninfo || !*conninfo) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "postgres: a connection string is required");
  PGconn *pg = PQconnectdb(conninfo);
  if (!pg) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  if (PQstatus(pg) != CONNECTION_OK) {
    int rc = opl_pg_fail(db, pg, NULL, "cannot connect");
    PQfinish(pg);
    return rc;
  }
  PQsetNoticeProcessor(pg, quiet_notices, NULL);
  *out = pg;
  /* the entries' text is UTF-8, whatever the database's encoding */
  return opl_pg_exec(db, pg, "SET client_min_messages = warning; SET standard_conforming_strings = on;"
                                       " SET client_encoding = 'UTF8'", "session settings");
}

/* '\x<hex>'::bytea — only hex digits go into the text. */
char *opl_pg_bytea(const uint8_t *p, size_t n) {
  char *hx = sqlite3_malloc64(2 * n + 1);
  if (!hx) return NULL;
  opl_hex(p, n, hx);
  char *s = sqlite3_mprintf("'\\x%s'::bytea", hx);
  sqlite3_free(hx);
  return s;
}

int opl_pg_schema(oplog_db *db, const char *schema, char **quoted) {
  *quoted = NULL;
  if (!schema) schema = "oplog";
  if (!opl_valid_identifier(schema) || strlen(schema) > 63)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                        "postgres: schema name %s must match [A-Za-z_][A-Za-z0-9_]* (at most 63 characters)", schema);
  if (!(*quoted = sqlite3_mprintf("\"%w\"", schema))) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  return OPLOG_OK;
}

/* The log's tables (docs/fleet.md), created once under a lock so that
 * devices shipping for the first time at once do not race on them. */
static int ensure_tables(oplog_db *db, PGconn *pg, const char *s) {
  char *sql = sqlite3_mprintf(
      "BEGIN;"
      "SELECT pg_advisory_xact_lock(%d, 0);"
      "CREATE SCHEMA IF NOT EXISTS %s;"
      "CREATE TABLE IF NOT EXISTS %s.oplog_entries ("
      " origin bytea NOT NULL CHECK (length(origin) = 32),"
      " seq bigint NOT NULL CHECK (seq >= 1),"
      " clock bigint NOT NULL,"
      " aggregate_name text NOT NULL,"
      " created bigint NOT NULL,"
      " key_id bigint NOT NULL,"
      " data bytea NOT NULL,"
      " prev_hash bytea NOT NULL,"
      " hash bytea NOT NULL,"
      " metadata bytea NOT NULL,"
      " format smallint NOT NULL DEFAULT 2,"
      " PRIMARY KEY (origin, seq));"
      "CREATE TABLE IF NOT EXISTS %s.oplog_metadata ("
      " origin bytea NOT NULL, seq bigint NOT NULL, position integer NOT NULL,"
      " key text NOT NULL, value text,"
      " PRIMARY KEY (origin, seq, position));"
      "CREATE INDEX IF NOT EXISTS oplog_metadata_key_value ON %s.oplog_metadata (key, value);"
      "CREATE TABLE IF NOT EXISTS %s.oplog_checkpoints ("
      " origin bytea PRIMARY KEY CHECK (length(origin) = 32),"
      " seq bigint NOT NULL, text text NOT NULL);"
      "COMMIT",
      OPL_PG_LOCK_CLASS, s, s, s, s, s);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  int rc = opl_pg_exec(db, pg, sql, "creating the log's tables");
  sqlite3_free(sql);
  if (rc) opl_pg_rollback(pg);
  return rc;
}

/* The server's newest entry of an origin (seq 0, zero hash if none). */
static int server_top(oplog_db *db, PGconn *pg, const char *s, const uint8_t *origin, int64_t *seq,
                      unsigned char hash[OPLOG_HASH_BYTES], int lock) {
  char *lit = opl_pg_bytea(origin, OPLOG_ORIGIN_BYTES);
  if (!lit) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  char *sql = sqlite3_mprintf("SELECT seq, hash FROM %s.oplog_entries WHERE origin = %s ORDER BY seq DESC LIMIT 1", s, lit);
  char *lk = lock ? sqlite3_mprintf("SELECT pg_advisory_xact_lock(%d, %d)", OPL_PG_LOCK_CLASS, opl_pg_origin_lock(origin))
                  : NULL;
  sqlite3_free(lit);
  int rc = OPLOG_OK;
  if (!sql || (lock && !lk)) rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
  if (!rc && lk) rc = opl_pg_exec(db, pg, lk, "locking the origin");
  PGresult *r = NULL;
  if (!rc) {
    /* binary results: the hash as its 32 bytes */
    r = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      rc = opl_pg_fail(db, pg, r, "reading the server's cursor");
      r = NULL;
    }
  }
  sqlite3_free(sql);
  sqlite3_free(lk);
  if (rc) return rc;
  *seq = 0;
  memset(hash, 0, OPLOG_HASH_BYTES);
  if (PQntuples(r) == 1) {
    if (PQgetlength(r, 0, 0) != 8 || PQgetlength(r, 0, 1) != OPLOG_HASH_BYTES) {
      PQclear(r);
      return opl_db_error(db, OPLOG_CORRUPT, "postgres: the server's newest entry has a malformed seq or hash");
    }
    *seq = (int64_t)opl_pg_get64((const uint8_t *)PQgetvalue(r, 0, 0));
    memcpy(hash, PQgetvalue(r, 0, 1), OPLOG_HASH_BYTES);
  }
  PQclear(r);
  return OPLOG_OK;
}

/* The hash the server holds at (origin, seq); *found 0 if none. */
static int server_at(oplog_db *db, PGconn *pg, const char *s, const uint8_t *origin, int64_t seq, int *found,
                     unsigned char hash[OPLOG_HASH_BYTES]) {
  char *lit = opl_pg_bytea(origin, OPLOG_ORIGIN_BYTES);
  char *sql = lit ? sqlite3_mprintf("SELECT hash FROM %s.oplog_entries WHERE origin = %s AND seq = %lld", s, lit, (long long)seq)
                  : NULL;
  sqlite3_free(lit);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  PGresult *r = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 1);
  sqlite3_free(sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) return opl_pg_fail(db, pg, r, "reading an entry's hash");
  *found = PQntuples(r) == 1 && PQgetlength(r, 0, 0) == OPLOG_HASH_BYTES;
  if (*found) memcpy(hash, PQgetvalue(r, 0, 0), OPLOG_HASH_BYTES);
  PQclear(r);
  return OPLOG_OK;
}

/* ---------------------------------------------------------------- COPY (binary) */

uint64_t opl_pg_get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static int put_be(buf *b, uint64_t v, int n) {
  uint8_t t[8];
  for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
  return opl_buf_append(b, t, (size_t)n);
}
int opl_copy_begin(buf *b) {
  b->n = 0;
  static const uint8_t sig[COPY_HEADER_BYTES] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
  return opl_buf_append(b, sig, sizeof sig);
}
int opl_copy_row(buf *b, int nfields) { return put_be(b, (uint64_t)nfields, 2); }
int opl_copy_i64(buf *b, int64_t v) { return put_be(b, 8, 4) || put_be(b, (uint64_t)v, 8); }
int opl_copy_i32(buf *b, int32_t v) { return put_be(b, 4, 4) || put_be(b, (uint32_t)v, 4); }
int opl_copy_i16(buf *b, int v) { return put_be(b, 2, 4) || put_be(b, (uint16_t)v, 2); }
int opl_copy_bytes(buf *b, const void *p, size_t n) {
  return n > 0x7fffffff || put_be(b, n, 4) || (n && opl_buf_append(b, p, n));
}
int opl_copy_null(buf *b) { return put_be(b, 0xffffffffu, 4); }
int opl_copy_end(buf *b) { return put_be(b, 0xffff, 2); }

int opl_copy_send(oplog_db *db, PGconn *pg, const char *sql, const buf *b, const char *what) {
  PGresult *r = PQexec(pg, sql);
  if (PQresultStatus(r) != PGRES_COPY_IN) return opl_pg_fail(db, pg, r, what);
  PQclear(r);
  /* in pieces of 1 MiB: libpq buffers what it cannot send at once */
  for (size_t off = 0; off < b->n;) {
    size_t n = b->n - off < 1048576 ? b->n - off : 1048576;
    if (PQputCopyData(pg, (const char *)b->p + off, (int)n) != 1) return opl_pg_fail(db, pg, NULL, what);
    off += n;
  }
  if (PQputCopyEnd(pg, NULL) != 1) return opl_pg_fail(db, pg, NULL, what);
  int rc = OPLOG_OK;
  while ((r = PQgetResult(pg))) {
    if (!rc && PQresultStatus(r) != PGRES_COMMAND_OK) rc = opl_pg_fail(db, pg, r, what);
    else PQclear(r);
  }
  return rc;
}

/* ---------------------------------------------------------------- ship */

typedef struct origin_head {
  oplog_head_info h;
  int64_t no;
} origin_head;

typedef struct shipper {
  oplog_db *db;
  PGconn *pg;
  const oplog_ship_opts *o;
  char *s; /* the schema, quoted */
  char *copy_entries, *copy_meta;
  int64_t batch;
  sqlite3_stmt *at, *from, *no;
  origin_head *heads;
  size_t nheads, cap;
  buf rows, meta;
  int64_t total, done;
  oplog_ship_result res;
} shipper;

static int collect_head(void *ctx, const oplog_head_info *h) {
  shipper *sh = ctx;
  if (sh->nheads == sh->cap) {
    size_t cap = sh->cap ? 2 * sh->cap : 8;
    origin_head *p = sqlite3_realloc64(sh->heads, cap * sizeof *p);
    if (!p) return opl_db_error(sh->db, OPLOG_NOMEM, "out of memory");
    sh->heads = p;
    sh->cap = cap;
  }
  sh->heads[sh->nheads++] = (origin_head){*h, 0};
  return OPLOG_OK;
}

static int progress(shipper *sh) {
  if (sh->o->progress && sh->o->progress(sh->o->progress_ctx, sh->done, sh->total))
    return opl_db_error(sh->db, OPLOG_INVALID_ARGUMENT, "interrupted by the progress callback");
  return OPLOG_OK;
}

static int fork_error(oplog_db *db, const uint8_t *origin, int64_t seq, const char *what) {
  char hx[2 * OPLOG_ORIGIN_BYTES + 1];
  opl_hex(origin, OPLOG_ORIGIN_BYTES, hx);
  return opl_db_error(db, OPLOG_FORK,
                      "origin %s: %s at seq %lld differs from this file's: a cloned device or a rewritten history", hx,
                      what, (long long)seq);
}

/* The local id and hash of (origin no, seq): the derived index, then the
 * entries above its watermark (FORMAT.md "Complete results"). */
static int local_at(shipper *sh, int64_t no, int64_t seq, int64_t *id, unsigned char hash[OPLOG_HASH_BYTES]) {
  sqlite3_stmt *s = sh->at;
  sqlite3_bind_int64(s, 1, no);
  sqlite3_bind_int64(s, 2, seq);
  int r = sqlite3_step(s), rc = OPLOG_OK;
  if (r == SQLITE_ROW && sqlite3_column_bytes(s, 1) == OPLOG_HASH_BYTES) {
    *id = sqlite3_column_int64(s, 0);
    memcpy(hash, sqlite3_column_blob(s, 1), OPLOG_HASH_BYTES);
  } else if (r == SQLITE_ROW || r == SQLITE_DONE) {
    rc = opl_db_error(sh->db, OPLOG_CORRUPT, "origin %lld has no valid entry at seq %lld in this file", (long long)no,
                      (long long)seq);
  } else {
    rc = opl_db_sqlerr(sh->db, r);
  }
  sqlite3_reset(s);
  return rc;
}

/* One batch in one transaction: lock the origin, check that the server's
 * chain ends where the batch starts, COPY, commit. *moved: the server's
 * chain moved since it was read (another shipper): nothing was stored, the
 * caller starts this origin again from the server's new cursor. */
static int send_batch(shipper *sh, const uint8_t *origin, int64_t first, const uint8_t *first_prev, int64_t n,
                      int *moved) {
  oplog_db *db = sh->db;
  *moved = 0;
  int rc = opl_pg_exec(db, sh->pg, "BEGIN", "starting a batch");
  int64_t top = 0;
  unsigned char top_hash[OPLOG_HASH_BYTES];
  if (!rc) rc = server_top(db, sh->pg, sh->s, origin, &top, top_hash, 1);
  if (!rc && top != first - 1) {
    if (top >= first) {
      *moved = 1;
    } else {
      char hx[2 * OPLOG_ORIGIN_BYTES + 1];
      opl_hex(origin, OPLOG_ORIGIN_BYTES, hx);
      rc = opl_db_error(db, OPLOG_GAP, "origin %s: the server holds up to seq %lld, this batch starts at seq %lld", hx,
                        (long long)top, (long long)first);
    }
  } else if (!rc && memcmp(top_hash, first_prev, OPLOG_HASH_BYTES) != 0) {
    rc = fork_error(db, origin, top, "the server's entry");
  }
  if (!rc && !*moved) {
    int has_meta = sh->meta.n > COPY_HEADER_BYTES;
    if (opl_copy_end(&sh->rows) || (has_meta && opl_copy_end(&sh->meta)))
      rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
    if (!rc) rc = opl_copy_send(db, sh->pg, sh->copy_entries, &sh->rows, "storing entries");
    if (!rc && has_meta) rc = opl_copy_send(db, sh->pg, sh->copy_meta, &sh->meta, "storing metadata");
    if (!rc) rc = opl_pg_exec(db, sh->pg, "COMMIT", "committing a batch");
  }
  if (rc || *moved) opl_pg_rollback(sh->pg);
  if (!rc && !*moved) {
    sh->res.entries += n;
    sh->res.batches++;
    sh->done += n;
    rc = progress(sh);
  }
  return rc;
}

/* Appends entry e to the batch's COPY rows and its metadata pairs. */
static int add_entry(shipper *sh, const stored_entry *e) {
  buf *b = &sh->rows;
  int bad = opl_copy_row(b, 11) || opl_copy_bytes(b, e->origin_id, OPLOG_ORIGIN_BYTES) || opl_copy_i64(b, e->seq) ||
            opl_copy_i64(b, e->clock) || opl_copy_bytes(b, e->aggregate, e->aggregate_len) ||
            opl_copy_i64(b, e->created) || opl_copy_i64(b, e->key_id) || opl_copy_bytes(b, e->data, e->ndata) ||
            opl_copy_bytes(b, e->prev_hash, OPLOG_HASH_BYTES) || opl_copy_bytes(b, e->hash, OPLOG_HASH_BYTES) ||
            opl_copy_bytes(b, e->metadata, e->nmetadata) || opl_copy_i16(b, e->format);
  if (bad) return opl_db_error(sh->db, OPLOG_NOMEM, "out of memory");
  meta_reader r;
  meta_pair m;
  if (!opl_meta_open(&r, e->metadata, e->nmetadata))
    return opl_db_error(sh->db, OPLOG_CORRUPT, "entry %lld: its metadata is malformed", (long long)e->id);
  int32_t pos = 0, s;
  while ((s = opl_meta_next(&r, &m)) == 1) {
    b = &sh->meta;
    bad = opl_copy_row(b, 5) || opl_copy_bytes(b, e->origin_id, OPLOG_ORIGIN_BYTES) || opl_copy_i64(b, e->seq) ||
          opl_copy_i32(b, ++pos) || opl_copy_bytes(b, m.key, m.nkey) ||
          (m.has_value ? opl_copy_bytes(b, m.value, m.nvalue) : opl_copy_null(b));
    if (bad) return opl_db_error(sh->db, OPLOG_NOMEM, "out of memory");
  }
  if (s < 0) return opl_db_error(sh->db, OPLOG_CORRUPT, "entry %lld: its metadata is malformed", (long long)e->id);
  return OPLOG_OK;
}

/* Ships origin h's entries above the server's cursor, batch by batch. */
static int ship_origin(shipper *sh, const origin_head *h) {
  oplog_db *db = sh->db;
  const uint8_t *origin = h->h.origin;
  int64_t mine = 0;
  for (;;) {
    int64_t top;
    unsigned char top_hash[OPLOG_HASH_BYTES], local[OPLOG_HASH_BYTES];
    int64_t id = 0;
    int rc = server_top(db, sh->pg, sh->s, origin, &top, top_hash, 0);
    if (rc) return rc;
    if (h->h.seq <= top) {
      /* nothing new: the server's entry at our newest seq must be ours */
      if (h->h.seq >= 1) {
        int found;
        if ((rc = server_at(db, sh->pg, sh->s, origin, h->h.seq, &found, top_hash))) return rc;
        if (!found || memcmp(top_hash, h->h.hash, OPLOG_HASH_BYTES) != 0)
          return fork_error(db, origin, h->h.seq, "the server's entry");
      }
      sh->res.skipped += h->h.seq - mine;
      return OPLOG_OK;
    }
    if (top >= 1) {
      if ((rc = local_at(sh, h->no, top, &id, local))) return rc;
      if (memcmp(local, top_hash, OPLOG_HASH_BYTES) != 0) return fork_error(db, origin, top, "the server's entry");
    } else if ((rc = local_at(sh, h->no, 1, &id, local))) {
      return rc;
    }
    /* the entries from top + 1, in id order (which is seq order within an origin) */
    sqlite3_stmt *s = sh->from;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, h->no);
    int64_t next = top + 1, first = next, n = 0;
    unsigned char prev[OPLOG_HASH_BYTES], first_prev[OPLOG_HASH_BYTES];
    memcpy(prev, top >= 1 ? top_hash : zero_hash, OPLOG_HASH_BYTES);
    memcpy(first_prev, prev, OPLOG_HASH_BYTES);
    int moved = 0, r = SQLITE_DONE;
    if (opl_copy_begin(&sh->rows) || opl_copy_begin(&sh->meta)) rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
    while (!rc && !moved && next <= h->h.seq && (r = sqlite3_step(s)) == SQLITE_ROW) {
      stored_entry e;
      if ((rc = opl_entry_from_row(db, s, &e))) break;
      if (e.seq < next) continue; /* at or below the server's cursor */
      unsigned char hh[OPLOG_HASH_BYTES];
      char hx[2 * OPLOG_ORIGIN_BYTES + 1];
      if (e.seq != next || memcmp(e.prev_hash, prev, OPLOG_HASH_BYTES) != 0) {
        opl_hex(origin, OPLOG_ORIGIN_BYTES, hx);
        rc = opl_db_error(db, OPLOG_CORRUPT, "origin %s: this file's chain breaks at seq %lld (entry %lld)", hx,
                          (long long)next, (long long)e.id);
        break;
      }
      if ((rc = opl_chain_hash(&e, hh)) || memcmp(hh, e.hash, OPLOG_HASH_BYTES) != 0) {
        rc = opl_db_error(db, OPLOG_CORRUPT, "entry %lld: its hash does not match its contents: not shipped", (long long)e.id);
        break;
      }
      if ((rc = add_entry(sh, &e))) break;
      memcpy(prev, e.hash, OPLOG_HASH_BYTES);
      n++;
      next++;
      if (n >= sh->batch || sh->rows.n >= BATCH_BYTES || next > h->h.seq) {
        if ((rc = send_batch(sh, origin, first, first_prev, n, &moved))) break;
        if (moved) break;
        mine += n;
        first = next;
        memcpy(first_prev, prev, OPLOG_HASH_BYTES);
        n = 0;
        if (opl_copy_begin(&sh->rows) || opl_copy_begin(&sh->meta)) rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      }
    }
    if (!rc && !moved && r != SQLITE_ROW && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
    sqlite3_reset(s);
    if (!rc && !moved && next <= h->h.seq) {
      char hx[2 * OPLOG_ORIGIN_BYTES + 1];
      opl_hex(origin, OPLOG_ORIGIN_BYTES, hx);
      rc = opl_db_error(db, OPLOG_CORRUPT, "origin %s: this file has no entry at seq %lld", hx, (long long)next);
    }
    if (rc) return rc;
    if (!moved) {
      sh->res.skipped += h->h.seq - mine;
      return OPLOG_OK;
    }
    /* another shipper stored some of these meanwhile: compare and go on from there */
  }
}

/* Stores a checkpoint (newest per origin): under the origin's lock, the
 * server's entry at its seq, when held, must have its hash (fork). */
static int ship_checkpoint(shipper *sh, const char *text) {
  oplog_db *db = sh->db;
  checkpoint_info cp;
  int bad;
  if (opl_checkpoint_open(db, text, strlen(text), &cp, &bad)) return OPLOG_OK; /* not ours to fix: verify reports it */
  char *lit = opl_pg_bytea(cp.origin, OPLOG_ORIGIN_BYTES);
  char *sql = lit ? sqlite3_mprintf("INSERT INTO %s.oplog_checkpoints (origin, seq, text) VALUES (%s, %lld, $1)"
                                    " ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq, text = excluded.text"
                                    " WHERE %s.oplog_checkpoints.seq < excluded.seq",
                                    sh->s, lit, (long long)cp.seq, sh->s)
                  : NULL;
  sqlite3_free(lit);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  int rc = opl_pg_exec(db, sh->pg, "BEGIN", "storing a checkpoint");
  int64_t top;
  unsigned char h[OPLOG_HASH_BYTES];
  if (!rc) rc = server_top(db, sh->pg, sh->s, cp.origin, &top, h, 1);
  if (!rc && cp.seq <= top) {
    int found;
    if (!(rc = server_at(db, sh->pg, sh->s, cp.origin, cp.seq, &found, h)) && found &&
        memcmp(h, cp.hash, OPLOG_HASH_BYTES) != 0)
      rc = fork_error(db, cp.origin, cp.seq, "the server's entry (checked against a signed checkpoint)");
  }
  if (!rc) {
    PGresult *r = PQexecParams(sh->pg, sql, 1, NULL, &text, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      rc = opl_pg_fail(db, sh->pg, r, "storing a checkpoint");
    } else {
      if (!strcmp(PQcmdTuples(r), "1")) sh->res.checkpoints++;
      PQclear(r);
    }
  }
  if (!rc) rc = opl_pg_exec(db, sh->pg, "COMMIT", "storing a checkpoint");
  if (rc) opl_pg_rollback(sh->pg);
  sqlite3_free(sql);
  return rc;
}

/* A fresh checkpoint of this file's origin (when it can sign: the key of
 * an encrypted file), then those received of other origins. */
static int ship_checkpoints(shipper *sh) {
  oplog_db *db = sh->db;
  int rc = OPLOG_OK;
  for (size_t i = 0; i < sh->nheads && !rc; i++) {
    if (sh->heads[i].no != 1 || sh->heads[i].h.seq < 1 || opl_key_required(db)) continue;
    char *text = NULL;
    if ((rc = opl_checkpoint_sign(db, sh->heads[i].h.seq, sh->heads[i].h.hash, &text))) return rc;
    rc = ship_checkpoint(sh, text);
    sqlite3_free(text);
  }
  opl_db_clear_error(db);
  if (rc || db->level < 3) return rc;
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT text FROM oplog_checkpoints WHERE origin <> 1 ORDER BY origin", -1, &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
    char *text = opl_col_dup(s, 0);
    rc = text ? ship_checkpoint(sh, text) : opl_db_error(db, OPLOG_NOMEM, "out of memory");
    sqlite3_free(text);
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  return rc;
}

/* --apply: every entry this file holds that the server has not applied,
 * origin by origin in seq order, then all of them in total order. */
static int apply_all(shipper *sh) {
  oplog_db *db = sh->db;
  pg_applier *ap = NULL;
  int rc = opl_pg_apply_open(db, sh->pg, sh->s, &ap);
  for (size_t i = 0; !rc && i < sh->nheads; i++) {
    const origin_head *h = &sh->heads[i];
    int64_t upto, id;
    unsigned char hash[OPLOG_HASH_BYTES];
    if ((rc = opl_pg_apply_upto(ap, h->h.origin, &upto)) || upto >= h->h.seq) continue;
    if ((rc = local_at(sh, h->no, upto + 1, &id, hash))) break;
    sqlite3_stmt *s = sh->from;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, h->no);
    int r;
    while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
      stored_entry e;
      if ((rc = opl_entry_from_row(db, s, &e)) || e.seq <= upto) continue;
      if (e.seq > h->h.seq) break;
      rc = opl_pg_apply_add(ap, &e);
    }
    if (!rc && r != SQLITE_ROW && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
    sqlite3_reset(s);
  }
  if (!rc) rc = opl_pg_apply_finish(ap, &sh->res.applied, &sh->res.conflicts);
  opl_pg_apply_close(ap);
  return rc;
}

static int ship_run(shipper *sh) {
  oplog_db *db = sh->db;
  int rc;
  if ((rc = oplog_heads(db, collect_head, sh))) return rc;
  if ((rc = opl_pg_connect(db, sh->o->conninfo, &sh->pg)) || (rc = ensure_tables(db, sh->pg, sh->s))) return rc;
  if ((rc = opl_db_begin(db, 0))) return rc;
  static const char *const sql[] = {
      "SELECT e.id, e.hash FROM oplog_index x JOIN oplog_entries e ON e.id = x.entry_id WHERE x.origin = ?1 AND x.seq = ?2"
      " UNION ALL SELECT id, hash FROM oplog_entries WHERE id > " WM " AND origin = ?1 AND seq = ?2 LIMIT 1",
      "SELECT no FROM oplog_origins WHERE id = ?1"};
  sqlite3_stmt **st[] = {&sh->at, &sh->no};
  for (size_t i = 0; !rc && i < 2; i++) {
    int r = sqlite3_prepare_v2(db->sql, sql[i], -1, st[i], NULL);
    if (r != SQLITE_OK) rc = opl_db_sqlerr(db, r);
  }
  char *q = rc ? NULL : sqlite3_mprintf("SELECT %s FROM oplog_entries WHERE id >= ?1 AND origin = ?2 ORDER BY id", db->entry_cols);
  if (!rc && !q) rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
  if (!rc) {
    int r = sqlite3_prepare_v2(db->sql, q, -1, &sh->from, NULL);
    if (r != SQLITE_OK) rc = opl_db_sqlerr(db, r);
  }
  sqlite3_free(q);
  /* local numbers, and how much lies beyond the server's cursors (for progress) */
  for (size_t i = 0; !rc && i < sh->nheads; i++) {
    sqlite3_bind_blob(sh->no, 1, sh->heads[i].h.origin, OPLOG_ORIGIN_BYTES, SQLITE_STATIC);
    int r = sqlite3_step(sh->no);
    if (r == SQLITE_ROW) sh->heads[i].no = sqlite3_column_int64(sh->no, 0);
    else rc = r == SQLITE_DONE ? opl_db_error(db, OPLOG_CORRUPT, "an origin of the heads is not in oplog_origins") : opl_db_sqlerr(db, r);
    sqlite3_reset(sh->no);
    int64_t top;
    unsigned char h[OPLOG_HASH_BYTES];
    if (!rc && !(rc = server_top(db, sh->pg, sh->s, sh->heads[i].h.origin, &top, h, 0)) && sh->heads[i].h.seq > top)
      sh->total += sh->heads[i].h.seq - top;
  }
  if (!rc) rc = progress(sh);
  for (size_t i = 0; !rc && i < sh->nheads; i++) rc = ship_origin(sh, &sh->heads[i]);
  if (!rc) rc = ship_checkpoints(sh);
  if (!rc && sh->o->apply) rc = apply_all(sh);
  if (!rc) rc = opl_db_commit(db);
  else opl_db_rollback(db);
  return rc;
}

int oplog_ship(oplog_db *db, const oplog_ship_opts *opts, oplog_ship_result *out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (out) memset(out, 0, sizeof *out);
  if (!opts) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "opts is NULL");
  if (!db->sql) return opl_db_error(db, OPLOG_CLOSED, "the handle is closed");
  if (db->tx != TX_NONE) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "finish the open transaction first");
  if (db->format != OPLOG_FORMAT_VERSION)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "a format-1 file has no origin yet: open it writable once to migrate it");
  if (opts->batch < 0) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "batch must be positive");
  int rc;
  /* apply decrypts: without the key, refused before anything is shipped */
  if (opts->apply && (rc = opl_key_required(db))) return rc;
  shipper sh;
  memset(&sh, 0, sizeof sh);
  sh.db = db;
  sh.o = opts;
  sh.batch = opts->batch ? opts->batch : DEFAULT_BATCH;
  if (!(rc = opl_pg_schema(db, opts->schema, &sh.s))) {
    sh.copy_entries = sqlite3_mprintf("COPY %s.oplog_entries (origin, seq, clock, aggregate_name, created, key_id, data,"
                                      " prev_hash, hash, metadata, format) FROM STDIN (FORMAT binary)", sh.s);
    sh.copy_meta = sqlite3_mprintf("COPY %s.oplog_metadata (origin, seq, position, key, value) FROM STDIN (FORMAT binary)", sh.s);
    rc = sh.copy_entries && sh.copy_meta ? ship_run(&sh) : opl_db_error(db, OPLOG_NOMEM, "out of memory");
  }
  sqlite3_finalize(sh.at);
  sqlite3_finalize(sh.from);
  sqlite3_finalize(sh.no);
  if (sh.pg) {
    opl_pg_rollback(sh.pg);
    PQfinish(sh.pg);
  }
  sqlite3_free(sh.heads);
  sqlite3_free(sh.s);
  sqlite3_free(sh.copy_entries);
  sqlite3_free(sh.copy_meta);
  opl_buf_free(&sh.rows);
  opl_buf_free(&sh.meta);
  if (out) *out = sh.res;
  return rc;
}

/* ---------------------------------------------------------------- verify */

typedef struct pg_verifier {
  oplog_db *db; /* errors only: a handle with no file */
  oplog_problem_fn fn;
  void *ctx;
  const oplog_pg_verify_opts *o;
  oplog_verify_result res;
  /* the origin being walked */
  int have;
  uint8_t origin[OPLOG_ORIGIN_BYTES];
  int64_t seq;
  unsigned char hash[OPLOG_HASH_BYTES];
} pg_verifier;

static int vproblem(pg_verifier *v, int64_t seq, const char *kind, const uint8_t *origin, const char *fmt, ...) {
  char hx[2 * OPLOG_ORIGIN_BYTES + 1] = "?";
  if (origin) opl_hex(origin, OPLOG_ORIGIN_BYTES, hx);
  va_list ap;
  va_start(ap, fmt);
  char *what = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  char *detail = what ? sqlite3_mprintf("origin %s seq %lld: %s", hx, (long long)seq, what) : NULL;
  sqlite3_free(what);
  if (!detail) return opl_db_error(v->db, OPLOG_NOMEM, "out of memory");
  v->res.ok = 0;
  v->res.problems++;
  int rc = v->fn ? v->fn(v->ctx, seq, kind, detail) : 0;
  sqlite3_free(detail);
  return rc ? opl_db_error(v->db, OPLOG_INVALID_ARGUMENT, "interrupted by the problem callback") : OPLOG_OK;
}

/* A field of a binary COPY row: *len -1 for NULL. */
static int field(const uint8_t **p, const uint8_t *end, const uint8_t **val, int32_t *len) {
  if (end - *p < 4) return 0;
  *len = (int32_t)get32(*p);
  *p += 4;
  if (*len < 0) {
    *val = NULL;
    return 1;
  }
  if (end - *p < *len) return 0;
  *val = *p;
  *p += *len;
  return 1;
}

/* One row of (origin, seq, clock, aggregate_name, created, key_id, data,
 * prev_hash, hash, metadata, format) in (origin, seq) order. */
static int check_row(pg_verifier *v, const uint8_t *p, const uint8_t *end) {
  const uint8_t *f[11];
  int32_t n[11];
  if (end - p < 2 || (p[0] << 8 | p[1]) != 11) return opl_db_error(v->db, OPLOG_CORRUPT, "postgres: unexpected COPY row");
  p += 2;
  for (int i = 0; i < 11; i++)
    if (!field(&p, end, &f[i], &n[i])) return opl_db_error(v->db, OPLOG_CORRUPT, "postgres: truncated COPY row");
  v->res.entries++;
  if (n[0] != OPLOG_ORIGIN_BYTES || n[1] != 8)
    return vproblem(v, n[1] == 8 ? (int64_t)opl_pg_get64(f[1]) : 0, "hash_mismatch", NULL, "a row with a malformed origin");
  const uint8_t *origin = f[0];
  int64_t seq = (int64_t)opl_pg_get64(f[1]);
  if (!v->have || memcmp(origin, v->origin, OPLOG_ORIGIN_BYTES) != 0) {
    v->have = 1;
    memcpy(v->origin, origin, OPLOG_ORIGIN_BYTES);
    v->seq = 0;
    memcpy(v->hash, zero_hash, OPLOG_HASH_BYTES);
  }
  int rc = OPLOG_OK;
  if (seq != v->seq + 1) {
    if (seq > v->seq + 1)
      rc = vproblem(v, seq, "missing_entry", origin, "seqs %lld to %lld are missing", (long long)v->seq + 1, (long long)seq - 1);
    if (rc) return rc;
  }
  int shape = n[2] == 8 && n[4] == 8 && n[5] == 8 && n[7] == OPLOG_HASH_BYTES && n[8] == OPLOG_HASH_BYTES && n[3] >= 0 &&
              n[6] >= 0 && n[9] >= 0 && n[10] == 2;
  int format = shape ? (int)((uint16_t)(f[10][0] << 8 | f[10][1])) : 0;
  if (!shape || (format != 1 && format != 2)) {
    rc = vproblem(v, seq, "hash_mismatch", origin, "the row is malformed (a hash, a number or the format)");
    v->seq = seq;
    memset(v->hash, 0xff, OPLOG_HASH_BYTES); /* the next entry cannot chain on it */
    return rc;
  }
  stored_entry e = {.origin_id = origin,
                    .seq = seq,
                    .clock = (int64_t)opl_pg_get64(f[2]),
                    .aggregate = (const char *)f[3],
                    .aggregate_len = (size_t)n[3],
                    .created = (int64_t)opl_pg_get64(f[4]),
                    .key_id = (int64_t)opl_pg_get64(f[5]),
                    .data = f[6],
                    .ndata = (size_t)n[6],
                    .prev_hash = f[7],
                    .hash = f[8],
                    .metadata = f[9],
                    .nmetadata = (size_t)n[9],
                    .format = format};
  if (seq <= v->seq) {
    if (!rc) rc = vproblem(v, seq, "chain_break", origin, "its seq is not above the previous seq %lld", (long long)v->seq);
  } else if (seq == v->seq + 1 && memcmp(e.prev_hash, v->hash, OPLOG_HASH_BYTES) != 0) {
    /* (after missing entries there is no previous hash to compare with) */
    if (!rc) rc = vproblem(v, seq, "chain_break", origin, "prev_hash is not the hash of the origin's previous entry");
  }
  unsigned char h[OPLOG_HASH_BYTES];
  meta_reader mr;
  if (!rc && !opl_meta_open(&mr, e.metadata, e.nmetadata))
    rc = vproblem(v, seq, "decrypt_failed", origin, "its metadata blob is malformed");
  if (!rc && (opl_chain_hash(&e, h) || memcmp(h, e.hash, OPLOG_HASH_BYTES) != 0))
    rc = vproblem(v, seq, "hash_mismatch", origin, "the stored hash differs from the recomputed one: the row was changed");
  if (seq > v->seq) {
    v->seq = seq;
    memcpy(v->hash, e.hash, OPLOG_HASH_BYTES);
  }
  return rc;
}

static int verify_entries(pg_verifier *v, PGconn *pg, const char *s, const char *where) {
  oplog_db *db = v->db;
  char *sql = sqlite3_mprintf("COPY (SELECT origin, seq, clock, aggregate_name, created, key_id, data, prev_hash, hash,"
                              " metadata, format FROM %s.oplog_entries%s ORDER BY origin, seq) TO STDOUT (FORMAT binary)",
                              s, where);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  PGresult *r = PQexec(pg, sql);
  sqlite3_free(sql);
  if (PQresultStatus(r) != PGRES_COPY_OUT) return opl_pg_fail(db, pg, r, "reading the entries");
  PQclear(r);
  int rc = OPLOG_OK, header = 0;
  char *row;
  int n;
  while ((n = PQgetCopyData(pg, &row, 0)) > 0) {
    const uint8_t *p = (const uint8_t *)row, *end = p + n;
    if (!header) {
      /* the signature, flags and header extension come with the first row */
      if (n < 19 || memcmp(p, "PGCOPY\n\377\r\n\0", 11) != 0) rc = opl_db_error(db, OPLOG_CORRUPT, "postgres: not a binary COPY");
      else p += 19 + get32(p + 15);
      header = 1;
    }
    if (!rc && end - p >= 2 && !(p[0] == 0xff && p[1] == 0xff)) rc = check_row(v, p, end);
    PQfreemem(row);
    if (!rc && v->res.entries % 4096 == 0 && v->o->progress && v->o->progress(v->o->progress_ctx, v->res.entries, 0))
      rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT, "interrupted by the progress callback");
    if (rc) break;
  }
  if (rc) {
    /* drain what is left of the COPY so that the connection can close cleanly */
    while ((n = PQgetCopyData(pg, &row, 0)) > 0) PQfreemem(row);
  }
  if (!rc && n == -2) rc = opl_pg_fail(db, pg, NULL, "reading the entries");
  while ((r = PQgetResult(pg))) {
    if (!rc && PQresultStatus(r) != PGRES_COMMAND_OK) rc = opl_pg_fail(db, pg, r, "reading the entries");
    else PQclear(r);
  }
  return rc;
}

static int verify_checkpoints(pg_verifier *v, PGconn *pg, const char *s, const char *where) {
  oplog_db *db = v->db;
  char *sql = sqlite3_mprintf("SELECT c.origin, c.seq, c.text, e.hash, (SELECT max(seq) FROM %s.oplog_entries m WHERE"
                              " m.origin = c.origin) FROM %s.oplog_checkpoints c LEFT JOIN %s.oplog_entries e ON"
                              " e.origin = c.origin AND e.seq = c.seq%s ORDER BY c.origin",
                              s, s, s, where);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  PGresult *r = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 1);
  sqlite3_free(sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) return opl_pg_fail(db, pg, r, "reading the checkpoints");
  int rc = OPLOG_OK;
  for (int i = 0; !rc && i < PQntuples(r); i++) {
    const uint8_t *origin = PQgetlength(r, i, 0) == OPLOG_ORIGIN_BYTES ? (const uint8_t *)PQgetvalue(r, i, 0) : NULL;
    int64_t seq = PQgetlength(r, i, 1) == 8 ? (int64_t)opl_pg_get64((const uint8_t *)PQgetvalue(r, i, 1)) : 0;
    checkpoint_info cp;
    int bad = 0;
    if (opl_checkpoint_open(db, PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2), &cp, &bad)) {
      rc = vproblem(v, seq, bad ? "bad_signature" : "checkpoint_mismatch", origin, "checkpoint: %s", oplog_errmsg(db));
      continue;
    }
    char want[2 * OPLOG_HASH_BYTES + 1], held[2 * OPLOG_HASH_BYTES + 1];
    opl_hex(cp.hash, OPLOG_HASH_BYTES, want);
    if (!origin || memcmp(origin, cp.origin, OPLOG_ORIGIN_BYTES) != 0 || seq != cp.seq)
      rc = vproblem(v, seq, "checkpoint_mismatch", origin, "the stored checkpoint names another origin or seq than its row");
    else if (PQgetisnull(r, i, 4))
      rc = vproblem(v, seq, "checkpoint_mismatch", origin, "the checkpoint is at seq %lld and the server holds no entry of that origin",
                    (long long)seq);
    else if (PQgetisnull(r, i, 3))
      rc = vproblem(v, seq, "checkpoint_mismatch", origin,
                    "the checkpoint is at seq %lld and the server holds no entry there: entries were cut off or removed",
                    (long long)seq);
    else if (PQgetlength(r, i, 3) != OPLOG_HASH_BYTES || memcmp(PQgetvalue(r, i, 3), cp.hash, OPLOG_HASH_BYTES) != 0) {
      if (PQgetlength(r, i, 3) == OPLOG_HASH_BYTES) opl_hex((const uint8_t *)PQgetvalue(r, i, 3), OPLOG_HASH_BYTES, held);
      else strcpy(held, "(not a hash)");
      rc = vproblem(v, seq, "checkpoint_mismatch", origin, "the entry has hash %s where the signed checkpoint says %s: the log was rewritten",
                    held, want);
    }
  }
  PQclear(r);
  return rc;
}

static int verify_run(pg_verifier *v) {
  oplog_db *db = v->db;
  const oplog_pg_verify_opts *o = v->o;
  char *s = NULL, *where = NULL, *cwhere = NULL;
  PGconn *pg = NULL;
  int rc = opl_pg_schema(db, o->schema, &s);
  if (!rc && o->origin) {
    uint8_t id[OPLOG_ORIGIN_BYTES];
    size_t got = 0;
    if (strlen(o->origin) != 2 * OPLOG_ORIGIN_BYTES ||
        sodium_hex2bin(id, sizeof id, o->origin, strlen(o->origin), NULL, &got, NULL) != 0 || got != sizeof id) {
      rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT, "origin must be 64 hex characters");
    } else {
      char *lit = opl_pg_bytea(id, sizeof id);
      where = lit ? sqlite3_mprintf(" WHERE origin = %s", lit) : NULL;
      cwhere = lit ? sqlite3_mprintf(" WHERE c.origin = %s", lit) : NULL;
      sqlite3_free(lit);
      if (!where || !cwhere) rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
    }
  }
  if (!rc) rc = opl_pg_connect(db, o->conninfo, &pg);
  if (!rc) {
    /* one snapshot for both walks */
    rc = opl_pg_exec(db, pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "starting the check");
    char *exists = rc ? NULL : sqlite3_mprintf("SELECT to_regclass('%s.oplog_entries') IS NOT NULL AND"
                                               " to_regclass('%s.oplog_checkpoints') IS NOT NULL", s, s);
    if (!rc && !exists) rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
    if (!rc) {
      PGresult *r = PQexec(pg, exists);
      if (PQresultStatus(r) != PGRES_TUPLES_OK) rc = opl_pg_fail(db, pg, r, "looking for the log's tables");
      else {
        if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
          rc = opl_db_error(db, OPLOG_NOT_FOUND, "postgres: schema %s holds no oplog tables (nothing was shipped there)", s);
        PQclear(r);
      }
    }
    sqlite3_free(exists);
  }
  if (!rc) rc = verify_entries(v, pg, s, where ? where : "");
  if (!rc) rc = verify_checkpoints(v, pg, s, cwhere ? cwhere : "");
  if (!rc && o->progress && o->progress(o->progress_ctx, v->res.entries, v->res.entries))
    rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT, "interrupted by the progress callback");
  if (pg) {
    opl_pg_rollback(pg);
    PQfinish(pg);
  }
  sqlite3_free(s);
  sqlite3_free(where);
  sqlite3_free(cwhere);
  return rc;
}

int oplog_verify_postgres(const oplog_pg_verify_opts *opts, oplog_problem_fn on_problem, void *ctx,
                          oplog_verify_result *out, char *errbuf, size_t errbuf_len) {
  oplog_db db; /* a handle with no file: opl_* report errors through it */
  memset(&db, 0, sizeof db);
  pg_verifier v;
  memset(&v, 0, sizeof v);
  v.db = &db;
  v.fn = on_problem;
  v.ctx = ctx;
  v.o = opts;
  v.res.ok = 1;
  int rc = opts ? verify_run(&v) : opl_db_error(&db, OPLOG_INVALID_ARGUMENT, "opts is NULL");
  if (out) *out = v.res;
  if (errbuf && errbuf_len) snprintf(errbuf, errbuf_len, "%s", rc ? (db.msg ? db.msg : oplog_code_name(rc)) : "not an error");
  sqlite3_free(db.msg);
  return rc;
}

int oplog_have_postgres(void) { return 1; }
