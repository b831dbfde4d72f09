/* test_sync.c — the sync stream, export, import and join (FORMAT.md
 * "Stream"): round trips in plaintext and encrypted, a relay, every
 * refusal with its code and the receiving file unchanged, cut and altered
 * streams, cursors. */
#include <sodium.h>

#include "testutil.h"

static const unsigned char KA[32] = {1, 2, 3}, KB[32] = {4, 5, 6}, KC[32] = {7, 8, 9};

/* ---------------------------------------------------------------- streams in memory */

typedef struct mem {
  unsigned char *p;
  size_t n, cap, pos;
} mem;

static int mem_write(void *ctx, const void *p, size_t n) {
  mem *m = ctx;
  if (!n) return 0;
  if (m->n + n > m->cap) {
    size_t cap = m->cap ? m->cap : 4096;
    while (cap < m->n + n) cap *= 2;
    unsigned char *g = realloc(m->p, cap);
    if (!g) return -1;
    m->p = g;
    m->cap = cap;
  }
  memcpy(m->p + m->n, p, n);
  m->n += n;
  return 0;
}

static int mem_read(void *ctx, void *p, size_t n, size_t *got) {
  mem *m = ctx;
  size_t left = m->n - m->pos;
  /* odd short reads, as a pipe gives */
  if (n > 7 && left > 7) n = n / 2 + 1;
  *got = n < left ? n : left;
  if (*got) memcpy(p, m->p + m->pos, *got);
  m->pos += *got;
  return 0;
}

static void mem_free(mem *m) {
  free(m->p);
  memset(m, 0, sizeof *m);
}

static char *origin_hex(oplog_db *db, char out[65]) {
  oplog_origin_info o;
  if (oplog_origin(db, &o)) return NULL;
  sodium_bin2hex(out, 65, o.id, 32);
  return out;
}

/* Exports db's entries beyond since, sealed to `to` (a handle or NULL). */
static int export_mem(oplog_db *db, oplog_db *to, const char *since, mem *m) {
  char hx[65];
  oplog_export_opts o = {.to = to ? origin_hex(to, hx) : NULL, .since = since};
  memset(m, 0, sizeof *m);
  return oplog_export(db, &o, mem_write, m, NULL);
}

static int import_mem(oplog_db *db, mem *m, oplog_import_result *res) {
  m->pos = 0;
  return oplog_import(db, NULL, mem_read, m, res);
}

/* A digest of every table of the file (raw SQLite): what "unchanged" means. */
static void file_digest(const char *path, unsigned char out[32]) {
  sqlite3 *s = NULL;
  sqlite3_stmt *t = NULL, *r = NULL;
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL);
  sqlite3_prepare_v2(s, "SELECT name, sql FROM sqlite_schema ORDER BY name", -1, &t, NULL);
  while (sqlite3_step(t) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(t, 0);
    const char *sql = (const char *)sqlite3_column_text(t, 1);
    crypto_generichash_update(&st, (const unsigned char *)name, strlen(name) + 1);
    if (sql) crypto_generichash_update(&st, (const unsigned char *)sql, strlen(sql) + 1);
    if (strcmp((const char *)sqlite3_column_text(t, 0), "sqlite_sequence") == 0 || !sql || strncmp(sql, "CREATE TABLE", 12))
      continue;
    char *q = sqlite3_mprintf("SELECT * FROM \"%w\"", name);
    if (sqlite3_prepare_v2(s, q, -1, &r, NULL) == SQLITE_OK) {
      while (sqlite3_step(r) == SQLITE_ROW)
        for (int c = 0; c < sqlite3_column_count(r); c++) {
          unsigned char ty = (unsigned char)sqlite3_column_type(r, c);
          crypto_generichash_update(&st, &ty, 1);
          const void *b = sqlite3_column_blob(r, c);
          if (b) crypto_generichash_update(&st, b, (size_t)sqlite3_column_bytes(r, c));
        }
    }
    sqlite3_finalize(r);
    sqlite3_free(q);
  }
  sqlite3_finalize(t);
  sqlite3_close(s);
  crypto_generichash_final(&st, out, 32);
}

/* The entries of one origin as stored, in seq order, hashed (raw SQLite). */
static void origin_entries_digest(const char *path, const unsigned char origin[32], unsigned char out[32], int64_t *n) {
  sqlite3 *s = NULL;
  sqlite3_stmt *r = NULL;
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  *n = 0;
  sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL);
  sqlite3_prepare_v2(s,
                     "SELECT e.seq, e.clock, e.created, e.aggregate_name, e.key_id, e.metadata, e.data, e.prev_hash,"
                     " e.hash, e.format FROM oplog_entries e JOIN oplog_origins o ON o.no = e.origin"
                     " WHERE o.id = ?1 ORDER BY e.seq",
                     -1, &r, NULL);
  sqlite3_bind_blob(r, 1, origin, 32, SQLITE_STATIC);
  while (sqlite3_step(r) == SQLITE_ROW) {
    (*n)++;
    for (int c = 0; c < 10; c++) {
      const void *b = sqlite3_column_blob(r, c);
      int len = sqlite3_column_bytes(r, c);
      crypto_generichash_update(&st, (const unsigned char *)&len, sizeof len);
      if (b) crypto_generichash_update(&st, b, (size_t)len);
    }
  }
  sqlite3_finalize(r);
  sqlite3_close(s);
  crypto_generichash_final(&st, out, 32);
}

static int64_t users_rows(const char *path) { return count_rows(path, "SELECT count(*) FROM users"); }


