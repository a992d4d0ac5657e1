// The kernels added for the families beyond Llama, in fp64 and fp32, against plain fp64 loops
// (reference.h) at sizes that are not powers of two.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "reference.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/dtype.h"
#include "runtime/model_config.h"
#include "runtime/normal_quantile.h"
#include "runtime/rope.h"
#include "runtime/rounding_backend.h"
#include "test_util.h"

namespace pinmark {
namespace {

using test::expect_close;
using test::make_input;

template <class T>
class FamilyKernel : public ::testing::Test {
 protected:
  std::unique_ptr<Backend<T>> backend = make_cpu_backend<T>();
  const double tol = test::kernel_tolerance<T>();
};

using Types = ::testing::Types<double, float>;
TYPED_TEST_SUITE(FamilyKernel, Types);

TYPED_TEST(FamilyKernel, MatmulBias) {
  using T = TypeParam;
  for (auto [n, k, m] : {std::tuple{7, 13, 5}, std::tuple{1, 64, 9}, std::tuple{3, 1, 4}}) {
    auto x = make_input<T>("x", n * k);
    auto w = make_input<T>("w", m * k, std::sqrt(3.0 / k));
    auto b = make_input<T>("b", m, 0.5);
    std::vector<T> y(n * m, T(-99));
    this->backend->matmul_bias(x.t.data(), w.t.data(), b.t.data(), n, k, m, y.data());
    expect_close(y, ref::linear(x.d, w.d, b.d, n, k, m), this->tol, "matmul_bias");
  }
}

TYPED_TEST(FamilyKernel, RmsnormPlusOne) {
  using T = TypeParam;
  const int rows = 3, dim = 13;
  auto x = make_input<T>("x", rows * dim, 2.0, 0.3);
  auto w = make_input<T>("w", dim, 0.1);
  for (double eps : {1e-6, 0.5}) {
    std::vector<T> y(rows * dim);
    this->backend->rmsnorm_plus_one(x.t.data(), w.t.data(), rows, dim, eps, y.data());
    expect_close(y, ref::rmsnorm_plus_one(x.d, w.d, rows, dim, eps), this->tol, "rmsnorm_plus_one");
  }
}

TYPED_TEST(FamilyKernel, Layernorm) {
  using T = TypeParam;
  const int rows = 5, dim = 11;
  auto x = make_input<T>("x", rows * dim, 2.0, 0.7);
  auto w = make_input<T>("w", dim, 0.1, 1.0);
  auto b = make_input<T>("b", dim, 0.3);
  for (double eps : {1e-5, 0.5}) {
    std::vector<T> y(rows * dim);
    this->backend->layernorm(x.t.data(), w.t.data(), b.t.data(), rows, dim, eps, y.data());
    expect_close(y, ref::layernorm(x.d, w.d, b.d, rows, dim, eps), this->tol, "layernorm");
  }
}

TYPED_TEST(FamilyKernel, GeluBothForms) {
  using T = TypeParam;
  const int n = 37;
  auto x = make_input<T>("x", n, 4.0);
  auto up = make_input<T>("up", n);
  for (bool tanh : {true, false}) {
    std::vector<T> y(n), g(n);
    this->backend->gelu(x.t.data(), n, tanh, y.data());
    expect_close(y, ref::gelu(x.d, tanh), this->tol, tanh ? "gelu tanh" : "gelu erf");
    this->backend->geglu(x.t.data(), up.t.data(), n, tanh, g.data());
    expect_close(g, ref::geglu(x.d, up.d, tanh), this->tol, tanh ? "geglu tanh" : "geglu erf");
  }
  // The two forms differ by about 4e-4 at x = 2.5: a kernel that ignores the flag is seen.
  std::vector<T> a(1), b(1);
  const T x0 = 2.5;
  this->backend->gelu(&x0, 1, true, a.data());
  this->backend->gelu(&x0, 1, false, b.data());
  EXPECT_GT(std::fabs(static_cast<double>(a[0]) - static_cast<double>(b[0])), 1e-4);
}

TYPED_TEST(FamilyKernel, RopeWithScaledFrequencies) {
  using T = TypeParam;
  const int n = 3, heads = 3, hd = 10;
  const std::vector<int> positions = {0, 9, 4000};
  auto x = make_input<T>("x", n * heads * hd);
  for (const char* type : {"linear", "llama3"}) {
    ModelConfig c;
    c.hidden_size = heads * hd;
    c.num_attention_heads = heads;
    c.rope_theta = 500000;
    c.rope_type = type;
    c.rope_factor = 8;
    c.rope_low_freq_factor = 1;
    c.rope_high_freq_factor = 4;
    c.rope_original_max_position_embeddings = 64;
    const std::vector<double> inv = rope_inv_freq(c);
    const std::vector<double> expected_inv = ref::scaled_inv_freq(type, 500000, hd, 8, 1, 4, 64);
    expect_close(inv, expected_inv, 1e-15, std::string(type) + " inv_freq");
    std::vector<T> y = x.t;
    this->backend->rope_freqs(y.data(), positions.data(), n, heads, hd, inv.data(), 1.0);
    expect_close(y, ref::rope_with(x.d, positions, heads, hd, expected_inv),
                 sizeof(T) == 8 ? 1e-12 : 2e-5, type);
  }
}

TYPED_TEST(FamilyKernel, ScoreModSoftcapAndWindow) {
  using T = TypeParam;
  const int n = 4, kv_len = 9, heads = 3, kv_heads = 1, hd = 5;
  const std::vector<int> positions = {5, 6, 7, 8};
  auto q = make_input<T>("q", n * heads * hd, 3.0);
  auto k = make_input<T>("k", kv_len * kv_heads * hd, 3.0);
  for (auto [cap, window] : {std::pair{2.5, 0}, std::pair{0.0, 3}, std::pair{4.0, 1},
                             std::pair{0.0, 100}}) {
    std::vector<T> s(heads * n * kv_len);
    this->backend->attention_scores(q.t.data(), k.t.data(), positions.data(), n, kv_len, heads,
                                    kv_heads, hd, 0.5, s.data());
    this->backend->score_mod(s.data(), positions.data(), n, kv_len, heads, cap, window);
    expect_close(s,
                 ref::attention_scores_full(q.d, k.d, positions, kv_len, heads, kv_heads, hd, 0.5,
                                            cap, window),
                 this->tol, "cap " + std::to_string(cap) + " window " + std::to_string(window));
  }
}

TYPED_TEST(FamilyKernel, SoftcapAndScale) {
  using T = TypeParam;
  const int n = 29;
  auto x = make_input<T>("x", n, 80.0);
  std::vector<T> y = x.t;
  this->backend->softcap(y.data(), n, 30.0);
  std::vector<double> expected(n);
  for (int i = 0; i < n; ++i) expected[i] = std::tanh(x.d[i] / 30.0) * 30.0;
  expect_close(y, expected, this->tol, "softcap");

  y = x.t;
  this->backend->scale(y.data(), n, std::sqrt(3072.0));
  for (int i = 0; i < n; ++i)
    expected[i] = x.d[i] * static_cast<double>(static_cast<T>(std::sqrt(3072.0)));
  expect_close(y, expected, this->tol, "scale");
}

TYPED_TEST(FamilyKernel, MoeRouteAndCombine) {
  using T = TypeParam;
  const int n = 5, experts = 7, top_k = 3, dim = 6;
  auto logits = make_input<T>("logits", n * experts, 3.0);
  std::vector<T> probs(n * experts), weights(n * top_k);
  std::vector<int> ids(n * top_k);
  this->backend->moe_route(logits.t.data(), n, experts, top_k, probs.data(), ids.data(),
                           weights.data());
  std::vector<double> expected_probs, expected_weights;
  for (int r = 0; r < n; ++r) {
    ref::Routing routing = ref::route(
        std::vector<double>(logits.d.begin() + r * experts, logits.d.begin() + (r + 1) * experts),
        top_k);
    expected_probs.insert(expected_probs.end(), routing.probs.begin(), routing.probs.end());
    expected_weights.insert(expected_weights.end(), routing.weights.begin(), routing.weights.end());
    EXPECT_EQ(std::vector<int>(ids.begin() + r * top_k, ids.begin() + (r + 1) * top_k),
              routing.ids)
        << "row " << r;
  }
  expect_close(probs, expected_probs, this->tol, "router probabilities");
  expect_close(weights, expected_weights, this->tol, "routing weights");

  // Ties go to the lowest expert index.
  const std::vector<T> tied = {1, 3, 3, 0, 3};
  std::vector<T> p(5), wt(2);
  std::vector<int> chosen(2);
  this->backend->moe_route(tied.data(), 1, 5, 2, p.data(), chosen.data(), wt.data());
  EXPECT_EQ(chosen, (std::vector<int>{1, 2}));
  EXPECT_EQ(wt[0], T(0.5));

  auto y0 = make_input<T>("y", n * dim);
  auto x = make_input<T>("x", 3 * dim);
  const std::vector<int> rows = {4, 0, 2};
  auto w = make_input<T>("w", 3, 0.5, 0.5);
  std::vector<T> y = y0.t;
  this->backend->moe_combine(y.data(), x.t.data(), rows.data(), w.t.data(), 3, dim);
  std::vector<double> expected = y0.d;
  for (int r = 0; r < 3; ++r)
    for (int d = 0; d < dim; ++d) expected[rows[r] * dim + d] += x.d[r * dim + d] * w.d[r];
  expect_close(y, expected, this->tol, "moe_combine");
}

// DeepSeek-V3.2's lightning indexer against the formula written out in fp64: each query's
// head-weighted sum of relu'd, scaled dot products with the one key head, later keys masked.
TYPED_TEST(FamilyKernel, IndexerScores) {
  using T = TypeParam;
  const int n = 3, kv_len = 7, heads = 5, dim = 6;
  auto q = make_input<T>("q", n * heads * dim);
  auto k = make_input<T>("k", kv_len * dim);
  auto w = make_input<T>("w", n * heads, 2.0);
  const std::vector<int> positions = {2, 4, 6};
  const double scale = 0.4, weight_scale = 0.7;
  std::vector<T> out(n * kv_len);
  this->backend->indexer_scores(q.t.data(), k.t.data(), w.t.data(), positions.data(), n, kv_len,
                                heads, dim, scale, weight_scale, out.data());
  std::vector<double> expected(n * kv_len);
  int negative_dots = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < kv_len; ++j) {
      double sum = 0;
      for (int h = 0; h < heads; ++h) {
        double dot = 0;
        for (int d = 0; d < dim; ++d) dot += q.d[(i * heads + h) * dim + d] * k.d[j * dim + d];
        negative_dots += dot < 0;
        sum += w.d[i * heads + h] * weight_scale * std::max(0.0, scale * dot);
      }
      expected[i * kv_len + j] = sum;
    }
  ASSERT_GT(negative_dots, 0);  // relu has something to cut
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < kv_len; ++j) {
      if (j <= positions[i]) continue;
      EXPECT_TRUE(std::isinf(out[i * kv_len + j]) && out[i * kv_len + j] < 0) << i << ", " << j;
      out[i * kv_len + j] = 0;
      expected[i * kv_len + j] = 0;
    }
  expect_close(out, expected, this->tol, "indexer_scores");

