/* meta.c — an entry's metadata as stored in format 2: one blob in the entry
 * row (FORMAT.md "Metadata"), covered by the hash and the encryption's
 * additional data. Checking pairs, encoding, decoding, and the SQL
 * functions that read the blob inside queries. */
#include <string.h>

#include "internal.h"

#define MAX_META_PAIRS 1024
#define MAX_META_KEY 256
#define MAX_META_VALUE 65536

int opl_meta_check(oplog_db *db, const oplog_meta *md, size_t n) {
  if (n && !md) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "metadata is NULL");
  if (n > MAX_META_PAIRS)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "at most %d metadata pairs per entry", MAX_META_PAIRS);
  for (size_t i = 0; i < n; i++) {
    const char *k = md[i].key, *v = md[i].value;
    size_t kn = k ? strlen(k) : 0;
    if (!kn || kn > MAX_META_KEY || !opl_utf8_valid((const uint8_t *)k, kn))
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "metadata keys are UTF-8 strings of 1 to %d bytes",
                      MAX_META_KEY);
    if (v && (strlen(v) > MAX_META_VALUE || !opl_utf8_valid((const uint8_t *)v, strlen(v))))
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                      "metadata value of '%s' must be UTF-8 of at most %d bytes", k, MAX_META_VALUE);
  }
  return OPLOG_OK;
}

static int put_len(buf *b, const void *p, size_t n) {
  uint8_t len[4];
  opl_put_u32(len, (uint32_t)n);
  return opl_buf_append(b, len, 4) || (n && opl_buf_append(b, p, n));
}

