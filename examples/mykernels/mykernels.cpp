#include "mykernels/mykernels.h"

#include <cmath>
#include <limits>
#include <vector>

namespace mykernels {

void Kernels::rmsnorm(const float* x, const float* w, int n, int dim, double eps, float* y) {
  for (int r = 0; r < n; ++r) {
    const float* row = x + static_cast<long>(r) * dim;
    // Pass 1: the sum of squares, Kahan-compensated in fp32.
    float sum = 0, carry = 0;
    for (int d = 0; d < dim; ++d) {
      const float term = row[d] * row[d] - carry;
      const float next = sum + term;
      carry = (next - sum) - term;
      sum = next;
    }
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(dim) + static_cast<float>(eps));
    // Pass 2: normalise, then weight (Hugging Face's order: (x * inv) * w).
    float* out = y + static_cast<long>(r) * dim;
    for (int d = 0; d < dim; ++d) out[d] = (row[d] * inv) * w[d];
  }
}

void Kernels::matmul(const float* x, const float* w, int n, int k, int m, float* y) {
  for (int i = 0; i < n; ++i) {
    const float* xi = x + static_cast<long>(i) * k;
    for (int j = 0; j < m; ++j) {
      const float* wj = w + static_cast<long>(j) * k;
      float total = 0;
      for (int k0 = 0; k0 < k; k0 += kBlock) {
        const int k1 = k0 + kBlock < k ? k0 + kBlock : k;
        float block = 0;
        for (int kk = k0; kk < k1; ++kk) block += xi[kk] * wj[kk];
        total += block;
      }
      y[static_cast<long>(i) * m + j] = total;
    }
  }
}

bool Kernels::attention(const float* q, const float* k, const float* v, const int* positions,
                        const float* sinks, const pinmark::AttentionParams& a, float* out) {
  const int group = a.heads / a.kv_heads;
  const float scale = static_cast<float>(a.scale);
  const float cap = static_cast<float>(a.softcap);
  std::vector<float> acc(a.head_dim);
  for (int i = 0; i < a.n; ++i) {
    for (int h = 0; h < a.heads; ++h) {
      const float* qi = q + (static_cast<long>(i) * a.heads + h) * a.head_dim;
      const int g = h / group;
      // A sink is a logit with no value: it starts the running maximum and sum.
      float running_max = sinks ? sinks[h] : -std::numeric_limits<float>::infinity();
      float sum = sinks ? 1.0f : 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      const int last = positions[i] < a.kv_len - 1 ? positions[i] : a.kv_len - 1;
      for (int j = 0; j <= last; ++j) {
        if (a.window > 0 && positions[i] - j >= a.window) continue;
        const float* kj = k + (static_cast<long>(j) * a.kv_heads + g) * a.head_dim;
        float s = 0;
        for (int d = 0; d < a.head_dim; ++d) s += qi[d] * kj[d];
        s *= scale;
        if (cap > 0) s = cap * std::tanh(s / cap);
        // Online softmax: rescale what was summed so far when the maximum grows.
        const float next_max = s > running_max ? s : running_max;
        const float rescale = std::exp(running_max - next_max);
        const float p = std::exp(s - next_max);
        sum = sum * rescale + p;
        const float* vj = v + (static_cast<long>(j) * a.kv_heads + g) * a.head_dim;
        for (int d = 0; d < a.head_dim; ++d) acc[d] = acc[d] * rescale + p * vj[d];
        running_max = next_max;
      }
      float* o = out + (static_cast<long>(i) * a.heads + h) * a.head_dim;
      for (int d = 0; d < a.head_dim; ++d) o[d] = sum > 0 ? acc[d] / sum : 0.0f;
    }
  }
  return true;
}

void MeanNormKernels::rmsnorm(const float* x, const float* w, int n, int dim, double eps,
                              float* y) {
  for (int r = 0; r < n; ++r) {
    const float* row = x + static_cast<long>(r) * dim;
    float sum = 0;
    for (int d = 0; d < dim; ++d) sum += row[d];  // wrong: x, not x^2
    const float inv =
        1.0f / std::sqrt(std::fabs(sum / static_cast<float>(dim)) + static_cast<float>(eps));
    float* out = y + static_cast<long>(r) * dim;
    for (int d = 0; d < dim; ++d) out[d] = (row[d] * inv) * w[d];
  }
}

}  // namespace mykernels
