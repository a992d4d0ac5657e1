#include "tests/broken_kernels/broken_backends.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/dtype.h"

namespace pinmark::broken {

DelegatingBackend::DelegatingBackend() : DelegatingBackend(make_cpu_backend<float>()) {}

DelegatingBackend::DelegatingBackend(std::unique_ptr<Backend<float>> inner)
    : ForwardingBackend(std::move(inner)) {}

namespace {

// The reference's scores loop with the KV head and the last visible key as parameters, so
// the two attention bugs differ from the healthy kernel in exactly one expression each.
template <class KvHead, class LastKey>
void scores_with(const float* q, const float* k, const int* positions, int n, int kv_len,
                 int heads, int kv_heads, int head_dim, double scale, float* scores,
                 KvHead kv_head, LastKey last_key) {
  const float s = static_cast<float>(scale);
  for (int h = 0; h < heads; ++h) {
    const int kvh = kv_head(h);
    for (int i = 0; i < n; ++i) {
      const float* qv = q + (static_cast<int64_t>(i) * heads + h) * head_dim;
      float* row = scores + (static_cast<int64_t>(h) * n + i) * kv_len;
      for (int j = 0; j < kv_len; ++j) {
        if (j > last_key(positions[i])) {
          row[j] = -std::numeric_limits<float>::infinity();
          continue;
        }
        const float* kv = k + (static_cast<int64_t>(j) * kv_heads + kvh) * head_dim;
        float dot = 0;
        for (int d = 0; d < head_dim; ++d) dot += qv[d] * kv[d];
        row[j] = dot * s;
      }
    }
  }
}

}  // namespace

void InterleavedRope::rope(float* x, const int* positions, int n, int heads, int head_dim,
                           double theta) {
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < head_dim / 2; ++j) {
      const double inv_freq =
          1.0 / std::pow(theta, static_cast<double>(2 * j) / static_cast<double>(head_dim));
      const double angle = static_cast<double>(positions[i]) * inv_freq;
      const float c = static_cast<float>(std::cos(angle));
      const float s = static_cast<float>(std::sin(angle));
      for (int h = 0; h < heads; ++h) {
        float* v = x + (static_cast<int64_t>(i) * heads + h) * head_dim;
        const float x1 = v[2 * j], x2 = v[2 * j + 1];
        v[2 * j] = x1 * c - x2 * s;
        v[2 * j + 1] = x2 * c + x1 * s;
      }
    }
  }
}

void MaskOffByOne::attention_scores(const float* q, const float* k, const int* positions, int n,
                                    int kv_len, int heads, int kv_heads, int head_dim,
                                    double scale, float* scores) {
  const int group = heads / kv_heads;
  scores_with(
      q, k, positions, n, kv_len, heads, kv_heads, head_dim, scale, scores,
      [group](int h) { return h / group; }, [](int pos) { return pos + 1; });
}

void Fp16SoftmaxWithoutMax::softmax(float* x, int rows, int len) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int r = 0; r < rows; ++r) {
    float* row = x + static_cast<int64_t>(r) * len;
    float sum = 0;
    for (int j = 0; j < len; ++j) {
      row[j] = row[j] == neg_inf ? 0.0f : round_to(DType::f16, std::exp(row[j]));
      sum = round_to(DType::f16, sum + row[j]);
    }
    for (int j = 0; j < len; ++j) row[j] = row[j] / sum;
  }
}

void RmsNormWithoutEps::rmsnorm(const float* x, const float* w, int n, int dim, double /*eps*/,
                                float* y) {
  inner().rmsnorm(x, w, n, dim, 0.0, y);
}

void MoeRouteLeastLikely::moe_route(const float* logits, int n, int experts, int top_k,
                                    float* probs, int* ids, float* weights) {
  inner().moe_route(logits, n, experts, top_k, probs, ids, weights);
  for (int r = 0; r < n; ++r) {
    const float* pr = probs + static_cast<int64_t>(r) * experts;
    int* ir = ids + static_cast<int64_t>(r) * top_k;
    float* wr = weights + static_cast<int64_t>(r) * top_k;
    std::vector<int> order(experts);
    for (int e = 0; e < experts; ++e) order[e] = e;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return pr[a] < pr[b]; });
    float selected = 0;
    for (int s = 0; s < top_k; ++s) selected += pr[order[s]];
    for (int s = 0; s < top_k; ++s) {
      ir[s] = order[s];
      wr[s] = pr[order[s]] / selected;
    }
  }
}

