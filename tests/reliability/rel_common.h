/*
 * rel_common.h — helpers shared by the reliability tests (tests/reliability):
 * temp dirs, a seeded PRNG, env knobs, raw SQLite checks that bypass the
 * library, and the workload schema every test writes to.
 */
#ifndef REL_COMMON_H
#define REL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "oplog.h"

/* Fails the whole test program: a broken invariant, not a finding to tally. */
#define REL_CHECK(cond, ...)                                                  \
  do {                                                                        \
    if (!(cond)) rel_die(__FILE__, __LINE__, #cond, __VA_ARGS__);             \
  } while (0)

/* Asserts an oplog call succeeded, printing oplog_errmsg otherwise. */
#define REL_OK(db, call)                                                      \
  do {                                                                        \
    int rc_ = (call);                                                         \
    if (rc_ != OPLOG_OK)                                                      \
      rel_die(__FILE__, __LINE__, #call, "%s: %s", oplog_code_name(rc_),     \
              (db) ? oplog_errmsg(db) : "(no handle)");                      \
  } while (0)

void rel_die(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

/* Integer env knob with a default (REL_* variables, see README.md). */
int64_t rel_env_int(const char *name, int64_t def);

/* splitmix64: small, seedable, identical on every platform. */
typedef struct rel_rng {
  uint64_t s;
} rel_rng;
uint64_t rel_rand(rel_rng *r);
uint64_t rel_below(rel_rng *r, uint64_t n); /* 0..n-1, n > 0 */

/* A fresh directory under $TMPDIR (or /tmp); removed by rel_rmdir_all. */
char *rel_mkdtemp(const char *tag);
void rel_rmdir_all(const char *dir);
/* The same, on /dev/shm when it is usable (REL_NO_SHM=1 to avoid): for the
 * fault sweeps, whose thousands of runs would otherwise wait on fsync. */
char *rel_mkdtemp_fast(const char *tag);
/* path = dir/name in a static rotating buffer (4 slots). */
const char *rel_path(const char *dir, const char *name);
/* Removes a database and its -wal / -shm / -journal files. */
void rel_remove_db(const char *path);
/* Copies the main file only (the source must have no -wal). */
void rel_copy_file(const char *src, const char *dst);

/* ---- raw SQLite, bypassing the library (read-only) */
/* 1 if PRAGMA integrity_check says "ok"; else 0 with the reason in msg. */
int rel_integrity_ok(const char *path, char *msg, size_t msglen);
/* A scalar integer query on a read-only connection; dies on error. */
int64_t rel_query_int(const char *path, const char *sql);

/* Format 2 keeps an entry's metadata in its row (oplog_entries.metadata:
 * u32 n, then n x (len32 key, key, u8 has_value, [len32 value, value]),
 * little-endian); oplog_metadata is derived and may lag. Decodes a blob:
 * calls each(ctx, key, klen, value or NULL, vlen) per pair in order;
 * returns the number of pairs, or -1 if the blob does not decode. */
int64_t rel_meta_blob_walk(const void *blob, size_t n,
                           void (*each)(void *ctx, const char *k, size_t kn, const char *v,
                                        size_t vn),
                           void *ctx);
/* Entries whose metadata blob holds the pair key=value (raw read-only SQL
 * and the decoder above; dies on a blob that does not decode). */
int64_t rel_count_meta_raw(const char *path, const char *key, const char *value);

/* ---- the library */
extern const unsigned char rel_key[32];
/* The sync mode rel_opts uses (OPLOG_SYNC_FULL unless a test changes it:
 * the OOM sweep skips fsyncs, which test nothing there and cost time). */
extern int rel_default_sync;
/* Options with the test key (or plaintext when key == NULL). */
oplog_open_opts rel_opts(const unsigned char *key);
oplog_db *rel_open(const char *path, const unsigned char *key);
/* oplog_verify; returns 1 if the run succeeded and the log is ok; prints
 * each problem with `who` as prefix. */
int rel_verify(oplog_db *db, int replay, const char *who);
int64_t rel_count_entries(oplog_db *db, const char *aggregate);

/* ---- the workload schema
 * For a suffix s: aggregate "agg_s" with type "item_s" (table items_s:
 * id INTEGER PRIMARY KEY, worker, seq, payload BLOB, note TEXT) and type
 * "counter_s" (table counters_s: name TEXT PRIMARY KEY, last INTEGER). */
int rel_define_workload(oplog_db *db, const char *s);
/* Creates counter row "c" of agg_s (one entry). */
int rel_seed_counter(oplog_db *db, const char *s, int64_t *entry_id);
/* One high-level transaction on agg_s: creates item id = worker*1e6+seq
 * with a deterministic payload of plen bytes, sets counter "c".last to the
 * same id, metadata worker/seq/tag(key only)/multi(2 values). On failure
 * the code is returned (the library has rolled back). */
int rel_write_tx(oplog_db *db, const char *s, int64_t worker, int64_t seq, size_t plen,
                 int64_t *entry_id);
/* The deterministic payload byte i of item id. */
unsigned char rel_payload_byte(int64_t id, size_t i);
size_t rel_payload_len(int64_t id);

/* Checks the workload invariants of agg_s from outside the library: every
 * entry of agg_s exists with its live changes and vice versa, the counter
 * equals the newest entry's item, ticket == initial + entries. Returns the
 * number of entries of agg_s; dies on violation. */
int64_t rel_check_workload(oplog_db *db, const char *path, const char *s, int64_t initial_ticket);

/* Allowed codes for a failure caused by the environment (I/O, memory). */
int rel_env_code_ok(int code);

#endif
