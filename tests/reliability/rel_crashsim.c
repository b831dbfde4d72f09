/*
 * rel_crashsim.c — the power cut swept over every point of the workloads
 * that change the file (rel_crashvfs.h simulates the disk), after SQLite's
 * crash tests.
 *
 * A workload is a list of steps (open, a transaction, a low-level write, a
 * key rotation, a rekey, a define, the migration of a format-1 file,
 * close). For each, a dry run counts its points (xWrite, xTruncate, xSync,
 * xDelete of the database, -wal and -journal, across files); then, for
 * N = 1 .. points + 1 (the last: after the whole workload), a forked child
 * runs it on a fresh copy of its base file through the simulator, counting
 * each step that returned OK (acknowledged) in shared memory, and the power
 * is cut right before point N: KILL (a process kill: the kernel keeps every
 * write), DISCARD (every write no sync made durable is lost) or TEAR (a
 * random, seeded subset of the unsynced 512-byte sectors reaches the disk,
 * each in one of its versions since the sync). The -shm goes with the power.
 *
 * Then another child reopens the files with the normal VFS and checks:
 *  - PRAGMA integrity_check on a raw read-only connection first;
 *  - the file's state (keys and which is active, which root key opens the
 *    file, types and live tables, each entry written by the workload with
 *    its seq and data key, how far the derived tables reach) is a model's
 *    state after exactly the first j steps, for some j: no step is half
 *    there;
 *  - with sync = "full" (and after a process kill, with either sync),
 *    j >= the steps acknowledged: nothing acknowledged is lost; j is at
 *    most one more (the step cut in its middle, kept or not as a whole);
 *  - with sync = "normal", the steps lost are the newest only: j >= the
 *    steps acknowledged before the -wal's last sync (SQLite syncs it at
 *    each checkpoint), and everything is there once close returned;
 *  - verify with replay: no problem (chain, hashes, decryption, derived
 *    tables, live tables = the replayed log); every aggregate's ticket is
 *    1 + its entries; the workload invariants (rel_check_workload); one
 *    active key; the file takes a new transaction, which reads back;
 *  - the migration: the file is format 1 unchanged or format 2 complete
 *    (rel_v1.h), and format 2 once the open that migrates it returned.
 * A violation is a FINDING (the sweep goes on); the program fails at the
 * end if there was any.
 *
 * The workloads (steps in `workloads` below): entries (250 entries whose
 * derived tables never caught up, then transactions of 1 and 2 entries, a
 * low-level write of 2, the 256th entry which catches them up, one more),
 * rotate, rekey, define (a new aggregate, a composite key), migrate (the
 * format-1 fixture), create (a new file); each ends with close. There is
 * no import workload: import does not exist yet.
 *
 * Knobs: REL_SEED; REL_CRASH_WORKLOADS (entries,rotate,rekey,define,
 * migrate,create), REL_CRASH_MODES (kill,discard,tear), REL_CRASH_SYNC
 * (full,normal); REL_STRIDE (1: every point; k: every k-th, each mode and
 * sync shifted so that together they cover more points; the last point is
 * always taken), REL_FIRST / REL_LAST (points N..M); REL_VERBOSE (1: point
 * counts, 2: every run).
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rel_common.h"
#include "rel_crashvfs.h"
#include "rel_v1.h"

#define WORKER 7 /* the worker id of the workloads' entries */

/* What the child tells the parent, in shared memory. */
typedef struct shared {
  int64_t acks;    /* steps that returned OK */
  int64_t durable; /* acks at the last sync of a -wal */
  int64_t points;  /* points the whole workload counted */
  int64_t j;       /* the checker: the most steps the file may hold */
  int inflight;    /* the checker: the step cut in its middle kept (1), lost (0), -1 */
  int done;        /* the workload ran to its end */
  rel_cut_stats cut;
} shared;
static shared *SH;
/* The handle a child leaves open when its power is cut: reachable from
 * here, so that valgrind's leak check does not count it as lost. */
static oplog_db *g_abandoned;

/* The rekey step's new root key. */
static const unsigned char key2[32] = {'c', 'r', 'a', 's', 'h', 's', 'i', 'm', '-', 'n', 'e',
                                       'w', '-', 'r', 'o', 'o', 't', '-', 'k', 'e', 'y', '-',
                                       '0', '0', '0', '0', '0', '0', '0', '0', '0', '2'};

/* ---------------------------------------------------------------- steps */

enum step_kind {
  S_OPEN,   /* open the file (creates it, or migrates a format-1 file) */
  S_CLOSE,  /* oplog_close: derived tables brought up to date, checkpoint */
  S_TX,     /* a transaction on agg_p: n entries (tx_entry between) */
  S_LOW,    /* oplog_begin, n x oplog_write_entry on agg_q, oplog_commit */
  S_ROTATE, /* oplog_rotate_key */
  S_REKEY,  /* oplog_rekey to key2 */
  S_DEFINE, /* oplog_define of the type named in `what` */
  S_TX_D    /* a transaction on agg_d: a doc, and a line if n = 2 */
};

typedef struct step {
  enum step_kind kind;
  int n;
  const char *what;
} step;

typedef struct workload {
  const char *name;
  const char *base; /* the base file's name in dir; NULL: none (create, migrate) */
  const step *steps;
  int nsteps;
  int migrate; /* the format-1 fixture, its own checks */
} workload;

static const step st_entries[] = {{S_OPEN, 0, 0}, {S_TX, 1, 0}, {S_LOW, 2, 0}, {S_TX, 2, 0},
                                  {S_TX, 1, 0},   {S_TX, 1, 0}, {S_CLOSE, 0, 0}};