/* A writes n users (ids from first). */
static int write_users(oplog_db *db, int64_t first, int n) {
  for (int i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "user%lld", (long long)(first + i));
    if (!write_user(db, first + i, name, 20 + i)) return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- round trips */

static void plain_round_trip(void) {
  oplog_db *a = open_plain("a.db"), *b = open_plain("b.db");
  CHECK(a && b);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 5) == 0);
  mem m;
  oplog_export_result er;
  oplog_export_opts eo = {0};
  memset(&m, 0, sizeof m);
  OK(a, oplog_export(a, &eo, mem_write, &m, &er));
  CHECK(er.entries == 5 && er.bytes == (int64_t)m.n);
  oplog_import_result res;
  OK(b, import_mem(b, &m, &res));
  CHECK(res.entries == 5 && res.skipped == 0);
  /* stored byte for byte */
  oplog_origin_info oa;
  OK(a, oplog_origin(a, &oa));
  unsigned char da[32], db_[32];
  int64_t na, nb;
  origin_entries_digest(tpath("a.db"), oa.id, da, &na);
  origin_entries_digest(tpath("b.db"), oa.id, db_, &nb);
  CHECK(na == 5 && nb == 5 && memcmp(da, db_, 32) == 0);
  /* the type came along; the entries read back at b */
  CHECK(count_rows(tpath("b.db"), "SELECT count(*) FROM oplog_types WHERE name = 'user'") == 1);
  oplog_entry *e = NULL;
  OK(b, oplog_entry_get(b, 1, &e));
  CHECK(e->nops == 1 && memcmp(e->origin, oa.id, 32) == 0 && e->seq == 1);
  oplog_entry_free(e);
  CHECK(users_rows(tpath("b.db")) == 5);
  /* b's cursor names a at seq 5: nothing more to ship */
  char *cur = NULL;
  OK(b, oplog_cursor(b, &cur));
  char hx[65];
  CHECK(strstr(cur, origin_hex(a, hx)) && strstr(cur, ":5"));
  mem m2;
  OK(a, export_mem(a, NULL, cur, &m2));
  oplog_free(cur);
  OK(b, import_mem(b, &m2, &res));
  CHECK(res.entries == 0 && res.skipped == 0);
  mem_free(&m2);
  /* the same stream again changes nothing */
  unsigned char before[32], after[32];
  oplog_close(b);
  file_digest(tpath("b.db"), before);
  b = open_plain("b.db");
  CHECK(b);
  OK(b, import_mem(b, &m, &res));
  CHECK(res.entries == 0 && res.skipped == 5);
  oplog_close(b);
  file_digest(tpath("b.db"), after);
  CHECK(memcmp(before, after, 32) == 0);
  mem_free(&m);
  oplog_close(a);
}

static void encrypted_round_trip(void) {
  oplog_db *a = open_keyed("a.db", KA), *b = open_keyed("b.db", KB);
  CHECK(a && b);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 3) == 0);
  int64_t kid;
  OK(a, oplog_rotate_key(a, &kid));
  CHECK(write_users(a, 10, 3) == 0);
  mem m;
  oplog_export_opts eo = {0};
  memset(&m, 0, sizeof m);
  /* an encrypted export names its recipient */
  CHECK_RC(a, oplog_export(a, &eo, mem_write, &m, NULL), OPLOG_INVALID_ARGUMENT);
  eo.to = "zz";
  CHECK_RC(a, oplog_export(a, &eo, mem_write, &m, NULL), OPLOG_INVALID_ARGUMENT);
  mem_free(&m);
  OK(a, export_mem(a, b, NULL, &m));
  /* the data keys travel sealed: a's key bytes are nowhere in the stream in the clear */
  oplog_import_result res;
  OK(b, import_mem(b, &m, &res));
  CHECK(res.entries == 6);
  CHECK(count_rows(tpath("b.db"), "SELECT count(*) FROM oplog_keys WHERE origin <> 1") == 2);
  oplog_origin_info oa;
  OK(a, oplog_origin(a, &oa));
  unsigned char da[32], db_[32];
  int64_t na, nb;
  origin_entries_digest(tpath("a.db"), oa.id, da, &na);
  origin_entries_digest(tpath("b.db"), oa.id, db_, &nb);
  CHECK(na == 6 && nb == 6 && memcmp(da, db_, 32) == 0);
  /* readable with b's own key, also after reopening */
  oplog_close(b);
  b = open_keyed("b.db", KB);
  CHECK(b);
  for (int64_t id = 1; id <= 6; id++) {
    oplog_entry *e = NULL;
    OK(b, oplog_entry_get(b, id, &e));
    CHECK(e->nops == 1 && e->key_id == (id <= 3 ? 1 : 2));
    oplog_entry_free(e);
  }
  oplog_verify_result vr;
  OK(b, oplog_verify(b, NULL, NULL, NULL, &vr));
  CHECK(vr.ok && vr.entries == 6);
  CHECK(users_rows(tpath("b.db")) == 6);
  /* b writes on with its own key, not a's */
  CHECK(write_user(b, 100, "bob", 30) > 0);
  CHECK(count_rows(tpath("b.db"), "SELECT key_id FROM oplog_entries WHERE id = 7") == 1);
  mem_free(&m);
  oplog_close(a);
  oplog_close(b);
}

static void relay(void) {
  oplog_db *a = open_keyed("a.db", KA), *b = open_keyed("b.db", KB), *c = open_keyed("c.db", KC);
  CHECK(a && b && c);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 4) == 0);
  mem m;
  OK(a, export_mem(a, b, NULL, &m));
  OK(b, import_mem(b, &m, NULL));
  mem_free(&m);
  CHECK(write_users(b, 50, 2) == 0);
  /* b forwards a's entries (with a's keys sealed again, to c) and its own */
  char *cur = NULL;
  OK(c, oplog_cursor(c, &cur));
  OK(b, export_mem(b, c, cur, &m));
  oplog_free(cur);
  oplog_import_result res;
  OK(c, import_mem(c, &m, &res));
  CHECK(res.entries == 6);
  mem_free(&m);
  oplog_verify_result vr;
  oplog_verify_opts vo = {.replay = 1}; /* chains, keys, and live tables = replay in total order */
  OK(c, oplog_verify(c, &vo, NULL, NULL, &vr));
  CHECK(vr.ok && vr.entries == 6);
  CHECK(users_rows(tpath("c.db")) == 6);
  oplog_origin_info oa;
  OK(a, oplog_origin(a, &oa));
  unsigned char da[32], dc[32];
  int64_t na, nc;
  origin_entries_digest(tpath("a.db"), oa.id, da, &na);
  origin_entries_digest(tpath("c.db"), oa.id, dc, &nc);
  CHECK(na == 4 && nc == 4 && memcmp(da, dc, 32) == 0);
  for (int64_t id = 1; id <= 6; id++) {
    oplog_entry *e = NULL;
    OK(c, oplog_entry_get(c, id, &e));
    oplog_entry_free(e);
  }
  /* a's checkpoint reached c through b */
  CHECK(count_rows(tpath("c.db"), "SELECT count(*) FROM oplog_checkpoints c JOIN oplog_origins o ON o.no = c.origin"
                                  " WHERE c.seq = 4") == 1);
  int heads = 0;
  OK(c, oplog_cursor(c, &cur));
  for (char *p = cur; *p; p++) heads += *p == ',';
  CHECK(heads == 2); /* c, a, b */
  oplog_free(cur);
  oplog_close(a);
  oplog_close(b);
  oplog_close(c);
}

