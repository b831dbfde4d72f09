/* rel_common.c — see rel_common.h. */
#include "rel_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void rel_die(const char *file, int line, const char *expr, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s:%d: check failed: %s: ", file, line, expr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  /* _exit: a forked child must not run the parent's atexit handlers. */
  _exit(1);
}

int64_t rel_env_int(const char *name, int64_t def) {
  const char *v = getenv(name);
  if (!v || !*v) return def;
  return strtoll(v, NULL, 0);
}

uint64_t rel_rand(rel_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t rel_below(rel_rng *r, uint64_t n) { return rel_rand(r) % n; }

char *rel_mkdtemp(const char *tag) {
  const char *t = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/oplog-rel-%s-XXXXXX", t && *t ? t : "/tmp", tag);
  char *d = mkdtemp(tmpl);
  REL_CHECK(d != NULL, "mkdtemp %s: %s", tmpl, strerror(errno));
  return strdup(d);
}

char *rel_mkdtemp_fast(const char *tag) {
  if (!getenv("REL_NO_SHM") && access("/dev/shm", W_OK) == 0) {
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "/dev/shm/oplog-rel-%s-XXXXXX", tag);
    char *d = mkdtemp(tmpl);
    if (d) return strdup(d);
  }
  return rel_mkdtemp(tag);
}

void rel_rmdir_all(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[1024];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
      rel_rmdir_all(p);
    else
      unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

const char *rel_path(const char *dir, const char *name) {
  static char bufs[4][1024];
  static int i;
  char *b = bufs[i++ & 3];
  snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
  return b;
}

void rel_remove_db(const char *path) {
  char p[1100];
  static const char *sfx[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", path, sfx[i]);
    unlink(p);
  }
}

void rel_copy_file(const char *src, const char *dst) {
  rel_remove_db(dst);
  int in = open(src, O_RDONLY);
  REL_CHECK(in >= 0, "open %s: %s", src, strerror(errno));
  int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REL_CHECK(out >= 0, "open %s: %s", dst, strerror(errno));
  char b[65536];
  ssize_t n;
  while ((n = read(in, b, sizeof b)) > 0) REL_CHECK(write(out, b, n) == n, "write %s", dst);
  REL_CHECK(n == 0, "read %s", src);
  close(in);
  close(out);
}

int rel_integrity_ok(const char *path, char *msg, size_t msglen) {
  sqlite3 *s = NULL;
  int ok = 0;
  snprintf(msg, msglen, "?");
  int rc = sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL);
  if (rc != SQLITE_OK) {
    snprintf(msg, msglen, "open: %s", s ? sqlite3_errmsg(s) : sqlite3_errstr(rc));
    sqlite3_close(s);
    return 0;
  }
  sqlite3_busy_timeout(s, 10000);
  sqlite3_stmt *st = NULL;
  rc = sqlite3_prepare_v2(s, "PRAGMA integrity_check", -1, &st, NULL);
  if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    const char *r = (const char *)sqlite3_column_text(st, 0);
    ok = r && !strcmp(r, "ok");
    snprintf(msg, msglen, "%s", r ? r : "(null)");
  } else {
    snprintf(msg, msglen, "integrity_check: %s", sqlite3_errmsg(s));
  }
  sqlite3_finalize(st);
  sqlite3_close(s);
  return ok;
}

int64_t rel_query_int(const char *path, const char *sql) {
  sqlite3 *s = NULL;
  int rc = sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL);
  REL_CHECK(rc == SQLITE_OK, "open %s: %s", path, sqlite3_errstr(rc));
  sqlite3_busy_timeout(s, 10000);
  sqlite3_stmt *st = NULL;
  rc = sqlite3_prepare_v2(s, sql, -1, &st, NULL);
  REL_CHECK(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(s));
  rc = sqlite3_step(st);
  REL_CHECK(rc == SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(s));
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(s);
  return v;
}

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int64_t rel_meta_blob_walk(const void *blob, size_t n,
                           void (*each)(void *ctx, const char *k, size_t kn, const char *v,
                                        size_t vn),
                           void *ctx) {
  const unsigned char *p = blob;
  size_t i = 0;
  if (n < 4) return -1;
  uint32_t count = le32(p);
  i = 4;
  for (uint32_t c = 0; c < count; c++) {
    if (n - i < 4) return -1;
    size_t kn = le32(p + i);
    i += 4;
    if (n - i < kn + 1) return -1;
    const char *k = (const char *)p + i;
    i += kn;
    unsigned has = p[i++];
    if (has > 1) return -1;
    const char *v = NULL;
    size_t vn = 0;
    if (has) {
      if (n - i < 4) return -1;
      vn = le32(p + i);
      i += 4;
      if (n - i < vn) return -1;
      v = (const char *)p + i;
      i += vn;
    }
    if (each) each(ctx, k, kn, v, vn);
  }
  return i == n ? (int64_t)count : -1;
}

