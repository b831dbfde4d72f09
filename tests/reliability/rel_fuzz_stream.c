/*
 * rel_fuzz_stream.c — fuzz target: hostile sync streams (oplog_import).
 *
 * An input is a mode byte, a frame edit byte and a stream. The seeds are valid streams: a
 * plaintext sender's (all its entries, and beyond a cursor) and an
 * encrypted one's sealed to the receiver. The mutator flips, truncates,
 * inserts and splices; with bit 0 of the mode set, the target signs the
 * mutated stream again with the sender's origin key (a new trailer over
 * what precedes it, frames and entries recounted) so that the decoder
 * behind the signature is reached too. Bit 1 picks the encrypted pair.
 * The edit byte drops, repeats or swaps whole frames (frame edit / 4, the
 * edit edit % 4: none, drop, repeat, swap with the next) before that, so
 * that chains with holes, repeats and reorderings arrive well framed.
 *
 * Each stream is imported into a copy of a receiver that already holds
 * part of the sender's entries and some of its own. The import must give a
 * clean code; unless it is OK the receiver's tables must be unchanged (a
 * digest of every table), and after OK the file must verify, live tables
 * included (replay).
 */
#include <inttypes.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "internal.h"
#include "oplog.pb-c.h"
#include "rel_common.h"

static const unsigned char key_b[32] = {0x42, 0x17, 0x99};

typedef struct pair {
  char *sender, *receiver, *work;
  const unsigned char *rkey; /* the receiver's key, NULL: plaintext */
  unsigned char *sk;         /* the sender's origin secret, sodium_malloc'd */
  unsigned char digest[32];  /* the receiver's tables */
} pair;

static struct {
  char *dir;
  pair p[2]; /* plaintext, encrypted */
  int64_t codes[OPLOG_GAP + 1]; /* how the imports ended: how deep the campaign reached */
  uint8_t *seed[4];
  size_t nseed[4];
} F;

typedef struct mem {
  uint8_t *p;
  size_t n, cap, pos;
} mem;

static int mem_write(void *ctx, const void *p, size_t n) {
  mem *m = ctx;
  if (!n) return 0;
  if (m->n + n > m->cap) {
    size_t cap = m->cap ? m->cap : 4096;
    while (cap < m->n + n) cap *= 2;
    m->p = realloc(m->p, cap);
    REL_CHECK(m->p != NULL, "realloc");
    m->cap = cap;
  }
  memcpy(m->p + m->n, p, n);
  m->n += n;
  return 0;
}

static int mem_read(void *ctx, void *p, size_t n, size_t *got) {
  mem *m = ctx;
  size_t left = m->n - m->pos;
  *got = n < left ? n : left;
  if (*got) memcpy(p, m->p + m->pos, *got);
  m->pos += *got;
  return 0;
}

