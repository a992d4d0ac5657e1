// The CPU reference the benchmark's device forward is checked against. Kept out of the .cu file
// so that the runtime's C++20 headers are compiled by the host compiler alone.
#pragma once

#include <vector>

#include "runtime/model_config.h"

namespace pinmark::bench {

struct ReferenceLogits {
  std::vector<float> prompt;  // [prompt tokens, vocab]
  std::vector<float> next;    // [1, vocab]: one decode step after the prompt
};

// Logits of pinmark's reference Model<float> on the CPU, every op's output stored in bf16
// (the rounding backend), on the config's synthetic weights rounded to bf16: the numbers the
// device forward should reproduce up to bf16 rounding and summation order.
ReferenceLogits reference_logits(const ModelConfig& config, const std::vector<int>& prompt,
                                 int next_token);

}  // namespace pinmark::bench
