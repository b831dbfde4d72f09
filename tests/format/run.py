#!/usr/bin/env python3
"""ctest format.independent_reader: the files the oplog command writes must
read back, byte for byte and row for row, with reader.py, which knows only
schema/FORMAT.md and proto/oplog.proto.

  1. workload.lua (run by $OPLOG_BIN) writes encrypted, plaintext and
     passphrase files (> 300 entries each: a bulk catch-up of the derived
     tables, a key rotation, a rekey), a file left with its derived tables
     behind (no close), and migrates copies of tests/fixtures/format1.
  2. reader.py reads each (and the unmigrated format-1 fixtures, and each
     encrypted file without its key): no problem may be found.
  3. What the oplog command says agrees with the reader: head, tickets
     (complete results: derived rows + entries above 'indexed_upto'), and
     `verify --replay` is ok.
  4. The worked example of FORMAT.md section 13 runs on every format-2 file
     and finds the same heads.
  5. Tampered copies: the reader must notice each change.

Needs OPLOG_BIN and OPLOG_SOURCE_DIR (tests/tests.cmake sets them). Keeps
its work directory when it fails (the path is printed).
"""
import ast
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import reader  # noqa: E402

OPLOG = os.environ.get("OPLOG_BIN")
SRC = os.environ.get("OPLOG_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
PASSPHRASE = "format test"

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg)


