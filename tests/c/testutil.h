/* testutil.h — a tiny harness: each TEST is a ctest case run by name
 * (`test_core <name>`), with a fresh temp directory and checks that report
 * file:line and the handle's error message. */
#ifndef OPLOG_TESTUTIL_H
#define OPLOG_TESTUTIL_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oplog.h"

typedef void (*test_fn)(void);
struct test_case {
  const char *name;
  test_fn fn;
};

extern char tmpdir[512];
extern int failures;

#define CHECK(cond)                                                                               \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                    \
      failures++;                                                                                 \
      return;                                                                                     \
    }                                                                                             \
  } while (0)

/* rc must equal expected; on mismatch prints the handle's message. */
#define CHECK_RC(db, expr, expected)                                                              \
  do {                                                                                            \
    int rc_ = (expr);                                                                             \
    if (rc_ != (expected)) {                                                                      \
      fprintf(stderr, "%s:%d: %s returned %s (%s), expected %s\n", __FILE__, __LINE__, #expr,    \
              oplog_code_name(rc_), (db) ? oplog_errmsg(db) : "", oplog_code_name(expected));     \
      failures++;                                                                                 \
      return;                                                                                     \
    }                                                                                             \
  } while (0)

#define OK(db, expr) CHECK_RC(db, expr, OPLOG_OK)

char *tpath(const char *name); /* tmpdir/name, static buffer rotated 8x */
int test_main(int argc, char **argv, const struct test_case *cases);

/* Helpers for common set-ups. */
oplog_db *open_plain(const char *name);
oplog_db *open_keyed(const char *name, const unsigned char key[32]);
int define_user(oplog_db *db);  /* users: id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, age INTEGER, photo BLOB */
int define_group(oplog_db *db); /* groups (aggregate users): id INTEGER PRIMARY KEY, title TEXT */
oplog_value vint(int64_t i);
oplog_value vtext(const char *s);
oplog_value vreal(double r);
oplog_value vblob(const void *p, size_t n);
oplog_value vnull(void);
/* One transaction creating user (id, name, age) with metadata; returns the entry id or 0. */
int64_t write_user(oplog_db *db, int64_t id, const char *name, int64_t age);
int64_t count_rows(const char *path, const char *sql); /* raw SQLite: first column of sql */
int exec_raw(const char *path, const char *sql);       /* raw SQLite exec, SQLITE_OK = 0 */

/* ---- format 2, as the design notes describe it, computed independently of
 * the core (raw SQLite and libsodium only). */

/* One pair of a metadata blob, pointing into the blob. */
typedef struct ref_pair {
  const unsigned char *key, *value;
  size_t nkey, nvalue;
  int has_value;
} ref_pair;
/* Decodes a metadata blob: u32 n, then n x (len32 key, u8 has_value,
 * [len32 value]), little-endian, nothing after. Fills up to max pairs;
 * returns n, or -1 if the blob is malformed. */
int ref_meta_decode(const void *blob, size_t n, ref_pair *out, int max);
/* Encodes pairs (value NULL: no value) into buf; returns the size, or 0 if
 * it does not fit. */
size_t ref_meta_encode(const oplog_meta *md, size_t n, unsigned char *buf, size_t cap);
/* BLAKE2b-256("oplog-entry-v2" || prev_hash || origin_id || u64 seq ||
 * u64 clock || u64 created || u64 key_id || len32(aggregate_name) ||
 * len32(metadata) || len32(data)), u64/len32 little-endian. */
void ref_entry_hash(const unsigned char prev[32], const unsigned char origin[32], int64_t seq, int64_t clock,
                    int64_t created, int64_t key_id, const void *agg, size_t nagg, const void *md, size_t nmd,
                    const void *data, size_t ndata, unsigned char out[32]);
/* Checks every format-2 entry of the file against the reference: its hash
 * recomputed, prev_hash = its origin's previous seq's hash (zeros for seq
 * 1), seqs 1, 2, 3, ... per origin in id order. 1 if all hold; else 0 and
 * why. */
int ref_check_chain(const char *path, char *why, size_t nwhy);
/* As an attacker with the file: recomputes prev_hash and hash of every
 * entry of every origin in id order (triggers must be gone). 0 on success. */
int ref_rehash_all(const char *path);
/* The derived tables against the entries (raw SQL): oplog_index and
 * oplog_metadata hold exactly the entries with id <= 'indexed_upto' (the
 * metadata rows = the blob's pairs, positions 1..n), oplog_ticket versions =
 * 1 + covered entries of the aggregate, 'clock' = the largest covered clock.
 * full: also every entry covered. 1 if all hold; else 0 and why. */
int check_derived(const char *path, int full, char *why, size_t nwhy);
/* Total metadata pairs over all entries' blobs (-1: a malformed blob). */
int64_t ref_meta_pairs_total(const char *path);

#endif
