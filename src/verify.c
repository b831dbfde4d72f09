/* verify.c — checking a log: the hash chain and immutability (no key
 * needed), decryption of every entry (with the key), a full replay compared
 * with the live tables, and that a recorded head is still in the chain. */
#include <string.h>

#include "internal.h"

#define VERIFY_SUFFIX "_oplog_verify"
#define PROGRESS_EVERY 1024

typedef struct verify_ctx {
  oplog_db *db;
  oplog_problem_fn fn;
  void *ctx;
  oplog_verify_result *out;
  oplog_progress_fn progress;
  void *pctx;
  int64_t base, total; /* progress offset and total over both phases */
} verify_ctx;

static int problem(verify_ctx *v, int64_t id, const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *detail = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  v->out->problems++;
  v->out->ok = 0;
  int rc = v->fn ? v->fn(v->ctx, id, kind, detail ? detail : kind) : 0;
  sqlite3_free(detail);
  return rc ? db_error(v->db, OPLOG_INVALID_ARGUMENT, "interrupted by the problem callback") : OPLOG_OK;
}

static int tick(verify_ctx *v, int64_t done) {
  if (v->progress && v->progress(v->pctx, v->base + done, v->total))
    return db_error(v->db, OPLOG_INVALID_ARGUMENT, "interrupted by the progress callback");
  return OPLOG_OK;
}

static void hex(char *out, const uint8_t *p, size_t n) { sodium_bin2hex(out, 2 * n + 1, p, n); }

/* Walks entries and metadata together in id order (a merge join), so the
 * whole log is read once, sequentially. */
static int walk_chain(verify_ctx *v, int decrypt, const unsigned char *head, int *head_seen) {
  oplog_db *db = v->db;
  sqlite3_stmt *es = NULL, *ms = NULL;
  int r = sqlite3_prepare_v2(db->sql,
                             "SELECT id, created, aggregate, key_id, data, prev_hash, hash FROM oplog_entries ORDER BY id",
                             -1, &es, NULL);
  if (r == SQLITE_OK)
    r = sqlite3_prepare_v2(db->sql, "SELECT entry_id, key, value FROM oplog_metadata ORDER BY entry_id, seq", -1,
                           &ms, NULL);
  if (r != SQLITE_OK) {
    sqlite3_finalize(es);
    return db_sqlerr(db, r);
  }
  arena a = {0};
  int rc = OPLOG_OK;
  int mr = sqlite3_step(ms);
  int64_t prev_id = 0, last_orphan = 0;
  unsigned char prev_hash[OPLOG_HASH_BYTES] = {0};
  while (!rc && (r = sqlite3_step(es)) == SQLITE_ROW) {
    size_t agg_len;
    chain_entry e = {.id = sqlite3_column_int64(es, 0),
                     .created = sqlite3_column_int64(es, 1),
                     .aggregate = col_bytes(es, 2, &agg_len),
                     .key_id = sqlite3_column_int64(es, 3),
                     .data = sqlite3_column_blob(es, 4),
                     .ndata = (size_t)sqlite3_column_bytes(es, 4)};
    e.aggregate_len = agg_len;
    const uint8_t *stored_prev = sqlite3_column_blob(es, 5);
    const uint8_t *stored_hash = sqlite3_column_blob(es, 6);
    int good_prev = sqlite3_column_bytes(es, 5) == OPLOG_HASH_BYTES;
    int good_hash = sqlite3_column_bytes(es, 6) == OPLOG_HASH_BYTES;
    static const uint8_t zero[OPLOG_HASH_BYTES];
    e.prev_hash = good_prev ? stored_prev : zero;
    v->out->entries++;
    /* metadata rows of entries that do not exist */
    while (mr == SQLITE_ROW && sqlite3_column_int64(ms, 0) < e.id) {
      int64_t mid = sqlite3_column_int64(ms, 0);
      if (mid != last_orphan && (rc = problem(v, mid, "missing_entry", "metadata of entry %lld without its entry", (long long)mid)))
        break;
      last_orphan = mid;
      mr = sqlite3_step(ms);
    }
    if (rc) break;
    crypto_generichash_state st;
    chain_begin(&st, &e);
    size_t nmd = 0;
    while (mr == SQLITE_ROW && sqlite3_column_int64(ms, 0) == e.id) {
      int has = sqlite3_column_type(ms, 2) != SQLITE_NULL;
      size_t kn, vn;
      const char *k = col_bytes(ms, 1, &kn), *val = col_bytes(ms, 2, &vn);
      chain_meta(&st, k, kn, val, vn, has);
      nmd++;
      mr = sqlite3_step(ms);
    }
    unsigned char computed[OPLOG_HASH_BYTES];
    chain_finish(&st, &e, nmd, computed);
    if (e.id != prev_id + 1) {
      if (e.id > prev_id + 1)
        rc = problem(v, e.id, "missing_entry", "entries %lld to %lld are missing before entry %lld",
                     (long long)prev_id + 1, (long long)e.id - 1, (long long)e.id);
      else
        rc = problem(v, e.id, "chain_break", "entry id %lld does not follow %lld", (long long)e.id, (long long)prev_id);
    }
    if (!rc && (!good_prev || memcmp(stored_prev, prev_hash, OPLOG_HASH_BYTES) != 0))
      rc = problem(v, e.id, "chain_break", "entry %lld does not link to the hash of entry %lld", (long long)e.id,
                   (long long)prev_id);
    if (!rc && (!good_hash || memcmp(stored_hash, computed, OPLOG_HASH_BYTES) != 0))
      rc = problem(v, e.id, "hash_mismatch", "entry %lld or its metadata changed after it was written",
                   (long long)e.id);
    if (!rc && head && good_hash && memcmp(stored_hash, head, OPLOG_HASH_BYTES) == 0) *head_seen = 1;
    if (!rc && decrypt) {
      db->scratch2.n = 0;
      char *aggregate = sqlite3_mprintf("%.*s", (int)e.aggregate_len, e.aggregate ? e.aggregate : "");
      if (!aggregate) rc = db_error(db, OPLOG_NOMEM, "out of memory");
      int d = rc ? rc : crypto_decrypt_entry(db, e.id, aggregate, e.key_id, e.data, e.ndata, &db->scratch2);
      if (!d) {
        const oplog_op *ops;
        size_t nops;
        d = entry_decode(db, &a, db->scratch2.p, db->scratch2.n, &ops, &nops);
        arena_reset(&a);
      }
      if (db->scratch2.n) sodium_memzero(db->scratch2.p, db->scratch2.n);
      sqlite3_free(aggregate);
      if (d == OPLOG_NOMEM) rc = d;
      else if (d && !rc) rc = problem(v, e.id, "decrypt_failed", "entry %lld: %s", (long long)e.id, oplog_errmsg(db));
    }
    prev_id = e.id;
    if (good_hash) memcpy(prev_hash, stored_hash, OPLOG_HASH_BYTES);
    else memset(prev_hash, 0xff, OPLOG_HASH_BYTES);
    if (!rc && v->out->entries % PROGRESS_EVERY == 0) rc = tick(v, v->out->entries);
  }
  if (!rc && r != SQLITE_DONE) rc = db_sqlerr(db, r);
  while (!rc && mr == SQLITE_ROW) {
    int64_t mid = sqlite3_column_int64(ms, 0);
    if (mid != last_orphan) rc = problem(v, mid, "missing_entry", "metadata of entry %lld without its entry", (long long)mid);
    last_orphan = mid;
    mr = sqlite3_step(ms);
  }
  if (!rc && mr != SQLITE_DONE && mr != SQLITE_ROW) rc = db_sqlerr(db, mr);
  if (!rc) rc = tick(v, v->out->entries);
  arena_free(&a);
  sqlite3_finalize(es);
  sqlite3_finalize(ms);
  return rc;
}

