/* checkpoint.c — signed checkpoints of an origin's chain (FORMAT.md
 * "Checkpoint"): making one for this file's origin, reading one strictly,
 * and checking one against the entries a file holds (verify's
 * checkpoint_mismatch and bad_signature).
 *
 * The shape is C2SP's tlog-checkpoint, a signed note: body lines (origin,
 * seq, head hash, an extension line with the time), a blank line, and one
 * signature line "— <key name> <base64(key id || Ed25519 signature)>"
 * over the exact body bytes. The origin id is the Ed25519 public key
 * itself, so a checkpoint is checked with nothing but its own text. */
#include <string.h>

#include "internal.h"

#define ORIGIN_PREFIX "oplog/"
#define ORIGIN_PREFIX_LEN (sizeof ORIGIN_PREFIX - 1)
#define NAME_LEN (ORIGIN_PREFIX_LEN + 2 * OPLOG_ORIGIN_BYTES) /* "oplog/<64 hex>" */
#define EM_DASH "\xe2\x80\x94"                                  /* U+2014, as signed notes use */
#define KEY_ID_BYTES 4
#define SIG_BYTES (KEY_ID_BYTES + crypto_sign_BYTES)
#define SIG_B64_LEN (sodium_base64_ENCODED_LEN(SIG_BYTES, sodium_base64_VARIANT_ORIGINAL) - 1)
#define ED25519_TYPE 0x01 /* signed-note's signature type byte for Ed25519 */

/* "oplog/<hex>": the origin line, and the key name of its signature. */
static void origin_name(const uint8_t origin[OPLOG_ORIGIN_BYTES], char out[NAME_LEN + 1]) {
  memcpy(out, ORIGIN_PREFIX, ORIGIN_PREFIX_LEN);
  sodium_bin2hex(out + ORIGIN_PREFIX_LEN, 2 * OPLOG_ORIGIN_BYTES + 1, origin, OPLOG_ORIGIN_BYTES);
}

/* signed-note's key id: the first 4 bytes of SHA-256(key name || "\n" ||
 * 0x01 || public key). */
static void key_id(const char *name, const uint8_t pk[OPLOG_ORIGIN_BYTES], uint8_t out[KEY_ID_BYTES]) {
  static const uint8_t sep[2] = {'\n', ED25519_TYPE};
  crypto_hash_sha256_state st;
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const uint8_t *)name, strlen(name));
  crypto_hash_sha256_update(&st, sep, sizeof sep);
  crypto_hash_sha256_update(&st, pk, OPLOG_ORIGIN_BYTES);
  crypto_hash_sha256_final(&st, h);
  memcpy(out, h, KEY_ID_BYTES);
}

int opl_checkpoint_sign(oplog_db *db, int64_t seq, const unsigned char hash[OPLOG_HASH_BYTES], char **out) {
  *out = NULL;
  char name[NAME_LEN + 1], hhex[2 * OPLOG_HASH_BYTES + 1];
  origin_name(db->self_id, name);
  sodium_bin2hex(hhex, sizeof hhex, hash, OPLOG_HASH_BYTES);
  char *body = sqlite3_mprintf("%s\n%lld\n%s\ntime %lld\n", name, (long long)seq, hhex, (long long)opl_now_ms());
  if (!body) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  unsigned char *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
  if (!sk) {
    sqlite3_free(body);
    return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  }
  int rc = opl_origin_secret(db, sk);
  uint8_t sig[SIG_BYTES];
  if (!rc) {
    key_id(name, db->self_id, sig);
    crypto_sign_detached(sig + KEY_ID_BYTES, NULL, (const uint8_t *)body, strlen(body), sk);
  }
  sodium_free(sk); /* wipes */
  if (!rc) {
    char b64[SIG_B64_LEN + 1];
    sodium_bin2base64(b64, sizeof b64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
    *out = sqlite3_mprintf("%s\n" EM_DASH " %s %s\n", body, name, b64);
    if (!*out) rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
  }
  sqlite3_free(body);
  return rc;
}

/* ---------------------------------------------------------------- reading */

typedef struct line_reader {
  const char *p, *end;
  int no; /* number of the line last taken, for messages */
} line_reader;

/* The next line without its "\n"; 0 when the text ends without one. */
static int next_line(line_reader *r, const char **s, size_t *n) {
  const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
  if (!nl) return 0;
  *s = r->p;
  *n = (size_t)(nl - r->p);
  r->p = nl + 1;
  r->no++;
  return 1;
}

static int lower_hex(const char *s, size_t n, uint8_t *out, size_t nout) {
  if (n != 2 * nout) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return sodium_hex2bin(out, nout, s, n, NULL, NULL, NULL) == 0;
}

/* A decimal in canonical form (no sign, no leading zero) up to INT64_MAX. */
static int decimal(const char *s, size_t n, int64_t *out) {
  uint64_t v = 0;
  if (n == 0 || n > 19 || (s[0] == '0' && n > 1)) return 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v > INT64_MAX) return 0;
  *out = (int64_t)v;
  return 1;
}

