/*
 * rel_powercut.c — a writer process is SIGKILLed at random moments; nothing
 * it was told is committed may be lost, nothing partial may remain, and the
 * next writer carries on.
 *
 * The child writes high-level transactions (sync full, metadata) and sends
 * each committed entry id over a pipe; every 40th transaction it also
 * rotates the data key. The parent waits for the first acknowledged entry
 * (opening and the first commit take longer than most delays), then kills
 * it after a seeded random delay, so that kills land among committed
 * writes; then it checks the file with raw SQLite (integrity_check,
 * read-only) before the library touches it, and with the library: verify
 * (with replay every 10th round), every acknowledged entry present with its
 * live row, the workload invariants (rel_check_workload) and exactly one
 * active key. A second phase kills writers while they create a brand-new
 * file (from the start: creation is what it tests).
 *
 * A kill keeps every write the process made (the kernel has them): it does
 * not test fsync. Power cuts, where unsynced writes are lost or torn, are
 * simulated at every point of each workload by rel_crashsim.c.
 *
 * Knobs: REL_SEED, REL_KILLS (default 110), REL_CREATE_KILLS (default 20),
 * REL_MAX_DELAY_US (default 25000).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rel_common.h"

static int count_active(void *ctx, int64_t id, int64_t created, const char *state) {
  (void)id;
  (void)created;
  if (!strcmp(state, "active")) ++*(int *)ctx;
  return 0;
}

/* The child: writes until killed. Round r uses worker id r + 1. */
static void child_writer(const char *path, int fd, int64_t round) {
  oplog_db *db = NULL;
  oplog_open_opts o = rel_opts(rel_key);
  int rc = oplog_open(path, &o, &db);
  if (rc) {
    fprintf(stderr, "child: open: %s: %s\n", oplog_code_name(rc), db ? oplog_errmsg(db) : "");
    _exit(3);
  }
  for (int64_t seq = 1;; seq++) {
    int64_t id = 0;
    rc = rel_write_tx(db, "p", round + 1, seq, rel_payload_len(round * 7 + seq), &id);
    if (rc) {
      fprintf(stderr, "child: tx: %s: %s\n", oplog_code_name(rc), oplog_errmsg(db));
      _exit(3);
    }
    if (write(fd, &id, sizeof id) != sizeof id) _exit(4);
    if (seq % 40 == 0) {
      int64_t kid;
      rc = oplog_rotate_key(db, &kid);
      if (rc) {
        fprintf(stderr, "child: rotate: %s: %s\n", oplog_code_name(rc), oplog_errmsg(db));
        _exit(3);
      }
    }
  }
}

