#!/usr/bin/env python3
"""An independent reader of oplog files, written from schema/FORMAT.md only.

    reader.py FILE [--key-file PATH | --passphrase-env VAR] [--complete] [--given ID,...] [-v]

Uses the Python standard library (sqlite3, hashlib.blake2b, struct) and
libsodium through ctypes (XChaCha20-Poly1305-IETF, Ed25519 seed key pairs,
Argon2id), with a hand-written protobuf wire decoder. It

  - unwraps every data key and origin 1's seed (checking that the seed gives
    the stored public key) with the root key;
  - decodes every metadata blob, recomputes every hash and every origin's
    chain (seq, prev_hash), checks clocks, key ids and the active key;
  - decrypts and decodes every entry's operations (with the key, or in a
    plaintext file);
  - checks the derived tables (oplog_index, oplog_metadata, oplog_ticket,
    oplog_config indexed_upto/clock) against the entries;
  - replays every entry into an in-memory SQLite database whose tables are
    made from the catalog (checking each operation is well formed), and
    compares them with the live tables (rows, storage classes, values);
  - checks that every format-2 entry not named by --given (entries written
    with write_entry) logs its rows as stored: a create every column, an
    update its key and field_mask columns, a delete its key, in column
    order, each value equal to what the table stores (so replay never
    evaluates a DEFAULT and never depends on affinity).

It reads format-2 files (user_version 2) and format-1 files that were not
migrated (user_version 1, FORMAT.md section 12), and never writes to FILE.
Exit status: 0 all checks pass, 1 a check failed (each problem on stderr),
2 bad usage or unreadable file. As a module: read(path, root) -> Report.
"""
import argparse
import collections
import ctypes
import hashlib
import math
import os
import re
import sqlite3
import struct
import sys

# ------------------------------------------------------------------ notation (FORMAT.md 0)


def u32(x):
    return struct.pack("<I", x)


def u64(x):
    return struct.pack("<Q", x & 0xFFFFFFFFFFFFFFFF)


def len32(b):
    return u32(len(b)) + b


def valid_text(b):
    """FORMAT.md text: UTF-8 without NUL bytes (Python's codec refuses
    overlong forms and surrogates)."""
    if b"\x00" in b:
        return False
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class Bad(Exception):
    """A difference between the file and FORMAT.md."""


# ------------------------------------------------------------------ libsodium

_na = None


def sodium():
    global _na
    if _na is None:
        _na = ctypes.CDLL("libsodium.so.23")
        if _na.sodium_init() < 0:
            raise RuntimeError("sodium_init failed")
    return _na


def aead_open(key, nonce, ad, ct):
    """XChaCha20-Poly1305-IETF decryption; None when it does not authenticate."""
    if len(key) != 32 or len(nonce) != 24 or len(ct) < 16:
        return None
    na = sodium()
    out = ctypes.create_string_buffer(max(len(ct), 1))
    n = ctypes.c_ulonglong()
    r = na.crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, ctypes.byref(n), None, ct, ctypes.c_ulonglong(len(ct)), ad, ctypes.c_ulonglong(len(ad)),
        nonce, key)
    return out.raw[:n.value] if r == 0 else None


def ed25519_public(seed):
    na = sodium()
    pk = ctypes.create_string_buffer(32)
    sk = ctypes.create_string_buffer(64)
    if na.crypto_sign_seed_keypair(pk, sk, seed) != 0:
        raise Bad("crypto_sign_seed_keypair failed")
    return pk.raw


def argon2id(passphrase, salt, ops, mem):
    na = sodium()
    out = ctypes.create_string_buffer(32)
    alg = na.crypto_pwhash_alg_argon2id13()
    r = na.crypto_pwhash(out, ctypes.c_ulonglong(32), passphrase, ctypes.c_ulonglong(len(passphrase)), salt,
                         ctypes.c_ulonglong(ops), ctypes.c_size_t(mem), ctypes.c_int(alg))
    if r != 0:
        raise Bad("Argon2id failed (out of memory?)")
    return out.raw


def blake2b_256(*parts):
    m = hashlib.blake2b(digest_size=32)
    for p in parts:
        m.update(p)
    return m.digest()


# ------------------------------------------------------------------ root key (FORMAT.md 3)


def root_from_key_file(path):
    raw = open(path, "rb").read()
    stripped = raw.rstrip(b"\n\r \t")
    if len(stripped) == 64 and re.fullmatch(rb"[0-9A-Fa-f]{64}", stripped):
        return bytes.fromhex(stripped.decode())
    if len(raw) == 32:
        return raw
    raise Bad("%s is not a key file (64 hex digits or 32 bytes)" % path)


# ------------------------------------------------------------------ metadata blob (FORMAT.md 6.1)


