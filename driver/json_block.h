// Reading the JSON block of an input section, with positions a person can find.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_spec.h"

namespace pinmark {

// Where each string of a block first occurs and where its lines start, built once per block
// so that naming the line of many keys stays linear in the block's size.
struct JsonBlockIndex;

// A section's single ```json block, parsed. Returns nullopt after adding a problem when the
// section has no block, several, or invalid JSON, when the top level is not an object, when it
// nests deeper than kMaxJsonDepth, or when a number is past the range of a double.
struct JsonBlock {
  nlohmann::json value;
  const Section* section = nullptr;
  const CodeBlock* block = nullptr;

  // "Config, line 3" for the first line of the block that mentions "key"; the block's first
  // line when no line does.
  CaseProblem problem_at(const std::string& key, const std::string& message) const;

  // `value` as an int in [lowest, highest], or nullopt after adding a problem naming `key`
  // (and `what`, the name to print, by default the key) when it is not an integer (a float
  // such as 2.0 or 1e3 counts as not one), or is out of range ("vocab_size must be at most
  // 2147483647, got 4294967328").
  std::optional<int> integer(const std::string& key, const nlohmann::json& value, int64_t lowest,
                             int64_t highest, std::vector<CaseProblem>& problems,
                             const std::string& what = "") const;

 private:
  mutable std::shared_ptr<const JsonBlockIndex> index_;
};

std::optional<JsonBlock> read_json_block(const Section& section, std::vector<CaseProblem>& problems);

// A value as compact JSON, the way messages quote what a case wrote ("got \"x\"", "got 1.5").
inline std::string json_text(const nlohmann::json& value) { return value.dump(); }

// The closest of `candidates` to `word` when it is a likely typo (edit distance <= 2).
std::optional<std::string> did_you_mean(const std::string& word,
                                        const std::vector<std::string>& candidates);

}  // namespace pinmark
