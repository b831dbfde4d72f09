/*
 * bench.c — oplog against raw SQLite (issue 7; pages and peers: issues 11
 * and 13). See tests/bench/README.md.
 *
 * One process, fixed seeds and sizes. Every workload runs the oplog and its
 * raw-SQLite baselines (and, for W1, W1F and W2, the TRIGGER and SESSION
 * peers) in the same run. Write workloads interleave their sides chunk by
 * chunk (so that the load of a shared machine hits all sides alike); W3-W5
 * alternate whole runs. Ratios are of the rates over all rounds. W3-W5 and
 * the open latency run in fresh exec'd children so that each child's VmHWM
 * is the peak of that work alone. W1 also counts the WAL pages each side
 * writes per commit.
 *
 *   oplog_bench [--quick] [--dir DIR] [--rounds N] [--only sql,w1,w1f,w2,w2e,l1,l2,w3,w4,w5,open,imp,nff,ship]
 *               [--side oplog|base] [--keep] [--fake KEY=VALUE]...
 *
 * The last line printed is machine-readable (see README.md). The exit status
 * is 1 when a figure that was measured is impossible (nan, <= 0, pages < 1).
 */
/* The SESSION peer uses the session extension (Debian's libsqlite3 is built
 * with it); its declarations need these before <sqlite3.h>. */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1

#include "lua_oplog.h"
#include "oplog.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <sodium.h>
#include <sqlite3.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Lua sources of lua/ compiled in by CMakeLists.txt (gen/embedded_lua.c), so
 * the bench runs the same Lua code as the `oplog` command. */
extern const struct {
  const char *name;
  const char *text;
  size_t len;
} oplog_lua_sources[];

#ifndef OPLOG_BENCH_SOURCE_DIR
#define OPLOG_BENCH_SOURCE_DIR "."
#endif

/* ------------------------------------------------------------------ utils */

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bench: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Peak resident set of this process so far, in kB (VmHWM). */
static long hwm_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

#define OK(db, call)                                                                       \
  do {                                                                                     \
    int rc_ = (call);                                                                      \
    if (rc_ != OPLOG_OK)                                                                   \
      die("%s:%d: %s: %s: %s", __FILE__, __LINE__, #call, oplog_code_name(rc_),            \
          (db) ? oplog_errmsg(db) : "");                                                   \
  } while (0)

static void sq_check(sqlite3 *s, int rc, const char *what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    die("sqlite: %s: %s", what, sqlite3_errmsg(s));
}

static void sq_exec(sqlite3 *s, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(s, sql, NULL, NULL, &err) != SQLITE_OK) die("sqlite: %s: %s", sql, err);
}

static sqlite3_stmt *sq_prep(sqlite3 *s, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v3(s, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
    die("sqlite: prepare %s: %s", sql, sqlite3_errmsg(s));
  return st;
}

/* Runs a statement that returns no row (or ignores them) and resets it. */
static void sq_run(sqlite3 *s, sqlite3_stmt *st) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) die("sqlite: step %s: %s", sqlite3_sql(st), sqlite3_errmsg(s));
  sqlite3_reset(st);
}

/* Baseline connections get the pragmas the oplog promises (WAL, the same
 * synchronous level) and nothing else: that is what a plain user has. */