def decode_metadata(blob):
    """-> [(key bytes, value bytes or None)], or raises Bad."""
    if not isinstance(blob, bytes) or len(blob) < 4:
        raise Bad("metadata blob shorter than 4 bytes")
    n = struct.unpack_from("<I", blob)[0]
    if n > 1024:
        raise Bad("metadata blob claims %d pairs (> 1024)" % n)
    off, out = 4, []

    def text(maxlen, what):
        nonlocal off
        if len(blob) - off < 4:
            raise Bad("metadata blob truncated in a %s length" % what)
        ln = struct.unpack_from("<I", blob, off)[0]
        off += 4
        if ln > maxlen or len(blob) - off < ln:
            raise Bad("metadata %s of %d bytes (limit %d, %d left)" % (what, ln, maxlen, len(blob) - off))
        s = blob[off:off + ln]
        off += ln
        if not valid_text(s):
            raise Bad("metadata %s is not text: %r" % (what, s))
        return s

    for _ in range(n):
        k = text(256, "key")
        if not k:
            raise Bad("empty metadata key")
        if off >= len(blob):
            raise Bad("metadata blob truncated before a flag")
        flag = blob[off]
        off += 1
        if flag > 1:
            raise Bad("metadata flag %d" % flag)
        out.append((k, text(65536, "value") if flag else None))
    if off != len(blob):
        raise Bad("%d bytes after the last metadata pair" % (len(blob) - off))
    return out


def encode_metadata(pairs):
    out = u32(len(pairs))
    for k, v in pairs:
        out += len32(k) + (b"\x00" if v is None else b"\x01" + len32(v))
    return out


# ------------------------------------------------------------------ protobuf (FORMAT.md 7)


def pb_fields(buf, what):
    """Wire-level decoding: -> [(number, wire_type, value)], value an int
    (varint) or bytes (fixed64, fixed32, length-delimited)."""
    out, off, n = [], 0, len(buf)

    def varint():
        nonlocal off
        v = shift = 0
        while True:
            if off >= n:
                raise Bad("%s: truncated varint" % what)
            b = buf[off]
            off += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v
            if shift >= 70:
                raise Bad("%s: varint longer than 10 bytes" % what)

    while off < n:
        key = varint()
        num, wt = key >> 3, key & 7
        if num == 0:
            raise Bad("%s: field number 0" % what)
        if wt == 0:
            val = varint()
        elif wt == 1:
            if n - off < 8:
                raise Bad("%s: truncated fixed64" % what)
            val, off = buf[off:off + 8], off + 8
        elif wt == 2:
            ln = varint()
            if n - off < ln:
                raise Bad("%s: truncated length-delimited field" % what)
            val, off = buf[off:off + ln], off + ln
        elif wt == 5:
            if n - off < 4:
                raise Bad("%s: truncated fixed32" % what)
            val, off = buf[off:off + 4], off + 4
        else:
            raise Bad("%s: wire type %d" % (what, wt))
        out.append((num, wt, val))
    return out


def pb_expect(wt, want, what):
    if wt != want:
        raise Bad("%s has wire type %d, not %d" % (what, wt, want))


def int64_of(v):
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


def pb_text(b, what):
    if not valid_text(b):
        raise Bad("%s is not text: %r" % (what, b))
    return b.decode("utf-8")


# A decoded value: (kind, python value); kinds as in oplog.proto
def decode_value(buf, where):
    kind = None
    for num, wt, val in pb_fields(buf, where):
        if num == 1:
            pb_expect(wt, 0, where + ".null_value")
            kind = ("null", None)
        elif num == 2:
            pb_expect(wt, 0, where + ".integer_value")
            kind = ("integer", (val >> 1) ^ -(val & 1))
        elif num == 3:
            pb_expect(wt, 1, where + ".real_value")
            kind = ("real", struct.unpack("<d", val)[0])
        elif num == 4:
            pb_expect(wt, 2, where + ".text_value")
            kind = ("text", pb_text(val, where + ".text_value"))
        elif num == 5:
            pb_expect(wt, 2, where + ".blob_value")
            kind = ("blob", bytes(val))
        elif num == 6:
            pb_expect(wt, 0, where + ".boolean_value")
            if val > 1:
                raise Bad("%s: boolean_value %d" % (where, val))
            kind = ("boolean", val)
    if kind is None:
        raise Bad("%s: Value with no kind" % where)
    return kind


Op = collections.namedtuple("Op", "type_name kind mask nulls fields")  # fields: [(name, (kind, value))]


