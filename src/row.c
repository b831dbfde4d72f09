/* row.c — rows and values of a type: checking an operation against its
 * type, and applying it to a table (live, replay suffix or replica) with
 * prepared statements cached per shape. Identifiers come from the catalog
 * (validated at define) and are quoted; values are always bound. */
#include <math.h>
#include <string.h>

#include "internal.h"

void opl_stmt_cache_init(stmt_cache *c, const char *schema, const char *suffix, int read_back) {
  memset(c, 0, sizeof *c);
  c->schema = schema;
  c->suffix = suffix;
  c->read_back = read_back;
}

void opl_stmt_cache_clear(stmt_cache *c) {
  for (int i = 0; i < STMT_CACHE_SLOTS; i++) {
    sqlite3_finalize(c->slot[i].stmt);
    c->slot[i].stmt = NULL;
    c->slot[i].type = NULL;
  }
}

static int op_class(int kind) {
  switch (kind) {
  case OPLOG_OP_CREATE:
  case OPLOG_OP_CREATE_ITEMS: return OPLOG_OP_CREATE;
  case OPLOG_OP_DELETE:
  case OPLOG_OP_DELETE_ITEMS: return OPLOG_OP_DELETE;
  default: return kind;
  }
}

oplog_value_type opl_value_stored_type(const type_def *t, int col, const oplog_value *v) {
  if (v->type == OPLOG_TEXT && t->col_aff[col] == AFF_BLOB) return OPLOG_BLOB;
  if (v->type == OPLOG_REAL && isnan(v->u.r)) return OPLOG_NULL; /* SQLite stores NaN as NULL */
  return v->type;
}

static int name_list_index(const type_def *t, const char *name) {
  return name ? opl_column_index(t, name) : -1;
}

int opl_op_validate(oplog_db *db, const type_def *t, const oplog_op *op, int *cols) {
  int k = op->kind;
  if (k < OPLOG_OP_CREATE || k > OPLOG_OP_DELETE_ITEMS)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "unknown operation kind %d", k);
  if (op->row.nfields > t->ncols)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "row has more fields than type %s has columns", t->name);
  if (op->row.nfields && !op->row.fields)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "row fields are NULL");
  uint64_t present = 0;
  for (size_t i = 0; i < op->row.nfields; i++) {
    const oplog_field *f = &op->row.fields[i];
    int c = name_list_index(t, f->name);
    if (c < 0)
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "type %s has no column '%s'", t->name,
                      f->name ? f->name : "(null)");
    if (present & (1ULL << c))
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "column %s given twice", f->name);
    present |= 1ULL << c;
    cols[i] = c;
    const oplog_value *v = &f->value;
    switch (v->type) {
    case OPLOG_NULL:
    case OPLOG_INTEGER:
    case OPLOG_REAL: break;
    case OPLOG_BOOLEAN:
      if (v->u.i != 0 && v->u.i != 1)
        return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "boolean %s must be 0 or 1", f->name);
      break;
    case OPLOG_TEXT:
    case OPLOG_BLOB:
      if (v->u.b.n && !v->u.b.p)
        return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "value of %s is NULL", f->name);
      if (v->u.b.n > 1000000000)
        return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "value of %s is larger than 1e9 bytes", f->name);
      if (v->type == OPLOG_TEXT && t->col_aff[c] != AFF_BLOB && !opl_utf8_valid(v->u.b.p, v->u.b.n))
        return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "text of %s is not valid UTF-8", f->name);
      break;
    default: return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "value of %s has unknown type %d", f->name, v->type);
    }
  }
  if (t->rowid_key)
    for (size_t i = 0; i < op->row.nfields; i++) {
      /* SQLite turns any other value of a rowid key into a rowid of its
       * own choosing (NaN into NULL, then a new id): the log would differ */
      oplog_value_type vt = op->row.fields[i].value.type;
      if (cols[i] == t->key_idx[0] && vt != OPLOG_INTEGER && vt != OPLOG_NULL)
        return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "key %s of %s must be an integer", op->row.fields[i].name,
                        t->name);
    }
  int missing_key = (present & t->key_mask) != t->key_mask;
  if (k != OPLOG_OP_UPDATE && (op->nmask || op->nnulls))
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "mask and nulls belong to update only");
  if (op_class(k) == OPLOG_OP_CREATE) {
    if (missing_key && !t->rowid_key)
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "create of %s needs its key columns", t->name);
    return OPLOG_OK;
  }
  if (missing_key)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "%s of %s needs its key columns to select the row",
                    oplog_op_name(k), t->name);
  if (k != OPLOG_OP_UPDATE) return OPLOG_OK;
  if (op->nmask == 0 && op->nnulls == 0)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "update of %s needs a mask or nulls", t->name);
  if ((op->nmask && !op->mask) || (op->nnulls && !op->nulls))
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "mask or nulls is NULL");
  uint64_t mask = 0, nulls = 0;
  for (size_t i = 0; i < op->nmask; i++) {
    int c = name_list_index(t, op->mask[i]);
    if (c < 0)
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "mask names '%s', not a column of %s",
                      op->mask[i] ? op->mask[i] : "(null)", t->name);
    if (!(present & (1ULL << c)))
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "mask names %s, which the row does not give", op->mask[i]);
    mask |= 1ULL << c;
  }
  for (size_t i = 0; i < op->nnulls; i++) {
    int c = name_list_index(t, op->nulls[i]);
    if (c < 0)
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "nulls names '%s', not a column of %s",
                      op->nulls[i] ? op->nulls[i] : "(null)", t->name);
    if (mask & (1ULL << c))
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "column %s is in both mask and nulls", op->nulls[i]);
    nulls |= 1ULL << c;
  }
  if ((mask | nulls) & t->key_mask)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "update cannot change key columns of %s", t->name);
  return OPLOG_OK;
}

