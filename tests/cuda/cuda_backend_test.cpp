// The CUDA backend against independent fp64 computations (tests/runtime/reference.h), on sizes
// that are multiples of no tile (1, 7, 33, 127, 300), head sizes 64 to 256, one token and long
// prompts; then run-to-run bitwise determinism. Every test skips on a machine without a CUDA
// device, so the suite passes where CUDA is built but no GPU is present (CI).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/cuda/cuda_backend.h"
#include "runtime/cuda/device_info.h"
#include "runtime/dtype.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/model_config.h"
#include "runtime/rounding_backend.h"
#include "runtime/storing_backend.h"
#include "runtime/target.h"
#include "runtime/weights.h"
#include "tests/runtime/reference.h"
#include "tests/runtime/resident_backend.h"
#include "tests/runtime/test_util.h"

namespace pinmark {
namespace {

using test::expect_close;
using test::make_input;

// The fp32 kernels' tolerance against fp64, relative to the largest expected value.
constexpr double kFp32 = 1e-5;

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// x[i] rounded to `storage` and back, so that the reference sees the operands the tensor
// cores see.
std::vector<float> rounded(std::vector<float> v, DType storage) {
  for (float& x : v) x = round_to(storage, x);
  return v;
}

std::vector<int> iota_positions(int n, int first) {
  std::vector<int> p(n);
  for (int i = 0; i < n; ++i) p[i] = first + i;
  return p;
}

class CudaTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device on this machine";
    backend = make_cuda_backend(CudaPrecision::fp32);
  }
  std::unique_ptr<Backend<float>> backend;
};

// ---------------------------------------------------------------------------------------------
// Matrix products, every precision

struct MatmulCase {
  CudaPrecision precision;
  const char* name;
  double tolerance;  // operands as generated (fp32), against fp64
};

// Names the case in test listings instead of dumping the struct's bytes.
void PrintTo(const MatmulCase& c, std::ostream* os) { *os << c.name; }

class CudaMatmulTest : public testing::TestWithParam<MatmulCase> {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device on this machine";
    backend = make_cuda_backend(GetParam().precision);
  }
  std::unique_ptr<Backend<float>> backend;
};

struct Shape {
  int n, k, m;
};
const Shape kShapes[] = {{1, 7, 33}, {7, 127, 33}, {33, 1, 127}, {3, 300, 65}, {127, 256, 7},
                         {1, 4097, 3}};

TEST_P(CudaMatmulTest, MatmulMatchesFp64) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " k=" << s.k << " m=" << s.m);
    auto x = make_input<float>("x", s.n * s.k);
    auto w = make_input<float>("w", s.m * s.k, std::sqrt(3.0 / s.k));
    std::vector<float> y(s.n * s.m);
    backend->matmul(x.t.data(), w.t.data(), s.n, s.k, s.m, y.data());
    expect_close(y, ref::matmul(x.d, w.d, s.n, s.k, s.m), GetParam().tolerance, "matmul");
  }
}

TEST_P(CudaMatmulTest, MatmulBiasMatchesFp64) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " k=" << s.k << " m=" << s.m);
    auto x = make_input<float>("x", s.n * s.k);
    auto w = make_input<float>("w", s.m * s.k, std::sqrt(3.0 / s.k));
    auto b = make_input<float>("b", s.m, 0.5);
    std::vector<float> y(s.n * s.m);
    backend->matmul_bias(x.t.data(), w.t.data(), b.t.data(), s.n, s.k, s.m, y.data());
    expect_close(y, ref::linear(x.d, w.d, b.d, s.n, s.k, s.m), GetParam().tolerance,
                 "matmul_bias");
  }
}

// Operands already in the narrow type (what the rounding backend passes on): the conversion
// is exact, the products are exact in fp32, and only the fp32 accumulation is left.
TEST_P(CudaMatmulTest, RepresentableOperandsLeaveOnlyFp32Accumulation) {
  const CudaPrecision p = GetParam().precision;
  if (p != CudaPrecision::bf16 && p != CudaPrecision::fp16) GTEST_SKIP() << "16-bit only";
  const DType storage = p == CudaPrecision::bf16 ? DType::bf16 : DType::f16;
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " k=" << s.k << " m=" << s.m);
    auto x = rounded(make_input<float>("x", s.n * s.k).t, storage);
    auto w = rounded(make_input<float>("w", s.m * s.k, std::sqrt(3.0 / s.k)).t, storage);
    std::vector<float> y(s.n * s.m);
    backend->matmul(x.data(), w.data(), s.n, s.k, s.m, y.data());
    expect_close(y, ref::matmul(widen(x), widen(w), s.n, s.k, s.m), 1e-4, "matmul");
  }
}

TEST_P(CudaMatmulTest, BitwiseReproducibleRunToRun) {
  auto x = make_input<float>("x", 127 * 300);
  auto w = make_input<float>("w", 65 * 300, 0.1);
  std::vector<float> first(127 * 65), again(127 * 65), fresh(127 * 65);
  backend->matmul(x.t.data(), w.t.data(), 127, 300, 65, first.data());
  backend->matmul(x.t.data(), w.t.data(), 127, 300, 65, again.data());
  make_cuda_backend(GetParam().precision)
      ->matmul(x.t.data(), w.t.data(), 127, 300, 65, fresh.data());
  EXPECT_EQ(first, again);
  EXPECT_EQ(first, fresh);
}

// A held weight (uploaded once, converted once to the 16-bit type) gives the bits of the
// weight copied per call, with and without a bias; a call with another shape for the same
// pointer, and every call after release_matrix, reads the host memory again.
TEST_P(CudaMatmulTest, HeldWeightGivesTheBitsOfTheCopiedOne) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " k=" << s.k << " m=" << s.m);
    auto x = make_input<float>("x", s.n * s.k);
    auto w = make_input<float>("w", s.m * s.k, std::sqrt(3.0 / s.k));
    auto b = make_input<float>("b", s.m, 0.5);
    auto copied = make_cuda_backend(GetParam().precision);
    std::vector<float> want(s.n * s.m), want_b(s.n * s.m), y(s.n * s.m), y_b(s.n * s.m);
    copied->matmul(x.t.data(), w.t.data(), s.n, s.k, s.m, want.data());
    copied->matmul_bias(x.t.data(), w.t.data(), b.t.data(), s.n, s.k, s.m, want_b.data());
    backend->hold_matrix(w.t.data(), s.k, s.m, MatrixRole::input_projection);
    backend->matmul(x.t.data(), w.t.data(), s.n, s.k, s.m, y.data());
    backend->matmul_bias(x.t.data(), w.t.data(), b.t.data(), s.n, s.k, s.m, y_b.data());
    EXPECT_EQ(y, want);
    EXPECT_EQ(y_b, want_b);
    if (s.m > 1) {
      std::vector<float> part(s.n * (s.m - 1)), part_want(part.size());
      backend->matmul(x.t.data(), w.t.data(), s.n, s.k, s.m - 1, part.data());
      copied->matmul(x.t.data(), w.t.data(), s.n, s.k, s.m - 1, part_want.data());
      EXPECT_EQ(part, part_want) << "the held pointer with another shape";
    }
    backend->release_matrix(w.t.data());
    for (float& v : w.t) v = -v;
    copied->matmul(x.t.data(), w.t.data(), s.n, s.k, s.m, want.data());
    backend->matmul(x.t.data(), w.t.data(), s.n, s.k, s.m, y.data());
    EXPECT_EQ(y, want) << "after release";
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, CudaMatmulTest,
                         testing::Values(MatmulCase{CudaPrecision::fp32, "fp32", kFp32},
                                         MatmulCase{CudaPrecision::tf32, "tf32", 2e-3},
                                         MatmulCase{CudaPrecision::bf16, "bf16", 2e-2},
                                         MatmulCase{CudaPrecision::fp16, "fp16", 4e-3}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------
// Tensor parallelism over two GPUs, against the single-GPU backend's products of each rank's
// share, bit for bit: an input projection's outputs are each rank's rows, gathered; an output
// projection's are the two ranks' partial sums, each rounded to the storage type (bf16, fp16;
// fp32 otherwise) and added in it, as NCCL's all-reduce adds them. Skips without two devices.

class CudaTensorParallelTest : public testing::TestWithParam<MatmulCase> {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device on this machine";
    const std::string why = cuda_tp_unavailable(2);
    if (!why.empty()) GTEST_SKIP() << why;
    tp = make_cuda_tp_backend(GetParam().precision, 2);
    one = make_cuda_backend(GetParam().precision);
  }
  // Holds w in `role`, then: matmul gives want, matmul_bias want_b, a second matmul the same
  // bits, and the product is within `tolerance` of fp64.
  void expect_held_products(MatrixRole role, const test::Input<float>& x,
                            const test::Input<float>& w, const test::Input<float>& b,
                            const Shape& s, const std::vector<float>& want,
                            const std::vector<float>& want_b, double tolerance) {
    tp->hold_matrix(w.t.data(), s.k, s.m, role);
    std::vector<float> y(s.n * s.m), y_b(s.n * s.m), again(s.n * s.m);
    tp->matmul(x.t.data(), w.t.data(), s.n, s.k, s.m, y.data());
    tp->matmul_bias(x.t.data(), w.t.data(), b.t.data(), s.n, s.k, s.m, y_b.data());
    tp->matmul(x.t.data(), w.t.data(), s.n, s.k, s.m, again.data());
    tp->release_matrix(w.t.data());
    EXPECT_EQ(y, want);
    EXPECT_EQ(y_b, want_b);
    EXPECT_EQ(again, y) << "not reproducible run to run";
    expect_close(y, ref::matmul(x.d, w.d, s.n, s.k, s.m), tolerance, "against fp64");
  }
  DType reduced() const {
    const CudaPrecision p = GetParam().precision;
    return p == CudaPrecision::bf16 ? DType::bf16 : p == CudaPrecision::fp16 ? DType::f16 : DType::f32;
  }
  std::unique_ptr<Backend<float>> tp, one;
};

// Columns [first, last) of a row-major [rows, cols] matrix.
std::vector<float> column_slice(const std::vector<float>& a, int rows, int cols, int first,
                                int last) {
  std::vector<float> out;
  for (int r = 0; r < rows; ++r)
    out.insert(out.end(), a.begin() + r * cols + first, a.begin() + r * cols + last);
  return out;
}

