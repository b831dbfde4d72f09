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
  int damaged;          /* the file itself is damaged: the walk stopped there */
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
  return rc ? opl_db_error(v->db, OPLOG_INVALID_ARGUMENT, "interrupted by the problem callback") : OPLOG_OK;
}

/* checkpoint.c reports through this (an oplog code, as problem()). */
static int checkpoint_problem(void *ctx, int64_t id, const char *kind, const char *detail) {
  return problem(ctx, id, kind, "%s", detail);
}

static int tick(verify_ctx *v, int64_t done) {
  if (v->progress && v->progress(v->pctx, v->base + done, v->total))
    return opl_db_error(v->db, OPLOG_INVALID_ARGUMENT, "interrupted by the progress callback");
  return OPLOG_OK;
}

static void hex(char *out, const uint8_t *p, size_t n) { sodium_bin2hex(out, 2 * n + 1, p, n); }

/* Where each origin's chain stands during the walk (a file may hold very
 * many origins: found through a hash index). */
typedef struct chain_pos {
  int64_t origin; /* first: the key of chains.ix */
  int64_t seq, id, clock;
  int format;
  unsigned char hash[OPLOG_HASH_BYTES];
} chain_pos;

typedef struct chains {
  chain_pos *p;
  size_t n, cap;
  opl_hindex ix;
} chains;

static chain_pos *chain_of(chains *c, int64_t origin) {
  size_t at = opl_hindex_find(&c->ix, c->p, sizeof *c->p, sizeof origin, &origin);
  if (at != SIZE_MAX) return &c->p[at];
  chain_pos *grown = opl_grow(c->p, &c->cap, c->n, sizeof *grown);
  if (!grown) return NULL;
  c->p = grown;
  chain_pos *p = &c->p[c->n++];
  memset(p, 0, sizeof *p);
  p->origin = origin;
  return opl_hindex_add(&c->ix, c->p, sizeof *c->p, sizeof origin, c->n) ? NULL : p;
}

/* The derived rows must say exactly what the entries they cover say: a
 * forged or missing row would be a wrong answer to a query. */
typedef struct derived_walk {
  sqlite3_stmt *ix, *md; /* oplog_index and oplog_metadata, in entry order */
  int ixr, mdr;
  int64_t wm;
  agg_counts aggs;
  int64_t max_clock;
  /* oplog_touches (level 3, with the key): what the entries up to
   * touched_upto name goes to temp.oplog_verify_touches, compared at the end */
  oplog_db *db;
  int64_t tw;
  int touches;
  sqlite3_stmt *tins, *tseen;
  buf tkey;
} derived_walk;

/* A step of the derived walk that failed (I/O, memory) is an error, not a
 * missing row. */
static int derived_failed(oplog_db *db, const derived_walk *w) {
  if (w->ixr != SQLITE_ROW && w->ixr != SQLITE_DONE) return opl_db_sqlerr(db, w->ixr);
  if (w->mdr != SQLITE_ROW && w->mdr != SQLITE_DONE) return opl_db_sqlerr(db, w->mdr);
  return OPLOG_OK;
}

