/* fleet_apply.c — `ship --apply`: the decoded operations of a file's
 * entries applied to live tables in PostgreSQL, in the total order and with
 * the skip rule of FORMAT.md "Order and convergence", across every device
 * that applies there (docs/fleet.md "Live tables"). The server keeps each
 * applied entry's decrypted operations (oplog_applied) and the row keys they
 * name (oplog_touches): an applier whose entries sort before others already
 * applied rebuilds the rows those name without the other devices' keys, as
 * converge.c does in a file. The catalog lives there too (oplog_types), so
 * that any applier can read any device's operations. One PostgreSQL
 * transaction per apply, appliers serialized by an advisory lock. Built only
 * with OPLOG_POSTGRES. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"

/* COPY buffers are sent once they hold this much. */
#define COPY_FLUSH ((size_t)8 * 1024 * 1024)

/* PostgreSQL types of the live tables' columns (docs/fleet.md). */
enum { PG_BIGINT, PG_DOUBLE, PG_TEXT, PG_BYTEA, PG_BOOL, PG_NUMERIC };
static const char *const PG_TYPE_NAMES[] = {"bigint", "double precision", "text", "bytea", "boolean", "numeric"};

typedef struct pg_type {
  type_def *t; /* checked as define checks a type */
  unsigned char kind[OPLOG_MAX_COLUMNS];
  int made;    /* its shadow table exists in this transaction */
} pg_type;

/* A statement prepared on the connection, by shape. */
typedef struct pg_stmt {
  const pg_type *p;
  int cls, shadow;
  uint64_t set, nul;
  char name[24];
} pg_stmt;

struct pg_applier {
  oplog_db *db;
  PGconn *pg;
  const char *s; /* the schema, quoted */
  pg_type *types;
  size_t ntypes;
  pg_stmt *stmts;
  size_t nstmts, capstmts;
  /* keys being recomputed: open addressing over "type index || key" blobs */
  buf *keys;
  size_t capkeys, nkeys;
  unsigned char keys_seed[crypto_shorthash_KEYBYTES];
  arena a;
  buf plain, key, probe, applied_rows, touch_rows, key_rows;
  int open; /* the transaction is open */
  /* the earliest new entry in total order */
  int64_t m_clock, m_seq;
  uint8_t m_origin[OPLOG_ORIGIN_BYTES];
  char *m_tuple; /* its (clock, origin, seq) as a row literal */
  int64_t added, conflicts_added, conflicts_removed;
};

static int nomem(oplog_db *db) { return opl_db_error(db, OPLOG_NOMEM, "out of memory"); }

static int exec_fmt(pg_applier *ap, const char *what, const char *fmt, ...) {
  va_list v;
  va_start(v, fmt);
  char *sql = sqlite3_vmprintf(fmt, v);
  va_end(v);
  if (!sql) return nomem(ap->db);
  int rc = opl_pg_exec(ap->db, ap->pg, sql, what);
  sqlite3_free(sql);
  return rc;
}

/* ---------------------------------------------------------------- tables */

static int apply_tables(pg_applier *ap) {
  const char *s = ap->s;
  char *sql = sqlite3_mprintf(
      "BEGIN;"
      "SELECT pg_advisory_xact_lock(%d, 0);"
      "CREATE TABLE IF NOT EXISTS %s.oplog_types ("
      " name text PRIMARY KEY, table_name text NOT NULL, aggregate text NOT NULL,"
      " columns text[] NOT NULL, decls text[] NOT NULL, key text[] NOT NULL);"
      "CREATE TABLE IF NOT EXISTS %s.oplog_applied ("
      " origin bytea NOT NULL, seq bigint NOT NULL, clock bigint NOT NULL, data bytea NOT NULL,"
      " PRIMARY KEY (origin, seq));"
      "CREATE INDEX IF NOT EXISTS oplog_applied_order ON %s.oplog_applied (clock, origin, seq);"
      "CREATE TABLE IF NOT EXISTS %s.oplog_touches ("
      " type text NOT NULL, key bytea NOT NULL, origin bytea NOT NULL, seq bigint NOT NULL);"
      "CREATE INDEX IF NOT EXISTS oplog_touches_key ON %s.oplog_touches (type, key);"
      "CREATE TABLE IF NOT EXISTS %s.oplog_conflicts ("
      " origin bytea NOT NULL, seq bigint NOT NULL, op integer NOT NULL, kind text NOT NULL, detail text NOT NULL,"
      " PRIMARY KEY (origin, seq));"
      "COMMIT",
      OPL_PG_LOCK_CLASS, s, s, s, s, s, s);
  if (!sql) return nomem(ap->db);
  int rc = opl_pg_exec(ap->db, ap->pg, sql, "creating the apply tables");
  sqlite3_free(sql);
  if (rc) opl_pg_rollback(ap->pg);
  return rc;
}

/* ---------------------------------------------------------------- types */

/* The words of a column declaration outside quotes and parentheses,
 * upper-cased, each after a NUL: "TEXT\0NOT\0NULL\0". */
