// Backends with one deliberately wrong kernel each, for proving that the shipped cases catch
// the mistakes people actually make when writing these kernels. Each bug lives in a subclass
// of DelegatingBackend that overrides exactly one op (two for the GQA mapping, which is the
// same mistake in both attention kernels); every other op is the CPU reference's, so whatever
// a case reports can only come from that one op.
#pragma once

#include <memory>

#include "driver/plugin.h"
#include "runtime/backend.h"

namespace pinmark::broken {

// Forwards every call to `inner` (the fp32 CPU reference unless given another).
class DelegatingBackend : public ForwardingBackend {
 public:
  DelegatingBackend();
  explicit DelegatingBackend(std::unique_ptr<Backend<float>> inner);
};

// Rotates adjacent pairs (2j, 2j+1), the GPT-J / Meta-checkpoint layout, on weights laid out
// for Hugging Face's half split (j, j + head_dim/2). Still a rotation by the right angles, so
// norms are preserved and nothing looks obviously wrong.
class InterleavedRope final : public DelegatingBackend {
 public:
  void rope(float* x, const int* positions, int n, int heads, int head_dim, double theta) override;
};

// The causal mask compares with `j <= pos + 1`: each query also sees the key right after it.
class MaskOffByOne final : public DelegatingBackend {
 public:
  void attention_scores(const float* q, const float* k, const int* positions, int n, int kv_len,
                        int heads, int kv_heads, int head_dim, double scale,
                        float* scores) override;
};

// exp(x) of the raw scores with no max subtraction, each term and the running sum stored in
// fp16, as a half-precision kernel that trusts its inputs to be small would do. Any score
// above about 11.1 overflows to infinity and the row becomes inf / inf = NaN.
class Fp16SoftmaxWithoutMax final : public DelegatingBackend {
 public:
  void softmax(float* x, int rows, int len) override;
};

// RMSNorm that drops eps: x / sqrt(mean(x^2)).
class RmsNormWithoutEps final : public DelegatingBackend {
 public:
  void rmsnorm(const float* x, const float* w, int n, int dim, double eps, float* y) override;
};

// Query head h reads KV head h % kv_heads instead of h / (heads / kv_heads): round-robin
// instead of Hugging Face's contiguous groups. Identical for MHA and MQA, wrong for GQA.
class GqaRoundRobin final : public DelegatingBackend {
 public:
  void attention_scores(const float* q, const float* k, const int* positions, int n, int kv_len,
                        int heads, int kv_heads, int head_dim, double scale,
                        float* scores) override;
  void attention_values(const float* probs, const float* v, int n, int kv_len, int heads,
                        int kv_heads, int head_dim, float* out) override;
};

// MoE routing that takes the top-k by router logit in ascending instead of descending order:
// the k least likely experts, renormalised as usual. Targets are fed the oracle's experts
// after routing, which must not hide this: the experts tap disagrees far outside a near-tie.
class MoeRouteLeastLikely final : public DelegatingBackend {
 public:
  void moe_route(const float* logits, int n, int experts, int top_k, float* probs, int* ids,
                 float* weights) override;
};

// DeepSeek-V3.2's indexer without its relu: a head whose dot product is negative subtracts from
// the key's score instead of contributing nothing, so the indexer keeps other keys.
class IndexerWithoutRelu final : public DelegatingBackend {
 public:
  void indexer_scores(const float* q, const float* k, const float* weights, const int* positions,
                      int n, int kv_len, int heads, int head_dim, double scale,
                      double weight_scale, float* out) override;
};

// Gemma 3n's activation sparsity with the sample standard deviation (divided by dim - 1,
// torch.std's default) where Gemma3nTextMLP asks for unbiased=False: the cutoff sits a little
// higher and keeps fewer, smaller gate values.
class GaussianTopkSampleStd final : public DelegatingBackend {
 public:
  void gaussian_topk(float* x, int n, int dim, double std_multiplier) override;
};

// gpt-oss's activation computed by a Llama SwiGLU kernel: silu(gate) * up, no clamps, no
// "+ 1", sigmoid slope 1 instead of 1.702.
class SwigluForClampedSwiglu final : public DelegatingBackend {
 public:
  void clamped_swiglu(const float* gate, const float* up, int64_t n, double alpha, double limit,
                      float* out) override;
};

// A softmax that knows nothing of attention sinks: the last column of each row (gpt-oss's sink
// logit) is left out of the normalisation, as a flash-attention kernel without sink support
// computes it, so each row's weights over the keys sum to 1.
class SoftmaxDroppingTheSink final : public DelegatingBackend {
 public:
  void softmax(float* x, int rows, int len) override;
};

// Gemma's (1 + w) RMSNorm computed as a plain one, multiplying by the stored offsets w.
class PlainRmsnormForPlusOne final : public DelegatingBackend {
 public:
  void rmsnorm_plus_one(const float* x, const float* w, int n, int dim, double eps,
                        float* y) override;
};

// Qwen3-Next's causal convolution that forgets its state: the kernel - 1 inputs before the call
// are read as zeros, as a decode kernel that drops the cached inputs computes it. Identical in
// the first call of a sequence, whose state is zeros.
class ConvDroppingItsState final : public DelegatingBackend {
 public:
  void causal_conv1d_silu(const float* x, const float* w, int n, int channels, int kernel,
                          float* out) override;
};
// The gated delta rule without its decay (exp(g) = 1): the state never forgets. Identical at
// a sequence's first token, whose state is zeros.
class DeltaRuleWithoutDecay final : public DelegatingBackend {
 public:
  void gated_delta_rule(const float* qkv, const float* a, const float* b, const float* A_log,
                        const float* dt_bias, const GatedDeltaParams& params, float* state,
                        float* out) override;
};
// Qwen3-Next's gated RMSNorm without its gate: a plain RMSNorm of the readout, silu(z) dropped.
class GatedNormWithoutGate final : public DelegatingBackend {
 public:
  void rmsnorm_gated(const float* x, const float* w, const float* gate, int n, int dim,
                     double eps, float* y) override;
};

}  // namespace pinmark::broken
