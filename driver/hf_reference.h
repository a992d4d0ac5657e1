// Checking the oracle against logits that Hugging Face transformers computed for the same
// checkpoint (tools/export_hf.py writes them to reference.json beside it), so the suite
// compares pinmark with an implementation it did not write.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "driver/numerics.h"
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
  std::string greedy;  // "same", "differs at token k", "reference has k of n", "—" when none
  bool ok = false;
};

struct ReferenceCheck {
  std::string generator;    // "transformers 5.17.0, torch 2.11.0"
  std::string computation;  // how the reference was computed, as reference.json's "dtype" says
  std::string bound_reason;  // where `bound` comes from, for the rendered section
  double bound = kReferenceBound;
  std::vector<ReferenceRow> rows;
};

// How far a reference may sit from the exact math, from how it was computed (reference.json's
// "dtype"):
//   "float64, float32 islands widened to float64": every op in float64, bound kReferenceBound;
//   "float64" (stock transformers: RMSNorm, the rotary table, softmax and MoE routing stay in
//   float32 inside a float64 model), "float32", or no "dtype" at all: the fp32 tolerance for
//   the model's workload (numerics.h), the rounding those float32 islands can cost;
//   "bfloat16" / "float16": that type's tolerance.
// `override_bound`, when set, replaces the derived bound. Sets check.computation, .bound and
// .bound_reason.
void set_reference_bound(ReferenceCheck& check, const std::string& dtype, const Workload& work,
                         std::optional<double> override_bound);

// Reads `directory`/reference.json. nullopt when there is none; throws std::runtime_error
// starting with `label`/reference.json (the folder as the case names it) when it is not a
// regular file, not JSON, or malformed.
std::optional<ReferenceCheck> check_against_reference(
    const std::string& directory, const std::string& label,
    const std::vector<std::vector<int>>& prompts, const std::vector<SequenceOutput>& oracle,
    const Workload& work, std::optional<double> override_bound = std::nullopt);

}  // namespace pinmark