static const step st_rotate[] = {{S_OPEN, 0, 0}, {S_TX, 1, 0}, {S_ROTATE, 0, 0}, {S_TX, 1, 0},
                                 {S_ROTATE, 0, 0}, {S_TX, 1, 0}, {S_CLOSE, 0, 0}};
static const step st_rekey[] = {{S_OPEN, 0, 0}, {S_TX, 1, 0}, {S_REKEY, 0, 0}, {S_TX, 1, 0},
                                {S_CLOSE, 0, 0}};
static const step st_define[] = {{S_OPEN, 0, 0},          {S_DEFINE, 0, "doc_d"}, {S_TX_D, 1, 0},
                                 {S_DEFINE, 0, "line_d"}, {S_TX_D, 2, 0},         {S_CLOSE, 0, 0}};
static const step st_migrate[] = {{S_OPEN, 0, 0}, {S_CLOSE, 0, 0}};
static const step st_create[] = {{S_OPEN, 0, 0},   {S_DEFINE, 0, "item_p"}, {S_DEFINE, 0, "counter_p"},
                                 {S_TX, 0, "seed"}, {S_TX, 1, 0},            {S_CLOSE, 0, 0}};

#define NSTEPS(a) (int)(sizeof a / sizeof *a)
static const workload workloads[] = {
    /* 250 entries and derived tables never caught up (a writer that died):
     * the 256th entry (step 5) catches them up inside its transaction */
    {"entries", "lag.db", st_entries, NSTEPS(st_entries), 0},
    {"rotate", "small.db", st_rotate, NSTEPS(st_rotate), 0},
    {"rekey", "small.db", st_rekey, NSTEPS(st_rekey), 0},
    {"define", "small.db", st_define, NSTEPS(st_define), 0},
    {"migrate", NULL, st_migrate, NSTEPS(st_migrate), 1},
    {"create", NULL, st_create, NSTEPS(st_create), 0},
};
#define NWORKLOADS (int)(sizeof workloads / sizeof *workloads)

static const oplog_column doc_cols[] = {{"id", "INTEGER PRIMARY KEY"}, {"title", "TEXT NOT NULL"}};
static const oplog_column line_cols[] = {
    {"doc", "INTEGER NOT NULL"}, {"line", "INTEGER NOT NULL"}, {"text", "TEXT"}};
static const char *const line_key[] = {"doc", "line"};
static const oplog_type_spec doc_spec = {"doc_d", "docs_d", "agg_d", doc_cols, 2, NULL, 0};
static const oplog_type_spec line_spec = {"line_d", "lines_d", "agg_d", line_cols, 3, line_key, 2};
/* rel_define_workload's types of "p" (rel_common.c), one define each */
static const oplog_column item_cols[] = {{"id", "INTEGER PRIMARY KEY"},
                                         {"worker", "INTEGER NOT NULL"},
                                         {"seq", "INTEGER NOT NULL"},
                                         {"payload", "BLOB"},
                                         {"note", "TEXT"}};
static const oplog_column counter_cols[] = {{"name", "TEXT PRIMARY KEY NOT NULL"}, {"last", "INTEGER"}};
static const oplog_type_spec item_spec = {"item_p", "items_p", "agg_p", item_cols, 5, NULL, 0};
static const oplog_type_spec counter_spec = {"counter_p", "counters_p", "agg_p", counter_cols, 2, NULL, 0};
static const oplog_type_spec *const specs[] = {&doc_spec, &line_spec, &item_spec, &counter_spec};

static const oplog_type_spec *spec_named(const char *name) {
  for (size_t i = 0; i < sizeof specs / sizeof *specs; i++)
    if (!strcmp(specs[i]->name, name)) return specs[i];
  REL_CHECK(0, "no type %s", name);
}

/* ---------------------------------------------------------------- the child */

static void fail(oplog_db *db, int rc, const char *what) {
  fprintf(stderr, "crashsim child: %s: %s: %s\n", what, oplog_code_name(rc),
          db ? oplog_errmsg(db) : "");
  _exit(3);
}

static void ack(void) { SH->acks++; }

static int ends_with(const char *s, const char *tail) {
  size_t a = strlen(s), b = strlen(tail);
  return a >= b && !strcmp(s + a - b, tail);
}

static void on_sync(void *ctx, const char *path) {
  (void)ctx;
  if (ends_with(path, "-wal")) SH->durable = SH->acks;
}

/* One entry's work on agg_p: item WORKER*1e6+seq and the counter. */
static int item_ops(oplog_db *db, int64_t seq) {
  int64_t id = WORKER * 1000000 + seq;
  unsigned char payload[300];
  size_t plen = rel_payload_len(id);
  for (size_t i = 0; i < plen; i++) payload[i] = rel_payload_byte(id, i);
  oplog_field f[5] = {{"id", {OPLOG_INTEGER, {.i = id}}},
                      {"worker", {OPLOG_INTEGER, {.i = WORKER}}},
                      {"seq", {OPLOG_INTEGER, {.i = seq}}},
                      {"payload", {OPLOG_BLOB, {.b = {payload, plen}}}},
                      {"note", {OPLOG_TEXT, {.b = {"crashsim", 8}}}}};
  oplog_op op = {"item_p", OPLOG_OP_CREATE, {f, 5}, NULL, 0, NULL, 0};
  oplog_field cf[2] = {{"name", {OPLOG_TEXT, {.b = {"c", 1}}}},
                       {"last", {OPLOG_INTEGER, {.i = id}}}};
  static const char *const mask[] = {"last"};
  oplog_op cop = {"counter_p", OPLOG_OP_UPDATE, {cf, 2}, mask, 1, NULL, 0};
  int rc = oplog_tx_apply(db, &op);
  return rc ? rc : oplog_tx_apply(db, &cop);
}

