#include "driver/format.h"

#include <cmath>
#include <cstdio>

namespace pinmark {

std::string format_value(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return "0";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.*g", kPrintedDigits, value);
  return buffer;
}

std::string format_bucket(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return "inf";
  if (value <= 0) return "0";
  int exponent = static_cast<int>(std::floor(std::log10(value)));
  double mantissa = value / std::pow(10.0, exponent);
  // log10 may land one below for exact powers of ten; keep the mantissa in [1, 10).
  if (mantissa >= 10) {
    mantissa /= 10;
    ++exponent;
  }
  int step = mantissa <= 1 ? 1 : mantissa <= 2 ? 2 : mantissa <= 5 ? 5 : 10;
  if (step == 10) {
    step = 1;
    ++exponent;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%de%+03d", step, exponent);
  return buffer;
}

std::string format_values(const std::vector<double>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ' ';
    out += format_value(values[i]);
  }
  return out;
}

}  // namespace pinmark
