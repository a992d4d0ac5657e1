#include "driver/diff_tokens.h"

#include <dtl/dtl.hpp>

namespace pinmark {
namespace {

bool digit(char c) { return c >= '0' && c <= '9'; }
bool word_char(char c) {
  return digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.';
}

// Adds [begin, end) to `ranges`, merging it with the last range when they touch.
void add_range(std::vector<std::pair<size_t, size_t>>& ranges, size_t begin, size_t end) {
  if (begin == end) return;
  if (!ranges.empty() && ranges.back().second == begin)
    ranges.back().second = end;
  else
    ranges.emplace_back(begin, end);
}

}  // namespace

std::vector<std::string> line_tokens(const std::string& line) {
  std::vector<std::string> tokens;
  size_t i = 0;
  while (i < line.size()) {
    const size_t start = i;
    const bool sign = (line[i] == '-' || line[i] == '+') && i + 1 < line.size() &&
                      (digit(line[i + 1]) || line[i + 1] == '.') &&
                      (i == 0 || !word_char(line[i - 1]));
    if (sign || word_char(line[i])) {
      if (sign) ++i;
      while (i < line.size()) {
        if (word_char(line[i])) {
          ++i;
        } else if ((line[i] == '-' || line[i] == '+') && i + 1 < line.size() &&
                   digit(line[i + 1]) && (line[i - 1] == 'e' || line[i - 1] == 'E') &&
                   digit(line[start + (sign ? 1 : 0)])) {
          ++i;  // the sign of an exponent: 1.5e-05
        } else {
          break;
        }
      }
    } else {
      ++i;
    }
    tokens.push_back(line.substr(start, i - start));
  }
  return tokens;
}

Marks changed_tokens(const std::string& golden, const std::string& actual) {
  Marks marks;
  if (golden == actual) return marks;
  const std::vector<std::string> a = line_tokens(golden), b = line_tokens(actual);
  dtl::Diff<std::string, std::vector<std::string>> diff(a, b);
  diff.compose();
  size_t at_a = 0, at_b = 0, common = 0;
  for (const auto& [token, info] : diff.getSes().getSequence()) {
    if (info.type == dtl::SES_COMMON) {
      at_a += token.size();
      at_b += token.size();
      common += token.size();
    } else if (info.type == dtl::SES_DELETE) {
      add_range(marks.golden, at_a, at_a + token.size());
      at_a += token.size();
    } else {
      add_range(marks.actual, at_b, at_b + token.size());
      at_b += token.size();
    }
  }
  if (2 * common < std::max(golden.size(), actual.size())) return {};
  return marks;
}

std::string reverse_marked(const std::string& line,
                           const std::vector<std::pair<size_t, size_t>>& marks) {
  std::string out;
  size_t at = 0;
  for (const auto& [begin, end] : marks) {
    out += line.substr(at, begin - at) + "\033[7m" + line.substr(begin, end - begin) + "\033[27m";
    at = end;
  }
  return out + line.substr(at);
}

std::string caret_line(const std::string& line,
                       const std::vector<std::pair<size_t, size_t>>& marks) {
  if (marks.empty()) return "";
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) continue;  // inside a character
    while (next < marks.size() && marks[next].second <= i) ++next;
    out += next < marks.size() && marks[next].first <= i ? '^' : ' ';
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace pinmark
