// Rotary inverse frequencies for the rope_scaling types pinmark implements, computed in fp64
// from the same formulas as Hugging Face's modeling_rope_utils (_compute_default_rope_parameters,
// _compute_linear_scaling_rope_parameters, _compute_llama3_parameters). They depend on the
// config only, so they are constants of the model, like the attention scale.
#pragma once

#include <vector>

#include "runtime/model_config.h"

namespace pinmark {

// inv_freq[j] for j < head_dim / 2.
std::vector<double> rope_inv_freq(const ModelConfig& config);

}  // namespace pinmark
