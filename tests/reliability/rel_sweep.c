/* rel_sweep.c — see rel_sweep.h. */
#include "rel_sweep.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rel_common.h"
#include "rel_v1.h"

static const unsigned char key2[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6,
                                       7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22};

/* The base file and what the scenarios need to know about it. */
static struct {
  char base[1024], work[1024], fresh[1024], replica[1024];
  char v1[1024]; /* a copy of the format-1 fixture (migrate) */
  int64_t entries;      /* all aggregates */
  int64_t initial;      /* initial ticket version of a new aggregate */
  int64_t head_id;
  unsigned char head[OPLOG_HASH_BYTES];
  int64_t b_last;       /* counters_b.last */
} B;

typedef struct run_ctx {
  oplog_db *db;
  int verify_bad; /* verify ran but reported problems */
  char msg[512];  /* the failure's message, when a cleanup call follows */
} run_ctx;

typedef struct scenario {
  const char *name;
  int opens;  /* the armed part opens the handle itself */
  int writes; /* entries added on success */
  int pre_committed; /* the entry is committed before arming (close) */
  int (*prep)(run_ctx *c);
  int (*run)(run_ctx *c);
  int v1; /* runs on a fresh copy of the format-1 fixture, with its own checks */
} scenario;

/* ---------------------------------------------------------------- scenarios */

static int s_open(run_ctx *c) {
  oplog_open_opts o = rel_opts(rel_key);
  o.no_create = 1;
  return oplog_open(B.work, &o, &c->db);
}

static int s_open_ro(run_ctx *c) {
  oplog_open_opts o = rel_opts(rel_key);
  o.readonly = 1;
  int rc = oplog_open(B.work, &o, &c->db);
  if (rc) return rc;
  int64_t id;
  unsigned char h[OPLOG_HASH_BYTES];
  rc = oplog_head(c->db, &id, h);
  if (rc == OPLOG_OK && (id != B.head_id || memcmp(h, B.head, sizeof h))) c->verify_bad = 1;
  /* A read-only handle cannot write: close it so the harness does not try. */
  oplog_close(c->db);
  c->db = NULL;
  return rc;
}

static int s_create(run_ctx *c) {
  oplog_open_opts o = rel_opts(rel_key);
  int rc = oplog_open(B.fresh, &o, &c->db);
  if (rc) return rc;
  rc = rel_define_workload(c->db, "a");
  int64_t id;
  if (rc == OPLOG_OK) rc = rel_seed_counter(c->db, "a", &id);
  return rc;
}

static int s_define(run_ctx *c) {
  static const oplog_column cols[] = {{"k", "TEXT PRIMARY KEY NOT NULL"}, {"v", "BLOB"}};
  oplog_type_spec t = {"extra", "extras", "agg_x", cols, 2, NULL, 0};
  return oplog_define(c->db, &t);
}

static int s_tx(run_ctx *c) {
  int64_t id;
  return rel_write_tx(c->db, "a", 2, 1, 60, &id);
}

static int s_tx_big(run_ctx *c) {
  int64_t id;
  return rel_write_tx(c->db, "a", 2, 1, 30000, &id);
}

static int s_tx_rollback(run_ctx *c) {
  int rc = oplog_tx_begin(c->db, "agg_a");
  if (rc) return rc;
  oplog_field f[3] = {{"id", {OPLOG_INTEGER, {.i = 5000000}}},
                      {"worker", {OPLOG_INTEGER, {.i = 5}}},
                      {"seq", {OPLOG_INTEGER, {.i = 0}}}};
  oplog_op op = {"item_a", OPLOG_OP_CREATE, {f, 3}, NULL, 0, NULL, 0};
  rc = oplog_tx_apply(c->db, &op);
  if (rc) return rc;
  return oplog_tx_rollback(c->db);
}

static int s_lowlevel(run_ctx *c) {
  int64_t v = 0, id = 0;
  int rc = oplog_ticket(c->db, "agg_b", &v);
  if (rc) return rc;
  rc = oplog_begin(c->db);
  if (rc) return rc;
  /* Sets counter_b.last to its current value: the log and the live table
   * keep agreeing although the low-level path does not touch live rows. */
  oplog_field f[2] = {{"name", {OPLOG_TEXT, {.b = {"c", 1}}}},
                      {"last", {OPLOG_INTEGER, {.i = B.b_last}}}};
  static const char *const mask[] = {"last"};
  oplog_op op = {"counter_b", OPLOG_OP_UPDATE, {f, 2}, mask, 1, NULL, 0};
  oplog_meta md[2] = {{"via", "lowlevel"}, {"flag", NULL}};
  oplog_entry_write w = {"agg_b", v, md, 2, &op, 1};
  rc = oplog_write_entry(c->db, &w, &id);
  if (rc == OPLOG_OK) rc = oplog_commit(c->db);
  if (rc) {
    snprintf(c->msg, sizeof c->msg, "%s", oplog_errmsg(c->db));
    oplog_rollback(c->db); /* the caller's duty after a failed write */
  }
  return rc;
}

