// The forward pass as a flat sequence of backend calls, in the order of Hugging Face's
// LlamaForCausalLM. This file does bookkeeping only (buffers, offsets, the cache); every
// number is computed by the backend, so a test can swap in a broken backend and watch the
// model's output change.
#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace pinmark {

namespace {

template <class T>
std::vector<T> load(const Weights& weights, const std::string& name, const Shape& shape) {
  const Tensor<double>& t = require(weights, name, shape);
  return std::vector<T>(t.data.begin(), t.data.end());
}

ModelConfig checked(const ModelConfig& config) {
  std::vector<ConfigProblem> problems = validate(config);
  if (!problems.empty()) {
    std::string message = problems[0].message;
    for (size_t i = 1; i < problems.size(); ++i) message += "; " + problems[i].message;
    throw std::runtime_error(message);
  }
  return with_defaults(config);
}

}  // namespace

template <class T>
KVCache<T>::KVCache(const ModelConfig& config, int capacity) : capacity_(capacity) {
  if (capacity < 0)
    throw std::runtime_error("KV cache capacity must not be negative, got " +
                             std::to_string(capacity));
  const ModelConfig c = with_defaults(config);
  const size_t per_layer = static_cast<size_t>(capacity) * c.num_key_value_heads * c.head_dim;
  k_.assign(c.num_hidden_layers, std::vector<T>(per_layer));
  v_.assign(c.num_hidden_layers, std::vector<T>(per_layer));
}

template <class T>
Model<T>::Model(const ModelConfig& config, const Weights& weights, Backend<T>& backend)
    : config_(checked(config)), backend_(backend) {
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int64_t q_dim = int64_t{c.num_attention_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.num_key_value_heads} * c.head_dim;

  embed_ = load<T>(weights, "model.embed_tokens.weight", {vocab, hidden});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Layer l;
    l.attn_norm = load<T>(weights, p + "input_layernorm.weight", {hidden});
    l.q = load<T>(weights, p + "self_attn.q_proj.weight", {q_dim, hidden});
    l.k = load<T>(weights, p + "self_attn.k_proj.weight", {kv_dim, hidden});
    l.v = load<T>(weights, p + "self_attn.v_proj.weight", {kv_dim, hidden});
    l.o = load<T>(weights, p + "self_attn.o_proj.weight", {hidden, q_dim});
    l.mlp_norm = load<T>(weights, p + "post_attention_layernorm.weight", {hidden});
    l.gate = load<T>(weights, p + "mlp.gate_proj.weight", {inter, hidden});
    l.up = load<T>(weights, p + "mlp.up_proj.weight", {inter, hidden});
    l.down = load<T>(weights, p + "mlp.down_proj.weight", {hidden, inter});
    layers_.push_back(std::move(l));
  }
  final_norm_ = load<T>(weights, "model.norm.weight", {hidden});
  if (!c.tie_word_embeddings) lm_head_ = load<T>(weights, "lm_head.weight", {vocab, hidden});
}