static sqlite3 *sq_open(const char *path, int sync) {
  sqlite3 *s = NULL;
  if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
    die("sqlite: open %s: %s", path, s ? sqlite3_errmsg(s) : "nomem");
  sqlite3_busy_timeout(s, 5000);
  sq_exec(s, "PRAGMA journal_mode=WAL");
  sq_exec(s, sync == OPLOG_SYNC_FULL ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  return s;
}

static int64_t sq_int(sqlite3 *s, const char *sql) {
  sqlite3_stmt *st = sq_prep(s, sql);
  int64_t v = 0;
  int rc = sqlite3_step(st);
  sq_check(s, rc, sql);
  if (rc == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static double sq_double(sqlite3 *s, const char *sql) {
  sqlite3_stmt *st = sq_prep(s, sql);
  double v = 0;
  int rc = sqlite3_step(st);
  sq_check(s, rc, sql);
  if (rc == SQLITE_ROW) v = sqlite3_column_double(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void rm_db(const char *path) {
  static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
  char p[PATH_MAX + 16];
  for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
    snprintf(p, sizeof p, "%.*s%s", PATH_MAX - 1, path, sfx[i]);
    unlink(p);
  }
}

/* ------------------------------------------------------------------ config */

static struct {
  int quick, rounds, keep;
  long w1_n;   /* W1 / L1 entries (one per transaction), sync normal */
  long w1f_n;  /* W1F entries, sync full */
  long w2_tx;  /* W2 / L2 transactions of W2_BATCH rows */
  long big_n;  /* entries of the W3-W5 data set */
  char dir[PATH_MAX];
  char keyfile[PATH_MAX + 16];
  char self[PATH_MAX];
  const char *only; /* comma list of workloads, NULL: all (w2e: W2-1E) */
  const char *side; /* "oplog", "base" or NULL: both */
  int drift;        /* --drift-same-sql: SAME-SQL reads back in other words (tests the SQL check) */
} C;

#define W2_BATCH 100
#define BUILD_BATCH 1000
#define NOTE_LEN 70

static int want(const char *w) {
  if (!C.only) return 1;
  size_t n = strlen(w);
  for (const char *p = C.only; *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && strncmp(p, w, n) == 0) return 1;
    if (!e) break;
    p = e + 1;
  }
  return 0;
}
static int want_side(const char *s) { return !C.side || strcmp(C.side, s) == 0; }

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", C.dir, name); }

/* ------------------------------------------------------------------ data */

/* Deterministic random bytes (fixed seed) used as root key, baseline data
 * key, and as the "random blob" the SAME-SQL baseline writes. */
#define POOL_BYTES (1u << 20)
static unsigned char *g_pool;
static unsigned char g_root_key[32], g_base_key[32];

/* The workload row: ~100 bytes of one type, (id, name, value, note). */
static const char NOTE_PAT[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
static char g_note2[64 + NOTE_LEN + 1];

typedef struct brow {
  int64_t id;
  char name[24];
  int name_len;
  double value;
  const char *note;
} brow;

static void row_make(int64_t i, brow *r) {
  r->id = i;
  /* "name-%08lld" by hand: snprintf would be a visible share of the W4
   * baseline, which builds its rows on the clock */
  memcpy(r->name, "name-", 5);
  int64_t v = i;
  int nd = 8;
  for (int64_t t = 100000000; v >= t && nd < 18; t *= 10) nd++;
  for (int k = nd - 1; k >= 0; k--, v /= 10) r->name[5 + k] = (char)('0' + v % 10);
  r->name[5 + nd] = 0;
  r->name_len = 5 + nd;
  r->value = (double)(i % 100000) * 0.25;
  r->note = g_note2 + (i * 7) % 64;
}

typedef struct bop {
  oplog_field f[4];
  oplog_op op;
  char name[24];
} bop;

static void op_make(const brow *r, bop *o) {
  memset(o, 0, sizeof *o);
  o->f[0].name = "id";
  o->f[0].value.type = OPLOG_INTEGER;
  o->f[0].value.u.i = r->id;
  o->f[1].name = "name";
  o->f[1].value.type = OPLOG_TEXT;
  memcpy(o->name, r->name, sizeof o->name);
  o->f[1].value.u.b.p = o->name;
  o->f[1].value.u.b.n = (size_t)r->name_len;
  o->f[2].name = "value";
  o->f[2].value.type = OPLOG_REAL;
  o->f[2].value.u.r = r->value;
  o->f[3].name = "note";
  o->f[3].value.type = OPLOG_TEXT;
  o->f[3].value.u.b.p = r->note;
  o->f[3].value.u.b.n = NOTE_LEN;
  o->op.type = "item";
  o->op.kind = OPLOG_OP_CREATE;
  o->op.row.fields = o->f;
  o->op.row.nfields = 4;
}

static const oplog_meta META[2] = {{"actor", "bench-user"}, {"reason", "load"}};

#define ITEM_COLUMNS "id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL NOT NULL, note TEXT NOT NULL"

static void data_init(void) {
  static const unsigned char seed[randombytes_SEEDBYTES] = "oplog-bench-fixed-seed-000000001";
  g_pool = malloc(POOL_BYTES);
  if (!g_pool) die("nomem");
  randombytes_buf_deterministic(g_pool, POOL_BYTES, seed);
  memcpy(g_root_key, g_pool, 32);
  memcpy(g_base_key, g_pool + 32, 32);
  /* the pattern then NOTE_LEN more of it: every 70-byte window is a note */
  memcpy(g_note2, NOTE_PAT, 64);
  for (int i = 0; i < NOTE_LEN; i++) g_note2[64 + i] = NOTE_PAT[i % 64];
  g_note2[64 + NOTE_LEN] = 0;
}

/* The key file every oplog in the bench is opened with (64 hex + newline). */
static void write_keyfile(void) {
  char hex[65];
  path_in(C.keyfile, sizeof C.keyfile, "bench.key");
  sodium_bin2hex(hex, sizeof hex, g_root_key, 32);
  unlink(C.keyfile);
  int fd = open(C.keyfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) die("%s: %s", C.keyfile, strerror(errno));
  hex[64] = '\n';
  if (write(fd, hex, 65) != 65) die("%s: write failed", C.keyfile);
  close(fd);
}

/* ------------------------------------------------------------------ oplog helpers */

static oplog_db *ol_open(const char *path, int sync, int with_key) {
  oplog_open_opts o;
  memset(&o, 0, sizeof o);
  if (with_key) o.key.key_file = C.keyfile;
  o.sync = sync;
  oplog_db *db = NULL;
  int rc = oplog_open(path, &o, &db);
  if (rc != OPLOG_OK)
    die("oplog_open %s: %s: %s", path, oplog_code_name(rc), db ? oplog_errmsg(db) : "");
  return db;
}

static void ol_define(oplog_db *db) {
  static const oplog_column cols[4] = {{"id", "INTEGER PRIMARY KEY"},
                                       {"name", "TEXT NOT NULL"},
                                       {"value", "REAL NOT NULL"},
                                       {"note", "TEXT NOT NULL"}};
  oplog_type_spec s;
  memset(&s, 0, sizeof s);
  s.name = "item";
  s.aggregate = "items";
  s.columns = cols;
  s.ncolumns = 4;
  OK(db, oplog_define(db, &s));
}

/* Each side of a measurement stays a function of its own so that profiling
 * can select it (valgrind --tool=callgrind --toggle-collect=run_bare). */
#define SIDE __attribute__((noinline))

/* A write side (oplog C, BARE, SAME-SQL, the TRIGGER and SESSION peers, or
 * oplog Lua) stays open for a whole round while the sides take turns, chunk
 * by chunk, so that the machine's load drifts hit every side alike. */
enum { W_OPLOG, W_BARE, W_SAME, W_TRIG, W_SESS, W_LUA, W__N };

static const char *const SIDE_NAME[W__N] = {"oplog C", "BARE", "SAME-SQL", "TRIGGER", "SESSION",
                                            "oplog Lua"};

/* Format-2 metadata blob of META: u32(n) || n x (len32(key) || u8(has_value)
 * || len32(value)), little-endian (what the core stores per entry). */
#define META_BLOB_LEN 47

/* SAME-SQL catches the derived tables up when the tail of entries not yet
 * indexed reaches this many (the core's INDEX_FLUSH_EVERY). */
#define FLUSH_AT 256

/* The core's default ceiling on an entry's size (oplog_open_opts
 * max_entry_bytes): its catch-up reads no metadata blob longer. */
#ifdef OPLOG_MAX_ENTRY_BYTES
#define MAX_ENTRY_BYTES ((int64_t)OPLOG_MAX_ENTRY_BYTES)
#else
#define MAX_ENTRY_BYTES ((int64_t)16 << 20)
#endif

typedef struct wside {
  int kind, sync, per_tx, multi;
  size_t blob_len;
  int64_t id; /* next row id */
  brow *rows; /* one transaction's rows, built off the clock */
  /* oplog C */
  oplog_db *db;
  bop *ops;
  /* raw SQLite */
  sqlite3 *s;
  sqlite3_stmt *st[24];
  /* SAME-SQL: what the core keeps cached between transactions (loaded
   * in the first transaction, as the core loads it) */
  int64_t key_id;
  size_t off;
  int loaded;
  int64_t wm;     /* oplog_config 'indexed_upto' */
  int64_t seq;    /* this origin's last seq */
  int64_t clock;  /* Lamport clock of the last entry */
  int64_t ticket; /* the ticket's version */
  unsigned char prev[32];
  unsigned char meta[META_BLOB_LEN];
  /* Lua */
  lua_State *L;
  int run_ref;
} wside;

enum {
  S_BEGIN, S_COMMIT, S_LIVE, S_READ, S_DATAVER, S_STATE, S_HEAD_TAIL, S_HEAD_INDEXED, S_TICKET_GET,
  S_ENTRY, S_TAIL, S_INDEX, S_META, S_TICKET, S_CONFIG, S_CHANGESET, S_TOUCH_WM, S_TOUCH_TAIL, S_TOUCH_INS,
  S_TOUCH_CFG, S__N
};

/* ------------------------------------------------------------------ W1/W1F/W2: oplog (C) */

/* ntx transactions of per_tx create operations each, through the high-level
 * API (oplog_tx_*). multi: every operation is its own entry (oplog_tx_entry
 * after each, one SQLite commit per transaction); otherwise the
 * transaction's operations form one entry. Returns seconds. */
SIDE static double run_oplog_write(wside *w, long ntx) {
  oplog_db *db = w->db;
  int64_t eid;
  brow r;
  double secs = 0;
  for (long t = 0; t < ntx; t++) {
    /* rows are built off the clock on every side: only the writes count */
    for (int k = 0; k < w->per_tx; k++) {
      row_make(w->id++, &r);
      op_make(&r, &w->ops[k]);
    }
    double t0 = now();
    OK(db, oplog_tx_begin(db, "items"));
    if (w->multi) {
      for (int k = 0; k < w->per_tx; k++) {
        OK(db, oplog_tx_apply(db, &w->ops[k].op));
        OK(db, oplog_tx_entry(db, META, 2, &eid));
      }
      OK(db, oplog_tx_commit(db, NULL, 0, &eid));
    } else {
      for (int k = 0; k < w->per_tx; k++) OK(db, oplog_tx_apply(db, &w->ops[k].op));
      OK(db, oplog_tx_commit(db, META, 2, &eid));
    }
    secs += now() - t0;
  }
  return secs;
}

/* ------------------------------------------------------------------ W1/W1F/W2: BARE and TRIGGER */

static inline void bind_row(sqlite3_stmt *ins, const brow *r) {
  sqlite3_bind_int64(ins, 1, r->id);
  sqlite3_bind_text(ins, 2, r->name, r->name_len, SQLITE_STATIC);
  sqlite3_bind_double(ins, 3, r->value);
  sqlite3_bind_text(ins, 4, r->note, NOTE_LEN, SQLITE_STATIC);
}

/* The live row alone: a prepared INSERT, autocommit for one row per
 * transaction (the cheapest a user can do), BEGIN IMMEDIATE..COMMIT around
 * per_tx rows otherwise. The TRIGGER peer runs the same on a file whose
 * table has an AFTER INSERT audit trigger. */
static inline __attribute__((always_inline)) double plain_inserts(wside *w, long ntx) {
  sqlite3 *s = w->s;
  sqlite3_stmt *ins = w->st[S_LIVE];
  double secs = 0;
  for (long t = 0; t < ntx; t++) {
    for (int k = 0; k < w->per_tx; k++) row_make(w->id++, &w->rows[k]);
    double t0 = now();
    if (w->per_tx > 1) sq_run(s, w->st[S_BEGIN]);
    for (int k = 0; k < w->per_tx; k++) {
      bind_row(ins, &w->rows[k]);
      sq_run(s, ins);
    }
    if (w->per_tx > 1) sq_run(s, w->st[S_COMMIT]);
    secs += now() - t0;
  }
  return secs;
}

/* Two sides, two functions: the kind checks keep GCC from folding the
 * identical bodies into one (callgrind could not tell them apart). */
SIDE static double run_bare(wside *w, long ntx) {
  if (w->kind != W_BARE) die("run_bare: not BARE");
  return plain_inserts(w, ntx);
}
SIDE static double run_trigger(wside *w, long ntx) {
  if (w->kind != W_TRIG) die("run_trigger: not TRIGGER");
  return plain_inserts(w, ntx);
}

/* The audit trigger of the TRIGGER peer: a JSON copy of each new row, in the
 * same transaction and file (what an application writes by hand). */
#define TRIGGER_SQL                                                                                \
  "CREATE TABLE audit (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, tbl TEXT NOT NULL, "          \
  "row TEXT NOT NULL);"                                                                            \
  "CREATE TRIGGER item_audit AFTER INSERT ON item BEGIN "                                          \
  "INSERT INTO audit(at, tbl, row) VALUES "                                                        \
  "(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), 'item', "                          \
  "json_object('id', NEW.id, 'name', NEW.name, 'value', NEW.value, 'note', NEW.note)); END"

/* ------------------------------------------------------------------ W1/W1F/W2: SESSION */

/* The session extension: a session attached to the live table records each
 * transaction's rows; its changeset is stored as a BLOB row of `changesets`
 * before COMMIT, in the same transaction. A session cannot be emptied, so
 * each transaction gets a new one (create + attach: a few allocations). */
SIDE static double run_session(wside *w, long ntx) {
  sqlite3 *s = w->s;
  sqlite3_stmt *ins = w->st[S_LIVE], *cs = w->st[S_CHANGESET];
  double secs = 0;
  for (long t = 0; t < ntx; t++) {
    for (int k = 0; k < w->per_tx; k++) row_make(w->id++, &w->rows[k]);
    double t0 = now();
    sqlite3_session *ss = NULL;
    if (sqlite3session_create(s, "main", &ss) != SQLITE_OK) die("session: create: %s", sqlite3_errmsg(s));
    if (sqlite3session_attach(ss, "item") != SQLITE_OK) die("session: attach: %s", sqlite3_errmsg(s));
    sq_run(s, w->st[S_BEGIN]);
    for (int k = 0; k < w->per_tx; k++) {
      bind_row(ins, &w->rows[k]);
      sq_run(s, ins);
    }
    int n = 0;
    void *p = NULL;
    if (sqlite3session_changeset(ss, &n, &p) != SQLITE_OK || n <= 0)
      die("session: changeset: %s", sqlite3_errmsg(s));
    sqlite3_bind_blob(cs, 1, p, n, SQLITE_STATIC);
    sq_run(s, cs);
    sqlite3_clear_bindings(cs);
    sqlite3_free(p);
    sqlite3session_delete(ss);
    sq_run(s, w->st[S_COMMIT]);
    secs += now() - t0;
  }
  return secs;
}

/* ------------------------------------------------------------------ W1/W1F/W2: SAME-SQL */

/* Catch-up of the derived tables over the tail (the entries above the
 * watermark), inside the writing transaction, as the core's index_flush
 * does when the tail reaches FLUSH_AT: the tail read back, per entry its
 * oplog_index row and one oplog_metadata row per pair, then the ticket
 * (once per aggregate: all entries here are of `items`) and the watermark.
 * The metadata pairs are the bench's own (no decoding of the blob read). */
static inline void same_flush(wside *w) {
  sqlite3 *s = w->s;
  sqlite3_stmt *tail = w->st[S_TAIL], *idx = w->st[S_INDEX], *meta = w->st[S_META],
               *tick = w->st[S_TICKET], *cfg = w->st[S_CONFIG];
  int64_t last = w->wm, clock = 0, n = 0;
  int rc;
  sqlite3_bind_int64(tail, 1, w->wm);
  sqlite3_bind_int64(tail, 2, MAX_ENTRY_BYTES);
  while ((rc = sqlite3_step(tail)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(tail, 0);
    sqlite3_bind_int64(idx, 1, id);
    sqlite3_bind_int64(idx, 2, sqlite3_column_int64(tail, 1));
    sqlite3_bind_int64(idx, 3, sqlite3_column_int64(tail, 2));
    sqlite3_bind_text(idx, 4, (const char *)sqlite3_column_text(tail, 4), sqlite3_column_bytes(tail, 4),
                      SQLITE_STATIC);
    sqlite3_bind_int64(idx, 5, sqlite3_column_int64(tail, 3));
    sq_run(s, idx);
    if (sqlite3_column_int64(tail, 3) > clock) clock = sqlite3_column_int64(tail, 3);
    volatile const void *md = sqlite3_column_blob(tail, 5);
    (void)md;
    for (int m = 0; m < 2; m++) {
      sqlite3_bind_int64(meta, 1, id);
      sqlite3_bind_int64(meta, 2, m + 1);
      sqlite3_bind_text(meta, 3, META[m].key, -1, SQLITE_STATIC);
      sqlite3_bind_text(meta, 4, META[m].value, -1, SQLITE_STATIC);
      sq_run(s, meta);
    }
    last = id;
    n++;
  }
  if (rc != SQLITE_DONE) die("same-sql: tail: %s", sqlite3_errmsg(s));
  sqlite3_reset(tail);
  sqlite3_bind_text(tick, 1, "items", 5, SQLITE_STATIC);
  sqlite3_bind_int64(tick, 2, n);
  sq_run(s, tick);
  if (last > w->wm) {
    sqlite3_bind_int64(cfg, 1, last);
    sqlite3_bind_int64(cfg, 2, clock > w->clock ? clock : w->clock);
    sq_run(s, cfg);
  }
  /* the touch index follows (not lagging here): its watermark, the tail
   * read again with the entries' data (the core decrypts and decodes it),
   * one row per operation's key, the watermark */
  sqlite3_stmt *twm = w->st[S_TOUCH_WM], *ttail = w->st[S_TOUCH_TAIL], *tins = w->st[S_TOUCH_INS],
               *tcfg = w->st[S_TOUCH_CFG];
  sqlite3_bind_text(twm, 1, "touched_upto", -1, SQLITE_STATIC);
  if (sqlite3_step(twm) != SQLITE_ROW) die("same-sql: no touched_upto");
  sqlite3_reset(twm);
  sqlite3_bind_int64(ttail, 1, w->wm);
  while ((rc = sqlite3_step(ttail)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(ttail, 0);
    unsigned char key[9] = {1};
    uint64_t u = (uint64_t)id ^ (1ULL << 63);
    for (int k = 0; k < 8; k++) key[1 + k] = (unsigned char)(u >> (56 - 8 * k));
    sqlite3_bind_text(tins, 1, "item", 4, SQLITE_STATIC);
    sqlite3_bind_blob(tins, 2, key, sizeof key, SQLITE_STATIC);
    sqlite3_bind_int64(tins, 3, id);
    sq_run(s, tins);
  }
  if (rc != SQLITE_DONE) die("same-sql: touch tail: %s", sqlite3_errmsg(s));
  sqlite3_reset(ttail);
  if (last > w->wm) {
    sqlite3_bind_int64(tcfg, 1, last);
    sq_run(s, tcfg);
  }
  w->wm = last;
}

/* The core's cache of the log's state, loaded in its first write
 * transaction (and whenever another connection wrote): the watermark and
 * clock, this origin's head (from the tail, else from oplog_index), the
 * ticket. */
static void same_load(wside *w) {
  sqlite3 *s = w->s;
  sqlite3_stmt *st = w->st[S_STATE];
  if (sqlite3_step(st) != SQLITE_ROW) die("same-sql: state: %s", sqlite3_errmsg(s));
  w->wm = sqlite3_column_int64(st, 0);
  w->clock = sqlite3_column_int64(st, 1);
  if (sqlite3_column_int64(st, 2) > w->clock) w->clock = sqlite3_column_int64(st, 2);
  sqlite3_reset(st);
  w->seq = 0;
  memset(w->prev, 0, 32);
  for (int k = S_HEAD_TAIL; k <= S_HEAD_INDEXED; k++) {
    sqlite3_stmt *h = w->st[k];
    sqlite3_bind_int64(h, 1, w->wm);
    int rc = sqlite3_step(h);
    if (rc == SQLITE_ROW) {
      w->seq = sqlite3_column_int64(h, 1);
      memcpy(w->prev, sqlite3_column_blob(h, 2), 32);
    } else if (rc != SQLITE_DONE) {
      die("same-sql: head: %s", sqlite3_errmsg(s));
    }
    sqlite3_reset(h);
    if (rc == SQLITE_ROW) break;
  }
  sqlite3_stmt *tk = w->st[S_TICKET_GET];
  sqlite3_bind_text(tk, 1, "items", 5, SQLITE_STATIC);
  if (sqlite3_step(tk) != SQLITE_ROW) die("same-sql: no ticket");
  w->ticket = sqlite3_column_int64(tk, 0);
  sqlite3_reset(tk);
  w->loaded = 1;
}

/* Exactly the SQL the format-2 oplog issues for the same transactions
 * (compared with the core's statement trace at every run: sql_check), with
 * cached statements and no encoding, crypto or hashing: the data blob (same
 * length as the real encrypted data) and the hash are taken from a random
 * pool, the metadata blob is the real one. Per transaction: BEGIN
 * IMMEDIATE, PRAGMA data_version (the core's cache check; the first
 * transaction loads the cache); per entry, per row its live INSERT and the
 * SELECT that reads the stored row back by its key (the core logs the row
 * as stored; exactly one row must match, so it steps to the end), then one
 * oplog_entries INSERT, followed by the catch-up when the tail reaches
 * FLUSH_AT; COMMIT. */
SIDE static double run_same_sql(wside *w, long ntx) {
  sqlite3 *s = w->s;
  sqlite3_stmt *dv = w->st[S_DATAVER], *live = w->st[S_LIVE], *rd = w->st[S_READ], *ent = w->st[S_ENTRY];
  size_t blob_len = w->blob_len;
  double secs = 0;
  for (long t = 0; t < ntx; t++) {
    for (int k = 0; k < w->per_tx; k++) row_make(w->id++, &w->rows[k]);
    double t0 = now();
    sq_run(s, w->st[S_BEGIN]);
    if (sqlite3_step(dv) != SQLITE_ROW) die("same-sql: data_version: %s", sqlite3_errmsg(s));
    volatile int64_t dver = sqlite3_column_int64(dv, 0);
    (void)dver;
    sqlite3_reset(dv);
    if (!w->loaded) same_load(w);
    /* multi: one entry per row; else all the rows in one entry */
    int nent = w->multi ? w->per_tx : 1, per_ent = w->multi ? 1 : w->per_tx;
    for (int en = 0; en < nent; en++) {
      for (int k = en * per_ent; k < (en + 1) * per_ent; k++) {
        bind_row(live, &w->rows[k]);
        if (sqlite3_step(live) != SQLITE_DONE) die("same-sql: live insert: %s", sqlite3_errmsg(s));
        volatile int changes = sqlite3_changes(s);
        (void)changes;
        sqlite3_reset(live);
        /* the stored row read back by its key, as the core reads it to log
         * it; a second step proves that no other row matches */
        sqlite3_bind_int64(rd, 1, w->rows[k].id);
        int rc, rows = 0;
        while ((rc = sqlite3_step(rd)) == SQLITE_ROW) {
          volatile int64_t id = sqlite3_column_int64(rd, 0);
          volatile const void *nm = sqlite3_column_text(rd, 1);
          volatile double v = sqlite3_column_double(rd, 2);
          volatile const void *nt = sqlite3_column_text(rd, 3);
          (void)id, (void)nm, (void)v, (void)nt;
          rows++;
        }
        if (rc != SQLITE_DONE || rows != 1) die("same-sql: read back: %d rows, %s", rows, sqlite3_errmsg(s));
        sqlite3_reset(rd);
      }
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      w->off = (w->off + 4099) % (POOL_BYTES - blob_len - 32);
      sqlite3_bind_int64(ent, 2, 1);
      sqlite3_bind_int64(ent, 3, w->seq + 1);
      sqlite3_bind_int64(ent, 4, w->clock + 1);
      sqlite3_bind_int64(ent, 5, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
      sqlite3_bind_text(ent, 6, "items", 5, SQLITE_STATIC);
      sqlite3_bind_int64(ent, 7, w->key_id);
      sqlite3_bind_blob(ent, 8, w->meta, META_BLOB_LEN, SQLITE_STATIC);
      sqlite3_bind_blob(ent, 9, g_pool + w->off, (int)blob_len, SQLITE_STATIC);
      sqlite3_bind_blob(ent, 10, w->prev, 32, SQLITE_STATIC);
      sqlite3_bind_blob(ent, 11, g_pool + w->off + blob_len, 32, SQLITE_STATIC);
      sqlite3_bind_int64(ent, 12, 2);
      sq_run(s, ent);
      int64_t eid = sqlite3_last_insert_rowid(s);
      if (eid - w->wm >= FLUSH_AT) same_flush(w);
      w->seq++;
      w->clock++;
      w->ticket++;
      memcpy(w->prev, g_pool + w->off + blob_len, 32);
    }
    sq_run(s, w->st[S_COMMIT]);
    secs += now() - t0;
  }
  return secs;
}

/* Average length of oplog_entries.data in an oplog file (read raw). */
static size_t data_len_of(const char *path) {
  sqlite3 *s = sq_open(path, OPLOG_SYNC_NORMAL);
  double avg = sq_double(s, "SELECT avg(length(data)) FROM oplog_entries");
  sqlite3_close(s);
  if (avg <= 0) die("%s: no entries to measure", path);
  return (size_t)llround(avg);
}

static size_t put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
  return 4;
}

/* META as the format-2 metadata blob (META_BLOB_LEN bytes). */
static void meta_blob(unsigned char out[META_BLOB_LEN]) {
  size_t n = put_u32(out, 2);
  for (int m = 0; m < 2; m++) {
    size_t kl = strlen(META[m].key), vl = strlen(META[m].value);
    n += put_u32(out + n, (uint32_t)kl);
    memcpy(out + n, META[m].key, kl);
    n += kl;
    out[n++] = 1;
    n += put_u32(out + n, (uint32_t)vl);
    memcpy(out + n, META[m].value, vl);
    n += vl;
  }
  if (n != META_BLOB_LEN) die("metadata blob is %zu bytes", n);
}

static int has_column(sqlite3 *s, const char *table, const char *col) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pragma_table_info('%s') WHERE name = '%s'", table, col);
  return sq_int(s, sql) > 0;
}

/* Whether the core writes format 2 (its oplog_entries has origin and seq). */
static int core_is_format2(const char *path) {
  sqlite3 *s = sq_open(path, OPLOG_SYNC_NORMAL);
  int f2 = has_column(s, "oplog_entries", "origin");
  sqlite3_close(s);
  return f2;
}

/* SAME-SQL writes the format-2 tables of schema/002; a file without them
 * means the core changed under the bench. */
static void same_schema(sqlite3 *s) {
  if (!has_column(s, "oplog_entries", "metadata") || !has_column(s, "oplog_index", "entry_id") ||
      !has_column(s, "oplog_metadata", "position"))
    die("same-sql: the core's file has not the format-2 tables SAME-SQL writes "
        "(oplog_entries.metadata, oplog_index, oplog_metadata.position): update the bench");
}

/* ------------------------------------------------------------------ Lua (L1/L2) */

static int l_clock(lua_State *L) {
  lua_pushnumber(L, now());
  return 1;
}

static int l_embedded_loader(lua_State *L) {
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(1));
  const char *name = oplog_lua_sources[i].name;
  if (luaL_loadbuffer(L, oplog_lua_sources[i].text, oplog_lua_sources[i].len, name) != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
  return 1;
}

/* The bench embeds Lua itself, like the `oplog` command: oplog.core is the
 * C binding compiled in, the Lua modules come from gen/embedded_lua.c (with
 * lua/ in the source tree as a fallback on package.path). */
static lua_State *lua_new(void) {
  lua_State *L = luaL_newstate();
  if (!L) die("lua: nomem");
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_oplog_core);
  lua_setfield(L, -2, "oplog.core");
  for (lua_Integer i = 0; oplog_lua_sources[i].name; i++) {
    const char *name = oplog_lua_sources[i].name;
    size_t n = strlen(name);
    lua_pushinteger(L, i);
    lua_pushcclosure(L, l_embedded_loader, 1);
    if (n > 5 && strcmp(name + n - 5, ".init") == 0)
      lua_pushlstring(L, name, n - 5);
    else
      lua_pushstring(L, name);
    lua_insert(L, -2);
    lua_settable(L, -3);
  }
  lua_pop(L, 1);
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s", OPLOG_BENCH_SOURCE_DIR,
                  OPLOG_BENCH_SOURCE_DIR, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
  lua_pushcfunction(L, l_clock);
  lua_setglobal(L, "bench_clock");
  return L;
}

/* Same rows, metadata and transactions as run_oplog_write, written the way a
 * user writes them. Returns run(ntx) -> seconds and close(). */
static const char LUA_WRITE[] =
    "local path, keyfile, per_tx, sync, pat, multi = ...\n"
    "local oplog = require 'oplog'\n"
    "local db = oplog.open(path, { key_file = keyfile, sync = sync })\n"
    "db:define('item', { aggregate = 'items', columns = {\n"
    "  { 'id', 'INTEGER PRIMARY KEY' }, { 'name', 'TEXT NOT NULL' },\n"
    "  { 'value', 'REAL NOT NULL' }, { 'note', 'TEXT NOT NULL' } } })\n"
    "local note2 = pat .. pat:rep(2):sub(1, 70)\n"
    "local meta = { actor = 'bench-user', reason = 'load' }\n"
    "local opts = { metadata = meta }\n"
    "local clock, fmt = bench_clock, string.format\n"
    "local id, batch = 0, {}\n"
    "local function run(ntx)\n"
    "  local secs = 0\n"
    "  for t = 1, ntx do\n"
    "    -- rows are built off the clock, as on the C side\n"
    "    for k = 1, per_tx do\n"
    "      id = id + 1\n"
    "      local o = (id * 7) % 64\n"
    "      batch[k] = { id = id, name = fmt('name-%08d', id),\n"
    "                   value = (id % 100000) * 0.25, note = note2:sub(o + 1, o + 70) }\n"
    "    end\n"
    "    local t0 = clock()\n"
    "    if per_tx == 1 then\n"
    "      local row = batch[1]\n"
    "      db:transaction('items', function(tx) tx:create('item', row) end, opts)\n"
    "    elseif multi then\n"
    "      db:transaction('items', function(tx)\n"
    "        for k = 1, per_tx do tx:create('item', batch[k]); tx:entry(meta) end\n"
    "      end)\n"
    "    else\n"
    "      db:transaction('items', function(tx)\n"
    "        for k = 1, per_tx do tx:create('item', batch[k]) end\n"
    "      end, opts)\n"
    "    end\n"
    "    secs = secs + (clock() - t0)\n"
    "  end\n"
    "  return secs\n"
    "end\n"
    "return run, function() db:close() end\n";

/* Whether the Lua binding can write many entries in one transaction
 * (tx:entry, the twin of oplog_tx_entry). */
static int lua_has_tx_entry(const char *path) {
  static const char probe[] =
      "local path, keyfile = ...\n"
      "local db = require('oplog').open(path, { key_file = keyfile, sync = 'normal' })\n"
      "db:define('item', { aggregate = 'items', columns = { { 'id', 'INTEGER PRIMARY KEY' } } })\n"
      "local has\n"
      "db:transaction('items', function(tx) has = tx.entry ~= nil end)\n"
      "db:close()\n"
      "return has\n";
  rm_db(path);
  lua_State *L = lua_new();
  if (luaL_loadbuffer(L, probe, sizeof probe - 1, "=bench_probe") != LUA_OK)
    die("lua: %s", lua_tostring(L, -1));
  lua_pushstring(L, path);
  lua_pushstring(L, C.keyfile);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) die("lua: %s", luaL_tolstring(L, -1, NULL));
  int has = lua_toboolean(L, -1);
  lua_close(L);
  rm_db(path);
  return has;
}

SIDE static double run_lua_write(wside *w, long ntx) {
  lua_State *L = w->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->run_ref);
  lua_pushinteger(L, ntx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) die("lua: %s", luaL_tolstring(L, -1, NULL));
  double secs = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return secs;
}

/* Opens one side on a fresh file; nothing of it is timed. */
static void ws_open(wside *w, int kind, const char *path, int sync, int per_tx, int multi,
                    size_t blob_len) {
  memset(w, 0, sizeof *w);
  w->kind = kind;
  w->sync = sync;
  w->per_tx = per_tx;
  w->multi = multi;
  w->blob_len = blob_len;
  w->id = 1;
  w->rows = malloc(sizeof *w->rows * (size_t)per_tx);
  w->ops = malloc(sizeof *w->ops * (size_t)per_tx);
  if (!w->rows || !w->ops) die("nomem");
  rm_db(path);
  switch (kind) {
  case W_OPLOG:
    w->db = ol_open(path, sync, 1);
    ol_define(w->db);
    break;
  case W_BARE:
  case W_TRIG:
  case W_SESS:
    w->s = sq_open(path, sync);
    sq_exec(w->s, "CREATE TABLE item (" ITEM_COLUMNS ")");
    if (kind == W_TRIG) sq_exec(w->s, TRIGGER_SQL);
    if (kind == W_SESS) {
      sq_exec(w->s, "CREATE TABLE changesets (id INTEGER PRIMARY KEY, data BLOB NOT NULL)");
      w->st[S_CHANGESET] = sq_prep(w->s, "INSERT INTO changesets(data) VALUES (?1)");
    }
    w->st[S_LIVE] = sq_prep(w->s, "INSERT INTO item(id, name, value, note) VALUES (?1, ?2, ?3, ?4)");
    w->st[S_BEGIN] = sq_prep(w->s, "BEGIN IMMEDIATE");
    w->st[S_COMMIT] = sq_prep(w->s, "COMMIT");
    break;
  case W_SAME: {
    /* created by oplog_open + oplog_define: the real schema, page size and
     * catalog; then used raw */
    oplog_db *db = ol_open(path, sync, 1);
    ol_define(db);
    OK(db, oplog_close(db));
    if (blob_len + 64 > POOL_BYTES) die("blob too long");
    w->s = sq_open(path, sync);
    same_schema(w->s);
    w->key_id = sq_int(w->s, "SELECT coalesce(max(id), 0) FROM oplog_keys WHERE origin = 1");
    meta_blob(w->meta);
    /* the core's statements, as written in src/db.c, src/index.c and the
     * live INSERT and read-back SELECT it builds (row.c build_sql) */
#define SAME_WM "(SELECT value FROM oplog_config WHERE name = 'indexed_upto')"
    w->st[S_BEGIN] = sq_prep(w->s, "BEGIN IMMEDIATE");
    w->st[S_DATAVER] = sq_prep(w->s, "PRAGMA data_version");
    w->st[S_STATE] = sq_prep(w->s, "SELECT " SAME_WM ", (SELECT value FROM oplog_config WHERE name = 'clock'),"
                                   " (SELECT max(clock) FROM oplog_entries WHERE id > " SAME_WM
                                   "), (SELECT max(id) FROM oplog_entries)");
    w->st[S_HEAD_TAIL] = sq_prep(w->s, "SELECT id, seq, hash FROM oplog_entries WHERE id > ?1 AND origin = 1 "
                                       "ORDER BY id DESC LIMIT 1");
    w->st[S_HEAD_INDEXED] = sq_prep(w->s, "SELECT e.id, e.seq, e.hash FROM oplog_index x JOIN oplog_entries e "
                                          "ON e.id = x.entry_id WHERE x.origin = 1 ORDER BY x.seq DESC LIMIT 1");
    w->st[S_TICKET_GET] = sq_prep(w->s, "SELECT version + (SELECT count(*) FROM oplog_entries WHERE id > " SAME_WM
                                        " AND aggregate_name = ?1) FROM oplog_ticket WHERE name = ?1");
    w->st[S_LIVE] = sq_prep(w->s, "INSERT INTO \"main\".\"item\" (\"id\", \"name\", \"value\", \"note\") "
                                  "VALUES (?, ?, ?, ?)");
    /* --drift-same-sql (a test of the SQL check): the same work in other
     * words, which the check must catch */
    w->st[S_READ] = sq_prep(w->s, C.drift ? "SELECT * FROM \"main\".\"item\" WHERE \"id\" = ?"
                                          : "SELECT \"id\", \"name\", \"value\", \"note\" FROM "
                                            "\"main\".\"item\" WHERE \"id\" = ?");
    w->st[S_ENTRY] = sq_prep(w->s,
                             "INSERT INTO oplog_entries (id, origin, seq, clock, created, "
                             "aggregate_name, key_id, metadata, data, prev_hash, hash, format) "
                             "VALUES (NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    w->st[S_TAIL] = sq_prep(w->s, "SELECT id, origin, seq, clock, aggregate_name, CASE WHEN length(metadata) "
                                  "<= ?2 THEN metadata END FROM oplog_entries WHERE id > ?1 ORDER BY id");
    w->st[S_INDEX] = sq_prep(
        w->s, "INSERT INTO oplog_index (entry_id, origin, seq, aggregate_name, clock) VALUES (?1, ?2, ?3, ?4, ?5)");
    w->st[S_TOUCH_WM] = sq_prep(w->s, "SELECT value FROM oplog_config WHERE name = ?1");
    {
      char q[512];
      snprintf(q, sizeof q,
               "SELECT id, origin, seq, clock, created, aggregate_name, key_id, CASE WHEN length(metadata) <= %lld THEN "
               "metadata END, CASE WHEN length(data) <= %lld THEN data END, prev_hash, hash, format FROM oplog_entries "
               "WHERE id > ?1 ORDER BY id",
               (long long)MAX_ENTRY_BYTES, (long long)MAX_ENTRY_BYTES);
      w->st[S_TOUCH_TAIL] = sq_prep(w->s, q);
    }
    w->st[S_TOUCH_INS] = sq_prep(w->s, "INSERT OR IGNORE INTO oplog_touches (type, key, entry_id) VALUES (?1, ?2, ?3)");
    w->st[S_TOUCH_CFG] = sq_prep(w->s, "INSERT OR REPLACE INTO oplog_config (name, value) VALUES ('touched_upto', ?1)");
    w->st[S_META] = sq_prep(
        w->s, "INSERT INTO oplog_metadata (entry_id, position, key, value) VALUES (?1, ?2, ?3, ?4)");
    w->st[S_TICKET] = sq_prep(w->s, "INSERT INTO oplog_ticket (name, version) VALUES (?1, 1 + ?2)"
                                    " ON CONFLICT (name) DO UPDATE SET version = version + ?2");
    w->st[S_CONFIG] = sq_prep(w->s, "INSERT OR REPLACE INTO oplog_config (name, value) "
                                    "VALUES ('indexed_upto', ?1), ('clock', ?2)");
#undef SAME_WM
    w->st[S_COMMIT] = sq_prep(w->s, "COMMIT");
    break;
  }
  case W_LUA: {
    lua_State *L = w->L = lua_new();
    if (luaL_loadbuffer(L, LUA_WRITE, sizeof LUA_WRITE - 1, "=bench_write") != LUA_OK)
      die("lua: %s", lua_tostring(L, -1));
    lua_pushstring(L, path);
    lua_pushstring(L, C.keyfile);
    lua_pushinteger(L, per_tx);
    lua_pushstring(L, sync == OPLOG_SYNC_FULL ? "full" : "normal");
    lua_pushstring(L, NOTE_PAT);
    lua_pushboolean(L, multi);
    if (lua_pcall(L, 6, 2, 0) != LUA_OK) die("lua: %s", luaL_tolstring(L, -1, NULL));
    lua_setfield(L, LUA_REGISTRYINDEX, "bench_close");
    w->run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    break;
  }
  }
}

static double ws_run(wside *w, long ntx) {
  switch (w->kind) {
  case W_OPLOG: return run_oplog_write(w, ntx);
  case W_BARE: return run_bare(w, ntx);
  case W_SAME: return run_same_sql(w, ntx);
  case W_TRIG: return run_trigger(w, ntx);
  case W_SESS: return run_session(w, ntx);
  default: return run_lua_write(w, ntx);
  }
}

static void ws_close(wside *w) {
  if (w->db) OK(w->db, oplog_close(w->db));
  for (int i = 0; i < S__N; i++) sqlite3_finalize(w->st[i]);
  if (w->s) sqlite3_close(w->s);
  if (w->L) {
    lua_getfield(w->L, LUA_REGISTRYINDEX, "bench_close");
    if (lua_pcall(w->L, 0, 0, 0) != LUA_OK) die("lua: %s", luaL_tolstring(w->L, -1, NULL));
    lua_close(w->L);
  }
  free(w->rows);
  free(w->ops);
  memset(w, 0, sizeof *w);
}

/* ------------------------------------------------------------------ data set (W3-W5) */

static char g_ds[PATH_MAX + 16], g_base[PATH_MAX + 16];

/* Additional data of the W3 baseline's own ciphertexts: the same shape and
 * size as the core's format-2 AD (a 13-byte tag, the 32-byte origin id,
 * seq, clock, created, key id, then the aggregate and the metadata blob,
 * each after its u32 length; see crypto.c), so that the AEAD work matches.
 * The baseline never depends on the core's layout being exactly this. */
#define BASE_AD_MAX 512
static size_t base_ad(unsigned char ad[BASE_AD_MAX], const unsigned char origin_id[32], sqlite3_stmt *s,
                      int c_seq) {
  /* columns from c_seq: seq, clock, created, key_id, aggregate_name, metadata */
  size_t n = 0;
  memcpy(ad, "bench-data-v2", 13);
  n = 13;
  memcpy(ad + n, origin_id, 32);
  n += 32;
  for (int c = 0; c < 4; c++, n += 8) {
    uint64_t v = (uint64_t)sqlite3_column_int64(s, c_seq + c);
    for (int b = 0; b < 8; b++) ad[n + b] = (unsigned char)(v >> (8 * b));
  }
  for (int c = 4; c < 6; c++) {
    size_t len = (size_t)sqlite3_column_bytes(s, c_seq + c);
    const void *p = sqlite3_column_blob(s, c_seq + c);
    if (n + 4 + len > BASE_AD_MAX) len = BASE_AD_MAX - n - 4;
    n += put_u32(ad + n, (uint32_t)len);
    if (len) memcpy(ad + n, p, len);
    n += len;
  }
  return n;
}

/* The file's own origin id (oplog_origins no = 1). */
static void origin_id_of(sqlite3 *s, unsigned char out[32]) {
  sqlite3_stmt *st = sq_prep(s, "SELECT id FROM oplog_origins WHERE no = 1");
  if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_bytes(st, 0) != 32) die("no origin 1 in the data set");
  memcpy(out, sqlite3_column_blob(st, 0), 32);
  sqlite3_finalize(st);
}

/* N entries of one create op each, 2 metadata pairs, encrypted and chained,
 * written BUILD_BATCH per transaction through the low-level API (live tables
 * are not needed by W3-W5). Then the W3 baseline copy: the same rows with
 * data replaced by blobs of the same length that the bench encrypts itself,
 * since the core's additional-data layout is its own business. */
SIDE static double child_build(long n) {
  double t0 = now();
  rm_db(g_ds);
  oplog_db *db = ol_open(g_ds, OPLOG_SYNC_NORMAL, 1);
  ol_define(db);
  brow r;
  bop o;
  int64_t eid;
  for (int64_t i = 1; i <= n;) {
    int64_t v;
    OK(db, oplog_begin(db));
    OK(db, oplog_ticket(db, "items", &v));
    for (int k = 0; k < BUILD_BATCH && i <= n; k++, i++) {
      row_make(i, &r);
      op_make(&r, &o);
      oplog_entry_write w = {"items", v++, META, 2, &o.op, 1};
      OK(db, oplog_write_entry(db, &w, &eid));
    }
    OK(db, oplog_commit(db));
  }
  OK(db, oplog_close(db));
  double t1 = now();

  rm_db(g_base);
  sqlite3 *src = sq_open(g_ds, OPLOG_SYNC_NORMAL);
  sqlite3 *dst = sq_open(g_base, OPLOG_SYNC_NORMAL);
  unsigned char oid[32];
  origin_id_of(src, oid);
  sq_exec(dst,
          "CREATE TABLE entries_copy (id INTEGER PRIMARY KEY, origin INTEGER NOT NULL, "
          "seq INTEGER NOT NULL, clock INTEGER NOT NULL, created INTEGER NOT NULL, "
          "aggregate_name TEXT NOT NULL, key_id INTEGER NOT NULL, metadata BLOB NOT NULL, "
          "data BLOB NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL, format INTEGER NOT NULL) STRICT;"
          "CREATE TABLE origin_copy (id BLOB NOT NULL)");
  {
    sqlite3_stmt *o = sq_prep(dst, "INSERT INTO origin_copy VALUES (?1)");
    sqlite3_bind_blob(o, 1, oid, 32, SQLITE_STATIC);
    sq_run(dst, o);
    sqlite3_finalize(o);
  }
  sqlite3_stmt *sel = sq_prep(src,
                              "SELECT id, origin, seq, clock, created, key_id, aggregate_name, metadata, "
                              "length(data), prev_hash, hash, format FROM oplog_entries ORDER BY id");
  /* in base_ad's order from column 2: seq, clock, created, key_id, aggregate_name, metadata */
  sqlite3_stmt *ins = sq_prep(dst, "INSERT INTO entries_copy (id, origin, seq, clock, created, key_id, "
                                   "aggregate_name, metadata, data, prev_hash, hash, format) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
  unsigned char *buf = NULL;
  size_t cap = 0;
  long done = 0;
  int rc;
  sq_exec(dst, "BEGIN");
  while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(sel, 0);
    size_t len = (size_t)sqlite3_column_int64(sel, 8);
    size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
           ab = crypto_aead_xchacha20poly1305_ietf_ABYTES;
    if (len < nb + ab || len - nb - ab > POOL_BYTES) die("entry %lld: odd data length", (long long)id);
    if (len > cap) {
      cap = len * 2;
      buf = realloc(buf, cap);
      if (!buf) die("nomem");
    }
    unsigned char ad[BASE_AD_MAX];
    size_t adlen = base_ad(ad, oid, sel, 2);
    randombytes_buf(buf, nb);
    unsigned long long clen;
    crypto_aead_xchacha20poly1305_ietf_encrypt(buf + nb, &clen, g_pool + (id % 4096), len - nb - ab,
                                               ad, adlen, NULL, buf, g_base_key);
    for (int c = 0; c < 12; c++) {
      if (c == 8)
        sqlite3_bind_blob(ins, 9, buf, (int)len, SQLITE_STATIC);
      else
        sqlite3_bind_value(ins, c + 1, sqlite3_column_value(sel, c));
    }
    sq_run(dst, ins);
    if (++done % 10000 == 0) {
      sq_exec(dst, "COMMIT");
      sq_exec(dst, "BEGIN");
    }
  }
  sq_check(src, rc, "copy");
  sq_exec(dst, "COMMIT");
  if (done != n) die("data set has %ld entries, expected %ld", done, n);
  free(buf);
  sqlite3_finalize(sel);
  sqlite3_finalize(ins);
  sqlite3_close(src);
  sqlite3_close(dst);
  return t1 - t0;
}

/* W3 oplog: iterate every entry (read, decrypt, decode). */
SIDE static double child_w3_oplog(long n) {
  oplog_db *db = ol_open(g_ds, OPLOG_SYNC_NORMAL, 1);
  oplog_filter f;
  memset(&f, 0, sizeof f);
  oplog_iter *it = NULL;
  const oplog_entry *e;
  long cnt = 0, ops = 0;
  double t0 = now();
  OK(db, oplog_entries(db, &f, &it));
  for (;;) {
    OK(db, oplog_iter_next(it, &e));
    if (!e) break;
    cnt++;
    ops += (long)e->nops;
  }
  oplog_iter_close(it);
  double t1 = now();
  if (cnt != n || ops != n) die("w3: read %ld entries / %ld ops, expected %ld", cnt, ops, n);
  OK(db, oplog_close(db));
  return t1 - t0;
}

/* W3 baseline: scan the copy's blobs and decrypt them with libsodium. */
SIDE static double child_w3_base(long n) {
  sqlite3 *s = sq_open(g_base, OPLOG_SYNC_NORMAL);
  unsigned char oid[32];
  {
    sqlite3_stmt *o = sq_prep(s, "SELECT id FROM origin_copy");
    if (sqlite3_step(o) != SQLITE_ROW || sqlite3_column_bytes(o, 0) != 32) die("w3 base: no origin");
    memcpy(oid, sqlite3_column_blob(o, 0), 32);
    sqlite3_finalize(o);
  }
  /* what decryption needs: the columns of the additional data, and data */
  sqlite3_stmt *sel = sq_prep(s, "SELECT id, origin, seq, clock, created, key_id, aggregate_name, metadata, "
                                 "data FROM entries_copy");
  unsigned char out[1 << 16];
  long cnt = 0;
  int rc;
  double t0 = now();
  while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(sel, 0);
    const unsigned char *d = sqlite3_column_blob(sel, 8);
    size_t len = (size_t)sqlite3_column_bytes(sel, 8);
    unsigned char ad[BASE_AD_MAX];
    /* base_ad wants seq, clock, created, key_id, aggregate_name, metadata */
    size_t adlen = base_ad(ad, oid, sel, 2);
    unsigned long long plen;
    size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    if (len - nb > sizeof out ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL, d + nb, len - nb, ad, adlen, d,
                                                   g_base_key) != 0)
      die("w3 base: entry %lld does not decrypt", (long long)id);
    cnt++;
  }
  double t1 = now();
  sq_check(s, rc, "w3 base");
  if (cnt != n) die("w3 base: %ld rows, expected %ld", cnt, n);
  sqlite3_finalize(sel);
  sqlite3_close(s);
  return t1 - t0;
}

