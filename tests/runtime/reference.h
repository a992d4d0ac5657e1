// Plain fp64 versions of the kernels, written from the definitions rather than from the
// backend, to check the backend against. Loops are as direct as possible; speed is no concern.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

namespace pinmark::ref {

using Vec = std::vector<double>;

inline Vec embed(const Vec& table, const std::vector<int>& tokens, int dim) {
  Vec out;
  for (int t : tokens)
    for (int d = 0; d < dim; ++d) out.push_back(table[t * dim + d]);
  return out;
}

// y[n, m] = x[n, k] w[m, k]^T
inline Vec matmul(const Vec& x, const Vec& w, int n, int k, int m) {
  Vec y(n * m, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j)
      for (int p = 0; p < k; ++p) y[i * m + j] += x[i * k + p] * w[j * k + p];
  return y;
}

inline Vec rmsnorm(const Vec& x, const Vec& w, int rows, int dim, double eps) {
  Vec y(x.size());
  for (int r = 0; r < rows; ++r) {
    double mean_square = 0;
    for (int d = 0; d < dim; ++d) mean_square += x[r * dim + d] * x[r * dim + d] / dim;
    const double rms = std::sqrt(mean_square + eps);
    for (int d = 0; d < dim; ++d) y[r * dim + d] = x[r * dim + d] / rms * w[d];
  }
  return y;
}

// Rotary embedding as in Hugging Face's rotate_half: q * cos + rotate_half(q) * sin, where
// rotate_half(q) = [-q2, q1] and cos, sin repeat the same half-length frequencies twice.
inline Vec rope(const Vec& x, const std::vector<int>& positions, int heads, int hd, double theta) {
  Vec y(x.size());
  const int n = static_cast<int>(positions.size()), half = hd / 2;
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < heads; ++h)
      for (int d = 0; d < hd; ++d) {
        const int j = d % half;
        const double angle = positions[i] * std::pow(theta, -2.0 * j / hd);
        const double* v = &x[(i * heads + h) * hd];
        const double rotated = d < half ? -v[d + half] : v[d - half];
        y[(i * heads + h) * hd + d] = v[d] * std::cos(angle) + rotated * std::sin(angle);
      }
  return y;
}

// scores[h, i, j], -infinity for j > positions[i].
inline Vec attention_scores(const Vec& q, const Vec& k, const std::vector<int>& positions,
                            int kv_len, int heads, int kv_heads, int hd, double scale) {
  const int n = static_cast<int>(positions.size());
  const int per_kv = heads / kv_heads;
  Vec s(heads * n * kv_len);
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < kv_len; ++j) {
        double dot = 0;
        for (int d = 0; d < hd; ++d)
          dot += q[(i * heads + h) * hd + d] * k[(j * kv_heads + h / per_kv) * hd + d];
        s[(h * n + i) * kv_len + j] =
            j <= positions[i] ? dot * scale : -std::numeric_limits<double>::infinity();
      }
  return s;
}

inline Vec softmax(const Vec& x, int rows, int len) {
  Vec y(x.size());
  for (int r = 0; r < rows; ++r) {
    double max = -std::numeric_limits<double>::infinity();
    for (int j = 0; j < len; ++j) max = std::max(max, x[r * len + j]);
    double total = 0;
    for (int j = 0; j < len; ++j) total += std::exp(x[r * len + j] - max);
    for (int j = 0; j < len; ++j) y[r * len + j] = std::exp(x[r * len + j] - max) / total;
  }
  return y;
}

inline Vec attention_values(const Vec& probs, const Vec& v, int n, int kv_len, int heads,
                            int kv_heads, int hd) {
  const int per_kv = heads / kv_heads;
  Vec out(n * heads * hd, 0.0);
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < heads; ++h)
      for (int d = 0; d < hd; ++d)
        for (int j = 0; j < kv_len; ++j)
          out[(i * heads + h) * hd + d] +=
              probs[(h * n + i) * kv_len + j] * v[(j * kv_heads + h / per_kv) * hd + d];
  return out;
}

inline Vec swiglu(const Vec& gate, const Vec& up) {
  Vec out(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) {
    const double sigmoid = 1.0 / (1.0 + std::exp(-gate[i]));
    out[i] = gate[i] * sigmoid * up[i];
  }
  return out;
}

inline Vec add(Vec y, const Vec& x) {
  for (size_t i = 0; i < y.size(); ++i) y[i] += x[i];
  return y;
}

}  // namespace pinmark::ref