def run(args, env=None, ok_codes=(0,)):
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    if p.returncode not in ok_codes:
        raise RuntimeError("%s exited %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p.stdout


def given(work, name):
    p = os.path.join(work, name + ".given")
    if not os.path.exists(p):
        return []
    return [int(x) for x in open(p).read().strip().split(",") if x]


def backup(src, dst):
    """A consistent copy of a WAL-mode file (its WAL included)."""
    a = sqlite3.connect("file:%s?mode=ro" % src, uri=True)
    b = sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.execute("PRAGMA journal_mode = WAL")
    b.close()


def example_code():
    text = open(os.path.join(SRC, "schema", "FORMAT.md"), encoding="utf-8").read()
    section = text.split("## 13. Worked example", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def main():
    if not OPLOG or not os.path.exists(OPLOG):
        print("OPLOG_BIN is not set to the oplog command")
        return 2
    work = tempfile.mkdtemp(prefix="oplog-format-")
    fx = os.path.join(SRC, "tests", "fixtures", "format1")
    for name in ("v1-encrypted.db", "v1-plain.db", "v1.key"):
        shutil.copy(os.path.join(fx, name), os.path.join(work, name))
    # a checkout leaves the key readable by others; oplog refuses such a key file
    os.chmod(os.path.join(work, "v1.key"), 0o600)
    for name in ("v1-encrypted.db", "v1-plain.db"):
        shutil.copy(os.path.join(fx, name), os.path.join(work, "unmigrated-" + name))
    workload = os.path.join(HERE, "workload.lua")
    print(run([OPLOG, "run", workload, work, "all"]).strip())
    run([OPLOG, "run", workload, work, "lag"])

    def w(name):
        return os.path.join(work, name)

    # name, reader key, CLI key options, format level, complete, at least n entries
    files = [
        ("enc.db", {"root": w("enc2.key")}, ["--key-file", w("enc2.key")], 2, True, 301),
        ("plain.db", {}, ["--no-encryption"], 2, True, 301),
        ("pass.db", {"passphrase": PASSPHRASE}, ["--passphrase-env", "OPLOG_FORMAT_PW"], 2, True, 301),
        ("lag.db", {"root": w("lag.key")}, ["--key-file", w("lag.key")], 2, False, 301),
        ("v1-encrypted.db", {"root": w("v1.key")}, ["--key-file", w("v1.key")], 2, True, 16),
        ("v1-plain.db", {}, ["--no-encryption"], 2, True, 16),
        ("unmigrated-v1-encrypted.db", {"root": w("v1.key")}, None, 1, True, 14),
        ("unmigrated-v1-plain.db", {}, None, 1, True, 14),
    ]
    env = dict(os.environ, OPLOG_FORMAT_PW=PASSPHRASE)
    reports = {}
    for name, key, cli_key, level, complete, at_least in files:
        path = w(name)
        root = reader.root_from_key_file(key["root"]) if "root" in key else None
        pp = key["passphrase"].encode() if "passphrase" in key else None
        try:
            rep = reader.read(path, root, pp, complete, given(work, name))
        except reader.Bad as x:
            fail("%s: %s" % (name, x))
            continue
        reports[name] = rep
        for p in rep.problems:
            fail("%s: %s" % (name, p))
        for x in rep.warnings:
            fail("%s: warning: %s" % (name, x))
        n = len(rep.entries)
        if rep.level != level or n < at_least or not rep.ops:
            fail("%s: format %d, %d entries, %d ops; expected format %d, >= %d entries"
                 % (name, rep.level, n, rep.ops, level, at_least))
        if name == "lag.db" and not (256 <= rep.indexed_upto < n):
            fail("lag.db: indexed_upto %d of %d entries: expected a catch-up and entries above it"
                 % (rep.indexed_upto, n))
        print("%-28s format %d, %3d entries, %3d ops replayed, indexed_upto %3d, %d problem(s)"
              % (name, rep.level, n, rep.ops, rep.indexed_upto, len(rep.problems)))
        if root is not None or pp is not None:
            keyless = reader.read(path, None, None, complete)
            for p in keyless.problems:
                fail("%s without its key: %s" % (name, p))
        if cli_key is None:
            continue  # a writable open by the command would migrate the file
        # the command agrees: head, tickets (complete results), verify
        out = run([OPLOG, "head", path]).split()
        head = rep.heads.get(1)
        if not head or out != [str(head[0]), head[2].hex()]:
            fail("%s: oplog head says %s, the reader %s" % (name, out, head and (head[0], head[2].hex())))
        stats = json.loads(run([OPLOG, "stats", path, "--json"] + cli_key, env=env))
        tickets = {a: v["ticket"] for a, v in stats["aggregates"].items()}
        if tickets != rep.tickets:
            fail("%s: oplog stats tickets %s, the reader %s" % (name, tickets, rep.tickets))
        v = json.loads(run([OPLOG, "verify", path, "--replay", "--json"] + cli_key, env=env,
                           ok_codes=(0, 1)).strip().splitlines()[-1])
        if not v.get("ok") or v.get("entries") != n:
            fail("%s: oplog verify --replay: %s" % (name, v))

    # the worked example of FORMAT.md
    example = os.path.join(work, "example.py")
    with open(example, "w") as f:
        f.write(example_code())
    for name, keyfile in (("enc.db", "enc2.key"), ("plain.db", None), ("lag.db", "lag.key"),
                          ("v1-encrypted.db", "v1.key"), ("v1-plain.db", None)):
        if name not in reports:
            continue
        args = [sys.executable, example, w(name)] + ([w(keyfile)] if keyfile else [])
        try:
            out = run(args).strip().splitlines()
        except RuntimeError as x:
            fail("FORMAT.md example on %s: %s" % (name, x))
            continue
        rep = reports[name]
        want = [str(e.id) for e, _, _ in rep.entries]
        got = [line.split()[0] for line in out[:-1]]
        heads = list(ast.literal_eval(out[-1].split(":", 1)[1].strip()).values())
        if got != want or heads != [(rep.heads[1][1], rep.heads[1][2].hex())]:
            fail("FORMAT.md example on %s: entries or heads %s differ from the reader's" % (name, heads))
    print("FORMAT.md example: ran")

    # tampering: each change must be found
    cases = [
        ("plain.db", None, ["UPDATE item SET name = 'forged' WHERE id = 10"], "table item"),
        ("plain.db", None, ["DROP TRIGGER oplog_entries_no_update",
                            "UPDATE oplog_entries SET created = created + 1 WHERE id = 5"], "hash mismatch"),
        ("plain.db", None, ["DROP TRIGGER oplog_metadata_no_update",
                            "UPDATE oplog_metadata SET value = 'eve' WHERE entry_id = 4 AND position = 1"],
         "oplog_metadata of entry 4"),
        ("plain.db", None, ["DROP TRIGGER oplog_index_no_delete", "DELETE FROM oplog_index WHERE entry_id = 9"],
         "oplog_index for entry 9"),
        ("plain.db", None, ["UPDATE oplog_ticket SET version = version + 1 WHERE name = 'shop'"], "oplog_ticket"),
        ("plain.db", None, ["UPDATE oplog_config SET value = value - 1 WHERE name = 'clock'"], "clock"),
        ("plain.db", None, ["DROP TRIGGER oplog_entries_no_delete", "DELETE FROM oplog_entries WHERE id = 310"],
         "oplog_index for entry 310"),
        ("enc.db", "enc2.key", ["UPDATE oplog_keys SET state = 'active' WHERE id = 1"], "data key 1 of origin 1"),
        ("lag.db", "lag.key", ["DROP TRIGGER oplog_entries_no_update",
                               "UPDATE oplog_entries SET seq = seq + 1 WHERE id = 300"], "seq"),
    ]
    for i, (name, keyfile, sql, expect) in enumerate(cases):
        if name not in reports:
            continue
        copy = w("tampered-%d.db" % i)
        backup(w(name), copy)
        db = sqlite3.connect(copy)
        for s in sql:
            db.execute(s)
        db.commit()
        db.close()
        root = reader.root_from_key_file(w(keyfile)) if keyfile else None
        try:
            rep = reader.read(copy, root, None, name != "lag.db", given(work, name))
            found = rep.problems
        except reader.Bad as x:
            found = [str(x)]
        if not any(expect in p for p in found):
            fail("tampered copy of %s (%s): the reader found %s, expected a problem naming %r"
                 % (name, "; ".join(sql), found[:3], expect))
    # the additional data covers what the unkeyed chain covers: a rewrite of
    # the newest entry's metadata (above 'indexed_upto': no derived rows)
    # with its hash recomputed passes the chain and fails decryption
    if "lag.db" in reports:
        copy = w("tampered-ad.db")
        backup(w("lag.db"), copy)
        db = sqlite3.connect(copy)
        db.execute("DROP TRIGGER oplog_entries_no_update")
        eid, seq, clock, created, agg, kid, data, prev, oid = db.execute(
            "SELECT e.id, seq, clock, created, aggregate_name, key_id, data, prev_hash, o.id FROM oplog_entries e"
            " JOIN oplog_origins o ON o.no = e.origin ORDER BY e.id DESC LIMIT 1").fetchone()
        md = reader.encode_metadata([(b"user", b"mallory")])
        h = reader.blake2b_256(b"oplog-entry-v2", prev, oid, reader.u64(seq), reader.u64(clock), reader.u64(created),
                               reader.u64(kid), reader.len32(agg.encode()), reader.len32(md), reader.len32(data))
        db.execute("UPDATE oplog_entries SET metadata = ?, hash = ? WHERE id = ?", (md, h, eid))
        db.commit()
        db.close()
        keyless = reader.read(copy, None, None, False).problems
        keyed = reader.read(copy, reader.root_from_key_file(w("lag.key")), None, False, given(work, "lag.db")).problems
        if keyless or not any("entry %d: data does not decrypt" % eid in p for p in keyed):
            fail("rewritten metadata with a recomputed hash: keyless %s, with the key %s" % (keyless, keyed[:3]))
    print("tampered copies: %d checked" % (len(cases) + 1))

    if failures:
        print("%d failure(s); files kept in %s" % (len(failures), work))
        return 1
    shutil.rmtree(work)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
