/*
 * rel_crashvfs.h — a power-cut simulator: an SQLite VFS that keeps what no
 * sync has made durable in memory, after SQLite's own crash VFS (test6.c).
 *
 * Per file (the database, its -wal, a rollback -journal: every file with a
 * name; temporary files pass straight through) the shim holds the file as
 * the process sees it (an in-memory image that reads, writes, truncates and
 * the file size use) and the list of the writes and truncates made since
 * the file's last xSync. The real file on disk is the durable state: an
 * xSync of a file applies its pending changes to the real file (and nothing
 * else: which file was synced matters, as with fsync). Creating and deleting
 * a file are durable at once (SQLite syncs directories where it needs to).
 *
 * Points are the calls that change files: xWrite, xTruncate, xSync, xDelete
 * of named files, counted across files from arming. Right before the Nth
 * (or at rel_crashvfs_cut), the power is cut:
 *  - KILL:    a process kill: every pending change reaches the file (the
 *             kernel keeps them), the -shm stays;
 *  - DISCARD: every pending change of every file is lost;
 *  - TEAR:    every 512-byte sector that pending changes touched ends up as
 *             it was at the file's last sync or as it was after one of the
 *             changes that touched it since (chosen at random, seeded): a
 *             random subset of the unsynced sectors reaches the disk, in
 *             any version, the rest is lost (sectors no change touched are
 *             never damaged: SQLite's powersafe-overwrite assumption);
 * and for DISCARD and TEAR each database's -shm (shared memory, volatile)
 * is deleted. Then the process ends with _exit(REL_CRASH_EXIT): nothing of
 * SQLite or the library runs after the cut.
 *
 * Use it in a forked child that does nothing else: install it there before
 * the child's first open (it becomes the default VFS over the real one); the
 * parent reopens the files with the normal VFS.
 */
#ifndef REL_CRASHVFS_H
#define REL_CRASHVFS_H

#include <stdint.h>

enum rel_cut_mode { REL_CUT_KILL, REL_CUT_DISCARD, REL_CUT_TEAR, REL_CUT__COUNT };
extern const char *const rel_cut_names[REL_CUT__COUNT]; /* "kill", "discard", "tear" */

/* Exit status of a process whose power was cut. */
#define REL_CRASH_EXIT 86

void rel_crashvfs_install(void);
/* Counts points from zero and cuts right before the at-th (0: never). */
void rel_crashvfs_arm(int64_t at, enum rel_cut_mode mode, uint64_t seed);
/* Points counted since arming. */
int64_t rel_crashvfs_points(void);
/* Cuts the power now (the mode of the last arm). */
void rel_crashvfs_cut(void) __attribute__((noreturn));
/* What a cut did, written at the cut into *out (which should live in
 * memory shared with the parent): */
typedef struct rel_cut_stats {
  int64_t files;           /* files with changes no sync made durable */
  int64_t changes;         /* those changes (writes and truncates) */
  int64_t sectors;         /* 512-byte sectors they touched */
  int64_t sectors_written; /* of which reached the disk in some later version (TEAR; KILL: all) */
} rel_cut_stats;
void rel_crashvfs_cut_stats(rel_cut_stats *out);
/* Called after every xSync of a named file, with its name. */
void rel_crashvfs_on_sync(void (*fn)(void *ctx, const char *path), void *ctx);

#endif