static int malformed(oplog_db *db, int line, const char *what) {
  return opl_db_error(db, OPLOG_CORRUPT, "malformed checkpoint: line %d: %s (schema/FORMAT.md \"Checkpoint\")", line,
                      what);
}

int opl_checkpoint_open(oplog_db *db, const char *text, size_t n, checkpoint_info *out, int *bad_signature) {
  line_reader r = {text, text + n, 0};
  const char *s;
  size_t len;
  char name[NAME_LEN + 1];
  *bad_signature = 0;
  memset(out, 0, sizeof *out);
  if (!text) return opl_db_error(db, OPLOG_CORRUPT, "malformed checkpoint: no text");
  if (!next_line(&r, &s, &len) || len != NAME_LEN || memcmp(s, ORIGIN_PREFIX, ORIGIN_PREFIX_LEN) != 0 ||
      !lower_hex(s + ORIGIN_PREFIX_LEN, len - ORIGIN_PREFIX_LEN, out->origin, OPLOG_ORIGIN_BYTES))
    return malformed(db, 1, "the origin line must be \"oplog/\" and 64 lowercase hex characters");
  memcpy(name, s, NAME_LEN);
  name[NAME_LEN] = 0;
  if (!next_line(&r, &s, &len) || !decimal(s, len, &out->seq) || out->seq < 1)
    return malformed(db, 2, "the seq must be a decimal number from 1, without leading zeros");
  if (!next_line(&r, &s, &len) || !lower_hex(s, len, out->hash, OPLOG_HASH_BYTES))
    return malformed(db, 3, "the head hash must be 64 lowercase hex characters");
  if (!next_line(&r, &s, &len) || len < 5 || memcmp(s, "time ", 5) != 0 || !decimal(s + 5, len - 5, &out->time_ms))
    return malformed(db, 4, "the time line must be \"time \" and unix milliseconds in decimal");
  size_t nbody = (size_t)(r.p - text); /* what the signature covers: the body lines with their newlines */
  if (!next_line(&r, &s, &len) || len != 0) return malformed(db, 5, "a blank line must end the body");
  if (!next_line(&r, &s, &len) || len < sizeof EM_DASH || memcmp(s, EM_DASH " ", sizeof EM_DASH) != 0)
    return malformed(db, 6, "the signature line must start with \"\xe2\x80\x94 \" (U+2014 and a space)");
  if (r.p != r.end) return malformed(db, 7, "nothing may follow the one signature line");
  /* From here on the text is well formed: whatever is wrong with the
   * signature line's name or signature is a bad signature. */
  const char *sig_name = s + sizeof EM_DASH, *sp = memchr(sig_name, ' ', len - sizeof EM_DASH);
  uint8_t sig[SIG_BYTES], want[KEY_ID_BYTES];
  size_t nsig = 0;
  const char *b64 = sp ? sp + 1 : NULL, *b64_end = s + len;
  key_id(name, out->origin, want);
  const char *why = NULL;
  if (!sp || (size_t)(sp - sig_name) != NAME_LEN || memcmp(sig_name, name, NAME_LEN) != 0)
    why = "it is not signed with the key of the origin it names";
  else if ((size_t)(b64_end - b64) != SIG_B64_LEN ||
           sodium_base642bin(sig, sizeof sig, b64, (size_t)(b64_end - b64), NULL, &nsig, NULL,
                             sodium_base64_VARIANT_ORIGINAL) != 0 ||
           nsig != SIG_BYTES)
    why = "the signature is not base64 of a 4-byte key id and a 64-byte Ed25519 signature";
  else if (memcmp(sig, want, KEY_ID_BYTES) != 0)
    why = "its key id is not that of the origin it names";
  else if (crypto_sign_verify_detached(sig + KEY_ID_BYTES, (const uint8_t *)text, nbody, out->origin) != 0)
    why = "the signature does not verify";
  if (why) {
    *bad_signature = 1;
    return opl_db_error(db, OPLOG_CORRUPT, "checkpoint of origin %s at seq %lld: %s", name + ORIGIN_PREFIX_LEN,
                        (long long)out->seq, why);
  }
  return OPLOG_OK;
}

