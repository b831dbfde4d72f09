-- 002: format 2. See FORMAT.md for what each column holds.
--
-- The format-1 tables that change shape are renamed to oplog_v1_* here; the
-- library then copies their rows into the new tables (with the origin, seq,
-- clock and metadata each entry now carries, and the data keys re-wrapped
-- for the file's origin) and drops them, all in the transaction that runs
-- this script. A new file goes through the same steps with nothing to copy.

DROP TRIGGER oplog_entries_no_update;
DROP TRIGGER oplog_entries_no_delete;
DROP TRIGGER oplog_metadata_no_update;
DROP TRIGGER oplog_metadata_no_delete;
DROP INDEX oplog_entries_aggregate;
DROP INDEX oplog_metadata_key_value;
ALTER TABLE oplog_entries RENAME TO oplog_v1_entries;
ALTER TABLE oplog_metadata RENAME TO oplog_v1_metadata;
ALTER TABLE oplog_keys RENAME TO oplog_v1_keys;

-- The origins whose entries the file holds. no = 1 is the file's own: an
-- Ed25519 key pair made with the file; its 32-byte seed is wrapped by the
-- root key (nonce and 48-byte secret), or stored as is in a plaintext file.
CREATE TABLE oplog_origins (
  no     INTEGER PRIMARY KEY,
  id     BLOB NOT NULL UNIQUE CHECK (length(id) = 32),
  nonce  BLOB CHECK (nonce IS NULL OR length(nonce) = 24),
  secret BLOB CHECK (secret IS NULL OR length(secret) IN (32, 48))
) STRICT;

-- Data keys of each origin, each wrapped (XChaCha20-Poly1305-IETF) by the
-- root key.
CREATE TABLE oplog_keys (
  origin  INTEGER NOT NULL,
  id      INTEGER NOT NULL,
  created INTEGER NOT NULL,
  state   TEXT NOT NULL CHECK (state IN ('active', 'retired')),
  nonce   BLOB NOT NULL CHECK (length(nonce) = 24),
  wrapped BLOB NOT NULL CHECK (length(wrapped) = 48),
  PRIMARY KEY (origin, id)
) WITHOUT ROWID, STRICT;

-- The log: one b-tree, written once per entry. id is the entry's arrival
-- order in this file; (origin, seq) its place in its origin's chain.
CREATE TABLE oplog_entries (
  id             INTEGER PRIMARY KEY,
  origin         INTEGER NOT NULL,
  seq            INTEGER NOT NULL,
  clock          INTEGER NOT NULL,
  created        INTEGER NOT NULL,
  aggregate_name TEXT NOT NULL,
  key_id         INTEGER NOT NULL,
  metadata       BLOB NOT NULL,
  data           BLOB NOT NULL,
  prev_hash      BLOB NOT NULL,
  hash           BLOB NOT NULL,
  format         INTEGER NOT NULL CHECK (format IN (1, 2))
) STRICT;

-- Derived tables, maintained in bulk: they cover the entries whose id is
-- at most oplog_config 'indexed_upto'; readers add the entries above it.
-- Metadata pairs of an entry, position 1, 2, ... in the entry's order.
CREATE TABLE oplog_metadata (
  entry_id INTEGER NOT NULL,
  position INTEGER NOT NULL,
  key      TEXT NOT NULL,
  value    TEXT,
  PRIMARY KEY (entry_id, position)
) WITHOUT ROWID, STRICT;
CREATE INDEX oplog_metadata_key_value ON oplog_metadata (key, value, entry_id);

-- Where each entry sits: by origin and seq, and by aggregate.
CREATE TABLE oplog_index (
  entry_id       INTEGER PRIMARY KEY,
  origin         INTEGER NOT NULL,
  seq            INTEGER NOT NULL,
  aggregate_name TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX oplog_index_origin_seq ON oplog_index (origin, seq);
CREATE INDEX oplog_index_aggregate ON oplog_index (aggregate_name, entry_id);

-- Entries are immutable; so are the derived rows once written.
CREATE TRIGGER oplog_entries_no_update BEFORE UPDATE ON oplog_entries
BEGIN SELECT RAISE(ABORT, 'oplog_entries is append-only'); END;
CREATE TRIGGER oplog_entries_no_delete BEFORE DELETE ON oplog_entries
BEGIN SELECT RAISE(ABORT, 'oplog_entries is append-only'); END;
CREATE TRIGGER oplog_metadata_no_update BEFORE UPDATE ON oplog_metadata
BEGIN SELECT RAISE(ABORT, 'oplog_metadata is append-only'); END;
CREATE TRIGGER oplog_metadata_no_delete BEFORE DELETE ON oplog_metadata
BEGIN SELECT RAISE(ABORT, 'oplog_metadata is append-only'); END;
CREATE TRIGGER oplog_index_no_update BEFORE UPDATE ON oplog_index
BEGIN SELECT RAISE(ABORT, 'oplog_index is append-only'); END;
CREATE TRIGGER oplog_index_no_delete BEFORE DELETE ON oplog_index
BEGIN SELECT RAISE(ABORT, 'oplog_index is append-only'); END;
