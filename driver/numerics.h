// Comparing a target's numbers with the fp64 oracle's, and the tolerance it is judged by.
// docs/numerics.md explains every number here.
#pragma once

#include <string>
#include <vector>

#include "runtime/dtype.h"

namespace pinmark {

struct ErrorMetrics {
  double rel_l2 = 0;   // ||target - oracle|| / ||oracle||
  double max_abs = 0;  // max |target - oracle|
  bool finite = true;  // false when the target has a NaN or an infinity
};

ErrorMetrics compare(const std::vector<double>& oracle, const std::vector<double>& target);

// How much rounding a result has been through: the number of rounding points on its longest
// path (each op that stores its output) and the longest reduction (dot product length).
// `amplification` is how much the op magnifies the relative rounding error of its inputs
// (exp(x) turns a relative error u of x into |x| u: softmax over inputs up to 16 has 16).
struct Workload {
  int depth = 1;
  int reduction = 1;
  double amplification = 1;
};

// The default bound on relative L2 error for a target storing tensors in `storage` and
// accumulating in fp32:
//   kToleranceMultiple * sqrt(depth) * (amplification * u_storage + u_fp32 * sqrt(reduction)).
constexpr double kToleranceMultiple = 4;
double default_tolerance(double unit_roundoff, const Workload& work);
double default_tolerance(DType storage, const Workload& work);

bool within(const ErrorMetrics& metrics, double tolerance);

// True when every value is finite.
bool all_finite(const std::vector<double>& values);

// KL(p_oracle || p_target) in nats of the softmax distributions of two logit rows.
double kl_divergence(const std::vector<double>& oracle_logits,
                     const std::vector<double>& target_logits);

// Whether the oracle's top two logits are within one unit of `storage` rounding of each other
// (2 u |top|): a target may pick either without being wrong.
bool near_tie(const std::vector<double>& oracle_logits, double unit_roundoff);

}  // namespace pinmark