  // A NaN query stays NaN: relu does not swallow it.
  q.t[0] = std::numeric_limits<T>::quiet_NaN();
  this->backend->indexer_scores(q.t.data(), k.t.data(), w.t.data(), positions.data(), n, kv_len,
                                heads, dim, scale, weight_scale, out.data());
  EXPECT_TRUE(std::isnan(out[0]));
}

// Gemma 3n's AltUp mix against the sum written out: each output stream of each token a
// weighted sum of the input streams, with that token's coefficients, output-major.
TYPED_TEST(FamilyKernel, MixStreams) {
  using T = TypeParam;
  for (auto [n, in, out, dim] : {std::tuple{3, 4, 4, 7}, std::tuple{2, 1, 3, 5}, std::tuple{4, 2, 1, 9}}) {
    auto x = make_input<T>("x", in * n * dim);
    auto c = make_input<T>("c", n * out * in, 1.5);
    std::vector<T> y(out * n * dim, T(-99));
    this->backend->mix_streams(x.t.data(), c.t.data(), n, in, out, dim, y.data());
    std::vector<double> expected(y.size());
    for (int o = 0; o < out; ++o)
      for (int t = 0; t < n; ++t)
        for (int d = 0; d < dim; ++d) {
          double sum = 0;
          for (int i = 0; i < in; ++i) sum += c.d[(t * out + o) * in + i] * x.d[(i * n + t) * dim + d];
          expected[(o * n + t) * dim + d] = sum;
        }
    expect_close(y, expected, this->tol, "mix_streams");
  }
}

