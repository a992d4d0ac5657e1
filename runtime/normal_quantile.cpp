#include "runtime/normal_quantile.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace pinmark {

double normal_quantile(double p) {
  if (!(p >= 0 && p <= 1)) return std::numeric_limits<double>::quiet_NaN();
  if (p == 0) return -std::numeric_limits<double>::infinity();
  if (p == 1) return std::numeric_limits<double>::infinity();
  if (p == 0.5) return 0;
  // Solved in the lower tail, where erfc keeps every digit of Phi; 1 - p is exact for p > 0.5.
  if (p > 0.5) return -normal_quantile(1 - p);
  // Abramowitz and Stegun 26.2.23 starts within 4.5e-4 of the answer, tails included.
  const double t = std::sqrt(-2 * std::log(p));
  double x = -(t - (2.515517 + 0.802853 * t + 0.010328 * t * t) /
                       (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t));
  for (int i = 0; i < 100; ++i) {
    const double cdf = 0.5 * std::erfc(-x / std::sqrt(2.0));
    const double density = std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
    if (density == 0) break;
    const double step = (cdf - p) / density;
    x -= step;
    if (std::abs(step) <= 1e-16 * std::max(1.0, std::abs(x))) break;
  }
  return x;
}

}  // namespace pinmark
