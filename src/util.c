/* util.c — small helpers every file uses, apart from the handle's life:
 * little-endian integers, UTF-8, column bytes, one-off SQL, private files,
 * the clock. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int64_t opl_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void opl_put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

void opl_put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int opl_utf8_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07;
    else return 0;
    if (n - i < len) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    /* overlong forms, surrogates, beyond U+10FFFF */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += len;
  }
  return 1;
}

const char *opl_col_bytes(sqlite3_stmt *s, int i, size_t *n) {
  const char *p = sqlite3_column_blob(s, i);
  *n = p ? (size_t)sqlite3_column_bytes(s, i) : 0;
  return p ? p : "";
}

char *opl_col_dup(sqlite3_stmt *s, int i) {
  size_t n;
  const char *p = opl_col_bytes(s, i, &n);
  char *d = sqlite3_malloc64(n + 1);
  if (d) {
    memcpy(d, p, n);
    d[n] = 0;
  }
  return d;
}

int opl_db_exec(oplog_db *db, const char *sql) {
  int rc = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? OPLOG_OK : opl_db_sqlerr(db, rc);
}

/* Creates an empty file with mode 0600 (an empty file is an empty SQLite
 * database); one that appeared meanwhile is left as it is. */
int opl_create_private(oplog_db *db, const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno != EEXIST) return opl_db_error(db, OPLOG_IO, "%s: %s", path, strerror(errno));
  if (fd >= 0) close(fd);
  return OPLOG_OK;
}

/* ---------------------------------------------------------------- growing arrays, hash index */

void *opl_grow(void *p, size_t *cap, size_t n, size_t size) {
  if (n < *cap) return p;
  size_t c = *cap ? 2 * *cap : 8;
  void *g = sqlite3_realloc64(p, c * size);
  if (g) *cap = c;
  return g;
}

static size_t hindex_home(const opl_hindex *h, const void *key, size_t klen) {
  unsigned char out[crypto_shorthash_BYTES];
  uint64_t v;
  crypto_shorthash(out, key, klen, h->seed);
  memcpy(&v, out, sizeof v);
  return (size_t)v & (h->cap - 1);
}

size_t opl_hindex_find(const opl_hindex *h, const void *base, size_t stride, size_t klen, const void *key) {
  if (!h->cap) return SIZE_MAX;
  for (size_t i = hindex_home(h, key, klen);; i = (i + 1) & (h->cap - 1)) {
    size_t at = h->slot[i];
    if (!at) return SIZE_MAX;
    if (memcmp((const char *)base + (at - 1) * stride, key, klen) == 0) return at - 1;
  }
}

static void hindex_put(opl_hindex *h, const void *base, size_t stride, size_t klen, size_t at) {
  size_t i = hindex_home(h, (const char *)base + at * stride, klen);
  while (h->slot[i]) i = (i + 1) & (h->cap - 1);
  h->slot[i] = at + 1;
}

int opl_hindex_add(opl_hindex *h, const void *base, size_t stride, size_t klen, size_t n) {
  if (2 * n >= h->cap) {
    /* at most half full, so that probes stay short; rebuilt at the new size */
    size_t cap = h->cap ? 2 * h->cap : 16;
    size_t *slot = sqlite3_malloc64(cap * sizeof *slot);
    if (!slot) return OPLOG_NOMEM;
    memset(slot, 0, cap * sizeof *slot);
    if (!h->cap) randombytes_buf(h->seed, sizeof h->seed);
    sqlite3_free(h->slot);
    h->slot = slot;
    h->cap = cap;
    for (size_t i = 0; i + 1 < n; i++) hindex_put(h, base, stride, klen, i);
  }
  hindex_put(h, base, stride, klen, n - 1);
  return OPLOG_OK;
}

void opl_hindex_free(opl_hindex *h) {
  sqlite3_free(h->slot);
  memset(h, 0, sizeof *h);
}
