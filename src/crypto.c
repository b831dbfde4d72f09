/* crypto.c — the root key, the data keys it wraps, and entry encryption.
 *
 * The root key (from a key file, a raw key or an Argon2id passphrase) never
 * touches the file; it wraps random data keys (oplog_keys) and entries are
 * sealed with a data key, XChaCha20-Poly1305-IETF, with additional data that
 * binds the ciphertext to its row. Byte layouts: schema/FORMAT.md. Every
 * secret lives in sodium_malloc'd (locked, guarded) memory and is wiped. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define WRAP_AD "oplog.v1.data-key"
#define WRAP_AD2 "oplog.v2.data-key"
#define SEED_AD "oplog.v2.origin-seed"
#define SALT_BYTES crypto_pwhash_SALTBYTES
#define DEFAULT_KDF_OPS 2ULL
#define DEFAULT_KDF_MEM (64u * 1024 * 1024)

/* The longest key file: 64 hex characters and some trailing whitespace. */
#define KEY_FILE_MAX 80

static int read_key_file(oplog_db *db, const char *path, unsigned char out[OPLOG_KEY_BYTES]) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return opl_db_error(db, errno == ENOENT ? OPLOG_NOT_FOUND : OPLOG_IO, "key file %s: %s", path,
                    strerror(errno));
  /* As ssh does with private keys: a key others can read is no secret. */
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return opl_db_error(db, OPLOG_IO, "key file %s: %s", path, strerror(e));
  }
  if ((st.st_mode & 077) || st.st_size > KEY_FILE_MAX) {
    close(fd);
    if (st.st_mode & 077)
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                      "key file %s is open to others (mode %03o): make it private (chmod 600)", path,
                      (unsigned)(st.st_mode & 0777));
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "key file %s is longer (%lld bytes) than a key file can be", path,
                    (long long)st.st_size);
  }
  unsigned char raw[KEY_FILE_MAX + 1];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof raw && (r = read(fd, raw + n, sizeof raw - n)) != 0) {
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      sodium_memzero(raw, sizeof raw);
      return opl_db_error(db, OPLOG_IO, "key file %s: %s", path, strerror(e));
    }
    n += (size_t)r;
  }
  close(fd);
  int rc = OPLOG_OK;
  size_t hex_end = n;
  while (hex_end > 0 && (raw[hex_end - 1] == '\n' || raw[hex_end - 1] == '\r' ||
                         raw[hex_end - 1] == ' ' || raw[hex_end - 1] == '\t'))
    hex_end--;
  size_t bin_len = 0;
  if (hex_end == 2 * OPLOG_KEY_BYTES &&
      sodium_hex2bin(out, OPLOG_KEY_BYTES, (const char *)raw, hex_end, NULL, &bin_len, NULL) == 0 &&
      bin_len == OPLOG_KEY_BYTES) {
    /* 64 hex characters */
  } else if (n == OPLOG_KEY_BYTES) {
    memcpy(out, raw, OPLOG_KEY_BYTES);
  } else {
    rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                  "key file %s must hold 32 raw bytes or 64 hex characters", path);
  }
  sodium_memzero(raw, sizeof raw);
  return rc;
}

static int config_set(oplog_db *db, const char *name, int type, const void *p, size_t n,
                      int64_t i) {
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "INSERT OR REPLACE INTO oplog_config (name, value) VALUES (?1, ?2)",
                             -1, &s, NULL);
  if (r == SQLITE_OK) {
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if (type == SQLITE_TEXT) sqlite3_bind_text(s, 2, p, (int)n, SQLITE_STATIC);
    else if (type == SQLITE_BLOB) sqlite3_bind_blob(s, 2, p, (int)n, SQLITE_STATIC);
    else sqlite3_bind_int64(s, 2, i);
    r = sqlite3_step(s);
  }
  sqlite3_finalize(s);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

/* Reads one config value: text or blob into out (up to cap), or integer. */
static int config_get(oplog_db *db, const char *name, void *out, size_t cap, size_t *len,
                      int64_t *i) {
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT value FROM oplog_config WHERE name = ?1", -1, &s,
                             NULL);
  int rc = OPLOG_OK;
  if (r == SQLITE_OK) {
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
      if (i) *i = sqlite3_column_int64(s, 0);
      if (out) {
        const void *p = sqlite3_column_blob(s, 0);
        size_t n = (size_t)sqlite3_column_bytes(s, 0);
        if (n > cap) n = cap;
        if (n) memcpy(out, p, n);
        if (len) *len = n;
      }
    } else if (r == SQLITE_DONE) {
      rc = opl_db_error(db, OPLOG_CORRUPT, "oplog_config has no '%s'", name);
    }
  }
  if (r != SQLITE_ROW && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  return rc;
}

/* Derives or loads the root key named by src into root (sodium_malloc'd).
 * For a passphrase: new = fresh salt and src limits, stored by the caller. */
static int root_from_source(oplog_db *db, const oplog_key_source *src, unsigned char *root,
                            const unsigned char salt[SALT_BYTES], unsigned long long ops,
                            size_t mem) {
  if (src->key_file) return read_key_file(db, src->key_file, root);
  if (src->key) {
    if (src->key_len != OPLOG_KEY_BYTES)
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "key must be 32 bytes, got %llu", (unsigned long long)src->key_len);
    memcpy(root, src->key, OPLOG_KEY_BYTES);
    return OPLOG_OK;
  }
  size_t plen = src->passphrase_len ? src->passphrase_len : strlen(src->passphrase);
  if (plen == 0) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "passphrase must not be empty");
  if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_MAX ||
      mem < crypto_pwhash_MEMLIMIT_MIN || mem > crypto_pwhash_MEMLIMIT_MAX)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                    "kdf limits out of range: ops from %u to %u, mem from %u to %llu bytes",
                    (unsigned)crypto_pwhash_OPSLIMIT_MIN, (unsigned)crypto_pwhash_OPSLIMIT_MAX,
                    (unsigned)crypto_pwhash_MEMLIMIT_MIN, (unsigned long long)crypto_pwhash_MEMLIMIT_MAX);
  if (crypto_pwhash(root, OPLOG_KEY_BYTES, src->passphrase, plen, salt, ops, mem,
                    crypto_pwhash_ALG_ARGON2ID13) != 0)
    return opl_db_error(db, OPLOG_NOMEM, "Argon2id needs %llu bytes of memory it could not get", (unsigned long long)mem);
  return OPLOG_OK;
}

