/* rel_v1.c — see rel_v1.h. */
#include "rel_v1.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rel_common.h"

#define REL_V1_ENTRIES_S "14" /* REL_V1_ENTRIES as SQL text */

#ifndef REL_SOURCE_DIR
#define REL_SOURCE_DIR "."
#endif

static struct {
  char fixture[1024], keyfile[1024], expected[1024];
  char pristine[1024], ref[1024];
  unsigned char hash[REL_V1_ENTRIES][OPLOG_HASH_BYTES]; /* from expected.lua */
  unsigned char key[32]; /* v1.key's 64 hex chars (given as bytes: git keeps the file 0644,
                            which a key_file open refuses) */
  char *digest[REL_V1_ENTRIES]; /* the entries as read from the fixture */
  int ready;
} V;

static void msgf(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msgf(char *msg, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, len, fmt, ap);
  va_end(ap);
}

/* ---------------------------------------------------------------- set-up */

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  REL_CHECK(f != NULL, "open %s", path);
  REL_CHECK(fseek(f, 0, SEEK_END) == 0, "seek %s", path);
  long n = ftell(f);
  REL_CHECK(n >= 0, "ftell %s", path);
  rewind(f);
  char *s = malloc((size_t)n + 1);
  REL_CHECK(s != NULL && fread(s, 1, (size_t)n, f) == (size_t)n, "read %s", path);
  s[n] = 0;
  fclose(f);
  return s;
}

