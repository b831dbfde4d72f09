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
#include <unistd.h>

#include "internal.h"

#define WRAP_AD "oplog.v1.data-key"
#define SALT_BYTES crypto_pwhash_SALTBYTES
#define DEFAULT_KDF_OPS 2ULL
#define DEFAULT_KDF_MEM (64u * 1024 * 1024)

static int read_key_file(oplog_db *db, const char *path, unsigned char out[OPLOG_KEY_BYTES]) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return db_error(db, errno == ENOENT ? OPLOG_NOT_FOUND : OPLOG_IO, "key file %s: %s", path,
                    strerror(errno));
  unsigned char raw[160];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof raw && (r = read(fd, raw + n, sizeof raw - n)) != 0) {
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      sodium_memzero(raw, sizeof raw);
      return db_error(db, OPLOG_IO, "key file %s: %s", path, strerror(e));
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
    rc = db_error(db, OPLOG_INVALID_ARGUMENT,
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
  return r == SQLITE_DONE ? OPLOG_OK : db_sqlerr(db, r);
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
      rc = db_error(db, OPLOG_CORRUPT, "oplog_config has no '%s'", name);
    }
  }
  if (r != SQLITE_ROW && r != SQLITE_DONE) rc = db_sqlerr(db, r);
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
      return db_error(db, OPLOG_INVALID_ARGUMENT, "key must be 32 bytes, got %llu", (unsigned long long)src->key_len);
    memcpy(root, src->key, OPLOG_KEY_BYTES);
    return OPLOG_OK;
  }
  size_t plen = src->passphrase_len ? src->passphrase_len : strlen(src->passphrase);
  if (plen == 0) return db_error(db, OPLOG_INVALID_ARGUMENT, "passphrase must not be empty");
  if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_MAX ||
      mem < crypto_pwhash_MEMLIMIT_MIN || mem > crypto_pwhash_MEMLIMIT_MAX)
    return db_error(db, OPLOG_INVALID_ARGUMENT,
                    "kdf limits out of range: ops from %u to %u, mem from %u to %llu bytes",
                    (unsigned)crypto_pwhash_OPSLIMIT_MIN, (unsigned)crypto_pwhash_OPSLIMIT_MAX,
                    (unsigned)crypto_pwhash_MEMLIMIT_MIN, (unsigned long long)crypto_pwhash_MEMLIMIT_MAX);
  if (crypto_pwhash(root, OPLOG_KEY_BYTES, src->passphrase, plen, salt, ops, mem,
                    crypto_pwhash_ALG_ARGON2ID13) != 0)
    return db_error(db, OPLOG_NOMEM, "Argon2id needs %llu bytes of memory it could not get", (unsigned long long)mem);
  return OPLOG_OK;
}

static void wrap_ad(uint8_t ad[sizeof WRAP_AD - 1 + 8], int64_t id) {
  memcpy(ad, WRAP_AD, sizeof WRAP_AD - 1);
  put_u64(ad + sizeof WRAP_AD - 1, (uint64_t)id);
}

int crypto_unwrap(const unsigned char *root, int64_t id, const uint8_t *nonce, size_t nnonce,
                  const uint8_t *wrapped, size_t nwrapped, unsigned char key[OPLOG_KEY_BYTES]) {
  if (nnonce != OPLOG_NONCE_BYTES || nwrapped != OPLOG_KEY_BYTES + OPLOG_TAG_BYTES)
    return OPLOG_CORRUPT;
  uint8_t ad[sizeof WRAP_AD - 1 + 8];
  wrap_ad(ad, id);
  unsigned long long klen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(key, &klen, NULL, wrapped, nwrapped, ad,
                                                 sizeof ad, nonce, root) != 0)
    return OPLOG_DECRYPT_FAILED;
  return OPLOG_OK;
}

