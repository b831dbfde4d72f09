/*
 * rel_iofault.c — every VFS call of each kind (read, write, full, sync,
 * lock, shmlock, truncate, open) failed once, at every point of every
 * library path (rel_sweep.c has the paths and the checks).
 *
 * Knobs: REL_IO_KINDS (comma list of kinds, default all), REL_SCENARIOS
 * (comma list, default all), REL_STRIDE (inject at every k-th point, 1).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rel_common.h"
#include "rel_sweep.h"
#include "rel_vfs.h"

static void arm(void *ctx, int64_t n) { rel_vfs_arm((enum rel_fault_kind)(intptr_t)ctx, n); }
static void disarm(void *ctx) {
  (void)ctx;
  rel_vfs_disarm();
}
static int64_t points(void *ctx) { return rel_vfs_calls((enum rel_fault_kind)(intptr_t)ctx); }
static int fired(void *ctx) {
  (void)ctx;
  return rel_vfs_fired();
}

static int in_list(const char *list, const char *name) {
  if (!list) return 1;
  size_t n = strlen(name);
  for (const char *p = list;;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && !strncmp(p, name, n)) return 1;
    if (!e) return 0;
    p = e + 1;
  }
}

int main(void) {
  /* Before any SQLite use: every connection must go through the shim. */
  rel_vfs_install();
  const char *kinds = getenv("REL_IO_KINDS");
  const char *only = getenv("REL_SCENARIOS");
  int64_t stride = rel_env_int("REL_STRIDE", 1);
  char *dir = rel_mkdtemp_fast("iofault");
  rel_sweep_setup(dir);
  rel_sweep_stats total = {0};
  for (int k = 0; k < REL_F__COUNT; k++) {
    if (!in_list(kinds, rel_fault_names[k])) continue;
    rel_injector inj = {rel_fault_names[k], arm, disarm, points, fired, NULL, NULL,
                        /* a failed fsync after the WAL write may still commit */
                        k == REL_F_SYNC, (void *)(intptr_t)k};
    rel_sweep_stats st = {0};
    rel_sweep_run(&inj, only && *only ? only : NULL, stride, 0, &st);
    printf("iofault %-8s: %6" PRId64 " faults injected, %6" PRId64 " errors returned, %5" PRId64
           " absorbed, %3" PRId64 " ambiguous commits, %3" PRId64 " findings\n",
           rel_fault_names[k], st.points, st.fired_errors, st.absorbed, st.ambiguous,
           st.findings);
    total.points += st.points;
    total.findings += st.findings;
    total.ambiguous += st.ambiguous;
  }
  printf("iofault: %" PRId64 " fault points injected, %" PRId64 " findings\n", total.points,
         total.findings);
  if (total.findings == 0) rel_rmdir_all(dir);
  free(dir);
  return total.findings ? 1 : 0;
}
