#include "runtime/kernel_case.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "reference.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/random.h"
#include "test_util.h"

namespace pinmark {
namespace {

using test::expect_close;

std::string problems_of(const KernelSpec& spec) {
  std::string s;
  for (const ConfigProblem& p : validate(spec))
    s += (s.empty() ? "" : " | ") + p.key + ": " + p.message;
  return s;
}

TEST(KernelOps, ListsEveryOpAndItsParameters) {
  const auto& ops = kernel_ops();
  ASSERT_EQ(ops.size(), 6u);
  EXPECT_EQ(ops.at("matmul"), (std::vector<std::string>{"n", "k", "m"}));
  EXPECT_EQ(ops.at("rmsnorm"), (std::vector<std::string>{"rows", "dim", "eps"}));
  EXPECT_EQ(ops.at("rope"),
            (std::vector<std::string>{"tokens", "heads", "head_dim", "theta", "start"}));
  EXPECT_EQ(ops.at("softmax"), (std::vector<std::string>{"rows", "len", "scale"}));
  EXPECT_EQ(ops.at("attention"),
            (std::vector<std::string>{"tokens", "past", "heads", "kv_heads", "head_dim"}));
  EXPECT_EQ(ops.at("swiglu"), (std::vector<std::string>{"n"}));
}

TEST(KernelValidate, AcceptsSpecsWithDefaultsLeftOut) {
  EXPECT_EQ(problems_of({"rmsnorm", {{"rows", 3}, {"dim", 16}}, 0}), "");
  EXPECT_EQ(problems_of({"rope", {{"tokens", 3}, {"heads", 2}, {"head_dim", 8}}, 0}), "");
  EXPECT_EQ(problems_of(
                {"attention", {{"tokens", 3}, {"heads", 4}, {"kv_heads", 2}, {"head_dim", 5}}, 0}),
            "");
  EXPECT_EQ(
      problems_of({"attention",
                   {{"tokens", 1}, {"past", 0}, {"heads", 1}, {"kv_heads", 1}, {"head_dim", 1}},
                   0}),
      "");
}

TEST(KernelValidate, Messages) {
  EXPECT_EQ(problems_of({"foo", {}, 0}),
            "op: unknown op 'foo' (known: attention, matmul, rmsnorm, rope, softmax, swiglu)");
  EXPECT_EQ(problems_of({"rmsnorm", {{"rows", 3}}, 0}), "dim: missing parameter 'dim'");
  EXPECT_EQ(problems_of({"rmsnorm", {{"rows", 3}, {"dim", 4}, {"dims", 4}}, 0}),
            "dims: unknown parameter 'dims' for op rmsnorm");
  EXPECT_EQ(problems_of({"matmul", {{"n", 0}, {"k", 2}, {"m", 2}}, 0}),
            "n: n must be an integer from 1 to 2147483647, got 0");
  EXPECT_EQ(problems_of({"matmul", {{"n", 2}, {"k", 2.5}, {"m", 2}}, 0}),
            "k: k must be an integer from 1 to 2147483647, got 2.5");
  EXPECT_EQ(problems_of({"swiglu", {{"n", -3}}, 0}), "n: n must be an integer from 1 to 2147483647, got -3");
  EXPECT_EQ(
      problems_of({"attention",
                   {{"tokens", 2}, {"past", -1}, {"heads", 2}, {"kv_heads", 1}, {"head_dim", 4}},
                   0}),
      "past: past must be an integer from 0 to 2147483647, got -1");
  EXPECT_EQ(problems_of(
                {"attention", {{"tokens", 2}, {"heads", 6}, {"kv_heads", 4}, {"head_dim", 4}}, 0}),
            "kv_heads: heads (6) is not divisible by kv_heads (4)");
  EXPECT_EQ(problems_of({"rope", {{"tokens", 2}, {"heads", 1}, {"head_dim", 7}}, 0}),
            "head_dim: head_dim (7) must be even for rotary embedding");
  EXPECT_EQ(problems_of({"rmsnorm", {{"rows", 1}, {"dim", 4}, {"eps", -1}}, 0}),
            "eps: eps must be a finite non-negative number, got -1");
  EXPECT_EQ(problems_of({"rope", {{"tokens", 2}, {"heads", 1}, {"head_dim", 4}, {"theta", 0}}, 0}),
            "theta: theta must be a finite positive number, got 0");
  EXPECT_EQ(problems_of({"softmax", {}, 0}),
            "rows: missing parameter 'rows' | len: missing parameter 'len'");
}

TEST(RunKernelSpec, RejectsAnInvalidSpec) {
  auto backend = make_cpu_backend<double>();
  EXPECT_THROW(run_kernel<double>({"softmax", {{"rows", 2}}, 0}, *backend), std::runtime_error);
}

template <class T>
class RunKernel : public ::testing::Test {
 protected:
  std::unique_ptr<Backend<T>> backend = make_cpu_backend<T>();
  const double tol = test::kernel_tolerance<T>();

