/* test_chain.c — replay, the hash chain and verification (issue 5): each
 * kind of tampering done with SQL on the file, random single-byte
 * corruptions, and a seeded random workload replayed into suffix tables
 * and into another file. */
#include <sodium.h>

#include "testutil.h"

static const unsigned char KEY[32] = {7, 7, 7};

typedef struct problems {
  int n;
  char kinds[64][24];
  int64_t ids[64];
  char last_detail[256];
} problems;

static int on_problem(void *ctx, int64_t id, const char *kind, const char *detail) {
  problems *p = ctx;
  if (p->n < 64) {
    snprintf(p->kinds[p->n], sizeof p->kinds[0], "%s", kind);
    p->ids[p->n] = id;
  }
  snprintf(p->last_detail, sizeof p->last_detail, "%s", detail);
  p->n++;
  return 0;
}

static int has(const problems *p, const char *kind, int64_t id) {
  for (int i = 0; i < p->n && i < 64; i++)
    if (strcmp(p->kinds[i], kind) == 0 && (id < 0 || p->ids[i] == id)) return 1;
  return 0;
}

static oplog_db *reopen(void) { return open_keyed("a.db", KEY); }

/* A log of 5 entries over users. */
static int make_log(void) {
  oplog_db *db = reopen();
  if (!db || define_user(db)) return 0;
  for (int i = 1; i <= 5; i++) {
    char n[16];
    snprintf(n, sizeof n, "user%d", i);
    if (write_user(db, i, n, 20 + i) != i) return 0;
  }
  oplog_close(db);
  return 1;
}

static int verify(problems *p, const oplog_verify_opts *o) {
  memset(p, 0, sizeof *p);
  oplog_db *db = reopen();
  if (!db) return -1;
  oplog_verify_result r;
  int rc = oplog_verify(db, o, on_problem, p, &r);
  if (rc) fprintf(stderr, "verify: %s\n", oplog_errmsg(db));
  oplog_close(db);
  if (rc) return -1;
  if ((r.problems == 0) != (r.ok == 1) || r.problems != p->n) return -1;
  return r.ok;
}

/* As an attacker would: the append-only triggers dropped first. */
static int attack(const char *sql) {
  char buf[4096];
  snprintf(buf, sizeof buf,
           "DROP TRIGGER oplog_entries_no_update; DROP TRIGGER oplog_entries_no_delete;"
           "DROP TRIGGER oplog_metadata_no_update; DROP TRIGGER oplog_metadata_no_delete;"
           "DROP TRIGGER oplog_index_no_update; DROP TRIGGER oplog_index_no_delete; %s",
           sql);
  return exec_raw(tpath("a.db"), buf);
}

/* The problems found are exactly `spec` ("kind:id kind:id ..."), in any
 * order; prints what was found otherwise. */
static int exactly(const problems *p, const char *spec) {
  char kinds[16][24];
  long long ids[16];
  int n = 0, used[64] = {0};
  const char *s = spec;
  while (*s && n < 16) {
    int len = 0;
    if (sscanf(s, " %23[a-z_]:%lld%n", kinds[n], &ids[n], &len) != 2) break;
    n++;
    s += len;
  }
  int ok = n == p->n && p->n <= 64;
  for (int i = 0; ok && i < n; i++) {
    int found = 0;
    for (int j = 0; !found && j < p->n; j++)
      if (!used[j] && strcmp(p->kinds[j], kinds[i]) == 0 && p->ids[j] == ids[i]) found = used[j] = 1;
    ok = found;
  }
  if (!ok) {
    fprintf(stderr, "expected problems: %s; found %d:", spec, p->n);
    for (int j = 0; j < p->n && j < 64; j++) fprintf(stderr, " %s:%lld", p->kinds[j], (long long)p->ids[j]);
    fprintf(stderr, " (last: %s)\n", p->last_detail);
  }
  return ok;
}

/* Copies a file in-process (no shell per round); 0 on success. */
static int copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
  char buf[65536];
  size_t n;
  int bad = !in || !out;
  while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0) bad = fwrite(buf, 1, n, out) != n;
  if (in) fclose(in);
  if (out && fclose(out)) bad = 1;
  return bad ? -1 : 0;
}

/* A fresh log of 5 entries, the writing handle closed (derived tables
 * cover every entry): made once per test, then copied. */
static int fresh_log(void) {
  unlink(tpath("a.db-wal"));
  unlink(tpath("a.db-shm"));
  if (access(tpath("pristine.db"), F_OK) == 0) return copy_file(tpath("pristine.db"), tpath("a.db")) == 0;
  unlink(tpath("a.db"));
  if (!make_log() || exec_raw(tpath("a.db"), "PRAGMA wal_checkpoint(TRUNCATE)") != 0) return 0;
  unlink(tpath("a.db-wal"));
  unlink(tpath("a.db-shm"));
  return copy_file(tpath("a.db"), tpath("pristine.db")) == 0;
}

