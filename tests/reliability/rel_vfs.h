/*
 * rel_vfs.h — a fault-injecting SQLite VFS shim over the default VFS.
 *
 * rel_vfs_install() registers it as the default VFS, so every connection the
 * library (and the test) opens goes through it. While armed it counts the
 * calls of each kind and fails the Nth one (transient: only that call), or,
 * in budget mode, answers SQLITE_FULL to every write once the bytes written
 * since arming exceed the budget (a full disk stays full).
 *
 * Power cuts are simulated by another VFS, rel_crashvfs.h.
 */
#ifndef REL_VFS_H
#define REL_VFS_H

#include <stdint.h>

enum rel_fault_kind {
  REL_F_READ,     /* xRead -> SQLITE_IOERR_READ */
  REL_F_WRITE,    /* xWrite -> SQLITE_IOERR_WRITE */
  REL_F_FULL,     /* xWrite -> SQLITE_FULL */
  REL_F_SYNC,     /* xSync -> SQLITE_IOERR_FSYNC */
  REL_F_LOCK,     /* xLock -> SQLITE_IOERR_LOCK */
  REL_F_SHMLOCK,  /* xShmLock -> SQLITE_BUSY (another process holds it) */
  REL_F_TRUNCATE, /* xTruncate -> SQLITE_IOERR_TRUNCATE */
  REL_F_OPEN,     /* xOpen -> SQLITE_CANTOPEN */
  REL_F__COUNT
};

extern const char *const rel_fault_names[REL_F__COUNT];

void rel_vfs_install(void);
/* Starts counting calls from zero; fail_at = 0 counts without failing. */
void rel_vfs_arm(enum rel_fault_kind kind, int64_t fail_at);
/* Budget mode: writes beyond `bytes` (counted since arming) get SQLITE_FULL. */
void rel_vfs_arm_budget(int64_t bytes);
void rel_vfs_disarm(void);
/* Calls of each kind since the last arm, and bytes written. */
int64_t rel_vfs_calls(enum rel_fault_kind kind);
int64_t rel_vfs_bytes_written(void);
/* 1 if the armed fault has fired since arming. */
int rel_vfs_fired(void);

#endif
