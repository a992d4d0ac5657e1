#include "runtime/model_config.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <map>

namespace pinmark {

namespace {

// Shortest text that reads back as the same double: 0.1 prints as "0.1", not "0.10000000000000001".
std::string number(double v) {
  char buf[32];
  auto result = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, result.ptr);
}

// GPT-2's config.json names its sizes differently; a problem names the key the config has.
std::string key_of(const ModelConfig& c, const std::string& key) {
  if ((c.model_type == "qwen3_moe" || c.model_type == "qwen3_next") && key == "num_local_experts")
    return "num_experts";
  if ((is_deepseek(c) || is_deepseek_v4(c)) && key == "num_local_experts") return "n_routed_experts";
  if (c.model_type != "gpt2") return key;
  static const std::map<std::string, std::string> gpt2 = {
      {"hidden_size", "n_embd"},
      {"intermediate_size", "n_inner"},
      {"num_hidden_layers", "n_layer"},
      {"num_attention_heads", "n_head"},
      {"max_position_embeddings", "n_positions"},
      {"rms_norm_eps", "layer_norm_epsilon"},
      {"hidden_act", "activation_function"}};
  auto it = gpt2.find(key);
  return it == gpt2.end() ? key : it->second;
}

void require_positive(std::vector<ConfigProblem>& problems, const ModelConfig& c, const char* name,
                      int value) {
  const std::string key = key_of(c, name);
  if (value <= 0) problems.push_back({key, key + " must be positive, got " + std::to_string(value)});
}

// For keys where 0 means "use the Hugging Face default".
void require_not_negative(std::vector<ConfigProblem>& problems, const ModelConfig& c,
                          const char* name, int value) {
  const std::string key = key_of(c, name);
  if (value < 0) problems.push_back({key, key + " must be positive, got " + std::to_string(value)});
}

bool finite_positive(double v) { return v > 0 && !std::isinf(v); }

// 0 stands for "none" (a null in config.json).
void require_finite_not_negative(std::vector<ConfigProblem>& problems, const char* key, double v) {
  if (!(v >= 0) || std::isinf(v))
    problems.push_back({key, std::string(key) + " must be a finite positive number, got " +
                                 number(v)});
}

// mlp_layer_types: one entry per layer (when given), each `first` or `second`.
void require_mlp_layer_types(std::vector<ConfigProblem>& problems, const ModelConfig& c,
                             const std::string& first, const std::string& second) {
  if (!c.mlp_layer_types.empty() &&
      static_cast<int>(c.mlp_layer_types.size()) != c.num_hidden_layers)
    problems.push_back({"mlp_layer_types", "mlp_layer_types has " +
                                               std::to_string(c.mlp_layer_types.size()) +
                                               " entries, num_hidden_layers is " +
                                               std::to_string(c.num_hidden_layers)});
  for (const std::string& t : c.mlp_layer_types)
    if (t != first && t != second) {
      problems.push_back({"mlp_layer_types", "mlp_layer_types entry '" + t + "' is neither " +
                                                 first + " nor " + second});
      break;
    }
}

bool uses_rope(const ModelConfig& c) { return c.model_type != "gpt2"; }

void validate_family(const ModelConfig& c, std::vector<ConfigProblem>& problems) {
  const std::vector<std::string>& known = known_model_types();
  if (std::find(known.begin(), known.end(), c.model_type) == known.end())
    problems.push_back({"model_type", "model_type '" + c.model_type + "' is not supported"});

  const std::string act_key = key_of(c, "hidden_act");
  const bool gelu = c.hidden_act == "gelu_pytorch_tanh" || c.hidden_act == "gelu_new" ||
                    c.hidden_act == "gelu";
  if (c.hidden_act != "silu" && !gelu)
    problems.push_back({act_key, act_key + " '" + c.hidden_act +
                                     "' is not supported (pinmark implements silu, gelu, "
                                     "gelu_new and gelu_pytorch_tanh)"});
  else if (c.model_type == "gpt2" && !gelu)
    problems.push_back({act_key, act_key + " '" + c.hidden_act +
                                     "' is not supported for gpt2 (pinmark implements gelu, "
                                     "gelu_new and gelu_pytorch_tanh)"});

  const bool known_rope = c.rope_type == "default" || c.rope_type == "linear" ||
                          c.rope_type == "llama3" || c.rope_type == "dynamic" ||
                          c.rope_type == "yarn" || c.rope_type == "longrope";
  if (!known_rope)
    problems.push_back({"rope_scaling", "rope_type '" + c.rope_type +
                                            "' is not supported (pinmark implements default, "
                                            "linear, llama3, dynamic, yarn and longrope)"});
  if (c.rope_type == "yarn" || c.rope_type == "longrope") {
    if (c.rope_original_max_position_embeddings <= 0)
      problems.push_back({"rope_scaling",
                          "rope_scaling original_max_position_embeddings must be positive, got " +
                              std::to_string(c.rope_original_max_position_embeddings)});
    else if (!c.rope_has_factor && c.max_position_embeddings <= 0)
      problems.push_back({"rope_scaling", "rope_scaling without factor needs "
                                          "max_position_embeddings (factor is then "
                                          "max_position_embeddings / "
                                          "original_max_position_embeddings); set "
                                          "max_position_embeddings or factor"});
    if (!(c.rope_attention_factor >= 0) || std::isinf(c.rope_attention_factor))
      problems.push_back({"rope_scaling", "rope_scaling attention_factor must be a finite "
                                          "positive number, got " +
                                              number(c.rope_attention_factor)});
  }
  if (c.rope_type == "yarn") {
    if (!finite_positive(c.rope_beta_fast) || !finite_positive(c.rope_beta_slow))
      problems.push_back({"rope_scaling", "rope_scaling beta_fast and beta_slow must be finite "
                                          "positive numbers, got " + number(c.rope_beta_fast) +
                                              " and " + number(c.rope_beta_slow)});
    if (!(c.rope_mscale >= 0) || std::isinf(c.rope_mscale) || !(c.rope_mscale_all_dim >= 0) ||
        std::isinf(c.rope_mscale_all_dim))
      problems.push_back({"rope_scaling", "rope_scaling mscale and mscale_all_dim must be finite "
                                          "non-negative numbers, got " + number(c.rope_mscale) +
                                              " and " + number(c.rope_mscale_all_dim)});
  }
  if (c.rope_type == "dynamic" && c.max_position_embeddings <= 0)
    problems.push_back({"max_position_embeddings",
                        "rope type dynamic needs max_position_embeddings (the length beyond "
                        "which the base grows), got " +
                            std::to_string(c.max_position_embeddings) +
                            "; set it as the checkpoint's config.json does"});
  if (c.rope_type == "longrope") {
    const int dim = rotary_dim(c);
    const size_t half = dim > 0 ? static_cast<size_t>(dim / 2) : 0;
    for (const auto& [name, table] : {std::pair{"short_factor", &c.rope_short_factor},
                                      std::pair{"long_factor", &c.rope_long_factor}}) {
      if (half > 0 && table->size() != half)
        problems.push_back({"rope_scaling", std::string("rope_scaling ") + name + " has " +
                                                std::to_string(table->size()) +
                                                " entries, the rotary dimension / 2 is " +
                                                std::to_string(half)});
      for (double f : *table)
        if (!finite_positive(f)) {
          problems.push_back({"rope_scaling", std::string("rope_scaling ") + name +
                                                  " entries must be finite positive numbers, got " +
                                                  number(f)});
          break;
        }
    }
  }
  if (c.rope_type == "linear" || c.rope_type == "llama3" || c.rope_type == "dynamic" ||
      ((c.rope_type == "yarn" || c.rope_type == "longrope") && c.rope_has_factor)) {
    if (!finite_positive(c.rope_factor))
      problems.push_back({"rope_scaling", "rope_scaling factor must be a finite positive number, "
                                          "got " + number(c.rope_factor)});
  }
  if (c.rope_type == "llama3") {
    if (!finite_positive(c.rope_low_freq_factor))
      problems.push_back({"rope_scaling", "rope_scaling low_freq_factor must be a finite positive "
                                          "number, got " + number(c.rope_low_freq_factor)});
    if (!finite_positive(c.rope_high_freq_factor))
      problems.push_back({"rope_scaling", "rope_scaling high_freq_factor must be a finite positive "
                                          "number, got " + number(c.rope_high_freq_factor)});
    else if (c.rope_high_freq_factor <= c.rope_low_freq_factor)
      problems.push_back({"rope_scaling", "rope_scaling high_freq_factor (" +
                                              number(c.rope_high_freq_factor) +
                                              ") must be greater than low_freq_factor (" +
                                              number(c.rope_low_freq_factor) + ")"});
    if (c.rope_original_max_position_embeddings <= 0)
      problems.push_back({"rope_scaling",
                          "rope_scaling original_max_position_embeddings must be positive, got " +
                              std::to_string(c.rope_original_max_position_embeddings)});
  }

  if (c.sliding_window < 0)
    problems.push_back({"sliding_window", "sliding_window must be positive, got " +
                                              std::to_string(c.sliding_window)});
  if (!c.layer_types.empty()) {
    if (static_cast<int>(c.layer_types.size()) != c.num_hidden_layers)
      problems.push_back({"layer_types", "layer_types has " + std::to_string(c.layer_types.size()) +
                                             " entries, num_hidden_layers is " +
                                             std::to_string(c.num_hidden_layers)});
    for (const std::string& t : c.layer_types) {
      const bool linear = c.model_type == "qwen3_next", sparse = c.model_type == "deepseek_v32";
      const bool v4 = is_deepseek_v4(c);
      if (v4       ? t != "sliding_attention" && t != "compressed_sparse_attention" &&
                         t != "heavily_compressed_attention"
          : sparse ? t != "deepseek_sparse_attention"
          : linear ? t != "full_attention" && t != "linear_attention"
                   : t != "full_attention" && t != "sliding_attention") {
        problems.push_back({"layer_types", "layer_types entry '" + t +
                                               "' is not supported (pinmark implements " +
                                               (v4 ? "sliding_attention, compressed_sparse_attention "
                                                     "and heavily_compressed_attention"
                                                : sparse ? "deepseek_sparse_attention"
                                                : linear ? "full_attention and linear_attention"
                                                         : "full_attention and sliding_attention") +
                                               " for " + c.model_type + ")"});
        break;
      }
    }
  }
  // Without a list, layer 0 slides exactly when any layer does (is_sliding_layer), so a config
  // with a huge layer count is not walked layer by layer.
  bool any_sliding = false;
  if (!c.layer_types.empty()) {
    for (int l = 0; l < c.num_hidden_layers && l < static_cast<int>(c.layer_types.size()) && !any_sliding; ++l)
      any_sliding = is_sliding_layer(c, l);
  } else {
    any_sliding = c.num_hidden_layers > 0 && is_sliding_layer(c, 0);
  }
  if (any_sliding && c.sliding_window <= 0)
    problems.push_back({"sliding_window", "layer_types has sliding_attention layers but "
                                          "sliding_window is not set"});

  if (is_deepseek(c)) {
    for (const auto& [key, value] : {std::pair{"kv_lora_rank", c.kv_lora_rank},
                                     std::pair{"qk_nope_head_dim", c.qk_nope_head_dim},
                                     std::pair{"qk_rope_head_dim", c.qk_rope_head_dim},
                                     std::pair{"v_head_dim", c.v_head_dim}})
      if (value <= 0)
        problems.push_back({key, std::string(key) + " must be positive, got " +
                                     std::to_string(value)});
    if (c.q_lora_rank < 0)
      problems.push_back({"q_lora_rank", "q_lora_rank must be positive or null"});
    if (c.mla_absorb && c.kv_lora_rank <= 0)
      problems.push_back({"mla_absorb", "pinmark.mla_absorb needs MLA (kv_lora_rank)"});
    if (c.qk_rope_head_dim % 2 != 0)
      problems.push_back({"qk_rope_head_dim", "qk_rope_head_dim must be even (rotary pairs), got " +
                                                  std::to_string(c.qk_rope_head_dim)});
    require_mlp_layer_types(problems, c, "dense", "sparse");
  }
  if (c.model_type == "deepseek_v32") {
    for (const auto& [key, value] : {std::pair{"index_topk", c.index_topk},
                                     std::pair{"index_head_dim", c.index_head_dim},
                                     std::pair{"index_n_heads", c.index_n_heads}})
      if (value <= 0)
        problems.push_back({key, std::string(key) + " must be positive, got " +
                                     std::to_string(value)});
    // The indexer rotates the first qk_rope_head_dim values of its heads.
    if (c.index_head_dim > 0 && c.index_head_dim < c.qk_rope_head_dim)
      problems.push_back({"index_head_dim", "index_head_dim (" + std::to_string(c.index_head_dim) +
                                                ") must be at least qk_rope_head_dim (" +
                                                std::to_string(c.qk_rope_head_dim) +
                                                "), the rotary part of its heads"});
    // The indexer reads the query's low-rank residual.
    if (c.q_lora_rank <= 0)
      problems.push_back({"q_lora_rank", "deepseek_v32 needs q_lora_rank: the indexer's queries "
                                         "are projected from the query's low-rank residual"});
  }
  if (c.model_type == "qwen3_next") {
    for (const auto& [key, value] :
         {std::pair{"linear_conv_kernel_dim", c.linear_conv_kernel_dim},
          std::pair{"linear_key_head_dim", c.linear_key_head_dim},
          std::pair{"linear_value_head_dim", c.linear_value_head_dim},
          std::pair{"linear_num_key_heads", c.linear_num_key_heads},
          std::pair{"linear_num_value_heads", c.linear_num_value_heads}})
      if (value <= 0)
        problems.push_back({key, std::string(key) + " must be positive, got " +
                                     std::to_string(value)});
    if (c.linear_num_key_heads > 0 && c.linear_num_value_heads > 0 &&
        c.linear_num_value_heads % c.linear_num_key_heads != 0)
      problems.push_back({"linear_num_value_heads",
                          "linear_num_value_heads (" + std::to_string(c.linear_num_value_heads) +
                              ") is not divisible by linear_num_key_heads (" +
                              std::to_string(c.linear_num_key_heads) + ")"});
    if (c.shared_expert_intermediate_size < 0)
      problems.push_back({"shared_expert_intermediate_size",
                          "shared_expert_intermediate_size must not be negative, got " +
                              std::to_string(c.shared_expert_intermediate_size)});
  }
  if (is_deepseek_v4(c)) {
    for (const auto& [key, value] :
         {std::pair{"hc_mult", c.hc_mult}, std::pair{"q_lora_rank", c.q_lora_rank}, std::pair{"o_groups", c.o_groups},
          std::pair{"o_lora_rank", c.o_lora_rank}, std::pair{"sliding_window", c.sliding_window},
          std::pair{"moe_intermediate_size", c.moe_intermediate_size}})
      if (value <= 0)
        problems.push_back({key, std::string(key) + " must be positive, got " +
                                     std::to_string(value)});
    for (const auto& [key, value] : {std::pair{"compress_rates", c.csa_compress_rate},
                                     std::pair{"compress_rates", c.hca_compress_rate}})
      if (value <= 0)
        problems.push_back({key, std::string(key) + " entries must be positive, got " +
                                     std::to_string(value)});
    // 0 is one column normalisation, as DeepseekV4HyperConnection computes it.
    if (c.hc_sinkhorn_iters < 0)
      problems.push_back({"hc_sinkhorn_iters", "hc_sinkhorn_iters must not be negative, got " +
                                                   std::to_string(c.hc_sinkhorn_iters)});
    if (!(c.hc_eps >= 0) || std::isinf(c.hc_eps))
      problems.push_back({"hc_eps", "hc_eps must be a finite non-negative number, got " +
                                        number(c.hc_eps)});
    if (!(c.swiglu_limit > 0))
      problems.push_back({"swiglu_limit", "swiglu_limit must be a positive number, got " +
                                              number(c.swiglu_limit)});
    // DeepseekV4TopKRouter applies ACT2FN[scoring_func]; transformers 5.17's ACT2FN has
    // sqrtsoftplus and sigmoid, and no softmax, whatever DeepseekV4Config's docstring lists.
    if (c.scoring_func != "sqrtsoftplus" && c.scoring_func != "sigmoid")
      problems.push_back({"scoring_func", "scoring_func '" + c.scoring_func +
                                              "' is not supported (DeepSeek-V4's router applies "
                                              "ACT2FN[scoring_func]: sqrtsoftplus or sigmoid)"});
    const int64_t width = int64_t{c.num_attention_heads} * with_defaults(c).head_dim;
    if (c.o_groups > 0 && width % c.o_groups != 0)
      problems.push_back({"o_groups", "o_groups (" + std::to_string(c.o_groups) +
                                          ") does not divide num_attention_heads * head_dim (" +
                                          std::to_string(width) + ")"});
    bool csa = false;
    for (const std::string& t : c.layer_types) csa = csa || t == "compressed_sparse_attention";
    if (csa) {
      for (const auto& [key, value] : {std::pair{"index_topk", c.index_topk},
                                       std::pair{"index_head_dim", c.index_head_dim},
                                       std::pair{"index_n_heads", c.index_n_heads}})
        if (value <= 0)
          problems.push_back({key, std::string(key) + " must be positive, got " +
                                       std::to_string(value)});
      // The indexer rotates the last rotary_dim values of its heads.
      if (c.index_head_dim > 0 && with_defaults(c).head_dim > 0 &&
          c.index_head_dim < rotary_dim(with_defaults(c)))
        problems.push_back({"index_head_dim", "index_head_dim (" + std::to_string(c.index_head_dim) +
                                                  ") must be at least the rotary part of the "
                                                  "heads (" +
                                                  std::to_string(rotary_dim(with_defaults(c))) +
                                                  " values)"});
    }
    require_mlp_layer_types(problems, c, "hash_moe", "moe");
  }
  if (is_gemma3n(c)) {
    for (const auto& [key, value] :
         {std::pair{"altup_num_inputs", c.altup_num_inputs}, std::pair{"laurel_rank", c.laurel_rank},
          std::pair{"hidden_size_per_layer_input", c.hidden_size_per_layer_input},
          std::pair{"vocab_size_per_layer_input", c.vocab_size_per_layer_input}})
      if (value <= 0)
        problems.push_back({key, std::string(key) + " must be positive, got " +
                                     std::to_string(value)});
    // Gemma3nTextConfig.validate_architecture, even with head_dim given.
    if (c.num_attention_heads > 0 && c.hidden_size > 0 && c.hidden_size % c.num_attention_heads != 0)
      problems.push_back({"num_attention_heads",
                          "hidden_size (" + std::to_string(c.hidden_size) +
                              ") is not a multiple of num_attention_heads (" +
                              std::to_string(c.num_attention_heads) +
                              "), which Gemma3nTextConfig requires"});
    if (c.altup_num_inputs > 0 && (c.altup_active_idx < 0 || c.altup_active_idx >= c.altup_num_inputs))
      problems.push_back({"altup_active_idx", "altup_active_idx (" +
                                                  std::to_string(c.altup_active_idx) +
                                                  ") must be between 0 and altup_num_inputs - 1 (" +
                                                  std::to_string(c.altup_num_inputs - 1) + ")"});
    if (!c.activation_sparsity_pattern.empty() &&
        static_cast<int>(c.activation_sparsity_pattern.size()) != c.num_hidden_layers)
      problems.push_back({"activation_sparsity_pattern",
                          "activation_sparsity_pattern has " +
                              std::to_string(c.activation_sparsity_pattern.size()) +
                              " entries, num_hidden_layers is " +
                              std::to_string(c.num_hidden_layers)});
    // Phi^-1(p) is finite for p in (0, 1); 0 turns the cut off.
    for (double p : c.activation_sparsity_pattern)
      if (!(p >= 0 && p < 1)) {
        problems.push_back({"activation_sparsity_pattern",
                            "activation_sparsity_pattern entries must be in [0, 1), got " +
                                number(p)});
        break;
      }
  }
  if (!c.layer_intermediate_sizes.empty()) {
    if (static_cast<int>(c.layer_intermediate_sizes.size()) != c.num_hidden_layers)
      problems.push_back({"intermediate_size",
                          "intermediate_size has " +
                              std::to_string(c.layer_intermediate_sizes.size()) +
                              " entries, num_hidden_layers is " +
                              std::to_string(c.num_hidden_layers)});
    for (int w : c.layer_intermediate_sizes)
      if (w <= 0) {
        problems.push_back({"intermediate_size", "intermediate_size entries must be positive, got " +
                                                     std::to_string(w)});
        break;
      }
  }
  if (c.partial_rotary_factor != 1.0) {
    const ModelConfig d = with_defaults(c);
    const int dim = d.head_dim > 0 ? rotary_dim(c) : 0;
    if (c.model_type != "phi3" && c.model_type != "qwen3_next" && !is_deepseek_v4(c))
      problems.push_back({"partial_rotary_factor",
                          "partial_rotary_factor is only supported for phi3, qwen3_next and "
                          "deepseek_v4, not " +
                              c.model_type});
    else if (!(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1))
      problems.push_back({"partial_rotary_factor",
                          "partial_rotary_factor must be in (0, 1], got " +
                              number(c.partial_rotary_factor)});
    else if (d.head_dim > 0 && (dim < 2 || dim % 2 != 0))
      problems.push_back({"partial_rotary_factor",
                          "partial_rotary_factor " + number(c.partial_rotary_factor) +
                              " rotates " + std::to_string(dim) + " of head_dim " +
                              std::to_string(d.head_dim) +
                              " values; RoPE needs an even number of them, at least 2"});
  }
  require_finite_not_negative(problems, "attn_logit_softcapping", c.attn_logit_softcapping);
  require_finite_not_negative(problems, "final_logit_softcapping", c.final_logit_softcapping);
  require_finite_not_negative(problems, "query_pre_attn_scalar", c.query_pre_attn_scalar);

  // Qwen3-Next without experts has a dense MLP in every layer, as Qwen3NextDecoderLayer builds it.
  const bool dense_qwen3_next = c.model_type == "qwen3_next" && c.num_local_experts == 0;
  if (dense_qwen3_next) {
    if (c.num_experts_per_tok < 0)
      problems.push_back({"num_experts_per_tok", "num_experts_per_tok must not be negative, got " +
                                                     std::to_string(c.num_experts_per_tok)});
  } else if (c.model_type == "mixtral" || c.model_type == "qwen3_moe" ||
             c.model_type == "gpt_oss" || is_deepseek(c) || c.model_type == "qwen3_next" ||
             is_deepseek_v4(c)) {
    // Qwen3-MoE and Qwen3-Next spell the expert count num_experts, DeepSeek n_routed_experts.
    const bool qwen = c.model_type == "qwen3_moe" || c.model_type == "qwen3_next";
    const std::string experts_key = qwen                            ? "num_experts"
                                    : is_deepseek(c) || is_deepseek_v4(c) ? "n_routed_experts"
                                                                    : "num_local_experts";
    if (c.num_local_experts <= 0)
      problems.push_back({experts_key, experts_key + " must be positive, got " +
                                           std::to_string(c.num_local_experts)});
    if (c.num_experts_per_tok <= 0)
      problems.push_back({"num_experts_per_tok", "num_experts_per_tok must be positive, got " +
                                                     std::to_string(c.num_experts_per_tok)});
    else if (c.num_local_experts > 0 && c.num_experts_per_tok > c.num_local_experts)
      problems.push_back({"num_experts_per_tok", "num_experts_per_tok (" +
                                                     std::to_string(c.num_experts_per_tok) +
                                                     ") exceeds " + experts_key + " (" +
                                                     std::to_string(c.num_local_experts) + ")"});
    if (c.moe_intermediate_size < 0)
      problems.push_back({"moe_intermediate_size", "moe_intermediate_size must be positive, got " +
                                                       std::to_string(c.moe_intermediate_size)});
    if (is_deepseek(c)) {
      if (c.n_group <= 0 || (c.num_local_experts > 0 && c.num_local_experts % c.n_group != 0))
        problems.push_back({"n_group", "n_group (" + std::to_string(c.n_group) +
                                           ") must be positive and divide n_routed_experts (" +
                                           std::to_string(c.num_local_experts) + ")"});
      else if (c.topk_group <= 0 || c.topk_group > c.n_group)
        problems.push_back({"topk_group", "topk_group (" + std::to_string(c.topk_group) +
                                              ") must be between 1 and n_group (" +
                                              std::to_string(c.n_group) + ")"});
      else if (c.num_local_experts / c.n_group < 2)
        problems.push_back({"n_group", "each of the n_group groups needs at least 2 experts "
                                       "(a group's score is its two best), got " +
                                           std::to_string(c.num_local_experts / c.n_group)});
      else if (c.num_experts_per_tok > c.topk_group * (c.num_local_experts / c.n_group))
        problems.push_back({"num_experts_per_tok",
                            "num_experts_per_tok (" + std::to_string(c.num_experts_per_tok) +
                                ") exceeds the experts of the topk_group chosen groups"});
      if (c.n_shared_experts < 0)
        problems.push_back({"n_shared_experts", "n_shared_experts must not be negative"});
      if (!(c.routed_scaling_factor > 0) || std::isinf(c.routed_scaling_factor))
        problems.push_back({"routed_scaling_factor",
                            "routed_scaling_factor must be a finite positive number"});
    }
    if (c.decoder_sparse_step <= 0)
      problems.push_back({"decoder_sparse_step", "decoder_sparse_step must be positive, got " +
                                                     std::to_string(c.decoder_sparse_step)});
  } else if (c.num_local_experts != 0 || c.num_experts_per_tok != 0) {
    problems.push_back({"num_local_experts", "experts are only supported for mixtral, "
                                             "qwen3_moe, gpt_oss, deepseek_v3, deepseek_v32, "
                                             "qwen3_next and deepseek_v4, "
                                             "not " + c.model_type});
  }

  if (!c.query_heads.empty()) {
    if (c.model_type == "gpt2" || is_deepseek(c) || is_deepseek_v4(c)) {
      problems.push_back({"query_heads", "pinmark.query_heads needs separate q, k and v heads, "
                                         "which " + c.model_type + " does not have"});
    } else if (static_cast<int>(c.query_heads.size()) != c.num_hidden_layers) {
      problems.push_back({"query_heads", "pinmark.query_heads must give each of the " +
                                             std::to_string(c.num_hidden_layers) +
                                             " layers its query heads, got " +
                                             std::to_string(c.query_heads.size()) + " values"});
    } else {
      for (size_t l = 0; l < c.query_heads.size(); ++l) {
        const int h = c.query_heads[l];
        if (h <= 0 || c.num_key_value_heads <= 0 || h % c.num_key_value_heads != 0) {
          problems.push_back({"query_heads", "pinmark.query_heads: layer " + std::to_string(l) +
                                                 "'s " + std::to_string(h) +
                                                 " query heads are not a positive multiple of "
                                                 "num_key_value_heads (" +
                                                 std::to_string(c.num_key_value_heads) + ")"});
          break;
        }
      }
    }
  }

  // Gemma 3n reads the config's own key; other families take pinmark's.
  const std::string shared_key = is_gemma3n(c) ? "num_kv_shared_layers" : "kv_shared_layers";
  const std::string shared_name = is_gemma3n(c) ? shared_key : "pinmark." + shared_key;
  if (c.num_kv_shared_layers < 0 ||
      (c.num_hidden_layers > 0 && c.num_kv_shared_layers >= c.num_hidden_layers)) {
    problems.push_back({shared_key,
                        shared_name + " must be between 0 and num_hidden_layers - 1 (" +
                            std::to_string(int64_t{c.num_hidden_layers} - 1) + "), got " +
                            std::to_string(c.num_kv_shared_layers)});
  } else if (c.num_kv_shared_layers > 0) {
    const std::vector<int> sources = kv_source_layers(c);
    for (int l = 0; l < c.num_hidden_layers; ++l) {
      if (sources[l] < 0) {
        problems.push_back({shared_key,
                            "layer " + std::to_string(l) + " shares its keys and values but no "
                            "earlier layer has its attention type (" +
                            (is_sliding_layer(c, l) ? "sliding_attention" : "full_attention") +
                            ")"});
        break;
      }
    }
  }
}

}  // namespace

