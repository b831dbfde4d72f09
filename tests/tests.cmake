# Test registration. Each area keeps its own list so that they stay apart:
#   tests/c/tests.cmake            C tests of the core (ctest names core.*)
#   tests/spec/tests.cmake         busted specs (lua.*)
#   tests/cli/tests.cmake          the oplog command and examples (cli.*, example.*)
#   tests/reliability/tests.cmake  power cut, I/O faults, OOM, fuzz, concurrency (rel.*)
#   tests/bench/tests.cmake        benchmark harness (built, not a pass/fail test)
#   tests/install/tests.cmake      install, CMake package, LuaRocks (install.*)
#   tests/format/tests.cmake       an independent reader of the format (format.*)
#   tests/fleet/tests.cmake        ship to and verify in a real PostgreSQL server (fleet.*)
#   tests/mutation/tests.cmake     every mutant still applies (mutation.*)
find_program(LUA_INTERP NAMES lua5.4 lua-5.4 lua54 lua REQUIRED)

# The build's Lua dirs first, then the interpreter's own search paths (where
# busted and its C modules are), as the interpreter reports them: no
# system's directory layout is written here.
foreach(what path cpath)
  execute_process(COMMAND ${LUA_INTERP} -e "io.write(package.${what})"
    OUTPUT_VARIABLE OPLOG_LUA_DEFAULT_${what} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${LUA_INTERP} -e failed: ${rc}")
  endif()
  string(REPLACE ";" "\\;" OPLOG_LUA_DEFAULT_${what} "${OPLOG_LUA_DEFAULT_${what}}")
endforeach()
set(OPLOG_TEST_ENV
  "LUA_PATH=${PROJECT_BINARY_DIR}/lua/?.lua\;${PROJECT_BINARY_DIR}/lua/?/init.lua\;${OPLOG_LUA_DEFAULT_path}"
  "LUA_CPATH=${PROJECT_BINARY_DIR}/lua/?.so\;${OPLOG_LUA_DEFAULT_cpath}"
  "OPLOG_BIN=$<TARGET_FILE:oplog_cli>"
  "OPLOG_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
  "OPLOG_BUILD_DIR=${PROJECT_BINARY_DIR}")
if(OPLOG_SANITIZE)
  # lua5.4 itself is not instrumented: preload the runtime for Lua-driven tests.
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
    OUTPUT_VARIABLE ASAN_RT OUTPUT_STRIP_TRAILING_WHITESPACE)
  # quoted: the list's elements hold escaped ';' (LUA_PATH) that must stay
  set(OPLOG_LUA_TEST_ENV "${OPLOG_TEST_ENV};LD_PRELOAD=${ASAN_RT};ASAN_OPTIONS=detect_leaks=0")
else()
  set(OPLOG_LUA_TEST_ENV "${OPLOG_TEST_ENV}")
endif()

set(OPLOG_TEST_AREAS "c;spec;cli;reliability;bench;install;format;fleet;mutation" CACHE STRING "Test areas to build")
foreach(area ${OPLOG_TEST_AREAS})
  include(${PROJECT_SOURCE_DIR}/tests/${area}/tests.cmake OPTIONAL)
endforeach()
