#include "runtime/model_config.h"

#include <gtest/gtest.h>

namespace pinmark {
namespace {

ModelConfig small() {
  ModelConfig c;
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.intermediate_size = 40;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  return c;
}

// The single problem validate() reports, as "key: message".
std::string only_problem(const ModelConfig& c) {
  std::vector<ConfigProblem> problems = validate(c);
  if (problems.size() != 1) return "expected one problem, got " + std::to_string(problems.size());
  return problems[0].key + ": " + problems[0].message;
}

TEST(ModelConfig, ValidConfigHasNoProblems) {
  EXPECT_TRUE(validate(small()).empty());
  ModelConfig mha = small();
  mha.num_key_value_heads = 0;
  EXPECT_TRUE(validate(mha).empty());
}

TEST(ModelConfig, DefaultsFollowHuggingFace) {
  ModelConfig c = small();
  c.num_key_value_heads = 0;
  const ModelConfig d = with_defaults(c);
  EXPECT_EQ(d.num_key_value_heads, 4);
  EXPECT_EQ(d.head_dim, 4);

  ModelConfig explicit_dims = small();
  explicit_dims.head_dim = 8;
  EXPECT_EQ(with_defaults(explicit_dims).head_dim, 8);
  EXPECT_EQ(with_defaults(explicit_dims).num_key_value_heads, 2);
}

TEST(ModelConfig, HiddenSizeNotDivisibleByHeads) {
  ModelConfig c = small();
  c.hidden_size = 100;
  c.num_attention_heads = 3;
  c.num_key_value_heads = 0;
  EXPECT_EQ(only_problem(c),
            "hidden_size: hidden_size (100) is not divisible by num_attention_heads (3)");
}

TEST(ModelConfig, ExplicitHeadDimNeedNotDivideHiddenSize) {
  ModelConfig c = small();
  c.hidden_size = 100;
  c.num_attention_heads = 3;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  EXPECT_TRUE(validate(c).empty());
}

TEST(ModelConfig, HeadsNotDivisibleByKvHeads) {
  ModelConfig c = small();
  c.hidden_size = 24;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 4;
  EXPECT_EQ(only_problem(c),
            "num_key_value_heads: num_attention_heads (6) is not divisible by "
            "num_key_value_heads (4)");
}

TEST(ModelConfig, NonPositiveSizes) {
  ModelConfig c = small();
  c.vocab_size = 0;
  EXPECT_EQ(only_problem(c), "vocab_size: vocab_size must be positive, got 0");
  c = small();
  c.num_hidden_layers = -1;
  EXPECT_EQ(only_problem(c), "num_hidden_layers: num_hidden_layers must be positive, got -1");
  c = small();
  c.intermediate_size = 0;
  EXPECT_EQ(only_problem(c), "intermediate_size: intermediate_size must be positive, got 0");
}

TEST(ModelConfig, OddHeadDim) {
  ModelConfig c = small();
  c.head_dim = 5;
  EXPECT_EQ(only_problem(c), "head_dim: head_dim (5) must be even for rotary embedding");

  ModelConfig derived = small();
  derived.hidden_size = 20;  // 20 / 4 = 5
  EXPECT_EQ(only_problem(derived),
            "hidden_size: head_dim (hidden_size / num_attention_heads = 5) must be even for rotary "
            "embedding");
}

TEST(ModelConfig, BadFloatingPointSettings) {
  ModelConfig c = small();
  c.rope_theta = 0;
  EXPECT_EQ(only_problem(c), "rope_theta: rope_theta must be a finite positive number, got 0");
  c = small();
  c.rms_norm_eps = -1e-6;
  EXPECT_EQ(only_problem(c),
            "rms_norm_eps: rms_norm_eps must be a finite non-negative number, got -1e-06");
}

TEST(ModelConfig, ReportsEveryProblem) {
  ModelConfig c;  // all sizes zero
  EXPECT_EQ(validate(c).size(), 5u);
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

ModelConfig family(const std::string& type) {
  ModelConfig c = family_defaults(type);
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.intermediate_size = 40;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 0;
  // Qwen3-Next rotates a quarter of each head: 4 values need a head of 8 (16 / 4 = 4 is too few).
  if (type == "qwen3_next") c.head_dim = 8;
  // Gemma3nTextConfig's 15 shared layers need more than 15 layers.
  if (type == "gemma3n_text") c.num_kv_shared_layers = 0;
  // DeepSeek-V4 reads layer_types and mlp_layer_types as the config reader resolves them.
  if (type == "deepseek_v4") {
    c.head_dim = 16;
    c.layer_types = {"heavily_compressed_attention", "compressed_sparse_attention"};
    c.mlp_layer_types = {"hash_moe", "moe"};
  }
  return c;
}

std::string problem_of(const ModelConfig& c) {
  std::vector<ConfigProblem> problems = validate(c);
  if (problems.size() != 1) return "expected one problem, got " + std::to_string(problems.size());
  return problems[0].key + ": " + problems[0].message;
}

TEST(FamilyConfig, DefaultsAreValid) {
  for (const std::string& type : known_model_types())
    EXPECT_TRUE(validate(family(type)).empty()) << type;
}

TEST(FamilyConfig, ProblemsNameTheirKey) {
  ModelConfig c = family("mistral");
  c.sliding_window = -2;
  EXPECT_EQ(problem_of(c), "sliding_window: sliding_window must be positive, got -2");

  c = family("mixtral");
  c.num_experts_per_tok = 9;
  EXPECT_EQ(problem_of(c),
            "num_experts_per_tok: num_experts_per_tok (9) exceeds num_local_experts (8)");
  c.num_experts_per_tok = 0;
  EXPECT_EQ(problem_of(c), "num_experts_per_tok: num_experts_per_tok must be positive, got 0");
  c = family("mixtral");
  c.num_local_experts = 0;
  c.num_experts_per_tok = 0;
  EXPECT_EQ(validate(c)[0].message, "num_local_experts must be positive, got 0");

  c = family("gemma2");
  c.head_dim = 7;
  EXPECT_EQ(problem_of(c), "head_dim: head_dim (7) must be even for rotary embedding");
  c = family("gemma2");
  c.attn_logit_softcapping = -1;
  EXPECT_EQ(problem_of(c),
            "attn_logit_softcapping: attn_logit_softcapping must be a finite positive number, "
            "got -1");
  c = family("gemma2");
  c.layer_types = {"full_attention"};
  EXPECT_EQ(problem_of(c), "layer_types: layer_types has 1 entries, num_hidden_layers is 2");
  c.layer_types = {"full_attention", "chunked_attention"};
  EXPECT_EQ(problem_of(c),
            "layer_types: layer_types entry 'chunked_attention' is not supported (pinmark "
            "implements full_attention and sliding_attention for gemma2)");
  c = family("qwen2");
  c.layer_types = {"full_attention", "sliding_attention"};
  EXPECT_EQ(problem_of(c),
            "sliding_window: layer_types has sliding_attention layers but sliding_window is not "
            "set");

  c = family("llama");
  c.rope_type = "proportional";
  EXPECT_EQ(problem_of(c),
            "rope_scaling: rope_type 'proportional' is not supported (pinmark implements default, "
            "linear, llama3, dynamic, yarn and longrope)");
  c.rope_type = "linear";
  c.rope_factor = 0;
  EXPECT_EQ(problem_of(c),
            "rope_scaling: rope_scaling factor must be a finite positive number, got 0");
  c = family("llama");
  c.rope_type = "llama3";
  c.rope_factor = 8;
  c.rope_low_freq_factor = 4;
  c.rope_high_freq_factor = 1;
  c.rope_original_max_position_embeddings = 8192;
  EXPECT_EQ(problem_of(c),
            "rope_scaling: rope_scaling high_freq_factor (1) must be greater than "
            "low_freq_factor (4)");

  c = family("gpt2");
  c.num_key_value_heads = 0;
  c.hidden_size = 18;
  EXPECT_EQ(problem_of(c), "n_embd: n_embd (18) is not divisible by n_head (4)");
  c = family("gpt2");
  c.num_key_value_heads = 0;
  c.hidden_act = "silu";
  EXPECT_EQ(problem_of(c),
            "activation_function: activation_function 'silu' is not supported for gpt2 (pinmark "
            "implements gelu, gelu_new and gelu_pytorch_tanh)");
  c = family("gpt2");
  c.num_key_value_heads = 0;
  c.max_position_embeddings = 0;
  EXPECT_EQ(problem_of(c), "n_positions: n_positions must be positive, got 0");

  c = family("llama");
  c.num_kv_shared_layers = 2;
  EXPECT_EQ(problem_of(c),
            "kv_shared_layers: pinmark.kv_shared_layers must be between 0 and num_hidden_layers "
            "- 1 (1), got 2");
  c = family("llama");  // 2 layers, 2 KV heads
  c.query_heads = {4};
  EXPECT_EQ(problem_of(c), "query_heads: pinmark.query_heads must give each of the 2 layers its "
                           "query heads, got 1 values");
  c.query_heads = {4, 3};
  EXPECT_EQ(problem_of(c), "query_heads: pinmark.query_heads: layer 1's 3 query heads are not a "
                           "positive multiple of num_key_value_heads (2)");
  c.query_heads = {2, 8};
  EXPECT_TRUE(validate(c).empty());
  EXPECT_EQ(query_heads(c, 0), 2);
  EXPECT_EQ(query_heads(c, 1), 8);
  EXPECT_EQ(widest_query_heads(c), 8);
  c = family("gpt2");
  c.query_heads = {4, 4};
  EXPECT_EQ(problem_of(c), "query_heads: pinmark.query_heads needs separate q, k and v heads, "
                           "which gpt2 does not have");
  c = family("qwen2");
  c.num_hidden_layers = 3;
  c.sliding_window = 4;
  c.layer_types = {"full_attention", "full_attention", "sliding_attention"};
  c.num_kv_shared_layers = 1;
  EXPECT_EQ(problem_of(c),
            "kv_shared_layers: layer 2 shares its keys and values but no earlier layer has its "
            "attention type (sliding_attention)");

  c = family("llama");
  c.num_local_experts = 4;
  EXPECT_EQ(problem_of(c), "num_local_experts: experts are only supported for mixtral, qwen3_moe, "
                           "gpt_oss, deepseek_v3, deepseek_v32, qwen3_next and deepseek_v4, not llama");

  c = family("deepseek_v32");
  c.index_topk = 0;
  EXPECT_EQ(problem_of(c), "index_topk: index_topk must be positive, got 0");
  c = family("deepseek_v32");
  c.index_head_dim = 32;  // qk_rope_head_dim 64
  EXPECT_EQ(problem_of(c), "index_head_dim: index_head_dim (32) must be at least qk_rope_head_dim "
                           "(64), the rotary part of its heads");
  c = family("deepseek_v32");
  c.q_lora_rank = 0;
  EXPECT_EQ(problem_of(c), "q_lora_rank: deepseek_v32 needs q_lora_rank: the indexer's queries "
                           "are projected from the query's low-rank residual");
  c = family("deepseek_v32");
  c.mlp_layer_types = {"dense", "moe"};
  EXPECT_EQ(problem_of(c), "mlp_layer_types: mlp_layer_types entry 'moe' is neither dense nor "
                           "sparse");
  c.mlp_layer_types = {"dense"};
  EXPECT_EQ(problem_of(c), "mlp_layer_types: mlp_layer_types has 1 entries, num_hidden_layers is 2");
  c.mlp_layer_types = {"sparse", "dense"};
  EXPECT_TRUE(validate(c).empty());
  EXPECT_TRUE(is_moe_layer(c, 0));
  EXPECT_FALSE(is_moe_layer(c, 1));
  c = family("deepseek_v32");
  c.layer_types = {"deepseek_sparse_attention", "full_attention"};
  EXPECT_EQ(problem_of(c), "layer_types: layer_types entry 'full_attention' is not supported "
                           "(pinmark implements deepseek_sparse_attention for deepseek_v32)");
  c = family("llama");
  c.model_type = "falcon";
  EXPECT_EQ(problem_of(c), "model_type: model_type 'falcon' is not supported");
}

TEST(FamilyConfig, HuggingFaceDefaults) {
  EXPECT_EQ(family_defaults("gemma2").head_dim, 256);
  EXPECT_EQ(family_defaults("gemma2").final_logit_softcapping, 30.0);
  EXPECT_EQ(family_defaults("gemma2").attn_logit_softcapping, 50.0);
  EXPECT_EQ(family_defaults("gemma2").query_pre_attn_scalar, 256.0);
  EXPECT_EQ(family_defaults("gemma2").sliding_window, 4096);
  EXPECT_TRUE(family_defaults("gemma").tie_word_embeddings);
  EXPECT_EQ(family_defaults("mistral").sliding_window, 4096);
  EXPECT_EQ(family_defaults("qwen2").sliding_window, 0);
  EXPECT_EQ(family_defaults("qwen3").head_dim, 128);
  EXPECT_EQ(family_defaults("gpt2").hidden_act, "gelu_new");
  EXPECT_EQ(family_defaults("gpt2").rms_norm_eps, 1e-5);
  EXPECT_EQ(family_defaults("mixtral").num_local_experts, 8);
  EXPECT_EQ(family_defaults("mixtral").num_experts_per_tok, 2);
  EXPECT_EQ(family_defaults("mixtral").rope_theta, 1e6);
  ModelConfig gpt2 = family("gpt2");
  gpt2.intermediate_size = 0;
  EXPECT_EQ(with_defaults(gpt2).intermediate_size, 64);
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

TEST(FamilyConfig, Qwen3NextProblemsNameTheirKey) {
  ModelConfig c = family("qwen3_next");
  c.layer_types = {"linear_attention", "full_attention"};
  EXPECT_TRUE(validate(c).empty());
  c.linear_num_value_heads = 6;
  c.linear_num_key_heads = 4;
  EXPECT_EQ(problem_of(c), "linear_num_value_heads: linear_num_value_heads (6) is not divisible by "
                           "linear_num_key_heads (4)");
  c = family("qwen3_next");
  c.linear_key_head_dim = 0;
  EXPECT_EQ(problem_of(c), "linear_key_head_dim: linear_key_head_dim must be positive, got 0");
  c = family("qwen3_next");
  c.linear_conv_kernel_dim = -1;
  EXPECT_EQ(problem_of(c), "linear_conv_kernel_dim: linear_conv_kernel_dim must be positive, got -1");
  c = family("qwen3_next");
  c.layer_types = {"linear_attention", "chunked_attention"};
  EXPECT_EQ(problem_of(c), "layer_types: layer_types entry 'chunked_attention' is not supported "
                           "(pinmark implements full_attention and linear_attention for "
                           "qwen3_next)");
  c = family("qwen3_next");
  c.shared_expert_intermediate_size = -3;
  EXPECT_EQ(problem_of(c), "shared_expert_intermediate_size: shared_expert_intermediate_size must "
                           "not be negative, got -3");
  // Without experts every layer's MLP is dense, as Qwen3NextDecoderLayer builds it.
  c = family("qwen3_next");
  c.num_local_experts = 0;
  c.num_experts_per_tok = 0;
  EXPECT_TRUE(validate(c).empty());
  EXPECT_FALSE(is_moe_layer(c, 0));
  // Other families still rotate whole heads.
  c = family("llama");
  c.partial_rotary_factor = 0.5;
  EXPECT_EQ(problem_of(c), "partial_rotary_factor: partial_rotary_factor is only supported for "
                           "phi3, qwen3_next and deepseek_v4, not llama");
  c = family("llama");
  c.layer_types = {"linear_attention", "full_attention"};
  EXPECT_EQ(problem_of(c), "layer_types: layer_types entry 'linear_attention' is not supported "
                           "(pinmark implements full_attention and sliding_attention for llama)");
}

}  // namespace
}  // namespace pinmark