/* The metadata of the entry with this seq (the buffers live in the caller). */
static void meta_for(int64_t seq, char ws[32], char ss[32], oplog_meta md[3]) {
  snprintf(ws, 32, "%d", WORKER);
  snprintf(ss, 32, "%" PRId64, seq);
  md[0] = (oplog_meta){"worker", ws};
  md[1] = (oplog_meta){"seq", ss};
  md[2] = (oplog_meta){"crashsim", NULL};
}

static void run_step(oplog_db **db, const char *path, const workload *w, const step *s,
                     int64_t *seq) {
  char ws[32], ss[32];
  oplog_meta md[3];
  int rc = OPLOG_OK;
  switch (s->kind) {
    case S_OPEN: {
      oplog_open_opts o = w->migrate ? rel_v1_opts(0) : rel_opts(rel_key);
      if ((rc = oplog_open(path, &o, db))) fail(*db, rc, "open");
      break;
    }
    case S_CLOSE:
      if ((rc = oplog_close(*db))) fail(NULL, rc, "close");
      *db = NULL;
      break;
    case S_TX:
      if (s->what && !strcmp(s->what, "seed")) {
        int64_t id;
        if ((rc = rel_seed_counter(*db, "p", &id))) fail(*db, rc, "seed counter");
        break;
      }
      if ((rc = oplog_tx_begin(*db, "agg_p"))) fail(*db, rc, "tx_begin");
      for (int i = 0; i < s->n; i++) {
        ++*seq;
        meta_for(*seq, ws, ss, md);
        if ((rc = item_ops(*db, *seq))) fail(*db, rc, "tx_apply");
        int64_t id;
        rc = i + 1 < s->n ? oplog_tx_entry(*db, md, 3, &id) : oplog_tx_commit(*db, md, 3, &id);
        if (rc) fail(*db, rc, i + 1 < s->n ? "tx_entry" : "tx_commit");
      }
      break;
    case S_LOW: {
      int64_t v = 0;
      if ((rc = oplog_ticket(*db, "agg_q", &v))) fail(*db, rc, "ticket");
      if ((rc = oplog_begin(*db))) fail(*db, rc, "begin");
      for (int i = 0; i < s->n; i++) {
        ++*seq;
        meta_for(*seq, ws, ss, md);
        /* sets counter_q.last to the value it has: the log and the live
         * table keep agreeing although this path leaves live rows alone */
        oplog_field f[2] = {{"name", {OPLOG_TEXT, {.b = {"c", 1}}}},
                            {"last", {OPLOG_INTEGER, {.i = 0}}}};
        static const char *const mask[] = {"last"};
        oplog_op op = {"counter_q", OPLOG_OP_UPDATE, {f, 2}, mask, 1, NULL, 0};
        oplog_entry_write ew = {"agg_q", v + i, md, 3, &op, 1};
        int64_t id;
        if ((rc = oplog_write_entry(*db, &ew, &id))) fail(*db, rc, "write_entry");
      }
      if ((rc = oplog_commit(*db))) fail(*db, rc, "commit");
      break;
    }
    case S_ROTATE:
      if ((rc = oplog_rotate_key(*db, NULL))) fail(*db, rc, "rotate_key");
      break;
    case S_REKEY: {
      oplog_key_source k;
      memset(&k, 0, sizeof k);
      k.key = key2;
      k.key_len = 32;
      if ((rc = oplog_rekey(*db, &k))) fail(*db, rc, "rekey");
      break;
    }
    case S_DEFINE:
      if ((rc = oplog_define(*db, spec_named(s->what)))) fail(*db, rc, "define");
      break;
    case S_TX_D: {
      ++*seq;
      meta_for(*seq, ws, ss, md);
      if ((rc = oplog_tx_begin(*db, "agg_d"))) fail(*db, rc, "tx_begin agg_d");
      char title[32];
      int tn = snprintf(title, sizeof title, "doc %" PRId64, *seq);
      oplog_field df[2] = {{"id", {OPLOG_INTEGER, {.i = *seq}}},
                           {"title", {OPLOG_TEXT, {.b = {title, (size_t)tn}}}}};
      oplog_op dop = {"doc_d", OPLOG_OP_CREATE, {df, 2}, NULL, 0, NULL, 0};
      if ((rc = oplog_tx_apply(*db, &dop))) fail(*db, rc, "tx_apply doc");
      if (s->n > 1) {
        oplog_field lf[3] = {{"doc", {OPLOG_INTEGER, {.i = *seq}}},
                             {"line", {OPLOG_INTEGER, {.i = 1}}},
                             {"text", {OPLOG_TEXT, {.b = {"first line", 10}}}}};
        oplog_op lop = {"line_d", OPLOG_OP_CREATE, {lf, 3}, NULL, 0, NULL, 0};
        if ((rc = oplog_tx_apply(*db, &lop))) fail(*db, rc, "tx_apply line");
      }
      int64_t id;
      if ((rc = oplog_tx_commit(*db, md, 3, &id))) fail(*db, rc, "tx_commit agg_d");
      break;
    }
  }
}

/* The child: the workload through the simulator, cut before point `at`
 * (0: a dry run, not cut), or at its end when it has fewer points. */
static void child_run(const workload *w, const char *path, int sync, int64_t at,
                      enum rel_cut_mode mode, uint64_t seed) {
  rel_default_sync = sync;
  rel_crashvfs_install();
  rel_crashvfs_on_sync(on_sync, NULL);
  rel_crashvfs_cut_stats(&SH->cut);
  rel_crashvfs_arm(at, mode, seed);
  int64_t seq = 0;
  for (int i = 0; i < w->nsteps; i++) {
    run_step(&g_abandoned, path, w, &w->steps[i], &seq);
    ack();
  }
  SH->points = rel_crashvfs_points();
  SH->done = 1;
  if (at > 0) rel_crashvfs_cut();
  _exit(0);
}

