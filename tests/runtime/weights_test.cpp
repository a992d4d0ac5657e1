#include "runtime/weights.h"

#include "runtime/weight_source.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <stdexcept>

namespace pinmark {
namespace {

ModelConfig config(bool tied) {
  ModelConfig c;
  c.vocab_size = 50;
  c.hidden_size = 24;
  c.intermediate_size = 60;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.tie_word_embeddings = tied;
  c.seed = 3;
  return c;
}

TEST(SyntheticWeights, HuggingFaceNamesAndShapes) {
  const Weights w = synthetic_weights(config(false));
  std::map<std::string, Shape> expected = {
      {"model.embed_tokens.weight", {50, 24}},
      {"model.norm.weight", {24}},
      {"lm_head.weight", {50, 24}},
  };
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    expected[p + "input_layernorm.weight"] = {24};
    expected[p + "self_attn.q_proj.weight"] = {24, 24};  // 4 heads x head_dim 6
    expected[p + "self_attn.k_proj.weight"] = {12, 24};  // 2 kv heads x 6
    expected[p + "self_attn.v_proj.weight"] = {12, 24};
    expected[p + "self_attn.o_proj.weight"] = {24, 24};
    expected[p + "post_attention_layernorm.weight"] = {24};
    expected[p + "mlp.gate_proj.weight"] = {60, 24};
    expected[p + "mlp.up_proj.weight"] = {60, 24};
    expected[p + "mlp.down_proj.weight"] = {24, 60};
  }
  ASSERT_EQ(w.size(), expected.size());
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(w.count(name)) << name;
    EXPECT_EQ(w.at(name).shape, shape) << name;
    EXPECT_EQ(w.at(name).data.size(), static_cast<size_t>(element_count(shape))) << name;
  }
}

TEST(SyntheticWeights, TiedEmbeddingsHaveNoLmHead) {
  const Weights w = synthetic_weights(config(true));
  EXPECT_FALSE(w.count("lm_head.weight"));
  EXPECT_TRUE(w.count("model.embed_tokens.weight"));
}

TEST(SyntheticWeights, ExplicitHeadDim) {
  ModelConfig c = config(false);
  c.head_dim = 10;
  const Weights w = synthetic_weights(c);
  EXPECT_EQ(w.at("model.layers.0.self_attn.q_proj.weight").shape, (Shape{40, 24}));
  EXPECT_EQ(w.at("model.layers.0.self_attn.v_proj.weight").shape, (Shape{20, 24}));
  EXPECT_EQ(w.at("model.layers.0.self_attn.o_proj.weight").shape, (Shape{24, 40}));
}

void expect_uniform(const std::vector<double>& v, double lo, double hi, const std::string& what) {
  double sum = 0, sum_sq = 0, min = v[0], max = v[0];
  for (double x : v) {
    sum += x;
    sum_sq += x * x;
    min = std::min(min, x);
    max = std::max(max, x);
  }
  const double n = static_cast<double>(v.size()), mid = (lo + hi) / 2, half = (hi - lo) / 2;
  EXPECT_GE(min, lo) << what;
  EXPECT_LT(max, hi) << what;
  EXPECT_LT(min, lo + 0.05 * half) << what << ": does not fill its range";
  EXPECT_GT(max, hi - 0.05 * half) << what << ": does not fill its range";
  const double mean = sum / n, std = std::sqrt(sum_sq / n - mean * mean);
  EXPECT_NEAR(mean, mid, 0.1 * half) << what;
  EXPECT_NEAR(std, half / std::sqrt(3.0), 0.1 * half / std::sqrt(3.0)) << what;
}