/* ---------------------------------------------------------------- refusals */

/* Imports m into the file at name (opened with key or plaintext) and
 * checks the code and that the file is unchanged. */
static int refused(const char *name, const unsigned char *key, mem *m, int want) {
  unsigned char before[32], after[32];
  file_digest(tpath(name), before);
  oplog_db *db = key ? open_keyed(name, key) : open_plain(name);
  if (!db) return 0;
  m->pos = 0;
  int rc = oplog_import(db, NULL, mem_read, m, NULL);
  if (rc != want) fprintf(stderr, "import: %s (%s), expected %s\n", oplog_code_name(rc), oplog_errmsg(db), oplog_code_name(want));
  oplog_close(db);
  file_digest(tpath(name), after);
  if (memcmp(before, after, 32) != 0) fprintf(stderr, "%s changed\n", name);
  return rc == want && memcmp(before, after, 32) == 0;
}

static void wrong_recipient(void) {
  oplog_db *a = open_keyed("a.db", KA), *b = open_keyed("b.db", KB), *c = open_keyed("c.db", KC);
  CHECK(a && b && c);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 2) == 0);
  mem m;
  OK(a, export_mem(a, c, NULL, &m));
  oplog_close(b);
  CHECK(refused("b.db", KB, &m, OPLOG_WRONG_KEY));
  mem_free(&m);
  /* keyless: no export of an encrypted log */
  oplog_close(a);
  oplog_open_opts o = {0};
  CHECK(oplog_open(tpath("a.db"), &o, &a) == OPLOG_OK);
  char hx[65];
  oplog_export_opts eo = {.to = origin_hex(c, hx)};
  memset(&m, 0, sizeof m);
  CHECK_RC(a, oplog_export(a, &eo, mem_write, &m, NULL), OPLOG_KEY_REQUIRED);
  mem_free(&m);
  oplog_close(a);
  oplog_close(c);
}

static void plaintext_vs_encrypted(void) {
  oplog_db *a = open_plain("a.db"), *k = open_keyed("k.db", KB);
  CHECK(a && k);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 2) == 0);
  mem m;
  OK(a, export_mem(a, k, NULL, &m));
  oplog_close(k);
  CHECK(refused("k.db", KB, &m, OPLOG_INVALID_ARGUMENT));
  mem_free(&m);
  k = open_keyed("k.db", KB);
  OK(k, define_user(k));
  CHECK(write_users(k, 1, 2) == 0);
  OK(k, export_mem(k, a, NULL, &m));
  oplog_close(a);
  oplog_close(k);
  CHECK(refused("a.db", NULL, &m, OPLOG_INVALID_ARGUMENT));
  mem_free(&m);
  /* join refuses it too, and changes nothing */
  a = open_plain("a.db");
  oplog_open_opts o = {0};
  o.key.key = KB;
  o.key.key_len = 32;
  CHECK_RC(a, oplog_join(a, tpath("k.db"), &o, NULL, NULL), OPLOG_INVALID_ARGUMENT);
  oplog_close(a);
}

static void gap(void) {
  oplog_db *a = open_plain("a.db"), *b = open_plain("b.db");
  CHECK(a && b);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 3) == 0);
  char hx[65], since[80];
  snprintf(since, sizeof since, "%s:1", origin_hex(a, hx));
  mem m;
  OK(a, export_mem(a, NULL, since, &m));
  oplog_close(b);
  unsigned char before[32], after[32];
  file_digest(tpath("b.db"), before);
  b = open_plain("b.db");
  CHECK_RC(b, import_mem(b, &m, NULL), OPLOG_GAP);
  CHECK(strstr(oplog_errmsg(b), hx) && strstr(oplog_errmsg(b), "up to seq 0") && strstr(oplog_errmsg(b), "seq 2"));
  oplog_close(b);
  file_digest(tpath("b.db"), after);
  CHECK(memcmp(before, after, 32) == 0);
  mem_free(&m);
  oplog_close(a);
}

static void copy_file(const char *from, const char *to) {
  char *cmd = sqlite3_mprintf("cp '%q' '%q'", tpath(from), tpath(to));
  CHECK(system(cmd) == 0);
  sqlite3_free(cmd);
}

static void fork_detected(void) {
  oplog_db *a = open_plain("a.db"), *b = open_plain("b.db");
  CHECK(a && b);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 3) == 0);
  oplog_close(a);
  copy_file("a.db", "a2.db"); /* a cloned device */
  a = open_plain("a.db");
  oplog_db *a2 = open_plain("a2.db");
  CHECK(a && a2);
  CHECK(write_users(a, 10, 1) == 0);
  CHECK(write_users(a2, 20, 1) == 0);
  mem m;
  OK(a, export_mem(a, NULL, NULL, &m));
  OK(b, import_mem(b, &m, NULL));
  mem_free(&m);
  char hx[65], since[80], *cur = NULL;
  origin_hex(a, hx);
  /* an entry differs (seq 4) */
  snprintf(since, sizeof since, "%s:3", hx);
  OK(a2, export_mem(a2, NULL, since, &m));
  oplog_close(b);
  CHECK(refused("b.db", NULL, &m, OPLOG_FORK));
  mem_free(&m);
  /* nothing new, the base differs */
  b = open_plain("b.db");
  OK(b, oplog_cursor(b, &cur));
  OK(a2, export_mem(a2, NULL, cur, &m));
  oplog_free(cur);
  CHECK_RC(b, import_mem(b, &m, NULL), OPLOG_FORK);
  CHECK(strstr(oplog_errmsg(b), "seq 4") && strstr(oplog_errmsg(b), hx));
  oplog_close(b);
  CHECK(refused("b.db", NULL, &m, OPLOG_FORK));
  mem_free(&m);
  /* everything from the start: entry 4 differs */
  OK(a2, export_mem(a2, NULL, NULL, &m));
  CHECK(refused("b.db", NULL, &m, OPLOG_FORK));
  mem_free(&m);
  /* the clone wrote on: its entry 4 differs from b's, and its entry 5
   * builds on it (the clone's checkpoint, at seq 5, names nothing b holds:
   * the entry at seq 4 alone shows the fork) */
  CHECK(write_users(a2, 21, 1) == 0);
  OK(a2, export_mem(a2, NULL, since, &m));
  CHECK(refused("b.db", NULL, &m, OPLOG_FORK));
  b = open_plain("b.db");
  CHECK(b);
  CHECK_RC(b, import_mem(b, &m, NULL), OPLOG_FORK);
  CHECK(strstr(oplog_errmsg(b), "the stream's entry at seq 4"));
  mem_free(&m);
  /* from b's cursor (seq 4): the base alone shows it */
  OK(b, oplog_cursor(b, &cur));
  OK(a2, export_mem(a2, NULL, cur, &m));
  oplog_free(cur);
  CHECK_RC(b, import_mem(b, &m, NULL), OPLOG_FORK);
  CHECK(strstr(oplog_errmsg(b), "the stream's base at seq 4"));
  oplog_close(b);
  CHECK(refused("b.db", NULL, &m, OPLOG_FORK));
  mem_free(&m);
  oplog_close(a);
  oplog_close(a2);
}

