// What llama_bench and llama_bench_tp measure with, beside device_llama.cuh's Timer: the two
// ceilings of a card (device-to-device copy bandwidth, cuBLAS bf16 GEMM rate), the prompt
// tokens, and the relative error of logits against the CPU reference.
#pragma once

#include "bench/device_llama.cuh"

namespace {

struct Ceilings {
  double bandwidth;  // bytes/s
  double gemm_rate;  // FLOP/s
};

// Bytes read plus bytes written per second by a large device-to-device copy.
double measure_copy_bandwidth(cudaStream_t stream, const Timer& timer) {
  const int64_t bytes = int64_t{1} << 30;
  void *src = nullptr, *dst = nullptr;
  CHECK(cudaMalloc(&src, bytes));
  CHECK(cudaMalloc(&dst, bytes));
  fill(stream, static_cast<bf16*>(src), bytes / 2, "bench.copy", 1.0);
  const double ms = timer.median_ms(3, 15, [&] {
    CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
  });
  CHECK(cudaFree(src));
  CHECK(cudaFree(dst));
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3);
}

// FLOP/s of an 8192^3 bf16 GEMM (fp32 accumulation, bf16 output) on random data.
double measure_gemm_rate(cublasHandle_t blas, cudaStream_t stream, const Timer& timer) {
  const int N = 8192;
  const int64_t count = int64_t{N} * N;
  bf16 *a = nullptr, *b = nullptr, *c = nullptr;
  CHECK(cudaMalloc(&a, count * sizeof(bf16)));
  CHECK(cudaMalloc(&b, count * sizeof(bf16)));
  CHECK(cudaMalloc(&c, count * sizeof(bf16)));
  fill(stream, a, count, "bench.gemm.a", 1.0);
  fill(stream, b, count, "bench.gemm.b", 1.0);
  const double ms = timer.median_ms(3, 10, [&] { gemm(blas, a, b, N, N, N, c); });
  CHECK(cudaFree(a));
  CHECK(cudaFree(b));
  CHECK(cudaFree(c));
  return 2.0 * N * static_cast<double>(N) * N / (ms * 1e-3);
}

std::vector<int> random_tokens(int n, int vocab, const char* name) {
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i)
    t[i] = static_cast<int>(pinmark::random_bits(kSeed, name, i) % static_cast<uint64_t>(vocab));
  return t;
}

// ||a - b|| / ||b||; NaN when any element of a is not finite (an unwritten or broken output).
double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return NAN;
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return NAN;
    const double e = static_cast<double>(a[i]) - b[i];
    num += e * e;
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

// The lines of the table each bench prints last, one per model.
std::vector<std::string>& summary() {
  static std::vector<std::string> lines;
  return lines;
}

}  // namespace
