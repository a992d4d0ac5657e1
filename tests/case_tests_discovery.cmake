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
#
# Each case's test starts no engine (PINMARK_NO_ENGINES=1): its engine rows are judged as the
# golden records them, as for a GPU row here. An engine starts once per run, not once per case
# (a Python engine takes about a second to import torch), so the engines measure their rows in
# one test of their own, cases.engine_rows (tests/CMakeLists.txt), one run over every case.

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

# ctest names a case's test by the case's one name, FILE::slug, as `pinmark list` prints it
# and `pinmark run --filter` takes it: FILE is the case file under the cases folder as the
# reader knows it ("cases", or $PINMARK_CASES_DIR as given), so cases/models/llama.md::gqa.
if(DEFINED ENV{PINMARK_CASES_DIR} AND NOT "$ENV{PINMARK_CASES_DIR}" STREQUAL "")
  set(pinmark_cases_shown "$ENV{PINMARK_CASES_DIR}")
  string(REGEX REPLACE "(.)/+$" "\\1" pinmark_cases_shown "${pinmark_cases_shown}")
else()
  set(pinmark_cases_shown "cases")
endif()

# The listing: "suite." on its own line, then "  test" per test. Names hold no ';' (slugs are
# [a-z0-9_]), so one line is one list element.
string(REPLACE "\n" ";" pinmark_lines "${pinmark_listing}")
set(pinmark_suite "")
foreach(pinmark_line IN LISTS pinmark_lines)
  if(pinmark_line MATCHES "^([^ ].*)\\.$")
    set(pinmark_suite "${CMAKE_MATCH_1}")
  elseif(pinmark_line MATCHES "^  ([^ ]+)")
    set(pinmark_gtest_name "${pinmark_suite}.${CMAKE_MATCH_1}")
    set(pinmark_name "${pinmark_cases_shown}/${pinmark_suite}.md::${CMAKE_MATCH_1}")
    add_test("${pinmark_name}" "${PINMARK_CASE_TESTS}" "--gtest_filter=${pinmark_gtest_name}")
    set_tests_properties("${pinmark_name}" PROPERTIES
      WORKING_DIRECTORY "${PINMARK_CASE_TESTS_WORKDIR}"
      ENVIRONMENT "OMP_WAIT_POLICY=passive;PINMARK_NO_ENGINES=1"
      SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
  endif()
endforeach()
