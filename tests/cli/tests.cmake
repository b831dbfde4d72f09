# The `oplog` command (cli.*) and the examples (example.*). Each cli test is
# a lua5.4 script using tests/cli/helper.lua; it runs the binary named by
# OPLOG_BIN and prints "N passed, N failed".
set(OPLOG_CLI_TESTS basics keygen_init run dump verify replay stats_head keys
  standalone progress modules security readme sync)
foreach(t ${OPLOG_CLI_TESTS})
  add_test(NAME cli.${t}
    COMMAND ${LUA_INTERP} ${PROJECT_SOURCE_DIR}/tests/cli/${t}_test.lua)
  set_tests_properties(cli.${t} PROPERTIES
    ENVIRONMENT "${OPLOG_LUA_TEST_ENV}" LABELS cli TIMEOUT 120)
endforeach()

# Peak RSS of export and import against the stream's size: meaningless
# under ASan's shadow memory.
add_test(NAME cli.sync_memory
  COMMAND ${LUA_INTERP} ${PROJECT_SOURCE_DIR}/tests/cli/sync_memory_test.lua)
set_tests_properties(cli.sync_memory PROPERTIES
  ENVIRONMENT "${OPLOG_LUA_TEST_ENV}" LABELS "cli;no-asan" TIMEOUT 120)

# Each example runs twice, as `lua5.4 examples/X.lua` and as
# `oplog run examples/X.lua`; the example asserts its own outcome and the
# test checks exit status 0 and the output a reader is promised.
foreach(e quickstart edge_device admin)
  add_test(NAME example.${e}
    COMMAND ${LUA_INTERP} ${PROJECT_SOURCE_DIR}/tests/cli/example_test.lua ${e})
  set_tests_properties(example.${e} PROPERTIES
    ENVIRONMENT "${OPLOG_LUA_TEST_ENV}" LABELS example TIMEOUT 120)
endforeach()