/* A statement class of its own: reading a row back by its key. */
#define OP_READ 100

/* Columns a live write reads back, so that the log holds the row as
 * stored: a create all of them, an update its key and what it sets, a
 * delete its key. */
static uint64_t returned_columns(const type_def *t, int cls, uint64_t set) {
  if (cls == OPLOG_OP_CREATE) return t->ncols == 64 ? ~0ULL : (1ULL << t->ncols) - 1;
  return t->key_mask | (cls == OPLOG_OP_UPDATE ? set : 0);
}

static char *build_sql(const stmt_cache *c, const type_def *t, int cls, uint64_t set, uint64_t nul) {
  sqlite3_str *q = sqlite3_str_new(NULL);
  if (cls == OP_READ) {
    int n = 0;
    for (size_t i = 0; i < t->ncols; i++)
      if (set & (1ULL << i)) sqlite3_str_appendf(q, "%s\"%w\"", n++ ? ", " : "SELECT ", t->col_names[i]);
    sqlite3_str_appendf(q, " FROM \"%w\".\"%w%w\"", c->schema, t->table, c->suffix);
    for (size_t k = 0; k < t->nkey; k++)
      sqlite3_str_appendf(q, " %s \"%w\" = ?", k ? "AND" : "WHERE", t->col_names[t->key_idx[k]]);
  } else if (cls == OPLOG_OP_CREATE) {
    sqlite3_str_appendf(q, "INSERT INTO \"%w\".\"%w%w\" ", c->schema, t->table, c->suffix);
    if (!set) {
      sqlite3_str_appendall(q, "DEFAULT VALUES");
    } else {
      int n = 0;
      sqlite3_str_appendall(q, "(");
      for (size_t i = 0; i < t->ncols; i++)
        if (set & (1ULL << i)) sqlite3_str_appendf(q, "%s\"%w\"", n++ ? ", " : "", t->col_names[i]);
      sqlite3_str_appendall(q, ") VALUES (");
      for (int i = 0; i < n; i++) sqlite3_str_appendall(q, i ? ", ?" : "?");
      sqlite3_str_appendall(q, ")");
    }
  } else {
    if (cls == OPLOG_OP_UPDATE) {
      int n = 0;
      sqlite3_str_appendf(q, "UPDATE \"%w\".\"%w%w\" SET ", c->schema, t->table, c->suffix);
      for (size_t i = 0; i < t->ncols; i++)
        if ((set | nul) & (1ULL << i))
          sqlite3_str_appendf(q, "%s\"%w\" = %s", n++ ? ", " : "", t->col_names[i], (set & (1ULL << i)) ? "?" : "NULL");
    } else {
      sqlite3_str_appendf(q, "DELETE FROM \"%w\".\"%w%w\"", c->schema, t->table, c->suffix);
    }
    for (size_t k = 0; k < t->nkey; k++)
      sqlite3_str_appendf(q, " %s \"%w\" = ?", k ? "AND" : "WHERE", t->col_names[t->key_idx[k]]);
  }
  return sqlite3_str_finish(q);
}

