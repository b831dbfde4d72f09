/* test_chain.c — replay, the hash chain and verification (issue 5): each
 * kind of tampering done with SQL on the file, random single-byte
 * corruptions, and a seeded random workload replayed into suffix tables
 * and into another file. */
#include "testutil.h"

static const unsigned char KEY[32] = {7, 7, 7};

typedef struct problems {
  int n;
  char kinds[64][24];
  int64_t ids[64];
  char last_detail[256];
} problems;

static int on_problem(void *ctx, int64_t id, const char *kind, const char *detail) {
  problems *p = ctx;
  if (p->n < 64) {
    snprintf(p->kinds[p->n], sizeof p->kinds[0], "%s", kind);
    p->ids[p->n] = id;
  }
  snprintf(p->last_detail, sizeof p->last_detail, "%s", detail);
  p->n++;
  return 0;
}

static int has(const problems *p, const char *kind, int64_t id) {
  for (int i = 0; i < p->n && i < 64; i++)
    if (strcmp(p->kinds[i], kind) == 0 && (id < 0 || p->ids[i] == id)) return 1;
  return 0;
}

static oplog_db *reopen(void) { return open_keyed("a.db", KEY); }

/* A log of 5 entries over users. */
static int make_log(void) {
  oplog_db *db = reopen();
  if (!db || define_user(db)) return 0;
  for (int i = 1; i <= 5; i++) {
    char n[16];
    snprintf(n, sizeof n, "user%d", i);
    if (write_user(db, i, n, 20 + i) != i) return 0;
  }
  oplog_close(db);
  return 1;
}

static int verify(problems *p, const oplog_verify_opts *o) {
  memset(p, 0, sizeof *p);
  oplog_db *db = reopen();
  if (!db) return -1;
  oplog_verify_result r;
  int rc = oplog_verify(db, o, on_problem, p, &r);
  if (rc) fprintf(stderr, "verify: %s\n", oplog_errmsg(db));
  oplog_close(db);
  if (rc) return -1;
  if ((r.problems == 0) != (r.ok == 1) || r.problems != p->n) return -1;
  return r.ok;
}

/* As an attacker would: triggers dropped first. */
static int attack(const char *sql) {
  char buf[2048];
  snprintf(buf, sizeof buf,
           "DROP TRIGGER oplog_entries_no_update; DROP TRIGGER oplog_entries_no_delete;"
           "DROP TRIGGER oplog_metadata_no_update; DROP TRIGGER oplog_metadata_no_delete; %s",
           sql);
  return exec_raw(tpath("a.db"), buf);
}

static void clean_log_ok(void) {
  CHECK(make_log());
  problems p;
  CHECK(verify(&p, NULL) == 1);
  oplog_verify_opts o = {.replay = 1};
  CHECK(verify(&p, &o) == 1);
  oplog_db *db = reopen();
  int64_t id;
  unsigned char h[32];
  OK(db, oplog_head(db, &id, h));
  oplog_close(db);
  CHECK(id == 5);
  o.head = h;
  CHECK(verify(&p, &o) == 1);
}

static void detects_changed_entry(void) {
  CHECK(make_log());
  CHECK(attack("UPDATE oplog_entries SET created = created + 1 WHERE id = 3") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 0);
  CHECK(has(&p, "hash_mismatch", 3));
}

static void detects_changed_metadata(void) {
  CHECK(make_log());
  CHECK(attack("UPDATE oplog_metadata SET value = 'mallory' WHERE entry_id = 2 AND seq = 1") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 0);
  CHECK(has(&p, "hash_mismatch", 2) && p.n == 1);
}

static void detects_added_metadata(void) {
  CHECK(make_log());
  CHECK(attack("INSERT INTO oplog_metadata VALUES (4, 9, 'approved', 'yes')") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 0);
  CHECK(has(&p, "hash_mismatch", 4));
}

