#include "bench/reference_check.h"

#include "runtime/cpu/cpu_backend.h"
#include "runtime/model.h"
#include "runtime/rounding_backend.h"
#include "runtime/weights.h"

namespace pinmark::bench {

ReferenceLogits reference_logits(const ModelConfig& config, const std::vector<int>& prompt,
                                 int next_token) {
  std::unique_ptr<Backend<float>> backend =
      make_rounding_backend(make_cpu_backend<float>(), DType::bf16);
  ReferenceLogits out;
  {
    const Weights weights = rounded_weights(synthetic_weights(config), DType::bf16);
    Model<float> model(config, weights, *backend);
    KVCache<float> cache(config, static_cast<int>(prompt.size()) + 1);
    out.prompt = model.forward(prompt, cache).data;
    out.next = model.forward({next_token}, cache).data;
  }
  return out;
}

}  // namespace pinmark::bench