/* ---------------------------------------------------------------- the file's state */

/* What a file says, in a form the model can produce too. */
typedef struct state {
  int empty; /* no oplog file (yet) */
  int root;  /* 0: the original root key opens it, 1: key2 */
  int nkeys;
  char active[64];   /* indices (id - lowest id) of the active keys */
  char types[256];   /* type names, sorted */
  char tables[256];  /* the live tables, sorted */
  char entries[512]; /* the workload's entries after the base: seq@key index */
  int64_t indexed;   /* the derived tables cover the entries up to this id */
} state;

static void state_text(const state *s, char *buf, size_t n) {
  if (s->empty) {
    snprintf(buf, n, "no oplog file");
    return;
  }
  snprintf(buf, n, "root=%s keys=%d active=%s types=%s tables=%s entries=%s indexed=%" PRId64,
           s->root ? "new" : "old", s->nkeys, s->active, s->types, s->tables, s->entries,
           s->indexed);
}

static void cat(char *buf, size_t n, const char *sep, const char *item) {
  size_t l = strlen(buf);
  snprintf(buf + l, n - l, "%s%s", l ? sep : "", item);
}

typedef struct keys_seen {
  int64_t min, ids[64], active[64];
  int n, nactive;
} keys_seen;

static int key_cb(void *ctx, int64_t id, int64_t created, const char *st) {
  (void)created;
  keys_seen *k = ctx;
  if (k->n < 64) k->ids[k->n++] = id;
  if (!strcmp(st, "active") && k->nactive < 64) k->active[k->nactive++] = id;
  if (k->min == 0 || id < k->min) k->min = id;
  return 0;
}

static int type_cb(void *ctx, const oplog_type_spec *t) {
  cat(ctx, 256, ",", t->name);
  return 0;
}

/* The base's last entry id: the workload's entries come after it. */
static int64_t g_base_last[NWORKLOADS];

static oplog_db *open_with(const char *path, const unsigned char *key, int readonly, int *rc) {
  oplog_open_opts o = rel_opts(key);
  o.readonly = readonly;
  o.no_create = 1;
  oplog_db *db = NULL;
  *rc = oplog_open(path, &o, &db);
  if (*rc) {
    oplog_close(db);
    return NULL;
  }
  return db;
}

/* The raw user_version and number of schema objects (0, 0 for an empty
 * or missing file); a read-write connection, which can roll back a hot
 * rollback journal. */