TEST_P(CudaTensorParallelTest, InputProjectionIsEachRanksRowsGathered) {
  for (const Shape& s : {Shape{1, 300, 65}, Shape{7, 127, 33}, Shape{33, 64, 128}}) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " k=" << s.k << " m=" << s.m);
    auto x = make_input<float>("x", s.n * s.k);
    auto w = make_input<float>("w", s.m * s.k, std::sqrt(3.0 / s.k));
    auto b = make_input<float>("b", s.m, 0.5);
    const int split = (s.m + 1) / 2;
    std::vector<float> top(s.n * split), bottom(s.n * (s.m - split));
    one->matmul(x.t.data(), w.t.data(), s.n, s.k, split, top.data());
    one->matmul(x.t.data(), w.t.data() + split * s.k, s.n, s.k, s.m - split, bottom.data());
    std::vector<float> want(s.n * s.m), want_b(s.n * s.m);
    for (int i = 0; i < s.n; ++i)
      for (int c = 0; c < s.m; ++c) {
        want[i * s.m + c] = c < split ? top[i * split + c] : bottom[i * (s.m - split) + c - split];
        want_b[i * s.m + c] = want[i * s.m + c] + b.t[c];
      }
    expect_held_products(MatrixRole::input_projection, x, w, b, s, want, want_b,
                         GetParam().tolerance);
  }
}

TEST_P(CudaTensorParallelTest, OutputProjectionIsTheSumOfTheRanksPartialProducts) {
  for (const Shape& s : {Shape{1, 300, 65}, Shape{7, 127, 33}, Shape{33, 128, 64}}) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " k=" << s.k << " m=" << s.m);
    auto x = make_input<float>("x", s.n * s.k);
    auto w = make_input<float>("w", s.m * s.k, std::sqrt(3.0 / s.k));
    auto b = make_input<float>("b", s.m, 0.5);
    const int split = (s.k + 1) / 2;
    const std::vector<float> x0 = column_slice(x.t, s.n, s.k, 0, split);
    const std::vector<float> x1 = column_slice(x.t, s.n, s.k, split, s.k);
    const std::vector<float> w0 = column_slice(w.t, s.m, s.k, 0, split);
    const std::vector<float> w1 = column_slice(w.t, s.m, s.k, split, s.k);
    std::vector<float> p0(s.n * s.m), p1(s.n * s.m);
    one->matmul(x0.data(), w0.data(), s.n, split, s.m, p0.data());
    one->matmul(x1.data(), w1.data(), s.n, s.k - split, s.m, p1.data());
    std::vector<float> want(s.n * s.m), want_b(s.n * s.m);
    for (int i = 0; i < s.n * s.m; ++i) {
      want[i] = round_to(reduced(), round_to(reduced(), p0[i]) + round_to(reduced(), p1[i]));
      want_b[i] = want[i] + b.t[i % s.m];
    }
    // The partials' rounding adds at most one storage-type rounding to the sum.
    expect_held_products(MatrixRole::output_projection, x, w, b, s, want, want_b,
                         GetParam().tolerance + unit_roundoff(reduced()) * 2);
  }
}

// A matrix with no halves (one row as an input projection, one column as an output
// projection) stays whole on device 0: the single-GPU product, bit for bit.
TEST_P(CudaTensorParallelTest, AMatrixWithNoHalvesStaysWhole) {
  auto w = make_input<float>("w", 9, 0.3);
  for (const auto& [role, k, m] : {std::tuple{MatrixRole::input_projection, 9, 1},
                                   std::tuple{MatrixRole::output_projection, 1, 9}}) {
    auto xk = make_input<float>("xk", 7 * k);
    std::vector<float> y(7 * m), want(7 * m);
    tp->hold_matrix(w.t.data(), k, m, role);
    tp->matmul(xk.t.data(), w.t.data(), 7, k, m, y.data());
    tp->release_matrix(w.t.data());
    one->matmul(xk.t.data(), w.t.data(), 7, k, m, want.data());
    EXPECT_EQ(y, want) << "k " << k << ", m " << m;
  }
}

// A product by a matrix that was never announced runs whole on device 0, as make_cuda_backend's.
TEST_P(CudaTensorParallelTest, UnannouncedMatricesRunWholeOnOneDevice) {
  auto x = make_input<float>("x", 7 * 127);
  auto w = make_input<float>("w", 33 * 127, 0.1);
  std::vector<float> y(7 * 33), want(7 * 33);
  tp->matmul(x.t.data(), w.t.data(), 7, 127, 33, y.data());
  one->matmul(x.t.data(), w.t.data(), 7, 127, 33, want.data());
  EXPECT_EQ(y, want);
}

INSTANTIATE_TEST_SUITE_P(Precisions, CudaTensorParallelTest,
                         testing::Values(MatmulCase{CudaPrecision::fp32, "fp32", kFp32},
                                         MatmulCase{CudaPrecision::bf16, "bf16", 2e-2},
                                         MatmulCase{CudaPrecision::fp16, "fp16", 4e-3}),
                         [](const auto& info) { return std::string(info.param.name); });

// Where it cannot run (one GPU, none, no NCCL) it says why, and making one throws.
TEST(CudaTensorParallelAbsentTest, TooFewDevicesIsAReasonNotACrash) {
  if (cuda_tp_unavailable(2).empty()) GTEST_SKIP() << "two devices and NCCL are present";
  EXPECT_THROW(make_cuda_tp_backend(CudaPrecision::fp32, 2), std::runtime_error);
}

// fp32 pedantic must not quietly run on TF32: TF32 keeps 10 mantissa bits, an error near 1e-3
// on these inputs, where fp32's is near 1e-7.
TEST_F(CudaTest, Fp32MatmulIsNotTf32) {
  const int n = 33, k = 300, m = 33;
  auto x = make_input<float>("x", n * k);
  auto w = make_input<float>("w", m * k, 0.1);
  std::vector<float> y(n * m);
  backend->matmul(x.t.data(), w.t.data(), n, k, m, y.data());
  EXPECT_LT(test::relative_l2(widen(y), ref::matmul(x.d, w.d, n, k, m)), 1e-5);
}

// ---------------------------------------------------------------------------------------------
// Row-wise ops

const int kDims[] = {1, 7, 33, 127, 300, 4097};

TEST_F(CudaTest, Embed) {
  for (int dim : kDims) {
    const int vocab = 50;
    auto table = make_input<float>("table", vocab * dim);
    // Fewer tokens than the rows up to the largest (their own rows cross), then more (the
    // table's first rows cross), then one (a decode step).
    for (const std::vector<int>& tokens : std::vector<std::vector<int>>{
             {3, 49, 0, 3, 17, 8, 22}, {2, 0, 1, 2, 2, 0, 1, 1, 0}, {41}}) {
      std::vector<float> out(tokens.size() * dim);
      backend->embed(table.t.data(), tokens.data(), static_cast<int>(tokens.size()), dim,
                     out.data());
      const auto expected = ref::embed(table.d, tokens, dim);
      EXPECT_EQ(widen(out), expected) << "dim " << dim << ", " << tokens.size() << " tokens";
    }
  }
}

TEST_F(CudaTest, Rmsnorm) {
  for (int dim : kDims)
    for (int rows : {1, 7}) {
      SCOPED_TRACE(testing::Message() << "rows=" << rows << " dim=" << dim);
      auto x = make_input<float>("x", rows * dim, 2.0, 0.3);
      auto w = make_input<float>("w", dim, 0.1, 1.0);
      std::vector<float> y(rows * dim);
      backend->rmsnorm(x.t.data(), w.t.data(), rows, dim, 1e-5, y.data());
      expect_close(y, ref::rmsnorm(x.d, w.d, rows, dim, 1e-5), kFp32, "rmsnorm");
      backend->rmsnorm_plus_one(x.t.data(), w.t.data(), rows, dim, 1e-6, y.data());
      expect_close(y, ref::rmsnorm_plus_one(x.d, w.d, rows, dim, 1e-6), kFp32,
                   "rmsnorm_plus_one");
    }
}

TEST_F(CudaTest, Layernorm) {
  for (int dim : kDims) {
    if (dim == 1) continue;  // zero variance: the output is the bias alone
    for (int rows : {1, 7}) {
      SCOPED_TRACE(testing::Message() << "rows=" << rows << " dim=" << dim);
      auto x = make_input<float>("x", rows * dim, 2.0, 0.7);  // non-zero mean
      auto w = make_input<float>("w", dim, 0.1, 1.0);
      auto b = make_input<float>("b", dim, 0.2);
      std::vector<float> y(rows * dim);
      backend->layernorm(x.t.data(), w.t.data(), b.t.data(), rows, dim, 1e-5, y.data());
      expect_close(y, ref::layernorm(x.d, w.d, b.d, rows, dim, 1e-5), kFp32, "layernorm");
    }
  }
}

TEST_F(CudaTest, Softmax) {
  for (int len : kDims)
    for (int rows : {1, 7}) {
      SCOPED_TRACE(testing::Message() << "rows=" << rows << " len=" << len);
      auto x = make_input<float>("x", rows * len, 6.0, 40.0);  // max subtraction matters
      std::vector<float> y = x.t;
      backend->softmax(y.data(), rows, len);
      expect_close(y, ref::softmax(x.d, rows, len), kFp32, "softmax");
    }
}

TEST_F(CudaTest, SoftmaxMaskedEntriesAndFullyMaskedRows) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {1.0f, -inf, 2.0f, -inf, -inf, -inf, -inf, -inf};
  backend->softmax(x.data(), 2, 4);
  const double e = std::exp(-1.0);
  expect_close(x, {e / (1 + e), 0, 1 / (1 + e), 0, 0, 0, 0, 0}, kFp32, "softmax");
  for (int j = 4; j < 8; ++j) EXPECT_EQ(x[j], 0.0f);
}

// ---------------------------------------------------------------------------------------------
// Rotary embedding and attention

const int kHeadDims[] = {64, 80, 128, 256};

