#include "runtime/weights.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "runtime/random.h"

namespace pinmark {

namespace {

// The tensors being built, by name; with draw false, only their shapes (the values left empty).
struct Builder {
  bool draw = true;
  Weights tensors;
  void emplace(const std::string& name, Tensor<double> t) { tensors.emplace(name, std::move(t)); }
};

void add_tensor(Builder& w, const ModelConfig& c, const std::string& name, Shape shape,
                double scale, double offset = 0.0) {
  std::vector<double> values;
  if (w.draw)
    values = random_tensor(c.seed, name, static_cast<size_t>(element_count(shape)), scale, offset);
  w.emplace(name, Tensor<double>(std::move(shape), std::move(values)));
}

// Uniform in [-a, a) has standard deviation a / sqrt(3); a = sqrt(3 / fan_in) gives
// 1 / sqrt(fan_in), which keeps activations of order 1 through every layer.
void add_linear(Builder& w, const ModelConfig& c, const std::string& name, int64_t out,
                int64_t in) {
  add_tensor(w, c, name, {out, in}, std::sqrt(3.0 / static_cast<double>(in)));
}

// 1 + uniform(+-0.1): close to the identity, but a kernel that ignores the weight is visible.
void add_norm(Builder& w, const ModelConfig& c, const std::string& name, int64_t dim) {
  add_tensor(w, c, name, {dim}, 0.1, 1.0);
}

// Gemma stores its norm weights as offsets from one (it multiplies by 1 + w), so uniform(+-0.1)
// around zero plays the part of 1 + uniform(+-0.1) elsewhere.
void add_offset_norm(Builder& w, const ModelConfig& c, const std::string& name, int64_t dim) {
  add_tensor(w, c, name, {dim}, 0.1);
}

// A gated MLP (a dense one, an expert, a shared expert) under `prefix`: gate_proj and up_proj
// [inter, hidden], down_proj [hidden, inter].
void add_gated_mlp(Builder& w, const ModelConfig& c, const std::string& prefix, int64_t inter,
                   int64_t hidden) {
  add_linear(w, c, prefix + "gate_proj.weight", inter, hidden);
  add_linear(w, c, prefix + "up_proj.weight", inter, hidden);
  add_linear(w, c, prefix + "down_proj.weight", hidden, inter);
}

// A mixture of experts under `mlp` ("model.layers.N.mlp."): the router gate.weight
// [experts, hidden] and each expert's gated MLP under experts.E. as checkpoints store them.
void add_routed_experts(Builder& w, const ModelConfig& c, const std::string& mlp, int64_t inter,
                        int64_t hidden) {
  add_linear(w, c, mlp + "gate.weight", c.num_local_experts, hidden);
  for (int e = 0; e < c.num_local_experts; ++e)
    add_gated_mlp(w, c, mlp + "experts." + std::to_string(e) + ".", inter, hidden);
}

// Biases small next to the outputs they shift, but far from zero.
void add_bias(Builder& w, const ModelConfig& c, const std::string& name, int64_t dim) {
  add_tensor(w, c, name, {dim}, 0.1);
}

// GPT-2 under the names and the Conv1D layout ([in, out]) of Hugging Face's GPT2LMHeadModel.
Weights gpt2_weights(const ModelConfig& c, bool draw) {
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  Builder w{draw, {}};
  auto conv = [&](const std::string& name, int64_t in, int64_t out) {
    add_tensor(w, c, name + ".weight", {in, out}, std::sqrt(3.0 / static_cast<double>(in)));
    add_bias(w, c, name + ".bias", out);
  };
  auto layernorm = [&](const std::string& name) {
    add_norm(w, c, name + ".weight", hidden);
    add_bias(w, c, name + ".bias", hidden);
  };
  add_tensor(w, c, "transformer.wte.weight", {vocab, hidden}, 1.0);
  add_tensor(w, c, "transformer.wpe.weight", {c.max_position_embeddings, hidden}, 1.0);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    layernorm(p + "ln_1");
    conv(p + "attn.c_attn", hidden, 3 * hidden);
    conv(p + "attn.c_proj", hidden, hidden);
    layernorm(p + "ln_2");
    conv(p + "mlp.c_fc", hidden, inter);
    conv(p + "mlp.c_proj", inter, hidden);
  }
  layernorm("transformer.ln_f");
  if (!c.tie_word_embeddings) add_linear(w, c, "lm_head.weight", vocab, hidden);
  return std::move(w.tensors);
}

// DeepSeek-V3 and V3.2 under their checkpoints' names: MLA projections and norms (and V3.2's
// indexer), dense MLPs in the first first_k_dense_replace layers, then the router (with its score-correction bias, a buffer
// checkpoints store), the routed experts and the shared ones.
Weights deepseek_weights(const ModelConfig& c, bool draw) {
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int64_t heads = c.num_attention_heads, qk = c.qk_nope_head_dim + c.qk_rope_head_dim;
  const int64_t rank = c.kv_lora_rank, rope = c.qk_rope_head_dim;
  const int64_t width = expert_intermediate_size(c), shared = width * c.n_shared_experts;
  Builder w{draw, {}};
  add_tensor(w, c, "model.embed_tokens.weight", {vocab, hidden}, 1.0);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string a = p + "self_attn.";
    add_norm(w, c, p + "input_layernorm.weight", hidden);
    if (c.q_lora_rank > 0) {
      add_linear(w, c, a + "q_a_proj.weight", c.q_lora_rank, hidden);
      if (c.attention_bias) add_bias(w, c, a + "q_a_proj.bias", c.q_lora_rank);
      add_norm(w, c, a + "q_a_layernorm.weight", c.q_lora_rank);
      add_linear(w, c, a + "q_b_proj.weight", heads * qk, c.q_lora_rank);
    } else {
      add_linear(w, c, a + "q_proj.weight", heads * qk, hidden);
    }
    add_linear(w, c, a + "kv_a_proj_with_mqa.weight", rank + rope, hidden);
    if (c.attention_bias) add_bias(w, c, a + "kv_a_proj_with_mqa.bias", rank + rope);
    add_norm(w, c, a + "kv_a_layernorm.weight", rank);
    add_linear(w, c, a + "kv_b_proj.weight", heads * (c.qk_nope_head_dim + c.v_head_dim), rank);
    if (c.index_n_heads > 0) {
      const std::string x = a + "indexer.";
      add_linear(w, c, x + "wq_b.weight", int64_t{c.index_n_heads} * c.index_head_dim,
                 c.q_lora_rank);
      add_linear(w, c, x + "wk.weight", c.index_head_dim, hidden);
      add_norm(w, c, x + "k_norm.weight", c.index_head_dim);
      add_bias(w, c, x + "k_norm.bias", c.index_head_dim);
      add_linear(w, c, x + "weights_proj.weight", c.index_n_heads, hidden);
    }
    add_linear(w, c, a + "o_proj.weight", hidden, heads * c.v_head_dim);
    if (c.attention_bias) add_bias(w, c, a + "o_proj.bias", hidden);
    add_norm(w, c, p + "post_attention_layernorm.weight", hidden);
    if (is_moe_layer(c, i)) {
      add_routed_experts(w, c, p + "mlp.", width, hidden);
      add_bias(w, c, p + "mlp.gate.e_score_correction_bias", c.num_local_experts);
      if (shared > 0) add_gated_mlp(w, c, p + "mlp.shared_experts.", shared, hidden);
    } else {
      add_gated_mlp(w, c, p + "mlp.", inter, hidden);
    }
  }
  add_norm(w, c, "model.norm.weight", hidden);
  if (!c.tie_word_embeddings) add_linear(w, c, "lm_head.weight", vocab, hidden);
  return std::move(w.tensors);
}

