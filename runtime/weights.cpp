#include "runtime/weights.h"

#include <cmath>
#include <stdexcept>

#include "runtime/random.h"

namespace pinmark {

namespace {

void add_tensor(Weights& w, const ModelConfig& c, const std::string& name, Shape shape,
                double scale, double offset = 0.0) {
  std::vector<double> values =
      random_tensor(c.seed, name, static_cast<size_t>(element_count(shape)), scale, offset);
  w.emplace(name, Tensor<double>(std::move(shape), std::move(values)));
}

// Uniform in [-a, a) has standard deviation a / sqrt(3); a = sqrt(3 / fan_in) gives
// 1 / sqrt(fan_in), which keeps activations of order 1 through every layer.
void add_linear(Weights& w, const ModelConfig& c, const std::string& name, int64_t out,
                int64_t in) {
  add_tensor(w, c, name, {out, in}, std::sqrt(3.0 / static_cast<double>(in)));
}

// 1 + uniform(+-0.1): close to the identity, but a kernel that ignores the weight is visible.
void add_norm(Weights& w, const ModelConfig& c, const std::string& name, int64_t dim) {
  add_tensor(w, c, name, {dim}, 0.1, 1.0);
}

}  // namespace

Weights synthetic_weights(const ModelConfig& config) {
  const ModelConfig c = with_defaults(config);
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int64_t q_dim = int64_t{c.num_attention_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.num_key_value_heads} * c.head_dim;

  Weights w;
  add_tensor(w, c, "model.embed_tokens.weight", {vocab, hidden}, 1.0);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add_norm(w, c, p + "input_layernorm.weight", hidden);
    add_linear(w, c, p + "self_attn.q_proj.weight", q_dim, hidden);
    add_linear(w, c, p + "self_attn.k_proj.weight", kv_dim, hidden);
    add_linear(w, c, p + "self_attn.v_proj.weight", kv_dim, hidden);
    add_linear(w, c, p + "self_attn.o_proj.weight", hidden, q_dim);
    add_norm(w, c, p + "post_attention_layernorm.weight", hidden);
    add_linear(w, c, p + "mlp.gate_proj.weight", inter, hidden);
    add_linear(w, c, p + "mlp.up_proj.weight", inter, hidden);
    add_linear(w, c, p + "mlp.down_proj.weight", hidden, inter);
  }
  add_norm(w, c, "model.norm.weight", hidden);
  if (!c.tie_word_embeddings) add_linear(w, c, "lm_head.weight", vocab, hidden);
  return w;
}

const Tensor<double>& require(const Weights& weights, const std::string& name, const Shape& shape) {
  auto it = weights.find(name);
  if (it == weights.end()) throw std::runtime_error("missing tensor '" + name + "'");
  const Tensor<double>& t = it->second;
  if (t.shape != shape)
    throw std::runtime_error("tensor '" + name + "' has shape " + shape_string(t.shape) +
                             ", expected " + shape_string(shape));
  if (t.data.size() != static_cast<size_t>(element_count(shape)))
    throw std::runtime_error("tensor '" + name + "' has " + std::to_string(t.data.size()) +
                             " values, its shape " + shape_string(shape) + " needs " +
                             std::to_string(element_count(shape)));
  return t;
}

Weights rounded_weights(const Weights& weights, DType storage) {
  Weights out = weights;
  if (storage == DType::f64) return out;
  for (auto& [name, tensor] : out)
    for (double& v : tensor.data) v = round_to(storage, static_cast<float>(v));
  return out;
}

}  // namespace pinmark
