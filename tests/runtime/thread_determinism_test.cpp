// The CPU backend runs small shapes on one thread, so the thread-count guarantee must be
// checked at shapes large enough to run in parallel: every kernel, one thread vs several,
// bit for bit.
#include <gtest/gtest.h>
#include <omp.h>

#include <functional>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/random.h"

namespace pinmark {
namespace {

template <class T>
std::vector<T> random_values(const char* name, size_t n, double scale = 1.0) {
  std::vector<double> v = random_tensor(17, name, n, scale);
  return std::vector<T>(v.begin(), v.end());
}

// Runs `kernel` once with one thread and once with three; returns both outputs.
template <class T>
void expect_thread_invariant(const char* what, const std::function<std::vector<T>()>& kernel) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<T> one = kernel();
  omp_set_num_threads(3);
  const std::vector<T> three = kernel();
  omp_set_num_threads(saved);
  ASSERT_EQ(one.size(), three.size()) << what;
  EXPECT_TRUE(one == three) << what << " differs between 1 and 3 threads";
}

template <class T>
class ThreadDeterminism : public testing::Test {};
using Types = testing::Types<double, float>;
TYPED_TEST_SUITE(ThreadDeterminism, Types);

TYPED_TEST(ThreadDeterminism, EveryKernelAtParallelSizes) {
  using T = TypeParam;
  auto backend = make_cpu_backend<T>();
  // Sizes well above the backend's parallel threshold and multiples of nothing.
  const int n = 67, k = 301, m = 263, heads = 6, kv_heads = 2, hd = 34, len = 515;
  const std::vector<T> x = random_values<T>("x", size_t{n} * k);
  const std::vector<T> w = random_values<T>("w", size_t{m} * k, 0.1);
  expect_thread_invariant<T>("matmul", [&] {
    std::vector<T> y(size_t{n} * m);
    backend->matmul(x.data(), w.data(), n, k, m, y.data());
    return y;
  });
  expect_thread_invariant<T>("rmsnorm", [&] {
    std::vector<T> y(x.size());
    backend->rmsnorm(x.data(), w.data(), n, k, 1e-6, y.data());
    return y;
  });
  std::vector<int> positions(n);
  for (int i = 0; i < n; ++i) positions[i] = len - n + i;
  const std::vector<T> q = random_values<T>("q", size_t{n} * heads * hd);
  const std::vector<T> kc = random_values<T>("k", size_t{len} * kv_heads * hd);
  const std::vector<T> vc = random_values<T>("v", size_t{len} * kv_heads * hd);
  expect_thread_invariant<T>("rope", [&] {
    std::vector<T> y = q;
    backend->rope(y.data(), positions.data(), n, heads, hd, 10000.0);
    return y;
  });
  std::vector<T> probs(size_t{heads} * n * len);
  expect_thread_invariant<T>("attention_scores + softmax", [&] {
    backend->attention_scores(q.data(), kc.data(), positions.data(), n, len, heads, kv_heads, hd,
                              0.17, probs.data());
    backend->softmax(probs.data(), heads * n, len);
    return probs;
  });
  expect_thread_invariant<T>("attention_values", [&] {
    std::vector<T> out(size_t{n} * heads * hd);
    backend->attention_values(probs.data(), vc.data(), n, len, heads, kv_heads, hd, out.data());
    return out;
  });
  const std::vector<T> big = random_values<T>("gate", size_t{1} << 17, 4.0);
  expect_thread_invariant<T>("swiglu and add", [&] {
    std::vector<T> out(big.size());
    backend->swiglu(big.data(), big.data(), static_cast<int64_t>(big.size()), out.data());
    backend->add(out.data(), big.data(), static_cast<int64_t>(big.size()));
    return out;
  });
}

}  // namespace
}  // namespace pinmark