static void decl_words(const char *d, char *out, size_t cap) {
  size_t n = 0;
  int depth = 0;
  for (const char *p = d; *p && n + 2 < cap;) {
    char c = *p;
    if (c == '\'' || c == '"' || c == '`' || c == '[') {
      char end = c == '[' ? ']' : c;
      for (p++; *p && *p != end; p++)
        ;
      if (*p) p++;
      continue;
    }
    if (c == '(') depth++;
    if (c == ')' && depth) depth--;
    if (depth || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      p++;
      continue;
    }
    while (n + 2 < cap && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
      out[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p), p++;
    out[n++] = 0;
  }
  out[n] = 0;
}

static int is_constraint_word(const char *w) {
  static const char *const stops[] = {"CONSTRAINT", "PRIMARY",    "NOT",       "NULL", "UNIQUE", "CHECK",
                                      "DEFAULT",    "COLLATE",    "REFERENCES", "GENERATED", "AS"};
  for (size_t i = 0; i < sizeof stops / sizeof *stops; i++)
    if (!strcmp(w, stops[i])) return 1;
  return 0;
}

/* The PostgreSQL type of column c, from SQLite's affinity of its
 * declaration, and whether it says NOT NULL, UNIQUE, PRIMARY KEY. */
static int column_kind(const type_def *t, int c, int *not_null, int *unique, int *primary) {
  char w[512];
  decl_words(t->col_decls[c], w, sizeof w);
  int in_type = 1, is_bool = 0, is_time = 0;
  *not_null = *unique = *primary = 0;
  const char *prev = "";
  for (const char *p = w; *p; p += strlen(p) + 1) {
    if (in_type && is_constraint_word(p)) in_type = 0;
    if (in_type && strstr(p, "BOOL")) is_bool = 1;
    if (in_type && (strstr(p, "DATE") || strstr(p, "TIME"))) is_time = 1;
    if (!strcmp(p, "NULL") && !strcmp(prev, "NOT")) *not_null = 1;
    if (!strcmp(p, "UNIQUE")) *unique = 1;
    if (!strcmp(p, "KEY") && !strcmp(prev, "PRIMARY")) *primary = 1;
    prev = p;
  }
  if (is_bool) return PG_BOOL;
  switch (t->col_aff[c]) {
  case AFF_INTEGER: return PG_BIGINT;
  case AFF_TEXT: return PG_TEXT;
  case AFF_BLOB: return PG_BYTEA;
  case AFF_REAL: return PG_DOUBLE;
  default: return is_time ? PG_TEXT : PG_NUMERIC;
  }
}

static int same_shape(const type_def *a, const type_def *b) {
  if (strcmp(a->table, b->table) || strcmp(a->aggregate, b->aggregate) || a->ncols != b->ncols || a->nkey != b->nkey)
    return 0;
  for (size_t i = 0; i < a->ncols; i++)
    if (strcmp(a->col_names[i], b->col_names[i]) || strcmp(a->col_decls[i], b->col_decls[i])) return 0;
  for (size_t k = 0; k < a->nkey; k++)
    if (a->key_idx[k] != b->key_idx[k]) return 0;
  return 1;
}

static pg_type *find_type(pg_applier *ap, const char *name) {
  for (size_t i = 0; i < ap->ntypes; i++)
    if (!strcmp(ap->types[i].t->name, name)) return &ap->types[i];
  return NULL;
}

static int add_type(pg_applier *ap, type_def *t) {
  pg_type *p = sqlite3_realloc64(ap->types, (ap->ntypes + 1) * sizeof *p);
  if (!p) {
    opl_type_free(t);
    return nomem(ap->db);
  }
  ap->types = p;
  p = &ap->types[ap->ntypes];
  memset(p, 0, sizeof *p);
  p->t = t;
  t->index = (int)ap->ntypes;
  for (size_t c = 0; c < t->ncols; c++) {
    int nn, un, pk;
    p->kind[c] = (unsigned char)column_kind(t, (int)c, &nn, &un, &pk);
  }
  ap->ntypes++;
  return OPLOG_OK;
}

/* '{"a","b"}': a text[] literal. */
static void array_literal(sqlite3_str *q, char *const *v, size_t n, const int *order) {
  sqlite3_str_appendchar(q, 1, '{');
  for (size_t i = 0; i < n; i++) {
    const char *e = v[order ? (size_t)order[i] : i];
    sqlite3_str_appendall(q, i ? ",\"" : "\"");
    for (; *e; e++) {
      if (*e == '"' || *e == '\\') sqlite3_str_appendchar(q, 1, '\\');
      sqlite3_str_appendchar(q, 1, *e);
    }
    sqlite3_str_appendchar(q, 1, '"');
  }
  sqlite3_str_appendchar(q, 1, '}');
}

/* Stores type t in the server's catalog and creates its live table. A
 * table that another type has, or that exists outside the catalog, is a
 * type conflict, as define has it in a file. */
static int publish_type(pg_applier *ap, const type_def *t) {
  oplog_db *db = ap->db;
  for (size_t i = 0; i < ap->ntypes; i++)
    if (!strcmp(ap->types[i].t->table, t->table))
      return opl_db_error(db, OPLOG_TYPE_CONFLICT, "postgres: table %s of type %s belongs to type %s in schema %s", t->table,
                          t->name, ap->types[i].t->name, ap->s);
  if (strlen(t->table) > 63)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "postgres: table name %s is longer than PostgreSQL's 63 bytes", t->table);
  for (size_t c = 0; c < t->ncols; c++)
    if (strlen(t->col_names[c]) > 63)
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "postgres: column name %s of %s is longer than PostgreSQL's 63 bytes",
                          t->col_names[c], t->name);
  sqlite3_str *q[3] = {sqlite3_str_new(NULL), sqlite3_str_new(NULL), sqlite3_str_new(NULL)};
  array_literal(q[0], t->col_names, t->ncols, NULL);
  array_literal(q[1], t->col_decls, t->ncols, NULL);
  array_literal(q[2], t->col_names, t->nkey, t->key_idx);
  char *arr[3];
  for (int i = 0; i < 3; i++) arr[i] = sqlite3_str_finish(q[i]);
  int rc = OPLOG_OK;
  if (!arr[0] || !arr[1] || !arr[2]) rc = nomem(db);
  char *sql = rc ? NULL
                 : sqlite3_mprintf("INSERT INTO %s.oplog_types (name, table_name, aggregate, columns, decls, key)"
                                   " VALUES ($1, $2, $3, $4::text[], $5::text[], $6::text[])",
                                   ap->s);
  if (!rc && !sql) rc = nomem(db);
  if (!rc) {
    const char *v[6] = {t->name, t->table, t->aggregate, arr[0], arr[1], arr[2]};
    PGresult *r = PQexecParams(ap->pg, sql, 6, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = opl_pg_fail(db, ap->pg, r, "storing a type");
    else PQclear(r);
  }
  sqlite3_free(sql);
  for (int i = 0; i < 3; i++) sqlite3_free(arr[i]);
  if (rc) return rc;
  sqlite3_str *d = sqlite3_str_new(NULL);
  sqlite3_str_appendf(d, "CREATE TABLE %s.\"%w\" (", ap->s, t->table);
  /* SQLite's uniqueness, exactly: a PRIMARY KEY that is not the rowid
   * allows NULLs there (several, as UNIQUE does in both); an INTEGER
   * PRIMARY KEY is never NULL; a key the catalog names without a declared
   * constraint is unique only when composite (the table's PRIMARY KEY the
   * file adds) */
  int declared_pk = 0;
  for (size_t c = 0; c < t->ncols; c++) {
    int nn, un, pk;
    int k = column_kind(t, (int)c, &nn, &un, &pk);
    int rowid = t->rowid_key && t->key_idx[0] == (int)c;
    declared_pk |= pk;
    sqlite3_str_appendf(d, "%s\"%w\" %s%s%s", c ? ", " : "", t->col_names[c], PG_TYPE_NAMES[k],
                        nn || rowid ? " NOT NULL" : "", un || pk ? " UNIQUE" : "");
  }
  for (size_t k = 0; !declared_pk && t->nkey > 1 && k < t->nkey; k++)
    sqlite3_str_appendf(d, "%s\"%w\"", k ? ", " : ", UNIQUE (", t->col_names[t->key_idx[k]]);
  sqlite3_str_appendall(d, !declared_pk && t->nkey > 1 ? "))" : ")");
  char *ddl = sqlite3_str_finish(d);
  if (!ddl) return nomem(db);
  PGresult *r = PQexec(ap->pg, ddl);
  sqlite3_free(ddl);
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  if (PQresultStatus(r) == PGRES_COMMAND_OK) PQclear(r);
  else if (state && !strcmp(state, "42P07")) {
    PQclear(r);
    return opl_db_error(db, OPLOG_TYPE_CONFLICT, "postgres: table %s of type %s exists in schema %s and is not the catalog's",
                        t->table, t->name, ap->s);
  } else
    return opl_pg_fail(db, ap->pg, r, "creating a live table");
  return OPLOG_OK;
}

/* The server's catalog into ap->types, then this file's types that it
 * lacks added to it (a type defined differently there is a conflict). */
