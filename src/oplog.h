/*
 * oplog.h — an embedded, single-file, encrypted, hash-chained operation log.
 *
 * One SQLite file holds an application's tables and an append-only log of
 * every change made to them. This header is the whole C API; the Lua module
 * and the `oplog` command are thin layers over it.
 *
 * Conventions (after SQLite and libsodium):
 *  - Every function that can fail returns an int result code (OPLOG_OK = 0 or
 *    one of the codes below). The human message of the last failure on a
 *    handle is oplog_errmsg(db); it stays valid until the next call on db.
 *  - Handles are opaque. There is no global mutable state; a handle may be
 *    used from one thread at a time.
 *  - Memory: strings and arrays passed IN are borrowed for the call only.
 *    Pointers handed OUT are owned by the library and valid for the lifetime
 *    stated at each function (usually: until the next call on the same
 *    iterator or handle). Nothing handed out is freed by the caller except
 *    where a function says so (oplog_entry_free, oplog_close, ...).
 *  - No failure leaves a partial entry, a redeemed ticket without its entry,
 *    or an entry without its live changes.
 */
#ifndef OPLOG_H
#define OPLOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* OPLOG_VERSION ("0.3.0"), OPLOG_VERSION_MAJOR/_MINOR/_PATCH and
 * OPLOG_VERSION_NUMBER (major * 1000000 + minor * 1000 + patch), made from
 * the project version by CMake: the headers' version. */
#include "oplog_version.h"

/* Marks the exported API. The library is built with hidden visibility, so
 * that only these functions are exported from liboplog.so (as libsodium's
 * SODIUM_EXPORT). A program may define OPLOG_API itself before including
 * this header. */
#ifndef OPLOG_API
#if defined(__GNUC__) || defined(__clang__)
#define OPLOG_API __attribute__((visibility("default")))
#else
#define OPLOG_API
#endif
#endif

/* The version of the library linked, e.g. "0.3.0" (OPLOG_VERSION is that
 * of the header compiled against) and its OPLOG_VERSION_NUMBER. */
OPLOG_API const char *oplog_libversion(void);
OPLOG_API int oplog_libversion_number(void);

/* Result codes. oplog_code_name() gives each one's lower-case name (docs/errors.md). */
typedef enum oplog_code {
  OPLOG_OK = 0,
  OPLOG_INVALID_ARGUMENT,
  OPLOG_NOT_FOUND,
  OPLOG_CLOSED,
  OPLOG_TICKET_CONFLICT,
  OPLOG_TYPE_CONFLICT,
  OPLOG_CONSTRAINT,
  OPLOG_KEY_REQUIRED,
  OPLOG_WRONG_KEY,
  OPLOG_DECRYPT_FAILED,
  OPLOG_CORRUPT,
  OPLOG_BUSY,
  OPLOG_READONLY,
  OPLOG_IO,
  OPLOG_NOMEM,
  OPLOG_SCHEMA_TOO_NEW,
  OPLOG_TARGET_NOT_EMPTY,
  OPLOG_SQL,
  /* Sync (added in 0.3; appended so the earlier values keep theirs). */
  OPLOG_FORK, /* a different entry at an origin and seq already held */
  OPLOG_GAP   /* a stream that does not continue an origin's chain */
} oplog_code;

/* "invalid_argument", "not_found", ...; "unknown" for a value out of range. */
OPLOG_API const char *oplog_code_name(int code);

typedef struct oplog_db oplog_db;

/* ---------------------------------------------------------------- open */

/*
 * Where the root key comes from. Set exactly one of key_file, key,
 * passphrase, or no_encryption = 1. Leaving all unset opens an existing
 * encrypted file without its key: the hash chain, head, stats, types,
 * tickets and the key list are readable, anything that needs plaintext
 * fails with OPLOG_KEY_REQUIRED. A new file always needs an explicit choice.
 */