const std::vector<std::string>& known_model_types() {
  static const std::vector<std::string> types = {"llama",  "mistral", "qwen2",   "qwen3",
                                                 "gemma",  "gemma2",  "gpt2",    "mixtral",
                                                 "qwen3_moe", "olmo2",  "phi3",    "gemma3_text",
                                                 "gpt_oss",   "deepseek_v3", "deepseek_v32",
                                                 "qwen3_next", "gemma3n_text", "deepseek_v4"};
  return types;
}

bool is_deepseek(const ModelConfig& c) {
  return c.model_type == "deepseek_v3" || c.model_type == "deepseek_v32";
}

bool is_gemma3n(const ModelConfig& c) { return c.model_type == "gemma3n_text"; }

bool is_deepseek_v4(const ModelConfig& c) { return c.model_type == "deepseek_v4"; }

int compress_rate(const ModelConfig& c, int layer) {
  if (!is_deepseek_v4(c) || layer < 0 || layer >= static_cast<int>(c.layer_types.size())) return 0;
  const std::string& t = c.layer_types[layer];
  return t == "compressed_sparse_attention"    ? c.csa_compress_rate
         : t == "heavily_compressed_attention" ? c.hca_compress_rate
                                               : 0;
}

int layer_intermediate_size(const ModelConfig& c, int layer) {
  if (layer >= 0 && layer < static_cast<int>(c.layer_intermediate_sizes.size()))
    return c.layer_intermediate_sizes[layer];
  return c.intermediate_size;
}