static int sync_types(pg_applier *ap) {
  oplog_db *db = ap->db;
  int rc = opl_catalog_load(db);
  if (rc) return rc;
  char *sql = sqlite3_mprintf("SELECT t.name, t.table_name, t.aggregate, c.col, c.decl, array_position(t.key, c.col)"
                              " FROM %s.oplog_types t, unnest(t.columns, t.decls) WITH ORDINALITY AS c(col, decl, n)"
                              " ORDER BY t.name, c.n",
                              ap->s);
  if (!sql) return nomem(db);
  PGresult *r = PQexec(ap->pg, sql);
  sqlite3_free(sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) return opl_pg_fail(db, ap->pg, r, "reading the server's types");
  int n = PQntuples(r);
  for (int i = 0; !rc && i < n;) {
    oplog_column cols[OPLOG_MAX_COLUMNS];
    const char *key[OPLOG_MAX_COLUMNS] = {0};
    size_t ncols = 0, nkey = 0;
    int j = i, bad = 0;
    for (; j < n && !strcmp(PQgetvalue(r, j, 0), PQgetvalue(r, i, 0)); j++) {
      if (ncols == OPLOG_MAX_COLUMNS || PQgetisnull(r, j, 3) || PQgetisnull(r, j, 4)) {
        bad = 1;
        continue;
      }
      cols[ncols] = (oplog_column){PQgetvalue(r, j, 3), PQgetvalue(r, j, 4)};
      if (!PQgetisnull(r, j, 5)) {
        /* the key's positions: 1..nkey, each once */
        long pos = strtol(PQgetvalue(r, j, 5), NULL, 10);
        if (pos < 1 || pos > OPLOG_MAX_COLUMNS || key[pos - 1]) {
          bad = 1;
        } else {
          key[pos - 1] = cols[ncols].name;
          if ((size_t)pos > nkey) nkey = (size_t)pos;
        }
      }
      ncols++;
    }
    oplog_type_spec spec = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), cols, ncols, key, nkey};
    for (size_t k = 0; !bad && k < nkey; k++) bad = key[k] == NULL;
    type_def *t = NULL;
    if (bad || (rc = opl_type_make(db, &spec, &t))) {
      if (rc != OPLOG_NOMEM) {
        char *m = sqlite3_mprintf("%s", bad ? "malformed columns or key" : oplog_errmsg(db));
        rc = opl_db_error(db, OPLOG_CORRUPT, "postgres: the server's type %s is invalid: %s", PQgetvalue(r, i, 0),
                          m ? m : "out of memory");
        sqlite3_free(m);
      }
    } else {
      rc = add_type(ap, t);
    }
    i = j;
  }
  PQclear(r);
  for (size_t i = 0; !rc && i < ap->ntypes; i++)
    for (size_t j = 0; !rc && j < i; j++)
      if (!strcmp(ap->types[i].t->table, ap->types[j].t->table))
        rc = opl_db_error(db, OPLOG_CORRUPT, "postgres: the server's types %s and %s share table %s", ap->types[j].t->name,
                          ap->types[i].t->name, ap->types[i].t->table);
  for (size_t i = 0; !rc && i < db->ntypes; i++) {
    const type_def *mine = db->types[i];
    pg_type *p = find_type(ap, mine->name);
    if (p) {
      if (!same_shape(p->t, mine))
        rc = opl_db_error(db, OPLOG_TYPE_CONFLICT, "postgres: type %s is defined differently in schema %s", mine->name, ap->s);
      continue;
    }
    oplog_column cols[OPLOG_MAX_COLUMNS];
    const char *key[OPLOG_MAX_COLUMNS];
    for (size_t c = 0; c < mine->ncols; c++) cols[c] = (oplog_column){mine->col_names[c], mine->col_decls[c]};
    for (size_t k = 0; k < mine->nkey; k++) key[k] = mine->col_names[mine->key_idx[k]];
    oplog_type_spec spec = {mine->name, mine->table, mine->aggregate, cols, mine->ncols, key, mine->nkey};
    type_def *t;
    if (!(rc = publish_type(ap, mine)) && !(rc = opl_type_make(db, &spec, &t))) rc = add_type(ap, t);
  }
  return rc;
}

/* ---------------------------------------------------------------- values */

/* Parameter values, as text (or raw bytes for bytea), in num's slots. */
typedef struct params {
  const char *v[2 * OPLOG_MAX_COLUMNS];
  int len[2 * OPLOG_MAX_COLUMNS], fmt[2 * OPLOG_MAX_COLUMNS];
  char num[2 * OPLOG_MAX_COLUMNS][32];
  char *owned[2 * OPLOG_MAX_COLUMNS];
  int n;
} params;

static void params_free(params *pp) {
  for (int i = 0; i < pp->n; i++) sqlite3_free(pp->owned[i]);
  pp->n = 0;
}

/* Adds v for column c of p. Returns 0, or -1 out of memory, or 1 when the
 * value cannot be given to PostgreSQL's type at all (a BLOB that is not
 * text for a text column, say). */
static int param_add(params *pp, const pg_type *p, int c, const oplog_value *v) {
  int i = pp->n++, k = p->kind[c];
  pp->owned[i] = NULL;
  pp->fmt[i] = 0;
  pp->len[i] = 0;
  pp->v[i] = pp->num[i];
  switch (opl_value_stored_type(p->t, c, v)) {
  case OPLOG_NULL: pp->v[i] = NULL; break;
  case OPLOG_INTEGER:
  case OPLOG_BOOLEAN:
    if (k == PG_BOOL) snprintf(pp->num[i], sizeof pp->num[i], "%s", v->u.i ? "true" : "false");
    else snprintf(pp->num[i], sizeof pp->num[i], "%lld", (long long)v->u.i);
    break;
  case OPLOG_REAL:
    if (k == PG_BOOL) snprintf(pp->num[i], sizeof pp->num[i], "%s", v->u.r != 0 ? "true" : "false");
    else if (k == PG_TEXT) sqlite3_snprintf(sizeof pp->num[i], pp->num[i], "%!.15g", v->u.r); /* as SQLite's text of it */
    else if (isinf(v->u.r)) snprintf(pp->num[i], sizeof pp->num[i], "%sInfinity", v->u.r < 0 ? "-" : "");
    else snprintf(pp->num[i], sizeof pp->num[i], "%.17g", v->u.r);
    break;
  case OPLOG_TEXT:
  case OPLOG_BLOB:
    if (k == PG_BYTEA) {
      pp->v[i] = v->u.b.n ? v->u.b.p : "";
      pp->len[i] = (int)v->u.b.n;
      pp->fmt[i] = 1;
      return 0;
    }
    if (v->u.b.n && (memchr(v->u.b.p, 0, v->u.b.n) || !opl_utf8_valid(v->u.b.p, v->u.b.n))) return 1;
    if (!(pp->owned[i] = sqlite3_mprintf("%.*s", (int)v->u.b.n, v->u.b.n ? (const char *)v->u.b.p : ""))) return -1;
    pp->v[i] = pp->owned[i];
    break;
  default: return 1;
  }
  /* numbers for a bytea column: their text as bytes */
  if (k == PG_BYTEA && pp->v[i]) {
    pp->len[i] = (int)strlen(pp->v[i]);
    pp->fmt[i] = 1;
  }
  return 0;
}

/* ---------------------------------------------------------------- statements */