/* Format 2 binds a data key to its origin and id; format 1 (a file read
 * as it is, origin_id NULL) to its id only. */
#define WRAP_AD_MAX (sizeof WRAP_AD2 - 1 + OPLOG_ORIGIN_BYTES + 8)
static size_t wrap_ad(uint8_t ad[WRAP_AD_MAX], const uint8_t *origin_id, int64_t id) {
  if (!origin_id) {
    memcpy(ad, WRAP_AD, sizeof WRAP_AD - 1);
    opl_put_u64(ad + sizeof WRAP_AD - 1, (uint64_t)id);
    return sizeof WRAP_AD - 1 + 8;
  }
  memcpy(ad, WRAP_AD2, sizeof WRAP_AD2 - 1);
  memcpy(ad + sizeof WRAP_AD2 - 1, origin_id, OPLOG_ORIGIN_BYTES);
  opl_put_u64(ad + sizeof WRAP_AD2 - 1 + OPLOG_ORIGIN_BYTES, (uint64_t)id);
  return WRAP_AD_MAX;
}

int opl_crypto_unwrap(const unsigned char *root, const uint8_t *origin_id, int64_t id, const uint8_t *nonce,
                  size_t nnonce, const uint8_t *wrapped, size_t nwrapped, unsigned char key[OPLOG_KEY_BYTES]) {
  if (nnonce != OPLOG_NONCE_BYTES || nwrapped != OPLOG_KEY_BYTES + OPLOG_TAG_BYTES)
    return OPLOG_CORRUPT;
  uint8_t ad[WRAP_AD_MAX];
  size_t adlen = wrap_ad(ad, origin_id, id);
  unsigned long long klen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(key, &klen, NULL, wrapped, nwrapped, ad, adlen, nonce, root) != 0)
    return OPLOG_DECRYPT_FAILED;
  return OPLOG_OK;
}

static void wrap_key(const unsigned char *root, const uint8_t *origin_id, int64_t id, const unsigned char *key,
                     uint8_t nonce[OPLOG_NONCE_BYTES], uint8_t wrapped[OPLOG_KEY_BYTES + OPLOG_TAG_BYTES]) {
  uint8_t ad[WRAP_AD_MAX];
  size_t adlen = wrap_ad(ad, origin_id, id);
  randombytes_buf(nonce, OPLOG_NONCE_BYTES);
  unsigned long long wlen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped, &wlen, key, OPLOG_KEY_BYTES, ad, adlen, NULL, nonce, root);
}

/* The wrapping of an origin's seed: like a data key's, with its own tag. */
static void seed_ad(uint8_t ad[sizeof SEED_AD - 1 + OPLOG_ORIGIN_BYTES], const uint8_t *pk) {
  memcpy(ad, SEED_AD, sizeof SEED_AD - 1);
  memcpy(ad + sizeof SEED_AD - 1, pk, OPLOG_ORIGIN_BYTES);
}

/* Grows a locked key array by one slot (the old array is wiped). */
static data_key *keys_push(data_key **keys, size_t *n) {
  data_key *grown = sodium_malloc((*n + 1) * sizeof *grown);
  if (!grown) return NULL;
  if (*n) memcpy(grown, *keys, *n * sizeof *grown);
  if (*keys) sodium_free(*keys); /* sodium_free wipes */
  *keys = grown;
  return &grown[(*n)++];
}

static void keyring_wipe(keyring *kr) {
  if (kr->keys) sodium_free(kr->keys);
  kr->keys = NULL;
  kr->nkeys = 0;
}

/* (Re)loads every data key, unwrapping each with the root key. All or
 * nothing: on failure the keys loaded before stay in place. */
static int keyring_load(oplog_db *db) {
  keyring *kr = &db->kr;
  data_key *keys = NULL;
  size_t nkeys = 0;
  int64_t active = 0;
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT origin, id, nonce, wrapped FROM oplog_keys ORDER BY origin, id",
                             -1, &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  int rc = OPLOG_OK, good = 0, bad = 0;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    data_key *k = keys_push(&keys, &nkeys);
    if (!k) {
      rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    k->origin = sqlite3_column_int64(s, 0);
    k->id = sqlite3_column_int64(s, 1);
    const uint8_t *oid = NULL;
    if (db->format != 1 && !(oid = opl_origin_id(db, k->origin))) {
      rc = db->code;
      break;
    }
    int u = opl_crypto_unwrap(kr->root, oid, k->id, sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2),
                          sqlite3_column_blob(s, 3), (size_t)sqlite3_column_bytes(s, 3), k->key);
    if (u != OPLOG_OK) {
      nkeys--;
      bad++;
      continue;
    }
    good++;
    /* The key for new entries is this origin's newest key that unwraps:
     * authenticated, unlike the state column, which a writer of the file
     * could set back to 'active' on a retired key. */
    if (k->origin == 1 && k->id > active) active = k->id;
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  if (!rc && bad && !good) rc = opl_db_error(db, OPLOG_WRONG_KEY, "wrong key: it does not unwrap this file's data keys");
  if (!rc && bad) rc = opl_db_error(db, OPLOG_CORRUPT, "%d data key(s) in oplog_keys cannot be unwrapped", bad);
  if (!rc && !active) rc = opl_db_error(db, OPLOG_CORRUPT, "oplog_keys has no data key of this file's origin");
  if (rc) {
    if (keys) sodium_free(keys);
    return rc;
  }
  keyring_wipe(kr);
  kr->keys = keys;
  kr->nkeys = nkeys;
  kr->active = active;
  return OPLOG_OK;
}

static int insert_key(oplog_db *db, int64_t id, const uint8_t nonce[OPLOG_NONCE_BYTES],
                      const uint8_t wrapped[OPLOG_KEY_BYTES + OPLOG_TAG_BYTES], const char *state) {
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql,
                             "INSERT INTO oplog_keys (origin, id, created, state, nonce, wrapped) "
                             "VALUES (1, ?1, ?2, ?3, ?4, ?5)",
                             -1, &s, NULL);
  if (r == SQLITE_OK) {
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, opl_now_ms());
    sqlite3_bind_text(s, 3, state, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, nonce, OPLOG_NONCE_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, wrapped, OPLOG_KEY_BYTES + OPLOG_TAG_BYTES, SQLITE_STATIC);
    r = sqlite3_step(s);
  }
  sqlite3_finalize(s);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

