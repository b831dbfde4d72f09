/* testutil.c — the harness behind testutil.h. */
#include "testutil.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>

char tmpdir[512];
int failures;

char *tpath(const char *name) {
  static char bufs[8][600];
  static int i;
  char *b = bufs[i++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
  return b;
}

static void rm_tree(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

int test_main(int argc, char **argv, const struct test_case *cases) {
  int ran = 0;
  for (const struct test_case *c = cases; c->name; c++) {
    if (argc > 1 && strcmp(argv[1], c->name) != 0) continue;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/oplog-test-XXXXXX");
    if (!mkdtemp(tmpdir)) {
      perror("mkdtemp");
      return 2;
    }
    int before = failures;
    c->fn();
    fprintf(stderr, "%s %s\n", failures == before ? "ok  " : "FAIL", c->name);
    rm_tree();
    ran++;
  }
  if (!ran) {
    fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "(all)");
    return 2;
  }
  return failures ? 1 : 0;
}

oplog_db *open_plain(const char *name) {
  oplog_open_opts o = {0};
  o.key.no_encryption = 1;
  o.sync = OPLOG_SYNC_NORMAL;
  oplog_db *db = NULL;
  if (oplog_open(tpath(name), &o, &db) != OPLOG_OK) {
    fprintf(stderr, "open_plain: %s\n", oplog_errmsg(db));
    oplog_close(db);
    return NULL;
  }
  return db;
}

oplog_db *open_keyed(const char *name, const unsigned char key[32]) {
  oplog_open_opts o = {0};
  o.key.key = key;
  o.key.key_len = 32;
  o.sync = OPLOG_SYNC_NORMAL;
  oplog_db *db = NULL;
  if (oplog_open(tpath(name), &o, &db) != OPLOG_OK) {
    fprintf(stderr, "open_keyed: %s\n", oplog_errmsg(db));
    oplog_close(db);
    return NULL;
  }
  return db;
}

int define_user(oplog_db *db) {
  static const oplog_column cols[] = {{"id", "INTEGER PRIMARY KEY"},
                                      {"name", "TEXT NOT NULL UNIQUE"},
                                      {"age", "INTEGER"},
                                      {"photo", "BLOB"}};
  oplog_type_spec s = {"user", "users", "users", cols, 4, NULL, 0};
  int rc = oplog_define(db, &s);
  if (rc) fprintf(stderr, "define_user: %s\n", oplog_errmsg(db));
  return rc;
}

int define_group(oplog_db *db) {
  static const oplog_column cols[] = {{"id", "INTEGER PRIMARY KEY"}, {"title", "TEXT"}};
  oplog_type_spec s = {"group", "groups", "users", cols, 2, NULL, 0};
  int rc = oplog_define(db, &s);
  if (rc) fprintf(stderr, "define_group: %s\n", oplog_errmsg(db));
  return rc;
}

oplog_value vint(int64_t i) { return (oplog_value){.type = OPLOG_INTEGER, .u.i = i}; }
oplog_value vreal(double r) { return (oplog_value){.type = OPLOG_REAL, .u.r = r}; }
oplog_value vtext(const char *s) {
  return (oplog_value){.type = OPLOG_TEXT, .u.b = {s, strlen(s)}};
}
oplog_value vblob(const void *p, size_t n) { return (oplog_value){.type = OPLOG_BLOB, .u.b = {p, n}}; }
oplog_value vnull(void) { return (oplog_value){.type = OPLOG_NULL}; }

int64_t write_user(oplog_db *db, int64_t id, const char *name, int64_t age) {
  oplog_field f[] = {{"id", vint(id)}, {"name", vtext(name)}, {"age", vint(age)}};
  oplog_op op = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 3}};
  oplog_meta md[] = {{"actor", "alice"}, {"reason", "signup"}};
  int64_t eid = 0;
  if (oplog_tx_begin(db, "users") || oplog_tx_apply(db, &op) || oplog_tx_commit(db, md, 2, &eid)) {
    fprintf(stderr, "write_user: %s\n", oplog_errmsg(db));
    return 0;
  }
  return eid;
}

int64_t count_rows(const char *path, const char *sql) {
  sqlite3 *s = NULL;
  sqlite3_stmt *st = NULL;
  int64_t n = -1;
  if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  else
    fprintf(stderr, "count_rows(%s): %s\n", sql, sqlite3_errmsg(s));
  sqlite3_finalize(st);
  sqlite3_close(s);
  return n;
}