static void target(sqlite3_str *q, const pg_applier *ap, const pg_type *p, int shadow) {
  if (shadow) sqlite3_str_appendf(q, "pg_temp.\"oplog_cv_%d\"", p->t->index);
  else sqlite3_str_appendf(q, "%s.\"%w\"", ap->s, p->t->table);
}

/* A statement class of its own: is there a row with this key? */
#define OP_READ 100

/* The statement of a shape, prepared once per connection. */
static const char *statement(pg_applier *ap, const pg_type *p, int cls, uint64_t set, uint64_t nul, int shadow) {
  for (size_t i = 0; i < ap->nstmts; i++) {
    pg_stmt *s = &ap->stmts[i];
    if (s->p == p && s->cls == cls && s->set == set && s->nul == nul && s->shadow == shadow) return s->name;
  }
  const type_def *t = p->t;
  sqlite3_str *q = sqlite3_str_new(NULL);
  int n = 0;
  if (cls == OP_READ) {
    sqlite3_str_appendall(q, "SELECT 1 FROM ");
    target(q, ap, p, shadow);
    for (size_t k = 0; k < t->nkey; k++)
      sqlite3_str_appendf(q, " %s \"%w\" = $%d", k ? "AND" : "WHERE", t->col_names[t->key_idx[k]], ++n);
  } else if (cls == OPLOG_OP_CREATE) {
    sqlite3_str_appendall(q, "INSERT INTO ");
    target(q, ap, p, shadow);
    if (!set) sqlite3_str_appendall(q, " DEFAULT VALUES");
    for (size_t i = 0; i < t->ncols; i++)
      if (set & (1ULL << i)) sqlite3_str_appendf(q, "%s\"%w\"", n++ ? ", " : " (", t->col_names[i]);
    for (int i = 0; i < n; i++) sqlite3_str_appendf(q, "%s$%d", i ? ", " : ") VALUES (", i + 1);
    if (n) sqlite3_str_appendall(q, ")");
  } else {
    sqlite3_str_appendall(q, cls == OPLOG_OP_UPDATE ? "UPDATE " : "DELETE FROM ");
    target(q, ap, p, shadow);
    int m = 0;
    for (size_t i = 0; cls == OPLOG_OP_UPDATE && i < t->ncols; i++) {
      if (set & (1ULL << i)) sqlite3_str_appendf(q, "%s\"%w\" = $%d", m++ ? ", " : " SET ", t->col_names[i], ++n);
      else if (nul & (1ULL << i)) sqlite3_str_appendf(q, "%s\"%w\" = NULL", m++ ? ", " : " SET ", t->col_names[i]);
    }
    for (size_t k = 0; k < t->nkey; k++)
      sqlite3_str_appendf(q, " %s \"%w\" = $%d", k ? "AND" : "WHERE", t->col_names[t->key_idx[k]], ++n);
  }
  char *sql = sqlite3_str_finish(q);
  if (!sql) {
    nomem(ap->db);
    return NULL;
  }
  pg_stmt *g = opl_grow(ap->stmts, &ap->capstmts, ap->nstmts, sizeof *g);
  if (!g) {
    sqlite3_free(sql);
    nomem(ap->db);
    return NULL;
  }
  ap->stmts = g;
  pg_stmt *s = &ap->stmts[ap->nstmts];
  *s = (pg_stmt){p, cls, shadow, set, nul, {0}};
  snprintf(s->name, sizeof s->name, "oplog_apply_%zu", ap->nstmts);
  PGresult *r = PQprepare(ap->pg, s->name, sql, n, NULL);
  sqlite3_free(sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    opl_pg_fail(ap->db, ap->pg, r, "preparing a statement");
    return NULL;
  }
  PQclear(r);
  ap->nstmts++;
  return s->name;
}

/* ---------------------------------------------------------------- one operation */

/* The outcome of an operation: applied, or a conflict (*kind set, *detail
 * the conflict's text), or an error (returned). */
typedef struct outcome {
  const char *kind;
  char *detail;
} outcome;

static int conflict(pg_applier *ap, outcome *o, const pg_type *p, const oplog_op *op, const int *cols, const char *kind,
                    const char *why) {
  sqlite3_str *q = sqlite3_str_new(NULL);
  sqlite3_str_appendf(q, "%s of %s, key ", oplog_op_name(op->kind), p->t->name);
  opl_key_describe(q, p->t, op, cols);
  sqlite3_str_appendf(q, ": %s", why);
  o->kind = kind;
  o->detail = sqlite3_str_finish(q);
  return o->detail ? OPLOG_OK : nomem(ap->db);
}

/* Errors that the data decides (a value, a constraint, a size limit such
 * as an index row too large): a conflict, not a failure of the apply. */
static int is_data_error(const char *state) {
  return state && (!strncmp(state, "22", 2) || !strncmp(state, "23", 2) || !strncmp(state, "54", 2));
}

/* Binds the key columns of op (from its fields) after the n set before;
 * 1 when a key value cannot be given to PostgreSQL's type. */
static int key_params(params *pp, const pg_type *p, const op_shape *sh, const oplog_op *op, int *badcol) {
  for (size_t k = 0; k < p->t->nkey; k++) {
    *badcol = p->t->key_idx[k];
    int bad = param_add(pp, p, *badcol, &op->row.fields[sh->field_of[*badcol]].value);
    if (bad) return bad;
  }
  return 0;
}

/* Whether a row with op's key is in p's live table, as the file asks when a
 * create fails (converge.c: "exists" rather than "constraint"). Runs in a
 * savepoint of its own: a key PostgreSQL's type refuses names no row. */
static int key_exists(pg_applier *ap, const pg_type *p, const op_shape *sh, const oplog_op *op, int *exists) {
  *exists = 0;
  if ((sh->present & p->t->key_mask) != p->t->key_mask) return OPLOG_OK; /* a rowid left out: new */
  params pp;
  pp.n = 0;
  int badcol, bad = key_params(&pp, p, sh, op, &badcol), rc = OPLOG_OK;
  const char *name = bad ? NULL : statement(ap, p, OP_READ, 0, 0, 0);
  if (bad < 0) rc = nomem(ap->db);
  else if (!bad && !name) rc = ap->db->code;
  if (name && !(rc = opl_pg_exec(ap->db, ap->pg, "SAVEPOINT oplog_key", "looking up a key"))) {
    PGresult *r = PQexecPrepared(ap->pg, name, pp.n, pp.v, pp.len, pp.fmt, 0);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
      *exists = PQntuples(r) > 0;
      PQclear(r);
      rc = opl_pg_exec(ap->db, ap->pg, "RELEASE SAVEPOINT oplog_key", "looking up a key");
    } else if (PQstatus(ap->pg) == CONNECTION_OK && is_data_error(state)) {
      PQclear(r);
      rc = opl_pg_exec(ap->db, ap->pg, "ROLLBACK TO SAVEPOINT oplog_key; RELEASE SAVEPOINT oplog_key", "looking up a key");
    } else {
      rc = opl_pg_fail(ap->db, ap->pg, r, "looking up a key");
    }
  }
  params_free(&pp);
  return rc;
}

