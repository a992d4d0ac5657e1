// A Llama-family decoder: embedding, N x (RMSNorm, attention with RoPE and a KV cache,
// residual, RMSNorm, SwiGLU MLP, residual), final RMSNorm, LM head (tied or not).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/model_config.h"
#include "runtime/tensor.h"
#include "runtime/weights.h"

namespace pinmark {

// A named intermediate tensor seen during a forward pass. Names: "embed",
// "layers.N.attn_norm", "layers.N.q", "layers.N.k", "layers.N.v" (q and k after RoPE),
// "layers.N.scores" (attention probabilities after softmax), "layers.N.attn_out" (after the
// output projection), "layers.N.mlp_out" (after down_proj), "final_norm", "logits".
template <class T>
using TapFn = std::function<void(const std::string& name, const Shape& shape, const T* data)>;

template <class T>
class KVCache {
 public:
  KVCache(const ModelConfig& config, int capacity);
  int length() const { return length_; }
  int capacity() const { return capacity_; }
  T* keys(int layer) { return k_[layer].data(); }    // [capacity, kv_heads, head_dim]
  T* values(int layer) { return v_[layer].data(); }  // [capacity, kv_heads, head_dim]
  void advance(int n) { length_ += n; }

 private:
  int capacity_;
  int length_ = 0;
  std::vector<std::vector<T>> k_, v_;
};

template <class T>
class Model {
 public:
  // Converts the weights to T once. Throws std::runtime_error naming a missing tensor or a
  // shape that disagrees with the config.
  Model(const ModelConfig& config, const Weights& weights, Backend<T>& backend);

  const ModelConfig& config() const { return config_; }

  // Runs `tokens` at positions cache.length() ... and appends their keys and values to the
  // cache. Returns logits [tokens.size(), vocab_size]. Throws std::runtime_error when a token
  // is outside the vocabulary or the cache would overflow.
  Tensor<T> forward(const std::vector<int>& tokens, KVCache<T>& cache, const TapFn<T>& tap = {});

 private:
  struct Layer {
    std::vector<T> attn_norm, q, k, v, o, mlp_norm, gate, up, down;
  };
  ModelConfig config_;
  Backend<T>& backend_;
  std::vector<T> embed_, final_norm_, lm_head_;  // lm_head_ empty when tied
  std::vector<Layer> layers_;
};

}  // namespace pinmark
