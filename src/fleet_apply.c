/* fleet_apply.c — placeholder */
#include "fleet.h"
int opl_fleet_apply(oplog_db *db, PGconn *pg, const char *s, int64_t *applied, int64_t *conflicts) {
  (void)pg; (void)s; (void)applied; (void)conflicts;
  return opl_db_error(db, OPLOG_INVALID_ARGUMENT, "apply: not yet");
}