/* Runs op on p's table (or its shadow). A failure PostgreSQL reports
 * aborts the transaction; when a create fails and `undo` names a
 * savepoint that leaves the table as it was just before op, it is rolled
 * back to and the key looked up: "exists" or "constraint", as in a file.
 * The caller's savepoint undoes the rest. */
static int run_op(pg_applier *ap, const pg_type *p, const oplog_op *op, const int *cols, int shadow, const char *undo,
                  outcome *o) {
  const type_def *t = p->t;
  op_shape sh;
  opl_op_shape(t, op, cols, &sh);
  o->kind = NULL;
  o->detail = NULL;
  params pp;
  pp.n = 0;
  int bad = 0, badcol = -1;
  for (size_t i = 0; !bad && i < t->ncols; i++) {
    if (!(sh.set & (1ULL << i))) continue;
    badcol = (int)i;
    bad = param_add(&pp, p, badcol, &op->row.fields[sh.field_of[i]].value);
  }
  if (!bad && sh.cls != OPLOG_OP_CREATE) bad = key_params(&pp, p, &sh, op, &badcol);
  int rc = OPLOG_OK, aborted = 0;
  char why[256] = "";
  if (bad < 0) rc = nomem(ap->db);
  else if (bad)
    snprintf(why, sizeof why, "column %s: a value that PostgreSQL's %s cannot hold", t->col_names[badcol],
             PG_TYPE_NAMES[p->kind[badcol]]);
  const char *name = rc || bad ? NULL : statement(ap, p, sh.cls, sh.set, sh.nul, shadow);
  if (!rc && !bad && !name) rc = ap->db->code;
  if (name) {
    PGresult *r = PQexecPrepared(ap->pg, name, pp.n, pp.v, pp.len, pp.fmt, 0);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
      long long changed = atoll(PQcmdTuples(r));
      PQclear(r);
      if (sh.cls != OPLOG_OP_CREATE && changed == 0) rc = conflict(ap, o, p, op, cols, "missing", "no row with this key");
      else if (sh.cls != OPLOG_OP_CREATE && changed > 1)
        rc = conflict(ap, o, p, op, cols, "constraint", "its key selects more than one row");
    } else if (PQstatus(ap->pg) == CONNECTION_OK && is_data_error(state)) {
      const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
      snprintf(why, sizeof why, "%s", msg ? msg : "a constraint failed");
      PQclear(r);
      bad = aborted = 1;
    } else {
      rc = opl_pg_fail(ap->db, ap->pg, r, "applying an operation");
    }
  }
  params_free(&pp);
  if (!rc && bad) {
    int exists = 0;
    if (sh.cls == OPLOG_OP_CREATE && undo) {
      char *sql = aborted ? sqlite3_mprintf("ROLLBACK TO SAVEPOINT %s", undo) : NULL;
      if (aborted && !sql) rc = nomem(ap->db);
      if (sql) rc = opl_pg_exec(ap->db, ap->pg, sql, "undoing an operation");
      sqlite3_free(sql);
      if (!rc) rc = key_exists(ap, p, &sh, op, &exists);
    }
    if (!rc)
      rc = exists ? conflict(ap, o, p, op, cols, "exists", "a row with this key exists")
                  : conflict(ap, o, p, op, cols, "constraint", why);
  }
  return rc;
}

/* ---------------------------------------------------------------- entries from the server */

typedef int (*entry_fn)(pg_applier *ap, const uint8_t *origin, int64_t seq, const oplog_op *ops, size_t nops);

static int entry_types(pg_applier *ap, const uint8_t *origin, int64_t seq, const oplog_op *op, size_t i, pg_type **p,
                       int *cols) {
  char hx[2 * OPLOG_ORIGIN_BYTES + 1];
  if (!(*p = find_type(ap, op->type))) {
    opl_hex(origin, OPLOG_ORIGIN_BYTES, hx);
    return opl_db_error(ap->db, OPLOG_NOT_FOUND, "postgres: origin %s seq %lld, operation %zu: type %s is not in the catalog",
                        hx, (long long)seq, i + 1, op->type);
  }
  int rc = opl_op_validate(ap->db, (*p)->t, op, cols);
  if (rc) {
    opl_hex(origin, OPLOG_ORIGIN_BYTES, hx);
    opl_db_error(ap->db, rc == OPLOG_NOMEM ? rc : OPLOG_CORRUPT, "postgres: origin %s seq %lld, operation %zu: %s", hx,
                 (long long)seq, i + 1, oplog_errmsg(ap->db));
    return rc == OPLOG_NOMEM ? rc : OPLOG_CORRUPT;
  }
  return OPLOG_OK;
}

/* Calls fn for each (origin, seq, data) row a query selects, in its order,
 * through a cursor: the rows are not all in memory at once. */
static int each_entry(pg_applier *ap, const char *select, entry_fn fn) {
  oplog_db *db = ap->db;
  int rc = exec_fmt(ap, "reading applied entries", "DECLARE oplog_cur NO SCROLL CURSOR FOR %s", select);
  while (!rc) {
    PGresult *r = PQexecParams(ap->pg, "FETCH 256 FROM oplog_cur", 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) return opl_pg_fail(db, ap->pg, r, "reading applied entries");
    int n = PQntuples(r);
    for (int i = 0; !rc && i < n; i++) {
      if (PQgetlength(r, i, 0) != OPLOG_ORIGIN_BYTES || PQgetlength(r, i, 1) != 8) {
        rc = opl_db_error(db, OPLOG_CORRUPT, "postgres: a malformed row in oplog_applied");
        break;
      }
      const uint8_t *origin = (const uint8_t *)PQgetvalue(r, i, 0);
      int64_t seq = (int64_t)opl_pg_get64((const uint8_t *)PQgetvalue(r, i, 1));
      const oplog_op *ops;
      size_t nops;
      opl_arena_reset(&ap->a);
      rc = opl_entry_data_decode(db, &ap->a, (const uint8_t *)PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2), 0, &ops,
                                 &nops);
      if (rc && rc != OPLOG_NOMEM) {
        char hx[2 * OPLOG_ORIGIN_BYTES + 1];
        opl_hex(origin, OPLOG_ORIGIN_BYTES, hx);
        rc = opl_db_error(db, OPLOG_CORRUPT, "postgres: the applied operations of origin %s seq %lld are malformed", hx,
                          (long long)seq);
      }
      if (!rc) rc = fn(ap, origin, seq, ops, nops);
    }
    PQclear(r);
    if (n == 0) break;
  }
  if (!rc) rc = opl_pg_exec(db, ap->pg, "CLOSE oplog_cur", "reading applied entries");
  return rc;
}

/* ---------------------------------------------------------------- the skip rule */

