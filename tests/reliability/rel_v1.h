/*
 * rel_v1.h — the format-1 fixture (tests/fixtures/format1/v1-encrypted.db,
 * key v1.key, written by the format-1 code) for the migration-under-faults
 * scenarios of the power-cut, I/O-fault and OOM sweeps.
 *
 * A writable open with the key migrates a format-1 file in place, in one
 * transaction. After a kill, an I/O error or a failed allocation anywhere
 * in it, the file must be either still format 1 and unchanged, or fully
 * format 2 with the same 14 entries (seq 1..14, same bytes and hashes as
 * the fixture's expected.lua) — never in between — and it must open,
 * verify with replay, migrate and take new entries.
 *
 * The fixture directory is $OPLOG_SOURCE_DIR/tests/fixtures/format1 (the
 * source tree compiled in when the variable is unset).
 */
#ifndef REL_V1_H
#define REL_V1_H

#include <stddef.h>
#include <stdint.h>

#include "oplog.h"

#define REL_V1_ENTRIES 14

/* Reads the fixture once (with the faults disarmed): its hashes against
 * expected.lua, a pristine copy in dir that the library never opens, and
 * its entries as the library reads them read-only (the reference). */
void rel_v1_setup(const char *dir);
/* A fresh copy of the fixture at dst (its -wal/-shm removed). */
void rel_v1_copy(const char *dst);
/* Open options with the fixture's key (v1.key's bytes). */
oplog_open_opts rel_v1_opts(int readonly);

/* The file as raw SQL sees it (read-only, the library not involved):
 * 1 = format 1, unchanged (schema and every row as in the fixture);
 * 2 = fully format 2: user_version 2, the fixture's 14 entries with
 *     seq = clock = id, origin 1, format 1, the same created, aggregate,
 *     key, data, prev_hash and hash, metadata blobs holding the old
 *     metadata rows, derived tables and config complete, one origin, the
 *     same data keys, live tables, catalog and tickets unchanged; plus
 *     `extra` format-2 entries chained on (seq 15, ...);
 * 0 = anything else, with the reason in msg. */
int rel_v1_format(const char *path, int64_t extra, char *msg, size_t msglen);

/* After a fault: rel_v1_format, then through the library (faults off):
 * thorough only: a read-only open (the entries as the fixture's, head,
 * verify with replay; the file left as it was); then a writable open
 * (migrates if needed: format 2, the same entries, verify with replay) and
 * one new entry (format 2, seq 15, chained on; verified again when
 * thorough) unless `extra` entries were written already. Returns the format
 * found first (1 or 2), or 0 with the reason in msg. */
int rel_v1_check(const char *path, int64_t extra, int thorough, char *msg, size_t msglen);

/* On a handle that opened (and so migrated) the file: verify with replay
 * finds the 14 entries, and the handle writes one more (then verified
 * again if verify_after). 0 and msg on a failure. The file then holds 1
 * extra entry. */
int rel_v1_continue(oplog_db *db, int verify_after, char *msg, size_t msglen);

#endif
