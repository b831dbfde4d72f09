/* test_security.c — issue 14, security hardening: one case per point, each
 * PERFORMING the attack (with raw SQLite and libsodium, as someone holding
 * the file, a backup or an old key would) and checking that it fails.
 *
 *   files_private             1  the log, its -wal and -shm, a replica: 0600
 *   clear_fields_rehashed     2  created / metadata rewritten, chain recomputed
 *   plaintext_entry_forged    2  an entry with key_id 0 (data in the clear) added,
 *                                or key_id 0 set on one, chain computed
 *   hash_input_unambiguous    3  two entries with one format-1 hash input
 *   rekey_locks_out_old_root  4  old root key + old copy vs entries after rekey
 *   key_state_forged          5  a retired key marked active again
 *   catalog_hostile           6  table name, declaration, key position
 *   kdf_ceilings              6  a file asking Argon2id for 4 GiB and 2^31 passes
 *   entry_size_ceiling        6  a 20 MiB entry is never loaded
 *   weak_kdf_and_key_files    7  weak new passphrase, key files open to others
 *   passphrase_fd             8  the passphrase from a descriptor */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"

static const unsigned char KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                      17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const unsigned char KEY2[32] = {9, 9, 9};

static oplog_db *open_with(const char *name, oplog_open_opts o, int *rc) {
  oplog_db *db = NULL;
  if (!o.sync) o.sync = OPLOG_SYNC_NORMAL;
  *rc = oplog_open(tpath(name), &o, &db);
  return db;
}

static oplog_open_opts keyed(const unsigned char *key) {
  oplog_open_opts o = {0};
  o.key.key = key;
  o.key.key_len = 32;
  return o;
}

static oplog_open_opts keyless(void) { return (oplog_open_opts){0}; }

static int file_mode(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static int copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  int ok = in && out;
  char buf[65536];
  size_t n;
  while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
  if (in) fclose(in);
  if (out && fclose(out) != 0) ok = 0;
  return ok;
}

/* SQL run by the attacker, with the append-only triggers dropped first. */
static int attack_sql(const char *name, const char *sql) {
  char buf[4096];
  snprintf(buf, sizeof buf,
           "DROP TRIGGER IF EXISTS oplog_entries_no_update; DROP TRIGGER IF EXISTS oplog_metadata_no_update;"
           " DROP TRIGGER IF EXISTS oplog_metadata_no_delete; %s",
           sql);
  return exec_raw(tpath(name), buf);
}

typedef struct found {
  int n;
  char kinds[16][24];
  int64_t ids[16];
  char details[16][128];
} found;

static int on_problem(void *ctx, int64_t id, const char *kind, const char *detail) {
  found *f = ctx;
  if (f->n < 16) {
    snprintf(f->kinds[f->n], sizeof f->kinds[0], "%s", kind);
    snprintf(f->details[f->n], sizeof f->details[0], "%s", detail);
    f->ids[f->n] = id;
  }
  if (getenv("TEST_VERBOSE")) fprintf(stderr, "  problem: entry %lld %s: %s\n", (long long)id, kind, detail);
  f->n++;
  return 0;
}

/* verify of name opened with o; -1 if it cannot run, else report.ok. */
static int verify_file(const char *name, oplog_open_opts o, const unsigned char *head, found *f) {
  int rc;
  memset(f, 0, sizeof *f);
  oplog_db *db = open_with(name, o, &rc);
  oplog_verify_result vr = {0};
  oplog_verify_opts vo = {.head = head};
  if (!rc) rc = oplog_verify(db, &vo, on_problem, f, &vr);
  if (rc) fprintf(stderr, "verify_file(%s): %s\n", name, oplog_errmsg(db));
  oplog_close(db);
  return rc ? -1 : vr.ok;
}

static int count_kind(const found *f, const char *kind, int64_t id) {
  int n = 0;
  for (int i = 0; i < f->n && i < 16; i++)
    if (strcmp(f->kinds[i], kind) == 0 && (id < 0 || f->ids[i] == id)) n++;
  return n;
}

/* A log with three user entries under KEY. */
static int three_entries(const char *name) {
  int rc;
  oplog_db *db = open_with(name, keyed(KEY), &rc);
  int ok = !rc && !define_user(db) && write_user(db, 1, "ann", 30) == 1 && write_user(db, 2, "bob", 40) == 2 &&
           write_user(db, 3, "cy", 50) == 3;
  if (!ok) fprintf(stderr, "three_entries: %s\n", oplog_errmsg(db));
  oplog_close(db);
  return ok;
}

/* ---------------------------------------------------------------- 1 */

/* Everything but the entries' data is in the clear: the files must not be
 * readable by other users, whatever the umask. */
static void files_private(void) {
  mode_t old = umask(0); /* the most permissive umask */
  /* what SQLite alone would do: 0644 */
  CHECK(exec_raw(tpath("raw.db"), "CREATE TABLE t (x)") == 0);
  int raw_mode = file_mode(tpath("raw.db"));
  int rc;
  oplog_db *db = open_with("a.db", keyed(KEY), &rc);
  if (rc) umask(old);
  CHECK_RC(db, rc, OPLOG_OK);
  int ok = !define_user(db) && write_user(db, 1, "ann", 30) == 1;
  /* the handle is open: -wal and -shm exist */
  int m_db = file_mode(tpath("a.db")), m_wal = file_mode(tpath("a.db-wal")), m_shm = file_mode(tpath("a.db-shm"));
  oplog_replay_result rr;
  int rrc = oplog_replay(db, &(oplog_replay_opts){.into = tpath("replica.db")}, &rr);
  int m_rep = file_mode(tpath("replica.db"));
  int m_rep_j = file_exists(tpath("replica.db-journal")) ? file_mode(tpath("replica.db-journal")) : 0600;
  int m_rep_w = file_exists(tpath("replica.db-wal")) ? file_mode(tpath("replica.db-wal")) : 0600;
  oplog_close(db);
  /* a passphrase file too (another path through create) */
  oplog_open_opts po = {0};
  po.key.passphrase = "a passphrase";
  po.key.kdf_ops = 2;
  po.key.kdf_mem = 8 << 20;
  db = open_with("p.db", po, &rc);
  int m_p = file_mode(tpath("p.db")), m_pw = file_mode(tpath("p.db-wal"));
  oplog_close(db);
  umask(old);
  CHECK(raw_mode == 0644); /* else this test proves nothing */
  CHECK(ok);
  CHECK(m_db == 0600 && m_wal == 0600 && m_shm == 0600);
  CHECK(rrc == OPLOG_OK && rr.entries == 1);
  CHECK(m_rep == 0600 && m_rep_j == 0600 && m_rep_w == 0600);
  CHECK(rc == OPLOG_OK && m_p == 0600 && m_pw == 0600);
}

