/*
 * internal.h — what the core's files share and nothing outside src/ may use
 * (tests/ may, to reach fuzz entry points). One struct per concept; each
 * .c file owns the fields of its concept. Every function with external
 * linkage here is named opl_*: the library exports only oplog_* (hidden
 * visibility), and opl_ keeps the internals out of other libraries'
 * namespaces (crypto_* is libsodium's) even in a static link.
 */
#ifndef OPLOG_INTERNAL_H
#define OPLOG_INTERNAL_H

#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>

#include "oplog.h"

#define OPLOG_MAX_COLUMNS 64
#define OPLOG_KEY_BYTES 32
#define OPLOG_NONCE_BYTES 24
#define OPLOG_TAG_BYTES 16
#define OPLOG_FORMAT_VERSION 2
/* The derived tables are caught up when this many entries lie above them. */
#define INDEX_FLUSH_EVERY 256

/* ---------------------------------------------------------------- arena (arena.c)
 * Bump allocator for decoded entries: one reset per entry instead of a free
 * per protobuf-c object. Memory comes from sqlite3_malloc64. */
typedef struct arena_chunk arena_chunk;
typedef struct arena {
  arena_chunk *head;
  int failed; /* an allocation failed since the last reset */
} arena;
void *opl_arena_alloc(arena *a, size_t n);
char *opl_arena_strndup(arena *a, const char *s, size_t n);
void opl_arena_reset(arena *a); /* keeps the newest chunk for reuse */
void opl_arena_free(arena *a);
/* A ProtobufCAllocator over an arena (frees are no-ops). */
struct ProtobufCAllocator;
void opl_arena_protobuf_allocator(arena *a, struct ProtobufCAllocator *out);

/* A growable byte buffer (sqlite3_realloc64). */
typedef struct buf {
  uint8_t *p;
  size_t n, cap;
} buf;
int opl_buf_reserve(buf *b, size_t extra); /* OPLOG_OK or OPLOG_NOMEM */
int opl_buf_append(buf *b, const void *p, size_t n);
void opl_buf_free(buf *b);

/* An index of the records of a growing array (util.c) by a key of klen
 * bytes at the start of each record: open addressing over SipHash with a
 * random key, so that keys a hostile stream chooses cannot make lookups
 * linear. */
typedef struct opl_hindex {
  size_t *slot; /* a record's position + 1; 0: empty */
  size_t cap;   /* 0, or a power of two above twice the records */
  unsigned char seed[16];
} opl_hindex;
/* p (n records of size bytes, room for *cap) with room for one more:
 * the same or a doubled block; NULL (p untouched) when out of memory. */
void *opl_grow(void *p, size_t *cap, size_t n, size_t size);
/* The position of the record in base[] whose key is key; SIZE_MAX if none. */
size_t opl_hindex_find(const opl_hindex *h, const void *base, size_t stride, size_t klen, const void *key);
/* Indexes record n - 1 of base[] (just appended); OPLOG_NOMEM. */
int opl_hindex_add(opl_hindex *h, const void *base, size_t stride, size_t klen, size_t n);
void opl_hindex_free(opl_hindex *h);

/* ---------------------------------------------------------------- catalog (catalog.c) */
enum { AFF_INTEGER, AFF_TEXT, AFF_BLOB, AFF_REAL, AFF_NUMERIC };

typedef struct type_def {
  char *name, *table, *aggregate;
  size_t ncols;
  char **col_names;
  char **col_decls;
  int *col_aff;
  size_t nkey;
  int key_idx[OPLOG_MAX_COLUMNS]; /* column index of each key part */
  uint64_t key_mask;              /* bit i: column i is part of the key */
  int rowid_key;                  /* single INTEGER PRIMARY KEY column */
  int index;                      /* position in db->types */
} type_def;

/* Finds a type, reloading the catalog once on a miss (another connection
 * may have defined it). *out is NULL if absent (not an error); a failed
 * reload is returned as its error. */
