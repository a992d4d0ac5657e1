// Config keys of published checkpoints that pinmark must read as transformers reads them:
// Google's gemma-2-9b-it config.json (fixtures/gemma2_published_config.md, sizes shrunk) and
// each of its keys that Gemma2Config stores but the modeling code reads differently or not.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"
#include "driver/render.h"
#include "driver/hf_config.h"
#include "driver/verdict.h"
#include "runtime/model_config.h"
#include "tests/driver/spec_support.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::problems_of;

using test::contains;

// A Gemma 2 case whose Config block is these keys after the sizes.
std::string gemma2_case(const std::string& extra_keys) {
  return "# T\n\n## C\n\n### Config\n\n```json\n{\n"
         "  \"model_type\": \"gemma2\",\n"
         "  \"vocab_size\": 48,\n"
         "  \"hidden_size\": 32,\n"
         "  \"intermediate_size\": 64,\n"
         "  \"num_hidden_layers\": 2,\n"
         "  \"num_attention_heads\": 4,\n"
         "  \"num_key_value_heads\": 2,\n"
         "  \"head_dim\": 16" +
         extra_keys +
         "\n}\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[2, 31, 17]], \"decode\": 1}\n```\n";
}

CaseSpec read(const std::string& markdown) { return test::spec_of(markdown); }

TEST(PublishedConfig, Gemma2ItConfigRunsLikeAnyGemma2) {
  const std::string path =
      std::string(PINMARK_SOURCE_DIR) + "/tests/driver/fixtures/gemma2_published_config.md";
  CaseFile file = parse_case_file(test::read_file(path));
  ASSERT_TRUE(file.problems.empty());
  const Case& c = file.cases.at(0);
  const CaseSpec spec = read_case_spec(c, path);
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_EQ(spec.model.sliding_window, 4);
  EXPECT_EQ(spec.model.hidden_act, "gelu_pytorch_tanh");
  const CaseResult result = run_case(spec);
  const std::string out = render_case(c, result);
  EXPECT_FALSE(contains(out, "### Errors")) << out;
  EXPECT_TRUE(contains(out, "### Logits")) << out;
  EXPECT_TRUE(case_failures(result).empty()) << out;
}

TEST(PublishedConfig, SlidingWindowSizeIsNotReadSlidingWindowDecides) {
  const CaseSpec spec =
      read(gemma2_case(",\n  \"sliding_window\": 4,\n  \"sliding_window_size\": 4096"));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_EQ(spec.model.sliding_window, 4);
  // Alone it changes nothing either: the window stays Gemma2Config's default.
  const CaseSpec alone = read(gemma2_case(",\n  \"sliding_window_size\": 2"));
  ASSERT_TRUE(alone.problems.empty()) << problems_of(alone);
  EXPECT_EQ(alone.model.sliding_window, 4096);
}

TEST(PublishedConfig, HiddenActBesideHiddenActivationIsNotRead) {
  const CaseSpec spec = read(gemma2_case(
      ",\n  \"hidden_act\": \"silu\",\n  \"hidden_activation\": \"gelu_pytorch_tanh\""));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_EQ(spec.model.hidden_act, "gelu_pytorch_tanh");
  const CaseSpec alone = read(gemma2_case(",\n  \"hidden_act\": \"silu\""));
  ASSERT_TRUE(alone.problems.empty()) << problems_of(alone);
  EXPECT_EQ(alone.model.hidden_act, "gelu_pytorch_tanh");
}

TEST(PublishedConfig, AnUnimplementedHiddenActivationIsRefusedByItsOwnName) {
  const CaseSpec spec = read(gemma2_case(",\n  \"hidden_activation\": \"relu\""));
  ASSERT_EQ(spec.problems.size(), 1u) << problems_of(spec);
  EXPECT_EQ(spec.problems[0].message,
            "hidden_activation \"relu\" is not supported (pinmark implements silu, gelu, "
            "gelu_new and gelu_pytorch_tanh); set it to one of these");
  EXPECT_EQ(spec.problems[0].where, "Config, line 10");
}