static int wrap_key(const unsigned char *root, int64_t id, const unsigned char *key,
                    uint8_t nonce[OPLOG_NONCE_BYTES],
                    uint8_t wrapped[OPLOG_KEY_BYTES + OPLOG_TAG_BYTES]) {
  uint8_t ad[sizeof WRAP_AD - 1 + 8];
  wrap_ad(ad, id);
  randombytes_buf(nonce, OPLOG_NONCE_BYTES);
  unsigned long long wlen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped, &wlen, key, OPLOG_KEY_BYTES, ad, sizeof ad,
                                             NULL, nonce, root);
  return OPLOG_OK;
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
  int r = sqlite3_prepare_v2(db->sql, "SELECT id, state, nonce, wrapped FROM oplog_keys ORDER BY id",
                             -1, &s, NULL);
  if (r != SQLITE_OK) return db_sqlerr(db, r);
  int rc = OPLOG_OK, good = 0, bad = 0;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    data_key *k = keys_push(&keys, &nkeys);
    if (!k) {
      rc = db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    k->id = sqlite3_column_int64(s, 0);
    size_t sn;
    const char *state = col_bytes(s, 1, &sn);
    int u = crypto_unwrap(kr->root, k->id, sqlite3_column_blob(s, 2),
                          (size_t)sqlite3_column_bytes(s, 2), sqlite3_column_blob(s, 3),
                          (size_t)sqlite3_column_bytes(s, 3), k->key);
    if (u != OPLOG_OK) {
      nkeys--;
      bad++;
      continue;
    }
    good++;
    if (sn == 6 && memcmp(state, "active", 6) == 0) active = k->id;
  }
  if (!rc && r != SQLITE_DONE) rc = db_sqlerr(db, r);
  sqlite3_finalize(s);
  if (!rc && bad && !good) rc = db_error(db, OPLOG_WRONG_KEY, "wrong key: it does not unwrap this file's data keys");
  if (!rc && bad) rc = db_error(db, OPLOG_CORRUPT, "%d data key(s) in oplog_keys cannot be unwrapped", bad);
  if (!rc && (!good || !active)) rc = db_error(db, OPLOG_CORRUPT, "oplog_keys has no active data key");
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

static int insert_key(oplog_db *db, int64_t id, const unsigned char *key, const char *state) {
  uint8_t nonce[OPLOG_NONCE_BYTES], wrapped[OPLOG_KEY_BYTES + OPLOG_TAG_BYTES];
  wrap_key(db->kr.root, id, key, nonce, wrapped);
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql,
                             "INSERT INTO oplog_keys (id, created, state, nonce, wrapped) "
                             "VALUES (?1, ?2, ?3, ?4, ?5)",
                             -1, &s, NULL);
  if (r == SQLITE_OK) {
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms());
    sqlite3_bind_text(s, 3, state, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, nonce, sizeof nonce, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, wrapped, sizeof wrapped, SQLITE_STATIC);
    r = sqlite3_step(s);
  }
  sqlite3_finalize(s);
  return r == SQLITE_DONE ? OPLOG_OK : db_sqlerr(db, r);
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
  return db_exec(db, "DELETE FROM oplog_config WHERE name LIKE 'kdf%'");
}

/* A fresh root key from src (new salt for a passphrase) into db->kr.root,
 * with its settings written in the current transaction. */
static int new_root(oplog_db *db, const oplog_key_source *src, unsigned char *root) {
  unsigned char salt[SALT_BYTES];
  randombytes_buf(salt, sizeof salt);
  unsigned long long ops = src->kdf_ops ? src->kdf_ops : DEFAULT_KDF_OPS;
  size_t mem = src->kdf_mem ? src->kdf_mem : DEFAULT_KDF_MEM;
  int rc = root_from_source(db, src, root, salt, ops, mem);
  if (!rc) rc = store_source(db, src, salt, ops, mem);
  return rc;
}

static int alloc_root(oplog_db *db) {
  if (db->kr.root) return OPLOG_OK;
  db->kr.root = sodium_malloc(OPLOG_KEY_BYTES);
  return db->kr.root ? OPLOG_OK : db_error(db, OPLOG_NOMEM, "out of memory for the key");
}

