#include "driver/numerics.h"

#include <algorithm>
#include <cmath>

namespace pinmark {

ErrorMetrics compare(const std::vector<double>& oracle, const std::vector<double>& target) {
  ErrorMetrics m;
  double diff2 = 0, ref2 = 0;
  const size_t n = std::min(oracle.size(), target.size());
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(target[i])) m.finite = false;
    const double d = target[i] - oracle[i];
    diff2 += d * d;
    ref2 += oracle[i] * oracle[i];
    m.max_abs = std::max(m.max_abs, std::fabs(d));
  }
  if (oracle.size() != target.size()) m.finite = false;
  m.rel_l2 = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  return m;
}

// fp32 unit roundoff u = 2^-24. A forward pass of a small model chains a few dozen kernels, each
// adding a few u of relative error, and reductions of length K add up to sqrt(K) u in the
// typical (random-walk) case; 2^-13 = 2048 u leaves a wide margin over the 1e-7..1e-6 that
// fp32 actually costs on the shipped cases, while a real bug (a wrong index, a dropped term)
// costs 1e-2 or more.
Tolerance fp32_tolerance() { return {std::ldexp(1.0, -13)}; }

bool within(const ErrorMetrics& metrics, const Tolerance& tolerance) {
  return metrics.finite && metrics.rel_l2 <= tolerance.rel_l2;
}

bool all_finite(const std::vector<double>& values) {
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

}  // namespace pinmark