// Each row rescaled to the reference row's root mean square, with the floor on its own.
TYPED_TEST(FamilyKernel, RescaleRms) {
  using T = TypeParam;
  const int n = 4, dim = 11;
  auto x = make_input<T>("x", n * dim, 3.0);
  auto ref = make_input<T>("ref", n * dim, 0.5);
  // Row 3 so small that the floor decides its divisor.
  for (int d = 0; d < dim; ++d) {
    x.t[3 * dim + d] = static_cast<T>(x.t[3 * dim + d] * T(1e-4));
    x.d[3 * dim + d] = static_cast<double>(x.t[3 * dim + d]);
  }
  const double floor = 1e-5;
  std::vector<T> y(n * dim);
  this->backend->rescale_rms(x.t.data(), ref.t.data(), n, dim, floor, y.data());
  std::vector<double> expected(y.size());
  int floored = 0;
  for (int r = 0; r < n; ++r) {
    double sa = 0, sb = 0;
    for (int d = 0; d < dim; ++d) {
      sa += x.d[r * dim + d] * x.d[r * dim + d];
      sb += ref.d[r * dim + d] * ref.d[r * dim + d];
    }
    floored += sa / dim < floor;
    for (int d = 0; d < dim; ++d)
      expected[r * dim + d] =
          x.d[r * dim + d] * std::sqrt(sb / dim) / std::sqrt(std::max(sa / dim, floor));
  }
  ASSERT_EQ(floored, 1);
  expect_close(y, expected, this->tol, "rescale_rms");
}

