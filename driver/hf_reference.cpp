#include "driver/hf_reference.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "runtime/dtype.h"
#include "runtime/json_limits.h"
#include "runtime/regular_file.h"

namespace pinmark {

void set_reference_bound(ReferenceCheck& check, const std::string& dtype, const Workload& work,
                         std::optional<double> override_bound) {
  check.computation = dtype.empty() ? "not stated" : dtype;
  double u = unit_roundoff(DType::f32);
  std::string model = "float64 with float32 islands";
  if (dtype == "float64, float32 islands widened to float64") {
    check.bound = kReferenceBound;
    check.bound_reason = "float64 throughout: only summation order differs";
  } else {
    if (dtype == "bfloat16") {
      u = unit_roundoff(DType::bf16);
      model = "bfloat16";
    } else if (dtype == "float16") {
      u = unit_roundoff(DType::f16);
      model = "float16";
    } else if (dtype == "float32") {
      model = "float32";
    }
    check.bound = default_tolerance(u, work);
    check.bound_reason = "the " + model + " error model for this model's workload (docs/numerics.md)";
  }
  if (override_bound) {
    check.bound = *override_bound;
    check.bound_reason = "set by the case";
  }
}

std::optional<ReferenceCheck> check_against_reference(
    const std::string& directory, const std::string& label,
    const std::vector<std::vector<int>>& prompts, const std::vector<SequenceOutput>& oracle,
    const Workload& work, std::optional<double> override_bound) {
  const std::string path = (std::filesystem::path(directory) / "reference.json").string();
  const std::string shown = (std::filesystem::path(label) / "reference.json").generic_string();
  if (file_kind(path) == "missing") return std::nullopt;
  const std::string text = read_regular_file(path, shown);
  if (auto problem = check_json_text(text))
    throw std::runtime_error(shown + ": " + problem->message + " (byte " +
                             std::to_string(problem->offset) + ")");
  nlohmann::json reference;
  try {
    reference = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(shown + ": not valid JSON (" + e.what() + ")");
  }
  auto bad = [&](const std::string& what) { return std::runtime_error(shown + ": " + what); };
  if (!reference.is_object() || !reference.contains("prompts") || !reference.contains("logits") ||
      !reference["prompts"].is_array() || !reference["logits"].is_array() ||
      reference["prompts"].size() != reference["logits"].size())
    throw bad("expected an object with 'prompts' and 'logits' lists of equal length");
  auto text_field = [&](const char* key, const std::string& fallback) {
    if (!reference.contains(key)) return fallback;
    if (!reference[key].is_string()) throw bad(std::string("'") + key + "' must be a string");
    return reference[key].get<std::string>();
  };
  const nlohmann::json* greedy = nullptr;
  if (reference.contains("greedy")) {
    greedy = &reference["greedy"];
    if (!greedy->is_array()) throw bad("'greedy' must be a list with one token list per prompt");
  }

  ReferenceCheck check;
  check.generator = text_field("generator", "unknown generator");
  set_reference_bound(check, text_field("dtype", ""), work, override_bound);
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
      throw bad("prompt " + std::to_string(r) + " has " +
                std::to_string(rows.is_array() ? rows.size() : 0) + " logit rows for " +
                std::to_string(prompts[s].size()) + " positions");
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
    row.ok = within(m, check.bound);
    row.greedy = "—";
    const auto& generated = oracle[s].generated;
    if (!generated.empty() && greedy && greedy->size() > r) {
      const auto& theirs = (*greedy)[r];
      if (!theirs.is_array()) throw bad("greedy tokens of prompt " + std::to_string(r) + " must be a list");
      row.greedy = "same";
      for (size_t k = 0; k < generated.size(); ++k) {
        if (k >= theirs.size()) {
          // Fewer tokens than pinmark decoded: what is missing was never compared.
          row.greedy = "reference has " + std::to_string(theirs.size()) + " of " +
                       std::to_string(generated.size()) + " tokens";
          row.ok = false;
          break;
        }
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
