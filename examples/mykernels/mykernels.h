// A small user kernel library, pinned by pinmark as the plug-in targets "mykernels fp32" and
// "mykernels bf16" (register.cpp). Two kernels are its own, written differently from pinmark's:
//
// - rmsnorm: two passes over the row in fp32, the sum of squares compensated (Kahan), then the
//   scale computed once per row and applied with the weight.
// - matmul: the dot products split into blocks of kBlock along k, each block summed on its own
//   in fp32 and the block sums added in order (the shape of a tiled GPU GEMM's reduction).
//
// - attention: one fused call per layer, as FlashAttention computes it (Dao et al. 2022): for
//   each query and head, one pass over the keys with a running maximum and a rescaled running
//   sum and output (the "online softmax"), so the probabilities are never stored; causal mask,
//   sliding window, Gemma 2's softcap and gpt-oss's sinks included.
//
// Every other op is pinmark's CPU kernel (pinmark::CpuForwardingBackend).
//
// MeanNormKernels is the deliberately wrong variant ("mykernels-wrong fp32"): its RMSNorm
// divides by the root of the mean of x instead of the mean of x^2, a plausible slip that
// examples/wrong/ shows failing at the first norm of the forward pass.
#pragma once

#include "driver/plugin.h"

namespace mykernels {

class Kernels : public pinmark::CpuForwardingBackend {
 public:
  static constexpr int kBlock = 8;
  void rmsnorm(const float* x, const float* w, int n, int dim, double eps, float* y) override;
  void matmul(const float* x, const float* w, int n, int k, int m, float* y) override;
  bool attention(const float* q, const float* k, const float* v, const int* positions,
                 const float* sinks, const pinmark::AttentionParams& a, float* out) override;
};

class MeanNormKernels : public Kernels {
 public:
  void rmsnorm(const float* x, const float* w, int n, int dim, double eps, float* y) override;
};

}  // namespace mykernels
