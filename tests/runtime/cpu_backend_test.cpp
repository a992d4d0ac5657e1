// Each CPU kernel, in fp64 and fp32, against the plain fp64 loops in reference.h, at sizes
// that are not powers of two so that off-by-one indexing shows.
#include "runtime/cpu/cpu_backend.h"

#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "reference.h"
#include "test_util.h"

namespace pinmark {
namespace {

using test::expect_close;
using test::make_input;

template <class T>
class CpuKernel : public ::testing::Test {
 protected:
  std::unique_ptr<Backend<T>> backend = make_cpu_backend<T>();
  const double tol = test::kernel_tolerance<T>();

  // matmul and matmul_bias of x[n, k] by w[m, k] on `threads` OpenMP threads.
  std::pair<std::vector<T>, std::vector<T>> products(const std::vector<T>& x,
                                                     const std::vector<T>& w,
                                                     const std::vector<T>& b, int n, int k, int m,
                                                     int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<T> y(n * m, T(-99)), yb(n * m, T(-99));
    backend->matmul(x.data(), w.data(), n, k, m, y.data());
    backend->matmul_bias(x.data(), w.data(), b.data(), n, k, m, yb.data());
    omp_set_num_threads(before);
    return {y, yb};
  }
};

using Types = ::testing::Types<double, float>;
TYPED_TEST_SUITE(CpuKernel, Types);

TYPED_TEST(CpuKernel, Embed) {
  using T = TypeParam;
  const int vocab = 11, dim = 7;
  auto table = make_input<T>("table", vocab * dim);
  const std::vector<int> tokens = {3, 0, 10, 3, 7};
  std::vector<T> out(tokens.size() * dim);
  this->backend->embed(table.t.data(), tokens.data(), 5, dim, out.data());
  // A copy: exact in any precision.
  expect_close(out, ref::embed(table.d, tokens, dim), 0.0, "embed");
}

TYPED_TEST(CpuKernel, Matmul) {
  using T = TypeParam;
  for (auto [n, k, m] :
       {std::tuple{7, 13, 5}, std::tuple{1, 64, 9}, std::tuple{3, 1, 4}, std::tuple{5, 300, 3}}) {
    auto x = make_input<T>("x", n * k);
    auto w = make_input<T>("w", m * k, std::sqrt(3.0 / k));
    std::vector<T> y(n * m, T(-99));
    this->backend->matmul(x.t.data(), w.t.data(), n, k, m, y.data());
    expect_close(y, ref::matmul(x.d, w.d, n, k, m), this->tol,
                 "matmul " + std::to_string(n) + "x" + std::to_string(k) + "x" + std::to_string(m));
  }
}

// The blocked, vectorised product computes each output as the plain loop does, term by term in
// index order with a separate multiply and add: the same bits, whatever the shape's edges
// (n not a multiple of 4, m of the 32 lanes, k of the 8 x 8 transpose tiles and of the 128-term
// blocks), the thread count, and with or without a bias.
// y = x w^T (+ b) as the plain triple loop computes it: each sum in index order, one rounding
// per multiply and per add (volatile keeps the compiler from fusing or reordering them).
template <class T>
std::vector<T> plain_product(const std::vector<T>& x, const std::vector<T>& w, const T* b, int n,
                             int k, int m) {
  std::vector<T> y(n * m);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j) {
      volatile T sum = 0;
      for (int p = 0; p < k; ++p) {
        const T product = x[i * k + p] * w[j * k + p];
        sum = sum + product;
      }
      y[i * m + j] = b ? sum + b[j] : sum;
    }
  return y;
}

TYPED_TEST(CpuKernel, MatmulHasThePlainLoopsBits) {
  using T = TypeParam;
  for (auto [n, k, m] : {std::tuple{1, 288, 70}, std::tuple{5, 129, 33}, std::tuple{4, 7, 8},
                         std::tuple{9, 257, 65}, std::tuple{2, 1, 1}, std::tuple{66, 136, 31}}) {
    auto x = make_input<T>("x", n * k);
    auto w = make_input<T>("w", m * k, std::sqrt(3.0 / k));
    auto b = make_input<T>("b", m);
    const std::vector<T> plain = plain_product<T>(x.t, w.t, nullptr, n, k, m);
    const std::vector<T> plain_bias = plain_product<T>(x.t, w.t, b.t.data(), n, k, m);
    for (int threads : {1, 2}) {
      const auto [y, yb] = this->products(x.t, w.t, b.t, n, k, m, threads);
      const std::string shape = std::to_string(n) + "x" + std::to_string(k) + "x" +
                                std::to_string(m) + ", " + std::to_string(threads) + " threads";
      EXPECT_EQ(0, std::memcmp(y.data(), plain.data(), y.size() * sizeof(T))) << shape;
      EXPECT_EQ(0, std::memcmp(yb.data(), plain_bias.data(), yb.size() * sizeof(T))) << shape;
    }
  }
}

// A held matrix (Backend::hold_matrix) is read from the panels transposed once when it was
// announced: the same bits as the plain loop again, with and without a bias; a call that passes
// the held pointer with another shape, and every call after release_matrix, reads w itself.
TYPED_TEST(CpuKernel, HeldMatrixGivesThePlainLoopsBits) {
  using T = TypeParam;
  for (auto [n, k, m] : {std::tuple{1, 288, 70}, std::tuple{3, 129, 33}, std::tuple{9, 300, 64},
                         std::tuple{1, 7, 1}}) {
    auto x = make_input<T>("x", n * k);
    auto w = make_input<T>("w", m * k, std::sqrt(3.0 / k));
    auto b = make_input<T>("b", m);
    const std::string shape =
        std::to_string(n) + "x" + std::to_string(k) + "x" + std::to_string(m);
    this->backend->hold_matrix(w.t.data(), k, m, MatrixRole::input_projection);
    for (int threads : {1, 2}) {
      const auto [y, yb] = this->products(x.t, w.t, b.t, n, k, m, threads);
      EXPECT_EQ(y, plain_product<T>(x.t, w.t, nullptr, n, k, m)) << shape << ", " << threads << " threads";
      EXPECT_EQ(yb, plain_product<T>(x.t, w.t, b.t.data(), n, k, m)) << shape << " with a bias";
    }
    // The held pointer with another shape (rows of k - 1 terms) is read as the memory it is.
    if (k > 1) {
      const int k2 = k - 1, m2 = std::max(1, m * k / k2 - 1);
      auto x2 = make_input<T>("x2", n * k2);
      std::vector<T> y2(n * m2);
      this->backend->matmul(x2.t.data(), w.t.data(), n, k2, m2, y2.data());
      EXPECT_EQ(y2, plain_product<T>(x2.t, w.t, nullptr, n, k2, m2)) << shape << " read as k " << k2;
    }
    this->backend->release_matrix(w.t.data());
    // After release the memory may hold anything: the product follows it.
    for (T& v : w.t) v = -v;
    std::vector<T> y(n * m);
    this->backend->matmul(x.t.data(), w.t.data(), n, k, m, y.data());
    EXPECT_EQ(y, plain_product<T>(x.t, w.t, nullptr, n, k, m)) << shape << " after release";
  }
}

// Scores and values as the plain loops compute them, bit for bit: every dot product over
// head_dim in order then scaled; every output over the keys in order. Grouped heads, a causal
// mask from positions, key counts on both sides of the 32 lanes.
TYPED_TEST(CpuKernel, AttentionHasThePlainLoopsBits) {
  using T = TypeParam;
  for (auto [n, kv_len, heads, kv_heads, head_dim] :
       {std::tuple{1, 70, 6, 6, 48}, std::tuple{5, 37, 4, 2, 8}, std::tuple{3, 3, 2, 1, 5}}) {
    auto q = make_input<T>("q", n * heads * head_dim);
    auto k = make_input<T>("k", kv_len * kv_heads * head_dim);
    auto v = make_input<T>("v", kv_len * kv_heads * head_dim);
    auto p = make_input<T>("p", heads * n * kv_len, 0.5, 0.5);
    std::vector<int> positions(n);
    for (int i = 0; i < n; ++i) positions[i] = kv_len - n + i;
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    const int group = heads / kv_heads;
    std::vector<T> want_s(heads * n * kv_len), want_o(n * heads * head_dim);
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < n; ++i) {
        for (int j = 0; j < kv_len; ++j) {
          volatile T dot = 0;
          for (int d = 0; d < head_dim; ++d) {
            const T product = q.t[(i * heads + h) * head_dim + d] *
                              k.t[(j * kv_heads + h / group) * head_dim + d];
            dot = dot + product;
          }
          want_s[(h * n + i) * kv_len + j] = j > positions[i]
                                                 ? -std::numeric_limits<T>::infinity()
                                                 : dot * static_cast<T>(scale);
        }
        for (int d = 0; d < head_dim; ++d) {
          volatile T sum = 0;
          for (int j = 0; j < kv_len; ++j) {
            const T product =
                p.t[(h * n + i) * kv_len + j] * v.t[(j * kv_heads + h / group) * head_dim + d];
            sum = sum + product;
          }
          want_o[(i * heads + h) * head_dim + d] = sum;
        }
      }
    std::vector<T> s(want_s.size(), T(-99)), o(want_o.size(), T(-99));
    this->backend->attention_scores(q.t.data(), k.t.data(), positions.data(), n, kv_len, heads,
                                    kv_heads, head_dim, scale, s.data());
    this->backend->attention_values(p.t.data(), v.t.data(), n, kv_len, heads, kv_heads, head_dim,
                                    o.data());
    const std::string shape = std::to_string(n) + " queries, " + std::to_string(kv_len) + " keys";
    EXPECT_EQ(s, want_s) << shape;
    EXPECT_EQ(o, want_o) << shape;
  }
}

