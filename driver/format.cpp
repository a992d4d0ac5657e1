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
  // Decimal powers are inexact in binary, so a value at a bucket's edge (1e-7 itself) must not
  // spill into the next bucket: compare with a relative slack far below any real change.
  constexpr double kSlack = 1e-9;
  int exponent = static_cast<int>(std::floor(std::log10(value))) - 1;
  for (;; ++exponent) {
    const double scale = std::pow(10.0, exponent);
    for (int step : {1, 2, 5}) {
      if (value <= step * scale * (1 + kSlack)) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%de%+03d", step, exponent);
        return buffer;
      }
    }
  }
}

std::string format_tolerance(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1e", value);
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
