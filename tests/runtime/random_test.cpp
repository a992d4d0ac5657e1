#include "runtime/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

namespace pinmark {
namespace {

TEST(HashName, MatchesPublishedFnv1aVectors) {
  EXPECT_EQ(hash_name(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(hash_name("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(hash_name("foobar"), 0x85944171f73967e8ULL);
}

TEST(RandomBits, IsAPureFunctionOfItsKey) {
  // Same key, any order of evaluation: same bits.
  std::vector<uint64_t> forward, backward(100);
  for (uint64_t i = 0; i < 100; ++i) forward.push_back(random_bits(7, "w", i));
  for (uint64_t i = 100; i-- > 0;) backward[i] = random_bits(7, "w", i);
  EXPECT_EQ(forward, backward);
  EXPECT_EQ(random_uniform(3, "model.norm.weight", 11), random_uniform(3, "model.norm.weight", 11));
}

TEST(RandomBits, DiffersWhenAnyKeyComponentDiffers) {
  const uint64_t base = random_bits(1, "x", 0);
  EXPECT_NE(base, random_bits(2, "x", 0));
  EXPECT_NE(base, random_bits(1, "y", 0));
  EXPECT_NE(base, random_bits(1, "x", 1));
  EXPECT_NE(base, random_bits(0, "x", 0));
  EXPECT_NE(random_bits(0, "", 0), 0u);

  // No collisions among a few thousand neighbouring keys.
  std::set<uint64_t> seen;
  for (uint64_t seed = 0; seed < 4; ++seed)
    for (const char* name : {"x", "w", "q", "k"})
      for (uint64_t i = 0; i < 256; ++i) seen.insert(random_bits(seed, name, i));
  EXPECT_EQ(seen.size(), 4u * 4u * 256u);
}

TEST(RandomBits, StreamsOfDifferentNamesAreUncorrelated) {
  const int n = 20000;
  double sum_xy = 0;
  for (int i = 0; i < n; ++i) sum_xy += random_uniform(5, "a", i) * random_uniform(5, "b", i);
  // Correlation of independent uniforms on [-1, 1): mean 0, std (1/3)/sqrt(n) ~ 0.0024.
  EXPECT_LT(std::fabs(sum_xy / n / (1.0 / 3.0)), 0.03);
}

TEST(RandomUniform, HasRangeResolutionAndMoments) {
  const int n = 100000;
  double sum = 0, sum_sq = 0, lo = 1, hi = -1;
  for (int i = 0; i < n; ++i) {
    const double u = random_uniform(42, "stats", i);
    ASSERT_GE(u, -1.0);
    ASSERT_LT(u, 1.0);
    // 53 random bits on a 2^-52 grid: u * 2^52 is an integer.
    const double scaled = u * 0x1p52;
    ASSERT_EQ(scaled, std::floor(scaled));
    sum += u;
    sum_sq += u * u;
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  EXPECT_LT(std::fabs(sum / n), 0.01);       // std of the mean ~ 0.0018
  EXPECT_NEAR(sum_sq / n, 1.0 / 3.0, 0.01);  // variance of uniform(-1, 1)
  EXPECT_LT(lo, -0.999);
  EXPECT_GT(hi, 0.999);
}

TEST(RandomUniform, HalvesAreEquallyLikely) {
  int negative = 0;
  for (int i = 0; i < 10000; ++i) negative += random_uniform(9, "sign", i) < 0;
  EXPECT_NEAR(negative, 5000, 250);
}

TEST(RandomTensor, ScalesAndOffsetsTheUniformStream) {
  const std::vector<double> t = random_tensor(4, "w", 50, 0.25, 3.0);
  ASSERT_EQ(t.size(), 50u);
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(t[i], 0.25 * random_uniform(4, "w", i) + 3.0);
    EXPECT_GE(t[i], 2.75);
    EXPECT_LT(t[i], 3.25);
  }
  EXPECT_EQ(random_tensor(4, "w", 10), random_tensor(4, "w", 10));
  EXPECT_NE(random_tensor(4, "w", 10), random_tensor(5, "w", 10));
  // A shorter tensor is a prefix of a longer one: element i depends only on i.
  const std::vector<double> longer = random_tensor(4, "w", 20);
  EXPECT_EQ(random_tensor(4, "w", 10), std::vector<double>(longer.begin(), longer.begin() + 10));
}

}  // namespace
}  // namespace pinmark