int opl_catalog_find(oplog_db *db, const char *name, const type_def **out);
int opl_catalog_load(oplog_db *db);
void opl_catalog_free(oplog_db *db);
int opl_column_index(const type_def *t, const char *name); /* -1 if absent */
/* A type outside db's catalog (PostgreSQL's, for ship --apply), checked
 * as define checks its arguments; freed with opl_type_free. */
int opl_type_make(oplog_db *db, const oplog_type_spec *spec, type_def **out);
void opl_type_free(type_def *t);
int opl_valid_identifier(const char *s);

/* ---------------------------------------------------------------- apply (row.c)
 * Applies one operation to a table of a type, in a target (schema + suffix):
 * live tables are ("main", ""). Statements are cached per shape. */
typedef struct stmt_slot {
  const type_def *type;
  int kind;
  uint64_t set_mask, null_mask;
  sqlite3_stmt *stmt;
} stmt_slot;

#define STMT_CACHE_SLOTS 256
typedef struct stmt_cache {
  const char *schema; /* quoted into SQL, validated identifier */
  const char *suffix;
  int read_back; /* live writes: read the row back as stored, to log it */
  unsigned gen; /* db->catalog_gen the slots were prepared for */
  stmt_slot slot[STMT_CACHE_SLOTS];
} stmt_cache;

void opl_stmt_cache_init(stmt_cache *c, const char *schema, const char *suffix, int read_back);
void opl_stmt_cache_clear(stmt_cache *c);

/* Checks an operation against its type: known columns, no duplicates, key
 * present, mask/nulls rules, UTF-8 text. Fills cols[i] = column index of
 * op->row.fields[i]. */
int opl_op_validate(oplog_db *db, const type_def *t, const oplog_op *op, int *cols);
/* The stored type of a value in a column (TEXT on a BLOB column is BLOB). */
oplog_value_type opl_value_stored_type(const type_def *t, int col, const oplog_value *v);
/* Runs the op's SQL; update/delete of a missing row is OPLOG_NOT_FOUND.
 * In a cache with `read_back`, the row as the table stored it is appended
 * to log (if not NULL) as the operation to record. */
struct queue;
/* An operation's shape against its type: its class (OPLOG_OP_CREATE,
 * _UPDATE or _DELETE: the _ITEMS kinds fold into theirs), the field index
 * of each column (-1: not given), and the columns it gives, sets and nulls. */
typedef struct op_shape {
  int cls;
  int field_of[OPLOG_MAX_COLUMNS];
  uint64_t present, set, nul;
} op_shape;
void opl_op_shape(const type_def *t, const oplog_op *op, const int *cols, op_shape *out);
int opl_op_apply(oplog_db *db, stmt_cache *c, const type_def *t, const oplog_op *op, const int *cols, struct queue *log);
/* *exists: the table of c holds a row with op's key (0 when op leaves its
 * rowid key to SQLite). */
int opl_op_key_exists(oplog_db *db, stmt_cache *c, const type_def *t, const oplog_op *op, const int *cols, int *exists);

/* ---------------------------------------------------------------- queue (queue.c)
 * The encoded operations of one entry: protobuf EntryData, appended one
 * AnyOperation at a time (Boundary's Queue). */
typedef struct queue {
  buf data;
  size_t nops;
  buf texts; /* one operation's NUL-terminated texts */
  buf row;   /* one operation's encoded Row */
} queue;
int opl_queue_add(oplog_db *db, queue *q, const type_def *t, const oplog_op *op, const int *cols);
void opl_queue_reset(queue *q);

/* Decodes EntryData into ops allocated in `a`. Every type must be in the
 * catalog (OPLOG_NOT_FOUND otherwise). Fuzz entry point. */
int opl_entry_decode(oplog_db *db, arena *a, const uint8_t *p, size_t n, const oplog_op **ops,
                 size_t *nops);
/* The same; check_types 0 leaves the types to the caller (a catalog that
 * is not db's: PostgreSQL's, for ship --apply). */
int opl_entry_data_decode(oplog_db *db, arena *a, const uint8_t *p, size_t n, int check_types, const oplog_op **ops,
                          size_t *nops);