TEST_F(CudaTest, Rope) {
  const std::vector<int> positions = {0, 1, 7, 299, 4095, 131071};
  const int n = static_cast<int>(positions.size()), heads = 3;
  for (int hd : kHeadDims) {
    SCOPED_TRACE(testing::Message() << "head_dim=" << hd);
    auto x = make_input<float>("x", n * heads * hd);
    std::vector<float> y = x.t;
    backend->rope(y.data(), positions.data(), n, heads, hd, 500000.0);
    expect_close(y, ref::rope(x.d, positions, heads, hd, 500000.0), kFp32, "rope");
    const auto inv_freq = ref::scaled_inv_freq("linear", 10000.0, hd, 4.0, 0, 0, 0);
    y = x.t;
    backend->rope_freqs(y.data(), positions.data(), n, heads, hd, inv_freq.data(), 1.0);
    expect_close(y, ref::rope_with(x.d, positions, heads, hd, inv_freq), kFp32, "rope_freqs");
    // yarn's and longrope's attention factor multiplies cos and sin: the rotation, scaled.
    y = x.t;
    backend->rope_freqs(y.data(), positions.data(), n, heads, hd, inv_freq.data(), 1.25);
    std::vector<double> scaled = ref::rope_with(x.d, positions, heads, hd, inv_freq);
    for (double& v : scaled) v *= 1.25;
    expect_close(y, scaled, kFp32, "rope_freqs with attention scaling 1.25");
  }
}

struct AttentionShape {
  int n, kv_len, first_position;
};
// One decode token after a 299-token prompt, a short prompt, a chunk continuing a long one.
const AttentionShape kAttention[] = {{1, 300, 299}, {7, 7, 0}, {33, 300, 267}, {1, 1, 0}};

TEST_F(CudaTest, AttentionScoresWithGqaAndCausalMask) {
  const int heads = 8, kv_heads = 2;
  for (int hd : kHeadDims)
    for (const AttentionShape& a : kAttention) {
      SCOPED_TRACE(testing::Message() << "head_dim=" << hd << " n=" << a.n
                                      << " kv_len=" << a.kv_len);
      const auto positions = iota_positions(a.n, a.first_position);
      auto q = make_input<float>("q", a.n * heads * hd);
      auto k = make_input<float>("k", a.kv_len * kv_heads * hd);
      const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
      std::vector<float> s(heads * a.n * a.kv_len);
      backend->attention_scores(q.t.data(), k.t.data(), positions.data(), a.n, a.kv_len, heads,
                                kv_heads, hd, scale, s.data());
      expect_close(s,
                   ref::attention_scores(q.d, k.d, positions, a.kv_len, heads, kv_heads, hd,
                                         static_cast<float>(scale)),
                   kFp32, "attention_scores");
    }
}

TEST_F(CudaTest, ScoreModSoftcapAndSlidingWindow) {
  const int heads = 4, kv_heads = 1, hd = 80;
  for (const AttentionShape& a : kAttention)
    for (int window : {0, 1, 5, 128}) {
      for (double cap : {0.0, 50.0, 0.5}) {
        SCOPED_TRACE(testing::Message() << "n=" << a.n << " kv_len=" << a.kv_len
                                        << " window=" << window << " cap=" << cap);
        const auto positions = iota_positions(a.n, a.first_position);
        auto q = make_input<float>("q", a.n * heads * hd, 3.0);
        auto k = make_input<float>("k", a.kv_len * kv_heads * hd);
        std::vector<float> s(heads * a.n * a.kv_len);
        backend->attention_scores(q.t.data(), k.t.data(), positions.data(), a.n, a.kv_len, heads,
                                  kv_heads, hd, 1.0, s.data());
        backend->score_mod(s.data(), positions.data(), a.n, a.kv_len, heads, cap, window);
        expect_close(s,
                     ref::attention_scores_full(q.d, k.d, positions, a.kv_len, heads, kv_heads,
                                                hd, 1.0, cap, window),
                     kFp32, "score_mod");
      }
    }
}

TEST_F(CudaTest, AttentionValues) {
  const int heads = 8, kv_heads = 2;
  for (int hd : kHeadDims)
    for (const AttentionShape& a : kAttention) {
      SCOPED_TRACE(testing::Message() << "head_dim=" << hd << " n=" << a.n
                                      << " kv_len=" << a.kv_len);
      auto probs = make_input<float>("p", heads * a.n * a.kv_len, 0.5, 0.5);
      auto v = make_input<float>("v", a.kv_len * kv_heads * hd, 1.0, 0.5);
      std::vector<float> out(a.n * heads * hd);
      backend->attention_values(probs.t.data(), v.t.data(), a.n, a.kv_len, heads, kv_heads, hd,
                                out.data());
      expect_close(out, ref::attention_values(probs.d, v.d, a.n, a.kv_len, heads, kv_heads, hd),
                   kFp32, "attention_values");
    }
}

// Each output sums its terms one at a time in key order, in fp32 without fused multiply-adds:
// the bits of that plain loop on the host (IEEE fp32 multiplies and adds round alike), over
// contexts that are and are not multiples of the kernel's tiles of keys, head sizes that fill
// its blocks' dimensions or leave part of them (some not a multiple of 4, so copied a value at
// a time), and groups of query heads a KV head that leave part of a block's 8 heads (1, 2, 7),
// fill it (8) or take more than one block (12, 16).
TEST_F(CudaTest, AttentionValuesSumTheKeysInOrder) {
  struct Heads {
    int heads, kv_heads;
  };
  const int n = 2;
  for (const Heads shape : {Heads{4, 2}, Heads{3, 3}, Heads{28, 4}, Heads{16, 2}, Heads{32, 2},
                            Heads{12, 1}})
  for (int hd : {6, 16, 50, 64, 96, 80, 256, 320})
  for (int kv_len : {1, 15, 16, 17, 64, 65, 300, 4099}) {
    const int heads = shape.heads, kv_heads = shape.kv_heads;
    if ((hd > 96 || kv_len > 300) && heads != 4) continue;  // the long ones once
    SCOPED_TRACE(testing::Message() << "heads=" << heads << "/" << kv_heads << " head_dim=" << hd
                                    << " kv_len=" << kv_len);
    const std::vector<float> probs = make_input<float>("p", heads * n * kv_len, 0.5, 0.5).t;
    const std::vector<float> v = make_input<float>("v", kv_len * kv_heads * hd).t;
    std::vector<float> out(n * heads * hd), plain(out.size());
    backend->attention_values(probs.data(), v.data(), n, kv_len, heads, kv_heads, hd,
                              out.data());
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < heads; ++h)
        for (int d = 0; d < hd; ++d) {
          float sum = 0.0f;
          for (int j = 0; j < kv_len; ++j) {
            const float term = probs[(int64_t{h} * n + i) * kv_len + j] *
                               v[(int64_t{j} * kv_heads + h / (heads / kv_heads)) * hd + d];
            sum = sum + term;
          }
          plain[(int64_t{i} * heads + h) * hd + d] = sum;
        }
    EXPECT_EQ(out, plain);
  }
}

// Each score is the plain loop over head_dim in fp32, a multiply then an add, then the scale
// (head sizes odd and even, whose staged rows are padded differently):
// whether the keys are staged in shared memory (head sizes and groups that fit) or read where
// they are (MLA's 576-wide heads, the largest groups), and whatever the tile's share of keys.
TEST_F(CudaTest, AttentionScoresHaveThePlainLoopsBits) {
  struct Heads {
    int heads, kv_heads;
  };
  const int n = 2;
  for (const Heads shape : {Heads{4, 2}, Heads{3, 3}, Heads{28, 4}, Heads{16, 1}, Heads{32, 2},
                            Heads{12, 1}})
  for (int hd : {5, 6, 16, 33, 50, 64, 96, 128, 256, 320, 576})
  for (int kv_len : {1, 31, 32, 33, 300, 4099}) {
    const int heads = shape.heads, kv_heads = shape.kv_heads;
    if ((hd > 128 || kv_len > 300) && heads != 4 && heads != 16) continue;  // the long ones less
    if (kv_len < n) continue;
    SCOPED_TRACE(testing::Message() << "heads=" << heads << "/" << kv_heads << " head_dim=" << hd
                                    << " kv_len=" << kv_len);
    const std::vector<float> q = make_input<float>("q", n * heads * hd).t;
    const std::vector<float> k = make_input<float>("k", kv_len * kv_heads * hd).t;
    // The first query does not see the last key.
    const std::vector<int> positions = iota_positions(n, kv_len - n);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    std::vector<float> scores(int64_t{heads} * n * kv_len), plain(scores.size());
    backend->attention_scores(q.data(), k.data(), positions.data(), n, kv_len, heads, kv_heads,
                              hd, scale, scores.data());
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < kv_len; ++j) {
          float& out = plain[(int64_t{h} * n + i) * kv_len + j];
          if (j > positions[i]) {
            out = -std::numeric_limits<float>::infinity();
            continue;
          }
          float dot = 0.0f;
          for (int d = 0; d < hd; ++d) {
            const float term = q[(int64_t{i} * heads + h) * hd + d] *
                               k[(int64_t{j} * kv_heads + h / (heads / kv_heads)) * hd + d];
            dot = dot + term;
          }
          out = dot * scale;
        }
    EXPECT_EQ(scores, plain);
  }
}

TEST_F(CudaTest, GroupsThatDoNotDivideAreAnErrorNotACrash) {
  std::vector<float> q(3 * 64), k(2 * 64), s(3);
  const int position = 0;
  EXPECT_THROW(
      backend->attention_scores(q.data(), k.data(), &position, 1, 1, 3, 2, 64, 1.0, s.data()),
      std::runtime_error);
}

// ---------------------------------------------------------------------------------------------
// Element-wise ops

const int64_t kLengths[] = {1, 7, 33, 127, 100003};

