#include "runtime/model_config.h"

#include <charconv>
#include <cmath>

namespace pinmark {

namespace {

// Shortest text that reads back as the same double: 0.1 prints as "0.1", not "0.10000000000000001".
std::string number(double v) {
  char buf[32];
  auto result = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, result.ptr);
}

void require_positive(std::vector<ConfigProblem>& problems, const char* key, int value) {
  if (value <= 0)
    problems.push_back({key, std::string(key) + " must be positive, got " + std::to_string(value)});
}

// For keys where 0 means "use the Hugging Face default".
void require_not_negative(std::vector<ConfigProblem>& problems, const char* key, int value) {
  if (value < 0)
    problems.push_back({key, std::string(key) + " must be positive, got " + std::to_string(value)});
}

}  // namespace

std::vector<ConfigProblem> validate(const ModelConfig& c) {
  std::vector<ConfigProblem> problems;
  require_positive(problems, "vocab_size", c.vocab_size);
  require_positive(problems, "hidden_size", c.hidden_size);
  require_positive(problems, "intermediate_size", c.intermediate_size);
  require_positive(problems, "num_hidden_layers", c.num_hidden_layers);
  require_positive(problems, "num_attention_heads", c.num_attention_heads);
  require_not_negative(problems, "num_key_value_heads", c.num_key_value_heads);
  require_not_negative(problems, "head_dim", c.head_dim);
  if (c.max_position_embeddings < 0)
    problems.push_back(
        {"max_position_embeddings", "max_position_embeddings must not be negative, got " +
                                        std::to_string(c.max_position_embeddings)});
  if (!(c.rms_norm_eps >= 0) || std::isinf(c.rms_norm_eps))
    problems.push_back({"rms_norm_eps", "rms_norm_eps must be a finite non-negative number, got " +
                                            number(c.rms_norm_eps)});
  if (!(c.rope_theta > 0) || std::isinf(c.rope_theta))
    problems.push_back(
        {"rope_theta", "rope_theta must be a finite positive number, got " + number(c.rope_theta)});

  const int heads = c.num_attention_heads;
  if (heads > 0 && c.num_key_value_heads > 0 && heads % c.num_key_value_heads != 0)
    problems.push_back({"num_key_value_heads", "num_attention_heads (" + std::to_string(heads) +
                                                   ") is not divisible by num_key_value_heads (" +
                                                   std::to_string(c.num_key_value_heads) + ")"});

  if (c.head_dim > 0) {
    if (c.head_dim % 2 != 0)
      problems.push_back({"head_dim", "head_dim (" + std::to_string(c.head_dim) +
                                          ") must be even for rotary embedding"});
  } else if (c.head_dim == 0 && heads > 0 && c.hidden_size > 0) {
    if (c.hidden_size % heads != 0) {
      problems.push_back({"hidden_size", "hidden_size (" + std::to_string(c.hidden_size) +
                                             ") is not divisible by num_attention_heads (" +
                                             std::to_string(heads) + ")"});
    } else if ((c.hidden_size / heads) % 2 != 0) {
      // Named after hidden_size, the key the config does contain, so that the problem
      // points at a line of it.
      problems.push_back({"hidden_size", "head_dim (hidden_size / num_attention_heads = " +
                                             std::to_string(c.hidden_size / heads) +
                                             ") must be even for rotary embedding"});
    }
  }
  return problems;
}

ModelConfig with_defaults(ModelConfig config) {
  if (config.num_key_value_heads == 0) config.num_key_value_heads = config.num_attention_heads;
  if (config.head_dim == 0 && config.num_attention_heads > 0)
    config.head_dim = config.hidden_size / config.num_attention_heads;
  return config;
}

}  // namespace pinmark