static sqlite3_stmt *cached_stmt(oplog_db *db, stmt_cache *c, const type_def *t, int cls,
                                 uint64_t set, uint64_t nul) {
  if (c->gen != db->catalog_gen) {
    opl_stmt_cache_clear(c);
    c->gen = db->catalog_gen;
  }
  uint64_t h = (uint64_t)t->index * 0x9e3779b97f4a7c15ULL ^ set * 0xff51afd7ed558ccdULL ^
               nul * 0xc4ceb9fe1a85ec53ULL ^ (uint64_t)cls;
  h ^= h >> 29;
  for (int probe = 0; probe < 8; probe++) {
    stmt_slot *s = &c->slot[(h + probe) % STMT_CACHE_SLOTS];
    if (s->stmt && s->type == t && s->kind == cls && s->set_mask == set && s->null_mask == nul) {
      sqlite3_reset(s->stmt);
      return s->stmt;
    }
  }
  stmt_slot *s = NULL;
  for (int probe = 0; probe < 8 && !s; probe++)
    if (!c->slot[(h + probe) % STMT_CACHE_SLOTS].stmt) s = &c->slot[(h + probe) % STMT_CACHE_SLOTS];
  if (!s) {
    s = &c->slot[h % STMT_CACHE_SLOTS]; /* evict */
    sqlite3_finalize(s->stmt);
    s->stmt = NULL;
  }
  char *sql = build_sql(c, t, cls, set, nul);
  if (!sql) {
    opl_db_error(db, OPLOG_NOMEM, "out of memory");
    return NULL;
  }
  int r = sqlite3_prepare_v3(db->sql, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmt, NULL);
  sqlite3_free(sql);
  if (r != SQLITE_OK) {
    opl_db_sqlerr(db, r);
    s->stmt = NULL;
    return NULL;
  }
  s->type = t;
  s->kind = cls;
  s->set_mask = set;
  s->null_mask = nul;
  return s->stmt;
}

static void bind_value(sqlite3_stmt *s, int param, const type_def *t, int col, const oplog_value *v) {
  switch (opl_value_stored_type(t, col, v)) {
  case OPLOG_INTEGER:
  case OPLOG_BOOLEAN: sqlite3_bind_int64(s, param, v->u.i); break;
  case OPLOG_REAL: sqlite3_bind_double(s, param, v->u.r); break;
  case OPLOG_TEXT: sqlite3_bind_text(s, param, v->u.b.p ? v->u.b.p : "", (int)v->u.b.n, SQLITE_STATIC); break;
  case OPLOG_BLOB: sqlite3_bind_blob(s, param, v->u.b.p ? v->u.b.p : "", (int)v->u.b.n, SQLITE_STATIC); break;
  default: sqlite3_bind_null(s, param); break;
  }
}

/* The row read back (columns `ret` of t), as the operation to log: it
 * replaces op's row; op's mask and nulls stay. */
