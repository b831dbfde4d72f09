/*
 * rel_fuzz_entry.c — fuzz target: hostile bytes as an entry's data.
 *
 * Each input is (1) decoded directly with opl_entry_decode (internal.h's fuzz
 * entry point), whose result is walked field by field so that ASan sees any
 * bad pointer, and (2) stored as the data of a real plaintext entry (the
 * immutability trigger is dropped on a raw connection), then read with
 * oplog_entry_get and checked with oplog_verify: every result is a clean
 * code, and verify reports the tampering as a problem instead of failing.
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "internal.h"
#include "rel_common.h"

static struct {
  char *dir;
  oplog_db *db;
  sqlite3 *raw;
  sqlite3_stmt *upd;
  int64_t target;        /* the entry whose data is replaced */
  uint8_t *orig;         /* its original data */
  size_t norig;
  uint8_t *seeds[16];
  size_t nseed[16];
  int nseeds;
  int64_t runs;
  int64_t seeds_given; /* the driver runs the seeds first: verify them fully */
} F;

static void write_entries(oplog_db *db) {
  static const oplog_column c1[] = {{"id", "INTEGER PRIMARY KEY"},
                                    {"name", "TEXT"},
                                    {"data", "BLOB"},
                                    {"score", "REAL"},
                                    {"flag", "INTEGER"}};
  static const oplog_column c2[] = {{"k", "TEXT PRIMARY KEY NOT NULL"}, {"v", "BLOB"}};
  oplog_type_spec t1 = {"t1", NULL, "agg", c1, 5, NULL, 0};
  oplog_type_spec t2 = {"t2", NULL, "agg", c2, 2, NULL, 0};
  REL_OK(db, oplog_define(db, &t1));
  REL_OK(db, oplog_define(db, &t2));
  int64_t id;
  /* Every value type, then an update with mask and nulls, create_items,
   * delete: one seed per shape of operation. */
  REL_OK(db, oplog_tx_begin(db, "agg"));
  oplog_field f1[5] = {{"id", {OPLOG_INTEGER, {.i = 1}}},
                       {"name", {OPLOG_TEXT, {.b = {"h\xc3\xa9llo", 6}}}},
                       {"data", {OPLOG_BLOB, {.b = {"\0\1\2\3", 4}}}},
                       {"score", {OPLOG_REAL, {.r = -2.5}}},
                       {"flag", {OPLOG_BOOLEAN, {.i = 1}}}};
  oplog_op op1 = {"t1", OPLOG_OP_CREATE, {f1, 5}, NULL, 0, NULL, 0};
  REL_OK(db, oplog_tx_apply(db, &op1));
  oplog_field f2[2] = {{"k", {OPLOG_TEXT, {.b = {"key", 3}}}}, {"v", {OPLOG_NULL, {.i = 0}}}};
  oplog_op op2 = {"t2", OPLOG_OP_CREATE, {f2, 2}, NULL, 0, NULL, 0};
  REL_OK(db, oplog_tx_apply(db, &op2));
  REL_OK(db, oplog_tx_commit(db, NULL, 0, &id));

  REL_OK(db, oplog_tx_begin(db, "agg"));
  oplog_field f3[2] = {{"id", {OPLOG_INTEGER, {.i = 1}}},
                       {"score", {OPLOG_REAL, {.r = 1e300}}}};
  static const char *const mask[] = {"score"};
  static const char *const nulls[] = {"name", "data"};
  oplog_op op3 = {"t1", OPLOG_OP_UPDATE, {f3, 2}, mask, 1, nulls, 2};
  REL_OK(db, oplog_tx_apply(db, &op3));
  REL_OK(db, oplog_tx_commit(db, NULL, 0, &id));

  REL_OK(db, oplog_tx_begin(db, "agg"));
  for (int i = 2; i <= 4; i++) {
    oplog_field f[2] = {{"id", {OPLOG_INTEGER, {.i = i}}},
                        {"name", {OPLOG_TEXT, {.b = {"it'em", 5}}}}};
    oplog_op op = {"t1", OPLOG_OP_CREATE_ITEMS, {f, 2}, NULL, 0, NULL, 0};
    REL_OK(db, oplog_tx_apply(db, &op));
  }
  REL_OK(db, oplog_tx_commit(db, NULL, 0, &id));

  REL_OK(db, oplog_tx_begin(db, "agg"));
  oplog_field f4[1] = {{"id", {OPLOG_INTEGER, {.i = 3}}}};
  oplog_op op4 = {"t1", OPLOG_OP_DELETE_ITEMS, {f4, 1}, NULL, 0, NULL, 0};
  REL_OK(db, oplog_tx_apply(db, &op4));
  oplog_field f5[1] = {{"k", {OPLOG_TEXT, {.b = {"key", 3}}}}};
  oplog_op op5 = {"t2", OPLOG_OP_DELETE, {f5, 1}, NULL, 0, NULL, 0};
  REL_OK(db, oplog_tx_apply(db, &op5));
  REL_OK(db, oplog_tx_commit(db, NULL, 0, &id));

  /* The target entry, last so that changing it breaks no later hash. */
  REL_OK(db, oplog_tx_begin(db, "agg"));
  oplog_field f6[2] = {{"id", {OPLOG_INTEGER, {.i = 9}}},
                       {"data", {OPLOG_BLOB, {.b = {"x", 1}}}}};
  oplog_op op6 = {"t1", OPLOG_OP_CREATE, {f6, 2}, NULL, 0, NULL, 0};
  REL_OK(db, oplog_tx_apply(db, &op6));
  REL_OK(db, oplog_tx_commit(db, NULL, 0, &F.target));
}