static void clean_log_ok(void) {
  CHECK(make_log());
  char why[256];
  CHECK(check_derived(tpath("a.db"), 1, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  problems p;
  CHECK(verify(&p, NULL) == 1);
  oplog_verify_opts o = {.replay = 1};
  CHECK(verify(&p, &o) == 1);
  oplog_db *db = reopen();
  int64_t id;
  unsigned char h[32];
  OK(db, oplog_head(db, &id, h));
  oplog_close(db);
  CHECK(id == 5);
  o.head = h;
  CHECK(verify(&p, &o) == 1);
}

static void detects_changed_entry(void) {
  CHECK(make_log());
  CHECK(attack("UPDATE oplog_entries SET created = created + 1 WHERE id = 3") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 0);
  /* created is under the hash and, the log being encrypted, the AEAD's additional data */
  CHECK(exactly(&p, "hash_mismatch:3 decrypt_failed:3"));
}

/* The metadata is in the entry's row, under the hash: a changed pair is a
 * changed entry, whether or not the derived oplog_metadata is changed to
 * match. */
static void detects_changed_metadata(void) {
  /* same length, so the blob stays well-formed: 'alice' -> 'mally' */
  static const char *blob = "UPDATE oplog_entries SET metadata = CAST(replace(metadata, CAST('alice' AS BLOB), "
                            "CAST('mally' AS BLOB)) AS BLOB) WHERE id = 2";
  CHECK(fresh_log());
  CHECK(attack(blob) == 0);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_entries WHERE id = 2 AND "
                                  "instr(metadata, CAST('mally' AS BLOB)) > 0") == 1);
  problems p;
  CHECK(verify(&p, NULL) == 0);
  /* (the metadata blob is in the AEAD's additional data too) */
  CHECK(exactly(&p, "hash_mismatch:2 decrypt_failed:2 index_mismatch:2"));
  /* the derived row made to agree: the hash still objects */
  CHECK(fresh_log());
  char both[1024];
  snprintf(both, sizeof both, "%s; UPDATE oplog_metadata SET value = 'mally' WHERE entry_id = 2 AND value = 'alice'",
           blob);
  CHECK(attack(both) == 0);
  CHECK(verify(&p, NULL) == 0);
  CHECK(exactly(&p, "hash_mismatch:2 decrypt_failed:2"));
}

/* oplog_metadata is derived: a forged, added or removed row of a covered
 * entry disagrees with the entry (index_mismatch), the chain is intact. */
static void detects_forged_metadata_rows(void) {
  problems p;
  CHECK(fresh_log());
  CHECK(attack("UPDATE oplog_metadata SET value = 'mallory' WHERE entry_id = 2 AND position = 1") == 0);
  CHECK(verify(&p, NULL) == 0);
  CHECK(exactly(&p, "index_mismatch:2"));
  CHECK(fresh_log());
  CHECK(attack("DELETE FROM oplog_metadata WHERE entry_id = 3") == 0);
  CHECK(verify(&p, NULL) == 0);
  CHECK(exactly(&p, "index_mismatch:3"));
  CHECK(fresh_log());
  CHECK(attack("DELETE FROM oplog_metadata WHERE entry_id = 3 AND position = 2") == 0);
  CHECK(verify(&p, NULL) == 0);
  CHECK(exactly(&p, "index_mismatch:3"));
  /* rows for an entry that does not exist */
  CHECK(fresh_log());
  CHECK(attack("INSERT INTO oplog_metadata VALUES (9, 1, 'actor', 'ghost')") == 0);
  CHECK(verify(&p, NULL) == 0);
  CHECK(exactly(&p, "index_mismatch:9"));
}

