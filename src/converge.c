/* converge.c — the total order of entries and the live tables of a merged
 * file (FORMAT.md "Order and convergence"): the touch index (which row
 * keys each entry names), applying one entry with the skip rule, bringing
 * the live tables to the replay of all entries in total order after an
 * import, and reading the recorded conflicts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Shadow tables of a recomputation live in temp, named <table><suffix>. */
#define CV_SUFFIX "_oplog_cv"

int opl_order_cmp(int64_t clock_a, const uint8_t *origin_a, int64_t seq_a, int64_t clock_b,
                  const uint8_t *origin_b, int64_t seq_b) {
  if (clock_a != clock_b) return clock_a < clock_b ? -1 : 1;
  int c = memcmp(origin_a, origin_b, OPLOG_ORIGIN_BYTES);
  if (c) return c < 0 ? -1 : 1;
  return seq_a < seq_b ? -1 : seq_a > seq_b;
}

static int op_is_create(int kind) { return kind == OPLOG_OP_CREATE || kind == OPLOG_OP_CREATE_ITEMS; }

/* ---------------------------------------------------------------- keys */

enum { KEY_NULL = 0, KEY_INTEGER = 1, KEY_REAL = 2, KEY_TEXT = 3, KEY_BLOB = 4 };

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == '\v'; }

/* Text that SQLite's numeric affinity turns into a number: a decimal
 * integer or real literal, spaces around it allowed. */
static int text_number(const char *p, size_t n, int64_t *i, double *r, int *is_int) {
  while (n && is_space(*p)) p++, n--;
  while (n && is_space(p[n - 1])) n--;
  char tmp[128];
  if (n == 0 || n >= sizeof tmp) return 0;
  memcpy(tmp, p, n);
  tmp[n] = 0;
  size_t k = 0, digits = 0;
  int integral = 1;
  if (tmp[k] == '+' || tmp[k] == '-') k++;
  while (tmp[k] >= '0' && tmp[k] <= '9') k++, digits++;
  if (tmp[k] == '.') {
    integral = 0;
    k++;
    while (tmp[k] >= '0' && tmp[k] <= '9') k++, digits++;
  }
  if (!digits) return 0;
  if (tmp[k] == 'e' || tmp[k] == 'E') {
    integral = 0;
    k++;
    if (tmp[k] == '+' || tmp[k] == '-') k++;
    size_t ed = 0;
    while (tmp[k] >= '0' && tmp[k] <= '9') k++, ed++;
    if (!ed) return 0;
  }
  if (k != n) return 0;
  if (integral) {
    /* within int64: an integer; beyond: a real, as SQLite does */
    int neg = tmp[0] == '-';
    uint64_t v = 0;
    int over = 0;
    for (size_t j = (tmp[0] == '+' || tmp[0] == '-'); j < n; j++) {
      if (v > (UINT64_MAX - (uint64_t)(tmp[j] - '0')) / 10) over = 1;
      v = v * 10 + (uint64_t)(tmp[j] - '0');
    }
    if (!over && (neg ? v <= (uint64_t)INT64_MAX + 1 : v <= (uint64_t)INT64_MAX)) {
      *i = neg ? (int64_t)(0 - v) : (int64_t)v;
      *is_int = 1;
      return 1;
    }
  }
  *r = strtod(tmp, NULL);
  *is_int = 0;
  return 1;
}

/* One key value in canonical form: as the key column compares it. A value
 * logged in another storage class than the table holds (format-1 entries:
 * text "5" for an INTEGER column) takes the column's affinity, and a whole
 * real is the integer it equals. */
