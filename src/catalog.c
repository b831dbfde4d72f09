/* catalog.c — the type catalog (Boundary's TypeCatalog, persisted): type
 * definitions stored in oplog_types / oplog_type_columns, their live
 * tables, and the in-memory copy used to check and apply operations. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

int opl_valid_identifier(const char *s) {
  if (!s || !(isalpha((unsigned char)*s) || *s == '_')) return 0;
  size_t n = 0;
  for (const char *p = s; *p; p++, n++)
    if (!(isalnum((unsigned char)*p) || *p == '_')) return 0;
  return n <= 128;
}

static int reserved(const char *s) {
  return strncasecmp(s, "oplog_", 6) == 0 || strncasecmp(s, "sqlite_", 7) == 0;
}

/* The first 255 bytes of a declaration, upper-cased. */
static void upper(char up[256], const char *decl) {
  size_t n = strlen(decl);
  if (n > 255) n = 255;
  for (size_t i = 0; i < n; i++) up[i] = (char)toupper((unsigned char)decl[i]);
  up[n] = 0;
}

/* SQLite's column affinity rules (datatype3.html, section 3.1). */
static int is_word_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* SQLite's column affinity rules (datatype3.html, section 3.1), applied to
 * the declared type: the words before the first constraint keyword (a
 * whole word: UNIQUEIDENTIFIER or NOTE are type names). */
static int affinity(const char *decl) {
  static const char *const stops[] = {"PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT",
                                      "COLLATE", "REFERENCES", "GENERATED", "CONSTRAINT", "AS"};
  char up[256];
  upper(up, decl);
  for (char *p = up; *p;) {
    if (!is_word_char(*p)) {
      p++;
      continue;
    }
    char *w = p;
    while (is_word_char(*p)) p++;
    for (size_t i = 0; i < sizeof stops / sizeof *stops; i++)
      if ((size_t)(p - w) == strlen(stops[i]) && strncmp(w, stops[i], (size_t)(p - w)) == 0) {
        *w = 0;
        goto cut;
      }
  }
cut:
  if (strstr(up, "INT")) return AFF_INTEGER;
  if (strstr(up, "CHAR") || strstr(up, "CLOB") || strstr(up, "TEXT")) return AFF_TEXT;
  if (strstr(up, "BLOB") || up[strspn(up, " \t")] == 0) return AFF_BLOB;
  if (strstr(up, "REAL") || strstr(up, "FLOA") || strstr(up, "DOUB")) return AFF_REAL;
  return AFF_NUMERIC;
}

static int is_primary_key(const char *decl) {
  char up[256];
  upper(up, decl);
  return strstr(up, "PRIMARY KEY") != NULL;
}

/* No COLLATE clause, or only BINARY ones. */
static int binary_collation(const char *decl) {
  char up[256];
  upper(up, decl);
  for (const char *p = strstr(up, "COLLATE"); p; p = strstr(p + 7, "COLLATE")) {
    const char *w = p + 7;
    while (*w == ' ' || *w == '\t' || *w == '"' || *w == '\'' || *w == '[' || *w == '`') w++;
    if (strncmp(w, "BINARY", 6) != 0 || isalnum((unsigned char)w[6]) || w[6] == '_') return 0;
  }
  return 1;
}

/* A column declaration is SQL the caller writes (type and constraints);
 * it must stay inside its column: no statement separators, comments, or
 * unbalanced quotes/parentheses. */
static int valid_decl(const char *d) {
  int depth = 0;
  if (!d || !*d || strlen(d) > 1000) return 0;
  for (const char *p = d; *p; p++) {
    char c = *p;
    if (c == ';' || (c == ',' && depth == 0)) return 0; /* one column only */
    if ((c == '-' && p[1] == '-') || (c == '/' && p[1] == '*')) return 0;
    if (c == '(') depth++;
    if (c == ')' && --depth < 0) return 0;
    if (c == '\'' || c == '"' || c == '`' || c == '[') {
      char close = c == '[' ? ']' : c;
      for (p++; *p && *p != close; p++)
        ;
      if (!*p) return 0;
    }
  }
  return depth == 0;
}

int opl_column_index(const type_def *t, const char *name) {
  for (size_t i = 0; i < t->ncols; i++)
    if (strcmp(t->col_names[i], name) == 0) return (int)i;
  return -1;
}

static void type_free(type_def *t) { sqlite3_free(t); }

