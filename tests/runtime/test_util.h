// Helpers shared by the runtime tests: inputs in two precisions and tolerance checks.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "runtime/random.h"

namespace pinmark::test {

// Inputs for a kernel of type T, and the same values in fp64 for the reference, so that a
// float test measures the kernel's arithmetic and not the rounding of its inputs.
template <class T>
struct Input {
  std::vector<T> t;
  std::vector<double> d;
};

template <class T>
Input<T> make_input(const std::string& name, size_t count, double scale = 1.0, double offset = 0.0,
                    uint64_t seed = 20240607) {
  std::vector<double> v = random_tensor(seed, name, count, scale, offset);
  Input<T> in;
  in.t.assign(v.begin(), v.end());
  in.d.assign(in.t.begin(), in.t.end());
  return in;
}

// Relative tolerance of a kernel against the fp64 reference.
template <class T>
constexpr double kernel_tolerance() {
  return sizeof(T) == sizeof(double) ? 1e-12 : 1e-5;
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// Every element within rel * max|expected| of the expected value; infinities must match
// exactly. Normalizing by the largest element keeps near-zero outputs (a dot product that
// happens to cancel) from demanding impossible relative precision.
template <class T>
void expect_close(const std::vector<T>& actual, const std::vector<double>& expected, double rel,
                  const std::string& what = "") {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  std::vector<double> finite;
  for (double e : expected)
    if (std::isfinite(e)) finite.push_back(e);
  ASSERT_GT(max_abs(finite), 0.0) << what
                                  << ": the reference is all zeros, the test proves nothing";
  const double bound = rel * max_abs(finite);
  int reported = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = static_cast<double>(actual[i]), e = expected[i];
    if (std::isinf(e)) {
      EXPECT_EQ(a, e) << what << " element " << i;
      continue;
    }
    if (!(std::fabs(a - e) <= bound) && reported++ < 5)
      ADD_FAILURE() << what << " element " << i << ": got " << a << ", expected " << e
                    << " (allowed error " << bound << ")";
  }
}

inline double relative_l2(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

}  // namespace pinmark::test
