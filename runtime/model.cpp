// The forward pass as a flat sequence of backend calls, in the order of Hugging Face's
// LlamaForCausalLM. This file does bookkeeping only (buffers, offsets, the cache); every
// number is computed by the backend, so a test can swap in a broken backend and watch the
// model's output change.
#include "runtime/model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

#include "runtime/normal_quantile.h"
#include "runtime/rope.h"

namespace pinmark {

namespace {

ModelConfig checked(const ModelConfig& config) {
  std::vector<ConfigProblem> problems = validate(config);
  if (!problems.empty()) {
    std::string message = problems[0].message;
    for (size_t i = 1; i < problems.size(); ++i) message += "; " + problems[i].message;
    throw std::runtime_error(message);
  }
  return with_defaults(config);
}

uint64_t next_cache_id() {
  static std::atomic<uint64_t> next{1};
  return next++;
}

}  // namespace

template <class T>
KVCache<T>::KVCache(const ModelConfig& config, int capacity)
    : id_(next_cache_id()), capacity_(capacity) {
  if (capacity < 0)
    throw std::runtime_error("KV cache capacity must not be negative, got " +
                             std::to_string(capacity));
  const ModelConfig c = with_defaults(config);
  // MLA caches the normalised latent and the rotated shared key, not per-head keys and values.
  const bool mla = c.kv_lora_rank > 0;
  const size_t per_layer =
      static_cast<size_t>(capacity) *
      (mla ? int64_t{c.kv_lora_rank} + c.qk_rope_head_dim : int64_t{c.num_key_value_heads} * c.head_dim);
  const std::vector<int> sources = kv_source_layers(c);
  slot_.assign(c.num_hidden_layers, 0);
  int stored = 0;
  for (int l = 0; l < c.num_hidden_layers; ++l)
    slot_[l] = sources[l] == l ? stored++ : slot_[std::max(0, sources[l])];
  k_.assign(stored, std::vector<T>(per_layer));
  v_.assign(stored, std::vector<T>(mla ? 0 : per_layer));
  conv_.resize(c.num_hidden_layers);
  state_.resize(c.num_hidden_layers);
  index_k_.resize(c.num_hidden_layers);
  if (c.model_type == "deepseek_v32")
    for (int l = 0; l < c.num_hidden_layers; ++l)
      index_k_[l].assign(static_cast<size_t>(capacity) * c.index_head_dim, T(0));
  compressor_rows_.resize(c.num_hidden_layers);
  compressed_.resize(c.num_hidden_layers);
  index_rows_.resize(c.num_hidden_layers);
  index_compressed_.resize(c.num_hidden_layers);
  if (is_deepseek_v4(c)) {
    // Keys are values (one shared head): no separate values.
    for (std::vector<T>& v : v_) v.clear();
    for (int l = 0; l < c.num_hidden_layers; ++l) {
      const int rate = compress_rate(c, l);
      if (rate <= 0) continue;
      const int windows = c.layer_types[l] == "compressed_sparse_attention" ? 2 : 1;
      const size_t entries = static_cast<size_t>(capacity / rate);
      compressor_rows_[l].assign(static_cast<size_t>(windows * rate) * 2 * windows * c.head_dim, T(0));
      compressed_[l].assign(entries * c.head_dim, T(0));
      if (windows == 2) {
        index_rows_[l].assign(static_cast<size_t>(2 * rate) * 4 * c.index_head_dim, T(0));
        index_compressed_[l].assign(entries * c.index_head_dim, T(0));
      }
    }
  }
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    if (!is_linear_attention_layer(c, l)) continue;
    // Keys and values of this layer are never written: it keeps no per-token rows.
    k_[slot_[l]].clear();
    v_[slot_[l]].clear();
    const int64_t channels = 2 * int64_t{c.linear_num_key_heads} * c.linear_key_head_dim +
                             int64_t{c.linear_num_value_heads} * c.linear_value_head_dim;
    conv_[l].assign(static_cast<size_t>((c.linear_conv_kernel_dim - 1) * channels), T(0));
    state_[l].assign(static_cast<size_t>(int64_t{c.linear_num_value_heads} *
                                         c.linear_key_head_dim * c.linear_value_head_dim),
                     T(0));
  }
}

namespace {

bool is_gemma(const ModelConfig& c) {
  return c.model_type == "gemma" || c.model_type == "gemma2" || c.model_type == "gemma3_text";
}

// Norms that multiply by (1 + w): Gemma's, and Qwen3-Next's (Qwen3NextRMSNorm is
// Gemma3RMSNorm), which does not scale its embeddings as Gemma does.
bool has_offset_norms(const ModelConfig& c) {
  return is_gemma(c) || c.model_type == "qwen3_next";
}

// Gemma 2, 3 and 3n normalise each sublayer's output as well as its input.
bool has_sandwich_norms(const ModelConfig& c) {
  return c.model_type == "gemma2" || c.model_type == "gemma3_text" || is_gemma3n(c);
}

// Arrays announced to the backend as activations (Backend::hold_activations) for one scope,
// and released when it ends, however it ends. Holds nothing when not enabled.
template <class T>
class HeldActivations {
 public:
  HeldActivations(Backend<T>& backend, bool enabled) : backend_(backend), enabled_(enabled) {}
  HeldActivations(const HeldActivations&) = delete;
  HeldActivations& operator=(const HeldActivations&) = delete;
  ~HeldActivations() {
    for (auto it = arrays_.rbegin(); it != arrays_.rend(); ++it) backend_.release_activations(*it);
  }
  void add(const std::vector<T>& a) {
    if (!enabled_ || a.empty()) return;
    arrays_.push_back(a.data());  // known before it is held: a failed hold is released too
    backend_.hold_activations(a.data(), static_cast<int64_t>(a.size()));
  }

 private:
  Backend<T>& backend_;
  bool enabled_;
  std::vector<const T*> arrays_;
};

// Mixtral's experts as transformers 5.x keeps them in memory ("mlp.experts.gate_up_proj"
// [experts, 2 * intermediate, hidden], gate rows first, and "mlp.experts.down_proj"
// [experts, hidden, intermediate]), split into one matrix per expert. save_pretrained writes
// the legacy per-expert names by default (save_original_format), which synthetic weights use.
template <class T>
std::vector<T> slice(const Tensor<double>& t, int64_t first, int64_t count) {
  return std::vector<T>(t.data.begin() + first, t.data.begin() + first + count);
}

}  // namespace