void opl_catalog_free(oplog_db *db) {
  for (size_t i = 0; i < db->ntypes; i++) type_free(db->types[i]);
  sqlite3_free(db->types);
  db->types = NULL;
  db->ntypes = 0;
}

/* One allocation per type: the struct, then pointer arrays, then strings. */
static type_def *type_build(const oplog_type_spec *s, const int *key_idx, size_t nkey) {
  size_t strbytes = strlen(s->name) + strlen(s->table) + strlen(s->aggregate) + 3;
  for (size_t i = 0; i < s->ncolumns; i++)
    strbytes += strlen(s->columns[i].name) + strlen(s->columns[i].decl) + 2;
  size_t size = sizeof(type_def) + s->ncolumns * (2 * sizeof(char *) + sizeof(int)) + strbytes;
  type_def *t = sqlite3_malloc64(size);
  if (!t) return NULL;
  memset(t, 0, sizeof *t);
  t->ncols = s->ncolumns;
  t->col_names = (char **)(t + 1);
  t->col_decls = t->col_names + s->ncolumns;
  t->col_aff = (int *)(t->col_decls + s->ncolumns);
  char *p = (char *)(t->col_aff + s->ncolumns);
#define COPY(dst, src)                                                                           \
  do {                                                                                           \
    size_t n_ = strlen(src) + 1;                                                                 \
    memcpy(p, src, n_);                                                                          \
    dst = p;                                                                                     \
    p += n_;                                                                                     \
  } while (0)
  COPY(t->name, s->name);
  COPY(t->table, s->table);
  COPY(t->aggregate, s->aggregate);
  for (size_t i = 0; i < s->ncolumns; i++) {
    COPY(t->col_names[i], s->columns[i].name);
    COPY(t->col_decls[i], s->columns[i].decl);
    t->col_aff[i] = affinity(s->columns[i].decl);
  }
#undef COPY
  t->nkey = nkey;
  for (size_t i = 0; i < nkey; i++) {
    t->key_idx[i] = key_idx[i];
    t->key_mask |= 1ULL << key_idx[i];
  }
  t->rowid_key = nkey == 1 && is_primary_key(t->col_decls[key_idx[0]]) &&
                 t->col_aff[key_idx[0]] == AFF_INTEGER;
  if (t->rowid_key) {
    /* only the exact type name INTEGER makes a rowid alias */
    const char *d = t->col_decls[key_idx[0]];
    while (*d == ' ') d++;
    t->rowid_key = strncasecmp(d, "INTEGER", 7) == 0 && (d[7] == ' ' || d[7] == 0);
  }
  return t;
}

static int spec_check(oplog_db *db, oplog_type_spec *s, int *key_idx, size_t *nkey);

