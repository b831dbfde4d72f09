/* test_converge.c — the total order and the live tables of merged files
 * (SPEC "Order and convergence"): fast-forward and late imports, each kind
 * of conflict, the same entries in any order, tickets, verify with replay
 * on merged and tampered files, reading in total order, a file from before
 * migration 003, and the laws of join as property tests over random
 * histories (fixed seeds; OPLOG_CONVERGE_SEEDS=n runs more). */
#include <sodium.h>

#include "testutil.h"

static const oplog_open_opts PLAIN = {.key = {.no_encryption = 1}};

/* ---------------------------------------------------------------- helpers */

static int define_note(oplog_db *db) {
  static const oplog_column cols[] = {{"k", "TEXT PRIMARY KEY"}, {"body", "TEXT"}};
  oplog_type_spec s = {"note", "notes", "notes", cols, 2, NULL, 0};
  return oplog_define(db, &s);
}

static oplog_db *open_file(const char *name) {
  oplog_db *db = open_plain(name);
  if (db && (define_user(db) || define_group(db) || define_note(db))) {
    oplog_close(db);
    return NULL;
  }
  return db;
}

/* One transaction of one operation; the entry id, 0 if refused. */
static int64_t tx1(oplog_db *db, const char *agg, const oplog_op *op) {
  int64_t id = 0;
  if (oplog_tx_begin(db, agg)) return 0;
  if (oplog_tx_apply(db, op) || oplog_tx_commit(db, NULL, 0, &id)) {
    if (oplog_tx_active(db)) oplog_tx_rollback(db);
    return 0;
  }
  return id;
}

static int64_t user_create(oplog_db *db, int64_t id, const char *name) {
  oplog_field f[] = {{"id", vint(id)}, {"name", vtext(name)}, {"age", vint(id * 10)}};
  oplog_op op = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 3}};
  return tx1(db, "users", &op);
}

static int64_t user_age(oplog_db *db, int64_t id, int64_t age) {
  static const char *const mask[] = {"age"};
  oplog_field f[] = {{"id", vint(id)}, {"age", vint(age)}};
  oplog_op op = {.type = "user", .kind = OPLOG_OP_UPDATE, .row = {f, 2}, .mask = mask, .nmask = 1};
  return tx1(db, "users", &op);
}

static int64_t user_delete(oplog_db *db, int64_t id) {
  oplog_field f[] = {{"id", vint(id)}};
  oplog_op op = {.type = "user", .kind = OPLOG_OP_DELETE, .row = {f, 1}};
  return tx1(db, "users", &op);
}

static int join(oplog_db *db, const char *other, oplog_import_result *res) {
  oplog_import_result ignored;
  return oplog_join(db, tpath(other), &PLAIN, NULL, res ? res : &ignored);
}

/* verify with replay: 1 ok, 0 problems (printed), -1 error. */
static int verify_ok(oplog_db *db) {
  oplog_verify_opts o = {.replay = 1};
  oplog_verify_result r;
  if (oplog_verify(db, &o, NULL, NULL, &r)) {
    fprintf(stderr, "verify: %s\n", oplog_errmsg(db));
    return -1;
  }
  return r.ok;
}

typedef struct problems {
  int n;
  char kinds[32][24];
  char detail[256];
} problems;

static int on_problem(void *ctx, int64_t id, const char *kind, const char *detail) {
  (void)id;
  problems *p = ctx;
  if (p->n < 32) snprintf(p->kinds[p->n], sizeof p->kinds[0], "%s", kind);
  snprintf(p->detail, sizeof p->detail, "%s", detail);
  p->n++;
  return 0;
}

static int found(const problems *p, const char *kind) {
  for (int i = 0; i < p->n && i < 32; i++)
    if (strcmp(p->kinds[i], kind) == 0) return 1;
  return 0;
}

/* Text of one raw query's rows (columns quoted, '|' between), malloc'd. */
static char *rows_text(const char *path, const char *sql) {
  sqlite3 *s = NULL;
  sqlite3_stmt *st = NULL;
  sqlite3_str *out = sqlite3_str_new(NULL);
  if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(st); i++)
        sqlite3_str_appendf(out, "%s%s", i ? "," : "", sqlite3_column_text(st, i) ? (const char *)sqlite3_column_text(st, i) : "NULL");
      sqlite3_str_appendall(out, "|");
    }
  } else {
    sqlite3_str_appendf(out, "ERROR %s", sqlite3_errmsg(s));
  }
  sqlite3_finalize(st);
  sqlite3_close(s);
  char *r = sqlite3_str_finish(out);
  char *copy = strdup(r ? r : "");
  sqlite3_free(r);
  return copy;
}

/* Everything join promises to make equal: live tables, heads, conflicts
 * (named by origin and seq: local ids differ between files). */
static char *state_of(const char *name) {
  static const char *const q[] = {
      "SELECT quote(id), quote(name), quote(age), quote(photo) FROM users ORDER BY id",
      "SELECT quote(id), quote(title) FROM groups ORDER BY id",
      "SELECT quote(k), quote(body) FROM notes ORDER BY k",
      "SELECT hex(o.id), max(e.seq), (SELECT hex(hash) FROM oplog_entries x WHERE x.origin = e.origin"
      " ORDER BY seq DESC LIMIT 1) FROM oplog_entries e JOIN oplog_origins o ON o.no = e.origin GROUP BY e.origin ORDER BY o.id",
      "SELECT hex(o.id), e.seq, c.op, c.kind, c.detail FROM oplog_conflicts c JOIN oplog_entries e ON e.id = c.entry_id"
      " JOIN oplog_origins o ON o.no = e.origin ORDER BY o.id, e.seq"};
  sqlite3_str *all = sqlite3_str_new(NULL);
  for (size_t i = 0; i < sizeof q / sizeof *q; i++) {
    char *t = rows_text(tpath(name), q[i]);
    sqlite3_str_appendf(all, "[%s]\n", t);
    free(t);
  }
  char *r = sqlite3_str_finish(all);
  char *copy = strdup(r ? r : "");
  sqlite3_free(r);
  return copy;
}