static void detects_deleted_entry(void) {
  CHECK(make_log());
  CHECK(attack("DELETE FROM oplog_metadata WHERE entry_id = 3; DELETE FROM oplog_entries WHERE id = 3") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 0);
  CHECK(has(&p, "missing_entry", 4));
  CHECK(has(&p, "chain_break", 4));
}

static void detects_reordered_entries(void) {
  CHECK(make_log());
  CHECK(attack("UPDATE oplog_entries SET id = -2 WHERE id = 2; UPDATE oplog_entries SET id = 2 WHERE id = 3;"
               "UPDATE oplog_entries SET id = 3 WHERE id = -2;"
               "UPDATE oplog_metadata SET entry_id = -2 WHERE entry_id = 2;"
               "UPDATE oplog_metadata SET entry_id = 2 WHERE entry_id = 3;"
               "UPDATE oplog_metadata SET entry_id = 3 WHERE entry_id = -2") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 0);
  CHECK(has(&p, "chain_break", 2) && has(&p, "chain_break", 3));
}

static void detects_cut_tail(void) {
  CHECK(make_log());
  oplog_db *db = reopen();
  int64_t id;
  unsigned char h[32];
  OK(db, oplog_head(db, &id, h));
  oplog_close(db);
  CHECK(attack("DELETE FROM oplog_metadata WHERE entry_id >= 4; DELETE FROM oplog_entries WHERE id >= 4") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 1); /* without the head, a cut tail looks like a shorter log */
  oplog_verify_opts o = {.head = h};
  CHECK(verify(&p, &o) == 0);
  CHECK(has(&p, "head_mismatch", 0));
}

static void detects_live_edits(void) {
  CHECK(make_log());
  CHECK(exec_raw(tpath("a.db"), "UPDATE users SET age = 99 WHERE id = 2; DELETE FROM users WHERE id = 4;"
                                "INSERT INTO users (id, name) VALUES (77, 'ghost')") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 1);
  oplog_verify_opts o = {.replay = 1};
  CHECK(verify(&p, &o) == 0);
  CHECK(p.n == 3 && has(&p, "live_mismatch", 0));
  CHECK(strstr(p.last_detail, "users"));
}

static void detects_undecryptable_entry(void) {
  CHECK(make_log());
  /* another row's ciphertext moved here: the chain and the AEAD both object */
  CHECK(attack("UPDATE oplog_entries SET data = (SELECT data FROM oplog_entries WHERE id = 5) WHERE id = 1") == 0);
  problems p;
  CHECK(verify(&p, NULL) == 0);
  CHECK(has(&p, "decrypt_failed", 1) && has(&p, "hash_mismatch", 1));
}

