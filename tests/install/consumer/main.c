/* Writes one entry to a new plaintext log, verifies it, and checks that
 * the library linked is the one the header describes. Prints
 * "ok <version>" and exits 0 on success. */
#include <oplog.h>
#include <stdio.h>
#include <string.h>

#define CHECK(expr)                                                                    \
  do {                                                                                 \
    int rc_ = (expr);                                                                  \
    if (rc_ != OPLOG_OK) {                                                             \
      fprintf(stderr, "%s: %s: %s\n", #expr, oplog_code_name(rc_), oplog_errmsg(db));  \
      return 1;                                                                        \
    }                                                                                  \
  } while (0)

int main(int argc, char **argv) {
  oplog_open_opts o;
  oplog_db *db = NULL;
  const oplog_column cols[] = {{"id", "INTEGER PRIMARY KEY"}, {"name", "TEXT"}};
  oplog_type_spec spec;
  oplog_field f[2];
  oplog_op op;
  oplog_meta meta = {"user", "demo"};
  oplog_verify_result vr;
  int64_t id = 0;

  if (argc != 2) return 2;
  if (strcmp(oplog_libversion(), OPLOG_VERSION) != 0 ||
      oplog_libversion_number() != OPLOG_VERSION_NUMBER) {
    fprintf(stderr, "header %s, library %s\n", OPLOG_VERSION, oplog_libversion());
    return 1;
  }
  memset(&o, 0, sizeof o);
  o.key.no_encryption = 1;
  CHECK(oplog_open(argv[1], &o, &db));
  memset(&spec, 0, sizeof spec);
  spec.name = "user";
  spec.columns = cols;
  spec.ncolumns = 2;
  CHECK(oplog_define(db, &spec));
  f[0].name = "id";
  f[0].value.type = OPLOG_INTEGER;
  f[0].value.u.i = 1;
  f[1].name = "name";
  f[1].value.type = OPLOG_TEXT;
  f[1].value.u.b.p = "ann";
  f[1].value.u.b.n = 3;
  memset(&op, 0, sizeof op);
  op.type = "user";
  op.kind = OPLOG_OP_CREATE;
  op.row.fields = f;
  op.row.nfields = 2;
  CHECK(oplog_tx_begin(db, "user"));
  CHECK(oplog_tx_apply(db, &op));
  CHECK(oplog_tx_commit(db, &meta, 1, &id));
  CHECK(oplog_verify(db, NULL, NULL, NULL, &vr));
  if (id != 1 || !vr.ok || vr.entries != 1) {
    fprintf(stderr, "entry %lld, verify ok=%d entries=%lld\n", (long long)id, vr.ok,
            (long long)vr.entries);
    return 1;
  }
  if (oplog_close(db) != OPLOG_OK) return 1;
  printf("ok %s\n", oplog_libversion());
  return 0;
}
