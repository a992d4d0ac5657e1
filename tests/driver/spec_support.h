// Reading a case's spec from Markdown text in a test, and its problems as the terminal prints
// them: shared by the driver tests of configs and hostile input.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "driver/case_file.h"
#include "driver/case_spec.h"
#include "driver/render.h"

namespace pinmark::test {

// The spec of the first case of `markdown`, which must parse without problems; `case_file`
// locates checkpoints named relative to the case.
inline CaseSpec spec_of(const std::string& markdown, const std::string& case_file = "") {
  CaseFile file = parse_case_file(markdown);
  EXPECT_TRUE(file.problems.empty());
  return read_case_spec(file.cases.at(0), case_file);
}

// One line per problem, as the terminal prints them.
inline std::string problems_of(const CaseSpec& spec) {
  std::string out;
  for (const CaseProblem& p : spec.problems) out += problem_line(p) + "\n";
  return out;
}

}  // namespace pinmark::test
