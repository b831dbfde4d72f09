/* test_core.c — the core's behaviour: files and schema, catalog, tickets,
 * transactions, entries, reading (issue 2). */
#include <sys/stat.h>

#include "testutil.h"

/* Entries a filter selects (-1: error). */
static int collect_n(oplog_db *db, const oplog_filter *f) {
  oplog_iter *it;
  if (oplog_entries(db, f, &it)) return -1;
  const oplog_entry *e;
  int n = 0, rc;
  while ((rc = oplog_iter_next(it, &e)) == OPLOG_OK && e) n++;
  oplog_iter_close(it);
  return rc ? -1 : n;
}

static void open_creates_wal_schema(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  oplog_close(db);
  CHECK(count_rows(tpath("a.db"), "PRAGMA user_version") == 3);
  CHECK(count_rows(tpath("a.db"), "SELECT value FROM oplog_config WHERE name = 'format'") == 2);
  char *p = tpath("a.db");
  sqlite3 *s;
  sqlite3_open(p, &s);
  sqlite3_stmt *st;
  sqlite3_prepare_v2(s, "PRAGMA journal_mode", -1, &st, NULL);
  sqlite3_step(st);
  int wal = strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
  sqlite3_finalize(st);
  sqlite3_close(s);
  CHECK(wal);
  CHECK(count_rows(p, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                      "('oplog_entries','oplog_ticket','oplog_metadata','oplog_keys','oplog_types',"
                      "'oplog_origins','oplog_index','oplog_config')") == 8);
  /* the format-1 tables left during the migration are gone */
  CHECK(count_rows(p, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'oplog_v1_%'") == 0);
  /* an entry row carries its origin, seq, clock and metadata blob */
  CHECK(count_rows(p, "SELECT count(*) FROM pragma_table_info('oplog_entries') WHERE name IN "
                      "('id','origin','seq','clock','created','aggregate_name','key_id','metadata','data',"
                      "'prev_hash','hash','format')") == 12);
  CHECK(count_rows(p, "SELECT count(*) FROM pragma_table_info('oplog_entries')") == 12);
  CHECK(count_rows(p, "SELECT count(*) FROM pragma_table_info('oplog_metadata') WHERE name IN "
                      "('entry_id','position','key','value')") == 4);
  /* the file's own origin: no 1, a 32-byte id */
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_origins WHERE no = 1 AND length(id) = 32") == 1);
  /* an empty log: the derived tables cover nothing, the clock is 0 */
  CHECK(count_rows(p, "SELECT value FROM oplog_config WHERE name = 'indexed_upto'") == 0);
  CHECK(count_rows(p, "SELECT value FROM oplog_config WHERE name = 'clock'") == 0);
}

static void open_errors(void) {
  oplog_db *db = NULL;
  oplog_open_opts o = {0};
  /* a new file needs an explicit key choice */
  CHECK_RC(db, oplog_open(tpath("n.db"), &o, &db), OPLOG_KEY_REQUIRED);
  oplog_close(db);
  CHECK(access(tpath("n.db"), F_OK) != 0 || count_rows(tpath("n.db"), "PRAGMA user_version") == 0);
  o.no_create = 1;
  o.key.no_encryption = 1;
  CHECK_RC(db, oplog_open(tpath("missing.db"), &o, &db), OPLOG_NOT_FOUND);
  oplog_close(db);
  CHECK(access(tpath("missing.db"), F_OK) != 0);
  oplog_open_opts two = {0};
  unsigned char key[32] = {1};
  two.key.no_encryption = 1;
  two.key.key = key;
  two.key.key_len = 32;
  CHECK_RC(db, oplog_open(tpath("two.db"), &two, &db), OPLOG_INVALID_ARGUMENT);
  CHECK(strstr(oplog_errmsg(db), "one of"));
  oplog_close(db);
}

static void schema_too_new(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  oplog_close(db);
  CHECK(exec_raw(tpath("a.db"), "PRAGMA user_version = 99") == 0);
  oplog_open_opts o = {0};
  o.key.no_encryption = 1;
  CHECK_RC(db, oplog_open(tpath("a.db"), &o, &db), OPLOG_SCHEMA_TOO_NEW);
  oplog_close(db);
}

static void readonly_refuses_writes(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  CHECK(write_user(db, 1, "ann", 30) == 1);
  oplog_close(db);
  oplog_open_opts o = {0};
  o.readonly = 1;
  OK(db, oplog_open(tpath("a.db"), &o, &db));
  CHECK_RC(db, oplog_tx_begin(db, "users"), OPLOG_READONLY);
  oplog_entry *e = NULL;
  OK(db, oplog_entry_get(db, 1, &e));
  CHECK(e->nops == 1);
  oplog_entry_free(e);
  oplog_close(db);
}

static void define_idempotent_and_conflict(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  OK(db, define_user(db));
  int64_t v = 0;
  OK(db, oplog_ticket(db, "users", &v));
  CHECK(v == 1);
  static const oplog_column other[] = {{"id", "INTEGER PRIMARY KEY"}, {"name", "TEXT"}};
  oplog_type_spec s = {"user", "users", "users", other, 2, NULL, 0};
  CHECK_RC(db, oplog_define(db, &s), OPLOG_TYPE_CONFLICT);
  /* another type may not take the same table */
  oplog_type_spec s2 = {"person", "users", "users", other, 2, NULL, 0};
  CHECK_RC(db, oplog_define(db, &s2), OPLOG_TYPE_CONFLICT);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_types") == 1);
  oplog_close(db);
}

static int count_types(void *ctx, const oplog_type_spec *s) {
  int *n = ctx;
  if (strcmp(s->name, "user") == 0 && s->ncolumns == 4 && s->nkey == 1 && strcmp(s->key[0], "id") == 0 &&
      strcmp(s->columns[1].decl, "TEXT NOT NULL UNIQUE") == 0 && strcmp(s->aggregate, "users") == 0)
    (*n)++;
  return 0;
}

static void define_stores_catalog(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  oplog_close(db);
  db = open_plain("a.db");
  CHECK(db);
  int n = 0;
  OK(db, oplog_types(db, count_types, &n));
  CHECK(n == 1);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM pragma_table_info('users')") == 4);
  oplog_close(db);
}

static void invalid_names_rejected(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  static const oplog_column good[] = {{"id", "INTEGER PRIMARY KEY"}};
  static const oplog_column badcol[] = {{"id\"; DROP TABLE x; --", "INTEGER PRIMARY KEY"}};
  static const oplog_column baddecl[] = {{"id", "INTEGER PRIMARY KEY); DROP TABLE oplog_entries; --"}};
  static const oplog_column baddecl2[] = {{"id", "INTEGER PRIMARY KEY, evil TEXT"}};
  oplog_type_spec specs[] = {
      {"bad name", NULL, NULL, good, 1, NULL, 0},   {"x'y", NULL, NULL, good, 1, NULL, 0},
      {"oplog_entries", NULL, NULL, good, 1, NULL, 0}, {"t", "sqlite_master", NULL, good, 1, NULL, 0},
      {"t", NULL, NULL, badcol, 1, NULL, 0},         {"t", NULL, NULL, baddecl, 1, NULL, 0},
      {"", NULL, NULL, good, 1, NULL, 0},            {"t", NULL, "", good, 1, NULL, 0},
  };
  for (size_t i = 0; i < sizeof specs / sizeof *specs; i++)
    CHECK_RC(db, oplog_define(db, &specs[i]), OPLOG_INVALID_ARGUMENT);
  /* a declaration that sneaks in another column is caught by the column check */
  oplog_type_spec sneaky = {"t", NULL, NULL, baddecl2, 1, NULL, 0};
  CHECK(oplog_define(db, &sneaky) != OPLOG_OK);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_types") == 0);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM sqlite_schema WHERE name = 'oplog_entries'") == 1);
  oplog_close(db);
}

