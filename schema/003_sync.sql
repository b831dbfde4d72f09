-- 003: sync. See FORMAT.md for what each column holds.
--
-- Conflicts and received checkpoints; the derived oplog_index gains each
-- entry's clock and an index in total order; a derived touch index maps
-- each row key to the entries whose operations name it. Plain SQL only: a
-- file opened without its key can take this step too.

-- Entries skipped whole when the log was applied in total order: op is the
-- 1-based index of the first operation that could not apply.
CREATE TABLE oplog_conflicts (
  entry_id INTEGER PRIMARY KEY,
  op       INTEGER NOT NULL,
  kind     TEXT NOT NULL CHECK (kind IN ('exists', 'missing', 'constraint')),
  detail   TEXT NOT NULL
) STRICT;

-- The newest signed checkpoint received of each other origin.
CREATE TABLE oplog_checkpoints (origin INTEGER PRIMARY KEY, seq INTEGER NOT NULL, text TEXT NOT NULL) STRICT;

-- oplog_index is derived: rebuilt with the clock from the entries it
-- covers (the same watermark).
DROP TRIGGER oplog_index_no_update;
DROP TRIGGER oplog_index_no_delete;
DROP TABLE oplog_index;
CREATE TABLE oplog_index (
  entry_id       INTEGER PRIMARY KEY,
  origin         INTEGER NOT NULL,
  seq            INTEGER NOT NULL,
  clock          INTEGER NOT NULL,
  aggregate_name TEXT NOT NULL
) STRICT;
INSERT INTO oplog_index (entry_id, origin, seq, clock, aggregate_name)
  SELECT id, origin, seq, clock, aggregate_name FROM oplog_entries
  WHERE id <= coalesce((SELECT value FROM oplog_config WHERE name = 'indexed_upto'), 0) ORDER BY id;
CREATE UNIQUE INDEX oplog_index_origin_seq ON oplog_index (origin, seq);
CREATE INDEX oplog_index_aggregate ON oplog_index (aggregate_name, entry_id);
CREATE INDEX oplog_index_order ON oplog_index (clock, origin, seq);
CREATE TRIGGER oplog_index_no_update BEFORE UPDATE ON oplog_index
BEGIN SELECT RAISE(ABORT, 'oplog_index is append-only'); END;
CREATE TRIGGER oplog_index_no_delete BEFORE DELETE ON oplog_index
BEGIN SELECT RAISE(ABORT, 'oplog_index is append-only'); END;

-- Derived, with its own watermark 'touched_upto': for each entry with
-- id <= touched_upto, one row per (type, key) its operations name. Built
-- from the decrypted entries, so it lags until a handle with the key
-- catches it up.
CREATE TABLE oplog_touches (
  type     TEXT NOT NULL,
  key      BLOB NOT NULL,
  entry_id INTEGER NOT NULL,
  PRIMARY KEY (type, key, entry_id)
) WITHOUT ROWID, STRICT;
INSERT OR REPLACE INTO oplog_config (name, value) VALUES ('touched_upto', 0);
