/*
 * rel_oom.c — allocation failure at every allocation point of every library
 * path (rel_sweep.c). SQLite, protobuf-c (through the library's allocator)
 * and the library itself all allocate through sqlite3_malloc, so one
 * SQLITE_CONFIG_MALLOC wrapper reaches them all.
 *
 * Two modes: transient (only the Nth allocation fails) and persistent
 * (every allocation from the Nth on fails, which also exercises cleanup
 * under continued pressure). After each run every handle is closed and
 * sqlite3_memory_used() must be back at its baseline: a leak is a finding
 * even without ASan or valgrind.
 *
 * Knobs: REL_SCENARIOS, REL_STRIDE (transient: every k-th point, default 8
 * in the suite; 1 is every point, see run_long.sh), REL_OOM_PERSISTENT_STRIDE
 * (default 40; 0 skips the persistent mode), REL_OOM_MIGRATE_FACTOR (the
 * migrate path's strides are these times 3 by default), REL_FIRST / REL_LAST.
 */
#include <inttypes.h>
#include <malloc.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "rel_common.h"
#include "rel_sweep.h"

static sqlite3_mem_methods real;
static struct {
  int armed, persistent, fired;
  int64_t count, fail_at;
} M;
static sqlite3_int64 baseline;

static int fail_now(void) {
  if (!M.armed) return 0;
  int64_t c = ++M.count;
  if (M.fail_at > 0 && (c == M.fail_at || (M.persistent && c > M.fail_at))) {
    M.fired = 1;
    return 1;
  }
  return 0;
}

static void *m_malloc(int n) { return fail_now() ? NULL : real.xMalloc(n); }
static void m_free(void *p) { real.xFree(p); }
static void *m_realloc(void *p, int n) { return fail_now() ? NULL : real.xRealloc(p, n); }
static int m_size(void *p) { return real.xSize(p); }
static int m_roundup(int n) { return real.xRoundup(n); }
static int m_init(void *x) { return real.xInit(x); }
static void m_shutdown(void *x) { real.xShutdown(x); }

static void arm(void *ctx, int64_t n) {
  M.persistent = ctx != NULL;
  M.count = 0;
  M.fail_at = n;
  M.fired = 0;
  M.armed = 1;
}
static void disarm(void *ctx) {
  (void)ctx;
  M.armed = 0;
}
static int64_t points(void *ctx) {
  (void)ctx;
  return M.count;
}
static int fired(void *ctx) {
  (void)ctx;
  return M.fired;
}
static int no_leak(void *ctx, char *msg, size_t len) {
  (void)ctx;
  sqlite3_int64 now = sqlite3_memory_used();
  if (now == baseline) return 1;
  snprintf(msg, len, "leak: %lld bytes still allocated after close (baseline %lld)",
           (long long)(now - baseline), (long long)baseline);
  baseline = now; /* report each leak once */
  return 0;
}

/* The rule: an allocation failure is reported as nomem. */
static int nomem_only(void *ctx, int code, const char *msg) {
  (void)ctx;
  (void)msg;
  return code == OPLOG_NOMEM;
}

int main(void) {
  /* Thousands of open/close cycles: keep freed memory instead of handing
   * it back to the kernel each time (brk and its TLB flushes were a fifth
   * of the run on a VM). Only glibc's trimming policy; ASan and valgrind
   * bring their own allocator. */
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  /* First thing: the allocator can only be replaced before initialization. */
  if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real) != SQLITE_OK) return 2;
  sqlite3_mem_methods mine = {m_malloc, m_free,     m_realloc, m_size,
                              m_roundup, m_init, m_shutdown, NULL};
  if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mine) != SQLITE_OK) return 2;
  /* memory_used() is the leak check: make sure it is kept. */
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1);

  rel_default_sync = OPLOG_SYNC_NORMAL;
  const char *only = getenv("REL_SCENARIOS");
  if (only && !*only) only = NULL;
  int64_t stride = rel_env_int("REL_STRIDE", 8);
  int64_t pstride = rel_env_int("REL_OOM_PERSISTENT_STRIDE", 40);
  char *dir = rel_mkdtemp_fast("oom");
  rel_sweep_setup(dir);
  /* migrate alone has ~12 000 allocation points: sampled 3 times more
   * sparsely in the suite (run_long.sh takes every one) */
  rel_sweep_v1_options(1, rel_env_int("REL_OOM_MIGRATE_FACTOR", 3));
  baseline = sqlite3_memory_used();

  rel_injector inj = {"oom", arm, disarm, points, fired, no_leak, nomem_only, 0, NULL};
  rel_sweep_stats st = {0};
  rel_sweep_run(&inj, only, stride, rel_env_int("REL_FULL_BELOW", 250), &st);
  printf("oom transient : %6" PRId64 " allocation points failed, %6" PRId64
         " errors returned, %5" PRId64 " absorbed, %3" PRId64 " findings\n",
         st.points, st.fired_errors, st.absorbed, st.findings);
  rel_sweep_stats ps = {0};
  if (pstride > 0) {
    rel_injector pinj = inj;
    pinj.name = "oom-persistent";
    pinj.ctx = &pinj; /* non-NULL: persistent */
    rel_sweep_run(&pinj, only, pstride, 0, &ps);
    printf("oom persistent: %6" PRId64 " allocation points failed, %6" PRId64
           " errors returned, %5" PRId64 " absorbed, %3" PRId64 " findings\n",
           ps.points, ps.fired_errors, ps.absorbed, ps.findings);
  }
  int64_t findings = st.findings + ps.findings;
  printf("oom: %" PRId64 " allocation points failed, %" PRId64 " findings\n",
         st.points + ps.points, findings);
  if (findings == 0) rel_rmdir_all(dir);
  free(dir);
  return findings ? 1 : 0;
}
