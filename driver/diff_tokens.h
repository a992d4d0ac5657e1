// Changed numbers inside a changed line: the two lines of a pair ("-" golden, "+" actual) split
// into tokens (numbers, words, single other characters), diffed with dtl, and the tokens that
// differ marked, so a one-digit move in a line of eight numbers is seen at once.
#pragma once

#include <string>
#include <vector>

namespace pinmark {

// The tokens of a line, in order; joined they are the line. A number is one token with its
// sign and exponent ("-1.25e-05"); a word is a run of letters, digits, '_' and '.'; every other
// character (space, '|', ',', '[', a byte of a multi-byte character) is a token of its own.
std::vector<std::string> line_tokens(const std::string& line);

// Byte ranges [begin, end) of a line that differ from the other line of its pair.
struct Marks {
  std::vector<std::pair<size_t, size_t>> golden, actual;
};

// The tokens of `golden` that `actual` lacks and those of `actual` that `golden` lacks, as byte
// ranges, adjacent ones merged. Empty (nothing marked) when the lines are equal, or when they
// share less than half of their text: lines that differ throughout are not pairs worth marking.
Marks changed_tokens(const std::string& golden, const std::string& actual);

// `line` with each marked range in reverse video, for a line already coloured as a whole:
// the colour carries on after each range.
std::string reverse_marked(const std::string& line, const std::vector<std::pair<size_t, size_t>>& marks);

// A line of '^' under the marked ranges of `line` (one column per character of UTF-8 text),
// trailing spaces dropped; empty when nothing is marked.
std::string caret_line(const std::string& line, const std::vector<std::pair<size_t, size_t>>& marks);

}  // namespace pinmark