int opl_meta_encode(oplog_db *db, const oplog_meta *md, size_t n, buf *out) {
  uint8_t count[4];
  opl_put_u32(count, (uint32_t)n);
  int bad = opl_buf_append(out, count, 4);
  for (size_t i = 0; !bad && i < n; i++) {
    uint8_t has = md[i].value != NULL;
    bad = put_len(out, md[i].key, strlen(md[i].key)) || opl_buf_append(out, &has, 1) ||
          (has && put_len(out, md[i].value, strlen(md[i].value)));
  }
  return bad ? opl_db_error(db, OPLOG_NOMEM, "out of memory") : OPLOG_OK;
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int opl_meta_open(meta_reader *r, const uint8_t *p, size_t n) {
  memset(r, 0, sizeof *r);
  if (n < 4 || !p) return 0;
  r->p = p;
  r->n = n;
  r->off = 4;
  r->left = get_u32(p);
  return r->left <= MAX_META_PAIRS;
}

/* One length-prefixed string at r->off: UTF-8 without NUL, at most max. */
static int get_str(meta_reader *r, size_t max, const char **s, size_t *len) {
  if (r->n - r->off < 4) return 0;
  size_t l = get_u32(r->p + r->off);
  r->off += 4;
  if (l > max || r->n - r->off < l) return 0;
  *s = (const char *)r->p + r->off;
  *len = l;
  r->off += l;
  return !memchr(*s, 0, l) && opl_utf8_valid((const uint8_t *)*s, l);
}

int opl_meta_next(meta_reader *r, meta_pair *out) {
  if (r->left == 0) return r->off == r->n ? 0 : -1; /* trailing bytes: malformed */
  r->left--;
  out->value = NULL;
  out->nvalue = 0;
  if (!get_str(r, MAX_META_KEY, &out->key, &out->nkey) || out->nkey == 0 || r->off >= r->n) return -1;
  uint8_t has = r->p[r->off++];
  if (has > 1) return -1;
  out->has_value = has;
  if (has && !get_str(r, MAX_META_VALUE, &out->value, &out->nvalue)) return -1;
  return 1;
}

int opl_meta_decode(oplog_db *db, arena *a, const uint8_t *p, size_t n, const oplog_meta **out,
                size_t *nout) {
  meta_reader r;
  *out = NULL;
  *nout = 0;
  if (!opl_meta_open(&r, p, n)) return opl_db_error(db, OPLOG_CORRUPT, "malformed metadata");
  oplog_meta *md = opl_arena_alloc(a, (r.left ? r.left : 1) * sizeof *md);
  if (!md) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  meta_pair m;
  size_t k = 0;
  int s;
  while ((s = opl_meta_next(&r, &m)) == 1) {
    md[k].key = opl_arena_strndup(a, m.key, m.nkey);
    md[k].value = m.has_value ? opl_arena_strndup(a, m.value, m.nvalue) : NULL;
    if (!md[k].key || (m.has_value && !md[k].value)) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
    k++;
  }
  if (s < 0) return opl_db_error(db, OPLOG_CORRUPT, "malformed metadata");
  *out = md;
  *nout = k;
  return OPLOG_OK;
}

/* oplog_meta_has(blob, key [, value]): 1 if the blob holds the pair (or
 * the key, with any value or none), else 0. Filters the entries that the
 * derived oplog_metadata does not cover yet. */
static void fn_meta_has(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  meta_reader r;
  meta_pair m;
  const char *key = (const char *)sqlite3_value_text(argv[1]);
  size_t nkey = (size_t)sqlite3_value_bytes(argv[1]);
  const char *val = argc > 2 ? (const char *)sqlite3_value_text(argv[2]) : NULL;
  size_t nval = argc > 2 ? (size_t)sqlite3_value_bytes(argv[2]) : 0;
  int found = 0;
  if (key && opl_meta_open(&r, sqlite3_value_blob(argv[0]), (size_t)sqlite3_value_bytes(argv[0])))
    while (!found && opl_meta_next(&r, &m) == 1)
      found = m.nkey == nkey && memcmp(m.key, key, nkey) == 0 &&
              (argc < 3 || (m.has_value && val && m.nvalue == nval && memcmp(m.value, val, nval) == 0));
  sqlite3_result_int(ctx, found);
}

/* oplog_meta_pack(key, value): aggregates pairs, in the order they come,
 * into a metadata blob (format-1 files, whose pairs are rows). */
static void fn_pack_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  buf *b = sqlite3_aggregate_context(ctx, sizeof *b);
  if (!b) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  if (!b->n) {
    uint8_t zero[4] = {0};
    if (opl_buf_append(b, zero, 4)) goto nomem;
  }
  const void *k = sqlite3_value_blob(argv[0]);
  size_t kn = (size_t)sqlite3_value_bytes(argv[0]);
  uint8_t has = sqlite3_value_type(argv[1]) != SQLITE_NULL;
  const void *v = sqlite3_value_blob(argv[1]);
  size_t vn = (size_t)sqlite3_value_bytes(argv[1]);
  if (put_len(b, k, kn) || opl_buf_append(b, &has, 1) || (has && put_len(b, v, vn))) goto nomem;
  opl_put_u32(b->p, get_u32(b->p) + 1);
  return;
nomem:
  sqlite3_result_error_nomem(ctx);
}

static void fn_pack_final(sqlite3_context *ctx) {
  buf *b = sqlite3_aggregate_context(ctx, 0);
  if (b && b->n) {
    sqlite3_result_blob64(ctx, b->p, b->n, sqlite3_free);
    b->p = NULL;
  } else {
    static const uint8_t empty[4] = {0};
    sqlite3_result_blob(ctx, empty, 4, SQLITE_STATIC);
  }
}

int opl_meta_register(sqlite3 *sql) {
  int f = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
  int r = sqlite3_create_function(sql, "oplog_meta_has", 2, f, NULL, fn_meta_has, NULL, NULL);
  if (r == SQLITE_OK) r = sqlite3_create_function(sql, "oplog_meta_has", 3, f, NULL, fn_meta_has, NULL, NULL);
  if (r == SQLITE_OK)
    r = sqlite3_create_function(sql, "oplog_meta_pack", 2, SQLITE_UTF8, NULL, NULL, fn_pack_step, fn_pack_final);
  return r;
}
