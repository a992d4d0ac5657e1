// yarn, dynamic (NTK) and longrope frequencies and attention factors against an fp64
// transcription of transformers' modeling_rope_utils written here from the formulas, and the
// model applying them as transformers' dynamic_rope_update does: from max(position) + 1 of the
// tokens in each forward pass, before and after original_max_position_embeddings.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "model_fixture.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/model.h"
#include "runtime/rope.h"
#include "test_util.h"

namespace pinmark {
namespace {

using test::expect_close;
using Vec = std::vector<double>;

const double kPi = std::numbers::pi;

// theta^(-2j/d), j < d/2.
Vec plain(double theta, int d) {
  Vec v(d / 2);
  for (int j = 0; j < d / 2; ++j) v[j] = std::pow(theta, -2.0 * j / d);
  return v;
}

// The yarn paper's blend: a pair keeps theta^(-2j/d) when it turns more than beta_fast times over
// the original context L, is divided by s when it turns fewer than beta_slow times, and in
// between is mixed by a ramp that rises linearly over the pair index from the pair where
// beta_fast turns fit in L (rounded down if truncate) to the one where beta_slow turns do
// (rounded up).
Vec yarn_expected(double theta, int d, double s, double L, double beta_fast, double beta_slow,
                  bool truncate) {
  // Pair index r such that L / (2 pi theta^(2r/d)) = turns.
  auto pair_for = [&](double turns) {
    return d / 2.0 * std::log(L / (2 * kPi * turns)) / std::log(theta);
  };
  double lo = pair_for(beta_fast), hi = pair_for(beta_slow);
  if (truncate) {
    lo = std::floor(lo);
    hi = std::ceil(hi);
  }
  if (lo < 0) lo = 0;
  if (hi > d - 1) hi = d - 1;
  if (hi == lo) hi += 0.001;
  Vec v = plain(theta, d);
  for (int j = 0; j < d / 2; ++j) {
    double ramp = (j - lo) / (hi - lo);
    ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;  // 0: keep, 1: divide by s
    v[j] = v[j] / s * ramp + v[j] * (1 - ramp);
  }
  return v;
}

ModelConfig head(int head_dim, double theta) {
  ModelConfig c = test::small_llama();
  c.head_dim = head_dim;
  c.rope_theta = theta;
  c.max_position_embeddings = 64;
  return c;
}

ModelConfig yarn(double factor, int original) {
  ModelConfig c = head(16, 10000.0);
  c.rope_type = "yarn";
  c.rope_factor = factor;
  c.rope_original_max_position_embeddings = original;
  return c;
}

TEST(RopeYarn, FrequenciesBlendAcrossTheRampAndTheAttentionFactorIsTheLogRule) {
  for (bool truncate : {true, false})
    for (int original : {8, 64, 4096}) {
      ModelConfig c = yarn(4.0, original);
      c.rope_truncate = truncate;
      const RopeFrequencies f = rope_frequencies(c, 1000);
      const std::string what = "original " + std::to_string(original) +
                               (truncate ? " truncated" : " not truncated");
      expect_close(f.inv_freq, yarn_expected(10000.0, 16, 4.0, original, 32, 1, truncate), 1e-14,
                   what);
      EXPECT_NEAR(f.attention_scaling, 1 + 0.1 * std::log(4.0), 1e-15) << what;
      // Constant in the sequence length: the same before and after the original context.
      EXPECT_EQ(rope_frequencies(c, 1).inv_freq, f.inv_freq) << what;
    }
}

TEST(RopeYarn, TheRampReallyBlends) {
  // With original 4096 and theta 10000 the ramp runs inside the 8 pairs, so some pair is
  // neither kept nor divided: the test above compares against a blend, not two constants.
  const Vec v = rope_frequencies(yarn(4.0, 4096), 0).inv_freq;
  const Vec p = plain(10000.0, 16);
  int blended = 0;
  for (size_t j = 0; j < v.size(); ++j)
    if (std::abs(v[j] - p[j]) > 1e-12 && std::abs(v[j] - p[j] / 4) > 1e-12) ++blended;
  EXPECT_GT(blended, 0);
  EXPECT_DOUBLE_EQ(v[0], p[0]);        // fastest pair kept
  EXPECT_DOUBLE_EQ(v[7], p[7] / 4.0);  // slowest pair interpolated
}

TEST(RopeYarn, BetasMscaleAttentionFactorAndDerivedFactor) {
  ModelConfig c = yarn(40.0, 4096);
  c.rope_beta_fast = 16;
  c.rope_beta_slow = 2;
  expect_close(rope_frequencies(c, 0).inv_freq,
               yarn_expected(10000.0, 16, 40.0, 4096, 16, 2, true), 1e-14, "betas");

  // DeepSeek's mscale / mscale_all_dim: (1 + 0.1 m ln s) / (1 + 0.1 m_all ln s).
  c.rope_mscale = 0.707;
  c.rope_mscale_all_dim = 1.0;
  EXPECT_NEAR(rope_frequencies(c, 0).attention_scaling,
              (1 + 0.1 * 0.707 * std::log(40.0)) / (1 + 0.1 * std::log(40.0)), 1e-15);
  // Only one of them: the plain rule.
  c.rope_mscale_all_dim = 0;
  EXPECT_NEAR(rope_frequencies(c, 0).attention_scaling, 1 + 0.1 * std::log(40.0), 1e-15);
  // attention_factor given wins over everything.
  c.rope_attention_factor = 0.5;
  EXPECT_EQ(rope_frequencies(c, 0).attention_scaling, 0.5);

  // factor absent: max_position_embeddings / original_max_position_embeddings.
  ModelConfig d = yarn(1.0, 8);
  d.rope_has_factor = false;
  d.max_position_embeddings = 32;
  const RopeFrequencies f = rope_frequencies(d, 0);
  expect_close(f.inv_freq, yarn_expected(10000.0, 16, 4.0, 8, 32, 1, true), 1e-14, "derived");
  EXPECT_NEAR(f.attention_scaling, 1 + 0.1 * std::log(4.0), 1e-15);

  // factor <= 1: no attention factor.
  EXPECT_EQ(rope_frequencies(yarn(1.0, 8), 0).attention_scaling, 1.0);
}

ModelConfig dynamic(double factor, int max_pos) {
  ModelConfig c = head(16, 10000.0);
  c.rope_type = "dynamic";
  c.rope_factor = factor;
  c.max_position_embeddings = max_pos;
  return c;
}

TEST(RopeDynamic, BaseGrowsWithTheSequenceLengthPastMaxPositionEmbeddings) {
  const ModelConfig c = dynamic(2.0, 8);
  for (long long len : {0LL, 1LL, 7LL, 8LL})
    expect_close(rope_frequencies(c, len).inv_freq, plain(10000.0, 16), 1e-15,
                 "len " + std::to_string(len));
  for (long long len : {9LL, 20LL, 21LL, 1000LL}) {
    // NTK: base' = base (s len / L - (s - 1))^(d / (d - 2)).
    const double grown = 10000.0 * std::pow(2.0 * len / 8 - 1, 16.0 / 14.0);
    const RopeFrequencies f = rope_frequencies(c, len);
    expect_close(f.inv_freq, plain(grown, 16), 1e-14, "len " + std::to_string(len));
    EXPECT_EQ(f.attention_scaling, 1.0);
  }
  EXPECT_NE(rope_frequencies(c, 20).inv_freq, rope_frequencies(c, 21).inv_freq);
}

ModelConfig longrope(const Vec& short_factor, const Vec& long_factor, int original) {
  ModelConfig c = head(8, 10000.0);
  c.rope_type = "longrope";
  c.rope_has_factor = false;
  c.max_position_embeddings = 32;
  c.rope_short_factor = short_factor;
  c.rope_long_factor = long_factor;
  c.rope_original_max_position_embeddings = original;
  return c;
}

TEST(RopeLongrope, ShortFactorsUpToTheOriginalContextLongFactorsPastIt) {
  const Vec s = {1.0, 1.5, 2.0, 4.0}, l = {1.0, 3.0, 7.0, 16.0};
  const ModelConfig c = longrope(s, l, 8);
  const Vec p = plain(10000.0, 8);
  for (long long len : {0LL, 1LL, 8LL, 9LL, 21LL}) {
    const Vec& ext = len > 8 ? l : s;
    Vec expected(4);
    for (int j = 0; j < 4; ++j) expected[j] = p[j] / ext[j];
    const RopeFrequencies f = rope_frequencies(c, len);
    expect_close(f.inv_freq, expected, 1e-15, "len " + std::to_string(len));
    // Phi-3's rule, with factor = 32 / 8: sqrt(1 + ln 4 / ln 8), the same in both bands.
    EXPECT_NEAR(f.attention_scaling, std::sqrt(1 + std::log(4.0) / std::log(8.0)), 1e-15);
  }
  ModelConfig given = c;
  given.rope_has_factor = true;
  given.rope_factor = 1.0;
  EXPECT_EQ(rope_frequencies(given, 21).attention_scaling, 1.0);
  given.rope_attention_factor = 1.25;
  EXPECT_EQ(rope_frequencies(given, 21).attention_scaling, 1.25);
}

TEST(RopeKernel, AttentionScalingMultipliesCosAndSin) {
  auto backend = make_cpu_backend<double>();
  const int n = 3, heads = 2, hd = 4;
  const std::vector<int> positions = {0, 9, 20};
  const Vec inv = {1.0, 0.01};
  Vec x(n * heads * hd);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(1.0 + i);
  Vec y = x;
  backend->rope_freqs(y.data(), positions.data(), n, heads, hd, inv.data(), 1.3);
  Vec expected(x.size());
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < heads; ++h)
      for (int j = 0; j < 2; ++j) {
        const double* v = &x[(i * heads + h) * hd];
        const double c = std::cos(positions[i] * inv[j]) * 1.3;
        const double s = std::sin(positions[i] * inv[j]) * 1.3;
        expected[(i * heads + h) * hd + j] = v[j] * c - v[j + 2] * s;
        expected[(i * heads + h) * hd + j + 2] = v[j + 2] * c + v[j] * s;
      }
  expect_close(y, expected, 1e-15);
}

template <class T = double>
Vec logits(const ModelConfig& c, const Weights& w, const std::vector<int>& tokens,
           int chunk = 0) {
  auto backend = make_cpu_backend<T>();
  Model<T> model(c, w, *backend);
  KVCache<T> cache(c, static_cast<int>(tokens.size()));
  if (chunk == 0) return to_double(model.forward(tokens, cache).data);
  Vec out;
  for (size_t b = 0; b < tokens.size(); b += chunk) {
    const size_t e = std::min(tokens.size(), b + chunk);
    const std::vector<int> piece(tokens.begin() + b, tokens.begin() + e);
    const Vec part = to_double(model.forward(piece, cache).data);
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

std::vector<int> prompt(int n) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) t[i] = (7 * i + 3) % 32;
  return t;
}

ModelConfig model_config(ModelConfig c) {
  const ModelConfig base = test::small_llama();
  c.hidden_size = base.hidden_size;
  c.num_attention_heads = base.num_attention_heads;
  c.num_key_value_heads = base.num_key_value_heads;
  c.head_dim = 0;  // 6
  return c;
}

TEST(RopeModel, DynamicRunsEachForwardPassWithTheBaseOfItsLastPosition) {
  const ModelConfig c = model_config(dynamic(2.0, 8));
  const Weights w = synthetic_weights(c);
  ModelConfig plain_rope = c;
  plain_rope.rope_type = "default";
  // Up to max_position_embeddings: plain RoPE.
  expect_close(logits(c, w, prompt(8)), logits(plain_rope, w, prompt(8)), 1e-13, "8 tokens");
  // A 20-token prefill: every position with the base grown for length 20.
  ModelConfig grown = plain_rope;
  grown.rope_theta = 10000.0 * std::pow(2.0 * 20 / 8 - 1, 6.0 / 4.0);
  expect_close(logits(c, w, prompt(20)), logits(grown, w, prompt(20)), 1e-13, "20 tokens");
  // Token by token, each position's query and key take the base of its own length, and the
  // cached keys keep theirs: not the same function as one prefill past the first 8 positions.
  const Vec stepwise = logits(c, w, prompt(20), 1), whole = logits(c, w, prompt(20));
  const size_t row = 32;
  expect_close(Vec(stepwise.begin(), stepwise.begin() + 8 * row), logits(plain_rope, w, prompt(8)),
               1e-13, "first 8 rows stepwise");
  EXPECT_GT(test::relative_l2(Vec(stepwise.end() - row, stepwise.end()),
                              Vec(whole.end() - row, whole.end())),
            1e-6);
}

TEST(RopeModel, LongropeSwitchesTablesAtTheOriginalContextAndScalesCosSin) {
  // Uniform tables make longrope linear scaling by the table's value, an independent model.
  ModelConfig c = model_config(longrope({2.0, 2.0, 2.0}, {3.0, 3.0, 3.0}, 8));
  c.rope_has_factor = true;
  c.rope_factor = 4.0;
  c.rope_attention_factor = 1.0;
  const Weights w = synthetic_weights(c);
  ModelConfig linear = c;
  linear.rope_type = "linear";
  linear.rope_factor = 2.0;
  expect_close(logits(c, w, prompt(8)), logits(linear, w, prompt(8)), 1e-13, "short");
  linear.rope_factor = 3.0;
  expect_close(logits(c, w, prompt(20)), logits(linear, w, prompt(20)), 1e-13, "long");
  // Decoding token by token: the first 8 positions with the short table, the rest long.
  const Vec stepwise = logits(c, w, prompt(20), 1);
  linear.rope_factor = 2.0;
  const size_t row = 32;
  expect_close(Vec(stepwise.begin(), stepwise.begin() + 8 * row), logits(linear, w, prompt(8)),
               1e-13, "stepwise short rows");
  const Vec whole = logits(c, w, prompt(20));
  EXPECT_GT(test::relative_l2(Vec(stepwise.end() - row, stepwise.end()),
                              Vec(whole.end() - row, whole.end())),
            1e-6);

  // The attention factor a multiplies q and k, so the scores by a^2: the same as scaling them
  // by a^2 / sqrt(head_dim), i.e. query_pre_attn_scalar = head_dim / a^4.
  c.rope_attention_factor = 1.2;
  linear.rope_factor = 3.0;
  linear.query_pre_attn_scalar = 6.0 / std::pow(1.2, 4);
  expect_close(logits(c, w, prompt(20)), logits(linear, w, prompt(20)), 1e-12, "scaled");
}

}  // namespace
}  // namespace pinmark
