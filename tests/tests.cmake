# Test registration. Each area keeps its own list so that they stay apart:
#   tests/c/tests.cmake            C tests of the core (ctest names core.*)
#   tests/spec/tests.cmake         busted specs (lua.*)
#   tests/cli/tests.cmake          the oplog command and examples (cli.*, example.*)
#   tests/reliability/tests.cmake  power cut, I/O faults, OOM, fuzz, concurrency (rel.*)
#   tests/bench/tests.cmake        benchmark harness (built, not a pass/fail test)
set(OPLOG_TEST_ENV
  "LUA_PATH=${CMAKE_BINARY_DIR}/lua/?.lua\;${CMAKE_BINARY_DIR}/lua/?/init.lua\;/usr/share/lua/5.4/?.lua\;/usr/share/lua/5.4/?/init.lua"
  "LUA_CPATH=${CMAKE_BINARY_DIR}/lua/?.so\;/usr/lib/x86_64-linux-gnu/lua/5.4/?.so\;/usr/local/lib/lua/5.4/?.so"
  "OPLOG_BIN=$<TARGET_FILE:oplog_cli>"
  "OPLOG_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
  "OPLOG_BUILD_DIR=${CMAKE_BINARY_DIR}")
if(OPLOG_SANITIZE)
  # lua5.4 itself is not instrumented: preload the runtime for Lua-driven tests.
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
    OUTPUT_VARIABLE ASAN_RT OUTPUT_STRIP_TRAILING_WHITESPACE)
  # quoted: the list's elements hold escaped ';' (LUA_PATH) that must stay
  set(OPLOG_LUA_TEST_ENV "${OPLOG_TEST_ENV};LD_PRELOAD=${ASAN_RT};ASAN_OPTIONS=detect_leaks=0")
else()
  set(OPLOG_LUA_TEST_ENV "${OPLOG_TEST_ENV}")
endif()

set(OPLOG_TEST_AREAS "c;spec;cli;reliability;bench;install;format" CACHE STRING "Test areas to build")
foreach(area ${OPLOG_TEST_AREAS})
  include(${CMAKE_SOURCE_DIR}/tests/${area}/tests.cmake OPTIONAL)
endforeach()
