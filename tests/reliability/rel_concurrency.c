/*
 * rel_concurrency.c — several processes write to shared aggregates of one
 * file at once.
 *
 * REL_WORKERS (4) processes each commit REL_TX (500) transactions on three
 * shared aggregates: most through the high-level path (BEGIN IMMEDIATE,
 * busy_timeout), one in four through the low-level path with a ticket read
 * BEFORE the transaction (so it is often stale): oplog_ticket, a short
 * pause, oplog_begin, oplog_write_entry, oplog_commit, retrying on
 * OPLOG_TICKET_CONFLICT / OPLOG_BUSY. Low-level entries create and delete
 * the same item, so the live tables (which that path does not touch) stay
 * equal to a replay of the log.
 *
 * Each worker logs (entry id, worker, seq) of what it committed; the parent
 * then checks: the log holds exactly the logged entries (none lost, none
 * duplicated, metadata matching), each ticket equals its initial version
 * plus its entries, the live tables match the log (rel_check_workload and
 * verify with replay), and every failure a worker saw was a clean
 * ticket_conflict or busy (a worker exits non-zero on anything else).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rel_common.h"

static const char *const AGG[] = {"x", "y", "z"};
#define NAGG 3

typedef struct rec {
  int64_t entry, worker, seq;
} rec;

typedef struct wstats {
  int64_t committed, lowlevel, conflicts, busy;
} wstats;

static int lowlevel_tx(oplog_db *db, const char *s, int64_t worker, int64_t seq, rel_rng *rng,
                       int64_t *id) {
  char agg[64], tname[64];
  snprintf(agg, sizeof agg, "agg_%s", s);
  snprintf(tname, sizeof tname, "item_%s", s);
  int64_t ticket = 0;
  int rc = oplog_ticket(db, agg, &ticket);
  if (rc) return rc;
  /* Let others move the ticket on: the stale-ticket path must be taken. */
  usleep((useconds_t)rel_below(rng, 800));
  int64_t item = worker * 1000000 + seq;
  oplog_field f[4] = {{"id", {OPLOG_INTEGER, {.i = item}}},
                      {"worker", {OPLOG_INTEGER, {.i = worker}}},
                      {"seq", {OPLOG_INTEGER, {.i = seq}}},
                      {"payload", {OPLOG_BLOB, {.b = {"ll", 2}}}}};
  oplog_op ops[2] = {{tname, OPLOG_OP_CREATE, {f, 4}, NULL, 0, NULL, 0},
                     {tname, OPLOG_OP_DELETE, {f, 1}, NULL, 0, NULL, 0}};
  char ws[32], ss[32];
  snprintf(ws, sizeof ws, "%" PRId64, worker);
  snprintf(ss, sizeof ss, "%" PRId64, seq);
  oplog_meta md[3] = {{"worker", ws}, {"seq", ss}, {"via", "lowlevel"}};
  oplog_entry_write w = {agg, ticket, md, 3, ops, 2};
  rc = oplog_begin(db);
  if (rc) return rc;
  rc = oplog_write_entry(db, &w, id);
  if (rc == OPLOG_OK) rc = oplog_commit(db);
  if (rc) {
    int rrc = oplog_rollback(db);
    if (rrc != OPLOG_OK && rrc != OPLOG_INVALID_ARGUMENT) {
      fprintf(stderr, "worker %" PRId64 ": rollback after %s: %s: %s\n", worker,
              oplog_code_name(rc), oplog_code_name(rrc), oplog_errmsg(db));
      _exit(2);
    }
  }
  return rc;
}

