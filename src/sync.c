/* sync.c — shipping entries between files: heads and cursors, export (a
 * stream of every entry beyond a cursor, with the types, bases, sealed
 * data keys and checkpoints that go with them), import (all or nothing,
 * frame by frame, checking each origin's chain against what the file
 * holds) and join. The stream's bytes are stream.c's; applying imported
 * entries to the live tables is converge.c's. FORMAT.md "Stream". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "oplog.pb-c.h"

#define PROGRESS_EVERY 1024
#define WM SQL_INDEXED_UPTO

void oplog_free(void *p) { sqlite3_free(p); }

static const unsigned char zero_hash[OPLOG_HASH_BYTES];

static void hex(const uint8_t *id, char out[2 * OPLOG_ORIGIN_BYTES + 1]) {
  sodium_bin2hex(out, 2 * OPLOG_ORIGIN_BYTES + 1, id, OPLOG_ORIGIN_BYTES);
}

/* ---------------------------------------------------------------- what the file holds
 * Per origin: the newest entry, and the entry at a seq. Complete answers
 * are the derived oplog_index plus the entries above its watermark. */

typedef struct lookups {
  sqlite3_stmt *top_tail, *top_indexed, *at, *origin_no, *origin_add;
} lookups;

static int lookups_open(oplog_db *db, lookups *l) {
  static const char *const sql[] = {
      "SELECT id, seq, clock, hash, format FROM oplog_entries WHERE id > " WM " AND origin = ?1 ORDER BY id DESC LIMIT 1",
      "SELECT e.id, e.seq, e.clock, e.hash, e.format FROM oplog_index x JOIN oplog_entries e ON e.id = x.entry_id"
      " WHERE x.origin = ?1 ORDER BY x.seq DESC LIMIT 1",
      "SELECT e.id, e.hash FROM oplog_index x JOIN oplog_entries e ON e.id = x.entry_id"
      " WHERE x.origin = ?1 AND x.seq = ?2"
      " UNION ALL SELECT id, hash FROM oplog_entries WHERE id > " WM " AND origin = ?1 AND seq = ?2 LIMIT 1",
      "SELECT no FROM oplog_origins WHERE id = ?1",
      "INSERT INTO oplog_origins (id) VALUES (?1)"};
  sqlite3_stmt **st[] = {&l->top_tail, &l->top_indexed, &l->at, &l->origin_no, &l->origin_add};
  memset(l, 0, sizeof *l);
  for (size_t i = 0; i < sizeof st / sizeof *st; i++) {
    int r = sqlite3_prepare_v2(db->sql, sql[i], -1, st[i], NULL);
    if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  }
  return OPLOG_OK;
}

static void lookups_close(lookups *l) {
  sqlite3_finalize(l->top_tail);
  sqlite3_finalize(l->top_indexed);
  sqlite3_finalize(l->at);
  sqlite3_finalize(l->origin_no);
  sqlite3_finalize(l->origin_add);
}

typedef struct held {
  int64_t seq, clock, id;
  int format;
  unsigned char hash[OPLOG_HASH_BYTES];
} held;

/* The newest entry of origin no (seq 0, zero hash if none). */
static int held_top(oplog_db *db, lookups *l, int64_t no, held *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st[2] = {l->top_tail, l->top_indexed};
  for (int i = 0; i < 2; i++) {
    sqlite3_stmt *s = st[i];
    sqlite3_bind_int64(s, 1, no);
    int r = sqlite3_step(s), rc = OPLOG_OK;
    if (r == SQLITE_ROW) {
      out->id = sqlite3_column_int64(s, 0);
      out->seq = sqlite3_column_int64(s, 1);
      out->clock = sqlite3_column_int64(s, 2);
      out->format = sqlite3_column_int(s, 4);
      if (sqlite3_column_bytes(s, 3) == OPLOG_HASH_BYTES) memcpy(out->hash, sqlite3_column_blob(s, 3), OPLOG_HASH_BYTES);
      else rc = opl_db_error(db, OPLOG_CORRUPT, "entry %lld has no valid hash", (long long)out->id);
    } else if (r != SQLITE_DONE) {
      rc = opl_db_sqlerr(db, r);
    }
    sqlite3_reset(s);
    if (rc || r == SQLITE_ROW) return rc; /* the tail has the newest; else the index */
  }
  return OPLOG_OK;
}

/* The entry of origin no at seq: *found 0 if not held. */
static int held_at(oplog_db *db, lookups *l, int64_t no, int64_t seq, int *found, int64_t *id,
                   unsigned char hash[OPLOG_HASH_BYTES]) {
  *found = 0;
  sqlite3_bind_int64(l->at, 1, no);
  sqlite3_bind_int64(l->at, 2, seq);
  int r = sqlite3_step(l->at), rc = OPLOG_OK;
  if (r == SQLITE_ROW) {
    *found = 1;
    if (id) *id = sqlite3_column_int64(l->at, 0);
    if (sqlite3_column_bytes(l->at, 1) == OPLOG_HASH_BYTES) memcpy(hash, sqlite3_column_blob(l->at, 1), OPLOG_HASH_BYTES);
    else rc = opl_db_error(db, OPLOG_CORRUPT, "the entry at seq %lld of origin %lld has no valid hash", (long long)seq, (long long)no);
  } else if (r != SQLITE_DONE) {
    rc = opl_db_sqlerr(db, r);
  }
  sqlite3_reset(l->at);
  return rc;
}

/* The local number of an origin id; 0 if the file has none (and create
 * is 0), else a new row. */
static int origin_no(oplog_db *db, lookups *l, const uint8_t *id, int create, int64_t *no) {
  *no = 0;
  sqlite3_bind_blob(l->origin_no, 1, id, OPLOG_ORIGIN_BYTES, SQLITE_STATIC);
  int r = sqlite3_step(l->origin_no);
  if (r == SQLITE_ROW) *no = sqlite3_column_int64(l->origin_no, 0);
  sqlite3_reset(l->origin_no);
  if (r != SQLITE_ROW && r != SQLITE_DONE) return opl_db_sqlerr(db, r);
  if (*no || !create) return OPLOG_OK;
  sqlite3_bind_blob(l->origin_add, 1, id, OPLOG_ORIGIN_BYTES, SQLITE_STATIC);
  r = sqlite3_step(l->origin_add);
  sqlite3_reset(l->origin_add);
  if (r != SQLITE_DONE) return opl_db_sqlerr(db, r);
  *no = sqlite3_last_insert_rowid(db->sql);
  return OPLOG_OK;
}