// DeepSeek-V3.2's indexer: the CPU reference's sums in its order, so within fp32 of fp64, bit
// for bit run to run, a NaN kept, later keys masked.
// Gemma 3n's ops against the CPU fp64 ones, and the same bits on a second call.
TEST_F(CudaTest, Gemma3nOps) {
  auto cpu = make_cpu_backend<double>();
  const int n = 5, dim = 300, in = 4, out = 4;
  auto x = make_input<float>("x", in * n * dim, 2.0);
  auto c = make_input<float>("c", n * out * in, 1.5);
  std::vector<float> y(out * n * dim), again(y.size());
  std::vector<double> expected(y.size());
  backend->mix_streams(x.t.data(), c.t.data(), n, in, out, dim, y.data());
  cpu->mix_streams(x.d.data(), c.d.data(), n, in, out, dim, expected.data());
  expect_close(y, expected, kFp32, "mix_streams");
  backend->mix_streams(x.t.data(), c.t.data(), n, in, out, dim, again.data());
  EXPECT_EQ(y, again);

  auto ref = make_input<float>("ref", n * dim, 0.5);
  y.assign(n * dim, 0);
  expected.assign(n * dim, 0);
  backend->rescale_rms(x.t.data(), ref.t.data(), n, dim, 1e-5, y.data());
  cpu->rescale_rms(x.d.data(), ref.d.data(), n, dim, 1e-5, expected.data());
  expect_close(y, expected, kFp32, "rescale_rms");
  // A row below the floor is divided by sqrt(floor), not by its own size.
  std::vector<float> tiny(dim, 1e-4f), scaled(dim);
  std::vector<double> tiny_d(dim, static_cast<double>(1e-4f)), scaled_d(dim);
  backend->rescale_rms(tiny.data(), ref.t.data(), 1, dim, 1e-5, scaled.data());
  cpu->rescale_rms(tiny_d.data(), ref.d.data(), 1, dim, 1e-5, scaled_d.data());
  expect_close(scaled, scaled_d, kFp32, "rescale_rms floor");

  auto w = make_input<float>("w", dim, 1.0);
  backend->scale_columns(x.t.data(), w.t.data(), n, dim, y.data());
  cpu->scale_columns(x.d.data(), w.d.data(), n, dim, expected.data());
  expect_close(y, expected, kFp32, "scale_columns");

  y.assign(x.t.begin(), x.t.begin() + n * dim);
  std::vector<double> yd(x.d.begin(), x.d.begin() + n * dim);
  backend->gaussian_topk(y.data(), n, dim, 1.6448536269514722);
  cpu->gaussian_topk(yd.data(), n, dim, 1.6448536269514722);
  expect_close(y, yd, kFp32, "gaussian_topk");
  y[7] = std::numeric_limits<float>::quiet_NaN();
  backend->gaussian_topk(y.data(), n, dim, 0.5);
  EXPECT_TRUE(std::isnan(y[7]));
}

TEST_F(CudaTest, SoftmaxPool) {
  const int n = 5, slots = 8, dim = 33;
  auto kv = make_input<float>("kv", n * slots * dim, 2.0);
  auto gate = make_input<float>("gate", n * slots * dim, 3.0);
  for (int s = 0; s < 4; ++s)
    for (int d = 0; d < dim; ++d) {
      gate.t[s * dim + d] = -INFINITY;
      gate.d[s * dim + d] = -INFINITY;
    }
  std::vector<float> y(n * dim);
  std::vector<double> expected(y.size());
  auto cpu = make_cpu_backend<double>();
  backend->softmax_pool(kv.t.data(), gate.t.data(), n, slots, dim, y.data());
  cpu->softmax_pool(kv.d.data(), gate.d.data(), n, slots, dim, expected.data());
  expect_close(y, expected, kFp32, "softmax_pool");
}

TEST_F(CudaTest, IndexerScores) {
  const int n = 5, kv_len = 37, heads = 6, dim = 12;
  auto q = make_input<float>("q", n * heads * dim);
  auto k = make_input<float>("k", kv_len * dim);
  auto w = make_input<float>("w", n * heads, 2.0);
  const std::vector<int> positions = {3, 9, 20, 35, 36};
  std::vector<float> out(n * kv_len), again(n * kv_len);
  backend->indexer_scores(q.t.data(), k.t.data(), w.t.data(), positions.data(), n, kv_len, heads,
                          dim, 0.3, 0.4, out.data());
  std::vector<double> expected(n * kv_len);
  auto cpu = make_cpu_backend<double>();
  cpu->indexer_scores(q.d.data(), k.d.data(), w.d.data(), positions.data(), n, kv_len, heads, dim,
                      0.3, 0.4, expected.data());
  for (int i = 0; i < n; ++i)
    for (int j = positions[i] + 1; j < kv_len; ++j) {
      ASSERT_TRUE(std::isinf(out[i * kv_len + j]) && out[i * kv_len + j] < 0) << i << ", " << j;
      out[i * kv_len + j] = 0;
      expected[i * kv_len + j] = 0;
    }
  expect_close(out, expected, kFp32, "indexer_scores");
  backend->indexer_scores(q.t.data(), k.t.data(), w.t.data(), positions.data(), n, kv_len, heads,
                          dim, 0.3, 0.4, again.data());
  for (int i = 0; i < n; ++i)
    for (int j = positions[i] + 1; j < kv_len; ++j) again[i * kv_len + j] = 0;
  EXPECT_EQ(out, again);
  q.t[0] = std::numeric_limits<float>::quiet_NaN();
  backend->indexer_scores(q.t.data(), k.t.data(), w.t.data(), positions.data(), n, kv_len, heads,
                          dim, 0.3, 0.4, out.data());
  EXPECT_TRUE(std::isnan(out[0]));
}

TEST_F(CudaTest, ElementWise) {
  for (int64_t n : kLengths) {
    SCOPED_TRACE(testing::Message() << "n=" << n);
    auto gate = make_input<float>("gate", n, 8.0);  // both tails of silu and gelu
    auto up = make_input<float>("up", n);
    std::vector<float> out(n);

    backend->swiglu(gate.t.data(), up.t.data(), n, out.data());
    expect_close(out, ref::swiglu(gate.d, up.d), kFp32, "swiglu");

    // gate up to 8 and up to 1 reach the limit 0.5 on both sides of up and the top of gate.
    backend->clamped_swiglu(gate.t.data(), up.t.data(), n, 1.702, 0.5, out.data());
    expect_close(out, ref::clamped_swiglu(gate.d, up.d, 1.702, 0.5), kFp32, "clamped_swiglu");
    if (n > 2) {
      std::vector<float> g = gate.t, u = up.t;
      g[0] = std::numeric_limits<float>::quiet_NaN();
      u[1] = std::numeric_limits<float>::quiet_NaN();
      backend->clamped_swiglu(g.data(), u.data(), n, 1.702, 0.5, out.data());
      EXPECT_TRUE(std::isnan(out[0]) && std::isnan(out[1])) << "a NaN was clamped away";
    }

    for (bool tanh : {false, true}) {
      backend->gelu(gate.t.data(), n, tanh, out.data());
      expect_close(out, ref::gelu(gate.d, tanh), kFp32, tanh ? "gelu tanh" : "gelu");
      backend->geglu(gate.t.data(), up.t.data(), n, tanh, out.data());
      expect_close(out, ref::geglu(gate.d, up.d, tanh), kFp32, tanh ? "geglu tanh" : "geglu");
    }

    backend->sigmoid_gate(up.t.data(), gate.t.data(), n, out.data());
    std::vector<double> gated(n);
    for (int64_t i = 0; i < n; ++i) gated[i] = up.d[i] / (1.0 + std::exp(-gate.d[i]));
    expect_close(out, gated, kFp32, "sigmoid_gate");

    out = up.t;
    backend->add(out.data(), gate.t.data(), n);
    expect_close(out, ref::add(up.d, gate.d), kFp32, "add");

    out = gate.t;
    backend->softcap(out.data(), n, 30.0);
    std::vector<double> capped(n);
    for (int64_t i = 0; i < n; ++i) capped[i] = std::tanh(gate.d[i] / 30.0) * 30.0;
    expect_close(out, capped, kFp32, "softcap");

    out = up.t;
    backend->scale(out.data(), n, 45.254833995939045);  // sqrt(2048)
    std::vector<double> scaled(n);
    for (int64_t i = 0; i < n; ++i) scaled[i] = up.d[i] * static_cast<float>(45.254833995939045);
    expect_close(out, scaled, kFp32, "scale");
  }
}

// ---------------------------------------------------------------------------------------------
// Qwen3-Next's Gated DeltaNet and gates, against fp64 forms of backend.h's formulas

std::vector<double> ref_causal_conv1d_silu(const std::vector<double>& x,
                                           const std::vector<double>& w, int n, int channels,
                                           int kernel) {
  std::vector<double> out(static_cast<size_t>(n) * channels);
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < channels; ++c) {
      double s = 0;
      for (int j = 0; j < kernel; ++j) s += w[c * kernel + j] * x[(i + j) * channels + c];
      out[i * channels + c] = s / (1.0 + std::exp(-s));
    }
  return out;
}

struct DeltaRuleResult {
  std::vector<double> out, state;
};

DeltaRuleResult ref_gated_delta_rule(const std::vector<double>& qkv, const std::vector<double>& a,
                                     const std::vector<double>& b,
                                     const std::vector<double>& A_log,
                                     const std::vector<double>& dt_bias,
                                     const GatedDeltaParams& p, std::vector<double> state) {
  const int key_dim = p.k_heads * p.k_dim, row = 2 * key_dim + p.v_heads * p.v_dim;
  const int group = p.v_heads / p.k_heads;
  std::vector<double> out(static_cast<size_t>(p.n) * p.v_heads * p.v_dim);
  std::vector<double> qn(p.k_dim), kn(p.k_dim), delta(p.v_dim);
  for (int t = 0; t < p.n; ++t)
    for (int h = 0; h < p.v_heads; ++h) {
      const double* q = qkv.data() + t * row + (h / group) * p.k_dim;
      const double* k = q + key_dim;
      const double* v = qkv.data() + t * row + 2 * key_dim + h * p.v_dim;
      double qq = 0, kk = 0;
      for (int i = 0; i < p.k_dim; ++i) qq += q[i] * q[i], kk += k[i] * k[i];
      for (int i = 0; i < p.k_dim; ++i) {
        qn[i] = q[i] / std::sqrt(qq + 1e-6) / std::sqrt(static_cast<double>(p.k_dim));
        kn[i] = k[i] / std::sqrt(kk + 1e-6);
      }
      const double x = a[t * p.v_heads + h] + dt_bias[h];
      const double g = -std::exp(A_log[h]) * (x > 20 ? x : std::log1p(std::exp(x)));
      const double beta = 1.0 / (1.0 + std::exp(-b[t * p.v_heads + h]));
      double* S = state.data() + static_cast<size_t>(h) * p.k_dim * p.v_dim;
      for (int e = 0; e < p.k_dim * p.v_dim; ++e) S[e] *= std::exp(g);
      for (int j = 0; j < p.v_dim; ++j) {
        double memory = 0;
        for (int i = 0; i < p.k_dim; ++i) memory += S[i * p.v_dim + j] * kn[i];
        delta[j] = beta * (v[j] - memory);
      }
      for (int i = 0; i < p.k_dim; ++i)
        for (int j = 0; j < p.v_dim; ++j) S[i * p.v_dim + j] += kn[i] * delta[j];
      for (int j = 0; j < p.v_dim; ++j) {
        double sum = 0;
        for (int i = 0; i < p.k_dim; ++i) sum += S[i * p.v_dim + j] * qn[i];
        out[(static_cast<size_t>(t) * p.v_heads + h) * p.v_dim + j] = sum;
      }
    }
  return {out, state};
}