static void detects_added_metadata(void) {
  problems p;
  CHECK(fresh_log());
  CHECK(attack("INSERT INTO oplog_metadata VALUES (4, 9, 'approved', 'yes')") == 0);
  CHECK(verify(&p, NULL) == 0);
  CHECK(exactly(&p, "index_mismatch:4"));
  /* a pair added to the entry's own blob: the hash objects */
  CHECK(fresh_log());
  unsigned char md[128];
  size_t n = ref_meta_encode((oplog_meta[]){{"actor", "alice"}, {"reason", "signup"}, {"approved", "yes"}}, 3, md,
                             sizeof md);
  CHECK(n > 0);
  char sql[512], hex[300];
  for (size_t i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  snprintf(sql, sizeof sql,
           "UPDATE oplog_entries SET metadata = x'%s' WHERE id = 4;"
           "INSERT INTO oplog_metadata VALUES (4, 3, 'approved', 'yes')",
           hex);
  CHECK(attack(sql) == 0);
  CHECK(verify(&p, NULL) == 0);
  CHECK(exactly(&p, "hash_mismatch:4 decrypt_failed:4"));
}

/* oplog_ticket and oplog_index are derived too. */
static void detects_forged_derived(void) {
  static const struct {
    const char *sql, *expect;
  } attacks[] = {
      {"UPDATE oplog_ticket SET version = version + 1 WHERE name = 'users'", "index_mismatch:0"},
      {"UPDATE oplog_ticket SET version = 1 WHERE name = 'users'", "index_mismatch:0"},
      {"DELETE FROM oplog_ticket WHERE name = 'users'", "index_mismatch:0"},
      {"UPDATE oplog_index SET aggregate_name = 'groups' WHERE entry_id = 2", "index_mismatch:2"},
      {"UPDATE oplog_index SET seq = 7 WHERE entry_id = 2", "index_mismatch:2"},
      {"DELETE FROM oplog_index WHERE entry_id = 5", "index_mismatch:5"},
      {"INSERT INTO oplog_index VALUES (6, 1, 6, 6, 'users')", "index_mismatch:6"},
      {"UPDATE oplog_config SET value = 9 WHERE name = 'clock'", "index_mismatch:0"},
  };
  for (size_t i = 0; i < sizeof attacks / sizeof *attacks; i++) {
    problems p;
    CHECK(fresh_log());
    CHECK(attack(attacks[i].sql) == 0);
    CHECK(verify(&p, NULL) == 0);
    if (!exactly(&p, attacks[i].expect)) fprintf(stderr, "attack: %s\n", attacks[i].sql);
    CHECK(exactly(&p, attacks[i].expect));
  }
  /* the watermark moved back: the rows of entries 4 and 5 now lie above it */
  problems p;
  CHECK(fresh_log());
  CHECK(attack("UPDATE oplog_config SET value = 3 WHERE name = 'indexed_upto'") == 0);
  CHECK(verify(&p, NULL) == 0);
  CHECK(has(&p, "index_mismatch", 4) && has(&p, "index_mismatch", 5));
  for (int i = 0; i < p.n; i++) CHECK(strcmp(p.kinds[i], "index_mismatch") == 0);
}

static void detects_deleted_entry(void) {
  problems p;
  /* everything of entry 3 removed, derived rows and ticket made to agree */
  CHECK(fresh_log());
  CHECK(attack("DELETE FROM oplog_metadata WHERE entry_id = 3; DELETE FROM oplog_index WHERE entry_id = 3;"
               "DELETE FROM oplog_touches WHERE entry_id = 3;"
               "DELETE FROM oplog_entries WHERE id = 3; UPDATE oplog_ticket SET version = 5") == 0);
  CHECK(verify(&p, NULL) == 0);
  CHECK(has(&p, "missing_entry", 4) && has(&p, "chain_break", 4));
  for (int i = 0; i < p.n; i++) CHECK(p.ids[i] == 4);
  /* and renumbered so that local ids have no gap: the seq gap and the
   * chain still show */
  CHECK(fresh_log());
  CHECK(attack("DELETE FROM oplog_metadata WHERE entry_id >= 3; DELETE FROM oplog_index WHERE entry_id >= 3;"
               "DELETE FROM oplog_touches WHERE entry_id >= 3;"
               "DELETE FROM oplog_entries WHERE id = 3; UPDATE oplog_entries SET id = id - 1 WHERE id > 3;"
               "UPDATE oplog_ticket SET version = 3; UPDATE oplog_config SET value = 2 WHERE name IN "
               "('indexed_upto', 'touched_upto', 'clock')") == 0);
  CHECK(verify(&p, NULL) == 0);
  CHECK(has(&p, "missing_entry", 3) && has(&p, "chain_break", 3));
}

static void detects_reordered_entries(void) {
  CHECK(make_log());
  CHECK(attack("UPDATE oplog_entries SET id = -2 WHERE id = 2; UPDATE oplog_entries SET id = 2 WHERE id = 3;"
               "UPDATE oplog_entries SET id = 3 WHERE id = -2;"
               "UPDATE oplog_metadata SET entry_id = -2 WHERE entry_id = 2;"
               "UPDATE oplog_metadata SET entry_id = 2 WHERE entry_id = 3;"
               "UPDATE oplog_metadata SET entry_id = 3 WHERE entry_id = -2;"
               "UPDATE oplog_index SET entry_id = -2 WHERE entry_id = 2;"
               "UPDATE oplog_index SET entry_id = 2 WHERE entry_id = 3;"
               "UPDATE oplog_index SET entry_id = 3 WHERE entry_id = -2") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 0);
  /* id 2 now holds seq 3 (a gap in its origin), id 3 holds seq 2 (going
   * back), and id 4 (seq 4) follows seq 2: nothing before 2 is blamed */
  CHECK(has(&p, "chain_break", 2) && has(&p, "chain_break", 3));
  for (int i = 0; i < p.n; i++) CHECK(p.ids[i] >= 2 && p.ids[i] <= 4 && strcmp(p.kinds[i], "hash_mismatch") != 0);
}

static void detects_cut_tail(void) {
  CHECK(make_log());
  oplog_db *db = reopen();
  int64_t id;
  unsigned char h[32];
  OK(db, oplog_head(db, &id, h));
  oplog_close(db);
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'; cp '%s-wal' '%s-wal' 2>/dev/null; true", tpath("a.db"), tpath("b.db"),
           tpath("a.db"), tpath("b.db"));
  CHECK(system(cmd) == 0);
  /* a careful attacker: entries 4 and 5 and every derived trace of them */
  CHECK(attack("DELETE FROM oplog_metadata WHERE entry_id >= 4; DELETE FROM oplog_index WHERE entry_id >= 4;"
               "DELETE FROM oplog_touches WHERE entry_id >= 4;"
               "DELETE FROM oplog_entries WHERE id >= 4; UPDATE oplog_ticket SET version = 4;"
               "UPDATE oplog_config SET value = 3 WHERE name IN ('indexed_upto', 'touched_upto', 'clock')") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 1); /* without the head, a cut tail looks like a shorter log */
  oplog_verify_opts o = {.head = h};
  CHECK(verify(&p, &o) == 0);
  CHECK(exactly(&p, "head_mismatch:0"));
  /* a careless one, entries only: the derived tables give it away even without the head */
  snprintf(cmd, sizeof cmd, "rm -f '%s-wal' '%s-shm'; cp '%s' '%s'; cp '%s-wal' '%s-wal' 2>/dev/null; true",
           tpath("a.db"), tpath("a.db"), tpath("b.db"), tpath("a.db"), tpath("b.db"), tpath("a.db"));
  CHECK(system(cmd) == 0);
  CHECK(verify(&p, NULL) == 1);
  CHECK(attack("DELETE FROM oplog_entries WHERE id >= 4") == 0);
  CHECK(verify(&p, NULL) == 0);
  /* rows of entry 4 (and after) with no entry, and a ticket counting entries that are gone */
  CHECK(has(&p, "index_mismatch", 4) && has(&p, "index_mismatch", 0));
  for (int i = 0; i < p.n; i++) CHECK(strcmp(p.kinds[i], "index_mismatch") == 0);
  CHECK(verify(&p, &o) == 0 && has(&p, "head_mismatch", 0));
}

