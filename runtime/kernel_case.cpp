#include "runtime/kernel_case.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <stdexcept>

#include "runtime/dtype.h"
#include "runtime/random.h"

namespace pinmark {

namespace {

// Parameters with a default; every other parameter of an op is a required size.
const std::map<std::string, double>& defaults() {
  static const std::map<std::string, double> d = {
      {"eps", 1e-6}, {"theta", 10000.0}, {"start", 0.0}, {"past", 0.0}, {"scale", 4.0}};
  return d;
}

// Positions and offsets, which may be zero; all other integral parameters must be positive.
bool may_be_zero(const std::string& name) { return name == "start" || name == "past"; }
bool is_real(const std::string& name) {
  return name == "eps" || name == "theta" || name == "scale";
}

// Shortest text that reads back as the same double: 0.1 prints as "0.1", not "0.10000000000000001".
std::string number(double v) {
  char buf[32];
  auto result = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, result.ptr);
}

double param(const KernelSpec& spec, const std::string& name) {
  auto it = spec.params.find(name);
  if (it != spec.params.end()) return it->second;
  return defaults().at(name);
}

int iparam(const KernelSpec& spec, const std::string& name) {
  return static_cast<int>(param(spec, name));
}

std::string known_ops() {
  std::string s;
  for (const auto& [op, names] : kernel_ops()) s += (s.empty() ? "" : ", ") + op;
  return s;
}

// Drawn in fp64 and rounded once to the storage type, so every target sees the same inputs up
// to that rounding.
template <class T>
struct Inputs {
  const KernelSpec& spec;
  DType storage;

  std::vector<T> operator()(const char* name, int64_t count, double scale = 1.0,
                            double offset = 0.0) const {
    std::vector<double> v =
        random_tensor(spec.seed, name, static_cast<size_t>(count), scale, offset);
    std::vector<T> out(v.begin(), v.end());
    if constexpr (std::is_same_v<T, float>)
      for (T& x : out) x = round_to(storage, x);
    return out;
  }
};

template <class T>
Tensor<double> output(Shape shape, const std::vector<T>& values) {
  return Tensor<double>(std::move(shape), to_double(values));
}

}  // namespace

double kernel_param(const KernelSpec& spec, const std::string& name) { return param(spec, name); }

const std::map<std::string, std::vector<std::string>>& kernel_ops() {
  static const std::map<std::string, std::vector<std::string>> ops = {
      {"matmul", {"n", "k", "m"}},
      {"rmsnorm", {"rows", "dim", "eps"}},
      {"rope", {"tokens", "heads", "head_dim", "theta", "start"}},
      {"softmax", {"rows", "len", "scale"}},
      {"attention", {"tokens", "past", "heads", "kv_heads", "head_dim"}},
      {"swiglu", {"n"}},
  };
  return ops;
}

std::vector<ConfigProblem> validate(const KernelSpec& spec) {
  std::vector<ConfigProblem> problems;
  auto op = kernel_ops().find(spec.op);
  if (op == kernel_ops().end()) {
    problems.push_back({"op", "unknown op '" + spec.op + "' (known: " + known_ops() + ")"});
    return problems;
  }
  const std::vector<std::string>& names = op->second;

  for (const auto& [name, value] : spec.params) {
    (void)value;
    if (std::find(names.begin(), names.end(), name) == names.end())
      problems.push_back({name, "unknown parameter '" + name + "' for op " + spec.op});
  }

  bool sizes_ok = true;
  for (const std::string& name : names) {
    auto it = spec.params.find(name);
    if (it == spec.params.end()) {
      if (!defaults().count(name)) {
        problems.push_back({name, "missing parameter '" + name + "'"});
        sizes_ok = false;
      }
      continue;
    }
    const double v = it->second;
    if (is_real(name)) {
      const bool ok = name == "eps" ? v >= 0 : v > 0;
      if (!ok || std::isinf(v))
        problems.push_back({name, name +
                                      (name == "eps" ? " must be a finite non-negative number"
                                                     : " must be a finite positive number") +
                                      ", got " + number(v)});
      continue;
    }
    const double lowest = may_be_zero(name) ? 0.0 : 1.0;
    if (!(v >= lowest && v <= INT_MAX && v == std::floor(v))) {
      problems.push_back({name, name +
                                    (may_be_zero(name) ? " must be an integer from 0 to "
                                                       : " must be an integer from 1 to ") +
                                    std::to_string(INT_MAX) + ", got " + number(v)});
      sizes_ok = false;
    }
  }
  if (!sizes_ok) return problems;

  if (spec.op == "attention" && iparam(spec, "heads") % iparam(spec, "kv_heads") != 0)
    problems.push_back({"kv_heads", "heads (" + std::to_string(iparam(spec, "heads")) +
                                        ") is not divisible by kv_heads (" +
                                        std::to_string(iparam(spec, "kv_heads")) + ")"});
  // Positions are ints: the last one, start + tokens - 1 (or past + tokens - 1), must be one.
  for (const auto& [offset, op] : {std::pair{"start", "rope"}, std::pair{"past", "attention"}}) {
    if (spec.op != op) continue;
    const int64_t last = int64_t{iparam(spec, offset)} + iparam(spec, "tokens") - 1;
    if (last > INT_MAX)
      problems.push_back({offset, std::string(offset) + " + tokens - 1 = " + std::to_string(last) +
                                      " is past the largest position, " + std::to_string(INT_MAX)});
  }
  if (spec.op == "rope" && iparam(spec, "head_dim") % 2 != 0)
    problems.push_back({"head_dim", "head_dim (" + std::to_string(iparam(spec, "head_dim")) +
                                        ") must be even for rotary embedding"});
  return problems;
}