static int hexval(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The hashes expected.lua records for v1-encrypted.db's stored entries
 * (`hash = "<64 hex>"` followed by `id = N`, in the section of that file). */
static void expected_hashes(void) {
  char *text = read_text(V.expected);
  char *sec = strstr(text, "[\"v1-encrypted.db\"]");
  REL_CHECK(sec != NULL, "%s: no v1-encrypted.db section", V.expected);
  char *end = strstr(sec, "[\"v1-plain.db\"]");
  if (end) *end = 0;
  char *p = strstr(sec, "stored_entries");
  REL_CHECK(p != NULL, "%s: no stored_entries", V.expected);
  int n = 0;
  while ((p = strstr(p, "hash = \"")) != NULL) {
    if (p[-1] == '_') { /* prev_hash */
      p += 8;
      continue;
    }
    p += 8;
    REL_CHECK(n < REL_V1_ENTRIES, "%s: more than %d stored entries", V.expected, REL_V1_ENTRIES);
    for (int i = 0; i < OPLOG_HASH_BYTES; i++) {
      int h = hexval(p[2 * i]), l = hexval(p[2 * i + 1]);
      REL_CHECK(h >= 0 && l >= 0, "%s: bad hash", V.expected);
      V.hash[n][i] = (unsigned char)(h << 4 | l);
    }
    char *id = strstr(p, "id = ");
    REL_CHECK(id != NULL && atoi(id + 5) == n + 1, "%s: stored entry %d out of order", V.expected,
              n + 1);
    n++;
  }
  REL_CHECK(n == REL_V1_ENTRIES, "%s: %d stored entries, not %d", V.expected, n, REL_V1_ENTRIES);
  free(text);
}

/* A raw read-only connection to path with the pristine fixture attached as
 * "orig" (immutable: no -wal/-shm, nothing written next to it). */
static sqlite3 *raw_open(const char *path, char *msg, size_t len) {
  sqlite3 *s = NULL;
  int rc = sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
  if (rc != SQLITE_OK) {
    msgf(msg, len, "raw open: %s", s ? sqlite3_errmsg(s) : sqlite3_errstr(rc));
    sqlite3_close(s);
    return NULL;
  }
  sqlite3_busy_timeout(s, 10000);
  char *sql = sqlite3_mprintf("ATTACH 'file:%q?immutable=1' AS orig", V.pristine);
  rc = sqlite3_exec(s, sql, NULL, NULL, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK) {
    msgf(msg, len, "raw attach: %s", sqlite3_errmsg(s));
    sqlite3_close(s);
    return NULL;
  }
  return s;
}

/* A scalar integer; *ok = 0 (and msg) on an SQL error. */
static int64_t q_int(sqlite3 *s, const char *sql, int *ok, char *msg, size_t len) {
  sqlite3_stmt *st = NULL;
  int64_t v = -1;
  int rc = sqlite3_prepare_v2(s, sql, -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    v = sqlite3_column_int64(st, 0);
  } else if (*ok) {
    msgf(msg, len, "%s: %s", sql, rc == SQLITE_DONE ? "no row" : sqlite3_errmsg(s));
    *ok = 0;
  }
  sqlite3_finalize(st);
  return v;
}

static void open_memstream_or_die(char **p, size_t *n, FILE **f) {
  *f = open_memstream(p, n);
  REL_CHECK(*f != NULL, "open_memstream");
}

static void put_bytes(FILE *f, const void *p, size_t n) {
  fprintf(f, "%zu:", n);
  for (size_t i = 0; i < n; i++) fprintf(f, "%02x", ((const unsigned char *)p)[i]);
}

/* Everything an entry says but its origin (zero before the migration), as
 * one string (malloc). */
static char *digest(const oplog_entry *e) {
  char *p = NULL;
  size_t n = 0;
  FILE *f;
  open_memstream_or_die(&p, &n, &f);
  fprintf(f, "id=%" PRId64 " seq=%" PRId64 " clock=%" PRId64 " created=%" PRId64 " agg=%s key=%" PRId64
             "\n",
          e->id, e->seq, e->clock, e->created, e->aggregate, e->key_id);
  for (size_t i = 0; i < e->nmetadata; i++) {
    fprintf(f, "meta %s", e->metadata[i].key);
    if (e->metadata[i].value) put_bytes(f, e->metadata[i].value, strlen(e->metadata[i].value));
    fputc('\n', f);
  }
  for (size_t i = 0; i < e->nops; i++) {
    const oplog_op *op = &e->ops[i];
    fprintf(f, "op %s kind=%d\n", op->type, (int)op->kind);
    for (size_t j = 0; j < op->row.nfields; j++) {
      const oplog_value *v = &op->row.fields[j].value;
      fprintf(f, " %s=", op->row.fields[j].name);
      switch (v->type) {
        case OPLOG_NULL: fputs("NULL", f); break;
        case OPLOG_INTEGER: fprintf(f, "I%" PRId64, v->u.i); break;
        case OPLOG_BOOLEAN: fprintf(f, "b%" PRId64, v->u.i); break;
        case OPLOG_REAL: fprintf(f, "R%a", v->u.r); break;
        case OPLOG_TEXT: fputc('T', f); put_bytes(f, v->u.b.p, v->u.b.n); break;
        case OPLOG_BLOB: fputc('B', f); put_bytes(f, v->u.b.p, v->u.b.n); break;
        default: fprintf(f, "?%d", (int)v->type); break;
      }
      fputc('\n', f);
    }
    for (size_t j = 0; j < op->nmask; j++) fprintf(f, " mask %s\n", op->mask[j]);
    for (size_t j = 0; j < op->nnulls; j++) fprintf(f, " null %s\n", op->nulls[j]);
  }
  fclose(f);
  return p;
}

void rel_v1_setup(const char *dir) {
  const char *src = getenv("OPLOG_SOURCE_DIR");
  if (!src || !*src) src = REL_SOURCE_DIR;
  snprintf(V.fixture, sizeof V.fixture, "%s/tests/fixtures/format1/v1-encrypted.db", src);
  snprintf(V.keyfile, sizeof V.keyfile, "%s/tests/fixtures/format1/v1.key", src);
  snprintf(V.expected, sizeof V.expected, "%s/tests/fixtures/format1/expected.lua", src);
  snprintf(V.pristine, sizeof V.pristine, "%s/v1-pristine.db", dir);
  snprintf(V.ref, sizeof V.ref, "%s/v1-reference.db", dir);
  expected_hashes();
  char *hex = read_text(V.keyfile);
  for (int i = 0; i < 32; i++) {
    int h = hexval(hex[2 * i]), l = h < 0 ? -1 : hexval(hex[2 * i + 1]);
    REL_CHECK(h >= 0 && l >= 0, "%s: not 64 hex chars", V.keyfile);
    V.key[i] = (unsigned char)(h << 4 | l);
  }
  free(hex);
  rel_copy_file(V.fixture, V.pristine);
  V.ready = 1;

  /* The fixture holds what expected.lua says: format 1, these hashes. */
  char msg[512];
  sqlite3 *s = raw_open(V.pristine, msg, sizeof msg);
  REL_CHECK(s != NULL, "%s", msg);
  int ok = 1;
  REL_CHECK(q_int(s, "PRAGMA orig.user_version", &ok, msg, sizeof msg) == 1 && ok,
            "the fixture is not format 1 %s", msg);
  sqlite3_stmt *st = NULL;
  REL_CHECK(sqlite3_prepare_v2(s, "SELECT id, hash FROM orig.oplog_entries ORDER BY id", -1, &st,
                               NULL) == SQLITE_OK,
            "%s", sqlite3_errmsg(s));
  int n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    REL_CHECK(n < REL_V1_ENTRIES && sqlite3_column_int64(st, 0) == n + 1 &&
                  sqlite3_column_bytes(st, 1) == OPLOG_HASH_BYTES &&
                  !memcmp(sqlite3_column_blob(st, 1), V.hash[n], OPLOG_HASH_BYTES),
              "fixture entry %d: not the hash of expected.lua", n + 1);
    n++;
  }
  REL_CHECK(n == REL_V1_ENTRIES, "the fixture has %d entries", n);
  sqlite3_finalize(st);
  sqlite3_close(s);

  /* The reference: the entries as the library reads the format-1 file
   * read-only (through its views), before any fault. */
  rel_v1_copy(V.ref);
  oplog_open_opts o = rel_v1_opts(1);
  oplog_db *db = NULL;
  int rc = oplog_open(V.ref, &o, &db);
  REL_CHECK(rc == OPLOG_OK, "read-only open of the fixture: %s: %s", oplog_code_name(rc),
            db ? oplog_errmsg(db) : "");
  for (int i = 0; i < REL_V1_ENTRIES; i++) {
    oplog_entry *e = NULL;
    REL_OK(db, oplog_entry_get(db, i + 1, &e));
    V.digest[i] = digest(e);
    oplog_entry_free(e);
  }
  REL_CHECK(rel_verify(db, 1, "v1-setup"), "the fixture does not verify read-only");
  oplog_close(db);
  rel_remove_db(V.ref);
}