/* ---------------------------------------------------------------- origins */

void opl_origins_forget(oplog_db *db) {
  db->norigins = 0;
  opl_hindex_free(&db->origins_ix);
}

const uint8_t *opl_origin_id(oplog_db *db, int64_t no) {
  size_t at = opl_hindex_find(&db->origins_ix, db->origins, sizeof *db->origins, sizeof no, &no);
  if (at != SIZE_MAX) return db->origins[at].id;
  sqlite3_stmt *s = opl_db_stmt(db, ST_ORIGIN_GET);
  if (!s) return NULL;
  sqlite3_bind_int64(s, 1, no);
  int r = sqlite3_step(s);
  const uint8_t *out = NULL;
  if (r == SQLITE_ROW && sqlite3_column_bytes(s, 0) == OPLOG_ORIGIN_BYTES) {
    struct origin_slot *grown = opl_grow(db->origins, &db->origins_cap, db->norigins, sizeof *grown);
    if (grown) {
      db->origins = grown;
      struct origin_slot *o = &grown[db->norigins++];
      o->no = no;
      memcpy(o->id, sqlite3_column_blob(s, 0), OPLOG_ORIGIN_BYTES);
      if (opl_hindex_add(&db->origins_ix, db->origins, sizeof *db->origins, sizeof no, db->norigins)) db->norigins--;
      else out = o->id;
    }
    if (!out) opl_db_error(db, OPLOG_NOMEM, "out of memory");
  } else if (r == SQLITE_ROW || r == SQLITE_DONE) {
    opl_db_error(db, OPLOG_CORRUPT, "origin %lld is not in oplog_origins", (long long)no);
  } else {
    opl_db_sqlerr(db, r);
  }
  sqlite3_reset(s);
  return out;
}

/* Writes origin 1's secret (seed) under `root`, or as is without one. */
static int store_seed(oplog_db *db, const unsigned char *root, const unsigned char *pk, const unsigned char *seed,
                      int insert) {
  uint8_t nonce[OPLOG_NONCE_BYTES], wrapped[OPLOG_KEY_BYTES + OPLOG_TAG_BYTES];
  if (root) {
    uint8_t ad[sizeof SEED_AD - 1 + OPLOG_ORIGIN_BYTES];
    seed_ad(ad, pk);
    randombytes_buf(nonce, sizeof nonce);
    crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped, NULL, seed, OPLOG_KEY_BYTES, ad, sizeof ad, NULL, nonce,
                                               root);
  }
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql,
                             insert ? "INSERT INTO oplog_origins (no, id, nonce, secret) VALUES (1, ?1, ?2, ?3)"
                                    : "UPDATE oplog_origins SET nonce = ?2, secret = ?3 WHERE no = 1 AND id = ?1",
                             -1, &s, NULL);
  if (r == SQLITE_OK) {
    sqlite3_bind_blob(s, 1, pk, OPLOG_ORIGIN_BYTES, SQLITE_STATIC);
    if (root) {
      sqlite3_bind_blob(s, 2, nonce, sizeof nonce, SQLITE_STATIC);
      sqlite3_bind_blob(s, 3, wrapped, sizeof wrapped, SQLITE_STATIC);
    } else {
      sqlite3_bind_blob(s, 3, seed, OPLOG_KEY_BYTES, SQLITE_STATIC);
    }
    r = sqlite3_step(s);
  }
  sqlite3_finalize(s);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

int opl_origin_create(oplog_db *db) {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES + crypto_sign_SEEDBYTES);
  if (!sk) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  unsigned char *seed = sk + crypto_sign_SECRETKEYBYTES;
  randombytes_buf(seed, crypto_sign_SEEDBYTES);
  crypto_sign_seed_keypair(pk, sk, seed);
  int rc = store_seed(db, db->kr.encrypted ? db->kr.root : NULL, pk, seed, 1);
  sodium_free(sk);
  if (rc) return rc;
  opl_origins_forget(db); /* no 1 is now this one */
  memcpy(db->self_id, pk, OPLOG_ORIGIN_BYTES);
  return OPLOG_OK;
}

/* Origin 1's seed: unwrapped with the loaded root key, or as stored in a
 * plaintext file. */
static int load_seed(oplog_db *db, unsigned char *seed, unsigned char pk[OPLOG_ORIGIN_BYTES]) {
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT id, nonce, secret FROM oplog_origins WHERE no = 1", -1, &s, NULL);
  int rc = OPLOG_OK;
  if (r == SQLITE_OK && (r = sqlite3_step(s)) == SQLITE_ROW) {
    uint8_t ad[sizeof SEED_AD - 1 + OPLOG_ORIGIN_BYTES];
    unsigned long long n = 0;
    int wrapped = db->kr.encrypted;
    if (sqlite3_column_bytes(s, 0) != OPLOG_ORIGIN_BYTES ||
        (wrapped && sqlite3_column_bytes(s, 1) != OPLOG_NONCE_BYTES) ||
        sqlite3_column_bytes(s, 2) != OPLOG_KEY_BYTES + (wrapped ? OPLOG_TAG_BYTES : 0)) {
      rc = opl_db_error(db, OPLOG_CORRUPT, "oplog_origins holds no %s secret for this file's origin",
                        wrapped ? "wrapped" : "plain");
    } else if (!wrapped) {
      memcpy(pk, sqlite3_column_blob(s, 0), OPLOG_ORIGIN_BYTES);
      memcpy(seed, sqlite3_column_blob(s, 2), OPLOG_KEY_BYTES);
    } else {
      memcpy(pk, sqlite3_column_blob(s, 0), OPLOG_ORIGIN_BYTES);
      seed_ad(ad, pk);
      if (crypto_aead_xchacha20poly1305_ietf_decrypt(seed, &n, NULL, sqlite3_column_blob(s, 2), OPLOG_KEY_BYTES + OPLOG_TAG_BYTES,
                                                     ad, sizeof ad, sqlite3_column_blob(s, 1), db->kr.root) != 0)
        rc = opl_db_error(db, OPLOG_CORRUPT, "the secret of this file's origin does not unwrap with its key");
    }
  } else {
    rc = r == SQLITE_DONE ? opl_db_error(db, OPLOG_CORRUPT, "oplog_origins has no origin 1") : opl_db_sqlerr(db, r);
  }
  sqlite3_finalize(s);
  return rc;
}

