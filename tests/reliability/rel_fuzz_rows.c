/*
 * rel_fuzz_rows.c — fuzz target: hostile rows, values, metadata and type
 * definitions through the write paths.
 *
 * The input is a small program: each step picks (from the bytes) an
 * operation kind (also invalid ones), a type name, field names (valid
 * columns, wrong case, quotes and SQL, non-UTF-8, empty, very long), values
 * of every type (non-UTF-8 text, embedded NULs, INT64 extremes, NaN, huge
 * blobs, invalid type tags), masks and null lists; then metadata (huge,
 * many pairs, hostile keys). It runs through oplog_tx_* (committed or
 * rolled back), through oplog_write_entry (always rolled back, as that
 * path leaves live tables alone), and sometimes through oplog_define with
 * hostile names and declarations.
 *
 * Checked: every code is a clean one; a failed call leaves no transaction
 * open; a committed entry reads back with the operations that were accepted
 * (type, kind, mask, nulls) and exactly its metadata, each row logged as the
 * live table stored it (format 2) — which the oracle below computes with
 * SQLite itself, not with the library: a probe table of the column's
 * declared type for each given value, and the live row read with plain SQL
 * right after the commit for what the caller did not give (DEFAULTs, a
 * rowid); the schema keeps its oplog tables and
 * triggers (no SQL injection through a name or declaration); and every 64
 * inputs verify with replay finds the log and the live tables equal.
 */
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "rel_common.h"

typedef struct src {
  const uint8_t *p;
  size_t n, i;
} src;

static unsigned u8(src *s) { return s->i < s->n ? s->p[s->i++] : 0; }
static uint64_t u64(src *s) {
  uint64_t v = 0;
  for (int k = 0; k < 8; k++) v = v << 8 | u8(s);
  return v;
}
/* A byte string taken from the input (at most max bytes). */
static size_t bytes(src *s, const uint8_t **out, size_t max) {
  size_t n = u8(s);
  if (n > max) n = max;
  if (n > s->n - s->i) n = s->n - s->i;
  *out = s->p + s->i;
  s->i += n;
  return n;
}

static struct {
  char *dir, *path;
  oplog_db *db;
  int64_t runs, entries;
  int64_t commits, accepted_ops, rejected_ops, ll_written, defines_ok;
  char big[1 << 21]; /* a 2 MiB blob, made once */
} F;

/* One literal, not two concatenated (clang's -Wstring-concatenation). */
#define LONG_NAME                                                                          \
  "an_exceedingly_long_column_name_that_goes_on_and_on_and_on_and_on_and_on_and_on_and_on_" \
  "and_on_and_on_and_on_and_on_and_on_and_on_and_on_and_on_and_on_and_on_and_on_and_on"
static const char *const NAMES[] = {
    "id", "name", "data", "score", "flag", "k", "v", "a", "b", "c", "ID", "Name", "",
    "id\"", "x'; DROP TABLE oplog_entries; --", "name]", "`", "\xff\xfe", "n\xc3",
    "rowid", "oplog_entries", "_rowid_", "data data", "sc\"\"ore",
    LONG_NAME,
};
#define NNAMES (sizeof NAMES / sizeof NAMES[0])

static const char *const TYPES[] = {"t1", "t2", "t3", "T1", "", "t1'--", "nope", "oplog_types",
                                    "t2\" OR 1=1", "\xc3\x28"};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

static const char *const AGGS[] = {"agg", "agg2", "", "agg'; --", "missing", "\xff"};
#define NAGGS (sizeof AGGS / sizeof AGGS[0])

static const char *const DECLS[] = {"TEXT",
                                    "INTEGER PRIMARY KEY",
                                    "BLOB NOT NULL DEFAULT x'00'",
                                    "TEXT); DROP TABLE oplog_entries; --",
                                    "INTEGER, evil TEXT",
                                    "TEXT CHECK (1) ); CREATE TABLE pwn(x",
                                    "",
                                    "REAL /* comment",
                                    "TEXT COLLATE nocase",
                                    "\"",
                                    "INTEGER REFERENCES oplog_entries(id)"};
#define NDECLS (sizeof DECLS / sizeof DECLS[0])

static void define_base(oplog_db *db) {
  static const oplog_column c1[] = {{"id", "INTEGER PRIMARY KEY"},
                                    {"name", "TEXT"},
                                    {"data", "BLOB"},
                                    {"score", "REAL"},
                                    {"flag", "INTEGER"}};
  static const oplog_column c2[] = {{"k", "TEXT PRIMARY KEY NOT NULL"},
                                    {"v", "BLOB"},
                                    {"name", "TEXT NOT NULL DEFAULT ''"}};
  static const oplog_column c3[] = {
      {"a", "TEXT NOT NULL"}, {"b", "INTEGER NOT NULL"}, {"c", "TEXT UNIQUE"}};
  static const char *const key3[] = {"a", "b"};
  oplog_type_spec t1 = {"t1", NULL, "agg", c1, 5, NULL, 0};
  oplog_type_spec t2 = {"t2", NULL, "agg", c2, 3, NULL, 0};
  oplog_type_spec t3 = {"t3", "t3_rows", "agg2", c3, 3, key3, 2};
  REL_OK(db, oplog_define(db, &t1));
  REL_OK(db, oplog_define(db, &t2));
  REL_OK(db, oplog_define(db, &t3));
}

static void oracle_close_raw(void);

static void reset_db(void) {
  oracle_close_raw(); /* its raw connection would keep the old file */
  if (F.db) oplog_close(F.db);
  rel_remove_db(F.path);
  oplog_open_opts o = rel_opts(rel_key);
  o.sync = OPLOG_SYNC_NORMAL;
  F.db = NULL;
  REL_CHECK(oplog_open(F.path, &o, &F.db) == OPLOG_OK, "open");
  define_base(F.db);
  F.entries = 0;
}

static void check_schema(void);

/* Fixed hostile cases, run once at set-up: each must be a clean error (or
 * a clean success) and leave no transaction open. */
static void expect_clean(int rc, const char *what, int allow_ok) {
  FUZZ_CHECK((allow_ok && rc == OPLOG_OK) || rc == OPLOG_INVALID_ARGUMENT ||
                 rc == OPLOG_NOT_FOUND || rc == OPLOG_CONSTRAINT,
             "%s: %s: %s", what, oplog_code_name(rc), oplog_errmsg(F.db));
  if (oplog_tx_active(F.db)) oplog_tx_rollback(F.db);
}

static int apply_one(const oplog_op *op) {
  int rc = oplog_tx_begin(F.db, "agg");
  if (rc) return rc;
  rc = oplog_tx_apply(F.db, op);
  if (rc) return rc;
  int64_t id;
  return oplog_tx_commit(F.db, NULL, 0, &id);
}

