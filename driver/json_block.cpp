#include "driver/json_block.h"

#include <algorithm>
#include <climits>

#include "runtime/json_limits.h"

namespace pinmark {

struct JsonBlockIndex {
  std::vector<size_t> line_starts;             // offset of each line's first byte
  std::map<std::string, size_t> first_string;  // a string's raw text -> offset of its quote

  explicit JsonBlockIndex(const std::string& text) {
    line_starts.push_back(0);
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') line_starts.push_back(i + 1);
      if (text[i] != '"') continue;
      size_t end = i + 1;
      while (end < text.size() && text[end] != '"') end += text[end] == '\\' ? 2 : 1;
      if (end >= text.size()) break;
      first_string.emplace(text.substr(i + 1, end - i - 1), i);
      for (size_t j = i + 1; j < end; ++j)
        if (text[j] == '\n') line_starts.push_back(j + 1);
      i = end;
    }
  }

  int line_of(size_t offset) const {
    return static_cast<int>(std::upper_bound(line_starts.begin(), line_starts.end(), offset) -
                            line_starts.begin());
  }
};

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
  if (!index_) index_ = std::make_shared<const JsonBlockIndex>(block->literal);
  int line = 1;
  if (!key.empty()) {
    // A key is found by its text as written; one written with escapes is looked up the slow
    // way, which is rare enough not to matter.
    auto it = index_->first_string.find(key);
    if (it != index_->first_string.end()) {
      line = index_->line_of(it->second);
    } else {
      size_t found = block->literal.find("\"" + key + "\"");
      if (found != std::string::npos) line = index_->line_of(found);
    }
  }
  return {section->name + ", line " + std::to_string(line), block->first_line + line - 1,
          message};
}

std::optional<int> JsonBlock::integer(const std::string& key, const nlohmann::json& value,
                                      int64_t lowest, int64_t highest,
                                      std::vector<CaseProblem>& problems,
                                      const std::string& what) const {
  const std::string name = what.empty() ? key : what;
  lowest = std::max<int64_t>(lowest, INT_MIN);
  highest = std::min<int64_t>(highest, INT_MAX);
  const std::string range = lowest == 0 ? "a non-negative integer"
                            : lowest == 1 ? "a positive integer"
                                          : "an integer";
  if (!value.is_number_integer()) {
    problems.push_back(problem_at(key, name + " must be " + range + ", got " + value.dump()));
    return std::nullopt;
  }
  // Compared before narrowing: 2^32 + 32 must not read as 32.
  const bool too_big = value.is_number_unsigned() ? value.get<uint64_t>() > static_cast<uint64_t>(highest)
                                                  : value.get<int64_t>() > highest;
  if (too_big) {
    problems.push_back(problem_at(key, name + " must be at most " + std::to_string(highest) +
                                           ", got " + value.dump()));
    return std::nullopt;
  }
  if (!value.is_number_unsigned() && value.get<int64_t>() < lowest) {
    problems.push_back(problem_at(key, name + " must be " + range + ", got " + value.dump()));
    return std::nullopt;
  }
  return static_cast<int>(value.get<int64_t>());
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
  // Checked before the JSON library sees the text: it reports an overflowing number with no
  // position, and deep nesting recurses when the value is printed or destroyed.
  if (auto bad = check_json_text(block.literal)) {
    const int line = line_of_offset(block.literal, bad->offset);
    problems.push_back({section.name + ", line " + std::to_string(line),
                        block.first_line + line - 1, "invalid JSON: " + bad->message});
    return std::nullopt;
  }
  try {
    parsed.value = nlohmann::json::parse(block.literal);
  } catch (const nlohmann::json::out_of_range& e) {
    problems.push_back({section.name + ", line 1", block.first_line,
                        "invalid JSON: " + strip_json_prefix(e.what())});
    return std::nullopt;
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
