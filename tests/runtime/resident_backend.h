// A CPU backend that keeps the activations the model holds (Backend::hold_activations) where
// the host cannot see them, as a device backend does, and is stricter than any device: after
// every call the host's copy of each held array is NaN, and before every op it is put back
// from the backend's own copy. A host read the model does not announce (to_host) reads NaN; a
// host write it does not announce (from_host) is overwritten before the next op reads it. Either
// changes the logits, which the checks below compare bit for bit with the plain backend's.
// Cache writes from a held array (write_cache) lag as a device backend's may: the host's cache
// values are NaN between ops until the next to_host, cache_written or release_cache (a
// write_cache from a held array leaves earlier ones lagging), so a host read of them the model
// makes before one of those reads NaN.
// A result the rounding layer announces (Backend::round_next) is rounded as the op that writes it
// ends, as a device backend's kernel may round it, and the round_stored call that follows is
// then taken as done: an announcement of values the op does not store in the 16-bit type (the
// scores, which stay in fp32) would round them, and change the logits.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/backend.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/weights.h"

namespace pinmark::test {

template <class T>
class ResidentBackend final : public Backend<T> {
 public:
  explicit ResidentBackend(std::unique_ptr<Backend<T>> inner) : inner_(std::move(inner)) {}

  void hold_activations(const T* a, int64_t count) override {
    EXPECT_EQ(arrays_.count(a), 0u) << "an array held twice";
    arrays_[a] = std::vector<T>(a, a + count);
    std::fill(const_cast<T*>(a), const_cast<T*>(a) + count, kPoison);
    ++holds_;
  }
  void release_activations(const T* a) override {
    EXPECT_EQ(arrays_.erase(a), 1u) << "an array released that was not held";
  }
  void to_host(const T* a, int64_t first, int64_t count) override {
    flush_cache_writes();
    if (T* own = find(a + first, count)) std::copy(own, own + count, const_cast<T*>(a) + first);
  }
  void from_host(const T* a, int64_t first, int64_t count) override {
    if (T* own = find(a + first, count)) std::copy(a + first, a + first + count, own);
  }

  // Arrays held now, and hold_activations calls so far.
  size_t held() const { return arrays_.size(); }
  int holds() const { return holds_; }