/* Every origin of the file with its newest entry, ordered by origin id:
 * its own always, the others when it holds entries of them. */
typedef struct head_list {
  oplog_head_info *h;
  int64_t *no;
  size_t n;
} head_list;

static void head_list_free(head_list *hl) {
  sqlite3_free(hl->h);
  sqlite3_free(hl->no);
  memset(hl, 0, sizeof *hl);
}

/* Inside the caller's transaction. */
static int heads_load(oplog_db *db, lookups *l, head_list *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT no, id FROM oplog_origins ORDER BY id", -1, &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  int rc = OPLOG_OK;
  size_t cap = 0;
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
    int64_t no = sqlite3_column_int64(s, 0);
    held h;
    if (sqlite3_column_bytes(s, 1) != OPLOG_ORIGIN_BYTES) {
      rc = opl_db_error(db, OPLOG_CORRUPT, "origin %lld has a malformed id", (long long)no);
      break;
    }
    if ((rc = held_top(db, l, no, &h))) break;
    if (h.seq == 0 && no != 1) continue;
    if (out->n == cap) {
      cap = cap ? 2 * cap : 8;
      oplog_head_info *g = sqlite3_realloc64(out->h, cap * sizeof *g);
      int64_t *gn = g ? sqlite3_realloc64(out->no, cap * sizeof *gn) : NULL;
      if (g) out->h = g;
      if (gn) out->no = gn;
      if (!g || !gn) {
        rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
        break;
      }
    }
    oplog_head_info *hi = &out->h[out->n];
    memcpy(hi->origin, sqlite3_column_blob(s, 1), OPLOG_ORIGIN_BYTES);
    hi->seq = h.seq;
    hi->clock = h.clock;
    hi->id = h.id;
    memcpy(hi->hash, h.hash, OPLOG_HASH_BYTES);
    out->no[out->n++] = no;
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  if (rc) head_list_free(out);
  return rc;
}

static int sync_ready(oplog_db *db) {
  if (db->tx != TX_NONE) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "finish the open transaction first");
  if (db->format != OPLOG_FORMAT_VERSION)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "a format-1 file has no origin yet: open it writable once to migrate it");
  return OPLOG_OK;
}

/* The heads, read in a transaction of their own. */
static int heads_read(oplog_db *db, head_list *out) {
  int rc = sync_ready(db);
  if (rc) return rc;
  lookups l;
  if ((rc = opl_db_begin(db, 0))) return rc;
  if (!(rc = lookups_open(db, &l))) rc = heads_load(db, &l, out);
  lookups_close(&l);
  if (!rc) rc = opl_db_commit(db);
  if (rc) {
    opl_db_rollback(db);
    head_list_free(out);
  }
  return rc;
}

int oplog_heads(oplog_db *db, int (*each)(void *, const oplog_head_info *), void *ctx) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (!each) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "each is NULL");
  head_list hl;
  int rc = heads_read(db, &hl);
  for (size_t i = 0; !rc && i < hl.n; i++) rc = each(ctx, &hl.h[i]);
  head_list_free(&hl);
  return rc;
}

/* ---------------------------------------------------------------- cursors */

static char *cursor_text(oplog_db *db, const head_list *hl) {
  sqlite3_str *s = sqlite3_str_new(db->sql);
  for (size_t i = 0; i < hl->n; i++) {
    char h[2 * OPLOG_ORIGIN_BYTES + 1];
    hex(hl->h[i].origin, h);
    sqlite3_str_appendf(s, "%s%s:%lld", i ? "," : "", h, (long long)hl->h[i].seq);
  }
  char *out = sqlite3_str_finish(s);
  if (!out && !hl->n) out = sqlite3_mprintf("%s", "");
  return out;
}

int oplog_cursor(oplog_db *db, char **out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (!out) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  head_list hl;
  int rc = heads_read(db, &hl);
  if (rc) return rc;
  *out = cursor_text(db, &hl);
  head_list_free(&hl);
  return *out ? OPLOG_OK : opl_db_error(db, OPLOG_NOMEM, "out of memory");
}

static int hex_id(const char *p, size_t n, uint8_t out[OPLOG_ORIGIN_BYTES]) {
  size_t got = 0;
  const char *end = NULL;
  return n == 2 * OPLOG_ORIGIN_BYTES && sodium_hex2bin(out, OPLOG_ORIGIN_BYTES, p, n, NULL, &got, &end) == 0 &&
         got == OPLOG_ORIGIN_BYTES && end == p + n;
}

static int pair_cmp(const void *a, const void *b) {
  return memcmp(((const cursor_pair *)a)->origin, ((const cursor_pair *)b)->origin, OPLOG_ORIGIN_BYTES);
}

int opl_cursor_parse(oplog_db *db, const char *text, cursor_pair **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!*text) return OPLOG_OK;
  size_t cap = 1;
  for (const char *c = text; *c; c++) cap += *c == ',';
  cursor_pair *pairs = sqlite3_malloc64(cap * sizeof *pairs);
  if (!pairs) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  const char *p = text;
  size_t k = 0;
  for (;;) {
    const char *colon = strchr(p, ':');
    const char *comma = strchr(p, ',');
    if (!colon || (comma && comma < colon) || !hex_id(p, (size_t)(colon - p), pairs[k].origin)) goto bad;
    const char *d = colon + 1;
    int64_t seq = 0;
    if (!(*d >= '0' && *d <= '9')) goto bad;
    for (; *d >= '0' && *d <= '9'; d++) {
      if (seq > (INT64_MAX - (*d - '0')) / 10) goto bad;
      seq = seq * 10 + (*d - '0');
    }
    pairs[k].seq = seq;
    k++;
    if (*d == 0) break;
    if (*d != ',' || k == cap) goto bad;
    p = d + 1;
  }
  /* sorted by origin: a repeat sits next to its twin, and cursor_seq
   * finds an origin by binary search (a cursor may name very many) */
  qsort(pairs, k, sizeof *pairs, pair_cmp);
  for (size_t j = 1; j < k; j++)
    if (memcmp(pairs[j - 1].origin, pairs[j].origin, OPLOG_ORIGIN_BYTES) == 0) {
      char h[2 * OPLOG_ORIGIN_BYTES + 1];
      hex(pairs[j].origin, h);
      sqlite3_free(pairs);
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "cursor names origin %s twice", h);
    }
  *out = pairs;
  *n = k;
  return OPLOG_OK;