int crypto_open(oplog_db *db, const oplog_key_source *src, int is_new) {
  keyring *kr = &db->kr;
  int rc;
  if (is_new) {
    if ((rc = config_set(db, "format", SQLITE_INTEGER, NULL, 0, OPLOG_FORMAT_VERSION)) ||
        (rc = config_set(db, "created", SQLITE_INTEGER, NULL, 0, now_ms())))
      return rc;
    if (src->no_encryption) return config_set(db, "encryption", SQLITE_TEXT, "none", 4, 0);
    if ((rc = alloc_root(db)) || (rc = new_root(db, src, kr->root))) return rc;
    data_key *k = keys_push(&kr->keys, &kr->nkeys);
    if (!k) return db_error(db, OPLOG_NOMEM, "out of memory");
    k->id = 1;
    crypto_aead_xchacha20poly1305_ietf_keygen(k->key);
    kr->active = 1;
    kr->encrypted = kr->have_key = 1;
    return insert_key(db, 1, k->key, "active");
  }
  char mode[16] = {0};
  size_t mlen = 0;
  if ((rc = config_get(db, "encryption", mode, sizeof mode - 1, &mlen, NULL))) return rc;
  int choice = src->key_file || src->key || src->passphrase;
  if (strcmp(mode, "none") == 0) {
    if (choice)
      return db_error(db, OPLOG_WRONG_KEY,
                      "the file is not encrypted; open it with encryption = false");
    return OPLOG_OK;
  }
  int pass_mode = strcmp(mode, "passphrase") == 0;
  if (!pass_mode && strcmp(mode, "key") != 0)
    return db_error(db, OPLOG_CORRUPT, "unknown encryption mode '%s'", mode);
  kr->encrypted = 1;
  if (src->no_encryption)
    return db_error(db, OPLOG_KEY_REQUIRED, "the file is encrypted: open it with its %s",
                    pass_mode ? "passphrase" : "key");
  if (!choice) return OPLOG_OK; /* keyless: chain, head, stats, catalog only */
  if (pass_mode != (src->passphrase != NULL))
    return db_error(db, OPLOG_WRONG_KEY, "the file is encrypted with a %s, not a %s",
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
      return db_error(db, OPLOG_CORRUPT, "bad passphrase settings in oplog_config");
  }
  if ((rc = alloc_root(db)) ||
      (rc = root_from_source(db, src, kr->root, salt, (unsigned long long)ops, (size_t)mem)))
    return rc;
  kr->have_key = 1;
  rc = keyring_load(db);
  if (rc) kr->have_key = 0;
  return rc;
}

void crypto_close(oplog_db *db) {
  keyring_wipe(&db->kr);
  if (db->kr.root) {
    sodium_memzero(db->kr.root, OPLOG_KEY_BYTES);
    sodium_free(db->kr.root);
  }
  db->kr.root = NULL;
  db->kr.have_key = 0;
}

static void entry_ad(uint8_t *ad, size_t *n, int64_t id, const char *aggregate, size_t alen,
                     int64_t key_id) {
  ad[0] = OPLOG_FORMAT_VERSION;
  put_u64(ad + 1, (uint64_t)id);
  put_u64(ad + 9, (uint64_t)key_id);
  put_u32(ad + 17, (uint32_t)alen);
  memcpy(ad + 21, aggregate, alen);
  *n = 21 + alen;
}

static const unsigned char *find_key(oplog_db *db, int64_t id) {
  for (size_t i = 0; i < db->kr.nkeys; i++)
    if (db->kr.keys[i].id == id) return db->kr.keys[i].key;
  return NULL;
}

static int need_key(oplog_db *db) {
  if (db->kr.encrypted && !db->kr.have_key)
    return db_error(db, OPLOG_KEY_REQUIRED, "the file is encrypted and was opened without its key");
  return OPLOG_OK;
}

