/* rel_crashvfs.c — see rel_crashvfs.h. The shim file holds a pointer to the
 * real file, which lives right after it in the same allocation (szOsFile),
 * and to the node of its name (shared by every handle of that name). */
#include "rel_crashvfs.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rel_common.h"

const char *const rel_cut_names[REL_CUT__COUNT] = {"kill", "discard", "tear"};

#define SECTOR 512

/* A change since the last sync: a write of n bytes at off, or (data NULL)
 * a truncate to off. */
typedef struct change {
  int64_t off, n;
  unsigned char *data;
} change;

typedef struct node {
  char *path;
  int dead; /* deleted: a later open of the name makes a new node */
  unsigned char *img; /* the file as the process sees it */
  int64_t size, cap;
  change *ch; /* not yet synced, oldest first */
  size_t nch, capch;
  struct node *next;
} node;

typedef struct cfile {
  sqlite3_file base;
  sqlite3_file *real;
  node *n; /* NULL: a temporary file, passed through */
} cfile;

static sqlite3_vfs *g_real;
static sqlite3_vfs g_vfs;
static sqlite3_io_methods g_methods;
static node *g_nodes;
static struct {
  int armed;
  enum rel_cut_mode mode;
  int64_t at, points;
  uint64_t seed;
  void (*on_sync)(void *, const char *);
  void *ctx;
  rel_cut_stats *stats;
} G;

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) abort();
  return p;
}

static void reserve(node *n, int64_t size) {
  if (size <= n->cap) return;
  int64_t cap = n->cap ? n->cap : 65536;
  while (cap < size) cap *= 2;
  n->img = realloc(n->img, (size_t)cap);
  if (!n->img) abort();
  memset(n->img + n->cap, 0, (size_t)(cap - n->cap));
  n->cap = cap;
}

/* The node of a name, made from the real file at its first open. */
static node *node_get(const char *path, sqlite3_file *real) {
  for (node *n = g_nodes; n; n = n->next)
    if (!n->dead && !strcmp(n->path, path)) return n;
  node *n = xmalloc(sizeof *n);
  memset(n, 0, sizeof *n);
  n->path = strdup(path);
  if (!n->path) abort();
  sqlite3_int64 size = 0;
  if (real->pMethods->xFileSize(real, &size) != SQLITE_OK) abort();
  reserve(n, size);
  if (size && real->pMethods->xRead(real, n->img, (int)size, 0) != SQLITE_OK) abort();
  n->size = size;
  n->next = g_nodes;
  g_nodes = n;
  return n;
}

static void change_add(node *n, int64_t off, const void *p, int64_t len) {
  if (n->nch == n->capch) {
    n->capch = n->capch ? n->capch * 2 : 64;
    n->ch = realloc(n->ch, n->capch * sizeof *n->ch);
    if (!n->ch) abort();
  }
  change *c = &n->ch[n->nch++];
  c->off = off;
  c->n = len;
  c->data = NULL;
  if (p) {
    c->data = xmalloc((size_t)len);
    memcpy(c->data, p, (size_t)len);
  }
}

static void changes_drop(node *n) {
  for (size_t i = 0; i < n->nch; i++) free(n->ch[i].data);
  n->nch = 0;
}

/* ---- the cut */

/* The real file's content (the durable state), malloc'd, at least cap
 * bytes (zero beyond the file). */
static unsigned char *read_real(const char *path, int64_t *size, int64_t cap) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) abort();
  int64_t sz = lseek(fd, 0, SEEK_END);
  if (sz < 0) abort();
  if (cap < sz) cap = sz;
  unsigned char *b = xmalloc((size_t)cap);
  memset(b, 0, (size_t)cap);
  if (sz && pread(fd, b, (size_t)sz, 0) != sz) abort();
  close(fd);
  *size = sz;
  return b;
}

static void write_real(const char *path, const unsigned char *b, int64_t size) {
  int fd = open(path, O_WRONLY);
  if (fd < 0) abort();
  if (size && pwrite(fd, b, (size_t)size, 0) != size) abort();
  if (ftruncate(fd, size) != 0) abort();
  close(fd);
}