  void embed(const T* table, const int* tokens, int n, int dim, T* out) override {
    Op op(*this);
    inner_->embed(table, tokens, n, dim, out);
  }
  void matmul(const T* x, const T* w, int n, int k, int m, T* y) override {
    Op op(*this);
    inner_->matmul(x, w, n, k, m, y);
  }
  void rmsnorm(const T* x, const T* w, int n, int dim, double eps, T* y) override {
    Op op(*this);
    inner_->rmsnorm(x, w, n, dim, eps, y);
  }
  void rope(T* x, const int* positions, int n, int heads, int head_dim, double theta) override {
    Op op(*this);
    inner_->rope(x, positions, n, heads, head_dim, theta);
  }
  void attention_scores(const T* q, const T* k, const int* positions, int n, int kv_len, int heads,
                        int kv_heads, int head_dim, double scale, T* scores) override {
    Op op(*this);
    inner_->attention_scores(q, k, positions, n, kv_len, heads, kv_heads, head_dim, scale, scores);
  }
  void softmax(T* x, int rows, int len) override {
    Op op(*this);
    inner_->softmax(x, rows, len);
  }
  void attention_values(const T* probs, const T* v, int n, int kv_len, int heads, int kv_heads,
                        int head_dim, T* out) override {
    Op op(*this);
    inner_->attention_values(probs, v, n, kv_len, heads, kv_heads, head_dim, out);
  }
  void swiglu(const T* gate, const T* up, int64_t n, T* out) override {
    Op op(*this);
    inner_->swiglu(gate, up, n, out);
  }
  void clamped_swiglu(const T* gate, const T* up, int64_t n, double alpha, double limit,
                      T* out) override {
    Op op(*this);
    inner_->clamped_swiglu(gate, up, n, alpha, limit, out);
  }
  void add(T* y, const T* x, int64_t n) override {
    Op op(*this);
    inner_->add(y, x, n);
  }
  void matmul_bias(const T* x, const T* w, const T* b, int n, int k, int m, T* y) override {
    Op op(*this);
    inner_->matmul_bias(x, w, b, n, k, m, y);
  }
  void rmsnorm_plus_one(const T* x, const T* w, int n, int dim, double eps, T* y) override {
    Op op(*this);
    inner_->rmsnorm_plus_one(x, w, n, dim, eps, y);
  }
  void layernorm(const T* x, const T* w, const T* b, int n, int dim, double eps, T* y) override {
    Op op(*this);
    inner_->layernorm(x, w, b, n, dim, eps, y);
  }
  void rope_freqs(T* x, const int* positions, int n, int heads, int head_dim,
                  const double* inv_freq, double attention_scaling) override {
    Op op(*this);
    inner_->rope_freqs(x, positions, n, heads, head_dim, inv_freq, attention_scaling);
  }
  void score_mod(T* scores, const int* positions, int n, int kv_len, int heads, double softcap,
                 int window) override {
    Op op(*this);
    inner_->score_mod(scores, positions, n, kv_len, heads, softcap, window);
  }
  void softcap(T* x, int64_t n, double cap) override {
    Op op(*this);
    inner_->softcap(x, n, cap);
  }
  void scale(T* x, int64_t n, double scale) override {
    Op op(*this);
    inner_->scale(x, n, scale);
  }
  void gelu(const T* x, int64_t n, bool tanh, T* out) override {
    Op op(*this);
    inner_->gelu(x, n, tanh, out);
  }
  void geglu(const T* gate, const T* up, int64_t n, bool tanh, T* out) override {
    Op op(*this);
    inner_->geglu(gate, up, n, tanh, out);
  }
  void moe_route(const T* logits, int n, int experts, int top_k, T* probs, int* ids,
                 T* weights) override {
    Op op(*this);
    inner_->moe_route(logits, n, experts, top_k, probs, ids, weights);
  }
  void moe_combine(T* y, const T* x, const int* rows, const T* weights, int m, int dim) override {
    Op op(*this);
    inner_->moe_combine(y, x, rows, weights, m, dim);
  }
  void causal_conv1d_silu(const T* x, const T* w, int n, int channels, int kernel,
                          T* out) override {
    Op op(*this);
    inner_->causal_conv1d_silu(x, w, n, channels, kernel, out);
  }
  void gated_delta_rule(const T* qkv, const T* a, const T* b, const T* A_log, const T* dt_bias,
                        const GatedDeltaParams& p, T* state, T* out) override {
    Op op(*this);
    inner_->gated_delta_rule(qkv, a, b, A_log, dt_bias, p, state, out);
  }
  void rmsnorm_gated(const T* x, const T* w, const T* gate, int n, int dim, double eps,
                     T* y) override {
    Op op(*this);
    inner_->rmsnorm_gated(x, w, gate, n, dim, eps, y);
  }
  void sigmoid_gate(const T* x, const T* gate, int64_t n, T* out) override {
    Op op(*this);
    inner_->sigmoid_gate(x, gate, n, out);
  }
  void indexer_scores(const T* q, const T* k, const T* weights, const int* positions, int n,
                      int kv_len, int heads, int head_dim, double scale, double weight_scale,
                      T* out) override {
    Op op(*this);
    inner_->indexer_scores(q, k, weights, positions, n, kv_len, heads, head_dim, scale,
                           weight_scale, out);
  }
  void mix_streams(const T* x, const T* coefs, int n, int in_streams, int out_streams, int dim,
                   T* y) override {
    Op op(*this);
    inner_->mix_streams(x, coefs, n, in_streams, out_streams, dim, y);
  }
  void scale_columns(const T* x, const T* w, int n, int dim, T* y) override {
    Op op(*this);
    inner_->scale_columns(x, w, n, dim, y);
  }
  void rescale_rms(const T* x, const T* ref, int n, int dim, double floor, T* y) override {
    Op op(*this);
    inner_->rescale_rms(x, ref, n, dim, floor, y);
  }
  void gaussian_topk(T* x, int n, int dim, double std_multiplier) override {
    Op op(*this);
    inner_->gaussian_topk(x, n, dim, std_multiplier);
  }
  void softmax_pool(const T* kv, const T* gate, int n, int slots, int dim, T* out) override {
    Op op(*this);
    inner_->softmax_pool(kv, gate, n, slots, dim, out);
  }
  bool attention(const T* q, const T* k, const T* v, const int* positions, const T* sinks,
                 const AttentionParams& params, T* out) override {
    Op op(*this);
    return inner_->attention(q, k, v, positions, sinks, params, out);
  }
  bool gated_mlp(const T* x, const T* gate, const T* up, const T* down, int n, int hidden,
                 int inter, GatedActivation act, T* out) override {
    Op op(*this);
    return inner_->gated_mlp(x, gate, up, down, n, hidden, inter, act, out);
  }
  void hold_matrix(const T* w, int k, int m, MatrixRole role) override {
    Op op(*this);
    inner_->hold_matrix(w, k, m, role);
  }
  void release_matrix(const T* w) override {
    Op op(*this);
    inner_->release_matrix(w);
  }
  void cache_written(const T* cache, int64_t capacity, int64_t first, int64_t count) override {
    flush_cache_writes();
    Op op(*this);
    inner_->cache_written(cache, capacity, first, count);
  }
  void release_cache(const T* cache) override {
    flush_cache_writes();
    inner_->release_cache(cache);
  }
  void write_cache(T* cache, int64_t capacity, int64_t first, const T* src,
                   int64_t count) override {
    const T* own = find(src, count);
    if (own == nullptr) return Backend<T>::write_cache(cache, capacity, first, src, count);
    lagging_.push_back({cache + first, std::vector<T>(own, own + count)});
    std::fill(cache + first, cache + first + count, kPoison);
    Op op(*this);
    inner_->cache_written(cache, capacity, first, count);
  }
  void round_next(const T* values, int64_t n, DType storage) override {
    announced_ = {values, n, storage};
    rounded_ = {};
  }
  void round_stored(T* values, int64_t n, DType storage) override {
    const Announced done = rounded_;
    rounded_ = {};
    announced_ = {};
    if (done.values != nullptr && done.values == values && done.n == n && done.storage == storage)
      return;
    Op op(*this);
    inner_->round_stored(values, n, storage);
  }

