// Rotary inverse frequencies for the rope_scaling types pinmark implements, computed in fp64
// from the same formulas as Hugging Face's modeling_rope_utils (_compute_default_rope_parameters,
// _compute_linear_scaling_rope_parameters, _compute_llama3_parameters,
// _compute_dynamic_ntk_parameters, _compute_yarn_parameters, _compute_longrope_parameters).
// default, linear, llama3 and yarn depend on the config only, so they are constants of the
// model, like the attention scale. dynamic and longrope also depend on the length of the
// sequence seen so far, as transformers' dynamic_rope_update makes them: seq_len is
// max(position) + 1 of the tokens being run.
#pragma once

#include <vector>

#include "runtime/model_config.h"

namespace pinmark {

struct RopeFrequencies {
  std::vector<double> inv_freq;     // head_dim / 2 entries
  double attention_scaling = 1.0;  // multiplies cos and sin (yarn, longrope)
};

// Whether the frequencies depend on seq_len (dynamic, longrope).
bool rope_depends_on_length(const ModelConfig& config);

// The frequencies and attention scaling for a forward pass whose last position is seq_len - 1.
RopeFrequencies rope_frequencies(const ModelConfig& config, long long seq_len);

// inv_freq[j] for j < head_dim / 2, at the initial sequence length (transformers' __init__).
std::vector<double> rope_inv_freq(const ModelConfig& config);

}  // namespace pinmark
