// Reading a Hugging Face config.json (as pasted into a case's Config block) into the
// runtime's ModelConfig: which keys pinmark implements, which it accepts and ignores because
// they do not change inference numerics, and which it rejects.
#pragma once

#include <vector>

#include "driver/case_spec.h"
#include "driver/json_block.h"
#include "runtime/model_config.h"

namespace pinmark {

// Fills `config` from the block; every unknown, missing, mistyped or unsupported key and
// every shape that does not divide becomes a problem naming its line.
void read_config(const JsonBlock& block, ModelConfig& config, std::vector<CaseProblem>& problems);

}  // namespace pinmark