bad:
  sqlite3_free(pairs);
  return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                      "malformed cursor: expected <64 hex digits>:<seq> pairs joined by ',' (as oplog_cursor gives)");
}

/* ---------------------------------------------------------------- export */

typedef struct key_ref {
  int64_t origin, id; /* the whole record is key_set.ix's key */
} key_ref;

/* Each (origin, key id) once, in the order first seen. */
typedef struct key_set {
  key_ref *k;
  size_t n, cap;
  opl_hindex ix;
} key_set;

static int key_set_add(key_set *s, int64_t origin, int64_t id) {
  key_ref r = {origin, id};
  if (opl_hindex_find(&s->ix, s->k, sizeof *s->k, sizeof r, &r) != SIZE_MAX) return OPLOG_OK;
  key_ref *g = opl_grow(s->k, &s->cap, s->n, sizeof *g);
  if (!g) return OPLOG_NOMEM;
  s->k = g;
  s->k[s->n++] = r;
  return opl_hindex_add(&s->ix, s->k, sizeof *s->k, sizeof r, s->n);
}

static void key_set_free(key_set *s) {
  sqlite3_free(s->k);
  opl_hindex_free(&s->ix);
}

static int table_exists(oplog_db *db, const char *name, int *yes) {
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1", -1, &s, NULL);
  if (r == SQLITE_OK) {
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    r = sqlite3_step(s);
    *yes = r == SQLITE_ROW;
  }
  sqlite3_finalize(s);
  return r == SQLITE_ROW || r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

typedef struct exporter {
  oplog_db *db;
  const oplog_export_opts *o;
  stream_writer w;
  lookups l;
  head_list hl;
  opl_hindex by_no; /* the heads by origin no (hl.no) */
  int64_t *from;    /* per head: the cursor's seq (entries above it go) */
  key_set keys;
  unsigned char xpk[crypto_box_PUBLICKEYBYTES];
  int64_t total, done;
} exporter;

/* c sorted by origin (opl_cursor_parse). */
static int64_t cursor_seq(const cursor_pair *c, size_t n, const uint8_t *origin, int *named) {
  cursor_pair want;
  memcpy(want.origin, origin, OPLOG_ORIGIN_BYTES);
  const cursor_pair *hit = n ? bsearch(&want, c, n, sizeof *c, pair_cmp) : NULL;
  *named = hit != NULL;
  return hit ? hit->seq : 0;
}

static int put_types(exporter *x) {
  oplog_db *db = x->db;
  int rc = opl_catalog_load(db);
  for (size_t i = 0; !rc && i < db->ntypes; i++) {
    const type_def *t = db->types[i];
    Oplog__V1__StreamColumn cols[OPLOG_MAX_COLUMNS], *pcols[OPLOG_MAX_COLUMNS];
    char *key[OPLOG_MAX_COLUMNS];
    for (size_t c = 0; c < t->ncols; c++) {
      oplog__v1__stream_column__init(&cols[c]);
      cols[c].name = t->col_names[c];
      cols[c].decl = t->col_decls[c];
      pcols[c] = &cols[c];
    }
    for (size_t k = 0; k < t->nkey; k++) key[k] = t->col_names[t->key_idx[k]];
    Oplog__V1__StreamType m = OPLOG__V1__STREAM_TYPE__INIT;
    m.name = t->name;
    m.table = t->table;
    m.aggregate = t->aggregate;
    m.n_columns = t->ncols;
    m.columns = pcols;
    m.n_key = t->nkey;
    m.key = key;
    rc = opl_stream_write_frame(db, &x->w, FRAME_TYPE, &m.base);
  }
  return rc;
}

static int progress(oplog_db *db, oplog_progress_fn fn, void *ctx, int64_t done, int64_t total) {
  if (fn && fn(ctx, done, total)) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "interrupted by the progress callback");
  return OPLOG_OK;
}

/* Entries beyond the cursor, in id order, from the first one that goes. */
static int put_entries(exporter *x) {
  oplog_db *db = x->db;
  int64_t start = 0;
  int rc = OPLOG_OK;
  for (size_t i = 0; i < x->hl.n; i++) {
    if (x->hl.h[i].seq <= x->from[i]) continue;
    int found;
    int64_t id;
    unsigned char h[OPLOG_HASH_BYTES];
    if ((rc = held_at(db, &x->l, x->hl.no[i], x->from[i] + 1, &found, &id, h))) return rc;
    if (!found) return opl_db_error(db, OPLOG_CORRUPT, "origin %lld has no entry at seq %lld", (long long)x->hl.no[i], (long long)x->from[i] + 1);
    if (!start || id < start) start = id;
  }
  if (!start) return OPLOG_OK;
  char *sql = sqlite3_mprintf("SELECT %s FROM oplog_entries WHERE id >= ?1 ORDER BY id", db->entry_cols);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL);
  sqlite3_free(sql);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  sqlite3_bind_int64(s, 1, start);
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
    stored_entry e;
    if ((rc = opl_entry_from_row(db, s, &e))) break;
    size_t i = opl_hindex_find(&x->by_no, x->hl.no, sizeof *x->hl.no, sizeof e.origin, &e.origin);
    if (i == SIZE_MAX || e.seq <= x->from[i]) continue;
    if (e.key_id && (rc = key_set_add(&x->keys, e.origin, e.key_id))) {
      rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    Oplog__V1__StreamEntry m = OPLOG__V1__STREAM_ENTRY__INIT;
    m.origin = (ProtobufCBinaryData){OPLOG_ORIGIN_BYTES, (uint8_t *)e.origin_id};
    m.seq = e.seq;
    m.clock = e.clock;
    m.created = e.created;
    m.aggregate = (ProtobufCBinaryData){e.aggregate_len, (uint8_t *)e.aggregate};
    m.key_id = e.key_id;
    m.metadata = (ProtobufCBinaryData){e.nmetadata, (uint8_t *)e.metadata};
    m.data = (ProtobufCBinaryData){e.ndata, (uint8_t *)e.data};
    m.prev_hash = (ProtobufCBinaryData){OPLOG_HASH_BYTES, (uint8_t *)e.prev_hash};
    m.hash = (ProtobufCBinaryData){OPLOG_HASH_BYTES, (uint8_t *)e.hash};
    m.format = (uint32_t)e.format;
    if ((rc = opl_stream_write_frame(db, &x->w, FRAME_ENTRY, &m.base))) break;
    if (++x->done % PROGRESS_EVERY == 0) rc = progress(db, x->o->progress, x->o->progress_ctx, x->done, x->total);
  }
  if (!rc && r != SQLITE_DONE && r != SQLITE_ROW) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  if (!rc && x->done != x->total)
    rc = opl_db_error(db, OPLOG_CORRUPT, "the file's chains have gaps: %lld entries found of %lld", (long long)x->done,
                      (long long)x->total);
  return rc;
}