  // The documented inputs, rounded to T and back as run_kernel's are.
  std::vector<double> input(uint64_t seed, const char* name, size_t n, double scale = 1.0,
                            double offset = 0.0) {
    std::vector<double> v = random_tensor(seed, name, n, scale, offset);
    for (double& x : v) x = static_cast<double>(static_cast<T>(x));
    return v;
  }
};
using Types = ::testing::Types<double, float>;
TYPED_TEST_SUITE(RunKernel, Types);

TYPED_TEST(RunKernel, Matmul) {
  const Tensor<double> y =
      run_kernel<TypeParam>({"matmul", {{"n", 7}, {"k", 13}, {"m", 5}}, 9}, *this->backend);
  EXPECT_EQ(y.shape, (Shape{7, 5}));
  const auto x = this->input(9, "x", 7 * 13), w = this->input(9, "w", 5 * 13, std::sqrt(3.0 / 13));
  expect_close(y.data, ref::matmul(x, w, 7, 13, 5), this->tol, "matmul");
}

TYPED_TEST(RunKernel, Rmsnorm) {
  const Tensor<double> y =
      run_kernel<TypeParam>({"rmsnorm", {{"rows", 3}, {"dim", 10}}, 2}, *this->backend);
  EXPECT_EQ(y.shape, (Shape{3, 10}));
  const auto x = this->input(2, "x", 30), w = this->input(2, "w", 10, 0.1, 1.0);
  expect_close(y.data, ref::rmsnorm(x, w, 3, 10, 1e-6), this->tol, "rmsnorm");
}

TYPED_TEST(RunKernel, RopeWithStartPosition) {
  const Tensor<double> y = run_kernel<TypeParam>(
      {"rope", {{"tokens", 3}, {"heads", 2}, {"head_dim", 6}, {"start", 40}, {"theta", 1e6}}, 5},
      *this->backend);
  EXPECT_EQ(y.shape, (Shape{3, 2, 6}));
  expect_close(y.data, ref::rope(this->input(5, "x", 36), {40, 41, 42}, 2, 6, 1e6), this->tol,
               "rope");
}

TYPED_TEST(RunKernel, Softmax) {
  const Tensor<double> y =
      run_kernel<TypeParam>({"softmax", {{"rows", 4}, {"len", 9}}, 1}, *this->backend);
  expect_close(y.data, ref::softmax(this->input(1, "x", 36, 4.0), 4, 9), this->tol, "softmax");
}

TYPED_TEST(RunKernel, AttentionWithPastAndGqa) {
  const int tokens = 3, past = 4, heads = 4, kv_heads = 2, hd = 10, kv_len = past + tokens;
  const Tensor<double> y = run_kernel<TypeParam>({"attention",
                                                  {{"tokens", tokens},
                                                   {"past", past},
                                                   {"heads", heads},
                                                   {"kv_heads", kv_heads},
                                                   {"head_dim", hd}},
                                                  8},
                                                 *this->backend);
  EXPECT_EQ(y.shape, (Shape{tokens, heads, hd}));
  const auto q = this->input(8, "q", tokens * heads * hd);
  const auto k = this->input(8, "k", kv_len * kv_heads * hd);
  const auto v = this->input(8, "v", kv_len * kv_heads * hd);
  const std::vector<double> probs = ref::softmax(
      ref::attention_scores(q, k, {4, 5, 6}, kv_len, heads, kv_heads, hd, 1 / std::sqrt(10.0)),
      heads * tokens, kv_len);
  expect_close(y.data, ref::attention_values(probs, v, tokens, kv_len, heads, kv_heads, hd),
               this->tol, "attention");
}

TYPED_TEST(RunKernel, Swiglu) {
  const Tensor<double> y = run_kernel<TypeParam>({"swiglu", {{"n", 23}}, 3}, *this->backend);
  expect_close(y.data, ref::swiglu(this->input(3, "gate", 23, 4.0), this->input(3, "up", 23)),
               this->tol, "swiglu");
}

TEST(RunKernelSpec, SeedSelectsTheInputs) {
  auto backend = make_cpu_backend<double>();
  const KernelSpec a{"swiglu", {{"n", 8}}, 1}, b{"swiglu", {{"n", 8}}, 2};
  EXPECT_EQ(run_kernel<double>(a, *backend).data, run_kernel<double>(a, *backend).data);
  EXPECT_NE(run_kernel<double>(a, *backend).data, run_kernel<double>(b, *backend).data);
}

}  // namespace
}  // namespace pinmark
