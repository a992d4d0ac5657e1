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
// `measured`, when not 0, is the relative L2 error the result showed when the fp64 oracle ran
// with every op's result perturbed by a rounding of the target's size (the largest of a few
// runs, runtime/perturbing_backend.h): what the data does to the error, which depth and
// reduction length alone cannot tell.
struct Workload {
  int depth = 1;
  int reduction = 1;
  double amplification = 1;
  double measured = 0;
};

// The expected relative L2 error of a result that went through `work` storing in a type of
// unit roundoff `u` and accumulating in fp32 (docs/numerics.md, "Tolerances"): the larger of
//   sqrt(depth) * (amplification * u + u_fp32 * sqrt(reduction))   and   measured.
double error_estimate(double unit_roundoff, const Workload& work);

// The default bound on relative L2 error: kToleranceMultiple times the estimate, but never
// more than kMaxTolerance. An all-zero output has rel L2 1 and an unrelated one about 1.4, so
// a bound near 1 would accept output that carries no information: past kMaxTolerance the
// target is held to kMaxTolerance, and fails if it cannot meet it.
constexpr double kToleranceMultiple = 4;
constexpr double kMaxTolerance = 0.25;
double default_tolerance(double unit_roundoff, const Workload& work);
double default_tolerance(DType storage, const Workload& work);

// kToleranceMultiple times the estimate, uncapped. When it is past kMaxTolerance, rounding of
// the target's size alone may move the output further than any bound that still tells a
// healthy target from a broken one: the case is ill-conditioned for that target. A target past
// its tolerance but within this bound is shown as such: not judged, neither ok nor FAIL
// (docs/numerics.md, "The largest tolerance, and ill-conditioned rows"). Where the bound
// reaches 1, even an all-zero output is within it: the case cannot judge that target at all.
double conditioning_bound(double unit_roundoff, const Workload& work);

bool within(const ErrorMetrics& metrics, double tolerance);

// True when every value is finite.
bool all_finite(const std::vector<double>& values);

// KL(p_oracle || p_target) in nats of the softmax distributions of two logit rows.
double kl_divergence(const std::vector<double>& oracle_logits,
                     const std::vector<double>& target_logits);

// Whether a target that chose `chosen` where the oracle ranks `preferred` higher (the next
// token, an MoE expert) is within the error its tolerance allows. The tolerance bounds the
// rel L2 of the values, i.e. lets each move by about `tolerance * rms(row)`; two values moving
// in opposite directions close a gap of twice that. So the choice is a near-tie when
//   oracle[preferred] - oracle[chosen] <= 2 * tolerance * rms(oracle row)
// (docs/numerics.md, "One error model"). False for an index outside the row, or a NaN.
bool near_tie(const std::vector<double>& oracle_row, size_t preferred, size_t chosen,
              double tolerance);

}  // namespace pinmark
