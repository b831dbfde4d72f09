# `cmake --install` into a temporary prefix, then used as a user would.
add_test(NAME install.layout COMMAND sh ${CMAKE_SOURCE_DIR}/tests/install/install_test.sh ${CMAKE_BINARY_DIR})
# an installed ASan build needs the sanitizer runtime in every program: skip there
set_tests_properties(install.layout PROPERTIES LABELS "install;no-asan")
