// A whole-sequence Llama forward pass in fp64 built from the reference kernels: no KV cache,
// no backend, weights read straight from the map by name. The model's logits must match it.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "reference.h"
#include "runtime/model_config.h"
#include "runtime/weights.h"

namespace pinmark::ref {

// Logits [tokens.size(), vocab] for tokens at positions 0, 1, ...
inline Vec llama_logits(const ModelConfig& config, const Weights& weights,
                        const std::vector<int>& tokens) {
  const int n = static_cast<int>(tokens.size());
  const int hidden = config.hidden_size, inter = config.intermediate_size;
  const int heads = config.num_attention_heads;
  const int kv_heads = config.num_key_value_heads ? config.num_key_value_heads : heads;
  const int hd = config.head_dim ? config.head_dim : hidden / heads;
  const double eps = config.rms_norm_eps;
  auto w = [&](const std::string& name) -> const Vec& { return weights.at(name).data; };

  std::vector<int> positions(n);
  for (int i = 0; i < n; ++i) positions[i] = i;

  Vec x = embed(w("model.embed_tokens.weight"), tokens, hidden);
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Vec h = rmsnorm(x, w(p + "input_layernorm.weight"), n, hidden, eps);
    Vec q = rope(matmul(h, w(p + "self_attn.q_proj.weight"), n, hidden, heads * hd), positions,
                 heads, hd, config.rope_theta);
    Vec k = rope(matmul(h, w(p + "self_attn.k_proj.weight"), n, hidden, kv_heads * hd), positions,
                 kv_heads, hd, config.rope_theta);
    Vec v = matmul(h, w(p + "self_attn.v_proj.weight"), n, hidden, kv_heads * hd);
    Vec probs = softmax(
        attention_scores(q, k, positions, n, heads, kv_heads, hd, 1 / std::sqrt(hd)), heads * n, n);
    Vec att = attention_values(probs, v, n, n, heads, kv_heads, hd);
    x = add(x, matmul(att, w(p + "self_attn.o_proj.weight"), n, heads * hd, hidden));
    Vec h2 = rmsnorm(x, w(p + "post_attention_layernorm.weight"), n, hidden, eps);
    Vec act = swiglu(matmul(h2, w(p + "mlp.gate_proj.weight"), n, hidden, inter),
                     matmul(h2, w(p + "mlp.up_proj.weight"), n, hidden, inter));
    x = add(x, matmul(act, w(p + "mlp.down_proj.weight"), n, inter, hidden));
  }
  Vec h = rmsnorm(x, w("model.norm.weight"), n, hidden, eps);
  const char* head = config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  return matmul(h, w(head), n, hidden, config.vocab_size);
}

}  // namespace pinmark::ref
