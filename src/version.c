/* version.c — the version of the library that is linked. */
#include "oplog.h"

const char *oplog_libversion(void) { return OPLOG_VERSION; }

int oplog_libversion_number(void) { return OPLOG_VERSION_NUMBER; }