// Qwen3-Next under its checkpoints' names: Gated DeltaNet layers (in_proj_qkvz and in_proj_ba
// in their per-key-head grouped row order, the depthwise conv, A_log, dt_bias, the gated norm,
// out_proj), gated attention layers (q_proj twice as wide: each head's query rows, then its
// gate rows), (1 + w) norms, and MoE layers with a sigmoid-gated shared expert.
Weights qwen3_next_weights(const ModelConfig& c, bool draw) {
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int64_t kv_dim = int64_t{c.num_key_value_heads} * c.head_dim;
  const int64_t key_dim = int64_t{c.linear_num_key_heads} * c.linear_key_head_dim;
  const int64_t value_dim = int64_t{c.linear_num_value_heads} * c.linear_value_head_dim;
  const int64_t vh = c.linear_num_value_heads, kernel = c.linear_conv_kernel_dim;
  Builder w{draw, {}};
  add_tensor(w, c, "model.embed_tokens.weight", {vocab, hidden}, 1.0);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const int64_t q_dim = int64_t{query_heads(c, i)} * c.head_dim;
    add_offset_norm(w, c, p + "input_layernorm.weight", hidden);
    if (is_linear_attention_layer(c, i)) {
      const std::string a = p + "linear_attn.";
      add_linear(w, c, a + "in_proj_qkvz.weight", 2 * key_dim + 2 * value_dim, hidden);
      add_linear(w, c, a + "in_proj_ba.weight", 2 * vh, hidden);
      add_tensor(w, c, a + "conv1d.weight", {2 * key_dim + value_dim, 1, kernel},
                 std::sqrt(3.0 / static_cast<double>(kernel)));
      // exp(A_log) in [0.22, 0.61] and dt_bias near 0 put the per-token decay
      // exp(-exp(A_log) softplus(a + dt_bias)) between about 0.3 and 0.95: the state neither
      // forgets everything at once nor never forgets.
      add_tensor(w, c, a + "A_log", {vh}, 0.5, -1.0);
      add_tensor(w, c, a + "dt_bias", {vh}, 0.5);
      add_norm(w, c, a + "norm.weight", c.linear_value_head_dim);
      add_linear(w, c, a + "out_proj.weight", hidden, value_dim);
    } else {
      const std::string a = p + "self_attn.";
      add_linear(w, c, a + "q_proj.weight", 2 * q_dim, hidden);
      add_linear(w, c, a + "k_proj.weight", kv_dim, hidden);
      add_linear(w, c, a + "v_proj.weight", kv_dim, hidden);
      add_linear(w, c, a + "o_proj.weight", hidden, q_dim);
      if (c.attention_bias) {
        add_bias(w, c, a + "q_proj.bias", 2 * q_dim);
        add_bias(w, c, a + "k_proj.bias", kv_dim);
        add_bias(w, c, a + "v_proj.bias", kv_dim);
        add_bias(w, c, a + "o_proj.bias", hidden);
      }
      add_offset_norm(w, c, a + "q_norm.weight", c.head_dim);
      add_offset_norm(w, c, a + "k_norm.weight", c.head_dim);
    }
    add_offset_norm(w, c, p + "post_attention_layernorm.weight", hidden);
    if (is_moe_layer(c, i)) {
      const int64_t width = expert_intermediate_size(c), shared = c.shared_expert_intermediate_size;
      add_routed_experts(w, c, p + "mlp.", width, hidden);
      if (shared > 0) {
        add_gated_mlp(w, c, p + "mlp.shared_expert.", shared, hidden);
        add_linear(w, c, p + "mlp.shared_expert_gate.weight", 1, hidden);
      }
    } else {
      add_gated_mlp(w, c, p + "mlp.", inter, hidden);
    }
  }
  add_offset_norm(w, c, "model.norm.weight", hidden);
  if (!c.tie_word_embeddings) add_linear(w, c, "lm_head.weight", vocab, hidden);
  return std::move(w.tensors);
}