typedef struct oplog_key_source {
  const char *key_file;       /* 32 raw bytes, or 64 hex chars (+ newline) */
  const unsigned char *key;   /* 32 bytes */
  size_t key_len;             /* must be 32 when key is set */
  const char *passphrase;     /* Argon2id; salt and limits live in the file */
  size_t passphrase_len;      /* 0: strlen(passphrase) */
  /* 1: the passphrase is read from passphrase_fd (to its end or first
   * newline, at most 1024 bytes) into locked memory, wiped after use, so
   * that it never lives in the caller's memory (e.g. a Lua string). Counts
   * as the passphrase choice. */
  int passphrase_from_fd;
  int passphrase_fd;
  unsigned long long kdf_ops; /* Argon2id opslimit for a NEW passphrase; 0: 2 (at least 2) */
  size_t kdf_mem;             /* memlimit in bytes for a NEW passphrase; 0: 64 MiB (at least 8 MiB) */
  /* Ceilings on the limits an EXISTING passphrase file asks for: a file
   * asking more is refused (OPLOG_INVALID_ARGUMENT) before any work. */
  unsigned long long kdf_ops_max; /* 0: OPLOG_KDF_OPS_MAX */
  size_t kdf_mem_max;             /* 0: OPLOG_KDF_MEM_MAX */
  int no_encryption;          /* 1: plaintext, explicitly */
} oplog_key_source;

/* The least a NEW passphrase may ask (kdf_ops, kdf_mem): weaker limits
 * are OPLOG_INVALID_ARGUMENT. */
#define OPLOG_KDF_OPS_MIN 2ULL
#define OPLOG_KDF_MEM_MIN ((size_t)8 * 1024 * 1024)
#define OPLOG_KDF_OPS_MAX 8ULL
#define OPLOG_KDF_MEM_MAX ((size_t)256 * 1024 * 1024)
#define OPLOG_MAX_ENTRY_BYTES ((size_t)16 * 1024 * 1024)

enum { OPLOG_SYNC_FULL = 0, OPLOG_SYNC_NORMAL = 1 };

typedef struct oplog_open_opts {
  oplog_key_source key;
  int readonly;        /* open read-only (SQLITE_OPEN_READONLY) */
  int no_create;       /* fail with OPLOG_NOT_FOUND if the file is missing */
  int busy_timeout_ms; /* 0: default 5000; negative: do not wait */
  int sync;            /* OPLOG_SYNC_FULL (default) or OPLOG_SYNC_NORMAL */
  /* Largest entry written or read, counting its stored data and its
   * metadata each (0: OPLOG_MAX_ENTRY_BYTES). A larger one is refused when
   * written (OPLOG_INVALID_ARGUMENT) and never loaded when read
   * (OPLOG_CORRUPT; verify reports it), so a hostile file cannot make a
   * reader allocate without bound. */
  size_t max_entry_bytes;
} oplog_open_opts;

/*
 * Opens or creates `path` (WAL mode, schema migrated to this version).
 * Like sqlite3_open, *db is set even on failure (except OPLOG_NOMEM, where
 * it may be NULL) so that oplog_errmsg(*db) explains; close it either way.
 * opts may be NULL only for an existing plaintext or keyless read.
 */
OPLOG_API int oplog_open(const char *path, const oplog_open_opts *opts, oplog_db **db);

/* Rolls back any open transaction, wipes keys, frees everything. NULL ok.
 * Close every iterator of the handle first (as with sqlite3_finalize
 * before sqlite3_close): an iterator must not outlive its handle. */
OPLOG_API int oplog_close(oplog_db *db);

/* Message of the last failure on db ("not an error" after success). */
OPLOG_API const char *oplog_errmsg(oplog_db *db);
/* Code of the last failure on db. */
OPLOG_API int oplog_errcode(oplog_db *db);

/* Writes a new random 32-byte key to path as 64 hex chars + "\n", mode
 * 0600; fails (OPLOG_IO, message says why) if path exists. */
OPLOG_API int oplog_keygen(const char *path, char *errbuf, size_t errbuf_len);

/* ---------------------------------------------------------------- values */

typedef enum oplog_value_type {
  OPLOG_NULL = 0,
  OPLOG_INTEGER,
  OPLOG_REAL,
  OPLOG_TEXT, /* UTF-8; bound to a BLOB-affinity column it is kept as BLOB */
  OPLOG_BLOB,
  OPLOG_BOOLEAN /* stored in the live table as integer 0/1 */
} oplog_value_type;