static int put_keys(exporter *x) {
  int rc = OPLOG_OK;
  for (size_t i = 0; !rc && i < x->keys.n; i++) {
    uint8_t sealed[OPL_SEALED_KEY_BYTES];
    const uint8_t *oid = opl_origin_id(x->db, x->keys.k[i].origin);
    if (!oid) return x->db->code;
    if ((rc = opl_crypto_seal_key(x->db, x->keys.k[i].origin, x->keys.k[i].id, x->xpk, sealed))) break;
    Oplog__V1__StreamKey m = OPLOG__V1__STREAM_KEY__INIT;
    m.origin = (ProtobufCBinaryData){OPLOG_ORIGIN_BYTES, (uint8_t *)oid};
    m.id = x->keys.k[i].id;
    m.sealed = (ProtobufCBinaryData){sizeof sealed, sealed};
    rc = opl_stream_write_frame(x->db, &x->w, FRAME_KEY, &m.base);
  }
  return rc;
}

/* A fresh checkpoint of this file's origin, and the stored ones of the others. */
static int put_checkpoints(exporter *x) {
  oplog_db *db = x->db;
  int rc = OPLOG_OK;
  for (size_t i = 0; i < x->hl.n; i++) {
    if (x->hl.no[i] != 1 || x->hl.h[i].seq == 0) continue;
    char *text = NULL;
    if ((rc = opl_checkpoint_sign(db, x->hl.h[i].seq, x->hl.h[i].hash, &text))) return rc;
    Oplog__V1__StreamCheckpoint m = OPLOG__V1__STREAM_CHECKPOINT__INIT;
    m.text = text;
    rc = opl_stream_write_frame(db, &x->w, FRAME_CHECKPOINT, &m.base);
    sqlite3_free(text);
    if (rc) return rc;
  }
  int yes = 0;
  if ((rc = table_exists(db, "oplog_checkpoints", &yes)) || !yes) return rc;
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT text FROM oplog_checkpoints WHERE origin <> 1 ORDER BY origin", -1, &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
    char *text = opl_col_dup(s, 0);
    if (!text) {
      rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    Oplog__V1__StreamCheckpoint m = OPLOG__V1__STREAM_CHECKPOINT__INIT;
    m.text = text;
    rc = opl_stream_write_frame(db, &x->w, FRAME_CHECKPOINT, &m.base);
    sqlite3_free(text);
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  return rc;
}

static int export_run(exporter *x, const cursor_pair *since, size_t nsince, const uint8_t *to, const unsigned char *sk) {
  oplog_db *db = x->db;
  int rc;
  if ((rc = lookups_open(db, &x->l)) || (rc = heads_load(db, &x->l, &x->hl))) return rc;
  if (!(x->from = sqlite3_malloc64((x->hl.n ? x->hl.n : 1) * sizeof *x->from)))
    return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  for (size_t i = 0; i < x->hl.n; i++) {
    int named;
    if (opl_hindex_add(&x->by_no, x->hl.no, sizeof *x->hl.no, sizeof *x->hl.no, i + 1))
      return opl_db_error(db, OPLOG_NOMEM, "out of memory");
    x->from[i] = cursor_seq(since, nsince, x->hl.h[i].origin, &named);
    if (x->hl.h[i].seq > x->from[i]) x->total += x->hl.h[i].seq - x->from[i];
  }
  Oplog__V1__StreamHeader h = OPLOG__V1__STREAM_HEADER__INIT;
  h.version = 1;
  h.sender = (ProtobufCBinaryData){OPLOG_ORIGIN_BYTES, db->self_id};
  if (db->kr.encrypted) h.recipient = (ProtobufCBinaryData){OPLOG_ORIGIN_BYTES, (uint8_t *)to};
  h.encrypted = db->kr.encrypted;
  h.since = (char *)(x->o->since ? x->o->since : "");
  h.entries = (uint64_t)x->total;
  if ((rc = opl_stream_write_frame(db, &x->w, FRAME_HEADER, &h.base)) || (rc = put_types(x))) return rc;
  /* the bases: the sender's entry at each seq the cursor names */
  for (size_t i = 0; i < nsince; i++) {
    int64_t no = 0;
    int found = 0;
    unsigned char hash[OPLOG_HASH_BYTES];
    if (since[i].seq < 1) continue;
    if ((rc = origin_no(db, &x->l, since[i].origin, 0, &no))) return rc;
    if (!no) continue;
    if ((rc = held_at(db, &x->l, no, since[i].seq, &found, NULL, hash))) return rc;
    if (!found) continue;
    Oplog__V1__StreamBase b = OPLOG__V1__STREAM_BASE__INIT;
    b.origin = (ProtobufCBinaryData){OPLOG_ORIGIN_BYTES, (uint8_t *)since[i].origin};
    b.seq = since[i].seq;
    b.hash = (ProtobufCBinaryData){OPLOG_HASH_BYTES, hash};
    if ((rc = opl_stream_write_frame(db, &x->w, FRAME_BASE, &b.base))) return rc;
  }
  if ((rc = put_entries(x)) || (rc = put_keys(x)) || (rc = put_checkpoints(x)) ||
      (rc = opl_stream_write_end(db, &x->w, sk)))
    return rc;
  return progress(db, x->o->progress, x->o->progress_ctx, x->done, x->total);
}

int oplog_export(oplog_db *db, const oplog_export_opts *opts, oplog_write_fn write, void *wctx, oplog_export_result *out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  static const oplog_export_opts none = {0};
  const oplog_export_opts *o = opts ? opts : &none;
  if (!write) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "write is NULL");
  if (out) memset(out, 0, sizeof *out);
  int rc = sync_ready(db);
  if (rc) return rc;
  cursor_pair *since = NULL;
  size_t nsince = 0;
  uint8_t to[OPLOG_ORIGIN_BYTES];
  exporter x = {.db = db, .o = o};
  if (o->to && !hex_id(o->to, strlen(o->to), to))
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "to must be an origin id: 64 hex digits");
  if (db->kr.encrypted) {
    if (!o->to) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "the log is encrypted: export needs the recipient's origin id (to)");
    if ((rc = opl_key_required(db))) return rc;
    if (crypto_sign_ed25519_pk_to_curve25519(x.xpk, to) != 0)
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "to is not a valid origin id (no Ed25519 public key)");
  }
  if (o->since && (rc = opl_cursor_parse(db, o->since, &since, &nsince))) return rc;
  unsigned char *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
  if (!sk) {
    sqlite3_free(since);
    return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  }
  if (!(rc = opl_origin_secret(db, sk)) && !(rc = opl_db_begin(db, 0)) &&
      !(rc = opl_stream_write_begin(db, &x.w, write, wctx))) {
    rc = export_run(&x, since, nsince, to, sk);
    if (!rc) rc = opl_db_commit(db);
  }
  opl_db_rollback(db);
  sodium_free(sk);
  lookups_close(&x.l);
  head_list_free(&x.hl);
  opl_hindex_free(&x.by_no);
  sqlite3_free(x.from);
  key_set_free(&x.keys);
  sqlite3_free(since);
  opl_stream_writer_free(&x.w);
  if (!rc && out) {
    out->entries = x.done;
    out->bytes = x.w.bytes;
  }
  return rc;
}

