// What a case asks for, read from its input sections: a model with its inputs, or one kernel.
// Every problem found is collected (not just the first), each naming where it is.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "runtime/kernel_case.h"
#include "runtime/model_config.h"
#include "runtime/target.h"

namespace pinmark {

// A problem with one case. `where` never holds an absolute file line, so a golden's Errors
// section does not move when an earlier case grows: it names the section and the line inside
// its code block ("Config, line 3"). `file_line` is for messages on the terminal.
struct CaseProblem {
  std::string where;
  int file_line = 0;
  std::string message;
};

struct ModelInputs {
  std::vector<std::vector<int>> prompts;
  int decode = 0;
  int prefill_chunk = 0;
  std::vector<std::string> dump_patterns = {"*"};
};

// What the `Targets` section asks for.
struct TargetPlan {
  std::vector<Target> targets = default_targets();
  std::map<std::string, double> tolerance;  // target name -> relative L2 bound, overriding the default
  bool pin_bits = false;                    // print a digest of each target's output bits
};

struct CaseSpec {
  enum class Kind { model, kernel, invalid } kind = Kind::invalid;
  ModelConfig model;
  std::string checkpoint;        // absolute checkpoint folder; empty for synthetic weights
  std::string checkpoint_label;  // the folder as the case wrote it
  ModelInputs inputs;
  KernelSpec kernel;
  TargetPlan targets;
  std::vector<CaseProblem> problems;  // non-empty means the case cannot run
};

// `case_file` locates checkpoints named relative to the case; without it a case that names
// one gets a problem.
CaseSpec read_case_spec(const Case& c, const std::string& case_file = "");

}  // namespace pinmark