typedef struct oplog_value {
  oplog_value_type type;
  union {
    int64_t i; /* INTEGER, BOOLEAN (0 or 1) */
    double r;  /* REAL */
    struct {
      const void *p;
      size_t n;
    } b; /* TEXT (not NUL-terminated on input), BLOB */
  } u;
} oplog_value;

typedef struct oplog_field {
  const char *name;
  oplog_value value;
} oplog_field;

typedef struct oplog_row {
  const oplog_field *fields;
  size_t nfields;
} oplog_row;

typedef enum oplog_op_kind {
  OPLOG_OP_CREATE = 1,
  OPLOG_OP_UPDATE = 2,
  OPLOG_OP_DELETE = 3,
  OPLOG_OP_CREATE_ITEMS = 4,
  OPLOG_OP_DELETE_ITEMS = 5
} oplog_op_kind;

/* "create", "update", "delete", "create_items", "delete_items"; NULL else. */
OPLOG_API const char *oplog_op_name(int kind);
/* The reverse; 0 for an unknown name. */
OPLOG_API int oplog_op_kind_from_name(const char *name);

/*
 * One operation on one row of one type. create_items / delete_items are
 * logged as one operation per row (as in Boundary's oplog), in call order.
 * For update, the key columns of row select the row, mask lists columns of
 * row to set, nulls lists columns to set to NULL; at least one of them must
 * be non-empty and no column may be in both.
 */
typedef struct oplog_op {
  const char *type;
  oplog_op_kind kind;
  oplog_row row;
  const char *const *mask;
  size_t nmask;
  const char *const *nulls;
  size_t nnulls;
} oplog_op;

/* A metadata pair; value NULL means the key carries no value. */
typedef struct oplog_meta {
  const char *key;
  const char *value;
} oplog_meta;

/* ---------------------------------------------------------------- catalog */

typedef struct oplog_column {
  const char *name;
  const char *decl; /* SQL type and constraints, e.g. "TEXT NOT NULL" */
} oplog_column;

typedef struct oplog_type_spec {
  const char *name;      /* type name */
  const char *table;     /* NULL: name */
  const char *aggregate; /* NULL: table */
  const oplog_column *columns;
  size_t ncolumns; /* 1..64 */
  const char *const *key; /* NULL: the column declared PRIMARY KEY */
  size_t nkey;
} oplog_type_spec;

/*
 * Registers a type: creates its live table if missing, stores the
 * definition in the file's catalog and creates its aggregate's ticket.
 * The same definition again is a no-op; a different one is
 * OPLOG_TYPE_CONFLICT. Names must match [A-Za-z_][A-Za-z0-9_]* and may not
 * start with "oplog_" or "sqlite_".
 */
OPLOG_API int oplog_define(oplog_db *db, const oplog_type_spec *spec);

/* Calls each(ctx, spec) for every stored type, ordered by name; the spec
 * is valid during the call only. A non-zero return stops the walk and is
 * returned. */
OPLOG_API int oplog_types(oplog_db *db,
                          int (*each)(void *ctx, const oplog_type_spec *spec), void *ctx);

/* ---------------------------------------------------------------- tickets */

/* Current version of the aggregate's ticket (OPLOG_NOT_FOUND if none). */
OPLOG_API int oplog_ticket(oplog_db *db, const char *aggregate, int64_t *version);

/* ---------------------------------------------------------------- transactions
 *
 * The high-level path, mirroring Lua's db:transaction. One transaction per
 * handle at a time (another begin is OPLOG_INVALID_ARGUMENT: there are no
 * nested transactions). oplog_tx_begin runs BEGIN IMMEDIATE and reads the
 * aggregate's ticket; each oplog_tx_apply changes the live table and queues
 * the operation; oplog_tx_commit writes one entry holding every queued
 * operation with the metadata, redeems the ticket and commits. If any of
 * these calls fails, the whole transaction has already been rolled back
 * when it returns. oplog_tx_rollback undoes everything.
 */
