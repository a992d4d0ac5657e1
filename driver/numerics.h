// Comparing a target's numbers with the fp64 oracle's.
#pragma once

#include <string>
#include <vector>

namespace pinmark {

struct ErrorMetrics {
  double rel_l2 = 0;   // ||target - oracle|| / ||oracle||
  double max_abs = 0;  // max |target - oracle|
  bool finite = true;  // false when the target has a NaN or an infinity
};

ErrorMetrics compare(const std::vector<double>& oracle, const std::vector<double>& target);

// The tolerance a target is judged against (see docs/numerics.md for the derivation).
struct Tolerance {
  double rel_l2 = 0;
};

// The default for a target computing in fp32 arithmetic.
Tolerance fp32_tolerance();

bool within(const ErrorMetrics& metrics, const Tolerance& tolerance);

// True when every value is finite.
bool all_finite(const std::vector<double>& values);

}  // namespace pinmark