/* W4 oplog: replay every operation into <table>_r<round>. */
SIDE static double child_w4_oplog(long n, int round) {
  oplog_db *db = ol_open(g_ds, OPLOG_SYNC_NORMAL, 1);
  char sfx[32];
  snprintf(sfx, sizeof sfx, "_r%d", round);
  oplog_replay_opts o;
  memset(&o, 0, sizeof o);
  o.suffix = sfx;
  oplog_replay_result res;
  memset(&res, 0, sizeof res);
  double t0 = now();
  OK(db, oplog_replay(db, &o, &res));
  double t1 = now();
  if (res.ops != n || res.entries != n)
    die("w4: replayed %lld entries / %lld ops, expected %ld", (long long)res.entries,
        (long long)res.ops, n);
  OK(db, oplog_close(db));
  return t1 - t0;
}

/* W4 baseline: the same rows, one prepared INSERT, one transaction. */
SIDE static double child_w4_base(long n, int round) {
  sqlite3 *s = sq_open(g_base, OPLOG_SYNC_NORMAL);
  char sql[256];
  snprintf(sql, sizeof sql, "CREATE TABLE item_b%d (" ITEM_COLUMNS ")", round);
  brow r;
  double t0 = now();
  sq_exec(s, "BEGIN IMMEDIATE");
  sq_exec(s, sql);
  snprintf(sql, sizeof sql, "INSERT INTO item_b%d(id, name, value, note) VALUES (?1, ?2, ?3, ?4)",
           round);
  sqlite3_stmt *ins = sq_prep(s, sql);
  for (int64_t i = 1; i <= n; i++) {
    row_make(i, &r);
    sqlite3_bind_int64(ins, 1, r.id);
    sqlite3_bind_text(ins, 2, r.name, r.name_len, SQLITE_STATIC);
    sqlite3_bind_double(ins, 3, r.value);
    sqlite3_bind_text(ins, 4, r.note, NOTE_LEN, SQLITE_STATIC);
    sq_run(s, ins);
  }
  sqlite3_finalize(ins);
  sq_exec(s, "COMMIT");
  double t1 = now();
  sqlite3_close(s);
  return t1 - t0;
}