static int log_returned(oplog_db *db, queue *log, const type_def *t, const oplog_op *op, sqlite3_stmt *s,
                        uint64_t ret) {
  oplog_field fields[OPLOG_MAX_COLUMNS];
  int cols[OPLOG_MAX_COLUMNS];
  size_t n = 0;
  for (size_t i = 0; i < t->ncols; i++) {
    if (!(ret & (1ULL << i))) continue;
    oplog_value *v = &fields[n].value;
    int k = (int)n;
    fields[n].name = t->col_names[i];
    cols[n++] = (int)i;
    switch (sqlite3_column_type(s, k)) {
    case SQLITE_INTEGER:
      /* A REAL column holds a whole number as a real (SQLite keeps it
       * in integer form on disk; RETURNING, for one, hands that back). */
      if (t->col_aff[i] == AFF_REAL) {
        v->type = OPLOG_REAL;
        v->u.r = sqlite3_column_double(s, k);
      } else {
        v->type = OPLOG_INTEGER;
        v->u.i = sqlite3_column_int64(s, k);
      }
      break;
    case SQLITE_FLOAT:
      v->type = OPLOG_REAL;
      v->u.r = sqlite3_column_double(s, k);
      break;
    case SQLITE_TEXT:
    case SQLITE_BLOB:
      v->type = sqlite3_column_type(s, k) == SQLITE_TEXT ? OPLOG_TEXT : OPLOG_BLOB;
      v->u.b.p = opl_col_bytes(s, k, &v->u.b.n);
      break;
    default: v->type = OPLOG_NULL; break;
    }
  }
  oplog_op logged = *op;
  logged.row.fields = fields;
  logged.row.nfields = n;
  return opl_queue_add(db, log, t, &logged, cols);
}

/* Binds the key of op's row to s from parameter p on; a rowid key that a
 * create left out (or gave NULL) is the rowid SQLite assigned. */
static void bind_key(oplog_db *db, sqlite3_stmt *s, int p, const type_def *t, const oplog_op *op,
                     const int *field_of) {
  int created = op_class(op->kind) == OPLOG_OP_CREATE;
  for (size_t k = 0; k < t->nkey; k++) {
    int col = t->key_idx[k], f = field_of[col];
    if (created && t->rowid_key && (f < 0 || op->row.fields[f].value.type == OPLOG_NULL))
      sqlite3_bind_int64(s, p++, sqlite3_last_insert_rowid(db->sql));
    else
      bind_value(s, p++, t, col, &op->row.fields[f].value);
  }
}

/* Reads back, by its key, the row a live write leaves (or, before a
 * delete, the row it will remove) and queues it as the operation to log.
 * Exactly one row must match. A SELECT after the write costs far less than
 * RETURNING, which makes SQLite keep a statement journal per write. */
