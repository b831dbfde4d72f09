/* testutil.c — the harness behind testutil.h. */
#include "testutil.h"

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
  if (rc == SQLITE_OK) rc = sqlite3_exec(s, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK && err) fprintf(stderr, "exec_raw: %s\n", err);
  sqlite3_free(err);
  sqlite3_close(s);
  return rc;
}