static int64_t raw_level(const char *path, int64_t *objects) {
  *objects = 0;
  if (access(path, F_OK) != 0) return 0;
  sqlite3 *s = NULL;
  REL_CHECK(sqlite3_open_v2(path, &s, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK, "raw open %s", path);
  sqlite3_busy_timeout(s, 10000);
  sqlite3_stmt *st = NULL;
  int64_t uv = -1;
  REL_CHECK(sqlite3_prepare_v2(s, "SELECT (SELECT user_version FROM pragma_user_version),"
                                  " (SELECT count(*) FROM sqlite_schema)",
                               -1, &st, NULL) == SQLITE_OK &&
                sqlite3_step(st) == SQLITE_ROW,
            "raw level of %s: %s", path, sqlite3_errmsg(s));
  uv = sqlite3_column_int64(st, 0);
  *objects = sqlite3_column_int64(st, 1);
  sqlite3_finalize(st);
  sqlite3_close(s);
  return uv;
}

/* The state of an oplog file (read-only opens); *which = the working root
 * key. Dies if neither or both root keys open it. */
static void file_state(const char *path, int64_t base_last, state *s) {
  memset(s, 0, sizeof *s);
  int64_t objects = 0;
  if (raw_level(path, &objects) == 0) {
    REL_CHECK(objects == 0, "user_version 0 but %" PRId64 " schema objects: a half-created file",
              objects);
    s->empty = 1;
    return;
  }
  int rc1 = 0, rc2 = 0;
  oplog_db *d1 = open_with(path, rel_key, 1, &rc1), *d2 = open_with(path, key2, 1, &rc2);
  REL_CHECK(d1 || d2, "neither root key opens the file: old %s, new %s", oplog_code_name(rc1),
            oplog_code_name(rc2));
  REL_CHECK(!(d1 && d2), "both the old and the new root key open the file");
  REL_CHECK(d1 ? rc2 == OPLOG_WRONG_KEY : rc1 == OPLOG_WRONG_KEY,
            "the other root key is refused with %s, not wrong_key",
            oplog_code_name(d1 ? rc2 : rc1));
  oplog_db *db = d1 ? d1 : d2;
  s->root = d1 ? 0 : 1;
  keys_seen k;
  memset(&k, 0, sizeof k);
  REL_OK(db, oplog_keys(db, key_cb, &k));
  s->nkeys = k.n;
  for (int i = 0; i < k.nactive; i++) {
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, k.active[i] - k.min);
    cat(s->active, sizeof s->active, ",", b);
  }
  REL_OK(db, oplog_types(db, type_cb, s->types));
  sqlite3 *raw = NULL;
  REL_CHECK(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "raw open");
  sqlite3_busy_timeout(raw, 10000);
  sqlite3_stmt *st = NULL;
  REL_CHECK(sqlite3_prepare_v2(raw,
                               "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE"
                               " 'oplog^_%' ESCAPE '^' AND name NOT LIKE 'sqlite^_%' ESCAPE '^'"
                               " ORDER BY name",
                               -1, &st, NULL) == SQLITE_OK,
            "%s", sqlite3_errmsg(raw));
  while (sqlite3_step(st) == SQLITE_ROW)
    cat(s->tables, sizeof s->tables, ",", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  REL_CHECK(sqlite3_prepare_v2(raw,
                               "SELECT coalesce((SELECT value FROM oplog_config WHERE name ="
                               " 'indexed_upto'), 0)",
                               -1, &st, NULL) == SQLITE_OK &&
                sqlite3_step(st) == SQLITE_ROW,
            "indexed_upto: %s", sqlite3_errmsg(raw));
  s->indexed = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(raw);
  oplog_filter f;
  memset(&f, 0, sizeof f);
  f.since = base_last;
  oplog_iter *it = NULL;
  REL_OK(db, oplog_entries(db, &f, &it));
  const oplog_entry *e;
  for (;;) {
    int rc = oplog_iter_next(it, &e);
    REL_CHECK(rc == OPLOG_OK, "reading the entries: %s: %s", oplog_code_name(rc), oplog_errmsg(db));
    if (!e) break;
    const char *seq = "-";
    for (size_t i = 0; i < e->nmetadata; i++)
      if (!strcmp(e->metadata[i].key, "seq") && e->metadata[i].value) seq = e->metadata[i].value;
    char b[64];
    snprintf(b, sizeof b, "%s@%" PRId64, seq, e->key_id - k.min);
    cat(s->entries, sizeof s->entries, ",", b);
  }
  oplog_iter_close(it);
  oplog_close(db);
}

/* The model: the state after the first j steps, from the base's. */
static void sorted_add(char *list, size_t n, const char *item) {
  char *items[32];
  int m = 0;
  char copy[512];
  snprintf(copy, sizeof copy, "%s", list);
  for (char *p = strtok(copy, ","); p && m < 31; p = strtok(NULL, ",")) items[m++] = p;
  items[m++] = (char *)item;
  for (int a = 1; a < m; a++)
    for (int b = a; b > 0 && strcmp(items[b - 1], items[b]) > 0; b--) {
      char *t = items[b];
      items[b] = items[b - 1];
      items[b - 1] = t;
    }
  char out[512] = "";
  for (int i = 0; i < m; i++) cat(out, sizeof out, ",", items[i]);
  snprintf(list, n, "%s", out);
}

static state g_base_state[NWORKLOADS];

/* One more entry in the model: the derived tables are caught up inside
 * the write of an entry 256 ids past them (INDEX_FLUSH_EVERY, README
 * "Derived tables"). */
static void model_entry(state *s, int64_t *last, const char *label) {
  if (++*last - s->indexed >= 256) s->indexed = *last;
  cat(s->entries, sizeof s->entries, ",", label);
}

static void model(int wi, int j, state *s) {
  const workload *w = &workloads[wi];
  *s = g_base_state[wi];
  int key = -1; /* the active data key's index */
  if (!s->empty) key = s->nkeys - 1;
  int64_t seq = 0, last = g_base_last[wi], wrote = 0;
  for (int i = 0; i < j; i++) {
    const step *st = &w->steps[i];
    char b[64];
    switch (st->kind) {
      case S_OPEN:
        if (s->empty) {
          s->empty = 0;
          s->nkeys = 1;
          key = 0;
          snprintf(s->active, sizeof s->active, "0");
        }
        break;
      case S_CLOSE:
        if (wrote) s->indexed = last; /* a handle that wrote catches up at close */
        break;
      case S_TX:
        if (st->what && !strcmp(st->what, "seed")) {
          snprintf(b, sizeof b, "-@%d", key);
          model_entry(s, &last, b);
          wrote = 1;
          break;
        }
        /* fall through */
      case S_LOW:
        for (int k = 0; k < st->n; k++) {
          snprintf(b, sizeof b, "%" PRId64 "@%d", ++seq, key);
          model_entry(s, &last, b);
          wrote = 1;
        }
        break;
      case S_TX_D:
        snprintf(b, sizeof b, "%" PRId64 "@%d", ++seq, key);
        model_entry(s, &last, b);
        wrote = 1;
        break;
      case S_ROTATE:
      case S_REKEY:
        s->nkeys++;
        key = s->nkeys - 1;
        snprintf(s->active, sizeof s->active, "%d", key);
        if (st->kind == S_REKEY) s->root = 1;
        break;
      case S_DEFINE: {
        const oplog_type_spec *t = spec_named(st->what);
        sorted_add(s->types, sizeof s->types, t->name);
        sorted_add(s->tables, sizeof s->tables, t->table);
        break;
      }
    }
  }
}

/* ---------------------------------------------------------------- the checks */

/* Through the library, writable: verify with replay, tickets, the
 * workload invariants, one active key, a new transaction. */
static void check_oplog_file(const char *path, int root) {
  int rc = 0;
  oplog_db *db = open_with(path, root ? key2 : rel_key, 0, &rc);
  if (!db) {
    /* an empty file (create cut before its first commit) is made anew */
    oplog_open_opts o = rel_opts(root ? key2 : rel_key);
    rc = oplog_open(path, &o, &db);
    REL_CHECK(rc == OPLOG_OK, "writable open: %s: %s", oplog_code_name(rc), db ? oplog_errmsg(db) : "");
  }
  REL_CHECK(rel_verify(db, 1, "crashsim"), "verify with replay found problems (above)");
  /* every ticket is 1 + its aggregate's entries (raw SQL: the entries'
   * own aggregate_name, not the derived tables) */
  sqlite3 *raw = NULL;
  REL_CHECK(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "raw open");
  sqlite3_busy_timeout(raw, 10000);
  sqlite3_stmt *st = NULL;
  REL_CHECK(sqlite3_prepare_v2(raw,
                               "SELECT t.name, (SELECT count(*) FROM oplog_entries e"
                               " WHERE e.aggregate_name = t.name) FROM oplog_ticket t",
                               -1, &st, NULL) == SQLITE_OK,
            "%s", sqlite3_errmsg(raw));
  int has_p = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    int64_t n = sqlite3_column_int64(st, 1), t = 0;
    REL_OK(db, oplog_ticket(db, name, &t));
    REL_CHECK(t == 1 + n, "aggregate %s: ticket %" PRId64 " with %" PRId64 " entries", name, t, n);
    if (!strcmp(name, "agg_p")) has_p = 1;
  }
  sqlite3_finalize(st);
  sqlite3_close(raw);
  int64_t id = 0;
  if (has_p) rel_check_workload(db, path, "p", 1);
  /* the create workload may have left none, one or both of the types and
   * no counter: complete what the new transaction needs */
  REL_OK(db, rel_define_workload(db, "p"));
  if (rel_query_int(path, "SELECT count(*) FROM counters_p") == 0)
    REL_OK(db, rel_seed_counter(db, "p", &id));
  keys_seen k;
  memset(&k, 0, sizeof k);
  REL_OK(db, oplog_keys(db, key_cb, &k));
  REL_CHECK(k.nactive == 1 && k.active[0] == k.ids[k.n - 1], "%d active keys, not the newest alone",
            k.nactive);
  REL_OK(db, rel_write_tx(db, "p", 8, 1, 40, &id));
  oplog_entry *e = NULL;
  REL_OK(db, oplog_entry_get(db, id, &e));
  REL_CHECK(e->nops == 2 && e->key_id == k.ids[k.n - 1], "the new entry %" PRId64 " reads back wrong", id);
  oplog_entry_free(e);
  REL_OK(db, oplog_close(db));
}