/* ---------------------------------------------------------------- entries as stored
 * One row of oplog_entries, borrowed from a statement or a writer's buffers. */
typedef struct stored_entry {
  int64_t id;                /* local arrival order; 0 before insert */
  int64_t origin;            /* oplog_origins.no */
  const uint8_t *origin_id;  /* OPLOG_ORIGIN_BYTES */
  int64_t seq, clock, created, key_id;
  const char *aggregate;
  size_t aggregate_len;
  const uint8_t *metadata; /* the stored metadata blob (meta.c) */
  size_t nmetadata;
  const uint8_t *data;
  size_t ndata;
  const uint8_t *prev_hash; /* OPLOG_HASH_BYTES */
  const uint8_t *hash;      /* as stored, when read */
  int format;               /* 1: migrated from format 1; 2 */
} stored_entry;

/* The columns opl_entry_from_row reads, in order (unprefixed, for writing). */
#define ENTRY_COLUMNS \
  "id, origin, seq, clock, created, aggregate_name, key_id, metadata, data, prev_hash, hash, format"
/* The same for reading, with the columns of table alias `p` (e.g. "e."):
 * metadata and data are NULL, never loaded, when larger than the cap
 * (both %lld). */
#define ENTRY_COLUMNS_READ(p)                                                                         \
  p "id, " p "origin, " p "seq, " p "clock, " p "created, " p "aggregate_name, " p "key_id, "          \
  "CASE WHEN length(" p "metadata) <= %lld THEN " p "metadata END, CASE WHEN length(" p "data) <= %lld " \
  "THEN " p "data END, " p "prev_hash, " p "hash, " p "format"
/* Fills e from a row of ENTRY_COLUMNS starting at column 0; pointers stay
 * valid until the statement moves. A hash or prev_hash of the wrong size,
 * or an unknown origin, is OPLOG_CORRUPT; so is an entry over the cap,
 * whose metadata and data are then NULL while the rest of e is filled. */
int opl_entry_from_row(oplog_db *db, sqlite3_stmt *s, stored_entry *e);

/* ---------------------------------------------------------------- metadata (meta.c) */
int opl_meta_check(oplog_db *db, const oplog_meta *md, size_t n);
int opl_meta_encode(oplog_db *db, const oplog_meta *md, size_t n, buf *out);
int opl_meta_decode(oplog_db *db, arena *a, const uint8_t *p, size_t n, const oplog_meta **out,
                size_t *nout);
typedef struct meta_reader {
  const uint8_t *p;
  size_t n, off;
  uint32_t left;
} meta_reader;
typedef struct meta_pair {
  const char *key, *value;
  size_t nkey, nvalue;
  int has_value;
} meta_pair;
int opl_meta_open(meta_reader *r, const uint8_t *p, size_t n); /* 0: malformed */
int opl_meta_next(meta_reader *r, meta_pair *out);             /* 1 pair, 0 end, -1 malformed */
int opl_meta_register(sqlite3 *sql); /* the SQL functions oplog_meta_has, oplog_meta_pack */

/* ---------------------------------------------------------------- crypto (crypto.c) */
typedef struct data_key {
  int64_t origin, id;
  unsigned char key[OPLOG_KEY_BYTES];
} data_key;

typedef struct keyring {
  int encrypted;       /* the file is encrypted */
  int have_key;        /* its root key is available */
  unsigned char *root; /* sodium_malloc'd, OPLOG_KEY_BYTES */
  data_key *keys;      /* sodium_malloc'd array */
  size_t nkeys;
  int64_t active;      /* id of this origin's key for new entries */
} keyring;

/* Reads (and for a new file, creates) the encryption settings and keys. */
int opl_crypto_open(oplog_db *db, const oplog_key_source *src, int is_new);
void opl_crypto_close(oplog_db *db);
/* OPLOG_KEY_REQUIRED when the file is encrypted and its key was not given. */
int opl_key_required(oplog_db *db);
/* What can be checked of a key source for a new root before any work:
 * key length, passphrase limits (range and minimum). */
