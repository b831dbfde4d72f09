/* replay.c — applying the log's operations, in id order (in a file holding
 * several origins: in total order, skipping entries that cannot apply, as
 * converge.c made the live tables), to target tables:
 * <table><suffix> in this file, or the same names in another SQLite file
 * (a replica). The same apply code as live writes; one transaction. */
#include <string.h>

#include "internal.h"

#define PROGRESS_EVERY 1024

static int table_has_rows(oplog_db *db, const char *schema, const char *table, int *has) {
  *has = 0;
  char *sql = sqlite3_mprintf("SELECT 1 FROM \"%w\".sqlite_schema WHERE type = 'table' AND name = ?1", schema);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL);
  sqlite3_free(sql);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
  r = sqlite3_step(s);
  sqlite3_finalize(s);
  if (r == SQLITE_DONE) return OPLOG_OK;
  if (r != SQLITE_ROW) return opl_db_sqlerr(db, r);
  sql = sqlite3_mprintf("SELECT 1 FROM \"%w\".\"%w\" LIMIT 1", schema, table);
  if (!sql) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  r = sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL);
  sqlite3_free(sql);
  if (r != SQLITE_OK) return opl_db_sqlerr(db, r);
  r = sqlite3_step(s);
  sqlite3_finalize(s);
  if (r == SQLITE_ROW) *has = 1;
  else if (r != SQLITE_DONE) return opl_db_sqlerr(db, r);
  return OPLOG_OK;
}

/* Errors of the environment, as opposed to the log's content. */
static int environmental(int rc) {
  return rc == OPLOG_NOMEM || rc == OPLOG_IO || rc == OPLOG_BUSY || rc == OPLOG_READONLY;
}

/* More than one origin: the file has imported, and its live tables are
 * the replay in total order with the skip rule. */
static int merged(oplog_db *db, int *yes) {
  *yes = 0;
  if (db->level < 3) return OPLOG_OK;
  sqlite3_stmt *s = NULL;
  int r = sqlite3_prepare_v2(db->sql, "SELECT EXISTS (SELECT 1 FROM oplog_origins WHERE no <> 1)", -1, &s, NULL);
  if (r == SQLITE_OK && (r = sqlite3_step(s)) == SQLITE_ROW) *yes = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return r == SQLITE_ROW ? OPLOG_OK : opl_db_sqlerr(db, r);
}

/* A merged file: the entries in total order, each skipped whole when it
 * cannot apply (as converge.c made the live tables). Their ids are listed
 * first, in a temp table, and each entry is then read by id: no statement
 * may be open while an entry's savepoint rolls back. */
