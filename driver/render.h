// Turning results back into Markdown: input sections and prose verbatim, output sections new.
#pragma once

#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_runner.h"

namespace pinmark {

// The case as it should read: its heading and prose, its input (and unknown) sections in their
// order, then the output sections rendered from `result`. No trailing newline.
// Rendered sections use `newline` as their line ending, the verbatim ones keep their own.
// With `record_device`, a GPU row that reproduced its golden row adds this machine's device to
// the row's list of devices; without, it keeps the golden's list (what a golden is checked
// against: a new device that reproduces a row is no difference).
std::string render_case(const Case& c, const CaseResult& result, const std::string& newline = "\n",
                        bool record_device = true);

// The file from its preamble and its cases' texts, one blank line between pieces.
std::string assemble_file(const std::string& preamble, const std::vector<std::string>& cases,
                          const std::string& newline = "\n");

// One problem as a line: "Config, line 3: unknown config key 'x'".
std::string problem_line(const CaseProblem& problem);

}  // namespace pinmark
