// How numbers are printed (format_value, format_bucket) and how a target is compared with the
// oracle (compare, within).
#include "driver/format.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <string>

#include "driver/numerics.h"

namespace pinmark {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

TEST(FormatValue, ZeroAndNegativeZero) {
  EXPECT_EQ(format_value(0.0), "0");
  EXPECT_EQ(format_value(-0.0), "0");
}

TEST(FormatValue, NonFinite) {
  EXPECT_EQ(format_value(kNan), "nan");
  EXPECT_EQ(format_value(-kNan), "nan");
  EXPECT_EQ(format_value(kInf), "inf");
  EXPECT_EQ(format_value(-kInf), "-inf");
}

TEST(FormatValue, SixSignificantDigits) {
  EXPECT_EQ(format_value(1.0), "1");
  EXPECT_EQ(format_value(2.5), "2.5");
  EXPECT_EQ(format_value(-0.1), "-0.1");
  EXPECT_EQ(format_value(1.0 / 3.0), "0.333333");
  EXPECT_EQ(format_value(-2.0 / 3.0), "-0.666667");
  EXPECT_EQ(format_value(123456.4), "123456");
  EXPECT_EQ(format_value(123456.6), "123457");
  EXPECT_EQ(format_value(1234567.0), "1.23457e+06");
  EXPECT_EQ(format_value(0.0001234567), "0.000123457");
  EXPECT_EQ(format_value(0.00001234567), "1.23457e-05");
  EXPECT_EQ(format_value(-1.5e-7), "-1.5e-07");
  EXPECT_EQ(format_value(1e300), "1e+300");
}

TEST(FormatValue, TinyNegativeIsNotZero) {
  EXPECT_EQ(format_value(-1e-310), "-1e-310");
}

TEST(FormatValues, SpaceSeparated) {
  EXPECT_EQ(format_values({}), "");
  EXPECT_EQ(format_values({1.0, -0.0, 0.5, -2.25}), "1 0 0.5 -2.25");
}

// "Me+XX" / "Me-XX" with at least two exponent digits, written out by hand.
std::string bucket_text(int mantissa, int exponent) {
  std::string digits = std::to_string(std::abs(exponent));
  if (digits.size() < 2) digits = "0" + digits;
  return std::to_string(mantissa) + "e" + (exponent < 0 ? "-" : "+") + digits;
}

TEST(FormatBucket, ZeroAndNonFinite) {
  EXPECT_EQ(format_bucket(0.0), "0");
  EXPECT_EQ(format_bucket(-0.0), "0");
  EXPECT_EQ(format_bucket(kNan), "nan");
  EXPECT_EQ(format_bucket(kInf), "inf");
}

TEST(FormatBucket, RoundsUpToOneTwoOrFive) {
  EXPECT_EQ(format_bucket(1e-7), "1e-07");
  EXPECT_EQ(format_bucket(1.01e-7), "2e-07");
  EXPECT_EQ(format_bucket(1.5e-7), "2e-07");
  EXPECT_EQ(format_bucket(2e-7), "2e-07");
  EXPECT_EQ(format_bucket(2.01e-7), "5e-07");
  EXPECT_EQ(format_bucket(3e-7), "5e-07");
  EXPECT_EQ(format_bucket(5e-7), "5e-07");
  EXPECT_EQ(format_bucket(5.5e-7), "1e-06");
  EXPECT_EQ(format_bucket(9.99e-7), "1e-06");
  EXPECT_EQ(format_bucket(1e-6), "1e-06");
  EXPECT_EQ(format_bucket(9.5e-8), "1e-07");
  EXPECT_EQ(format_bucket(0.3), "5e-01");
  EXPECT_EQ(format_bucket(1.0), "1e+00");
  EXPECT_EQ(format_bucket(7.0), "1e+01");
  EXPECT_EQ(format_bucket(1234.0), "2e+03");
  EXPECT_EQ(format_bucket(1e-120), "1e-120");
}

TEST(FormatBucket, ExactBoundariesStayInTheirBucketAtEveryScale) {
  // The double nearest to M x 10^k may sit a hair above or below the real number; either way it
  // prints as M x 10^k, never as the next bucket up.
  for (int k = -15; k <= 15; ++k) {
    for (int m : {1, 2, 5}) {
      const double value = std::stod(std::to_string(m) + "e" + std::to_string(k));
      EXPECT_EQ(format_bucket(value), bucket_text(m, k)) << m << "e" << k;
    }
  }
}

TEST(FormatBucket, JustAboveABoundaryMovesUp) {
  for (int k = -15; k <= 15; ++k) {
    const double scale = std::stod("1e" + std::to_string(k));
    EXPECT_EQ(format_bucket(1.001 * scale), bucket_text(2, k)) << k;
    EXPECT_EQ(format_bucket(2.001 * scale), bucket_text(5, k)) << k;
    EXPECT_EQ(format_bucket(5.001 * scale), bucket_text(1, k + 1)) << k;
    EXPECT_EQ(format_bucket(0.999 * scale), bucket_text(1, k)) << k;
  }
}

TEST(Compare, RelativeL2AndMaxAbsAgainstAHandComputation) {
  // differences 0, 0.5, -1: ||d||^2 = 1.25, ||oracle||^2 = 1 + 4 + 4 = 9.
  ErrorMetrics m = compare({1.0, 2.0, 2.0}, {1.0, 2.5, 1.0});
  EXPECT_NEAR(m.rel_l2, std::sqrt(1.25) / 3.0, 1e-15);
  EXPECT_DOUBLE_EQ(m.max_abs, 1.0);
  EXPECT_TRUE(m.finite);
}

TEST(Compare, NegativeDifferencesCountByMagnitude) {
  // differences -3 and 4: ||d|| = 5, ||oracle|| = sqrt(9 + 16 + 144) = 13.
  ErrorMetrics m = compare({3.0, -4.0, 12.0}, {0.0, 0.0, 12.0});
  EXPECT_NEAR(m.rel_l2, 5.0 / 13.0, 1e-15);
  EXPECT_DOUBLE_EQ(m.max_abs, 4.0);
}

TEST(Compare, IdenticalVectorsHaveNoError) {
  ErrorMetrics m = compare({0.5, -1.25, 3.0}, {0.5, -1.25, 3.0});
  EXPECT_EQ(m.rel_l2, 0.0);
  EXPECT_EQ(m.max_abs, 0.0);
  EXPECT_TRUE(m.finite);
}

TEST(Compare, NonFiniteTargetIsNotFinite) {
  EXPECT_FALSE(compare({1.0, 2.0}, {1.0, kNan}).finite);
  EXPECT_FALSE(compare({1.0, 2.0}, {kInf, 2.0}).finite);
  EXPECT_FALSE(compare({1.0, 2.0}, {1.0, -kInf}).finite);
}

TEST(Compare, NonFiniteTargetIsNeverWithinTolerance) {
  const double generous = 1e300;
  EXPECT_FALSE(within(compare({1.0, 2.0}, {1.0, kNan}), generous));
  EXPECT_FALSE(within(compare({1.0, 2.0}, {kInf, 2.0}), generous));
  // Even with errors that look small.
  EXPECT_FALSE(within(ErrorMetrics{0.0, 0.0, false}, generous));
}

TEST(Within, ComparesRelativeL2WithTheTolerance) {
  const double tolerance = 1e-5;
  EXPECT_TRUE(within(ErrorMetrics{0.0, 0.0, true}, tolerance));
  EXPECT_TRUE(within(ErrorMetrics{0.9e-5, 10.0, true}, tolerance));
  EXPECT_TRUE(within(ErrorMetrics{1e-5, 0.0, true}, tolerance));
  EXPECT_FALSE(within(ErrorMetrics{1.1e-5, 0.0, true}, tolerance));
}

TEST(DefaultTolerance, Fp32SitsBetweenRoundingAndARealBug) {
  // Above what fp32 rounding costs (a few units of 2^-24), below what a wrong index costs (1e-2).
  const double tolerance = default_tolerance(DType::f32, {2, 64});
  EXPECT_GT(tolerance, 16 * FLT_EPSILON);
  EXPECT_LT(tolerance, 1e-3);
  // A vector perturbed by fp32 rounding passes; one with a dropped term fails.
  std::vector<double> oracle, rounded, dropped;
  for (int i = 1; i <= 64; ++i) {
    const double v = std::sin(i * 0.7) + 0.1 * i;
    oracle.push_back(v);
    rounded.push_back(static_cast<float>(v));
    dropped.push_back(i == 10 ? 0.0 : v);
  }
  EXPECT_TRUE(within(compare(oracle, rounded), tolerance));
  EXPECT_FALSE(within(compare(oracle, dropped), tolerance));
}

TEST(DefaultTolerance, FollowsTheFormulaInTheNumericsDoc) {
  // 4 * sqrt(depth) * (u_storage + u_fp32 * sqrt(reduction)), u = 2^-8 (bf16), 2^-11 (fp16),
  // 2^-24 (fp32).
  const double u32 = std::ldexp(1.0, -24);
  EXPECT_DOUBLE_EQ(default_tolerance(DType::bf16, {4, 100}),
                   4 * 2 * (std::ldexp(1.0, -8) + u32 * 10));
  EXPECT_DOUBLE_EQ(default_tolerance(DType::f16, {9, 16}), 4 * 3 * (std::ldexp(1.0, -11) + u32 * 4));
  EXPECT_DOUBLE_EQ(default_tolerance(DType::f32, {1, 1}), 4 * (u32 + u32));
}

TEST(NearTie, AFlipIsATieWhenTwoLogitsEachMovingByTheToleratedErrorCloseTheGap) {
  // rms of {3, 2.9, -1, 0} is sqrt((9 + 8.41 + 1) / 4) = 2.1448...; a tolerance of 0.05 lets
  // each logit move by 0.107, two of them by 0.214.
  const std::vector<double> row = {3.0, 2.9, -1.0, 0.0};
  const double rms = std::sqrt((9.0 + 8.41 + 1.0) / 4);
  EXPECT_TRUE(near_tie(row, 0, 1, 0.05));                   // gap 0.1
  EXPECT_FALSE(near_tie(row, 0, 1, 0.09 / (2 * rms)));      // gap just past twice the error
  EXPECT_TRUE(near_tie(row, 0, 1, 0.1 / (2 * rms) * 1.001));
  EXPECT_FALSE(near_tie(row, 0, 3, 0.05));                  // gap 3
  EXPECT_FALSE(near_tie(row, 0, 7, 0.05));                  // no such token
  EXPECT_FALSE(near_tie({}, 0, 0, 0.05));
}

TEST(NearTie, FollowsTheToleranceSoAHealthyBf16TargetIsNotFailed) {
  // The shape that failed before: top two 1.97677 and 1.95693 (gap 0.0198), bf16 tolerance
  // 8.1e-02 over logits of rms about 1: a flip there is within the tolerated error.
  std::vector<double> row(128, 0.0);
  for (size_t i = 0; i < row.size(); ++i) row[i] = std::sin(0.37 * i);
  row[102] = 1.97677;
  row[56] = 1.95693;
  EXPECT_TRUE(near_tie(row, 102, 56, 8.1e-2));
  EXPECT_FALSE(near_tie(row, 102, 56, 1.1e-5));  // fp32's tolerance: a real flip
}

TEST(DefaultTolerance, NeverSoLooseThatAnAllZeroOutputPasses) {
  // Softmax over inputs of scale 64 in bf16: the estimate alone is above 1.
  Workload softmax{2, 16, 64};
  EXPECT_GT(kToleranceMultiple * error_estimate(unit_roundoff(DType::bf16), softmax), 1.0);
  EXPECT_EQ(default_tolerance(DType::bf16, softmax), kMaxTolerance);
  const std::vector<double> oracle = {0.1, 0.7, 0.2}, zeros = {0, 0, 0};
  EXPECT_FALSE(within(compare(oracle, zeros), default_tolerance(DType::bf16, softmax)));
}

TEST(DefaultTolerance, AMeasuredErrorPastTheModelledOneWidensIt) {
  // The modelled estimate of {4, 100} in bf16 is 2 * (2^-8 + u32 * 10) = 7.8e-3.
  Workload work{4, 100};
  const double modelled = error_estimate(unit_roundoff(DType::bf16), work);
  work.measured = modelled / 2;  // below the model: the model stands
  EXPECT_DOUBLE_EQ(error_estimate(unit_roundoff(DType::bf16), work), modelled);
  work.measured = 3 * modelled;
  EXPECT_DOUBLE_EQ(error_estimate(unit_roundoff(DType::bf16), work), 3 * modelled);
  EXPECT_DOUBLE_EQ(default_tolerance(DType::bf16, work), kToleranceMultiple * 3 * modelled);
}

TEST(ConditioningBound, IsTheToleranceWithoutItsCap) {
  Workload work{4, 100};
  work.measured = 0.02;  // 4 x 0.02 = 0.08: within kMaxTolerance, so nothing is ill-conditioned
  EXPECT_DOUBLE_EQ(conditioning_bound(unit_roundoff(DType::bf16), work), 0.08);
  EXPECT_DOUBLE_EQ(default_tolerance(DType::bf16, work), 0.08);
  work.measured = 0.1;  // 0.4: past kMaxTolerance
  EXPECT_DOUBLE_EQ(default_tolerance(DType::bf16, work), kMaxTolerance);
  EXPECT_DOUBLE_EQ(conditioning_bound(unit_roundoff(DType::bf16), work), 0.4);
}

TEST(Compare, NanAndInfinityAreNeverHiddenInMaxAbs) {
  const ErrorMetrics nan = compare({1.0, 2.0, 3.0}, {kNan, 2.0, 3.5});
  EXPECT_TRUE(std::isnan(nan.max_abs));
  EXPECT_TRUE(std::isnan(nan.rel_l2));
  EXPECT_FALSE(nan.finite);
  // A NaN before a larger finite error stays NaN.
  EXPECT_TRUE(std::isnan(compare({1.0, 2.0}, {kNan, 100.0}).max_abs));
  EXPECT_TRUE(std::isinf(compare({1.0, 2.0}, {kInf, 2.0}).max_abs));
}

TEST(KlDivergence, MatchesTheDefinition) {
  const std::vector<double> a = {1.0, 2.0, 0.5}, b = {1.5, 1.0, 0.0};
  auto softmax = [](const std::vector<double>& x) {
    double sum = 0;
    for (double v : x) sum += std::exp(v);
    std::vector<double> p;
    for (double v : x) p.push_back(std::exp(v) / sum);
    return p;
  };
  const std::vector<double> p = softmax(a), q = softmax(b);
  double expected = 0;
  for (size_t i = 0; i < p.size(); ++i) expected += p[i] * std::log(p[i] / q[i]);
  EXPECT_NEAR(kl_divergence(a, b), expected, 1e-15);
  EXPECT_EQ(kl_divergence(a, a), 0.0);
  EXPECT_TRUE(std::isinf(kl_divergence(a, {1.0, kNan, 0.0})));
}

TEST(AllFinite, DetectsNanAndInfinity) {
  EXPECT_TRUE(all_finite({}));
  EXPECT_TRUE(all_finite({0.0, -1.0, DBL_MAX}));
  EXPECT_FALSE(all_finite({0.0, kNan}));
  EXPECT_FALSE(all_finite({-kInf}));
}

}  // namespace
}  // namespace pinmark