TEST(PublishedConfig, AnExactCacheImplementationIsAccepted) {
  for (const std::string value : {"\"hybrid\"", "\"static\"", "\"dynamic\"", "null"}) {
    const CaseSpec spec = read(gemma2_case(",\n  \"cache_implementation\": " + value));
    EXPECT_TRUE(spec.problems.empty()) << value << "\n" << problems_of(spec);
  }
}

TEST(PublishedConfig, AQuantizedCacheIsRefused) {
  const CaseSpec spec = read(gemma2_case(",\n  \"cache_implementation\": \"quantized\""));
  ASSERT_EQ(spec.problems.size(), 1u) << problems_of(spec);
  EXPECT_TRUE(contains(spec.problems[0].message,
                       "cache_implementation \"quantized\" is not supported (pinmark keeps keys "
                       "and values exactly: dynamic, static,"))
      << spec.problems[0].message;
  EXPECT_EQ(spec.problems[0].where, "Config, line 10");
}

// GemmaModel reads no sliding window at all, so a Gemma 2 key changes nothing there.
TEST(PublishedConfig, GemmaOneIgnoresGemma2OnlyKeys) {
  std::string md = gemma2_case(",\n  \"sliding_window_size\": 4");
  md.replace(md.find("\"gemma2\""), 8, "\"gemma\"");
  const CaseSpec spec = read(md);
  EXPECT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_EQ(spec.model.sliding_window, 0);
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

// A Qwen3-MoE case whose Config block is these keys after the sizes.
std::string qwen3_moe_case(const std::string& extra_keys) {
  return "# T\n\n## C\n\n### Config\n\n```json\n{\n"
         "  \"model_type\": \"qwen3_moe\",\n"
         "  \"vocab_size\": 48,\n"
         "  \"hidden_size\": 32,\n"
         "  \"intermediate_size\": 64,\n"
         "  \"moe_intermediate_size\": 16,\n"
         "  \"num_hidden_layers\": 2,\n"
         "  \"num_attention_heads\": 4,\n"
         "  \"num_key_value_heads\": 2,\n"
         "  \"num_experts\": 4,\n"
         "  \"num_experts_per_tok\": 2" +
         extra_keys +
         "\n}\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[2, 31, 17]], \"decode\": 1}\n```\n";
}

TEST(PublishedConfig, QwenMoeReadsBothSpellingsOfTheExpertCountAndItsDefaults) {
  const CaseSpec spec = read(qwen3_moe_case(""));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_EQ(spec.model.num_local_experts, 4);
  EXPECT_EQ(spec.model.moe_intermediate_size, 16);
  EXPECT_FALSE(spec.model.norm_topk_prob);  // Qwen3MoeConfig's default
  EXPECT_EQ(spec.model.head_dim, 8);        // hidden_size / heads: head_dim defaults to None
  std::string md = qwen3_moe_case("");
  md.replace(md.find("\"num_experts\""), 13, "\"num_local_experts\"");
  const CaseSpec saved_by_5x = read(md);
  ASSERT_TRUE(saved_by_5x.problems.empty()) << problems_of(saved_by_5x);
  EXPECT_EQ(saved_by_5x.model.num_local_experts, 4);
}

TEST(PublishedConfig, QwenMoeSlidingWindowOnIsRefusedOffIsReadForNothing) {
  const CaseSpec on = read(qwen3_moe_case(",\n  \"use_sliding_window\": true"));
  EXPECT_TRUE(contains(problems_of(on), "Config, line 12: use_sliding_window true is not "
                                        "supported (pinmark implements false)"))
      << problems_of(on);
  const CaseSpec off =
      read(qwen3_moe_case(",\n  \"use_sliding_window\": false,\n  \"sliding_window\": 4"));
  ASSERT_TRUE(off.problems.empty()) << problems_of(off);
  EXPECT_EQ(off.model.sliding_window, 0);
}

TEST(PublishedConfig, QwenMoeMlpOnlyLayersMustBeLayerIndices) {
  for (const char* bad : {"[1, -1]", "\"1\"", "[1.5]", "[true]"}) {
    const CaseSpec spec = read(qwen3_moe_case(std::string(",\n  \"mlp_only_layers\": ") + bad));
    EXPECT_TRUE(contains(problems_of(spec), "mlp_only_layers must be a list of layer indices "
                                            "(non-negative integers), got "))
        << bad << "\n" << problems_of(spec);
  }
  const CaseSpec spec = read(qwen3_moe_case(",\n  \"mlp_only_layers\": [0, 7]"));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_EQ(spec.model.mlp_only_layers, (std::vector<int>{0, 7}));
}

TEST(PublishedConfig, QwenMoeExpertCountErrorsNameTheKeyTheConfigSpells) {
  const CaseSpec spec = read(qwen3_moe_case(",\n  \"num_experts_per_tok\": 5"));
  EXPECT_TRUE(contains(problems_of(spec), "num_experts_per_tok (5) exceeds num_experts (4)"))
      << problems_of(spec);
  const CaseSpec zero = read(qwen3_moe_case(",\n  \"decoder_sparse_step\": 0"));
  EXPECT_TRUE(contains(problems_of(zero), "decoder_sparse_step must be positive, got 0"))
      << problems_of(zero);
}

TEST(PublishedConfig, OlmoTwoAcceptsItsPublishedKeys) {
  const CaseSpec spec = read(
      "# T\n\n## C\n\n### Config\n\n```json\n{\"model_type\": \"olmo2\", \"vocab_size\": 48, "
      "\"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 2, "
      "\"num_attention_heads\": 4, \"attention_bias\": false, \"rope_scaling\": null, "
      "\"hidden_act\": \"silu\"}\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[2, 31]], "
      "\"decode\": 1}\n```\n");
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_EQ(spec.model.rms_norm_eps, 1e-5);  // Olmo2Config's default
  const CaseSpec gelu = read(
      "# T\n\n## C\n\n### Config\n\n```json\n{\"model_type\": \"olmo2\", \"vocab_size\": 48, "
      "\"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 2, "
      "\"num_attention_heads\": 4, \"hidden_act\": \"gelu\"}\n```\n\n### Inputs\n\n```json\n"
      "{\"prompts\": [[2, 31]], \"decode\": 1}\n```\n");
  EXPECT_TRUE(contains(problems_of(gelu), "hidden_act \"gelu\" is not supported")) << problems_of(gelu);
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

std::string phi3_case(const std::string& extra_keys) {
  return "# T\n\n## C\n\n### Config\n\n```json\n{\n"
         "  \"model_type\": \"phi3\",\n"
         "  \"vocab_size\": 48,\n"
         "  \"hidden_size\": 48,\n"
         "  \"intermediate_size\": 64,\n"
         "  \"num_hidden_layers\": 2,\n"
         "  \"num_attention_heads\": 4,\n"
         "  \"max_position_embeddings\": 32" +
         extra_keys +
         "\n}\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[2, 31, 17]], \"decode\": 1}\n```\n";
}

TEST(PublishedConfig, PhiThreeReadsPartialRotaryAtTheTopLevelAndInRopeParameters) {
  const CaseSpec top = read(phi3_case(",\n  \"partial_rotary_factor\": 0.5"));
  ASSERT_TRUE(top.problems.empty()) << problems_of(top);
  EXPECT_EQ(top.model.partial_rotary_factor, 0.5);
  EXPECT_EQ(rotary_dim(top.model), 6);
  const CaseSpec nested = read(phi3_case(
      ",\n  \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0, "
      "\"partial_rotary_factor\": 0.75}"));
  EXPECT_TRUE(contains(problems_of(nested), "partial_rotary_factor 0.75 rotates 9 of head_dim 12"))
      << problems_of(nested);
  const CaseSpec half = read(phi3_case(
      ",\n  \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0, "
      "\"partial_rotary_factor\": 0.5}"));
  ASSERT_TRUE(half.problems.empty()) << problems_of(half);
  EXPECT_EQ(rotary_dim(half.model), 6);
}

TEST(PublishedConfig, PhiThreePartialRotaryMustLeaveAnEvenPositiveRotation) {
  const CaseSpec odd = read(phi3_case(",\n  \"partial_rotary_factor\": 0.75"));
  EXPECT_TRUE(contains(problems_of(odd), "partial_rotary_factor 0.75 rotates 9 of head_dim 12 "
                                         "values; RoPE needs an even number of them, at least 2"))
      << problems_of(odd);
  const CaseSpec big = read(phi3_case(",\n  \"partial_rotary_factor\": 1.5"));
  EXPECT_TRUE(contains(problems_of(big), "partial_rotary_factor must be in (0, 1], got 1.5"))
      << problems_of(big);
  const CaseSpec text = read(phi3_case(",\n  \"partial_rotary_factor\": \"half\""));
  EXPECT_TRUE(contains(problems_of(text), "partial_rotary_factor must be a number, got \"half\""))
      << problems_of(text);
}

TEST(PublishedConfig, ALlamaPartialRotaryIsStillRefused) {
  std::string md = phi3_case(",\n  \"partial_rotary_factor\": 0.5");
  md.replace(md.find("\"phi3\""), 6, "\"llama\"");
  EXPECT_TRUE(contains(problems_of(read(md)), "partial_rotary_factor 0.5 is not supported: this "
                                              "family's attention rotates the whole head"))
      << problems_of(read(md));
}

TEST(PublishedConfig, PhiThreeLongropeTakesTheTopLevelOriginalContext) {
  const std::string tables =
      "\"short_factor\": [1, 1, 1, 1, 1, 1], \"long_factor\": [1, 2, 3, 4, 5, 6]";
  const CaseSpec spec = read(phi3_case(",\n  \"original_max_position_embeddings\": 8,\n"
                                       "  \"rope_scaling\": {\"type\": \"longrope\", " +
                                       tables + "}"));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_EQ(spec.model.rope_type, "longrope");
  EXPECT_EQ(spec.model.rope_original_max_position_embeddings, 8);
  // Without it anywhere, longrope lacks its switch point.
  const CaseSpec missing =
      read(phi3_case(",\n  \"rope_scaling\": {\"type\": \"longrope\", " + tables + "}"));
  EXPECT_TRUE(contains(problems_of(missing), "original_max_position_embeddings"))
      << problems_of(missing);
  // With a rope type that does not read it, the top-level key changes nothing.
  const CaseSpec plain = read(phi3_case(",\n  \"original_max_position_embeddings\": 8"));
  EXPECT_TRUE(plain.problems.empty()) << problems_of(plain);
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

std::string gemma3_case(const std::string& extra_keys) {
  return "# T\n\n## C\n\n### Config\n\n```json\n{\n"
         "  \"model_type\": \"gemma3_text\",\n"
         "  \"vocab_size\": 48,\n"
         "  \"hidden_size\": 32,\n"
         "  \"intermediate_size\": 64,\n"
         "  \"num_hidden_layers\": 7,\n"
         "  \"num_attention_heads\": 4,\n"
         "  \"head_dim\": 8" +
         extra_keys +
         "\n}\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[2, 31, 17]], \"decode\": 1}\n```\n";
}

TEST(PublishedConfig, GemmaThreeSlidesFiveOfSixLayersUnlessToldOtherwise) {
  const CaseSpec spec = read(gemma3_case(""));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  std::string kinds;
  for (const std::string& t : spec.model.layer_types) kinds += t == "full_attention" ? 'F' : 's';
  EXPECT_EQ(kinds, "sssssFs");
  EXPECT_EQ(spec.model.rope_theta, 1e6);
  EXPECT_EQ(spec.model.rope_local_base_freq, 10000);
  const CaseSpec three = read(gemma3_case(",\n  \"sliding_window_pattern\": 3"));
  kinds.clear();
  for (const std::string& t : three.model.layer_types) kinds += t == "full_attention" ? 'F' : 's';
  EXPECT_EQ(kinds, "ssFssFs");
}

// A Gemma 3n case with gemma-3n-E2B's keys (sizes shrunk), `overrides` (a JSON object) merged
// over them.
std::string gemma3n_case(const std::string& overrides, int layers = 12) {
  nlohmann::json config = {
      {"model_type", "gemma3n_text"},  {"vocab_size", 48},       {"vocab_size_per_layer_input", 40},
      {"hidden_size", 16},             {"hidden_size_per_layer_input", 4},
      {"intermediate_size", 32},       {"num_hidden_layers", layers},
      {"num_attention_heads", 2},      {"num_key_value_heads", 1}, {"head_dim", 8},
      {"sliding_window", 4},           {"num_kv_shared_layers", 0}, {"laurel_rank", 2},
      {"altup_coef_clip", 120.0},      {"altup_lr_multiplier", 1.0}, {"rope_theta", 1000000.0},
      {"rope_local_base_freq", 10000.0}};
  config.merge_patch(nlohmann::json::parse(overrides.empty() ? "{}" : overrides));
  return "# T\n\n## C\n\n### Config\n\n```json\n" + config.dump(2) +
         "\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[2, 31, 17]], \"decode\": 1}\n```\n";
}

// Gemma3nTextConfig's defaults: every fifth layer full, the first 10 layers 0.95 sparse when
// there are more than 10, 4 AltUp streams with the first active.
TEST(PublishedConfig, GemmaThreeNDefaultsAsTransformersFillsThem) {
  const CaseSpec spec = read(gemma3n_case(""));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  std::string kinds;
  for (const std::string& t : spec.model.layer_types) kinds += t == "full_attention" ? 'F' : 's';
  EXPECT_EQ(kinds, "ssssFssssFss");
  ASSERT_EQ(spec.model.activation_sparsity_pattern.size(), 12u);
  EXPECT_EQ(spec.model.activation_sparsity_pattern[9], 0.95);
  EXPECT_EQ(spec.model.activation_sparsity_pattern[10], 0.0);
  EXPECT_EQ(spec.model.altup_num_inputs, 4);
  EXPECT_EQ(spec.model.altup_active_idx, 0);
  EXPECT_EQ(spec.model.hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(spec.model.final_logit_softcapping, 30.0);
  const CaseSpec few = read(gemma3n_case("", 5));
  ASSERT_TRUE(few.problems.empty()) << problems_of(few);
  for (double p : few.model.activation_sparsity_pattern) EXPECT_EQ(p, 0.0);
}

TEST(PublishedConfig, GemmaThreeNReadsEachLayersMlpWidth) {
  const CaseSpec spec = read(gemma3n_case(R"({"intermediate_size": [32, 24, 32, 40, 16]})", 5));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_EQ(spec.model.intermediate_size, 40);
  EXPECT_EQ(layer_intermediate_size(spec.model, 1), 24);
  EXPECT_EQ(layer_intermediate_size(spec.model, 4), 16);
}

// A DeepSeek-V4 case with DeepSeek-V4-Flash's published key set (its config.json, written by
// transformers 4.57.1, without quantization_config; sizes shrunk): the legacy keys
// compress_ratios (one more entry than layers: the multi-token-prediction layer's),
// qk_rope_head_dim, num_hash_layers and a flat yarn rope_scaling. `overrides` (a JSON object)
// merged over them.
std::string deepseek_v4_case(const std::string& overrides) {
  nlohmann::json config = {
      {"architectures", {"DeepseekV4ForCausalLM"}}, {"model_type", "deepseek_v4"},
      {"attention_bias", false}, {"attention_dropout", 0.0}, {"bos_token_id", 0},
      {"eos_token_id", 1}, {"expert_dtype", "fp4"}, {"hc_eps", 1e-06}, {"hc_mult", 4},
      {"hc_sinkhorn_iters", 20}, {"head_dim", 16}, {"hidden_act", "silu"}, {"hidden_size", 32},
      {"index_head_dim", 8}, {"index_n_heads", 4}, {"index_topk", 2},
      {"initializer_range", 0.02}, {"max_position_embeddings", 1048576},
      {"moe_intermediate_size", 24}, {"n_routed_experts", 4}, {"n_shared_experts", 1},
      {"norm_topk_prob", true}, {"num_attention_heads", 4}, {"num_experts_per_tok", 2},
      {"num_hidden_layers", 5}, {"num_hash_layers", 3}, {"num_key_value_heads", 1},
      {"num_nextn_predict_layers", 1}, {"o_groups", 2}, {"o_lora_rank", 8}, {"q_lora_rank", 16},
      {"qk_rope_head_dim", 4}, {"rms_norm_eps", 1e-06},
      {"rope_scaling",
       {{"beta_fast", 32}, {"beta_slow", 1}, {"factor", 16},
        {"original_max_position_embeddings", 65536}, {"type", "yarn"}}},
      {"rope_theta", 10000}, {"routed_scaling_factor", 1.5}, {"scoring_func", "sqrtsoftplus"},
      {"sliding_window", 4}, {"swiglu_limit", 10.0}, {"tie_word_embeddings", false},
      {"topk_method", "noaux_tc"}, {"torch_dtype", "bfloat16"},
      {"transformers_version", "4.57.1"}, {"use_cache", true}, {"vocab_size", 48},
      {"compress_rope_theta", 160000}, {"compress_ratios", {0, 0, 4, 128, 4, 0}}};
  config.merge_patch(nlohmann::json::parse(overrides.empty() ? "{}" : overrides));
  return "# T\n\n## C\n\n### Config\n\n```json\n" + config.dump(2) +
         "\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[2, 31, 17, 5, 9]], \"decode\": 1}\n```\n";
}

// DeepseekV4Config.__post_init__'s resolution of the legacy keys: layer types from the rates
// (cut to the layers), the first three layers hash-routed, the rotary width from
// qk_rope_head_dim, the flat yarn table as the compressed layers' (its base compress_rope_theta,
// attention factor 1), plain RoPE of rope_theta on the sliding layers.
TEST(PublishedConfig, DeepseekV4ReadsItsPublishedLegacyKeys) {
  const CaseSpec spec = read(deepseek_v4_case(""));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  const ModelConfig& c = spec.model;
  EXPECT_EQ(c.layer_types, (std::vector<std::string>{"sliding_attention", "sliding_attention",
                                                     "compressed_sparse_attention",
                                                     "heavily_compressed_attention",
                                                     "compressed_sparse_attention"}));
  EXPECT_EQ(c.mlp_layer_types,
            (std::vector<std::string>{"hash_moe", "hash_moe", "hash_moe", "moe", "moe"}));
  EXPECT_EQ(rotary_dim(c), 4);
  EXPECT_EQ(c.rope_type, "yarn");
  EXPECT_EQ(c.rope_theta, 160000);
  EXPECT_EQ(c.rope_local_base_freq, 10000);
  EXPECT_EQ(c.rope_attention_factor, 1.0);
  EXPECT_EQ(c.num_key_value_heads, 1);
  EXPECT_EQ(compress_rate(c, 2), 4);
  EXPECT_EQ(compress_rate(c, 3), 128);
  EXPECT_EQ(compress_rate(c, 0), 0);
  // transformers 5's own form of the same: layer_types, mlp_layer_types, compress_rates and
  // rope_parameters by kind.
  const CaseSpec nested = read(deepseek_v4_case(R"({
      "compress_ratios": null, "num_hash_layers": null, "qk_rope_head_dim": null,
      "rope_scaling": null,
      "layer_types": ["sliding_attention", "heavily_compressed_attention",
                      "compressed_sparse_attention", "sliding_attention", "sliding_attention"],
      "mlp_layer_types": ["hash_moe", "moe", "moe", "moe", "moe"],
      "compress_rates": {"compressed_sparse_attention": 2, "heavily_compressed_attention": 8},
      "rope_parameters": {"main": {"rope_type": "default", "rope_theta": 5000.0,
                                   "partial_rotary_factor": 0.5},
                          "compress": {"rope_type": "default", "rope_theta": 9000.0,
                                       "partial_rotary_factor": 0.5}}})"));
  ASSERT_TRUE(nested.problems.empty()) << problems_of(nested);
  EXPECT_EQ(compress_rate(nested.model, 1), 8);
  EXPECT_EQ(compress_rate(nested.model, 2), 2);
  EXPECT_EQ(nested.model.mlp_layer_types[1], "moe");
  EXPECT_EQ(rotary_dim(nested.model), 8);
  EXPECT_EQ(nested.model.rope_theta, 9000.0);
  EXPECT_EQ(nested.model.rope_local_base_freq, 5000.0);
}

TEST(PublishedConfig, DeepseekV4ErrorsNameTheirKey) {
  const std::pair<const char*, const char*> bad[] = {
      {R"({"compress_ratios": [0, 0, 4, 64, 4, 0]})",
       "compress_ratios must be a list of 0, 4 and 128"},
      {R"({"scoring_func": "softmax"})", "scoring_func 'softmax' is not supported"},
      {R"({"o_groups": 3})", "o_groups (3) does not divide num_attention_heads * head_dim (64)"},
      {R"({"hc_mult": 0})", "hc_mult must be positive, got 0"},
      {R"({"index_head_dim": 2})", "index_head_dim (2) must be at least the rotary part"},
      {R"({"compress_ratios": null, "layer_types": ["sliding_attention", "full_attention",
            "sliding_attention", "sliding_attention", "sliding_attention"]})",
       "layer_types entry 'full_attention' is not supported"},
      {R"({"mlp_layer_types": ["hash_moe", "dense", "moe", "moe", "moe"]})",
       "mlp_layer_types entry 'dense' is neither hash_moe nor moe"},
      {R"({"rope_scaling": null, "rope_parameters": {"main": {"rope_type": "default",
            "rope_theta": 10000.0}, "compress": {"rope_type": "default", "rope_theta": 9000.0,
            "partial_rotary_factor": 0.5}}})",
       "rope_parameters.main rotates 1.0 of each head and rope_parameters.compress 0.5"},
      {R"({"mlp_bias": true})", "mlp_bias"},
      {R"({"rope_scaling": null, "rope_parameters": {"compress": {"rope_type": "default",
            "rope_theta": 9000.0}}})",
       "rope_parameters gives compress but not main as an object"},
      {R"({"rope_scaling": null, "rope_parameters": {"main": {"rope_type": "default",
            "rope_thta": 500.0}, "compress": {"rope_type": "default", "rope_theta": 9000.0}}})",
       "rope_parameters.main key 'rope_thta' is not read for plain RoPE (did you mean "
       "'rope_theta'?)"},
      {R"({"hc_sinkhorn_iters": -1})", "hc_sinkhorn_iters must not be negative, got -1"},
  };
  for (const auto& [keys, message] : bad) {
    const CaseSpec spec = read(deepseek_v4_case(keys));
    EXPECT_TRUE(contains(problems_of(spec), message)) << keys << "\n" << problems_of(spec);
  }
}