/* ---------------------------------------------------------------- import */

/* What the stream has shown of one origin so far. */
typedef struct origin_state {
  unsigned char id[OPLOG_ORIGIN_BYTES]; /* first: the key of importer.os_ix */
  int64_t no;       /* 0 until the file has a row for it */
  int64_t held;     /* the last seq the file held before the import */
  int64_t held_clock;
  int held_format;
  unsigned char held_hash[OPLOG_HASH_BYTES];
  int64_t seq;      /* the stream's position: its last base or entry */
  int64_t clock;    /* the clock of the entry at seq, 0 if unknown */
  int format;       /* the format of the entry at seq, 0 if unknown */
  unsigned char hash[OPLOG_HASH_BYTES];
  int seen;         /* a base or an entry came */
  int64_t inserted; /* new entries */
} origin_state;

typedef struct importer {
  oplog_db *db;
  const oplog_import_opts *o;
  stream_reader r;
  lookups l;
  origin_state *os; /* in the order the stream named them */
  size_t nos, cap;
  opl_hindex os_ix; /* os by id */
  key_set need;     /* (origin no, key id) the new entries use */
  int encrypted;
  unsigned char *xsk; /* sodium_malloc'd */
  unsigned char xpk[crypto_box_PUBLICKEYBYTES];
  int have_checkpoints; /* the file has oplog_checkpoints */
  int64_t total, first_id, added_types, keys_added;
  oplog_import_result res;
  /* a refusal found before the trailer: reported only if the stream is intact */
  int deferred;
  char *deferred_msg;
} importer;

/* The state of origin id, new if the stream had not named it. The pointer
 * holds until the next call. */
static int state_for(importer *im, const uint8_t *id, origin_state **out) {
  *out = NULL; /* (set on every return: -O3 cannot tell) */
  size_t at = opl_hindex_find(&im->os_ix, im->os, sizeof *im->os, OPLOG_ORIGIN_BYTES, id);
  if (at != SIZE_MAX) {
    *out = &im->os[at];
    return OPLOG_OK;
  }
  origin_state *g = opl_grow(im->os, &im->cap, im->nos, sizeof *g);
  if (!g) return opl_db_error(im->db, OPLOG_NOMEM, "out of memory");
  im->os = g;
  origin_state *s = &im->os[im->nos++];
  memset(s, 0, sizeof *s);
  memcpy(s->id, id, OPLOG_ORIGIN_BYTES);
  if (opl_hindex_add(&im->os_ix, im->os, sizeof *im->os, OPLOG_ORIGIN_BYTES, im->nos))
    return opl_db_error(im->db, OPLOG_NOMEM, "out of memory");
  int rc = origin_no(im->db, &im->l, id, 0, &s->no);
  held h = {0};
  if (!rc && s->no) rc = held_top(im->db, &im->l, s->no, &h);
  s->held = h.seq;
  s->held_clock = h.clock;
  s->held_format = h.format;
  memcpy(s->held_hash, h.hash, OPLOG_HASH_BYTES);
  *out = s;
  return rc;
}

static int fork_error(oplog_db *db, const uint8_t *id, int64_t seq, const char *what) {
  char h[2 * OPLOG_ORIGIN_BYTES + 1];
  hex(id, h);
  return opl_db_error(db, OPLOG_FORK, "origin %s: %s at seq %lld differs from this file's: a cloned device or a rewritten history",
                      h, what, (long long)seq);
}