/* The model's state after j steps, as text. */
static void model_text(int wi, int j, char *buf, size_t n) {
  if (workloads[wi].migrate) {
    snprintf(buf, n, "format %d", j == 0 ? 1 : 2); /* open migrates */
    return;
  }
  state m;
  model(wi, j, &m);
  state_text(&m, buf, n);
}

/* The checker (a forked child): dies on the first violation. Steps lo..hi
 * may be in the file; tells the parent which were (SH->j: the most; and
 * SH->inflight: 1 kept, 0 lost, -1 not telling). */
static void check_run(int wi, const char *path, int64_t acks, int64_t lo, int64_t hi) {
  const workload *w = &workloads[wi];
  char msg[1024], got[2048], want[16384] = "";
  int root = 0;
  if (w->migrate) {
    REL_CHECK(rel_integrity_ok(path, msg, sizeof msg), "integrity_check: %s", msg);
    int fmt = rel_v1_format(path, 0, msg, sizeof msg);
    REL_CHECK(fmt != 0, "neither format 1 unchanged nor format 2 complete: %s", msg);
    snprintf(got, sizeof got, "format %d", fmt);
  } else {
    /* the create workload may leave a hot rollback journal, which a
     * read-only connection cannot roll back: file_state's raw_level does */
    if (strcmp(w->name, "create") != 0)
      REL_CHECK(rel_integrity_ok(path, msg, sizeof msg), "integrity_check: %s", msg);
    state s;
    file_state(path, g_base_last[wi], &s);
    state_text(&s, got, sizeof got);
    if (!s.empty && !strcmp(w->name, "create"))
      REL_CHECK(rel_integrity_ok(path, msg, sizeof msg), "integrity_check: %s", msg);
    root = s.root;
  }
  int match[32] = {0}, any = -1;
  int64_t found = -1;
  for (int j = 0; j <= w->nsteps && j < 32; j++) {
    char t[2048];
    model_text(wi, j, t, sizeof t);
    match[j] = !strcmp(t, got);
    if (match[j] && any < 0) any = j;
    if (j >= lo && j <= hi) {
      if (match[j]) found = j;
      size_t l = strlen(want);
      snprintf(want + l, sizeof want - l, "\n    after %d steps: %s", j, t);
    }
  }
  REL_CHECK(found >= 0, "the file holds: %s\n  (%s)\n  allowed:%s", got,
            any >= 0 ? "the state after fewer steps than must be there: an acknowledged step lost"
                     : "the state after no number of steps: a step half there",
            want);
  SH->j = found;
  SH->inflight = acks >= w->nsteps ? -1
                 : match[acks + 1] && !match[acks] ? 1
                 : match[acks] && !match[acks + 1] ? 0
                                                   : -1;
  if (w->migrate) {
    REL_CHECK(rel_v1_check(path, 0, 1, msg, sizeof msg) != 0, "%s", msg);
  } else {
    check_oplog_file(path, root);
  }
}

/* ---------------------------------------------------------------- set-up */

static char g_dir[1024];

static void base_workload(oplog_db *db) {
  REL_OK(db, rel_define_workload(db, "p"));
  REL_OK(db, rel_define_workload(db, "q"));
  int64_t id;
  REL_OK(db, rel_seed_counter(db, "p", &id));
  REL_OK(db, rel_seed_counter(db, "q", &id));
}

/* small.db: the workload's types, 2 counters and 3 transactions, closed.
 * lag.db: the same with 250 entries, by a writer that died without
 * closing (derived tables never caught up), checkpointed by raw SQLite. */
