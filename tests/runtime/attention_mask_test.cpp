// The two index rules of attention that a numerical tolerance would not catch by itself:
// which KV head a query head reads (GQA), and which keys a query may see (causal mask).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "runtime/cpu/cpu_backend.h"

namespace pinmark {
namespace {

// heads 4 over kv_heads 2: query heads 0, 1 read KV head 0; heads 2, 3 read KV head 1.
TEST(Gqa, QueryHeadReadsItsGroupsKvHead) {
  auto backend = make_cpu_backend<double>();
  const int heads = 4, kv_heads = 2, hd = 2, kv_len = 1;
  // Every query is (1, 0); KV head g's key is (10 * (g + 1), 0) and its value (g + 1, -(g + 1)).
  std::vector<double> q(heads * hd, 0.0);
  for (int h = 0; h < heads; ++h) q[h * hd] = 1.0;
  const std::vector<double> k = {10, 0, 20, 0};
  const std::vector<double> v = {1, -1, 2, -2};
  const int positions[] = {0};

  std::vector<double> scores(heads * kv_len);
  backend->attention_scores(q.data(), k.data(), positions, 1, kv_len, heads, kv_heads, hd, 1.0,
                            scores.data());
  EXPECT_EQ(scores, (std::vector<double>{10, 10, 20, 20}));
  EXPECT_EQ(scores[3], 20) << "query head 3 must use kv head 1";

  const std::vector<double> probs(heads * kv_len, 1.0);
  std::vector<double> out(heads * hd);
  backend->attention_values(probs.data(), v.data(), 1, kv_len, heads, kv_heads, hd, out.data());
  EXPECT_EQ(out, (std::vector<double>{1, -1, 1, -1, 2, -2, 2, -2}));
}

TEST(Gqa, MultiQueryAttentionSharesOneKvHead) {
  auto backend = make_cpu_backend<float>();
  const int heads = 3, hd = 2;
  const std::vector<float> q = {1, 0, 0, 1, 1, 1};
  const std::vector<float> k = {2, 5};
  const int positions[] = {0};
  std::vector<float> scores(heads);
  backend->attention_scores(q.data(), k.data(), positions, 1, 1, heads, 1, hd, 1.0, scores.data());
  EXPECT_EQ(scores, (std::vector<float>{2, 5, 7}));
}

TEST(CausalMask, KeysAfterTheQueryPositionAreMinusInfinity) {
  auto backend = make_cpu_backend<double>();
  const int n = 3, kv_len = 6, heads = 2, hd = 4;
  const std::vector<int> positions = {2, 3, 5};  // queries appended after two cached keys
  std::vector<double> q(n * heads * hd), k(kv_len * heads * hd);
  for (size_t i = 0; i < q.size(); ++i) q[i] = 0.1 * (i % 7) + 0.05;
  for (size_t i = 0; i < k.size(); ++i) k[i] = 0.2 * (i % 5) - 0.3;
  std::vector<double> s(heads * n * kv_len);
  backend->attention_scores(q.data(), k.data(), positions.data(), n, kv_len, heads, heads, hd, 0.5,
                            s.data());
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < kv_len; ++j) {
        const double value = s[(h * n + i) * kv_len + j];
        if (j > positions[i]) {
          EXPECT_EQ(value, -std::numeric_limits<double>::infinity()) << h << " " << i << " " << j;
        } else {
          EXPECT_TRUE(std::isfinite(value)) << h << " " << i << " " << j;
        }
      }

  backend->softmax(s.data(), heads * n, kv_len);
  for (int r = 0; r < heads * n; ++r) {
    double total = 0;
    for (int j = 0; j < kv_len; ++j) {
      const double p = s[r * kv_len + j];
      if (j > positions[r % n]) {
        EXPECT_EQ(p, 0.0);
      } else {
        EXPECT_GT(p, 0.0);
      }
      total += p;
    }
    EXPECT_NEAR(total, 1.0, 1e-15);
  }
}

TEST(CausalMask, FullyMaskedRowBecomesZerosNotNan) {
  auto backend = make_cpu_backend<float>();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> row = {-inf, -inf, -inf, 1.0f, -inf, 2.0f};
  backend->softmax(row.data(), 2, 3);
  EXPECT_EQ(row[0], 0.0f);
  EXPECT_EQ(row[1], 0.0f);
  EXPECT_EQ(row[2], 0.0f);
  EXPECT_EQ(row[4], 0.0f);
  EXPECT_NEAR(row[3] + row[5], 1.0f, 1e-6);
}

}  // namespace
}  // namespace pinmark