template <class T>
Model<T>::Model(const ModelConfig& config, const WeightSource& weights, Backend<T>& backend)
    : config_(checked(config)), backend_(backend) {
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int64_t kv_dim = int64_t{c.num_key_value_heads} * c.head_dim;
  kv_source_ = kv_source_layers(c);
  if (c.rope_type != "default" && !is_deepseek_v4(c)) {
    RopeFrequencies f = rope_frequencies(c, 0);
    inv_freq_ = std::move(f.inv_freq);
    attention_scaling_ = f.attention_scaling;
  }

  if (c.model_type == "gpt2") {
    // Conv1D stores [in, out]; transposed once here into the Linear layout the backend takes.
    auto conv = [&](const std::string& name, int64_t in, int64_t out) {
      const Tensor<double>& t = require(weights, name, {in, out});
      std::vector<T> w(static_cast<size_t>(in * out));
      for (int64_t i = 0; i < in; ++i)
        for (int64_t o = 0; o < out; ++o) w[o * in + i] = static_cast<T>(t.data[i * out + o]);
      return w;
    };
    embed_ = load_as<T>(weights, "transformer.wte.weight", {vocab, hidden});
    positions_ = load_as<T>(weights, "transformer.wpe.weight", {c.max_position_embeddings, hidden});
    for (int i = 0; i < c.num_hidden_layers; ++i) {
      const std::string p = "transformer.h." + std::to_string(i) + ".";
      Layer l;
      l.attn_norm = load_as<T>(weights, p + "ln_1.weight", {hidden});
      l.attn_norm_bias = load_as<T>(weights, p + "ln_1.bias", {hidden});
      // c_attn's output columns are q, then k, then v.
      const std::vector<T> qkv = conv(p + "attn.c_attn.weight", hidden, 3 * hidden);
      const WeightArray<T> qkv_bias = load_as<T>(weights, p + "attn.c_attn.bias", {3 * hidden});
      const int64_t block = hidden * hidden;
      l.q = std::vector<T>(qkv.begin(), qkv.begin() + block);
      l.k = std::vector<T>(qkv.begin() + block, qkv.begin() + 2 * block);
      l.v = std::vector<T>(qkv.begin() + 2 * block, qkv.end());
      l.q_bias = std::vector<T>(qkv_bias.begin(), qkv_bias.begin() + hidden);
      l.k_bias = std::vector<T>(qkv_bias.begin() + hidden, qkv_bias.begin() + 2 * hidden);
      l.v_bias = std::vector<T>(qkv_bias.begin() + 2 * hidden, qkv_bias.end());
      l.o = conv(p + "attn.c_proj.weight", hidden, hidden);
      l.o_bias = load_as<T>(weights, p + "attn.c_proj.bias", {hidden});
      l.mlp_norm = load_as<T>(weights, p + "ln_2.weight", {hidden});
      l.mlp_norm_bias = load_as<T>(weights, p + "ln_2.bias", {hidden});
      l.mlp.up = conv(p + "mlp.c_fc.weight", hidden, inter);
      l.mlp.up_bias = load_as<T>(weights, p + "mlp.c_fc.bias", {inter});
      l.mlp.down = conv(p + "mlp.c_proj.weight", inter, hidden);
      l.mlp.down_bias = load_as<T>(weights, p + "mlp.c_proj.bias", {hidden});
      layers_.push_back(std::move(l));
    }
    final_norm_ = load_as<T>(weights, "transformer.ln_f.weight", {hidden});
    final_norm_bias_ = load_as<T>(weights, "transformer.ln_f.bias", {hidden});
    if (!c.tie_word_embeddings) lm_head_ = load_as<T>(weights, "lm_head.weight", {vocab, hidden});
    return;
  }

  embed_ = load_as<T>(weights, "model.embed_tokens.weight", {vocab, hidden});
  if (is_deepseek_v4(c)) {
    load_deepseek_v4(weights);
    return;
  }
  if (is_deepseek(c)) {
    load_deepseek(weights);
    return;
  }
  if (c.model_type == "qwen3_next") {
    load_qwen3_next(weights);
    return;
  }
  const bool olmo2 = c.model_type == "olmo2", phi3 = c.model_type == "phi3";
  const bool gpt_oss = c.model_type == "gpt_oss";
  const int64_t expert_inter = expert_intermediate_size(c);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const bool computes_kv = kv_source_[i] == i;
    const int64_t q_dim = int64_t{query_heads(c, i)} * c.head_dim;
    Layer l;
    // OLMo 2 normalises the sublayers' outputs instead of their inputs.
    if (!olmo2) l.attn_norm = load_as<T>(weights, p + "input_layernorm.weight", {hidden});
    if (phi3) {
      // Phi-3 stores q, k and v as one matrix, rows in that order.
      const Tensor<double>& qkv =
          require(weights, p + "self_attn.qkv_proj.weight", {q_dim + 2 * kv_dim, hidden});
      l.q = slice<T>(qkv, 0, q_dim * hidden);
      l.k = slice<T>(qkv, q_dim * hidden, kv_dim * hidden);
      l.v = slice<T>(qkv, (q_dim + kv_dim) * hidden, kv_dim * hidden);
    } else {
      l.q = load_as<T>(weights, p + "self_attn.q_proj.weight", {q_dim, hidden});
      if (computes_kv) {
        l.k = load_as<T>(weights, p + "self_attn.k_proj.weight", {kv_dim, hidden});
        l.v = load_as<T>(weights, p + "self_attn.v_proj.weight", {kv_dim, hidden});
      }
    }
    l.o = load_as<T>(weights, p + "self_attn.o_proj.weight", {hidden, q_dim});
    if (c.attention_bias || c.model_type == "qwen2") {
      l.q_bias = load_as<T>(weights, p + "self_attn.q_proj.bias", {q_dim});
      if (computes_kv) {
        l.k_bias = load_as<T>(weights, p + "self_attn.k_proj.bias", {kv_dim});
        l.v_bias = load_as<T>(weights, p + "self_attn.v_proj.bias", {kv_dim});
      }
    }
    if (c.attention_bias) l.o_bias = load_as<T>(weights, p + "self_attn.o_proj.bias", {hidden});
    if (gpt_oss) l.sinks = load_as<T>(weights, p + "self_attn.sinks", {q_dim / c.head_dim});
    if (c.model_type == "qwen3" || c.model_type == "qwen3_moe" || c.model_type == "gemma3_text" ||
        is_gemma3n(c)) {
      l.q_norm = load_as<T>(weights, p + "self_attn.q_norm.weight", {c.head_dim});
      if (computes_kv) l.k_norm = load_as<T>(weights, p + "self_attn.k_norm.weight", {c.head_dim});
    }
    if (olmo2) {
      l.q_norm = load_as<T>(weights, p + "self_attn.q_norm.weight", {q_dim});
      if (computes_kv) l.k_norm = load_as<T>(weights, p + "self_attn.k_norm.weight", {kv_dim});
      l.post_attn_norm = load_as<T>(weights, p + "post_attention_layernorm.weight", {hidden});
      l.post_mlp_norm = load_as<T>(weights, p + "post_feedforward_layernorm.weight", {hidden});
    } else if (has_sandwich_norms(c)) {
      l.post_attn_norm = load_as<T>(weights, p + "post_attention_layernorm.weight", {hidden});
      l.mlp_norm = load_as<T>(weights, p + "pre_feedforward_layernorm.weight", {hidden});
      l.post_mlp_norm = load_as<T>(weights, p + "post_feedforward_layernorm.weight", {hidden});
    } else {
      l.mlp_norm = load_as<T>(weights, p + "post_attention_layernorm.weight", {hidden});
    }
    if (is_moe_layer(c, i)) {
      const int64_t experts = c.num_local_experts;
      const std::string legacy = p + "block_sparse_moe.";
      const std::string per_expert = p + "mlp.experts.0.gate_proj.weight";
      if (gpt_oss) {
        // gpt-oss stores its experts as x @ W: gate_up_proj [experts, hidden, 2 * inter] with
        // gate and up interleaved column by column (gate even, up odd), down_proj [experts,
        // inter, hidden]; each with a bias. Transposed here into the Linear layout.
        l.router = load_as<T>(weights, p + "mlp.router.weight", {experts, hidden});
        l.router_bias = load_as<T>(weights, p + "mlp.router.bias", {experts});
        const int64_t inter = expert_inter;
        const Tensor<double>& gate_up =
            require(weights, p + "mlp.experts.gate_up_proj", {experts, hidden, 2 * inter});
        const Tensor<double>& gate_up_bias =
            require(weights, p + "mlp.experts.gate_up_proj_bias", {experts, 2 * inter});
        const Tensor<double>& down =
            require(weights, p + "mlp.experts.down_proj", {experts, inter, hidden});
        const Tensor<double>& down_bias =
            require(weights, p + "mlp.experts.down_proj_bias", {experts, hidden});
        for (int64_t e = 0; e < experts; ++e) {
          std::vector<T> gate(inter * hidden), up(inter * hidden), down_t(hidden * inter);
          const double* gu = gate_up.data.data() + e * hidden * 2 * inter;
          for (int64_t o = 0; o < inter; ++o)
            for (int64_t i = 0; i < hidden; ++i) {
              gate[o * hidden + i] = static_cast<T>(gu[i * 2 * inter + 2 * o]);
              up[o * hidden + i] = static_cast<T>(gu[i * 2 * inter + 2 * o + 1]);
            }
          const double* d = down.data.data() + e * inter * hidden;
          for (int64_t o = 0; o < hidden; ++o)
            for (int64_t i = 0; i < inter; ++i) down_t[o * inter + i] = static_cast<T>(d[i * hidden + o]);
          std::vector<T> gate_bias, up_bias;
          const double* gb = gate_up_bias.data.data() + e * 2 * inter;
          for (int64_t o = 0; o < inter; ++o) {
            gate_bias.push_back(static_cast<T>(gb[2 * o]));
            up_bias.push_back(static_cast<T>(gb[2 * o + 1]));
          }
          Expert x = make_expert(std::move(gate), std::move(up), std::move(down_t));
          x.gate_bias = std::move(gate_bias);
          x.up_bias = std::move(up_bias);
          x.down_bias = slice<T>(down_bias, e * hidden, hidden);
          l.experts.push_back(std::move(x));
        }
      } else if (c.model_type == "mixtral" && weights.contains(legacy + "gate.weight")) {
        l.router = load_as<T>(weights, legacy + "gate.weight", {experts, hidden});
        for (int e = 0; e < experts; ++e) {
          const std::string x = legacy + "experts." + std::to_string(e) + ".";
          l.experts.push_back(make_expert(load_as<T>(weights, x + "w1.weight", {inter, hidden}),
                               load_as<T>(weights, x + "w3.weight", {inter, hidden}),
                               load_as<T>(weights, x + "w2.weight", {hidden, inter})));
        }
      } else if (c.model_type == "qwen3_moe" && weights.contains(per_expert)) {
        // Qwen3-MoE checkpoints store one gate, up and down projection per expert.
        l.router = load_as<T>(weights, p + "mlp.gate.weight", {experts, hidden});
        for (int e = 0; e < experts; ++e)
          l.experts.push_back(gated_weights(
              weights, p + "mlp.experts." + std::to_string(e) + ".", expert_inter, hidden));
      } else {
        l.router = load_as<T>(weights, p + "mlp.gate.weight", {experts, hidden});
        const int64_t inter = expert_inter;
        const Tensor<double>& gate_up =
            require(weights, p + "mlp.experts.gate_up_proj", {experts, 2 * inter, hidden});
        const Tensor<double>& down =
            require(weights, p + "mlp.experts.down_proj", {experts, hidden, inter});
        const int64_t block = inter * hidden;
        for (int64_t e = 0; e < experts; ++e)
          l.experts.push_back(make_expert(slice<T>(gate_up, 2 * e * block, block),
                               slice<T>(gate_up, (2 * e + 1) * block, block),
                               slice<T>(down, e * block, block)));
      }
    } else if (phi3) {
      // Phi-3's gate and up projections are one matrix, the gate's rows first.
      const Tensor<double>& gate_up =
          require(weights, p + "mlp.gate_up_proj.weight", {2 * inter, hidden});
      l.mlp = make_expert(slice<T>(gate_up, 0, inter * hidden),
                          slice<T>(gate_up, inter * hidden, inter * hidden),
                          load_as<T>(weights, p + "mlp.down_proj.weight", {hidden, inter}));
    } else {
      l.mlp = gated_weights(weights, p + "mlp.", layer_intermediate_size(c, i), hidden);
    }
    layers_.push_back(std::move(l));
  }
  if (is_gemma3n(c)) load_gemma3n(weights);
  final_norm_ = load_as<T>(weights, "model.norm.weight", {hidden});
  if (!c.tie_word_embeddings) lm_head_ = load_as<T>(weights, "lm_head.weight", {vocab, hidden});
}

