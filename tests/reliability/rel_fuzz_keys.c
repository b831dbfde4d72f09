/*
 * rel_fuzz_keys.c — fuzz target: a damaged key table and settings.
 *
 * Each input is a list of edits applied with a raw connection to a copy of
 * an encrypted file (two data keys, entries under both): rewrite a key's
 * nonce or wrapped bytes, delete or add key rows, flip states, renumber,
 * change or delete oplog_config values. The file is then opened with the
 * RIGHT key: the open must succeed or fail cleanly (wrong_key, corrupt,
 * decrypt_failed, key_required), and if it opens, reading, verifying and
 * writing must also give clean codes. Every input also goes straight to
 * opl_crypto_unwrap (internal.h's fuzz entry point).
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "internal.h"
#include "rel_common.h"

static struct {
  char *dir, *base, *work;
  int64_t entries;
} F;

static void setup(void) {
  if (F.dir) return;
  F.dir = rel_mkdtemp_fast("fuzz-keys");
  F.base = strdup(rel_path(F.dir, "base.db"));
  F.work = strdup(rel_path(F.dir, "work.db"));
  oplog_db *db = rel_open(F.base, rel_key);
  REL_OK(db, rel_define_workload(db, "k"));
  int64_t id, kid;
  REL_OK(db, rel_seed_counter(db, "k", &id));
  REL_OK(db, rel_write_tx(db, "k", 1, 1, 20, &id));
  REL_OK(db, oplog_rotate_key(db, &kid));
  REL_OK(db, rel_write_tx(db, "k", 1, 2, 20, &id));
  F.entries = id;
  oplog_close(db);
  sqlite3 *raw;
  REL_CHECK(sqlite3_open(F.base, &raw) == SQLITE_OK, "open");
  REL_CHECK(sqlite3_exec(raw, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) == SQLITE_OK,
            "checkpoint");
  sqlite3_close(raw);
}

typedef struct src {
  const uint8_t *p;
  size_t n, i;
} src;
static unsigned u8(src *s) { return s->i < s->n ? s->p[s->i++] : 0; }
static size_t take(src *s, uint8_t *out, size_t want) {
  size_t n = 0;
  while (n < want && s->i < s->n) out[n++] = s->p[s->i++];
  return n;
}

static void edit(sqlite3 *raw, src *s) {
  unsigned op = u8(s) % 10;
  int64_t id = 1 + u8(s) % 3;
  uint8_t b[64];
  sqlite3_stmt *st = NULL;
  const char *sql = NULL;
  switch (op) {
    case 0: sql = "UPDATE oplog_keys SET nonce = ?2 WHERE id = ?1"; break;
    case 1: sql = "UPDATE oplog_keys SET wrapped = ?2 WHERE id = ?1"; break;
    case 2: sql = "DELETE FROM oplog_keys WHERE id = ?1"; break;
    case 3: sql = "INSERT OR REPLACE INTO oplog_keys VALUES (?1, 0, 'active', ?2, ?3)"; break;
    case 4: sql = "UPDATE oplog_keys SET state = CASE state WHEN 'active' THEN 'retired' "
                  "ELSE 'active' END WHERE id = ?1"; break;
    case 5: sql = "UPDATE OR IGNORE oplog_keys SET id = ?1 + 10 WHERE id = ?1"; break;
    /* oplog_config is WITHOUT ROWID: rows are addressed by name. */
    case 6: sql = "UPDATE oplog_config SET value = ?2 WHERE name IN (SELECT name FROM "
                  "oplog_config LIMIT 1 OFFSET ?1)"; break;
    case 7: sql = "DELETE FROM oplog_config WHERE name IN (SELECT name FROM oplog_config "
                  "LIMIT 1 OFFSET ?1)"; break;
    case 8: sql = "UPDATE oplog_config SET value = ?1 WHERE name IN (SELECT name FROM "
                  "oplog_config LIMIT 1 OFFSET ?1 % 4)"; break;
    default: sql = "UPDATE oplog_keys SET created = -?1"; break;
  }
  if (sqlite3_prepare_v2(raw, sql, -1, &st, NULL) != SQLITE_OK) return;
  sqlite3_bind_int64(st, 1, op >= 6 ? (int64_t)(u8(s) % 6) : id);
  unsigned t = u8(s);
  if (op == 0 || op == 3) {
    size_t n = take(s, b, 24);
    sqlite3_bind_blob(st, 2, b, (int)n, SQLITE_TRANSIENT);
  } else if (op == 1) {
    size_t n = take(s, b, 48);
    sqlite3_bind_blob(st, 2, b, (int)n, SQLITE_TRANSIENT);
  } else if (op == 6) {
    size_t n = take(s, b, t % 40);
    if (t & 0x80) sqlite3_bind_int64(st, 2, (int64_t)(int8_t)t);
    else if (t & 0x40) sqlite3_bind_text(st, 2, (const char *)b, (int)n, SQLITE_TRANSIENT);
    else sqlite3_bind_blob(st, 2, b, (int)n, SQLITE_TRANSIENT);
  }
  if (op == 3) {
    size_t n = take(s, b, 48);
    sqlite3_bind_blob(st, 3, b, (int)n, SQLITE_TRANSIENT);
  }
  sqlite3_step(st); /* CHECK constraints may refuse an edit: that is fine */
  sqlite3_finalize(st);
}