/* The sectors a change touches, given the running size before it. */
static void change_span(const change *c, int64_t running, int64_t *from, int64_t *to) {
  int64_t a, b;
  if (c->data) {
    a = c->off;
    b = c->off + c->n;
  } else {
    a = c->off < running ? c->off : running;
    b = c->off < running ? running : c->off;
  }
  *from = a / SECTOR;
  *to = b > a ? (b - 1) / SECTOR + 1 : *from; /* exclusive */
}

static void apply(unsigned char *b, int64_t *size, const change *c) {
  if (c->data) {
    memcpy(b + c->off, c->data, (size_t)c->n);
    if (c->off + c->n > *size) *size = c->off + c->n;
  } else {
    if (c->off < *size) memset(b + c->off, 0, (size_t)(*size - c->off));
    *size = c->off;
  }
}

/* TEAR: each touched sector takes one of its versions since the last sync
 * (version 0: as synced; version k: after the k-th change touching it). */
static void tear(node *n, rel_rng *rng) {
  struct stat st;
  if (stat(n->path, &st) != 0) abort();
  int64_t dsize = (int64_t)st.st_size, extent = dsize, running = dsize;
  for (size_t i = 0; i < n->nch; i++) {
    const change *c = &n->ch[i];
    int64_t end = c->data ? c->off + c->n : c->off;
    if (end > extent) extent = end;
  }
  int64_t nsec = extent / SECTOR + 1, cap = nsec * SECTOR;
  unsigned char *d = read_real(n->path, &dsize, cap); /* durable */
  unsigned char *r = xmalloc((size_t)cap);            /* running */
  unsigned char *out = xmalloc((size_t)cap);          /* result */
  memcpy(out, d, (size_t)cap);
  int64_t *count = calloc((size_t)nsec, sizeof *count), *pick = calloc((size_t)nsec, sizeof *pick),
          *seen = calloc((size_t)nsec, sizeof *seen), *len = calloc((size_t)nsec, sizeof *len);
  if (!count || !pick || !seen || !len) abort();
  for (int64_t s = 0; s < nsec; s++) {
    int64_t l = dsize - s * SECTOR;
    len[s] = l < 0 ? 0 : l > SECTOR ? SECTOR : l;
  }
  /* how many changes touch each sector, then which version it keeps */
  for (size_t i = 0; i < n->nch; i++) {
    int64_t a, b;
    change_span(&n->ch[i], running, &a, &b);
    for (int64_t s = a; s < b; s++) count[s]++;
    running = n->ch[i].data ? (n->ch[i].off + n->ch[i].n > running ? n->ch[i].off + n->ch[i].n : running)
                            : n->ch[i].off;
  }
  for (int64_t s = 0; s < nsec; s++)
    if (count[s]) {
      pick[s] = (int64_t)rel_below(rng, (uint64_t)count[s] + 1);
      if (G.stats) {
        G.stats->sectors++;
        G.stats->sectors_written += pick[s] > 0;
      }
    }
  /* replay the changes; a sector is copied when it reaches its version */
  memcpy(r, d, (size_t)cap);
  running = dsize;
  for (size_t i = 0; i < n->nch; i++) {
    int64_t a, b;
    change_span(&n->ch[i], running, &a, &b);
    apply(r, &running, &n->ch[i]);
    for (int64_t s = a; s < b; s++)
      if (++seen[s] == pick[s]) {
        memcpy(out + s * SECTOR, r + s * SECTOR, SECTOR);
        int64_t l = running - s * SECTOR;
        len[s] = l < 0 ? 0 : l > SECTOR ? SECTOR : l;
      }
  }
  /* the file ends with its last byte kept; a gap before it reads zeros */
  int64_t final = 0;
  for (int64_t s = 0; s < nsec; s++) {
    if (len[s] < SECTOR) memset(out + s * SECTOR + len[s], 0, (size_t)(SECTOR - len[s]));
    if (len[s]) final = s * SECTOR + len[s];
  }
  write_real(n->path, out, final);
  free(d);
  free(r);
  free(out);
  free(count);
  free(pick);
  free(seen);
  free(len);
}

static int ends_with(const char *s, const char *tail) {
  size_t a = strlen(s), b = strlen(tail);
  return a >= b && !strcmp(s + a - b, tail);
}