def decode_entry_data(buf, where):
    ops = []
    for num, wt, val in pb_fields(buf, where):
        if num != 1:
            continue
        pb_expect(wt, 2, where + ".operations")
        w = "%s op %d" % (where, len(ops) + 1)
        type_name, kind, mask, nulls, row = "", 0, [], [], b""
        for n2, wt2, v2 in pb_fields(val, w):
            if n2 == 1:
                pb_expect(wt2, 2, w + ".type_name")
                type_name = pb_text(v2, w + ".type_name")
            elif n2 == 2:
                pb_expect(wt2, 0, w + ".operation_type")
                kind = int64_of(v2)
            elif n2 in (3, 4):
                pb_expect(wt2, 2, w + ".mask")
                paths = []
                for n3, wt3, v3 in pb_fields(v2, w + ".FieldMask"):
                    if n3 == 1:
                        pb_expect(wt3, 2, w + ".paths")
                        paths.append(pb_text(v3, w + ".paths"))
                (mask if n2 == 3 else nulls).extend(paths)  # a message seen twice is merged
            elif n2 == 5:
                pb_expect(wt2, 2, w + ".value")
                row = v2
        fields = []
        for n3, wt3, v3 in pb_fields(row, w + ".Row"):
            if n3 != 1:
                continue
            pb_expect(wt3, 2, w + ".Row.fields")
            name, value = "", None
            for n4, wt4, v4 in pb_fields(v3, w + ".Field"):
                if n4 == 1:
                    pb_expect(wt4, 2, w + ".Field.name")
                    name = pb_text(v4, w + ".Field.name")
                elif n4 == 2:
                    pb_expect(wt4, 2, w + ".Field.value")
                    value = decode_value(v4, "%s field %s" % (w, name))
            if value is None:
                raise Bad("%s: field %r has no value" % (w, name))
            fields.append((name, value))
        ops.append(Op(type_name, kind, mask, nulls, fields))
    if not ops:
        raise Bad("%s: EntryData without operations" % where)
    return ops


# ------------------------------------------------------------------ catalog (FORMAT.md 8)

CONSTRAINT_WORDS = re.compile(
    r"\b(CONSTRAINT|PRIMARY|NOT|NULL|UNIQUE|CHECK|DEFAULT|COLLATE|REFERENCES|GENERATED|AS)\b")


def affinity(decl):
    t = decl.upper()
    m = CONSTRAINT_WORDS.search(t)
    if m:
        t = t[:m.start()]
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t.strip():
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


def qid(name):
    return '"' + name.replace('"', '""') + '"'


class Type:
    def __init__(self, name, table, aggregate, columns):
        self.name, self.table, self.aggregate = name, table, aggregate
        self.columns = [c[0] for c in columns]  # position order
        self.decls = {c[0]: c[1] for c in columns}
        keyed = sorted((c[2], c[0]) for c in columns if c[2] is not None)
        self.key = [k for _, k in keyed]
        if [p for p, _ in keyed] != list(range(1, len(keyed) + 1)):
            raise Bad("type %s: key positions %r are not 1..n" % (name, [p for p, _ in keyed]))
        if not self.key:
            raise Bad("type %s has no key column" % name)
        self.affinity = {c: affinity(d) for c, d in self.decls.items()}
        self.rowid_key = (len(self.key) == 1 and re.match(r"\s*INTEGER\b", self.decls[self.key[0]], re.I)
                          and "PRIMARY KEY" in self.decls[self.key[0]].upper())

    def create_sql(self):
        cols = ", ".join("%s %s" % (qid(c), self.decls[c]) for c in self.columns)
        if len(self.key) >= 2 and not any("PRIMARY KEY" in d.upper() for d in self.decls.values()):
            cols += ", PRIMARY KEY (%s)" % ", ".join(qid(k) for k in self.key)
        return "CREATE TABLE %s (%s)" % (qid(self.table), cols)


def load_catalog(db):
    types = {}
    for name, table, agg in db.execute("SELECT name, table_name, aggregate FROM oplog_types ORDER BY name"):
        name, table, agg = name.decode(), table.decode(), agg.decode()
        cols = [(n.decode(), d.decode(), kp) for n, d, kp in db.execute(
            "SELECT name, decl, key_position FROM oplog_type_columns WHERE type_name = ? ORDER BY position",
            (name,))]
        positions = [p for (p,) in db.execute(
            "SELECT position FROM oplog_type_columns WHERE type_name = ? ORDER BY position", (name,))]
        if positions != list(range(1, len(positions) + 1)) or not cols:
            raise Bad("type %s: column positions %r are not 1..n" % (name, positions))
        types[name] = Type(name, table, agg, cols)
    return types


# ------------------------------------------------------------------ replay (FORMAT.md 9)


def bind(t, col, value):
    kind, v = value
    if kind == "null":
        return None
    if kind in ("integer", "boolean"):
        return int(v)
    if kind == "real":
        return None if math.isnan(v) else v
    if kind == "text":
        return v.encode("utf-8") if t.affinity[col] == "BLOB" else v
    return v  # blob: bytes


OP_NAMES = {1: "create", 2: "update", 3: "delete", 4: "create_items", 5: "delete_items"}