static void type_conflict(void) {
  oplog_db *a = open_plain("a.db"), *b = open_plain("b.db");
  CHECK(a && b);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 2) == 0);
  static const oplog_column cols[] = {{"id", "INTEGER PRIMARY KEY"}, {"name", "TEXT"}};
  oplog_type_spec s = {"user", "users", "users", cols, 2, NULL, 0};
  OK(b, oplog_define(b, &s));
  mem m;
  OK(a, export_mem(a, NULL, NULL, &m));
  oplog_close(b);
  CHECK(refused("b.db", NULL, &m, OPLOG_TYPE_CONFLICT));
  mem_free(&m);
  oplog_close(a);
}

/* Frame boundaries of a stream: magic, then u8 kind || u32be length || message. */
static size_t frame_ends(const mem *m, size_t *ends, size_t max) {
  size_t off = 9, k = 0;
  while (off + 5 <= m->n && k < max) {
    size_t len = (size_t)m->p[off + 1] << 24 | (size_t)m->p[off + 2] << 16 | (size_t)m->p[off + 3] << 8 | m->p[off + 4];
    off += 5 + len;
    ends[k++] = off;
  }
  return k;
}

static void cut_and_altered(void) {
  oplog_db *a = open_keyed("a.db", KA), *b = open_keyed("b.db", KB);
  CHECK(a && b);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 4) == 0);
  mem m;
  OK(a, export_mem(a, b, NULL, &m));
  oplog_close(a);
  oplog_close(b);
  size_t ends[64];
  size_t nf = frame_ends(&m, ends, 64);
  CHECK(nf >= 8 && ends[nf - 1] == m.n); /* header, type, 4 entries, key, checkpoint, trailer */
  size_t full = m.n;
  /* cut at every frame boundary, inside every frame, and inside the magic */
  for (size_t i = 0; i < nf; i++) {
    size_t cuts[] = {i ? ends[i - 1] : 9, (i ? ends[i - 1] : 9) + 3, ends[i] - 1};
    for (int c = 0; c < 3; c++) {
      if (cuts[c] >= full) continue;
      m.n = cuts[c];
      CHECK(refused("b.db", KB, &m, OPLOG_CORRUPT));
    }
  }
  m.n = 5;
  CHECK(refused("b.db", KB, &m, OPLOG_CORRUPT));
  m.n = full;
  /* bytes after the trailer */
  m.p[m.n++] = 0;
  CHECK(refused("b.db", KB, &m, OPLOG_CORRUPT));
  m.n = full;
  /* a sample of single-byte changes, everywhere */
  for (size_t at = 0; at < full; at += 1 + full / 97) {
    m.p[at] ^= 0x5a;
    CHECK(refused("b.db", KB, &m, OPLOG_CORRUPT));
    m.p[at] ^= 0x5a;
  }
  /* intact, it goes in */
  b = open_keyed("b.db", KB);
  oplog_import_result res;
  OK(b, import_mem(b, &m, &res));
  CHECK(res.entries == 4);
  oplog_close(b);
  mem_free(&m);
}

/* A frame head claiming more than an entry can take is refused before
 * anything of its body is read or allocated. */
static void frame_too_large(void) {
  oplog_db *a = open_plain("a.db"), *b = open_plain("b.db");
  CHECK(a && b);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 2) == 0);
  mem m;
  OK(a, export_mem(a, NULL, NULL, &m));
  oplog_close(a);
  size_t ends[16];
  CHECK(frame_ends(&m, ends, 16) >= 3);
  size_t at = ends[0]; /* frame 2, the type, claims 2^31 - 1 bytes */
  m.p[at + 1] = 0x7f, m.p[at + 2] = m.p[at + 3] = m.p[at + 4] = 0xff;
  m.pos = 0;
  CHECK_RC(b, oplog_import(b, NULL, mem_read, &m, NULL), OPLOG_CORRUPT);
  CHECK(strstr(oplog_errmsg(b), "frame 2 claims 2147483647 bytes, more than an entry can take"));
  CHECK(m.pos == at + 5);
  oplog_close(b);
  mem_free(&m);
}

/* The sender's file has a broken link (entry 2's prev_hash is not entry
 * 1's hash; every hash recomputed to match its entry): its export is
 * signed and each entry's hash holds, yet import refuses the chain. */
static int break_link(const char *name) {
  sqlite3 *s = NULL;
  sqlite3_stmt *r = NULL, *u = NULL;
  unsigned char prev[32];
  memset(prev, 0x42, sizeof prev);
  int ok = sqlite3_open(tpath(name), &s) == SQLITE_OK &&
           sqlite3_exec(s, "DROP TRIGGER IF EXISTS oplog_entries_no_update", NULL, NULL, NULL) == SQLITE_OK &&
           sqlite3_prepare_v2(s,
                              "SELECT e.id, o.id, e.seq, e.clock, e.created, e.key_id, e.aggregate_name, e.metadata, e.data"
                              " FROM oplog_entries e JOIN oplog_origins o ON o.no = e.origin WHERE e.seq >= 2 ORDER BY e.seq",
                              -1, &r, NULL) == SQLITE_OK &&
           sqlite3_prepare_v2(s, "UPDATE oplog_entries SET prev_hash = ?1, hash = ?2 WHERE id = ?3", -1, &u, NULL) == SQLITE_OK;
  while (ok && sqlite3_step(r) == SQLITE_ROW) {
    unsigned char h[32];
    ref_entry_hash(prev, sqlite3_column_blob(r, 1), sqlite3_column_int64(r, 2), sqlite3_column_int64(r, 3),
                   sqlite3_column_int64(r, 4), sqlite3_column_int64(r, 5), sqlite3_column_text(r, 6),
                   (size_t)sqlite3_column_bytes(r, 6), sqlite3_column_blob(r, 7), (size_t)sqlite3_column_bytes(r, 7),
                   sqlite3_column_blob(r, 8), (size_t)sqlite3_column_bytes(r, 8), h);
    sqlite3_bind_blob(u, 1, prev, 32, SQLITE_TRANSIENT);
    sqlite3_bind_blob(u, 2, h, 32, SQLITE_TRANSIENT);
    sqlite3_bind_int64(u, 3, sqlite3_column_int64(r, 0));
    ok = sqlite3_step(u) == SQLITE_DONE;
    sqlite3_reset(u);
    memcpy(prev, h, 32);
  }
  sqlite3_finalize(r);
  sqlite3_finalize(u);
  sqlite3_close(s);
  return ok;
}