OPLOG_API int oplog_tx_begin(oplog_db *db, const char *aggregate);
OPLOG_API int oplog_tx_apply(oplog_db *db, const oplog_op *op);
/* *entry_id is 0 when no operation was queued (nothing is written then). */
OPLOG_API int oplog_tx_commit(oplog_db *db, const oplog_meta *metadata, size_t nmetadata,
                              int64_t *entry_id);
/* Writes the operations queued so far as one entry (redeeming the ticket)
 * and keeps the transaction open for the next entry: many entries, one
 * SQLite commit (one fsync). The entries become durable at
 * oplog_tx_commit and vanish with everything else on rollback. */
OPLOG_API int oplog_tx_entry(oplog_db *db, const oplog_meta *metadata, size_t nmetadata,
                             int64_t *entry_id);
OPLOG_API int oplog_tx_rollback(oplog_db *db);
/* 1 while a high-level transaction is open on db. */
OPLOG_API int oplog_tx_active(oplog_db *db);
/* rowid of the last row inserted by oplog_tx_apply (for INTEGER PRIMARY
 * KEY columns the caller left out; the logged row carries it). */
OPLOG_API int64_t oplog_tx_last_rowid(oplog_db *db);

/* ---------------------------------------------------------------- low level
 *
 * After Boundary's WriteEntryWith: the caller brackets one or more
 * oplog_write_entry calls with oplog_begin / oplog_commit. Live tables are
 * not touched. A stale ticket fails with OPLOG_TICKET_CONFLICT and leaves
 * nothing of that entry; the surrounding transaction stays open — unless
 * SQLite itself ended it (I/O error, disk full, out of memory), after which
 * the next write_entry or commit fails and begin starts afresh. A failed
 * oplog_commit has rolled everything back.
 */
OPLOG_API int oplog_begin(oplog_db *db);
OPLOG_API int oplog_commit(oplog_db *db);
OPLOG_API int oplog_rollback(oplog_db *db);

typedef struct oplog_entry_write {
  const char *aggregate;
  int64_t ticket; /* the version read with oplog_ticket */
  const oplog_meta *metadata;
  size_t nmetadata;
  const oplog_op *ops;
  size_t nops; /* at least 1 */
} oplog_entry_write;

OPLOG_API int oplog_write_entry(oplog_db *db, const oplog_entry_write *w, int64_t *entry_id);

/* ---------------------------------------------------------------- reading */

typedef struct oplog_entry {
  int64_t id;      /* position in this file (arrival order) */
  const unsigned char *origin; /* OPLOG_ORIGIN_BYTES: the writing file's origin */
  int64_t seq;     /* place in its origin's chain: 1, 2, 3, ... */
  int64_t clock;   /* Lamport clock */
  int64_t created; /* unix milliseconds */
  const char *aggregate;
  int64_t key_id; /* 0: plaintext */
  const oplog_meta *metadata;
  size_t nmetadata;
  /* Rows decoded; TEXT values are NUL-terminated. An entry written by a
   * transaction carries each row as the live table stored it: a create
   * every column, an update the key and the columns of its mask, a delete
   * the key (values in their storage class: no BOOLEAN). */
  const oplog_op *ops;
  size_t nops;
} oplog_entry;

/* Reads, decrypts and decodes one entry. OPLOG_NOT_FOUND if absent; an
 * operation whose type is not in the catalog is OPLOG_NOT_FOUND too. The
 * caller frees *out with oplog_entry_free. */
OPLOG_API int oplog_entry_get(oplog_db *db, int64_t id, oplog_entry **out);
OPLOG_API void oplog_entry_free(oplog_entry *entry);

typedef struct oplog_filter {
  const char *aggregate;      /* NULL: all */
  int order_total;            /* 1: total order (clock, origin id, seq) instead of id order */
  int64_t since;              /* id > since (0: from the start) */
  int64_t upto;               /* id <= upto (0: no bound) */
  const oplog_meta *metadata; /* all must match; value NULL: key present */
  size_t nmetadata;
  int64_t limit;              /* 0: no limit */
  int reverse;                /* 1: newest first */
} oplog_filter;

