// The kernels a forward pass is made of. The model calls nothing else, so a backend (the CPU
// reference, CUDA, or a deliberately broken one in a test) decides every number.
//
// T is the arithmetic type: double for the fp64 oracle, float for fp32. All arrays are
// contiguous row-major; shapes are given in the comments as [dims].
#pragma once

#include <cstdint>

namespace pinmark {

template <class T>
class Backend {
 public:
  virtual ~Backend() = default;

  // out[n, dim] = table[tokens[i], :]
  virtual void embed(const T* table, const int* tokens, int n, int dim, T* out) = 0;

  // y[n, m] = x[n, k] * w[m, k]^T  (w in the Hugging Face Linear layout [out, in])
  virtual void matmul(const T* x, const T* w, int n, int k, int m, T* y) = 0;

  // y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w   for rows r < n, row length dim
  virtual void rmsnorm(const T* x, const T* w, int n, int dim, double eps, T* y) = 0;

  // Rotary embedding in place on x[n, heads, head_dim], Hugging Face "half split" layout:
  // element j pairs with j + head_dim/2, angle = positions[i] * theta^(-2j/head_dim).
  virtual void rope(T* x, const int* positions, int n, int heads, int head_dim, double theta) = 0;

  // scores[h, i, j] = scale * q[i, h, :] . k[j, h / (heads / kv_heads), :] for key j <=
  // positions[i]; keys after the query's position (causal mask) get -infinity.
  // q[n, heads, head_dim], k[kv_len, kv_heads, head_dim], scores[heads, n, kv_len].
  virtual void attention_scores(const T* q, const T* k, const int* positions, int n, int kv_len,
                                int heads, int kv_heads, int head_dim, double scale,
                                T* scores) = 0;

  // Row-wise softmax in place over x[rows, len]; -infinity entries become 0.
  virtual void softmax(T* x, int rows, int len) = 0;

  // out[i, h, :] = sum_j probs[h, i, j] * v[j, h / (heads / kv_heads), :]
  // probs[heads, n, kv_len], v[kv_len, kv_heads, head_dim], out[n, heads, head_dim].
  virtual void attention_values(const T* probs, const T* v, int n, int kv_len, int heads,
                                int kv_heads, int head_dim, T* out) = 0;

  // out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x))
  virtual void swiglu(const T* gate, const T* up, int64_t n, T* out) = 0;

  // y[i] += x[i]
  virtual void add(T* y, const T* x, int64_t n) = 0;
};

}  // namespace pinmark
