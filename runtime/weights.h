// Model weights by Hugging Face tensor name ("model.layers.0.self_attn.q_proj.weight"), kept in
// fp64. A backend of lower precision converts them when the model is built, so a synthetic
// case and a checkpoint case differ only in where these numbers come from.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/model_config.h"
#include "runtime/tensor.h"

namespace pinmark {

using Weights = std::map<std::string, Tensor<double>>;

// Every tensor the config needs, drawn from random_tensor(config.seed, name, ...):
// linear weights uniform with standard deviation 1/sqrt(fan_in), embeddings uniform in
// [-1, 1), norm weights 1 + uniform(+-0.1) so that a dropped weight is visible.
Weights synthetic_weights(const ModelConfig& config);

// The name and shape of every tensor synthetic_weights(config) holds, without drawing their
// values: what a checkpoint for the config must hold.
std::vector<std::pair<std::string, Shape>> weight_shapes(const ModelConfig& config);

// Every value rounded to `storage` (through fp32), as a checkpoint stored in that type holds it.
Weights rounded_weights(const Weights& weights, DType storage);

}  // namespace pinmark
