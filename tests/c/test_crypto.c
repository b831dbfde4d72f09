/* test_crypto.c — encryption at rest (issue 3): key sources, wrong and
 * missing keys, row-bound ciphertexts, rotation, rekey, keygen. */
#include <fcntl.h>
#include <sys/stat.h>

#include "testutil.h"

static const unsigned char KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                      17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const unsigned char KEY2[32] = {9};

static oplog_db *open_src(const char *name, oplog_key_source src, int *rc) {
  oplog_open_opts o = {0};
  o.key = src;
  o.sync = OPLOG_SYNC_NORMAL;
  oplog_db *db = NULL;
  *rc = oplog_open(tpath(name), &o, &db);
  return db;
}

/* Writes a marker through a transaction and reads it back. */
static int roundtrip(oplog_db *db, int64_t id) {
  if (define_user(db)) return 0;
  char name[32];
  snprintf(name, sizeof name, "SECRET-MARKER-%lld", (long long)id);
  int64_t eid = write_user(db, id, name, 42);
  if (!eid) return 0;
  oplog_entry *e;
  if (oplog_entry_get(db, eid, &e)) return 0;
  int ok = strcmp(e->ops[0].row.fields[1].value.u.b.p, name) == 0;
  oplog_entry_free(e);
  return ok;
}