TEST(PublishedConfig, GemmaThreeNErrorsNameTheirKey) {
  const std::pair<const char*, const char*> bad[] = {
      {R"({"intermediate_size": [32, 24]})", "intermediate_size has 2 entries, num_hidden_layers is 5"},
      {R"({"intermediate_size": [32, "wide", 1, 1, 1]})",
       "intermediate_size must be an integer or a list of integers"},
      {R"({"activation_sparsity_pattern": [0.95, 0.0]})",
       "activation_sparsity_pattern has 2 entries, num_hidden_layers is 5"},
      {R"({"activation_sparsity_pattern": [1.0, 0, 0, 0, 0]})",
       "activation_sparsity_pattern entries must be in [0, 1), got 1"},
      {R"({"activation_sparsity_pattern": 0.95})",
       "activation_sparsity_pattern must be a list of numbers, one per layer, or null"},
      {R"({"altup_active_idx": 4})",
       "altup_active_idx (4) must be between 0 and altup_num_inputs - 1 (3)"},
      {R"({"altup_num_inputs": 0})", "altup_num_inputs must be positive, got 0"},
      {R"({"laurel_rank": 0})", "laurel_rank must be positive, got 0"},
      {R"({"num_kv_shared_layers": 5})",
       "num_kv_shared_layers must be between 0 and num_hidden_layers - 1 (4), got 5"},
      {R"({"num_kv_shared_layers": 2})",
       "layer 4 shares its keys and values but no earlier layer has its attention type "
       "(full_attention)"},
      {R"({"hidden_activation": "relu"})", "hidden_activation \"relu\" is not supported"},
      {R"({"num_attention_heads": 3, "num_key_value_heads": 1})",
       "hidden_size (16) is not a multiple of num_attention_heads (3), which Gemma3nTextConfig "
       "requires"},
      {R"({"vocab_size_per_layer_input": 20})",
       "Inputs, line 1: sequence 0, token 1: id 31 has no per-layer embedding "
       "(vocab_size_per_layer_input 20); Gemma3nForCausalLM cannot run it"},
  };
  for (const auto& [keys, message] : bad) {
    const CaseSpec spec = read(gemma3n_case(keys, 5));
    EXPECT_TRUE(contains(problems_of(spec), message)) << keys << "\n" << problems_of(spec);
  }
}

