#include "runtime/rounding_backend.h"

namespace pinmark {
namespace {

class RoundingBackend final : public Backend<float> {
 public:
  RoundingBackend(std::unique_ptr<Backend<float>> inner, DType storage)
      : inner_(std::move(inner)), storage_(storage) {}

  void embed(const float* table, const int* tokens, int n, int dim, float* out) override {
    inner_->embed(table, tokens, n, dim, out);
    round(out, int64_t{n} * dim);
  }
  // matmul hands the weights on unchanged, so the inner backend may keep them.
  void hold_matrix(const float* w, int k, int m, MatrixRole role) override {
    inner_->hold_matrix(w, k, m, role);
  }
  void release_matrix(const float* w) override { inner_->release_matrix(w); }

  void matmul(const float* x, const float* w, int n, int k, int m, float* y) override {
    inner_->matmul(x, w, n, k, m, y);
    round(y, int64_t{n} * m);
  }
  void rmsnorm(const float* x, const float* w, int n, int dim, double eps, float* y) override {
    inner_->rmsnorm(x, w, n, dim, eps, y);
    round(y, int64_t{n} * dim);
  }
  void rope(float* x, const int* positions, int n, int heads, int head_dim, double theta) override {
    inner_->rope(x, positions, n, heads, head_dim, theta);
    round(x, int64_t{n} * heads * head_dim);
  }
  void attention_scores(const float* q, const float* k, const int* positions, int n, int kv_len,
                        int heads, int kv_heads, int head_dim, double scale,
                        float* scores) override {
    inner_->attention_scores(q, k, positions, n, kv_len, heads, kv_heads, head_dim, scale, scores);
  }
  void softmax(float* x, int rows, int len) override {
    inner_->softmax(x, rows, len);
    round(x, int64_t{rows} * len);
  }
  void attention_values(const float* probs, const float* v, int n, int kv_len, int heads,
                        int kv_heads, int head_dim, float* out) override {
    inner_->attention_values(probs, v, n, kv_len, heads, kv_heads, head_dim, out);
    round(out, int64_t{n} * heads * head_dim);
  }
  // A fused kernel stores only its output; without one, the op-by-op path rounds as above.
  bool attention(const float* q, const float* k, const float* v, const int* positions,
                 const float* sinks, const AttentionParams& a, float* out) override {
    if (!inner_->attention(q, k, v, positions, sinks, a, out)) return false;
    round(out, int64_t{a.n} * a.heads * a.head_dim);
    return true;
  }
  bool gated_mlp(const float* x, const float* gate, const float* up, const float* down, int n,
                 int hidden, int inter, GatedActivation act, float* out) override {
    if (!inner_->gated_mlp(x, gate, up, down, n, hidden, inter, act, out)) return false;
    round(out, int64_t{n} * hidden);
    return true;
  }
  void causal_conv1d_silu(const float* x, const float* w, int n, int channels, int kernel,
                          float* out) override {
    inner_->causal_conv1d_silu(x, w, n, channels, kernel, out);
    round(out, int64_t{n} * channels);
  }
  // The recurrent state stays fp32, as fused kernels keep it; only the output is stored.
  void gated_delta_rule(const float* qkv, const float* a, const float* b, const float* A_log,
                        const float* dt_bias, const GatedDeltaParams& p, float* state,
                        float* out) override {
    inner_->gated_delta_rule(qkv, a, b, A_log, dt_bias, p, state, out);
    round(out, int64_t{p.n} * p.v_heads * p.v_dim);
  }
  void rmsnorm_gated(const float* x, const float* w, const float* gate, int n, int dim,
                     double eps, float* y) override {
    inner_->rmsnorm_gated(x, w, gate, n, dim, eps, y);
    round(y, int64_t{n} * dim);
  }
  void sigmoid_gate(const float* x, const float* gate, int64_t n, float* out) override {
    inner_->sigmoid_gate(x, gate, n, out);
    round(out, n);
  }
  void swiglu(const float* gate, const float* up, int64_t n, float* out) override {
    inner_->swiglu(gate, up, n, out);
    round(out, n);
  }
  void clamped_swiglu(const float* gate, const float* up, int64_t n, double alpha, double limit,
                      float* out) override {
    inner_->clamped_swiglu(gate, up, n, alpha, limit, out);
    round(out, n);
  }
  void add(float* y, const float* x, int64_t n) override {
    inner_->add(y, x, n);
    round(y, n);
  }
  void matmul_bias(const float* x, const float* w, const float* b, int n, int k, int m,
                   float* y) override {
    inner_->matmul_bias(x, w, b, n, k, m, y);
    round(y, int64_t{n} * m);
  }
  void rmsnorm_plus_one(const float* x, const float* w, int n, int dim, double eps,
                        float* y) override {
    inner_->rmsnorm_plus_one(x, w, n, dim, eps, y);
    round(y, int64_t{n} * dim);
  }
  void layernorm(const float* x, const float* w, const float* b, int n, int dim, double eps,
                 float* y) override {
    inner_->layernorm(x, w, b, n, dim, eps, y);
    round(y, int64_t{n} * dim);
  }
  void rope_freqs(float* x, const int* positions, int n, int heads, int head_dim,
                  const double* inv_freq, double attention_scaling) override {
    inner_->rope_freqs(x, positions, n, heads, head_dim, inv_freq, attention_scaling);
    round(x, int64_t{n} * heads * head_dim);
  }
  // Part of the fused attention kernel, like the scores themselves: kept in fp32.
  void score_mod(float* scores, const int* positions, int n, int kv_len, int heads,
                 double softcap, int window) override {
    inner_->score_mod(scores, positions, n, kv_len, heads, softcap, window);
  }
  void softcap(float* x, int64_t n, double cap) override {
    inner_->softcap(x, n, cap);
    round(x, n);
  }
  void scale(float* x, int64_t n, double scale) override {
    inner_->scale(x, n, round_to(storage_, static_cast<float>(scale)));
    round(x, n);
  }
  void gelu(const float* x, int64_t n, bool tanh, float* out) override {
    inner_->gelu(x, n, tanh, out);
    round(out, n);
  }
  void geglu(const float* gate, const float* up, int64_t n, bool tanh, float* out) override {
    inner_->geglu(gate, up, n, tanh, out);
    round(out, n);
  }
  // Hugging Face routes in fp32 whatever the model's dtype: probabilities and weights stay fp32.
  void moe_route(const float* logits, int n, int experts, int top_k, float* probs, int* ids,
                 float* weights) override {
    inner_->moe_route(logits, n, experts, top_k, probs, ids, weights);
  }
  void moe_combine(float* y, const float* x, const int* rows, const float* weights, int m,
                   int dim) override {
    inner_->moe_combine(y, x, rows, weights, m, dim);
    for (int r = 0; r < m; ++r) round(y + static_cast<int64_t>(rows[r]) * dim, dim);
  }

 private:
  void round(float* values, int64_t n) const {
    for (int64_t i = 0; i < n; ++i) values[i] = round_to(storage_, values[i]);
  }

  std::unique_ptr<Backend<float>> inner_;
  DType storage_;
};

}  // namespace

std::unique_ptr<Backend<float>> make_rounding_backend(std::unique_ptr<Backend<float>> inner,
                                                      DType storage) {
  return std::make_unique<RoundingBackend>(std::move(inner), storage);
}

}  // namespace pinmark
