#include "driver/hf_reference.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "driver/golden_io.h"
#include "driver/numerics.h"

namespace pinmark {

std::optional<ReferenceCheck> check_against_reference(
    const std::string& directory, const std::vector<std::vector<int>>& prompts,
    const std::vector<SequenceOutput>& oracle) {
  const std::string path = (std::filesystem::path(directory) / "reference.json").string();
  std::error_code ignored;
  if (!std::filesystem::exists(path, ignored)) return std::nullopt;
  nlohmann::json reference;
  try {
    reference = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON (" + e.what() + ")");
  }
  auto bad = [&](const std::string& what) { return std::runtime_error(path + ": " + what); };
  if (!reference.is_object() || !reference.contains("prompts") || !reference.contains("logits") ||
      !reference["prompts"].is_array() || !reference["logits"].is_array() ||
      reference["prompts"].size() != reference["logits"].size())
    throw bad("expected an object with 'prompts' and 'logits' lists of equal length");

  ReferenceCheck check;
  check.generator = reference.value("generator", std::string("unknown generator"));
  for (size_t s = 0; s < prompts.size(); ++s) {
    ReferenceRow row;
    row.sequence = static_cast<int>(s);
    size_t r = 0;
    while (r < reference["prompts"].size() &&
           reference["prompts"][r] != nlohmann::json(prompts[s]))
      ++r;
    if (r == reference["prompts"].size()) {
      check.rows.push_back(row);
      continue;
    }
    row.found = true;
    const auto& rows = reference["logits"][r];
    if (!rows.is_array() || rows.size() < prompts[s].size())
      throw bad("prompt " + std::to_string(r) + " has " + std::to_string(rows.size()) +
                " logit rows for " + std::to_string(prompts[s].size()) + " positions");
    std::vector<double> expected, actual;
    for (size_t p = 0; p < prompts[s].size(); ++p) {
      const auto& ref_row = rows[p];
      if (!ref_row.is_array() || ref_row.size() != oracle[s].logits[p].size())
        throw bad("prompt " + std::to_string(r) + ", position " + std::to_string(p) +
                  ": expected " + std::to_string(oracle[s].logits[p].size()) + " logits");
      for (const auto& v : ref_row) {
        if (!v.is_number()) throw bad("a logit that is not a number");
        expected.push_back(v.get<double>());
      }
      actual.insert(actual.end(), oracle[s].logits[p].begin(), oracle[s].logits[p].end());
    }
    const ErrorMetrics m = compare(expected, actual);
    row.positions = static_cast<int>(prompts[s].size());
    row.rel_l2 = m.rel_l2;
    row.max_abs = m.max_abs;
    row.ok = within(m, kReferenceBound);
    row.greedy = "—";
    const auto& generated = oracle[s].generated;
    if (!generated.empty() && reference.contains("greedy") && reference["greedy"].size() > r) {
      const auto& theirs = reference["greedy"][r];
      row.greedy = "same";
      for (size_t k = 0; k < generated.size() && k < theirs.size(); ++k) {
        if (theirs[k] != generated[k]) {
          row.greedy = "differs at token " + std::to_string(k);
          row.ok = false;
          break;
        }
      }
    }
    check.rows.push_back(row);
  }
  return check;
}

}  // namespace pinmark