/* ---------------------------------------------------------------- verify */

static int mismatch(oplog_db *db, oplog_problem_fn report, void *ctx, int64_t id, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *detail = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  if (!detail) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  int rc = report(ctx, id, "checkpoint_mismatch", detail);
  sqlite3_free(detail);
  return rc;
}

int opl_checkpoint_verify(oplog_db *db, const char *text, size_t n, oplog_problem_fn report, void *ctx) {
  checkpoint_info cp;
  int bad = 0;
  int rc = opl_checkpoint_open(db, text, n, &cp, &bad);
  if (rc && bad) return report(ctx, 0, "bad_signature", oplog_errmsg(db));
  if (rc == OPLOG_CORRUPT) /* a malformed argument, not a damaged log */
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "%s", oplog_errmsg(db));
  if (rc) return rc;
  char ohex[2 * OPLOG_ORIGIN_BYTES + 1], want[2 * OPLOG_HASH_BYTES + 1], held[2 * OPLOG_HASH_BYTES + 1];
  sodium_bin2hex(ohex, sizeof ohex, cp.origin, OPLOG_ORIGIN_BYTES);
  sodium_bin2hex(want, sizeof want, cp.hash, OPLOG_HASH_BYTES);
  /* The entries themselves, not the derived index: verify trusts nothing
   * it has not checked (and walks the whole log anyway). */
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql,
                             "SELECT e.id, e.hash, (SELECT max(seq) FROM oplog_entries m WHERE m.origin = o.no)"
                             " FROM oplog_origins o LEFT JOIN oplog_entries e ON e.origin = o.no AND e.seq = ?2"
                             " WHERE o.id = ?1 ORDER BY e.id LIMIT 1",
                             -1, &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  sqlite3_bind_blob(s, 1, cp.origin, OPLOG_ORIGIN_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, cp.seq);
  r = sqlite3_step(s);
  if (r == SQLITE_DONE || (r == SQLITE_ROW && sqlite3_column_type(s, 2) == SQLITE_NULL)) {
    rc = mismatch(db, report, ctx, 0, "the checkpoint is of origin %s at seq %lld, and this file holds no entry of that origin",
                  ohex, (long long)cp.seq);
  } else if (r == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_NULL) {
    rc = mismatch(db, report, ctx, 0,
                  "the checkpoint is of origin %s at seq %lld, and this file holds that origin up to seq %lld only: "
                  "entries were cut off",
                  ohex, (long long)cp.seq, (long long)sqlite3_column_int64(s, 2));
  } else if (r == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(s, 0);
    const void *h = sqlite3_column_blob(s, 1);
    if (sqlite3_column_bytes(s, 1) != OPLOG_HASH_BYTES || memcmp(h, cp.hash, OPLOG_HASH_BYTES) != 0) {
      if (sqlite3_column_bytes(s, 1) == OPLOG_HASH_BYTES)
        sodium_bin2hex(held, sizeof held, h, OPLOG_HASH_BYTES);
      else
        strcpy(held, "(not a hash)");
      rc = mismatch(db, report, ctx, id,
                    "entry %lld, seq %lld of origin %s, has hash %s where the checkpoint says %s: the log was rewritten",
                    (long long)id, (long long)cp.seq, ohex, held, want);
    }
  } else {
    rc = opl_db_sqlerr(db, r);
  }
  sqlite3_finalize(s);
  return rc;
}

/* ---------------------------------------------------------------- public */

int oplog_checkpoint(oplog_db *db, char **out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (!out) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  if (db->format == 1)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                        "a format-1 file has no origin to sign with until it is migrated (open it writable)");
  oplog_origin_info o;
  int rc = oplog_origin(db, &o);
  if (rc) return rc;
  /* A checkpoint of no entry would commit to nothing: refused, so that
   * every checkpoint names an entry a verifier can look for. */
  if (o.seq == 0)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "nothing to checkpoint: this file's origin has written no entry");
  return opl_checkpoint_sign(db, o.seq, o.head_hash, out);
}