/* W5 oplog: verify the chain without the key. */
SIDE static double child_w5_oplog(long n) {
  oplog_db *db = ol_open(g_ds, OPLOG_SYNC_NORMAL, 0);
  oplog_verify_opts o;
  memset(&o, 0, sizeof o);
  oplog_verify_result res;
  memset(&res, 0, sizeof res);
  double t0 = now();
  OK(db, oplog_verify(db, &o, NULL, NULL, &res));
  double t1 = now();
  if (!res.ok || res.entries != n)
    die("w5: verify ok=%d entries=%lld problems=%lld, expected %ld", res.ok,
        (long long)res.entries, (long long)res.problems, n);
  OK(db, oplog_close(db));
  return t1 - t0;
}

static void h_u64(crypto_generichash_state *h, int64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)v >> (8 * i));
  crypto_generichash_update(h, b, 8);
}
static void h_u32(crypto_generichash_state *h, size_t v) {
  unsigned char b[4];
  for (int i = 0; i < 4; i++) b[i] = (unsigned char)((uint32_t)v >> (8 * i));
  crypto_generichash_update(h, b, 4);
}
static void h_bytes(crypto_generichash_state *h, const void *p, size_t n) {
  h_u32(h, n);
  if (n) crypto_generichash_update(h, p, n);
}

/* W5 baseline: an independent verifier written directly on SQLite and
 * libsodium, doing the work the core's verify does without the key. Scans
 * every column of oplog_entries in id order and BLAKE2b-256s each entry in
 * the format-2 layout of FORMAT.md / chain.c (tag, previous hash, origin id,
 * seq, clock, created, key id, aggregate, metadata blob, data), checks the
 * prev_hash links and the stored hashes; and merges in, by entry id, the
 * derived rows of oplog_index (origin, seq, aggregate) and oplog_metadata
 * (each pair against the entry's metadata blob), as the core checks that
 * they say what the entries say. A layout change in the core only makes
 * the hashes or derived rows differ (reported), the work stays the same. */
static long g_w5_mismatch, g_w5_derived;

/* Whether the metadata rows of the entry (from *mrc on) match its blob;
 * advances the metadata cursor past the entry's rows. */
static int w5_meta(sqlite3_stmt *meta, int *mrc, int64_t id, const unsigned char *b, size_t n) {
  int ok = 1;
  uint32_t cnt = 0, pos = 0;
  size_t o = 0;
  if (n >= 4) cnt = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24, o = 4;
  else ok = 0;
  while (*mrc == SQLITE_ROW && sqlite3_column_int64(meta, 0) < id) *mrc = sqlite3_step(meta);
  while (*mrc == SQLITE_ROW && sqlite3_column_int64(meta, 0) == id) {
    const unsigned char *f[2] = {NULL, NULL};
    size_t fl[2] = {0, 0};
    int has = 0;
    for (int k = 0; k < 2 && ok; k++) {
      if (k == 1) {
        if (o + 1 > n) { ok = 0; break; }
        has = b[o++];
        if (!has) break;
      }
      if (o + 4 > n) { ok = 0; break; }
      fl[k] = (size_t)b[o] | (size_t)b[o + 1] << 8 | (size_t)b[o + 2] << 16 | (size_t)b[o + 3] << 24;
      o += 4;
      if (o + fl[k] > n) { ok = 0; break; }
      f[k] = b + o;
      o += fl[k];
    }
    pos++;
    if (ok) {
      size_t kl = (size_t)sqlite3_column_bytes(meta, 2), vl = (size_t)sqlite3_column_bytes(meta, 3);
      int vnull = sqlite3_column_type(meta, 3) == SQLITE_NULL;
      ok = sqlite3_column_int64(meta, 1) == pos && kl == fl[0] && memcmp(sqlite3_column_text(meta, 2), f[0], kl) == 0 &&
           vnull == !has && (!has || (vl == fl[1] && memcmp(sqlite3_column_text(meta, 3), f[1], vl) == 0));
    }
    *mrc = sqlite3_step(meta);
  }
  return ok && pos == cnt && o == n;
}