// A Gated DeltaNet layer's operands for shape p: decays between about 0.3 and 1 (A_log near
// -2), one gate above softplus's threshold of 20 (a[0]), and a state left by earlier tokens.
struct DeltaRuleInputs {
  explicit DeltaRuleInputs(const GatedDeltaParams& p)
      : qkv(make_input<float>("qkv", p.n * (2 * p.k_heads * p.k_dim + p.v_heads * p.v_dim))),
        a(make_input<float>("a", p.n * p.v_heads, 2.0)),
        b(make_input<float>("b", p.n * p.v_heads, 3.0)),
        A_log(make_input<float>("A_log", p.v_heads, 1.0, -2.0)),
        dt_bias(make_input<float>("dt_bias", p.v_heads, 0.5)),
        state(make_input<float>("state", p.v_heads * p.k_dim * p.v_dim, 0.5)) {
    a.t[0] = 25.0f;
    a.d[0] = 25.0;
  }
  test::Input<float> qkv, a, b, A_log, dt_bias, state;
};

// One token and prompts; head sizes from 7 to 256; grouped keys; v_dim above the block size.
const GatedDeltaParams kDeltaShapes[] = {
    {1, 2, 4, 64, 64}, {7, 1, 3, 7, 33}, {33, 2, 4, 128, 128}, {5, 1, 1, 33, 300},
    {64, 2, 4, 256, 128}};

TEST_F(CudaTest, CausalConv1dSilu) {
  for (int channels : {1, 7, 33, 300})
    for (int kernel : {1, 2, 4})
      for (int n : {1, 7, 33}) {
        SCOPED_TRACE(testing::Message() << "channels=" << channels << " kernel=" << kernel
                                        << " n=" << n);
        auto x = make_input<float>("x", (n + kernel - 1) * channels, 2.0);
        auto w = make_input<float>("w", channels * kernel, 0.5);
        std::vector<float> out(n * channels);
        backend->causal_conv1d_silu(x.t.data(), w.t.data(), n, channels, kernel, out.data());
        expect_close(out, ref_causal_conv1d_silu(x.d, w.d, n, channels, kernel), kFp32,
                     "causal_conv1d_silu");
      }
}

TEST_F(CudaTest, RmsnormGated) {
  for (int dim : kDims)
    for (int rows : {1, 7}) {
      SCOPED_TRACE(testing::Message() << "rows=" << rows << " dim=" << dim);
      auto x = make_input<float>("x", rows * dim, 2.0, 0.3);
      auto w = make_input<float>("w", dim, 0.1, 1.0);
      auto gate = make_input<float>("gate", rows * dim, 8.0);
      std::vector<float> y(rows * dim);
      backend->rmsnorm_gated(x.t.data(), w.t.data(), gate.t.data(), rows, dim, 1e-6, y.data());
      std::vector<double> expected = ref::rmsnorm(x.d, w.d, rows, dim, 1e-6);
      for (size_t i = 0; i < expected.size(); ++i)
        expected[i] *= gate.d[i] / (1.0 + std::exp(-gate.d[i]));
      expect_close(y, expected, kFp32, "rmsnorm_gated");
    }
}

// The recurrence against fp64, output and state; and a sequence run in two calls, the state
// carried between them, gives the bits of one call.
TEST_F(CudaTest, GatedDeltaRule) {
  for (const GatedDeltaParams& p : kDeltaShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << p.n << " k_heads=" << p.k_heads << " v_heads="
                                    << p.v_heads << " k_dim=" << p.k_dim << " v_dim=" << p.v_dim);
    const DeltaRuleInputs in(p);
    std::vector<float> state = in.state.t, out(p.n * p.v_heads * p.v_dim);
    backend->gated_delta_rule(in.qkv.t.data(), in.a.t.data(), in.b.t.data(), in.A_log.t.data(),
                              in.dt_bias.t.data(), p, state.data(), out.data());
    const DeltaRuleResult expected = ref_gated_delta_rule(in.qkv.d, in.a.d, in.b.d, in.A_log.d,
                                                          in.dt_bias.d, p, in.state.d);
    expect_close(out, expected.out, kFp32, "gated_delta_rule out");
    expect_close(state, expected.state, kFp32, "gated_delta_rule state");

    if (p.n < 2) continue;
    const int first = p.n / 2, row = 2 * p.k_heads * p.k_dim + p.v_heads * p.v_dim;
    GatedDeltaParams head = p, tail = p;
    head.n = first;
    tail.n = p.n - first;
    std::vector<float> carried = in.state.t, split(out.size());
    backend->gated_delta_rule(in.qkv.t.data(), in.a.t.data(), in.b.t.data(), in.A_log.t.data(),
                              in.dt_bias.t.data(), head, carried.data(), split.data());
    backend->gated_delta_rule(in.qkv.t.data() + first * row, in.a.t.data() + first * p.v_heads,
                              in.b.t.data() + first * p.v_heads, in.A_log.t.data(),
                              in.dt_bias.t.data(), tail, carried.data(),
                              split.data() + first * p.v_heads * p.v_dim);
    EXPECT_EQ(split, out) << "split at token " << first;
    EXPECT_EQ(carried, state) << "split at token " << first;
  }
}

TEST_F(CudaTest, ValueHeadsThatDoNotDivideAreAnErrorNotACrash) {
  const GatedDeltaParams p{1, 2, 3, 4, 4};
  std::vector<float> qkv(2 * 2 * 4 + 3 * 4), ab(3), heads(3), state(3 * 4 * 4), out(3 * 4);
  EXPECT_THROW(backend->gated_delta_rule(qkv.data(), ab.data(), ab.data(), heads.data(),
                                         heads.data(), p, state.data(), out.data()),
               std::runtime_error);
}

// A Gated DeltaNet layer's ops, twice on one backend and once on a fresh one: the same bits.
TEST_F(CudaTest, GatedDeltaNetOpsAreBitwiseReproducible) {
  const GatedDeltaParams p{33, 2, 4, 128, 128};
  const int channels = 2 * p.k_heads * p.k_dim + p.v_heads * p.v_dim, kernel = 4;
  const int out_dim = p.v_heads * p.v_dim;
  auto x = make_input<float>("x", (p.n + kernel - 1) * channels);
  auto w = make_input<float>("w", channels * kernel, 0.5);
  auto norm_w = make_input<float>("norm_w", p.v_dim, 0.1, 1.0);
  auto z = make_input<float>("z", p.n * out_dim, 4.0);
  const DeltaRuleInputs in(p);
  auto run = [&](Backend<float>& be) {
    std::vector<float> qkv(p.n * channels), state = in.state.t, core(p.n * out_dim),
        normed(p.n * out_dim), gated(p.n * out_dim);
    be.causal_conv1d_silu(x.t.data(), w.t.data(), p.n, channels, kernel, qkv.data());
    be.gated_delta_rule(qkv.data(), in.a.t.data(), in.b.t.data(), in.A_log.t.data(),
                        in.dt_bias.t.data(), p, state.data(), core.data());
    be.rmsnorm_gated(core.data(), norm_w.t.data(), z.t.data(), p.n * p.v_heads, p.v_dim, 1e-6,
                     normed.data());
    be.sigmoid_gate(normed.data(), z.t.data(), p.n * out_dim, gated.data());
    for (const auto* part : {&state, &core, &normed, &gated})
      qkv.insert(qkv.end(), part->begin(), part->end());
    return qkv;
  };
  const auto first = run(*backend);
  EXPECT_EQ(first, run(*backend));
  EXPECT_EQ(first, run(*make_cuda_backend(CudaPrecision::fp32)));
}

// Through the rounding layer of the 16-bit targets: each op's output is the fp32 backend's,
// stored in the type; the delta rule's state stays fp32 (the fp32 backend's bits, not all of
// them representable in the type), and its output stays within the type's error of fp64.
TEST_F(CudaTest, SixteenBitTargetsRoundTheOutputsAndKeepTheStateInFp32) {
  const GatedDeltaParams p{7, 1, 3, 7, 33};
  for (const auto& [precision, storage, tolerance] :
       {std::tuple{"bf16", DType::bf16, 1e-2}, std::tuple{"fp16", DType::f16, 2e-3}}) {
    SCOPED_TRACE(precision);
    auto narrow = make_target_backend(Target{"cuda", precision});
    ASSERT_NE(narrow, nullptr);
    const DeltaRuleInputs in(p);
    const auto qkv = rounded(in.qkv.t, storage), a = rounded(in.a.t, storage),
               b = rounded(in.b.t, storage), A_log = rounded(in.A_log.t, storage),
               dt_bias = rounded(in.dt_bias.t, storage), state0 = rounded(in.state.t, storage);
    const int64_t count = p.n * p.v_heads * p.v_dim;
    std::vector<float> state = state0, out(count), state32 = state0, out32(count);
    narrow->gated_delta_rule(qkv.data(), a.data(), b.data(), A_log.data(), dt_bias.data(), p,
                             state.data(), out.data());
    backend->gated_delta_rule(qkv.data(), a.data(), b.data(), A_log.data(), dt_bias.data(), p,
                              state32.data(), out32.data());
    EXPECT_EQ(state, state32) << "the state was rounded";
    EXPECT_TRUE(std::any_of(state.begin(), state.end(),
                            [&](float v) { return round_to(storage, v) != v; }))
        << "every state value is representable: the test cannot tell rounding from none";
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(out[i], round_to(storage, out32[i])) << i;
    expect_close(out,
                 ref_gated_delta_rule(widen(qkv), widen(a), widen(b), widen(A_log),
                                      widen(dt_bias), p, widen(state0))
                     .out,
                 tolerance, "gated_delta_rule out");

    // The other three: the fp32 backend's outputs, rounded once.
    const int n = 7, dim = 33, kernel = 4;
    const auto x = rounded(make_input<float>("x", (n + kernel - 1) * dim, 2.0).t, storage);
    const auto w = rounded(make_input<float>("w", dim * kernel, 0.5).t, storage);
    const auto gate = rounded(make_input<float>("gate", n * dim, 8.0).t, storage);
    std::vector<float> y(n * dim), y32(n * dim);
    auto expect_rounded = [&](const char* what) {
      for (int i = 0; i < n * dim; ++i) ASSERT_EQ(y[i], round_to(storage, y32[i])) << what << i;
    };
    narrow->causal_conv1d_silu(x.data(), w.data(), n, dim, kernel, y.data());
    backend->causal_conv1d_silu(x.data(), w.data(), n, dim, kernel, y32.data());
    expect_rounded("causal_conv1d_silu ");
    narrow->rmsnorm_gated(x.data(), w.data(), gate.data(), n, dim, 1e-6, y.data());
    backend->rmsnorm_gated(x.data(), w.data(), gate.data(), n, dim, 1e-6, y32.data());
    expect_rounded("rmsnorm_gated ");
    narrow->sigmoid_gate(x.data(), gate.data(), n * dim, y.data());
    backend->sigmoid_gate(x.data(), gate.data(), n * dim, y32.data());
    expect_rounded("sigmoid_gate ");
  }
}

