// A unified diff of two texts, computed with dtl.
#pragma once

#include <string>

namespace pinmark {

struct DiffStyle {
  bool color = false;
  int first_line = 1;  // line number of the texts' first line in the file, for hunk headers
  // Mark what moved inside a changed line (driver/diff_tokens.h): with colour, the differing
  // tokens in reverse video; without, a line "?" + carets under them after the line.
  bool mark_changes = false;
};

// Empty when the texts are equal. Otherwise "--- golden_label\n+++ actual_label\n" and hunks
// with three lines of context. Lines are split at LF; every carriage return in a printed line
// shows as "␍", so lines that differ only in one are told apart. With `mark_changes`, the
// i-th line of a run of removed lines is paired with the i-th of the added lines that follow,
// and what differs between them is marked. Reports no errors.
std::string unified_diff(const std::string& golden, const std::string& actual,
                         const std::string& golden_label, const std::string& actual_label,
                         const DiffStyle& style = {});

}  // namespace pinmark