/* Reads every type from the catalog tables into db->types. */
int opl_catalog_load(oplog_db *db) {
  sqlite3_stmt *ts = NULL, *cs = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT name, table_name, aggregate FROM oplog_types ORDER BY name",
                             -1, &ts, NULL);
  if (r == SQLITE_OK)
    r = sqlite3_prepare_v2(db->sql,
                           "SELECT name, decl, key_position FROM oplog_type_columns WHERE type_name = ?1 "
                           "ORDER BY position",
                           -1, &cs, NULL);
  if (r != SQLITE_OK) {
    sqlite3_finalize(ts);
    return opl_db_sqlerr(db, r);
  }
  type_def **types = NULL;
  size_t ntypes = 0;
  int rc = OPLOG_OK;
  while (!rc && (r = sqlite3_step(ts)) == SQLITE_ROW) {
    oplog_column cols[OPLOG_MAX_COLUMNS];
    int key_idx[OPLOG_MAX_COLUMNS];
    char *names[OPLOG_MAX_COLUMNS], *decls[OPLOG_MAX_COLUMNS];
    size_t ncols = 0, nkey = 0, tn;
    const char *tname = opl_col_bytes(ts, 0, &tn);
    sqlite3_bind_text(cs, 1, tname, (int)tn, SQLITE_STATIC); /* valid until ts steps */
    int64_t kpos[OPLOG_MAX_COLUMNS];
    int too_many = 0;
    while ((r = sqlite3_step(cs)) == SQLITE_ROW) {
      if (ncols == OPLOG_MAX_COLUMNS) {
        too_many = 1;
        break;
      }
      names[ncols] = opl_col_dup(cs, 0);
      decls[ncols] = opl_col_dup(cs, 1);
      kpos[ncols] = sqlite3_column_type(cs, 2) == SQLITE_NULL ? 0 : sqlite3_column_int64(cs, 2);
      cols[ncols].name = names[ncols];
      cols[ncols].decl = decls[ncols];
      ncols++;
      if (!names[ncols - 1] || !decls[ncols - 1]) rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
    }
    if (!rc && r != SQLITE_DONE && r != SQLITE_ROW) rc = opl_db_sqlerr(db, r);
    sqlite3_reset(cs);
    char *tcols[3] = {NULL, NULL, NULL};
    for (int i = 0; !rc && i < 3; i++)
      if (!(tcols[i] = opl_col_dup(ts, i))) rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
    /* The catalog is checked exactly as define checks its arguments: a
     * hostile file must not steer SQL or memory through it. Key positions
     * are 1..nkey, each once, on distinct columns. */
    const char *keys[OPLOG_MAX_COLUMNS];
    if (!rc) {
      int bad = too_many || ncols == 0;
      for (size_t i = 0; i < ncols; i++) keys[i] = NULL;
      for (size_t i = 0; !bad && i < ncols; i++) {
        if (!kpos[i]) continue;
        if (kpos[i] < 1 || kpos[i] > (int64_t)ncols || keys[kpos[i] - 1]) bad = 1;
        else keys[kpos[i] - 1] = names[i], nkey++;
      }
      for (size_t k = 0; !bad && k < nkey; k++)
        if (!keys[k]) bad = 1; /* positions with a hole */
      if (bad || !nkey)
        rc = opl_db_error(db, OPLOG_CORRUPT, "the catalog's columns of type %s are malformed (count or key positions)",
                      tcols[0]);
    }
    if (!rc) {
      oplog_type_spec check = {tcols[0], tcols[1], tcols[2], cols, ncols, keys, nkey};
      size_t n2 = 0;
      if ((rc = spec_check(db, &check, key_idx, &n2)) && rc != OPLOG_NOMEM) {
        char *m = sqlite3_mprintf("the catalog's type %s is invalid: %s", tcols[0], oplog_errmsg(db));
        rc = opl_db_error(db, OPLOG_CORRUPT, "%s", m ? m : "the catalog holds an invalid type");
        sqlite3_free(m);
      }
    }
    if (!rc) {
      oplog_type_spec spec = {tcols[0], tcols[1], tcols[2], cols, ncols, NULL, 0};
      type_def *t = type_build(&spec, key_idx, nkey);
      type_def **grown = t ? sqlite3_realloc64(types, (ntypes + 1) * sizeof *types) : NULL;
      if (!grown) {
        type_free(t);
        rc = opl_db_error(db, OPLOG_NOMEM, "out of memory");
      } else {
        types = grown;
        t->index = (int)ntypes;
        types[ntypes++] = t;
      }
    }
    for (size_t i = 0; i < ncols; i++) {
      sqlite3_free(names[i]);
      sqlite3_free(decls[i]);
    }
    for (int i = 0; i < 3; i++) sqlite3_free(tcols[i]);
  }
  if (!rc && r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  sqlite3_finalize(ts);
  sqlite3_finalize(cs);
  if (rc) {
    for (size_t i = 0; i < ntypes; i++) type_free(types[i]);
    sqlite3_free(types);
    return rc;
  }
  /* cached statements point at the old definitions */
  opl_stmt_cache_clear(&db->live);
  opl_catalog_free(db);
  db->types = types;
  db->ntypes = ntypes;
  db->catalog_gen++;
  return OPLOG_OK;
}

static const type_def *find_loaded(oplog_db *db, const char *name) {
  for (size_t i = 0; i < db->ntypes; i++)
    if (strcmp(db->types[i]->name, name) == 0) return db->types[i];
  return NULL;
}

int opl_catalog_find(oplog_db *db, const char *name, const type_def **out) {
  *out = name ? find_loaded(db, name) : NULL;
  if (*out || !name) return OPLOG_OK;
  int rc = opl_catalog_load(db); /* a failed reload is an error, not a miss */
  if (!rc) *out = find_loaded(db, name);
  return rc;
}