static int s_get(run_ctx *c) {
  oplog_entry *e = NULL;
  int rc = oplog_entry_get(c->db, B.head_id, &e);
  if (rc == OPLOG_OK && (e->id != B.head_id || e->nops != 2)) c->verify_bad = 1;
  oplog_entry_free(e);
  return rc;
}

static int s_iter(run_ctx *c) {
  oplog_meta m = {"worker", "1"};
  oplog_filter f;
  memset(&f, 0, sizeof f);
  f.metadata = &m;
  f.nmetadata = 1;
  oplog_iter *it = NULL;
  int rc = oplog_entries(c->db, &f, &it);
  if (rc) return rc;
  const oplog_entry *e;
  int64_t n = 0;
  while ((rc = oplog_iter_next(it, &e)) == OPLOG_OK && e) n++;
  oplog_iter_close(it);
  if (rc == OPLOG_OK && n != B.entries - 2) { /* all but the 2 seeds */
    c->verify_bad = 1;
    snprintf(c->msg, sizeof c->msg,
             "oplog_entries with a metadata filter gave %" PRId64 " entries, not %" PRId64, n,
             B.entries - 2);
  }
  return rc;
}

static int s_replay(run_ctx *c) {
  oplog_replay_opts o;
  memset(&o, 0, sizeof o);
  o.suffix = "_r";
  o.fresh = 1;
  oplog_replay_result r;
  int rc = oplog_replay(c->db, &o, &r);
  if (rc == OPLOG_OK && r.entries != B.entries) c->verify_bad = 1;
  return rc;
}

static int s_replay_into(run_ctx *c) {
  oplog_replay_opts o;
  memset(&o, 0, sizeof o);
  o.into = B.replica;
  o.fresh = 1;
  oplog_replay_result r;
  int rc = oplog_replay(c->db, &o, &r);
  if (rc == OPLOG_OK && r.entries != B.entries) c->verify_bad = 1;
  return rc;
}

static int first_problem(void *ctx, int64_t id, const char *kind, const char *detail) {
  run_ctx *c = ctx;
  if (!c->msg[0])
    snprintf(c->msg, sizeof c->msg, "verify reported entry %" PRId64 ": %s: %s", id, kind,
             detail ? detail : "");
  return 0;
}

static int do_verify(run_ctx *c, int replay, const unsigned char *head) {
  oplog_verify_opts o;
  memset(&o, 0, sizeof o);
  o.replay = replay;
  o.head = head;
  oplog_verify_result r;
  memset(&r, 0, sizeof r);
  int rc = oplog_verify(c->db, &o, first_problem, c, &r);
  /* A fault must make verify fail, never invent a problem in the log. */
  if (rc == OPLOG_OK && (!r.ok || r.entries != B.entries)) c->verify_bad = 1;
  return rc;
}

static int s_verify(run_ctx *c) { return do_verify(c, 1, NULL); }
static int s_verify_head(run_ctx *c) { return do_verify(c, 0, B.head); }

static int each_agg(void *ctx, const char *name, int64_t entries, int64_t ticket) {
  (void)ctx;
  (void)name;
  (void)entries;
  (void)ticket;
  return 0;
}
static int each_key(void *ctx, int64_t id, int64_t created, const char *state) {
  (void)ctx;
  (void)id;
  (void)created;
  (void)state;
  return 0;
}
static int each_type(void *ctx, const oplog_type_spec *spec) {
  (void)spec;
  ++*(int *)ctx;
  return 0;
}

static int s_stats(run_ctx *c) {
  oplog_stats s;
  int rc = oplog_get_stats(c->db, &s, each_agg, NULL);
  if (rc == OPLOG_OK && s.entries != B.entries) c->verify_bad = 1;
  if (rc == OPLOG_OK) rc = oplog_keys(c->db, each_key, NULL);
  int ntypes = 0;
  if (rc == OPLOG_OK) rc = oplog_types(c->db, each_type, &ntypes);
  if (rc == OPLOG_OK && ntypes != 4) c->verify_bad = 1;
  int64_t v;
  if (rc == OPLOG_OK) rc = oplog_ticket(c->db, "agg_a", &v);
  return rc;
}