TEST(SyntheticWeights, Distributions) {
  const Weights w = synthetic_weights(config(false));
  // Linear weights: standard deviation 1/sqrt(fan_in).
  const double a24 = std::sqrt(3.0 / 24), a60 = std::sqrt(3.0 / 60);
  expect_uniform(w.at("model.layers.1.mlp.gate_proj.weight").data, -a24, a24, "gate_proj");
  expect_uniform(w.at("model.layers.0.mlp.down_proj.weight").data, -a60, a60, "down_proj");
  expect_uniform(w.at("lm_head.weight").data, -a24, a24, "lm_head");
  expect_uniform(w.at("model.embed_tokens.weight").data, -1.0, 1.0, "embed_tokens");
  std::vector<double> norms;
  for (const char* name :
       {"model.norm.weight", "model.layers.0.input_layernorm.weight",
        "model.layers.0.post_attention_layernorm.weight", "model.layers.1.input_layernorm.weight",
        "model.layers.1.post_attention_layernorm.weight"})
    for (double x : w.at(name).data) norms.push_back(x);
  for (double x : norms) {
    EXPECT_GE(x, 0.9);
    EXPECT_LT(x, 1.1);
  }
}

TEST(SyntheticWeights, KeyedBySeedAndName) {
  const Weights a = synthetic_weights(config(false));
  const Weights b = synthetic_weights(config(false));
  ModelConfig other = config(false);
  other.seed = 4;
  const Weights c = synthetic_weights(other);
  for (const auto& [name, t] : a) {
    EXPECT_EQ(t.data, b.at(name).data) << name;
    EXPECT_NE(t.data, c.at(name).data) << name;
  }
  // Same shape, different name: different values.
  EXPECT_NE(a.at("model.layers.0.mlp.gate_proj.weight").data,
            a.at("model.layers.0.mlp.up_proj.weight").data);
  EXPECT_NE(a.at("model.layers.0.mlp.gate_proj.weight").data,
            a.at("model.layers.1.mlp.gate_proj.weight").data);
}

std::string require_error(const Weights& w, const std::string& name, const Shape& shape) {
  try {
    require(WeightMap(w), name, shape);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Require, ReturnsTheTensorOrNamesTheProblem) {
  const Weights w = synthetic_weights(config(false));
  EXPECT_EQ(require(WeightMap(w), "model.norm.weight", {24}).data, w.at("model.norm.weight").data);
  EXPECT_EQ(require_error(w, "model.layers.2.mlp.up_proj.weight", {60, 24}),
            "missing tensor 'model.layers.2.mlp.up_proj.weight'");
  EXPECT_EQ(require_error(w, "model.layers.0.self_attn.k_proj.weight", {24, 24}),
            "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [12, 24], expected "
            "[24, 24]");
  EXPECT_EQ(require_error(w, "model.norm.weight", {24, 1}),
            "tensor 'model.norm.weight' has shape [24], expected [24, 1]");
  // A map filled by hand can hold fewer values than its shape: never read past them.
  Weights broken = w;
  broken.at("model.norm.weight").data.pop_back();
  EXPECT_EQ(require_error(broken, "model.norm.weight", {24}),
            "tensor 'model.norm.weight' has 23 values, its shape [24] needs 24");
}

// Rounding on read gives what rounding the map gives, and values held in place pass through
// only where the rounding cannot change them.
TEST(RoundedWeights, RoundAsRoundedWeightsDoes) {
  const Weights w = synthetic_weights(config(false));
  const WeightMap map(w);
  for (const DType storage : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    const Weights expected = rounded_weights(w, storage);
    const RoundedWeights rounded(map, storage);
    for (const auto& [name, tensor] : expected) {
      const Tensor<double> got = rounded.read(name);
      ASSERT_EQ(got.data, tensor.data) << name << " " << dtype_name(storage);
    }
    EXPECT_EQ(rounded.in_place("model.norm.weight", DType::f32).data, nullptr);
  }
}

TEST(ShapeString, Formats) {
  EXPECT_EQ(shape_string({2, 4, 64}), "[2, 4, 64]");
  EXPECT_EQ(shape_string({7}), "[7]");
  EXPECT_EQ(shape_string({}), "[]");
}

}  // namespace
}  // namespace pinmark