typedef struct oplog_iter oplog_iter;

/* Streams entries in id order; memory does not grow with the log. */
OPLOG_API int oplog_entries(oplog_db *db, const oplog_filter *filter, oplog_iter **it);
/* *entry is NULL at the end. It is valid until the next call on it. */
OPLOG_API int oplog_iter_next(oplog_iter *it, const oplog_entry **entry);
OPLOG_API void oplog_iter_close(oplog_iter *it);

/* ---------------------------------------------------------------- replay & verify */

/* Progress callback: a non-zero return stops the work, which then fails
 * with OPLOG_INVALID_ARGUMENT ("interrupted") and leaves nothing of it. */
typedef int (*oplog_progress_fn)(void *ctx, int64_t done, int64_t total);

typedef struct oplog_replay_opts {
  const char *aggregate; /* NULL: all */
  int64_t since, upto;   /* as in oplog_filter */
  const char *suffix;    /* tables <table><suffix> in this file, or */
  const char *into;      /* the same table names in another SQLite file */
  int fresh;             /* drop the targets first */
  oplog_progress_fn progress;
  void *progress_ctx;
} oplog_replay_opts;

typedef struct oplog_replay_result {
  int64_t entries, ops;
} oplog_replay_result;

OPLOG_API int oplog_replay(oplog_db *db, const oplog_replay_opts *opts, oplog_replay_result *out);

#define OPLOG_HASH_BYTES 32

typedef struct oplog_verify_opts {
  int replay;                 /* also compare a full replay with live tables */
  const unsigned char *head;  /* OPLOG_HASH_BYTES, or NULL */
  const char *checkpoint;     /* a checkpoint's text (oplog_checkpoint), or NULL */
  oplog_progress_fn progress;
  void *progress_ctx;
} oplog_verify_opts;

/* Called once per problem found. kind is one of "hash_mismatch",
 * "chain_break", "missing_entry", "decrypt_failed", "live_mismatch",
 * "head_mismatch", "index_mismatch", "key_state_mismatch", "too_large",
 * "corrupt", "conflict_mismatch", "checkpoint_mismatch", "bad_signature"
 * (docs/lua.md says what each means); id is 0 when no entry applies. */
typedef int (*oplog_problem_fn)(void *ctx, int64_t id, const char *kind, const char *detail);

typedef struct oplog_verify_result {
  int ok;          /* 1 when no problem was found */
  int64_t entries; /* entries checked */
  int64_t problems;
} oplog_verify_result;

/* A log with problems is still OPLOG_OK: problems go to on_problem (which
 * may be NULL) and into out. Only failures to run the check are errors. */
OPLOG_API int oplog_verify(oplog_db *db, const oplog_verify_opts *opts, oplog_problem_fn on_problem,
                           void *ctx, oplog_verify_result *out);

/* This file's own origin's newest entry: id 0 and an all-zero hash when it
 * has written none. */
OPLOG_API int oplog_head(oplog_db *db, int64_t *id, unsigned char hash[OPLOG_HASH_BYTES]);

#define OPLOG_ORIGIN_BYTES 32

/* This file's identity: an Ed25519 public key made with the file. A
 * format-1 file not migrated yet (opened read-only, or without its key)
 * has none: all zeros. */
typedef struct oplog_origin_info {
  unsigned char id[OPLOG_ORIGIN_BYTES];
  int64_t seq;     /* the last seq this origin wrote (0: none) */
  int64_t clock;   /* the file's Lamport clock: the largest clock it holds */
  int64_t head_id; /* local id of that newest own entry (0: none) */
  unsigned char head_hash[OPLOG_HASH_BYTES];
} oplog_origin_info;

OPLOG_API int oplog_origin(oplog_db *db, oplog_origin_info *out);

/* ---------------------------------------------------------------- sync
 * Shipping and joining the logs of several files (docs/lua.md "Sync",
 * schema/FORMAT.md "Stream" and "Checkpoint"). Strings this section hands
 * out are allocated by the library: free them with oplog_free. */

OPLOG_API void oplog_free(void *p);

