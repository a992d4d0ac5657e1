// `pinmark audit`: evidence that the verdicts mean what they say.
//
//  - Null outputs: for every case and every target it lists, the target's tolerance must
//    reject outputs that carry no information: all zeros, the oracle's own output for another
//    seed, for another position (each logit row replaced by the next position's), and a
//    permutation (each row reversed). A tolerance that one of them meets is a bug.
//  - Sweep: random variations of the shipped cases (every family's config and every kernel,
//    with other seeds, depths, vocabularies, prompts and shapes) run on the healthy CPU targets
//    (fp32, bf16, fp16); every row must pass. A FAIL there is a false alarm of the error model.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace pinmark {

struct AuditResult {
  int null_cases = 0;                 // cases checked against null outputs
  int null_checks = 0;                // (case, target, null output) triples
  std::vector<std::string> invalid;   // a file's problem (FILE:LINE: message): not audited
  std::vector<std::string> accepted;  // a null output a tolerance accepted, one line each
  int sweep_cases = 0;                // valid variations run
  int sweep_skipped = 0;  // variations refused as invalid inputs (shapes that do not divide)
  int sweep_rows = 0;
  int sweep_ill_conditioned = 0;  // rows neither ok nor FAIL (numerics.h, conditioning_bound)
  // Ill-conditioned rows, one line each: a sweep's variation so judged, or a null output within
  // such a row's bound. Not failures: the case says it cannot judge that target.
  std::vector<std::string> unjudged;
  std::vector<std::string> false_failures;  // a healthy row that failed, one line each
};

// Null-output checks over every case of `files`.
void audit_null_outputs(const std::vector<std::string>& files, AuditResult& result);

// `count` variations of the cases of `files` (synthetic-weight models and kernels), drawn by
// pinmark's counter-based generator from `seed`, so a run is the same on every machine.
void audit_sweep(const std::vector<std::string>& files, int count, uint64_t seed,
                 AuditResult& result);

// Prints the counts and every offending line.
void print_audit(const AuditResult& result, std::ostream& out);

}  // namespace pinmark
