// What a case costs before it runs: the bytes it will hold at once and the multiply-adds it
// will do, from its config, inputs and targets alone. A case past the budget is refused with
// the key that drives the cost, instead of running for hours or ending in std::bad_alloc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/kernel_case.h"
#include "runtime/model_config.h"

namespace pinmark {

// Bytes held at the peak and multiply-adds done, in double so that no product overflows.
struct Footprint {
  double bytes = 0;
  double work = 0;
};

// A fixed number of multiply-adds that the CPU reference does in well under a minute on one
// core, so that the same case is accepted on every machine.
inline constexpr double kDefaultWorkBudget = 2e10;

struct Budget {
  double bytes = 0;
  double work = kDefaultWorkBudget;
  bool bytes_from_environment = false;  // PINMARK_MEMORY_BUDGET was set
  bool work_from_environment = false;   // PINMARK_WORK_BUDGET was set
};

// Half of physical memory and kDefaultWorkBudget, unless PINMARK_MEMORY_BUDGET (bytes, with an
// optional K, M, G or T suffix in powers of 1024) or PINMARK_WORK_BUDGET (multiply-adds, e.g.
// 5e10) says otherwise. Throws std::runtime_error naming the variable when its value is not a
// positive number.
Budget budget_from_environment();

// The cost of running `config` over prompts of these lengths plus `decode` greedy steps: the
// fp64 oracle, then each of `targets` targets run five times (once, repeated twice, on one
// thread, each sequence alone). Work counts the multiply-adds and, in multiply-adds of the same
// time, each layer's fixed cost per run and per forward call. Bytes count the weights at fp64
// and one target's copies, the KV cache, the logits kept and the intermediate tensors
// recorded. Sizes left at 0 take their Hugging Face defaults.
Footprint model_footprint(const ModelConfig& config, const std::vector<int64_t>& prompt_lengths,
                          int64_t decode, int targets);

// The cost of one kernel case: the oracle and three runs per target. `spec` must be valid.
Footprint kernel_footprint(const KernelSpec& spec, int targets);

// Why a case is refused: `key` is the config, input or kernel key whose value drives the cost
// (the one that, set to 1, shrinks it most), `message` says what is needed and the budget.
// `machine_dependent` is true when the message holds a number that depends on the machine
// (physical memory, or a budget set in the environment), so it must not be pinned in a golden.
struct BudgetRefusal {
  std::string key;
  std::string message;
  bool machine_dependent = false;
};

// nullopt when the case fits. Work is checked first: its budget is the same everywhere.
std::optional<BudgetRefusal> check_model_budget(const ModelConfig& config,
                                                const std::vector<int64_t>& prompt_lengths,
                                                int64_t decode, int targets,
                                                const Budget& budget);
std::optional<BudgetRefusal> check_kernel_budget(const KernelSpec& spec, int targets,
                                                 const Budget& budget);

// "1.5 GB", "3.2e+10": two significant digits, the same text on every machine.
std::string bytes_text(double bytes);
std::string count_text(double count);

}  // namespace pinmark