static void detects_live_edits(void) {
  CHECK(make_log());
  CHECK(exec_raw(tpath("a.db"), "UPDATE users SET age = 99 WHERE id = 2; DELETE FROM users WHERE id = 4;"
                                "INSERT INTO users (id, name) VALUES (77, 'ghost')") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 1);
  oplog_verify_opts o = {.replay = 1};
  CHECK(verify(&p, &o) == 0);
  CHECK(p.n == 3 && has(&p, "live_mismatch", 0));
  CHECK(strstr(p.last_detail, "users"));
}

static void detects_undecryptable_entry(void) {
  CHECK(make_log());
  /* another row's ciphertext moved here: the chain and the AEAD both object */
  CHECK(attack("UPDATE oplog_entries SET data = (SELECT data FROM oplog_entries WHERE id = 5) WHERE id = 1") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 0);
  CHECK(exactly(&p, "decrypt_failed:1 hash_mismatch:1"));
}

/* Every single-byte change of any stored column of an entry is detected. */
static void random_byte_corruptions(void) {
  CHECK(fresh_log());
  srand(1234);
  static const char *cols[] = {"id",     "origin",   "seq",  "clock",     "created", "aggregate_name",
                               "key_id", "metadata", "data", "prev_hash", "hash",    "format"};
  enum { NCOLS = sizeof cols / sizeof *cols, PER_COL = 4 };
  int detected = 0, tried = 0;
  for (int round = 0; round < NCOLS * PER_COL; round++) {
    CHECK(fresh_log());
    int id = 1 + rand() % 5;
    const char *col = cols[round % NCOLS];
    sqlite3 *s;
    CHECK(sqlite3_open(tpath("a.db"), &s) == SQLITE_OK);
    CHECK(sqlite3_exec(s, "PRAGMA synchronous = OFF; DROP TRIGGER oplog_entries_no_update", NULL, NULL, NULL) ==
          SQLITE_OK);
    char q[200];
    snprintf(q, sizeof q, "SELECT %s, typeof(%s) FROM oplog_entries WHERE id = %d", col, col, id);
    sqlite3_stmt *st;
    CHECK(sqlite3_prepare_v2(s, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW);
    int is_int = sqlite3_column_type(st, 0) == SQLITE_INTEGER, is_text = sqlite3_column_type(st, 0) == SQLITE_TEXT;
    int64_t iv = sqlite3_column_int64(st, 0);
    int n = is_int ? 8 : sqlite3_column_bytes(st, 0);
    unsigned char *b = malloc((size_t)n + 1);
    if (!is_int) memcpy(b, sqlite3_column_blob(st, 0), (size_t)n);
    sqlite3_finalize(st);
    int pos = rand() % n, x = 1 + rand() % 255;
    if (is_int) {
      /* one byte of the integer's 64-bit two's complement */
      iv = (int64_t)((uint64_t)iv ^ ((uint64_t)x << (8 * pos)));
      if (strcmp(col, "format") == 0) iv = 1; /* CHECK (format IN (1, 2)): the only other value it can hold */
    } else {
      b[pos] = (unsigned char)(b[pos] ^ x);
    }
    snprintf(q, sizeof q, "UPDATE oplog_entries SET %s = ?1 WHERE id = %d", col, id);
    CHECK(sqlite3_prepare_v2(s, q, -1, &st, NULL) == SQLITE_OK);
    if (is_int) sqlite3_bind_int64(st, 1, iv);
    else if (is_text) sqlite3_bind_text(st, 1, (char *)b, n, SQLITE_TRANSIENT);
    else sqlite3_bind_blob(st, 1, b, n, SQLITE_TRANSIENT);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    sqlite3_close(s);
    free(b);
    if (r != SQLITE_DONE) {
      /* the schema refused the value (an id taken by another entry): no corruption to detect */
      CHECK(strcmp(col, "id") == 0 && r == SQLITE_CONSTRAINT);
      continue;
    }
    problems p;
    tried++;
    if (verify(&p, NULL) == 0) detected++;
    else fprintf(stderr, "undetected: %s of entry %d byte %d\n", col, id, pos);
  }
  CHECK(tried >= NCOLS * PER_COL - 2 && detected == tried);
}

/* The hash chain recomputed in the test from the byte layout of the design
 * notes (libsodium's BLAKE2b directly): every stored hash, and prev_hash
 * linking each entry to its origin's previous seq. */
static void hash_chain_reference(void) {
  char why[256];
  /* encrypted, with a key rotation, entries with and without metadata,
   * several entries per SQLite transaction */
  oplog_db *db = reopen();
  CHECK(db);
  OK(db, define_user(db));
  OK(db, define_group(db));
  CHECK(write_user(db, 1, "a", 1) == 1);
  int64_t k;
  OK(db, oplog_rotate_key(db, &k));
  CHECK(k == 2);
  OK(db, oplog_tx_begin(db, "users"));
  for (int i = 2; i <= 4; i++) {
    oplog_field g[] = {{"id", vint(i)}, {"title", vtext("t")}};
    OK(db, oplog_tx_apply(db, &(oplog_op){.type = "group", .kind = OPLOG_OP_CREATE, .row = {g, 2}}));
    oplog_meta md[] = {{"i", i == 3 ? NULL : "x"}};
    int64_t id;
    OK(db, oplog_tx_entry(db, md, i == 4 ? 0 : 1, &id));
    CHECK(id == i);
  }
  OK(db, oplog_tx_commit(db, NULL, 0, NULL));
  CHECK(ref_check_chain(tpath("a.db"), why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  oplog_close(db);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_entries WHERE key_id = 2") == 3);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_entries WHERE metadata = x'00000000'") == 1);
  CHECK(ref_check_chain(tpath("a.db"), why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  /* plaintext, across a catch-up of the derived tables */
  db = open_plain("p.db");
  CHECK(db);
  OK(db, define_user(db));
  for (int i = 1; i <= 300; i++) {
    char n[16];
    snprintf(n, sizeof n, "u%d", i);
    CHECK(write_user(db, i, n, i) == i);
  }
  oplog_close(db);
  CHECK(count_rows(tpath("p.db"), "SELECT count(*) FROM oplog_entries WHERE key_id = 0") == 300);
  CHECK(ref_check_chain(tpath("p.db"), why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  /* the reference is not blind: one changed byte and it objects */
  CHECK(exec_raw(tpath("p.db"), "DROP TRIGGER oplog_entries_no_update;"
                                "UPDATE oplog_entries SET created = created + 1 WHERE id = 150") == 0);
  CHECK(!ref_check_chain(tpath("p.db"), why, sizeof why) && strstr(why, "entry 150"));
}

/* Chains are per origin: entries of another origin (here put in with SQL,
 * as an import would) link to their own origin's previous seq, and the
 * file's clock is the largest it holds. */
static void chains_per_origin(void) {
  oplog_db *db = open_plain("p.db");
  CHECK(db);
  OK(db, define_user(db));
  CHECK(write_user(db, 1, "a", 1) == 1);
  CHECK(write_user(db, 2, "b", 2) == 2);
  oplog_close(db);
  char *p = tpath("p.db");
  unsigned char other[32];
  randombytes_buf(other, sizeof other);
  char hex[65];
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", other[i]);
  char sql[1024];
  /* origin 2's seq 1..3 at ids 3..5, clocks 100..102, data copied from entry 1 (plaintext) */
  snprintf(sql, sizeof sql,
           "DROP TRIGGER oplog_entries_no_update;"
           "INSERT INTO oplog_origins (no, id) VALUES (2, x'%s');"
           "INSERT INTO oplog_entries (id, origin, seq, clock, created, aggregate_name, key_id, metadata, data,"
           " prev_hash, hash, format) SELECT 2 + s.n, 2, s.n, 99 + s.n, created, aggregate_name, 0, x'00000000',"
           " data, zeroblob(32), zeroblob(32), 2 FROM oplog_entries, (SELECT 1 AS n UNION SELECT 2 UNION SELECT 3) s"
           " WHERE id = 1 ORDER BY s.n",
           hex);
  CHECK(exec_raw(p, sql) == 0);
  CHECK(ref_rehash_all(p) == 0);
  char why[256];
  CHECK(ref_check_chain(p, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  /* each origin's first entry links to zeros, the next to its own origin's */
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_entries WHERE seq = 1 AND prev_hash = zeroblob(32)") == 2);
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_entries a JOIN oplog_entries b ON b.origin = a.origin AND "
                      "b.seq = a.seq + 1 WHERE b.prev_hash = a.hash") == 3);
  problems pr;
  memset(&pr, 0, sizeof pr);
  db = open_plain("p.db");
  CHECK(db);
  oplog_verify_result vr;
  OK(db, oplog_verify(db, NULL, on_problem, &pr, &vr));
  CHECK(exactly(&pr, "") && vr.ok && vr.entries == 5);
  /* this file's origin goes on from its own seq; the clock from the largest */
  oplog_origin_info o;
  OK(db, oplog_origin(db, &o));
  CHECK(o.seq == 2 && o.clock == 102 && o.head_id == 2);
  CHECK(write_user(db, 3, "c", 3) == 6);
  OK(db, oplog_origin(db, &o));
  CHECK(o.seq == 3 && o.clock == 103 && o.head_id == 6);
  oplog_close(db);
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_entries WHERE id = 6 AND origin = 1 AND seq = 3 AND clock = 103") ==
        1);
  CHECK(ref_check_chain(p, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  CHECK(check_derived(p, 1, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  /* reopened, with every entry covered by the derived tables: the same */
  db = open_plain("p.db");
  CHECK(db);
  OK(db, oplog_origin(db, &o));
  CHECK(o.seq == 3 && o.clock == 103 && o.head_id == 6);
  int64_t v;
  OK(db, oplog_ticket(db, "users", &v));
  CHECK(v == 7); /* 1 + six entries of users, whichever origin wrote them */
  memset(&pr, 0, sizeof pr);
  OK(db, oplog_verify(db, NULL, on_problem, &pr, &vr));
  CHECK(exactly(&pr, "") && vr.ok && vr.entries == 6);
  oplog_close(db);
  /* origin 2's seq 2 linked to origin 1's entry instead: a chain break there */
  CHECK(exec_raw(p, "DROP TRIGGER IF EXISTS oplog_entries_no_update;"
                    "UPDATE oplog_entries SET prev_hash = (SELECT hash FROM oplog_entries WHERE id = 1) WHERE id = 4") ==
        0);
  db = open_plain("p.db");
  CHECK(db);
  memset(&pr, 0, sizeof pr);
  OK(db, oplog_verify(db, NULL, on_problem, &pr, &vr));
  oplog_close(db);
  CHECK(has(&pr, "chain_break", 4));
}

/* ---------------------------------------------------------------- replay */

static void replay_suffix_and_into(void) {
  CHECK(make_log());
  oplog_db *db = reopen();
  oplog_replay_result r;
  OK(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_replay"}, &r));
  CHECK(r.entries == 5 && r.ops == 5);
  CHECK_RC(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_replay"}, &r), OPLOG_TARGET_NOT_EMPTY);
  OK(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_replay", .fresh = 1, .since = 2, .upto = 4}, &r));
  CHECK(r.entries == 2);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM users_replay") == 2);
  /* fresh while an iterator of the handle is running: DROP must wait for
   * it, so the target is emptied instead; same result */
  oplog_iter *it;
  const oplog_entry *first;
  OK(db, oplog_entries(db, NULL, &it));
  OK(db, oplog_iter_next(it, &first));
  CHECK(first && first->id == 1);
  OK(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_replay", .fresh = 1}, &r));
  CHECK(r.entries == 5);
  oplog_iter_close(it);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM users_replay") == 5);
  OK(db, oplog_replay(db, &(oplog_replay_opts){.into = tpath("replica.db")}, &r));
  CHECK(r.entries == 5);
  CHECK_RC(db, oplog_replay(db, &(oplog_replay_opts){.into = tpath("replica.db")}, &r), OPLOG_TARGET_NOT_EMPTY);
  CHECK_RC(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "x", .into = "y"}, &r), OPLOG_INVALID_ARGUMENT);
  CHECK_RC(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "a b"}, &r), OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  CHECK(count_rows(tpath("replica.db"), "SELECT count(*) FROM users") == 5);
  CHECK(count_rows(tpath("replica.db"), "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'oplog%'") == 0);
}

typedef struct progress_log {
  int calls;
  int64_t last_done, last_total;
} progress_log;

static int on_progress(void *ctx, int64_t done, int64_t total) {
  progress_log *l = ctx;
  l->calls++;
  l->last_done = done;
  l->last_total = total;
  return 0;
}

/* Asks to stop at the first report: the replay must leave nothing. */
static int stop_progress(void *ctx, int64_t done, int64_t total) {
  (void)ctx;
  (void)total;
  return done > 0;
}

/* Row-for-row equality of every live table with its copy. */
static int same_tables(const char *live_db, const char *other_db, const char *suffix, int ntables) {
  static const char *tables[] = {"users", "groups", "item", "reading"};
  for (int i = 0; i < ntables; i++) {
    char sql[800];
    sqlite3 *s;
    sqlite3_open(live_db, &s);
    char *att = sqlite3_mprintf("ATTACH '%q' AS o", other_db);
    sqlite3_exec(s, att, NULL, NULL, NULL);
    sqlite3_free(att);
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM (SELECT * FROM main.\"%s\" EXCEPT SELECT * FROM o.\"%s%s\")) + "
             "(SELECT count(*) FROM (SELECT * FROM o.\"%s%s\" EXCEPT SELECT * FROM main.\"%s\")) + "
             "((SELECT count(*) FROM main.\"%s\") != (SELECT count(*) FROM o.\"%s%s\"))",
             tables[i], tables[i], suffix, tables[i], suffix, tables[i], tables[i], tables[i], suffix);
    sqlite3_stmt *st;
    int diff = -1;
    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
      diff = sqlite3_column_int(st, 0);
    else
      fprintf(stderr, "same_tables: %s\n", sqlite3_errmsg(s));
    sqlite3_finalize(st);
    sqlite3_close(s);
    if (diff != 0) {
      fprintf(stderr, "table %s differs (%d)\n", tables[i], diff);
      return 0;
    }
  }
  return 1;
}

/* Seeded random workload: thousands of mixed operations over several types
 * and aggregates; replaying the log gives the live tables exactly. */
static void replay_property_random_workload(void) {
  oplog_db *db = reopen();
  CHECK(db);
  OK(db, define_user(db));
  OK(db, define_group(db));
  static const oplog_column icols[] = {{"sku", "TEXT NOT NULL"}, {"shelf", "INTEGER NOT NULL"},
                                       {"qty", "INTEGER"}, {"price", "REAL"}, {"note", "BLOB"}};
  static const char *ikey[] = {"sku", "shelf"};
  OK(db, oplog_define(db, &(oplog_type_spec){"item", NULL, "stock", icols, 5, ikey, 2}));
  static const oplog_column rcols[] = {{"id", "INTEGER PRIMARY KEY"}, {"value", "REAL"}, {"ok", "BOOLEAN"}};
  OK(db, oplog_define(db, &(oplog_type_spec){"reading", NULL, "sensors", rcols, 3, NULL, 0}));
  unsigned seed = 42;
  srand(seed);
  int users = 0, items = 0, ops = 0, group_id = 0;
  for (int txn = 0; txn < 400; txn++) {
    int agg = rand() % 3;
    const char *aggname = agg == 0 ? "users" : agg == 1 ? "stock" : "sensors";
    OK(db, oplog_tx_begin(db, aggname));
    int n = 1 + rand() % 10;
    for (int k = 0; k < n; k++, ops++) {
      int choice = rand() % 4;
      char name[32], sku[32];
      if (agg == 0) {
        int id = 1 + rand() % (users + 1);
        snprintf(name, sizeof name, "u%d-%d", id, rand() % 1000);
        oplog_field f[] = {{"id", vint(id)}, {"name", vtext(name)}, {"age", vint(rand() % 90)}};
        if (id > users) {
          users = id;
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 3}}));
        } else if (choice == 0) {
          /* delete then recreate keeps ids dense */
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "user", .kind = OPLOG_OP_DELETE, .row = {f, 1}}));
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 3}}));
        } else {
          const char *mask[] = {"age"}, *nulls[] = {"photo"};
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "user", .kind = OPLOG_OP_UPDATE, .row = {f, 3},
                                                .mask = mask, .nmask = choice == 1 ? 0 : 1,
                                                .nulls = nulls, .nnulls = choice == 1 ? 1 : 0}));
        }
        if (choice == 3) {
          oplog_field g[] = {{"id", vint(++group_id)}, {"title", vtext(name)}};
          oplog_field g2[] = {{"id", vint(++group_id)}, {"title", vnull()}};
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "group", .kind = OPLOG_OP_CREATE_ITEMS, .row = {g, 2}}));
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "group", .kind = OPLOG_OP_CREATE_ITEMS, .row = {g2, 2}}));
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "group", .kind = OPLOG_OP_DELETE_ITEMS, .row = {g, 1}}));
        }
      } else if (agg == 1) {
        int i = rand() % (items + 1);
        snprintf(sku, sizeof sku, "sku-%d", i);
        unsigned char note[8];
        for (int b = 0; b < 8; b++) note[b] = (unsigned char)rand();
        oplog_field f[] = {{"sku", vtext(sku)}, {"shelf", vint(i % 7)}, {"qty", vint(rand() % 50)},
                           {"price", vreal(rand() / 7.0)}, {"note", vblob(note, 8)}};
        if (i == items) {
          items++;
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "item", .kind = OPLOG_OP_CREATE, .row = {f, 5}}));
        } else {
          const char *mask[] = {"qty", "price"}, *nulls[] = {"note"};
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "item", .kind = OPLOG_OP_UPDATE, .row = {f, 5},
                                                .mask = mask, .nmask = 1 + choice % 2, .nulls = nulls,
                                                .nnulls = choice == 3}));
        }
      } else {
        oplog_field f[] = {{"value", vreal(rand() / 3.0)}, {"ok", {.type = OPLOG_BOOLEAN, .u.i = rand() % 2}}};
        OK(db, oplog_tx_apply(db, &(oplog_op){.type = "reading", .kind = OPLOG_OP_CREATE, .row = {f, 2}}));
      }
    }
    oplog_meta md[] = {{"txn", NULL}, {"seed", "42"}};
    OK(db, oplog_tx_commit(db, md, 2, NULL));
  }
  CHECK(ops >= 2000);
  progress_log pl = {0};
  oplog_replay_result r;
  OK(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_r", .progress = on_progress, .progress_ctx = &pl}, &r));
  CHECK(r.entries == 400 && pl.calls >= 1 && pl.last_done == 400 && pl.last_total == 400);
  OK(db, oplog_replay(db, &(oplog_replay_opts){.into = tpath("replica.db")}, &r));
  CHECK_RC(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_stop", .progress = stop_progress}, &r),
           OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%_stop'") == 0);
  CHECK(same_tables(tpath("a.db"), tpath("a.db"), "_r", 4));
  CHECK(same_tables(tpath("a.db"), tpath("replica.db"), "", 4));
  problems p;
  oplog_verify_opts o = {.replay = 1};
  CHECK(verify(&p, &o) == 1);
}

static void verify_progress(void) {
  CHECK(make_log());
  oplog_db *db = reopen();
  progress_log pl = {0};
  oplog_verify_result r;
  OK(db, oplog_verify(db, &(oplog_verify_opts){.replay = 1, .progress = on_progress, .progress_ctx = &pl}, NULL,
                      NULL, &r));
  CHECK(r.ok && pl.calls >= 2 && pl.last_done == pl.last_total && pl.last_total == 10);
  oplog_close(db);
}

static const struct test_case cases[] = {
    {"clean_log_ok", clean_log_ok},
    {"detects_changed_entry", detects_changed_entry},
    {"detects_changed_metadata", detects_changed_metadata},
    {"detects_forged_metadata_rows", detects_forged_metadata_rows},
    {"detects_added_metadata", detects_added_metadata},
    {"detects_forged_derived", detects_forged_derived},
    {"detects_deleted_entry", detects_deleted_entry},
    {"detects_reordered_entries", detects_reordered_entries},
    {"detects_cut_tail", detects_cut_tail},
    {"detects_live_edits", detects_live_edits},
    {"detects_undecryptable_entry", detects_undecryptable_entry},
    {"random_byte_corruptions", random_byte_corruptions},
    {"hash_chain_reference", hash_chain_reference},
    {"chains_per_origin", chains_per_origin},
    {"replay_suffix_and_into", replay_suffix_and_into},
    {"replay_property_random_workload", replay_property_random_workload},
    {"verify_progress", verify_progress},
    {NULL, NULL}};

int main(int argc, char **argv) { return test_main(argc, argv, cases); }
