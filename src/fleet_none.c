/* fleet_none.c — the fleet API of a library built without PostgreSQL
 * support (CMake OPLOG_POSTGRES=OFF, e.g. the static device build): the
 * functions exist, so that a program links against either build, and say
 * why they cannot work. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define WHY "built without PostgreSQL support (CMake option OPLOG_POSTGRES)"

int oplog_have_postgres(void) { return 0; }

int oplog_ship(oplog_db *db, const oplog_ship_opts *opts, oplog_ship_result *out) {
  (void)opts;
  if (out) memset(out, 0, sizeof *out);
  if (!db) return OPLOG_INVALID_ARGUMENT;
  return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "ship: " WHY);
}

int oplog_verify_postgres(const oplog_pg_verify_opts *opts, oplog_problem_fn on_problem, void *ctx,
                          oplog_verify_result *out, char *errbuf, size_t errbuf_len) {
  (void)opts;
  (void)on_problem;
  (void)ctx;
  if (out) memset(out, 0, sizeof *out);
  if (errbuf && errbuf_len) snprintf(errbuf, errbuf_len, "verify --postgres: %s", WHY);
  return OPLOG_INVALID_ARGUMENT;
}
