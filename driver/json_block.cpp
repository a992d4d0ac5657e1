#include "driver/json_block.h"

#include <algorithm>

namespace pinmark {
namespace {

int line_of_offset(const std::string& text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + offset, '\n'));
}

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 3,
// column 1: "; the position is given by us, relative to the block.
std::string strip_json_prefix(std::string message) {
  size_t colon = message.find(": ");
  if (message.rfind("[json.exception", 0) == 0 && colon != std::string::npos)
    message = message.substr(colon + 2);
  return message;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

CaseProblem JsonBlock::problem_at(const std::string& key, const std::string& message) const {
  int line = 1;
  const std::string quoted = "\"" + key + "\"";
  size_t found = key.empty() ? std::string::npos : block->literal.find(quoted);
  if (found != std::string::npos) line = line_of_offset(block->literal, found);
  return {section->name + ", line " + std::to_string(line), block->first_line + line - 1,
          message};
}

std::optional<JsonBlock> read_json_block(const Section& section,
                                         std::vector<CaseProblem>& problems) {
  const std::string where = "### " + section.name;
  if (section.blocks.empty()) {
    problems.push_back({where, section.line, "the section has no ```json code block"});
    return std::nullopt;
  }
  if (section.blocks.size() > 1) {
    problems.push_back({where, section.blocks[1].first_line - 1,
                        "the section has " + std::to_string(section.blocks.size()) +
                            " code blocks; it takes one ```json block"});
    return std::nullopt;
  }
  const CodeBlock& block = section.blocks.front();
  if (block.info.substr(0, block.info.find(' ')) != "json") {
    problems.push_back({where, block.first_line - 1,
                        "the code block is marked '" + block.info + "'; it must be ```json"});
    return std::nullopt;
  }
  JsonBlock parsed;
  parsed.section = &section;
  parsed.block = &block;
  try {
    parsed.value = nlohmann::json::parse(block.literal);
  } catch (const nlohmann::json::parse_error& e) {
    // At the end of the input the parser points one past the last byte; name the last line.
    size_t at = std::min(e.byte == 0 ? 0 : e.byte - 1, block.literal.size());
    while (at > 0 && (at >= block.literal.size() || block.literal[at] == '\n'))
      --at;
    std::string message = "invalid JSON: " + strip_json_prefix(e.what());
    // The parser stops at the '}' or ']' after a trailing comma; the comma is what to fix.
    size_t before = at == 0 ? std::string::npos : block.literal.find_last_not_of(" \t\r\n", at - 1);
    if (at < block.literal.size() && (block.literal[at] == '}' || block.literal[at] == ']') &&
        before != std::string::npos && block.literal[before] == ',') {
      at = before;
      message += " (a trailing comma: JSON allows none)";
    }
    const int line = line_of_offset(block.literal, at);
    problems.push_back({section.name + ", line " + std::to_string(line),
                        block.first_line + line - 1, message});
    return std::nullopt;
  }
  if (!parsed.value.is_object()) {
    problems.push_back(parsed.problem_at("", "the block must hold a JSON object ({...})"));
    return std::nullopt;
  }
  return parsed;
}

std::optional<std::string> did_you_mean(const std::string& word,
                                        const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_distance = 3;
  for (const std::string& candidate : candidates) {
    size_t d = edit_distance(word, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

}  // namespace pinmark
