// What a regeneration drops that a person may have written: output sections are pinmark's and
// are rewritten whole (docs/case-format.md), so a note typed inside one is gone afterwards. The
// driver names each such line before it rewrites the file, so that nothing goes unnoticed. A
// sentence an older pinmark wrote there, in words the current one no longer uses, is named
// too: which of the two a line is cannot be told from the file.
#pragma once

#include <string>
#include <vector>

namespace pinmark {

struct DroppedNote {
  int line = 0;      // file line (1-based)
  std::string text;  // the line, without its line ending
};

// The lines of `old_case` inside an output section that are neither blank, a heading, a table
// row, a list item, nor inside a fenced code block (prose, as a person writes it), and that
// `new_case` does not have in any output section: neither the line itself nor a line that
// begins with the same 30 characters (a generated sentence whose numbers moved). `first_line` is
// the file line of old_case's first line. Reports no errors.
std::vector<DroppedNote> dropped_notes(const std::string& old_case, int first_line,
                                       const std::string& new_case);

}  // namespace pinmark
