# Cross builds (tests/cross/README.md; `sh .ci/setup cross` configures
# build-<arch>/ with cmake/toolchain-<arch>.cmake and OPLOG_TEST_AREAS
# "c;cross"). ctest runs the target's programs through
# CMAKE_CROSSCOMPILING_EMULATOR (qemu-<arch>-static): the C tests of area c
# as they are, and here
#   cross.lua.<spec>   busted specs under the target's Lua (lua.c), loading
#                      the target's oplog/core.so, lfs and system
#   cross.cli.<test>   the command's tests (host lua5.4 driving the target's
#                      static `oplog` through qemu)
#   cross.portability  logs written here verified and replayed natively,
#                      and the reverse; the static binary copied alone
# Nothing here is registered in a native build.
if(NOT CMAKE_CROSSCOMPILING)
  return()
endif()
if(NOT CMAKE_CROSSCOMPILING_EMULATOR)
  message(FATAL_ERROR "tests/cross: set CMAKE_CROSSCOMPILING_EMULATOR (cmake/toolchain-<arch>.cmake)")
endif()
set(CROSS_DIR ${PROJECT_SOURCE_DIR}/tests/cross)
set(CROSS_BIN ${PROJECT_BINARY_DIR}/cross-bin)
set(OPLOG_NATIVE_BUILD ${PROJECT_SOURCE_DIR}/build CACHE PATH
  "A native build (its oplog and lua/oplog/core.so) for the cross tests")
find_program(BUSTED busted REQUIRED)
string(REPLACE ";" " " cross_emu "${CMAKE_CROSSCOMPILING_EMULATOR}")

# The target's Lua interpreter (Debian's lua5.4 cannot be installed for
# another architecture beside the host's).
add_executable(oplog_cross_lua ${CROSS_DIR}/lua.c)
target_include_directories(oplog_cross_lua PRIVATE ${OPLOG_LUA_INCLUDE_DIRS})
target_link_libraries(oplog_cross_lua PRIVATE PkgConfig::LUA)
set_target_properties(oplog_cross_lua PROPERTIES OUTPUT_NAME lua RUNTIME_OUTPUT_DIRECTORY ${CROSS_BIN}/target)

