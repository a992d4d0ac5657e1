// The perturbing backend moves every result by at most the rounding it stands for, relative to
// the result: u + u_fp32 * sqrt(reduction) where a target stores it, u_fp32 * (1 + sqrt(reduction))
// where a fused kernel keeps it; and it moves them by about that much, the same way on every
// run of one seed and another way under another seed.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/dtype.h"
#include "runtime/perturbing_backend.h"
#include "runtime/random.h"

namespace pinmark {
namespace {

const double kU32 = unit_roundoff(DType::f32);

// The largest |perturbed / exact - 1| over the values; the values are never zero.
double largest_relative_change(const std::vector<double>& exact, const std::vector<double>& got) {
  double worst = 0;
  for (size_t i = 0; i < exact.size(); ++i)
    worst = std::max(worst, std::fabs(got[i] / exact[i] - 1));
  return worst;
}

struct Matmul {
  int n = 6, k = 49, m = 40;
  std::vector<double> x = random_tensor(5, "x", size_t(n) * k), w = random_tensor(5, "w", size_t(m) * k);
  std::vector<double> run(Backend<double>& b) const {
    std::vector<double> y(size_t(n) * m);
    b.matmul(x.data(), w.data(), n, k, m, y.data());
    return y;
  }
};

TEST(PerturbingBackend, AStoredResultMovesByAtMostOneRoundingAndItsSumsError) {
  const Matmul mm;
  auto exact_backend = make_cpu_backend<double>();
  const std::vector<double> exact = mm.run(*exact_backend);
  const double u = unit_roundoff(DType::bf16);
  auto perturbing = make_perturbing_backend(make_cpu_backend<double>(), u, 1);
  const double change = largest_relative_change(exact, mm.run(*perturbing));
  const double e = u + kU32 * std::sqrt(49.0);
  EXPECT_LE(change, e);
  EXPECT_GT(change, 0.9 * e);  // 240 draws uniform in [-e, e): the largest is near e
}

TEST(PerturbingBackend, AKeptResultMovesByTheAccumulatorsRoundingWhateverTheStorage) {
  // Attention scores stay in the accumulator of a fused kernel: bf16 storage does not touch them.
  const int n = 3, heads = 2, dim = 16;
  const std::vector<double> q = random_tensor(6, "q", n * heads * dim),
                            k = random_tensor(6, "k", n * heads * dim);
  const std::vector<int> positions = {0, 1, 2};
  auto scores_of = [&](Backend<double>& b) {
    std::vector<double> s(size_t(heads) * n * n);
    b.attention_scores(q.data(), k.data(), positions.data(), n, n, heads, heads, dim, 0.25, s.data());
    std::vector<double> unmasked;  // masked scores are -infinity: no relative change to take
    for (double v : s)
      if (std::isfinite(v)) unmasked.push_back(v);
    return unmasked;
  };
  auto exact_backend = make_cpu_backend<double>();
  auto perturbing = make_perturbing_backend(make_cpu_backend<double>(), unit_roundoff(DType::bf16), 1);
  const double change = largest_relative_change(scores_of(*exact_backend), scores_of(*perturbing));
  EXPECT_LE(change, kU32 * (1 + std::sqrt(16.0)));
  EXPECT_GT(change, 0);
}

TEST(PerturbingBackend, TheSameSeedMovesTheSameWayAndAnotherSeedAnotherWay) {
  const Matmul mm;
  const double u = unit_roundoff(DType::f16);
  auto a = make_perturbing_backend(make_cpu_backend<double>(), u, 1);
  auto again = make_perturbing_backend(make_cpu_backend<double>(), u, 1);
  auto other = make_perturbing_backend(make_cpu_backend<double>(), u, 2);
  const std::vector<double> first = mm.run(*a);
  EXPECT_EQ(first, mm.run(*again));
  EXPECT_NE(first, mm.run(*other));
  // A second call draws new numbers: it is another op's rounding, not the first one's again.
  EXPECT_NE(first, mm.run(*a));
}

}  // namespace
}  // namespace pinmark