static void broken_link(void) {
  oplog_db *a = open_plain("a.db"), *b = open_plain("b.db");
  CHECK(a && b);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 3) == 0);
  oplog_close(a);
  CHECK(break_link("a.db"));
  char why[256];
  CHECK(!ref_check_chain(tpath("a.db"), why, sizeof why) && strstr(why, "prev"));
  a = open_plain("a.db");
  CHECK(a);
  mem m;
  OK(a, export_mem(a, NULL, NULL, &m));
  oplog_close(a);
  oplog_close(b);
  CHECK(refused("b.db", NULL, &m, OPLOG_CORRUPT));
  b = open_plain("b.db");
  CHECK(b);
  CHECK_RC(b, import_mem(b, &m, NULL), OPLOG_CORRUPT);
  CHECK(strstr(oplog_errmsg(b), "entry at seq 2 does not follow the stream's seq 1"));
  oplog_close(b);
  mem_free(&m);
}

/* FORMAT.md 12: the hash of a format-1 entry (u64 and u32 little-endian). */
static void put_le(crypto_generichash_state *st, uint64_t v, size_t n) {
  unsigned char b[8];
  for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(v >> (8 * i));
  crypto_generichash_update(st, b, n);
}

static void put_len32(crypto_generichash_state *st, const void *p, size_t n) {
  put_le(st, n, 4);
  if (n) crypto_generichash_update(st, p, n);
}

static void ref_v1_hash(const unsigned char prev[32], int64_t seq, int64_t created, int64_t key_id, const void *agg,
                        size_t nagg, const void *md, size_t nmd, const void *data, size_t ndata, unsigned char out[32]) {
  crypto_generichash_state st;
  ref_pair p[16];
  int np = ref_meta_decode(md, nmd, p, 16);
  crypto_generichash_init(&st, NULL, 0, 32);
  crypto_generichash_update(&st, prev, 32);
  put_le(&st, (uint64_t)seq, 8);
  put_le(&st, (uint64_t)created, 8);
  put_le(&st, (uint64_t)key_id, 8);
  put_len32(&st, agg, nagg);
  for (int i = 0; i < np && i < 16; i++) {
    put_len32(&st, p[i].key, p[i].nkey);
    put_le(&st, (uint64_t)p[i].has_value, 1);
    if (p[i].has_value) put_len32(&st, p[i].value, p[i].nvalue);
  }
  put_le(&st, (uint64_t)np, 4);
  put_len32(&st, data, ndata);
  crypto_generichash_final(&st, out, 32);
}

/* As someone with the file: the newest entry made format 1 (its hash
 * recomputed in the format-1 layout; a fresh file's clock is its seq, as
 * format 1 has it). */
static int make_last_format1(const char *name) {
  sqlite3 *s = NULL;
  sqlite3_stmt *r = NULL, *u = NULL;
  int ok = sqlite3_open(tpath(name), &s) == SQLITE_OK &&
           sqlite3_exec(s, "DROP TRIGGER IF EXISTS oplog_entries_no_update", NULL, NULL, NULL) == SQLITE_OK &&
           sqlite3_prepare_v2(s,
                              "SELECT id, prev_hash, seq, clock, created, key_id, aggregate_name, metadata, data"
                              " FROM oplog_entries ORDER BY id DESC LIMIT 1",
                              -1, &r, NULL) == SQLITE_OK &&
           sqlite3_prepare_v2(s, "UPDATE oplog_entries SET format = 1, hash = ?1 WHERE id = ?2", -1, &u, NULL) == SQLITE_OK &&
           sqlite3_step(r) == SQLITE_ROW && sqlite3_column_int64(r, 2) == sqlite3_column_int64(r, 3);
  if (ok) {
    unsigned char h[32];
    ref_v1_hash(sqlite3_column_blob(r, 1), sqlite3_column_int64(r, 2), sqlite3_column_int64(r, 4), sqlite3_column_int64(r, 5),
                sqlite3_column_text(r, 6), (size_t)sqlite3_column_bytes(r, 6), sqlite3_column_blob(r, 7),
                (size_t)sqlite3_column_bytes(r, 7), sqlite3_column_blob(r, 8), (size_t)sqlite3_column_bytes(r, 8), h);
    sqlite3_bind_blob(u, 1, h, 32, SQLITE_TRANSIENT);
    sqlite3_bind_int64(u, 2, sqlite3_column_int64(r, 0));
    ok = sqlite3_step(u) == SQLITE_DONE;
  }
  sqlite3_finalize(r);
  sqlite3_finalize(u);
  sqlite3_close(s);
  return ok;
}

typedef struct problem_seen {
  int n;
  int64_t id;
  char kind[32], detail[256];
} problem_seen;

static int on_problem(void *ctx, int64_t id, const char *kind, const char *detail) {
  problem_seen *p = ctx;
  p->n++;
  p->id = id;
  snprintf(p->kind, sizeof p->kind, "%s", kind);
  snprintf(p->detail, sizeof p->detail, "%s", detail);
  return 0;
}

/* Format-1 entries are only a migrated chain's start (FORMAT.md 12): a
 * format-1 entry after a format-2 one of its origin, every hash holding,
 * is chain_break in verify, and its export (signed) is refused whole. */
static void format1_after_format2(void) {
  oplog_db *a = open_plain("a.db"), *b = open_plain("b.db");
  CHECK(a && b);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 2) == 0);
  oplog_close(a);
  oplog_close(b);
  CHECK(make_last_format1("a.db"));
  a = open_plain("a.db");
  CHECK(a);
  problem_seen p = {0};
  oplog_verify_result vr;
  OK(a, oplog_verify(a, NULL, on_problem, &p, &vr));
  CHECK((!vr.ok && p.n == 1 && p.id == 2 && strcmp(p.kind, "chain_break") == 0 && strstr(p.detail, "format 1")) ||
        (fprintf(stderr, "%d problems, last: %s %s\n", p.n, p.kind, p.detail), 0));
  mem m;
  OK(a, export_mem(a, NULL, NULL, &m));
  oplog_close(a);
  CHECK(refused("b.db", NULL, &m, OPLOG_CORRUPT));
  b = open_plain("b.db");
  CHECK(b);
  CHECK_RC(b, import_mem(b, &m, NULL), OPLOG_CORRUPT);
  CHECK(strstr(oplog_errmsg(b), "entry at seq 2 is format 1, after a format-2 entry"));
  oplog_close(b);
  mem_free(&m);
}

