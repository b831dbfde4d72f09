/* rel_vfs.c — see rel_vfs.h. The shim file holds a pointer to the real
 * file, which lives right after it in the same allocation (szOsFile). */
#include "rel_vfs.h"

#include <sqlite3.h>
#include <string.h>

#include "rel_common.h"

const char *const rel_fault_names[REL_F__COUNT] = {"read", "write", "full",     "sync",
                                                   "lock", "shmlock", "truncate", "open"};

typedef struct shim_file {
  sqlite3_file base;
  sqlite3_file *real;
} shim_file;

static sqlite3_vfs *g_real;
static sqlite3_vfs g_shim;
static sqlite3_io_methods g_methods;

static struct {
  int armed;
  int budget_mode;
  enum rel_fault_kind kind;
  int64_t fail_at;
  int64_t calls[REL_F__COUNT];
  int64_t bytes;
  int64_t budget;
  int fired;
} g;

/* Counts a call of `kind`; 1 if this one must fail. */
static int hit(enum rel_fault_kind kind) {
  if (!g.armed) return 0;
  int64_t n = ++g.calls[kind];
  if (g.budget_mode) return 0;
  if (g.kind == kind && n == g.fail_at) {
    g.fired = 1;
    return 1;
  }
  return 0;
}

#define REAL(f) (((shim_file *)(f))->real)

static int x_close(sqlite3_file *f) {
  int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
  f->pMethods = NULL;
  return rc;
}

static int x_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off) {
  if (hit(REL_F_READ)) return SQLITE_IOERR_READ;
  return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}

static int x_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off) {
  if (g.armed) {
    /* A write counts for both transient kinds; only the armed one fires. */
    int64_t nw = ++g.calls[REL_F_WRITE];
    int64_t nf = ++g.calls[REL_F_FULL];
    if (g.budget_mode) {
      if (g.bytes + n > g.budget) {
        g.fired = 1;
        return SQLITE_FULL;
      }
    } else if (g.kind == REL_F_WRITE && nw == g.fail_at) {
      g.fired = 1;
      return SQLITE_IOERR_WRITE;
    } else if (g.kind == REL_F_FULL && nf == g.fail_at) {
      g.fired = 1;
      return SQLITE_FULL;
    }
    g.bytes += n;
  }
  return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}