int opl_origin_secret(oplog_db *db, unsigned char *sk) {
  int rc = opl_key_required(db);
  if (rc) return rc;
  unsigned char pk[OPLOG_ORIGIN_BYTES], pk2[crypto_sign_PUBLICKEYBYTES];
  unsigned char *seed = sodium_malloc(OPLOG_KEY_BYTES);
  if (!seed) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  rc = load_seed(db, seed, pk);
  if (!rc) {
    crypto_sign_seed_keypair(pk2, sk, seed);
    /* a seed that does not make the stored public key is not this origin's */
    if (sodium_memcmp(pk, pk2, OPLOG_ORIGIN_BYTES) != 0)
      rc = opl_db_error(db, OPLOG_CORRUPT, "the secret of this file's origin does not match its id");
  }
  sodium_free(seed);
  if (rc) sodium_memzero(sk, crypto_sign_SECRETKEYBYTES);
  return rc;
}

int opl_crypto_rewrap_all(oplog_db *db, const unsigned char *root) {
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "UPDATE oplog_keys SET nonce = ?3, wrapped = ?4 WHERE origin = ?1 AND id = ?2",
                             -1, &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  int rc = OPLOG_OK;
  for (size_t i = 0; i < db->kr.nkeys && !rc; i++) {
    const data_key *k = &db->kr.keys[i];
    const uint8_t *oid = opl_origin_id(db, k->origin);
    if (!oid) {
      rc = db->code;
      break;
    }
    uint8_t nonce[OPLOG_NONCE_BYTES], wrapped[OPLOG_KEY_BYTES + OPLOG_TAG_BYTES];
    wrap_key(root, oid, k->id, k->key, nonce, wrapped);
    sqlite3_bind_int64(s, 1, k->origin);
    sqlite3_bind_int64(s, 2, k->id);
    sqlite3_bind_blob(s, 3, nonce, sizeof nonce, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, wrapped, sizeof wrapped, SQLITE_STATIC);
    r = sqlite3_step(s);
    if (r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
    else if (sqlite3_changes(db->sql) != 1)
      rc = opl_db_error(db, OPLOG_CORRUPT, "data key %lld of origin %lld vanished", (long long)k->id, (long long)k->origin);
    sqlite3_reset(s);
  }
  sqlite3_finalize(s);
  if (rc) return rc;
  /* and the origin's secret */
  unsigned char *seed = sodium_malloc(OPLOG_KEY_BYTES);
  unsigned char pk[OPLOG_ORIGIN_BYTES];
  if (!seed) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  rc = load_seed(db, seed, pk);
  if (!rc) rc = store_seed(db, root, pk, seed, 0);
  sodium_free(seed);
  return rc;
}

/* Writes the settings of a new root key source (mode and KDF parameters). */
static int store_source(oplog_db *db, const oplog_key_source *src, const unsigned char *salt,
                        unsigned long long ops, size_t mem) {
  int rc;
  if (src->passphrase) {
    if ((rc = config_set(db, "encryption", SQLITE_TEXT, "passphrase", 10, 0)) ||
        (rc = config_set(db, "kdf", SQLITE_TEXT, "argon2id13", 10, 0)) ||
        (rc = config_set(db, "kdf_salt", SQLITE_BLOB, salt, SALT_BYTES, 0)) ||
        (rc = config_set(db, "kdf_ops", SQLITE_INTEGER, NULL, 0, (int64_t)ops)) ||
        (rc = config_set(db, "kdf_mem", SQLITE_INTEGER, NULL, 0, (int64_t)mem)))
      return rc;
    return OPLOG_OK;
  }
  if ((rc = config_set(db, "encryption", SQLITE_TEXT, "key", 3, 0))) return rc;
  return opl_db_exec(db, "DELETE FROM oplog_config WHERE name LIKE 'kdf%'");
}

/* A fresh root key from src (new salt for a passphrase) into db->kr.root,
 * with its settings written in the current transaction. */
int opl_crypto_check_new_source(oplog_db *db, const oplog_key_source *src) {
  if (src->key && src->key_len != OPLOG_KEY_BYTES)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "key must be 32 bytes, got %llu", (unsigned long long)src->key_len);
  if (!src->passphrase) return OPLOG_OK;
  if (!src->passphrase_len && !*src->passphrase)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "passphrase must not be empty");
  unsigned long long ops = src->kdf_ops ? src->kdf_ops : DEFAULT_KDF_OPS;
  size_t mem = src->kdf_mem ? src->kdf_mem : DEFAULT_KDF_MEM;
  if (ops > crypto_pwhash_OPSLIMIT_MAX || mem > crypto_pwhash_MEMLIMIT_MAX)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "kdf limits out of range: ops at most %u, mem at most %llu bytes",
                    (unsigned)crypto_pwhash_OPSLIMIT_MAX, (unsigned long long)crypto_pwhash_MEMLIMIT_MAX);
  /* A new passphrase gets at least this much work per guess (OWASP's
   * lowest Argon2id setting is 7 MiB with 5 passes, 19 MiB with 2). */
  if (ops < OPLOG_KDF_OPS_MIN || mem < OPLOG_KDF_MEM_MIN)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                    "kdf limits too weak for a new passphrase: at least ops %llu and %llu bytes of memory",
                    (unsigned long long)OPLOG_KDF_OPS_MIN, (unsigned long long)OPLOG_KDF_MEM_MIN);
  /* nor more than an open would accept: the file could not be opened again */
  unsigned long long ops_max = src->kdf_ops_max ? src->kdf_ops_max : OPLOG_KDF_OPS_MAX;
  size_t mem_max = src->kdf_mem_max ? src->kdf_mem_max : OPLOG_KDF_MEM_MAX;
  if (ops > ops_max || mem > mem_max)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                    "kdf limits above kdf_limit (ops %llu, %llu bytes): the file could not be opened without raising it",
                    ops_max, (unsigned long long)mem_max);
  return OPLOG_OK;
}

