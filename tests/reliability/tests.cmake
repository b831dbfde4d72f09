# Reliability tests (ctest names rel.*): power cut (process kills, and a
# simulated disk that loses what was not synced), I/O faults, disk full,
# out of memory, hostile input (fuzz targets), concurrency. See
# tests/reliability/README.md for what each checks, the knobs and the long
# runs (libFuzzer, valgrind).
set(REL_DIR ${CMAKE_SOURCE_DIR}/tests/reliability)
set(REL_BIN ${CMAKE_BINARY_DIR}/tests/reliability)

# Helpers shared by every test. They include internal.h only where a fuzz
# entry point is used, so they build against oplog_objects' include dirs.
add_library(oplog_reltest STATIC ${REL_DIR}/rel_common.c ${REL_DIR}/rel_vfs.c
  ${REL_DIR}/rel_crashvfs.c ${REL_DIR}/rel_sweep.c ${REL_DIR}/rel_v1.c)
target_include_directories(oplog_reltest PUBLIC ${REL_DIR} ${CMAKE_SOURCE_DIR}/src)
# The format-1 fixture (rel_v1.c) when OPLOG_SOURCE_DIR is not set.
target_compile_definitions(oplog_reltest PRIVATE REL_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
target_link_libraries(oplog_reltest PUBLIC oplog_static)

function(rel_executable name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE oplog_reltest)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${REL_BIN})
endfunction()

# Fuzz targets use internal entry points: link the object library.
function(rel_fuzz_executable name src)
  add_executable(${name} ${src} ${REL_DIR}/fuzz_main.c $<TARGET_OBJECTS:oplog_objects>)
  target_include_directories(${name} PRIVATE ${REL_DIR} ${CMAKE_SOURCE_DIR}/src
    ${CMAKE_BINARY_DIR}/gen)
  target_link_libraries(${name} PRIVATE oplog_reltest PkgConfig::SQLITE3 PkgConfig::SODIUM
    PkgConfig::PROTOBUFC m)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${REL_BIN})
endfunction()

rel_executable(rel_powercut ${REL_DIR}/rel_powercut.c)
rel_executable(rel_crashsim ${REL_DIR}/rel_crashsim.c)
rel_executable(rel_iofault ${REL_DIR}/rel_iofault.c)
rel_executable(rel_diskfull ${REL_DIR}/rel_diskfull.c)
rel_executable(rel_oom ${REL_DIR}/rel_oom.c)
rel_executable(rel_concurrency ${REL_DIR}/rel_concurrency.c)
rel_fuzz_executable(rel_fuzz_entry ${REL_DIR}/rel_fuzz_entry.c)
rel_fuzz_executable(rel_fuzz_rows ${REL_DIR}/rel_fuzz_rows.c)
rel_fuzz_executable(rel_fuzz_keys ${REL_DIR}/rel_fuzz_keys.c)
rel_fuzz_executable(rel_fuzz_stream ${REL_DIR}/rel_fuzz_stream.c)
rel_fuzz_executable(rel_fuzz_lua ${REL_DIR}/rel_fuzz_lua.c)
target_sources(rel_fuzz_lua PRIVATE ${CMAKE_SOURCE_DIR}/src/lua_oplog.c)
target_link_libraries(rel_fuzz_lua PRIVATE PkgConfig::LUA)
target_compile_definitions(rel_fuzz_lua PRIVATE
  REL_LUA_SCRIPT="${REL_DIR}/lua_api_fuzz.lua")

# Every test gets its own scratch directory under the build tree. Quoted:
# the elements hold escaped ';' (LUA_PATH) that must stay escaped.
set(REL_ENV "${OPLOG_TEST_ENV};TMPDIR=${REL_BIN}/tmp")
set(REL_LUA_ENV "${OPLOG_LUA_TEST_ENV};TMPDIR=${REL_BIN}/tmp")
file(MAKE_DIRECTORY ${REL_BIN}/tmp)

