# Benchmark harness (issue 7): oplog against raw SQLite. Not a benchmark
# gate: `cmake --build build --target bench` runs the full benchmark,
# `--target bench-quick` (or `oplog_bench --quick`) a smoke run. ctest runs
# the quick run as bench.quick, which fails when the harness fails or when a
# figure it measured is impossible (nan, a ratio <= 0, pages < 1: the bench
# then exits 1), so that the harness cannot rot; the figures are not judged
# against their targets. The run also fails (exit 2, before measuring) when
# SAME-SQL does not issue exactly the core's statements.

# The bench embeds Lua like the `oplog` command does: the binding and the
# embedded lua/ sources are compiled in, oplog.core goes to package.preload.
add_executable(oplog_bench
  ${CMAKE_SOURCE_DIR}/tests/bench/bench.c
  ${CMAKE_SOURCE_DIR}/src/lua_oplog.c
  ${GEN}/embedded_lua.c)
target_include_directories(oplog_bench PRIVATE ${CMAKE_SOURCE_DIR}/src ${GEN})
target_compile_definitions(oplog_bench PRIVATE OPLOG_BENCH_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
if(OPLOG_POSTGRES)
  # the ship figure: COPY of the same rows as its baseline (libpq)
  target_compile_definitions(oplog_bench PRIVATE OPLOG_BENCH_PQ=1)
  target_link_libraries(oplog_bench PRIVATE PkgConfig::PQ)
endif()
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

# Judged by the exit status: 0 only when the run completed and every figure
# it measured is possible.
add_test(NAME bench.quick
  COMMAND oplog_bench --quick --dir ${CMAKE_BINARY_DIR}/bench-ctest)
set_tests_properties(bench.quick PROPERTIES
  TIMEOUT 120
  ENVIRONMENT "${OPLOG_TEST_ENV}")
# The check itself can fail: a run that measures nothing, with a page count
# forced to 0, must say so (it then exits 1; ctest ignores the status when
# it matches the output).
add_test(NAME bench.check
  COMMAND oplog_bench --quick --only none --side oplog --fake pages=0
    --dir ${CMAKE_BINARY_DIR}/bench-check)
set_tests_properties(bench.check PROPERTIES
  PASS_REGULAR_EXPRESSION "bench: impossible figure\\(s\\): pages=0.00 "
  TIMEOUT 60
  ENVIRONMENT "${OPLOG_TEST_ENV}")
# So can the SQL check: SAME-SQL made to drift (--drift-same-sql reads the
# row back with SELECT *, the same work in other words) must fail the run.
add_test(NAME bench.sqlcheck
  COMMAND oplog_bench --quick --only sql --drift-same-sql
    --dir ${CMAKE_BINARY_DIR}/bench-sqlcheck)
set_tests_properties(bench.sqlcheck PROPERTIES
  PASS_REGULAR_EXPRESSION "bench: SAME-SQL is not the core's SQL"
  TIMEOUT 60
  ENVIRONMENT "${OPLOG_TEST_ENV}")