static int new_root(oplog_db *db, const oplog_key_source *src, unsigned char *root) {
  unsigned char salt[SALT_BYTES];
  randombytes_buf(salt, sizeof salt);
  unsigned long long ops = src->kdf_ops ? src->kdf_ops : DEFAULT_KDF_OPS;
  size_t mem = src->kdf_mem ? src->kdf_mem : DEFAULT_KDF_MEM;
  int rc = opl_crypto_check_new_source(db, src);
  if (!rc) rc = root_from_source(db, src, root, salt, ops, mem);
  if (!rc) rc = store_source(db, src, salt, ops, mem);
  return rc;
}

static int alloc_root(oplog_db *db) {
  if (db->kr.root) return OPLOG_OK;
  db->kr.root = sodium_malloc(OPLOG_KEY_BYTES);
  return db->kr.root ? OPLOG_OK : opl_db_error(db, OPLOG_NOMEM, "out of memory for the key");
}

int opl_crypto_open(oplog_db *db, const oplog_key_source *src, int is_new) {
  keyring *kr = &db->kr;
  int rc;
  if (is_new) {
    if ((rc = config_set(db, "format", SQLITE_INTEGER, NULL, 0, OPLOG_FORMAT_VERSION)) ||
        (rc = config_set(db, "created", SQLITE_INTEGER, NULL, 0, opl_now_ms())))
      return rc;
    if (src->no_encryption) {
      if ((rc = config_set(db, "encryption", SQLITE_TEXT, "none", 4, 0))) return rc;
      return opl_origin_create(db);
    }
    if ((rc = alloc_root(db)) || (rc = new_root(db, src, kr->root))) return rc;
    kr->encrypted = 1;
    if ((rc = opl_origin_create(db))) return rc;
    data_key *k = keys_push(&kr->keys, &kr->nkeys);
    if (!k) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
    k->origin = 1;
    k->id = 1;
    crypto_aead_xchacha20poly1305_ietf_keygen(k->key);
    kr->active = 1;
    kr->have_key = 1;
    uint8_t nonce[OPLOG_NONCE_BYTES], wrapped[OPLOG_KEY_BYTES + OPLOG_TAG_BYTES];
    wrap_key(kr->root, db->self_id, 1, k->key, nonce, wrapped);
    return insert_key(db, 1, nonce, wrapped, "active");
  }
  char mode[16] = {0};
  size_t mlen = 0;
  if ((rc = config_get(db, "encryption", mode, sizeof mode - 1, &mlen, NULL))) return rc;
  int choice = src->key_file || src->key || src->passphrase;
  if (strcmp(mode, "none") == 0) {
    if (choice)
      return opl_db_error(db, OPLOG_WRONG_KEY,
                      "the file is not encrypted; open it with encryption = false");
    return OPLOG_OK;
  }
  int pass_mode = strcmp(mode, "passphrase") == 0;
  if (!pass_mode && strcmp(mode, "key") != 0)
    return opl_db_error(db, OPLOG_CORRUPT, "unknown encryption mode '%s'", mode);
  kr->encrypted = 1;
  if (src->no_encryption)
    return opl_db_error(db, OPLOG_KEY_REQUIRED, "the file is encrypted: open it with its %s",
                    pass_mode ? "passphrase" : "key");
  if (!choice) return OPLOG_OK; /* keyless: chain, head, stats, catalog only */
  if (pass_mode != (src->passphrase != NULL))
    return opl_db_error(db, OPLOG_WRONG_KEY, "the file is encrypted with a %s, not a %s",
                    pass_mode ? "passphrase" : "key", pass_mode ? "key" : "passphrase");
  unsigned char salt[SALT_BYTES];
  int64_t ops = 0, mem = 0;
  size_t slen = 0;
  if (pass_mode) {
    if ((rc = config_get(db, "kdf_salt", salt, sizeof salt, &slen, NULL)) ||
        (rc = config_get(db, "kdf_ops", NULL, 0, NULL, &ops)) ||
        (rc = config_get(db, "kdf_mem", NULL, 0, NULL, &mem)))
      return rc;
    if (slen != SALT_BYTES || ops <= 0 || mem <= 0)
      return opl_db_error(db, OPLOG_CORRUPT, "bad passphrase settings in oplog_config");
    /* The file says how much work and memory the KDF takes: a hostile or
     * foreign one must not exhaust the device. */
    unsigned long long ops_max = src->kdf_ops_max ? src->kdf_ops_max : OPLOG_KDF_OPS_MAX;
    size_t mem_max = src->kdf_mem_max ? src->kdf_mem_max : OPLOG_KDF_MEM_MAX;
    if ((unsigned long long)ops > ops_max || (uint64_t)mem > (uint64_t)mem_max || (uint64_t)mem > SIZE_MAX)
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                      "the file's passphrase asks Argon2id for ops %lld and %lld bytes, more than the limit "
                      "(ops %llu, %llu bytes): raise kdf_limit to open it",
                      (long long)ops, (long long)mem, ops_max, (unsigned long long)mem_max);
  }
  if ((rc = alloc_root(db)) ||
      (rc = root_from_source(db, src, kr->root, salt, (unsigned long long)ops, (size_t)mem)))
    return rc;
  kr->have_key = 1;
  rc = keyring_load(db);
  if (rc) kr->have_key = 0;
  return rc;
}

void opl_crypto_close(oplog_db *db) {
  keyring_wipe(&db->kr);
  if (db->kr.root) {
    sodium_memzero(db->kr.root, OPLOG_KEY_BYTES);
    sodium_free(db->kr.root);
  }
  db->kr.root = NULL;
  db->kr.have_key = 0;
}

#define DATA_AD2 "oplog-data-v2"

/* The additional data of an entry's encryption (FORMAT.md "Entry data"):
 * format 2 binds the ciphertext to everything stored in the clear for the
 * entry that travels with it, never to the local id. */