add_test(NAME rel.powercut COMMAND rel_powercut)
add_test(NAME rel.crashsim COMMAND rel_crashsim)
add_test(NAME rel.iofault COMMAND rel_iofault)
add_test(NAME rel.diskfull COMMAND rel_diskfull)
add_test(NAME rel.oom COMMAND rel_oom)
add_test(NAME rel.concurrency COMMAND rel_concurrency)
add_test(NAME rel.fuzz_entry COMMAND rel_fuzz_entry)
add_test(NAME rel.fuzz_rows COMMAND rel_fuzz_rows)
add_test(NAME rel.fuzz_keys COMMAND rel_fuzz_keys)
add_test(NAME rel.fuzz_stream COMMAND rel_fuzz_stream)
add_test(NAME rel.fuzz_lua_c COMMAND rel_fuzz_lua)
add_test(NAME rel.fuzz_lua COMMAND ${LUA_INTERP} ${REL_DIR}/lua_api_fuzz.lua)
set_tests_properties(rel.powercut rel.crashsim rel.iofault rel.diskfull rel.oom rel.concurrency
  rel.fuzz_entry rel.fuzz_rows rel.fuzz_keys rel.fuzz_stream rel.fuzz_lua_c
  PROPERTIES ENVIRONMENT "${REL_ENV}" TIMEOUT 300 LABELS reliability)
set_tests_properties(rel.fuzz_lua PROPERTIES ENVIRONMENT "${REL_LUA_ENV}" TIMEOUT 300
  LABELS reliability)
# The suite samples the OOM sweep's migrate path (~12,000 allocation
# points) more sparsely, and under ASan every sweep more sparsely still;
# run_long.sh takes every point.
if(OPLOG_SANITIZE)
  set_property(TEST rel.oom APPEND PROPERTY ENVIRONMENT "REL_OOM_MIGRATE_FACTOR=40" "REL_STRIDE=24"
    "REL_OOM_PERSISTENT_STRIDE=120")
else()
  set_property(TEST rel.oom APPEND PROPERTY ENVIRONMENT "REL_OOM_MIGRATE_FACTOR=12")
endif()
# The power-cut simulator: every point of its workloads, in 3 modes and 2
# syncs, is about 3000 cuts (run_long.sh); the suite takes every 3rd point
# (the three modes of a sync shifted, so that together they cover every
# point), every 6th under ASan.
if(OPLOG_SANITIZE)
  set_property(TEST rel.crashsim APPEND PROPERTY ENVIRONMENT "REL_STRIDE=6")
else()
  set_property(TEST rel.crashsim APPEND PROPERTY ENVIRONMENT "REL_STRIDE=3")
endif()
# Short deterministic campaigns (a few seconds each, also under ASan).
set_property(TEST rel.fuzz_entry APPEND PROPERTY ENVIRONMENT "REL_FUZZ_RUNS=20000")
set_property(TEST rel.fuzz_rows APPEND PROPERTY ENVIRONMENT "REL_FUZZ_RUNS=20000")
set_property(TEST rel.fuzz_keys APPEND PROPERTY ENVIRONMENT "REL_FUZZ_RUNS=2000")
set_property(TEST rel.fuzz_stream APPEND PROPERTY ENVIRONMENT "REL_FUZZ_RUNS=2000")
set_property(TEST rel.fuzz_lua_c APPEND PROPERTY ENVIRONMENT "REL_FUZZ_RUNS=2000")
set_property(TEST rel.fuzz_lua APPEND PROPERTY ENVIRONMENT "REL_FUZZ_RUNS=3000")

# Real libFuzzer targets (clang only): cmake -DOPLOG_FUZZ=ON with CC=clang.
if(OPLOG_FUZZ)
  foreach(t entry rows keys stream lua)
    add_executable(fuzz_${t} ${REL_DIR}/rel_fuzz_${t}.c $<TARGET_OBJECTS:oplog_objects>)
    target_include_directories(fuzz_${t} PRIVATE ${REL_DIR} ${CMAKE_SOURCE_DIR}/src
      ${CMAKE_BINARY_DIR}/gen)
    target_compile_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_${t} PRIVATE oplog_reltest PkgConfig::SQLITE3
      PkgConfig::SODIUM PkgConfig::PROTOBUFC m)
    set_target_properties(fuzz_${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${REL_BIN})
  endforeach()
  target_sources(fuzz_lua PRIVATE ${CMAKE_SOURCE_DIR}/src/lua_oplog.c)
  target_link_libraries(fuzz_lua PRIVATE PkgConfig::LUA)
  target_compile_definitions(fuzz_lua PRIVATE REL_LUA_SCRIPT="${REL_DIR}/lua_api_fuzz.lua")
endif()