typedef struct meta_match {
  const char *key, *value;
  int hit;
} meta_match;

static void match_pair(void *ctx, const char *k, size_t kn, const char *v, size_t vn) {
  meta_match *m = ctx;
  if (kn == strlen(m->key) && !memcmp(k, m->key, kn) &&
      (m->value ? v && vn == strlen(m->value) && !memcmp(v, m->value, vn) : v == NULL))
    m->hit = 1;
}

int64_t rel_count_meta_raw(const char *path, const char *key, const char *value) {
  sqlite3 *s = NULL;
  int rc = sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL);
  REL_CHECK(rc == SQLITE_OK, "open %s: %s", path, sqlite3_errstr(rc));
  sqlite3_busy_timeout(s, 10000);
  sqlite3_stmt *st = NULL;
  rc = sqlite3_prepare_v2(s, "SELECT id, metadata FROM oplog_entries ORDER BY id", -1, &st, NULL);
  REL_CHECK(rc == SQLITE_OK, "metadata scan: %s", sqlite3_errmsg(s));
  int64_t hits = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    meta_match m = {key, value, 0};
    int64_t pairs = rel_meta_blob_walk(sqlite3_column_blob(st, 1),
                                       (size_t)sqlite3_column_bytes(st, 1), match_pair, &m);
    REL_CHECK(pairs >= 0, "entry %" PRId64 ": metadata blob does not decode",
              (int64_t)sqlite3_column_int64(st, 0));
    hits += m.hit;
  }
  REL_CHECK(rc == SQLITE_DONE, "metadata scan: %s", sqlite3_errmsg(s));
  sqlite3_finalize(st);
  sqlite3_close(s);
  return hits;
}

const unsigned char rel_key[32] = {
    0x6f, 0x70, 0x6c, 0x6f, 0x67, 0x2d, 0x72, 0x65, 0x6c, 0x69, 0x61, 0x62, 0x69, 0x6c, 0x69, 0x74,
    0x79, 0x2d, 0x74, 0x65, 0x73, 0x74, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30, 0x30, 0x30, 0x30, 0x31};

int rel_default_sync = OPLOG_SYNC_FULL;

oplog_open_opts rel_opts(const unsigned char *key) {
  oplog_open_opts o;
  memset(&o, 0, sizeof o);
  if (key) {
    o.key.key = key;
    o.key.key_len = 32;
  } else {
    o.key.no_encryption = 1;
  }
  o.busy_timeout_ms = 10000;
  o.sync = rel_default_sync;
  return o;
}

oplog_db *rel_open(const char *path, const unsigned char *key) {
  oplog_open_opts o = rel_opts(key);
  oplog_db *db = NULL;
  int rc = oplog_open(path, &o, &db);
  if (rc != OPLOG_OK)
    rel_die(__FILE__, __LINE__, "oplog_open", "%s: %s: %s", path, oplog_code_name(rc),
            db ? oplog_errmsg(db) : "(no handle)");
  return db;
}

static int print_problem(void *ctx, int64_t id, const char *kind, const char *detail) {
  fprintf(stderr, "%s: verify problem: entry %" PRId64 ": %s: %s\n", (const char *)ctx, id,
          kind, detail ? detail : "");
  return 0;
}

int rel_verify(oplog_db *db, int replay, const char *who) {
  oplog_verify_opts vo;
  memset(&vo, 0, sizeof vo);
  vo.replay = replay;
  oplog_verify_result r;
  memset(&r, 0, sizeof r);
  int rc = oplog_verify(db, &vo, print_problem, (void *)who, &r);
  if (rc != OPLOG_OK) {
    fprintf(stderr, "%s: oplog_verify failed: %s: %s\n", who, oplog_code_name(rc),
            oplog_errmsg(db));
    return 0;
  }
  return r.ok && r.problems == 0;
}