static int entry_ad(oplog_db *db, const stored_entry *e, buf *ad) {
  uint8_t n[8 * 4];
  ad->n = 0;
  int bad;
  if (e->format == 1) {
    n[0] = 1;
    opl_put_u64(n + 1, (uint64_t)e->seq);
    opl_put_u64(n + 9, (uint64_t)e->key_id);
    opl_put_u32(n + 17, (uint32_t)e->aggregate_len);
    bad = opl_buf_append(ad, n, 21) || opl_buf_append(ad, e->aggregate, e->aggregate_len);
  } else {
    bad = opl_buf_append(ad, DATA_AD2, sizeof DATA_AD2 - 1) || opl_buf_append(ad, e->origin_id, OPLOG_ORIGIN_BYTES);
    opl_put_u64(n, (uint64_t)e->seq);
    opl_put_u64(n + 8, (uint64_t)e->clock);
    opl_put_u64(n + 16, (uint64_t)e->created);
    opl_put_u64(n + 24, (uint64_t)e->key_id);
    bad = bad || opl_buf_append(ad, n, sizeof n);
    opl_put_u32(n, (uint32_t)e->aggregate_len);
    bad = bad || opl_buf_append(ad, n, 4) || opl_buf_append(ad, e->aggregate, e->aggregate_len);
    opl_put_u32(n, (uint32_t)e->nmetadata);
    bad = bad || opl_buf_append(ad, n, 4) || opl_buf_append(ad, e->metadata, e->nmetadata);
  }
  return bad ? opl_db_error(db, OPLOG_NOMEM, "out of memory") : OPLOG_OK;
}

static const unsigned char *find_key(oplog_db *db, int64_t origin, int64_t id) {
  for (size_t i = 0; i < db->kr.nkeys; i++)
    if (db->kr.keys[i].id == id && db->kr.keys[i].origin == origin) return db->kr.keys[i].key;
  return NULL;
}

int opl_key_required(oplog_db *db) {
  if (db->kr.encrypted && !db->kr.have_key)
    return opl_db_error(db, OPLOG_KEY_REQUIRED, "the file is encrypted and was opened without its key");
  return OPLOG_OK;
}

int opl_crypto_encrypt_entry(oplog_db *db, stored_entry *e, const uint8_t *plain, size_t n, buf *out) {
  if (!db->kr.encrypted) {
    e->key_id = 0;
    return opl_buf_append(out, plain, n) ? opl_db_error(db, OPLOG_NOMEM, "out of memory") : OPLOG_OK;
  }
  int rc = opl_key_required(db);
  if (rc) return rc;
  const unsigned char *key = find_key(db, e->origin, db->kr.active);
  if (!key) {
    /* a rotation or rekey committed but could not reload the keys */
    if ((rc = keyring_load(db))) return rc;
    if (!(key = find_key(db, e->origin, db->kr.active))) return opl_db_error(db, OPLOG_CORRUPT, "no active data key is loaded");
  }
  e->key_id = db->kr.active;
  if ((rc = entry_ad(db, e, &db->adbuf))) return rc;
  if (opl_buf_reserve(out, OPLOG_NONCE_BYTES + n + OPLOG_TAG_BYTES)) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  uint8_t *nonce = out->p + out->n;
  randombytes_buf(nonce, OPLOG_NONCE_BYTES);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + OPLOG_NONCE_BYTES, &clen, plain, n, db->adbuf.p, db->adbuf.n,
                                             NULL, nonce, key);
  out->n += OPLOG_NONCE_BYTES + (size_t)clen;
  return OPLOG_OK;
}

int opl_crypto_decrypt_entry(oplog_db *db, const stored_entry *e, buf *out) {
  const uint8_t *data = e->data;
  size_t n = e->ndata;
  if (e->key_id == 0) {
    if (db->kr.encrypted)
      return opl_db_error(db, OPLOG_DECRYPT_FAILED, "entry %lld is not encrypted in an encrypted file", (long long)e->id);
    return opl_buf_append(out, data, n) ? opl_db_error(db, OPLOG_NOMEM, "out of memory") : OPLOG_OK;
  }
  if (!db->kr.encrypted)
    return opl_db_error(db, OPLOG_DECRYPT_FAILED, "entry %lld claims key %lld in a plaintext file", (long long)e->id,
                    (long long)e->key_id);
  int rc = opl_key_required(db);
  if (rc) return rc;
  const unsigned char *key = find_key(db, e->origin, e->key_id);
  if (!key) {
    /* another connection may have rotated the key since we loaded ours */
    if ((rc = keyring_load(db))) return rc;
    key = find_key(db, e->origin, e->key_id);
  }
  if (!key || n < OPLOG_NONCE_BYTES + OPLOG_TAG_BYTES)
    return opl_db_error(db, OPLOG_DECRYPT_FAILED, "entry %lld cannot be decrypted%s", (long long)e->id,
                    key ? " (data too short)" : " (unknown key id)");
  size_t plen = n - OPLOG_NONCE_BYTES - OPLOG_TAG_BYTES;
  if ((rc = entry_ad(db, e, &db->adbuf))) return rc;
  if (opl_buf_reserve(out, plen)) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  unsigned long long mlen = 0;
  int bad = crypto_aead_xchacha20poly1305_ietf_decrypt(out->p + out->n, &mlen, NULL, data + OPLOG_NONCE_BYTES,
                                                       n - OPLOG_NONCE_BYTES, db->adbuf.p, db->adbuf.n, data, key);
  if (bad)
    return opl_db_error(db, OPLOG_DECRYPT_FAILED, "entry %lld cannot be decrypted (authentication failed)", (long long)e->id);
  out->n += (size_t)mlen;
  return OPLOG_OK;
}

/* ---------------------------------------------------------------- passphrase from a descriptor */

#define PASSPHRASE_FD_MAX 1024

int opl_passphrase_read_fd(int fd, char **out, size_t *n) {
  *out = NULL;
  *n = 0;
  char *p = sodium_malloc(PASSPHRASE_FD_MAX + 1);
  if (!p) return ENOMEM;
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, p + len, 1); /* a byte at a time: what follows the newline stays unread */
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      sodium_free(p);
      return e;
    }
    if (r == 0 || p[len] == '\n') break;
    if (++len > PASSPHRASE_FD_MAX) {
      sodium_free(p);
      return E2BIG;
    }
  }
  if (len && p[len - 1] == '\r') len--;
  p[len] = 0;
  *out = p;
  *n = len;
  return 0;
}

void opl_passphrase_free(char *p) {
  if (p) sodium_free(p); /* sodium_free wipes */
}

/* ---------------------------------------------------------------- public key API */