def check_op(t, op, aggregate):
    """The well-formedness rules of FORMAT.md 9; -> {column: value}."""
    if t.aggregate != aggregate:
        raise Bad("type %s belongs to aggregate %r, not the entry's %r" % (t.name, t.aggregate, aggregate))
    if op.kind not in OP_NAMES:
        raise Bad("operation_type %d" % op.kind)
    row = {}
    for name, value in op.fields:
        if name not in t.decls:
            raise Bad("type %s has no column %r" % (t.name, name))
        if name in row:
            raise Bad("column %s given twice" % name)
        row[name] = value
    if t.rowid_key and t.key[0] in row and row[t.key[0]][0] not in ("integer", "null"):
        raise Bad("rowid key %s is a %s" % (t.key[0], row[t.key[0]][0]))
    missing = [k for k in t.key if k not in row]
    if op.kind in (1, 4):
        if missing and not t.rowid_key:
            raise Bad("create of %s lacks key columns %r" % (t.name, missing))
    elif missing:
        raise Bad("%s of %s lacks key columns %r" % (OP_NAMES[op.kind], t.name, missing))
    if op.kind != 2:
        if op.mask or op.nulls:
            raise Bad("%s with a mask" % OP_NAMES[op.kind])
        return row
    if not op.mask and not op.nulls:
        raise Bad("update of %s without field_mask and null_mask" % t.name)
    for p in op.mask + op.nulls:
        if p not in t.decls:
            raise Bad("mask path %r is not a column of %s" % (p, t.name))
        if p in t.key:
            raise Bad("update of %s sets key column %s" % (t.name, p))
    for p in op.mask:
        if p not in row:
            raise Bad("field_mask path %s is not in the row" % p)
        if p in op.nulls:
            raise Bad("column %s in both masks" % p)
    return row


def apply_op(mem, t, op, row, check_stored):
    """Runs the statement of FORMAT.md 9. check_stored: also compare the
    row with what the table stores (as_stored); -> [problem]."""
    tbl = qid(t.table)
    where = " AND ".join("%s = ?" % qid(k) for k in t.key)
    keys = [bind(t, k, row[k]) for k in t.key] if op.kind not in (1, 4) else []
    rowid, before = None, None
    if op.kind in (1, 4):
        if row:
            names = list(row)
            sql = "INSERT INTO %s (%s) VALUES (%s)" % (tbl, ", ".join(qid(c) for c in names),
                                                      ", ".join("?" * len(names)))
            rowid = mem.execute(sql, [bind(t, c, row[c]) for c in names]).lastrowid
        else:
            rowid = mem.execute("INSERT INTO %s DEFAULT VALUES" % tbl).lastrowid
        return as_stored(mem, t, op, row, rowid, None) if check_stored else []
    if op.kind == 2:
        sets = ["%s = ?" % qid(p) for p in op.mask] + ["%s = NULL" % qid(p) for p in op.nulls]
        cur = mem.execute("UPDATE %s SET %s WHERE %s" % (tbl, ", ".join(sets), where),
                          [bind(t, p, row[p]) for p in op.mask] + keys)
    else:
        if check_stored:
            before = stored_values(mem, t, t.columns, where, keys)
        cur = mem.execute("DELETE FROM %s WHERE %s" % (tbl, where), keys)
    if cur.rowcount != 1:
        raise Bad("%s of %s changed %d rows, not 1" % (OP_NAMES[op.kind], t.name, cur.rowcount))
    return as_stored(mem, t, op, row, rowid, before) if check_stored else []


def same_value(logged, stored):
    kind, v = logged
    typ, sv = stored
    typ = typ.decode()
    if kind == "null":
        return typ == "null"
    if kind == "integer":
        return typ == "integer" and sv == v
    if kind == "real":
        return typ == "real" and sv == v
    if kind == "text":
        return typ == "text" and sv == v.encode("utf-8")
    if kind == "blob":
        return typ == "blob" and sv == v
    return False  # boolean_value is not a storage class


def stored_values(mem, t, cols, where, params):
    exprs = ", ".join("typeof(%s), %s" % (qid(c), qid(c)) for c in cols)
    r = mem.execute("SELECT %s FROM %s WHERE %s" % (exprs, qid(t.table), where), params).fetchone()
    if r is None:
        return None
    return {c: (r[2 * i], r[2 * i + 1]) for i, c in enumerate(cols)}


def as_stored(mem, t, op, row, rowid, before):
    """FORMAT.md 7: a row written by a transaction holds the stored values:
    a create every column, an update its key and field_mask columns, a
    delete its key, in the type's column order. -> [problem]."""
    if op.kind in (1, 4):
        want = list(t.columns)
    elif op.kind == 2:
        want = [c for c in t.columns if c in t.key or c in op.mask]
    else:
        want = [c for c in t.columns if c in t.key]
    got = [name for name, _ in op.fields]
    out = []
    if got != want:
        out.append("row fields %s, expected %s" % (got, want))
    if op.kind in (1, 4):
        stored = stored_values(mem, t, t.columns, "rowid = ?", [rowid])
    elif op.kind == 2:
        stored = stored_values(mem, t, t.columns, " AND ".join("%s = ?" % qid(k) for k in t.key),
                               [bind(t, k, row[k]) for k in t.key])
    else:
        stored = before
    for name, value in op.fields:
        if stored is None or name not in stored:
            continue
        if not same_value(value, stored[name]):
            typ, sv = stored[name]
            out.append("column %s logged as %s %r, stored as %s %r" % (name, value[0], value[1], typ.decode(), sv))
    return out