static int on_header(importer *im, const Oplog__V1__StreamHeader *h) {
  oplog_db *db = im->db;
  im->total = (int64_t)h->entries;
  im->encrypted = h->encrypted;
  if (h->encrypted != db->kr.encrypted)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "an %s file does not take entries of a %s log",
                        db->kr.encrypted ? "encrypted" : "plaintext", h->encrypted ? "encrypted" : "plaintext");
  if (h->encrypted && memcmp(h->recipient.data, db->self_id, OPLOG_ORIGIN_BYTES) != 0) {
    char want[2 * OPLOG_ORIGIN_BYTES + 1];
    hex(h->recipient.data, want);
    return opl_db_error(db, OPLOG_WRONG_KEY, "the stream is addressed to origin %s, not to this file", want);
  }
  if (h->encrypted) {
    if (!(im->xsk = sodium_malloc(crypto_box_SECRETKEYBYTES))) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
    return opl_origin_box_keypair(db, im->xpk, im->xsk);
  }
  return OPLOG_OK;
}

static int on_type(importer *im, const Oplog__V1__StreamType *t) {
  oplog_column cols[OPLOG_MAX_COLUMNS];
  for (size_t i = 0; i < t->n_columns; i++) cols[i] = (oplog_column){t->columns[i]->name, t->columns[i]->decl};
  oplog_type_spec s = {t->name, t->table, t->aggregate, cols, t->n_columns, (const char *const *)t->key, t->n_key};
  if (!t->n_key) s.key = NULL;
  int64_t before = im->db->ntypes;
  int rc = opl_catalog_define(im->db, &s, 0);
  /* a definition this file cannot take is the stream's fault */
  if (rc == OPLOG_INVALID_ARGUMENT || rc == OPLOG_SQL || rc == OPLOG_CONSTRAINT)
    return opl_db_error(im->db, OPLOG_CORRUPT, "stream: type %s is not a valid definition: %s", t->name, oplog_errmsg(im->db));
  if (!rc && (int64_t)im->db->ntypes != before) im->added_types++;
  return rc;
}

static int on_base(importer *im, const Oplog__V1__StreamBase *b) {
  origin_state *s;
  int rc = state_for(im, b->origin.data, &s);
  if (rc) return rc;
  if (s->seen) return opl_db_error(im->db, OPLOG_CORRUPT, "stream: two bases for one origin");
  if (s->no && b->seq <= s->held) {
    int found;
    unsigned char h[OPLOG_HASH_BYTES];
    if ((rc = held_at(im->db, &im->l, s->no, b->seq, &found, NULL, h))) return rc;
    if (found && memcmp(h, b->hash.data, OPLOG_HASH_BYTES) != 0) return fork_error(im->db, s->id, b->seq, "the stream's base");
  }
  s->seen = 1;
  s->seq = b->seq;
  s->clock = b->seq == s->held ? s->held_clock : 0;
  s->format = b->seq == s->held ? s->held_format : 0;
  memcpy(s->hash, b->hash.data, OPLOG_HASH_BYTES);
  return OPLOG_OK;
}

static int on_entry(importer *im, const Oplog__V1__StreamEntry *m) {
  oplog_db *db = im->db;
  origin_state *s;
  int rc = state_for(im, m->origin.data, &s);
  if (rc) return rc;
  char hx[2 * OPLOG_ORIGIN_BYTES + 1];
  if ((m->key_id != 0) != im->encrypted)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: an entry's key id (%lld) does not suit a %s stream", (long long)m->key_id,
                        im->encrypted ? "encrypted" : "plaintext");
  if ((int64_t)m->data.len > db->max_entry || (int64_t)m->metadata.len > db->max_entry)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: an entry is larger than max_entry_bytes (%lld)", (long long)db->max_entry);
  stored_entry e = {.origin = s->no,
                    .origin_id = s->id,
                    .seq = m->seq,
                    .clock = m->clock,
                    .created = m->created,
                    .key_id = m->key_id,
                    .aggregate = (const char *)m->aggregate.data,
                    .aggregate_len = m->aggregate.len,
                    .metadata = m->metadata.data,
                    .nmetadata = m->metadata.len,
                    .data = m->data.data,
                    .ndata = m->data.len,
                    .prev_hash = m->prev_hash.data,
                    .hash = m->hash.data,
                    .format = (int)m->format};
  unsigned char h[OPLOG_HASH_BYTES];
  if ((rc = opl_chain_hash(&e, h)) || memcmp(h, m->hash.data, OPLOG_HASH_BYTES) != 0)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: an entry's hash (seq %lld) does not match its contents", (long long)m->seq);
  if (s->seen) {
    /* within the stream, each origin's chain runs on without a break */
    if (m->seq != s->seq + 1 || memcmp(m->prev_hash.data, s->hash, OPLOG_HASH_BYTES) != 0)
      return opl_db_error(db, OPLOG_CORRUPT, "stream: origin %s's entry at seq %lld does not follow the stream's seq %lld",
                          (hex(s->id, hx), hx), (long long)m->seq, (long long)s->seq);
  } else if (m->seq == 1 && memcmp(m->prev_hash.data, zero_hash, OPLOG_HASH_BYTES) != 0) {
    return opl_db_error(db, OPLOG_CORRUPT, "stream: an entry at seq 1 has a previous hash");
  }
  /* against what the file holds: the same entries, then the next seq */
  if (m->seq <= s->held) {
    int found;
    if ((rc = held_at(db, &im->l, s->no, m->seq, &found, NULL, h))) return rc;
    if (!found || memcmp(h, m->hash.data, OPLOG_HASH_BYTES) != 0) return fork_error(db, s->id, m->seq, "the stream's entry");
  } else if (!s->inserted) {
    if (m->seq > s->held + 1) {
      hex(s->id, hx);
      return opl_db_error(db, OPLOG_GAP, "origin %s: this file holds up to seq %lld, the stream starts at seq %lld", hx,
                          (long long)s->held, (long long)m->seq);
    }
    /* the first new entry builds on the newest one held (when the stream
     * showed nothing before it, that is not checked yet) */
    if (!s->seen && s->held && memcmp(m->prev_hash.data, s->held_hash, OPLOG_HASH_BYTES) != 0)
      return fork_error(db, s->id, s->held, "the entry the stream builds on");
  }
  /* each origin's clock grows with its seq (a local write takes 1 + the
   * largest clock its file holds): otherwise the total order would replay
   * its transactions in another order than it wrote them */
  int after_held = !s->seen && m->seq == s->held + 1;
  int64_t prev_clock = s->seen ? s->clock : after_held ? s->held_clock : 0;
  if (m->seq > s->held && m->clock <= prev_clock)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: origin %s's entry at seq %lld has clock %lld, not above its previous entry's %lld",
                        (hex(s->id, hx), hx), (long long)m->seq, (long long)m->clock, (long long)prev_clock);
  /* format-1 entries are only a migrated chain's start (FORMAT.md 12) */
  int prev_format = s->seen ? s->format : after_held ? s->held_format : 0;
  if (m->seq > s->held && m->format == 1 && prev_format == 2)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: origin %s's entry at seq %lld is format 1, after a format-2 entry",
                        (hex(s->id, hx), hx), (long long)m->seq);
  s->seen = 1;
  s->seq = m->seq;
  s->clock = m->clock;
  s->format = (int)m->format;
  memcpy(s->hash, m->hash.data, OPLOG_HASH_BYTES);
  if (m->seq <= s->held) {
    im->res.skipped++;
    return OPLOG_OK;
  }
  if (!s->no) {
    if ((rc = origin_no(db, &im->l, s->id, 1, &s->no))) return rc;
    e.origin = s->no;
  }
  int64_t id = 0;
  if ((rc = opl_entry_insert(db, &e, h, &id))) return rc;
  if (!im->first_id) im->first_id = id;
  s->inserted++;
  im->res.entries++;
  if (e.key_id && key_set_add(&im->need, s->no, e.key_id)) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  /* keep what lies above the derived tables small, as local writes do */
  if (id - db->ls.wm >= INDEX_FLUSH_EVERY) rc = opl_index_flush(db);
  return rc;
}

