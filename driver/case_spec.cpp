#include "driver/case_spec.h"

#include <algorithm>
#include <climits>
#include <functional>
#include <map>

#include "driver/checkpoint_config.h"
#include "driver/hf_config.h"
#include "driver/json_block.h"
#include "driver/plugin.h"
#include "runtime/budget.h"

namespace pinmark {
namespace {

using nlohmann::json;

// Token ids as written, kept wide until they are checked against the vocabulary, so that
// 2^32 + 1 is reported rather than read as 1.
bool read_token_list(const json& value, std::vector<int64_t>& out) {
  if (!value.is_array()) return false;
  for (const json& item : value) {
    if (!item.is_number_integer()) return false;
    out.push_back(item.is_number_unsigned() && item.get<uint64_t>() > uint64_t{INT64_MAX}
                      ? INT64_MAX
                      : item.get<int64_t>());
  }
  return true;
}

void read_inputs(const JsonBlock& block, const ModelConfig& config, bool config_ok,
                 ModelInputs& inputs, std::vector<CaseProblem>& problems) {
  const json& v = block.value;
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& [key, value] : v.items()) {
    if (key == "prompts") {
      bool ok = value.is_array() && !value.empty();
      prompts.clear();
      for (size_t i = 0; ok && i < value.size(); ++i) {
        std::vector<int64_t> prompt;
        ok = read_token_list(value[i], prompt);
        prompts.push_back(std::move(prompt));
      }
      if (!ok) {
        problems.push_back(block.problem_at(
            key, "prompts must be a non-empty list of token id lists, e.g. [[1, 2, 3]]"));
        prompts.clear();
      }
    } else if (key == "decode" || key == "prefill_chunk") {
      int& target = key == "decode" ? inputs.decode : inputs.prefill_chunk;
      if (auto n = block.integer(key, value, 0, INT_MAX, problems)) target = *n;
    } else if (key == "dumps") {
      inputs.dump_patterns.clear();
      inputs.dumps_at = block.problem_at(key, "");
      bool ok = value.is_array();
      for (size_t i = 0; ok && i < value.size(); ++i) {
        ok = value[i].is_string();
        if (ok) inputs.dump_patterns.push_back(value[i].get<std::string>());
      }
      if (!ok)
        problems.push_back(
            block.problem_at(key, "dumps must be a list of tap name patterns, e.g. [\"layers.0.*\"]"));
    } else {
      std::string message = "unknown input key '" + key + "'";
      if (auto guess = did_you_mean(key, {"prompts", "decode", "prefill_chunk", "dumps"}))
        message += " (did you mean '" + *guess + "'?)";
      problems.push_back(block.problem_at(key, message));
    }
  }
  if (!v.contains("prompts")) problems.push_back(block.problem_at("", "missing required key 'prompts'"));
  // Without a valid config the vocabulary is unknown; an id must still be an int.
  const int64_t vocab = config_ok ? config.vocab_size : int64_t{INT_MAX} + 1;
  inputs.prompts.clear();
  for (size_t s = 0; s < prompts.size(); ++s) {
    const auto& prompt = prompts[s];
    if (prompt.empty())
      problems.push_back(block.problem_at("prompts", "sequence " + std::to_string(s) +
                                                         " is an empty prompt; a prompt needs at "
                                                         "least one token"));
    std::vector<int> ids;
    for (size_t t = 0; t < prompt.size(); ++t) {
      if (prompt[t] < 0 || prompt[t] >= vocab) {
        problems.push_back(block.problem_at(
            "prompts", "sequence " + std::to_string(s) + ", token " + std::to_string(t) +
                           ": id " + std::to_string(prompt[t]) + " is outside the " +
                           (config_ok ? "vocabulary (vocab_size " + std::to_string(config.vocab_size) + ")"
                                      : "range of token ids (0 to " + std::to_string(INT_MAX) + ")")));
        ids.push_back(0);
      } else if (config_ok && is_gemma3n(config) && prompt[t] >= config.vocab_size_per_layer_input) {
        // Gemma3nForCausalLM looks each token up in the per-layer table too.
        problems.push_back(block.problem_at(
            "prompts", "sequence " + std::to_string(s) + ", token " + std::to_string(t) + ": id " +
                           std::to_string(prompt[t]) +
                           " has no per-layer embedding (vocab_size_per_layer_input " +
                           std::to_string(config.vocab_size_per_layer_input) +
                           "); Gemma3nForCausalLM cannot run it"));
        ids.push_back(0);
      } else {
        ids.push_back(static_cast<int>(prompt[t]));
      }
    }
    // Every position is an int: the prompt's and the decode steps'.
    const int64_t positions = static_cast<int64_t>(prompt.size()) + inputs.decode;
    if (positions > INT_MAX)
      problems.push_back(block.problem_at(
          "decode", "sequence " + std::to_string(s) + ": " + std::to_string(prompt.size()) +
                        " prompt tokens + decode " + std::to_string(inputs.decode) + " = " +
                        std::to_string(positions) + " positions, more than " +
                        std::to_string(INT_MAX)));
    inputs.prompts.push_back(std::move(ids));
  }
}

void read_kernel(const JsonBlock& block, KernelSpec& kernel, std::vector<CaseProblem>& problems) {
  for (const auto& [key, value] : block.value.items()) {
    if (key == "op") {
      if (value.is_string())
        kernel.op = value.get<std::string>();
      else
        problems.push_back(block.problem_at(key, "op must be a string, got " + json_text(value)));
    } else if (key == "seed") {
      if (value.is_number_unsigned())
        kernel.seed = value.get<uint64_t>();
      else
        problems.push_back(
            block.problem_at(key, "seed must be an integer from 0 to 18446744073709551615, got " + json_text(value)));
    } else if (value.is_number()) {
      kernel.params[key] = value.get<double>();
    } else {
      problems.push_back(block.problem_at(key, key + " must be a number, got " + json_text(value)));
    }
  }
  if (!block.value.contains("op")) {
    problems.push_back(block.problem_at("", "missing required key 'op'"));
    return;
  }
  if (!problems.empty()) return;
  for (const ConfigProblem& p : validate(kernel)) problems.push_back(block.problem_at(p.key, p.message));
}

void read_targets(const JsonBlock& block, TargetPlan& plan, std::vector<CaseProblem>& problems) {
  const json& v = block.value;
  for (const auto& [key, value] : v.items()) {
    if (key == "targets") {
      plan.targets.clear();
      plan.listed = true;
      if (!value.is_array() || value.empty()) {
        problems.push_back(block.problem_at(
            key, "targets must be a non-empty list of names, e.g. [\"cpu fp32\", \"cpu bf16\"]"));
        continue;
      }
      for (const json& item : value) {
        std::string why;
        std::optional<Target> target;
        if (item.is_string() && plan.engines)
          if (const EngineTarget* t = find_engine_target(*plan.engines, item.get<std::string>()).second)
            target = t->target;
        if (item.is_string() && !target) target = parse_case_target(item.get<std::string>(), why);
        if (!item.is_string()) why = "a target is a string like \"cpu bf16\", not " + json_text(item);
        if (target) {
          plan.targets.push_back(*target);
        } else {
          problems.push_back(block.problem_at(key, why));
        }
      }
    } else if (key == "tolerance") {
      if (!value.is_object()) {
        problems.push_back(block.problem_at(
            key, "tolerance maps a target to its relative L2 bound, e.g. {\"cpu bf16\": 0.05}"));
        continue;
      }
      for (const auto& [name, bound] : value.items()) {
        if (!bound.is_number() || !(bound.get<double>() > 0))
          problems.push_back(block.problem_at(
              name, "the tolerance of '" + name + "' must be a positive number, got " + json_text(bound)));
        else
          plan.tolerance[name] = bound.get<double>();
      }
    } else if (key == "reference_tolerance") {
      if (!value.is_number() || !(value.get<double>() > 0))
        problems.push_back(block.problem_at(
            key, "reference_tolerance must be a positive number (the bound on the oracle's rel L2 "
                 "against reference.json), got " + json_text(value)));
      else
        plan.reference_tolerance = value.get<double>();
    } else if (key == "pin_bits") {
      if (!value.is_boolean())
        problems.push_back(block.problem_at(key, "pin_bits must be true or false, got " + json_text(value)));
      else
        plan.pin_bits = value.get<bool>();
    } else {
      std::string message = "unknown Targets key '" + key + "'";
      if (auto guess = did_you_mean(key, {"targets", "tolerance", "pin_bits", "reference_tolerance"}))
        message += " (did you mean '" + *guess + "'?)";
      problems.push_back(block.problem_at(key, message));
    }
  }
  for (const auto& [name, bound] : plan.tolerance) {
    (void)bound;
    bool listed = false;
    for (const Target& t : plan.targets) listed |= t.name() == name;
    // An engine's target joins the case's targets after this block is read.
    if (!plan.listed && plan.engines) listed |= find_engine_target(*plan.engines, name).first != nullptr;
    // With the engines file unreadable (its own problem says why), which targets it would add
    // is unknown: no follow-on problem per bound.
    std::string not_pinmarks;
    const bool engine_name = !parse_target(name, not_pinmarks);
    if (!listed && !plan.engine_config_unreadable)
      problems.push_back(block.problem_at(
          name, "a tolerance for '" + name + "', which is not among the case's targets" +
                    (plan.engines || !engine_name ? std::string()
                                  : std::string(" (no pinmark-engines.json was found beside the "
                                                "case file or above it, so no engine's targets "
                                                "are known)"))));
  }
}

int targets_run(const TargetPlan& plan) { return static_cast<int>(plan.targets.size()); }

void add_refusal(const JsonBlock& block, const BudgetRefusal& refusal,
                 std::vector<CaseProblem>& problems, const std::string& at = "") {
  CaseProblem p = block.problem_at(at.empty() ? refusal.key : at, refusal.message);
  p.machine_dependent = refusal.machine_dependent;
  problems.push_back(std::move(p));
}

// Runs `check` against the budget the environment sets; a malformed budget variable is a
// problem of every case, and one that depends on this machine.
template <class Check>
void check_budget(const Case& c, std::vector<CaseProblem>& problems, const Check& check) {
  Budget budget;
  try {
    budget = budget_from_environment();
  } catch (const std::exception& e) {
    problems.push_back({"## " + c.title, c.line, e.what(), true});
    return;
  }
  check(budget);
}

CaseSpec read_sections(const Case& c, const std::string& case_file) {
  CaseSpec spec;
  std::vector<CaseProblem>& problems = spec.problems;
  std::map<std::string, const Section*> inputs;
  for (const Section& s : c.sections) {
    const auto& known = input_section_names();
    if (is_output_section(s.name)) continue;
    if (std::find(known.begin(), known.end(), s.name) == known.end()) {
      std::vector<std::string> all = known;
      all.insert(all.end(), output_section_names().begin(), output_section_names().end());
      std::string message = "unknown section '" + s.name + "'";
      if (auto guess = did_you_mean(s.name, all)) message += " (did you mean '" + *guess + "'?)";
      message += "; a case takes Config and Inputs, or Kernel, and optionally Targets";
      problems.push_back({"### " + s.name, s.line, message});
      continue;
    }
    if (!inputs.emplace(s.name, &s).second)
      problems.push_back({"### " + s.name, s.line, "a second '" + s.name + "' section in this case"});
  }
  if (!case_file.empty()) {
    try {
      spec.targets.engines = engine_config_for(case_file);
    } catch (const std::exception& e) {
      // The repository's configuration, not the case, is at fault: never pinned in a golden.
      problems.push_back({"", 0, e.what(), true});
      spec.targets.engine_config_unreadable = true;
    }
  }
  if (inputs.count("Targets"))
    if (auto block = read_json_block(*inputs["Targets"], problems))
      read_targets(*block, spec.targets, problems);

  const bool has_model = inputs.count("Config") || inputs.count("Inputs");
  if (inputs.count("Kernel") && has_model) {
    problems.push_back({"### Kernel", inputs["Kernel"]->line,
                        "a case has either Kernel, or Config and Inputs, not both"});
    return spec;
  }
  if (inputs.count("Kernel")) {
    if (auto block = read_json_block(*inputs["Kernel"], problems)) {
      read_kernel(*block, spec.kernel, problems);
      if (problems.empty())
        check_budget(c, problems, [&](const Budget& b) {
          auto refusal = check_kernel_budget(spec.kernel, targets_run(spec.targets), b);
          if (refusal) add_refusal(*block, *refusal, problems);
          return refusal;
        });
    }
    for (const Target& t : spec.targets.targets)
      if (engine_target_of(spec.targets, t))
        problems.push_back({"### Targets", inputs["Targets"]->line,
                            "'" + t.name() + "' is an engine's target, and engines run model "
                            "cases only"});
    if (problems.empty()) spec.kind = CaseSpec::Kind::kernel;
    return spec;
  }
  if (!has_model) {
    problems.push_back({"## " + c.title, c.line,
                        "the case has no input: it needs a Config and an Inputs section, or a "
                        "Kernel section"});
    return spec;
  }
  for (const char* name : {"Config", "Inputs"})
    if (!inputs.count(name))
      problems.push_back({"## " + c.title, c.line,
                          std::string("missing section '") + name +
                              "': a model case needs both Config and Inputs"});
  bool config_ok = false;
  std::optional<JsonBlock> config_block, inputs_block;
  if (inputs.count("Config")) {
    size_t before = problems.size();
    if ((config_block = read_json_block(*inputs["Config"], problems))) {
      if (names_checkpoint(*config_block))
        read_checkpoint_config(*config_block, case_file, spec, problems);
      else
        read_config(*config_block, spec.model, problems);
      config_ok = problems.size() == before;
    }
  }
  if (inputs.count("Inputs"))
    if ((inputs_block = read_json_block(*inputs["Inputs"], problems)))
      read_inputs(*inputs_block, spec.model, config_ok, spec.inputs, problems);
  if (problems.empty()) {
    check_budget(c, problems, [&](const Budget& b) {
      std::vector<int64_t> lengths;
      for (const auto& p : spec.inputs.prompts) lengths.push_back(static_cast<int64_t>(p.size()));
      auto refusal = check_model_budget(spec.model, lengths, spec.inputs.decode,
                                        targets_run(spec.targets), b);
      if (!refusal) return refusal;
      const bool input_key = refusal->key == "decode" || refusal->key == "prompts";
      // A checkpoint's keys are in its config.json: the case's line is the checkpoint's.
      if (input_key)
        add_refusal(*inputs_block, *refusal, problems);
      else if (!spec.checkpoint.empty())
        add_refusal(*config_block, *refusal, problems, "checkpoint");
      else
        add_refusal(*config_block, *refusal, problems);
      return refusal;
    });
  }
  if (!spec.targets.listed && spec.targets.engines)
    for (const EngineSpec& engine : spec.targets.engines->engines)
      if (engine_applies_to(*spec.targets.engines, engine, case_file))
        for (const EngineTarget& t : engine.targets) spec.targets.targets.push_back(t.target);
  if (problems.empty()) spec.kind = CaseSpec::Kind::model;
  return spec;
}

}  // namespace

const EngineTarget* engine_target_of(const TargetPlan& plan, const Target& target) {
  return plan.engines ? find_engine_target(*plan.engines, target.name()).second : nullptr;
}

CaseProblem out_of_memory_problem() {
  return {"the runtime", 0,
          "ran out of memory (std::bad_alloc) although the case was within the memory budget; "
          "set PINMARK_MEMORY_BUDGET lower to have such a case refused before it runs",
          true};
}

CaseSpec read_case_spec(const Case& c, const std::string& case_file) {
  CaseSpec spec = read_sections(c, case_file);
  // Reported top to bottom, as a reader meets them.
  std::stable_sort(spec.problems.begin(), spec.problems.end(),
                   [](const CaseProblem& a, const CaseProblem& b) { return a.file_line < b.file_line; });
  return spec;
}

}  // namespace pinmark
