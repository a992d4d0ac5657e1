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

// The keys of a config (a Config block or a checkpoint's config.json) that pinmark reads for
// nothing, in the JSON object's (sorted) order: keys that transformers' modeling code for its
// model_type does not read (bos_token_id, transformers_version, a key another family's
// configuration class has, ...). Empty for a model_type pinmark does not implement.
std::vector<std::string> unread_config_keys(const nlohmann::json& config);

// The Hugging Face class a config.json of this model_type names in "architectures"
// ("LlamaForCausalLM"); "" for a model_type pinmark does not implement.
std::string causal_lm_class(const std::string& model_type);

}  // namespace pinmark