// ---------------------------------------------------------------------------------------------
// Mixture of experts

TEST_F(CudaTest, MoeRouteAndCombine) {
  for (int experts : {8, 60}) {
    const int n = 7, top_k = 2, dim = 33;
    SCOPED_TRACE(testing::Message() << "experts=" << experts);
    auto logits = make_input<float>("logits", n * experts, 3.0);
    std::vector<float> probs(n * experts), weights(n * top_k);
    std::vector<int> ids(n * top_k);
    backend->moe_route(logits.t.data(), n, experts, top_k, probs.data(), ids.data(),
                       weights.data());
    for (int r = 0; r < n; ++r) {
      const std::vector<double> row(logits.d.begin() + r * experts,
                                    logits.d.begin() + (r + 1) * experts);
      const ref::Routing expected = ref::route(row, top_k);
      expect_close(std::vector<float>(probs.begin() + r * experts,
                                      probs.begin() + (r + 1) * experts),
                   expected.probs, kFp32, "probs");
      expect_close(std::vector<float>(weights.begin() + r * top_k,
                                      weights.begin() + (r + 1) * top_k),
                   expected.weights, kFp32, "weights");
      EXPECT_EQ(std::vector<int>(ids.begin() + r * top_k, ids.begin() + (r + 1) * top_k),
                expected.ids);
    }

    // Rows 5, 0 and 2 of a 7-row y get one expert's outputs; the others stay as they were.
    auto y = make_input<float>("y", n * dim);
    auto x = make_input<float>("x", 3 * dim);
    const std::vector<int> rows = {5, 0, 2};
    const std::vector<float> w = {0.25f, 0.5f, 0.75f};
    std::vector<float> out = y.t;
    backend->moe_combine(out.data(), x.t.data(), rows.data(), w.data(), 3, dim);
    std::vector<double> expected = y.d;
    for (int r = 0; r < 3; ++r)
      for (int d = 0; d < dim; ++d) expected[rows[r] * dim + d] += x.d[r * dim + d] * w[r];
    expect_close(out, expected, kFp32, "moe_combine");
  }
}

// ---------------------------------------------------------------------------------------------
// Determinism and targets

// An attention block's ops run twice on one backend and once on a fresh one: the same bits.
TEST_F(CudaTest, AttentionBlockIsBitwiseReproducible) {
  const int n = 33, kv_len = 300, heads = 8, kv_heads = 2, hd = 128, dim = 1024;
  const auto positions = iota_positions(n, kv_len - n);
  auto x = make_input<float>("x", n * dim);
  auto w = make_input<float>("w", dim, 0.1, 1.0);
  auto q = make_input<float>("q", n * heads * hd);
  auto k = make_input<float>("k", kv_len * kv_heads * hd);
  auto v = make_input<float>("v", kv_len * kv_heads * hd);
  auto run = [&](Backend<float>& b) {
    std::vector<float> normed(n * dim), qr = q.t, s(heads * n * kv_len), out(n * heads * hd);
    b.rmsnorm(x.t.data(), w.t.data(), n, dim, 1e-5, normed.data());
    b.rope(qr.data(), positions.data(), n, heads, hd, 10000.0);
    b.attention_scores(qr.data(), k.t.data(), positions.data(), n, kv_len, heads, kv_heads, hd,
                       0.088, s.data());
    b.score_mod(s.data(), positions.data(), n, kv_len, heads, 50.0, 100);
    b.softmax(s.data(), heads * n, kv_len);
    b.attention_values(s.data(), v.t.data(), n, kv_len, heads, kv_heads, hd, out.data());
    normed.insert(normed.end(), out.begin(), out.end());
    return normed;
  };
  const auto first = run(*backend);
  EXPECT_EQ(first, run(*backend));
  EXPECT_EQ(first, run(*make_cuda_backend(CudaPrecision::fp32)));
}

// A KV cache array announced write by write (Backend::cache_written) is attended over from the
// device's mirror: the bits of the same array passed unannounced. Past the announced values,
// past a gap in them, and after a release, the op reads the host array.
TEST_F(CudaTest, AnnouncedCacheArraysGiveTheBitsOfCopiedOnes) {
  const int heads = 8, kv_heads = 2, hd = 64, kv_len = 300, n = 1;
  const int64_t row = int64_t{kv_heads} * hd, capacity = kv_len * row;
  auto q = make_input<float>("q", n * heads * hd);
  std::vector<float> k = make_input<float>("k", kv_len * row).t;
  std::vector<float> v = make_input<float>("v", kv_len * row, 1.0, 0.5).t;
  auto attend = [&](Backend<float>& b, int len) {
    const std::vector<int> positions = {len - 1};
    std::vector<float> s(heads * n * len), out(n * heads * hd);
    b.attention_scores(q.t.data(), k.data(), positions.data(), n, len, heads, kv_heads, hd, 0.125,
                       s.data());
    b.softmax(s.data(), heads * n, len);
    b.attention_values(s.data(), v.data(), n, len, heads, kv_heads, hd, out.data());
    s.insert(s.end(), out.begin(), out.end());
    return s;
  };
  auto plain = make_cuda_backend(CudaPrecision::fp32);
  // A prompt of 200 positions, then decode steps one position at a time.
  backend->cache_written(k.data(), capacity, 0, 200 * row);
  backend->cache_written(v.data(), capacity, 0, 200 * row);
  EXPECT_EQ(attend(*backend, 200), attend(*plain, 200));
  for (int p = 200; p < kv_len; ++p) {
    backend->cache_written(k.data(), capacity, p * row, row);
    backend->cache_written(v.data(), capacity, p * row, row);
  }
  EXPECT_EQ(attend(*backend, kv_len), attend(*plain, kv_len));

  // The mirror is what is read: a change the model did not announce (which the contract
  // forbids) is not seen.
  const std::vector<float> announced = attend(*backend, kv_len);
  k[0] += 1.0f;
  EXPECT_EQ(attend(*backend, kv_len), announced);
  EXPECT_NE(attend(*plain, kv_len), announced);

  // A write that starts over (a new sequence): what followed it in the mirror is no longer
  // read, so later changes there are seen.
  backend->cache_written(k.data(), capacity, 0, 4 * row);
  k[5 * row] += 1.0f;
  EXPECT_EQ(attend(*backend, 4), attend(*plain, 4));
  EXPECT_EQ(attend(*backend, kv_len), attend(*plain, kv_len)) << "read past the latest write";

  // A write past the announced values leaves a gap: the mirror serves what precedes it.
  for (int64_t i = 4 * row; i < 8 * row; ++i) k[i] += 1.0f;
  backend->cache_written(k.data(), capacity, 8 * row, row);
  EXPECT_EQ(attend(*backend, 9), attend(*plain, 9)) << "read across a gap";

  backend->release_cache(k.data());
  backend->release_cache(v.data());
  k[1] += 1.0f;
  v[0] += 1.0f;
  EXPECT_EQ(attend(*backend, 4), attend(*plain, 4)) << "a released array still mirrored";
}

// A model's forward passes with the cache mirrored on the device give the bits of the same
// backend told nothing about the cache: two sequences, a prompt fed in chunks, decode steps.
TEST_F(CudaTest, ModelsCacheMirroredOnTheDeviceGivesTheSameBits) {
  struct Unannounced final : StoringBackend<float> {
    Unannounced() : StoringBackend<float>(make_cuda_backend(CudaPrecision::fp32)) {}
    void cache_written(const float*, int64_t, int64_t, int64_t) override {}
    void release_cache(const float*) override {}
    void store(float*, int64_t, int) override {}
  };
  ModelConfig c = family_defaults("llama");
  c.vocab_size = 64;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.seed = 31;
  const Weights w = synthetic_weights(c);
  GenerateOptions options;
  options.decode = 6;
  options.prefill_chunk = 5;
  const std::vector<std::vector<int>> prompts = {{3, 9, 27, 17, 51, 25, 11}, {5, 40}};
  Unannounced plain;
  Model<float> reference(c, w, plain);
  Model<float> model(c, w, *backend);
  const std::vector<SequenceOutput> expected = generate(reference, prompts, options);
  const std::vector<SequenceOutput> got = generate(model, prompts, options);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t s = 0; s < got.size(); ++s) {
    EXPECT_EQ(got[s].logits, expected[s].logits) << "sequence " << s;
    EXPECT_EQ(got[s].generated, expected[s].generated) << "sequence " << s;
  }
}