// Qwen3-Next under the names of its checkpoints (transformers 5.17 saves the same). The fused
// projections are regrouped row by row, so each output is the same dot product as in the
// fused matrix.
template <class T>
void Model<T>::load_qwen3_next(const WeightSource& weights) {
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, hd = c.head_dim;
  const int64_t kv_dim = int64_t{c.num_key_value_heads} * hd;
  const int64_t kh = c.linear_num_key_heads, vh = c.linear_num_value_heads;
  const int64_t dk = c.linear_key_head_dim, dv = c.linear_value_head_dim;
  const int64_t key_dim = kh * dk, value_dim = vh * dv, group = vh / kh;
  const int64_t channels = 2 * key_dim + value_dim, kernel = c.linear_conv_kernel_dim;
  auto rows = [&](const Tensor<double>& t, int64_t first, int64_t count, std::vector<T>& to) {
    to.insert(to.end(), t.data.begin() + first * hidden, t.data.begin() + (first + count) * hidden);
  };
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Layer l;
    l.attn_norm = load_as<T>(weights, p + "input_layernorm.weight", {hidden});
    if (is_linear_attention_layer(c, i)) {
      const std::string a = p + "linear_attn.";
      // in_proj_qkvz: per key head g, its query (dk rows), key (dk), the values of its group's
      // value heads (group * dv) and their z gates (group * dv).
      const Tensor<double>& qkvz =
          require(weights, a + "in_proj_qkvz.weight", {2 * key_dim + 2 * value_dim, hidden});
      const int64_t stride = 2 * dk + 2 * group * dv;
      std::vector<T> in_qkv, in_z, in_b, in_a;
      for (int64_t g = 0; g < kh; ++g) rows(qkvz, g * stride, dk, in_qkv);
      for (int64_t g = 0; g < kh; ++g) rows(qkvz, g * stride + dk, dk, in_qkv);
      for (int64_t g = 0; g < kh; ++g) rows(qkvz, g * stride + 2 * dk, group * dv, in_qkv);
      for (int64_t g = 0; g < kh; ++g)
        rows(qkvz, g * stride + 2 * dk + group * dv, group * dv, in_z);
      // in_proj_ba: per key head, the b (beta) rows of its value heads, then the a (decay) rows.
      const Tensor<double>& ba = require(weights, a + "in_proj_ba.weight", {2 * vh, hidden});
      for (int64_t g = 0; g < kh; ++g) rows(ba, g * 2 * group, group, in_b);
      for (int64_t g = 0; g < kh; ++g) rows(ba, g * 2 * group + group, group, in_a);
      l.in_qkv = std::move(in_qkv);
      l.in_z = std::move(in_z);
      l.in_b = std::move(in_b);
      l.in_a = std::move(in_a);
      l.conv = load_as<T>(weights, a + "conv1d.weight", {channels, 1, kernel});
      l.A_log = load_as<T>(weights, a + "A_log", {vh});
      l.dt_bias = load_as<T>(weights, a + "dt_bias", {vh});
      l.gated_norm = load_as<T>(weights, a + "norm.weight", {dv});
      l.out_proj = load_as<T>(weights, a + "out_proj.weight", {hidden, value_dim});
    } else {
      const std::string a = p + "self_attn.";
      const int64_t heads = query_heads(c, i), q_dim = heads * hd;
      // q_proj: per head, its hd query rows, then its hd gate rows.
      const Tensor<double>& q = require(weights, a + "q_proj.weight", {2 * q_dim, hidden});
      std::vector<T> query, gate;
      for (int64_t h = 0; h < heads; ++h) rows(q, 2 * h * hd, hd, query);
      for (int64_t h = 0; h < heads; ++h) rows(q, 2 * h * hd + hd, hd, gate);
      l.q = std::move(query);
      l.attn_gate = std::move(gate);
      l.k = load_as<T>(weights, a + "k_proj.weight", {kv_dim, hidden});
      l.v = load_as<T>(weights, a + "v_proj.weight", {kv_dim, hidden});
      l.o = load_as<T>(weights, a + "o_proj.weight", {hidden, q_dim});
      if (c.attention_bias) {
        const Tensor<double>& qb = require(weights, a + "q_proj.bias", {2 * q_dim});
        std::vector<T> q_bias, gate_bias;
        for (int64_t h = 0; h < heads; ++h) {
          q_bias.insert(q_bias.end(), qb.data.begin() + 2 * h * hd, qb.data.begin() + (2 * h + 1) * hd);
          gate_bias.insert(gate_bias.end(), qb.data.begin() + (2 * h + 1) * hd,
                           qb.data.begin() + (2 * h + 2) * hd);
        }
        l.q_bias = std::move(q_bias);
        l.attn_gate_bias = std::move(gate_bias);
        l.k_bias = load_as<T>(weights, a + "k_proj.bias", {kv_dim});
        l.v_bias = load_as<T>(weights, a + "v_proj.bias", {kv_dim});
        l.o_bias = load_as<T>(weights, a + "o_proj.bias", {hidden});
      }
      l.q_norm = load_as<T>(weights, a + "q_norm.weight", {hd});
      l.k_norm = load_as<T>(weights, a + "k_norm.weight", {hd});
    }
    l.mlp_norm = load_as<T>(weights, p + "post_attention_layernorm.weight", {hidden});
    if (is_moe_layer(c, i)) {
      const int64_t width = expert_intermediate_size(c), shared = c.shared_expert_intermediate_size;
      l.router = load_as<T>(weights, p + "mlp.gate.weight", {c.num_local_experts, hidden});
      if (weights.contains(p + "mlp.experts.0.gate_proj.weight")) {
        for (int e = 0; e < c.num_local_experts; ++e)
          l.experts.push_back(
              gated_weights(weights, p + "mlp.experts." + std::to_string(e) + ".", width, hidden));
      } else {
        // transformers 5's fused layout: gate_up_proj [experts, 2 * width, hidden], gate rows first.
        const int64_t experts = c.num_local_experts, block = width * hidden;
        const Tensor<double>& gate_up =
            require(weights, p + "mlp.experts.gate_up_proj", {experts, 2 * width, hidden});
        const Tensor<double>& down =
            require(weights, p + "mlp.experts.down_proj", {experts, hidden, width});
        for (int64_t e = 0; e < experts; ++e)
          l.experts.push_back(make_expert(slice<T>(gate_up, 2 * e * block, block),
                                          slice<T>(gate_up, (2 * e + 1) * block, block),
                                          slice<T>(down, e * block, block)));
      }
      if (shared > 0) {
        l.shared = gated_weights(weights, p + "mlp.shared_expert.", shared, hidden);
        l.shared_gate = load_as<T>(weights, p + "mlp.shared_expert_gate.weight", {1, hidden});
      }
    } else {
      l.mlp = gated_weights(weights, p + "mlp.", inter, hidden);
    }
    layers_.push_back(std::move(l));
  }
  final_norm_ = load_as<T>(weights, "model.norm.weight", {hidden});
  if (!c.tie_word_embeddings) lm_head_ = load_as<T>(weights, "lm_head.weight", {c.vocab_size, hidden});
}

// A Gated DeltaNet layer (Qwen3NextGatedDeltaNet): projections, the causal convolution over
// the cached inputs and the new ones, the gated delta rule over the cached state, the gated
// norm, out_proj.
template <class T>
void Model<T>::gated_delta_net(const Layer& L, const std::string& p, int layer, const T* h, int n,
                               KVCache<T>& cache, const TapFn<T>& tap, T* out) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, kernel = c.linear_conv_kernel_dim;
  const int vh = c.linear_num_value_heads, dv = c.linear_value_head_dim;
  const int key_dim = c.linear_num_key_heads * c.linear_key_head_dim, value_dim = vh * dv;
  const int channels = 2 * key_dim + value_dim;
  const int64_t history = int64_t{kernel - 1} * channels;
  // The convolution's input: the cached kernel - 1 rows, then this call's projections.
  std::vector<T> x(history + int64_t{n} * channels);
  std::copy(cache.conv_state(layer), cache.conv_state(layer) + history, x.begin());
  linear(h, L.in_qkv, {}, n, hidden, channels, x.data() + history);
  std::vector<T> z(int64_t{n} * value_dim), b(int64_t{n} * vh), a(int64_t{n} * vh);
  linear(h, L.in_z, {}, n, hidden, value_dim, z.data());
  linear(h, L.in_b, {}, n, hidden, vh, b.data());
  linear(h, L.in_a, {}, n, hidden, vh, a.data());
  std::copy(x.end() - history, x.end(), cache.conv_state(layer));

  std::vector<T> mixed(int64_t{n} * channels);
  backend_.causal_conv1d_silu(x.data(), L.conv.data(), n, channels, kernel, mixed.data());
  if (tap) tap(p + "conv", {n, channels}, mixed.data());

  GatedDeltaParams g;
  g.n = n;
  g.k_heads = c.linear_num_key_heads;
  g.v_heads = vh;
  g.k_dim = c.linear_key_head_dim;
  g.v_dim = dv;
  std::vector<T> core(int64_t{n} * value_dim);
  backend_.gated_delta_rule(mixed.data(), a.data(), b.data(), L.A_log.data(), L.dt_bias.data(), g,
                            cache.recurrent_state(layer), core.data());
  if (tap) {
    tap(p + "delta_rule", {n, vh, dv}, core.data());
    tap(p + "recurrent_state", {vh, c.linear_key_head_dim, dv}, cache.recurrent_state(layer));
  }
  std::vector<T> normed(core.size());
  backend_.rmsnorm_gated(core.data(), L.gated_norm.data(), z.data(), n * vh, dv, c.rms_norm_eps,
                         normed.data());
  if (tap) tap(p + "gated_norm", {n, value_dim}, normed.data());
  linear(normed.data(), L.out_proj, {}, n, value_dim, hidden, out);
}