static void hostile_fixed(void) {
  /* a row with 100 fields */
  oplog_field many[100];
  char names[100][8];
  for (int i = 0; i < 100; i++) {
    snprintf(names[i], sizeof names[i], "c%d", i);
    many[i].name = i == 0 ? "id" : names[i];
    many[i].value.type = OPLOG_INTEGER;
    many[i].value.u.i = i;
  }
  oplog_op op = {"t1", OPLOG_OP_CREATE, {many, 100}, NULL, 0, NULL, 0};
  expect_clean(apply_one(&op), "100 fields", 0);
  /* NULL pointers where the API takes arrays or names */
  oplog_field nf[2] = {{"id", {OPLOG_INTEGER, {.i = 77}}}, {NULL, {OPLOG_INTEGER, {.i = 1}}}};
  oplog_op o2 = {"t1", OPLOG_OP_CREATE, {nf, 2}, NULL, 0, NULL, 0};
  expect_clean(apply_one(&o2), "NULL field name", 0);
  oplog_op o3 = {NULL, OPLOG_OP_CREATE, {nf, 1}, NULL, 0, NULL, 0};
  expect_clean(apply_one(&o3), "NULL type", 0);
  oplog_op o4 = {"t1", OPLOG_OP_CREATE, {NULL, 3}, NULL, 0, NULL, 0};
  expect_clean(apply_one(&o4), "NULL fields with a count", 0);
  oplog_field tf[2] = {{"id", {OPLOG_INTEGER, {.i = 78}}}, {"name", {OPLOG_TEXT, {.b = {NULL, 5}}}}};
  oplog_op o5 = {"t1", OPLOG_OP_CREATE, {tf, 2}, NULL, 0, NULL, 0};
  expect_clean(apply_one(&o5), "text with NULL bytes pointer", 0);
  oplog_field uf[1] = {{"id", {OPLOG_INTEGER, {.i = 1}}}};
  oplog_op o6 = {"t1", OPLOG_OP_UPDATE, {uf, 1}, NULL, 2, NULL, 0};
  expect_clean(apply_one(&o6), "mask NULL with a count", 0);
  /* a 16 MiB blob: accepted or refused cleanly, and then readable */
  size_t big = 16u << 20;
  char *b = malloc(big);
  memset(b, 0xab, big);
  oplog_field bf[2] = {{"id", {OPLOG_INTEGER, {.i = 79}}}, {"data", {OPLOG_BLOB, {.b = {b, big}}}}};
  oplog_op o7 = {"t1", OPLOG_OP_CREATE, {bf, 2}, NULL, 0, NULL, 0};
  expect_clean(apply_one(&o7), "16 MiB blob", 1);
  free(b);
  /* 20000 metadata pairs, a 1 MiB metadata value, NULL metadata key */
  oplog_meta *md = calloc(20000, sizeof *md);
  char *v = malloc(1 << 20);
  memset(v, 'v', (1 << 20) - 1);
  v[(1 << 20) - 1] = 0;
  for (int i = 0; i < 20000; i++) {
    md[i].key = i % 2 ? "k" : "it's \"quoted\"; DROP TABLE t1; --";
    md[i].value = i == 0 ? v : i % 3 ? "x" : NULL;
  }
  oplog_field kf[1] = {{"id", {OPLOG_INTEGER, {.i = 80}}}};
  oplog_op o8 = {"t1", OPLOG_OP_CREATE, {kf, 1}, NULL, 0, NULL, 0};
  int64_t id = 0;
  int rc = oplog_tx_begin(F.db, "agg");
  if (rc == OPLOG_OK) rc = oplog_tx_apply(F.db, &o8);
  if (rc == OPLOG_OK) rc = oplog_tx_commit(F.db, md, 20000, &id);
  expect_clean(rc, "huge metadata", 1);
  if (rc == OPLOG_OK) {
    oplog_entry *e = NULL;
    FUZZ_CHECK(oplog_entry_get(F.db, id, &e) == OPLOG_OK && e->nmetadata == 20000 &&
                   strlen(e->metadata[0].value) == (1 << 20) - 1,
               "huge metadata does not read back");
    oplog_entry_free(e);
  }
  md[5].key = NULL;
  oplog_field kf2[1] = {{"id", {OPLOG_INTEGER, {.i = 81}}}};
  oplog_op o9 = {"t1", OPLOG_OP_CREATE, {kf2, 1}, NULL, 0, NULL, 0};
  rc = oplog_tx_begin(F.db, "agg");
  if (rc == OPLOG_OK) rc = oplog_tx_apply(F.db, &o9);
  if (rc == OPLOG_OK) rc = oplog_tx_commit(F.db, md, 10, &id);
  expect_clean(rc, "NULL metadata key", 0);
  free(md);
  free(v);
  /* type specs: 65 columns, none, a NULL column name, SQL in names */
  oplog_column cols[65];
  char cn[65][8];
  for (int i = 0; i < 65; i++) {
    snprintf(cn[i], sizeof cn[i], "c%d", i);
    cols[i].name = cn[i];
    cols[i].decl = i == 0 ? "INTEGER PRIMARY KEY" : "TEXT";
  }
  oplog_type_spec t = {"wide", NULL, "aggw", cols, 65, NULL, 0};
  expect_clean(oplog_define(F.db, &t), "65 columns", 0);
  t.ncolumns = 0;
  expect_clean(oplog_define(F.db, &t), "no column", 0);
  t.ncolumns = 2;
  cols[1].name = NULL;
  expect_clean(oplog_define(F.db, &t), "NULL column name", 0);
  cols[1].name = "x\"; DROP TABLE t1; --";
  expect_clean(oplog_define(F.db, &t), "SQL in a column name", 0);
  cols[1].name = "c1";
  cols[1].decl = NULL;
  expect_clean(oplog_define(F.db, &t), "NULL declaration", 0);
  static const char *const nokey[] = {"nope"};
  cols[1].decl = "TEXT";
  oplog_type_spec t2 = {"wide2", NULL, "aggw", cols, 2, nokey, 1};
  expect_clean(oplog_define(F.db, &t2), "key naming no column", 0);
  /* A NaN key: SQLite stores NaN as NULL, so an INTEGER PRIMARY KEY gets a
   * new rowid. Refusing it is fine; accepting it, the log must carry the key
   * the live row really got, or the entry cannot identify its row. */
  oplog_field nanf[2] = {{"id", {OPLOG_REAL, {.r = NAN}}}, {"name", {OPLOG_TEXT, {.b = {"nan", 3}}}}};
  oplog_op o10 = {"t1", OPLOG_OP_CREATE, {nanf, 2}, NULL, 0, NULL, 0};
  rc = oplog_tx_begin(F.db, "agg");
  if (rc == OPLOG_OK) rc = oplog_tx_apply(F.db, &o10);
  if (rc == OPLOG_OK) rc = oplog_tx_commit(F.db, NULL, 0, &id);
  expect_clean(rc, "NaN key", 1);
  if (rc == OPLOG_OK) {
    oplog_entry *e = NULL;
    FUZZ_CHECK(oplog_entry_get(F.db, id, &e) == OPLOG_OK, "NaN-key entry unreadable");
    int64_t rowid = rel_query_int(F.path, "SELECT id FROM t1 WHERE name = 'nan'");
    const oplog_value *k = NULL;
    for (size_t i = 0; i < e->ops[0].row.nfields; i++)
      if (!strcmp(e->ops[0].row.fields[i].name, "id")) k = &e->ops[0].row.fields[i].value;
    FUZZ_CHECK(k && k->type == OPLOG_INTEGER && k->u.i == rowid,
               "a NaN key was accepted: the live row got id %" PRId64
               " but the log says type %d (not that id)",
               rowid, k ? (int)k->type : -1);
    oplog_entry_free(e);
  }
  FUZZ_CHECK(rel_verify(F.db, 1, "hostile"), "log and live tables disagree after hostile cases");
}