int exec_raw(const char *path, const char *sql) {
  sqlite3 *s = NULL;
  char *err = NULL;
  int rc = sqlite3_open(path, &s);
  /* the test's own connection: no fsync needed (it only slows the suite down on a busy disk) */
  if (rc == SQLITE_OK) rc = sqlite3_exec(s, "PRAGMA synchronous = OFF", NULL, NULL, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_exec(s, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK && err) fprintf(stderr, "exec_raw: %s\n", err);
  sqlite3_free(err);
  sqlite3_close(s);
  return rc;
}

/* ---------------------------------------------------------------- format 2 reference */

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

int ref_meta_decode(const void *blob, size_t n, ref_pair *out, int max) {
  const unsigned char *p = blob;
  if (!p || n < 4) return -1;
  uint32_t count = le32(p);
  size_t off = 4;
  for (uint32_t i = 0; i < count; i++) {
    ref_pair r = {0};
    if (n - off < 4) return -1;
    r.nkey = le32(p + off);
    off += 4;
    if (n - off < r.nkey) return -1;
    r.key = p + off;
    off += r.nkey;
    if (n - off < 1 || p[off] > 1) return -1;
    r.has_value = p[off++];
    if (r.has_value) {
      if (n - off < 4) return -1;
      r.nvalue = le32(p + off);
      off += 4;
      if (n - off < r.nvalue) return -1;
      r.value = p + off;
      off += r.nvalue;
    }
    if ((int)i < max) out[i] = r;
  }
  return off == n ? (int)count : -1;
}

size_t ref_meta_encode(const oplog_meta *md, size_t n, unsigned char *buf, size_t cap) {
  size_t off = 4;
  if (cap < 4) return 0;
  put_le(buf, n, 4);
  for (size_t i = 0; i < n; i++) {
    size_t kn = strlen(md[i].key), vn = md[i].value ? strlen(md[i].value) : 0;
    if (cap - off < 4 + kn + 1 + (md[i].value ? 4 + vn : 0)) return 0;
    put_le(buf + off, kn, 4);
    memcpy(buf + off + 4, md[i].key, kn);
    off += 4 + kn;
    buf[off++] = md[i].value != NULL;
    if (md[i].value) {
      put_le(buf + off, vn, 4);
      memcpy(buf + off + 4, md[i].value, vn);
      off += 4 + vn;
    }
  }
  return off;
}

void ref_entry_hash(const unsigned char prev[32], const unsigned char origin[32], int64_t seq, int64_t clock,
                    int64_t created, int64_t key_id, const void *agg, size_t nagg, const void *md, size_t nmd,
                    const void *data, size_t ndata, unsigned char out[32]) {
  static const char tag[] = "oplog-entry-v2";
  size_t n = (sizeof tag - 1) + 32 + 32 + 4 * 8 + 4 + nagg + 4 + nmd + 4 + ndata;
  unsigned char *b = malloc(n), *p = b;
  memcpy(p, tag, sizeof tag - 1), p += sizeof tag - 1;
  memcpy(p, prev, 32), p += 32;
  memcpy(p, origin, 32), p += 32;
  put_le(p, (uint64_t)seq, 8), p += 8;
  put_le(p, (uint64_t)clock, 8), p += 8;
  put_le(p, (uint64_t)created, 8), p += 8;
  put_le(p, (uint64_t)key_id, 8), p += 8;
  put_le(p, nagg, 4), p += 4;
  if (nagg) memcpy(p, agg, nagg), p += nagg;
  put_le(p, nmd, 4), p += 4;
  if (nmd) memcpy(p, md, nmd), p += nmd;
  put_le(p, ndata, 4), p += 4;
  if (ndata) memcpy(p, data, ndata), p += ndata;
  crypto_generichash(out, 32, b, n, NULL, 0); /* unkeyed BLAKE2b, 32 bytes out */
  free(b);
}

static void say(char *why, size_t nwhy, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (why && nwhy) vsnprintf(why, nwhy, fmt, ap);
  va_end(ap);
}

#define ENTRY_SQL                                                                                          \
  "SELECT e.id, e.origin, o.id, e.seq, e.clock, e.created, e.aggregate_name, e.key_id, e.metadata, e.data," \
  " e.prev_hash, e.hash, e.format FROM oplog_entries e LEFT JOIN oplog_origins o ON o.no = e.origin"

/* Where each origin's chain stands in a walk. */
typedef struct ref_chain {
  int64_t origin, seq;
  unsigned char hash[32];
} ref_chain;

static ref_chain *chain_slot(ref_chain *c, int *n, int64_t origin) {
  for (int i = 0; i < *n; i++)
    if (c[i].origin == origin) return &c[i];
  if (*n == 16) return NULL;
  memset(&c[*n], 0, sizeof c[*n]);
  c[*n].origin = origin;
  return &c[(*n)++];
}

/* The reference hash of the current row of ENTRY_SQL, with prev as its
 * prev_hash. 0: the row cannot be hashed (why says so). */
static int row_hash(sqlite3_stmt *st, const unsigned char *prev, unsigned char out[32], char *why, size_t nwhy) {
  int64_t id = sqlite3_column_int64(st, 0);
  if (sqlite3_column_bytes(st, 2) != 32) {
    say(why, nwhy, "entry %lld: origin %lld has no 32-byte id", (long long)id, (long long)sqlite3_column_int64(st, 1));
    return 0;
  }
  if (sqlite3_column_int(st, 12) != 2) {
    say(why, nwhy, "entry %lld: format %d, the reference knows format 2", (long long)id, sqlite3_column_int(st, 12));
    return 0;
  }
  ref_entry_hash(prev, sqlite3_column_blob(st, 2), sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4),
                 sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 7), sqlite3_column_blob(st, 6),
                 (size_t)sqlite3_column_bytes(st, 6), sqlite3_column_blob(st, 8), (size_t)sqlite3_column_bytes(st, 8),
                 sqlite3_column_blob(st, 9), (size_t)sqlite3_column_bytes(st, 9), out);
  return 1;
}