static int key_value(const type_def *t, int col, const oplog_value *v, buf *out) {
  int kind;
  int64_t i = 0;
  double r = 0;
  const char *p = NULL;
  size_t n = 0;
  char tmp[64];
  switch (opl_value_stored_type(t, col, v)) {
  case OPLOG_INTEGER:
  case OPLOG_BOOLEAN: kind = KEY_INTEGER, i = v->u.i; break;
  case OPLOG_REAL: kind = KEY_REAL, r = v->u.r; break;
  case OPLOG_TEXT: kind = KEY_TEXT, p = v->u.b.p, n = v->u.b.n; break;
  case OPLOG_BLOB: kind = KEY_BLOB, p = v->u.b.p, n = v->u.b.n; break;
  default: kind = KEY_NULL; break;
  }
  int aff = t->col_aff[col];
  if (kind == KEY_TEXT && (aff == AFF_INTEGER || aff == AFF_REAL || aff == AFF_NUMERIC)) {
    int is_int;
    if (text_number(p, n, &i, &r, &is_int)) kind = is_int ? KEY_INTEGER : KEY_REAL;
  }
  if ((kind == KEY_INTEGER || kind == KEY_REAL) && aff == AFF_TEXT) {
    if (kind == KEY_INTEGER) sqlite3_snprintf(sizeof tmp, tmp, "%lld", (long long)i);
    else sqlite3_snprintf(sizeof tmp, tmp, "%!.15g", r);
    p = tmp;
    n = strlen(tmp);
    kind = KEY_TEXT;
  }
  if (kind == KEY_REAL && r == floor(r) && r >= -9223372036854775808.0 && r < 9223372036854775808.0) {
    i = (int64_t)r;
    kind = KEY_INTEGER;
  }
  uint8_t head[9];
  head[0] = (uint8_t)kind;
  size_t nh = 1;
  if (kind == KEY_INTEGER) {
    uint64_t u = (uint64_t)i ^ (1ULL << 63); /* sign flipped, big-endian: blobs sort as the numbers */
    for (int k = 0; k < 8; k++) head[1 + k] = (uint8_t)(u >> (56 - 8 * k));
    nh = 9;
  } else if (kind == KEY_REAL) {
    uint64_t u;
    memcpy(&u, &r, 8);
    for (int k = 0; k < 8; k++) head[1 + k] = (uint8_t)(u >> (56 - 8 * k));
    nh = 9;
  } else if (kind == KEY_TEXT || kind == KEY_BLOB) {
    opl_put_u32(head + 1, (uint32_t)n);
    nh = 5;
  }
  if (opl_buf_append(out, head, nh)) return OPLOG_NOMEM;
  if (n && opl_buf_append(out, p, n)) return OPLOG_NOMEM;
  return OPLOG_OK;
}

int opl_touch_key(const type_def *t, const oplog_op *op, const int *cols, buf *out, int *nokey) {
  int field_of[OPLOG_MAX_COLUMNS];
  *nokey = 0;
  for (size_t i = 0; i < t->ncols; i++) field_of[i] = -1;
  for (size_t i = 0; i < op->row.nfields; i++) field_of[cols[i]] = (int)i;
  for (size_t k = 0; k < t->nkey; k++) {
    int f = field_of[t->key_idx[k]];
    if (f < 0 || (t->rowid_key && op->row.fields[f].value.type == OPLOG_NULL)) {
      *nokey = 1; /* a rowid left to SQLite: no key known before it runs */
      return OPLOG_OK;
    }
  }
  for (size_t k = 0; k < t->nkey; k++) {
    int rc = key_value(t, t->key_idx[k], &op->row.fields[field_of[t->key_idx[k]]].value, out);
    if (rc) return rc;
  }
  return OPLOG_OK;
}

/* Binds the nkey values of a canonical key from parameter 1 on. */
static int key_bind(sqlite3_stmt *s, const uint8_t *p, size_t n, size_t nkey) {
  size_t off = 0;
  for (size_t k = 0; k < nkey; k++) {
    if (off >= n) return 0;
    int kind = p[off++];
    int param = (int)k + 1;
    if (kind == KEY_INTEGER || kind == KEY_REAL) {
      if (n - off < 8) return 0;
      uint64_t u = 0;
      for (int j = 0; j < 8; j++) u = u << 8 | p[off + j];
      off += 8;
      if (kind == KEY_INTEGER) {
        sqlite3_bind_int64(s, param, (int64_t)(u ^ (1ULL << 63)));
      } else {
        double r;
        memcpy(&r, &u, 8);
        sqlite3_bind_double(s, param, r);
      }
    } else if (kind == KEY_TEXT || kind == KEY_BLOB) {
      if (n - off < 4) return 0;
      uint32_t len = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 | (uint32_t)p[off + 3] << 24;
      off += 4;
      if (n - off < len) return 0;
      if (kind == KEY_TEXT) sqlite3_bind_text(s, param, (const char *)p + off, (int)len, SQLITE_STATIC);
      else sqlite3_bind_blob(s, param, p + off, (int)len, SQLITE_STATIC);
      off += len;
    } else if (kind == KEY_NULL) {
      sqlite3_bind_null(s, param);
    } else {
      return 0;
    }
  }
  return off == n;
}