SIDE static double child_w5_base(long n) {
  static const char TAG[] = "oplog-entry-v2";
  sqlite3 *s = sq_open(g_ds, OPLOG_SYNC_NORMAL);
  unsigned char oid[32];
  origin_id_of(s, oid);
  sqlite3_stmt *ent = sq_prep(s,
                              "SELECT id, origin, seq, clock, created, aggregate_name, key_id, metadata, "
                              "data, prev_hash, hash, format FROM oplog_entries ORDER BY id");
  sqlite3_stmt *idx =
      sq_prep(s, "SELECT entry_id, origin, seq, aggregate_name FROM oplog_index ORDER BY entry_id");
  sqlite3_stmt *meta =
      sq_prep(s, "SELECT entry_id, position, key, value FROM oplog_metadata ORDER BY entry_id, position");
  unsigned char prev[32] = {0}, out[32];
  long cnt = 0, breaks = 0;
  int rc, irc, mrc;
  double t0 = now();
  sq_exec(s, "BEGIN");
  irc = sqlite3_step(idx);
  mrc = sqlite3_step(meta);
  while ((rc = sqlite3_step(ent)) == SQLITE_ROW) {
    crypto_generichash_state h;
    int64_t id = sqlite3_column_int64(ent, 0);
    crypto_generichash_init(&h, NULL, 0, 32);
    crypto_generichash_update(&h, (const unsigned char *)TAG, sizeof TAG - 1);
    crypto_generichash_update(&h, prev, 32);
    crypto_generichash_update(&h, oid, 32);
    h_u64(&h, sqlite3_column_int64(ent, 2));
    h_u64(&h, sqlite3_column_int64(ent, 3));
    h_u64(&h, sqlite3_column_int64(ent, 4));
    h_u64(&h, sqlite3_column_int64(ent, 6));
    const unsigned char *agg = sqlite3_column_text(ent, 5);
    size_t alen = (size_t)sqlite3_column_bytes(ent, 5);
    h_bytes(&h, agg, alen);
    const unsigned char *md = sqlite3_column_blob(ent, 7);
    size_t mlen = (size_t)sqlite3_column_bytes(ent, 7);
    h_bytes(&h, md, mlen);
    h_bytes(&h, sqlite3_column_blob(ent, 8), (size_t)sqlite3_column_bytes(ent, 8));
    crypto_generichash_final(&h, out, 32);
    const void *ph = sqlite3_column_blob(ent, 9), *hh = sqlite3_column_blob(ent, 10);
    if (sqlite3_column_bytes(ent, 9) != 32 || memcmp(ph, prev, 32) != 0) breaks++;
    if (sqlite3_column_bytes(ent, 10) != 32 || memcmp(hh, out, 32) != 0) g_w5_mismatch++;
    if (sqlite3_column_bytes(ent, 10) == 32) memcpy(prev, hh, 32);
    /* the derived rows of the entry */
    while (irc == SQLITE_ROW && sqlite3_column_int64(idx, 0) < id) irc = sqlite3_step(idx);
    if (irc == SQLITE_ROW && sqlite3_column_int64(idx, 0) == id) {
      if (sqlite3_column_int64(idx, 1) != sqlite3_column_int64(ent, 1) ||
          sqlite3_column_int64(idx, 2) != sqlite3_column_int64(ent, 2) ||
          (size_t)sqlite3_column_bytes(idx, 3) != alen || memcmp(sqlite3_column_text(idx, 3), agg, alen) != 0)
        g_w5_derived++;
      irc = sqlite3_step(idx);
    } else {
      g_w5_derived++; /* the data set is closed: every entry is covered */
    }
    if (!w5_meta(meta, &mrc, id, md, mlen)) g_w5_derived++;
    cnt++;
  }
  sq_check(s, rc, "w5 base");
  sq_exec(s, "COMMIT");
  double t1 = now();
  if (cnt != n || breaks) die("w5 base: %ld entries, %ld chain breaks", cnt, breaks);
  if (g_w5_mismatch)
    fprintf(stderr, "bench: note: w5 baseline hashes differ from the stored ones for %ld entries "
                    "(chain layout changed?); the work measured is the same\n", g_w5_mismatch);
  if (g_w5_derived)
    fprintf(stderr, "bench: note: w5 baseline: derived rows differ from %ld entries "
                    "(layout changed?); the work measured is the same\n", g_w5_derived);
  sqlite3_finalize(ent);
  sqlite3_finalize(idx);
  sqlite3_finalize(meta);
  sqlite3_close(s);
  return t1 - t0;
}

/* Open latency with the key file on the data set: the first open of a fresh
 * process (what every `oplog` command pays) and the median of later ones. */
SIDE static double child_open(double *later_median) {
  double ts[11];
  for (int i = 0; i < 11; i++) {
    double t0 = now();
    oplog_db *db = ol_open(g_ds, OPLOG_SYNC_FULL, 1);
    ts[i] = now() - t0;
    OK(db, oplog_close(db));
  }
  /* insertion sort of the 10 later opens */
  for (int i = 2; i < 11; i++)
    for (int j = i; j > 1 && ts[j] < ts[j - 1]; j--) {
      double x = ts[j];
      ts[j] = ts[j - 1];
      ts[j - 1] = x;
    }
  *later_median = (ts[5] + ts[6]) / 2;
  return ts[0];
}

typedef struct cres {
  double secs, extra;
  long hwm_kb;
} cres;

/* ------------------------------------------------------------------ fleet: ship
 * Entries shipped per second to a local PostgreSQL server (oplog_ship),
 * as a ratio to COPY of the same rows (entries and metadata, binary, in
 * one transaction into tables like the ship's). The child runs under
 * tests/fleet/pg.sh, which starts a private server and stops it. */
#ifdef OPLOG_BENCH_PQ
#include "fleet.h"

static double sync_write(oplog_db *db, int64_t from, long n, int update); /* below, with imp */

static double child_ship(long n, int rounds) {
  const char *pg = getenv("OPLOG_PG");
  if (!pg) die("ship: OPLOG_PG is not set (run under tests/fleet/pg.sh)");
  char path[PATH_MAX + 32];
  path_in(path, sizeof path, "ship.db");
  rm_db(path);
  oplog_db *db = ol_open(path, OPLOG_SYNC_NORMAL, 1);
  ol_define(db);
  sync_write(db, 1, n, 0);
  PGconn *c = PQconnectdb(pg);
  if (PQstatus(c) != CONNECTION_OK) die("ship: %s", PQerrorMessage(c));
  /* the same rows as COPY buffers, built off the clock */
  sqlite3 *sq;
  if (sqlite3_open_v2(path, &sq, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die("ship: open %s", path);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(sq, "SELECT o.id, e.seq, e.clock, e.aggregate_name, e.created, e.key_id, e.data, e.prev_hash,"
                         " e.hash, e.metadata, e.format FROM oplog_entries e JOIN oplog_origins o ON o.no = e.origin"
                         " ORDER BY e.id", -1, &st, NULL) != SQLITE_OK)
    die("ship: %s", sqlite3_errmsg(sq));
  buf rows = {0}, meta = {0};
  opl_copy_begin(&rows);
  opl_copy_begin(&meta);
  while (sqlite3_step(st) == SQLITE_ROW) {
    int bad = opl_copy_row(&rows, 11);
    for (int i = 0; i < 11; i++) {
      if (i == 1 || i == 2 || i == 4 || i == 5) bad |= opl_copy_i64(&rows, sqlite3_column_int64(st, i));
      else if (i == 10) bad |= opl_copy_i16(&rows, sqlite3_column_int(st, i));
      else bad |= opl_copy_bytes(&rows, sqlite3_column_blob(st, i), (size_t)sqlite3_column_bytes(st, i));
    }
    meta_reader mr;
    meta_pair mp;
    int32_t pos = 0;
    if (!opl_meta_open(&mr, sqlite3_column_blob(st, 9), (size_t)sqlite3_column_bytes(st, 9))) die("ship: metadata");
    while (opl_meta_next(&mr, &mp) == 1)
      bad |= opl_copy_row(&meta, 5) || opl_copy_bytes(&meta, sqlite3_column_blob(st, 0), 32) ||
             opl_copy_i64(&meta, sqlite3_column_int64(st, 1)) || opl_copy_i32(&meta, ++pos) ||
             opl_copy_bytes(&meta, mp.key, mp.nkey) ||
             (mp.has_value ? opl_copy_bytes(&meta, mp.value, mp.nvalue) : opl_copy_null(&meta));
    if (bad) die("ship: out of memory");
  }
  sqlite3_finalize(st);
  sqlite3_close(sq);
  opl_copy_end(&rows);
  int has_meta = meta.n > COPY_HEADER_BYTES;
  if (has_meta) opl_copy_end(&meta);
  double ship = 0, copy = 0;
  for (int r = 0; r < rounds; r++) {
    char schema[32], sql[512];
    snprintf(schema, sizeof schema, "bench_ship_%d", r);
    oplog_ship_opts o;
    oplog_ship_result res;
    memset(&o, 0, sizeof o);
    o.conninfo = pg;
    o.schema = schema;
    double t0 = now();
    if (oplog_ship(db, &o, &res) != OPLOG_OK) die("ship: %s", oplog_errmsg(db));
    ship += now() - t0;
    if (res.entries != n) die("ship: shipped %lld entries, expected %ld", (long long)res.entries, n);
    snprintf(sql, sizeof sql,
             "CREATE SCHEMA bench_copy_%d; CREATE TABLE bench_copy_%d.oplog_entries (LIKE %s.oplog_entries INCLUDING ALL);"
             "CREATE TABLE bench_copy_%d.oplog_metadata (LIKE %s.oplog_metadata INCLUDING ALL)",
             r, r, schema, r, schema);
    if (opl_pg_exec(NULL, c, sql, "copy tables")) die("ship: creating the COPY tables failed");
    char ce[128], cm[128];
    snprintf(ce, sizeof ce, "COPY bench_copy_%d.oplog_entries FROM STDIN (FORMAT binary)", r);
    snprintf(cm, sizeof cm, "COPY bench_copy_%d.oplog_metadata FROM STDIN (FORMAT binary)", r);
    t0 = now();
    if (opl_pg_exec(NULL, c, "BEGIN", "begin") || opl_copy_send(NULL, c, ce, &rows, "copy") ||
        (has_meta && opl_copy_send(NULL, c, cm, &meta, "copy")) || opl_pg_exec(NULL, c, "COMMIT", "commit"))
      die("ship: COPY failed: %s", PQerrorMessage(c));
    copy += now() - t0;
  }
  printf("ship: %ld entries, %d rounds: ship %.0f entries/s, COPY of the same rows %.0f rows/s\n", n, rounds,
         n * rounds / ship, n * rounds / copy);
  opl_buf_free(&rows);
  opl_buf_free(&meta);
  PQfinish(c);
  oplog_close(db);
  rm_db(path);
  return copy / ship; /* (rows per second shipped) / (rows per second by COPY) */
}
#endif

/* The ship figure: nan without PostgreSQL support or server binaries. */
static double bench_ship(void) {
#ifdef OPLOG_BENCH_PQ
  char cmd[3 * PATH_MAX];
  long n = C.quick ? 2000 : 200000;
  if (system("ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1") != 0) {
    printf("ship: no PostgreSQL server binaries (Debian: postgresql): not measured\n");
    return NAN;
  }
  snprintf(cmd, sizeof cmd, "sh '%s/tests/fleet/pg.sh' '%s' --child ship --n %ld --dir '%s' --round %d", OPLOG_BENCH_SOURCE_DIR,
           C.self, n, C.dir, C.rounds);
  FILE *p = popen(cmd, "r");
  if (!p) die("ship: %s", strerror(errno));
  char line[512];
  double r = NAN, secs, extra;
  long hwm;
  while (fgets(line, sizeof line, p)) {
    if (sscanf(line, "result secs=%lf extra=%lf hwm_kb=%ld", &secs, &extra, &hwm) == 3) r = extra;
    else fputs(line, stdout);
  }
  if (pclose(p) != 0) die("ship: the child under tests/fleet/pg.sh failed");
  printf("ship: rate / COPY rate %.3f (goal >= 0.5)\n", r);
  return r;
#else
  printf("ship: built without PostgreSQL support (OPLOG_POSTGRES): not measured\n");
  return NAN;
#endif
}

static int child_main(const char *what, long n, int round) {
  double extra = 0, secs;
  if (strcmp(what, "build") == 0)
    secs = child_build(n);
  else if (strcmp(what, "w3o") == 0)
    secs = child_w3_oplog(n);
  else if (strcmp(what, "w3b") == 0)
    secs = child_w3_base(n);
  else if (strcmp(what, "w4o") == 0)
    secs = child_w4_oplog(n, round);
  else if (strcmp(what, "w4b") == 0)
    secs = child_w4_base(n, round);
  else if (strcmp(what, "w5o") == 0)
    secs = child_w5_oplog(n);
  else if (strcmp(what, "w5b") == 0)
    secs = child_w5_base(n);
  else if (strcmp(what, "open") == 0)
    secs = child_open(&extra);
#ifdef OPLOG_BENCH_PQ
  else if (strcmp(what, "ship") == 0)
    secs = 0, extra = child_ship(n, round > 0 ? round : 2);
#endif
  else
    die("unknown child %s", what);
  printf("result secs=%.9f extra=%.9f hwm_kb=%ld\n", secs, extra, hwm_kb());
  fflush(stdout);
  return 0;
}

/* Runs `self --child what` in a fresh process and reads its result line. */
static cres spawn(const char *what, long n, int round) {
  int fd[2];
  if (pipe(fd) != 0) die("pipe: %s", strerror(errno));
  char ns[32], rs[16];
  snprintf(ns, sizeof ns, "%ld", n);
  snprintf(rs, sizeof rs, "%d", round);
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    char *argv[] = {C.self, "--child", (char *)what, "--n", ns, "--round", rs, "--dir", C.dir, NULL};
    execv(C.self, argv);
    _exit(127);
  }
  close(fd[1]);
  char buf[512];
  size_t len = 0;
  ssize_t k;
  while (len < sizeof buf - 1 && (k = read(fd[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)k;
  buf[len] = 0;
  close(fd[0]);
  int st;
  waitpid(pid, &st, 0);
  cres r = {0, 0, 0};
  const char *p = strstr(buf, "result ");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !p ||
      sscanf(p, "result secs=%lf extra=%lf hwm_kb=%ld", &r.secs, &r.extra, &r.hwm_kb) != 3)
    die("child %s failed (status %d)", what, st);
  return r;
}

/* ------------------------------------------------------------------ reporting */

typedef struct side {
  const char *name;
  double best;     /* best round's rate (items/s) */
  double rate[16]; /* each round's rate */
  double items, secs; /* totals over all rounds */
  long hwm_kb;
} side;

static void side_add(side *s, int round, double items, double secs) {
  double rate = items / secs;
  if (round < 16) s->rate[round] = rate;
  if (rate > s->best) s->best = rate;
  s->items += items;
  s->secs += secs;
}

/* The rate over all rounds: what the ratios use. */
static double side_rate(const side *s) { return s->secs > 0 ? s->items / s->secs : 0; }

static void side_print(const side *s, const char *unit) {
  if (s->secs <= 0) return;
  printf("    %-10s %12.0f %s/s   best round %.0f   rounds:", s->name, side_rate(s), unit, s->best);
  for (int r = 0; r < C.rounds && r < 16; r++) printf(" %.0f", s->rate[r]);
  if (s->hwm_kb > 0) printf("   peak RSS %.1f MB", (double)s->hwm_kb / 1024.0);
  printf("\n");
}

static double ratio(double a, double b) { return (a > 0 && b > 0) ? a / b : NAN; }

/* The ratio of two sides round by round and its median: a cross-check of
 * the ratio over all rounds. */
static void print_paired(const char *label, const side *a, const side *b) {
  double r[16];
  int n = 0;
  for (int i = 0; i < C.rounds && i < 16; i++)
    if (a->rate[i] > 0 && b->rate[i] > 0) r[n++] = a->rate[i] / b->rate[i];
  if (!n) return;
  printf("    per round %s:", label);
  for (int i = 0; i < n; i++) printf(" %.3f", r[i]);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && r[j] < r[j - 1]; j--) {
      double x = r[j];
      r[j] = r[j - 1];
      r[j - 1] = x;
    }
  printf("  (median %.3f)\n", n % 2 ? r[n / 2] : (r[n / 2 - 1] + r[n / 2]) / 2);
}

static void print_machine(void) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[512], model[256] = "unknown";
  if (f) {
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "model name", 10) == 0) {
        char *c = strchr(line, ':');
        if (c) {
          snprintf(model, sizeof model, "%s", c + 2);
          model[strcspn(model, "\n")] = 0;
        }
        break;
      }
    fclose(f);
  }
  struct statfs sf;
  const char *fs = "?";
  if (statfs(C.dir, &sf) == 0) {
    if (sf.f_type == 0xEF53) fs = "ext2/3/4";
    else if (sf.f_type == 0x01021994) fs = "tmpfs (fsync is free: W1F is meaningless)";
    else if (sf.f_type == 0x9123683E) fs = "btrfs";
    else if (sf.f_type == 0x58465342) fs = "xfs";
    else fs = "other";
  }
  printf("bench: oplog %s, SQLite %s, libsodium %s, %s\n", OPLOG_VERSION, sqlite3_libversion(),
         sodium_version_string(), LUA_RELEASE);
  printf("machine: %ld CPUs, %s; data dir %s (%s)\n", sysconf(_SC_NPROCESSORS_ONLN), model, C.dir, fs);
  printf("mode: %s, %d rounds (sides interleaved; ratios of the rates over all rounds)\n",
         C.quick ? "quick" : "full",
         C.rounds);
}