int ref_check_chain(const char *path, char *why, size_t nwhy) {
  sqlite3 *s = NULL;
  sqlite3_stmt *st = NULL;
  ref_chain c[16];
  int nc = 0, ok = 1, r;
  static const unsigned char zero[32];
  say(why, nwhy, "ok");
  if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(s, ENTRY_SQL " ORDER BY e.id", -1, &st, NULL) != SQLITE_OK) {
    say(why, nwhy, "%s", sqlite3_errmsg(s));
    ok = 0;
  }
  while (ok && (r = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(st, 0), seq = sqlite3_column_int64(st, 3);
    ref_chain *ch = chain_slot(c, &nc, sqlite3_column_int64(st, 1));
    unsigned char h[32];
    if (!ch) {
      say(why, nwhy, "more than 16 origins");
      ok = 0;
    } else if (seq != ch->seq + 1) {
      say(why, nwhy, "entry %lld: seq %lld after %lld of its origin", (long long)id, (long long)seq, (long long)ch->seq);
      ok = 0;
    } else if (sqlite3_column_bytes(st, 10) != 32 || sqlite3_column_bytes(st, 11) != 32) {
      say(why, nwhy, "entry %lld: hash or prev_hash is not 32 bytes", (long long)id);
      ok = 0;
    } else if (memcmp(sqlite3_column_blob(st, 10), ch->seq ? ch->hash : zero, 32) != 0) {
      say(why, nwhy, "entry %lld: prev_hash is not the hash of its origin's seq %lld", (long long)id,
          (long long)ch->seq);
      ok = 0;
    } else if (!row_hash(st, sqlite3_column_blob(st, 10), h, why, nwhy)) {
      ok = 0;
    } else if (memcmp(h, sqlite3_column_blob(st, 11), 32) != 0) {
      say(why, nwhy, "entry %lld: stored hash differs from the reference hash", (long long)id);
      ok = 0;
    } else {
      ch->seq = seq;
      memcpy(ch->hash, h, 32);
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(s);
  return ok;
}

int ref_rehash_all(const char *path) {
  sqlite3 *s = NULL;
  sqlite3_stmt *st = NULL, *up = NULL;
  ref_chain c[16];
  int nc = 0, rc = -1;
  if (sqlite3_open(path, &s) != SQLITE_OK) goto out;
  if (sqlite3_exec(s, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) goto out;
  if (sqlite3_prepare_v2(s, ENTRY_SQL " WHERE e.id = ?1", -1, &st, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(s, "UPDATE oplog_entries SET prev_hash = ?1, hash = ?2 WHERE id = ?3", -1, &up, NULL) !=
          SQLITE_OK)
    goto out;
  int64_t max = 0;
  {
    sqlite3_stmt *m = NULL;
    if (sqlite3_prepare_v2(s, "SELECT coalesce(max(id), 0) FROM oplog_entries", -1, &m, NULL) == SQLITE_OK &&
        sqlite3_step(m) == SQLITE_ROW)
      max = sqlite3_column_int64(m, 0);
    sqlite3_finalize(m);
  }
  for (int64_t id = 1; id <= max; id++) {
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
      sqlite3_reset(st);
      continue;
    }
    ref_chain *ch = chain_slot(c, &nc, sqlite3_column_int64(st, 1));
    unsigned char prev[32] = {0}, h[32];
    if (!ch) goto out;
    if (ch->seq) memcpy(prev, ch->hash, 32);
    if (!row_hash(st, prev, h, NULL, 0)) goto out;
    ch->seq = sqlite3_column_int64(st, 3);
    memcpy(ch->hash, h, 32);
    sqlite3_reset(st);
    sqlite3_bind_blob(up, 1, prev, 32, SQLITE_TRANSIENT);
    sqlite3_bind_blob(up, 2, h, 32, SQLITE_TRANSIENT);
    sqlite3_bind_int64(up, 3, id);
    if (sqlite3_step(up) != SQLITE_DONE) goto out;
    sqlite3_reset(up);
  }
  if (sqlite3_exec(s, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) rc = 0;
out:
  if (rc) fprintf(stderr, "ref_rehash_all: %s\n", sqlite3_errmsg(s));
  sqlite3_finalize(st);
  sqlite3_finalize(up);
  sqlite3_close(s);
  return rc;
}

/* Covered entries per aggregate. */
typedef struct agg_tally {
  char name[64];
  int64_t n;
} agg_tally;

int check_derived(const char *path, int full, char *why, size_t nwhy) {
  sqlite3 *s = NULL;
  sqlite3_stmt *es = NULL, *ix = NULL, *md = NULL, *q = NULL;
  agg_tally aggs[32];
  int naggs = 0, ok = 0;
  int64_t wm = -1, cfg_clock = -1, max_id = 0, max_clock = 0;
  ref_pair pairs[64];
  say(why, nwhy, "ok");
  if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_exec(s, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(s,
                         "SELECT (SELECT value FROM oplog_config WHERE name = 'indexed_upto'),"
                         " (SELECT value FROM oplog_config WHERE name = 'clock'),"
                         " (SELECT coalesce(max(id), 0) FROM oplog_entries)",
                         -1, &q, NULL) != SQLITE_OK ||
      sqlite3_step(q) != SQLITE_ROW) {
    say(why, nwhy, "%s", sqlite3_errmsg(s));
    goto out;
  }
  if (sqlite3_column_type(q, 0) != SQLITE_INTEGER || sqlite3_column_type(q, 1) != SQLITE_INTEGER) {
    say(why, nwhy, "oplog_config lacks an integer indexed_upto or clock");
    goto out;
  }
  wm = sqlite3_column_int64(q, 0);
  cfg_clock = sqlite3_column_int64(q, 1);
  max_id = sqlite3_column_int64(q, 2);
  sqlite3_finalize(q);
  q = NULL;
  if (full && wm != max_id) {
    say(why, nwhy, "indexed_upto is %lld, the newest entry %lld", (long long)wm, (long long)max_id);
    goto out;
  }
  if (wm > max_id) {
    say(why, nwhy, "indexed_upto %lld is past the newest entry %lld", (long long)wm, (long long)max_id);
    goto out;
  }
  if (sqlite3_prepare_v2(s, "SELECT id, origin, seq, clock, aggregate_name, metadata FROM oplog_entries ORDER BY id",
                         -1, &es, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(s, "SELECT origin, seq, aggregate_name FROM oplog_index WHERE entry_id = ?1", -1, &ix,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(s, "SELECT position, key, value FROM oplog_metadata WHERE entry_id = ?1 ORDER BY position",
                         -1, &md, NULL) != SQLITE_OK) {
    say(why, nwhy, "%s", sqlite3_errmsg(s));
    goto out;
  }
  while (sqlite3_step(es) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(es, 0);
    int covered = id <= wm;
    const char *agg = (const char *)sqlite3_column_text(es, 4);
    int np = ref_meta_decode(sqlite3_column_blob(es, 5), (size_t)sqlite3_column_bytes(es, 5), pairs, 64);
    if (np < 0 || np > 64) {
      say(why, nwhy, "entry %lld: metadata blob malformed (or > 64 pairs)", (long long)id);
      goto out;
    }
    sqlite3_bind_int64(ix, 1, id);
    int has_ix = sqlite3_step(ix) == SQLITE_ROW;
    if (has_ix != covered) {
      say(why, nwhy, "entry %lld (indexed_upto %lld): oplog_index row %s", (long long)id, (long long)wm,
          has_ix ? "present" : "missing");
      goto out;
    }
    if (has_ix && (sqlite3_column_int64(ix, 0) != sqlite3_column_int64(es, 1) ||
                   sqlite3_column_int64(ix, 1) != sqlite3_column_int64(es, 2) ||
                   strcmp((const char *)sqlite3_column_text(ix, 2), agg) != 0)) {
      say(why, nwhy, "entry %lld: oplog_index row differs from the entry", (long long)id);
      goto out;
    }
    sqlite3_reset(ix);
    sqlite3_bind_int64(md, 1, id);
    int k = 0;
    while (sqlite3_step(md) == SQLITE_ROW) {
      ref_pair *p = &pairs[k];
      int has = sqlite3_column_type(md, 2) != SQLITE_NULL;
      if (!covered || k >= np || sqlite3_column_int64(md, 0) != k + 1 ||
          (size_t)sqlite3_column_bytes(md, 1) != p->nkey || memcmp(sqlite3_column_text(md, 1), p->key, p->nkey) ||
          has != p->has_value ||
          (has && ((size_t)sqlite3_column_bytes(md, 2) != p->nvalue ||
                   memcmp(sqlite3_column_text(md, 2), p->value, p->nvalue)))) {
        say(why, nwhy, "entry %lld (indexed_upto %lld): oplog_metadata row %d differs from the blob", (long long)id,
            (long long)wm, k + 1);
        goto out;
      }
      k++;
    }
    sqlite3_reset(md);
    if (covered && k != np) {
      say(why, nwhy, "entry %lld: oplog_metadata has %d rows, the blob %d pairs", (long long)id, k, np);
      goto out;
    }
    if (covered) {
      int a = 0;
      while (a < naggs && strcmp(aggs[a].name, agg) != 0) a++;
      if (a == naggs) {
        if (naggs == 32) goto out;
        snprintf(aggs[naggs].name, sizeof aggs[0].name, "%s", agg);
        aggs[naggs++].n = 0;
      }
      aggs[a].n++;
      if (sqlite3_column_int64(es, 3) > max_clock) max_clock = sqlite3_column_int64(es, 3);
    }
  }
  if (cfg_clock != max_clock) {
    say(why, nwhy, "oplog_config clock %lld, covered entries' largest clock %lld", (long long)cfg_clock,
        (long long)max_clock);
    goto out;
  }
  if (sqlite3_prepare_v2(s,
                         "SELECT (SELECT count(*) FROM oplog_index WHERE entry_id NOT IN (SELECT id FROM oplog_entries))"
                         " + (SELECT count(*) FROM oplog_metadata WHERE entry_id NOT IN (SELECT id FROM oplog_entries))",
                         -1, &q, NULL) != SQLITE_OK ||
      sqlite3_step(q) != SQLITE_ROW || sqlite3_column_int64(q, 0) != 0) {
    say(why, nwhy, "derived rows of entries that do not exist");
    goto out;
  }
  sqlite3_finalize(q);
  q = NULL;
  int with_ticket = 0;
  if (sqlite3_prepare_v2(s, "SELECT name, version FROM oplog_ticket", -1, &q, NULL) != SQLITE_OK) goto out;
  while (sqlite3_step(q) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(q, 0);
    int64_t n = 0;
    for (int a = 0; a < naggs; a++)
      if (strcmp(aggs[a].name, name) == 0) n = aggs[a].n, with_ticket++;
    if (sqlite3_column_int64(q, 1) != 1 + n) {
      say(why, nwhy, "ticket %s is at %lld, its %lld covered entries say %lld", name,
          (long long)sqlite3_column_int64(q, 1), (long long)n, (long long)(1 + n));
      goto out;
    }
  }
  if (with_ticket != naggs) {
    say(why, nwhy, "an aggregate with entries has no ticket");
    goto out;
  }
  ok = 1;
out:
  sqlite3_finalize(q);
  sqlite3_finalize(es);
  sqlite3_finalize(ix);
  sqlite3_finalize(md);
  sqlite3_close(s);
  return ok;
}

int64_t ref_meta_pairs_total(const char *path) {
  sqlite3 *s = NULL;
  sqlite3_stmt *st = NULL;
  int64_t total = 0;
  if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(s, "SELECT metadata FROM oplog_entries", -1, &st, NULL) != SQLITE_OK)
    total = -1;
  while (total >= 0 && sqlite3_step(st) == SQLITE_ROW) {
    int n = ref_meta_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), NULL, 0);
    total = n < 0 ? -1 : total + n;
  }
  sqlite3_finalize(st);
  sqlite3_close(s);
  return total;
}
