#include "runtime/dtype.h"

#include <cmath>
#include <cstring>

namespace pinmark {
namespace {

uint32_t bits_of(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float float_of(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

}  // namespace

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f64: return "fp64";
    case DType::f32: return "fp32";
    case DType::bf16: return "bf16";
    case DType::f16: return "fp16";
  }
  return "?";
}

std::optional<DType> parse_dtype(const std::string& name) {
  for (DType d : {DType::f64, DType::f32, DType::bf16, DType::f16})
    if (dtype_name(d) == name) return d;
  return std::nullopt;
}

double unit_roundoff(DType dtype) {
  switch (dtype) {
    case DType::f64: return std::ldexp(1.0, -53);
    case DType::f32: return std::ldexp(1.0, -24);
    case DType::bf16: return std::ldexp(1.0, -8);
    case DType::f16: return std::ldexp(1.0, -11);
  }
  return 0;
}

uint16_t float_to_bf16_bits(float value) {
  const uint32_t bits = bits_of(value);
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x0040);  // stay quiet NaN
  // Adding 0x7FFF plus the lowest kept bit rounds to nearest, ties to even; a carry into the
  // exponent is the correct rounding up, including to infinity.
  const uint32_t lsb = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7FFFu + lsb) >> 16);
}

float bf16_bits_to_float(uint16_t bits) { return float_of(static_cast<uint32_t>(bits) << 16); }

uint16_t float_to_fp16_bits(float value) {
  const uint32_t bits = bits_of(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7E00u;   // NaN
  if (magnitude >= 0x47800000u) {                        // >= 65536: beyond any rounding to max
    return sign | 0x7C00u;
  }
  const int exponent = static_cast<int>(magnitude >> 23) - 127;
  uint32_t mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;  // with the implicit bit
  if (magnitude < 0x38800000u) {  // below 2^-14: an fp16 subnormal or zero
    if (magnitude < 0x33000000u) return sign;  // below half the smallest subnormal (2^-25)
    // value = mantissa * 2^(exponent - 23); subnormal unit is 2^-24.
    const int shift = -exponent - 1;  // 14..24 -> mantissa >> (shift) gives units of 2^-24
    const uint32_t kept = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    const uint32_t rounded = kept + (rest > half || (rest == half && (kept & 1u)));
    return sign | static_cast<uint16_t>(rounded);
  }
  // Normal: 10 mantissa bits kept of 23.
  uint32_t half_bits = (static_cast<uint32_t>(exponent + 15) << 10) | ((mantissa >> 13) & 0x3FFu);
  const uint32_t rest = mantissa & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (half_bits & 1u))) ++half_bits;  // may carry to inf
  return sign | static_cast<uint16_t>(half_bits);
}

float fp16_bits_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  const uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1F) return float_of(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  return float_of(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

float round_to(DType dtype, float value) {
  switch (dtype) {
    case DType::bf16: return bf16_bits_to_float(float_to_bf16_bits(value));
    case DType::f16: return fp16_bits_to_float(float_to_fp16_bits(value));
    default: return value;
  }
}

namespace {

// The loops below are round_to without branches, so that the compiler turns them into vector
// code: integer adds and masks, one float add and subtract, selects. Compiled for AVX-512, AVX2
// and the baseline, chosen when the program starts; every clone computes the same exact integer
// and IEEE operations, so the bits do not depend on the machine.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PINMARK_ROUNDING_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PINMARK_ROUNDING_CLONES
#endif

using AliasedBits = uint32_t __attribute__((may_alias));

// float_to_bf16_bits then back: add 0x7FFF plus the lowest kept bit (ties to even, a carry is
// the correct rounding up), a NaN kept quiet.
PINMARK_ROUNDING_CLONES void round_bf16_in_place(float* values, int64_t n) {
  AliasedBits* bits = reinterpret_cast<AliasedBits*>(values);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = bits[i];
    const uint32_t rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
    const uint32_t nan = (b & 0xFFFF0000u) | 0x00400000u;
    bits[i] = (b & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded;
  }
}

// float_to_fp16_bits then back, on the magnitude a:
//   a >= 65520 (halfway from 65504, fp16's largest, to 65536): infinity;
//   a >= 2^-14 (fp16 normals): 10 of the 23 mantissa bits kept, the rest rounded as for bf16;
//   a < 2^-14 (fp16 subnormals, multiples of 2^-24): (a + 0.5) - 0.5, since floats in [0.5, 1)
//   are exactly the multiples of 2^-24 there, so the add rounds a to one, ties to even, and the
//   subtract is exact;
//   NaN: the quiet NaN fp16_bits_to_float gives for fp16's, its sign kept.
PINMARK_ROUNDING_CLONES void round_fp16_in_place(float* values, int64_t n) {
  AliasedBits* bits = reinterpret_cast<AliasedBits*>(values);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = bits[i], sign = b & 0x80000000u, a = b & 0x7FFFFFFFu;
    float magnitude;
    std::memcpy(&magnitude, &a, sizeof magnitude);
    const float sub = (magnitude + 0.5f) - 0.5f;
    uint32_t sub_bits;
    std::memcpy(&sub_bits, &sub, sizeof sub_bits);
    const uint32_t normal = (a + 0xFFFu + ((a >> 13) & 1u)) & 0xFFFFE000u;
    uint32_t r = a < 0x38800000u ? sub_bits : normal;
    r = a >= 0x477FF000u ? 0x7F800000u : r;
    r = a > 0x7F800000u ? 0x7FC00000u : r;
    bits[i] = sign | r;
  }
}

}  // namespace

void round_in_place(DType dtype, float* values, int64_t n) {
  switch (dtype) {
    case DType::bf16: return round_bf16_in_place(values, n);
    case DType::f16: return round_fp16_in_place(values, n);
    default: return;
  }
}

}  // namespace pinmark