static int apply_entry(pg_applier *ap, const uint8_t *origin, int64_t seq, const oplog_op *ops, size_t nops) {
  oplog_db *db = ap->db;
  int rc = opl_pg_exec(db, ap->pg, "SAVEPOINT oplog_apply", "applying an entry");
  outcome o = {NULL, NULL};
  size_t i;
  for (i = 0; !rc && i < nops; i++) {
    pg_type *p;
    int cols[OPLOG_MAX_COLUMNS];
    if ((rc = entry_types(ap, origin, seq, &ops[i], i, &p, cols))) break;
    /* a create after others of the entry gets a savepoint of its own, so
     * that its key is looked up after them, as the file does */
    int own = i > 0 && (ops[i].kind == OPLOG_OP_CREATE || ops[i].kind == OPLOG_OP_CREATE_ITEMS);
    if (own && (rc = opl_pg_exec(db, ap->pg, "SAVEPOINT oplog_op", "applying an operation"))) break;
    if ((rc = run_op(ap, p, &ops[i], cols, 0, own ? "oplog_op" : "oplog_apply", &o)) || o.kind) break;
    if (own && (rc = opl_pg_exec(db, ap->pg, "RELEASE SAVEPOINT oplog_op", "applying an operation"))) break;
  }
  if (!rc && o.kind) {
    /* skipped whole: undone, and recorded */
    rc = opl_pg_exec(db, ap->pg, "ROLLBACK TO SAVEPOINT oplog_apply", "skipping an entry");
    char *sql = rc ? NULL : sqlite3_mprintf("INSERT INTO %s.oplog_conflicts (origin, seq, op, kind, detail) VALUES ($1, $2, $3, $4, $5)", ap->s);
    if (!rc && !sql) rc = nomem(db);
    if (!rc) {
      char sq[24], opno[24];
      snprintf(sq, sizeof sq, "%lld", (long long)seq);
      snprintf(opno, sizeof opno, "%zu", i + 1);
      const char *v[5] = {(const char *)origin, sq, opno, o.kind, o.detail};
      int len[5] = {OPLOG_ORIGIN_BYTES, 0, 0, 0, 0}, fmt[5] = {1, 0, 0, 0, 0};
      PGresult *r = PQexecParams(ap->pg, sql, 5, NULL, v, len, fmt, 0);
      if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = opl_pg_fail(db, ap->pg, r, "recording a conflict");
      else PQclear(r);
    }
    sqlite3_free(sql);
    ap->conflicts_added++;
  }
  sqlite3_free(o.detail);
  if (!rc) rc = opl_pg_exec(db, ap->pg, "RELEASE SAVEPOINT oplog_apply", "applying an entry");
  return rc;
}

/* ---------------------------------------------------------------- recomputing rows */

/* Keyed, as opl_hindex is: the keys come from entries other devices wrote,
 * which must not be able to pick colliding ones. */
static uint64_t blob_hash(const pg_applier *ap, const uint8_t *p, size_t n) {
  unsigned char out[crypto_shorthash_BYTES];
  uint64_t v;
  crypto_shorthash(out, p, n, ap->keys_seed);
  memcpy(&v, out, sizeof v);
  return v;
}

/* "type index || key", the set's form of a row key, into k. */
static int key_blob(int type, const buf *key, buf *k) {
  uint8_t head[4] = {(uint8_t)(type >> 24), (uint8_t)(type >> 16), (uint8_t)(type >> 8), (uint8_t)type};
  k->n = 0;
  return opl_buf_append(k, head, 4) || opl_buf_append(k, key->p, key->n);
}

/* Where blob k is in the set, or the empty slot where it would go. */
static size_t keyset_slot(const pg_applier *ap, const buf *k) {
  size_t j = blob_hash(ap, k->p, k->n) & (ap->capkeys - 1);
  while (ap->keys[j].p && !(ap->keys[j].n == k->n && !memcmp(ap->keys[j].p, k->p, k->n))) j = (j + 1) & (ap->capkeys - 1);
  return j;
}

/* Adds a row key to the set; *added 1 if it was not there. */
static int keyset_add(pg_applier *ap, int type, const buf *key, int *added) {
  *added = 0;
  if (2 * (ap->nkeys + 1) > ap->capkeys) {
    size_t cap = ap->capkeys ? 2 * ap->capkeys : 1024;
    if (!ap->capkeys) randombytes_buf(ap->keys_seed, sizeof ap->keys_seed);
    buf *g = sqlite3_malloc64(cap * sizeof *g);
    if (!g) return nomem(ap->db);
    memset(g, 0, cap * sizeof *g);
    for (size_t i = 0; i < ap->capkeys; i++) {
      if (!ap->keys[i].p) continue;
      size_t j = blob_hash(ap, ap->keys[i].p, ap->keys[i].n) & (cap - 1);
      while (g[j].p) j = (j + 1) & (cap - 1);
      g[j] = ap->keys[i];
    }
    sqlite3_free(ap->keys);
    ap->keys = g;
    ap->capkeys = cap;
  }
  buf k = {0};
  if (key_blob(type, key, &k)) {
    opl_buf_free(&k);
    return nomem(ap->db);
  }
  size_t j = keyset_slot(ap, &k);
  if (ap->keys[j].p) {
    opl_buf_free(&k);
    return OPLOG_OK;
  }
  ap->keys[j] = k;
  ap->nkeys++;
  *added = 1;
  return OPLOG_OK;
}

/* 1 if the row key is in the set, 0 if not, -1 out of memory. */
static int keyset_has(pg_applier *ap, int type, const buf *key) {
  if (!ap->capkeys) return 0;
  if (key_blob(type, key, &ap->probe)) return -1;
  return ap->keys[keyset_slot(ap, &ap->probe)].p != NULL;
}

/* Removes, from the live table, the row op names, by its key, in a
 * savepoint: a key value that PostgreSQL's type refuses names no row. */
static int delete_row(pg_applier *ap, const pg_type *p, const oplog_op *op, const int *cols) {
  oplog_op del = *op;
  del.kind = OPLOG_OP_DELETE;
  del.nmask = del.nnulls = 0;
  outcome o = {NULL, NULL};
  int rc = opl_pg_exec(ap->db, ap->pg, "SAVEPOINT oplog_key", "removing a row");
  if (!rc) rc = run_op(ap, p, &del, cols, 0, NULL, &o);
  if (!rc)
    rc = opl_pg_exec(ap->db, ap->pg,
                     o.kind ? "ROLLBACK TO SAVEPOINT oplog_key; RELEASE SAVEPOINT oplog_key" : "RELEASE SAVEPOINT oplog_key",
                     "removing a row");
  sqlite3_free(o.detail);
  return rc;
}

/* The keys the entries from m on name: into the set and the temp table's
 * COPY, their rows out of the live tables. */
static int collect_keys(pg_applier *ap, const uint8_t *origin, int64_t seq, const oplog_op *ops, size_t nops) {
  for (size_t i = 0; i < nops; i++) {
    pg_type *p;
    int cols[OPLOG_MAX_COLUMNS], nokey, added, rc;
    if ((rc = entry_types(ap, origin, seq, &ops[i], i, &p, cols))) return rc;
    ap->key.n = 0;
    if (opl_touch_key(p->t, &ops[i], cols, &ap->key, &nokey)) return nomem(ap->db);
    if (nokey) continue;
    if ((rc = keyset_add(ap, p->t->index, &ap->key, &added))) return rc;
    if (!added) continue;
    if (opl_copy_row(&ap->key_rows, 2) || opl_copy_bytes(&ap->key_rows, p->t->name, strlen(p->t->name)) ||
        opl_copy_bytes(&ap->key_rows, ap->key.p, ap->key.n))
      return nomem(ap->db);
    if ((rc = delete_row(ap, p, &ops[i], cols))) return rc;
  }
  return OPLOG_OK;
}