static void setup(void) {
  if (F.db) return;
  F.dir = rel_mkdtemp_fast("fuzz-rows");
  F.path = strdup(rel_path(F.dir, "rows.db"));
  for (size_t i = 0; i < sizeof F.big; i++) F.big[i] = (char)(i * 31 + (i >> 11));
  reset_db();
  hostile_fixed();
  check_schema();
  /* A fresh file for the fuzzing: re-verifying the 16 MiB entry every 64
   * inputs would dominate the run. */
  reset_db();
}

/* Storage for one program's strings: names and values point into the
 * input or into these buffers, valid until the next input. */
typedef struct prog {
  oplog_op ops[8];
  oplog_field fields[8][8];
  const char *lists[8][2][4];
  char namebuf[8][8][40];
  int accepted[8];
  size_t nops;
  oplog_meta md[64];
  char mdbuf[64][2][40];
  size_t nmd;
  char *hugemeta;
} prog;

/* The real columns of t1, t2, t3 (key columns first). */
static const char *const COLS[3][5] = {{"id", "name", "data", "score", "flag"},
                                       {"k", "v", "name", NULL, NULL},
                                       {"a", "b", "c", NULL, NULL}};
static const size_t NCOLS[3] = {5, 3, 3};

/* A column of type ti (0..2) most of the time, else a hostile name. */
static const char *pick_col(src *s, int ti, char *buf, size_t cap);

/* A name: from the pool, or raw input bytes (NUL-terminated copy). */
static const char *pick_name(src *s, char *buf, size_t cap) {
  unsigned c = u8(s);
  if (c < 200) return NAMES[c % NNAMES];
  const uint8_t *b;
  size_t n = bytes(s, &b, cap - 1);
  memcpy(buf, b, n);
  buf[n] = 0;
  return buf;
}

static const char *pick_col(src *s, int ti, char *buf, size_t cap) {
  unsigned c = u8(s);
  size_t nkey = ti == 2 ? 2 : 1;
  if (ti >= 0 && c < 176) return COLS[ti][nkey + c % (NCOLS[ti] - nkey)];
  if (ti >= 0 && c < 184) return COLS[ti][0]; /* the key twice */
  return pick_name(s, buf, cap);
}

static void pick_value(src *s, oplog_value *v) {
  unsigned t = u8(s);
  const uint8_t *b;
  switch (t % 11) {
    case 0: v->type = OPLOG_NULL; break;
    case 1: v->type = OPLOG_INTEGER; v->u.i = (int64_t)u64(s); break;
    case 2: {
      static const int64_t edge[] = {INT64_MIN, INT64_MAX, 0, -1, 1};
      v->type = OPLOG_INTEGER;
      v->u.i = edge[u8(s) % 5];
      break;
    }
    case 3: {
      static const double edge[] = {0.0, -0.0, 1e308, -1e-308, 3.5};
      v->type = OPLOG_REAL;
      unsigned k = u8(s) % 8;
      v->u.r = k < 5 ? edge[k] : k == 5 ? NAN : k == 6 ? INFINITY : -INFINITY;
      break;
    }
    case 4: /* text straight from the input: may be invalid UTF-8 or hold NULs */
      v->type = OPLOG_TEXT;
      v->u.b.n = bytes(s, &b, 255);
      v->u.b.p = b;
      break;
    case 5: v->type = OPLOG_TEXT; v->u.b.p = "caf\xc3\xa9 \"q\" 'r'"; v->u.b.n = 14; break;
    case 6:
      v->type = OPLOG_BLOB;
      v->u.b.n = bytes(s, &b, 255);
      v->u.b.p = b;
      break;
    case 7: /* huge */
      v->type = u8(s) & 1 ? OPLOG_BLOB : OPLOG_TEXT;
      v->u.b.p = F.big;
      v->u.b.n = sizeof F.big >> (u8(s) % 8);
      break;
    case 8: v->type = OPLOG_BOOLEAN; v->u.i = u8(s) % 3; break; /* 2 is not a boolean */
    case 9: v->type = (oplog_value_type)(6 + u8(s)); v->u.i = 0; break; /* bad tag */
    default: v->type = OPLOG_BLOB; v->u.b.p = NULL; v->u.b.n = 0; break;
  }
}