# cross-bin/lua5.4 and cross-bin/oplog run the target's programs under
# qemu, for the tests that start `lua5.4` or $OPLOG_BIN themselves.
file(GENERATE OUTPUT ${CROSS_BIN}/lua5.4
  CONTENT "#!/bin/sh\nexec ${cross_emu} $<TARGET_FILE:oplog_cross_lua> \"$@\"\n"
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
file(GENERATE OUTPUT ${CROSS_BIN}/oplog
  CONTENT "#!/bin/sh\nexec ${cross_emu} $<TARGET_FILE:oplog_cli> \"$@\"\n"
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

set(cross_lua_path "${PROJECT_BINARY_DIR}/lua/?.lua\;${PROJECT_BINARY_DIR}/lua/?/init.lua\;${CROSS_DIR}/?.lua\;/usr/local/share/lua/5.4/?.lua\;/usr/local/share/lua/5.4/?/init.lua\;/usr/share/lua/5.4/?.lua\;/usr/share/lua/5.4/?/init.lua")
set(cross_lua_cpath "${PROJECT_BINARY_DIR}/lua/?.so\;/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/lua/5.4/?.so")
set(CROSS_ENV
  "PATH=${CROSS_BIN}:$ENV{PATH}"
  "LUA_PATH=${cross_lua_path}"
  "LUA_CPATH=${cross_lua_cpath}"
  "OPLOG_BIN=${CROSS_BIN}/oplog"
  "OPLOG_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
  "OPLOG_BUILD_DIR=${PROJECT_BINARY_DIR}")

# The specs (all of tests/spec/tests.cmake's by default; OPLOG_CROSS_SPECS
# picks a subset).
set(OPLOG_CROSS_SPECS "module;open;define;transaction;lowlevel;read;replay_verify;keys;testing;format2;format1;errors;security;failures;sync"
  CACHE STRING "busted specs run under emulation")
foreach(spec ${OPLOG_CROSS_SPECS})
  add_test(NAME cross.lua.${spec}
    COMMAND oplog_cross_lua ${BUSTED} --ignore-lua -o plainTerminal
            ${PROJECT_SOURCE_DIR}/tests/spec/${spec}_spec.lua
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(cross.lua.${spec} PROPERTIES
    ENVIRONMENT "${CROSS_ENV}" LABELS "cross;spec" TIMEOUT 900)
endforeach()

# The command's tests: the host's lua5.4 runs them, the target's oplog
# does the work; where a test loads the oplog module itself, it gets the
# native build's (reading what the target wrote).
set(OPLOG_CROSS_CLI "" CACHE STRING "tests/cli tests run against the target's oplog")
set(CROSS_CLI_ENV
  "LUA_PATH=${OPLOG_NATIVE_BUILD}/lua/?.lua\;${OPLOG_NATIVE_BUILD}/lua/?/init.lua\;${OPLOG_LUA_DEFAULT_path}"
  "LUA_CPATH=${OPLOG_NATIVE_BUILD}/lua/?.so\;${OPLOG_LUA_DEFAULT_cpath}"
  "OPLOG_BIN=${CROSS_BIN}/oplog"
  "OPLOG_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
  "OPLOG_BUILD_DIR=${PROJECT_BINARY_DIR}")
foreach(t ${OPLOG_CROSS_CLI})
  add_test(NAME cross.cli.${t}
    COMMAND ${LUA_INTERP} ${PROJECT_SOURCE_DIR}/tests/cli/${t}_test.lua)
  set_tests_properties(cross.cli.${t} PROPERTIES
    ENVIRONMENT "${CROSS_CLI_ENV}" LABELS "cross;cli" TIMEOUT 600)
endforeach()

# security.entry_size_ceiling bounds the growth of the process's peak RSS
# (VmHWM) while a huge entry is refused; under qemu-user that is the
# emulator's, which the guest code it translates grows too (8.4 to 9.5 MiB
# seen against the test's 8 MiB bound). It runs natively and under ASan.
if(TEST security.entry_size_ceiling)
  set_tests_properties(security.entry_size_ceiling PROPERTIES DISABLED TRUE)
endif()

# src/static_libc.c's sscanf (glibc's tzset's, in the static command)
# against glibc's own, linked statically as the command is.
add_executable(oplog_cross_static_libc ${CROSS_DIR}/static_libc.c)
target_link_options(oplog_cross_static_libc PRIVATE -static)
set_target_properties(oplog_cross_static_libc PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CROSS_BIN}/target)
add_test(NAME cross.static_libc COMMAND oplog_cross_static_libc)
set_tests_properties(cross.static_libc PROPERTIES LABELS cross TIMEOUT 300)

# The stripped static command stays under 2 MiB (README, Edge targets).
if(OPLOG_STATIC)
  add_test(NAME cross.static_size
    COMMAND sh ${CROSS_DIR}/static_size.sh ${CMAKE_STRIP} $<TARGET_FILE:oplog_cli> 2048)
  set_tests_properties(cross.static_size PROPERTIES LABELS cross TIMEOUT 60)
endif()

# Logs across architectures, both ways (tests/cross/portability.sh).
add_test(NAME cross.portability
  COMMAND sh ${CROSS_DIR}/portability.sh ${CMAKE_SYSTEM_PROCESSOR} "${cross_emu}"
    $<TARGET_FILE:oplog_cli> ${OPLOG_NATIVE_BUILD}/oplog ${PROJECT_BINARY_DIR}/cross-portability)
set_tests_properties(cross.portability PROPERTIES LABELS cross TIMEOUT 900
  ENVIRONMENT "LUA_PATH=${OPLOG_NATIVE_BUILD}/lua/?.lua\;${OPLOG_NATIVE_BUILD}/lua/?/init.lua\;${OPLOG_LUA_DEFAULT_path};LUA_CPATH=${OPLOG_NATIVE_BUILD}/lua/?.so\;${OPLOG_LUA_DEFAULT_cpath}")
