-- 001: the initial schema. See FORMAT.md for what each column holds.

-- File-wide settings: encryption mode, KDF parameters, creation time.
CREATE TABLE oplog_config (
  name  TEXT PRIMARY KEY NOT NULL,
  value ANY
) WITHOUT ROWID, STRICT;

-- Data keys, each wrapped (XChaCha20-Poly1305-IETF) by the root key.
CREATE TABLE oplog_keys (
  id      INTEGER PRIMARY KEY,
  created INTEGER NOT NULL,
  state   TEXT NOT NULL CHECK (state IN ('active', 'retired')),
  nonce   BLOB NOT NULL CHECK (length(nonce) = 24),
  wrapped BLOB NOT NULL CHECK (length(wrapped) = 48)
) STRICT;

-- One optimistic-locking ticket per aggregate (Boundary's oplog_ticket).
CREATE TABLE oplog_ticket (
  name    TEXT PRIMARY KEY NOT NULL CHECK (length(name) > 0),
  version INTEGER NOT NULL
) WITHOUT ROWID, STRICT;

-- The log. id is the entry's position in the hash chain: 1, 2, 3, ...
CREATE TABLE oplog_entries (
  id        INTEGER PRIMARY KEY,
  created   INTEGER NOT NULL,
  aggregate TEXT NOT NULL,
  key_id    INTEGER NOT NULL,
  data      BLOB NOT NULL,
  prev_hash BLOB NOT NULL,
  hash      BLOB NOT NULL
) STRICT;
CREATE INDEX oplog_entries_aggregate ON oplog_entries (aggregate, id);

-- Metadata pairs of an entry, in the order given; value NULL = key only.
CREATE TABLE oplog_metadata (
  entry_id INTEGER NOT NULL,
  seq      INTEGER NOT NULL,
  key      TEXT NOT NULL,
  value    TEXT,
  PRIMARY KEY (entry_id, seq)
) WITHOUT ROWID, STRICT;
CREATE INDEX oplog_metadata_key_value ON oplog_metadata (key, value, entry_id);

-- Entries and metadata are immutable.
CREATE TRIGGER oplog_entries_no_update BEFORE UPDATE ON oplog_entries
BEGIN SELECT RAISE(ABORT, 'oplog_entries is append-only'); END;
CREATE TRIGGER oplog_entries_no_delete BEFORE DELETE ON oplog_entries
BEGIN SELECT RAISE(ABORT, 'oplog_entries is append-only'); END;
CREATE TRIGGER oplog_metadata_no_update BEFORE UPDATE ON oplog_metadata
BEGIN SELECT RAISE(ABORT, 'oplog_metadata is append-only'); END;
CREATE TRIGGER oplog_metadata_no_delete BEFORE DELETE ON oplog_metadata
BEGIN SELECT RAISE(ABORT, 'oplog_metadata is append-only'); END;

-- The type catalog: a type is bound to one live table and one aggregate.
CREATE TABLE oplog_types (
  name       TEXT PRIMARY KEY NOT NULL,
  table_name TEXT NOT NULL UNIQUE,
  aggregate  TEXT NOT NULL
) WITHOUT ROWID, STRICT;

CREATE TABLE oplog_type_columns (
  type_name    TEXT NOT NULL,
  position     INTEGER NOT NULL,  -- 1-based column order
  name         TEXT NOT NULL,
  decl         TEXT NOT NULL,
  key_position INTEGER,           -- 1-based place in the key, NULL if not key
  PRIMARY KEY (type_name, position)
) WITHOUT ROWID, STRICT;
