// Reading the JSON block of an input section, with positions a person can find.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_spec.h"

namespace pinmark {

// A section's single ```json block, parsed. Returns nullopt after adding a problem when the
// section has no block, several, or invalid JSON, or when the top level is not an object.
struct JsonBlock {
  nlohmann::json value;
  const Section* section = nullptr;
  const CodeBlock* block = nullptr;

  // "Config, line 3" for the first line of the block that mentions "key"; the block's first
  // line when no line does.
  CaseProblem problem_at(const std::string& key, const std::string& message) const;
};

std::optional<JsonBlock> read_json_block(const Section& section, std::vector<CaseProblem>& problems);

// The closest of `candidates` to `word` when it is a likely typo (edit distance <= 2).
std::optional<std::string> did_you_mean(const std::string& word,
                                        const std::vector<std::string>& candidates);

}  // namespace pinmark