static int open_code_ok(int rc) {
  return rc == OPLOG_OK || rc == OPLOG_WRONG_KEY || rc == OPLOG_CORRUPT ||
         rc == OPLOG_DECRYPT_FAILED || rc == OPLOG_KEY_REQUIRED;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  /* (1) the unwrap primitive alone */
  {
    uint8_t nonce[40], wrapped[80];
    src s = {data, size, 0};
    size_t nn = take(&s, nonce, u8(&s) % 41);
    size_t nw = take(&s, wrapped, u8(&s) % 81);
    unsigned char key[OPLOG_KEY_BYTES];
    uint8_t origin[OPLOG_ORIGIN_BYTES] = {0};
    int v1 = u8(&s) & 1; /* the format-1 wrapping or the origin-bound one */
    if (!v1) take(&s, origin, sizeof origin);
    int rc = opl_crypto_unwrap(rel_key, v1 ? NULL : origin, (int64_t)u8(&s), nonce, nn, wrapped, nw, key);
    FUZZ_CHECK(rc == OPLOG_OK || rc == OPLOG_WRONG_KEY || rc == OPLOG_CORRUPT ||
                   rc == OPLOG_DECRYPT_FAILED,
               "crypto_unwrap: %s", oplog_code_name(rc));
  }
  /* (2) a damaged file */
  rel_copy_file(F.base, F.work);
  sqlite3 *raw;
  REL_CHECK(sqlite3_open(F.work, &raw) == SQLITE_OK, "open work");
  sqlite3_exec(raw, "PRAGMA synchronous=OFF", NULL, NULL, NULL);
  src s = {data, size, 0};
  unsigned nedits = 1 + u8(&s) % 6;
  for (unsigned i = 0; i < nedits && s.i < s.n; i++) edit(raw, &s);
  sqlite3_close(raw);

  oplog_db *db = NULL;
  oplog_open_opts o = rel_opts(rel_key);
  o.sync = OPLOG_SYNC_NORMAL;
  int rc = oplog_open(F.work, &o, &db);
  FUZZ_CHECK(open_code_ok(rc), "open with the right key: %s: %s", oplog_code_name(rc),
             db ? oplog_errmsg(db) : "");
  if (rc == OPLOG_OK) {
    for (int64_t id = 1; id <= F.entries; id++) {
      oplog_entry *e = NULL;
      int grc = oplog_entry_get(db, id, &e);
      FUZZ_CHECK(grc == OPLOG_OK || grc == OPLOG_DECRYPT_FAILED || grc == OPLOG_CORRUPT ||
                     grc == OPLOG_WRONG_KEY,
                 "entry_get %" PRId64 ": %s: %s", id, oplog_code_name(grc), oplog_errmsg(db));
      oplog_entry_free(e);
    }
    oplog_verify_result r;
    memset(&r, 0, sizeof r);
    int vrc = oplog_verify(db, NULL, NULL, NULL, &r);
    FUZZ_CHECK(vrc == OPLOG_OK || vrc == OPLOG_CORRUPT, "verify: %s: %s",
               oplog_code_name(vrc), oplog_errmsg(db));
    int64_t id;
    int wrc = rel_write_tx(db, "k", 2, 1, 10, &id);
    FUZZ_CHECK(wrc == OPLOG_OK || wrc == OPLOG_CORRUPT || wrc == OPLOG_DECRYPT_FAILED ||
                   wrc == OPLOG_WRONG_KEY,
               "write: %s: %s", oplog_code_name(wrc), oplog_errmsg(db));
    if (wrc == OPLOG_OK) {
      /* What it just wrote must read back. */
      oplog_entry *e = NULL;
      int grc = oplog_entry_get(db, id, &e);
      FUZZ_CHECK(grc == OPLOG_OK, "new entry unreadable: %s: %s", oplog_code_name(grc),
                 oplog_errmsg(db));
      oplog_entry_free(e);
    }
  }
  oplog_close(db);
  return 0;
}

void rel_fuzz_seeds(void (*add)(const uint8_t *p, size_t n)) {
  static const uint8_t s0[] = {0};                       /* one harmless edit */
  static const uint8_t s1[] = {1, 0, 0, 0, 'x', 'y'};    /* short nonce on key 1 */
  static const uint8_t s2[] = {1, 2, 1, 0};              /* delete key 2 */
  static const uint8_t s3[] = {1, 4, 0, 0};              /* flip key 1's state */
  static const uint8_t s4[] = {1, 5, 1, 0};              /* renumber key 2 */
  static const uint8_t s5[] = {1, 6, 0, 0xc1, 'z'};      /* config value text */
  static const uint8_t s6[] = {1, 7, 0, 0};              /* delete a setting */
  static const uint8_t s7[] = {2, 6, 1, 0x85, 7, 1, 0, 0};
  add(s0, sizeof s0);
  add(s1, sizeof s1);
  add(s2, sizeof s2);
  add(s3, sizeof s3);
  add(s4, sizeof s4);
  add(s5, sizeof s5);
  add(s6, sizeof s6);
  add(s7, sizeof s7);
  uint8_t b[80] = {1, 1, 0, 0};
  for (int i = 4; i < 80; i++) b[i] = (uint8_t)(i * 37);
  add(b, sizeof b); /* wrapped key 1 replaced */
}

void rel_fuzz_cleanup(void) {
  if (!F.dir) return;
  rel_rmdir_all(F.dir);
  free(F.dir);
  free(F.base);
  free(F.work);
  F.dir = NULL;
}