/* Resolves a spec's defaults and checks it; fills key_idx. */
static int spec_check(oplog_db *db, oplog_type_spec *s, int *key_idx, size_t *nkey) {
  if (!opl_valid_identifier(s->name) || reserved(s->name))
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "invalid type name '%s': use [A-Za-z_][A-Za-z0-9_]*, not oplog_* or sqlite_*",
                    s->name ? s->name : "(null)");
  if (!s->table) s->table = s->name;
  if (!s->aggregate) s->aggregate = s->table;
  if (!opl_valid_identifier(s->table) || reserved(s->table))
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "invalid table name '%s'", s->table);
  if (!*s->aggregate || strlen(s->aggregate) > 256)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "aggregate name must be 1 to 256 bytes");
  if (!opl_utf8_valid((const uint8_t *)s->aggregate, strlen(s->aggregate)))
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "aggregate name must be UTF-8");
  if (s->ncolumns == 0 || s->ncolumns > OPLOG_MAX_COLUMNS || !s->columns)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "a type needs 1 to %d columns", OPLOG_MAX_COLUMNS);
  for (size_t i = 0; i < s->ncolumns; i++) {
    const oplog_column *c = &s->columns[i];
    if (!opl_valid_identifier(c->name))
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "invalid column name '%s' in type %s",
                      c->name ? c->name : "(null)", s->name);
    if (!valid_decl(c->decl))
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                      "invalid declaration for column %s: SQL type and constraints, without ; or comments",
                      c->name);
    for (size_t j = 0; j < i; j++)
      if (strcasecmp(s->columns[j].name, c->name) == 0)
        return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "column %s appears twice", c->name);
  }
  *nkey = 0;
  if (s->nkey) {
    if (s->nkey > s->ncolumns) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "too many key columns");
    for (size_t k = 0; k < s->nkey; k++) {
      int idx = -1;
      for (size_t i = 0; s->key[k] && i < s->ncolumns; i++)
        if (strcmp(s->columns[i].name, s->key[k]) == 0) idx = (int)i;
      if (idx < 0)
        return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "key column '%s' is not a column of %s",
                        s->key[k] ? s->key[k] : "(null)", s->name);
      for (size_t j = 0; j < k; j++)
        if (key_idx[j] == idx) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "key column %s twice", s->key[k]);
      key_idx[(*nkey)++] = idx;
    }
  } else {
    for (size_t i = 0; i < s->ncolumns; i++)
      if (is_primary_key(s->columns[i].decl)) {
        if (*nkey) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "two PRIMARY KEY columns: give spec.key");
        key_idx[(*nkey)++] = (int)i;
      }
    if (!*nkey)
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT,
                      "type %s has no key: declare a PRIMARY KEY column or give spec.key", s->name);
  }
  return OPLOG_OK;
}

static int same_type(const type_def *t, const oplog_type_spec *s, const int *key_idx, size_t nkey) {
  if (strcmp(t->table, s->table) || strcmp(t->aggregate, s->aggregate) || t->ncols != s->ncolumns ||
      t->nkey != nkey)
    return 0;
  for (size_t i = 0; i < t->ncols; i++)
    if (strcmp(t->col_names[i], s->columns[i].name) || strcmp(t->col_decls[i], s->columns[i].decl))
      return 0;
  for (size_t i = 0; i < nkey; i++)
    if (t->key_idx[i] != key_idx[i]) return 0;
  return 1;
}

/* CREATE TABLE "<schema>"."<table><suffix>" from a type's columns; with
 * fresh, drops it first. An existing table must have the type's columns. */
