#include "driver/case_runner.h"

#include <stdexcept>

#include "driver/numerics.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/kernel_case.h"
#include "runtime/weights.h"

namespace pinmark {
namespace {

struct ModelRun {
  std::vector<SequenceOutput> outputs;
  std::vector<TapRecord> taps;  // every tap of every call, in the order they happened
};

template <class T>
ModelRun run_model(const CaseSpec& spec, const Weights& weights) {
  std::unique_ptr<Backend<T>> backend = make_cpu_backend<T>();
  Model<T> model(spec.model, weights, *backend);
  GenerateOptions options;
  options.decode = spec.inputs.decode;
  options.prefill_chunk = spec.inputs.prefill_chunk;
  ModelRun run;
  auto tap = [&](int sequence, int call, const std::string& name, const Shape& shape,
                 const T* data) {
    run.taps.push_back({sequence, call, name, shape,
                        std::vector<double>(data, data + element_count(shape))});
  };
  run.outputs = generate(model, spec.inputs.prompts, options, BatchTapFn<T>(tap));
  return run;
}

std::vector<double> flatten_logits(const std::vector<SequenceOutput>& outputs) {
  std::vector<double> all;
  for (const SequenceOutput& s : outputs)
    for (const auto& row : s.logits) all.insert(all.end(), row.begin(), row.end());
  return all;
}

std::string tap_label(const TapRecord& tap) {
  std::string label = tap.name;
  if (tap.call > 0) label = "call " + std::to_string(tap.call) + ": " + label;
  if (tap.sequence > 0) label = "sequence " + std::to_string(tap.sequence) + ", " + label;
  return label;
}

TargetRow compare_model(const std::string& target, const ModelRun& oracle, const ModelRun& run,
                        const Tolerance& tolerance) {
  TargetRow row;
  row.target = target;
  ErrorMetrics m = compare(flatten_logits(oracle.outputs), flatten_logits(run.outputs));
  row.rel_l2 = m.rel_l2;
  row.max_abs = m.max_abs;
  for (size_t s = 0; s < oracle.outputs.size(); ++s) {
    for (size_t p = 0; p < oracle.outputs[s].logits.size(); ++p) {
      ++row.top1_total;
      row.top1_agree += argmax(oracle.outputs[s].logits[p]) == argmax(run.outputs[s].logits[p]);
    }
  }
  row.ok = within(m, tolerance);
  for (size_t i = 0; i < oracle.taps.size() && i < run.taps.size(); ++i) {
    if (!within(compare(oracle.taps[i].values, run.taps[i].values), tolerance)) {
      row.first_divergence = tap_label(oracle.taps[i]);
      break;
    }
  }
  return row;
}

void check_finite(const std::string& what, const std::vector<double>& values,
                  std::vector<CaseProblem>& problems) {
  if (!all_finite(values))
    problems.push_back({"the fp64 oracle", 0,
                        what + " holds NaN or infinity; a case must produce finite numbers"});
}

void run_model_case(const CaseSpec& spec, CaseResult& result) {
  const Weights weights = synthetic_weights(spec.model);
  ModelRun oracle = run_model<double>(spec, weights);
  result.vocab_size = spec.model.vocab_size;
  result.prompts = spec.inputs.prompts;
  check_finite("the logits", flatten_logits(oracle.outputs), result.problems);
  if (!result.problems.empty()) return;
  for (const TapRecord& tap : oracle.taps) {
    if (tap.sequence != 0 || tap.call != 0) continue;
    for (const std::string& pattern : spec.inputs.dump_patterns) {
      if (glob_match(pattern, tap.name)) {
        result.dumps.push_back(tap);
        break;
      }
    }
  }
  ModelRun fp32 = run_model<float>(spec, weights);
  result.numerics.push_back(compare_model("cpu fp32", oracle, fp32, fp32_tolerance()));
  result.oracle = std::move(oracle.outputs);
}

void run_kernel_case(const CaseSpec& spec, CaseResult& result) {
  auto oracle_backend = make_cpu_backend<double>();
  result.kernel_output = run_kernel(spec.kernel, *oracle_backend);
  check_finite("the kernel output", result.kernel_output.data, result.problems);
  if (!result.problems.empty()) return;
  auto fp32_backend = make_cpu_backend<float>();
  Tensor<double> fp32 = run_kernel(spec.kernel, *fp32_backend);
  TargetRow row;
  row.target = "cpu fp32";
  ErrorMetrics m = compare(result.kernel_output.data, fp32.data);
  row.rel_l2 = m.rel_l2;
  row.max_abs = m.max_abs;
  row.ok = within(m, fp32_tolerance());
  if (!row.ok) row.first_divergence = spec.kernel.op;
  result.numerics.push_back(row);
}

}  // namespace

bool glob_match(const std::string& pattern, const std::string& text) {
  size_t p = 0, t = 0, star = std::string::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

CaseResult run_case(const CaseSpec& spec) {
  CaseResult result;
  result.kind = spec.kind;
  result.problems = spec.problems;
  if (!result.problems.empty()) return result;
  try {
    if (spec.kind == CaseSpec::Kind::model) run_model_case(spec, result);
    if (spec.kind == CaseSpec::Kind::kernel) run_kernel_case(spec, result);
  } catch (const std::exception& e) {
    result.problems.push_back({"the runtime", 0, e.what()});
  }
  return result;
}

}  // namespace pinmark