TYPED_TEST(CpuKernel, Rmsnorm) {
  using T = TypeParam;
  const int rows = 3, dim = 13;
  auto x = make_input<T>("x", rows * dim, 2.0, 0.3);
  auto w = make_input<T>("w", dim, 0.1, 1.0);
  for (double eps : {1e-6, 0.5}) {
    std::vector<T> y(rows * dim);
    this->backend->rmsnorm(x.t.data(), w.t.data(), rows, dim, eps, y.data());
    expect_close(y, ref::rmsnorm(x.d, w.d, rows, dim, eps), this->tol,
                 "rmsnorm eps " + std::to_string(eps));
  }
}

TYPED_TEST(CpuKernel, RopeHalfSplit) {
  using T = TypeParam;
  const std::vector<int> positions = {0, 1, 5, 17, 1000};
  const int n = static_cast<int>(positions.size()), heads = 3;
  for (int hd : {6, 10, 2}) {
    for (double theta : {10000.0, 500000.0}) {
      auto x = make_input<T>("x", n * heads * hd);
      std::vector<T> y = x.t;
      this->backend->rope(y.data(), positions.data(), n, heads, hd, theta);
      expect_close(y, ref::rope(x.d, positions, heads, hd, theta), this->tol,
                   "rope head_dim " + std::to_string(hd));
    }
  }
}