static int same_state(const char *a, const char *b) {
  char *x = state_of(a), *y = state_of(b);
  int same = strcmp(x, y) == 0;
  if (!same) fprintf(stderr, "%s:\n%s\n%s:\n%s\n", a, x, b, y);
  free(x);
  free(y);
  return same;
}

static int64_t conflicts_of(const char *name, const char *kind) {
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM oplog_conflicts WHERE kind = '%s'", kind);
  return count_rows(tpath(name), sql);
}

static int collect_conflict(void *ctx, const oplog_conflict *c) {
  oplog_conflict *out = ctx;
  out->entry_id = c->entry_id;
  out->op = c->op;
  out->kind = strcmp(c->kind, "exists") == 0 ? "exists" : strcmp(c->kind, "missing") == 0 ? "missing" : "constraint";
  return 0;
}

/* ---------------------------------------------------------------- cases */

/* B has nothing of its own: A's entries apply as they are. */
static void fast_forward(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db");
  CHECK(a && b);
  CHECK(user_create(a, 1, "ann") && user_create(a, 2, "bob") && user_age(a, 1, 33) && user_delete(a, 2));
  oplog_import_result r;
  OK(b, join(b, "a.db", &r));
  CHECK(r.entries == 4 && r.conflicts == 0);
  CHECK(count_rows(tpath("b.db"), "SELECT count(*) FROM users") == 1);
  CHECK(count_rows(tpath("b.db"), "SELECT age FROM users WHERE id = 1") == 33);
  CHECK(verify_ok(b) == 1);
  /* B's next local write sorts after everything it holds */
  CHECK(user_create(b, 3, "cy"));
  CHECK(count_rows(tpath("b.db"), "SELECT max(clock) FROM oplog_entries") == 5);
  OK(a, join(a, "b.db", &r));
  CHECK(r.entries == 1 && r.conflicts == 0);
  CHECK(same_state("a.db", "b.db"));
  CHECK(verify_ok(a) == 1);
  oplog_close(a);
  oplog_close(b);
}

/* Two devices write different rows at the same clocks: each import lands
 * between the receiver's own entries, and both end with every row. */
static void interleaved(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db");
  CHECK(a && b);
  for (int i = 0; i < 5; i++) {
    char n[16];
    snprintf(n, sizeof n, "a%d", i);
    CHECK(user_create(a, 10 + i, n));
    snprintf(n, sizeof n, "b%d", i);
    CHECK(user_create(b, 20 + i, n));
  }
  CHECK(user_age(a, 10, 1));
  CHECK(user_age(b, 20, 7));
  oplog_import_result r;
  OK(a, join(a, "b.db", &r));
  CHECK(r.entries == 6 && r.conflicts == 0);
  OK(b, join(b, "a.db", &r));
  CHECK(r.conflicts == 0);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM users") == 10);
  CHECK(same_state("a.db", "b.db"));
  CHECK(verify_ok(a) == 1 && verify_ok(b) == 1);
  oplog_close(a);
  oplog_close(b);
}

/* The same key created on two devices: the first in total order wins, the
 * other is skipped and recorded as "exists" on both files. */
static void conflict_exists(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db");
  CHECK(a && b);
  CHECK(user_create(a, 5, "from-a") && user_create(b, 5, "from-b"));
  oplog_import_result r;
  OK(a, join(a, "b.db", &r));
  OK(b, join(b, "a.db", NULL));
  CHECK(same_state("a.db", "b.db"));
  CHECK(conflicts_of("a.db", "exists") == 1 && conflicts_of("b.db", "exists") == 1);
  /* the winner: the lower origin id at clock 1 */
  oplog_origin_info oa, ob;
  OK(a, oplog_origin(a, &oa));
  OK(b, oplog_origin(b, &ob));
  const char *winner = memcmp(oa.id, ob.id, 32) < 0 ? "'from-a'" : "'from-b'";
  char *t = rows_text(tpath("a.db"), "SELECT quote(name) FROM users WHERE id = 5");
  char want[32];
  snprintf(want, sizeof want, "%s|", winner);
  CHECK(strcmp(t, want) == 0);
  free(t);
  /* the public reader */
  oplog_conflict c = {0};
  OK(a, oplog_conflicts(a, NULL, collect_conflict, &c));
  CHECK(c.entry_id > 0 && c.op == 1 && strcmp(c.kind, "exists") == 0);
  t = rows_text(tpath("a.db"), "SELECT detail FROM oplog_conflicts");
  CHECK(strstr(t, "user") && strstr(t, "(5)"));
  free(t);
  /* either b's entry lost, or a's own (no longer applied): one conflict */
  CHECK(r.conflicts == 1);
  CHECK(verify_ok(a) == 1 && verify_ok(b) == 1);
  oplog_close(a);
  oplog_close(b);
}

/* An update of a row deleted on another device, sorting after the delete. */
static void conflict_missing(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db");
  CHECK(a && b);
  CHECK(user_create(a, 1, "ann"));
  OK(b, join(b, "a.db", NULL));
  CHECK(user_delete(b, 1));                         /* clock 2 */
  CHECK(user_create(a, 2, "bob") && user_age(a, 1, 99)); /* clocks 2, 3 */
  oplog_import_result r;
  OK(b, join(b, "a.db", &r));
  CHECK(r.conflicts == 1);
  OK(a, join(a, "b.db", &r));
  CHECK(r.conflicts == 1); /* a's own update lost: recorded here too */
  CHECK(conflicts_of("a.db", "missing") == 1 && conflicts_of("b.db", "missing") == 1);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM users WHERE id = 1") == 0);
  CHECK(same_state("a.db", "b.db"));
  CHECK(verify_ok(a) == 1 && verify_ok(b) == 1);
  oplog_close(a);
  oplog_close(b);
}