// Gemma 3n under Gemma3nForCausalLM's names: plain-weight norms, q/k norms, per-layer MLP
// widths, AltUp, LAuReL and the per-layer inputs; a layer that shares another's keys and values
// has no k_proj, v_proj or k_norm. The modality router is drawn hidden times wider than a plain
// linear layer (standard deviation sqrt(hidden)): its input is the normalised stream divided by
// hidden (router_input_scale), and at the plain width tanh would see values near 1 / hidden and
// act as a straight line through 0.
Weights gemma3n_weights(const ModelConfig& c, bool draw) {
  const int64_t hidden = c.hidden_size, vocab = c.vocab_size, N = c.altup_num_inputs;
  const int64_t kv_dim = int64_t{c.num_key_value_heads} * c.head_dim;
  const int64_t P = c.hidden_size_per_layer_input, all = int64_t{c.num_hidden_layers} * P;
  const std::vector<int> kv_sources = kv_source_layers(c);
  Builder w{draw, {}};
  add_tensor(w, c, "model.embed_tokens.weight", {vocab, hidden}, 1.0);
  add_tensor(w, c, "model.embed_tokens_per_layer.weight", {c.vocab_size_per_layer_input, all}, 1.0);
  add_linear(w, c, "model.per_layer_model_projection.weight", all, hidden);
  add_norm(w, c, "model.per_layer_projection_norm.weight", P);
  for (int64_t i = 0; i + 1 < N; ++i) {
    add_linear(w, c, "model.altup_projections." + std::to_string(i) + ".weight", hidden, hidden);
    add_linear(w, c, "model.altup_unembed_projections." + std::to_string(i) + ".weight", hidden,
               hidden);
  }
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string a = p + "self_attn.";
    const int64_t q_dim = int64_t{query_heads(c, i)} * c.head_dim;
    add_norm(w, c, p + "input_layernorm.weight", hidden);
    add_linear(w, c, a + "q_proj.weight", q_dim, hidden);
    add_norm(w, c, a + "q_norm.weight", c.head_dim);
    if (kv_sources[i] == i) {
      add_linear(w, c, a + "k_proj.weight", kv_dim, hidden);
      add_linear(w, c, a + "v_proj.weight", kv_dim, hidden);
      add_norm(w, c, a + "k_norm.weight", c.head_dim);
    }
    add_linear(w, c, a + "o_proj.weight", hidden, q_dim);
    if (c.attention_bias) {
      add_bias(w, c, a + "q_proj.bias", q_dim);
      if (kv_sources[i] == i) {
        add_bias(w, c, a + "k_proj.bias", kv_dim);
        add_bias(w, c, a + "v_proj.bias", kv_dim);
      }
      add_bias(w, c, a + "o_proj.bias", hidden);
    }
    for (const char* norm : {"post_attention_layernorm", "pre_feedforward_layernorm",
                             "post_feedforward_layernorm", "post_per_layer_input_norm"})
      add_norm(w, c, p + norm + ".weight", hidden);
    add_gated_mlp(w, c, p + "mlp.", layer_intermediate_size(c, i), hidden);
    add_tensor(w, c, p + "altup.correct_output_scale", {hidden}, 1.0);
    // Mixing coefficients of a few tenths, as trained models have: at the width of a plain
    // linear layer every layer would double the streams.
    add_tensor(w, c, p + "altup.correction_coefs.weight", {N, N}, 0.3);
    add_tensor(w, c, p + "altup.prediction_coefs.weight", {N * N, N}, 0.3);
    add_tensor(w, c, p + "altup.modality_router.weight", {N, hidden},
               std::sqrt(3.0 * static_cast<double>(hidden)));
    add_norm(w, c, p + "altup.router_norm.weight", hidden);
    add_linear(w, c, p + "laurel.linear_left.weight", c.laurel_rank, hidden);
    add_linear(w, c, p + "laurel.linear_right.weight", hidden, c.laurel_rank);
    add_norm(w, c, p + "laurel.post_laurel_norm.weight", hidden);
    add_linear(w, c, p + "per_layer_input_gate.weight", P, hidden);
    add_linear(w, c, p + "per_layer_projection.weight", hidden, P);
  }
  add_norm(w, c, "model.norm.weight", hidden);
  if (!c.tie_word_embeddings) add_linear(w, c, "lm_head.weight", vocab, hidden);
  return std::move(w.tensors);
}