// DeepSeek-V3 and V3.2 under the names of their checkpoints (transformers 5.17 saves the same).
template <class T>
void Model<T>::load_deepseek(const WeightSource& weights) {
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int64_t heads = c.num_attention_heads, qk = c.qk_nope_head_dim + c.qk_rope_head_dim;
  const int64_t rank = c.kv_lora_rank, rope = c.qk_rope_head_dim;
  const int64_t experts = c.num_local_experts, width = expert_intermediate_size(c);
  const int64_t shared_width = width * c.n_shared_experts;
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string a = p + "self_attn.";
    Layer l;
    l.attn_norm = load_as<T>(weights, p + "input_layernorm.weight", {hidden});
    if (c.q_lora_rank > 0) {
      l.q_a = load_as<T>(weights, a + "q_a_proj.weight", {c.q_lora_rank, hidden});
      if (c.attention_bias) l.q_a_bias = load_as<T>(weights, a + "q_a_proj.bias", {c.q_lora_rank});
      l.q_a_norm = load_as<T>(weights, a + "q_a_layernorm.weight", {c.q_lora_rank});
      l.q_b = load_as<T>(weights, a + "q_b_proj.weight", {heads * qk, c.q_lora_rank});
    } else {
      l.q = load_as<T>(weights, a + "q_proj.weight", {heads * qk, hidden});
    }
    l.kv_a = load_as<T>(weights, a + "kv_a_proj_with_mqa.weight", {rank + rope, hidden});
    if (c.attention_bias) l.kv_a_bias = load_as<T>(weights, a + "kv_a_proj_with_mqa.bias", {rank + rope});
    l.kv_a_norm = load_as<T>(weights, a + "kv_a_layernorm.weight", {rank});
    l.kv_b = load_as<T>(weights, a + "kv_b_proj.weight", {heads * (c.qk_nope_head_dim + c.v_head_dim), rank});
    if (c.mla_absorb) {
      // Each head's key rows of kv_b, W_UK_h [nope, rank], transposed to [rank, nope]: the
      // Linear layout of the map q_nope -> q_nope W_UK_h.
      const int64_t nope = c.qk_nope_head_dim, stride = nope + c.v_head_dim;
      std::vector<T> key_t(heads * rank * nope);
      for (int64_t hh = 0; hh < heads; ++hh)
        for (int64_t d = 0; d < nope; ++d)
          for (int64_t r = 0; r < rank; ++r)
            key_t[(hh * rank + r) * nope + d] = l.kv_b[(hh * stride + d) * rank + r];
      l.kv_b_key_t = std::move(key_t);
    }
    if (c.index_n_heads > 0) {
      const std::string x = a + "indexer.";
      const int64_t ih = c.index_n_heads, id = c.index_head_dim;
      l.index_wq_b = load_as<T>(weights, x + "wq_b.weight", {ih * id, c.q_lora_rank});
      l.index_wk = load_as<T>(weights, x + "wk.weight", {id, hidden});
      l.index_k_norm = load_as<T>(weights, x + "k_norm.weight", {id});
      l.index_k_norm_bias = load_as<T>(weights, x + "k_norm.bias", {id});
      l.index_weights_proj = load_as<T>(weights, x + "weights_proj.weight", {ih, hidden});
    }
    l.o = load_as<T>(weights, a + "o_proj.weight", {hidden, heads * c.v_head_dim});
    if (c.attention_bias) l.o_bias = load_as<T>(weights, a + "o_proj.bias", {hidden});
    l.mlp_norm = load_as<T>(weights, p + "post_attention_layernorm.weight", {hidden});
    if (is_moe_layer(c, i)) {
      l.router = load_as<T>(weights, p + "mlp.gate.weight", {experts, hidden});
      l.score_correction = load_as<T>(weights, p + "mlp.gate.e_score_correction_bias", {experts});
      for (int e = 0; e < experts; ++e)
        l.experts.push_back(
            gated_weights(weights, p + "mlp.experts." + std::to_string(e) + ".", width, hidden));
      if (c.n_shared_experts > 0)
        l.shared = gated_weights(weights, p + "mlp.shared_experts.", shared_width, hidden);
    } else {
      l.mlp = gated_weights(weights, p + "mlp.", inter, hidden);
    }
    layers_.push_back(std::move(l));
  }
  final_norm_ = load_as<T>(weights, "model.norm.weight", {hidden});
  if (!c.tie_word_embeddings) lm_head_ = load_as<T>(weights, "lm_head.weight", {vocab, hidden});
}

// DeepseekV3RMSNorm's own default: q_a_layernorm and kv_a_layernorm are built without the
// config's rms_norm_eps.
constexpr double kMlaNormEps = 1e-6;

// DeepSeek-V3's Multi-head Latent Attention as transformers 5.17's DeepseekV3Attention computes
// it: the cache holds each position's normalised latent and rotated shared key; every call
// expands the keys and values of all cached positions from them through kv_b_proj.
template <class T>
void Model<T>::mla_attention(const Layer& L, const std::string& p, int layer, const T* h, int n,
                             const int* positions, int p0, KVCache<T>& cache, const TapFn<T>& tap,
                             const RouteFn& route, T* out) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, heads = c.num_attention_heads;
  const int nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, vd = c.v_head_dim;
  const int qk = nope + rope, rank = c.kv_lora_rank, row = rank + rope;
  const int kv_len = p0 + n;
  auto emit = [&](const std::string& name, const Shape& shape, const T* data) {
    if (tap) tap(name, shape, data);
  };

  std::vector<T> q(int64_t{n} * heads * qk), qn;
  if (c.q_lora_rank > 0) {
    std::vector<T> qa(int64_t{n} * c.q_lora_rank);
    qn.resize(qa.size());
    linear(h, L.q_a, L.q_a_bias, n, hidden, c.q_lora_rank, qa.data());
    backend_.rmsnorm(qa.data(), L.q_a_norm.data(), n, c.q_lora_rank, kMlaNormEps, qn.data());
    backend_.matmul(qn.data(), held(L.q_b, c.q_lora_rank, heads * qk), n, c.q_lora_rank,
                    heads * qk, q.data());
  } else {
    backend_.matmul(h, held(L.q, hidden, heads * qk), n, hidden, heads * qk, q.data());
  }
  std::vector<T> ckv(int64_t{n} * row), latent(int64_t{n} * rank), normed(latent.size());
  std::vector<T> k_rot(int64_t{n} * rope), q_rot(int64_t{n} * heads * rope);
  linear(h, L.kv_a, L.kv_a_bias, n, hidden, row, ckv.data());
  for (int i = 0; i < n; ++i) {
    std::copy(ckv.begin() + int64_t{i} * row, ckv.begin() + int64_t{i} * row + rank,
              latent.begin() + int64_t{i} * rank);
    std::copy(ckv.begin() + int64_t{i} * row + rank, ckv.begin() + int64_t{i + 1} * row,
              k_rot.begin() + int64_t{i} * rope);
  }
  backend_.rmsnorm(latent.data(), L.kv_a_norm.data(), n, rank, kMlaNormEps, normed.data());

  // The rotary parts. With rope_interleave the checkpoint pairs adjacent values (2j, 2j + 1);
  // transformers regroups them as (evens, odds) and rotates that as pairs (j, j + rope / 2),
  // leaving the result regrouped, in queries and keys alike.
  auto gather = [&](const T* src, T* dst) {
    for (int d = 0; d < rope; ++d)
      dst[d] = c.rope_interleave ? src[d < rope / 2 ? 2 * d : 2 * (d - rope / 2) + 1] : src[d];
  };
  std::vector<T> tmp(rope);
  for (int64_t r = 0; r < int64_t{n} * heads; ++r) gather(q.data() + r * qk + nope, q_rot.data() + r * rope);
  for (int i = 0; i < n; ++i) {
    gather(k_rot.data() + int64_t{i} * rope, tmp.data());
    std::copy(tmp.begin(), tmp.end(), k_rot.begin() + int64_t{i} * rope);
  }
  rotate(q_rot.data(), positions, n, heads, false);
  rotate(k_rot.data(), positions, n, 1, false);
  for (int64_t r = 0; r < int64_t{n} * heads; ++r)
    std::copy(q_rot.begin() + r * rope, q_rot.begin() + (r + 1) * rope, q.begin() + r * qk + nope);
  emit(p + "q", {n, heads, qk}, q.data());
  emit(p + "latent", {n, rank}, normed.data());
  emit(p + "k_rot", {n, rope}, k_rot.data());

  // The new rows [latent, k_rot], written as one announced write: attention in the latent
  // space reads the cached rows whole.
  T* cached = cache.keys(layer);
  std::vector<T> rows(int64_t{n} * row);
  for (int i = 0; i < n; ++i) {
    std::copy(normed.begin() + int64_t{i} * rank, normed.begin() + int64_t{i + 1} * rank,
              rows.begin() + int64_t{i} * row);
    std::copy(k_rot.begin() + int64_t{i} * rope, k_rot.begin() + int64_t{i + 1} * rope,
              rows.begin() + int64_t{i} * row + rank);
  }
  write_cache(cached, int64_t{cache.capacity()} * row, int64_t{p0} * row, rows.data(),
              static_cast<int64_t>(rows.size()));

  // qk^-0.5, and for yarn with mscale_all_dim the square of its mscale as well
  // (DeepseekV3Attention's scaling).
  double scale = 1.0 / std::sqrt(static_cast<double>(qk));
  if (c.rope_type == "yarn" && c.rope_mscale_all_dim > 0 && c.rope_factor > 1) {
    const double m = 0.1 * c.rope_mscale_all_dim * std::log(c.rope_factor) + 1.0;
    scale *= m * m;
  }

  // DeepSeek Sparse Attention: each query attends over the keys its indexer selects only.
  std::vector<char> selected;
  if (c.index_n_heads > 0)
    selected = sparse_selection(L, p, layer, h, qn.data(), n, positions, p0, cache, tap, route);
  auto unselected_masked = [&](T* scores) {
    if (selected.empty()) return;
    const T neg_inf = -std::numeric_limits<T>::infinity();
    for (int hh = 0; hh < heads; ++hh)
      for (int64_t e = 0; e < int64_t{n} * kv_len; ++e)
        if (!selected[e]) scores[int64_t{hh} * n * kv_len + e] = neg_inf;
  };

  // The latents of every cached position [kv_len, rank], without their rotary keys.
  std::vector<T> latents(int64_t{kv_len} * rank);
  for (int j = 0; j < kv_len; ++j)
    std::copy(cached + int64_t{j} * row, cached + int64_t{j} * row + rank,
              latents.begin() + int64_t{j} * rank);

  if (c.mla_absorb) {
    // Each head's query in latent space: [q_nope W_UK_h, q_rope] against the cached rows
    // [latent, k_rot] as one shared key head; the weighted latents then through W_UV_h.
    const int wide = rank + rope;
    std::vector<T> qa(int64_t{n} * heads * wide), part(int64_t{n} * nope), proj(int64_t{n} * rank);
    for (int hh = 0; hh < heads; ++hh) {
      for (int i = 0; i < n; ++i)
        std::copy(q.begin() + (int64_t{i} * heads + hh) * qk,
                  q.begin() + (int64_t{i} * heads + hh) * qk + nope, part.begin() + int64_t{i} * nope);
      backend_.matmul(part.data(), L.kv_b_key_t.data() + int64_t{hh} * rank * nope, n, nope, rank,
                      proj.data());
      for (int i = 0; i < n; ++i) {
        T* row = qa.data() + (int64_t{i} * heads + hh) * wide;
        std::copy(proj.begin() + int64_t{i} * rank, proj.begin() + int64_t{i + 1} * rank, row);
        std::copy(q.begin() + (int64_t{i} * heads + hh) * qk + nope,
                  q.begin() + (int64_t{i} * heads + hh + 1) * qk, row + rank);
      }
    }
    std::vector<T> scores(int64_t{heads} * n * kv_len), mixed(int64_t{n} * heads * rank);
    backend_.attention_scores(qa.data(), cached, positions, n, kv_len, heads, 1, wide, scale,
                              scores.data());
    unselected_masked(scores.data());
    backend_.softmax(scores.data(), heads * n, kv_len);
    emit(p + "scores", {heads, n, kv_len}, scores.data());
    backend_.attention_values(scores.data(), latents.data(), n, kv_len, heads, 1, rank,
                              mixed.data());
    std::vector<T> att(int64_t{n} * heads * vd), head_in(int64_t{n} * rank), head_out(int64_t{n} * vd);
    for (int hh = 0; hh < heads; ++hh) {
      for (int i = 0; i < n; ++i)
        std::copy(mixed.begin() + (int64_t{i} * heads + hh) * rank,
                  mixed.begin() + (int64_t{i} * heads + hh + 1) * rank, head_in.begin() + int64_t{i} * rank);
      backend_.matmul(head_in.data(), L.kv_b.data() + (int64_t{hh} * (nope + vd) + nope) * rank, n,
                      rank, vd, head_out.data());
      for (int i = 0; i < n; ++i)
        std::copy(head_out.begin() + int64_t{i} * vd, head_out.begin() + int64_t{i + 1} * vd,
                  att.begin() + (int64_t{i} * heads + hh) * vd);
    }
    linear(att.data(), L.o, L.o_bias, n, heads * vd, hidden, out);
    return;
  }

  // Keys [kv_len, heads, qk] and values [kv_len, heads, vd] of every cached position.
  std::vector<T> kv(int64_t{kv_len} * heads * (nope + vd));
  backend_.matmul(latents.data(), held(L.kv_b, rank, heads * (nope + vd)), kv_len, rank,
                  heads * (nope + vd), kv.data());
  std::vector<T> keys(int64_t{kv_len} * heads * qk), values(int64_t{kv_len} * heads * vd);
  for (int j = 0; j < kv_len; ++j)
    for (int hh = 0; hh < heads; ++hh) {
      const T* src = kv.data() + (int64_t{j} * heads + hh) * (nope + vd);
      T* key = keys.data() + (int64_t{j} * heads + hh) * qk;
      std::copy(src, src + nope, key);
      std::copy(cached + int64_t{j} * row + rank, cached + int64_t{j + 1} * row, key + nope);
      std::copy(src + nope, src + nope + vd, values.data() + (int64_t{j} * heads + hh) * vd);
    }
  emit(p + "k", {n, heads, qk}, keys.data() + int64_t{p0} * heads * qk);
  emit(p + "v", {n, heads, vd}, values.data() + int64_t{p0} * heads * vd);
  std::vector<T> scores(int64_t{heads} * n * kv_len), att(int64_t{n} * heads * vd);
  backend_.attention_scores(q.data(), keys.data(), positions, n, kv_len, heads, heads, qk, scale,
                            scores.data());
  unselected_masked(scores.data());
  backend_.softmax(scores.data(), heads * n, kv_len);
  emit(p + "scores", {heads, n, kv_len}, scores.data());
  backend_.attention_values(scores.data(), values.data(), n, kv_len, heads, heads, vd, att.data());
  linear(att.data(), L.o, L.o_bias, n, heads * vd, hidden, out);
}