static void tx_ops_roundtrip(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  OK(db, define_group(db));
  unsigned char photo[] = {0, 1, 2, 255};
  oplog_field f1[] = {{"id", vint(1)}, {"name", vtext("ann")}, {"age", vint(30)}, {"photo", vblob(photo, 4)}};
  oplog_field f2[] = {{"id", vint(1)}, {"age", vint(31)}};
  const char *mask[] = {"age"}, *nulls[] = {"photo"};
  oplog_field g1[] = {{"id", vint(7)}, {"title", vtext("admins")}};
  oplog_field g2[] = {{"id", vint(8)}, {"title", vnull()}};
  oplog_row items[] = {{g1, 2}, {g2, 2}};
  oplog_op ops[] = {
      {.type = "user", .kind = OPLOG_OP_CREATE, .row = {f1, 4}},
      {.type = "user", .kind = OPLOG_OP_UPDATE, .row = {f2, 2}, .mask = mask, .nmask = 1, .nulls = nulls, .nnulls = 1},
      {.type = "group", .kind = OPLOG_OP_CREATE_ITEMS, .row = items[0]},
      {.type = "group", .kind = OPLOG_OP_CREATE_ITEMS, .row = items[1]},
      {.type = "group", .kind = OPLOG_OP_DELETE_ITEMS, .row = {g2, 1}},
  };
  OK(db, oplog_tx_begin(db, "users"));
  for (int i = 0; i < 5; i++) OK(db, oplog_tx_apply(db, &ops[i]));
  oplog_meta md[] = {{"actor", "ann"}, {"tag", "a"}, {"tag", "b"}, {"flag", NULL}};
  int64_t id = 0;
  OK(db, oplog_tx_commit(db, md, 4, &id));
  CHECK(id == 1);
  CHECK(count_rows(tpath("a.db"), "SELECT age FROM users WHERE id = 1") == 31);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM users WHERE photo IS NULL") == 1);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM groups") == 1);
  oplog_close(db);

  db = open_plain("a.db"); /* reopen shows everything */
  CHECK(db);
  oplog_entry *e = NULL;
  OK(db, oplog_entry_get(db, 1, &e));
  CHECK(e->nops == 5 && strcmp(e->aggregate, "users") == 0 && e->key_id == 0 && e->created > 0);
  CHECK(e->ops[0].kind == OPLOG_OP_CREATE && e->ops[0].row.nfields == 4);
  CHECK(strcmp(e->ops[0].row.fields[3].name, "photo") == 0 && e->ops[0].row.fields[3].value.type == OPLOG_BLOB &&
        e->ops[0].row.fields[3].value.u.b.n == 4 && memcmp(e->ops[0].row.fields[3].value.u.b.p, photo, 4) == 0);
  CHECK(e->ops[0].row.fields[1].value.type == OPLOG_TEXT && strcmp(e->ops[0].row.fields[1].value.u.b.p, "ann") == 0);
  CHECK(e->ops[1].kind == OPLOG_OP_UPDATE && e->ops[1].nmask == 1 && strcmp(e->ops[1].mask[0], "age") == 0);
  CHECK(e->ops[1].nnulls == 1 && strcmp(e->ops[1].nulls[0], "photo") == 0);
  /* an update logs its key and the columns of its mask, as stored */
  CHECK(e->ops[1].row.nfields == 2 && strcmp(e->ops[1].row.fields[0].name, "id") == 0 &&
        e->ops[1].row.fields[0].value.u.i == 1 && strcmp(e->ops[1].row.fields[1].name, "age") == 0 &&
        e->ops[1].row.fields[1].value.type == OPLOG_INTEGER && e->ops[1].row.fields[1].value.u.i == 31);
  CHECK(e->ops[2].kind == OPLOG_OP_CREATE_ITEMS && e->ops[3].kind == OPLOG_OP_CREATE_ITEMS);
  CHECK(e->ops[3].row.nfields == 2 && e->ops[3].row.fields[1].value.type == OPLOG_NULL);
  /* a delete logs its key */
  CHECK(e->ops[4].row.nfields == 1 && strcmp(e->ops[4].row.fields[0].name, "id") == 0 &&
        e->ops[4].row.fields[0].value.u.i == 8);
  /* the first entry of the file's origin */
  oplog_origin_info oi;
  OK(db, oplog_origin(db, &oi));
  CHECK(e->seq == 1 && e->clock == 1 && e->origin && memcmp(e->origin, oi.id, OPLOG_ORIGIN_BYTES) == 0);
  CHECK(e->ops[4].kind == OPLOG_OP_DELETE_ITEMS && strcmp(e->ops[4].type, "group") == 0);
  CHECK(e->nmetadata == 4 && strcmp(e->metadata[2].key, "tag") == 0 && strcmp(e->metadata[2].value, "b") == 0);
  CHECK(strcmp(e->metadata[3].key, "flag") == 0 && e->metadata[3].value == NULL);
  oplog_entry_free(e);
  int64_t v;
  OK(db, oplog_ticket(db, "users", &v));
  CHECK(v == 2);
  CHECK_RC(db, oplog_entry_get(db, 99, &e), OPLOG_NOT_FOUND);
  oplog_close(db);
}

static void tx_rowid_key_logged(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  oplog_field f[] = {{"name", vtext("auto")}};
  oplog_op op = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 1}};
  int64_t id;
  OK(db, oplog_tx_begin(db, "users"));
  OK(db, oplog_tx_apply(db, &op));
  int64_t rowid = oplog_tx_last_rowid(db);
  OK(db, oplog_tx_commit(db, NULL, 0, &id));
  CHECK(rowid == 1);
  oplog_entry *e;
  OK(db, oplog_entry_get(db, id, &e));
  /* a create logs every column in column order, the assigned rowid included */
  CHECK(e->ops[0].row.nfields == 4 && strcmp(e->ops[0].row.fields[0].name, "id") == 0 &&
        e->ops[0].row.fields[0].value.type == OPLOG_INTEGER && e->ops[0].row.fields[0].value.u.i == rowid);
  CHECK(strcmp(e->ops[0].row.fields[1].name, "name") == 0 && strcmp(e->ops[0].row.fields[1].value.u.b.p, "auto") == 0);
  CHECK(strcmp(e->ops[0].row.fields[2].name, "age") == 0 && e->ops[0].row.fields[2].value.type == OPLOG_NULL);
  CHECK(strcmp(e->ops[0].row.fields[3].name, "photo") == 0 && e->ops[0].row.fields[3].value.type == OPLOG_NULL);
  oplog_entry_free(e);
  /* a NULL key is an auto key too; any other non-integer would become a
   * rowid SQLite picks (NaN binds as NULL), which the log could not say */
  oplog_field fnull[] = {{"id", vnull()}, {"name", vtext("nullkey")}};
  oplog_op opnull = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {fnull, 2}};
  OK(db, oplog_tx_begin(db, "users"));
  OK(db, oplog_tx_apply(db, &opnull));
  OK(db, oplog_tx_commit(db, NULL, 0, &id));
  OK(db, oplog_entry_get(db, id, &e));
  CHECK(e->ops[0].row.nfields == 4 && strcmp(e->ops[0].row.fields[0].name, "id") == 0 &&
        e->ops[0].row.fields[0].value.type == OPLOG_INTEGER && e->ops[0].row.fields[0].value.u.i == 2);
  CHECK(count_rows(tpath("a.db"), "SELECT id FROM users WHERE name = 'nullkey'") == 2);
  oplog_entry_free(e);
  oplog_field fnan[] = {{"id", vreal(0.0 / 0.0)}, {"name", vtext("nan")}};
  oplog_op opnan = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {fnan, 2}};
  OK(db, oplog_tx_begin(db, "users"));
  CHECK_RC(db, oplog_tx_apply(db, &opnan), OPLOG_INVALID_ARGUMENT);
  oplog_verify_result vr;
  OK(db, oplog_verify(db, &(oplog_verify_opts){.replay = 1}, NULL, NULL, &vr));
  CHECK(vr.ok && vr.entries == 2);
  oplog_close(db);
}

/* Everything as it was: live rows, entries, the metadata pairs the
 * entries hold (format 2: in each entry's blob), the ticket of users as
 * the API gives it, and derived tables that agree with the entries. */
static int unchanged(oplog_db *db, const char *p, int64_t users, int64_t entries, int64_t meta, int64_t ticket) {
  int64_t v = -1;
  char why[256] = "";
  int ok = count_rows(p, "SELECT count(*) FROM users") == users &&
           count_rows(p, "SELECT count(*) FROM oplog_entries") == entries && ref_meta_pairs_total(p) == meta &&
           oplog_ticket(db, "users", &v) == OPLOG_OK && v == ticket && check_derived(p, 0, why, sizeof why);
  if (!ok)
    fprintf(stderr, "unchanged: users %lld, entries %lld, pairs %lld, ticket %lld, derived: %s\n",
            (long long)count_rows(p, "SELECT count(*) FROM users"),
            (long long)count_rows(p, "SELECT count(*) FROM oplog_entries"), (long long)ref_meta_pairs_total(p),
            (long long)v, why);
  return ok;
}