static int stop_at_first(void *ctx, int64_t done, int64_t total) {
  (void)total;
  *(int64_t *)ctx = done;
  return 1;
}

static void interrupted(void) {
  oplog_db *a = open_plain("a.db"), *b = open_plain("b.db");
  CHECK(a && b);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 3) == 0);
  mem m;
  OK(a, export_mem(a, NULL, NULL, &m));
  oplog_close(b);
  unsigned char before[32], after[32];
  file_digest(tpath("b.db"), before);
  b = open_plain("b.db");
  int64_t seen = -1;
  oplog_import_opts io = {.progress = stop_at_first, .progress_ctx = &seen};
  m.pos = 0;
  CHECK_RC(b, oplog_import(b, &io, mem_read, &m, NULL), OPLOG_INVALID_ARGUMENT);
  CHECK(seen == 3 && strstr(oplog_errmsg(b), "interrupted"));
  oplog_close(b);
  file_digest(tpath("b.db"), after);
  CHECK(memcmp(before, after, 32) == 0);
  mem_free(&m);
  oplog_export_opts eo = {.progress = stop_at_first, .progress_ctx = &seen};
  memset(&m, 0, sizeof m);
  CHECK_RC(a, oplog_export(a, &eo, mem_write, &m, NULL), OPLOG_INVALID_ARGUMENT);
  mem_free(&m);
  oplog_close(a);
}

/* ---------------------------------------------------------------- cursors and join */

static void cursor_strict(void) {
  oplog_db *a = open_plain("a.db");
  CHECK(a);
  char *cur = NULL, hx[65];
  OK(a, oplog_cursor(a, &cur));
  char want[80];
  snprintf(want, sizeof want, "%s:0", origin_hex(a, hx));
  CHECK(strcmp(cur, want) == 0);
  oplog_free(cur);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 2) == 0);
  OK(a, oplog_cursor(a, &cur));
  snprintf(want, sizeof want, "%s:2", hx);
  CHECK(strcmp(cur, want) == 0);
  /* its own cursor: nothing to ship, the base matches */
  mem m;
  oplog_export_result er;
  oplog_export_opts eo = {.since = cur};
  memset(&m, 0, sizeof m);
  OK(a, oplog_export(a, &eo, mem_write, &m, &er));
  CHECK(er.entries == 0);
  mem_free(&m);
  oplog_free(cur);
  const char *bad[] = {"x", ":1", "00:1", "zz", ",", "", NULL};
  char buf[200];
  for (int i = 0; bad[i]; i++) {
    eo.since = bad[i];
    memset(&m, 0, sizeof m);
    int rc = oplog_export(a, &eo, mem_write, &m, NULL);
    mem_free(&m);
    CHECK(rc == (*bad[i] ? OPLOG_INVALID_ARGUMENT : OPLOG_OK));
  }
  const char *tails[] = {":", ":-1", ":1x", ":1,", ": 1", ":+1", ":99999999999999999999", NULL};
  for (int i = 0; tails[i]; i++) {
    snprintf(buf, sizeof buf, "%s%s", hx, tails[i]);
    eo.since = buf;
    memset(&m, 0, sizeof m);
    CHECK_RC(a, oplog_export(a, &eo, mem_write, &m, NULL), OPLOG_INVALID_ARGUMENT);
    mem_free(&m);
  }
  snprintf(buf, sizeof buf, "%s:1,%s:2", hx, hx);
  eo.since = buf;
  memset(&m, 0, sizeof m);
  CHECK_RC(a, oplog_export(a, &eo, mem_write, &m, NULL), OPLOG_INVALID_ARGUMENT);
  mem_free(&m);
  /* upper-case hex is the same origin */
  for (char *p = hx; *p; p++)
    if (*p >= 'a' && *p <= 'f') *p -= 32;
  snprintf(buf, sizeof buf, "%s:1", hx);
  OK(a, oplog_export(a, &eo, mem_write, &m, &er));
  CHECK(er.entries == 1);
  mem_free(&m);
  oplog_close(a);
}

static void join_both_ways(void) {
  oplog_db *a = open_plain("a.db"), *b = open_plain("b.db");
  CHECK(a && b);
  OK(a, define_user(a));
  OK(b, define_user(b));
  CHECK(write_users(a, 1, 3) == 0);
  CHECK(write_users(b, 100, 2) == 0);
  oplog_open_opts plain = {0};
  plain.key.no_encryption = 1;
  oplog_import_result res;
  OK(a, oplog_join(a, tpath("b.db"), &plain, NULL, &res));
  CHECK(res.entries == 2);
  OK(b, oplog_join(b, tpath("a.db"), &plain, NULL, &res));
  CHECK(res.entries == 3 && res.skipped == 0);
  OK(a, oplog_join(a, tpath("b.db"), &plain, NULL, &res));
  CHECK(res.entries == 0);
  char *ca = NULL, *cb = NULL;
  OK(a, oplog_cursor(a, &ca));
  OK(b, oplog_cursor(b, &cb));
  CHECK(strcmp(ca, cb) == 0);
  oplog_free(ca);
  oplog_free(cb);
  CHECK(users_rows(tpath("a.db")) == 5 && users_rows(tpath("b.db")) == 5);
  oplog_close(a);
  oplog_close(b);
  /* encrypted: the other file's key choice */
  a = open_keyed("ka.db", KA);
  b = open_keyed("kb.db", KB);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 2) == 0);
  oplog_open_opts ko = {0};
  ko.key.key = KA;
  ko.key.key_len = 32;
  OK(b, oplog_join(b, tpath("ka.db"), &ko, NULL, &res));
  CHECK(res.entries == 2);
  oplog_entry *e = NULL;
  OK(b, oplog_entry_get(b, 2, &e));
  oplog_entry_free(e);
  oplog_close(a);
  oplog_close(b);
}

typedef struct head_ctx {
  oplog_head_info *h;
  int n;
} head_ctx;