TYPED_TEST(FamilyKernel, ScaleColumns) {
  using T = TypeParam;
  const int n = 3, dim = 13;
  auto x = make_input<T>("x", n * dim, 2.0);
  auto w = make_input<T>("w", dim, 1.0);
  std::vector<T> y(n * dim);
  this->backend->scale_columns(x.t.data(), w.t.data(), n, dim, y.data());
  std::vector<double> expected(y.size());
  for (int r = 0; r < n; ++r)
    for (int d = 0; d < dim; ++d) expected[r * dim + d] = x.d[r * dim + d] * w.d[d];
  expect_close(y, expected, this->tol, "scale_columns");
}

// DeepSeek-V4's compressor pooling: per window and channel, a softmax over the slots' gates
// weighs the slots' values; a -infinity gate weighs 0.
TYPED_TEST(FamilyKernel, SoftmaxPool) {
  using T = TypeParam;
  const int n = 3, slots = 6, dim = 7;
  auto kv = make_input<T>("kv", n * slots * dim, 2.0);
  auto gate = make_input<T>("gate", n * slots * dim, 3.0);
  // Window 0's first two slots are empty (a CSA layer's first window has no previous one).
  for (int s = 0; s < 2; ++s)
    for (int d = 0; d < dim; ++d) {
      gate.t[s * dim + d] = -std::numeric_limits<T>::infinity();
      gate.d[s * dim + d] = -std::numeric_limits<double>::infinity();
    }
  std::vector<T> y(n * dim);
  this->backend->softmax_pool(kv.t.data(), gate.t.data(), n, slots, dim, y.data());
  std::vector<double> expected(y.size());
  for (int w = 0; w < n; ++w)
    for (int d = 0; d < dim; ++d) {
      double sum = 0, pooled = 0;
      for (int s = 0; s < slots; ++s) sum += std::exp(gate.d[(w * slots + s) * dim + d]);
      for (int s = 0; s < slots; ++s)
        pooled += std::exp(gate.d[(w * slots + s) * dim + d]) / sum * kv.d[(w * slots + s) * dim + d];
      expected[w * dim + d] = pooled;
    }
  expect_close(y, expected, this->tol, "softmax_pool");
  // A NaN gate poisons its channel only.
  gate.t[(n * slots - 1) * dim + 2] = std::numeric_limits<T>::quiet_NaN();
  this->backend->softmax_pool(kv.t.data(), gate.t.data(), n, slots, dim, y.data());
  EXPECT_TRUE(std::isnan(y[(n - 1) * dim + 2]));
  EXPECT_FALSE(std::isnan(y[(n - 1) * dim + 3]));
}