void rel_v1_copy(const char *dst) {
  REL_CHECK(V.ready, "rel_v1_setup first");
  rel_copy_file(V.fixture, dst); /* removes dst's -wal/-shm/-journal first */
}

oplog_open_opts rel_v1_opts(int readonly) {
  oplog_open_opts o = rel_opts(V.key);
  o.readonly = readonly;
  o.no_create = 1;
  return o;
}

/* ---------------------------------------------------------------- raw check */

/* The rows of table t (orig's columns), each as quote(c1)||','||..., sorted
 * and joined by newlines; NULL (and msg) on an error. */
static char *table_text(sqlite3 *s, const char *schema, const char *t, int64_t *rows, char *msg,
                        size_t len) {
  sqlite3_stmt *st = NULL;
  char *sql = sqlite3_mprintf("SELECT name FROM pragma_table_info(%Q, 'orig') ORDER BY cid", t);
  int rc = sqlite3_prepare_v2(s, sql, -1, &st, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK) {
    msgf(msg, len, "columns of %s: %s", t, sqlite3_errmsg(s));
    return NULL;
  }
  char *expr = sqlite3_mprintf("''");
  while (sqlite3_step(st) == SQLITE_ROW)
    expr = sqlite3_mprintf("%z||','||quote(\"%w\")", expr, (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sql = sqlite3_mprintf("SELECT count(*), coalesce(group_concat(r, char(10)), '') FROM"
                        " (SELECT %s AS r FROM \"%w\".\"%w\" ORDER BY r)",
                        expr, schema, t);
  sqlite3_free(expr);
  rc = sqlite3_prepare_v2(s, sql, -1, &st, NULL);
  sqlite3_free(sql);
  char *out = NULL;
  if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    *rows = sqlite3_column_int64(st, 0);
    out = strdup((const char *)sqlite3_column_text(st, 1));
  } else {
    msgf(msg, len, "rows of %s.%s: %s", schema, t, sqlite3_errmsg(s));
  }
  sqlite3_finalize(st);
  return out;
}

/* Every row of orig's table t is in main's (and nothing else when exact). */
static int same_table(sqlite3 *s, const char *t, int exact, char *msg, size_t len) {
  int64_t no = 0, nm = 0;
  char *o = table_text(s, "orig", t, &no, msg, len);
  if (!o) return 0;
  char *m = table_text(s, "main", t, &nm, msg, len);
  if (!m) {
    free(o);
    return 0;
  }
  int ok = 1;
  if (exact) {
    ok = !strcmp(o, m);
  } else {
    /* each orig line appears as a whole line of main */
    for (char *line = o; ok && *line;) {
      char *nl = strchr(line, '\n');
      size_t ln = nl ? (size_t)(nl - line) : strlen(line);
      int found = 0;
      for (char *q = m; *q && !found;) {
        char *qn = strchr(q, '\n');
        size_t qlen = qn ? (size_t)(qn - q) : strlen(q);
        found = qlen == ln && !memcmp(q, line, ln);
        q = qn ? qn + 1 : q + qlen;
      }
      ok = found;
      line = nl ? nl + 1 : line + ln;
    }
  }
  if (!ok)
    msgf(msg, len, "table %s: %" PRId64 " rows, the fixture's %" PRId64 " rows %s", t, nm, no,
         exact ? "differ" : "are not all there");
  free(o);
  free(m);
  return ok;
}

/* Format 1, unchanged: the same schema, every table's rows the same. */
static int check_format1(sqlite3 *s, char *msg, size_t len) {
  int ok = 1;
  int64_t d = q_int(s,
                    "SELECT (SELECT count(*) FROM (SELECT type, name, tbl_name, sql FROM main.sqlite_schema"
                    " EXCEPT SELECT type, name, tbl_name, sql FROM orig.sqlite_schema))"
                    " + (SELECT count(*) FROM (SELECT type, name, tbl_name, sql FROM orig.sqlite_schema"
                    " EXCEPT SELECT type, name, tbl_name, sql FROM main.sqlite_schema))",
                    &ok, msg, len);
  if (!ok) return 0;
  if (d != 0) {
    msgf(msg, len, "user_version 1 but the schema differs from the fixture's (%" PRId64 " objects)", d);
    return 0;
  }
  sqlite3_stmt *st = NULL;
  REL_CHECK(sqlite3_prepare_v2(s, "SELECT name FROM orig.sqlite_schema WHERE type = 'table' ORDER BY name",
                               -1, &st, NULL) == SQLITE_OK,
            "%s", sqlite3_errmsg(s));
  while (ok && sqlite3_step(st) == SQLITE_ROW) {
    ok = same_table(s, (const char *)sqlite3_column_text(st, 0), 1, msg, len);
    if (!ok) {
      size_t l = strlen(msg);
      snprintf(msg + l, len - l, " (user_version 1: the file must be the fixture unchanged)");
    }
  }
  sqlite3_finalize(st);
  return ok;
}

typedef struct meta_cmp {
  sqlite3_stmt *rows; /* orig metadata rows of the entry, by seq */
  int ok;
} meta_cmp;

static void meta_pair(void *ctx, const char *k, size_t kn, const char *v, size_t vn) {
  meta_cmp *m = ctx;
  if (!m->ok) return;
  if (sqlite3_step(m->rows) != SQLITE_ROW) {
    m->ok = 0;
    return;
  }
  const char *ok_ = (const char *)sqlite3_column_text(m->rows, 0);
  int okn = sqlite3_column_bytes(m->rows, 0);
  int null = sqlite3_column_type(m->rows, 1) == SQLITE_NULL;
  const char *ov = (const char *)sqlite3_column_text(m->rows, 1);
  size_t ovn = (size_t)sqlite3_column_bytes(m->rows, 1);
  if ((size_t)okn != kn || memcmp(ok_, k, kn) || null != (v == NULL) ||
      (v && (ovn != vn || memcmp(ov, v, vn))))
    m->ok = 0;
}

static int check_format2(sqlite3 *s, int64_t extra, char *msg, size_t len) {
  int ok = 1;
  char sql[1024];
#define EXPECT(want, ...)                                                                   \
  do {                                                                                      \
    snprintf(sql, sizeof sql, __VA_ARGS__);                                                 \
    int64_t got_ = q_int(s, sql, &ok, msg, len);                                            \
    if (!ok) return 0;                                                                      \
    if (got_ != (want)) {                                                                   \
      msgf(msg, len, "format 2 but %s gives %" PRId64 ", not %" PRId64, sql, got_,          \
           (int64_t)(want));                                                                \
      return 0;                                                                             \
    }                                                                                       \
  } while (0)
  EXPECT(0, "SELECT count(*) FROM main.sqlite_schema WHERE name LIKE 'oplog^_v1^_%%' ESCAPE '^'");
  EXPECT(2, "SELECT value FROM main.oplog_config WHERE name = 'format'");
  EXPECT(1, "SELECT value >= %d FROM main.oplog_config WHERE name = 'indexed_upto'", REL_V1_ENTRIES);
  EXPECT(1, "SELECT value >= %d FROM main.oplog_config WHERE name = 'clock'", REL_V1_ENTRIES);
  EXPECT(0,
         "SELECT count(*) FROM orig.oplog_config o WHERE o.name <> 'format' AND NOT EXISTS"
         " (SELECT 1 FROM main.oplog_config m WHERE m.name = o.name AND m.value IS o.value)");
  /* the entries: the fixture's, byte for byte, each its own seq and clock */
  EXPECT(REL_V1_ENTRIES + extra, "SELECT count(*) FROM main.oplog_entries");
  EXPECT(REL_V1_ENTRIES,
         "SELECT count(*) FROM main.oplog_entries e JOIN orig.oplog_entries o ON o.id = e.id"
         " WHERE e.origin = 1 AND e.seq = o.id AND e.clock = o.id AND e.format = 1"
         " AND e.created IS o.created AND e.aggregate_name IS o.aggregate AND e.key_id IS o.key_id"
         " AND e.data IS o.data AND e.prev_hash IS o.prev_hash AND e.hash IS o.hash");
  EXPECT(extra,
         "SELECT count(*) FROM main.oplog_entries e WHERE e.id > %d AND e.origin = 1"
         " AND e.format = 2 AND e.seq = e.id"
         " AND e.prev_hash = (SELECT p.hash FROM main.oplog_entries p WHERE p.id = e.id - 1)",
         REL_V1_ENTRIES);
  /* the derived tables cover the migrated entries */
  EXPECT(1,
         "SELECT (SELECT count(*) FROM main.oplog_metadata WHERE entry_id <= %d)"
         " = (SELECT count(*) FROM orig.oplog_metadata)",
         REL_V1_ENTRIES);
  EXPECT(1,
         "SELECT (SELECT count(*) FROM main.oplog_metadata m JOIN orig.oplog_metadata o"
         " ON o.entry_id = m.entry_id AND o.seq = m.position AND o.key IS m.key AND o.value IS m.value)"
         " = (SELECT count(*) FROM orig.oplog_metadata)");
  EXPECT(REL_V1_ENTRIES,
         "SELECT count(*) FROM main.oplog_index i JOIN orig.oplog_entries o ON o.id = i.entry_id"
         " WHERE i.origin = 1 AND i.seq = o.id AND i.aggregate_name IS o.aggregate");
  /* one origin (this file's), the same data keys re-wrapped */
  EXPECT(1, "SELECT count(*) FROM main.oplog_origins");
  EXPECT(1, "SELECT count(*) FROM main.oplog_origins WHERE no = 1 AND length(id) = 32"
            " AND id <> zeroblob(32)");
  EXPECT(1, "SELECT (SELECT count(*) FROM main.oplog_keys) = (SELECT count(*) FROM orig.oplog_keys)");
  EXPECT(1,
         "SELECT (SELECT count(*) FROM main.oplog_keys m JOIN orig.oplog_keys o ON m.origin = 1"
         " AND m.id = o.id AND m.created IS o.created AND m.state IS o.state)"
         " = (SELECT count(*) FROM orig.oplog_keys)");
#undef EXPECT
  /* each entry's metadata blob holds its old metadata rows, in order */
  sqlite3_stmt *e = NULL, *rows = NULL;
  REL_CHECK(sqlite3_prepare_v2(s, "SELECT id, metadata FROM main.oplog_entries WHERE id <= " REL_V1_ENTRIES_S " ORDER BY id",
                               -1, &e, NULL) == SQLITE_OK &&
                sqlite3_prepare_v2(s,
                                   "SELECT key, value FROM orig.oplog_metadata WHERE entry_id = ?1"
                                   " ORDER BY seq",
                                   -1, &rows, NULL) == SQLITE_OK,
            "%s", sqlite3_errmsg(s));
  while (ok && sqlite3_step(e) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(e, 0);
    sqlite3_reset(rows);
    sqlite3_bind_int64(rows, 1, id);
    meta_cmp m = {rows, 1};
    int64_t pairs = rel_meta_blob_walk(sqlite3_column_blob(e, 1), (size_t)sqlite3_column_bytes(e, 1),
                                       meta_pair, &m);
    if (pairs < 0 || !m.ok || sqlite3_step(rows) == SQLITE_ROW) {
      msgf(msg, len, "entry %" PRId64 ": the metadata blob is not the old metadata rows", id);
      ok = 0;
    }
  }
  sqlite3_finalize(e);
  sqlite3_finalize(rows);
  if (!ok) return 0;
  /* the other tables (live rows, catalog, tickets) as they were; new
   * entries may have added rows */
  sqlite3_stmt *st = NULL;
  REL_CHECK(sqlite3_prepare_v2(s,
                               "SELECT name FROM orig.sqlite_schema WHERE type = 'table' AND name NOT IN"
                               " ('oplog_entries', 'oplog_metadata', 'oplog_keys', 'oplog_config')"
                               " ORDER BY name",
                               -1, &st, NULL) == SQLITE_OK,
            "%s", sqlite3_errmsg(s));
  while (ok && sqlite3_step(st) == SQLITE_ROW)
    ok = same_table(s, (const char *)sqlite3_column_text(st, 0), extra == 0, msg, len);
  sqlite3_finalize(st);
  return ok;
}

int rel_v1_format(const char *path, int64_t extra, char *msg, size_t msglen) {
  sqlite3 *s = raw_open(path, msg, msglen);
  if (!s) return 0;
  int ok = 1, fmt = 0;
  int64_t uv = q_int(s, "PRAGMA main.user_version", &ok, msg, msglen);
  if (ok && uv == 1 && extra > 0) {
    msgf(msg, msglen, "still format 1, but %" PRId64 " entries were written after the migration", extra);
  } else if (ok && uv == 1) {
    if (check_format1(s, msg, msglen)) fmt = 1;
  } else if (ok && uv == 3) {
    if (check_format2(s, extra, msg, msglen)) fmt = 2;
  } else if (ok) {
    msgf(msg, msglen, "user_version %" PRId64, uv);
  }
  sqlite3_close(s);
  return fmt;
}

/* ---------------------------------------------------------------- through the library */

static int problem_msg(void *ctx, int64_t id, const char *kind, const char *detail) {
  char *m = ctx;
  if (!m[0]) snprintf(m, 256, "entry %" PRId64 ": %s: %s", id, kind, detail ? detail : "");
  return 0;
}

static int verify_all(oplog_db *db, int64_t entries, char *msg, size_t len) {
  oplog_verify_opts vo;
  memset(&vo, 0, sizeof vo);
  vo.replay = 1;
  oplog_verify_result r;
  memset(&r, 0, sizeof r);
  char first[256] = "";
  int rc = oplog_verify(db, &vo, problem_msg, first, &r);
  if (rc != OPLOG_OK) {
    msgf(msg, len, "verify: %s: %s", oplog_code_name(rc), oplog_errmsg(db));
    return 0;
  }
  if (!r.ok || r.problems || r.entries != entries) {
    msgf(msg, len, "verify with replay: ok=%d, %" PRId64 " problems, %" PRId64 " entries (want %" PRId64 ")%s%s",
         r.ok, r.problems, r.entries, entries, first[0] ? ": " : "", first);
    return 0;
  }
  return 1;
}

/* The 14 entries read through db are the fixture's, and so is the head. */
static int same_entries(oplog_db *db, int head_too, char *msg, size_t len) {
  for (int i = 0; i < REL_V1_ENTRIES; i++) {
    oplog_entry *e = NULL;
    int rc = oplog_entry_get(db, i + 1, &e);
    if (rc != OPLOG_OK) {
      msgf(msg, len, "entry %d: %s: %s", i + 1, oplog_code_name(rc), oplog_errmsg(db));
      return 0;
    }
    char *d = digest(e);
    oplog_entry_free(e);
    int same = !strcmp(d, V.digest[i]);
    free(d);
    if (!same) {
      msgf(msg, len, "entry %d reads back other than from the fixture", i + 1);
      return 0;
    }
  }
  if (head_too) {
    int64_t id = 0;
    unsigned char h[OPLOG_HASH_BYTES];
    int rc = oplog_head(db, &id, h);
    if (rc != OPLOG_OK || id != REL_V1_ENTRIES || memcmp(h, V.hash[REL_V1_ENTRIES - 1], sizeof h)) {
      msgf(msg, len, "head: %s, id %" PRId64 ", %s hash", oplog_code_name(rc), id,
           rc == OPLOG_OK && !memcmp(h, V.hash[REL_V1_ENTRIES - 1], sizeof h) ? "the right" : "another");
      return 0;
    }
  }
  return 1;
}

int rel_v1_continue(oplog_db *db, int verify_after, char *msg, size_t len) {
  if (!verify_all(db, REL_V1_ENTRIES, msg, len)) return 0;
  int rc = rel_define_workload(db, "m");
  int64_t id = 0;
  if (rc == OPLOG_OK) rc = rel_seed_counter(db, "m", &id);
  if (rc != OPLOG_OK) {
    msgf(msg, len, "a new entry after the migration: %s: %s", oplog_code_name(rc), oplog_errmsg(db));
    return 0;
  }
  oplog_entry *e = NULL;
  rc = oplog_entry_get(db, id, &e);
  int good = rc == OPLOG_OK && id == REL_V1_ENTRIES + 1 && e->seq == REL_V1_ENTRIES + 1;
  oplog_entry_free(e);
  if (!good) {
    msgf(msg, len, "the new entry is id %" PRId64 " (%s), not seq %d", id, oplog_code_name(rc),
         REL_V1_ENTRIES + 1);
    return 0;
  }
  return !verify_after || verify_all(db, REL_V1_ENTRIES + 1, msg, len);
}

int rel_v1_check(const char *path, int64_t extra, int thorough, char *msg, size_t len) {
  int fmt = rel_v1_format(path, extra, msg, len);
  if (!fmt) return 0;
  oplog_open_opts o;
  oplog_db *db = NULL;
  int rc;
  char m2[512];
  if (thorough) {
    /* read-only: the file as it is, and left as it is */
    o = rel_v1_opts(1);
    rc = oplog_open(path, &o, &db);
    if (rc != OPLOG_OK) {
      msgf(msg, len, "format %d: read-only open: %s: %s", fmt, oplog_code_name(rc),
           db ? oplog_errmsg(db) : "");
      oplog_close(db);
      return 0;
    }
    int good = same_entries(db, extra == 0, msg, len) &&
               verify_all(db, REL_V1_ENTRIES + extra, msg, len);
    oplog_close(db);
    if (!good) return 0;
    int again = rel_v1_format(path, extra, m2, sizeof m2);
    if (again != fmt) {
      msgf(msg, len, "format %d, then %d after a read-only open%s%s", fmt, again, again ? "" : ": ",
           again ? "" : m2);
      return 0;
    }
  }
  /* writable with the key: migrated (now, or already), and it works */
  o = rel_v1_opts(0);
  db = NULL;
  rc = oplog_open(path, &o, &db);
  if (rc != OPLOG_OK) {
    msgf(msg, len, "format %d: writable open: %s: %s", fmt, oplog_code_name(rc), db ? oplog_errmsg(db) : "");
    oplog_close(db);
    return 0;
  }
  if (rel_v1_format(path, extra, m2, sizeof m2) != 2) {
    msgf(msg, len, "format %d: not format 2 after a writable open: %s", fmt, m2);
    oplog_close(db);
    return 0;
  }
  int good = same_entries(db, extra == 0, msg, len);
  if (good && extra) good = verify_all(db, REL_V1_ENTRIES + extra, msg, len);
  if (good && !extra) good = rel_v1_continue(db, thorough, msg, len);
  oplog_close(db);
  if (!good) return 0;
  /* the new entry chained on in format 2 (seq 15, prev_hash = entry 14's) */
  if (rel_v1_format(path, extra ? extra : 1, m2, sizeof m2) != 2) {
    msgf(msg, len, "format %d: after a new entry: %s", fmt, m2);
    return 0;
  }
  return fmt;
}