// DeepSeek-V4 under the names its checkpoints store, DeepSeek's own (transformers 5.17's
// save_pretrained writes them: attn.wq_a for self_attn.q_a_proj, ffn.experts.E.w1 for the
// experts' merged gate_up_proj, and so on; conversion_mapping.py renames them on loading). The
// hash layers' tid2eid gives each token num_experts_per_tok distinct experts, drawn by sorting
// the experts on random keys.
Weights deepseek_v4_weights(const ModelConfig& c, bool draw) {
  const int64_t hidden = c.hidden_size, vocab = c.vocab_size, heads = c.num_attention_heads;
  const int64_t hd = c.head_dim, n = c.hc_mult, mixes = (2 + n) * n;
  const int64_t groups = c.o_groups, rank = c.o_lora_rank, inter = c.moe_intermediate_size;
  const int64_t experts = c.num_local_experts, top_k = c.num_experts_per_tok;
  Builder w{draw, {}};
  add_tensor(w, c, "model.embed_tokens.weight", {vocab, hidden}, 1.0);
  // A gated MLP in DeepSeek's own names: w1 the gate, w3 the up projection, w2 down.
  auto mlp = [&](const std::string& p) {
    add_linear(w, c, p + "w1.weight", inter, hidden);
    add_linear(w, c, p + "w3.weight", inter, hidden);
    add_linear(w, c, p + "w2.weight", hidden, inter);
  };
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string a = p + "attn.";
    add_norm(w, c, p + "attn_norm.weight", hidden);
    add_norm(w, c, p + "ffn_norm.weight", hidden);
    for (const char* site : {"hc_attn_", "hc_ffn_"}) {
      add_linear(w, c, p + site + "fn", mixes, n * hidden);
      add_bias(w, c, p + site + "base", mixes);
      add_norm(w, c, p + site + "scale", 3);
    }
    add_linear(w, c, a + "wq_a.weight", c.q_lora_rank, hidden);
    add_norm(w, c, a + "q_norm.weight", c.q_lora_rank);
    add_linear(w, c, a + "wq_b.weight", heads * hd, c.q_lora_rank);
    add_linear(w, c, a + "wkv.weight", hd, hidden);
    add_norm(w, c, a + "norm.weight", hd);
    add_linear(w, c, a + "wo_a.weight", groups * rank, heads * hd / groups);
    add_linear(w, c, a + "wo_b.weight", hidden, groups * rank);
    // Sink logits of the order of the scores they compete with.
    add_tensor(w, c, a + "attn_sink", {heads}, 1.0);
    const int rate = compress_rate(c, i);
    if (rate > 0) {
      const bool csa = c.layer_types[i] == "compressed_sparse_attention";
      const int64_t width = (csa ? 2 : 1) * hd;
      const std::string x = a + "compressor.";
      add_linear(w, c, x + "wkv.weight", width, hidden);
      add_linear(w, c, x + "wgate.weight", width, hidden);
      add_tensor(w, c, x + "ape", {rate, width}, 0.5);
      add_norm(w, c, x + "norm.weight", hd);
      if (csa) {
        const std::string y = a + "indexer.";
        const int64_t id = c.index_head_dim;
        add_linear(w, c, y + "compressor.wkv.weight", 2 * id, hidden);
        add_linear(w, c, y + "compressor.wgate.weight", 2 * id, hidden);
        add_tensor(w, c, y + "compressor.ape", {rate, 2 * id}, 0.5);
        add_norm(w, c, y + "compressor.norm.weight", id);
        add_linear(w, c, y + "wq_b.weight", int64_t{c.index_n_heads} * id, c.q_lora_rank);
        add_linear(w, c, y + "weights_proj.weight", c.index_n_heads, hidden);
      }
    }
    const std::string f = p + "ffn.";
    add_linear(w, c, f + "gate.weight", experts, hidden);
    const bool hash = i < static_cast<int>(c.mlp_layer_types.size()) &&
                      c.mlp_layer_types[i] == "hash_moe";
    if (hash && !w.draw) {
      w.emplace(f + "gate.tid2eid", Tensor<double>({vocab, top_k}, {}));
    } else if (hash) {
      const std::string name = f + "gate.tid2eid";
      const std::vector<double> keys = random_tensor(
          c.seed, name, static_cast<size_t>(vocab * experts), 1.0, 0.0);
      std::vector<double> table(static_cast<size_t>(vocab * top_k));
      for (int64_t t = 0; t < vocab; ++t) {
        std::vector<int64_t> order(experts);
        for (int64_t e = 0; e < experts; ++e) order[e] = e;
        std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
          return keys[t * experts + x] < keys[t * experts + y];
        });
        for (int64_t s = 0; s < top_k; ++s) table[t * top_k + s] = static_cast<double>(order[s]);
      }
      w.emplace(name, Tensor<double>({vocab, top_k}, std::move(table)));
    } else {
      add_bias(w, c, f + "gate.bias", experts);
    }
    for (int64_t e = 0; e < experts; ++e) mlp(f + "experts." + std::to_string(e) + ".");
    mlp(f + "shared_experts.");
  }
  add_linear(w, c, "model.hc_head.hc_fn", n, n * hidden);
  add_bias(w, c, "model.hc_head.hc_base", n);
  add_norm(w, c, "model.hc_head.hc_scale", 1);
  add_norm(w, c, "model.norm.weight", hidden);
  if (!c.tie_word_embeddings) add_linear(w, c, "head.weight", vocab, hidden);
  return std::move(w.tensors);
}

