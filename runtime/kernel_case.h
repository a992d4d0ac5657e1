// A single kernel run on synthetic inputs, for cases that pin one op rather than a model.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/dtype.h"
#include "runtime/model_config.h"
#include "runtime/tensor.h"

namespace pinmark {

// op is one of: matmul {n, k, m}; rmsnorm {rows, dim, eps}; rope {tokens, heads, head_dim,
// theta, start}; softmax {rows, len, scale (of the uniform inputs, default 4)}; attention {tokens, past, heads, kv_heads, head_dim}
// (queries at positions past..past+tokens-1 over past+tokens cached keys, scale
// 1/sqrt(head_dim), then softmax and values); swiglu {n}.
struct KernelSpec {
  std::string op;
  std::map<std::string, double> params;
  uint64_t seed = 0;
};

// The value of parameter `name`, or its default. Throws std::out_of_range for a required
// parameter the spec lacks.
double kernel_param(const KernelSpec& spec, const std::string& name);

// The ops and, for each, its parameter names (required unless it has a default).
const std::map<std::string, std::vector<std::string>>& kernel_ops();

// Empty when the spec can run: a known op, every required parameter present, positive
// integral sizes, no unknown parameter, heads % kv_heads == 0, even head_dim for rope.
std::vector<ConfigProblem> validate(const KernelSpec& spec);

// Inputs are random_tensor(seed, "x" / "w" / "q" / "k" / "v" / "gate" / "up", ...), rounded to
// `storage` when T is float; the result is the op's output converted to fp64.
template <class T>
Tensor<double> run_kernel(const KernelSpec& spec, Backend<T>& backend,
                          DType storage = DType::f32);

}  // namespace pinmark