/* Two rows with one UNIQUE name: the later one is a "constraint". */
static void conflict_constraint(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db");
  CHECK(a && b);
  CHECK(user_create(a, 1, "same") && user_create(b, 2, "same"));
  OK(a, join(a, "b.db", NULL));
  OK(b, join(b, "a.db", NULL));
  CHECK(conflicts_of("a.db", "constraint") == 1 && conflicts_of("b.db", "constraint") == 1);
  char *t = rows_text(tpath("a.db"), "SELECT detail FROM oplog_conflicts");
  CHECK(strstr(t, "UNIQUE constraint failed: users.name"));
  free(t);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM users") == 1);
  CHECK(same_state("a.db", "b.db"));
  CHECK(verify_ok(a) == 1 && verify_ok(b) == 1);
  oplog_close(a);
  oplog_close(b);
}

/* Three writers; two files receive their entries in opposite orders. */
static void any_order(void) {
  const char *w[] = {"w0.db", "w1.db", "w2.db"};
  oplog_db *d[3];
  for (int i = 0; i < 3; i++) CHECK((d[i] = open_file(w[i])));
  for (int i = 0; i < 3; i++) {
    char n[16];
    snprintf(n, sizeof n, "n%d", i);
    CHECK(user_create(d[i], 1, n));           /* same key everywhere: 2 exists */
    CHECK(user_create(d[i], 10 + i, "dup") || i > 0); /* same name: constraints */
    CHECK(user_age(d[i], 1, i));
  }
  oplog_db *x = open_file("x.db"), *y = open_file("y.db");
  CHECK(x && y);
  for (int i = 0; i < 3; i++) OK(x, join(x, w[i], NULL));
  for (int i = 2; i >= 0; i--) OK(y, join(y, w[i], NULL));
  CHECK(same_state("x.db", "y.db"));
  CHECK(count_rows(tpath("x.db"), "SELECT count(*) FROM oplog_conflicts") > 0);
  CHECK(verify_ok(x) == 1 && verify_ok(y) == 1);
  /* idempotent: everything again changes nothing */
  char *before = state_of("x.db");
  oplog_import_result r;
  for (int i = 0; i < 3; i++) {
    oplog_export_opts eo = {0};
    (void)eo;
    OK(x, join(x, w[i], &r));
    CHECK(r.entries == 0 && r.conflicts == 0);
  }
  char *after = state_of("x.db");
  CHECK(strcmp(before, after) == 0);
  free(before);
  free(after);
  for (int i = 0; i < 3; i++) oplog_close(d[i]);
  oplog_close(x);
  oplog_close(y);
}

/* Imported entries of an aggregate advance its ticket. */
static void tickets_advance(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db");
  CHECK(a && b);
  int64_t before = 0, after = 0;
  OK(a, oplog_ticket(a, "users", &before));
  CHECK(user_create(b, 1, "x") && user_create(b, 2, "y"));
  OK(a, join(a, "b.db", NULL));
  OK(a, oplog_ticket(a, "users", &after));
  CHECK(after == before + 2);
  /* a writer that read the old ticket loses */
  oplog_field f[] = {{"id", vint(3)}, {"name", vtext("z")}};
  oplog_op op = {.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 2}};
  oplog_entry_write w = {.aggregate = "users", .ticket = before, .ops = &op, .nops = 1};
  OK(a, oplog_begin(a));
  CHECK_RC(a, oplog_write_entry(a, &w, NULL), OPLOG_TICKET_CONFLICT);
  OK(a, oplog_rollback(a));
  oplog_close(a);
  oplog_close(b);
}

/* The skip rule undoes an entry whole: of an entry of two operations whose
 * second cannot apply, the first leaves nothing either (live and replay
 * alike, so verify{replay} alone would not see it). */
static void skip_undoes_whole_entry(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db");
  CHECK(a && b);
  CHECK(user_create(a, 5, "from-a")); /* clock 1: sorts before b's entry of two */
  CHECK(user_create(b, 1, "one"));    /* clock 1 */
  /* clock 2: create 7, then create 5, which a's entry makes "exists" */
  oplog_field f7[] = {{"id", vint(7)}, {"name", vtext("seven")}, {"age", vint(70)}};
  oplog_field f5[] = {{"id", vint(5)}, {"name", vtext("from-b")}, {"age", vint(50)}};
  oplog_op ops[] = {{.type = "user", .kind = OPLOG_OP_CREATE, .row = {f7, 3}},
                    {.type = "user", .kind = OPLOG_OP_CREATE, .row = {f5, 3}}};
  int64_t id = 0;
  OK(b, oplog_tx_begin(b, "users"));
  OK(b, oplog_tx_apply(b, &ops[0]));
  OK(b, oplog_tx_apply(b, &ops[1]));
  OK(b, oplog_tx_commit(b, NULL, 0, &id));
  CHECK(count_rows(tpath("b.db"), "SELECT count(*) FROM users WHERE id = 7") == 1);
  oplog_import_result r;
  OK(a, join(a, "b.db", &r)); /* a fast-forward at a */
  CHECK(r.conflicts == 1);
  OK(b, join(b, "a.db", &r)); /* at b: a's entry lands before b's own */
  CHECK(r.conflicts == 1);
  const char *files[] = {"a.db", "b.db"};
  for (int i = 0; i < 2; i++) {
    char *t = rows_text(tpath(files[i]), "SELECT id, name FROM users ORDER BY id");
    CHECK(strcmp(t, "1,one|5,from-a|") == 0 || (fprintf(stderr, "%s: %s\n", files[i], t), 0));
    free(t);
    t = rows_text(tpath(files[i]), "SELECT op, kind FROM oplog_conflicts");
    CHECK(strcmp(t, "2,exists|") == 0 || (fprintf(stderr, "%s: %s\n", files[i], t), 0));
    free(t);
  }
  CHECK(same_state("a.db", "b.db"));
  CHECK(verify_ok(a) == 1 && verify_ok(b) == 1);
  oplog_close(a);
  oplog_close(b);
}

