// A backend that computes through another backend and then does something to each result on
// its way to memory: rounds it to a narrower type (rounding_backend.h) or perturbs it by a
// rounding-sized random amount (perturbing_backend.h). Every op's result passes through
// exactly one of the two hooks below, so the place where a target stores, and the place where
// a fused kernel keeps a value in its accumulator instead, are written down once, here; they
// are listed in docs/numerics.md ("Rounding points").
#pragma once

#include <cstdint>
#include <memory>

#include "runtime/backend.h"

namespace pinmark {

template <class T>
class StoringBackend : public Backend<T> {
 public:
  explicit StoringBackend(std::unique_ptr<Backend<T>> inner) : inner_(std::move(inner)) {}

  void embed(const T* table, const int* tokens, int n, int dim, T* out) override;
  void matmul(const T* x, const T* w, int n, int k, int m, T* y) override;
  void rmsnorm(const T* x, const T* w, int n, int dim, double eps, T* y) override;
  void rope(T* x, const int* positions, int n, int heads, int head_dim, double theta) override;
  void attention_scores(const T* q, const T* k, const int* positions, int n, int kv_len,
                        int heads, int kv_heads, int head_dim, double scale, T* scores) override;
  void softmax(T* x, int rows, int len) override;
  void attention_values(const T* probs, const T* v, int n, int kv_len, int heads, int kv_heads,
                        int head_dim, T* out) override;
  bool attention(const T* q, const T* k, const T* v, const int* positions, const T* sinks,
                 const AttentionParams& a, T* out) override;
  bool gated_mlp(const T* x, const T* gate, const T* up, const T* down, int n, int hidden,
                 int inter, GatedActivation act, T* out) override;
  void causal_conv1d_silu(const T* x, const T* w, int n, int channels, int kernel,
                          T* out) override;
  void gated_delta_rule(const T* qkv, const T* a, const T* b, const T* A_log, const T* dt_bias,
                        const GatedDeltaParams& p, T* state, T* out) override;
  void rmsnorm_gated(const T* x, const T* w, const T* gate, int n, int dim, double eps,
                     T* y) override;
  void sigmoid_gate(const T* x, const T* gate, int64_t n, T* out) override;
  void mix_streams(const T* x, const T* coefs, int n, int in_streams, int out_streams, int dim,
                   T* y) override;
  void scale_columns(const T* x, const T* w, int n, int dim, T* y) override;
  void softmax_pool(const T* kv, const T* gate, int n, int slots, int dim, T* out) override;
  void rescale_rms(const T* x, const T* ref, int n, int dim, double floor, T* y) override;
  void gaussian_topk(T* x, int n, int dim, double std_multiplier) override;
  void indexer_scores(const T* q, const T* k, const T* weights, const int* positions, int n,
                      int kv_len, int heads, int head_dim, double scale, double weight_scale,
                      T* out) override;
  void swiglu(const T* gate, const T* up, int64_t n, T* out) override;
  void clamped_swiglu(const T* gate, const T* up, int64_t n, double alpha, double limit,
                      T* out) override;
  void add(T* y, const T* x, int64_t n) override;
  void matmul_bias(const T* x, const T* w, const T* b, int n, int k, int m, T* y) override;
  void rmsnorm_plus_one(const T* x, const T* w, int n, int dim, double eps, T* y) override;
  void layernorm(const T* x, const T* w, const T* b, int n, int dim, double eps,
                 T* y) override;
  void rope_freqs(T* x, const int* positions, int n, int heads, int head_dim,
                  const double* inv_freq, double attention_scaling) override;
  void score_mod(T* scores, const int* positions, int n, int kv_len, int heads, double softcap,
                 int window) override;
  void softcap(T* x, int64_t n, double cap) override;
  void scale(T* x, int64_t n, double scale) override;
  void gelu(const T* x, int64_t n, bool tanh, T* out) override;
  void geglu(const T* gate, const T* up, int64_t n, bool tanh, T* out) override;
  void moe_route(const T* logits, int n, int experts, int top_k, T* probs, int* ids,
                 T* weights) override;
  void moe_combine(T* y, const T* x, const int* rows, const T* weights, int m,
                   int dim) override;
  // matmul hands the weights on unchanged, so the inner backend may keep them.
  void hold_matrix(const T* w, int k, int m, MatrixRole role) override;
  void release_matrix(const T* w) override;
  // The cache holds what the model stored (already in the storage type): announced as it is.
  void cache_written(const T* cache, int64_t capacity, int64_t first, int64_t count) override;
  void release_cache(const T* cache) override;
  // Activations are not announced to the inner backend: the hooks below work on the host's
  // copy, so every op's result must arrive there (a subclass whose hooks do not, such as the
  // rounding backend, hands them on). Nor is write_cache: its default copies on the host and
  // announces the write through cache_written above.

 protected:
  Backend<T>& inner() { return *inner_; }
  // values[n], each the result of a sum of `reduction` products (1 for an elementwise op),
  // stored to memory in the target's storage type.
  virtual void store(T* values, int64_t n, int reduction) = 0;
  // Called just before the op whose result values[n] then goes to store() (every store but
  // moe_combine's, whose rows are stored one by one): where the rounding layer tells the inner
  // backend what it will round (Backend::round_next).
  virtual void will_store(const T* values, int64_t n) { (void)values, (void)n; }
  // values[n] kept in the accumulation type, as a fused attention kernel keeps its scores
  // and a router its probabilities (Hugging Face routes in fp32 whatever the model's dtype).
  virtual void keep(T* values, int64_t n, int reduction) { (void)values, (void)n, (void)reduction; }
  // A scalar operand (scale's factor), as the target holds it.
  virtual double stored_scalar(double s) { return s; }

 private:
  std::unique_ptr<Backend<T>> inner_;
};

extern template class StoringBackend<float>;
extern template class StoringBackend<double>;

}  // namespace pinmark