int64_t rel_count_entries(oplog_db *db, const char *aggregate) {
  oplog_filter f;
  memset(&f, 0, sizeof f);
  f.aggregate = aggregate;
  oplog_iter *it = NULL;
  REL_OK(db, oplog_entries(db, &f, &it));
  int64_t n = 0;
  const oplog_entry *e;
  for (;;) {
    int rc = oplog_iter_next(it, &e);
    if (rc != OPLOG_OK)
      rel_die(__FILE__, __LINE__, "oplog_iter_next", "%s: %s", oplog_code_name(rc),
              oplog_errmsg(db));
    if (!e) break;
    n++;
  }
  oplog_iter_close(it);
  return n;
}

/* ---------------------------------------------------------------- workload */

int rel_define_workload(oplog_db *db, const char *s) {
  char tname[64], table[64], agg[64], cname[64], ctable[64];
  snprintf(tname, sizeof tname, "item_%s", s);
  snprintf(table, sizeof table, "items_%s", s);
  snprintf(agg, sizeof agg, "agg_%s", s);
  snprintf(cname, sizeof cname, "counter_%s", s);
  snprintf(ctable, sizeof ctable, "counters_%s", s);
  static const oplog_column icols[] = {{"id", "INTEGER PRIMARY KEY"},
                                       {"worker", "INTEGER NOT NULL"},
                                       {"seq", "INTEGER NOT NULL"},
                                       {"payload", "BLOB"},
                                       {"note", "TEXT"}};
  static const oplog_column ccols[] = {{"name", "TEXT PRIMARY KEY NOT NULL"},
                                       {"last", "INTEGER"}};
  oplog_type_spec t = {tname, table, agg, icols, 5, NULL, 0};
  int rc = oplog_define(db, &t);
  if (rc) return rc;
  oplog_type_spec c = {cname, ctable, agg, ccols, 2, NULL, 0};
  return oplog_define(db, &c);
}

int rel_seed_counter(oplog_db *db, const char *s, int64_t *entry_id) {
  char agg[64], cname[64];
  snprintf(agg, sizeof agg, "agg_%s", s);
  snprintf(cname, sizeof cname, "counter_%s", s);
  int rc = oplog_tx_begin(db, agg);
  if (rc) return rc;
  oplog_field f[2] = {{"name", {OPLOG_TEXT, {.b = {"c", 1}}}},
                      {"last", {OPLOG_INTEGER, {.i = 0}}}};
  oplog_op op = {cname, OPLOG_OP_CREATE, {f, 2}, NULL, 0, NULL, 0};
  rc = oplog_tx_apply(db, &op);
  if (rc) return rc;
  return oplog_tx_commit(db, NULL, 0, entry_id);
}

unsigned char rel_payload_byte(int64_t id, size_t i) {
  return (unsigned char)((uint64_t)id * 131u + i * 7u + (i >> 8));
}

size_t rel_payload_len(int64_t id) { return (size_t)((uint64_t)id % 97u) * 3u; }

