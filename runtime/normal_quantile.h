// The standard normal quantile, for Gemma 3n's activation sparsity.
#pragma once

namespace pinmark {

// Phi^-1(p): the x with P(Z <= x) = p for a standard normal Z, to within a few units in the
// last place of a double, for p in (0, 1); -infinity at 0, +infinity at 1, NaN outside [0, 1].
// transformers computes it as torch.distributions.Normal(0, 1).icdf(p) = sqrt(2) erfinv(2p - 1)
// (Gemma3nTextMLP._gaussian_topk); here Newton's method on Phi(x) = erfc(-x / sqrt(2)) / 2
// refines a start from the logistic approximation.
double normal_quantile(double p);

}  // namespace pinmark