static int replay_progress(void *ctx, int64_t done, int64_t total) {
  (void)total;
  return tick(ctx, done) != OPLOG_OK;
}

/* Rows that differ between the live table and its replay, by key. */
static int compare_type(verify_ctx *v, const type_def *t) {
  oplog_db *db = v->db;
  char *cols = sqlite3_mprintf("%s", ""), *keys = sqlite3_mprintf("%s", "");
  for (size_t i = 0; cols && i < t->ncols; i++) {
    char *m = sqlite3_mprintf("%s%s\"%w\"", cols, i ? ", " : "", t->col_names[i]);
    sqlite3_free(cols);
    cols = m;
  }
  for (size_t k = 0; keys && k < t->nkey; k++) {
    char *m = sqlite3_mprintf("%s%squote(\"%w\")", keys, k ? " || ', ' || " : "", t->col_names[t->key_idx[k]]);
    sqlite3_free(keys);
    keys = m;
  }
  char *sql = cols && keys
                  ? sqlite3_mprintf("SELECT %s FROM (SELECT %s FROM main.\"%w\" EXCEPT SELECT %s FROM temp.\"%w%s\")"
                                    " UNION SELECT %s FROM (SELECT %s FROM temp.\"%w%s\" EXCEPT SELECT %s FROM main.\"%w\")",
                                    keys, cols, t->table, cols, t->table, VERIFY_SUFFIX, keys, cols, t->table,
                                    VERIFY_SUFFIX, cols, t->table)
                  : NULL;
  sqlite3_free(cols);
  sqlite3_free(keys);
  if (!sql) return db_error(db, OPLOG_NOMEM, "out of memory");
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL);
  sqlite3_free(sql);
  if (r != SQLITE_OK) return db_sqlerr(db, r);
  int rc = OPLOG_OK;
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW)
    rc = problem(v, 0, "live_mismatch", "table %s, key (%s): the live row differs from the replayed log", t->table,
                 sqlite3_column_text(s, 0));
  if (!rc && r != SQLITE_DONE) rc = db_sqlerr(db, r);
  sqlite3_finalize(s);
  return rc;
}