template <class T>
void Model<T>::tap_index_choice(const TapFn<T>& tap, const std::string& p, int n, int entries,
                                const std::vector<T>& scores, const std::vector<int>& ids,
                                int top_k) {
  if (!tap) return;
  std::vector<T> shown(scores);
  for (T& v : shown)
    if (std::isinf(v) && v < 0) v = 0;
  tap(p + "index_scores", {n, entries}, shown.data());
  const std::vector<T> chosen(ids.begin(), ids.end());
  tap(p + "index_topk", {n, top_k}, chosen.data());
}

// DeepseekV32Indexer (transformers 5.17) and the top-k it feeds: the indexer's queries from
// q_resid through wq_b, its one key head from h through wk and a LayerNorm (eps 1e-6); RoPE,
// half-split (unlike MLA's interleaved part), on the first qk_rope_head_dim values of each;
// per-head weights from h through weights_proj, times index_n_heads^-0.5; the scores of
// Backend::indexer_scores over every cached key; each query's min(index_topk, kv_len) best keys,
// ties to the lower position. Keys after a query's position score -infinity, so they are chosen
// only when the query sees fewer keys than index_topk, and stay masked.
template <class T>
std::vector<char> Model<T>::sparse_selection(const Layer& L, const std::string& p, int layer,
                                             const T* h, const T* q_resid, int n,
                                             const int* positions, int p0, KVCache<T>& cache,
                                             const TapFn<T>& tap, const RouteFn& route) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, heads = c.index_n_heads, dim = c.index_head_dim;
  const int rope = c.qk_rope_head_dim, kv_len = p0 + n;
  std::vector<T> q(int64_t{n} * heads * dim), k(int64_t{n} * dim), normed(k.size());
  std::vector<T> weights(int64_t{n} * heads);
  backend_.matmul(q_resid, held(L.index_wq_b, c.q_lora_rank, heads * dim), n, c.q_lora_rank,
                  heads * dim, q.data());
  backend_.matmul(h, held(L.index_wk, hidden, dim), n, hidden, dim, k.data());
  backend_.layernorm(k.data(), L.index_k_norm.data(), L.index_k_norm_bias.data(), n, dim,
                     kMlaNormEps, normed.data());
  backend_.matmul(h, held(L.index_weights_proj, hidden, heads), n, hidden, heads, weights.data());
  // RoPE on the first `rope` values of each query head and of the key.
  rotate_prefix(q.data(), positions, n, heads, dim, rope);
  rotate_prefix(normed.data(), positions, n, 1, dim, rope);
  T* keys = cache.index_keys(layer);
  std::copy(normed.begin(), normed.end(), keys + int64_t{p0} * dim);

  std::vector<T> scores(int64_t{n} * kv_len);
  backend_.indexer_scores(q.data(), keys, weights.data(), positions, n, kv_len, heads, dim,
                          1.0 / std::sqrt(static_cast<double>(dim)),
                          1.0 / std::sqrt(static_cast<double>(heads)), scores.data());
  const int top_k = std::min(c.index_topk, kv_len);
  std::vector<int> ids(int64_t{n} * top_k);
  for (int i = 0; i < n; ++i) {
    const T* row = scores.data() + int64_t{i} * kv_len;
    std::vector<int> order(kv_len);
    for (int j = 0; j < kv_len; ++j) order[j] = j;
    // Masked keys (-infinity) after every finite score, in position order.
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
    std::copy(order.begin(), order.begin() + top_k, ids.begin() + int64_t{i} * top_k);
  }
  tap_index_choice(tap, p, n, kv_len, scores, ids, top_k);
  if (route) route(p + "index_topk", n, top_k, ids.data());
  std::vector<char> selected(int64_t{n} * kv_len, 0);
  for (int i = 0; i < n; ++i)
    for (int s = 0; s < top_k; ++s) {
      const int j = ids[int64_t{i} * top_k + s];
      if (j < 0 || j >= kv_len) throw std::runtime_error("forced key position out of range");
      selected[int64_t{i} * kv_len + j] = 1;
    }
  return selected;
}

namespace {

// DeepseekV3TopkRouter's weights of the chosen experts ids[top_k]: their uncorrected scores,
// renormalised (plus 1e-20) when norm_topk_prob, times routed_scaling_factor.
template <class T>
void deepseek_expert_weights(const ModelConfig& c, const T* scores, const int* ids, T* weights) {
  const int top_k = c.num_experts_per_tok;
  T sum = 0;
  for (int s = 0; s < top_k; ++s) {
    weights[s] = scores[ids[s]];
    sum += weights[s];
  }
  for (int s = 0; s < top_k; ++s) {
    if (c.norm_topk_prob) weights[s] /= sum + static_cast<T>(1e-20);
    weights[s] *= static_cast<T>(c.routed_scaling_factor);
  }
}

}  // namespace

// DeepseekV3TopkRouter: sigmoid scores; the correction bias moves only the choice, within the
// topk_group groups whose two best (corrected) scores sum highest; the weights as
// deepseek_expert_weights gives them. Ties go to the lower index.
template <class T>
void Model<T>::deepseek_route(const Layer& L, const T* logits, int n, T* probs, int* ids,
                              T* weights) {
  const ModelConfig& c = config_;
  const int count = c.num_local_experts, top_k = c.num_experts_per_tok;
  const int per_group = count / c.n_group;
  for (int r = 0; r < n; ++r) {
    T* pr = probs + int64_t{r} * count;
    std::vector<T> choice(count);
    for (int e = 0; e < count; ++e) {
      pr[e] = T(1) / (T(1) + std::exp(-logits[int64_t{r} * count + e]));
      choice[e] = pr[e] + L.score_correction[e];
    }
    std::vector<T> group_score(c.n_group);
    for (int g = 0; g < c.n_group; ++g) {
      std::vector<T> members(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group);
      std::partial_sort(members.begin(), members.begin() + 2, members.end(), std::greater<T>());
      group_score[g] = members[0] + members[1];
    }
    std::vector<int> groups(c.n_group);
    for (int g = 0; g < c.n_group; ++g) groups[g] = g;
    std::stable_sort(groups.begin(), groups.end(),
                     [&](int a, int b) { return group_score[a] > group_score[b]; });
    std::vector<bool> allowed(count, false);
    for (int s = 0; s < c.topk_group; ++s)
      for (int e = 0; e < per_group; ++e) allowed[groups[s] * per_group + e] = true;
    std::vector<int> order;
    for (int e = 0; e < count; ++e)
      if (allowed[e]) order.push_back(e);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return choice[a] > choice[b]; });
    for (int s = 0; s < top_k; ++s) ids[int64_t{r} * top_k + s] = order[s];
  }
  for (int r = 0; r < n; ++r)
    deepseek_expert_weights(c, probs + int64_t{r} * count, ids + int64_t{r} * top_k,
                            weights + int64_t{r} * top_k);
}