int opl_crypto_check_new_source(oplog_db *db, const oplog_key_source *src);
/* Reads a passphrase from fd into sodium_malloc'd memory (free with
 * passphrase_free, which wipes); 0 or an errno value. */
int opl_passphrase_read_fd(int fd, char **out, size_t *n);
void opl_passphrase_free(char *p);
/* Sets e->key_id to the active key and appends nonce || ciphertext to out;
 * the additional data comes from e (FORMAT.md). */
int opl_crypto_encrypt_entry(oplog_db *db, stored_entry *e, const uint8_t *plain, size_t n, buf *out);
int opl_crypto_decrypt_entry(oplog_db *db, const stored_entry *e, buf *out);
/* Fuzz entry point: checks one stored key row against the loaded root key.
 * origin_id NULL: the format-1 wrapping. */
int opl_crypto_unwrap(const unsigned char *root, const uint8_t *origin_id, int64_t id, const uint8_t *nonce,
                  size_t nnonce, const uint8_t *wrapped, size_t nwrapped, unsigned char key[OPLOG_KEY_BYTES]);
/* Makes this file's origin (no 1): an Ed25519 key pair, its seed wrapped
 * by the root key (or kept as is in a plaintext file). */
int opl_origin_create(oplog_db *db);
/* Wraps every loaded data key of a migrated file again, for its origin. */
int opl_crypto_rewrap_all(oplog_db *db, const unsigned char *root);
/* The 32-byte id of origin `no` (loaded on a miss); NULL and an error if absent. */
const uint8_t *opl_origin_id(oplog_db *db, int64_t no);
/* Empties the cache of origin ids by number: after a rolled-back import,
 * whose origin rows' numbers the next ones take again. */
void opl_origins_forget(oplog_db *db);
/* This file's origin's Ed25519 secret key (crypto_sign_SECRETKEYBYTES into
 * sk, which the caller sodium_malloc's and frees): from its seed, unwrapped
 * with the root key (OPLOG_KEY_REQUIRED without it) or as stored in a
 * plaintext file; OPLOG_CORRUPT if it does not make the origin's id. */
int opl_origin_secret(oplog_db *db, unsigned char *sk);

/* ---------------------------------------------------------------- chain (chain.c) */
/* e's hash (FORMAT.md "Hash chain", by e->format). OPLOG_CORRUPT if a
 * format-1 entry's metadata cannot be read. */
int opl_chain_hash(const stored_entry *e, unsigned char out[OPLOG_HASH_BYTES]);

/* ---------------------------------------------------------------- statements (db.c) */
enum {
  ST_TICKET_GET,
  ST_TICKET_ENSURE,
  ST_DATA_VERSION,
  ST_STATE,
  ST_HEAD_TAIL, /* these two in this order (index.c) */
  ST_HEAD_INDEXED,
  ST_ENTRY_INSERT,
  ST_ORIGIN_GET,
  ST_BEGIN,
  ST_BEGIN_READ,
  ST_COMMIT,
  ST_ROLLBACK,
  ST__COUNT
};
sqlite3_stmt *opl_db_stmt(oplog_db *db, int which); /* NULL: error set */
/* BEGIN IMMEDIATE (write) or BEGIN (read), COMMIT, and a ROLLBACK that
 * keeps the handle's error and is a no-op outside a transaction. */
int opl_db_begin(oplog_db *db, int write);
int opl_db_commit(oplog_db *db);
void opl_db_rollback(oplog_db *db);

/* ---------------------------------------------------------------- the handle */
enum { TX_NONE, TX_HIGH, TX_LOW };

typedef struct log_state {
  int valid;   /* matches the file as of data_version */
  int checked; /* data_version was compared in this transaction */
  int64_t data_version;
  int64_t wm;      /* oplog_config 'indexed_upto' */
  int64_t last_id; /* newest entry id */
  int64_t clock;   /* largest clock in the file */
  int64_t seq, head_id; /* this origin's newest entry */
  unsigned char hash[OPLOG_HASH_BYTES];
  int tk_valid; /* one cached ticket */
  char tk_name[64];
  int64_t tk_version;
} log_state;