TEST(PublishedConfig, GemmaThreeRopeParametersByLayerType) {
  const CaseSpec spec = read(gemma3_case(
      ",\n  \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"linear\", \"factor\": 8.0, "
      "\"rope_theta\": 1000000.0}, \"sliding_attention\": {\"rope_type\": \"default\", "
      "\"rope_theta\": 20000.0}}"));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_EQ(spec.model.rope_type, "linear");
  EXPECT_EQ(spec.model.rope_factor, 8.0);
  EXPECT_EQ(spec.model.rope_local_base_freq, 20000);
  const CaseSpec scaled_local = read(gemma3_case(
      ",\n  \"rope_parameters\": {\"sliding_attention\": {\"rope_type\": \"linear\", "
      "\"factor\": 2.0, \"rope_theta\": 10000.0}}"));
  EXPECT_TRUE(contains(problems_of(scaled_local),
                       "rope_parameters.sliding_attention rope type \"linear\" is not supported "
                       "(pinmark implements \"default\" on Gemma 3's sliding layers)"))
      << problems_of(scaled_local);
  const CaseSpec unknown = read(gemma3_case(
      ",\n  \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"default\"}, "
      "\"chunked_attention\": {\"rope_type\": \"default\"}}"));
  EXPECT_TRUE(contains(problems_of(unknown), "rope_parameters.chunked_attention is not a layer "
                                             "type (Gemma 3 has full_attention and "
                                             "sliding_attention)"))
      << problems_of(unknown);
}