TYPED_TEST(CpuKernel, RopeAtPositionZeroIsTheIdentity) {
  using T = TypeParam;
  auto x = make_input<T>("x", 2 * 10);
  std::vector<T> y = x.t;
  const int positions[] = {0};
  this->backend->rope(y.data(), positions, 1, 2, 10, 10000.0);
  EXPECT_EQ(y, x.t);
}

TYPED_TEST(CpuKernel, AttentionScores) {
  using T = TypeParam;
  const std::vector<int> positions = {4, 5, 6, 8};
  const int n = 4, kv_len = 9, heads = 6, hd = 10;
  for (int kv_heads : {6, 3, 2, 1}) {
    auto q = make_input<T>("q", n * heads * hd);
    auto k = make_input<T>("k", kv_len * kv_heads * hd);
    const double scale = 1 / std::sqrt(10.0);
    std::vector<T> s(heads * n * kv_len);
    this->backend->attention_scores(q.t.data(), k.t.data(), positions.data(), n, kv_len, heads,
                                    kv_heads, hd, scale, s.data());
    expect_close(s, ref::attention_scores(q.d, k.d, positions, kv_len, heads, kv_heads, hd, scale),
                 this->tol, "scores kv_heads " + std::to_string(kv_heads));
  }
}

TYPED_TEST(CpuKernel, Softmax) {
  using T = TypeParam;
  const int rows = 5, len = 11;
  auto x = make_input<T>("x", rows * len, 6.0, 40.0);  // large offset: max subtraction matters
  std::vector<T> y = x.t;
  this->backend->softmax(y.data(), rows, len);
  expect_close(y, ref::softmax(x.d, rows, len), this->tol, "softmax");
}