static int s_rotate(run_ctx *c) {
  int64_t kid;
  return oplog_rotate_key(c->db, &kid);
}

static int s_rekey(run_ctx *c) {
  oplog_key_source k;
  memset(&k, 0, sizeof k);
  k.key = key2;
  k.key_len = 32;
  return oplog_rekey(c->db, &k);
}

/* A writable open with the key migrates the format-1 fixture in place, in
 * one transaction (rel_v1.h has what must hold after a fault in it). */
static int s_migrate(run_ctx *c) {
  oplog_open_opts o = rel_v1_opts(0);
  return oplog_open(B.v1, &o, &c->db);
}

static int p_write(run_ctx *c) {
  int64_t id;
  return rel_write_tx(c->db, "a", 2, 1, 60, &id);
}

static int s_close(run_ctx *c) {
  /* The handle is gone whatever close says (a failed checkpoint stays in
   * the WAL, derived tables not caught up stay behind their watermark), but
   * its result is checked like any other: a clean code the fault explains,
   * never an error without a fault, and the entry committed before stays. */
  int rc = oplog_close(c->db);
  c->db = NULL;
  return rc;
}

static const scenario SCEN[] = {
    {"open", 1, 0, 0, NULL, s_open, 0},
    {"open_ro", 1, 0, 0, NULL, s_open_ro, 0},
    {"create", 1, 0, 0, NULL, s_create, 0},
    {"define", 0, 0, 0, NULL, s_define, 0},
    {"tx", 0, 1, 0, NULL, s_tx, 0},
    {"tx_big", 0, 1, 0, NULL, s_tx_big, 0},
    {"tx_rollback", 0, 0, 0, NULL, s_tx_rollback, 0},
    {"lowlevel", 0, 1, 0, NULL, s_lowlevel, 0},
    {"get", 0, 0, 0, NULL, s_get, 0},
    {"iter", 0, 0, 0, NULL, s_iter, 0},
    {"replay", 0, 0, 0, NULL, s_replay, 0},
    {"replay_into", 0, 0, 0, NULL, s_replay_into, 0},
    {"verify", 0, 0, 0, NULL, s_verify, 0},
    {"verify_head", 0, 0, 0, NULL, s_verify_head, 0},
    {"stats", 0, 0, 0, NULL, s_stats, 0},
    {"rotate", 0, 0, 0, NULL, s_rotate, 0},
    {"rekey", 0, 0, 0, NULL, s_rekey, 0},
    {"close", 0, 1, 1, p_write, s_close, 0},
    {"migrate", 1, 0, 0, NULL, s_migrate, 1},
};
#define NSCEN ((int)(sizeof SCEN / sizeof SCEN[0]))

int rel_sweep_nscenarios(void) { return NSCEN; }
const char *rel_sweep_scenario_name(int i) { return SCEN[i].name; }

/* ---------------------------------------------------------------- setup */

void rel_sweep_setup(const char *dir) {
  snprintf(B.base, sizeof B.base, "%s/base.db", dir);
  snprintf(B.work, sizeof B.work, "%s/work.db", dir);
  snprintf(B.fresh, sizeof B.fresh, "%s/fresh.db", dir);
  snprintf(B.replica, sizeof B.replica, "%s/replica.db", dir);
  snprintf(B.v1, sizeof B.v1, "%s/v1.db", dir);
  rel_v1_setup(dir);
  rel_remove_db(B.base);
  oplog_db *db = rel_open(B.base, rel_key);
  REL_OK(db, rel_define_workload(db, "a"));
  REL_OK(db, rel_define_workload(db, "b"));
  REL_OK(db, oplog_ticket(db, "agg_a", &B.initial));
  int64_t id;
  REL_OK(db, rel_seed_counter(db, "a", &id));
  REL_OK(db, rel_seed_counter(db, "b", &id));
  for (int64_t s = 1; s <= 6; s++) {
    REL_OK(db, rel_write_tx(db, "a", 1, s, rel_payload_len(s), &id));
    REL_OK(db, rel_write_tx(db, "b", 1, s, rel_payload_len(s + 100), &id));
  }
  B.b_last = 1000000 + 6;
  int64_t kid;
  REL_OK(db, oplog_rotate_key(db, &kid));
  REL_OK(db, rel_write_tx(db, "a", 1, 7, 40, &id));
  REL_OK(db, oplog_head(db, &B.head_id, B.head));
  B.entries = B.head_id;
  REL_CHECK(rel_verify(db, 1, "sweep-setup"), "base does not verify");
  oplog_close(db);
  /* The copies must be self-contained: fold any WAL back into the file. */
  sqlite3 *raw = NULL;
  REL_CHECK(sqlite3_open(B.base, &raw) == SQLITE_OK, "open base");
  REL_CHECK(sqlite3_exec(raw, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) == SQLITE_OK,
            "checkpoint: %s", sqlite3_errmsg(raw));
  sqlite3_close(raw);
  char wal[1100];
  snprintf(wal, sizeof wal, "%s-wal", B.base);
  struct stat st;
  REL_CHECK(stat(wal, &st) != 0 || st.st_size == 0, "base keeps a non-empty WAL");
}

