// fp16 and bf16 values decoded from their bit fields by the textbook formula, in double:
// an oracle independent of runtime/dtype.h for the tests that check conversions.
#pragma once

#include <cmath>
#include <cstdint>

namespace pinmark::test {

// IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
inline double fp16_value(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  double magnitude;
  if (exponent == 0x1F)
    magnitude = mantissa ? NAN : INFINITY;
  else if (exponent == 0)
    magnitude = std::ldexp(mantissa, -24);
  else
    magnitude = std::ldexp(1024 + mantissa, exponent - 25);
  return sign ? -magnitude : magnitude;
}

// bfloat16: 1 sign, 8 exponent (bias 127), 7 mantissa bits.
inline double bf16_value(uint16_t b) {
  const int sign = b >> 15, exponent = (b >> 7) & 0xFF, mantissa = b & 0x7F;
  double magnitude;
  if (exponent == 0xFF)
    magnitude = mantissa ? NAN : INFINITY;
  else if (exponent == 0)
    magnitude = std::ldexp(mantissa, -133);
  else
    magnitude = std::ldexp(128 + mantissa, exponent - 134);
  return sign ? -magnitude : magnitude;
}

}  // namespace pinmark::test