void opl_key_describe(sqlite3_str *q, const type_def *t, const oplog_op *op, const int *cols) {
  int n = 0;
  sqlite3_str_appendall(q, "(");
  for (size_t k = 0; k < t->nkey; k++) {
    const oplog_value *v = NULL;
    for (size_t i = 0; i < op->row.nfields; i++)
      if (cols[i] == t->key_idx[k]) v = &op->row.fields[i].value;
    if (n++) sqlite3_str_appendall(q, ", ");
    if (!v) {
      sqlite3_str_appendall(q, "new rowid");
      continue;
    }
    switch (opl_value_stored_type(t, t->key_idx[k], v)) {
    case OPLOG_INTEGER:
    case OPLOG_BOOLEAN: sqlite3_str_appendf(q, "%lld", (long long)v->u.i); break;
    case OPLOG_REAL: sqlite3_str_appendf(q, "%!.15g", v->u.r); break;
    case OPLOG_TEXT: sqlite3_str_appendf(q, "'%.*q'", (int)v->u.b.n, v->u.b.p ? v->u.b.p : ""); break;
    case OPLOG_BLOB:
      sqlite3_str_appendall(q, "X'");
      for (size_t j = 0; j < v->u.b.n; j++) sqlite3_str_appendf(q, "%02X", ((const uint8_t *)v->u.b.p)[j]);
      sqlite3_str_appendall(q, "'");
      break;
    default: sqlite3_str_appendall(q, "NULL"); break;
    }
  }
  sqlite3_str_appendall(q, ")");
}

/* ---------------------------------------------------------------- the touch index */

