// bf16 and fp16 conversions checked bit for bit against the IEEE rules, using an independent
// reference: decode every 16-bit pattern, then round a float by finding its two neighbours in
// that table and choosing the nearer (ties to the even pattern), with overflow past the
// largest finite value's half-way point going to infinity.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/random.h"
#include "tests/support/half_floats.h"

namespace pinmark {
namespace {

float float_of(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

using test::bf16_value;
using test::fp16_value;

// Round-to-nearest-even by search over the non-negative finite patterns (sorted by value).
// `max_bits` is the largest finite pattern; values at or past max + half an ulp overflow.
uint16_t reference_round(double x, double (*value)(uint16_t), uint16_t max_bits) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(x);
  const double max = value(max_bits), ulp_at_max = max - value(max_bits - 1);
  if (a >= max + ulp_at_max / 2) return sign | static_cast<uint16_t>(max_bits + 1);  // infinity
  uint16_t lo = 0, hi = max_bits;
  while (hi - lo > 1) {  // value(lo) <= a < value(hi) or a == max
    const uint16_t mid = static_cast<uint16_t>((lo + hi) / 2);
    (value(mid) <= a ? lo : hi) = mid;
  }
  if (a >= value(hi)) return sign | hi;
  const double down = a - value(lo), up = value(hi) - a;
  if (down < up) return sign | lo;
  if (up < down) return sign | hi;
  return sign | ((lo & 1) ? hi : lo);
}

TEST(Fp16, EveryPatternDecodesToItsValueAndEncodesBack) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const double expected = fp16_value(static_cast<uint16_t>(h));
    const float decoded = fp16_bits_to_float(static_cast<uint16_t>(h));
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(decoded)) << std::hex << h;
      EXPECT_TRUE(std::isnan(fp16_bits_to_float(float_to_fp16_bits(decoded)))) << std::hex << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(decoded), expected) << std::hex << h;
    ASSERT_EQ(std::signbit(decoded), (h & 0x8000) != 0) << std::hex << h;
    ASSERT_EQ(float_to_fp16_bits(decoded), h) << std::hex << h;
  }
}

TEST(Bf16, EveryPatternDecodesToItsValueAndEncodesBack) {
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const double expected = bf16_value(static_cast<uint16_t>(b));
    const float decoded = bf16_bits_to_float(static_cast<uint16_t>(b));
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(decoded)) << std::hex << b;
      EXPECT_TRUE(std::isnan(bf16_bits_to_float(float_to_bf16_bits(decoded)))) << std::hex << b;
      continue;
    }
    ASSERT_EQ(static_cast<double>(decoded), expected) << std::hex << b;
    ASSERT_EQ(float_to_bf16_bits(decoded), b) << std::hex << b;
  }
}

// Floats that exercise rounding: every midpoint and its neighbours between consecutive 16-bit
// values (ties and near-ties), plus random bit patterns across the whole float range.
std::vector<float> rounding_probes(double (*value)(uint16_t), uint16_t max_bits) {
  std::vector<float> probes;
  for (uint32_t p = 0; p < max_bits; ++p) {
    const double mid = (value(static_cast<uint16_t>(p)) + value(static_cast<uint16_t>(p + 1))) / 2;
    const float f = static_cast<float>(mid);  // exact: a 16-bit midpoint fits in a float
    probes.insert(probes.end(), {f, std::nextafter(f, 0.0f), std::nextafter(f, INFINITY)});
    probes.push_back(-f);
  }
  for (uint64_t i = 0; i < 200000; ++i) {
    const float f = float_of(static_cast<uint32_t>(random_bits(5, "float bits", i)));
    if (!std::isnan(f)) probes.push_back(f);
  }
  probes.insert(probes.end(), {0.0f, -0.0f, INFINITY, -INFINITY, std::numeric_limits<float>::max(),
                               std::numeric_limits<float>::denorm_min()});
  return probes;
}

TEST(Fp16, RoundsToNearestEvenWithSubnormalsAndOverflow) {
  for (float f : rounding_probes(fp16_value, 0x7BFF)) {
    const uint16_t expected = std::isinf(f) ? (f > 0 ? 0x7C00 : 0xFC00)
                                            : reference_round(f, fp16_value, 0x7BFF);
    ASSERT_EQ(float_to_fp16_bits(f), expected) << f << " bits " << std::hex << bits_of(f);
  }
}

TEST(Bf16, RoundsToNearestEvenWithOverflow) {
  for (float f : rounding_probes(bf16_value, 0x7F7F)) {
    const uint16_t expected = std::isinf(f) ? (f > 0 ? 0x7F80 : 0xFF80)
                                            : reference_round(f, bf16_value, 0x7F7F);
    ASSERT_EQ(float_to_bf16_bits(f), expected) << f << " bits " << std::hex << bits_of(f);
  }
}

