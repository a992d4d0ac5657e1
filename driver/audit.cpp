#include "driver/audit.h"

#include <nlohmann/json.hpp>
#include <ostream>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "driver/golden_io.h"
#include "driver/numerics.h"
#include "runtime/random.h"

namespace pinmark {
namespace {

using nlohmann::json;

std::vector<double> flat_logits(const CaseResult& r) {
  std::vector<double> all;
  for (const SequenceOutput& s : r.oracle)
    for (const auto& row : s.logits) all.insert(all.end(), row.begin(), row.end());
  return all;
}

// The oracle alone: no target runs, but every row gets its tolerance.
CaseResult oracle_only(const CaseSpec& spec) {
  return run_case(spec, [](const Target&) { return std::unique_ptr<Backend<float>>(); });
}

std::vector<double> output_of(const CaseResult& r) {
  return r.kind == CaseSpec::Kind::model ? flat_logits(r) : r.kernel_output.data;
}

// Each logit row replaced by the next position's (the last by the first), per sequence.
std::vector<double> other_position(const CaseResult& r) {
  std::vector<double> all;
  for (const SequenceOutput& s : r.oracle)
    for (size_t p = 0; p < s.logits.size(); ++p) {
      const auto& row = s.logits[(p + 1) % s.logits.size()];
      all.insert(all.end(), row.begin(), row.end());
    }
  return all;
}

// Each logit row reversed (a kernel's output as one row).
std::vector<double> permuted(const CaseResult& r) {
  std::vector<double> all;
  if (r.kind == CaseSpec::Kind::kernel) return {r.kernel_output.data.rbegin(), r.kernel_output.data.rend()};
  for (const SequenceOutput& s : r.oracle)
    for (const auto& row : s.logits) all.insert(all.end(), row.rbegin(), row.rend());
  return all;
}

void check_nulls(const std::string& name, const CaseSpec& spec, AuditResult& result) {
  const CaseResult oracle = oracle_only(spec);
  if (!oracle.problems.empty() || !oracle.unpinnable.empty()) return;
  const std::vector<double> truth = output_of(oracle);
  std::vector<std::pair<std::string, std::vector<double>>> nulls;
  nulls.emplace_back("all zeros", std::vector<double>(truth.size(), 0.0));
  nulls.emplace_back("a permutation", permuted(oracle));
  if (spec.kind == CaseSpec::Kind::model) {
    bool several_positions = false;
    for (const SequenceOutput& s : oracle.oracle) several_positions |= s.logits.size() > 1;
    if (several_positions) nulls.emplace_back("another position", other_position(oracle));
  }
  // Another seed changes synthetic weights or kernel inputs; a checkpoint's weights stay.
  if (spec.checkpoint.empty()) {
    CaseSpec other = spec;
    other.model.seed += 1;
    other.kernel.seed += 1;
    nulls.emplace_back("another seed", output_of(oracle_only(other)));
  }
  ++result.null_cases;
  for (const TargetRow& row : oracle.numerics) {
    for (const auto& [what, values] : nulls) {
      const ErrorMetrics m = compare(truth, values);
      // An output that does not depend on its inputs (softmax over rows of length one is all
      // ones) equals its own permutation: that is the right answer, not a null output.
      if (values == truth) continue;
      ++result.null_checks;
      const std::string line = name + ": " + row.label + " (tolerance " +
                               std::to_string(row.tolerance) + ") accepts " + what +
                               " (rel L2 " + std::to_string(m.rel_l2) + ")";
      if (within(m, row.tolerance)) {
        result.accepted.push_back(line);
      } else if (within(m, row.conditioning_bound)) {
        // Not ok but not FAIL either: the case says it cannot judge this target.
        result.unjudged.push_back(name + ": " + row.label + " is ill-conditioned up to " +
                                  std::to_string(row.conditioning_bound) + ": " + what +
                                  " (rel L2 " + std::to_string(m.rel_l2) + ") would not fail");
      }
    }
  }
}

// A case's JSON blocks by section name.
std::map<std::string, json> blocks_of(const Case& c) {
  std::map<std::string, json> blocks;
  for (const Section& s : c.sections) {
    if (s.blocks.size() != 1) continue;
    try {
      blocks[s.name] = json::parse(s.blocks[0].literal);
    } catch (const std::exception&) {
    }
  }
  return blocks;
}

std::string fenced_json(const std::string& section, const json& value) {
  return "### " + section + "\n\n```json\n" + value.dump() + "\n```\n\n";
}

// A one-case file of the given blocks, read by the same reader as any case file.
std::optional<CaseSpec> spec_of(const std::map<std::string, json>& blocks) {
  std::string text = "# Sweep\n\n## Variation\n\n";
  for (const auto& [section, value] : blocks) text += fenced_json(section, value);
  const CaseFile file = parse_case_file(text);
  if (!file.problems.empty() || file.cases.size() != 1) return std::nullopt;
  CaseSpec spec = read_case_spec(file.cases[0]);
  if (!spec.problems.empty() || spec.kind == CaseSpec::Kind::invalid) return std::nullopt;
  return spec;
}

class Draw {
 public:
  Draw(uint64_t seed, int variation) : seed_(seed), name_("audit " + std::to_string(variation)) {}
  // Uniform in [lo, hi].
  int between(int lo, int hi) {
    return lo + static_cast<int>(random_bits(seed_, name_, index_++) % static_cast<uint64_t>(hi - lo + 1));
  }

