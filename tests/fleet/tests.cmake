# Fleet: `oplog ship` and `verify --postgres` against a real PostgreSQL
# server that tests/fleet/pg.sh starts (initdb into a temporary directory,
# a private Unix socket) and stops, also on failure. Registered when the
# fleet part is built (OPLOG_POSTGRES); skipped (exit 77) without
# Debian's `postgresql` server binaries.
if(OPLOG_POSTGRES)
  find_program(BUSTED busted REQUIRED)
  set(OPLOG_FLEET_ENV "${OPLOG_TEST_ENV}")
  if(OPLOG_SANITIZE)
    list(APPEND OPLOG_FLEET_ENV "LD_PRELOAD=${ASAN_RT}" "ASAN_OPTIONS=detect_leaks=0")
  endif()
  add_test(NAME fleet.ship
    COMMAND sh ${PROJECT_SOURCE_DIR}/tests/fleet/pg.sh ${LUA_INTERP} ${BUSTED} -o plainTerminal
            ${PROJECT_SOURCE_DIR}/tests/fleet/fleet_spec.lua
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(fleet.ship PROPERTIES
    ENVIRONMENT "${OPLOG_FLEET_ENV}" LABELS fleet TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL ON)
endif()