int query_heads(const ModelConfig& c, int layer) {
  if (layer >= 0 && layer < static_cast<int>(c.query_heads.size())) return c.query_heads[layer];
  return c.num_attention_heads;
}

int widest_query_heads(const ModelConfig& c) {
  int widest = c.num_attention_heads;
  for (int h : c.query_heads) widest = std::max(widest, h);
  return widest;
}

bool is_moe_layer(const ModelConfig& c, int layer) {
  if (c.num_local_experts <= 0) return false;
  if (is_deepseek(c))
    return c.mlp_layer_types.empty() ? layer >= c.first_k_dense_replace
                                     : layer < static_cast<int>(c.mlp_layer_types.size()) &&
                                           c.mlp_layer_types[layer] == "sparse";
  if (c.model_type != "qwen3_moe" && c.model_type != "qwen3_next") return true;
  if (std::find(c.mlp_only_layers.begin(), c.mlp_only_layers.end(), layer) !=
      c.mlp_only_layers.end())
    return false;
  return c.decoder_sparse_step > 0 && (layer + 1) % c.decoder_sparse_step == 0;
}

int rotary_dim(const ModelConfig& config) {
  const ModelConfig c = with_defaults(config);
  return static_cast<int>(c.head_dim * c.partial_rotary_factor);
}