/* Re-applies, to the shadow tables, an operation before m on a row being
 * recomputed. It applied there before, on the same history of its row:
 * failing now means the server disagrees with itself. */
static int rebuild_op(pg_applier *ap, const uint8_t *origin, int64_t seq, const oplog_op *ops, size_t nops) {
  for (size_t i = 0; i < nops; i++) {
    pg_type *p;
    int cols[OPLOG_MAX_COLUMNS], nokey, rc;
    if ((rc = entry_types(ap, origin, seq, &ops[i], i, &p, cols))) return rc;
    ap->key.n = 0;
    if (opl_touch_key(p->t, &ops[i], cols, &ap->key, &nokey)) return nomem(ap->db);
    int has = nokey ? 0 : keyset_has(ap, p->t->index, &ap->key);
    if (has < 0) return nomem(ap->db);
    if (!has) continue;
    if (!p->made) {
      if ((rc = exec_fmt(ap, "recomputing rows",
                         "CREATE TEMP TABLE \"oplog_cv_%d\" (LIKE %s.\"%w\" INCLUDING ALL) ON COMMIT DROP", p->t->index,
                         ap->s, p->t->table)))
        return rc;
      p->made = 1;
    }
    outcome o;
    rc = run_op(ap, p, &ops[i], cols, 1, NULL, &o);
    if (!rc && o.kind) {
      char hx[2 * OPLOG_ORIGIN_BYTES + 1];
      opl_hex(origin, OPLOG_ORIGIN_BYTES, hx);
      rc = opl_db_error(ap->db, OPLOG_CORRUPT, "postgres: origin %s seq %lld, operation %zu no longer applies to its row: %s",
                        hx, (long long)seq, i + 1, o.detail);
    }
    sqlite3_free(o.detail);
    if (rc) return rc;
  }
  return OPLOG_OK;
}

/* Brings the rows the entries from m on name back to their state before m
 * (FORMAT.md "Order and convergence"): out of the live tables, rebuilt in
 * shadow tables from the earlier entries that applied and name them, and
 * copied back. */
static int reset_rows(pg_applier *ap) {
  oplog_db *db = ap->db;
  char *sql = sqlite3_mprintf("DELETE FROM %s.oplog_conflicts c USING %s.oplog_applied a WHERE a.origin = c.origin"
                              " AND a.seq = c.seq AND (a.clock, a.origin, a.seq) >= %s",
                              ap->s, ap->s, ap->m_tuple);
  if (!sql) return nomem(db);
  PGresult *r = PQexec(ap->pg, sql);
  sqlite3_free(sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) return opl_pg_fail(db, ap->pg, r, "clearing conflicts");
  ap->conflicts_removed += atoll(PQcmdTuples(r));
  PQclear(r);
  int rc = opl_pg_exec(db, ap->pg, "CREATE TEMP TABLE oplog_cv_keys (type text NOT NULL, key bytea NOT NULL) ON COMMIT DROP",
                       "recomputing rows");
  if (rc || opl_copy_begin(&ap->key_rows)) return rc ? rc : nomem(db);
  sql = sqlite3_mprintf("SELECT origin, seq, data FROM %s.oplog_applied WHERE (clock, origin, seq) >= %s"
                        " ORDER BY clock, origin, seq", ap->s, ap->m_tuple);
  if (!sql) return nomem(db);
  rc = each_entry(ap, sql, collect_keys);
  sqlite3_free(sql);
  if (!rc && opl_copy_end(&ap->key_rows)) rc = nomem(db);
  if (!rc) rc = opl_copy_send(db, ap->pg, "COPY pg_temp.oplog_cv_keys (type, key) FROM STDIN (FORMAT binary)", &ap->key_rows,
                              "recomputing rows");
  if (!rc) rc = opl_pg_exec(db, ap->pg, "ANALYZE pg_temp.oplog_cv_keys", "recomputing rows");
  if (rc) return rc;
  /* their history before m, from the entries that applied */
  sql = sqlite3_mprintf("SELECT a.origin, a.seq, a.data FROM (SELECT DISTINCT t.origin, t.seq FROM pg_temp.oplog_cv_keys k"
                        " JOIN %s.oplog_touches t ON t.type = k.type AND t.key = k.key) b"
                        " JOIN %s.oplog_applied a ON a.origin = b.origin AND a.seq = b.seq"
                        " WHERE (a.clock, a.origin, a.seq) < %s AND NOT EXISTS (SELECT 1 FROM %s.oplog_conflicts c"
                        " WHERE c.origin = a.origin AND c.seq = a.seq) ORDER BY a.clock, a.origin, a.seq",
                        ap->s, ap->s, ap->m_tuple, ap->s);
  if (!sql) return nomem(db);
  rc = each_entry(ap, sql, rebuild_op);
  sqlite3_free(sql);
  for (size_t i = 0; !rc && i < ap->ntypes; i++)
    if (ap->types[i].made)
      rc = exec_fmt(ap, "recomputing rows", "INSERT INTO %s.\"%w\" SELECT * FROM pg_temp.\"oplog_cv_%d\"", ap->s,
                    ap->types[i].t->table, (int)i);
  return rc;
}

/* ---------------------------------------------------------------- the applier */

/* Sends a COPY buffer (when it holds rows) into table (columns) and
 * starts it again. */
static int copy_flush(pg_applier *ap, buf *b, const char *table, const char *what) {
  int rc = OPLOG_OK;
  if (b->n > COPY_HEADER_BYTES) {
    char *sql = sqlite3_mprintf("COPY %s.%s FROM STDIN (FORMAT binary)", ap->s, table);
    if (!sql || opl_copy_end(b)) rc = nomem(ap->db);
    if (!rc) rc = opl_copy_send(ap->db, ap->pg, sql, b, what);
    sqlite3_free(sql);
    sodium_memzero(b->p, b->n); /* (the applied rows are decrypted operations) */
  }
  if (!rc && opl_copy_begin(b)) rc = nomem(ap->db);
  return rc;
}

static int flush_new(pg_applier *ap) {
  int rc = copy_flush(ap, &ap->applied_rows, "oplog_applied (origin, seq, clock, data)", "storing applied entries");
  if (!rc) rc = copy_flush(ap, &ap->touch_rows, "oplog_touches (type, key, origin, seq)", "storing row keys");
  return rc;
}

int opl_pg_apply_open(oplog_db *db, PGconn *pg, const char *schema, pg_applier **out) {
  *out = NULL;
  pg_applier *ap = sqlite3_malloc64(sizeof *ap);
  if (!ap) return nomem(db);
  memset(ap, 0, sizeof *ap);
  ap->db = db;
  ap->pg = pg;
  ap->s = schema;
  *out = ap;
  int rc = apply_tables(ap);
  if (!rc) rc = opl_pg_exec(db, pg, "BEGIN", "starting to apply");
  if (!rc) ap->open = 1;
  /* appliers of one schema one at a time; the lock's second key is the
   * schema's hash (origins use their first 4 bytes: a collision only
   * makes one wait) */
  if (!rc)
    rc = exec_fmt(ap, "waiting for other appliers", "SELECT pg_advisory_xact_lock(%d, hashtext(%Q))", OPL_PG_LOCK_CLASS,
                  ap->s);
  if (!rc) rc = sync_types(ap);
  if (!rc && (opl_copy_begin(&ap->applied_rows) || opl_copy_begin(&ap->touch_rows))) rc = nomem(db);
  return rc;
}