static int each_head(void *c, const oplog_head_info *hi) {
  head_ctx *ctx = c;
  if (ctx->n < 4) ctx->h[ctx->n] = *hi;
  ctx->n++;
  return 0;
}

static void heads_listed(void) {
  oplog_db *a = open_plain("a.db"), *b = open_plain("b.db");
  CHECK(a && b);
  OK(a, define_user(a));
  CHECK(write_users(a, 1, 3) == 0);
  mem m;
  OK(a, export_mem(a, NULL, NULL, &m));
  OK(b, import_mem(b, &m, NULL));
  mem_free(&m);
  oplog_head_info h[4];
  head_ctx ctx = {h, 0};
  OK(b, oplog_heads(b, each_head, &ctx));
  CHECK(ctx.n == 2 && memcmp(h[0].origin, h[1].origin, 32) < 0);
  oplog_origin_info oa, ob;
  OK(a, oplog_origin(a, &oa));
  OK(b, oplog_origin(b, &ob));
  int ia = memcmp(h[0].origin, oa.id, 32) == 0 ? 0 : 1;
  CHECK(memcmp(h[ia].origin, oa.id, 32) == 0 && h[ia].seq == 3 && memcmp(h[ia].hash, oa.head_hash, 32) == 0);
  CHECK(memcmp(h[1 - ia].origin, ob.id, 32) == 0 && h[1 - ia].seq == 0);
  oplog_close(a);
  oplog_close(b);
}

/* ---------------------------------------------------------------- very many origins */

/* Protobuf by hand (the test sees only the public API): varints and
 * length-delimited fields. */
static size_t pb_varint(unsigned char *p, uint64_t v) {
  size_t n = 0;
  for (; v >= 0x80; v >>= 7) p[n++] = (unsigned char)(v | 0x80);
  p[n++] = (unsigned char)v;
  return n;
}

static size_t pb_uint(unsigned char *p, int field, uint64_t v) {
  size_t n = pb_varint(p, (uint64_t)field << 3);
  return n + pb_varint(p + n, v);
}

static size_t pb_bytes(unsigned char *p, int field, const void *b, size_t len) {
  size_t n = pb_varint(p, (uint64_t)field << 3 | 2);
  n += pb_varint(p + n, len);
  memcpy(p + n, b, len);
  return n + len;
}

/* A crafted stream made as it is read, signed with a key of its own:
 * nbases bases, then nentries entries, each of an origin of its own (seq
 * 1; plaintext: a create of user i; encrypted: key id 1 and bytes no key
 * opens, sealed to `to` with no key frame). `repeat`: the last base names
 * the first base's origin again. One frame in memory, however many. */
typedef struct gen_stream {
  unsigned char pk[32], sk[64], to[32];
  int encrypted, repeat;
  crypto_generichash_state h;
  int64_t nbases, nentries, made; /* frames made after the header */
  unsigned char buf[1024];
  size_t n, pos;
  int state; /* 0 nothing yet, 1 frames, 2 the trailer is out */
} gen_stream;

static void gen_origin(const char *what, int64_t i, unsigned char out[32]) {
  unsigned char in[16] = {0};
  memcpy(in, what, strlen(what));
  memcpy(in + 8, &i, 8);
  crypto_generichash(out, 32, in, sizeof in, NULL, 0);
}

static void gen_frame(gen_stream *g, int kind, const unsigned char *msg, size_t len, int hashed) {
  unsigned char *p = g->buf + g->n;
  p[0] = (unsigned char)kind;
  p[1] = (unsigned char)(len >> 24), p[2] = (unsigned char)(len >> 16), p[3] = (unsigned char)(len >> 8), p[4] = (unsigned char)len;
  memcpy(p + 5, msg, len);
  if (hashed) crypto_generichash_update(&g->h, p, 5 + len);
  g->n += 5 + len;
}

static void gen_next(gen_stream *g) {
  unsigned char m[768], a[32], b[32];
  size_t n = 0;
  g->n = g->pos = 0;
  if (g->state == 0) {
    memcpy(g->buf, "OPLOGSYN\x01", 9);
    g->n = 9;
    crypto_generichash_update(&g->h, g->buf, 9);
    n = pb_uint(m, 1, 1);
    n += pb_bytes(m + n, 2, g->pk, 32);
    if (g->encrypted) n += pb_bytes(m + n, 3, g->to, 32), n += pb_uint(m + n, 4, 1);
    n += pb_uint(m + n, 6, (uint64_t)g->nentries);
    gen_frame(g, 1, m, n, 1);
    g->state = 1;
  } else if (g->made < g->nbases) {
    int64_t i = g->repeat && g->made == g->nbases - 1 ? 0 : g->made;
    gen_origin("base", i, a);
    n = pb_bytes(m, 1, a, 32);
    n += pb_uint(m + n, 2, 1);
    n += pb_bytes(m + n, 3, a, 32);
    gen_frame(g, 3, m, n, 1);
    g->made++;
  } else if (g->made < g->nbases + g->nentries) {
    int64_t i = g->made - g->nbases + 1;
    unsigned char v[64], f1[64], f2[96], row[192], op[256], data[320], meta[4] = {0}, zero[32] = {0};
    size_t nd;
    if (g->encrypted) {
      nd = 48;
      crypto_generichash(data, nd, (const unsigned char *)&i, sizeof i, NULL, 0);
    } else {
      char name[32];
      snprintf(name, sizeof name, "u%lld", (long long)i);
      size_t nv = pb_uint(v, 2, (uint64_t)i << 1); /* sint64: zigzag */
      size_t n1 = pb_bytes(f1, 1, "id", 2);
      n1 += pb_bytes(f1 + n1, 2, v, nv);
      nv = pb_bytes(v, 4, name, strlen(name));
      size_t n2 = pb_bytes(f2, 1, "name", 4);
      n2 += pb_bytes(f2 + n2, 2, v, nv);
      size_t nr = pb_bytes(row, 1, f1, n1);
      nr += pb_bytes(row + nr, 1, f2, n2);
      size_t no = pb_bytes(op, 1, "user", 4);
      no += pb_uint(op + no, 2, 1);
      no += pb_bytes(op + no, 5, row, nr);
      nd = pb_bytes(data, 1, op, no);
    }
    int64_t key_id = g->encrypted ? 1 : 0, clock = 1 + i % 5;
    gen_origin("entry", i, a);
    ref_entry_hash(zero, a, 1, clock, 0, key_id, "users", 5, meta, 4, data, nd, b);
    n = pb_bytes(m, 1, a, 32);
    n += pb_uint(m + n, 2, 1);
    n += pb_uint(m + n, 3, (uint64_t)clock);
    n += pb_bytes(m + n, 5, "users", 5);
    if (key_id) n += pb_uint(m + n, 6, (uint64_t)key_id);
    n += pb_bytes(m + n, 7, meta, 4);
    n += pb_bytes(m + n, 8, data, nd);
    n += pb_bytes(m + n, 9, zero, 32);
    n += pb_bytes(m + n, 10, b, 32);
    n += pb_uint(m + n, 11, 2);
    gen_frame(g, 4, m, n, 1);
    g->made++;
  } else {
    unsigned char sig[64], msg[15 + 32];
    crypto_generichash_final(&g->h, a, 32);
    memcpy(msg, "oplog-stream-v1", 15);
    memcpy(msg + 15, a, 32);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, g->sk);
    n = pb_uint(m, 1, (uint64_t)(1 + g->made));
    n += pb_uint(m + n, 2, (uint64_t)g->nentries);
    n += pb_bytes(m + n, 3, a, 32);
    n += pb_bytes(m + n, 4, sig, 64);
    gen_frame(g, 7, m, n, 0);
    g->state = 2;
  }
}

