# The storage format, checked from outside (ctest name format.*):
# tests/format/reader.py is an independent reader written from
# schema/FORMAT.md and proto/oplog.proto only (Python 3 standard library and
# libsodium through ctypes); run.py has the oplog command write a varied
# workload (workload.lua), migrates copies of tests/fixtures/format1, and
# reads every file back with it. Needs python3 (Debian package python3).
find_program(OPLOG_PYTHON3 NAMES python3)
if(OPLOG_PYTHON3)
  add_test(NAME format.independent_reader
    COMMAND ${OPLOG_PYTHON3} ${PROJECT_SOURCE_DIR}/tests/format/run.py)
  set_tests_properties(format.independent_reader PROPERTIES
    ENVIRONMENT "${OPLOG_TEST_ENV}" LABELS format TIMEOUT 300)
else()
  message(WARNING "python3 not found: format.independent_reader is not registered")
endif()