// DeepseekV4TopKRouter and DeepseekV4HashRouter (transformers 5.17): scores by scoring_func,
// sqrtsoftplus as F.softplus(x).sqrt() (softplus x itself above 20); the experts by score plus
// correction bias, ties to the lower index, or from the hash table; always renormalised.
template <class T>
void Model<T>::v4_route(const Layer& L, const T* logits, const int* tokens, int n, T* probs,
                        int* ids, T* weights) {
  const ModelConfig& c = config_;
  const int count = c.num_local_experts, top_k = c.num_experts_per_tok;
  for (int r = 0; r < n; ++r) {
    const T* lr = logits + int64_t{r} * count;
    T* pr = probs + int64_t{r} * count;
    for (int e = 0; e < count; ++e) {
      if (c.scoring_func == "sigmoid") {
        pr[e] = T(1) / (T(1) + std::exp(-lr[e]));
      } else if (c.scoring_func == "sqrtsoftplus") {
        const T x = lr[e];
        pr[e] = std::sqrt(x > T(20) ? x : std::log1p(std::exp(x)));
      }
    }
    int* ir = ids + int64_t{r} * top_k;
    if (!L.tid2eid.empty()) {
      if (!tokens) throw std::runtime_error("hash routing needs the tokens");
      std::copy(L.tid2eid.begin() + int64_t{tokens[r]} * top_k,
                L.tid2eid.begin() + int64_t{tokens[r] + 1} * top_k, ir);
    } else {
      std::vector<T> choice(count);
      for (int e = 0; e < count; ++e) choice[e] = pr[e] + L.score_correction[e];
      std::vector<int> order(count);
      for (int e = 0; e < count; ++e) order[e] = e;
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return choice[a] > choice[b]; });
      std::copy(order.begin(), order.begin() + top_k, ir);
    }
    deepseek_expert_weights(c, pr, ir, weights + int64_t{r} * top_k);
  }
}

template <class T>
void Model<T>::norm(const T* x, std::span<const T> w, std::span<const T> b, int rows, int dim,
                    T* y) {
  const ModelConfig& c = config_;
  if (c.model_type == "gpt2")
    backend_.layernorm(x, w.data(), b.data(), rows, dim, c.rms_norm_eps, y);
  else if (has_offset_norms(c))
    backend_.rmsnorm_plus_one(x, w.data(), rows, dim, c.rms_norm_eps, y);
  else
    backend_.rmsnorm(x, w.data(), rows, dim, c.rms_norm_eps, y);
}

template <class T>
typename Model<T>::Expert Model<T>::gated_weights(const WeightSource& weights, const std::string& prefix,
                                                  int64_t width, int64_t hidden) {
  return make_expert(load_as<T>(weights, prefix + "gate_proj.weight", {width, hidden}),
                     load_as<T>(weights, prefix + "up_proj.weight", {width, hidden}),
                     load_as<T>(weights, prefix + "down_proj.weight", {hidden, width}));
}

template <class T>
Model<T>::~Model() {
  watcher_->model = nullptr;
  for (const T* w : held_) backend_.release_matrix(w);
  for (const T* a : cache_arrays_) backend_.release_cache(a);
}

template <class T>
void Model<T>::write_cache(T* array, int64_t capacity, int64_t first, const T* src,
                           int64_t count) {
  // Known as announced before it changes, so that a failure in between cannot leave a
  // written array unreleased.
  cache_arrays_.insert(array);
  backend_.write_cache(array, capacity, first, src, count);
}

template <class T>
void Model<T>::attend_to(KVCache<T>& cache) {
  if (cache.id() == cache_id_) return;
  forget_cache(cache_id_);
  // The cache is watched before it counts as attended to: replacing its watch makes the old
  // one's call, which may be this model's own from an earlier turn of the same cache.
  const std::shared_ptr<CacheWatcher> watcher = watcher_;
  const uint64_t id = cache.id();
  cache.watch(CacheWatch([watcher, id] {
    if (watcher->model) watcher->model->forget_cache(id);
  }));
  cache_id_ = id;
}

template <class T>
void Model<T>::forget_cache(uint64_t id) {
  if (id == 0 || id != cache_id_) return;
  for (const T* a : cache_arrays_) backend_.release_cache(a);
  cache_arrays_.clear();
  cache_id_ = 0;
}

template <class T>
const T* Model<T>::held(std::span<const T> w, int k, int m) {
  if (held_.empty()) {
    // The layers are complete once a forward pass runs: their output projections, known by
    // address like the held weights.
    for (const Layer& L : layers_) {
      output_projections_.insert(L.o.data());
      output_projections_.insert(L.o_b.data());
      output_projections_.insert(L.out_proj.data());
      output_projections_.insert(L.mlp.down.data());
      output_projections_.insert(L.shared.down.data());
      for (const Expert& e : L.experts) output_projections_.insert(e.down.data());
    }
    output_projections_.erase(nullptr);
  }
  if (!w.empty() && held_.insert(w.data()).second)
    backend_.hold_matrix(w.data(), k, m,
                         output_projections_.count(w.data()) ? MatrixRole::output_projection
                                                             : MatrixRole::input_projection);
  return w.data();
}

template <class T>
void Model<T>::linear(const T* x, std::span<const T> w, std::span<const T> b, int n, int k,
                      int m, T* y) {
  if (b.empty())
    backend_.matmul(x, held(w, k, m), n, k, m, y);
  else
    backend_.matmul_bias(x, held(w, k, m), b.data(), n, k, m, y);
}

// The gated MLP's activation times up, or (GPT-2, up == nullptr) the activation alone.
template <class T>
void Model<T>::activation(const T* gate, const T* up, int64_t n, T* out) {
  const std::string& act = config_.hidden_act;
  if (act == "silu") {
    backend_.swiglu(gate, up, n, out);
    return;
  }
  const bool tanh = act != "gelu";
  if (up)
    backend_.geglu(gate, up, n, tanh, out);
  else
    backend_.gelu(gate, n, tanh, out);
}

template <class T>
void Model<T>::gated_mlp(const T* x, std::span<const T> gate, std::span<const T> up,
                         std::span<const T> down, int m, int hidden, int inter, T* out) {
  const std::string& name = config_.hidden_act;
  const GatedActivation act = name == "silu"   ? GatedActivation::silu
                              : name == "gelu" ? GatedActivation::gelu
                                               : GatedActivation::gelu_tanh;
  if (backend_.gated_mlp(x, gate.data(), up.data(), down.data(), m, hidden, inter, act, out))
    return;
  const int64_t width = int64_t{m} * inter;
  std::vector<T> g(width), u(width), a(width);
  HeldActivations<T> device(backend_, holding_activations_);
  for (const std::vector<T>* t : {&g, &u, &a}) device.add(*t);
  backend_.matmul(x, held(gate, hidden, inter), m, hidden, inter, g.data());
  backend_.matmul(x, held(up, hidden, inter), m, hidden, inter, u.data());
  activation(g.data(), u.data(), width, a.data());
  backend_.matmul(a.data(), held(down, inter, hidden), m, inter, hidden, out);
}

template <class T>
void Model<T>::qk_norm(std::vector<T>& x, std::vector<T>& scratch, std::span<const T> w) {
  const int dim = static_cast<int>(w.size()), rows = static_cast<int>(x.size() / w.size());
  if (scratch.size() != x.size())
    throw std::logic_error("qk_norm: a scratch of " + std::to_string(scratch.size()) +
                           " values for " + std::to_string(x.size()));
  if (has_offset_norms(config_))
    backend_.rmsnorm_plus_one(x.data(), w.data(), rows, dim, config_.rms_norm_eps, scratch.data());
  else
    backend_.rmsnorm(x.data(), w.data(), rows, dim, config_.rms_norm_eps, scratch.data());
  x.swap(scratch);
}

template <class T>
bool Model<T>::holds_activations() const {
  const ModelConfig& c = config_;
  if (is_gemma3n(c) || is_deepseek_v4(c)) return false;
  for (const Layer& L : layers_)
    if (!L.kv_b.empty() || !L.in_qkv.empty()) return false;
  return true;
}

// Phi-3's partial rotary: the first rotary_dim values of each head rotate as a head of that
// size (transformers' apply_rotary_pos_emb slices q[..., :rotary_dim]), the rest pass through.
template <class T>
void Model<T>::rotate(T* x, const int* positions, int n, int heads, bool sliding) {
  // Gemma 3's sliding layers: plain RoPE of their own base.
  if (sliding && config_.rope_local_base_freq > 0) {
    backend_.rope(x, positions, n, heads, config_.head_dim, config_.rope_local_base_freq);
    return;
  }
  const int hd = config_.head_dim, rd = rotary_dim(config_);
  if (rd == hd)
    rotate_heads(x, positions, n, heads, hd);
  else
    rotate_prefix(x, positions, n, heads, hd, rd);
}

template <class T>
void Model<T>::rotate_prefix(T* x, const int* positions, int n, int rows_per_token, int stride,
                             int width) {
  const int64_t rows = int64_t{n} * rows_per_token;
  std::vector<T> part(rows * width);
  backend_.to_host(x, 0, rows * stride);
  for (int64_t r = 0; r < rows; ++r)
    std::copy(x + r * stride, x + r * stride + width, part.begin() + r * width);
  rotate_heads(part.data(), positions, n, rows_per_token, width);
  backend_.to_host(x, 0, rows * stride);  // current only until the call above
  for (int64_t r = 0; r < rows; ++r)
    std::copy(part.begin() + r * width, part.begin() + (r + 1) * width, x + r * stride);
  backend_.from_host(x, 0, rows * stride);
}

template <class T>
void Model<T>::rotate_heads(T* x, const int* positions, int n, int heads, int head_dim) {
  if (inv_freq_.empty()) {
    backend_.rope(x, positions, n, heads, head_dim, config_.rope_theta);
  } else if (rope_depends_on_length(config_) && n > 0) {
    // dynamic and longrope: transformers' dynamic_rope_update recomputes the frequencies from
    // max(position_ids) + 1 of the tokens in this forward pass; keys already in the cache keep
    // the rotation they were given when they were computed.
    const long long seq_len =
        static_cast<long long>(*std::max_element(positions, positions + n)) + 1;
    const RopeFrequencies f = rope_frequencies(config_, seq_len);
    backend_.rope_freqs(x, positions, n, heads, head_dim, f.inv_freq.data(), f.attention_scaling);
  } else {
    backend_.rope_freqs(x, positions, n, heads, head_dim, inv_freq_.data(), attention_scaling_);
  }
}