// Held activations (Backend::hold_activations) stay on the device: an op's result is not on
// the host until the model asks for it, a host write it announces is what the next op reads,
// and an op that writes part of an array keeps the rest.
TEST_F(CudaTest, HeldActivationsStayOnTheDeviceUntilAsked) {
  auto plain = make_cpu_backend<float>();
  const int n = 3, dim = 40;
  std::vector<float> x = make_input<float>("x", n * dim).t, w = make_input<float>("w", dim).t;
  const float sentinel = 12345.0f;
  std::vector<float> y(n * dim, sentinel);
  backend->hold_activations(x.data(), n * dim);
  backend->hold_activations(y.data(), n * dim);
  std::vector<float> expected(n * dim);
  plain->rmsnorm(x.data(), w.data(), n, dim, 1e-6, expected.data());
  backend->rmsnorm(x.data(), w.data(), n, dim, 1e-6, y.data());
  EXPECT_EQ(y, std::vector<float>(n * dim, sentinel)) << "the result came to the host unasked";
  backend->to_host(y.data(), 0, n * dim);
  expect_close(widen(y), widen(expected), kFp32, "rmsnorm of held arrays");

  // The host writes row 1 and announces it; the next op reads the new row.
  for (int i = dim; i < 2 * dim; ++i) x[i] = 0.5f * x[i] + 1.0f;
  backend->from_host(x.data(), dim, dim);
  plain->rmsnorm(x.data(), w.data(), n, dim, 1e-6, expected.data());
  backend->rmsnorm(x.data(), w.data(), n, dim, 1e-6, y.data());
  backend->to_host(y.data(), 0, n * dim);
  expect_close(widen(y), widen(expected), kFp32, "after an announced host write");

  // An op writing the last row of a held array the host last wrote keeps the other rows.
  std::vector<float> z(n * dim);
  for (int i = 0; i < n * dim; ++i) z[i] = static_cast<float>(i);
  backend->hold_activations(z.data(), n * dim);
  backend->rmsnorm(x.data(), w.data(), 1, dim, 1e-6, z.data() + 2 * dim);
  backend->to_host(z.data(), 0, n * dim);
  for (int i = 0; i < 2 * dim; ++i) ASSERT_EQ(z[i], static_cast<float>(i)) << "value " << i;
  expect_close(widen({z.begin() + 2 * dim, z.end()}), widen({expected.begin(), expected.begin() + dim}),
               kFp32, "the written row");

  // An op whose result overlaps its input in a held array (in place here) gives the bits it
  // gives on host arrays: the kernel does not write what it is still reading.
  std::vector<float> in_place = x, on_host = x;
  backend->hold_activations(in_place.data(), n * dim);
  backend->rmsnorm(in_place.data(), w.data(), n, dim, 1e-6, in_place.data());
  backend->swiglu(in_place.data(), x.data(), n * dim, in_place.data());
  backend->to_host(in_place.data(), 0, n * dim);
  backend->release_activations(in_place.data());
  backend->rmsnorm(on_host.data(), w.data(), n, dim, 1e-6, on_host.data());
  backend->swiglu(on_host.data(), x.data(), n * dim, on_host.data());
  EXPECT_EQ(in_place, on_host);

  // A range running past a held array's end is refused, not read out of bounds.
  EXPECT_THROW(backend->scale(z.data() + dim, n * dim, 2.0), std::logic_error);
  for (const float* a : {x.data(), y.data(), z.data()}) backend->release_activations(a);
}

// The model's cache writes from an array held on the device (Backend::write_cache): attention
// reads the written keys at once, from the device; the host's cache gets them by the
// backend's next to_host, cache_written or release_cache, in the order they were written, so
// a write from the host after one from the device is the one that stays; a write larger than
// the page-locked buffer goes straight to the host.
TEST_F(CudaTest, CacheWrittenFromTheDeviceReachesTheHostInOrder) {
  const int kv_heads = 2, heads = 4, hd = 16, capacity = 8;
  const int row = kv_heads * hd;
  const std::vector<float> w = make_input<float>("w", row).t;
  std::vector<float> k = make_input<float>("k", 2 * row).t;  // two positions' keys
  const std::vector<float> k_in = k;
  const float sentinel = -777.0f;
  std::vector<float> cache(capacity * row, sentinel);
  backend->hold_activations(k.data(), 2 * row);
  // An op leaves the held keys on the device only; the cache takes them from there.
  backend->rmsnorm(k_in.data(), w.data(), 2 * kv_heads, hd, 1e-6, k.data());
  backend->write_cache(cache.data(), capacity * row, 0, k.data(), 2 * row);
  std::vector<float> normed(2 * row);
  make_cpu_backend<float>()->rmsnorm(k_in.data(), w.data(), 2 * kv_heads, hd, 1e-6,
                                     normed.data());

  // Attention over the two positions reads them now, before the host has them.
  const std::vector<float> q = make_input<float>("q", heads * hd).t;
  const int position = 1;
  std::vector<float> scores(heads * 2), expected(heads * 2);
  backend->attention_scores(q.data(), cache.data(), &position, 1, 2, heads, kv_heads, hd, 0.25,
                            scores.data());
  backend->to_host(k.data(), 0, 2 * row);
  expect_close(widen({cache.begin(), cache.begin() + 2 * row}), widen(normed), kFp32,
               "the cache on the host after to_host");
  for (int i = 2 * row; i < capacity * row; ++i) ASSERT_EQ(cache[i], sentinel) << "value " << i;
  make_cpu_backend<float>()->attention_scores(q.data(), cache.data(), &position, 1, 2, heads,
                                              kv_heads, hd, 0.25, expected.data());
  EXPECT_EQ(scores, expected) << "attention read what the host now holds";

  // A write from the device, then one of the same position from an array on the host (as a
  // forward pass that failed is redone): the later one stays, on the host and in what
  // attention reads.
  backend->rmsnorm(k_in.data(), w.data(), 2 * kv_heads, hd, 1e-6, k.data());
  backend->write_cache(cache.data(), capacity * row, 2 * row, k.data(), row);
  std::vector<float> host_row(row);
  for (int i = 0; i < row; ++i) host_row[i] = 0.125f * static_cast<float>(i % 7);
  backend->write_cache(cache.data(), capacity * row, 2 * row, host_row.data(), row);
  backend->to_host(k.data(), 0, 2 * row);
  EXPECT_EQ(std::vector<float>(cache.begin() + 2 * row, cache.begin() + 3 * row), host_row);
  const int third = 2;
  std::vector<float> three(heads * 3), three_expected(heads * 3);
  backend->attention_scores(q.data(), cache.data(), &third, 1, 3, heads, kv_heads, hd, 0.25,
                            three.data());
  make_cpu_backend<float>()->attention_scores(q.data(), cache.data(), &third, 1, 3, heads,
                                              kv_heads, hd, 0.25, three_expected.data());
  EXPECT_EQ(three, three_expected);

  // Released (as when the model turns to another cache): the host is brought up to date.
  backend->rmsnorm(k_in.data(), w.data(), 2 * kv_heads, hd, 1e-6, k.data());
  backend->write_cache(cache.data(), capacity * row, 3 * row, k.data() + row, row);
  backend->release_cache(cache.data());
  expect_close(widen({cache.begin() + 3 * row, cache.begin() + 4 * row}),
               widen({normed.begin() + row, normed.end()}), kFp32, "after release_cache");
  backend->release_activations(k.data());

  // Larger than the page-locked buffer (8 MiB): copied to the host at once.
  const int64_t big = (int64_t{9} << 20) / sizeof(float);
  std::vector<float> a(big, 1.5f), big_cache(big, sentinel);
  backend->hold_activations(a.data(), big);
  backend->scale(a.data(), big, 2.0);
  backend->write_cache(big_cache.data(), big, 0, a.data(), big);
  EXPECT_EQ(big_cache, std::vector<float>(big, 3.0f));
  backend->release_cache(big_cache.data());
  backend->release_activations(a.data());
}

// Floats whose rounding to bf16 and fp16 is delicate: zeros, infinities, NaNs with payloads,
// subnormals, the edges of fp16's range, ties and near-ties, and 65536 random ones.
std::vector<uint32_t> rounding_probes() {
  std::vector<uint32_t> bits = {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u,
                                0xFFC00001u, 0x7F800001u, 0x7FBFFFFFu, 0x00000001u, 0x80000001u,
                                0x477FEFFFu, 0x477FF000u, 0x477FE000u, 0x38800000u, 0x387FFFFFu,
                                0x33000000u, 0x33000001u, 0x32FFFFFFu, 0x3F808000u, 0x3F818000u,
                                0x3F800FFFu, 0x3F801000u, 0x3F803000u, 0x7F7FFFFFu, 0x7F7F8000u};
  uint64_t state = 88172645463325252ull;
  for (int i = 0; i < 1 << 16; ++i) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    bits.push_back(static_cast<uint32_t>(state));
  }
  // Near the tie points and the subnormal range, where the low bits decide.
  for (uint32_t e = 0x30000000u; e < 0x48000000u; e += 0x00400000u)
    for (uint32_t low : {0x0FFFu, 0x1000u, 0x1001u, 0x3000u, 0x7FFFu, 0x8000u, 0x8001u, 0x18000u})
      bits.push_back(e | low), bits.push_back(0x80000000u | e | low);
  return bits;
}

// Rounding a held array on the device (Backend::round_stored) gives the host's bits for every
// float: both signs, every exponent, ties, the largest finite values, subnormals, infinities and
// NaN payloads.
TEST_F(CudaTest, RoundStoredOnTheDeviceGivesTheHostsBits) {
  const std::vector<uint32_t> bits = rounding_probes();
  std::vector<float> values(bits.size());
  std::memcpy(values.data(), bits.data(), bits.size() * sizeof(float));
  const int64_t n = static_cast<int64_t>(values.size());
  for (DType storage : {DType::bf16, DType::f16}) {
    std::vector<float> expected = values;
    round_in_place(storage, expected.data(), n);
    std::vector<float> x = values, y(n, 0.0f);
    backend->hold_activations(x.data(), n);
    backend->hold_activations(y.data(), n);
    backend->add(y.data(), x.data(), n);  // reads x: its device copy is now current
    backend->round_stored(x.data(), n, storage);
    EXPECT_EQ(std::memcmp(x.data(), values.data(), n * sizeof(float)), 0)
        << "rounded on the host, not the device";
    backend->to_host(x.data(), 0, n);
    int wrong = 0;
    for (int64_t i = 0; i < n; ++i) {
      uint32_t got, want;
      std::memcpy(&got, &x[i], sizeof got);
      std::memcpy(&want, &expected[i], sizeof want);
      if (got != want && ++wrong <= 5)
        ADD_FAILURE() << dtype_name(storage) << ": 0x" << std::hex << bits[i] << " rounds to 0x"
                      << got << " on the device, 0x" << want << " on the host";
    }
    EXPECT_EQ(wrong, 0) << dtype_name(storage);
    backend->release_activations(x.data());
    backend->release_activations(y.data());

    // A held array whose device copy is not current is rounded on the host, the same way.
    std::vector<float> fresh = values;
    backend->hold_activations(fresh.data(), n);
    backend->round_stored(fresh.data(), n, storage);
    EXPECT_EQ(std::memcmp(fresh.data(), expected.data(), n * sizeof(float)), 0)
        << dtype_name(storage) << ": a held array the device never read";
    backend->release_activations(fresh.data());
  }
}

