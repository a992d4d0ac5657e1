// Runs one case: the fp64 oracle, then each target, compared with the oracle tap by tap.
#pragma once

#include <string>
#include <vector>

#include "driver/case_spec.h"
#include "runtime/generate.h"
#include "runtime/tensor.h"

namespace pinmark {

// A named intermediate tensor of one forward call, in fp64.
struct TapRecord {
  int sequence = 0;
  int call = 0;
  std::string name;
  Shape shape;
  std::vector<double> values;
};

struct TargetRow {
  std::string target;  // "cpu fp32"
  double rel_l2 = 0;
  double max_abs = 0;
  int top1_agree = 0;  // positions whose argmax matches the oracle's (model cases)
  int top1_total = 0;
  bool ok = false;
  std::string first_divergence;  // the first tap past tolerance, empty when none
};

struct CaseResult {
  CaseSpec::Kind kind = CaseSpec::Kind::invalid;
  std::vector<CaseProblem> problems;  // non-empty: only Errors is rendered

  // Model cases.
  int vocab_size = 0;
  std::vector<std::vector<int>> prompts;
  std::vector<SequenceOutput> oracle;
  std::vector<TapRecord> dumps;  // the selected taps of the oracle's first call of sequence 0

  // Kernel cases.
  Tensor<double> kernel_output;

  std::vector<TargetRow> numerics;
};

CaseResult run_case(const CaseSpec& spec);

// Glob match with '*' and '?', for tap selection.
bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace pinmark