template <class T>
Tensor<T> Model<T>::forward(const std::vector<int>& tokens, KVCache<T>& cache,
                            const TapFn<T>& tap) {
  const ModelConfig& c = config_;
  const int n = static_cast<int>(tokens.size());
  if (n == 0) throw std::runtime_error("empty prompt");
  for (int t : tokens)
    if (t < 0 || t >= c.vocab_size)
      throw std::runtime_error("token id " + std::to_string(t) +
                               " is outside the vocabulary (vocab_size " +
                               std::to_string(c.vocab_size) + ")");
  const int p0 = cache.length();
  if (n > cache.capacity() - p0)
    throw std::runtime_error("KV cache overflow: " + std::to_string(p0) + " cached + " +
                             std::to_string(n) + " new tokens exceed its capacity of " +
                             std::to_string(cache.capacity()));

  const int hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int heads = c.num_attention_heads, kv_heads = c.num_key_value_heads, hd = c.head_dim;
  const int kv_len = p0 + n;
  const int64_t nh = int64_t{n} * hidden;
  const int64_t kv_row = int64_t{kv_heads} * hd;  // one position's keys (or values)
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  auto emit = [&](const std::string& name, const Shape& shape, const T* data) {
    if (tap) tap(name, shape, data);
  };

  std::vector<int> positions(n);
  for (int i = 0; i < n; ++i) positions[i] = p0 + i;

  std::vector<T> x(nh), h(nh), attn_out(nh), mlp_out(nh);
  std::vector<T> q(int64_t{n} * heads * hd), k(n * kv_row), v(n * kv_row);
  std::vector<T> scores(int64_t{heads} * n * kv_len), att(int64_t{n} * heads * hd);
  std::vector<T> gate(int64_t{n} * inter), up(int64_t{n} * inter), act(int64_t{n} * inter);

  backend_.embed(embed_.data(), tokens.data(), n, hidden, x.data());
  emit("embed", {n, hidden}, x.data());

  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const Layer& L = layers_[l];
    const std::string p = "layers." + std::to_string(l) + ".";

    backend_.rmsnorm(x.data(), L.attn_norm.data(), n, hidden, c.rms_norm_eps, h.data());
    emit(p + "attn_norm", {n, hidden}, h.data());

    backend_.matmul(h.data(), L.q.data(), n, hidden, heads * hd, q.data());
    backend_.matmul(h.data(), L.k.data(), n, hidden, kv_heads * hd, k.data());
    backend_.matmul(h.data(), L.v.data(), n, hidden, kv_heads * hd, v.data());
    backend_.rope(q.data(), positions.data(), n, heads, hd, c.rope_theta);
    backend_.rope(k.data(), positions.data(), n, kv_heads, hd, c.rope_theta);
    emit(p + "q", {n, heads, hd}, q.data());
    emit(p + "k", {n, kv_heads, hd}, k.data());
    emit(p + "v", {n, kv_heads, hd}, v.data());

    std::copy(k.begin(), k.end(), cache.keys(l) + p0 * kv_row);
    std::copy(v.begin(), v.end(), cache.values(l) + p0 * kv_row);

    backend_.attention_scores(q.data(), cache.keys(l), positions.data(), n, kv_len, heads, kv_heads,
                              hd, scale, scores.data());
    backend_.softmax(scores.data(), heads * n, kv_len);
    emit(p + "scores", {heads, n, kv_len}, scores.data());
    backend_.attention_values(scores.data(), cache.values(l), n, kv_len, heads, kv_heads, hd,
                              att.data());
    backend_.matmul(att.data(), L.o.data(), n, heads * hd, hidden, attn_out.data());
    emit(p + "attn_out", {n, hidden}, attn_out.data());
    backend_.add(x.data(), attn_out.data(), nh);

    backend_.rmsnorm(x.data(), L.mlp_norm.data(), n, hidden, c.rms_norm_eps, h.data());
    backend_.matmul(h.data(), L.gate.data(), n, hidden, inter, gate.data());
    backend_.matmul(h.data(), L.up.data(), n, hidden, inter, up.data());
    backend_.swiglu(gate.data(), up.data(), int64_t{n} * inter, act.data());
    backend_.matmul(act.data(), L.down.data(), n, inter, hidden, mlp_out.data());
    emit(p + "mlp_out", {n, hidden}, mlp_out.data());
    backend_.add(x.data(), mlp_out.data(), nh);
  }
  cache.advance(n);

  backend_.rmsnorm(x.data(), final_norm_.data(), n, hidden, c.rms_norm_eps, h.data());
  emit("final_norm", {n, hidden}, h.data());

  Tensor<T> logits({n, vocab});
  const std::vector<T>& head = c.tie_word_embeddings ? embed_ : lm_head_;
  backend_.matmul(h.data(), head.data(), n, hidden, vocab, logits.data.data());
  emit("logits", logits.shape, logits.data.data());
  return logits;
}

template class KVCache<double>;
template class KVCache<float>;
template class Model<double>;
template class Model<float>;

}  // namespace pinmark