/* One origin the file holds entries of: its newest entry. */
typedef struct oplog_head_info {
  unsigned char origin[OPLOG_ORIGIN_BYTES];
  int64_t seq;   /* its last seq held here */
  int64_t clock; /* that entry's clock */
  int64_t id;    /* that entry's local id */
  unsigned char hash[OPLOG_HASH_BYTES];
} oplog_head_info;

/* Calls each once per origin held (this file's own origin included, also
 * before it wrote anything: seq 0, zero hash), ordered by origin id. A
 * non-zero return from each stops the walk and is returned. */
OPLOG_API int oplog_heads(oplog_db *db, int (*each)(void *ctx, const oplog_head_info *head), void *ctx);

/* A printable string naming, per origin, the last seq this file holds:
 * "<origin hex>:<seq>" pairs sorted by origin id, joined by ",". */
OPLOG_API int oplog_cursor(oplog_db *db, char **out);

/* Stream I/O. A write callback returns 0 when all n bytes were written; a
 * read callback fills up to n bytes, sets *got (0 at the end of the
 * stream) and returns 0, or non-zero on a read error. */
typedef int (*oplog_write_fn)(void *ctx, const void *p, size_t n);
typedef int (*oplog_read_fn)(void *ctx, void *p, size_t n, size_t *got);

typedef struct oplog_export_opts {
  const char *to;    /* recipient origin id (64 hex); required for an encrypted log */
  const char *since; /* a cursor; NULL: everything */
  oplog_progress_fn progress;
  void *progress_ctx;
} oplog_export_opts;

typedef struct oplog_export_result {
  int64_t entries, bytes;
} oplog_export_result;

/* Writes a stream of every entry beyond opts->since (all origins held). */
OPLOG_API int oplog_export(oplog_db *db, const oplog_export_opts *opts, oplog_write_fn write, void *wctx,
                           oplog_export_result *out);

typedef struct oplog_import_opts {
  oplog_progress_fn progress;
  void *progress_ctx;
} oplog_import_opts;

typedef struct oplog_import_result {
  int64_t entries;   /* new entries stored */
  int64_t skipped;   /* entries the file already held */
  int64_t conflicts; /* entries recorded as conflicts by this import */
} oplog_import_result;

/* Reads a whole stream and imports it in one transaction: all or nothing
 * (OPLOG_CORRUPT, OPLOG_WRONG_KEY, OPLOG_GAP, OPLOG_FORK,
 * OPLOG_TYPE_CONFLICT, OPLOG_INVALID_ARGUMENT; see docs/c.md). */
OPLOG_API int oplog_import(oplog_db *db, const oplog_import_opts *opts, oplog_read_fn read, void *rctx,
                           oplog_import_result *out);

/* Imports everything the file at other_path holds beyond this file's
 * cursor; other gives its key choice (readonly is implied). */
OPLOG_API int oplog_join(oplog_db *db, const char *other_path, const oplog_open_opts *other,
                         const oplog_import_opts *opts, oplog_import_result *out);

/* A signed checkpoint of this file's own origin at its newest entry, as
 * text (schema/FORMAT.md "Checkpoint"). Needs the key of an encrypted file. */
OPLOG_API int oplog_checkpoint(oplog_db *db, char **out);

/* A recorded conflict: an imported entry skipped whole because its
 * operation number op (1-based) could not apply. */
typedef struct oplog_conflict {
  int64_t entry_id;
  int op;
  const char *kind;   /* "exists", "missing" or "constraint" */
  const char *detail; /* type and key, and SQLite's message for a constraint */
} oplog_conflict;

/* Calls each for the recorded conflicts in entry id order; filter's since
 * (entry id >) and limit apply, the rest of it is ignored. */
OPLOG_API int oplog_conflicts(oplog_db *db, const oplog_filter *filter,
                              int (*each)(void *ctx, const oplog_conflict *c), void *ctx);

/* ---------------------------------------------------------------- fleet
 * A file's log in PostgreSQL (docs/fleet.md). Declared in every build; a
 * library built without PostgreSQL support (CMake OPLOG_POSTGRES=OFF, as
 * the static device build) returns OPLOG_INVALID_ARGUMENT ("built without
 * PostgreSQL support"), and oplog_have_postgres() says which it is. */