template <class T>
Tensor<double> run_kernel(const KernelSpec& spec, Backend<T>& backend, DType storage) {
  std::vector<ConfigProblem> problems = validate(spec);
  if (!problems.empty()) throw std::runtime_error(problems[0].message);
  const Inputs<T> input{spec, storage};

  if (spec.op == "matmul") {
    const int n = iparam(spec, "n"), k = iparam(spec, "k"), m = iparam(spec, "m");
    std::vector<T> x = input("x", int64_t{n} * k);
    std::vector<T> w = input("w", int64_t{m} * k, std::sqrt(3.0 / k));
    std::vector<T> y(int64_t{n} * m);
    backend.matmul(x.data(), w.data(), n, k, m, y.data());
    return output({n, m}, y);
  }
  if (spec.op == "rmsnorm") {
    const int rows = iparam(spec, "rows"), dim = iparam(spec, "dim");
    std::vector<T> x = input("x", int64_t{rows} * dim);
    std::vector<T> w = input("w", dim, 0.1, 1.0);
    std::vector<T> y(x.size());
    backend.rmsnorm(x.data(), w.data(), rows, dim, param(spec, "eps"), y.data());
    return output({rows, dim}, y);
  }
  if (spec.op == "rope") {
    const int tokens = iparam(spec, "tokens"), heads = iparam(spec, "heads");
    const int hd = iparam(spec, "head_dim"), start = iparam(spec, "start");
    std::vector<T> x = input("x", int64_t{tokens} * heads * hd);
    std::vector<int> positions(tokens);
    for (int i = 0; i < tokens; ++i) positions[i] = static_cast<int>(int64_t{start} + i);
    backend.rope(x.data(), positions.data(), tokens, heads, hd, param(spec, "theta"));
    return output({tokens, heads, hd}, x);
  }
  if (spec.op == "softmax") {
    const int rows = iparam(spec, "rows"), len = iparam(spec, "len");
    // The default scale 4 spreads the logits enough that the max subtraction and the tail both
    // matter; a larger one overflows exp() in fp16 unless the max is subtracted.
    std::vector<T> x = input("x", int64_t{rows} * len, param(spec, "scale"));
    backend.softmax(x.data(), rows, len);
    return output({rows, len}, x);
  }
  if (spec.op == "attention") {
    const int tokens = iparam(spec, "tokens"), past = iparam(spec, "past");
    const int heads = iparam(spec, "heads"), kv_heads = iparam(spec, "kv_heads");
    // validate() keeps past + tokens within an int.
    const int hd = iparam(spec, "head_dim"), kv_len = past + tokens;
    std::vector<T> q = input("q", int64_t{tokens} * heads * hd);
    std::vector<T> k = input("k", int64_t{kv_len} * kv_heads * hd);
    std::vector<T> v = input("v", int64_t{kv_len} * kv_heads * hd);
    std::vector<int> positions(tokens);
    for (int i = 0; i < tokens; ++i) positions[i] = past + i;
    std::vector<T> probs(int64_t{heads} * tokens * kv_len), out(q.size());
    backend.attention_scores(q.data(), k.data(), positions.data(), tokens, kv_len, heads, kv_heads,
                             hd, 1.0 / std::sqrt(static_cast<double>(hd)), probs.data());
    backend.softmax(probs.data(), heads * tokens, kv_len);
    backend.attention_values(probs.data(), v.data(), tokens, kv_len, heads, kv_heads, hd,
                             out.data());
    return output({tokens, heads, hd}, out);
  }
  // swiglu, the only op left after validate().
  const int n = iparam(spec, "n");
  // Gate scale 4 reaches into both tails of silu, where it is nearly 0 and nearly linear.
  std::vector<T> gate = input("gate", n, 4.0);
  std::vector<T> up = input("up", n);
  std::vector<T> out(n);
  backend.swiglu(gate.data(), up.data(), n, out.data());
  return output({n}, out);
}

template Tensor<double> run_kernel<double>(const KernelSpec&, Backend<double>&, DType);
template Tensor<double> run_kernel<float>(const KernelSpec&, Backend<float>&, DType);

}  // namespace pinmark