static void build(src *s, prog *g) {
  memset(g, 0, sizeof *g);
  unsigned nc = u8(s);
  g->nops = nc < 128 ? 1 : 1 + nc % 8;
  for (size_t i = 0; i < g->nops; i++) {
    oplog_op *op = &g->ops[i];
    unsigned tc = u8(s);
    int ti = tc < 208 ? (int)(tc % 3) : -1; /* mostly a real type */
    op->type = ti >= 0 ? TYPES[ti] : TYPES[3 + tc % (NTYPES - 3)];
    unsigned kc = u8(s);
    op->kind = (oplog_op_kind)(kc < 224 ? 1 + kc % 5 : kc % 7); /* 0, 6 invalid */
    /* The key first (usually), then other columns. */
    size_t nf = 0;
    if (ti >= 0 && u8(s) < 224) {
      size_t nkey = ti == 2 ? 2 : 1;
      for (size_t j = 0; j < nkey; j++) {
        g->fields[i][nf].name = COLS[ti][j];
        oplog_value *v = &g->fields[i][nf++].value;
        unsigned vc = u8(s);
        if (ti == 0 || (ti == 2 && j == 1)) {
          v->type = OPLOG_INTEGER;
          /* an existing row (for update/delete) or a fresh one (create) */
          v->u.i = vc < 96 ? (int64_t)(vc % 16)
                   : vc < 224 ? 1000 + F.runs * 64 + (int64_t)(i * 8 + vc % 8)
                              : (int64_t)u64(s);
        } else {
          v->type = OPLOG_TEXT;
          static const char *const keys[] = {"a", "b", "c'", "\"d\"", "e;--"};
          v->u.b.p = keys[vc % 5];
          v->u.b.n = strlen(keys[vc % 5]);
        }
      }
    }
    size_t extra = u8(s) % 5;
    for (size_t j = 0; j < extra && nf < 8; j++, nf++) {
      g->fields[i][nf].name = pick_col(s, ti, g->namebuf[i][nf], sizeof g->namebuf[i][nf]);
      pick_value(s, &g->fields[i][nf].value);
    }
    op->row.fields = nf ? g->fields[i] : (u8(s) & 1 ? NULL : g->fields[i]);
    op->row.nfields = nf;
    /* mask and nulls: columns of the row for an update, noise otherwise */
    for (int l = 0; l < 2; l++) {
      unsigned lc = u8(s);
      size_t nl = op->kind == OPLOG_OP_UPDATE ? (lc % 3) : (lc < 224 ? 0 : lc % 3);
      for (size_t j = 0; j < nl; j++) {
        unsigned c = u8(s);
        if (ti >= 0 && c < 192)
          g->lists[i][l][j] = COLS[ti][1 + c % (NCOLS[ti] - 1)];
        else
          g->lists[i][l][j] = NAMES[c % NNAMES];
      }
      if (l == 0) {
        op->mask = g->lists[i][0];
        op->nmask = nl;
      } else {
        op->nulls = g->lists[i][1];
        op->nnulls = nl;
      }
    }
  }
  unsigned m = u8(s);
  g->nmd = m % 16;
  for (size_t i = 0; i < g->nmd; i++) {
    g->md[i].key = pick_name(s, g->mdbuf[i][0], sizeof g->mdbuf[i][0]);
    unsigned c = u8(s);
    g->md[i].value = c % 4 == 0 ? NULL : pick_name(s, g->mdbuf[i][1], sizeof g->mdbuf[i][1]);
  }
  if (m >= 240 && g->nmd < 64) { /* huge metadata: a 256 KiB value */
    g->hugemeta = malloc(1 << 18);
    memset(g->hugemeta, 'm', (1 << 18) - 1);
    g->hugemeta[(1 << 18) - 1] = 0;
    g->md[g->nmd].key = "huge";
    g->md[g->nmd++].value = g->hugemeta;
  }
}

static int clean_write_code(int rc) {
  return rc == OPLOG_OK || rc == OPLOG_INVALID_ARGUMENT || rc == OPLOG_NOT_FOUND ||
         rc == OPLOG_CONSTRAINT;
}

/* ---------------------------------------------------------------- the oracle
 *
 * In format 2 a transaction logs each row as the live table stored it: a
 * create every column (affinity applied, DEFAULTs filled, rowid assigned),
 * an update its key and mask columns, a delete its key (column order,
 * storage classes, no BOOLEAN). What "as stored" means is computed here
 * without the library: by SQLite itself, in a scratch in-memory database
 * (a probe table with the column's declared type, the given value inserted
 * and read back), and by plain SQL reads of the fuzz file (the declared
 * types, the key, the live row right after the commit). */

static struct {
  sqlite3 *mem; /* probe tables, one per declared type */
  sqlite3 *raw; /* the fuzz file, read-only (reopened by reset_db) */
  struct {
    char *decl;
    sqlite3_stmt *ins; /* INSERT INTO pN(x) VALUES (?1) */
    sqlite3_stmt *sel; /* SELECT x FROM pN: what the table stored */
    char del[32];      /* DELETE FROM pN */
    int blob_aff;      /* SQLite gives the column BLOB affinity */
  } probe[64];
  size_t nprobe;
  int64_t probed, live_checked, live_skipped;
} O;

static void oracle_close_raw(void) {
  sqlite3_close(O.raw);
  O.raw = NULL;
}

static sqlite3 *raw_db(void) {
  if (!O.raw) {
    int r = sqlite3_open_v2(F.path, &O.raw, SQLITE_OPEN_READONLY, NULL);
    FUZZ_CHECK(r == SQLITE_OK, "raw open %s: %s", F.path, sqlite3_errstr(r));
    sqlite3_busy_timeout(O.raw, 10000);
  }
  return O.raw;
}

/* The value probe table pi stored for what is bound to its INSERT (read
 * back with a SELECT, then deleted); NULL if the insert failed. The caller
 * frees it (sqlite3_value_free). */
static sqlite3_value *probe_stored(size_t pi) {
  sqlite3_value *out = NULL;
  if (sqlite3_step(O.probe[pi].ins) == SQLITE_DONE && sqlite3_step(O.probe[pi].sel) == SQLITE_ROW) {
    out = sqlite3_value_dup(sqlite3_column_value(O.probe[pi].sel, 0));
    FUZZ_CHECK(out != NULL, "sqlite3_value_dup");
  }
  sqlite3_reset(O.probe[pi].ins);
  sqlite3_clear_bindings(O.probe[pi].ins);
  sqlite3_reset(O.probe[pi].sel);
  sqlite3_exec(O.mem, O.probe[pi].del, NULL, NULL, NULL);
  return out;
}

/* The storage class probe table pi gives the integer 1 (bind_int) or the
 * text '1'; -1 if the probe failed. */
static int probe_typeof(size_t pi, int bind_int) {
  if (bind_int)
    sqlite3_bind_int64(O.probe[pi].ins, 1, 1);
  else
    sqlite3_bind_text(O.probe[pi].ins, 1, "1", 1, SQLITE_STATIC);
  sqlite3_value *v = probe_stored(pi);
  int t = v ? sqlite3_value_type(v) : -1;
  sqlite3_value_free(v);
  return t;
}

/* The probe table of a declared type (made on first use). */
static size_t probe_for(const char *decl) {
  for (size_t i = 0; i < O.nprobe; i++)
    if (!strcmp(O.probe[i].decl, decl)) return i;
  if (!O.mem) FUZZ_CHECK(sqlite3_open(":memory:", &O.mem) == SQLITE_OK, "probe database");
  FUZZ_CHECK(O.nprobe < sizeof O.probe / sizeof O.probe[0], "too many declared types");
  size_t i = O.nprobe;
  char *sql = sqlite3_mprintf("CREATE TABLE p%d(x %s)", (int)i, decl);
  int r = sqlite3_exec(O.mem, sql, NULL, NULL, NULL);
  FUZZ_CHECK(r == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(O.mem));
  sqlite3_free(sql);
  sql = sqlite3_mprintf("INSERT INTO p%d(x) VALUES (?1)", (int)i);
  r = sqlite3_prepare_v2(O.mem, sql, -1, &O.probe[i].ins, NULL);
  FUZZ_CHECK(r == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(O.mem));
  sqlite3_free(sql);
  sql = sqlite3_mprintf("SELECT x FROM p%d", (int)i);
  r = sqlite3_prepare_v2(O.mem, sql, -1, &O.probe[i].sel, NULL);
  FUZZ_CHECK(r == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(O.mem));
  sqlite3_free(sql);
  snprintf(O.probe[i].del, sizeof O.probe[i].del, "DELETE FROM p%zu", i);
  O.probe[i].decl = strdup(decl);
  /* BLOB affinity (declared BLOB or no type): an integer stays an integer
   * and a text stays text. (INTEGER/NUMERIC turn '1' into 1, TEXT turns 1
   * into '1', REAL turns 1 into 1.0.) */
  int ti = probe_typeof(i, 1), tt = probe_typeof(i, 0);
  FUZZ_CHECK(ti >= 0 && tt >= 0, "probe of '%s' failed: %s", decl, sqlite3_errmsg(O.mem));
  O.probe[i].blob_aff = ti == SQLITE_INTEGER && tt == SQLITE_TEXT;
  O.nprobe++;
  return i;
}

