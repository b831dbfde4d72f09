# Installing and packaging, used from outside as a user would (install.*):
#   install.layout      `cmake --install` into a temporary prefix: files, the
#                       exported symbols, pkg-config and find_package(oplog)
#                       consumers, the Lua module, the command
#   install.subproject  oplog as add_subdirectory() of another CMake project
#   install.luarocks    `luarocks make` into a temporary tree, then a script
#                       using the rock (needs luarocks: Debian package luarocks)
# An installed ASan build needs the sanitizer runtime in every program: these
# are skipped there (label no-asan).
add_test(NAME install.layout
  COMMAND sh ${PROJECT_SOURCE_DIR}/tests/install/install_test.sh ${PROJECT_BINARY_DIR})
add_test(NAME install.subproject
  COMMAND sh ${PROJECT_SOURCE_DIR}/tests/install/subproject_test.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(install.layout install.subproject PROPERTIES LABELS "install;no-asan" TIMEOUT 300)
find_program(OPLOG_LUAROCKS luarocks)
if(OPLOG_LUAROCKS)
  add_test(NAME install.luarocks
    COMMAND sh ${PROJECT_SOURCE_DIR}/tests/install/luarocks_test.sh ${PROJECT_SOURCE_DIR})
  set_tests_properties(install.luarocks PROPERTIES LABELS "install;no-asan" TIMEOUT 300)
else()
  message(WARNING "luarocks not found: install.luarocks is not registered")
endif()