/* Rows of a type with a two-column key, recomputed by a late import: each
 * row is found (touch index) and deleted (live table) by its whole key; a
 * row sharing the first key column, named by no entry after the new one,
 * stays. */
static int define_member(oplog_db *db) {
  static const oplog_column cols[] = {{"grp", "INTEGER NOT NULL"}, {"uid", "INTEGER NOT NULL"}, {"role", "TEXT"}};
  static const char *const key[] = {"grp", "uid"};
  oplog_type_spec s = {"member", "members", "members", cols, 3, key, 2};
  return oplog_define(db, &s);
}

static int64_t member(oplog_db *db, int kind, int64_t grp, int64_t uid, const char *role) {
  static const char *const mask[] = {"role"};
  oplog_field f[] = {{"grp", vint(grp)}, {"uid", vint(uid)}, {"role", vtext(role)}};
  oplog_op op = {.type = "member", .kind = kind, .row = {f, 3}};
  if (kind == OPLOG_OP_UPDATE) op.mask = mask, op.nmask = 1;
  return tx1(db, "members", &op);
}

static void composite_key_recomputed(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db");
  CHECK(a && b);
  OK(a, define_member(a));
  OK(b, define_member(b));
  CHECK(member(a, OPLOG_OP_CREATE, 1, 9, "a9"));            /* clock 1 */
  OK(b, join(b, "a.db", NULL));
  CHECK(member(b, OPLOG_OP_CREATE, 1, 3, "b3"));            /* clock 2 */
  CHECK(member(a, OPLOG_OP_CREATE, 1, 1, "a1") &&           /* clocks 2, 3, 4 */
        member(a, OPLOG_OP_CREATE, 1, 2, "a2") && member(a, OPLOG_OP_UPDATE, 1, 1, "a1+"));
  oplog_import_result r;
  OK(a, join(a, "b.db", &r)); /* b's entry (clock 2) sorts before a's clocks 3, 4 */
  CHECK(r.entries == 1 && r.conflicts == 0);
  OK(b, join(b, "a.db", &r));
  static const char *const want = "1,1,a1+|1,2,a2|1,3,b3|1,9,a9|";
  const char *files[] = {"a.db", "b.db"};
  for (int i = 0; i < 2; i++) {
    char *t = rows_text(tpath(files[i]), "SELECT grp, uid, role FROM members ORDER BY grp, uid");
    CHECK(strcmp(t, want) == 0 || (fprintf(stderr, "%s: %s\n", files[i], t), 0));
    free(t);
  }
  CHECK(verify_ok(a) == 1 && verify_ok(b) == 1);
  oplog_close(a);
  oplog_close(b);
}

/* The earliest new entry is the first in (clock, origin id, seq): two new
 * entries at one clock, the lower origin id's with the higher seq, both
 * apply. */
static void same_clock_new_entries(void) {
  oplog_db *p = open_file("p.db"), *q = open_file("q.db"), *r = open_file("r.db");
  CHECK(p && q && r);
  oplog_origin_info op, oq;
  OK(p, oplog_origin(p, &op));
  OK(q, oplog_origin(q, &oq));
  int p_low = memcmp(op.id, oq.id, 32) < 0;
  oplog_db *x = p_low ? p : q, *y = p_low ? q : p;
  const char *xn = p_low ? "p.db" : "q.db", *yn = p_low ? "q.db" : "p.db";
  CHECK(user_create(x, 1, "x1")); /* x: seq 1, clock 1 */
  OK(r, join(r, xn, NULL));
  OK(y, join(y, xn, NULL));
  CHECK(user_create(y, 2, "y1")); /* y: seq 1, clock 2 */
  CHECK(user_create(x, 3, "x2")); /* x: seq 2, clock 2 */
  OK(y, join(y, xn, NULL));
  oplog_import_result res;
  OK(r, join(r, yn, &res)); /* new at r: x's seq 2 and y's seq 1, both at clock 2 */
  CHECK(res.entries == 2 && res.conflicts == 0);
  char *t = rows_text(tpath("r.db"), "SELECT id, name FROM users ORDER BY id");
  CHECK(strcmp(t, "1,x1|2,y1|3,x2|") == 0 || (fprintf(stderr, "r.db: %s\n", t), 0));
  free(t);
  CHECK(verify_ok(r) == 1);
  oplog_close(p);
  oplog_close(q);
  oplog_close(r);
}

/* verify{replay} of a merged file finds a changed live row and conflicts
 * that disagree with the log. */