int expert_intermediate_size(const ModelConfig& c) {
  return c.moe_intermediate_size > 0 ? c.moe_intermediate_size : c.intermediate_size;
}

bool is_linear_attention_layer(const ModelConfig& c, int layer) {
  return c.model_type == "qwen3_next" && layer >= 0 &&
         layer < static_cast<int>(c.layer_types.size()) &&
         c.layer_types[layer] == "linear_attention";
}

bool is_sliding_layer(const ModelConfig& c, int layer) {
  if (!c.layer_types.empty())
    return layer < static_cast<int>(c.layer_types.size()) &&
           c.layer_types[layer] == "sliding_attention";
  // Gemma 2's default: layers 0, 2, 4, ... slide, the others attend globally.
  if (c.model_type == "gemma2") return c.sliding_window > 0 && (layer + 1) % 2 != 0;
  return c.sliding_window > 0;
}

std::vector<int> kv_source_layers(const ModelConfig& c) {
  std::vector<int> sources(std::max(0, c.num_hidden_layers));
  const int first_shared = c.num_hidden_layers - c.num_kv_shared_layers;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    sources[l] = l;
    if (c.num_kv_shared_layers <= 0 || l < first_shared || first_shared <= 0) continue;
    sources[l] = -1;
    for (int s = first_shared - 1; s >= 0; --s) {
      if (is_sliding_layer(c, s) == is_sliding_layer(c, l)) {
        sources[l] = s;
        break;
      }
    }
  }
  return sources;
}

