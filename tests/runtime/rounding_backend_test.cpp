// The emulated low-precision backend stores each kernel's output in its type, except the
// attention scores, which a fused kernel keeps in fp32; and apart from that rounding it
// computes exactly what the fp32 backend computes.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/random.h"
#include "runtime/rounding_backend.h"

namespace pinmark {
namespace {

std::vector<float> values(const char* name, size_t n, double scale = 1.0) {
  std::vector<double> v = random_tensor(23, name, n, scale);
  return std::vector<float>(v.begin(), v.end());
}

bool all_representable(const std::vector<float>& v, DType d) {
  for (float x : v)
    if (round_to(d, x) != x) return false;
  return true;
}

class RoundingBackendTest : public testing::TestWithParam<DType> {};

TEST_P(RoundingBackendTest, OutputsAreStoredInTheTypeAndOtherwiseMatchFp32) {
  const DType d = GetParam();
  auto rounding = make_rounding_backend(make_cpu_backend<float>(), d);
  auto plain = make_cpu_backend<float>();
  const int n = 5, k = 19, m = 7;
  const std::vector<float> x = values("x", n * k), w = values("w", m * k, 0.3);

  std::vector<float> y(n * m), reference(n * m);
  rounding->matmul(x.data(), w.data(), n, k, m, y.data());
  plain->matmul(x.data(), w.data(), n, k, m, reference.data());
  EXPECT_TRUE(all_representable(y, d));
  EXPECT_FALSE(all_representable(reference, d));  // else the check above proves nothing
  for (size_t i = 0; i < y.size(); ++i) EXPECT_EQ(y[i], round_to(d, reference[i])) << i;

  std::vector<float> norm(n * k);
  rounding->rmsnorm(x.data(), w.data(), n, k, 1e-6, norm.data());
  EXPECT_TRUE(all_representable(norm, d));

  std::vector<float> sum = x;
  rounding->add(sum.data(), x.data(), n * k);
  rounding->swiglu(x.data(), x.data(), n * k, sum.data());
  EXPECT_TRUE(all_representable(sum, d));
  std::vector<float> rotated(x.begin(), x.begin() + n * (k - 1));
  const std::vector<int> positions = {3, 4, 5, 6, 7};
  rounding->rope(rotated.data(), positions.data(), n, 1, k - 1, 10000.0);
  EXPECT_TRUE(all_representable(rotated, d));
}

TEST_P(RoundingBackendTest, AttentionScoresStayInFp32ProbabilitiesAreRounded) {
  const DType d = GetParam();
  auto rounding = make_rounding_backend(make_cpu_backend<float>(), d);
  auto plain = make_cpu_backend<float>();
  const int n = 3, heads = 2, hd = 6, len = 3;
  const std::vector<float> q = values("q", n * heads * hd), k = values("k", len * heads * hd);
  const std::vector<int> positions = {0, 1, 2};
  std::vector<float> scores(heads * n * len), reference(heads * n * len);
  rounding->attention_scores(q.data(), k.data(), positions.data(), n, len, heads, heads, hd, 0.4,
                             scores.data());
  plain->attention_scores(q.data(), k.data(), positions.data(), n, len, heads, heads, hd, 0.4,
                          reference.data());
  EXPECT_EQ(scores, reference);
  rounding->softmax(scores.data(), heads * n, len);
  EXPECT_TRUE(all_representable(scores, d));
}

INSTANTIATE_TEST_SUITE_P(Storage, RoundingBackendTest, testing::Values(DType::bf16, DType::f16),
                         [](const testing::TestParamInfo<DType>& info) {
                           return dtype_name(info.param);
                         });

}  // namespace
}  // namespace pinmark
