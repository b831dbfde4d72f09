# busted specs of the Lua API: one ctest test per spec file, named lua.<spec>.
# Run from the source directory so that .busted (lpath for support.lua) applies.
find_program(BUSTED busted REQUIRED)
set(OPLOG_SPECS
  module open define transaction lowlevel read replay_verify keys testing)
foreach(spec ${OPLOG_SPECS})
  add_test(NAME lua.${spec}
    COMMAND ${BUSTED} --lua=${LUA_INTERP} -o plainTerminal
            ${CMAKE_SOURCE_DIR}/tests/spec/${spec}_spec.lua
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(lua.${spec} PROPERTIES ENVIRONMENT "${OPLOG_LUA_TEST_ENV}" TIMEOUT 300)
endforeach()