int crypto_encrypt_entry(oplog_db *db, int64_t id, const char *aggregate, int64_t *key_id,
                         const uint8_t *plain, size_t n, buf *out) {
  if (!db->kr.encrypted) {
    *key_id = 0;
    return buf_append(out, plain, n) ? db_error(db, OPLOG_NOMEM, "out of memory") : OPLOG_OK;
  }
  int rc = need_key(db);
  if (rc) return rc;
  size_t alen = strlen(aggregate);
  uint8_t adbuf[256];
  uint8_t *ad = alen + 21 <= sizeof adbuf ? adbuf : sqlite3_malloc64(alen + 21);
  if (!ad || buf_reserve(out, OPLOG_NONCE_BYTES + n + OPLOG_TAG_BYTES)) {
    if (ad != adbuf) sqlite3_free(ad);
    return db_error(db, OPLOG_NOMEM, "out of memory");
  }
  size_t adlen;
  *key_id = db->kr.active;
  const unsigned char *key = find_key(db, *key_id);
  if (!key) {
    if (ad != adbuf) sqlite3_free(ad);
    return db_error(db, OPLOG_CORRUPT, "no active data key is loaded");
  }
  entry_ad(ad, &adlen, id, aggregate, alen, *key_id);
  uint8_t *nonce = out->p + out->n;
  randombytes_buf(nonce, OPLOG_NONCE_BYTES);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + OPLOG_NONCE_BYTES, &clen, plain, n, ad,
                                             adlen, NULL, nonce, key);
  out->n += OPLOG_NONCE_BYTES + (size_t)clen;
  if (ad != adbuf) sqlite3_free(ad);
  return OPLOG_OK;
}

int crypto_decrypt_entry(oplog_db *db, int64_t id, const char *aggregate, int64_t key_id,
                         const uint8_t *data, size_t n, buf *out) {
  if (key_id == 0) {
    if (db->kr.encrypted)
      return db_error(db, OPLOG_DECRYPT_FAILED, "entry %lld is not encrypted in an encrypted file",
                      (long long)id);
    return buf_append(out, data, n) ? db_error(db, OPLOG_NOMEM, "out of memory") : OPLOG_OK;
  }
  if (!db->kr.encrypted)
    return db_error(db, OPLOG_DECRYPT_FAILED, "entry %lld claims key %lld in a plaintext file",
                    (long long)id, (long long)key_id);
  int rc = need_key(db);
  if (rc) return rc;
  const unsigned char *key = find_key(db, key_id);
  if (!key) {
    /* another connection may have rotated the key since we loaded ours */
    if ((rc = keyring_load(db))) return rc;
    key = find_key(db, key_id);
  }
  if (!key || n < OPLOG_NONCE_BYTES + OPLOG_TAG_BYTES)
    return db_error(db, OPLOG_DECRYPT_FAILED, "entry %lld cannot be decrypted%s", (long long)id,
                    key ? " (data too short)" : " (unknown key id)");
  size_t alen = strlen(aggregate);
  uint8_t adbuf[256];
  uint8_t *ad = alen + 21 <= sizeof adbuf ? adbuf : sqlite3_malloc64(alen + 21);
  size_t plen = n - OPLOG_NONCE_BYTES - OPLOG_TAG_BYTES;
  if (!ad || buf_reserve(out, plen)) {
    if (ad != adbuf) sqlite3_free(ad);
    return db_error(db, OPLOG_NOMEM, "out of memory");
  }
  size_t adlen;
  entry_ad(ad, &adlen, id, aggregate, alen, key_id);
  unsigned long long mlen = 0;
  int bad = crypto_aead_xchacha20poly1305_ietf_decrypt(
      out->p + out->n, &mlen, NULL, data + OPLOG_NONCE_BYTES, n - OPLOG_NONCE_BYTES, ad, adlen,
      data, key);
  if (ad != adbuf) sqlite3_free(ad);
  if (bad) return db_error(db, OPLOG_DECRYPT_FAILED, "entry %lld cannot be decrypted (authentication failed)", (long long)id);
  out->n += (size_t)mlen;
  return OPLOG_OK;
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
  db_clear_error(db);
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT id, created, state FROM oplog_keys ORDER BY id", -1,
                             &s, NULL);
  if (r != SQLITE_OK) return db_sqlerr(db, r);
  int rc = OPLOG_OK;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    char *state = col_dup(s, 2);
    if (!state) {
      rc = db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    rc = each(ctx, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1), state);
    sqlite3_free(state);
    if (rc) break;
  }
  if (!rc && r != SQLITE_DONE) rc = db_sqlerr(db, r);
  sqlite3_finalize(s);
  return rc;
}