Weights family_weights(const ModelConfig& config, bool draw) {
  const ModelConfig c = with_defaults(config);
  if (c.model_type == "gpt2") return gpt2_weights(c, draw);
  if (is_deepseek(c)) return deepseek_weights(c, draw);
  if (c.model_type == "qwen3_next") return qwen3_next_weights(c, draw);
  if (is_gemma3n(c)) return gemma3n_weights(c, draw);
  if (is_deepseek_v4(c)) return deepseek_v4_weights(c, draw);
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int64_t kv_dim = int64_t{c.num_key_value_heads} * c.head_dim;
  const bool gemma =
      c.model_type == "gemma" || c.model_type == "gemma2" || c.model_type == "gemma3_text";
  auto norm = [&](Builder& w, const std::string& name) {
    if (gemma)
      add_offset_norm(w, c, name, hidden);
    else
      add_norm(w, c, name, hidden);
  };
  const std::vector<int> kv_sources = kv_source_layers(c);

  Builder w{draw, {}};
  add_tensor(w, c, "model.embed_tokens.weight", {vocab, hidden}, 1.0);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const int64_t q_dim = int64_t{query_heads(c, i)} * c.head_dim;
    // A layer that shares another's keys and values has no k/v projections (nor k_norm), as in
    // Gemma 3n's checkpoints.
    const bool computes_kv = kv_sources[i] == i;
    const bool olmo2 = c.model_type == "olmo2";
    if (!olmo2) norm(w, p + "input_layernorm.weight");
    const bool phi3 = c.model_type == "phi3";
    if (phi3) {
      add_linear(w, c, p + "self_attn.qkv_proj.weight", q_dim + 2 * kv_dim, hidden);
    } else {
      add_linear(w, c, p + "self_attn.q_proj.weight", q_dim, hidden);
      if (computes_kv) {
        add_linear(w, c, p + "self_attn.k_proj.weight", kv_dim, hidden);
        add_linear(w, c, p + "self_attn.v_proj.weight", kv_dim, hidden);
      }
    }
    add_linear(w, c, p + "self_attn.o_proj.weight", hidden, q_dim);
    if (c.attention_bias || c.model_type == "qwen2") {
      add_bias(w, c, p + "self_attn.q_proj.bias", q_dim);
      if (computes_kv) {
        add_bias(w, c, p + "self_attn.k_proj.bias", kv_dim);
        add_bias(w, c, p + "self_attn.v_proj.bias", kv_dim);
      }
    }
    if (c.attention_bias) add_bias(w, c, p + "self_attn.o_proj.bias", hidden);
    // gpt-oss's sink logits, of the order of the scores they compete with.
    if (c.model_type == "gpt_oss") add_tensor(w, c, p + "self_attn.sinks", {query_heads(c, i)}, 1.0);
    if (c.model_type == "qwen3" || c.model_type == "qwen3_moe") {
      add_norm(w, c, p + "self_attn.q_norm.weight", c.head_dim);
      if (computes_kv) add_norm(w, c, p + "self_attn.k_norm.weight", c.head_dim);
    }
    if (c.model_type == "gemma3_text") {
      add_offset_norm(w, c, p + "self_attn.q_norm.weight", c.head_dim);
      if (computes_kv) add_offset_norm(w, c, p + "self_attn.k_norm.weight", c.head_dim);
    }
    if (olmo2) {
      add_norm(w, c, p + "self_attn.q_norm.weight", q_dim);
      if (computes_kv) add_norm(w, c, p + "self_attn.k_norm.weight", kv_dim);
    }
    norm(w, p + "post_attention_layernorm.weight");
    if (olmo2) norm(w, p + "post_feedforward_layernorm.weight");
    if (c.model_type == "gemma2" || c.model_type == "gemma3_text") {
      norm(w, p + "pre_feedforward_layernorm.weight");
      norm(w, p + "post_feedforward_layernorm.weight");
    }
    if (c.model_type == "gpt_oss") {
      // The layout transformers 5.17 saves: x @ W, gate and up interleaved by column.
      const int64_t e = c.num_local_experts, expert_inter = expert_intermediate_size(c);
      add_linear(w, c, p + "mlp.router.weight", e, hidden);
      add_bias(w, c, p + "mlp.router.bias", e);
      add_tensor(w, c, p + "mlp.experts.gate_up_proj", {e, hidden, 2 * expert_inter},
                 std::sqrt(3.0 / static_cast<double>(hidden)));
      add_tensor(w, c, p + "mlp.experts.gate_up_proj_bias", {e, 2 * expert_inter}, 0.1);
      add_tensor(w, c, p + "mlp.experts.down_proj", {e, expert_inter, hidden},
                 std::sqrt(3.0 / static_cast<double>(expert_inter)));
      add_tensor(w, c, p + "mlp.experts.down_proj_bias", {e, hidden}, 0.1);
    } else if (c.model_type == "qwen3_moe" && is_moe_layer(c, i)) {
      // The per-expert names Qwen3-MoE checkpoints store (save_pretrained writes them too).
      add_routed_experts(w, c, p + "mlp.", expert_intermediate_size(c), hidden);
    } else if (c.model_type == "mixtral") {
      // The names save_pretrained writes by default in transformers 5.x (it converts back to
      // the original checkpoint format); in memory 5.x holds them fused as
      // mlp.gate.weight, mlp.experts.gate_up_proj and mlp.experts.down_proj, which the model
      // also accepts.
      const std::string moe = p + "block_sparse_moe.";
      add_linear(w, c, moe + "gate.weight", c.num_local_experts, hidden);
      for (int e = 0; e < c.num_local_experts; ++e) {
        const std::string x = moe + "experts." + std::to_string(e) + ".";
        add_linear(w, c, x + "w1.weight", inter, hidden);
        add_linear(w, c, x + "w2.weight", hidden, inter);
        add_linear(w, c, x + "w3.weight", inter, hidden);
      }
    } else if (phi3) {
      add_linear(w, c, p + "mlp.gate_up_proj.weight", 2 * inter, hidden);
      add_linear(w, c, p + "mlp.down_proj.weight", hidden, inter);
    } else {
      add_gated_mlp(w, c, p + "mlp.", inter, hidden);
    }
  }
  norm(w, "model.norm.weight");
  if (!c.tie_word_embeddings) add_linear(w, c, "lm_head.weight", vocab, hidden);
  return std::move(w.tensors);
}

}  // namespace

Weights synthetic_weights(const ModelConfig& config) { return family_weights(config, true); }

std::vector<std::pair<std::string, Shape>> weight_shapes(const ModelConfig& config) {
  std::vector<std::pair<std::string, Shape>> shapes;
  for (auto& [name, tensor] : family_weights(config, false)) shapes.emplace_back(name, tensor.shape);
  return shapes;
}

Weights rounded_weights(const Weights& weights, DType storage) {
  Weights out = weights;
  if (storage == DType::f64) return out;
  for (auto& [name, tensor] : out)
    for (double& v : tensor.data) v = round_to(storage, static_cast<float>(v));
  return out;
}

}  // namespace pinmark