static void worker_main(const char *path, const char *logpath, int64_t worker, int64_t ntx,
                        uint64_t seed) {
  rel_rng rng = {seed * 7919 + (uint64_t)worker};
  oplog_db *db = NULL;
  oplog_open_opts o = rel_opts(rel_key);
  o.busy_timeout_ms = 20000;
  int rc = oplog_open(path, &o, &db);
  if (rc) {
    fprintf(stderr, "worker %" PRId64 ": open: %s: %s\n", worker, oplog_code_name(rc),
            db ? oplog_errmsg(db) : "");
    _exit(2);
  }
  FILE *log = fopen(logpath, "wb");
  if (!log) _exit(2);
  wstats st = {0};
  for (int64_t seq = 1; seq <= ntx; seq++) {
    const char *s = AGG[rel_below(&rng, NAGG)];
    int low = rel_below(&rng, 4) == 0;
    for (int attempt = 0;; attempt++) {
      int64_t id = 0;
      rc = low ? lowlevel_tx(db, s, worker, seq, &rng, &id)
               : rel_write_tx(db, s, worker, seq, rel_payload_len(seq), &id);
      if (rc == OPLOG_OK) {
        rec r = {id, worker, seq};
        if (fwrite(&r, sizeof r, 1, log) != 1) _exit(2);
        st.committed++;
        st.lowlevel += low;
        break;
      }
      if (rc == OPLOG_TICKET_CONFLICT)
        st.conflicts++;
      else if (rc == OPLOG_BUSY)
        st.busy++;
      else {
        fprintf(stderr, "worker %" PRId64 " seq %" PRId64 ": unclean failure %s: %s\n", worker,
                seq, oplog_code_name(rc), oplog_errmsg(db));
        _exit(2);
      }
      if (oplog_tx_active(db)) {
        fprintf(stderr, "worker %" PRId64 ": transaction left open after %s\n", worker,
                oplog_code_name(rc));
        _exit(2);
      }
      if (attempt > 10000) {
        fprintf(stderr, "worker %" PRId64 ": starved\n", worker);
        _exit(2);
      }
    }
  }
  if (fwrite(&st, sizeof st, 1, log) != 1 || fclose(log) != 0) _exit(2);
  oplog_close(db);
  _exit(0);
}