static void verify_tampered(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db");
  CHECK(a && b);
  CHECK(user_create(a, 5, "p") && user_create(b, 5, "q") && user_create(b, 6, "r"));
  OK(a, join(a, "b.db", NULL));
  CHECK(verify_ok(a) == 1);
  oplog_close(a);
  oplog_verify_opts o = {.replay = 1};
  oplog_verify_result res;
  problems p;
  /* a conflict forgotten */
  CHECK(exec_raw(tpath("a.db"), "CREATE TABLE saved AS SELECT * FROM oplog_conflicts; DELETE FROM oplog_conflicts") == 0);
  a = open_plain("a.db");
  memset(&p, 0, sizeof p);
  OK(a, oplog_verify(a, &o, on_problem, &p, &res));
  CHECK(!res.ok && found(&p, "conflict_mismatch"));
  oplog_close(a);
  /* a conflict invented */
  CHECK(exec_raw(tpath("a.db"), "INSERT INTO oplog_conflicts SELECT * FROM saved;"
                                "INSERT INTO oplog_conflicts SELECT max(id), 1, 'missing', 'x' FROM oplog_entries") == 0);
  a = open_plain("a.db");
  memset(&p, 0, sizeof p);
  OK(a, oplog_verify(a, &o, on_problem, &p, &res));
  CHECK(!res.ok && found(&p, "conflict_mismatch") && !found(&p, "live_mismatch"));
  oplog_close(a);
  /* a live row changed */
  CHECK(exec_raw(tpath("a.db"), "DELETE FROM oplog_conflicts WHERE detail = 'x'; UPDATE users SET age = 1 WHERE id = 6") == 0);
  a = open_plain("a.db");
  memset(&p, 0, sizeof p);
  OK(a, oplog_verify(a, &o, on_problem, &p, &res));
  CHECK(!res.ok && found(&p, "live_mismatch") && !found(&p, "conflict_mismatch"));
  oplog_close(a);
  oplog_close(b);
}

/* The touch index is checked against the entries (with the key): a
 * missing or forged row would make a later late import recompute the
 * wrong rows. */
static void verify_touches(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db");
  CHECK(a && b);
  CHECK(user_create(a, 5, "p") && user_create(b, 5, "q") && user_create(b, 6, "r") && user_age(b, 6, 7));
  OK(a, join(a, "b.db", NULL));
  CHECK(verify_ok(a) == 1);
  oplog_close(a);
  oplog_close(b);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_touches") == 4);
  oplog_verify_opts o = {0};
  oplog_verify_result res;
  problems p;
  /* a row missing: entry 4 (b's update of user 6) no longer names its row */
  CHECK(exec_raw(tpath("a.db"), "CREATE TABLE saved AS SELECT * FROM oplog_touches WHERE entry_id = 4;"
                                "DELETE FROM oplog_touches WHERE entry_id = 4") == 0);
  a = open_plain("a.db");
  memset(&p, 0, sizeof p);
  OK(a, oplog_verify(a, &o, on_problem, &p, &res));
  CHECK(!res.ok && p.n == 1 && found(&p, "index_mismatch") && strstr(p.detail, "lacks a row of entry 4 (type user)"));
  oplog_close(a);
  /* a row forged: entry 4 names user 5 as well */
  CHECK(exec_raw(tpath("a.db"), "INSERT INTO oplog_touches SELECT * FROM saved;"
                                "INSERT INTO oplog_touches SELECT type, key, 4 FROM oplog_touches WHERE entry_id = 1") == 0);
  a = open_plain("a.db");
  memset(&p, 0, sizeof p);
  OK(a, oplog_verify(a, &o, on_problem, &p, &res));
  CHECK(!res.ok && p.n == 1 && found(&p, "index_mismatch") && strstr(p.detail, "entry 4 (type user) that its operations do not name"));
  oplog_close(a);
  /* rows of an entry that does not exist, and above the watermark */
  CHECK(exec_raw(tpath("a.db"), "DELETE FROM oplog_touches WHERE entry_id = 4 AND key IN (SELECT key FROM oplog_touches WHERE entry_id = 1);"
                                "UPDATE oplog_config SET value = 3 WHERE name = 'touched_upto';"
                                "INSERT INTO oplog_touches SELECT type, key, 9 FROM saved") == 0);
  a = open_plain("a.db");
  memset(&p, 0, sizeof p);
  OK(a, oplog_verify(a, &o, on_problem, &p, &res));
  CHECK(!res.ok && p.n == 2 && strstr(p.detail, "entry 9, above its watermark 3"));
  oplog_close(a);
  /* put back, the file verifies again */
  CHECK(exec_raw(tpath("a.db"), "DELETE FROM oplog_touches WHERE entry_id > 3; INSERT INTO oplog_touches SELECT * FROM saved;"
                                "UPDATE oplog_config SET value = 4 WHERE name = 'touched_upto'; DROP TABLE saved") == 0);
  a = open_plain("a.db");
  CHECK(verify_ok(a) == 1);
  oplog_close(a);
}

static int stop_at_end(void *ctx, int64_t done, int64_t total) {
  (void)ctx;
  return total > 0 && done == total;
}

/* An import refused after its entries were applied leaves the handle's
 * caches as the file is: the origin number it gave the sender is given to
 * the next origin, which must not be read as the first one. */
static void refused_import_forgets_origins(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db"), *c = open_file("c.db");
  CHECK(a && b && c);
  CHECK(user_create(a, 1, "a") && user_create(b, 2, "b") && user_create(c, 3, "c"));
  oplog_origin_info oc;
  OK(c, oplog_origin(c, &oc));
  oplog_close(b);
  oplog_close(c);
  oplog_import_opts stop = {.progress = stop_at_end};
  oplog_import_result res;
  CHECK_RC(a, oplog_join(a, tpath("b.db"), &PLAIN, &stop, &res), OPLOG_INVALID_ARGUMENT);
  OK(a, join(a, "c.db", &res));
  CHECK(res.entries == 1);
  /* entry 2 is c's */
  oplog_filter f = {.since = 1};
  oplog_iter *it;
  const oplog_entry *e = NULL;
  OK(a, oplog_entries(a, &f, &it));
  CHECK(oplog_iter_next(it, &e) == OPLOG_OK && e && e->id == 2 && memcmp(e->origin, oc.id, 32) == 0);
  oplog_iter_close(it);
  CHECK(verify_ok(a) == 1);
  oplog_close(a);
}

/* An origin's clock grows with its seq, and leaves room for the clocks of
 * local writes to come: a stream saying otherwise is corrupt (its sender's
 * chain recomputed, so only the clocks are wrong), and the file unchanged. */