static void key_sources_roundtrip(void) {
  int rc;
  /* raw key */
  oplog_db *db = open_src("raw.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(roundtrip(db, 1));
  oplog_close(db);
  /* key file, hex (as keygen writes it) */
  char err[256];
  CHECK(oplog_keygen(tpath("k.hex"), err, sizeof err) == OPLOG_OK);
  db = open_src("hex.db", (oplog_key_source){.key_file = tpath("k.hex")}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(roundtrip(db, 1));
  oplog_close(db);
  db = open_src("hex.db", (oplog_key_source){.key_file = tpath("k.hex")}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);
  /* key file, 32 raw bytes */
  FILE *f = fopen(tpath("k.bin"), "wb");
  CHECK(f && fwrite(KEY, 1, 32, f) == 32);
  fclose(f);
  /* readable by others: refused, as ssh refuses such a private key */
  db = open_src("bin.db", (oplog_key_source){.key_file = tpath("k.bin")}, &rc);
  CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
  CHECK(strstr(oplog_errmsg(db), "chmod 600") != NULL);
  oplog_close(db);
  CHECK(chmod(tpath("k.bin"), 0600) == 0);
  db = open_src("bin.db", (oplog_key_source){.key_file = tpath("k.bin")}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(roundtrip(db, 1));
  oplog_close(db);
  /* the raw key file and the raw key are the same root key */
  db = open_src("bin.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);
  /* passphrase, with small limits */
  oplog_key_source pass = {.passphrase = "correct horse", .kdf_ops = 2, .kdf_mem = 8 << 20};
  db = open_src("pass.db", pass, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(roundtrip(db, 1));
  oplog_close(db);
  CHECK(count_rows(tpath("pass.db"), "SELECT value FROM oplog_config WHERE name = 'kdf_mem'") == 8 << 20);
  oplog_key_source pass2 = {.passphrase = "correct horse"}; /* limits come from the file */
  db = open_src("pass.db", pass2, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_close(db);
  /* a bad key file */
  f = fopen(tpath("k.bad"), "w");
  fputs("not a key\n", f);
  fclose(f);
  db = open_src("bad.db", (oplog_key_source){.key_file = tpath("k.bad")}, &rc);
  CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  db = open_src("bad.db", (oplog_key_source){.key_file = tpath("nope")}, &rc);
  CHECK_RC(db, rc, OPLOG_NOT_FOUND);
  oplog_close(db);
  db = open_src("bad.db", (oplog_key_source){.key = KEY, .key_len = 16}, &rc);
  CHECK_RC(db, rc, OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
}

static void wrong_and_missing_key(void) {
  int rc;
  oplog_db *db = open_src("a.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(roundtrip(db, 1));
  oplog_close(db);
  db = open_src("a.db", (oplog_key_source){.key = KEY2, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_WRONG_KEY);
  oplog_close(db);
  db = open_src("a.db", (oplog_key_source){.no_encryption = 1}, &rc);
  CHECK_RC(db, rc, OPLOG_KEY_REQUIRED);
  oplog_close(db);
  db = open_src("a.db", (oplog_key_source){.passphrase = "x", .kdf_ops = 2, .kdf_mem = 8 << 20}, &rc);
  CHECK_RC(db, rc, OPLOG_WRONG_KEY);
  oplog_close(db);
  /* no key at all: the chain is readable, the data is not */
  db = open_src("a.db", (oplog_key_source){0}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_entry *e;
  CHECK_RC(db, oplog_entry_get(db, 1, &e), OPLOG_KEY_REQUIRED);
  CHECK_RC(db, oplog_tx_begin(db, "users"), OPLOG_KEY_REQUIRED);
  oplog_verify_result vr;
  OK(db, oplog_verify(db, NULL, NULL, NULL, &vr));
  CHECK(vr.ok && vr.entries == 1);
  int64_t id;
  unsigned char h[32];
  OK(db, oplog_head(db, &id, h));
  CHECK(id == 1);
  oplog_close(db);
  /* a plaintext file refuses a key */
  db = open_plain("plain.db");
  CHECK(db);
  oplog_close(db);
  db = open_src("plain.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_WRONG_KEY);
  CHECK(strstr(oplog_errmsg(db), "not encrypted"));
  oplog_close(db);
}

/* Tampering done with SQL, as an attacker with the file would. */
static int tamper(const char *sql) {
  char buf[1024];
  snprintf(buf, sizeof buf,
           "DROP TRIGGER oplog_entries_no_update; %s; CREATE TRIGGER oplog_entries_no_update BEFORE UPDATE ON "
           "oplog_entries BEGIN SELECT RAISE(ABORT, 'oplog_entries is append-only'); END;",
           sql);
  return exec_raw(tpath("a.db"), buf);
}

static int read_code(int64_t id, char *msg, size_t n) {
  int rc;
  oplog_db *db = open_src("a.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  if (rc) {
    oplog_close(db);
    return -1;
  }
  oplog_entry *e = NULL;
  rc = oplog_entry_get(db, id, &e);
  snprintf(msg, n, "%s", oplog_errmsg(db));
  oplog_entry_free(e);
  oplog_close(db);
  return rc;
}

static void tampering_fails_decryption(void) {
  static const char *attacks[] = {
      /* one byte of ciphertext, then of the nonce, changed for sure */
      "UPDATE oplog_entries SET data = CAST(substr(data, 1, 30) || CASE WHEN substr(data, 31, 1) = x'00' "
      "THEN x'01' ELSE x'00' END || substr(data, 32) AS BLOB) WHERE id = 1",
      "UPDATE oplog_entries SET data = CAST(CASE WHEN substr(data, 1, 1) = x'00' THEN x'01' ELSE x'00' END "
      "|| substr(data, 2) AS BLOB) WHERE id = 1",
      "UPDATE oplog_entries SET aggregate_name = 'groups' WHERE id = 1",
      "UPDATE oplog_entries SET key_id = 2 WHERE id = 1",
      /* swap data between rows 1 and 2 */
      "UPDATE oplog_entries SET data = (SELECT data FROM oplog_entries WHERE id = 2) WHERE id = 1",
      /* format 2: the metadata blob (same length, still well-formed), seq,
       * clock and created are in the additional data */
      "UPDATE oplog_entries SET metadata = CAST(replace(metadata, CAST('alice' AS BLOB), CAST('mally' AS BLOB)) "
      "AS BLOB) WHERE id = 1",
      "UPDATE oplog_entries SET seq = 7 WHERE id = 1",
      "UPDATE oplog_entries SET clock = clock + 1 WHERE id = 1",
      "UPDATE oplog_entries SET created = created + 1 WHERE id = 1",
  };
  for (size_t i = 0; i < sizeof attacks / sizeof *attacks; i++) {
    unlink(tpath("a.db"));
    unlink(tpath("a.db-wal"));
    unlink(tpath("a.db-shm"));
    int rc;
    oplog_db *db = open_src("a.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
    CHECK_RC(db, rc, OPLOG_OK);
    CHECK(roundtrip(db, 1));
    CHECK(write_user(db, 2, "other", 1) == 2);
    if (i == 3) {
      int64_t k;
      OK(db, oplog_rotate_key(db, &k)); /* key 2 exists: the id change alone must fail */
    }
    oplog_close(db);
    char msg[256];
    CHECK(read_code(1, msg, sizeof msg) == OPLOG_OK);
    CHECK(tamper(attacks[i]) == 0);
    CHECK(read_code(1, msg, sizeof msg) == OPLOG_DECRYPT_FAILED);
    CHECK(strstr(msg, "entry 1"));
  }
}

typedef struct found {
  int n;
  char kinds[16][24];
  int64_t ids[16];
} found;

static int on_problem(void *ctx, int64_t id, const char *kind, const char *detail) {
  found *f = ctx;
  (void)detail;
  if (f->n < 16) {
    snprintf(f->kinds[f->n], sizeof f->kinds[0], "%s", kind);
    f->ids[f->n] = id;
  }
  f->n++;
  return 0;
}

/* verify of a.db with the key (key = 1) or without it; -1 if it cannot run */
static int verify_a(int with_key, found *f) {
  int rc;
  memset(f, 0, sizeof *f);
  oplog_db *db = open_src("a.db", with_key ? (oplog_key_source){.key = KEY, .key_len = 32} : (oplog_key_source){0},
                          &rc);
  oplog_verify_result vr = {0};
  if (!rc) rc = oplog_verify(db, NULL, on_problem, f, &vr);
  oplog_close(db);
  return rc ? -1 : vr.ok;
}

/* The metadata blob is bound to the ciphertext: an attacker who changes it
 * and recomputes the whole unkeyed chain (here with the test's own
 * reference hash, from the design notes) and makes oplog_metadata agree,
 * fools every check that has no key, and not the decryption. */
static void metadata_rehashed_fails_decryption(void) {
  int rc;
  oplog_db *db = open_src("a.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(roundtrip(db, 1));
  CHECK(write_user(db, 2, "other", 1) == 2);
  CHECK(write_user(db, 3, "third", 1) == 3);
  oplog_close(db);
  char why[256];
  char *p = tpath("a.db");
  CHECK(ref_check_chain(p, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  found f;
  CHECK(verify_a(1, &f) == 1);
  CHECK(exec_raw(p, "DROP TRIGGER oplog_entries_no_update; DROP TRIGGER oplog_metadata_no_update;"
                    "UPDATE oplog_entries SET metadata = CAST(replace(metadata, CAST('alice' AS BLOB),"
                    " CAST('mally' AS BLOB)) AS BLOB) WHERE id = 1;"
                    "UPDATE oplog_metadata SET value = 'mally' WHERE entry_id = 1 AND value = 'alice'") == 0);
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_entries WHERE instr(metadata, CAST('mally' AS BLOB)) > 0") == 1);
  /* before the rehash even the keyless check sees it */
  CHECK(verify_a(0, &f) == 0 && f.n == 1 && strcmp(f.kinds[0], "hash_mismatch") == 0 && f.ids[0] == 1);
  CHECK(ref_rehash_all(p) == 0);
  CHECK(ref_check_chain(p, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  /* the unkeyed chain is whole again: without the key nothing shows */
  CHECK(verify_a(0, &f) == 1);
  /* with the key: entry 1 does not decrypt, and nothing else is wrong */
  CHECK(verify_a(1, &f) == 0);
  CHECK(f.n == 1 && strcmp(f.kinds[0], "decrypt_failed") == 0 && f.ids[0] == 1);
  char msg[256];
  CHECK(read_code(1, msg, sizeof msg) == OPLOG_DECRYPT_FAILED && strstr(msg, "entry 1"));
  CHECK(read_code(2, msg, sizeof msg) == OPLOG_OK);
  /* and the metadata filter does not hand out the forged entry's operations */
  db = open_src("a.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_iter *it;
  oplog_meta mally[] = {{"actor", "mally"}};
  OK(db, oplog_entries(db, &(oplog_filter){.metadata = mally, .nmetadata = 1}, &it));
  const oplog_entry *e = NULL;
  CHECK_RC(db, oplog_iter_next(it, &e), OPLOG_DECRYPT_FAILED);
  oplog_iter_close(it);
  oplog_close(db);
}

static void rotate_and_read_old(void) {
  int rc;
  oplog_db *db = open_src("a.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(roundtrip(db, 1));
  int64_t k;
  OK(db, oplog_rotate_key(db, &k));
  CHECK(k == 2);
  CHECK(write_user(db, 2, "after", 1) == 2);
  oplog_close(db);
  CHECK(count_rows(tpath("a.db"), "SELECT key_id FROM oplog_entries WHERE id = 1") == 1);
  CHECK(count_rows(tpath("a.db"), "SELECT key_id FROM oplog_entries WHERE id = 2") == 2);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_keys WHERE state = 'active'") == 1);
  db = open_src("a.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_entry *e;
  OK(db, oplog_entry_get(db, 1, &e));
  oplog_entry_free(e);
  OK(db, oplog_entry_get(db, 2, &e));
  oplog_entry_free(e);
  oplog_stats st;
  OK(db, oplog_get_stats(db, &st, NULL, NULL));
  CHECK(st.keys == 2);
  oplog_close(db);
}

static void rekey_then_reopen(void) {
  int rc;
  oplog_db *db = open_src("a.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(roundtrip(db, 1));
  int64_t k;
  OK(db, oplog_rotate_key(db, &k));
  CHECK(write_user(db, 2, "b", 1) == 2);
  oplog_origin_info before, after;
  OK(db, oplog_origin(db, &before));
  OK(db, oplog_rekey(db, &(oplog_key_source){.passphrase = "new pass", .kdf_ops = 2, .kdf_mem = 8 << 20}));
  CHECK(write_user(db, 3, "c", 1) == 3);
  /* format 2: rekey also starts a new data key; the origin stays */
  CHECK(count_rows(tpath("a.db"), "SELECT key_id FROM oplog_entries WHERE id = 3") == 3);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_keys WHERE origin = 1") == 3);
  OK(db, oplog_origin(db, &after));
  CHECK(memcmp(before.id, after.id, OPLOG_ORIGIN_BYTES) == 0 && after.seq == 3);
  CHECK_RC(db, oplog_rekey(db, &(oplog_key_source){.no_encryption = 1}), OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  db = open_src("a.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_WRONG_KEY);
  oplog_close(db);
  db = open_src("a.db", (oplog_key_source){.passphrase = "new pass"}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  OK(db, oplog_origin(db, &after)); /* opened with the new root key: same origin */
  CHECK(memcmp(before.id, after.id, OPLOG_ORIGIN_BYTES) == 0);
  for (int i = 1; i <= 3; i++) {
    oplog_entry *e;
    OK(db, oplog_entry_get(db, i, &e));
    oplog_entry_free(e);
  }
  OK(db, oplog_rekey(db, &(oplog_key_source){.key = KEY2, .key_len = 32}));
  oplog_close(db);
  db = open_src("a.db", (oplog_key_source){.key = KEY2, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  oplog_verify_result vr;
  OK(db, oplog_verify(db, &(oplog_verify_opts){.replay = 1}, NULL, NULL, &vr));
  CHECK(vr.ok && vr.entries == 3);
  oplog_close(db);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_config WHERE name LIKE 'kdf%'") == 0);
}

static void no_plaintext_in_entries(void) {
  int rc;
  oplog_db *db = open_src("a.db", (oplog_key_source){.key = KEY, .key_len = 32}, &rc);
  CHECK_RC(db, rc, OPLOG_OK);
  CHECK(roundtrip(db, 1));
  for (int i = 2; i < 50; i++) {
    char n[32];
    snprintf(n, sizeof n, "SECRET-MARKER-%d", i);
    CHECK(write_user(db, i, n, i) == i);
  }
  oplog_close(db);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_entries") >= 1);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_entries WHERE instr(data, 'SECRET-MARKER') > 0 "
                                  "OR instr(CAST(data AS BLOB), CAST('SECRET' AS BLOB)) > 0") == 0);
  /* in plaintext mode the marker is visible: the scan above can find it */
  db = open_plain("p.db");
  CHECK(db);
  CHECK(roundtrip(db, 1));
  oplog_close(db);
  CHECK(count_rows(tpath("p.db"), "SELECT count(*) FROM oplog_entries WHERE instr(CAST(data AS BLOB), "
                                  "CAST('SECRET-MARKER' AS BLOB)) > 0") == 1);
}

static void keygen_file(void) {
  char err[256];
  CHECK(oplog_keygen(tpath("k"), err, sizeof err) == OPLOG_OK);
  struct stat st;
  CHECK(stat(tpath("k"), &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 65);
  FILE *f = fopen(tpath("k"), "r");
  char buf[80] = {0};
  CHECK(f && fgets(buf, sizeof buf, f));
  fclose(f);
  CHECK(strlen(buf) == 65 && buf[64] == '\n' && strspn(buf, "0123456789abcdef") == 64);
  CHECK(oplog_keygen(tpath("k"), err, sizeof err) == OPLOG_IO);
  CHECK(strstr(err, "exists"));
  char err2[256];
  CHECK(oplog_keygen(tpath("k2"), err2, sizeof err2) == OPLOG_OK);
  FILE *g = fopen(tpath("k2"), "r");
  char buf2[80] = {0};
  CHECK(g && fgets(buf2, sizeof buf2, g));
  fclose(g);
  CHECK(strcmp(buf, buf2) != 0);
}

static const struct test_case cases[] = {
    {"key_sources_roundtrip", key_sources_roundtrip},
    {"wrong_and_missing_key", wrong_and_missing_key},
    {"tampering_fails_decryption", tampering_fails_decryption},
    {"metadata_rehashed_fails_decryption", metadata_rehashed_fails_decryption},
    {"rotate_and_read_old", rotate_and_read_old},
    {"rekey_then_reopen", rekey_then_reopen},
    {"no_plaintext_in_entries", no_plaintext_in_entries},
    {"keygen_file", keygen_file},
    {NULL, NULL}};

int main(int argc, char **argv) { return test_main(argc, argv, cases); }