/* Every table's rows (raw SQLite): what "unchanged" means. */
static void digest(const char *path, unsigned char out[32]) {
  sqlite3 *s = NULL;
  sqlite3_stmt *t = NULL, *r = NULL;
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  REL_CHECK(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "open %s", path);
  sqlite3_prepare_v2(s, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name", -1, &t, NULL);
  while (sqlite3_step(t) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(t, 0);
    crypto_generichash_update(&st, (const unsigned char *)name, strlen(name) + 1);
    char *q = sqlite3_mprintf("SELECT * FROM \"%w\"", name);
    if (sqlite3_prepare_v2(s, q, -1, &r, NULL) == SQLITE_OK)
      while (sqlite3_step(r) == SQLITE_ROW)
        for (int c = 0; c < sqlite3_column_count(r); c++) {
          unsigned char ty = (unsigned char)sqlite3_column_type(r, c);
          crypto_generichash_update(&st, &ty, 1);
          const void *b = sqlite3_column_blob(r, c);
          if (b) crypto_generichash_update(&st, b, (size_t)sqlite3_column_bytes(r, c));
        }
    sqlite3_finalize(r);
    sqlite3_free(q);
  }
  sqlite3_finalize(t);
  sqlite3_close(s);
  crypto_generichash_final(&st, out, 32);
}

static char *hexid(oplog_db *db, char out[65]) {
  oplog_origin_info o;
  REL_OK(db, oplog_origin(db, &o));
  sodium_bin2hex(out, 65, o.id, 32);
  return out;
}

static void export_to(oplog_db *from, oplog_db *to, const char *since, uint8_t **p, size_t *n) {
  char hx[65];
  mem m = {0};
  oplog_export_opts o = {.to = hexid(to, hx), .since = since};
  REL_OK(from, oplog_export(from, &o, mem_write, &m, NULL));
  *p = m.p;
  *n = m.n;
}

static void setup_pair(pair *p, int encrypted, uint8_t **full, size_t *nfull, uint8_t **tail, size_t *ntail) {
  const char *tag = encrypted ? "k" : "p";
  p->sender = strdup(rel_path(F.dir, encrypted ? "ksender.db" : "psender.db"));
  p->receiver = strdup(rel_path(F.dir, encrypted ? "kreceiver.db" : "preceiver.db"));
  p->work = strdup(rel_path(F.dir, encrypted ? "kwork.db" : "pwork.db"));
  p->rkey = encrypted ? key_b : NULL;
  oplog_db *a = rel_open(p->sender, encrypted ? rel_key : NULL);
  oplog_db *b = rel_open(p->receiver, p->rkey);
  int64_t id;
  REL_OK(a, rel_define_workload(a, tag));
  REL_OK(a, rel_seed_counter(a, tag, &id));
  for (int i = 1; i <= 3; i++) REL_OK(a, rel_write_tx(a, tag, 1, i, 12, &id));
  /* the receiver holds the sender's first entries and writes its own */
  uint8_t *s;
  size_t n;
  export_to(a, b, NULL, &s, &n);
  mem m = {s, n, n, 0};
  REL_OK(b, oplog_import(b, NULL, mem_read, &m, NULL));
  free(s);
  REL_OK(b, rel_write_tx(b, tag, 2, 1, 8, &id));
  for (int i = 4; i <= 6; i++) REL_OK(a, rel_write_tx(a, tag, 1, i, 12, &id));
  if (encrypted) {
    int64_t kid;
    REL_OK(a, oplog_rotate_key(a, &kid));
    REL_OK(a, rel_write_tx(a, tag, 1, 7, 12, &id));
  }
  export_to(a, b, NULL, full, nfull);
  char *cur = NULL;
  REL_OK(b, oplog_cursor(b, &cur));
  export_to(a, b, cur, tail, ntail);
  oplog_free(cur);
  p->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
  REL_CHECK(p->sk && opl_origin_secret(a, p->sk) == OPLOG_OK, "origin secret");
  oplog_close(a);
  oplog_close(b);
  digest(p->receiver, p->digest);
}

static void setup(void) {
  if (F.dir) return;
  F.dir = rel_mkdtemp_fast("fuzz-stream");
  setup_pair(&F.p[0], 0, &F.seed[0], &F.nseed[0], &F.seed[1], &F.nseed[1]);
  setup_pair(&F.p[1], 1, &F.seed[2], &F.nseed[2], &F.seed[3], &F.nseed[3]);
}

static uint32_t get_be(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* The stream with its trailer made again by the sender: hash and
 * signature over everything before the last frame, counts recounted. The
 * stream is returned as it was if its frames do not walk to a last one. */
static void resign(mem *m, const unsigned char *sk) {
  size_t off = 9, last = 0;
  uint64_t frames = 0, entries = 0;
  if (m->n < off) return;
  while (off + 5 <= m->n) {
    size_t len = get_be(m->p + off + 1);
    if (len > m->n - off - 5) return;
    last = off;
    if (off + 5 + len == m->n) break;
    frames++;
    if (m->p[off] == FRAME_ENTRY) entries++;
    off += 5 + len;
  }
  if (!last || off + 5 > m->n) return;
  unsigned char h[32], sig[crypto_sign_BYTES], msg[15 + 32];
  crypto_generichash(h, sizeof h, m->p, last, NULL, 0);
  memcpy(msg, "oplog-stream-v1", 15);
  memcpy(msg + 15, h, 32);
  crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
  Oplog__V1__StreamTrailer t = OPLOG__V1__STREAM_TRAILER__INIT;
  t.frames = frames;
  t.entries = entries;
  t.hash = (ProtobufCBinaryData){32, h};
  t.signature = (ProtobufCBinaryData){sizeof sig, sig};
  size_t n = oplog__v1__stream_trailer__get_packed_size(&t);
  m->n = last;
  uint8_t head[5] = {FRAME_TRAILER, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
  mem_write(m, head, 5);
  uint8_t body[256];
  oplog__v1__stream_trailer__pack(&t, body);
  mem_write(m, body, n);
}

/* Applies the frame edit e to the frames after the magic. */
static void edit_frames(mem *m, unsigned e) {
  size_t off = 9, at[256], len[256], n = 0;
  while (off + 5 <= m->n && n < 256) {
    size_t l = 5 + (size_t)get_be(m->p + off + 1);
    if (l > m->n - off) break;
    at[n] = off;
    len[n++] = l;
    off += l;
  }
  unsigned op = e % 4, k = e / 4;
  if (!op || k >= n || (op == 3 && k + 1 >= n)) return;
  mem out = {0};
  mem_write(&out, m->p, 9);
  for (size_t i = 0; i < n; i++) {
    if (op == 1 && i == k) continue;
    if (op == 3 && i == k) {
      mem_write(&out, m->p + at[k + 1], len[k + 1]);
      mem_write(&out, m->p + at[k], len[k]);
      i++;
      continue;
    }
    mem_write(&out, m->p + at[i], len[i]);
    if (op == 2 && i == k) mem_write(&out, m->p + at[i], len[i]);
  }
  mem_write(&out, m->p + off, m->n - off); /* whatever did not walk */
  free(m->p);
  *m = out;
}

static int clean(int rc) {
  return rc == OPLOG_OK || rc == OPLOG_CORRUPT || rc == OPLOG_WRONG_KEY || rc == OPLOG_GAP || rc == OPLOG_FORK ||
         rc == OPLOG_TYPE_CONFLICT || rc == OPLOG_INVALID_ARGUMENT || rc == OPLOG_DECRYPT_FAILED ||
         rc == OPLOG_NOT_FOUND;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  if (size < 2) return 0;
  pair *p = &F.p[(data[0] >> 1) & 1];
  mem m = {0};
  if (size > 2) mem_write(&m, data + 2, size - 2);
  edit_frames(&m, data[1]);
  if (data[0] & 1) resign(&m, p->sk);
  rel_copy_file(p->receiver, p->work);
  oplog_db *db = rel_open(p->work, p->rkey);
  oplog_import_result res;
  int rc = oplog_import(db, NULL, mem_read, &m, &res);
  FUZZ_CHECK(clean(rc), "import: %s: %s", oplog_code_name(rc), oplog_errmsg(db));
  F.codes[rc]++;
  if (rc == OPLOG_OK) {
    oplog_verify_result vr;
    memset(&vr, 0, sizeof vr);
    oplog_verify_opts vo = {.replay = 1}; /* the live tables too: the replay of every entry in total order */
    int vrc = oplog_verify(db, &vo, NULL, NULL, &vr);
    FUZZ_CHECK(vrc == OPLOG_OK && vr.ok, "verify after an import: %s: %s", oplog_code_name(vrc), oplog_errmsg(db));
  }
  oplog_close(db);
  if (rc != OPLOG_OK) {
    unsigned char d[32];
    digest(p->work, d);
    FUZZ_CHECK(memcmp(d, p->digest, 32) == 0, "a refused import (%s) changed the file", oplog_code_name(rc));
  }
  free(m.p);
  return 0;
}

void rel_fuzz_seeds(void (*add)(const uint8_t *p, size_t n)) {
  setup();
  /* as exported; re-signed; then re-signed with a frame dropped,
   * repeated or swapped (frames 3-6: bases and entries) */
  static const uint8_t edits[][2] = {{0, 0}, {1, 0}, {1, 4 * 3 + 1}, {1, 4 * 4 + 1}, {1, 4 * 4 + 2},
                                     {1, 4 * 5 + 3}, {1, 4 * 2 + 1}};
  for (int i = 0; i < 4; i++)
    for (size_t j = 0; j < sizeof edits / sizeof *edits; j++) {
      uint8_t *b = malloc(F.nseed[i] + 2);
      REL_CHECK(b != NULL, "malloc");
      b[0] = (uint8_t)(edits[j][0] | (i >= 2 ? 2 : 0));
      b[1] = edits[j][1];
      memcpy(b + 2, F.seed[i], F.nseed[i]);
      add(b, F.nseed[i] + 2);
      free(b);
    }
}

void rel_fuzz_cleanup(void) {
  if (!F.dir) return;
  fprintf(stderr, "rel_fuzz_stream: imports ended");
  for (int c = 0; c <= OPLOG_GAP; c++)
    if (F.codes[c]) fprintf(stderr, " %s %" PRId64, oplog_code_name(c), F.codes[c]);
  fputc('\n', stderr);
  for (int i = 0; i < 2; i++) {
    free(F.p[i].sender);
    free(F.p[i].receiver);
    free(F.p[i].work);
    if (F.p[i].sk) sodium_free(F.p[i].sk);
  }
  for (int i = 0; i < 4; i++) free(F.seed[i]);
  rel_rmdir_all(F.dir);
  free(F.dir);
  F.dir = NULL;
}