static void tx_errors_roll_back(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  CHECK(write_user(db, 1, "ann", 30) == 1);
  char *p = tpath("a.db");
  CHECK(unchanged(db, p, 1, 1, 2, 2));
  oplog_field ok[] = {{"id", vint(2)}, {"name", vtext("bob")}};
  oplog_op create = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {ok, 2}};
  struct {
    oplog_op op;
    int code;
  } bad[10];
  oplog_field f_upd[] = {{"id", vint(1)}, {"age", vint(5)}};
  const char *age[] = {"age"}, *nope[] = {"nope"}, *idm[] = {"id"};
  oplog_field f_unknown_col[] = {{"id", vint(3)}, {"nope", vint(1)}};
  oplog_field f_dup[] = {{"id", vint(1)}, {"name", vtext("ann")}};
  oplog_field f_missing[] = {{"id", vint(42)}, {"age", vint(5)}};
  unsigned char badutf[] = {'a', 0xff, 'b'};
  oplog_field f_utf[] = {{"id", vint(9)}, {"name", {.type = OPLOG_TEXT, .u.b = {badutf, 3}}}};
  int n = 0;
  bad[n].op = (oplog_op){.type = "user", .kind = OPLOG_OP_UPDATE, .row = {f_upd, 2}}; /* no mask, no nulls */
  bad[n++].code = OPLOG_INVALID_ARGUMENT;
  bad[n].op = (oplog_op){.type = "user", .kind = OPLOG_OP_UPDATE, .row = {f_upd, 2}, .mask = age, .nmask = 1, .nulls = age, .nnulls = 1};
  bad[n++].code = OPLOG_INVALID_ARGUMENT; /* column in both */
  bad[n].op = (oplog_op){.type = "user", .kind = OPLOG_OP_UPDATE, .row = {f_upd, 2}, .mask = nope, .nmask = 1};
  bad[n++].code = OPLOG_INVALID_ARGUMENT;
  bad[n].op = (oplog_op){.type = "user", .kind = OPLOG_OP_UPDATE, .row = {f_upd, 2}, .nulls = idm, .nnulls = 1};
  bad[n++].code = OPLOG_INVALID_ARGUMENT; /* key column */
  bad[n].op = (oplog_op){.type = "nosuch", .kind = OPLOG_OP_CREATE, .row = {ok, 2}};
  bad[n++].code = OPLOG_INVALID_ARGUMENT;
  bad[n].op = (oplog_op){.type = "user", .kind = OPLOG_OP_CREATE, .row = {f_unknown_col, 2}};
  bad[n++].code = OPLOG_INVALID_ARGUMENT;
  bad[n].op = (oplog_op){.type = "user", .kind = OPLOG_OP_CREATE, .row = {f_dup, 2}};
  bad[n++].code = OPLOG_CONSTRAINT;
  bad[n].op = (oplog_op){.type = "user", .kind = OPLOG_OP_UPDATE, .row = {f_missing, 2}, .mask = age, .nmask = 1};
  bad[n++].code = OPLOG_NOT_FOUND;
  bad[n].op = (oplog_op){.type = "user", .kind = OPLOG_OP_CREATE, .row = {f_utf, 2}};
  bad[n++].code = OPLOG_INVALID_ARGUMENT;
  for (int i = 0; i < n; i++) {
    OK(db, oplog_tx_begin(db, "users"));
    OK(db, oplog_tx_apply(db, &create)); /* a good op first: it must go too */
    CHECK_RC(db, oplog_tx_apply(db, &bad[i].op), bad[i].code);
    CHECK(!oplog_tx_active(db));
    CHECK_RC(db, oplog_tx_commit(db, NULL, 0, NULL), OPLOG_INVALID_ARGUMENT);
    CHECK(unchanged(db, p, 1, 1, 2, 2));
  }
  /* explicit rollback */
  OK(db, oplog_tx_begin(db, "users"));
  OK(db, oplog_tx_apply(db, &create));
  OK(db, oplog_tx_rollback(db));
  CHECK(unchanged(db, p, 1, 1, 2, 2));
  /* bad metadata at commit rolls back too */
  OK(db, oplog_tx_begin(db, "users"));
  OK(db, oplog_tx_apply(db, &create));
  oplog_meta badmd[] = {{"", "x"}};
  CHECK_RC(db, oplog_tx_commit(db, badmd, 1, NULL), OPLOG_INVALID_ARGUMENT);
  CHECK(unchanged(db, p, 1, 1, 2, 2));
  /* empty aggregate, unknown aggregate, nesting */
  CHECK_RC(db, oplog_tx_begin(db, ""), OPLOG_INVALID_ARGUMENT);
  CHECK_RC(db, oplog_tx_begin(db, "nosuch"), OPLOG_NOT_FOUND);
  OK(db, oplog_tx_begin(db, "users"));
  CHECK_RC(db, oplog_tx_begin(db, "users"), OPLOG_INVALID_ARGUMENT);
  CHECK(strstr(oplog_errmsg(db), "nesting"));
  CHECK_RC(db, oplog_begin(db), OPLOG_INVALID_ARGUMENT);
  int64_t id = -1;
  OK(db, oplog_tx_commit(db, NULL, 0, &id)); /* no ops: no entry */
  CHECK(id == 0);
  CHECK(unchanged(db, p, 1, 1, 2, 2));
  oplog_close(db);
}

static void type_bound_to_aggregate(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  static const oplog_column cols[] = {{"sku", "TEXT PRIMARY KEY"}, {"qty", "INTEGER"}};
  oplog_type_spec s = {"item", NULL, "stock", cols, 2, NULL, 0};
  OK(db, oplog_define(db, &s));
  oplog_field f[] = {{"sku", vtext("a-1")}, {"qty", vint(3)}};
  oplog_op op = {.type = "item", .kind = OPLOG_OP_CREATE, .row = {f, 2}};
  OK(db, oplog_tx_begin(db, "users"));
  CHECK_RC(db, oplog_tx_apply(db, &op), OPLOG_INVALID_ARGUMENT);
  OK(db, oplog_tx_begin(db, "stock"));
  OK(db, oplog_tx_apply(db, &op));
  OK(db, oplog_tx_commit(db, NULL, 0, NULL));
  CHECK(count_rows(tpath("a.db"), "SELECT qty FROM item") == 3);
  oplog_close(db);
}

