/* testutil.h — a tiny harness: each TEST is a ctest case run by name
 * (`test_core <name>`), with a fresh temp directory and checks that report
 * file:line and the handle's error message. */
#ifndef OPLOG_TESTUTIL_H
#define OPLOG_TESTUTIL_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oplog.h"

typedef void (*test_fn)(void);
struct test_case {
  const char *name;
  test_fn fn;
};

extern char tmpdir[512];
extern int failures;

#define CHECK(cond)                                                                               \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                    \
      failures++;                                                                                 \
      return;                                                                                     \
    }                                                                                             \
  } while (0)

/* rc must equal expected; on mismatch prints the handle's message. */
#define CHECK_RC(db, expr, expected)                                                              \
  do {                                                                                            \
    int rc_ = (expr);                                                                             \
    if (rc_ != (expected)) {                                                                      \
      fprintf(stderr, "%s:%d: %s returned %s (%s), expected %s\n", __FILE__, __LINE__, #expr,    \
              oplog_code_name(rc_), (db) ? oplog_errmsg(db) : "", oplog_code_name(expected));     \
      failures++;                                                                                 \
      return;                                                                                     \
    }                                                                                             \
  } while (0)

#define OK(db, expr) CHECK_RC(db, expr, OPLOG_OK)

char *tpath(const char *name); /* tmpdir/name, static buffer rotated 8x */
int test_main(int argc, char **argv, const struct test_case *cases);

/* Helpers for common set-ups. */
oplog_db *open_plain(const char *name);
oplog_db *open_keyed(const char *name, const unsigned char key[32]);
int define_user(oplog_db *db);  /* users: id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, age INTEGER, photo BLOB */
int define_group(oplog_db *db); /* groups (aggregate users): id INTEGER PRIMARY KEY, title TEXT */
oplog_value vint(int64_t i);
oplog_value vtext(const char *s);
oplog_value vreal(double r);
oplog_value vblob(const void *p, size_t n);
oplog_value vnull(void);
/* One transaction creating user (id, name, age) with metadata; returns the entry id or 0. */
int64_t write_user(oplog_db *db, int64_t id, const char *name, int64_t age);
int64_t count_rows(const char *path, const char *sql); /* raw SQLite: first column of sql */
int exec_raw(const char *path, const char *sql);       /* raw SQLite exec, SQLITE_OK = 0 */

#endif