def table_rows(db, schema, t):
    exprs = ", ".join("typeof(%s), %s" % (qid(c), qid(c)) for c in t.columns)
    rows = []
    for r in db.execute("SELECT %s FROM %s.%s" % (exprs, schema, qid(t.table))):
        cells = []
        for i in range(0, len(r), 2):
            typ, v = r[i], r[i + 1]
            if isinstance(v, float):
                v = struct.pack("<d", v)  # exact, and sortable
            cells.append((typ, v))
        rows.append(tuple(cells))
    return collections.Counter(rows)


def show_row(t, row):
    def cell(c):
        typ, v = c
        typ = typ.decode() if isinstance(typ, bytes) else typ
        if typ == "real":
            return repr(struct.unpack("<d", v)[0])
        if typ == "null":
            return "NULL"
        return "%s:%r" % (typ, v)
    return "(" + ", ".join("%s=%s" % (n, cell(c)) for n, c in zip(t.columns, row)) + ")"


# ------------------------------------------------------------------ the file


Entry = collections.namedtuple(
    "Entry", "id origin seq clock created aggregate key_id metadata data prev_hash hash format")


class Report:
    def __init__(self):
        self.problems = []
        self.warnings = []
        self.entries = []
        self.tickets = {}        # aggregate -> 1 + number of its entries
        self.heads = {}          # origin no -> (id, seq, hash)
        self.indexed_upto = 0
        self.ops = 0
        self.decrypted = False
        self.level = 0

    def bad(self, msg):
        self.problems.append(msg)


def read(path, root=None, passphrase=None, complete=False, given=()):
    """Reads and checks the file at path. root: the 32-byte root key, or
    passphrase (bytes); neither: only what needs no key. complete: the
    derived tables must cover every entry (after a clean close). given: ids
    of format-2 entries written with write_entry (rows as given), which are
    not checked to hold the stored values."""
    rep = Report()
    if not os.path.exists(path):
        raise Bad("%s: no such file" % path)
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, isolation_level=None)
    db.text_factory = bytes
    db.execute("BEGIN")  # one snapshot for every read
    try:
        _read(db, rep, root, passphrase, complete, set(given))
    finally:
        db.execute("ROLLBACK")
        db.close()
    return rep