/* ---------------------------------------------------------------- 2 */

/* An attacker with the file rewrites what is stored in the clear and
 * recomputes the whole unkeyed chain (with the test's reference hash, from
 * FORMAT.md): without the key and without an anchor nothing shows; the
 * head recorded earlier shows it; with the key the entry does not decrypt. */
static void clear_fields_rehashed(void) {
  static const char *attacks[] = {
      "UPDATE oplog_entries SET created = created - 86400000 WHERE id = 2",
      "UPDATE oplog_entries SET created = created + 1, metadata = CAST(replace(metadata, CAST('alice' AS BLOB),"
      " CAST('mally' AS BLOB)) AS BLOB) WHERE id = 2;"
      " UPDATE oplog_metadata SET value = 'mally' WHERE entry_id = 2 AND value = 'alice'",
  };
  for (size_t i = 0; i < sizeof attacks / sizeof *attacks; i++) {
    unlink(tpath("a.db"));
    CHECK(three_entries("a.db"));
    int rc;
    oplog_db *db = open_with("a.db", keyless(), &rc);
    CHECK_RC(db, rc, OPLOG_OK);
    int64_t head_id;
    unsigned char head[32];
    OK(db, oplog_head(db, &head_id, head));
    oplog_close(db);
    CHECK(head_id == 3);
    CHECK(attack_sql("a.db", attacks[i]) == 0);
    CHECK(ref_rehash_all(tpath("a.db")) == 0);
    char why[256];
    CHECK(ref_check_chain(tpath("a.db"), why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
    found f;
    /* what the key does not protect: without it the rewrite passes */
    CHECK(verify_file("a.db", keyless(), NULL, &f) == 1);
    /* a head kept elsewhere catches it (entry 3's hash changed) */
    CHECK(verify_file("a.db", keyless(), head, &f) == 0);
    CHECK(f.n == 1 && count_kind(&f, "head_mismatch", -1) == 1);
    /* with the key: entry 2 does not decrypt, and nothing else is wrong */
    CHECK(verify_file("a.db", keyed(KEY), NULL, &f) == 0);
    CHECK(f.n == 1 && count_kind(&f, "decrypt_failed", 2) == 1);
    db = open_with("a.db", keyed(KEY), &rc);
    CHECK_RC(db, rc, OPLOG_OK);
    oplog_entry *e = NULL;
    CHECK_RC(db, oplog_entry_get(db, 2, &e), OPLOG_DECRYPT_FAILED);
    OK(db, oplog_entry_get(db, 3, &e));
    oplog_entry_free(e);
    oplog_close(db);
  }
}

/* One entry of a file, its stored columns, read with raw SQLite. */
typedef struct raw_entry {
  int64_t created;
  char aggregate[64];
  unsigned char md[512], data[2048];
  size_t nmd, ndata;
} raw_entry;

static int read_raw_entry(const char *name, int64_t id, raw_entry *r) {
  sqlite3 *s = NULL;
  sqlite3_stmt *st = NULL;
  int ok = sqlite3_open_v2(tpath(name), &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
           sqlite3_prepare_v2(s, "SELECT created, aggregate_name, metadata, data FROM oplog_entries WHERE id = ?1", -1,
                              &st, NULL) == SQLITE_OK &&
           sqlite3_bind_int64(st, 1, id) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
  if (ok) {
    r->created = sqlite3_column_int64(st, 0);
    r->nmd = (size_t)sqlite3_column_bytes(st, 2);
    r->ndata = (size_t)sqlite3_column_bytes(st, 3);
    ok = (size_t)sqlite3_column_bytes(st, 1) < sizeof r->aggregate && r->nmd <= sizeof r->md &&
         r->ndata <= sizeof r->data;
  }
  if (ok) {
    snprintf(r->aggregate, sizeof r->aggregate, "%s", (const char *)sqlite3_column_text(st, 1));
    if (r->nmd) memcpy(r->md, sqlite3_column_blob(st, 2), r->nmd);
    if (r->ndata) memcpy(r->data, sqlite3_column_blob(st, 3), r->ndata);
  }
  if (!ok) fprintf(stderr, "read_raw_entry(%s, %lld): %s\n", name, (long long)id, sqlite3_errmsg(s));
  sqlite3_finalize(st);
  sqlite3_close(s);
  return ok;
}

/* Appends r to the file as the next entry of origin 1, as someone who can
 * write the file but has no key: key_id 0 (data as given), seq and clock
 * one above the newest, prev_hash the newest hash of origin 1, hash per
 * FORMAT.md 6.3 (the test's reference). An INSERT, which the append-only
 * triggers allow; an entry above indexed_upto has no derived rows (readers
 * take it from oplog_entries), so the derived tables stay consistent.
 * Returns the new entry's id, 0 on failure. */
static int64_t append_keyless(const char *name, const raw_entry *r) {
  sqlite3 *s = NULL;
  sqlite3_stmt *st = NULL;
  unsigned char origin[32], prev[32], hash[32];
  int64_t id = 0, seq = 0, clock = 0;
  int ok = sqlite3_open(tpath(name), &s) == SQLITE_OK && sqlite3_exec(s, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
           sqlite3_prepare_v2(s,
                              "SELECT o.id, e.seq, e.hash, (SELECT max(id) FROM oplog_entries),"
                              " (SELECT max(clock) FROM oplog_entries) FROM oplog_entries e"
                              " JOIN oplog_origins o ON o.no = e.origin WHERE e.origin = 1 ORDER BY e.seq DESC LIMIT 1",
                              -1, &st, NULL) == SQLITE_OK &&
           sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32 && sqlite3_column_bytes(st, 2) == 32;
  if (ok) {
    memcpy(origin, sqlite3_column_blob(st, 0), 32);
    seq = sqlite3_column_int64(st, 1) + 1;
    memcpy(prev, sqlite3_column_blob(st, 2), 32);
    id = sqlite3_column_int64(st, 3) + 1;
    clock = sqlite3_column_int64(st, 4) + 1;
    ref_entry_hash(prev, origin, seq, clock, r->created, 0, r->aggregate, strlen(r->aggregate), r->md, r->nmd, r->data,
                   r->ndata, hash);
  }
  sqlite3_finalize(st);
  st = NULL;
  ok = ok && sqlite3_prepare_v2(s,
                                "INSERT INTO oplog_entries (id, origin, seq, clock, created, aggregate_name, key_id,"
                                " metadata, data, prev_hash, hash, format) VALUES (?1, 1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9, 2)",
                                -1, &st, NULL) == SQLITE_OK;
  if (ok) {
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int64(st, 3, clock);
    sqlite3_bind_int64(st, 4, r->created);
    sqlite3_bind_text(st, 5, r->aggregate, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, r->md, (int)r->nmd, SQLITE_STATIC);
    sqlite3_bind_blob(st, 7, r->data, (int)r->ndata, SQLITE_STATIC);
    sqlite3_bind_blob(st, 8, prev, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 9, hash, 32, SQLITE_STATIC);
    ok = sqlite3_step(st) == SQLITE_DONE;
  }
  sqlite3_finalize(st);
  ok = ok && sqlite3_exec(s, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok) fprintf(stderr, "append_keyless: %s\n", sqlite3_errmsg(s));
  sqlite3_close(s);
  return ok ? id : 0;
}

/* Someone who can write the encrypted file but has no key appends an entry
 * marked key_id 0, its data in the clear (a plaintext log's EntryData for
 * the same type), with a correct chain: the hash needs no key. Readers with
 * the key must not take it as genuine: an encrypted file holds no
 * plaintext entry, so it is decrypt_failed everywhere. Then the one-column
 * variant: key_id set to 0 on a genuine entry (chain recomputed) is
 * decrypt_failed too, not corrupt. */
static void plaintext_entry_forged(void) {
  /* the plaintext log: its entry 1 creates user 4 "mallory" */
  oplog_db *db = open_plain("plain.db");
  CHECK(db);
  int ok = define_user(db) == 0 && write_user(db, 4, "mallory", 99) == 1;
  oplog_close(db);
  CHECK(ok);
  raw_entry forged;
  CHECK(read_raw_entry("plain.db", 1, &forged));
  CHECK(count_rows(tpath("plain.db"), "SELECT key_id FROM oplog_entries WHERE id = 1") == 0);
  CHECK(three_entries("a.db"));
  CHECK(copy_file(tpath("a.db"), tpath("pristine.db")));
  /* the closing writer brought the derived tables up to entry 3 */
  CHECK(count_rows(tpath("a.db"), "SELECT value FROM oplog_config WHERE name = 'indexed_upto'") == 3);
  CHECK(append_keyless("a.db", &forged) == 4);
  /* the forgery is otherwise perfect: chain and derived tables hold */
  char why[256];
  CHECK(ref_check_chain(tpath("a.db"), why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  CHECK(check_derived(tpath("a.db"), 0, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  found f;
  /* without the key too: the file's encryption setting is in the clear,
   * so an entry with key_id 0 stands out without reading any data */
  CHECK(verify_file("a.db", keyless(), NULL, &f) == 0);
  CHECK(f.n == 1 && count_kind(&f, "decrypt_failed", 4) == 1);
  CHECK(strcmp(f.details[0], "entry 4 is not encrypted in an encrypted file") == 0 ||
        (fprintf(stderr, "detail: %s\n", f.details[0]), 0));
  /* with the key: entry 4 does not decrypt, and nothing else is wrong; the
   * detail names the entry once */
  CHECK(verify_file("a.db", keyed(KEY), NULL, &f) == 0);
  CHECK(f.n == 1 && count_kind(&f, "decrypt_failed", 4) == 1);
  CHECK(strcmp(f.details[0], "entry 4 is not encrypted in an encrypted file") == 0 ||
        (fprintf(stderr, "detail: %s\n", f.details[0]), 0));
  int rc;
  db = open_with("a.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_entry *e = NULL;
  OK(db, oplog_entry_get(db, 3, &e));
  oplog_entry_free(e);
  e = NULL;
  CHECK_RC(db, oplog_entry_get(db, 4, &e), OPLOG_DECRYPT_FAILED);
  CHECK(e == NULL);
  /* iterating: entries 1-3, then the forged one fails */
  oplog_iter *it;
  const oplog_entry *ie;
  int64_t seen = 0;
  OK(db, oplog_entries(db, NULL, &it));
  while ((rc = oplog_iter_next(it, &ie)) == OPLOG_OK && ie) seen = ie->id == seen + 1 ? ie->id : -1;
  oplog_iter_close(it);
  CHECK(seen == 3);
  CHECK_RC(db, rc, OPLOG_DECRYPT_FAILED);
  /* replay refuses the log; up to entry 3 it replays */
  oplog_replay_result rr;
  CHECK_RC(db, oplog_replay(db, &(oplog_replay_opts){.into = tpath("replica.db")}, &rr), OPLOG_DECRYPT_FAILED);
  OK(db, oplog_replay(db, &(oplog_replay_opts){.into = tpath("replica.db"), .upto = 3, .fresh = 1}, &rr));
  CHECK(rr.entries == 3);
  oplog_close(db);
  CHECK(count_rows(tpath("replica.db"), "SELECT count(*) FROM users WHERE name = 'mallory'") == 0);

  /* the variant: a genuine entry marked key_id 0, the chain recomputed */
  CHECK(copy_file(tpath("pristine.db"), tpath("b.db")));
  CHECK(attack_sql("b.db", "UPDATE oplog_entries SET key_id = 0 WHERE id = 2") == 0);
  CHECK(ref_rehash_all(tpath("b.db")) == 0);
  CHECK(ref_check_chain(tpath("b.db"), why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  CHECK(verify_file("b.db", keyless(), NULL, &f) == 0);
  CHECK(f.n == 1 && count_kind(&f, "decrypt_failed", 2) == 1);
  CHECK(verify_file("b.db", keyed(KEY), NULL, &f) == 0);
  CHECK(f.n == 1 && count_kind(&f, "decrypt_failed", 2) == 1);
  db = open_with("b.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK_RC(db, oplog_entry_get(db, 2, &e), OPLOG_DECRYPT_FAILED);
  OK(db, oplog_entry_get(db, 3, &e));
  oplog_entry_free(e);
  oplog_close(db);
}

/* ---------------------------------------------------------------- 3 */

typedef struct bytes {
  unsigned char p[2048];
  size_t n;
} bytes;

static void b_put(bytes *b, const void *p, size_t n) {
  if (b->n + n > sizeof b->p) abort();
  if (n) memcpy(b->p + b->n, p, n);
  b->n += n;
}
static void b_le(bytes *b, uint64_t v, int n) {
  unsigned char t[8];
  for (int i = 0; i < n; i++) t[i] = (unsigned char)(v >> (8 * i));
  b_put(b, t, (size_t)n);
}
static void b_len32(bytes *b, const void *p, size_t n) {
  b_le(b, n, 4);
  b_put(b, p, n);
}

typedef struct entry_fields {
  unsigned char prev[32], origin[32];
  int64_t seq, clock, created, key_id;
  const char *aggregate;
  const oplog_meta *md;
  size_t nmd;
  const unsigned char *data;
  size_t ndata;
} entry_fields;

/* FORMAT.md section 12: format 1's hash input (metadata pairs, then their
 * count, then the data). */
static void v1_input(const entry_fields *e, bytes *b) {
  b->n = 0;
  b_put(b, e->prev, 32);
  b_le(b, (uint64_t)e->seq, 8);
  b_le(b, (uint64_t)e->created, 8);
  b_le(b, (uint64_t)e->key_id, 8);
  b_len32(b, e->aggregate, strlen(e->aggregate));
  for (size_t i = 0; i < e->nmd; i++) {
    b_len32(b, e->md[i].key, strlen(e->md[i].key));
    b_le(b, e->md[i].value != NULL, 1);
    if (e->md[i].value) b_len32(b, e->md[i].value, strlen(e->md[i].value));
  }
  b_le(b, e->nmd, 4);
  b_len32(b, e->data, e->ndata);
}

/* FORMAT.md 6.3: format 2's (a domain tag, then lengths before contents,
 * the metadata as one blob that starts with its count). */
static void v2_input(const entry_fields *e, bytes *b) {
  unsigned char blob[512];
  size_t nblob = ref_meta_encode(e->md, e->nmd, blob, sizeof blob);
  b->n = 0;
  b_put(b, "oplog-entry-v2", 14);
  b_put(b, e->prev, 32);
  b_put(b, e->origin, 32);
  b_le(b, (uint64_t)e->seq, 8);
  b_le(b, (uint64_t)e->clock, 8);
  b_le(b, (uint64_t)e->created, 8);
  b_le(b, (uint64_t)e->key_id, 8);
  b_len32(b, e->aggregate, strlen(e->aggregate));
  b_len32(b, blob, nblob);
  b_len32(b, e->data, e->ndata);
}

static void blake(const bytes *b, unsigned char out[32]) { crypto_generichash(out, 32, b->p, b->n, NULL, 0); }

/* Replaces entry id's metadata blob, data and hash and its oplog_metadata
 * rows, as an attacker with the file (format: 1 or 2). */
static int forge_entry(const char *name, int64_t id, const oplog_meta *md, size_t nmd, const unsigned char *data,
                       size_t ndata, int format, const unsigned char *hash) {
  sqlite3 *s = NULL;
  sqlite3_stmt *st = NULL;
  unsigned char blob[512];
  size_t nblob = ref_meta_encode(md, nmd, blob, sizeof blob);
  int ok = attack_sql(name, "SELECT 1") == 0 && sqlite3_open(tpath(name), &s) == SQLITE_OK &&
           sqlite3_exec(s, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
           sqlite3_prepare_v2(s, "UPDATE oplog_entries SET metadata = ?1, data = ?2, format = ?3, hash = ?4 WHERE id = ?5",
                              -1, &st, NULL) == SQLITE_OK;
  if (ok) {
    sqlite3_bind_blob(st, 1, blob, (int)nblob, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, data, (int)ndata, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, format);
    sqlite3_bind_blob(st, 4, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, id);
    ok = sqlite3_step(st) == SQLITE_DONE;
  }
  sqlite3_finalize(st);
  st = NULL;
  char sql[128];
  snprintf(sql, sizeof sql, "DELETE FROM oplog_metadata WHERE entry_id = %lld", (long long)id);
  ok = ok && sqlite3_exec(s, sql, NULL, NULL, NULL) == SQLITE_OK &&
       sqlite3_prepare_v2(s, "INSERT INTO oplog_metadata (entry_id, position, key, value) VALUES (?1, ?2, ?3, ?4)", -1,
                          &st, NULL) == SQLITE_OK;
  for (size_t i = 0; ok && i < nmd; i++) {
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)i + 1);
    sqlite3_bind_text(st, 3, md[i].key, -1, SQLITE_STATIC);
    if (md[i].value) sqlite3_bind_text(st, 4, md[i].value, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 4);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  ok = ok && sqlite3_exec(s, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok) fprintf(stderr, "forge_entry: %s\n", sqlite3_errmsg(s));
  sqlite3_close(s);
  return ok;
}

/* The collision: entry B has one metadata pair more (key "a",
 * empty value) and 10 bytes less data than entry A, and format 1 feeds
 * BLAKE2b the same bytes for both (the pairs run into the count and the
 * data's length). Format 2 tells them apart. Then the attack on a file:
 * A is replaced by B keeping A's hash. */
static void hash_input_unambiguous(void) {
  enum { NB = 343, NA = NB + 10 };
  unsigned char db_[NB], da[NA];
  for (int i = 0; i < NB; i++) db_[i] = (unsigned char)(i * 7 + 1);
  /* After the common pair ("a", "1"), format 1 hashes
   *   A: u32(1) count | u32(353) data length | A's data
   *   B: pair ("a", "") = u32(1) "a" u8(1) u32(0) | u32(2) count | u32(343) | B's data
   * i.e. both 01000000 61010000 0000 02000000 57010000 ...: 353 = 0x161
   * reads as key "a" (0x61) and flag 1, so A's data starts 00 00 (the rest
   * of the empty value's length), u32(2), u32(343), then B's data. */
  static const unsigned char head[] = {0, 0, 2, 0, 0, 0, NB & 0xff, NB >> 8, 0, 0};
  memcpy(da, head, sizeof head);
  memcpy(da + sizeof head, db_, NB);
  static const oplog_meta md_a[] = {{"a", "1"}}, md_b[] = {{"a", "1"}, {"a", ""}};
  entry_fields a = {.seq = 1, .clock = 1, .created = 1795974405030, .key_id = 1, .aggregate = "users",
                    .md = md_a, .nmd = 1, .data = da, .ndata = NA};
  entry_fields b = a;
  b.md = md_b;
  b.nmd = 2;
  b.data = db_;
  b.ndata = NB;
  memset(a.origin, 0x5a, 32);
  memcpy(b.origin, a.origin, 32);
  bytes ia, ib;
  unsigned char ha[32], hb[32];
  v1_input(&a, &ia);
  v1_input(&b, &ib);
  CHECK(ia.n == ib.n && memcmp(ia.p, ib.p, ia.n) == 0); /* format 1: one input, one hash */
  v2_input(&a, &ia);
  v2_input(&b, &ib);
  CHECK(ia.n != ib.n || memcmp(ia.p, ib.p, ia.n) != 0);
  blake(&ia, ha);
  blake(&ib, hb);
  CHECK(memcmp(ha, hb, 32) != 0);

  /* On a file, opened without the key as an auditor would: entry 1 of
   * user writes becomes A (its hash recomputed), then B replaces A. */
  int rc;
  oplog_db *db = open_with("a.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(define_user(db) == 0 && write_user(db, 1, "ann", 30) == 1);
  oplog_close(db);
  CHECK(copy_file(tpath("a.db"), tpath("pristine.db")));
  a.created = b.created = count_rows(tpath("a.db"), "SELECT created FROM oplog_entries WHERE id = 1");
  for (int format = 1; format <= 2; format++) {
    CHECK(copy_file(tpath("pristine.db"), tpath("a.db")));
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    CHECK(sqlite3_open_v2(tpath("a.db"), &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(s, "SELECT id FROM oplog_origins WHERE no = 1", -1, &st, NULL) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW);
    memcpy(a.origin, sqlite3_column_blob(st, 0), 32);
    memcpy(b.origin, a.origin, 32);
    sqlite3_finalize(st);
    sqlite3_close(s);
    bytes in;
    if (format == 1) v1_input(&a, &in);
    else v2_input(&a, &in);
    blake(&in, ha);
    CHECK(forge_entry("a.db", 1, md_a, 1, da, NA, format, ha));
    found f;
    CHECK(verify_file("a.db", keyless(), NULL, &f) == 1); /* A stands, hash and all */
    CHECK(forge_entry("a.db", 1, md_b, 2, db_, NB, format, ha));
    int ok = verify_file("a.db", keyless(), NULL, &f);
    if (format == 1) {
      /* format 1 (still the layout of entries migrated from it) cannot
       * tell B from A: the collision is real in the core's own v1 code */
      CHECK(ok == 1);
    } else {
      CHECK(ok == 0 && f.n == 1 && count_kind(&f, "hash_mismatch", 1) == 1);
    }
  }
}

/* ---------------------------------------------------------------- 4 */

/* Unwraps every data key of the file at path with root (FORMAT.md 5) into
 * keys[]; returns how many unwrapped, -1 on a read error. */
static int attacker_unwrap(const char *path, const unsigned char root[32], unsigned char keys[8][32]) {
  sqlite3 *s = NULL;
  sqlite3_stmt *st = NULL;
  int n = 0;
  if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(s, "SELECT o.id, k.id, k.nonce, k.wrapped FROM oplog_keys k JOIN oplog_origins o ON o.no = k.origin",
                         -1, &st, NULL) != SQLITE_OK)
    n = -1;
  while (n >= 0 && n < 8 && sqlite3_step(st) == SQLITE_ROW) {
    unsigned char ad[17 + 32 + 8];
    memcpy(ad, "oplog.v2.data-key", 17);
    memcpy(ad + 17, sqlite3_column_blob(st, 0), 32);
    int64_t id = sqlite3_column_int64(st, 1);
    for (int i = 0; i < 8; i++) ad[49 + i] = (unsigned char)((uint64_t)id >> (8 * i));
    unsigned long long klen;
    if (sqlite3_column_bytes(st, 2) == 24 && sqlite3_column_bytes(st, 3) == 48 &&
        crypto_aead_xchacha20poly1305_ietf_decrypt(keys[n], &klen, NULL, sqlite3_column_blob(st, 3), 48, ad, sizeof ad,
                                                   sqlite3_column_blob(st, 2), root) == 0)
      n++;
  }
  sqlite3_finalize(st);
  sqlite3_close(s);
  return n;
}

/* Tries to decrypt entry id of the file at path with key (FORMAT.md 6.2);
 * 1 if it decrypts. */
static int attacker_decrypt(const char *path, int64_t id, const unsigned char key[32]) {
  sqlite3 *s = NULL;
  sqlite3_stmt *st = NULL;
  int ok = 0;
  if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(s,
                         "SELECT o.id, e.seq, e.clock, e.created, e.key_id, e.aggregate_name, e.metadata, e.data"
                         " FROM oplog_entries e JOIN oplog_origins o ON o.no = e.origin WHERE e.id = ?1",
                         -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
      static bytes ad;
      ad.n = 0;
      b_put(&ad, "oplog-data-v2", 13);
      b_put(&ad, sqlite3_column_blob(st, 0), 32);
      for (int c = 1; c <= 4; c++) b_le(&ad, (uint64_t)sqlite3_column_int64(st, c), 8);
      b_len32(&ad, sqlite3_column_text(st, 5), (size_t)sqlite3_column_bytes(st, 5));
      b_len32(&ad, sqlite3_column_blob(st, 6), (size_t)sqlite3_column_bytes(st, 6));
      const unsigned char *data = sqlite3_column_blob(st, 7);
      size_t n = (size_t)sqlite3_column_bytes(st, 7);
      unsigned char *plain = malloc(n + 1);
      unsigned long long plen;
      ok = n > 40 && crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, data + 24, n - 24, ad.p, ad.n,
                                                                  data, key) == 0;
      free(plain);
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(s);
  return ok;
}

/* Someone kept the old root key and a copy of the file from before the
 * rekey (a backup, a device sold). Entries written after the rekey use a
 * data key made in the rekey: the old copy's keys do not open them. */
static void rekey_locks_out_old_root(void) {
  int rc;
  oplog_db *db = open_with("a.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(define_user(db) == 0 && write_user(db, 1, "before", 1) == 1);
  oplog_close(db); /* the last close checkpoints: the copy is the whole file */
  CHECK(!file_exists(tpath("a.db-wal")));
  CHECK(copy_file(tpath("a.db"), tpath("stolen.db")));
  db = open_with("a.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  OK(db, oplog_rekey(db, &(oplog_key_source){.key = KEY2, .key_len = 32}));
  CHECK(write_user(db, 2, "SECRET-AFTER-REKEY", 2) == 2);
  oplog_close(db);
  CHECK(count_rows(tpath("a.db"), "SELECT key_id FROM oplog_entries WHERE id = 2") == 2);

  unsigned char old_keys[8][32], new_keys[8][32];
  int n_old = attacker_unwrap(tpath("stolen.db"), KEY, old_keys);
  CHECK(n_old == 1); /* the attacker has every key of the copy */
  /* the attacker's tools work: the entry from before the rekey opens with
   * the copy's key (it was sealed before; the rekey cannot change that) */
  CHECK(attacker_decrypt(tpath("a.db"), 1, old_keys[0]) == 1);
  /* the entry after the rekey opens with none of them */
  for (int i = 0; i < n_old; i++) CHECK(attacker_decrypt(tpath("a.db"), 2, old_keys[i]) == 0);
  /* the old root key unwraps nothing in the current file */
  CHECK(attacker_unwrap(tpath("a.db"), KEY, new_keys) == 0);
  db = open_with("a.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_WRONG_KEY);
  oplog_close(db);
  /* and the new root key does open it (the check above is not vacuous) */
  CHECK(attacker_unwrap(tpath("a.db"), KEY2, new_keys) == 2);
  CHECK(attacker_decrypt(tpath("a.db"), 2, new_keys[0]) + attacker_decrypt(tpath("a.db"), 2, new_keys[1]) == 1);
  sodium_memzero(old_keys, sizeof old_keys);
  sodium_memzero(new_keys, sizeof new_keys);
}

/* ---------------------------------------------------------------- 5 */

/* A writer of the file marks a retired key (perhaps one it has from an
 * old copy) active again, so that new entries would use it. The active key
 * is the newest that unwraps; verify names the forged state. */
static void key_state_forged(void) {
  int rc;
  oplog_db *db = open_with("a.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(define_user(db) == 0 && write_user(db, 1, "ann", 1) == 1);
  int64_t k;
  OK(db, oplog_rotate_key(db, &k));
  CHECK(k == 2);
  oplog_close(db);
  found f;
  CHECK(verify_file("a.db", keyed(KEY), NULL, &f) == 1);
  CHECK(exec_raw(tpath("a.db"), "UPDATE oplog_keys SET state = 'active' WHERE id = 1") == 0);
  CHECK(verify_file("a.db", keyed(KEY), NULL, &f) == 0);
  CHECK(f.n == 1 && count_kind(&f, "key_state_mismatch", 0) == 1);
  CHECK(exec_raw(tpath("a.db"), "UPDATE oplog_keys SET state = 'retired' WHERE id = 2") == 0);
  db = open_with("a.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(write_user(db, 2, "bob", 2) == 2);
  oplog_close(db);
  CHECK(count_rows(tpath("a.db"), "SELECT key_id FROM oplog_entries WHERE id = 2") == 2);
  CHECK(verify_file("a.db", keyed(KEY), NULL, &f) == 0);
  CHECK(f.n == 2 && count_kind(&f, "key_state_mismatch", 0) == 2);
  /* without the key the states cannot be judged: not reported */
  CHECK(verify_file("a.db", keyless(), NULL, &f) == 1);
  /* a key row the attacker made up (no root key to wrap it) is not used:
   * the file is refused */
  CHECK(exec_raw(tpath("a.db"), "INSERT INTO oplog_keys (origin, id, created, state, nonce, wrapped)"
                                " SELECT origin, 3, created, 'active', nonce, wrapped FROM oplog_keys WHERE id = 1") == 0);
  db = open_with("a.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_CORRUPT);
  oplog_close(db);
}

/* ---------------------------------------------------------------- 6 */

/* The catalog names tables and holds SQL that define and replay use: a
 * hostile one is refused on load, before any of it reaches SQLite. */
static void catalog_hostile(void) {
  static const char *attacks[] = {
      /* replay --into --fresh would drop the victim's oplog_keys */
      "UPDATE oplog_types SET table_name = 'oplog_keys' WHERE name = 'user'",
      "UPDATE oplog_types SET table_name = 'OPLOG_KEYS' WHERE name = 'user'",
      "UPDATE oplog_types SET table_name = 'sqlite_master' WHERE name = 'user'",
      "UPDATE oplog_types SET table_name = 'users\" (x); DROP TABLE oplog_keys; --' WHERE name = 'user'",
      /* a declaration that adds a column of the attacker's */
      "UPDATE oplog_type_columns SET decl = 'TEXT, injected TEXT DEFAULT(1)' WHERE type_name = 'user' AND name = 'name'",
      "UPDATE oplog_type_columns SET decl = 'TEXT); DROP TABLE oplog_keys; --' WHERE type_name = 'user' AND name = 'name'",
      "UPDATE oplog_type_columns SET name = 'x\"y' WHERE type_name = 'user' AND name = 'name'",
      /* key positions out of range index arrays of the type's columns */
      "UPDATE oplog_type_columns SET key_position = 3 WHERE type_name = 'group' AND name = 'id'",
      "UPDATE oplog_type_columns SET key_position = 0 WHERE type_name = 'group' AND name = 'id'",
      "UPDATE oplog_type_columns SET key_position = -1 WHERE type_name = 'group' AND name = 'id'",
      "UPDATE oplog_type_columns SET key_position = 9223372036854775807 WHERE type_name = 'group' AND name = 'id'",
      "UPDATE oplog_type_columns SET key_position = 1 WHERE type_name = 'group' AND name = 'title'",
      /* more columns than a type may have (64): arrays are sized by it */
      "WITH RECURSIVE n(i) AS (SELECT 3 UNION ALL SELECT i + 1 FROM n WHERE i < 65)"
      " INSERT INTO oplog_type_columns (type_name, position, name, decl, key_position)"
      " SELECT 'group', i, 'c' || i, 'TEXT', NULL FROM n",
  };
  int rc;
  oplog_db *db = open_with("pristine.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(define_user(db) == 0 && define_group(db) == 0 && write_user(db, 1, "ann", 1) == 1);
  oplog_close(db);
  for (size_t i = 0; i < sizeof attacks / sizeof *attacks; i++) {
    unlink(tpath("a.db"));
    CHECK(copy_file(tpath("pristine.db"), tpath("a.db")));
    CHECK(exec_raw(tpath("a.db"), attacks[i]) == 0);
    for (int with_key = 0; with_key <= 1; with_key++) {
      db = open_with("a.db", with_key ? keyed(KEY) : keyless(), &rc);
      if (rc != OPLOG_CORRUPT) fprintf(stderr, "attack %zu: %s\n", i, attacks[i]);
      CHECK_RC(db, rc, OPLOG_CORRUPT);
      oplog_close(db);
    }
  }
  /* the pristine file still opens (the attacks, not the check, failed) */
  db = open_with("pristine.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The file says how hard its passphrase is to derive: a hostile one asks
 * for 4 GiB and 2^31 passes (hours, or an out-of-memory kill). Refused
 * before any work; kdf_limit admits what the owner decides. */
static void kdf_ceilings(void) {
  oplog_open_opts po = {0};
  po.key.passphrase = "open sesame";
  po.key.kdf_ops = 2;
  po.key.kdf_mem = 8 << 20;
  int rc;
  oplog_db *db = open_with("a.db", po, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(define_user(db) == 0 && write_user(db, 1, "ann", 1) == 1);
  oplog_close(db);
  CHECK(copy_file(tpath("a.db"), tpath("pristine.db")));
  static const char *attacks[] = {
      "UPDATE oplog_config SET value = 4294967296 WHERE name = 'kdf_mem'",
      "UPDATE oplog_config SET value = 2147483648 WHERE name = 'kdf_ops'",
      "UPDATE oplog_config SET value = 4294967296 WHERE name = 'kdf_mem';"
      " UPDATE oplog_config SET value = 2147483648 WHERE name = 'kdf_ops'",
      "UPDATE oplog_config SET value = 9223372036854775807 WHERE name = 'kdf_mem'",
  };
  oplog_open_opts reopen = {0};
  reopen.key.passphrase = "open sesame";
  for (size_t i = 0; i < sizeof attacks / sizeof *attacks; i++) {
    CHECK(copy_file(tpath("pristine.db"), tpath("a.db")));
    CHECK(exec_raw(tpath("a.db"), attacks[i]) == 0);
    double t0 = now_s();
    db = open_with("a.db", reopen, &rc);
    double dt = now_s() - t0;
    CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
    CHECK(strstr(oplog_errmsg(db), "kdf_limit") != NULL);
    oplog_close(db);
    CHECK(dt < 1.0 || (fprintf(stderr, "open took %.3f s\n", dt), 0));
  }
  /* nonsense limits: corrupt */
  CHECK(copy_file(tpath("pristine.db"), tpath("a.db")));
  CHECK(exec_raw(tpath("a.db"), "UPDATE oplog_config SET value = -1 WHERE name = 'kdf_mem'") == 0);
  db = open_with("a.db", reopen, &rc);
  CHECK_RC(db, rc, OPLOG_CORRUPT);
  oplog_close(db);

  /* kdf_limit, with small real limits: below the file's 8 MiB refused,
   * at it accepted */
  CHECK(copy_file(tpath("pristine.db"), tpath("a.db")));
  oplog_open_opts lim = reopen;
  lim.key.kdf_mem_max = 4 << 20;
  db = open_with("a.db", lim, &rc);
  CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  lim.key.kdf_mem_max = 8 << 20;
  db = open_with("a.db", lim, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);
  /* a file made with more passes than the default ceiling (8) opens only
   * with kdf_limit raised */
  po.key.kdf_ops = 9;
  db = open_with("b.db", po, &rc); /* refused: it could not be opened again */
  CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  po.key.kdf_ops_max = 9;
  db = open_with("b.db", po, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);
  db = open_with("b.db", reopen, &rc);
  CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  lim = reopen;
  lim.key.kdf_ops_max = 9;
  db = open_with("b.db", lim, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);
}

static long vm_hwm_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
  if (f) fclose(f);
  return kb;
}

#define BIG (20 << 20)

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED (getenv("LD_PRELOAD") != NULL && strstr(getenv("LD_PRELOAD"), "vgpreload") != NULL)
#endif

/* Writes, in a child process (whose memory is its own), a log whose entry
 * 2 holds a 20 MiB photo (written with max_entry_bytes raised) and whose
 * entry 3's metadata an attacker made 20 MiB. 0 on success. */
static int write_big_log(void) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid > 0) {
    int status;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
  }
  int rc, code = 0;
  unsigned char *photo = malloc(BIG);
  if (!photo) _exit(10);
  memset(photo, 'x', BIG);
  oplog_field f[] = {{"id", vint(2)}, {"name", vtext("big")}, {"age", vint(2)}, {"photo", vblob(photo, BIG)}};
  oplog_op op = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 4}};
  int64_t eid = 0;
  /* the default max_entry_bytes refuses to write it */
  oplog_db *db = open_with("big.db", keyed(KEY), &rc);
  if (rc || define_user(db) || write_user(db, 1, "small", 1) != 1) code = 11;
  if (!code && (oplog_tx_begin(db, "users") || oplog_tx_apply(db, &op) ||
                oplog_tx_commit(db, NULL, 0, &eid) != OPLOG_INVALID_ARGUMENT))
    code = 12;
  oplog_close(db);
  if (!code && count_rows(tpath("big.db"), "SELECT count(*) FROM oplog_entries") != 1) code = 13;
  oplog_open_opts o = keyed(KEY);
  o.max_entry_bytes = 64 << 20;
  db = open_with("big.db", o, &rc);
  if (!code && (rc || oplog_tx_begin(db, "users") || oplog_tx_apply(db, &op) || oplog_tx_commit(db, NULL, 0, &eid) ||
                eid != 2 || write_user(db, 3, "small too", 3) != 3))
    code = 14;
  if (code) fprintf(stderr, "write_big_log: %s\n", oplog_errmsg(db));
  oplog_close(db);
  free(photo);
  if (!code && attack_sql("big.db", "UPDATE oplog_entries SET metadata = zeroblob(20971520) WHERE id = 3") != 0)
    code = 15;
  _exit(code);
}

/* A file with a huge entry must not make a reader allocate it: the reader
 * asks SQLite for the length first and never loads a larger entry. */
static void entry_size_ceiling(void) {
  CHECK(write_big_log() == 0);
  long hwm0 = vm_hwm_kb();
  CHECK(hwm0 > 0);
  int rc;
  oplog_db *db = open_with("big.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_entry *e = NULL;
  OK(db, oplog_entry_get(db, 1, &e));
  oplog_entry_free(e);
  for (int64_t id = 2; id <= 3; id++) {
    CHECK_RC(db, oplog_entry_get(db, id, &e), OPLOG_CORRUPT);
    CHECK(strstr(oplog_errmsg(db), "max_entry_bytes") != NULL);
  }
  oplog_iter *it;
  const oplog_entry *ie;
  OK(db, oplog_entries(db, NULL, &it));
  OK(db, oplog_iter_next(it, &ie));
  CHECK(ie && ie->id == 1);
  CHECK_RC(db, oplog_iter_next(it, &ie), OPLOG_CORRUPT);
  oplog_iter_close(it);
  oplog_close(db);
  found f;
  CHECK(verify_file("big.db", keyed(KEY), NULL, &f) == 0);
  CHECK(count_kind(&f, "too_large", 2) == 1 && count_kind(&f, "too_large", 3) == 1);
  CHECK(verify_file("big.db", keyless(), NULL, &f) == 0);
  CHECK(count_kind(&f, "too_large", 2) == 1 && count_kind(&f, "too_large", 3) == 1);
  long hwm1 = vm_hwm_kb();
  if (getenv("TEST_VERBOSE")) fprintf(stderr, "VmHWM %ld kB -> %ld kB\n", hwm0, hwm1);
  /* loading entry 2 would take 40 MiB (its data and the plaintext); the
   * reads grow the peak by 3.5 MiB, by 9 to 11 MiB under ASan or valgrind,
   * which keep freed blocks a while */
  long bound = SANITIZED ? 16 * 1024 : 8 * 1024;
  CHECK(hwm1 - hwm0 < bound || (fprintf(stderr, "VmHWM grew from %ld to %ld kB\n", hwm0, hwm1), 0));
  /* and in all, in a plain build (the sanitizers and valgrind add their own) */
  CHECK(SANITIZED || hwm1 < 40 * 1024 || (fprintf(stderr, "VmHWM %ld kB\n", hwm1), 0));
  /* the owner who means to read it raises the ceiling */
  oplog_open_opts o = keyed(KEY);
  o.max_entry_bytes = 64 << 20;
  db = open_with("big.db", o, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  OK(db, oplog_entry_get(db, 2, &e));
  CHECK(e->ops[0].row.nfields == 4 && e->ops[0].row.fields[3].value.u.b.n == BIG);
  oplog_entry_free(e);
  oplog_close(db);
}

/* ---------------------------------------------------------------- 7 */

static int write_key_file(const char *name, const char *text, size_t n, mode_t mode) {
  int fd = open(tpath(name), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return 0;
  int ok = write(fd, text, n) == (ssize_t)n;
  close(fd);
  return ok && chmod(tpath(name), mode) == 0;
}

static void weak_kdf_and_key_files(void) {
  int rc;
  /* a new passphrase weaker than 2 passes and 8 MiB: refused, no file */
  struct {
    unsigned long long ops;
    size_t mem;
  } weak[] = {{1, 8 << 20}, {2, (8 << 20) - 1024}, {1, 1 << 20}};
  for (size_t i = 0; i < sizeof weak / sizeof *weak; i++) {
    oplog_open_opts po = {0};
    po.key.passphrase = "hunter2";
    po.key.kdf_ops = weak[i].ops;
    po.key.kdf_mem = weak[i].mem;
    oplog_db *db = open_with("weak.db", po, &rc);
    CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
    CHECK(strstr(oplog_errmsg(db), "too weak") != NULL);
    oplog_close(db);
    CHECK(!file_exists(tpath("weak.db")));
  }
  /* nor as a rekey's new passphrase; the old key keeps working */
  oplog_db *db = open_with("a.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK_RC(db, oplog_rekey(db, &(oplog_key_source){.passphrase = "hunter2", .kdf_ops = 1, .kdf_mem = 8 << 20}),
           OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  db = open_with("a.db", keyed(KEY), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);

  /* key files: open to group or others, or longer than a key file */
  char hex[66];
  sodium_bin2hex(hex, sizeof hex, KEY, 32);
  hex[64] = '\n';
  oplog_open_opts ko = {0};
  char kpath[600];
  snprintf(kpath, sizeof kpath, "%s", tpath("k")); /* tpath's buffers rotate */
  ko.key.key_file = kpath;
  static const mode_t open_modes[] = {0644, 0640, 0604, 0660};
  for (size_t i = 0; i < sizeof open_modes / sizeof *open_modes; i++) {
    CHECK(write_key_file("k", hex, 65, open_modes[i]));
    db = open_with("a.db", ko, &rc);
    CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
    CHECK(strstr(oplog_errmsg(db), "chmod 600") != NULL);
    oplog_close(db);
  }
  CHECK(write_key_file("k", hex, 65, 0400)); /* owner-only read: fine */
  db = open_with("a.db", ko, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);
  /* 200 bytes (the key, then whatever): not a key file */
  char big[200];
  memset(big, ' ', sizeof big);
  memcpy(big, hex, 64);
  big[199] = '\n';
  CHECK(write_key_file("k", big, sizeof big, 0600));
  db = open_with("a.db", ko, &rc);
  CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
  CHECK(strstr(oplog_errmsg(db), "longer") != NULL);
  oplog_close(db);
  CHECK(write_key_file("k", big, 81, 0600)); /* one byte over 80 */
  db = open_with("a.db", ko, &rc);
  CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  CHECK(write_key_file("k", big, 80, 0600)); /* 64 hex and 16 blanks: fine */
  db = open_with("a.db", ko, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);
}

/* ---------------------------------------------------------------- 8 */

/* A pipe holding text (closed for writing): its read end. */
static int pipe_with(const char *text, size_t n) {
  int p[2];
  if (pipe(p) != 0) return -1;
  if (write(p[1], text, n) != (ssize_t)n) {
    close(p[0]);
    close(p[1]);
    return -1;
  }
  close(p[1]);
  return p[0];
}

static oplog_open_opts from_fd(int fd) {
  oplog_open_opts o = {0};
  o.key.passphrase_from_fd = 1;
  o.key.passphrase_fd = fd;
  o.key.kdf_ops = 2;
  o.key.kdf_mem = 8 << 20;
  return o;
}

static void passphrase_fd(void) {
  int rc, fd = pipe_with("correct horse\n", 14);
  CHECK(fd >= 0);
  oplog_db *db = open_with("a.db", from_fd(fd), &rc);
  close(fd);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(define_user(db) == 0 && write_user(db, 1, "ann", 1) == 1);
  oplog_close(db);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_config WHERE name = 'encryption' AND value = 'passphrase'") ==
        1);
  /* the same passphrase given as a string opens it */
  oplog_open_opts po = {0};
  po.key.passphrase = "correct horse";
  db = open_with("a.db", po, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);
  /* a wrong passphrase on the descriptor */
  fd = pipe_with("wrong horse\n", 12);
  db = open_with("a.db", from_fd(fd), &rc);
  close(fd);
  CHECK_RC(db, rc, OPLOG_WRONG_KEY);
  oplog_close(db);
  /* one descriptor, two lines: the current passphrase opens, the next
   * line is rekey's new one (reading stops at the newline) */
  fd = pipe_with("correct horse\nbattery staple\n", 29);
  db = open_with("a.db", from_fd(fd), &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_key_source next = {.passphrase_from_fd = 1, .passphrase_fd = fd, .kdf_ops = 2, .kdf_mem = 8 << 20};
  OK(db, oplog_rekey(db, &next));
  close(fd);
  oplog_entry *e;
  OK(db, oplog_entry_get(db, 1, &e));
  oplog_entry_free(e);
  oplog_close(db);
  po.key.passphrase = "battery staple";
  db = open_with("a.db", po, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);
  /* a descriptor that is not open, a passphrase too long, both choices */
  db = open_with("a.db", from_fd(1000), &rc);
  CHECK_RC(db, rc, OPLOG_IO);
  oplog_close(db);
  static char longpass[1100];
  memset(longpass, 'p', sizeof longpass);
  fd = pipe_with(longpass, sizeof longpass);
  db = open_with("a.db", from_fd(fd), &rc);
  close(fd);
  CHECK_RC(db, rc, OPLOG_IO);
  oplog_close(db);
  fd = pipe_with("battery staple\n", 15);
  oplog_open_opts both = from_fd(fd);
  both.key.passphrase = "battery staple";
  db = open_with("a.db", both, &rc);
  close(fd);
  CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  /* an empty line is an empty passphrase: refused */
  fd = pipe_with("\n", 1);
  db = open_with("a.db", from_fd(fd), &rc);
  close(fd);
  CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
}

static const struct test_case cases[] = {
    {"files_private", files_private},
    {"clear_fields_rehashed", clear_fields_rehashed},
    {"plaintext_entry_forged", plaintext_entry_forged},
    {"hash_input_unambiguous", hash_input_unambiguous},
    {"rekey_locks_out_old_root", rekey_locks_out_old_root},
    {"key_state_forged", key_state_forged},
    {"catalog_hostile", catalog_hostile},
    {"kdf_ceilings", kdf_ceilings},
    {"entry_size_ceiling", entry_size_ceiling},
    {"weak_kdf_and_key_files", weak_kdf_and_key_files},
    {"passphrase_fd", passphrase_fd},
    {NULL, NULL}};

int main(int argc, char **argv) {
  if (sodium_init() < 0) return 2;
  return test_main(argc, argv, cases);
}
