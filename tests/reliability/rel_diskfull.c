/*
 * rel_diskfull.c — the disk fills up.
 *
 * 1. A sweep (rel_sweep.c) where every write beyond a byte budget answers
 *    SQLITE_FULL, for budgets in steps across what each writing path
 *    writes: the call fails with OPLOG_IO and a message that says the disk
 *    is full, and the file stays consistent.
 * 2. A writer fills a small budget with transactions until the disk is
 *    full: the failure is OPLOG_IO "full", everything acknowledged stays
 *    readable and verifiable while the disk is still full, and writing
 *    resumes once space is freed.
 *
 * Knobs: REL_FULL_STEP (budget step in bytes, default 2048), REL_SCENARIOS.
 */
#include <strings.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rel_common.h"
#include "rel_sweep.h"
#include "rel_vfs.h"

static int64_t step;

/* Point n means: the budget is (n - 1) * step bytes. */
static void arm(void *ctx, int64_t n) {
  (void)ctx;
  if (n == 0)
    rel_vfs_arm(REL_F_FULL, 0); /* dry run: count bytes only */
  else
    rel_vfs_arm_budget((n - 1) * step);
}
static void disarm(void *ctx) {
  (void)ctx;
  rel_vfs_disarm();
}
/* A path that wrote nothing in the dry run has no budget to sweep (budget
 * 0 would never fire); else budgets 0, step, ... up to one that holds all. */
static int64_t points(void *ctx) {
  (void)ctx;
  int64_t b = rel_vfs_bytes_written();
  return b ? b / step + 1 : 0;
}
static int fired(void *ctx) {
  (void)ctx;
  return rel_vfs_fired();
}

static int mentions_full(const char *msg) {
  for (const char *p = msg; *p; p++)
    if (!strncasecmp(p, "full", 4)) return 1;
  return 0;
}

static int error_ok(void *ctx, int code, const char *msg) {
  (void)ctx;
  return code == OPLOG_IO && mentions_full(msg);
}

static void fill_until_full(const char *dir) {
  const char *path = rel_path(dir, "fill.db");
  rel_remove_db(path);
  oplog_db *db = rel_open(path, rel_key);
  REL_OK(db, rel_define_workload(db, "f"));
  int64_t initial, id, last = 0, acked = 0;
  REL_OK(db, oplog_ticket(db, "agg_f", &initial));
  REL_OK(db, rel_seed_counter(db, "f", &id));
  acked = 1;
  rel_vfs_arm_budget(300 * 1024);
  int rc = OPLOG_OK;
  for (int64_t s = 1; s < 100000; s++) {
    rc = rel_write_tx(db, "f", 1, s, 3000, &id);
    if (rc) break;
    last = id;
    acked++;
  }
  REL_CHECK(rc == OPLOG_IO && mentions_full(oplog_errmsg(db)),
            "a full disk gave %s: %s (want io, \"full\")", oplog_code_name(rc), oplog_errmsg(db));
  REL_CHECK(!oplog_tx_active(db), "transaction left open on a full disk");
  REL_CHECK(last > 0, "nothing fitted in the budget");
  /* Still full: reads work and see everything acknowledged. */
  oplog_entry *e = NULL;
  REL_OK(db, oplog_entry_get(db, last, &e));
  oplog_entry_free(e);
  REL_CHECK(rel_count_entries(db, NULL) == acked, "acknowledged entries missing on a full disk");
  REL_CHECK(rel_verify(db, 0, "diskfull"), "verify fails while the disk is full");
  /* A second write still fails cleanly. */
  rc = rel_write_tx(db, "f", 2, 1, 3000, &id);
  REL_CHECK(rc == OPLOG_IO, "second write on a full disk: %s: %s", oplog_code_name(rc),
            oplog_errmsg(db));
  rel_vfs_disarm();
  /* Space freed: the same handle writes again. */
  REL_OK(db, rel_write_tx(db, "f", 3, 1, 3000, &id));
  acked++;
  oplog_close(db);
  char msg[512];
  REL_CHECK(rel_integrity_ok(path, msg, sizeof msg), "integrity_check: %s", msg);
  db = rel_open(path, rel_key);
  REL_CHECK(rel_verify(db, 1, "diskfull"), "verify after the disk was freed");
  REL_CHECK(rel_check_workload(db, path, "f", initial) == acked, "entries lost");
  oplog_close(db);
  printf("diskfull: filled after %" PRId64 " transactions; all readable while full\n", acked);
}

int main(void) {
  rel_vfs_install();
  step = rel_env_int("REL_FULL_STEP", 2048);
  const char *only = getenv("REL_SCENARIOS");
  char *dir = rel_mkdtemp_fast("diskfull");
  rel_sweep_setup(dir);
  rel_injector inj = {"full", arm, disarm, points, fired, NULL, error_ok, 0, NULL};
  rel_sweep_stats st = {0};
  rel_sweep_run(&inj,
                only && *only ? only
                              : "create,define,tx,tx_big,tx_rollback,lowlevel,replay,replay_into,"
                                "verify,rotate,rekey,close,migrate",
                1, 0, &st);
  printf("diskfull: %" PRId64 " budgets injected, %" PRId64 " errors returned, %" PRId64
         " findings\n",
         st.points, st.fired_errors, st.findings);
  fill_until_full(dir);
  if (st.findings == 0) rel_rmdir_all(dir);
  free(dir);
  return st.findings ? 1 : 0;
}