 private:
  static constexpr T kPoison = std::numeric_limits<T>::quiet_NaN();

  struct Announced {
    const T* values = nullptr;
    int64_t n = 0;
    DType storage = DType::f32;
  };

  // One call: the held arrays' values on the host for the op, then taken back.
  class Op {
   public:
    explicit Op(ResidentBackend& b) : b_(b) {
      for (auto& [a, own] : b_.arrays_) std::copy(own.begin(), own.end(), const_cast<T*>(a));
      for (auto& [cache, values] : b_.lagging_) std::copy(values.begin(), values.end(), cache);
    }
    ~Op() {
      if (b_.announced_.values != nullptr) {
        const Announced a = b_.announced_;
        b_.announced_ = {};
        b_.inner_->round_stored(const_cast<T*>(a.values), a.n, a.storage);
        b_.rounded_ = a;
      }
      for (auto& [a, own] : b_.arrays_) {
        T* host = const_cast<T*>(a);
        std::copy(host, host + own.size(), own.begin());
        std::fill(host, host + own.size(), kPoison);
      }
      for (auto& [cache, values] : b_.lagging_)
        std::fill(cache, cache + values.size(), kPoison);
    }

   private:
    ResidentBackend& b_;
  };

  // The backend's copy of p[0, count) when p is in a held array, or null.
  T* find(const T* p, int64_t count) {
    auto it = arrays_.upper_bound(p);
    if (it == arrays_.begin()) return nullptr;
    --it;
    const int64_t offset = p - it->first, size = static_cast<int64_t>(it->second.size());
    if (offset >= size) return nullptr;
    EXPECT_LE(offset + count, size) << "a range past a held array's end";
    return it->second.data() + offset;
  }

  // The lagging cache writes' values reach the host's cache, in the order written.
  void flush_cache_writes() {
    for (auto& [cache, values] : lagging_) std::copy(values.begin(), values.end(), cache);
    lagging_.clear();
  }

  std::unique_ptr<Backend<T>> inner_;
  std::map<const T*, std::vector<T>> arrays_;
  std::vector<std::pair<T*, std::vector<T>>> lagging_;  // write_cache's, not yet on the host
  Announced announced_;  // by round_next, for the op that comes next
  Announced rounded_;    // by that op, for the round_stored call that follows it
  int holds_ = 0;
};

// Every tap of one forward pass over `tokens` from a fresh cache, by name.
template <class T>
std::map<std::string, std::vector<T>> taps_of(Model<T>& model, const ModelConfig& c,
                                              const std::vector<int>& tokens) {
  std::map<std::string, std::vector<T>> taps;
  KVCache<T> cache(c, static_cast<int>(tokens.size()));
  model.forward(tokens, cache, [&](const std::string& name, const Shape& shape, const T* data) {
    taps[name].assign(data, data + element_count(shape));
  });
  return taps;
}

// Generates `prompts` and taps one forward pass over the first, on `plain` and on `resident`
// (a backend with a ResidentBackend, `counts`, over the same kernels), and expects the same
// bits, and nothing held once the models are gone. Returns how many arrays the model held.
template <class T>
int generate_with_activations_held(const ModelConfig& c, Backend<T>& plain, Backend<T>& resident,
                                   const ResidentBackend<T>& counts,
                                   const std::vector<std::vector<int>>& prompts,
                                   const GenerateOptions& options, const std::string& name) {
  const Weights w = synthetic_weights(c);
  Model<T> reference(c, w, plain);
  const std::vector<SequenceOutput> expected = generate(reference, prompts, options);
  const auto expected_taps = taps_of(reference, c, prompts[0]);
  {
    Model<T> model(c, w, resident);
    const std::vector<SequenceOutput> got = generate(model, prompts, options);
    EXPECT_EQ(got.size(), expected.size()) << name;
    for (size_t s = 0; s < got.size() && s < expected.size(); ++s) {
      EXPECT_EQ(got[s].logits, expected[s].logits) << name << ", sequence " << s;
      EXPECT_EQ(got[s].generated, expected[s].generated) << name << ", sequence " << s;
    }
    const auto taps = taps_of(model, c, prompts[0]);
    EXPECT_EQ(taps.size(), expected_taps.size()) << name;
    for (const auto& [tap, values] : expected_taps) {
      const auto it = taps.find(tap);
      if (it == taps.end()) {
        ADD_FAILURE() << name << ": no tap " << tap;
        continue;
      }
      // memcmp, not ==: NaN would compare unequal even where both had it.
      EXPECT_TRUE(it->second.size() == values.size() &&
                  std::memcmp(it->second.data(), values.data(), values.size() * sizeof(T)) == 0)
          << name << ": tap " << tap;
    }
  }
  EXPECT_EQ(counts.held(), 0u) << name << ": arrays held after the forward passes";
  return counts.holds();
}

}  // namespace pinmark::test