static int replay_total(oplog_db *db, stmt_cache *cache, const oplog_filter *f, oplog_progress_fn progress, void *pctx,
                        int64_t total, oplog_replay_result *out, int64_t *bad_entry, opl_conflict_fn on_conflict,
                        void *cctx) {
  oplog_filter ft = *f;
  ft.order_total = 1;
  oplog_iter *it = NULL;
  sqlite3_stmt *ins = NULL, *pick = NULL, *load = NULL;
  int rc = opl_db_exec(db, "DROP TABLE IF EXISTS temp.oplog_replay_order;"
                           "CREATE TEMP TABLE oplog_replay_order (pos INTEGER PRIMARY KEY, id INTEGER NOT NULL)");
  int r = SQLITE_OK;
  if (!rc && (r = sqlite3_prepare_v2(db->sql, "INSERT INTO temp.oplog_replay_order (id) VALUES (?1)", -1, &ins, NULL)) == SQLITE_OK)
    r = sqlite3_prepare_v2(db->sql, "SELECT id FROM temp.oplog_replay_order WHERE pos = ?1", -1, &pick, NULL);
  if (!rc && r != SQLITE_OK) rc = opl_db_sqlerr(db, r);
  if (!rc) rc = opl_iter_open(db, &ft, 0, &it); /* ids only: nothing decrypted */
  const oplog_entry *e = NULL;
  while (!rc && !(rc = oplog_iter_next(it, &e)) && e) {
    sqlite3_bind_int64(ins, 1, e->id);
    r = sqlite3_step(ins);
    sqlite3_reset(ins);
    if (r != SQLITE_DONE) rc = opl_db_sqlerr(db, r);
  }
  if (rc && it && !e && !environmental(rc) && rc != OPLOG_INVALID_ARGUMENT) *bad_entry = opl_iter_current_id(it);
  oplog_iter_close(it);
  arena a = {0};
  for (int64_t pos = 1; !rc; pos++) {
    sqlite3_bind_int64(pick, 1, pos);
    r = sqlite3_step(pick);
    int64_t id = r == SQLITE_ROW ? sqlite3_column_int64(pick, 0) : 0;
    sqlite3_reset(pick);
    if (r == SQLITE_DONE) break;
    if (r != SQLITE_ROW) {
      rc = opl_db_sqlerr(db, r);
      break;
    }
    oplog_entry en;
    opl_arena_reset(&a);
    if ((rc = opl_entry_by_id(db, &load, id, &a, &en))) {
      if (!environmental(rc)) *bad_entry = id;
      break;
    }
    int opno;
    const char *kind;
    char *detail;
    rc = opl_entry_apply(db, cache, &en, &opno, &kind, &detail);
    if (rc && !environmental(rc)) *bad_entry = id;
    if (!rc && opno && on_conflict && on_conflict(cctx, id, opno, kind, detail))
      rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT, "interrupted by the conflict callback");
    sqlite3_free(detail);
    if (rc) break;
    out->ops += (int64_t)en.nops;
    out->entries++;
    if (progress && out->entries % PROGRESS_EVERY == 0 && progress(pctx, out->entries, total))
      rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT, "interrupted by the progress callback");
  }
  if (!rc && progress && progress(pctx, out->entries, total))
    rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT, "interrupted by the progress callback");
  opl_arena_free(&a);
  sqlite3_finalize(ins);
  sqlite3_finalize(pick);
  sqlite3_finalize(load);
  sqlite3_exec(db->sql, "DROP TABLE IF EXISTS temp.oplog_replay_order", NULL, NULL, NULL);
  return rc;
}

int opl_replay_run(oplog_db *db, const char *schema, const char *suffix, const oplog_filter *f,
               int fresh, oplog_progress_fn progress, void *pctx, oplog_replay_result *out,
               int64_t *bad_entry, opl_conflict_fn on_conflict, void *cctx) {
  int64_t ignored;
  if (!bad_entry) bad_entry = &ignored;
  *bad_entry = 0;
  int rc = opl_catalog_load(db);
  if (rc) return rc;
  memset(out, 0, sizeof *out);
  /* Targets first: every type (of the aggregate, if one is selected). */
  for (size_t i = 0; i < db->ntypes; i++) {
    const type_def *t = db->types[i];
    if (f->aggregate && strcmp(t->aggregate, f->aggregate) != 0) continue;
    char *name = sqlite3_mprintf("%s%s", t->table, suffix);
    if (!name) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
    int has = 0;
    rc = table_has_rows(db, schema, name, &has);
    if (!rc && has && !fresh)
      rc = opl_db_error(db, OPLOG_TARGET_NOT_EMPTY, "target table %s has rows: replay into empty tables or pass fresh",
                    name);
    sqlite3_free(name);
    if (rc || (rc = opl_target_create(db, t, schema, suffix, fresh))) return rc;
  }
  int64_t total = 0;
  if (progress && ((total = opl_iter_count(db, f, &rc)), rc)) return rc;
  stmt_cache *cache = sqlite3_malloc64(sizeof *cache);
  if (!cache) return opl_db_error(db, OPLOG_NOMEM, "out of memory");
  opl_stmt_cache_init(cache, schema, suffix, 0);
  cache->gen = db->catalog_gen;
  oplog_iter *it = NULL;
  int skip = 0;
  if (!(rc = merged(db, &skip)) && skip) {
    rc = replay_total(db, cache, f, progress, pctx, total, out, bad_entry, on_conflict, cctx);
    opl_stmt_cache_clear(cache);
    sqlite3_free(cache);
    return rc;
  }
  if (!rc) rc = opl_iter_open(db, f, ITER_OPS, &it); /* replay needs no metadata */
  const oplog_entry *e = NULL;
  while (!rc && !(rc = oplog_iter_next(it, &e)) && e) {
    int op_failed = 0;
    for (size_t i = 0; i < e->nops && !rc; i++) {
      const oplog_op *op = &e->ops[i];
      const type_def *t;
      int cols[OPLOG_MAX_COLUMNS];
      if ((rc = opl_catalog_find(db, op->type, &t))) break;
      if (!t) rc = opl_db_error(db, OPLOG_NOT_FOUND, "entry %lld: type %s is not in the catalog", (long long)e->id, op->type);
      else if ((rc = opl_op_validate(db, t, op, cols)) || (rc = opl_op_apply(db, cache, t, op, cols, NULL))) {
        op_failed = 1;
        opl_db_error(db, rc, "replay of entry %lld, operation %llu: %s", (long long)e->id, (unsigned long long)i + 1,
                 oplog_errmsg(db));
      }
      out->ops++;
    }
    if (rc) {
      if (op_failed && !environmental(rc)) *bad_entry = e->id;
      break;
    }
    out->entries++;
    if (progress && out->entries % PROGRESS_EVERY == 0 && progress(pctx, out->entries, total))
      rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT, "interrupted by the progress callback");
  }
  if (rc && !*bad_entry && it && !e && !environmental(rc) && rc != OPLOG_INVALID_ARGUMENT)
    *bad_entry = opl_iter_current_id(it); /* the entry did not decrypt or decode */
  if (!rc && progress && progress(pctx, out->entries, total))
    rc = opl_db_error(db, OPLOG_INVALID_ARGUMENT, "interrupted by the progress callback");
  oplog_iter_close(it);
  opl_stmt_cache_clear(cache);
  sqlite3_free(cache);
  return rc;
}