static void setup(void) {
  if (F.db) return;
  F.dir = rel_mkdtemp_fast("fuzz-entry");
  const char *path = rel_path(F.dir, "fuzz.db");
  oplog_open_opts o = rel_opts(NULL);
  o.sync = OPLOG_SYNC_NORMAL;
  REL_CHECK(oplog_open(path, &o, &F.db) == OPLOG_OK, "open");
  write_entries(F.db);
  REL_CHECK(sqlite3_open(path, &F.raw) == SQLITE_OK, "raw open");
  sqlite3_busy_timeout(F.raw, 10000);
  REL_CHECK(sqlite3_exec(F.raw,
                         "PRAGMA synchronous=OFF; DROP TRIGGER oplog_entries_no_update;", NULL,
                         NULL, NULL) == SQLITE_OK,
            "drop trigger: %s", sqlite3_errmsg(F.raw));
  sqlite3_stmt *q;
  REL_CHECK(sqlite3_prepare_v2(F.raw, "SELECT data FROM oplog_entries ORDER BY id", -1, &q,
                               NULL) == SQLITE_OK,
            "select");
  while (sqlite3_step(q) == SQLITE_ROW && F.nseeds < 16) {
    size_t n = (size_t)sqlite3_column_bytes(q, 0);
    F.seeds[F.nseeds] = malloc(n + 1);
    memcpy(F.seeds[F.nseeds], sqlite3_column_blob(q, 0), n);
    F.nseed[F.nseeds++] = n;
  }
  sqlite3_finalize(q);
  F.orig = F.seeds[F.nseeds - 1];
  F.norig = F.nseed[F.nseeds - 1];
  REL_CHECK(sqlite3_prepare_v2(F.raw, "UPDATE oplog_entries SET data = ? WHERE id = ?", -1,
                               &F.upd, NULL) == SQLITE_OK,
            "prepare update");
}

