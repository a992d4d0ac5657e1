// The subset of a Hugging Face config.json that the runtime understands, already parsed.
// Parsing JSON (and naming the line of a bad key) is the driver's job; the runtime only
// checks that the numbers describe a model it can build.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pinmark {

struct ModelConfig {
  std::string model_type = "llama";
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // HF default: equal to num_attention_heads
  int head_dim = 0;             // HF default: hidden_size / num_attention_heads
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  uint64_t seed = 0;  // synthetic weights are keyed by (seed, HF tensor name)
};

// A problem with a config, naming the HF key it is about.
struct ConfigProblem {
  std::string key;
  std::string message;
};

// Empty when the config describes a buildable model. Checks positivity of every size,
// hidden_size % num_attention_heads (when head_dim is derived), num_attention_heads %
// num_key_value_heads, and an even head_dim (rotary pairs).
std::vector<ConfigProblem> validate(const ModelConfig& config);

// Fills the HF defaults (num_key_value_heads, head_dim) for fields left at 0.
ModelConfig with_defaults(ModelConfig config);

}  // namespace pinmark