ModelConfig family_defaults(const std::string& model_type) {
  ModelConfig c;
  c.model_type = model_type;
  if (model_type == "mistral") {
    c.sliding_window = 4096;
  } else if (model_type == "qwen3") {
    c.head_dim = 128;
  } else if (model_type == "gemma3_text") {
    // Gemma3TextConfig's defaults; layer_types follows sliding_window_pattern 6 (the reader
    // lists them).
    c.head_dim = 256;
    c.hidden_act = "gelu_pytorch_tanh";
    c.tie_word_embeddings = true;
    c.query_pre_attn_scalar = 256;
    c.sliding_window = 4096;
    c.rope_theta = 1e6;
    c.rope_local_base_freq = 10000;
  } else if (model_type == "gemma3n_text") {
    // Gemma3nTextConfig's defaults (gemma-3n-E4B's shape); layer_types: every fifth layer
    // full, activation_sparsity_pattern 0.95 on the first 10 layers when there are more than
    // 10 (the reader lists both).
    c.head_dim = 256;
    c.hidden_act = "gelu_pytorch_tanh";
    c.tie_word_embeddings = true;
    c.sliding_window = 512;
    c.final_logit_softcapping = 30.0;
    c.rope_theta = 1e6;
    c.rope_local_base_freq = 10000;
    c.num_key_value_heads = 2;
    c.vocab_size_per_layer_input = 262144;
    c.hidden_size_per_layer_input = 256;
    c.altup_num_inputs = 4;
    c.num_kv_shared_layers = 15;
    c.laurel_rank = 64;
  } else if (model_type == "gemma" || model_type == "gemma2") {
    c.head_dim = 256;
    c.hidden_act = "gelu_pytorch_tanh";
    c.tie_word_embeddings = true;
    if (model_type == "gemma2") {
      c.query_pre_attn_scalar = 256;
      c.sliding_window = 4096;
      c.attn_logit_softcapping = 50.0;
      c.final_logit_softcapping = 30.0;
    }
  } else if (model_type == "gpt2") {
    c.rms_norm_eps = 1e-5;
    c.hidden_act = "gelu_new";
    c.tie_word_embeddings = true;
    c.max_position_embeddings = 1024;
  } else if (model_type == "mixtral") {
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 1e6;
    c.num_local_experts = 8;
    c.num_experts_per_tok = 2;
  } else if (model_type == "qwen3_moe") {
    // Qwen3MoeConfig's defaults (head_dim None: hidden_size / num_attention_heads).
    c.num_local_experts = 128;
    c.num_experts_per_tok = 8;
    c.moe_intermediate_size = 768;
    c.norm_topk_prob = false;
  } else if (model_type == "qwen3_next") {
    // Qwen3NextConfig's defaults (Qwen3-Next-80B-A3B's shape); layer_types: every fourth
    // layer full attention, the others Gated DeltaNet (the reader lists them).
    c.head_dim = 256;
    c.num_key_value_heads = 2;
    c.partial_rotary_factor = 0.25;
    c.linear_conv_kernel_dim = 4;
    c.linear_key_head_dim = 128;
    c.linear_value_head_dim = 128;
    c.linear_num_key_heads = 16;
    c.linear_num_value_heads = 32;
    c.num_local_experts = 512;
    c.num_experts_per_tok = 10;
    c.moe_intermediate_size = 512;
    c.shared_expert_intermediate_size = 512;
  } else if (model_type == "olmo2") {
    c.rms_norm_eps = 1e-5;
  } else if (model_type == "phi3") {
    c.rms_norm_eps = 1e-5;
  } else if (model_type == "deepseek_v3" || model_type == "deepseek_v32") {
    // DeepseekV3Config's defaults (DeepSeek-V3's shape; DeepseekV32Config's are the same, and
    // its attention always interleaves the rotary part).
    c.q_lora_rank = 1536;
    c.kv_lora_rank = 512;
    c.qk_nope_head_dim = 128;
    c.qk_rope_head_dim = 64;
    c.v_head_dim = 128;
    c.rope_interleave = true;
    c.num_local_experts = 256;
    c.num_experts_per_tok = 8;
    c.n_shared_experts = 1;
    c.n_group = 8;
    c.topk_group = 4;
    c.routed_scaling_factor = 2.5;
    c.first_k_dense_replace = 3;
    c.moe_intermediate_size = 2048;
    if (model_type == "deepseek_v32") {
      c.index_topk = 2048;
      c.index_head_dim = 128;
      c.index_n_heads = 64;
    }
  } else if (model_type == "deepseek_v4") {
    // DeepseekV4Config's defaults (DeepSeek-V4-Flash's shape); layer_types: two HCA layers, then
    // HCA and CSA alternating; mlp_layer_types: three hash_moe layers, then moe (the reader
    // lists both). One shared key-and-value head.
    c.head_dim = 512;
    c.num_key_value_heads = 1;
    c.q_lora_rank = 1024;
    c.partial_rotary_factor = 64.0 / 512.0;
    c.rope_local_base_freq = 10000;
    c.rope_theta = 160000;
    c.sliding_window = 128;
    c.hc_mult = 4;
    c.o_groups = 8;
    c.o_lora_rank = 1024;
    c.index_n_heads = 64;
    c.index_head_dim = 128;
    c.index_topk = 512;
    c.num_local_experts = 256;
    c.num_experts_per_tok = 6;
    c.moe_intermediate_size = 2048;
    c.routed_scaling_factor = 1.5;
    c.max_position_embeddings = 1048576;
  } else if (model_type == "gpt_oss") {
    // GptOssConfig's defaults (gpt-oss-120b's shape); layer_types alternate sliding and full
    // (the reader lists them).
    c.head_dim = 64;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 150000;
    c.attention_bias = true;
    c.sliding_window = 128;
    c.num_local_experts = 128;
    c.num_experts_per_tok = 4;
  }
  return c;
}