int rel_write_tx(oplog_db *db, const char *s, int64_t worker, int64_t seq, size_t plen,
                 int64_t *entry_id) {
  char agg[64], tname[64], cname[64];
  snprintf(agg, sizeof agg, "agg_%s", s);
  snprintf(tname, sizeof tname, "item_%s", s);
  snprintf(cname, sizeof cname, "counter_%s", s);
  int64_t id = worker * 1000000 + seq;
  unsigned char stackbuf[512];
  unsigned char *payload = plen <= sizeof stackbuf ? stackbuf : malloc(plen);
  REL_CHECK(payload != NULL, "malloc");
  for (size_t i = 0; i < plen; i++) payload[i] = rel_payload_byte(id, i);
  char note[64];
  int nn = snprintf(note, sizeof note, "w%" PRId64 " s%" PRId64 " 'quoted' \"x\"", worker, seq);
  oplog_field f[5] = {{"id", {OPLOG_INTEGER, {.i = id}}},
                      {"worker", {OPLOG_INTEGER, {.i = worker}}},
                      {"seq", {OPLOG_INTEGER, {.i = seq}}},
                      {"payload", {OPLOG_BLOB, {.b = {payload, plen}}}},
                      {"note", {OPLOG_TEXT, {.b = {note, (size_t)nn}}}}};
  oplog_op op = {tname, OPLOG_OP_CREATE, {f, 5}, NULL, 0, NULL, 0};
  oplog_field cf[2] = {{"name", {OPLOG_TEXT, {.b = {"c", 1}}}},
                       {"last", {OPLOG_INTEGER, {.i = id}}}};
  static const char *const mask[] = {"last"};
  oplog_op cop = {cname, OPLOG_OP_UPDATE, {cf, 2}, mask, 1, NULL, 0};
  char ws[32], ss[32];
  snprintf(ws, sizeof ws, "%" PRId64, worker);
  snprintf(ss, sizeof ss, "%" PRId64, seq);
  oplog_meta md[5] = {{"worker", ws}, {"seq", ss}, {"tag", NULL}, {"multi", "x"}, {"multi", "y"}};
  int rc = oplog_tx_begin(db, agg);
  if (rc == OPLOG_OK) rc = oplog_tx_apply(db, &op);
  if (rc == OPLOG_OK) rc = oplog_tx_apply(db, &cop);
  if (rc == OPLOG_OK) rc = oplog_tx_commit(db, md, 5, entry_id);
  if (payload != stackbuf) free(payload);
  return rc;
}

static const oplog_value *field(const oplog_op *op, const char *name) {
  for (size_t i = 0; i < op->row.nfields; i++)
    if (!strcmp(op->row.fields[i].name, name)) return &op->row.fields[i].value;
  return NULL;
}

typedef struct item_rec {
  int64_t id, worker, seq, entry;
  uint64_t hash;
  size_t len;
} item_rec;

static uint64_t fnv(const void *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ULL;
  return h;
}