/* ------------------------------------------------------------------ write workloads */

typedef struct wres {
  side sd[W__N]; /* indexed by W_OPLOG .. W_LUA */
} wres;

#define CHUNKS 10

static const char *const W_FILES[W__N] = {"w_oplog.db", "w_bare.db", "w_same.db",
                                          "w_trig.db",  "w_sess.db", "w_lua.db"};

/* One write workload (W1, W1F, W2 or W2-1E, with its Lua twin when lua and
 * the TRIGGER and SESSION peers when peers). Every round opens each side on
 * a fresh file, then runs the transactions in CHUNKS chunks, the sides
 * taking turns chunk by chunk in a rotating order, so that changes in the
 * machine's load hit all sides alike. */
static wres write_workload(const char *label, int sync, long ntx, int per_tx, int multi,
                           size_t blob_len, int lua, int peers) {
  wres w;
  memset(&w, 0, sizeof w);
  for (int k = 0; k < W__N; k++) w.sd[k].name = SIDE_NAME[k];
  int base = want_side("base");
  int on[W__N] = {want_side("oplog"), base, base, peers && base, peers && base,
                  lua && want_side("oplog")};
  char paths[W__N][PATH_MAX + 32];
  for (int k = 0; k < W__N; k++) path_in(paths[k], sizeof paths[k], W_FILES[k]);
  double items = (double)ntx * per_tx;
  printf("%s: %ld transactions x %d rows (%s), sync=%s, entry data %zu bytes\n", label, ntx,
         per_tx, multi || per_tx == 1 ? "one entry per row" : "one entry per transaction",
         sync == OPLOG_SYNC_FULL ? "full" : "normal", blob_len);
  fflush(stdout);
  for (int r = 0; r < C.rounds; r++) {
    wside ws[W__N];
    double secs[W__N] = {0};
    for (int k = 0; k < W__N; k++)
      if (on[k]) ws_open(&ws[k], k, paths[k], sync, per_tx, multi, blob_len);
    for (int c = 0; c < CHUNKS; c++) {
      long n = ntx / CHUNKS + (c < ntx % CHUNKS);
      for (int j = 0; j < W__N && n > 0; j++) {
        int k = (c + r + j) % W__N; /* no side always runs first */
        if (on[k]) secs[k] += ws_run(&ws[k], n);
      }
    }
    for (int k = 0; k < W__N; k++) {
      if (!on[k]) continue;
      ws_close(&ws[k]);
      side_add(&w.sd[k], r, items, secs[k]);
      if (!C.keep) rm_db(paths[k]);
    }
  }
  for (int k = 0; k < W__N; k++) side_print(&w.sd[k], "rows");
  const side *so = &w.sd[W_OPLOG], *sb = &w.sd[W_BARE], *ss = &w.sd[W_SAME];
  if (on[W_OPLOG] && on[W_BARE]) {
    printf("    ratio oplog/BARE %.3f   oplog/SAME-SQL %.3f   SAME-SQL/BARE %.3f\n",
           ratio(side_rate(so), side_rate(sb)), ratio(side_rate(so), side_rate(ss)),
           ratio(side_rate(ss), side_rate(sb)));
    if (peers)
      printf("    peers to BARE: oplog %.3f   TRIGGER %.3f   SESSION %.3f\n",
             ratio(side_rate(so), side_rate(sb)), ratio(side_rate(&w.sd[W_TRIG]), side_rate(sb)),
             ratio(side_rate(&w.sd[W_SESS]), side_rate(sb)));
    print_paired("oplog/BARE", so, sb);
    print_paired("oplog/SAME-SQL", so, ss);
    if (peers) {
      print_paired("TRIGGER/BARE", &w.sd[W_TRIG], sb);
      print_paired("SESSION/BARE", &w.sd[W_SESS], sb);
    }
  }
  if (on[W_LUA]) print_paired("Lua/C", &w.sd[W_LUA], so);
  fflush(stdout);
  return w;
}

/* ------------------------------------------------------------------ WAL pages per commit */

#define PAGES_WARM 300   /* commits before counting */
#define PAGES_N 1024     /* commits counted: 4 x FLUSH_AT, so the catch-ups average out */
#define PAGES_SEGMENT 600 /* frames after which the WAL is emptied (auto-checkpoint: 1000) */

static int64_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* Salt-1 of the WAL header: a new value means the WAL was restarted. */
static uint32_t wal_salt(const char *wal) {
  unsigned char h[32];
  int fd = open(wal, O_RDONLY);
  if (fd < 0) return 0;
  ssize_t n = pread(fd, h, sizeof h, 0);
  close(fd);
  if (n != 32) return 0;
  return (uint32_t)h[16] << 24 | (uint32_t)h[17] << 16 | (uint32_t)h[18] << 8 | h[19];
}

/* Empties the WAL from a second connection (its own auto-checkpoint off). */
static void wal_truncate(sqlite3 *ck, const char *wal) {
  int nlog = -1, nckpt = -1;
  if (sqlite3_wal_checkpoint_v2(ck, "main", SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt) != SQLITE_OK)
    die("pages: checkpoint: %s", sqlite3_errmsg(ck));
  if (file_size(wal) != 0) die("pages: the WAL is not empty after a TRUNCATE checkpoint");
}

typedef struct pres {
  double avg;
  long commits, segments, restarts, max;
} pres;

/* WAL frames (pages) written per commit in the W1 shape (one row, one entry
 * per transaction, sync=normal) by one side, on a fresh file: PAGES_WARM
 * commits, then PAGES_N commits counted one by one from the WAL's size
 * ((size - 32) / (page size + 24) frames). A second connection empties the
 * WAL (TRUNCATE checkpoint) before counting and whenever it passes
 * PAGES_SEGMENT frames, so that the side's own auto-checkpoint (at 1000)
 * never runs; a commit during which the WAL was restarted anyway (its size
 * shrank or its salt changed) is not counted, and the count goes on in a
 * new segment. A count: free of timing noise. */
SIDE static pres wal_pages(int kind, size_t blob_len) {
  char path[PATH_MAX + 32], wal[PATH_MAX + 40];
  path_in(path, sizeof path, "w_pages.db");
  snprintf(wal, sizeof wal, "%s-wal", path);
  wside w;
  ws_open(&w, kind, path, OPLOG_SYNC_NORMAL, 1, 0, blob_len);
  ws_run(&w, PAGES_WARM);
  sqlite3 *ck = sq_open(path, OPLOG_SYNC_NORMAL);
  sq_exec(ck, "PRAGMA wal_autocheckpoint=0");
  int64_t fsz = sq_int(ck, "PRAGMA page_size") + 24;
  pres p = {0, 0, 0, 0, 0};
  long total = 0;
  while (p.commits < PAGES_N) {
    wal_truncate(ck, wal);
    p.segments++;
    int64_t prev = 0;
    uint32_t salt = 0;
    while (p.commits < PAGES_N && prev < PAGES_SEGMENT) {
      ws_run(&w, 1);
      int64_t sz = file_size(wal);
      if (sz < 32 || (sz - 32) % fsz != 0) die("pages: odd WAL size %lld", (long long)sz);
      int64_t frames = (sz - 32) / fsz;
      uint32_t s1 = wal_salt(wal);
      if (frames < prev || (salt && s1 != salt)) {
        p.restarts++;
        break;
      }
      salt = s1;
      long d = (long)(frames - prev);
      if (d > p.max) p.max = d;
      total += d;
      p.commits++;
      prev = frames;
    }
  }
  sqlite3_close(ck);
  ws_close(&w);
  rm_db(path);
  p.avg = (double)total / (double)p.commits;
  return p;
}

/* The W1 pages of every side there is (oplog, BARE, SAME-SQL, the peers). */
static void pages_w1(size_t len1, double *pages, double *pages_bare) {
  static const int kinds[] = {W_OPLOG, W_BARE, W_SAME, W_TRIG, W_SESS};
  printf("    WAL pages per commit (%d commits after %d; a count):", PAGES_N, PAGES_WARM);
  for (size_t i = 0, n = 0; i < sizeof kinds / sizeof *kinds; i++) {
    int k = kinds[i];
    if (!want_side(k == W_OPLOG ? "oplog" : "base")) continue;
    pres p = wal_pages(k, len1);
    printf("%s%s %.2f (max %ld)", n++ ? "  " : " ", k == W_OPLOG ? "oplog" : SIDE_NAME[k], p.avg, p.max);
    if (p.restarts) printf(" [%ld WAL restarts not counted]", p.restarts);
    if (k == W_OPLOG) *pages = p.avg;
    if (k == W_BARE) *pages_bare = p.avg;
  }
  printf("\n");
  if (*pages > 0 && *pages_bare > 0) printf("    pages oplog/BARE %.2f\n", *pages / *pages_bare);
  fflush(stdout);
}

/* ------------------------------------------------------------------ SAME-SQL against the core's SQL */

/* Every connection the process opens gets a statement trace (an SQLite
 * auto-extension: the oplog's own connection cannot be reached otherwise);
 * it records only while g_trace.on. */
static struct {
  int on;
  char **v;
  size_t n, cap;
} g_trace;

/* Part of a word for sql_norm: a space between two of these stays. */
static int sql_wordch(char c) {
  return c == '_' || c == '"' || c == '\'' || c == '`' || c == '?' || isalnum((unsigned char)c);
}

/* Statement text with parameters written `?`, whitespace folded to one
 * space between words and dropped elsewhere ("a , b" and "a,b" compare
 * equal). */
static char *sql_norm(const char *q) {
  size_t n = strlen(q);
  char *o = malloc(n + 1), *d = o;
  if (!o) die("nomem");
  int sp = 0;
  for (const char *p = q; *p;) {
    if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
      sp = 1;
      p++;
      continue;
    }
    if (sp && d > o && sql_wordch(d[-1]) && (sql_wordch(*p) || *p == ':' || *p == '@' || *p == '$'))
      *d++ = ' ';
    sp = 0;
    if (*p == '?' || ((*p == ':' || *p == '@' || *p == '$') && (p[1] == '_' || isalpha((unsigned char)p[1])))) {
      *d++ = '?';
      p++;
      while (*p == '_' || isalnum((unsigned char)*p)) p++;
      continue;
    }
    *d++ = *p++;
  }
  *d = 0;
  return o;
}

static int trace_cb(unsigned type, void *ctx, void *p, void *x) {
  (void)ctx;
  if (!g_trace.on || type != SQLITE_TRACE_STMT) return 0;
  const char *q = (const char *)x;
  if (q && strncmp(q, "--", 2) == 0) return 0; /* a trigger's body */
  q = sqlite3_sql((sqlite3_stmt *)p);
  if (!q) return 0;
  if (g_trace.n == g_trace.cap) {
    g_trace.cap = g_trace.cap ? g_trace.cap * 2 : 4096;
    g_trace.v = realloc(g_trace.v, g_trace.cap * sizeof *g_trace.v);
    if (!g_trace.v) die("nomem");
  }
  g_trace.v[g_trace.n++] = sql_norm(q);
  return 0;
}

static int trace_ext(sqlite3 *db, char **err, const void *api) {
  (void)err, (void)api;
  sqlite3_trace_v2(db, SQLITE_TRACE_STMT, trace_cb, NULL);
  return SQLITE_OK;
}

typedef struct sqlrun {
  char **v;
  size_t n;
} sqlrun;

/* The statements one side issues for ntx transactions on a fresh file. */
static sqlrun trace_side(int kind, int per_tx, int multi, long ntx, size_t blob_len) {
  char p[PATH_MAX + 32];
  wside w;
  path_in(p, sizeof p, "w_trace.db");
  ws_open(&w, kind, p, OPLOG_SYNC_NORMAL, per_tx, multi, blob_len);
  g_trace.n = 0;
  g_trace.on = 1;
  ws_run(&w, ntx);
  g_trace.on = 0;
  ws_close(&w);
  rm_db(p);
  sqlrun r = {g_trace.v, g_trace.n};
  g_trace.v = NULL;
  g_trace.n = g_trace.cap = 0;
  return r;
}

