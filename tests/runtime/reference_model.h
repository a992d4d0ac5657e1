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

// DeepSeek-V3 from modeling_deepseek_v3.py, the whole sequence at once with keys and values
// expanded from the latent (no cache): MLA with q and kv low-rank projections (their norms at
// eps 1e-6), the rotary part regrouped (evens, odds) when interleaved, then the sigmoid router
// with correction bias and group-limited choice, the routed and the shared experts.
inline Vec deepseek_logits(const ModelConfig& c, const Weights& weights,
                           const std::vector<int>& tokens, std::vector<std::vector<int>>* chosen) {
  auto w = [&](const std::string& name) -> const Vec& { return weights.at(name).data; };
  const int n = static_cast<int>(tokens.size()), hidden = c.hidden_size, heads = c.num_attention_heads;
  const int nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, vd = c.v_head_dim, qk = nope + rope;
  const int rank = c.kv_lora_rank, eps_inner = 0;
  (void)eps_inner;
  std::vector<int> positions(n);
  for (int i = 0; i < n; ++i) positions[i] = i;
  const Vec inv_freq = scaled_inv_freq("default", c.rope_theta, rope, 1, 0, 0, 0);
  auto regroup = [&](Vec part, int count) {
    if (!c.rope_interleave) return part;
    Vec out(part.size());
    for (int r = 0; r < n * count; ++r)
      for (int d = 0; d < rope; ++d)
        out[r * rope + d] = part[r * rope + (d < rope / 2 ? 2 * d : 2 * (d - rope / 2) + 1)];
    return out;
  };
  Vec x = embed(w("model.embed_tokens.weight"), tokens, hidden);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".", a = p + "self_attn.";
    Vec h = rmsnorm(x, w(p + "input_layernorm.weight"), n, hidden, c.rms_norm_eps);
    const Vec q_resid =
        c.q_lora_rank > 0
            ? rmsnorm(matmul(h, w(a + "q_a_proj.weight"), n, hidden, c.q_lora_rank),
                      w(a + "q_a_layernorm.weight"), n, c.q_lora_rank, 1e-6)
            : Vec();
    Vec q = c.q_lora_rank > 0 ? matmul(q_resid, w(a + "q_b_proj.weight"), n, c.q_lora_rank, heads * qk)
                              : matmul(h, w(a + "q_proj.weight"), n, hidden, heads * qk);
    Vec ckv = matmul(h, w(a + "kv_a_proj_with_mqa.weight"), n, hidden, rank + rope);
    Vec latent(n * rank), k_rot(n * rope), q_rot(n * heads * rope);
    for (int i = 0; i < n; ++i) {
      for (int d = 0; d < rank; ++d) latent[i * rank + d] = ckv[i * (rank + rope) + d];
      for (int d = 0; d < rope; ++d) k_rot[i * rope + d] = ckv[i * (rank + rope) + rank + d];
    }
    latent = rmsnorm(latent, w(a + "kv_a_layernorm.weight"), n, rank, 1e-6);
    for (int r = 0; r < n * heads; ++r)
      for (int d = 0; d < rope; ++d) q_rot[r * rope + d] = q[r * qk + nope + d];
    q_rot = rope_with(regroup(q_rot, heads), positions, heads, rope, inv_freq);
    k_rot = rope_with(regroup(k_rot, 1), positions, 1, rope, inv_freq);
    for (int r = 0; r < n * heads; ++r)
      for (int d = 0; d < rope; ++d) q[r * qk + nope + d] = q_rot[r * rope + d];
    Vec kv = matmul(latent, w(a + "kv_b_proj.weight"), n, rank, heads * (nope + vd));
    Vec keys(n * heads * qk), values(n * heads * vd);
    for (int j = 0; j < n; ++j)
      for (int hh = 0; hh < heads; ++hh) {
        for (int d = 0; d < nope; ++d)
          keys[(j * heads + hh) * qk + d] = kv[(j * heads + hh) * (nope + vd) + d];
        for (int d = 0; d < rope; ++d) keys[(j * heads + hh) * qk + nope + d] = k_rot[j * rope + d];
        for (int d = 0; d < vd; ++d)
          values[(j * heads + hh) * vd + d] = kv[(j * heads + hh) * (nope + vd) + nope + d];
      }
    Vec scores = attention_scores_full(q, keys, positions, n, heads, heads, qk,
                                       1 / std::sqrt(static_cast<double>(qk)), 0, 0);
    if (c.index_n_heads > 0) {
      // DeepseekV32Indexer: per key j of query i, sum_h w[i,h] H^-0.5 relu(q_I[i,h] . k_I[j] /
      // sqrt(D)); the index_topk best keys (ties to the lower position) stay, the rest masked.
      const int ih = c.index_n_heads, id = c.index_head_dim;
      const std::string x_ = a + "indexer.";
      Vec iq = matmul(q_resid, w(x_ + "wq_b.weight"), n, c.q_lora_rank, ih * id);
      Vec ik = layernorm(matmul(h, w(x_ + "wk.weight"), n, hidden, id), w(x_ + "k_norm.weight"),
                         w(x_ + "k_norm.bias"), n, id, 1e-6);
      const Vec iw = matmul(h, w(x_ + "weights_proj.weight"), n, hidden, ih);
      auto rotate_front = [&](Vec& v, int count) {
        Vec part(n * count * rope);
        for (int r = 0; r < n * count; ++r)
          for (int d = 0; d < rope; ++d) part[r * rope + d] = v[r * id + d];
        part = rope_with(part, positions, count, rope, inv_freq);
        for (int r = 0; r < n * count; ++r)
          for (int d = 0; d < rope; ++d) v[r * id + d] = part[r * rope + d];
      };
      rotate_front(iq, ih);
      rotate_front(ik, 1);
      for (int i = 0; i < n; ++i) {
        std::vector<std::pair<double, int>> ranked;
        for (int j = 0; j <= i; ++j) {
          double score = 0;
          for (int hh = 0; hh < ih; ++hh) {
            double dot = 0;
            for (int d = 0; d < id; ++d) dot += iq[(i * ih + hh) * id + d] * ik[j * id + d];
            score += iw[i * ih + hh] / std::sqrt(static_cast<double>(ih)) *
                     std::max(0.0, dot / std::sqrt(static_cast<double>(id)));
          }
          ranked.push_back({-score, j});
        }
        std::stable_sort(ranked.begin(), ranked.end(),
                         [](const auto& u, const auto& v) { return u.first < v.first; });
        for (size_t r = static_cast<size_t>(c.index_topk); r < ranked.size(); ++r)
          for (int hh = 0; hh < heads; ++hh)
            scores[(hh * n + i) * n + ranked[r].second] = -INFINITY;
      }
    }
    Vec probs = softmax(scores, heads * n, n);
    x = add(x, matmul(attention_values(probs, values, n, n, heads, heads, vd),
                      w(a + "o_proj.weight"), n, heads * vd, hidden));
    h = rmsnorm(x, w(p + "post_attention_layernorm.weight"), n, hidden, c.rms_norm_eps);
    auto mlp = [&](const Vec& in, const std::string& m, int width, int rows) {
      return matmul(swiglu(matmul(in, w(m + "gate_proj.weight"), rows, hidden, width),
                           matmul(in, w(m + "up_proj.weight"), rows, hidden, width)),
                    w(m + "down_proj.weight"), rows, width, hidden);
    };
    if (l < c.first_k_dense_replace) {
      x = add(x, mlp(h, p + "mlp.", c.intermediate_size, n));
      continue;
    }
    const int count = c.num_local_experts, per_group = count / c.n_group;
    const Vec logits = matmul(h, w(p + "mlp.gate.weight"), n, hidden, count);
    const Vec& bias = w(p + "mlp.gate.e_score_correction_bias");
    Vec out = mlp(h, p + "mlp.shared_experts.", c.moe_intermediate_size * c.n_shared_experts, n);
    for (int i = 0; i < n; ++i) {
      Vec score(count), choice(count);
      for (int e = 0; e < count; ++e) {
        score[e] = 1 / (1 + std::exp(-logits[i * count + e]));
        choice[e] = score[e] + bias[e];
      }
      std::vector<std::pair<double, int>> groups;
      for (int g = 0; g < c.n_group; ++g) {
        Vec m(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group);
        std::sort(m.rbegin(), m.rend());
        groups.push_back({-(m[0] + m[1]), g});
      }
      std::stable_sort(groups.begin(), groups.end(),
                       [](const auto& u, const auto& v) { return u.first < v.first; });
      std::vector<std::pair<double, int>> candidates;
      for (int s = 0; s < c.topk_group; ++s)
        for (int e = 0; e < per_group; ++e) {
          const int id = groups[s].second * per_group + e;
          candidates.push_back({-choice[id], id});
        }
      std::sort(candidates.begin(), candidates.end());
      std::vector<int> ids;
      double total = 0;
      for (int s = 0; s < c.num_experts_per_tok; ++s) {
        ids.push_back(candidates[s].second);
        total += score[candidates[s].second];
      }
      if (chosen) chosen->push_back(ids);
      const Vec row(h.begin() + i * hidden, h.begin() + (i + 1) * hidden);
      for (int id : ids) {
        double weight = c.norm_topk_prob ? score[id] / (total + 1e-20) : score[id];
        weight *= c.routed_scaling_factor;
        const Vec y = mlp(row, p + "mlp.experts." + std::to_string(id) + ".", c.moe_intermediate_size, 1);
        for (int d = 0; d < hidden; ++d) out[i * hidden + d] += weight * y[d];
      }
    }
    x = add(x, out);
  }
  Vec h = rmsnorm(x, w("model.norm.weight"), n, hidden, c.rms_norm_eps);
  return matmul(h, w(c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"), n,
                hidden, c.vocab_size);
}