static int derived_entry(verify_ctx *v, derived_walk *w, const stored_entry *e) {
  oplog_db *db = v->db;
  int rc = derived_failed(db, w);
  if (rc) return rc;
  /* rows of entries that do not exist */
  while (!rc && w->ixr == SQLITE_ROW && sqlite3_column_int64(w->ix, 0) < e->id) {
    rc = problem(v, sqlite3_column_int64(w->ix, 0), "index_mismatch", "oplog_index has a row for entry %lld, which does not exist",
                 (long long)sqlite3_column_int64(w->ix, 0));
    w->ixr = sqlite3_step(w->ix);
  }
  while (!rc && w->mdr == SQLITE_ROW && sqlite3_column_int64(w->md, 0) < e->id) {
    int64_t mid = sqlite3_column_int64(w->md, 0);
    rc = problem(v, mid, "index_mismatch", "oplog_metadata has rows of entry %lld, which does not exist", (long long)mid);
    while (w->mdr == SQLITE_ROW && sqlite3_column_int64(w->md, 0) == mid) w->mdr = sqlite3_step(w->md);
  }
  if (rc) return rc;
  int covered = e->id <= w->wm;
  if (covered) {
    if (e->clock > w->max_clock) w->max_clock = e->clock;
    if (opl_agg_counts_add(&w->aggs, e->aggregate, e->aggregate_len)) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  }
  /* oplog_index */
  int has_ix = w->ixr == SQLITE_ROW && sqlite3_column_int64(w->ix, 0) == e->id;
  if (has_ix != covered) {
    rc = problem(v, e->id, "index_mismatch", covered ? "oplog_index lacks entry %lld" : "oplog_index has entry %lld, above its watermark",
                 (long long)e->id);
  } else if (has_ix) {
    size_t an;
    const char *agg = opl_col_bytes(w->ix, 3, &an);
    if (sqlite3_column_int64(w->ix, 1) != e->origin || sqlite3_column_int64(w->ix, 2) != e->seq ||
        (v->db->level >= 3 && sqlite3_column_int64(w->ix, 4) != e->clock) ||
        an != e->aggregate_len || memcmp(agg, e->aggregate, an) != 0)
      rc = problem(v, e->id, "index_mismatch", "oplog_index says otherwise than entry %lld", (long long)e->id);
  }
  if (has_ix) w->ixr = sqlite3_step(w->ix);
  if (rc || (rc = derived_failed(db, w))) return rc;
  /* oplog_metadata: the blob's pairs, in order, or no row at all */
  meta_reader mr;
  meta_pair m;
  if (!e->metadata) { /* not read (too large): its rows cannot be compared */
    while (w->mdr == SQLITE_ROW && sqlite3_column_int64(w->md, 0) == e->id) w->mdr = sqlite3_step(w->md);
    return derived_failed(db, w);
  }
  int s = opl_meta_open(&mr, e->metadata, e->nmetadata) ? 1 : -1, same = 1, any = 0;
  int64_t pos = 0;
  while (w->mdr == SQLITE_ROW && sqlite3_column_int64(w->md, 0) == e->id) {
    any = 1;
    pos++;
    if (s >= 0) s = opl_meta_next(&mr, &m);
    size_t kn, vn;
    const char *k = opl_col_bytes(w->md, 2, &kn), *val = opl_col_bytes(w->md, 3, &vn);
    int has = sqlite3_column_type(w->md, 3) != SQLITE_NULL;
    if (s != 1 || sqlite3_column_int64(w->md, 1) != pos || kn != m.nkey || memcmp(k, m.key, kn) != 0 ||
        has != m.has_value || (has && (vn != m.nvalue || memcmp(val, m.value, vn) != 0)))
      same = 0;
    w->mdr = sqlite3_step(w->md);
  }
  if (s >= 0 && (any || covered) && opl_meta_next(&mr, &m) != 0) same = 0; /* pairs without rows */
  if ((rc = derived_failed(db, w))) return rc;
  if (covered ? !same : any)
    rc = problem(v, e->id, "index_mismatch",
                 covered ? "oplog_metadata differs from the metadata of entry %lld" : "oplog_metadata has rows of entry %lld, above its watermark",
                 (long long)e->id);
  return rc;
}

/* After the walk: rows of entries past the newest, and the tickets. */
static int derived_finish(verify_ctx *v, derived_walk *w, int64_t config_clock) {
  oplog_db *db = v->db;
  int rc = derived_failed(db, w);
  if (rc) return rc;
  /* rows of entries past the newest, each entry once */
  for (; !rc && w->ixr == SQLITE_ROW; w->ixr = sqlite3_step(w->ix))
    rc = problem(v, sqlite3_column_int64(w->ix, 0), "index_mismatch", "oplog_index has a row for entry %lld, which does not exist",
                 (long long)sqlite3_column_int64(w->ix, 0));
  for (int64_t last = 0; !rc && w->mdr == SQLITE_ROW; w->mdr = sqlite3_step(w->md)) {
    int64_t mid = sqlite3_column_int64(w->md, 0);
    if (mid != last)
      rc = problem(v, mid, "index_mismatch", "oplog_metadata has rows of entry %lld, which does not exist", (long long)mid);
    last = mid;
  }
  if (!rc) rc = derived_failed(db, w);
  if (!rc && config_clock != w->max_clock)
    rc = problem(v, 0, "index_mismatch", "oplog_config says the clock is %lld, the entries it covers say %lld",
                 (long long)config_clock, (long long)w->max_clock);
  /* a ticket is 1 + the entries of its aggregate */
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT name, version FROM oplog_ticket", -1, &s, NULL);
  if (r != SQLITE_OK) return rc ? rc : opl_db_sqlerr(db, r);
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
    size_t n;
    const char *name = opl_col_bytes(s, 0, &n);
    int64_t count = opl_agg_counts_take(&w->aggs, name, n);
    if (sqlite3_column_int64(s, 1) != count + 1)
      rc = problem(v, 0, "index_mismatch", "the ticket of '%.*s' is at %lld, its %lld entries say %lld", (int)n, name,
                   (long long)sqlite3_column_int64(s, 1), (long long)count, (long long)count + 1);
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  for (size_t i = 0; !rc && i < w->aggs.n; i++)
    if (w->aggs.a[i].n)
      rc = problem(v, 0, "index_mismatch", "aggregate '%s' has entries but no ticket", w->aggs.a[i].name);
  return rc;
}