/* Runs "<verb> temp.<table>_oplog_verify" for every type; 0 or the first error. */
static int each_temp(oplog_db *db, const char *verb) {
  int rc = OPLOG_OK;
  for (size_t i = 0; i < db->ntypes; i++) {
    char *sql = sqlite3_mprintf("%s temp.\"%w%s\"", verb, db->types[i]->table, VERIFY_SUFFIX);
    int d = sql ? db_exec(db, sql) : db_error(db, OPLOG_NOMEM, "out of memory");
    sqlite3_free(sql);
    if (!rc) rc = d;
  }
  return rc;
}

static int verify_replay(verify_ctx *v) {
  oplog_db *db = v->db;
  oplog_filter all = {0};
  oplog_replay_result res;
  int64_t bad = 0;
  v->base = v->out->entries;
  /* Left over from a verify whose DROP could not run: empty them (DROP is
   * refused while the caller has a statement running, DELETE is not). */
  int rc = catalog_load(db);
  for (size_t i = 0; !rc && i < db->ntypes; i++) {
    int has = 0;
    char *name = sqlite3_mprintf("%s%s", db->types[i]->table, VERIFY_SUFFIX);
    if (!name) rc = db_error(db, OPLOG_NOMEM, "out of memory");
    else if (sqlite3_table_column_metadata(db->sql, "temp", name, NULL, NULL, NULL, NULL, NULL, NULL) == SQLITE_OK)
      has = 1;
    sqlite3_free(name);
    if (has) {
      char *sql = sqlite3_mprintf("DELETE FROM temp.\"%w%s\"", db->types[i]->table, VERIFY_SUFFIX);
      rc = sql ? db_exec(db, sql) : db_error(db, OPLOG_NOMEM, "out of memory");
      sqlite3_free(sql);
    }
  }
  if (!rc) rc = replay_run(db, "temp", VERIFY_SUFFIX, &all, 0, replay_progress, v, &res, &bad);
  if (rc && bad) {
    /* a log that cannot be replayed is a finding, not a failure to check */
    rc = problem(v, bad, rc == OPLOG_DECRYPT_FAILED ? "decrypt_failed" : "live_mismatch",
                 "the log does not replay: %s", oplog_errmsg(db));
  } else if (!rc) {
    for (size_t i = 0; i < db->ntypes && !rc; i++) rc = compare_type(v, db->types[i]);
  }
  /* Temporary tables outlive COMMIT: drop them. If DROP is refused while
   * the caller has a statement running, empty them instead; a failure
   * that ended SQLite's transaction is an error. */
  int d = each_temp(db, "DROP TABLE IF EXISTS");
  if (d && !sqlite3_get_autocommit(db->sql)) d = each_temp(db, "DELETE FROM");
  if (!rc && d && sqlite3_get_autocommit(db->sql)) rc = d;
  return rc;
}

int oplog_verify(oplog_db *db, const oplog_verify_opts *o, oplog_problem_fn fn, void *ctx,
                 oplog_verify_result *out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  db_clear_error(db);
  static const oplog_verify_opts defaults;
  oplog_verify_result ignored;
  if (!o) o = &defaults;
  if (!out) out = &ignored;
  memset(out, 0, sizeof *out);
  out->ok = 1;
  if (db->tx != TX_NONE) return db_error(db, OPLOG_INVALID_ARGUMENT, "finish the open transaction first");
  int can_decrypt = !db->kr.encrypted || db->kr.have_key;
  if (o->replay && !can_decrypt)
    return db_error(db, OPLOG_KEY_REQUIRED, "verify with replay needs the key");
  verify_ctx v = {db, fn, ctx, out, o->progress, o->progress_ctx, 0, 0};
  /* One read transaction: every phase sees the same snapshot. */
  int rc = db_begin(db, 0);
  if (rc) return rc;
  if (o->progress) {
    oplog_filter all = {0};
    v.total = iter_count(db, &all, &rc);
    if (o->replay) v.total *= 2;
  }
  int head_seen = 0;
  if (!rc) rc = walk_chain(&v, can_decrypt, o->head, &head_seen);
  if (!rc && o->head && !head_seen) {
    char h[2 * OPLOG_HASH_BYTES + 1];
    hex(h, o->head, OPLOG_HASH_BYTES);
    rc = problem(&v, 0, "head_mismatch", "no entry has the head hash %s: entries were cut off or rewritten", h);
  }
  if (!rc && o->replay) rc = verify_replay(&v);
  if (!rc) rc = db_commit(db);
  if (rc) db_rollback(db);
  return rc;
}
