# busted specs of the Lua API: one ctest test per spec file, named lua.<spec>.
# Run from the source directory so that .busted (lpath for support.lua) applies.
# The environment is built from OPLOG_TEST_ENV (quoted) rather than taken from
# OPLOG_LUA_TEST_ENV, whose unquoted copy drops the escaped ';' of LUA_PATH.
find_program(BUSTED busted REQUIRED)
set(OPLOG_SPEC_ENV "${OPLOG_TEST_ENV}")
if(OPLOG_SANITIZE)
  list(APPEND OPLOG_SPEC_ENV "LD_PRELOAD=${ASAN_RT}" "ASAN_OPTIONS=detect_leaks=0")
endif()
set(OPLOG_SPECS
  module open define transaction lowlevel read replay_verify keys testing
  format2 format1 errors security failures sync)
foreach(spec ${OPLOG_SPECS})
  add_test(NAME lua.${spec}
    COMMAND ${LUA_INTERP} ${BUSTED} -o plainTerminal
            ${PROJECT_SOURCE_DIR}/tests/spec/${spec}_spec.lua
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(lua.${spec} PROPERTIES
    ENVIRONMENT "${OPLOG_SPEC_ENV}" LABELS spec TIMEOUT 300)
endforeach()