void IndexerWithoutRelu::indexer_scores(const float* q, const float* k, const float* weights,
                                        const int* positions, int n, int kv_len, int heads,
                                        int head_dim, double scale, double weight_scale,
                                        float* out) {
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < kv_len; ++j) {
      float sum = 0;
      for (int h = 0; h < heads; ++h) {
        float dot = 0;
        for (int d = 0; d < head_dim; ++d)
          dot += q[(static_cast<int64_t>(i) * heads + h) * head_dim + d] *
                 k[static_cast<int64_t>(j) * head_dim + d];
        sum += weights[static_cast<int64_t>(i) * heads + h] * static_cast<float>(weight_scale) *
               (dot * static_cast<float>(scale));
      }
      out[static_cast<int64_t>(i) * kv_len + j] =
          j > positions[i] ? -std::numeric_limits<float>::infinity() : sum;
    }
}

void GaussianTopkSampleStd::gaussian_topk(float* x, int n, int dim, double std_multiplier) {
  for (int r = 0; r < n; ++r) {
    float* row = x + static_cast<int64_t>(r) * dim;
    float sum = 0;
    for (int d = 0; d < dim; ++d) sum += row[d];
    const float mean = sum / static_cast<float>(dim);
    float squares = 0;
    for (int d = 0; d < dim; ++d) squares += (row[d] - mean) * (row[d] - mean);
    const float cutoff =
        mean + std::sqrt(squares / static_cast<float>(dim - 1)) * static_cast<float>(std_multiplier);
    for (int d = 0; d < dim; ++d) row[d] = std::max(0.0f, row[d] - cutoff);
  }
}

void GqaRoundRobin::attention_scores(const float* q, const float* k, const int* positions, int n,
                                     int kv_len, int heads, int kv_heads, int head_dim,
                                     double scale, float* scores) {
  scores_with(
      q, k, positions, n, kv_len, heads, kv_heads, head_dim, scale, scores,
      [kv_heads](int h) { return h % kv_heads; }, [](int pos) { return pos; });
}

void GqaRoundRobin::attention_values(const float* probs, const float* v, int n, int kv_len,
                                     int heads, int kv_heads, int head_dim, float* out) {
  for (int i = 0; i < n; ++i) {
    for (int h = 0; h < heads; ++h) {
      const int kvh = h % kv_heads;
      const float* p = probs + (static_cast<int64_t>(h) * n + i) * kv_len;
      float* o = out + (static_cast<int64_t>(i) * heads + h) * head_dim;
      for (int d = 0; d < head_dim; ++d) {
        float sum = 0;
        for (int j = 0; j < kv_len; ++j)
          sum += p[j] * v[(static_cast<int64_t>(j) * kv_heads + kvh) * head_dim + d];
        o[d] = sum;
      }
    }
  }
}

void SwigluForClampedSwiglu::clamped_swiglu(const float* gate, const float* up, int64_t n,
                                            double, double, float* out) {
  inner().swiglu(gate, up, n, out);
}

void SoftmaxDroppingTheSink::softmax(float* x, int rows, int len) {
  if (len < 2) {
    inner().softmax(x, rows, len);
    return;
  }
  for (int r = 0; r < rows; ++r) {
    float* row = x + static_cast<int64_t>(r) * len;
    inner().softmax(row, 1, len - 1);
    row[len - 1] = 0;
  }
}

void PlainRmsnormForPlusOne::rmsnorm_plus_one(const float* x, const float* w, int n, int dim,
                                              double eps, float* y) {
  inner().rmsnorm(x, w, n, dim, eps, y);
}

void ConvDroppingItsState::causal_conv1d_silu(const float* x, const float* w, int n,
                                              int channels, int kernel, float* out) {
  std::vector<float> fresh(x, x + static_cast<int64_t>(n + kernel - 1) * channels);
  std::fill(fresh.begin(), fresh.begin() + static_cast<int64_t>(kernel - 1) * channels, 0.0f);
  inner().causal_conv1d_silu(fresh.data(), w, n, channels, kernel, out);
}

void DeltaRuleWithoutDecay::gated_delta_rule(const float* qkv, const float* a, const float* b,
                                             const float* A_log, const float* dt_bias,
                                             const GatedDeltaParams& p, float* state,
                                             float* out) {
  (void)A_log;
  // exp(A_log) = 0 makes g = 0 and the decay exp(g) = 1.
  const std::vector<float> no_decay(p.v_heads, -std::numeric_limits<float>::infinity());
  inner().gated_delta_rule(qkv, a, b, no_decay.data(), dt_bias, p, state, out);
}

void GatedNormWithoutGate::rmsnorm_gated(const float* x, const float* w, const float*, int n,
                                         int dim, double eps, float* y) {
  inner().rmsnorm(x, w, n, dim, eps, y);
}

}  // namespace pinmark::broken