/* Binds a value as the API defines it (a zero-length TEXT/BLOB is a value,
 * not NULL; a boolean is the integer 0/1). to_blob: TEXT goes in as BLOB. */
static void bind_given(sqlite3_stmt *s, int i, const oplog_value *v, int to_blob) {
  static const char empty[1];
  const void *p = v->u.b.p ? v->u.b.p : empty;
  switch (v->type) {
    case OPLOG_NULL: sqlite3_bind_null(s, i); break;
    case OPLOG_INTEGER:
    case OPLOG_BOOLEAN: sqlite3_bind_int64(s, i, v->u.i); break;
    case OPLOG_REAL: sqlite3_bind_double(s, i, v->u.r); break; /* NaN binds NULL */
    case OPLOG_TEXT:
      if (to_blob)
        sqlite3_bind_blob64(s, i, p, v->u.b.n, SQLITE_STATIC);
      else
        sqlite3_bind_text64(s, i, p, v->u.b.n, SQLITE_STATIC, SQLITE_UTF8);
      break;
    case OPLOG_BLOB: sqlite3_bind_blob64(s, i, p, v->u.b.n, SQLITE_STATIC); break;
    default: FUZZ_CHECK(0, "a value of type %d was accepted", (int)v->type);
  }
}

/* A logged value equals an SQLite value: same storage class, same bytes. */
static int same_stored(const oplog_value *got, sqlite3_value *want) {
  switch (sqlite3_value_type(want)) {
    case SQLITE_NULL: return got->type == OPLOG_NULL;
    case SQLITE_INTEGER: return got->type == OPLOG_INTEGER && got->u.i == sqlite3_value_int64(want);
    case SQLITE_FLOAT: return got->type == OPLOG_REAL && got->u.r == sqlite3_value_double(want);
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      int t = sqlite3_value_type(want) == SQLITE_TEXT ? OPLOG_TEXT : OPLOG_BLOB;
      const void *b = t == OPLOG_TEXT ? (const void *)sqlite3_value_text(want) : sqlite3_value_blob(want);
      size_t n = (size_t)sqlite3_value_bytes(want);
      return (int)got->type == t && got->u.b.n == n && (n == 0 || !memcmp(got->u.b.p, b, n));
    }
  }
  return 0;
}

static const char *stored_name(int t) {
  static const char *const n[] = {"NULL", "INTEGER", "REAL", "TEXT", "BLOB", "BOOLEAN"};
  return t >= 0 && t <= 5 ? n[t] : "?";
}

static int same_logged(const oplog_value *a, const oplog_value *b) {
  if (a->type != b->type) return 0;
  switch (a->type) {
    case OPLOG_NULL: return 1;
    case OPLOG_REAL: return a->u.r == b->u.r;
    case OPLOG_TEXT:
    case OPLOG_BLOB: return a->u.b.n == b->u.b.n && (!a->u.b.n || !memcmp(a->u.b.p, b->u.b.p, a->u.b.n));
    default: return a->u.i == b->u.i;
  }
}

/* A type's live table as SQLite and the file's catalog describe it. */
typedef struct tinfo {
  char table[256];
  size_t ncols;
  char name[64][256];
  char decl[64][256]; /* pragma_table_info's type */
  int key[64];        /* part of the type's key (catalog) */
  int rowid_alias;    /* the key is the table's INTEGER PRIMARY KEY */
} tinfo;