int opl_pg_apply_upto(pg_applier *ap, const uint8_t *origin, int64_t *seq) {
  char *lit = opl_pg_bytea(origin, OPLOG_ORIGIN_BYTES);
  char *sql = lit ? sqlite3_mprintf("SELECT coalesce(max(seq), 0) FROM %s.oplog_applied WHERE origin = %s", ap->s, lit) : NULL;
  sqlite3_free(lit);
  if (!sql) return nomem(ap->db);
  PGresult *r = PQexec(ap->pg, sql);
  sqlite3_free(sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) return opl_pg_fail(ap->db, ap->pg, r, "reading what was applied");
  *seq = atoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  return OPLOG_OK;
}

int opl_pg_apply_add(pg_applier *ap, const stored_entry *e) {
  oplog_db *db = ap->db;
  ap->plain.n = 0;
  int rc = opl_crypto_decrypt_entry(db, e, &ap->plain);
  const oplog_op *ops = NULL;
  size_t nops = 0;
  opl_arena_reset(&ap->a);
  if (!rc) rc = opl_entry_data_decode(db, &ap->a, ap->plain.p, ap->plain.n, 0, &ops, &nops);
  if (rc == OPLOG_CORRUPT || rc == OPLOG_DECRYPT_FAILED) rc = opl_db_error_entry(db, rc, e->id);
  for (size_t i = 0; !rc && i < nops; i++) {
    pg_type *p;
    int cols[OPLOG_MAX_COLUMNS], nokey;
    if ((rc = entry_types(ap, e->origin_id, e->seq, &ops[i], i, &p, cols))) break;
    ap->key.n = 0;
    if (opl_touch_key(p->t, &ops[i], cols, &ap->key, &nokey)) rc = nomem(db);
    else if (!nokey && (opl_copy_row(&ap->touch_rows, 4) || opl_copy_bytes(&ap->touch_rows, p->t->name, strlen(p->t->name)) ||
                        opl_copy_bytes(&ap->touch_rows, ap->key.p, ap->key.n) ||
                        opl_copy_bytes(&ap->touch_rows, e->origin_id, OPLOG_ORIGIN_BYTES) ||
                        opl_copy_i64(&ap->touch_rows, e->seq)))
      rc = nomem(db);
  }
  if (!rc && (opl_copy_row(&ap->applied_rows, 4) || opl_copy_bytes(&ap->applied_rows, e->origin_id, OPLOG_ORIGIN_BYTES) ||
              opl_copy_i64(&ap->applied_rows, e->seq) || opl_copy_i64(&ap->applied_rows, e->clock) ||
              opl_copy_bytes(&ap->applied_rows, ap->plain.p, ap->plain.n)))
    rc = nomem(db);
  if (ap->plain.n) sodium_memzero(ap->plain.p, ap->plain.n);
  if (rc) return rc;
  if (!ap->added || opl_order_cmp(e->clock, e->origin_id, e->seq, ap->m_clock, ap->m_origin, ap->m_seq) < 0) {
    ap->m_clock = e->clock;
    ap->m_seq = e->seq;
    memcpy(ap->m_origin, e->origin_id, OPLOG_ORIGIN_BYTES);
  }
  ap->added++;
  if (ap->applied_rows.n + ap->touch_rows.n >= COPY_FLUSH) rc = flush_new(ap);
  return rc;
}

int opl_pg_apply_finish(pg_applier *ap, int64_t *applied, int64_t *conflicts) {
  oplog_db *db = ap->db;
  *applied = *conflicts = 0;
  int rc = flush_new(ap);
  if (!rc && ap->added) {
    char *lit = opl_pg_bytea(ap->m_origin, OPLOG_ORIGIN_BYTES);
    ap->m_tuple = lit ? sqlite3_mprintf("(%lld, %s, %lld)", (long long)ap->m_clock, lit, (long long)ap->m_seq) : NULL;
    sqlite3_free(lit);
    if (!ap->m_tuple) rc = nomem(db);
    /* held entries sort after the earliest new one: not a fast-forward */
    char *sql = rc ? NULL : sqlite3_mprintf("SELECT count(*) FROM %s.oplog_applied WHERE (clock, origin, seq) >= %s", ap->s,
                                            ap->m_tuple);
    if (!rc && !sql) rc = nomem(db);
    if (!rc) {
      PGresult *r = PQexec(ap->pg, sql);
      if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) rc = opl_pg_fail(db, ap->pg, r, "ordering entries");
      else {
        int behind = atoll(PQgetvalue(r, 0, 0)) > ap->added;
        PQclear(r);
        if (behind) rc = reset_rows(ap);
      }
    }
    sqlite3_free(sql);
    sql = rc ? NULL
             : sqlite3_mprintf("SELECT origin, seq, data FROM %s.oplog_applied WHERE (clock, origin, seq) >= %s"
                               " ORDER BY clock, origin, seq", ap->s, ap->m_tuple);
    if (!rc && !sql) rc = nomem(db);
    if (!rc) rc = each_entry(ap, sql, apply_entry);
    sqlite3_free(sql);
  }
  /* COMMIT of a failed transaction would answer ROLLBACK: never silently */
  if (!rc && PQtransactionStatus(ap->pg) != PQTRANS_INTRANS)
    rc = opl_db_error(db, OPLOG_SQL, "postgres: the apply's transaction failed before its commit");
  if (!rc) rc = opl_pg_exec(db, ap->pg, "COMMIT", "committing what was applied");
  if (!rc) {
    ap->open = 0;
    *applied = ap->added;
    *conflicts = ap->conflicts_added - ap->conflicts_removed;
  }
  return rc;
}

void opl_pg_apply_close(pg_applier *ap) {
  if (!ap) return;
  if (ap->open) opl_pg_rollback(ap->pg);
  for (size_t i = 0; i < ap->ntypes; i++) {
    opl_type_free(ap->types[i].t);
  }
  sqlite3_free(ap->types);
  /* (the statements prepared stay with the connection, which the caller
   * closes: some name this transaction's shadow tables) */
  sqlite3_free(ap->stmts);
  for (size_t i = 0; i < ap->capkeys; i++) opl_buf_free(&ap->keys[i]);
  sqlite3_free(ap->keys);
  opl_arena_free(&ap->a);
  if (ap->plain.p) sodium_memzero(ap->plain.p, ap->plain.cap);
  opl_buf_free(&ap->plain);
  opl_buf_free(&ap->key);
  opl_buf_free(&ap->probe);
  if (ap->applied_rows.p) sodium_memzero(ap->applied_rows.p, ap->applied_rows.cap);
  opl_buf_free(&ap->applied_rows);
  opl_buf_free(&ap->touch_rows);
  opl_buf_free(&ap->key_rows);
  sqlite3_free(ap->m_tuple);
  sqlite3_free(ap);
}