static int read_back(oplog_db *db, stmt_cache *c, const type_def *t, const oplog_op *op, const int *field_of,
                     uint64_t ret, queue *log) {
  sqlite3_stmt *s = cached_stmt(db, c, t, OP_READ, ret, 0);
  if (!s) return db->code;
  bind_key(db, s, 1, t, op, field_of);
  int r = sqlite3_step(s), rc = OPLOG_OK;
  if (r == SQLITE_ROW) {
    rc = log ? log_returned(db, log, t, op, s, ret) : OPLOG_OK;
    if (!rc && (r = sqlite3_step(s)) == SQLITE_ROW)
      rc = opl_db_error(db, OPLOG_CONSTRAINT, "%s of %s: its key selects more than one row of %s", oplog_op_name(op->kind),
                    t->name, t->table);
  } else if (r == SQLITE_DONE) {
    rc = opl_db_error(db, OPLOG_NOT_FOUND, "%s of %s: no row with that key in %s", oplog_op_name(op->kind), t->name,
                  t->table);
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc;
}

void opl_op_shape(const type_def *t, const oplog_op *op, const int *cols, op_shape *out) {
  out->cls = op_class(op->kind);
  out->present = out->set = out->nul = 0;
  for (size_t i = 0; i < t->ncols; i++) out->field_of[i] = -1;
  for (size_t i = 0; i < op->row.nfields; i++) {
    out->field_of[cols[i]] = (int)i;
    out->present |= 1ULL << cols[i];
  }
  if (out->cls == OPLOG_OP_CREATE) out->set = out->present;
  if (out->cls == OPLOG_OP_UPDATE) {
    for (size_t i = 0; i < op->nmask; i++) out->set |= 1ULL << opl_column_index(t, op->mask[i]);
    for (size_t i = 0; i < op->nnulls; i++) out->nul |= 1ULL << opl_column_index(t, op->nulls[i]);
  }
}

int opl_op_apply(oplog_db *db, stmt_cache *c, const type_def *t, const oplog_op *op, const int *cols, queue *log) {
  op_shape sh;
  opl_op_shape(t, op, cols, &sh);
  int cls = sh.cls;
  const int *field_of = sh.field_of;
  uint64_t set = sh.set, nul = sh.nul;
  int rc;
  uint64_t ret = returned_columns(t, cls, set);
  /* a delete logs the key it removes: read before the row is gone */
  if (c->read_back && cls == OPLOG_OP_DELETE && (rc = read_back(db, c, t, op, field_of, ret, log))) return rc;
  sqlite3_stmt *s = cached_stmt(db, c, t, cls, set, nul);
  if (!s) return db->code;
  int p = 1;
  for (size_t i = 0; i < t->ncols; i++)
    if (set & (1ULL << i)) bind_value(s, p++, t, (int)i, &op->row.fields[field_of[i]].value);
  if (cls != OPLOG_OP_CREATE) bind_key(db, s, p, t, op, field_of);
  int r = sqlite3_step(s);
  rc = OPLOG_OK;
  int changes = sqlite3_changes(db->sql);
  if (r != SQLITE_DONE) {
    rc = opl_db_sqlerr(db, r);
    if (rc == OPLOG_CONSTRAINT)
      opl_db_error(db, rc, "%s of %s: %s", oplog_op_name(op->kind), t->name, sqlite3_errmsg(db->sql));
  } else if (cls != OPLOG_OP_CREATE && changes == 0) {
    rc = opl_db_error(db, OPLOG_NOT_FOUND, "%s of %s: no row with that key in %s%s", oplog_op_name(op->kind),
                  t->name, t->table, c->suffix);
  } else if (cls != OPLOG_OP_CREATE && changes > 1) {
    rc = opl_db_error(db, OPLOG_CONSTRAINT, "%s of %s: its key selects more than one row of %s%s",
                  oplog_op_name(op->kind), t->name, t->table, c->suffix);
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (!rc && c->read_back && cls != OPLOG_OP_DELETE) rc = read_back(db, c, t, op, field_of, ret, log);
  return rc;
}

int opl_op_key_exists(oplog_db *db, stmt_cache *c, const type_def *t, const oplog_op *op, const int *cols, int *exists) {
  op_shape sh;
  opl_op_shape(t, op, cols, &sh);
  const int *field_of = sh.field_of;
  *exists = 0;
  if ((sh.present & t->key_mask) != t->key_mask) return OPLOG_OK; /* a rowid left to SQLite: new */
  for (size_t k = 0; k < t->nkey; k++)
    if (op->row.fields[field_of[t->key_idx[k]]].value.type == OPLOG_NULL && t->rowid_key) return OPLOG_OK;
  sqlite3_stmt *s = cached_stmt(db, c, t, OP_READ, t->key_mask, 0);
  if (!s) return db->code;
  /* bound as a read of an existing row: never the last insert's rowid */
  for (size_t k = 0; k < t->nkey; k++)
    bind_value(s, (int)k + 1, t, t->key_idx[k], &op->row.fields[field_of[t->key_idx[k]]].value);
  int r = sqlite3_step(s);
  if (r == SQLITE_ROW) *exists = 1;
  int rc = r == SQLITE_ROW || r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc;
}

const char *oplog_op_name(int kind) {
  static const char *const names[] = {NULL, "create", "update", "delete", "create_items", "delete_items"};
  return kind >= 1 && kind <= 5 ? names[kind] : NULL;
}

int oplog_op_kind_from_name(const char *name) {
  for (int k = 1; name && k <= 5; k++)
    if (strcmp(oplog_op_name(k), name) == 0) return k;
  return 0;
}