static int x_truncate(sqlite3_file *f, sqlite3_int64 size) {
  if (hit(REL_F_TRUNCATE)) return SQLITE_IOERR_TRUNCATE;
  return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int x_sync(sqlite3_file *f, int flags) {
  if (hit(REL_F_SYNC)) return SQLITE_IOERR_FSYNC;
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int x_file_size(sqlite3_file *f, sqlite3_int64 *size) {
  return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int x_lock(sqlite3_file *f, int level) {
  if (hit(REL_F_LOCK)) return SQLITE_IOERR_LOCK;
  return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int x_unlock(sqlite3_file *f, int level) {
  return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int x_check_reserved(sqlite3_file *f, int *out) {
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int x_file_control(sqlite3_file *f, int op, void *arg) {
  return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int x_sector_size(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }

static int x_device_characteristics(sqlite3_file *f) {
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int x_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **pp) {
  return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, pp);
}

static int x_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
  /* Only acquiring can meet another holder; unlocks always succeed. */
  if ((flags & SQLITE_SHM_LOCK) && hit(REL_F_SHMLOCK)) return SQLITE_BUSY;
  return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void x_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }

static int x_shm_unmap(sqlite3_file *f, int del) {
  return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) {
  return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
  return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out) {
  (void)v;
  shim_file *s = (shim_file *)f;
  s->real = (sqlite3_file *)(s + 1);
  memset(s->real, 0, (size_t)g_real->szOsFile);
  f->pMethods = NULL;
  if (hit(REL_F_OPEN)) return SQLITE_CANTOPEN;
  int rc = g_real->xOpen(g_real, name, s->real, flags, out);
  /* Mirror the real file: SQLite calls xClose only when pMethods is set. */
  if (s->real->pMethods) f->pMethods = &g_methods;
  return rc;
}

static int v_delete(sqlite3_vfs *v, const char *name, int sync) {
  (void)v;
  return g_real->xDelete(g_real, name, sync);
}
static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
  (void)v;
  return g_real->xAccess(g_real, name, flags, out);
}
static int v_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out) {
  (void)v;
  return g_real->xFullPathname(g_real, name, n, out);
}
static void *v_dlopen(sqlite3_vfs *v, const char *name) {
  (void)v;
  return g_real->xDlOpen(g_real, name);
}
static void v_dlerror(sqlite3_vfs *v, int n, char *msg) {
  (void)v;
  g_real->xDlError(g_real, n, msg);
}
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void) {
  (void)v;
  return g_real->xDlSym(g_real, h, sym);
}
static void v_dlclose(sqlite3_vfs *v, void *h) {
  (void)v;
  g_real->xDlClose(g_real, h);
}
static int v_randomness(sqlite3_vfs *v, int n, char *out) {
  (void)v;
  return g_real->xRandomness(g_real, n, out);
}
static int v_sleep(sqlite3_vfs *v, int us) {
  (void)v;
  return g_real->xSleep(g_real, us);
}
static int v_current_time(sqlite3_vfs *v, double *t) {
  (void)v;
  return g_real->xCurrentTime(g_real, t);
}
static int v_get_last_error(sqlite3_vfs *v, int n, char *msg) {
  (void)v;
  return g_real->xGetLastError(g_real, n, msg);
}
static int v_current_time64(sqlite3_vfs *v, sqlite3_int64 *t) {
  (void)v;
  return g_real->xCurrentTimeInt64(g_real, t);
}
static int v_set_syscall(sqlite3_vfs *v, const char *name, sqlite3_syscall_ptr p) {
  (void)v;
  return g_real->xSetSystemCall(g_real, name, p);
}
static sqlite3_syscall_ptr v_get_syscall(sqlite3_vfs *v, const char *name) {
  (void)v;
  return g_real->xGetSystemCall(g_real, name);
}
static const char *v_next_syscall(sqlite3_vfs *v, const char *name) {
  (void)v;
  return g_real->xNextSystemCall(g_real, name);
}

void rel_vfs_install(void) {
  if (g_real) return;
  g_real = sqlite3_vfs_find(NULL);
  REL_CHECK(g_real != NULL && g_real->iVersion >= 3, "no default VFS of version 3");
  g_methods = (sqlite3_io_methods){3,
                                   x_close,
                                   x_read,
                                   x_write,
                                   x_truncate,
                                   x_sync,
                                   x_file_size,
                                   x_lock,
                                   x_unlock,
                                   x_check_reserved,
                                   x_file_control,
                                   x_sector_size,
                                   x_device_characteristics,
                                   x_shm_map,
                                   x_shm_lock,
                                   x_shm_barrier,
                                   x_shm_unmap,
                                   x_fetch,
                                   x_unfetch};
  g_shim = *g_real;
  g_shim.zName = "rel_fault";
  g_shim.pNext = NULL;
  g_shim.pAppData = NULL;
  g_shim.szOsFile = (int)sizeof(shim_file) + g_real->szOsFile;
  g_shim.xOpen = v_open;
  g_shim.xDelete = v_delete;
  g_shim.xAccess = v_access;
  g_shim.xFullPathname = v_full_pathname;
  g_shim.xDlOpen = v_dlopen;
  g_shim.xDlError = v_dlerror;
  g_shim.xDlSym = v_dlsym;
  g_shim.xDlClose = v_dlclose;
  g_shim.xRandomness = v_randomness;
  g_shim.xSleep = v_sleep;
  g_shim.xCurrentTime = v_current_time;
  g_shim.xGetLastError = v_get_last_error;
  g_shim.xCurrentTimeInt64 = v_current_time64;
  g_shim.xSetSystemCall = v_set_syscall;
  g_shim.xGetSystemCall = v_get_syscall;
  g_shim.xNextSystemCall = v_next_syscall;
  REL_CHECK(sqlite3_vfs_register(&g_shim, 1) == SQLITE_OK, "sqlite3_vfs_register");
}

void rel_vfs_arm(enum rel_fault_kind kind, int64_t fail_at) {
  memset(&g, 0, sizeof g);
  g.kind = kind;
  g.fail_at = fail_at;
  g.armed = 1;
}

void rel_vfs_arm_budget(int64_t bytes) {
  memset(&g, 0, sizeof g);
  g.budget_mode = 1;
  g.budget = bytes;
  g.armed = 1;
}

void rel_vfs_disarm(void) { g.armed = 0; }
int64_t rel_vfs_calls(enum rel_fault_kind kind) { return g.calls[kind]; }
int64_t rel_vfs_bytes_written(void) { return g.bytes; }
int rel_vfs_fired(void) { return g.fired; }