static int on_key(importer *im, const Oplog__V1__StreamKey *k) {
  oplog_db *db = im->db;
  if (!im->encrypted) return opl_db_error(db, OPLOG_CORRUPT, "stream: a plaintext stream carries a data key");
  int64_t no;
  int rc = origin_no(db, &im->l, k->origin.data, 0, &no);
  if (rc || !no) return rc; /* a key of an origin the file holds nothing of: not needed */
  if ((rc = opl_crypto_add_sealed_key(db, no, k->origin.data, k->id, k->created, k->sealed.data, k->sealed.len, im->xpk,
                                      im->xsk)))
    return rc;
  im->keys_added++;
  return OPLOG_OK;
}

static int on_checkpoint(importer *im, const Oplog__V1__StreamCheckpoint *c) {
  oplog_db *db = im->db;
  checkpoint_info ci;
  int bad = 0;
  size_t n = strlen(c->text);
  int rc = opl_checkpoint_open(db, c->text, n, &ci, &bad);
  if (rc) {
    if (rc == OPLOG_CORRUPT || rc == OPLOG_INVALID_ARGUMENT)
      return opl_db_error(db, OPLOG_CORRUPT, "stream: a checkpoint %s", bad ? "has a bad signature" : "is malformed");
    return rc;
  }
  if (memcmp(ci.origin, db->self_id, OPLOG_ORIGIN_BYTES) == 0) return OPLOG_OK; /* never stored for its own origin */
  int64_t no;
  if ((rc = origin_no(db, &im->l, ci.origin, 1, &no))) return rc;
  int found;
  unsigned char h[OPLOG_HASH_BYTES];
  if ((rc = held_at(db, &im->l, no, ci.seq, &found, NULL, h))) return rc;
  if (found && memcmp(h, ci.hash, OPLOG_HASH_BYTES) != 0) return fork_error(db, ci.origin, ci.seq, "a signed checkpoint");
  if (!im->have_checkpoints) return OPLOG_OK;
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql,
                             "INSERT INTO oplog_checkpoints (origin, seq, text) VALUES (?1, ?2, ?3)"
                             " ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq, text = excluded.text"
                             " WHERE excluded.seq > oplog_checkpoints.seq",
                             -1, &s, NULL);
  if (r == SQLITE_OK) {
    sqlite3_bind_int64(s, 1, no);
    sqlite3_bind_int64(s, 2, ci.seq);
    sqlite3_bind_text(s, 3, c->text, (int)n, SQLITE_STATIC);
    r = sqlite3_step(s);
  }
  sqlite3_finalize(s);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

/* After the trailer checked out: every new entry's data key is here. */
static int keys_complete(importer *im) {
  oplog_db *db = im->db;
  if (!im->need.n) return OPLOG_OK;
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT 1 FROM oplog_keys WHERE origin = ?1 AND id = ?2", -1, &s, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  int rc = OPLOG_OK;
  for (size_t i = 0; !rc && i < im->need.n; i++) {
    sqlite3_bind_int64(s, 1, im->need.k[i].origin);
    sqlite3_bind_int64(s, 2, im->need.k[i].id);
    r = sqlite3_step(s);
    if (r == SQLITE_DONE)
      rc = opl_db_error(db, OPLOG_CORRUPT, "stream: lacks data key %lld of origin %lld, which its entries use",
                        (long long)im->need.k[i].id, (long long)im->need.k[i].origin);
    else if (r != SQLITE_ROW)
      rc = opl_db_sqlerr(db, r);
    sqlite3_reset(s);
  }
  sqlite3_finalize(s);
  return rc;
}

/* A refusal that depends on what the stream says (not on its integrity)
 * waits for the trailer: an altered stream is corrupt whatever it says. */
static int deferrable(int rc) {
  return rc == OPLOG_WRONG_KEY || rc == OPLOG_FORK || rc == OPLOG_GAP || rc == OPLOG_TYPE_CONFLICT ||
         rc == OPLOG_INVALID_ARGUMENT;
}

