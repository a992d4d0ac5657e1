# Lists the case tests each time ctest starts. Included from CTestTestfile.cmake (through the
# TEST_INCLUDE_FILES of tests/), so it runs in ctest's own interpreter on every `ctest` and
# `ctest -N`: a case added, renamed or deleted, or a new file, shows in the very next run with
# no cmake step. gtest_discover_tests lists again only when the executable changes, and the
# cases live on disk, not in the executable.
#
# Inputs, set by the includer:
#   PINMARK_CASE_TESTS        the case_tests executable
#   PINMARK_CASE_TESTS_WORKDIR  the directory each test runs in
# Cases are read from $PINMARK_CASES_DIR when set, as case_tests itself does.
#
# Never silent: a missing executable gives the test case_tests_NOT_BUILT and a listing that
# fails gives case_tests.discovery, each failing with the reason when run.

if(NOT EXISTS "${PINMARK_CASE_TESTS}")
  add_test(case_tests_NOT_BUILT "${PINMARK_CASE_TESTS}")
  return()
endif()

execute_process(
  COMMAND "${PINMARK_CASE_TESTS}" --gtest_list_tests
  WORKING_DIRECTORY "${PINMARK_CASE_TESTS_WORKDIR}"
  OUTPUT_VARIABLE pinmark_listing
  ERROR_VARIABLE pinmark_listing_errors
  RESULT_VARIABLE pinmark_listing_status
  TIMEOUT 120)
if(NOT pinmark_listing_status STREQUAL "0")
  # Running the listing again as a test shows its error in the test's output.
  add_test(case_tests.discovery "${PINMARK_CASE_TESTS}" --gtest_list_tests)
  set_tests_properties(case_tests.discovery PROPERTIES
    WORKING_DIRECTORY "${PINMARK_CASE_TESTS_WORKDIR}")
  return()
endif()

# The listing: "suite." on its own line, then "  test" per test. Names hold no ';' (slugs are
# [a-z0-9_]), so one line is one list element.
string(REPLACE "\n" ";" pinmark_lines "${pinmark_listing}")
set(pinmark_suite "")
foreach(pinmark_line IN LISTS pinmark_lines)
  if(pinmark_line MATCHES "^([^ ].*)\\.$")
    set(pinmark_suite "${CMAKE_MATCH_1}")
  elseif(pinmark_line MATCHES "^  ([^ ]+)")
    set(pinmark_name "${pinmark_suite}.${CMAKE_MATCH_1}")
    add_test("${pinmark_name}" "${PINMARK_CASE_TESTS}" "--gtest_filter=${pinmark_name}")
    set_tests_properties("${pinmark_name}" PROPERTIES
      WORKING_DIRECTORY "${PINMARK_CASE_TESTS_WORKDIR}"
      SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
  endif()
endforeach()
