// Every loop below that is parallel runs over independent output elements; each element is
// summed by one thread in index order, with no parallel reduction. That makes the result a
// pure function of the inputs: the same bits for any thread count and any batch composition.
// Sums are accumulated in T, so the fp32 instance carries genuine fp32 rounding error.
#include "runtime/cpu/cpu_backend.h"

#include <cmath>
#include <limits>

namespace pinmark {

namespace {

// Below this many multiply-adds a loop runs on one thread: starting a parallel region costs
// more than it saves on the small shapes of most cases, and idle spinning threads slow down
// test processes running side by side.
constexpr int64_t kParallelWork = int64_t{1} << 16;

template <class T>
class CpuBackend final : public Backend<T> {
 public:
  void embed(const T* table, const int* tokens, int n, int dim, T* out) override {
#pragma omp parallel for if (int64_t{n} * dim >= kParallelWork)
    for (int i = 0; i < n; ++i) {
      const T* row = table + static_cast<int64_t>(tokens[i]) * dim;
      T* dst = out + static_cast<int64_t>(i) * dim;
      for (int d = 0; d < dim; ++d) dst[d] = row[d];
    }
  }

  void matmul(const T* x, const T* w, int n, int k, int m, T* y) override {
    // Collapsed over (row, column) so that a single-token decode step still spreads its
    // columns over the threads.
#pragma omp parallel for collapse(2) if (int64_t{n} * m * k >= kParallelWork)
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < m; ++j) {
        const T* xr = x + static_cast<int64_t>(i) * k;
        const T* wr = w + static_cast<int64_t>(j) * k;
        T sum = 0;
        for (int p = 0; p < k; ++p) sum += xr[p] * wr[p];
        y[static_cast<int64_t>(i) * m + j] = sum;
      }
    }
  }

  void rmsnorm(const T* x, const T* w, int n, int dim, double eps, T* y) override {
#pragma omp parallel for if (int64_t{n} * dim >= kParallelWork)
    for (int r = 0; r < n; ++r) {
      const T* xr = x + static_cast<int64_t>(r) * dim;
      T* yr = y + static_cast<int64_t>(r) * dim;
      T ss = 0;
      for (int d = 0; d < dim; ++d) ss += xr[d] * xr[d];
      const T inv = T(1) / std::sqrt(ss / static_cast<T>(dim) + static_cast<T>(eps));
      // Same order as Hugging Face: normalize first, then scale by the weight.
      for (int d = 0; d < dim; ++d) yr[d] = (xr[d] * inv) * w[d];
    }
  }

  void rope(T* x, const int* positions, int n, int heads, int head_dim, double theta) override {
    const int half = head_dim / 2;
#pragma omp parallel for collapse(2) if (int64_t{n} * heads * head_dim >= kParallelWork)
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < half; ++j) {
        // Frequencies and angles in fp64 whatever T is: the angle pos * inv_freq grows with
        // the position, and its rounding would otherwise swamp the error being measured.
        const double inv_freq =
            1.0 / std::pow(theta, static_cast<double>(2 * j) / static_cast<double>(head_dim));
        const double angle = static_cast<double>(positions[i]) * inv_freq;
        const T c = static_cast<T>(std::cos(angle));
        const T s = static_cast<T>(std::sin(angle));
        for (int h = 0; h < heads; ++h) {
          T* v = x + (static_cast<int64_t>(i) * heads + h) * head_dim;
          const T x1 = v[j], x2 = v[j + half];
          v[j] = x1 * c - x2 * s;
          v[j + half] = x2 * c + x1 * s;
        }
      }
    }
  }

  void attention_scores(const T* q, const T* k, const int* positions, int n, int kv_len, int heads,
                        int kv_heads, int head_dim, double scale, T* scores) override {
    const int group = heads / kv_heads;
    const T s = static_cast<T>(scale);
    const T neg_inf = -std::numeric_limits<T>::infinity();
#pragma omp parallel for collapse(2) if (int64_t{heads} * n * kv_len * head_dim >= kParallelWork)
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < n; ++i) {
        const int kvh = h / group;
        const T* qv = q + (static_cast<int64_t>(i) * heads + h) * head_dim;
        T* row = scores + (static_cast<int64_t>(h) * n + i) * kv_len;
        for (int j = 0; j < kv_len; ++j) {
          if (j > positions[i]) {
            row[j] = neg_inf;
            continue;
          }
          const T* kv = k + (static_cast<int64_t>(j) * kv_heads + kvh) * head_dim;
          T dot = 0;
          for (int d = 0; d < head_dim; ++d) dot += qv[d] * kv[d];
          row[j] = dot * s;
        }
      }
    }
  }

  void softmax(T* x, int rows, int len) override {
    const T neg_inf = -std::numeric_limits<T>::infinity();
#pragma omp parallel for if (int64_t{rows} * len >= kParallelWork)
    for (int r = 0; r < rows; ++r) {
      T* row = x + static_cast<int64_t>(r) * len;
      T max = neg_inf;
      for (int j = 0; j < len; ++j)
        if (row[j] > max) max = row[j];
      if (max == neg_inf) {
        // Fully masked: there is no distribution to normalize; zeros instead of 0/0 NaNs.
        for (int j = 0; j < len; ++j) row[j] = 0;
        continue;
      }
      T sum = 0;
      for (int j = 0; j < len; ++j) {
        row[j] = row[j] == neg_inf ? T(0) : std::exp(row[j] - max);
        sum += row[j];
      }
      for (int j = 0; j < len; ++j) row[j] = row[j] / sum;
    }
  }

  void attention_values(const T* probs, const T* v, int n, int kv_len, int heads, int kv_heads,
                        int head_dim, T* out) override {
    const int group = heads / kv_heads;
#pragma omp parallel for collapse(2) if (int64_t{n} * heads * head_dim * kv_len >= kParallelWork)
    for (int i = 0; i < n; ++i) {
      for (int h = 0; h < heads; ++h) {
        const int kvh = h / group;
        const T* p = probs + (static_cast<int64_t>(h) * n + i) * kv_len;
        T* o = out + (static_cast<int64_t>(i) * heads + h) * head_dim;
        for (int d = 0; d < head_dim; ++d) {
          T sum = 0;
          for (int j = 0; j < kv_len; ++j)
            sum += p[j] * v[(static_cast<int64_t>(j) * kv_heads + kvh) * head_dim + d];
          o[d] = sum;
        }
      }
    }
  }

  void swiglu(const T* gate, const T* up, int64_t n, T* out) override {
#pragma omp parallel for if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) {
      const T g = gate[i];
      out[i] = (g / (T(1) + std::exp(-g))) * up[i];
    }
  }

  void add(T* y, const T* x, int64_t n) override {
#pragma omp parallel for if (n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  }
};

}  // namespace

template <class T>
std::unique_ptr<Backend<T>> make_cpu_backend() {
  return std::make_unique<CpuBackend<T>>();
}

template std::unique_ptr<Backend<double>> make_cpu_backend<double>();
template std::unique_ptr<Backend<float>> make_cpu_backend<float>();

}  // namespace pinmark