def _read(db, rep, root, passphrase, complete, given):
    level = db.execute("PRAGMA user_version").fetchone()[0]
    if level not in (1, 2, 3):
        raise Bad("user_version %d: not an oplog file of format 1 or 2" % level)
    if level == 3:
        level = 2  # schema level 3 is format 2 with the sync tables (FORMAT.md section 1)
    rep.level = level
    config = {n.decode(): v for n, v in db.execute("SELECT name, value FROM oplog_config")}
    if config.get("format") != level:
        rep.bad("oplog_config format is %r, user_version %d" % (config.get("format"), level))
    if not isinstance(config.get("created"), int):
        rep.bad("oplog_config created is %r" % (config.get("created"),))
    mode = config.get("encryption", b"?").decode()
    if mode not in ("none", "key", "passphrase"):
        raise Bad("unknown encryption mode %r" % mode)
    encrypted = mode != "none"
    if not encrypted and (root or passphrase):
        raise Bad("the file is not encrypted: give no key")
    if mode == "passphrase":
        if config.get("kdf") != b"argon2id13" or not isinstance(config.get("kdf_salt"), bytes) \
                or len(config["kdf_salt"]) != 16:
            rep.bad("passphrase settings kdf=%r kdf_salt=%r" % (config.get("kdf"), config.get("kdf_salt")))
        if passphrase is not None:
            root = argon2id(passphrase, config["kdf_salt"], config["kdf_ops"], config["kdf_mem"])
    elif passphrase is not None:
        raise Bad("the file is encrypted with a key, not a passphrase")
    elif any(k.startswith("kdf") for k in config):
        rep.bad("kdf settings in a file whose encryption is %s" % mode)
    can_read = not encrypted or root is not None
    rep.decrypted = can_read

    # -------------------------------------------------------------- origins (4)
    origins = {}
    if level == 2:
        rows = db.execute("SELECT no, id, nonce, secret FROM oplog_origins ORDER BY no").fetchall()
        for no, oid, nonce, secret in rows:
            if not isinstance(oid, bytes) or len(oid) != 32:
                rep.bad("origin %d: id is not 32 bytes" % no)
                continue
            origins[no] = oid
            if no != 1:
                if nonce is not None or secret is not None:
                    rep.bad("origin %d (not this file's) has a secret" % no)
                continue
            if not encrypted:
                if nonce is not None or not isinstance(secret, bytes) or len(secret) != 32:
                    rep.bad("origin 1 of a plaintext file: nonce must be NULL and secret the 32-byte seed")
                    continue
                seed = secret
            else:
                if not isinstance(nonce, bytes) or len(nonce) != 24 or not isinstance(secret, bytes) \
                        or len(secret) != 48:
                    rep.bad("origin 1 of an encrypted file: nonce 24 and secret 48 bytes expected")
                    continue
                if root is None:
                    continue
                seed = aead_open(root, nonce, b"oplog.v2.origin-seed" + oid, secret)
                if seed is None:
                    raise Bad("origin 1's seed does not unwrap with this key (wrong key?)")
            if ed25519_public(seed) != oid:
                rep.bad("origin 1's seed does not give its public key")
        if 1 not in origins:
            raise Bad("oplog_origins has no origin 1")
    else:
        origins[1] = None  # format 1 has no origins (12)

    # -------------------------------------------------------------- data keys (5)
    keys = {}
    if level == 2:
        krows = db.execute("SELECT origin, id, created, state, nonce, wrapped FROM oplog_keys ORDER BY origin, id")
    else:
        krows = db.execute("SELECT 1, id, created, state, nonce, wrapped FROM oplog_keys ORDER BY id")
    krows = krows.fetchall()
    if not encrypted and krows:
        rep.bad("a plaintext file has %d rows in oplog_keys" % len(krows))
    good = bad = 0
    states = {}
    for o, kid, created, state, nonce, wrapped in krows:
        states[o, kid] = state
        if not isinstance(created, int):
            rep.bad("key %d/%d: created %r" % (o, kid, created))
        if o not in origins:
            rep.bad("key %d/%d: origin %d does not exist" % (o, kid, o))
            continue
        if root is None:
            continue
        ad = (b"oplog.v2.data-key" + origins[o] + u64(kid)) if level == 2 else b"oplog.v1.data-key" + u64(kid)
        k = aead_open(root, nonce, ad, wrapped) if len(wrapped) == 48 else None
        if k is None:
            bad += 1
            rep.bad("data key %d of origin %d does not unwrap" % (kid, o))
        else:
            good += 1
            keys[o, kid] = k
    if root is not None and encrypted and bad and not good:
        raise Bad("wrong key: it unwraps none of the data keys")
    own = sorted(kid for (o, kid) in states if o == 1)
    if encrypted:
        if not own:
            rep.bad("no data key of origin 1")
        else:
            for kid in own:
                want = b"active" if kid == own[-1] else b"retired"
                if states[1, kid] != want:
                    rep.bad("data key %d of origin 1 is %r, expected %r" % (kid, states[1, kid], want))

    # -------------------------------------------------------------- entries (6)
    if level == 2:
        erows = db.execute("SELECT id, origin, seq, clock, created, aggregate_name, key_id, metadata, data,"
                           " prev_hash, hash, format FROM oplog_entries ORDER BY id")
    else:
        md_rows = collections.defaultdict(list)
        for eid, seq, k, v in db.execute("SELECT entry_id, seq, key, value FROM oplog_metadata"
                                         " ORDER BY entry_id, seq"):
            md_rows[eid].append((seq, k, v))
        erows = []
        for r in db.execute("SELECT id, created, aggregate, key_id, data, prev_hash, hash FROM oplog_entries"
                            " ORDER BY id"):
            eid = r[0]
            pairs = md_rows.pop(eid, [])
            if [s for s, _, _ in pairs] != list(range(1, len(pairs) + 1)):
                rep.bad("entry %d: format-1 metadata seqs %r" % (eid, [s for s, _, _ in pairs]))
            blob = encode_metadata([(k, v) for _, k, v in pairs])
            erows.append((eid, 1, eid, eid, r[1], r[2], r[3], blob, r[4], r[5], r[6], 1))
        for eid in md_rows:
            rep.bad("format-1 metadata rows of entry %d, which does not exist" % eid)
    chain = {}          # origin -> (seq, hash)
    max_clock = 0
    types = load_catalog(db)
    for r in erows:
        e = Entry(*r)
        where = "entry %d" % e.id
        if e.id != len(rep.entries) + 1:
            raise Bad("%s follows entry %d: ids must be 1, 2, 3, ..." % (where, len(rep.entries)))
        if not isinstance(e.aggregate, bytes) or not valid_text(e.aggregate) or not e.aggregate:
            rep.bad("%s: aggregate_name %r is not text" % (where, e.aggregate))
        agg = e.aggregate.decode("utf-8", "replace")
        if e.origin not in origins:
            rep.bad("%s: origin %r is not in oplog_origins" % (where, e.origin))
            rep.entries.append((e, None, None))
            continue
        if e.format not in (1, 2):
            rep.bad("%s: format %r" % (where, e.format))
        if not isinstance(e.hash, bytes) or len(e.hash) != 32 or not isinstance(e.prev_hash, bytes) \
                or len(e.prev_hash) != 32:
            rep.bad("%s: hash or prev_hash is not 32 bytes" % where)
            rep.entries.append((e, None, None))
            continue
        # metadata (6.1)
        try:
            pairs = decode_metadata(e.metadata)
        except Bad as x:
            rep.bad("%s: %s" % (where, x))
            pairs = None
        # chain (6.3)
        last_seq, last_hash = chain.get(e.origin, (0, bytes(32)))
        if e.seq != last_seq + 1:
            rep.bad("%s: seq %d of origin %d follows seq %d" % (where, e.seq, e.origin, last_seq))
        if e.prev_hash != last_hash:
            rep.bad("%s: prev_hash is not the hash of its origin's previous entry" % where)
        oid = origins[e.origin]
        if e.format == 2:
            if level != 2:
                rep.bad("%s: format 2 in a format-1 file" % where)
            computed = blake2b_256(b"oplog-entry-v2", e.prev_hash, oid, u64(e.seq), u64(e.clock), u64(e.created),
                                   u64(e.key_id), len32(e.aggregate), len32(e.metadata), len32(e.data))
            ad = (b"oplog-data-v2" + oid + u64(e.seq) + u64(e.clock) + u64(e.created) + u64(e.key_id)
                  + len32(e.aggregate) + len32(e.metadata))
        else:
            computed = None
            if pairs is not None:
                computed = blake2b_256(e.prev_hash, u64(e.seq), u64(e.created), u64(e.key_id),
                                       len32(e.aggregate), *[len32(k) + (b"\x00" if v is None else b"\x01" + len32(v))
                                                             for k, v in pairs],
                                       u32(len(pairs)), len32(e.data))
            ad = b"\x01" + u64(e.seq) + u64(e.key_id) + len32(e.aggregate)
            if e.clock != e.seq:
                rep.bad("%s: a format-1 entry with clock %d != seq %d" % (where, e.clock, e.seq))
        if computed is not None and computed != e.hash:
            rep.bad("%s: hash mismatch (stored %s, computed %s)" % (where, e.hash.hex(), computed.hex()))
        chain[e.origin] = (e.seq, e.hash)
        rep.heads[e.origin] = (e.id, e.seq, e.hash)
        # clock: an entry written here gets 1 + the largest clock before it
        if e.origin == 1 and e.format == 2 and e.clock != max_clock + 1:
            rep.bad("%s: clock %d, expected 1 + %d" % (where, e.clock, max_clock))
        max_clock = max(max_clock, e.clock)
        # data (6.2)
        ops = None
        if not encrypted:
            if e.key_id != 0:
                rep.bad("%s: key_id %d in a plaintext file" % (where, e.key_id))
            plain = e.data
        elif e.key_id == 0:
            rep.bad("%s: key_id 0 in an encrypted file" % where)
            plain = None
        elif (e.origin, e.key_id) not in states:
            rep.bad("%s: data key %d of origin %d does not exist" % (where, e.key_id, e.origin))
            plain = None
        elif root is None:
            plain = None
        else:
            k = keys.get((e.origin, e.key_id))
            plain = aead_open(k, e.data[:24], ad, e.data[24:]) if k else None
            if plain is None:
                rep.bad("%s: data does not decrypt" % where)
        if plain is not None:
            try:
                ops = decode_entry_data(plain, where)
            except Bad as x:
                rep.bad(str(x))
        rep.entries.append((e, pairs, ops))
    n = len(rep.entries)

    # -------------------------------------------------------------- derived tables and tickets (10)
    if level == 2:
        wm = config.get("indexed_upto")
        cfg_clock = config.get("clock")
        if not isinstance(wm, int) or not isinstance(cfg_clock, int):
            raise Bad("oplog_config indexed_upto %r, clock %r" % (wm, cfg_clock))
    else:
        wm = n  # format 1: every entry is covered
        cfg_clock = n
    rep.indexed_upto = wm
    if wm < 0 or wm > n:
        rep.bad("indexed_upto %d, with %d entries" % (wm, n))
    if n - wm >= 256:
        rep.bad("%d entries above indexed_upto (at most 255 in files this library writes)" % (n - wm))
    if complete and wm != n:
        rep.bad("the derived tables cover entries up to %d of %d after a clean close" % (wm, n))
    covered = [x for x in rep.entries if x[0].id <= wm]
    if level == 2:
        want_ix = {e.id: (e.origin, e.seq, e.aggregate) for e, _, _ in covered}
        got_ix = {}
        for eid, o, s, a in db.execute("SELECT entry_id, origin, seq, aggregate_name FROM oplog_index"):
            got_ix[eid] = (o, s, a)
        for eid in sorted(set(want_ix) | set(got_ix)):
            if want_ix.get(eid) != got_ix.get(eid):
                rep.bad("oplog_index for entry %d: %r, the entry says %r" % (eid, got_ix.get(eid), want_ix.get(eid)))
        got_md = collections.defaultdict(list)
        for eid, pos, k, v in db.execute("SELECT entry_id, position, key, value FROM oplog_metadata"
                                         " ORDER BY entry_id, position"):
            got_md[eid].append((pos, k, v))
        want_md = {e.id: [(i + 1, k, v) for i, (k, v) in enumerate(p)] for e, p, _ in covered if p}
        for eid in sorted(set(want_md) | set(got_md)):
            if want_md.get(eid, []) != got_md.get(eid, []):
                rep.bad("oplog_metadata of entry %d: %r, the entry says %r" % (eid, got_md.get(eid), want_md.get(eid)))
        want_clock = max([e.clock for e, _, _ in covered], default=0)
        if cfg_clock != want_clock:
            rep.bad("oplog_config clock %d, the covered entries say %d" % (cfg_clock, want_clock))
    ticket_rows = {name.decode(): v for name, v in db.execute("SELECT name, version FROM oplog_ticket")}
    counted = collections.Counter(e.aggregate.decode("utf-8", "replace") for e, _, _ in covered)
    above = collections.Counter(e.aggregate.decode("utf-8", "replace") for e, _, _ in rep.entries if e.id > wm)
    everything = counted + above
    for name in sorted(set(ticket_rows) | set(counted)):
        if ticket_rows.get(name) != 1 + counted[name]:
            rep.bad("oplog_ticket %r is %r, 1 + its %d covered entries = %d" % (
                name, ticket_rows.get(name), counted[name], 1 + counted[name]))
    for t in types.values():
        if t.aggregate not in ticket_rows:
            rep.bad("aggregate %r of type %s has no ticket" % (t.aggregate, t.name))
    for name in set(ticket_rows) | set(everything):
        # complete answer (10): derived row + entries above the watermark
        rep.tickets[name] = 1 + everything[name]
        if name in ticket_rows and ticket_rows[name] + above[name] != rep.tickets[name]:
            rep.bad("ticket %r: derived %d + %d above != %d" % (name, ticket_rows[name], above[name], rep.tickets[name]))

    # -------------------------------------------------------------- live tables and replay (8, 9)
    if not can_read:
        return
    mem = sqlite3.connect(":memory:", isolation_level=None)
    mem.text_factory = bytes
    for t in types.values():
        live = db.execute("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (t.table,)).fetchone()
        if live is None:
            rep.bad("type %s: live table %s does not exist" % (t.name, t.table))
            continue
        if live[0].decode() != t.create_sql():
            rep.warnings.append("live table %s was not created from the catalog: %s" % (t.table, live[0].decode()))
        mem.execute(t.create_sql())
    for e, _, ops in rep.entries:
        if ops is None:
            rep.bad("entry %d: no operations to replay; replay stopped" % e.id)
            return
        mem.execute("SAVEPOINT entry")
        for i, op in enumerate(ops):
            try:
                t = types.get(op.type_name)
                if t is None:
                    raise Bad("type %r is not in the catalog" % op.type_name)
                row = check_op(t, op, e.aggregate.decode())
                for p in apply_op(mem, t, op, row, e.format == 2 and e.id not in given):
                    rep.bad("entry %d, operation %d (%s %s): not as stored: %s" % (
                        e.id, i + 1, OP_NAMES[op.kind], op.type_name, p))
            except (Bad, sqlite3.Error) as x:
                rep.bad("entry %d, operation %d (%s %s): does not replay: %s" % (
                    e.id, i + 1, OP_NAMES.get(op.kind, op.kind), op.type_name, x))
                return
            rep.ops += 1
        mem.execute("RELEASE entry")
    for t in types.values():
        if db.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (t.table,)).fetchone() is None:
            continue
        live, replayed = table_rows(db, "main", t), table_rows(mem, "main", t)
        if live != replayed:
            for r in sorted((live - replayed).elements())[:5]:
                rep.bad("table %s: live row %s is not in the replay" % (t.table, show_row(t, r)))
            for r in sorted((replayed - live).elements())[:5]:
                rep.bad("table %s: replayed row %s is not live" % (t.table, show_row(t, r)))
    mem.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--key-file")
    g.add_argument("--passphrase-env", metavar="VAR")
    ap.add_argument("--complete", action="store_true",
                    help="the derived tables must cover every entry (the writer closed cleanly)")
    ap.add_argument("--given", default="", metavar="ID,...",
                    help="format-2 entries written with write_entry: rows as given, not as stored")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    try:
        root = root_from_key_file(a.key_file) if a.key_file else None
        pp = None
        if a.passphrase_env:
            if a.passphrase_env not in os.environ:
                raise Bad("$%s is not set" % a.passphrase_env)
            pp = os.environ[a.passphrase_env].encode()
        given = [int(x) for x in a.given.split(",") if x]
        rep = read(a.file, root, pp, a.complete, given)
    except (Bad, sqlite3.Error, OSError) as x:
        print("reader: %s: %s" % (a.file, x), file=sys.stderr)
        return 2
    for w in rep.warnings:
        print("reader: %s: warning: %s" % (a.file, w), file=sys.stderr)
    for p in rep.problems:
        print("reader: %s: %s" % (a.file, p), file=sys.stderr)
    summary = "%s: format %d, %d entries, %d ops replayed, indexed_upto %d, %s" % (
        a.file, rep.level, len(rep.entries), rep.ops, rep.indexed_upto,
        "decrypted" if rep.decrypted else "chain only (no key)")
    if rep.problems:
        print("reader: FAIL %s, %d problem(s)" % (summary, len(rep.problems)), file=sys.stderr)
        return 1
    if a.verbose:
        for e, pairs, ops in rep.entries:
            print(e.id, e.origin, e.seq, e.clock, e.format, e.aggregate.decode(), pairs,
                  [(OP_NAMES.get(o.kind), o.type_name, o.fields, o.mask, o.nulls) for o in ops or []])
    print("reader: ok " + summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