static int gen_read(void *ctx, void *p, size_t n, size_t *got) {
  gen_stream *g = ctx;
  *got = 0;
  while (*got < n) {
    if (g->pos == g->n) {
      if (g->state == 2) break;
      gen_next(g);
    }
    size_t k = g->n - g->pos < n - *got ? g->n - g->pos : n - *got;
    memcpy((unsigned char *)p + *got, g->buf + g->pos, k);
    g->pos += k;
    *got += k;
  }
  return 0;
}

static void gen_init(gen_stream *g, int64_t nbases, int64_t nentries) {
  memset(g, 0, sizeof *g);
  crypto_sign_keypair(g->pk, g->sk);
  crypto_generichash_init(&g->h, NULL, 0, 32);
  g->nbases = nbases;
  g->nentries = nentries;
}

static int count_head(void *ctx, const oplog_head_info *h) {
  (void)h;
  ++*(int64_t *)ctx;
  return 0;
}

/* A hostile stream naming a million origins, and a file holding fifty
 * thousand, cost no more than O(origins log origins): import, heads,
 * cursor, export beyond a cursor naming them all, a relay, verify. What is
 * checked is the outcome; a lookup linear in the origins would make it
 * run for hours. */
static void many_origins(void) {
  /* OPLOG_TEST_ORIGINS=N: N bases and N/20 entries (to time it by hand) */
  const char *scale = getenv("OPLOG_TEST_ORIGINS");
  const int64_t nbases = scale ? atoll(scale) : 1000000, nentries = nbases / 20;
  oplog_db *b = open_plain("b.db");
  CHECK(b);
  OK(b, define_user(b));
  gen_stream g;
  oplog_import_result res;
  /* a base naming one of a million origins twice: corrupt, nothing changed */
  gen_init(&g, nbases, 0);
  g.repeat = 1;
  oplog_close(b);
  unsigned char before[32], after[32];
  file_digest(tpath("b.db"), before);
  b = open_plain("b.db");
  CHECK_RC(b, oplog_import(b, NULL, gen_read, &g, &res), OPLOG_CORRUPT);
  CHECK(strstr(oplog_errmsg(b), "two bases for one origin"));
  oplog_close(b);
  file_digest(tpath("b.db"), after);
  CHECK(memcmp(before, after, 32) == 0);
  /* bases of origins it holds nothing of, then an entry from each of as
   * many others */
  b = open_plain("b.db");
  gen_init(&g, nentries, nentries);
  OK(b, oplog_import(b, NULL, gen_read, &g, &res));
  CHECK(res.entries == nentries && res.skipped == 0 && res.conflicts == 0);
  CHECK(users_rows(tpath("b.db")) == nentries);
  int64_t heads = 0;
  OK(b, oplog_heads(b, count_head, &heads));
  CHECK(heads == nentries + 1);
  /* its cursor names every origin: nothing lies beyond it */
  char *cur = NULL;
  OK(b, oplog_cursor(b, &cur));
  mem m;
  oplog_export_result er;
  oplog_export_opts eo = {.since = cur};
  memset(&m, 0, sizeof m);
  OK(b, oplog_export(b, &eo, mem_write, &m, &er));
  CHECK(er.entries == 0);
  mem_free(&m);
  oplog_free(cur);
  /* everything, relayed */
  OK(b, export_mem(b, NULL, NULL, &m));
  oplog_db *c = open_plain("c.db");
  CHECK(c);
  OK(c, import_mem(c, &m, &res));
  CHECK(res.entries == nentries);
  mem_free(&m);
  oplog_verify_result vr;
  OK(c, oplog_verify(c, NULL, NULL, NULL, &vr));
  CHECK(vr.ok && vr.entries == nentries);
  oplog_close(c);
  oplog_close(b);
  /* encrypted: the data keys of as many origins needed, none sent */
  oplog_db *k = open_keyed("k.db", KB);
  CHECK(k);
  oplog_origin_info ko;
  OK(k, oplog_origin(k, &ko));
  oplog_close(k);
  file_digest(tpath("k.db"), before);
  k = open_keyed("k.db", KB);
  gen_init(&g, 0, nentries);
  g.encrypted = 1;
  memcpy(g.to, ko.id, 32);
  CHECK_RC(k, oplog_import(k, NULL, gen_read, &g, &res), OPLOG_CORRUPT);
  CHECK(strstr(oplog_errmsg(k), "lacks data key 1 of origin"));
  oplog_close(k);
  file_digest(tpath("k.db"), after);
  CHECK(memcmp(before, after, 32) == 0);
}

static const struct test_case cases[] = {
    {"plain_round_trip", plain_round_trip},
    {"encrypted_round_trip", encrypted_round_trip},
    {"relay", relay},
    {"wrong_recipient", wrong_recipient},
    {"plaintext_vs_encrypted", plaintext_vs_encrypted},
    {"gap", gap},
    {"fork_detected", fork_detected},
    {"type_conflict", type_conflict},
    {"cut_and_altered", cut_and_altered},
    {"frame_too_large", frame_too_large},
    {"broken_link", broken_link},
    {"format1_after_format2", format1_after_format2},
    {"interrupted", interrupted},
    {"cursor_strict", cursor_strict},
    {"join_both_ways", join_both_ways},
    {"heads_listed", heads_listed},
    {"many_origins", many_origins},
    {NULL, NULL}};

int main(int argc, char **argv) { return test_main(argc, argv, cases); }