 private:
  uint64_t seed_;
  std::string name_;
  uint64_t index_ = 0;
};

json vary_model(json config, Draw& d, json& inputs) {
  config["pinmark"]["seed"] = d.between(0, 999999);
  if (!config.contains("layer_types")) {
    const int layers = d.between(1, 3);
    if (config.contains("n_layer")) config["n_layer"] = layers;
    else config["num_hidden_layers"] = layers;
  }
  const int vocab = d.between(16, 300);
  config["vocab_size"] = vocab;
  inputs = json::object();
  json prompts = json::array();
  for (int s = d.between(1, 2); s > 0; --s) {
    json prompt = json::array();
    for (int t = d.between(1, 8); t > 0; --t) prompt.push_back(d.between(0, vocab - 1));
    prompts.push_back(prompt);
  }
  inputs["prompts"] = prompts;
  inputs["decode"] = d.between(0, 3);
  inputs["dumps"] = json::array();
  return config;
}

json vary_kernel(json kernel, Draw& d) {
  const std::string op = kernel.value("op", "");
  kernel["seed"] = d.between(0, 999999);
  if (op == "matmul") {
    kernel["n"] = d.between(1, 16);
    kernel["k"] = d.between(1, 300);
    kernel["m"] = d.between(1, 64);
  } else if (op == "rmsnorm") {
    kernel["rows"] = d.between(1, 8);
    kernel["dim"] = d.between(1, 300);
  } else if (op == "rope") {
    kernel["tokens"] = d.between(1, 8);
    kernel["heads"] = d.between(1, 4);
    kernel["head_dim"] = 2 * d.between(1, 64);
    kernel["start"] = d.between(0, 200000);
  } else if (op == "softmax") {
    kernel["rows"] = d.between(1, 8);
    kernel["len"] = d.between(1, 300);
    kernel["scale"] = d.between(1, 64);
  } else if (op == "attention") {
    const int kv_heads = d.between(1, 4);
    kernel["kv_heads"] = kv_heads;
    kernel["heads"] = kv_heads * d.between(1, 3);
    kernel["head_dim"] = d.between(1, 128);
    kernel["tokens"] = d.between(1, 8);
    kernel["past"] = d.between(0, 64);
  } else if (op == "swiglu") {
    kernel["n"] = d.between(1, 300);
  }
  return kernel;
}

}  // namespace

void audit_null_outputs(const std::vector<std::string>& files, AuditResult& result) {
  for (const std::string& path : files) {
    const CaseFile file = parse_case_file(read_text_file(path));
    // A file pinmark run refuses cannot be audited either: say so, as run does.
    for (const FileProblem& p : file.problems)
      result.invalid.push_back(path + ":" + std::to_string(p.line) + ": " + p.message);
    if (!file.problems.empty()) continue;
    for (const Case& c : file.cases) {
      const CaseSpec spec = read_case_spec(c, path);
      if (!spec.problems.empty() || spec.kind == CaseSpec::Kind::invalid) continue;
      check_nulls(path + " :: " + c.slug, spec, result);
    }
  }
}

void audit_sweep(const std::vector<std::string>& files, int count, uint64_t seed,
                 AuditResult& result) {
  std::vector<std::pair<std::string, std::map<std::string, json>>> templates;
  for (const std::string& path : files) {
    const CaseFile file = parse_case_file(read_text_file(path));
    if (!file.problems.empty()) continue;
    for (const Case& c : file.cases) {
      std::map<std::string, json> blocks = blocks_of(c);
      const bool model = blocks.count("Config") && blocks["Config"].is_object() &&
                         !(blocks["Config"].contains("pinmark") &&
                           blocks["Config"]["pinmark"].contains("checkpoint"));
      const bool kernel = blocks.count("Kernel") && blocks["Kernel"].is_object();
      if (!model && !kernel) continue;
      // The sweep sets its own targets: a tolerance the case gives an engine's target (known
      // only beside its pinmark-engines.json) must not drop the case from the sweep.
      blocks.erase("Targets");
      if (!spec_of(blocks)) continue;  // an Errors case: nothing healthy to vary
      templates.emplace_back(path + " :: " + c.slug, std::move(blocks));
    }
  }
  if (templates.empty()) return;
  const json targets = {{"targets", {"cpu fp32", "cpu bf16", "cpu fp16"}}};
  for (int i = 0; i < count; ++i) {
    const auto& [origin, original] = templates[i % templates.size()];
    Draw draw(seed, i);
    std::map<std::string, json> blocks;
    if (original.count("Config")) {
      json inputs;
      blocks["Config"] = vary_model(original.at("Config"), draw, inputs);
      blocks["Inputs"] = inputs;
    } else {
      blocks["Kernel"] = vary_kernel(original.at("Kernel"), draw);
    }
    blocks["Targets"] = targets;
    const std::optional<CaseSpec> spec = spec_of(blocks);
    if (!spec) {
      ++result.sweep_skipped;
      continue;
    }
    const CaseResult run = run_case(*spec);
    if (!run.problems.empty()) {
      // Refused by the runtime (a prompt past GPT-2's learned positions): not a verdict.
      ++result.sweep_skipped;
      continue;
    }
    ++result.sweep_cases;
    std::string what = "variation " + std::to_string(i) + " of " + origin + ": ";
    for (const auto& [section, value] : blocks)
      if (section != "Targets") what += section + " " + value.dump() + " ";
    for (const std::string& problem : run.unpinnable) result.false_failures.push_back(what + problem);
    for (const TargetRow& row : run.numerics) {
      ++result.sweep_rows;
      result.sweep_ill_conditioned += row.ill_conditioned;
      if (row.ill_conditioned)
        result.unjudged.push_back(what + row.label + " ill-conditioned: rel L2 " +
                                  std::to_string(row.rel_l2) + ", tolerance " +
                                  std::to_string(row.tolerance) + ", bound " +
                                  std::to_string(row.conditioning_bound));
      if (row.ran && !row.ok)
        result.false_failures.push_back(what + row.label + " FAIL: rel L2 " +
                                        std::to_string(row.rel_l2) + ", tolerance " +
                                        std::to_string(row.tolerance) +
                                        (row.first_divergence.empty() ? "" : ", first divergence " + row.first_divergence));
    }
  }
}

void print_audit(const AuditResult& r, std::ostream& out) {
  for (const std::string& line : r.invalid) out << "INVALID  " << line << "\n";
  for (const std::string& line : r.accepted) out << "ACCEPTED " << line << "\n";
  for (const std::string& line : r.false_failures) out << "FAIL     " << line << "\n";
  for (const std::string& line : r.unjudged) out << "UNJUDGED " << line << "\n";
  out << "null outputs: " << r.null_cases << " cases, " << r.null_checks
      << " (target, null output) checks: " << r.accepted.size() << " accepted, "
      << r.unjudged.size() << " within an ill-conditioned row's bound\n";
  out << "sweep: " << r.sweep_cases << " random variations (" << r.sweep_skipped
      << " refused as invalid inputs), " << r.sweep_rows << " healthy target rows: "
      << r.false_failures.size() << " FAIL, " << r.sweep_ill_conditioned << " ill-conditioned\n";
}

}  // namespace pinmark