int opl_target_create(oplog_db *db, const type_def *t, const char *schema, const char *suffix,
                  int fresh) {
  int rc;
  char *sql;
  if (fresh) {
    sql = sqlite3_mprintf("DROP TABLE IF EXISTS \"%w\".\"%w%w\"", schema, t->table, suffix);
    if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
    int r = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    if (r == SQLITE_LOCKED) {
      /* DROP waits for no statement of this handle to run (an open
       * iterator, say): empty the table instead; the column check below
       * still refuses one whose shape differs from the type. */
      sql = sqlite3_mprintf("DELETE FROM \"%w\".\"%w%w\"", schema, t->table, suffix);
      if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
      r = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);
      sqlite3_free(sql);
    }
    if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  }
  sqlite3_str *q = sqlite3_str_new(db->sql);
  sqlite3_str_appendf(q, "CREATE TABLE IF NOT EXISTS \"%w\".\"%w%w\" (", schema, t->table, suffix);
  for (size_t i = 0; i < t->ncols; i++)
    sqlite3_str_appendf(q, "%s\"%w\" %s", i ? ", " : "", t->col_names[i], t->col_decls[i]);
  if (!t->rowid_key && t->nkey > 1) {
    /* a composite key without a declared constraint still needs uniqueness */
    int has_pk = 0;
    for (size_t i = 0; i < t->ncols; i++) has_pk |= is_primary_key(t->col_decls[i]);
    for (size_t k = 0; !has_pk && k < t->nkey; k++)
      sqlite3_str_appendf(q, "%s\"%w\"", k ? ", " : ", PRIMARY KEY (", t->col_names[t->key_idx[k]]);
    if (!has_pk) sqlite3_str_appendall(q, ")");
  }
  sqlite3_str_appendall(q, ")");
  sql = sqlite3_str_finish(q);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  /* one statement only: the tail must be empty (decls cannot smuggle more) */
  sqlite3_stmt *s = NULL;
  const char *tail = NULL;
  int r = sqlite3_prepare_v2(db->sql, sql, -1, &s, &tail);
  if (r == SQLITE_OK && tail && *tail) {
    sqlite3_finalize(s);
    sqlite3_free(sql);
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "column declarations of %s are not one statement", t->name);
  }
  if (r == SQLITE_OK) r = sqlite3_step(s);
  sqlite3_finalize(s);
  sqlite3_free(sql);
  if (r != SQLITE_DONE) {
    rc = opl_db_sqlerr(db, r);
    /* SQLite refused the declarations: the caller's argument */
    if (rc == OPLOG_SQL) rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT, "%s", oplog_errmsg(db));
    return rc;
  }
  /* an existing table must carry every column of the type */
  sql = sqlite3_mprintf("SELECT name FROM pragma_table_info(?1, ?2)");
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  r = sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL);
  sqlite3_free(sql);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  char *full = sqlite3_mprintf("%s%s", t->table, suffix);
  if (!full) {
    sqlite3_finalize(s);
    return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  }
  sqlite3_bind_text(s, 1, full, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, schema, -1, SQLITE_STATIC);
  uint64_t seen = 0;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    char *name = opl_col_dup(s, 0);
    if (!name) {
      sqlite3_finalize(s);
      sqlite3_free(full);
      return opl_db_error(db, OPLOG_NOMEM, "out of memory");
    }
    int i = opl_column_index(t, name);
    sqlite3_free(name);
    if (i >= 0) seen |= 1ULL << i;
  }
  sqlite3_finalize(s);
  rc = OPLOG_OK;
  if (r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  else if (seen != (t->ncols == 64 ? ~0ULL : (1ULL << t->ncols) - 1))
    rc = opl_db_error(db, OPLOG_TYPE_CONFLICT, "table %s already exists with other columns than type %s",
                  full, t->name);
  sqlite3_free(full);
  return rc;
}

static int store_type(oplog_db *db, const oplog_type_spec *s, const int *key_idx, size_t nkey) {
  sqlite3_stmt *st = NULL;
  int r = sqlite3_prepare_v2(db->sql, "INSERT INTO oplog_types (name, table_name, aggregate) VALUES (?1, ?2, ?3)",
                             -1, &st, NULL);
  if (r == SQLITE_OK) {
    sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s->aggregate, -1, SQLITE_STATIC);
    r = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (r == SQLITE_CONSTRAINT_UNIQUE || r == SQLITE_CONSTRAINT_PRIMARYKEY)
    return opl_db_error(db, OPLOG_TYPE_CONFLICT, "table %s already belongs to another type", s->table);
  if (r != SQLITE_DONE) return opl_db_sqlerr(db, r);
  r = sqlite3_prepare_v2(db->sql,
                         "INSERT INTO oplog_type_columns (type_name, position, name, decl, key_position) "
                         "VALUES (?1, ?2, ?3, ?4, ?5)",
                         -1, &st, NULL);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  for (size_t i = 0; i < s->ncolumns && r != -1; i++) {
    sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)i + 1);
    sqlite3_bind_text(st, 3, s->columns[i].name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, s->columns[i].decl, -1, SQLITE_STATIC);
    sqlite3_bind_null(st, 5);
    for (size_t k = 0; k < nkey; k++)
      if ((size_t)key_idx[k] == i) sqlite3_bind_int64(st, 5, (int64_t)k + 1);
    r = sqlite3_step(st);
    if (r != SQLITE_DONE) break;
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return r == SQLITE_DONE ? OPLOG_OK : opl_db_sqlerr(db, r);
}