/* Every single-byte change of stored entry bytes is detected. */
static void random_byte_corruptions(void) {
  CHECK(make_log());
  srand(1234);
  static const char *cols[] = {"data", "hash", "prev_hash", "aggregate"};
  int detected = 0, tried = 0;
  for (int round = 0; round < 40; round++) {
    /* rebuild from a pristine copy */
    char cmd[1400];
    if (round == 0) {
      snprintf(cmd, sizeof cmd, "cp '%s' '%s'", tpath("a.db"), tpath("pristine.db"));
      oplog_db *db = reopen(); /* checkpoint the WAL into the main file */
      oplog_close(db);
      CHECK(exec_raw(tpath("a.db"), "PRAGMA wal_checkpoint(TRUNCATE)") == 0);
      CHECK(system(cmd) == 0);
    } else {
      snprintf(cmd, sizeof cmd, "cp '%s' '%s' && rm -f '%s-wal' '%s-shm'", tpath("pristine.db"), tpath("a.db"),
               tpath("a.db"), tpath("a.db"));
      CHECK(system(cmd) == 0);
    }
    int id = 1 + rand() % 5;
    const char *col = cols[rand() % 4];
    /* flip bits of one stored byte with a raw connection */
    sqlite3 *s;
    CHECK(sqlite3_open(tpath("a.db"), &s) == SQLITE_OK);
    CHECK(sqlite3_exec(s, "DROP TRIGGER oplog_entries_no_update", NULL, NULL, NULL) == SQLITE_OK);
    char q[200];
    snprintf(q, sizeof q, "SELECT %s FROM oplog_entries WHERE id = %d", col, id);
    sqlite3_stmt *st;
    CHECK(sqlite3_prepare_v2(s, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW);
    int n = sqlite3_column_bytes(st, 0);
    unsigned char *b = malloc((size_t)n + 1);
    memcpy(b, sqlite3_column_blob(st, 0), (size_t)n);
    sqlite3_finalize(st);
    int pos = rand() % n;
    b[pos] = (unsigned char)(b[pos] ^ (1 + rand() % 255));
    snprintf(q, sizeof q, "UPDATE oplog_entries SET %s = ?1 WHERE id = %d", col, id);
    CHECK(sqlite3_prepare_v2(s, q, -1, &st, NULL) == SQLITE_OK);
    if (strcmp(col, "aggregate") == 0) sqlite3_bind_text(st, 1, (char *)b, n, SQLITE_TRANSIENT);
    else sqlite3_bind_blob(st, 1, b, n, SQLITE_TRANSIENT);
    CHECK(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(s);
    free(b);
    problems p;
    tried++;
    if (verify(&p, NULL) == 0) detected++;
    else fprintf(stderr, "undetected: %s of entry %d byte %d\n", col, id, pos);
  }
  CHECK(tried == 40 && detected == tried);
}

/* ---------------------------------------------------------------- replay */

static void replay_suffix_and_into(void) {
  CHECK(make_log());
  oplog_db *db = reopen();
  oplog_replay_result r;
  OK(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_replay"}, &r));
  CHECK(r.entries == 5 && r.ops == 5);
  CHECK_RC(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_replay"}, &r), OPLOG_TARGET_NOT_EMPTY);
  OK(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_replay", .fresh = 1, .since = 2, .upto = 4}, &r));
  CHECK(r.entries == 2);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM users_replay") == 2);
  /* fresh while an iterator of the handle is running: DROP must wait for
   * it, so the target is emptied instead; same result */
  oplog_iter *it;
  const oplog_entry *first;
  OK(db, oplog_entries(db, NULL, &it));
  OK(db, oplog_iter_next(it, &first));
  CHECK(first && first->id == 1);
  OK(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_replay", .fresh = 1}, &r));
  CHECK(r.entries == 5);
  oplog_iter_close(it);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM users_replay") == 5);
  OK(db, oplog_replay(db, &(oplog_replay_opts){.into = tpath("replica.db")}, &r));
  CHECK(r.entries == 5);
  CHECK_RC(db, oplog_replay(db, &(oplog_replay_opts){.into = tpath("replica.db")}, &r), OPLOG_TARGET_NOT_EMPTY);
  CHECK_RC(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "x", .into = "y"}, &r), OPLOG_INVALID_ARGUMENT);
  CHECK_RC(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "a b"}, &r), OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  CHECK(count_rows(tpath("replica.db"), "SELECT count(*) FROM users") == 5);
  CHECK(count_rows(tpath("replica.db"), "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'oplog%'") == 0);
}

typedef struct progress_log {
  int calls;
  int64_t last_done, last_total;
} progress_log;

static int on_progress(void *ctx, int64_t done, int64_t total) {
  progress_log *l = ctx;
  l->calls++;
  l->last_done = done;
  l->last_total = total;
  return 0;
}

/* Asks to stop at the first report: the replay must leave nothing. */
static int stop_progress(void *ctx, int64_t done, int64_t total) {
  (void)ctx;
  (void)total;
  return done > 0;
}

/* Row-for-row equality of every live table with its copy. */
static int same_tables(const char *live_db, const char *other_db, const char *suffix, int ntables) {
  static const char *tables[] = {"users", "groups", "item", "reading"};
  for (int i = 0; i < ntables; i++) {
    char sql[800];
    sqlite3 *s;
    sqlite3_open(live_db, &s);
    char *att = sqlite3_mprintf("ATTACH '%q' AS o", other_db);
    sqlite3_exec(s, att, NULL, NULL, NULL);
    sqlite3_free(att);
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM (SELECT * FROM main.\"%s\" EXCEPT SELECT * FROM o.\"%s%s\")) + "
             "(SELECT count(*) FROM (SELECT * FROM o.\"%s%s\" EXCEPT SELECT * FROM main.\"%s\")) + "
             "((SELECT count(*) FROM main.\"%s\") != (SELECT count(*) FROM o.\"%s%s\"))",
             tables[i], tables[i], suffix, tables[i], suffix, tables[i], tables[i], tables[i], suffix);
    sqlite3_stmt *st;
    int diff = -1;
    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
      diff = sqlite3_column_int(st, 0);
    else
      fprintf(stderr, "same_tables: %s\n", sqlite3_errmsg(s));
    sqlite3_finalize(st);
    sqlite3_close(s);
    if (diff != 0) {
      fprintf(stderr, "table %s differs (%d)\n", tables[i], diff);
      return 0;
    }
  }
  return 1;
}

/* Seeded random workload: thousands of mixed operations over several types
 * and aggregates; replaying the log gives the live tables exactly. */
static void replay_property_random_workload(void) {
  oplog_db *db = reopen();
  CHECK(db);
  OK(db, define_user(db));
  OK(db, define_group(db));
  static const oplog_column icols[] = {{"sku", "TEXT NOT NULL"}, {"shelf", "INTEGER NOT NULL"},
                                       {"qty", "INTEGER"}, {"price", "REAL"}, {"note", "BLOB"}};
  static const char *ikey[] = {"sku", "shelf"};
  OK(db, oplog_define(db, &(oplog_type_spec){"item", NULL, "stock", icols, 5, ikey, 2}));
  static const oplog_column rcols[] = {{"id", "INTEGER PRIMARY KEY"}, {"value", "REAL"}, {"ok", "BOOLEAN"}};
  OK(db, oplog_define(db, &(oplog_type_spec){"reading", NULL, "sensors", rcols, 3, NULL, 0}));
  unsigned seed = 42;
  srand(seed);
  int users = 0, items = 0, ops = 0, group_id = 0;
  for (int txn = 0; txn < 400; txn++) {
    int agg = rand() % 3;
    const char *aggname = agg == 0 ? "users" : agg == 1 ? "stock" : "sensors";
    OK(db, oplog_tx_begin(db, aggname));
    int n = 1 + rand() % 10;
    for (int k = 0; k < n; k++, ops++) {
      int choice = rand() % 4;
      char name[32], sku[32];
      if (agg == 0) {
        int id = 1 + rand() % (users + 1);
        snprintf(name, sizeof name, "u%d-%d", id, rand() % 1000);
        oplog_field f[] = {{"id", vint(id)}, {"name", vtext(name)}, {"age", vint(rand() % 90)}};
        if (id > users) {
          users = id;
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 3}}));
        } else if (choice == 0) {
          /* delete then recreate keeps ids dense */
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "user", .kind = OPLOG_OP_DELETE, .row = {f, 1}}));
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "user", .kind = OPLOG_OP_CREATE, .row = {f, 3}}));
        } else {
          const char *mask[] = {"age"}, *nulls[] = {"photo"};
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "user", .kind = OPLOG_OP_UPDATE, .row = {f, 3},
                                                .mask = mask, .nmask = choice == 1 ? 0 : 1,
                                                .nulls = nulls, .nnulls = choice == 1 ? 1 : 0}));
        }
        if (choice == 3) {
          oplog_field g[] = {{"id", vint(++group_id)}, {"title", vtext(name)}};
          oplog_field g2[] = {{"id", vint(++group_id)}, {"title", vnull()}};
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "group", .kind = OPLOG_OP_CREATE_ITEMS, .row = {g, 2}}));
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "group", .kind = OPLOG_OP_CREATE_ITEMS, .row = {g2, 2}}));
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "group", .kind = OPLOG_OP_DELETE_ITEMS, .row = {g, 1}}));
        }
      } else if (agg == 1) {
        int i = rand() % (items + 1);
        snprintf(sku, sizeof sku, "sku-%d", i);
        unsigned char note[8];
        for (int b = 0; b < 8; b++) note[b] = (unsigned char)rand();
        oplog_field f[] = {{"sku", vtext(sku)}, {"shelf", vint(i % 7)}, {"qty", vint(rand() % 50)},
                           {"price", vreal(rand() / 7.0)}, {"note", vblob(note, 8)}};
        if (i == items) {
          items++;
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "item", .kind = OPLOG_OP_CREATE, .row = {f, 5}}));
        } else {
          const char *mask[] = {"qty", "price"}, *nulls[] = {"note"};
          OK(db, oplog_tx_apply(db, &(oplog_op){.type = "item", .kind = OPLOG_OP_UPDATE, .row = {f, 5},
                                                .mask = mask, .nmask = 1 + choice % 2, .nulls = nulls,
                                                .nnulls = choice == 3}));
        }
      } else {
        oplog_field f[] = {{"value", vreal(rand() / 3.0)}, {"ok", {.type = OPLOG_BOOLEAN, .u.i = rand() % 2}}};
        OK(db, oplog_tx_apply(db, &(oplog_op){.type = "reading", .kind = OPLOG_OP_CREATE, .row = {f, 2}}));
      }
    }
    oplog_meta md[] = {{"txn", NULL}, {"seed", "42"}};
    OK(db, oplog_tx_commit(db, md, 2, NULL));
  }
  CHECK(ops >= 2000);
  progress_log pl = {0};
  oplog_replay_result r;
  OK(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_r", .progress = on_progress, .progress_ctx = &pl}, &r));
  CHECK(r.entries == 400 && pl.calls >= 1 && pl.last_done == 400 && pl.last_total == 400);
  OK(db, oplog_replay(db, &(oplog_replay_opts){.into = tpath("replica.db")}, &r));
  CHECK_RC(db, oplog_replay(db, &(oplog_replay_opts){.suffix = "_stop", .progress = stop_progress}, &r),
           OPLOG_INVALID_ARGUMENT);
  oplog_close(db);
  CHECK(count_rows(tpath("a.db"), "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%_stop'") == 0);
  CHECK(same_tables(tpath("a.db"), tpath("a.db"), "_r", 4));
  CHECK(same_tables(tpath("a.db"), tpath("replica.db"), "", 4));
  problems p;
  oplog_verify_opts o = {.replay = 1};
  CHECK(verify(&p, &o) == 1);
}

