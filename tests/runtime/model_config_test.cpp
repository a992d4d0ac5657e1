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