// Gemma 3n's activation sparsity: relu(x - (mean + population std * multiplier)) per row.
TYPED_TEST(FamilyKernel, GaussianTopk) {
  using T = TypeParam;
  const int n = 3, dim = 40;
  auto x = make_input<T>("x", n * dim, 2.0, 0.3);
  for (double p : {0.95, 0.6, 0.3}) {
    const double multiplier = normal_quantile(p);
    std::vector<T> y = x.t;
    this->backend->gaussian_topk(y.data(), n, dim, multiplier);
    std::vector<double> expected(y.size());
    int kept = 0;
    for (int r = 0; r < n; ++r) {
      double mean = 0, var = 0;
      for (int d = 0; d < dim; ++d) mean += x.d[r * dim + d];
      mean /= dim;
      for (int d = 0; d < dim; ++d) var += (x.d[r * dim + d] - mean) * (x.d[r * dim + d] - mean);
      const double cutoff = mean + std::sqrt(var / dim) * multiplier;
      for (int d = 0; d < dim; ++d) {
        expected[r * dim + d] = std::max(0.0, x.d[r * dim + d] - cutoff);
        kept += expected[r * dim + d] > 0;
      }
    }
    ASSERT_GT(kept, 0);
    ASSERT_LT(kept, n * dim);
    expect_close(y, expected, this->tol, "gaussian_topk");
  }
  // A NaN stays NaN: the cut does not swallow it.
  std::vector<T> y = x.t;
  y[5] = std::numeric_limits<T>::quiet_NaN();
  this->backend->gaussian_topk(y.data(), n, dim, 1.0);
  EXPECT_TRUE(std::isnan(y[5]));
}

// Phi(normal_quantile(p)) gives p back, with Phi from erfc, across the body and the tails.
TEST(NormalQuantile, InvertsTheNormalDistribution) {
  for (double p : {1e-12, 1e-6, 0.01, 0.3, 0.5, 0.6, 0.95, 0.999, 1 - 1e-9}) {
    const double x = normal_quantile(p);
    // The smaller tail, where erfc keeps its relative accuracy: P(Z <= x) or P(Z > x).
    const double tail = p <= 0.5 ? 0.5 * std::erfc(-x / std::sqrt(2.0)) : 0.5 * std::erfc(x / std::sqrt(2.0));
    const double wanted = p <= 0.5 ? p : 1 - p;
    EXPECT_NEAR(tail, wanted, 1e-14 * wanted) << p;
    // Symmetric about 0 where 1 - p is exact.
    if (p >= 0.5) {
      EXPECT_EQ(normal_quantile(1 - p), -x) << p;
    }
  }
  EXPECT_EQ(normal_quantile(0.5), 0.0);
  EXPECT_TRUE(std::isinf(normal_quantile(0.0)) && normal_quantile(0.0) < 0);
  EXPECT_TRUE(std::isinf(normal_quantile(1.0)) && normal_quantile(1.0) > 0);
  EXPECT_TRUE(std::isnan(normal_quantile(1.5)));
  EXPECT_TRUE(std::isnan(normal_quantile(std::nan(""))));
}

// The emulated narrow targets round each new op's output, except the parts of the fused
// attention kernel (score_mod) and the router, which Hugging Face keeps in fp32.
TEST(RoundingBackendFamilies, RoundsWhereTheDocSays) {
  auto bf16 = make_rounding_backend(make_cpu_backend<float>(), DType::bf16);
  auto is_bf16 = [](const std::vector<float>& v) {
    for (float f : v)
      if (round_to(DType::bf16, f) != f) return false;
    return true;
  };
  auto x = make_input<float>("x", 24, 2.0);
  auto w = make_input<float>("w", 24, 0.1);
  std::vector<float> y(24);
  bf16->gelu(x.t.data(), 24, true, y.data());
  EXPECT_TRUE(is_bf16(y));
  bf16->rmsnorm_plus_one(x.t.data(), w.t.data(), 2, 12, 1e-6, y.data());
  EXPECT_TRUE(is_bf16(y));
  y = x.t;
  bf16->scale(y.data(), 24, std::sqrt(3072.0));
  EXPECT_TRUE(is_bf16(y));
  // The normaliser is rounded first, as Hugging Face casts it: sqrt(3072) = 55.4256 -> 55.5.
  float one = 1;
  bf16->scale(&one, 1, std::sqrt(3072.0));
  EXPECT_EQ(one, 55.5f);

  std::vector<float> probs(24), weights(4);
  std::vector<int> ids(4);
  bf16->moe_route(x.t.data(), 2, 12, 2, probs.data(), ids.data(), weights.data());
  EXPECT_FALSE(is_bf16(probs));

  // The indexer's scores select keys; they stay in fp32.
  const std::vector<int> positions = {3, 3};
  std::vector<float> index(8);
  // q [2, 3 heads, 4] is all of x; k [4 keys, 4] its first 16 values.
  bf16->indexer_scores(x.t.data(), x.t.data(), w.t.data(), positions.data(), 2, 4, 3, 4, 0.9, 0.6,
                       index.data());
  EXPECT_FALSE(is_bf16(index));
}

}  // namespace
}  // namespace pinmark