static int touch_expect(void *ctx, const type_def *t, const buf *key) {
  derived_walk *w = ctx;
  sqlite3_bind_text(w->tins, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_blob(w->tins, 2, key->p, (int)key->n, SQLITE_STATIC);
  int r = sqlite3_step(w->tins);
  sqlite3_reset(w->tins);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(w->db, r);
}

/* The touch rows entry id's operations name, expected in oplog_touches.
 * ops NULL: the entry cannot be read (reported otherwise): its rows are
 * not compared. */
static int touch_entry(verify_ctx *v, derived_walk *w, int64_t id, const oplog_op *ops, size_t nops) {
  oplog_db *db = v->db;
  if (!w->touches || id > w->tw || !ops) return OPLOG_OK;
  /* a failed step of the derived walk may have ended the transaction, and
   * the temp tables with it: that error first */
  int rc = derived_failed(db, w);
  if (rc) return rc;
  sqlite3_bind_int64(w->tins, 3, id);
  rc = opl_touch_rows(db, id, ops, nops, &w->tkey, touch_expect, w);
  if (rc == OPLOG_NOMEM || rc == OPLOG_IO || rc == OPLOG_SQL || rc == OPLOG_BUSY) return rc;
  if (rc) {
    /* operations that do not fit the catalog: replay reports them */
    opl_db_clear_error(db);
    return OPLOG_OK;
  }
  sqlite3_bind_int64(w->tseen, 1, id);
  int r = sqlite3_step(w->tseen);
  sqlite3_reset(w->tseen);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

/* oplog_touches against what the entries up to touched_upto name: rows
 * missing, rows no operation names, rows above the watermark or of no
 * entry. */
static int touch_finish(verify_ctx *v, derived_walk *w) {
  oplog_db *db = v->db;
  if (!w->touches) return OPLOG_OK;
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(
      db->sql,
      "SELECT 0, entry_id, min(type) FROM (SELECT type, key, entry_id FROM temp.oplog_verify_touches EXCEPT"
      " SELECT type, key, entry_id FROM main.oplog_touches) GROUP BY entry_id"
      " UNION ALL SELECT CASE WHEN entry_id > ?1 THEN 2 WHEN entry_id IN (SELECT entry_id FROM temp.oplog_verify_touch_seen)"
      " THEN 1 WHEN entry_id IN (SELECT id FROM main.oplog_entries) THEN -1 ELSE 3 END, entry_id, min(type)"
      " FROM (SELECT type, key, entry_id FROM main.oplog_touches EXCEPT"
      " SELECT type, key, entry_id FROM temp.oplog_verify_touches) GROUP BY entry_id ORDER BY 2, 1",
      -1, &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  sqlite3_bind_int64(s, 1, w->tw);
  int rc = OPLOG_OK;
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(s, 1);
    const char *type = (const char *)sqlite3_column_text(s, 2);
    if (!type) type = "?";
    switch (sqlite3_column_int(s, 0)) {
      case 0:
        rc = problem(v, id, "index_mismatch", "oplog_touches lacks a row of entry %lld (type %s)", (long long)id, type);
        break;
      case 1:
        rc = problem(v, id, "index_mismatch", "oplog_touches has a row of entry %lld (type %s) that its operations do not name",
                     (long long)id, type);
        break;
      case 2:
        rc = problem(v, id, "index_mismatch", "oplog_touches has rows of entry %lld, above its watermark %lld", (long long)id,
                     (long long)w->tw);
        break;
      case 3:
        rc = problem(v, id, "index_mismatch", "oplog_touches has rows of entry %lld, which does not exist", (long long)id);
        break;
      default: break; /* an entry that cannot be read: reported as such */
    }
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  return rc;
}

/* Walks the entries in id order, each origin's chain at once, with the
 * derived tables alongside (merge joins): the log is read once. */
static int walk_chain(verify_ctx *v, int decrypt, const unsigned char *head, int *head_seen) {
  oplog_db *db = v->db;
  sqlite3_stmt *es = NULL, *cfg = NULL;
  derived_walk w;
  memset(&w, 0, sizeof w);
  char *sql = sqlite3_mprintf("SELECT %s FROM oplog_entries ORDER BY id", db->entry_cols);
  int r = sql ? sqlite3_prepare_v2(db->sql, sql, -1, &es, NULL) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (r == SQLITE_OK)
    r = sqlite3_prepare_v2(db->sql,
                           db->level >= 3 ? "SELECT entry_id, origin, seq, aggregate_name, clock FROM oplog_index ORDER BY entry_id"
                                          : "SELECT entry_id, origin, seq, aggregate_name FROM oplog_index ORDER BY entry_id",
                           -1, &w.ix, NULL);
  if (r == SQLITE_OK)
    r = sqlite3_prepare_v2(db->sql, "SELECT entry_id, position, key, value FROM oplog_metadata ORDER BY entry_id, position",
                           -1, &w.md, NULL);
  if (r == SQLITE_OK)
    r = sqlite3_prepare_v2(db->sql,
                           "SELECT " SQL_INDEXED_UPTO ", (SELECT value FROM oplog_config WHERE name = 'clock'),"
                           " (SELECT value FROM oplog_config WHERE name = 'touched_upto')",
                           -1, &cfg, NULL);
  int rc = OPLOG_OK;
  int64_t config_clock = 0;
  if (r == SQLITE_OK && (r = sqlite3_step(cfg)) == SQLITE_ROW) {
    w.wm = sqlite3_column_int64(cfg, 0);
    config_clock = sqlite3_column_int64(cfg, 1);
    w.tw = sqlite3_column_int64(cfg, 2);
    r = SQLITE_OK;
  }
  if (r != SQLITE_OK) rc = opl_db_sqlerr(db, r);
  /* the touch index is built from the decrypted entries: checked with the key */
  w.db = db;
  w.touches = !rc && decrypt && db->level >= 3;
  if (w.touches &&
      /* left over from a verify whose DROP was refused (the caller had a
       * statement running, as it may still have): emptied, not dropped */
      !(rc = opl_db_exec(db, "CREATE TEMP TABLE IF NOT EXISTS oplog_verify_touches (type TEXT, key BLOB, entry_id INTEGER,"
                             " PRIMARY KEY (type, key, entry_id)) WITHOUT ROWID;"
                             "CREATE TEMP TABLE IF NOT EXISTS oplog_verify_touch_seen (entry_id INTEGER PRIMARY KEY);"
                             "DELETE FROM temp.oplog_verify_touches; DELETE FROM temp.oplog_verify_touch_seen"))) {
    r = sqlite3_prepare_v2(db->sql, "INSERT OR IGNORE INTO temp.oplog_verify_touches VALUES (?1, ?2, ?3)", -1, &w.tins, NULL);
    if (r == SQLITE_OK)
      r = sqlite3_prepare_v2(db->sql, "INSERT OR IGNORE INTO temp.oplog_verify_touch_seen VALUES (?1)", -1, &w.tseen, NULL);
    if (r != SQLITE_OK) rc = opl_db_sqlerr(db, r);
  }
  if (rc == OPLOG_CORRUPT) {
    /* a damaged file: the walk reports where; the touch index goes unchecked */
    opl_db_clear_error(db);
    rc = OPLOG_OK;
    w.touches = 0;
  }
  if (!rc) {
    w.ixr = sqlite3_step(w.ix);
    w.mdr = sqlite3_step(w.md);
  }
  arena a = {0};
  chains pos = {0};
  int64_t prev_id = 0;
  static const uint8_t zero[OPLOG_HASH_BYTES];
  while (!rc && (r = sqlite3_step(es)) == SQLITE_ROW) {
    stored_entry e;
    v->out->entries++;
    int64_t id = sqlite3_column_int64(es, 0);
    if (id != prev_id + 1)
      rc = problem(v, id, "missing_entry", "entries %lld to %lld are missing before entry %lld", (long long)prev_id + 1,
                   (long long)id - 1, (long long)id);
    prev_id = id;
    if (rc) break;
    int d = opl_entry_from_row(db, es, &e);
    if (d == OPLOG_NOMEM || (d && d != OPLOG_CORRUPT)) {
      rc = d;
      break;
    }
    /* an entry over max_entry_bytes is not loaded: its hash cannot be
     * checked, but its place in the chain and the derived rows can */
    int unread = d == OPLOG_CORRUPT && e.origin_id && !e.data;
    if (d && !unread) {
      rc = problem(v, id, "hash_mismatch", "%s", oplog_errmsg(db));
      continue;
    }
    if (unread && (rc = problem(v, id, "too_large", "%s", oplog_errmsg(db)))) break;
    chain_pos *c = chain_of(&pos, e.origin);
    if (!c) {
      rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    unsigned char computed[OPLOG_HASH_BYTES];
    int bad_meta = !unread && opl_chain_hash(&e, computed) != OPLOG_OK;
    if (!bad_meta && !unread) {
      meta_reader mr;
      meta_pair m;
      int ms = opl_meta_open(&mr, e.metadata, e.nmetadata) ? 1 : -1;
      while (ms == 1) ms = opl_meta_next(&mr, &m);
      bad_meta = ms < 0;
    }
    if (e.seq != c->seq + 1) {
      if (e.seq > c->seq + 1)
        rc = problem(v, id, "missing_entry", "entries %lld to %lld of its origin are missing before entry %lld (seq %lld)",
                     (long long)c->seq + 1, (long long)e.seq - 1, (long long)id, (long long)e.seq);
      else
        rc = problem(v, id, "chain_break", "entry %lld has seq %lld where its origin is at %lld", (long long)id,
                     (long long)e.seq, (long long)c->seq);
    }
    if (!rc && memcmp(e.prev_hash, c->seq ? c->hash : zero, OPLOG_HASH_BYTES) != 0)
      rc = problem(v, id, "chain_break", "entry %lld does not link to the hash of its origin's entry %lld", (long long)id,
                   (long long)c->id);
    /* import refuses both (FORMAT.md 14.4): here they were written into the file */
    if (!rc && c->seq && e.clock <= c->clock)
      rc = problem(v, id, "chain_break", "entry %lld has clock %lld, not above its origin's entry %lld's %lld", (long long)id,
                   (long long)e.clock, (long long)c->id, (long long)c->clock);
    if (!rc && c->format == 2 && e.format == 1)
      rc = problem(v, id, "chain_break", "entry %lld is format 1 after its origin's format-2 entry %lld (format 1 is only a migrated start)",
                   (long long)id, (long long)c->id);
    if (!rc && !bad_meta && !unread && memcmp(e.hash, computed, OPLOG_HASH_BYTES) != 0)
      rc = problem(v, id, "hash_mismatch", "entry %lld changed after it was written", (long long)id);
    if (!rc && bad_meta)
      rc = problem(v, id, "decrypt_failed", "entry %lld: its metadata does not decode", (long long)id);
    if (!rc && head && e.origin == 1 && memcmp(e.hash, head, OPLOG_HASH_BYTES) == 0) *head_seen = 1;
    /* key_id 0 in an encrypted file needs no key to be seen: the file's
     * setting is stored in the clear */
    if (!rc && !unread && (decrypt || (db->kr.encrypted && e.key_id == 0))) {
      db->scratch2.n = 0;
      int d2 = opl_crypto_decrypt_entry(db, &e, &db->scratch2);
      const oplog_op *ops = NULL;
      size_t nops = 0;
      if (!d2) d2 = opl_entry_decode(db, &a, db->scratch2.p, db->scratch2.n, &ops, &nops);
      /* an environmental failure of the touch check ends the walk */
      if (!d2 && (d2 = touch_entry(v, &w, id, ops, nops))) rc = d2;
      opl_arena_reset(&a);
      if (db->scratch2.n) sodium_memzero(db->scratch2.p, db->scratch2.n);
      if (rc) break;
      if (d2 == OPLOG_NOMEM) rc = d2;
      else if (d2) rc = problem(v, id, "decrypt_failed", "%s", (opl_db_error_entry(db, d2, id), oplog_errmsg(db)));
    }
    if (!rc) rc = derived_entry(v, &w, &e);
    c->seq = e.seq;
    c->id = id;
    c->clock = e.clock;
    c->format = e.format;
    memcpy(c->hash, e.hash, OPLOG_HASH_BYTES);
    if (!rc && v->out->entries % PROGRESS_EVERY == 0) rc = tick(v, v->out->entries);
  }
  if (!rc && r != SQLITE_DONE && opl_map_sqlite_code(r) == OPLOG_CORRUPT) {
    /* a truncated or half-copied file: report what was checked up to the
     * damage instead of failing without a word on the rest */
    opl_db_sqlerr(db, r);
    rc = problem(v, prev_id + 1, "corrupt", "the file is damaged after entry %lld (%lld entries checked): %s",
                 (long long)prev_id, (long long)v->out->entries, oplog_errmsg(db));
    r = SQLITE_DONE;
    w.ixr = w.mdr = SQLITE_DONE;
    v->damaged = 1;
  } else if (!rc && r != SQLITE_DONE) {
    rc = opl_db_sqlerr(db, r);
  } else if (!rc) {
    rc = derived_finish(v, &w, config_clock);
    if (!rc) rc = touch_finish(v, &w);
  }
  if (!rc) rc = tick(v, v->out->entries);
  opl_agg_counts_free(&w.aggs);
  sqlite3_free(pos.p);
  opl_hindex_free(&pos.ix);
  opl_arena_free(&a);
  sqlite3_finalize(es);
  sqlite3_finalize(cfg);
  sqlite3_finalize(w.ix);
  sqlite3_finalize(w.md);
  sqlite3_finalize(w.tins);
  sqlite3_finalize(w.tseen);
  opl_buf_free(&w.tkey);
  if (w.touches) {
    /* DROP is refused while the caller has a statement running: empty
     * them then; a failure that ended the transaction is an error. The
     * walk's own error stays as it is. */
    int d = sqlite3_exec(db->sql, "DROP TABLE IF EXISTS temp.oplog_verify_touches;"
                                  " DROP TABLE IF EXISTS temp.oplog_verify_touch_seen", NULL, NULL, NULL);
    if (d != SQLITE_OK && !sqlite3_get_autocommit(db->sql))
      sqlite3_exec(db->sql, "DELETE FROM temp.oplog_verify_touches; DELETE FROM temp.oplog_verify_touch_seen", NULL, NULL, NULL);
    else if (d != SQLITE_OK && !rc)
      rc = opl_db_sqlerr(db, d);
  }
  return rc;
}

/* New entries use this origin's newest data key that unwraps, whatever
 * the state column says; a state that disagrees was set by someone who can
 * write the file (e.g. a retired key marked active again). */
static int check_key_states(verify_ctx *v) {
  oplog_db *db = v->db;
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT id, state FROM oplog_keys WHERE origin = 1 ORDER BY id", -1, &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  int rc = OPLOG_OK;
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(s, 0);
    size_t n;
    const char *state = opl_col_bytes(s, 1, &n);
    int active = n == 6 && memcmp(state, "active", 6) == 0;
    if (active != (id == db->kr.active))
      rc = problem(v, 0, "key_state_mismatch", "data key %lld is marked %.*s, but key %lld is the newest", (long long)id,
                   (int)n, state, (long long)db->kr.active);
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  return rc;
}

static int replay_progress(void *ctx, int64_t done, int64_t total) {
  (void)total;
  return tick(ctx, done) != OPLOG_OK;
}

/* Rows that differ between the live table and its replay, by key. */
static int compare_type(verify_ctx *v, const type_def *t) {
  oplog_db *db = v->db;
  sqlite3_str *c = sqlite3_str_new(db->sql), *k = sqlite3_str_new(db->sql);
  for (size_t i = 0; i < t->ncols; i++) sqlite3_str_appendf(c, "%s\"%w\"", i ? ", " : "", t->col_names[i]);
  for (size_t i = 0; i < t->nkey; i++)
    sqlite3_str_appendf(k, "%squote(\"%w\")", i ? " || ', ' || " : "", t->col_names[t->key_idx[i]]);
  char *cols = sqlite3_str_finish(c), *keys = sqlite3_str_finish(k);
  char *sql = cols && keys
                  ? sqlite3_mprintf("SELECT %s FROM (SELECT %s FROM main.\"%w\" EXCEPT SELECT %s FROM temp.\"%w%s\")"
                                    " UNION SELECT %s FROM (SELECT %s FROM temp.\"%w%s\" EXCEPT SELECT %s FROM main.\"%w\")",
                                    keys, cols, t->table, cols, t->table, VERIFY_SUFFIX, keys, cols, t->table,
                                    VERIFY_SUFFIX, cols, t->table)
                  : NULL;
  sqlite3_free(cols);
  sqlite3_free(keys);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL);
  sqlite3_free(sql);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  int rc = OPLOG_OK;
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW)
    rc = problem(v, 0, "live_mismatch", "table %s, key (%s): the live row differs from the replayed log", t->table,
                 sqlite3_column_text(s, 0));
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  return rc;
}

/* Runs "<verb> temp.<table>_oplog_verify" for every type; 0 or the first error. */
static int each_temp(oplog_db *db, const char *verb) {
  int rc = OPLOG_OK;
  for (size_t i = 0; i < db->ntypes; i++) {
    char *sql = sqlite3_mprintf("%s temp.\"%w%s\"", verb, db->types[i]->table, VERIFY_SUFFIX);
    int d = sql ? opl_db_exec(db, sql) : opl_db_error(db, OPLOG_NOMEM, "out of memory");
    sqlite3_free(sql);
    if (!rc) rc = d;
  }
  return rc;
}

/* The conflicts a replay in total order finds, kept to compare with
 * oplog_conflicts. */
static int found_conflict(void *ctx, int64_t entry_id, int op, const char *kind, const char *detail) {
  verify_ctx *v = ctx;
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(v->db->sql, "INSERT INTO temp.oplog_verify_conflicts VALUES (?1, ?2, ?3, ?4)", -1, &s, NULL);
  if (r == SQLITE_OK) {
    sqlite3_bind_int64(s, 1, entry_id);
    sqlite3_bind_int(s, 2, op);
    sqlite3_bind_text(s, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, detail, -1, SQLITE_STATIC);
    r = sqlite3_step(s);
  }
  sqlite3_finalize(s);
  return r != SQLITE_DONE;
}

/* Conflicts recorded and found must be the same entries, operations and
 * kinds (a detail names the table the replay wrote, so it is not compared). */
static int compare_conflicts(verify_ctx *v) {
  oplog_db *db = v->db;
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(
      db->sql,
      "SELECT 0, entry_id, op, kind FROM (SELECT entry_id, op, kind FROM main.oplog_conflicts EXCEPT"
      " SELECT entry_id, op, kind FROM temp.oplog_verify_conflicts)"
      " UNION ALL SELECT 1, entry_id, op, kind FROM (SELECT entry_id, op, kind FROM temp.oplog_verify_conflicts EXCEPT"
      " SELECT entry_id, op, kind FROM main.oplog_conflicts) ORDER BY 2, 1",
      -1, &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  int rc = OPLOG_OK;
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(s, 1);
    int op = sqlite3_column_int(s, 2);
    const char *kind = (const char *)sqlite3_column_text(s, 3);
    rc = sqlite3_column_int(s, 0) == 0
             ? problem(v, id, "conflict_mismatch",
                       "entry %lld: oplog_conflicts records a conflict (operation %d, %s) the replay in total order does not find",
                       (long long)id, op, kind ? kind : "?")
             : problem(v, id, "conflict_mismatch",
                       "entry %lld: the replay in total order skips it (operation %d, %s), oplog_conflicts does not record it",
                       (long long)id, op, kind ? kind : "?");
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
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
  int rc = opl_catalog_load(db);
  for (size_t i = 0; !rc && i < db->ntypes; i++) {
    int has = 0;
    char *name = sqlite3_mprintf("%s%s", db->types[i]->table, VERIFY_SUFFIX);
    if (!name) rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
    else if (sqlite3_table_column_metadata(db->sql, "temp", name, NULL, NULL, NULL, NULL, NULL, NULL) == SQLITE_OK)
      has = 1;
    sqlite3_free(name);
    if (has) {
      char *sql = sqlite3_mprintf("DELETE FROM temp.\"%w%s\"", db->types[i]->table, VERIFY_SUFFIX);
      rc = sql ? opl_db_exec(db, sql) : opl_db_error(db, OPLOG_NOMEM, "out of memory");
      sqlite3_free(sql);
    }
  }
  int sync = db->level >= 3;
  if (!rc && sync)
    rc = opl_db_exec(db, "DROP TABLE IF EXISTS temp.oplog_verify_conflicts; CREATE TEMP TABLE oplog_verify_conflicts"
                         " (entry_id INTEGER PRIMARY KEY, op INTEGER, kind TEXT, detail TEXT)");
  if (!rc) rc = opl_replay_run(db, "temp", VERIFY_SUFFIX, &all, 0, replay_progress, v, &res, &bad, sync ? found_conflict : NULL, v);
  if (rc && bad) {
    /* a log that cannot be replayed is a finding, not a failure to check */
    rc = problem(v, bad, rc == OPLOG_DECRYPT_FAILED ? "decrypt_failed" : "live_mismatch",
                 "the log does not replay: %s", oplog_errmsg(db));
  } else if (!rc) {
    for (size_t i = 0; i < db->ntypes && !rc; i++) rc = compare_type(v, db->types[i]);
    if (!rc && sync) rc = compare_conflicts(v);
  }
  if (sync && opl_db_exec(db, "DROP TABLE IF EXISTS temp.oplog_verify_conflicts") && !sqlite3_get_autocommit(db->sql))
    opl_db_exec(db, "DELETE FROM temp.oplog_verify_conflicts");
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
  opl_db_clear_error(db);
  static const oplog_verify_opts defaults;
  oplog_verify_result ignored;
  if (!o) o = &defaults;
  if (!out) out = &ignored;
  memset(out, 0, sizeof *out);
  out->ok = 1;
  if (db->tx != TX_NONE) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "finish the open transaction first");
  int can_decrypt = !db->kr.encrypted || db->kr.have_key;
  if (o->replay && !can_decrypt)
    return opl_db_error(db, OPLOG_KEY_REQUIRED, "verify with replay needs the key");
  verify_ctx v = {db, fn, ctx, out, o->progress, o->progress_ctx, 0, 0, 0};
  /* One read transaction: every phase sees the same snapshot. */
  int rc = opl_db_begin(db, 0);
  if (rc) return rc;
  if (o->progress) {
    oplog_filter all = {0};
    v.total = opl_iter_count(db, &all, &rc);
    if (o->replay) v.total *= 2;
    if (rc == OPLOG_CORRUPT) rc = OPLOG_OK; /* a damaged file: the walk reports what it can, total unknown */
  }
  int head_seen = 0;
  if (!rc && o->checkpoint) rc = opl_checkpoint_verify(db, o->checkpoint, strlen(o->checkpoint), checkpoint_problem, &v);
  if (!rc) rc = walk_chain(&v, can_decrypt, o->head, &head_seen);
  if (!rc && o->head && !head_seen) {
    char h[2 * OPLOG_HASH_BYTES + 1];
    hex(h, o->head, OPLOG_HASH_BYTES);
    rc = problem(&v, 0, "head_mismatch", "no entry has the head hash %s: entries were cut off or rewritten", h);
  }
  if (!rc && db->kr.encrypted && db->kr.have_key && db->format == OPLOG_FORMAT_VERSION) rc = check_key_states(&v);
  if (!rc && o->replay && !v.damaged) rc = verify_replay(&v);
  /* after damage SQLite may refuse even to end the read: what was found
   * stands, the read transaction is just dropped */
  if (!rc && !v.damaged) rc = opl_db_commit(db);
  if (rc || v.damaged) opl_db_rollback(db);
  if (!rc) opl_db_clear_error(db);
  return rc;
}
