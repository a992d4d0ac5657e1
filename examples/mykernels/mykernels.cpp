#include "mykernels/mykernels.h"

#include <cmath>

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
