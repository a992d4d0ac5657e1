// Storage precisions and their rounding. bf16 and fp16 values are kept in float and rounded
// with round-to-nearest-even at the points docs/numerics.md lists, which is what a GPU kernel
// that stores its output in that type does. NaN stays NaN, overflow becomes infinity,
// and fp16 keeps its subnormals.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pinmark {

enum class DType { f64, f32, bf16, f16 };

std::string dtype_name(DType dtype);  // "fp64", "fp32", "bf16", "fp16"
std::optional<DType> parse_dtype(const std::string& name);

// Unit roundoff: half the distance from 1 to the next representable number.
double unit_roundoff(DType dtype);

// Bit conversions, round to nearest even.
uint16_t float_to_bf16_bits(float value);
float bf16_bits_to_float(uint16_t bits);
uint16_t float_to_fp16_bits(float value);
float fp16_bits_to_float(uint16_t bits);

// `value` rounded to the nearest value of `dtype` (identity for fp32 and fp64).
float round_to(DType dtype, float value);

// values[i] = round_to(dtype, values[i]) for i < n, the same bits, in vector instructions.
void round_in_place(DType dtype, float* values, int64_t n);

}  // namespace pinmark
