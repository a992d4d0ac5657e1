#include "runtime/storing_backend.h"

#include <algorithm>

namespace pinmark {

template <class T>
void StoringBackend<T>::embed(const T* table, const int* tokens, int n, int dim, T* out) {
  will_store(out, int64_t{n} * dim);
  inner_->embed(table, tokens, n, dim, out);
  store(out, int64_t{n} * dim, 1);
}
template <class T>
void StoringBackend<T>::hold_matrix(const T* w, int k, int m, MatrixRole role) {
  inner_->hold_matrix(w, k, m, role);
}
template <class T>
void StoringBackend<T>::release_matrix(const T* w) {
  inner_->release_matrix(w);
}
template <class T>
void StoringBackend<T>::cache_written(const T* cache, int64_t capacity, int64_t first,
                                      int64_t count) {
  inner_->cache_written(cache, capacity, first, count);
}
template <class T>
void StoringBackend<T>::release_cache(const T* cache) {
  inner_->release_cache(cache);
}
template <class T>
void StoringBackend<T>::matmul(const T* x, const T* w, int n, int k, int m, T* y) {
  will_store(y, int64_t{n} * m);
  inner_->matmul(x, w, n, k, m, y);
  store(y, int64_t{n} * m, k);
}
template <class T>
void StoringBackend<T>::rmsnorm(const T* x, const T* w, int n, int dim, double eps, T* y) {
  will_store(y, int64_t{n} * dim);
  inner_->rmsnorm(x, w, n, dim, eps, y);
  store(y, int64_t{n} * dim, dim);
}
template <class T>
void StoringBackend<T>::rope(T* x, const int* positions, int n, int heads, int head_dim,
                             double theta) {
  will_store(x, int64_t{n} * heads * head_dim);
  inner_->rope(x, positions, n, heads, head_dim, theta);
  store(x, int64_t{n} * heads * head_dim, 2);
}
// The scores and score_mod are part of a fused attention kernel: never stored.
template <class T>
void StoringBackend<T>::attention_scores(const T* q, const T* k, const int* positions, int n,
                                         int kv_len, int heads, int kv_heads, int head_dim,
                                         double scale, T* scores) {
  inner_->attention_scores(q, k, positions, n, kv_len, heads, kv_heads, head_dim, scale, scores);
  keep(scores, int64_t{heads} * n * kv_len, head_dim);
}
template <class T>
void StoringBackend<T>::score_mod(T* scores, const int* positions, int n, int kv_len, int heads,
                                  double softcap, int window) {
  inner_->score_mod(scores, positions, n, kv_len, heads, softcap, window);
  if (softcap > 0) keep(scores, int64_t{heads} * n * kv_len, 1);
}
template <class T>
void StoringBackend<T>::softmax(T* x, int rows, int len) {
  will_store(x, int64_t{rows} * len);
  inner_->softmax(x, rows, len);
  store(x, int64_t{rows} * len, len);
}
template <class T>
void StoringBackend<T>::attention_values(const T* probs, const T* v, int n, int kv_len,
                                         int heads, int kv_heads, int head_dim, T* out) {
  will_store(out, int64_t{n} * heads * head_dim);
  inner_->attention_values(probs, v, n, kv_len, heads, kv_heads, head_dim, out);
  store(out, int64_t{n} * heads * head_dim, kv_len);
}
// A fused kernel stores only its output; without one, the op-by-op path stores as above.
template <class T>
bool StoringBackend<T>::attention(const T* q, const T* k, const T* v, const int* positions,
                                  const T* sinks, const AttentionParams& a, T* out) {
  if (!inner_->attention(q, k, v, positions, sinks, a, out)) return false;
  store(out, int64_t{a.n} * a.heads * a.head_dim, std::max(a.head_dim, a.kv_len));
  return true;
}
template <class T>
bool StoringBackend<T>::gated_mlp(const T* x, const T* gate, const T* up, const T* down, int n,
                                  int hidden, int inter, GatedActivation act, T* out) {
  if (!inner_->gated_mlp(x, gate, up, down, n, hidden, inter, act, out)) return false;
  store(out, int64_t{n} * hidden, std::max(hidden, inter));
  return true;
}
template <class T>
void StoringBackend<T>::causal_conv1d_silu(const T* x, const T* w, int n, int channels,
                                           int kernel, T* out) {
  will_store(out, int64_t{n} * channels);
  inner_->causal_conv1d_silu(x, w, n, channels, kernel, out);
  store(out, int64_t{n} * channels, kernel);
}
// The recurrent state stays in the arithmetic type, as fused kernels keep it; only the output
// is stored.
template <class T>
void StoringBackend<T>::gated_delta_rule(const T* qkv, const T* a, const T* b, const T* A_log,
                                         const T* dt_bias, const GatedDeltaParams& p, T* state,
                                         T* out) {
  will_store(out, int64_t{p.n} * p.v_heads * p.v_dim);
  inner_->gated_delta_rule(qkv, a, b, A_log, dt_bias, p, state, out);
  store(out, int64_t{p.n} * p.v_heads * p.v_dim, p.k_dim);
}
template <class T>
void StoringBackend<T>::rmsnorm_gated(const T* x, const T* w, const T* gate, int n, int dim,
                                      double eps, T* y) {
  will_store(y, int64_t{n} * dim);
  inner_->rmsnorm_gated(x, w, gate, n, dim, eps, y);
  store(y, int64_t{n} * dim, dim);
}
template <class T>
void StoringBackend<T>::sigmoid_gate(const T* x, const T* gate, int64_t n, T* out) {
  will_store(out, n);
  inner_->sigmoid_gate(x, gate, n, out);
  store(out, n, 1);
}
template <class T>
void StoringBackend<T>::indexer_scores(const T* q, const T* k, const T* weights,
                                       const int* positions, int n, int kv_len, int heads,
                                       int head_dim, double scale, double weight_scale, T* out) {
  inner_->indexer_scores(q, k, weights, positions, n, kv_len, heads, head_dim, scale,
                         weight_scale, out);
  // Each score a sum over the heads of dot products over head_dim, kept in fp32.
  keep(out, int64_t{n} * kv_len, heads * head_dim);
}
template <class T>
void StoringBackend<T>::mix_streams(const T* x, const T* coefs, int n, int in_streams,
                                    int out_streams, int dim, T* y) {
  will_store(y, int64_t{out_streams} * n * dim);
  inner_->mix_streams(x, coefs, n, in_streams, out_streams, dim, y);
  store(y, int64_t{out_streams} * n * dim, in_streams);
}
// One rounding of each pooled value (transformers' bf16 code also rounds the weights and the
// products before its sum: docs/numerics.md).
template <class T>
void StoringBackend<T>::softmax_pool(const T* kv, const T* gate, int n, int slots, int dim,
                                     T* out) {
  will_store(out, int64_t{n} * dim);
  inner_->softmax_pool(kv, gate, n, slots, dim, out);
  store(out, int64_t{n} * dim, slots);
}
template <class T>
void StoringBackend<T>::scale_columns(const T* x, const T* w, int n, int dim, T* y) {
  will_store(y, int64_t{n} * dim);
  inner_->scale_columns(x, w, n, dim, y);
  store(y, int64_t{n} * dim, 1);
}
template <class T>
void StoringBackend<T>::rescale_rms(const T* x, const T* ref, int n, int dim, double floor,
                                    T* y) {
  will_store(y, int64_t{n} * dim);
  inner_->rescale_rms(x, ref, n, dim, floor, y);
  store(y, int64_t{n} * dim, dim);
}
// transformers converts the quantile to the activations' dtype before using it.
template <class T>
void StoringBackend<T>::gaussian_topk(T* x, int n, int dim, double std_multiplier) {
  will_store(x, int64_t{n} * dim);
  inner_->gaussian_topk(x, n, dim, stored_scalar(std_multiplier));
  store(x, int64_t{n} * dim, dim);
}
template <class T>
void StoringBackend<T>::swiglu(const T* gate, const T* up, int64_t n, T* out) {
  will_store(out, n);
  inner_->swiglu(gate, up, n, out);
  store(out, n, 1);
}
template <class T>
void StoringBackend<T>::clamped_swiglu(const T* gate, const T* up, int64_t n, double alpha,
                                       double limit, T* out) {
  will_store(out, n);
  inner_->clamped_swiglu(gate, up, n, alpha, limit, out);
  store(out, n, 1);
}
template <class T>
void StoringBackend<T>::add(T* y, const T* x, int64_t n) {
  will_store(y, n);
  inner_->add(y, x, n);
  store(y, n, 1);
}
template <class T>
void StoringBackend<T>::matmul_bias(const T* x, const T* w, const T* b, int n, int k, int m,
                                    T* y) {
  will_store(y, int64_t{n} * m);
  inner_->matmul_bias(x, w, b, n, k, m, y);
  store(y, int64_t{n} * m, k);
}
template <class T>
void StoringBackend<T>::rmsnorm_plus_one(const T* x, const T* w, int n, int dim, double eps,
                                         T* y) {
  will_store(y, int64_t{n} * dim);
  inner_->rmsnorm_plus_one(x, w, n, dim, eps, y);
  store(y, int64_t{n} * dim, dim);
}
template <class T>
void StoringBackend<T>::layernorm(const T* x, const T* w, const T* b, int n, int dim,
                                  double eps, T* y) {
  will_store(y, int64_t{n} * dim);
  inner_->layernorm(x, w, b, n, dim, eps, y);
  store(y, int64_t{n} * dim, dim);
}
template <class T>
void StoringBackend<T>::rope_freqs(T* x, const int* positions, int n, int heads, int head_dim,
                                   const double* inv_freq, double attention_scaling) {
  will_store(x, int64_t{n} * heads * head_dim);
  inner_->rope_freqs(x, positions, n, heads, head_dim, inv_freq, attention_scaling);
  store(x, int64_t{n} * heads * head_dim, 2);
}
template <class T>
void StoringBackend<T>::softcap(T* x, int64_t n, double cap) {
  will_store(x, n);
  inner_->softcap(x, n, cap);
  store(x, n, 1);
}
template <class T>
void StoringBackend<T>::scale(T* x, int64_t n, double scale) {
  will_store(x, n);
  inner_->scale(x, n, stored_scalar(scale));
  store(x, n, 1);
}
template <class T>
void StoringBackend<T>::gelu(const T* x, int64_t n, bool tanh, T* out) {
  will_store(out, n);
  inner_->gelu(x, n, tanh, out);
  store(out, n, 1);
}
template <class T>
void StoringBackend<T>::geglu(const T* gate, const T* up, int64_t n, bool tanh, T* out) {
  will_store(out, n);
  inner_->geglu(gate, up, n, tanh, out);
  store(out, n, 1);
}
template <class T>
void StoringBackend<T>::moe_route(const T* logits, int n, int experts, int top_k, T* probs,
                                  int* ids, T* weights) {
  inner_->moe_route(logits, n, experts, top_k, probs, ids, weights);
  keep(probs, int64_t{n} * experts, experts);
  keep(weights, int64_t{n} * top_k, top_k);
}
template <class T>
void StoringBackend<T>::moe_combine(T* y, const T* x, const int* rows, const T* weights, int m,
                                    int dim) {
  inner_->moe_combine(y, x, rows, weights, m, dim);
  for (int r = 0; r < m; ++r) store(y + static_cast<int64_t>(rows[r]) * dim, dim, 1);
}

template class StoringBackend<float>;
template class StoringBackend<double>;

}  // namespace pinmark
