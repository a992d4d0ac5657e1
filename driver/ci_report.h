// Reports of a `pinmark run` for CI: JUnit XML (`--junit FILE`) and a Markdown summary in the
// shape of a GitHub job summary (`--summary FILE`).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pinmark {

struct CaseReport {
  enum class Status { kPassed, kFailed, kError };
  std::string file;  // the case file's path
  std::string slug;  // empty for a file that could not be run (invalid or unreadable)
  Status status = Status::kPassed;
  std::vector<std::string> failures;  // one line each, "FILE:LINE: why"
  std::string diff;                   // uncoloured unified diff of golden and actual, or empty
  std::string chart;  // SVG of its error against layer, relative to the summary's folder, or empty
};

struct RunReport {
  std::vector<CaseReport> cases;
  int carried_rows = 0, stale_rows = 0, unmeasured_rows = 0;
  std::vector<std::string> pending;    // pending goldens written
  std::vector<std::string> rewritten;  // goldens regenerated
};

// Text as XML character data or attribute value: & < > " ' escaped, line breaks and tabs as
// character references (so attributes keep them), and characters XML 1.0 forbids (other
// control characters, invalid UTF-8) as U+FFFD.
std::string xml_escape(std::string_view text);

// <testsuites> with one <testsuite name="pinmark">, one <testcase classname=FILE name=SLUG> per
// case; a failing case has <failure message="its failing rows">rows and diff</failure>, a file
// that could not be run an <error>.
std::string junit_xml(const RunReport& report);

// Markdown: a headline with the counts, a table of rows carried, stale and unmeasured, then
// each failed case with its first three failing rows, its chart of error against layer (a model
// case's, when written) and its diff (its first 80 lines) folded in a <details>, then the
// pending goldens written and the goldens regenerated.
std::string markdown_summary(const RunReport& report);

}  // namespace pinmark