static int cmp_id(const void *a, const void *b) {
  int64_t x = ((const item_rec *)a)->id, y = ((const item_rec *)b)->id;
  return x < y ? -1 : x > y;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int64_t rel_check_workload(oplog_db *db, const char *path, const char *s, int64_t initial_ticket) {
  char agg[64], tname[64], cname[64], sql[256];
  snprintf(agg, sizeof agg, "agg_%s", s);
  snprintf(tname, sizeof tname, "item_%s", s);
  snprintf(cname, sizeof cname, "counter_%s", s);

  /* What the log says the live tables hold: created items minus deleted. */
  item_rec *items = NULL;
  int64_t *dels = NULL;
  size_t nitems = 0, capi = 0, ndels = 0, capd = 0;
  oplog_filter f;
  memset(&f, 0, sizeof f);
  f.aggregate = agg;
  oplog_iter *it = NULL;
  REL_OK(db, oplog_entries(db, &f, &it));
  int64_t entries = 0, last = -1;
  const oplog_entry *e;
  for (;;) {
    int rc = oplog_iter_next(it, &e);
    REL_CHECK(rc == OPLOG_OK, "iter_next: %s: %s", oplog_code_name(rc), oplog_errmsg(db));
    if (!e) break;
    entries++;
    REL_CHECK(e->nops >= 1, "entry %" PRId64 " has no operation", e->id);
    REL_CHECK(!strcmp(e->aggregate, agg), "entry %" PRId64 " of %s in the %s filter", e->id,
              e->aggregate, agg);
    for (size_t i = 0; i < e->nops; i++) {
      const oplog_op *op = &e->ops[i];
      if (!strcmp(op->type, tname) && op->kind == OPLOG_OP_CREATE) {
        const oplog_value *id = field(op, "id"), *w = field(op, "worker"),
                          *sq = field(op, "seq"), *p = field(op, "payload");
        REL_CHECK(id && w && sq, "entry %" PRId64 ": item op lacks fields", e->id);
        if (nitems == capi) {
          capi = capi ? capi * 2 : 256;
          items = realloc(items, capi * sizeof *items);
          REL_CHECK(items != NULL, "realloc");
        }
        item_rec *r = &items[nitems++];
        r->id = id->u.i;
        r->worker = w->u.i;
        r->seq = sq->u.i;
        r->entry = e->id;
        r->len = p && p->type == OPLOG_BLOB ? p->u.b.n : 0;
        r->hash = fnv(p && p->type == OPLOG_BLOB ? p->u.b.p : "", r->len);
      } else if (!strcmp(op->type, tname) && op->kind == OPLOG_OP_DELETE) {
        const oplog_value *id = field(op, "id");
        REL_CHECK(id != NULL, "entry %" PRId64 ": delete lacks the key", e->id);
        if (ndels == capd) {
          capd = capd ? capd * 2 : 64;
          dels = realloc(dels, capd * sizeof *dels);
          REL_CHECK(dels != NULL, "realloc");
        }
        dels[ndels++] = id->u.i;
      } else if (!strcmp(op->type, cname) && op->kind == OPLOG_OP_UPDATE) {
        const oplog_value *l = field(op, "last");
        REL_CHECK(l != NULL, "entry %" PRId64 ": counter update lacks last", e->id);
        last = l->u.i;
      } else if (!strcmp(op->type, cname) && op->kind == OPLOG_OP_CREATE) {
        last = 0;
      }
    }
  }
  oplog_iter_close(it);
  if (nitems) qsort(items, nitems, sizeof *items, cmp_id);
  if (ndels) qsort(dels, ndels, sizeof *dels, cmp_i64);
  for (size_t i = 1; i < nitems; i++)
    REL_CHECK(items[i].id != items[i - 1].id,
              "item %" PRId64 " created twice (entries %" PRId64 " and %" PRId64 ")", items[i].id,
              items[i - 1].entry, items[i].entry);

  sqlite3 *raw = NULL;
  REL_CHECK(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "open %s",
            path);
  sqlite3_busy_timeout(raw, 10000);
  sqlite3_stmt *q = NULL;
  snprintf(sql, sizeof sql, "SELECT worker, seq, payload FROM items_%s WHERE id = ?", s);
  REL_CHECK(sqlite3_prepare_v2(raw, sql, -1, &q, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(raw));
  int64_t expected_live = 0;
  for (size_t i = 0; i < nitems; i++) {
    item_rec *r = &items[i];
    int deleted = ndels && bsearch(&r->id, dels, ndels, sizeof *dels, cmp_i64) != NULL;
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, r->id);
    int src = sqlite3_step(q);
    if (deleted) {
      REL_CHECK(src == SQLITE_DONE, "item %" PRId64 " was deleted in the log but is live",
                r->id);
      continue;
    }
    expected_live++;
    REL_CHECK(src == SQLITE_ROW,
              "partial entry: entry %" PRId64 " created item %" PRId64
              " but the live row is missing",
              r->entry, r->id);
    const unsigned char *b = sqlite3_column_blob(q, 2);
    size_t n = (size_t)sqlite3_column_bytes(q, 2);
    REL_CHECK(sqlite3_column_int64(q, 0) == r->worker && sqlite3_column_int64(q, 1) == r->seq &&
                  n == r->len && fnv(b ? (const void *)b : "", n) == r->hash,
              "entry %" PRId64 ": live item %" PRId64 " differs from the log", r->entry, r->id);
  }
  sqlite3_finalize(q);
  sqlite3_close(raw);
  free(items);
  free(dels);

  snprintf(sql, sizeof sql, "SELECT count(*) FROM items_%s", s);
  int64_t live_items = rel_query_int(path, sql);
  REL_CHECK(live_items == expected_live,
            "live changes without entry: %" PRId64 " live items, the log leaves %" PRId64,
            live_items, expected_live);
  if (last >= 0) {
    snprintf(sql, sizeof sql, "SELECT last FROM counters_%s WHERE name = 'c'", s);
    int64_t live_last = rel_query_int(path, sql);
    REL_CHECK(live_last == last, "counter of %s is %" PRId64 ", newest entry set %" PRId64, s,
              live_last, last);
  }
  int64_t ticket = -1;
  REL_OK(db, oplog_ticket(db, agg, &ticket));
  REL_CHECK(ticket == initial_ticket + entries,
            "ticket of %s is %" PRId64 ", expected %" PRId64 " + %" PRId64 " entries", agg,
            ticket, initial_ticket, entries);
  return entries;
}

int rel_env_code_ok(int code) {
  return code == OPLOG_OK || code == OPLOG_IO || code == OPLOG_BUSY || code == OPLOG_NOMEM ||
         code == OPLOG_READONLY;
}