static void clock_checked_on_import(void) {
  static const struct {
    const char *sql, *why;
  } cases[] = {
      {"UPDATE oplog_entries SET clock = 1 WHERE id = 2", "clock 1, not above its previous entry's 1"},
      {"UPDATE oplog_entries SET clock = 9223372036854775807 WHERE id = 2", "clock out of range"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    oplog_db *a = open_file("a.db"), *b = open_file("b.db");
    CHECK(a && b);
    CHECK(user_create(a, 1, "a") && user_create(b, 2, "b") && user_age(b, 2, 3));
    oplog_close(b);
    char sql[512];
    snprintf(sql, sizeof sql, "DROP TRIGGER IF EXISTS oplog_entries_no_update; %s", cases[i].sql);
    CHECK(exec_raw(tpath("b.db"), sql) == 0 && ref_rehash_all(tpath("b.db")) == 0);
    CHECK_RC(a, join(a, "b.db", NULL), OPLOG_CORRUPT);
    CHECK(strstr(oplog_errmsg(a), cases[i].why) || (fprintf(stderr, "%s\n", oplog_errmsg(a)), 0));
    CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_entries") == 1);
    oplog_close(a);
    CHECK(remove(tpath("a.db")) == 0 && remove(tpath("b.db")) == 0);
  }
}

/* The same backwards clock written into a stored file (entry, index and
 * the clock setting agreeing, every hash recomputed) is what verify
 * reports, as chain_break and nothing else: import would have refused it. */
static void clock_checked_by_verify(void) {
  static const char *const sql[] = {
      "UPDATE oplog_entries SET clock = 1 WHERE id = 2; UPDATE oplog_index SET clock = 1 WHERE entry_id = 2;"
      " UPDATE oplog_config SET value = 1 WHERE name = 'clock'", /* equal to its previous entry's */
      "UPDATE oplog_entries SET clock = 5 WHERE id = 1; UPDATE oplog_index SET clock = 5 WHERE entry_id = 1;"
      " UPDATE oplog_config SET value = 5 WHERE name = 'clock'", /* below it */
  };
  for (size_t i = 0; i < sizeof sql / sizeof *sql; i++) {
    oplog_db *b = open_file("b.db");
    CHECK(b);
    CHECK(user_create(b, 2, "b") && user_age(b, 2, 3));
    CHECK(verify_ok(b) == 1);
    oplog_close(b);
    char q[512];
    snprintf(q, sizeof q, "DROP TRIGGER IF EXISTS oplog_entries_no_update; DROP TRIGGER IF EXISTS oplog_index_no_update; %s",
             sql[i]);
    CHECK(exec_raw(tpath("b.db"), q) == 0 && ref_rehash_all(tpath("b.db")) == 0);
    b = open_plain("b.db");
    CHECK(b);
    problems p;
    memset(&p, 0, sizeof p);
    oplog_verify_opts o = {.replay = 1};
    oplog_verify_result res;
    OK(b, oplog_verify(b, &o, on_problem, &p, &res));
    CHECK((!res.ok && p.n == 1 && found(&p, "chain_break") && strstr(p.detail, "entry 2 has clock")) ||
          (fprintf(stderr, "%d problems, last: %s\n", p.n, p.detail), 0));
    oplog_close(b);
    CHECK(remove(tpath("b.db")) == 0);
  }
}

/* entries{order_total}: every entry once, in (clock, origin id, seq). */
static void order_total(void) {
  oplog_db *a = open_file("a.db"), *b = open_file("b.db");
  CHECK(a && b);
  for (int i = 0; i < 300; i++) { /* past a catch-up of the derived tables */
    char n[16];
    snprintf(n, sizeof n, "a%d", i);
    CHECK(user_create(a, 1000 + i, n));
    if (i % 3 == 0) {
      snprintf(n, sizeof n, "b%d", i);
      CHECK(user_create(b, 5000 + i, n));
    }
  }
  OK(a, join(a, "b.db", NULL));
  CHECK(user_create(a, 1, "last"));
  for (int rev = 0; rev < 2; rev++) {
    oplog_filter f = {.order_total = 1, .reverse = rev};
    oplog_iter *it;
    OK(a, oplog_entries(a, &f, &it));
    const oplog_entry *e;
    int64_t n = 0, pc = 0, ps = 0;
    unsigned char po[32] = {0};
    while (oplog_iter_next(it, &e) == OPLOG_OK && e) {
      if (n) {
        int c = e->clock != pc ? (e->clock < pc ? -1 : 1) : memcmp(e->origin, po, 32) ? memcmp(e->origin, po, 32) : (int)(e->seq - ps);
        CHECK(rev ? c < 0 : c > 0);
      }
      pc = e->clock, ps = e->seq;
      memcpy(po, e->origin, 32);
      n++;
    }
    oplog_iter_close(it);
    CHECK(n == 300 + 100 + 1);
  }
  oplog_close(a);
  oplog_close(b);
}

/* A file at schema level 2 (before sync) reads read-only as it is, and a
 * writable open migrates it: the derived index rebuilt, verify clean. */
static void from_level2(void) {
  oplog_db *a = open_file("a.db");
  CHECK(a);
  for (int i = 1; i <= 300; i++) {
    char n[16];
    snprintf(n, sizeof n, "u%d", i);
    CHECK(user_create(a, i, n));
  }
  oplog_close(a);
  CHECK(exec_raw(tpath("a.db"),
                 "DROP TABLE oplog_conflicts; DROP TABLE oplog_checkpoints; DROP TABLE oplog_touches;"
                 "DELETE FROM oplog_config WHERE name = 'touched_upto'; DROP TRIGGER oplog_index_no_update;"
                 "DROP TRIGGER oplog_index_no_delete; CREATE TABLE ix AS SELECT entry_id, origin, seq, aggregate_name FROM oplog_index;"
                 "DROP TABLE oplog_index; CREATE TABLE oplog_index (entry_id INTEGER PRIMARY KEY, origin INTEGER NOT NULL,"
                 " seq INTEGER NOT NULL, aggregate_name TEXT NOT NULL) STRICT; INSERT INTO oplog_index SELECT * FROM ix; DROP TABLE ix;"
                 "CREATE UNIQUE INDEX oplog_index_origin_seq ON oplog_index (origin, seq);"
                 "CREATE INDEX oplog_index_aggregate ON oplog_index (aggregate_name, entry_id);"
                 "CREATE TRIGGER oplog_index_no_update BEFORE UPDATE ON oplog_index"
                 " BEGIN SELECT RAISE(ABORT, 'oplog_index is append-only'); END;"
                 "CREATE TRIGGER oplog_index_no_delete BEFORE DELETE ON oplog_index"
                 " BEGIN SELECT RAISE(ABORT, 'oplog_index is append-only'); END; PRAGMA user_version = 2") == 0);
  oplog_open_opts ro = PLAIN;
  ro.readonly = 1;
  OK(NULL, oplog_open(tpath("a.db"), &ro, &a));
  oplog_filter f = {.order_total = 1};
  oplog_iter *it;
  OK(a, oplog_entries(a, &f, &it));
  const oplog_entry *e;
  int64_t n = 0;
  while (oplog_iter_next(it, &e) == OPLOG_OK && e) CHECK(e->id == ++n);
  oplog_iter_close(it);
  CHECK(n == 300);
  oplog_conflict c = {0};
  OK(a, oplog_conflicts(a, NULL, collect_conflict, &c));
  CHECK(c.entry_id == 0);
  CHECK(verify_ok(a) == 1);
  oplog_close(a);
  CHECK(count_rows(tpath("a.db"), "PRAGMA user_version") == 2);
  a = open_plain("a.db");
  CHECK(a);
  CHECK(count_rows(tpath("a.db"), "PRAGMA user_version") == 3);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM oplog_index WHERE clock = seq") == 300);
  CHECK(verify_ok(a) == 1);
  /* the touch index lags until a late import catches it up */
  oplog_db *b = open_file("b.db");
  CHECK(b && user_create(b, 7, "late-b"));
  oplog_import_result r;
  OK(a, join(a, "b.db", &r));
  CHECK(r.conflicts == 1); /* b's create of 7 (clock 1) sorts first: a's own entry 7 is skipped */
  char *t = rows_text(tpath("a.db"), "SELECT name FROM users WHERE id = 7");
  CHECK(strcmp(t, "late-b|") == 0);
  free(t);
  CHECK(count_rows(tpath("a.db"), "SELECT value FROM oplog_config WHERE name = 'touched_upto'") == 301);
  CHECK(verify_ok(a) == 1);
  oplog_close(a);
  oplog_close(b);
}

/* ---------------------------------------------------------------- the laws, over random histories */

static uint64_t rnd_state;
static uint32_t rnd(uint32_t n) {
  rnd_state = rnd_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (uint32_t)(rnd_state >> 33) % n;
}

#define NF_MAX 5

/* One random local transaction of 1-3 operations on overlapping keys of
 * two aggregates; refused ones (a local error) roll back and count for
 * nothing. Returns 1 when an entry was acknowledged. */
static int random_tx(oplog_db *db) {
  int notes = rnd(3) == 0;
  if (oplog_tx_begin(db, notes ? "notes" : "users")) return 0;
  int nops = 1 + (int)rnd(3), failed = 0;
  char name[16], body[16];
  for (int i = 0; i < nops && !failed; i++) {
    int kind = 1 + (int)rnd(3);
    oplog_field f[3];
    oplog_op op = {.kind = kind};
    static const char *const age[] = {"age"}, *const title[] = {"title"}, *const bodym[] = {"body"};
    static const char *const keys[] = {"a", "b", "c", "d"};
    if (notes) {
      snprintf(body, sizeof body, "b%u", rnd(100));
      f[0] = (oplog_field){"k", vtext(keys[rnd(4)])};
      f[1] = (oplog_field){"body", vtext(body)};
      op.type = "note";
      op.row = (oplog_row){f, kind == OPLOG_OP_DELETE ? 1 : 2};
      if (kind == OPLOG_OP_UPDATE) op.mask = bodym, op.nmask = 1;
    } else if (rnd(3) == 0) {
      f[0] = (oplog_field){"id", vint(1 + rnd(4))};
      snprintf(body, sizeof body, "t%u", rnd(100));
      f[1] = (oplog_field){"title", vtext(body)};
      op.type = "group";
      op.row = (oplog_row){f, kind == OPLOG_OP_DELETE ? 1 : 2};
      if (kind == OPLOG_OP_UPDATE) op.mask = title, op.nmask = 1;
    } else {
      f[0] = (oplog_field){"id", vint(1 + rnd(6))};
      snprintf(name, sizeof name, "n%u", rnd(8));
      f[1] = (oplog_field){"name", vtext(name)};
      f[2] = (oplog_field){"age", vint(rnd(90))};
      op.type = "user";
      if (kind == OPLOG_OP_CREATE) op.row = (oplog_row){f, 3};
      else if (kind == OPLOG_OP_UPDATE) f[1] = f[2], op.row = (oplog_row){f, 2}, op.mask = age, op.nmask = 1;
      else op.row = (oplog_row){f, 1};
    }
    failed = oplog_tx_apply(db, &op) != OPLOG_OK;
  }
  if (failed) return 0; /* the failed apply rolled the transaction back */
  int64_t id = 0;
  return oplog_tx_commit(db, NULL, 0, &id) == OPLOG_OK && id > 0;
}

typedef struct mem {
  unsigned char *p;
  size_t n, cap, pos;
} mem;

static int mem_write(void *ctx, const void *p, size_t n) {
  mem *m = ctx;
  if (m->n + n > m->cap) {
    size_t cap = m->cap ? m->cap : 4096;
    while (cap < m->n + n) cap *= 2;
    unsigned char *g = realloc(m->p, cap);
    if (!g) return -1;
    m->p = g;
    m->cap = cap;
  }
  memcpy(m->p + m->n, p, n);
  m->n += n;
  return 0;
}

static int mem_read(void *ctx, void *p, size_t n, size_t *got) {
  mem *m = ctx;
  size_t left = m->n - m->pos;
  *got = n < left ? n : left;
  memcpy(p, m->p + m->pos, *got);
  m->pos += *got;
  return 0;
}

static int64_t histories_conflicts; /* the histories did reach the skip rule */

/* One history: nf files, random writes and syncs, verify after each sync;
 * then everyone gets everything, and the laws are checked. */
static int history(uint64_t seed, int nf, int steps) {
  char name[NF_MAX][16];
  oplog_db *d[NF_MAX];
  int64_t acked[NF_MAX] = {0};
  rnd_state = seed;
  int ok = 0;
  for (int i = 0; i < nf; i++) {
    snprintf(name[i], sizeof name[i], "s%d.db", i);
    unlink(tpath(name[i]));
    if (!(d[i] = open_file(name[i]))) return 0;
  }
  for (int step = 0; step < steps; step++) {
    int i = (int)rnd((uint32_t)nf), j = (int)rnd((uint32_t)nf);
    if (rnd(3)) {
      acked[i] += random_tx(d[i]);
      continue;
    }
    if (i == j) continue;
    oplog_import_result r;
    int rc;
    if (rnd(2)) {
      rc = join(d[j], name[i], &r);
    } else {
      /* export beyond the receiver's cursor, import */
      char *cur = NULL;
      mem m = {0};
      rc = oplog_cursor(d[j], &cur);
      if (!rc) {
        oplog_export_opts eo = {.since = cur};
        rc = oplog_export(d[i], &eo, mem_write, &m, NULL);
      }
      oplog_free(cur);
      if (!rc) rc = oplog_import(d[j], NULL, mem_read, &m, &r);
      free(m.p);
    }
    if (rc) {
      fprintf(stderr, "seed %llu step %d: sync %d -> %d: %s\n", (unsigned long long)seed, step, i, j, oplog_errmsg(d[j]));
      goto out;
    }
    if (verify_ok(d[j]) != 1) {
      fprintf(stderr, "seed %llu step %d: %s does not verify after a sync from %s\n", (unsigned long long)seed, step,
              name[j], name[i]);
      goto out;
    }
  }
  /* everyone gets everything: two rounds of joins in a random order */
  for (int round = 0; round < 2; round++)
    for (int k = 0; k < nf * nf; k++) {
      int i = (int)rnd((uint32_t)nf), j = (int)rnd((uint32_t)nf);
      if (i != j && join(d[j], name[i], NULL)) goto out;
    }
  for (int i = 0; i < nf; i++)
    for (int j = 0; j < nf; j++)
      if (i != j && join(d[j], name[i], NULL)) goto out;
  for (int i = 0; i < nf; i++) {
    if (verify_ok(d[i]) != 1) {
      fprintf(stderr, "seed %llu: %s does not verify at the end\n", (unsigned long long)seed, name[i]);
      goto out;
    }
    /* no acknowledged entry lost: each origin's seqs everywhere */
    oplog_origin_info o;
    if (oplog_origin(d[i], &o) || o.seq != acked[i]) goto out;
  }
  for (int i = 1; i < nf; i++)
    if (!same_state(name[0], name[i])) {
      fprintf(stderr, "seed %llu: %s and %s differ\n", (unsigned long long)seed, name[0], name[i]);
      goto out;
    }
  /* idempotent: importing everything again changes nothing */
  char *before = state_of(name[0]);
  oplog_import_result r;
  int same = join(d[0], name[nf - 1], &r) == OPLOG_OK && r.entries == 0 && r.conflicts == 0;
  char *after = state_of(name[0]);
  same = same && strcmp(before, after) == 0;
  free(before);
  free(after);
  if (!same) goto out;
  histories_conflicts += count_rows(tpath(name[0]), "SELECT count(*) FROM oplog_conflicts");
  ok = 1;
out:
  for (int i = 0; i < nf; i++) oplog_close(d[i]);
  return ok;
}

static void laws(void) {
  const char *env = getenv("OPLOG_CONVERGE_SEEDS");
  int seeds = env ? atoi(env) : 4;
  for (int s = 0; s < seeds; s++) {
    int nf = 3 + s % 3;
    CHECK(history(0x5eed0000ULL + (uint64_t)s, nf, 60));
  }
  CHECK(histories_conflicts > 0);
}

static const struct test_case cases[] = {
    {"fast_forward", fast_forward},
    {"interleaved", interleaved},
    {"conflict_exists", conflict_exists},
    {"conflict_missing", conflict_missing},
    {"conflict_constraint", conflict_constraint},
    {"any_order", any_order},
    {"tickets_advance", tickets_advance},
    {"skip_undoes_whole_entry", skip_undoes_whole_entry},
    {"composite_key_recomputed", composite_key_recomputed},
    {"same_clock_new_entries", same_clock_new_entries},
    {"verify_tampered", verify_tampered},
    {"verify_touches", verify_touches},
    {"refused_import_forgets_origins", refused_import_forgets_origins},
    {"clock_checked_on_import", clock_checked_on_import},
    {"clock_checked_by_verify", clock_checked_by_verify},
    {"order_total", order_total},
    {"from_level2", from_level2},
    {"laws", laws},
    {NULL, NULL},
};

int main(int argc, char **argv) { return test_main(argc, argv, cases); }