/* Kills `child` after delay_us; returns 1 if the kill hit it alive. */
static int kill_after(pid_t child, long delay_us) {
  if (delay_us > 0) usleep((useconds_t)delay_us);
  int alive = kill(child, SIGKILL) == 0;
  int st;
  REL_CHECK(waitpid(child, &st, 0) == child, "waitpid: %s", strerror(errno));
  if (WIFEXITED(st)) {
    /* The child only exits by itself when something failed. */
    REL_CHECK(0, "writer exited by itself with status %d (see its message)", WEXITSTATUS(st));
  }
  return alive && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

/* Returns 1 if the log holds one entry more than was acknowledged (the
 * writer was killed between its commit and its report). */
static int check_round(const char *path, int64_t round, const int64_t *acked, size_t nacked,
                       int64_t initial_ticket, int replay) {
  char msg[512];
  REL_CHECK(rel_integrity_ok(path, msg, sizeof msg), "round %" PRId64 ": integrity_check: %s",
            round, msg);
  oplog_db *db = rel_open(path, rel_key);
  REL_CHECK(rel_verify(db, replay, "powercut"), "round %" PRId64 ": verify failed", round);
  for (size_t i = 0; i < nacked; i++) {
    oplog_entry *e = NULL;
    int rc = oplog_entry_get(db, acked[i], &e);
    REL_CHECK(rc == OPLOG_OK, "round %" PRId64 ": acknowledged entry %" PRId64 " lost: %s: %s",
              round, acked[i], oplog_code_name(rc), oplog_errmsg(db));
    /* Its metadata must say it is ours, in order. */
    char ws[32], ss[32];
    snprintf(ws, sizeof ws, "%" PRId64, round + 1);
    snprintf(ss, sizeof ss, "%zu", i + 1);
    REL_CHECK(e->nmetadata == 5 && !strcmp(e->metadata[0].key, "worker") &&
                  !strcmp(e->metadata[0].value, ws) && !strcmp(e->metadata[1].value, ss) &&
                  e->metadata[2].value == NULL && !strcmp(e->metadata[4].value, "y"),
              "round %" PRId64 ": entry %" PRId64 " has wrong metadata", round, acked[i]);
    oplog_entry_free(e);
  }
  rel_check_workload(db, path, "p", initial_ticket);
  /* The killed writer committed its acknowledged entries and at most one
   * more (killed between commit and report). */
  oplog_close(db);
  /* Counted in the entry rows themselves (raw SQL, metadata blob decoded
   * here): format 2's oplog_metadata is derived and may lag. */
  char ws[32];
  snprintf(ws, sizeof ws, "%" PRId64, round + 1);
  int64_t mine = rel_count_meta_raw(path, "worker", ws);
  REL_CHECK(mine == (int64_t)nacked || mine == (int64_t)nacked + 1,
            "round %" PRId64 ": %zu acknowledged but %" PRId64 " in the log", round, nacked, mine);
  db = rel_open(path, rel_key);
  int active = 0;
  REL_OK(db, oplog_keys(db, count_active, &active));
  REL_CHECK(active == 1, "round %" PRId64 ": %d active keys", round, active);
  oplog_close(db);
  return mine == (int64_t)nacked + 1;
}

int main(void) {
  int64_t seed = rel_env_int("REL_SEED", 20261121);
  int64_t kills = rel_env_int("REL_KILLS", 110);
  int64_t create_kills = rel_env_int("REL_CREATE_KILLS", 20);
  int64_t max_delay = rel_env_int("REL_MAX_DELAY_US", 25000);
  rel_rng rng = {(uint64_t)seed};
  signal(SIGPIPE, SIG_IGN);
  char *dir = rel_mkdtemp("powercut");
  const char *path = strdup(rel_path(dir, "pc.db"));

  /* Setup in the parent; closed before every fork (SQLite handles must not
   * cross a fork). */
  oplog_db *db = rel_open(path, rel_key);
  REL_OK(db, rel_define_workload(db, "p"));
  int64_t initial = 0;
  REL_OK(db, oplog_ticket(db, "agg_p", &initial));
  int64_t eid;
  REL_OK(db, rel_seed_counter(db, "p", &eid));
  oplog_close(db);

  int64_t survived = 0, total_acked = 0, hit_alive = 0, unreported = 0, min_acked = INT64_MAX;
  for (int64_t round = 0; round < kills; round++) {
    int fds[2];
    REL_CHECK(pipe(fds) == 0, "pipe");
    pid_t pid = fork();
    REL_CHECK(pid >= 0, "fork");
    if (pid == 0) {
      close(fds[0]);
      child_writer(path, fds[1], round);
    }
    close(fds[1]);
    int64_t *acked = NULL;
    size_t nacked = 0, cap = 0;
    int64_t v;
    ssize_t n;
    /* The first acknowledged entry, then the random delay: the kill lands
     * among committed transactions (opening and the first commit take
     * about as long as the longest delay). */
    if ((n = read(fds[0], &v, sizeof v)) == sizeof v) {
      cap = 64;
      acked = malloc(cap * sizeof *acked);
      REL_CHECK(acked != NULL, "malloc");
      acked[nacked++] = v;
    }
    long delay = (long)rel_below(&rng, (uint64_t)max_delay + 1);
    hit_alive += kill_after(pid, delay);
    while ((n = read(fds[0], &v, sizeof v)) == sizeof v) {
      if (nacked == cap) {
        cap = cap ? cap * 2 : 64;
        acked = realloc(acked, cap * sizeof *acked);
        REL_CHECK(acked != NULL, "realloc");
      }
      acked[nacked++] = v;
    }
    close(fds[0]);
    unreported += check_round(path, round, acked, nacked, initial, round % 10 == 9);
    if ((int64_t)nacked < min_acked) min_acked = (int64_t)nacked;
    /* Writing continues: the parent itself writes one transaction. */
    db = rel_open(path, rel_key);
    REL_OK(db, rel_write_tx(db, "p", 999000 + round / 1000, round % 1000 + 1, 5, &eid));
    oplog_close(db);
    total_acked += (int64_t)nacked;
    free(acked);
    survived++;
  }

  /* Phase 2: kills while a new file is being created and first used. */
  int64_t create_survived = 0;
  for (int64_t k = 0; k < create_kills; k++) {
    char name[64];
    snprintf(name, sizeof name, "new%" PRId64 ".db", k);
    const char *np = rel_path(dir, name);
    pid_t pid = fork();
    REL_CHECK(pid >= 0, "fork");
    if (pid == 0) {
      oplog_db *c = NULL;
      oplog_open_opts o = rel_opts(rel_key);
      if (oplog_open(np, &o, &c)) _exit(3);
      if (rel_define_workload(c, "p")) _exit(3);
      int64_t id;
      if (rel_seed_counter(c, "p", &id)) _exit(3);
      for (int64_t s = 1;; s++)
        if (rel_write_tx(c, "p", 1, s, 10, &id)) _exit(3);
    }
    long delay = (long)rel_below(&rng, 8000);
    kill_after(pid, delay);
    /* Whatever the kill left, the file opens with its key and works. The
     * raw check comes after the open here: a kill before the switch to WAL
     * leaves a hot rollback journal, which a read-only connection cannot
     * roll back ("attempt to write a readonly database"). */
    oplog_db *c = rel_open(np, rel_key);
    char imsg[512];
    REL_CHECK(rel_integrity_ok(np, imsg, sizeof imsg), "new file %s: integrity_check: %s", np,
              imsg);
    REL_OK(c, rel_define_workload(c, "p"));
    int64_t t0 = 0;
    REL_OK(c, oplog_ticket(c, "agg_p", &t0));
    int64_t n = rel_count_entries(c, "agg_p");
    if (n == 0) REL_OK(c, rel_seed_counter(c, "p", &eid));
    REL_OK(c, rel_write_tx(c, "p", 2, 1, 10, &eid));
    REL_CHECK(rel_verify(c, 1, "powercut-create"), "new file %s: verify failed", np);
    rel_check_workload(c, np, "p", t0 - n);
    oplog_close(c);
    create_survived++;
  }

  printf("powercut: seed %" PRId64 ": %" PRId64 " kills survived (%" PRId64
         " hit a live writer), %" PRId64 " acknowledged entries all present (at least %" PRId64
         " per kill), %" PRId64 " kills kept an entry committed but not yet reported; %" PRId64
         " kills during file creation survived\n",
         seed, survived, hit_alive, total_acked, kills ? min_acked : 0, unreported, create_survived);
  rel_rmdir_all(dir);
  free((char *)path);
  free(dir);
  return 0;
}
