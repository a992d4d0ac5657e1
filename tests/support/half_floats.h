// fp16 and bf16 values decoded from their bit fields by the textbook formula, in double:
// an oracle independent of runtime/dtype.h for the tests that check conversions.
#pragma once

#include <cmath>
#include <cstdint>

namespace pinmark::test {

// A 16-bit IEEE 754-style float: 1 sign bit, `exponent_bits` of exponent biased by
// 2^(exponent_bits - 1) - 1, the rest mantissa. All-ones exponent: infinity or NaN; zero
// exponent: subnormal.
inline double half_value(uint16_t bits, int exponent_bits) {
  const int mantissa_bits = 15 - exponent_bits, bias = (1 << (exponent_bits - 1)) - 1;
  const int top = (1 << exponent_bits) - 1;
  const int sign = bits >> 15, exponent = (bits >> mantissa_bits) & top;
  const int mantissa = bits & ((1 << mantissa_bits) - 1);
  double magnitude;
  if (exponent == top)
    magnitude = mantissa ? NAN : INFINITY;
  else if (exponent == 0)
    magnitude = std::ldexp(mantissa, 1 - bias - mantissa_bits);
  else
    magnitude = std::ldexp((1 << mantissa_bits) + mantissa, exponent - bias - mantissa_bits);
  return sign ? -magnitude : magnitude;
}

// IEEE 754 binary16: 5 exponent bits (bias 15), 10 mantissa bits.
inline double fp16_value(uint16_t h) { return half_value(h, 5); }

// bfloat16: 8 exponent bits (bias 127), 7 mantissa bits.
inline double bf16_value(uint16_t b) { return half_value(b, 8); }

}  // namespace pinmark::test