TYPED_TEST(CpuKernel, SoftmaxTreatsMinusInfinityAsZeroProbability) {
  using T = TypeParam;
  const T inf = std::numeric_limits<T>::infinity();
  auto x = make_input<T>("x", 2 * 6, 3.0);
  x.t[1] = x.t[4] = x.t[5] = -inf;
  x.t[6 + 0] = -inf;
  std::vector<double> finite_row0 = {x.d[0], x.d[2], x.d[3]};
  std::vector<double> finite_row1(x.d.begin() + 7, x.d.end());
  std::vector<double> p0 = ref::softmax(finite_row0, 1, 3), p1 = ref::softmax(finite_row1, 1, 5);
  const std::vector<double> expected = {p0[0], 0,     p0[1], p0[2], 0,     0,
                                        0,     p1[0], p1[1], p1[2], p1[3], p1[4]};
  std::vector<T> y = x.t;
  this->backend->softmax(y.data(), 2, 6);
  expect_close(y, expected, this->tol, "masked softmax");
}

TYPED_TEST(CpuKernel, AttentionValues) {
  using T = TypeParam;
  const int n = 3, kv_len = 7, heads = 4, hd = 6;
  for (int kv_heads : {4, 2, 1}) {
    auto probs = make_input<T>("p", heads * n * kv_len, 0.5, 0.5);
    auto v = make_input<T>("v", kv_len * kv_heads * hd);
    std::vector<T> out(n * heads * hd);
    this->backend->attention_values(probs.t.data(), v.t.data(), n, kv_len, heads, kv_heads, hd,
                                    out.data());
    expect_close(out, ref::attention_values(probs.d, v.d, n, kv_len, heads, kv_heads, hd),
                 this->tol, "values kv_heads " + std::to_string(kv_heads));
  }
}

TYPED_TEST(CpuKernel, Swiglu) {
  using T = TypeParam;
  const int n = 37;
  auto gate = make_input<T>("gate", n, 8.0);  // reaches both tails of silu
  auto up = make_input<T>("up", n);
  std::vector<T> out(n);
  this->backend->swiglu(gate.t.data(), up.t.data(), n, out.data());
  expect_close(out, ref::swiglu(gate.d, up.d), this->tol, "swiglu");
}

// Inputs to +-16 with the limit at 7: both clamps engage on some elements, not on others.
TYPED_TEST(CpuKernel, ClampedSwiglu) {
  using T = TypeParam;
  const int n = 41;
  auto gate = make_input<T>("gate", n, 16.0);
  auto up = make_input<T>("up", n, 16.0);
  int clamped_gate = 0, clamped_up = 0;
  for (int i = 0; i < n; ++i) {
    clamped_gate += gate.d[i] > 7;
    clamped_up += std::abs(up.d[i]) > 7;
  }
  ASSERT_GT(clamped_gate, 0);
  ASSERT_GT(clamped_up, 0);
  ASSERT_LT(clamped_gate, n);
  std::vector<T> out(n);
  this->backend->clamped_swiglu(gate.t.data(), up.t.data(), n, 1.702, 7.0, out.data());
  expect_close(out, ref::clamped_swiglu(gate.d, up.d, 1.702, 7.0), this->tol, "clamped_swiglu");
  // A NaN is not clamped away.
  gate.t[3] = std::numeric_limits<T>::quiet_NaN();
  up.t[5] = std::numeric_limits<T>::quiet_NaN();
  this->backend->clamped_swiglu(gate.t.data(), up.t.data(), n, 1.702, 7.0, out.data());
  EXPECT_TRUE(std::isnan(out[3]));
  EXPECT_TRUE(std::isnan(out[5]));
}

TYPED_TEST(CpuKernel, Add) {
  using T = TypeParam;
  const int n = 29;
  auto y = make_input<T>("y", n), x = make_input<T>("x", n, 3.0);
  std::vector<T> out = y.t;
  this->backend->add(out.data(), x.t.data(), n);
  expect_close(out, ref::add(y.d, x.d), this->tol, "add");
}

// The fp32 backend must accumulate in fp32: a long dot product then carries more error than
// the single rounding of an fp64 sum to fp32 would.
TEST(CpuKernelFp32, AccumulatesInFp32) {
  auto backend = make_cpu_backend<float>();
  const int n = 4, k = 4096, m = 8;
  auto x = make_input<float>("x", n * k);
  auto w = make_input<float>("w", m * k);
  std::vector<float> y(n * m);
  backend->matmul(x.t.data(), w.t.data(), n, k, m, y.data());
  const std::vector<double> exact = ref::matmul(x.d, w.d, n, k, m);
  int beyond_one_rounding = 0;
  for (int i = 0; i < n * m; ++i) beyond_one_rounding += y[i] != static_cast<float>(exact[i]);
  EXPECT_GT(beyond_one_rounding, n * m / 2);
}

}  // namespace
}  // namespace pinmark