/* Sectors the changes of n touch (for the statistics of KILL and DISCARD). */
static int64_t sectors_touched(const node *n) {
  struct stat st;
  if (stat(n->path, &st) != 0) abort();
  int64_t running = (int64_t)st.st_size, extent = running, total = 0;
  for (size_t i = 0; i < n->nch; i++) {
    int64_t end = n->ch[i].data ? n->ch[i].off + n->ch[i].n : n->ch[i].off;
    if (end > extent) extent = end;
  }
  unsigned char *hit = calloc((size_t)(extent / SECTOR + 1), 1);
  if (!hit) abort();
  for (size_t i = 0; i < n->nch; i++) {
    int64_t a, b;
    change_span(&n->ch[i], running, &a, &b);
    for (int64_t s = a; s < b; s++) total += !hit[s], hit[s] = 1;
    const change *c = &n->ch[i];
    running = c->data ? (c->off + c->n > running ? c->off + c->n : running) : c->off;
  }
  free(hit);
  return total;
}

void rel_crashvfs_cut(void) {
  rel_rng rng = {G.seed};
  for (node *n = g_nodes; n; n = n->next) {
    if (n->dead || !n->nch) continue;
    if (G.stats) {
      G.stats->files++;
      G.stats->changes += (int64_t)n->nch;
      if (G.mode != REL_CUT_TEAR) {
        int64_t t = sectors_touched(n);
        G.stats->sectors += t;
        if (G.mode == REL_CUT_KILL) G.stats->sectors_written += t;
      }
    }
    if (G.mode == REL_CUT_KILL) {
      write_real(n->path, n->img, n->size); /* the process's view is the kernel's */
    } else if (G.mode == REL_CUT_TEAR) {
      tear(n, &rng);
    }
  }
  if (G.mode != REL_CUT_KILL)
    for (node *n = g_nodes; n; n = n->next) {
      if (n->dead || ends_with(n->path, "-wal") || ends_with(n->path, "-journal")) continue;
      char shm[4096];
      snprintf(shm, sizeof shm, "%s-shm", n->path);
      unlink(shm);
    }
  _exit(REL_CRASH_EXIT);
}

static void point(void) {
  if (!G.armed) return;
  if (++G.points == G.at) rel_crashvfs_cut();
}

void rel_crashvfs_arm(int64_t at, enum rel_cut_mode mode, uint64_t seed) {
  G.armed = 1;
  G.at = at;
  G.mode = mode;
  G.seed = seed;
  G.points = 0;
}

int64_t rel_crashvfs_points(void) { return G.points; }

void rel_crashvfs_cut_stats(rel_cut_stats *out) {
  G.stats = out;
  if (out) memset(out, 0, sizeof *out);
}

void rel_crashvfs_on_sync(void (*fn)(void *, const char *), void *ctx) {
  G.on_sync = fn;
  G.ctx = ctx;
}

/* ---- the methods */

#define CF(f) ((cfile *)(f))
#define REAL(f) (CF(f)->real)

static int x_close(sqlite3_file *f) {
  int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
  f->pMethods = NULL;
  return rc; /* the node stays: closing a file syncs nothing */
}