static int key_admin_check(oplog_db *db) {
  if (db->tx != TX_NONE)
    return db_error(db, OPLOG_INVALID_ARGUMENT, "finish the open transaction first");
  if (db->readonly) return db_error(db, OPLOG_READONLY, "the file is open read-only");
  if (!db->kr.encrypted) return db_error(db, OPLOG_INVALID_ARGUMENT, "the file is not encrypted");
  return need_key(db);
}

int oplog_rotate_key(oplog_db *db, int64_t *new_id) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  db_clear_error(db);
  int rc = key_admin_check(db);
  if (rc) return rc;
  if ((rc = db_begin(db, 1))) return rc;
  if ((rc = keyring_load(db))) goto fail; /* see keys rotated elsewhere */
  int64_t id = 0;
  for (size_t i = 0; i < db->kr.nkeys; i++)
    if (db->kr.keys[i].id > id) id = db->kr.keys[i].id;
  id++;
  unsigned char *key = sodium_malloc(OPLOG_KEY_BYTES);
  if (!key) {
    rc = db_error(db, OPLOG_NOMEM, "out of memory");
    goto fail;
  }
  crypto_aead_xchacha20poly1305_ietf_keygen(key);
  rc = db_exec(db, "UPDATE oplog_keys SET state = 'retired' WHERE state = 'active'");
  if (!rc) rc = insert_key(db, id, key, "active");
  if (!rc) rc = db_commit(db);
  sodium_free(key); /* sodium_free wipes */
  if (rc) goto fail;
  if ((rc = keyring_load(db))) return rc;
  if (new_id) *new_id = id;
  return OPLOG_OK;
fail:
  db_rollback(db);
  keyring_load(db);
  return rc;
}

int oplog_rekey(oplog_db *db, const oplog_key_source *src) {
  if (!db || !src) return OPLOG_INVALID_ARGUMENT;
  db_clear_error(db);
  int rc = key_admin_check(db);
  if (rc) return rc;
  int n = (src->key_file != NULL) + (src->key != NULL) + (src->passphrase != NULL);
  if (n != 1 || src->no_encryption)
    return db_error(db, OPLOG_INVALID_ARGUMENT, "rekey needs exactly one of key_file, key or passphrase");
  unsigned char *root = sodium_malloc(OPLOG_KEY_BYTES);
  if (!root) return db_error(db, OPLOG_NOMEM, "out of memory");
  if ((rc = db_begin(db, 1))) goto done;
  if ((rc = keyring_load(db)) || (rc = new_root(db, src, root))) goto fail;
  /* Re-wrap every key in this one transaction: a crash leaves the old
   * root key or the new one working, never neither. */
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "UPDATE oplog_keys SET nonce = ?2, wrapped = ?3 WHERE id = ?1",
                             -1, &s, NULL);
  if (r != SQLITE_OK) {
    rc = db_sqlerr(db, r);
    goto fail;
  }
  for (size_t i = 0; i < db->kr.nkeys && !rc; i++) {
    uint8_t nonce[OPLOG_NONCE_BYTES], wrapped[OPLOG_KEY_BYTES + OPLOG_TAG_BYTES];
    wrap_key(root, db->kr.keys[i].id, db->kr.keys[i].key, nonce, wrapped);
    sqlite3_bind_int64(s, 1, db->kr.keys[i].id);
    sqlite3_bind_blob(s, 2, nonce, sizeof nonce, SQLITE_STATIC);
    sqlite3_bind_blob(s, 3, wrapped, sizeof wrapped, SQLITE_STATIC);
    r = sqlite3_step(s);
    if (r != SQLITE_DONE) rc = db_sqlerr(db, r);
    sqlite3_reset(s);
  }
  sqlite3_finalize(s);
  if (rc || (rc = db_commit(db))) goto fail;
  memcpy(db->kr.root, root, OPLOG_KEY_BYTES);
  goto done;
fail:
  db_rollback(db);
done:
  sodium_free(root);
  return rc;
}