// Any supported family, whole sequence at positions 0, 1, ..., written from the Hugging Face
// modeling files: modeling_llama/mistral/qwen2/qwen3/gemma/gemma2/gpt2/mixtral/qwen3_moe/
// olmo2.py, and Gemma 3n's KV sharing. Sliding layers and shared layers are worked out here from the config's
// fields rather than through the runtime's helpers.
inline Vec family_logits(const ModelConfig& config, const Weights& weights,
                         const std::vector<int>& tokens, std::vector<std::vector<int>>* experts =
                                                             nullptr) {
  const std::string& type = config.model_type;
  const int n = static_cast<int>(tokens.size());
  const int hidden = config.hidden_size, layers = config.num_hidden_layers;
  const int inter = type == "gpt2" && config.intermediate_size == 0 ? 4 * hidden
                                                                     : config.intermediate_size;
  const int heads = config.num_attention_heads;
  const int kv_heads = config.num_key_value_heads ? config.num_key_value_heads : heads;
  const int hd = config.head_dim ? config.head_dim : hidden / heads;
  const double eps = config.rms_norm_eps;
  const bool gemma = type == "gemma" || type == "gemma2" || type == "gemma3_text";
  const bool sandwich = type == "gemma2" || type == "gemma3_text";
  auto w = [&](const std::string& name) -> const Vec& { return weights.at(name).data; };
  auto opt = [&](const std::string& name) -> Vec {
    auto it = weights.find(name);
    return it == weights.end() ? Vec{} : it->second.data;
  };
  auto norm = [&](const Vec& x, const std::string& name) {
    return gemma ? rmsnorm_plus_one(x, w(name), n, hidden, eps) : rmsnorm(x, w(name), n, hidden, eps);
  };
  auto act = [&](const Vec& gate, const Vec& up) {
    return config.hidden_act == "silu" ? swiglu(gate, up)
                                       : geglu(gate, up, config.hidden_act != "gelu");
  };
  auto sliding = [&](int l) {
    if (!config.layer_types.empty()) return config.layer_types[l] == "sliding_attention";
    if (type == "gemma2") return l % 2 == 0;
    return config.sliding_window > 0;
  };
  // Gemma 3n: shared layers read the last layer before first_shared of the same type.
  const int first_shared = layers - config.num_kv_shared_layers;
  auto source = [&](int l) {
    if (config.num_kv_shared_layers == 0 || l < first_shared) return l;
    for (int s = first_shared - 1; s >= 0; --s)
      if (sliding(s) == sliding(l)) return s;
    return -1;
  };
  // Phi-3's partial rotary: the first rd values of each head rotate as a head of rd values.
  const int rd = static_cast<int>(hd * config.partial_rotary_factor);
  Vec inv_freq = scaled_inv_freq(config.rope_type, config.rope_theta, rd, config.rope_factor,
                                 config.rope_low_freq_factor, config.rope_high_freq_factor,
                                 config.rope_original_max_position_embeddings);
  const double scale =
      config.query_pre_attn_scalar > 0 ? 1 / std::sqrt(config.query_pre_attn_scalar) : 1 / std::sqrt(hd);

  std::vector<int> positions(n);
  for (int i = 0; i < n; ++i) positions[i] = i;

  if (type == "gpt2") {
    // Conv1D: y = x W + b with W [in, out]; transpose to reuse matmul's [out, in].
    auto conv = [&](const Vec& x, const std::string& name, int in, int out) {
      const Vec& W = w(name + ".weight");
      Vec t(W.size());
      for (int i = 0; i < in; ++i)
        for (int o = 0; o < out; ++o) t[o * in + i] = W[i * out + o];
      return linear(x, t, w(name + ".bias"), n, in, out);
    };
    Vec x = add(embed(w("transformer.wte.weight"), tokens, hidden),
                embed(w("transformer.wpe.weight"), positions, hidden));
    for (int l = 0; l < layers; ++l) {
      const std::string p = "transformer.h." + std::to_string(l) + ".";
      Vec h = layernorm(x, w(p + "ln_1.weight"), w(p + "ln_1.bias"), n, hidden, eps);
      Vec qkv = conv(h, p + "attn.c_attn", hidden, 3 * hidden);
      Vec q(n * hidden), k(n * hidden), v(n * hidden);
      for (int i = 0; i < n; ++i)
        for (int d = 0; d < hidden; ++d) {
          q[i * hidden + d] = qkv[i * 3 * hidden + d];
          k[i * hidden + d] = qkv[i * 3 * hidden + hidden + d];
          v[i * hidden + d] = qkv[i * 3 * hidden + 2 * hidden + d];
        }
      Vec probs = softmax(attention_scores(q, k, positions, n, heads, heads, hd, scale), heads * n, n);
      Vec att = attention_values(probs, v, n, n, heads, heads, hd);
      x = add(x, conv(att, p + "attn.c_proj", hidden, hidden));
      Vec h2 = layernorm(x, w(p + "ln_2.weight"), w(p + "ln_2.bias"), n, hidden, eps);
      Vec mid = gelu(conv(h2, p + "mlp.c_fc", hidden, inter), config.hidden_act != "gelu");
      x = add(x, conv(mid, p + "mlp.c_proj", inter, hidden));
    }
    Vec h = layernorm(x, w("transformer.ln_f.weight"), w("transformer.ln_f.bias"), n, hidden, eps);
    return matmul(h, w(config.tie_word_embeddings ? "transformer.wte.weight" : "lm_head.weight"), n,
                  hidden, config.vocab_size);
  }

  if (type == "deepseek_v3" || type == "deepseek_v32")
    return deepseek_logits(config, weights, tokens, experts);

  Vec x = embed(w("model.embed_tokens.weight"), tokens, hidden);
  if (gemma)
    for (double& e : x) e *= std::sqrt(static_cast<double>(hidden));
  std::vector<Vec> keys(layers), values(layers);
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const bool olmo2 = type == "olmo2", per_head_norm = type == "qwen3" || type == "qwen3_moe";
    const bool phi3 = type == "phi3";
    // Gemma 3's sliding layers: plain RoPE of rope_local_base_freq.
    const bool local = config.rope_local_base_freq > 0 && sliding(l);
    const Vec local_freq = scaled_inv_freq("default", config.rope_local_base_freq, hd, 1, 0, 0, 0);
    auto rotate = [&](const Vec& x, int count) {
      if (local) return rope_with(x, positions, count, hd, local_freq);
      if (rd == hd) return rope_with(x, positions, count, hd, inv_freq);
      Vec part(static_cast<size_t>(n) * count * rd), out = x;
      for (int r = 0; r < n * count; ++r)
        for (int d = 0; d < rd; ++d) part[r * rd + d] = x[r * hd + d];
      part = rope_with(part, positions, count, rd, inv_freq);
      for (int r = 0; r < n * count; ++r)
        for (int d = 0; d < rd; ++d) out[r * hd + d] = part[r * rd + d];
      return out;
    };
    // Phi3Attention's qkv_proj holds q, k and v rows in that order; Phi3MLP's gate_up_proj the
    // gate's rows, then the up projection's.
    auto rows = [&](const std::string& name, int first, int count) {
      const Vec& m = w(name);
      return Vec(m.begin() + static_cast<int64_t>(first) * hidden,
                 m.begin() + static_cast<int64_t>(first + count) * hidden);
    };
    // Olmo2DecoderLayer: no norm before the sublayers, one after each.
    Vec h = olmo2 ? x : norm(x, p + "input_layernorm.weight");
    Vec q = phi3 ? matmul(h, rows(p + "self_attn.qkv_proj.weight", 0, heads * hd), n, hidden,
                          heads * hd)
                 : linear(h, w(p + "self_attn.q_proj.weight"), opt(p + "self_attn.q_proj.bias"), n,
                          hidden, heads * hd);
    if (per_head_norm) q = rmsnorm(q, w(p + "self_attn.q_norm.weight"), n * heads, hd, eps);
    if (type == "gemma3_text")
      q = rmsnorm_plus_one(q, w(p + "self_attn.q_norm.weight"), n * heads, hd, eps);
    if (olmo2) q = rmsnorm(q, w(p + "self_attn.q_norm.weight"), n, heads * hd, eps);
    q = rotate(q, heads);
    const int src = source(l);
    if (src == l) {
      Vec k = phi3 ? matmul(h, rows(p + "self_attn.qkv_proj.weight", heads * hd, kv_heads * hd), n,
                            hidden, kv_heads * hd)
                   : linear(h, w(p + "self_attn.k_proj.weight"), opt(p + "self_attn.k_proj.bias"),
                            n, hidden, kv_heads * hd);
      if (per_head_norm)
        k = rmsnorm(k, w(p + "self_attn.k_norm.weight"), n * kv_heads, hd, eps);
      if (olmo2) k = rmsnorm(k, w(p + "self_attn.k_norm.weight"), n, kv_heads * hd, eps);
      if (type == "gemma3_text")
        k = rmsnorm_plus_one(k, w(p + "self_attn.k_norm.weight"), n * kv_heads, hd, eps);
      keys[l] = rotate(k, kv_heads);
      values[l] = phi3 ? matmul(h, rows(p + "self_attn.qkv_proj.weight", (heads + kv_heads) * hd,
                                        kv_heads * hd),
                                n, hidden, kv_heads * hd)
                       : linear(h, w(p + "self_attn.v_proj.weight"),
                                opt(p + "self_attn.v_proj.bias"), n, hidden, kv_heads * hd);
    }
    Vec scores = attention_scores_full(q, keys[src], positions, n, heads, kv_heads, hd, scale,
                                       config.attn_logit_softcapping,
                                       sliding(l) ? config.sliding_window : 0);
    Vec probs;
    if (type == "gpt_oss") {
      // eager_attention_forward of gpt-oss: the head's sink logit as one more column, dropped
      // after the softmax.
      const Vec& sinks = w(p + "self_attn.sinks");
      Vec wide(static_cast<size_t>(heads) * n * (n + 1));
      for (int r = 0; r < heads * n; ++r) {
        for (int j = 0; j < n; ++j) wide[r * (n + 1) + j] = scores[r * n + j];
        wide[r * (n + 1) + n] = sinks[r / n];
      }
      wide = softmax(wide, heads * n, n + 1);
      probs.resize(static_cast<size_t>(heads) * n * n);
      for (int r = 0; r < heads * n; ++r)
        for (int j = 0; j < n; ++j) probs[r * n + j] = wide[r * (n + 1) + j];
    } else {
      probs = softmax(scores, heads * n, n);
    }
    Vec att = attention_values(probs, values[src], n, n, heads, kv_heads, hd);
    Vec o = linear(att, w(p + "self_attn.o_proj.weight"), opt(p + "self_attn.o_proj.bias"), n,
                   heads * hd, hidden);
    if (sandwich) {
      x = add(x, norm(o, p + "post_attention_layernorm.weight"));
      h = norm(x, p + "pre_feedforward_layernorm.weight");
    } else if (olmo2) {
      x = add(x, norm(o, p + "post_attention_layernorm.weight"));
      h = x;
    } else {
      x = add(x, o);
      h = norm(x, p + "post_attention_layernorm.weight");
    }
    Vec mlp(n * hidden, 0.0);
    // Qwen3MoeDecoderLayer: sparse unless listed in mlp_only_layers or off the sparse step.
    const bool listed = std::find(config.mlp_only_layers.begin(), config.mlp_only_layers.end(),
                                  l) != config.mlp_only_layers.end();
    if (type == "gpt_oss") {
      // GptOssMLP: router with a bias, softmax over the top-k logits (the renormalised top-k
      // probabilities), experts as x @ W with gate and up interleaved, biases, clamped SwiGLU.
      const int count = config.num_local_experts, width = config.intermediate_size;
      Vec logits = linear(h, w(p + "mlp.router.weight"), w(p + "mlp.router.bias"), n, hidden, count);
      const Vec& gu = w(p + "mlp.experts.gate_up_proj");
      const Vec& gub = w(p + "mlp.experts.gate_up_proj_bias");
      const Vec& dn = w(p + "mlp.experts.down_proj");
      const Vec& dnb = w(p + "mlp.experts.down_proj_bias");
      for (int i = 0; i < n; ++i) {
        Routing r = route(Vec(logits.begin() + i * count, logits.begin() + (i + 1) * count),
                          config.num_experts_per_tok);
        if (experts) experts->push_back(r.ids);
        for (size_t s = 0; s < r.ids.size(); ++s) {
          const int e = r.ids[s];
          Vec gate(width), up(width);
          for (int o = 0; o < width; ++o) {
            double g = gub[e * 2 * width + 2 * o], u = gub[e * 2 * width + 2 * o + 1];
            for (int d = 0; d < hidden; ++d) {
              const double x = h[i * hidden + d];
              g += x * gu[(static_cast<size_t>(e) * hidden + d) * 2 * width + 2 * o];
              u += x * gu[(static_cast<size_t>(e) * hidden + d) * 2 * width + 2 * o + 1];
            }
            gate[o] = g;
            up[o] = u;
          }
          const Vec a = clamped_swiglu(gate, up, 1.702, 7.0);
          for (int d = 0; d < hidden; ++d) {
            double y = dnb[e * hidden + d];
            for (int o = 0; o < width; ++o)
              y += a[o] * dn[(static_cast<size_t>(e) * width + o) * hidden + d];
            mlp[i * hidden + d] += r.weights[s] * y;
          }
        }
      }
    } else if (type == "qwen3_moe" && !listed && (l + 1) % config.decoder_sparse_step == 0) {
      const int count = config.num_local_experts;
      const int width = config.moe_intermediate_size;
      Vec logits = matmul(h, w(p + "mlp.gate.weight"), n, hidden, count);
      for (int i = 0; i < n; ++i) {
        Routing r = route(Vec(logits.begin() + i * count, logits.begin() + (i + 1) * count),
                          config.num_experts_per_tok, config.norm_topk_prob);
        if (experts) experts->push_back(r.ids);
        const Vec row(h.begin() + i * hidden, h.begin() + (i + 1) * hidden);
        for (size_t s = 0; s < r.ids.size(); ++s) {
          const std::string e = p + "mlp.experts." + std::to_string(r.ids[s]) + ".";
          Vec y = matmul(act(matmul(row, w(e + "gate_proj.weight"), 1, hidden, width),
                             matmul(row, w(e + "up_proj.weight"), 1, hidden, width)),
                         w(e + "down_proj.weight"), 1, width, hidden);
          for (int d = 0; d < hidden; ++d) mlp[i * hidden + d] += r.weights[s] * y[d];
        }
      }
    } else if (type == "mixtral") {
      const int count = config.num_local_experts;
      const std::string m = p + "block_sparse_moe.";
      Vec logits = matmul(h, w(m + "gate.weight"), n, hidden, count);
      for (int i = 0; i < n; ++i) {
        Routing r = route(Vec(logits.begin() + i * count, logits.begin() + (i + 1) * count),
                          config.num_experts_per_tok);
        if (experts) experts->push_back(r.ids);
        const Vec row(h.begin() + i * hidden, h.begin() + (i + 1) * hidden);
        for (size_t s = 0; s < r.ids.size(); ++s) {
          const std::string e = m + "experts." + std::to_string(r.ids[s]) + ".";
          Vec y = matmul(act(matmul(row, w(e + "w1.weight"), 1, hidden, inter),
                             matmul(row, w(e + "w3.weight"), 1, hidden, inter)),
                         w(e + "w2.weight"), 1, inter, hidden);
          for (int d = 0; d < hidden; ++d) mlp[i * hidden + d] += r.weights[s] * y[d];
        }
      }
    } else if (phi3) {
      mlp = matmul(act(matmul(h, rows(p + "mlp.gate_up_proj.weight", 0, inter), n, hidden, inter),
                       matmul(h, rows(p + "mlp.gate_up_proj.weight", inter, inter), n, hidden,
                              inter)),
                   w(p + "mlp.down_proj.weight"), n, inter, hidden);
    } else {
      mlp = matmul(act(matmul(h, w(p + "mlp.gate_proj.weight"), n, hidden, inter),
                       matmul(h, w(p + "mlp.up_proj.weight"), n, hidden, inter)),
                   w(p + "mlp.down_proj.weight"), n, inter, hidden);
    }
    x = add(x, sandwich || olmo2 ? norm(mlp, p + "post_feedforward_layernorm.weight") : mlp);
  }
  Vec h = norm(x, "model.norm.weight");
  Vec logits = matmul(h, w(config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"),
                      n, hidden, config.vocab_size);
  if (config.final_logit_softcapping > 0)
    for (double& v : logits)
      v = std::tanh(v / config.final_logit_softcapping) * config.final_logit_softcapping;
  return logits;
}

}  // namespace pinmark::ref