struct oplog_db {
  sqlite3 *sql;
  char *path;
  int code;
  char *msg; /* sqlite3_malloc'd */
  int readonly;
  keyring kr;
  /* catalog */
  type_def **types;
  size_t ntypes;
  unsigned catalog_gen; /* bumped on every reload: cached statements expire */
  /* statements */
  sqlite3_stmt *st[ST__COUNT];
  stmt_cache live; /* ("main", "") */
  /* transaction */
  int tx;
  char *tx_aggregate;
  int64_t tx_ticket;
  int64_t tx_last_rowid;
  queue q;
  /* The log's state, cached across transactions (index.c). */
  log_state ls;
  int format;                                 /* 1: a format-1 file read as it is */
  int level;                                  /* the schema level at open (3: sync tables, oplog_index.clock) */
  int wrote;                                  /* entries written since open */
  int wal_made;                               /* read-only, and no -wal/-shm was there at open */
  unsigned char self_id[OPLOG_ORIGIN_BYTES];  /* this file's origin */
  struct origin_slot {
    int64_t no; /* first: the key of origins_ix */
    unsigned char id[OPLOG_ORIGIN_BYTES];
  } *origins;
  size_t norigins, origins_cap;
  opl_hindex origins_ix; /* a file may hold very many origins */
  buf mbuf;     /* an entry's metadata blob */
  int64_t max_entry; /* oplog_open_opts.max_entry_bytes */
  char *entry_cols;  /* ENTRY_COLUMNS_READ for no alias and for "e.", with the cap */
  char *entry_cols_e;
  buf adbuf;    /* an entry's additional data */
  buf scratch;  /* encrypted entry data */
  buf scratch2; /* decrypted entry data */
};

