// A backend for measuring how much a model magnifies rounding error: it computes through
// another backend (the fp64 oracle) and multiplies every result, where a target would round it
// (storing_backend.h), by (1 + e * r) with r uniform in [-1, 1) and
//   e = u + u_fp32 * sqrt(reduction)        for a stored result,
//   e = u_fp32 * (1 + sqrt(reduction))      for one kept in the accumulator (scores, router),
// u the target's unit roundoff and reduction the length of the sum behind the result: the
// size of one rounding to the storage type plus the fp32 accumulation error of a sum of that
// length (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., section 3.1, the
// probabilistic bound). Run a few times with different seeds, the spread of the logits shows
// what the static error model of docs/numerics.md ("Tolerances") cannot see: an op that
// magnifies its inputs' relative error by an amount that depends on the data (a norm over a
// row that nearly cancels, Qwen3-Next's gated RMSNorm of a small delta-rule readout).
//
// r is random_uniform(seed, "perturbation", i) for the i-th perturbed value since the backend
// was made: the same on every machine.
#pragma once

#include <cstdint>
#include <memory>

#include "runtime/backend.h"

namespace pinmark {

std::unique_ptr<Backend<double>> make_perturbing_backend(std::unique_ptr<Backend<double>> inner,
                                                         double unit_roundoff, uint64_t seed);

}  // namespace pinmark
