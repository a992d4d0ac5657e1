// What a case asks for, read from its input sections: a model with its inputs, or one kernel.
// Every problem found is collected (not just the first), each naming where it is.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/engine_config.h"
#include "runtime/kernel_case.h"
#include "runtime/model_config.h"
#include "runtime/target.h"

namespace pinmark {

// A problem with one case. `where` never holds an absolute file line, so a golden's Errors
// section does not move when an earlier case grows: it names the section and the line inside
// its code block ("Config, line 3"). `file_line` is for messages on the terminal.
//
// `machine_dependent` marks a problem whose text depends on the machine that found it (the
// memory budget, which is half of physical memory; a budget set in the environment; memory
// that ran out): such a problem must fail every run and never be pinned in a golden.
struct CaseProblem {
  std::string where;
  int file_line = 0;
  std::string message;
  bool machine_dependent = false;
};

struct ModelInputs {
  std::vector<std::vector<int>> prompts;
  int decode = 0;
  int prefill_chunk = 0;
  std::vector<std::string> dump_patterns = {"*"};
  CaseProblem dumps_at;  // where the dumps key is (its where and file_line), for its errors
};

// What the `Targets` section asks for.
struct TargetPlan {
  std::vector<Target> targets = default_targets();
  std::map<std::string, double> tolerance;  // target name -> relative L2 bound, overriding the default
  bool pin_bits = false;                    // print a digest of each target's output bits
  std::optional<double> reference_tolerance;  // the Reference bound, overriding the derived one
  bool listed = false;  // the case names its targets; otherwise the defaults and its engines'
  // The engines configured for the case's file (driver/engine_config.h), nullptr when none.
  std::shared_ptr<const EngineConfig> engines;
  bool engine_config_unreadable = false;  // one was found but could not be read (a problem says why)
};

// The engine target `target` is, or nullptr when pinmark or a plug-in computes it.
const EngineTarget* engine_target_of(const TargetPlan& plan, const Target& target);

struct CaseSpec {
  enum class Kind { model, kernel, invalid } kind = Kind::invalid;
  ModelConfig model;
  std::string checkpoint;        // absolute checkpoint folder; empty for synthetic weights
  std::string checkpoint_label;  // the folder as the case wrote it
  // The keys of the checkpoint's config.json that change no number (hf_config.h's
  // unread_config_keys), for the rendered case to list.
  std::vector<std::string> checkpoint_unread_keys;
  ModelInputs inputs;
  KernelSpec kernel;
  TargetPlan targets;
  std::vector<CaseProblem> problems;  // non-empty means the case cannot run
};

// `case_file` locates checkpoints named relative to the case; without it a case that names
// one gets a problem. Every integer is range-checked before it is narrowed, a prompt's length
// plus decode must fit the positions, and a case whose bytes or multiply-adds are past the
// budget (runtime/budget.h, from the environment) is refused with a problem naming the key
// that drives the cost.
CaseSpec read_case_spec(const Case& c, const std::string& case_file = "");

// The problem for a case that ran out of memory while it ran (std::bad_alloc), marked
// machine_dependent so that it fails every run and is never pinned.
CaseProblem out_of_memory_problem();

}  // namespace pinmark
