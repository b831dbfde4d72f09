# Mutation testing itself runs outside ctest (sh tests/mutation/run.sh);
# here only the check that every mutant still applies to the source.
find_program(OPLOG_GIT git)
if(OPLOG_GIT)
  add_test(NAME mutation.patches_apply
    COMMAND sh ${PROJECT_SOURCE_DIR}/tests/mutation/patches_apply.sh ${PROJECT_SOURCE_DIR})
  set_tests_properties(mutation.patches_apply PROPERTIES LABELS mutation TIMEOUT 60)
else()
  message(WARNING "git not found: mutation.patches_apply is not registered (the mutants need git apply)")
endif()