int oplog_keygen(const char *path, char *errbuf, size_t errlen) {
  if (errbuf && errlen) errbuf[0] = 0;
  if (!path || !*path) {
    if (errbuf) snprintf(errbuf, errlen, "path must be a non-empty string");
    return OPLOG_INVALID_ARGUMENT;
  }
  if (sodium_init() < 0) return OPLOG_IO;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errbuf) snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
    return OPLOG_IO;
  }
  unsigned char key[OPLOG_KEY_BYTES];
  char hex[2 * OPLOG_KEY_BYTES + 2];
  randombytes_buf(key, sizeof key);
  sodium_bin2hex(hex, sizeof hex, key, sizeof key);
  hex[2 * OPLOG_KEY_BYTES] = '\n';
  size_t left = 2 * OPLOG_KEY_BYTES + 1, off = 0;
  int rc = OPLOG_OK;
  while (left) {
    ssize_t w = write(fd, hex + off, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (errbuf) snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
      rc = OPLOG_IO;
      break;
    }
    off += (size_t)w;
    left -= (size_t)w;
  }
  if (!rc && fsync(fd) != 0) {
    if (errbuf) snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
    rc = OPLOG_IO;
  }
  close(fd);
  if (rc) unlink(path);
  sodium_memzero(key, sizeof key);
  sodium_memzero(hex, sizeof hex);
  return rc;
}

int oplog_keys(oplog_db *db, int (*each)(void *, int64_t, int64_t, const char *), void *ctx) {
  if (!db || !each) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT id, created, state FROM oplog_keys WHERE origin = 1 ORDER BY id", -1,
                             &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  int rc = OPLOG_OK;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    char *state = opl_col_dup(s, 2);
    if (!state) {
      rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    rc = each(ctx, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1), state);
    sqlite3_free(state);
    if (rc) break;
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  return rc;
}

static int key_admin_check(oplog_db *db) {
  if (db->tx != TX_NONE)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "finish the open transaction first");
  if (db->readonly) return opl_db_error(db, OPLOG_READONLY, "the file is open read-only");
  if (!db->kr.encrypted) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "the file is not encrypted");
  return opl_key_required(db);
}

/* After a committed change of the keys: load them. That cannot undo the
 * change, so a failure here is not the caller's; the next entry loads the
 * keys again before it picks one (the active key is unknown until then). */
static void keys_committed(oplog_db *db) {
  if (keyring_load(db) != OPLOG_OK) {
    db->kr.active = 0;
    opl_db_clear_error(db);
  }
}

/* Retires this origin's active key and adds a new one, wrapped under
 * root, in the caller's transaction (with the keyring loaded in it). */
static int add_key(oplog_db *db, const unsigned char *root, int64_t *new_id) {
  int64_t id = 0;
  for (size_t i = 0; i < db->kr.nkeys; i++)
    if (db->kr.keys[i].origin == 1 && db->kr.keys[i].id > id) id = db->kr.keys[i].id;
  id++;
  unsigned char *key = sodium_malloc(OPLOG_KEY_BYTES);
  if (!key) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  crypto_aead_xchacha20poly1305_ietf_keygen(key);
  int rc = opl_db_exec(db, "UPDATE oplog_keys SET state = 'retired' WHERE origin = 1 AND state = 'active'");
  if (!rc) {
    uint8_t nonce[OPLOG_NONCE_BYTES], wrapped[OPLOG_KEY_BYTES + OPLOG_TAG_BYTES];
    wrap_key(root, db->self_id, id, key, nonce, wrapped);
    rc = insert_key(db, id, nonce, wrapped, "active");
  }
  sodium_free(key); /* sodium_free wipes */
  if (!rc && new_id) *new_id = id;
  return rc;
}

int oplog_rotate_key(oplog_db *db, int64_t *new_id) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  int rc = key_admin_check(db);
  if (rc) return rc;
  if ((rc = opl_db_begin(db, 1))) return rc;
  int64_t id = 0;
  if ((rc = keyring_load(db)) || /* see keys rotated elsewhere */
      (rc = add_key(db, db->kr.root, &id)) || (rc = opl_db_commit(db)))
    goto fail;
  keys_committed(db);
  if (new_id) *new_id = id;
  return OPLOG_OK;
fail:
  opl_db_rollback(db);
  keyring_load(db);
  return rc;
}

static int rekey(oplog_db *db, const oplog_key_source *src);

int oplog_rekey(oplog_db *db, const oplog_key_source *src) {
  if (!db || !src) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (!src->passphrase_from_fd) return rekey(db, src);
  if (src->passphrase) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "passphrase and passphrase_fd exclude each other");
  oplog_key_source copy = *src;
  char *secret;
  int e = opl_passphrase_read_fd(src->passphrase_fd, &secret, &copy.passphrase_len);
  if (e) return opl_db_error(db, e == ENOMEM ? OPLOG_NOMEM : OPLOG_IO, "passphrase from descriptor %d: %s", src->passphrase_fd, strerror(e));
  copy.passphrase = secret;
  copy.passphrase_from_fd = 0;
  int rc = rekey(db, &copy);
  opl_passphrase_free(secret);
  return rc;
}

static int rekey(oplog_db *db, const oplog_key_source *src) {
  int rc = key_admin_check(db);
  if (rc) return rc;
  int n = (src->key_file != NULL) + (src->key != NULL) + (src->passphrase != NULL);
  if (n != 1 || src->no_encryption)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "rekey needs exactly one of key_file, key or passphrase");
  unsigned char *root = sodium_malloc(OPLOG_KEY_BYTES);
  if (!root) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  if ((rc = opl_db_begin(db, 1))) goto done;
  /* Re-wrap every key and the origin's secret in this one transaction (a
   * crash leaves the old root key or the new one working, never neither),
   * and start a new data key: whoever kept the old root key and a copy of
   * the file reads nothing written after the rekey. */
  if ((rc = keyring_load(db)) || (rc = new_root(db, src, root)) || (rc = opl_crypto_rewrap_all(db, root)) ||
      (rc = add_key(db, root, NULL)) || (rc = opl_db_commit(db)))
    goto fail;
  memcpy(db->kr.root, root, OPLOG_KEY_BYTES);
  keys_committed(db);
  goto done;
fail:
  opl_db_rollback(db);
done:
  sodium_free(root);
  return rc;
}

/* ---------------------------------------------------------------- sync: data keys sealed to a recipient
 * A stream carries the data keys its entries need, each sealed
 * (crypto_box_seal) to the X25519 form of the recipient's Ed25519 origin
 * key; the sealed plaintext names the key's origin and id, so that a key
 * cannot be passed off as another (FORMAT.md "Stream"). */