int oplog_replay(oplog_db *db, const oplog_replay_opts *o, oplog_replay_result *out) {
  if (!db) return OPLOG_INVALID_ARGUMENT;
  opl_db_clear_error(db);
  oplog_replay_result ignored;
  if (!out) out = &ignored;
  memset(out, 0, sizeof *out);
  if (!o) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "replay options are required");
  if (db->tx != TX_NONE) return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "finish the open transaction first");
  if ((o->suffix != NULL) == (o->into != NULL))
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "replay needs exactly one of suffix or into");
  int rc0 = opl_key_required(db);
  if (rc0) return rc0;
  if (o->suffix) {
    if (!*o->suffix || strspn(o->suffix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
                           strlen(o->suffix) || strlen(o->suffix) > 64)
      return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "suffix must be 1 to 64 of [A-Za-z0-9_]");
    if (db->readonly) return opl_db_error(db, OPLOG_READONLY, "the file is open read-only");
  } else if (!*o->into) {
    return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "into must name a file");
  }
  oplog_filter f = {.aggregate = o->aggregate, .since = o->since, .upto = o->upto};
  const char *schema = "main";
  int rc;
  if (o->into && db->readonly)
    return opl_db_error(db, OPLOG_READONLY, "a read-only handle attaches files read-only too: open the log writable to replay into %s",
                    o->into);
  if (o->into) {
    /* a replica holds the live rows in the clear: as private as the log */
    if ((rc = opl_create_private(db, o->into))) return rc;
    opl_db_rollback(db); /* ATTACH needs no transaction, not even a leftover one */
    sqlite3_stmt *s = NULL;
    int r = sqlite3_prepare_v2(db->sql, "ATTACH DATABASE ?1 AS oplog_replica", -1, &s, NULL);
    if (r == SQLITE_OK) {
      sqlite3_bind_text(s, 1, o->into, -1, SQLITE_STATIC);
      r = sqlite3_step(s);
    }
    sqlite3_finalize(s);
    if (r != SQLITE_DONE) return opl_db_sqlerr(db, r);
    schema = "oplog_replica";
  }
  rc = opl_db_begin(db, 1);
  if (!rc) {
    rc = opl_replay_run(db, schema, o->suffix ? o->suffix : "", &f, o->fresh, o->progress, o->progress_ctx, out,
                    NULL, NULL, NULL);
    if (!rc) rc = opl_db_commit(db);
    if (rc) {
      opl_db_rollback(db);
      memset(out, 0, sizeof *out);
    }
  }
  if (o->into) sqlite3_exec(db->sql, "DETACH DATABASE oplog_replica", NULL, NULL, NULL);
  return rc;
}
