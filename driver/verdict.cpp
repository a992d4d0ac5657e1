#include "driver/verdict.h"

namespace pinmark {

std::vector<std::string> case_failures(const CaseResult& result, bool require_fresh) {
  std::vector<std::string> failures = result.unpinnable;
  for (const TargetRow& row : result.numerics) {
    if (row.ran && !row.ok) {
      std::string what;
      for (const std::string& w : row.nondeterministic) what += (what.empty() ? "" : " ") + w;
      failures.push_back("target " + row.label +
                         (what.empty() ? " is outside its tolerance (Numerics verdict FAIL)"
                                       : " is not reproducible (NO: " + what +
                                             "; Numerics verdict FAIL)"));
    }
    if (row.carried && !row.ok)
      failures.push_back("row " + row.label +
                         ", carried over from the golden (this machine cannot run it), " +
                         row.carried_failure);
    if (require_fresh && row.carried && !row.stale.empty())
      failures.push_back("row " + row.label + " is stale (" + row.stale + ")");
    if (require_fresh && !row.ran && !row.carried)
      failures.push_back("target " + row.label + " has not been measured on any machine");
  }
  if (result.reference)
    for (const ReferenceRow& row : result.reference->rows)
      if (row.found && !row.ok)
        failures.push_back("Reference: sequence " + std::to_string(row.sequence) +
                           " disagrees with Hugging Face's logits beyond the bound");
  return failures;
}

}  // namespace pinmark
