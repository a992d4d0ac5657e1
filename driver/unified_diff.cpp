#include "driver/unified_diff.h"

#include <dtl/dtl.hpp>
#include <vector>

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
    for (const auto& e : hunk.change) {
      if (e.second.type == dtl::SES_ADD)
        out += std::string(green) + "+" + visible(e.first) + reset + "\n";
      else if (e.second.type == dtl::SES_DELETE)
        out += std::string(red) + "-" + visible(e.first) + reset + "\n";
      else
        out += " " + visible(e.first) + "\n";
    }
    for (const auto& e : hunk.common[1]) out += " " + visible(e.first) + "\n";
  }
  // Texts that differ only in a final newline have no line-level hunk.
  if (out.find("@@") == std::string::npos) out += "(the texts differ only in line endings)\n";
  return out;
}

}  // namespace pinmark
