# Benchmark harness (issue 7): oplog against raw SQLite. Not a pass/fail
# test: `cmake --build build --target bench` runs the full benchmark,
# `--target bench-quick` (or `oplog_bench --quick`) a smoke run. One ctest
# test, bench.quick, only checks that the quick run completes and prints its
# final machine-readable line, so that the harness cannot rot.

# The bench embeds Lua like the `oplog` command does: the binding and the
# embedded lua/ sources are compiled in, oplog.core goes to package.preload.
add_executable(oplog_bench
  ${CMAKE_SOURCE_DIR}/tests/bench/bench.c
  ${CMAKE_SOURCE_DIR}/src/lua_oplog.c
  ${GEN}/embedded_lua.c)
target_include_directories(oplog_bench PRIVATE ${CMAKE_SOURCE_DIR}/src ${GEN})
target_compile_definitions(oplog_bench PRIVATE OPLOG_BENCH_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
target_link_libraries(oplog_bench PRIVATE oplog_static PkgConfig::LUA PkgConfig::SQLITE3
  PkgConfig::SODIUM m)

add_custom_target(bench
  COMMAND oplog_bench --dir ${CMAKE_BINARY_DIR}/bench-data
  DEPENDS oplog_bench
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
  USES_TERMINAL
  COMMENT "oplog benchmark (full run, several minutes)")
add_custom_target(bench-quick
  COMMAND oplog_bench --quick --dir ${CMAKE_BINARY_DIR}/bench-quick
  DEPENDS oplog_bench
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
  USES_TERMINAL
  COMMENT "oplog benchmark (quick smoke run)")

add_test(NAME bench.quick
  COMMAND oplog_bench --quick --dir ${CMAKE_BINARY_DIR}/bench-ctest)
# Passes when the final line is printed in full (the bench exits before it
# on any failure); the figures themselves are not judged.
set_tests_properties(bench.quick PROPERTIES
  PASS_REGULAR_EXPRESSION "bench: w1=[^\n]* lua2=[^\n]* open_ms=[^\n]* rss_mb=[0-9.a-z]+"
  TIMEOUT 120
  ENVIRONMENT "${OPLOG_TEST_ENV}")