/* The checks of a spec, before any transaction. */
static int define_check(oplog_db *db, oplog_type_spec *s, int *key_idx, size_t *nkey) {
  int rc = spec_check(db, s, key_idx, nkey);
  /* Replay finds rows by their key with `=` on the stored values: a
   * collation under which two stored keys compare equal would make it
   * pick another row than the writer did. */
  for (size_t k = 0; !rc && k < *nkey; k++)
    if (!binary_collation(s->columns[key_idx[k]].decl))
      rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT, "key column %s of %s has a COLLATE other than BINARY",
                    s->columns[key_idx[k]].name, s->name);
  return rc;
}

int opl_type_make(oplog_db *db, const oplog_type_spec *spec, type_def **out) {
  oplog_type_spec s = *spec;
  int key_idx[OPLOG_MAX_COLUMNS];
  size_t nkey = 0;
  *out = NULL;
  int rc = define_check(db, &s, key_idx, &nkey);
  if (rc) return rc;
  if (!(*out = type_build(&s, key_idx, nkey))) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  return OPLOG_OK;
}

void opl_type_free(type_def *t) { type_free(t); }

/* Inside the caller's write transaction, spec checked: stores the type,
 * creates its table and ticket; *added is 1 unless it was there already. */
static int define_in_tx(oplog_db *db, const oplog_type_spec *s, const int *key_idx, size_t nkey, int *added) {
  *added = 0;
  int rc = opl_catalog_load(db); /* someone else may have defined it */
  if (rc) return rc;
  const type_def *old = find_loaded(db, s->name);
  if (old)
    return same_type(old, s, key_idx, nkey) ? OPLOG_OK
                                           : opl_db_error(db, OPLOG_TYPE_CONFLICT, "type %s is already defined differently", s->name);
  type_def *t = type_build(s, key_idx, nkey);
  if (!t) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  rc = store_type(db, s, key_idx, nkey);
  if (!rc) rc = opl_target_create(db, t, "main", "", 0);
  type_free(t);
  if (!rc) rc = opl_ticket_ensure(db, s->aggregate);
  *added = !rc;
  return rc;
}

int opl_catalog_define(oplog_db *db, const oplog_type_spec *spec, int own_tx) {
  oplog_type_spec s = *spec;
  int key_idx[OPLOG_MAX_COLUMNS];
  size_t nkey = 0;
  int added, rc = define_check(db, &s, key_idx, &nkey);
  if (rc) return rc;
  /* after the checks: a bad spec takes no lock */
  if (own_tx && (rc = opl_db_begin(db, 1))) return rc;
  if ((rc = define_in_tx(db, &s, key_idx, nkey, &added)) || (own_tx && (rc = opl_db_commit(db)))) goto fail;
  /* without own_tx the caller's commit or rollback decides; a rollback must reload */
  return added ? opl_catalog_load(db) : OPLOG_OK;
fail:
  if (own_tx) opl_db_rollback(db);
  return rc;
}

int oplog_define(oplog_db *db, const oplog_type_spec *spec) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  if (!spec) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "spec is NULL");
  if (db->readonly) return opl_db_error(db, OPLOG_READONLY, "the file is open read-only");
  if (db->tx != TX_NONE)
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "define types outside transactions");
  return opl_catalog_define(db, spec, 1);
}

int oplog_types(oplog_db *db, int (*each)(void *, const oplog_type_spec *), void *ctx) {
  if (!db || !each) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  int rc = opl_catalog_load(db);
  if (rc) return rc;
  for (size_t i = 0; i < db->ntypes; i++) {
    const type_def *t = db->types[i];
    oplog_column cols[OPLOG_MAX_COLUMNS];
    const char *key[OPLOG_MAX_COLUMNS];
    for (size_t c = 0; c < t->ncols; c++) cols[c] = (oplog_column){t->col_names[c], t->col_decls[c]};
    for (size_t k = 0; k < t->nkey; k++) key[k] = t->col_names[t->key_idx[k]];
    oplog_type_spec s = {t->name, t->table, t->aggregate, cols, t->ncols, key, t->nkey};
    if ((rc = each(ctx, &s))) return rc;
  }
  return OPLOG_OK;
}