static void sqlrun_free(sqlrun *r) {
  for (size_t i = 0; i < r->n; i++) free(r->v[i]);
  free(r->v);
}

/* How many times s occurs in r. */
static size_t sql_count(const sqlrun *r, const char *s) {
  size_t c = 0;
  for (size_t i = 0; i < r->n; i++) c += strcmp(r->v[i], s) == 0;
  return c;
}

/* Compares the statements of the oplog side and of SAME-SQL for the same
 * transactions, in order. Returns 1 when they are the same. */
static int sql_compare(const char *label, int per_tx, int multi, long ntx, size_t blob_len) {
  sqlrun a = trace_side(W_OPLOG, per_tx, multi, ntx, blob_len);
  sqlrun b = trace_side(W_SAME, per_tx, multi, ntx, blob_len);
  size_t i = 0;
  while (i < a.n && i < b.n && strcmp(a.v[i], b.v[i]) == 0) i++;
  int same = i == a.n && i == b.n;
  if (same) {
    printf("    %s: %zu statements in %ld transactions, the same in the same order\n", label, a.n, ntx);
  } else {
    printf("    %s: DIFFERENT (core %zu statements, SAME-SQL %zu, first difference at #%zu:\n"
           "      core: %s\n      SAME-SQL: %s)\n",
           label, a.n, b.n, i + 1, i < a.n ? a.v[i] : "(end)", i < b.n ? b.v[i] : "(end)");
    printf("      count core / SAME-SQL of each statement that differs:\n");
    for (int side = 0; side < 2; side++) {
      const sqlrun *x = side ? &b : &a;
      for (size_t k = 0; k < x->n; k++) {
        int seen = 0; /* first occurrence in a, or in b but not in a */
        for (size_t j = 0; j < k && !seen; j++) seen = strcmp(x->v[j], x->v[k]) == 0;
        if (seen || (side && sql_count(&a, x->v[k]))) continue;
        size_t ca = sql_count(&a, x->v[k]), cb = sql_count(&b, x->v[k]);
        if (ca != cb) printf("      %6zu / %-6zu %.200s\n", ca, cb, x->v[k]);
      }
    }
  }
  sqlrun_free(&a);
  sqlrun_free(&b);
  return same;
}

/* The SAME-SQL check: W1 over 600 transactions and W2 over 6 (600 entries
 * each, so two catch-ups of the derived tables). */
static int sql_check(size_t len1) {
  printf("SAME-SQL against the core's statements (sqlite3_trace_v2 on every connection):\n");
  fflush(stdout);
  sqlite3_auto_extension((void (*)(void))trace_ext);
  int ok = sql_compare("W1", 1, 0, 600, len1);
  ok &= sql_compare("W2", W2_BATCH, 1, 6, len1);
  sqlite3_cancel_auto_extension((void (*)(void))trace_ext);
  fflush(stdout);
  return ok;
}

/* Entry data length of 1-op and W2_BATCH-op entries, measured on real oplog
 * files (the SAME-SQL blobs must have that length); doubles as a warm-up.
 * Also says which format the core writes, and checks on a format-2 file
 * that the core's metadata blobs have the length SAME-SQL writes. */
static void calibrate(size_t *len1, size_t *len2, int *format2) {
  char p[PATH_MAX + 32];
  wside w;
  path_in(p, sizeof p, "w_calib.db");
  ws_open(&w, W_OPLOG, p, OPLOG_SYNC_NORMAL, 1, 0, 0);
  ws_run(&w, 200);
  ws_close(&w);
  *len1 = data_len_of(p);
  *format2 = core_is_format2(p);
  if (*format2) {
    sqlite3 *s = sq_open(p, OPLOG_SYNC_NORMAL);
    double ml = sq_double(s, "SELECT avg(length(metadata)) FROM oplog_entries");
    sqlite3_close(s);
    if (llround(ml) != META_BLOB_LEN)
      printf("note: the core's metadata blobs are %.1f bytes, SAME-SQL writes %d: update the bench\n",
             ml, META_BLOB_LEN);
  }
  ws_open(&w, W_OPLOG, p, OPLOG_SYNC_NORMAL, W2_BATCH, 0, 0);
  ws_run(&w, 20);
  ws_close(&w);
  *len2 = data_len_of(p);
  rm_db(p);
}

/* ------------------------------------------------------------------ sync: imp, nff, exp
 * IMP: a fast-forward import of a log written like W2 (100 entries per
 * transaction, high-level API) into a fresh file, as a ratio to the rate
 * at which that same log was written, in this run. EXP: export of that log
 * as a ratio to reading it entry by entry (decrypted and decoded, what
 * dump does before printing). NFF: a non-fast-forward import of a batch
 * (1,000 entries; 100 in quick mode) into a log of big_n entries whose
 * last batch of its own entries it sorts among, as a ratio to the time of
 * a full replay of that log. Each in-process, timed around the one call. */

static int sync_fwrite(void *ctx, const void *p, size_t n) { return fwrite(p, 1, n, (FILE *)ctx) == n ? 0 : 1; }

static int sync_fread(void *ctx, void *p, size_t n, size_t *got) {
  *got = fread(p, 1, n, (FILE *)ctx);
  return ferror((FILE *)ctx) ? 1 : 0;
}

static void origin_hex(oplog_db *db, char hex[65]) {
  oplog_origin_info oi;
  OK(db, oplog_origin(db, &oi));
  sodium_bin2hex(hex, 65, oi.id, 32);
}

/* Writes n entries through the high-level API, W2_BATCH per transaction:
 * creates of ids from..from+n-1, or (update) updates of the value of those
 * ids. Returns the seconds spent in the calls. */
static double sync_write(oplog_db *db, int64_t from, long n, int update) {
  brow r;
  bop o;
  int64_t eid;
  double secs = 0;
  for (long i = 0; i < n;) {
    double t0 = now();
    OK(db, oplog_tx_begin(db, "items"));
    for (int k = 0; k < W2_BATCH && i < n; k++, i++) {
      row_make(from + i, &r);
      op_make(&r, &o);
      if (update) {
        static const char *const mask[] = {"value"};
        o.f[1] = o.f[2];
        o.f[1].value.u.r = r.value + 1;
        o.op.row.nfields = 2;
        o.op.kind = OPLOG_OP_UPDATE;
        o.op.mask = mask;
        o.op.nmask = 1;
      }
      OK(db, oplog_tx_apply(db, &o.op));
      OK(db, oplog_tx_entry(db, META, 2, &eid));
    }
    OK(db, oplog_tx_commit(db, NULL, 0, &eid));
    secs += now() - t0;
  }
  return secs;
}

/* Exports what `from` holds beyond `to`'s cursor into path; returns seconds. */
static double sync_export(oplog_db *from, oplog_db *to, const char *path, int64_t *entries) {
  char hex[65], *cursor = NULL;
  origin_hex(to, hex);
  OK(to, oplog_cursor(to, &cursor));
  FILE *f = fopen(path, "wb");
  if (!f) die("%s: %s", path, strerror(errno));
  oplog_export_opts eo;
  memset(&eo, 0, sizeof eo);
  eo.to = hex;
  eo.since = cursor;
  oplog_export_result er;
  double t0 = now();
  OK(from, oplog_export(from, &eo, sync_fwrite, f, &er));
  double secs = now() - t0;
  if (fclose(f) != 0) die("%s: write failed", path);
  oplog_free(cursor);
  *entries = er.entries;
  return secs;
}

static double sync_import(oplog_db *db, const char *path, oplog_import_result *res) {
  FILE *f = fopen(path, "rb");
  if (!f) die("%s: %s", path, strerror(errno));
  double t0 = now();
  OK(db, oplog_import(db, NULL, sync_fread, f, res));
  double secs = now() - t0;
  fclose(f);
  return secs;
}

static void bench_sync(double *imp, double *exp_ratio, double *nff) {
  char ps[PATH_MAX + 32], pt[PATH_MAX + 32], pst[PATH_MAX + 32];
  path_in(ps, sizeof ps, "sync_src.db");
  path_in(pt, sizeof pt, "sync_dst.db");
  path_in(pst, sizeof pst, "sync.stream");
  long imp_n = C.quick ? 2000 : 100000;
  *imp = *exp_ratio = *nff = NAN;

  if (want("imp")) {
    rm_db(ps);
    rm_db(pt);
    oplog_db *src = ol_open(ps, OPLOG_SYNC_NORMAL, 1), *dst = ol_open(pt, OPLOG_SYNC_NORMAL, 1);
    ol_define(src);
    double wsecs = sync_write(src, 1, imp_n, 0);
    int64_t n = 0;
    double esecs = sync_export(src, dst, pst, &n);
    if (n != imp_n) die("imp: exported %lld entries, expected %ld", (long long)n, imp_n);
    /* reading every entry, decrypted and decoded */
    double t0 = now();
    oplog_iter *it;
    const oplog_entry *e;
    long read = 0;
    OK(src, oplog_entries(src, NULL, &it));
    for (;;) {
      int rc = oplog_iter_next(it, &e);
      if (rc != OPLOG_OK) die("imp: reading: %s", oplog_code_name(rc));
      if (!e) break;
      read++;
    }
    oplog_iter_close(it);
    double rsecs = now() - t0;
    oplog_import_result res;
    double isecs = sync_import(dst, pst, &res);
    if (res.entries != imp_n || res.conflicts != 0)
      die("imp: imported %lld entries (%lld conflicts), expected %ld", (long long)res.entries,
          (long long)res.conflicts, imp_n);
    printf("IMP fast-forward import of %ld entries: %.0f entries/s; written at %.0f entries/s (W2's shape)\n",
           imp_n, imp_n / isecs, imp_n / wsecs);
    printf("EXP export: %.0f entries/s; reading them (decrypt+decode) %.0f entries/s (%ld)\n", n / esecs,
           read / rsecs, read);
    *imp = ratio(imp_n / isecs, imp_n / wsecs);
    *exp_ratio = ratio(n / esecs, read / rsecs);
    OK(src, oplog_close(src));
    OK(dst, oplog_close(dst));
    if (!C.keep) {
      rm_db(ps);
      rm_db(pt);
    }
    unlink(pst);
    fflush(stdout);
  }

  if (want("nff")) {
    /* Device D writes big_n - batch entries; E joins it (a fast-forward
     * import of everything), then both write `batch` more: D creates new
     * rows, E updates recent ones. E's batch then lands among D's newest
     * entries in the total order. */
    long big = C.big_n, batch = C.quick ? 100 : 1000;
    rm_db(ps);
    rm_db(pt);
    oplog_db *d = ol_open(ps, OPLOG_SYNC_NORMAL, 1), *e = ol_open(pt, OPLOG_SYNC_NORMAL, 1);
    ol_define(d);
    printf("NFF data set: %ld entries, high-level API\n", big);
    fflush(stdout);
    double t0 = now();
    sync_write(d, 1, big - batch, 0);
    int64_t n = 0;
    sync_export(d, e, pst, &n);
    oplog_import_result res;
    sync_import(e, pst, &res);
    sync_write(d, big - batch + 1, batch, 0);
    sync_write(e, big - batch - 5 * batch, batch, 1);
    printf("    built in %.1f s\n", now() - t0);
    sync_export(e, d, pst, &n);
    if (n != batch) die("nff: exported %lld entries, expected %ld", (long long)n, batch);
    double isecs = sync_import(d, pst, &res);
    if (res.entries != batch) die("nff: imported %lld entries, expected %ld", (long long)res.entries, batch);
    /* a full replay of the log it landed in */
    oplog_replay_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.suffix = "_nff";
    oplog_replay_result rr;
    t0 = now();
    OK(d, oplog_replay(d, &ro, &rr));
    double rsecs = now() - t0;
    oplog_verify_opts vo;
    memset(&vo, 0, sizeof vo);
    vo.replay = 1;
    oplog_verify_result vr;
    if (C.quick) {
      /* the merged file must be what a replay gives */
      OK(d, oplog_verify(d, &vo, NULL, NULL, &vr));
      if (!vr.ok) die("nff: the merged file does not verify with replay");
    }
    printf("NFF non-fast-forward import of %ld entries into %lld: %.3f s (%lld conflicts); full replay %.3f s\n",
           batch, (long long)rr.entries, isecs, (long long)res.conflicts, rsecs);
    *nff = ratio(isecs, rsecs);
    OK(d, oplog_close(d));
    OK(e, oplog_close(e));
    if (!C.keep) {
      rm_db(ps);
      rm_db(pt);
    }
    unlink(pst);
    fflush(stdout);
  }
}

/* ------------------------------------------------------------------ main */

static void usage(void) {
  fprintf(stderr,
          "usage: oplog_bench [--quick] [--dir DIR] [--rounds N] [--keep]\n"
          "                   [--only sql,w1,w1f,w2,w2e,l1,l2,w3,w4,w5,open,imp,nff,ship] [--side oplog|base]\n"
          "                   [--fake KEY=VALUE]... [--drift-same-sql] [--big N]\n");
  exit(2);
}

/* The figures of the last line, in its order. ran: the run was asked to
 * measure it (nan is then a failure); pages: a count of pages per commit,
 * at least 1 (every commit writes a page). */
enum {
  F_W1, F_W1F, F_W2, F_W2BARE, F_W3, F_W4, F_W5, F_LUA1, F_LUA2, F_OPEN, F_RSS, F_PAGES,
  F_PAGES_BARE, F_TRIG_W1, F_SESS_W1, F_TRIG_W1F, F_SESS_W1F, F_TRIG_W2, F_SESS_W2, F_IMP, F_NFF,
  F_EXP, F_SHIP, F__N
};
static struct fig {
  const char *key;
  int decimals, pages, ran;
  double v;
} FIG[F__N] = {
    [F_W1] = {"w1", 3},          [F_W1F] = {"w1f", 3},         [F_W2] = {"w2", 3},
    [F_W2BARE] = {"w2bare", 3},  [F_W3] = {"w3", 3},           [F_W4] = {"w4", 3},
    [F_W5] = {"w5", 3},          [F_LUA1] = {"lua1", 3},       [F_LUA2] = {"lua2", 3},
    [F_OPEN] = {"open_ms", 2},   [F_RSS] = {"rss_mb", 1},      [F_PAGES] = {"pages", 2, 1},
    [F_PAGES_BARE] = {"pages_bare", 2, 1},
    [F_TRIG_W1] = {"trig_w1", 3}, [F_SESS_W1] = {"sess_w1", 3}, [F_TRIG_W1F] = {"trig_w1f", 3},
    [F_SESS_W1F] = {"sess_w1f", 3}, [F_TRIG_W2] = {"trig_w2", 3}, [F_SESS_W2] = {"sess_w2", 3},
    [F_IMP] = {"imp", 3},        [F_NFF] = {"nff", 4},         [F_EXP] = {"exp", 3},
    [F_SHIP] = {"ship", 3},
};

static void fig_set(int f, int ran, double v) {
  FIG[f].ran = ran;
  FIG[f].v = v;
}

