#include "driver/dropped_notes.h"

#include <set>
#include <sstream>

#include "driver/case_file.h"

namespace pinmark {
namespace {

constexpr size_t kSentencePrefix = 30;

struct OutputLine {
  int index = 0;  // 0-based line of the case text
  std::string text;
  bool prose = false;
};

// The lines inside the case's output sections, each marked prose or not.
std::vector<OutputLine> output_lines(const std::string& case_text) {
  std::vector<OutputLine> lines;
  std::istringstream in(case_text);
  std::string line;
  bool in_output = false;
  std::string fence;  // the opening fence's run of backticks or tildes; empty outside a block
  for (int index = 0; std::getline(in, line); ++index) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t indent = line.find_first_not_of(' ');
    const std::string body = indent == std::string::npos ? "" : line.substr(indent);
    if (!fence.empty()) {
      if (body.rfind(fence, 0) == 0 && body.find_first_not_of(fence[0]) == std::string::npos)
        fence.clear();
      if (in_output) lines.push_back({index, line, false});
      continue;
    }
    if (body.rfind("```", 0) == 0 || body.rfind("~~~", 0) == 0) {
      fence = body.substr(0, body.find_first_not_of(body[0]));
      if (in_output) lines.push_back({index, line, false});
      continue;
    }
    if (body.rfind("#", 0) == 0) {
      const size_t start = body.find_first_not_of('#');
      const std::string name = start == std::string::npos ? "" : body.substr(start);
      const size_t first = name.find_first_not_of(' ');
      in_output = body.rfind("### ", 0) == 0 && first != std::string::npos &&
                  is_output_section(name.substr(first, name.find_last_not_of(' ') - first + 1));
      continue;
    }
    if (!in_output) continue;
    const bool structure =
        body.empty() || body[0] == '|' || body.rfind("- ", 0) == 0 || body.rfind("* ", 0) == 0;
    lines.push_back({index, line, !structure});
  }
  return lines;
}

}  // namespace

std::vector<DroppedNote> dropped_notes(const std::string& old_case, int first_line,
                                       const std::string& new_case) {
  std::set<std::string> kept, prefixes;
  for (const OutputLine& l : output_lines(new_case)) {
    kept.insert(l.text);
    if (l.text.size() >= kSentencePrefix) prefixes.insert(l.text.substr(0, kSentencePrefix));
  }
  std::vector<DroppedNote> dropped;
  for (const OutputLine& l : output_lines(old_case)) {
    if (!l.prose || kept.count(l.text)) continue;
    if (l.text.size() >= kSentencePrefix && prefixes.count(l.text.substr(0, kSentencePrefix)))
      continue;
    dropped.push_back({first_line + l.index, l.text});
  }
  return dropped;
}

}  // namespace pinmark