/* ---------------------------------------------------------------- the sweep */

static rel_sweep_stats *S;
static const char *cur_inj, *cur_scen;
static int64_t cur_n;
static int64_t v1_left[3]; /* migrate runs that left the file in format 1 / 2 */
static int v1_lean;           /* rel_sweep_v1_options() */
static int64_t v1_stride = 1; /* migrate's stride = the sweep's times this */

void rel_sweep_v1_options(int lean, int64_t stride_factor) {
  v1_lean = lean;
  v1_stride = stride_factor < 1 ? 1 : stride_factor;
}

static void finding(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void finding(const char *fmt, ...) {
  S->findings++;
  if (S->findings > 40) return;
  va_list ap;
  fprintf(stderr, "FINDING [%s/%s N=%" PRId64 "]: ", cur_inj, cur_scen, cur_n);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* Opens the work (or fresh) file after a run: the right key depends on
 * whether a rekey committed. Returns the handle and which key worked. */
static oplog_db *reopen(const char *path, int *used_key2) {
  oplog_open_opts o = rel_opts(rel_key);
  oplog_db *db = NULL;
  int rc = oplog_open(path, &o, &db);
  *used_key2 = 0;
  if (rc == OPLOG_WRONG_KEY) {
    oplog_close(db);
    db = NULL;
    o.key.key = key2;
    rc = oplog_open(path, &o, &db);
    *used_key2 = 1;
  }
  if (rc != OPLOG_OK) {
    finding("reopen after the fault failed: %s: %s", oplog_code_name(rc),
            db ? oplog_errmsg(db) : "");
    oplog_close(db);
    return NULL;
  }
  return db;
}

/* After a run of migrate: the handle that opened (and so migrated) the file
 * goes on working; the file is format 1 unchanged or format 2 complete,
 * never in between, and then opens, verifies and migrates (rel_v1.h). */
static void v1_after(const rel_injector *inj, run_ctx *c, int rc) {
  char m[512];
  int64_t extra = 0;
  if (c->db) {
    if (rc == OPLOG_OK) {
      if (rel_v1_continue(c->db, 1, m, sizeof m))
        extra = 1;
      else
        finding("the handle that migrated the file: %s", m);
    }
    oplog_close(c->db);
    c->db = NULL;
  }
  if (inj->after_close && !inj->after_close(inj->ctx, m, sizeof m)) finding("%s", m);
  if (!rel_integrity_ok(B.v1, m, sizeof m)) finding("integrity_check: %s", m);
  int fmt = rel_v1_format(B.v1, extra, m, sizeof m);
  if (!fmt) {
    finding("after %s the file is neither format 1 unchanged nor format 2 complete: %s",
            oplog_code_name(rc), m);
    return;
  }
  if (cur_n > 0) v1_left[fmt]++; /* (not the dry run) */
  if (rc == OPLOG_OK && fmt != 2) finding("the open succeeded but the file is still format %d", fmt);
  if (!rel_v1_check(B.v1, extra, !v1_lean, m, sizeof m))
    finding("after %s (file left in format %d): %s", oplog_code_name(rc), fmt, m);
}

/* Runs scenario sc once with the fault at point n (0: none). Returns the
 * number of points seen (for the dry run). */
static int64_t run_once(const rel_injector *inj, const scenario *sc, int64_t n) {
  rel_copy_file(B.base, B.work);
  rel_remove_db(B.fresh);
  rel_remove_db(B.replica);
  if (sc->v1) rel_v1_copy(B.v1);
  run_ctx c = {NULL, 0, ""};
  if (!sc->opens) {
    c.db = rel_open(B.work, rel_key);
    if (sc->prep) REL_OK(c.db, sc->prep(&c));
  }
  inj->arm(inj->ctx, n);
  int rc = sc->run(&c);
  int fired = inj->fired(inj->ctx);
  int64_t points = inj->points(inj->ctx);
  inj->disarm(inj->ctx);
  char msg[512];
  snprintf(msg, sizeof msg, "%s", c.msg[0] ? c.msg : c.db ? oplog_errmsg(c.db) : "(no handle)");

  if (n == 0) {
    REL_CHECK(rc == OPLOG_OK && !c.verify_bad, "dry run of %s failed: %s: %s", sc->name,
              oplog_code_name(rc), msg);
  } else if (fired) {
    S->points++;
    if (rc != OPLOG_OK) S->fired_errors++;
    else S->absorbed++;
  }
  if (rc != OPLOG_OK && !rel_env_code_ok(rc))
    finding("unclean code %s (%s)", oplog_code_name(rc), msg);
  else if (rc != OPLOG_OK && inj->error_ok && !inj->error_ok(inj->ctx, rc, msg))
    finding("not the error expected: %s (%s)", oplog_code_name(rc), msg);
  if (rc != OPLOG_OK && !fired) finding("error without fault: %s (%s)", oplog_code_name(rc), msg);
  if (c.verify_bad)
    finding("the call succeeded with a wrong answer (the fault became data): %s", msg);
  if (sc->v1) {
    v1_after(inj, &c, rc);
    return points;
  }

  /* Writing continues on the same handle once the fault is gone. */
  int continued = 0;
  if (c.db) {
    if (oplog_tx_active(c.db)) {
      finding("a transaction is still open after %s", oplog_code_name(rc));
      oplog_tx_rollback(c.db);
    }
    int open_ok = !(sc->opens && rc != OPLOG_OK);
    if (open_ok) {
      int64_t id;
      int wrc = rel_write_tx(c.db, "a", 3, 1, 10, &id);
      if (wrc == OPLOG_OK)
        continued = 1;
      else
        finding("the handle cannot write after the fault (the call gave %s: %s): %s: %s",
                oplog_code_name(rc), msg, oplog_code_name(wrc), oplog_errmsg(c.db));
    }
    oplog_close(c.db);
    c.db = NULL;
    /* create's handle wrote to the new file, not the work file. */
    if (!strcmp(sc->name, "create")) continued = 0;
  }
  if (inj->after_close && !inj->after_close(inj->ctx, msg, sizeof msg)) finding("%s", msg);

  /* The file, reopened without the fault. */
  const char *path = B.work;
  char imsg[512];
  if (!rel_integrity_ok(path, imsg, sizeof imsg)) finding("integrity_check: %s", imsg);
  int k2 = 0;
  oplog_db *db = reopen(path, &k2);
  if (!db) return points;
  if (!strcmp(sc->name, "rekey") && rc == OPLOG_OK && !k2)
    finding("rekey succeeded but the file still opens with the old key");
  if (!strcmp(sc->name, "rekey") && rc != OPLOG_OK && k2 && !inj->ambiguous_commit_ok)
    finding("rekey failed but the file now needs the new key");
  /* Workload invariants first (they die on a violation), then verify. */
  rel_check_workload(db, path, "a", B.initial);
  rel_check_workload(db, path, "b", B.initial);
  if (!rel_verify(db, 1, "sweep")) finding("verify failed after reopen");
  int64_t total = rel_count_entries(db, NULL);
  int64_t expect_ok = B.entries + sc->writes + continued;
  int64_t expect_err = B.entries + (sc->pre_committed ? 1 : 0) + continued;
  if (rc == OPLOG_OK) {
    if (total != expect_ok)
      finding("acknowledged: expected %" PRId64 " entries, found %" PRId64, expect_ok, total);
  } else if (total != expect_err) {
    if (sc->writes && total == expect_ok && inj->ambiguous_commit_ok)
      S->ambiguous++;
    else
      finding("failed with %s but %" PRId64 " entries (expected %" PRId64 ")",
              oplog_code_name(rc), total, expect_err);
  }
  oplog_close(db);

  if (!strcmp(sc->name, "create")) {
    struct stat st;
    if (stat(B.fresh, &st) == 0 && !rel_integrity_ok(B.fresh, imsg, sizeof imsg))
      finding("new file: integrity_check: %s", imsg);
    oplog_db *f = reopen(B.fresh, &k2);
    if (f) {
      int drc = rel_define_workload(f, "a");
      if (drc) finding("new file: define after the fault: %s: %s", oplog_code_name(drc),
                       oplog_errmsg(f));
      if (!rel_verify(f, 1, "sweep-create")) finding("new file: verify failed");
      oplog_close(f);
    }
  }
  return points;
}

static int in_list(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && !strncmp(p, name, n)) return 1;
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

/* Sweeps one scenario in a forked child, so that a crash or a broken
 * invariant (rel_die) in one path is reported and the others still run. */
static void sweep_scenario(const rel_injector *inj, const scenario *sc, int64_t stride,
                           int64_t full_below) {
  int fds[2];
  REL_CHECK(pipe(fds) == 0, "pipe");
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  REL_CHECK(pid >= 0, "fork");
  if (pid == 0) {
    close(fds[0]);
    rel_sweep_stats mine = {0};
    S = &mine;
    cur_scen = sc->name;
    cur_n = 0;
    int64_t points = run_once(inj, sc, 0);
    if (getenv("REL_VERBOSE"))
      fprintf(stderr, "%s/%s: %" PRId64 " points\n", inj->name, sc->name, points);
    /* Cheap paths are swept at every point whatever the stride: a fault at
     * one exact allocation can be the only one that shows a bug. */
    if (points <= full_below) stride = 1;
    else if (sc->v1) stride *= v1_stride;
    /* REL_FIRST / REL_LAST narrow the sweep to reproduce one point. */
    int64_t last = rel_env_int("REL_LAST", points), runs = 0;
    for (int64_t n = rel_env_int("REL_FIRST", 1); n <= points && n <= last; n += stride) {
      cur_n = n;
      if (getenv("REL_VERBOSE") && atoi(getenv("REL_VERBOSE")) > 1)
        fprintf(stderr, "%s/%s N=%" PRId64 "\n", inj->name, sc->name, n);
      run_once(inj, sc, n);
      runs++;
    }
    if (sc->v1) {
      printf("%s/%s: %" PRId64 " runs left the file in format 1 (unchanged), %" PRId64
             " in format 2 (complete)\n",
             inj->name, sc->name, v1_left[1], v1_left[2]);
      fflush(stdout);
    }
    /* Points counted but none injected: the runs tested nothing (issue 13). */
    cur_n = 0;
    if (runs > 0 && mine.points == 0)
      finding("the dry run counted %" PRId64 " points, but the fault fired in none of %" PRId64
              " runs",
              points, runs);
    if (write(fds[1], &mine, sizeof mine) != (ssize_t)sizeof mine) _exit(3);
    _exit(0);
  }
  close(fds[1]);
  rel_sweep_stats got;
  ssize_t n = read(fds[0], &got, sizeof got);
  close(fds[0]);
  int st = 0;
  REL_CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
  if (n == (ssize_t)sizeof got && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    S->points += got.points;
    S->fired_errors += got.fired_errors;
    S->absorbed += got.absorbed;
    S->ambiguous += got.ambiguous;
    S->findings += got.findings;
    return;
  }
  S->findings++;
  if (WIFSIGNALED(st))
    fprintf(stderr,
            "FINDING [%s/%s]: CRASH (signal %d); reproduce with REL_SCENARIOS=%s "
            "REL_VERBOSE=2 to see the last N, then REL_FIRST=N REL_LAST=N\n",
            inj->name, sc->name, WTERMSIG(st), sc->name);
  else
    fprintf(stderr, "FINDING [%s/%s]: the sweep stopped on a broken invariant (above)\n",
            inj->name, sc->name);
}

void rel_sweep_run(const rel_injector *inj, const char *only, int64_t stride,
                   int64_t full_below, rel_sweep_stats *st) {
  S = st;
  cur_inj = inj->name;
  if (stride < 1) stride = 1;
  int64_t before = st->points;
  for (int i = 0; i < NSCEN; i++) {
    if (only && !in_list(only, SCEN[i].name)) continue;
    sweep_scenario(inj, &SCEN[i], stride, full_below);
  }
  /* A fault kind that never fired tested nothing: a sweep that injected at
   * zero points fails instead of passing silently (issue 13). */
  if (st->points == before) {
    st->findings++;
    fprintf(stderr,
            "FINDING [%s]: no fault injected at any point of any path (scenarios: %s): the "
            "sweep tested nothing\n",
            inj->name, only ? only : "all");
  }
}