static void verify_progress(void) {
  CHECK(make_log());
  oplog_db *db = reopen();
  progress_log pl = {0};
  oplog_verify_result r;
  OK(db, oplog_verify(db, &(oplog_verify_opts){.replay = 1, .progress = on_progress, .progress_ctx = &pl}, NULL,
                      NULL, &r));
  CHECK(r.ok && pl.calls >= 2 && pl.last_done == pl.last_total && pl.last_total == 10);
  oplog_close(db);
}

static const struct test_case cases[] = {
    {"clean_log_ok", clean_log_ok},
    {"detects_changed_entry", detects_changed_entry},
    {"detects_changed_metadata", detects_changed_metadata},
    {"detects_added_metadata", detects_added_metadata},
    {"detects_deleted_entry", detects_deleted_entry},
    {"detects_reordered_entries", detects_reordered_entries},
    {"detects_cut_tail", detects_cut_tail},
    {"detects_live_edits", detects_live_edits},
    {"detects_undecryptable_entry", detects_undecryptable_entry},
    {"random_byte_corruptions", random_byte_corruptions},
    {"replay_suffix_and_into", replay_suffix_and_into},
    {"replay_property_random_workload", replay_property_random_workload},
    {"verify_progress", verify_progress},
    {NULL, NULL}};

int main(int argc, char **argv) { return test_main(argc, argv, cases); }
