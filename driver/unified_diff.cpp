#include "driver/unified_diff.h"

#include <dtl/dtl.hpp>
#include <vector>

#include "driver/diff_tokens.h"

namespace pinmark {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      if (start < text.size()) lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// A carriage return is invisible on a terminal, so lines that differ only in one would print
// alike: show each as U+240D (␍).
std::string visible(const std::string& line) {
  std::string out;
  for (char c : line) c == '\r' ? out += "\u240D" : out += c;
  return out;
}

}  // namespace

std::string unified_diff(const std::string& golden, const std::string& actual,
                         const std::string& golden_label, const std::string& actual_label,
                         const DiffStyle& style) {
  if (golden == actual) return "";
  const std::vector<std::string> a = lines_of(golden), b = lines_of(actual);
  dtl::Diff<std::string, std::vector<std::string>> diff(a, b);
  diff.onHuge();
  diff.compose();
  diff.composeUnifiedHunks();

  const char* red = style.color ? "\033[31m" : "";
  const char* green = style.color ? "\033[32m" : "";
  const char* cyan = style.color ? "\033[36m" : "";
  const char* reset = style.color ? "\033[0m" : "";
  std::string out = "--- " + golden_label + "\n+++ " + actual_label + "\n";
  const long long offset = style.first_line - 1;
  for (const auto& hunk : diff.getUniHunks()) {
    out += std::string(cyan) + "@@ -" + std::to_string(hunk.a + offset) + "," +
           std::to_string(hunk.b) + " +" + std::to_string(hunk.c + offset) + "," +
           std::to_string(hunk.d) + " @@" + reset + "\n";
    for (const auto& e : hunk.common[0]) out += " " + visible(e.first) + "\n";
    const auto& change = hunk.change;
    for (size_t i = 0; i < change.size();) {
      if (change[i].second.type == dtl::SES_COMMON) {
        out += " " + visible(change[i].first) + "\n";
        ++i;
        continue;
      }
      // A run of removed lines, then the added lines that follow: pairs by position.
      size_t removed_end = i;
      while (removed_end < change.size() && change[removed_end].second.type == dtl::SES_DELETE)
        ++removed_end;
      size_t added_end = removed_end;
      while (added_end < change.size() && change[added_end].second.type == dtl::SES_ADD)
        ++added_end;
      const size_t removed = removed_end - i, added = added_end - removed_end;
      std::vector<Marks> marks(std::max(removed, added));
      if (style.mark_changes)
        for (size_t k = 0; k < std::min(removed, added); ++k)
          marks[k] = changed_tokens(visible(change[i + k].first),
                                    visible(change[removed_end + k].first));
      auto print = [&](const std::string& sign, const char* colour, const std::string& text,
                       const std::vector<std::pair<size_t, size_t>>& marked) {
        const std::string line = visible(text);
        if (style.color) {
          out += colour + sign + (marked.empty() ? line : reverse_marked(line, marked)) + reset + "\n";
        } else {
          out += sign + line + "\n";
          if (!marked.empty()) out += "?" + caret_line(line, marked) + "\n";
        }
      };
      for (size_t k = 0; k < removed; ++k) print("-", red, change[i + k].first, marks[k].golden);
      for (size_t k = 0; k < added; ++k)
        print("+", green, change[removed_end + k].first, marks[k].actual);
      i = added_end;
    }
    for (const auto& e : hunk.common[1]) out += " " + visible(e.first) + "\n";
  }
  // Texts that differ only in a final newline have no line-level hunk.
  if (out.find("@@") == std::string::npos) out += "(the texts differ only in line endings)\n";
  return out;
}

}  // namespace pinmark