// Mixtral's sparse MoE block: every token's top-k experts, each run on the tokens routed to
// it, in increasing expert order, each output added with its routing weight (as Hugging Face's
// loop over the experts hit, with index_add_, accumulates them).
template <class T>
void Model<T>::experts(const Layer& L, const T* h, int n, const std::string& prefix, T* out,
                       const TapFn<T>& tap, const RouteFn& route, const int* tokens) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, inter = expert_intermediate_size(c);
  const int count = c.num_local_experts, top_k = c.num_experts_per_tok;
  std::vector<T> logits(int64_t{n} * count), probs(int64_t{n} * count);
  std::vector<int> ids(int64_t{n} * top_k);
  std::vector<T> weights(int64_t{n} * top_k);
  linear(h, L.router, L.router_bias, n, hidden, count, logits.data());
  const bool v4 = is_deepseek_v4(c);
  const bool deepseek = is_deepseek(c) || v4;
  if (v4)
    v4_route(L, logits.data(), tokens, n, probs.data(), ids.data(), weights.data());
  else if (deepseek)
    deepseek_route(L, logits.data(), n, probs.data(), ids.data(), weights.data());
  else
    backend_.moe_route(logits.data(), n, count, top_k, probs.data(), ids.data(), weights.data());
  // Qwen3-MoE without norm_topk_prob weighs each chosen expert by its probability among all
  // experts, not renormalised over the chosen ones.
  auto unnormalised = [&](int r) {
    const T* pr = probs.data() + int64_t{r} * count;
    for (int s = 0; s < top_k; ++s)
      weights[int64_t{r} * top_k + s] = pr[ids[int64_t{r} * top_k + s]];
  };
  if (!c.norm_topk_prob && !deepseek)
    for (int r = 0; r < n; ++r) unnormalised(r);
  if (tap) {
    tap(prefix + "router", {n, count}, probs.data());
    const std::vector<T> chosen(ids.begin(), ids.end());
    tap(prefix + "experts", {n, top_k}, chosen.data());
  }
  if (route) {
    const std::vector<int> own = ids;
    route(prefix + "experts", n, top_k, ids.data());
    for (int r = 0; r < n; ++r) {
      int* ir = ids.data() + int64_t{r} * top_k;
      if (std::equal(ir, ir + top_k, own.begin() + int64_t{r} * top_k)) continue;
      // Renormalised over the experts now chosen, summed in order as moe_route does.
      const T* pr = probs.data() + int64_t{r} * count;
      T selected = 0;
      for (int s = 0; s < top_k; ++s) {
        if (ir[s] < 0 || ir[s] >= count) throw std::runtime_error("forced expert id out of range");
        selected += pr[ir[s]];
      }
      if (deepseek) {
        // The forced experts weighed as the router weighs its own choice.
        deepseek_expert_weights(c, pr, ir, weights.data() + int64_t{r} * top_k);
        continue;
      }
      if (!c.norm_topk_prob) {
        unnormalised(r);
        continue;
      }
      for (int s = 0; s < top_k; ++s) weights[int64_t{r} * top_k + s] = pr[ir[s]] / selected;
    }
  }
  if (tap) tap(prefix + "expert_weights", {n, top_k}, weights.data());

  std::fill(out, out + int64_t{n} * hidden, T(0));
  backend_.from_host(out, 0, int64_t{n} * hidden);
  std::vector<T> x, gate, up, act, y;
  for (int e = 0; e < count; ++e) {
    std::vector<int> rows;
    std::vector<T> row_weights;
    for (int r = 0; r < n; ++r)
      for (int s = 0; s < top_k; ++s)
        if (ids[int64_t{r} * top_k + s] == e) {
          rows.push_back(r);
          row_weights.push_back(weights[int64_t{r} * top_k + s]);
        }
    if (rows.empty()) continue;
    const int m = static_cast<int>(rows.size());
    x.resize(int64_t{m} * hidden);
    backend_.to_host(h, 0, int64_t{n} * hidden);  // current only until the last expert's ops
    for (int r = 0; r < m; ++r)
      std::copy(h + int64_t{rows[r]} * hidden, h + int64_t{rows[r] + 1} * hidden,
                x.begin() + int64_t{r} * hidden);
    gate.resize(int64_t{m} * inter);
    up.resize(int64_t{m} * inter);
    act.resize(int64_t{m} * inter);
    y.resize(int64_t{m} * hidden);
    const Expert& E = L.experts[e];
    if (c.model_type == "gpt_oss") {
      linear(x.data(), E.gate, E.gate_bias, m, hidden, inter, gate.data());
      linear(x.data(), E.up, E.up_bias, m, hidden, inter, up.data());
      // GptOssExperts fixes alpha and limit in code; the config's swiglu_limit is not read.
      backend_.clamped_swiglu(gate.data(), up.data(), int64_t{m} * inter, 1.702, 7.0, act.data());
      linear(act.data(), E.down, E.down_bias, m, inter, hidden, y.data());
    } else if (v4) {
      clamped_mlp(E, x.data(), m, inter, y.data());
    } else {
      gated_mlp(x.data(), E.gate, E.up, E.down, m, hidden, inter, y.data());
    }
    backend_.moe_combine(out, y.data(), rows.data(), row_weights.data(), m, hidden);
  }
  if (!L.shared.gate.empty()) {
    // DeepSeek's shared experts, one MLP on every token, added after the routed ones; Qwen3-Next's
    // shared expert scaled per token by sigmoid(shared_expert_gate . h) first.
    // DeepSeek-V4 builds one shared expert, clamped as its experts are.
    const int width = v4                    ? inter
                      : L.shared_gate.empty() ? inter * c.n_shared_experts
                                              : c.shared_expert_intermediate_size;
    std::vector<T> sy(int64_t{n} * hidden);
    if (v4)
      clamped_mlp(L.shared, h, n, width, sy.data());
    else
      gated_mlp(h, L.shared.gate, L.shared.up, L.shared.down, n, hidden, width, sy.data());
    if (!L.shared_gate.empty()) {
      std::vector<T> logit(n), wide(int64_t{n} * hidden), gated(int64_t{n} * hidden);
      linear(h, L.shared_gate, {}, n, hidden, 1, logit.data());
      for (int r = 0; r < n; ++r)
        std::fill(wide.begin() + int64_t{r} * hidden, wide.begin() + int64_t{r + 1} * hidden, logit[r]);
      backend_.sigmoid_gate(sy.data(), wide.data(), int64_t{n} * hidden, gated.data());
      sy.swap(gated);
    }
    if (tap) tap(prefix + "shared_experts", {n, hidden}, sy.data());
    backend_.add(out, sy.data(), int64_t{n} * hidden);
  }
}