TEST(Conversions, NanStaysNanAndKnownValuesLandWhereIeeeSays) {
  EXPECT_TRUE(std::isnan(round_to(DType::f16, NAN)));
  EXPECT_TRUE(std::isnan(round_to(DType::bf16, -NAN)));
  EXPECT_EQ(round_to(DType::f16, 65504.0f), 65504.0f);     // largest finite fp16
  EXPECT_EQ(round_to(DType::f16, 65519.0f), 65504.0f);     // below the half-way point
  EXPECT_TRUE(std::isinf(round_to(DType::f16, 65520.0f)));  // the half-way point rounds to even: inf
  EXPECT_EQ(round_to(DType::f16, std::ldexp(1.0f, -24)), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(round_to(DType::f16, std::ldexp(1.0f, -25)), 0.0f);  // a tie between 0 and it: even is 0
  EXPECT_EQ(round_to(DType::f16, std::ldexp(1.5f, -25)), std::ldexp(1.0f, -24));
  EXPECT_EQ(round_to(DType::bf16, 1.00390625f), 1.0f);      // 1 + 2^-8: a tie, even is 1
  EXPECT_EQ(round_to(DType::bf16, 1.01171875f), 1.015625f); // 1 + 3 * 2^-8: a tie, even is 1 + 2^-6
  EXPECT_EQ(round_to(DType::f32, 0.1f), 0.1f);
}

// The vector loop against round_to, bit for bit: every probe above (ties, near-ties, both
// signs, subnormals, overflow), NaNs with assorted payloads and signs, in an array whose length
// is no multiple of any vector width, so that the loops' tails run too.
void expect_in_place_matches_round_to(DType dtype, std::vector<float> values) {
  for (uint32_t payload : {0x7FC00000u, 0x7F800001u, 0x7FBFFFFFu, 0xFFC12345u, 0xFF800001u})
    values.push_back(float_of(payload));
  // Where the branches of the scalar code meet: fp16's overflow point and largest values, its
  // normal and subnormal boundary, half its smallest subnormal; bf16's largest finite values.
  for (float f : {65504.0f, 65519.0f, 65520.0f, 65535.0f, 65536.0f, 65536.0f * 1.5f,
                  std::ldexp(1.0f, -14), std::ldexp(1.0f, -25), std::ldexp(1.5f, -25),
                  std::ldexp(1.0f, -24), std::numeric_limits<float>::max()})
    for (float g : {f, std::nextafter(f, 0.0f), std::nextafter(f, INFINITY)})
      values.insert(values.end(), {g, -g});
  if (values.size() % 2 == 0) values.push_back(1.0f);
  std::vector<float> rounded = values;
  round_in_place(dtype, rounded.data(), static_cast<int64_t>(rounded.size()));
  for (size_t i = 0; i < values.size(); ++i)
    ASSERT_EQ(bits_of(rounded[i]), bits_of(round_to(dtype, values[i])))
        << dtype_name(dtype) << " of bits " << std::hex << bits_of(values[i]);
}

TEST(RoundInPlace, Fp16GivesRoundToBitsForEveryProbe) {
  expect_in_place_matches_round_to(DType::f16, rounding_probes(fp16_value, 0x7BFF));
}

TEST(RoundInPlace, Bf16GivesRoundToBitsForEveryProbe) {
  expect_in_place_matches_round_to(DType::bf16, rounding_probes(bf16_value, 0x7F7F));
}

TEST(RoundInPlace, LeavesFp32AndFp64Values) {
  std::vector<float> values = {0.1f, -3.0e-41f, 65520.0f};
  const std::vector<float> before = values;
  round_in_place(DType::f32, values.data(), 3);
  EXPECT_EQ(values, before);
  round_in_place(DType::f64, values.data(), 3);
  EXPECT_EQ(values, before);
}

TEST(DtypeNames, RoundTripAndUnitRoundoff) {
  for (DType d : {DType::f64, DType::f32, DType::bf16, DType::f16})
    EXPECT_EQ(parse_dtype(dtype_name(d)), d);
  EXPECT_FALSE(parse_dtype("fp8").has_value());
  EXPECT_EQ(unit_roundoff(DType::bf16), std::ldexp(1.0, -8));
  EXPECT_EQ(unit_roundoff(DType::f16), std::ldexp(1.0, -11));
  EXPECT_EQ(unit_roundoff(DType::f32), std::ldexp(1.0, -24));
  EXPECT_EQ(unit_roundoff(DType::f64), std::ldexp(1.0, -53));
}

}  // namespace
}  // namespace pinmark