std::vector<ConfigProblem> validate(const ModelConfig& c) {
  std::vector<ConfigProblem> problems;
  require_positive(problems, c, "vocab_size", c.vocab_size);
  require_positive(problems, c, "hidden_size", c.hidden_size);
  // GPT-2's n_inner may be left to its default (4 * n_embd).
  if (c.model_type == "gpt2")
    require_not_negative(problems, c, "intermediate_size", c.intermediate_size);
  else
    require_positive(problems, c, "intermediate_size", c.intermediate_size);
  require_positive(problems, c, "num_hidden_layers", c.num_hidden_layers);
  require_positive(problems, c, "num_attention_heads", c.num_attention_heads);
  require_not_negative(problems, c, "num_key_value_heads", c.num_key_value_heads);
  require_not_negative(problems, c, "head_dim", c.head_dim);
  if (c.model_type == "gpt2")
    require_positive(problems, c, "max_position_embeddings", c.max_position_embeddings);
  else if (c.max_position_embeddings < 0)
    problems.push_back(
        {"max_position_embeddings", "max_position_embeddings must not be negative, got " +
                                        std::to_string(c.max_position_embeddings)});
  // GPT-2's default n_inner is 4 * n_embd, which must itself be an int.
  if (c.model_type == "gpt2" && c.intermediate_size == 0 && c.hidden_size > INT_MAX / 4)
    problems.push_back({"n_embd", "n_embd " + std::to_string(c.hidden_size) +
                                      " makes the default n_inner (4 * n_embd) larger than " +
                                      std::to_string(INT_MAX)});
  const std::string eps_key = key_of(c, "rms_norm_eps");
  if (!(c.rms_norm_eps >= 0) || std::isinf(c.rms_norm_eps))
    problems.push_back({eps_key, eps_key + " must be a finite non-negative number, got " +
                                     number(c.rms_norm_eps)});
  if (!(c.rope_local_base_freq >= 0) || std::isinf(c.rope_local_base_freq))
    problems.push_back({"rope_local_base_freq",
                        "rope_local_base_freq must be a finite positive number, got " +
                            number(c.rope_local_base_freq)});
  if (!(c.rope_theta > 0) || std::isinf(c.rope_theta))
    problems.push_back(
        {"rope_theta", "rope_theta must be a finite positive number, got " + number(c.rope_theta)});
  validate_family(c, problems);

  const int heads = c.num_attention_heads;
  if (heads > 0 && c.num_key_value_heads > 0 && heads % c.num_key_value_heads != 0)
    problems.push_back({"num_key_value_heads", "num_attention_heads (" + std::to_string(heads) +
                                                   ") is not divisible by num_key_value_heads (" +
                                                   std::to_string(c.num_key_value_heads) + ")"});

  if (!uses_rope(c)) {
    // No rotary pairs: only the heads have to tile the hidden size.
    if (c.head_dim == 0 && heads > 0 && c.hidden_size > 0 && c.hidden_size % heads != 0)
      problems.push_back({key_of(c, "hidden_size"),
                          key_of(c, "hidden_size") + " (" + std::to_string(c.hidden_size) +
                              ") is not divisible by " + key_of(c, "num_attention_heads") + " (" +
                              std::to_string(heads) + ")"});
  } else if (c.head_dim > 0) {
    if (c.head_dim % 2 != 0)
      problems.push_back({"head_dim", "head_dim (" + std::to_string(c.head_dim) +
                                          ") must be even for rotary embedding"});
  } else if (c.head_dim == 0 && heads > 0 && c.hidden_size > 0) {
    if (c.hidden_size % heads != 0) {
      problems.push_back({"hidden_size", "hidden_size (" + std::to_string(c.hidden_size) +
                                             ") is not divisible by num_attention_heads (" +
                                             std::to_string(heads) + ")"});
    } else if ((c.hidden_size / heads) % 2 != 0) {
      // Named after hidden_size, the key the config does contain, so that the problem
      // points at a line of it.
      problems.push_back({"hidden_size", "head_dim (hidden_size / num_attention_heads = " +
                                             std::to_string(c.hidden_size / heads) +
                                             ") must be even for rotary embedding"});
    }
  }
  return problems;
}

std::string config_key_name(const ModelConfig& config, const std::string& field) {
  return key_of(config, field);
}

ModelConfig with_defaults(ModelConfig config) {
  if (config.num_key_value_heads == 0) config.num_key_value_heads = config.num_attention_heads;
  // DeepseekV3Config: head_dim is the rotary width.
  if (is_deepseek(config)) config.head_dim = config.qk_rope_head_dim;
  if (config.head_dim == 0 && config.num_attention_heads > 0)
    config.head_dim = config.hidden_size / config.num_attention_heads;
  if (config.model_type == "gpt2" && config.intermediate_size == 0 &&
      config.hidden_size <= INT_MAX / 4)
    config.intermediate_size = 4 * config.hidden_size;
  return config;
}

}  // namespace pinmark