#define SEALED_PLAIN (OPLOG_ORIGIN_BYTES + 8 + OPLOG_KEY_BYTES)

int opl_keyring_reload(oplog_db *db) {
  if (!db->kr.encrypted || !db->kr.have_key) return OPLOG_OK;
  return keyring_load(db);
}

int opl_crypto_seal_key(oplog_db *db, int64_t origin, int64_t id, const unsigned char xpk[crypto_box_PUBLICKEYBYTES],
                        uint8_t out[OPL_SEALED_KEY_BYTES]) {
  int rc = opl_key_required(db);
  if (rc) return rc;
  const uint8_t *oid = opl_origin_id(db, origin);
  if (!oid) return db->code;
  const unsigned char *key = find_key(db, origin, id);
  if (!key) {
    if ((rc = keyring_load(db))) return rc; /* rotated by another connection since */
    if (!(key = find_key(db, origin, id)))
      return opl_db_error(db, OPLOG_CORRUPT, "data key %lld of origin %lld is not in oplog_keys", (long long)id,
                          (long long)origin);
  }
  unsigned char *plain = sodium_malloc(SEALED_PLAIN);
  if (!plain) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  memcpy(plain, oid, OPLOG_ORIGIN_BYTES);
  opl_put_u64(plain + OPLOG_ORIGIN_BYTES, (uint64_t)id);
  memcpy(plain + OPLOG_ORIGIN_BYTES + 8, key, OPLOG_KEY_BYTES);
  crypto_box_seal(out, plain, SEALED_PLAIN, xpk);
  sodium_free(plain); /* wipes */
  return OPLOG_OK;
}

int opl_origin_box_keypair(oplog_db *db, unsigned char xpk[crypto_box_PUBLICKEYBYTES], unsigned char *xsk) {
  unsigned char *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
  if (!sk) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  int rc = opl_origin_secret(db, sk);
  if (!rc && (crypto_sign_ed25519_sk_to_curve25519(xsk, sk) != 0 ||
              crypto_sign_ed25519_pk_to_curve25519(xpk, db->self_id) != 0))
    rc = opl_db_error(db, OPLOG_CORRUPT, "this file's origin key has no X25519 form");
  sodium_free(sk);
  return rc;
}

int opl_crypto_add_sealed_key(oplog_db *db, int64_t no, const uint8_t *origin_id, int64_t id, int64_t created,
                              const uint8_t *sealed, size_t n, const unsigned char xpk[crypto_box_PUBLICKEYBYTES],
                              const unsigned char *xsk) {
  int rc = opl_key_required(db);
  if (rc) return rc;
  if (n != OPL_SEALED_KEY_BYTES || id < 1)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: a sealed data key is malformed");
  unsigned char *plain = sodium_malloc(SEALED_PLAIN + OPLOG_KEY_BYTES);
  if (!plain) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  unsigned char *held = plain + SEALED_PLAIN;
  uint8_t id_le[8];
  opl_put_u64(id_le, (uint64_t)id);
  sqlite3_stmt *s = NULL;
  if (crypto_box_seal_open(plain, sealed, n, xpk, xsk) != 0) {
    rc = opl_db_error(db, OPLOG_CORRUPT, "stream: data key %lld does not unseal with this file's origin key", (long long)id);
    goto done;
  }
  if (memcmp(plain, origin_id, OPLOG_ORIGIN_BYTES) != 0 || memcmp(plain + OPLOG_ORIGIN_BYTES, id_le, 8) != 0) {
    rc = opl_db_error(db, OPLOG_CORRUPT, "stream: sealed data key %lld names another origin or id", (long long)id);
    goto done;
  }
  int r = sqlite3_prepare_v2(db->sql, "SELECT nonce, wrapped FROM oplog_keys WHERE origin = ?1 AND id = ?2", -1, &s, NULL);
  if (r != SQLITE_OK) {
    rc = opl_db_sqlerr(db, r);
    goto done;
  }
  sqlite3_bind_int64(s, 1, no);
  sqlite3_bind_int64(s, 2, id);
  r = sqlite3_step(s);
  if (r == SQLITE_ROW) {
    /* held already (this file's own key, or one imported before): it must
     * be the same key, else the entries it encrypts are not the sender's */
    if (opl_crypto_unwrap(db->kr.root, origin_id, id, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0),
                          sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1), held) != OPLOG_OK ||
        sodium_memcmp(held, plain + OPLOG_ORIGIN_BYTES + 8, OPLOG_KEY_BYTES) != 0)
      rc = opl_db_error(db, OPLOG_CORRUPT, "stream: data key %lld of origin %lld differs from the one held", (long long)id,
                        (long long)no);
    goto done;
  }
  if (r != SQLITE_DONE) {
    rc = opl_db_sqlerr(db, r);
    goto done;
  }
  /* A new key of this file's own origin would become the key for new
   * entries (the highest id): only this file makes those. */
  if (no == 1) {
    rc = opl_db_error(db, OPLOG_CORRUPT, "stream: brings a data key (%lld) of this file's own origin that it never made",
                      (long long)id);
    goto done;
  }
  sqlite3_finalize(s);
  s = NULL;
  r = sqlite3_prepare_v2(db->sql,
                         "INSERT INTO oplog_keys (origin, id, created, state, nonce, wrapped) "
                         "VALUES (?1, ?2, ?3, 'retired', ?4, ?5)",
                         -1, &s, NULL);
  if (r == SQLITE_OK) {
    uint8_t nonce[OPLOG_NONCE_BYTES], wrapped[OPLOG_KEY_BYTES + OPLOG_TAG_BYTES];
    wrap_key(db->kr.root, origin_id, id, plain + OPLOG_ORIGIN_BYTES + 8, nonce, wrapped);
    sqlite3_bind_int64(s, 1, no);
    sqlite3_bind_int64(s, 2, id);
    sqlite3_bind_int64(s, 3, created);
    sqlite3_bind_blob(s, 4, nonce, sizeof nonce, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, wrapped, sizeof wrapped, SQLITE_STATIC);
    r = sqlite3_step(s);
  }
  if (r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
done:
  sqlite3_finalize(s);
  sodium_free(plain); /* wipes */
  return rc;
}
