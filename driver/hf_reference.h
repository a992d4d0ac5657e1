// Checking the oracle against logits that Hugging Face transformers computed in float64 for
// the same checkpoint (tools/export_hf.py writes them to reference.json beside it), so the
// suite compares pinmark with an implementation it did not write.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/generate.h"

namespace pinmark {

// fp64 against fp64 through different code: only summation order separates the two.
constexpr double kReferenceBound = 1e-9;

struct ReferenceRow {
  int sequence = 0;
  bool found = false;  // the reference has this prompt
  int positions = 0;
  double rel_l2 = 0;
  double max_abs = 0;
  std::string greedy;  // "same", "differs at token k", or "—" when nothing was decoded
  bool ok = false;
};

struct ReferenceCheck {
  std::string generator;  // "transformers 5.17.0, torch 2.11.0"
  std::vector<ReferenceRow> rows;
};

// Reads `directory`/reference.json. nullopt when there is none; throws std::runtime_error
// naming the file when it is malformed.
std::optional<ReferenceCheck> check_against_reference(
    const std::string& directory, const std::vector<std::vector<int>>& prompts,
    const std::vector<SequenceOutput>& oracle);

}  // namespace pinmark