TEST(PublishedConfig, TheBaseModelClassAgreesWithItsModelTypeAnotherFamilysDoesNot) {
  const CaseSpec base = read(gemma3_case(",\n  \"architectures\": [\"Gemma3TextModel\"]"));
  EXPECT_TRUE(base.problems.empty()) << problems_of(base);
  const CaseSpec other = read(gemma3_case(",\n  \"architectures\": [\"Gemma2Model\"]"));
  EXPECT_TRUE(contains(problems_of(other), "architectures [\"Gemma2Model\"] does not agree with "
                                           "model_type \"gemma3_text\""))
      << problems_of(other);
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

TEST(PublishedConfig, AMultimodalConfigPointsAtItsTextConfig) {
  const CaseSpec spec = read(
      "# T\n\n## C\n\n### Config\n\n```json\n{\"model_type\": \"gemma3\", \"text_config\": "
      "{\"model_type\": \"gemma3_text\", \"hidden_size\": 32}}\n```\n\n### Inputs\n\n```json\n"
      "{\"prompts\": [[2, 31]], \"decode\": 1}\n```\n");
  EXPECT_TRUE(contains(problems_of(spec), "model_type \"gemma3\" is a multimodal config; pinmark "
                                          "computes its language model: paste its text_config "
                                          "(model_type \"gemma3_text\") as the Config block"))
      << problems_of(spec);
}

TEST(PublishedConfig, GemmaTwoSlidingWindowSizeIsListedAsIgnored) {
  const std::vector<std::string> keys = unread_config_keys(nlohmann::json::parse(
      R"({"model_type": "gemma2", "sliding_window": 4, "sliding_window_size": 4096})"));
  EXPECT_NE(std::find(keys.begin(), keys.end(), "sliding_window_size"), keys.end());
}

}  // namespace
}  // namespace pinmark

namespace pinmark {
namespace {

// One table of Hugging Face classes serves the config reader and `pinmark export`: every
// implemented family has its class.
TEST(PublishedConfig, EveryImplementedFamilyHasItsCausalLmClass) {
  for (const std::string& type : known_model_types())
    EXPECT_FALSE(causal_lm_class(type).empty()) << type;
  EXPECT_EQ(causal_lm_class("deepseek_v3"), "DeepseekV3ForCausalLM");
  EXPECT_EQ(causal_lm_class("falcon"), "");
}

}  // namespace
}  // namespace pinmark
