// A case whose Config names a checkpoint directory instead of listing HF keys:
//   {"pinmark": {"checkpoint": "checkpoints/llama"}}
// The path is relative to the case file and must stay inside the repository; the model's
// keys come from the directory's config.json, read exactly like a Config block.
#pragma once

#include <string>
#include <vector>

#include "driver/case_spec.h"
#include "driver/json_block.h"

namespace pinmark {

// True when the Config block asks for a checkpoint.
bool names_checkpoint(const JsonBlock& config_block);

// Resolves the directory, reads its config.json into spec.model and sets spec.checkpoint.
// Problems found in config.json name that file and its line.
void read_checkpoint_config(const JsonBlock& config_block, const std::string& case_file,
                            CaseSpec& spec, std::vector<CaseProblem>& problems);

}  // namespace pinmark