static int cmp_rec(const void *a, const void *b) {
  const rec *x = a, *y = b;
  if (x->worker != y->worker) return x->worker < y->worker ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Globals, not locals: the forked workers exit without freeing what the
 * parent allocated, and valgrind's leak check in each worker must see these
 * as still reachable. */
static char *dir;
static const char *path;
static pid_t *pids;

int main(void) {
  int64_t nworkers = rel_env_int("REL_WORKERS", 4);
  int64_t ntx = rel_env_int("REL_TX", 500);
  uint64_t seed = (uint64_t)rel_env_int("REL_SEED", 20261121);
  dir = rel_mkdtemp("concurrency");
  path = strdup(rel_path(dir, "conc.db"));

  oplog_db *db = rel_open(path, rel_key);
  int64_t initial[NAGG], id;
  for (int a = 0; a < NAGG; a++) {
    char agg[64];
    snprintf(agg, sizeof agg, "agg_%s", AGG[a]);
    REL_OK(db, rel_define_workload(db, AGG[a]));
    REL_OK(db, oplog_ticket(db, agg, &initial[a]));
    REL_CHECK(initial[a] == 1, "a new aggregate's ticket starts at %" PRId64 ", not 1",
              initial[a]);
    REL_OK(db, rel_seed_counter(db, AGG[a], &id));
  }
  int64_t seeded = rel_count_entries(db, NULL);
  oplog_close(db);

  pids = calloc((size_t)nworkers, sizeof *pids);
  for (int64_t w = 0; w < nworkers; w++) {
    char lp[64];
    snprintf(lp, sizeof lp, "worker%" PRId64 ".log", w + 1);
    const char *logpath = rel_path(dir, lp);
    pids[w] = fork();
    REL_CHECK(pids[w] >= 0, "fork: %s", strerror(errno));
    if (pids[w] == 0) worker_main(path, logpath, w + 1, ntx, seed);
  }
  int failed = 0;
  for (int64_t w = 0; w < nworkers; w++) {
    int st;
    REL_CHECK(waitpid(pids[w], &st, 0) == pids[w], "waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "worker %" PRId64 " failed (status 0x%x)\n", w + 1, st);
      failed = 1;
    }
  }
  REL_CHECK(!failed, "a worker saw an unclean failure or crashed");

  /* Gather what the workers were told is committed. */
  rec *logged = NULL;
  size_t nlogged = 0;
  wstats total = {0};
  for (int64_t w = 0; w < nworkers; w++) {
    char lp[64];
    snprintf(lp, sizeof lp, "worker%" PRId64 ".log", w + 1);
    FILE *f = fopen(rel_path(dir, lp), "rb");
    REL_CHECK(f != NULL, "open %s", lp);
    logged = realloc(logged, (nlogged + (size_t)ntx) * sizeof *logged);
    size_t n = fread(logged + nlogged, sizeof *logged, (size_t)ntx, f);
    REL_CHECK(n == (size_t)ntx, "worker %" PRId64 " logged %zu commits", w + 1, n);
    nlogged += n;
    wstats ws;
    REL_CHECK(fread(&ws, sizeof ws, 1, f) == 1, "worker stats");
    fclose(f);
    total.committed += ws.committed;
    total.lowlevel += ws.lowlevel;
    total.conflicts += ws.conflicts;
    total.busy += ws.busy;
  }

  /* What the log holds. */
  db = rel_open(path, rel_key);
  rec *found = malloc((nlogged + 1) * sizeof *found);
  size_t nfound = 0;
  oplog_filter f;
  memset(&f, 0, sizeof f);
  oplog_iter *it = NULL;
  REL_OK(db, oplog_entries(db, &f, &it));
  const oplog_entry *e;
  int64_t total_entries = 0;
  for (;;) {
    REL_OK(db, oplog_iter_next(it, &e));
    if (!e) break;
    total_entries++;
    int64_t w = -1, s = -1;
    for (size_t i = 0; i < e->nmetadata; i++) {
      if (!strcmp(e->metadata[i].key, "worker")) w = strtoll(e->metadata[i].value, NULL, 10);
      if (!strcmp(e->metadata[i].key, "seq")) s = strtoll(e->metadata[i].value, NULL, 10);
    }
    if (w < 0) continue; /* the counter seeds */
    REL_CHECK(nfound < nlogged, "more worker entries in the log than were acknowledged");
    found[nfound++] = (rec){e->id, w, s};
  }
  oplog_iter_close(it);
  REL_CHECK(total_entries == seeded + (int64_t)nlogged,
            "%" PRId64 " entries, expected %" PRId64 " seeds + %zu acknowledged", total_entries,
            seeded, nlogged);
  qsort(logged, nlogged, sizeof *logged, cmp_rec);
  qsort(found, nfound, sizeof *found, cmp_rec);
  REL_CHECK(nfound == nlogged, "%zu worker entries in the log, %zu acknowledged", nfound,
            nlogged);
  for (size_t i = 0; i < nlogged; i++) {
    REL_CHECK(i == 0 || cmp_rec(&found[i], &found[i - 1]) != 0,
              "duplicated: worker %" PRId64 " seq %" PRId64 " twice", found[i].worker,
              found[i].seq);
    REL_CHECK(!cmp_rec(&found[i], &logged[i]) && found[i].entry == logged[i].entry,
              "lost or misplaced: worker %" PRId64 " seq %" PRId64 " acknowledged as entry %" PRId64
              ", log has worker %" PRId64 " seq %" PRId64 " at %" PRId64,
              logged[i].worker, logged[i].seq, logged[i].entry, found[i].worker, found[i].seq,
              found[i].entry);
  }
  int64_t per_agg = 0;
  for (int a = 0; a < NAGG; a++) per_agg += rel_check_workload(db, path, AGG[a], initial[a]);
  REL_CHECK(per_agg == total_entries, "aggregates hold %" PRId64 " of %" PRId64 " entries",
            per_agg, total_entries);
  REL_CHECK(rel_verify(db, 1, "concurrency"), "verify failed");
  oplog_close(db);
  char msg[512];
  REL_CHECK(rel_integrity_ok(path, msg, sizeof msg), "integrity_check: %s", msg);

  printf("concurrency: %" PRId64 " workers x %" PRId64 " = %" PRId64
         " transactions committed (%" PRId64 " low-level), %" PRId64
         " ticket conflicts and %" PRId64 " busy retried, nothing lost or duplicated\n",
         nworkers, ntx, total.committed, total.lowlevel, total.conflicts, total.busy);
  REL_CHECK(total.committed == nworkers * ntx, "committed count");
  /* The stale-ticket path must really have been taken (not just planned). */
  if (nworkers > 1 && ntx >= 200)
    REL_CHECK(total.conflicts > 0, "no ticket conflict seen: the stale path was not exercised");
  free(logged);
  free(found);
  free(pids);
  rel_rmdir_all(dir);
  free((char *)path);
  free(dir);
  return 0;
}
