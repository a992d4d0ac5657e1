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
    // std::max would drop a NaN (every comparison with it is false): keep it, so a NaN output
    // never prints as a small error.
    if (!std::isnan(m.max_abs) && (std::isnan(d) || std::fabs(d) > m.max_abs))
      m.max_abs = std::fabs(d);
  }
  if (oracle.size() != target.size()) m.finite = false;
  m.rel_l2 = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  return m;
}

double default_tolerance(DType storage, const Workload& work) {
  return default_tolerance(unit_roundoff(storage), work);
}

double error_estimate(double u, const Workload& work) {
  const double u_acc = unit_roundoff(DType::f32);
  const double modelled =
      std::sqrt(static_cast<double>(std::max(work.depth, 1))) *
      (work.amplification * u + u_acc * std::sqrt(static_cast<double>(std::max(work.reduction, 1))));
  return std::max(modelled, work.measured);
}

double default_tolerance(double u, const Workload& work) {
  return std::min(kToleranceMultiple * error_estimate(u, work), kMaxTolerance);
}

double conditioning_bound(double u, const Workload& work) {
  return kToleranceMultiple * error_estimate(u, work);
}

bool within(const ErrorMetrics& metrics, double tolerance) {
  return metrics.finite && metrics.rel_l2 <= tolerance;
}

bool all_finite(const std::vector<double>& values) {
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

namespace {

std::vector<double> log_softmax(const std::vector<double>& logits) {
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (double x : logits) sum += std::exp(x - max);
  const double log_sum = max + std::log(sum);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - log_sum;
  return out;
}

}  // namespace

double kl_divergence(const std::vector<double>& oracle_logits,
                     const std::vector<double>& target_logits) {
  if (oracle_logits.empty() || oracle_logits.size() != target_logits.size() ||
      !all_finite(target_logits))
    return INFINITY;
  const std::vector<double> p = log_softmax(oracle_logits), q = log_softmax(target_logits);
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i) kl += std::exp(p[i]) * (p[i] - q[i]);
  return std::max(kl, 0.0);  // rounding can leave a tiny negative sum for equal rows
}

bool near_tie(const std::vector<double>& oracle_row, size_t preferred, size_t chosen,
              double tolerance) {
  if (preferred >= oracle_row.size() || chosen >= oracle_row.size()) return false;
  double sum2 = 0;
  for (double x : oracle_row) sum2 += x * x;
  const double rms = std::sqrt(sum2 / oracle_row.size());
  return oracle_row[preferred] - oracle_row[chosen] <= 2 * tolerance * rms;
}

}  // namespace pinmark