/* 1 when the library was built with PostgreSQL support (libpq). */
OPLOG_API int oplog_have_postgres(void);

typedef struct oplog_ship_opts {
  const char *conninfo; /* libpq connection string or URI (required) */
  const char *schema;   /* NULL: "oplog" */
  int apply;            /* also apply the entries to live tables there (needs the
                         * key of an encrypted file: docs/fleet.md "Live tables") */
  int64_t batch;        /* entries per PostgreSQL transaction; 0: 5000 */
  oplog_progress_fn progress; /* after each batch: (entries shipped, entries to ship) */
  void *progress_ctx;
} oplog_ship_opts;

typedef struct oplog_ship_result {
  int64_t entries;     /* entries stored by this ship */
  int64_t skipped;     /* entries the server held already */
  int64_t batches;     /* transactions that stored entries */
  int64_t checkpoints; /* checkpoints stored (newer than the server's) */
  int64_t applied;     /* apply: entries applied by this ship (new to the server's live tables) */
  int64_t conflicts;   /* apply: change in the server's recorded conflicts (net) */
} oplog_ship_result;

/* Pushes every entry (of every origin this file holds) that the server
 * lacks, as stored, and the signed checkpoints, into the schema's tables
 * (created if missing). Batch by batch, each one PostgreSQL transaction:
 * a failure keeps the batches committed before it, and shipping again
 * resumes from the server's cursor. OPLOG_FORK / OPLOG_GAP as import,
 * checked against what the server holds; OPLOG_IO when the server cannot
 * be reached. With apply, then, in one more transaction: every entry this
 * file holds that the server has not applied yet goes to live tables in
 * the schema, in the total order with the skip rule of import, across all
 * the devices that apply there; conflicts in <schema>.oplog_conflicts;
 * OPLOG_TYPE_CONFLICT if a type is defined differently there. A failed
 * apply keeps what was shipped and applies nothing. */
OPLOG_API int oplog_ship(oplog_db *db, const oplog_ship_opts *opts, oplog_ship_result *out);

typedef struct oplog_pg_verify_opts {
  const char *conninfo; /* required */
  const char *schema;   /* NULL: "oplog" */
  const char *origin;   /* 64 hex: only this origin; NULL: all */
  oplog_progress_fn progress;
  void *progress_ctx;
} oplog_pg_verify_opts;

/* Checks the chains and checkpoints stored in PostgreSQL, without any key
 * and without a file. Problems go to on_problem as with oplog_verify, with
 * id = the entry's seq and a detail naming its origin. A failure to run
 * the check is returned, its message written to errbuf. */
OPLOG_API int oplog_verify_postgres(const oplog_pg_verify_opts *opts, oplog_problem_fn on_problem, void *ctx,
                                    oplog_verify_result *out, char *errbuf, size_t errbuf_len);

/* ---------------------------------------------------------------- stats & keys */

typedef struct oplog_stats {
  int64_t entries;
  int64_t bytes; /* size of the database file (pages * page size) */
  int64_t keys;  /* data keys stored (0 for a plaintext file) */
} oplog_stats;

/* each_aggregate (may be NULL) gets every ticket with its entry count. */
OPLOG_API int oplog_get_stats(oplog_db *db, oplog_stats *out,
                              int (*each_aggregate)(void *ctx, const char *name, int64_t entries,
                                                    int64_t ticket),
                              void *ctx);

/* Lists data keys: state is "active" (used for new entries) or "retired". */
OPLOG_API int oplog_keys(oplog_db *db,
                         int (*each)(void *ctx, int64_t id, int64_t created, const char *state),
                         void *ctx);
/* Makes a new data key active; old entries stay readable. */
OPLOG_API int oplog_rotate_key(oplog_db *db, int64_t *new_key_id);
/* Re-wraps every data key under a new root key, in one transaction. */
OPLOG_API int oplog_rekey(oplog_db *db, const oplog_key_source *new_key);

#ifdef __cplusplus
}
#endif
#endif /* OPLOG_H */