// A result the rounding layer announces (Backend::round_next) is rounded by the kernel that
// stores it, with the host's bits, whether it lands in a held array or goes to the host; the
// round_stored call that follows then leaves it alone. An announcement for other values, or
// none, leaves the rounding to round_stored.
TEST_F(CudaTest, ResultsRoundedAsTheKernelStoresThemHaveTheHostsBits) {
  const std::vector<uint32_t> bits = rounding_probes();
  const int64_t n = static_cast<int64_t>(bits.size());
  std::vector<float> values(n);
  std::memcpy(values.data(), bits.data(), n * sizeof(float));
  const auto bits_of = [](float f) {
    uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return b;
  };
  for (DType storage : {DType::bf16, DType::f16})
    for (bool held : {false, true})
      for (bool announced : {true, false}) {
        const std::string name = std::string(dtype_name(storage)) + (held ? ", held" : ", host") +
                                 (announced ? ", announced" : ", not announced");
        // The values as one row of an embedding table, gathered: no arithmetic (which on the
        // device would make every NaN the canonical one) between them and the rounding.
        std::vector<float> expected = values;
        round_in_place(storage, expected.data(), n);
        const int token = 0;
        std::vector<float> y(n, 0.0f);
        if (held) backend->hold_activations(y.data(), n);
        if (announced) backend->round_next(y.data(), n, storage);
        backend->embed(values.data(), &token, 1, static_cast<int>(n), y.data());
        // A result on the host is there already, rounded by the kernel when announced.
        if (!held) {
          EXPECT_EQ(std::memcmp(y.data(), (announced ? expected : values).data(),
                                n * sizeof(float)),
                    0)
              << name << ": the result as the op left it";
        }
        backend->round_stored(y.data(), n, storage);
        backend->to_host(y.data(), 0, n);
        int wrong = 0;
        for (int64_t i = 0; i < n; ++i)
          if (bits_of(y[i]) != bits_of(expected[i]) && ++wrong <= 5)
            ADD_FAILURE() << name << ": 0x" << std::hex << bits[i] << " stored as 0x"
                          << bits_of(y[i]) << ", the host rounds it to 0x"
                          << bits_of(expected[i]);
        EXPECT_EQ(wrong, 0) << name;
        if (held) backend->release_activations(y.data());
      }

  // Announced for another array: the kernel stores the values as they are, and round_stored
  // rounds them.
  const int token = 0;
  std::vector<float> y(n, 0.0f), other(n);
  backend->round_next(other.data(), n, DType::bf16);
  backend->embed(values.data(), &token, 1, static_cast<int>(n), y.data());
  ASSERT_EQ(std::memcmp(y.data(), values.data(), n * sizeof(float)), 0)
      << "rounded without being asked";
  backend->round_stored(y.data(), n, DType::bf16);
  std::vector<float> expected = values;
  round_in_place(DType::bf16, expected.data(), n);
  EXPECT_EQ(std::memcmp(y.data(), expected.data(), n * sizeof(float)), 0);
}

// Models whose activations stay on the device between ops give the bits of the same backend
// told nothing of them, through the rounding layer of every 16-bit target too: two sequences, a
// prompt in chunks, decode steps, and families that exercise q/k norms, partial rotary,
// softcapping, biases, LayerNorm and routed experts.
TEST_F(CudaTest, ModelsActivationsHeldOnTheDeviceGiveTheSameBits) {
  struct Unannounced final : StoringBackend<float> {
    explicit Unannounced(CudaPrecision p) : StoringBackend<float>(make_cuda_backend(p)) {}
    void store(float*, int64_t, int) override {}
  };
  // The backend itself, its activation calls counted on the way.
  struct Counted final : StoringBackend<float> {
    explicit Counted(CudaPrecision p) : StoringBackend<float>(make_cuda_backend(p)) {}
    void store(float*, int64_t, int) override {}
    void hold_activations(const float* a, int64_t count) override {
      ++holds;
      inner().hold_activations(a, count);
    }
    void release_activations(const float* a) override { inner().release_activations(a); }
    void to_host(const float* a, int64_t first, int64_t count) override {
      ++reads;
      inner().to_host(a, first, count);
    }
    void from_host(const float* a, int64_t first, int64_t count) override {
      inner().from_host(a, first, count);
    }
    void round_next(const float* values, int64_t n, DType storage) override {
      inner().round_next(values, n, storage);
    }
    void round_stored(float* values, int64_t n, DType storage) override {
      inner().round_stored(values, n, storage);
    }
    void write_cache(float* cache, int64_t capacity, int64_t first, const float* src,
                     int64_t count) override {
      inner().write_cache(cache, capacity, first, src, count);
    }
    int holds = 0, reads = 0;
  };
  std::vector<ModelConfig> configs;
  for (const char* type : {"llama", "qwen3", "gemma2", "phi3", "gpt2", "mixtral"}) {
    ModelConfig c = family_defaults(type);
    c.vocab_size = 64;
    c.hidden_size = 64;
    c.intermediate_size = 96;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = c.model_type == "gpt2" ? 0 : 2;
    c.head_dim = 16;
    c.max_position_embeddings = 64;
    if (c.model_type == "gemma2") {
      c.sliding_window = 4;
      c.attn_logit_softcapping = 20;
      c.final_logit_softcapping = 10;
    }
    if (c.model_type == "phi3") c.partial_rotary_factor = 0.5;
    if (c.model_type == "mixtral") {
      c.num_local_experts = 4;
      c.num_experts_per_tok = 2;
    }
    c.seed = 37;
    configs.push_back(c);
  }
  GenerateOptions options;
  options.decode = 5;
  options.prefill_chunk = 5;
  const std::vector<std::vector<int>> prompts = {{3, 9, 27, 17, 51, 25, 11}, {5, 40}};
  for (const ModelConfig& c : configs)
    for (const auto& [precision, storage] :
         {std::pair{CudaPrecision::fp32, DType::f32}, std::pair{CudaPrecision::bf16, DType::bf16},
          std::pair{CudaPrecision::fp16, DType::f16}}) {
      const std::string name = c.model_type + " " + dtype_name(storage);
      ASSERT_TRUE(validate(c).empty()) << name << ": " << validate(c)[0].message;
      const Weights w = synthetic_weights(c);
      std::unique_ptr<Backend<float>> plain = std::make_unique<Unannounced>(precision);
      auto counted = std::make_unique<Counted>(precision);
      const Counted& counts = *counted;
      std::unique_ptr<Backend<float>> held = std::move(counted);
      if (storage != DType::f32) {
        plain = make_rounding_backend(std::move(plain), storage);
        held = make_rounding_backend(std::move(held), storage);
      }
      Model<float> reference(c, w, *plain);
      Model<float> model(c, w, *held);
      const std::vector<SequenceOutput> expected = generate(reference, prompts, options);
      const std::vector<SequenceOutput> got = generate(model, prompts, options);
      ASSERT_EQ(got.size(), expected.size()) << name;
      for (size_t s = 0; s < got.size(); ++s) {
        EXPECT_EQ(got[s].logits, expected[s].logits) << name << ", sequence " << s;
        EXPECT_EQ(got[s].generated, expected[s].generated) << name << ", sequence " << s;
      }
      EXPECT_EQ(test::taps_of(model, c, prompts[0]), test::taps_of(reference, c, prompts[0]))
          << name;
      EXPECT_GT(counts.holds, 0) << name << ": nothing held";
      EXPECT_GT(counts.reads, 0) << name;
    }
}

TEST_F(CudaTest, TargetsRunOnTheDeviceAndSayWhere) {
  for (const char* precision : {"fp32", "tf32", "bf16", "fp16"}) {
    const Target t{"cuda", precision};
    auto b = make_target_backend(t);
    ASSERT_NE(b, nullptr) << t.name();
    EXPECT_EQ(target_device_class(t).rfind("sm", 0), 0u) << target_device_class(t);
    EXPECT_NE(target_provenance(t).find("compute capability"), std::string::npos)
        << target_provenance(t);
    EXPECT_NE(target_provenance(t).find("cuBLAS"), std::string::npos) << target_provenance(t);
  }
  EXPECT_EQ(target_device_class(Target{"cpu", "fp32"}), "");
  EXPECT_EQ(target_provenance(Target{"cpu", "fp32"}), "");
}

// The bf16 target through the rounding layer: each output is stored in bf16, and the result
// stays within bf16's error of fp64.
TEST_F(CudaTest, Bf16TargetRoundsEachOutput) {
  auto b = make_target_backend(Target{"cuda", "bf16"});
  ASSERT_NE(b, nullptr);
  const int n = 7, k = 127, m = 33;
  auto x = rounded(make_input<float>("x", n * k).t, DType::bf16);
  auto w = rounded(make_input<float>("w", m * k, std::sqrt(3.0 / k)).t, DType::bf16);
  std::vector<float> y(n * m);
  b->matmul(x.data(), w.data(), n, k, m, y.data());
  for (float value : y) EXPECT_EQ(round_to(DType::bf16, value), value);
  expect_close(y, ref::matmul(widen(x), widen(w), n, k, m), 1e-2, "bf16 matmul");
}

TEST(CudaAbsentTest, NoDeviceMeansNoBackendRatherThanAnError) {
  if (cuda_device_available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_EQ(make_target_backend(Target{"cuda", "fp32"}), nullptr);
  EXPECT_EQ(target_device_class(Target{"cuda", "fp32"}), "");
  EXPECT_THROW(make_cuda_backend(CudaPrecision::fp32), std::runtime_error);
}

}  // namespace
}  // namespace pinmark