/* ---------------------------------------------------------------- errors (error.c) */
int opl_db_error(oplog_db *db, int code, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Sets code with the message so far naming entry id ("entry <id>: ..."),
 * unless it begins by naming it already. */
int opl_db_error_entry(oplog_db *db, int code, int64_t id);
/* Maps a SQLite result (and its message) to an oplog code and sets it. */
int opl_db_sqlerr(oplog_db *db, int rc);
int opl_map_sqlite_code(int rc);
void opl_db_clear_error(oplog_db *db);

/* ---------------------------------------------------------------- helpers (util.c) */
/* The derived tables' watermark, as a scalar subquery in SQL. */
#define SQL_INDEXED_UPTO "(SELECT value FROM oplog_config WHERE name = 'indexed_upto')"
/* A TEXT or BLOB column's bytes without asking SQLite for a NUL terminator
 * (sqlite3_column_text may allocate for it, and fail under memory
 * pressure); "" for NULL. */
const char *opl_col_bytes(sqlite3_stmt *s, int i, size_t *n);
/* A NUL-terminated sqlite3_malloc'd copy of a column; NULL: out of memory. */
char *opl_col_dup(sqlite3_stmt *s, int i);
int64_t opl_now_ms(void);
int opl_utf8_valid(const uint8_t *p, size_t n);
int opl_db_exec(oplog_db *db, const char *sql);
/* Creates path empty with mode 0600 unless it exists (db.c). */
int opl_create_private(oplog_db *db, const char *path);
void opl_put_u32(uint8_t *p, uint32_t v);
void opl_put_u64(uint8_t *p, uint64_t v);

/* index.c: derived tables, the cached state, tickets. */
/* Entries per aggregate, counted (few aggregates: a list). */
typedef struct agg_count {
  char *name;
  int64_t n;
} agg_count;
typedef struct agg_counts {
  agg_count *a;
  size_t n, cap;
} agg_counts;
int opl_agg_counts_add(agg_counts *c, const char *name, size_t len); /* OPLOG_NOMEM */
int64_t opl_agg_counts_take(agg_counts *c, const char *name, size_t len); /* the count, zeroed */
void opl_agg_counts_free(agg_counts *c);
int opl_state_check(oplog_db *db); /* inside a write transaction */
void opl_state_forget(oplog_db *db);
int opl_index_flush(oplog_db *db);
void opl_index_flush_at_close(oplog_db *db);
int opl_ticket_read(oplog_db *db, const char *aggregate, int64_t *version);
void opl_ticket_remember(oplog_db *db, const char *aggregate, int64_t version);
int opl_ticket_ensure(oplog_db *db, const char *aggregate);

/* format1.c: format-1 files read as they are, and migrated. */
int opl_format1_views(oplog_db *db);
int opl_format1_drop_views(oplog_db *db); /* in the migrating transaction, before schema/002 */
/* Inside the transaction that applied schema/002: copies a format-1 file's
 * rows (from_level 1) into the format-2 tables and drops the old ones. */
int opl_format1_migrate(oplog_db *db, int from_level);

/* entry.c: writes one entry (data = encoded EntryData) inside the caller's
 * transaction: checks the ticket, encrypts, chains, inserts. */
int opl_entry_write(oplog_db *db, const char *aggregate, int64_t ticket, const oplog_meta *md,
                size_t nmd, const uint8_t *data, size_t ndata, int64_t *id);

/* reader.c: the streaming reader shared by oplog_entries and replay. */
enum { ITER_OPS = 1, ITER_META = 2 }; /* decrypt and decode; load metadata */
int opl_iter_open(oplog_db *db, const oplog_filter *f, int flags, oplog_iter **out);
/* Fills e from a row of ENTRY_COLUMNS (into a): metadata with ITER_META,
 * decrypted and decoded operations with ITER_OPS. */
int opl_entry_load(oplog_db *db, sqlite3_stmt *row, int flags, arena *a, oplog_entry *e);
int64_t opl_iter_count(oplog_db *db, const oplog_filter *f, int *rc);

/* Loads entry id with its operations (into a) through *st, a statement
 * prepared on the first call and reset before returning (converge.c). */
int opl_entry_by_id(oplog_db *db, sqlite3_stmt **st, int64_t id, arena *a, oplog_entry *e);
/* Receives each conflict a replay in total order finds. */
typedef int (*opl_conflict_fn)(void *ctx, int64_t entry_id, int op, const char *kind, const char *detail);
/* replay.c: replays the selected entries into (schema, suffix) targets.
 * When the failure lies in the log itself (an entry that does not decrypt,
 * decode or apply), *bad_entry (if not NULL) is that entry's id, else 0.
 * A file holding more than one origin replays in total order, entries that
 * cannot apply skipped whole and passed to on_conflict (may be NULL). */
int opl_replay_run(oplog_db *db, const char *schema, const char *suffix, const oplog_filter *f,
               int fresh, oplog_progress_fn progress, void *pctx, oplog_replay_result *out,
               int64_t *bad_entry, opl_conflict_fn on_conflict, void *cctx);
int64_t opl_iter_current_id(const oplog_iter *it); /* id of the entry last read or failed */
int opl_target_create(oplog_db *db, const type_def *t, const char *schema, const char *suffix,
                  int fresh);

/* ---------------------------------------------------------------- sync
 * converge.c: the total order and the live tables of a merged file. */
/* The largest clock an imported entry may carry (2^62): a local write
 * takes 1 + the largest clock in the file and must not overflow. */
#define OPL_CLOCK_MAX ((int64_t)1 << 62)
/* <0, 0, >0 as (clock, origin id bytes, seq) of a sorts before, with, after b. */
int opl_order_cmp(int64_t clock_a, const uint8_t *origin_a, int64_t seq_a, int64_t clock_b,
                  const uint8_t *origin_b, int64_t seq_b);
/* Inside an import's write transaction, after it inserted its new entries
 * (every entry with id >= first_id, ids contiguous): applies them so that
 * the live tables equal the replay of all entries in total order, entries
 * that cannot apply skipped whole and recorded in oplog_conflicts. A batch
 * sorting after every entry held before it applies incrementally; one that
 * lands behind recomputes only the rows those entries touch. *nconflicts
 * gets the number of conflicts this import added (net). */
int opl_converge(oplog_db *db, int64_t first_id, int64_t *nconflicts);
/* The touch index (oplog_touches, watermark 'touched_upto'): brings it up
 * to the newest entry. strict 0 (the derived tables' flush, whose old
 * watermark is from): only when it is not lagging (touched_upto = from)
 * and the entries can be read, stopping quietly before an entry that does
 * not decode; strict 1: all of it, or the error. */
int opl_touch_flush(oplog_db *db, int64_t from, int strict);
/* The canonical key of op's row (FORMAT.md "Touch index") appended to out:
 * 0, or 1 when the op names no key (a create leaving out its rowid key). */
int opl_touch_key(const type_def *t, const oplog_op *op, const int *cols, buf *out, int *nokey);
/* Appends "(k1, k2)", op's key SQL-quoted as quote() does ("new rowid" for
 * a key left to SQLite), for a conflict's detail. */
void opl_key_describe(sqlite3_str *q, const type_def *t, const oplog_op *op, const int *cols);
/* Calls fn for each touch row (type, canonical key) the operations of entry
 * id name, in order, duplicates included; an operation that does not
 * validate against the catalog is an error naming the entry. */
typedef int (*touch_fn)(void *ctx, const type_def *t, const buf *key);
int opl_touch_rows(oplog_db *db, int64_t id, const oplog_op *ops, size_t nops, buf *key, touch_fn fn, void *ctx);
/* Applies an entry's operations (in a savepoint) to the tables of cache c;
 * when one cannot apply, the entry is undone whole and *op gets its 1-based
 * index (else 0), *kind "exists", "missing" or "constraint" and *detail a
 * sqlite3_malloc'd text naming type and key. Other failures are errors. */
int opl_entry_apply(oplog_db *db, stmt_cache *c, const oplog_entry *e, int *op, const char **kind, char **detail);

/* checkpoint.c: signed checkpoints (FORMAT.md "Checkpoint"). */
typedef struct checkpoint_info {
  unsigned char origin[OPLOG_ORIGIN_BYTES];
  int64_t seq;
  unsigned char hash[OPLOG_HASH_BYTES];
  int64_t time_ms;
} checkpoint_info;
/* Signs a checkpoint of this file's origin at (seq, hash); *out is
 * sqlite3_malloc'd text. */
int opl_checkpoint_sign(oplog_db *db, int64_t seq, const unsigned char hash[OPLOG_HASH_BYTES], char **out);
/* Parses text and checks its signature against the origin it names:
 * OPLOG_CORRUPT with a message saying what is wrong (malformed, or the
 * signature does not verify: *bad_signature is then 1). */
int opl_checkpoint_open(oplog_db *db, const char *text, size_t n, checkpoint_info *out, int *bad_signature);
/* verify's check of a checkpoint's text against the entries held: reports
 * "bad_signature" or "checkpoint_mismatch" through report (which returns
 * OPLOG_OK, or an error it has set on db: returned as is); a malformed
 * text is OPLOG_INVALID_ARGUMENT. Inside the caller's read transaction. */
int opl_checkpoint_verify(oplog_db *db, const char *text, size_t n, oplog_problem_fn report, void *ctx);

/* crypto.c (sync): data keys sealed to a recipient, and other origins' keys. */
#define OPL_SEALED_KEY_BYTES (OPLOG_ORIGIN_BYTES + 8 + OPLOG_KEY_BYTES + crypto_box_SEALBYTES)
/* Seals data key (origin no, id) to the X25519 public key xpk:
 * crypto_box_seal(origin id || u64(id) || key). Needs the key. */
int opl_crypto_seal_key(oplog_db *db, int64_t origin, int64_t id, const unsigned char xpk[crypto_box_PUBLICKEYBYTES],
                        uint8_t out[OPL_SEALED_KEY_BYTES]);
/* The X25519 form of this file's origin key pair (xsk: crypto_box_SECRETKEYBYTES,
 * sodium_malloc'd by the caller). */
int opl_origin_box_keypair(oplog_db *db, unsigned char xpk[crypto_box_PUBLICKEYBYTES], unsigned char *xsk);
/* Unseals a key sealed for (origin_id, id) and stores it under origin no,
 * wrapped by the root key, in the caller's transaction. A key held
 * already must be the same (OPLOG_CORRUPT), and origin 1 gets no new key.
 * Call opl_keyring_reload afterwards to use it. */
int opl_crypto_add_sealed_key(oplog_db *db, int64_t no, const uint8_t *origin_id, int64_t id, int64_t created,
                              const uint8_t *sealed, size_t n, const unsigned char xpk[crypto_box_PUBLICKEYBYTES],
                              const unsigned char *xsk);
/* Loads every data key again (after new rows); a no-op without a key. */
int opl_keyring_reload(oplog_db *db);

/* entry.c (sync): inserts an entry as stored, with its hash; *id its new local id. */
int opl_entry_insert(oplog_db *db, const stored_entry *e, const unsigned char hash[OPLOG_HASH_BYTES], int64_t *id);
/* catalog.c: defines a type (the same definition again is a no-op): checks
 * spec, then stores it inside the caller's write transaction (sync), or
 * with own_tx inside one of its own, rolled back on failure (oplog_define,
 * which calls it after checking the handle). */
int opl_catalog_define(oplog_db *db, const oplog_type_spec *spec, int own_tx);

/* stream.c: the sync stream's framing (FORMAT.md "Stream"). */
enum {
  FRAME_HEADER = 1,
  FRAME_TYPE = 2,
  FRAME_BASE = 3,
  FRAME_ENTRY = 4,
  FRAME_KEY = 5,
  FRAME_CHECKPOINT = 6,
  FRAME_TRAILER = 7
};
typedef struct stream_writer {
  oplog_write_fn write;
  void *ctx;
  crypto_generichash_state hash; /* every byte written */
  int64_t bytes, frames, entries;
  buf frame;
} stream_writer;
/* Writes the magic. */
int opl_stream_write_begin(oplog_db *db, stream_writer *w, oplog_write_fn write, void *ctx);
/* Writes one frame holding the packed message m (a ProtobufCMessage). */
struct ProtobufCMessage;
int opl_stream_write_frame(oplog_db *db, stream_writer *w, int kind, const struct ProtobufCMessage *m);
/* Writes the trailer, signed with the Ed25519 secret key sk. */
int opl_stream_write_end(oplog_db *db, stream_writer *w, const unsigned char *sk);
void opl_stream_writer_free(stream_writer *w);

typedef struct stream_reader {
  oplog_read_fn read;
  void *ctx;
  crypto_generichash_state hash; /* every byte before the trailer */
  unsigned char digest[OPLOG_HASH_BYTES];
  int64_t frames, entries;
  size_t max_frame;
  int last_kind;
  buf frame;
  arena a; /* the current frame's decoded message */
} stream_reader;
/* Reads and checks the magic. */
int opl_stream_read_begin(oplog_db *db, stream_reader *r, oplog_read_fn read, void *ctx, size_t max_frame);
/* Reads the next frame and decodes its message into r->a (*msg: the
 * kind's Oplog__V1__Stream* message, its shape checked). Frames must come
 * in kind order, the trailer last. OPLOG_CORRUPT for anything malformed. */
int opl_stream_read_frame(oplog_db *db, stream_reader *r, int *kind, void **msg);
/* After the trailer frame: checks its counts, hash and signature by
 * sender, and that nothing follows. */
int opl_stream_read_end(oplog_db *db, stream_reader *r, const void *trailer, const uint8_t sender[OPLOG_ORIGIN_BYTES]);
void opl_stream_reader_free(stream_reader *r);

/* sync.c: cursors. */
typedef struct cursor_pair {
  unsigned char origin[OPLOG_ORIGIN_BYTES];
  int64_t seq;
} cursor_pair;
/* Parses a cursor strictly (OPLOG_INVALID_ARGUMENT); *out sqlite3_malloc'd. */
int opl_cursor_parse(oplog_db *db, const char *text, cursor_pair **out, size_t *n);

#endif