static void ticket_conflict_two_handles(void) {
  oplog_db *a = open_plain("a.db");
  CHECK(a);
  OK(a, define_user(a));
  oplog_db *b = open_plain("a.db");
  CHECK(b);
  int64_t va, vb;
  OK(a, oplog_ticket(a, "users", &va));
  OK(b, oplog_ticket(b, "users", &vb));
  CHECK(va == vb);
  oplog_field f[] = {{"id", vint(1)}, {"name", vtext("x")}};
  oplog_op op = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 2}};
  oplog_meta md[] = {{"who", "a"}};
  oplog_entry_write w = {"users", va, md, 1, &op, 1};
  int64_t id;
  OK(a, oplog_begin(a));
  OK(a, oplog_write_entry(a, &w, &id));
  OK(a, oplog_commit(a));
  CHECK(id == 1);
  md[0].value = "b";
  w.ticket = vb;
  OK(b, oplog_begin(b));
  CHECK_RC(b, oplog_write_entry(b, &w, &id), OPLOG_TICKET_CONFLICT);
  OK(b, oplog_commit(b));
  char *p = tpath("a.db");
  char why[256];
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_entries") == 1);
  /* nothing of the refused entry: its metadata is not in any entry, nor found by a filter */
  oplog_meta who_b[] = {{"who", "b"}}, who_a[] = {{"who", "a"}};
  CHECK(collect_n(a, &(oplog_filter){.metadata = who_b, .nmetadata = 1}) == 0);
  CHECK(collect_n(b, &(oplog_filter){.metadata = who_b, .nmetadata = 1}) == 0);
  CHECK(collect_n(b, &(oplog_filter){.metadata = who_a, .nmetadata = 1}) == 1);
  CHECK(ref_meta_pairs_total(p) == 1);
  /* both handles see version 2; the file agrees (derived rows + the entry above them) */
  OK(a, oplog_ticket(a, "users", &va));
  OK(b, oplog_ticket(b, "users", &vb));
  CHECK(va == 2 && vb == 2);
  CHECK(count_rows(p, "SELECT version + (SELECT count(*) FROM oplog_entries WHERE aggregate_name = 'users' AND id > "
                      "(SELECT value FROM oplog_config WHERE name = 'indexed_upto')) FROM oplog_ticket") == 2);
  CHECK(check_derived(p, 0, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  CHECK(count_rows(p, "SELECT count(*) FROM users") == 0); /* low level: live tables untouched */
  /* write_entry outside begin, or with no ops */
  CHECK_RC(b, oplog_write_entry(b, &w, &id), OPLOG_INVALID_ARGUMENT);
  OK(b, oplog_begin(b));
  oplog_entry_write empty = {"users", 2, NULL, 0, NULL, 0};
  CHECK_RC(b, oplog_write_entry(b, &empty, &id), OPLOG_INVALID_ARGUMENT);
  w.ticket = 2;
  OK(b, oplog_write_entry(b, &w, &id));
  OK(b, oplog_rollback(b));
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_entries") == 1);
  OK(a, oplog_ticket(a, "users", &va));
  OK(b, oplog_ticket(b, "users", &vb));
  CHECK(va == 2 && vb == 2);
  oplog_close(a);
  oplog_close(b);
  /* closed: oplog_ticket itself says 2, and covers the one entry */
  CHECK(count_rows(p, "SELECT version FROM oplog_ticket") == 2);
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_metadata WHERE value = 'b'") == 0);
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_metadata WHERE key = 'who' AND value = 'a'") == 1);
  CHECK(check_derived(p, 1, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
}

static void entries_are_immutable(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  CHECK(write_user(db, 1, "ann", 30) == 1);
  oplog_close(db);
  char *p = tpath("a.db");
  CHECK(exec_raw(p, "UPDATE oplog_entries SET aggregate_name = 'x'") == SQLITE_CONSTRAINT);
  CHECK(exec_raw(p, "UPDATE oplog_entries SET metadata = x'00000000'") == SQLITE_CONSTRAINT);
  CHECK(exec_raw(p, "DELETE FROM oplog_entries") == SQLITE_CONSTRAINT);
  /* the derived rows, written once they cover an entry, are append-only too */
  CHECK(exec_raw(p, "UPDATE oplog_metadata SET value = 'mallory'") == SQLITE_CONSTRAINT);
  CHECK(exec_raw(p, "DELETE FROM oplog_metadata") == SQLITE_CONSTRAINT);
  CHECK(exec_raw(p, "UPDATE oplog_index SET aggregate_name = 'x'") == SQLITE_CONSTRAINT);
  CHECK(exec_raw(p, "DELETE FROM oplog_index") == SQLITE_CONSTRAINT);
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_entries WHERE aggregate_name = 'users'") == 1);
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_metadata WHERE value = 'alice'") == 1);
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_index WHERE aggregate_name = 'users'") == 1);
  /* the blob still holds the pairs the entry was written with */
  unsigned char want[64];
  size_t n = ref_meta_encode((oplog_meta[]){{"actor", "alice"}, {"reason", "signup"}}, 2, want, sizeof want);
  CHECK(n > 0);
  sqlite3 *s;
  sqlite3_stmt *st;
  CHECK(sqlite3_open_v2(p, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
  CHECK(sqlite3_prepare_v2(s, "SELECT metadata FROM oplog_entries WHERE id = 1", -1, &st, NULL) == SQLITE_OK);
  int same = sqlite3_step(st) == SQLITE_ROW && (size_t)sqlite3_column_bytes(st, 0) == n &&
             memcmp(sqlite3_column_blob(st, 0), want, n) == 0;
  sqlite3_finalize(st);
  sqlite3_close(s);
  CHECK(same);
}

static int collect(oplog_db *db, const oplog_filter *f, int64_t *ids, int max) {
  oplog_iter *it;
  if (oplog_entries(db, f, &it)) return -1;
  const oplog_entry *e;
  int n = 0;
  while (oplog_iter_next(it, &e) == OPLOG_OK && e) {
    if (n < max) ids[n] = e->id;
    n++;
  }
  oplog_iter_close(it);
  return n;
}

static void entries_filters(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  static const oplog_column cols[] = {{"sku", "TEXT PRIMARY KEY"}};
  oplog_type_spec s = {"item", NULL, "stock", cols, 1, NULL, 0};
  OK(db, oplog_define(db, &s));
  for (int i = 1; i <= 10; i++) {
    char name[16], sku[16];
    snprintf(name, sizeof name, "u%d", i);
    snprintf(sku, sizeof sku, "s%d", i);
    if (i % 2) {
      CHECK(write_user(db, i, name, i) > 0);
    } else {
      oplog_field f[] = {{"sku", vtext(sku)}};
      oplog_op op = {.type = "item", .kind = OPLOG_OP_CREATE, .row = {f, 1}};
      oplog_meta md[] = {{"actor", i == 4 ? "bob" : "alice"}, {"batch", NULL}};
      OK(db, oplog_tx_begin(db, "stock"));
      OK(db, oplog_tx_apply(db, &op));
      OK(db, oplog_tx_commit(db, md, 2, NULL));
    }
  }
  int64_t ids[16];
  oplog_filter all = {0};
  CHECK(collect(db, &all, ids, 16) == 10 && ids[0] == 1 && ids[9] == 10);
  oplog_filter agg = {.aggregate = "stock"};
  CHECK(collect(db, &agg, ids, 16) == 5 && ids[0] == 2 && ids[4] == 10);
  oplog_filter range = {.since = 3, .upto = 6};
  CHECK(collect(db, &range, ids, 16) == 3 && ids[0] == 4 && ids[2] == 6);
  oplog_filter rev = {.reverse = 1, .limit = 2};
  CHECK(collect(db, &rev, ids, 16) == 2 && ids[0] == 10 && ids[1] == 9);
  oplog_meta bob[] = {{"actor", "bob"}};
  oplog_filter mf = {.metadata = bob, .nmetadata = 1};
  CHECK(collect(db, &mf, ids, 16) == 1 && ids[0] == 4);
  oplog_meta both[] = {{"actor", "alice"}, {"batch", NULL}};
  oplog_filter mf2 = {.metadata = both, .nmetadata = 2, .since = 5};
  CHECK(collect(db, &mf2, ids, 16) == 3 && ids[0] == 6);
  oplog_meta signup[] = {{"reason", "signup"}, {"actor", "alice"}};
  oplog_filter mf3 = {.aggregate = "users", .metadata = signup, .nmetadata = 2};
  CHECK(collect(db, &mf3, ids, 16) == 5);
  oplog_filter neg = {.since = -1};
  oplog_iter *it;
  CHECK_RC(db, oplog_entries(db, &neg, &it), OPLOG_INVALID_ARGUMENT);
  /* the metadata filter is answered from the (key, value, entry_id) index */
  CHECK(count_rows(tpath("a.db"),
                   "SELECT count(*) FROM sqlite_schema WHERE name = 'oplog_metadata_key_value'") == 1);
  oplog_close(db);
}

static void decode_unknown_type(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  CHECK(write_user(db, 1, "ann", 30) == 1);
  oplog_close(db);
  CHECK(exec_raw(tpath("a.db"), "DELETE FROM oplog_type_columns; DELETE FROM oplog_types") == 0);
  db = open_plain("a.db");
  CHECK(db);
  oplog_entry *e;
  CHECK_RC(db, oplog_entry_get(db, 1, &e), OPLOG_NOT_FOUND);
  CHECK(strstr(oplog_errmsg(db), "user"));
  oplog_close(db);
}

static void entries_stream_flat_memory(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  OK(db, oplog_tx_begin(db, "users"));
  for (int i = 1; i <= 2000; i++) {
    char name[16];
    snprintf(name, sizeof name, "u%d", i);
    oplog_field f[] = {{"id", vint(i)}, {"name", vtext(name)}};
    oplog_op op = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 2}};
    OK(db, oplog_tx_apply(db, &op));
    if (i % 100 == 0) {
      OK(db, oplog_tx_commit(db, NULL, 0, NULL));
      if (i < 2000) OK(db, oplog_tx_begin(db, "users"));
    }
  }
  oplog_iter *it;
  OK(db, oplog_entries(db, NULL, &it));
  const oplog_entry *e;
  int n = 0;
  sqlite3_int64 after_first = 0;
  while (oplog_iter_next(it, &e) == OPLOG_OK && e) {
    if (++n == 2) after_first = sqlite3_memory_used();
    CHECK(e->nops == 100);
  }
  CHECK(n == 20);
  /* the iterator's memory after 20 entries is what it was after one */
  CHECK(sqlite3_memory_used() <= after_first + 4096);
  oplog_iter_close(it);
  oplog_close(db);
}

static void values_types_and_blob_affinity(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  static const oplog_column cols[] = {{"k", "INTEGER PRIMARY KEY"}, {"r", "REAL"}, {"b", "BLOB"},
                                      {"t", "TEXT"}, {"flag", "BOOLEAN"}, {"any", ""}};
  oplog_column c[6];
  memcpy(c, cols, sizeof c);
  c[5].decl = "";
  oplog_type_spec s = {"v", NULL, NULL, c, 6, NULL, 0};
  CHECK_RC(db, oplog_define(db, &s), OPLOG_INVALID_ARGUMENT); /* empty decl */
  c[5].decl = "ANY";
  OK(db, oplog_define(db, &s));
  oplog_field f[] = {{"k", vint(INT64_MAX)}, {"r", vreal(0.5)},      {"b", vtext("bytes")},
                     {"t", vtext("héllo")}, {"flag", {.type = OPLOG_BOOLEAN, .u.i = 1}}, {"any", vnull()}};
  oplog_op op = {.type = "v", .kind = OPLOG_OP_CREATE, .row = {f, 6}};
  int64_t id;
  OK(db, oplog_tx_begin(db, "v"));
  OK(db, oplog_tx_apply(db, &op));
  OK(db, oplog_tx_commit(db, NULL, 0, &id));
  char *p = tpath("a.db");
  CHECK(count_rows(p, "SELECT typeof(b) = 'blob' AND typeof(t) = 'text' AND flag = 1 AND any IS NULL FROM v") == 1);
  oplog_entry *e;
  OK(db, oplog_entry_get(db, id, &e));
  CHECK(e->ops[0].row.fields[0].value.type == OPLOG_INTEGER && e->ops[0].row.fields[0].value.u.i == INT64_MAX);
  CHECK(e->ops[0].row.fields[1].value.type == OPLOG_REAL && e->ops[0].row.fields[1].value.u.r == 0.5);
  CHECK(e->ops[0].row.fields[2].value.type == OPLOG_BLOB);
  CHECK(e->ops[0].row.fields[3].value.type == OPLOG_TEXT);
  /* a boolean is logged as the integer the table stores */
  CHECK(e->ops[0].row.fields[4].value.type == OPLOG_INTEGER && e->ops[0].row.fields[4].value.u.i == 1);
  CHECK(e->ops[0].row.fields[5].value.type == OPLOG_NULL && e->ops[0].row.nfields == 6);
  for (int i = 0; i < 6; i++) CHECK(strcmp(e->ops[0].row.fields[i].name, cols[i].name) == 0);
  oplog_entry_free(e);
  /* NaN: SQLite stores NULL, and the log says so too */
  oplog_field nanf[] = {{"k", vint(3)}, {"r", vreal(0.0 / 0.0)}};
  oplog_op opnan = {.type = "v", .kind = OPLOG_OP_CREATE, .row = {nanf, 2}};
  OK(db, oplog_tx_begin(db, "v"));
  OK(db, oplog_tx_apply(db, &opnan));
  OK(db, oplog_tx_commit(db, NULL, 0, &id));
  CHECK(count_rows(p, "SELECT count(*) FROM v WHERE k = 3 AND r IS NULL") == 1);
  OK(db, oplog_entry_get(db, id, &e));
  CHECK(e->ops[0].row.nfields == 6 && strcmp(e->ops[0].row.fields[1].name, "r") == 0 &&
        e->ops[0].row.fields[1].value.type == OPLOG_NULL);
  oplog_entry_free(e);
  /* a boolean 0 too; in an update as well */
  oplog_field f0[] = {{"k", vint(4)}, {"flag", {.type = OPLOG_BOOLEAN, .u.i = 0}}};
  oplog_field fu[] = {{"k", vint(4)}, {"flag", {.type = OPLOG_BOOLEAN, .u.i = 1}}};
  const char *mflag[] = {"flag"};
  OK(db, oplog_tx_begin(db, "v"));
  OK(db, oplog_tx_apply(db, &(oplog_op){.type = "v", .kind = OPLOG_OP_CREATE, .row = {f0, 2}}));
  OK(db, oplog_tx_apply(db, &(oplog_op){.type = "v", .kind = OPLOG_OP_UPDATE, .row = {fu, 2}, .mask = mflag, .nmask = 1}));
  OK(db, oplog_tx_commit(db, NULL, 0, &id));
  OK(db, oplog_entry_get(db, id, &e));
  CHECK(e->ops[0].row.nfields == 6 && e->ops[0].row.fields[4].value.type == OPLOG_INTEGER &&
        e->ops[0].row.fields[4].value.u.i == 0);
  CHECK(e->ops[1].row.nfields == 2 && strcmp(e->ops[1].row.fields[1].name, "flag") == 0 &&
        e->ops[1].row.fields[1].value.type == OPLOG_INTEGER && e->ops[1].row.fields[1].value.u.i == 1);
  oplog_entry_free(e);
  /* text with a NUL byte cannot be logged as protobuf string */
  oplog_field nul[] = {{"k", vint(2)}, {"t", {.type = OPLOG_TEXT, .u.b = {"a\0b", 3}}}};
  oplog_op op2 = {.type = "v", .kind = OPLOG_OP_CREATE, .row = {nul, 2}};
  OK(db, oplog_tx_begin(db, "v"));
  CHECK_RC(db, oplog_tx_apply(db, &op2), OPLOG_INVALID_ARGUMENT);
  CHECK(count_rows(p, "SELECT count(*) FROM v") == 3); /* k = INT64_MAX, 3 and 4 */
  oplog_close(db);
}

static void stats_and_head(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  int64_t id;
  unsigned char h[32], zero[32] = {0};
  OK(db, oplog_head(db, &id, h));
  CHECK(id == 0 && memcmp(h, zero, 32) == 0);
  OK(db, define_user(db));
  CHECK(write_user(db, 1, "a", 1) == 1);
  CHECK(write_user(db, 2, "b", 1) == 2);
  OK(db, oplog_head(db, &id, h));
  CHECK(id == 2 && memcmp(h, zero, 32) != 0);
  oplog_stats st;
  OK(db, oplog_get_stats(db, &st, NULL, NULL));
  CHECK(st.entries == 2 && st.bytes > 0 && st.keys == 0);
  oplog_close(db);
}

/* Many entries in one SQLite transaction: each redeems its own ticket
 * version; a rollback takes them all. */
static void tx_entry_batches(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  char *p = tpath("a.db");
  for (int round = 0; round < 2; round++) {
    OK(db, oplog_tx_begin(db, "users"));
    for (int i = 1; i <= 3; i++) {
      char name[16];
      snprintf(name, sizeof name, "r%du%d", round, i);
      oplog_field f[] = {{"id", vint(round * 10 + i)}, {"name", vtext(name)}};
      oplog_op op = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 2}};
      OK(db, oplog_tx_apply(db, &op));
      oplog_meta md[] = {{"n", name}};
      int64_t id;
      OK(db, oplog_tx_entry(db, md, 1, &id));
      CHECK(id == i);
      int64_t v = 0;
      OK(db, oplog_ticket(db, "users", &v)); /* inside the transaction: this entry redeemed version i */
      CHECK(v == i + 1);
    }
    int64_t none = -1;
    OK(db, oplog_tx_entry(db, NULL, 0, &none)); /* nothing queued: no entry */
    CHECK(none == 0);
    if (round == 0) {
      OK(db, oplog_tx_rollback(db));
      CHECK(unchanged(db, p, 0, 0, 0, 1));
    } else {
      int64_t last;
      OK(db, oplog_tx_commit(db, NULL, 0, &last));
      CHECK(last == 0);
    }
  }
  CHECK(unchanged(db, p, 3, 3, 3, 4));
  /* the rolled-back entries took no seq or clock: the kept ones are 1, 2, 3 */
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_entries WHERE seq = id AND clock = id AND origin = 1") == 3);
  char why[256];
  CHECK(ref_check_chain(p, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  oplog_verify_result vr;
  OK(db, oplog_verify(db, &(oplog_verify_opts){.replay = 1}, NULL, NULL, &vr));
  CHECK(vr.ok && vr.entries == 3);
  oplog_close(db);
  /* closed: the derived tables cover all three, in plain SQL */
  CHECK(check_derived(p, 1, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_metadata") == 3);
  CHECK(count_rows(p, "SELECT version FROM oplog_ticket WHERE name = 'users'") == 4);
}

/* Metadata is the same whichever way an entry is read: a full scan (joined
 * in id order), reversed, filtered (looked up per entry), or by id. */
static void entries_metadata_every_path(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  for (int i = 1; i <= 6; i++) {
    char name[16], n1[8], n2[8];
    snprintf(name, sizeof name, "u%d", i);
    snprintf(n1, sizeof n1, "a%d", i);
    snprintf(n2, sizeof n2, "b%d", i);
    oplog_field f[] = {{"id", vint(i)}, {"name", vtext(name)}};
    oplog_op op = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 2}};
    oplog_meta md[] = {{"k", n1}, {"k", n2}, {"only", NULL}};
    OK(db, oplog_tx_begin(db, "users"));
    OK(db, oplog_tx_apply(db, &op));
    OK(db, oplog_tx_commit(db, md, i % 3 == 0 ? 0 : 3, NULL)); /* every third without metadata */
  }
  /* pass 0: the writing handle is open, the entries lie above the derived
   * tables; pass 1: closed (the derived tables cover them) and reopened */
  static const oplog_meta only[] = {{"only", NULL}}, b4[] = {{"k", "b4"}}, a5only[] = {{"only", NULL}, {"k", "a5"}};
  oplog_filter filters[] = {{0},
                            {.reverse = 1},
                            {.aggregate = "users"},
                            {.since = 2, .upto = 5, .reverse = 1},
                            {.limit = 2, .reverse = 1},
                            {.metadata = only, .nmetadata = 1},
                            {.aggregate = "users", .metadata = b4, .nmetadata = 1, .reverse = 1},
                            {.metadata = a5only, .nmetadata = 2}};
  static const int expect_n[] = {6, 6, 6, 3, 2, 4, 1, 1};
  for (int pass = 0; pass < 2; pass++) {
    char *p = tpath("a.db");
    CHECK(count_rows(p, "SELECT value FROM oplog_config WHERE name = 'indexed_upto'") == (pass ? 6 : 0));
    for (size_t k = 0; k < sizeof filters / sizeof *filters; k++) {
      oplog_iter *it;
      OK(db, oplog_entries(db, &filters[k], &it));
      const oplog_entry *e;
      int n = 0, bad = 0;
      while (oplog_iter_next(it, &e) == OPLOG_OK && e) {
        n++;
        char a[8], b[8];
        snprintf(a, sizeof a, "a%lld", (long long)e->id);
        snprintf(b, sizeof b, "b%lld", (long long)e->id);
        if (e->id % 3 == 0)
          bad += e->nmetadata != 0;
        else
          bad += !(e->nmetadata == 3 && strcmp(e->metadata[0].value, a) == 0 &&
                   strcmp(e->metadata[1].value, b) == 0 && strcmp(e->metadata[2].key, "only") == 0 &&
                   e->metadata[2].value == NULL);
      }
      oplog_iter_close(it);
      if (n != expect_n[k] || bad) fprintf(stderr, "pass %d filter %zu: %d entries, %d wrong\n", pass, k, n, bad);
      CHECK(n == expect_n[k] && !bad);
    }
    oplog_entry *e;
    OK(db, oplog_entry_get(db, 4, &e));
    CHECK(e->nmetadata == 3 && strcmp(e->metadata[1].value, "b4") == 0);
    oplog_entry_free(e);
    OK(db, oplog_entry_get(db, 3, &e));
    CHECK(e->nmetadata == 0);
    oplog_entry_free(e);
    oplog_close(db);
    if (!pass) {
      db = open_plain("a.db");
      CHECK(db);
    }
  }
}

/* ---------------------------------------------------------------- format 2 */

/* The row a transaction logs is the row the table stored: every column of
 * a create in column order (DEFAULTs filled, rowid assigned, affinity
 * applied), an update's key and mask columns as stored, a delete's key. */
static void logged_row_is_stored_row(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  static const oplog_column cols[] = {
      {"id", "INTEGER PRIMARY KEY"}, {"at", "INTEGER DEFAULT (random())"}, {"n", "NUMERIC"}};
  OK(db, oplog_define(db, &(oplog_type_spec){"ev", NULL, NULL, cols, 3, NULL, 0}));
  char *p = tpath("a.db");
  oplog_field f[] = {{"n", vtext("7")}};
  int64_t id;
  OK(db, oplog_tx_begin(db, "ev"));
  OK(db, oplog_tx_apply(db, &(oplog_op){.type = "ev", .kind = OPLOG_OP_CREATE, .row = {f, 1}}));
  OK(db, oplog_tx_commit(db, NULL, 0, &id));
  CHECK(count_rows(p, "SELECT count(*) FROM ev WHERE id = 1 AND typeof(at) = 'integer' AND typeof(n) = 'integer' "
                      "AND n = 7") == 1);
  int64_t at = count_rows(p, "SELECT at FROM ev WHERE id = 1");
  oplog_entry *e;
  OK(db, oplog_entry_get(db, id, &e));
  CHECK(e->nops == 1 && e->ops[0].kind == OPLOG_OP_CREATE && e->ops[0].row.nfields == 3);
  const oplog_field *r = e->ops[0].row.fields;
  CHECK(strcmp(r[0].name, "id") == 0 && r[0].value.type == OPLOG_INTEGER && r[0].value.u.i == 1);
  CHECK(strcmp(r[1].name, "at") == 0 && r[1].value.type == OPLOG_INTEGER && r[1].value.u.i == at);
  CHECK(strcmp(r[2].name, "n") == 0 && r[2].value.type == OPLOG_INTEGER && r[2].value.u.i == 7);
  oplog_entry_free(e);
  /* replayed, the row is the live one: the DEFAULT's value came from the log */
  oplog_replay_result rr;
  OK(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_r"}, &rr));
  CHECK(rr.entries == 1 && count_rows(p, "SELECT count(*) FROM ev e JOIN ev_r r USING (id) WHERE r.at = e.at "
                                         "AND typeof(r.n) = 'integer' AND r.n = 7") == 1);

  /* updates: the masked column as stored (NUMERIC: "8.5" is REAL 8.5, REAL
   * 3.0 is INTEGER 3, "x1" stays TEXT); a column set to NULL by `nulls` is
   * named there, not in the row */
  struct {
    oplog_value v;
    int type;
    double num;
    const char *text;
  } upd[] = {{vtext("8.5"), OPLOG_REAL, 8.5, NULL}, {vreal(3.0), OPLOG_INTEGER, 3, NULL},
             {vtext("x1"), OPLOG_TEXT, 0, "x1"}};
  const char *mask[] = {"n"}, *nulls[] = {"at"};
  for (int i = 0; i < 3; i++) {
    oplog_field u[] = {{"n", upd[i].v}, {"id", vint(1)}};
    OK(db, oplog_tx_begin(db, "ev"));
    OK(db, oplog_tx_apply(db, &(oplog_op){.type = "ev", .kind = OPLOG_OP_UPDATE, .row = {u, 2}, .mask = mask,
                                          .nmask = 1, .nulls = nulls, .nnulls = i == 0}));
    OK(db, oplog_tx_commit(db, NULL, 0, &id));
    OK(db, oplog_entry_get(db, id, &e));
    r = e->ops[0].row.fields;
    CHECK(e->ops[0].kind == OPLOG_OP_UPDATE && e->ops[0].row.nfields == 2);
    CHECK(strcmp(r[0].name, "id") == 0 && r[0].value.type == OPLOG_INTEGER && r[0].value.u.i == 1);
    CHECK(strcmp(r[1].name, "n") == 0 && (int)r[1].value.type == upd[i].type);
    if (upd[i].type == OPLOG_REAL) CHECK(r[1].value.u.r == upd[i].num);
    if (upd[i].type == OPLOG_INTEGER) CHECK(r[1].value.u.i == (int64_t)upd[i].num);
    if (upd[i].type == OPLOG_TEXT) CHECK(strcmp(r[1].value.u.b.p, upd[i].text) == 0);
    CHECK(e->ops[0].nmask == 1 && strcmp(e->ops[0].mask[0], "n") == 0);
    CHECK(e->ops[0].nnulls == (i == 0 ? 1u : 0u));
    if (i == 0) CHECK(strcmp(e->ops[0].nulls[0], "at") == 0);
    oplog_entry_free(e);
  }
  CHECK(count_rows(p, "SELECT count(*) FROM ev WHERE id = 1 AND at IS NULL AND n = 'x1'") == 1);

  /* a second row with an explicit `at`, then a delete given more than the key: only the key is logged */
  oplog_field f2[] = {{"at", vtext("42")}, {"id", vint(5)}};
  oplog_field d[] = {{"n", vint(9)}, {"id", vint(1)}};
  OK(db, oplog_tx_begin(db, "ev"));
  OK(db, oplog_tx_apply(db, &(oplog_op){.type = "ev", .kind = OPLOG_OP_CREATE_ITEMS, .row = {f2, 2}}));
  OK(db, oplog_tx_apply(db, &(oplog_op){.type = "ev", .kind = OPLOG_OP_DELETE, .row = {d, 2}}));
  OK(db, oplog_tx_commit(db, NULL, 0, &id));
  OK(db, oplog_entry_get(db, id, &e));
  CHECK(e->nops == 2 && e->ops[0].row.nfields == 3);
  r = e->ops[0].row.fields;
  CHECK(r[0].value.type == OPLOG_INTEGER && r[0].value.u.i == 5 && r[1].value.type == OPLOG_INTEGER &&
        r[1].value.u.i == 42 && r[2].value.type == OPLOG_NULL);
  CHECK(e->ops[1].kind == OPLOG_OP_DELETE && e->ops[1].row.nfields == 1 &&
        strcmp(e->ops[1].row.fields[0].name, "id") == 0 && e->ops[1].row.fields[0].value.u.i == 1);
  oplog_entry_free(e);

  /* the log alone rebuilds the table, random() default included */
  oplog_verify_result vr;
  OK(db, oplog_verify(db, &(oplog_verify_opts){.replay = 1}, NULL, NULL, &vr));
  CHECK(vr.ok && vr.entries == 5);
  oplog_close(db);
}

/* A seeded log over three aggregates and the model of it the test keeps. */
#define FC_N 650
typedef struct fc_model {
  int agg[FC_N + 1]; /* 0 users, 1 stock, 2 sensors */
  int dev[FC_N + 1]; /* "dev" = d<dev>, -1: no metadata at all */
  int batch[FC_N + 1]; /* "batch" present, no value */
  int tag[FC_N + 1];   /* "tag" = t<tag>, -1: none */
} fc_model;
static const char *const fc_aggs[] = {"users", "stock", "sensors"};

static int fc_write(oplog_db *db, fc_model *m, int i, unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  unsigned x = *seed >> 8;
  int a = (int)(x % 3);
  m->agg[i] = a;
  m->dev[i] = x % 11 == 0 ? -1 : (int)(x / 3 % 5);
  m->batch[i] = m->dev[i] >= 0 && x / 15 % 7 == 0;
  m->tag[i] = m->dev[i] >= 0 && x / 105 % 2 ? (int)(x / 210 % 4) : -1;
  char dev[8], tag[8], name[16];
  snprintf(dev, sizeof dev, "d%d", m->dev[i]);
  snprintf(tag, sizeof tag, "t%d", m->tag[i]);
  snprintf(name, sizeof name, "n%d", i);
  oplog_meta md[3];
  size_t nmd = 0;
  if (m->dev[i] >= 0) md[nmd++] = (oplog_meta){"dev", dev};
  if (m->batch[i]) md[nmd++] = (oplog_meta){"batch", NULL};
  if (m->tag[i] >= 0) md[nmd++] = (oplog_meta){"tag", tag};
  oplog_field fu[] = {{"id", vint(i)}, {"name", vtext(name)}};
  oplog_field fs[] = {{"sku", vtext(name)}};
  oplog_field fr[] = {{"id", vint(i)}, {"v", vreal(i / 4.0)}};
  oplog_op op = a == 0   ? (oplog_op){.type = "user", .kind = OPLOG_OP_CREATE, .row = {fu, 2}}
                : a == 1 ? (oplog_op){.type = "item", .kind = OPLOG_OP_CREATE, .row = {fs, 1}}
                         : (oplog_op){.type = "reading", .kind = OPLOG_OP_CREATE, .row = {fr, 2}};
  int64_t id = 0;
  if (oplog_tx_begin(db, fc_aggs[a]) || oplog_tx_apply(db, &op) || oplog_tx_commit(db, md, nmd, &id) || id != i) {
    fprintf(stderr, "fc_write %d: %s\n", i, oplog_errmsg(db));
    return 0;
  }
  return 1;
}

typedef struct fc_query {
  int agg;                  /* -1: any */
  int dev, batch, tag;      /* -1: not filtered (batch: 1 = key present) */
  int64_t since, upto, limit;
  int reverse;
} fc_query;

/* The ids a query must return, from the model. */
static int fc_expect(const fc_model *m, int n, const fc_query *q, int64_t *ids) {
  int k = 0;
  for (int j = 0; j < n; j++) {
    int i = q->reverse ? n - j : j + 1;
    if ((q->agg >= 0 && m->agg[i] != q->agg) || (q->dev >= 0 && m->dev[i] != q->dev) ||
        (q->batch > 0 && !m->batch[i]) || (q->tag >= 0 && m->tag[i] != q->tag) || (q->since && i <= q->since) ||
        (q->upto && i > q->upto))
      continue;
    if (q->limit && k == q->limit) break;
    ids[k++] = i;
  }
  return k;
}

typedef struct fc_tally {
  const fc_model *m;
  int n, seen; /* aggregates whose counts were right */
} fc_tally;

static int fc_each_aggregate(void *ctx, const char *name, int64_t entries, int64_t ticket) {
  fc_tally *t = ctx;
  for (int a = 0; a < 3; a++)
    if (strcmp(name, fc_aggs[a]) == 0) {
      int64_t cnt = 0;
      for (int i = 1; i <= t->n; i++) cnt += t->m->agg[i] == a;
      if (entries == cnt && ticket == cnt + 1) t->seen++;
      else fprintf(stderr, "stats: %s %lld entries, ticket %lld; expected %lld\n", name, (long long)entries,
                   (long long)ticket, (long long)cnt);
    }
  return 0;
}

/* Runs every query on db and compares with the model; 1 if all agree. */
static int fc_check(oplog_db *db, const fc_model *m, int n, const char *when) {
  static const fc_query qs[] = {
      {0, -1, -1, -1, 0, 0, 0, 0},    {1, -1, -1, -1, 0, 0, 0, 0},    {2, -1, -1, -1, 0, 0, 0, 1},
      {-1, 2, -1, -1, 0, 0, 0, 0},    {-1, -1, 1, -1, 0, 0, 0, 0},    {-1, -1, -1, 3, 0, 0, 0, 1},
      {1, 1, -1, -1, 0, 0, 0, 0},     {0, -1, 1, -1, 100, 500, 0, 0}, {2, -1, -1, 3, 0, 0, 5, 1},
      {-1, 3, -1, 1, 0, 0, 0, 0},     {-1, 0, 1, 2, 0, 0, 0, 0},      {2, 4, -1, -1, 250, 0, 0, 1},
      {-1, -1, -1, -1, 200, 300, 0, 0}, {-1, 7, -1, -1, 0, 0, 0, 0}};
  static int64_t want[FC_N], got[FC_N];
  for (size_t k = 0; k < sizeof qs / sizeof *qs; k++) {
    const fc_query *q = &qs[k];
    char dev[8], tag[8];
    snprintf(dev, sizeof dev, "d%d", q->dev);
    snprintf(tag, sizeof tag, "t%d", q->tag);
    oplog_meta md[3];
    size_t nmd = 0;
    if (q->dev >= 0) md[nmd++] = (oplog_meta){"dev", dev};
    if (q->batch > 0) md[nmd++] = (oplog_meta){"batch", NULL};
    if (q->tag >= 0) md[nmd++] = (oplog_meta){"tag", tag};
    oplog_filter f = {.aggregate = q->agg >= 0 ? fc_aggs[q->agg] : NULL, .since = q->since, .upto = q->upto,
                      .metadata = md, .nmetadata = nmd, .limit = q->limit, .reverse = q->reverse};
    int nw = fc_expect(m, n, q, want), ng = 0;
    oplog_iter *it;
    if (oplog_entries(db, &f, &it)) {
      fprintf(stderr, "%s: query %zu: %s\n", when, k, oplog_errmsg(db));
      return 0;
    }
    const oplog_entry *e;
    int rc;
    while ((rc = oplog_iter_next(it, &e)) == OPLOG_OK && e && ng < FC_N) {
      /* the entry read is the one the model wrote */
      if (strcmp(e->aggregate, fc_aggs[m->agg[e->id]]) != 0) ng = FC_N;
      got[ng++] = e->id;
    }
    oplog_iter_close(it);
    if (rc || ng != nw || memcmp(got, want, (size_t)nw * sizeof *want) != 0) {
      fprintf(stderr, "%s: query %zu: %d entries, expected %d\n", when, k, ng, nw);
      return 0;
    }
  }
  /* and every ticket is 1 + the entries of its aggregate, by oplog_ticket and by the stats */
  fc_tally t = {m, n, 0};
  oplog_stats st;
  if (oplog_get_stats(db, &st, fc_each_aggregate, &t) || st.entries != n || t.seen != 3) {
    fprintf(stderr, "%s: stats: %lld entries, %d aggregates right\n", when, (long long)st.entries, t.seen);
    return 0;
  }
  for (int a = 0; a < 3; a++) {
    int64_t v = 0, cnt = 0;
    for (int i = 1; i <= n; i++) cnt += m->agg[i] == a;
    if (oplog_ticket(db, fc_aggs[a], &v) || v != cnt + 1) {
      fprintf(stderr, "%s: ticket %s %lld, expected %lld\n", when, fc_aggs[a], (long long)v, (long long)cnt + 1);
      return 0;
    }
  }
  return 1;
}

/* Filters by metadata and by aggregate answer completely whether the
 * entries lie above the derived tables (the tail) or below them, across
 * the catch-ups that happen while writing and the one at close. */
static void filters_complete_across_catchup(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  static const oplog_column icols[] = {{"sku", "TEXT PRIMARY KEY"}};
  static const oplog_column rcols[] = {{"id", "INTEGER PRIMARY KEY"}, {"v", "REAL"}};
  OK(db, oplog_define(db, &(oplog_type_spec){"item", NULL, "stock", icols, 1, NULL, 0}));
  OK(db, oplog_define(db, &(oplog_type_spec){"reading", NULL, "sensors", rcols, 2, NULL, 0}));
  static fc_model m;
  unsigned seed = 7;
  char *p = tpath("a.db");
  char why[256];
  static const int checkpoints[] = {100, 300, FC_N};
  int n = 0;
  oplog_db *reader = NULL;
  for (size_t c = 0; c < 3; c++) {
    while (n < checkpoints[c]) {
      n++;
      CHECK(fc_write(db, &m, n, &seed));
    }
    int64_t wm = count_rows(p, "SELECT value FROM oplog_config WHERE name = 'indexed_upto'");
    /* fewer than 256 entries above the derived tables; past 256, some below */
    CHECK(wm >= 0 && n - wm < 256 && (n < 256 || wm > 0) && wm < n);
    CHECK(check_derived(p, 0, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
    char when[64];
    snprintf(when, sizeof when, "writer after %d (indexed_upto %lld)", n, (long long)wm);
    CHECK(fc_check(db, &m, n, when));
    oplog_verify_result vr;
    OK(db, oplog_verify(db, NULL, NULL, NULL, &vr));
    CHECK(vr.ok && vr.entries == n);
    /* another handle reads the same file: same answers */
    if (!reader) CHECK((reader = open_plain("a.db")));
    snprintf(when, sizeof when, "reader after %d", n);
    CHECK(fc_check(reader, &m, n, when));
  }
  oplog_close(reader);
  oplog_close(db);
  CHECK(check_derived(p, 1, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  db = open_plain("a.db");
  CHECK(db);
  CHECK(fc_check(db, &m, n, "reopened"));
  oplog_close(db);
  /* read-only: nothing can catch up, the answers are the same */
  oplog_open_opts ro = {.readonly = 1};
  CHECK(oplog_open(p, &ro, &db) == OPLOG_OK);
  CHECK(fc_check(db, &m, n, "read-only"));
  oplog_close(db);
}

/* The file's origin: a 32-byte id made with the file and kept; seq and
 * clock count its entries one by one. */
static void origin_seq_clock(void) {
  static const unsigned char key[32] = {5, 4, 3};
  unsigned char zero[32] = {0}, id0[32];
  oplog_origin_info o;
  oplog_db *db = open_keyed("a.db", key);
  CHECK(db);
  OK(db, oplog_origin(db, &o));
  CHECK(memcmp(o.id, zero, 32) != 0 && o.seq == 0 && o.clock == 0 && o.head_id == 0 &&
        memcmp(o.head_hash, zero, 32) == 0);
  memcpy(id0, o.id, 32);
  char *p = tpath("a.db");
  /* the id is the file's origin no 1, in the clear */
  sqlite3 *s;
  sqlite3_stmt *st;
  CHECK(sqlite3_open_v2(p, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
  CHECK(sqlite3_prepare_v2(s, "SELECT id FROM oplog_origins WHERE no = 1", -1, &st, NULL) == SQLITE_OK);
  int same = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32 &&
             memcmp(sqlite3_column_blob(st, 0), id0, 32) == 0;
  sqlite3_finalize(st);
  sqlite3_close(s);
  CHECK(same);
  OK(db, define_user(db));
  for (int i = 1; i <= 5; i++) {
    char name[16];
    snprintf(name, sizeof name, "u%d", i);
    CHECK(write_user(db, i, name, i) == i);
    OK(db, oplog_origin(db, &o));
    CHECK(o.seq == i && o.clock == i && o.head_id == i && memcmp(o.id, id0, 32) == 0);
    int64_t hid;
    unsigned char h[32];
    OK(db, oplog_head(db, &hid, h));
    CHECK(hid == i && memcmp(h, o.head_hash, 32) == 0);
    oplog_entry *e;
    OK(db, oplog_entry_get(db, i, &e));
    CHECK(e->seq == i && e->clock == i && memcmp(e->origin, id0, 32) == 0);
    oplog_entry_free(e);
  }
  /* several entries in one SQLite transaction: one seq each */
  OK(db, oplog_tx_begin(db, "users"));
  for (int i = 6; i <= 8; i++) {
    char name[16];
    snprintf(name, sizeof name, "u%d", i);
    oplog_field f[] = {{"id", vint(i)}, {"name", vtext(name)}};
    OK(db, oplog_tx_apply(db, &(oplog_op){.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 2}}));
    int64_t eid;
    OK(db, oplog_tx_entry(db, NULL, 0, &eid));
    OK(db, oplog_origin(db, &o));
    CHECK(eid == i && o.seq == i && o.clock == i && o.head_id == i);
  }
  OK(db, oplog_tx_commit(db, NULL, 0, NULL));
  oplog_close(db);
  CHECK(count_rows(p, "SELECT count(*) FROM oplog_entries WHERE origin = 1 AND seq = id AND clock = id") == 8);
  /* stable across reopen, with the key and without it */
  db = open_keyed("a.db", key);
  CHECK(db);
  OK(db, oplog_origin(db, &o));
  CHECK(memcmp(o.id, id0, 32) == 0 && o.seq == 8 && o.clock == 8 && o.head_id == 8);
  CHECK(write_user(db, 9, "u9", 9) == 9);
  OK(db, oplog_origin(db, &o));
  CHECK(o.seq == 9 && o.clock == 9);
  oplog_close(db);
  oplog_open_opts keyless = {0};
  CHECK(oplog_open(p, &keyless, &db) == OPLOG_OK);
  OK(db, oplog_origin(db, &o));
  CHECK(memcmp(o.id, id0, 32) == 0 && o.seq == 9 && o.clock == 9 && o.head_id == 9);
  oplog_close(db);
  /* another file, another origin */
  db = open_plain("b.db");
  CHECK(db);
  OK(db, oplog_origin(db, &o));
  CHECK(memcmp(o.id, zero, 32) != 0 && memcmp(o.id, id0, 32) != 0 && o.seq == 0);
  oplog_close(db);
}

static int64_t agg_covered(const char *p, const char *agg) {
  char sql[200];
  snprintf(sql, sizeof sql, "SELECT version FROM oplog_ticket WHERE name = '%s'", agg);
  return count_rows(p, sql);
}

/* After oplog_close, plain SQL on the derived tables sees every entry. */
static void derived_complete_after_close(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  static const oplog_column icols[] = {{"sku", "TEXT PRIMARY KEY"}};
  OK(db, oplog_define(db, &(oplog_type_spec){"item", NULL, "stock", icols, 1, NULL, 0}));
  char *p = tpath("a.db");
  char why[256];
  int64_t pairs = 0, users = 0, stock = 0, n = 0;
  for (int round = 0; round < 2; round++) {
    int count = round == 0 ? 300 : 7; /* one catch-up while writing, then a short tail */
    for (int i = 0; i < count; i++) {
      n++;
      char name[32], v[32];
      snprintf(name, sizeof name, "x%lld", (long long)n);
      snprintf(v, sizeof v, "%lld", (long long)n);
      oplog_meta md[] = {{"n", v}, {"even", n % 2 ? NULL : "yes"}, {"flag", NULL}};
      size_t nmd = (size_t)(n % 4); /* 0 to 3 pairs */
      if (nmd > 3) nmd = 3;
      if (n % 3) {
        oplog_field f[] = {{"id", vint(n)}, {"name", vtext(name)}};
        OK(db, oplog_tx_begin(db, "users"));
        OK(db, oplog_tx_apply(db, &(oplog_op){.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 2}}));
        users++;
      } else {
        oplog_field f[] = {{"sku", vtext(name)}};
        OK(db, oplog_tx_begin(db, "stock"));
        OK(db, oplog_tx_apply(db, &(oplog_op){.type = "item", .kind = OPLOG_OP_CREATE, .row = {f, 1}}));
        stock++;
      }
      int64_t id;
      OK(db, oplog_tx_commit(db, md, nmd, &id));
      CHECK(id == n);
      pairs += (int64_t)nmd;
    }
    /* open: the file lags (consistently) */
    CHECK(check_derived(p, 0, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
    CHECK(count_rows(p, "SELECT count(*) FROM oplog_index") < n);
    oplog_close(db);
    CHECK(count_rows(p, "SELECT count(*) FROM oplog_entries") == n);
    CHECK(count_rows(p, "SELECT count(*) FROM oplog_index") == n);
    CHECK(count_rows(p, "SELECT count(DISTINCT entry_id) FROM oplog_index") == n);
    CHECK(count_rows(p, "SELECT count(*) FROM oplog_metadata") == pairs);
    CHECK(count_rows(p, "SELECT count(*) FROM oplog_metadata WHERE key = 'even' AND value = 'yes'") ==
          count_rows(p, "SELECT count(*) FROM oplog_entries WHERE id % 2 = 0 AND id % 4 >= 2"));
    CHECK(count_rows(p, "SELECT count(*) FROM oplog_index WHERE aggregate_name = 'users'") == users);
    CHECK(agg_covered(p, "users") == users + 1 && agg_covered(p, "stock") == stock + 1);
    CHECK(count_rows(p, "SELECT value FROM oplog_config WHERE name = 'indexed_upto'") == n);
    CHECK(count_rows(p, "SELECT value FROM oplog_config WHERE name = 'clock'") == n);
    CHECK(check_derived(p, 1, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
    if (round == 0) {
      db = open_plain("a.db");
      CHECK(db);
    }
  }
  /* what the library says agrees with the file */
  db = open_plain("a.db");
  CHECK(db);
  oplog_verify_result vr;
  OK(db, oplog_verify(db, NULL, NULL, NULL, &vr));
  CHECK(vr.ok && vr.entries == n);
  oplog_close(db);
}

/* A catch-up inside a transaction is part of it: rolled back with it, kept
 * with it. */
static void catchup_follows_its_transaction(void) {
  oplog_db *db = open_plain("a.db");
  CHECK(db);
  OK(db, define_user(db));
  char *p = tpath("a.db");
  char why[256];
  for (int round = 0; round < 2; round++) {
    OK(db, oplog_tx_begin(db, "users"));
    for (int i = 1; i <= 300; i++) {
      char name[16];
      snprintf(name, sizeof name, "u%d", i);
      oplog_field f[] = {{"id", vint(i)}, {"name", vtext(name)}};
      OK(db, oplog_tx_apply(db, &(oplog_op){.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 2}}));
      oplog_meta md[] = {{"i", name}};
      int64_t id;
      OK(db, oplog_tx_entry(db, md, 1, &id));
      CHECK(id == i);
    }
    int64_t v;
    OK(db, oplog_ticket(db, "users", &v));
    CHECK(v == 301);
    if (round == 0) {
      OK(db, oplog_tx_rollback(db));
      CHECK(count_rows(p, "SELECT count(*) FROM oplog_entries") == 0);
      CHECK(count_rows(p, "SELECT count(*) FROM oplog_index") == 0);
      CHECK(count_rows(p, "SELECT count(*) FROM oplog_metadata") == 0);
      CHECK(count_rows(p, "SELECT value FROM oplog_config WHERE name = 'indexed_upto'") == 0);
      CHECK(count_rows(p, "SELECT version FROM oplog_ticket WHERE name = 'users'") == 1);
      OK(db, oplog_ticket(db, "users", &v));
      CHECK(v == 1);
      oplog_origin_info o;
      OK(db, oplog_origin(db, &o));
      CHECK(o.seq == 0 && o.clock == 0 && o.head_id == 0);
    } else {
      OK(db, oplog_tx_commit(db, NULL, 0, NULL));
      /* caught up once, inside the transaction */
      int64_t wm = count_rows(p, "SELECT value FROM oplog_config WHERE name = 'indexed_upto'");
      CHECK(wm > 0 && wm < 300 && 300 - wm < 256);
      CHECK(check_derived(p, 0, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
      OK(db, oplog_ticket(db, "users", &v));
      CHECK(v == 301);
      oplog_meta last[] = {{"i", "u300"}}, first[] = {{"i", "u1"}};
      CHECK(collect_n(db, &(oplog_filter){.metadata = last, .nmetadata = 1}) == 1);
      CHECK(collect_n(db, &(oplog_filter){.metadata = first, .nmetadata = 1, .aggregate = "users"}) == 1);
    }
  }
  oplog_verify_result vr;
  OK(db, oplog_verify(db, NULL, NULL, NULL, &vr));
  CHECK(vr.ok && vr.entries == 300);
  oplog_close(db);
  CHECK(check_derived(p, 1, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
}

/* Two handles on one file take turns writing across catch-ups: each sees
 * the other's entries (seq, clock, ticket, head) and the file stays whole. */
static void two_writers_across_catchup(void) {
  oplog_db *h[2] = {open_plain("a.db"), NULL};
  CHECK(h[0]);
  OK(h[0], define_user(h[0]));
  h[1] = open_plain("a.db");
  CHECK(h[1]);
  char *p = tpath("a.db");
  char why[256];
  for (int i = 1; i <= 600; i++) {
    oplog_db *db = h[(i / 7) % 2]; /* runs of 7 */
    char name[16];
    snprintf(name, sizeof name, "u%d", i);
    int64_t v = 0;
    OK(db, oplog_ticket(db, "users", &v));
    CHECK(v == i);
    CHECK(write_user(db, i, name, i) == i);
    oplog_origin_info o;
    OK(db, oplog_origin(db, &o));
    CHECK(o.seq == i && o.clock == i && o.head_id == i);
  }
  CHECK(ref_check_chain(p, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  CHECK(check_derived(p, 0, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  CHECK(count_rows(p, "SELECT value FROM oplog_config WHERE name = 'indexed_upto'") > 256);
  oplog_meta m[] = {{"actor", "alice"}};
  CHECK(collect_n(h[1], &(oplog_filter){.metadata = m, .nmetadata = 1, .aggregate = "users"}) == 600);
  oplog_close(h[0]);
  oplog_close(h[1]);
  CHECK(check_derived(p, 1, why, sizeof why) || (fprintf(stderr, "%s\n", why), 0));
  CHECK(count_rows(p, "SELECT version FROM oplog_ticket WHERE name = 'users'") == 601);
}

/* The library's version is the headers' version, and the number is made of
 * its parts (major * 1000000 + minor * 1000 + patch). */
static void libversion_matches_header(void) {
  char buf[64];
  CHECK(strcmp(oplog_libversion(), OPLOG_VERSION) == 0);
  CHECK(oplog_libversion_number() == OPLOG_VERSION_NUMBER);
  CHECK(OPLOG_VERSION_NUMBER ==
        OPLOG_VERSION_MAJOR * 1000000 + OPLOG_VERSION_MINOR * 1000 + OPLOG_VERSION_PATCH);
  snprintf(buf, sizeof buf, "%d.%d.%d", OPLOG_VERSION_MAJOR, OPLOG_VERSION_MINOR,
           OPLOG_VERSION_PATCH);
  CHECK(strcmp(buf, OPLOG_VERSION) == 0);
#if OPLOG_VERSION_NUMBER < 3000
#error "OPLOG_VERSION_NUMBER must be usable in #if, and this is at least 0.3.0"
#endif
}

static const struct test_case cases[] = {
    {"entries_metadata_every_path", entries_metadata_every_path},
    {"tx_entry_batches", tx_entry_batches},
    {"open_creates_wal_schema", open_creates_wal_schema},
    {"open_errors", open_errors},
    {"schema_too_new", schema_too_new},
    {"readonly_refuses_writes", readonly_refuses_writes},
    {"define_idempotent_and_conflict", define_idempotent_and_conflict},
    {"define_stores_catalog", define_stores_catalog},
    {"invalid_names_rejected", invalid_names_rejected},
    {"tx_ops_roundtrip", tx_ops_roundtrip},
    {"tx_rowid_key_logged", tx_rowid_key_logged},
    {"tx_errors_roll_back", tx_errors_roll_back},
    {"type_bound_to_aggregate", type_bound_to_aggregate},
    {"ticket_conflict_two_handles", ticket_conflict_two_handles},
    {"entries_are_immutable", entries_are_immutable},
    {"entries_filters", entries_filters},
    {"decode_unknown_type", decode_unknown_type},
    {"entries_stream_flat_memory", entries_stream_flat_memory},
    {"values_types_and_blob_affinity", values_types_and_blob_affinity},
    {"stats_and_head", stats_and_head},
    {"logged_row_is_stored_row", logged_row_is_stored_row},
    {"filters_complete_across_catchup", filters_complete_across_catchup},
    {"origin_seq_clock", origin_seq_clock},
    {"derived_complete_after_close", derived_complete_after_close},
    {"catchup_follows_its_transaction", catchup_follows_its_transaction},
    {"two_writers_across_catchup", two_writers_across_catchup},
    {"libversion_matches_header", libversion_matches_header},
    {NULL, NULL}};

int main(int argc, char **argv) { return test_main(argc, argv, cases); }