static int x_read(sqlite3_file *f, void *p, int amt, sqlite3_int64 off) {
  node *n = CF(f)->n;
  if (!n) return REAL(f)->pMethods->xRead(REAL(f), p, amt, off);
  int64_t have = n->size - off;
  if (have < 0) have = 0;
  if (have > amt) have = amt;
  if (have) memcpy(p, n->img + off, (size_t)have);
  if (have < amt) {
    memset((char *)p + have, 0, (size_t)(amt - have));
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

static int x_write(sqlite3_file *f, const void *p, int amt, sqlite3_int64 off) {
  node *n = CF(f)->n;
  if (!n) return REAL(f)->pMethods->xWrite(REAL(f), p, amt, off);
  point();
  reserve(n, off + amt);
  memcpy(n->img + off, p, (size_t)amt);
  if (off + amt > n->size) n->size = off + amt;
  change_add(n, off, p, amt);
  return SQLITE_OK;
}

static int x_truncate(sqlite3_file *f, sqlite3_int64 size) {
  node *n = CF(f)->n;
  if (!n) return REAL(f)->pMethods->xTruncate(REAL(f), size);
  point();
  reserve(n, size);
  if (size < n->size) memset(n->img + size, 0, (size_t)(n->size - size));
  n->size = size;
  change_add(n, size, NULL, 0);
  return SQLITE_OK;
}

static int x_sync(sqlite3_file *f, int flags) {
  node *n = CF(f)->n;
  if (!n) return REAL(f)->pMethods->xSync(REAL(f), flags);
  point();
  /* the disk gets the file as the process sees it; no real fsync: the real
   * file is the simulated disk */
  sqlite3_file *r = REAL(f);
  for (size_t i = 0; i < n->nch; i++) {
    const change *c = &n->ch[i];
    int rc = c->data ? r->pMethods->xWrite(r, c->data, (int)c->n, c->off)
                     : r->pMethods->xTruncate(r, c->off);
    if (rc != SQLITE_OK) abort();
  }
  changes_drop(n);
  if (G.on_sync) G.on_sync(G.ctx, n->path);
  return SQLITE_OK;
}

static int x_file_size(sqlite3_file *f, sqlite3_int64 *size) {
  node *n = CF(f)->n;
  if (!n) return REAL(f)->pMethods->xFileSize(REAL(f), size);
  *size = n->size;
  return SQLITE_OK;
}

static int x_lock(sqlite3_file *f, int level) { return REAL(f)->pMethods->xLock(REAL(f), level); }

static int x_unlock(sqlite3_file *f, int level) {
  return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int x_check_reserved(sqlite3_file *f, int *out) {
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int x_file_control(sqlite3_file *f, int op, void *arg) {
  /* these would size the real file behind the image's back */
  if (CF(f)->n && (op == SQLITE_FCNTL_SIZE_HINT || op == SQLITE_FCNTL_CHUNK_SIZE)) return SQLITE_OK;
  return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int x_sector_size(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }

static int x_device_characteristics(sqlite3_file *f) {
  /* no ATOMIC / SAFE_APPEND / SEQUENTIAL claim: only powersafe overwrite */
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)) & SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static int x_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **pp) {
  return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, pp);
}

static int x_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
  return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void x_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }

static int x_shm_unmap(sqlite3_file *f, int del) {
  return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

/* No memory-mapped reads: every read goes through the image. */
static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp) {
  (void)f;
  (void)off;
  (void)amt;
  *pp = NULL;
  return SQLITE_OK;
}

static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
  (void)f;
  (void)off;
  (void)p;
  return SQLITE_OK;
}

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out) {
  (void)v;
  cfile *c = CF(f);
  c->real = (sqlite3_file *)(c + 1);
  c->n = NULL;
  memset(c->real, 0, (size_t)g_real->szOsFile);
  f->pMethods = NULL;
  int rc = g_real->xOpen(g_real, name, c->real, flags, out);
  if (!c->real->pMethods) return rc;
  f->pMethods = &g_methods;
  int durable = flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL);
  if (rc == SQLITE_OK && name && durable && !(flags & SQLITE_OPEN_DELETEONCLOSE))
    c->n = node_get(name, c->real);
  return rc;
}

static int v_delete(sqlite3_vfs *v, const char *name, int sync) {
  (void)v;
  for (node *n = g_nodes; n; n = n->next)
    if (!n->dead && !strcmp(n->path, name)) {
      point();
      n->dead = 1;
      changes_drop(n);
    }
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

void rel_crashvfs_install(void) {
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
  g_vfs = *g_real;
  g_vfs.zName = "rel_crash";
  g_vfs.pNext = NULL;
  g_vfs.pAppData = NULL;
  g_vfs.szOsFile = (int)sizeof(cfile) + g_real->szOsFile;
  g_vfs.xOpen = v_open;
  g_vfs.xDelete = v_delete;
  g_vfs.xAccess = v_access;
  g_vfs.xFullPathname = v_full_pathname;
  g_vfs.xDlOpen = v_dlopen;
  g_vfs.xDlError = v_dlerror;
  g_vfs.xDlSym = v_dlsym;
  g_vfs.xDlClose = v_dlclose;
  g_vfs.xRandomness = v_randomness;
  g_vfs.xSleep = v_sleep;
  g_vfs.xCurrentTime = v_current_time;
  g_vfs.xGetLastError = v_get_last_error;
  g_vfs.xCurrentTimeInt64 = v_current_time64;
  g_vfs.xSetSystemCall = v_set_syscall;
  g_vfs.xGetSystemCall = v_get_syscall;
  g_vfs.xNextSystemCall = v_next_syscall;
  REL_CHECK(sqlite3_vfs_register(&g_vfs, 1) == SQLITE_OK, "sqlite3_vfs_register");
}