static void setup_bases(void) {
  const char *small = rel_path(g_dir, "small.db");
  oplog_db *db = rel_open(small, rel_key);
  base_workload(db);
  for (int s = 1; s <= 3; s++) {
    int64_t id;
    REL_OK(db, rel_write_tx(db, "p", 1, s, 20, &id));
  }
  REL_OK(db, oplog_close(db));

  char lag[1024];
  snprintf(lag, sizeof lag, "%s", rel_path(g_dir, "lag.db"));
  pid_t pid = fork();
  REL_CHECK(pid >= 0, "fork");
  if (pid == 0) {
    rel_default_sync = OPLOG_SYNC_NORMAL;
    oplog_db *c = g_abandoned = rel_open(lag, rel_key);
    base_workload(c);
    for (int s = 1; s <= 248; s++) {
      int64_t id;
      REL_OK(c, rel_write_tx(c, "p", 1, s, rel_payload_len(s), &id));
    }
    _exit(0); /* no close: the derived tables stay behind */
  }
  int st = 0;
  REL_CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
            "building lag.db failed");
  sqlite3 *raw = NULL;
  REL_CHECK(sqlite3_open_v2(lag, &raw, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
                sqlite3_exec(raw, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) == SQLITE_OK,
            "raw open of lag.db");
  sqlite3_close(raw); /* the last connection checkpoints and removes the -wal */
  REL_CHECK(access(rel_path(g_dir, "lag.db-wal"), F_OK) != 0, "lag.db still has a -wal");
  REL_CHECK(rel_query_int(lag, "SELECT count(*) FROM oplog_entries") == 250,
            "lag.db: not 250 entries");
  REL_CHECK(rel_query_int(lag, "SELECT coalesce((SELECT value FROM oplog_config WHERE name ="
                               " 'indexed_upto'), 0)") == 0,
            "lag.db: the derived tables were caught up");
}

static void prepare(int wi, const char *path) {
  const workload *w = &workloads[wi];
  if (w->migrate) rel_v1_copy(path);
  else if (w->base) rel_copy_file(rel_path(g_dir, w->base), path);
  else rel_remove_db(path);
}

/* ---------------------------------------------------------------- the sweep */

typedef struct tally {
  int64_t runs, findings, unreached;
  int64_t kept_inflight, lost_inflight, lost_acked, lost_max;
  int64_t changes, sectors, written; /* unsynced at the cuts */
} tally;

static int listed(const char *list, const char *name) {
  if (!list || !*list) return 1;
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    const char *c = strchr(p, ',');
    size_t l = c ? (size_t)(c - p) : strlen(p);
    if (l == n && !strncmp(p, name, n)) return 1;
    p = c ? c + 1 : p + l;
  }
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
static double g_t_run, g_t_check; /* seconds in the workloads and in the checks */

static int wait_child(pid_t pid) {
  int st = 0;
  REL_CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
  return st;
}

/* Runs the workload cut before point `at` (0: dry run) and returns the
 * child's wait status. */
static int run_once(int wi, const char *path, int sync, int64_t at, enum rel_cut_mode mode,
                    uint64_t seed) {
  prepare(wi, path);
  memset(SH, 0, sizeof *SH);
  fflush(NULL);
  pid_t pid = fork();
  REL_CHECK(pid >= 0, "fork");
  if (pid == 0) child_run(&workloads[wi], path, sync, at, mode, seed);
  return wait_child(pid);
}

static const char *sync_name(int sync) { return sync == OPLOG_SYNC_FULL ? "full" : "normal"; }

/* One cut at point n, then its check; tallies it. */
static void cut_and_check(int wi, const char *path, int sync, enum rel_cut_mode mode, int64_t n,
                          int64_t points, uint64_t seed, int verbose, tally *tm) {
  const workload *w = &workloads[wi];
  int si = sync == OPLOG_SYNC_FULL ? 0 : 1;
  uint64_t s = seed ^ ((uint64_t)wi << 56) ^ ((uint64_t)mode << 48) ^ ((uint64_t)si << 40) ^ (uint64_t)n;
  double t0 = now_s();
  int st = run_once(wi, path, sync, n, mode, s);
  g_t_run += now_s() - t0;
  tm->runs++;
  int64_t acks = SH->acks, durable = SH->durable;
  if (SH->done && n <= points) tm->unreached++;
  tm->changes += SH->cut.changes;
  tm->sectors += SH->cut.sectors;
  tm->written += SH->cut.sectors_written;
  char where[256], repro[256];
  snprintf(where, sizeof where,
           "[crashsim %s sync=%s %s point %" PRId64 " of %" PRId64 "; %" PRId64
           " steps acknowledged, %" PRId64 " before the last -wal sync]",
           w->name, sync_name(sync), rel_cut_names[mode], n, points + 1, acks, durable);
  snprintf(repro, sizeof repro,
           "REL_CRASH_WORKLOADS=%s REL_CRASH_SYNC=%s REL_CRASH_MODES=%s REL_STRIDE=1 REL_FIRST=%" PRId64
           " REL_LAST=%" PRId64,
           w->name, sync_name(sync), rel_cut_names[mode], n, n);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == REL_CRASH_EXIT)) {
    printf("FINDING %s: the workload failed (status %d; its message above); reproduce with %s\n",
           where, st, repro);
    tm->findings++;
    return;
  }
  /* full, or a process kill: nothing acknowledged may be lost; normal: what
   * the -wal's last sync covered; after close returned: everything */
  int64_t lo = mode == REL_CUT_KILL || sync == OPLOG_SYNC_FULL ? acks : durable;
  if (acks == w->nsteps) lo = w->nsteps;
  int64_t hi = acks + 1 > w->nsteps ? w->nsteps : acks + 1;
  SH->j = -1;
  SH->inflight = -1;
  fflush(NULL);
  pid_t pid = fork();
  REL_CHECK(pid >= 0, "fork");
  if (pid == 0) {
    check_run(wi, path, acks, lo, hi);
    _exit(0);
  }
  t0 = now_s();
  st = wait_child(pid);
  g_t_check += now_s() - t0;
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
    printf("FINDING %s: the check failed (its message above); reproduce with %s\n", where, repro);
    fflush(stdout);
    tm->findings++;
    return;
  }
  if (verbose > 1)
    printf("crashsim: %s: ok, up to %" PRId64 " steps in the file\n", where, SH->j);
  if (SH->inflight == 1) tm->kept_inflight++;
  if (SH->inflight == 0) tm->lost_inflight++;
  if (SH->j < acks) {
    tm->lost_acked++;
    if (acks - SH->j > tm->lost_max) tm->lost_max = acks - SH->j;
  }
}