/* Reads every byte the decoder handed out; ASan flags a bad pointer. */
static uint64_t walk(const oplog_op *ops, size_t nops) {
  uint64_t h = 0;
  for (size_t i = 0; i < nops; i++) {
    const oplog_op *op = &ops[i];
    FUZZ_CHECK(op->type != NULL, "op %zu without type", i);
    h += strlen(op->type);
    FUZZ_CHECK(op->kind >= OPLOG_OP_CREATE && op->kind <= OPLOG_OP_DELETE_ITEMS,
               "op %zu has kind %d", i, (int)op->kind);
    FUZZ_CHECK(op->row.nfields == 0 || op->row.fields != NULL, "fields NULL");
    for (size_t j = 0; j < op->row.nfields; j++) {
      const oplog_field *f = &op->row.fields[j];
      FUZZ_CHECK(f->name != NULL, "field without name");
      h += strlen(f->name);
      switch (f->value.type) {
        case OPLOG_NULL:
          break;
        case OPLOG_INTEGER:
        case OPLOG_BOOLEAN:
          h += (uint64_t)f->value.u.i;
          break;
        case OPLOG_REAL:
          h += (uint64_t)(f->value.u.r == f->value.u.r);
          break;
        case OPLOG_TEXT:
          FUZZ_CHECK(f->value.u.b.p != NULL, "text without bytes");
          FUZZ_CHECK(((const char *)f->value.u.b.p)[f->value.u.b.n] == 0,
                     "decoded text is not NUL-terminated");
          /* fallthrough */
        case OPLOG_BLOB:
          for (size_t k = 0; k < f->value.u.b.n; k++) h += ((const uint8_t *)f->value.u.b.p)[k];
          break;
        default:
          FUZZ_CHECK(0, "decoded value type %d", (int)f->value.type);
      }
    }
    for (size_t j = 0; j < op->nmask; j++) h += strlen(op->mask[j]);
    for (size_t j = 0; j < op->nnulls; j++) h += strlen(op->nulls[j]);
  }
  return h;
}

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  F.runs++;
  /* (1) the decoder alone */
  arena a = {0};
  const oplog_op *ops = NULL;
  size_t nops = 0;
  int rc = opl_entry_decode(F.db, &a, data, size, &ops, &nops);
  FUZZ_CHECK(rc == OPLOG_OK || rc == OPLOG_CORRUPT || rc == OPLOG_NOT_FOUND,
             "entry_decode: %s: %s", oplog_code_name(rc), oplog_errmsg(F.db));
  size_t direct_nops = rc == OPLOG_OK ? nops : (size_t)-1;
  if (rc == OPLOG_OK) sink += walk(ops, nops);
  opl_arena_free(&a);

  /* (2) through the file */
  sqlite3_bind_blob(F.upd, 1, size ? (const void *)data : "", (int)size, SQLITE_STATIC);
  sqlite3_bind_int64(F.upd, 2, F.target);
  FUZZ_CHECK(sqlite3_step(F.upd) == SQLITE_DONE, "update: %s", sqlite3_errmsg(F.raw));
  sqlite3_reset(F.upd);
  oplog_entry *e = NULL;
  rc = oplog_entry_get(F.db, F.target, &e);
  FUZZ_CHECK(rc == OPLOG_OK || rc == OPLOG_CORRUPT || rc == OPLOG_NOT_FOUND ||
                 rc == OPLOG_DECRYPT_FAILED,
             "oplog_entry_get: %s: %s", oplog_code_name(rc), oplog_errmsg(F.db));
  FUZZ_CHECK((rc == OPLOG_OK) == (direct_nops != (size_t)-1),
             "entry_get (%s) and entry_decode disagree", oplog_code_name(rc));
  if (rc == OPLOG_OK) {
    FUZZ_CHECK(e->nops == direct_nops, "entry_get decoded %zu ops, entry_decode %zu", e->nops,
               direct_nops);
    sink += walk(e->ops, e->nops);
  }
  oplog_entry_free(e);

  int same = size == F.norig && !memcmp(data, F.orig, size);
  oplog_verify_opts vo;
  memset(&vo, 0, sizeof vo);
  /* replay on every 8th input (REL_FUZZ_VERIFY_REPLAY=1: on every one, to
   * reproduce a crash file found that way) */
  static int always = -1;
  if (always < 0) always = getenv("REL_FUZZ_VERIFY_REPLAY") != NULL;
  vo.replay = always || (F.runs % 8) == 0 || F.runs <= F.seeds_given;
  oplog_verify_result r;
  memset(&r, 0, sizeof r);
  rc = oplog_verify(F.db, &vo, NULL, NULL, &r);
  FUZZ_CHECK(rc == OPLOG_OK, "verify%s failed to run on a tampered entry: %s: %s",
             vo.replay ? " (replay)" : "", oplog_code_name(rc), oplog_errmsg(F.db));
  FUZZ_CHECK(same ? r.ok : !r.ok, "verify says ok=%d for %s data", r.ok,
             same ? "the original" : "tampered");
  return 0;
}

void rel_fuzz_seeds(void (*add)(const uint8_t *p, size_t n)) {
  setup();
  for (int i = 0; i < F.nseeds; i++) add(F.seeds[i], F.nseed[i]);
  /* Hand-made near-misses: lengths past the end, unknown fields, a wrong
   * wire type, deep nesting, an unknown type name. */
  static const uint8_t s1[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
  static const uint8_t s2[] = {0x0a, 0x04, 0x0a, 0x02, 't', '9'};
  static const uint8_t s3[] = {0x0a, 0x06, 0x10, 0x07, 0x2a, 0x02, 0x0a, 0x00};
  static const uint8_t s4[] = {0x0b, 0x0c, 0x0d};
  static const uint8_t s5[] = {0x0a, 0x08, 0x0a, 0x02, 't', '1', 0x2a, 0x02, 0x0a, 0x7f};
  add(s1, sizeof s1);
  add(s2, sizeof s2);
  add(s3, sizeof s3);
  add(s4, sizeof s4);
  add(s5, sizeof s5);
  add((const uint8_t *)"", 0);
  /* Found by libFuzzer: decodes, but names a column its type lacks; verify
   * with replay must report it, not fail to run. */
  static const uint8_t r1[] = {0x3a, 0x12, 0x0a, 0x03, 0x74, 0x30, 0x10, 0x05, 0x2a, 0x0a, 0x0a,
                               0x08, 0x0a, 0x02, 0x97, 0x9b, 0x12, 0x02, 0x02, 0x03, 0x0a, 0x14,
                               0x0a, 0x02, 0x74, 0x31, 0x10, 0x03, 0x2a, 0x0c, 0x0a, 0x0a, 0x0a,
                               0x01, 0x6b, 0x12, 0x05, 0x22, 0x03, 0x6b, 0x65, 0x79};
  add(r1, sizeof r1);
  F.seeds_given = F.nseeds + 7;
}

void rel_fuzz_cleanup(void) {
  if (!F.db) return;
  sqlite3_finalize(F.upd);
  sqlite3_close(F.raw);
  oplog_close(F.db);
  for (int i = 0; i < F.nseeds; i++) free(F.seeds[i]);
  rel_rmdir_all(F.dir);
  free(F.dir);
  memset(&F, 0, sizeof F);
}