template <class T>
Tensor<T> Model<T>::forward(const std::vector<int>& tokens, KVCache<T>& cache,
                            const TapFn<T>& tap, const RouteFn& route) {
  const ModelConfig& c = config_;
  const int n = static_cast<int>(tokens.size());
  if (n == 0) throw std::runtime_error("empty prompt");
  for (int t : tokens) {
    if (t < 0 || t >= c.vocab_size)
      throw std::runtime_error("token id " + std::to_string(t) +
                               " is outside the vocabulary (vocab_size " +
                               std::to_string(c.vocab_size) + ")");
    // Gemma3nForCausalLM looks every token up in the per-layer table as well.
    if (is_gemma3n(c) && t >= c.vocab_size_per_layer_input)
      throw std::runtime_error("token id " + std::to_string(t) +
                               " has no per-layer embedding (vocab_size_per_layer_input " +
                               std::to_string(c.vocab_size_per_layer_input) +
                               "); Gemma3nForCausalLM cannot run it");
  }
  attend_to(cache);
  const int p0 = cache.length();
  if (n > cache.capacity() - p0)
    throw std::runtime_error("KV cache overflow: " + std::to_string(p0) + " cached + " +
                             std::to_string(n) + " new tokens exceed its capacity of " +
                             std::to_string(cache.capacity()));
  const bool gpt2 = c.model_type == "gpt2";
  if (gpt2 && p0 + n > c.max_position_embeddings)
    throw std::runtime_error("position " + std::to_string(p0 + n - 1) +
                             " is beyond the learned position embeddings (n_positions " +
                             std::to_string(c.max_position_embeddings) + ")");

  holding_activations_ = holds_activations();
  if (is_deepseek_v4(c)) return forward_deepseek_v4(tokens, cache, tap, route);

  const int hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int widest = widest_query_heads(c), kv_heads = c.num_key_value_heads, hd = c.head_dim;
  const int kv_len = p0 + n;
  const int64_t nh = int64_t{n} * hidden;
  const int64_t kv_row = int64_t{kv_heads} * hd;  // one position's keys (or values)
  // Gemma 3n normalises queries and keys and does not scale their product (scaling 1.0).
  const bool gemma3n = is_gemma3n(c);
  const double scale = gemma3n ? 1.0
                       : c.query_pre_attn_scalar > 0
                           ? std::pow(c.query_pre_attn_scalar, -0.5)
                           : 1.0 / std::sqrt(static_cast<double>(hd));
  auto emit = [&](const std::string& name, const Shape& shape, const T* data) {
    if (!tap) return;
    backend_.to_host(data, 0, element_count(shape));
    tap(name, shape, data);
  };
  // x = y on the host, both held activations or neither.
  auto copy = [&](const std::vector<T>& from, std::vector<T>& to) {
    backend_.to_host(from.data(), 0, static_cast<int64_t>(from.size()));
    std::copy(from.begin(), from.end(), to.begin());
    backend_.from_host(to.data(), 0, static_cast<int64_t>(to.size()));
  };

  std::vector<int> positions(n);
  for (int i = 0; i < n; ++i) positions[i] = p0 + i;

  std::vector<T> x(nh), h(nh), attn_out(nh), mlp_out(nh), post(nh);
  std::vector<T> q(int64_t{n} * widest * hd), k(n * kv_row), v(n * kv_row);
  std::vector<T> scores(int64_t{widest} * n * kv_len), att(int64_t{n} * widest * hd);
  std::vector<T> up(gpt2 ? int64_t{n} * inter : 0), act(up.size());  // GPT-2's MLP
  // qk_norm's results, whose buffers q and k (and Gemma 3n's v) then take turns with.
  std::vector<T> q_normed, k_normed, v_normed;
  const auto has_qk_norm = [](const Layer& L) { return !L.q_norm.empty(); };
  if (std::any_of(layers_.begin(), layers_.end(), has_qk_norm)) {
    q_normed.resize(q.size());
    k_normed.resize(k.size());
  }
  if (gemma3n) v_normed.resize(v.size());
  Tensor<T> logits({n, vocab});
  // Everything above may stay on a device between the ops that read and write it.
  HeldActivations<T> device(backend_, holding_activations_);
  for (const std::vector<T>* a : {&x, &h, &attn_out, &mlp_out, &post, &q, &k, &v, &scores, &att,
                                  &up, &act, &q_normed, &k_normed, &v_normed, &logits.data})
    device.add(*a);

  backend_.embed(embed_.data(), tokens.data(), n, hidden, x.data());
  if (gpt2) {
    backend_.embed(positions_.data(), positions.data(), n, hidden, h.data());
    backend_.add(x.data(), h.data(), nh);
  }
  if (is_gemma(c) || gemma3n) backend_.scale(x.data(), nh, std::sqrt(static_cast<double>(hidden)));
  emit("embed", {n, hidden}, x.data());
  // Gemma 3n: the per-layer inputs, and the AltUp streams x stands for one of in each layer.
  std::vector<T> per_layer, streams, predictions, laurel_out;
  if (gemma3n) {
    per_layer = per_layer_inputs(tokens, x.data(), n, tap);
    streams = expand_streams(x.data(), n, tap);
  }

  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const Layer& L = layers_[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    const bool computes_kv = kv_source_[l] == l;
    const bool sliding = is_sliding_layer(c, l);
    const int heads = query_heads(c, l);
    if (gemma3n) {
      predictions = altup_predict(L, streams, n);
      emit(p + "predictions", {c.altup_num_inputs, n, hidden}, predictions.data());
      const T* active = predictions.data() + c.altup_active_idx * nh;
      std::copy(active, active + nh, x.begin());
      backend_.from_host(x.data(), 0, nh);
    }

    if (L.attn_norm.empty()) {
      copy(x, h);
    } else {
      norm(x.data(), L.attn_norm, L.attn_norm_bias, n, hidden, h.data());
      emit(p + "attn_norm", {n, hidden}, h.data());
    }
    if (gemma3n) {
      laurel_out = laurel(L, h.data(), n);
      emit(p + "laurel", {n, hidden}, laurel_out.data());
    }

    if (!L.kv_b.empty()) {
      mla_attention(L, p, l, h.data(), n, positions.data(), p0, cache, tap, route, attn_out.data());
    } else if (!L.in_qkv.empty()) {
      gated_delta_net(L, p, l, h.data(), n, cache, tap, attn_out.data());
    } else {
      linear(h.data(), L.q, L.q_bias, n, hidden, heads * hd, q.data());
      if (computes_kv) {
        linear(h.data(), L.k, L.k_bias, n, hidden, kv_heads * hd, k.data());
        linear(h.data(), L.v, L.v_bias, n, hidden, kv_heads * hd, v.data());
      }
      if (!L.q_norm.empty()) {
        qk_norm(q, q_normed, L.q_norm);
        if (computes_kv) qk_norm(k, k_normed, L.k_norm);
      }
      // Gemma 3n's v_norm: RMSNorm without a weight.
      if (gemma3n && computes_kv) qk_norm(v, v_normed, ones_);
      if (!gpt2) {
        rotate(q.data(), positions.data(), n, heads, sliding);
        if (computes_kv) rotate(k.data(), positions.data(), n, kv_heads, sliding);
      }
      emit(p + "q", {n, heads, hd}, q.data());
      if (computes_kv) {
        emit(p + "k", {n, kv_heads, hd}, k.data());
        emit(p + "v", {n, kv_heads, hd}, v.data());
        const int64_t values = int64_t{cache.capacity()} * kv_row;
        write_cache(cache.keys(l), values, p0 * kv_row, k.data(), static_cast<int64_t>(k.size()));
        write_cache(cache.values(l), values, p0 * kv_row, v.data(),
                    static_cast<int64_t>(v.size()));
      }

      AttentionParams a;
      a.n = n;
      a.kv_len = kv_len;
      a.heads = heads;
      a.kv_heads = kv_heads;
      a.head_dim = hd;
      a.scale = scale;
      a.softcap = c.attn_logit_softcapping > 0 ? c.attn_logit_softcapping : 0;
      a.window = sliding ? c.sliding_window : 0;
      if (!backend_.attention(q.data(), cache.keys(l), cache.values(l), positions.data(),
                              L.sinks.empty() ? nullptr : L.sinks.data(), a, att.data())) {
        backend_.attention_scores(q.data(), cache.keys(l), positions.data(), n, kv_len, heads, kv_heads,
                                  hd, scale, scores.data());
        if (a.softcap > 0 || a.window > 0)
          backend_.score_mod(scores.data(), positions.data(), n, kv_len, heads, a.softcap,
                             a.window);
        if (L.sinks.empty()) {
          backend_.softmax(scores.data(), heads * n, kv_len);
        } else {
          // gpt-oss: each head's learned sink logit joins the softmax as one more column, which
          // is then dropped, so a row's probabilities over the keys sum to less than 1.
          const int64_t wide = int64_t{kv_len} + 1;
          std::vector<T> with_sink(int64_t{heads} * n * wide);
          backend_.to_host(scores.data(), 0, int64_t{heads} * n * kv_len);
          for (int hh = 0; hh < heads; ++hh)
            for (int i = 0; i < n; ++i) {
              const int64_t row = int64_t{hh} * n + i;
              std::copy(scores.begin() + row * kv_len, scores.begin() + (row + 1) * kv_len,
                        with_sink.begin() + row * wide);
              with_sink[row * wide + kv_len] = L.sinks[hh];
            }
          backend_.softmax(with_sink.data(), heads * n, static_cast<int>(wide));
          for (int64_t row = 0; row < int64_t{heads} * n; ++row)
            std::copy(with_sink.begin() + row * wide, with_sink.begin() + row * wide + kv_len,
                      scores.begin() + row * kv_len);
          backend_.from_host(scores.data(), 0, int64_t{heads} * n * kv_len);
        }
        emit(p + "scores", {heads, n, kv_len}, scores.data());
        backend_.attention_values(scores.data(), cache.values(l), n, kv_len, heads, kv_heads, hd,
                                  att.data());
      }
      if (!L.attn_gate.empty()) {
        // Qwen3-Next's gated attention: each output value scaled by sigmoid of its gate.
        std::vector<T> gate(int64_t{n} * heads * hd), gated(gate.size());
        linear(h.data(), L.attn_gate, L.attn_gate_bias, n, hidden, heads * hd, gate.data());
        backend_.sigmoid_gate(att.data(), gate.data(), static_cast<int64_t>(gate.size()),
                              gated.data());
        emit(p + "attn_gate", {n, heads * hd}, gated.data());
        std::copy(gated.begin(), gated.end(), att.begin());
        backend_.from_host(att.data(), 0, static_cast<int64_t>(gated.size()));
      }
      linear(att.data(), L.o, L.o_bias, n, heads * hd, hidden, attn_out.data());
    }
    emit(p + "attn_out", {n, hidden}, attn_out.data());
    if (!L.post_attn_norm.empty()) {
      norm(attn_out.data(), L.post_attn_norm, {}, n, hidden, post.data());
      emit(p + "post_attn_norm", {n, hidden}, post.data());
      backend_.add(x.data(), post.data(), nh);
    } else {
      backend_.add(x.data(), attn_out.data(), nh);
    }
    if (gemma3n) {
      // (x + laurel) / sqrt(2), the factor not rounded to the storage type: Gemma3nTextDecoderLayer
      // divides by a Python float.
      backend_.add(x.data(), laurel_out.data(), nh);
      const std::vector<T> factor(n, static_cast<T>(1.0 / std::sqrt(2.0)));
      backend_.mix_streams(x.data(), factor.data(), n, 1, 1, hidden, h.data());
      copy(h, x);
    }

    if (L.mlp_norm.empty())
      copy(x, h);
    else
      norm(x.data(), L.mlp_norm, L.mlp_norm_bias, n, hidden, h.data());
    if (!L.experts.empty()) {
      experts(L, h.data(), n, p, mlp_out.data(), tap, route);
    } else if (gpt2) {
      linear(h.data(), L.mlp.up, L.mlp.up_bias, n, hidden, inter, up.data());
      activation(up.data(), nullptr, int64_t{n} * inter, act.data());
      linear(act.data(), L.mlp.down, L.mlp.down_bias, n, inter, hidden, mlp_out.data());
    } else if (gemma3n && l < static_cast<int>(c.activation_sparsity_pattern.size()) &&
               c.activation_sparsity_pattern[l] > 0) {
      // Gemma 3n's activation sparsity cuts the gate before the activation: no fused MLP.
      const int width = layer_intermediate_size(c, l);
      const int64_t size = int64_t{n} * width;
      std::vector<T> g(size), u(size), a(size);
      backend_.matmul(h.data(), held(L.mlp.gate, hidden, width), n, hidden, width, g.data());
      backend_.gaussian_topk(g.data(), n, width, normal_quantile(c.activation_sparsity_pattern[l]));
      emit(p + "sparse_gate", {n, width}, g.data());
      backend_.matmul(h.data(), held(L.mlp.up, hidden, width), n, hidden, width, u.data());
      activation(g.data(), u.data(), size, a.data());
      backend_.matmul(a.data(), held(L.mlp.down, width, hidden), n, width, hidden, mlp_out.data());
    } else {
      gated_mlp(h.data(), L.mlp.gate, L.mlp.up, L.mlp.down, n, hidden,
                layer_intermediate_size(c, l), mlp_out.data());
    }
    emit(p + "mlp_out", {n, hidden}, mlp_out.data());
    if (!L.post_mlp_norm.empty()) {
      norm(mlp_out.data(), L.post_mlp_norm, {}, n, hidden, post.data());
      emit(p + "post_mlp_norm", {n, hidden}, post.data());
      backend_.add(x.data(), post.data(), nh);
    } else {
      backend_.add(x.data(), mlp_out.data(), nh);
    }
    if (gemma3n) {
      streams = altup_correct(L, l, predictions, x.data(), per_layer, n);
      emit(p + "streams", {c.altup_num_inputs, n, hidden}, streams.data());
    }
  }
  cache.advance(n);
  if (gemma3n) merge_streams(streams, n, tap, x.data());

  norm(x.data(), final_norm_, final_norm_bias_, n, hidden, h.data());
  emit("final_norm", {n, hidden}, h.data());

  const WeightArray<T>& head = c.tie_word_embeddings ? embed_ : lm_head_;
  backend_.matmul(h.data(), held(head, hidden, vocab), n, hidden, vocab, logits.data.data());
  if (c.final_logit_softcapping > 0)
    backend_.softcap(logits.data.data(), int64_t{n} * vocab, c.final_logit_softcapping);
  emit("logits", logits.shape, logits.data.data());
  backend_.to_host(logits.data.data(), 0, int64_t{n} * vocab);
  return logits;
}

template class KVCache<double>;
template class KVCache<float>;
template class Model<double>;
template class Model<float>;

}  // namespace pinmark