static int import_run(importer *im) {
  oplog_db *db = im->db;
  int rc, kind;
  void *m;
  const uint8_t *sender = NULL;
  uint8_t sender_id[OPLOG_ORIGIN_BYTES];
  int64_t entries = 0;
  for (;;) {
    if ((rc = opl_stream_read_frame(db, &im->r, &kind, &m))) return rc;
    if (kind == FRAME_TRAILER) break;
    if (kind == FRAME_ENTRY && ++entries % PROGRESS_EVERY == 0 &&
        (rc = progress(db, im->o->progress, im->o->progress_ctx, entries, im->total)))
      return rc;
    if (kind == FRAME_HEADER) {
      memcpy(sender_id, ((Oplog__V1__StreamHeader *)m)->sender.data, OPLOG_ORIGIN_BYTES);
      sender = sender_id;
    }
    if (im->deferred) continue;
    switch (kind) {
      case FRAME_HEADER: rc = on_header(im, m); break;
      case FRAME_TYPE: rc = on_type(im, m); break;
      case FRAME_BASE: rc = on_base(im, m); break;
      case FRAME_ENTRY: rc = on_entry(im, m); break;
      case FRAME_KEY: rc = on_key(im, m); break;
      case FRAME_CHECKPOINT: rc = on_checkpoint(im, m); break;
    }
    if (rc && deferrable(rc)) {
      im->deferred = rc;
      if (!(im->deferred_msg = sqlite3_mprintf("%s", oplog_errmsg(db)))) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
      continue;
    }
    if (rc) return rc;
  }
  if ((rc = opl_stream_read_end(db, &im->r, m, sender))) return rc;
  if (im->deferred) return opl_db_error(db, im->deferred, "%s", im->deferred_msg);
  if ((uint64_t)entries != (uint64_t)im->total)
    return opl_db_error(db, OPLOG_CORRUPT, "stream: the header announces %lld entries, it holds %lld", (long long)im->total,
                        (long long)entries);
  if ((rc = keys_complete(im))) return rc;
  /* entries of other origins and keys are in: the cached state and the
   * keyring follow, then the live tables */
  opl_state_forget(db);
  if (im->keys_added && (rc = opl_keyring_reload(db))) return rc;
  if (im->first_id && (rc = opl_converge(db, im->first_id, &im->res.conflicts))) return rc;
  return progress(db, im->o->progress, im->o->progress_ctx, entries, im->total);
}

int oplog_import(oplog_db *db, const oplog_import_opts *opts, oplog_read_fn read, void *rctx, oplog_import_result *out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  static const oplog_import_opts none = {0};
  if (out) memset(out, 0, sizeof *out);
  if (!read) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "read is NULL");
  if (db->readonly) return opl_db_error(db, OPLOG_READONLY, "the file is open read-only");
  int rc = sync_ready(db);
  if (rc || (rc = opl_key_required(db))) return rc;
  importer im = {.db = db, .o = opts ? opts : &none};
  /* a frame holds one entry: its data and metadata, each within the cap */
  size_t max_frame = 2 * (size_t)db->max_entry + 4096;
  if ((rc = opl_db_begin(db, 1))) return rc;
  if (!(rc = opl_state_check(db)) && !(rc = lookups_open(db, &im.l)) &&
      !(rc = table_exists(db, "oplog_checkpoints", &im.have_checkpoints)) &&
      !(rc = opl_stream_read_begin(db, &im.r, read, rctx, max_frame)))
    rc = import_run(&im);
  lookups_close(&im.l);
  if (!rc) rc = opl_db_commit(db);
  if (rc) {
    opl_db_rollback(db);
    /* the origin rows it added are gone, their numbers free again */
    opl_origins_forget(db);
    /* what this import put in memory goes with it; the error stays */
    if (im.added_types || im.keys_added) {
      char *msg = sqlite3_mprintf("%s", oplog_errmsg(db));
      if (im.added_types) opl_catalog_load(db);
      if (im.keys_added) opl_keyring_reload(db);
      opl_db_error(db, rc, "%s", msg ? msg : oplog_code_name(rc));
      sqlite3_free(msg);
    }
  } else {
    db->wrote = 1;
  }
  opl_state_forget(db);
  opl_stream_reader_free(&im.r);
  sqlite3_free(im.os);
  opl_hindex_free(&im.os_ix);
  key_set_free(&im.need);
  sqlite3_free(im.deferred_msg);
  if (im.xsk) sodium_free(im.xsk);
  if (!rc && out) *out = im.res;
  return rc;
}

/* ---------------------------------------------------------------- join */

static int file_write(void *ctx, const void *p, size_t n) { return fwrite(p, 1, n, ctx) == n ? 0 : -1; }

static int file_read(void *ctx, void *p, size_t n, size_t *got) {
  *got = fread(p, 1, n, ctx);
  return *got < n && ferror((FILE *)ctx) ? -1 : 0;
}

int oplog_join(oplog_db *db, const char *other_path, const oplog_open_opts *other, const oplog_import_opts *opts,
               oplog_import_result *out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (out) memset(out, 0, sizeof *out);
  if (!other_path) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "other_path is NULL");
  if (db->readonly) return opl_db_error(db, OPLOG_READONLY, "the file is open read-only");
  char *cursor = NULL;
  int rc = oplog_cursor(db, &cursor);
  if (rc) return rc;
  oplog_open_opts oo = other ? *other : (oplog_open_opts){0};
  oo.readonly = 1;
  oo.no_create = 1;
  oplog_db *src = NULL;
  FILE *tmp = NULL;
  char to[2 * OPLOG_ORIGIN_BYTES + 1];
  hex(db->self_id, to);
  rc = oplog_open(other_path, &oo, &src);
  if (rc) {
    rc = opl_db_error(db, rc, "%s: %s", other_path, src ? oplog_errmsg(src) : "out of memory");
  } else if (src->kr.encrypted != db->kr.encrypted) {
    rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT, "an %s file does not join a %s one",
                      db->kr.encrypted ? "encrypted" : "plaintext", src->kr.encrypted ? "encrypted" : "plaintext");
  } else if (!(tmp = tmpfile())) {
    rc = opl_db_error(db, OPLOG_IO, "join: no temporary file for the stream");
  } else {
    /* the other file's export goes through a temporary file: memory stays bounded */
    oplog_export_opts eo = {.to = to, .since = cursor};
    rc = oplog_export(src, &eo, file_write, tmp, NULL);
    if (rc) rc = opl_db_error(db, rc, "%s: %s", other_path, oplog_errmsg(src));
    else if (fflush(tmp) != 0 || fseek(tmp, 0, SEEK_SET) != 0) rc = opl_db_error(db, OPLOG_IO, "join: the temporary file failed");
    else rc = oplog_import(db, opts, file_read, tmp, out);
  }
  if (tmp) fclose(tmp);
  oplog_close(src);
  sqlite3_free(cursor);
  return rc;
}
