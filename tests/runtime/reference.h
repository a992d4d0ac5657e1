// Plain fp64 versions of the kernels, written from the definitions rather than from the
// backend, to check the backend against. Loops are as direct as possible; speed is no concern.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
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

// GptOssExperts._apply_gate: gate clamped from above, up on both sides, then (up + 1) times
// gate * sigmoid(alpha * gate).
inline Vec clamped_swiglu(const Vec& gate, const Vec& up, double alpha, double limit) {
  Vec out(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) {
    const double g = std::min(gate[i], limit);
    const double u = std::max(-limit, std::min(up[i], limit));
    out[i] = (u + 1.0) * g / (1.0 + std::exp(-alpha * g));
  }
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

// y[n, m] = x[n, k] w[m, k]^T + b[m]
inline Vec linear(const Vec& x, const Vec& w, const Vec& b, int n, int k, int m) {
  Vec y = matmul(x, w, n, k, m);
  if (!b.empty())
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < m; ++j) y[i * m + j] += b[j];
  return y;
}

// Gemma: normalise, then scale by (1 + w).
inline Vec rmsnorm_plus_one(const Vec& x, const Vec& w, int rows, int dim, double eps) {
  Vec one_plus(w.size());
  for (size_t d = 0; d < w.size(); ++d) one_plus[d] = 1.0 + w[d];
  return rmsnorm(x, one_plus, rows, dim, eps);
}

inline Vec layernorm(const Vec& x, const Vec& w, const Vec& b, int rows, int dim, double eps) {
  Vec y(x.size());
  for (int r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int d = 0; d < dim; ++d) mean += x[r * dim + d] / dim;
    for (int d = 0; d < dim; ++d) var += (x[r * dim + d] - mean) * (x[r * dim + d] - mean) / dim;
    for (int d = 0; d < dim; ++d)
      y[r * dim + d] = (x[r * dim + d] - mean) / std::sqrt(var + eps) * w[d] + b[d];
  }
  return y;
}

inline double gelu(double x, bool tanh_approximation) {
  if (tanh_approximation)
    return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * std::pow(x, 3))));
  return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
}

inline Vec geglu(const Vec& gate, const Vec& up, bool tanh_approximation) {
  Vec out(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) out[i] = gelu(gate[i], tanh_approximation) * up[i];
  return out;
}

inline Vec gelu(const Vec& x, bool tanh_approximation) {
  Vec out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = gelu(x[i], tanh_approximation);
  return out;
}

// Rotary embedding with given inverse frequencies (rope_scaling), same rotate_half form.
inline Vec rope_with(const Vec& x, const std::vector<int>& positions, int heads, int hd,
                     const Vec& inv_freq) {
  Vec y(x.size());
  const int n = static_cast<int>(positions.size()), half = hd / 2;
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < heads; ++h)
      for (int d = 0; d < hd; ++d) {
        const double angle = positions[i] * inv_freq[d % half];
        const double* v = &x[(i * heads + h) * hd];
        const double rotated = d < half ? -v[d + half] : v[d - half];
        y[(i * heads + h) * hd + d] = v[d] * std::cos(angle) + rotated * std::sin(angle);
      }
  return y;
}

// Hugging Face's _compute_llama3_parameters / linear scaling, transcribed loop by loop.
inline Vec scaled_inv_freq(const std::string& type, double theta, int hd, double factor,
                           double low, double high, double original) {
  Vec inv(hd / 2);
  for (int j = 0; j < hd / 2; ++j) {
    double f = 1.0 / std::pow(theta, (2.0 * j) / hd);
    if (type == "linear") f = f / factor;
    if (type == "llama3") {
      const double wavelen = 2 * M_PI / f;
      if (wavelen < original / high) {
        // high frequency: unchanged
      } else if (wavelen > original / low) {
        f = f / factor;
      } else {
        const double smooth = (original / wavelen - low) / (high - low);
        f = (1 - smooth) * f / factor + smooth * f;
      }
    }
    inv[j] = f;
  }
  return inv;
}

// Scores with Gemma 2's tanh softcap (before the mask, as Hugging Face applies it) and a
// sliding window: key j is visible to the query at position p when j <= p and p - j < window.
inline Vec attention_scores_full(const Vec& q, const Vec& k, const std::vector<int>& positions,
                                 int kv_len, int heads, int kv_heads, int hd, double scale,
                                 double softcap, int window) {
  Vec s = attention_scores(q, k, positions, kv_len, heads, kv_heads, hd, scale);
  const int n = static_cast<int>(positions.size());
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < kv_len; ++j) {
        double& v = s[(h * n + i) * kv_len + j];
        const bool visible = j <= positions[i] && (window <= 0 || positions[i] - j < window);
        if (!visible) {
          v = -std::numeric_limits<double>::infinity();
        } else if (softcap > 0) {
          v = std::tanh(v / softcap) * softcap;
        }
      }
  return s;
}

// Mixtral's router for one token: softmax over every expert, the top_k by probability (lowest
// index among equals), their probabilities renormalised to sum to one.
struct Routing {
  Vec probs;
  std::vector<int> ids;
  Vec weights;
};
inline Routing route(const Vec& logits, int top_k, bool renormalise = true) {
  Routing r;
  r.probs = softmax(logits, 1, static_cast<int>(logits.size()));
  std::vector<int> order(logits.size());
  for (size_t e = 0; e < order.size(); ++e) order[e] = static_cast<int>(e);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return r.probs[a] > r.probs[b]; });
  double total = 0;
  for (int s = 0; s < top_k; ++s) total += r.probs[order[s]];
  for (int s = 0; s < top_k; ++s) {
    r.ids.push_back(order[s]);
    r.weights.push_back(renormalise ? r.probs[order[s]] / total : r.probs[order[s]]);
  }
  return r;
}

}  // namespace pinmark::ref