static void sweep(int wi, int sync, const char *modes, int64_t stride, int64_t first,
                  int64_t last, uint64_t seed, int verbose, tally *t, int64_t *npoints) {
  const workload *w = &workloads[wi];
  char path[1024];
  snprintf(path, sizeof path, "%s", rel_path(g_dir, "run.db"));
  int st = run_once(wi, path, sync, 0, REL_CUT_KILL, 0);
  REL_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && SH->done && SH->acks == w->nsteps,
            "%s: the dry run failed (status %d, %" PRId64 " of %d steps)", w->name, st, SH->acks,
            w->nsteps);
  int64_t points = SH->points;
  *npoints = points;
  if (verbose) printf("crashsim: %s sync=%s: %" PRId64 " points\n", w->name, sync_name(sync), points);
  int si = sync == OPLOG_SYNC_FULL ? 0 : 1;
  for (int mode = 0; mode < REL_CUT__COUNT; mode++) {
    if (!listed(modes, rel_cut_names[mode])) continue;
    /* the three modes of a sync their own offsets within the stride, so
     * that together they cover more points (every point up to stride 3) */
    int64_t off = ((int64_t)(mode + si) * stride / REL_CUT__COUNT) % stride;
    for (int64_t n = first + off; n <= points && n <= last; n += stride)
      cut_and_check(wi, path, sync, (enum rel_cut_mode)mode, n, points, seed, verbose, &t[mode]);
    /* the point after the whole workload, always */
    if (first <= points + 1 && last >= points + 1)
      cut_and_check(wi, path, sync, (enum rel_cut_mode)mode, points + 1, points, seed, verbose,
                    &t[mode]);
  }
  rel_remove_db(path);
}

int main(void) {
  uint64_t seed = (uint64_t)rel_env_int("REL_SEED", 20261121);
  int64_t stride = rel_env_int("REL_STRIDE", 1);
  if (stride < 1) stride = 1;
  int64_t first = rel_env_int("REL_FIRST", 1), last = rel_env_int("REL_LAST", INT64_MAX);
  int verbose = (int)rel_env_int("REL_VERBOSE", 0);
  const char *wl = getenv("REL_CRASH_WORKLOADS"), *modes = getenv("REL_CRASH_MODES"),
             *syncs = getenv("REL_CRASH_SYNC");
  signal(SIGPIPE, SIG_IGN);
  SH = mmap(NULL, sizeof *SH, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REL_CHECK(SH != MAP_FAILED, "mmap");
  char *dir = rel_mkdtemp_fast("crashsim");
  snprintf(g_dir, sizeof g_dir, "%s", dir);
  setup_bases();
  rel_v1_setup(dir);
  for (int wi = 0; wi < NWORKLOADS; wi++) {
    const workload *w = &workloads[wi];
    if (w->migrate) continue;
    if (w->base) {
      file_state(rel_path(g_dir, w->base), 0, &g_base_state[wi]);
      g_base_state[wi].entries[0] = 0;
      g_base_last[wi] = rel_query_int(rel_path(g_dir, w->base), "SELECT max(id) FROM oplog_entries");
    } else {
      memset(&g_base_state[wi], 0, sizeof g_base_state[wi]);
      g_base_state[wi].empty = 1;
    }
  }

  /* Every fork inherits the parent's heap: a tidy one (no fast bins to
   * consolidate, free memory given back) spares each child copy-on-write
   * faults on pages it would otherwise walk. */
  malloc_trim(0);
  int64_t findings = 0, runs = 0;
  for (int wi = 0; wi < NWORKLOADS; wi++) {
    const workload *w = &workloads[wi];
    if (!listed(wl, w->name)) continue;
    for (int sync = OPLOG_SYNC_FULL; sync <= OPLOG_SYNC_NORMAL; sync++) {
      if (!listed(syncs, sync_name(sync))) continue;
      tally t[REL_CUT__COUNT];
      memset(t, 0, sizeof t);
      int64_t points = 0;
      sweep(wi, sync, modes, stride, first, last, seed, verbose, t, &points);
      printf("crashsim: %-7s sync=%-6s %4" PRId64 " points:", w->name, sync_name(sync), points);
      for (int m = 0; m < REL_CUT__COUNT; m++) {
        if (!t[m].runs) continue;
        printf(" %s %" PRId64 " cuts (in-flight step kept %" PRId64 ", lost %" PRId64, rel_cut_names[m],
               t[m].runs, t[m].kept_inflight, t[m].lost_inflight);
        if (m == REL_CUT_TEAR)
          printf("; %" PRId64 " of %" PRId64 " unsynced sectors written", t[m].written, t[m].sectors);
        else if (m == REL_CUT_DISCARD)
          printf("; %" PRId64 " unsynced sectors lost", t[m].sectors);
        if (t[m].lost_acked)
          printf(", acknowledged steps lost %" PRId64 " times, at most %" PRId64, t[m].lost_acked,
                 t[m].lost_max);
        if (t[m].unreached) printf(", %" PRId64 " ended before their point", t[m].unreached);
        if (t[m].findings) printf(", %" PRId64 " FINDINGS", t[m].findings);
        printf(");");
        findings += t[m].findings;
        runs += t[m].runs;
      }
      printf("\n");
      fflush(stdout);
    }
  }
  printf("crashsim: seed %" PRIu64 ", stride %" PRId64 ": %" PRId64 " power cuts, %" PRId64
         " findings\n",
         seed, stride, runs, findings);
  if (verbose) printf("crashsim: %.1f s in the workloads, %.1f s in the checks\n", g_t_run, g_t_check);
  rel_rmdir_all(dir);
  free(dir);
  return findings ? 1 : 0;
}