static void type_info(const char *type, tinfo *ti) {
  memset(ti, 0, sizeof *ti);
  sqlite3 *r = raw_db();
  sqlite3_stmt *s = NULL;
  FUZZ_CHECK(sqlite3_prepare_v2(r, "SELECT table_name FROM oplog_types WHERE name = ?1", -1, &s, NULL) ==
                 SQLITE_OK, "%s", sqlite3_errmsg(r));
  sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
  FUZZ_CHECK(sqlite3_step(s) == SQLITE_ROW, "type %s is not in oplog_types", type);
  snprintf(ti->table, sizeof ti->table, "%s", (const char *)sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  FUZZ_CHECK(sqlite3_prepare_v2(r,
                                "SELECT name, type, pk, (SELECT count(*) FROM pragma_table_info(?1) WHERE pk)"
                                " FROM pragma_table_info(?1) ORDER BY cid",
                                -1, &s, NULL) == SQLITE_OK,
             "%s", sqlite3_errmsg(r));
  sqlite3_bind_text(s, 1, ti->table, -1, SQLITE_STATIC);
  while (sqlite3_step(s) == SQLITE_ROW) {
    FUZZ_CHECK(ti->ncols < 64, "table %s has more than 64 columns", ti->table);
    snprintf(ti->name[ti->ncols], 256, "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(ti->decl[ti->ncols], 256, "%s", (const char *)sqlite3_column_text(s, 1));
    if (sqlite3_column_int(s, 2) == 1 && sqlite3_column_int(s, 3) == 1 &&
        !sqlite3_stricmp(ti->decl[ti->ncols], "INTEGER"))
      ti->rowid_alias = 1; /* (the fuzz defines no WITHOUT ROWID table) */
    ti->ncols++;
  }
  sqlite3_finalize(s);
  FUZZ_CHECK(ti->ncols > 0, "table %s of type %s has no column", ti->table, type);
  FUZZ_CHECK(sqlite3_prepare_v2(r,
                                "SELECT name FROM oplog_type_columns WHERE type_name = ?1"
                                " AND key_position IS NOT NULL",
                                -1, &s, NULL) == SQLITE_OK,
             "%s", sqlite3_errmsg(r));
  sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
  int nkey = 0;
  while (sqlite3_step(s) == SQLITE_ROW)
    for (size_t c = 0; c < ti->ncols; c++)
      if (!strcmp(ti->name[c], (const char *)sqlite3_column_text(s, 0))) ti->key[c] = 1, nkey++;
  sqlite3_finalize(s);
  FUZZ_CHECK(nkey > 0, "type %s has no key in the catalog", type);
  if (ti->rowid_alias) {
    /* the INTEGER PRIMARY KEY must be the type's whole key */
    for (size_t c = 0; c < ti->ncols; c++)
      if (ti->key[c] && sqlite3_stricmp(ti->decl[c], "INTEGER")) ti->rowid_alias = 0;
    if (nkey != 1) ti->rowid_alias = 0;
  }
}

static int op_is_create(int k) { return k == OPLOG_OP_CREATE || k == OPLOG_OP_CREATE_ITEMS; }
static int op_is_delete(int k) { return k == OPLOG_OP_DELETE || k == OPLOG_OP_DELETE_ITEMS; }

static const oplog_field *find_field(const oplog_row *r, const char *name) {
  for (size_t x = 0; x < r->nfields; x++)
    if (r->fields[x].name && !strcmp(r->fields[x].name, name)) return &r->fields[x];
  return NULL;
}

static int in_names(const char *const *l, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (l[i] && !strcmp(l[i], name)) return 1;
  return 0;
}

/* The same row of the same type (by its logged key values). */
static int same_row(const oplog_op *a, const oplog_op *b, const tinfo *ti) {
  if (strcmp(a->type, b->type)) return 0;
  for (size_t c = 0; c < ti->ncols; c++) {
    if (!ti->key[c]) continue;
    const oplog_field *x = find_field(&a->row, ti->name[c]), *y = find_field(&b->row, ti->name[c]);
    if (!x || !y || !same_logged(&x->value, &y->value)) return 0;
  }
  return 1;
}

static void bind_logged(sqlite3_stmt *s, int i, const oplog_value *v) {
  switch (v->type) {
    case OPLOG_NULL: sqlite3_bind_null(s, i); break;
    case OPLOG_REAL: sqlite3_bind_double(s, i, v->u.r); break;
    case OPLOG_TEXT: sqlite3_bind_text64(s, i, v->u.b.p, v->u.b.n, SQLITE_STATIC, SQLITE_UTF8); break;
    case OPLOG_BLOB: sqlite3_bind_blob64(s, i, v->u.b.n ? v->u.b.p : "", v->u.b.n, SQLITE_STATIC); break;
    default: sqlite3_bind_int64(s, i, v->u.i); break;
  }
}

static char *quoted(const char *id) { return sqlite3_mprintf("\"%w\"", id); }

/* The live row an operation left (found by its logged key), compared with
 * the log: a create's every column and an update's logged columns hold
 * what was logged, an update's nulls are NULL, a deleted row is gone. */
static void check_live(int64_t id, size_t i, const oplog_op *out, const tinfo *ti) {
  sqlite3 *r = raw_db();
  char *sql = sqlite3_mprintf("SELECT");
  for (size_t c = 0; c < ti->ncols; c++) {
    char *q = quoted(ti->name[c]);
    sql = sqlite3_mprintf("%z%s %s", sql, c ? "," : "", q);
    sqlite3_free(q);
  }
  char *qt = quoted(ti->table);
  sql = sqlite3_mprintf("%z FROM %s WHERE", sql, qt);
  sqlite3_free(qt);
  int p = 0;
  for (size_t c = 0; c < ti->ncols; c++) {
    if (!ti->key[c]) continue;
    char *q = quoted(ti->name[c]);
    sql = sqlite3_mprintf("%z%s %s IS ?%d", sql, p ? " AND" : "", q, p + 1);
    sqlite3_free(q);
    p++;
  }
  sqlite3_stmt *s = NULL;
  FUZZ_CHECK(sqlite3_prepare_v2(r, sql, -1, &s, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(r));
  sqlite3_free(sql);
  p = 0;
  for (size_t c = 0; c < ti->ncols; c++) {
    if (!ti->key[c]) continue;
    const oplog_field *f = find_field(&out->row, ti->name[c]);
    FUZZ_CHECK(f != NULL, "entry %" PRId64 " op %zu: key column %s missing from the log", id, i, ti->name[c]);
    bind_logged(s, ++p, &f->value);
  }
  int rc = sqlite3_step(s);
  FUZZ_CHECK(rc == SQLITE_ROW || rc == SQLITE_DONE, "live read: %s", sqlite3_errmsg(r));
  if (op_is_delete(out->kind)) {
    FUZZ_CHECK(rc == SQLITE_DONE, "entry %" PRId64 " op %zu: deleted row of %s still live", id, i, out->type);
  } else {
    FUZZ_CHECK(rc == SQLITE_ROW, "entry %" PRId64 " op %zu: the logged key of %s finds no live row", id, i,
               out->type);
    for (size_t c = 0; c < ti->ncols; c++) {
      const oplog_field *f = find_field(&out->row, ti->name[c]);
      if (f)
        FUZZ_CHECK(same_stored(&f->value, sqlite3_column_value(s, (int)c)),
                   "entry %" PRId64 " op %zu: %s.%s logged as %s, the live row holds %s", id, i, out->type,
                   ti->name[c], stored_name(f->value.type),
                   stored_name(sqlite3_column_type(s, (int)c) == SQLITE_FLOAT ? OPLOG_REAL
                               : sqlite3_column_type(s, (int)c) == SQLITE_NULL ? OPLOG_NULL
                                                                                : sqlite3_column_type(s, (int)c)));
      else if (in_names(out->nulls, out->nnulls, ti->name[c]))
        FUZZ_CHECK(sqlite3_column_type(s, (int)c) == SQLITE_NULL,
                   "entry %" PRId64 " op %zu: %s.%s in nulls but not NULL", id, i, out->type, ti->name[c]);
    }
  }
  sqlite3_finalize(s);
  O.live_checked++;
}

/* What SQLite stores for value v in a column declared decl. The caller
 * frees the result (sqlite3_value_free). */
static sqlite3_value *stored(const char *decl, const oplog_value *v) {
  size_t pi = probe_for(decl);
  /* TEXT given to a BLOB-affinity column is stored as a BLOB (the
   * library's documented rule; SQLite alone would keep TEXT). */
  bind_given(O.probe[pi].ins, 1, v, O.probe[pi].blob_aff);
  sqlite3_value *out = probe_stored(pi);
  FUZZ_CHECK(out != NULL, "probe %s: %s", decl, sqlite3_errmsg(O.mem));
  O.probed++;
  return out;
}

static void check_roundtrip(prog *g, int64_t id) {
  oplog_entry *e = NULL;
  int rc = oplog_entry_get(F.db, id, &e);
  FUZZ_CHECK(rc == OPLOG_OK, "committed entry %" PRId64 " unreadable: %s: %s", id,
             oplog_code_name(rc), oplog_errmsg(F.db));
  size_t nacc = 0;
  for (size_t i = 0; i < g->nops; i++) nacc += g->accepted[i] != 0;
  FUZZ_CHECK(nacc == e->nops, "entry %" PRId64 " has %zu ops, %zu accepted", id, e->nops, nacc);
  tinfo *ti = malloc(e->nops * sizeof *ti);
  FUZZ_CHECK(ti != NULL, "malloc");
  size_t k = 0;
  for (size_t i = 0; i < g->nops; i++) {
    if (!g->accepted[i]) continue;
    const oplog_op *in = &g->ops[i], *out = &e->ops[k];
    FUZZ_CHECK(!strcmp(in->type, out->type), "op %zu type %s logged as %s", i, in->type, out->type);
    FUZZ_CHECK(in->kind == out->kind, "op %zu kind %d logged as %d", i, in->kind, out->kind);
    tinfo *t = &ti[k++];
    type_info(out->type, t);
    /* The columns logged: a create all of them, an update its key and mask
     * columns, a delete its key; in column order. */
    size_t x = 0;
    for (size_t c = 0; c < t->ncols; c++) {
      int want = op_is_create(in->kind) || t->key[c] ||
                 (in->kind == OPLOG_OP_UPDATE && in_names(in->mask, in->nmask, t->name[c]));
      if (!want) continue;
      FUZZ_CHECK(x < out->row.nfields && !strcmp(out->row.fields[x].name, t->name[c]),
                 "entry %" PRId64 " op %zu (%s of %s): logged field %zu is '%s', expected column '%s'", id, i,
                 oplog_op_name(in->kind), in->type, x, x < out->row.nfields ? out->row.fields[x].name : "(none)",
                 t->name[c]);
      const oplog_value *lv = &out->row.fields[x++].value;
      FUZZ_CHECK(lv->type != OPLOG_BOOLEAN, "op %zu: %s logged as BOOLEAN (format 2 logs INTEGER 0/1)", i,
                 t->name[c]);
      const oplog_field *fi = find_field(&in->row, t->name[c]);
      if (!fi) continue; /* not given (create only): checked against the live row below */
      sqlite3_value *want_v = stored(t->decl[c], &fi->value);
      /* A NULL key of an INTEGER PRIMARY KEY gets a rowid SQLite picks: the
       * live row tells which (below). */
      int rowid_pick = t->rowid_alias && t->key[c] && sqlite3_value_type(want_v) == SQLITE_NULL;
      if (!rowid_pick)
        FUZZ_CHECK(same_stored(lv, want_v),
                   "entry %" PRId64 " op %zu (%s): field '%s' (declared '%s') given as %s, SQLite stores %s, logged %s",
                   id, i, oplog_op_name(in->kind), t->name[c], t->decl[c], stored_name(fi->value.type),
                   stored_name(sqlite3_value_type(want_v) == SQLITE_FLOAT  ? OPLOG_REAL
                               : sqlite3_value_type(want_v) == SQLITE_NULL ? OPLOG_NULL
                                                                           : sqlite3_value_type(want_v)),
                   stored_name(lv->type));
      else
        FUZZ_CHECK(lv->type == OPLOG_INTEGER, "op %zu: the rowid key %s logged as %s", i, t->name[c],
                   stored_name(lv->type));
      sqlite3_value_free(want_v);
    }
    FUZZ_CHECK(x == out->row.nfields, "entry %" PRId64 " op %zu: %zu fields logged, %zu expected", id, i,
               out->row.nfields, x);
    FUZZ_CHECK(out->nmask == (in->kind == OPLOG_OP_UPDATE ? in->nmask : 0) &&
                   out->nnulls == (in->kind == OPLOG_OP_UPDATE ? in->nnulls : 0),
               "op %zu: mask/nulls of %zu/%zu logged as %zu/%zu", i, in->nmask, in->nnulls, out->nmask,
               out->nnulls);
    for (size_t m = 0; m < out->nmask; m++)
      FUZZ_CHECK(!strcmp(out->mask[m], in->mask[m]), "op %zu: mask %zu differs", i, m);
    for (size_t m = 0; m < out->nnulls; m++)
      FUZZ_CHECK(!strcmp(out->nulls[m], in->nulls[m]), "op %zu: nulls %zu differs", i, m);
  }
  /* The live rows right after the commit. Only where the entry touched the
   * row once: when two of its operations name the same key, the live row
   * shows the last one's effect only, so that row's check is skipped (the
   * probe checks above still cover the values the caller gave). */
  for (k = 0; k < e->nops; k++) {
    int twice = 0;
    for (size_t j = 0; j < e->nops && !twice; j++)
      if (j != k && same_row(&e->ops[k], &e->ops[j], &ti[k])) twice = 1;
    if (twice)
      O.live_skipped++;
    else
      check_live(id, k, &e->ops[k], &ti[k]);
  }
  free(ti);
  FUZZ_CHECK(e->nmetadata == g->nmd, "metadata: %zu pairs written, %zu read", g->nmd,
             e->nmetadata);
  for (size_t i = 0; i < g->nmd; i++) {
    FUZZ_CHECK(!strcmp(e->metadata[i].key, g->md[i].key), "metadata key %zu differs", i);
    FUZZ_CHECK((e->metadata[i].value == NULL) == (g->md[i].value == NULL) &&
                   (!g->md[i].value || !strcmp(e->metadata[i].value, g->md[i].value)),
               "metadata value %zu differs", i);
  }
  oplog_entry_free(e);
}

static void hostile_define(src *s) {
  oplog_column cols[4];
  char nb[4][40];
  size_t nc = 1 + u8(s) % 4;
  for (size_t i = 0; i < nc; i++) {
    cols[i].name = pick_name(s, nb[i], sizeof nb[i]);
    cols[i].decl = DECLS[u8(s) % NDECLS];
  }
  char tn[40], tb[40];
  oplog_type_spec t = {pick_name(s, tn, sizeof tn), u8(s) & 1 ? NULL : pick_name(s, tb, sizeof tb),
                       AGGS[u8(s) % NAGGS], cols, nc, NULL, 0};
  int rc = oplog_define(F.db, &t);
  if (rc == OPLOG_OK) F.defines_ok++;
  FUZZ_CHECK(rc == OPLOG_OK || rc == OPLOG_INVALID_ARGUMENT || rc == OPLOG_TYPE_CONFLICT ||
                 rc == OPLOG_CONSTRAINT || rc == OPLOG_SQL,
             "define: %s: %s", oplog_code_name(rc), oplog_errmsg(F.db));
}

/* The oplog schema objects are all still there (nothing was injected). */
static void check_schema(void) {
  int64_t n = rel_query_int(F.path,
                            "SELECT count(*) FROM sqlite_schema WHERE name IN ('oplog_entries',"
                            "'oplog_metadata','oplog_ticket','oplog_keys','oplog_types',"
                            "'oplog_entries_no_update','oplog_entries_no_delete',"
                            "'oplog_metadata_no_update','oplog_metadata_no_delete')");
  FUZZ_CHECK(n == 9, "oplog schema objects damaged: %" PRId64 " of 9 left", n);
  FUZZ_CHECK(rel_query_int(F.path, "SELECT count(*) FROM sqlite_schema WHERE name = 'pwn' OR "
                                   "name = 'evil'") == 0,
             "a declaration injected SQL");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  F.runs++;
  src s = {data, size, 0};
  unsigned mode = u8(&s);
  if (mode % 8 == 7) hostile_define(&s);
  prog g;
  build(&s, &g);
  unsigned ac = u8(&s);
  /* usually the aggregate of the first operation's type */
  const char *agg = ac < 208 ? (!strcmp(g.ops[0].type, "t3") ? "agg2" : "agg") : AGGS[ac % NAGGS];
  if (mode & 0x10) {
    /* Low level: always rolled back, it leaves live tables alone. */
    int64_t ticket = 0;
    int rc = oplog_ticket(F.db, agg, &ticket);
    FUZZ_CHECK(rc == OPLOG_OK || rc == OPLOG_NOT_FOUND || rc == OPLOG_INVALID_ARGUMENT,
               "ticket: %s", oplog_code_name(rc));
    if (mode & 0x20) ticket += (int64_t)(u8(&s) % 3) - 1; /* stale or future */
    rc = oplog_begin(F.db);
    FUZZ_CHECK(rc == OPLOG_OK, "begin: %s: %s", oplog_code_name(rc), oplog_errmsg(F.db));
    oplog_entry_write w = {agg, ticket, g.md, g.nmd, g.ops, g.nops};
    int64_t id = 0;
    rc = oplog_write_entry(F.db, &w, &id);
    FUZZ_CHECK(clean_write_code(rc) || rc == OPLOG_TICKET_CONFLICT, "write_entry: %s: %s",
               oplog_code_name(rc), oplog_errmsg(F.db));
    if (rc == OPLOG_OK) F.ll_written++;
    rc = oplog_rollback(F.db);
    FUZZ_CHECK(rc == OPLOG_OK, "rollback: %s: %s", oplog_code_name(rc), oplog_errmsg(F.db));
  } else {
    int rc = oplog_tx_begin(F.db, agg);
    FUZZ_CHECK(rc == OPLOG_OK || rc == OPLOG_NOT_FOUND || rc == OPLOG_INVALID_ARGUMENT,
               "tx_begin: %s: %s", oplog_code_name(rc), oplog_errmsg(F.db));
    if (rc && getenv("REL_VERBOSE")) fprintf(stderr, "begin: %s\n", oplog_errmsg(F.db));
    if (rc == OPLOG_OK) {
      int failed = 0;
      for (size_t i = 0; i < g.nops && !failed; i++) {
        rc = oplog_tx_apply(F.db, &g.ops[i]);
        FUZZ_CHECK(clean_write_code(rc), "tx_apply: %s: %s", oplog_code_name(rc),
                   oplog_errmsg(F.db));
        g.accepted[i] = rc == OPLOG_OK;
        if (rc == OPLOG_OK) F.accepted_ops++;
        else F.rejected_ops++;
        if (rc && getenv("REL_VERBOSE")) fprintf(stderr, "rejected: %s\n", oplog_errmsg(F.db));
        if (rc) {
          /* The header's promise: a failed call has rolled back. */
          FUZZ_CHECK(!oplog_tx_active(F.db), "transaction still open after a failed apply");
          failed = 1;
        }
      }
      if (!failed && (mode & 0x40)) {
        FUZZ_CHECK(oplog_tx_rollback(F.db) == OPLOG_OK, "tx_rollback");
      } else if (!failed) {
        int64_t id = -1;
        rc = oplog_tx_commit(F.db, g.md, g.nmd, &id);
        FUZZ_CHECK(rc == OPLOG_OK || rc == OPLOG_INVALID_ARGUMENT, "tx_commit: %s: %s",
                   oplog_code_name(rc), oplog_errmsg(F.db));
        FUZZ_CHECK(!oplog_tx_active(F.db), "transaction still open after commit");
        if (rc == OPLOG_OK && id > 0) {
          F.entries++;
          F.commits++;
          check_roundtrip(&g, id);
        }
      }
    }
  }
  free(g.hugemeta);
  if (F.runs % 64 == 0) {
    check_schema();
    FUZZ_CHECK(rel_verify(F.db, 1, "fuzz-rows"), "log and live tables disagree");
    if (F.entries > 300) reset_db();
  }
  return 0;
}

static void put(uint8_t *b, size_t *n, unsigned v) { b[(*n)++] = (uint8_t)v; }

void rel_fuzz_seeds(void (*add)(const uint8_t *p, size_t n)) {
  uint8_t b[256];
  size_t n;
  /* A valid create of t1 (id, name) committed with one metadata pair. */
  n = 0;
  put(b, &n, 0x00); /* mode: high level, commit */
  put(b, &n, 0);    /* nops = 1 */
  put(b, &n, 0);    /* type t1 */
  put(b, &n, 1);    /* create */
  put(b, &n, 2);    /* 2 fields */
  put(b, &n, 0);    /* "id" */
  put(b, &n, 1);    /* integer */
  for (int i = 0; i < 7; i++) put(b, &n, 0);
  put(b, &n, 42);
  put(b, &n, 1);    /* "name" */
  put(b, &n, 5);    /* fixed text */
  put(b, &n, 0);    /* no mask */
  put(b, &n, 0);    /* no nulls */
  put(b, &n, 1);    /* 1 metadata pair */
  put(b, &n, 6);    /* key "k" */
  put(b, &n, 1);
  put(b, &n, 7);    /* value "v" */
  put(b, &n, 0);    /* aggregate "agg" */
  add(b, n);
  /* The same through the low level path, with a stale ticket. */
  b[0] = 0x30;
  add(b, n);
  /* A hostile define first. */
  b[0] = 0x07;
  add(b, n);
  /* Non-UTF-8 text in a create. */
  n = 0;
  put(b, &n, 0x00);
  put(b, &n, 0);
  put(b, &n, 0);
  put(b, &n, 1);
  put(b, &n, 1);
  put(b, &n, 1); /* "name" */
  put(b, &n, 4); /* text from input */
  put(b, &n, 3);
  put(b, &n, 0xc3);
  put(b, &n, 0x28);
  put(b, &n, 0xff);
  add(b, n);
}

void rel_fuzz_cleanup(void) {
  if (!F.db) return;
  printf("rows: %" PRId64 " entries committed, %" PRId64 " ops accepted, %" PRId64
         " rejected, %" PRId64 " low-level entries written, %" PRId64 " hostile defines accepted\n",
         F.commits, F.accepted_ops, F.rejected_ops, F.ll_written, F.defines_ok);
  printf("rows: oracle: %" PRId64 " given values probed in SQLite (%zu declared types), %" PRId64
         " live rows compared with the log, %" PRId64 " skipped (row touched twice in its entry)\n",
         O.probed, O.nprobe, O.live_checked, O.live_skipped);
  oracle_close_raw();
  for (size_t i = 0; i < O.nprobe; i++) {
    sqlite3_finalize(O.probe[i].ins);
    sqlite3_finalize(O.probe[i].sel);
    free(O.probe[i].decl);
  }
  O.nprobe = 0;
  sqlite3_close(O.mem);
  O.mem = NULL;
  oplog_close(F.db);
  rel_rmdir_all(F.dir);
  free(F.dir);
  free(F.path);
  F.db = NULL;
}