/* --fake KEY=VALUE: sets a figure (and marks it run) before the check, so
 * that a test can see the check fail. */
static void fig_fake(const char *kv) {
  const char *eq = strchr(kv, '=');
  for (int f = 0; eq && f < F__N; f++)
    if (strlen(FIG[f].key) == (size_t)(eq - kv) && strncmp(kv, FIG[f].key, (size_t)(eq - kv)) == 0) {
      fig_set(f, 1, strtod(eq + 1, NULL));
      return;
    }
  die("--fake %s: no such figure", kv);
}

/* A figure that was run must be a positive number (a ratio of two rates,
 * milliseconds, megabytes), and a page count at least 1. */
static int fig_possible(const struct fig *g) {
  if (!g->ran) return 1;
  return isfinite(g->v) && g->v > 0 && (!g->pages || g->v >= 1);
}

int main(int argc, char **argv) {
  const char *child = NULL;
  const char *fakes[32];
  int nfakes = 0;
  long child_n = 0;
  int child_round = 0;
  int rounds = 0;
  long big_arg = 0;
  snprintf(C.dir, sizeof C.dir, "bench-data");
  for (int f = 0; f < F__N; f++) FIG[f].v = NAN;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
    if (strcmp(a, "--quick") == 0) C.quick = 1;
    else if (strcmp(a, "--keep") == 0) C.keep = 1;
    else if (strcmp(a, "--dir") == 0 && v) snprintf(C.dir, sizeof C.dir, "%s", argv[++i]);
    else if (strcmp(a, "--rounds") == 0 && v) rounds = atoi(argv[++i]);
    else if (strcmp(a, "--big") == 0 && v) big_arg = atol(argv[++i]);
    else if (strcmp(a, "--only") == 0 && v) C.only = argv[++i];
    else if (strcmp(a, "--side") == 0 && v) C.side = argv[++i];
    else if (strcmp(a, "--fake") == 0 && v && nfakes < 32) fakes[nfakes++] = argv[++i];
    else if (strcmp(a, "--drift-same-sql") == 0) C.drift = 1;
    else if (strcmp(a, "--child") == 0 && v) child = argv[++i];
    else if (strcmp(a, "--n") == 0 && v) child_n = atol(argv[++i]);
    else if (strcmp(a, "--round") == 0 && v) child_round = atoi(argv[++i]);
    else usage();
  }
  if (sodium_init() < 0) die("sodium_init failed");
  data_init();
  path_in(C.keyfile, sizeof C.keyfile, "bench.key");
  path_in(g_ds, sizeof g_ds, "dataset.db");
  path_in(g_base, sizeof g_base, "baseline.db");
  if (child) return child_main(child, child_n, child_round);

  if (mkdir(C.dir, 0700) != 0 && errno != EEXIST) die("%s: %s", C.dir, strerror(errno));
  ssize_t sl = readlink("/proc/self/exe", C.self, sizeof C.self - 1);
  if (sl <= 0) die("readlink /proc/self/exe: %s", strerror(errno));
  C.self[sl] = 0;
  write_keyfile();
  /* Fixed sizes: full mode runs each timed measurement for roughly 1-5 s on
   * a 2-core VM; quick mode only proves that the harness works. The WAL
   * page counts are the same in both modes. */
  if (C.quick) {
    C.rounds = 2;
    C.w1_n = 300;
    C.w1f_n = 20;
    C.w2_tx = 20;
    C.big_n = 2000;
  } else {
    C.rounds = 3;
    C.w1_n = 100000;
    C.w1f_n = 3000;
    C.w2_tx = 3000;
    C.big_n = 1000000;
  }
  if (rounds > 0) C.rounds = rounds < 16 ? rounds : 16;
  if (big_arg >= 2000) C.big_n = big_arg; /* profiling a size other than the mode's */
  print_machine();

  size_t len1 = 0, len2 = 0;
  int format2 = 0;
  if (want_side("base")) { /* only SAME-SQL needs them (skipped for profiling) */
    calibrate(&len1, &len2, &format2);
    if (!format2) die("the core does not write format 2: SAME-SQL cannot run on its files");
    printf("entry data: %zu bytes for 1 op, %zu bytes for %d ops; metadata %d bytes\n", len1, len2,
           W2_BATCH, META_BLOB_LEN);
  }
  int both = !C.side; /* a ratio of the oplog to a baseline needs both sides */
  /* SAME-SQL must never drift from the core: whenever it runs beside the
   * oplog (or `sql` is asked for), its statements are checked against the
   * core's first, and a difference fails the run before anything is
   * measured. A --side run (profiling: callgrind would count the check's
   * runs too) skips the check and says so. */
  int same_runs = want("w1") || want("l1") || want("w1f") || want("w2") || want("w2e") || want("l2");
  if (both && (want("sql") || same_runs)) {
    if (!sql_check(len1)) {
      fprintf(stderr, "bench: SAME-SQL is not the core's SQL (first difference above): make run_same_sql "
                      "and its statements in ws_open (tests/bench/bench.c) issue the core's statements\n");
      if (!C.keep) {
        unlink(C.keyfile);
        rmdir(C.dir);
      }
      return 2;
    }
  } else if (want_side("base") && (want("sql") || same_runs)) {
    printf("SAME-SQL against the core's statements: not checked (--side %s)\n", C.side);
  }

  if (want("w1") || want("l1")) {
    wres w = write_workload("W1/L1", OPLOG_SYNC_NORMAL, C.w1_n, 1, 0, len1, want("l1"), 1);
    const side *b = &w.sd[W_BARE];
    fig_set(F_W1, both, ratio(side_rate(&w.sd[W_OPLOG]), side_rate(b)));
    fig_set(F_TRIG_W1, want_side("base"), ratio(side_rate(&w.sd[W_TRIG]), side_rate(b)));
    fig_set(F_SESS_W1, want_side("base"), ratio(side_rate(&w.sd[W_SESS]), side_rate(b)));
    fig_set(F_LUA1, want("l1") && want_side("oplog"),
            ratio(side_rate(&w.sd[W_LUA]), side_rate(&w.sd[W_OPLOG])));
    if (want("l1")) printf("    ratio Lua/C %.3f\n", FIG[F_LUA1].v);
    if (want("w1")) {
      double pg = NAN, pgb = NAN;
      pages_w1(len1, &pg, &pgb);
      fig_set(F_PAGES, want_side("oplog"), pg);
      fig_set(F_PAGES_BARE, want_side("base"), pgb);
    }
  }
  if (want("w1f")) {
    wres w = write_workload("W1F", OPLOG_SYNC_FULL, C.w1f_n, 1, 0, len1, 0, 1);
    const side *b = &w.sd[W_BARE];
    fig_set(F_W1F, both, ratio(side_rate(&w.sd[W_OPLOG]), side_rate(b)));
    fig_set(F_TRIG_W1F, want_side("base"), ratio(side_rate(&w.sd[W_TRIG]), side_rate(b)));
    fig_set(F_SESS_W1F, want_side("base"), ratio(side_rate(&w.sd[W_SESS]), side_rate(b)));
  }
  /* W2 is 100 entries (one row each) per SQLite transaction. Lua takes part
   * when its binding has tx:entry; otherwise L2 is measured on the closest
   * form Lua has, one entry of 100 rows per transaction (W2-1E), against
   * the C path doing the same. */
  int lua_multi = 0;
  if (want("l2")) {
    char pp[PATH_MAX + 32];
    path_in(pp, sizeof pp, "w_probe.db");
    lua_multi = lua_has_tx_entry(pp);
  }
  if (want("w2") || (want("l2") && lua_multi)) {
    int l2 = want("l2") && lua_multi;
    wres w = write_workload("W2/L2", OPLOG_SYNC_NORMAL, C.w2_tx, W2_BATCH, 1, len1, l2, 1);
    const side *o = &w.sd[W_OPLOG], *b = &w.sd[W_BARE];
    fig_set(F_W2, both, ratio(side_rate(o), side_rate(&w.sd[W_SAME])));
    fig_set(F_W2BARE, both, ratio(side_rate(o), side_rate(b)));
    fig_set(F_TRIG_W2, want_side("base"), ratio(side_rate(&w.sd[W_TRIG]), side_rate(b)));
    fig_set(F_SESS_W2, want_side("base"), ratio(side_rate(&w.sd[W_SESS]), side_rate(b)));
    if (l2) {
      fig_set(F_LUA2, want_side("oplog"), ratio(side_rate(&w.sd[W_LUA]), side_rate(o)));
      printf("    ratio Lua/C %.3f\n", FIG[F_LUA2].v);
    }
  }
  if (want("w2e") || (want("l2") && !lua_multi)) {
    int l2 = want("l2") && !lua_multi;
    wres e = write_workload("W2-1E (informational)", OPLOG_SYNC_NORMAL, C.w2_tx, W2_BATCH, 0, len2,
                            l2, 0);
    if (l2) {
      fig_set(F_LUA2, want_side("oplog"), ratio(side_rate(&e.sd[W_LUA]), side_rate(&e.sd[W_OPLOG])));
      printf("    ratio Lua/C %.3f (the Lua binding has no tx:entry: L2 measured on W2-1E)\n",
             FIG[F_LUA2].v);
    }
  }

  int big = want("w3") || want("w4") || want("w5") || want("open");
  long max_hwm = 0;
  if (big) {
    printf("data set: %ld entries, %d per transaction (low-level API), sync=normal\n", C.big_n,
           BUILD_BATCH);
    fflush(stdout);
    cres b = spawn("build", C.big_n, 0);
    printf("    built in %.1f s (%.0f entries/s written)\n", b.secs, (double)C.big_n / b.secs);
    struct {
      const char *key, *label, *o, *b, *unit;
      int fig;
    } big_w[] = {
        {"w3", "W3 read+decrypt all entries", "w3o", "w3b", "entries", F_W3},
        {"w5", "W5 verify chain without key", "w5o", "w5b", "entries", F_W5},
        /* last: replay adds tables to the data set file */
        {"w4", "W4 replay into suffix tables", "w4o", "w4b", "ops", F_W4},
    };
    for (size_t k = 0; k < sizeof big_w / sizeof *big_w; k++) {
      if (!want(big_w[k].key)) continue;
      side so, sb;
      memset(&so, 0, sizeof so);
      memset(&sb, 0, sizeof sb);
      so.name = "oplog";
      sb.name = "baseline";
      printf("%s: %ld\n", big_w[k].label, C.big_n);
      fflush(stdout);
      for (int r = 0; r < C.rounds; r++)
        for (int j = 0; j < 2; j++) {
          int oplog_side = (r % 2 == 0) ? (j == 0) : (j == 1);
          if (oplog_side && want_side("oplog")) {
            cres c = spawn(big_w[k].o, C.big_n, r + 1);
            side_add(&so, r, (double)C.big_n, c.secs);
            if (c.hwm_kb > so.hwm_kb) so.hwm_kb = c.hwm_kb;
          } else if (!oplog_side && want_side("base")) {
            cres c = spawn(big_w[k].b, C.big_n, r + 1);
            side_add(&sb, r, (double)C.big_n, c.secs);
            if (c.hwm_kb > sb.hwm_kb) sb.hwm_kb = c.hwm_kb;
          }
        }
      side_print(&so, big_w[k].unit);
      side_print(&sb, big_w[k].unit);
      fig_set(big_w[k].fig, both, ratio(side_rate(&so), side_rate(&sb)));
      printf("    ratio oplog/baseline %.3f\n", FIG[big_w[k].fig].v);
      print_paired("oplog/baseline", &so, &sb);
      if (so.hwm_kb > max_hwm) max_hwm = so.hwm_kb;
      fflush(stdout);
    }
    fig_set(F_RSS, (want("w3") || want("w4") || want("w5")) && want_side("oplog"),
            max_hwm > 0 ? (double)max_hwm / 1024.0 : NAN);
    if (want("w4") && !C.keep) {
      /* the replayed copies are not needed any more */
      sqlite3 *s = sq_open(g_ds, OPLOG_SYNC_NORMAL);
      sqlite3 *t = sq_open(g_base, OPLOG_SYNC_NORMAL);
      char sql[64];
      for (int r = 1; r <= C.rounds; r++) {
        snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS item_r%d", r);
        sq_exec(s, sql);
        snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS item_b%d", r);
        sq_exec(t, sql);
      }
      sqlite3_close(s);
      sqlite3_close(t);
    }
    if (want("open")) {
      double firsts[5];
      double later = 0;
      for (int i = 0; i < 5; i++) {
        cres c = spawn("open", 0, 0);
        firsts[i] = c.secs * 1e3;
        later += c.extra * 1e3 / 5;
      }
      for (int i = 1; i < 5; i++)
        for (int j = i; j > 0 && firsts[j] < firsts[j - 1]; j--) {
          double x = firsts[j];
          firsts[j] = firsts[j - 1];
          firsts[j - 1] = x;
        }
      fig_set(F_OPEN, 1, firsts[2]);
      printf("open with key file (%ld-entry file): first open in a fresh process %.3f ms "
             "(median of 5), later opens %.3f ms\n",
             C.big_n, FIG[F_OPEN].v, later);
    }
    if (!C.keep) {
      rm_db(g_ds);
      rm_db(g_base);
    }
  }
  if (want("imp") || want("nff")) {
    double imp, expr, nff;
    bench_sync(&imp, &expr, &nff);
    fig_set(F_IMP, want("imp") && want_side("oplog"), imp);
    fig_set(F_EXP, want("imp") && want_side("oplog"), expr);
    fig_set(F_NFF, want("nff") && want_side("oplog"), nff);
  }
  if (want("ship")) {
    double r = bench_ship();
    /* nan (not run) without a server: only a measured figure is checked */
    fig_set(F_SHIP, want_side("oplog") && !isnan(r), r);
  }
  if (!C.keep) {
    unlink(C.keyfile);
    rmdir(C.dir); /* only if empty: never removes what the user put there */
  }
  printf("targets: w1>=0.35 w1f>=0.95 w2>=0.8 w2bare>=0.25 w3>=0.5 w4>=0.5 w5>=0.5 "
         "lua1>=0.7 lua2>=0.7 open_ms<=5 rss_mb<=32 imp>=0.5 nff<=0.05 exp>=1 ship>=0.5\n");
  for (int i = 0; i < nfakes; i++) fig_fake(fakes[i]);
  /* an impossible figure fails the run (said before the last line, which
   * stays last) */
  int bad = 0;
  for (int f = 0; f < F__N; f++)
    if (!fig_possible(&FIG[f]))
      fprintf(stderr, "%s %s=%.*f", bad++ ? "" : "bench: impossible figure(s):", FIG[f].key,
              FIG[f].decimals, FIG[f].v);
  if (bad) fprintf(stderr, " (a figure that was run must be a positive number, pages at least 1)\n");
  fflush(stderr);
  /* the last line: every figure, nan for those not run */
  printf("bench:");
  for (int f = 0; f < F__N; f++) printf(" %s=%.*f", FIG[f].key, FIG[f].decimals, FIG[f].v);
  printf("\n");
  return bad ? 1 : 0;
}
