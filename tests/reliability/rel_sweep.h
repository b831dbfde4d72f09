/*
 * rel_sweep.h — runs every library path with a fault injected at every
 * point, the way SQLite's own I/O-error and OOM tests do.
 *
 * A path ("scenario") is one user-level action: open, define, a
 * transaction, a low-level write, reads, replay, verify, key rotation,
 * close... For each, a dry run counts the injector's points (VFS calls of
 * one kind, or allocations); then for N = 1..count a fresh copy of a base
 * file gets the fault at point N. After each run the harness checks:
 *  - the code is one the injector allows (io/busy/nomem/readonly), and
 *    an error was caused by the fault (no error without it);
 *  - no transaction is left open and the same handle can write again once
 *    the fault is gone ("writing continues");
 *  - after close and reopen: integrity_check ok, verify (with replay) ok,
 *    the workload invariants hold, and the entry count is the count before
 *    plus what was acknowledged (an error must have left nothing, except
 *    where a failed sync makes the commit ambiguous);
 *  - the injector's own check (no leak for OOM).
 * A sweep whose fault fired nowhere (zero points injected, for the whole
 * sweep or for a path whose dry run counted points) is a finding too: it
 * tested nothing. Violations are findings: counted, the first ones printed,
 * and the program fails at the end.
 */
#ifndef REL_SWEEP_H
#define REL_SWEEP_H

#include <stddef.h>
#include <stdint.h>

typedef struct rel_injector {
  const char *name;
  void (*arm)(void *ctx, int64_t fail_at); /* 0: count only */
  void (*disarm)(void *ctx);
  int64_t (*points)(void *ctx); /* points seen since arm */
  int (*fired)(void *ctx);
  /* Extra check after everything is closed; returns 0 and fills msg on a
   * violation (e.g. a leak). May be NULL. */
  int (*after_close)(void *ctx, char *msg, size_t msglen);
  /* Extra rule for an error's code and message (e.g. "full" for a full
   * disk); returns 0 when they are not acceptable. May be NULL. */
  int (*error_ok)(void *ctx, int code, const char *msg);
  /* Committed despite an error is acceptable (a failed fsync). */
  int ambiguous_commit_ok;
  void *ctx;
} rel_injector;

typedef struct rel_sweep_stats {
  int64_t points;       /* faults injected */
  int64_t fired_errors; /* runs that returned an error */
  int64_t absorbed;     /* faults the library or SQLite recovered from */
  int64_t ambiguous;    /* error reported, entry committed (failed sync) */
  int64_t findings;
} rel_sweep_stats;

/* Prepares the base file in dir (shim/allocator disarmed). */
void rel_sweep_setup(const char *dir);
/* Sweeps every scenario named in the comma list `only` (NULL: all) with the
 * injector; stride > 1 injects at every stride-th point only, except in
 * scenarios with at most full_below points, which get every point. */
void rel_sweep_run(const rel_injector *inj, const char *only, int64_t stride,
                   int64_t full_below, rel_sweep_stats *st);
/* For sweeps with thousands of migrate points: lean checks each run's file
 * through the library once (writable open, verify with replay, a new
 * entry) instead of also read-only and verifying again; migrate's stride
 * is the sweep's times stride_factor (paths under full_below excepted). */
void rel_sweep_v1_options(int lean, int64_t stride_factor);
/* Number of scenarios and their names (for listings). */
int rel_sweep_nscenarios(void);
const char *rel_sweep_scenario_name(int i);

#endif