static int config_int(oplog_db *db, const char *name, int64_t *out) {
  sqlite3_stmt *s = NULL;
  *out = 0;
  int r = sqlite3_prepare_v2(db->sql, "SELECT value FROM oplog_config WHERE name = ?1", -1, &s, NULL);
  if (r == SQLITE_OK) {
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    r = sqlite3_step(s);
    if (r == SQLITE_ROW) *out = sqlite3_column_int64(s, 0);
  }
  sqlite3_finalize(s);
  return r == SQLITE_ROW || r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

static int environmental(int rc) {
  return rc == OPLOG_NOMEM || rc == OPLOG_IO || rc == OPLOG_BUSY || rc == OPLOG_READONLY || rc == OPLOG_SQL;
}

int opl_touch_rows(oplog_db *db, int64_t id, const oplog_op *ops, size_t nops, buf *key, touch_fn fn, void *ctx) {
  for (size_t i = 0; i < nops; i++) {
    const type_def *t;
    int cols[OPLOG_MAX_COLUMNS], nokey, rc;
    if ((rc = opl_catalog_find(db, ops[i].type, &t))) return rc;
    if (!t) return opl_db_error(db, OPLOG_NOT_FOUND, "entry %lld: type %s is not in the catalog", (long long)id, ops[i].type);
    if ((rc = opl_op_validate(db, t, &ops[i], cols)))
      return opl_db_error(db, rc, "entry %lld, operation %zu: %s", (long long)id, i + 1, oplog_errmsg(db));
    key->n = 0;
    if ((rc = opl_touch_key(t, &ops[i], cols, key, &nokey))) return opl_db_error(db, rc, "out of memory");
    if (!nokey && (rc = fn(ctx, t, key))) return rc;
  }
  return OPLOG_OK;
}

/* One row of the touch index, through the prepared insert. */
typedef struct touch_row {
  oplog_db *db;
  sqlite3_stmt *ins;
  int64_t id;
} touch_row;

static int touch_insert(void *ctx, const type_def *t, const buf *key) {
  touch_row *w = ctx;
  sqlite3_bind_text(w->ins, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_blob(w->ins, 2, key->p, (int)key->n, SQLITE_STATIC);
  sqlite3_bind_int64(w->ins, 3, w->id);
  int r = sqlite3_step(w->ins);
  sqlite3_reset(w->ins);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(w->db, r);
}

int opl_touch_flush(oplog_db *db, int64_t from, int strict) {
  if (db->level < 3) return OPLOG_OK;
  int64_t tw;
  int rc = config_int(db, "touched_upto", &tw);
  if (rc || (!strict && tw != from)) return rc;
  if ((rc = opl_key_required(db))) {
    if (strict) return rc;
    opl_db_clear_error(db);
    return OPLOG_OK;
  }
  sqlite3_stmt *sel = NULL, *ins = NULL, *cfg = NULL;
  char *sql = sqlite3_mprintf("SELECT %s FROM oplog_entries WHERE id > ?1 ORDER BY id", db->entry_cols);
  int r = sql ? sqlite3_prepare_v2(db->sql, sql, -1, &sel, NULL) : SQLITE_NOMEM;
  sqlite3_free(sql);
  if (r == SQLITE_OK)
    r = sqlite3_prepare_v2(db->sql, "INSERT OR IGNORE INTO oplog_touches (type, key, entry_id) VALUES (?1, ?2, ?3)", -1,
                           &ins, NULL);
  if (r == SQLITE_OK)
    r = sqlite3_prepare_v2(db->sql, "INSERT OR REPLACE INTO oplog_config (name, value) VALUES ('touched_upto', ?1)", -1,
                           &cfg, NULL);
  if (r != SQLITE_OK) rc = opl_db_sqlerr(db, r);
  else sqlite3_bind_int64(sel, 1, tw);
  arena a = {0};
  buf key = {0};
  int64_t last = tw;
  while (!rc && (r = sqlite3_step(sel)) == SQLITE_ROW) {
    oplog_entry e;
    opl_arena_reset(&a);
    int d = opl_entry_load(db, sel, ITER_OPS, &a, &e);
    if (!d) {
      touch_row w = {db, ins, e.id};
      d = opl_touch_rows(db, e.id, e.ops, e.nops, &key, touch_insert, &w);
    }
    if (d) {
      /* the derived flush of a local write stops quietly before an entry
       * it cannot read: the touch index lags, and the next catch-up
       * (strict) names the entry */
      if (strict || environmental(d)) rc = d;
      else opl_db_clear_error(db);
      break;
    }
    last = e.id;
  }
  if (!rc && r != SQLITE_DONE && r != SQLITE_ROW) rc = opl_db_sqlerr(db, r);
  if (!rc && last > tw) {
    sqlite3_bind_int64(cfg, 1, last);
    r = sqlite3_step(cfg);
    if (r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  }
  if (key.p) opl_buf_free(&key);
  opl_arena_free(&a);
  sqlite3_finalize(sel);
  sqlite3_finalize(ins);
  sqlite3_finalize(cfg);
  return rc;
}

/* ---------------------------------------------------------------- applying an entry */

/* Loads entry id (decrypted, decoded, into a) through *st, prepared on the
 * first call; the statement is reset before returning, so that nothing
 * reads while entries apply: a ROLLBACK TO in a transaction that changed
 * the schema (temp tables, new types) aborts every open statement. */
int opl_entry_by_id(oplog_db *db, sqlite3_stmt **st, int64_t id, arena *a, oplog_entry *e) {
  if (!*st) {
    char *sql = sqlite3_mprintf("SELECT %s FROM oplog_entries WHERE id = ?1", db->entry_cols);
    int r = sql ? sqlite3_prepare_v2(db->sql, sql, -1, st, NULL) : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  }
  sqlite3_bind_int64(*st, 1, id);
  int r = sqlite3_step(*st), rc;
  if (r == SQLITE_ROW) rc = opl_entry_load(db, *st, ITER_OPS, a, e);
  else if (r == SQLITE_DONE) rc = opl_db_error(db, OPLOG_NOT_FOUND, "no entry %lld", (long long)id);
  else rc = opl_db_sqlerr(db, r);
  sqlite3_reset(*st);
  return rc;
}

int opl_entry_apply(oplog_db *db, stmt_cache *c, const oplog_entry *e, int *opno, const char **kind, char **detail) {
  *opno = 0;
  *kind = NULL;
  *detail = NULL;
  int rc = opl_db_exec(db, "SAVEPOINT oplog_apply");
  if (rc) return rc;
  for (size_t i = 0; i < e->nops && !rc; i++) {
    const oplog_op *op = &e->ops[i];
    const type_def *t;
    int cols[OPLOG_MAX_COLUMNS];
    if ((rc = opl_catalog_find(db, op->type, &t))) break;
    if (!t) {
      rc = opl_db_error(db, OPLOG_NOT_FOUND, "entry %lld: type %s is not in the catalog", (long long)e->id, op->type);
      break;
    }
    if ((rc = opl_op_validate(db, t, op, cols))) {
      opl_db_error(db, rc, "entry %lld, operation %zu: %s", (long long)e->id, i + 1, oplog_errmsg(db));
      break;
    }
    rc = opl_op_apply(db, c, t, op, cols, NULL);
    if (rc != OPLOG_NOT_FOUND && rc != OPLOG_CONSTRAINT) continue;
    /* the operation cannot apply: a conflict, unless SQLite ended the
     * transaction (then it is an error like any other) */
    if (sqlite3_get_autocommit(db->sql)) break;
    const char *why = strstr(oplog_errmsg(db), ": ");
    why = why ? why + 2 : oplog_errmsg(db);
    int exists = 0;
    const char *k = rc == OPLOG_NOT_FOUND ? "missing" : "constraint";
    char *msg = sqlite3_mprintf("%s", why);
    if (!msg) {
      rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    if (rc == OPLOG_CONSTRAINT && op_is_create(op->kind) && (rc = opl_op_key_exists(db, c, t, op, cols, &exists))) {
      sqlite3_free(msg);
      break;
    }
    if (exists) k = "exists";
    sqlite3_str *q = sqlite3_str_new(NULL);
    sqlite3_str_appendf(q, "%s of %s, key ", oplog_op_name(op->kind), t->name);
    opl_key_describe(q, t, op, cols);
    if (exists) sqlite3_str_appendall(q, ": a row with this key exists");
    else if (*k == 'm') sqlite3_str_appendall(q, ": no row with this key");
    else sqlite3_str_appendf(q, ": %s", msg);
    sqlite3_free(msg);
    *detail = sqlite3_str_finish(q);
    if (!*detail) {
      rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    *opno = (int)i + 1;
    *kind = k;
    opl_db_clear_error(db);
    rc = OPLOG_OK;
    break;
  }
  if (rc || *opno) {
    /* undo the entry whole; keep the error */
    if (!sqlite3_get_autocommit(db->sql)) {
      sqlite3_exec(db->sql, "ROLLBACK TO oplog_apply", NULL, NULL, NULL);
      sqlite3_exec(db->sql, "RELEASE oplog_apply", NULL, NULL, NULL);
    }
    if (rc) {
      sqlite3_free(*detail);
      *detail = NULL;
      *opno = 0;
      *kind = NULL;
    }
    return rc;
  }
  return opl_db_exec(db, "RELEASE oplog_apply");
}

/* ---------------------------------------------------------------- converge */

typedef struct cv {
  oplog_db *db;
  arena a;
  buf key;
  stmt_cache *live, *shadow;
  char *made; /* per type index: its shadow table exists */
  size_t nmade;
  sqlite3_stmt *key_ins, *key_has; /* temp.oplog_cv_keys */
} cv;

static int exec_sql(oplog_db *db, const char *sql) { return opl_db_exec(db, sql); }

static int prepare(oplog_db *db, sqlite3_stmt **s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = sqlite3_vmprintf(fmt, ap);
  va_end(ap);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  int r = sqlite3_prepare_v2(db->sql, sql, -1, s, NULL);
  sqlite3_free(sql);
  return r == SQLITE_OK ? OPLOG_OK : opl_db_sqlerr(db, r);
}

static int step_done(oplog_db *db, sqlite3_stmt *s) {
  int r = sqlite3_step(s);
  sqlite3_reset(s);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

/* Calls fn for each operation of each entry a statement selects (entry
 * columns first), with its type, columns and canonical key (NULL: none). */
typedef int (*op_fn)(cv *v, const oplog_entry *e, size_t i, const type_def *t, const int *cols, const buf *key);
static int each_op(cv *v, sqlite3_stmt *s, op_fn fn) {
  oplog_db *db = v->db;
  int r, rc = OPLOG_OK;
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
    oplog_entry e;
    opl_arena_reset(&v->a);
    if ((rc = opl_entry_load(db, s, ITER_OPS, &v->a, &e))) break;
    for (size_t i = 0; !rc && i < e.nops; i++) {
      const type_def *t;
      int cols[OPLOG_MAX_COLUMNS], nokey;
      if ((rc = opl_catalog_find(db, e.ops[i].type, &t))) break;
      if (!t) rc = opl_db_error(db, OPLOG_NOT_FOUND, "entry %lld: type %s is not in the catalog", (long long)e.id, e.ops[i].type);
      else if ((rc = opl_op_validate(db, t, &e.ops[i], cols)))
        opl_db_error(db, rc, "entry %lld, operation %zu: %s", (long long)e.id, i + 1, oplog_errmsg(db));
      if (rc) break;
      v->key.n = 0;
      if ((rc = opl_touch_key(t, &e.ops[i], cols, &v->key, &nokey))) rc = opl_db_error(db, rc, "out of memory");
      else rc = fn(v, &e, i, t, cols, nokey ? NULL : &v->key);
    }
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  return rc;
}

static int collect_key(cv *v, const oplog_entry *e, size_t i, const type_def *t, const int *cols, const buf *key) {
  (void)e, (void)i, (void)cols;
  if (!key) return OPLOG_OK;
  sqlite3_stmt *s = v->key_ins;
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_blob(s, 2, key->p, (int)key->n, SQLITE_STATIC);
  return step_done(v->db, s);
}

/* Re-applies, to the shadow tables, an operation before the earliest new
 * entry on a row being recomputed. It applied before, on the same history
 * of that row: failing now means the file disagrees with itself. */
static int rebuild_op(cv *v, const oplog_entry *e, size_t i, const type_def *t, const int *cols, const buf *key) {
  oplog_db *db = v->db;
  if (!key) return OPLOG_OK;
  sqlite3_stmt *s = v->key_has;
  sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_blob(s, 2, key->p, (int)key->n, SQLITE_STATIC);
  int r = sqlite3_step(s);
  sqlite3_reset(s);
  if (r == SQLITE_DONE) return OPLOG_OK;
  if (r != SQLITE_ROW) return opl_db_sqlerr(db, r);
  if ((size_t)t->index >= v->nmade) return opl_db_error(db, OPLOG_CORRUPT, "the catalog changed during an import");
  int rc;
  if (!v->made[t->index]) {
    if ((rc = opl_target_create(db, t, "temp", CV_SUFFIX, 1))) return rc;
    v->made[t->index] = 1;
  }
  rc = opl_op_apply(db, v->shadow, t, &e->ops[i], cols, NULL);
  if (rc && !environmental(rc))
    rc = opl_db_error(db, OPLOG_CORRUPT, "entry %lld, operation %zu no longer applies to its row: %s", (long long)e->id, i + 1,
                      oplog_errmsg(db));
  return rc;
}

/* Brings the rows the entries from m on name back to their state just
 * before m: deleted from the live tables, rebuilt in shadow tables from
 * the earlier entries that name them (found through the touch index), and
 * copied back. The shadow keeps every intermediate state among those rows
 * alone, as the original history had it, so only the final rows meet the
 * others. */
static int reset_rows(cv *v, int64_t *removed) {
  oplog_db *db = v->db;
  sqlite3_stmt *s = NULL;
  int rc = exec_sql(db, "DELETE FROM oplog_conflicts WHERE entry_id IN (SELECT entry_id FROM temp.oplog_cv_after)");
  if (rc) return rc;
  *removed = sqlite3_changes(db->sql);
  /* the rows named from m on */
  if ((rc = prepare(db, &s, "SELECT %s FROM temp.oplog_cv_after a JOIN oplog_entries e ON e.id = a.entry_id ORDER BY a.pos",
                    db->entry_cols_e)))
    return rc;
  rc = each_op(v, s, collect_key);
  sqlite3_finalize(s);
  s = NULL;
  if (rc) return rc;
  /* their state before m, in the shadow tables; CROSS JOIN keeps the few
   * keys outermost (without statistics SQLite would scan oplog_touches) */
  if ((rc = prepare(db, &s,
                    "SELECT %s FROM (SELECT DISTINCT t.entry_id AS id FROM temp.oplog_cv_keys k"
                    " CROSS JOIN oplog_touches t ON t.type = k.type AND t.key = k.key) b"
                    " JOIN oplog_index x ON x.entry_id = b.id JOIN oplog_origins o ON o.no = x.origin"
                    " JOIN oplog_entries e ON e.id = b.id"
                    " WHERE b.id NOT IN (SELECT entry_id FROM temp.oplog_cv_after)"
                    " AND b.id NOT IN (SELECT entry_id FROM oplog_conflicts)"
                    " ORDER BY x.clock, o.id, x.seq",
                    db->entry_cols_e)))
    return rc;
  rc = each_op(v, s, rebuild_op);
  sqlite3_finalize(s);
  s = NULL;
  if (rc) return rc;
  /* out of the live tables, by key */
  if ((rc = prepare(db, &s, "SELECT type, key FROM temp.oplog_cv_keys ORDER BY type"))) return rc;
  sqlite3_stmt *del = NULL;
  const type_def *dt = NULL;
  int r;
  while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW) {
    size_t tn, kn;
    const char *tname = opl_col_bytes(s, 0, &tn);
    const uint8_t *k = (const uint8_t *)opl_col_bytes(s, 1, &kn);
    if (!dt || strlen(dt->name) != tn || memcmp(dt->name, tname, tn) != 0) {
      char *name = sqlite3_mprintf("%.*s", (int)tn, tname);
      if (!name) {
        rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
        break;
      }
      rc = opl_catalog_find(db, name, &dt);
      if (!rc && !dt) rc = opl_db_error(db, OPLOG_NOT_FOUND, "type %s is not in the catalog", name);
      sqlite3_free(name);
      if (rc) break;
      sqlite3_finalize(del);
      del = NULL;
      sqlite3_str *q = sqlite3_str_new(NULL);
      sqlite3_str_appendf(q, "DELETE FROM main.\"%w\"", dt->table);
      for (size_t j = 0; j < dt->nkey; j++)
        sqlite3_str_appendf(q, " %s \"%w\" = ?%d", j ? "AND" : "WHERE", dt->col_names[dt->key_idx[j]], (int)j + 1);
      char *sql = sqlite3_str_finish(q);
      if (!sql) {
        rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
        break;
      }
      r = sqlite3_prepare_v2(db->sql, sql, -1, &del, NULL);
      sqlite3_free(sql);
      if (r != SQLITE_OK) {
        rc = opl_db_sqlerr(db, r);
        break;
      }
    }
    if (!key_bind(del, k, kn, dt->nkey)) {
      rc = opl_db_error(db, OPLOG_CORRUPT, "a malformed key in the touch index of type %s", dt->name);
      break;
    }
    rc = step_done(db, del);
    sqlite3_clear_bindings(del);
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(del);
  sqlite3_finalize(s);
  if (rc) return rc;
  /* the rebuilt rows, back */
  for (size_t i = 0; !rc && i < v->nmade; i++) {
    if (!v->made[i]) continue;
    const type_def *t = db->types[i];
    sqlite3_str *c = sqlite3_str_new(NULL);
    for (size_t j = 0; j < t->ncols; j++) sqlite3_str_appendf(c, "%s\"%w\"", j ? ", " : "", t->col_names[j]);
    char *cols = sqlite3_str_finish(c);
    char *sql = cols ? sqlite3_mprintf("INSERT INTO main.\"%w\" (%s) SELECT %s FROM temp.\"%w%s\"", t->table, cols, cols,
                                       t->table, CV_SUFFIX)
                     : NULL;
    sqlite3_free(cols);
    rc = sql ? exec_sql(db, sql) : opl_db_error(db, OPLOG_NOMEM, "out of memory");
    sqlite3_free(sql);
  }
  return rc;
}

int opl_converge(oplog_db *db, int64_t first_id, int64_t *nconflicts) {
  int64_t ignored, removed = 0, added = 0;
  if (!nconflicts) nconflicts = &ignored;
  *nconflicts = 0;
  if (db->level < 3) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "the file's schema predates sync: open it writable first");
  /* the import inserted entries behind the cached state's back */
  opl_state_forget(db);
  int rc = opl_state_check(db);
  if (rc || db->ls.last_id < first_id) return rc;
  if ((rc = opl_catalog_load(db))) return rc;
  /* every derived table covers every entry, new ones included */
  if (db->ls.wm < db->ls.last_id && (rc = opl_index_flush(db))) return rc;
  if ((rc = opl_touch_flush(db, 0, 1))) return rc;

  cv *v = sqlite3_malloc64(sizeof *v);
  if (!v) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  memset(v, 0, sizeof *v);
  v->db = db;
  v->live = sqlite3_malloc64(sizeof *v->live);
  v->shadow = sqlite3_malloc64(sizeof *v->shadow);
  v->nmade = db->ntypes;
  v->made = sqlite3_malloc64(v->nmade + 1);
  sqlite3_stmt *s = NULL, *ins = NULL, *load = NULL;
  if (!v->live || !v->shadow || !v->made) {
    rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
    goto done;
  }
  memset(v->made, 0, v->nmade + 1);
  opl_stmt_cache_init(v->live, "main", "", 0);
  opl_stmt_cache_init(v->shadow, "temp", CV_SUFFIX, 0);
  v->live->gen = v->shadow->gen = db->catalog_gen;
  if ((rc = exec_sql(db, "DROP TABLE IF EXISTS temp.oplog_cv_after; DROP TABLE IF EXISTS temp.oplog_cv_keys;"
                         "CREATE TEMP TABLE oplog_cv_after (pos INTEGER PRIMARY KEY, entry_id INTEGER NOT NULL);"
                         "CREATE TEMP TABLE oplog_cv_keys (type TEXT NOT NULL, key BLOB NOT NULL, PRIMARY KEY (type, key))"
                         " WITHOUT ROWID")))
    goto done;
  /* m: the earliest new entry in total order */
  if ((rc = prepare(db, &s,
                    "SELECT x.clock, o.id, x.seq FROM oplog_index x JOIN oplog_origins o ON o.no = x.origin"
                    " WHERE x.entry_id >= ?1 ORDER BY x.clock, o.id, x.seq LIMIT 1")))
    goto done;
  sqlite3_bind_int64(s, 1, first_id);
  int r = sqlite3_step(s);
  if (r != SQLITE_ROW) {
    rc = r == SQLITE_DONE ? opl_db_error(db, OPLOG_CORRUPT, "the new entries from %lld are not indexed", (long long)first_id)
                          : opl_db_sqlerr(db, r);
    goto done;
  }
  /* A: m and every entry after it, in total order */
  if ((rc = prepare(db, &ins,
                    "INSERT INTO temp.oplog_cv_after (entry_id) SELECT x.entry_id FROM oplog_index x"
                    " JOIN oplog_origins o ON o.no = x.origin WHERE x.clock >= ?1"
                    " AND (x.clock > ?1 OR o.id > ?2 OR (o.id = ?2 AND x.seq >= ?3)) ORDER BY x.clock, o.id, x.seq")))
    goto done;
  sqlite3_bind_int64(ins, 1, sqlite3_column_int64(s, 0));
  sqlite3_bind_value(ins, 2, sqlite3_column_value(s, 1));
  sqlite3_bind_int64(ins, 3, sqlite3_column_int64(s, 2));
  rc = step_done(db, ins);
  sqlite3_finalize(ins);
  ins = NULL;
  sqlite3_finalize(s);
  s = NULL;
  if (rc) goto done;
  if ((rc = prepare(db, &s, "SELECT EXISTS (SELECT 1 FROM temp.oplog_cv_after WHERE entry_id < ?1)"))) goto done;
  sqlite3_bind_int64(s, 1, first_id);
  r = sqlite3_step(s);
  int behind = r == SQLITE_ROW && sqlite3_column_int(s, 0);
  if (r != SQLITE_ROW) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  s = NULL;
  if (rc) goto done;
  if (behind) {
    /* not a fast-forward: held entries sort after m */
    if ((rc = prepare(db, &v->key_ins, "INSERT OR IGNORE INTO temp.oplog_cv_keys (type, key) VALUES (?1, ?2)")) ||
        (rc = prepare(db, &v->key_has, "SELECT 1 FROM temp.oplog_cv_keys WHERE type = ?1 AND key = ?2")) ||
        (rc = reset_rows(v, &removed)))
      goto done;
  }
  /* every entry from m on, in total order, with the skip rule; one at a
   * time by position, no statement open while it applies */
  if ((rc = prepare(db, &s, "SELECT entry_id FROM temp.oplog_cv_after WHERE pos = ?1")) ||
      (rc = prepare(db, &ins, "INSERT INTO oplog_conflicts (entry_id, op, kind, detail) VALUES (?1, ?2, ?3, ?4)")))
    goto done;
  for (int64_t pos = 1; !rc; pos++) {
    sqlite3_bind_int64(s, 1, pos);
    r = sqlite3_step(s);
    int64_t id = r == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (r == SQLITE_DONE) break;
    if (r != SQLITE_ROW) {
      rc = opl_db_sqlerr(db, r);
      break;
    }
    oplog_entry e;
    opl_arena_reset(&v->a);
    if ((rc = opl_entry_by_id(db, &load, id, &v->a, &e))) break;
    int opno;
    const char *kind;
    char *detail;
    if ((rc = opl_entry_apply(db, v->live, &e, &opno, &kind, &detail)) || !opno) continue;
    sqlite3_bind_int64(ins, 1, e.id);
    sqlite3_bind_int(ins, 2, opno);
    sqlite3_bind_text(ins, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, detail, -1, SQLITE_STATIC);
    rc = step_done(db, ins);
    sqlite3_free(detail);
    added++;
  }
done:
  sqlite3_finalize(load);
  sqlite3_finalize(s);
  sqlite3_finalize(ins);
  if (v) {
    sqlite3_finalize(v->key_ins);
    sqlite3_finalize(v->key_has);
    if (v->live) opl_stmt_cache_clear(v->live);
    if (v->shadow) opl_stmt_cache_clear(v->shadow);
    for (size_t i = 0; v->made && i < v->nmade; i++) {
      if (!v->made[i]) continue;
      char *sql = sqlite3_mprintf("DROP TABLE IF EXISTS temp.\"%w%s\"", db->types[i]->table, CV_SUFFIX);
      if (sql) sqlite3_exec(db->sql, sql, NULL, NULL, NULL);
      sqlite3_free(sql);
    }
    sqlite3_exec(db->sql, "DROP TABLE IF EXISTS temp.oplog_cv_after; DROP TABLE IF EXISTS temp.oplog_cv_keys", NULL, NULL,
                 NULL);
    sqlite3_free(v->live);
    sqlite3_free(v->shadow);
    sqlite3_free(v->made);
    opl_buf_free(&v->key);
    opl_arena_free(&v->a);
    sqlite3_free(v);
  }
  /* the tickets moved with the new entries; the cached one is stale */
  opl_state_forget(db);
  if (!rc) *nconflicts = added - removed;
  return rc;
}

/* ---------------------------------------------------------------- reading conflicts */

int oplog_conflicts(oplog_db *db, const oplog_filter *f, int (*each)(void *ctx, const oplog_conflict *c), void *ctx) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (!each) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "each is NULL");
  static const oplog_filter all;
  if (!f) f = &all;
  if (f->since < 0 || f->limit < 0) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "since and limit must not be negative");
  if (db->level < 3) return OPLOG_OK; /* a file from before sync has none */
  sqlite3_stmt *s = NULL;
  int rc = prepare(db, &s, "SELECT entry_id, op, kind, detail FROM oplog_conflicts WHERE entry_id > ?1 ORDER BY entry_id%s",
                   f->limit ? " LIMIT ?2" : "");
  if (rc) return rc;
  sqlite3_bind_int64(s, 1, f->since);
  if (f->limit) sqlite3_bind_int64(s, 2, f->limit);
  int r;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    oplog_conflict c;
    c.entry_id = sqlite3_column_int64(s, 0);
    c.op = sqlite3_column_int(s, 1);
    c.kind = (const char *)sqlite3_column_text(s, 2);
    c.detail = (const char *)sqlite3_column_text(s, 3);
    if (!c.kind || !c.detail) {
      rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      break;
    }
    if ((rc = each(ctx, &c))) break;
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(s);
  return rc;
}
